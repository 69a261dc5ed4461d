/**
 * Value spellings shared by the KMIP XML and JSON encodings (KMIP Profiles 1.x §5.4–5.5):
 * dates, Big Integers, enumerations and bit masks by name or in hex.
 */
import { isoTime } from '../iso-time.ts';
import { KmipEdgeError } from '../errors.ts';
import { toHex } from '../ttlv/hex.ts';
import { ItemType, type TtlvItem } from '../ttlv/item.ts';
import { enumerationFor, enumerationText, maskFor, maskText, type ValueNames } from './vocabulary.ts';

/** Code of every text-form error: the message says what and where. */
export const TEXT_FORM_ERROR = 'KMIP_TEXT_INVALID';

export function textFormError(detail: string): KmipEdgeError {
  return new KmipEdgeError(TEXT_FORM_ERROR, detail);
}

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:\d{2})$/;

/** Date-Times outside years 0000–9999 have no ISO spelling here; they are written as 0x hex. */
const MAX_ISO_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
const YEAR_ZERO_MS = new Date('0000-01-01T00:00:00Z').getTime();

/** Seconds since the epoch → "2012-04-27T08:12:24+00:00", the corpus spelling. */
export function formatDateTime(seconds: bigint): string {
  return formatIso(seconds * 1_000_000n) ?? hex64(seconds);
}

/** Microseconds since the epoch → ISO 8601 with six fraction digits (KMIP 2.0 Date Time Extended). */
export function formatDateTimeExtended(micros: bigint): string {
  const base = formatIso(micros);
  if (base === undefined) return hex64(micros);
  const fraction = (((micros % 1_000_000n) + 1_000_000n) % 1_000_000n).toString().padStart(6, '0');
  return base.replace('+00:00', `.${fraction}+00:00`);
}

function hex64(value: bigint): string {
  return '0x' + BigInt.asUintN(64, value).toString(16).padStart(16, '0');
}

function formatIso(micros: bigint): string | undefined {
  const floorMs = micros / 1000n - (micros % 1000n < 0n ? 1n : 0n);
  if (floorMs < BigInt(YEAR_ZERO_MS) || floorMs > BigInt(MAX_ISO_MS)) return undefined;
  return `${isoTime(Number(floorMs)).slice(0, 19)}+00:00`;
}

/** Parses ISO 8601 with Z or an offset; returns microseconds since the epoch. */
function parseIsoMicros(text: string, what: string): bigint {
  const m = ISO_DATE.exec(text);
  if (!m) throw textFormError(`${what}: ${JSON.stringify(text)} is not an ISO 8601 date-time`);
  const [, y, mo, d, h, mi, s, fraction = '', zone] = m;
  const date = new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}Z`);
  if (Number.isNaN(date.getTime()) || date.getUTCDate() !== Number(d)) {
    throw textFormError(`${what}: ${JSON.stringify(text)} is not a valid date-time`);
  }
  let offsetMinutes = 0;
  if (zone !== 'Z') {
    const sign = zone!.startsWith('-') ? -1 : 1;
    offsetMinutes = sign * (Number(zone!.slice(1, 3)) * 60 + Number(zone!.slice(4, 6)));
  }
  return (BigInt(date.getTime()) - BigInt(offsetMinutes) * 60_000n) * 1000n + BigInt(fraction.padEnd(6, '0'));
}

const HEX64 = /^0x[0-9a-fA-F]{1,16}$/;

export function parseDateTime(text: string, what: string): bigint {
  if (HEX64.test(text)) return BigInt.asIntN(64, BigInt(text));
  const micros = parseIsoMicros(text, what);
  if (micros % 1_000_000n !== 0n) throw textFormError(`${what}: Date-Time has whole seconds only, got ${JSON.stringify(text)}`);
  return micros / 1_000_000n;
}

export function parseDateTimeExtended(text: string, what: string): bigint {
  return HEX64.test(text) ? BigInt.asIntN(64, BigInt(text)) : parseIsoMicros(text, what);
}

/** Big Integer as the hex of its minimal two's complement encoding padded to a multiple of 8 bytes. */
export function formatBigInteger(value: bigint): string {
  const magnitude = value < 0n ? -value - 1n : value;
  const bits = magnitude === 0n ? 1 : magnitude.toString(2).length + 1;
  const bytes = Math.max(8, Math.ceil(bits / 64) * 8);
  return BigInt.asUintN(bytes * 8, value).toString(16).padStart(bytes * 2, '0');
}

/** Hex digits (optionally 0x-prefixed) read as a two's complement number of that many bytes. */
export function parseBigInteger(text: string, what: string): bigint {
  const digits = text.startsWith('0x') ? text.slice(2) : text;
  if (!/^[0-9a-fA-F]+$/.test(digits) || digits.length % 2 !== 0) {
    throw textFormError(`${what}: Big Integer ${JSON.stringify(text.slice(0, 40))} is not an even number of hex digits`);
  }
  return BigInt.asIntN(digits.length * 4, BigInt('0x' + digits));
}

export function parseHexBytes(text: string, what: string): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(text)) throw textFormError(`${what}: Byte String ${JSON.stringify(text.slice(0, 40))} is not hex`);
  return new Uint8Array(Buffer.from(text, 'hex'));
}

export function parseDecimal(text: string, min: number, max: number, what: string): number {
  // Hex is the value's 32 bits (KMIP XML/JSON profiles: "0x" and 8 hex digits): for a signed
  // Integer that is two's complement, as masks with the top bit set are written (valueText).
  const hex = /^0x[0-9a-fA-F]{1,8}$/.test(text) ? Number.parseInt(text.slice(2), 16) : undefined;
  const value = hex !== undefined ? (min < 0 ? hex | 0 : hex) : /^-?\d{1,10}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw textFormError(`${what}: ${JSON.stringify(text)} is not an integer in [${min}, ${max}]`);
  }
  return value;
}

export function parseLong(text: string, what: string): bigint {
  if (!/^(?:-?\d{1,19}|0x[0-9a-fA-F]{1,16})$/.test(text)) throw textFormError(`${what}: ${JSON.stringify(text)} is not a Long Integer`);
  const value = text.startsWith('0x') ? BigInt.asIntN(64, BigInt(text)) : BigInt(text);
  if (value < -(1n << 63n) || value >= 1n << 63n) throw textFormError(`${what}: ${text} is outside the 64-bit range`);
  return value;
}

/** Enumeration by name (in the table of `valueTag`) or as hex. */
export function parseEnumeration(text: string, valueTag: number, what: string): number {
  const named = enumerationFor(valueTag)?.byName.get(text);
  if (named !== undefined) return named;
  if (/^0x[0-9a-fA-F]{1,8}$/.test(text)) return Number.parseInt(text.slice(2), 16);
  throw textFormError(`${what}: ${JSON.stringify(text)} is not a known enumeration value or 0x hex`);
}

/** Bit mask as names and/or hex, split by white space or `|`, OR'ed; returned as a signed Integer. */
export function parseMask(text: string, mask: ValueNames, what: string): number {
  const parts = text.split(/[\s|]+/).filter((p) => p.length > 0);
  if (parts.length === 0) throw textFormError(`${what}: empty bit mask`);
  let value = 0;
  for (const part of parts) {
    const bits = mask.byName.get(part) ?? (/^0x[0-9a-fA-F]{1,8}$/.test(part) ? Number.parseInt(part.slice(2), 16) : undefined);
    if (bits === undefined) throw textFormError(`${what}: ${JSON.stringify(part)} is not a bit of this mask`);
    value |= bits;
  }
  return value | 0;
}

export interface TextFormLimits {
  /** Size of the whole text document. */
  maxTextBytes: number;
  /** Nesting of items (a `<KMIP>` wrapper does not count). */
  maxDepth: number;
  /** Items in the whole document. */
  maxItems: number;
}

export const DEFAULT_TEXT_FORM_LIMITS: Readonly<TextFormLimits> = Object.freeze({
  maxTextBytes: 16 * 1024 * 1024,
  maxDepth: 32,
  maxItems: 262_144,
});

/** The text of a primitive value; `maskSeparator` is " " in XML and "|" in JSON. */
export function valueText(item: Exclude<TtlvItem, { type: typeof ItemType.Structure }>, valueTag: number, maskSeparator: string): string {
  switch (item.type) {
    case ItemType.Integer: {
      const mask = maskFor(valueTag);
      return mask ? maskText(mask, item.value, maskSeparator) : String(item.value);
    }
    case ItemType.Enumeration:
      return enumerationText(valueTag, item.value);
    case ItemType.LongInteger:
    case ItemType.Interval:
      return String(item.value);
    case ItemType.BigInteger:
      return formatBigInteger(item.value);
    case ItemType.Boolean:
      return item.value ? 'true' : 'false';
    case ItemType.TextString:
      return item.value;
    case ItemType.ByteString:
      return toHex(item.value);
    case ItemType.DateTime:
      return formatDateTime(item.value);
    case ItemType.DateTimeExtended:
      return formatDateTimeExtended(item.value);
  }
}

