#!/usr/bin/env python3
"""The same strategy in tradeflow and in backtesting.py must make the same trades
and the same metrics.

Data: Alphabet (GOOG) daily OHLCV, 2004-08-19 .. 2013-03-01 (2,148 bars), the real
series backtesting.py ships as `backtesting.test.GOOG` (Yahoo Finance quotes).
Strategy: SMA(10) / SMA(20) crossover, long only: buy when SMA 10 crosses above
SMA 20, close when it crosses below (tradeflow's `decide`: a SELL while long
exits, it does not reverse). Matching settings: orders fill at the next bar's open
(`--fill next-open` / backtesting.py's default), all of the equity per entry
(`--sizing fraction:1` / `buy()`'s default size, 1 − 2⁻⁵², which backtesting.py
prints as .9999) or 99.99% of it (`fraction:0.9999` / `buy(size=0.9999)`), cash 10,000, no
spread, a position still open at the end stays open (backtesting.py's default,
finalize_trades=False). Two cases:
  percent  commission 0.2% of value (`--commission percent:0.002` / commission=.002),
           no stops (`--no-protective-exits`);
  ibkr     IBKR Pro Fixed commission (`--commission ibkr` / the same schedule as a
           callable), with the position monitor's stop 5% and target 10% from the
           signal's close (backtesting.py: sl= and tp= on the entry order).

Usage: compare.py TRADEFLOW_BINARY WORKDIR. Exit status 0 when every trade and
every metric agrees (relative 1e-9, absolute 1e-6); prints a table per case.
"""

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import GOOG, SMA

warnings.filterwarnings("ignore")

CASH = 10_000


def ibkr_fixed(size, price):
    # IBKR Pro Fixed: 0.005/share, min 1.00, max 1% of value, to the cent (half up).
    # backtesting.py also calls this with the fraction (0.9999) when sizing an entry
    # by equity; tradeflow then counts 0.005 per share and leaves the minimum to the
    # cash check, so the fractional call returns the per-share rate alone.
    q = abs(size)
    if q < 1:
        return q * 0.005
    c = min(max(q * 0.005, 1.0), q * price * 0.01)
    return math.floor(c * 100 + 0.5 + 1e-9) / 100


def make_strategy(stop, target, size=None):
    class SmaCross(Strategy):
        def init(self):
            self.fast = self.I(SMA, self.data.Close, 10)
            self.slow = self.I(SMA, self.data.Close, 20)

        def next(self):
            if crossover(self.fast, self.slow):
                if not self.position:
                    close = self.data.Close[-1]
                    kw = {} if size is None else {"size": size}
                    if stop:
                        # tradeflow's rules round the signal's prices to the cent.
                        kw.update(sl=round(close * (1 - stop), 2), tp=round(close * (1 + target), 2))
                    self.buy(**kw)
            elif crossover(self.slow, self.fast):
                self.position.close()

    return SmaCross


CASES = {
    "percent": {
        "commission": 0.002,
        "stop": None,
        "target": None,
        "size": None,
        "args": ["--commission", "percent:0.002", "--sizing", "fraction:1", "--no-protective-exits"],
        "rules": {"stop": {"percent": 0.45}, "target": {"percent": 0.9}},
    },
    "ibkr": {
        "commission": ibkr_fixed,
        "stop": 0.05,
        "target": 0.10,
        "size": 0.9999,
        "args": ["--commission", "ibkr", "--sizing", "fraction:0.9999"],
        "rules": {"stop": {"percent": 0.05}, "target": {"percent": 0.10}},
    },
}

# (tradeflow metric, backtesting.py stat, how to read the stat)
METRICS = [
    ("exposure_time_pct", "Exposure Time [%]", float),
    ("equity_final", "Equity Final [$]", float),
    ("equity_peak", "Equity Peak [$]", float),
    ("commissions", "Commissions [$]", float),
    ("return_pct", "Return [%]", float),
    ("buy_and_hold_return_pct", "Buy & Hold Return [%]", float),
    ("return_ann_pct", "Return (Ann.) [%]", float),
    ("volatility_ann_pct", "Volatility (Ann.) [%]", float),
    ("cagr_pct", "CAGR [%]", float),
    ("sharpe_ratio", "Sharpe Ratio", float),
    ("sortino_ratio", "Sortino Ratio", float),
    ("calmar_ratio", "Calmar Ratio", float),
    ("alpha_pct", "Alpha [%]", float),
    ("beta", "Beta", float),
    ("max_drawdown_pct", "Max. Drawdown [%]", float),
    ("avg_drawdown_pct", "Avg. Drawdown [%]", float),
    ("max_drawdown_duration_days", "Max. Drawdown Duration", lambda v: v.days),
    ("trades", "# Trades", float),
    ("win_rate_pct", "Win Rate [%]", float),
    ("best_trade_pct", "Best Trade [%]", float),
    ("worst_trade_pct", "Worst Trade [%]", float),
    ("avg_trade_pct", "Avg. Trade [%]", float),
    ("max_trade_duration_days", "Max. Trade Duration", lambda v: v.days),
    ("profit_factor", "Profit Factor", float),
    ("expectancy_pct", "Expectancy [%]", float),
    ("sqn", "SQN", float),
    ("kelly_criterion", "Kelly Criterion", float),
]


def close_enough(a, b):
    if a is None or b is None or (isinstance(b, float) and math.isnan(b)):
        return (a is None) == (b is None or (isinstance(b, float) and math.isnan(b)))
    return abs(a - b) <= max(1e-6, 1e-9 * abs(b))


def run_case(name, case, binary, work):
    strategy = {
        "strategy_id": f"goog-sma-10-20-{name}",
        "name": "SMA 10/20 crossover",
        "conid": 208813720,
        "symbol": "GOOG",
        "bars": 1000,
        "indicators": [{"kind": "sma", "period": 10}, {"kind": "sma", "period": 20}],
        "provider": {
            "kind": "rules",
            "rules": {"buy": ["sma_10 crosses above sma_20"], "sell": ["sma_10 crosses below sma_20"], **case["rules"]},
        },
        "risk": {
            "capital": str(CASH), "risk_per_trade": "0.01", "max_position_value": "1000000000",
            "max_open_positions": 1, "daily_loss_limit": "1000000000", "min_confidence": 0.5,
        },
    }
    spath = work / f"{name}.strategy.json"
    spath.write_text(json.dumps(strategy))
    out = work / name
    subprocess.run(
        [binary, "backtest", "--strategy", str(spath), "--csv", str(work / "goog.csv"),
         "--fill", "next-open", "--out", str(out), *case["args"]],
        check=True, stdout=subprocess.DEVNULL,
    )
    ours = json.loads((out / "report.json").read_text())

    bt = Backtest(GOOG, make_strategy(case["stop"], case["target"], case["size"]), cash=CASH, commission=case["commission"])
    stats = bt.run()
    theirs = stats._trades

    failures = []
    if len(ours["trades"]) != len(theirs):
        failures.append(f"trade count {len(ours['trades'])} vs {len(theirs)}")
    for i, (t, (_, r)) in enumerate(zip(ours["trades"], theirs.iterrows())):
        pairs = [
            ("entry bar", t["entry_bar"], r["EntryBar"]), ("exit bar", t["exit_bar"], r["ExitBar"]),
            ("size", float(t["quantity"]), r["Size"]), ("entry price", float(t["entry_price"]), r["EntryPrice"]),
            ("exit price", float(t["exit_price"]), r["ExitPrice"]), ("P&L", float(t["pnl"]), r["PnL"]),
            ("commission", float(t["commission"]), r["Commission"]), ("return", t["return_frac"], r["ReturnPct"]),
        ]
        for label, a, b in pairs:
            if not close_enough(float(a), float(b)):
                failures.append(f"trade {i} {label}: tradeflow {a} vs backtesting.py {b}")
    # Equity, bar by bar.
    eq_ours = np.array(ours["equity"])
    eq_theirs = stats._equity_curve["Equity"].values
    worst = float(np.max(np.abs(eq_ours - eq_theirs)))
    if worst > 1e-6:
        failures.append(f"equity differs by up to {worst}")
    m = ours["metrics"]
    rows = []
    for key, stat, read in METRICS:
        a, b = m.get(key), read(stats[stat])
        ok = close_enough(a, b)
        rows.append((stat, a, b, ok))
        if not ok:
            failures.append(f"{stat}: tradeflow {a} vs backtesting.py {b}")
    # backtesting.py rounds the average durations up to whole days.
    for key, stat in [("avg_drawdown_duration_days", "Avg. Drawdown Duration"), ("avg_trade_duration_days", "Avg. Trade Duration")]:
        a, b = math.ceil(m[key] - 1e-9), stats[stat].days
        rows.append((stat, a, b, a == b))
        if a != b:
            failures.append(f"{stat}: tradeflow {a} vs backtesting.py {b}")
    exits = {}
    for t in ours["trades"]:
        exits[t["exit_reason"]] = exits.get(t["exit_reason"], 0) + 1
    print(f"case {name}: {len(ours['trades'])} trades (exits {exits}), equity max |diff| {worst:.2e}")
    for stat, a, b, ok in rows:
        print(f"  {stat:<26} {a!s:>22} {b!s:>22}  {'ok' if ok else 'DIFFERS'}")
    return failures


def main():
    binary, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    goog = GOOG.copy()
    goog.index.name = "date"
    goog.columns = [c.lower() for c in goog.columns]
    goog.to_csv(work / "goog.csv")
    failed = 0
    for name, case in CASES.items():
        problems = run_case(name, case, binary, work)
        for p in problems:
            print(f"  FAIL {p}")
        failed += bool(problems)
    passed = len(CASES) - failed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
