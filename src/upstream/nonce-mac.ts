/**
 * Nonce-MAC key delivery (KMIP Usage Guide §4.21.2, ARCHITECTURE.md §6): set a fresh `x-Nonce`
 * on the key (Add Attribute the first time, Modify Attribute afterwards) and Get it MAC/sign-
 * wrapped with HMAC-SHA256 over the Key Value and that attribute, both in one batch with Batch
 * Order Option true. The key is accepted only if the HMAC verifies (constant time) and the wrapped
 * nonce equals the one just set: a response recorded earlier and replayed carries an old nonce,
 * and a key whose nonce another client set meanwhile is not ours — retried, never accepted.
 * The batch builder and the check are shared by the agent and by devices (end to end).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { KmipEdgeError } from '../errors.ts';
import { Lanes } from '../lanes.ts';
import { KmipResultError, type ResponseBatchItem } from '../kmip/message.ts';
import { keyBlockOf, payload, readGet, type GetResult } from '../kmip/payloads.ts';
import { readAttribute } from '../kmip/attributes.ts';
import { Operation, ResultReason, ResultStatus, Tag, WrappingMethod } from '../kmip/tables.generated.ts';
import { findChildren, invalidMessage, optionalValue, requiredChild, requiredValue } from '../kmip/tree.ts';
import { byteString } from '../ttlv/build.ts';
import { ItemType, type TtlvItem } from '../ttlv/item.ts';
import type { KmipClient } from './client.ts';
import { keyWrappingSpecification, verifyMacKeyBlock, wrappedAttribute } from './key-wrapping.ts';

export const NONCE_ATTRIBUTE = 'x-Nonce';
export const NONCE_BYTES = 16;

export type NonceSetter = 'add' | 'modify';

/** The two batch items: set `nonce` on `uid`, then Get it MAC-wrapped with `macKeyUid` over the Key Value and the nonce. */
export function nonceMacItems(uid: string, macKeyUid: string, nonce: Uint8Array, setter: NonceSetter): { operation: number; payload: TtlvItem[] }[] {
  const attribute = { name: NONCE_ATTRIBUTE, value: byteString(Tag.AttributeValue, nonce) };
  return [
    setter === 'add' ? { operation: Operation.AddAttribute, payload: payload.addAttribute(uid, attribute) } : { operation: Operation.ModifyAttribute, payload: payload.modifyAttribute(uid, attribute) },
    { operation: Operation.Get, payload: payload.get(uid, { keyWrappingSpecification: keyWrappingSpecification({ method: 'mac', keyUid: macKeyUid, attributeNames: [NONCE_ATTRIBUTE] }) }) },
  ];
}

/**
 * Checks a MAC/sign-wrapped Get response payload against `macKey` and the `nonce` set for it:
 * KMIP_MAC_INVALID when the HMAC does not verify (tampered key, MAC or attribute), KMIP_NONCE_STALE
 * when it verifies but carries another nonce (a replay, or another client's). Returns the Get.
 */
export function verifyNonceMacGet(getPayload: TtlvItem, macKey: Uint8Array, nonce: Uint8Array): GetResult {
  const got = readGet(getPayload);
  const keyValue = verifyMacKeyBlock(keyBlockOf(got.object), macKey);
  const wrapped = wrappedAttribute(keyValue, NONCE_ATTRIBUTE);
  if (wrapped?.type !== ItemType.ByteString) throw new KmipEdgeError('KMIP_NONCE_STALE', `the wrapped Key Value carries no ${NONCE_ATTRIBUTE}`);
  if (wrapped.value.length !== nonce.length || !timingSafeEqual(wrapped.value, nonce)) throw new KmipEdgeError('KMIP_NONCE_STALE', `the wrapped ${NONCE_ATTRIBUTE} is not the nonce just set (a replayed response, or another client's nonce)`);
  return got;
}

export interface NonceMacOptions {
  /** Attempts when the nonce does not match (a concurrent setter). */
  attempts?: number;
}

/**
 * Runs nonce-MAC exchanges with the upstream, one at a time per key: a nonce set and the Get
 * that carries it must not interleave with another such pair from this agent.
 */
export class NonceMacExchanger {
  private readonly lanes = new Lanes();

  constructor(
    private readonly client: KmipClient,
    private readonly options: NonceMacOptions = {},
  ) {}

  /** `work` alone for `uid`: agent fills and device exchanges of one key queue behind each other. */
  serialized<T>(uid: string, work: () => Promise<T>): Promise<T> {
    return this.lanes.run(uid, work);
  }

  /**
   * Sends the set-nonce + Get batch for `uid` with `setter`, or — when none is given — Modify,
   * and Add when the Modify fails because the key has no nonce yet (the server then stops, KMIP
   * 1.2 §6.14, and the Get is not processed). Returns the server's two response items untouched,
   * for a device that verifies them itself. Call inside `serialized`.
   */
  async exchange(uid: string, macKeyUid: string, nonce: Uint8Array, setter?: NonceSetter): Promise<ResponseBatchItem[]> {
    let items = await this.client.batch(nonceMacItems(uid, macKeyUid, nonce, setter ?? 'modify'), { batchOrderOption: true });
    if (setter === undefined && !isSuccessItem(items[0])) items = await this.client.batch(nonceMacItems(uid, macKeyUid, nonce, 'add'), { batchOrderOption: true });
    return [items[0]!, items[1] ?? notProcessed(Operation.Get)];
  }

  /** The key `uid` fetched with a fresh nonce and verified with `macKey` (the agent's cache fill). */
  get(uid: string, macKeyUid: string, macKey: Uint8Array): Promise<GetResult> {
    return this.serialized(uid, async () => {
      const attempts = this.options.attempts ?? 3;
      for (let attempt = 1; ; attempt++) {
        const nonce = new Uint8Array(randomBytes(NONCE_BYTES));
        const [set, get] = await this.exchange(uid, macKeyUid, nonce);
        if (!isSuccessItem(set)) throw new KmipResultError(set!, set!.operation);
        if (!isSuccessItem(get) || !get!.payload) throw new KmipResultError(get!, Operation.Get);
        try {
          return verifyNonceMacGet(get!.payload, macKey, nonce);
        } catch (error) {
          // Another client set the nonce between our set and our Get: try again; a bad MAC is not retried.
          if (!(error instanceof KmipEdgeError && error.code === 'KMIP_NONCE_STALE') || attempt >= attempts) throw error;
        }
      }
    });
  }
}

function isSuccessItem(item: ResponseBatchItem | undefined): boolean {
  return item !== undefined && item.resultStatus === ResultStatus.Success;
}

function notProcessed(operation: number): ResponseBatchItem {
  return { operation, uniqueBatchItemId: undefined, resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.GeneralFailure, resultMessage: 'not processed: the nonce could not be set', asynchronousCorrelationValue: undefined, payload: undefined };
}

/**
 * The inverse of `nonceMacItems`, for a proxy checking what a device asks for: the parts of a
 * set-nonce + MAC-wrapped Get batch, or undefined when the batch is not one. Anything else in such
 * a batch (another attribute, another wrapping, two keys) is KMIP_MESSAGE_INVALID.
 */
export function readNonceMacItems(items: readonly { operation: number; payload: TtlvItem }[]): { uid: string; macKeyUid: string; nonce: Uint8Array; setter: NonceSetter } | undefined {
  const [set, get] = items;
  if (!set || (set.operation !== Operation.AddAttribute && set.operation !== Operation.ModifyAttribute)) return undefined;
  if (items.length !== 2 || get?.operation !== Operation.Get) throw invalidMessage('a nonce-MAC request is the batch: set x-Nonce, then Get');
  const uid = requiredValue(set.payload, Tag.UniqueIdentifier, ItemType.TextString);
  const attribute = readAttribute(requiredChild(set.payload, Tag.Attribute));
  if (attribute.name !== NONCE_ATTRIBUTE || attribute.value?.type !== ItemType.ByteString || attribute.index !== undefined) throw invalidMessage(`only ${NONCE_ATTRIBUTE} (a Byte String) may be set`);
  if (attribute.value.value.length < NONCE_BYTES || attribute.value.value.length > 64) throw invalidMessage(`a nonce is ${NONCE_BYTES} to 64 bytes`);
  if (optionalValue(get.payload, Tag.UniqueIdentifier, ItemType.TextString) !== uid) throw invalidMessage('the Get names the key whose nonce is set');
  const specification = requiredChild(get.payload, Tag.KeyWrappingSpecification);
  if (requiredValue(specification, Tag.WrappingMethod, ItemType.Enumeration) !== WrappingMethod.MACSign) throw invalidMessage('the Get asks for MAC/sign wrapping');
  const macKeyUid = requiredValue(requiredChild(specification, Tag.MACSignatureKeyInformation), Tag.UniqueIdentifier, ItemType.TextString);
  const names = findChildren(specification, Tag.AttributeName).map((n) => n.value);
  if (names.length !== 1 || names[0] !== NONCE_ATTRIBUTE) throw invalidMessage(`the MAC covers the Key Value and ${NONCE_ATTRIBUTE}`);
  return { uid, macKeyUid, nonce: attribute.value.value, setter: set.operation === Operation.AddAttribute ? 'add' : 'modify' };
}
