#!/usr/bin/env bash
# The README's benchmark table in one command: tradeflow's criterion benches and the
# seed's Python stack (TA-Lib 0.8.2, mplfinance; pinned in bench/requirements.txt,
# installed from PyPI into a venv of its own) back to back, ROUNDS times, then the
# table (markdown) with ratios and their spread over the rounds.
#
#   bench/run.sh              # 3 rounds, ≈ 12 min on 2 cores (first run adds builds)
#   ROUNDS=5 bench/run.sh
#
# Honours CARGO_TARGET_DIR; TRADEFLOW_BENCH_VENV and TRADEFLOW_BENCH_DATA (default
# under $HOME/.cache/tradeflow) hold the venv, the bars and the per-round results.
# Also checks every 1,000,000-bar default series against TA-Lib's (first round).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
# shellcheck source=../localstack/cache.sh
. localstack/cache.sh
VENV=${TRADEFLOW_BENCH_VENV:-$TRADEFLOW_CACHE/bench-venv}
DATA=${TRADEFLOW_BENCH_DATA:-$TRADEFLOW_CACHE/bench-data}
RESULTS="$DATA/results"
mkdir -p "$DATA" "$RESULTS"
rm -f "$RESULTS"/round_*.json

say() { printf '\n== %s\n' "$*" >&2; }

say "Python stack into $VENV"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r bench/requirements.txt
PY="$VENV/bin/python"

say "building the benches and the one-chart process"
cargo bench -p tradeflow-core --bench indicators --no-run >&2
cargo bench -p tradeflow-charts --bench render --no-run >&2
cargo build --release -p tradeflow-charts --example chart_png >&2

# One process's peak resident set, in KB.
peak_rss() { /usr/bin/time -f '%M' -o "$DATA/rss" "$@" >/dev/null 2>&1; cat "$DATA/rss"; }

for r in $(seq 1 "$ROUNDS"); do
    say "round $r/$ROUNDS: indicators, tradeflow"
    TRADEFLOW_BENCH_CSV_DIR="$DATA" cargo bench -p tradeflow-core --bench indicators -- \
        --noplot '^(indicator/|defaults/(bars|columns)/)' >&2
    say "round $r/$ROUNDS: indicators, TA-Lib"
    extra_flags=()
    [ "$r" = 1 ] && extra_flags=(--check --slow)
    "$PY" bench/indicators_talib.py --data-dir "$DATA" --json "${extra_flags[@]}" > "$DATA/py_ind.jsonl"
    [ "$r" = 1 ] && cp "$DATA/py_ind.jsonl" "$DATA/py_ind_slow.jsonl"
    say "round $r/$ROUNDS: chart, tradeflow"
    TRADEFLOW_BENCH_CSV_DIR="$DATA" cargo bench -p tradeflow-charts --bench render -- --noplot >&2
    say "round $r/$ROUNDS: chart, mplfinance"
    "$PY" bench/charts_mplfinance.py --csv "$DATA/chart_bars_500.csv" -n 10 --json --out "$DATA/mpf.png" \
        > "$DATA/py_chart.jsonl"
    ours_rss=$(peak_rss "$CARGO_TARGET_DIR/release/examples/chart_png" "$DATA/chart_bars_500.csv" \
        "$DATA/ours.png")
    mpf_rss=$(peak_rss "$PY" bench/charts_mplfinance.py --csv "$DATA/chart_bars_500.csv" -n 1 \
        --out "$DATA/mpf1.png")
    printf '{"png_bytes": %d, "rss_ours_kb": %d, "rss_mpf_kb": %d}\n' \
        "$(wc -c < "$DATA/chart_500.png")" "$ours_rss" "$mpf_rss" > "$DATA/extra.json"
    "$PY" bench/table.py collect --criterion "$CARGO_TARGET_DIR/criterion" \
        --python "$DATA/py_ind.jsonl" "$DATA/py_ind_slow.jsonl" "$DATA/py_chart.jsonl" \
        --extra "$DATA/extra.json" --out "$RESULTS/round_$r.json"
done

say "table"
"$PY" bench/table.py print "$RESULTS"/round_*.json
