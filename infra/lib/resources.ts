// The shared resource list (infra/resources.json) and where things are in the repo.
// resources.json is read, never written, here: it is shared with the local stack and the Rust config.
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

export type KeyAttr = [string, 'S' | 'N' | 'B'];

export interface GsiEntry {
  name: string;
  pk: KeyAttr;
  sk?: KeyAttr;
}

export interface TableEntry {
  name: string;
  env: string;
  pk: KeyAttr;
  sk?: KeyAttr;
  ttl?: string;
  gsis?: GsiEntry[];
}

export interface FunctionEntry {
  name: string;
  /** State name in the ASL file, or null for functions outside the workflow (api, schedules). */
  step: string | null;
  number?: number;
  /** DefinitionSubstitutions key used as `${...}` in the ASL file. */
  asl_arn?: string;
  /** EventBridge schedule expression, e.g. "rate(1 minute)". */
  schedule?: string;
  /** Put this function behind the HTTP API. */
  http_api?: boolean;
  memory?: number;
  timeout?: number;
  /** Tables whose name the function gets (as the table's `env` variable), by table name. */
  tables?: string[];
  /** Other variables the function gets: the bucket, the state machine, `env` settings, `deploy_env` names. */
  env?: string[];
}

export interface Resources {
  state_machine: { name: string; file: string; env: string };
  bucket: { name: string; env: string };
  tables: TableEntry[];
  functions: FunctionEntry[];
  /** Settings and their values (a function gets those its `env` lists). */
  env: Record<string, string>;
  /** Names whose value is a deployed resource; value: the local stack's variable instead (null: none). */
  deploy_env: Record<string, string | null>;
  /** Local stack only (localstack/provision.py). */
  local_env: Record<string, string>;
  local_api_key: string;
}

/** Walks up from `start` to the directory holding infra/resources.json (works from ts-node and from compiled JS). */
export function findRepoRoot(start: string = __dirname): string {
  let dir = path.resolve(start);
  for (;;) {
    if (existsSync(path.join(dir, 'infra', 'resources.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`infra/resources.json not found above ${start}`);
    dir = parent;
  }
}

export function loadResources(repoRoot: string = findRepoRoot()): Resources {
  const raw = JSON.parse(readFileSync(path.join(repoRoot, 'infra', 'resources.json'), 'utf8'));
  return validateResources(raw);
}

/** Plain keys only: "_comment" and other keys starting with "_" are documentation. */
export function plainEnv(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('_')));
}

export function stepFunctions(r: Resources): FunctionEntry[] {
  return r.functions.filter((f) => f.step !== null && f.step !== undefined);
}

function validateResources(r: Resources): Resources {
  const problems: string[] = [];
  if (!r.state_machine?.name || !r.state_machine?.file) problems.push('state_machine.name/file missing');
  if (!r.bucket?.name || !r.bucket?.env) problems.push('bucket.name/env missing');
  const seen = new Set<string>();
  for (const t of r.tables ?? []) {
    if (!t.name || !t.env || !t.pk) problems.push(`table ${JSON.stringify(t)} needs name, env, pk`);
    if (seen.has(t.name)) problems.push(`duplicate table ${t.name}`);
    seen.add(t.name);
  }
  const fnames = new Set<string>();
  const settings = plainEnv(r.env ?? {});
  const deployNames = plainEnv((r.deploy_env ?? {}) as Record<string, string>);
  const envNames = new Set([r.bucket?.env, r.state_machine?.env, ...Object.keys(settings), ...Object.keys(deployNames)]);
  for (const f of r.functions ?? []) {
    for (const t of f.tables ?? []) if (!seen.has(t)) problems.push(`function ${f.name}: no table ${t}`);
    for (const e of f.env ?? []) if (!envNames.has(e)) problems.push(`function ${f.name}: env ${e} is not the bucket, the state machine, a setting or a deploy_env name`);
    if (!f.name) problems.push(`function ${JSON.stringify(f)} needs a name`);
    if (fnames.has(f.name)) problems.push(`duplicate function ${f.name}`);
    fnames.add(f.name);
    if (f.step && !f.asl_arn) problems.push(`step function ${f.name} needs asl_arn`);
  }
  if (problems.length) throw new Error(`infra/resources.json: ${problems.join('; ')}`);
  return r;
}
