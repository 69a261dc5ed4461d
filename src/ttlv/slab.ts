import { padTo8 } from './item.ts';

/**
 * Small zero-filled byte arrays carved from larger ArrayBuffers, never reused: allocating one
 * ArrayBuffer per encoded message or per decoded Byte String costs microseconds in V8, a view into
 * a fresh slab tens of nanoseconds. A slab stays alive while any view into it does (at most
 * SLAB_BYTES retained per live view), which is why arrays over a quarter slab get their own.
 * Every byte starts zero, so padding never needs writing.
 */
const SLAB_BYTES = 16 * 1024;
let slab = new ArrayBuffer(SLAB_BYTES);
let used = 0;

export function allocZeroed(size: number): Uint8Array {
  if (size > SLAB_BYTES / 4) return new Uint8Array(size);
  const at = carve(size); // first: it may start a new slab
  return new Uint8Array(slab, at, size);
}

/**
 * As allocZeroed, as a Buffer: what a socket writes without making a Buffer view of it first
 * (Writable's _uint8ArrayToBuffer, per write) — for the responses of the local KMIP door's hot
 * path (src/edge/plain-get.ts). Not for everything: a Buffer's slice() is a view, not a copy.
 */
export function allocZeroedBuffer(size: number): Buffer {
  if (size > SLAB_BYTES / 4) return Buffer.alloc(size);
  const at = carve(size); // first: it may start a new slab
  return new SlabBuffer(slab, at, size) as Buffer;
}

/**
 * A Buffer view made as cheaply as a Uint8Array one: Buffer.from(arrayBuffer, offset, length)
 * checks its arguments in a native call (42 against 21 ns, node 20). Its prototype chain holds
 * Buffer.prototype: a Buffer (Buffer.isBuffer, instanceof) with every method of one.
 */
class SlabBuffer extends Uint8Array {}
Object.setPrototypeOf(SlabBuffer.prototype, Buffer.prototype);

/** Where the next `size` bytes of the slab start (a fresh slab when they do not fit). */
function carve(size: number): number {
  if (used + size > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    used = 0;
  }
  const at = used;
  used += padTo8(size); // keep views 8-byte aligned
  return at;
}

/** A copy of `source[start, end)` in a slab. */
export function copyBytes(source: Uint8Array, start: number, end: number): Uint8Array {
  const copy = allocZeroed(end - start);
  copy.set(source.subarray(start, end));
  return copy;
}
