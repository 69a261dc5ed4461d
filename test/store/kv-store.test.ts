/** The store contract, run against LevelDB on disk; the master key that seals key material. */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LevelStore, type KeyValueStore } from '../../src/store/kv-store.ts';
import { MasterKey } from '../../src/store/master-key.ts';

const bytes = (text: string) => new Uint8Array(Buffer.from(text));
const text = (value: Uint8Array | undefined) => (value === undefined ? undefined : Buffer.from(value).toString());

/** The contract every KeyValueStore keeps (run here against LevelDB; add other stores to the list). */
function storeContract(name: string, open: (dir: string) => Promise<KeyValueStore>): void {
  describe(`${name}: store contract`, () => {
    it('get of a missing key is undefined; commit puts and deletes atomically', async () => {
      const store = await open(mkdtempSync(join(tmpdir(), 'kmip-edge-store-')));
      try {
        assert.equal(await store.get('nope'), undefined);
        await store.commit([{ type: 'put', key: 'a', value: bytes('1') }, { type: 'put', key: 'b', value: bytes('2') }]);
        await store.commit([{ type: 'del', key: 'a' }, { type: 'put', key: 'c', value: bytes('3') }]);
        assert.equal(await store.get('a'), undefined);
        assert.equal(text(await store.get('b')), '2');
        assert.equal(text(await store.get('c')), '3');
      } finally {
        await store.close();
      }
    });

    it('entries by prefix, in key order', async () => {
      const store = await open(mkdtempSync(join(tmpdir(), 'kmip-edge-store-')));
      try {
        await store.commit(['x/2', 'x/1', 'y/1', 'x/10'].map((key) => ({ type: 'put' as const, key, value: bytes(key) })));
        const keys: string[] = [];
        for await (const [key] of store.entries('x/')) keys.push(key);
        assert.deepEqual(keys, ['x/1', 'x/10', 'x/2']);
      } finally {
        await store.close();
      }
    });

    it('what a commit wrote is there after closing and reopening', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-store-'));
      const first = await open(dir);
      await first.commit([{ type: 'put', key: 'k', value: bytes('v') }]);
      await first.close();
      const second = await open(dir);
      try {
        assert.equal(text(await second.get('k')), 'v');
      } finally {
        await second.close();
      }
    });

    it('concurrent commits all become durable, group-committed into fewer synced writes', async () => {
      const store = await open(mkdtempSync(join(tmpdir(), 'kmip-edge-store-')));
      try {
        await Promise.all(Array.from({ length: 200 }, (_, i) => store.commit([{ type: 'put', key: `k${i}`, value: bytes(String(i)) }])));
        for (let i = 0; i < 200; i++) assert.equal(text(await store.get(`k${i}`)), String(i));
        const stats = (store as LevelStore).stats;
        assert.equal(stats.commits, 200);
        assert.ok(stats.syncedWrites < 200, `${stats.syncedWrites} synced writes for 200 commits`);
      } finally {
        await store.close();
      }
    });
  });
}

storeContract('LevelDB', (dir) => LevelStore.open(dir));

describe('LevelStore', () => {
  it('refuses a second opener of the same folder with STORE_LOCKED', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-store-'));
    const store = await LevelStore.open(dir);
    try {
      await assert.rejects(LevelStore.open(dir), (e: unknown) => (e as { code?: string }).code === 'STORE_LOCKED');
    } finally {
      await store.close();
    }
  });
});

describe('MasterKey', () => {
  it('is created 0600 on first start and reused after', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'kmip-edge-mk-')), 'master.key');
    const first = MasterKey.load(path, undefined);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const sealed = first.seal(bytes('secret key bytes'), 'rec');
    assert.equal(text(MasterKey.load(path, undefined).open(sealed, 'rec')), 'secret key bytes');
  });

  it('seals so that the plaintext is not in the bytes, and only the same record key opens it', () => {
    const key = MasterKey.load('/nonexistent', 'ab'.repeat(32));
    const plaintext = bytes('0123456789abcdef0123456789abcdef');
    const sealed = key.seal(plaintext, 'key/1');
    assert.ok(!Buffer.from(sealed).includes(Buffer.from(plaintext)));
    const invalid = (e: unknown) => (e as { code?: string }).code === 'STORE_RECORD_INVALID';
    assert.throws(() => key.open(sealed, 'key/2'), invalid);
    const tampered = Uint8Array.from(sealed);
    tampered[20]! ^= 1;
    assert.throws(() => key.open(tampered, 'key/1'), invalid);
    assert.throws(() => MasterKey.load('/nonexistent', 'cd'.repeat(32)).open(sealed, 'key/1'), invalid);
  });

  it('refuses a key file others can read, a wrong length, and a malformed environment value', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-mk-'));
    const loose = join(dir, 'loose.key');
    writeFileSync(loose, Buffer.alloc(32));
    chmodSync(loose, 0o644);
    assert.throws(() => MasterKey.load(loose, undefined), /readable by others/);
    const short = join(dir, 'short.key');
    writeFileSync(short, Buffer.alloc(16), { mode: 0o600 });
    assert.throws(() => MasterKey.load(short, undefined), /must hold 32 bytes/);
    assert.throws(() => MasterKey.load(short, 'xyz'), /64 hex digits/);
    assert.equal(readdirSync(dir).length, 2);
    assert.equal(readFileSync(short).length, 16);
  });
});
