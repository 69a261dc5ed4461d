/**
 * `kmip-edge ttlv decode|encode` (CLI.md, Codec): TTLV bytes ⇄ KMIP XML / JSON / a readable tree.
 */
import { parseArgs } from 'node:util';
import { formatKmipJson, parseKmipJson } from '../kmip/json.ts';
import { valueTagInContext, tagName } from '../kmip/vocabulary.ts';
import { DEFAULT_TEXT_FORM_LIMITS, valueText } from '../kmip/text-values.ts';
import { formatKmipXml, parseKmipXml } from '../kmip/xml.ts';
import { decodeTtlv } from '../ttlv/decode.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { fromHex, toHex } from '../ttlv/hex.ts';
import { formatTag, ITEM_TYPE_NAMES, ItemType, type TtlvItem } from '../ttlv/item.ts';
import { DEFAULT_TTLV_LIMITS } from '../ttlv/limits.ts';
import { UsageError } from './errors.ts';
import { readInputLimited } from './input.ts';

export const TTLV_USAGE = `usage:
  kmip-edge ttlv decode (--hex HEX | --file F | -) [--format xml|json|text]
  kmip-edge ttlv encode --format xml|json (--file F | -)
A --file or standard input for decode holds the message as hex text (white space ignored) or as raw bytes.`;

export function runTtlvCommand(args: string[], out: (text: string) => void): void {
  const [action, ...rest] = args;
  if (action === 'decode') return decode(rest, out);
  if (action === 'encode') return encode(rest, out);
  throw new UsageError(`ttlv needs decode or encode\n${TTLV_USAGE}`);
}

function options(args: string[]) {
  const { values, positionals } = parseArgs({
    args,
    options: { hex: { type: 'string' }, file: { type: 'string' }, format: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  });
  const sources = [values.hex !== undefined, values.file !== undefined, positionals.includes('-')].filter(Boolean).length;
  const unexpected = positionals.filter((p) => p !== '-');
  if (unexpected.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(unexpected[0])}\n${TTLV_USAGE}`);
  if (sources !== 1) throw new UsageError(`give exactly one input: --hex, --file or -\n${TTLV_USAGE}`);
  return values;
}

/** Raw TTLV starts with a tag byte and a type byte below 0x0C, so it is never all hex text. */
function bytesFromInput(raw: Buffer): Uint8Array {
  const text = raw.toString('latin1');
  return /^[\s|0-9a-fA-F]*$/.test(text) ? fromHex(text) : new Uint8Array(raw);
}

function decode(args: string[], out: (text: string) => void): void {
  const values = options(args);
  const format = values.format ?? 'xml';
  if (!['xml', 'json', 'text'].includes(format)) throw new UsageError(`--format must be xml, json or text, not ${JSON.stringify(format)}`);
  const maxHexBytes = DEFAULT_TTLV_LIMITS.maxMessageBytes * 3;
  const bytes = values.hex !== undefined ? fromHex(values.hex, DEFAULT_TTLV_LIMITS.maxMessageBytes) : bytesFromInput(readInputLimited(values.file ?? '-', maxHexBytes));
  const item = decodeTtlv(bytes);
  out(format === 'xml' ? formatKmipXml(item) : format === 'json' ? formatKmipJson(item) : formatTree(item));
}

function encode(args: string[], out: (text: string) => void): void {
  const values = options(args);
  if (values.hex !== undefined) throw new UsageError('encode reads --file or -, not --hex');
  if (values.format !== 'xml' && values.format !== 'json') throw new UsageError(`encode needs --format xml or json\n${TTLV_USAGE}`);
  const text = readInputLimited(values.file ?? '-', DEFAULT_TEXT_FORM_LIMITS.maxTextBytes).toString('utf8');
  const item = values.format === 'xml' ? parseKmipXml(text) : parseKmipJson(text);
  out(toHex(encodeTtlv(item)) + '\n');
}

/** An indented, human-readable tree: `Name (Type) = value`. */
export function formatTree(item: TtlvItem): string {
  const lines: string[] = [];
  const walk = (node: TtlvItem, previous: TtlvItem | undefined, indent: string): void => {
    const name = tagName(node.tag) ?? formatTag(node.tag);
    if (node.type === ItemType.Structure) {
      lines.push(`${indent}${name}`);
      let sibling: TtlvItem | undefined;
      for (const child of node.value) {
        walk(child, sibling, indent + '  ');
        sibling = child;
      }
      return;
    }
    const text = valueText(node, valueTagInContext(node.tag, previous), ' | ');
    lines.push(`${indent}${name} (${ITEM_TYPE_NAMES[node.type]}) = ${node.type === ItemType.TextString ? JSON.stringify(text) : text}`);
  };
  walk(item, undefined, '');
  return lines.join('\n') + '\n';
}
