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

/* Closes the Request Message of a fb_kmip_build_request: payload, item, message. */
static void end_one(fb_ttlv_writer *w, const item_marks *m)
{
    end_item(w, m);
    fb_ttlv_end(w, m->message);
}

/* ------------------------------------------------------------------ request builders */

/* What the payload of each operation fb_kmip_build_request builds holds (fb_kmip.h): a table
 * of (operation, parts) instead of one builder per operation. */
#define P_UID 0x01u      /* the Unique Identifier, first */
#define P_UNITS 0x02u    /* the Usage Limits Count, required (>= 1, §4.18) */
#define P_PROTECT 0x04u  /* Usage Limits Count and Cryptographic Usage Mask, each if non-zero (§4.10) */
#define P_NAMES 0x08u    /* `count` Attribute Names */
#define P_FUNCTIONS 0x10u /* `count` Query Functions */
#define P_VERSIONS 0x20u /* `count` Protocol Versions */

static const uint8_t request_parts[][2] = {
    {FB_OP_GET, P_UID},
    {FB_OP_GET_ATTRIBUTES, P_UID | P_NAMES},
    {FB_OP_GET_USAGE_ALLOCATION, P_UID | P_UNITS},
    {FB_OP_OBTAIN_LEASE, P_UID},
    {FB_OP_CHECK, P_UID | P_PROTECT},
    {FB_OP_QUERY, P_FUNCTIONS},
    {FB_OP_DISCOVER_VERSIONS, P_VERSIONS},
};

static const uint8_t nonce_name[] = FB_NONCE_ATTRIBUTE;
#define NONCE_NAME_LEN (sizeof nonce_name - 1u)

void fb_kmip_build_request(fb_ttlv_writer *w, const fb_request *request)
{
    item_marks m;
    unsigned parts = 0;
    size_t i;
    size_t count;
    const void *list;
    bool nonce_mac;
    bool bad;
    for (i = 0; request != NULL && i < sizeof request_parts / sizeof request_parts[0]; i++) {
        if (request_parts[i][0] == request->operation) {
            parts = request_parts[i][1];
        }
    }
    if (parts == 0u) {
        fail(w); /* not one of the seven (or no request) */
        return;
    }
    list = (parts & P_NAMES) != 0u       ? (const void *)request->names
           : (parts & P_FUNCTIONS) != 0u ? (const void *)request->functions
                                         : (const void *)request->versions;
    count = (parts & (P_NAMES | P_FUNCTIONS | P_VERSIONS)) != 0u ? request->count : 0u;
    nonce_mac = request->operation == FB_OP_GET && request->mac_uid.ptr != NULL;
    /* Each refusal a bit (one test, no branch per condition): a count without its list; a
     * count that is no Long Integer; no unit (§4.18); a nonce not of 16..64 bytes (§5.1). */
    bad = (list == NULL) & (count > 0u);
    bad |= request->usage_limits_count > (uint64_t)INT64_MAX;
    bad |= ((parts & P_UNITS) != 0u) & (request->usage_limits_count == 0u);
    if (nonce_mac) {
        bad |= (request->nonce == NULL) | (request->nonce_len - FB_NONCE_MIN > FB_NONCE_MAX - FB_NONCE_MIN) |
               ((unsigned)request->setter > FB_NONCE_ADD);
    }
    if (bad) {
        fail(w);
    }
    /* The nonce-MAC batch (§5.1): Batch Order Option true, exactly two items, the first setting
     * x-Nonce on the key. */
    m.message = begin_request(w, nonce_mac ? 2 : 1, nonce_mac);
    if (nonce_mac) {
        size_t attribute;
        begin_item(w, request->setter == FB_NONCE_ADD ? FB_OP_ADD_ATTRIBUTE : FB_OP_MODIFY_ATTRIBUTE, &m);
        put_text(w, K(FB_TAG_UNIQUE_IDENTIFIER), request->uid.ptr, request->uid.len);
        attribute = w_begin(w, K(FB_TAG_ATTRIBUTE));
        put_text(w, K(FB_TAG_ATTRIBUTE_NAME), nonce_name, NONCE_NAME_LEN);
        w_bytes(w, K(FB_TAG_ATTRIBUTE_VALUE), FB_TTLV_BYTE_STRING, request->nonce, request->nonce_len);
        fb_ttlv_end(w, attribute);
        end_item(w, &m);
    }
    begin_item(w, request->operation, &m);
    if ((parts & P_UID) != 0u) {
        put_text(w, K(FB_TAG_UNIQUE_IDENTIFIER), request->uid.ptr, request->uid.len);
    }
    if (nonce_mac) {
        /* The Get MAC/sign-wrapped with the key mac_uid over the Key Value and x-Nonce. */
        size_t spec = w_begin(w, K(FB_TAG_KEY_WRAPPING_SPECIFICATION));
        size_t info;
        w_i32(w, K(FB_TAG_WRAPPING_METHOD), FB_TTLV_ENUMERATION, (int32_t)FB_WRAPPING_MAC_SIGN);
        info = w_begin(w, K(FB_TAG_MAC_SIGNATURE_KEY_INFORMATION));
        put_text(w, K(FB_TAG_UNIQUE_IDENTIFIER), request->mac_uid.ptr, request->mac_uid.len);
        fb_ttlv_end(w, info);
        put_text(w, K(FB_TAG_ATTRIBUTE_NAME), nonce_name, NONCE_NAME_LEN);
        fb_ttlv_end(w, spec);
    }
    if ((parts & (P_UNITS | P_PROTECT)) != 0u && request->usage_limits_count != 0u) {
        w_i64(w, K(FB_TAG_USAGE_LIMITS_COUNT), FB_TTLV_LONG_INTEGER, request->usage_limits_count);
    }
    if ((parts & P_PROTECT) != 0u && request->usage_mask != 0u) {
        w_i32(w, K(FB_TAG_CRYPTOGRAPHIC_USAGE_MASK), FB_TTLV_INTEGER, request->usage_mask);
    }
    for (i = 0; w->status == FB_OK && i < count; i++) {
        if ((parts & P_NAMES) != 0u) {
            put_text(w, K(FB_TAG_ATTRIBUTE_NAME), request->names[i].ptr, request->names[i].len);
        } else if ((parts & P_FUNCTIONS) != 0u) {
            w_i32(w, K(FB_TAG_QUERY_FUNCTION), FB_TTLV_ENUMERATION, request->functions[i]);
        } else {
            put_version(w, request->versions[i].major, request->versions[i].minor);
        }
    }
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
        w_i32(w, K(FB_TAG_OPERATION), FB_TTLV_ENUMERATION, (int32_t)it->operation);
        if (it->unique_batch_item_id.len > 0u) {
            w_bytes(w, K(FB_TAG_UNIQUE_BATCH_ITEM_ID), FB_TTLV_BYTE_STRING,
                              it->unique_batch_item_id.ptr, it->unique_batch_item_id.len);
        }
        w_i32(w, K(FB_TAG_RESULT_STATUS), FB_TTLV_ENUMERATION, (int32_t)FB_RESULT_SUCCESS);
        /* An empty Response Payload: a Structure of length 0. */
        w_bytes(w, K(FB_TAG_RESPONSE_PAYLOAD), FB_TTLV_STRUCTURE, NULL, 0);
        fb_ttlv_end(w, item);
    }
    fb_ttlv_end(w, message);
}
