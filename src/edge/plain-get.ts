/**
 * The tape library's hot path (issue #16): a Request Message holding one Get of nothing but a
 * Unique Identifier, read straight from its bytes, and its Success answer written straight to
 * bytes — the very bytes the general path gives (decodeTtlv + parseRequestMessage in, keyPayload
 * + buildResponseMessage + encodeTtlv out; test/edge/plain-get.test.ts compares the two over every
 * shape either way), without building the two item trees. That was ~4.5 µs of the ~6.5 µs the
 * service spent on a cached Get (profile of `bench kmip-endpoint`, 16 clients).
 *
 * Only the one shape is read; anything else — another field in the header (Maximum Response
 * Size, Authentication, a Time Stamp …), a Message Extension, a second item, a non-ASCII
 * identifier, any deviation from strict TTLV (KMIP 1.2 §9.1: lengths, zero padding) — returns
 * undefined and takes the general path, which decides as before. Policy is not decided here: the
 * caller asks ClientOperations.readableFromMemory, as the general path does.
 */
import type { CachedKey } from '../agent/key-cache.ts';
import type { ProtocolVersion } from '../kmip/message.ts';
import { KeyFormatType, ObjectType, Operation, ResultStatus, Tag } from '../kmip/tables.generated.ts';
import { ItemType, padTo8 } from '../ttlv/item.ts';
import { resolveTtlvLimits, type TtlvLimits } from '../ttlv/limits.ts';
import { allocZeroed } from '../ttlv/slab.ts';

export interface PlainGet {
  version: ProtocolVersion;
  uniqueBatchItemId: Uint8Array | undefined;
  uid: string;
}

const u32 = (b: Uint8Array, at: number): number => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
const tagAt = (b: Uint8Array, at: number): number => (b[at]! << 16) | (b[at + 1]! << 8) | b[at + 2]!;

/** Whether an item of `tag` and `type` with value length `length` starts at `at`. */
const isItem = (b: Uint8Array, at: number, tag: number, type: number, length: number): boolean => at + 8 <= b.length && tagAt(b, at) === tag && b[at + 3] === type && u32(b, at + 4) === length;

/** The value of a 4-byte Integer or Enumeration at `at` (zero padding checked), or undefined. */
function fourByte(b: Uint8Array, at: number, tag: number, type: number): number | undefined {
  if (!isItem(b, at, tag, type, 4) || at + 16 > b.length || u32(b, at + 12) !== 0) return undefined;
  return u32(b, at + 8);
}

/** A Text or Byte String's value length at `at` if it fits, its padding is zero and it is within `max`; else -1. */
function variable(b: Uint8Array, at: number, tag: number, type: number, end: number, max: number): number {
  if (at + 8 > end || tagAt(b, at) !== tag || b[at + 3] !== type) return -1;
  const length = u32(b, at + 4);
  if (length > max || at + 8 + padTo8(length) > end) return -1;
  for (let i = at + 8 + length; i < at + 8 + padTo8(length); i++) if (b[i] !== 0) return -1;
  return length;
}

/** Reads the one shape (see above), or undefined. */
export function readPlainGet(body: Uint8Array, limits?: Partial<TtlvLimits>): PlainGet | undefined {
  const { maxMessageBytes, maxValueBytes } = resolveTtlvLimits(limits);
  const b = body;
  if (b.length > maxMessageBytes || !isItem(b, 0, Tag.RequestMessage, ItemType.Structure, b.length - 8)) return undefined;
  // Request Header: Protocol Version, Batch Count 1.
  if (!isItem(b, 8, Tag.RequestHeader, ItemType.Structure, 56) || !isItem(b, 16, Tag.ProtocolVersion, ItemType.Structure, 32)) return undefined;
  const major = fourByte(b, 24, Tag.ProtocolVersionMajor, ItemType.Integer);
  const minor = fourByte(b, 40, Tag.ProtocolVersionMinor, ItemType.Integer);
  if (major === undefined || minor === undefined || fourByte(b, 56, Tag.BatchCount, ItemType.Integer) !== 1) return undefined;
  // Batch Item: Operation Get, a Unique Batch Item ID or not, the Request Payload.
  if (b.length < 96) return undefined;
  const itemEnd = 72 + 8 + u32(b, 76);
  if (itemEnd !== b.length || !isItem(b, 72, Tag.BatchItem, ItemType.Structure, itemEnd - 80)) return undefined;
  if (fourByte(b, 80, Tag.Operation, ItemType.Enumeration) !== Operation.Get) return undefined;
  let at = 96;
  let uniqueBatchItemId: Uint8Array | undefined;
  if (at + 3 <= itemEnd && tagAt(b, at) === Tag.UniqueBatchItemID) {
    const length = variable(b, at, Tag.UniqueBatchItemID, ItemType.ByteString, itemEnd, maxValueBytes);
    if (length < 0) return undefined;
    uniqueBatchItemId = b.slice(at + 8, at + 8 + length);
    at += 8 + padTo8(length);
  }
  // Request Payload: the Unique Identifier alone, ASCII.
  if (!isItem(b, at, Tag.RequestPayload, ItemType.Structure, itemEnd - at - 8)) return undefined;
  const length = variable(b, at + 8, Tag.UniqueIdentifier, ItemType.TextString, itemEnd, maxValueBytes);
  if (length < 0 || at + 16 + padTo8(length) !== itemEnd) return undefined;
  for (let i = at + 16; i < at + 16 + length; i++) if (b[i]! >= 0x80) return undefined; // beyond ASCII: the general path's strict UTF-8 decoder
  const uid = (b instanceof Buffer ? b : Buffer.from(b.buffer, b.byteOffset, b.length)).toString('latin1', at + 16, at + 16 + length);
  return { version: { major: major | 0, minor: minor | 0 }, uniqueBatchItemId, uid };
}

function putU32(o: Uint8Array, at: number, value: number): void {
  o[at] = value >>> 24;
  o[at + 1] = value >>> 16;
  o[at + 2] = value >>> 8;
  o[at + 3] = value;
}

/** Tag, type and length at `at` (KMIP 1.2 §9.1.1); returns where the value starts. */
function putHeader(o: Uint8Array, at: number, tag: number, type: number, length: number): number {
  o[at] = tag >> 16;
  o[at + 1] = tag >> 8;
  o[at + 2] = tag;
  o[at + 3] = type;
  putU32(o, at + 4, length);
  return at + 8;
}

/** An Integer or Enumeration (4 bytes, 4 of padding: the array is zero-filled). */
function putFourByte(o: Uint8Array, at: number, tag: number, type: number, value: number): number {
  putU32(o, putHeader(o, at, tag, type, 4), value);
  return at + 16;
}

function putBytes(o: Uint8Array, at: number, tag: number, value: Uint8Array): number {
  const start = putHeader(o, at, tag, ItemType.ByteString, value.length);
  o.set(value, start);
  return start + padTo8(value.length);
}

function putAscii(o: Uint8Array, at: number, tag: number, value: string): number {
  const start = putHeader(o, at, tag, ItemType.TextString, value.length);
  for (let i = 0; i < value.length; i++) o[start + i] = value.charCodeAt(i);
  return start + padTo8(value.length);
}

/**
 * The Success Response Message of a Get (what buildResponseMessage and keyPayload make), or
 * undefined for an object keyPayload does not answer from memory. `uid` is ASCII (readPlainGet).
 */
export function writeGetResponse(get: PlainGet, key: CachedKey, now: number = Date.now()): Uint8Array | undefined {
  const { metadata, material } = key;
  const symmetric = metadata.objectType === ObjectType.SymmetricKey;
  if (!symmetric && !(metadata.objectType === ObjectType.SecretData && metadata.secretDataType !== undefined)) return undefined;
  // Sizes from the inside out (KMIP 1.2 §2.1.3 Key Block, §2.2 Managed Objects, §4.11 Get).
  const keyValue = 8 + padTo8(material.length);
  const keyBlock = 16 + (8 + keyValue) + (symmetric ? (metadata.algorithm !== undefined ? 16 : 0) + (metadata.length !== undefined ? 16 : 0) : 0);
  const object = (symmetric ? 0 : 16) + 8 + keyBlock;
  const payload = 16 + 8 + padTo8(get.uid.length) + 8 + object;
  const batchId = get.uniqueBatchItemId === undefined ? 0 : 8 + padTo8(get.uniqueBatchItemId.length);
  const item = 16 + batchId + 16 + 8 + payload;
  const o = allocZeroed(8 + 80 + 8 + item);
  let at = putHeader(o, 0, Tag.ResponseMessage, ItemType.Structure, 80 + 8 + item);
  at = putHeader(o, at, Tag.ResponseHeader, ItemType.Structure, 72);
  at = putHeader(o, at, Tag.ProtocolVersion, ItemType.Structure, 32);
  at = putFourByte(o, at, Tag.ProtocolVersionMajor, ItemType.Integer, get.version.major);
  at = putFourByte(o, at, Tag.ProtocolVersionMinor, ItemType.Integer, get.version.minor);
  const seconds = Math.floor(now / 1000);
  const stamp = putHeader(o, at, Tag.TimeStamp, ItemType.DateTime, 8);
  putU32(o, stamp, Math.floor(seconds / 2 ** 32));
  putU32(o, stamp + 4, seconds >>> 0);
  at = putFourByte(o, stamp + 8, Tag.BatchCount, ItemType.Integer, 1);
  at = putHeader(o, at, Tag.BatchItem, ItemType.Structure, item);
  at = putFourByte(o, at, Tag.Operation, ItemType.Enumeration, Operation.Get);
  if (get.uniqueBatchItemId !== undefined) at = putBytes(o, at, Tag.UniqueBatchItemID, get.uniqueBatchItemId);
  at = putFourByte(o, at, Tag.ResultStatus, ItemType.Enumeration, ResultStatus.Success);
  at = putHeader(o, at, Tag.ResponsePayload, ItemType.Structure, payload);
  at = putFourByte(o, at, Tag.ObjectType, ItemType.Enumeration, metadata.objectType);
  at = putAscii(o, at, Tag.UniqueIdentifier, get.uid);
  at = putHeader(o, at, symmetric ? Tag.SymmetricKey : Tag.SecretData, ItemType.Structure, object);
  if (!symmetric) at = putFourByte(o, at, Tag.SecretDataType, ItemType.Enumeration, metadata.secretDataType!);
  at = putHeader(o, at, Tag.KeyBlock, ItemType.Structure, keyBlock);
  at = putFourByte(o, at, Tag.KeyFormatType, ItemType.Enumeration, symmetric ? KeyFormatType.Raw : KeyFormatType.Opaque);
  at = putHeader(o, at, Tag.KeyValue, ItemType.Structure, keyValue);
  at = putBytes(o, at, Tag.KeyMaterial, material);
  if (symmetric && metadata.algorithm !== undefined) at = putFourByte(o, at, Tag.CryptographicAlgorithm, ItemType.Enumeration, metadata.algorithm);
  if (symmetric && metadata.length !== undefined) at = putFourByte(o, at, Tag.CryptographicLength, ItemType.Integer, metadata.length);
  if (at !== o.length) throw new Error(`Get response writer wrote ${at} bytes, sized ${o.length}`); // the sizes above and the writes agree
  return o;
}
