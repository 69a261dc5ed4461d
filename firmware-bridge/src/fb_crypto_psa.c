/* The default crypto backend (fb_crypto_psa.h) on the PSA Crypto API. */
#include <string.h>
#include "fb/fb_crypto_psa.h"

static psa_algorithm_t alg_of(uint8_t suite)
{
    return suite == FB_SUITE_AES_256_GCM ? PSA_ALG_GCM : PSA_ALG_CHACHA20_POLY1305;
}

static fb_status psa_seal(void *ctx, uint8_t suite, const uint8_t nonce[FB_NONCE_BYTES],
                          const uint8_t *ad, size_t ad_len, const uint8_t *pt, size_t pt_len,
                          uint8_t *out, size_t out_size)
{
    fb_crypto_psa *st = (fb_crypto_psa *)ctx;
    size_t written = 0;
    psa_status_t status;
    if (st == NULL || suite != st->suite) {
        return FB_ERR_CRYPTO;
    }
    if (out_size < pt_len + FB_TAG_BYTES) {
        return FB_ERR_TOO_LARGE;
    }
    /* In place (out == pt) is what the library does: Mbed TLS's GCM and ChaCha20-Poly1305
     * support it (and the vector tests check it). */
    status = psa_aead_encrypt(st->aead_key, alg_of(suite), nonce, FB_NONCE_BYTES, ad, ad_len, pt,
                              pt_len, out, out_size, &written);
    if (status != PSA_SUCCESS || written != pt_len + FB_TAG_BYTES) {
        memset(out, 0, out_size);
        return FB_ERR_CRYPTO;
    }
    return FB_OK;
}

static fb_status psa_open(void *ctx, uint8_t suite, const uint8_t nonce[FB_NONCE_BYTES],
                          const uint8_t *ad, size_t ad_len, const uint8_t *ct, size_t ct_len,
                          uint8_t *out, size_t out_size)
{
    fb_crypto_psa *st = (fb_crypto_psa *)ctx;
    size_t written = 0;
    psa_status_t status;
    if (st == NULL || suite != st->suite || ct_len < FB_TAG_BYTES) {
        return FB_ERR_CRYPTO;
    }
    if (out_size < ct_len - FB_TAG_BYTES) {
        return FB_ERR_TOO_LARGE;
    }
    /* psa_aead_decrypt checks the tag in constant time and releases no plaintext on failure;
     * `out` is cleared here too, whatever the implementation left in it. */
    status = psa_aead_decrypt(st->aead_key, alg_of(suite), nonce, FB_NONCE_BYTES, ad, ad_len, ct,
                              ct_len, out, out_size, &written);
    if (status != PSA_SUCCESS) {
        memset(out, 0, out_size);
        return status == PSA_ERROR_INVALID_SIGNATURE ? FB_ERR_AUTH : FB_ERR_CRYPTO;
    }
    return written == ct_len - FB_TAG_BYTES ? FB_OK : FB_ERR_CRYPTO;
}

static fb_status psa_hmac_verify(void *ctx, const uint8_t *data, size_t data_len,
                                 const uint8_t *mac, size_t mac_len)
{
    fb_crypto_psa *st = (fb_crypto_psa *)ctx;
    psa_status_t status;
    if (st == NULL || st->mac_key == 0) {
        return FB_ERR_CRYPTO;
    }
    if (mac_len != FB_HMAC_SHA256_BYTES) {
        return FB_ERR_MAC; /* a truncated MAC is not accepted */
    }
    /* psa_mac_verify compares in constant time. */
    status = psa_mac_verify(st->mac_key, PSA_ALG_HMAC(PSA_ALG_SHA_256), data, data_len, mac, mac_len);
    if (status == PSA_SUCCESS) {
        return FB_OK;
    }
    return status == PSA_ERROR_INVALID_SIGNATURE ? FB_ERR_MAC : FB_ERR_CRYPTO;
}

static fb_status psa_random(void *ctx, uint8_t *out, size_t len)
{
    (void)ctx;
    return psa_generate_random(out, len) == PSA_SUCCESS ? FB_OK : FB_ERR_CRYPTO;
}

static void fill_iface(fb_crypto_psa *state, fb_crypto *iface)
{
    iface->ctx = state;
    iface->aead_seal = psa_seal;
    iface->aead_open = psa_open;
    iface->hmac_sha256_verify = psa_hmac_verify;
    iface->random = psa_random;
}

fb_status fb_crypto_psa_use(fb_crypto_psa *state, fb_crypto *iface, uint8_t suite,
                            psa_key_id_t aead_key, psa_key_id_t mac_key)
{
    if (state == NULL || iface == NULL ||
        (suite != FB_SUITE_AES_256_GCM && suite != FB_SUITE_CHACHA20_POLY1305)) {
        return FB_ERR_ARG;
    }
    if (psa_crypto_init() != PSA_SUCCESS) {
        return FB_ERR_CRYPTO;
    }
    state->aead_key = aead_key;
    state->mac_key = mac_key;
    state->suite = suite;
    state->owns_keys = 0;
    fill_iface(state, iface);
    return FB_OK;
}

fb_status fb_crypto_psa_import(fb_crypto_psa *state, fb_crypto *iface, uint8_t suite,
                               const uint8_t device_key[FB_KEY_BYTES], const uint8_t *mac_key,
                               size_t mac_key_len)
{
    psa_key_attributes_t attributes = PSA_KEY_ATTRIBUTES_INIT;
    psa_key_id_t aead = 0;
    psa_key_id_t mac = 0;
    fb_status status;
    if (state == NULL || iface == NULL || device_key == NULL ||
        (suite != FB_SUITE_AES_256_GCM && suite != FB_SUITE_CHACHA20_POLY1305) ||
        (mac_key == NULL && mac_key_len > 0u)) {
        return FB_ERR_ARG;
    }
    memset(state, 0, sizeof *state);
    if (psa_crypto_init() != PSA_SUCCESS) {
        return FB_ERR_CRYPTO;
    }
    psa_set_key_type(&attributes, suite == FB_SUITE_AES_256_GCM ? PSA_KEY_TYPE_AES : PSA_KEY_TYPE_CHACHA20);
    psa_set_key_bits(&attributes, 256);
    psa_set_key_usage_flags(&attributes, PSA_KEY_USAGE_ENCRYPT | PSA_KEY_USAGE_DECRYPT);
    psa_set_key_algorithm(&attributes, alg_of(suite));
    if (psa_import_key(&attributes, device_key, FB_KEY_BYTES, &aead) != PSA_SUCCESS) {
        psa_reset_key_attributes(&attributes);
        return FB_ERR_CRYPTO;
    }
    psa_reset_key_attributes(&attributes);
    if (mac_key_len > 0u) {
        psa_set_key_type(&attributes, PSA_KEY_TYPE_HMAC);
        psa_set_key_bits(&attributes, mac_key_len * 8u);
        psa_set_key_usage_flags(&attributes, PSA_KEY_USAGE_VERIFY_MESSAGE);
        psa_set_key_algorithm(&attributes, PSA_ALG_HMAC(PSA_ALG_SHA_256));
        if (psa_import_key(&attributes, mac_key, mac_key_len, &mac) != PSA_SUCCESS) {
            psa_reset_key_attributes(&attributes);
            psa_destroy_key(aead);
            return FB_ERR_CRYPTO;
        }
        psa_reset_key_attributes(&attributes);
    }
    status = fb_crypto_psa_use(state, iface, suite, aead, mac);
    state->owns_keys = 1;
    return status;
}

void fb_crypto_psa_free(fb_crypto_psa *state)
{
    if (state == NULL) {
        return;
    }
    if (state->owns_keys) {
        if (state->aead_key != 0) {
            psa_destroy_key(state->aead_key);
        }
        if (state->mac_key != 0) {
            psa_destroy_key(state->mac_key);
        }
    }
    memset(state, 0, sizeof *state);
}
