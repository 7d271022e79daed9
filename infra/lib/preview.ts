// The functions later issues add outside the workflow (api, position-monitor, session-keepalive),
// appended to resources.json's list when missing. Used only to synthesize and lint a preview
// stack (-c preview=true) and by tests, so those code paths are checked before the entries land.
import type { FunctionEntry, Resources } from './resources';

export const FUTURE_FUNCTIONS: FunctionEntry[] = [
  { name: 'api', step: null, http_api: true },
  { name: 'position-monitor', step: null, schedule: 'rate(1 minute)' },
  { name: 'session-keepalive', step: null, schedule: 'rate(1 minute)' },
];

export function withFutureFunctions(r: Resources): Resources {
  const have = new Set(r.functions.map((f) => f.name));
  return { ...r, functions: [...r.functions, ...FUTURE_FUNCTIONS.filter((f) => !have.has(f.name))] };
}
