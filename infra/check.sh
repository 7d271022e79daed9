#!/usr/bin/env bash
# The one command CI runs for infra/: install from the lockfile, validate the ASL file, type-check,
# synthesize offline, run the CDK assertion tests, then cfn-lint and checkov on the templates.
# Needs node 20 + npm and python3 (3.11); installs everything else itself. Exit non-zero on any finding.
#   TRADEFLOW_CACHE      cache dir for the Python tools venv (default ~/.cache/tradeflow)
#   TRADEFLOW_LAMBDA_DIR synth with real cargo lambda output instead of placeholder code
set -euo pipefail
INFRA="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$INFRA/.." && pwd)"
cd "$INFRA"

CFN_LINT_VERSION=1.58.0
CHECKOV_VERSION=3.3.30
# shellcheck source=../localstack/cache.sh
. "$ROOT/localstack/cache.sh"
PYTOOLS="$TRADEFLOW_CACHE/pytools"

# No network beyond the package registries: no CDK notices, telemetry or version checks.
export CI=true CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=1 TS_NODE_TRANSPILE_ONLY=1
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

T0=$SECONDS
step() { printf '\n== %s (%ss)\n' "$1" "$((SECONDS - T0))"; }

step "npm ci"
npm ci --no-audit --no-fund --loglevel=error

step "statemachine/validate.sh"
"$ROOT/statemachine/validate.sh"

step "tsc --noEmit"
npx tsc --noEmit -p .

step "cdk synth (offline)"
rm -rf cdk.out
synth_ctx=(-c preview=true)
if [[ -n "${TRADEFLOW_LAMBDA_DIR:-}" ]]; then
  synth_ctx+=(-c "lambdaDir=$TRADEFLOW_LAMBDA_DIR")
else
  synth_ctx+=(-c placeholderLambdas=true)
fi
npx cdk synth --no-notices --no-version-reporting -q "${synth_ctx[@]}"
TEMPLATES=(cdk.out/TradeflowStack.template.json cdk.out/TradeflowPreviewStack.template.json)
ls -l "${TEMPLATES[@]}"

step "node tests"
node --require ts-node/register --test test/*.test.ts

step "python tools ($PYTOOLS)"
stamp="cfn-lint==$CFN_LINT_VERSION checkov==$CHECKOV_VERSION"
if [[ "$(cat "$PYTOOLS/.stamp" 2>/dev/null)" != "$stamp" ]]; then
  PY="$(command -v python3.11 || command -v python3)"
  rm -rf "$PYTOOLS"
  "$PY" -m venv "$PYTOOLS"
  "$PYTOOLS/bin/pip" install --quiet --disable-pip-version-check $stamp
  echo "$stamp" > "$PYTOOLS/.stamp"
fi
echo "$stamp"

step "cfn-lint"
# W3005 is ignored by the templates' own Metadata (CDK's redundant DependsOn); see lib/tradeflow-stack.ts.
"$PYTOOLS/bin/cfn-lint" "${TEMPLATES[@]}"

step "checkov"
# Suppressions live in each resource's Metadata.checkov.skip with a one-line reason (skipCheckov()).
"$PYTOOLS/bin/checkov" --framework cloudformation --skip-download --compact --quiet \
  $(printf -- '-f %s ' "${TEMPLATES[@]}")

step "infra/check.sh passed"
