/**
 * What an operator needs to see of the upstream, without touching the client: a KmipTransport
 * wrapper that times every round trip (histogram by operation), logs connect and TLS failures with
 * the reason (the words `kmip-edge kmip` prints, from ttlv-connection.ts), and recognises the
 * ledger's refills — Get Usage Allocation batch items — to log and count each with its key, units,
 * latency and outcome; and a circuit breaker that logs each online/offline transition with the
 * failure that caused it. Requests and responses are decoded only for their operations, Unique
 * Identifiers, counts and results: nothing else of them (key material) is read or logged.
 */
import { performance } from 'node:perf_hooks';
import { CircuitBreaker } from '../agent/circuit-breaker.ts';
import { parseRequestMessage, parseResponseMessage, type ResponseMessage } from '../kmip/message.ts';
import { Operation, ResultStatus, Tag } from '../kmip/tables.generated.ts';
import { optionalValue } from '../kmip/tree.ts';
import { enumerationText } from '../kmip/vocabulary.ts';
import type { Logger } from '../log.ts';
import type { KmipChannel, KmipTransport } from '../net/transport.ts';
import { decodeTtlv } from '../ttlv/decode.ts';
import { ItemType } from '../ttlv/item.ts';
import type { AgentMetrics } from './agent-metrics.ts';

/** The same connect failure is logged at warn once per this long (offline, the breaker probes every few seconds). */
const REPEAT_WARNING_MS = 60_000;

interface Refill {
  key: string;
  units: bigint;
  batchItemId: string | undefined;
  index: number;
}

export class UpstreamWatch implements KmipTransport {
  private readonly inner = new WeakMap<KmipChannel, KmipChannel>();
  private lastWarning = { text: '', at: 0 };

  constructor(
    private readonly transport: KmipTransport,
    private readonly log: Logger,
    private readonly metrics: AgentMetrics,
    /** HOST:PORT, for the log lines. */
    private readonly upstream: string,
  ) {}

  async acquire(timeoutMs: number): Promise<KmipChannel> {
    let channel: KmipChannel;
    try {
      channel = await this.transport.acquire(timeoutMs);
    } catch (error) {
      this.failed(error, 'connect');
      throw error;
    }
    const wrapped: KmipChannel = {
      roundTrip: (request, ms) => this.roundTrip(channel, request, ms),
      get negotiatedVersion() {
        return channel.negotiatedVersion;
      },
      set negotiatedVersion(version) {
        channel.negotiatedVersion = version;
      },
    };
    this.inner.set(wrapped, channel);
    return wrapped;
  }

  release(channel: KmipChannel, broken: boolean): void {
    this.transport.release(this.inner.get(channel) ?? channel, broken);
  }

  close(): Promise<void> {
    return this.transport.close();
  }

  private async roundTrip(channel: KmipChannel, request: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const { operation, refills } = readRequest(request);
    const start = performance.now();
    let response: Uint8Array;
    try {
      response = await channel.roundTrip(request, timeoutMs);
    } catch (error) {
      const ms = performance.now() - start;
      this.metrics.upstreamSeconds.observe({ operation, outcome: 'error' }, ms / 1000);
      this.failed(error, 'request');
      for (const refill of refills) this.refilled(refill, 'error', ms, (error as Error).message);
      throw error;
    }
    const ms = performance.now() - start;
    this.metrics.upstreamSeconds.observe({ operation, outcome: 'ok' }, ms / 1000);
    if (refills.length > 0) {
      let parsed: ResponseMessage | undefined;
      try {
        parsed = parseResponseMessage(decodeTtlv(response));
      } catch {
        // the client reports the invalid response; the refill counts as failed
      }
      for (const refill of refills) {
        const item = parsed?.batchItems.find((i) => refill.batchItemId !== undefined && i.uniqueBatchItemId !== undefined && Buffer.from(i.uniqueBatchItemId).toString('hex') === refill.batchItemId) ?? parsed?.batchItems[refill.index];
        const outcome = !item ? 'InvalidMessage' : item.resultStatus === ResultStatus.Success ? 'Success' : item.resultReason !== undefined ? enumerationText(Tag.ResultReason, item.resultReason) : enumerationText(Tag.ResultStatus, item.resultStatus);
        this.refilled(refill, outcome, ms, item?.resultMessage);
      }
    }
    return response;
  }

  private refilled(refill: Refill, outcome: string, ms: number, reason: string | undefined): void {
    this.metrics.refills.inc({ outcome });
    const fields = { event: 'refill', uid: refill.key, units: Number(refill.units), ms: Math.round(ms * 10) / 10, outcome, ...(reason !== undefined && outcome !== 'Success' && { reason }) };
    if (outcome === 'Success') {
      this.metrics.refillUnits.inc(Number(refill.units));
      this.log.info(fields, 'usage allocation refilled from the upstream');
    } else this.log.warn(fields, 'usage allocation refill failed');
  }

  /** A connect (or TLS) failure, or a round trip that got no response. */
  private failed(error: unknown, stage: 'connect' | 'request'): void {
    const code = (error as { code?: string }).code ?? 'NET_FAILED';
    const reason = (error as Error).message;
    const event = code === 'NET_TLS_FAILED' ? 'upstream_tls_failed' : stage === 'connect' ? 'upstream_connect_failed' : 'upstream_request_failed';
    const fields = { event, upstream: this.upstream, code, reason };
    const now = Date.now();
    if (this.lastWarning.text === reason && now - this.lastWarning.at < REPEAT_WARNING_MS) return void this.log.debug(fields, 'upstream unreachable (repeated)');
    this.lastWarning = { text: reason, at: now };
    this.log.warn(fields, stage === 'connect' ? 'cannot connect to the upstream' : 'upstream request got no response');
  }
}

/** The first operation of a request (the histogram label) and its Get Usage Allocation items. */
function readRequest(request: Uint8Array): { operation: string; refills: Refill[] } {
  try {
    const message = parseRequestMessage(decodeTtlv(request));
    const refills: Refill[] = [];
    message.batchItems.forEach((item, index) => {
      if (item.operation !== Operation.GetUsageAllocation) return;
      refills.push({
        key: optionalValue(item.payload, Tag.UniqueIdentifier, ItemType.TextString) ?? '(placeholder)',
        units: optionalValue(item.payload, Tag.UsageLimitsCount, ItemType.LongInteger) ?? 0n,
        batchItemId: item.uniqueBatchItemId && Buffer.from(item.uniqueBatchItemId).toString('hex'),
        index,
      });
    });
    const first = message.batchItems[0]?.operation;
    return { operation: first === undefined ? 'None' : enumerationText(Tag.Operation, first), refills };
  } catch {
    return { operation: 'Unknown', refills: [] };
  }
}

/**
 * The circuit breaker, logging each transition: `upstream_offline` (warn) with the failure that
 * opened it, `upstream_online` (info) when a call succeeds again. Transitions are tracked, not
 * inferred per call, so concurrent failures log one transition.
 */
export class WatchedBreaker extends CircuitBreaker {
  private reportedOffline = false;
  private assumedOffline = false;
  /** When the current state began (ms since the epoch), and the last transport failure. */
  since = Date.now();
  lastError: { code: string; reason: string; at: number } | undefined;

  constructor(
    private readonly log: Logger,
    ...settings: ConstructorParameters<typeof CircuitBreaker>
  ) {
    super(...settings);
  }

  override async run<T>(what: string, call: () => Promise<T>): Promise<T> {
    try {
      const result = await super.run(what, call);
      this.assumedOffline = false;
      return result;
    } catch (error) {
      const code = (error as { code?: string }).code ?? '';
      if (code.startsWith('NET_') || code === 'KMIP_OUTCOME_UNKNOWN') this.lastError = { code, reason: (error as Error).message, at: Date.now() };
      throw error;
    } finally {
      const offline = this.state === 'offline';
      if (offline !== this.reportedOffline) {
        this.reportedOffline = offline;
        this.since = Date.now();
        if (offline) this.log.warn({ event: 'upstream_offline', during: what, code: this.lastError?.code, reason: this.lastError?.reason }, 'upstream offline: serving from the cache, leases and allocations');
        else this.log.info({ event: 'upstream_online', during: what }, 'upstream online again');
      }
    }
  }

  /**
   * The startup probe found the upstream unreachable (run-command.ts logs that as upstream_offline):
   * the state is offline until a call gets through, which then logs upstream_online.
   */
  assumeOffline(): void {
    this.assumedOffline = true;
    this.reportedOffline = true;
    this.since = Date.now();
  }

  get state(): 'online' | 'offline' {
    return this.offline || this.assumedOffline ? 'offline' : 'online';
  }
}
