/**
 * The backup file (src/store/snapshot.ts) on LevelDB on disk: a snapshot is consistent while
 * writes go on; a truncated or altered file is refused with a reason; the authenticator tells the
 * master key that made it; the parser's limits hold at the limit and one over, checked before
 * anything is allocated (a crafted length field alone is refused).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isKmipEdgeError } from '../../src/errors.ts';
import { LevelStore } from '../../src/store/kv-store.ts';
import { MasterKey } from '../../src/store/master-key.ts';
import { MAX_KEY_BYTES, MAX_VALUE_BYTES, readBackup, writeBackup } from '../../src/store/snapshot.ts';

const work = mkdtempSync(join(tmpdir(), 'kmip-edge-snapshot-'));
let n = 0;
const fresh = () => join(work, `f${n++}`);
const invalid = (pattern: RegExp) => (error: unknown) => isKmipEdgeError(error, 'BACKUP_INVALID') && pattern.test((error as Error).message);

async function withStore<T>(use: (store: LevelStore) => Promise<T>): Promise<T> {
  const store = await LevelStore.open(fresh());
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

/** A backup file made by hand: `body` after the magic, with a correct SHA-256 (and a zero authenticator). */
function crafted(body: Buffer): string {
  const file = fresh();
  const all = Buffer.concat([Buffer.from('KMIPEDGE-BACKUP1\n'), body, Buffer.alloc(32)]);
  writeFileSync(file, Buffer.concat([all, createHash('sha256').update(all).digest()]));
  return file;
}
const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};
const header = Buffer.from(JSON.stringify({ createdAt: 'x', masterKey: { fingerprint: '00', included: false } }));

describe('backup file', () => {
  it('holds every record, owner-only, and authenticates under its master key only', async () => {
    const key = MasterKey.generate();
    const file = fresh();
    const summary = await withStore(async (store) => {
      await store.commit(Array.from({ length: 500 }, (_, i) => ({ type: 'put' as const, key: `r/${String(i).padStart(4, '0')}`, value: new Uint8Array([i & 255, 1, 2]) })));
      return writeBackup(store, file, key, false);
    });
    assert.equal(summary.records, 500);
    assert.equal(summary.bytes, statSync(file).size);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const read = readBackup(file);
    assert.equal(read.records.length, 500);
    assert.deepEqual([read.records[7]![0], [...read.records[7]![1]]], ['r/0007', [7, 1, 2]]);
    assert.equal(read.sha256, summary.sha256);
    assert.equal(read.header.masterKey.fingerprint, key.fingerprint());
    assert.equal(read.header.masterKey.key, undefined, 'the master key is not in it by default');
    assert.ok(!readFileSync(file).includes(Buffer.from(key.exportBytes())));
    assert.equal(read.authenticates(key), true);
    assert.equal(read.authenticates(MasterKey.generate()), false);
  });

  it('is one consistent snapshot while writes go on', async () => {
    const file = fresh();
    await withStore(async (store) => {
      // pairs written together in one batch: a snapshot has both or neither
      await store.commit(Array.from({ length: 2000 }, (_, i) => [{ type: 'put' as const, key: `a/${i}`, value: new Uint8Array([0]) }, { type: 'put' as const, key: `b/${i}`, value: new Uint8Array([0]) }]).flat());
      let writing = true;
      const writer = (async () => {
        for (let round = 1; writing; round++) {
          const i = round % 2000;
          await store.commit([{ type: 'put', key: `a/${i}`, value: new Uint8Array([round & 255]) }, { type: 'put', key: `b/${i}`, value: new Uint8Array([round & 255]) }, { type: 'put', key: `c/${round}`, value: new Uint8Array([1]) }]);
        }
      })();
      await writeBackup(store, file, MasterKey.generate(), false);
      writing = false;
      await writer;
    });
    const records = new Map(readBackup(file).records.map(([k, v]) => [k, v[0]]));
    for (let i = 0; i < 2000; i++) assert.equal(records.get(`a/${i}`), records.get(`b/${i}`), `pair ${i}`);
  });

  it('with --include-master-key, holds the key', async () => {
    const key = MasterKey.generate();
    const file = fresh();
    await withStore((store) => writeBackup(store, file, key, true));
    assert.equal(readBackup(file).header.masterKey.key, Buffer.from(key.exportBytes()).toString('hex'));
  });

  it('refuses a truncated, altered or foreign file with the reason', async () => {
    const file = fresh();
    await withStore(async (store) => {
      await store.commit([{ type: 'put', key: 'k', value: new Uint8Array(100) }]);
      return writeBackup(store, file, MasterKey.generate(), false);
    });
    const bytes = readFileSync(file);
    const truncated = fresh();
    writeFileSync(truncated, bytes.subarray(0, bytes.length - 10));
    assert.throws(() => readBackup(truncated), invalid(/checksum does not match/));
    const flipped = fresh();
    const altered = Buffer.from(bytes);
    altered[60]! ^= 1;
    writeFileSync(flipped, altered);
    assert.throws(() => readBackup(flipped), invalid(/checksum does not match/));
    const foreign = fresh();
    writeFileSync(foreign, Buffer.alloc(200, 7));
    assert.throws(() => readBackup(foreign), invalid(/no kmip-edge backup header/));
  });

  it('a record key of the limit is read, one byte over is refused', async () => {
    for (const [bytes, ok] of [[MAX_KEY_BYTES, true], [MAX_KEY_BYTES + 1, false]] as const) {
      const file = fresh();
      await withStore(async (store) => {
        await store.commit([{ type: 'put', key: 'k'.repeat(bytes), value: new Uint8Array(1) }]);
        return writeBackup(store, file, MasterKey.generate(), false);
      });
      if (ok) assert.equal(readBackup(file).records[0]![0].length, bytes);
      else assert.throws(() => readBackup(file), invalid(new RegExp(`a ${bytes}-byte record key, over the ${MAX_KEY_BYTES}-byte limit`)));
    }
  });

  it('a record value of the limit is read, a length one over is refused before anything is allocated', () => {
    const record = (length: number, data: Buffer) => Buffer.concat([Buffer.from([1]), u32(1), Buffer.from('k'), u32(length), data]);
    const atLimit = crafted(Buffer.concat([u32(header.length), header, record(MAX_VALUE_BYTES, Buffer.alloc(MAX_VALUE_BYTES)), Buffer.from([0]), u32(1)]));
    assert.equal(readBackup(atLimit).records[0]![1].length, MAX_VALUE_BYTES);
    // only the length field: no value bytes follow; the limit is checked first
    const over = crafted(Buffer.concat([u32(header.length), header, record(MAX_VALUE_BYTES + 1, Buffer.alloc(0)), Buffer.from([0]), u32(1)]));
    assert.throws(() => readBackup(over), invalid(/over the 67108864-byte limit/));
    const hugeHeader = crafted(Buffer.concat([u32(0xffffffff), Buffer.alloc(10)]));
    assert.throws(() => readBackup(hugeHeader), invalid(/header, over the 4096-byte limit/));
    const miscounted = crafted(Buffer.concat([u32(header.length), header, record(1, Buffer.alloc(1)), Buffer.from([0]), u32(2)]));
    assert.throws(() => readBackup(miscounted), invalid(/says 2 records and holds 1/));
    const runsPast = crafted(Buffer.concat([u32(header.length), header, record(1000, Buffer.alloc(10))]));
    assert.throws(() => readBackup(runsPast), invalid(/runs past the end/));
  });
});
