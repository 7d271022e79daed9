#!/usr/bin/env bash
# Builds the release zips, synthesizes the CDK app with them and deploys the template
# into the local stack's CloudFormation, in account 111111111111 (the provisioned dev
# stack lives in 000000000000), where its functions run on the local Lambda runtime
# from their zips with the environment the template gives them.
#
#   infra/deploy-local.sh            build (if needed), synth, deploy; prints zip sizes and deploy time
#   infra/deploy-local.sh --delete   delete the deployed stack
#   infra/deploy-local.sh --sizes    build (if needed) and print the zip sizes only
#
# The local stack must be up (localstack/up.sh). Uses the same variables as
# localstack/*.sh (TRADEFLOW_STATE, LOCALSTACK_PORT, FAKE_IBKR_PORT, CARGO_TARGET_DIR).
# The zips are x86_64, not arm64 as deployed: this machine has no aarch64 Rust standard
# library (rustup cannot download it here) and could not run arm64 binaries anyway;
# infra/local/transform.py switches the functions' architecture accordingly.
# Output: $TRADEFLOW_STATE/deploy/ (cdk.out, outputs.json, zip-sizes.md).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=../localstack/lib.sh
. "$root/localstack/lib.sh"

ACCOUNT="${TRADEFLOW_DEPLOY_ACCOUNT:-111111111111}"
REGION=us-east-1
LAMBDA_DIR="$CARGO_TARGET_DIR/lambda-x86_64"
OUT="$STATE/deploy"
mode="${1:-deploy}"
export AWS_ENDPOINT_URL="http://127.0.0.1:$LOCALSTACK_PORT"

mkdir -p "$OUT"
need_stack() {
  http_up "$AWS_ENDPOINT_URL/_localstack/health" || die "the local stack is not up (localstack/up.sh)"
  [ -x "$LS_VENV/bin/python" ] || die "LocalStack's venv is missing (localstack/install.sh)"
}

if [ "$mode" = --delete ]; then
  need_stack
  exec "$LS_VENV/bin/python" "$here/local/deploy.py" --delete --account "$ACCOUNT" --region "$REGION"
fi

# 1. Release zips (cargo lambda build, as deployed but for x86_64) ---------------------
mapfile -t functions < <(python3 -c 'import json,sys; [print(f["name"]) for f in json.load(open(sys.argv[1]))["functions"]]' "$root/infra/resources.json")
t0=$SECONDS
say "cargo lambda build --release (x86_64): ${#functions[@]} functions into $LAMBDA_DIR"
(cd "$root" && PATH="$CL_VENV/bin:$PATH" cargo lambda build --release --output-format zip \
  --lambda-dir "$LAMBDA_DIR" $(printf -- '-p %s ' "${functions[@]}"))
say "build: $((SECONDS - t0)) s"
{
  echo "| function | bootstrap.zip |"
  echo "|---|---|"
  for f in "${functions[@]}"; do
    zip="$LAMBDA_DIR/$f/bootstrap.zip"
    [ -f "$zip" ] || die "no $zip"
    printf '| %s | %s |\n' "$f" "$(python3 -c 'import os,sys; b=os.path.getsize(sys.argv[1]); print(f"{b/1e6:.1f} MB ({b} bytes)")' "$zip")"
  done
} | tee "$OUT/zip-sizes.md"
[ "$mode" = --sizes ] && exit 0
need_stack

# 2. Synthesize with the zips --------------------------------------------------------
# The gateway is this stack's fake one; nothing else differs from a deploy's synth.
ibkr="http://127.0.0.1:$FAKE_IBKR_PORT/v1/api"
# The functions read both from SSM; on AWS they would refuse this loopback URL and the
# fake's account, here LocalStack's Lambda sets AWS_ENDPOINT_URL, which allows them.
account="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["local_env"]["IBKR_ACCOUNT_ID"])' "$root/infra/resources.json")"
ctx=(-c "lambdaDir=$LAMBDA_DIR" -c deletionProtection=false -c "ibkrBaseUrl=$ibkr" -c "ibkrAccountId=$account")
t0=$SECONDS
(
  cd "$root/infra"
  export CI=true CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=1 TS_NODE_TRANSPILE_ONLY=1
  export CDK_DEFAULT_ACCOUNT="$ACCOUNT" CDK_DEFAULT_REGION="$REGION"
  # The CLI replaces CDK_DEFAULT_ACCOUNT with the account its credentials resolve to
  # (STS at AWS_ENDPOINT_URL): LocalStack maps a 12-digit access key id to that account.
  export AWS_ACCESS_KEY_ID="$ACCOUNT" AWS_SECRET_ACCESS_KEY=test AWS_REGION="$REGION"
  unset AWS_PROFILE AWS_SESSION_TOKEN
  [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
  # The gateway's VPC asks for the account's availability zones, a lookup the CDK CLI
  # would make against AWS: give them as cached context (cdk.context.json, not in git).
  python3 - "$ACCOUNT" "$REGION" <<'PY'
import json, os, sys
account, region = sys.argv[1], sys.argv[2]
path = "cdk.context.json"
ctx = json.load(open(path)) if os.path.exists(path) else {}
ctx[f"availability-zones:account={account}:region={region}"] = [f"{region}a", f"{region}b"]
json.dump(ctx, open(path, "w"), indent=2)
PY
  rm -rf "$OUT/cdk.out"
  npx cdk synth --no-lookups --no-notices --no-version-reporting -q -o "$OUT/cdk.out" "${ctx[@]}" >/dev/null
)
say "synth: $((SECONDS - t0)) s"

# 3. Deploy --------------------------------------------------------------------------
"$LS_VENV/bin/python" "$here/local/deploy.py" --cdk-out "$OUT/cdk.out" --account "$ACCOUNT" \
  --region "$REGION" --outputs "$OUT/outputs.json"
