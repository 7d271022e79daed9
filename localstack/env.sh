# Source me: `source localstack/env.sh` gives scripts and tests the local stack's
# endpoint, region, dummy credentials, table/bucket/state machine names and
# resources.json `env` (what provision.py configures the functions with), generated
# from infra/resources.json by provision.py (no AWS call), and TRADEFLOW_API_URL,
# the local HTTP API.
_tf_here="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
set -a
# shellcheck disable=SC1090
. <(python3 "$_tf_here/provision.py" --print-env)
set +a
# shellcheck source=cache.sh
. "$_tf_here/cache.sh"
export TRADEFLOW_STATE="${TRADEFLOW_STATE:-$TRADEFLOW_CACHE/state}"
export TRADEFLOW_API_URL="http://127.0.0.1:${TRADEFLOW_API_PORT:-${CARGO_LAMBDA_PORT:-9000}}"
unset _tf_here
