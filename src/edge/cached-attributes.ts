/**
 * A cached key's attributes as a local KMIP client reads them (Get Attributes, Get Attribute
 * List; KMIP 1.2 §4.12–4.13): what the cache keeps of a key — never its material — in the
 * request's protocol version (an attribute newer than the version is left out, as a server of
 * that version would not know it).
 */
import type { KeyMetadata } from '../agent/key-cache.ts';
import { nameValue, type Attribute } from '../kmip/attributes.ts';
import type { ProtocolVersion } from '../kmip/message.ts';
import { ATTRIBUTE_SPECS, Tag } from '../kmip/tables.generated.ts';
import { childrenOf } from '../kmip/tree.ts';
import { dateTime, enumeration, integer, structure, textString } from '../ttlv/build.ts';
import { decodeTtlv } from '../ttlv/decode.ts';
import { fromHex } from '../ttlv/hex.ts';
import type { TtlvItem } from '../ttlv/item.ts';

/** Standard attributes the cache keeps (key-cache.ts KeyMetadata); custom `x-`/`y-` ones come besides. */
export const CACHED_ATTRIBUTE_NAMES: ReadonlySet<string> = new Set([
  'Unique Identifier', 'Object Type', 'Cryptographic Algorithm', 'Cryptographic Length', 'Cryptographic Usage Mask', 'Name', 'Object Group', 'State',
  'Activation Date', 'Process Start Date', 'Protect Stop Date', 'Deactivation Date', 'Compromise Date', 'Last Change Date',
]);

const DATES = [
  ['Activation Date', 'activationDate'], ['Process Start Date', 'processStartDate'], ['Protect Stop Date', 'protectStopDate'],
  ['Deactivation Date', 'deactivationDate'], ['Compromise Date', 'compromiseDate'],
] as const;

const value = (item: TtlvItem): TtlvItem => ({ ...item, tag: Tag.AttributeValue });

/** Every attribute the cache holds of the key, standard ones first (in KMIP 1.2 §3 order), then custom ones. */
export function cachedAttributes(meta: KeyMetadata): Attribute[] {
  const out: Attribute[] = [
    { name: 'Unique Identifier', value: value(textString(0, meta.uniqueIdentifier)) },
    ...meta.names.map((name, index) => ({ name: 'Name', ...(index > 0 && { index }), value: nameValue(name) })),
    { name: 'Object Type', value: value(enumeration(0, meta.objectType)) },
  ];
  if (meta.algorithm !== undefined) out.push({ name: 'Cryptographic Algorithm', value: value(enumeration(0, meta.algorithm)) });
  if (meta.length !== undefined) out.push({ name: 'Cryptographic Length', value: value(integer(0, meta.length)) });
  if (meta.usageMask !== undefined) out.push({ name: 'Cryptographic Usage Mask', value: value(integer(0, meta.usageMask)) });
  out.push({ name: 'State', value: value(enumeration(0, meta.state)) });
  for (const [name, field] of DATES) {
    const date = meta[field];
    if (date !== undefined) out.push({ name, value: value(dateTime(0, date)) });
  }
  meta.objectGroups.forEach((group, index) => out.push({ name: 'Object Group', ...(index > 0 && { index }), value: value(textString(0, group)) }));
  if (meta.lastChangeDate !== undefined) out.push({ name: 'Last Change Date', value: value(dateTime(0, meta.lastChangeDate)) });
  for (const [name, values] of Object.entries(meta.customAttributes ?? {})) {
    values.forEach((hex, index) => out.push({ name, ...(index > 0 && { index }), value: decodeTtlv(fromHex(hex)) }));
  }
  return out;
}

/** The KMIP 1.x minor version that introduced each standard attribute (custom ones: 0). */
const MINOR_SINCE = new Map(ATTRIBUTE_SPECS.map(([name, , , since]) => [name, Number(since.split('.')[1] ?? 0)] as const));

/**
 * Attributes as a peer speaking `version` expects them: none newer than its version, and at KMIP
 * 1.0 a Digest without Key Format Type (added in 1.1) — the upstream may speak a later version.
 */
export function attributesForVersion(attributes: readonly Attribute[], version: ProtocolVersion): Attribute[] {
  return attributes
    .filter((a) => version.major > 1 || (MINOR_SINCE.get(a.name) ?? 0) <= version.minor)
    .map((a) => (a.name === 'Digest' && version.major === 1 && version.minor === 0 && a.value
      ? { ...a, value: structure(Tag.AttributeValue, childrenOf(a.value).filter((c) => c.tag !== Tag.KeyFormatType)) }
      : a));
}
