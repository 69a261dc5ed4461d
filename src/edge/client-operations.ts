/**
 * What a local KMIP client — a tape library, a storage array — may ask the edge KMIP service
 * (issue #16), served from the cache online and offline: Get, Get Attributes, Get Attribute
 * List, Locate, Check, Get Usage Allocation (the ledger), Obtain Lease, Query, Discover
 * Versions; and the writes of client-writes.ts. Each item is allowed by the client's operation
 * list (Permission Denied otherwise) and sees only the keys its allow-list lets it see.
 *
 * Key policy (key-policy.ts, ARCHITECTURE.md §4 invariant 7): a Get serves an Active or
 * Deactivated key only after its Process Start and inside the agent's lease, never a compromised
 * one. A Pre-Active key is served too, as a KMIP server does (OASIS TC 3.1.3 gets a key right
 * after its Create): getting a key is no cryptographic use of it (KMIP 1.2 §3.22), and the
 * client, which sees the State, may not use it before its activation.
 */
import type { AgentCore } from '../agent/agent-core.ts';
import { isCustomAttribute, type CachedKey } from '../agent/key-cache.ts';
import { attributeItem, type Attribute } from '../kmip/attributes.ts';
import { KMIP_VERSIONS, protocolVersionItem, readProtocolVersion } from '../kmip/message.ts';
import { readLocate } from '../kmip/payloads.ts';
import { KeyFormatType, ObjectType, Operation, QueryFunction, ResultReason, State, Tag } from '../kmip/tables.generated.ts';
import { childrenOf, findChild, findChildren, optionalValue } from '../kmip/tree.ts';
import { enumerationText } from '../kmip/vocabulary.ts';
import { byteString, enumeration, integer, structure, textString } from '../ttlv/build.ts';
import { ItemType, type TtlvItem } from '../ttlv/item.ts';
import type { BatchContext } from './batch.ts';
import { attributesForVersion, CACHED_ATTRIBUTE_NAMES, cachedAttributes } from './cached-attributes.ts';
import { ClientWrites, KEY_WRITES } from './client-writes.ts';
import { allowedOperation, leasePayload } from './device-operations.ts';
import { KeyAccess, uidOf } from './key-access.ts';
import { locateCached, locateResponse, readLocateRequest } from './locate.ts';
import type { Principal } from './principal.ts';
import { isUnreachable, Refusal } from './refusal.ts';
import type { KmipClient } from '../upstream/client.ts';

/** The operations the service serves a local KMIP client (Query answers them, within the client's list). */
export const CLIENT_OPERATIONS: readonly number[] = [
  Operation.Create, Operation.Register, Operation.Locate, Operation.Check, Operation.Get, Operation.GetAttributes, Operation.GetAttributeList,
  Operation.AddAttribute, Operation.ModifyAttribute, Operation.DeleteAttribute, Operation.ObtainLease, Operation.GetUsageAllocation,
  Operation.Activate, Operation.Revoke, Operation.Destroy, Operation.Query, Operation.DiscoverVersions,
];
const SERVED = new Set(CLIENT_OPERATIONS);
/** The Object Types the cache holds and serves. */
const OBJECT_TYPES = [ObjectType.SymmetricKey, ObjectType.SecretData];
/** Query Server Information (KMIP 1.2 §4.25). */
export const VENDOR_IDENTIFICATION = 'kmip-edge agent';

/** The ledger's name for a local client (device ids cannot contain '/': no grant of a device is confused with one of a client). */
export const ledgerPrincipal = (principal: Principal): string => `client/${principal.id}`;

/**
 * A Get Response Payload (KMIP 1.2 §4.11) for a cached key in the format it was fetched in: a
 * Symmetric Key as Raw, Secret Data as Opaque with its Secret Data Type; undefined for what the
 * cache cannot give back as it was (then the key server is asked).
 */
export function keyPayload(uid: string, key: CachedKey): TtlvItem[] | undefined {
  const { metadata } = key;
  const value = structure(Tag.KeyValue, [byteString(Tag.KeyMaterial, key.material)]);
  const algorithm = [
    ...(metadata.algorithm !== undefined ? [enumeration(Tag.CryptographicAlgorithm, metadata.algorithm)] : []),
    ...(metadata.length !== undefined ? [integer(Tag.CryptographicLength, metadata.length)] : []),
  ];
  let object: TtlvItem;
  if (metadata.objectType === ObjectType.SymmetricKey) object = structure(Tag.SymmetricKey, [structure(Tag.KeyBlock, [enumeration(Tag.KeyFormatType, KeyFormatType.Raw), value, ...algorithm])]);
  else if (metadata.objectType === ObjectType.SecretData && metadata.secretDataType !== undefined) {
    object = structure(Tag.SecretData, [enumeration(Tag.SecretDataType, metadata.secretDataType), structure(Tag.KeyBlock, [enumeration(Tag.KeyFormatType, KeyFormatType.Opaque), value])]);
  } else return undefined;
  return [enumeration(Tag.ObjectType, metadata.objectType), textString(Tag.UniqueIdentifier, uid), object];
}

/** The Key Format Type keyPayload answers in. */
function nativeFormat(key: CachedKey): number {
  return key.metadata.objectType === ObjectType.SymmetricKey ? KeyFormatType.Raw : KeyFormatType.Opaque;
}

export class ClientOperations {
  constructor(
    private readonly agent: AgentCore,
    private readonly access: KeyAccess,
    private readonly writes: ClientWrites,
  ) {}

  /** A Get of nothing but a Unique Identifier answered from memory, if the client may see the key and policy lets it process now (the hot path). */
  getFromMemory(principal: Principal, payload: TtlvItem): TtlvItem[] | undefined {
    if (childrenOf(payload).length !== 1) return undefined;
    const uid = optionalValue(payload, Tag.UniqueIdentifier, ItemType.TextString);
    const key = uid === undefined ? undefined : this.readableFromMemory(principal, uid);
    return key && keyPayload(uid!, key);
  }

  /** The cached key a Get of `uid` may answer with from memory: the client may Get and see it, and policy lets it process now. */
  readableFromMemory(principal: Principal, uid: string): CachedKey | undefined {
    if (!principal.operations.includes('Get')) return undefined;
    const key = this.agent.cache.useFromMemory(uid, 'process');
    return key && this.access.visibleNow(principal, key.metadata) ? key : undefined;
  }

  async operate(principal: Principal, operation: number, payload: TtlvItem, context: BatchContext): Promise<TtlvItem[]> {
    if (!SERVED.has(operation)) throw new Refusal(ResultReason.OperationNotSupported, `${enumerationText(Tag.Operation, operation)} is not served by this agent`);
    allowedOperation(principal, operation);
    if (KEY_WRITES.has(operation)) return this.writes.keyWrite(principal, operation, payload, context);
    switch (operation) {
      case Operation.Create: return this.writes.create(principal, payload, context);
      case Operation.Register: return this.writes.register(principal, payload, context);
      case Operation.Get: return this.get(principal, payload, context);
      case Operation.GetAttributes: return this.getAttributes(principal, payload, context);
      case Operation.GetAttributeList: return this.getAttributeList(principal, payload, context);
      case Operation.Locate: return this.locate(principal, payload, context);
      case Operation.Check: return this.check(principal, payload, context);
      case Operation.GetUsageAllocation: {
        const uid = uidOf(payload, context);
        await this.readable(principal, uid);
        const count = optionalValue(payload, Tag.UsageLimitsCount, ItemType.LongInteger);
        if (count === undefined) throw new Refusal(ResultReason.InvalidMessage, 'Usage Limits Count is required');
        await this.agent.grantUnits(ledgerPrincipal(principal), context.itemId, uid, count);
        context.effect = true;
        return [textString(Tag.UniqueIdentifier, uid)];
      }
      case Operation.ObtainLease: {
        const uid = uidOf(payload, context);
        let current = (await this.readable(principal, uid)).metadata;
        try {
          current = await this.agent.obtainLease(uid);
        } catch (error) {
          if (!isUnreachable(error)) throw error; // offline: the lease the agent holds
        }
        return leasePayload(uid, current);
      }
      case Operation.Query: return this.query(principal, payload);
      default: return this.discoverVersions(payload, context);
    }
  }

  /** The key for a read: Item Not Found unless visible; not cached and the key server unreachable, said so. */
  private async readable(principal: Principal, uid: string): Promise<CachedKey> {
    try {
      return await this.access.readable(principal, uid);
    } catch (error) {
      if (isUnreachable(error)) throw new Refusal(ResultReason.GeneralFailure, `the key server is unreachable and ${uid} is not cached here`);
      throw error;
    }
  }

  private async get(principal: Principal, payload: TtlvItem, context: BatchContext): Promise<TtlvItem[]> {
    const uid = uidOf(payload, context);
    const key = await this.readable(principal, uid);
    const format = optionalValue(payload, Tag.KeyFormatType, ItemType.Enumeration);
    const wrapping = findChild(payload, Tag.KeyWrappingSpecification);
    const served = format === undefined || format === nativeFormat(key) ? keyPayload(uid, key) : undefined;
    if (served && !wrapping && !findChild(payload, Tag.KeyCompressionType)) {
      if (key.metadata.state !== State.PreActive) {
        const { decision } = await this.agent.cache.decide(uid, 'process');
        if (!decision.allowed) throw new Refusal(ResultReason.PermissionDenied, `${decision.code}: ${decision.reason}`);
      }
      return served;
    }
    // Another format, compression or wrapping: the key server's to answer — with a wrapping key the client may see.
    for (const info of wrapping ? [findChild(wrapping, Tag.EncryptionKeyInformation), findChild(wrapping, Tag.MACSignatureKeyInformation)] : []) {
      const wrappingKey = info && optionalValue(info, Tag.UniqueIdentifier, ItemType.TextString);
      if (wrappingKey !== undefined) await this.access.mustSee(principal, wrappingKey);
    }
    const children = childrenOf(payload).filter((c) => c.tag !== Tag.UniqueIdentifier);
    return childrenOf(await this.agent.upstream(`a Get of ${uid} for a local KMIP client`, (client) => client.call(Operation.Get, [textString(Tag.UniqueIdentifier, uid), ...children])));
  }

  /**
   * From the cache when every name asked is one it keeps; otherwise (all attributes, or one the
   * cache does not keep) from the key server — and from the cache while it is unreachable.
   */
  private async getAttributes(principal: Principal, payload: TtlvItem, context: BatchContext): Promise<TtlvItem[]> {
    const uid = uidOf(payload, context);
    const names = findChildren(payload, Tag.AttributeName).map((n) => String(n.value));
    if (new Set(names).size !== names.length) throw new Refusal(ResultReason.InvalidMessage, 'an Attribute Name is asked twice');
    const key = await this.readable(principal, uid);
    let attributes: Attribute[] = cachedAttributes(key.metadata);
    if (names.length === 0 || !names.every((name) => CACHED_ATTRIBUTE_NAMES.has(name) || isCustomAttribute(name))) {
      attributes = await this.fromKeyServer(`reading the attributes of ${uid}`, (client) => client.getAttributes(uid, names).then((answer) => answer.attributes), attributes);
    }
    const served = attributesForVersion(attributes, context.version);
    const chosen = names.length === 0 ? served : names.flatMap((name) => served.filter((a) => a.name === name));
    return [textString(Tag.UniqueIdentifier, uid), ...chosen.map(attributeItem)];
  }

  private async getAttributeList(principal: Principal, payload: TtlvItem, context: BatchContext): Promise<TtlvItem[]> {
    const uid = uidOf(payload, context);
    const key = await this.readable(principal, uid);
    const cached = attributesForVersion(cachedAttributes(key.metadata), context.version).map((a) => a.name);
    const names = await this.fromKeyServer(`listing the attributes of ${uid}`, (client) => client.getAttributeList(uid), cached);
    const known = new Set(attributesForVersion(names.map((name) => ({ name })), context.version).map((a) => a.name));
    return [textString(Tag.UniqueIdentifier, uid), ...[...known].map((name) => textString(Tag.AttributeName, name))];
  }

  /** The key server's answer, or `offline` while it is unreachable. */
  private async fromKeyServer<T>(what: string, call: (client: KmipClient) => Promise<T>, offline: T): Promise<T> {
    try {
      return await this.agent.upstream(what, call);
    } catch (error) {
      if (isUnreachable(error)) return offline;
      throw error;
    }
  }

  /**
   * Online: the key server locates with the same attributes, and the result is filtered by what
   * the client may see. Offline: matched over the cached keys the client may see — Item Not
   * Found being no answer a Locate gives, a key the client may not see is simply not located.
   */
  private async locate(principal: Principal, payload: TtlvItem, context: BatchContext): Promise<TtlvItem[]> {
    const request = readLocateRequest(payload);
    let matches: string[];
    try {
      const found = await this.agent.upstream('a Locate for a local KMIP client', (client) => request.objectGroupMember === undefined
        ? client.locateAll({ attributes: request.attributes, ...(request.storageStatusMask !== undefined && { storageStatusMask: request.storageStatusMask }) })
        : client.call(Operation.Locate, childrenOf(payload).filter((c) => c.tag !== Tag.MaximumItems && c.tag !== Tag.OffsetItems)).then((answer) => readLocate(answer).uniqueIdentifiers));
      const visible = await Promise.all(found.map((uid) => this.access.visible(principal, uid)));
      matches = found.filter((_, i) => visible[i]);
    } catch (error) {
      if (!isUnreachable(error)) throw error;
      await this.access.created.of(principal.id);
      const offline = locateCached(await this.agent.cache.list(), request, (meta) => this.access.visibleNow(principal, meta));
      if ('unanswerable' in offline) throw new Refusal(ResultReason.GeneralFailure, `the key server is unreachable and the cache cannot match ${offline.unanswerable}`);
      matches = offline.uids;
    }
    const { page, payload: answer } = locateResponse(matches, request, context.version);
    // KMIP 1.2 §4 intro: a Locate sets the ID Placeholder only when it found exactly one object.
    context.placeholder = page.length === 1 ? page[0] : undefined;
    return answer;
  }

  /**
   * KMIP 1.2 §4.10 from the cache and the key policy: the usage mask asked must be the key's, and
   * the key usable now — to protect when a Usage Limits Count or usage mask is given, to process
   * otherwise. A denial empties the ID Placeholder.
   */
  private async check(principal: Principal, payload: TtlvItem, context: BatchContext): Promise<TtlvItem[]> {
    const uid = uidOf(payload, context);
    const key = await this.readable(principal, uid);
    const mask = optionalValue(payload, Tag.CryptographicUsageMask, ItemType.Integer);
    const protect = mask !== undefined || optionalValue(payload, Tag.UsageLimitsCount, ItemType.LongInteger) !== undefined;
    const { decision } = await this.agent.cache.decide(uid, protect ? 'protect' : 'process');
    const maskDenied = mask !== undefined && ((key.metadata.usageMask ?? 0) & mask) >>> 0 !== mask >>> 0;
    if (!decision.allowed || maskDenied) {
      context.placeholder = undefined;
      throw new Refusal(ResultReason.PermissionDenied, decision.allowed ? 'the key does not allow this Cryptographic Usage Mask' : `${decision.code}: ${decision.reason}`);
    }
    return [textString(Tag.UniqueIdentifier, uid)];
  }

  /** KMIP 1.2 §4.25: what this agent serves the client — its operations, the Object Types of the cache. */
  private query(principal: Principal, payload: TtlvItem): TtlvItem[] {
    const functions = new Set(findChildren(payload, Tag.QueryFunction).map((f) => Number(f.value)));
    const out: TtlvItem[] = [];
    if (functions.has(QueryFunction.QueryOperations)) {
      out.push(...CLIENT_OPERATIONS.filter((op) => principal.operations.includes(enumerationText(Tag.Operation, op))).map((op) => enumeration(Tag.Operation, op)));
    }
    if (functions.has(QueryFunction.QueryObjects)) out.push(...OBJECT_TYPES.map((type) => enumeration(Tag.ObjectType, type)));
    if (functions.has(QueryFunction.QueryServerInformation)) out.push(textString(Tag.VendorIdentification, VENDOR_IDENTIFICATION));
    return out;
  }

  /** KMIP 1.2 §4.26: the versions asked that this agent speaks, in the client's order (all of them when none is asked). */
  private discoverVersions(payload: TtlvItem, context: BatchContext): TtlvItem[] {
    if (context.version.major === 1 && context.version.minor === 0) throw new Refusal(ResultReason.OperationNotSupported, 'Discover Versions is not a KMIP 1.0 operation');
    const asked = findChildren(payload, Tag.ProtocolVersion).map(readProtocolVersion);
    const common = asked.length === 0 ? KMIP_VERSIONS : asked.filter((v) => KMIP_VERSIONS.some((s) => s.major === v.major && s.minor === v.minor));
    return common.map(protocolVersionItem);
  }
}
