/* TTLV writer and reader (KMIP 1.2 §9.1): bounded, non-recursive, every length checked. */
#include <string.h>
#include "fb/fb_ttlv.h"
#include "fb_internal.h"

/* Fixed value lengths (§9.1.1.4); 0 for the variable-length types. */
static size_t fixed_len(uint8_t type)
{
    switch (type) {
    case FB_TTLV_INTEGER:
    case FB_TTLV_ENUMERATION:
    case FB_TTLV_INTERVAL:
        return 4u;
    case FB_TTLV_LONG_INTEGER:
    case FB_TTLV_BOOLEAN:
    case FB_TTLV_DATE_TIME:
        return 8u;
    default:
        return 0u;
    }
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

/* Writes an item header and reserves the padded value; NULL (and a sticky error) if no room. */
static uint8_t *put_header(fb_ttlv_writer *w, uint32_t tag, uint8_t type, size_t len)
{
    size_t padded;
    uint8_t *p;
    if (w->status != FB_OK) {
        return NULL;
    }
    if (len > 0xFFFFFFF0u || tag > 0xFFFFFFu) {
        w->status = FB_ERR_ARG;
        return NULL;
    }
    padded = (len + 7u) & ~(size_t)7u;
    if (w->size - w->len < 8u || padded > w->size - w->len - 8u) {
        w->status = FB_ERR_TOO_LARGE;
        return NULL;
    }
    p = w->buf + w->len;
    p[0] = (uint8_t)(tag >> 16);
    p[1] = (uint8_t)(tag >> 8);
    p[2] = (uint8_t)tag;
    p[3] = type;
    fb_put_u32(p + 4, (uint32_t)len);
    memset(p + 8 + len, 0, padded - len);
    w->len += 8u + padded;
    return p + 8;
}

size_t fb_ttlv_begin(fb_ttlv_writer *writer, uint32_t tag)
{
    size_t offset = writer->len;
    (void)put_header(writer, tag, FB_TTLV_STRUCTURE, 0);
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
    uint8_t *p;
    if (fixed_len((uint8_t)type) != 4u) {
        if (writer->status == FB_OK) {
            writer->status = FB_ERR_ARG;
        }
        return;
    }
    p = put_header(writer, tag, (uint8_t)type, 4u);
    if (p != NULL) {
        fb_put_u32(p, (uint32_t)value);
    }
}

void fb_ttlv_put_int64(fb_ttlv_writer *writer, uint32_t tag, fb_ttlv_type type, int64_t value)
{
    uint8_t *p;
    if (type != FB_TTLV_LONG_INTEGER && type != FB_TTLV_DATE_TIME) {
        if (writer->status == FB_OK) {
            writer->status = FB_ERR_ARG;
        }
        return;
    }
    p = put_header(writer, tag, (uint8_t)type, 8u);
    if (p != NULL) {
        fb_put_u64(p, (uint64_t)value);
    }
}

void fb_ttlv_put_bool(fb_ttlv_writer *writer, uint32_t tag, bool value)
{
    uint8_t *p = put_header(writer, tag, FB_TTLV_BOOLEAN, 8u);
    if (p != NULL) {
        fb_put_u64(p, value ? 1u : 0u);
    }
}

void fb_ttlv_put_bytes(fb_ttlv_writer *writer, uint32_t tag, fb_ttlv_type type, const uint8_t *value,
                       size_t len)
{
    uint8_t *p;
    if ((type != FB_TTLV_TEXT_STRING && type != FB_TTLV_BYTE_STRING) || (value == NULL && len > 0u)) {
        if (writer->status == FB_OK) {
            writer->status = FB_ERR_ARG;
        }
        return;
    }
    p = put_header(writer, tag, (uint8_t)type, len);
    if (p != NULL && len > 0u) {
        memmove(p, value, len);
    }
}
