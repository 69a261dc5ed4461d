/**
 * AES-GCM (NIST SP 800-38D) and AES key wrap (RFC 3394) from node:crypto (OpenSSL). These were
 * @noble/ciphers' `gcm` and `aeskw`, whose module builds its lookup tables when it is loaded
 * (~1.3 MB of typed arrays and ~10 ms at every start of every command: issue #15 footprint);
 * the bytes are the same (GCM: ciphertext then the 16-byte tag; key wrap: the default IV
 * A6A6A6A6A6A6A6A6 of RFC 3394 §2.2.3.1). The tests keep noble as an independent cross-check.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';

const TAG_BYTES = 16;

/**
 * The parts as one Uint8Array of exactly their size, not a Buffer: a small Buffer.concat is a
 * slice of Node's shared 8 kB pool, which a long-lived key would keep alive whole.
 */
function joined(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
/** RFC 3394 §2.2.3.1: the default initial value. */
const KEY_WRAP_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');

function gcmName(key: Uint8Array): 'aes-128-gcm' | 'aes-192-gcm' | 'aes-256-gcm' {
  if (key.length === 16) return 'aes-128-gcm';
  if (key.length === 24) return 'aes-192-gcm';
  if (key.length === 32) return 'aes-256-gcm';
  throw new RangeError(`an AES key is 16, 24 or 32 bytes, not ${key.length}`);
}

/** Ciphertext followed by the 16-byte tag, `aad` authenticated with it. */
export function gcmEncrypt(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const cipher = createCipheriv(gcmName(key), key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  return joined(cipher.update(plaintext), cipher.final(), cipher.getAuthTag());
}

/** The plaintext of ciphertext-then-tag; throws when it does not authenticate (tampered, wrong key, nonce or `aad`). */
export function gcmDecrypt(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array {
  if (sealed.length < TAG_BYTES) throw new RangeError(`a GCM ciphertext has a ${TAG_BYTES}-byte tag; this one has ${sealed.length} bytes in all`);
  const decipher = createDecipheriv(gcmName(key), key, nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  return joined(decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)), decipher.final());
}

function keyWrapName(kek: Uint8Array): 'id-aes128-wrap' | 'id-aes192-wrap' | 'id-aes256-wrap' {
  if (kek.length === 16) return 'id-aes128-wrap';
  if (kek.length === 24) return 'id-aes192-wrap';
  if (kek.length === 32) return 'id-aes256-wrap';
  throw new RangeError(`an AES key-encryption key is 16, 24 or 32 bytes, not ${kek.length}`);
}

/** RFC 3394 wrap of `plaintext` (a multiple of 8 bytes, at least 16). */
export function aesKeyWrap(kek: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const cipher = createCipheriv(keyWrapName(kek), kek, KEY_WRAP_IV);
  return joined(cipher.update(plaintext), cipher.final());
}

/** RFC 3394 unwrap; throws when the integrity check fails (wrong key, tampered) or the length is not one of key wrap. */
export function aesKeyUnwrap(kek: Uint8Array, wrapped: Uint8Array): Uint8Array {
  const decipher = createDecipheriv(keyWrapName(kek), kek, KEY_WRAP_IV);
  return joined(decipher.update(wrapped), decipher.final());
}
