/** Property tests (fast-check): byte-exact round trips, and hostile bytes only ever fail cleanly. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { TtlvError } from '../../src/ttlv/errors.ts';
import { TtlvFramer } from '../../src/ttlv/framer.ts';
import { arbitraryTree, measureTree } from '../helpers/arbitraries.ts';

const SMALL_LIMITS = { maxMessageBytes: 4096, maxDepth: 6, maxItems: 64, maxValueBytes: 512, maxBigIntegerBytes: 64 };

/** Decodes hostile bytes: the only acceptable failure is a TtlvError, and a success respects the limits. */
function decodeHostile(bytes: Uint8Array): void {
  try {
    const tree = decodeTtlv(bytes, SMALL_LIMITS);
    const { depth, items } = measureTree(tree);
    assert.ok(depth <= SMALL_LIMITS.maxDepth && items <= SMALL_LIMITS.maxItems);
    assert.deepEqual(encodeTtlv(tree), bytes); // anything accepted is canonical…
  } catch (error) {
    if (!(error instanceof TtlvError)) throw error;
  }
}

describe('TTLV properties', () => {
  it('random trees round-trip byte-exactly: decode(encode(t)) = t, and encode(decode(b)) = b', () => {
    fc.assert(
      fc.property(arbitraryTree(), (tree) => {
        const bytes = encodeTtlv(tree);
        const back = decodeTtlv(bytes);
        assert.deepEqual(back, tree);
        assert.deepEqual(encodeTtlv(back), bytes);
      }),
      { numRuns: 1000 },
    );
  });

  it('random bytes never throw anything but a TtlvError, nor yield a tree over the limits', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 256 }), decodeHostile), { numRuns: 3000 });
    // Byte soup that at least starts like an item, so the decoder gets past the first header.
    const headed = fc.tuple(fc.constantFrom(0x42, 0x54), fc.uint8Array({ minLength: 2, maxLength: 2 }), fc.integer({ min: 0, max: 12 }), fc.uint8Array({ maxLength: 200 }));
    fc.assert(fc.property(headed, ([p, t, type, rest]) => decodeHostile(Uint8Array.of(p, ...t, type, 0, 0, 0, rest.length, ...rest))), { numRuns: 3000 });
  });

  it('mutated valid messages (bit flips, truncation, splices) fail cleanly or decode canonically', () => {
    const mutated = fc
      .tuple(arbitraryTree(), fc.array(fc.tuple(fc.nat(), fc.nat(7)), { minLength: 1, maxLength: 4 }), fc.nat(), fc.boolean())
      .map(([tree, flips, cut, truncate]) => {
        const bytes = Uint8Array.from(encodeTtlv(tree));
        for (const [position, bit] of flips) bytes[position % bytes.length]! ^= 1 << bit;
        return truncate ? bytes.subarray(0, cut % (bytes.length + 1)) : bytes;
      });
    fc.assert(fc.property(mutated, decodeHostile), { numRuns: 3000 });
  });

  it('the framer returns exactly the messages pushed, however the stream is cut', () => {
    const messages = fc.array(arbitraryTree().map((tree) => encodeTtlv({ tag: 0x420078, type: 1, value: [tree] })), { minLength: 1, maxLength: 4 });
    fc.assert(
      fc.property(messages, fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }), (list, cuts) => {
        const stream = Buffer.concat(list);
        const framer = new TtlvFramer();
        const out: Uint8Array[] = [];
        let offset = 0;
        for (let i = 0; offset < stream.length; i++) {
          const size = cuts[i % cuts.length]!;
          out.push(...framer.push(stream.subarray(offset, offset + size)));
          offset += size;
        }
        assert.deepEqual(out.map((m) => Buffer.from(m).toString('hex')), list.map((m) => Buffer.from(m).toString('hex')));
      }),
      { numRuns: 300 },
    );
  });
});
