/* Status names and the two helpers every part shares (fb_status.h). */
#include "fb/fb_status.h"

const char *fb_status_name(fb_status status)
{
    switch (status) {
    case FB_OK: return "FB_OK";
    case FB_AGAIN: return "FB_AGAIN";
    case FB_ERR_ARG: return "FB_ERR_ARG";
    case FB_ERR_TOO_LARGE: return "FB_ERR_TOO_LARGE";
    case FB_ERR_MALFORMED: return "FB_ERR_MALFORMED";
    case FB_ERR_VERSION: return "FB_ERR_VERSION";
    case FB_ERR_SUITE: return "FB_ERR_SUITE";
    case FB_ERR_AUTH: return "FB_ERR_AUTH";
    case FB_ERR_REPLAY: return "FB_ERR_REPLAY";
    case FB_ERR_UNEXPECTED: return "FB_ERR_UNEXPECTED";
    case FB_ERR_BUSY: return "FB_ERR_BUSY";
    case FB_ERR_COUNTER_EXHAUSTED: return "FB_ERR_COUNTER_EXHAUSTED";
    case FB_ERR_STORAGE: return "FB_ERR_STORAGE";
    case FB_ERR_CRYPTO: return "FB_ERR_CRYPTO";
    case FB_ERR_CRC: return "FB_ERR_CRC";
    case FB_ERR_MAC: return "FB_ERR_MAC";
    case FB_ERR_NONCE: return "FB_ERR_NONCE";
    case FB_ERR_NOT_FOUND: return "FB_ERR_NOT_FOUND";
    }
    return "FB_ERR_UNKNOWN";
}

void fb_zeroize(void *p, size_t len)
{
    /* Through a volatile pointer: the stores may not be elided as dead (the buffer is often
     * about to go out of scope, which is exactly when a plain memset would be dropped). */
    volatile uint8_t *v = (volatile uint8_t *)p;
    if (p == NULL) {
        return;
    }
    while (len-- > 0u) {
        *v++ = 0u;
    }
}

int fb_ct_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
    /* Accumulate every difference; no early exit, so time depends on len only. */
    volatile uint8_t diff = 0u;
    size_t i;
    for (i = 0; i < len; i++) {
        diff = (uint8_t)(diff | (uint8_t)(a[i] ^ b[i]));
    }
    return diff == 0u;
}
