/**
 * The running agent's side of `kmip-edge backup` (issue #15.1): the agent holds its LevelDB store
 * exclusively, so the backup command asks it on the owner-only admin socket (device-admin.ts) and
 * the agent writes the snapshot itself (src/store/snapshot.ts) to the path given — a path the
 * agent's user can write. The master key is the one the agent runs with (file or environment).
 */
import { isAbsolute } from 'node:path';
import { dataDir } from '../agent/data-dir.ts';
import { KmipEdgeError } from '../errors.ts';
import type { KeyValueStore } from '../store/kv-store.ts';
import { MasterKey } from '../store/master-key.ts';
import { writeBackup, type BackupSummary } from '../store/snapshot.ts';

export interface BackupRequest {
  action: 'backup';
  /** Absolute path of the backup file to create (must not exist). */
  out: string;
  includeMasterKey: boolean;
}

export function isBackupRequest(request: { action?: unknown }): request is BackupRequest {
  return request.action === 'backup';
}

export async function agentBackup(data: string, store: KeyValueStore, request: BackupRequest): Promise<BackupSummary & { backup: string }> {
  if (typeof request.out !== 'string' || !isAbsolute(request.out)) throw new KmipEdgeError('CLI_USAGE', 'a backup request needs an absolute out path');
  const summary = await writeBackup(store, request.out, MasterKey.load(dataDir(data).masterKey), request.includeMasterKey === true).catch((error: NodeJS.ErrnoException) => {
    throw new KmipEdgeError('BACKUP_WRITE_FAILED', `the agent cannot write ${request.out}: ${error.code ?? error.message} (the running agent writes the backup: give a path its user can write)`, { cause: error });
  });
  return { backup: request.out, ...summary };
}
