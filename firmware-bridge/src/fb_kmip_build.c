/* KMIP Request Messages of the device operations and push acknowledgements (PROTOCOL.md §5;
 * KMIP 1.2 §4, §7.2). The readers are in fb_kmip_read.c. */
#include <string.h>
#include "fb/fb_kmip.h"
#include "fb_internal.h"


/* Tags go to the writer as XX of 0x4200XX (fb_internal.h: FB_K, fb_w_*). */
#define K(tag) FB_K(tag)
#define w_begin fb_w_begin
#define w_i32(w, t, type, v) fb_w_int((w), (t), (uint8_t)(type), (uint32_t)(v))
#define w_i64(w, t, type, v) fb_w_long((w), (t), (uint8_t)(type), (uint64_t)(v))
#define w_bytes(w, t, type, v, len) fb_w_bytes((w), (t), (uint8_t)(type), (v), (len))

/* ------------------------------------------------------------------ helpers: writing */

static void put_version(fb_ttlv_writer *w, int32_t major, int32_t minor)
{
    size_t pv = w_begin(w, K(FB_TAG_PROTOCOL_VERSION));
    w_i32(w, K(FB_TAG_PROTOCOL_VERSION_MAJOR), FB_TTLV_INTEGER, major);
    w_i32(w, K(FB_TAG_PROTOCOL_VERSION_MINOR), FB_TTLV_INTEGER, minor);
    fb_ttlv_end(w, pv);
}

/* Request Message and its header (KMIP 1.2 §7.2, fields in Table 232's order), version 1.2. */
static size_t begin_request(fb_ttlv_writer *w, int32_t batch_count, bool batch_order)
{
    size_t message = w_begin(w, K(FB_TAG_REQUEST_MESSAGE));
    size_t header = w_begin(w, K(FB_TAG_REQUEST_HEADER));
    put_version(w, 1, 2);
    if (batch_order) {
        w_i32(w, K(FB_TAG_BATCH_ORDER_OPTION), FB_TTLV_BOOLEAN, 1);
    }
    w_i32(w, K(FB_TAG_BATCH_COUNT), FB_TTLV_INTEGER, batch_count);
    fb_ttlv_end(w, header);
    return message;
}

typedef struct item_marks {
    size_t message;
    size_t item;
    size_t payload;
} item_marks;

static void fail(fb_ttlv_writer *w)
{
    if (w->status == FB_OK) {
        w->status = FB_ERR_ARG;
    }
}

/* A Batch Item of `operation`, up to its open Request Payload. */
static void begin_item(fb_ttlv_writer *w, uint32_t operation, item_marks *m)
{
    m->item = w_begin(w, K(FB_TAG_BATCH_ITEM));
    w_i32(w, K(FB_TAG_OPERATION), FB_TTLV_ENUMERATION, (int32_t)operation);
    m->payload = w_begin(w, K(FB_TAG_REQUEST_PAYLOAD));
}

static void end_item(fb_ttlv_writer *w, const item_marks *m)
{
    fb_ttlv_end(w, m->payload);
    fb_ttlv_end(w, m->item);
}

static void put_text(fb_ttlv_writer *w, uint8_t tag, const uint8_t *text, size_t len)
{
    if (text == NULL || len == 0u) {
        fail(w); /* identifiers and names are never empty */
        return;
    }
    w_bytes(w, tag, FB_TTLV_TEXT_STRING, text, len);
}

/* A Request Message with one Batch Item of `operation`, its payload open. Close with end_one. */
static void begin_plain(fb_ttlv_writer *w, uint32_t operation, item_marks *m)
{
    m->message = begin_request(w, 1, false);
    begin_item(w, operation, m);
}

/* The same, the payload starting with the Unique Identifier (NULL or empty: FB_ERR_ARG). */
static void begin_one(fb_ttlv_writer *w, uint32_t operation, const uint8_t *uid, size_t uid_len,
                      item_marks *m)
{
    begin_plain(w, operation, m);
    put_text(w, K(FB_TAG_UNIQUE_IDENTIFIER), uid, uid_len);
}

static void end_one(fb_ttlv_writer *w, const item_marks *m)
{
    end_item(w, m);
    fb_ttlv_end(w, m->message);
}

/* ------------------------------------------------------------------ request builders */

/* A request on `uid` with an optional Usage Limits Count and Cryptographic Usage Mask: Get and
 * Obtain Lease (neither), Get Usage Allocation (the count), Check (either or both, §4.10). */
static void uid_request(fb_ttlv_writer *w, uint32_t operation, const uint8_t *uid, size_t uid_len,
                        const uint64_t *usage_limits_count, const uint32_t *usage_mask)
{
    item_marks m;
    if (usage_limits_count != NULL && *usage_limits_count > (uint64_t)INT64_MAX) {
        fail(w);
    }
    begin_one(w, operation, uid, uid_len, &m);
    if (usage_limits_count != NULL) {
        w_i64(w, K(FB_TAG_USAGE_LIMITS_COUNT), FB_TTLV_LONG_INTEGER, *usage_limits_count);
    }
    if (usage_mask != NULL) {
        w_i32(w, K(FB_TAG_CRYPTOGRAPHIC_USAGE_MASK), FB_TTLV_INTEGER, *usage_mask);
    }
    end_one(w, &m);
}

void fb_kmip_build_get(fb_ttlv_writer *w, const uint8_t *uid, size_t uid_len)
{
    uid_request(w, FB_OP_GET, uid, uid_len, NULL, NULL);
}

/* A request whose payload is a list: Get Attributes on `uid` (Attribute Names, fb_bytes), Query
 * (Query Functions, uint32_t), Discover Versions (Protocol Versions, fb_version); `uid` NULL for
 * the last two. A NULL list with a count is FB_ERR_ARG. */
static void list_request(fb_ttlv_writer *w, uint32_t operation, const uint8_t *uid, size_t uid_len,
                         const void *list, size_t count)
{
    item_marks m;
    size_t i;
    if (list == NULL && count > 0u) {
        fail(w);
    }
    if (operation == FB_OP_GET_ATTRIBUTES) {
        begin_one(w, operation, uid, uid_len, &m);
    } else {
        begin_plain(w, operation, &m);
    }
    for (i = 0; w->status == FB_OK && i < count; i++) {
        if (operation == FB_OP_GET_ATTRIBUTES) {
            const fb_bytes *name = (const fb_bytes *)list + i;
            put_text(w, K(FB_TAG_ATTRIBUTE_NAME), name->ptr, name->len);
        } else if (operation == FB_OP_QUERY) {
            w_i32(w, K(FB_TAG_QUERY_FUNCTION), FB_TTLV_ENUMERATION, ((const uint32_t *)list)[i]);
        } else {
            const fb_version *v = (const fb_version *)list + i;
            put_version(w, v->major, v->minor);
        }
    }
    end_one(w, &m);
}

void fb_kmip_build_get_attributes(fb_ttlv_writer *w, const uint8_t *uid, size_t uid_len,
                                  const fb_bytes *names, size_t name_count)
{
    list_request(w, FB_OP_GET_ATTRIBUTES, uid, uid_len, names, name_count);
}

void fb_kmip_build_get_usage_allocation(fb_ttlv_writer *w, const uint8_t *uid, size_t uid_len,
                                        uint64_t count)
{
    if (count == 0u) {
        fail(w); /* at least one unit (§4.18); above INT64_MAX is refused by uid_request */
    }
    uid_request(w, FB_OP_GET_USAGE_ALLOCATION, uid, uid_len, &count, NULL);
}

void fb_kmip_build_obtain_lease(fb_ttlv_writer *w, const uint8_t *uid, size_t uid_len)
{
    uid_request(w, FB_OP_OBTAIN_LEASE, uid, uid_len, NULL, NULL);
}

void fb_kmip_build_check(fb_ttlv_writer *w, const uint8_t *uid, size_t uid_len,
                         const uint64_t *usage_limits_count, const uint32_t *usage_mask)
{
    uid_request(w, FB_OP_CHECK, uid, uid_len, usage_limits_count, usage_mask);
}

void fb_kmip_build_query(fb_ttlv_writer *w, const uint32_t *functions, size_t count)
{
    list_request(w, FB_OP_QUERY, NULL, 0, functions, count);
}

void fb_kmip_build_discover_versions(fb_ttlv_writer *w, const fb_version *versions, size_t count)
{
    list_request(w, FB_OP_DISCOVER_VERSIONS, NULL, 0, versions, count);
}

static const uint8_t nonce_name[] = FB_NONCE_ATTRIBUTE;
#define NONCE_NAME_LEN (sizeof nonce_name - 1u)

void fb_kmip_build_nonce_mac(fb_ttlv_writer *w, const uint8_t *uid, size_t uid_len,
                             const uint8_t *mac_uid, size_t mac_uid_len, const uint8_t *nonce,
                             size_t nonce_len, fb_nonce_setter setter)
{
    item_marks m;
    size_t attribute;
    size_t spec;
    size_t info;
    if (nonce == NULL || nonce_len < FB_NONCE_MIN || nonce_len > FB_NONCE_MAX ||
        (setter != FB_NONCE_MODIFY && setter != FB_NONCE_ADD)) {
        fail(w);
        return;
    }
    /* §5.1: Batch Order Option true, exactly two items. */
    m.message = begin_request(w, 2, true);
    begin_item(w, setter == FB_NONCE_ADD ? FB_OP_ADD_ATTRIBUTE : FB_OP_MODIFY_ATTRIBUTE, &m);
    put_text(w, K(FB_TAG_UNIQUE_IDENTIFIER), uid, uid_len);
    attribute = w_begin(w, K(FB_TAG_ATTRIBUTE));
    put_text(w, K(FB_TAG_ATTRIBUTE_NAME), nonce_name, NONCE_NAME_LEN);
    w_bytes(w, K(FB_TAG_ATTRIBUTE_VALUE), FB_TTLV_BYTE_STRING, nonce, nonce_len);
    fb_ttlv_end(w, attribute);
    end_item(w, &m);
    begin_item(w, FB_OP_GET, &m);
    put_text(w, K(FB_TAG_UNIQUE_IDENTIFIER), uid, uid_len);
    spec = w_begin(w, K(FB_TAG_KEY_WRAPPING_SPECIFICATION));
    w_i32(w, K(FB_TAG_WRAPPING_METHOD), FB_TTLV_ENUMERATION, (int32_t)FB_WRAPPING_MAC_SIGN);
    info = w_begin(w, K(FB_TAG_MAC_SIGNATURE_KEY_INFORMATION));
    put_text(w, K(FB_TAG_UNIQUE_IDENTIFIER), mac_uid, mac_uid_len);
    fb_ttlv_end(w, info);
    put_text(w, K(FB_TAG_ATTRIBUTE_NAME), nonce_name, NONCE_NAME_LEN);
    fb_ttlv_end(w, spec);
    end_one(w, &m);
}

void fb_kmip_build_ack(fb_ttlv_writer *w, const fb_request_message *request, int64_t now)
{
    size_t message;
    size_t header;
    size_t i;
    if (request == NULL || request->item_count > FB_MAX_BATCH_ITEMS) {
        fail(w);
        return;
    }
    message = w_begin(w, K(FB_TAG_RESPONSE_MESSAGE));
    header = w_begin(w, K(FB_TAG_RESPONSE_HEADER));
    put_version(w, request->version.major, request->version.minor);
    w_i64(w, K(FB_TAG_TIME_STAMP), FB_TTLV_DATE_TIME, now);
    w_i32(w, K(FB_TAG_BATCH_COUNT), FB_TTLV_INTEGER, (int32_t)request->item_count);
    fb_ttlv_end(w, header);
    for (i = 0; i < request->item_count; i++) {
        const fb_request_item *it = &request->items[i];
        size_t item = w_begin(w, K(FB_TAG_BATCH_ITEM));
        size_t payload;
        w_i32(w, K(FB_TAG_OPERATION), FB_TTLV_ENUMERATION, (int32_t)it->operation);
        if (it->unique_batch_item_id.len > 0u) {
            w_bytes(w, K(FB_TAG_UNIQUE_BATCH_ITEM_ID), FB_TTLV_BYTE_STRING,
                              it->unique_batch_item_id.ptr, it->unique_batch_item_id.len);
        }
        w_i32(w, K(FB_TAG_RESULT_STATUS), FB_TTLV_ENUMERATION, (int32_t)FB_RESULT_SUCCESS);
        payload = w_begin(w, K(FB_TAG_RESPONSE_PAYLOAD));
        fb_ttlv_end(w, payload);
        fb_ttlv_end(w, item);
    }
    fb_ttlv_end(w, message);
}
