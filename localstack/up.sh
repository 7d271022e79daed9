#!/usr/bin/env bash
# Brings the whole local stack up as host processes on 127.0.0.1 and returns
# when it is ready (no Docker needed):
#   LocalStack 4.13.1   :4566  S3, DynamoDB, Step Functions, EventBridge, Lambda, IAM, STS,
#                              Logs, CloudFormation, SSM, Secrets Manager, SNS, CloudWatch, KMS.
#                              Its Lambda runs each function as a process per execution
#                              environment (localstack/executor, executor "tradeflow"),
#                              with the function's configured environment and timeout.
#   fake IBKR gateway   :5001  (if localstack/fake-ibkr exists)
#   HTTP API front      :9000  the api function as API Gateway's HTTP API serves it
#                              (payload format 2.0), invoked through LocalStack's Lambda
# Idempotent: if everything is already up it says so and exits 0.
# TRADEFLOW_LAMBDAS=0 skips the Rust build (AWS side only; functions get placeholder code).
# Stop with localstack/down.sh. Logs and pid files: $TRADEFLOW_STATE
# (default ~/.cache/tradeflow/state); each function's output: $TRADEFLOW_STATE/lambda/<name>.log;
# each function's AWS calls (with the IAM actions they need, for infra/local/iam_check.py):
# $TRADEFLOW_STATE/aws-calls/<name>.jsonl, emptied whenever LocalStack starts.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

t0=$(date +%s)
has_workspace=0; [ -f "$REPO_ROOT/Cargo.toml" ] && [ "${TRADEFLOW_LAMBDAS:-1}" != 0 ] && has_workspace=1
has_ibkr=0; [ -f "$REPO_ROOT/localstack/fake-ibkr/Cargo.toml" ] && has_ibkr=1
BIN_DIR="$CARGO_TARGET_DIR/debug"

ls_up() { running localstack && http_up "http://127.0.0.1:$LOCALSTACK_PORT/_localstack/health"; }
ibkr_up() { running fake-ibkr && http_up "http://127.0.0.1:$FAKE_IBKR_PORT/fake/stats"; }
api_up() { running http-api && port_busy "$API_PORT"; }

if ls_up && { [ ! -x "$CARGO_TARGET_DIR/debug/fake-ibkr" ] || ibkr_up; } && api_up; then
  say "already up (LocalStack :$LOCALSTACK_PORT, API :$API_PORT, state $STATE); re-provision with:"
  say "  TRADEFLOW_FUNCTION_BIN_DIR=$BIN_DIR TRADEFLOW_STATE=$STATE $LS_VENV/bin/python $here/provision.py"
  exit 0
fi

"$here/install.sh"
mkdir -p "$STATE"

# 1. LocalStack (started first: it boots while cargo builds) ----------------
if ls_up; then
  # Started by an up.sh from before the local runtime (functions served by cargo lambda watch)?
  [ -d "$STATE/python-plugins" ] || die "this LocalStack runs the old Lambda executor: localstack/down.sh && localstack/up.sh"
  say "localstack: already running (pid $(cat "$STATE/localstack.pid"))"
else
  running localstack && die "localstack is running but unhealthy: run localstack/down.sh"
  port_busy "$LOCALSTACK_PORT" &&
    die "port $LOCALSTACK_PORT is taken by a process this state dir ($STATE) did not start (another stack?)"
  # FILESYSTEM_ROOT is per state dir; the pre-seeded libraries (java, DynamoDB
  # Local) are linked in from the install cache.
  fs="$STATE/localstack-fs"
  mkdir -p "$fs/var/lib/localstack/lib" "$STATE/localstack-volume"
  for lib in java dynamodb-local; do
    ln -sfn "$LS_FS/var/lib/localstack/lib/$lib" "$fs/var/lib/localstack/lib/$lib"
  done
  say "localstack: starting on 127.0.0.1:$LOCALSTACK_PORT (log $STATE/localstack.log)"
  # The executor plugin is loaded from the work tree, not installed into the shared
  # venv: its entry point comes from a .dist-info generated from pyproject.toml.
  plugins="$STATE/python-plugins"
  rm -rf "$plugins"; mkdir -p "$plugins"
  "$LS_VENV/bin/python" - "$here/executor/pyproject.toml" "$plugins" <<'PY'
import sys, tomllib, pathlib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
info = pathlib.Path(sys.argv[2]) / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
info.mkdir()
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
(info / "entry_points.txt").write_text("".join(
    f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
    for group, eps in project["entry-points"].items()))
PY
  mkdir -p "$STATE/lambda"
  # A fresh LocalStack, fresh records: iam_check.py judges what this stack's functions did.
  rm -rf "$STATE/aws-calls"; mkdir -p "$STATE/aws-calls"
  # cwd = $STATE: from the repo root, python would treat our localstack/ folder
  # as part of the `localstack` namespace package.
  start_bg localstack "$STATE" env \
    PYTHONPATH="$here/executor:$plugins" \
    GATEWAY_LISTEN="127.0.0.1:$LOCALSTACK_PORT" \
    SERVICES=s3,dynamodb,stepfunctions,events,lambda,iam,sts,logs,cloudformation,ssm,secretsmanager,sns,cloudwatch,kms \
    OVERRIDE_IN_DOCKER=0 \
    FILESYSTEM_ROOT="$fs" \
    LOCALSTACK_VOLUME_DIR="$STATE/localstack-volume" \
    DNS_ADDRESS=0 \
    DISABLE_EVENTS=1 \
    SKIP_SSL_CERT_DOWNLOAD=1 \
    LAMBDA_RUNTIME_EXECUTOR=tradeflow \
    TRADEFLOW_LAMBDA_LOG_DIR="$STATE/lambda" \
    TRADEFLOW_AWS_CALL_LOG="$STATE/aws-calls" \
    LAMBDA_LIMITS_CONCURRENT_EXECUTIONS="${TRADEFLOW_LAMBDA_CONCURRENCY:-50}" \
    LAMBDA_LIMITS_MINIMUM_UNRESERVED_CONCURRENCY=10 \
    "$LS_VENV/bin/python" -m localstack.runtime.main
fi

# 2. Build the workspace binaries (dev profile): each function's code in the local
#    stack is a hot-reload directory whose bootstrap links to $CARGO_TARGET_DIR/debug/<name>.
build_ok=1 ibkr_failed=0
if [ $has_workspace = 1 ]; then
  say "cargo: building workspace binaries (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  if ! (cd "$REPO_ROOT" && cargo build --workspace --bins); then
    build_ok=0
    say "warning: cargo build failed; invoking a function that did not build fails (Runtime.InvalidEntrypoint)"
  fi
  if [ $has_ibkr = 1 ] && [ ! -x "$CARGO_TARGET_DIR/debug/fake-ibkr" ]; then
    (cd "$REPO_ROOT" && cargo build --manifest-path localstack/fake-ibkr/Cargo.toml --bin fake-ibkr) ||
      say "warning: fake-ibkr did not build"
  fi
elif [ $has_ibkr = 1 ]; then
  (cd "$REPO_ROOT" && cargo build --manifest-path localstack/fake-ibkr/Cargo.toml --bin fake-ibkr) ||
    say "warning: fake-ibkr did not build"
fi

# 3. Wait for LocalStack, warm DynamoDB, provision ------------------------
wait_for 90 "localstack health" localstack http_up "http://127.0.0.1:$LOCALSTACK_PORT/_localstack/health"
say "localstack: healthy after $(( $(date +%s) - t0 )) s; warming DynamoDB (JVM start)"
warm_ddb() {
  (cd "$STATE" && "$LS_VENV/bin/python" -c "
import boto3
boto3.client('dynamodb', endpoint_url='http://127.0.0.1:$LOCALSTACK_PORT', region_name='us-east-1',
             aws_access_key_id='test', aws_secret_access_key='test').list_tables()
") >/dev/null 2>&1
}
wait_for 120 "dynamodb warm-up" localstack warm_ddb
fn_bins=""; [ $has_workspace = 1 ] && fn_bins="$BIN_DIR"
(cd "$STATE" && AWS_ENDPOINT_URL="http://127.0.0.1:$LOCALSTACK_PORT" TRADEFLOW_FUNCTION_BIN_DIR="$fn_bins" \
  TRADEFLOW_STATE="$STATE" "$LS_VENV/bin/python" "$here/provision.py") | grep -v '^arn:' || die "provisioning failed"

# 4. Fake IBKR gateway ----------------------------------------------------
if [ $has_ibkr = 0 ]; then
  say "fake-ibkr: localstack/fake-ibkr not there yet, skipped"
elif ibkr_up; then
  say "fake-ibkr: already running"
elif [ -x "$CARGO_TARGET_DIR/debug/fake-ibkr" ]; then
  port_busy "$FAKE_IBKR_PORT" && die "port $FAKE_IBKR_PORT is taken by a process this state dir did not start"
  say "fake-ibkr: starting on 127.0.0.1:$FAKE_IBKR_PORT"
  start_bg fake-ibkr "$REPO_ROOT" "$CARGO_TARGET_DIR/debug/fake-ibkr" --port "$FAKE_IBKR_PORT"
  # another crate, still in progress: a failure here is a warning, not fatal
  try_wait 30 "fake-ibkr" fake-ibkr http_up "http://127.0.0.1:$FAKE_IBKR_PORT/fake/stats" ||
    { ibkr_failed=1; say "warning: fake-ibkr did not start; continuing without it"; 
      running fake-ibkr && kill "$(cat "$STATE/fake-ibkr.pid")"; rm -f "$STATE/fake-ibkr.pid"; }
else
  say "fake-ibkr: no binary at $CARGO_TARGET_DIR/debug/fake-ibkr, skipped"
fi

# 5. HTTP API front for the api function -----------------------------------
if api_up; then
  say "http api: already running"
else
  port_busy "$API_PORT" && die "port $API_PORT is taken by a process this state dir did not start"
  say "http api: starting on 127.0.0.1:$API_PORT (log $STATE/http-api.log)"
  start_bg http-api "$STATE" env PYTHONPATH="$here/executor" \
    AWS_ENDPOINT_URL="http://127.0.0.1:$LOCALSTACK_PORT" AWS_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
    "$LS_VENV/bin/python" -m tradeflow_executor.http_api --port "$API_PORT" --function api
  wait_for 30 "http api" http-api port_busy "$API_PORT"
fi

say "up in $(( $(date +%s) - t0 )) s. In your shell: source localstack/env.sh"
[ $build_ok = 1 ] || say "warning: the workspace did not build (see above)"
[ $ibkr_failed = 0 ] || say "warning: fake-ibkr is not running (see above)"
