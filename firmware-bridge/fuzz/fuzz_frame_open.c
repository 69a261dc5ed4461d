/* libFuzzer: frame open, through the device (header checks, in-flight and push rules) with the
 * real PSA backend (nothing should authenticate) and with the identity backend (everything
 * authenticates: the bytes reach the TTLV readers). */
#include <stdlib.h>
#include "fb/fb_crypto_psa.h"
#include "fuzz_common.h"

static const uint8_t key[32] = {1, 2, 3};
static const uint8_t id[] = "dev-1";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t frame[FB_MAX_FRAME + 64];
    static fb_crypto_psa psa_state;
    static fb_crypto psa;
    static int ready;
    mem_storage storage_state;
    fb_storage storage = {&storage_state, mem_read, mem_write};
    fb_device_config config;
    fb_device dev;
    fb_down down;
    fb_frame_header h;
    uint8_t *body;
    size_t body_len;
    size_t i;
    if (!ready) {
        if (fb_crypto_psa_import(&psa_state, &psa, FB_SUITE_AES_256_GCM, key, NULL, 0) != FB_OK) abort();
        ready = 1;
    }
    if (size < 1 || size > sizeof frame) return 0;
    memset(&storage_state, 0, sizeof storage_state);
    memset(&config, 0, sizeof config);
    config.device_id = id;
    config.device_id_len = sizeof id - 1u;
    config.suite = data[0] & 1u ? FB_SUITE_CHACHA20_POLY1305 : FB_SUITE_AES_256_GCM;
    config.crypto = data[0] & 2u ? &psa : &identity_crypto;
    config.storage = &storage;
    if (config.crypto == &psa) config.suite = FB_SUITE_AES_256_GCM;
    if (fb_device_init(&dev, &config) != FB_OK) abort();
    /* A few requests in flight, counters 1.. so that replies can match. */
    for (i = 0; i < 4; i++) dev.in_flight[i] = i + 1u;
    memcpy(frame, data + 1, size - 1);
    if (fb_device_receive(&dev, frame, size - 1, &down) == FB_OK) {
        if (down.body < frame || down.body + down.body_len > frame + size - 1) abort();
        exercise_readers(down.body, down.body_len);
    }
    /* The lower-level open, direction and suite as the first byte says. */
    memcpy(frame, data + 1, size - 1);
    if (fb_frame_open(config.crypto, config.suite, data[0] & 4u ? FB_DOWN : FB_UP, frame, size - 1, &h,
                      &body, &body_len) == FB_OK) {
        if (body_len + h.header_len + FB_TAG_BYTES != size - 1) abort();
        exercise_readers(body, body_len);
    }
    return 0;
}
