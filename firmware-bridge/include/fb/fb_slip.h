/**
 * @file fb_slip.h
 * Serial framing (PROTOCOL.md §6): END | slip(frame | crc32 big-endian) | END, RFC 1055 escapes,
 * CRC-32/ISO-HDLC. The decoder is incremental (feed any chunk), bounded by the caller's buffer,
 * drops bad packets and resynchronizes on the next END.
 */
#ifndef FB_SLIP_H
#define FB_SLIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "fb_config.h"
#include "fb_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FB_SLIP_END 0xC0u
#define FB_SLIP_ESC 0xDBu
#define FB_SLIP_ESC_END 0xDCu
#define FB_SLIP_ESC_ESC 0xDDu
/** Worst-case packet size for a frame of n bytes: every byte escaped, plus two ENDs. */
#define FB_SLIP_MAX_ENCODED(n) (2u * ((size_t)(n) + 4u) + 2u)
/** Decoder buffer that holds the largest frame and its CRC. */
#define FB_SLIP_BUFFER_SIZE (FB_MAX_FRAME + 4u)

/** CRC-32/ISO-HDLC (zlib's crc32) of `len` bytes, continuing from `crc` (0 to start). */
uint32_t fb_crc32(uint32_t crc, const uint8_t *data, size_t len);

/** Encodes `frame` as one packet into `out` (out_size bytes); FB_ERR_TOO_LARGE if it does not fit. */
fb_status fb_slip_encode(const uint8_t *frame, size_t frame_len, uint8_t *out, size_t out_size,
                         size_t *out_len);

/** Byte sink for fb_slip_write: returns FB_OK or an error that stops the write. */
typedef fb_status (*fb_slip_put_fn)(void *ctx, const uint8_t *bytes, size_t len);

/** Encodes `frame` as one packet straight to `put` (in small chunks: no packet buffer needed). */
fb_status fb_slip_write(const uint8_t *frame, size_t frame_len, fb_slip_put_fn put, void *ctx);

typedef struct fb_slip_stats {
    uint32_t frames;      /**< packets delivered */
    uint32_t crc_errors;  /**< dropped: CRC mismatch or shorter than a CRC */
    uint32_t oversize;    /**< dropped: longer than the buffer */
    uint32_t bad_escapes; /**< dropped: ESC followed by neither ESC_END nor ESC_ESC */
} fb_slip_stats;

/** Decoder state; all memory is the caller's (`buffer`). */
typedef struct fb_slip_decoder {
    uint8_t *buffer;
    size_t size;
    size_t len;
    bool escaped;
    bool discarding; /**< true until the first END, and after a bad packet until the next END */
    bool delivered;  /**< the last call returned a frame in `buffer`: reset on the next call */
    fb_slip_stats stats;
} fb_slip_decoder;

/**
 * Starts a decoder on `buffer` of `size` bytes (5 .. FB_SLIP_BUFFER_SIZE; packets that decode to
 * more are dropped). Bytes before the first END are discarded (§6).
 */
fb_status fb_slip_decoder_init(fb_slip_decoder *decoder, uint8_t *buffer, size_t size);

/**
 * Feeds `in` (in_len bytes). Returns after at most one event, with *consumed the bytes used:
 * - FB_OK: a packet completed with a good CRC; *frame / *frame_len is the frame (CRC removed),
 *   in the decoder's buffer, valid (and writable, to open in place) until the next call;
 * - FB_ERR_CRC, FB_ERR_TOO_LARGE, FB_ERR_MALFORMED (bad escape): a packet was dropped;
 * - FB_AGAIN: all input consumed, no packet complete yet.
 * Call again with in + *consumed until FB_AGAIN.
 */
fb_status fb_slip_decode(fb_slip_decoder *decoder, const uint8_t *in, size_t in_len,
                         size_t *consumed, uint8_t **frame, size_t *frame_len);

#ifdef __cplusplus
}
#endif
#endif /* FB_SLIP_H */
