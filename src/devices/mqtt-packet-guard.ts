/**
 * A cap on the size of MQTT packets read from a connection, applied while the bytes stream by —
 * before mqtt.js (or aedes) would buffer a packet whole: a packet is `fixed header | remaining
 * length (varint, MQTT 3.1.1 §2.2.3) | remaining bytes`, so its size is known from its first
 * five bytes. Whoever may publish to the broker chooses the size; without the cap one 200 MB
 * publish to a device topic costs the agent 200 MB (issue #13, finding 6).
 *
 * An oversized PUBLISH (MQTT 3.1.1 §3.3) is passed on with its payload dropped unread (topic,
 * QoS, packet identifier kept; MQTT 5 properties emptied), so the client still acknowledges it and
 * a persistent session does not get it redelivered forever; `onOversized` is told. Any other
 * oversized packet, or a malformed length, ends the connection (`MQTT_PACKET_TOO_LARGE`,
 * `MQTT_MALFORMED`). Brokers should refuse such packets first (Mosquitto `max_packet_size`,
 * deploy/mosquitto.conf; MQTT 5 Maximum Packet Size, §3.1.2.11.4); this is the agent's own limit.
 */
import { Duplex } from 'node:stream';
import { KmipEdgeError } from '../errors.ts';

const PUBLISH = 3;
/** Topic length (2) + topic (≤ 65,535) + packet identifier (2) + MQTT 5 property length (≤ 4). */
const MAX_PUBLISH_HEAD = 2 + 65_535 + 2 + 4;

export interface Oversized {
  topic: string;
  /** The size of the whole packet, as its header announced it. */
  bytes: number;
}

export interface PacketGuardOptions {
  /** The largest packet passed on, fixed header included (MQTT 5's Maximum Packet Size counts the same way). */
  maxPacketBytes: number;
  protocolVersion: 4 | 5;
  /** Pass an oversized PUBLISH on without its payload (a client), or end the connection (a broker). */
  truncatePublish: boolean;
  onOversized?: (packet: Oversized) => void;
}

function varint(value: number): number[] {
  const bytes: number[] = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    bytes.push(byte);
  } while (value > 0);
  return bytes;
}

/** The byte scanner: `feed` returns what may go on (views of the input where possible). */
export class PacketSizeGuard {
  private state: 'fixed' | 'pass' | 'head' | 'skip' = 'fixed';
  private fixed: number[] = [];
  private left = 0;
  private total = 0;
  private head: Buffer | undefined;
  private headLength = 0;

  constructor(private readonly options: PacketGuardOptions) {}

  feed(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let i = 0;
    while (i < chunk.length) {
      switch (this.state) {
        case 'fixed': {
          const byte = chunk[i++]!;
          this.fixed.push(byte);
          if (this.fixed.length === 1) break;
          if (byte & 0x80) {
            if (this.fixed.length === 5) throw new KmipEdgeError('MQTT_MALFORMED', 'an MQTT remaining length longer than 4 bytes (MQTT 3.1.1 §2.2.3)');
            break;
          }
          let remaining = 0;
          for (let k = this.fixed.length - 1; k >= 1; k--) remaining = remaining * 128 + (this.fixed[k]! & 0x7f);
          this.total = this.fixed.length + remaining;
          this.left = remaining;
          if (this.total <= this.options.maxPacketBytes) {
            out.push(Buffer.from(this.fixed));
            this.fixed = [];
            this.state = remaining > 0 ? 'pass' : 'fixed';
          } else if (this.fixed[0]! >> 4 === PUBLISH && this.options.truncatePublish) {
            this.head = Buffer.allocUnsafe(Math.min(MAX_PUBLISH_HEAD, remaining));
            this.headLength = 0;
            this.state = 'head';
          } else {
            throw new KmipEdgeError('MQTT_PACKET_TOO_LARGE', `an MQTT packet of ${this.total} bytes exceeds the limit of ${this.options.maxPacketBytes}`);
          }
          break;
        }
        case 'pass': {
          const n = Math.min(this.left, chunk.length - i);
          out.push(chunk.subarray(i, i + n));
          i += n;
          this.left -= n;
          if (this.left === 0) this.state = 'fixed';
          break;
        }
        case 'head': {
          const head = this.head!;
          const n = Math.min(this.left, chunk.length - i, head.length - this.headLength);
          chunk.copy(head, this.headLength, i, i + n);
          this.headLength += n;
          this.left -= n;
          i += n;
          const replacement = this.publishWithoutPayload();
          if (replacement) {
            out.push(replacement);
            this.head = undefined;
            this.state = this.left > 0 ? 'skip' : 'fixed';
          } else if (this.left === 0 || this.headLength === head.length) {
            throw new KmipEdgeError('MQTT_MALFORMED', 'an MQTT PUBLISH whose topic does not fit in the packet');
          }
          break;
        }
        case 'skip': {
          const n = Math.min(this.left, chunk.length - i);
          i += n;
          this.left -= n;
          if (this.left === 0) {
            this.fixed = [];
            this.state = 'fixed';
          }
          break;
        }
      }
    }
    return out;
  }

  /**
   * Once the PUBLISH's variable header is in (MQTT 3.1.1 §3.3.2; MQTT 5 §3.3.2.3 adds the
   * properties), the same PUBLISH with no properties and no payload; the bytes of the rest
   * (properties and payload) are added to what is skipped. Undefined while more is needed.
   */
  private publishWithoutPayload(): Buffer | undefined {
    const head = this.head!.subarray(0, this.headLength);
    if (head.length < 2) return undefined;
    const topicLength = head.readUInt16BE(0);
    const first = this.fixed[0]!;
    const qos = (first >> 1) & 3;
    const kept = 2 + topicLength + (qos > 0 ? 2 : 0);
    if (head.length < kept) return undefined;
    if (this.options.protocolVersion === 5) {
      // The property length (a varint) must be complete; the properties go with the payload.
      const lengthBytes = head.subarray(kept, kept + 4);
      if (!lengthBytes.some((byte) => !(byte & 0x80))) {
        if (lengthBytes.length === 4) throw new KmipEdgeError('MQTT_MALFORMED', 'an MQTT 5 property length longer than 4 bytes');
        return undefined;
      }
    }
    // Bytes read past the variable header were consumed and are dropped with the rest.
    const body = Buffer.concat([head.subarray(0, kept), Buffer.from(this.options.protocolVersion === 5 ? [0] : [])]);
    this.options.onOversized?.({ topic: head.subarray(2, 2 + topicLength).toString('utf8'), bytes: this.total });
    this.fixed = [];
    return Buffer.concat([Buffer.from([first, ...varint(body.length)]), body]);
  }
}

/**
 * The connection as mqtt.js or aedes see it: writes go straight to `socket` (whose own buffering
 * and corking stay in charge), reads come through the guard. A guard error destroys the
 * connection with that error (its `code` makes mqtt.js report it).
 */
export function guardConnection(socket: Duplex, options: PacketGuardOptions): Duplex {
  const guard = new PacketSizeGuard(options);
  const guarded: Duplex = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      if (socket.write(chunk)) callback();
      else socket.once('drain', () => callback());
    },
    final(callback) {
      socket.end(() => callback());
    },
    destroy(error, callback) {
      socket.destroy();
      callback(error);
    },
  });
  socket.on('data', (chunk: Buffer) => {
    let parts: Buffer[];
    try {
      parts = guard.feed(chunk);
    } catch (error) {
      guarded.destroy(error as Error);
      return;
    }
    let more = true;
    for (const part of parts) more = guarded.push(part) && more;
    if (!more) socket.pause();
  });
  socket.on('end', () => guarded.push(null));
  socket.on('error', (error) => guarded.destroy(error));
  socket.on('close', () => guarded.destroy());
  return guarded;
}
