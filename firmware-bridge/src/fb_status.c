/* Status names and the two helpers every part shares (fb_status.h). */
#include "fb/fb_status.h"

/* Indexed by 1 - status: FB_AGAIN (1), FB_OK (0), then the errors -1, -2, ... in order. */
static const char *const status_names[] = {
    "FB_AGAIN", "FB_OK", "FB_ERR_ARG", "FB_ERR_TOO_LARGE", "FB_ERR_MALFORMED", "FB_ERR_VERSION",
    "FB_ERR_SUITE", "FB_ERR_AUTH", "FB_ERR_REPLAY", "FB_ERR_UNEXPECTED", "FB_ERR_BUSY",
    "FB_ERR_COUNTER_EXHAUSTED", "FB_ERR_STORAGE", "FB_ERR_CRYPTO", "FB_ERR_CRC", "FB_ERR_MAC",
    "FB_ERR_NONCE", "FB_ERR_NOT_FOUND",
};

const char *fb_status_name(fb_status status)
{
    int index = 1 - (int)status;
    if (index < 0 || (size_t)index >= sizeof status_names / sizeof status_names[0]) {
        return "FB_ERR_UNKNOWN";
    }
    return status_names[index];
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
