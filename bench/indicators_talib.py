#!/usr/bin/env python3
"""Baseline for shared/core/benches/indicators.rs: the same indicator sets over the same
bars, timed with TA-Lib (C, via its Python package) and, for scale, pure pandas.

The bars are the ones the Rust bench writes when TRADEFLOW_BENCH_CSV_DIR is set:

  TRADEFLOW_BENCH_CSV_DIR=$HOME/.cache/tradeflow/bench-data \\
      cargo bench -p tradeflow-core --bench indicators
  ~/.cache/tradeflow/pytools-talib/bin/python bench/indicators_talib.py \\
      --data-dir $HOME/.cache/tradeflow/bench-data

Timing: each case runs `--runs` times (after one warm-up call) on arrays already in
memory, as criterion does on the Rust side; best and median wall time are reported.
"defaults" = SMA 20, EMA 20, BB 20/2, RSI 14, MACD 12/26/9, ATR 14, Supertrend 10/3
(12 series); "all" adds STOCH 5/3/3, OBV and VWAP 20; "C only" is the defaults' TA-Lib calls without
the Supertrend band loop (SMA, EMA, BBANDS, RSI, MACD, ATR 14, ATR 10). Supertrend and VWAP have no
TA-Lib function: Supertrend is its ATR plus the band loop in Python (what the seed
stack would have to do), VWAP is pandas rolling sums.
"""

import argparse
import statistics
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


def talib_defaults(o, h, l, c, v):
    out = [talib.SMA(c, 20), talib.EMA(c, 20), *talib.BBANDS(c, 20, 2.0, 2.0, 0), talib.RSI(c, 14),
           *talib.MACD(c, 12, 26, 9), talib.ATR(h, l, c, 14)]
    out.extend(supertrend_loop(h, l, c, talib.ATR(h, l, c, 10), 3.0))
    return out


def talib_only(o, h, l, c, v):
    """The defaults' TA-Lib calls alone (Supertrend reduced to its ATR 10): the C part."""
    return [talib.SMA(c, 20), talib.EMA(c, 20), *talib.BBANDS(c, 20, 2.0, 2.0, 0), talib.RSI(c, 14),
            *talib.MACD(c, 12, 26, 9), talib.ATR(h, l, c, 14), talib.ATR(h, l, c, 10)]


def talib_all(o, h, l, c, v):
    out = talib_defaults(o, h, l, c, v)
    out.extend(talib.STOCH(h, l, c, 5, 3, 0, 3, 0))
    out.append(talib.OBV(c, v))
    tp = pd.Series((h + l + c) / 3.0)
    vol = pd.Series(v).rolling(20).sum()
    out.append(((tp * v).rolling(20).sum() / vol.where(vol != 0)).to_numpy())
    return out


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


def time_it(fn, args, runs):
    fn(*args)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(*args)
        samples.append(time.perf_counter() - t0)
    return min(samples), statistics.median(samples)


def fmt(s):
    return f"{s * 1e6:10.1f} µs" if s < 0.01 else f"{s * 1e3:10.2f} ms"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--sizes", default="500,1000000")
    ap.add_argument("--runs", type=int, default=0, help="runs per case (default: 200 small, 10 large)")
    args = ap.parse_args()
    print(f"talib {talib.__version__} (C {talib.__ta_version__.decode()}), numpy {np.__version__}, "
          f"pandas {pd.__version__}")
    for n in (int(x) for x in args.sizes.split(",")):
        df = pd.read_csv(args.data_dir / f"bars_{n}.csv")
        assert len(df) == n, f"bars_{n}.csv has {len(df)} rows"
        cols = tuple(df[k].to_numpy(dtype=np.float64) for k in ("open", "high", "low", "close", "volume"))
        runs = args.runs or (200 if n < 100_000 else 10)
        for label, fn in [("talib defaults", talib_defaults), ("talib all", talib_all),
                          ("talib C only", talib_only),
                          ("pandas defaults", pandas_defaults)]:
            best, median = time_it(fn, cols, runs)
            print(f"{label:<16} n={n:<8} runs={runs:<4} best {fmt(best)}  median {fmt(median)}")


if __name__ == "__main__":
    main()
