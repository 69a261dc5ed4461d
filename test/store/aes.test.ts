/**
 * src/aes.ts (node:crypto) against @noble/ciphers, which sealed the records of agents before it:
 * the same bytes both ways for AES-GCM and RFC 3394 key wrap, every tampered byte refused, and a
 * record sealed by the old code opened by MasterKey.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { aeskw, gcm } from '@noble/ciphers/aes.js';
import { aesKeyUnwrap, aesKeyWrap, gcmDecrypt, gcmEncrypt } from '../../src/aes.ts';
import { MasterKey } from '../../src/store/master-key.ts';
import { toHex } from '../../src/ttlv/hex.ts';

const bytes = (n: number) => new Uint8Array(randomBytes(n));

describe('aes (node:crypto) against @noble/ciphers', () => {
  it('AES-GCM: the same ciphertext and tag; each side opens the other; a flipped bit or other AAD refused', () => {
    for (const keyBytes of [16, 24, 32]) {
      for (const length of [0, 1, 16, 32, 33, 1000]) {
        const key = bytes(keyBytes);
        const nonce = bytes(12);
        const aad = bytes(20);
        const plaintext = bytes(length);
        const ours = gcmEncrypt(key, nonce, aad, plaintext);
        assert.equal(toHex(ours), toHex(gcm(key, nonce, aad).encrypt(plaintext)));
        assert.equal(toHex(gcmDecrypt(key, nonce, aad, ours)), toHex(plaintext));
        for (const at of [0, ours.length - 1, Math.floor(ours.length / 2)]) {
          const tampered = ours.slice();
          tampered[at]! ^= 1;
          assert.throws(() => gcmDecrypt(key, nonce, aad, tampered));
        }
        assert.throws(() => gcmDecrypt(key, nonce, bytes(20), ours));
        assert.throws(() => gcmDecrypt(key, nonce, aad, ours.subarray(0, ours.length - 1)));
      }
    }
  });

  it('RFC 3394 key wrap: the same bytes; a flipped bit refused', () => {
    for (const kekBytes of [16, 24, 32]) {
      for (const length of [16, 24, 32, 64]) {
        const kek = bytes(kekBytes);
        const key = bytes(length);
        const wrapped = aesKeyWrap(kek, key);
        assert.equal(toHex(wrapped), toHex(aeskw(kek).encrypt(key)));
        assert.equal(toHex(aesKeyUnwrap(kek, wrapped)), toHex(key));
        const tampered = wrapped.slice();
        tampered[3]! ^= 1;
        assert.throws(() => aesKeyUnwrap(kek, tampered));
      }
    }
  });

  it('a record sealed as the agent sealed it with noble (nonce, ciphertext, tag) opens, under its own record key only', () => {
    const raw = bytes(32);
    const master = MasterKey.fromBytes(raw);
    const material = bytes(32);
    const nonce = bytes(12);
    const sealed = new Uint8Array([...nonce, ...gcm(raw, nonce, Buffer.from('cache/key/k1')).encrypt(material)]);
    assert.equal(toHex(master.open(sealed, 'cache/key/k1')), toHex(material));
    assert.equal(master.tryOpen(sealed, 'cache/key/k2'), undefined);
    const resealed = master.seal(material, 'cache/key/k1'); // and noble opens what MasterKey seals now
    assert.equal(toHex(gcm(raw, resealed.subarray(0, 12), Buffer.from('cache/key/k1')).decrypt(resealed.subarray(12))), toHex(material));
  });
});
