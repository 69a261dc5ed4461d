/**
 * The agent's side of the device protocol (firmware-bridge/PROTOCOL.md, ARCHITECTURE.md §3): a
 * frame in, a reply frame out (or nothing — bad frames are dropped silently). Transports only move
 * frames; this is where they are authenticated, replay-checked and rate-limited, and where replies
 * are kept and pushes relayed. The KMIP requests they carry are answered by the edge KMIP service
 * (src/edge/edge-kmip-service.ts) with the device as principal — its allow-lists, through the
 * agent core (cache, ledger, leases); a reply too large for a frame is refused here.
 *
 * Replay and retries: the up counter is accepted once, within a sliding window (replay-guard.ts),
 * and stored — synced with the reply when the request had an effect, written behind for reads;
 * down counters come from durably reserved blocks. A resent frame (same counter) inside the window
 * is always answered (PROTOCOL.md §3.1): a request with an effect with the reply kept for it — by
 * counter, while inside the window — not acted on again; anything else acted on again. Effects are
 * idempotent by (device, counter) — a grant's request id is the frame counter — so a crash cannot
 * double-count. No device frame ends the process: handle() never rejects.
 */
import type { AgentCore } from '../agent/agent-core.ts';
import { EdgeKmipService, type AnswerOptions, type ServiceAnswer } from '../edge/edge-kmip-service.ts';
import type { Principal } from '../edge/principal.ts';
import { isKmipEdgeError } from '../errors.ts';
import { buildResponseMessage, parseRequestMessage, type ProtocolVersion } from '../kmip/message.ts';
import { ResultReason, ResultStatus } from '../kmip/tables.generated.ts';
import type { Push } from '../kmip/push.ts';
import type { Logger } from '../log.ts';
import type { BatchOperation, KeyValueStore } from '../store/kv-store.ts';
import { decodeTtlv } from '../ttlv/decode.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { MAX_FRAME_BYTES, openFrame, parseFrameHeader, sealFrame, TAG_BYTES, type ParsedFrameHeader } from './frame.ts';
import type { Device, DeviceRegistry } from './registry.ts';
import { counterKey, KEPT_REPLY_PREFIX, REPLAY_WINDOW, ReplayGuard, type CounterWrite } from './replay-guard.ts';
import { DropLog } from './drop-log.ts';
import { DownCounters } from './down-counters.ts';
import { PushRelay, type FrameSender, type RelayOptions } from './push-relay.ts';
import { observer } from '../metrics/observer.ts';

/** A device request is small: its TTLV limits (a frame is at most 4096 bytes anyway). */
const BODY_LIMITS = Object.freeze({ maxMessageBytes: 4096, maxDepth: 12, maxItems: 256, maxValueBytes: 1024, maxBigIntegerBytes: 64 });
/**
 * How long a device's read waits for the upstream before it is answered "not now" (issue #13
 * finding 7): a blackholed key server must not hold a device for the client's whole timeout.
 * The upstream call goes on (its result fills the cache for the next request); resends of the
 * frame meanwhile collapse onto it. Longer than a loaded gateway needs for a first fill (TLS
 * handshake, version negotiation, Get) — a shorter one turns load jitter into refusals — and far
 * below a device's give-up deadline (device-requester.ts: 30 s).
 */
export const ANSWER_DEADLINE_MS = 2000;

/** The disk key of the reply kept for a request with an effect: one per counter (16 hex digits, sorting by counter). */
function keptReplyKey(deviceId: string, counter: bigint): string {
  return `${KEPT_REPLY_PREFIX}${deviceId}/${counter.toString(16).padStart(16, '0')}`;
}

export interface DeviceServiceOptions extends RelayOptions {
  /** ANSWER_DEADLINE_MS unless given. */
  answerDeadlineMs?: number;
  /** The edge KMIP service that answers the requests (shared with the local KMIP door); one of its own unless given. */
  service?: EdgeKmipService;
}

export class DeviceService {
  private readonly replay: ReplayGuard;
  /** Frames dropped: counted by reason, logged at most once per reason and interval (drop-log.ts). */
  readonly drops: DropLog;
  /** Frames dropped, by reason code (never their content); the same map as drops.counts. */
  readonly dropped: Map<string, number>;
  /**
   * Requests being acted on, by device and counter: a resend of one of them while it is (an
   * upstream call that is slow) is not acted on again — the reply goes out once it is ready.
   */
  private readonly inFlight = new Set<string>();
  /** Counters towards devices, shared by replies and relayed pushes. */
  private readonly downCounters: DownCounters;
  /** Upstream Put/Notify relayed to devices until they acknowledge. */
  readonly relay: PushRelay;
  /** Devices by id (their keys unsealed once, kept in memory like the agent's other keys). */
  private readonly devices = new Map<string, Device>();
  /** Token buckets per device (updated in place: this runs for every frame). */
  private readonly buckets = new Map<string, { tokens: number; refilledAt: number }>();
  /** The devices as principals of the edge KMIP service, by id. */
  private readonly principals = new Map<string, Principal>();
  /** How the service answers a device: a device's TTLV limits and its answer deadline. */
  private readonly answerOptions: AnswerOptions;
  /** Answers the KMIP requests the frames carry (this layer keeps frames, replay, rate limits and delivery). */
  readonly service: EdgeKmipService;

  constructor(
    private readonly agent: AgentCore,
    private readonly registry: DeviceRegistry,
    private readonly store: KeyValueStore,
    private readonly log: Logger,
    options: DeviceServiceOptions = {},
  ) {
    const { answerDeadlineMs, service, ...relayOptions } = options;
    this.answerOptions = Object.freeze({ limits: BODY_LIMITS, deadlineMs: answerDeadlineMs ?? ANSWER_DEADLINE_MS });
    this.service = service ?? new EdgeKmipService(agent, store, log);
    this.replay = new ReplayGuard(store);
    this.downCounters = new DownCounters(store);
    this.drops = new DropLog(log);
    this.dropped = this.drops.counts;
    this.relay = new PushRelay(store, agent.masterKey, registry, this.downCounters, log, relayOptions);
  }

  /**
   * A server-initiated Put/Notify: applied by the agent core with the outbox entries for the
   * devices it concerns in the same synced batch, then delivered to them. Resolves once durable —
   * the listener acknowledges it then.
   */
  async applyAndRelay(push: Push): Promise<'applied' | 'duplicate' | 'stale'> {
    const relayed = await this.relay.prepare(push);
    const outcome = await this.agent.applyPush(push, relayed.writes);
    relayed.deliver();
    return outcome;
  }

  /** Stops relaying and writes the counters still held back; the store stays open (the agent owns it). */
  async close(): Promise<void> {
    this.relay.close();
    this.drops.close();
    await this.replay.flush();
  }

  /** The device was added, changed or removed in the registry: drop what is held in memory for it. */
  forget(deviceId: string): void {
    this.devices.delete(deviceId);
    this.principals.delete(deviceId);
    this.buckets.delete(deviceId);
    this.replay.forget(deviceId);
    this.downCounters.forget(deviceId);
  }

  /** Writes the counters held back now (tests comparing the store before and after). */
  flush(): Promise<void> {
    return this.replay.flush();
  }

  private drop(code: string, deviceId?: string): undefined {
    this.drops.drop(code, deviceId);
    return undefined;
  }

  /**
   * Handles one frame; `topicDeviceId` is the device the transport received it for, if it knows,
   * and `route` how to send that device a frame later (relayed pushes). Never rejects: a frame
   * from a device must not end the process (issue #13 finding 1) — an unexpected failure is
   * logged and counted (DEVICE_INTERNAL_ERROR) and the frame gets no answer; the device resends.
   */
  async handle(frame: Uint8Array, topicDeviceId?: string, route?: FrameSender): Promise<Uint8Array | undefined> {
    try {
      return await this.handleFrame(frame, topicDeviceId, route);
    } catch (error) {
      // The store cannot be written (disk full): no reply could be made durable (a down counter
      // block). Nothing was debited without its record, and a resend of the frame is worked out
      // again — a grant is then answered from the ledger's record (issue #13.2).
      if (isKmipEdgeError(error) && error.code.startsWith('STORE_')) return this.drop(error.code, topicDeviceId);
      this.log.error({ event: 'device_frame_failed', device: topicDeviceId, code: (error as { code?: string }).code, reason: (error as Error).message }, 'handling a device frame failed: not answered');
      return this.drop('DEVICE_INTERNAL_ERROR', topicDeviceId);
    }
  }

  /**
   * Frames of one device are handled concurrently (issue #13 finding 7: a Get the cache answers
   * must not wait behind another request's upstream call). What must not happen twice is
   * guarded where it is: the replay window accepts a counter once (synchronously), the down
   * counter hands out each value once, and a resend of a request still being acted on is dropped
   * (collapsed) — the one reply goes out when ready; replies are bound by reply_to, not order.
   */
  private async handleFrame(frame: Uint8Array, topicDeviceId: string | undefined, route: FrameSender | undefined): Promise<Uint8Array | undefined> {
    let parsed: ParsedFrameHeader;
    try {
      parsed = parseFrameHeader(frame);
    } catch (error) {
      return this.drop(isKmipEdgeError(error) ? error.code : 'FRAME_INVALID');
    }
    const { header } = parsed;
    if (topicDeviceId !== undefined && topicDeviceId !== header.deviceId) return this.drop('FRAME_WRONG_DEVICE', topicDeviceId);
    if (header.direction !== 'up') return this.drop('FRAME_DIRECTION', header.deviceId);
    const device = this.devices.get(header.deviceId) ?? (await this.registry.get(header.deviceId));
    if (device) this.devices.set(device.id, device);
    if (!device) return this.drop('FRAME_UNKNOWN_DEVICE', header.deviceId);
    if (header.suite !== device.suite) return this.drop('FRAME_SUITE', device.id);
    if (frame.length > device.limits.maxFrameBytes) return this.drop('FRAME_TOO_LARGE', device.id);
    let body: Uint8Array;
    try {
      body = openFrame(frame, device.key, parsed).body;
    } catch (error) {
      return this.drop(isKmipEdgeError(error) ? error.code : 'FRAME_AUTH_FAILED', device.id);
    }
    let counterWrite: CounterWrite | undefined;
    let resend = false;
    try {
      const accepted = this.replay.accept(device.id, 'up', header.counter);
      counterWrite = accepted instanceof Promise ? await accepted : accepted; // no turn of the loop on the hot path
    } catch {
      // Accepted before. Inside the window it is a resend (PROTOCOL.md §3.1) and is answered;
      // below the window nothing is known of it: dropped as a replay.
      if (this.replay.standing(device.id, 'up', header.counter) !== 'seen') return this.drop('FRAME_REPLAYED', device.id);
      if (header.replyTo !== undefined) return undefined; // an acknowledgement again: acted on already
      const flight = `${device.id}/${header.counter}`;
      if (this.inFlight.has(flight)) {
        this.drops.drop('FRAME_RESEND_COLLAPSED', device.id, 'debug'); // the reply goes out when the first is done
        return undefined;
      }
      // A request with an effect gets the reply kept for it on disk — across agent restarts too —
      // and is not acted on again (the device must not retry a grant with a new counter: that would
      // be a new grant). Anything else is acted on again: a read changes nothing, and an effect
      // without a kept reply never completed (effects are idempotent by device and counter).
      const kept = await this.keptReply(device.id, header.counter);
      if (kept) return kept;
      resend = true;
    }
    this.relay.heard(device.id, route);
    observer.deviceSeen(device.id);
    if (header.replyTo !== undefined) {
      if (counterWrite === undefined) return undefined; // an acknowledgement is never a read
      if (this.withinRate(device)) return this.acknowledgement(device, header.replyTo, body, counterWrite);
      this.replay.defer(counterWrite);
      return undefined;
    }
    const flight = `${device.id}/${header.counter}`;
    this.inFlight.add(flight);
    try {
      return await this.answer(device, header.counter, body, resend ? undefined : counterWrite);
    } finally {
      this.inFlight.delete(flight);
    }
  }

  /** Acts on a request and returns the reply frame; `counterWrite` undefined for a resend acted on again. */
  private async answer(device: Device, counter: bigint, body: Uint8Array, counterWrite: CounterWrite | undefined): Promise<Uint8Array> {
    const answer = this.withinRate(device) ? this.respond(device, counter, body) : { response: this.rateLimited(body), effect: false, invalid: false };
    const { response, effect } = answer instanceof Promise ? await answer : answer;
    const next = this.downCounters.next(device.id);
    const reply = this.sealReply(device, next instanceof Promise ? await next : next, counter, response, body);
    // The up counter: synced with a request that had an effect (a grant), with the reply kept for
    // a resend; for reads written a little later with others, unsynced — a read re-served after a
    // power cut changes nothing, and the hot path of a cache hit waits for no disk at all
    // (ARCHITECTURE.md §3). Effects are idempotent by (device, counter).
    if (effect) {
      const kept = new Uint8Array(8 + reply.length);
      new DataView(kept.buffer).setBigUint64(0, counter);
      kept.set(reply, 8);
      const key = keptReplyKey(device.id, counter);
      const writes: BatchOperation[] = [{ type: 'put', key, value: kept }];
      writes.push(await this.replay.supersede(counterWrite ?? { type: 'put', key: counterKey(device.id, 'up'), value: new Uint8Array(0) }));
      // Replies whose counter left the window can never be asked for again (§3.1): deleted with this write.
      writes.push(...(await this.expiredReplies(device.id, this.replay.highest(device.id, 'up'))));
      try {
        await this.store.commit(writes);
      } catch (error) {
        // The grant is on disk (the ledger's own write) but its reply cannot be kept (disk full):
        // send it anyway; a resend finds no kept reply and is worked out again — the ledger
        // answers it from the grant's record, debiting nothing twice (issue #13.2).
        if (!isKmipEdgeError(error) || !error.code.startsWith('STORE_')) throw error;
        if (counterWrite) this.replay.defer(counterWrite);
      }
    } else if (counterWrite) {
      this.replay.defer(counterWrite);
    }
    return reply;
  }

  /**
   * The reply frame; a response too large for one frame (PROTOCOL.md §2: 4096 bytes, or the
   * device's own limit) becomes Operation Failed / Response Too Large — KMIP's own reason — naming
   * the limit, for each item asked (issue #13 finding 1: a 4,200-byte Secret Data).
   */
  private sealReply(device: Device, downCounter: bigint, counter: bigint, response: Uint8Array, body: Uint8Array): Uint8Array {
    const header = { suite: device.suite, direction: 'down' as const, deviceId: device.id, counter: downCounter, replyTo: counter };
    const limit = MAX_FRAME_BYTES; // the device limit is for frames from it (registry.ts)
    const length = 20 + device.id.length + response.length + TAG_BYTES;
    if (length <= limit) return sealFrame(header, device.key, response);
    this.log.warn({ event: 'device_response_too_large', device: device.id, bytes: length, limit }, 'a device response does not fit a frame: answered Response Too Large');
    return sealFrame(header, device.key, tooLarge(body, length, limit));
  }

  /**
   * The reply kept for `counter`, if any (the frame as sent). Each kept value starts with its
   * counter, so a reply kept by an older agent in its 16 slots by counter mod 16
   * (`device/reply/<id>/<n>`) is found too.
   */
  private async keptReply(deviceId: string, counter: bigint): Promise<Uint8Array | undefined> {
    for (const key of [keptReplyKey(deviceId, counter), `${KEPT_REPLY_PREFIX}${deviceId}/${counter % 16n}`]) {
      const stored = await this.store.get(key);
      if (stored && stored.length >= 8 && new DataView(stored.buffer, stored.byteOffset, 8).getBigUint64(0) === counter) return stored.slice(8);
    }
    return undefined;
  }

  /**
   * Deletions of the device's kept replies whose counter left the window (64 or more below
   * `highest`): they can never be asked for again (§3.1). Read from disk at each grant — at most
   * the window's worth of small entries — so that nothing per device is held in memory.
   */
  private async expiredReplies(deviceId: string, highest: bigint): Promise<BatchOperation[]> {
    const out: BatchOperation[] = [];
    for await (const [key, value] of this.store.entries(`${KEPT_REPLY_PREFIX}${deviceId}/`)) {
      const counter = value.length >= 8 ? new DataView(value.buffer, value.byteOffset, 8).getBigUint64(0) : 0n;
      if (counter + REPLAY_WINDOW <= highest) out.push({ type: 'del', key });
    }
    return out;
  }

  /**
   * A device's answer to a relayed push (PROTOCOL.md §5): removes the outbox entry together with
   * the device's counter, in one synced write; nothing is sent back. An answer to nothing in
   * flight only advances the counter.
   */
  private async acknowledgement(device: Device, replyTo: bigint, body: Uint8Array, counterWrite: CounterWrite): Promise<undefined> {
    const removal = this.relay.acknowledgement(device, replyTo, body);
    await this.replay.supersede(counterWrite);
    await this.store.commit([counterWrite, ...(removal ?? [])]);
    if (removal) this.relay.acknowledged(device.id);
    return undefined;
  }

  private withinRate(device: Device): boolean {
    const now = Date.now();
    const rate = device.limits.requestsPerSecond;
    let bucket = this.buckets.get(device.id);
    if (!bucket) this.buckets.set(device.id, (bucket = { tokens: rate * 2, refilledAt: now }));
    bucket.tokens = Math.min(rate * 2, bucket.tokens + ((now - bucket.refilledAt) / 1000) * rate);
    bucket.refilledAt = now;
    if (bucket.tokens < 1) {
      this.drops.drop('DEVICE_RATE_LIMITED', device.id);
      return false;
    }
    bucket.tokens -= 1;
    return true;
  }

  private rateLimited(body: Uint8Array): Uint8Array {
    let version: ProtocolVersion = { major: 1, minor: 2 };
    try {
      version = parseRequestMessage(decodeTtlv(body, BODY_LIMITS)).protocolVersion;
    } catch {
      // answer in 1.2
    }
    return encodeTtlv(buildResponseMessage(version, [{ resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.PermissionDenied, resultMessage: 'DEVICE_RATE_LIMITED' }]));
  }

  /**
   * The KMIP Response Message for a device's request body (always a valid message), from the edge
   * KMIP service with the device as principal: at once when memory answers it (a Get of a cached
   * key — the hot path, without the promises and suspended frames of the general path), otherwise
   * once the agent core has, or "not now" at the answer deadline. The frame counter names the
   * request's effects (a grant is idempotent by device and counter).
   */
  private respond(device: Device, counter: bigint, body: Uint8Array): ServiceAnswer | Promise<ServiceAnswer> {
    return this.service.answer(this.principal(device), body, String(counter), this.answerOptions);
  }

  /** The device as the service's principal (one object per device, not per frame). */
  private principal(device: Device): Principal {
    let principal = this.principals.get(device.id);
    if (principal?.keys !== device.keys || principal.operations !== device.operations) {
      principal = { kind: 'device', id: device.id, keys: device.keys, operations: device.operations };
      this.principals.set(device.id, principal);
    }
    return principal;
  }
}

/** Operation Failed / Response Too Large for each item of the request in `body` (KMIP 1.2 §11). */
function tooLarge(body: Uint8Array, bytes: number, limit: number): Uint8Array {
  let version: ProtocolVersion = { major: 1, minor: 2 };
  let items: { operation?: number; uniqueBatchItemId?: Uint8Array | undefined }[] = [{}];
  try {
    const request = parseRequestMessage(decodeTtlv(body, BODY_LIMITS));
    version = request.protocolVersion;
    items = request.batchItems;
  } catch {
    // one item without an operation
  }
  const message = `the response (a frame of ${bytes} bytes) exceeds the device frame limit of ${limit} bytes`;
  return encodeTtlv(buildResponseMessage(version, items.map((item) => ({
    ...(item.operation !== undefined && { operation: item.operation }), ...(item.uniqueBatchItemId && { uniqueBatchItemId: item.uniqueBatchItemId }),
    resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.ResponseTooLarge, resultMessage: message,
  }))));
}
