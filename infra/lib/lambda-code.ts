// Where each function's code comes from: the output of
//   cargo lambda build --release --arm64 --output-format zip   ->  target/lambda/<name>/bootstrap.zip
// (a plain `cargo lambda build` leaves target/lambda/<name>/bootstrap, which works too).
// Tests and CI synth against placeholder code instead (makePlaceholderLambdaDir), never real binaries.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as lambda from 'aws-cdk-lib/aws-lambda';

export const BUILD_COMMAND = 'cargo lambda build --release --arm64 --output-format zip';

export function functionCode(lambdaDir: string, name: string): lambda.Code {
  const zip = path.join(lambdaDir, name, 'bootstrap.zip');
  if (existsSync(zip)) return lambda.Code.fromAsset(zip);
  const dir = path.join(lambdaDir, name);
  if (existsSync(path.join(dir, 'bootstrap'))) return lambda.Code.fromAsset(dir);
  throw new Error(
    `no code for function "${name}": expected ${zip}. Build it from the repo root with \`${BUILD_COMMAND}\`, ` +
      'or point -c lambdaDir=... / TRADEFLOW_LAMBDA_DIR at the build output ' +
      '(-c placeholderLambdas=true synthesizes with inert placeholders; never deploy that).',
  );
}

const PLACEHOLDER = `#!/bin/sh
# tradeflow placeholder: synthesized without a cargo lambda build. Not deployable.
echo "placeholder bootstrap: build the functions with '${BUILD_COMMAND}'" >&2
exit 1
`;

/** Writes <dir>/<name>/bootstrap for each function (deterministic content, so asset hashes are stable). */
export function makePlaceholderLambdaDir(dir: string, names: string[]): string {
  for (const name of names) {
    mkdirSync(path.join(dir, name), { recursive: true });
    writeFileSync(path.join(dir, name, 'bootstrap'), PLACEHOLDER, { mode: 0o755 });
  }
  return dir;
}
