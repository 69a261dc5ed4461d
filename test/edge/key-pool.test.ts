/**
 * The key pool and its outbox (issue #16, offline Create) against the development server as a
 * process of its own, stopped for an outage and started again: fills to the template's size,
 * offline takes (distinct keys, attributes applied to the cached metadata, durable), the refill
 * and the drain once the key server is back (checked by asking the key server directly), a Name
 * taken upstream meanwhile (logged, shown, kept), concurrent takes, an empty pool, a key whose
 * pool record was lost found again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AgentCore } from '../../src/agent/agent-core.ts';
import { mayUse } from '../../src/agent/key-policy.ts';
import { nameValue, type Attribute } from '../../src/kmip/attributes.ts';
import { CryptographicAlgorithm, CryptographicUsageMask, ObjectType, State, Tag } from '../../src/kmip/tables.generated.ts';
import { createLogger } from '../../src/log.ts';
import { KeyPool, matchingTemplates, POOL_MARKER, templateId, type PoolClient } from '../../src/edge/key-pool.ts';
import { nameText } from '../../src/edge/outbox.ts';
import type { OfflineCreateRequest, PoolTemplate } from '../../src/edge/principal.ts';
import { enumeration, integer, textString } from '../../src/ttlv/build.ts';
import type { KmipClient } from '../../src/upstream/client.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { keyServerProcess, openAgentOn, type KeyServerProcess } from '../helpers/key-server-process.ts';
import { until } from '../helpers/until.ts';

const AES = CryptographicAlgorithm.AES;
const TAPES: PoolTemplate = { algorithm: AES, length: 256, objectGroup: 'tapes', size: 3 };
const SMALL: PoolTemplate = { algorithm: AES, length: 128, usageMask: CryptographicUsageMask.Encrypt, size: 2 };

let server: KeyServerProcess;
before(async () => {
  server = await keyServerProcess('key-pool');
});
after(async () => {
  await server.stop();
});

const request = (clientId: string, attributes: Attribute[], extra: Partial<OfflineCreateRequest> = {}): OfflineCreateRequest => ({
  clientId, algorithm: AES, length: 256, usageMask: undefined, objectGroup: undefined, attributes, activate: true, ...extra,
});
const named = (name: string, barcode?: string): Attribute[] => [
  { name: 'Name', value: nameValue(name) },
  ...(barcode === undefined ? [] : [{ name: 'x-barcode', value: textString(Tag.AttributeValue, barcode) }]),
];

async function openPool(clients: PoolClient[], log?: ReturnType<typeof createLogger>, data?: string): Promise<{ pool: KeyPool; agent: AgentCore; data: string; close(): Promise<void> }> {
  const opened = await openAgentOn(server, data === undefined ? {} : { data });
  const pool = await KeyPool.open({ agent: opened.agent, clients: () => clients, backoff: { minMs: 20, maxMs: 200 }, ...(log && { log }) });
  return { pool, agent: opened.agent, data: opened.data, close: async () => { await pool.stop(); await opened.close(); } };
}

/** Syncs until a pass ends without a failure (the breaker's cool-down after the server came back). */
async function syncOnline(pool: KeyPool): Promise<void> {
  await until(async () => (await pool.sync()).error === undefined, 'a sync pass without a failure', 10_000);
}

async function attributesUpstream(admin: KmipClient, uid: string): Promise<Attribute[]> {
  return (await admin.getAttributes(uid)).attributes;
}

/** Every object upstream holding the Name `name`, and how many instances of it each holds. */
async function holdersOf(admin: KmipClient, name: string): Promise<Map<string, number>> {
  const holders = new Map<string, number>();
  for (const uid of await admin.locateAll({ attributes: [{ name: 'Name', value: nameValue(name) }] })) {
    holders.set(uid, (await attributesUpstream(admin, uid)).filter((a) => a.name === 'Name' && nameText(a) === name).length);
  }
  return holders;
}

describe('KeyPool', () => {
  it('fills each template to its size: keys created upstream with the marker, Pre-Active, and sealed in the cache', async () => {
    const { pool, agent, close } = await openPool([{ id: 'lib-fill', pool: [TAPES, SMALL] }]);
    try {
      const report = await pool.sync();
      assert.equal(report.error, undefined);
      assert.equal(report.created, 5);
      const status = await pool.status();
      assert.deepEqual(status.templates.map((t) => [t.length, t.size, t.ready, t.objectGroup]), [[256, 3, 3, 'tapes'], [128, 2, 2, null]]);
      assert.equal((await pool.sync()).created, 0, 'a full pool creates nothing more');
      const pooled = (await agent.listKeys()).filter((k) => k.state === State.PreActive);
      assert.equal(pooled.length, 5);
      await server.admin(async (admin) => {
        for (const key of pooled) {
          assert.ok(await agent.cache.cached(key.uniqueIdentifier), 'in the cache (sealed in the store)');
          const upstream = await attributesUpstream(admin, key.uniqueIdentifier);
          const marker = upstream.find((a) => a.name === POOL_MARKER)?.value?.value as string;
          assert.ok(marker.startsWith(`${pool.agentId} lib-fill `), `marked as this agent's pool key: ${marker}`);
          assert.equal(upstream.find((a) => a.name === 'State')?.value?.value, State.PreActive);
        }
        const tapes = pooled.filter((k) => k.length === 256);
        assert.ok(tapes.every((k) => k.objectGroups.includes('tapes')), 'the template\'s Object Group');
        assert.ok(pooled.filter((k) => k.length === 128).every((k) => k.usageMask === CryptographicUsageMask.Encrypt));
      });
    } finally {
      await close();
    }
  });

  it('takes offline: distinct keys with the requested attributes applied locally, durable across a restart; refilled and drained when the key server is back', async () => {
    const clients = [{ id: 'lib-1', pool: [TAPES] }];
    let opened = await openPool(clients);
    const data = opened.data;
    const uids: string[] = [];
    try {
      await syncOnline(opened.pool);
      await server.stop();
      for (const [name, barcode] of [['tape-A00001', 'A00001'], ['tape-A00002', 'A00002']] as const) {
        const uid = await opened.pool.takeOffline(request('lib-1', named(name, barcode)));
        assert.ok(uid !== undefined);
        uids.push(uid);
      }
      // Not activated, and its group named explicitly (the template's).
      const third = await opened.pool.takeOffline(request('lib-1', named('tape-A00003'), { activate: false, objectGroup: 'tapes' }));
      assert.ok(third !== undefined);
      uids.push(third);
      assert.equal(new Set(uids).size, 3, 'three different keys');
      assert.equal(await opened.pool.takeOffline(request('lib-1', named('tape-A00004'))), undefined, 'the pool is empty');

      const now = BigInt(Math.floor(Date.now() / 1000));
      const first = (await opened.agent.cache.cached(uids[0]!))!.metadata;
      assert.deepEqual(first.names, ['tape-A00001']);
      assert.deepEqual(first.objectGroups, ['tapes']);
      assert.equal(first.state, State.Active);
      assert.ok(first.activationDate !== undefined && first.activationDate <= now);
      assert.deepEqual(mayUse(first, 'protect', now), { allowed: true }, 'usable at once, offline');
      assert.deepEqual(opened.pool.pendingAttributes(uids[1]!)?.map((a) => [a.name, a.name === 'Name' ? nameText(a) : a.value?.value]), [['Name', 'tape-A00002'], ['x-barcode', 'A00002']], 'what the key server is yet to hold');
      const pre = (await opened.agent.cache.cached(third))!.metadata;
      assert.equal(pre.state, State.PreActive);
      assert.deepEqual(pre.names, ['tape-A00003']);
      await assert.rejects(opened.agent.upstream('a probe', (client) => client.locate({})), 'all this while the key server is unreachable');

      // Durable: a restart (same data folder) finds the takes and the outbox as they were.
      await opened.close();
      opened = await openPool(clients, undefined, data);
      const status = await opened.pool.status();
      assert.equal(status.templates[0]!.ready, 0);
      assert.equal(status.outbox.pending, 3);
      assert.deepEqual(status.outbox.entries.map((e) => [e.uid, e.names, e.attributes, e.activate]), [
        [uids[0], ['tape-A00001'], ['Name', 'x-barcode'], true],
        [uids[1], ['tape-A00002'], ['Name', 'x-barcode'], true],
        [uids[2], ['tape-A00003'], ['Name'], false],
      ]);
      assert.equal(await opened.pool.takeOffline(request('lib-1', named('tape-A00004'))), undefined, 'taken keys are not pooled again after a restart');

      await server.start();
      opened.pool.start(50); // as the run command does: periodic, with back-off while offline
      await until(async () => {
        const s = await opened.pool.status();
        return s.outbox.pending === 0 && s.templates[0]!.ready === 3;
      }, 'the outbox drained and the pool refilled', 20_000);
      await server.admin(async (admin) => {
        for (const [i, uid] of uids.entries()) {
          const name = `tape-A0000${i + 1}`;
          assert.deepEqual([...(await holdersOf(admin, name))], [[uid, 1]], `${name}: on ${uid} once, on no other object`);
          const upstream = await attributesUpstream(admin, uid);
          assert.equal(upstream.find((a) => a.name === POOL_MARKER), undefined, 'the pool marker is gone from a taken key');
          assert.equal(upstream.find((a) => a.name === 'State')?.value?.value, i < 2 ? State.Active : State.PreActive);
          if (i < 2) assert.deepEqual(upstream.filter((a) => a.name === 'x-barcode').map((a) => a.value?.value), [`A0000${i + 1}`]);
          assert.deepEqual(upstream.filter((a) => a.name === 'Object Group').map((a) => a.value?.value), ['tapes']);
        }
      });
      assert.equal(opened.pool.pendingAttributes(uids[1]!), undefined);
      const refreshed = (await opened.agent.cache.cached(uids[0]!))!.metadata;
      assert.equal(refreshed.state, State.Active);
      assert.ok(refreshed.leaseExpiresAt !== undefined, 'the key server\'s lease replaces the offline "no limit"');
      const fresh = await opened.pool.takeOffline(request('lib-1', named('tape-A00005')));
      assert.ok(fresh !== undefined && !uids.includes(fresh), 'a refilled key, never one handed out before');
    } finally {
      await server.start();
      await opened.close();
    }
  });

  it('a Name taken upstream meanwhile is a conflict: logged, shown in status, kept until retried or discarded; the other entries drain', async () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const { pool, agent, close } = await openPool([{ id: 'lib-2', pool: [{ ...TAPES, size: 4 }] }], log);
    try {
      await syncOnline(pool);
      await server.stop();
      const clash = (await pool.takeOffline(request('lib-2', named('clash-1', 'B1'))))!;
      const fine = (await pool.takeOffline(request('lib-2', named('fine-1'))))!;
      const clash2 = (await pool.takeOffline(request('lib-2', named('clash-2'))))!;
      await server.start();
      // Meanwhile, at the key server: two other objects got these names.
      const [other1, other2] = await server.admin(async (admin) => [
        await admin.create(ObjectType.SymmetricKey, aesKey('clash-1')),
        await admin.create(ObjectType.SymmetricKey, aesKey('clash-2')),
      ]);
      await syncOnline(pool);

      const status = await pool.status();
      assert.equal(status.outbox.pending, 2);
      assert.equal(status.outbox.conflicted, 2);
      const [first, second] = pool.conflicts();
      assert.equal(first!.uid, clash);
      assert.deepEqual(first!.problems.map((p) => [p.kind, p.attribute, p.value, p.takenBy]), [['name_taken', 'Name', 'clash-1', other1]]);
      assert.equal(second!.uid, clash2);
      const logged = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((l) => l.event === 'outbox_conflict');
      assert.deepEqual(logged.map((l) => [l.clientId, l.uid, l.attribute, l.value]), [['lib-2', clash, 'Name', 'clash-1'], ['lib-2', clash2, 'Name', 'clash-2']]);
      const material = (await agent.cache.cached(clash))!.material;
      assert.ok(!lines.join('').includes(Buffer.from(material).toString('hex')), 'no key material in the log');

      await server.admin(async (admin) => {
        assert.deepEqual([...(await holdersOf(admin, 'fine-1'))], [[fine, 1]], 'the other entry drained');
        assert.deepEqual([...(await holdersOf(admin, 'clash-1'))], [[other1, 1]], 'the conflicting Name was not written');
        const upstream = await attributesUpstream(admin, clash);
        assert.deepEqual(upstream.filter((a) => a.name === 'x-barcode').map((a) => a.value?.value), ['B1'], 'the rest of the entry was written');
        assert.equal(upstream.find((a) => a.name === 'State')?.value?.value, State.Active);
      });
      assert.equal((await pool.sync()).drained, 0);
      assert.equal((await pool.status()).outbox.conflicted, 2, 'still there after another pass: never dropped by itself');

      // The operator frees clash-1 upstream and retries; gives up clash-2.
      await server.admin((admin) => admin.deleteAttribute(other1!, 'Name'));
      await pool.retry(first!.seq);
      const discarded = await pool.discard(second!.seq);
      assert.equal(discarded.uid, clash2);
      await assert.rejects(pool.discard(999), (e: unknown) => (e as { code?: string }).code === 'OUTBOX_NO_ENTRY');
      await syncOnline(pool);
      assert.equal((await pool.status()).outbox.pending, 0);
      await server.admin(async (admin) => {
        assert.deepEqual([...(await holdersOf(admin, 'clash-1'))], [[clash, 1]]);
        assert.deepEqual([...(await holdersOf(admin, 'clash-2'))], [[other2, 1]]);
        assert.deepEqual((await attributesUpstream(admin, clash)).filter((a) => a.name === 'x-barcode').map((a) => a.value?.value), ['B1'], 'written once, though the entry was written twice');
      });
      // The discarded key is never pooled again (found upstream, still taken here).
      await syncOnline(pool);
      const handed = await Promise.all(Array.from({ length: 4 }, (_, i) => pool.takeOffline(request('lib-2', named(`after-${i}`)))));
      assert.ok(handed.every((uid) => uid !== undefined && ![clash, fine, clash2].includes(uid)));
    } finally {
      await server.start();
      await close();
    }
  });

  it('concurrent takes never share a key; an empty pool, an unknown client or no matching template answers undefined', async () => {
    const { pool, close } = await openPool([{ id: 'lib-3', pool: [{ ...TAPES, size: 6 }, SMALL] }]);
    try {
      await syncOnline(pool);
      await server.stop();
      const taken = await Promise.all(Array.from({ length: 10 }, (_, i) => pool.takeOffline(request('lib-3', named(`c-${i}`)))));
      const uids = taken.filter((uid): uid is string => uid !== undefined);
      assert.equal(uids.length, 6, 'six keys for ten takes');
      assert.equal(new Set(uids).size, 6, 'never the same key twice');
      assert.equal(await pool.takeOffline(request('nobody', named('n'))), undefined, 'an unknown client');
      assert.equal(await pool.takeOffline(request('lib-3', named('n'), { length: 192 })), undefined, 'no template of that length');
      assert.equal(await pool.takeOffline(request('lib-3', named('n'), { length: 128, usageMask: CryptographicUsageMask.Encrypt | CryptographicUsageMask.Decrypt })), undefined, 'usage mask Encrypt|Decrypt is not the 128-bit template\'s');
      assert.ok(await pool.takeOffline(request('lib-3', named('n'), { length: 128, usageMask: CryptographicUsageMask.Encrypt })), 'the 128-bit template, matched in full');
      assert.ok(await pool.takeOffline(request('lib-3', named('n'), { length: undefined, algorithm: undefined, usageMask: CryptographicUsageMask.Encrypt })), 'unnamed fields take the template\'s');
      assert.equal(await pool.takeOffline(request('lib-3', named('n'), { length: 128, usageMask: CryptographicUsageMask.Encrypt })), undefined, 'that pool is empty now');
    } finally {
      await server.start();
      await close();
    }
  });

  it('matches templates field by field; an Object Group asked of a template without one is added', () => {
    const grouped: PoolTemplate = { algorithm: AES, length: 256, objectGroup: 'g', size: 1 };
    const plain: PoolTemplate = { algorithm: AES, length: 256, size: 1 };
    const ask = (fields: Partial<OfflineCreateRequest>) => matchingTemplates([plain, grouped], { algorithm: undefined, length: undefined, usageMask: undefined, objectGroup: undefined, ...fields });
    assert.deepEqual(ask({ objectGroup: 'g' }), [grouped, plain], 'the exact group first');
    assert.deepEqual(ask({ objectGroup: 'other' }), [plain]);
    assert.deepEqual(ask({}), [plain, grouped]);
    assert.deepEqual(ask({ usageMask: CryptographicUsageMask.Encrypt | CryptographicUsageMask.Decrypt }), [plain, grouped], 'the default mask');
    assert.deepEqual(ask({ algorithm: CryptographicAlgorithm.HMAC_SHA256 }), []);
    assert.deepEqual(matchingTemplates([{ ...plain, size: 0 }], { algorithm: undefined, length: undefined, usageMask: undefined, objectGroup: undefined }), [], 'a template of size 0 pools nothing');
  });

  it('finds again a key created upstream for the pool whose record was lost, and never adopts a key in use', async () => {
    const template: PoolTemplate = { algorithm: AES, length: 256, size: 2 };
    const opened = await openPool([{ id: 'lib-4', pool: [template] }]);
    const { pool, data } = opened;
    let current = opened;
    try {
      const marker = { name: POOL_MARKER, value: textString(Tag.AttributeValue, `${pool.agentId} lib-4 ${templateId(template)}`) };
      const poolKey = (extra: Attribute[] = []) => [
        { name: 'Cryptographic Algorithm', value: enumeration(Tag.AttributeValue, AES) },
        { name: 'Cryptographic Length', value: integer(Tag.AttributeValue, 256) },
        { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, CryptographicUsageMask.Encrypt | CryptographicUsageMask.Decrypt) },
        marker,
        ...extra,
      ];
      // As a fill killed after its Create: the key is upstream, marked, with no pool record here.
      const [lost, named, active] = await server.admin(async (admin) => {
        const uids = [await admin.create(ObjectType.SymmetricKey, poolKey()), await admin.create(ObjectType.SymmetricKey, poolKey([{ name: 'Name', value: nameValue('in-use') }])), await admin.create(ObjectType.SymmetricKey, poolKey())];
        await admin.activate(uids[2]!);
        return uids;
      });
      const report = await pool.sync();
      assert.equal(report.error, undefined);
      assert.deepEqual([report.adopted, report.created], [1, 1], 'the lost key adopted, one more created');
      // Nameless and not activated: to the key server these look like unused pool keys.
      const bare = () => request('lib-4', [], { activate: false });
      const handed = [await pool.takeOffline(bare()), await pool.takeOffline(bare())];
      assert.ok(handed.includes(lost));
      assert.ok(!handed.includes(named) && !handed.includes(active), 'a key with a Name or Active is in use: not adopted');
      // The taken keys carry the marker upstream until the drain: a fill must not adopt them ...
      assert.deepEqual(await pool.fill(), { drained: 0, conflicted: 0, created: 2, adopted: 0, dropped: 0 });
      // ... nor after a restart.
      await opened.close();
      const reopened = (current = await openPool([{ id: 'lib-4', pool: [template] }], undefined, data));
      handed.push(await reopened.pool.takeOffline(bare()), await reopened.pool.takeOffline(bare()));
      assert.deepEqual(await reopened.pool.fill(), { drained: 0, conflicted: 0, created: 2, adopted: 0, dropped: 0 });
      assert.equal(new Set(handed).size, 4);
      assert.ok(handed.every((uid) => uid !== undefined));
      const drained = await reopened.pool.sync();
      assert.equal(drained.drained, 4);
      await server.admin(async (admin) => {
        for (const uid of handed) assert.equal((await attributesUpstream(admin, uid)).find((a) => a.name === POOL_MARKER), undefined, `${uid} unmarked by the drain`);
      });
      const next = [await reopened.pool.takeOffline(bare()), await reopened.pool.takeOffline(bare())];
      assert.ok(next.every((uid) => uid !== undefined && !handed.includes(uid)));
    } finally {
      await current.close();
    }
  });

  it('after a restart, drops a pooled key that was put to use on the key server meanwhile, and refills', async () => {
    const clients = [{ id: 'lib-5', pool: [{ ...TAPES, size: 2 }] }];
    const opened = await openPool(clients);
    let current = opened;
    try {
      await syncOnline(opened.pool);
      const pooled = (await opened.agent.listKeys()).map((k) => k.uniqueIdentifier);
      assert.equal(pooled.length, 2);
      await opened.close();
      // An operator names one of them at the key server (or a restored backup's pool lists a key handed out since).
      await server.admin((admin) => admin.addAttribute(pooled[0]!, { name: 'Name', value: nameValue('used-elsewhere') }));
      current = await openPool(clients, undefined, opened.data);
      const report = await current.pool.sync();
      assert.deepEqual([report.error, report.dropped, report.created], [undefined, 1, 1]);
      const handed = [await current.pool.takeOffline(request('lib-5', [])), await current.pool.takeOffline(request('lib-5', []))];
      assert.ok(handed.includes(pooled[1]) && !handed.includes(pooled[0]), 'the used key is not handed out');
      assert.equal((await current.pool.sync()).dropped, 0, 'checked once per open');
    } finally {
      await current.close();
    }
  });
});
