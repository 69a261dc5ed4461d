/**
 * Serial framing (firmware-bridge/PROTOCOL.md §6): SLIP (RFC 1055) around each frame plus its
 * CRC-32. The decoder resynchronizes after noise (everything up to an END is dropped), drops a
 * packet with a bad CRC, and never buffers more than the largest valid packet.
 */
import { crc32 } from 'node:zlib';
import { MAX_FRAME_BYTES } from './frame.ts';

const END = 0xc0;
const ESC = 0xdb;
const ESC_END = 0xdc;
const ESC_ESC = 0xdd;
/** Largest decoded packet: a frame and its 4-byte CRC. */
export const MAX_SLIP_PAYLOAD = MAX_FRAME_BYTES + 4;

export function slipEncode(frame: Uint8Array): Uint8Array {
  const withCrc = new Uint8Array(frame.length + 4);
  withCrc.set(frame);
  new DataView(withCrc.buffer).setUint32(frame.length, crc32(frame));
  const out: number[] = [END];
  for (const byte of withCrc) {
    if (byte === END) out.push(ESC, ESC_END);
    else if (byte === ESC) out.push(ESC, ESC_ESC);
    else out.push(byte);
  }
  out.push(END);
  return Uint8Array.from(out);
}

export interface SlipStats {
  frames: number;
  crcErrors: number;
  oversize: number;
  badEscapes: number;
}

export class SlipDecoder {
  private readonly buffer = new Uint8Array(MAX_SLIP_PAYLOAD);
  private length = 0;
  private escaped = false;
  /** True while discarding up to the next END (after noise, an oversize or a bad escape). */
  private discarding = true;
  readonly stats: SlipStats = { frames: 0, crcErrors: 0, oversize: 0, badEscapes: 0 };

  /** Feeds received bytes; returns the frames (CRC checked and removed) they complete. */
  push(chunk: Uint8Array): Uint8Array[] {
    const frames: Uint8Array[] = [];
    for (const byte of chunk) {
      if (byte === END) {
        if (!this.discarding && this.length > 0) this.finish(frames);
        this.length = 0;
        this.escaped = false;
        this.discarding = false;
        continue;
      }
      if (this.discarding) continue;
      let value = byte;
      if (this.escaped) {
        this.escaped = false;
        if (byte === ESC_END) value = END;
        else if (byte === ESC_ESC) value = ESC;
        else {
          this.stats.badEscapes++;
          this.discarding = true;
          continue;
        }
      } else if (byte === ESC) {
        this.escaped = true;
        continue;
      }
      if (this.length === MAX_SLIP_PAYLOAD) {
        this.stats.oversize++;
        this.discarding = true;
        continue;
      }
      this.buffer[this.length++] = value;
    }
    return frames;
  }

  private finish(frames: Uint8Array[]): void {
    if (this.length < 5) {
      this.stats.crcErrors++;
      return;
    }
    const frame = this.buffer.slice(0, this.length - 4);
    const crc = new DataView(this.buffer.buffer, this.length - 4, 4).getUint32(0);
    if (crc !== crc32(frame)) {
      this.stats.crcErrors++;
      return;
    }
    this.stats.frames++;
    frames.push(frame);
  }
}
