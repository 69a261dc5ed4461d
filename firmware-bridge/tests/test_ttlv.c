/* The TTLV reader's limits (each at the limit and one over) and the writer's bounds. */
#include "test_support.h"

/* An item header: tag, type, length. */
static void header(uint8_t *p, uint32_t tag, uint8_t type, uint32_t len)
{
    p[0] = (uint8_t)(tag >> 16); p[1] = (uint8_t)(tag >> 8); p[2] = (uint8_t)tag; p[3] = type;
    p[4] = (uint8_t)(len >> 24); p[5] = (uint8_t)(len >> 16); p[6] = (uint8_t)(len >> 8); p[7] = (uint8_t)len;
}

static void test_reader_lengths(void **state)
{
    uint8_t buf[64];
    fb_ttlv_reader r;
    fb_ttlv_item item;
    (void)state;
    memset(buf, 0, sizeof buf);
    /* A Text String of 5 bytes needs 8 + 8 (padding): 16 bytes pass, 15 do not. */
    header(buf, 0x420094, FB_TTLV_TEXT_STRING, 5);
    memcpy(buf + 8, "hello", 5);
    fb_ttlv_reader_init(&r, buf, 16);
    assert_int_equal(fb_ttlv_next(&r, &item), FB_OK);
    assert_int_equal(item.tag, 0x420094);
    assert_int_equal(item.len, 5);
    assert_int_equal(item.raw_len, 16);
    assert_int_equal(fb_ttlv_next(&r, &item), FB_ERR_NOT_FOUND);
    fb_ttlv_reader_init(&r, buf, 15);
    assert_int_equal(fb_ttlv_next(&r, &item), FB_ERR_MALFORMED);
    assert_int_equal(r.pos, 0);
    /* A length beyond the region is refused before use (even a huge one). */
    header(buf, 0x420094, FB_TTLV_BYTE_STRING, 0xFFFFFFFFu);
    fb_ttlv_reader_init(&r, buf, sizeof buf);
    assert_int_equal(fb_ttlv_next(&r, &item), FB_ERR_MALFORMED);
    header(buf, 0x420094, FB_TTLV_BYTE_STRING, 56);
    fb_ttlv_reader_init(&r, buf, sizeof buf);
    assert_int_equal(fb_ttlv_next(&r, &item), FB_OK);
    header(buf, 0x420094, FB_TTLV_BYTE_STRING, 57);
    fb_ttlv_reader_init(&r, buf, sizeof buf);
    assert_int_equal(fb_ttlv_next(&r, &item), FB_ERR_MALFORMED);
    /* Fewer than 8 bytes left: not an item. */
    fb_ttlv_reader_init(&r, buf, 7);
    assert_int_equal(fb_ttlv_next(&r, &item), FB_ERR_MALFORMED);
}

static void test_reader_fixed_types(void **state)
{
    uint8_t buf[16];
    fb_ttlv_reader r;
    fb_ttlv_item item;
    int32_t v32;
    int64_t v64;
    bool b;
    (void)state;
    memset(buf, 0, sizeof buf);
    header(buf, 0x42000D, FB_TTLV_INTEGER, 4);
    buf[11] = 7;
    fb_ttlv_reader_init(&r, buf, 16);
    assert_int_equal(fb_ttlv_next(&r, &item), FB_OK);
    assert_int_equal(fb_ttlv_get_int32(&item, FB_TTLV_INTEGER, &v32), FB_OK);
    assert_int_equal(v32, 7);
    assert_int_equal(fb_ttlv_get_int32(&item, FB_TTLV_ENUMERATION, &v32), FB_ERR_MALFORMED);
    assert_int_equal(fb_ttlv_get_int64(&item, FB_TTLV_LONG_INTEGER, &v64), FB_ERR_MALFORMED);
    header(buf, 0x42000D, FB_TTLV_INTEGER, 8); /* an Integer is 4 bytes */
    fb_ttlv_reader_init(&r, buf, 16);
    assert_int_equal(fb_ttlv_next(&r, &item), FB_ERR_MALFORMED);
    header(buf, 0x420010, FB_TTLV_BOOLEAN, 8);
    buf[15] = 2; /* a Boolean is 0 or 1 */
    fb_ttlv_reader_init(&r, buf, 16);
    assert_int_equal(fb_ttlv_next(&r, &item), FB_OK);
    assert_int_equal(fb_ttlv_get_bool(&item, &b), FB_ERR_MALFORMED);
    header(buf, 0x420010, 0x0B, 8); /* no such type */
    fb_ttlv_reader_init(&r, buf, 16);
    assert_int_equal(fb_ttlv_next(&r, &item), FB_ERR_MALFORMED);
    header(buf, 0x420010, 0x00, 8);
    fb_ttlv_reader_init(&r, buf, 16);
    assert_int_equal(fb_ttlv_next(&r, &item), FB_ERR_MALFORMED);
}

static void test_structure_children_bounded(void **state)
{
    /* A structure whose child claims more than the structure holds (but not more than the
     * buffer): the child reader stops at the structure's end. */
    uint8_t buf[48];
    fb_ttlv_reader r;
    fb_ttlv_reader c;
    fb_ttlv_item item;
    fb_ttlv_item child;
    (void)state;
    memset(buf, 0, sizeof buf);
    header(buf, 0x420078, FB_TTLV_STRUCTURE, 16);
    header(buf + 8, 0x420094, FB_TTLV_BYTE_STRING, 24);
    fb_ttlv_reader_init(&r, buf, sizeof buf);
    assert_int_equal(fb_ttlv_next(&r, &item), FB_OK);
    assert_int_equal(fb_ttlv_enter(&item, &c), FB_OK);
    assert_int_equal(fb_ttlv_next(&c, &child), FB_ERR_MALFORMED);
    assert_int_equal(fb_ttlv_enter(&child, &c), FB_ERR_MALFORMED); /* not entered: not read */
}

static void test_writer_bounds(void **state)
{
    uint8_t buf[24];
    fb_ttlv_writer w;
    size_t s;
    (void)state;
    /* Exactly full: a structure (8) holding a 5-byte string (16). */
    fb_ttlv_writer_init(&w, buf, 24);
    s = fb_ttlv_begin(&w, 0x420078);
    fb_ttlv_put_bytes(&w, 0x420094, FB_TTLV_TEXT_STRING, (const uint8_t *)"hello", 5);
    fb_ttlv_end(&w, s);
    assert_int_equal(w.status, FB_OK);
    assert_int_equal(w.len, 24);
    assert_int_equal(buf[7], 16);
    assert_int_equal(buf[21], 0); /* padding is zeros */
    /* One byte short: FB_ERR_TOO_LARGE, sticky. */
    fb_ttlv_writer_init(&w, buf, 23);
    s = fb_ttlv_begin(&w, 0x420078);
    fb_ttlv_put_bytes(&w, 0x420094, FB_TTLV_TEXT_STRING, (const uint8_t *)"hello", 5);
    fb_ttlv_end(&w, s);
    assert_int_equal(w.status, FB_ERR_TOO_LARGE);
    fb_ttlv_put_int32(&w, 0x42000D, FB_TTLV_INTEGER, 1);
    assert_int_equal(w.status, FB_ERR_TOO_LARGE);
    /* Wrong type for the call. */
    fb_ttlv_writer_init(&w, buf, 24);
    fb_ttlv_put_int32(&w, 0x42000D, FB_TTLV_LONG_INTEGER, 1);
    assert_int_equal(w.status, FB_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_lengths),
        cmocka_unit_test(test_reader_fixed_types),
        cmocka_unit_test(test_structure_children_bounded),
        cmocka_unit_test(test_writer_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
