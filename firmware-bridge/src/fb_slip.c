/* Serial framing (PROTOCOL.md §6): SLIP (RFC 1055) around frame | CRC-32, and its decoder. */
#include "fb/fb_slip.h"
#include "fb_internal.h"

/* CRC-32/ISO-HDLC, reflected polynomial 0xEDB88320, one bit at a time: no table at all (flash
 * matters more than speed at serial rates: 8 shifts per byte). */
uint32_t fb_crc32(uint32_t crc, const uint8_t *data, size_t len)
{
    size_t i;
    unsigned bit;
    crc = ~crc;
    for (i = 0; i < len; i++) {
        crc ^= data[i];
        for (bit = 0; bit < 8u; bit++) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

/* Escapes `in` into `chunk` one byte at a time, flushing to `put` when full. */
typedef struct slip_out {
    fb_slip_put_fn put;
    void *ctx;
    uint8_t chunk[32];
    size_t len;
    fb_status status;
} slip_out;

static void out_byte(slip_out *out, uint8_t b)
{
    if (out->status != FB_OK) {
        return;
    }
    if (out->len == sizeof out->chunk) {
        out->status = out->put(out->ctx, out->chunk, out->len);
        out->len = 0;
        if (out->status != FB_OK) {
            return;
        }
    }
    out->chunk[out->len++] = b;
}

static void out_escaped(slip_out *out, const uint8_t *data, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) {
        if (data[i] == FB_SLIP_END) {
            out_byte(out, FB_SLIP_ESC);
            out_byte(out, FB_SLIP_ESC_END);
        } else if (data[i] == FB_SLIP_ESC) {
            out_byte(out, FB_SLIP_ESC);
            out_byte(out, FB_SLIP_ESC_ESC);
        } else {
            out_byte(out, data[i]);
        }
    }
}

fb_status fb_slip_write(const uint8_t *frame, size_t frame_len, fb_slip_put_fn put, void *ctx)
{
    slip_out out;
    uint8_t crc[4];
    if (frame == NULL || put == NULL || frame_len == 0u || frame_len > FB_MAX_FRAME) {
        return FB_ERR_ARG;
    }
    out.put = put;
    out.ctx = ctx;
    out.len = 0;
    out.status = FB_OK;
    fb_put_u32(crc, fb_crc32(0u, frame, frame_len));
    out_byte(&out, FB_SLIP_END);
    out_escaped(&out, frame, frame_len);
    out_escaped(&out, crc, sizeof crc);
    out_byte(&out, FB_SLIP_END);
    if (out.status == FB_OK && out.len > 0u) {
        out.status = put(ctx, out.chunk, out.len);
    }
    return out.status;
}

typedef struct slip_buffer {
    uint8_t *buf;
    size_t size;
    size_t len;
} slip_buffer;

static fb_status buffer_put(void *ctx, const uint8_t *bytes, size_t len)
{
    slip_buffer *b = (slip_buffer *)ctx;
    size_t i;
    if (len > b->size - b->len) {
        return FB_ERR_TOO_LARGE;
    }
    for (i = 0; i < len; i++) {
        b->buf[b->len++] = bytes[i];
    }
    return FB_OK;
}

fb_status fb_slip_encode(const uint8_t *frame, size_t frame_len, uint8_t *out, size_t out_size,
                         size_t *out_len)
{
    slip_buffer b;
    fb_status status;
    if (out == NULL || out_len == NULL) {
        return FB_ERR_ARG;
    }
    *out_len = 0;
    b.buf = out;
    b.size = out_size;
    b.len = 0;
    status = fb_slip_write(frame, frame_len, buffer_put, &b);
    if (status == FB_OK) {
        *out_len = b.len;
    }
    return status;
}

fb_status fb_slip_decoder_init(fb_slip_decoder *decoder, uint8_t *buffer, size_t size)
{
    if (decoder == NULL || buffer == NULL || size < 5u || size > FB_SLIP_BUFFER_SIZE) {
        return FB_ERR_ARG;
    }
    decoder->buffer = buffer;
    decoder->size = size;
    decoder->len = 0;
    decoder->escaped = false;
    decoder->discarding = true; /* §6: discard bytes until an END */
    decoder->delivered = false;
    decoder->stats.frames = 0;
    decoder->stats.crc_errors = 0;
    decoder->stats.oversize = 0;
    decoder->stats.bad_escapes = 0;
    return FB_OK;
}

/* A packet ended: its CRC decides. */
static fb_status finish(fb_slip_decoder *d, uint8_t **frame, size_t *frame_len)
{
    size_t n = d->len;
    if (n < 5u) {
        d->stats.crc_errors++;
        return FB_ERR_CRC;
    }
    if (fb_get_u32(d->buffer + n - 4u) != fb_crc32(0u, d->buffer, n - 4u)) {
        d->stats.crc_errors++;
        return FB_ERR_CRC;
    }
    d->stats.frames++;
    d->delivered = true;
    *frame = d->buffer;
    *frame_len = n - 4u;
    return FB_OK;
}

fb_status fb_slip_decode(fb_slip_decoder *decoder, const uint8_t *in, size_t in_len,
                         size_t *consumed, uint8_t **frame, size_t *frame_len)
{
    size_t i;
    fb_status status = FB_AGAIN;
    if (decoder == NULL || decoder->buffer == NULL || (in == NULL && in_len > 0u) ||
        consumed == NULL || frame == NULL || frame_len == NULL) {
        return FB_ERR_ARG;
    }
    *frame = NULL;
    *frame_len = 0;
    if (decoder->delivered) {
        /* The frame handed out last time is the caller's no longer: start the next packet. */
        decoder->delivered = false;
        decoder->len = 0;
    }
    for (i = 0; i < in_len && status == FB_AGAIN; i++) {
        uint8_t b = in[i];
        if (b == FB_SLIP_END) {
            bool had_packet = !decoder->discarding && decoder->len > 0u;
            decoder->escaped = false;
            decoder->discarding = false;
            if (had_packet) {
                status = finish(decoder, frame, frame_len);
                if (status == FB_OK) {
                    continue;
                }
            }
            decoder->len = 0; /* an empty packet, or a bad CRC: dropped */
            continue;
        }
        if (decoder->discarding) {
            continue;
        }
        if (decoder->escaped) {
            decoder->escaped = false;
            if (b == FB_SLIP_ESC_END) {
                b = FB_SLIP_END;
            } else if (b == FB_SLIP_ESC_ESC) {
                b = FB_SLIP_ESC;
            } else {
                decoder->stats.bad_escapes++;
                status = FB_ERR_MALFORMED;
            }
        } else if (b == FB_SLIP_ESC) {
            decoder->escaped = true;
            continue;
        }
        if (status == FB_AGAIN && decoder->len == decoder->size) {
            /* Longer than the largest packet (§6): drop it, up to the next END. */
            decoder->stats.oversize++;
            status = FB_ERR_TOO_LARGE;
        }
        if (status != FB_AGAIN) {
            decoder->discarding = true;
            decoder->len = 0;
        } else {
            decoder->buffer[decoder->len++] = b;
        }
    }
    /* After at most one event: the bytes up to it, or all of them. */
    *consumed = i;
    return status;
}
