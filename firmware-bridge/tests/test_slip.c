/* SLIP + CRC-32 (PROTOCOL.md §6): check value, noise before the first END, resync after a bad
 * CRC / bad escape / oversize packet, the size limit at the limit and one over, chunked writes. */
#include "test_support.h"

static void test_crc32_check_value(void **state)
{
    (void)state;
    /* CRC-32/ISO-HDLC check value (the CRC catalogue; zlib's crc32). */
    assert_int_equal(fb_crc32(0, (const uint8_t *)"123456789", 9), 0xCBF43926u);
    assert_int_equal(fb_crc32(fb_crc32(0, (const uint8_t *)"1234", 4), (const uint8_t *)"56789", 5), 0xCBF43926u);
}

/* Feeds all of `in` and collects the statuses of the events and the last frame. */
typedef struct feed_result {
    int frames;
    int dropped;
    uint8_t last[FB_SLIP_BUFFER_SIZE];
    size_t last_len;
} feed_result;

static void feed(fb_slip_decoder *d, const uint8_t *in, size_t len, feed_result *r)
{
    size_t pos = 0;
    for (;;) {
        size_t used;
        uint8_t *frame;
        size_t frame_len;
        fb_status st = fb_slip_decode(d, in + pos, len - pos, &used, &frame, &frame_len);
        pos += used;
        if (st == FB_AGAIN) {
            assert_int_equal(pos, len);
            return;
        }
        if (st == FB_OK) {
            r->frames++;
            memcpy(r->last, frame, frame_len);
            r->last_len = frame_len;
        } else {
            r->dropped++;
        }
    }
}

static void test_noise_then_frames(void **state)
{
    uint8_t buffer[FB_SLIP_BUFFER_SIZE];
    static uint8_t packet[FB_SLIP_MAX_ENCODED(64)];
    uint8_t stream[600];
    uint8_t frame[64];
    size_t plen;
    size_t n = 0;
    fb_slip_decoder d;
    feed_result r;
    size_t i;
    (void)state;
    for (i = 0; i < sizeof frame; i++) frame[i] = (uint8_t)(i * 37u); /* includes 0xC0 and 0xDB */
    frame[3] = FB_SLIP_END;
    frame[4] = FB_SLIP_ESC;
    assert_int_equal(fb_slip_encode(frame, sizeof frame, packet, sizeof packet, &plen), FB_OK);
    /* Noise without END is discarded (a receiver starts mid-packet). */
    for (i = 0; i < 50; i++) stream[n++] = (uint8_t)(0x11u + i);
    memcpy(stream + n, packet, plen);
    n += plen;
    /* A packet with its CRC broken, then the good one again. */
    memcpy(stream + n, packet, plen);
    stream[n + 10] ^= 0x01u;
    n += plen;
    memcpy(stream + n, packet, plen);
    n += plen;
    memset(&r, 0, sizeof r);
    assert_int_equal(fb_slip_decoder_init(&d, buffer, sizeof buffer), FB_OK);
    feed(&d, stream, n, &r);
    assert_int_equal(r.frames, 2);
    assert_int_equal(r.dropped, 1);
    assert_int_equal(d.stats.crc_errors, 1);
    assert_int_equal(r.last_len, sizeof frame);
    assert_memory_equal(r.last, frame, sizeof frame);
}

static void test_bad_escape_resyncs(void **state)
{
    uint8_t buffer[64];
    static const uint8_t good[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
    uint8_t packet[FB_SLIP_MAX_ENCODED(8)];
    uint8_t stream[64];
    size_t plen;
    size_t n = 0;
    fb_slip_decoder d;
    feed_result r;
    (void)state;
    assert_int_equal(fb_slip_encode(good, sizeof good, packet, sizeof packet, &plen), FB_OK);
    stream[n++] = FB_SLIP_END;
    stream[n++] = 0x41;
    stream[n++] = FB_SLIP_ESC;
    stream[n++] = 0x42; /* neither ESC_END nor ESC_ESC */
    stream[n++] = 0x43; /* discarded up to the next END */
    memcpy(stream + n, packet, plen);
    n += plen;
    memset(&r, 0, sizeof r);
    assert_int_equal(fb_slip_decoder_init(&d, buffer, sizeof buffer), FB_OK);
    feed(&d, stream, n, &r);
    assert_int_equal(r.frames, 1);
    assert_int_equal(d.stats.bad_escapes, 1);
    assert_memory_equal(r.last, good, sizeof good);
}

static void test_size_limit(void **state)
{
    /* The buffer holds FB_MAX_FRAME + 4: a 4096-byte frame passes, one byte more is dropped. */
    static uint8_t buffer[FB_SLIP_BUFFER_SIZE];
    static uint8_t frame[FB_MAX_FRAME + 1];
    static uint8_t packet[FB_SLIP_MAX_ENCODED(FB_MAX_FRAME + 1)];
    static feed_result r;
    fb_slip_decoder d;
    size_t plen = 0;
    size_t i;
    uint32_t crc;
    (void)state;
    for (i = 0; i < sizeof frame; i++) frame[i] = (uint8_t)i;
    assert_int_equal(fb_slip_encode(frame, FB_MAX_FRAME, packet, sizeof packet, &plen), FB_OK);
    memset(&r, 0, sizeof r);
    assert_int_equal(fb_slip_decoder_init(&d, buffer, sizeof buffer), FB_OK);
    feed(&d, packet, plen, &r);
    assert_int_equal(r.frames, 1);
    assert_int_equal(r.last_len, FB_MAX_FRAME);
    /* The encoder refuses a frame over the limit; build that packet by hand. */
    assert_int_equal(fb_slip_encode(frame, FB_MAX_FRAME + 1u, packet, sizeof packet, &plen), FB_ERR_ARG);
    plen = 0;
    packet[plen++] = FB_SLIP_END;
    crc = fb_crc32(0, frame, sizeof frame);
    for (i = 0; i < sizeof frame + 4u; i++) {
        uint8_t b = (uint8_t)(i < sizeof frame ? frame[i] : (crc >> (8u * (3u - (i - sizeof frame)))));
        if (b == FB_SLIP_END) { packet[plen++] = FB_SLIP_ESC; packet[plen++] = FB_SLIP_ESC_END; }
        else if (b == FB_SLIP_ESC) { packet[plen++] = FB_SLIP_ESC; packet[plen++] = FB_SLIP_ESC_ESC; }
        else packet[plen++] = b;
    }
    packet[plen++] = FB_SLIP_END;
    memset(&r, 0, sizeof r);
    feed(&d, packet, plen, &r);
    assert_int_equal(r.frames, 0);
    assert_int_equal(d.stats.oversize, 1);
    /* And the decoder is back in sync for the next packet. */
    assert_int_equal(fb_slip_encode(frame, 100, packet, sizeof packet, &plen), FB_OK);
    feed(&d, packet, plen, &r);
    assert_int_equal(r.frames, 1);
    assert_int_equal(r.last_len, 100);
}

static void test_short_packets_dropped(void **state)
{
    uint8_t buffer[32];
    static const uint8_t stream[] = {FB_SLIP_END, 1, 2, 3, 4, FB_SLIP_END, FB_SLIP_END, FB_SLIP_END};
    fb_slip_decoder d;
    feed_result r;
    (void)state;
    memset(&r, 0, sizeof r);
    assert_int_equal(fb_slip_decoder_init(&d, buffer, sizeof buffer), FB_OK);
    feed(&d, stream, sizeof stream, &r);
    assert_int_equal(r.frames, 0);
    assert_int_equal(d.stats.crc_errors, 1); /* 4 bytes cannot hold a frame and a CRC; empty packets are no packets */
    assert_int_equal(fb_slip_decoder_init(&d, buffer, 4), FB_ERR_ARG);
    assert_int_equal(fb_slip_decoder_init(&d, buffer, FB_SLIP_BUFFER_SIZE + 1u), FB_ERR_ARG);
}

typedef struct sink {
    uint8_t data[FB_SLIP_MAX_ENCODED(300)];
    size_t len;
    int calls;
    int fail_at;
} sink;

static fb_status sink_put(void *ctx, const uint8_t *bytes, size_t len)
{
    sink *s = (sink *)ctx;
    s->calls++;
    if (s->fail_at != 0 && s->calls == s->fail_at) return FB_ERR_STORAGE;
    memcpy(s->data + s->len, bytes, len);
    s->len += len;
    return FB_OK;
}

static void test_streaming_write_equals_encode(void **state)
{
    uint8_t frame[300];
    static uint8_t packet[FB_SLIP_MAX_ENCODED(300)];
    static sink s;
    size_t plen;
    size_t i;
    (void)state;
    for (i = 0; i < sizeof frame; i++) frame[i] = (uint8_t)(0xC0u + i % 28u);
    assert_int_equal(fb_slip_encode(frame, sizeof frame, packet, sizeof packet, &plen), FB_OK);
    memset(&s, 0, sizeof s);
    assert_int_equal(fb_slip_write(frame, sizeof frame, sink_put, &s), FB_OK);
    assert_int_equal(s.len, plen);
    assert_memory_equal(s.data, packet, plen);
    assert_true(s.calls > 1);
    /* A sink error stops the write and is returned. */
    memset(&s, 0, sizeof s);
    s.fail_at = 2;
    assert_int_equal(fb_slip_write(frame, sizeof frame, sink_put, &s), FB_ERR_STORAGE);
    assert_int_equal(s.calls, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32_check_value),
        cmocka_unit_test(test_noise_then_frames),
        cmocka_unit_test(test_bad_escape_resyncs),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_short_packets_dropped),
        cmocka_unit_test(test_streaming_write_equals_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
