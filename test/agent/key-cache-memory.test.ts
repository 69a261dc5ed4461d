/**
 * The key cache's compact memory form (issue #15 footprint): the material of every key held in
 * one slab, against the development server over mutual TLS, on LevelDB on disk. Keys of many sizes
 * keep their exact bytes while the slab grows, while Put Replace chains release and the slab is
 * compacted, in a view handed out before either, and when read back from disk after a restart.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentCore } from '../../src/agent/agent-core.ts';
import { nameValue } from '../../src/kmip/attributes.ts';
import { putPayload, readPush } from '../../src/kmip/push.ts';
import { ObjectType, Operation, State, Tag } from '../../src/kmip/tables.generated.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { byteString, enumeration, integer, structure } from '../../src/ttlv/build.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { startDevServer } from '../helpers/dev-server.ts';

let dev: Awaited<ReturnType<typeof startDevServer>>;
let admin: KmipClient;
before(async () => {
  dev = await startDevServer({ leaseSeconds: 600 });
  admin = new KmipClient({ transport: new TlsPool(dev.endpoint), version: { major: 1, minor: 2 } });
});
after(async () => {
  await admin.close();
  await dev.stop();
});

async function openAgent(data: string) {
  const client = new KmipClient({ transport: new TlsPool(dev.endpoint), version: { major: 1, minor: 2 } });
  const agent = await AgentCore.open({ data, client });
  return { agent, close: async () => { await agent.close(); await client.close(); } };
}

/** Distinct bytes for key `i`, `length` long. */
const materialOf = (i: number, length: number) => Uint8Array.from({ length }, (_, j) => (i * 31 + j * 7 + 1) & 0xff);

function put(uid: string, material: Uint8Array, replaces?: string) {
  const object = structure(Tag.SymmetricKey, [structure(Tag.KeyBlock, [enumeration(Tag.KeyFormatType, 1), structure(Tag.KeyValue, [byteString(Tag.KeyMaterial, material)]), enumeration(Tag.CryptographicAlgorithm, 3), integer(Tag.CryptographicLength, material.length * 8)])]);
  const attributes = [
    { name: 'State', value: enumeration(Tag.AttributeValue, State.Active) },
    { name: 'Lease Time', value: { tag: Tag.AttributeValue, type: 0x0a as const, value: 3600 } },
    { name: 'Name', value: nameValue(uid) },
  ];
  return readPush(Operation.Put, structure(Tag.RequestPayload, putPayload(uid, object, attributes, replaces)));
}

describe('key cache memory', () => {
  it('keeps every key exact while the slab grows, is compacted after Put Replace, and after a restart', async () => {
    const data = mkdtempSync(join(tmpdir(), 'kmip-edge-cache-memory-'));
    // 60 keys of 16 to ~2 kB: ~60 kB, several times the slab's first 16 kB.
    const lengths = Array.from({ length: 60 }, (_, i) => 16 + ((i * 397) % 2000));
    let { agent, close } = await openAgent(data);
    try {
      assert.equal(await agent.applyPush(put('k-0', materialOf(0, lengths[0]!))), 'applied');
      const early = (await agent.cache.cached('k-0'))!.material; // a view handed out before the slab grows
      for (let i = 1; i < lengths.length; i++) assert.equal(await agent.applyPush(put(`k-${i}`, materialOf(i, lengths[i]!))), 'applied');
      assert.equal(toHex(early), toHex(materialOf(0, lengths[0]!)));
      for (let i = 0; i < lengths.length; i++) assert.equal(toHex((await agent.cache.cached(`k-${i}`))!.material), toHex(materialOf(i, lengths[i]!)), `k-${i}`);

      // Each key replaced by a new, short one (new identifier, new material): the old bytes are
      // released, and once they are most of the slab it is rewritten without them.
      const beforeCompaction = (await agent.cache.cached('k-59'))!.material;
      for (let i = 0; i < lengths.length; i++) assert.equal(await agent.applyPush(put(`r-${i}`, materialOf(i + 100, 16), `k-${i}`)), 'applied');
      assert.equal(toHex(beforeCompaction), toHex(materialOf(59, lengths[59]!)));
      for (let i = 0; i < lengths.length; i++) {
        assert.equal(await agent.cache.cached(`k-${i}`), undefined, `k-${i} retired`);
        assert.equal(toHex((await agent.cache.cached(`r-${i}`))!.material), toHex(materialOf(i + 100, 16)), `r-${i}`);
      }
      // The same key again (a resent Put) keeps its material.
      assert.equal(await agent.applyPush(put('r-7', materialOf(107, 16))), 'applied');
      assert.equal(toHex((await agent.cache.cached('r-7'))!.material), toHex(materialOf(107, 16)));
    } finally {
      await close();
    }

    ({ agent, close } = await openAgent(data));
    try {
      for (let i = 0; i < lengths.length; i++) assert.equal(toHex((await agent.getKey('d', `r-${i}`, 'protect')).material), toHex(materialOf(i + 100, 16)), `r-${i} from disk`);
      assert.deepEqual((await agent.listKeys()).map((k) => k.uniqueIdentifier).sort(), lengths.map((_, i) => `r-${i}`).sort());
    } finally {
      await close();
    }
  });

  it('keeps the metadata a fill records: names, dates, lease; a key fetched from the server is served from memory', async () => {
    const data = mkdtempSync(join(tmpdir(), 'kmip-edge-cache-memory-'));
    const uid = await admin.create(ObjectType.SymmetricKey, aesKey('compact-meta'));
    await admin.activate(uid);
    const { agent, close } = await openAgent(data);
    try {
      const fetched = await agent.getKey('d', uid, 'protect');
      assert.equal(fetched.material.length, 32);
      const { metadata } = fetched;
      assert.equal(metadata.uniqueIdentifier, uid);
      assert.deepEqual(metadata.names, ['compact-meta']);
      assert.equal(metadata.state, State.Active);
      assert.equal(typeof metadata.activationDate, 'bigint');
      assert.equal(typeof metadata.leaseExpiresAt, 'bigint');
      const held = agent.cache.useFromMemory(uid, 'protect');
      assert.ok(held, 'served from memory');
      assert.equal(toHex(held.material), toHex(fetched.material));
      assert.deepEqual(held.metadata, metadata);
    } finally {
      await close();
    }
  });
});
