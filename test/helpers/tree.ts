import { ItemType, type TtlvItem } from '../../src/ttlv/item.ts';

/** The first item with `tag` in a tree, depth first. */
export function findItem(item: TtlvItem, tag: number): TtlvItem | undefined {
  if (item.tag === tag) return item;
  if (item.type !== ItemType.Structure) return undefined;
  for (const child of item.value) {
    const found = findItem(child, tag);
    if (found) return found;
  }
  return undefined;
}
