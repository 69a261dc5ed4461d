/**
 * Locate for a local KMIP client (KMIP 1.2 §4.9, 1.3 §4.9 Offset Items / Located Items): the
 * request read, matching over the cached keys while the key server is unreachable, and the page
 * of results a client asked for — taken after the allow-list filter, so that neither the page
 * nor Located Items tells of a key the client may not see.
 */
import { isCustomAttribute, type KeyMetadata } from '../agent/key-cache.ts';
import { readAttribute, type Attribute } from '../kmip/attributes.ts';
import type { ProtocolVersion } from '../kmip/message.ts';
import { ItemType, type TtlvItem } from '../ttlv/item.ts';
import { State, StorageStatusMask, Tag } from '../kmip/tables.generated.ts';
import { findChildren, optionalValue } from '../kmip/tree.ts';
import { integer, textString } from '../ttlv/build.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { toHex } from '../ttlv/hex.ts';

export interface LocateRequest {
  attributes: Attribute[];
  maximumItems: number | undefined;
  offsetItems: number | undefined;
  storageStatusMask: number | undefined;
  /** KMIP 1.1 Object Group Member (Fresh, Default): asked of the key server only. */
  objectGroupMember: number | undefined;
}

export function readLocateRequest(payload: TtlvItem): LocateRequest {
  return {
    attributes: findChildren(payload, Tag.Attribute).map(readAttribute),
    maximumItems: optionalValue(payload, Tag.MaximumItems, ItemType.Integer),
    offsetItems: optionalValue(payload, Tag.OffsetItems, ItemType.Integer),
    storageStatusMask: optionalValue(payload, Tag.StorageStatusMask, ItemType.Integer),
    objectGroupMember: optionalValue(payload, Tag.ObjectGroupMember, ItemType.Enumeration),
  };
}

/**
 * Whether a cached key matches one Locate attribute, or undefined when the cache cannot tell
 * (an attribute it does not keep: the answer must come from the key server).
 */
export function matchesCached(meta: KeyMetadata, wanted: Attribute): boolean | undefined {
  const v = wanted.value;
  if (v === undefined) return undefined;
  switch (wanted.name) {
    case 'Unique Identifier': return v.value === meta.uniqueIdentifier;
    case 'Object Type': return v.value === meta.objectType;
    case 'Cryptographic Algorithm': return v.value === meta.algorithm;
    case 'Cryptographic Length': return v.value === meta.length;
    case 'State': return v.value === meta.state;
    case 'Object Group': return typeof v.value === 'string' && meta.objectGroups.includes(v.value);
    // KMIP 1.2 §4.9: a mask matches an object whose mask has all of its bits.
    case 'Cryptographic Usage Mask': return typeof v.value === 'number' && meta.usageMask !== undefined && ((meta.usageMask & v.value) >>> 0) === v.value >>> 0;
    case 'Name': {
      const text = v.type === ItemType.Structure ? optionalValue(v, Tag.NameValue, ItemType.TextString) : undefined;
      return text !== undefined && meta.names.includes(text);
    }
    default: {
      if (!isCustomAttribute(wanted.name)) return undefined;
      const hex = toHex(encodeTtlv(v));
      return (meta.customAttributes?.[wanted.name] ?? []).includes(hex);
    }
  }
}

/**
 * The cached keys matching `request` (offline Locate), among those `visible`; undefined when the
 * cache cannot answer it (an attribute it does not keep, Object Group Member), with the reason.
 */
export function locateCached(keys: readonly KeyMetadata[], request: LocateRequest, visible: (meta: KeyMetadata) => boolean): { uids: string[] } | { unanswerable: string } {
  if (request.objectGroupMember !== undefined) return { unanswerable: 'Object Group Member' };
  // KMIP 1.2 §4.9: no Storage Status Mask means on-line objects only — all the cache holds.
  if (request.storageStatusMask !== undefined && (request.storageStatusMask & StorageStatusMask.OnLineStorage) === 0) return { uids: [] };
  const uids: string[] = [];
  for (const meta of keys) {
    if (meta.state === State.Destroyed || meta.state === State.DestroyedCompromised || !visible(meta)) continue;
    let all = true;
    for (const wanted of request.attributes) {
      const match = matchesCached(meta, wanted);
      if (match === undefined) return { unanswerable: wanted.name };
      if (!match) {
        all = false;
        break;
      }
    }
    if (all) uids.push(meta.uniqueIdentifier);
  }
  return { uids };
}

/**
 * The Locate Response Payload for the visible matches: the page from Offset Items, at most
 * Maximum Items, and Located Items (the number of all matches) at KMIP 1.3 and later when the
 * client pages.
 */
export function locateResponse(matches: readonly string[], request: LocateRequest, version: ProtocolVersion): { page: string[]; payload: TtlvItem[] } {
  const offset = request.offsetItems ?? 0;
  const page = matches.slice(offset, request.maximumItems === undefined ? undefined : offset + request.maximumItems);
  const paging = request.maximumItems !== undefined || request.offsetItems !== undefined;
  const locatedItems = paging && (version.major > 1 || version.minor >= 3) ? [integer(Tag.LocatedItems, matches.length)] : [];
  return { page, payload: [...locatedItems, ...page.map((uid) => textString(Tag.UniqueIdentifier, uid))] };
}
