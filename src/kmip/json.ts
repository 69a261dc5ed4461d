/**
 * KMIP JSON (KMIP Profiles 1.x §5.5): every item is `{"tag": …, "type": …, "value": …}`; `type` is
 * left out for a Structure, whose value is the array of children. Tags by name, or "0x54xxxx" when
 * unknown; Integer and Interval as numbers (bit masks as names joined by "|"); Long Integer as a
 * number when it is a safe integer, else "0x…" hex; Big Integer as "0x…" hex; Enumeration by name
 * or "0x…"; Byte String as hex; Date-Time as ISO 8601.
 */
import { formatTag, ITEM_TYPE_NAMES, ItemType, itemTypeFromName, type TtlvItem } from '../ttlv/item.ts';
import {
  DEFAULT_TEXT_FORM_LIMITS,
  parseBigInteger,
  parseDateTime,
  parseDateTimeExtended,
  parseDecimal,
  parseEnumeration,
  parseHexBytes,
  parseLong,
  parseMask,
  textFormError,
  valueText,
  type TextFormLimits,
} from './text-values.ts';
import { maskFor, tagFromName, tagName, valueTagInContext } from './vocabulary.ts';

export type KmipJson = { tag: string; type?: string; value: KmipJson[] | string | number | boolean };

/** The JSON value of an item tree (serialize it with JSON.stringify). */
export function toKmipJson(item: TtlvItem, previous?: TtlvItem): KmipJson {
  const tag = tagName(item.tag) ?? formatTag(item.tag);
  if (item.type === ItemType.Structure) {
    const children: KmipJson[] = [];
    let sibling: TtlvItem | undefined;
    for (const child of item.value) {
      children.push(toKmipJson(child, sibling));
      sibling = child;
    }
    return { tag, value: children };
  }
  const type = ITEM_TYPE_NAMES[item.type];
  const valueTag = valueTagInContext(item.tag, previous);
  switch (item.type) {
    case ItemType.Integer:
      return { tag, type, value: maskFor(valueTag) ? valueText(item, valueTag, '|') : item.value };
    case ItemType.Interval:
      return { tag, type, value: item.value };
    case ItemType.LongInteger:
      return { tag, type, value: isSafe(item.value) ? Number(item.value) : '0x' + BigInt.asUintN(64, item.value).toString(16).padStart(16, '0') };
    case ItemType.BigInteger:
      return { tag, type, value: '0x' + valueText(item, valueTag, '|') };
    case ItemType.Boolean:
      return { tag, type, value: item.value };
    default:
      return { tag, type, value: valueText(item, valueTag, '|') };
  }
}

function isSafe(value: bigint): boolean {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER);
}

export function formatKmipJson(item: TtlvItem): string {
  return JSON.stringify(toKmipJson(item), null, 1) + '\n';
}

/** Parses KMIP JSON text: one item. Size is checked before JSON.parse, depth and count while walking. */
export function parseKmipJson(text: string, limits?: Partial<TextFormLimits>): TtlvItem {
  const resolved = { ...DEFAULT_TEXT_FORM_LIMITS, ...limits };
  const size = Buffer.byteLength(text, 'utf8');
  if (size > resolved.maxTextBytes) throw textFormError(`JSON document of ${size} bytes exceeds maxTextBytes ${resolved.maxTextBytes}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw textFormError(`JSON is not well-formed: ${(error as Error).message}`);
  }
  const counter = { items: 0 };
  return fromKmipJson(parsed, undefined, 1, resolved, counter, '');
}

function fromKmipJson(node: unknown, previous: TtlvItem | undefined, depth: number, limits: TextFormLimits, counter: { items: number }, path: string): TtlvItem {
  if (depth > limits.maxDepth) throw textFormError(`items nested deeper than maxDepth ${limits.maxDepth} (at ${path})`);
  if (++counter.items > limits.maxItems) throw textFormError(`more than maxItems ${limits.maxItems} items`);
  if (typeof node !== 'object' || node === null || Array.isArray(node)) throw textFormError(`an item must be an object (at ${path || 'top'})`);
  const { tag: tagText, type: typeText, value, ...extra } = node as Record<string, unknown>;
  const extraKeys = Object.keys(extra);
  if (extraKeys.length > 0) throw textFormError(`unknown member ${JSON.stringify(extraKeys[0])} (at ${path || 'top'})`);
  if (typeof tagText !== 'string') throw textFormError(`an item needs a string "tag" (at ${path || 'top'})`);
  const tag = tagFromName(tagText) ?? (/^0x[0-9a-fA-F]{6}$/.test(tagText) ? Number.parseInt(tagText.slice(2), 16) : undefined);
  if (tag === undefined) throw textFormError(`unknown tag ${JSON.stringify(tagText)} (at ${path || 'top'})`);
  const where = `${path}/${tagText}`;
  const type = typeText === undefined ? ItemType.Structure : typeof typeText === 'string' ? itemTypeFromName(typeText) : undefined;
  if (type === undefined) throw textFormError(`unknown type ${JSON.stringify(typeText)} (at ${where})`);

  if (type === ItemType.Structure) {
    if (!Array.isArray(value)) throw textFormError(`a Structure's value must be an array (at ${where})`);
    const children: TtlvItem[] = [];
    let sibling: TtlvItem | undefined;
    for (const child of value) {
      sibling = fromKmipJson(child, sibling, depth + 1, limits, counter, where);
      children.push(sibling);
    }
    return { tag, type, value: children };
  }
  const valueTag = valueTagInContext(tag, previous);
  const what = where;
  const asText = (): string => {
    if (typeof value === 'string') return value;
    if (typeof value === 'number' && Number.isInteger(value)) return String(value);
    throw textFormError(`${what}: expected a string or an integer, got ${JSON.stringify(value)}`);
  };
  switch (type) {
    case ItemType.Integer: {
      const mask = maskFor(valueTag);
      if (mask && typeof value === 'string' && !/^-?\d+$|^0x[0-9a-fA-F]+$/.test(value)) return { tag, type, value: parseMask(value, mask, what) };
      return { tag, type, value: parseDecimal(asText(), -0x80000000, 0x7fffffff, what) };
    }
    case ItemType.Interval:
      return { tag, type, value: parseDecimal(asText(), 0, 0xffffffff, what) };
    case ItemType.Enumeration:
      return { tag, type, value: typeof value === 'number' ? parseDecimal(asText(), 0, 0xffffffff, what) : parseEnumeration(asText(), valueTag, what) };
    case ItemType.LongInteger:
      if (typeof value === 'number' && !Number.isSafeInteger(value)) throw textFormError(`${what}: ${value} is not a safe integer; write it as "0x…"`);
      return { tag, type, value: parseLong(asText(), what) };
    case ItemType.BigInteger:
      if (typeof value === 'number') {
        if (!Number.isSafeInteger(value)) throw textFormError(`${what}: ${value} is not a safe integer; write it as "0x…" hex`);
        return { tag, type, value: BigInt(value) };
      }
      return { tag, type, value: parseBigInteger(asText(), what) };
    case ItemType.Boolean:
      if (typeof value !== 'boolean') throw textFormError(`${what}: Boolean must be true or false`);
      return { tag, type, value };
    case ItemType.TextString:
      if (typeof value !== 'string') throw textFormError(`${what}: Text String must be a string`);
      return { tag, type, value };
    case ItemType.ByteString:
      return { tag, type, value: parseHexBytes(asText(), what) };
    case ItemType.DateTime:
      return { tag, type, value: parseDateTime(asText(), what) };
    case ItemType.DateTimeExtended:
      return { tag, type, value: parseDateTimeExtended(asText(), what) };
  }
}
