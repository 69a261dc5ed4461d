/**
 * The agent's data folder (`--data DIR`): its LevelDB store and its master key file. Owner-only
 * (ARCHITECTURE.md §4 invariant 5, issue #13.8): created 0700, and made 0700 when it was created
 * beforehand with a laxer mode (the registry and the ledger are in it); the store's own files are
 * seen to by LevelStore.open, the master key by MasterKey.load.
 */
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { KmipEdgeError } from '../errors.ts';

export interface DataDir {
  store: string;
  masterKey: string;
}

export function dataDir(root: string, create = false): DataDir {
  if (create) {
    try {
      mkdirSync(root, { recursive: true, mode: 0o700 });
      if ((statSync(root).mode & 0o077) !== 0) chmodSync(root, 0o700);
    } catch (error) {
      throw new KmipEdgeError('DATA_DIR_INVALID', `cannot use ${root} as the data folder: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
    }
  }
  return { store: join(root, 'store'), masterKey: join(root, 'master.key') };
}
