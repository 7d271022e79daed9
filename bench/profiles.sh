#!/usr/bin/env bash
# Release-profile candidates measured side by side on a few functions: each variant's
# zips (cargo lambda build --release, with CARGO_PROFILE_RELEASE_* overrides, into a
# lambda dir of its own so the main zips stay), their cold init (bench/lambda.sh), and,
# for variants that change code generation, one CPU-heavy step's speed (the charts
# crate's criterion bench, thread CPU time).
#
#   bench/profiles.sh                                 # session-keepalive and api, all variants
#   VARIANTS="base fat s" bench/profiles.sh api       # some variants, some functions
#
# Every variant that changes opt-level or codegen-units rebuilds all dependencies of
# the functions (≈ 10+ min each on 2 cores); lto alone relinks only.
# Output: $TRADEFLOW_STATE/bench-profiles/<variant>/ (zips, init figures) and a table.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../localstack/lib.sh
. localstack/lib.sh

# name: the overrides on top of Cargo.toml's [profile.release]
declare -A OVERRIDES=(
  [base]=""
  [fat]="CARGO_PROFILE_RELEASE_LTO=fat"
  [s]="CARGO_PROFILE_RELEASE_OPT_LEVEL=s"
  [fat-s]="CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_OPT_LEVEL=s"
  [cu1]="CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1"
)
VARIANTS=${VARIANTS:-base fat s cu1}
functions=("$@")
[ ${#functions[@]} -gt 0 ] || functions=(session-keepalive api)
OUT="$STATE/bench-profiles"
mkdir -p "$OUT"

for v in $VARIANTS; do
  [ -n "${OVERRIDES[$v]+x}" ] || die "unknown variant $v (${!OVERRIDES[*]})"
  dir="$OUT/$v"
  say "variant $v: ${OVERRIDES[$v]:-Cargo.toml as is}"
  t0=$SECONDS
  # shellcheck disable=SC2086
  env ${OVERRIDES[$v]} PATH="$CL_VENV/bin:$PATH" cargo lambda build --release --output-format zip \
    --lambda-dir "$dir" $(printf -- '-p %s ' "${functions[@]}") >&2
  echo "$((SECONDS - t0))" > "$dir/build-seconds"
  LAMBDA_DIR="$dir" TRADEFLOW_STATE="$dir" N="${N:-20}" bench/lambda.sh "${functions[@]}" > /dev/null
  cp "$dir/bench-lambda/table.md" "$dir/init.md"
  if [ "${CHART_BENCH:-1}" = 1 ]; then
    # The bench profile inherits [profile.release], so the same overrides apply.
    # shellcheck disable=SC2086
    env ${OVERRIDES[$v]} cargo bench -p tradeflow-charts --bench render -- --noplot \
      --save-baseline "profile-$v" png_500 2>&1 | tee "$dir/chart-bench.txt" >&2
  fi
done

echo "| variant | overrides | function | zip | cold init median / p90 | init CPU | build | chart png_500 (thread CPU) |"
echo "|---|---|---|---|---|---|---|---|"
for v in $VARIANTS; do
  dir="$OUT/$v"
  chart=$(grep -A1 'png_500' "$dir/chart-bench.txt" 2>/dev/null | grep -o 'time: *\[[^]]*\]' | head -1 | sed 's/time: *//')
  python3 - "$dir/bench-lambda/figures.json" "$v" "${OVERRIDES[$v]:-–}" "$(cat "$dir/build-seconds") s" "${chart:-–}" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
for r in rows:
    print(f"| {sys.argv[2]} | {sys.argv[3]} | {r['function']} | {r['zip_bytes'] / 1e6:.2f} MB | "
          f"{r['init_ms_median']:.1f} / {r['init_ms_p90']:.1f} ms | {r['init_cpu_ms_median']:.1f} ms | "
          f"{sys.argv[4]} | {sys.argv[5]} |")
PY
done
