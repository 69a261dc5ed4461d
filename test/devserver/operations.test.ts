/**
 * The development server's operations that no open-source server has, driven by the kmip-edge
 * client over mutual TLS: Get Usage Allocation, Obtain Lease, Check, asynchronous Locate with Poll
 * and Cancel, MAC/sign and Encrypt wrapping with attributes, batch Undo, Maximum Response Size,
 * and the key state machine.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { nameValue } from '../../src/kmip/attributes.ts';
import { buildRequestMessage, KmipResultError, parseResponseMessage } from '../../src/kmip/message.ts';
import { keyBlockOf, keyMaterialOf, payload, readLocate } from '../../src/kmip/payloads.ts';
import {
  BatchErrorContinuationOption,
  CancellationResult,
  CryptographicAlgorithm,
  CryptographicUsageMask,
  ObjectType,
  Operation,
  QueryFunction,
  ResultReason,
  ResultStatus,
  RevocationReasonCode,
  State,
  Tag,
  UsageLimitsUnit,
} from '../../src/kmip/tables.generated.ts';
import { findChildren, optionalValue } from '../../src/kmip/tree.ts';
import { RequestProcessor } from '../../src/devserver/request-processor.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { byteString, dateTime, enumeration, integer, longInteger, structure } from '../../src/ttlv/build.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import { ItemType } from '../../src/ttlv/item.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { keyWrappingSpecification, unwrapKeyBlock, verifyMacKeyBlock, wrappedAttribute } from '../../src/upstream/key-wrapping.ts';
import { aesKey, attributeValue, rejectsWith } from '../helpers/client-interop-suite.ts';
import { CountingTransport } from '../../src/net/counting-transport.ts';
import { startDevServer } from '../helpers/dev-server.ts';

let dev: Awaited<ReturnType<typeof startDevServer>>;
let client: KmipClient;
before(async () => {
  dev = await startDevServer({ leaseSeconds: 600 });
  client = new KmipClient({ transport: new TlsPool(dev.endpoint), version: { major: 1, minor: 2 } });
});
after(async () => {
  await client.close();
  await dev.stop();
});

const usageLimits = (total: bigint) => ({ name: 'Usage Limits', value: structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, total), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Byte)]) });

describe('development server: Get Usage Allocation (KMIP 1.2 §4.18, OASIS TC 5.1)', () => {
  it('grants while units remain, then Permission Denied; the count is kept in Usage Limits', async () => {
    const uid = await client.create(ObjectType.SymmetricKey, aesKey('gua', CryptographicUsageMask.Encrypt, [usageLimits(1000n)]));
    await rejectsWith(client.getUsageAllocation(uid, 500n), 'PermissionDenied'); // Pre-Active: not usable to protect
    await client.activate(uid);
    assert.equal(await client.getUsageAllocation(uid, 500n), uid);
    assert.equal(await client.getUsageAllocation(uid, 500n), uid);
    await assert.rejects(client.getUsageAllocation(uid, 500n), (e: unknown) => e instanceof KmipResultError && e.resultReason === 'PermissionDenied' && e.resultMessage === 'Unable to allocate requested amount');
    const limits = (await client.getAttributes(uid, ['Usage Limits'])).attributes[0]!.value!;
    assert.equal(optionalValue(limits, Tag.UsageLimitsTotal, ItemType.LongInteger), 1000n);
    assert.equal(optionalValue(limits, Tag.UsageLimitsCount, ItemType.LongInteger), 0n);
    const plain = await client.create(ObjectType.SymmetricKey, aesKey('gua-none'));
    await client.activate(plain);
    await rejectsWith(client.getUsageAllocation(plain, 1n), 'IllegalOperation'); // no Usage Limits
  });
});

describe('development server: Obtain Lease and Check', () => {
  it('leases an Active key for the configured time with its Last Change Date; none for a Compromised one', async () => {
    const uid = await client.create(ObjectType.SymmetricKey, aesKey('lease'));
    await client.activate(uid);
    const lease = await client.obtainLease(uid);
    assert.equal(lease.leaseTime, 600);
    const changed = (await client.getAttributes(uid, ['Last Change Date'])).attributes[0]!.value!.value;
    assert.equal(lease.lastChangeDate, changed);
    await client.revoke(uid, RevocationReasonCode.KeyCompromise);
    await assert.rejects(client.obtainLease(uid), (e: unknown) => e instanceof KmipResultError && e.resultReason === 'PermissionDenied' && /Compromised/.test(e.resultMessage ?? ''));
  });

  it('Check allows what the key permits and denies more units, other usages or a longer lease', async () => {
    const uid = await client.create(ObjectType.SymmetricKey, aesKey('check', CryptographicUsageMask.Encrypt, [usageLimits(100n)]));
    assert.equal((await client.check(uid, { usageLimitsCount: 100n, cryptographicUsageMask: CryptographicUsageMask.Encrypt, leaseTime: 600 })).uniqueIdentifier, uid);
    await rejectsWith(client.check(uid, { usageLimitsCount: 101n }), 'PermissionDenied');
    await rejectsWith(client.check(uid, { cryptographicUsageMask: CryptographicUsageMask.Decrypt }), 'PermissionDenied');
    await rejectsWith(client.check(uid, { leaseTime: 601 }), 'PermissionDenied');
  });
});

describe('development server: asynchronous operations (KMIP 1.2 §6.7, OASIS TC 3.2)', () => {
  it('answers an asynchronous Locate Operation Pending; the client polls it to completion', async () => {
    const uid = await client.create(ObjectType.SymmetricKey, aesKey('async-locate'));
    const counting = new CountingTransport(new TlsPool(dev.endpoint));
    const asyncClient = new KmipClient({ transport: counting, version: { major: 1, minor: 2 }, poll: { initialMs: 5 } });
    try {
      const [item] = await asyncClient.batch([{ operation: Operation.Locate, payload: payload.locate({ attributes: [{ name: 'Name', value: nameValue('async-locate') }] }) }], { asynchronousIndicator: true });
      assert.equal(item?.resultStatus, ResultStatus.Success);
      assert.equal(item?.operation, Operation.Locate);
      assert.deepEqual(readLocate(item!.payload!).uniqueIdentifiers, [uid]);
      assert.equal(counting.roundTrips, 2, 'the Locate, then one Poll');
    } finally {
      await asyncClient.close();
    }
  });

  it('Cancel withdraws a pending result; a later Poll finds nothing', () => {
    const processor = new RequestProcessor();
    const send = (operation: number, items: Parameters<typeof buildRequestMessage>[1][number]['payload'], asynchronousIndicator = false) =>
      parseResponseMessage(decodeTtlv(processor.process(encodeTtlv(buildRequestMessage({ major: 1, minor: 0 }, [{ operation, payload: items }], { asynchronousIndicator }))))).batchItems[0]!;
    const pending = send(Operation.Locate, [], true);
    assert.equal(pending.resultStatus, ResultStatus.OperationPending);
    const correlation = pending.asynchronousCorrelationValue!;
    const cancelled = send(Operation.Cancel, payload.cancel(correlation));
    assert.equal(optionalValue(cancelled.payload!, Tag.CancellationResult, ItemType.Enumeration), CancellationResult.Canceled);
    assert.equal(send(Operation.Poll, payload.poll(correlation)).resultReason, ResultReason.ItemNotFound);
  });
});

describe('development server: key wrapping on Get (KMIP 1.2 §2.1.5–2.1.6)', () => {
  it('MAC/sign with HMAC-SHA256 over the Key Value and its x-Nonce, verified by the client', async () => {
    const uid = await client.create(ObjectType.SymmetricKey, aesKey('mac-target'));
    const macUid = await client.create(ObjectType.SymmetricKey, [
      { name: 'Cryptographic Algorithm', value: enumeration(Tag.AttributeValue, CryptographicAlgorithm.HMAC_SHA256) },
      { name: 'Cryptographic Length', value: integer(Tag.AttributeValue, 256) },
      { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, CryptographicUsageMask.MACGenerate | CryptographicUsageMask.MACVerify) },
    ]);
    const macKey = keyMaterialOf(keyBlockOf((await client.get(macUid)).object));
    const plain = keyMaterialOf(keyBlockOf((await client.get(uid)).object));
    const nonce = Uint8Array.from({ length: 16 }, (_, i) => i * 7);
    await client.addAttribute(uid, { name: 'x-Nonce', value: byteString(Tag.AttributeValue, nonce) });
    const got = await client.get(uid, { keyWrappingSpecification: keyWrappingSpecification({ method: 'mac', keyUid: macUid, attributeNames: ['x-Nonce'] }) });
    const keyValue = verifyMacKeyBlock(keyBlockOf(got.object), macKey);
    assert.equal(toHex(keyMaterialOf(structure(Tag.KeyBlock, [keyValue]))), toHex(plain));
    assert.equal(toHex(wrappedAttribute(keyValue, 'x-Nonce')!.value as Uint8Array), toHex(nonce));
    // An AES key cannot MAC: Permission Denied.
    await rejectsWith(client.get(uid, { keyWrappingSpecification: keyWrappingSpecification({ method: 'mac', keyUid: uid }) }), 'PermissionDenied');
  });

  it('Encrypt with AES key wrap and TTLV encoding carries the named attributes (OASIS TC 14.2)', async () => {
    const kek = await client.create(ObjectType.SymmetricKey, aesKey('kek-ttlv', CryptographicUsageMask.WrapKey | CryptographicUsageMask.UnwrapKey));
    const uid = await client.create(ObjectType.SymmetricKey, aesKey('wrapped-ttlv'));
    const kekBytes = keyMaterialOf(keyBlockOf((await client.get(kek)).object));
    const plain = keyMaterialOf(keyBlockOf((await client.get(uid)).object));
    const got = await client.get(uid, { keyWrappingSpecification: keyWrappingSpecification({ method: 'encrypt', keyUid: kek, attributeNames: ['Cryptographic Usage Mask'] }) });
    assert.equal(toHex(unwrapKeyBlock(keyBlockOf(got.object), kekBytes)), toHex(plain));
  });
});

describe('development server: batches and response size', () => {
  it('Undo rolls back the earlier items of a failed batch (they come back Operation Undone)', async () => {
    const results = await client.batch(
      [
        { operation: Operation.Create, payload: payload.create(ObjectType.SymmetricKey, aesKey('undone')) },
        { operation: Operation.Activate, payload: payload.activate('no-such-key') },
      ],
      { batchOrderOption: true, batchErrorContinuationOption: BatchErrorContinuationOption.Undo },
    );
    assert.deepEqual(results.map((r) => r?.resultStatus), [ResultStatus.OperationUndone, ResultStatus.OperationFailed]);
    assert.deepEqual((await client.locate({ attributes: [{ name: 'Name', value: nameValue('undone') }] })).uniqueIdentifiers, []);
  });

  it('Maximum Response Size: a Query too large for 256 bytes fails Response Too Large, fits in 2048 (OASIS TC 12.1)', async () => {
    const query = { operation: Operation.Query, payload: payload.query([QueryFunction.QueryOperations, QueryFunction.QueryObjects]) };
    const [small] = await client.batch([query], { maximumResponseSize: 256 });
    assert.equal(small?.resultReason, ResultReason.ResponseTooLarge);
    const [large] = await client.batch([query], { maximumResponseSize: 2048 });
    assert.equal(large?.resultStatus, ResultStatus.Success);
    assert.ok(findChildren(large!.payload!, Tag.Operation).length > 10);
  });
});

describe('development server: key state machine (KMIP 1.2 §3.22)', () => {
  const state = async (uid: string) => attributeValue((await client.getAttributes(uid, ['State'])).attributes, 'State');

  it('Pre-Active → Active → Compromised → Destroyed Compromised, with the refusals in between', async () => {
    const uid = await client.create(ObjectType.SymmetricKey, aesKey('states'));
    assert.equal(await state(uid), State.PreActive);
    await client.activate(uid);
    await rejectsWith(client.activate(uid), 'PermissionDenied');
    await rejectsWith(client.destroy(uid), 'PermissionDenied'); // Active keys are deactivated first
    await client.revoke(uid, RevocationReasonCode.KeyCompromise);
    assert.equal(await state(uid), State.Compromised);
    await client.destroy(uid);
    await rejectsWith(client.get(uid), 'ItemNotFound');
  });

  it('an Activation Date in the past activates; one in the future does not; Last Change Date moves on changes', async () => {
    const now = Date.now();
    const past = await client.create(ObjectType.SymmetricKey, aesKey('dated-past', undefined, [{ name: 'Activation Date', value: dateTime(Tag.AttributeValue, new Date(now - 3600_000)) }]));
    const future = await client.create(ObjectType.SymmetricKey, aesKey('dated-future', undefined, [{ name: 'Activation Date', value: dateTime(Tag.AttributeValue, new Date(now + 3600_000)) }]));
    assert.equal(await state(past), State.Active);
    assert.equal(await state(future), State.PreActive);
    const before = (await client.getAttributes(future, ['Last Change Date'])).attributes[0]!.value!.value as bigint;
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await client.modifyAttribute(future, { name: 'Name', value: nameValue('dated-renamed') });
    const after = (await client.getAttributes(future, ['Last Change Date'])).attributes[0]!.value!.value as bigint;
    assert.ok(after > before, `Last Change Date ${after} after ${before}`);
  });
});
