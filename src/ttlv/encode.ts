import { TtlvError, type TtlvErrorCode } from './errors.ts';
import { isValidTag, ItemType, padTo8, type TtlvItem } from './item.ts';
import { resolveTtlvLimits, type TtlvLimits } from './limits.ts';
import { allocZeroed } from './slab.ts';

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const utf8Encoder = new TextEncoder();

/**
 * Encodes one item tree to TTLV bytes (KMIP 1.2 §9.1). Two passes: the first validates every
 * value and computes the exact size (so limits are enforced before the output is allocated), the
 * second writes into one zero-filled array, so padding needs no writing. Big Integers get the
 * minimal sign extension to a multiple of 8.
 */
export function encodeTtlv(item: TtlvItem, limits?: Partial<TtlvLimits>): Uint8Array {
  const resolved = resolveTtlvLimits(limits);
  const sizer = new Sizer(resolved);
  const size = sizer.size(item, 1);
  if (size > resolved.maxMessageBytes) {
    throw new TtlvError('TTLV_TOO_LARGE', `encoding needs ${size} bytes, over maxMessageBytes ${resolved.maxMessageBytes}`, -1, [item.tag]);
  }
  const writer = new Writer(allocZeroed(size), sizer.textLengths);
  const end = writer.write(0, item);
  if (end !== size) throw new Error(`TTLV encoder wrote ${end} bytes, sized ${size}`); // guards the two passes agreeing
  return writer.out;
}

class Sizer {
  /** UTF-8 length of each Text String, in tree order, so the writer need not measure again. */
  readonly textLengths: number[] = [];
  private items = 0;
  private readonly path: number[] = [];

  constructor(private readonly limits: TtlvLimits) {}

  private fail(code: TtlvErrorCode, detail: string, tag: number): never {
    throw new TtlvError(code, detail, -1, [...this.path, tag]);
  }

  /** Encoded size of `item`, header and padding included; validates as it goes. */
  size(item: TtlvItem, depth: number): number {
    const { tag } = item;
    if (!isValidTag(tag)) this.fail('TTLV_BAD_TAG', `tag ${String(tag)} is not in 0x42xxxx or 0x54xxxx`, 0);
    if (++this.items > this.limits.maxItems) this.fail('TTLV_TOO_MANY_ITEMS', `more than maxItems ${this.limits.maxItems} items`, tag);
    switch (item.type) {
      case ItemType.Structure: {
        if (!Array.isArray(item.value)) this.fail('TTLV_INVALID_VALUE', 'Structure value must be an array', tag);
        if (item.value.length > 0 && depth >= this.limits.maxDepth) {
          this.fail('TTLV_TOO_DEEP', `Structures nested deeper than maxDepth ${this.limits.maxDepth}`, tag);
        }
        let total = 8;
        this.path.push(tag);
        for (const child of item.value) total += this.size(child, depth + 1);
        this.path.pop();
        return total;
      }
      case ItemType.Integer:
        this.checkNumber(item.value, -0x80000000, 0x7fffffff, tag);
        return 16;
      case ItemType.Enumeration:
      case ItemType.Interval:
        this.checkNumber(item.value, 0, 0xffffffff, tag);
        return 16;
      case ItemType.LongInteger:
      case ItemType.DateTime:
      case ItemType.DateTimeExtended:
        if (typeof item.value !== 'bigint' || item.value < INT64_MIN || item.value > INT64_MAX) {
          this.fail('TTLV_INVALID_VALUE', `${String(item.value)} is not a 64-bit signed bigint`, tag);
        }
        return 16;
      case ItemType.Boolean:
        if (typeof item.value !== 'boolean') this.fail('TTLV_INVALID_VALUE', 'Boolean value must be a boolean', tag);
        return 16;
      case ItemType.TextString: {
        if (typeof item.value !== 'string') this.fail('TTLV_INVALID_VALUE', 'Text String value must be a string', tag);
        const length = utf8Length(item.value);
        if (length < 0) this.fail('TTLV_BAD_UTF8', 'Text String has a lone surrogate', tag);
        this.checkValueLength(length, tag);
        this.textLengths.push(length);
        return 8 + padTo8(length);
      }
      case ItemType.ByteString:
        if (!(item.value instanceof Uint8Array)) this.fail('TTLV_INVALID_VALUE', 'Byte String value must be a Uint8Array', tag);
        this.checkValueLength(item.value.length, tag);
        return 8 + padTo8(item.value.length);
      case ItemType.BigInteger: {
        if (typeof item.value !== 'bigint') this.fail('TTLV_INVALID_VALUE', 'Big Integer value must be a bigint', tag);
        const length = bigIntegerLength(item.value);
        if (length > this.limits.maxBigIntegerBytes) {
          this.fail('TTLV_VALUE_TOO_LONG', `Big Integer needs ${length} bytes, over maxBigIntegerBytes ${this.limits.maxBigIntegerBytes}`, tag);
        }
        return 8 + length;
      }
      default:
        return this.fail('TTLV_BAD_TYPE', `unknown item type ${String((item as { type: unknown }).type)}`, tag);
    }
  }

  private checkNumber(value: unknown, min: number, max: number, tag: number): void {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.fail('TTLV_INVALID_VALUE', `${String(value)} is not an integer in [${min}, ${max}]`, tag);
    }
  }

  private checkValueLength(length: number, tag: number): void {
    if (length > this.limits.maxValueBytes) {
      this.fail('TTLV_VALUE_TOO_LONG', `value of ${length} bytes exceeds maxValueBytes ${this.limits.maxValueBytes}`, tag);
    }
  }
}

/** Writes an item tree the Sizer has validated and measured. */
class Writer {
  private nextText = 0;

  constructor(
    readonly out: Uint8Array,
    private readonly textLengths: readonly number[],
  ) {}

  private uint32(p: number, v: number): void {
    const o = this.out;
    o[p] = v >>> 24;
    o[p + 1] = v >>> 16;
    o[p + 2] = v >>> 8;
    o[p + 3] = v;
  }

  private int64(p: number, v: bigint): void {
    this.uint32(p, Number(BigInt.asUintN(32, v >> 32n)));
    this.uint32(p + 4, Number(BigInt.asUintN(32, v)));
  }

  /** Writes `item` at `pos`; returns the position after it. */
  write(pos: number, item: TtlvItem): number {
    const o = this.out;
    const tag = item.tag;
    o[pos] = tag >> 16;
    o[pos + 1] = tag >> 8;
    o[pos + 2] = tag;
    o[pos + 3] = item.type;
    const valueStart = pos + 8;
    switch (item.type) {
      case ItemType.Structure: {
        let p = valueStart;
        for (const child of item.value) p = this.write(p, child);
        this.uint32(pos + 4, p - valueStart);
        return p;
      }
      case ItemType.Integer:
      case ItemType.Enumeration:
      case ItemType.Interval:
        o[pos + 7] = 4;
        this.uint32(valueStart, item.value);
        return pos + 16;
      case ItemType.LongInteger:
      case ItemType.DateTime:
      case ItemType.DateTimeExtended:
        o[pos + 7] = 8;
        this.int64(valueStart, item.value);
        return pos + 16;
      case ItemType.Boolean:
        o[pos + 7] = 8;
        o[valueStart + 7] = item.value ? 1 : 0;
        return pos + 16;
      case ItemType.TextString: {
        const length = this.textLengths[this.nextText++]!;
        this.uint32(pos + 4, length);
        writeText(o, valueStart, item.value, length);
        return valueStart + padTo8(length);
      }
      case ItemType.ByteString:
        this.uint32(pos + 4, item.value.length);
        o.set(item.value, valueStart);
        return valueStart + padTo8(item.value.length);
      case ItemType.BigInteger: {
        const length = bigIntegerLength(item.value);
        this.uint32(pos + 4, length);
        writeBigInteger(o, valueStart, length, item.value);
        return valueStart + length;
      }
    }
  }
}

/** UTF-8 byte length, or -1 when the string has a lone surrogate (not encodable). */
function utf8Length(text: string): number {
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) >= 0x80) return text.isWellFormed() ? Buffer.byteLength(text, 'utf8') : -1;
  }
  return text.length;
}

function writeText(out: Uint8Array, pos: number, text: string, byteLength: number): void {
  if (byteLength !== text.length) {
    utf8Encoder.encodeInto(text, out.subarray(pos, pos + byteLength));
    return;
  }
  for (let i = 0; i < byteLength; i++) out[pos + i] = text.charCodeAt(i);
}

/** Bytes for `value` in two's complement, sign-extended to the next multiple of 8 (min 8). */
function bigIntegerLength(value: bigint): number {
  // Bits needed including the sign bit: for v ≥ 0, bitlen(v)+1; for v < 0, bitlen(-v-1)+1.
  const magnitude = value < 0n ? -value - 1n : value;
  const bits = magnitude === 0n ? 1 : magnitude.toString(2).length + 1;
  return Math.max(8, Math.ceil(bits / 64) * 8);
}

function writeBigInteger(out: Uint8Array, pos: number, length: number, value: bigint): void {
  let v = BigInt.asUintN(length * 8, value);
  for (let i = pos + length - 1; i >= pos; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
}
