//! tradeflow-charts: candlestick charts with indicator panels, rendered in memory to
//! PNG with an embedded font (no system fonts, no files), and the plan of which
//! charts a strategy gets (daily, plus weekly resampled from daily on request).

mod axis;
mod canvas;
mod equity;
pub mod fonts;
pub mod plan;
mod render;
pub mod theme;

use thiserror::Error;
use tradeflow_core::indicators::IndicatorSeries;
use tradeflow_core::market::Bar;

pub use axis::month_ticks;
pub use equity::render_equity_png;
pub use plan::{ChartJob, chart_jobs, chart_title, compute_available};
pub use render::panel_layout;

#[derive(Debug, Error)]
pub enum ChartError {
    #[error("no bars to draw")]
    NoBars,
    #[error("chart size {width}x{height} is too small (at least 400x300)")]
    TooSmall { width: u32, height: u32 },
    #[error("the embedded font could not be loaded")]
    Font,
    #[error("drawing failed: {0}")]
    Draw(String),
    #[error("png encoding failed: {0}")]
    Encode(#[from] png::EncodingError),
}

#[derive(Debug, Clone)]
pub struct ChartOptions {
    pub width: u32,
    pub height: u32,
    pub title: String,
}

impl Default for ChartOptions {
    fn default() -> Self {
        Self {
            width: 1600,
            height: 900,
            title: String::new(),
        }
    }
}

/// Renders candles with volume and price overlays, and a panel per own-panel
/// indicator (RSI with 30/70, MACD with zero line, others plain), to PNG bytes.
///
/// The x axis is the bar index, so weekends and holidays leave no gaps. Series are
/// aligned index-for-index with `bars`; values past the last bar are ignored.
///
/// # Errors
/// No bars, a size below 400x300, or a drawing or encoding failure.
pub fn render_png(
    bars: &[Bar],
    series: &[IndicatorSeries],
    opts: &ChartOptions,
) -> Result<Vec<u8>, ChartError> {
    let canvas = render(bars, series, opts)?;
    encode_indexed_png(&canvas, opts.width, opts.height)
}

/// Renders every job's chart to PNG at the default size, each on a thread of its own
/// (a strategy's daily and weekly charts at once; a Lambda with more than 1,769 MB has
/// a second vCPU). Results are in the order of the jobs.
pub fn render_jobs_png(jobs: &[ChartJob]) -> Vec<Result<Vec<u8>, ChartError>> {
    let render = |job: &ChartJob| {
        let opts = ChartOptions {
            title: job.title.clone(),
            ..ChartOptions::default()
        };
        render_png(&job.bars, &job.series, &opts)
    };
    std::thread::scope(|scope| {
        let threads: Vec<_> = jobs
            .iter()
            .map(|job| scope.spawn(move || render(job)))
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(ChartError::Draw("the render thread panicked".into())))
            })
            .collect()
    })
}

/// Renders into a raw RGB buffer (`width * height * 3` bytes, row-major).
///
/// # Errors
/// As [`render_png`], without encoding.
pub fn render_rgb(
    bars: &[Bar],
    series: &[IndicatorSeries],
    opts: &ChartOptions,
) -> Result<Vec<u8>, ChartError> {
    Ok(render(bars, series, opts)?.to_rgb())
}

fn render(
    bars: &[Bar],
    series: &[IndicatorSeries],
    opts: &ChartOptions,
) -> Result<canvas::Canvas, ChartError> {
    if bars.is_empty() {
        return Err(ChartError::NoBars);
    }
    if opts.width < 400 || opts.height < 300 {
        return Err(ChartError::TooSmall {
            width: opts.width,
            height: opts.height,
        });
    }
    fonts::init()?;
    render::draw(bars, series, opts)
}

/// An indexed PNG of the canvas's palette (at most 256 colours, see `canvas.rs`),
/// deflated with the encoder's fast setting (fdeflate) after adaptive row filters.
/// Measured on the 500-bar full chart (bench/run.sh): ≈ 100 KB in ≈ 2 ms, where RGB
/// at the default level took ≈ 20 ms for 125 KB and RGB at the fast setting wrote
/// 600 KB. Every chart goes to S3, into the viewer and, base64-encoded, into each LLM
/// request, so the bytes matter as much as the milliseconds.
fn encode_indexed_png(canvas: &canvas::Canvas, w: u32, h: u32) -> Result<Vec<u8>, ChartError> {
    let mut out = Vec::with_capacity(128 << 10);
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_palette(canvas.palette().concat());
    enc.set_compression(png::Compression::Fast);
    enc.set_filter(png::Filter::Adaptive);
    let mut writer = enc.write_header()?;
    writer.write_image_data(canvas.pixels())?;
    writer.finish()?;
    Ok(out)
}

/// An RGB PNG at the default deflate level without row filters, for images drawn with
/// plotters' bitmap backend (the equity chart).
fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, ChartError> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Balanced);
    enc.set_filter(png::Filter::NoFilter);
    let mut writer = enc.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use tradeflow_core::indicators::{IndicatorSpec, compute_all};
    use tradeflow_core::synthetic::daily_bars;

    use super::*;

    /// The palette never overflows on the full default chart, daily or weekly: every
    /// pixel has exactly the colour it was drawn in (none snapped to a neighbour).
    #[test]
    fn the_default_charts_fit_the_palette_without_snapping() {
        let end = NaiveDate::from_ymd_opt(2024, 12, 31).unwrap_or_default();
        for conid in [265_598, 8_314, 4_391] {
            let daily = daily_bars(conid, end, 500);
            let weekly = tradeflow_core::market::resample_weekly(&daily);
            for bars in [daily, weekly] {
                let series = compute_all(&IndicatorSpec::defaults(), &bars).unwrap();
                let canvas = render(&bars, &series, &ChartOptions::default()).unwrap();
                assert_eq!(canvas.snapped, 0, "conid {conid}, {} bars", bars.len());
            }
        }
    }
}
