import { existsSync } from 'node:fs';
import { dataDir } from '../agent/data-dir.ts';
import { LevelStore } from '../store/kv-store.ts';
import { UsageError } from './errors.ts';

/** Opens the store of a (stopped) agent's data folder for a read-only command, then closes it. */
export async function withAgentStore<T>(data: string | undefined, command: string, use: (store: LevelStore) => Promise<T>): Promise<T> {
  if (data === undefined) throw new UsageError(`${command} needs --data DIR`);
  const { store: path } = dataDir(data);
  if (!existsSync(path)) throw new UsageError(`no agent store in ${data}`);
  const store = await LevelStore.open(path);
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}
