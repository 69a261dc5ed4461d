/**
 * The device side of the protocol, for the simulator and tests (the C library will do the same):
 * seal a KMIP request with the next up counter — stored before the frame is sent — and open the
 * agent's reply, checking that it answers that request.
 */
import { parseResponseMessage, type ResponseMessage } from '../kmip/message.ts';
import { decodeTtlv } from '../ttlv/decode.ts';
import { openFrame, sealFrame, type Suite } from './frame.ts';
import { KmipEdgeError } from '../errors.ts';

export interface CounterStore {
  /** The last up counter used (0 when none). */
  load(): bigint;
  /** Durably records `counter` as used, before a frame carrying it leaves. */
  save(counter: bigint): void;
}

export class DeviceClient {
  private lastDown = 0n;

  constructor(
    readonly id: string,
    private readonly key: Uint8Array,
    private readonly suite: Suite,
    private readonly counters: CounterStore,
  ) {}

  /** A frame for `request` (a TTLV Request Message), with its counter. */
  seal(request: Uint8Array): { frame: Uint8Array; counter: bigint } {
    const counter = this.counters.load() + 1n;
    this.counters.save(counter);
    return { frame: sealFrame({ suite: this.suite, direction: 'up', deviceId: this.id, counter, replyTo: undefined }, this.key, request), counter };
  }

  /** Opens the agent's reply to the request sent with `counter`; rejects anything else. */
  open(reply: Uint8Array, counter: bigint): ResponseMessage {
    const { header, body } = openFrame(reply, this.key);
    if (header.deviceId !== this.id || header.direction !== 'down' || header.replyTo !== counter) {
      throw new KmipEdgeError('FRAME_UNEXPECTED', `a reply to ${header.replyTo}, expected one to ${counter}`);
    }
    // A resent reply repeats its down counter; anything older is a replay.
    if (header.counter < this.lastDown) throw new KmipEdgeError('FRAME_REPLAYED', 'an old reply');
    this.lastDown = header.counter;
    return parseResponseMessage(decodeTtlv(body));
  }
}

/** Counters in memory (tests); a device keeps them in flash. */
export function memoryCounters(start = 0n): CounterStore {
  let value = start;
  return { load: () => value, save: (c) => void (value = c) };
}
