#!/usr/bin/env bash
# Brings the whole local stack up as host processes on 127.0.0.1 and returns
# when it is ready (no Docker needed):
#   LocalStack 4.13.1   :4566  S3, DynamoDB, Step Functions, EventBridge, Lambda, IAM, STS,
#                              Logs, CloudFormation, SSM, Secrets Manager, SNS, CloudWatch, KMS.
#                              Its Lambda runs each function as a process per execution
#                              environment (localstack/executor, executor "tradeflow"),
#                              with the function's configured environment and timeout.
#   fake IBKR gateway   :5001  localstack/fake-ibkr
#   HTTP API front      :9000  the api function as API Gateway's HTTP API serves it
#                              (payload format 2.0), invoked through LocalStack's Lambda
# Idempotent: if everything is already up it says so and exits 0.
# TRADEFLOW_LAMBDAS=0 builds only the fake gateway (AWS side only; functions get placeholder code).
# Stop with localstack/down.sh. Logs and pid files: $TRADEFLOW_STATE
# (default ~/.cache/tradeflow/state); each function's output: $TRADEFLOW_STATE/lambda/<name>.log;
# each function's AWS calls (with the IAM actions they need, for infra/local/iam_check.py):
# $TRADEFLOW_STATE/aws-calls/<name>.jsonl, emptied whenever LocalStack starts.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

t0=$(date +%s)
# TRADEFLOW_LAMBDAS=0: the AWS side and the fake gateway only (functions get placeholder code).
build_functions=1; [ "${TRADEFLOW_LAMBDAS:-1}" = 0 ] && build_functions=0
BIN_DIR="$CARGO_TARGET_DIR/debug"

ls_up() { running localstack && http_up "http://127.0.0.1:$LOCALSTACK_PORT/_localstack/health"; }
ibkr_up() { running fake-ibkr && http_up "http://127.0.0.1:$FAKE_IBKR_PORT/fake/stats"; }
api_up() { running http-api && port_busy "$API_PORT"; }

if ls_up && ibkr_up && api_up; then
  # Tests after an edit must not run on the binaries the stack started with: rebuild
  # (functions reload on change; the fake gateway restarts if its binary changed).
  if [ $build_functions = 1 ]; then
    (cd "$REPO_ROOT" && cargo build --workspace --bins) || die "cargo build failed (see above)"
    if [ "$CARGO_TARGET_DIR/debug/fake-ibkr" -nt "$STATE/fake-ibkr.pid" ]; then
      say "fake-ibkr: binary changed, restarting"
      kill -- -"$(cat "$STATE/fake-ibkr.pid")" 2>/dev/null || kill "$(cat "$STATE/fake-ibkr.pid")"
      for _ in $(seq 50); do running fake-ibkr || break; sleep 0.1; done
      start_bg fake-ibkr "$REPO_ROOT" "$CARGO_TARGET_DIR/debug/fake-ibkr" --port "$FAKE_IBKR_PORT"
      wait_for 30 "fake-ibkr" fake-ibkr http_up "http://127.0.0.1:$FAKE_IBKR_PORT/fake/stats"
    fi
  fi
  say "already up (LocalStack :$LOCALSTACK_PORT, API :$API_PORT, state $STATE); re-provision with:"
  say "  TRADEFLOW_FUNCTION_BIN_DIR=$BIN_DIR TRADEFLOW_STATE=$STATE $LS_VENV/bin/python $here/provision.py"
  exit 0
fi

"$here/install.sh"
mkdir -p "$STATE"

# 1. LocalStack (started first: it boots while cargo builds) ----------------
if ls_up; then
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
#    A failed build stops here: a stack on stale binaries would test old code.
if [ $build_functions = 1 ]; then
  say "cargo: building workspace binaries (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  (cd "$REPO_ROOT" && cargo build --workspace --bins) || die "cargo build failed (see above)"
else
  (cd "$REPO_ROOT" && cargo build -p fake-ibkr --bin fake-ibkr) || die "fake-ibkr did not build (see above)"
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
fn_bins=""; [ $build_functions = 1 ] && fn_bins="$BIN_DIR"
(cd "$STATE" && AWS_ENDPOINT_URL="http://127.0.0.1:$LOCALSTACK_PORT" TRADEFLOW_FUNCTION_BIN_DIR="$fn_bins" \
  TRADEFLOW_STATE="$STATE" "$LS_VENV/bin/python" "$here/provision.py") | grep -v '^arn:' || die "provisioning failed"

# 4. Fake IBKR gateway ----------------------------------------------------
if ibkr_up; then
  say "fake-ibkr: already running"
else
  port_busy "$FAKE_IBKR_PORT" && die "port $FAKE_IBKR_PORT is taken by a process this state dir did not start"
  say "fake-ibkr: starting on 127.0.0.1:$FAKE_IBKR_PORT"
  start_bg fake-ibkr "$REPO_ROOT" "$CARGO_TARGET_DIR/debug/fake-ibkr" --port "$FAKE_IBKR_PORT"
  wait_for 30 "fake-ibkr" fake-ibkr http_up "http://127.0.0.1:$FAKE_IBKR_PORT/fake/stats"
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
