#!/usr/bin/env bash
# Validates statemachine/*.asl.json:
#  1. asl-validator (npm, a devDependency of infra/) on a copy whose ${Placeholder}s are replaced by
#     dummy Lambda ARNs (asl-validator accepts a placeholder only as a whole string);
#  2. every Task's Resource placeholder is a function's asl_arn in infra/resources.json, and every
#     Task state's name equals that function's step (and every step is a Task).
# Usage: statemachine/validate.sh [file.asl.json ...]   (default: the file named in resources.json)
# Needs infra/node_modules (cd infra && npm ci); exits non-zero on any problem.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA="$ROOT/infra"
VALIDATOR="$INFRA/node_modules/.bin/asl-validator"
if [[ ! -x "$VALIDATOR" ]]; then
  echo "validate.sh: $VALIDATOR missing: run (cd infra && npm ci) first" >&2
  exit 2
fi

if [[ $# -eq 0 ]]; then
  set -- "$ROOT/$(node -e 'console.log(require(process.argv[1]).state_machine.file)' "$INFRA/resources.json")"
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
status=0
for file in "$@"; do
  sub="$TMP/$(basename "$file")"
  # Dummy ARNs: arn:aws:lambda:us-east-1:123456789012:function:<Placeholder>.
  node -e '
    const fs = require("fs");
    const src = fs.readFileSync(process.argv[1], "utf8");
    fs.writeFileSync(process.argv[2],
      src.replace(/\$\{([A-Za-z0-9_]+)\}/g, "arn:aws:lambda:us-east-1:123456789012:function:$1"));
  ' "$file" "$sub"
  if out="$("$VALIDATOR" --json-path "$sub" 2>&1)"; then
    echo "asl-validator: $(basename "$file") valid"
  else
    echo "asl-validator: $(basename "$file") INVALID" >&2
    echo "$out" >&2
    status=1
  fi

  node - "$file" "$INFRA/resources.json" <<'JS' || status=1
const fs = require('fs');
const [file, resourcesPath] = process.argv.slice(2);
const asl = JSON.parse(fs.readFileSync(file, 'utf8'));
const fns = JSON.parse(fs.readFileSync(resourcesPath, 'utf8')).functions.filter((f) => f.step);
const byArn = new Map(fns.map((f) => [f.asl_arn, f]));
const problems = [];
const tasks = new Map();
// Walks nested Parallel branches and Map iterators too.
const walk = (states, where) => {
  for (const [name, s] of Object.entries(states ?? {})) {
    if (s.Type === 'Task') tasks.set(name, s);
    for (const b of s.Branches ?? []) walk(b.States, `${where}/${name}`);
    const it = s.ItemProcessor ?? s.Iterator;
    if (it) walk(it.States, `${where}/${name}`);
  }
};
walk(asl.States, '');
for (const [name, s] of tasks) {
  const m = /^\$\{([A-Za-z0-9_]+)\}$/.exec(s.Resource ?? '');
  if (!m) { problems.push(`Task ${name}: Resource ${JSON.stringify(s.Resource)} is not a \${Placeholder}`); continue; }
  const fn = byArn.get(m[1]);
  if (!fn) { problems.push(`Task ${name}: \${${m[1]}} is no function's asl_arn in infra/resources.json`); continue; }
  if (fn.step !== name) problems.push(`Task ${name}: \${${m[1]}} belongs to function ${fn.name} whose step is ${fn.step}`);
  // Every step is idempotent, so a crash or a timeout is retried like a Transient
  // error (issue 12), and the task outlives its function, so Step Functions sees the
  // function's own timeout (infra: 100 s unless resources.json says otherwise).
  // Step Functions names a function error by its errorType: a process that exits
  // or is killed mid-invocation is Runtime.ExitError (Runtime.OutOfMemory when
  // Lambda killed it for memory), a timeout Sandbox.Timedout; Lambda.Unknown is
  // what the Step Functions guide names unhandled errors.
  const retried = new Set((s.Retry ?? []).flatMap((r) => r.ErrorEquals));
  for (const e of ['Transient', 'Lambda.Unknown', 'Sandbox.Timedout', 'Runtime.ExitError',
    'Runtime.OutOfMemory', 'States.Timeout']) {
    if (!retried.has(e)) problems.push(`Task ${name}: no Retry on ${e}`);
  }
  const fnTimeout = fn.timeout ?? 100;
  if (!(s.TimeoutSeconds > fnTimeout)) {
    problems.push(`Task ${name}: TimeoutSeconds ${s.TimeoutSeconds} must exceed the function timeout ${fnTimeout} s`);
  }
}
for (const f of fns) {
  if (!tasks.has(f.step)) problems.push(`function ${f.name}: step ${f.step} is not a Task state in ${file}`);
}
if (problems.length) {
  console.error(`resources check: ${problems.length} problem(s) in ${file}:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`resources check: ${tasks.size} Task states match infra/resources.json steps`);
JS
done
exit $status
