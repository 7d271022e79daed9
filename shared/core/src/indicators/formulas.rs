//! The formulas, as TA-Lib defines them (default compatibility mode, unstable period 0).
//!
//! Every function returns one value per input bar, `None` exactly where TA-Lib returns
//! NaN (its lookback). Each runs in one pass, O(n), allocating its outputs (and at most
//! a small window buffer) once; nothing is allocated per bar.
//!
//! The `ta` crate is used where its definition equals TA-Lib's after the warm-up: SMA,
//! the true range (from bar 1 on) and OBV. Its EMA, RSI, ATR, Bollinger and stochastic
//! differ (see the functions below), so those are written out here.

use std::collections::VecDeque;

use ta::errors::TaError;
use ta::indicators::{OnBalanceVolume, SimpleMovingAverage, TrueRange};
use ta::{Close, High, Low, Next, Open, Volume};

use crate::market::Bar;

impl Open for Bar {
    fn open(&self) -> f64 {
        self.open
    }
}
impl High for Bar {
    fn high(&self) -> f64 {
        self.high
    }
}
impl Low for Bar {
    fn low(&self) -> f64 {
        self.low
    }
}
impl Close for Bar {
    fn close(&self) -> f64 {
        self.close
    }
}
impl Volume for Bar {
    fn volume(&self) -> f64 {
        self.volume
    }
}

pub(super) type Values = Vec<Option<f64>>;

/// Tests a value the way TA-Lib's `TA_IS_ZERO` does.
fn talib_is_zero(v: f64) -> bool {
    -0.000_000_01 < v && v < 0.000_000_01
}

/// SMA (TA-Lib `SMA`): mean of the last `period` values. `ta`'s running-sum SMA is the
/// same definition; it also emits partial means during warm-up, which are dropped.
///
/// # Errors
/// `ta` rejects a zero period.
pub(super) fn sma(x: &[f64], period: usize) -> Result<Values, TaError> {
    let mut sma = SimpleMovingAverage::new(period)?;
    Ok(x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let m = sma.next(v);
            (i + 1 >= period).then_some(m)
        })
        .collect())
}

/// One step of TA-Lib's EMA recursion, in its order of operations.
fn ema_step(prev: f64, x: f64, k: f64) -> f64 {
    ((x - prev) * k) + prev
}

/// EMA (TA-Lib `EMA`): k = 2/(period+1), seeded at index `period − 1` with the SMA of
/// the first `period` values. `ta`'s EMA seeds with the first value instead, which
/// changes every value for several periods after the warm-up, hence this one.
pub(super) fn ema(x: &[f64], period: usize) -> Values {
    let mut out = Vec::with_capacity(x.len());
    if x.len() < period {
        out.resize(x.len(), None);
        return out;
    }
    out.resize(period - 1, None);
    let k = 2.0 / (period as f64 + 1.0);
    let mut e = x[..period].iter().sum::<f64>() / period as f64;
    out.push(Some(e));
    for &v in &x[period..] {
        e = ema_step(e, v, k);
        out.push(Some(e));
    }
    out
}

/// RSI (TA-Lib `RSI`, Wilder): average gain and loss seeded with the plain means of
/// the first `period` changes, then `avg = (avg·(period−1) + change)/period`; first
/// value at index `period`; 0 when both averages are (TA-Lib-)zero. `ta`'s RSI smooths
/// with an EMA seeded by the first change, so it differs.
pub(super) fn rsi(close: &[f64], period: usize) -> Values {
    let n = close.len();
    let mut out = Vec::with_capacity(n);
    if n <= period {
        out.resize(n, None);
        return out;
    }
    out.resize(period, None);
    let p = period as f64;
    let value = |gain: f64, loss: f64| {
        let total = gain + loss;
        if talib_is_zero(total) {
            0.0
        } else {
            100.0 * (gain / total)
        }
    };
    let (mut gain, mut loss) = (0.0, 0.0);
    for w in close[..=period].windows(2) {
        let d = w[1] - w[0];
        if d < 0.0 {
            loss -= d;
        } else {
            gain += d;
        }
    }
    gain /= p;
    loss /= p;
    out.push(Some(value(gain, loss)));
    for w in close[period..].windows(2) {
        let d = w[1] - w[0];
        gain *= p - 1.0;
        loss *= p - 1.0;
        if d < 0.0 {
            loss -= d;
        } else {
            gain += d;
        }
        gain /= p;
        loss /= p;
        out.push(Some(value(gain, loss)));
    }
    out
}

/// Calls `emit(i, atr)` for every bar from index `period` on with Wilder's ATR as
/// TA-Lib computes it: the true range starts at bar 1 (bar 0 has no previous close),
/// the first ATR is the mean of TR[1..=period], then `atr = (atr·(period−1) + tr)/period`.
/// `ta`'s ATR smooths with an EMA (k = 2/(period+1)), not Wilder's 1/period.
fn wilder_atr(bars: &[Bar], period: usize, mut emit: impl FnMut(usize, f64)) {
    if bars.len() <= period {
        return;
    }
    let mut tr = TrueRange::new();
    tr.next(&bars[0]);
    let mut sum = 0.0;
    for b in &bars[1..=period] {
        sum += tr.next(b);
    }
    let p = period as f64;
    let mut atr = sum / p;
    emit(period, atr);
    for (i, b) in bars.iter().enumerate().skip(period + 1) {
        atr = (atr * (p - 1.0) + tr.next(b)) / p;
        emit(i, atr);
    }
}

/// ATR (TA-Lib `ATR`, Wilder); first value at index `period`.
pub(super) fn atr(bars: &[Bar], period: usize) -> Values {
    let mut out = vec![None; bars.len()];
    wilder_atr(bars, period, |i, v| out[i] = Some(v));
    out
}

/// MACD (TA-Lib `MACD`): fast and slow EMAs as [`ema`], macd = fast − slow, signal =
/// EMA(signal) of macd, hist = macd − signal. TA-Lib's seeding quirk is kept: both
/// EMAs start at index `slow − 1`, so the fast EMA is seeded with the SMA of
/// `close[slow−fast .. slow]` (not of the first `fast` closes), and all three outputs
/// start at `slow + signal − 2`, where the signal line starts.
pub(super) fn macd(close: &[f64], fast: usize, slow: usize, signal: usize) -> [Values; 3] {
    let n = close.len();
    let first = slow + signal - 2;
    let mut out = [
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    ];
    for o in &mut out {
        o.resize(first.min(n), None);
    }
    if n <= first {
        return out;
    }
    let (kf, ks, kg) = (
        2.0 / (fast as f64 + 1.0),
        2.0 / (slow as f64 + 1.0),
        2.0 / (signal as f64 + 1.0),
    );
    let mut ef = close[slow - fast..slow].iter().sum::<f64>() / fast as f64;
    let mut es = close[..slow].iter().sum::<f64>() / slow as f64;
    let mut seed = ef - es;
    for &c in &close[slow..=first] {
        ef = ema_step(ef, c, kf);
        es = ema_step(es, c, ks);
        seed += ef - es;
    }
    let mut sig = seed / signal as f64;
    let [m_out, s_out, h_out] = &mut out;
    let mut emit = |m: f64, s: f64| {
        m_out.push(Some(m));
        s_out.push(Some(s));
        h_out.push(Some(m - s));
    };
    emit(ef - es, sig);
    for &c in &close[first + 1..] {
        ef = ema_step(ef, c, kf);
        es = ema_step(es, c, ks);
        let m = ef - es;
        sig = ema_step(sig, m, kg);
        emit(m, sig);
    }
    out
}

/// Bollinger Bands (TA-Lib `BBANDS`, SMA middle): middle ± k·σ with σ the population
/// standard deviation of the last `period` closes, computed like TA-Lib from running
/// sums (`σ² = Σx²/n − mean²`) and set to 0 when σ² < 1e-8. `ta`'s bands use Welford's
/// update without that clamp: in a flat window (a halted stock) they keep rounding
/// noise where TA-Lib returns exactly the middle band (7.4e-9 relative on the reference
/// data's halted stretch, beyond the 1e-9 tolerance).
pub(super) fn bollinger(close: &[f64], period: usize, k: f64) -> [Values; 3] {
    let n = close.len();
    let mut out = [
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    ];
    let p = period as f64;
    let (mut sum, mut sum2) = (0.0, 0.0);
    for (i, &x) in close.iter().enumerate() {
        sum += x;
        sum2 += x * x;
        if i + 1 < period {
            for o in &mut out {
                o.push(None);
            }
            continue;
        }
        let mean = sum / p;
        let var = sum2 / p - mean * mean;
        let sd = if var < 0.000_000_01 { 0.0 } else { var.sqrt() };
        out[0].push(Some(mean + k * sd));
        out[1].push(Some(mean));
        out[2].push(Some(mean - k * sd));
        let old = close[i + 1 - period];
        sum -= old;
        sum2 -= old * old;
    }
    out
}

/// Supertrend on Wilder ATR (the standard definition, as TradingView's `ta.supertrend`):
///
/// ```text
/// hl2 = (high + low)/2;  basic_upper = hl2 + m·ATR;  basic_lower = hl2 − m·ATR
/// upper = basic_upper if basic_upper < upper[−1] or close[−1] > upper[−1] else upper[−1]
/// lower = basic_lower if basic_lower > lower[−1] or close[−1] < lower[−1] else lower[−1]
/// direction = down on the first bar with an ATR; then
///   if supertrend[−1] == upper[−1]: up if close > upper else down
///   else:                           down if close < lower else up
/// supertrend = lower if up else upper
/// ```
///
/// Returns (value, direction) with direction +1 for an uptrend and −1 for a downtrend
/// (TradingView uses the opposite signs); first values at index `period`, like the ATR.
pub(super) fn supertrend(bars: &[Bar], period: usize, m: f64) -> [Values; 2] {
    let mut value = vec![None; bars.len()];
    let mut direction = vec![None; bars.len()];
    // (upper, lower, supertrend) of the previous bar.
    let mut prev: Option<(f64, f64, f64)> = None;
    wilder_atr(bars, period, |i, atr| {
        let b = &bars[i];
        let hl2 = (b.high + b.low) / 2.0;
        let (basic_upper, basic_lower) = (hl2 + m * atr, hl2 - m * atr);
        let (upper, lower, up) = match prev {
            None => (basic_upper, basic_lower, false),
            Some((pu, pl, ps)) => {
                let pc = bars[i - 1].close;
                let upper = if basic_upper < pu || pc > pu {
                    basic_upper
                } else {
                    pu
                };
                let lower = if basic_lower > pl || pc < pl {
                    basic_lower
                } else {
                    pl
                };
                // Exact comparison on purpose: the previous value is a copy of a band.
                let up = if ps == pu {
                    b.close > upper
                } else {
                    b.close >= lower
                };
                (upper, lower, up)
            }
        };
        let st = if up { lower } else { upper };
        value[i] = Some(st);
        direction[i] = Some(if up { 1.0 } else { -1.0 });
        prev = Some((upper, lower, st));
    });
    [value, direction]
}

/// Stochastic (TA-Lib `STOCH`, SMA smoothing): fast %K = 100·(close − lowest low) /
/// (highest high − lowest low) over `fastk` bars (0 when the range is 0), slow %K =
/// SMA(slowk) of fast %K, %D = SMA(slowd) of slow %K. Both outputs start at index
/// `fastk + slowk + slowd − 3`, as in TA-Lib. Window extremes come from monotonic
/// queues, so the cost does not grow with `fastk`. `ta`'s stochastic returns 50 on a
/// zero range, hence this one.
pub(super) fn stochastic(bars: &[Bar], fastk: usize, slowk: usize, slowd: usize) -> [Values; 2] {
    let n = bars.len();
    let first = fastk + slowk + slowd - 3;
    let mut k_out = Vec::with_capacity(n);
    let mut d_out = Vec::with_capacity(n);
    let mut highs: VecDeque<usize> = VecDeque::with_capacity(fastk + 1);
    let mut lows: VecDeque<usize> = VecDeque::with_capacity(fastk + 1);
    let mut k_ring = vec![0.0; slowk];
    let mut d_ring = vec![0.0; slowd];
    let (mut k_sum, mut d_sum) = (0.0, 0.0);
    for (i, b) in bars.iter().enumerate() {
        while highs.back().is_some_and(|&j| bars[j].high <= b.high) {
            highs.pop_back();
        }
        highs.push_back(i);
        while lows.back().is_some_and(|&j| bars[j].low >= b.low) {
            lows.pop_back();
        }
        lows.push_back(i);
        if i + 1 < fastk {
            k_out.push(None);
            d_out.push(None);
            continue;
        }
        let start = i + 1 - fastk;
        while highs.front().is_some_and(|&j| j < start) {
            highs.pop_front();
        }
        while lows.front().is_some_and(|&j| j < start) {
            lows.pop_front();
        }
        let (hh, ll) = match (highs.front(), lows.front()) {
            (Some(&h), Some(&l)) => (bars[h].high, bars[l].low),
            _ => (b.high, b.low),
        };
        // TA-Lib's form: divide by range/100 rather than multiply by 100.
        let range = (hh - ll) / 100.0;
        let fast_k = if range != 0.0 {
            (b.close - ll) / range
        } else {
            0.0
        };
        let j = i + 1 - fastk;
        k_sum += fast_k - std::mem::replace(&mut k_ring[j % slowk], fast_k);
        let (slow_k, d) = if j + 1 >= slowk {
            let slow_k = k_sum / slowk as f64;
            let m = j + 1 - slowk;
            d_sum += slow_k - std::mem::replace(&mut d_ring[m % slowd], slow_k);
            (slow_k, (m + 1 >= slowd).then(|| d_sum / slowd as f64))
        } else {
            (0.0, None)
        };
        let shown = i >= first;
        k_out.push(shown.then_some(slow_k));
        d_out.push(if shown { d } else { None });
    }
    [k_out, d_out]
}

/// OBV (TA-Lib `OBV`): starts at the first bar's volume, then adds the volume on an up
/// close and subtracts it on a down close. `ta`'s OBV is the same (it starts from 0
/// with a previous close of 0, so a positive first close adds its volume).
pub(super) fn obv(bars: &[Bar]) -> Values {
    let mut obv = OnBalanceVolume::new();
    bars.iter().map(|b| Some(obv.next(b))).collect()
}

/// Rolling VWAP (no TA-Lib function): Σ(typical price·volume)/Σ volume over the last
/// `period` bars, typical price = (high + low + close)/3; `None` when the window traded
/// no volume. Rolling rather than anchored at the first bar, so a bar's value does not
/// depend on how much history was fetched.
pub(super) fn vwap(bars: &[Bar], period: usize) -> Values {
    let tp = |b: &Bar| (b.high + b.low + b.close) / 3.0;
    let (mut pv, mut vol) = (0.0, 0.0);
    bars.iter()
        .enumerate()
        .map(|(i, b)| {
            pv += tp(b) * b.volume;
            vol += b.volume;
            if i + 1 < period {
                return None;
            }
            let out = (vol != 0.0).then(|| pv / vol);
            let old = &bars[i + 1 - period];
            pv -= tp(old) * old.volume;
            vol -= old.volume;
            out
        })
        .collect()
}
