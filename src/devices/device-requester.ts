/**
 * How a device makes requests over any link (the simulator's core, and how firmware should
 * behave): if no reply comes, the *same* frame is sent again (same counter) until answered — so a
 * restarting agent or a lost message exercises the agent's idempotency, never a double effect. Up
 * to 16 requests may be in flight, and no frame leaves whose counter is 64 (the agent's replay
 * window) or more above the oldest request still waiting (PROTOCOL.md §3.1): so every resend stays
 * inside the window and is answered — a later request waits for a slot instead. Relayed pushes
 * (frames without reply_to) are opened, handed to `onPush` and acknowledged; one that does not
 * authenticate or is a replay is dropped.
 */
import { KmipEdgeError } from '../errors.ts';
import type { RequestMessage, ResponseMessage } from '../kmip/message.ts';
import type { DeviceClient } from './device-client.ts';
import { parseFrameHeader } from './frame.ts';

/** Requests a device may have in flight (and waiting for a slot) at once. */
/**
 * Resend an unanswered frame after this long (PROTOCOL.md §3.1): longer than the agent's 2 s
 * answer deadline (a resend then finds the answer ready instead of joining the wait), and, like
 * CoAP's ACK_TIMEOUT (RFC 7252 §4.8: 2 s × 1–1.5), slow enough that resends do not snowball when
 * answers are slow (1 s resends collapsed `bench outage` at 1,000 devices).
 */
export const DEFAULT_RESEND_MS = 3000;

export const MAX_IN_FLIGHT = 16;
/**
 * PROTOCOL.md §3.1: a frame's counter minus the counter of the oldest request still waiting for
 * its answer is below this (the agent's replay window, REPLAY_WINDOW).
 */
export const MAX_COUNTER_LEAD = 64n;

interface InFlight {
  frame: Uint8Array;
  counter: bigint;
  resolve: (response: ResponseMessage) => void;
  reject: (error: unknown) => void;
  resendMs: number;
  resendAt: number;
  deadline: number;
}

export class DeviceRequester {
  /** Requests in flight, by counter. */
  private readonly waiting = new Map<bigint, InFlight>();
  /** Requests not yet sent: their counter would lead the oldest waiting one by MAX_COUNTER_LEAD. */
  private readonly queued: (() => void)[] = [];
  private watcher: NodeJS.Timeout | undefined;
  private watchedMs = Infinity;
  /** Called with each relayed Put/Notify accepted (after it was acknowledged). */
  onPush: ((request: RequestMessage) => void) | undefined;
  /** Relayed frames dropped (not authentic, replayed, malformed). */
  droppedPushes = 0;

  constructor(
    private readonly device: DeviceClient,
    private readonly send: (frame: Uint8Array) => void,
  ) {}

  /** The link calls this with every frame it receives for the device. */
  deliver(frame: Uint8Array): void {
    try {
      const parsed = parseFrameHeader(frame);
      const { header } = parsed;
      if (header.replyTo === undefined) return this.pushed(frame);
      const request = this.waiting.get(header.replyTo);
      if (!request) return;
      this.waiting.delete(header.replyTo);
      this.release();
      if (this.waiting.size === 0) this.watcher?.unref(); // nothing to wait for: not what keeps the process alive
      try {
        request.resolve(this.device.open(frame, request.counter, parsed));
      } catch (error) {
        request.reject(error);
      }
    } catch {
      // not a frame for us: ignore
    }
  }

  private pushed(frame: Uint8Array): void {
    let opened;
    try {
      opened = this.device.openPush(frame);
    } catch {
      this.droppedPushes++;
      return;
    }
    // An acknowledgement beyond the lead is not sent (§3.1): the agent sends the push again later.
    if (!this.leads(opened.acknowledgementCounter)) this.send(opened.acknowledgement);
    this.onPush?.(opened.request);
  }

  /** Whether a frame with `counter` would lead the oldest waiting request by MAX_COUNTER_LEAD or more. */
  private leads(counter: bigint): boolean {
    const oldest = this.oldestWaiting();
    return oldest !== undefined && counter - oldest >= MAX_COUNTER_LEAD;
  }

  private oldestWaiting(): bigint | undefined {
    let oldest: bigint | undefined;
    for (const counter of this.waiting.keys()) if (oldest === undefined || counter < oldest) oldest = counter;
    return oldest;
  }

  /** Lets queued requests go while they stay within the lead. */
  private release(): void {
    while (this.queued.length > 0 && !this.leads(this.device.nextCounter())) this.queued.shift()!();
  }

  /** Sends one KMIP request and returns the agent's response, resending until answered. */
  async request(message: Uint8Array, options: { resendMs?: number; deadlineMs?: number } = {}): Promise<ResponseMessage> {
    if (this.waiting.size + this.queued.length >= MAX_IN_FLIGHT) throw new KmipEdgeError('DEVICE_BUSY', `${MAX_IN_FLIGHT} requests are already in flight`);
    while (this.leads(this.device.nextCounter())) await new Promise<void>((resolve) => this.queued.push(resolve));
    return this.send1(message, options);
  }

  private send1(message: Uint8Array, options: { resendMs?: number; deadlineMs?: number }): Promise<ResponseMessage> {
    const { frame, counter } = this.device.seal(message);
    return new Promise((resolve, reject) => {
      const now = Date.now();
      const resendMs = options.resendMs ?? DEFAULT_RESEND_MS;
      this.waiting.set(counter, { frame, counter, resolve, reject, resendMs, resendAt: now + resendMs, deadline: now + (options.deadlineMs ?? 30_000) });
      this.send(frame);
      this.watch(resendMs);
    });
  }

  /**
   * One timer per device watches the requests in flight for resends and deadlines (not one per
   * request: a simulated device makes thousands of requests a second, each answered in
   * milliseconds). It checks a few times per resend period and stops when it finds nothing in
   * flight; meanwhile it does not hold the process open.
   */
  private watch(resendMs: number): void {
    if (this.watcher !== undefined && resendMs >= this.watchedMs) {
      this.watcher.ref();
      return;
    }
    clearInterval(this.watcher);
    this.watchedMs = resendMs;
    this.watcher = setInterval(() => {
      if (this.waiting.size === 0) {
        clearInterval(this.watcher);
        this.watcher = undefined;
        return;
      }
      const now = Date.now();
      for (const request of this.waiting.values()) {
        if (now > request.deadline) {
          this.waiting.delete(request.counter);
          this.release();
          request.reject(new KmipEdgeError('DEVICE_NO_ANSWER', `no answer to request ${request.counter} before the deadline`));
        } else if (now >= request.resendAt) {
          request.resendAt = now + request.resendMs;
          this.send(request.frame);
        }
      }
    }, Math.max(1, Math.floor(resendMs / 4)));
  }
}
