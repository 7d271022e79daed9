#!/usr/bin/env python3
"""Baseline for the chart benchmark: the seed's Python stack (mplfinance) rendering
the same bars with comparable panels (candles + volume, SMA/EMA/Bollinger overlays,
RSI with 30/70, MACD with signal and histogram, ATR) to an in-memory 1600x900 PNG.

Timed like the criterion bench (`shared/charts/benches/render.rs`): indicators are
computed once, then only the render-to-PNG-bytes is timed, as the thread's CPU time
(`time.thread_time()`, the clock of bench/thread_cpu.rs); prints the median of N.
bench/run.sh runs it with the bars the Rust bench writes (chart_bars_500.csv).

bench/run.sh installs the stack (bench/requirements.txt), writes the bars and runs this
next to the Rust bench; by hand: `python bench/charts_mplfinance.py --csv BARS.csv -n 20`.
Peak memory of one render: run it with `-n 1` under `/usr/bin/time -v`.
"""

import argparse
import io
import json
import statistics
import time

import matplotlib

matplotlib.use("Agg")  # headless, like a Lambda

import mplfinance as mpf  # noqa: E402
import pandas as pd  # noqa: E402


def indicators(df: pd.DataFrame) -> dict:
    close = df["Close"]
    out = {}
    out["sma"] = close.rolling(20).mean()
    out["ema"] = close.ewm(span=20, adjust=False).mean()
    sd = close.rolling(20).std(ddof=0)
    out["bb_upper"] = out["sma"] + 2 * sd
    out["bb_lower"] = out["sma"] - 2 * sd
    delta = close.diff()
    gain = delta.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    loss = (-delta.clip(upper=0)).ewm(alpha=1 / 14, adjust=False).mean()
    out["rsi"] = 100 - 100 / (1 + gain / loss)
    macd = close.ewm(span=12, adjust=False).mean() - close.ewm(span=26, adjust=False).mean()
    signal = macd.ewm(span=9, adjust=False).mean()
    out["macd"], out["signal"], out["hist"] = macd, signal, macd - signal
    prev = close.shift()
    tr = pd.concat(
        [df["High"] - df["Low"], (df["High"] - prev).abs(), (df["Low"] - prev).abs()], axis=1
    ).max(axis=1)
    out["atr"] = tr.ewm(alpha=1 / 14, adjust=False).mean()
    return out


def render(df: pd.DataFrame, ind: dict) -> bytes:
    hist_colors = ["#26a69a" if v >= 0 else "#ef5350" for v in ind["hist"].fillna(0)]
    adds = [
        mpf.make_addplot(ind["sma"], color="#ff9800", width=1.5),
        mpf.make_addplot(ind["ema"], color="#9c27b0", width=1.5),
        mpf.make_addplot(ind["bb_upper"], color="#2196f3", width=1),
        mpf.make_addplot(ind["bb_lower"], color="#2196f3", width=1),
        mpf.make_addplot(ind["rsi"], panel=2, color="#7e57c2", ylabel="RSI", ylim=(0, 100)),
        mpf.make_addplot([70] * len(df), panel=2, color="gray", linestyle="--", width=0.8),
        mpf.make_addplot([30] * len(df), panel=2, color="gray", linestyle="--", width=0.8),
        mpf.make_addplot(ind["hist"], panel=3, type="bar", color=hist_colors, ylabel="MACD", secondary_y=False),
        mpf.make_addplot(ind["macd"], panel=3, color="#2962ff", secondary_y=False),
        mpf.make_addplot(ind["signal"], panel=3, color="#ff6d00", secondary_y=False),
        mpf.make_addplot(ind["atr"], panel=4, color="#00897b", ylabel="ATR"),
    ]
    buf = io.BytesIO()
    mpf.plot(
        df,
        type="candle",
        style="yahoo",
        volume=True,
        addplot=adds,
        panel_ratios=(5, 1.2, 1.5, 1.8, 1.3),
        title="AAPL daily",
        figsize=(16, 9),
        tight_layout=True,
        # bbox_inches=None keeps the canvas at exactly 1600x900 (mplfinance defaults to tight).
        savefig=dict(fname=buf, dpi=100, format="png", bbox_inches=None),
    )
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", required=True)
    ap.add_argument("-n", type=int, default=20, help="timed renders (median reported)")
    ap.add_argument("--out", help="also write the last PNG here")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of a line")
    args = ap.parse_args()
    df = pd.read_csv(args.csv, parse_dates=["date"], index_col="date")
    df.columns = [c.capitalize() for c in df.columns]
    ind = indicators(df)
    render(df, ind)  # warm-up: font cache, imports of backends
    times, png = [], b""
    for _ in range(args.n):
        t0 = time.thread_time()
        png = render(df, ind)
        times.append(time.thread_time() - t0)
    if args.out:
        with open(args.out, "wb") as f:
            f.write(png)
    if args.json:
        print(json.dumps({"case": "mplfinance chart", "n": len(df), "runs": args.n,
                          "median_s": statistics.median(times), "best_s": min(times), "bytes": len(png)}))
        return
    print(
        f"mplfinance {len(df)} bars 1600x900: median {statistics.median(times) * 1e3:.1f} ms"
        f" over {args.n} (min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}), {len(png)} bytes"
    )


if __name__ == "__main__":
    main()
