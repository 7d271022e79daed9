#!/usr/bin/env python3
"""Reference values for tradeflow's indicator catalogue, computed by TA-Lib itself.

Reads tests/data/ohlcv.csv (date,open,high,low,close,volume) and writes
tests/data/talib_reference.csv: one column per series, named like the Rust series
(`<indicator>[_<output>]_<params>`), empty where TA-Lib returns NaN.

  --make-input   first (re)writes ohlcv.csv from a seeded random walk (pure Python,
                 deterministic), including a halted stretch of identical zero-volume
                 bars so zero-range and zero-variance edge cases are covered.

Sources per series:
  sma, ema, rsi, atr, macd, bb, stoch, obv: TA-Lib (talib Python package, C library).
  supertrend: TA-Lib has none; computed here from talib.ATR with the standard
              (TradingView ta.supertrend) band-ratchet rules, written independently
              of the Rust code.
  vwap:       TA-Lib has none; rolling VWAP of the typical price (h+l+c)/3 over
              `period` bars with pandas rolling sums; NaN where the window's volume is 0.

Setup (not needed for CI; the CSVs are committed):
  python3.11 -m venv ~/.cache/tradeflow/pytools-talib
  ~/.cache/tradeflow/pytools-talib/bin/pip install TA-Lib numpy pandas
  ~/.cache/tradeflow/pytools-talib/bin/python tests/data/gen_talib_reference.py
"""

import argparse
import datetime as dt
import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
import talib

HERE = Path(__file__).resolve().parent
INPUT = HERE / "ohlcv.csv"
OUTPUT = HERE / "talib_reference.csv"

# The specs the Rust reference test computes: the defaults plus variants that move
# the seeding offsets (MACD fast/slow gap, short periods, fractional multipliers).
SMA = [20, 5, 1]
EMA = [20, 5, 1]
RSI = [14, 7, 2]
ATR = [14, 5, 1]
MACD = [(12, 26, 9), (5, 35, 5), (3, 4, 1)]
BB = [(20, 2.0), (10, 1.5)]
SUPERTREND = [(10, 3.0), (7, 2.5)]
STOCH = [(5, 3, 3), (14, 1, 4)]
VWAP = [20, 3]


def p(x):
    """Formats a parameter the way Rust's `Display` for f64/usize does (2.0 -> "2")."""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def make_input(n=300, seed=20240601):
    rng = random.Random(seed)
    day = dt.date(2023, 1, 2)
    close = 100.0
    rows = []
    while len(rows) < n:
        if day.weekday() < 5:
            i = len(rows)
            if 150 <= i < 175:
                # Halted: identical bars, no volume.
                rows.append((day, close, close, close, close, 0))
            else:
                u1, u2 = max(rng.random(), 1e-12), rng.random()
                z = math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
                drift = 0.002 * math.sin(i / 40.0)
                o = round(close * (1 + 0.005 * (rng.random() - 0.5)), 2)
                c = round(close * (1 + drift + 0.015 * z), 2)
                if rng.random() < 0.05:
                    c = round(close, 2)  # unchanged close: OBV/RSI equality branch
                spread = close * (0.003 + 0.01 * rng.random())
                h = round(max(o, c) + spread * rng.random(), 2)
                lo = round(min(o, c) - spread * rng.random(), 2)
                v = int(1_000_000 * (0.5 + rng.random()))
                rows.append((day, o, h, lo, c, v))
                close = c
        day += dt.timedelta(days=1)
    with INPUT.open("w") as f:
        f.write("date,open,high,low,close,volume\n")
        for d, o, h, lo, c, v in rows:
            f.write(f"{d.isoformat()},{o:.2f},{h:.2f},{lo:.2f},{c:.2f},{v}\n")


def supertrend(high, low, close, period, multiplier):
    """Standard Supertrend (TradingView ta.supertrend) on TA-Lib's Wilder ATR.

    direction: +1 uptrend (value is the lower band), -1 downtrend (upper band).
    """
    atr = talib.ATR(high, low, close, timeperiod=period)
    n = len(close)
    value = np.full(n, np.nan)
    direction = np.full(n, np.nan)
    hl2 = (high + low) / 2.0
    upper = lower = st = None
    for i in range(n):
        if np.isnan(atr[i]):
            continue
        bu = hl2[i] + multiplier * atr[i]
        bl = hl2[i] - multiplier * atr[i]
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


def vwap(df, period):
    tp = (df["high"] + df["low"] + df["close"]) / 3.0
    pv = (tp * df["volume"]).rolling(period).sum()
    vol = df["volume"].rolling(period).sum()
    return (pv / vol.where(vol != 0)).to_numpy()


def reference(df):
    o, h, l, c, v = (df[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close", "volume"))
    cols = {"date": df["date"]}
    for n in SMA:
        cols[f"sma_{n}"] = talib.SMA(c, timeperiod=n)
    for n in EMA:
        cols[f"ema_{n}"] = talib.EMA(c, timeperiod=n)
    for n in RSI:
        cols[f"rsi_{n}"] = talib.RSI(c, timeperiod=n)
    for n in ATR:
        cols[f"atr_{n}"] = talib.ATR(h, l, c, timeperiod=n)
    for f_, s, g in MACD:
        m, sig, hist = talib.MACD(c, fastperiod=f_, slowperiod=s, signalperiod=g)
        cols[f"macd_{f_}_{s}_{g}"] = m
        cols[f"macd_signal_{f_}_{s}_{g}"] = sig
        cols[f"macd_hist_{f_}_{s}_{g}"] = hist
    for n, k in BB:
        up, mid, lo = talib.BBANDS(c, timeperiod=n, nbdevup=k, nbdevdn=k, matype=talib.MA_Type.SMA)
        cols[f"bb_upper_{n}_{p(k)}"] = up
        cols[f"bb_middle_{n}_{p(k)}"] = mid
        cols[f"bb_lower_{n}_{p(k)}"] = lo
    for n, k in SUPERTREND:
        val, d = supertrend(h, l, c, n, k)
        cols[f"supertrend_{n}_{p(k)}"] = val
        cols[f"supertrend_direction_{n}_{p(k)}"] = d
    for fk, sk, sd in STOCH:
        k_, d_ = talib.STOCH(h, l, c, fastk_period=fk, slowk_period=sk, slowk_matype=talib.MA_Type.SMA,
                             slowd_period=sd, slowd_matype=talib.MA_Type.SMA)
        cols[f"stoch_k_{fk}_{sk}_{sd}"] = k_
        cols[f"stoch_d_{fk}_{sk}_{sd}"] = d_
    cols["obv"] = talib.OBV(c, v)
    for n in VWAP:
        cols[f"vwap_{n}"] = vwap(df, n)
    return pd.DataFrame(cols)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--make-input", action="store_true", help="regenerate ohlcv.csv first")
    args = ap.parse_args()
    if args.make_input:
        make_input()
    df = pd.read_csv(INPUT)
    out = reference(df)
    # repr-exact floats (17 significant digits), empty for NaN.
    out.to_csv(OUTPUT, index=False, na_rep="", float_format="%.17g")
    print(f"talib {talib.__version__} (C {talib.__ta_version__.decode()}): wrote {OUTPUT} "
          f"({len(out)} rows, {len(out.columns) - 1} series)")


if __name__ == "__main__":
    main()
