import { KmipEdgeError } from '../errors.ts';

/** Lower-case hex, the project's spelling of bytes (CLI.md). */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex');
}

/**
 * Parses hex text, ignoring white space and `|` separators (the spaced vector style of
 * kmip-go's tests: `42 00 20 | 02 | …`). Throws HEX_INVALID on anything else.
 */
export function fromHex(text: string, maxBytes = Number.MAX_SAFE_INTEGER): Uint8Array {
  const compact = text.replace(/[\s|]+/g, '');
  if (compact.length % 2 !== 0) throw new KmipEdgeError('HEX_INVALID', `hex has an odd number of digits (${compact.length})`);
  if (compact.length / 2 > maxBytes) throw new KmipEdgeError('HEX_INVALID', `hex of ${compact.length / 2} bytes exceeds the limit of ${maxBytes}`);
  const bad = /[^0-9a-fA-F]/.exec(compact);
  if (bad) throw new KmipEdgeError('HEX_INVALID', `not a hex digit: ${JSON.stringify(bad[0])} at position ${bad.index}`);
  return new Uint8Array(Buffer.from(compact, 'hex'));
}
