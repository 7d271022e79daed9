#!/usr/bin/env bash
# Every check, in the order that fails fastest: formatting, lints, unit tests (Rust,
# then the local runtime's), the state machine and CDK checks, then the integration
# tests against the local stack (LocalStack, its Lambda on the local runtime, the HTTP
# API front, fake IBKR), and last the template deployed into the local stack from
# release zips (infra/deploy-local.sh; TRADEFLOW_SKIP_DEPLOY=1 skips it). Installs
# what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../localstack/cache.sh
. localstack/cache.sh
export CARGO_TERM_COLOR=never
step() { printf '\n==> %s (%s)\n' "$*" "$(date +%T)"; }

step "install local tools (LocalStack, cargo-lambda, Chromium for the viewer test)"
LS_PY="$TRADEFLOW_CACHE/localstack-venv/bin/python"
localstack/install.sh
tests/install-chromium.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo deny (licenses, bans, sources)"
tests/cargo-deny.sh

step "unit tests"
cargo test --workspace --locked --exclude tradeflow-integration-tests

step "backtest vs backtesting.py (same trades, same metrics)"
tests/backtesting_py/run.sh

step "local Lambda runtime: execution environment and HTTP front (no stack)"
python3 -m unittest discover -s localstack/executor/tests -p 'test_sandbox.py'
python3 -m unittest discover -s localstack/executor/tests -p 'test_http_api.py'

step "state machine validation (asl-validator), CDK synth, assertions, cfn-lint, checkov"
infra/check.sh

step "configuration contract: each function's env in the synthesized template vs what its code reads"
cargo test --locked -p tradeflow-adapters --test env_contract -- --ignored --nocapture

step "template changes for LocalStack, on the synthesized templates"
python3 -m unittest discover -s infra/local -p 'test_transform.py'
python3 -m unittest discover -s infra/local -p 'test_iam_check.py'

step "integration tests on the local stack"
started_here=0
if ! curl -fsS -o /dev/null "http://127.0.0.1:${LOCALSTACK_PORT:-4566}/_localstack/health" 2>/dev/null; then
  started_here=1
fi
localstack/up.sh
if [ "$started_here" = 1 ] && [ "${KEEP_STACK:-0}" != 1 ]; then
  trap 'localstack/down.sh >/dev/null 2>&1 || true' EXIT
fi
# shellcheck source=../localstack/env.sh
source localstack/env.sh
cargo test --locked -p tradeflow-integration-tests -- --test-threads 4
# Adapter tests that need LocalStack's DynamoDB (symbol cache, keep-alive state);
# ignored in the unit run above, run here against the stack.
cargo test --locked -p tradeflow-adapters --test ibkr_symbols --test lease --test gateway_discipline -- --ignored

step "IAM: every AWS call the functions made, against their policies in the synthesized template"
# Recorded by the local stack ($TRADEFLOW_STATE/aws-calls, emptied when LocalStack starts);
# the template is the one infra/check.sh synthesized above (infra/cdk.out).
python3 infra/local/iam_check.py --template infra/cdk.out/TradeflowStack.template.json \
  --calls "$TRADEFLOW_STATE/aws-calls"

step "local Lambda runtime in the stack: instances, environment, timeout, crash, API concurrency"
"$LS_PY" -m unittest discover -s localstack/executor/tests -p 'test_stack.py'

if [ "${TRADEFLOW_SKIP_DEPLOY:-0}" != 1 ]; then
  step "the template deployed into the local stack (release zips, account 111111111111)"
  infra/deploy-local.sh
  "$LS_PY" -m unittest discover -s infra/local -p 'test_deployed.py'
  infra/deploy-local.sh --delete
fi
