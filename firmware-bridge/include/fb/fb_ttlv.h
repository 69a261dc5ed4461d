/**
 * @file fb_ttlv.h
 * A small TTLV (KMIP 1.2 §9.1) writer and reader, enough for the device operations. The reader
 * never recurses and never reads outside the region it is given: each item's length is checked
 * against the bytes left before it is used, fixed-size types must have their fixed length, and
 * padding must be present (8-byte alignment). Values point into the caller's buffer.
 */
#ifndef FB_TTLV_H
#define FB_TTLV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "fb_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** TTLV item types (KMIP 1.2 §9.1.1.2). */
typedef enum fb_ttlv_type {
    FB_TTLV_STRUCTURE = 0x01,
    FB_TTLV_INTEGER = 0x02,
    FB_TTLV_LONG_INTEGER = 0x03,
    FB_TTLV_BIG_INTEGER = 0x04,
    FB_TTLV_ENUMERATION = 0x05,
    FB_TTLV_BOOLEAN = 0x06,
    FB_TTLV_TEXT_STRING = 0x07,
    FB_TTLV_BYTE_STRING = 0x08,
    FB_TTLV_DATE_TIME = 0x09,
    FB_TTLV_INTERVAL = 0x0A
} fb_ttlv_type;

/** One item as read: its value points into the buffer read. */
typedef struct fb_ttlv_item {
    uint32_t tag;         /**< 24-bit tag, e.g. 0x420094 */
    fb_ttlv_type type;
    const uint8_t *value; /**< `len` bytes (unpadded) */
    size_t len;
    const uint8_t *raw;   /**< the whole item as received: header, value, padding */
    size_t raw_len;
} fb_ttlv_item;

/** A region to read items from, one after the other (a message, or a structure's value). */
typedef struct fb_ttlv_reader {
    const uint8_t *data;
    size_t len;
    size_t pos;
} fb_ttlv_reader;

/** Starts reading `len` bytes at `data`. */
void fb_ttlv_reader_init(fb_ttlv_reader *reader, const uint8_t *data, size_t len);

/**
 * Reads the next item. FB_ERR_NOT_FOUND at the end of the region; FB_ERR_MALFORMED when the
 * bytes left cannot hold an item header, the value and its padding, when a fixed-size type
 * (Integer, Enumeration, Interval 4; Long Integer, Date-Time, Boolean 8) has another length, or
 * the type is unknown. The reader stays at the failed position.
 */
fb_status fb_ttlv_next(fb_ttlv_reader *reader, fb_ttlv_item *item);

/** Starts a reader on a Structure item's children (FB_ERR_MALFORMED if not a Structure). */
fb_status fb_ttlv_enter(const fb_ttlv_item *structure, fb_ttlv_reader *children);

/** Finds the first item of `region` with `tag` (from the region's start). FB_ERR_NOT_FOUND if none;
 *  FB_ERR_MALFORMED if a malformed item comes before it. */
fb_status fb_ttlv_find(const uint8_t *region, size_t len, uint32_t tag, fb_ttlv_item *item);

/** Value accessors: FB_ERR_MALFORMED when the item is not of that type. */
fb_status fb_ttlv_get_int32(const fb_ttlv_item *item, fb_ttlv_type type, int32_t *out); /* Integer, Enumeration, Interval */
fb_status fb_ttlv_get_int64(const fb_ttlv_item *item, fb_ttlv_type type, int64_t *out); /* Long Integer, Date-Time */
fb_status fb_ttlv_get_bool(const fb_ttlv_item *item, bool *out);

/** A writer into the caller's buffer. Errors are sticky: check `status` once at the end. */
typedef struct fb_ttlv_writer {
    uint8_t *buf;
    size_t size;
    size_t len;
    fb_status status; /**< FB_OK, or the first error (FB_ERR_TOO_LARGE, FB_ERR_ARG) */
} fb_ttlv_writer;

void fb_ttlv_writer_init(fb_ttlv_writer *writer, uint8_t *buf, size_t size);
/** Opens a Structure; returns its offset, to pass to fb_ttlv_end. */
size_t fb_ttlv_begin(fb_ttlv_writer *writer, uint32_t tag);
/** Closes the Structure opened at `offset`, writing its length. */
void fb_ttlv_end(fb_ttlv_writer *writer, size_t offset);
void fb_ttlv_put_int32(fb_ttlv_writer *writer, uint32_t tag, fb_ttlv_type type, int32_t value); /* Integer, Enumeration, Interval */
void fb_ttlv_put_int64(fb_ttlv_writer *writer, uint32_t tag, fb_ttlv_type type, int64_t value); /* Long Integer, Date-Time */
void fb_ttlv_put_bool(fb_ttlv_writer *writer, uint32_t tag, bool value);
/** Text String or Byte String (`type`), padded to 8 bytes with zeros. */
void fb_ttlv_put_bytes(fb_ttlv_writer *writer, uint32_t tag, fb_ttlv_type type, const uint8_t *value, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* FB_TTLV_H */
