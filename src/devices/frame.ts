/**
 * Device frames (firmware-bridge/PROTOCOL.md §2): seal and open. Everything about a frame's
 * shape is checked before any cryptography or allocation; every failure is one coded error, so
 * callers can drop a bad frame without telling the sender why.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { KmipEdgeError } from '../errors.ts';

export const FRAME_VERSION = 1;
export const MAX_FRAME_BYTES = 4096;
export const TAG_BYTES = 16;
export const Suite = { AES_256_GCM: 1, CHACHA20_POLY1305: 2 } as const;
export type Suite = (typeof Suite)[keyof typeof Suite];
export type Direction = 'up' | 'down';

const FLAG_REPLY = 0x01;
const FLAG_DOWN = 0x02;
const DEVICE_ID = /^[A-Za-z0-9._-]{1,64}$/;
const MAX_COUNTER = (1n << 64n) - 1n;

/**
 * Codes: FRAME_TOO_LARGE, FRAME_TRUNCATED, FRAME_VERSION, FRAME_SUITE, FRAME_FLAGS,
 * FRAME_DEVICE_ID, FRAME_COUNTER, FRAME_AUTH_FAILED (wrong key, tampered, wrong suite for the key).
 */
export function frameError(code: string, detail: string): KmipEdgeError {
  return new KmipEdgeError(code, detail);
}

export interface FrameHeader {
  version: number;
  suite: Suite;
  direction: Direction;
  deviceId: string;
  counter: bigint;
  replyTo: bigint | undefined;
}

/**
 * The suites through OpenSSL (node:crypto): hardware AES where the CPU has it, and ~7 µs per small
 * frame against ~30–45 µs in JavaScript (measured; the device hot path seals and opens every frame).
 * The shared vectors and a cross-check against @noble/ciphers keep the bytes exactly PROTOCOL.md's.
 * (plaintextLength is required by CCM only, neither of these.)
 */
const CIPHER_OPTIONS = { authTagLength: TAG_BYTES };

/**
 * The nonce of a frame (§2: direction, then counter), written into one scratch array: OpenSSL
 * copies it when the cipher is created, so one array serves every call.
 */
const scratchNonce = new Uint8Array(12);
const nonceView = new DataView(scratchNonce.buffer);

function nonceOf(direction: Direction, counter: bigint): Uint8Array {
  nonceView.setUint32(0, direction === 'down' ? 1 : 0);
  nonceView.setBigUint64(4, counter);
  return scratchNonce;
}

/** Throws when the tag does not verify. */
function aeadOpen(suite: Suite, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array {
  const decipher = suite === Suite.AES_256_GCM ? createDecipheriv('aes-256-gcm', key, nonce, CIPHER_OPTIONS) : createDecipheriv('chacha20-poly1305', key, nonce, CIPHER_OPTIONS);
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  const plaintext = decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES));
  decipher.final(); // throws when the tag does not verify; a stream cipher mode holds nothing back
  return plaintext;
}

/** Writes the header (§2) at the start of `frame`. */
function writeHeader(frame: Uint8Array, header: Omit<FrameHeader, 'version'>): void {
  const id = header.deviceId; // checked: 1-64 ASCII characters
  const view = new DataView(frame.buffer, frame.byteOffset, frame.length);
  frame[0] = FRAME_VERSION;
  frame[1] = header.suite;
  frame[2] = (header.replyTo === undefined ? 0 : FLAG_REPLY) | (header.direction === 'down' ? FLAG_DOWN : 0);
  frame[3] = id.length;
  for (let i = 0; i < id.length; i++) frame[4 + i] = id.charCodeAt(i);
  view.setBigUint64(4 + id.length, header.counter);
  if (header.replyTo !== undefined) view.setBigUint64(12 + id.length, header.replyTo);
}

/** Seals `body` (one TTLV message) into a frame. */
export function sealFrame(header: Omit<FrameHeader, 'version'>, key: Uint8Array, body: Uint8Array): Uint8Array {
  if (!DEVICE_ID.test(header.deviceId)) throw new RangeError(`device id ${JSON.stringify(header.deviceId)} is not 1-64 of [A-Za-z0-9._-]`);
  if (header.counter < 1n || header.counter > MAX_COUNTER) throw new RangeError('counter must be 1 … 2^64-1');
  if (key.length !== 32) throw new RangeError('device keys are 32 bytes');
  const headerLength = 12 + header.deviceId.length + (header.replyTo === undefined ? 0 : 8);
  const length = headerLength + body.length + TAG_BYTES;
  if (length > MAX_FRAME_BYTES) throw frameError('FRAME_TOO_LARGE', `a frame of ${length} bytes exceeds ${MAX_FRAME_BYTES}`);
  // From Node's buffer pool (every byte is written below): an ArrayBuffer of its own per frame
  // costs an off-heap allocation and GC tracking on the hot path. The header is written in place
  // and authenticated from there.
  const pooled = Buffer.allocUnsafe(length);
  const frame = new Uint8Array(pooled.buffer, pooled.byteOffset, length);
  writeHeader(frame, header);
  const iv = nonceOf(header.direction, header.counter);
  const cipher = header.suite === Suite.AES_256_GCM ? createCipheriv('aes-256-gcm', key, iv, CIPHER_OPTIONS) : createCipheriv('chacha20-poly1305', key, iv, CIPHER_OPTIONS);
  cipher.setAAD(frame.subarray(0, headerLength));
  frame.set(cipher.update(body), headerLength);
  cipher.final(); // a stream cipher mode: nothing is held back
  frame.set(cipher.getAuthTag(), headerLength + body.length);
  return frame;
}

/** A frame's header and where its ciphertext starts. */
export interface ParsedFrameHeader {
  header: FrameHeader;
  headerLength: number;
}

/** Reads and checks a frame's header (no cryptography). */
export function parseFrameHeader(frame: Uint8Array): ParsedFrameHeader {
  if (frame.length > MAX_FRAME_BYTES) throw frameError('FRAME_TOO_LARGE', `${frame.length} bytes, the limit is ${MAX_FRAME_BYTES}`);
  if (frame.length < 4) throw frameError('FRAME_TRUNCATED', 'shorter than the fixed header');
  const [version, suite, flags, idLength] = [frame[0]!, frame[1]!, frame[2]!, frame[3]!];
  if (version !== FRAME_VERSION) throw frameError('FRAME_VERSION', `version ${version}, this agent speaks ${FRAME_VERSION}`);
  if (suite !== Suite.AES_256_GCM && suite !== Suite.CHACHA20_POLY1305) throw frameError('FRAME_SUITE', `unknown suite ${suite}`);
  if ((flags & ~(FLAG_REPLY | FLAG_DOWN)) !== 0) throw frameError('FRAME_FLAGS', `reserved flag bits set: 0x${flags.toString(16)}`);
  if (idLength < 1 || idLength > 64) throw frameError('FRAME_DEVICE_ID', `device id length ${idLength}`);
  const headerLength = 4 + idLength + 8 + ((flags & FLAG_REPLY) !== 0 ? 8 : 0);
  if (frame.length < headerLength + 8 + TAG_BYTES) throw frameError('FRAME_TRUNCATED', `${frame.length} bytes cannot hold a ${headerLength}-byte header, a message and a tag`);
  const deviceId = Buffer.from(frame.buffer, frame.byteOffset + 4, idLength).toString('latin1');
  if (!DEVICE_ID.test(deviceId)) throw frameError('FRAME_DEVICE_ID', 'device id has characters outside [A-Za-z0-9._-]');
  const view = new DataView(frame.buffer, frame.byteOffset, frame.length);
  const counter = view.getBigUint64(4 + idLength);
  if (counter === 0n) throw frameError('FRAME_COUNTER', 'counter 0 is never used');
  const replyTo = (flags & FLAG_REPLY) !== 0 ? view.getBigUint64(12 + idLength) : undefined;
  return { header: { version, suite, direction: (flags & FLAG_DOWN) !== 0 ? 'down' : 'up', deviceId, counter, replyTo }, headerLength };
}

/** Opens a frame with the device's key: the header, and the body once the tag verified. */
export function openFrame(frame: Uint8Array, key: Uint8Array, parsed: ParsedFrameHeader = parseFrameHeader(frame)): { header: FrameHeader; body: Uint8Array } {
  const { header, headerLength } = parsed; // a caller that read the header already passes it
  try {
    const body = aeadOpen(header.suite, key, nonceOf(header.direction, header.counter), frame.subarray(0, headerLength), frame.subarray(headerLength));
    return { header, body };
  } catch {
    throw frameError('FRAME_AUTH_FAILED', `frame from ${header.deviceId} does not authenticate`);
  }
}
