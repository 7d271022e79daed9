//! The formulas, as TA-Lib defines them (default compatibility mode, unstable period 0).
//!
//! Every function fills output slices of one value per bar, NaN exactly where TA-Lib
//! returns NaN (its lookback). Each reads its input columns once and writes each output
//! value once; nothing is allocated (a few fixed arrays on the stack stage a block of
//! bars). Measured against TA-Lib 0.8's C functions by bench/run.sh.
//!
//! Speed comes from the loop-carried chains, not from the arithmetic:
//!
//! - EMA, Wilder smoothing (RSI, ATR) and MACD are the linear recurrence
//!   `s[i] = a·s[i−1] + b[i]`. Stepped one bar at a time, each bar waits for a multiply
//!   and an add of the previous one (TA-Lib's EMA `((x − s)·k) + s` waits for three
//!   operations). [`Linear::step4`] takes four bars per step: `s[i+3] = a⁴·s[i−1] + c`
//!   with `c` built from the four inputs off the chain, so the chain costs one multiply
//!   and one add per four bars.
//! - Running sums (SMA, Bollinger) add `new − old` to the sum: one add on the chain per
//!   bar, where TA-Lib's add-then-subtract order puts two.
//! - Means multiply by `1/period` instead of dividing (a division's throughput is a
//!   few cycles per bar).
//!
//! These orders of operations round differently from TA-Lib's: by a few ulps per step,
//! and the recurrences are contractive (|a| < 1), so differences do not grow. The
//! reference tests hold every value to 1e-9 of TA-Lib's (`reference_tests.rs`), and
//! bench/run.sh compares all 1,000,000 values of each output with TA-Lib's.
//!
//! Why not the `ta` crate: its EMA (seeded with the first value), RSI and ATR (EMA
//! smoothing, not Wilder's), Bollinger (no zero-variance clamp, see [`bollinger`]) and
//! stochastic (50 on a zero range) differ from TA-Lib, and its streaming design (one bar
//! struct at a time, a ring buffer and `Option`s per bar) cost twice these loops.

use std::collections::VecDeque;

use super::Columns;

/// Bars staged per block by the two-phase kernels (true range, Supertrend): the
/// independent per-bar arithmetic runs over a block in one vectorizable loop, then the
/// serial part reads it from L1. 64 bars are 512 bytes per staged array.
const BLOCK: usize = 64;

/// Tests a value the way TA-Lib's `TA_IS_ZERO` does.
fn talib_is_zero(v: f64) -> bool {
    -0.000_000_01 < v && v < 0.000_000_01
}

/// `a > b ? a : b`, a single `maxsd` (`f64::max` also orders NaN, which costs more).
fn max(a: f64, b: f64) -> f64 {
    if a > b { a } else { b }
}

/// `a < b ? a : b`, a single `minsd`.
fn min(a: f64, b: f64) -> f64 {
    if a < b { a } else { b }
}

/// Fills the warm-up (TA-Lib's lookback) with NaN and returns the rest.
fn after_warm_up(out: &mut [f64], n: usize) -> &mut [f64] {
    let (head, rest) = out.split_at_mut(n.min(out.len()));
    head.fill(f64::NAN);
    rest
}

/// The linear recurrence `s[i] = a·s[i−1] + b[i]`, one or four bars at a time.
#[derive(Clone, Copy)]
struct Linear {
    a: f64,
    a2: f64,
    a3: f64,
    a4: f64,
}

impl Linear {
    fn new(a: f64) -> Self {
        let a2 = a * a;
        Self {
            a,
            a2,
            a3: a2 * a,
            a4: a2 * a2,
        }
    }

    #[inline(always)]
    fn step(&self, s: f64, b: f64) -> f64 {
        s * self.a + b
    }

    /// The next four values after `s`. Only the last depends on `s` through one
    /// multiply and add; `c1..c3` (the inputs' own contribution) are off the chain.
    #[inline(always)]
    fn step4(&self, s: f64, b: [f64; 4]) -> [f64; 4] {
        let c1 = b[0] * self.a + b[1];
        let c2 = c1 * self.a + b[2];
        let c3 = c2 * self.a + b[3];
        [
            s * self.a + b[0],
            s * self.a2 + c1,
            s * self.a3 + c2,
            s * self.a4 + c3,
        ]
    }

    /// Runs the recurrence from `s` over `b[i]·scale` into `out`; returns the last value.
    #[inline(always)]
    fn run(&self, mut s: f64, b: &[f64], scale: f64, out: &mut [f64]) -> f64 {
        let mut bs = b.chunks_exact(4);
        let mut os = out.chunks_exact_mut(4);
        for (b, o) in (&mut bs).zip(&mut os) {
            let v = self.step4(s, [b[0] * scale, b[1] * scale, b[2] * scale, b[3] * scale]);
            o.copy_from_slice(&v);
            s = v[3];
        }
        for (&b, o) in bs.remainder().iter().zip(os.into_remainder()) {
            s = self.step(s, b * scale);
            *o = s;
        }
        s
    }
}

/// SMA (TA-Lib `SMA`): mean of the last `period` values from a running sum.
pub(super) fn sma(x: &[f64], period: usize, out: &mut [f64]) {
    let w = period - 1;
    let body = after_warm_up(out, w);
    let inv = 1.0 / period as f64;
    let mut sum: f64 = x[..w].iter().sum();
    for ((o, &new), &old) in body.iter_mut().zip(&x[w..]).zip(x) {
        let s = sum + new;
        sum += new - old;
        *o = s * inv;
    }
}

/// One step of TA-Lib's EMA recursion, in its order of operations (used in MACD's
/// seeding, where TA-Lib's exact values set every later one).
fn ema_step(prev: f64, x: f64, k: f64) -> f64 {
    ((x - prev) * k) + prev
}

/// EMA (TA-Lib `EMA`): k = 2/(period+1), seeded at index `period − 1` with the SMA of
/// the first `period` values; then `e = (1−k)·e + k·x`. (`ta`'s EMA seeds with the
/// first value, which changes every value for several periods after the warm-up.)
pub(super) fn ema(x: &[f64], period: usize, out: &mut [f64]) {
    let body = after_warm_up(out, period - 1);
    let k = 2.0 / (period as f64 + 1.0);
    let e = x[..period].iter().sum::<f64>() / period as f64;
    let Some((first, rest)) = body.split_first_mut() else {
        return;
    };
    *first = e;
    ema_run(e, k, &x[period..], rest);
}

/// The EMA recurrence from `e` over `x` into `out`, four bars per step; returns the
/// last value.
fn ema_run(e: f64, k: f64, x: &[f64], out: &mut [f64]) -> f64 {
    let lin = Linear::new(1.0 - k);
    let mut xs = x.chunks_exact(4);
    let mut os = out.chunks_exact_mut(4);
    let mut e = e;
    for (b, o) in (&mut xs).zip(&mut os) {
        let v = lin.step4(e, [k * b[0], k * b[1], k * b[2], k * b[3]]);
        o.copy_from_slice(&v);
        e = v[3];
    }
    for (&v, o) in xs.remainder().iter().zip(os.into_remainder()) {
        e = lin.step(e, k * v);
        *o = e;
    }
    e
}

/// Wilder's smoothing factors for `period`: (weight of the previous value, of the new).
fn wilder(period: usize) -> (f64, f64) {
    let p = period as f64;
    ((p - 1.0) / p, 1.0 / p)
}

/// RSI from Wilder's average gain and loss; 0 when both are (TA-Lib-)zero.
#[inline(always)]
fn rsi_value(gain: f64, loss: f64) -> f64 {
    let total = gain + loss;
    if talib_is_zero(total) {
        0.0
    } else {
        100.0 * (gain / total)
    }
}

/// RSI (TA-Lib `RSI`, Wilder): average gain and loss seeded with the plain means of
/// the first `period` changes, then Wilder-smoothed; first value at index `period`.
pub(super) fn rsi(close: &[f64], period: usize, out: &mut [f64]) {
    let n = close.len();
    let body = after_warm_up(out, period);
    // TA-Lib adds a change to one side only; adding +0.0 to the other side gives the
    // same sums without a branch that random price moves mispredict half the time.
    let (mut gain, mut loss) = (0.0, 0.0);
    for w in close[..=period].windows(2) {
        let d = w[1] - w[0];
        gain += max(d, 0.0);
        loss += max(-d, 0.0);
    }
    let p = period as f64;
    gain /= p;
    loss /= p;
    let Some((first, rest)) = body.split_first_mut() else {
        return;
    };
    *first = rsi_value(gain, loss);
    let (keep, add) = wilder(period);
    let lin = Linear::new(keep);
    let mut cur = close[period + 1..].chunks_exact(4);
    let mut prev = close[period..n - 1].chunks_exact(4);
    let mut os = rest.chunks_exact_mut(4);
    for ((c, pv), o) in (&mut cur).zip(&mut prev).zip(&mut os) {
        let d: [f64; 4] = std::array::from_fn(|j| c[j] - pv[j]);
        let g = lin.step4(gain, d.map(|d| max(d, 0.0) * add));
        let l = lin.step4(loss, d.map(|d| max(-d, 0.0) * add));
        for (j, o) in o.iter_mut().enumerate() {
            *o = rsi_value(g[j], l[j]);
        }
        gain = g[3];
        loss = l[3];
    }
    for ((&c, &pv), o) in cur
        .remainder()
        .iter()
        .zip(prev.remainder())
        .zip(os.into_remainder())
    {
        let d = c - pv;
        gain = lin.step(gain, max(d, 0.0) * add);
        loss = lin.step(loss, max(-d, 0.0) * add);
        *o = rsi_value(gain, loss);
    }
}

/// True range: TA-Lib's max(high − low, |high − prev close|, |low − prev close|),
/// computed as max(high, prev close) − min(low, prev close). With high ≥ low (what
/// `validate_bars` checks) that is the same subtraction of the same two values, so the
/// same double, in three operations instead of seven.
#[inline(always)]
fn true_range(high: f64, low: f64, prev_close: f64) -> f64 {
    max(high, prev_close) - min(low, prev_close)
}

/// MACD (TA-Lib `MACD`): fast and slow EMAs as [`ema`], macd = fast − slow, signal =
/// EMA(signal) of macd, hist = macd − signal. TA-Lib's seeding quirk is kept: both
/// EMAs start at index `slow − 1`, so the fast EMA is seeded with the SMA of
/// `close[slow−fast .. slow]` (not of the first `fast` closes), and all three outputs
/// start at `slow + signal − 2`, where the signal line starts. The seeding runs in
/// TA-Lib's order of operations; the three recurrences then step four bars at a time.
pub(super) fn macd(close: &[f64], fast: usize, slow: usize, signal: usize, out: [&mut [f64]; 3]) {
    let first = slow + signal - 2;
    let [m_out, s_out, h_out] = out.map(|o| after_warm_up(o, first));
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
    let (Some((m0, m_rest)), Some((s0, s_rest)), Some((h0, h_rest))) = (
        m_out.split_first_mut(),
        s_out.split_first_mut(),
        h_out.split_first_mut(),
    ) else {
        return;
    };
    (*m0, *s0, *h0) = (ef - es, sig, ef - es - sig);
    let (lf, ls, lg) = (
        Linear::new(1.0 - kf),
        Linear::new(1.0 - ks),
        Linear::new(1.0 - kg),
    );
    let mut xs = close[first + 1..].chunks_exact(4);
    let mut ms = m_rest.chunks_exact_mut(4);
    let mut ss = s_rest.chunks_exact_mut(4);
    let mut hs = h_rest.chunks_exact_mut(4);
    for (((b, mo), so), ho) in (&mut xs).zip(&mut ms).zip(&mut ss).zip(&mut hs) {
        let f = lf.step4(ef, [kf * b[0], kf * b[1], kf * b[2], kf * b[3]]);
        let s = ls.step4(es, [ks * b[0], ks * b[1], ks * b[2], ks * b[3]]);
        let m: [f64; 4] = std::array::from_fn(|j| f[j] - s[j]);
        let g = lg.step4(sig, m.map(|m| kg * m));
        for j in 0..4 {
            mo[j] = m[j];
            so[j] = g[j];
            ho[j] = m[j] - g[j];
        }
        (ef, es, sig) = (f[3], s[3], g[3]);
    }
    for (((&c, mo), so), ho) in xs
        .remainder()
        .iter()
        .zip(ms.into_remainder())
        .zip(ss.into_remainder())
        .zip(hs.into_remainder())
    {
        ef = lf.step(ef, kf * c);
        es = ls.step(es, ks * c);
        let m = ef - es;
        sig = lg.step(sig, kg * m);
        (*mo, *so, *ho) = (m, sig, m - sig);
    }
}

/// Bollinger Bands (TA-Lib `BBANDS`, SMA middle): middle ± k·σ with σ the population
/// standard deviation of the last `period` closes, computed like TA-Lib from running
/// sums (`σ² = Σx²/n − mean²`) and set to 0 when σ² < 1e-8. `ta`'s bands use Welford's
/// update without that clamp: in a flat window (a halted stock) they keep rounding
/// noise where TA-Lib returns exactly the middle band (7.4e-9 relative on the reference
/// data's halted stretch, beyond the 1e-9 tolerance).
///
/// `sma`, when given, receives the middle band again: an SMA of the same period is
/// the same series, so `compute_all` gets both from this one pass.
pub(super) fn bollinger(
    close: &[f64],
    period: usize,
    k: f64,
    out: [&mut [f64]; 3],
    sma: Option<&mut [f64]>,
) {
    let w = period - 1;
    let [u_out, m_out, l_out] = out.map(|o| after_warm_up(o, w));
    let inv = 1.0 / period as f64;
    let mut sum: f64 = close[..w].iter().sum();
    let mut sum2: f64 = close[..w].iter().map(|x| x * x).sum();
    let mut band = |new: f64, old: f64| {
        let s = sum + new;
        let s2 = sum2 + new * new;
        sum += new - old;
        sum2 += new * new - old * old;
        let mean = s * inv;
        let var = s2 * inv - mean * mean;
        let sd = if var < 0.000_000_01 { 0.0 } else { var.sqrt() };
        (mean + k * sd, mean, mean - k * sd)
    };
    let rows = close[w..]
        .iter()
        .zip(close)
        .zip(u_out)
        .zip(m_out)
        .zip(l_out);
    match sma {
        Some(sma_out) => {
            for (((((&new, &old), u), m), l), s) in rows.zip(after_warm_up(sma_out, w)) {
                (*u, *m, *l) = band(new, old);
                *s = *m;
            }
        }
        None => {
            for ((((&new, &old), u), m), l) in rows {
                (*u, *m, *l) = band(new, old);
            }
        }
    }
}

/// What one member of a [`true_range_family`] pass writes.
pub(super) enum TrOutput<'o> {
    /// ATR (TA-Lib `ATR`).
    Atr(&'o mut [f64]),
    /// Supertrend on that ATR: its value and direction (+1 up, −1 down).
    Supertrend {
        multiplier: f64,
        value: &'o mut [f64],
        direction: &'o mut [f64],
    },
}

/// One ATR-based indicator of a [`true_range_family`] pass.
pub(super) struct TrMember<'o> {
    pub period: usize,
    pub out: TrOutput<'o>,
}

/// A member's Wilder ATR as it runs through the blocks.
struct AtrState {
    atr: f64,
    lin: Linear,
    add: f64,
}

/// Supertrend's bands and direction, carried from bar to bar.
struct Bands {
    upper: f64,
    lower: f64,
    /// Whether the previous Supertrend value was the upper band (a downtrend).
    down: bool,
}

/// ATR (TA-Lib `ATR`, Wilder) and Supertrend, for every member in one pass over the
/// bars: the true range of each bar is computed once, for a block of [`BLOCK`] bars,
/// and every member's recurrence reads it from there.
///
/// Wilder's ATR as TA-Lib computes it: the true range starts at bar 1 (bar 0 has no
/// previous close), the first ATR (index `period`) is the mean of TR[1..=period], then
/// `atr = atr·(p−1)/p + tr/p`.
///
/// Supertrend on that ATR (the standard definition, as TradingView's `ta.supertrend`):
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
/// with direction +1 for an uptrend and −1 for a downtrend (TradingView uses the
/// opposite signs); first values at index `period`, like the ATR.
pub(super) fn true_range_family(c: &Columns, members: &mut [TrMember]) {
    let n = c.close.len();
    let (high, low, close) = (&c.high[..n], &c.low[..n], c.close);
    let tr = |i: usize| true_range(high[i], low[i], close[i - 1]);
    let mut states: Vec<(AtrState, Option<Bands>)> = Vec::with_capacity(members.len());
    for member in members.iter_mut() {
        let p = member.period;
        let atr = (1..=p).map(tr).sum::<f64>() / p as f64;
        let (keep, add) = wilder(p);
        let state = AtrState {
            atr,
            lin: Linear::new(keep),
            add,
        };
        let bands = match &mut member.out {
            TrOutput::Atr(out) => {
                after_warm_up(out, p)[0] = atr;
                None
            }
            TrOutput::Supertrend {
                multiplier,
                value,
                direction,
            } => {
                let hl2 = (high[p] + low[p]) / 2.0;
                let bands = Bands {
                    upper: hl2 + *multiplier * atr,
                    lower: hl2 - *multiplier * atr,
                    down: true,
                };
                after_warm_up(value, p)[0] = bands.upper;
                after_warm_up(direction, p)[0] = -1.0;
                Some(bands)
            }
        };
        states.push((state, bands));
    }
    let Some(start) = members.iter().map(|m| m.period + 1).min() else {
        return;
    };
    let mut trs = [0.0; BLOCK];
    let mut i = start;
    while i < n {
        // Blocks end at multiples of BLOCK, whatever the members: a member's bars are
        // then grouped four by four the same way alone or in company, so its values
        // do not depend on what else was computed with it (to the last bit).
        let len = ((i / BLOCK + 1) * BLOCK).min(n) - i;
        let (hs, ls, ps) = (
            &high[i..i + len],
            &low[i..i + len],
            &close[i - 1..i - 1 + len],
        );
        for (((t, &h), &l), &pc) in trs[..len].iter_mut().zip(hs).zip(ls).zip(ps) {
            *t = true_range(h, l, pc);
        }
        for (member, (state, bands)) in members.iter_mut().zip(&mut states) {
            // The member's bars in this block: from its first smoothed bar on.
            let from = (member.period + 1).max(i);
            if from >= i + len {
                continue;
            }
            let skip = from - i;
            let trs = &trs[skip..len];
            match (&mut member.out, bands) {
                (TrOutput::Atr(out), _) => {
                    state.atr = state
                        .lin
                        .run(state.atr, trs, state.add, &mut out[from..i + len]);
                }
                (
                    TrOutput::Supertrend {
                        multiplier,
                        value,
                        direction,
                    },
                    Some(bands),
                ) => {
                    let mut atrs = [0.0; BLOCK];
                    state.atr = state
                        .lin
                        .run(state.atr, trs, state.add, &mut atrs[skip..len]);
                    supertrend_block(
                        *multiplier,
                        bands,
                        &atrs[skip..len],
                        BlockBars {
                            high: &hs[skip..],
                            low: &ls[skip..],
                            close: &close[from..i + len],
                            prev_close: &ps[skip..],
                        },
                        &mut value[from..i + len],
                        &mut direction[from..i + len],
                    );
                }
                (TrOutput::Supertrend { .. }, None) => {
                    unreachable!("every Supertrend member has bands")
                }
            }
        }
        i += len;
    }
}

/// The bars of one block, aligned with its ATR values.
struct BlockBars<'a> {
    high: &'a [f64],
    low: &'a [f64],
    close: &'a [f64],
    prev_close: &'a [f64],
}

/// Supertrend over one block of bars whose ATR is known. The basic bands are computed
/// for the whole block first (independent per bar, vectorized); the band and direction
/// recursion then runs as two loops, one per trend, so the trend test is a branch that
/// changes only where the trend flips (about 3% of bars) instead of a select on the
/// loop-carried chain.
#[inline(always)]
fn supertrend_block(
    m: f64,
    b: &mut Bands,
    atrs: &[f64],
    bars: BlockBars,
    value: &mut [f64],
    direction: &mut [f64],
) {
    let len = atrs.len();
    let (mut bu, mut bl) = ([0.0; BLOCK], [0.0; BLOCK]);
    for ((((u, l), &a), &h), &lo) in bu[..len]
        .iter_mut()
        .zip(&mut bl[..len])
        .zip(atrs)
        .zip(bars.high)
        .zip(bars.low)
    {
        let hl2 = (h + lo) / 2.0;
        (*u, *l) = (hl2 + m * a, hl2 - m * a);
    }
    // Locals, not fields behind `b`: the chains stay in registers (through memory,
    // every bar would wait for a store and a load).
    let (mut upper, mut lower, mut down) = (b.upper, b.lower, b.down);
    // A band restarts from the basic band when the previous close broke through it:
    // rare, so a branch rather than a select that the next bar would wait for. The
    // ratchet itself is `f64::min`/`max`, not `if a < b`: LLVM turns that select into a
    // branch here, which mispredicted on one bar in five (callgrind --branch-sim).
    let rows = bu[..len]
        .iter()
        .zip(&bl[..len])
        .zip(bars.close)
        .zip(bars.prev_close)
        .zip(value.iter_mut().zip(direction.iter_mut()));
    let mut rows = rows.map(|((((&bu, &bl), &close), &pc), out)| (bu, bl, close, pc, out));
    loop {
        if down {
            for (bu, bl, close, pc, (v, d)) in rows.by_ref() {
                upper = if pc > upper {
                    std::hint::cold_path();
                    bu
                } else {
                    bu.min(upper)
                };
                lower = if pc < lower {
                    std::hint::cold_path();
                    bl
                } else {
                    bl.max(lower)
                };
                if close > upper {
                    (*v, *d) = (lower, 1.0);
                    down = lower == upper;
                    break;
                }
                (*v, *d) = (upper, -1.0);
            }
        } else {
            for (bu, bl, close, pc, (v, d)) in rows.by_ref() {
                upper = if pc > upper {
                    std::hint::cold_path();
                    bu
                } else {
                    bu.min(upper)
                };
                lower = if pc < lower {
                    std::hint::cold_path();
                    bl
                } else {
                    bl.max(lower)
                };
                if close < lower {
                    (*v, *d) = (upper, -1.0);
                    down = true;
                    break;
                }
                (*v, *d) = (lower, 1.0);
                // The value is the lower band; it is also the upper one only if the
                // bands met, and then the next bar tests the upper band.
                if lower == upper {
                    down = true;
                    break;
                }
            }
        }
        if rows.len() == 0 {
            break;
        }
    }
    (b.upper, b.lower, b.down) = (upper, lower, down);
}

/// Stochastic (TA-Lib `STOCH`, SMA smoothing): fast %K = 100·(close − lowest low) /
/// (highest high − lowest low) over `fastk` bars (0 when the range is 0), slow %K =
/// SMA(slowk) of fast %K, %D = SMA(slowd) of slow %K. Both outputs start at index
/// `fastk + slowk + slowd − 3`, as in TA-Lib. Window extremes come from monotonic
/// queues, so the cost does not grow with `fastk`.
pub(super) fn stochastic(
    c: &Columns,
    fastk: usize,
    slowk: usize,
    slowd: usize,
    out: [&mut [f64]; 2],
) {
    let n = c.close.len();
    let first = fastk + slowk + slowd - 3;
    let [k_out, d_out] = out;
    after_warm_up(k_out, first);
    after_warm_up(d_out, first);
    let (high, low) = (&c.high[..n], &c.low[..n]);
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
            k_out[i] = slow_k;
            d_out[i] = d_sum / slowd as f64;
        }
    }
}

/// OBV (TA-Lib `OBV`): starts at the first bar's volume, then adds the volume on an up
/// close and subtracts it on a down close.
pub(super) fn obv(c: &Columns, out: &mut [f64]) {
    let Some((first, rest)) = out.split_first_mut() else {
        return;
    };
    let mut obv = c.volume[0];
    *first = obv;
    for ((w, &v), o) in c.close.windows(2).zip(&c.volume[1..]).zip(rest) {
        // ±1 or 0 without a branch; adding v·0 leaves the sum unchanged.
        let sign = f64::from(i8::from(w[1] > w[0]) - i8::from(w[1] < w[0]));
        obv += v * sign;
        *o = obv;
    }
}

/// Rolling VWAP (no TA-Lib function): Σ(typical price·volume)/Σ volume over the last
/// `period` bars, typical price = (high + low + close)/3; NaN when the window traded
/// no volume. Rolling rather than anchored at the first bar, so a bar's value does not
/// depend on how much history was fetched.
pub(super) fn vwap(c: &Columns, period: usize, out: &mut [f64]) {
    let n = c.close.len();
    after_warm_up(out, period - 1);
    let pv = |i: usize| (c.high[i] + c.low[i] + c.close[i]) / 3.0 * c.volume[i];
    let (mut pv_sum, mut vol) = (0.0, 0.0);
    for (i, o) in out[..n].iter_mut().enumerate() {
        pv_sum += pv(i);
        vol += c.volume[i];
        if i + 1 < period {
            continue;
        }
        *o = if vol != 0.0 { pv_sum / vol } else { f64::NAN };
        let old = i + 1 - period;
        pv_sum -= pv(old);
        vol -= c.volume[old];
    }
}
