/**
 * Who asks the edge KMIP service (issue #16): a device, through the device protocol's door
 * (MQTT, serial), or a local KMIP client — a tape library, a storage array — through the KMIP
 * over mutual TLS door (`run --kmip-listen`). Both doors authenticate first and hand the service
 * a principal; the service answers only with what the principal's allow-lists let it see.
 */
import type { KeyRule } from '../devices/registry.ts';
import type { Attribute } from '../kmip/attributes.ts';
import type { BatchOperation } from '../store/kv-store.ts';

export interface Principal {
  kind: 'device' | 'client';
  /** The device id or the local client id (`client add --id`): named in every audit event. */
  id: string;
  /** Keys it may see, by Unique Identifier, Name or Object Group; any other key is as if it did not exist (Item Not Found). */
  keys: readonly KeyRule[];
  /** KMIP operations it may ask for, by the Operation enumeration's KMIP XML name ('Get', 'Locate', 'Create', …). */
  operations: readonly string[];
}

/**
 * A key template of a local client's pool (issue #16: offline Create): the agent keeps `size`
 * keys with these attributes created upstream ahead of need, sealed in the store like every key.
 */
export interface PoolTemplate {
  /** Cryptographic Algorithm enumeration value (e.g. AES = 3). */
  algorithm: number;
  /** Cryptographic Length in bits. */
  length: number;
  /** Cryptographic Usage Mask; undefined = Encrypt | Decrypt. */
  usageMask?: number | undefined;
  objectGroup?: string | undefined;
  size: number;
}

/** A registered local KMIP client: identified by the SHA-256 of its certificate's SubjectPublicKeyInfo. */
export interface LocalClient extends Principal {
  kind: 'client';
  /** Lower-case hex SHA-256 of the client certificate's DER SubjectPublicKeyInfo. */
  spkiSha256: string;
  pool: PoolTemplate[];
}

/** What a Create asks for, matched against the client's pool templates while the key server is unreachable. */
export interface OfflineCreateRequest {
  clientId: string;
  algorithm: number | undefined;
  length: number | undefined;
  usageMask: number | undefined;
  objectGroup: string | undefined;
  /** The attributes to apply locally and write upstream later (Name, x- attributes, …), as KMIP attributes. */
  attributes: Attribute[];
  /** Activate the key as well (a Create + Activate batch, or an Activation Date of now). */
  activate: boolean;
  /**
   * Writes to commit in the same synced batch as the pool entry's removal, given the key handed
   * out: the edge service's record that the client created it (created-keys.ts), so that a crash
   * cannot leave a key taken for a client that may not see it. Optional for the pool to honour:
   * the service writes the record after takeOffline unless it is on disk.
   */
  alongside?: (uid: string) => BatchOperation[];
}

/**
 * The key pool as the service sees it (src/edge/key-pool.ts): hands out one pooled key per
 * offline Create, durably (the pool entry removed and the outbox entry written in one synced
 * batch before the answer), never the same key twice; undefined when no template matches or the
 * pool is empty.
 */
export interface OfflineCreator {
  takeOffline(request: OfflineCreateRequest): Promise<string | undefined>;
  /** Whether `uid` is a pooled key not yet handed out: no client may see it (it is nobody's key yet). */
  holds?(uid: string): boolean;
}

/** The edge KMIP service's answer to one request of the local KMIP door. */
export interface KmipAnswer {
  /** A KMIP Response Message (TTLV), always — refusals are results, never exceptions. */
  response: Uint8Array;
  /** The request was not a valid KMIP Request Message: the door sends the response (Invalid Message) and closes the connection. */
  invalid: boolean;
  /** Set when the response is one Get answered Success (the hot path): the door counts it so, without reading the response. */
  getSuccess?: boolean;
}

/**
 * A request id in its two parts, the text `${prefix}${sequence}`: the local KMIP door's
 * `<client>:<boot>:<connection>:` and the connection's count. Kept apart so that the audit line of
 * a cached Get writes the prefix from bytes made once per connection and the count as digits,
 * with no string made and read back per request (0.17–0.2 µs of the service's ~1.5 µs a Get,
 * service microbenchmark). requestIdText makes the string, for everything else.
 */
export interface RequestId {
  readonly prefix: string;
  readonly sequence: number;
}

export function requestIdText(id: string | RequestId): string {
  return typeof id === 'string' ? id : `${id.prefix}${id.sequence}`;
}

/** What the local KMIP door calls (src/edge/edge-kmip-service.ts implements it). */
export interface KmipRequestHandler {
  /**
   * One KMIP Request Message (TTLV bytes, already within the door's size limit) from an
   * authenticated principal. `requestId` is unique per request and names its effects (a usage
   * grant is idempotent by it). Never rejects (nor throws). The answer comes at once, without a
   * promise, when memory gives it (a Get of a cached key): the door writes it in the same tick.
   */
  handle(principal: Principal, request: Uint8Array, requestId: string | RequestId): KmipAnswer | Promise<KmipAnswer>;
}
