# Shared paths and helpers for localstack/*.sh (sourced, not run).
# Everything installable lives in $CACHE; everything a running stack writes
# (pid files, logs, LocalStack data, the generated .env) lives in $STATE.
# shellcheck source=cache.sh
. "$(dirname "${BASH_SOURCE[0]}")/cache.sh"
CACHE="$TRADEFLOW_CACHE"
STATE="${TRADEFLOW_STATE:-$CACHE/state}"
MARKERS="$CACHE/markers"
LS_VENV="$CACHE/localstack-venv"
CL_VENV="$CACHE/cargo-lambda-venv"   # cargo-lambda: builds the release zips (infra/deploy-local.sh)
LS_FS="$CACHE/localstack-fs"          # LocalStack FILESYSTEM_ROOT (pre-seeded libs)
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

LOCALSTACK_PORT="${LOCALSTACK_PORT:-4566}"
# The local HTTP API (the api function behind localstack/executor's HTTP front).
# CARGO_LAMBDA_PORT is its former name (the port `cargo lambda watch` served on),
# still honoured so that existing per-stack settings keep their ports apart.
API_PORT="${TRADEFLOW_API_PORT:-${CARGO_LAMBDA_PORT:-9000}}"
FAKE_IBKR_PORT="${FAKE_IBKR_PORT:-5001}"

say() { printf '[tradeflow-local] %s\n' "$*"; }
die() { say "error: $*" >&2; exit 1; }

# Any HTTP answer (even 4xx/5xx) from $1 within 2 s? (python3: curl may be absent)
http_up() {
  python3 - "$1" <<'PY' >/dev/null 2>&1
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError:
    pass
PY
}

# Does something accept TCP connections on 127.0.0.1:$1?
port_busy() {
  python3 -c 'import socket, sys; s = socket.socket(); s.settimeout(1); sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$1"
}

# Is the process recorded in $STATE/$1.pid alive?
running() {
  local f="$STATE/$1.pid"
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

# start_bg NAME DIR CMD...: run CMD in DIR as the leader of a new session
# (so down.sh can stop it with everything it spawned), log to $STATE/NAME.log.
start_bg() {
  local name=$1 dir=$2; shift 2
  ( cd "$dir" && exec setsid "$@" >"$STATE/$name.log" 2>&1 </dev/null ) &
  echo $! >"$STATE/$name.pid"
}

# try_wait SECONDS WHAT NAME CHECK...: poll CHECK every second until it
# succeeds (0); return 1 (after printing the log tail) if process NAME dies or
# time runs out. wait_for: the same, but fatal.
try_wait() {
  local secs=$1 what=$2 name=$3; shift 3
  local i=0
  until "$@"; do
    if ! running "$name"; then
      tail -n 30 "$STATE/$name.log" >&2 || true
      say "$what: process exited (log: $STATE/$name.log)"; return 1
    fi
    i=$((i + 1))
    if [ "$i" -ge "$secs" ]; then
      tail -n 30 "$STATE/$name.log" >&2 || true
      say "$what: not ready after ${secs}s (log: $STATE/$name.log)"; return 1
    fi
    sleep 1
  done
}
wait_for() { try_wait "$@" || die "$2 did not come up"; }
