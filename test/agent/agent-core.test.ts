/**
 * The agent core against the development server over mutual TLS, on LevelDB on disk: cache fills
 * (one upstream fill for concurrent misses), policy, Notify and Put hooks, and no key material in
 * the store's files.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentCore } from '../../src/agent/agent-core.ts';
import { nameValue, type Attribute } from '../../src/kmip/attributes.ts';
import { notifyPayload, putPayload, readPush } from '../../src/kmip/push.ts';
import { ObjectType, Operation, State, Tag, UsageLimitsUnit } from '../../src/kmip/tables.generated.ts';
import { CountingTransport } from '../../src/net/counting-transport.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { byteString, dateTime, enumeration, integer, longInteger, structure } from '../../src/ttlv/build.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import type { TtlvItem } from '../../src/ttlv/item.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { createLogger } from '../../src/log.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { startDevServer } from '../helpers/dev-server.ts';
import { runCli } from '../helpers/cli.ts';

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

const notifyPush = (uid: string, changed: Attribute[]) => readPush(Operation.Notify, structure(Tag.RequestPayload, notifyPayload(uid, changed)));
const putPush = (uid: string, object: TtlvItem, attributes: Attribute[], replaces?: string) => readPush(Operation.Put, structure(Tag.RequestPayload, putPayload(uid, object, attributes, replaces)));

async function openAgent(log?: ReturnType<typeof createLogger>) {
  const data = mkdtempSync(join(tmpdir(), 'kmip-edge-agent-'));
  const transport = new CountingTransport(new TlsPool(dev.endpoint));
  const client = new KmipClient({ transport, version: { major: 1, minor: 2 } });
  const agent = await AgentCore.open({ data, client, ledger: { minChunk: 10n }, ...(log && { log }) });
  return { data, transport, agent, close: async () => { await agent.close(); await client.close(); } };
}

async function activeKey(name: string, extra = [] as Parameters<typeof aesKey>[2]): Promise<string> {
  const uid = await admin.create(ObjectType.SymmetricKey, aesKey(name, undefined, extra));
  await admin.activate(uid);
  return uid;
}

describe('AgentCore', () => {
  it('fills the cache from the upstream once, even for concurrent misses; then serves from it', async () => {
    const uid = await activeKey('cache-me');
    const { agent, transport, close } = await openAgent();
    try {
      const results = await Promise.all(Array.from({ length: 20 }, () => agent.getKey('dev-1', uid, 'protect')));
      const messages = transport.roundTrips;
      assert.ok(messages <= 4, `one fill (Get, Get Attributes, Obtain Lease; coalesced) plus negotiation: ${messages} messages`);
      assert.ok(results.every((r) => toHex(r.material) === toHex(results[0]!.material)));
      await agent.getKey('dev-2', uid, 'process');
      assert.equal(transport.roundTrips, messages, 'a cache hit asks the upstream nothing');
      const [listed] = (await agent.listKeys()).filter((k) => k.uniqueIdentifier === uid);
      assert.equal(listed?.state, State.Active);
      assert.deepEqual(listed?.names, ['cache-me']);
      assert.ok(listed?.leaseExpiresAt !== undefined);
      assert.ok(!('material' in (listed as object)), 'the listing carries no key material');
    } finally {
      await close();
    }
  });

  it('refuses by policy with the specific reason: a Pre-Active key, a compromised one after Notify', async () => {
    const preActive = await admin.create(ObjectType.SymmetricKey, aesKey('pre-active'));
    const uid = await activeKey('notified');
    const { agent, close } = await openAgent();
    try {
      await assert.rejects(agent.getKey('d', preActive, 'protect'), (e: unknown) => (e as { code?: string }).code === 'KEY_NOT_ACTIVE');
      await agent.getKey('d', uid, 'protect');
      const later = BigInt(Math.floor(Date.now() / 1000) + 5);
      const compromised = notifyPush(uid, [{ name: 'State', value: enumeration(Tag.AttributeValue, State.Compromised) }, { name: 'Last Change Date', value: dateTime(Tag.AttributeValue, later) }]);
      assert.equal(await agent.applyPush(compromised), 'applied');
      assert.equal(await agent.applyPush(compromised), 'duplicate');
      await assert.rejects(agent.getKey('d', uid, 'process'), (e: unknown) => (e as { code?: string }).code === 'KEY_COMPROMISED');
      // A Notify older than what the cache knows is ignored.
      const stale = await agent.applyPush(notifyPush(uid, [{ name: 'State', value: enumeration(Tag.AttributeValue, State.Active) }, { name: 'Last Change Date', value: dateTime(Tag.AttributeValue, later - 100n) }]));
      assert.equal(stale, 'stale');
      await assert.rejects(agent.getKey('d', uid, 'process'), (e: unknown) => (e as { code?: string }).code === 'KEY_COMPROMISED');
    } finally {
      await close();
    }
  });

  it('renews leases before they end; without renewal, an expired lease refuses use', async () => {
    const uid = await activeKey('leased');
    let now = BigInt(Math.floor(Date.now() / 1000));
    const data = mkdtempSync(join(tmpdir(), 'kmip-edge-agent-'));
    const client = new KmipClient({ transport: new TlsPool(dev.endpoint), version: { major: 1, minor: 2 } });
    const agent = await AgentCore.open({ data, client, now: () => now });
    try {
      const filled = (await agent.getKey('d', uid, 'protect')).metadata.leaseExpiresAt!;
      assert.equal(filled, now + 600n);
      now += 550n;
      assert.deepEqual(await agent.renewLeases(60n), [uid]);
      assert.equal((await agent.getKey('d', uid, 'protect')).metadata.leaseExpiresAt, now + 600n);
      now += 600n;
      await assert.rejects(agent.getKey('d', uid, 'protect'), (e: unknown) => (e as { code?: string }).code === 'KEY_LEASE_EXPIRED');
    } finally {
      await agent.close();
      await client.close();
    }
  });

  it('Put installs a key with its lease; Put Replace retires the replaced one', async () => {
    const { agent, close } = await openAgent();
    try {
      const material = Uint8Array.from({ length: 32 }, (_, i) => i);
      const object = structure(Tag.SymmetricKey, [structure(Tag.KeyBlock, [enumeration(Tag.KeyFormatType, 1), structure(Tag.KeyValue, [byteString(Tag.KeyMaterial, material)]), enumeration(Tag.CryptographicAlgorithm, 3), integer(Tag.CryptographicLength, 256)])]);
      const attributes = [
        { name: 'State', value: enumeration(Tag.AttributeValue, State.Active) },
        { name: 'Lease Time', value: { tag: Tag.AttributeValue, type: 0x0a as const, value: 3600 } },
        { name: 'Name', value: nameValue('pushed') },
      ];
      assert.equal(await agent.applyPush(putPush('pushed-1', object, attributes)), 'applied');
      assert.equal(toHex((await agent.getKey('d', 'pushed-1', 'protect')).material), toHex(material));
      assert.equal(await agent.applyPush(putPush('pushed-2', object, attributes, 'pushed-1')), 'applied');
      assert.deepEqual((await agent.listKeys()).map((k) => k.uniqueIdentifier).filter((u) => u.startsWith('pushed')), ['pushed-2']);
    } finally {
      await close();
    }
  });

  it('grants units within the upstream allocation, durable; no key material in clear on disk or in the logs', async () => {
    const limits = structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, 1000n), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Object)]);
    const uid = await activeKey('granted', [{ name: 'Usage Limits', value: limits }]);
    const lines: string[] = [];
    const { agent, data, close } = await openAgent(createLogger({ level: 'debug' }, { write: (line: string) => void lines.push(line) }));
    let material: Uint8Array;
    try {
      material = (await agent.getKey('d', uid, 'protect')).material;
      const grant = await agent.grantUnits('tape-1', 'req-1', uid, 7n);
      assert.equal(grant.count, 7n);
      const totals = await agent.ledger.totals(uid);
      assert.ok(totals.grantedToDevices === 7n && totals.allocatedFromUpstream >= 7n);
      assert.equal((await agent.getKey('d', uid, 'protect')).metadata.usageLimitsUnit, UsageLimitsUnit.Object);
      await assert.rejects(agent.grantUnits('tape-1', 'req-2', uid, 100_000n));
      await assert.rejects(agent.grantUnits('tape-1', 'req-3', uid, 1n, UsageLimitsUnit.Byte), (e: unknown) => (e as { code?: string }).code === 'LEDGER_UNIT_MISMATCH');
      assert.equal((await agent.grantUnits('tape-1', 'req-4', uid, 1n, UsageLimitsUnit.Object)).count, 1n);
      const plain = await activeKey('no-limits');
      await assert.rejects(agent.grantUnits('tape-1', 'req-5', plain, 1n), (e: unknown) => (e as { code?: string }).code === 'LEDGER_NO_USAGE_LIMITS');
      await agent.applyPush(notifyPush(uid, [{ name: 'Name', value: nameValue('renamed') }]));
    } finally {
      await close();
    }
    const logs = lines.join('');
    assert.match(logs, /"msg":"units granted"/);
    assert.match(logs, /"msg":"units refused"/);
    assert.match(logs, /"msg":"key served"/);
    for (const form of [toHex(material!), Buffer.from(material!).toString('base64'), Buffer.from(material!).toString('latin1')]) {
      assert.ok(!logs.includes(form), 'key material in the logs');
    }
    const listing = runCli(['cache', '--data', data, '--json']);
    assert.equal(listing.status, 0, listing.stderr);
    assert.ok((JSON.parse(listing.stdout) as { keys: { uniqueIdentifier: string }[] }).keys.some((k) => k.uniqueIdentifier === uid));
    assert.ok(!listing.stdout.includes(toHex(material!)), 'key material in the cache listing');
    const files = readdirSync(join(data, 'store')).map((f) => readFileSync(join(data, 'store', f)));
    const all = Buffer.concat(files);
    assert.ok(all.includes(Buffer.from(uid)), 'the store holds the records (a check that the grep sees the data)');
    assert.ok(!all.includes(Buffer.from(material!)), 'raw key bytes in a LevelDB file');
    assert.ok(!all.includes(Buffer.from(toHex(material!))), 'hex key bytes in a LevelDB file');
  });
});
