/** Each strictness rule of the decoder, with the error code, byte offset and tag path it reports. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { TtlvError } from '../../src/ttlv/errors.ts';
import { fromHex } from '../../src/ttlv/hex.ts';
import { ItemType, type TtlvItem } from '../../src/ttlv/item.ts';

function rejects(hex: string, code: string, offset?: number, path?: number[]): void {
  assert.throws(
    () => decodeTtlv(fromHex(hex)),
    (error: unknown) => {
      assert.ok(error instanceof TtlvError, `expected a TtlvError, got ${String(error)}`);
      assert.equal(error.code, code, error.message);
      if (offset !== undefined) assert.equal(error.offset, offset, error.message);
      if (path !== undefined) assert.deepEqual(error.path, path, error.message);
      assert.match(error.message, new RegExp(`^${code}: `));
      return true;
    },
  );
}

/** A Structure 0x420001 around `inner` hex, with the right length. */
function wrap(inner: string): string {
  return '42000101' + (inner.length / 2).toString(16).padStart(8, '0') + inner;
}

describe('TTLV decoder: strict', () => {
  it('accepts tag prefixes 0x42 and 0x54 only', () => {
    assert.equal(decodeTtlv(fromHex('54000102000000040000000100000000')).tag, 0x540001);
    rejects('43000102000000040000000100000000', 'TTLV_BAD_TAG', 0, []);
    rejects(wrap('00000102000000040000000100000000'), 'TTLV_BAD_TAG', 8, [0x420001]);
  });
  it('rejects unknown type bytes, including 0x00 and 0x0C', () => {
    rejects('42000100000000040000000100000000', 'TTLV_BAD_TYPE', 0, [0x420001]);
    rejects('4200010c000000080000000000000001', 'TTLV_BAD_TYPE');
  });
  it('requires the fixed length of each fixed-size type', () => {
    for (const [type, bad] of [['02', 8], ['05', 8], ['0a', 2], ['03', 4], ['06', 4], ['09', 16], ['0b', 4]] as const) {
      rejects(`420001${type}${bad.toString(16).padStart(8, '0')}` + '00'.repeat(16), 'TTLV_BAD_LENGTH', 0, [0x420001]);
    }
  });
  it('requires Structure and Big Integer lengths to be multiples of 8, Big Integer non-empty', () => {
    rejects('42000101000000040000000000000000', 'TTLV_BAD_LENGTH');
    rejects('420001040000000c' + '00'.repeat(16), 'TTLV_BAD_LENGTH');
    rejects('4200010400000000', 'TTLV_BAD_LENGTH');
  });
  it('requires zero padding after Integer, Enumeration, Interval and strings', () => {
    rejects('42000102000000040000000100000001', 'TTLV_BAD_PADDING', 12);
    rejects('42000105000000040000000180000000', 'TTLV_BAD_PADDING', 12);
    rejects('4200010a000000040000000100010000', 'TTLV_BAD_PADDING', 12);
    rejects('42000107000000034142430000000100', 'TTLV_BAD_PADDING', 14);
    rejects('42000108000000010100000000000080', 'TTLV_BAD_PADDING', 15);
  });
  it('requires the minimal sign extension of a Big Integer (KMIP 1.2 §9.1.1.4)', () => {
    rejects('4200010400000010' + '0000000000000000' + '0000000000000001', 'TTLV_BAD_PADDING', 0);
    rejects('4200010400000010' + 'ffffffffffffffff' + 'ffffffffffffff18', 'TTLV_BAD_PADDING', 0);
    assert.equal(decodeTtlv(fromHex('4200010400000010' + '0000000000000000' + '8000000000000000')).value, 1n << 63n);
    assert.equal(decodeTtlv(fromHex('4200010400000010' + 'ffffffffffffffff' + '7fffffffffffffff')).value, -(1n << 63n) - 1n);
  });
  it('accepts Boolean 0 and 1 only', () => {
    assert.equal(decodeTtlv(fromHex('42000106000000080000000000000000')).value, false);
    rejects('42000106000000080000000000000002', 'TTLV_BAD_BOOLEAN');
    rejects('42000106000000080100000000000001', 'TTLV_BAD_BOOLEAN');
  });
  it('requires valid UTF-8 and keeps a byte-order mark as data', () => {
    rejects('4200010700000002c328000000000000', 'TTLV_BAD_UTF8');
    rejects('4200010700000003eda080' + '0000000000', 'TTLV_BAD_UTF8'); // an encoded surrogate
    rejects('4200010700000002c0af000000000000', 'TTLV_BAD_UTF8'); // overlong '/'
    assert.equal(decodeTtlv(fromHex('4200010700000003efbbbf' + '0000000000')).value, '\uFEFF');
    assert.equal(decodeTtlv(fromHex('4200010700000002c3a9000000000000')).value, 'é');
  });
  it('rejects trailing bytes, truncation and children overrunning their parent', () => {
    rejects('42000102000000040000000100000000' + '00', 'TTLV_TRAILING_BYTES', 16);
    rejects('420001020000000400000001', 'TTLV_TRUNCATED', 0);
    rejects('4200010200', 'TTLV_TRUNCATED', 0);
    rejects('', 'TTLV_TRUNCATED', 0);
    rejects('4200010700000010' + '41'.repeat(8), 'TTLV_TRUNCATED');
    // The parent claims 16 bytes; its child is a 24-byte Text String.
    rejects('4200010100000010' + '4200020700000010' + '41'.repeat(16), 'TTLV_CHILD_OVERRUNS', 8, [0x420001, 0x420002]);
    // The child claims a length far past the message (a length read from the wire is not trusted).
    rejects('4200010100000010' + '42000208ffffffff' + '00'.repeat(8), 'TTLV_VALUE_TOO_LONG', 8);
  });
  it('reports the tag path of a nested fault', () => {
    const inner = wrap('42000302000000040000000100000000' + '4200040600000008' + '0000000000000003');
    const hex = '42000501' + (inner.length / 2).toString(16).padStart(8, '0') + inner;
    rejects(hex, 'TTLV_BAD_BOOLEAN', 32, [0x420005, 0x420001, 0x420004]);
  });
  it('copies Byte Strings: wiping the input leaves the decoded value intact', () => {
    const bytes = fromHex('42000108000000040102030400000000');
    const item = decodeTtlv(bytes);
    bytes.fill(0);
    assert.deepEqual(item.value, Uint8Array.of(1, 2, 3, 4));
  });
  it('decodes from a Buffer as from a Uint8Array', () => {
    const item = decodeTtlv(Buffer.from('42000108000000040102030400000000', 'hex'));
    assert.deepEqual([...(item.value as Uint8Array)], [1, 2, 3, 4]);
  });
});

describe('TTLV encoder: refuses what it cannot encode faithfully', () => {
  const cases: [string, TtlvItem, string][] = [
    ['a tag outside 0x42/0x54', { tag: 0x430001, type: ItemType.Integer, value: 1 }, 'TTLV_BAD_TAG'],
    ['Integer over 32 bits', { tag: 0x420001, type: ItemType.Integer, value: 2 ** 31 }, 'TTLV_INVALID_VALUE'],
    ['Integer not whole', { tag: 0x420001, type: ItemType.Integer, value: 1.5 }, 'TTLV_INVALID_VALUE'],
    ['negative Enumeration', { tag: 0x420001, type: ItemType.Enumeration, value: -1 }, 'TTLV_INVALID_VALUE'],
    ['Interval over 32 bits', { tag: 0x420001, type: ItemType.Interval, value: 2 ** 32 }, 'TTLV_INVALID_VALUE'],
    ['Long Integer over 64 bits', { tag: 0x420001, type: ItemType.LongInteger, value: 1n << 63n }, 'TTLV_INVALID_VALUE'],
    ['Date-Time not a bigint', { tag: 0x420001, type: ItemType.DateTime, value: 5 as unknown as bigint }, 'TTLV_INVALID_VALUE'],
    ['a lone surrogate', { tag: 0x420001, type: ItemType.TextString, value: 'a\uD800b' }, 'TTLV_BAD_UTF8'],
    ['an unknown type', { tag: 0x420001, type: 0x0c, value: 0 } as unknown as TtlvItem, 'TTLV_BAD_TYPE'],
  ];
  for (const [what, item, code] of cases) {
    it(what, () => assert.throws(() => encodeTtlv(item), (e: unknown) => e instanceof TtlvError && e.code === code));
  }
  it('names the path of the bad item', () => {
    const tree: TtlvItem = { tag: 0x420001, type: ItemType.Structure, value: [{ tag: 0x420002, type: ItemType.Integer, value: 2 ** 40 }] };
    assert.throws(() => encodeTtlv(tree), (e: unknown) => e instanceof TtlvError && e.path.join() === [0x420001, 0x420002].join());
  });
  it('encodes non-ASCII text as UTF-8', () => {
    const bytes = encodeTtlv({ tag: 0x420001, type: ItemType.TextString, value: 'clé 🔑' });
    // c, l, é (2 bytes), space, 🔑 (4 bytes): 9 bytes, then 7 of padding.
    assert.equal(Buffer.from(bytes).toString('hex'), '4200010700000009' + Buffer.from('clé 🔑').toString('hex') + '00'.repeat(7));
  });
});
