use chrono::NaiveDate;
use tradeflow_charts::{ChartOptions, render_png};
use tradeflow_core::indicators::{IndicatorSpec, compute_all};
use tradeflow_core::synthetic::daily_bars;
fn main() {
    let bars = daily_bars(265598, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap(), 500);
    let series = compute_all(&IndicatorSpec::defaults(), &bars).unwrap();
    let opts = ChartOptions {
        title: "AAPL daily".into(),
        ..ChartOptions::default()
    };
    for _ in 0..5 {
        std::hint::black_box(render_png(&bars, &series, &opts).unwrap());
    }
}
