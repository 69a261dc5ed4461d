/**
 * `kmip-edge cache --data DIR [--json]`: the keys the agent has cached — identifiers, names,
 * state, dates, lease — and never their material. Reads the store of a stopped agent.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { dataDir } from '../agent/data-dir.ts';
import { describeKey, listCachedKeys } from '../agent/key-cache.ts';
import { LevelStore } from '../store/kv-store.ts';
import { UsageError } from './errors.ts';

export async function runCacheCommand(args: string[], out: (text: string) => void): Promise<number> {
  const { values } = parseArgs({ args, options: { data: { type: 'string' }, json: { type: 'boolean', default: false } }, strict: true });
  if (values.data === undefined) throw new UsageError('cache needs --data DIR');
  const { store: path } = dataDir(values.data);
  if (!existsSync(path)) throw new UsageError(`no agent store in ${values.data}`);
  const store = await LevelStore.open(path);
  try {
    const keys = await listCachedKeys(store);
    if (values.json) out(JSON.stringify({ keys }, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v)) + '\n');
    else out(keys.length === 0 ? 'no cached keys\n' : keys.map(describeKey).join('\n') + '\n');
    return 0;
  } finally {
    await store.close();
  }
}
