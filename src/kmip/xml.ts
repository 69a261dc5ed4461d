/**
 * KMIP XML (KMIP Profiles 1.x §5.4), in exactly the style of the OASIS test cases in
 * `shared/kmip/testcases`: one element per item named by its normalized tag name, `type` and
 * `value` attributes, enumerations and mask bits by name, Date-Time in ISO 8601 UTC, unknown tags
 * as `<TTLV tag="0x54xxxx" …>`. Parsed with saxes (strict, streaming), so the depth and item limits
 * are enforced while reading, before the tree is built.
 */
import { SaxesParser, type SaxesTagPlain } from 'saxes';
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

/** The wrapper element of the OASIS test-case files, holding a sequence of messages. */
const DOCUMENT_ELEMENT = 'KMIP';
const UNKNOWN_TAG_ELEMENT = 'TTLV';

// ---------------------------------------------------------------------------------------------
// Printing

/** One item tree as KMIP XML, two-space indented, ending in a newline. */
export function formatKmipXml(item: TtlvItem): string {
  const lines: string[] = [];
  printItem(item, undefined, '', lines);
  return lines.join('\n') + '\n';
}

function printItem(item: TtlvItem, previous: TtlvItem | undefined, indent: string, lines: string[]): void {
  const name = tagName(item.tag);
  const open = name ?? `${UNKNOWN_TAG_ELEMENT} tag="${formatTag(item.tag)}"`;
  const close = name ?? UNKNOWN_TAG_ELEMENT;
  if (item.type === ItemType.Structure) {
    if (item.value.length === 0) {
      lines.push(`${indent}<${open}/>`);
      return;
    }
    lines.push(`${indent}<${open}>`);
    let sibling: TtlvItem | undefined;
    for (const child of item.value) {
      printItem(child, sibling, indent + '  ', lines);
      sibling = child;
    }
    lines.push(`${indent}</${close}>`);
    return;
  }
  const value = valueText(item, valueTagInContext(item.tag, previous), ' ');
  lines.push(`${indent}<${open} type="${ITEM_TYPE_NAMES[item.type]}" value="${escapeAttribute(value)}"/>`);
}

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', '\t': '&#9;', '\n': '&#10;', '\r': '&#13;' };
/** Characters XML 1.0 cannot carry at all, escaped or not (XML 1.0 §2.2). */
const NOT_XML_CHAR = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;

function escapeAttribute(text: string): string {
  if (NOT_XML_CHAR.test(text)) {
    throw textFormError(`a Text String holds a control character XML 1.0 cannot represent; use the JSON form`);
  }
  return text.replace(/[&<>"\t\n\r]/g, (c) => ESCAPES[c]!);
}

// ---------------------------------------------------------------------------------------------
// Parsing

/** Parses text holding one message (or one `<KMIP>` wrapper with exactly one). */
export function parseKmipXml(text: string, limits?: Partial<TextFormLimits>): TtlvItem {
  const items = parseKmipXmlDocument(text, limits);
  if (items.length !== 1) throw textFormError(`expected one KMIP item, the document holds ${items.length}`);
  return items[0]!;
}

/**
 * Parses a document: either one item, or a `<KMIP>` element holding a sequence of items with
 * free text between them (the OASIS test-case files, whose `# TIME n` lines are such text).
 */
export function parseKmipXmlDocument(text: string, limits?: Partial<TextFormLimits>): TtlvItem[] {
  const resolved = { ...DEFAULT_TEXT_FORM_LIMITS, ...limits };
  const size = Buffer.byteLength(text, 'utf8');
  if (size > resolved.maxTextBytes) throw textFormError(`XML document of ${size} bytes exceeds maxTextBytes ${resolved.maxTextBytes}`);
  const builder = new XmlTreeBuilder(resolved);
  const parser = new SaxesParser<{ xmlns: false; position: true }>({ xmlns: false, position: true });
  parser.on('doctype', () => builder.fail('DOCTYPE is not allowed'));
  parser.on('opentag', (node) => builder.open(node));
  parser.on('closetag', () => builder.close());
  parser.on('text', (t) => builder.text(t));
  parser.on('cdata', (t) => builder.text(t));
  try {
    parser.write(text).close();
  } catch (error) {
    const where = `line ${parser.line}, column ${parser.column}`;
    if (error instanceof Error && 'code' in error) {
      error.message = `${error.message} (XML ${where})`;
      throw error;
    }
    throw textFormError(`XML is not well-formed: ${(error as Error).message.split('\n')[0]} (${where})`);
  }
  return builder.result();
}

interface Frame {
  tag: number;
  /** For error messages: the element name as written. */
  element: string;
  type: ItemType;
  value: string | undefined;
  children: TtlvItem[];
}

class XmlTreeBuilder {
  private readonly stack: Frame[] = [];
  private readonly items: TtlvItem[] = [];
  private wrapped = false;
  private wrapperClosed = false;
  private count = 0;

  constructor(private readonly limits: TextFormLimits) {}

  fail(detail: string): never {
    const path = this.stack.map((f) => f.element).join('/');
    throw textFormError(path ? `${detail} (in ${path})` : detail);
  }

  open(node: SaxesTagPlain): void {
    if (this.stack.length === 0 && !this.wrapped && node.name === DOCUMENT_ELEMENT && this.items.length === 0) {
      if (Object.keys(node.attributes).length > 0) this.fail(`<${DOCUMENT_ELEMENT}> takes no attributes`);
      this.wrapped = true;
      return;
    }
    if (this.wrapperClosed || (this.stack.length === 0 && !this.wrapped && this.items.length > 0)) {
      this.fail('more than one top-level item; wrap a sequence in <KMIP>');
    }
    if (this.stack.length >= this.limits.maxDepth) this.fail(`items nested deeper than maxDepth ${this.limits.maxDepth}`);
    if (++this.count > this.limits.maxItems) this.fail(`more than maxItems ${this.limits.maxItems} items`);
    const { type: typeName, value, tag: tagText, ...extra } = node.attributes;
    const extraNames = Object.keys(extra);
    if (extraNames.length > 0) this.fail(`<${node.name}> has unknown attribute ${extraNames[0]}`);
    let tag: number | undefined;
    if (node.name === UNKNOWN_TAG_ELEMENT) {
      if (tagText === undefined || !/^0x[0-9a-fA-F]{6}$/.test(tagText)) this.fail('<TTLV> needs tag="0xHHHHHH"');
      tag = Number.parseInt(tagText.slice(2), 16);
    } else {
      if (tagText !== undefined) this.fail(`only <TTLV> takes a tag attribute`);
      tag = tagFromName(node.name);
      if (tag === undefined) this.fail(`unknown tag name <${node.name}>`);
    }
    const type = typeName === undefined ? ItemType.Structure : itemTypeFromName(typeName);
    if (type === undefined) this.fail(`<${node.name}> has unknown type ${JSON.stringify(typeName)}`);
    if (type === ItemType.Structure && value !== undefined) this.fail(`<${node.name}> is a Structure and takes no value`);
    if (type !== ItemType.Structure && value === undefined) this.fail(`<${node.name}> of type ${typeName} needs a value`);
    this.stack.push({ tag, element: node.name, type, value, children: [] });
  }

  text(text: string): void {
    // Free text is allowed only between the items of a <KMIP> document (the "# TIME n" lines).
    if (this.stack.length > 0 && text.trim() !== '') this.fail(`unexpected text ${JSON.stringify(text.trim().slice(0, 40))}`);
  }

  close(): void {
    const frame = this.stack.at(-1);
    if (frame === undefined) {
      this.wrapperClosed = true;
      return;
    }
    const parent = this.stack.at(-2);
    const item = this.build(frame, parent?.children.at(-1));
    this.stack.pop();
    (parent ? parent.children : this.items).push(item);
  }

  result(): TtlvItem[] {
    if (this.items.length === 0) this.fail('the document holds no KMIP item');
    return this.items;
  }

  private build(frame: Frame, previous: TtlvItem | undefined): TtlvItem {
    const { tag, type } = frame;
    if (type === ItemType.Structure) return { tag, type, value: frame.children };
    if (frame.children.length > 0) this.fail(`<${frame.element}> of type ${ITEM_TYPE_NAMES[type]} cannot have children`);
    const text = frame.value!;
    const what = `<${frame.element}>`;
    const valueTag = valueTagInContext(tag, previous);
    switch (type) {
      case ItemType.Integer: {
        const mask = maskFor(valueTag);
        const isNumber = /^-?\d+$|^0x[0-9a-fA-F]+$/.test(text);
        return { tag, type, value: mask && !isNumber ? parseMask(text, mask, what) : parseDecimal(text, -0x80000000, 0x7fffffff, what) };
      }
      case ItemType.Enumeration:
        return { tag, type, value: parseEnumeration(text, valueTag, what) };
      case ItemType.Interval:
        return { tag, type, value: parseDecimal(text, 0, 0xffffffff, what) };
      case ItemType.LongInteger:
        return { tag, type, value: parseLong(text, what) };
      case ItemType.BigInteger:
        return { tag, type, value: parseBigInteger(text, what) };
      case ItemType.Boolean:
        if (text !== 'true' && text !== 'false') this.fail(`${what}: Boolean must be true or false, got ${JSON.stringify(text)}`);
        return { tag, type, value: text === 'true' };
      case ItemType.TextString:
        return { tag, type, value: text };
      case ItemType.ByteString:
        return { tag, type, value: parseHexBytes(text, what) };
      case ItemType.DateTime:
        return { tag, type, value: parseDateTime(text, what) };
      case ItemType.DateTimeExtended:
        return { tag, type, value: parseDateTimeExtended(text, what) };
    }
  }
}
