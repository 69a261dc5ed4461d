/**
 * @file fb_crypto_psa.h
 * The default crypto backend, on the PSA Crypto API (Mbed TLS 2.28+ / 3.x / 4.x, TF-PSA-Crypto,
 * Zephyr, ESP-IDF). Link firmware_bridge_psa (CMake) or src/fb_crypto_psa.c with -lmbedcrypto.
 * The core library does not depend on it.
 */
#ifndef FB_CRYPTO_PSA_H
#define FB_CRYPTO_PSA_H

#include <psa/crypto.h>
#include "fb_crypto.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Backend state: PSA key ids, caller-owned (e.g. a member of the device's state). */
typedef struct fb_crypto_psa {
    psa_key_id_t aead_key;  /**< the device key (AES or ChaCha20 type, per suite) */
    psa_key_id_t mac_key;   /**< the nonce-MAC key M (HMAC, SHA-256), 0 when none */
    uint8_t suite;
    uint8_t owns_keys;      /**< 1 when fb_crypto_psa_import created them (freed by _free) */
} fb_crypto_psa;

/**
 * Calls psa_crypto_init(), imports the 32-byte device key for `suite` and, when mac_key_len > 0,
 * the nonce-MAC key M (volatile keys, usage limited to what the library does), and fills
 * `iface` to use them. The caller may zeroize its copies of the bytes afterwards.
 * FB_ERR_ARG for a bad suite or length, FB_ERR_CRYPTO when PSA refuses.
 */
fb_status fb_crypto_psa_import(fb_crypto_psa *state, fb_crypto *iface, uint8_t suite,
                               const uint8_t device_key[FB_KEY_BYTES], const uint8_t *mac_key,
                               size_t mac_key_len);

/**
 * Uses keys already in PSA (persistent keys provisioned in a secure element or TF-M): the AEAD
 * key of `suite` and an HMAC-SHA256 key (0 when none). Calls psa_crypto_init().
 */
fb_status fb_crypto_psa_use(fb_crypto_psa *state, fb_crypto *iface, uint8_t suite,
                            psa_key_id_t aead_key, psa_key_id_t mac_key);

/** Destroys the keys fb_crypto_psa_import created (not those given to fb_crypto_psa_use). */
void fb_crypto_psa_free(fb_crypto_psa *state);

#ifdef __cplusplus
}
#endif
#endif /* FB_CRYPTO_PSA_H */
