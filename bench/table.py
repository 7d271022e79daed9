#!/usr/bin/env python3
"""Collects one round of bench/run.sh (criterion's medians and the Python side's JSON
lines) and, with --print, prints the README's benchmark table from every round:
the median over rounds of each side, the ratio, and the spread of the per-round ratios.
Times are thread CPU times on both sides (bench/thread_cpu.rs)."""

import argparse
import json
import statistics
from pathlib import Path

# (row label, criterion path under $CARGO_TARGET_DIR/criterion, Python case, note)
INDICATORS = [
    ("SMA 20", "indicator/sma_20/1000000", "talib sma_20", "`SMA`"),
    ("EMA 20", "indicator/ema_20/1000000", "talib ema_20", "`EMA`"),
    ("Bollinger 20/2", "indicator/bb_20_2/1000000", "talib bb_20_2", "`BBANDS`"),
    ("RSI 14", "indicator/rsi_14/1000000", "talib rsi_14", "`RSI`"),
    ("MACD 12/26/9", "indicator/macd_12_26_9/1000000", "talib macd_12_26_9", "`MACD`"),
    ("ATR 14", "indicator/atr_14/1000000", "talib atr_14", "`ATR`"),
    ("Supertrend 10/3", "indicator/supertrend_10_3/1000000", "talib supertrend_10_3",
     "`ATR` 10 alone (TA-Lib has no Supertrend)"),
]
SETS = [
    ("default set (12 series), 1,000,000 bars as columns", "defaults/columns/1000000", "talib C only",
     "TA-Lib's C calls of the set (Supertrend as its `ATR` 10)"),
    ("default set, 1,000,000 `Bar`s (columns extracted)", "defaults/bars/1000000", "talib C only",
     "same"),
    ("default set, 500 `Bar`s", "defaults/bars/500", "talib C only@500", "same, 500 bars"),
    ("default set, 500 `Bar`s", "defaults/bars/500", "talib defaults@500",
     "TA-Lib + the seed's Python Supertrend loop"),
    ("Supertrend 10/3, 1,000,000 bars", "indicator/supertrend_10_3/1000000", "seed supertrend_10_3",
     "TA-Lib `ATR` + the seed's Python band loop"),
]


def fmt_time(s):
    if s >= 1.0:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} µs"


def collect(args):
    crit = Path(args.criterion)
    rust = {}
    for path in [p for _, p, _, _ in INDICATORS + SETS] + ["chart/png_500_bars_all_panels",
                                                           "chart/rgb_500_bars_all_panels"]:
        f = crit / path / "new" / "estimates.json"
        if f.exists():
            rust[path] = json.loads(f.read_text())["median"]["point_estimate"] * 1e-9
    py = {}
    for f in args.python:
        for line in Path(f).read_text().splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                key = row["case"] if row["n"] == 1_000_000 or row["case"].startswith("mpl") else f"{row['case']}@{row['n']}"
                py.setdefault(key, row)  # this round's file first, round 1's slow cases after
    extra = json.loads(Path(args.extra).read_text()) if args.extra else {}
    Path(args.out).write_text(json.dumps({"rust": rust, "python": py, "extra": extra}))


def print_table(args):
    rounds = [json.loads(Path(f).read_text()) for f in args.rounds]

    def series(rust_key, py_key):
        pairs = [(r["rust"].get(rust_key), r["python"].get(py_key, {}).get("median_s")) for r in rounds]
        return [(a, b) for a, b in pairs if a and b]

    def row(label, rust_key, py_key, note):
        pairs = series(rust_key, py_key)
        if not pairs:
            return f"| {label} | – | – | – | not measured |"
        ours = statistics.median(a for a, _ in pairs)
        theirs = statistics.median(b for _, b in pairs)
        ratios = [a / b for a, b in pairs]
        spread = f"{min(ratios):.2f}–{max(ratios):.2f}" if len(ratios) > 1 else "one round"
        return (f"| {label} | {fmt_time(ours)} | {fmt_time(theirs)} ({note}) | "
                f"**{statistics.median(ratios):.2f}×** | {spread} |")

    print(f"Thread CPU time, median of each side over {len(rounds)} rounds run back to back; "
          "ratio = tradeflow / seed stack (below 1 is faster), with its spread over the rounds.\n")
    print("| 1,000,000 bars | tradeflow | TA-Lib 0.8.2 C call | ratio | spread |")
    print("|---|---|---|---|---|")
    for label, rk, pk, note in INDICATORS:
        print(row(label, rk, pk, note))
    print()
    print("| set | tradeflow | seed stack | ratio | spread |")
    print("|---|---|---|---|---|")
    for label, rk, pk, note in SETS:
        print(row(label, rk, pk, note))
    print()
    print("| one 500-bar chart, all panels, 1600×900 | tradeflow | mplfinance | ratio | spread |")
    print("|---|---|---|---|---|")
    print(row("render + PNG encoding", "chart/png_500_bars_all_panels", "mplfinance chart", "same panels"))
    last = rounds[-1]
    ours_b = last["extra"].get("png_bytes")
    theirs_b = last["python"].get("mplfinance chart", {}).get("bytes")
    if ours_b and theirs_b:
        print(f"| PNG size (lossless) | {ours_b / 1000:.1f} KB | {theirs_b / 1000:.1f} KB | "
              f"**{ours_b / theirs_b:.2f}×** | same every round |")
    rss = [(r["extra"].get("rss_ours_kb"), r["extra"].get("rss_mpf_kb")) for r in rounds]
    rss = [(a, b) for a, b in rss if a and b]
    if rss:
        a = statistics.median(x for x, _ in rss)
        b = statistics.median(y for _, y in rss)
        print(f"| peak RSS of one chart render (process) | {a / 1024:.1f} MiB | {b / 1024:.1f} MiB | "
              f"**{a / b:.2f}×** | reads the CSV, computes, renders, writes: `examples/chart_png.rs` vs the script with `-n 1` |")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--criterion", required=True)
    c.add_argument("--python", nargs="+", required=True)
    c.add_argument("--extra")
    c.add_argument("--out", required=True)
    p = sub.add_parser("print")
    p.add_argument("rounds", nargs="+")
    args = ap.parse_args()
    collect(args) if args.cmd == "collect" else print_table(args)


if __name__ == "__main__":
    main()
