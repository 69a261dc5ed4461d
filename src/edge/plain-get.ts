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
import { copyMaterial, materialLength, type CachedKey } from '../agent/key-cache.ts';
import { KMIP_VERSIONS, type ProtocolVersion } from '../kmip/message.ts';
import { KeyFormatType, ObjectType, Operation, ResultStatus, Tag } from '../kmip/tables.generated.ts';
import { ItemType, padTo8 } from '../ttlv/item.ts';
import { resolveTtlvLimits, type TtlvLimits } from '../ttlv/limits.ts';
import { allocZeroedBuffer } from '../ttlv/slab.ts';

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

/**
 * The last request read in full that had no Unique Batch Item ID: its length and its bytes before
 * the identifier — every tag, type and length of the shape, and the version. A request of that
 * length with those bytes is that shape with another identifier, and only the identifier and its
 * padding are left to check (a library Gets with one shape: ~0.2 µs of field checks saved a
 * request, `bench kmip-endpoint`). These bytes hold no identifier and nothing secret.
 */
let lastShape: { length: number; before: Uint8Array; version: ProtocolVersion } | undefined;

/** Reads the one shape (see above), or undefined. */
export function readPlainGet(body: Uint8Array, limits?: Partial<TtlvLimits>): PlainGet | undefined {
  const { maxMessageBytes, maxValueBytes } = resolveTtlvLimits(limits);
  const b = body;
  const shape = lastShape;
  if (shape !== undefined && b.length === shape.length && b.length <= maxMessageBytes && startsWith(b, shape.before)) {
    const uidAt = shape.before.length;
    const length = u32(b, uidAt - 4);
    if (length > maxValueBytes) return undefined;
    for (let i = uidAt + length; i < b.length; i++) if (b[i] !== 0) return undefined; // the padding, to the end of the message (the full reading: variable)
    return identified(b, uidAt, length, shape.version, undefined);
  }
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
  // A version served is named by its object in KMIP_VERSIONS, the same for every request.
  const version = KMIP_VERSIONS.find((v) => v.major === major && v.minor === minor) ?? { major: major | 0, minor: minor | 0 };
  const plain = identified(b, at + 16, length, version, uniqueBatchItemId);
  if (plain !== undefined && uniqueBatchItemId === undefined) lastShape = { length: b.length, before: new Uint8Array(b.subarray(0, at + 16)), version }; // a copy: a view would keep the whole read
  return plain;
}

/** The Get with the identifier of `length` at `at` (its padding checked zero by the caller), if it is ASCII. */
function identified(b: Uint8Array, at: number, length: number, version: ProtocolVersion, uniqueBatchItemId: Uint8Array | undefined): PlainGet | undefined {
  for (let i = at; i < at + length; i++) if (b[i]! >= 0x80) return undefined; // beyond ASCII: the general path's strict UTF-8 decoder
  const uid = (b instanceof Buffer ? b : Buffer.from(b.buffer, b.byteOffset, b.length)).toString('latin1', at, at + length);
  return { version, uniqueBatchItemId, uid };
}

/** Whether `b` starts with the bytes of `prefix`. */
function startsWith(b: Uint8Array, prefix: Uint8Array): boolean {
  for (let i = 0; i < prefix.length; i++) if (b[i] !== prefix[i]) return false;
  return true;
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

/** Where a Get response's values go in the bytes of its shape (byte offsets of the values). */
interface Layout {
  bytes: Uint8Array;
  major: number;
  minor: number;
  stamp: number;
  batchId: number;
  secretDataType: number;
  uid: number;
  material: number;
  algorithm: number;
  length: number;
}

/**
 * The layouts of the response shapes seen (object type, which attributes, the lengths of the
 * identifier, the material and the batch item id): the tags, types, lengths and zero padding are
 * the same for every response of a shape — every AES-256 key under a UUID — so they are copied,
 * and only the values written (bundled, a 280-byte response: 0.57–0.74 µs against 1.05–1.37 µs
 * written field by field, same run). A layout holds no value of any response — the places of the
 * values are zeros — so no key material is kept here. At most LAYOUTS_KEPT.
 */
const layouts = new Map<number, Layout>();
const LAYOUTS_KEPT = 256;
/** Lengths up to this take part in a layout's key (larger ones, rare, are laid out each time). */
const KEYED_LENGTH = 0xffff;

/**
 * Lays out the shape's response with every value zero, noting where the values go (KMIP 1.2
 * §2.1.3 Key Block, §2.2 Managed Objects, §4.11 Get). `algorithm` and `length`: whether the Key
 * Block carries the attribute (a symmetric key's only; writeGetResponse decides).
 */
function layOut(symmetric: boolean, algorithm: boolean, length: boolean, uidLength: number, materialLength: number, batchIdLength: number | undefined): Layout {
  const keyValue = 8 + padTo8(materialLength);
  const keyBlock = 16 + (8 + keyValue) + (algorithm ? 16 : 0) + (length ? 16 : 0);
  const object = (symmetric ? 0 : 16) + 8 + keyBlock;
  const payload = 16 + 8 + padTo8(uidLength) + 8 + object;
  const batchId = batchIdLength === undefined ? 0 : 8 + padTo8(batchIdLength);
  const item = 16 + batchId + 16 + 8 + payload;
  const o = new Uint8Array(8 + 80 + 8 + item);
  const at = { major: 0, minor: 0, stamp: 0, batchId: -1, secretDataType: -1, uid: 0, material: 0, algorithm: -1, length: -1 };
  let next = putHeader(o, 0, Tag.ResponseMessage, ItemType.Structure, 80 + 8 + item);
  next = putHeader(o, next, Tag.ResponseHeader, ItemType.Structure, 72);
  next = putHeader(o, next, Tag.ProtocolVersion, ItemType.Structure, 32);
  at.major = putHeader(o, next, Tag.ProtocolVersionMajor, ItemType.Integer, 4);
  at.minor = putHeader(o, at.major + 8, Tag.ProtocolVersionMinor, ItemType.Integer, 4);
  at.stamp = putHeader(o, at.minor + 8, Tag.TimeStamp, ItemType.DateTime, 8);
  next = putFourByte(o, at.stamp + 8, Tag.BatchCount, ItemType.Integer, 1);
  next = putHeader(o, next, Tag.BatchItem, ItemType.Structure, item);
  next = putFourByte(o, next, Tag.Operation, ItemType.Enumeration, Operation.Get);
  if (batchIdLength !== undefined) {
    at.batchId = putHeader(o, next, Tag.UniqueBatchItemID, ItemType.ByteString, batchIdLength);
    next = at.batchId + padTo8(batchIdLength);
  }
  next = putFourByte(o, next, Tag.ResultStatus, ItemType.Enumeration, ResultStatus.Success);
  next = putHeader(o, next, Tag.ResponsePayload, ItemType.Structure, payload);
  next = putFourByte(o, next, Tag.ObjectType, ItemType.Enumeration, symmetric ? ObjectType.SymmetricKey : ObjectType.SecretData);
  at.uid = putHeader(o, next, Tag.UniqueIdentifier, ItemType.TextString, uidLength);
  next = putHeader(o, at.uid + padTo8(uidLength), symmetric ? Tag.SymmetricKey : Tag.SecretData, ItemType.Structure, object);
  if (!symmetric) {
    at.secretDataType = putHeader(o, next, Tag.SecretDataType, ItemType.Enumeration, 4);
    next = at.secretDataType + 8;
  }
  next = putHeader(o, next, Tag.KeyBlock, ItemType.Structure, keyBlock);
  next = putFourByte(o, next, Tag.KeyFormatType, ItemType.Enumeration, symmetric ? KeyFormatType.Raw : KeyFormatType.Opaque);
  next = putHeader(o, next, Tag.KeyValue, ItemType.Structure, keyValue);
  at.material = putHeader(o, next, Tag.KeyMaterial, ItemType.ByteString, materialLength);
  next = at.material + padTo8(materialLength);
  if (algorithm) {
    at.algorithm = putHeader(o, next, Tag.CryptographicAlgorithm, ItemType.Enumeration, 4);
    next = at.algorithm + 8;
  }
  if (length) {
    at.length = putHeader(o, next, Tag.CryptographicLength, ItemType.Integer, 4);
    next = at.length + 8;
  }
  if (next !== o.length) throw new Error(`Get response layout wrote ${next} bytes, sized ${o.length}`); // the sizes above and the writes agree
  return { bytes: o, ...at };
}

/**
 * The Success Response Message of a Get (what buildResponseMessage and keyPayload make), as a
 * Buffer the socket writes as it is, or undefined for an object keyPayload does not answer from
 * memory. `uid` is ASCII (readPlainGet).
 */
export function writeGetResponse(get: PlainGet, key: CachedKey, now: number = Date.now()): Buffer | undefined {
  const { metadata } = key;
  const symmetric = metadata.objectType === ObjectType.SymmetricKey;
  if (!symmetric && !(metadata.objectType === ObjectType.SecretData && metadata.secretDataType !== undefined)) return undefined;
  const algorithm = symmetric && metadata.algorithm !== undefined;
  const length = symmetric && metadata.length !== undefined;
  const batchId = get.uniqueBatchItemId;
  const layout = layoutFor(symmetric, algorithm, length, get.uid.length, materialLength(key), batchId?.length);
  const o = allocZeroedBuffer(layout.bytes.length);
  o.set(layout.bytes);
  putU32(o, layout.major, get.version.major);
  putU32(o, layout.minor, get.version.minor);
  const seconds = Math.floor(now / 1000);
  putU32(o, layout.stamp, Math.floor(seconds / 2 ** 32));
  putU32(o, layout.stamp + 4, seconds >>> 0);
  if (batchId !== undefined) o.set(batchId, layout.batchId);
  if (!symmetric) putU32(o, layout.secretDataType, metadata.secretDataType!);
  for (let i = 0; i < get.uid.length; i++) o[layout.uid + i] = get.uid.charCodeAt(i);
  copyMaterial(key, o, layout.material);
  if (algorithm) putU32(o, layout.algorithm, metadata.algorithm!);
  if (length) putU32(o, layout.length, metadata.length!);
  return o;
}

function layoutFor(symmetric: boolean, algorithm: boolean, length: boolean, uidLength: number, materialLength: number, batchIdLength: number | undefined): Layout {
  if (uidLength > KEYED_LENGTH || materialLength > KEYED_LENGTH || (batchIdLength ?? 0) >= KEYED_LENGTH) return layOut(symmetric, algorithm, length, uidLength, materialLength, batchIdLength);
  // One number per shape: the three flags, and each length in 16 bits (the batch item id's +1, 0 when there is none): < 2^51.
  const shape = (((batchIdLength === undefined ? 0 : batchIdLength + 1) * 0x10000 + uidLength) * 0x10000 + materialLength) * 8 + (symmetric ? 4 : 0) + (algorithm ? 2 : 0) + (length ? 1 : 0);
  let layout = layouts.get(shape);
  if (layout === undefined) {
    if (layouts.size >= LAYOUTS_KEPT) layouts.clear();
    layout = layOut(symmetric, algorithm, length, uidLength, materialLength, batchIdLength);
    layouts.set(shape, layout);
  }
  return layout;
}
