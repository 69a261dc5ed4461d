/* libFuzzer: the TTLV reader and every typed reader over arbitrary bodies (as opened frames
 * deliver them), plus a bounded walk of the generic reader. */
#include <stdlib.h>
#include "fuzz_common.h"

static void walk(const uint8_t *data, size_t len, int depth)
{
    fb_ttlv_reader r;
    fb_ttlv_item item;
    fb_ttlv_reader_init(&r, data, len);
    while (fb_ttlv_next(&r, &item) == FB_OK) {
        if (item.raw < data || item.raw + item.raw_len > data + len) abort();
        if (item.type == FB_TTLV_STRUCTURE && depth < 8) {
            fb_ttlv_reader c;
            if (fb_ttlv_enter(&item, &c) != FB_OK) abort();
            walk(item.value, item.len, depth + 1);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy;
    if (size > FB_MAX_FRAME) return 0;
    /* An exact-size heap copy, so ASan sees any read past the end (the library has no heap). */
    copy = (uint8_t *)malloc(size == 0 ? 1 : size);
    if (copy == NULL) return 0;
    memcpy(copy, data, size);
    walk(copy, size, 0);
    exercise_readers(copy, size);
    free(copy);
    return 0;
}
