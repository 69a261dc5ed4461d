/**
 * Look-ups over the generated KMIP tables: tag ⇄ name, enumeration and bit-mask value ⇄ name, and
 * the one piece of context the text forms need — an Attribute Value's enumeration or mask comes
 * from the Attribute Name beside it (KMIP 1.2 §2.1.1).
 */
import { ItemType, type TtlvItem } from '../ttlv/item.ts';
import { ATTRIBUTE_SPECS, ENUMERATIONS_BY_TAG, MASKS_BY_TAG, TAG_SPECS, Tag } from './tables.generated.ts';

/** Values of one enumeration or bit mask in both directions. */
export interface ValueNames {
  readonly byName: ReadonlyMap<string, number>;
  readonly byValue: ReadonlyMap<number, string>;
}

function valueNames(record: Readonly<Record<string, number>>): ValueNames {
  const byName = new Map(Object.entries(record));
  const byValue = new Map<number, string>();
  for (const [name, value] of byName) if (!byValue.has(value)) byValue.set(value, name);
  return { byName, byValue };
}

const TAG_NAME = new Map<number, string>();
const TAG_BY_NAME = new Map<string, number>();
for (const [tag, name] of TAG_SPECS) {
  if (name === 'Reserved') continue;
  TAG_NAME.set(tag, name);
  TAG_BY_NAME.set(name, tag);
}
const ENUMERATIONS = new Map(ENUMERATIONS_BY_TAG.map(([tag, record]) => [tag, valueNames(record)] as const));
const MASKS = new Map(MASKS_BY_TAG.map(([tag, record]) => [tag, valueNames(record)] as const));
const ATTRIBUTE_VALUE_TAG = new Map(ATTRIBUTE_SPECS.map(([name, valueTag]) => [name, valueTag] as const));

/** The KMIP XML name of a tag ("RequestMessage"), or undefined for an unknown or extension tag. */
export function tagName(tag: number): string | undefined {
  return TAG_NAME.get(tag);
}

export function tagFromName(name: string): number | undefined {
  return TAG_BY_NAME.get(name);
}

/** The tag whose enumeration/mask applies to an attribute, by its Attribute Name text. */
export function attributeValueTag(attributeName: string): number | undefined {
  return ATTRIBUTE_VALUE_TAG.get(attributeName);
}

/**
 * The tag that decides how the value of an item with `tag` is named: its own, or for an Attribute
 * Value the tag of the attribute named by the Attribute Name sibling that precedes it.
 */
export function valueTagInContext(tag: number, precedingSibling: TtlvItem | undefined): number {
  if (tag === Tag.AttributeValue && precedingSibling?.tag === Tag.AttributeName && precedingSibling.type === ItemType.TextString) {
    return attributeValueTag(precedingSibling.value) ?? tag;
  }
  return tag;
}

export function enumerationFor(tag: number): ValueNames | undefined {
  return ENUMERATIONS.get(tag);
}

export function maskFor(tag: number): ValueNames | undefined {
  return MASKS.get(tag);
}

/** "0x0000000C": how KMIP XML/JSON write a value that has no name. */
export function hex32(value: number): string {
  return '0x' + value.toString(16).toUpperCase().padStart(8, '0');
}

/** Enumeration value → its name, or hex when unknown (extensions 0x8XXXXXXX, newer versions). */
export function enumerationText(tag: number, value: number): string {
  return enumerationFor(tag)?.byValue.get(value) ?? hex32(value);
}

/** Bit mask → names of the set bits, low bit first, separated by `separator`; unknown bits in hex. */
export function maskText(mask: ValueNames, value: number, separator: string): string {
  const names: string[] = [];
  let rest = value >>> 0;
  for (let i = 0; i < 32; i++) {
    const bit = (1 << i) >>> 0;
    const name = mask.byValue.get(bit);
    if ((rest & bit) !== 0 && name !== undefined) {
      names.push(name);
      rest = (rest & ~bit) >>> 0;
    }
  }
  if (rest !== 0 || names.length === 0) names.push(hex32(rest));
  return names.join(separator);
}
