/* KMIP messages of the device operations (PROTOCOL.md §5; KMIP 1.2 §4, §6, §7). */
#include <string.h>
#include "fb/fb_kmip.h"

/* ------------------------------------------------------------------ helpers: reading */

/* A required child of `region` of `tag` and `type`: FB_ERR_NOT_FOUND / FB_ERR_MALFORMED. */
static fb_status find_typed(fb_bytes region, uint32_t tag, fb_ttlv_type type, fb_ttlv_item *item)
{
    fb_status status = fb_ttlv_find(region.ptr, region.len, tag, item);
    if (status != FB_OK) {
        return status;
    }
    return item->type == type ? FB_OK : FB_ERR_MALFORMED;
}

static fb_status find_int32(fb_bytes region, uint32_t tag, fb_ttlv_type type, int32_t *out)
{
    fb_ttlv_item item;
    fb_status status = find_typed(region, tag, type, &item);
    return status != FB_OK ? status : fb_ttlv_get_int32(&item, type, out);
}

static fb_status find_u32(fb_bytes region, uint32_t tag, fb_ttlv_type type, uint32_t *out)
{
    int32_t v = 0;
    fb_status status = find_int32(region, tag, type, &v);
    if (status == FB_OK) {
        *out = (uint32_t)v;
    }
    return status;
}

static fb_status find_region(fb_bytes region, uint32_t tag, fb_ttlv_type type, fb_bytes *out)
{
    fb_ttlv_item item;
    fb_status status = find_typed(region, tag, type, &item);
    if (status == FB_OK) {
        out->ptr = item.value;
        out->len = item.len;
    }
    return status;
}

/* An optional field: absent is FB_OK (out untouched), present with the wrong type is not. */
static fb_status optional(fb_status status)
{
    return status == FB_ERR_NOT_FOUND ? FB_OK : status;
}

static fb_bytes region_of(const fb_ttlv_item *item)
{
    fb_bytes b;
    b.ptr = item->value;
    b.len = item->len;
    return b;
}

static void clear_bytes(fb_bytes *b)
{
    b->ptr = NULL;
    b->len = 0;
}

/* The whole body is one Structure of `tag`: its children. */
static fb_status single_message(const uint8_t *body, size_t len, uint32_t tag, fb_bytes *children)
{
    fb_ttlv_reader r;
    fb_ttlv_item item;
    fb_status status;
    if (body == NULL) {
        return FB_ERR_ARG;
    }
    fb_ttlv_reader_init(&r, body, len);
    status = fb_ttlv_next(&r, &item);
    if (status != FB_OK) {
        return FB_ERR_MALFORMED;
    }
    if (item.tag != tag || item.type != FB_TTLV_STRUCTURE || r.pos != len) {
        return FB_ERR_MALFORMED;
    }
    *children = region_of(&item);
    return FB_OK;
}

static fb_status read_version(fb_bytes header, fb_version *version)
{
    fb_bytes pv;
    fb_status status = find_region(header, FB_TAG_PROTOCOL_VERSION, FB_TTLV_STRUCTURE, &pv);
    if (status == FB_OK) {
        status = find_int32(pv, FB_TAG_PROTOCOL_VERSION_MAJOR, FB_TTLV_INTEGER, &version->major);
    }
    if (status == FB_OK) {
        status = find_int32(pv, FB_TAG_PROTOCOL_VERSION_MINOR, FB_TTLV_INTEGER, &version->minor);
    }
    return status == FB_ERR_NOT_FOUND ? FB_ERR_MALFORMED : status;
}

/* ------------------------------------------------------------------ helpers: writing */

static void put_version(fb_ttlv_writer *w, int32_t major, int32_t minor)
{
    size_t pv = fb_ttlv_begin(w, FB_TAG_PROTOCOL_VERSION);
    fb_ttlv_put_int32(w, FB_TAG_PROTOCOL_VERSION_MAJOR, FB_TTLV_INTEGER, major);
    fb_ttlv_put_int32(w, FB_TAG_PROTOCOL_VERSION_MINOR, FB_TTLV_INTEGER, minor);
    fb_ttlv_end(w, pv);
}

/* Request Message and its header (KMIP 1.2 §7.2, fields in Table 232's order), version 1.2. */
static size_t begin_request(fb_ttlv_writer *w, int32_t batch_count, bool batch_order)
{
    size_t message = fb_ttlv_begin(w, FB_TAG_REQUEST_MESSAGE);
    size_t header = fb_ttlv_begin(w, FB_TAG_REQUEST_HEADER);
    put_version(w, 1, 2);
    if (batch_order) {
        fb_ttlv_put_bool(w, FB_TAG_BATCH_ORDER_OPTION, true);
    }
    fb_ttlv_put_int32(w, FB_TAG_BATCH_COUNT, FB_TTLV_INTEGER, batch_count);
    fb_ttlv_end(w, header);
    return message;
}

typedef struct item_marks {
    size_t item;
    size_t payload;
} item_marks;

static item_marks begin_item(fb_ttlv_writer *w, uint32_t operation)
{
    item_marks m;
    m.item = fb_ttlv_begin(w, FB_TAG_BATCH_ITEM);
    fb_ttlv_put_int32(w, FB_TAG_OPERATION, FB_TTLV_ENUMERATION, (int32_t)operation);
    m.payload = fb_ttlv_begin(w, FB_TAG_REQUEST_PAYLOAD);
    return m;
}

static void end_item(fb_ttlv_writer *w, item_marks m)
{
    fb_ttlv_end(w, m.payload);
    fb_ttlv_end(w, m.item);
}

static void put_text(fb_ttlv_writer *w, uint32_t tag, const uint8_t *text, size_t len)
{
    if (text == NULL || len == 0u) {
        if (w->status == FB_OK) {
            w->status = FB_ERR_ARG; /* identifiers and names are never empty */
        }
        return;
    }
    fb_ttlv_put_bytes(w, tag, FB_TTLV_TEXT_STRING, text, len);
}

/* A message with one item whose payload is just the Unique Identifier. */
static void build_uid_only(fb_ttlv_writer *w, uint32_t operation, const uint8_t *uid, size_t uid_len)
{
    size_t message = begin_request(w, 1, false);
    item_marks m = begin_item(w, operation);
    put_text(w, FB_TAG_UNIQUE_IDENTIFIER, uid, uid_len);
    end_item(w, m);
    fb_ttlv_end(w, message);
}

/* ------------------------------------------------------------------ request builders */

void fb_kmip_build_get(fb_ttlv_writer *w, const uint8_t *uid, size_t uid_len)
{
    build_uid_only(w, FB_OP_GET, uid, uid_len);
}

void fb_kmip_build_get_attributes(fb_ttlv_writer *w, const uint8_t *uid, size_t uid_len,
                                  const fb_bytes *names, size_t name_count)
{
    size_t message = begin_request(w, 1, false);
    item_marks m = begin_item(w, FB_OP_GET_ATTRIBUTES);
    size_t i;
    put_text(w, FB_TAG_UNIQUE_IDENTIFIER, uid, uid_len);
    if (names == NULL && name_count > 0u && w->status == FB_OK) {
        w->status = FB_ERR_ARG;
    }
    for (i = 0; w->status == FB_OK && i < name_count; i++) {
        put_text(w, FB_TAG_ATTRIBUTE_NAME, names[i].ptr, names[i].len);
    }
    end_item(w, m);
    fb_ttlv_end(w, message);
}

void fb_kmip_build_get_usage_allocation(fb_ttlv_writer *w, const uint8_t *uid, size_t uid_len,
                                        uint64_t count)
{
    size_t message;
    item_marks m;
    if (count == 0u || count > (uint64_t)INT64_MAX) {
        if (w->status == FB_OK) {
            w->status = FB_ERR_ARG;
        }
        return;
    }
    message = begin_request(w, 1, false);
    m = begin_item(w, FB_OP_GET_USAGE_ALLOCATION);
    put_text(w, FB_TAG_UNIQUE_IDENTIFIER, uid, uid_len);
    fb_ttlv_put_int64(w, FB_TAG_USAGE_LIMITS_COUNT, FB_TTLV_LONG_INTEGER, (int64_t)count);
    end_item(w, m);
    fb_ttlv_end(w, message);
}

void fb_kmip_build_obtain_lease(fb_ttlv_writer *w, const uint8_t *uid, size_t uid_len)
{
    build_uid_only(w, FB_OP_OBTAIN_LEASE, uid, uid_len);
}

void fb_kmip_build_check(fb_ttlv_writer *w, const uint8_t *uid, size_t uid_len,
                         const uint64_t *usage_limits_count, const uint32_t *usage_mask)
{
    size_t message;
    item_marks m;
    if (usage_limits_count != NULL && *usage_limits_count > (uint64_t)INT64_MAX) {
        if (w->status == FB_OK) {
            w->status = FB_ERR_ARG;
        }
        return;
    }
    message = begin_request(w, 1, false);
    m = begin_item(w, FB_OP_CHECK);
    put_text(w, FB_TAG_UNIQUE_IDENTIFIER, uid, uid_len);
    if (usage_limits_count != NULL) {
        fb_ttlv_put_int64(w, FB_TAG_USAGE_LIMITS_COUNT, FB_TTLV_LONG_INTEGER, (int64_t)*usage_limits_count);
    }
    if (usage_mask != NULL) {
        fb_ttlv_put_int32(w, FB_TAG_CRYPTOGRAPHIC_USAGE_MASK, FB_TTLV_INTEGER, (int32_t)*usage_mask);
    }
    end_item(w, m);
    fb_ttlv_end(w, message);
}

void fb_kmip_build_query(fb_ttlv_writer *w, const uint32_t *functions, size_t count)
{
    size_t message = begin_request(w, 1, false);
    item_marks m = begin_item(w, FB_OP_QUERY);
    size_t i;
    if (functions == NULL && count > 0u && w->status == FB_OK) {
        w->status = FB_ERR_ARG;
    }
    for (i = 0; w->status == FB_OK && i < count; i++) {
        fb_ttlv_put_int32(w, FB_TAG_QUERY_FUNCTION, FB_TTLV_ENUMERATION, (int32_t)functions[i]);
    }
    end_item(w, m);
    fb_ttlv_end(w, message);
}

void fb_kmip_build_discover_versions(fb_ttlv_writer *w, const fb_version *versions, size_t count)
{
    size_t message = begin_request(w, 1, false);
    item_marks m = begin_item(w, FB_OP_DISCOVER_VERSIONS);
    size_t i;
    if (versions == NULL && count > 0u && w->status == FB_OK) {
        w->status = FB_ERR_ARG;
    }
    for (i = 0; w->status == FB_OK && i < count; i++) {
        put_version(w, versions[i].major, versions[i].minor);
    }
    end_item(w, m);
    fb_ttlv_end(w, message);
}

static const uint8_t nonce_name[] = FB_NONCE_ATTRIBUTE;
#define NONCE_NAME_LEN (sizeof nonce_name - 1u)

void fb_kmip_build_nonce_mac(fb_ttlv_writer *w, const uint8_t *uid, size_t uid_len,
                             const uint8_t *mac_uid, size_t mac_uid_len, const uint8_t *nonce,
                             size_t nonce_len, fb_nonce_setter setter)
{
    size_t message;
    size_t attribute;
    size_t spec;
    size_t info;
    item_marks m;
    if (nonce == NULL || nonce_len < FB_NONCE_MIN || nonce_len > FB_NONCE_MAX ||
        (setter != FB_NONCE_MODIFY && setter != FB_NONCE_ADD)) {
        if (w->status == FB_OK) {
            w->status = FB_ERR_ARG;
        }
        return;
    }
    /* §5.1: Batch Order Option true, exactly two items. */
    message = begin_request(w, 2, true);
    m = begin_item(w, setter == FB_NONCE_ADD ? FB_OP_ADD_ATTRIBUTE : FB_OP_MODIFY_ATTRIBUTE);
    put_text(w, FB_TAG_UNIQUE_IDENTIFIER, uid, uid_len);
    attribute = fb_ttlv_begin(w, FB_TAG_ATTRIBUTE);
    put_text(w, FB_TAG_ATTRIBUTE_NAME, nonce_name, NONCE_NAME_LEN);
    fb_ttlv_put_bytes(w, FB_TAG_ATTRIBUTE_VALUE, FB_TTLV_BYTE_STRING, nonce, nonce_len);
    fb_ttlv_end(w, attribute);
    end_item(w, m);
    m = begin_item(w, FB_OP_GET);
    put_text(w, FB_TAG_UNIQUE_IDENTIFIER, uid, uid_len);
    spec = fb_ttlv_begin(w, FB_TAG_KEY_WRAPPING_SPECIFICATION);
    fb_ttlv_put_int32(w, FB_TAG_WRAPPING_METHOD, FB_TTLV_ENUMERATION, (int32_t)FB_WRAPPING_MAC_SIGN);
    info = fb_ttlv_begin(w, FB_TAG_MAC_SIGNATURE_KEY_INFORMATION);
    put_text(w, FB_TAG_UNIQUE_IDENTIFIER, mac_uid, mac_uid_len);
    fb_ttlv_end(w, info);
    put_text(w, FB_TAG_ATTRIBUTE_NAME, nonce_name, NONCE_NAME_LEN);
    fb_ttlv_end(w, spec);
    end_item(w, m);
    fb_ttlv_end(w, message);
}

/* ------------------------------------------------------------------ messages */

static fb_status read_response_item(fb_bytes item, fb_response_item *out)
{
    fb_status status;
    fb_ttlv_item payload;
    memset(out, 0, sizeof *out);
    status = optional(find_u32(item, FB_TAG_OPERATION, FB_TTLV_ENUMERATION, &out->operation));
    if (status == FB_OK) {
        status = find_u32(item, FB_TAG_RESULT_STATUS, FB_TTLV_ENUMERATION, &out->result_status);
        if (status == FB_ERR_NOT_FOUND) {
            status = FB_ERR_MALFORMED; /* required (§7.2) */
        }
    }
    if (status == FB_OK) {
        status = optional(find_u32(item, FB_TAG_RESULT_REASON, FB_TTLV_ENUMERATION, &out->result_reason));
    }
    if (status == FB_OK) {
        status = optional(find_region(item, FB_TAG_RESULT_MESSAGE, FB_TTLV_TEXT_STRING, &out->result_message));
    }
    if (status == FB_OK) {
        fb_status found = find_typed(item, FB_TAG_RESPONSE_PAYLOAD, FB_TTLV_STRUCTURE, &payload);
        if (found == FB_OK) {
            out->has_payload = true;
            out->payload = region_of(&payload);
        } else {
            status = optional(found);
        }
    }
    return status;
}

/* Header fields and the Batch Items of a message (shared by requests and responses). */
typedef fb_status (*item_reader)(fb_bytes item, void *out, size_t index);

static fb_status read_items(fb_bytes children, uint32_t header_tag, fb_version *version,
                            int64_t *time_stamp, size_t *count, item_reader read, void *out)
{
    fb_bytes header;
    int32_t batch_count = 0;
    fb_ttlv_reader r;
    fb_ttlv_item item;
    fb_status status;
    size_t n = 0;
    status = find_region(children, header_tag, FB_TTLV_STRUCTURE, &header);
    if (status == FB_OK) {
        status = read_version(header, version);
    }
    if (status == FB_OK && time_stamp != NULL) {
        fb_ttlv_item ts;
        status = find_typed(header, FB_TAG_TIME_STAMP, FB_TTLV_DATE_TIME, &ts);
        if (status == FB_OK) {
            status = fb_ttlv_get_int64(&ts, FB_TTLV_DATE_TIME, time_stamp);
        }
    }
    if (status == FB_OK) {
        status = find_int32(header, FB_TAG_BATCH_COUNT, FB_TTLV_INTEGER, &batch_count);
    }
    if (status == FB_ERR_NOT_FOUND) {
        return FB_ERR_MALFORMED;
    }
    if (status != FB_OK) {
        return status;
    }
    fb_ttlv_reader_init(&r, children.ptr, children.len);
    while ((status = fb_ttlv_next(&r, &item)) == FB_OK) {
        if (item.tag != FB_TAG_BATCH_ITEM) {
            continue;
        }
        if (item.type != FB_TTLV_STRUCTURE) {
            return FB_ERR_MALFORMED;
        }
        if (n == FB_MAX_BATCH_ITEMS) {
            return FB_ERR_TOO_LARGE;
        }
        status = read(region_of(&item), out, n);
        if (status != FB_OK) {
            return status == FB_ERR_NOT_FOUND ? FB_ERR_MALFORMED : status;
        }
        n++;
    }
    if (status != FB_ERR_NOT_FOUND) {
        return status;
    }
    if (batch_count < 0 || (size_t)batch_count != n) {
        return FB_ERR_MALFORMED; /* Batch Count says otherwise */
    }
    *count = n;
    return FB_OK;
}

static fb_status response_item_reader(fb_bytes item, void *out, size_t index)
{
    return read_response_item(item, &((fb_response *)out)->items[index]);
}

fb_status fb_kmip_parse_response(const uint8_t *body, size_t len, fb_response *response)
{
    fb_bytes children;
    fb_status status;
    if (response == NULL) {
        return FB_ERR_ARG;
    }
    memset(response, 0, sizeof *response);
    status = single_message(body, len, FB_TAG_RESPONSE_MESSAGE, &children);
    if (status == FB_OK) {
        status = read_items(children, FB_TAG_RESPONSE_HEADER, &response->version,
                            &response->time_stamp, &response->item_count, response_item_reader,
                            response);
    }
    if (status != FB_OK) {
        memset(response, 0, sizeof *response);
    }
    return status;
}

static fb_status request_item_reader(fb_bytes item, void *out, size_t index)
{
    fb_request_item *it = &((fb_request_message *)out)->items[index];
    fb_status status;
    memset(it, 0, sizeof *it);
    status = find_u32(item, FB_TAG_OPERATION, FB_TTLV_ENUMERATION, &it->operation);
    if (status == FB_OK) {
        status = optional(find_region(item, FB_TAG_UNIQUE_BATCH_ITEM_ID, FB_TTLV_BYTE_STRING,
                                      &it->unique_batch_item_id));
    }
    if (status == FB_OK) {
        status = find_region(item, FB_TAG_REQUEST_PAYLOAD, FB_TTLV_STRUCTURE, &it->payload);
    }
    return status;
}

fb_status fb_kmip_parse_request(const uint8_t *body, size_t len, fb_request_message *request)
{
    fb_bytes children;
    fb_status status;
    if (request == NULL) {
        return FB_ERR_ARG;
    }
    memset(request, 0, sizeof *request);
    status = single_message(body, len, FB_TAG_REQUEST_MESSAGE, &children);
    if (status == FB_OK) {
        status = read_items(children, FB_TAG_REQUEST_HEADER, &request->version, NULL,
                            &request->item_count, request_item_reader, request);
    }
    if (status != FB_OK) {
        memset(request, 0, sizeof *request);
    }
    return status;
}

void fb_kmip_build_ack(fb_ttlv_writer *w, const fb_request_message *request, int64_t now)
{
    size_t message;
    size_t header;
    size_t i;
    if (request == NULL || request->item_count > FB_MAX_BATCH_ITEMS) {
        if (w->status == FB_OK) {
            w->status = FB_ERR_ARG;
        }
        return;
    }
    message = fb_ttlv_begin(w, FB_TAG_RESPONSE_MESSAGE);
    header = fb_ttlv_begin(w, FB_TAG_RESPONSE_HEADER);
    put_version(w, request->version.major, request->version.minor);
    fb_ttlv_put_int64(w, FB_TAG_TIME_STAMP, FB_TTLV_DATE_TIME, now);
    fb_ttlv_put_int32(w, FB_TAG_BATCH_COUNT, FB_TTLV_INTEGER, (int32_t)request->item_count);
    fb_ttlv_end(w, header);
    for (i = 0; i < request->item_count; i++) {
        const fb_request_item *it = &request->items[i];
        size_t item = fb_ttlv_begin(w, FB_TAG_BATCH_ITEM);
        size_t payload;
        fb_ttlv_put_int32(w, FB_TAG_OPERATION, FB_TTLV_ENUMERATION, (int32_t)it->operation);
        if (it->unique_batch_item_id.len > 0u) {
            fb_ttlv_put_bytes(w, FB_TAG_UNIQUE_BATCH_ITEM_ID, FB_TTLV_BYTE_STRING,
                              it->unique_batch_item_id.ptr, it->unique_batch_item_id.len);
        }
        fb_ttlv_put_int32(w, FB_TAG_RESULT_STATUS, FB_TTLV_ENUMERATION, (int32_t)FB_RESULT_SUCCESS);
        payload = fb_ttlv_begin(w, FB_TAG_RESPONSE_PAYLOAD);
        fb_ttlv_end(w, payload);
        fb_ttlv_end(w, item);
    }
    fb_ttlv_end(w, message);
}

/* ------------------------------------------------------------------ keys */

static uint32_t object_type_of_tag(uint32_t tag)
{
    switch (tag) {
    case 0x420013u: return 1u; /* Certificate */
    case 0x42008Fu: return 2u; /* Symmetric Key */
    case 0x42006Du: return 3u; /* Public Key */
    case 0x420064u: return 4u; /* Private Key */
    case 0x420089u: return 5u; /* Split Key */
    case 0x420090u: return 6u; /* Template */
    case 0x420085u: return 7u; /* Secret Data */
    case 0x42005Bu: return 8u; /* Opaque Object */
    default: return 0u;
    }
}

/* The managed object of a Get or Put payload: the first child that is one (KMIP 1.2 §2.2). */
static fb_status find_object(fb_bytes payload, fb_ttlv_item *object)
{
    fb_ttlv_reader r;
    fb_status status;
    fb_ttlv_reader_init(&r, payload.ptr, payload.len);
    while ((status = fb_ttlv_next(&r, object)) == FB_OK) {
        if (object_type_of_tag(object->tag) != 0u) {
            return object->type == FB_TTLV_STRUCTURE ? FB_OK : FB_ERR_MALFORMED;
        }
    }
    return status;
}

/* Key Material (a Byte String, or a Transparent Symmetric Key's Key) copied out of a Key Value. */
static fb_status copy_material(fb_bytes key_value, uint8_t *material, size_t material_size,
                               fb_key *key)
{
    fb_ttlv_item m;
    fb_bytes bytes;
    fb_status status = fb_ttlv_find(key_value.ptr, key_value.len, FB_TAG_KEY_MATERIAL, &m);
    if (status != FB_OK) {
        return status;
    }
    if (m.type == FB_TTLV_BYTE_STRING) {
        bytes = region_of(&m);
    } else if (m.type == FB_TTLV_STRUCTURE) {
        status = find_region(region_of(&m), FB_TAG_KEY, FB_TTLV_BYTE_STRING, &bytes);
        if (status != FB_OK) {
            return status;
        }
    } else {
        return FB_ERR_MALFORMED;
    }
    if (bytes.len > material_size || (material == NULL && bytes.len > 0u)) {
        return FB_ERR_TOO_LARGE;
    }
    if (bytes.len > 0u) {
        memcpy(material, bytes.ptr, bytes.len);
    }
    key->material_len = bytes.len;
    return FB_OK;
}

/* The Key Block's descriptive fields into `key`; *wrapping and *key_value for the caller. */
static fb_status read_key_block(fb_bytes object, fb_key *key, fb_bytes *wrapping, fb_ttlv_item *key_value)
{
    fb_bytes block;
    fb_status status = find_region(object, FB_TAG_KEY_BLOCK, FB_TTLV_STRUCTURE, &block);
    if (status != FB_OK) {
        return status;
    }
    status = optional(find_u32(block, FB_TAG_KEY_FORMAT_TYPE, FB_TTLV_ENUMERATION, &key->key_format_type));
    if (status == FB_OK) {
        status = optional(find_u32(block, FB_TAG_CRYPTOGRAPHIC_ALGORITHM, FB_TTLV_ENUMERATION, &key->algorithm));
    }
    if (status == FB_OK) {
        status = optional(find_int32(block, FB_TAG_CRYPTOGRAPHIC_LENGTH, FB_TTLV_INTEGER, &key->length));
    }
    if (status == FB_OK) {
        clear_bytes(wrapping);
        status = optional(find_region(block, FB_TAG_KEY_WRAPPING_DATA, FB_TTLV_STRUCTURE, wrapping));
    }
    if (status == FB_OK) {
        status = fb_ttlv_find(block.ptr, block.len, FB_TAG_KEY_VALUE, key_value);
    }
    return status;
}

fb_status fb_kmip_read_get(fb_bytes payload, uint8_t *material, size_t material_size, fb_key *key)
{
    fb_ttlv_item object;
    fb_ttlv_item key_value;
    fb_bytes wrapping;
    fb_status status;
    if (key == NULL || payload.ptr == NULL) {
        return FB_ERR_ARG;
    }
    memset(key, 0, sizeof *key);
    status = find_region(payload, FB_TAG_UNIQUE_IDENTIFIER, FB_TTLV_TEXT_STRING, &key->uid);
    if (status == FB_OK) {
        status = find_u32(payload, FB_TAG_OBJECT_TYPE, FB_TTLV_ENUMERATION, &key->object_type);
    }
    if (status == FB_OK) {
        status = find_object(payload, &object);
    }
    if (status == FB_OK) {
        status = read_key_block(region_of(&object), key, &wrapping, &key_value);
    }
    if (status == FB_OK && (wrapping.ptr != NULL || key_value.type != FB_TTLV_STRUCTURE)) {
        status = FB_ERR_MALFORMED; /* wrapped: not usable as is */
    }
    if (status == FB_OK) {
        status = copy_material(region_of(&key_value), material, material_size, key);
    }
    if (status != FB_OK) {
        key->material_len = 0;
    }
    return status;
}

fb_status fb_kmip_verify_nonce_mac(const fb_crypto *crypto, fb_bytes payload, const uint8_t *nonce,
                                   size_t nonce_len, uint8_t *material, size_t material_size,
                                   fb_key *key)
{
    fb_ttlv_item object;
    fb_ttlv_item key_value;
    fb_bytes wrapping;
    fb_bytes mac;
    uint32_t method = 0;
    fb_status status;
    fb_ttlv_reader r;
    fb_ttlv_item child;
    fb_bytes wrapped_nonce;
    if (crypto == NULL || crypto->hmac_sha256_verify == NULL || key == NULL || payload.ptr == NULL ||
        nonce == NULL || nonce_len == 0u) {
        return FB_ERR_ARG;
    }
    memset(key, 0, sizeof *key);
    clear_bytes(&wrapped_nonce);
    status = find_region(payload, FB_TAG_UNIQUE_IDENTIFIER, FB_TTLV_TEXT_STRING, &key->uid);
    if (status == FB_OK) {
        status = find_u32(payload, FB_TAG_OBJECT_TYPE, FB_TTLV_ENUMERATION, &key->object_type);
    }
    if (status == FB_OK) {
        status = find_object(payload, &object);
    }
    if (status == FB_OK) {
        status = read_key_block(region_of(&object), key, &wrapping, &key_value);
    }
    if (status == FB_OK && (wrapping.ptr == NULL || key_value.type != FB_TTLV_STRUCTURE)) {
        status = FB_ERR_MALFORMED; /* must be MAC/sign-wrapped, Key Value in plaintext */
    }
    if (status == FB_OK) {
        status = find_u32(wrapping, FB_TAG_WRAPPING_METHOD, FB_TTLV_ENUMERATION, &method);
    }
    if (status == FB_OK && method != FB_WRAPPING_MAC_SIGN) {
        status = FB_ERR_MALFORMED;
    }
    if (status == FB_OK) {
        status = find_region(wrapping, FB_TAG_MAC_SIGNATURE, FB_TTLV_BYTE_STRING, &mac);
    }
    if (status == FB_OK) {
        /* §5.1: HMAC-SHA256 over the Key Value's TTLV bytes as received, constant time. */
        status = crypto->hmac_sha256_verify(crypto->ctx, key_value.raw, key_value.raw_len, mac.ptr, mac.len);
        if (status != FB_OK) {
            status = status == FB_ERR_MAC ? FB_ERR_MAC : FB_ERR_CRYPTO;
        }
    }
    if (status == FB_OK) {
        /* Only now is anything inside the Key Value trusted: find its x-Nonce attribute. */
        fb_ttlv_reader_init(&r, key_value.value, key_value.len);
        while ((status = fb_ttlv_next(&r, &child)) == FB_OK) {
            fb_bytes name;
            if (child.tag != FB_TAG_ATTRIBUTE || child.type != FB_TTLV_STRUCTURE) {
                continue;
            }
            if (find_region(region_of(&child), FB_TAG_ATTRIBUTE_NAME, FB_TTLV_TEXT_STRING, &name) == FB_OK &&
                name.len == NONCE_NAME_LEN && memcmp(name.ptr, nonce_name, NONCE_NAME_LEN) == 0) {
                status = find_region(region_of(&child), FB_TAG_ATTRIBUTE_VALUE, FB_TTLV_BYTE_STRING, &wrapped_nonce);
                break;
            }
        }
        if (status == FB_ERR_NOT_FOUND || (status == FB_OK && wrapped_nonce.ptr == NULL)) {
            status = FB_ERR_NONCE;
        } else if (status == FB_OK &&
                   (wrapped_nonce.len != nonce_len || !fb_ct_equal(wrapped_nonce.ptr, nonce, nonce_len))) {
            status = FB_ERR_NONCE; /* replayed, or another client's nonce */
        }
    }
    if (status == FB_OK) {
        status = copy_material(region_of(&key_value), material, material_size, key);
    }
    if (status != FB_OK) {
        fb_zeroize(material, material == NULL ? 0u : material_size);
        key->material_len = 0;
    }
    return status;
}

fb_status fb_kmip_read_put(fb_bytes payload, uint8_t *material, size_t material_size, fb_put *put)
{
    fb_ttlv_item object;
    fb_ttlv_item key_value;
    fb_bytes wrapping;
    fb_status status;
    if (put == NULL || payload.ptr == NULL) {
        return FB_ERR_ARG;
    }
    memset(put, 0, sizeof *put);
    status = find_region(payload, FB_TAG_UNIQUE_IDENTIFIER, FB_TTLV_TEXT_STRING, &put->key.uid);
    if (status == FB_OK) {
        status = find_u32(payload, FB_TAG_PUT_FUNCTION, FB_TTLV_ENUMERATION, &put->put_function);
    }
    if (status == FB_OK) {
        status = optional(find_region(payload, FB_TAG_REPLACED_UNIQUE_IDENTIFIER, FB_TTLV_TEXT_STRING,
                                      &put->replaced_uid));
    }
    if (status == FB_OK) {
        status = find_object(payload, &object);
    }
    if (status == FB_OK) {
        put->key.object_type = object_type_of_tag(object.tag);
        status = read_key_block(region_of(&object), &put->key, &wrapping, &key_value);
        if (status == FB_OK && wrapping.ptr == NULL && key_value.type == FB_TTLV_STRUCTURE) {
            status = copy_material(region_of(&key_value), material, material_size, &put->key);
        }
        /* No Key Block (a certificate), or a wrapped one: no plaintext material to copy. */
        if (status == FB_ERR_NOT_FOUND) {
            status = FB_OK;
        }
    }
    if (status == FB_OK) {
        fb_ttlv_reader_init(&put->attributes, payload.ptr, payload.len);
    } else {
        put->key.material_len = 0;
        fb_zeroize(material, material == NULL ? 0u : material_size);
    }
    return status == FB_ERR_NOT_FOUND ? FB_ERR_MALFORMED : status;
}

/* ------------------------------------------------------------------ other payloads */

fb_status fb_kmip_read_attributes(fb_bytes payload, fb_bytes *uid, fb_ttlv_reader *attributes)
{
    fb_status status;
    if (uid == NULL || attributes == NULL || payload.ptr == NULL) {
        return FB_ERR_ARG;
    }
    status = find_region(payload, FB_TAG_UNIQUE_IDENTIFIER, FB_TTLV_TEXT_STRING, uid);
    fb_ttlv_reader_init(attributes, payload.ptr, status == FB_OK ? payload.len : 0u);
    return status;
}

fb_status fb_kmip_next_attribute(fb_ttlv_reader *attributes, fb_attribute *attribute)
{
    fb_ttlv_item item;
    fb_status status;
    if (attributes == NULL || attribute == NULL) {
        return FB_ERR_ARG;
    }
    while ((status = fb_ttlv_next(attributes, &item)) == FB_OK) {
        fb_bytes a;
        fb_status found;
        if (item.tag != FB_TAG_ATTRIBUTE) {
            continue;
        }
        if (item.type != FB_TTLV_STRUCTURE) {
            return FB_ERR_MALFORMED;
        }
        memset(attribute, 0, sizeof *attribute);
        a = region_of(&item);
        status = find_region(a, FB_TAG_ATTRIBUTE_NAME, FB_TTLV_TEXT_STRING, &attribute->name);
        if (status != FB_OK) {
            return FB_ERR_MALFORMED;
        }
        found = find_int32(a, FB_TAG_ATTRIBUTE_INDEX, FB_TTLV_INTEGER, &attribute->index);
        attribute->has_index = found == FB_OK;
        if (optional(found) != FB_OK) {
            return FB_ERR_MALFORMED;
        }
        found = fb_ttlv_find(a.ptr, a.len, FB_TAG_ATTRIBUTE_VALUE, &attribute->value);
        attribute->has_value = found == FB_OK;
        if (optional(found) != FB_OK) {
            return FB_ERR_MALFORMED;
        }
        return FB_OK;
    }
    return status;
}

fb_status fb_kmip_read_uid(fb_bytes payload, fb_bytes *uid)
{
    if (uid == NULL || payload.ptr == NULL) {
        return FB_ERR_ARG;
    }
    return find_region(payload, FB_TAG_UNIQUE_IDENTIFIER, FB_TTLV_TEXT_STRING, uid);
}

fb_status fb_kmip_read_lease(fb_bytes payload, fb_bytes *uid, int32_t *lease_seconds,
                             int64_t *last_change_date)
{
    fb_ttlv_item item;
    fb_status status;
    if (uid == NULL || lease_seconds == NULL || last_change_date == NULL || payload.ptr == NULL) {
        return FB_ERR_ARG;
    }
    status = find_region(payload, FB_TAG_UNIQUE_IDENTIFIER, FB_TTLV_TEXT_STRING, uid);
    if (status == FB_OK) {
        status = find_int32(payload, FB_TAG_LEASE_TIME, FB_TTLV_INTERVAL, lease_seconds);
    }
    if (status == FB_OK) {
        status = find_typed(payload, FB_TAG_LAST_CHANGE_DATE, FB_TTLV_DATE_TIME, &item);
    }
    if (status == FB_OK) {
        status = fb_ttlv_get_int64(&item, FB_TTLV_DATE_TIME, last_change_date);
    }
    return status;
}

fb_status fb_kmip_read_query(fb_bytes payload, uint32_t *operations, size_t capacity, size_t *count)
{
    fb_ttlv_reader r;
    fb_ttlv_item item;
    fb_status status;
    size_t n = 0;
    if (count == NULL || (operations == NULL && capacity > 0u) || payload.ptr == NULL) {
        return FB_ERR_ARG;
    }
    fb_ttlv_reader_init(&r, payload.ptr, payload.len);
    while ((status = fb_ttlv_next(&r, &item)) == FB_OK) {
        int32_t op;
        if (item.tag != FB_TAG_OPERATION) {
            continue;
        }
        if (fb_ttlv_get_int32(&item, FB_TTLV_ENUMERATION, &op) != FB_OK) {
            return FB_ERR_MALFORMED;
        }
        if (n < capacity) {
            operations[n] = (uint32_t)op;
        }
        n++;
    }
    if (status != FB_ERR_NOT_FOUND) {
        return status;
    }
    *count = n < capacity ? n : capacity;
    return n > capacity ? FB_ERR_TOO_LARGE : FB_OK;
}

fb_status fb_kmip_read_versions(fb_bytes payload, fb_version *versions, size_t capacity,
                                size_t *count)
{
    fb_ttlv_reader r;
    fb_ttlv_item item;
    fb_status status;
    size_t n = 0;
    if (count == NULL || (versions == NULL && capacity > 0u) || payload.ptr == NULL) {
        return FB_ERR_ARG;
    }
    fb_ttlv_reader_init(&r, payload.ptr, payload.len);
    while ((status = fb_ttlv_next(&r, &item)) == FB_OK) {
        fb_version v;
        fb_bytes pv;
        if (item.tag != FB_TAG_PROTOCOL_VERSION) {
            continue;
        }
        if (item.type != FB_TTLV_STRUCTURE) {
            return FB_ERR_MALFORMED;
        }
        pv = region_of(&item);
        if (find_int32(pv, FB_TAG_PROTOCOL_VERSION_MAJOR, FB_TTLV_INTEGER, &v.major) != FB_OK ||
            find_int32(pv, FB_TAG_PROTOCOL_VERSION_MINOR, FB_TTLV_INTEGER, &v.minor) != FB_OK) {
            return FB_ERR_MALFORMED;
        }
        if (n < capacity) {
            versions[n] = v;
        }
        n++;
    }
    if (status != FB_ERR_NOT_FOUND) {
        return status;
    }
    *count = n < capacity ? n : capacity;
    return n > capacity ? FB_ERR_TOO_LARGE : FB_OK;
}
