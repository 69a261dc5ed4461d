/**
 * Key wrapping on Get (KMIP 1.2 §2.1.5–2.1.6, §12.4 of the Usage Guide): the request's Key
 * Wrapping Specification, and the local half — unwrapping an Encrypt-wrapped Key Value with AES key
 * wrap (RFC 3394), verifying a MAC/sign-wrapped one with HMAC-SHA256 in constant time.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { aesKeyUnwrap } from '../aes.ts';
import { KmipEdgeError } from '../errors.ts';
import { BlockCipherMode, EncodingOption, Tag, WrappingMethod } from '../kmip/tables.generated.ts';
import { keyMaterialOf } from '../kmip/payloads.ts';
import { findChild, optionalValue, requiredChild, requiredValue } from '../kmip/tree.ts';
import { enumeration, structure, textString } from '../ttlv/build.ts';
import { decodeTtlv } from '../ttlv/decode.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { ItemType, type TtlvItem } from '../ttlv/item.ts';

export interface WrapRequest {
  method: 'encrypt' | 'mac';
  /** Unique Identifier of the wrapping (AES) or MAC (HMAC-SHA256) key on the server. */
  keyUid: string;
  /** Attributes to wrap with the key (e.g. `x-Nonce`); TTLV encoding is then required. */
  attributeNames?: readonly string[];
  /** Encrypt only: No Encoding wraps the raw key bytes (PyKMIP requires it), else the TTLV Key Value. */
  encoding?: 'none' | 'ttlv';
}

/** AES key wrap is Block Cipher Mode NIST Key Wrap (RFC 3394) in the key's Cryptographic Parameters. */
const NIST_KEY_WRAP = structure(Tag.CryptographicParameters, [enumeration(Tag.BlockCipherMode, BlockCipherMode.NISTKeyWrap)]);

/** Key Wrapping Specification 0x420047 (KMIP 1.2 §2.1.6). */
export function keyWrappingSpecification(wrap: WrapRequest): TtlvItem {
  // KMIP 1.2 §2.1.6: Cryptographic Parameters select how the wrapping key is used; servers such as
  // PyKMIP require them for Encrypt. For HMAC the key's algorithm says it all.
  const keyInformation = wrap.method === 'encrypt'
    ? structure(Tag.EncryptionKeyInformation, [textString(Tag.UniqueIdentifier, wrap.keyUid), NIST_KEY_WRAP])
    : structure(Tag.MACSignatureKeyInformation, [textString(Tag.UniqueIdentifier, wrap.keyUid)]);
  return structure(Tag.KeyWrappingSpecification, [
    enumeration(Tag.WrappingMethod, wrap.method === 'encrypt' ? WrappingMethod.Encrypt : WrappingMethod.MACSign),
    keyInformation,
    ...(wrap.attributeNames ?? []).map((name) => textString(Tag.AttributeName, name)),
    ...(wrap.encoding ? [enumeration(Tag.EncodingOption, wrap.encoding === 'none' ? EncodingOption.NoEncoding : EncodingOption.TTLVEncoding)] : []),
  ]);
}

function wrapError(detail: string): KmipEdgeError {
  return new KmipEdgeError('KMIP_WRAP_INVALID', detail);
}

/**
 * Unwraps an Encrypt-wrapped Key Block with the wrapping key's bytes (AES key wrap, RFC 3394)
 * and returns the key material. The integrity check of key wrap rejects a wrong key or tampering.
 */
export function unwrapKeyBlock(keyBlock: TtlvItem, wrappingKey: Uint8Array): Uint8Array {
  const wrapping = requiredChild(keyBlock, Tag.KeyWrappingData);
  if (requiredValue(wrapping, Tag.WrappingMethod, ItemType.Enumeration) !== WrappingMethod.Encrypt) throw wrapError('the Key Block is not Encrypt-wrapped');
  // KMIP 1.2 §2.1.4: a wrapped Key Value is a Byte String. PyKMIP 0.10 instead sends a Key Value
  // Structure whose Key Material holds the wrapped bytes; accept both.
  const keyValue = requiredChild(keyBlock, Tag.KeyValue);
  const wrapped = keyValue.type === ItemType.ByteString ? keyValue.value : requiredValue(keyValue, Tag.KeyMaterial, ItemType.ByteString);
  let plain: Uint8Array;
  try {
    plain = aesKeyUnwrap(wrappingKey, wrapped);
  } catch (error) {
    throw new KmipEdgeError('KMIP_WRAP_INVALID', 'AES key unwrap failed: wrong wrapping key or tampered Key Value', { cause: error });
  }
  if (optionalValue(wrapping, Tag.EncodingOption, ItemType.Enumeration) === EncodingOption.NoEncoding) return plain;
  const unwrapped = decodeTtlv(plain);
  if (unwrapped.tag !== Tag.KeyValue) throw wrapError('the unwrapped bytes are not a TTLV Key Value');
  return keyMaterialOf(structure(Tag.KeyBlock, [unwrapped]));
}

/**
 * Verifies a MAC/sign-wrapped Key Block (Usage Guide §4.21.2, ARCHITECTURE.md §6): HMAC-SHA256
 * with `macKey` over the TTLV encoding of the Key Value structure as received — decoding is
 * one-to-one, so re-encoding yields exactly the received bytes — compared in constant time.
 * Returns the plaintext Key Value (material and wrapped attributes).
 */
export function verifyMacKeyBlock(keyBlock: TtlvItem, macKey: Uint8Array): TtlvItem {
  const wrapping = requiredChild(keyBlock, Tag.KeyWrappingData);
  if (requiredValue(wrapping, Tag.WrappingMethod, ItemType.Enumeration) !== WrappingMethod.MACSign) throw wrapError('the Key Block is not MAC/sign-wrapped');
  const keyValue = requiredChild(keyBlock, Tag.KeyValue);
  if (keyValue.type !== ItemType.Structure) throw wrapError('a MAC/sign-wrapped Key Value must be a plaintext Structure');
  const mac = requiredValue(wrapping, Tag.MACSignature, ItemType.ByteString);
  const expected = createHmac('sha256', macKey).update(encodeTtlv(keyValue)).digest();
  if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) throw new KmipEdgeError('KMIP_MAC_INVALID', 'the HMAC-SHA256 over the Key Value does not verify');
  return keyValue;
}

/** A wrapped attribute's value from a verified Key Value, e.g. the `x-Nonce` Byte String. */
export function wrappedAttribute(keyValue: TtlvItem, name: string): TtlvItem | undefined {
  for (const child of keyValue.type === ItemType.Structure ? keyValue.value : []) {
    if (child.tag === Tag.Attribute && optionalValue(child, Tag.AttributeName, ItemType.TextString) === name) return findChild(child, Tag.AttributeValue);
  }
  return undefined;
}
