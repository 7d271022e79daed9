//! The default indicator set (`IndicatorSpec::defaults()`, 12 series) and the whole
//! catalogue over 500 and 1,000,000 synthetic daily bars.
//!
//! `cargo bench -p tradeflow-core --bench indicators`. With `TRADEFLOW_BENCH_CSV_DIR`
//! set, the bench also writes its inputs there (`bars_<n>.csv`) so that
//! bench/indicators_talib.py can time TA-Lib on the very same bars.

use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use chrono::NaiveDate;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tradeflow_core::indicators::{IndicatorSpec, compute_all};
use tradeflow_core::market::Bar;
use tradeflow_core::synthetic::daily_bars;

const SIZES: [usize; 2] = [500, 1_000_000];

fn bars(n: usize) -> Vec<Bar> {
    // Weekdays only: n bars span about n·7/5 calendar days after the 2000-01-03 epoch.
    let start = NaiveDate::from_ymd_opt(2000, 1, 3).expect("valid date");
    let end = start + chrono::Duration::days((n as i64 / 5 + 2) * 7);
    let bars = daily_bars(265_598, end, n);
    assert_eq!(bars.len(), n);
    bars
}

fn dump(n: usize, bars: &[Bar]) {
    let Ok(dir) = std::env::var("TRADEFLOW_BENCH_CSV_DIR") else {
        return;
    };
    let path = std::path::Path::new(&dir).join(format!("bars_{n}.csv"));
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

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("indicators");
    for n in SIZES {
        let data = bars(n);
        dump(n, &data);
        if n >= 100_000 {
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(20));
        } else {
            group
                .sample_size(100)
                .measurement_time(Duration::from_secs(5));
        }
        for (label, specs) in [
            ("defaults", IndicatorSpec::defaults()),
            ("all", catalogue()),
        ] {
            group.bench_with_input(BenchmarkId::new(label, n), &data, |b, data| {
                b.iter(|| compute_all(black_box(&specs), black_box(data)).expect("valid specs"));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
