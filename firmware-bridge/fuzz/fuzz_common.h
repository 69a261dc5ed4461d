/* A crypto backend for fuzzing only: "tags" always verify and the cipher is the identity, so
 * that fuzzed bytes reach what runs after authentication (the TTLV readers, push handling). */
#ifndef FB_FUZZ_COMMON_H
#define FB_FUZZ_COMMON_H
#include <string.h>
#include "fb/fb.h"

static inline fb_status id_seal(void *ctx, uint8_t suite, const uint8_t nonce[FB_NONCE_BYTES], const uint8_t *ad,
                         size_t ad_len, const uint8_t *pt, size_t pt_len, uint8_t *out, size_t out_size)
{
    (void)ctx; (void)suite; (void)nonce; (void)ad; (void)ad_len;
    if (out_size < pt_len + FB_TAG_BYTES) return FB_ERR_TOO_LARGE;
    memmove(out, pt, pt_len);
    memset(out + pt_len, 0xA5, FB_TAG_BYTES);
    return FB_OK;
}

static inline fb_status id_open(void *ctx, uint8_t suite, const uint8_t nonce[FB_NONCE_BYTES], const uint8_t *ad,
                         size_t ad_len, const uint8_t *ct, size_t ct_len, uint8_t *out, size_t out_size)
{
    (void)ctx; (void)suite; (void)nonce; (void)ad; (void)ad_len;
    if (ct_len < FB_TAG_BYTES || out_size < ct_len - FB_TAG_BYTES) return FB_ERR_TOO_LARGE;
    memmove(out, ct, ct_len - FB_TAG_BYTES);
    return FB_OK;
}

static inline fb_status id_hmac(void *ctx, const uint8_t *data, size_t len, const uint8_t *mac, size_t mac_len)
{
    (void)ctx; (void)data; (void)len;
    return (mac_len > 0u && mac[0] == 0u) ? FB_OK : FB_ERR_MAC;
}

static inline fb_status id_random(void *ctx, uint8_t *out, size_t len)
{
    (void)ctx;
    memset(out, 7, len);
    return FB_OK;
}

static const fb_crypto identity_crypto = {NULL, id_seal, id_open, id_hmac, id_random};

typedef struct mem_storage {
    uint8_t record[FB_COUNTER_RECORD_BYTES];
    int found;
} mem_storage;

static inline fb_status mem_read(void *ctx, uint8_t *buf, size_t len, int *found)
{
    mem_storage *m = (mem_storage *)ctx;
    if (len != FB_COUNTER_RECORD_BYTES) return FB_ERR_STORAGE;
    memcpy(buf, m->record, len);
    *found = m->found;
    return FB_OK;
}

static inline fb_status mem_write(void *ctx, const uint8_t *buf, size_t len)
{
    mem_storage *m = (mem_storage *)ctx;
    if (len != FB_COUNTER_RECORD_BYTES) return FB_ERR_STORAGE;
    memcpy(m->record, buf, len);
    m->found = 1;
    return FB_OK;
}

/* Walks every payload reader over `body`, as a device would after opening a frame. */
static inline void exercise_readers(const uint8_t *body, size_t len)
{
    fb_response resp;
    fb_request_message req;
    uint8_t material[64];
    static const uint8_t nonce[16] = {0};
    size_t i;
    if (fb_kmip_parse_response(body, len, &resp) == FB_OK) {
        for (i = 0; i < resp.item_count; i++) {
            fb_key key;
            fb_bytes uid;
            fb_ttlv_reader attrs;
            fb_attribute a;
            uint32_t ops[4];
            fb_version versions[2];
            size_t n;
            int32_t lease;
            int64_t changed;
            fb_bytes p = resp.items[i].payload;
            if (!resp.items[i].has_payload) continue;
            (void)fb_kmip_read_get(p, material, sizeof material, &key);
            (void)fb_kmip_verify_nonce_mac(&identity_crypto, p, nonce, sizeof nonce, material, sizeof material, &key);
            (void)fb_kmip_read_uid(p, &uid);
            (void)fb_kmip_read_lease(p, &uid, &lease, &changed);
            (void)fb_kmip_read_query(p, ops, 4, &n);
            (void)fb_kmip_read_versions(p, versions, 2, &n);
            if (fb_kmip_read_attributes(p, &uid, &attrs) == FB_OK) {
                while (fb_kmip_next_attribute(&attrs, &a) == FB_OK) {
                }
            }
        }
    }
    if (fb_kmip_parse_request(body, len, &req) == FB_OK) {
        uint8_t ack[512];
        fb_ttlv_writer w;
        for (i = 0; i < req.item_count; i++) {
            fb_put put;
            fb_attribute a;
            if (fb_kmip_read_put(req.items[i].payload, material, sizeof material, &put) == FB_OK) {
                while (fb_kmip_next_attribute(&put.attributes, &a) == FB_OK) {
                }
            }
        }
        fb_ttlv_writer_init(&w, ack, sizeof ack);
        fb_kmip_build_ack(&w, &req, 0);
        if (w.status == FB_OK) {
            fb_response r2;
            if (fb_kmip_parse_response(ack, w.len, &r2) != FB_OK) __builtin_trap();
        }
    }
}
#endif
