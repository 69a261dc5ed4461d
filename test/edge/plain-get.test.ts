/**
 * src/edge/plain-get.ts against the general path it stands in for, both ways:
 * - every request it reads, the general path reads the same (version, Unique Batch Item ID, one
 *   Get of one Unique Identifier) — over the shapes it is meant for, requests with one field more
 *   or less, and 20,000 byte mutations of them (it may refuse more, never accept more);
 * - every answer it writes is byte for byte what buildResponseMessage + keyPayload + encodeTtlv
 *   write for the same key, time and request, for the object types and attributes a cached key has.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { CachedKey, KeyMetadata } from '../../src/agent/key-cache.ts';
import { keyPayload } from '../../src/edge/client-operations.ts';
import { readPlainGet, writeGetResponse, type PlainGet } from '../../src/edge/plain-get.ts';
import { buildRequestMessage, parseRequestMessage, type RequestHeaderOptions } from '../../src/kmip/message.ts';
import { payload } from '../../src/kmip/payloads.ts';
import { CryptographicAlgorithm, ObjectType, Operation, ResultStatus, SecretDataType, Tag } from '../../src/kmip/tables.generated.ts';
import { childrenOf, optionalValue } from '../../src/kmip/tree.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { textString } from '../../src/ttlv/build.ts';
import { ItemType, type TtlvItem } from '../../src/ttlv/item.ts';
import { buildResponseMessage } from '../../src/kmip/message.ts';

const VERSIONS = [{ major: 1, minor: 0 }, { major: 1, minor: 2 }, { major: 1, minor: 4 }, { major: 2, minor: 0 }, { major: -1, minor: 7 }];

/** What the general path reads of a request: the same fields as PlainGet, or undefined when it is not one Get of one Unique Identifier (or not a message). */
function generalRead(body: Uint8Array): PlainGet | undefined {
  let request;
  try {
    request = parseRequestMessage(decodeTtlv(body));
  } catch {
    return undefined;
  }
  const [only] = request.batchItems;
  if (request.batchItems.length !== 1 || only!.operation !== Operation.Get || childrenOf(only!.payload).length !== 1) return undefined;
  const uid = optionalValue(only!.payload, Tag.UniqueIdentifier, ItemType.TextString);
  return uid === undefined ? undefined : { version: request.protocolVersion, uniqueBatchItemId: only!.uniqueBatchItemId, uid };
}

function request(version: { major: number; minor: number }, uid: string, batchId?: Uint8Array, header: RequestHeaderOptions = {}, extra: TtlvItem[] = []): Uint8Array {
  return encodeTtlv(buildRequestMessage(version, [{ operation: Operation.Get, payload: [...payload.get(uid), ...extra], ...(batchId && { uniqueBatchItemId: batchId }) }], header));
}

const randomUid = () => randomBytes(1 + Math.floor(Math.random() * 40)).toString('base64url').slice(0, 1 + Math.floor(Math.random() * 40));

describe('readPlainGet', () => {
  it('reads the one shape as the general path does: versions, with and without a Unique Batch Item ID, identifiers of every length', () => {
    let read = 0;
    for (let i = 0; i < 2000; i++) {
      const version = VERSIONS[i % VERSIONS.length]!;
      const batchId = i % 3 === 0 ? undefined : randomBytes(i % 17);
      const body = request(version, randomUid(), batchId);
      const plain = readPlainGet(body);
      assert.ok(plain, `the plain shape is read (${i})`);
      assert.deepEqual(plain, generalRead(body));
      read++;
    }
    assert.equal(read, 2000);
  });

  it('leaves everything else to the general path: header fields, payload fields, other operations, two items, non-ASCII identifiers', () => {
    const uid = 'f3a1-key';
    const others: [string, Uint8Array][] = [
      ['Maximum Response Size', request({ major: 1, minor: 2 }, uid, undefined, { maximumResponseSize: 4096 })],
      ['a Time Stamp', request({ major: 1, minor: 2 }, uid, undefined, { timeStamp: new Date() })],
      ['Batch Order Option', request({ major: 1, minor: 2 }, uid, undefined, { batchOrderOption: true })],
      ['a Key Format Type', request({ major: 1, minor: 2 }, uid, undefined, {}, [{ tag: Tag.KeyFormatType, type: ItemType.Enumeration, value: 1 }])],
      ['a second Unique Identifier', request({ major: 1, minor: 2 }, uid, undefined, {}, [textString(Tag.UniqueIdentifier, 'x')])],
      ['a non-ASCII identifier', request({ major: 1, minor: 2 }, 'clé-é')],
      ['Get Attributes', encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation: Operation.GetAttributes, payload: payload.get(uid) }]))],
      ['two Gets', encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation: Operation.Get, payload: payload.get(uid) }, { operation: Operation.Get, payload: payload.get(uid) }]))],
      ['an empty payload', encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation: Operation.Get, payload: [] }]))],
    ];
    for (const [what, body] of others) assert.equal(readPlainGet(body), undefined, what);
    assert.equal(readPlainGet(new Uint8Array(0)), undefined, 'no bytes');
    assert.equal(readPlainGet(request({ major: 1, minor: 2 }, 'key'), { maxValueBytes: 2 }), undefined, 'over maxValueBytes');
    assert.equal(readPlainGet(request({ major: 1, minor: 2 }, 'key'), { maxMessageBytes: 100 }), undefined, 'over maxMessageBytes');
  });

  it('never accepts what the general path refuses or reads differently: 20,000 mutations (a byte changed, cut, or added)', () => {
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      const base = request(VERSIONS[i % 3]!, randomUid(), i % 2 === 0 ? randomBytes(i % 9) : undefined);
      let body: Uint8Array;
      const at = Math.floor(Math.random() * base.length);
      switch (i % 4) {
        case 0: body = Uint8Array.from(base); body[at] = Math.floor(Math.random() * 256); break; // any byte
        case 1: body = Uint8Array.from(base); body[at] = body[at]! ^ (1 << (i % 8)); break; // one bit
        case 2: body = base.subarray(0, at); break;
        default: body = Uint8Array.from([...base, ...randomBytes(1 + (i % 16))]);
      }
      const plain = readPlainGet(body);
      if (plain === undefined) continue;
      accepted++;
      assert.deepEqual(plain, generalRead(body), `mutation ${i} at byte ${at}`);
    }
    assert.ok(accepted > 1000, `some mutations are still plain Gets (identifier bytes, versions): ${accepted}`);
  });

  it('a request of the shape read just before (read from its identifier alone) is read as the general path reads it: 20,000 of one shape, mutated', () => {
    const version = { major: 1, minor: 4 };
    const uid = () => randomBytes(27).toString('base64url').slice(0, 36); // one length: one shape
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      const base = request(version, uid());
      assert.deepEqual(readPlainGet(base), generalRead(base), `request ${i}`); // the shape is now the last one read
      const body = Uint8Array.from(base);
      const at = i % 2 === 0 ? base.length - 40 + (i % 40) : Math.floor(Math.random() * base.length); // the identifier and its padding, or anywhere
      body[at] = i % 3 === 0 ? 0x80 | (i & 0x7f) : Math.floor(Math.random() * 256);
      const plain = readPlainGet(body);
      if (plain === undefined) continue;
      accepted++;
      assert.deepEqual(plain, generalRead(body), `mutation ${i} at byte ${at}`);
    }
    assert.ok(accepted > 1000, `mutated identifiers still read: ${accepted}`);
    const known = request(version, uid());
    assert.ok(readPlainGet(known));
    assert.equal(readPlainGet(request(version, uid()), { maxValueBytes: 35 }), undefined, 'over maxValueBytes, of the known shape');
    assert.equal(readPlainGet(request(version, uid()), { maxMessageBytes: known.length - 1 }), undefined, 'over maxMessageBytes, of the known shape');
  });
});

function cachedKey(metadata: Partial<KeyMetadata>, material: Uint8Array): CachedKey {
  return { metadata: metadata as KeyMetadata, material };
}

describe('writeGetResponse', () => {
  it('writes what the general path writes, for symmetric keys and secret data, with and without algorithm and length', () => {
    const now = Date.now();
    const keys = [
      cachedKey({ objectType: ObjectType.SymmetricKey, algorithm: CryptographicAlgorithm.AES, length: 256 }, randomBytes(32)),
      // The same shape as the key before, other values: the layout of the shape is reused, never a value of another response.
      cachedKey({ objectType: ObjectType.SymmetricKey, algorithm: CryptographicAlgorithm.Blowfish, length: 192 }, randomBytes(32)),
      cachedKey({ objectType: ObjectType.SymmetricKey, algorithm: CryptographicAlgorithm.AES }, randomBytes(16)),
      cachedKey({ objectType: ObjectType.SymmetricKey, length: 168 }, randomBytes(21)),
      cachedKey({ objectType: ObjectType.SymmetricKey }, randomBytes(0)),
      cachedKey({ objectType: ObjectType.SecretData, secretDataType: SecretDataType.Password }, randomBytes(13)),
      cachedKey({ objectType: ObjectType.SecretData, secretDataType: SecretDataType.Seed, algorithm: CryptographicAlgorithm.AES, length: 256 }, randomBytes(64)),
    ];
    let compared = 0;
    for (let i = 0; i < 700; i++) {
      const key = keys[i % keys.length]!;
      const get: PlainGet = { version: VERSIONS[i % 3]!, uniqueBatchItemId: i % 2 === 0 ? randomBytes(i % 13) : undefined, uid: randomUid() };
      const at = now + i * 997_000;
      const item = { operation: Operation.Get, ...(get.uniqueBatchItemId && { uniqueBatchItemId: get.uniqueBatchItemId }), resultStatus: ResultStatus.Success, payload: keyPayload(get.uid, key)! };
      const general = encodeTtlv(buildResponseMessage(get.version, [item], new Date(at)));
      const written = writeGetResponse(get, key, at)!;
      assert.ok(Buffer.isBuffer(written), 'a Buffer: what the socket writes as it is');
      assert.deepEqual(new Uint8Array(written), general, `key ${i % keys.length}, request ${i}`);
      compared++;
    }
    assert.equal(compared, 700);
  });

  it('responses of one shape (one layout) carry each their own values: version, time, batch item id, identifier, material, attributes', () => {
    const now = Date.now();
    for (let i = 0; i < 40; i++) {
      const key = cachedKey({ objectType: ObjectType.SymmetricKey, algorithm: i % 2 === 0 ? CryptographicAlgorithm.AES : CryptographicAlgorithm.Blowfish, length: 128 + i }, randomBytes(16));
      const uniqueBatchItemId = randomBytes(4);
      const get: PlainGet = { version: VERSIONS[i % 3]!, uniqueBatchItemId, uid: randomBytes(18).toString('hex') };
      const item = { operation: Operation.Get, uniqueBatchItemId, resultStatus: ResultStatus.Success, payload: keyPayload(get.uid, key)! };
      assert.deepEqual(new Uint8Array(writeGetResponse(get, key, now + i * 1000)!), encodeTtlv(buildResponseMessage(get.version, [item], new Date(now + i * 1000))), `response ${i}`);
    }
  });

  it('writes nothing for what keyPayload does not answer from memory (the general path decides)', () => {
    const get: PlainGet = { version: { major: 1, minor: 2 }, uniqueBatchItemId: undefined, uid: 'k' };
    for (const metadata of [{ objectType: ObjectType.SecretData }, { objectType: ObjectType.PrivateKey }, { objectType: ObjectType.Certificate }]) {
      assert.equal(keyPayload('k', cachedKey(metadata, randomBytes(8))), undefined);
      assert.equal(writeGetResponse(get, cachedKey(metadata, randomBytes(8))), undefined, JSON.stringify(metadata));
    }
  });
});
