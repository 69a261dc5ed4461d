/**
 * How a device makes requests over any link (the simulator's core, and how firmware should
 * behave): if no reply comes, the *same* frame is sent again (same counter) until answered — so a
 * restarting agent or a lost message exercises the agent's idempotency, never a double effect. Up
 * to 16 requests may be in flight (the agent keeps that many replies, PROTOCOL.md §3). Relayed pushes (frames without reply_to) are opened, handed to `onPush`
 * and acknowledged; one that does not authenticate or is a replay is dropped.
 */
import { KmipEdgeError } from '../errors.ts';
import type { RequestMessage, ResponseMessage } from '../kmip/message.ts';
import type { DeviceClient } from './device-client.ts';
import { parseFrameHeader } from './frame.ts';

/** Requests a device may have in flight: the replies the agent keeps for resends (KEPT_REPLIES). */
export const MAX_IN_FLIGHT = 16;

export class DeviceRequester {
  /** Requests in flight, by counter. */
  private readonly waiting = new Map<bigint, (reply: Uint8Array) => void>();
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
      const { header } = parseFrameHeader(frame);
      if (header.replyTo === undefined) return this.pushed(frame);
      this.waiting.get(header.replyTo)?.(frame);
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
    this.send(opened.acknowledgement);
    this.onPush?.(opened.request);
  }

  /** Sends one KMIP request and returns the agent's response, resending until answered. */
  async request(message: Uint8Array, options: { resendMs?: number; deadlineMs?: number } = {}): Promise<ResponseMessage> {
    if (this.waiting.size >= MAX_IN_FLIGHT) throw new KmipEdgeError('DEVICE_BUSY', `${MAX_IN_FLIGHT} requests are already in flight`);
    const { frame, counter } = this.device.seal(message);
    const deadline = Date.now() + (options.deadlineMs ?? 30_000);
    const reply = new Promise<Uint8Array>((resolve) => this.waiting.set(counter, resolve));
    try {
      for (;;) {
        this.send(frame);
        let timer: NodeJS.Timeout | undefined;
        const answered = await Promise.race([reply, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), options.resendMs ?? 1000)))]);
        clearTimeout(timer);
        if (answered) return this.device.open(answered, counter);
        if (Date.now() > deadline) throw new KmipEdgeError('DEVICE_NO_ANSWER', `no answer to request ${counter} before the deadline`);
      }
    } finally {
      this.waiting.delete(counter);
    }
  }
}
