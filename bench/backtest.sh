#!/usr/bin/env bash
# Backtest speed, tradeflow vs backtesting.py, in one run on one machine: the same
# SMA 10/20 crossover (long only, next-open fills, 0.2% commission, all equity per
# entry) on the same 10 years of real daily bars (S&P 500 index, 2009-01-02 ..
# 2018-12-31, 2,516 bars, from the `arch` package's bundled Yahoo Finance data).
# Both sides time only the backtest itself (data already in memory), median of N
# runs. Prints bars per second for both and the ratio.
#
#   bench/backtest.sh [RUNS]      (default 21; needs a release build, made here)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../localstack/cache.sh
. localstack/cache.sh
runs="${1:-21}"
venv="$TRADEFLOW_CACHE/bench-backtest-py"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import backtesting, importlib.util as u; assert u.find_spec("arch")' 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/backtesting_py/requirements.txt
  # Only arch's data files are used; its compiled models and their dependencies are not.
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps arch==8.0.0
fi
cargo build --release --locked --quiet -p tradeflow-cli --bin tradeflow
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" bench/backtest_backtestingpy.py "$CARGO_TARGET_DIR/release/tradeflow" "$work" "$runs"
