/**
 * Master-key rotation (issue #15.2): every sealed record (sealed-records.ts) re-sealed under a
 * new key, crash-safe at every point. The steps, each durable before the next:
 *   1. the new key is written beside the old as `master.key.next` (durable-file.ts);
 *   2. records are re-sealed in synced batches; a record that opens under the new key is done,
 *      so the progress is in the records themselves and a resumed rotation skips them (GCM
 *      authenticates: a value opens under exactly the key that sealed it);
 *   3. every sealed record is checked to open under the new key;
 *   4. the old key file is overwritten (best effort: a file system may keep old blocks) and the
 *      new key renamed over it, atomically; the folder is synced.
 * While `master.key.next` exists nothing else loads the master key (MasterKey.load refuses), so
 * no record is ever read with the wrong key; `rotate` again resumes with the same next key.
 * A crash before step 1 completes leaves only a temporary file, removed on the next run.
 * The store stays open (locked) from start to switch: no agent can start in between.
 */
import { existsSync, readdirSync, rmSync, writeFileSync, fsyncSync, openSync, closeSync, renameSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { KmipEdgeError } from '../errors.ts';
import { syncFolder, writeFileDurably } from './durable-file.ts';
import type { BatchOperation, KeyValueStore } from './kv-store.ts';
import { MasterKey, nextKeyPath } from './master-key.ts';
import { sealedRecords } from './sealed-records.ts';

export const ROTATION_BATCH = 256;

export interface RotationResult {
  /** Sealed records in the store. */
  records: number;
  /** Re-sealed by this run (fewer than `records` when it resumed an interrupted one). */
  resealed: number;
  resumed: boolean;
  previousFingerprint: string;
  fingerprint: string;
}

/** Removes temporary files a killed run left beside `path` (durable-file.ts names them `.NAME.tmp-PID`). */
export function removeStaleTemporaries(path: string): void {
  const prefix = `.${basename(path)}.tmp-`;
  for (const name of readdirSync(dirname(path))) if (name.startsWith(prefix)) rmSync(join(dirname(path), name), { force: true });
}

/** Rotates the key in `keyPath` for the records of `store` (opened, so locked, by the caller). */
export async function rotateMasterKey(store: KeyValueStore, keyPath: string, batchSize = ROTATION_BATCH): Promise<RotationResult> {
  const nextPath = nextKeyPath(keyPath);
  removeStaleTemporaries(nextPath);
  const resumed = existsSync(nextPath);
  if (!resumed) await writeFileDurably(nextPath, [MasterKey.generate().exportBytes()]);
  const next = MasterKey.read(nextPath);
  const old = MasterKey.read(keyPath);
  const previousFingerprint = resumed ? '(interrupted rotation)' : old.fingerprint();

  let records = 0;
  let resealed = 0;
  let batch: BatchOperation[] = [];
  // The iterator reads from its snapshot; the batches written meanwhile do not disturb it.
  for await (const { key, value, kind } of sealedRecords(store)) {
    records++;
    const sealed = kind.sealed(value);
    if (next.tryOpen(sealed, key) !== undefined) continue; // re-sealed before an interruption
    const plaintext = old.tryOpen(sealed, key);
    if (plaintext === undefined) {
      throw new KmipEdgeError('ROTATION_RECORD_UNREADABLE', `record ${key} opens under neither the old nor the new master key (tampered or corrupted); the rotation stays unfinished, nothing was switched`);
    }
    batch.push({ type: 'put', key, value: kind.withSealed(value, next.seal(plaintext, key)) });
    resealed++;
    if (batch.length >= batchSize) {
      await store.commit(batch);
      batch = [];
    }
  }
  if (batch.length > 0) await store.commit(batch);

  for await (const { key, value, kind } of sealedRecords(store)) {
    if (next.tryOpen(kind.sealed(value), key) === undefined) throw new KmipEdgeError('ROTATION_RECORD_UNREADABLE', `record ${key} does not open under the new master key after re-sealing; nothing was switched`);
  }

  // Every record opens under the new key: the old one is no longer needed by anything.
  destroyKeyFile(keyPath);
  renameSync(nextPath, keyPath);
  syncFolder(dirname(keyPath));
  return { records, resealed, resumed, previousFingerprint, fingerprint: next.fingerprint() };
}

/** Overwrites the key file in place with random bytes and syncs it (a copy-on-write or flash file system may still keep the old blocks). */
function destroyKeyFile(path: string): void {
  const fd = openSync(path, 'r+');
  try {
    writeFileSync(fd, MasterKey.generate().exportBytes());
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
