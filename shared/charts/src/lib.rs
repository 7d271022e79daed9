//! tradeflow-charts: candlestick charts with indicator panels, rendered in memory to PNG.

use plotters::prelude::*;
use thiserror::Error;
use tradeflow_core::indicators::{IndicatorSeries, Panel};
use tradeflow_core::market::Bar;

#[derive(Debug, Error)]
pub enum ChartError {
    #[error("no bars to draw")]
    NoBars,
    #[error("drawing failed: {0}")]
    Draw(String),
    #[error("png encoding failed: {0}")]
    Encode(String),
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

fn draw_err<E: std::fmt::Debug>(e: E) -> ChartError {
    ChartError::Draw(format!("{e:?}"))
}

/// Renders candles (x = bar index, so weekends leave no gaps) with price overlays.
///
/// # Errors
/// No bars, or a drawing/encoding failure.
pub fn render_png(
    bars: &[Bar],
    series: &[IndicatorSeries],
    opts: &ChartOptions,
) -> Result<Vec<u8>, ChartError> {
    if bars.is_empty() {
        return Err(ChartError::NoBars);
    }
    let (w, h) = (opts.width, opts.height);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let lo = bars.iter().map(|b| b.low).fold(f64::INFINITY, f64::min);
        let hi = bars
            .iter()
            .map(|b| b.high)
            .fold(f64::NEG_INFINITY, f64::max);
        let pad = (hi - lo) * 0.05;
        let mut chart = ChartBuilder::on(&root)
            .margin(20)
            .build_cartesian_2d(0f64..bars.len() as f64, (lo - pad)..(hi + pad))
            .map_err(draw_err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                CandleStick::new(
                    i as f64,
                    b.open,
                    b.high,
                    b.low,
                    b.close,
                    GREEN.filled(),
                    RED.filled(),
                    3,
                )
            }))
            .map_err(draw_err)?;
        for s in series.iter().filter(|s| s.panel == Panel::Price) {
            chart
                .draw_series(LineSeries::new(
                    s.values
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| v.map(|v| (i as f64, v))),
                    &BLUE,
                ))
                .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    encode_png(&rgb, w, h)
}

fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, ChartError> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc
        .write_header()
        .map_err(|e| ChartError::Encode(e.to_string()))?;
    writer
        .write_image_data(rgb)
        .map_err(|e| ChartError::Encode(e.to_string()))?;
    writer
        .finish()
        .map_err(|e| ChartError::Encode(e.to_string()))?;
    Ok(out)
}
