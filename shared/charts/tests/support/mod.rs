//! Hand-built indicator series for chart tests: plain textbook formulas, so the
//! tests exercise every panel without depending on the indicator catalogue.

#![allow(dead_code)]

use chrono::NaiveDate;
use tradeflow_core::indicators::{IndicatorSeries, Panel};
use tradeflow_core::market::Bar;
use tradeflow_core::synthetic::daily_bars;

pub fn bars(n: usize) -> Vec<Bar> {
    let end = NaiveDate::from_ymd_opt(2024, 12, 31).expect("valid date");
    daily_bars(265598, end, n)
}

fn series(name: &str, indicator: &str, panel: Panel, values: Vec<Option<f64>>) -> IndicatorSeries {
    IndicatorSeries {
        name: name.into(),
        indicator: indicator.into(),
        panel,
        values: values.into(),
    }
}

fn sma(x: &[f64], p: usize) -> Vec<Option<f64>> {
    (0..x.len())
        .map(|i| (i + 1 >= p).then(|| x[i + 1 - p..=i].iter().sum::<f64>() / p as f64))
        .collect()
}

fn ema(x: &[f64], p: usize) -> Vec<Option<f64>> {
    let k = 2.0 / (p as f64 + 1.0);
    let mut out = vec![None; x.len()];
    let mut prev: Option<f64> = None;
    for i in 0..x.len() {
        if i + 1 == p {
            prev = Some(x[..p].iter().sum::<f64>() / p as f64);
        } else if let Some(e) = prev {
            prev = Some(e + k * (x[i] - e));
        }
        out[i] = prev;
    }
    out
}

fn rsi(x: &[f64], p: usize) -> Vec<Option<f64>> {
    let mut out = vec![None; x.len()];
    let (mut gain, mut loss) = (0.0, 0.0);
    for i in 1..x.len() {
        let d = x[i] - x[i - 1];
        let (g, l) = (d.max(0.0), (-d).max(0.0));
        if i <= p {
            gain += g / p as f64;
            loss += l / p as f64;
        } else {
            gain = (gain * (p - 1) as f64 + g) / p as f64;
            loss = (loss * (p - 1) as f64 + l) / p as f64;
        }
        if i >= p {
            out[i] = Some(100.0 - 100.0 / (1.0 + gain / loss.max(1e-12)));
        }
    }
    out
}

/// Every panel the chart draws: SMA, EMA, Bollinger, Supertrend, RSI, MACD, ATR.
pub fn all_series(bars: &[Bar]) -> Vec<IndicatorSeries> {
    let close: Vec<f64> = bars.iter().map(|b| b.close).collect();
    let n = close.len();
    let mid = sma(&close, 20);
    let sd: Vec<Option<f64>> = (0..n)
        .map(|i| {
            mid[i].map(|m| {
                (close[i + 1 - 20..=i]
                    .iter()
                    .map(|c| (c - m).powi(2))
                    .sum::<f64>()
                    / 20.0)
                    .sqrt()
            })
        })
        .collect();
    let upper = (0..n)
        .map(|i| mid[i].zip(sd[i]).map(|(m, s)| m + 2.0 * s))
        .collect();
    let lower = (0..n)
        .map(|i| mid[i].zip(sd[i]).map(|(m, s)| m - 2.0 * s))
        .collect();
    let (fast, slow) = (ema(&close, 12), ema(&close, 26));
    let macd: Vec<Option<f64>> = (0..n)
        .map(|i| fast[i].zip(slow[i]).map(|(f, s)| f - s))
        .collect();
    let first = macd.iter().position(Option::is_some).unwrap_or(n);
    let tail: Vec<f64> = macd[first..].iter().map(|v| v.unwrap_or(0.0)).collect();
    let mut signal = vec![None; first];
    signal.extend(ema(&tail, 9));
    let hist = (0..n)
        .map(|i| macd[i].zip(signal[i]).map(|(m, s)| m - s))
        .collect();
    let tr: Vec<f64> = (0..n)
        .map(|i| {
            let b = bars[i];
            let pc = if i == 0 { b.close } else { bars[i - 1].close };
            (b.high - b.low)
                .max((b.high - pc).abs())
                .max((b.low - pc).abs())
        })
        .collect();
    let atr = ema(&tr, 14);
    // Supertrend (ratcheting final bands on hl2 ± 3·ATR; flips when close crosses).
    let mut st = vec![None; n];
    let mut dir = vec![None; n];
    let (mut up, mut fub, mut flb) = (true, f64::INFINITY, f64::NEG_INFINITY);
    for i in 0..n {
        let Some(a) = atr[i] else { continue };
        let hl2 = (bars[i].high + bars[i].low) / 2.0;
        let (bub, blb) = (hl2 + 3.0 * a, hl2 - 3.0 * a);
        let pc = if i == 0 { close[0] } else { close[i - 1] };
        fub = if bub < fub || pc > fub { bub } else { fub };
        flb = if blb > flb || pc < flb { blb } else { flb };
        if up && close[i] < flb {
            up = false;
        } else if !up && close[i] > fub {
            up = true;
        }
        st[i] = Some(if up { flb } else { fub });
        dir[i] = Some(if up { 1.0 } else { -1.0 });
    }
    vec![
        series("sma_20", "sma", Panel::Price, mid.clone()),
        series("ema_20", "ema", Panel::Price, ema(&close, 20)),
        series("bb_upper_20_2", "bb", Panel::Price, upper),
        series("bb_middle_20_2", "bb", Panel::Price, mid),
        series("bb_lower_20_2", "bb", Panel::Price, lower),
        series("rsi_14", "rsi", Panel::Own, rsi(&close, 14)),
        series("macd_12_26_9", "macd", Panel::Own, macd),
        series("macd_signal_12_26_9", "macd", Panel::Own, signal),
        series("macd_hist_12_26_9", "macd", Panel::Own, hist),
        series("atr_14", "atr", Panel::Own, atr),
        series("supertrend_10_3", "supertrend", Panel::Price, st),
        series(
            "supertrend_direction_10_3",
            "supertrend",
            Panel::Hidden,
            dir,
        ),
    ]
}
