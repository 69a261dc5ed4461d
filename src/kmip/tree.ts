/** Reading KMIP structures: find children by tag, with coded errors for what a peer got wrong. */
import { KmipEdgeError } from '../errors.ts';
import { ItemType, type TtlvItem } from '../ttlv/item.ts';
import { tagName } from './vocabulary.ts';

/**
 * A message that decodes as TTLV but is not the KMIP structure it should be (a required field
 * missing, a field of the wrong type). Code KMIP_MESSAGE_INVALID.
 */
export function invalidMessage(detail: string): KmipEdgeError {
  return new KmipEdgeError('KMIP_MESSAGE_INVALID', detail);
}

function nameOf(tag: number): string {
  return tagName(tag) ?? `0x${tag.toString(16)}`;
}

export function childrenOf(item: TtlvItem): TtlvItem[] {
  if (item.type !== ItemType.Structure) throw invalidMessage(`${nameOf(item.tag)} must be a Structure`);
  return item.value;
}

export function findChild(parent: TtlvItem, tag: number): TtlvItem | undefined {
  return childrenOf(parent).find((c) => c.tag === tag);
}

export function findChildren(parent: TtlvItem, tag: number): TtlvItem[] {
  return childrenOf(parent).filter((c) => c.tag === tag);
}

/** The JavaScript type of each item type's value (src/ttlv/item.ts). */
interface ValueByType {
  1: TtlvItem[]; 2: number; 3: bigint; 4: bigint; 5: number; 6: boolean; 7: string; 8: Uint8Array; 9: bigint; 10: number; 11: bigint;
}
type ValueOf<T extends ItemType> = ValueByType[T];

/** The value of the first child with `tag`, which must have `type`; undefined when absent. */
export function optionalValue<T extends ItemType>(parent: TtlvItem, tag: number, type: T): ValueOf<T> | undefined {
  const child = findChild(parent, tag);
  if (child === undefined) return undefined;
  if (child.type !== type) throw invalidMessage(`${nameOf(tag)} in ${nameOf(parent.tag)} has type ${child.type}, expected ${type}`);
  return child.value as unknown as ValueOf<T>;
}

export function requiredValue<T extends ItemType>(parent: TtlvItem, tag: number, type: T): ValueOf<T> {
  const value = optionalValue(parent, tag, type);
  if (value === undefined) throw invalidMessage(`${nameOf(parent.tag)} lacks its required ${nameOf(tag)}`);
  return value as ValueOf<T>;
}

export function requiredChild(parent: TtlvItem, tag: number): TtlvItem {
  const child = findChild(parent, tag);
  if (child === undefined) throw invalidMessage(`${nameOf(parent.tag)} lacks its required ${nameOf(tag)}`);
  return child;
}
