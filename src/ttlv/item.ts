/**
 * The TTLV item tree (KMIP 1.2 §9.1; 2.0 adds Date Time Extended). The wire type byte decides the
 * value's JavaScript type, never a tag→type table: several tags change type with context
 * (Attribute Value, Key Value, Key Material — FACTS.md §1.5).
 */
export const ItemType = {
  Structure: 0x01,
  Integer: 0x02,
  LongInteger: 0x03,
  BigInteger: 0x04,
  Enumeration: 0x05,
  Boolean: 0x06,
  TextString: 0x07,
  ByteString: 0x08,
  DateTime: 0x09,
  Interval: 0x0a,
  DateTimeExtended: 0x0b,
} as const;
export type ItemType = (typeof ItemType)[keyof typeof ItemType];

export type ItemTypeName =
  | 'Structure' | 'Integer' | 'LongInteger' | 'BigInteger' | 'Enumeration' | 'Boolean'
  | 'TextString' | 'ByteString' | 'DateTime' | 'Interval' | 'DateTimeExtended';

/** KMIP XML/JSON spelling of each type (KMIP Profiles §5.4), indexed by type byte. */
export const ITEM_TYPE_NAMES: Readonly<Record<ItemType, ItemTypeName>> = {
  [ItemType.Structure]: 'Structure',
  [ItemType.Integer]: 'Integer',
  [ItemType.LongInteger]: 'LongInteger',
  [ItemType.BigInteger]: 'BigInteger',
  [ItemType.Enumeration]: 'Enumeration',
  [ItemType.Boolean]: 'Boolean',
  [ItemType.TextString]: 'TextString',
  [ItemType.ByteString]: 'ByteString',
  [ItemType.DateTime]: 'DateTime',
  [ItemType.Interval]: 'Interval',
  [ItemType.DateTimeExtended]: 'DateTimeExtended',
};

export function itemTypeFromName(name: string): ItemType | undefined {
  for (const [type, typeName] of Object.entries(ITEM_TYPE_NAMES)) {
    if (typeName === name) return Number(type) as ItemType;
  }
  return undefined;
}

export interface StructureItem { tag: number; type: typeof ItemType.Structure; value: TtlvItem[] }
/** 32-bit signed. */
export interface IntegerItem { tag: number; type: typeof ItemType.Integer; value: number }
/** 64-bit signed. */
export interface LongIntegerItem { tag: number; type: typeof ItemType.LongInteger; value: bigint }
/** Arbitrary precision, two's complement on the wire. */
export interface BigIntegerItem { tag: number; type: typeof ItemType.BigInteger; value: bigint }
/** 32-bit unsigned. */
export interface EnumerationItem { tag: number; type: typeof ItemType.Enumeration; value: number }
export interface BooleanItem { tag: number; type: typeof ItemType.Boolean; value: boolean }
export interface TextStringItem { tag: number; type: typeof ItemType.TextString; value: string }
export interface ByteStringItem { tag: number; type: typeof ItemType.ByteString; value: Uint8Array }
/** Seconds since the POSIX epoch, 64-bit signed. */
export interface DateTimeItem { tag: number; type: typeof ItemType.DateTime; value: bigint }
/** Seconds, 32-bit unsigned. */
export interface IntervalItem { tag: number; type: typeof ItemType.Interval; value: number }
/** Microseconds since the POSIX epoch, 64-bit signed (KMIP 2.0 §10.1). */
export interface DateTimeExtendedItem { tag: number; type: typeof ItemType.DateTimeExtended; value: bigint }

export type TtlvItem =
  | StructureItem
  | IntegerItem
  | LongIntegerItem
  | BigIntegerItem
  | EnumerationItem
  | BooleanItem
  | TextStringItem
  | ByteStringItem
  | DateTimeItem
  | IntervalItem
  | DateTimeExtendedItem;

/** Tags are 3 bytes; the first is 0x42 (KMIP) or 0x54 (extensions) — KMIP 1.2 §9.1.3.1. */
export function isValidTag(tag: number): boolean {
  return Number.isInteger(tag) && ((tag >= 0x420000 && tag <= 0x42ffff) || (tag >= 0x540000 && tag <= 0x54ffff));
}

export function formatTag(tag: number): string {
  return '0x' + tag.toString(16).padStart(6, '0');
}

/**
 * `length` rounded up to a multiple of 8 (TTLV padding). Arithmetic rather than `(n + 7) & ~7`,
 * which wraps for lengths near 2^32 — exactly what a hostile header claims.
 */
export function padTo8(length: number): number {
  return length + ((8 - (length & 7)) & 7);
}
