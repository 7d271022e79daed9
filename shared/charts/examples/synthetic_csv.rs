//! Prints N synthetic daily bars (AAPL's conid, ending 2024-12-31) as an OHLCV CSV:
//! the input the chart benchmarks share with the Python baseline.
//!
//! `cargo run -p tradeflow-charts --example synthetic_csv -- 500 > bars.csv`

use chrono::NaiveDate;
use tradeflow_core::synthetic::daily_bars;

fn main() {
    let n = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let end = NaiveDate::from_ymd_opt(2024, 12, 31).unwrap_or_default();
    println!("date,open,high,low,close,volume");
    for b in daily_bars(265598, end, n) {
        println!(
            "{},{},{},{},{},{}",
            b.date(),
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume
        );
    }
}
