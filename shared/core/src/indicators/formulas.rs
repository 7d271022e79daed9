//! The formulas, as TA-Lib defines them (default compatibility mode, unstable period 0).
//!
//! Every function returns one value per bar, NaN exactly where TA-Lib returns NaN (its
//! lookback), 8 bytes a bar: `SeriesValues` wraps the vector without copying it and
//! reads NaN as `None`. Each is one O(n) pass over contiguous columns that allocates
//! its outputs (and at most a small window buffer) once, at their final size, and fills
//! them by pushing; nothing is allocated per bar.
//!
//! Why not the `ta` crate: its EMA (seeded with the first value), RSI and ATR (EMA
//! smoothing, not Wilder's), Bollinger (no zero-variance clamp, see [`bollinger`]) and
//! stochastic (50 on a zero range) differ from TA-Lib. Its SMA, true range and OBV are
//! the same definitions and were used first, but over 1,000,000 bars they cost about
//! twice these loops (per-bar ring buffer and `Option` bookkeeping, streaming one bar
//! struct at a time), so the catalogue does not use `ta` at all.
//!
//! Wilder smoothing `s = (s·(p−1) + x)/p` is evaluated as `s·((p−1)/p) + x·(1/p)`: the
//! same value up to an ulp per step (the recursion is contractive, so errors do not
//! grow), without a division in the loop-carried chain, which made it 3× slower.

use std::collections::VecDeque;

use crate::market::Bar;

pub(super) type Values = Vec<f64>;

/// The bars as contiguous columns, extracted once per `compute_all` in one pass over the
/// bars. Only the columns some spec reads are filled (the others stay empty): the
/// defaults never read volume, and close-only sets (SMA, EMA, RSI, MACD, Bollinger)
/// read neither high nor low. At 1,000,000 bars every column is 8 MB of fresh pages.
pub(super) struct Columns {
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
}

impl Columns {
    pub(super) fn new(bars: &[Bar], high_low: bool, volume: bool) -> Self {
        let room = |needed: bool| Vec::with_capacity(if needed { bars.len() } else { 0 });
        let mut c = Self {
            high: room(high_low),
            low: room(high_low),
            close: room(true),
            volume: room(volume),
        };
        for b in bars {
            c.close.push(b.close);
            if high_low {
                c.high.push(b.high);
                c.low.push(b.low);
            }
            if volume {
                c.volume.push(b.volume);
            }
        }
        c
    }

    fn len(&self) -> usize {
        self.close.len()
    }
}

/// Tests a value the way TA-Lib's `TA_IS_ZERO` does.
fn talib_is_zero(v: f64) -> bool {
    -0.000_000_01 < v && v < 0.000_000_01
}

/// `n` warm-up NaNs, room for the rest.
fn warm_up(n: usize, len: usize) -> Values {
    let mut out = Vec::with_capacity(len);
    out.resize(n.min(len), f64::NAN);
    out
}

/// SMA (TA-Lib `SMA`): mean of the last `period` values, from a running sum updated in
/// TA-Lib's order (add the new value, divide, drop the oldest).
pub(super) fn sma(x: &[f64], period: usize) -> Values {
    let mut out = warm_up(period - 1, x.len());
    if x.len() < period {
        return out;
    }
    let p = period as f64;
    let mut sum: f64 = x[..period - 1].iter().sum();
    // `extend` over a zip of slices knows its exact length: no capacity check per push.
    out.extend(x[period - 1..].iter().zip(x).map(|(&new, &old)| {
        sum += new;
        let mean = sum / p;
        sum -= old;
        mean
    }));
    out
}

/// One step of TA-Lib's EMA recursion, in its order of operations.
fn ema_step(prev: f64, x: f64, k: f64) -> f64 {
    ((x - prev) * k) + prev
}

/// EMA (TA-Lib `EMA`): k = 2/(period+1), seeded at index `period − 1` with the SMA of
/// the first `period` values. (`ta`'s EMA seeds with the first value, which changes
/// every value for several periods after the warm-up.)
pub(super) fn ema(x: &[f64], period: usize) -> Values {
    let mut out = warm_up(period - 1, x.len());
    if x.len() < period {
        return out;
    }
    let k = 2.0 / (period as f64 + 1.0);
    let mut e = x[..period].iter().sum::<f64>() / period as f64;
    out.push(e);
    out.extend(x[period..].iter().map(|&v| {
        e = ema_step(e, v, k);
        e
    }));
    out
}

/// Wilder's smoothing factors for `period`: (weight of the previous value, of the new).
fn wilder(period: usize) -> (f64, f64) {
    let p = period as f64;
    ((p - 1.0) / p, 1.0 / p)
}

/// RSI (TA-Lib `RSI`, Wilder): average gain and loss seeded with the plain means of
/// the first `period` changes, then Wilder-smoothed; first value at index `period`;
/// 0 when both averages are (TA-Lib-)zero.
pub(super) fn rsi(close: &[f64], period: usize) -> Values {
    let mut out = warm_up(period, close.len());
    if close.len() <= period {
        return out;
    }
    let value = |gain: f64, loss: f64| {
        let total = gain + loss;
        if talib_is_zero(total) {
            0.0
        } else {
            100.0 * (gain / total)
        }
    };
    // TA-Lib adds a change to one side only; adding +0.0 to the other side gives the
    // same sums without a branch that random price moves mispredict half the time.
    let split = |d: f64| (d.max(0.0), (-d).max(0.0));
    let (mut gain, mut loss) = (0.0, 0.0);
    for w in close[..=period].windows(2) {
        let (g, l) = split(w[1] - w[0]);
        gain += g;
        loss += l;
    }
    let p = period as f64;
    gain /= p;
    loss /= p;
    out.push(value(gain, loss));
    let (keep, add) = wilder(period);
    out.extend(
        close[period + 1..]
            .iter()
            .zip(&close[period..])
            .map(|(&c, &prev)| {
                let (g, l) = split(c - prev);
                gain = gain * keep + g * add;
                loss = loss * keep + l * add;
                value(gain, loss)
            }),
    );
    out
}

/// True range of bar `i ≥ 1`: max(high − low, |high − prev close|, |low − prev close|).
fn true_range(c: &Columns, i: usize) -> f64 {
    let pc = c.close[i - 1];
    (c.high[i] - c.low[i])
        .max((c.high[i] - pc).abs())
        .max((c.low[i] - pc).abs())
}

/// Calls `emit(i, atr)` for every bar from index `period` on with Wilder's ATR as
/// TA-Lib computes it: the true range starts at bar 1 (bar 0 has no previous close),
/// the first ATR is the mean of TR[1..=period], then Wilder smoothing.
fn wilder_atr(c: &Columns, period: usize, mut emit: impl FnMut(usize, f64)) {
    let n = c.len();
    if n <= period {
        return;
    }
    let sum: f64 = (1..=period).map(|i| true_range(c, i)).sum();
    let mut atr = sum / period as f64;
    emit(period, atr);
    let (keep, add) = wilder(period);
    for i in period + 1..n {
        atr = atr * keep + true_range(c, i) * add;
        emit(i, atr);
    }
}

/// ATR (TA-Lib `ATR`, Wilder); first value at index `period`.
pub(super) fn atr(c: &Columns, period: usize) -> Values {
    let mut out = warm_up(period, c.len());
    wilder_atr(c, period, |_, v| out.push(v));
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
    let mut out = [warm_up(first, n), warm_up(first, n), warm_up(first, n)];
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
        m_out.push(m);
        s_out.push(s);
        h_out.push(m - s);
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
        warm_up(period - 1, n),
        warm_up(period - 1, n),
        warm_up(period - 1, n),
    ];
    if n < period {
        return out;
    }
    let p = period as f64;
    let head = &close[..period - 1];
    let mut sum: f64 = head.iter().sum();
    let mut sum2: f64 = head.iter().map(|x| x * x).sum();
    let [u_out, m_out, l_out] = &mut out;
    for (&x, &old) in close[period - 1..].iter().zip(close) {
        sum += x;
        sum2 += x * x;
        let mean = sum / p;
        let var = sum2 / p - mean * mean;
        let sd = if var < 0.000_000_01 { 0.0 } else { var.sqrt() };
        u_out.push(mean + k * sd);
        m_out.push(mean);
        l_out.push(mean - k * sd);
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
pub(super) fn supertrend(c: &Columns, period: usize, m: f64) -> [Values; 2] {
    let mut value = warm_up(period, c.len());
    let mut direction = warm_up(period, c.len());
    // (upper, lower, supertrend) of the previous bar.
    let mut prev: Option<(f64, f64, f64)> = None;
    wilder_atr(c, period, |i, atr| {
        let hl2 = (c.high[i] + c.low[i]) / 2.0;
        let (basic_upper, basic_lower) = (hl2 + m * atr, hl2 - m * atr);
        let close = c.close[i];
        let (upper, lower, up) = match prev {
            None => (basic_upper, basic_lower, false),
            Some((pu, pl, ps)) => {
                let pc = c.close[i - 1];
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
                    close > upper
                } else {
                    close >= lower
                };
                (upper, lower, up)
            }
        };
        let st = if up { lower } else { upper };
        value.push(st);
        direction.push(if up { 1.0 } else { -1.0 });
        prev = Some((upper, lower, st));
    });
    [value, direction]
}

/// Stochastic (TA-Lib `STOCH`, SMA smoothing): fast %K = 100·(close − lowest low) /
/// (highest high − lowest low) over `fastk` bars (0 when the range is 0), slow %K =
/// SMA(slowk) of fast %K, %D = SMA(slowd) of slow %K. Both outputs start at index
/// `fastk + slowk + slowd − 3`, as in TA-Lib. Window extremes come from monotonic
/// queues, so the cost does not grow with `fastk`.
pub(super) fn stochastic(c: &Columns, fastk: usize, slowk: usize, slowd: usize) -> [Values; 2] {
    let n = c.len();
    let first = fastk + slowk + slowd - 3;
    let mut k_out = warm_up(first, n);
    let mut d_out = warm_up(first, n);
    let (high, low) = (&c.high, &c.low);
    let mut highs: VecDeque<usize> = VecDeque::with_capacity(fastk + 1);
    let mut lows: VecDeque<usize> = VecDeque::with_capacity(fastk + 1);
    let mut k_ring = vec![0.0; slowk];
    let mut d_ring = vec![0.0; slowd];
    let (mut k_sum, mut d_sum) = (0.0, 0.0);
    let (mut k_at, mut d_at) = (0, 0);
    for i in 0..n {
        while highs.back().is_some_and(|&j| high[j] <= high[i]) {
            highs.pop_back();
        }
        highs.push_back(i);
        while lows.back().is_some_and(|&j| low[j] >= low[i]) {
            lows.pop_back();
        }
        lows.push_back(i);
        if i + 1 < fastk {
            continue;
        }
        let start = i + 1 - fastk;
        while highs.front().is_some_and(|&j| j < start) {
            highs.pop_front();
        }
        while lows.front().is_some_and(|&j| j < start) {
            lows.pop_front();
        }
        let hh = highs.front().map_or(high[i], |&j| high[j]);
        let ll = lows.front().map_or(low[i], |&j| low[j]);
        // TA-Lib's form: divide by range/100 rather than multiply by 100.
        let range = (hh - ll) / 100.0;
        let fast_k = if range != 0.0 {
            (c.close[i] - ll) / range
        } else {
            0.0
        };
        k_sum += fast_k - std::mem::replace(&mut k_ring[k_at], fast_k);
        k_at = if k_at + 1 == slowk { 0 } else { k_at + 1 };
        let j = i + 1 - fastk;
        if j + 1 < slowk {
            continue;
        }
        let slow_k = k_sum / slowk as f64;
        d_sum += slow_k - std::mem::replace(&mut d_ring[d_at], slow_k);
        d_at = if d_at + 1 == slowd { 0 } else { d_at + 1 };
        if i >= first {
            k_out.push(slow_k);
            d_out.push(d_sum / slowd as f64);
        }
    }
    [k_out, d_out]
}

/// OBV (TA-Lib `OBV`): starts at the first bar's volume, then adds the volume on an up
/// close and subtracts it on a down close.
pub(super) fn obv(c: &Columns) -> Values {
    let mut out = Vec::with_capacity(c.len());
    let Some(&first) = c.volume.first() else {
        return out;
    };
    let mut obv = first;
    out.push(obv);
    for (w, &v) in c.close.windows(2).zip(&c.volume[1..]) {
        // ±1 or 0 without a branch; adding v·0 leaves the sum unchanged.
        let sign = f64::from(i8::from(w[1] > w[0]) - i8::from(w[1] < w[0]));
        obv += v * sign;
        out.push(obv);
    }
    out
}

/// Rolling VWAP (no TA-Lib function): Σ(typical price·volume)/Σ volume over the last
/// `period` bars, typical price = (high + low + close)/3; NaN when the window traded
/// no volume. Rolling rather than anchored at the first bar, so a bar's value does not
/// depend on how much history was fetched.
pub(super) fn vwap(c: &Columns, period: usize) -> Values {
    let n = c.len();
    let mut out = warm_up(period - 1, n);
    let pv = |i: usize| (c.high[i] + c.low[i] + c.close[i]) / 3.0 * c.volume[i];
    let (mut pv_sum, mut vol) = (0.0, 0.0);
    for i in 0..n {
        pv_sum += pv(i);
        vol += c.volume[i];
        if i + 1 < period {
            continue;
        }
        out.push(if vol != 0.0 { pv_sum / vol } else { f64::NAN });
        let old = i + 1 - period;
        pv_sum -= pv(old);
        vol -= c.volume[old];
    }
    out
}
