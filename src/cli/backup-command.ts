/**
 * `kmip-edge backup --data DIR --out FILE_OR_DIR [--include-master-key]` and
 * `kmip-edge restore --data DIR --from BACKUP [--master-key FILE] [--replace]` (issue #15.1).
 *
 * backup: a consistent snapshot of the agent's store (src/store/snapshot.ts) in one owner-only
 * file, written atomically — from a stopped agent's store directly, or, while `run` holds the
 * store, by the running agent through its admin socket (backup-agent.ts). The master key is left
 * out unless --include-master-key: the records' key material is sealed under it, so a backup and
 * the key kept apart are each useless alone (deploy/README.md "Back up and restore").
 *
 * restore: checks the backup's SHA-256, then that the master key it will use (from the backup,
 * --master-key, the folder's own master.key, or KMIP_EDGE_MASTER_KEY) is the backup's (its
 * fingerprint and the backup's HMAC), writes the records into a temporary store in DIR, reads them
 * back, syncs, and renames it into place. Only into a stopped agent's folder; a store with records
 * is set aside (kept) with --replace. A run killed half-way leaves DIR as it was, and the next run
 * removes its temporary store.
 */
import { isoTime } from '../iso-time.ts';
import { existsSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { dataDir, type DataDir } from '../agent/data-dir.ts';
import { isKmipEdgeError, KmipEdgeError } from '../errors.ts';
import { syncFolder, writeFileDurably } from '../store/durable-file.ts';
import { LevelStore } from '../store/kv-store.ts';
import { MasterKey, nextKeyPath } from '../store/master-key.ts';
import { readBackup, writeBackup } from '../store/snapshot.ts';
import { sendBackupRequest } from './device-admin.ts';
import { UsageError } from './errors.ts';

const RESTORE_BATCH = 1000;
/** A temporary backup file (durable-file.ts) of a `.kebak` backup, and the process that writes it. */
const BACKUP_TEMPORARY = /^\..+\.kebak\.tmp-(\d+)$/;

/** Removes, beside `file`, partial backups left by backup runs that were killed (their writer is gone). */
function removeDeadTemporaries(file: string): void {
  for (const name of readdirSync(dirname(file))) {
    const pid = BACKUP_TEMPORARY.exec(name)?.[1];
    if (pid === undefined) continue;
    try {
      process.kill(Number(pid), 0);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ESRCH') rmSync(join(dirname(file), name), { force: true });
    }
  }
}
const RESTORE_TEMPORARY = '.store.restore-';

/** The master key of a data folder as the agent would use it, without creating one. */
function folderMasterKey(paths: DataDir, data: string): MasterKey {
  if (process.env.KMIP_EDGE_MASTER_KEY !== undefined) return MasterKey.load(paths.masterKey);
  if (!existsSync(paths.masterKey)) throw new UsageError(`no master key in ${data} (master.key); is it the agent's data folder?`);
  return MasterKey.read(paths.masterKey);
}

function refuseUnfinishedRotation(paths: DataDir, data: string): void {
  if (existsSync(nextKeyPath(paths.masterKey))) throw new UsageError(`a master-key rotation of ${data} is unfinished; run kmip-edge master-key rotate --data ${data} first`);
}

/** Operator-fixable refusals of the store and key modules as one usage line (exit 2). */
function asUsage(error: unknown): never {
  if (isKmipEdgeError(error) && /^(MASTER_KEY_|BACKUP_INVALID|STORE_OPEN_FAILED)/.test(error.code)) throw new UsageError(error.message);
  throw error;
}

export async function runBackupCommand(args: string[], out: (text: string) => void): Promise<number> {
  const { values } = parseArgs({ args, options: { data: { type: 'string' }, out: { type: 'string' }, 'include-master-key': { type: 'boolean', default: false } }, strict: true });
  if (values.data === undefined || values.out === undefined) throw new UsageError('backup needs --data DIR and --out FILE_OR_DIR');
  const data = values.data;
  const paths = dataDir(data);
  if (!existsSync(paths.store)) throw new UsageError(`no agent store in ${data}`);
  refuseUnfinishedRotation(paths, data);
  let file = resolve(values.out);
  if (existsSync(file)) {
    if (!statSync(file).isDirectory()) throw new UsageError(`${values.out} exists; give a new file name or a folder`);
    file = join(file, `kmip-edge-backup-${isoTime().replace(/[:.]/g, '-')}.kebak`);
    if (existsSync(file)) throw new UsageError(`${file} exists; try again`);
  }
  if (!/\.kebak$/.test(file)) throw new UsageError(`${values.out}: a backup file's name ends in .kebak`);
  if (!existsSync(dirname(file))) throw new UsageError(`no folder ${dirname(file)} for the backup`);
  removeDeadTemporaries(file);
  const include = values['include-master-key'];
  let store: LevelStore | undefined;
  try {
    store = await LevelStore.open(paths.store);
  } catch (error) {
    if (!isKmipEdgeError(error, 'STORE_LOCKED')) asUsage(error);
  }
  let summary: Record<string, unknown>;
  let source: string;
  if (store) {
    try {
      const masterKey = (() => {
        try {
          return folderMasterKey(paths, data);
        } catch (error) {
          return asUsage(error);
        }
      })();
      summary = { backup: file, ...(await writeBackup(store, file, masterKey, include).catch((error: NodeJS.ErrnoException) => {
        throw new UsageError(`cannot write ${file}: ${error.code ?? error.message}`);
      })) };
      source = 'stopped agent store';
    } finally {
      await store.close();
    }
  } else {
    let answer;
    try {
      answer = await sendBackupRequest(data, { action: 'backup', out: file, includeMasterKey: include });
    } catch (error) {
      if (isKmipEdgeError(error, 'BACKUP_WRITE_FAILED')) throw new UsageError(error.message);
      if (!isKmipEdgeError(error, 'AGENT_UNREACHABLE')) throw error;
      // The agent stopped (or was killed) before it answered: its backup file is never half there (durable-file.ts).
      process.stderr.write(`kmip-edge: no backup: ${error.message}; run it again\n`);
      return 1;
    }
    if (answer === undefined) throw new UsageError(`the store in ${data} is locked by a process that is not a kmip-edge agent (no ${join(data, 'agent.sock')})`);
    summary = answer.output;
    source = 'running agent';
  }
  out(JSON.stringify({ ...summary, source }) + '\n');
  const fingerprint = (summary.masterKey as { fingerprint: string }).fingerprint;
  process.stderr.write(include
    ? `kmip-edge: the backup holds the master key: keep it as secret as the data folder itself\n`
    : `kmip-edge: the master key is not in the backup; keep ${paths.masterKey} (fingerprint ${fingerprint}) backed up apart from it: a restore needs it\n`);
  return 0;
}

/** The records' digest, in key order (a restored store is read back and compared to the backup). */
function recordsDigest(records: Iterable<[string, Uint8Array]>): string {
  const hash = createHash('sha256');
  for (const [key, value] of records) hash.update(`${Buffer.byteLength(key)}:${key}:${value.length}:`).update(value);
  return hash.digest('hex');
}

export async function runRestoreCommand(args: string[], out: (text: string) => void): Promise<number> {
  const { values } = parseArgs({ args, options: { data: { type: 'string' }, from: { type: 'string' }, 'master-key': { type: 'string' }, replace: { type: 'boolean', default: false } }, strict: true });
  if (values.data === undefined || values.from === undefined) throw new UsageError('restore needs --data DIR and --from BACKUP');
  const data = values.data;
  if (!existsSync(values.from) || !statSync(values.from).isFile()) throw new UsageError(`no backup file ${values.from}`);
  let backup;
  try {
    backup = readBackup(values.from);
  } catch (error) {
    asUsage(error);
  }
  const wanted = backup.header.masterKey.fingerprint;

  // The master key the restored folder will run with, and where it comes from.
  if (existsSync(data) && !statSync(data).isDirectory()) throw new UsageError(`${data} is a file, not a data folder`);
  const paths = dataDir(data, true);
  refuseUnfinishedRotation(paths, data);
  let masterKey: MasterKey;
  let keySource: string;
  let writeKey = false;
  try {
    const inFolder = process.env.KMIP_EDGE_MASTER_KEY !== undefined ? MasterKey.load(paths.masterKey) : existsSync(paths.masterKey) ? MasterKey.read(paths.masterKey) : undefined;
    const given = values['master-key'] !== undefined ? MasterKey.read(values['master-key']) : backup.header.masterKey.key !== undefined ? MasterKey.fromBytes(Buffer.from(backup.header.masterKey.key, 'hex')) : undefined;
    if (inFolder && given && inFolder.fingerprint() !== given.fingerprint()) {
      throw new UsageError(`${data} already has another master key (fingerprint ${inFolder.fingerprint()}) than the one for the backup (${given.fingerprint()}); restore into another folder`);
    }
    if (inFolder) [masterKey, keySource] = [inFolder, process.env.KMIP_EDGE_MASTER_KEY !== undefined ? 'KMIP_EDGE_MASTER_KEY' : paths.masterKey];
    else if (given) [masterKey, keySource, writeKey] = [given, values['master-key'] ?? 'the backup', true];
    else throw new UsageError(`the backup does not hold its master key (fingerprint ${wanted}); give the master key kept apart with --master-key FILE`);
  } catch (error) {
    asUsage(error);
  }
  if (masterKey.fingerprint() !== wanted) throw new UsageError(`the master key from ${keySource} has fingerprint ${masterKey.fingerprint()}, the backup was made under ${wanted}; give the right one with --master-key FILE`);
  if (!backup.authenticates(masterKey)) throw new UsageError(`${values.from} does not authenticate under its master key: it was altered after it was made`);

  // The folder: a stopped agent's (its store not locked), its store empty unless --replace.
  let existing = 0;
  if (existsSync(paths.store)) {
    let store: LevelStore;
    try {
      store = await LevelStore.open(paths.store);
    } catch (error) {
      if (isKmipEdgeError(error, 'STORE_LOCKED')) throw new UsageError(`the agent on ${data} is running (its store is locked); stop it, then restore`);
      asUsage(error);
    }
    try {
      for await (const _ of store.entries('')) existing++;
    } finally {
      await store.close();
    }
    if (existing > 0 && !values.replace) throw new UsageError(`${paths.store} holds ${existing} records; add --replace to set it aside (kept as store.replaced-…) and restore`);
  }

  // Write the records into a temporary store beside it, read them back, then rename it into place.
  for (const name of readdirSync(data)) if (name.startsWith(RESTORE_TEMPORARY)) rmSync(join(data, name), { recursive: true, force: true });
  const temporary = join(data, `${RESTORE_TEMPORARY}${process.pid}`);
  const store = await LevelStore.open(temporary);
  try {
    for (let at = 0; at < backup.records.length; at += RESTORE_BATCH) {
      await store.commit(backup.records.slice(at, at + RESTORE_BATCH).map(([key, value]) => ({ type: 'put' as const, key, value })));
    }
    const readBack: [string, Uint8Array][] = [];
    for await (const record of store.entries('')) readBack.push(record);
    if (recordsDigest(readBack) !== recordsDigest(backup.records)) throw new KmipEdgeError('RESTORE_FAILED', `the records read back from ${temporary} differ from the backup; nothing was replaced`);
  } finally {
    await store.close();
  }
  syncFolder(temporary);
  if (writeKey) await writeFileDurably(paths.masterKey, [masterKey.exportBytes()]);
  let replaced: string | undefined;
  if (existsSync(paths.store)) {
    replaced = `${paths.store}.replaced-${isoTime().replace(/[:.]/g, '-')}`;
    if (existing === 0) rmSync(paths.store, { recursive: true, force: true });
    else renameSync(paths.store, replaced);
  }
  renameSync(temporary, paths.store);
  syncFolder(data);
  out(JSON.stringify({
    restored: data, from: resolve(values.from), records: backup.records.length, createdAt: backup.header.createdAt,
    masterKey: { fingerprint: wanted, from: keySource }, ...(existing > 0 && { replaced }),
  }) + '\n');
  return 0;
}
