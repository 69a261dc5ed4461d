/** Every codec limit, exercised at the limit (accepted) and one over (refused with its code). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bigInteger, byteString, integer, structure, textString } from '../../src/ttlv/build.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { TtlvError } from '../../src/ttlv/errors.ts';
import { TtlvFramer } from '../../src/ttlv/framer.ts';
import type { TtlvItem } from '../../src/ttlv/item.ts';
import { DEFAULT_TTLV_LIMITS, type TtlvLimits } from '../../src/ttlv/limits.ts';

function isCode(code: string) {
  return (error: unknown) => error instanceof TtlvError && error.code === code;
}

/** Decoding and encoding both accept `tree` under `limit` and refuse it under `limit - 1`. */
function atAndOver(tree: TtlvItem, name: keyof TtlvLimits, limit: number, code: string): void {
  const bytes = encodeTtlv(tree);
  assert.deepEqual(decodeTtlv(bytes, { [name]: limit }), tree);
  assert.equal(encodeTtlv(tree, { [name]: limit }).length, bytes.length);
  assert.throws(() => decodeTtlv(bytes, { [name]: limit - 1 }), isCode(code));
  assert.throws(() => encodeTtlv(tree, { [name]: limit - 1 }), isCode(code));
}

/** `depth` Structures nested in one another, with an Integer in the innermost. */
function nested(depth: number): TtlvItem {
  let item: TtlvItem = integer(0x420002, 7);
  for (let d = 0; d < depth; d++) item = structure(0x420001, [item]);
  return item;
}

describe('TTLV limits: at the limit and one over', () => {
  it('maxMessageBytes', () => {
    const tree = structure(0x420001, [textString(0x420002, 'x'.repeat(100))]);
    atAndOver(tree, 'maxMessageBytes', encodeTtlv(tree).length, 'TTLV_TOO_LARGE');
  });
  it('maxDepth (the top-level item is depth 1; the Integer here is at depth 6)', () => {
    atAndOver(nested(5), 'maxDepth', 6, 'TTLV_TOO_DEEP');
  });
  it('maxItems', () => {
    const tree = structure(0x420001, Array.from({ length: 9 }, (_, i) => integer(0x420002, i)));
    atAndOver(tree, 'maxItems', 10, 'TTLV_TOO_MANY_ITEMS');
  });
  it('maxValueBytes for Text Strings and Byte Strings', () => {
    atAndOver(textString(0x420001, 'é'.repeat(20)), 'maxValueBytes', 40, 'TTLV_VALUE_TOO_LONG');
    atAndOver(byteString(0x420001, new Uint8Array(33)), 'maxValueBytes', 33, 'TTLV_VALUE_TOO_LONG');
  });
  it('maxBigIntegerBytes', () => {
    atAndOver(bigInteger(0x420001, 1n << 100n), 'maxBigIntegerBytes', 16, 'TTLV_VALUE_TOO_LONG');
  });
  it('the defaults are documented values, and bad limits are programmer errors', () => {
    assert.deepEqual({ ...DEFAULT_TTLV_LIMITS }, { maxMessageBytes: 1048576, maxDepth: 32, maxItems: 65536, maxValueBytes: 1048576, maxBigIntegerBytes: 4096 });
    assert.throws(() => decodeTtlv(new Uint8Array(16), { maxDepth: 0 }), RangeError);
    assert.throws(() => decodeTtlv(new Uint8Array(16), { maxItems: 1.5 }), RangeError);
  });
  it('a length claimed on the wire is checked before anything is allocated for it', () => {
    // One header claiming a 4 GiB-1 Byte String, with limits raised so only the bytes left can refuse it.
    const header = Uint8Array.of(0x42, 0x00, 0x01, 0x08, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0);
    const before = process.memoryUsage().arrayBuffers;
    assert.throws(() => decodeTtlv(header, { maxValueBytes: 2 ** 32 }), isCode('TTLV_TRUNCATED'));
    assert.ok(process.memoryUsage().arrayBuffers - before < 1024 * 1024);
  });
  it('a deep message is refused at maxDepth before recursing further (no stack overflow)', () => {
    const depth = 100_000;
    const bytes = new Uint8Array(depth * 8);
    for (let d = 0; d < depth; d++) bytes.set([0x42, 0x00, 0x01, 0x01, ...u32((depth - d - 1) * 8)], d * 8);
    assert.throws(() => decodeTtlv(bytes, { maxDepth: 64 }), isCode('TTLV_TOO_DEEP'));
  });
});

function u32(n: number): number[] {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

describe('TTLV framer', () => {
  const message = encodeTtlv(structure(0x420078, [integer(0x42000d, 1), textString(0x420094, 'abc')]));

  it('splits messages arriving in any chunking', () => {
    const stream = new Uint8Array([...message, ...message, ...message]);
    for (const size of [1, 3, 8, 13, 40, stream.length]) {
      const framer = new TtlvFramer();
      const out: Uint8Array[] = [];
      for (let i = 0; i < stream.length; i += size) out.push(...framer.push(stream.subarray(i, i + size)));
      assert.equal(out.length, 3, `chunk size ${size}`);
      for (const m of out) assert.deepEqual(m, message);
      assert.equal(framer.pendingBytes, 0);
    }
  });
  it('maxMessageBytes: at the limit accepted, one over refused from the header alone', () => {
    assert.equal(new TtlvFramer(message.length).push(message).length, 1);
    const framer = new TtlvFramer(message.length - 1);
    assert.throws(() => framer.push(message.subarray(0, 8)), isCode('TTLV_TOO_LARGE'));
    assert.throws(() => framer.push(message.subarray(8)), isCode('TTLV_TOO_LARGE')); // unusable afterwards
  });
  it('refuses a stream that does not start a KMIP message', () => {
    assert.throws(() => new TtlvFramer().push(Uint8Array.of(0x54, 0, 1, 1, 0, 0, 0, 8)), isCode('TTLV_NOT_A_MESSAGE'));
    assert.throws(() => new TtlvFramer().push(Uint8Array.of(0x42, 0, 0x78, 2, 0, 0, 0, 4)), isCode('TTLV_NOT_A_MESSAGE'));
    assert.throws(() => new TtlvFramer().push(Uint8Array.of(0x42, 0, 0x78, 1, 0, 0, 0, 5)), isCode('TTLV_NOT_A_MESSAGE'));
  });
});
