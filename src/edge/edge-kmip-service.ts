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
import { buildResponseMessage, parseRequestMessage, type RequestMessage, type ResponseBatchItemInput } from '../kmip/message.ts';
import { Operation, ResultReason, ResultStatus, Tag } from '../kmip/tables.generated.ts';
import { enumerationText } from '../kmip/vocabulary.ts';
import type { Logger } from '../log.ts';
import { observer, SUCCESS } from '../metrics/observer.ts';
import type { KeyValueStore } from '../store/kv-store.ts';
import { decodeTtlv } from '../ttlv/decode.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import type { TtlvLimits } from '../ttlv/limits.ts';
import { readNonceMacItems } from '../upstream/nonce-mac.ts';
import { DeviceOperations } from './device-operations.ts';
import type { KmipAnswer, KmipRequestHandler, OfflineCreator, Principal } from './principal.ts';
import { deviceRefusal } from './refusal.ts';

export interface EdgeKmipServiceOptions {
  /** The key pool (src/edge/key-pool.ts): answers a Create while the key server is unreachable. */
  offlineCreator?: OfflineCreator | undefined;
}

/** The answer to one request: the Response Message, whether it had an effect (a grant: the device door keeps the reply), and whether the request was no KMIP Request Message at all. */
export interface ServiceAnswer {
  response: Uint8Array;
  effect: boolean;
  invalid: boolean;
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

export class EdgeKmipService implements KmipRequestHandler {
  private readonly device: DeviceOperations;

  constructor(
    private readonly agent: AgentCore,
    readonly store: KeyValueStore,
    private readonly log: Logger,
    readonly options: EdgeKmipServiceOptions = {},
  ) {
    this.device = new DeviceOperations(agent, log);
  }

  /** The local KMIP door's call (KmipRequestHandler): never rejects. */
  async handle(principal: Principal, request: Uint8Array, requestId: string): Promise<KmipAnswer> {
    try {
      const { response, invalid } = await this.answer(principal, request, requestId);
      return { response, invalid };
    } catch (error) {
      this.log.error({ event: 'kmip_request_failed', principal: principal.id, reason: (error as Error).message }, 'answering a KMIP request failed');
      return { response: generalFailure(), invalid: false };
    }
  }

  /**
   * The Response Message for a request: at once (no promise) when memory answers it — a Get of a
   * cached key, the hot path of every device — otherwise once the agent core has.
   */
  answer(principal: Principal, body: Uint8Array, requestId: string, options: AnswerOptions = {}): ServiceAnswer | Promise<ServiceAnswer> {
    let request: RequestMessage;
    try {
      request = parseRequestMessage(decodeTtlv(body, options.limits));
    } catch {
      return { response: invalidMessage(), effect: false, invalid: true };
    }
    const [only] = request.batchItems;
    const fromMemory = request.batchItems.length === 1 && only!.operation === Operation.Get ? this.device.getFromMemory(principal, only!.payload) : undefined;
    if (fromMemory) {
      const item = { operation: Operation.Get, ...(only!.uniqueBatchItemId && { uniqueBatchItemId: only!.uniqueBatchItemId }), resultStatus: ResultStatus.Success, payload: fromMemory };
      observer.deviceRequest(Operation.Get, SUCCESS);
      return { response: encodeTtlv(buildResponseMessage(request.protocolVersion, [item])), effect: false, invalid: false };
    }
    const through = this.deviceBatch(principal, requestId, request);
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

function invalidMessage(): Uint8Array {
  return encodeTtlv(buildResponseMessage({ major: 1, minor: 2 }, [{ resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.InvalidMessage, resultMessage: 'the frame does not hold a valid KMIP request' }]));
}

function generalFailure(): Uint8Array {
  return encodeTtlv(buildResponseMessage({ major: 1, minor: 2 }, [{ resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.GeneralFailure, resultMessage: 'the agent could not complete the request' }]));
}
