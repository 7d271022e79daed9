//! Which charts a strategy gets: its own timeframe always, and a weekly chart
//! resampled from daily bars when `Strategy.weekly_chart` asks, with the indicators
//! recomputed on the weekly bars.

use tradeflow_core::indicators::{IndicatorError, IndicatorSeries, IndicatorSpec, compute};
use tradeflow_core::market::{Bar, resample_weekly};
use tradeflow_core::{Strategy, Timeframe};

/// One chart to render.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartJob {
    pub timeframe: Timeframe,
    pub bars: Vec<Bar>,
    pub series: Vec<IndicatorSeries>,
    pub title: String,
}

/// `AAPL · daily · close 183.42 · 2023-01-03 – 2024-12-31`.
pub fn chart_title(symbol: &str, timeframe: Timeframe, bars: &[Bar]) -> String {
    match (bars.first(), bars.last()) {
        (Some(first), Some(last)) => format!(
            "{symbol} · {} · close {} · {} – {}",
            timeframe.as_str(),
            crate::theme::price(last.close),
            first.date(),
            last.date()
        ),
        _ => format!("{symbol} · {}", timeframe.as_str()),
    }
}

/// Computes `specs` on `bars`, skipping indicators that need more bars than there
/// are (a weekly chart has a fifth of the daily bars); each skip is returned as a note.
///
/// # Errors
/// An invalid spec (anything but too few bars).
pub fn compute_available(
    specs: &[IndicatorSpec],
    bars: &[Bar],
) -> Result<(Vec<IndicatorSeries>, Vec<String>), IndicatorError> {
    let mut series = Vec::new();
    let mut notes = Vec::new();
    for spec in specs {
        match compute(spec, bars) {
            Ok(s) => series.extend(s),
            Err(IndicatorError::NotEnoughBars {
                indicator,
                needed,
                got,
            }) => notes.push(format!(
                "{indicator} skipped, needs {needed} bars, got {got}"
            )),
            Err(e) => return Err(e),
        }
    }
    Ok((series, notes))
}

/// The charts for one run: the strategy's timeframe with the computed series, and a
/// weekly chart when asked for on a daily strategy. Returns the jobs and notes on
/// indicators left off the weekly chart.
///
/// # Errors
/// An invalid indicator spec while recomputing on weekly bars.
pub fn chart_jobs(
    strategy: &Strategy,
    bars: Vec<Bar>,
    series: Vec<IndicatorSeries>,
) -> Result<(Vec<ChartJob>, Vec<String>), IndicatorError> {
    let mut notes = Vec::new();
    let mut jobs = Vec::new();
    let weekly = (strategy.weekly_chart && strategy.timeframe == Timeframe::Daily)
        .then(|| resample_weekly(&bars));
    jobs.push(ChartJob {
        timeframe: strategy.timeframe,
        title: chart_title(&strategy.symbol, strategy.timeframe, &bars),
        bars,
        series,
    });
    if let Some(weekly) = weekly {
        let (series, skipped) = compute_available(&strategy.indicators, &weekly)?;
        notes.extend(skipped.into_iter().map(|n| format!("weekly chart: {n}")));
        jobs.push(ChartJob {
            timeframe: Timeframe::Weekly,
            title: chart_title(&strategy.symbol, Timeframe::Weekly, &weekly),
            bars: weekly,
            series,
        });
    }
    Ok((jobs, notes))
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use tradeflow_core::synthetic::daily_bars;

    use super::*;

    fn strategy(weekly_chart: bool, indicators: Vec<IndicatorSpec>) -> Strategy {
        let mut s: Strategy = serde_json_strategy();
        s.weekly_chart = weekly_chart;
        s.indicators = indicators;
        s
    }

    fn serde_json_strategy() -> Strategy {
        let json = r#"{"strategy_id":"s1","name":"t","conid":265598,"symbol":"AAPL"}"#;
        serde_json::from_str(json).expect("minimal strategy parses")
    }

    fn bars(n: usize) -> Vec<Bar> {
        let end = NaiveDate::from_ymd_opt(2024, 12, 31).expect("valid date");
        daily_bars(265598, end, n)
    }

    #[test]
    fn daily_strategy_without_weekly_flag_gets_one_chart() {
        let s = strategy(false, vec![IndicatorSpec::Sma { period: 20 }]);

        let (jobs, notes) = chart_jobs(&s, bars(100), Vec::new()).unwrap();

        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].timeframe, Timeframe::Daily);
        assert!(notes.is_empty());
    }

    #[test]
    fn weekly_chart_recomputes_indicators_on_weekly_bars_and_notes_skips() {
        let daily = bars(100);
        let s = strategy(
            true,
            vec![
                IndicatorSpec::Sma { period: 5 },
                IndicatorSpec::Sma { period: 50 },
            ],
        );

        let (jobs, notes) = chart_jobs(&s, daily.clone(), Vec::new()).unwrap();

        let weekly = &jobs[1];
        assert_eq!(weekly.timeframe, Timeframe::Weekly);
        assert_eq!(weekly.bars, resample_weekly(&daily));
        assert!(weekly.bars.len() < 25, "100 weekdays are about 20 weeks");
        assert_eq!(weekly.series.len(), 1);
        assert_eq!(weekly.series[0].name, "sma_5");
        assert_eq!(weekly.series[0].values.len(), weekly.bars.len());
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains("sma") && notes[0].contains("50"),
            "{notes:?}"
        );
        assert!(weekly.title.starts_with("AAPL · weekly · close "));
    }

    #[test]
    fn title_names_symbol_timeframe_last_close_and_date_range() {
        let b = bars(3);

        let t = chart_title("MSFT", Timeframe::Daily, &b);

        let close = crate::theme::price(b[2].close);
        assert_eq!(
            t,
            format!(
                "MSFT · daily · close {close} · {} – {}",
                b[0].date(),
                b[2].date()
            )
        );
    }
}
