/**
 * What a device may ask the edge KMIP service (firmware-bridge/PROTOCOL.md §5): Get, Get
 * Attributes, Get Usage Allocation, Obtain Lease, Check, Query, Discover Versions, and the
 * nonce-MAC batch — answered through the agent core with the device's allow-lists. A device's
 * operation set and answers are the device protocol's: local KMIP clients have their own
 * (client-operations.ts).
 */
import type { AgentCore } from '../agent/agent-core.ts';
import type { CachedKey, KeyMetadata } from '../agent/key-cache.ts';
import { mayUse } from '../agent/key-policy.ts';
import { keyAllowed } from '../devices/registry.ts';
import { isKmipEdgeError } from '../errors.ts';
import { attributeItem, nameValue, type Attribute } from '../kmip/attributes.ts';
import { KMIP_VERSIONS, protocolVersionItem, readProtocolVersion, type RequestMessage, type ResponseBatchItemInput } from '../kmip/message.ts';
import { KeyFormatType, ObjectType, Operation, ResultReason, ResultStatus, Tag } from '../kmip/tables.generated.ts';
import { childrenOf, findChildren, optionalValue } from '../kmip/tree.ts';
import { enumerationText } from '../kmip/vocabulary.ts';
import type { Logger } from '../log.ts';
import { byteString, dateTime, enumeration, integer, interval, structure, textString } from '../ttlv/build.ts';
import { ItemType, type TtlvItem } from '../ttlv/item.ts';
import type { readNonceMacItems } from '../upstream/nonce-mac.ts';
import type { Principal } from './principal.ts';
import { deviceRefusal, Refusal } from './refusal.ts';

export class DeviceOperations {
  constructor(
    private readonly agent: AgentCore,
    private readonly log: Logger,
    /** Whether `uid` is a pooled key not yet handed out (OfflineCreator.holds): nobody's key, a device's neither. */
    private readonly pooled: (uid: string) => boolean = () => false,
  ) {}

  private allowed(device: Principal, key: { uniqueIdentifier: string; names: readonly string[]; objectGroups: readonly string[] }): boolean {
    return !this.pooled(key.uniqueIdentifier) && keyAllowed(device, key);
  }

  /** A Get answered from memory, when the device may have the key, it is cached and policy allows it now. */
  getFromMemory(device: Principal, payload: TtlvItem): TtlvItem[] | undefined {
    if (!device.operations.includes('Get')) return undefined;
    const uid = optionalValue(payload, Tag.UniqueIdentifier, ItemType.TextString);
    const key = uid === undefined ? undefined : this.agent.cache.useFromMemory(uid, 'process');
    if (!key || !this.allowed(device, key.metadata)) return undefined;
    if (this.log.isLevelEnabled('debug')) this.log.debug({ device: device.id, uid, purpose: 'process', state: key.metadata.state }, 'key served');
    return getPayload(uid!, key);
  }

  /**
   * End-to-end nonce-MAC (ARCHITECTURE.md §6 (b)): the device sets its own nonce and gets the key
   * MAC-wrapped; the agent checks the operations and both keys (the key and the MAC key) against
   * the allow-lists, forwards a request rebuilt from the checked parts, and returns the server's
   * response items untouched (Key Block, Key Wrapping Data) so that the device verifies them.
   */
  async nonceMacExchange(device: Principal, requested: RequestMessage['batchItems'], parts: NonNullable<ReturnType<typeof readNonceMacItems>>): Promise<ResponseBatchItemInput[]> {
    try {
      for (const item of requested) allowedOperation(device, item.operation);
      await this.allowedKey(device, structure(Tag.RequestPayload, [textString(Tag.UniqueIdentifier, parts.uid)]));
      await this.allowedKey(device, structure(Tag.RequestPayload, [textString(Tag.UniqueIdentifier, parts.macKeyUid)]));
      const answered = await this.agent.forwardNonceMac(device.id, parts.uid, parts.macKeyUid, parts.nonce, parts.setter);
      return answered.map((item, i) => ({
        operation: requested[i]!.operation, ...(requested[i]!.uniqueBatchItemId && { uniqueBatchItemId: requested[i]!.uniqueBatchItemId }),
        resultStatus: item.resultStatus, ...(item.resultReason !== undefined && { resultReason: item.resultReason }), ...(item.resultMessage !== undefined && { resultMessage: item.resultMessage }),
        ...(item.payload && { payload: childrenOf(item.payload) }),
      }));
    } catch (error) {
      const refusal = deviceRefusal(error);
      this.log.info({ device: device.id, uid: parts.uid, reason: enumerationText(Tag.ResultReason, refusal.reason), detail: refusal.message }, 'device nonce-MAC request refused');
      return requested.map((item) => ({ operation: item.operation, ...(item.uniqueBatchItemId && { uniqueBatchItemId: item.uniqueBatchItemId }), resultStatus: ResultStatus.OperationFailed, resultReason: refusal.reason, resultMessage: refusal.message }));
    }
  }

  /** The key a request names, if the device may use it (otherwise: as if it did not exist). */
  private async allowedKey(device: Principal, payload: TtlvItem): Promise<{ uid: string; metadata: KeyMetadata }> {
    const uid = optionalValue(payload, Tag.UniqueIdentifier, ItemType.TextString);
    if (uid === undefined) throw new Refusal(ResultReason.InvalidMessage, 'a device request names its key');
    // Check the allow-list by identifier first: a device must not make the agent fetch keys it may not use.
    if (this.pooled(uid)) throw new Refusal(ResultReason.ItemNotFound, 'no such key');
    const byId = keyAllowed(device, { uniqueIdentifier: uid, names: [], objectGroups: [] });
    const needsMetadata = !byId && device.keys.some((rule) => rule.uniqueIdentifier === undefined);
    if (!byId && !needsMetadata) throw new Refusal(ResultReason.ItemNotFound, 'no such key');
    const { metadata } = await this.agent.cache.get(uid);
    if (!this.allowed(device, metadata)) throw new Refusal(ResultReason.ItemNotFound, 'no such key');
    return { uid, metadata };
  }

  /** One batch item of a device; `requestId` names its effects (a grant is idempotent by it). */
  async operate(device: Principal, operation: number, payload: TtlvItem, requestId: string): Promise<TtlvItem[]> {
    allowedOperation(device, operation);
    switch (operation) {
      case Operation.Query:
        return device.operations.map((name) => enumeration(Tag.Operation, Operation[name as keyof typeof Operation]));
      case Operation.DiscoverVersions: {
        const asked = findChildren(payload, Tag.ProtocolVersion).map(readProtocolVersion);
        const ours = KMIP_VERSIONS.filter((v) => asked.length === 0 || asked.some((a) => a.major === v.major && a.minor === v.minor));
        return ours.map(protocolVersionItem);
      }
      case Operation.Get: {
        const { uid } = await this.allowedKey(device, payload);
        return getPayload(uid, await this.agent.getKey(device.id, uid, 'process'));
      }
      case Operation.GetUsageAllocation: {
        const { uid } = await this.allowedKey(device, payload);
        const count = optionalValue(payload, Tag.UsageLimitsCount, ItemType.LongInteger);
        if (count === undefined) throw new Refusal(ResultReason.InvalidMessage, 'Usage Limits Count is required');
        await this.agent.grantUnits(device.id, requestId, uid, count);
        return [textString(Tag.UniqueIdentifier, uid)];
      }
      case Operation.ObtainLease: {
        const { uid, metadata } = await this.allowedKey(device, payload);
        return leasePayload(uid, await leaseNow(this.agent, uid, metadata));
      }
      case Operation.Check: {
        const { uid } = await this.allowedKey(device, payload);
        const protect = optionalValue(payload, Tag.UsageLimitsCount, ItemType.LongInteger) !== undefined || optionalValue(payload, Tag.CryptographicUsageMask, ItemType.Integer) !== undefined;
        const { decision } = await this.agent.cache.decide(uid, protect ? 'protect' : 'process');
        if (!decision.allowed) throw new Refusal(ResultReason.PermissionDenied, decision.code);
        return [textString(Tag.UniqueIdentifier, uid)];
      }
      case Operation.GetAttributes: {
        const { uid, metadata } = await this.allowedKey(device, payload);
        return [textString(Tag.UniqueIdentifier, uid), ...metadataAttributes(metadata).map(attributeItem)];
      }
      default:
        throw new Refusal(ResultReason.OperationNotSupported, `${enumerationText(Tag.Operation, operation)} is not a device operation`);
    }
  }
}

/** A fresh lease from the upstream; offline, the lease the agent holds. */
export async function leaseNow(agent: AgentCore, uid: string, metadata: KeyMetadata): Promise<KeyMetadata> {
  try {
    return await agent.obtainLease(uid);
  } catch (error) {
    if (!isKmipEdgeError(error, 'AGENT_OFFLINE')) throw error;
    return metadata;
  }
}

/** The Obtain Lease Response Payload (KMIP 1.2 §4.17) for what the agent holds, if policy lets the key process now. */
export function leasePayload(uid: string, current: KeyMetadata): TtlvItem[] {
  const now = BigInt(Math.floor(Date.now() / 1000));
  const decision = mayUse(current, 'process', now);
  if (!decision.allowed) throw new Refusal(ResultReason.PermissionDenied, decision.code);
  const seconds = current.leaseExpiresAt === undefined ? 0 : Number(current.leaseExpiresAt - now);
  return [textString(Tag.UniqueIdentifier, uid), interval(Tag.LeaseTime, seconds), dateTime(Tag.LastChangeDate, current.lastChangeDate ?? now)];
}

export function allowedOperation(principal: Principal, operation: number): void {
  const name = enumerationText(Tag.Operation, operation);
  if (!principal.operations.includes(name)) throw new Refusal(ResultReason.PermissionDenied, `operation ${name} is not allowed for this ${principal.kind === 'device' ? 'device' : 'client'}`);
}

/** A Get Response Payload: the key as a Raw Symmetric Key (what a device reads). */
function getPayload(uid: string, key: CachedKey): TtlvItem[] {
  const { metadata } = key;
  return [
    enumeration(Tag.ObjectType, ObjectType.SymmetricKey),
    textString(Tag.UniqueIdentifier, uid),
    structure(Tag.SymmetricKey, [structure(Tag.KeyBlock, [
      enumeration(Tag.KeyFormatType, KeyFormatType.Raw),
      structure(Tag.KeyValue, [byteString(Tag.KeyMaterial, key.material)]),
      ...(metadata.algorithm !== undefined ? [enumeration(Tag.CryptographicAlgorithm, metadata.algorithm)] : []),
      ...(metadata.length !== undefined ? [integer(Tag.CryptographicLength, metadata.length)] : []),
    ])]),
  ];
}

/** The attributes a device may read: what the cache knows, never the material. */
function metadataAttributes(meta: KeyMetadata): Attribute[] {
  const value = (item: TtlvItem): TtlvItem => ({ ...item, tag: Tag.AttributeValue });
  const out: Attribute[] = [{ name: 'State', value: value(enumeration(0, meta.state)) }];
  if (meta.algorithm !== undefined) out.push({ name: 'Cryptographic Algorithm', value: value(enumeration(0, meta.algorithm)) });
  if (meta.length !== undefined) out.push({ name: 'Cryptographic Length', value: value(integer(0, meta.length)) });
  if (meta.usageMask !== undefined) out.push({ name: 'Cryptographic Usage Mask', value: value(integer(0, meta.usageMask)) });
  for (const name of meta.names) out.push({ name: 'Name', value: nameValue(name) });
  for (const [attribute, field] of [['Activation Date', 'activationDate'], ['Process Start Date', 'processStartDate'], ['Protect Stop Date', 'protectStopDate'], ['Deactivation Date', 'deactivationDate']] as const) {
    const date = meta[field];
    if (date !== undefined) out.push({ name: attribute, value: value(dateTime(0, date)) });
  }
  return out;
}
