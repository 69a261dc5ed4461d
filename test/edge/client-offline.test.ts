/**
 * A local KMIP client while the key server is unreachable (issue #16; the development server is
 * stopped mid-run): reads answered from the cache — Get, Get Attributes, Get Attribute List,
 * Locate over the keys the client may see, Check, Obtain Lease, Get Usage Allocation within the
 * allocation held; a Create answered from the key pool (an in-memory one here: the durable pool
 * is src/edge/key-pool.ts); every other write refused with Operation Failed, saying the key
 * server is unreachable.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EdgeKmipService } from '../../src/edge/edge-kmip-service.ts';
import { nameValue, type Attribute } from '../../src/kmip/attributes.ts';
import { buildRequestMessage, parseResponseMessage, type ResponseBatchItem } from '../../src/kmip/message.ts';
import { keyBlockOf, keyMaterialOf, payload, readAttributeList, readAttributes, readDiscoverVersions, readGet, readLocate, readQuery, readUniqueIdentifier } from '../../src/kmip/payloads.ts';
import {
  CryptographicAlgorithm, CryptographicUsageMask, KeyFormatType, ObjectType, Operation, QueryFunction, ResultReason, ResultStatus, RevocationReasonCode, SecretDataType, State, Tag, UsageLimitsUnit,
} from '../../src/kmip/tables.generated.ts';
import { optionalValue } from '../../src/kmip/tree.ts';
import { silentLogger } from '../../src/log.ts';
import { byteString, dateTime, enumeration, integer, longInteger, structure, textString } from '../../src/ttlv/build.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import { ItemType } from '../../src/ttlv/item.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { localClient, MemoryPool, startEdge } from '../helpers/edge.ts';

let edge: Awaited<ReturnType<typeof startEdge>>;
let pool: MemoryPool;
let tapeA: string;
let tapeB: string;
let other: string;
let limited: string;
let uncached: string;
let secret: string;
const SECRET = new Uint8Array(Buffer.from('the library\'s passphrase'));
const bytes: Record<string, string> = {};
const barcode = (code: string): Attribute => ({ name: 'x-barcode', value: textString(Tag.AttributeValue, code) });
const group = (name: string): Attribute => ({ name: 'Object Group', value: textString(Tag.AttributeValue, name) });
const byName = (name: string): Attribute => ({ name: 'Name', value: nameValue(name) });
const lib = localClient('lib-o1', [{ objectGroup: 'tapes' }]);
const neighbour = localClient('lib-o2', [{ objectGroup: 'nothing' }]);
const AES = CryptographicAlgorithm.AES;
const MASK = CryptographicUsageMask.Encrypt | CryptographicUsageMask.Decrypt;

async function one(principal: typeof lib, operation: number, items: ReturnType<typeof payload.get>, service = edge.edge): Promise<ResponseBatchItem> {
  const answer = await service.handle(principal, encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation, payload: items }])), `offline-${Math.random()}`);
  return parseResponseMessage(decodeTtlv(answer.response)).batchItems[0]!;
}

async function ok(principal: typeof lib, operation: number, items: ReturnType<typeof payload.get>): Promise<ResponseBatchItem> {
  const item = await one(principal, operation, items);
  assert.equal(item.resultStatus, ResultStatus.Success, item.resultMessage);
  return item;
}

const material = (item: ResponseBatchItem) => toHex(keyMaterialOf(keyBlockOf(readGet(item.payload!).object)));
const located = async (principal: typeof lib, attributes: Attribute[]) => readLocate((await ok(principal, Operation.Locate, payload.locate({ attributes }))).payload!).uniqueIdentifiers;

async function activeKey(name: string, extra: Attribute[]): Promise<string> {
  const uid = await edge.admin.create(ObjectType.SymmetricKey, aesKey(name, undefined, extra));
  await edge.admin.activate(uid);
  bytes[uid] = toHex(keyMaterialOf(keyBlockOf((await edge.admin.get(uid)).object)));
  return uid;
}

before(async () => {
  edge = await startEdge({ offlineCreator: (agent) => (pool = new MemoryPool(agent)) });
  tapeA = await activeKey('tape-A', [barcode('OF0001'), group('tapes')]);
  tapeB = await activeKey('tape-B', [barcode('OF0002'), group('tapes')]);
  other = await activeKey('other-key', [barcode('OF0003'), group('other')]);
  const limits = structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, 1000n), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Object)]);
  limited = await activeKey('tape-limited', [group('tapes'), { name: 'Usage Limits', value: limits }]);
  uncached = await activeKey('tape-uncached', [group('tapes')]);
  // While online: the client's keys are fetched (the cache now holds them), and a first grant brings an allocation of 50 units.
  const secretObject = structure(Tag.SecretData, [enumeration(Tag.SecretDataType, SecretDataType.Seed), structure(Tag.KeyBlock, [
    enumeration(Tag.KeyFormatType, KeyFormatType.Opaque), structure(Tag.KeyValue, [byteString(Tag.KeyMaterial, SECRET)]),
  ])]);
  secret = await edge.admin.register(ObjectType.SecretData, [group('tapes'), { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, CryptographicUsageMask.Verify) }], secretObject);
  await edge.admin.activate(secret);
  for (const uid of [tapeA, tapeB, limited, secret]) await ok(lib, Operation.Get, payload.get(uid));
  await edge.agent.cache.get(other); // cached for someone else
  await ok(lib, Operation.GetUsageAllocation, payload.getUsageAllocation(limited, 5n));
  for (let i = 0; i < 3; i++) await pool.add(await edge.admin.create(ObjectType.SymmetricKey, aesKey(`pool-${i}`)), AES, 256, MASK);
  await edge.dev.stop();
});

after(() => edge.stop());

describe('edge KMIP service, local client offline: reads from the cache', () => {
  it('Get, Get Attributes (all and by name), Get Attribute List, Check, Obtain Lease', async () => {
    assert.equal(material(await ok(lib, Operation.Get, payload.get(tapeA))), bytes[tapeA]);
    const got = readGet((await ok(lib, Operation.Get, payload.get(secret))).payload!);
    assert.equal(got.objectType, ObjectType.SecretData);
    assert.equal(optionalValue(got.object, Tag.SecretDataType, ItemType.Enumeration), SecretDataType.Seed);
    assert.equal(toHex(keyMaterialOf(keyBlockOf(got.object))), toHex(SECRET));
    const all = readAttributes((await ok(lib, Operation.GetAttributes, payload.getAttributes(tapeA))).payload!).attributes;
    for (const name of ['Unique Identifier', 'Name', 'Object Type', 'Cryptographic Algorithm', 'Cryptographic Length', 'State', 'Object Group', 'x-barcode', 'Last Change Date']) {
      assert.ok(all.some((a) => a.name === name), `${name} in ${all.map((a) => a.name).join(', ')}`);
    }
    const some = readAttributes((await ok(lib, Operation.GetAttributes, payload.getAttributes(tapeA, ['x-barcode', 'Digest', 'State']))).payload!).attributes;
    assert.deepEqual(some.map((a) => [a.name, a.value?.value]), [['x-barcode', 'OF0001'], ['State', State.Active]], 'what the cache does not keep (Digest) is absent');
    const list = readAttributeList((await ok(lib, Operation.GetAttributeList, payload.getAttributeList(tapeA))).payload!).names;
    assert.ok(list.includes('x-barcode') && list.includes('Name'), list.join(', '));
    await ok(lib, Operation.Check, payload.check(tapeA, { cryptographicUsageMask: CryptographicUsageMask.Encrypt }));
    const lease = await ok(lib, Operation.ObtainLease, payload.obtainLease(tapeA));
    const seconds = optionalValue(lease.payload!, Tag.LeaseTime, ItemType.Interval)!;
    assert.ok(seconds > 0 && seconds <= 600, `the lease the agent holds: ${seconds} s`);
  });

  it('Query and Discover Versions need no key server', async () => {
    assert.ok(readQuery((await ok(lib, Operation.Query, payload.query([QueryFunction.QueryOperations]))).payload!).operations.includes(Operation.Locate));
    assert.deepEqual(readDiscoverVersions((await ok(lib, Operation.DiscoverVersions, payload.discoverVersions([{ major: 1, minor: 2 }]))).payload!), [{ major: 1, minor: 2 }]);
  });

  it('Get Usage Allocation within the allocation held; beyond it, refused', async () => {
    await ok(lib, Operation.GetUsageAllocation, payload.getUsageAllocation(limited, 30n));
    const refused = await one(lib, Operation.GetUsageAllocation, payload.getUsageAllocation(limited, 500n));
    assert.equal(refused.resultReason, ResultReason.PermissionDenied);
    assert.match(refused.resultMessage!, /LEDGER_INSUFFICIENT/);
  });

  it('Locate over the cached keys the client may see: by Name, x-barcode, Object Group, Object Type, algorithm and length; paging', async () => {
    assert.deepEqual(await located(lib, [byName('tape-A')]), [tapeA]);
    assert.deepEqual(await located(lib, [barcode('OF0002')]), [tapeB]);
    assert.deepEqual(await located(lib, [barcode('OF0003')]), [], 'cached, but another client\'s key');
    assert.deepEqual(new Set(await located(lib, [group('tapes')])), new Set([tapeA, tapeB, limited, secret]), 'tape-uncached is not in the cache');
    const aes = [
      { name: 'Object Type', value: enumeration(Tag.AttributeValue, ObjectType.SymmetricKey) },
      { name: 'Cryptographic Algorithm', value: enumeration(Tag.AttributeValue, AES) },
      { name: 'Cryptographic Length', value: integer(Tag.AttributeValue, 256) },
      { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, CryptographicUsageMask.Encrypt) },
    ];
    assert.deepEqual(new Set(await located(lib, aes)), new Set([tapeA, tapeB, limited]));
    const page = await one(lib, Operation.Locate, payload.locate({ attributes: [group('tapes')], maximumItems: 1, offsetItems: 1 }));
    assert.equal(readLocate(page.payload!).uniqueIdentifiers.length, 1);
    assert.deepEqual(await located(neighbour, [group('tapes')]), []);
  });

  it('what the cache cannot answer says so: a key not cached, a Locate by an attribute it does not keep', async () => {
    const missing = await one(lib, Operation.Get, payload.get(uncached));
    assert.equal(missing.resultStatus, ResultStatus.OperationFailed);
    assert.match(missing.resultMessage!, /the key server is unreachable and .* is not cached here/);
    const byDate = await one(lib, Operation.Locate, payload.locate({ attributes: [{ name: 'Initial Date', value: dateTime(Tag.AttributeValue, 1n) }] }));
    assert.equal(byDate.resultStatus, ResultStatus.OperationFailed);
    assert.match(byDate.resultMessage!, /unreachable.*Initial Date/);
    assert.equal((await one(lib, Operation.Get, payload.get(other))).resultReason, ResultReason.ItemNotFound, 'a key outside the allow-list is still not found');
  });
});

describe('edge KMIP service, local client offline: writes', () => {
  it('Activate, Add / Modify / Delete Attribute, Revoke, Destroy, Register: Operation Failed, the key server is unreachable — the cache unchanged', async () => {
    const before = structuredClone((await edge.agent.cache.cached(tapeA))!.metadata);
    const register = payload.register(ObjectType.SymmetricKey, aesKey('offline-registered'), structure(Tag.SymmetricKey, [structure(Tag.KeyBlock, [
      enumeration(Tag.KeyFormatType, KeyFormatType.Raw), structure(Tag.KeyValue, [byteString(Tag.KeyMaterial, new Uint8Array(32))]),
    ])]));
    const writes: [number, string, ReturnType<typeof payload.get>][] = [
      [Operation.Activate, 'Activate', payload.activate(tapeA)],
      [Operation.AddAttribute, 'AddAttribute', payload.addAttribute(tapeA, barcode('X'))],
      [Operation.ModifyAttribute, 'ModifyAttribute', payload.modifyAttribute(tapeA, barcode('Y'))],
      [Operation.DeleteAttribute, 'DeleteAttribute', payload.deleteAttribute(tapeA, 'x-barcode')],
      [Operation.Revoke, 'Revoke', payload.revoke(tapeA, RevocationReasonCode.KeyCompromise)],
      [Operation.Destroy, 'Destroy', payload.destroy(tapeA)],
      [Operation.Register, 'Register', register],
    ];
    for (const [operation, name, items] of writes) {
      const item = await one(lib, operation, items);
      assert.equal(item.resultStatus, ResultStatus.OperationFailed, name);
      assert.equal(item.resultMessage, `the key server is unreachable: ${name} is not possible offline`);
    }
    assert.deepEqual((await edge.agent.cache.cached(tapeA))!.metadata, before);
  });

  it('Create: a pooled key, with the Name and x- attributes asked; visible to its creator only', async () => {
    const item = await ok(lib, Operation.Create, payload.create(ObjectType.SymmetricKey, aesKey('offline-new', MASK, [barcode('OF0100')])));
    const uid = readUniqueIdentifier(item.payload!);
    const taken = pool.taken.at(-1)!;
    assert.deepEqual([taken.clientId, taken.algorithm, taken.length, taken.usageMask, taken.activate], ['lib-o1', AES, 256, MASK, false]);
    assert.deepEqual(taken.attributes.map((a) => a.name), ['Name', 'x-barcode'], 'the template\'s own fields are the pooled key\'s already');
    assert.deepEqual(await located(lib, [barcode('OF0100')]), [uid]);
    assert.deepEqual(await located(lib, [byName('offline-new')]), [uid]);
    assert.equal((await one(neighbour, Operation.Get, payload.get(uid))).resultReason, ResultReason.ItemNotFound);
  });

  it('Create + Activate + Get in one batch: the pool activates the key (no Activate sent), the Get gets it', async () => {
    const response = parseResponseMessage(decodeTtlv((await edge.edge.handle(lib, encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [
      { operation: Operation.Create, payload: payload.create(ObjectType.SymmetricKey, aesKey('offline-activated', MASK)) },
      { operation: Operation.Activate, payload: [] },
      { operation: Operation.Get, payload: [] },
    ], { batchOrderOption: true })), 'offline-batch')).response));
    assert.deepEqual(response.batchItems.map((i) => i.resultStatus), [ResultStatus.Success, ResultStatus.Success, ResultStatus.Success], response.batchItems.map((i) => i.resultMessage).join(' | '));
    assert.equal(pool.taken.at(-1)!.activate, true);
    const uid = readUniqueIdentifier(response.batchItems[0]!.payload!);
    assert.equal(readUniqueIdentifier(response.batchItems[2]!.payload!), uid);
    assert.equal((await edge.agent.cache.cached(uid))!.metadata.state, State.Active);
  });

  it('no pooled key matches, or no key pool: Operation Failed, saying the key server is unreachable and no pooled key matches', async () => {
    const hmac = [
      { name: 'Cryptographic Algorithm', value: enumeration(Tag.AttributeValue, CryptographicAlgorithm.HMAC_SHA256) },
      { name: 'Cryptographic Length', value: integer(Tag.AttributeValue, 256) },
      { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, CryptographicUsageMask.MACGenerate) },
    ];
    const left = pool.size;
    const unmatched = await one(lib, Operation.Create, payload.create(ObjectType.SymmetricKey, hmac));
    assert.equal(unmatched.resultStatus, ResultStatus.OperationFailed);
    assert.equal(unmatched.resultMessage, 'the key server is unreachable and no pooled key matches this Create');
    assert.equal(pool.size, left, 'nothing taken');
    const withoutPool = new EdgeKmipService(edge.agent, edge.agent.store, silentLogger);
    const refused = await one(lib, Operation.Create, payload.create(ObjectType.SymmetricKey, aesKey('no-pool', MASK)), withoutPool);
    assert.equal(refused.resultMessage, 'the key server is unreachable and no pooled key matches this Create');
    assert.equal(pool.size, left);
  });
});
