#!/usr/bin/env python3
"""The backtest benchmark's two sides (see bench/backtest.sh): backtesting.py timed
in process, tradeflow's engine timed by `tradeflow backtest --repeat` (which times
the engine only, after reading the CSV). Also checks that both made the same trades,
so the speed is of the same work."""

import gzip
import json
import re
import statistics
import subprocess
import sys
import time
import warnings
import importlib.util
from io import StringIO
from pathlib import Path

import pandas as pd
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import SMA

warnings.filterwarnings("ignore")


class SmaCross(Strategy):
    def init(self):
        self.fast = self.I(SMA, self.data.Close, 10)
        self.slow = self.I(SMA, self.data.Close, 20)

    def next(self):
        if crossover(self.fast, self.slow):
            if not self.position:
                self.buy()
        elif crossover(self.slow, self.fast):
            self.position.close()


def sp500_decade():
    # Read the file without importing arch (its package imports scipy, not installed).
    root = Path(importlib.util.find_spec("arch").submodule_search_locations[0])
    raw = (root / "data" / "sp500" / "sp500.csv.gz").read_bytes()
    df = pd.read_csv(StringIO(gzip.decompress(raw).decode()), index_col=0, parse_dates=True, date_format="%m/%d/%Y")
    df = df.loc["2009-01-01":"2018-12-31", ["Open", "High", "Low", "Close", "Volume"]]
    return df


def main():
    binary, work, runs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    data = sp500_decade()
    csv = data.copy()
    csv.index.name = "date"
    csv.index = csv.index.strftime("%Y-%m-%d")
    csv.columns = [c.lower() for c in csv.columns]
    csv.to_csv(work / "sp500.csv")
    strategy = {
        "strategy_id": "sp500-sma-10-20", "name": "SMA 10/20", "conid": 416904, "symbol": "SPX", "bars": 1000,
        "indicators": [{"kind": "sma", "period": 10}, {"kind": "sma", "period": 20}],
        "provider": {"kind": "rules", "rules": {
            "buy": ["sma_10 crosses above sma_20"], "sell": ["sma_10 crosses below sma_20"],
            "stop": {"percent": 0.45}, "target": {"percent": 0.9}}},
        "risk": {"capital": "1000000", "risk_per_trade": "0.01", "max_position_value": "1000000000",
                 "max_open_positions": 1, "daily_loss_limit": "1000000000", "min_confidence": 0.5},
    }
    (work / "s.json").write_text(json.dumps(strategy))

    bt = Backtest(data, SmaCross, cash=1_000_000, commission=0.002)
    bt.run()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        stats = bt.run()
        times.append(time.perf_counter() - t0)
    py = statistics.median(times)

    out = subprocess.run(
        [binary, "backtest", "--strategy", str(work / "s.json"), "--csv", str(work / "sp500.csv"),
         "--fill", "next-open", "--sizing", "fraction:1", "--commission", "percent:0.002",
         "--no-protective-exits", "--repeat", str(runs), "--json"],
        check=True, capture_output=True, text=True,
    )
    ours = json.loads(out.stdout)
    rs = float(re.search(r"engine: median ([0-9.]+) ms", out.stderr).group(1)) / 1e3

    same = [(t["entry_bar"], t["exit_bar"], int(float(t["quantity"]))) for t in ours["trades"]] == [
        (int(r.EntryBar), int(r.ExitBar), int(r.Size)) for r in stats._trades.itertuples()]
    n = len(data)
    print(f"S&P 500 daily {data.index[0]:%Y-%m-%d} .. {data.index[-1]:%Y-%m-%d}: {n} bars, "
          f"{len(stats._trades)} trades, same trades: {same}")
    print(f"backtesting.py 0.6.6: median {py * 1e3:.2f} ms, {n / py:,.0f} bars/s")
    print(f"tradeflow backtest:   median {rs * 1e3:.2f} ms, {n / rs:,.0f} bars/s")
    print(f"ratio: tradeflow is {py / rs:.1f}x the bars/s of backtesting.py")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
