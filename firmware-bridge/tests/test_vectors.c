/* The shared vectors (vectors/frames.json, via tests/vectors.h) in C: every frame sealed to
 * the same bytes (in place and from a separate body), opened to the same body, every single-bit
 * flip refused; every SLIP packet encoded and decoded to the same bytes. Both suites. */
#include "test_support.h"
#include "vectors.h"

static fb_crypto_psa psa_state[3];
static fb_crypto crypto_of[3]; /* by suite */

static int setup(void **state)
{
    (void)state;
    if (fb_crypto_psa_import(&psa_state[1], &crypto_of[1], FB_SUITE_AES_256_GCM, vector_key, NULL, 0) != FB_OK) return -1;
    if (fb_crypto_psa_import(&psa_state[2], &crypto_of[2], FB_SUITE_CHACHA20_POLY1305, vector_key, NULL, 0) != FB_OK) return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fb_crypto_psa_free(&psa_state[1]);
    fb_crypto_psa_free(&psa_state[2]);
    return 0;
}

static fb_frame_header header_of(const fb_vector *v)
{
    fb_frame_header h;
    memset(&h, 0, sizeof h);
    h.suite = v->suite;
    h.direction = v->down ? FB_DOWN : FB_UP;
    h.device_id = (const uint8_t *)v->device_id;
    h.device_id_len = strlen(v->device_id);
    h.counter = v->counter;
    h.has_reply_to = v->has_reply_to != 0;
    h.reply_to = v->reply_to;
    return h;
}

static void test_seal_matches(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < VECTOR_COUNT; i++) {
        const fb_vector *v = &vectors[i];
        uint8_t frame[FB_MAX_FRAME];
        size_t len = 0;
        fb_frame_header h = header_of(v);
        /* From a separate body buffer. */
        assert_int_equal(fb_frame_seal(&crypto_of[v->suite], &h, v->body, v->body_len, frame, sizeof frame, &len), FB_OK);
        assert_int_equal(len, v->frame_len);
        assert_memory_equal(frame, v->frame, len);
        /* In place: the body already where the ciphertext goes. */
        memset(frame, 0xEE, sizeof frame);
        h = header_of(v);
        memcpy(frame + FB_FRAME_HEADER_LEN(h.device_id_len, h.has_reply_to), v->body, v->body_len);
        assert_int_equal(fb_frame_seal(&crypto_of[v->suite], &h, frame + FB_FRAME_HEADER_LEN(h.device_id_len, h.has_reply_to),
                                       v->body_len, frame, sizeof frame, &len), FB_OK);
        assert_memory_equal(frame, v->frame, v->frame_len);
        /* One byte short of room: refused, nothing left. */
        h = header_of(v);
        assert_int_equal(fb_frame_seal(&crypto_of[v->suite], &h, v->body, v->body_len, frame, v->frame_len - 1u, &len), FB_ERR_TOO_LARGE);
        assert_int_equal(len, 0);
    }
}

static void test_open_matches(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < VECTOR_COUNT; i++) {
        const fb_vector *v = &vectors[i];
        uint8_t frame[FB_MAX_FRAME];
        fb_frame_header h;
        uint8_t *body;
        size_t body_len;
        memcpy(frame, v->frame, v->frame_len);
        assert_int_equal(fb_frame_open(&crypto_of[v->suite], v->suite, v->down ? FB_DOWN : FB_UP, frame, v->frame_len, &h, &body, &body_len), FB_OK);
        assert_int_equal(body_len, v->body_len);
        assert_memory_equal(body, v->body, body_len);
        assert_int_equal(h.counter, v->counter);
        assert_int_equal(h.has_reply_to, v->has_reply_to);
        assert_int_equal(h.reply_to, v->reply_to);
        assert_int_equal(h.device_id_len, strlen(v->device_id));
        assert_memory_equal(h.device_id, v->device_id, h.device_id_len);
        /* The other suite's key type and the other direction are refused before any crypto. */
        memcpy(frame, v->frame, v->frame_len);
        assert_int_equal(fb_frame_open(&crypto_of[v->suite], (uint8_t)(3u - v->suite), v->down ? FB_DOWN : FB_UP, frame, v->frame_len, &h, &body, &body_len), FB_ERR_SUITE);
        assert_int_equal(fb_frame_open(&crypto_of[v->suite], v->suite, v->down ? FB_UP : FB_DOWN, frame, v->frame_len, &h, &body, &body_len), FB_ERR_UNEXPECTED);
    }
}

static void test_every_bit_flip_refused(void **state)
{
    size_t i;
    size_t flips = 0;
    size_t expected = 0;
    (void)state;
    for (i = 0; i < VECTOR_COUNT; i++) {
        const fb_vector *v = &vectors[i];
        size_t byte;
        expected += v->frame_len * 8u;
        for (byte = 0; byte < v->frame_len; byte++) {
            int bit;
            for (bit = 0; bit < 8; bit++) {
                uint8_t frame[FB_MAX_FRAME];
                fb_frame_header h;
                uint8_t *body = NULL;
                size_t body_len = 0;
                fb_status st;
                memcpy(frame, v->frame, v->frame_len);
                frame[byte] ^= (uint8_t)(1u << bit);
                st = fb_frame_open(&crypto_of[v->suite], v->suite, v->down ? FB_DOWN : FB_UP, frame, v->frame_len, &h, &body, &body_len);
                if (st == FB_OK) {
                    fail_msg("vector %zu: flipping bit %d of byte %zu was accepted", i, bit, byte);
                }
                assert_null(body);
                assert_int_equal(body_len, 0);
                if (st == FB_ERR_AUTH) {
                    /* The failed ciphertext region is zeroized: no unauthenticated plaintext. */
                    size_t k;
                    for (k = h.header_len; k < v->frame_len; k++) assert_int_equal(frame[k], 0);
                }
                flips++;
            }
        }
        /* Truncated by one byte, and one byte longer: refused. */
        {
            uint8_t frame[FB_MAX_FRAME];
            fb_frame_header h;
            uint8_t *body;
            size_t body_len;
            memcpy(frame, v->frame, v->frame_len);
            assert_int_not_equal(fb_frame_open(&crypto_of[v->suite], v->suite, v->down ? FB_DOWN : FB_UP, frame, v->frame_len - 1u, &h, &body, &body_len), FB_OK);
            memcpy(frame, v->frame, v->frame_len);
            frame[v->frame_len] = 0;
            assert_int_not_equal(fb_frame_open(&crypto_of[v->suite], v->suite, v->down ? FB_DOWN : FB_UP, frame, v->frame_len + 1u, &h, &body, &body_len), FB_OK);
        }
    }
    assert_int_equal(flips, expected); /* every bit of every vector frame */
    assert_true(flips > 4000u);
}

static void test_slip_matches(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < VECTOR_COUNT; i++) {
        const fb_vector *v = &vectors[i];
        static uint8_t out[FB_SLIP_MAX_ENCODED(FB_MAX_FRAME)];
        uint8_t buffer[FB_SLIP_BUFFER_SIZE];
        fb_slip_decoder d;
        size_t len;
        size_t used;
        uint8_t *frame;
        size_t frame_len;
        size_t split;
        assert_int_equal(fb_slip_encode(v->frame, v->frame_len, out, sizeof out, &len), FB_OK);
        assert_int_equal(len, v->slip_len);
        assert_memory_equal(out, v->slip, len);
        assert_int_equal(fb_slip_encode(v->frame, v->frame_len, out, v->slip_len - 1u, &len), FB_ERR_TOO_LARGE);
        /* Decoded whole, and split at every byte. */
        for (split = 0; split <= v->slip_len; split++) {
            fb_status st;
            assert_int_equal(fb_slip_decoder_init(&d, buffer, sizeof buffer), FB_OK);
            st = fb_slip_decode(&d, v->slip, split, &used, &frame, &frame_len);
            if (st == FB_AGAIN) {
                assert_int_equal(used, split);
                st = fb_slip_decode(&d, v->slip + split, v->slip_len - split, &used, &frame, &frame_len);
                assert_int_equal(used, v->slip_len - split);
            } else {
                assert_int_equal(split, v->slip_len);
            }
            assert_int_equal(st, FB_OK);
            assert_int_equal(frame_len, v->frame_len);
            assert_memory_equal(frame, v->frame, frame_len);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_matches),
        cmocka_unit_test(test_open_matches),
        cmocka_unit_test(test_every_bit_flip_refused),
        cmocka_unit_test(test_slip_matches),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
