/**
 * The store on a full disk (issue #13.2), on a real 2 MB tmpfs: commits are refused with
 * STORE_FULL at once while reads keep working, the change of state is logged once each way, and
 * once space is back the store reopens by itself — and every write acknowledged before the disk
 * filled and after it was freed is there after a reopen (LevelDB, written on after a failed
 * append, acknowledges writes that a reopen then cannot read back).
 * Also the owner-only files of issue #13.8.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { dataDir } from '../../src/agent/data-dir.ts';
import { createLogger } from '../../src/log.ts';
import { LevelStore } from '../../src/store/kv-store.ts';
import { mountTmpfs } from '../helpers/tmpfs.ts';
import { until } from '../helpers/until.ts';

const value = (i: number) => new Uint8Array(Buffer.from(`value ${i} `.repeat(50)));

describe('the store on a full disk (a real tmpfs)', () => {
  it('refuses commits with STORE_FULL, serves reads, recovers by itself, loses no acknowledged write', async () => {
    const fs = mountTmpfs(2 * 1024 * 1024);
    const lines: Record<string, unknown>[] = [];
    const log = createLogger({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const path = join(fs.dir, 'store');
    let store = await LevelStore.open(path, { log, probeMs: 20, headroomBytes: 256 * 1024 });
    try {
      const acknowledged: string[] = [];
      for (let i = 0; i < 20; i++) {
        await store.commit([{ type: 'put', key: `before/${i}`, value: value(i) }]);
        acknowledged.push(`before/${i}`);
      }
      fs.fill();
      // Write until the disk says no: the failing commit and every one after it get STORE_FULL.
      let failure: unknown;
      for (let i = 0; failure === undefined && i < 100_000; i++) {
        try {
          await store.commit([{ type: 'put', key: `filling/${i}`, value: value(i) }]);
          acknowledged.push(`filling/${i}`);
        } catch (error) {
          failure = error;
        }
      }
      assert.equal((failure as { code?: string }).code, 'STORE_FULL', String(failure));
      assert.equal(store.writable, false);
      await assert.rejects(store.commit([{ type: 'put', key: 'refused', value: value(0) }]), { code: 'STORE_FULL' });
      await store.write([{ type: 'put', key: 'dropped', value: value(0) }]); // unsynced: dropped, never a rejection
      // Reads are served meanwhile, point reads and prefix scans.
      assert.deepEqual(Buffer.from((await store.get('before/3'))!), Buffer.from(value(3)));
      let scanned = 0;
      for await (const _ of store.entries('before/')) scanned++;
      assert.equal(scanned, 20);
      // Still full: it stays unwritable (probing on its own), and said so once.
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(store.writable, false);

      fs.free();
      await until(() => store.writable, 'the store writable again once space is freed', 10_000);
      for (let i = 0; i < 20; i++) {
        await store.commit([{ type: 'put', key: `after/${i}`, value: value(i) }]);
        acknowledged.push(`after/${i}`);
      }
      assert.deepEqual(lines.filter((l) => typeof l.event === 'string' && l.event !== 'store-reopen-failed').map((l) => [l.event, l.level]), [['store-unwritable', 50], ['store-writable', 30]]);

      await store.close();
      store = await LevelStore.open(path);
      const missing: string[] = [];
      for (const key of acknowledged) if ((await store.get(key)) === undefined) missing.push(key);
      assert.deepEqual(missing, [], `acknowledged writes lost across a reopen (${acknowledged.length} acknowledged)`);
      assert.equal(await store.get('refused'), undefined);
    } finally {
      await store.close();
      fs.unmount();
    }
  });
});

describe('owner-only store files (issue #13.8)', () => {
  it('a data folder made beforehand 0755 with 0644 files becomes 0700, its files 0600, and new files are 0600', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kmip-edge-perms-'));
    chmodSync(root, 0o755);
    const paths = dataDir(root);
    mkdirSync(paths.store, { mode: 0o755 });
    chmodSync(paths.store, 0o755);
    writeFileSync(join(paths.store, 'LOG.old'), 'left by an earlier run', { mode: 0o644 });
    chmodSync(join(paths.store, 'LOG.old'), 0o644);
    const umask = process.umask();
    process.umask(0o022); // the usual umask, as a shell gives it
    try {
      dataDir(root, true);
      const store = await LevelStore.open(paths.store);
      await store.commit([{ type: 'put', key: 'k', value: value(1) }]);
      await store.close();
      assert.equal(statSync(root).mode & 0o777, 0o700);
      assert.equal(statSync(paths.store).mode & 0o777, 0o700);
      const files = readdirSync(paths.store);
      assert.ok(files.length >= 4, `${files}`);
      for (const name of files) assert.equal(statSync(join(paths.store, name)).mode & 0o777, 0o600, name);
    } finally {
      process.umask(umask);
    }
  });
});
