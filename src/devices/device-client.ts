/**
 * The device side of the protocol, for the simulator and tests (the C library will do the same):
 * seal a KMIP request with the next up counter — stored before the frame is sent — and open the
 * agent's reply, checking that it answers that request; open a relayed Put/Notify (its counter
 * above the last one accepted, stored) and seal the acknowledgement (PROTOCOL.md §5).
 */
import { buildResponseMessage, parseRequestMessage, parseResponseMessage, type RequestMessage, type ResponseMessage } from '../kmip/message.ts';
import { ResultStatus } from '../kmip/tables.generated.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { decodeTtlv } from '../ttlv/decode.ts';
import { openFrame, sealFrame, type ParsedFrameHeader, type Suite } from './frame.ts';
import { KmipEdgeError } from '../errors.ts';

export interface CounterStore {
  /** The last up counter used (0 when none). */
  load(): bigint;
  /** Durably records `counter` as used, before a frame carrying it leaves. */
  save(counter: bigint): void;
  /** The agent's counter of the last relayed push accepted (0 when none). */
  loadPush(): bigint;
  /** Durably records it, before the push is acted on. */
  savePush(counter: bigint): void;
}

export class DeviceClient {
  constructor(
    readonly id: string,
    private readonly key: Uint8Array,
    private readonly suite: Suite,
    private readonly counters: CounterStore,
  ) {}

  /** The counter the next frame will carry. */
  nextCounter(): bigint {
    return this.counters.load() + 1n;
  }

  /** A frame for `message` (a TTLV Request Message, or a Response Message answering `replyTo`), with its counter. */
  seal(message: Uint8Array, replyTo?: bigint): { frame: Uint8Array; counter: bigint } {
    const counter = this.counters.load() + 1n;
    this.counters.save(counter);
    return { frame: sealFrame({ suite: this.suite, direction: 'up', deviceId: this.id, counter, replyTo }, this.key, message), counter };
  }

  /**
   * Opens the agent's reply to the request sent with `counter`; rejects anything else. The binding
   * to that request — whose counter is never reused — is what makes an old reply useless: a
   * resent reply repeats its down counter, and may be older than a push accepted meanwhile.
   */
  open(reply: Uint8Array, counter: bigint, parsed?: ParsedFrameHeader): ResponseMessage {
    const { header, body } = openFrame(reply, this.key, parsed);
    if (header.deviceId !== this.id || header.direction !== 'down' || header.replyTo !== counter) {
      throw new KmipEdgeError('FRAME_UNEXPECTED', `a reply to ${header.replyTo}, expected one to ${counter}`);
    }
    return parseResponseMessage(decodeTtlv(body));
  }

  /**
   * Opens a relayed Put/Notify: it must authenticate, come down without reply_to, and carry a
   * counter above the last push accepted (stored before returning). Returns the request and the
   * acknowledgement frame to send back: a Response Message with Success for each batch item.
   */
  openPush(frame: Uint8Array): { request: RequestMessage; counter: bigint; acknowledgement: Uint8Array; acknowledgementCounter: bigint } {
    const { header, body } = openFrame(frame, this.key);
    if (header.deviceId !== this.id || header.direction !== 'down' || header.replyTo !== undefined) throw new KmipEdgeError('FRAME_UNEXPECTED', 'not a push for this device');
    if (header.counter <= this.counters.loadPush()) throw new KmipEdgeError('FRAME_REPLAYED', `push counter ${header.counter} is not above ${this.counters.loadPush()}`);
    const request = parseRequestMessage(decodeTtlv(body));
    this.counters.savePush(header.counter);
    const answer = buildResponseMessage(request.protocolVersion, request.batchItems.map((item) => ({ operation: item.operation, resultStatus: ResultStatus.Success, payload: [] })));
    const sealed = this.seal(encodeTtlv(answer), header.counter);
    return { request, counter: header.counter, acknowledgement: sealed.frame, acknowledgementCounter: sealed.counter };
  }
}

/** Counters in memory (tests); a device keeps them in flash. */
export function memoryCounters(start = 0n): CounterStore {
  let value = start;
  let push = 0n;
  return { load: () => value, save: (c) => void (value = c), loadPush: () => push, savePush: (c) => void (push = c) };
}
