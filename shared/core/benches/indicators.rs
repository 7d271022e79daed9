//! The default indicators one by one over 1,000,000 bars held as columns (TA-Lib's
//! input: arrays already in memory), the default set (`IndicatorSpec::defaults()`, 12
//! series) over 500 and 1,000,000 bars from `Bar`s as the functions hold them, and the
//! whole catalogue.
//!
//! Times are the thread's CPU time (`bench/thread_cpu.rs`), as on the Python side.
//! `cargo bench -p tradeflow-core --bench indicators`; bench/run.sh runs it back to back
//! with bench/indicators_talib.py and prints the ratios. With `TRADEFLOW_BENCH_CSV_DIR`
//! set, the bench also writes its inputs there (`bars_<n>.csv`) so that the Python side
//! times TA-Lib on the very same bars, and the 1,000,000-bar default series
//! (`series_<name>.f64`, little-endian, NaN in the warm-up) so that it can check every
//! value against TA-Lib's.

#[path = "../../../bench/thread_cpu.rs"]
mod thread_cpu;

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tradeflow_core::indicators::{Columns, IndicatorSpec, compute_all, compute_all_columns};
use tradeflow_core::market::Bar;
use tradeflow_core::synthetic::daily_bars;

use thread_cpu::ThreadCpu;

const LARGE: usize = 1_000_000;

fn bars(n: usize) -> Vec<Bar> {
    // Weekdays only: n bars span about n·7/5 calendar days after the 2000-01-03 epoch.
    let start = NaiveDate::from_ymd_opt(2000, 1, 3).expect("valid date");
    let end = start + chrono::Duration::days((n as i64 / 5 + 2) * 7);
    let bars = daily_bars(265_598, end, n);
    assert_eq!(bars.len(), n);
    bars
}

fn dump(dir: &Path, n: usize, bars: &[Bar]) {
    let path = dir.join(format!("bars_{n}.csv"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create csv"));
    writeln!(f, "date,open,high,low,close,volume").expect("write");
    for b in bars {
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

fn dump_series(dir: &Path, bars: &[Bar]) {
    for s in compute_all(&IndicatorSpec::defaults(), bars).expect("valid specs") {
        let bytes: Vec<u8> = s
            .values
            .as_nan_padded()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        std::fs::write(dir.join(format!("series_{}.f64", s.name)), bytes).expect("write");
    }
}

fn catalogue() -> Vec<IndicatorSpec> {
    let mut specs = IndicatorSpec::defaults();
    specs.extend([
        IndicatorSpec::Stochastic {
            fastk_period: 5,
            slowk_period: 3,
            slowd_period: 3,
        },
        IndicatorSpec::Obv {},
        IndicatorSpec::Vwap { period: 20 },
    ]);
    specs
}

fn bench(c: &mut Criterion<ThreadCpu>) {
    let small = bars(500);
    let large = bars(LARGE);
    if let Ok(dir) = std::env::var("TRADEFLOW_BENCH_CSV_DIR") {
        let dir = Path::new(&dir);
        dump(dir, 500, &small);
        dump(dir, LARGE, &large);
        dump_series(dir, &large);
    }
    let column = |f: fn(&Bar) -> f64| large.iter().map(f).collect::<Vec<f64>>();
    let (high, low, close, volume) = (
        column(|b| b.high),
        column(|b| b.low),
        column(|b| b.close),
        column(|b| b.volume),
    );
    let columns = Columns {
        high: &high,
        low: &low,
        close: &close,
        volume: &volume,
    };

    let mut one = c.benchmark_group("indicator");
    one.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for spec in IndicatorSpec::defaults() {
        let specs = [spec];
        one.bench_function(BenchmarkId::new(specs[0].label(), LARGE), |b| {
            b.iter(|| compute_all_columns(black_box(&specs), black_box(&columns)).expect("valid"));
        });
    }
    one.finish();

    let mut set = c.benchmark_group("defaults");
    set.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let defaults = IndicatorSpec::defaults();
    set.bench_function(BenchmarkId::new("bars", 500), |b| {
        b.iter(|| compute_all(black_box(&defaults), black_box(&small)).expect("valid specs"));
    });
    set.bench_function(BenchmarkId::new("columns", LARGE), |b| {
        b.iter(|| compute_all_columns(black_box(&defaults), black_box(&columns)).expect("valid"));
    });
    set.bench_function(BenchmarkId::new("bars", LARGE), |b| {
        b.iter(|| compute_all(black_box(&defaults), black_box(&large)).expect("valid specs"));
    });
    let all = catalogue();
    set.bench_function(BenchmarkId::new("all_bars", LARGE), |b| {
        b.iter(|| compute_all(black_box(&all), black_box(&large)).expect("valid specs"));
    });
    set.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = bench
}
criterion_main!(benches);
