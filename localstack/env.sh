# Source me: `source localstack/env.sh` gives scripts and tests the same
# environment the Lambdas get under `cargo lambda watch` (endpoint, region,
# dummy credentials, table/bucket/state machine names, resources.json `env`),
# generated from infra/resources.json by provision.py (no AWS call).
_tf_here="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
set -a
# shellcheck disable=SC1090
. <(python3 "$_tf_here/provision.py" --print-env)
set +a
export TRADEFLOW_STATE="${TRADEFLOW_STATE:-${TRADEFLOW_CACHE:-$HOME/.cache/tradeflow}/state}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tradeflow/target}"
export CARGO_LAMBDA_ENDPOINT="http://127.0.0.1:${CARGO_LAMBDA_PORT:-9000}"
unset _tf_here
