//! One chart as one process: reads an OHLCV CSV (date,open,high,low,close,volume),
//! computes the default indicators and writes the PNG. bench/run.sh measures this
//! process's peak RSS against mplfinance's for the same bars.
//!
//! `cargo run --release -p tradeflow-charts --example chart_png -- bars.csv chart.png`

use chrono::NaiveDate;
use tradeflow_charts::{ChartOptions, chart_title, render_png};
use tradeflow_core::Timeframe;
use tradeflow_core::indicators::{IndicatorSpec, compute_all};
use tradeflow_core::market::Bar;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(csv), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: chart_png BARS.csv OUT.png".into());
    };
    let mut bars = Vec::new();
    for line in std::fs::read_to_string(csv)?.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let num = |i: usize| {
            f.get(i)
                .ok_or("short row")?
                .parse::<f64>()
                .map_err(|e| e.to_string())
        };
        let t = NaiveDate::parse_from_str(f[0], "%Y-%m-%d")?
            .and_hms_opt(0, 0, 0)
            .ok_or("bad date")?
            .and_utc()
            .timestamp_millis();
        bars.push(Bar {
            t,
            open: num(1)?,
            high: num(2)?,
            low: num(3)?,
            close: num(4)?,
            volume: num(5)?,
        });
    }
    let series = compute_all(&IndicatorSpec::defaults(), &bars)?;
    let opts = ChartOptions {
        title: chart_title("AAPL", Timeframe::Daily, &bars),
        ..ChartOptions::default()
    };
    std::fs::write(out, render_png(&bars, &series, &opts)?)?;
    Ok(())
}
