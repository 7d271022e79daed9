#!/usr/bin/env bash
# The main job: brings the local stack up (installing what it needs), seeds the
# example strategy, runs one execution through Step Functions and prints its
# lineage. The stack stays up afterwards; stop it with localstack/down.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=cache.sh
. localstack/cache.sh
localstack/up.sh
# shellcheck source=env.sh
source localstack/env.sh
cargo run --quiet -p tradeflow-cli --bin tradeflow -- demo "$@"
echo
echo "local stack still running; stop it with: localstack/down.sh"
