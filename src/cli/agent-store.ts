/**
 * The store behind a read-only command (`ledger`, `cache`): opened directly when the agent is
 * stopped; while `kmip-edge run` holds it (LevelDB admits one process: STORE_LOCKED), the running
 * agent answers the same question through its admin socket (device-admin.ts), from its live state.
 */
import { existsSync } from 'node:fs';
import { dataDir } from '../agent/data-dir.ts';
import { isKmipEdgeError } from '../errors.ts';
import { LevelStore } from '../store/kv-store.ts';
import { sendAgentQuery, type AgentQuery } from './device-admin.ts';
import { UsageError } from './errors.ts';

/**
 * Opens the store of `data` for `use`, then closes it; when a running agent holds the store, asks
 * it `query` instead and reads the answer with `fromAgent`.
 */
export async function withAgentStore<T>(data: string | undefined, command: string, use: (store: LevelStore) => Promise<T>, query?: AgentQuery, fromAgent?: (answer: Record<string, unknown>) => T): Promise<T> {
  if (data === undefined) throw new UsageError(`${command} needs --data DIR`);
  const { store: path } = dataDir(data);
  if (!existsSync(path)) throw new UsageError(`no agent store in ${data}`);
  let store: LevelStore;
  try {
    store = await LevelStore.open(path);
  } catch (error) {
    if (query === undefined || fromAgent === undefined || !isKmipEdgeError(error, 'STORE_LOCKED')) throw error;
    const answer = await sendAgentQuery(data, query);
    if (answer === undefined) throw error; // locked, but no agent socket: another process holds it
    return fromAgent(answer);
  }
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}
