//! One 500-bar daily chart with every default indicator, rendered to PNG bytes.

use chrono::NaiveDate;
use criterion::{Criterion, criterion_group, criterion_main};
use tradeflow_charts::{ChartOptions, chart_title, render_png};
use tradeflow_core::Timeframe;
use tradeflow_core::indicators::{IndicatorSpec, compute};
use tradeflow_core::synthetic::daily_bars;

fn render_500_bars(c: &mut Criterion) {
    let end = NaiveDate::from_ymd_opt(2024, 12, 31).unwrap_or_default();
    let bars = daily_bars(265598, end, 500);
    let mut series = Vec::new();
    for spec in IndicatorSpec::defaults() {
        match compute(&spec, &bars) {
            Ok(s) => series.extend(s),
            Err(e) => eprintln!("bench chart lacks {}: {e}", spec.kind()),
        }
    }
    let opts = ChartOptions {
        title: chart_title("AAPL", Timeframe::Daily, &bars),
        ..ChartOptions::default()
    };
    c.bench_function("render_png_500_bars_all_panels", |b| {
        b.iter(|| render_png(&bars, &series, &opts).map(|png| png.len()))
    });
}

criterion_group!(benches, render_500_bars);
criterion_main!(benches);
