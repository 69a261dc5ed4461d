/**
 * `kmip-edge master-key rotate --data DIR` (issue #15.2): re-seals every sealed record of a
 * stopped agent's store under a new master key, crash-safe (src/store/rotation.ts); run it again
 * after an interruption and it resumes. Refuses while the agent runs (its store is locked) and
 * when the key comes from KMIP_EDGE_MASTER_KEY (there is no file to rotate).
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { dataDir } from '../agent/data-dir.ts';
import { isKmipEdgeError } from '../errors.ts';
import { LevelStore } from '../store/kv-store.ts';
import { rotateMasterKey } from '../store/rotation.ts';
import { UsageError } from './errors.ts';

export async function runMasterKeyCommand(args: string[], out: (text: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { data: { type: 'string' } }, allowPositionals: true, strict: true });
  if (positionals[0] !== 'rotate' || positionals.length > 1) throw new UsageError('usage: kmip-edge master-key rotate --data DIR');
  if (values.data === undefined) throw new UsageError('master-key rotate needs --data DIR');
  const data = values.data;
  if (process.env.KMIP_EDGE_MASTER_KEY !== undefined) throw new UsageError('the master key comes from KMIP_EDGE_MASTER_KEY, not a file: unset it to rotate the key file, or re-key where that variable is kept');
  const paths = dataDir(data);
  if (!existsSync(paths.masterKey) || !existsSync(paths.store)) throw new UsageError(`no agent store and master key in ${data}`);
  let store: LevelStore;
  try {
    store = await LevelStore.open(paths.store);
  } catch (error) {
    if (isKmipEdgeError(error, 'STORE_LOCKED')) throw new UsageError(`the agent on ${data} is running (its store is locked); stop it, rotate, then start it again`);
    throw new UsageError((error as Error).message);
  }
  try {
    const result = await rotateMasterKey(store, paths.masterKey);
    out(JSON.stringify({ rotated: true, data, ...result }) + '\n');
    return 0;
  } catch (error) {
    if (isKmipEdgeError(error, 'MASTER_KEY_INVALID')) throw new UsageError(error.message);
    if (!isKmipEdgeError(error, 'ROTATION_RECORD_UNREADABLE')) throw error;
    process.stderr.write(`kmip-edge: ${error.message}\n`);
    return 1;
  } finally {
    await store.close();
  }
}
