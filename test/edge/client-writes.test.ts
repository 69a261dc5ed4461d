/**
 * A local KMIP client's writes with the key server reachable (issue #16): Create, Register,
 * Activate, Add / Modify / Delete Attribute, Revoke and Destroy forwarded upstream and the cache
 * updated from the answer; a key the client creates or registers is visible to it — and only to
 * it — afterwards, whatever its allow-list, also after a restart.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { EdgeKmipService } from '../../src/edge/edge-kmip-service.ts';
import { CREATED_PREFIX } from '../../src/edge/created-keys.ts';
import { nameValue, type Attribute } from '../../src/kmip/attributes.ts';
import { buildRequestMessage, parseResponseMessage, type ResponseBatchItem } from '../../src/kmip/message.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { keyBlockOf, keyMaterialOf, payload, readAttributes, readGet, readLocate, readUniqueIdentifier } from '../../src/kmip/payloads.ts';
import { CryptographicAlgorithm, CryptographicUsageMask, KeyFormatType, SecretDataType, ObjectType, Operation, ResultReason, ResultStatus, RevocationReasonCode, State, Tag } from '../../src/kmip/tables.generated.ts';
import { silentLogger } from '../../src/log.ts';
import { byteString, enumeration, integer, structure, textString } from '../../src/ttlv/build.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import { optionalValue } from '../../src/kmip/tree.ts';
import { ItemType } from '../../src/ttlv/item.ts';
import { keyWrappingSpecification, unwrapKeyBlock } from '../../src/upstream/key-wrapping.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { localClient, startEdge } from '../helpers/edge.ts';

let edge: Awaited<ReturnType<typeof startEdge>>;
/** Both may do everything; their allow-lists name no key the tests create. */
const creator = localClient('lib-w1', [{ objectGroup: 'w-nothing' }]);
const neighbour = localClient('lib-w2', [{ objectGroup: 'w-nothing' }]);
const barcode = (code: string): Attribute => ({ name: 'x-barcode', value: textString(Tag.AttributeValue, code) });
const byName = (name: string): Attribute => ({ name: 'Name', value: nameValue(name) });

async function one(principal: typeof creator, operation: number, items: ReturnType<typeof payload.get>, service = edge.edge): Promise<ResponseBatchItem> {
  const answer = await service.handle(principal, encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation, payload: items }])), randomBytes(4).toString('hex'));
  return parseResponseMessage(decodeTtlv(answer.response)).batchItems[0]!;
}

async function ok(principal: typeof creator, operation: number, items: ReturnType<typeof payload.get>): Promise<ResponseBatchItem> {
  const item = await one(principal, operation, items);
  assert.equal(item.resultStatus, ResultStatus.Success, item.resultMessage);
  return item;
}

const create = async (name: string, extra: Attribute[] = []) => readUniqueIdentifier((await ok(creator, Operation.Create, payload.create(ObjectType.SymmetricKey, aesKey(name, undefined, extra)))).payload!);
const cachedMeta = async (uid: string) => (await edge.agent.cache.cached(uid))?.metadata;
const located = async (principal: typeof creator, attributes: Attribute[]) => readLocate((await ok(principal, Operation.Locate, payload.locate({ attributes }))).payload!).uniqueIdentifiers;
const upstreamBytes = async (uid: string) => toHex(keyMaterialOf(keyBlockOf((await edge.admin.get(uid)).object)));

before(async () => {
  edge = await startEdge();
});

after(() => edge.stop());

describe('edge KMIP service, local client online: keys it creates', () => {
  it('Create is forwarded; the key is visible to its creator (Get, Locate, Get Attributes) whatever its allow-list, not to another client — also after a restart', async () => {
    const uid = await create('w-created', [barcode('W-0001')]);
    assert.equal((await edge.admin.getAttributes(uid, ['Name'])).attributes.length, 1, 'the key exists at the key server');
    const got = await ok(creator, Operation.Get, payload.get(uid));
    assert.equal(toHex(keyMaterialOf(keyBlockOf(readGet(got.payload!).object))), await upstreamBytes(uid));
    assert.deepEqual(await located(creator, [byName('w-created')]), [uid]);
    assert.deepEqual(await located(creator, [barcode('W-0001')]), [uid]);
    await ok(creator, Operation.GetAttributes, payload.getAttributes(uid));
    assert.equal((await one(neighbour, Operation.Get, payload.get(uid))).resultReason, ResultReason.ItemNotFound);
    assert.equal((await one(neighbour, Operation.Activate, payload.activate(uid))).resultReason, ResultReason.ItemNotFound);
    assert.deepEqual(await located(neighbour, [byName('w-created')]), [], 'another client does not locate it');
    const records: string[] = [];
    for await (const [key] of edge.agent.store.entries(CREATED_PREFIX)) records.push(key);
    assert.ok(records.includes(`${CREATED_PREFIX}lib-w1/${encodeURIComponent(uid)}`), records.join(', '));
    const restarted = new EdgeKmipService(edge.agent, edge.agent.store, silentLogger);
    assert.equal((await one(creator, Operation.Get, payload.get(uid), restarted)).resultStatus, ResultStatus.Success, 'the record is durable');
    assert.equal((await one(neighbour, Operation.Get, payload.get(uid), restarted)).resultReason, ResultReason.ItemNotFound);
  });

  it('Register is forwarded; the registered key is the creator\'s, and served back with the bytes registered', async () => {
    const bytes = new Uint8Array(randomBytes(32));
    const object = structure(Tag.SymmetricKey, [structure(Tag.KeyBlock, [
      enumeration(Tag.KeyFormatType, KeyFormatType.Raw), structure(Tag.KeyValue, [byteString(Tag.KeyMaterial, bytes)]),
      enumeration(Tag.CryptographicAlgorithm, CryptographicAlgorithm.AES), integer(Tag.CryptographicLength, 256),
    ])]);
    const attributes = aesKey('w-registered').filter((a) => a.name === 'Cryptographic Usage Mask' || a.name === 'Name');
    const uid = readUniqueIdentifier((await ok(creator, Operation.Register, payload.register(ObjectType.SymmetricKey, attributes, object))).payload!);
    const got = await ok(creator, Operation.Get, payload.get(uid));
    assert.equal(toHex(keyMaterialOf(keyBlockOf(readGet(got.payload!).object))), toHex(bytes));
    assert.equal((await one(neighbour, Operation.Get, payload.get(uid))).resultReason, ResultReason.ItemNotFound);
  });
});

describe('edge KMIP service, local client online: what the cache does not serve as it is', () => {
  it('Secret Data registered is served back from the cache with its Secret Data Type', async () => {
    const secret = new Uint8Array(Buffer.from('a passphrase of the tape library'));
    const object = structure(Tag.SecretData, [enumeration(Tag.SecretDataType, SecretDataType.Password), structure(Tag.KeyBlock, [
      enumeration(Tag.KeyFormatType, KeyFormatType.Opaque), structure(Tag.KeyValue, [byteString(Tag.KeyMaterial, secret)]),
    ])]);
    const mask = { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, CryptographicUsageMask.Verify) };
    const uid = readUniqueIdentifier((await ok(creator, Operation.Register, payload.register(ObjectType.SecretData, [mask, byName('w-secret')], object))).payload!);
    assert.equal((await edge.agent.cache.get(uid)).metadata.secretDataType, SecretDataType.Password, 'kept in the cache (served from it offline: client-offline.test.ts)');
    const got = readGet((await ok(creator, Operation.Get, payload.get(uid))).payload!);
    assert.equal(got.objectType, ObjectType.SecretData);
    assert.equal(optionalValue(got.object, Tag.SecretDataType, ItemType.Enumeration), SecretDataType.Password);
    assert.equal(toHex(keyMaterialOf(keyBlockOf(got.object))), toHex(secret));
  });

  it('a Get with a Key Wrapping Specification is the key server\'s to answer, with a wrapping key the client may see', async () => {
    const wrapping = await create('w-wrapping-key', []);
    await edge.admin.modifyAttribute(wrapping, { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, CryptographicUsageMask.WrapKey | CryptographicUsageMask.UnwrapKey) });
    const uid = await create('w-wrapped');
    const specification = (keyUid: string) => keyWrappingSpecification({ method: 'encrypt', keyUid, encoding: 'none' });
    const wrapped = readGet((await ok(creator, Operation.Get, [...payload.get(uid), specification(wrapping)])).payload!);
    const wrappingBytes = keyMaterialOf(keyBlockOf((await edge.admin.get(wrapping)).object));
    assert.equal(toHex(unwrapKeyBlock(keyBlockOf(wrapped.object), wrappingBytes)), await upstreamBytes(uid));
    const theirs = await edge.admin.create(ObjectType.SymmetricKey, aesKey('w-their-wrapping-key', CryptographicUsageMask.WrapKey));
    assert.equal((await one(creator, Operation.Get, [...payload.get(uid), specification(theirs)])).resultReason, ResultReason.ItemNotFound, 'not with a key it may not see');
  });
});

describe('edge KMIP service, local client online: writes and the cache', () => {
  it('Activate, Add / Modify / Delete Attribute: forwarded, and the cached metadata follows the key server (served so while offline later)', async () => {
    const uid = await create('w-lifecycle');
    await ok(creator, Operation.Get, payload.get(uid));
    assert.equal((await cachedMeta(uid))?.state, State.PreActive);
    await ok(creator, Operation.Activate, payload.activate(uid));
    const active = await cachedMeta(uid);
    assert.equal(active?.state, State.Active);
    assert.ok(active?.leaseExpiresAt !== undefined && active.leaseExpiresAt > BigInt(Math.floor(Date.now() / 1000)), 'a lease obtained with the activation');
    assert.ok(edge.agent.cache.useFromMemory(uid, 'protect'), 'usable from memory at once');
    await ok(creator, Operation.AddAttribute, payload.addAttribute(uid, barcode('W-0100')));
    assert.deepEqual(Object.keys((await cachedMeta(uid))?.customAttributes ?? {}), ['x-barcode']);
    const fromCache = readAttributes((await ok(creator, Operation.GetAttributes, payload.getAttributes(uid, ['x-barcode', 'State']))).payload!).attributes;
    assert.deepEqual(fromCache.map((a) => a.value?.value), ['W-0100', State.Active]);
    await ok(creator, Operation.ModifyAttribute, payload.modifyAttribute(uid, barcode('W-0101')));
    assert.equal(readAttributes((await ok(creator, Operation.GetAttributes, payload.getAttributes(uid, ['x-barcode']))).payload!).attributes[0]?.value?.value, 'W-0101');
    await ok(creator, Operation.DeleteAttribute, payload.deleteAttribute(uid, 'x-barcode'));
    assert.deepEqual(readAttributes((await ok(creator, Operation.GetAttributes, payload.getAttributes(uid, ['x-barcode']))).payload!).attributes, []);
    assert.equal((await cachedMeta(uid))?.customAttributes?.['x-barcode'], undefined);
  });

  it('Revoke (key compromise): the cached key becomes Compromised and is served no more', async () => {
    const uid = await create('w-revoked');
    await ok(creator, Operation.Activate, payload.activate(uid));
    await ok(creator, Operation.Get, payload.get(uid));
    await ok(creator, Operation.Revoke, payload.revoke(uid, RevocationReasonCode.KeyCompromise));
    assert.equal((await cachedMeta(uid))?.state, State.Compromised);
    const refused = await one(creator, Operation.Get, payload.get(uid));
    assert.equal(refused.resultReason, ResultReason.PermissionDenied);
  });

  it('Destroy: the key\'s material and metadata leave the cache; a Get is then Item Not Found', async () => {
    const uid = await create('w-destroyed');
    await ok(creator, Operation.Get, payload.get(uid));
    assert.ok(await edge.agent.cache.cached(uid));
    await ok(creator, Operation.Destroy, payload.destroy(uid));
    assert.equal(await edge.agent.cache.cached(uid), undefined);
    for await (const [key] of edge.agent.store.entries('cache/')) assert.ok(!key.endsWith(`/${uid}`), `${key} left`);
    assert.equal((await one(creator, Operation.Get, payload.get(uid))).resultReason, ResultReason.ItemNotFound);
  });

  it('a write of a key outside the allow-list is Item Not Found and not forwarded; a refusal of the key server is passed on as it said it', async () => {
    const theirs = await edge.admin.create(ObjectType.SymmetricKey, aesKey('w-theirs'));
    assert.equal((await one(creator, Operation.Destroy, payload.destroy(theirs))).resultReason, ResultReason.ItemNotFound);
    assert.equal((await one(creator, Operation.AddAttribute, payload.addAttribute(theirs, barcode('W-9')))).resultReason, ResultReason.ItemNotFound);
    assert.equal((await edge.admin.getAttributes(theirs, ['State'])).attributes[0]?.value?.value, State.PreActive, 'still there, unchanged');
    assert.equal((await edge.admin.getAttributes(theirs, ['x-barcode'])).attributes.length, 0);
    const uid = await create('w-active');
    await ok(creator, Operation.Activate, payload.activate(uid));
    const refused = await one(creator, Operation.Destroy, payload.destroy(uid));
    assert.equal(refused.resultReason, ResultReason.PermissionDenied, 'the development server refuses to destroy an Active key');
    assert.match(refused.resultMessage!, /Active/);
    assert.equal((await cachedMeta(uid))?.state, State.Active, 'the cache keeps the key');
  });
});
