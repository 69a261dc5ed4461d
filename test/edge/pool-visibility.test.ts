/**
 * A pooled key not yet handed out is nobody's key (issue #16, offline Create): the edge KMIP
 * service with the real key pool (src/edge/key-pool.ts) over the development server. The pool
 * fills with keys of the template's Object Group "tapes"; a client whose allow-list covers that
 * group, and one that names a pooled key by its Unique Identifier, must still find none of them
 * — not by Locate, Get, Get Attributes, Get Attribute List, Check, nor may they Activate, add an
 * attribute to or Destroy one — online (the key server's Locate lists them) and offline (the
 * cache holds them, sealed). Once a Create takes one, its creator sees it; the keys still pooled
 * stay hidden. Item Not Found, never Permission Denied: the client must not learn they exist.
 * The device door (the same service) hides them too from a device allowed the group.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { KeyPool } from '../../src/edge/key-pool.ts';
import type { Principal } from '../../src/edge/principal.ts';
import type { Attribute } from '../../src/kmip/attributes.ts';
import type { ResponseBatchItem } from '../../src/kmip/message.ts';
import { payload, readLocate, readUniqueIdentifier } from '../../src/kmip/payloads.ts';
import { CryptographicAlgorithm, CryptographicUsageMask, ObjectType, Operation, ResultReason, ResultStatus, State, Tag } from '../../src/kmip/tables.generated.ts';
import { textString } from '../../src/ttlv/build.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { localClient, startEdge } from '../helpers/edge.ts';

const AES = CryptographicAlgorithm.AES;
const MASK = CryptographicUsageMask.Encrypt | CryptographicUsageMask.Decrypt;
const group = (name: string): Attribute => ({ name: 'Object Group', value: textString(Tag.AttributeValue, name) });

let edge: Awaited<ReturnType<typeof startEdge>>;
let pool: KeyPool;
let pooled: string[];
let tape: string;
/** Its pool's template has the group "tapes"; its allow-list covers the group. */
const lib = localClient('lib-p1', [{ objectGroup: 'tapes' }]);
/** Another client whose allow-list covers the group too. */
const neighbour = localClient('lib-p2', [{ objectGroup: 'tapes' }]);
/** A client whose allow-list names the pooled keys by Unique Identifier (set once they exist). */
let byIdentifier: Principal;

async function one(principal: Principal, operation: number, items: ReturnType<typeof payload.get>): Promise<ResponseBatchItem> {
  return (await edge.ask(principal, [{ operation, payload: items }])).batchItems[0]!;
}

async function located(principal: Principal, attributes: Attribute[]): Promise<string[]> {
  const item = await one(principal, Operation.Locate, payload.locate({ attributes }));
  assert.equal(item.resultStatus, ResultStatus.Success, item.resultMessage);
  return readLocate(item.payload!).uniqueIdentifiers;
}

/** Every read and write of `uid` by `principal`: Item Not Found, as for a key that does not exist. */
async function invisible(principal: Principal, uid: string, where: string): Promise<void> {
  const asks: [string, number, ReturnType<typeof payload.get>][] = [
    ['Get', Operation.Get, payload.get(uid)],
    ['GetAttributes', Operation.GetAttributes, payload.getAttributes(uid, ['State', 'Object Group'])],
    ['GetAttributeList', Operation.GetAttributeList, payload.getAttributeList(uid)],
    ['Check', Operation.Check, payload.check(uid, { cryptographicUsageMask: CryptographicUsageMask.Encrypt })],
    ['Activate', Operation.Activate, payload.activate(uid)],
    ['AddAttribute', Operation.AddAttribute, payload.addAttribute(uid, { name: 'x-barcode', value: textString(Tag.AttributeValue, 'STOLEN') })],
    ['Destroy', Operation.Destroy, payload.destroy(uid)],
  ];
  for (const [name, operation, items] of asks) {
    const item = await one(principal, operation, items);
    assert.equal(item.resultReason, ResultReason.ItemNotFound, `${where}: ${principal.id} ${name} of pooled ${uid}: ${item.resultMessage}`);
  }
}

before(async () => {
  edge = await startEdge({
    offlineCreator: async (agent) => (pool = await KeyPool.open({ agent, clients: () => [{ id: lib.id, pool: [{ algorithm: AES, length: 256, objectGroup: 'tapes', size: 2 }] }] })),
  });
  assert.equal((await pool.sync()).created, 2);
  pooled = (await edge.agent.listKeys()).filter((k) => k.state === State.PreActive).map((k) => k.uniqueIdentifier);
  assert.equal(pooled.length, 2, 'two pooled keys, Pre-Active, in the cache');
  byIdentifier = localClient('lib-p3', pooled.map((uid) => ({ uniqueIdentifier: uid })));
  // A key of the group that is not pooled: the allow-list does let the clients see it.
  tape = await edge.admin.create(ObjectType.SymmetricKey, aesKey('tape-visible', MASK, [group('tapes')]));
  await edge.admin.activate(tape);
  await edge.agent.cache.get(tape); // cached, as a client's Get would: offline Locate answers from the cache
});

after(() => edge.stop());

describe('a pooled key not yet handed out is invisible to every client', () => {
  it('online: Locate by the group lists only the key that is not pooled; every read and write of a pooled key is Item Not Found', async () => {
    const upstream = await edge.admin.locateAll({ attributes: [group('tapes')] });
    assert.ok(pooled.every((uid) => upstream.includes(uid)), 'the key server lists the pooled keys under the group');
    for (const principal of [lib, neighbour]) {
      assert.deepEqual(await located(principal, [group('tapes')]), [tape], `${principal.id}: Locate by group`);
      assert.deepEqual((await located(principal, [])).filter((uid) => pooled.includes(uid)), [], `${principal.id}: Locate of everything`);
    }
    assert.deepEqual(await located(byIdentifier, []), [], 'named by identifier: still not found');
    for (const principal of [lib, neighbour, byIdentifier]) for (const uid of pooled) await invisible(principal, uid, 'online');
    await edge.admin.getAttributes(pooled[0]!).then(({ attributes }) => {
      assert.equal(attributes.find((a) => a.name === 'State')?.value?.value, State.PreActive, 'not activated by a client');
      assert.ok(!attributes.some((a) => a.name === 'x-barcode'), 'no attribute added by a client');
    });
    assert.equal((await pool.status()).templates[0]!.ready, 2, 'still pooled, not destroyed');
  });

  it('the device door too: a device allowed the group gets the key that is not pooled, and Item Not Found for a pooled one (cached or not)', async () => {
    const sensor: Principal = { kind: 'device', id: 'sensor-p', keys: [{ objectGroup: 'tapes' }], operations: ['Get', 'GetAttributes'] };
    assert.equal((await one(sensor, Operation.Get, payload.get(tape))).resultStatus, ResultStatus.Success, 'the group key');
    for (const uid of pooled) {
      for (const [name, operation, items] of [['Get', Operation.Get, payload.get(uid)], ['GetAttributes', Operation.GetAttributes, payload.getAttributes(uid, ['State'])]] as const) {
        const item = await one(sensor, operation, items);
        assert.equal(item.resultReason, ResultReason.ItemNotFound, `device ${name} of pooled ${uid}: ${item.resultMessage}`);
      }
    }
  });

  it('offline: the cache holds the pooled keys, yet Locate and every read miss them; a Create takes one, visible to its creator only, the other still hidden', async () => {
    await edge.dev.stop();
    for (const principal of [lib, neighbour]) assert.deepEqual(await located(principal, [group('tapes')]), [tape], `${principal.id}: offline Locate by group`);
    assert.deepEqual(await located(byIdentifier, []), []);
    for (const principal of [lib, byIdentifier]) {
      for (const uid of pooled) {
        const item = await one(principal, Operation.Get, payload.get(uid));
        assert.equal(item.resultReason, ResultReason.ItemNotFound, `${principal.id} offline Get of pooled ${uid}: ${item.resultMessage}`);
        const attributes = await one(principal, Operation.GetAttributes, payload.getAttributes(uid, ['State']));
        assert.equal(attributes.resultReason, ResultReason.ItemNotFound, `${principal.id} offline Get Attributes of pooled ${uid}`);
      }
    }

    const created = await one(lib, Operation.Create, payload.create(ObjectType.SymmetricKey, aesKey('tape-offline', MASK, [group('tapes')])));
    assert.equal(created.resultStatus, ResultStatus.Success, created.resultMessage);
    const uid = readUniqueIdentifier(created.payload!);
    assert.ok(pooled.includes(uid), 'a pooled key handed out');
    const still = pooled.find((p) => p !== uid)!;
    assert.equal((await one(lib, Operation.Get, payload.get(uid))).resultStatus, ResultStatus.Success, 'its creator gets it');
    assert.deepEqual(new Set(await located(lib, [group('tapes')])), new Set([tape, uid]));
    assert.equal((await one(lib, Operation.Get, payload.get(still))).resultReason, ResultReason.ItemNotFound, 'the key still pooled stays hidden from the creator');
    assert.equal((await one(byIdentifier, Operation.Get, payload.get(still))).resultReason, ResultReason.ItemNotFound, 'and from a client naming it');
  });
});
