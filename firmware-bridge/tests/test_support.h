/* Shared by the unit tests: an in-memory storage with failure injection, the PSA backend on
 * the vector key, and the agent's side (down frames sealed with the same library). */
#ifndef FB_TEST_SUPPORT_H
#define FB_TEST_SUPPORT_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "fb/fb.h"
#include "fb/fb_crypto_psa.h"

typedef struct test_storage {
    uint8_t record[FB_COUNTER_RECORD_BYTES];
    int found;
    int fail_reads;
    int fail_writes;
    int writes;
} test_storage;

static inline fb_status ts_read(void *ctx, uint8_t *buf, size_t len, int *found)
{
    test_storage *s = (test_storage *)ctx;
    if (s->fail_reads || len != FB_COUNTER_RECORD_BYTES) return FB_ERR_STORAGE;
    memcpy(buf, s->record, len);
    *found = s->found;
    return FB_OK;
}

static inline fb_status ts_write(void *ctx, const uint8_t *buf, size_t len)
{
    test_storage *s = (test_storage *)ctx;
    if (s->fail_writes || len != FB_COUNTER_RECORD_BYTES) return FB_ERR_STORAGE;
    memcpy(s->record, buf, len);
    s->found = 1;
    s->writes++;
    return FB_OK;
}

static inline void test_storage_iface(test_storage *s, fb_storage *iface)
{
    iface->ctx = s;
    iface->read = ts_read;
    iface->write = ts_write;
}

static inline void hex_to_bytes(const char *hex, uint8_t *out, size_t *len)
{
    size_t n = strlen(hex) / 2u;
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    *len = n;
}
#endif
