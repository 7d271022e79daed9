//! Structural checks on rendered charts: the PNG decodes at the asked size, every
//! panel has content in its own colours, candles of both colours are drawn, and the
//! title is text from the embedded font.

mod support;

use plotters::style::RGBColor;
use tradeflow_charts::theme::{DOWN, MACD, RSI, SIGNAL, TREND_DOWN, TREND_UP, UP};
use tradeflow_charts::{ChartError, ChartOptions, chart_title, panel_layout, render_png};
use tradeflow_core::Timeframe;
use tradeflow_core::indicators::IndicatorSeries;

struct Image {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Image {
    /// Decodes with the palette expanded to RGB (what a viewer shows).
    fn decode(png_bytes: &[u8]) -> Image {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size().expect("frame size")];
        let info = reader.next_frame(&mut buf).expect("png frame");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        Image {
            width: info.width,
            height: info.height,
            rgb: buf,
        }
    }

    fn pixels(&self, rows: std::ops::Range<u32>) -> impl Iterator<Item = [u8; 3]> + '_ {
        let w = self.width as usize;
        self.rgb[rows.start as usize * w * 3..rows.end as usize * w * 3]
            .chunks_exact(3)
            .map(|p| [p[0], p[1], p[2]])
    }

    /// Share of pixels in the rows that are not the white background.
    fn ink(&self, rows: std::ops::Range<u32>) -> f64 {
        let total = (rows.end - rows.start) as f64 * self.width as f64;
        self.pixels(rows).filter(|p| *p != [255, 255, 255]).count() as f64 / total
    }

    /// Pixels in the rows of exactly this colour.
    fn count(&self, rows: std::ops::Range<u32>, c: RGBColor) -> usize {
        self.pixels(rows).filter(|p| *p == [c.0, c.1, c.2]).count()
    }

    /// Near-black pixels (text is drawn in a dark grey with antialiasing).
    fn dark(&self, rows: std::ops::Range<u32>) -> usize {
        self.pixels(rows)
            .filter(|p| p.iter().all(|&v| v < 90))
            .count()
    }
}

fn render(series: &[IndicatorSeries], width: u32, height: u32) -> (Vec<u8>, Image) {
    let bars = support::bars(500);
    let opts = ChartOptions {
        width,
        height,
        title: chart_title("AAPL", Timeframe::Daily, &bars),
    };
    let png = render_png(&bars, series, &opts).expect("chart renders");
    let img = Image::decode(&png);
    (png, img)
}

fn rows(layout: &[(String, std::ops::Range<u32>)], name: &str) -> std::ops::Range<u32> {
    layout
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, r)| r.clone())
        .unwrap_or_else(|| panic!("no {name} panel in {layout:?}"))
}

#[test]
fn full_chart_has_every_panel_with_its_content() {
    let bars = support::bars(500);
    let series = support::all_series(&bars);

    let (png, img) = render(&series, 1600, 900);

    if let Ok(path) = std::env::var("CHART_EXAMPLE_OUT") {
        std::fs::write(path, &png).unwrap();
    }
    assert_eq!((img.width, img.height), (1600, 900));
    let layout = panel_layout(900, &series);
    let names: Vec<&str> = layout.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["price", "rsi", "macd", "atr"]);
    let price = rows(&layout, "price");
    assert!(img.count(price.clone(), UP) > 2_000, "rising candles drawn");
    assert!(
        img.count(price.clone(), DOWN) > 2_000,
        "falling candles drawn"
    );
    assert!(
        img.count(price.clone(), TREND_UP) > 200,
        "supertrend up segments"
    );
    assert!(
        img.count(price.clone(), TREND_DOWN) > 200,
        "supertrend down segments"
    );
    assert!(img.ink(price) > 0.15);
    assert!(
        img.count(rows(&layout, "rsi"), RSI) > 1_000,
        "rsi line drawn"
    );
    let macd = rows(&layout, "macd");
    assert!(img.count(macd.clone(), MACD) > 1_000, "macd line drawn");
    assert!(img.count(macd, SIGNAL) > 1_000, "signal line drawn");
    for (name, r) in &layout {
        assert!(img.ink(r.clone()) > 0.03, "{name} panel is nearly empty");
    }
}

#[test]
fn a_full_chart_is_compact_and_lossless() {
    let bars = support::bars(500);
    let series = support::all_series(&bars);

    let (png, img) = render(&series, 1600, 900);

    // Raw RGB is 4.3 MB; RGB at the encoder's fast setting wrote 625 KB, mplfinance
    // ≈ 240 KB; the bound is 125 KB.
    assert!(png.len() <= 125_000, "{} bytes", png.len());
    let raw = tradeflow_charts::render_rgb(
        &bars,
        &series,
        &ChartOptions {
            width: 1600,
            height: 900,
            title: chart_title("AAPL", Timeframe::Daily, &bars),
        },
    )
    .unwrap();
    assert!(
        img.rgb == raw,
        "the PNG decodes to exactly the rendered pixels"
    );
}

#[test]
fn title_is_drawn_with_the_embedded_font() {
    // The font is registered under a family name no system has, so any text at all
    // proves it came from the bytes compiled into the binary.
    let (_, img) = render(&[], 1600, 900);

    assert!(img.dark(0..48) > 1_000, "title text missing");
}

#[test]
fn chart_without_indicators_is_one_price_panel_with_candles() {
    let (_, img) = render(&[], 1600, 900);

    let layout = panel_layout(900, &[]);
    assert_eq!(layout.len(), 1);
    assert_eq!(layout[0].1.end, 900);
    assert!(img.count(48..900, UP) > 2_000);
    assert!(img.count(48..900, DOWN) > 2_000);
    assert_eq!(img.count(48..900, RSI), 0);
}

#[test]
fn chart_renders_at_other_sizes() {
    let bars = support::bars(500);

    let (_, img) = render(&support::all_series(&bars), 800, 600);

    assert_eq!((img.width, img.height), (800, 600));
    assert!(img.ink(0..600) > 0.1);
}

#[test]
fn no_bars_or_a_tiny_canvas_is_an_error() {
    let opts = ChartOptions::default();
    assert!(matches!(
        render_png(&[], &[], &opts),
        Err(ChartError::NoBars)
    ));

    let tiny = ChartOptions {
        width: 100,
        height: 50,
        ..opts
    };
    let bars = support::bars(10);
    assert!(matches!(
        render_png(&bars, &[], &tiny),
        Err(ChartError::TooSmall { .. })
    ));
}

#[test]
fn series_longer_than_the_bars_are_cut_not_an_error() {
    let bars = support::bars(60);
    let mut series = support::all_series(&support::bars(80));
    series.truncate(1);

    let png = render_png(&bars, &series, &ChartOptions::default());

    assert!(png.is_ok());
}

#[test]
fn catalogue_defaults_draw_every_panel_and_both_supertrend_colours() {
    let bars = support::bars(500);
    let series = tradeflow_core::indicators::compute_all(
        &tradeflow_core::indicators::IndicatorSpec::defaults(),
        &bars,
    )
    .unwrap();

    let (png, img) = render(&series, 1600, 900);

    if let Ok(path) = std::env::var("CHART_CATALOGUE_OUT") {
        std::fs::write(path, &png).unwrap();
    }
    let layout = panel_layout(900, &series);
    let names: Vec<&str> = layout.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["price", "rsi", "macd", "atr"]);
    let price = rows(&layout, "price");
    assert!(img.count(price.clone(), TREND_UP) > 200);
    assert!(img.count(price, TREND_DOWN) > 200);
    for (name, r) in &layout {
        assert!(img.ink(r.clone()) > 0.03, "{name} panel is nearly empty");
    }
}

#[test]
fn a_full_chart_is_an_indexed_png_whose_palette_holds_every_rendered_colour() {
    let bars = support::bars(500);
    let series = support::all_series(&bars);
    let opts = ChartOptions {
        width: 1600,
        height: 900,
        title: chart_title("AAPL", Timeframe::Daily, &bars),
    };

    let png_bytes = render_png(&bars, &series, &opts).unwrap();
    let raw = tradeflow_charts::render_rgb(&bars, &series, &opts).unwrap();

    // Read without expansion: the header, the palette and one index per pixel.
    let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes.as_slice()))
        .read_info()
        .unwrap();
    let mut indices = vec![0; reader.output_buffer_size().expect("frame size")];
    let frame = reader.next_frame(&mut indices).unwrap();
    let palette = reader.info().palette.clone().expect("a PLTE chunk");
    assert_eq!(frame.color_type, png::ColorType::Indexed);
    assert_eq!(frame.bit_depth, png::BitDepth::Eight);
    assert!(palette.len() <= 256 * 3 && palette.len().is_multiple_of(3));
    let mut distinct: Vec<[u8; 3]> = raw.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(
        distinct.len() > 100,
        "{} colours: candles, overlays, fills and anti-aliased edges",
        distinct.len()
    );
    // Every index names a palette entry, and looking it up gives the rendered pixel.
    let looked_up: Vec<u8> = indices[..frame.buffer_size()]
        .iter()
        .flat_map(|&i| palette[usize::from(i) * 3..usize::from(i) * 3 + 3].to_vec())
        .collect();
    assert!(
        looked_up == raw,
        "palette lookup differs from the rendered pixels"
    );
}

#[test]
fn jobs_render_concurrently_to_the_same_bytes_as_one_by_one() {
    let daily = support::bars(500);
    let weekly = tradeflow_core::market::resample_weekly(&daily);
    let jobs: Vec<tradeflow_charts::ChartJob> =
        [(Timeframe::Daily, daily), (Timeframe::Weekly, weekly)]
            .into_iter()
            .map(|(timeframe, bars)| tradeflow_charts::ChartJob {
                title: chart_title("AAPL", timeframe, &bars),
                series: support::all_series(&bars),
                bars,
                timeframe,
            })
            .collect();

    let together = tradeflow_charts::render_jobs_png(&jobs);

    assert_eq!(together.len(), 2);
    for (job, png) in jobs.iter().zip(together) {
        let opts = ChartOptions {
            title: job.title.clone(),
            ..ChartOptions::default()
        };
        assert!(png.unwrap() == render_png(&job.bars, &job.series, &opts).unwrap());
    }
}
