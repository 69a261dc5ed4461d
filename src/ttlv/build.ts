/** Constructors for item trees: `structure(Tag.RequestHeader, [integer(Tag.BatchCount, 1)])`. */
import { ItemType, type TtlvItem } from './item.ts';
import type {
  BigIntegerItem, BooleanItem, ByteStringItem, DateTimeExtendedItem, DateTimeItem, EnumerationItem,
  IntegerItem, IntervalItem, LongIntegerItem, StructureItem, TextStringItem,
} from './item.ts';

export const structure = (tag: number, value: TtlvItem[]): StructureItem => ({ tag, type: ItemType.Structure, value });
export const integer = (tag: number, value: number): IntegerItem => ({ tag, type: ItemType.Integer, value });
export const longInteger = (tag: number, value: bigint): LongIntegerItem => ({ tag, type: ItemType.LongInteger, value });
export const bigInteger = (tag: number, value: bigint): BigIntegerItem => ({ tag, type: ItemType.BigInteger, value });
export const enumeration = (tag: number, value: number): EnumerationItem => ({ tag, type: ItemType.Enumeration, value });
export const boolean = (tag: number, value: boolean): BooleanItem => ({ tag, type: ItemType.Boolean, value });
export const textString = (tag: number, value: string): TextStringItem => ({ tag, type: ItemType.TextString, value });
export const byteString = (tag: number, value: Uint8Array): ByteStringItem => ({ tag, type: ItemType.ByteString, value });
/** Date-Time from a JS Date (whole seconds; KMIP 1.2 §9.1.1.4) or from seconds. */
export const dateTime = (tag: number, value: Date | bigint): DateTimeItem => ({
  tag,
  type: ItemType.DateTime,
  value: typeof value === 'bigint' ? value : BigInt(Math.floor(value.getTime() / 1000)),
});
export const interval = (tag: number, seconds: number): IntervalItem => ({ tag, type: ItemType.Interval, value: seconds });
export const dateTimeExtended = (tag: number, micros: bigint): DateTimeExtendedItem => ({ tag, type: ItemType.DateTimeExtended, value: micros });
