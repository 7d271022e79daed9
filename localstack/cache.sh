# The one place that says where builds and installs live (sourced by every script):
# outside the clone, so a fresh clone reuses the build cache and the tools.
export TRADEFLOW_CACHE="${TRADEFLOW_CACHE:-$HOME/.cache/tradeflow}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$TRADEFLOW_CACHE/target}"
