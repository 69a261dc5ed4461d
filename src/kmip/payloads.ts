/**
 * Request payloads and response readers for the operations the client speaks (KMIP 1.2 §4,
 * FACTS.md §4.5), fields in the order of the spec tables. A Unique Identifier left out means the
 * ID Placeholder (KMIP 1.2 §4 intro) — that is how batch pipelines such as Locate+Get work.
 */
import { byteString, enumeration, integer, interval, longInteger, structure, textString, dateTime } from '../ttlv/build.ts';
import { ItemType, type TtlvItem } from '../ttlv/item.ts';
import { attributeItem, readAttribute, type Attribute } from './attributes.ts';
import { protocolVersionItem, readProtocolVersion, type ProtocolVersion } from './message.ts';
import { ObjectType, RevocationReasonCode, Tag } from './tables.generated.ts';
import { childrenOf, findChild, findChildren, invalidMessage, optionalValue, requiredChild, requiredValue } from './tree.ts';

function uid(uniqueIdentifier: string | undefined): TtlvItem[] {
  return uniqueIdentifier === undefined ? [] : [textString(Tag.UniqueIdentifier, uniqueIdentifier)];
}

function templateAttribute(attributes: readonly Attribute[]): TtlvItem {
  return structure(Tag.TemplateAttribute, attributes.map(attributeItem));
}

// ---------------------------------------------------------------------------------------------
// Requests: each returns the children of the Request Payload.

export const payload = {
  /** KMIP 1.2 §4.1 */
  create: (objectType: number, attributes: readonly Attribute[]): TtlvItem[] => [enumeration(Tag.ObjectType, objectType), templateAttribute(attributes)],
  /** KMIP 1.2 §4.3; `object` is the managed object structure (Symmetric Key, Secret Data, …). */
  register: (objectType: number, attributes: readonly Attribute[], object: TtlvItem): TtlvItem[] => [enumeration(Tag.ObjectType, objectType), templateAttribute(attributes), object],
  /** KMIP 1.2 §4.9 (Offset Items is KMIP 1.3). */
  locate: (options: { attributes?: readonly Attribute[]; maximumItems?: number; offsetItems?: number; storageStatusMask?: number }): TtlvItem[] => [
    ...(options.maximumItems !== undefined ? [integer(Tag.MaximumItems, options.maximumItems)] : []),
    ...(options.offsetItems !== undefined ? [integer(Tag.OffsetItems, options.offsetItems)] : []),
    ...(options.storageStatusMask !== undefined ? [integer(Tag.StorageStatusMask, options.storageStatusMask)] : []),
    ...(options.attributes ?? []).map(attributeItem),
  ],
  /** KMIP 1.2 §4.10: bare items, not Attribute structures. */
  check: (uniqueIdentifier?: string, options: { usageLimitsCount?: bigint; cryptographicUsageMask?: number; leaseTime?: number } = {}): TtlvItem[] => [
    ...uid(uniqueIdentifier),
    ...(options.usageLimitsCount !== undefined ? [longInteger(Tag.UsageLimitsCount, options.usageLimitsCount)] : []),
    ...(options.cryptographicUsageMask !== undefined ? [integer(Tag.CryptographicUsageMask, options.cryptographicUsageMask)] : []),
    ...(options.leaseTime !== undefined ? [interval(Tag.LeaseTime, options.leaseTime)] : []),
  ],
  /** KMIP 1.2 §4.11 */
  get: (uniqueIdentifier?: string, options: { keyFormatType?: number; keyWrappingSpecification?: TtlvItem } = {}): TtlvItem[] => [
    ...uid(uniqueIdentifier),
    ...(options.keyFormatType !== undefined ? [enumeration(Tag.KeyFormatType, options.keyFormatType)] : []),
    ...(options.keyWrappingSpecification ? [options.keyWrappingSpecification] : []),
  ],
  /** KMIP 1.2 §4.12: no names means all attributes. */
  getAttributes: (uniqueIdentifier?: string, names: readonly string[] = []): TtlvItem[] => [...uid(uniqueIdentifier), ...names.map((n) => textString(Tag.AttributeName, n))],
  getAttributeList: (uniqueIdentifier?: string): TtlvItem[] => uid(uniqueIdentifier),
  addAttribute: (uniqueIdentifier: string | undefined, attribute: Attribute): TtlvItem[] => [...uid(uniqueIdentifier), attributeItem({ name: attribute.name, ...(attribute.value && { value: attribute.value }) })],
  modifyAttribute: (uniqueIdentifier: string | undefined, attribute: Attribute): TtlvItem[] => [...uid(uniqueIdentifier), attributeItem(attribute)],
  deleteAttribute: (uniqueIdentifier: string | undefined, name: string, index?: number): TtlvItem[] => [
    ...uid(uniqueIdentifier),
    textString(Tag.AttributeName, name),
    ...(index !== undefined ? [integer(Tag.AttributeIndex, index)] : []),
  ],
  obtainLease: (uniqueIdentifier?: string): TtlvItem[] => uid(uniqueIdentifier),
  /** KMIP 1.2 §4.18: Usage Limits Count is required. */
  getUsageAllocation: (uniqueIdentifier: string | undefined, usageLimitsCount: bigint): TtlvItem[] => [...uid(uniqueIdentifier), longInteger(Tag.UsageLimitsCount, usageLimitsCount)],
  activate: (uniqueIdentifier?: string): TtlvItem[] => uid(uniqueIdentifier),
  /** KMIP 1.2 §4.20: Compromise Occurrence Date is required with Key Compromise. */
  revoke: (uniqueIdentifier: string | undefined, reason: number, options: { message?: string; compromiseOccurrenceDate?: Date } = {}): TtlvItem[] => {
    const occurred = options.compromiseOccurrenceDate ?? (reason === RevocationReasonCode.KeyCompromise || reason === RevocationReasonCode.CACompromise ? new Date() : undefined);
    return [
      ...uid(uniqueIdentifier),
      structure(Tag.RevocationReason, [enumeration(Tag.RevocationReasonCode, reason), ...(options.message ? [textString(Tag.RevocationMessage, options.message)] : [])]),
      ...(occurred ? [dateTime(Tag.CompromiseOccurrenceDate, occurred)] : []),
    ];
  },
  destroy: (uniqueIdentifier?: string): TtlvItem[] => uid(uniqueIdentifier),
  query: (functions: readonly number[]): TtlvItem[] => functions.map((f) => enumeration(Tag.QueryFunction, f)),
  discoverVersions: (versions: readonly ProtocolVersion[]): TtlvItem[] => versions.map(protocolVersionItem),
  poll: (correlation: Uint8Array): TtlvItem[] => [byteString(Tag.AsynchronousCorrelationValue, correlation)],
  cancel: (correlation: Uint8Array): TtlvItem[] => [byteString(Tag.AsynchronousCorrelationValue, correlation)],
};

// ---------------------------------------------------------------------------------------------
// Responses: each takes the Response Payload Structure.

export function readUniqueIdentifier(payload: TtlvItem): string {
  return requiredValue(payload, Tag.UniqueIdentifier, ItemType.TextString);
}

export interface LocateResult {
  uniqueIdentifiers: string[];
  /** KMIP 1.3: how many objects matched in all, when the server says. */
  locatedItems: number | undefined;
}

export function readLocate(payload: TtlvItem): LocateResult {
  return {
    uniqueIdentifiers: findChildren(payload, Tag.UniqueIdentifier).map((c) => {
      if (c.type !== ItemType.TextString) throw invalidMessage('Unique Identifier in Locate response must be a Text String');
      return c.value;
    }),
    locatedItems: optionalValue(payload, Tag.LocatedItems, ItemType.Integer),
  };
}

export interface GetResult {
  objectType: number;
  uniqueIdentifier: string;
  /** The managed object structure (Symmetric Key, Secret Data, Opaque Object, …). */
  object: TtlvItem;
}

export function readGet(payload: TtlvItem): GetResult {
  const object = childrenOf(payload).find((c) => c.tag !== Tag.ObjectType && c.tag !== Tag.UniqueIdentifier);
  if (!object) throw invalidMessage('Get response carries no managed object');
  return { objectType: requiredValue(payload, Tag.ObjectType, ItemType.Enumeration), uniqueIdentifier: readUniqueIdentifier(payload), object };
}

export function readAttributes(payload: TtlvItem): { uniqueIdentifier: string; attributes: Attribute[] } {
  return { uniqueIdentifier: readUniqueIdentifier(payload), attributes: findChildren(payload, Tag.Attribute).map(readAttribute) };
}

export function readAttributeList(payload: TtlvItem): { uniqueIdentifier: string; names: string[] } {
  return {
    uniqueIdentifier: readUniqueIdentifier(payload),
    names: findChildren(payload, Tag.AttributeName).map((c) => String(c.value)),
  };
}

export function readSingleAttribute(payload: TtlvItem): { uniqueIdentifier: string; attribute: Attribute } {
  return { uniqueIdentifier: readUniqueIdentifier(payload), attribute: readAttribute(requiredChild(payload, Tag.Attribute)) };
}

export function readLease(payload: TtlvItem): { uniqueIdentifier: string; leaseTime: number; lastChangeDate: bigint } {
  return {
    uniqueIdentifier: readUniqueIdentifier(payload),
    leaseTime: requiredValue(payload, Tag.LeaseTime, ItemType.Interval),
    lastChangeDate: requiredValue(payload, Tag.LastChangeDate, ItemType.DateTime),
  };
}

export interface CheckResult {
  /** Absent when the server denied the check (KMIP 1.2 §4.10). */
  uniqueIdentifier: string | undefined;
  usageLimitsCount: bigint | undefined;
  cryptographicUsageMask: number | undefined;
  leaseTime: number | undefined;
}

export function readCheck(payload: TtlvItem): CheckResult {
  return {
    uniqueIdentifier: optionalValue(payload, Tag.UniqueIdentifier, ItemType.TextString),
    usageLimitsCount: optionalValue(payload, Tag.UsageLimitsCount, ItemType.LongInteger),
    cryptographicUsageMask: optionalValue(payload, Tag.CryptographicUsageMask, ItemType.Integer),
    leaseTime: optionalValue(payload, Tag.LeaseTime, ItemType.Interval),
  };
}

export interface QueryResult {
  operations: number[];
  objectTypes: number[];
  vendorIdentification: string | undefined;
}

export function readQuery(payload: TtlvItem): QueryResult {
  return {
    operations: findChildren(payload, Tag.Operation).map((c) => Number(c.value)),
    objectTypes: findChildren(payload, Tag.ObjectType).map((c) => Number(c.value)),
    vendorIdentification: optionalValue(payload, Tag.VendorIdentification, ItemType.TextString),
  };
}

export function readDiscoverVersions(payload: TtlvItem): ProtocolVersion[] {
  return findChildren(payload, Tag.ProtocolVersion).map(readProtocolVersion);
}

export function readCancel(payload: TtlvItem): { cancellationResult: number } {
  return { cancellationResult: requiredValue(payload, Tag.CancellationResult, ItemType.Enumeration) };
}

/** Object Types of the managed object structures (KMIP 1.2 §2.2), by tag. */
const OBJECT_TYPE_BY_TAG: Readonly<Record<number, number>> = {
  [Tag.Certificate]: ObjectType.Certificate, [Tag.SymmetricKey]: ObjectType.SymmetricKey, [Tag.PublicKey]: ObjectType.PublicKey,
  [Tag.PrivateKey]: ObjectType.PrivateKey, [Tag.SplitKey]: ObjectType.SplitKey, [Tag.SecretData]: ObjectType.SecretData, [Tag.OpaqueObject]: ObjectType.OpaqueObject,
};

/** The Object Type of a managed object structure with this tag; undefined when the tag is not one. */
export function objectTypeOfTag(tag: number): number | undefined {
  return OBJECT_TYPE_BY_TAG[tag];
}

/** The Key Block of a key or Secret Data object (KMIP 1.2 §2.2). */
export function keyBlockOf(object: TtlvItem): TtlvItem {
  return requiredChild(object, Tag.KeyBlock);
}

/** Raw key bytes of an unwrapped Key Block: Key Material as Byte String, or Transparent Symmetric Key. */
export function keyMaterialOf(keyBlock: TtlvItem): Uint8Array {
  const keyValue = requiredChild(keyBlock, Tag.KeyValue);
  if (keyValue.type !== ItemType.Structure) throw invalidMessage('Key Value is wrapped (a Byte String); unwrap it first');
  const material = requiredChild(keyValue, Tag.KeyMaterial);
  if (material.type === ItemType.ByteString) return material.value;
  const key = findChild(material, Tag.Key);
  if (key?.type === ItemType.ByteString) return key.value;
  throw invalidMessage('Key Material is neither raw bytes nor a Transparent Symmetric Key');
}
