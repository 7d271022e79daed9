//! `tradeflow chart`: renders the workflow's chart for a local OHLCV CSV to a PNG,
//! with the catalogue's default indicators (as a strategy without a list gets them).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use tradeflow_charts::{ChartOptions, chart_title, compute_available, render_png};
use tradeflow_core::Timeframe;
use tradeflow_core::indicators::IndicatorSpec;
use tradeflow_core::market::resample_weekly;

use crate::indicators::read_bars_csv;

#[derive(Args)]
pub struct ChartArgs {
    /// OHLCV CSV with a header naming date,open,high,low,close,volume (any order).
    #[arg(long)]
    csv: PathBuf,
    /// Where to write the PNG.
    #[arg(long)]
    out: PathBuf,
    /// Resamples the daily bars to weeks and charts those (indicators recomputed).
    #[arg(long)]
    weekly: bool,
    /// Symbol for the title; defaults to the CSV's file stem.
    #[arg(long)]
    symbol: Option<String>,
    #[arg(long, default_value_t = 1600)]
    width: u32,
    #[arg(long, default_value_t = 900)]
    height: u32,
}

pub fn run(args: ChartArgs) -> anyhow::Result<()> {
    let daily = read_bars_csv(&args.csv)?;
    let (timeframe, bars) = if args.weekly {
        (Timeframe::Weekly, resample_weekly(&daily))
    } else {
        (Timeframe::Daily, daily)
    };
    // Same rule as the weekly chart in the workflow: too few bars skips an indicator.
    let (series, skipped) = compute_available(&IndicatorSpec::defaults(), &bars)?;
    for note in skipped {
        eprintln!("{note}");
    }
    let symbol = args.symbol.unwrap_or_else(|| {
        args.csv
            .file_stem()
            .map(|s| s.to_string_lossy().to_uppercase())
            .unwrap_or_default()
    });
    let opts = ChartOptions {
        width: args.width,
        height: args.height,
        title: chart_title(&symbol, timeframe, &bars),
    };
    let started = Instant::now();
    let png = render_png(&bars, &series, &opts)?;
    let elapsed = started.elapsed();
    std::fs::write(&args.out, &png).with_context(|| format!("write {}", args.out.display()))?;
    eprintln!(
        "{}: {} bars, {} series, {}x{}, {} bytes, rendered in {:.1} ms",
        args.out.display(),
        bars.len(),
        series.len(),
        opts.width,
        opts.height,
        png.len(),
        elapsed.as_secs_f64() * 1e3
    );
    Ok(())
}
