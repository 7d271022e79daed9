//! The backtest report's chart: the equity curve (with buy and hold for scale) over
//! the drawdown from its running peak, rendered in memory to PNG like the candles.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{ChartError, ChartOptions, encode_png, fonts, theme};

fn font(size: f64) -> TextStyle<'static> {
    (fonts::family(), size).into_font().color(&theme::TEXT)
}

fn draw_err<E: std::fmt::Debug>(e: E) -> ChartError {
    ChartError::Draw(format!("{e:?}"))
}

/// Renders `equity` (one value per bar) and, when given, `buy_and_hold` (the same
/// money held in the instrument from the first trading bar) over a drawdown panel.
/// `labels` are the bars' dates, for the x axis.
///
/// # Errors
/// No values, a size below 400x300, or a drawing or encoding failure.
pub fn render_equity_png(
    labels: &[String],
    equity: &[f64],
    buy_and_hold: Option<&[f64]>,
    opts: &ChartOptions,
) -> Result<Vec<u8>, ChartError> {
    if equity.is_empty() {
        return Err(ChartError::NoBars);
    }
    if opts.width < 400 || opts.height < 300 {
        return Err(ChartError::TooSmall {
            width: opts.width,
            height: opts.height,
        });
    }
    fonts::init()?;
    let (w, h) = (opts.width, opts.height);
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&theme::BACKGROUND).map_err(draw_err)?;
        let (title, body) = root.split_vertically(40);
        title
            .draw_text(
                &opts.title,
                &font(18.0).pos(Pos::new(HPos::Left, VPos::Top)),
                (12, 10),
            )
            .map_err(draw_err)?;
        let (top, bottom) = body.split_vertically((h as f64 - 40.0) * 0.68);
        let n = equity.len();
        let mut peak = f64::MIN;
        let drawdown: Vec<f64> = equity
            .iter()
            .map(|&e| {
                peak = peak.max(e);
                (e / peak - 1.0) * 100.0
            })
            .collect();
        let values = equity
            .iter()
            .chain(buy_and_hold.into_iter().flatten())
            .copied();
        let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let pad = ((hi - lo) * 0.05).max(1.0);
        let label = |i: &usize| {
            labels
                .get(*i)
                .map_or(String::new(), |l| l.chars().take(10).collect())
        };
        let mut chart = ChartBuilder::on(&top)
            .margin(10)
            .x_label_area_size(0)
            .y_label_area_size(80)
            .build_cartesian_2d(0..n, (lo - pad)..(hi + pad))
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .light_line_style(theme::GRID)
            .bold_line_style(theme::GRID)
            .axis_style(theme::BORDER)
            .y_label_style(font(13.0))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .axis_desc_style(font(13.0))
            .y_desc("equity")
            .x_labels(8)
            .x_label_formatter(&|_| String::new())
            .draw()
            .map_err(draw_err)?;
        if let Some(bh) = buy_and_hold {
            chart
                .draw_series(LineSeries::new(
                    bh.iter().copied().enumerate(),
                    theme::REFERENCE.stroke_width(1),
                ))
                .map_err(draw_err)?
                .label("buy and hold")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], theme::REFERENCE));
        }
        chart
            .draw_series(LineSeries::new(
                equity.iter().copied().enumerate(),
                theme::MACD.stroke_width(2),
            ))
            .map_err(draw_err)?
            .label("strategy")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], theme::MACD.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(font(13.0))
            .background_style(theme::BACKGROUND.mix(0.9))
            .border_style(theme::BORDER)
            .draw()
            .map_err(draw_err)?;
        let floor = drawdown.iter().copied().fold(0.0, f64::min).min(-1.0) * 1.05;
        let mut dd = ChartBuilder::on(&bottom)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(80)
            .build_cartesian_2d(0..n, floor..0.0)
            .map_err(draw_err)?;
        dd.configure_mesh()
            .light_line_style(theme::GRID)
            .bold_line_style(theme::GRID)
            .axis_style(theme::BORDER)
            .x_label_style(font(13.0))
            .y_label_style(font(13.0))
            .x_labels(8)
            .x_label_formatter(&label)
            .y_label_formatter(&|v| format!("{v:.0}%"))
            .axis_desc_style(font(13.0))
            .y_desc("drawdown")
            .draw()
            .map_err(draw_err)?;
        let mut outline: Vec<(usize, f64)> = drawdown.iter().copied().enumerate().collect();
        outline.push((n - 1, 0.0));
        outline.push((0, 0.0));
        dd.draw_series(std::iter::once(Polygon::new(
            outline,
            theme::DOWN.mix(0.35),
        )))
        .map_err(draw_err)?;
        dd.draw_series(LineSeries::new(
            drawdown.iter().copied().enumerate(),
            theme::DOWN,
        ))
        .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    encode_png(&rgb, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_equity_chart_is_a_png_of_the_requested_size() {
        let equity: Vec<f64> = (0..300)
            .map(|i| 10_000.0 + (f64::from(i) * 0.1).sin() * 500.0 + f64::from(i))
            .collect();
        let labels: Vec<String> = (0..300)
            .map(|i| format!("2024-01-{:02}", i % 28 + 1))
            .collect();

        let png = render_equity_png(
            &labels,
            &equity,
            Some(&equity),
            &ChartOptions {
                width: 800,
                height: 450,
                title: "t".into(),
            },
        )
        .unwrap();

        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 800);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 450);
    }

    #[test]
    fn no_equity_is_an_error() {
        assert!(matches!(
            render_equity_png(&[], &[], None, &ChartOptions::default()),
            Err(ChartError::NoBars)
        ));
    }
}
