/* Byte-order helpers shared by the sources (not installed). */
#ifndef FB_INTERNAL_H
#define FB_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

static inline void fb_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void fb_put_u64(uint8_t *p, uint64_t v)
{
    fb_put_u32(p, (uint32_t)(v >> 32));
    fb_put_u32(p + 4, (uint32_t)v);
}

static inline uint32_t fb_get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline uint64_t fb_get_u64(const uint8_t *p)
{
    return ((uint64_t)fb_get_u32(p) << 32) | (uint64_t)fb_get_u32(p + 4);
}

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
