/* libFuzzer: the incremental SLIP decoder, fed in chunks the input chooses; every frame it
 * delivers must carry a good CRC and round-trip through the encoder. */
#include <stdlib.h>
#include <string.h>
#include "fb/fb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buffer[FB_SLIP_BUFFER_SIZE];
    static uint8_t encoded[FB_SLIP_MAX_ENCODED(FB_MAX_FRAME)];
    static uint8_t again[FB_SLIP_BUFFER_SIZE];
    fb_slip_decoder d;
    size_t pos = 1;
    size_t buffer_size;
    if (size < 2) return 0;
    /* A small buffer now and then, to reach the oversize path cheaply. */
    buffer_size = (data[0] & 1u) ? 5u + (size_t)(data[0] >> 1) : sizeof buffer;
    if (fb_slip_decoder_init(&d, buffer, buffer_size) != FB_OK) abort();
    while (pos < size) {
        size_t chunk = 1u + (size_t)(data[pos - 1] % 64u);
        size_t used;
        uint8_t *frame;
        size_t frame_len;
        fb_status st;
        if (chunk > size - pos) chunk = size - pos;
        st = fb_slip_decode(&d, data + pos, chunk, &used, &frame, &frame_len);
        if (used > chunk) abort();
        if (st == FB_AGAIN && used != chunk) abort();
        if (st == FB_OK) {
            size_t enc_len;
            fb_slip_decoder d2;
            size_t used2;
            uint8_t *f2;
            size_t f2_len;
            if (frame_len + 4u > buffer_size || frame != buffer) abort();
            if (frame_len <= FB_MAX_FRAME) {
                if (fb_slip_encode(frame, frame_len, encoded, sizeof encoded, &enc_len) != FB_OK) abort();
                if (fb_slip_decoder_init(&d2, again, sizeof again) != FB_OK) abort();
                if (fb_slip_decode(&d2, encoded, enc_len, &used2, &f2, &f2_len) != FB_OK) abort();
                if (f2_len != frame_len || memcmp(f2, frame, frame_len) != 0) abort();
            }
        }
        pos += used == 0u ? chunk : used;
    }
    return 0;
}
