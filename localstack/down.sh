#!/usr/bin/env bash
# Stops everything localstack/up.sh started: the HTTP API front, the fake IBKR
# gateway, LocalStack (with its DynamoDB Local JVM and the function processes its
# Lambda runs). Each was started as a session leader, so stopping the whole
# session and every descendant catches every child, even ones in sessions of their own.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

# The leader and every process below it: its session, plus all descendants
# (each function process runs in a session of its own; LocalStack may start
# DynamoDB Local in a new session too).
tree_pids() {
  ps -e -o pid=,ppid=,sid= | awk -v root="$1" '
    { pid[NR] = $1; ppid[NR] = $2; sid[NR] = $3 }
    END {
      keep[root] = 1
      for (i = 1; i <= NR; i++) if (sid[i] == root) keep[pid[i]] = 1
      do { added = 0
        for (i = 1; i <= NR; i++) if ((ppid[i] in keep) && !(pid[i] in keep)) { keep[pid[i]] = 1; added = 1 }
      } while (added)
      for (i = 1; i <= NR; i++) if (pid[i] in keep) print pid[i]
    }'
}

alive() { local p; for p in $1; do kill -0 "$p" 2>/dev/null && echo "$p"; done; true; }

stop() {
  local name=$1 f="$STATE/$1.pid"
  [ -f "$f" ] || { say "$name: not running"; return; }
  local root; root=$(cat "$f")
  local pids; pids=$(tree_pids "$root")
  if [ -z "$pids" ]; then
    say "$name: not running (stale pid file)"; rm -f "$f"; return
  fi
  say "$name: stopping (pid $root and $(($(echo "$pids" | wc -l) - 1)) children)"
  # The leader first, so it can shut its children down itself; then the rest.
  kill -TERM "$root" 2>/dev/null || true
  local i
  for i in $(seq 1 30); do
    [ -z "$(alive "$pids")" ] && break
    [ "$i" = 20 ] && kill -TERM $(alive "$pids") 2>/dev/null
    sleep 0.5
  done
  if [ -n "$(alive "$pids")" ]; then
    say "$name: still running after 15 s, killing"
    kill -KILL $(alive "$pids") 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$f"
}

stop http-api
[ -f "$STATE/cargo-lambda.pid" ] && stop cargo-lambda  # started by an older up.sh
stop fake-ibkr
stop localstack
say "down"
