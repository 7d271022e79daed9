#!/usr/bin/env bash
# tradeflow's backtest against backtesting.py (pinned in requirements.txt) on the
# same real daily series: the same trades and the same metrics (compare.py).
# Installs backtesting.py into a cached venv under $HOME/.cache/tradeflow (≈ 70 s
# once; keyed by the requirements' hash), then ≈ 5 s per run.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=../../localstack/cache.sh
. localstack/cache.sh
here=tests/backtesting_py
venv="$TRADEFLOW_CACHE/backtesting-py-$(sha256sum "$here/requirements.txt" | cut -c1-12)"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import backtesting' 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  timeout 900 "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$here/requirements.txt"
fi
cargo build --locked --quiet -p tradeflow-cli --bin tradeflow
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
timeout 300 "$venv/bin/python" "$here/compare.py" "$CARGO_TARGET_DIR/debug/tradeflow" "$work"
