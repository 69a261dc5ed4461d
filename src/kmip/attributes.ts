/**
 * KMIP 1.x attributes (KMIP 1.2 §2.1.1, §3): the Attribute structure {Attribute Name, Attribute
 * Index, Attribute Value}, builders for the values the agent sets, and a JSON view for output.
 */
import { enumeration, integer, structure, textString } from '../ttlv/build.ts';
import { ItemType, type TtlvItem } from '../ttlv/item.ts';
import { formatBigInteger, formatDateTime, valueText } from './text-values.ts';
import { NameType, Tag } from './tables.generated.ts';
import { childrenOf, findChild, optionalValue, requiredValue } from './tree.ts';
import { tagName, valueTagInContext } from './vocabulary.ts';

export interface Attribute {
  name: string;
  /** Absent means 0 (KMIP 1.2 §2.1.1). Never sent in Add Attribute or Locate. */
  index?: number;
  /** The Attribute Value item (tag 0x42000B); absent in a Notify for a deleted attribute. */
  value?: TtlvItem;
}

export function attributeItem(attribute: Attribute): TtlvItem {
  const fields: TtlvItem[] = [textString(Tag.AttributeName, attribute.name)];
  if (attribute.index !== undefined) fields.push(integer(Tag.AttributeIndex, attribute.index));
  if (attribute.value !== undefined) fields.push(attribute.value);
  return structure(Tag.Attribute, fields);
}

export function readAttribute(item: TtlvItem): Attribute {
  const attribute: Attribute = { name: requiredValue(item, Tag.AttributeName, ItemType.TextString) };
  const index = optionalValue(item, Tag.AttributeIndex, ItemType.Integer);
  if (index !== undefined) attribute.index = index;
  const value = findChild(item, Tag.AttributeValue);
  if (value !== undefined) attribute.value = value;
  return attribute;
}

/** An Attribute Value item holding a Name structure (KMIP 1.2 §3.2). */
export function nameValue(name: string, type: number = NameType.UninterpretedTextString): TtlvItem {
  return structure(Tag.AttributeValue, [textString(Tag.NameValue, name), enumeration(Tag.NameType, type)]);
}

/**
 * The JSON view of an attribute value: enumerations and masks by name, dates in ISO 8601, bytes in
 * hex, Long Integers as numbers when safe, structures as objects keyed by field name (arrays where
 * a field repeats). For CLI output and logs of non-secret attributes only.
 */
export function attributeValueJson(attributeName: string, value: TtlvItem): unknown {
  const context = textString(Tag.AttributeName, attributeName);
  return itemJson(value, valueTagInContext(value.tag, context));
}

function itemJson(item: TtlvItem, valueTag: number): unknown {
  switch (item.type) {
    case ItemType.Structure: {
      const object: Record<string, unknown> = {};
      for (const child of childrenOf(item)) {
        const key = lowerCamel(tagName(child.tag) ?? `0x${child.tag.toString(16)}`);
        const value = itemJson(child, child.tag);
        const existing = object[key];
        object[key] = existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [existing, value];
      }
      return object;
    }
    case ItemType.Integer:
    case ItemType.Enumeration: {
      const text = valueText(item, valueTag, '|');
      return /^-?\d+$/.test(text) ? item.value : text;
    }
    case ItemType.LongInteger:
      return item.value >= BigInt(Number.MIN_SAFE_INTEGER) && item.value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(item.value) : item.value.toString();
    case ItemType.BigInteger:
      return formatBigInteger(item.value);
    case ItemType.DateTime:
      return formatDateTime(item.value);
    case ItemType.Boolean:
    case ItemType.TextString:
    case ItemType.Interval:
      return item.value;
    default:
      return valueText(item, valueTag, '|');
  }
}

/** "UniqueIdentifier" → "uniqueIdentifier" (CLI.md: the spec's names in lowerCamelCase). */
export function lowerCamel(name: string): string {
  return name.charAt(0).toLowerCase() + name.slice(1);
}

/** Attributes as a JSON object: name → value, or an array of values for several instances. */
export function attributesJson(attributes: readonly Attribute[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const attribute of attributes) {
    if (attribute.value === undefined) continue;
    const value = attributeValueJson(attribute.name, attribute.value);
    const existing = out[attribute.name];
    out[attribute.name] = existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [existing, value];
  }
  return out;
}
