/**
 * The edge KMIP service (ARCHITECTURE.md §2, "one edge KMIP service, two doors"; issue #16): a
 * KMIP Request Message and an authenticated principal in, a Response Message out — answered from
 * the cache, the ledger and the key policy of the agent core, with the principal's key and
 * operation allow-lists (a key outside the list is Item Not Found: the principal must not learn
 * that it exists). The doors — the device protocol (frames, replay, delivery) and the local KMIP
 * listener (mutual TLS) — authenticate and move bytes; neither knows how a request is answered.
 * Refusals are results, never exceptions: nothing a principal sends ends the process.
 */
import type { AgentCore } from '../agent/agent-core.ts';
import { isKmipEdgeError } from '../errors.ts';
import { buildResponseMessage, KMIP_VERSIONS, parseRequestMessage, readProtocolVersion, type ProtocolVersion, type RequestMessage, type ResponseBatchItemInput } from '../kmip/message.ts';
import { Operation, ResultReason, ResultStatus, Tag } from '../kmip/tables.generated.ts';
import { findChild, findChildren, optionalValue, requiredChild } from '../kmip/tree.ts';
import { enumerationText } from '../kmip/vocabulary.ts';
import type { Logger } from '../log.ts';
import { observer, SUCCESS } from '../metrics/observer.ts';
import type { KeyValueStore } from '../store/kv-store.ts';
import { decodeTtlv } from '../ttlv/decode.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { ItemType, type TtlvItem } from '../ttlv/item.ts';
import type { TtlvLimits } from '../ttlv/limits.ts';
import { readNonceMacItems } from '../upstream/nonce-mac.ts';
import { writeAuditEvent, writeGetSuccessEvent } from './audit-event.ts';
import { encodeResponse, runBatch, type ItemResult } from './batch.ts';
import { readPlainGet, writeGetResponse } from './plain-get.ts';
import { ClientOperations } from './client-operations.ts';
import { ClientWrites } from './client-writes.ts';
import { CreatedKeys } from './created-keys.ts';
import { DeviceOperations } from './device-operations.ts';
import { KeyAccess } from './key-access.ts';
import { requestIdText, type KmipAnswer, type KmipRequestHandler, type OfflineCreator, type Principal, type RequestId } from './principal.ts';
import { clientRefusal, deviceRefusal, isUnreachable, Refusal } from './refusal.ts';

export interface EdgeKmipServiceOptions {
  /** The key pool (src/edge/key-pool.ts): answers a Create while the key server is unreachable. */
  offlineCreator?: OfflineCreator | undefined;
}

/** The answer to one request: the Response Message, whether it had an effect (a grant: the device door keeps the reply), and whether the request was no KMIP Request Message at all. */
export interface ServiceAnswer {
  response: Uint8Array;
  effect: boolean;
  invalid: boolean;
  /** KmipAnswer.getSuccess. */
  getSuccess?: boolean;
}

export interface AnswerOptions {
  /** TTLV limits for the request (the door's). */
  limits?: Readonly<Partial<TtlvLimits>> | undefined;
  /**
   * Answer "not now" (Permission Denied, UPSTREAM_TIMEOUT) after this long when the answer waits
   * for the upstream (issue #13 finding 7) — except a request with an effect, which is never
   * answered before its outcome is known. Undefined: wait.
   */
  deadlineMs?: number | undefined;
}

const NO_OPTIONS: AnswerOptions = Object.freeze({});

export class EdgeKmipService implements KmipRequestHandler {
  private readonly device: DeviceOperations;
  private readonly client: ClientOperations;
  /** The keys each local client created or registered here (visible to it whatever its allow-list). */
  readonly created: CreatedKeys;

  constructor(
    private readonly agent: AgentCore,
    store: KeyValueStore,
    private readonly log: Logger,
    options: EdgeKmipServiceOptions = {},
  ) {
    const pooled = (uid: string) => options.offlineCreator?.holds?.(uid) === true;
    this.device = new DeviceOperations(agent, log, pooled);
    this.created = new CreatedKeys(store);
    const access = new KeyAccess(agent, this.created, pooled);
    this.client = new ClientOperations(agent, access, new ClientWrites(agent, access, log, options.offlineCreator));
  }

  /** The local KMIP door's call (KmipRequestHandler): never rejects. */
  handle(principal: Principal, request: Uint8Array, requestId: string | RequestId): KmipAnswer | Promise<KmipAnswer> {
    try {
      const answered = this.answer(principal, request, requestId);
      return answered instanceof Promise ? answered.catch((error: unknown) => this.failed(principal, error)) : answered;
    } catch (error) {
      return this.failed(principal, error);
    }
  }

  private failed(principal: Principal, error: unknown): KmipAnswer {
    this.log.error({ event: 'kmip_request_failed', principal: principal.id, reason: (error as Error).message }, 'answering a KMIP request failed');
    return { response: generalFailure(), invalid: false };
  }

  /**
   * The Response Message for a request: at once (no promise) when memory answers it — a Get of a
   * cached key, the hot path of every device — otherwise once the agent core has.
   */
  answer(principal: Principal, body: Uint8Array, id: string | RequestId, options: AnswerOptions = NO_OPTIONS): ServiceAnswer | Promise<ServiceAnswer> {
    const isDevice = principal.kind === 'device';
    if (!isDevice) {
      // A local client's Get of a cached key, the tape library's hot path: read and answered on the bytes (plain-get.ts).
      const plain = readPlainGet(body, options.limits);
      const key = plain && versionServed(plain.version) ? this.client.readableFromMemory(principal, plain.uid) : undefined;
      if (key) {
        const now = Date.now(); // the response's Time Stamp and the audit line's time: one reading of the clock
        const response = writeGetResponse(plain!, key, now);
        if (response) {
          writeGetSuccessEvent(this.log, principal.id, id, plain!.version, plain!.uid, now);
          return { response, effect: false, invalid: false, getSuccess: true };
        }
      }
    }
    const requestId = requestIdText(id);
    let message: TtlvItem;
    let request: RequestMessage;
    try {
      message = decodeTtlv(body, options.limits);
      request = parseRequestMessage(message);
    } catch (error) {
      if (isDevice) return { response: invalidMessage(), effect: false, invalid: true };
      return this.audited(principal, requestId, undefined, clientInvalidMessage(body, options.limits, error), [], true);
    }
    const [only] = request.batchItems;
    if (request.batchItems.length === 1 && only!.operation === Operation.Get && (isDevice || versionServed(request.protocolVersion))) {
      // A client's Message Extension is looked at by the general path (batch.ts).
      const fromMemory = isDevice ? this.device.getFromMemory(principal, only!.payload) : hasExtension(message) ? undefined : this.client.getFromMemory(principal, only!.payload);
      if (fromMemory) {
        const item = { operation: Operation.Get, ...(only!.uniqueBatchItemId && { uniqueBatchItemId: only!.uniqueBatchItemId }), resultStatus: ResultStatus.Success, payload: fromMemory };
        if (isDevice) {
          observer.deviceRequest(Operation.Get, SUCCESS);
          return { response: encodeTtlv(buildResponseMessage(request.protocolVersion, [item])), effect: false, invalid: false };
        }
        const response = encodeResponse(request.protocolVersion, [item], request.maximumResponseSize);
        return this.audited(principal, requestId, request.protocolVersion, response, [{ item, uid: optionalValue(only!.payload, Tag.UniqueIdentifier, ItemType.TextString) }], false);
      }
    }
    const through = isDevice ? this.deviceBatch(principal, requestId, request) : this.clientBatch(principal, requestId, request, message);
    // A request with an effect is never answered before its outcome is known (a grant made after
    // "not now" was said would be debited and never delivered); anything else is answered "not
    // now" at the deadline, and the upstream call it waits for goes on (issue #13 finding 7).
    if (options.deadlineMs === undefined || request.batchItems.some((item) => item.operation === Operation.GetUsageAllocation)) return through;
    return this.withDeadline(through, request, options.deadlineMs);
  }

  private withDeadline(through: Promise<ServiceAnswer>, request: RequestMessage, deadlineMs: number): Promise<ServiceAnswer> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<ServiceAnswer>((resolve) => {
      timer = setTimeout(() => {
        this.log.warn({ event: 'device_answer_deadline', deadlineMs, offline: this.agent.breaker.offline }, 'the upstream did not answer in time: the device is told to try again later');
        resolve({ response: encodeTtlv(buildResponseMessage(request.protocolVersion, request.batchItems.map((item) => ({
          operation: item.operation, ...(item.uniqueBatchItemId && { uniqueBatchItemId: item.uniqueBatchItemId }),
          resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.PermissionDenied, resultMessage: 'UPSTREAM_TIMEOUT',
        })))), effect: false, invalid: false });
      }, deadlineMs);
    });
    return Promise.race([through.finally(() => clearTimeout(timer)), late]);
  }

  /**
   * A local client's batch (batch.ts): Batch Error Continuation, the ID Placeholder, Maximum
   * Response Size; answered in the request's protocol version (1.0–1.4).
   */
  private async clientBatch(principal: Principal, requestId: string, request: RequestMessage, message: TtlvItem): Promise<ServiceAnswer> {
    const version = request.protocolVersion;
    if (!versionServed(version)) {
      // Answered in the highest version served: the client learns which versions it may use.
      const refused = request.batchItems.map((item) => ({ uid: undefined, item: {
        operation: item.operation, ...(item.uniqueBatchItemId && { uniqueBatchItemId: item.uniqueBatchItemId }),
        resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.InvalidMessage, resultMessage: `protocol version ${version.major}.${version.minor} is not served: KMIP 1.0 to 1.4`,
      } }));
      return this.audited(principal, requestId, request.protocolVersion, encodeTtlv(buildResponseMessage(KMIP_VERSIONS[0]!, refused.map((r) => r.item))), refused, false);
    }
    const { results, effect } = await runBatch(request, message, requestId, (item, context) => this.client.operate(principal, item.operation, item.payload, context), (error, item) => {
      const refusal = clientRefusal(error, enumerationText(Tag.Operation, item.operation));
      if (refusal.reason === ResultReason.GeneralFailure && !(error instanceof Refusal) && !isUnreachable(error)) {
        this.log.warn({ event: 'kmip_client_item_failed', client: principal.id, operation: enumerationText(Tag.Operation, item.operation), code: (error as { code?: string }).code, reason: (error as Error).message }, 'a local KMIP client request failed');
      }
      return refusal;
    });
    const response = encodeResponse(version, results.map((r) => r.item), request.maximumResponseSize);
    return { ...this.audited(principal, requestId, request.protocolVersion, response, results, false), effect };
  }

  /** The audit event of a local client's request (./audit-event.ts). */
  private audited(principal: Principal, requestId: string, version: ProtocolVersion | undefined, response: Uint8Array, results: readonly ItemResult[], invalid: boolean): ServiceAnswer {
    writeAuditEvent(this.log, {
      client: principal.id, requestId, version, invalid,
      items: results.map(({ item, uid }) => ({
        operation: item.operation === undefined ? undefined : enumerationText(Tag.Operation, item.operation),
        uid,
        status: enumerationText(Tag.ResultStatus, item.resultStatus),
        reason: item.resultReason === undefined ? undefined : enumerationText(Tag.ResultReason, item.resultReason),
      })),
    });
    return { response, effect: false, invalid };
  }

  /** A device's batch: each item on its own (PROTOCOL.md §5), or the nonce-MAC exchange. */
  private async deviceBatch(device: Principal, requestId: string, request: RequestMessage): Promise<ServiceAnswer> {
    const version = request.protocolVersion;
    let items: ResponseBatchItemInput[];
    let effect = false;
    try {
      items = [];
      const nonceMac = readNonceMacItems(request.batchItems);
      if (nonceMac) return { response: encodeTtlv(buildResponseMessage(version, await this.device.nonceMacExchange(device, request.batchItems, nonceMac))), effect: false, invalid: false };
      for (const [index, item] of request.batchItems.entries()) {
        const base = { operation: item.operation, ...(item.uniqueBatchItemId && { uniqueBatchItemId: item.uniqueBatchItemId }) };
        try {
          items.push({ ...base, resultStatus: ResultStatus.Success, payload: await this.device.operate(device, item.operation, item.payload, `${requestId}/${index}`) });
          observer.deviceRequest(item.operation, SUCCESS);
          if (item.operation === Operation.GetUsageAllocation) effect = true; // a refused grant debited nothing
        } catch (error) {
          const refusal = deviceRefusal(error);
          this.log.info({ event: 'device_request_refused', device: device.id, operation: enumerationText(Tag.Operation, item.operation), reason: enumerationText(Tag.ResultReason, refusal.reason), detail: refusal.message }, 'device request refused');
          observer.deviceRequest(item.operation, refusal.reason);
          items.push({ ...base, resultStatus: ResultStatus.OperationFailed, resultReason: refusal.reason, resultMessage: refusal.message });
        }
      }
    } catch {
      return { response: invalidMessage(), effect, invalid: true };
    }
    return { response: encodeTtlv(buildResponseMessage(version, items)), effect, invalid: false };
  }
}

function hasExtension(message: TtlvItem): boolean {
  return findChildren(message, Tag.BatchItem).some((item) => findChild(item, Tag.MessageExtension) !== undefined);
}

/** KMIP 1.x, versions 1.0–1.4 (message.ts KMIP_VERSIONS): what the service answers in. */
function versionServed(version: ProtocolVersion): boolean {
  for (const v of KMIP_VERSIONS) if (v.major === version.major && v.minor === version.minor) return true;
  return false;
}

/**
 * Invalid Message for a client's request that is no KMIP Request Message (KMIP 1.2 §11.1: the
 * door then closes the connection), in the request's protocol version when it can be read.
 */
function clientInvalidMessage(body: Uint8Array, limits: AnswerOptions['limits'], error: unknown): Uint8Array {
  let version: ProtocolVersion = { major: 1, minor: 0 };
  try {
    const header = requiredChild(decodeTtlv(body, limits), Tag.RequestHeader);
    const read = readProtocolVersion(requiredChild(header, Tag.ProtocolVersion));
    if (versionServed(read)) version = read;
  } catch {
    // not even a header: answered at 1.0, which every KMIP 1.x client reads
  }
  const detail = isKmipEdgeError(error) ? `: ${error.message}` : '';
  return encodeTtlv(buildResponseMessage(version, [{ resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.InvalidMessage, resultMessage: `not a valid KMIP Request Message${detail}` }]));
}

function invalidMessage(): Uint8Array {
  return encodeTtlv(buildResponseMessage({ major: 1, minor: 2 }, [{ resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.InvalidMessage, resultMessage: 'the frame does not hold a valid KMIP request' }]));
}

function generalFailure(): Uint8Array {
  return encodeTtlv(buildResponseMessage({ major: 1, minor: 2 }, [{ resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.GeneralFailure, resultMessage: 'the agent could not complete the request' }]));
}
