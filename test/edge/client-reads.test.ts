/**
 * The edge KMIP service for a local KMIP client (issue #16), the key server reachable: Get, Get
 * Attributes, Get Attribute List, Locate, Check, Obtain Lease, Get Usage Allocation, Query and
 * Discover Versions with the client's allow-lists (a key outside them is Item Not Found, never
 * Permission Denied), KMIP 1.0, 1.2 and 1.4, and one audit event per request.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { nameValue, type Attribute } from '../../src/kmip/attributes.ts';
import { KMIP_VERSIONS, type ProtocolVersion, type ResponseBatchItem } from '../../src/kmip/message.ts';
import { keyBlockOf, keyMaterialOf, payload, readAttributeList, readAttributes, readDiscoverVersions, readGet, readLocate, readQuery } from '../../src/kmip/payloads.ts';
import {
  CryptographicAlgorithm, CryptographicUsageMask, KeyFormatType, ObjectType, Operation, QueryFunction, ResultReason, ResultStatus, RevocationReasonCode, State, Tag, UsageLimitsUnit,
} from '../../src/kmip/tables.generated.ts';
import { findChild, optionalValue } from '../../src/kmip/tree.ts';
import { EndpointCounts } from '../../src/endpoint/endpoint-counts.ts';
import { buildRequestMessage, parseResponseMessage } from '../../src/kmip/message.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { enumeration, integer, longInteger, structure, textString } from '../../src/ttlv/build.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import { ItemType } from '../../src/ttlv/item.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { localClient, startEdge } from '../helpers/edge.ts';

let edge: Awaited<ReturnType<typeof startEdge>>;
let tapeA: string;
let tapeB: string;
let tapeC: string;
let other: string;
let limited: string;
let preActive: string;
const V12 = { major: 1, minor: 2 };
const barcode = (code: string): Attribute => ({ name: 'x-barcode', value: textString(Tag.AttributeValue, code) });
const group = (name: string): Attribute => ({ name: 'Object Group', value: textString(Tag.AttributeValue, name) });
/** lib-1 may see the group "tapes" and do everything; lib-2 only the key "other", with Get and Query. */
const lib1 = localClient('lib-1', [{ objectGroup: 'tapes' }]);
const lib2 = () => localClient('lib-2', [{ uniqueIdentifier: other }], ['Get', 'Query']);

async function activeKey(name: string, extra: Attribute[]): Promise<string> {
  const uid = await edge.admin.create(ObjectType.SymmetricKey, aesKey(name, undefined, extra));
  await edge.admin.activate(uid);
  return uid;
}

async function one(principal = lib1, operation: number, items: ReturnType<typeof payload.get>, version: ProtocolVersion = V12): Promise<ResponseBatchItem> {
  const response = await edge.ask(principal, [{ operation, payload: items }], {}, version);
  assert.deepEqual(response.protocolVersion, version, 'answered in the version of the request');
  return response.batchItems[0]!;
}

const upstreamBytes = async (uid: string) => toHex(keyMaterialOf(keyBlockOf((await edge.admin.get(uid)).object)));
const locate = async (attributes: Attribute[], principal = lib1, options: { maximumItems?: number; offsetItems?: number } = {}, version: ProtocolVersion = V12) => {
  const item = await one(principal, Operation.Locate, payload.locate({ attributes, ...options }), version);
  assert.equal(item.resultStatus, ResultStatus.Success, item.resultMessage);
  return readLocate(item.payload!);
};

before(async () => {
  edge = await startEdge();
  tapeA = await activeKey('tape-A', [barcode('BC0001'), group('tapes')]);
  tapeB = await activeKey('tape-B', [barcode('BC0002'), group('tapes')]);
  tapeC = await activeKey('tape-C', [group('tapes-elsewhere')]);
  other = await activeKey('other-key', [group('other')]);
  const limits = structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, 1000n), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Object)]);
  limited = await activeKey('tape-limited', [group('tapes'), { name: 'Usage Limits', value: limits }]);
  preActive = await edge.admin.create(ObjectType.SymmetricKey, aesKey('tape-pre-active', undefined, [group('tapes')]));
});

after(() => edge.stop());

describe('edge KMIP service, local client online: reads', () => {
  it('Get returns the key server\'s bytes; again from memory at once (no promise: the hot path)', async () => {
    const got = await one(lib1, Operation.Get, payload.get(tapeA));
    assert.equal(got.resultStatus, ResultStatus.Success, got.resultMessage);
    const read = readGet(got.payload!);
    assert.equal(read.objectType, ObjectType.SymmetricKey);
    assert.equal(optionalValue(keyBlockOf(read.object), Tag.KeyFormatType, ItemType.Enumeration), KeyFormatType.Raw);
    assert.equal(toHex(keyMaterialOf(keyBlockOf(read.object))), await upstreamBytes(tapeA));
    const request = encodeTtlv(buildRequestMessage(V12, [{ operation: Operation.Get, payload: payload.get(tapeA) }]));
    const answer = edge.edge.answer(lib1, request, 'hot-1');
    assert.ok(!(answer instanceof Promise), 'a Get of a cached key is answered synchronously');
    const [hot] = parseResponseMessage(decodeTtlv(answer.response)).batchItems;
    assert.equal(toHex(keyMaterialOf(keyBlockOf(readGet(hot!.payload!).object))), await upstreamBytes(tapeA), 'the key server\'s bytes, from the cache\'s slab');
    // Said to be one Get answered Success, and the door counts it so: what it would read from the response.
    assert.equal(answer.getSuccess, true);
    const [said, counted] = [new EndpointCounts(), new EndpointCounts()];
    said.getSuccess();
    counted.response(answer.response);
    assert.deepEqual(said.requests(), counted.requests());
    assert.deepEqual(counted.requests(), [{ operation: 'Get', result: 'Success', count: 1 }]);
  });

  it('Get Attributes: by names the cache keeps (Name, Object Group, State, x-barcode) and all of them (the key server\'s); Get Attribute List', async () => {
    const some = await one(lib1, Operation.GetAttributes, payload.getAttributes(tapeA, ['Name', 'x-barcode', 'State', 'Object Group']));
    assert.equal(some.resultStatus, ResultStatus.Success, some.resultMessage);
    const attributes = readAttributes(some.payload!).attributes;
    assert.deepEqual(attributes.map((a) => a.name), ['Name', 'x-barcode', 'State', 'Object Group'], 'in the order asked');
    assert.equal(attributes[1]!.value!.value, 'BC0001');
    assert.equal(attributes[2]!.value!.value, State.Active);
    assert.equal(attributes[3]!.value!.value, 'tapes');
    const all = readAttributes((await one(lib1, Operation.GetAttributes, payload.getAttributes(tapeA))).payload!).attributes.map((a) => a.name);
    for (const name of ['Unique Identifier', 'Object Type', 'Cryptographic Algorithm', 'Name', 'Digest', 'Initial Date', 'x-barcode']) assert.ok(all.includes(name), `${name} in ${all.join(', ')}`);
    const twice = await one(lib1, Operation.GetAttributes, payload.getAttributes(tapeA, ['Name', 'Name']));
    assert.equal(twice.resultReason, ResultReason.InvalidMessage);
    const list = readAttributeList((await one(lib1, Operation.GetAttributeList, payload.getAttributeList(tapeA))).payload!).names;
    for (const name of ['Name', 'State', 'x-barcode', 'Object Group']) assert.ok(list.includes(name), `${name} in ${list.join(', ')}`);
  });

  it('Locate by Name, x-barcode, Object Group, Object Type, algorithm and length; keys outside the allow-list are not located', async () => {
    assert.deepEqual((await locate([{ name: 'Name', value: nameValue('tape-A') }])).uniqueIdentifiers, [tapeA]);
    assert.deepEqual((await locate([barcode('BC0002')])).uniqueIdentifiers, [tapeB]);
    assert.deepEqual(new Set((await locate([group('tapes')])).uniqueIdentifiers), new Set([tapeA, tapeB, limited, preActive]));
    const aes256 = [
      { name: 'Object Type', value: enumeration(Tag.AttributeValue, ObjectType.SymmetricKey) },
      { name: 'Cryptographic Algorithm', value: enumeration(Tag.AttributeValue, CryptographicAlgorithm.AES) },
      { name: 'Cryptographic Length', value: integer(Tag.AttributeValue, 256) },
    ];
    const found = (await locate(aes256)).uniqueIdentifiers;
    assert.deepEqual(new Set(found), new Set([tapeA, tapeB, limited, preActive]), 'tape-C and other-key exist upstream, but lib-1 may not see them');
    assert.deepEqual((await locate([{ name: 'Name', value: nameValue('other-key') }])).uniqueIdentifiers, [], 'a key outside the allow-list is not located');
  });

  it('Locate pages with Maximum Items and Offset Items over the keys the client may see; Located Items at KMIP 1.3 and later', async () => {
    const all = (await locate([group('tapes')])).uniqueIdentifiers;
    const v13 = { major: 1, minor: 3 };
    const page = await locate([group('tapes')], lib1, { maximumItems: 2, offsetItems: 1 }, v13);
    assert.deepEqual(page.uniqueIdentifiers, all.slice(1, 3));
    assert.equal(page.locatedItems, 4, 'all the matches the client may see, not those of the key server');
    const at12 = await locate([group('tapes')], lib1, { maximumItems: 1 });
    assert.equal(at12.uniqueIdentifiers.length, 1);
    assert.equal(at12.locatedItems, undefined, 'Located Items is KMIP 1.3');
  });

  it('Check, Obtain Lease and Get Usage Allocation go through the key policy and the ledger', async () => {
    assert.equal((await one(lib1, Operation.Check, payload.check(tapeA))).resultStatus, ResultStatus.Success);
    assert.equal((await one(lib1, Operation.Check, payload.check(tapeA, { cryptographicUsageMask: CryptographicUsageMask.Encrypt }))).resultStatus, ResultStatus.Success);
    assert.equal((await one(lib1, Operation.Check, payload.check(tapeA, { cryptographicUsageMask: CryptographicUsageMask.WrapKey }))).resultReason, ResultReason.PermissionDenied, 'not one of the key\'s usages');
    const notActive = await one(lib1, Operation.Check, payload.check(preActive, { cryptographicUsageMask: CryptographicUsageMask.Encrypt }));
    assert.equal(notActive.resultReason, ResultReason.PermissionDenied);
    assert.match(notActive.resultMessage!, /KEY_NOT_ACTIVE/);
    const lease = await one(lib1, Operation.ObtainLease, payload.obtainLease(tapeA));
    const seconds = optionalValue(lease.payload!, Tag.LeaseTime, ItemType.Interval)!;
    assert.ok(seconds > 500 && seconds <= 600, `lease ${seconds}`);
    const before = (await edge.agent.ledger.totals(limited)).grantedToDevices;
    const grant = encodeTtlv(buildRequestMessage(V12, [{ operation: Operation.GetUsageAllocation, payload: payload.getUsageAllocation(limited, 5n) }]));
    const first = await edge.edge.handle(lib1, grant, 'door-request-7');
    const again = await edge.edge.handle(lib1, grant, 'door-request-7');
    assert.ok(first && again);
    assert.equal((await edge.agent.ledger.totals(limited)).grantedToDevices, before + 5n, 'one grant for one request id');
    const grants = await edge.agent.ledger.grants(limited);
    assert.ok(grants.some((g) => g.device === 'client/lib-1' && g.requestId === 'door-request-7/0'), 'recorded for the client, by the door\'s request id');
    assert.equal((await one(lib1, Operation.GetUsageAllocation, payload.getUsageAllocation(tapeA, 1n))).resultReason, ResultReason.IllegalOperation, 'no Usage Limits (KMIP 1.2 §4.18)');
    assert.equal((await one(lib1, Operation.GetUsageAllocation, payload.getUsageAllocation(limited, 5000n))).resultReason, ResultReason.PermissionDenied, 'more than is left');
  });

  it('Get of a Pre-Active key is served, as a KMIP server does (OASIS TC 3.1.3); a compromised key is not', async () => {
    const got = await one(lib1, Operation.Get, payload.get(preActive));
    assert.equal(got.resultStatus, ResultStatus.Success, got.resultMessage);
    assert.equal(toHex(keyMaterialOf(keyBlockOf(readGet(got.payload!).object))), await upstreamBytes(preActive));
    const compromised = await activeKey('tape-compromised', [group('tapes')]);
    await edge.admin.revoke(compromised, RevocationReasonCode.KeyCompromise);
    const refused = await one(lib1, Operation.Get, payload.get(compromised));
    assert.equal(refused.resultReason, ResultReason.PermissionDenied);
    assert.match(refused.resultMessage!, /KEY_COMPROMISED/);
  });
});

describe('edge KMIP service, local client online: refusals', () => {
  it('a key outside the allow-list is Item Not Found, exactly as a key that does not exist — and is not fetched', async () => {
    const forbidden = await one(lib1, Operation.Get, payload.get(other));
    const missing = await one(lib1, Operation.Get, payload.get('no-such-key'));
    assert.equal(forbidden.resultReason, ResultReason.ItemNotFound);
    assert.deepEqual([forbidden.resultStatus, forbidden.resultReason, forbidden.resultMessage], [missing.resultStatus, missing.resultReason, missing.resultMessage]);
    for (const operation of [Operation.GetAttributes, Operation.GetAttributeList, Operation.Check, Operation.ObtainLease]) {
      assert.equal((await one(lib1, operation, payload.get(other))).resultReason, ResultReason.ItemNotFound, `${operation}`);
    }
    const byId = await one(lib2(), Operation.Get, payload.get(tapeC));
    assert.equal(byId.resultReason, ResultReason.ItemNotFound);
    assert.equal(await edge.agent.cache.cached(tapeC), undefined, 'a client allowed by identifier only cannot make the agent fetch another key');
    assert.equal((await one(lib2(), Operation.Get, payload.get(other))).resultStatus, ResultStatus.Success);
  });

  it('an operation outside the client\'s list is Permission Denied; one the agent does not serve is Operation Not Supported', async () => {
    for (const operation of [Operation.Locate, Operation.GetAttributes, Operation.Create, Operation.Destroy]) {
      const item = await one(lib2(), operation, payload.get(other));
      assert.equal(item.resultReason, ResultReason.PermissionDenied, `${operation}`);
    }
    for (const operation of [Operation.Encrypt, Operation.Poll, Operation.ReKey]) {
      assert.equal((await one(lib1, operation, payload.get(tapeA))).resultReason, ResultReason.OperationNotSupported, `${operation}`);
    }
  });
});

describe('edge KMIP service, local client online: Query, Discover Versions, protocol versions', () => {
  it('Query says what the agent serves this client: its operations, the cached object types, the vendor', async () => {
    const item = await one(lib2(), Operation.Query, payload.query([QueryFunction.QueryOperations, QueryFunction.QueryObjects, QueryFunction.QueryServerInformation]));
    const query = readQuery(item.payload!);
    assert.deepEqual(query.operations, [Operation.Get, Operation.Query]);
    assert.deepEqual(query.objectTypes, [ObjectType.SymmetricKey, ObjectType.SecretData]);
    assert.match(query.vendorIdentification!, /kmip-edge/);
    const all = readQuery((await one(lib1, Operation.Query, payload.query([QueryFunction.QueryOperations]))).payload!).operations;
    for (const operation of [Operation.Create, Operation.Locate, Operation.Get, Operation.Activate, Operation.Destroy, Operation.DiscoverVersions]) assert.ok(all.includes(operation));
  });

  it('Discover Versions: the versions asked that the agent speaks, in the client\'s order; not a KMIP 1.0 operation', async () => {
    const asked = [{ major: 1, minor: 4 }, { major: 2, minor: 0 }, { major: 1, minor: 0 }];
    const item = await one(lib1, Operation.DiscoverVersions, payload.discoverVersions(asked));
    assert.deepEqual(readDiscoverVersions(item.payload!), [{ major: 1, minor: 4 }, { major: 1, minor: 0 }]);
    assert.deepEqual(readDiscoverVersions((await one(lib1, Operation.DiscoverVersions, [])).payload!), [...KMIP_VERSIONS]);
    assert.equal((await one(lib1, Operation.DiscoverVersions, [], { major: 1, minor: 0 })).resultReason, ResultReason.OperationNotSupported);
  });

  for (const version of [{ major: 1, minor: 0 }, { major: 1, minor: 2 }, { major: 1, minor: 4 }]) {
    it(`KMIP ${version.major}.${version.minor}: Get, Locate and Get Attributes answered in that version, with its attributes`, async () => {
      const got = await one(lib1, Operation.Get, payload.get(tapeB), version);
      assert.equal(toHex(keyMaterialOf(keyBlockOf(readGet(got.payload!).object))), await upstreamBytes(tapeB));
      assert.deepEqual((await locate([barcode('BC0002')], lib1, {}, version)).uniqueIdentifiers, [tapeB]);
      const attributes = readAttributes((await one(lib1, Operation.GetAttributes, payload.getAttributes(tapeB), version)).payload!).attributes;
      const names = attributes.map((a) => a.name);
      assert.equal(names.includes('Original Creation Date'), version.minor >= 2, 'Original Creation Date is KMIP 1.2');
      assert.equal(names.includes('Fresh'), version.minor >= 1, 'Fresh is KMIP 1.1');
      const digest = attributes.find((a) => a.name === 'Digest')!;
      assert.equal(findChild(digest.value!, Tag.KeyFormatType) !== undefined, version.minor >= 1, 'a KMIP 1.0 Digest has no Key Format Type');
    });
  }
});

describe('edge KMIP service, local client: audit', () => {
  it('one kmip_client_request event per request: the client, each operation with its key and result — never key material or attribute values', async () => {
    const start = edge.log.lines.length;
    await edge.ask(lib1, [{ operation: Operation.Locate, payload: payload.locate({ attributes: [barcode('BC0001')] }) }, { operation: Operation.Get, payload: [] }], { batchOrderOption: true });
    await one(lib1, Operation.Get, payload.get(other));
    const events = edge.log.lines.slice(start).filter((line) => line.event === 'kmip_client_request');
    assert.equal(events.length, 2);
    assert.equal(events[0]!.client, 'lib-1');
    assert.deepEqual(events[0]!.items, [{ operation: 'Locate', uid: tapeA, status: 'Success' }, { operation: 'Get', uid: tapeA, status: 'Success' }]);
    assert.deepEqual(events[1]!.items, [{ operation: 'Get', uid: other, status: 'OperationFailed', reason: 'ItemNotFound' }]);
    const text = edge.log.text;
    for (const uid of [tapeA, tapeB, other]) assert.ok(!text.includes(await upstreamBytes(uid)), 'no key material in the log');
    assert.ok(!text.includes('BC0001') && !text.includes('BC0002'), 'no attribute values in the log');
  });

  it('a request id in its parts (the door\'s prefix and count) is logged as its text, on the hot path and the general one', async () => {
    await one(lib1, Operation.Get, payload.get(tapeA)); // cached: the next Get is the hot path's
    const start = edge.log.lines.length;
    const requests = [
      encodeTtlv(buildRequestMessage(V12, [{ operation: Operation.Get, payload: payload.get(tapeA) }])),
      encodeTtlv(buildRequestMessage(V12, [{ operation: Operation.Locate, payload: payload.locate({ attributes: [barcode('BC0001')] }) }])),
    ];
    for (const [index, request] of requests.entries()) await edge.edge.handle(lib1, request, { prefix: 'lib-1:0a1b2c3d4e5f:3:', sequence: 41 + index });
    const events = edge.log.lines.slice(start).filter((line) => line.event === 'kmip_client_request');
    assert.deepEqual(events.map((line) => [line.requestId, (line.items as { operation: string }[])[0]!.operation]), [['lib-1:0a1b2c3d4e5f:3:41', 'Get'], ['lib-1:0a1b2c3d4e5f:3:42', 'Locate']]);
  });
});
