/* Byte-order helpers shared by the sources (not installed). */
#ifndef FB_INTERNAL_H
#define FB_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

/* Big-endian stores and loads (fb_status.c): out of line, one copy for the whole core instead
 * of one inlined per use (about 90 bytes on Cortex-M4, 170 on M0+). */
void fb_put_u32(uint8_t *p, uint32_t v);
void fb_put_u64(uint8_t *p, uint64_t v);
uint32_t fb_get_u32(const uint8_t *p);
uint64_t fb_get_u64(const uint8_t *p);

/* Every tag of the device operations is 0x4200XX (KMIP 1.2 §9.1.3.1): internally only XX is
 * passed and stored, an 8-bit immediate at each call site instead of a 32-bit literal. */
#define FB_KMIP_TAG(xx) (0x420000u | (uint32_t)(xx))
#define FB_K(tag) ((uint8_t)((tag) & 0xFFu))

struct fb_ttlv_writer;
/* The KMIP builders' writer calls (fb_ttlv.c): as fb_ttlv_begin / put_*, tag FB_KMIP_TAG(t), the
 * type a constant of the caller (not checked again); errors sticky in w->status as always. */
size_t fb_w_begin(struct fb_ttlv_writer *w, uint8_t t);
void fb_w_int(struct fb_ttlv_writer *w, uint8_t t, uint8_t type, uint32_t v); /* any fixed type */
void fb_w_long(struct fb_ttlv_writer *w, uint8_t t, uint8_t type, uint64_t v);
void fb_w_bytes(struct fb_ttlv_writer *w, uint8_t t, uint8_t type, const uint8_t *v, size_t len);

#endif
