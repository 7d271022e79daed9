//! Backtest metrics, defined as backtesting.py 0.6 defines them
//! (`backtesting/_stats.py`, `compute_stats`), so results compare number for number:
//!
//! - drawdown at bar i: 1 − equity[i] / max(equity[..=i]); a drawdown period runs
//!   from a bar at its peak (drawdown 0) to the next such bar or the last bar; its
//!   duration is calendar time between them, its depth the largest drawdown in it;
//! - exposure: the share of *all* bars (warm-up included) between a closed trade's
//!   entry and exit bars, inclusive (a position still open at the end is not a
//!   closed trade and does not count, as in backtesting.py without
//!   `finalize_trades`);
//! - periodic returns: the last equity of each calendar day (week, month, year for
//!   weekly, monthly, yearly bars), in percent change; annualised with 252 periods a
//!   year for daily bars (365 when a market trades weekends), 52, 12 or 1;
//! - annual return: (1 + geometric mean periodic return)^periods − 1; volatility:
//!   √((var + (1+g)²)^periods − (1+g)^(2·periods)); Sharpe: annual return /
//!   volatility (risk-free rate 0); Sortino: annual return / (√mean(min(r,0)²) ·
//!   √periods); Calmar: annual return / max drawdown;
//! - CAGR: (final / initial equity)^(1 / years) − 1, years = (last − first bar
//!   time) / 365.25 days;
//! - beta: cov(equity log returns, close log returns) / var(close log returns) over
//!   all bars; alpha: return − beta × buy-and-hold return;
//! - buy and hold: from the close of the first bar the strategy could act on (every
//!   indicator warm) to the last close;
//! - per trade: return = P&L net of both commissions / (quantity × entry price);
//!   win rate counts P&L > 0; average trade is the geometric mean of returns;
//!   profit factor Σ positive returns / |Σ negative returns|; expectancy the mean
//!   return; SQN √n · mean(P&L) / std(P&L); Kelly w − (1 − w) / (avg win / avg loss).
//!
//! Undefined values (no trades, no losses, zero volatility) are `None`.

use chrono::{DateTime, Datelike, Duration, NaiveDate};
use serde::{Deserialize, Serialize};

const DAY_MS: f64 = 86_400_000.0;

/// A closed trade as the metrics need it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClosedTrade {
    pub entry_bar: usize,
    pub exit_bar: usize,
    /// Bar times, epoch milliseconds.
    pub entry_t: i64,
    pub exit_t: i64,
    /// Net of both commissions.
    pub pnl: f64,
    /// pnl / (quantity × entry price).
    pub return_frac: f64,
    pub commission: f64,
}

/// The report's numbers. Percentages are in percent (12.5 means 12.5%), durations in
/// days; `None` where the value is undefined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Metrics {
    pub start: String,
    pub end: String,
    pub duration_days: f64,
    pub exposure_time_pct: f64,
    pub equity_final: f64,
    pub equity_peak: f64,
    pub commissions: f64,
    pub return_pct: f64,
    pub buy_and_hold_return_pct: Option<f64>,
    pub return_ann_pct: Option<f64>,
    pub volatility_ann_pct: Option<f64>,
    pub cagr_pct: Option<f64>,
    pub sharpe_ratio: Option<f64>,
    pub sortino_ratio: Option<f64>,
    pub calmar_ratio: Option<f64>,
    pub alpha_pct: Option<f64>,
    pub beta: Option<f64>,
    pub max_drawdown_pct: f64,
    pub avg_drawdown_pct: Option<f64>,
    pub max_drawdown_duration_days: Option<f64>,
    pub avg_drawdown_duration_days: Option<f64>,
    pub trades: usize,
    pub win_rate_pct: Option<f64>,
    pub best_trade_pct: Option<f64>,
    pub worst_trade_pct: Option<f64>,
    pub avg_trade_pct: Option<f64>,
    pub max_trade_duration_days: Option<f64>,
    pub avg_trade_duration_days: Option<f64>,
    pub profit_factor: Option<f64>,
    pub expectancy_pct: Option<f64>,
    pub sqn: Option<f64>,
    pub kelly_criterion: Option<f64>,
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Sample variance (n − 1), NaN below two values.
fn variance(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return f64::NAN;
    }
    let m = mean(xs);
    xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64
}

/// backtesting.py's `geometric_mean`: 0 when any return is −100% or worse.
fn geometric_mean(returns: &[f64]) -> f64 {
    if returns.iter().any(|r| r + 1.0 <= 0.0) {
        return 0.0;
    }
    if returns.is_empty() {
        return f64::NAN;
    }
    (returns.iter().map(|r| (r + 1.0).ln()).sum::<f64>() / returns.len() as f64).exp() - 1.0
}

fn date(t: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(t)
        .unwrap_or_default()
        .date_naive()
}

/// The bars' period in whole days: the median spacing of the last 100 bars.
fn period_days(times: &[i64]) -> i64 {
    let tail = &times[times.len().saturating_sub(100)..];
    let mut diffs: Vec<i64> = tail.windows(2).map(|w| w[1] - w[0]).collect();
    if diffs.is_empty() {
        return 0;
    }
    diffs.sort_unstable();
    let n = diffs.len();
    let median = if n % 2 == 1 {
        diffs[n / 2] as f64
    } else {
        (diffs[n / 2 - 1] + diffs[n / 2]) as f64 / 2.0
    };
    (median / DAY_MS).floor() as i64
}

/// The key of the calendar period a bar belongs to when resampling equity.
fn period_key(t: i64, period_days: i64) -> (i32, u32, u32) {
    let d = date(t);
    match period_days {
        7 => {
            // pandas 'W' = weeks ending on Sunday.
            let end = d + Duration::days(6 - i64::from(d.weekday().num_days_from_monday()));
            (end.year(), end.month(), end.day())
        }
        31 => (d.year(), d.month(), 0),
        365 => (d.year(), 0, 0),
        _ => (d.year(), d.month(), d.day()),
    }
}

/// Computes the metrics.
///
/// `equity` and `closes` are per bar, `times` the bars' times (epoch ms),
/// `first_trading_bar` the first bar the strategy could act on, `trades` the closed
/// trades in order of exit.
pub fn compute(
    equity: &[f64],
    closes: &[f64],
    times: &[i64],
    first_trading_bar: usize,
    trades: &[ClosedTrade],
) -> Metrics {
    let n = equity.len();
    let mut m = Metrics::default();
    if n == 0 {
        return m;
    }
    let iso = |t: i64| {
        DateTime::from_timestamp_millis(t)
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string()
    };
    m.start = iso(times[0]);
    m.end = iso(times[n - 1]);
    let duration_ms = (times[n - 1] - times[0]) as f64;
    m.duration_days = duration_ms / DAY_MS;

    // Drawdown and its periods.
    let mut peak = f64::MIN;
    let dd: Vec<f64> = equity
        .iter()
        .map(|&e| {
            peak = peak.max(e);
            1.0 - e / peak
        })
        .collect();
    let mut at_peak: Vec<usize> = (0..n).filter(|&i| dd[i] == 0.0).collect();
    if at_peak.last() != Some(&(n - 1)) {
        at_peak.push(n - 1);
    }
    let mut durations = Vec::new();
    let mut depths = Vec::new();
    for w in at_peak.windows(2) {
        let (prev, cur) = (w[0], w[1]);
        if cur > prev + 1 {
            durations.push((times[cur] - times[prev]) as f64 / DAY_MS);
            depths.push(dd[prev..=cur].iter().copied().fold(f64::MIN, f64::max));
        }
    }
    let max_dd = dd.iter().copied().fold(0.0, f64::max);
    m.max_drawdown_pct = -max_dd * 100.0;
    if !durations.is_empty() {
        m.max_drawdown_duration_days = Some(durations.iter().copied().fold(f64::MIN, f64::max));
        m.avg_drawdown_duration_days = Some(mean(&durations));
        m.avg_drawdown_pct = Some(-mean(&depths) * 100.0);
    }

    // Exposure.
    let mut held = vec![false; n];
    for t in trades {
        for h in &mut held[t.entry_bar..=t.exit_bar.min(n - 1)] {
            *h = true;
        }
    }
    m.exposure_time_pct = held.iter().filter(|&&h| h).count() as f64 / n as f64 * 100.0;

    m.equity_final = equity[n - 1];
    m.equity_peak = equity.iter().copied().fold(f64::MIN, f64::max);
    // + 0.0: an empty float sum is −0.0.
    m.commissions = trades.iter().map(|t| t.commission).sum::<f64>() + 0.0;
    m.return_pct = (equity[n - 1] - equity[0]) / equity[0] * 100.0;
    let bh_base = closes.get(first_trading_bar).copied();
    m.buy_and_hold_return_pct = bh_base.map(|c0| (closes[n - 1] - c0) / c0 * 100.0);

    // Periodic returns and the annualised figures.
    let pd = period_days(times);
    let weekends = times
        .iter()
        .filter(|&&t| date(t).weekday().number_from_monday() >= 6)
        .count() as f64
        / n as f64;
    let periods_per_year: f64 = match pd {
        7 => 52.0,
        31 => 12.0,
        365 => 1.0,
        _ if weekends > 2.0 / 7.0 * 0.6 => 365.0,
        _ => 252.0,
    };
    let mut last_of_period: Vec<f64> = Vec::new();
    let mut current = None;
    for (i, &e) in equity.iter().enumerate() {
        let key = period_key(times[i], pd);
        if current == Some(key) {
            if let Some(last) = last_of_period.last_mut() {
                *last = e;
            }
        } else {
            current = Some(key);
            last_of_period.push(e);
        }
    }
    let period_returns: Vec<f64> = last_of_period
        .windows(2)
        .map(|w| w[1] / w[0] - 1.0)
        .filter(|r| r.is_finite())
        .collect();
    let g = if period_returns.is_empty() {
        0.0
    } else {
        geometric_mean(&period_returns)
    };
    let annual = (1.0 + g).powf(periods_per_year) - 1.0;
    let volatility = ((variance(&period_returns) + (1.0 + g).powi(2)).powf(periods_per_year)
        - (1.0 + g).powf(2.0 * periods_per_year))
    .sqrt();
    m.return_ann_pct = finite(annual * 100.0);
    m.volatility_ann_pct = finite(volatility * 100.0);
    let years = duration_ms / DAY_MS / 365.25;
    m.cagr_pct = (years > 0.0)
        .then(|| ((equity[n - 1] / equity[0]).powf(1.0 / years) - 1.0) * 100.0)
        .and_then(finite);
    m.sharpe_ratio = (volatility != 0.0)
        .then(|| annual / volatility)
        .and_then(finite);
    let downside = (period_returns
        .iter()
        .map(|r| r.min(0.0).powi(2))
        .sum::<f64>()
        / period_returns.len() as f64)
        .sqrt()
        * periods_per_year.sqrt();
    m.sortino_ratio = finite(annual / downside);
    m.calmar_ratio = (max_dd != 0.0).then(|| annual / max_dd).and_then(finite);

    let log_returns =
        |xs: &[f64]| -> Vec<f64> { xs.windows(2).map(|w| (w[1] / w[0]).ln()).collect() };
    let (er, mr) = (log_returns(equity), log_returns(closes));
    if er.len() > 1 && mr.len() > 1 {
        let (me, mm) = (mean(&er), mean(&mr));
        let cov = er
            .iter()
            .zip(&mr)
            .map(|(a, b)| (a - me) * (b - mm))
            .sum::<f64>()
            / (er.len() - 1) as f64;
        let beta = cov / variance(&mr);
        m.beta = finite(beta);
        m.alpha_pct = m
            .buy_and_hold_return_pct
            .and_then(|bh| finite(m.return_pct - beta * bh));
    }

    // Trades.
    m.trades = trades.len();
    if trades.is_empty() {
        return m;
    }
    let pnl: Vec<f64> = trades.iter().map(|t| t.pnl).collect();
    let returns: Vec<f64> = trades.iter().map(|t| t.return_frac).collect();
    let days: Vec<f64> = trades
        .iter()
        .map(|t| (t.exit_t - t.entry_t) as f64 / DAY_MS)
        .collect();
    let win_rate = pnl.iter().filter(|&&p| p > 0.0).count() as f64 / pnl.len() as f64;
    m.win_rate_pct = Some(win_rate * 100.0);
    m.best_trade_pct = Some(returns.iter().copied().fold(f64::MIN, f64::max) * 100.0);
    m.worst_trade_pct = Some(returns.iter().copied().fold(f64::MAX, f64::min) * 100.0);
    m.avg_trade_pct = finite(geometric_mean(&returns) * 100.0);
    m.max_trade_duration_days = Some(days.iter().copied().fold(f64::MIN, f64::max));
    m.avg_trade_duration_days = Some(mean(&days));
    let gains: f64 = returns.iter().filter(|&&r| r > 0.0).sum();
    let losses: f64 = returns.iter().filter(|&&r| r < 0.0).sum::<f64>().abs();
    m.profit_factor = (losses != 0.0).then(|| gains / losses);
    m.expectancy_pct = Some(mean(&returns) * 100.0);
    let sd = variance(&pnl).sqrt();
    m.sqn = (sd != 0.0)
        .then(|| (pnl.len() as f64).sqrt() * mean(&pnl) / sd)
        .and_then(finite);
    let wins: Vec<f64> = pnl.iter().copied().filter(|&p| p > 0.0).collect();
    let lost: Vec<f64> = pnl.iter().copied().filter(|&p| p < 0.0).collect();
    m.kelly_criterion = (!wins.is_empty() && !lost.is_empty())
        .then(|| win_rate - (1.0 - win_rate) / (mean(&wins) / -mean(&lost)))
        .and_then(finite);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    /// 2024-01-01 is a Monday; the days are consecutive weekdays.
    fn weekdays(n: usize) -> Vec<i64> {
        let start = 1_704_067_200_000_i64;
        let mut out = Vec::new();
        let mut t = start;
        while out.len() < n {
            let wd = date(t).weekday().number_from_monday();
            if wd <= 5 {
                out.push(t);
            }
            t += DAY;
        }
        out
    }

    #[test]
    fn drawdown_periods_run_from_peak_to_recovery_or_the_end() {
        let equity = [100.0, 110.0, 99.0, 105.0, 110.0, 120.0, 108.0, 114.0];
        let times = weekdays(equity.len());

        let m = compute(&equity, &equity, &times, 0, &[]);

        // Peaks at bars 0, 1, 4, 5; periods 1→4 (Tue→Fri, 3 days) and 5→7 (Mon→Wed, 2 days).
        assert!((m.max_drawdown_pct - -10.0).abs() < 1e-12);
        assert_eq!(m.max_drawdown_duration_days, Some(3.0));
        assert_eq!(m.avg_drawdown_duration_days, Some(2.5));
        assert!((m.avg_drawdown_pct.unwrap() - -10.0).abs() < 1e-12);
    }

    #[test]
    fn trade_statistics_follow_the_definitions() {
        let equity = vec![1000.0; 10];
        let times = weekdays(10);
        let trade = |e: usize, x: usize, pnl: f64, r: f64| ClosedTrade {
            entry_bar: e,
            exit_bar: x,
            entry_t: times[e],
            exit_t: times[x],
            pnl,
            return_frac: r,
            commission: 1.0,
        };
        let trades = [
            trade(1, 2, 20.0, 0.02),
            trade(4, 6, -10.0, -0.01),
            trade(7, 8, 30.0, 0.03),
        ];

        let m = compute(&equity, &equity, &times, 0, &trades);

        assert_eq!(m.trades, 3);
        assert!((m.exposure_time_pct - 70.0).abs() < 1e-12);
        assert!((m.win_rate_pct.unwrap() - 200.0 / 3.0).abs() < 1e-12);
        assert!((m.profit_factor.unwrap() - 5.0).abs() < 1e-12);
        assert!((m.expectancy_pct.unwrap() - 4.0 / 3.0).abs() < 1e-12);
        let g = (1.02f64 * 0.99 * 1.03).powf(1.0 / 3.0) - 1.0;
        assert!((m.avg_trade_pct.unwrap() - g * 100.0).abs() < 1e-12);
        // pnl mean 40/3, sample sd of (20, -10, 30) = sqrt(433.33...)
        let sqn = 3f64.sqrt() * (40.0 / 3.0) / (1300.0f64 / 3.0).sqrt();
        assert!((m.sqn.unwrap() - sqn).abs() < 1e-12);
        // w = 2/3, avg win 25, avg loss 10.
        assert!((m.kelly_criterion.unwrap() - (2.0 / 3.0 - (1.0 / 3.0) / 2.5)).abs() < 1e-12);
        assert_eq!(m.commissions, 3.0);
        assert_eq!(m.sharpe_ratio, None);
    }

    #[test]
    fn a_steady_daily_gain_annualises_over_252_days() {
        let equity: Vec<f64> = (0..300).map(|i| 100.0 * 1.001f64.powi(i)).collect();
        let times = weekdays(300);

        let m = compute(&equity, &equity, &times, 0, &[]);

        let annual = 1.001f64.powf(252.0) - 1.0;
        assert!((m.return_ann_pct.unwrap() - annual * 100.0).abs() < 1e-9);
        assert!((m.beta.unwrap() - 1.0).abs() < 1e-9);
        assert!(m.alpha_pct.unwrap().abs() < 1e-9);
        assert_eq!(m.max_drawdown_pct, 0.0);
        assert_eq!(m.max_drawdown_duration_days, None);
    }
}
