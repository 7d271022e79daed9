#!/usr/bin/env python3
"""Baseline for shared/core/benches/indicators.rs: the same indicators over the same
bars, timed with TA-Lib (C, via its Python package) and, for scale, pure pandas.
bench/run.sh runs both sides back to back and prints the table; by hand:

  TRADEFLOW_BENCH_CSV_DIR=$HOME/.cache/tradeflow/bench-data \\
      cargo bench -p tradeflow-core --bench indicators
  $VENV/bin/python bench/indicators_talib.py --data-dir $HOME/.cache/tradeflow/bench-data

Timing: each case runs `--runs` times (after one warm-up call) on arrays already in
memory, as criterion does on the Rust side; the median CPU time of the thread (user +
system, page faults included: `time.thread_time()`, the clock of bench/thread_cpu.rs) is
reported, and the best. The machine is shared with other builds, and wall time there
measures the scheduler as much as the code. Cases: each default indicator alone at 1,000,000 bars (TA-Lib's function for
it; Supertrend has none, so its row is TA-Lib's ATR 10, the C part of it, and the seed
stack's ATR + Python band loop); "defaults" = SMA 20, EMA 20, BB 20/2, RSI 14,
MACD 12/26/9, ATR 14, Supertrend 10/3 (12 series) as the seed stack computed them;
"C only" = the defaults' TA-Lib calls without the Supertrend band loop.

`--check` compares every value of the Rust bench's 1,000,000-bar series
(series_<name>.f64) with TA-Lib's (Supertrend: with the seed's loop on TA-Lib's ATR),
to 1e-9 relative (1e-12 absolute), and exits non-zero on a difference.
`--json` prints one JSON object per case instead of the human-readable lines.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import talib


def supertrend_loop(high, low, close, atr, m):
    n = len(close)
    value = np.full(n, np.nan)
    direction = np.full(n, np.nan)
    hl2 = (high + low) / 2.0
    bu_all, bl_all = hl2 + m * atr, hl2 - m * atr
    upper = lower = st = None
    for i in range(n):
        a = atr[i]
        if a != a:
            continue
        bu, bl = bu_all[i], bl_all[i]
        if st is None:
            up, lo, d = bu, bl, -1
        else:
            lo = bl if (bl > lower or close[i - 1] < lower) else lower
            up = bu if (bu < upper or close[i - 1] > upper) else upper
            if st == upper:
                d = 1 if close[i] > up else -1
            else:
                d = -1 if close[i] < lo else 1
        st = lo if d == 1 else up
        upper, lower = up, lo
        value[i], direction[i] = st, d
    return value, direction


def supertrend(h, l, c):
    return supertrend_loop(h, l, c, talib.ATR(h, l, c, 10), 3.0)


def talib_defaults(o, h, l, c, v):
    out = [talib.SMA(c, 20), talib.EMA(c, 20), *talib.BBANDS(c, 20, 2.0, 2.0, 0), talib.RSI(c, 14),
           *talib.MACD(c, 12, 26, 9), talib.ATR(h, l, c, 14)]
    out.extend(supertrend(h, l, c))
    return out


def talib_only(o, h, l, c, v):
    """The defaults' TA-Lib calls alone (Supertrend reduced to its ATR 10): the C part."""
    return [talib.SMA(c, 20), talib.EMA(c, 20), *talib.BBANDS(c, 20, 2.0, 2.0, 0), talib.RSI(c, 14),
            *talib.MACD(c, 12, 26, 9), talib.ATR(h, l, c, 14), talib.ATR(h, l, c, 10)]


def pandas_defaults(o, h, l, c, v):
    """The common pandas idioms (ewm with adjust=False, Wilder via alpha=1/n); not
    TA-Lib-exact in the warm-up seeding, only a speed reference."""
    cs, hs, ls = pd.Series(c), pd.Series(h), pd.Series(l)
    sma = cs.rolling(20).mean()
    ema = cs.ewm(span=20, adjust=False).mean()
    sd = cs.rolling(20).std(ddof=0)
    d = cs.diff()
    gain = d.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    loss = (-d.clip(upper=0)).ewm(alpha=1 / 14, adjust=False).mean()
    rsi = 100 * gain / (gain + loss)
    macd = cs.ewm(span=12, adjust=False).mean() - cs.ewm(span=26, adjust=False).mean()
    sig = macd.ewm(span=9, adjust=False).mean()
    tr = pd.concat([hs - ls, (hs - cs.shift()).abs(), (ls - cs.shift()).abs()], axis=1).max(axis=1)
    atr14 = tr.ewm(alpha=1 / 14, adjust=False).mean()
    atr10 = tr.ewm(alpha=1 / 10, adjust=False).mean().to_numpy()
    st = supertrend_loop(h, l, c, atr10, 3.0)
    return [sma, ema, sma + 2 * sd, sma - 2 * sd, rsi, macd, sig, macd - sig, atr14, *st]


# One row per default indicator: the Rust bench's label, and TA-Lib's call for it.
PER_INDICATOR = [
    ("sma_20", lambda o, h, l, c, v: talib.SMA(c, 20)),
    ("ema_20", lambda o, h, l, c, v: talib.EMA(c, 20)),
    ("bb_20_2", lambda o, h, l, c, v: talib.BBANDS(c, 20, 2.0, 2.0, 0)),
    ("rsi_14", lambda o, h, l, c, v: talib.RSI(c, 14)),
    ("macd_12_26_9", lambda o, h, l, c, v: talib.MACD(c, 12, 26, 9)),
    ("atr_14", lambda o, h, l, c, v: talib.ATR(h, l, c, 14)),
    ("supertrend_10_3", lambda o, h, l, c, v: talib.ATR(h, l, c, 10)),
]


def reference_series(h, l, c):
    """The default series by name, from TA-Lib (Supertrend: the seed's loop)."""
    u, m, lo = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    macd, sig, hist = talib.MACD(c, 12, 26, 9)
    st, d = supertrend(h, l, c)
    return {"sma_20": talib.SMA(c, 20), "ema_20": talib.EMA(c, 20), "bb_upper_20_2": u,
            "bb_middle_20_2": m, "bb_lower_20_2": lo, "rsi_14": talib.RSI(c, 14),
            "macd_12_26_9": macd, "macd_signal_12_26_9": sig, "macd_hist_12_26_9": hist,
            "atr_14": talib.ATR(h, l, c, 14), "supertrend_10_3": st,
            "supertrend_direction_10_3": d}


def check(data_dir, h, l, c):
    bad = 0
    for name, want in reference_series(h, l, c).items():
        got = np.fromfile(data_dir / f"series_{name}.f64", dtype="<f8")
        same_nan = np.array_equal(np.isnan(got), np.isnan(want))
        ok = np.isnan(want) | (np.abs(got - want) <= 1e-9 * np.maximum(np.abs(got), np.abs(want)) + 1e-12)
        worst = np.nanmax(np.abs(got - want) / np.maximum(np.abs(want), 1e-300)) if same_nan else float("nan")
        status = "ok" if same_nan and ok.all() else "DIFFERS"
        bad += status != "ok"
        print(f"check {name:<26} {len(got)} values {status:<7} max relative difference {worst:.1e}",
              file=sys.stderr)
    return bad


def time_it(fn, args, runs):
    fn(*args)
    samples = []
    for _ in range(runs):
        t0 = time.thread_time()
        fn(*args)
        samples.append(time.thread_time() - t0)
    return min(samples), statistics.median(samples)


def fmt(s):
    return f"{s * 1e6:10.1f} µs" if s < 0.01 else f"{s * 1e3:10.2f} ms"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=0, help="runs per case (default: 200 small, 20 large)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--slow", action="store_true", help="also time the cases with Python loops (seconds)")
    args = ap.parse_args()

    def emit(case, n, runs, best, median):
        if args.json:
            print(json.dumps({"case": case, "n": n, "runs": runs, "best_s": best, "median_s": median}))
        else:
            print(f"{case:<26} n={n:<8} runs={runs:<4} best {fmt(best)}  median {fmt(median)}")

    if not args.json:
        print(f"talib {talib.__version__} (C {talib.__ta_version__.decode()}), numpy {np.__version__}, "
              f"pandas {pd.__version__}")
    for n in (500, 1_000_000):
        df = pd.read_csv(args.data_dir / f"bars_{n}.csv")
        assert len(df) == n, f"bars_{n}.csv has {len(df)} rows"
        cols = tuple(df[k].to_numpy(dtype=np.float64) for k in ("open", "high", "low", "close", "volume"))
        runs = args.runs or (200 if n < 100_000 else 20)
        if n == 1_000_000:
            if args.check and check(args.data_dir, cols[1], cols[2], cols[3]):
                sys.exit("tradeflow's series differ from TA-Lib's")
            for label, fn in PER_INDICATOR:
                emit(f"talib {label}", n, runs, *time_it(fn, cols, runs))
        emit("talib C only", n, runs, *time_it(talib_only, cols, runs))
        if n < 100_000 or args.slow:
            slow_runs = runs if n < 100_000 else 3
            if n == 1_000_000:
                emit("seed supertrend_10_3", n, slow_runs,
                     *time_it(lambda o, h, l, c, v: supertrend(h, l, c), cols, slow_runs))
            emit("talib defaults", n, slow_runs, *time_it(talib_defaults, cols, slow_runs))
            emit("pandas defaults", n, slow_runs, *time_it(pandas_defaults, cols, slow_runs))


if __name__ == "__main__":
    main()
