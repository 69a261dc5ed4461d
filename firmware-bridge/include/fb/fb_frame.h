/**
 * @file fb_frame.h
 * Frames (PROTOCOL.md §2): the header, seal and open. Everything about a frame's shape is
 * checked before any cryptography; the tag is verified (by the backend, in constant time) before
 * any plaintext is returned, and the plaintext is zeroized when it does not verify.
 */
#ifndef FB_FRAME_H
#define FB_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "fb_config.h"
#include "fb_crypto.h"
#include "fb_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FB_FRAME_VERSION 1u
#define FB_FLAG_REPLY 0x01u
#define FB_FLAG_DOWN 0x02u
#define FB_DEVICE_ID_MAX 64u
/** Smallest ciphertext (§2: n >= 8, a TTLV item header). */
#define FB_MIN_BODY 8u
/** Header bytes of a frame: 12 + id + 8 with reply_to. */
#define FB_FRAME_HEADER_LEN(id_len, reply) (12u + (size_t)(id_len) + ((reply) ? 8u : 0u))
/** Bytes a frame with a body of `body_len` needs: header, body and tag. */
#define FB_FRAME_LEN(id_len, reply, body_len) (FB_FRAME_HEADER_LEN(id_len, reply) + (size_t)(body_len) + FB_TAG_BYTES)

typedef enum fb_direction { FB_UP = 0, FB_DOWN = 1 } fb_direction;

/** A frame's header. On parse, `device_id` points into the frame. */
typedef struct fb_frame_header {
    uint8_t suite;
    fb_direction direction;
    const uint8_t *device_id; /**< id_len bytes of [A-Za-z0-9._-] */
    size_t device_id_len;     /**< 1..64 */
    uint64_t counter;         /**< 1 .. 2^64-1 */
    bool has_reply_to;
    uint64_t reply_to;        /**< valid when has_reply_to */
    size_t header_len;        /**< set by parse and seal: where the ciphertext starts */
} fb_frame_header;

/** FB_OK when `id` (len bytes) is a valid device id (§1): 1-64 of [A-Za-z0-9._-]. */
fb_status fb_device_id_check(const uint8_t *id, size_t len);

/**
 * Reads and checks a frame's header, without cryptography: length (<= max_frame, which is at
 * most FB_MAX_FRAME; enough for header, 8 bytes of body and the tag), version, suite value,
 * reserved flag bits, id length and characters, counter != 0.
 * FB_ERR_TOO_LARGE, FB_ERR_MALFORMED, FB_ERR_VERSION or FB_ERR_SUITE otherwise.
 */
fb_status fb_frame_parse_header(const uint8_t *frame, size_t frame_len, size_t max_frame,
                                fb_frame_header *header);

/**
 * Seals `body` (body_len bytes, one TTLV message, >= 8) into `frame` (frame_size bytes) under
 * `header` (suite, direction, device id, counter, optional reply_to; header_len is set here).
 * `body` may be exactly frame + FB_FRAME_HEADER_LEN(...) (built in place) or any buffer not
 * overlapping `frame`. Writes *frame_len. FB_ERR_TOO_LARGE when the frame exceeds frame_size or
 * FB_MAX_FRAME; FB_ERR_ARG for a bad header. On error nothing usable is left in `frame`.
 * The caller guarantees the counter was stored durably first (fb_device does that).
 */
fb_status fb_frame_seal(const fb_crypto *crypto, fb_frame_header *header, const uint8_t *body,
                        size_t body_len, uint8_t *frame, size_t frame_size, size_t *frame_len);

/**
 * Opens a frame whose header `header` was parsed (fb_frame_parse_header) and checked by the
 * caller, in place: on FB_OK the body is at *body (inside `frame`), *body_len bytes. On
 * FB_ERR_AUTH the ciphertext region of `frame` is zeroized.
 */
fb_status fb_frame_open_parsed(const fb_crypto *crypto, uint8_t *frame, size_t frame_len,
                               const fb_frame_header *header, uint8_t **body, size_t *body_len);

/**
 * Parses and opens in one call, checking before any crypto that the suite is `suite` and the
 * direction `direction` (FB_ERR_SUITE / FB_ERR_UNEXPECTED otherwise). In place, as above.
 */
fb_status fb_frame_open(const fb_crypto *crypto, uint8_t suite, fb_direction direction,
                        uint8_t *frame, size_t frame_len, fb_frame_header *header, uint8_t **body,
                        size_t *body_len);

#ifdef __cplusplus
}
#endif
#endif /* FB_FRAME_H */
