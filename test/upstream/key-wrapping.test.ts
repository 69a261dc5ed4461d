/** Local halves of key wrapping: AES key unwrap (RFC 3394) and HMAC-SHA256 MAC/sign verification. */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { aeskw } from '@noble/ciphers/aes.js';
import { keyMaterialOf } from '../../src/kmip/payloads.ts';
import { EncodingOption, Tag, WrappingMethod } from '../../src/kmip/tables.generated.ts';
import { byteString, enumeration, structure, textString } from '../../src/ttlv/build.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { fromHex, toHex } from '../../src/ttlv/hex.ts';
import { keyWrappingSpecification, unwrapKeyBlock, verifyMacKeyBlock, wrappedAttribute } from '../../src/upstream/key-wrapping.ts';

const kek = fromHex('000102030405060708090a0b0c0d0e0f');
const key = fromHex('00112233445566778899aabbccddeeff');

describe('AES key wrap', () => {
  it('RFC 3394 §4.1 vector: 128-bit key data with a 128-bit KEK', () => {
    assert.equal(toHex(aeskw(kek).encrypt(key)), '1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5');
  });

  it('unwraps a No Encoding Key Value to the raw key, and a TTLV one to its Key Material', () => {
    const raw = structure(Tag.KeyBlock, [
      byteString(Tag.KeyValue, aeskw(kek).encrypt(key)),
      structure(Tag.KeyWrappingData, [enumeration(Tag.WrappingMethod, WrappingMethod.Encrypt), enumeration(Tag.EncodingOption, EncodingOption.NoEncoding)]),
    ]);
    assert.equal(toHex(unwrapKeyBlock(raw, kek)), toHex(key));
    const ttlvKeyValue = encodeTtlv(structure(Tag.KeyValue, [byteString(Tag.KeyMaterial, key)])); // 24 bytes: a multiple of 8
    const encoded = structure(Tag.KeyBlock, [byteString(Tag.KeyValue, aeskw(kek).encrypt(ttlvKeyValue)), structure(Tag.KeyWrappingData, [enumeration(Tag.WrappingMethod, WrappingMethod.Encrypt)])]);
    assert.equal(toHex(unwrapKeyBlock(encoded, kek)), toHex(key));
  });

  it('a wrong KEK or a flipped bit fails the integrity check', () => {
    const wrapped = aeskw(kek).encrypt(key);
    const block = (bytes: Uint8Array) => structure(Tag.KeyBlock, [byteString(Tag.KeyValue, bytes), structure(Tag.KeyWrappingData, [enumeration(Tag.WrappingMethod, WrappingMethod.Encrypt), enumeration(Tag.EncodingOption, EncodingOption.NoEncoding)])]);
    const isWrapError = (e: unknown) => (e as { code?: string }).code === 'KMIP_WRAP_INVALID';
    assert.throws(() => unwrapKeyBlock(block(wrapped), new Uint8Array(16)), isWrapError);
    const flipped = Uint8Array.from(wrapped);
    flipped[5]! ^= 1;
    assert.throws(() => unwrapKeyBlock(block(flipped), kek), isWrapError);
  });
});

describe('MAC/sign wrapping with HMAC-SHA256 (Usage Guide §4.21.2)', () => {
  const macKey = fromHex('4b'.repeat(32));
  const nonce = fromHex('a1'.repeat(16));
  const keyValue = structure(Tag.KeyValue, [
    byteString(Tag.KeyMaterial, key),
    structure(Tag.Attribute, [textString(Tag.AttributeName, 'x-Nonce'), byteString(Tag.AttributeValue, nonce)]),
  ]);
  const signed = (value = keyValue, mac = createHmac('sha256', macKey).update(encodeTtlv(keyValue)).digest()) =>
    structure(Tag.KeyBlock, [value, structure(Tag.KeyWrappingData, [enumeration(Tag.WrappingMethod, WrappingMethod.MACSign), structure(Tag.MACSignatureKeyInformation, [textString(Tag.UniqueIdentifier, 'mac-key')]), byteString(Tag.MACSignature, mac)])]);
  const isMacError = (e: unknown) => (e as { code?: string }).code === 'KMIP_MAC_INVALID';

  it('verifies over the TTLV encoding of the Key Value and yields the material and the x-Nonce', () => {
    const verified = verifyMacKeyBlock(signed(), macKey);
    assert.equal(toHex(keyMaterialOf(structure(Tag.KeyBlock, [verified]))), toHex(key));
    assert.equal(toHex(wrappedAttribute(verified, 'x-Nonce')!.value as Uint8Array), toHex(nonce));
  });

  it('rejects a tampered MAC, a tampered key byte, a tampered nonce and the wrong MAC key', () => {
    const mac = createHmac('sha256', macKey).update(encodeTtlv(keyValue)).digest();
    mac[0]! ^= 1;
    assert.throws(() => verifyMacKeyBlock(signed(keyValue, mac), macKey), isMacError);
    const otherKey = Uint8Array.from(key);
    otherKey[3]! ^= 0x80;
    const tamperedKey = structure(Tag.KeyValue, [byteString(Tag.KeyMaterial, otherKey), keyValue.value[1]!]);
    assert.throws(() => verifyMacKeyBlock(signed(tamperedKey, createHmac('sha256', macKey).update(encodeTtlv(keyValue)).digest()), macKey), isMacError);
    const tamperedNonce = structure(Tag.KeyValue, [keyValue.value[0]!, structure(Tag.Attribute, [textString(Tag.AttributeName, 'x-Nonce'), byteString(Tag.AttributeValue, new Uint8Array(16))])]);
    assert.throws(() => verifyMacKeyBlock(signed(tamperedNonce, createHmac('sha256', macKey).update(encodeTtlv(keyValue)).digest()), macKey), isMacError);
    assert.throws(() => verifyMacKeyBlock(signed(), new Uint8Array(32)), isMacError);
  });

  it('builds the Key Wrapping Specification with the wrapped attribute names', () => {
    const spec = keyWrappingSpecification({ method: 'mac', keyUid: 'mac-key', attributeNames: ['x-Nonce'] });
    assert.deepEqual(spec, structure(Tag.KeyWrappingSpecification, [
      enumeration(Tag.WrappingMethod, WrappingMethod.MACSign),
      structure(Tag.MACSignatureKeyInformation, [textString(Tag.UniqueIdentifier, 'mac-key')]),
      textString(Tag.AttributeName, 'x-Nonce'),
    ]));
  });
});
