//! One 500-bar daily chart with every default indicator, rendered to PNG bytes, and the
//! same chart as raw RGB (rendering alone). Times are the thread's CPU time
//! (`bench/thread_cpu.rs`), as on the Python side (bench/charts_mplfinance.py).
//!
//! With `TRADEFLOW_BENCH_CSV_DIR` set, the bench writes its bars there
//! (`chart_bars_500.csv`, for mplfinance) and its PNG (`chart_500.png`, whose size the
//! table reports).

#[path = "../../../bench/thread_cpu.rs"]
mod thread_cpu;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;
use criterion::{Criterion, criterion_group, criterion_main};
use thread_cpu::ThreadCpu;
use tradeflow_charts::{ChartOptions, chart_title, render_png, render_rgb};
use tradeflow_core::Timeframe;
use tradeflow_core::indicators::{IndicatorSpec, compute_all};
use tradeflow_core::synthetic::daily_bars;

fn render_500_bars(c: &mut Criterion<ThreadCpu>) {
    let end = NaiveDate::from_ymd_opt(2024, 12, 31).unwrap_or_default();
    let bars = daily_bars(265598, end, 500);
    let series = compute_all(&IndicatorSpec::defaults(), &bars).expect("500 bars are enough");
    let opts = ChartOptions {
        title: chart_title("AAPL", Timeframe::Daily, &bars),
        ..ChartOptions::default()
    };
    if let Ok(dir) = std::env::var("TRADEFLOW_BENCH_CSV_DIR") {
        let dir = Path::new(&dir);
        let png = render_png(&bars, &series, &opts).expect("chart renders");
        std::fs::write(dir.join("chart_500.png"), png).expect("write png");
        let mut f = std::fs::File::create(dir.join("chart_bars_500.csv")).expect("create csv");
        writeln!(f, "date,open,high,low,close,volume").expect("write");
        for b in &bars {
            writeln!(
                f,
                "{},{},{},{},{},{}",
                b.date(),
                b.open,
                b.high,
                b.low,
                b.close,
                b.volume
            )
            .expect("write");
        }
    }
    let mut group = c.benchmark_group("chart");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("png_500_bars_all_panels", |b| {
        b.iter(|| render_png(&bars, &series, &opts).map(|png| png.len()))
    });
    group.bench_function("rgb_500_bars_all_panels", |b| {
        b.iter(|| render_rgb(&bars, &series, &opts).map(|rgb| rgb.len()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = render_500_bars
}
criterion_main!(benches);
