/**
 * `kmip-edge cache --data DIR [--json]`: the keys the agent has cached — identifiers, names,
 * state, dates, lease — and never their material. Reads the store of a stopped agent.
 */
import { parseArgs } from 'node:util';
import { describeKey, listCachedKeys } from '../agent/key-cache.ts';
import { withAgentStore } from './agent-store.ts';

export async function runCacheCommand(args: string[], out: (text: string) => void): Promise<number> {
  const { values } = parseArgs({ args, options: { data: { type: 'string' }, json: { type: 'boolean', default: false } }, strict: true });
  const keys = await withAgentStore(values.data, 'cache', listCachedKeys);
  if (values.json) out(JSON.stringify({ keys }, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v)) + '\n');
  else out(keys.length === 0 ? 'no cached keys\n' : keys.map(describeKey).join('\n') + '\n');
  return 0;
}
