/**
 * Crash-safe file replacement (issue #15): the bytes go to a temporary file beside the target,
 * are synced, and the temporary file is renamed over the target, then the folder is synced so the
 * rename itself survives a power cut. A reader sees the old file or the whole new one, never part.
 * Files are created owner-only (ARCHITECTURE.md §4 invariant 5).
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Syncs a folder: a rename or a new entry in it is durable once this returns. */
export function syncFolder(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The temporary name `writeFileDurably` uses for `path` (left behind only by a crash; safe to delete). */
export function temporaryName(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
}

/** Writes `chunks` to `path` atomically and durably, mode 0600. */
export async function writeFileDurably(path: string, chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<void> {
  const temporary = temporaryName(path);
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    for await (const chunk of chunks) {
      for (let at = 0; at < chunk.length; ) at += writeSync(fd, chunk, at);
    }
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(temporary, { force: true });
    throw error;
  }
  closeSync(fd);
  renameSync(temporary, path);
  syncFolder(dirname(path));
}
