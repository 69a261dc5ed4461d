import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Tag } from '../../src/kmip/tables.generated.ts';
import { bigInteger, boolean, byteString, dateTime, enumeration, integer, interval, longInteger, structure, textString } from '../../src/ttlv/build.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { fromHex, toHex } from '../../src/ttlv/hex.ts';
import type { TtlvItem } from '../../src/ttlv/item.ts';
import { FACTS_EXAMPLES, SPEC_EXAMPLES } from '../fixtures/facts-vectors.ts';
import { findItem } from '../helpers/tree.ts';

const T = 0x420020;

/** The tree each KMIP 1.2 §9.1.2 example denotes, in the order of SPEC_EXAMPLES. */
const SPEC_TREES: TtlvItem[] = [
  integer(T, 8),
  longInteger(T, 123456789000000000n),
  bigInteger(T, 1234567890000000000000000000n),
  enumeration(T, 255),
  boolean(T, true),
  textString(T, 'Hello World'),
  byteString(T, Uint8Array.of(1, 2, 3)),
  dateTime(T, 1205495800n),
  interval(T, 864000),
  structure(T, [enumeration(0x420004, 254), integer(0x420005, 255)]),
];

describe('KMIP 1.2 §9.1.2 examples (FACTS.md §1.3)', () => {
  SPEC_EXAMPLES.forEach(([meaning, hex], i) => {
    it(`${meaning}: decodes to its value and encodes back byte for byte`, () => {
      const tree = decodeTtlv(fromHex(hex));
      assert.deepEqual(tree, SPEC_TREES[i]);
      assert.equal(toHex(encodeTtlv(SPEC_TREES[i]!)), hex);
    });
  });
  it('Date-Time example is 2008-03-14T11:56:40Z', () => {
    assert.equal(dateTime(T, new Date('2008-03-14T11:56:40Z')).value, 1205495800n);
  });
  it('Big Integer vectors from PyKMIP: 0 and -1000 each take 8 bytes', () => {
    assert.equal(toHex(encodeTtlv(bigInteger(0x420000 + 1, 0n))), '4200010400000008' + '0000000000000000');
    assert.equal(toHex(encodeTtlv(bigInteger(0x420001, -1000n))), '4200010400000008' + 'fffffffffffffc18');
    assert.equal(decodeTtlv(fromHex('4200010400000008fffffffffffffc18')).value, -1000n);
    // A positive value whose top bit is set needs a 0x00 sign byte, hence a second 8-byte block.
    assert.equal(toHex(encodeTtlv(bigInteger(0x420001, 0x80n << 56n))), '4200010400000010' + '0000000000000000' + '8000000000000000');
  });
});

describe('FACTS.md §7 E1–E6: OASIS KMIP 1.1 test-case bytes', () => {
  const expectations: Record<string, { bytes: number; check: (tree: TtlvItem) => void }> = {
    E1: {
      bytes: 296,
      check: (tree) => {
        assert.equal(tree.tag, Tag.RequestMessage);
        assert.equal(findItem(tree, Tag.Operation)?.value, 1); // Create
        assert.equal(findItem(tree, Tag.ObjectType)?.value, 2); // Symmetric Key
        const attributes = (findItem(tree, Tag.TemplateAttribute) as { value: TtlvItem[] }).value;
        assert.deepEqual(attributes.map((a) => (a.value as TtlvItem[])[1]!.value), [3, 128, 12]); // AES, 128, Encrypt|Decrypt
      },
    },
    E2: {
      bytes: 200,
      check: (tree) => {
        assert.equal(findItem(tree, Tag.TimeStamp)?.value, BigInt(Date.parse('2012-04-27T08:12:21Z') / 1000));
        assert.equal(findItem(tree, Tag.UniqueIdentifier)?.value, 'fb4b5b9c-6188-4c63-8142-fe9c328129fc');
        assert.equal(findItem(tree, Tag.ResultStatus)?.value, 0);
      },
    },
    E3: {
      bytes: 304,
      check: (tree) => {
        assert.equal(toHex(findItem(tree, Tag.KeyMaterial)!.value as Uint8Array), '7367578051012a6d134a855e25c8cd5e4ca131455729d3c8');
        assert.equal(findItem(tree, Tag.CryptographicLength)?.value, 168);
      },
    },
    E4: {
      bytes: 216,
      check: (tree) => {
        assert.equal(findItem(tree, Tag.Operation)?.value, 8); // Locate
        assert.equal(findItem(tree, Tag.NameValue)?.value, 'Key1');
      },
    },
    E5: {
      bytes: 72,
      check: (tree) => {
        assert.equal(tree.tag, Tag.RequestPayload);
        assert.equal(findItem(tree, Tag.UsageLimitsCount)?.value, 500n);
      },
    },
    E6: {
      bytes: 88,
      check: (tree) => {
        assert.equal(findItem(tree, Tag.LeaseTime)?.value, 0);
        assert.equal(findItem(tree, Tag.LastChangeDate)?.value, BigInt(Date.parse('2012-04-27T08:14:28Z') / 1000));
      },
    },
  };
  for (const [name, hex] of Object.entries(FACTS_EXAMPLES)) {
    it(`${name}: ${expectations[name]!.bytes} bytes decode to the documented values and re-encode identically`, () => {
      const bytes = fromHex(hex);
      assert.equal(bytes.length, expectations[name]!.bytes);
      const tree = decodeTtlv(bytes);
      expectations[name]!.check(tree);
      assert.equal(toHex(encodeTtlv(tree)), hex);
    });
  }
});
