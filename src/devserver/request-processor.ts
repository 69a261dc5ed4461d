/**
 * One KMIP request message in, one response message out (KMIP 1.2 §6–7): batches with the ID
 * Placeholder, Batch Error Continuation (Continue, Stop, Undo), asynchronous answers for a
 * configurable set of operations with Poll and Cancel, and Maximum Response Size. Never throws:
 * a message that cannot be read gets Invalid Message (KMIP 1.2 §11.1).
 */
import { randomBytes } from 'node:crypto';
import { isKmipEdgeError } from '../errors.ts';
import { buildResponseMessage, KMIP_VERSIONS, parseRequestMessage, type ProtocolVersion, type RequestMessage, type ResponseBatchItemInput } from '../kmip/message.ts';
import { BatchErrorContinuationOption, CancellationResult, Operation, ResultReason, ResultStatus, Tag } from '../kmip/tables.generated.ts';
import { optionalValue } from '../kmip/tree.ts';
import { byteString, enumeration } from '../ttlv/build.ts';
import { decodeTtlv } from '../ttlv/decode.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { ItemType } from '../ttlv/item.ts';
import { ObjectStore } from './object-store.ts';
import { OperationFailure, runOperation, type ServerContext } from './operations.ts';

export interface DevServerOptions {
  /** Operations answered Operation Pending when the client allows it (Asynchronous Indicator). */
  asynchronousOperations?: readonly number[];
  /** Polls answered Pending before the result is delivered. */
  pollsBeforeDone?: number;
  /** Lease Time granted by Obtain Lease; 0 = no limit. */
  leaseSeconds?: number;
  versions?: readonly ProtocolVersion[];
  now?: () => Date;
  /** Where objects live: in memory unless given (e.g. a LevelObjectStore). */
  store?: ObjectStore;
}

interface PendingResult {
  item: ResponseBatchItemInput;
  pollsLeft: number;
}

export class RequestProcessor {
  readonly store: ObjectStore;
  private readonly pending = new Map<string, PendingResult>();
  private readonly asynchronous: Set<number>;
  private readonly pollsBeforeDone: number;
  private readonly now: () => Date;
  private readonly leaseSeconds: number;
  private readonly versions: readonly ProtocolVersion[];
  /** Hook for Put/Notify: called after each change an operation makes. */
  onChange: ServerContext['onChange'];

  constructor(options: DevServerOptions = {}) {
    this.store = options.store ?? new ObjectStore();
    this.asynchronous = new Set(options.asynchronousOperations ?? [Operation.Locate]);
    this.pollsBeforeDone = options.pollsBeforeDone ?? 1;
    this.now = options.now ?? (() => new Date());
    this.leaseSeconds = options.leaseSeconds ?? 3600;
    this.versions = options.versions ?? KMIP_VERSIONS;
  }

  process(bytes: Uint8Array): Uint8Array {
    let request: RequestMessage;
    try {
      request = parseRequestMessage(decodeTtlv(bytes));
    } catch (error) {
      const detail = isKmipEdgeError(error) ? error.message : 'unreadable';
      return this.encode({ major: 1, minor: 0 }, [{ resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.InvalidMessage, resultMessage: `Error parsing request message: ${detail}` }]);
    }
    if (request.protocolVersion.major !== 1) {
      return this.encode(request.protocolVersion, [{ resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.InvalidMessage, resultMessage: 'unsupported major protocol version' }]);
    }
    const items = this.processBatch(request);
    let response = this.encode(request.protocolVersion, items);
    if (request.maximumResponseSize !== undefined && response.length > request.maximumResponseSize) {
      // KMIP 1.2 §6.3: an item whose answer does not fit fails with Response Too Large.
      response = this.encode(request.protocolVersion, items.map((item) => (item.payload === undefined ? item : {
        ...(item.operation !== undefined && { operation: item.operation }),
        ...(item.uniqueBatchItemId && { uniqueBatchItemId: item.uniqueBatchItemId }),
        resultStatus: ResultStatus.OperationFailed,
        resultReason: ResultReason.ResponseTooLarge,
        resultMessage: `the response of ${response.length} bytes exceeds Maximum Response Size ${request.maximumResponseSize}`,
      })));
    }
    return response;
  }

  private encode(version: ProtocolVersion, items: ResponseBatchItemInput[]): Uint8Array {
    return encodeTtlv(buildResponseMessage(version, items, this.now()));
  }

  private processBatch(request: RequestMessage): ResponseBatchItemInput[] {
    const continuation = request.batchErrorContinuationOption ?? BatchErrorContinuationOption.Stop;
    const snapshot = continuation === BatchErrorContinuationOption.Undo ? this.store.snapshot() : undefined;
    const context: ServerContext = {
      store: this.store,
      now: this.now,
      placeholder: undefined,
      leaseSeconds: this.leaseSeconds,
      versions: this.versions,
      requestVersion: request.protocolVersion,
      ...(this.onChange && { onChange: this.onChange }),
    };
    const out: ResponseBatchItemInput[] = [];
    for (const item of request.batchItems) {
      const base = { operation: item.operation, ...(item.uniqueBatchItemId && { uniqueBatchItemId: item.uniqueBatchItemId }) };
      let answer: ResponseBatchItemInput;
      try {
        answer = this.answer(context, item.operation, item.payload, request.asynchronousIndicator === true, base);
      } catch (error) {
        const failure = error instanceof OperationFailure ? error : new OperationFailure(ResultReason.GeneralFailure, 'Operation failed.');
        answer = { ...base, resultStatus: ResultStatus.OperationFailed, resultReason: failure.reason, resultMessage: failure.message };
      }
      out.push(answer);
      if (answer.resultStatus !== ResultStatus.OperationFailed) continue;
      if (continuation === BatchErrorContinuationOption.Stop) break;
      if (continuation === BatchErrorContinuationOption.Undo) {
        this.store.restore(snapshot!);
        for (let i = 0; i < out.length - 1; i++) {
          const { payload: _dropped, ...rest } = out[i]!;
          out[i] = { ...rest, resultStatus: ResultStatus.OperationUndone };
        }
        break;
      }
    }
    return out;
  }

  private answer(context: ServerContext, operation: number, payload: Parameters<typeof runOperation>[2], asynchronous: boolean, base: { operation: number; uniqueBatchItemId?: Uint8Array }): ResponseBatchItemInput {
    if (operation === Operation.Poll || operation === Operation.Cancel) {
      const correlation = optionalValue(payload, Tag.AsynchronousCorrelationValue, ItemType.ByteString);
      const key = correlation === undefined ? '' : Buffer.from(correlation).toString('hex');
      const pending = this.pending.get(key);
      if (!pending) throw new OperationFailure(ResultReason.ItemNotFound, 'no pending operation with that correlation value');
      if (operation === Operation.Cancel) {
        this.pending.delete(key);
        return { ...base, resultStatus: ResultStatus.Success, payload: [byteString(Tag.AsynchronousCorrelationValue, correlation!), enumeration(Tag.CancellationResult, CancellationResult.Canceled)] };
      }
      if (pending.pollsLeft-- > 0) return { ...base, resultStatus: ResultStatus.OperationPending, asynchronousCorrelationValue: correlation! };
      this.pending.delete(key);
      // OASIS TC 3.2: the finished result carries the original operation.
      return { ...pending.item, ...(base.uniqueBatchItemId && { uniqueBatchItemId: base.uniqueBatchItemId }) };
    }
    const result: ResponseBatchItemInput = { ...base, resultStatus: ResultStatus.Success, payload: runOperation(context, operation, payload) };
    if (!asynchronous || !this.asynchronous.has(operation)) return result;
    const correlation = randomBytes(8);
    this.pending.set(correlation.toString('hex'), { item: result, pollsLeft: this.pollsBeforeDone - 1 });
    return { ...base, resultStatus: ResultStatus.OperationPending, asynchronousCorrelationValue: correlation };
  }
}
