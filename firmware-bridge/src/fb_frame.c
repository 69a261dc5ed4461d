/* Frames (PROTOCOL.md §2): header checks, seal and open through the injected crypto. */
#include <string.h>
#include "fb/fb_frame.h"
#include "fb_internal.h"

fb_status fb_device_id_check(const uint8_t *id, size_t len)
{
    size_t i;
    if (id == NULL || len < 1u || len > FB_DEVICE_ID_MAX) {
        return FB_ERR_ARG;
    }
    for (i = 0; i < len; i++) {
        uint8_t c = id[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok) {
            return FB_ERR_ARG;
        }
    }
    return FB_OK;
}

/* §2: the nonce is direction (u32) then counter (u64), big-endian. */
static void nonce_of(fb_direction direction, uint64_t counter, uint8_t nonce[FB_NONCE_BYTES])
{
    fb_put_u32(nonce, direction == FB_DOWN ? 1u : 0u);
    fb_put_u64(nonce + 4, counter);
}

static size_t clamp_max(size_t max_frame)
{
    return (max_frame == 0u || max_frame > FB_MAX_FRAME) ? FB_MAX_FRAME : max_frame;
}

fb_status fb_frame_parse_header(const uint8_t *frame, size_t frame_len, size_t max_frame,
                                fb_frame_header *header)
{
    uint8_t flags;
    size_t id_len;
    size_t header_len;
    if (frame == NULL || header == NULL) {
        return FB_ERR_ARG;
    }
    /* Length first: nothing is read from a frame longer than the limit (§2). */
    if (frame_len > clamp_max(max_frame)) {
        return FB_ERR_TOO_LARGE;
    }
    if (frame_len < 4u) {
        return FB_ERR_MALFORMED;
    }
    if (frame[0] != FB_FRAME_VERSION) {
        return FB_ERR_VERSION;
    }
    if (frame[1] != FB_SUITE_AES_256_GCM && frame[1] != FB_SUITE_CHACHA20_POLY1305) {
        return FB_ERR_SUITE;
    }
    flags = frame[2];
    if ((flags & (uint8_t)~(FB_FLAG_REPLY | FB_FLAG_DOWN)) != 0u) {
        return FB_ERR_MALFORMED; /* bits 2-7 MUST be 0 */
    }
    id_len = frame[3];
    if (id_len < 1u || id_len > FB_DEVICE_ID_MAX) {
        return FB_ERR_MALFORMED;
    }
    header_len = FB_FRAME_HEADER_LEN(id_len, (flags & FB_FLAG_REPLY) != 0u);
    if (frame_len < header_len + FB_MIN_BODY + FB_TAG_BYTES) {
        return FB_ERR_MALFORMED;
    }
    if (fb_device_id_check(frame + 4, id_len) != FB_OK) {
        return FB_ERR_MALFORMED;
    }
    header->suite = frame[1];
    header->direction = (flags & FB_FLAG_DOWN) != 0u ? FB_DOWN : FB_UP;
    header->device_id = frame + 4;
    header->device_id_len = id_len;
    header->counter = fb_get_u64(frame + 4 + id_len);
    header->has_reply_to = (flags & FB_FLAG_REPLY) != 0u;
    header->reply_to = header->has_reply_to ? fb_get_u64(frame + 12 + id_len) : 0u;
    header->header_len = header_len;
    if (header->counter == 0u) {
        return FB_ERR_MALFORMED; /* counters start at 1 (§3) */
    }
    return FB_OK;
}

fb_status fb_frame_seal(const fb_crypto *crypto, fb_frame_header *header, const uint8_t *body,
                        size_t body_len, uint8_t *frame, size_t frame_size, size_t *frame_len)
{
    size_t header_len;
    size_t total;
    uint8_t nonce[FB_NONCE_BYTES];
    fb_status status;
    if (crypto == NULL || crypto->aead_seal == NULL || header == NULL || body == NULL ||
        frame == NULL || frame_len == NULL) {
        return FB_ERR_ARG;
    }
    *frame_len = 0;
    if ((header->suite != FB_SUITE_AES_256_GCM && header->suite != FB_SUITE_CHACHA20_POLY1305) ||
        fb_device_id_check(header->device_id, header->device_id_len) != FB_OK ||
        header->counter == 0u || (header->has_reply_to && header->reply_to == 0u) ||
        body_len < FB_MIN_BODY) {
        return FB_ERR_ARG;
    }
    header_len = FB_FRAME_HEADER_LEN(header->device_id_len, header->has_reply_to);
    if (body_len > FB_MAX_FRAME) {
        return FB_ERR_TOO_LARGE; /* also keeps the sum below from overflowing */
    }
    total = header_len + body_len + FB_TAG_BYTES;
    if (total > FB_MAX_FRAME || total > frame_size) {
        return FB_ERR_TOO_LARGE;
    }
    /* The body goes to its place first (memmove onto itself when built in place), then the header. */
    memmove(frame + header_len, body, body_len);
    frame[0] = FB_FRAME_VERSION;
    frame[1] = header->suite;
    frame[2] = (uint8_t)((header->has_reply_to ? FB_FLAG_REPLY : 0u) |
                         (header->direction == FB_DOWN ? FB_FLAG_DOWN : 0u));
    frame[3] = (uint8_t)header->device_id_len;
    memmove(frame + 4, header->device_id, header->device_id_len);
    fb_put_u64(frame + 4 + header->device_id_len, header->counter);
    if (header->has_reply_to) {
        fb_put_u64(frame + 12 + header->device_id_len, header->reply_to);
    }
    header->header_len = header_len;
    nonce_of(header->direction, header->counter, nonce);
    /* Additional data: every header byte (§2). Sealed in place. */
    status = crypto->aead_seal(crypto->ctx, header->suite, nonce, frame, header_len,
                               frame + header_len, body_len, frame + header_len,
                               frame_size - header_len);
    if (status != FB_OK) {
        fb_zeroize(frame, total); /* no plaintext left behind */
        return status == FB_ERR_TOO_LARGE ? status : FB_ERR_CRYPTO;
    }
    *frame_len = total;
    return FB_OK;
}

fb_status fb_frame_open_parsed(const fb_crypto *crypto, uint8_t *frame, size_t frame_len,
                               const fb_frame_header *header, uint8_t **body, size_t *body_len)
{
    uint8_t nonce[FB_NONCE_BYTES];
    size_t ct_len;
    fb_status status;
    if (crypto == NULL || crypto->aead_open == NULL || frame == NULL || header == NULL ||
        body == NULL || body_len == NULL) {
        return FB_ERR_ARG;
    }
    *body = NULL;
    *body_len = 0;
    /* The parsed header guarantees this; checked again because the caller passes both. */
    if (header->header_len + FB_MIN_BODY + FB_TAG_BYTES > frame_len || frame_len > FB_MAX_FRAME) {
        return FB_ERR_MALFORMED;
    }
    ct_len = frame_len - header->header_len;
    nonce_of(header->direction, header->counter, nonce);
    status = crypto->aead_open(crypto->ctx, header->suite, nonce, frame, header->header_len,
                               frame + header->header_len, ct_len, frame + header->header_len,
                               ct_len - FB_TAG_BYTES);
    if (status != FB_OK) {
        fb_zeroize(frame + header->header_len, ct_len);
        return status == FB_ERR_AUTH ? FB_ERR_AUTH : FB_ERR_CRYPTO;
    }
    *body = frame + header->header_len;
    *body_len = ct_len - FB_TAG_BYTES;
    return FB_OK;
}

fb_status fb_frame_open(const fb_crypto *crypto, uint8_t suite, fb_direction direction,
                        uint8_t *frame, size_t frame_len, fb_frame_header *header, uint8_t **body,
                        size_t *body_len)
{
    fb_status status = fb_frame_parse_header(frame, frame_len, FB_MAX_FRAME, header);
    if (status != FB_OK) {
        return status;
    }
    if (header->suite != suite) {
        return FB_ERR_SUITE;
    }
    if (header->direction != direction) {
        return FB_ERR_UNEXPECTED;
    }
    return fb_frame_open_parsed(crypto, frame, frame_len, header, body, body_len);
}
