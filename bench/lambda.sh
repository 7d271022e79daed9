#!/usr/bin/env bash
# Per-function figures of the release Lambdas in one command: zip size, cold init time
# (process spawn to the first Runtime API poll, against a local Runtime API stub, N
# starts: median and p90) and the resident set at that point; with --stack, also the
# peak RSS of one invocation of each step on the demo's data (bench/lambda_bench.py).
#
#   bench/lambda.sh                      # init figures of the zips infra/deploy-local.sh --sizes built
#   N=50 bench/lambda.sh api place-order # some functions only, 50 starts each
#   bench/lambda.sh --stack              # + one invocation each, on the local stack after `make demo`
#
# Reads $LAMBDA_DIR/<function>/bootstrap (or its bootstrap.zip), LAMBDA_DIR defaulting to
# $CARGO_TARGET_DIR/lambda-x86_64 (build them with infra/deploy-local.sh --sizes). Init
# runs point AWS_ENDPOINT_URL at a closed loopback port, so no AWS call succeeds; --stack
# runs point it at the local stack (LOCALSTACK_PORT) and IBKR at its fake gateway
# (FAKE_IBKR_PORT), and take each step's input from the newest succeeded execution.
# Writes the markdown table to stdout and the raw figures to $TRADEFLOW_STATE/bench-lambda/.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../localstack/lib.sh
. localstack/lib.sh

LAMBDA_DIR="${LAMBDA_DIR:-$CARGO_TARGET_DIR/lambda-x86_64}"
OUT="$STATE/bench-lambda"
mkdir -p "$OUT"
args=(--lambda-dir "$LAMBDA_DIR" --scratch "$OUT/bin" -n "${N:-20}" --json "$OUT/figures.json")
if [ "${1:-}" = --stack ]; then
  shift
  stack="http://127.0.0.1:$LOCALSTACK_PORT"
  http_up "$stack/_localstack/health" || die "the local stack is not up (make demo)"
  args+=(--stack "$stack" --ibkr-base-url "http://127.0.0.1:$FAKE_IBKR_PORT/v1/api")
fi
[ -d "$LAMBDA_DIR" ] || die "no $LAMBDA_DIR: build the zips first (infra/deploy-local.sh --sizes)"
rm -rf "$OUT/bin"
python3 bench/lambda_bench.py "${args[@]}" "$@" | tee "$OUT/table.md"
