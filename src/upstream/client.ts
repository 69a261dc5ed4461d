/**
 * The KMIP client (ARCHITECTURE.md layer 4): typed calls over a KmipTransport, with
 * - version negotiation per channel (Discover Versions, KMIP 1.2 §4.26; 1.0 when the server lacks it);
 * - automatic coalescing: single calls made within `windowMs` go out as one batch with Batch Error
 *   Continuation = Continue and Unique Batch Item IDs, each result routed back to its caller;
 * - explicit batches (Batch Order Option, Batch Error Continuation, ID Placeholder pipelines);
 * - Operation Pending → Poll with back-off until a deadline (KMIP 1.2 §6.7, §4.28);
 * - Maximum Response Size on requests that can be large, paging Locate on Response Too Large;
 * - retries only for idempotent operations (never Get Usage Allocation), Time Stamp from the clock.
 */
import { randomBytes } from 'node:crypto';
import { KmipEdgeError, isKmipEdgeError } from '../errors.ts';
import type { Attribute } from '../kmip/attributes.ts';
import {
  buildRequestMessage,
  isSuccess,
  KMIP_VERSIONS,
  KmipResultError,
  parseResponseMessage,
  type ProtocolVersion,
  type RequestBatchItem,
  type RequestHeaderOptions,
  type ResponseBatchItem,
  type ResponseMessage,
} from '../kmip/message.ts';
import {
  payload,
  readAttributeList,
  readAttributes,
  readCancel,
  readCheck,
  readDiscoverVersions,
  readGet,
  readLease,
  readLocate,
  readQuery,
  readSingleAttribute,
  readUniqueIdentifier,
  type CheckResult,
  type GetResult,
  type LocateResult,
  type QueryResult,
} from '../kmip/payloads.ts';
import { BatchErrorContinuationOption, Operation, ResultReason, ResultStatus, Tag } from '../kmip/tables.generated.ts';
import { enumerationText } from '../kmip/vocabulary.ts';
import type { KmipChannel, KmipTransport } from '../net/transport.ts';
import { decodeTtlv } from '../ttlv/decode.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import type { TtlvItem } from '../ttlv/item.ts';

export interface KmipClientOptions {
  transport: KmipTransport;
  /** Use this version and skip negotiation (for servers known to lack Discover Versions). */
  version?: ProtocolVersion;
  /** Versions offered in Discover Versions, most preferred first. */
  versions?: readonly ProtocolVersion[];
  timeoutMs?: number;
  /**
   * The deadline of one call, all its attempts together (issue #13 finding 7: with 2 retries of
   * 10 s each a blackholed server held a call 30 s); timeoutMs unless given.
   */
  deadlineMs?: number;
  /** `false` sends every call alone. */
  coalesce?: { windowMs?: number; maxBatch?: number } | false;
  /** Attempts after the first, for idempotent operations only. */
  retries?: number;
  poll?: { initialMs?: number; maxMs?: number; deadlineMs?: number };
  /** Sent as Maximum Response Size on Locate, Query and Get Attributes (KMIP 1.2 §6.3). */
  maxResponseSize?: number;
  /** KMIP 1.4 Client Correlation Value, sent at protocol 1.4. */
  clientCorrelationValue?: string;
  clock?: () => Date;
}

/**
 * Operations safe to send again when the first attempt's outcome is unknown: they change nothing
 * on the server, or asking twice leaves the same state. Get Usage Allocation is never among them
 * (ARCHITECTURE.md §4 invariant 3).
 */
const IDEMPOTENT = new Set<number>([
  Operation.Query, Operation.DiscoverVersions, Operation.Locate, Operation.Get, Operation.GetAttributes,
  Operation.GetAttributeList, Operation.Check, Operation.ObtainLease, Operation.Poll,
]);
/** Operations whose responses can be large: they carry Maximum Response Size. */
const LARGE = new Set<number>([Operation.Locate, Operation.Query, Operation.GetAttributes, Operation.GetAttributeList]);

/** The outcome of an operation is unknown: the request may or may not have been executed. */
export function outcomeUnknown(operation: number, cause: unknown): KmipEdgeError {
  return new KmipEdgeError('KMIP_OUTCOME_UNKNOWN', `${enumerationText(Tag.Operation, operation)}: no response, the server may or may not have executed it`, { cause });
}

interface Queued {
  item: RequestBatchItem;
  resolve: (item: ResponseBatchItem) => void;
  reject: (error: Error) => void;
}

export interface BatchOptions {
  /** KMIP 1.2 §6.13; needed (true) for ID Placeholder pipelines. */
  batchOrderOption?: boolean;
  /** KMIP 1.2 §6.14 Continue/Stop/Undo (BatchErrorContinuationOption values); default Stop. */
  batchErrorContinuationOption?: number;
  maximumResponseSize?: number;
  /** KMIP 1.2 §6.7: the server may answer Operation Pending; the client then polls to completion. */
  asynchronousIndicator?: boolean;
}

export class KmipClient {
  private readonly transport: KmipTransport;
  private readonly timeoutMs: number;
  private readonly deadlineMs: number;
  private readonly windowMs: number;
  private readonly maxBatch: number;
  private readonly coalescing: boolean;
  private readonly retries: number;
  private readonly poll: { initialMs: number; maxMs: number; deadlineMs: number };
  private readonly clock: () => Date;
  private queue: Queued[] = [];
  private flushTimer: NodeJS.Timeout | NodeJS.Immediate | undefined;

  constructor(private readonly options: KmipClientOptions) {
    this.transport = options.transport;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.deadlineMs = options.deadlineMs ?? this.timeoutMs;
    this.coalescing = options.coalesce !== false;
    this.windowMs = options.coalesce ? (options.coalesce.windowMs ?? 0) : 0;
    this.maxBatch = options.coalesce ? (options.coalesce.maxBatch ?? 64) : 64;
    this.retries = options.retries ?? 2;
    this.poll = { initialMs: 50, maxMs: 2000, deadlineMs: 60_000, ...options.poll };
    this.clock = options.clock ?? (() => new Date());
  }

  async close(): Promise<void> {
    if (this.queue.length > 0) this.flush();
    await this.transport.close();
  }

  // -------------------------------------------------------------------------------------------
  // Typed operations (KMIP 1.2 §4). Each throws KmipResultError when the server says no.

  async query(functions: readonly number[]): Promise<QueryResult> {
    return readQuery(await this.call(Operation.Query, payload.query(functions)));
  }

  async discoverVersions(versions: readonly ProtocolVersion[] = this.options.versions ?? KMIP_VERSIONS): Promise<ProtocolVersion[]> {
    return readDiscoverVersions(await this.call(Operation.DiscoverVersions, payload.discoverVersions(versions)));
  }

  async create(objectType: number, attributes: readonly Attribute[]): Promise<string> {
    return readUniqueIdentifier(await this.call(Operation.Create, payload.create(objectType, attributes)));
  }

  async register(objectType: number, attributes: readonly Attribute[], object: TtlvItem): Promise<string> {
    return readUniqueIdentifier(await this.call(Operation.Register, payload.register(objectType, attributes, object)));
  }

  /** One Locate request; see locateAll for paging through every match. */
  async locate(options: Parameters<typeof payload.locate>[0] = {}): Promise<LocateResult> {
    return readLocate(await this.call(Operation.Locate, payload.locate(options)));
  }

  /**
   * Every match, in pages of Maximum Items / Offset Items (KMIP 1.3 §4.9); a page the server
   * finds too large (Response Too Large) is halved and asked again.
   */
  async locateAll(options: { attributes?: readonly Attribute[]; storageStatusMask?: number; pageSize?: number } = {}): Promise<string[]> {
    const found: string[] = [];
    let pageSize = options.pageSize ?? 256;
    for (;;) {
      let page: LocateResult;
      try {
        page = await this.locate({ ...options, maximumItems: pageSize, offsetItems: found.length });
      } catch (error) {
        if (error instanceof KmipResultError && error.resultReason === 'ResponseTooLarge' && pageSize > 1) {
          pageSize = Math.floor(pageSize / 2);
          continue;
        }
        throw error;
      }
      found.push(...page.uniqueIdentifiers);
      if (page.uniqueIdentifiers.length < pageSize) return found;
    }
  }

  async get(uniqueIdentifier: string, options: Parameters<typeof payload.get>[1] = {}): Promise<GetResult> {
    return readGet(await this.call(Operation.Get, payload.get(uniqueIdentifier, options)));
  }

  async getAttributes(uniqueIdentifier: string, names: readonly string[] = []): Promise<{ uniqueIdentifier: string; attributes: Attribute[] }> {
    return readAttributes(await this.call(Operation.GetAttributes, payload.getAttributes(uniqueIdentifier, names)));
  }

  async getAttributeList(uniqueIdentifier: string): Promise<string[]> {
    return readAttributeList(await this.call(Operation.GetAttributeList, payload.getAttributeList(uniqueIdentifier))).names;
  }

  async addAttribute(uniqueIdentifier: string, attribute: Attribute): Promise<Attribute> {
    return readSingleAttribute(await this.call(Operation.AddAttribute, payload.addAttribute(uniqueIdentifier, attribute))).attribute;
  }

  async modifyAttribute(uniqueIdentifier: string, attribute: Attribute): Promise<Attribute> {
    return readSingleAttribute(await this.call(Operation.ModifyAttribute, payload.modifyAttribute(uniqueIdentifier, attribute))).attribute;
  }

  async deleteAttribute(uniqueIdentifier: string, name: string, index?: number): Promise<Attribute> {
    return readSingleAttribute(await this.call(Operation.DeleteAttribute, payload.deleteAttribute(uniqueIdentifier, name, index))).attribute;
  }

  async check(uniqueIdentifier: string, options: Parameters<typeof payload.check>[1] = {}): Promise<CheckResult> {
    return readCheck(await this.call(Operation.Check, payload.check(uniqueIdentifier, options)));
  }

  async obtainLease(uniqueIdentifier: string): Promise<{ uniqueIdentifier: string; leaseTime: number; lastChangeDate: bigint }> {
    return readLease(await this.call(Operation.ObtainLease, payload.obtainLease(uniqueIdentifier)));
  }

  /** Never retried: a second request could be a second grant (ARCHITECTURE.md §4 invariant 3). */
  async getUsageAllocation(uniqueIdentifier: string, usageLimitsCount: bigint): Promise<string> {
    return readUniqueIdentifier(await this.call(Operation.GetUsageAllocation, payload.getUsageAllocation(uniqueIdentifier, usageLimitsCount)));
  }

  async activate(uniqueIdentifier: string): Promise<string> {
    return readUniqueIdentifier(await this.call(Operation.Activate, payload.activate(uniqueIdentifier)));
  }

  async revoke(uniqueIdentifier: string, reason: number, options: Parameters<typeof payload.revoke>[2] = {}): Promise<string> {
    return readUniqueIdentifier(await this.call(Operation.Revoke, payload.revoke(uniqueIdentifier, reason, options)));
  }

  async destroy(uniqueIdentifier: string): Promise<string> {
    return readUniqueIdentifier(await this.call(Operation.Destroy, payload.destroy(uniqueIdentifier)));
  }

  /** One Poll (KMIP 1.2 §4.28): the finished response item, or Pending still. */
  async pollOnce(correlation: Uint8Array): Promise<ResponseBatchItem> {
    const response = await this.exchange([{ operation: Operation.Poll, payload: payload.poll(correlation) }], {}, true);
    return response.batchItems[0]!;
  }

  async cancel(correlation: Uint8Array): Promise<number> {
    return readCancel(await this.call(Operation.Cancel, payload.cancel(correlation))).cancellationResult;
  }

  // -------------------------------------------------------------------------------------------
  // Explicit batches

  /**
   * Sends `items` as one request and returns one response item per request item, in order, as
   * the server answered them (KMIP 1.2 §6.14: after a Stop, unprocessed items have no response;
   * they come back as undefined). Pending items are polled to completion.
   */
  async batch(items: readonly { operation: number; payload: TtlvItem[] }[], options: BatchOptions = {}): Promise<(ResponseBatchItem | undefined)[]> {
    const ids = items.map(() => randomBytes(4));
    const request = items.map((item, i) => ({ ...item, uniqueBatchItemId: ids[i]! }));
    const header: RequestHeaderOptions = {
      ...(options.batchOrderOption !== undefined && { batchOrderOption: options.batchOrderOption }),
      ...(options.batchErrorContinuationOption !== undefined && { batchErrorContinuationOption: options.batchErrorContinuationOption }),
      ...(options.maximumResponseSize !== undefined && { maximumResponseSize: options.maximumResponseSize }),
      ...(options.asynchronousIndicator !== undefined && { asynchronousIndicator: options.asynchronousIndicator }),
    };
    const idempotent = items.every((item) => IDEMPOTENT.has(item.operation));
    const response = await this.exchange(request, header, idempotent);
    rejectWholeMessageFailure(response, items.length);
    const byId = new Map(response.batchItems.map((item) => [hexOf(item.uniqueBatchItemId), item]));
    return Promise.all(ids.map(async (id) => {
      const item = byId.get(hexOf(id));
      return item === undefined ? undefined : this.settlePending(item);
    }));
  }

  // -------------------------------------------------------------------------------------------
  // One operation: coalesced with concurrent ones unless coalescing is off.

  /** Sends one operation and returns its Response Payload; throws KmipResultError on failure. */
  async call(operation: number, requestPayload: TtlvItem[]): Promise<TtlvItem> {
    const item = await this.submit({ operation, payload: requestPayload });
    const settled = await this.settlePending(item);
    if (!isSuccess(settled)) throw new KmipResultError(settled, operation);
    return settled.payload ?? { tag: Tag.ResponsePayload, type: 1, value: [] };
  }

  private submit(item: RequestBatchItem): Promise<ResponseBatchItem> {
    const alone = !this.coalescing || LARGE.has(item.operation) || item.operation === Operation.DiscoverVersions;
    if (alone) return this.sendAlone(item);
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (this.queue.length >= this.maxBatch) this.flush();
      else if (this.flushTimer === undefined) {
        this.flushTimer = this.windowMs > 0 ? setTimeout(() => this.flush(), this.windowMs) : setImmediate(() => this.flush());
      }
    });
  }

  private async sendAlone(item: RequestBatchItem): Promise<ResponseBatchItem> {
    const header: RequestHeaderOptions = LARGE.has(item.operation) && this.options.maxResponseSize !== undefined ? { maximumResponseSize: this.options.maxResponseSize } : {};
    const response = await this.exchange([item], header, IDEMPOTENT.has(item.operation));
    if (response.batchItems.length !== 1) throw new KmipEdgeError('KMIP_MESSAGE_INVALID', `one request item, ${response.batchItems.length} response items`);
    return response.batchItems[0]!;
  }

  private flush(): void {
    if (this.flushTimer !== undefined) {
      clearTimeout(this.flushTimer as NodeJS.Timeout);
      clearImmediate(this.flushTimer as NodeJS.Immediate);
      this.flushTimer = undefined;
    }
    const entries = this.queue.splice(0, this.maxBatch);
    if (this.queue.length > 0) this.flushTimer = setImmediate(() => this.flush());
    if (entries.length === 0) return;
    // Callers wait on their own entries: a failure anywhere in sending reaches them, never nobody.
    this.sendCoalesced(entries).catch((error: unknown) => entries.forEach((entry) => entry.reject(error as Error)));
  }

  private async sendCoalesced(entries: Queued[]): Promise<void> {
    if (entries.length === 1) {
      const entry = entries[0]!;
      this.sendAlone(entry.item).then(entry.resolve, entry.reject);
      return;
    }
    const ids = entries.map(() => randomBytes(4));
    const items = entries.map((entry, i) => ({ ...entry.item, uniqueBatchItemId: ids[i]! }));
    let response: ResponseMessage;
    try {
      // Independent callers: one failing item must not stop the others (KMIP 1.2 §6.14 Continue).
      response = await this.exchange(items, { batchErrorContinuationOption: BatchErrorContinuationOption.Continue }, entries.every((e) => IDEMPOTENT.has(e.item.operation)));
    } catch (error) {
      for (const entry of entries) entry.reject(error as Error);
      return;
    }
    if (isWholeMessageFailure(response, entries.length)) {
      // The server refused the message as a whole, so it executed none of it (PyKMIP does this
      // when any item's operation is unknown to it). Send each alone so each gets its own answer.
      for (const entry of entries) this.sendAlone(entry.item).then(entry.resolve, entry.reject);
      return;
    }
    const byId = new Map(response.batchItems.map((item) => [hexOf(item.uniqueBatchItemId), item]));
    entries.forEach((entry, i) => {
      const item = byId.get(hexOf(ids[i]));
      if (item) entry.resolve(item);
      else entry.reject(new KmipEdgeError('KMIP_MESSAGE_INVALID', 'the server answered a coalesced batch without this item'));
    });
  }

  // -------------------------------------------------------------------------------------------
  // The wire

  /**
   * One request/response exchange on a channel, with the channel's protocol version and a fresh
   * Time Stamp. Transport failures are retried (up to `retries`) only when `idempotent`; otherwise
   * they become KMIP_OUTCOME_UNKNOWN once the request may have been sent.
   */
  private async exchange(items: RequestBatchItem[], header: RequestHeaderOptions, idempotent: boolean): Promise<ResponseMessage> {
    const deadline = Date.now() + this.deadlineMs;
    // Each attempt gets what is left of the call's deadline; none starts once it has passed.
    const left = () => Math.min(this.timeoutMs, deadline - Date.now());
    for (let attempt = 0; ; attempt++) {
      let channel: KmipChannel;
      try {
        channel = await this.transport.acquire(Math.max(1, left()));
      } catch (error) {
        if (idempotent && attempt < this.retries && left() > 0) continue;
        throw error; // nothing was sent
      }
      let broken = true;
      let sent = false;
      try {
        const version = this.options.version ?? channel.negotiatedVersion ?? (await this.negotiate(channel, Math.max(1, left())));
        const request = encodeTtlv(
          buildRequestMessage(version, items, {
            ...header,
            ...(this.options.clientCorrelationValue !== undefined && { clientCorrelationValue: this.options.clientCorrelationValue }),
            timeStamp: this.clock(),
          }),
        );
        sent = true;
        const response = parseResponseMessage(decodeTtlv(await channel.roundTrip(request, Math.max(1, left()))));
        broken = false;
        return response;
      } catch (error) {
        const transportFailure = isKmipEdgeError(error) && error.code.startsWith('NET_');
        if (transportFailure && idempotent && attempt < this.retries && left() > 0) continue;
        if (transportFailure && sent && !idempotent) throw outcomeUnknown(items[0]!.operation, error);
        throw error;
      } finally {
        this.transport.release(channel, broken);
      }
    }
  }

  /**
   * Discover Versions on a fresh channel (KMIP 1.2 §4.26), sent with header version 1.1 — the
   * first to define it. A server without it (KMIP 1.0, or one that refuses the whole message)
   * gets 1.0. No common version is an error.
   */
  private async negotiate(channel: KmipChannel, timeoutMs = this.timeoutMs): Promise<ProtocolVersion> {
    const offered = this.options.versions ?? KMIP_VERSIONS;
    const request = encodeTtlv(buildRequestMessage({ major: 1, minor: 1 }, [{ operation: Operation.DiscoverVersions, payload: payload.discoverVersions(offered) }], { timeStamp: this.clock() }));
    const response = parseResponseMessage(decodeTtlv(await channel.roundTrip(request, timeoutMs)));
    const item = response.batchItems[0];
    let version: ProtocolVersion | undefined;
    if (item && isSuccess(item) && item.payload) {
      version = readDiscoverVersions(item.payload)[0];
      if (!version) throw new KmipEdgeError('KMIP_VERSION_UNSUPPORTED', `the server supports none of the versions offered (${offered.map((v) => `${v.major}.${v.minor}`).join(', ')})`);
    } else if (item && (item.resultReason === ResultReason.OperationNotSupported || item.resultReason === ResultReason.InvalidMessage)) {
      version = { major: 1, minor: 0 };
      if (!offered.some((v) => v.major === 1 && v.minor === 0)) throw new KmipEdgeError('KMIP_VERSION_UNSUPPORTED', 'the server lacks Discover Versions and 1.0 is not offered');
    } else {
      throw new KmipResultError(item ?? { resultStatus: ResultStatus.OperationFailed, resultReason: undefined, resultMessage: 'empty response' }, Operation.DiscoverVersions);
    }
    channel.negotiatedVersion = version;
    return version;
  }

  /** Polls a pending item until it completes, with back-off, until the poll deadline. */
  private async settlePending(item: ResponseBatchItem): Promise<ResponseBatchItem> {
    if (item.resultStatus !== ResultStatus.OperationPending) return item;
    const correlation = item.asynchronousCorrelationValue;
    if (!correlation) throw new KmipEdgeError('KMIP_MESSAGE_INVALID', 'Operation Pending without an Asynchronous Correlation Value');
    const deadline = Date.now() + this.poll.deadlineMs;
    let delay = this.poll.initialMs;
    for (;;) {
      if (Date.now() + delay > deadline) {
        throw new KmipEdgeError('KMIP_POLL_DEADLINE', `operation still pending after ${this.poll.deadlineMs} ms (correlation ${hexOf(correlation)})`);
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      const polled = await this.pollOnce(correlation);
      if (polled.resultStatus !== ResultStatus.OperationPending) return { ...polled, operation: polled.operation ?? item.operation };
      delay = Math.min(this.poll.maxMs, delay * 2);
    }
  }
}

function hexOf(bytes: Uint8Array | undefined): string {
  return bytes === undefined ? '' : Buffer.from(bytes).toString('hex');
}

/** One item without Operation answering several: the server rejected the message as a whole. */
function isWholeMessageFailure(response: ResponseMessage, sent: number): boolean {
  const first = response.batchItems[0];
  return sent > 1 && response.batchItems.length === 1 && first !== undefined && first.operation === undefined && !isSuccess(first);
}

function rejectWholeMessageFailure(response: ResponseMessage, sent: number): void {
  if (isWholeMessageFailure(response, sent)) throw new KmipResultError(response.batchItems[0]!);
}
