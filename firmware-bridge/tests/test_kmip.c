/* KMIP messages: builders against the vectors and the request reader, response reading with its
 * checks, typed payloads, key material bounds, nonce-MAC verification, Put and acknowledgement. */
#include "test_support.h"
#include "vectors.h"

static const uint8_t mac_key[32] = {0x4d, 0x41, 0x43, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
                                    14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29};
static fb_crypto_psa psa_state;
static fb_crypto crypto;

static int setup(void **state)
{
    (void)state;
    return fb_crypto_psa_import(&psa_state, &crypto, FB_SUITE_AES_256_GCM, vector_key, mac_key, sizeof mac_key) == FB_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fb_crypto_psa_free(&psa_state);
    return 0;
}

#define UID "tape-key-1"
#define U(s) (const uint8_t *)(s), (sizeof(s) - 1u)

static fb_bytes bytes_of(const uint8_t *p, size_t n)
{
    fb_bytes b;
    b.ptr = p;
    b.len = n;
    return b;
}

/* A request of `operation` on UID, nothing else set (fb_request). */
static fb_request on_uid(uint32_t operation)
{
    fb_request r;
    memset(&r, 0, sizeof r);
    r.operation = operation;
    r.uid = bytes_of(U(UID));
    return r;
}

static void test_get_matches_vector(void **state)
{
    uint8_t buf[512];
    fb_ttlv_writer w;
    fb_request get = on_uid(FB_OP_GET);
    fb_request empty = on_uid(FB_OP_GET);
    (void)state;
    empty.uid = bytes_of((const uint8_t *)"", 0);
    /* The vectors' request body is a Get of tape-key-1 as the TypeScript side builds it. */
    fb_ttlv_writer_init(&w, buf, sizeof buf);
    fb_kmip_build_request(&w, &get);
    assert_int_equal(w.status, FB_OK);
    assert_int_equal(w.len, vectors[0].body_len);
    assert_memory_equal(buf, vectors[0].body, w.len);
    /* Exactly the size fits; one byte less does not. */
    fb_ttlv_writer_init(&w, buf, vectors[0].body_len);
    fb_kmip_build_request(&w, &get);
    assert_int_equal(w.status, FB_OK);
    fb_ttlv_writer_init(&w, buf, vectors[0].body_len - 1u);
    fb_kmip_build_request(&w, &get);
    assert_int_equal(w.status, FB_ERR_TOO_LARGE);
    fb_ttlv_writer_init(&w, buf, sizeof buf);
    fb_kmip_build_request(&w, &empty);
    assert_int_equal(w.status, FB_ERR_ARG);
}

static void test_response_vector(void **state)
{
    fb_response r;
    fb_bytes uid;
    (void)state;
    assert_int_equal(fb_kmip_parse_response(vectors[1].body, vectors[1].body_len, &r), FB_OK);
    assert_int_equal(r.version.major, 1);
    assert_int_equal(r.version.minor, 2);
    assert_int_equal(r.time_stamp, 0x6955b900);
    assert_int_equal(r.item_count, 1);
    assert_int_equal(r.items[0].operation, FB_OP_GET);
    assert_int_equal(r.items[0].result_status, FB_RESULT_SUCCESS);
    assert_true(r.items[0].has_payload);
    assert_int_equal(fb_kmip_read_uid(r.items[0].payload, &uid), FB_OK);
    assert_int_equal(uid.len, 10);
    assert_memory_equal(uid.ptr, UID, 10);
    /* A request is not a response, and a response is not a request. */
    assert_int_equal(fb_kmip_parse_response(vectors[0].body, vectors[0].body_len, &r), FB_ERR_MALFORMED);
    {
        fb_request_message q;
        assert_int_equal(fb_kmip_parse_request(vectors[1].body, vectors[1].body_len, &q), FB_ERR_MALFORMED);
        assert_int_equal(fb_kmip_parse_request(vectors[0].body, vectors[0].body_len, &q), FB_OK);
        assert_int_equal(q.item_count, 1);
        assert_int_equal(q.items[0].operation, FB_OP_GET);
    }
}

/* A Response Message with `n` Success items of `op`, each with `payload` (built by `fill`). */
typedef void (*payload_fill)(fb_ttlv_writer *w);

static size_t response(uint8_t *buf, size_t size, size_t n, int32_t batch_count, uint32_t op, payload_fill fill)
{
    fb_ttlv_writer w;
    size_t m;
    size_t h;
    size_t pv;
    size_t i;
    fb_ttlv_writer_init(&w, buf, size);
    m = fb_ttlv_begin(&w, FB_TAG_RESPONSE_MESSAGE);
    h = fb_ttlv_begin(&w, FB_TAG_RESPONSE_HEADER);
    pv = fb_ttlv_begin(&w, FB_TAG_PROTOCOL_VERSION);
    fb_ttlv_put_int32(&w, FB_TAG_PROTOCOL_VERSION_MAJOR, FB_TTLV_INTEGER, 1);
    fb_ttlv_put_int32(&w, FB_TAG_PROTOCOL_VERSION_MINOR, FB_TTLV_INTEGER, 2);
    fb_ttlv_end(&w, pv);
    fb_ttlv_put_int64(&w, FB_TAG_TIME_STAMP, FB_TTLV_DATE_TIME, 1700000000);
    fb_ttlv_put_int32(&w, FB_TAG_BATCH_COUNT, FB_TTLV_INTEGER, batch_count);
    fb_ttlv_end(&w, h);
    for (i = 0; i < n; i++) {
        size_t it = fb_ttlv_begin(&w, FB_TAG_BATCH_ITEM);
        size_t p;
        fb_ttlv_put_int32(&w, FB_TAG_OPERATION, FB_TTLV_ENUMERATION, (int32_t)op);
        fb_ttlv_put_int32(&w, FB_TAG_RESULT_STATUS, FB_TTLV_ENUMERATION, 0);
        p = fb_ttlv_begin(&w, FB_TAG_RESPONSE_PAYLOAD);
        if (fill != NULL) fill(&w);
        fb_ttlv_end(&w, p);
        fb_ttlv_end(&w, it);
    }
    fb_ttlv_end(&w, m);
    assert_int_equal(w.status, FB_OK);
    return w.len;
}

static void test_response_checks(void **state)
{
    uint8_t buf[1024];
    fb_response r;
    size_t len;
    (void)state;
    len = response(buf, sizeof buf, 2, 2, FB_OP_GET, NULL);
    assert_int_equal(fb_kmip_parse_response(buf, len, &r), FB_OK);
    assert_int_equal(r.item_count, 2);
    len = response(buf, sizeof buf, 2, 1, FB_OP_GET, NULL); /* Batch Count says 1 */
    assert_int_equal(fb_kmip_parse_response(buf, len, &r), FB_ERR_MALFORMED);
    len = response(buf, sizeof buf, FB_MAX_BATCH_ITEMS + 1u, (int32_t)FB_MAX_BATCH_ITEMS + 1, FB_OP_GET, NULL);
    assert_int_equal(fb_kmip_parse_response(buf, len, &r), FB_ERR_TOO_LARGE);
    len = response(buf, sizeof buf, 1, 1, FB_OP_GET, NULL);
    memset(buf + len, 0, 8);
    assert_int_equal(fb_kmip_parse_response(buf, len + 8u, &r), FB_ERR_MALFORMED); /* trailing bytes */
    assert_int_equal(fb_kmip_parse_response(buf, len - 8u, &r), FB_ERR_MALFORMED); /* truncated */
}

static const uint8_t material_32[32] = {0xAA, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                        16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 0xBB};

static void fill_raw_get(fb_ttlv_writer *w)
{
    size_t o;
    size_t kb;
    size_t kv;
    fb_ttlv_put_int32(w, FB_TAG_OBJECT_TYPE, FB_TTLV_ENUMERATION, 2);
    fb_ttlv_put_bytes(w, FB_TAG_UNIQUE_IDENTIFIER, FB_TTLV_TEXT_STRING, U(UID));
    o = fb_ttlv_begin(w, 0x42008F);
    kb = fb_ttlv_begin(w, FB_TAG_KEY_BLOCK);
    fb_ttlv_put_int32(w, FB_TAG_KEY_FORMAT_TYPE, FB_TTLV_ENUMERATION, 1);
    kv = fb_ttlv_begin(w, FB_TAG_KEY_VALUE);
    fb_ttlv_put_bytes(w, FB_TAG_KEY_MATERIAL, FB_TTLV_BYTE_STRING, material_32, sizeof material_32);
    fb_ttlv_end(w, kv);
    fb_ttlv_put_int32(w, FB_TAG_CRYPTOGRAPHIC_ALGORITHM, FB_TTLV_ENUMERATION, 3);
    fb_ttlv_put_int32(w, FB_TAG_CRYPTOGRAPHIC_LENGTH, FB_TTLV_INTEGER, 256);
    fb_ttlv_end(w, kb);
    fb_ttlv_end(w, o);
}

static void fill_transparent_get(fb_ttlv_writer *w)
{
    size_t o;
    size_t kb;
    size_t kv;
    size_t km;
    fb_ttlv_put_int32(w, FB_TAG_OBJECT_TYPE, FB_TTLV_ENUMERATION, 2);
    fb_ttlv_put_bytes(w, FB_TAG_UNIQUE_IDENTIFIER, FB_TTLV_TEXT_STRING, U(UID));
    o = fb_ttlv_begin(w, 0x42008F);
    kb = fb_ttlv_begin(w, FB_TAG_KEY_BLOCK);
    fb_ttlv_put_int32(w, FB_TAG_KEY_FORMAT_TYPE, FB_TTLV_ENUMERATION, 7);
    kv = fb_ttlv_begin(w, FB_TAG_KEY_VALUE);
    km = fb_ttlv_begin(w, FB_TAG_KEY_MATERIAL);
    fb_ttlv_put_bytes(w, FB_TAG_KEY, FB_TTLV_BYTE_STRING, material_32, 16);
    fb_ttlv_end(w, km);
    fb_ttlv_end(w, kv);
    fb_ttlv_end(w, kb);
    fb_ttlv_end(w, o);
}

static void test_read_get_material(void **state)
{
    uint8_t buf[1024];
    uint8_t material[32];
    fb_response r;
    fb_key key;
    size_t len;
    (void)state;
    len = response(buf, sizeof buf, 1, 1, FB_OP_GET, fill_raw_get);
    assert_int_equal(fb_kmip_parse_response(buf, len, &r), FB_OK);
    assert_int_equal(fb_kmip_read_get(r.items[0].payload, material, sizeof material, &key), FB_OK);
    assert_int_equal(key.material_len, 32);
    assert_memory_equal(material, material_32, 32);
    assert_int_equal(key.object_type, 2);
    assert_int_equal(key.key_format_type, 1);
    assert_int_equal(key.algorithm, 3);
    assert_int_equal(key.length, 256);
    assert_int_equal(key.uid.len, 10);
    /* A buffer one byte short: FB_ERR_TOO_LARGE, nothing copied. */
    memset(material, 0x55, sizeof material);
    assert_int_equal(fb_kmip_read_get(r.items[0].payload, material, 31, &key), FB_ERR_TOO_LARGE);
    assert_int_equal(key.material_len, 0);
    assert_int_equal(material[0], 0x55);
    /* A Transparent Symmetric Key. */
    len = response(buf, sizeof buf, 1, 1, FB_OP_GET, fill_transparent_get);
    assert_int_equal(fb_kmip_parse_response(buf, len, &r), FB_OK);
    assert_int_equal(fb_kmip_read_get(r.items[0].payload, material, 16, &key), FB_OK);
    assert_int_equal(key.material_len, 16);
    assert_memory_equal(material, material_32, 16);
}

/* ---- nonce-MAC ---- */

static const uint8_t nonce_a[16] = {'n', 'o', 'n', 'c', 'e', '-', 'a', 0, 1, 2, 3, 4, 5, 6, 7, 8};
static const uint8_t *mac_nonce;
static int mac_tamper; /* 0 none, 1 material after the MAC, 2 drop the MAC's last byte */

static void fill_mac_wrapped_get(fb_ttlv_writer *w)
{
    size_t o;
    size_t kb;
    size_t kv;
    size_t a;
    size_t wd;
    size_t ki;
    uint8_t mac[32];
    size_t mac_len = 0;
    size_t kv_start;
    fb_ttlv_put_int32(w, FB_TAG_OBJECT_TYPE, FB_TTLV_ENUMERATION, 2);
    fb_ttlv_put_bytes(w, FB_TAG_UNIQUE_IDENTIFIER, FB_TTLV_TEXT_STRING, U(UID));
    o = fb_ttlv_begin(w, 0x42008F);
    kb = fb_ttlv_begin(w, FB_TAG_KEY_BLOCK);
    fb_ttlv_put_int32(w, FB_TAG_KEY_FORMAT_TYPE, FB_TTLV_ENUMERATION, 1);
    kv_start = w->len;
    kv = fb_ttlv_begin(w, FB_TAG_KEY_VALUE);
    fb_ttlv_put_bytes(w, FB_TAG_KEY_MATERIAL, FB_TTLV_BYTE_STRING, material_32, sizeof material_32);
    a = fb_ttlv_begin(w, FB_TAG_ATTRIBUTE);
    fb_ttlv_put_bytes(w, FB_TAG_ATTRIBUTE_NAME, FB_TTLV_TEXT_STRING, U("x-Nonce"));
    fb_ttlv_put_bytes(w, FB_TAG_ATTRIBUTE_VALUE, FB_TTLV_BYTE_STRING, mac_nonce, 16);
    fb_ttlv_end(w, a);
    fb_ttlv_end(w, kv);
    /* The key server's HMAC-SHA256 over the Key Value's TTLV bytes. */
    assert_int_equal(psa_mac_compute(psa_state.mac_key, PSA_ALG_HMAC(PSA_ALG_SHA_256), w->buf + kv_start, w->len - kv_start, mac, sizeof mac, &mac_len), PSA_ERROR_NOT_PERMITTED);
    {
        /* The device's M may only verify (fb_crypto_psa imports it so): compute with a copy. */
        psa_key_attributes_t attr = PSA_KEY_ATTRIBUTES_INIT;
        psa_key_id_t id;
        psa_set_key_type(&attr, PSA_KEY_TYPE_HMAC);
        psa_set_key_usage_flags(&attr, PSA_KEY_USAGE_SIGN_MESSAGE);
        psa_set_key_algorithm(&attr, PSA_ALG_HMAC(PSA_ALG_SHA_256));
        assert_int_equal(psa_import_key(&attr, mac_key, sizeof mac_key, &id), PSA_SUCCESS);
        assert_int_equal(psa_mac_compute(id, PSA_ALG_HMAC(PSA_ALG_SHA_256), w->buf + kv_start, w->len - kv_start, mac, sizeof mac, &mac_len), PSA_SUCCESS);
        psa_destroy_key(id);
    }
    if (mac_tamper == 1) w->buf[kv_start + 8 + 8 + 5] ^= 0x01u; /* a byte of the key material */
    wd = fb_ttlv_begin(w, FB_TAG_KEY_WRAPPING_DATA);
    fb_ttlv_put_int32(w, FB_TAG_WRAPPING_METHOD, FB_TTLV_ENUMERATION, 2);
    ki = fb_ttlv_begin(w, FB_TAG_MAC_SIGNATURE_KEY_INFORMATION);
    fb_ttlv_put_bytes(w, FB_TAG_UNIQUE_IDENTIFIER, FB_TTLV_TEXT_STRING, U("mac-key-1"));
    fb_ttlv_end(w, ki);
    fb_ttlv_put_bytes(w, FB_TAG_MAC_SIGNATURE, FB_TTLV_BYTE_STRING, mac, mac_tamper == 2 ? 31u : 32u);
    fb_ttlv_end(w, wd);
    fb_ttlv_end(w, kb);
    fb_ttlv_end(w, o);
}

static fb_status verify(const uint8_t *set_nonce, const uint8_t *check_nonce, int tamper, uint8_t *material, size_t size, fb_key *key)
{
    uint8_t buf[1024];
    fb_response r;
    size_t len;
    mac_nonce = set_nonce;
    mac_tamper = tamper;
    len = response(buf, sizeof buf, 1, 1, FB_OP_GET, fill_mac_wrapped_get);
    assert_int_equal(fb_kmip_parse_response(buf, len, &r), FB_OK);
    return fb_kmip_verify_nonce_mac(&crypto, r.items[0].payload, check_nonce, 16, material, size, key);
}

static void test_nonce_mac(void **state)
{
    static const uint8_t nonce_b[16] = {'n', 'o', 'n', 'c', 'e', '-', 'b'};
    uint8_t material[32];
    fb_key key;
    size_t i;
    (void)state;
    assert_int_equal(verify(nonce_a, nonce_a, 0, material, sizeof material, &key), FB_OK);
    assert_int_equal(key.material_len, 32);
    assert_memory_equal(material, material_32, 32);
    /* Tampered Key Value: the MAC fails, and the buffer holds nothing. */
    memset(material, 0x55, sizeof material);
    assert_int_equal(verify(nonce_a, nonce_a, 1, material, sizeof material, &key), FB_ERR_MAC);
    for (i = 0; i < sizeof material; i++) assert_int_equal(material[i], 0);
    assert_int_equal(key.material_len, 0);
    /* A truncated MAC is no MAC. */
    assert_int_equal(verify(nonce_a, nonce_a, 2, material, sizeof material, &key), FB_ERR_MAC);
    /* Authentic but another nonce (a replayed response, or another client's): refused. */
    assert_int_equal(verify(nonce_b, nonce_a, 0, material, sizeof material, &key), FB_ERR_NONCE);
    assert_int_equal(key.material_len, 0);
    /* Too small a buffer after a good MAC: FB_ERR_TOO_LARGE, zeroized. */
    assert_int_equal(verify(nonce_a, nonce_a, 0, material, 31, &key), FB_ERR_TOO_LARGE);
    /* And a MAC-wrapped key is not accepted by the plain reader. */
    {
        uint8_t buf[1024];
        fb_response r;
        size_t len;
        mac_nonce = nonce_a;
        mac_tamper = 0;
        len = response(buf, sizeof buf, 1, 1, FB_OP_GET, fill_mac_wrapped_get);
        assert_int_equal(fb_kmip_parse_response(buf, len, &r), FB_OK);
        assert_int_equal(fb_kmip_read_get(r.items[0].payload, material, sizeof material, &key), FB_ERR_MALFORMED);
        /* And a plaintext Get is not accepted by the nonce-MAC check. */
        len = response(buf, sizeof buf, 1, 1, FB_OP_GET, fill_raw_get);
        assert_int_equal(fb_kmip_parse_response(buf, len, &r), FB_OK);
        assert_int_equal(fb_kmip_verify_nonce_mac(&crypto, r.items[0].payload, nonce_a, 16, material, sizeof material, &key), FB_ERR_MALFORMED);
    }
}

static void test_nonce_mac_request(void **state)
{
    uint8_t buf[1024];
    fb_ttlv_writer w;
    fb_request_message q;
    fb_ttlv_item item;
    fb_bytes header;
    fb_ttlv_reader attrs;
    fb_attribute a;
    fb_bytes uid;
    uint8_t nonce[FB_NONCE_MAX];
    fb_request r = on_uid(FB_OP_GET);
    fb_request plain = on_uid(FB_OP_GET);
    (void)state;
    /* A Get with mac_uid is the nonce-MAC batch; the builder writes the nonce as given. */
    memset(nonce, 0x5A, sizeof nonce);
    memcpy(nonce, nonce_a, 16);
    r.mac_uid = bytes_of(U("mac-key-1"));
    r.setter = FB_NONCE_MODIFY;
    r.nonce = nonce;
    r.nonce_len = 16;
    fb_ttlv_writer_init(&w, buf, sizeof buf);
    fb_kmip_build_request(&w, &r);
    assert_int_equal(w.status, FB_OK);
    assert_int_equal(fb_kmip_parse_request(buf, w.len, &q), FB_OK);
    assert_int_equal(q.item_count, 2);
    assert_int_equal(q.items[0].operation, FB_OP_MODIFY_ATTRIBUTE);
    assert_int_equal(q.items[1].operation, FB_OP_GET);
    /* Batch Order Option true in the header. */
    assert_int_equal(fb_ttlv_find(buf + 8, w.len - 8u, FB_TAG_REQUEST_HEADER, &item), FB_OK);
    header = bytes_of(item.value, item.len);
    assert_int_equal(fb_ttlv_find(header.ptr, header.len, FB_TAG_BATCH_ORDER_OPTION, &item), FB_OK);
    /* The attribute set is x-Nonce with our bytes. */
    assert_int_equal(fb_kmip_read_attributes(q.items[0].payload, &uid, &attrs), FB_OK);
    assert_int_equal(fb_kmip_next_attribute(&attrs, &a), FB_OK);
    assert_int_equal(a.name.len, 7);
    assert_memory_equal(a.name.ptr, "x-Nonce", 7);
    assert_int_equal(a.value.len, 16);
    assert_memory_equal(a.value.value, nonce_a, 16);
    /* The Get asks for MAC/sign wrapping with key M. */
    assert_int_equal(fb_ttlv_find(q.items[1].payload.ptr, q.items[1].payload.len, FB_TAG_KEY_WRAPPING_SPECIFICATION, &item), FB_OK);
    assert_memory_equal(nonce, nonce_a, 16);
    /* ADD: Add Attribute first; the second item is the same Get. */
    r.setter = FB_NONCE_ADD;
    fb_ttlv_writer_init(&w, buf, sizeof buf);
    fb_kmip_build_request(&w, &r);
    assert_int_equal(fb_kmip_parse_request(buf, w.len, &q), FB_OK);
    assert_int_equal(q.items[0].operation, FB_OP_ADD_ATTRIBUTE);
    assert_int_equal(q.items[1].operation, FB_OP_GET);
    /* Without mac_uid: a plain Get, one item, no wrapping asked. */
    fb_ttlv_writer_init(&w, buf, sizeof buf);
    fb_kmip_build_request(&w, &plain);
    assert_int_equal(fb_kmip_parse_request(buf, w.len, &q), FB_OK);
    assert_int_equal(q.item_count, 1);
    assert_int_not_equal(fb_ttlv_find(q.items[0].payload.ptr, q.items[0].payload.len, FB_TAG_KEY_WRAPPING_SPECIFICATION, &item), FB_OK);
    /* Refused (FB_ERR_ARG): nonces outside 16..64 bytes, no nonce, another setter, an empty
     * mac_uid. */
    r.mac_uid = bytes_of(U("m"));
    r.nonce_len = 15;
    fb_ttlv_writer_init(&w, buf, sizeof buf);
    fb_kmip_build_request(&w, &r);
    assert_int_equal(w.status, FB_ERR_ARG);
    r.nonce_len = 65;
    fb_ttlv_writer_init(&w, buf, sizeof buf);
    fb_kmip_build_request(&w, &r);
    assert_int_equal(w.status, FB_ERR_ARG);
    r.nonce_len = 64;
    fb_ttlv_writer_init(&w, buf, sizeof buf);
    fb_kmip_build_request(&w, &r);
    assert_int_equal(w.status, FB_OK);
    r.nonce = NULL;
    fb_ttlv_writer_init(&w, buf, sizeof buf);
    fb_kmip_build_request(&w, &r);
    assert_int_equal(w.status, FB_ERR_ARG);
    r.nonce = nonce;
    r.nonce_len = 16;
    r.setter = (fb_nonce_setter)2;
    fb_ttlv_writer_init(&w, buf, sizeof buf);
    fb_kmip_build_request(&w, &r);
    assert_int_equal(w.status, FB_ERR_ARG);
    r.setter = FB_NONCE_ADD;
    r.mac_uid = bytes_of((const uint8_t *)"", 0);
    fb_ttlv_writer_init(&w, buf, sizeof buf);
    fb_kmip_build_request(&w, &r);
    assert_int_equal(w.status, FB_ERR_ARG);
}

/* ---- other payloads ---- */

static void fill_lease(fb_ttlv_writer *w)
{
    fb_ttlv_put_bytes(w, FB_TAG_UNIQUE_IDENTIFIER, FB_TTLV_TEXT_STRING, U(UID));
    fb_ttlv_put_int32(w, FB_TAG_LEASE_TIME, FB_TTLV_INTERVAL, 3600);
    fb_ttlv_put_int64(w, FB_TAG_LAST_CHANGE_DATE, FB_TTLV_DATE_TIME, 1700000001);
}

static void fill_query(fb_ttlv_writer *w)
{
    fb_ttlv_put_int32(w, FB_TAG_OPERATION, FB_TTLV_ENUMERATION, FB_OP_GET);
    fb_ttlv_put_int32(w, FB_TAG_OPERATION, FB_TTLV_ENUMERATION, FB_OP_QUERY);
    fb_ttlv_put_int32(w, FB_TAG_OPERATION, FB_TTLV_ENUMERATION, FB_OP_OBTAIN_LEASE);
}

static void test_lease_query(void **state)
{
    uint8_t buf[1024];
    fb_response r;
    fb_bytes uid;
    int32_t lease;
    int64_t changed;
    uint32_t ops[3];
    size_t n;
    size_t len;
    (void)state;
    len = response(buf, sizeof buf, 1, 1, FB_OP_OBTAIN_LEASE, fill_lease);
    assert_int_equal(fb_kmip_parse_response(buf, len, &r), FB_OK);
    assert_int_equal(fb_kmip_read_lease(r.items[0].payload, &uid, &lease, &changed), FB_OK);
    assert_int_equal(lease, 3600);
    assert_int_equal(changed, 1700000001);
    len = response(buf, sizeof buf, 1, 1, FB_OP_QUERY, fill_query);
    assert_int_equal(fb_kmip_parse_response(buf, len, &r), FB_OK);
    assert_int_equal(fb_kmip_read_query(r.items[0].payload, ops, 3, &n), FB_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ops[2], FB_OP_OBTAIN_LEASE);
    assert_int_equal(fb_kmip_read_query(r.items[0].payload, ops, 2, &n), FB_ERR_TOO_LARGE);
    assert_int_equal(n, 2);
    /* A lease payload without Lease Time is refused. */
    len = response(buf, sizeof buf, 1, 1, FB_OP_QUERY, fill_query);
    assert_int_equal(fb_kmip_parse_response(buf, len, &r), FB_OK);
    assert_int_equal(fb_kmip_read_lease(r.items[0].payload, &uid, &lease, &changed), FB_ERR_NOT_FOUND);
}

/* fb_kmip_build_request into buf: the writer's error, or FB_OK once fb_kmip_parse_request read
 * it back as one Batch Item of the request's operation (its payload in q->items[0]). */
static fb_status build_read(const fb_request *request, uint8_t *buf, size_t size, fb_request_message *q)
{
    fb_ttlv_writer w;
    fb_ttlv_writer_init(&w, buf, size);
    fb_kmip_build_request(&w, request);
    if (w.status != FB_OK) {
        return w.status;
    }
    assert_int_equal(fb_kmip_parse_request(buf, w.len, q), FB_OK);
    assert_int_equal(q->item_count, 1);
    assert_int_equal(q->items[0].operation, request->operation);
    return FB_OK;
}

static bool payload_has(const fb_request_message *q, uint32_t tag, fb_ttlv_item *item)
{
    return fb_ttlv_find(q->items[0].payload.ptr, q->items[0].payload.len, tag, item) == FB_OK;
}

static void test_builders_read_back(void **state)
{
    uint8_t buf[1024];
    fb_request_message q;
    fb_ttlv_item item;
    int64_t v;
    int32_t v32;
    fb_version versions[2] = {{1, 4}, {1, 2}};
    uint32_t functions[2] = {1, 3};
    fb_bytes names[2];
    fb_request r;
    (void)state;
    names[0] = bytes_of((const uint8_t *)"State", 5);
    names[1] = bytes_of((const uint8_t *)"Name", 4);

    r = on_uid(FB_OP_GET_USAGE_ALLOCATION);
    r.usage_limits_count = 250;
    assert_int_equal(build_read(&r, buf, sizeof buf, &q), FB_OK);
    assert_true(payload_has(&q, FB_TAG_USAGE_LIMITS_COUNT, &item));
    assert_int_equal(fb_ttlv_get_int64(&item, FB_TTLV_LONG_INTEGER, &v), FB_OK);
    assert_int_equal(v, 250);
    r.usage_mask = 4; /* not a member of Get Usage Allocation: ignored */
    assert_int_equal(build_read(&r, buf, sizeof buf, &q), FB_OK);
    assert_false(payload_has(&q, FB_TAG_CRYPTOGRAPHIC_USAGE_MASK, &item));
    r.usage_limits_count = 0; /* at least one unit (§4.18) */
    assert_int_equal(build_read(&r, buf, sizeof buf, &q), FB_ERR_ARG);
    r.usage_limits_count = (uint64_t)INT64_MAX + 1u; /* not a Long Integer */
    assert_int_equal(build_read(&r, buf, sizeof buf, &q), FB_ERR_ARG);

    r = on_uid(FB_OP_CHECK);
    r.usage_limits_count = 250;
    r.usage_mask = 4;
    assert_int_equal(build_read(&r, buf, sizeof buf, &q), FB_OK);
    assert_true(payload_has(&q, FB_TAG_USAGE_LIMITS_COUNT, &item));
    assert_true(payload_has(&q, FB_TAG_CRYPTOGRAPHIC_USAGE_MASK, &item));
    assert_int_equal(fb_ttlv_get_int32(&item, FB_TTLV_INTEGER, &v32), FB_OK);
    assert_int_equal(v32, 4);
    r.usage_limits_count = 0; /* each 0: absent (§4.10: either or both) */
    assert_int_equal(build_read(&r, buf, sizeof buf, &q), FB_OK);
    assert_false(payload_has(&q, FB_TAG_USAGE_LIMITS_COUNT, &item));
    assert_true(payload_has(&q, FB_TAG_CRYPTOGRAPHIC_USAGE_MASK, &item));
    r.usage_mask = 0;
    assert_int_equal(build_read(&r, buf, sizeof buf, &q), FB_OK);
    assert_false(payload_has(&q, FB_TAG_CRYPTOGRAPHIC_USAGE_MASK, &item));
    assert_true(payload_has(&q, FB_TAG_UNIQUE_IDENTIFIER, &item));

    r = on_uid(FB_OP_OBTAIN_LEASE);
    assert_int_equal(build_read(&r, buf, sizeof buf, &q), FB_OK);
    r.uid = bytes_of(NULL, 0); /* the Unique Identifier is required */
    assert_int_equal(build_read(&r, buf, sizeof buf, &q), FB_ERR_ARG);

    r = on_uid(FB_OP_GET_ATTRIBUTES);
    r.names = names;
    r.count = 2;
    assert_int_equal(build_read(&r, buf, sizeof buf, &q), FB_OK);
    assert_true(payload_has(&q, FB_TAG_ATTRIBUTE_NAME, &item));
    assert_int_equal(item.len, 5);
    r.names = NULL; /* a count without a list */
    assert_int_equal(build_read(&r, buf, sizeof buf, &q), FB_ERR_ARG);
    r.count = 0; /* every attribute */
    assert_int_equal(build_read(&r, buf, sizeof buf, &q), FB_OK);
    assert_false(payload_has(&q, FB_TAG_ATTRIBUTE_NAME, &item));
    names[1].len = 0; /* an empty name */
    r.names = names;
    r.count = 2;
    assert_int_equal(build_read(&r, buf, sizeof buf, &q), FB_ERR_ARG);

    memset(&r, 0, sizeof r);
    r.operation = FB_OP_DISCOVER_VERSIONS;
    r.versions = versions;
    r.count = 2;
    assert_int_equal(build_read(&r, buf, sizeof buf, &q), FB_OK);
    assert_false(payload_has(&q, FB_TAG_UNIQUE_IDENTIFIER, &item));
    {
        fb_version got[2];
        size_t n;
        assert_int_equal(fb_kmip_read_versions(q.items[0].payload, got, 2, &n), FB_OK);
        assert_int_equal(n, 2);
        assert_int_equal(got[0].minor, 4);
    }

    memset(&r, 0, sizeof r);
    r.operation = FB_OP_QUERY;
    assert_int_equal(build_read(&r, buf, sizeof buf, &q), FB_OK);
    assert_false(payload_has(&q, FB_TAG_QUERY_FUNCTION, &item));
    r.functions = functions;
    r.count = 2;
    r.names = names; /* another operation's list: ignored */
    assert_int_equal(build_read(&r, buf, sizeof buf, &q), FB_OK);
    {
        uint32_t got[2];
        size_t n;
        /* Query Functions read back as a Query response's Operations would be: by tag. */
        assert_true(payload_has(&q, FB_TAG_QUERY_FUNCTION, &item));
        assert_int_equal(fb_ttlv_get_int32(&item, FB_TTLV_ENUMERATION, &v32), FB_OK);
        assert_int_equal(v32, 1);
        assert_int_equal(fb_kmip_read_query(q.items[0].payload, got, 2, &n), FB_OK);
        assert_int_equal(n, 0); /* no Operation items in a request */
    }

    /* Operations the builder does not build, and no request at all: FB_ERR_ARG. */
    r = on_uid(FB_OP_PUT);
    assert_int_equal(build_read(&r, buf, sizeof buf, &q), FB_ERR_ARG);
    r = on_uid(0x100u | FB_OP_GET);
    assert_int_equal(build_read(&r, buf, sizeof buf, &q), FB_ERR_ARG);
    r = on_uid(0);
    assert_int_equal(build_read(&r, buf, sizeof buf, &q), FB_ERR_ARG);
    {
        fb_ttlv_writer w;
        fb_ttlv_writer_init(&w, buf, sizeof buf);
        fb_kmip_build_request(&w, NULL);
        assert_int_equal(w.status, FB_ERR_ARG);
        assert_int_equal(w.len, 0);
    }
}

/* A relayed Put Replace, as push-relay.ts builds it (KMIP 1.2 §4.28). */
static size_t put_request(uint8_t *buf, size_t size)
{
    fb_ttlv_writer w;
    size_t m, h, pv, it, p, o, kb, kv, a;
    fb_ttlv_writer_init(&w, buf, size);
    m = fb_ttlv_begin(&w, FB_TAG_REQUEST_MESSAGE);
    h = fb_ttlv_begin(&w, FB_TAG_REQUEST_HEADER);
    pv = fb_ttlv_begin(&w, FB_TAG_PROTOCOL_VERSION);
    fb_ttlv_put_int32(&w, FB_TAG_PROTOCOL_VERSION_MAJOR, FB_TTLV_INTEGER, 1);
    fb_ttlv_put_int32(&w, FB_TAG_PROTOCOL_VERSION_MINOR, FB_TTLV_INTEGER, 2);
    fb_ttlv_end(&w, pv);
    fb_ttlv_put_int64(&w, FB_TAG_TIME_STAMP, FB_TTLV_DATE_TIME, 1700000000);
    fb_ttlv_put_int32(&w, FB_TAG_BATCH_COUNT, FB_TTLV_INTEGER, 1);
    fb_ttlv_end(&w, h);
    it = fb_ttlv_begin(&w, FB_TAG_BATCH_ITEM);
    fb_ttlv_put_int32(&w, FB_TAG_OPERATION, FB_TTLV_ENUMERATION, FB_OP_PUT);
    p = fb_ttlv_begin(&w, FB_TAG_REQUEST_PAYLOAD);
    fb_ttlv_put_bytes(&w, FB_TAG_UNIQUE_IDENTIFIER, FB_TTLV_TEXT_STRING, U("tape-key-2"));
    fb_ttlv_put_int32(&w, FB_TAG_PUT_FUNCTION, FB_TTLV_ENUMERATION, FB_PUT_REPLACE);
    fb_ttlv_put_bytes(&w, FB_TAG_REPLACED_UNIQUE_IDENTIFIER, FB_TTLV_TEXT_STRING, U(UID));
    o = fb_ttlv_begin(&w, 0x42008F);
    kb = fb_ttlv_begin(&w, FB_TAG_KEY_BLOCK);
    fb_ttlv_put_int32(&w, FB_TAG_KEY_FORMAT_TYPE, FB_TTLV_ENUMERATION, 1);
    kv = fb_ttlv_begin(&w, FB_TAG_KEY_VALUE);
    fb_ttlv_put_bytes(&w, FB_TAG_KEY_MATERIAL, FB_TTLV_BYTE_STRING, material_32, 32);
    fb_ttlv_end(&w, kv);
    fb_ttlv_end(&w, kb);
    fb_ttlv_end(&w, o);
    a = fb_ttlv_begin(&w, FB_TAG_ATTRIBUTE);
    fb_ttlv_put_bytes(&w, FB_TAG_ATTRIBUTE_NAME, FB_TTLV_TEXT_STRING, U("State"));
    fb_ttlv_put_int32(&w, FB_TAG_ATTRIBUTE_VALUE, FB_TTLV_ENUMERATION, 2);
    fb_ttlv_end(&w, a);
    fb_ttlv_end(&w, p);
    fb_ttlv_end(&w, it);
    fb_ttlv_end(&w, m);
    assert_int_equal(w.status, FB_OK);
    return w.len;
}

static void test_put_and_ack(void **state)
{
    uint8_t buf[1024];
    uint8_t ack[512];
    uint8_t material[32];
    fb_request_message q;
    fb_put put;
    fb_attribute a;
    fb_ttlv_writer w;
    fb_response r;
    size_t len;
    (void)state;
    len = put_request(buf, sizeof buf);
    assert_int_equal(fb_kmip_parse_request(buf, len, &q), FB_OK);
    assert_int_equal(q.items[0].operation, FB_OP_PUT);
    assert_int_equal(fb_kmip_read_put(q.items[0].payload, material, sizeof material, &put), FB_OK);
    assert_int_equal(put.put_function, FB_PUT_REPLACE);
    assert_int_equal(put.replaced_uid.len, 10);
    assert_int_equal(put.key.uid.len, 10);
    assert_int_equal(put.key.object_type, 2);
    assert_int_equal(put.key.material_len, 32);
    assert_memory_equal(material, material_32, 32);
    assert_int_equal(fb_kmip_next_attribute(&put.attributes, &a), FB_OK);
    assert_memory_equal(a.name.ptr, "State", 5);
    assert_int_equal(fb_kmip_next_attribute(&put.attributes, &a), FB_ERR_NOT_FOUND);
    assert_int_equal(fb_kmip_read_put(q.items[0].payload, material, 16, &put), FB_ERR_TOO_LARGE);
    /* The acknowledgement: one Success item per request item, with its operation. */
    fb_ttlv_writer_init(&w, ack, sizeof ack);
    fb_kmip_build_ack(&w, &q, 1700000005);
    assert_int_equal(w.status, FB_OK);
    assert_int_equal(fb_kmip_parse_response(ack, w.len, &r), FB_OK);
    assert_int_equal(r.item_count, 1);
    assert_int_equal(r.items[0].operation, FB_OP_PUT);
    assert_int_equal(r.items[0].result_status, FB_RESULT_SUCCESS);
    assert_true(r.items[0].has_payload);
    assert_int_equal(r.items[0].payload.len, 0);
    assert_int_equal(r.time_stamp, 1700000005);
}


static void fill_attributes(fb_ttlv_writer *w)
{
    size_t a;
    fb_ttlv_put_bytes(w, FB_TAG_UNIQUE_IDENTIFIER, FB_TTLV_TEXT_STRING, U(UID));
    a = fb_ttlv_begin(w, FB_TAG_ATTRIBUTE);
    fb_ttlv_put_bytes(w, FB_TAG_ATTRIBUTE_NAME, FB_TTLV_TEXT_STRING, U("State"));
    fb_ttlv_put_int32(w, FB_TAG_ATTRIBUTE_VALUE, FB_TTLV_ENUMERATION, 2);
    fb_ttlv_end(w, a);
    a = fb_ttlv_begin(w, FB_TAG_ATTRIBUTE);
    fb_ttlv_put_bytes(w, FB_TAG_ATTRIBUTE_NAME, FB_TTLV_TEXT_STRING, U("Name"));
    fb_ttlv_put_int32(w, FB_TAG_ATTRIBUTE_INDEX, FB_TTLV_INTEGER, 1);
    fb_ttlv_end(w, a);
}

static void test_get_attributes_response(void **state)
{
    uint8_t buf[1024];
    fb_response r;
    fb_bytes uid;
    fb_ttlv_reader attrs;
    fb_attribute a;
    int32_t v;
    size_t len;
    (void)state;
    len = response(buf, sizeof buf, 1, 1, FB_OP_GET_ATTRIBUTES, fill_attributes);
    assert_int_equal(fb_kmip_parse_response(buf, len, &r), FB_OK);
    assert_int_equal(fb_kmip_read_attributes(r.items[0].payload, &uid, &attrs), FB_OK);
    assert_int_equal(uid.len, 10);
    assert_int_equal(fb_kmip_next_attribute(&attrs, &a), FB_OK);
    assert_memory_equal(a.name.ptr, "State", 5);
    assert_true(a.has_value);
    assert_false(a.has_index);
    assert_int_equal(fb_ttlv_get_int32(&a.value, FB_TTLV_ENUMERATION, &v), FB_OK);
    assert_int_equal(v, 2);
    assert_int_equal(fb_kmip_next_attribute(&attrs, &a), FB_OK);
    assert_memory_equal(a.name.ptr, "Name", 4);
    assert_true(a.has_index);
    assert_int_equal(a.index, 1);
    assert_false(a.has_value);
    assert_int_equal(fb_kmip_next_attribute(&attrs, &a), FB_ERR_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_matches_vector),
        cmocka_unit_test(test_response_vector),
        cmocka_unit_test(test_response_checks),
        cmocka_unit_test(test_read_get_material),
        cmocka_unit_test(test_nonce_mac),
        cmocka_unit_test(test_nonce_mac_request),
        cmocka_unit_test(test_lease_query),
        cmocka_unit_test(test_builders_read_back),
        cmocka_unit_test(test_put_and_ack),
        cmocka_unit_test(test_get_attributes_response),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
