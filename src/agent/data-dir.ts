/** The agent's data folder (`--data DIR`): its LevelDB store and its master key file. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export interface DataDir {
  store: string;
  masterKey: string;
}

export function dataDir(root: string, create = false): DataDir {
  if (create) mkdirSync(root, { recursive: true, mode: 0o700 });
  return { store: join(root, 'store'), masterKey: join(root, 'master.key') };
}
