/**
 * What the development server does for each operation (KMIP 1.2 §4; result reasons of §11 as
 * FACTS.md §5.14 lists them). Each handler takes the Request Payload and returns the children of
 * the Response Payload, or throws an OperationFailure with the spec's result reason.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { aesKeyWrap } from '../aes.ts';
import { attributeItem, readAttribute, type Attribute } from '../kmip/attributes.ts';
import { protocolVersionItem, readProtocolVersion, type ProtocolVersion } from '../kmip/message.ts';
import {
  ATTRIBUTE_SPECS,
  CryptographicAlgorithm,
  CryptographicUsageMask,
  EncodingOption,
  HashingAlgorithm,
  KeyFormatType,
  LinkType,
  ObjectType,
  Operation,
  QueryFunction,
  ResultReason,
  RevocationReasonCode,
  State,
  Tag,
  WrappingMethod,
} from '../kmip/tables.generated.ts';
import { childrenOf, findChild, findChildren, optionalValue, requiredChild } from '../kmip/tree.ts';
import { boolean, byteString, dateTime, enumeration, integer, interval, longInteger, structure, textString } from '../ttlv/build.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { ItemType, type TtlvItem } from '../ttlv/item.ts';
import type { ManagedObject, ObjectStore } from './object-store.ts';

/** A failed operation: the result reason (KMIP 1.2 §11) and a message for the client. */
export class OperationFailure extends Error {
  constructor(
    readonly reason: number,
    message: string,
  ) {
    super(message);
  }
}

const fail = (reason: number, message: string): never => {
  throw new OperationFailure(reason, message);
};

export interface ServerContext {
  store: ObjectStore;
  now: () => Date;
  /** The ID Placeholder of the current batch (KMIP 1.2 §4 intro). */
  placeholder: string | undefined;
  /** Lease Time granted by Obtain Lease, seconds; 0 means no limit. */
  leaseSeconds: number;
  versions: readonly ProtocolVersion[];
  /** The protocol version of the request being answered. */
  requestVersion: ProtocolVersion;
  /** Called with each changed object and the attributes that changed (for Notify). */
  onChange?: (object: ManagedObject, changed: Attribute[]) => void;
}

const SUPPORTED_OPERATIONS = [
  Operation.Create, Operation.Register, Operation.ReKey, Operation.Locate, Operation.Check, Operation.Get, Operation.GetAttributes,
  Operation.GetAttributeList, Operation.AddAttribute, Operation.ModifyAttribute, Operation.DeleteAttribute,
  Operation.ObtainLease, Operation.GetUsageAllocation, Operation.Activate, Operation.Revoke, Operation.Destroy,
  Operation.Query, Operation.Cancel, Operation.Poll, Operation.DiscoverVersions,
];

/** Attributes only the server sets (KMIP 1.2 §3, "Modifiable by client: No"). */
const SERVER_ONLY = new Set([
  'Unique Identifier', 'Object Type', 'Cryptographic Algorithm', 'Cryptographic Length', 'State', 'Initial Date',
  'Last Change Date', 'Lease Time', 'Digest', 'Destroy Date', 'Compromise Date', 'Compromise Occurrence Date',
  'Revocation Reason', 'Archive Date', 'Fresh', 'Key Value Present', 'Original Creation Date',
]);
const MULTI_INSTANCE = new Set(ATTRIBUTE_SPECS.filter(([, , multi]) => multi).map(([name]) => name));
/** Attributes whose value changes the object's state or use, kept in step by the server. */
const DATE_ATTRIBUTES = new Set(['Activation Date', 'Process Start Date', 'Protect Stop Date', 'Deactivation Date']);

function isCustom(name: string): boolean {
  return name.startsWith('x-') || name.startsWith('y-');
}

function seconds(date: Date): bigint {
  return BigInt(Math.floor(date.getTime() / 1000));
}

// ---------------------------------------------------------------------------------------------
// Objects and their attributes

function first(object: ManagedObject, name: string): TtlvItem | undefined {
  return object.attributes.get(name)?.[0];
}

function setAttribute(object: ManagedObject, name: string, value: TtlvItem, index = 0): void {
  const values = object.attributes.get(name) ?? [];
  values[index] = { ...value, tag: Tag.AttributeValue };
  object.attributes.set(name, values);
}

function stateOf(object: ManagedObject): number {
  return Number(first(object, 'State')?.value ?? State.PreActive);
}

/** Date-driven transitions (KMIP 1.2 §3.22): an Activation or Deactivation Date that has passed. */
function applyDates(object: ManagedObject, now: bigint): void {
  const activation = first(object, 'Activation Date')?.value as bigint | undefined;
  const deactivation = first(object, 'Deactivation Date')?.value as bigint | undefined;
  if (stateOf(object) === State.PreActive && activation !== undefined && activation <= now) setAttribute(object, 'State', enumeration(0, State.Active));
  if (stateOf(object) === State.Active && deactivation !== undefined && deactivation <= now) setAttribute(object, 'State', enumeration(0, State.Deactivated));
}

function touch(context: ServerContext, object: ManagedObject, changed: Attribute[]): void {
  setAttribute(object, 'Last Change Date', dateTime(0, seconds(context.now())));
  context.onChange?.(object, [...changed, { name: 'Last Change Date', value: first(object, 'Last Change Date')! }]);
}

/** The object a payload names, or the ID Placeholder's when it names none. */
function target(context: ServerContext, payload: TtlvItem, options: { allowDestroyed?: boolean } = {}): ManagedObject {
  const uid = optionalValue(payload, Tag.UniqueIdentifier, ItemType.TextString) ?? context.placeholder;
  if (uid === undefined) return fail(ResultReason.ItemNotFound, 'no Unique Identifier and no ID Placeholder');
  const object = context.store.get(uid);
  if (!object) return fail(ResultReason.ItemNotFound, `Could not locate object: ${uid}`);
  applyDates(object, seconds(context.now()));
  const state = stateOf(object);
  if (!options.allowDestroyed && (state === State.Destroyed || state === State.DestroyedCompromised)) {
    return fail(ResultReason.ItemNotFound, `Could not locate object: ${uid} (destroyed)`);
  }
  return object;
}

function keyBlock(object: ManagedObject): TtlvItem | undefined {
  return findChild(object.object, Tag.KeyBlock);
}

function keyBytes(object: ManagedObject): Uint8Array {
  const block = keyBlock(object);
  const material = block && findChild(requiredChild(block, Tag.KeyValue), Tag.KeyMaterial);
  if (material?.type !== ItemType.ByteString) return fail(ResultReason.IllegalOperation, `${object.uid} has no raw key material`);
  return material.value;
}

/** Sets the attributes every new object gets (KMIP 1.2 §3), then the client's, in order. */
function newObject(context: ServerContext, objectType: number, object: TtlvItem, clientAttributes: Attribute[], origin: 'generated' | 'registered'): ManagedObject {
  const now = seconds(context.now());
  const created: ManagedObject = { uid: context.store.allocateUid(), objectType, object, attributes: new Map(), serial: 0 };
  setAttribute(created, 'Unique Identifier', textString(0, created.uid));
  setAttribute(created, 'Object Type', enumeration(0, objectType));
  const block = keyBlock(created);
  if (block) {
    const algorithm = optionalValue(block, Tag.CryptographicAlgorithm, ItemType.Enumeration);
    const length = optionalValue(block, Tag.CryptographicLength, ItemType.Integer);
    if (algorithm !== undefined) setAttribute(created, 'Cryptographic Algorithm', enumeration(0, algorithm));
    if (length !== undefined) setAttribute(created, 'Cryptographic Length', integer(0, length));
  }
  setAttribute(created, 'State', enumeration(0, State.PreActive));
  setAttribute(created, 'Initial Date', dateTime(0, now));
  // KMIP 1.1 §3.34: an object is Fresh until it is first served to a client.
  setAttribute(created, 'Fresh', boolean(0, true));
  // KMIP 1.2 §3.43: when a key made here was created; a registered object's original creation
  // date is not known to the server (the client may supply it).
  if (origin === 'generated') setAttribute(created, 'Original Creation Date', dateTime(0, now));
  const digest = digestOf(created);
  if (digest) setAttribute(created, 'Digest', digest);
  for (const attribute of clientAttributes) {
    if (attribute.value === undefined) fail(ResultReason.InvalidField, `attribute ${attribute.name} has no value`);
    if (['Cryptographic Algorithm', 'Cryptographic Length'].includes(attribute.name)) continue; // taken from the key itself
    if (SERVER_ONLY.has(attribute.name) && !(origin === 'registered' && attribute.name === 'Original Creation Date')) fail(ResultReason.InvalidField, `${attribute.name} is set by the server`);
    const values = created.attributes.get(attribute.name) ?? [];
    if (values.length > 0 && !MULTI_INSTANCE.has(attribute.name) && !isCustom(attribute.name)) fail(ResultReason.InvalidField, `${attribute.name} given twice`);
    setAttribute(created, attribute.name, normalizeValue(attribute.name, attribute.value!), values.length);
  }
  if (!created.attributes.has('Cryptographic Usage Mask') && objectType !== ObjectType.OpaqueObject) {
    fail(ResultReason.InvalidField, 'Cryptographic Usage Mask is required (KMIP 1.2 Table 138)');
  }
  setAttribute(created, 'Last Change Date', dateTime(0, now));
  applyDates(created, now);
  return context.store.add(created);
}

/**
 * KMIP 1.2 §3.17: the server keeps a SHA-256 Digest of a key's material (here its Raw bytes),
 * so that clients can tell keys apart without seeing them.
 */
function digestOf(object: ManagedObject): TtlvItem | undefined {
  const block = keyBlock(object);
  const material = block && findChild(requiredChild(block, Tag.KeyValue), Tag.KeyMaterial);
  if (material?.type !== ItemType.ByteString) return undefined;
  const format = optionalValue(block!, Tag.KeyFormatType, ItemType.Enumeration) ?? KeyFormatType.Raw;
  return structure(Tag.AttributeValue, [enumeration(Tag.HashingAlgorithm, HashingAlgorithm.SHA_256), byteString(Tag.DigestValue, createHash('sha256').update(material.value).digest()), enumeration(Tag.KeyFormatType, format)]);
}

/** An object's attributes as a peer speaking `version` expects them. */
export function attributesForVersion(object: ManagedObject, version: ProtocolVersion): Attribute[] {
  const kmip10 = version.major === 1 && version.minor === 0;
  return attributeList(object)
    .filter((a) => version.major > 1 || (ATTRIBUTE_MINOR_SINCE.get(a.name) ?? 0) <= version.minor)
    .map((a) => (a.name === 'Digest' && kmip10 ? digestForKmip10(a) : a));
}

/** The KMIP 1.x minor version that introduced each standard attribute (custom ones: 0). */
const ATTRIBUTE_MINOR_SINCE = new Map(ATTRIBUTE_SPECS.map(([name, , , since]) => [name, Number(since.split('.')[1] ?? 0)] as const));

/** KMIP 1.0 has no Key Format Type in a Digest (added in 1.1). */
function digestForKmip10(attribute: Attribute): Attribute {
  const value = attribute.value!;
  return { ...attribute, value: structure(Tag.AttributeValue, childrenOf(value).filter((c) => c.tag !== Tag.KeyFormatType)) };
}

/** Usage Limits Count is the server's: it starts at Total (KMIP 1.2 §3.21). */
function normalizeValue(name: string, value: TtlvItem): TtlvItem {
  if (name !== 'Usage Limits') return value;
  const total = optionalValue(value, Tag.UsageLimitsTotal, ItemType.LongInteger);
  const unit = optionalValue(value, Tag.UsageLimitsUnit, ItemType.Enumeration);
  if (total === undefined || unit === undefined) return fail(ResultReason.InvalidField, 'Usage Limits needs Total and Unit');
  return structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, total), longInteger(Tag.UsageLimitsCount, total), enumeration(Tag.UsageLimitsUnit, unit)]);
}

function attributesOf(payload: TtlvItem): Attribute[] {
  const template = findChild(payload, Tag.TemplateAttribute);
  return template ? findChildren(template, Tag.Attribute).map(readAttribute) : [];
}

/** Every attribute instance of an object, in the order they were set. */
export function attributeList(object: ManagedObject): Attribute[] {
  const out: Attribute[] = [];
  for (const [name, values] of object.attributes) {
    values.forEach((value, index) => out.push({ name, ...(index > 0 && { index }), value }));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Key generation and wrapping

const KEY_LENGTHS: Readonly<Record<number, readonly number[]>> = {
  [CryptographicAlgorithm.AES]: [128, 192, 256],
  [CryptographicAlgorithm.HMAC_SHA256]: [256],
  // 3DES: 168 effective bits in 24 bytes (the OASIS symmetric-key profile cases use it).
  [CryptographicAlgorithm.DES3]: [168],
};

function keyMaterialBytes(algorithm: number, lengthBits: number): number {
  return algorithm === CryptographicAlgorithm.DES3 ? 24 : lengthBits / 8;
}

function symmetricKey(algorithm: number, lengthBits: number, material: Uint8Array): TtlvItem {
  return structure(Tag.SymmetricKey, [
    structure(Tag.KeyBlock, [
      enumeration(Tag.KeyFormatType, KeyFormatType.Raw),
      structure(Tag.KeyValue, [byteString(Tag.KeyMaterial, material)]),
      enumeration(Tag.CryptographicAlgorithm, algorithm),
      integer(Tag.CryptographicLength, lengthBits),
    ]),
  ]);
}

/**
 * Get with a Key Wrapping Specification (KMIP 1.2 §2.1.5–2.1.6): Encrypt with AES key wrap
 * (RFC 3394) over the raw key (No Encoding) or over the TTLV Key Value with the named attributes;
 * MAC/sign with HMAC-SHA256 over the TTLV encoding of the plaintext Key Value.
 */
function wrapKeyBlock(context: ServerContext, object: ManagedObject, specification: TtlvItem): TtlvItem {
  const block = keyBlock(object) ?? fail(ResultReason.IllegalOperation, 'only keys and secret data can be wrapped');
  const method = optionalValue(specification, Tag.WrappingMethod, ItemType.Enumeration);
  const encoding = optionalValue(specification, Tag.EncodingOption, ItemType.Enumeration);
  const names = findChildren(specification, Tag.AttributeName).map((n) => String(n.value));
  const material = keyBytes(object);
  const wrappedAttributes = names.flatMap((name) => (object.attributes.get(name) ?? []).map((value, index) => attributeItem({ name, ...(index > 0 && { index }), value })));
  const plainKeyValue = structure(Tag.KeyValue, [byteString(Tag.KeyMaterial, material), ...wrappedAttributes]);
  const info = findChild(specification, method === WrappingMethod.Encrypt ? Tag.EncryptionKeyInformation : Tag.MACSignatureKeyInformation);
  const keyUid = info && optionalValue(info, Tag.UniqueIdentifier, ItemType.TextString);
  const wrappingKey = keyUid === undefined ? fail(ResultReason.InvalidField, 'the wrapping specification names no key') : context.store.get(keyUid);
  if (!wrappingKey) return fail(ResultReason.ItemNotFound, `wrapping key ${keyUid} not found`);
  const keyAlgorithm = first(wrappingKey, 'Cryptographic Algorithm')?.value;
  const keyMask = Number(first(wrappingKey, 'Cryptographic Usage Mask')?.value ?? 0);
  const rest = block.type === ItemType.Structure ? block.value.filter((c) => c.tag !== Tag.KeyValue && c.tag !== Tag.KeyWrappingData) : [];
  const [format, ...tail] = rest;

  if (method === WrappingMethod.Encrypt) {
    if (keyAlgorithm !== CryptographicAlgorithm.AES || (keyMask & CryptographicUsageMask.WrapKey) === 0) fail(ResultReason.PermissionDenied, `${keyUid} is not an AES key usable to wrap keys`);
    if (encoding === EncodingOption.NoEncoding && names.length > 0) fail(ResultReason.EncodingOptionError, 'No Encoding cannot carry attributes');
    const plaintext = encoding === EncodingOption.NoEncoding ? material : encodeTtlv(plainKeyValue);
    const wrapped = aesKeyWrap(keyBytes(wrappingKey), plaintext);
    const wrappingData = structure(Tag.KeyWrappingData, [enumeration(Tag.WrappingMethod, WrappingMethod.Encrypt), info!, ...(encoding !== undefined ? [enumeration(Tag.EncodingOption, encoding)] : [])]);
    return structure(Tag.KeyBlock, [format!, byteString(Tag.KeyValue, wrapped), ...tail, wrappingData]);
  }
  if (method === WrappingMethod.MACSign) {
    if (keyAlgorithm !== CryptographicAlgorithm.HMAC_SHA256 || (keyMask & CryptographicUsageMask.MACGenerate) === 0) fail(ResultReason.PermissionDenied, `${keyUid} is not an HMAC-SHA256 key usable to generate MACs`);
    const mac = createHmac('sha256', keyBytes(wrappingKey)).update(encodeTtlv(plainKeyValue)).digest();
    const wrappingData = structure(Tag.KeyWrappingData, [enumeration(Tag.WrappingMethod, WrappingMethod.MACSign), info!, byteString(Tag.MACSignature, mac)]);
    return structure(Tag.KeyBlock, [format!, plainKeyValue, ...tail, wrappingData]);
  }
  return fail(ResultReason.FeatureNotSupported, 'only Encrypt and MAC/sign wrapping are supported');
}

// ---------------------------------------------------------------------------------------------
// Locate matching (KMIP 1.2 §4.9)

function matches(object: ManagedObject, wanted: Attribute): boolean {
  const have = object.attributes.get(wanted.name) ?? [];
  if (wanted.value === undefined) return have.length > 0;
  const wantedBytes = Buffer.from(encodeTtlv(wanted.value)).toString('hex');
  return have.some((value) => {
    if (wanted.name === 'Cryptographic Usage Mask') return ((Number(value.value) & Number(wanted.value!.value)) >>> 0) === Number(wanted.value!.value) >>> 0;
    return Buffer.from(encodeTtlv(value)).toString('hex') === wantedBytes;
  });
}

// ---------------------------------------------------------------------------------------------
// Handlers

type Handler = (context: ServerContext, payload: TtlvItem) => TtlvItem[];

const handlers: Partial<Record<number, Handler>> = {
  [Operation.DiscoverVersions]: (context, payload) => {
    if (context.requestVersion.major === 1 && context.requestVersion.minor === 0) fail(ResultReason.OperationNotSupported, 'DiscoverVersions is not supported by KMIP 1.0');
    const asked = findChildren(payload, Tag.ProtocolVersion).map(readProtocolVersion);
    const common = asked.length === 0 ? context.versions : asked.filter((v) => context.versions.some((s) => s.major === v.major && s.minor === v.minor));
    return common.map(protocolVersionItem);
  },

  [Operation.Query]: (_context, payload) => {
    const functions = findChildren(payload, Tag.QueryFunction).map((f) => Number(f.value));
    const out: TtlvItem[] = [];
    if (functions.includes(QueryFunction.QueryOperations)) out.push(...SUPPORTED_OPERATIONS.map((op) => enumeration(Tag.Operation, op)));
    if (functions.includes(QueryFunction.QueryObjects)) out.push(...[ObjectType.SymmetricKey, ObjectType.SecretData, ObjectType.OpaqueObject].map((t) => enumeration(Tag.ObjectType, t)));
    if (functions.includes(QueryFunction.QueryServerInformation)) out.push(textString(Tag.VendorIdentification, 'kmip-edge development server'));
    return out;
  },

  [Operation.Create]: (context, payload) => {
    const objectType = optionalValue(payload, Tag.ObjectType, ItemType.Enumeration);
    if (objectType !== ObjectType.SymmetricKey) return fail(ResultReason.InvalidField, 'the development server creates symmetric keys only');
    const attributes = attributesOf(payload);
    const algorithm = attributes.find((a) => a.name === 'Cryptographic Algorithm')?.value?.value as number | undefined;
    const length = attributes.find((a) => a.name === 'Cryptographic Length')?.value?.value as number | undefined;
    if (algorithm === undefined || !KEY_LENGTHS[algorithm]) return fail(ResultReason.InvalidField, 'Cryptographic Algorithm must be AES or HMAC-SHA256');
    if (length === undefined || !KEY_LENGTHS[algorithm]!.includes(length)) return fail(ResultReason.InvalidField, `Cryptographic Length must be one of ${KEY_LENGTHS[algorithm]!.join(', ')}`);
    const created = newObject(context, objectType, symmetricKey(algorithm, length, randomBytes(keyMaterialBytes(algorithm, length))), attributes, 'generated');
    context.placeholder = created.uid;
    return [enumeration(Tag.ObjectType, objectType), textString(Tag.UniqueIdentifier, created.uid)];
  },

  [Operation.Register]: (context, payload) => {
    const objectType = optionalValue(payload, Tag.ObjectType, ItemType.Enumeration);
    const object = childrenOf(payload).find((c) => c.tag !== Tag.ObjectType && c.tag !== Tag.TemplateAttribute);
    const expected: Record<number, number> = { [ObjectType.SymmetricKey]: Tag.SymmetricKey, [ObjectType.SecretData]: Tag.SecretData, [ObjectType.OpaqueObject]: Tag.OpaqueObject };
    if (objectType === undefined || !object || expected[objectType] !== object.tag) return fail(ResultReason.InvalidField, 'register a Symmetric Key, Secret Data or Opaque Object matching its Object Type');
    const created = newObject(context, objectType, object, attributesOf(payload), 'registered');
    context.placeholder = created.uid;
    return [textString(Tag.UniqueIdentifier, created.uid)];
  },

  /**
   * KMIP 1.2 §4.4 Re-key: a new key of the same kind replaces the existing one. Names move to the
   * new key, usage limits start afresh, dates keep their distance from the Initial Date (or the
   * given Offset), and Replacement / Replaced Object Links join the two.
   */
  [Operation.ReKey]: (context, payload) => {
    const old = target(context, payload);
    const algorithm = Number(first(old, 'Cryptographic Algorithm')?.value);
    const length = Number(first(old, 'Cryptographic Length')?.value);
    if (old.objectType !== ObjectType.SymmetricKey || !KEY_LENGTHS[algorithm]?.includes(length)) return fail(ResultReason.IllegalOperation, `${old.uid} cannot be re-keyed here`);
    const now = seconds(context.now());
    const offset = optionalValue(payload, Tag.Offset, ItemType.Interval);
    const initial = first(old, 'Initial Date')!.value as bigint;
    const carried: Attribute[] = [];
    for (const name of ['Cryptographic Usage Mask', 'Name', 'Object Group', 'Contact Information', 'Usage Limits', 'Cryptographic Parameters']) {
      for (const value of old.attributes.get(name) ?? []) carried.push({ name, value });
    }
    for (const name of ['Activation Date', 'Process Start Date', 'Protect Stop Date', 'Deactivation Date']) {
      const date = first(old, name)?.value as bigint | undefined;
      if (date === undefined) continue;
      const shift = name === 'Activation Date' && offset !== undefined ? BigInt(offset) : date - initial;
      carried.push({ name, value: dateTime(Tag.AttributeValue, now + shift) });
    }
    carried.push(...attributesOf(payload));
    const created = newObject(context, ObjectType.SymmetricKey, symmetricKey(algorithm, length, randomBytes(keyMaterialBytes(algorithm, length))), carried, 'generated');
    old.attributes.delete('Name');
    setAttribute(old, 'Link', structure(0, [enumeration(Tag.LinkType, LinkType.ReplacementObjectLink), textString(Tag.LinkedObjectIdentifier, created.uid)]), old.attributes.get('Link')?.length ?? 0);
    setAttribute(created, 'Link', structure(0, [enumeration(Tag.LinkType, LinkType.ReplacedObjectLink), textString(Tag.LinkedObjectIdentifier, old.uid)]), created.attributes.get('Link')?.length ?? 0);
    touch(context, old, [{ name: 'Link', value: old.attributes.get('Link')!.at(-1)! }]);
    context.placeholder = created.uid;
    return [textString(Tag.UniqueIdentifier, created.uid)];
  },

  [Operation.Locate]: (context, payload) => {
    const wanted = findChildren(payload, Tag.Attribute).map(readAttribute);
    const maximum = optionalValue(payload, Tag.MaximumItems, ItemType.Integer);
    const offset = optionalValue(payload, Tag.OffsetItems, ItemType.Integer) ?? 0;
    const now = seconds(context.now());
    const found = context.store.all().filter((object) => {
      applyDates(object, now);
      const state = stateOf(object);
      return state !== State.Destroyed && state !== State.DestroyedCompromised && wanted.every((w) => matches(object, w));
    });
    const page = found.slice(offset, maximum === undefined ? undefined : offset + maximum);
    // KMIP 1.2 §4 intro: the placeholder holds a Locate result only when exactly one was found.
    context.placeholder = page.length === 1 ? page[0]!.uid : undefined;
    return [...(optionalValue(payload, Tag.OffsetItems, ItemType.Integer) !== undefined || maximum !== undefined ? [integer(Tag.LocatedItems, found.length)] : []), ...page.map((o) => textString(Tag.UniqueIdentifier, o.uid))];
  },

  [Operation.Get]: (context, payload) => {
    const object = target(context, payload);
    if (first(object, 'Fresh')?.value === true) setAttribute(object, 'Fresh', boolean(0, false));
    const format = optionalValue(payload, Tag.KeyFormatType, ItemType.Enumeration);
    if (format !== undefined && format !== KeyFormatType.Raw && format !== KeyFormatType.Opaque) fail(ResultReason.KeyFormatTypeNotSupported, 'only Raw key format is served');
    const specification = findChild(payload, Tag.KeyWrappingSpecification);
    let managed = object.object;
    if (specification) {
      const wrapped = wrapKeyBlock(context, object, specification);
      managed = { ...object.object, value: childrenOf(object.object).map((c) => (c.tag === Tag.KeyBlock ? wrapped : c)) } as TtlvItem;
    }
    return [enumeration(Tag.ObjectType, object.objectType), textString(Tag.UniqueIdentifier, object.uid), managed];
  },

  [Operation.GetAttributes]: (context, payload) => {
    const object = target(context, payload);
    const names = findChildren(payload, Tag.AttributeName).map((n) => String(n.value));
    if (new Set(names).size !== names.length) fail(ResultReason.InvalidMessage, 'an Attribute Name is asked twice');
    const all = attributesForVersion(object, context.requestVersion);
    const chosen = names.length === 0 ? all : names.flatMap((name) => all.filter((a) => a.name === name));
    return [textString(Tag.UniqueIdentifier, object.uid), ...chosen.map(attributeItem)];
  },

  [Operation.GetAttributeList]: (context, payload) => {
    const object = target(context, payload);
    const names = [...new Set(attributesForVersion(object, context.requestVersion).map((a) => a.name))];
    return [textString(Tag.UniqueIdentifier, object.uid), ...names.map((name) => textString(Tag.AttributeName, name))];
  },

  [Operation.AddAttribute]: (context, payload) => {
    const object = target(context, payload);
    const attribute = readAttribute(requiredChild(payload, Tag.Attribute));
    if (attribute.index !== undefined) fail(ResultReason.InvalidField, 'Add Attribute takes no Attribute Index');
    if (attribute.value === undefined) fail(ResultReason.InvalidField, 'Add Attribute needs a value');
    if (SERVER_ONLY.has(attribute.name)) fail(ResultReason.PermissionDenied, `${attribute.name} is read-only`);
    const index = object.attributes.get(attribute.name)?.length ?? 0;
    if (index > 0 && !MULTI_INSTANCE.has(attribute.name) && !isCustom(attribute.name)) fail(ResultReason.IllegalOperation, `${attribute.name} already exists`);
    setAttribute(object, attribute.name, normalizeValue(attribute.name, attribute.value!), index);
    if (DATE_ATTRIBUTES.has(attribute.name)) applyDates(object, seconds(context.now()));
    const added = { name: attribute.name, ...(index > 0 && { index }), value: object.attributes.get(attribute.name)![index]! };
    touch(context, object, [added]);
    return [textString(Tag.UniqueIdentifier, object.uid), attributeItem(added)];
  },

  [Operation.ModifyAttribute]: (context, payload) => {
    const object = target(context, payload);
    const attribute = readAttribute(requiredChild(payload, Tag.Attribute));
    if (attribute.value === undefined) fail(ResultReason.InvalidField, 'Modify Attribute needs a value');
    if (SERVER_ONLY.has(attribute.name) || attribute.name === 'Usage Limits') fail(ResultReason.PermissionDenied, `${attribute.name} is read-only`);
    const values = object.attributes.get(attribute.name);
    if (!values) return fail(ResultReason.InvalidField, `${attribute.name} does not exist on ${object.uid}`);
    const index = attribute.index ?? 0;
    if (values[index] === undefined) fail(ResultReason.ItemNotFound, `no instance ${index} of ${attribute.name}`);
    // KMIP 1.2 §3.24: the Activation Date can change only while the object is Pre-Active.
    if (attribute.name === 'Activation Date' && stateOf(object) !== State.PreActive) fail(ResultReason.PermissionDenied, 'the Activation Date of an active object cannot change');
    setAttribute(object, attribute.name, attribute.value!, index);
    if (DATE_ATTRIBUTES.has(attribute.name)) applyDates(object, seconds(context.now()));
    const modified = { name: attribute.name, ...(index > 0 && { index }), value: values[index]! };
    touch(context, object, [modified]);
    return [textString(Tag.UniqueIdentifier, object.uid), attributeItem(modified)];
  },

  [Operation.DeleteAttribute]: (context, payload) => {
    const object = target(context, payload);
    const name = optionalValue(payload, Tag.AttributeName, ItemType.TextString) ?? fail(ResultReason.InvalidMessage, 'Delete Attribute needs an Attribute Name');
    const index = optionalValue(payload, Tag.AttributeIndex, ItemType.Integer) ?? 0;
    if (SERVER_ONLY.has(name) || name === 'Cryptographic Usage Mask') fail(ResultReason.PermissionDenied, `${name} cannot be deleted`);
    const values = object.attributes.get(name);
    const value = values?.[index];
    if (!values || value === undefined) return fail(ResultReason.ItemNotFound, `no instance ${index} of ${name}`);
    values.splice(index, 1);
    if (values.length === 0) object.attributes.delete(name);
    touch(context, object, [{ name, ...(index > 0 && { index }) }]);
    return [textString(Tag.UniqueIdentifier, object.uid), attributeItem({ name, ...(index > 0 && { index }), value })];
  },

  [Operation.Activate]: (context, payload) => {
    const object = target(context, payload);
    if (stateOf(object) !== State.PreActive) fail(ResultReason.PermissionDenied, `${object.uid} is not Pre-Active`);
    setAttribute(object, 'State', enumeration(0, State.Active));
    setAttribute(object, 'Activation Date', dateTime(0, seconds(context.now())));
    touch(context, object, [{ name: 'State', value: first(object, 'State')! }, { name: 'Activation Date', value: first(object, 'Activation Date')! }]);
    return [textString(Tag.UniqueIdentifier, object.uid)];
  },

  [Operation.Revoke]: (context, payload) => {
    const object = target(context, payload, { allowDestroyed: true });
    const reasonItem = requiredChild(payload, Tag.RevocationReason);
    const code = optionalValue(reasonItem, Tag.RevocationReasonCode, ItemType.Enumeration);
    if (code === undefined || code < RevocationReasonCode.Unspecified || code > RevocationReasonCode.PrivilegeWithdrawn) return fail(ResultReason.InvalidField, 'unknown Revocation Reason');
    const state = stateOf(object);
    const now = seconds(context.now());
    const changed: Attribute[] = [];
    if (code === RevocationReasonCode.KeyCompromise || code === RevocationReasonCode.CACompromise) {
      const next = state === State.Destroyed ? State.DestroyedCompromised : State.Compromised;
      if (state === State.DestroyedCompromised || state === State.Compromised) fail(ResultReason.PermissionDenied, `${object.uid} is already compromised`);
      setAttribute(object, 'State', enumeration(0, next));
      setAttribute(object, 'Compromise Date', dateTime(0, now));
      const occurred = optionalValue(payload, Tag.CompromiseOccurrenceDate, ItemType.DateTime);
      setAttribute(object, 'Compromise Occurrence Date', dateTime(0, occurred ?? now));
      changed.push({ name: 'Compromise Date', value: first(object, 'Compromise Date')! });
    } else {
      if (state !== State.Active) fail(ResultReason.PermissionDenied, `${object.uid} is not Active`);
      setAttribute(object, 'State', enumeration(0, State.Deactivated));
      setAttribute(object, 'Deactivation Date', dateTime(0, now));
      changed.push({ name: 'Deactivation Date', value: first(object, 'Deactivation Date')! });
    }
    setAttribute(object, 'Revocation Reason', reasonItem);
    touch(context, object, [{ name: 'State', value: first(object, 'State')! }, ...changed]);
    return [textString(Tag.UniqueIdentifier, object.uid)];
  },

  [Operation.Destroy]: (context, payload) => {
    const object = target(context, payload);
    const state = stateOf(object);
    if (state === State.Active) fail(ResultReason.PermissionDenied, `${object.uid} is Active: revoke it first`);
    setAttribute(object, 'State', enumeration(0, state === State.Compromised ? State.DestroyedCompromised : State.Destroyed));
    setAttribute(object, 'Destroy Date', dateTime(0, seconds(context.now())));
    // The key material goes; the object's metadata stays (KMIP 1.2 §4.21).
    object.object = structure(object.object.tag, []);
    touch(context, object, [{ name: 'State', value: first(object, 'State')! }]);
    return [textString(Tag.UniqueIdentifier, object.uid)];
  },

  [Operation.ObtainLease]: (context, payload) => {
    const object = target(context, payload);
    const state = stateOf(object);
    if (state === State.Compromised) fail(ResultReason.PermissionDenied, `CO is in state Compromised, no lease given`);
    if (state !== State.Active && state !== State.Deactivated) fail(ResultReason.PermissionDenied, `${object.uid} is not usable, no lease given`);
    setAttribute(object, 'Lease Time', interval(0, context.leaseSeconds));
    return [textString(Tag.UniqueIdentifier, object.uid), interval(Tag.LeaseTime, context.leaseSeconds), dateTime(Tag.LastChangeDate, first(object, 'Last Change Date')!.value as bigint)];
  },

  [Operation.GetUsageAllocation]: (context, payload) => {
    const object = target(context, payload);
    const count = optionalValue(payload, Tag.UsageLimitsCount, ItemType.LongInteger) ?? fail(ResultReason.InvalidMessage, 'Usage Limits Count is required');
    const limits = first(object, 'Usage Limits') ?? fail(ResultReason.IllegalOperation, `${object.uid} has no Usage Limits`);
    if (stateOf(object) !== State.Active) fail(ResultReason.PermissionDenied, `${object.uid} is not Active`);
    const protectStop = first(object, 'Protect Stop Date')?.value as bigint | undefined;
    if (protectStop !== undefined && protectStop <= seconds(context.now())) fail(ResultReason.PermissionDenied, 'past the Protect Stop Date');
    const remaining = optionalValue(limits, Tag.UsageLimitsCount, ItemType.LongInteger) ?? 0n;
    if (count <= 0n || count > remaining) fail(ResultReason.PermissionDenied, 'Unable to allocate requested amount');
    const updated = structure(Tag.AttributeValue, childrenOf(limits).map((c) => (c.tag === Tag.UsageLimitsCount ? longInteger(Tag.UsageLimitsCount, remaining - count) : c)));
    setAttribute(object, 'Usage Limits', updated);
    touch(context, object, [{ name: 'Usage Limits', value: updated }]);
    return [textString(Tag.UniqueIdentifier, object.uid)];
  },

  [Operation.Check]: (context, payload) => {
    const object = target(context, payload);
    const count = optionalValue(payload, Tag.UsageLimitsCount, ItemType.LongInteger);
    const mask = optionalValue(payload, Tag.CryptographicUsageMask, ItemType.Integer);
    const lease = optionalValue(payload, Tag.LeaseTime, ItemType.Interval);
    const limits = first(object, 'Usage Limits');
    const remaining = limits && optionalValue(limits, Tag.UsageLimitsCount, ItemType.LongInteger);
    const objectMask = Number(first(object, 'Cryptographic Usage Mask')?.value ?? 0);
    const denied =
      (count !== undefined && remaining !== undefined && count > remaining) ||
      (mask !== undefined && ((objectMask & mask) >>> 0) !== mask >>> 0) ||
      (lease !== undefined && context.leaseSeconds !== 0 && lease > context.leaseSeconds);
    if (denied) {
      context.placeholder = undefined; // KMIP 1.2 §4.10: a denial empties the ID Placeholder
      fail(ResultReason.PermissionDenied, 'Check denied by policy');
    }
    return [textString(Tag.UniqueIdentifier, object.uid)];
  },
};

/** Runs one operation; unknown ones are Operation Not Supported. */
export function runOperation(context: ServerContext, operation: number, payload: TtlvItem): TtlvItem[] {
  const handler = handlers[operation];
  if (!handler) return fail(ResultReason.OperationNotSupported, `operation ${operation} is not supported by the development server`);
  return handler(context, payload);
}

export { SUPPORTED_OPERATIONS };
