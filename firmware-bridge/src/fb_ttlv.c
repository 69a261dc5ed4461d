/* TTLV writer and reader (KMIP 1.2 §9.1): bounded, non-recursive, every length checked. */
#include <string.h>
#include "fb/fb_ttlv.h"
#include "fb_internal.h"

/* Fixed value lengths (§9.1.1.4) by type, 0 for the variable-length types: a table, smaller
 * than a switch on a microcontroller. */
static const uint8_t fixed_lens[FB_TTLV_INTERVAL + 1] = {0, 0, 4, 8, 0, 4, 8, 0, 0, 8, 4};

static size_t fixed_len(uint8_t type)
{
    return type <= FB_TTLV_INTERVAL ? fixed_lens[type] : 0u;
}

void fb_ttlv_reader_init(fb_ttlv_reader *reader, const uint8_t *data, size_t len)
{
    reader->data = data;
    reader->len = data == NULL ? 0u : len;
    reader->pos = 0;
}

fb_status fb_ttlv_next(fb_ttlv_reader *reader, fb_ttlv_item *item)
{
    const uint8_t *p;
    size_t left;
    size_t len;
    size_t padded;
    uint8_t type;
    if (reader == NULL || item == NULL) {
        return FB_ERR_ARG;
    }
    if (reader->pos >= reader->len) {
        return FB_ERR_NOT_FOUND;
    }
    left = reader->len - reader->pos;
    if (left < 8u) {
        return FB_ERR_MALFORMED;
    }
    p = reader->data + reader->pos;
    type = p[3];
    if (type < FB_TTLV_STRUCTURE || type > FB_TTLV_INTERVAL) {
        return FB_ERR_MALFORMED;
    }
    len = fb_get_u32(p + 4);
    if (len > left - 8u) {
        return FB_ERR_MALFORMED; /* checked before any use of the length */
    }
    if (fixed_len(type) != 0u && len != fixed_len(type)) {
        return FB_ERR_MALFORMED;
    }
    if (type == FB_TTLV_BIG_INTEGER && len % 8u != 0u) {
        return FB_ERR_MALFORMED;
    }
    /* Every item is padded to a multiple of 8; len <= left - 8 keeps this from overflowing. */
    padded = (len + 7u) & ~(size_t)7u;
    if (padded > left - 8u) {
        return FB_ERR_MALFORMED;
    }
    item->tag = ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | (uint32_t)p[2];
    item->type = (fb_ttlv_type)type;
    item->value = p + 8;
    item->len = len;
    item->raw = p;
    item->raw_len = 8u + padded;
    reader->pos += 8u + padded;
    return FB_OK;
}

fb_status fb_ttlv_enter(const fb_ttlv_item *structure, fb_ttlv_reader *children)
{
    if (structure == NULL || children == NULL || structure->type != FB_TTLV_STRUCTURE) {
        return FB_ERR_MALFORMED;
    }
    fb_ttlv_reader_init(children, structure->value, structure->len);
    return FB_OK;
}

fb_status fb_ttlv_find(const uint8_t *region, size_t len, uint32_t tag, fb_ttlv_item *item)
{
    fb_ttlv_reader r;
    fb_status status;
    fb_ttlv_reader_init(&r, region, len);
    while ((status = fb_ttlv_next(&r, item)) == FB_OK) {
        if (item->tag == tag) {
            return FB_OK;
        }
    }
    return status;
}

fb_status fb_ttlv_get_int32(const fb_ttlv_item *item, fb_ttlv_type type, int32_t *out)
{
    if (item == NULL || out == NULL || item->type != type || fixed_len((uint8_t)type) != 4u) {
        return FB_ERR_MALFORMED;
    }
    *out = (int32_t)fb_get_u32(item->value);
    return FB_OK;
}

fb_status fb_ttlv_get_int64(const fb_ttlv_item *item, fb_ttlv_type type, int64_t *out)
{
    if (item == NULL || out == NULL || item->type != type ||
        (type != FB_TTLV_LONG_INTEGER && type != FB_TTLV_DATE_TIME)) {
        return FB_ERR_MALFORMED;
    }
    *out = (int64_t)fb_get_u64(item->value);
    return FB_OK;
}

fb_status fb_ttlv_get_bool(const fb_ttlv_item *item, bool *out)
{
    uint64_t v;
    if (item == NULL || out == NULL || item->type != FB_TTLV_BOOLEAN) {
        return FB_ERR_MALFORMED;
    }
    v = fb_get_u64(item->value);
    if (v > 1u) {
        return FB_ERR_MALFORMED; /* §9.1.1.4: 0 or 1 */
    }
    *out = v == 1u;
    return FB_OK;
}

void fb_ttlv_writer_init(fb_ttlv_writer *writer, uint8_t *buf, size_t size)
{
    writer->buf = buf;
    writer->size = buf == NULL ? 0u : size;
    writer->len = 0;
    writer->status = buf == NULL ? FB_ERR_ARG : FB_OK;
}

static void fail(fb_ttlv_writer *w, fb_status status)
{
    if (w->status == FB_OK) {
        w->status = status;
    }
}

/*
 * The one place an item is written: header, `len` value bytes from `value` (a Structure: none,
 * its length is set by fb_ttlv_end), zero padding to 8. Every length is checked against the
 * room left before anything is written; an error is sticky and nothing is written after it.
 */
static void put_item(fb_ttlv_writer *w, uint32_t tag, uint8_t type, const uint8_t *value, size_t len)
{
    size_t padded;
    uint8_t *p;
    if (w->status != FB_OK) {
        return;
    }
    if (len > 0xFFFFFFF0u || tag > 0xFFFFFFu) {
        w->status = FB_ERR_ARG;
        return;
    }
    padded = (len + 7u) & ~(size_t)7u;
    if (w->size - w->len < 8u || padded > w->size - w->len - 8u) {
        w->status = FB_ERR_TOO_LARGE;
        return;
    }
    p = w->buf + w->len;
    fb_put_u32(p, (tag << 8) | type);
    fb_put_u32(p + 4, (uint32_t)len);
    if (len > 0u) {
        memmove(p + 8, value, len);
    }
    memset(p + 8 + len, 0, padded - len);
    w->len += 8u + padded;
}

/* A fixed-size value (4 or 8 bytes, §9.1.1.4), big-endian. */
static void put_fixed(fb_ttlv_writer *w, uint32_t tag, uint8_t type, uint64_t value)
{
    uint8_t v[8];
    size_t len = fixed_len(type);
    fb_put_u64(v, value);
    put_item(w, tag, type, v + 8u - len, len);
}

size_t fb_ttlv_begin(fb_ttlv_writer *writer, uint32_t tag)
{
    size_t offset = writer->len;
    put_item(writer, tag, FB_TTLV_STRUCTURE, NULL, 0);
    return offset;
}

void fb_ttlv_end(fb_ttlv_writer *writer, size_t offset)
{
    if (writer->status != FB_OK) {
        return;
    }
    if (offset + 8u > writer->len || writer->buf[offset + 3] != FB_TTLV_STRUCTURE) {
        writer->status = FB_ERR_ARG;
        return;
    }
    fb_put_u32(writer->buf + offset + 4, (uint32_t)(writer->len - offset - 8u));
}

void fb_ttlv_put_int32(fb_ttlv_writer *writer, uint32_t tag, fb_ttlv_type type, int32_t value)
{
    if (fixed_len((uint8_t)type) != 4u) {
        fail(writer, FB_ERR_ARG);
        return;
    }
    put_fixed(writer, tag, (uint8_t)type, (uint32_t)value);
}

void fb_ttlv_put_int64(fb_ttlv_writer *writer, uint32_t tag, fb_ttlv_type type, int64_t value)
{
    if (type != FB_TTLV_LONG_INTEGER && type != FB_TTLV_DATE_TIME) {
        fail(writer, FB_ERR_ARG);
        return;
    }
    put_fixed(writer, tag, (uint8_t)type, (uint64_t)value);
}

void fb_ttlv_put_bool(fb_ttlv_writer *writer, uint32_t tag, bool value)
{
    put_fixed(writer, tag, FB_TTLV_BOOLEAN, value ? 1u : 0u);
}

void fb_ttlv_put_bytes(fb_ttlv_writer *writer, uint32_t tag, fb_ttlv_type type, const uint8_t *value,
                       size_t len)
{
    if ((type != FB_TTLV_TEXT_STRING && type != FB_TTLV_BYTE_STRING) || (value == NULL && len > 0u)) {
        fail(writer, FB_ERR_ARG);
        return;
    }
    put_item(writer, tag, (uint8_t)type, value, len);
}

/* The KMIP builders' entry points (fb_internal.h): tag 0x4200XX passed as XX, types fixed by
 * the caller. Out of line, so that each call site carries an 8-bit immediate, not a literal. */
size_t fb_w_begin(fb_ttlv_writer *w, uint8_t t)
{
    return fb_ttlv_begin(w, FB_KMIP_TAG(t));
}

void fb_w_int(fb_ttlv_writer *w, uint8_t t, uint8_t type, uint32_t v)
{
    put_fixed(w, FB_KMIP_TAG(t), type, v);
}

void fb_w_long(fb_ttlv_writer *w, uint8_t t, uint8_t type, uint64_t v)
{
    put_fixed(w, FB_KMIP_TAG(t), type, v);
}

void fb_w_bytes(fb_ttlv_writer *w, uint8_t t, uint8_t type, const uint8_t *v, size_t len)
{
    put_item(w, FB_KMIP_TAG(t), type, v, len);
}
