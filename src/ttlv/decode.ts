import { TtlvError, type TtlvErrorCode } from './errors.ts';
import { ItemType, padTo8, type TtlvItem } from './item.ts';
import { resolveTtlvLimits, type TtlvLimits } from './limits.ts';
import { copyBytes } from './slab.ts';

/** Strict UTF-8: invalid sequences throw; a leading BOM is kept as U+FEFF (it is data). */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** Up to this length, checking for ASCII and slicing as Latin-1 beats the strict UTF-8 decoder. */
const SHORT_TEXT = 256;

/**
 * Decodes exactly one TTLV item occupying all of `bytes` (KMIP 1.2 §9.1). Strict: tag prefix
 * 0x42/0x54, fixed lengths per type, zero padding, Boolean 0/1, valid UTF-8, Big Integer length a
 * multiple of 8, no trailing bytes, no child longer than its parent. Every limit is checked before
 * the value it guards is allocated or recursed into. Byte String values are copies, never views of
 * `bytes`, so the caller may reuse or wipe its buffer. (Integers are read byte by byte rather than
 * through a DataView: creating one per message costs more than the reads.)
 */
export function decodeTtlv(bytes: Uint8Array, limits?: Partial<TtlvLimits>): TtlvItem {
  const resolved = resolveTtlvLimits(limits);
  if (bytes.length > resolved.maxMessageBytes) {
    throw new TtlvError('TTLV_TOO_LARGE', `message of ${bytes.length} bytes exceeds maxMessageBytes ${resolved.maxMessageBytes}`, 0, []);
  }
  const decoder = new Decoder(bytes, resolved);
  const item = decoder.item(bytes.length, 1);
  if (decoder.pos !== bytes.length) {
    decoder.fail('TTLV_TRAILING_BYTES', `${bytes.length - decoder.pos} bytes after the top-level item`, decoder.pos);
  }
  return item;
}

class Decoder {
  pos = 0;
  private items = 0;
  /** A Buffer over the same bytes, made on the first Text String (its latin1 toString is the fastest way to make a short string). */
  private buffer: Buffer | undefined;
  /** Tags of the Structures being decoded, for error paths. */
  private readonly path: number[] = [];

  constructor(
    private readonly bytes: Uint8Array,
    private readonly limits: TtlvLimits,
  ) {}

  private uint32(p: number): number {
    const b = this.bytes;
    return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
  }

  private int64(p: number): bigint {
    return (BigInt((this.uint32(p) | 0)) << 32n) | BigInt(this.uint32(p + 4));
  }

  fail(code: TtlvErrorCode, detail: string, offset: number, tag?: number): never {
    throw new TtlvError(code, detail, offset, tag === undefined ? [...this.path] : [...this.path, tag]);
  }

  /** Decodes the item at `pos`, which must end at or before `end`. */
  item(end: number, depth: number): TtlvItem {
    const b = this.bytes;
    const start = this.pos;
    if (end - start < 8) this.fail('TTLV_TRUNCATED', `${end - start} bytes left, an item header needs 8`, start);
    const prefix = b[start]!;
    if (prefix !== 0x42 && prefix !== 0x54) {
      this.fail('TTLV_BAD_TAG', `tag prefix 0x${prefix.toString(16).padStart(2, '0')} is neither 0x42 nor 0x54`, start);
    }
    const tag = (prefix << 16) | (b[start + 1]! << 8) | b[start + 2]!;
    const type = b[start + 3]!;
    const length = this.uint32(start + 4);
    const valueStart = start + 8;
    const room = end - valueStart;
    if (++this.items > this.limits.maxItems) {
      this.fail('TTLV_TOO_MANY_ITEMS', `more than maxItems ${this.limits.maxItems} items`, start, tag);
    }

    switch (type) {
      case ItemType.Structure: {
        if ((length & 7) !== 0) this.fail('TTLV_BAD_LENGTH', `Structure length ${length} is not a multiple of 8`, start, tag);
        if (length > room) this.childOverruns(start, tag, length, room, end);
        if (depth >= this.limits.maxDepth && length > 0) {
          this.fail('TTLV_TOO_DEEP', `Structures nested deeper than maxDepth ${this.limits.maxDepth}`, start, tag);
        }
        const valueEnd = valueStart + length;
        const children: TtlvItem[] = [];
        this.pos = valueStart;
        this.path.push(tag);
        while (this.pos < valueEnd) children.push(this.item(valueEnd, depth + 1));
        this.path.pop();
        return makeItem(tag, type, children);
      }
      case ItemType.Integer:
        this.fixed(start, tag, length, 4, room);
        return makeItem(tag, type, this.uint32(valueStart) | 0);
      case ItemType.Enumeration:
        this.fixed(start, tag, length, 4, room);
        return makeItem(tag, type, this.uint32(valueStart));
      case ItemType.Interval:
        this.fixed(start, tag, length, 4, room);
        return makeItem(tag, type, this.uint32(valueStart));
      case ItemType.LongInteger:
        this.fixed(start, tag, length, 8, room);
        return makeItem(tag, type, this.int64(valueStart));
      case ItemType.DateTime:
        this.fixed(start, tag, length, 8, room);
        return makeItem(tag, type, this.int64(valueStart));
      case ItemType.DateTimeExtended:
        this.fixed(start, tag, length, 8, room);
        return makeItem(tag, type, this.int64(valueStart));
      case ItemType.Boolean: {
        this.fixed(start, tag, length, 8, room);
        const high = this.uint32(valueStart);
        const low = this.uint32(valueStart + 4);
        if (high !== 0 || low > 1) this.fail('TTLV_BAD_BOOLEAN', 'Boolean value is neither 0 nor 1', start, tag);
        return makeItem(tag, type, low === 1);
      }
      case ItemType.TextString: {
        this.variable(start, tag, length, room, this.limits.maxValueBytes);
        return makeItem(tag, type, this.text(valueStart, length, start, tag));
      }
      case ItemType.ByteString: {
        this.variable(start, tag, length, room, this.limits.maxValueBytes);
        return makeItem(tag, type, copyBytes(b, valueStart, valueStart + length));
      }
      case ItemType.BigInteger: {
        if ((length & 7) !== 0 || length === 0) {
          this.fail('TTLV_BAD_LENGTH', `Big Integer length ${length} is not a positive multiple of 8`, start, tag);
        }
        if (length > this.limits.maxBigIntegerBytes) {
          this.fail('TTLV_VALUE_TOO_LONG', `Big Integer of ${length} bytes exceeds maxBigIntegerBytes ${this.limits.maxBigIntegerBytes}`, start, tag);
        }
        if (length > room) this.childOverruns(start, tag, length, room, end);
        if (length > 8 && redundantSignExtension(b, valueStart)) {
          this.fail('TTLV_BAD_PADDING', 'Big Integer has more sign-extension bytes than the minimum', start, tag);
        }
        this.pos = valueStart + length;
        return makeItem(tag, type, bigIntegerFromBytes(b, valueStart, length));
      }
      default:
        return this.fail('TTLV_BAD_TYPE', `unknown type byte 0x${type.toString(16).padStart(2, '0')}`, start, tag);
    }
  }

  /** Integer, Enumeration, Interval (4 bytes + 4 padding) and the 8-byte types. */
  private fixed(start: number, tag: number, length: number, expected: 4 | 8, room: number): void {
    if (length !== expected) this.fail('TTLV_BAD_LENGTH', `length ${length}, this type needs ${expected}`, start, tag);
    if (room < 8) this.childOverruns(start, tag, 8, room, start + 8 + room);
    if (expected === 4 && this.uint32(start + 12) !== 0) {
      this.fail('TTLV_BAD_PADDING', 'non-zero padding', start + 12, tag);
    }
    this.pos = start + 16;
  }

  /** Text and Byte Strings: value, then zero padding to a multiple of 8. */
  private variable(start: number, tag: number, length: number, room: number, max: number): void {
    if (length > max) this.fail('TTLV_VALUE_TOO_LONG', `value of ${length} bytes exceeds maxValueBytes ${max}`, start, tag);
    const padded = padTo8(length);
    if (padded > room) this.childOverruns(start, tag, padded, room, start + 8 + room);
    const b = this.bytes;
    const valueEnd = start + 8 + padded;
    for (let i = start + 8 + length; i < valueEnd; i++) {
      if (b[i] !== 0) this.fail('TTLV_BAD_PADDING', 'non-zero padding', i, tag);
    }
    this.pos = valueEnd;
  }

  private childOverruns(start: number, tag: number, needed: number, room: number, end: number): never {
    const code = end === this.bytes.length ? 'TTLV_TRUNCATED' : 'TTLV_CHILD_OVERRUNS';
    return this.fail(code, `value needs ${needed} bytes, only ${room} left${code === 'TTLV_CHILD_OVERRUNS' ? ' in the parent Structure' : ''}`, start, tag);
  }

  private text(offset: number, length: number, start: number, tag: number): string {
    const b = this.bytes;
    if (length <= SHORT_TEXT) {
      let ascii = true;
      for (let i = offset; i < offset + length; i++) {
        if (b[i]! >= 0x80) {
          ascii = false;
          break;
        }
      }
      if (ascii) {
        this.buffer ??= Buffer.from(b.buffer, b.byteOffset, b.length);
        return this.buffer.toString('latin1', offset, offset + length);
      }
    }
    try {
      return UTF8.decode(b.subarray(offset, offset + length));
    } catch (error) {
      return this.fail('TTLV_BAD_UTF8', `Text String is not valid UTF-8 (${(error as Error).message})`, start, tag);
    }
  }
}

/**
 * Every decoded item comes from this one allocation site, so V8 gives them all one hidden class
 * and the consumers of the tree stay monomorphic (measured: from 0.8 to 1.3 M msg/s, and stable).
 */
function makeItem(tag: number, type: ItemType, value: TtlvItem['value']): TtlvItem {
  return { tag, type, value } as TtlvItem;
}

/**
 * KMIP 1.2 §9.1.1.4: Big Integers carry the minimal sign extension to a multiple of 8 bytes. A
 * leading block of eight 0x00 (0xFF) bytes is redundant when the next byte's top bit is clear (set).
 * Rejecting it keeps decoding one-to-one: every accepted message re-encodes to the same bytes.
 */
function redundantSignExtension(b: Uint8Array, offset: number): boolean {
  const fill = b[offset]!;
  if (fill !== 0x00 && fill !== 0xff) return false;
  for (let i = offset + 1; i < offset + 8; i++) if (b[i] !== fill) return false;
  return (b[offset + 8]! & 0x80) === (fill & 0x80);
}

/** Two's complement, big-endian (KMIP 1.2 §9.1.1.4 Big Integer). */
function bigIntegerFromBytes(b: Uint8Array, offset: number, length: number): bigint {
  let hex = '';
  for (let i = offset; i < offset + length; i++) hex += HEX_BYTE[b[i]!];
  const unsigned = BigInt('0x' + hex);
  return b[offset]! >= 0x80 ? unsigned - (1n << BigInt(length * 8)) : unsigned;
}

const HEX_BYTE: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
