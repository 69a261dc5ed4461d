/* Status names, the two helpers every part shares (fb_status.h), and the byte-order helpers of
 * the core (fb_internal.h). */
#include "fb/fb_config.h"
#include "fb/fb_status.h"
#include "fb_internal.h"

#if FB_CONFIG_STATUS_NAMES

/*
 * One string of NUL-terminated names, indexed by 1 - status: FB_AGAIN (1), FB_OK (0), then the
 * errors -1, -2, ... in order, and last the name of every other value. One array instead of a
 * table of pointers to separately aligned strings: about 100 bytes less flash.
 */
static const char status_names[] =
    "FB_AGAIN\0" "FB_OK\0" "FB_ERR_ARG\0" "FB_ERR_TOO_LARGE\0" "FB_ERR_MALFORMED\0"
    "FB_ERR_VERSION\0" "FB_ERR_SUITE\0" "FB_ERR_AUTH\0" "FB_ERR_REPLAY\0" "FB_ERR_UNEXPECTED\0"
    "FB_ERR_BUSY\0" "FB_ERR_COUNTER_EXHAUSTED\0" "FB_ERR_STORAGE\0" "FB_ERR_CRYPTO\0" "FB_ERR_CRC\0"
    "FB_ERR_MAC\0" "FB_ERR_NONCE\0" "FB_ERR_NOT_FOUND\0" "FB_ERR_UNKNOWN\0";
#define STATUS_NAME_COUNT 19 /* the names above, FB_ERR_UNKNOWN included */

const char *fb_status_name(fb_status status)
{
    const char *name = status_names;
    int index = 1 - (int)status;
    if (index < 0 || index >= STATUS_NAME_COUNT - 1) {
        index = STATUS_NAME_COUNT - 1;
    }
    while (index-- > 0) {
        while (*name++ != '\0') {
        }
    }
    return name;
}
#else
/* Names compiled out (fb_config.h): the class of the status only. */
const char *fb_status_name(fb_status status)
{
    return status == FB_OK ? "FB_OK" : status == FB_AGAIN ? "FB_AGAIN" : "FB_ERR";
}
#endif

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

void fb_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void fb_put_u64(uint8_t *p, uint64_t v)
{
    fb_put_u32(p, (uint32_t)(v >> 32));
    fb_put_u32(p + 4, (uint32_t)v);
}

uint32_t fb_get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

uint64_t fb_get_u64(const uint8_t *p)
{
    return ((uint64_t)fb_get_u32(p) << 32) | (uint64_t)fb_get_u32(p + 4);
}
