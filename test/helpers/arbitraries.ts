/** fast-check generators for TTLV item trees. */
import fc from 'fast-check';
import { ItemType, type TtlvItem } from '../../src/ttlv/item.ts';

export const arbitraryTag = fc.oneof(fc.integer({ min: 0x420001, max: 0x420176 }), fc.integer({ min: 0x420000, max: 0x42ffff }), fc.integer({ min: 0x540000, max: 0x54ffff }));

/** Plain objects (fc.record makes null-prototype ones, which deepStrictEqual tells apart). */
function item<V>(type: ItemType, value: fc.Arbitrary<V>): fc.Arbitrary<TtlvItem> {
  return fc.tuple(arbitraryTag, value).map(([tag, v]) => ({ tag, type, value: v }) as TtlvItem);
}

const INT64 = { min: -(1n << 63n), max: (1n << 63n) - 1n };

export function arbitraryLeaf(text: fc.Arbitrary<string> = fc.string({ unit: 'binary', maxLength: 40 })): fc.Arbitrary<TtlvItem> {
  return fc.oneof(
    item(ItemType.Integer, fc.integer({ min: -0x80000000, max: 0x7fffffff })),
    item(ItemType.LongInteger, fc.bigInt(INT64)),
    item(ItemType.BigInteger, fc.bigInt({ min: -(1n << 300n), max: 1n << 300n })),
    item(ItemType.Enumeration, fc.integer({ min: 0, max: 0xffffffff })),
    item(ItemType.Boolean, fc.boolean()),
    item(ItemType.TextString, text),
    item(ItemType.ByteString, fc.uint8Array({ maxLength: 40 })),
    item(ItemType.DateTime, fc.bigInt(INT64)),
    item(ItemType.Interval, fc.integer({ min: 0, max: 0xffffffff })),
    item(ItemType.DateTimeExtended, fc.bigInt(INT64)),
  ) as fc.Arbitrary<TtlvItem>;
}

/** Trees up to `maxDepth` deep with up to 6 children per Structure. */
export function arbitraryTree(leaf: fc.Arbitrary<TtlvItem> = arbitraryLeaf(), maxDepth = 5): fc.Arbitrary<TtlvItem> {
  const { tree } = fc.letrec<{ tree: TtlvItem }>((tie) => ({
    tree: fc.oneof(
      { depthSize: 'small', maxDepth },
      leaf,
      item(ItemType.Structure, fc.array(tie('tree'), { maxLength: 6 })) as fc.Arbitrary<TtlvItem>,
    ),
  }));
  return tree;
}

/** Depth (top = 1) and item count of a tree. */
export function measureTree(item: TtlvItem): { depth: number; items: number } {
  if (item.type !== ItemType.Structure) return { depth: 1, items: 1 };
  let depth = 0;
  let items = 1;
  for (const child of item.value) {
    const m = measureTree(child);
    depth = Math.max(depth, m.depth);
    items += m.items;
  }
  return { depth: depth + 1, items };
}
