//! Drawing one chart: a title bar, the price panel (candles, volume, overlays, last
//! close) and one panel per own-panel indicator (RSI, MACD, then the rest), all on
//! one bar-index x axis so the panels line up and weekends leave no gaps.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use tradeflow_core::indicators::{IndicatorSeries, Panel};
use tradeflow_core::market::Bar;

use crate::axis::{BarAxis, date_label, month_ticks};
use crate::canvas::{Canvas, Painter};
use crate::{ChartError, ChartOptions, fonts, theme};

type Area<'b> = DrawingArea<Painter<'b>, Shift>;
type Ctx<'a, 'b> = ChartContext<'a, Painter<'b>, Cartesian2d<BarAxis, RangedCoordf64>>;

const TITLE_HEIGHT: u32 = 48;
const RIGHT_AXIS: u32 = 84;
const BOTTOM_AXIS: u32 = 30;
/// Share of the price panel's value range kept below the lowest low for volume bars.
const VOLUME_SHARE: f64 = 0.2;

fn draw_err<E: std::fmt::Debug>(e: E) -> ChartError {
    ChartError::Draw(format!("{e:?}"))
}

fn font(size: f64) -> TextStyle<'static> {
    (fonts::family(), size).into_font().color(&theme::TEXT)
}

/// The indicator panels below the price panel, in drawing order.
struct SubPanel<'s> {
    indicator: &'s str,
    series: Vec<&'s IndicatorSeries>,
}

impl SubPanel<'_> {
    fn weight(&self) -> f64 {
        match self.indicator {
            "rsi" => 1.5,
            "macd" => 1.8,
            _ => 1.3,
        }
    }
}

fn sub_panels(series: &[IndicatorSeries]) -> Vec<SubPanel<'_>> {
    let mut out: Vec<SubPanel<'_>> = Vec::new();
    // Supertrend's direction colours its line on the price panel instead.
    for s in series
        .iter()
        .filter(|s| s.panel == Panel::Own && s.indicator != "supertrend")
    {
        match out.iter_mut().find(|p| p.indicator == s.indicator) {
            Some(p) => p.series.push(s),
            None => out.push(SubPanel {
                indicator: &s.indicator,
                series: vec![s],
            }),
        }
    }
    // Stable: RSI, then MACD, then the rest in the order the strategy lists them.
    out.sort_by_key(|p| match p.indicator {
        "rsi" => 0,
        "macd" => 1,
        _ => 2,
    });
    out
}

/// The pixel rows of each panel: `("price", rows)` first, then one entry per
/// own-panel indicator (`"rsi"`, `"macd"`, …) in drawing order. The title bar sits
/// above the first panel.
pub fn panel_layout(height: u32, series: &[IndicatorSeries]) -> Vec<(String, Range<u32>)> {
    let panels = sub_panels(series);
    let weights: Vec<(String, f64)> = std::iter::once(("price".to_string(), 5.0))
        .chain(panels.iter().map(|p| (p.indicator.to_string(), p.weight())))
        .collect();
    let total: f64 = weights.iter().map(|w| w.1).sum();
    let top = TITLE_HEIGHT.min(height);
    let body = f64::from(height - top);
    let mut acc = 0.0;
    let mut start = top;
    let mut out = Vec::new();
    for (name, w) in weights {
        acc += w;
        let end = top + (body * acc / total).round() as u32;
        out.push((name, start..end));
        start = end;
    }
    out
}

/// Renders the chart onto a palette canvas of `width × height`.
pub(crate) fn draw(
    bars: &[Bar],
    series: &[IndicatorSeries],
    opts: &ChartOptions,
) -> Result<Canvas, ChartError> {
    let (w, h) = (opts.width, opts.height);
    let bg = theme::BACKGROUND;
    let solid: Vec<[u8; 3]> = theme::SOLIDS.iter().map(|c| [c.0, c.1, c.2]).collect();
    let mut canvas = Canvas::new(w, h, [bg.0, bg.1, bg.2], &solid);
    draw_on(&mut canvas, bars, series, opts)?;
    Ok(canvas)
}

fn draw_on(
    canvas: &mut Canvas,
    bars: &[Bar],
    series: &[IndicatorSeries],
    opts: &ChartOptions,
) -> Result<(), ChartError> {
    let (w, h) = (opts.width, opts.height);
    let root = Painter(canvas).into_drawing_area();
    let (title_area, body) = root.split_vertically(TITLE_HEIGHT.min(h));
    draw_title(&title_area, bars, &opts.title)?;

    let panels = sub_panels(series);
    let layout = panel_layout(h, series);
    let breaks: Vec<i32> = layout[1..]
        .iter()
        .map(|(_, rows)| (rows.start - TITLE_HEIGHT.min(h)) as i32)
        .collect();
    let areas = body.split_by_breakpoints::<i32, i32, _, _>(Vec::<i32>::new(), breaks);

    let max_labels = (w.saturating_sub(RIGHT_AXIS) / 120).max(2) as usize;
    let ticks = month_ticks(bars, max_labels);
    let n_panels = areas.len();
    for (k, area) in areas.iter().enumerate() {
        let bottom = k + 1 == n_panels;
        if k == 0 {
            draw_price_panel(&root, area, bars, series, &ticks, bottom)?;
        } else {
            draw_sub_panel(&root, area, bars, &panels[k - 1], &ticks, bottom)?;
        }
    }
    root.present().map_err(draw_err)
}

fn draw_title(area: &Area<'_>, bars: &[Bar], title: &str) -> Result<(), ChartError> {
    let (w, h) = area.dim_in_pixel();
    area.draw(&Text::new(
        title.to_string(),
        (16, 12),
        (fonts::family(), 24.0, FontStyle::Bold)
            .into_font()
            .color(&theme::TEXT),
    ))
    .map_err(draw_err)?;
    if let Some(last) = bars.last() {
        let ohlc = format!(
            "{}   O {}   H {}   L {}   C {}   V {}",
            last.date(),
            theme::price(last.open),
            theme::price(last.high),
            theme::price(last.low),
            theme::price(last.close),
            theme::volume(last.volume),
        );
        let style = font(16.0).pos(Pos::new(HPos::Right, VPos::Top));
        area.draw(&Text::new(
            ohlc,
            (w as i32 - RIGHT_AXIS as i32 - 8, 18),
            style,
        ))
        .map_err(draw_err)?;
    }
    area.draw(&PathElement::new(
        vec![(0, h as i32 - 1), (w as i32, h as i32 - 1)],
        theme::BORDER,
    ))
    .map_err(draw_err)
}

/// A vertical bar of `width` pixels from `from` to `to`, centred on bar `x`: a
/// candle body with no wick, so volume and histogram bars are exactly as wide as the
/// candles instead of aliasing against their neighbours.
fn bar_column(x: f64, from: f64, to: f64, color: RGBAColor, width: u32) -> CandleStick<f64, f64> {
    let (lo, hi) = if from <= to { (from, to) } else { (to, from) };
    CandleStick::new(x, lo, hi, lo, hi, color.filled(), color.filled(), width)
}

fn bar_width(chart: &Ctx<'_, '_>, n: usize) -> u32 {
    let px_per_bar = f64::from(chart.plotting_area().dim_in_pixel().0) / n.max(1) as f64;
    ((px_per_bar * 0.7).floor() as u32).max(1)
}

fn finite_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

fn values_of<'s>(series: &'s [&IndicatorSeries], n: usize) -> impl Iterator<Item = f64> + 's {
    series
        .iter()
        .flat_map(move |s| s.values.iter().take(n).flatten())
}

/// Points `(index, value)` of a series, split into runs without warm-up gaps.
fn runs(values: impl IntoIterator<Item = Option<f64>>, n: usize) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for (i, v) in values.into_iter().take(n).enumerate() {
        match v {
            Some(v) if v.is_finite() => current.push((i as f64, v)),
            _ if !current.is_empty() => out.push(std::mem::take(&mut current)),
            _ => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn panel_chart<'a, 'b>(
    area: &'a Area<'b>,
    bars: usize,
    ticks: &[usize],
    y: Range<f64>,
    bottom: bool,
) -> Result<Ctx<'a, 'b>, ChartError> {
    ChartBuilder::on(area)
        .margin_left(12)
        .margin_right(4)
        .margin_top(6)
        .margin_bottom(if bottom { 4 } else { 2 })
        .set_label_area_size(LabelAreaPosition::Right, RIGHT_AXIS)
        .set_label_area_size(
            LabelAreaPosition::Bottom,
            if bottom { BOTTOM_AXIS } else { 0 },
        )
        .build_cartesian_2d(BarAxis::new(bars, ticks), y)
        .map_err(draw_err)
}

fn draw_mesh<'a, 'b: 'a>(
    chart: &mut Ctx<'a, 'b>,
    bars: &[Bar],
    ticks: usize,
    y_labels: usize,
    y_fmt: &dyn Fn(&f64) -> String,
) -> Result<(), ChartError> {
    let x_fmt = |x: &f64| {
        bars.get(x.round().max(0.0) as usize)
            .map(date_label)
            .unwrap_or_default()
    };
    chart
        .configure_mesh()
        .bold_line_style(theme::GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(theme::BORDER)
        .x_labels(ticks.max(1))
        .y_labels(y_labels)
        .x_label_style(font(14.0))
        .y_label_style(font(14.0))
        .x_label_formatter(&x_fmt)
        .y_label_formatter(y_fmt)
        .draw()
        .map_err(draw_err)?;
    let x = chart.x_range();
    let y = chart.y_range();
    chart
        .plotting_area()
        .draw(&Rectangle::new(
            [(x.start, y.start), (x.end, y.end)],
            theme::BORDER,
        ))
        .map_err(draw_err)?;
    Ok(())
}

fn draw_legend<'a, 'b: 'a>(chart: &mut Ctx<'a, 'b>) -> Result<(), ChartError> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .margin(6)
        .legend_area_size(22)
        .label_font(font(14.0))
        .background_style(theme::BACKGROUND.mix(0.85))
        .border_style(theme::BORDER)
        .draw()
        .map_err(draw_err)
}

fn legend_line(color: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
}

fn draw_price_panel(
    root: &Area<'_>,
    area: &Area<'_>,
    bars: &[Bar],
    series: &[IndicatorSeries],
    ticks: &[usize],
    bottom: bool,
) -> Result<(), ChartError> {
    let n = bars.len();
    let overlays: Vec<&IndicatorSeries> =
        series.iter().filter(|s| s.panel == Panel::Price).collect();
    let (lo, hi) = finite_range(
        bars.iter()
            .flat_map(|b| [b.low, b.high])
            .chain(values_of(&overlays, n)),
    )
    .ok_or(ChartError::NoBars)?;
    let span = if hi > lo {
        hi - lo
    } else {
        hi.abs().max(1.0) * 0.01
    };
    let y_lo = lo - span * (VOLUME_SHARE + 0.05);
    let y_hi = hi + span * 0.04;
    let mut chart = panel_chart(area, n, ticks, y_lo..y_hi, bottom)?;
    // No price labels beside the volume strip at the bottom of the panel.
    draw_mesh(&mut chart, bars, ticks.len(), 8, &|v| {
        if *v >= lo - span * 0.02 {
            theme::price(*v)
        } else {
            String::new()
        }
    })?;

    let body = bar_width(&chart, n);
    let max_vol = bars.iter().map(|b| b.volume).fold(0.0, f64::max);
    if max_vol > 0.0 {
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let top = y_lo + span * VOLUME_SHARE * b.volume / max_vol;
                let color = if b.close >= b.open {
                    theme::UP
                } else {
                    theme::DOWN
                };
                bar_column(i as f64, y_lo, top, color.mix(0.35), body)
            }))
            .map_err(draw_err)?;
    }

    draw_overlays(&mut chart, &overlays, series, n)?;

    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            CandleStick::new(
                i as f64,
                b.open,
                b.high,
                b.low,
                b.close,
                theme::UP.filled(),
                theme::DOWN.filled(),
                body,
            )
        }))
        .map_err(draw_err)?;

    if let Some(last) = bars.last() {
        let color = if last.close >= last.open {
            theme::UP
        } else {
            theme::DOWN
        };
        let x = chart.x_range();
        chart
            .draw_series(DashedLineSeries::new(
                [(x.start, last.close), (x.end, last.close)],
                4,
                4,
                color.stroke_width(1),
            ))
            .map_err(draw_err)?;
        // A price tag on the axis, as trading terminals show the last price.
        let (px, py) = chart.backend_coord(&(x.end, last.close));
        root.draw(&Rectangle::new(
            [(px + 1, py - 11), (px + RIGHT_AXIS as i32 - 6, py + 11)],
            color.filled(),
        ))
        .map_err(draw_err)?;
        root.draw(&Text::new(
            theme::price(last.close),
            (px + 8, py),
            font(14.0)
                .color(&theme::BACKGROUND)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(draw_err)?;
    }
    draw_legend(&mut chart)
}

fn draw_overlays<'a, 'b: 'a>(
    chart: &mut Ctx<'a, 'b>,
    overlays: &[&IndicatorSeries],
    all: &[IndicatorSeries],
    n: usize,
) -> Result<(), ChartError> {
    let mut palette = theme::PALETTE.iter().cycle();
    let mut done: Vec<&str> = Vec::new();
    for s in overlays {
        if done.contains(&s.name.as_str()) {
            continue;
        }
        match s.indicator.as_str() {
            "bb" => {
                let band: Vec<&IndicatorSeries> = overlays
                    .iter()
                    .copied()
                    .filter(|o| o.indicator == "bb" && params(&o.name) == params(&s.name))
                    .collect();
                draw_bollinger(chart, &band, n)?;
                done.extend(band.iter().map(|b| b.name.as_str()));
            }
            // The direction series (+1/-1, `supertrend_direction_*`, usually hidden)
            // only colours the line.
            "supertrend" if s.name.contains("_dir") => {}
            "supertrend" => {
                let dir = all.iter().find(|o| {
                    o.indicator == "supertrend"
                        && o.name.contains("_dir")
                        && params(&o.name) == params(&s.name)
                });
                draw_supertrend(chart, s, dir, n)?;
                done.push(&s.name);
            }
            _ => {
                let color = match s.indicator.as_str() {
                    "sma" => theme::SMA,
                    "ema" => theme::EMA,
                    _ => *palette.next().unwrap_or(&theme::SMA),
                };
                draw_line(chart, s, n, color, 2)?;
                done.push(&s.name);
            }
        }
    }
    Ok(())
}

/// The parameter suffix of a series name: `bb_upper_20_2` → `20_2`.
fn params(name: &str) -> String {
    name.split('_')
        .filter(|t| t.parse::<f64>().is_ok())
        .collect::<Vec<_>>()
        .join("_")
}

/// A readable legend name: `macd_signal_12_26_9` → `MACD signal (12, 26, 9)`.
pub(crate) fn display_name(s: &IndicatorSeries) -> String {
    let mut words = Vec::new();
    let mut nums = Vec::new();
    for (k, t) in s.name.split('_').enumerate() {
        if t.parse::<f64>().is_ok() {
            nums.push(t);
        } else if k == 0 {
            words.push(t.to_uppercase());
        } else if !(k == 1 && t.eq_ignore_ascii_case(&s.indicator)) {
            words.push(t.to_string());
        }
    }
    if nums.is_empty() {
        words.join(" ")
    } else {
        format!("{} ({})", words.join(" "), nums.join(", "))
    }
}

fn with_latest(label: String, s: &IndicatorSeries) -> String {
    match s.latest() {
        Some(v) => format!("{label}  {}", theme::price(v)),
        None => label,
    }
}

fn draw_line<'a, 'b: 'a>(
    chart: &mut Ctx<'a, 'b>,
    s: &IndicatorSeries,
    n: usize,
    color: RGBColor,
    width: u32,
) -> Result<(), ChartError> {
    let mut first = true;
    for run in runs(s.values.iter(), n) {
        let anno = chart
            .draw_series(LineSeries::new(run, color.stroke_width(width)))
            .map_err(draw_err)?;
        if first {
            anno.label(with_latest(display_name(s), s))
                .legend(legend_line(color));
            first = false;
        }
    }
    Ok(())
}

fn draw_bollinger<'a, 'b: 'a>(
    chart: &mut Ctx<'a, 'b>,
    band: &[&IndicatorSeries],
    n: usize,
) -> Result<(), ChartError> {
    let find = |part: &str| band.iter().find(|s| s.name.contains(part)).copied();
    let (upper, middle, lower) = (find("_upper_"), find("_middle_"), find("_lower_"));
    if let (Some(u), Some(l)) = (upper, lower) {
        let paired = u.values.iter().zip(l.values.iter()).map(|(a, b)| a.and(b));
        for run in runs(paired, n) {
            let (start, end) = (run[0].0 as usize, run[run.len() - 1].0 as usize);
            let mut poly: Vec<(f64, f64)> = (start..=end)
                .filter_map(|i| u.values.get(i).map(|v| (i as f64, v)))
                .collect();
            poly.extend(
                (start..=end)
                    .rev()
                    .filter_map(|i| l.values.get(i).map(|v| (i as f64, v))),
            );
            chart
                .draw_series(std::iter::once(Polygon::new(
                    poly,
                    theme::BAND.mix(0.08).filled(),
                )))
                .map_err(draw_err)?;
        }
    }
    if let Some(m) = middle {
        for run in runs(m.values.iter(), n) {
            chart
                .draw_series(DashedLineSeries::new(
                    run,
                    6,
                    4,
                    theme::BAND.mix(0.7).stroke_width(1),
                ))
                .map_err(draw_err)?;
        }
    }
    let mut first = true;
    for s in [upper, lower].into_iter().flatten() {
        for run in runs(s.values.iter(), n) {
            let anno = chart
                .draw_series(LineSeries::new(run, theme::BAND.stroke_width(1)))
                .map_err(draw_err)?;
            if first {
                let label = format!("BB ({})", params(&s.name).replace('_', ", "));
                let last = match (
                    upper.and_then(|u| u.latest()),
                    lower.and_then(|l| l.latest()),
                ) {
                    (Some(a), Some(b)) => {
                        format!("{label}  {} / {}", theme::price(a), theme::price(b))
                    }
                    _ => label,
                };
                anno.label(last).legend(legend_line(theme::BAND));
                first = false;
            }
        }
    }
    Ok(())
}

/// Supertrend drawn green while the trend is up and red while down, broken at each flip.
fn draw_supertrend<'a, 'b: 'a>(
    chart: &mut Ctx<'a, 'b>,
    value: &IndicatorSeries,
    dir: Option<&IndicatorSeries>,
    n: usize,
) -> Result<(), ChartError> {
    let up_at = |i: usize| -> bool { dir.and_then(|d| d.values.get(i)).is_none_or(|d| d > 0.0) };
    let mut segments: Vec<(bool, Vec<(f64, f64)>)> = Vec::new();
    for run in runs(value.values.iter(), n) {
        for (x, y) in run {
            let up = up_at(x as usize);
            match segments.last_mut() {
                Some((d, pts)) if *d == up && pts.last().is_some_and(|p| x - p.0 == 1.0) => {
                    pts.push((x, y));
                }
                _ => segments.push((up, vec![(x, y)])),
            }
        }
    }
    let label = with_latest(display_name(value), value);
    let mut labelled = false;
    for (up, pts) in segments {
        let color = if up {
            theme::TREND_UP
        } else {
            theme::TREND_DOWN
        };
        let anno = chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(draw_err)?;
        if !labelled {
            anno.label(label.clone()).legend(|(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (9, 0)], theme::TREND_UP.stroke_width(3))
                    + PathElement::new(vec![(9, 0), (18, 0)], theme::TREND_DOWN.stroke_width(3))
            });
            labelled = true;
        }
    }
    Ok(())
}

fn draw_sub_panel(
    root: &Area<'_>,
    area: &Area<'_>,
    bars: &[Bar],
    panel: &SubPanel<'_>,
    ticks: &[usize],
    bottom: bool,
) -> Result<(), ChartError> {
    let n = bars.len();
    match panel.indicator {
        "rsi" => draw_rsi(root, area, bars, panel, ticks, bottom),
        "macd" => draw_macd(area, bars, panel, ticks, bottom),
        _ => {
            let (lo, hi) = finite_range(values_of(&panel.series, n)).unwrap_or((0.0, 1.0));
            let pad = if hi > lo { (hi - lo) * 0.08 } else { 1.0 };
            let mut chart = panel_chart(area, n, ticks, (lo - pad)..(hi + pad), bottom)?;
            draw_mesh(&mut chart, bars, ticks.len(), 4, &|v| theme::compact(*v))?;
            for (s, color) in panel.series.iter().zip(theme::PALETTE.iter().cycle()) {
                draw_line(&mut chart, s, n, *color, 2)?;
            }
            draw_legend(&mut chart)
        }
    }
}

fn draw_rsi(
    root: &Area<'_>,
    area: &Area<'_>,
    bars: &[Bar],
    panel: &SubPanel<'_>,
    ticks: &[usize],
    bottom: bool,
) -> Result<(), ChartError> {
    let n = bars.len();
    let mut chart = panel_chart(area, n, ticks, 0.0..100.0, bottom)?;
    draw_mesh(&mut chart, bars, ticks.len(), 3, &|v| format!("{v:.0}"))?;
    let x = chart.x_range();
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(x.start, 30.0), (x.end, 70.0)],
            theme::RSI.mix(0.06).filled(),
        )))
        .map_err(draw_err)?;
    for level in [30.0, 70.0] {
        chart
            .draw_series(DashedLineSeries::new(
                [(x.start, level), (x.end, level)],
                6,
                4,
                theme::REFERENCE.stroke_width(1),
            ))
            .map_err(draw_err)?;
        let (px, py) = chart.backend_coord(&(x.end, level));
        root.draw(&Text::new(
            format!("{level:.0}"),
            (px + 8, py),
            font(14.0)
                .color(&theme::REFERENCE)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(draw_err)?;
    }
    for s in &panel.series {
        draw_line(&mut chart, s, n, theme::RSI, 2)?;
    }
    draw_legend(&mut chart)
}

fn draw_macd(
    area: &Area<'_>,
    bars: &[Bar],
    panel: &SubPanel<'_>,
    ticks: &[usize],
    bottom: bool,
) -> Result<(), ChartError> {
    let n = bars.len();
    let (lo, hi) = finite_range(values_of(&panel.series, n).chain([0.0])).unwrap_or((-1.0, 1.0));
    let pad = if hi > lo { (hi - lo) * 0.08 } else { 1.0 };
    let mut chart = panel_chart(area, n, ticks, (lo - pad)..(hi + pad), bottom)?;
    draw_mesh(&mut chart, bars, ticks.len(), 4, &|v| theme::compact(*v))?;
    let x = chart.x_range();
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(x.start, 0.0), (x.end, 0.0)],
            theme::REFERENCE.stroke_width(1),
        )))
        .map_err(draw_err)?;
    let body = bar_width(&chart, n);
    let hist = panel.series.iter().find(|s| s.name.contains("_hist"));
    if let Some(h) = hist {
        let mut prev: Option<f64> = None;
        let mut bars_out = Vec::new();
        for (i, v) in h.values.iter().take(n).enumerate() {
            let Some(v) = v.filter(|v| v.is_finite()) else {
                prev = None;
                continue;
            };
            // Darker while the histogram grows away from zero, lighter while it shrinks.
            let growing = prev.is_none_or(|p| v.abs() >= p.abs());
            let color = if v >= 0.0 { theme::UP } else { theme::DOWN };
            let alpha = if growing { 0.85 } else { 0.4 };
            bars_out.push(bar_column(i as f64, 0.0, v, color.mix(alpha), body));
            prev = Some(v);
        }
        chart
            .draw_series(bars_out)
            .map_err(draw_err)?
            .label(with_latest(display_name(h), h))
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 18, y + 5)], theme::UP.mix(0.85).filled())
            });
    }
    for s in panel.series.iter().filter(|s| !s.name.contains("_hist")) {
        let color = if s.name.contains("_signal") {
            theme::SIGNAL
        } else {
            theme::MACD
        };
        draw_line(&mut chart, s, n, color, 2)?;
    }
    draw_legend(&mut chart)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, indicator: &str) -> IndicatorSeries {
        IndicatorSeries {
            name: name.into(),
            indicator: indicator.into(),
            panel: Panel::Own,
            values: vec![None, Some(1.0), Some(2.0), None, Some(3.0)].into(),
        }
    }

    #[test]
    fn legend_names_spell_out_output_and_parameters() {
        assert_eq!(display_name(&series("rsi_14", "rsi")), "RSI (14)");
        assert_eq!(
            display_name(&series("macd_signal_12_26_9", "macd")),
            "MACD signal (12, 26, 9)"
        );
        assert_eq!(
            display_name(&series("bb_upper_20_2", "bb")),
            "BB upper (20, 2)"
        );
        assert_eq!(display_name(&series("vwap", "vwap")), "VWAP");
    }

    #[test]
    fn warm_up_gaps_split_a_series_into_runs() {
        let s = series("x_1", "x");

        let r = runs(s.values.iter(), 5);

        assert_eq!(r, vec![vec![(1.0, 1.0), (2.0, 2.0)], vec![(4.0, 3.0)]]);
    }

    #[test]
    fn own_panels_are_ordered_rsi_then_macd_then_the_rest() {
        let all = [
            series("atr_14", "atr"),
            series("macd_12_26_9", "macd"),
            series("rsi_14", "rsi"),
            series("macd_signal_12_26_9", "macd"),
        ];

        let p = sub_panels(&all);

        let order: Vec<(&str, usize)> = p.iter().map(|p| (p.indicator, p.series.len())).collect();
        assert_eq!(order, vec![("rsi", 1), ("macd", 2), ("atr", 1)]);
    }
}
