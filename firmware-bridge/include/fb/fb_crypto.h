/**
 * @file fb_crypto.h
 * The crypto interface the caller injects (as coreMQTT injects its transport): four function
 * pointers and a context. The library never sees a key: the backend holds the device key (and
 * the nonce-MAC key M of PROTOCOL.md §5.1) behind `ctx` — bytes in RAM, a PSA key id, a secure
 * element slot. The default backend is fb_crypto_psa.h (PSA Crypto API); an MCU port writes
 * these four functions over its vendor's AES/ChaCha engine.
 *
 * Contract for every backend:
 * - Suites: FB_SUITE_AES_256_GCM (1) and FB_SUITE_CHACHA20_POLY1305 (2), 96-bit nonce, 16-byte
 *   tag appended to the ciphertext (RFC 5116 layout, as psa_aead_encrypt produces).
 * - In place: `out` may be exactly the input pointer (never a partial overlap); the library seals
 *   and opens frames in place to need one frame buffer only.
 * - aead_open verifies the tag in constant time and, when it does not verify, returns
 *   FB_ERR_AUTH and leaves no plaintext in `out` (zeroized).
 * - hmac_sha256_verify compares in constant time and returns FB_OK or FB_ERR_MAC.
 * - Any other failure is FB_ERR_CRYPTO.
 */
#ifndef FB_CRYPTO_H
#define FB_CRYPTO_H

#include <stddef.h>
#include <stdint.h>
#include "fb_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Frame suites (PROTOCOL.md §1). */
#define FB_SUITE_AES_256_GCM 1u
#define FB_SUITE_CHACHA20_POLY1305 2u
#define FB_KEY_BYTES 32u
#define FB_NONCE_BYTES 12u
#define FB_TAG_BYTES 16u
#define FB_HMAC_SHA256_BYTES 32u

typedef struct fb_crypto {
    /** Backend state (keys, handles); passed back as the first argument of every call. */
    void *ctx;
    /**
     * Encrypts `pt` (pt_len bytes) with the device key under `nonce` and `ad`, writing
     * pt_len + 16 bytes (ciphertext | tag) to `out`, which holds out_size bytes.
     */
    fb_status (*aead_seal)(void *ctx, uint8_t suite, const uint8_t nonce[FB_NONCE_BYTES],
                           const uint8_t *ad, size_t ad_len, const uint8_t *pt, size_t pt_len,
                           uint8_t *out, size_t out_size);
    /**
     * Verifies and decrypts `ct` (ct_len bytes: ciphertext | 16-byte tag, ct_len >= 16), writing
     * ct_len - 16 bytes of plaintext to `out` (out_size bytes). FB_ERR_AUTH when the tag fails.
     */
    fb_status (*aead_open)(void *ctx, uint8_t suite, const uint8_t nonce[FB_NONCE_BYTES],
                           const uint8_t *ad, size_t ad_len, const uint8_t *ct, size_t ct_len,
                           uint8_t *out, size_t out_size);
    /** Checks that `mac` (mac_len bytes) is HMAC-SHA256 of `data` under the nonce-MAC key M. */
    fb_status (*hmac_sha256_verify)(void *ctx, const uint8_t *data, size_t data_len,
                                    const uint8_t *mac, size_t mac_len);
    /** Fills `out` with `len` bytes from a cryptographically secure generator. */
    fb_status (*random)(void *ctx, uint8_t *out, size_t len);
} fb_crypto;

#ifdef __cplusplus
}
#endif
#endif /* FB_CRYPTO_H */
