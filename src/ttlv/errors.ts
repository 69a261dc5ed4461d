import { KmipEdgeError } from '../errors.ts';
import { formatTag } from './item.ts';

/**
 * Codes of TtlvError. Stable: callers and tests match on them.
 * - TTLV_TRUNCATED        fewer bytes than a header or a length claims
 * - TTLV_TRAILING_BYTES   bytes after the one top-level item
 * - TTLV_CHILD_OVERRUNS   a child item claims to end past its parent Structure
 * - TTLV_BAD_TAG          tag not in 0x42xxxx or 0x54xxxx
 * - TTLV_BAD_TYPE         unknown type byte
 * - TTLV_BAD_LENGTH       wrong fixed length for the type, or a Structure/Big Integer length that
 *                         is not a multiple of 8
 * - TTLV_BAD_PADDING      non-zero padding byte, or redundant Big Integer sign extension
 * - TTLV_BAD_BOOLEAN      Boolean value other than 0 or 1
 * - TTLV_BAD_UTF8         Text String that is not valid UTF-8 (decode) or not well-formed (encode)
 * - TTLV_TOO_LARGE        message over maxMessageBytes
 * - TTLV_TOO_DEEP         Structures nested deeper than maxDepth
 * - TTLV_TOO_MANY_ITEMS   more than maxItems items
 * - TTLV_VALUE_TOO_LONG   string over maxValueBytes or Big Integer over maxBigIntegerBytes
 * - TTLV_INVALID_VALUE    encode: a value outside its type's range, or of the wrong JS type
 * - TTLV_NOT_A_MESSAGE    framer: the stream does not start a KMIP message (0x42xxxx Structure)
 */
export type TtlvErrorCode =
  | 'TTLV_TRUNCATED'
  | 'TTLV_TRAILING_BYTES'
  | 'TTLV_CHILD_OVERRUNS'
  | 'TTLV_BAD_TAG'
  | 'TTLV_BAD_TYPE'
  | 'TTLV_BAD_LENGTH'
  | 'TTLV_BAD_PADDING'
  | 'TTLV_BAD_BOOLEAN'
  | 'TTLV_BAD_UTF8'
  | 'TTLV_TOO_LARGE'
  | 'TTLV_TOO_DEEP'
  | 'TTLV_TOO_MANY_ITEMS'
  | 'TTLV_VALUE_TOO_LONG'
  | 'TTLV_INVALID_VALUE'
  | 'TTLV_NOT_A_MESSAGE';

/** A codec error: where (byte offset, path of tags from the top) and what. */
export class TtlvError extends KmipEdgeError {
  declare readonly code: TtlvErrorCode;
  /** Byte offset of the item at fault (decode), or -1 when not applicable (encode). */
  readonly offset: number;
  /** Tags from the top-level item down to the item at fault. */
  readonly path: readonly number[];

  constructor(code: TtlvErrorCode, detail: string, offset: number, path: readonly number[]) {
    const where = [offset >= 0 ? `at byte ${offset}` : '', path.length > 0 ? `in ${path.map(formatTag).join('/')}` : '']
      .filter(Boolean)
      .join(' ');
    super(code, `${code}: ${detail}${where ? ` (${where})` : ''}`);
    this.offset = offset;
    this.path = path;
  }
}
