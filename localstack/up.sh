#!/usr/bin/env bash
# Brings the whole local stack up as host processes on 127.0.0.1 and returns
# when it is ready (no Docker needed):
#   LocalStack 4.13.1   :4566  S3, DynamoDB, Step Functions, EventBridge, Lambda, IAM, STS, Logs
#   fake IBKR gateway   :5001  (if localstack/fake-ibkr exists)
#   cargo lambda watch  :9000  serves every workspace binary; LocalStack's Lambda
#                              forwards invokes to it (localstack/executor)
# Idempotent: if everything is already up it says so and exits 0.
# TRADEFLOW_LAMBDAS=0 skips the Rust build and cargo lambda watch (AWS side only).
# Stop with localstack/down.sh. Logs and pid files: $TRADEFLOW_STATE
# (default ~/.cache/tradeflow/state).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

t0=$(date +%s)
has_workspace=0; [ -f "$REPO_ROOT/Cargo.toml" ] && [ "${TRADEFLOW_LAMBDAS:-1}" != 0 ] && has_workspace=1
has_ibkr=0; [ -f "$REPO_ROOT/localstack/fake-ibkr/Cargo.toml" ] && has_ibkr=1
ENV_FILE="$STATE/lambda.env"

ls_up() { running localstack && http_up "http://127.0.0.1:$LOCALSTACK_PORT/_localstack/health"; }
ibkr_up() { running fake-ibkr && http_up "http://127.0.0.1:$FAKE_IBKR_PORT/fake/stats"; }
# (a TCP probe: an HTTP GET on watch logs an ERROR line)
watch_up() { running cargo-lambda && port_busy "$CARGO_LAMBDA_PORT"; }

if ls_up && { [ ! -x "$CARGO_TARGET_DIR/debug/fake-ibkr" ] || ibkr_up; } && { [ $has_workspace = 0 ] || watch_up; }; then
  say "already up (LocalStack :$LOCALSTACK_PORT, state $STATE); re-provision with:"
  say "  $LS_VENV/bin/python $here/provision.py --env-file $ENV_FILE"
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
  # cwd = $STATE: from the repo root, python would treat our localstack/ folder
  # as part of the `localstack` namespace package.
  start_bg localstack "$STATE" env \
    GATEWAY_LISTEN="127.0.0.1:$LOCALSTACK_PORT" \
    SERVICES=s3,dynamodb,stepfunctions,events,lambda,iam,sts,logs \
    OVERRIDE_IN_DOCKER=0 \
    FILESYSTEM_ROOT="$fs" \
    LOCALSTACK_VOLUME_DIR="$STATE/localstack-volume" \
    DNS_ADDRESS=0 \
    DISABLE_EVENTS=1 \
    SKIP_SSL_CERT_DOWNLOAD=1 \
    LAMBDA_RUNTIME_EXECUTOR=cargo-lambda \
    CARGO_LAMBDA_PORT="$CARGO_LAMBDA_PORT" \
    "$LS_VENV/bin/python" -m localstack.runtime.main
fi

# 2. Build the workspace binaries now, exactly as `cargo lambda watch` will:
#    it runs `cargo run --bin <function>` from the repo root with the dev
#    profile and the inherited CARGO_TARGET_DIR, so this build is reused and
#    the first invoke only checks fingerprints.
build_ok=1 ibkr_failed=0
if [ $has_workspace = 1 ]; then
  say "cargo: building workspace binaries (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  if ! (cd "$REPO_ROOT" && cargo build --workspace --bins); then
    build_ok=0
    say "warning: cargo build failed; functions will be compiled (and fail) on first invoke"
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
(cd "$STATE" && AWS_ENDPOINT_URL="http://127.0.0.1:$LOCALSTACK_PORT" \
  "$LS_VENV/bin/python" "$here/provision.py" --env-file "$ENV_FILE") | grep -v '^arn:' || die "provisioning failed"

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

# 5. cargo lambda watch ---------------------------------------------------
if [ $has_workspace = 0 ]; then
  say "cargo lambda watch: skipped (no Cargo.toml at the repo root, or TRADEFLOW_LAMBDAS=0)"
elif watch_up; then
  say "cargo lambda watch: already running"
else
  port_busy "$CARGO_LAMBDA_PORT" && die "port $CARGO_LAMBDA_PORT is taken by a process this state dir did not start"
  say "cargo lambda watch: starting on 127.0.0.1:$CARGO_LAMBDA_PORT (log $STATE/cargo-lambda.log)"
  # --ignore-changes: no rebuild while people edit; a function is (re)built
  # when its instance first starts. Restart with down.sh + up.sh after edits.
  start_bg cargo-lambda "$REPO_ROOT" env PATH="$CL_VENV/bin:$PATH" \
    cargo lambda watch --ignore-changes \
      --invoke-address 127.0.0.1 --invoke-port "$CARGO_LAMBDA_PORT" \
      --env-file "$ENV_FILE"
  wait_for 60 "cargo lambda watch" cargo-lambda port_busy "$CARGO_LAMBDA_PORT"
fi

say "up in $(( $(date +%s) - t0 )) s. In your shell: source localstack/env.sh"
[ $build_ok = 1 ] || say "warning: the workspace did not build (see above)"
[ $ibkr_failed = 0 ] || say "warning: fake-ibkr is not running (see above)"
