/*
 * KMIP readers of the device operations (PROTOCOL.md §5; KMIP 1.2 §4, §7.2): Response and
 * Request Messages, typed payloads, key material, nonce-MAC verification, Put.
 *
 * Each structure is read in one pass by read_fields() from a small table of the fields wanted
 * (tag, type, required, where to store it): one bounded loop instead of a search per field, so
 * that the code stays small on a microcontroller and every item of the region is length-checked
 * by fb_ttlv_next whether it is wanted or not.
 */
#include <stddef.h>
#include <string.h>
#include "fb/fb_kmip.h"
#include "fb_internal.h"

/* Every tag read here is 0x4200XX; a table names XX. */
#define K(tag) FB_K(tag)
#define ANY 0u
#define REQ 1u
#define OPT 0u

/* How a field is stored, from its type (fixed at compile time in each table entry). */
#define AS_ITEM 0u  /* ANY: the whole fb_ttlv_item */
#define AS_I32 1u   /* Integer, Enumeration, Interval: int32_t */
#define AS_I64 2u   /* Long Integer, Date-Time: int64_t */
#define AS_BYTES 3u /* Text String, Byte String, Structure: an fb_bytes view of the value */
#define AS(type)                                                                                    \
    ((type) == ANY ? AS_ITEM                                                                        \
     : ((type) == FB_TTLV_INTEGER || (type) == FB_TTLV_ENUMERATION || (type) == FB_TTLV_INTERVAL) \
         ? AS_I32                                                                                   \
     : ((type) == FB_TTLV_LONG_INTEGER || (type) == FB_TTLV_DATE_TIME) ? AS_I64                     \
                                                                       : AS_BYTES)

typedef struct field {
    uint8_t tag;    /* XX of 0x4200XX */
    uint8_t type;   /* fb_ttlv_type, or ANY: any type */
    uint8_t how;    /* AS_* | REQ << 2 */
    uint8_t offset; /* where in the output: int32_t, int64_t, fb_bytes or fb_ttlv_item */
} field;

#define F(tag, type, req, s, member) \
    {K(tag), (uint8_t)(type), (uint8_t)(AS(type) | ((req) << 2)), (uint8_t)offsetof(s, member)}

/*
 * Reads the `len` bytes of children at `region`: the first item of each table tag is stored (a
 * wrong type is FB_ERR_MALFORMED); a required one absent is FB_ERR_NOT_FOUND; any malformed item
 * in the region is FB_ERR_MALFORMED. *present gets bit i for each table entry i found.
 */
static fb_status read_fields(const uint8_t *region, size_t len, const field *fields, size_t count,
                             void *out, uint32_t *present)
{
    fb_ttlv_reader r;
    fb_ttlv_item item;
    fb_status status;
    uint32_t seen = 0;
    size_t i;
    fb_ttlv_reader_init(&r, region, len);
    while ((status = fb_ttlv_next(&r, &item)) == FB_OK) {
        if ((item.tag >> 8) != 0x4200u) {
            continue;
        }
        for (i = 0; i < count; i++) {
            const field *f = &fields[i];
            uint8_t *dst = (uint8_t *)out + f->offset;
            unsigned how = f->how & 3u;
            if (f->tag != (uint8_t)item.tag || (seen & (1u << i)) != 0u) {
                continue;
            }
            if (f->type != ANY && f->type != (uint8_t)item.type) {
                return FB_ERR_MALFORMED;
            }
            seen |= 1u << i;
            /* fb_ttlv_next checked the value's length: 4 or 8 bytes for the fixed types. */
            if (how == AS_ITEM) {
                memcpy(dst, &item, sizeof item);
            } else if (how == AS_I32) {
                int32_t v = (int32_t)fb_get_u32(item.value);
                memcpy(dst, &v, sizeof v);
            } else if (how == AS_I64) {
                int64_t v = (int64_t)fb_get_u64(item.value);
                memcpy(dst, &v, sizeof v);
            } else {
                fb_bytes b;
                b.ptr = item.value;
                b.len = item.len;
                memcpy(dst, &b, sizeof b);
            }
            break;
        }
    }
    if (status != FB_ERR_NOT_FOUND) {
        return status;
    }
    for (i = 0; i < count; i++) {
        if ((fields[i].how >> 2) == REQ && (seen & (1u << i)) == 0u) {
            return FB_ERR_NOT_FOUND;
        }
    }
    if (present != NULL) {
        *present = seen;
    }
    return FB_OK;
}

static fb_bytes bytes_of(const uint8_t *p, size_t len)
{
    fb_bytes b;
    b.ptr = p;
    b.len = len;
    return b;
}

/* ------------------------------------------------------------------ messages */

/* The next item of `r` must be a Structure with tag 0x4200XX `t`: its children. */
static fb_status expect_structure(fb_ttlv_reader *r, uint8_t t, fb_bytes *children)
{
    fb_ttlv_item item;
    if (fb_ttlv_next(r, &item) != FB_OK || item.tag != (0x420000u | t) || item.type != FB_TTLV_STRUCTURE) {
        return FB_ERR_MALFORMED;
    }
    *children = bytes_of(item.value, item.len);
    return FB_OK;
}

static const field version_fields[] = {
    F(FB_TAG_PROTOCOL_VERSION_MAJOR, FB_TTLV_INTEGER, REQ, fb_version, major),
    F(FB_TAG_PROTOCOL_VERSION_MINOR, FB_TTLV_INTEGER, REQ, fb_version, minor),
};

typedef struct message_header {
    fb_bytes version;
    int64_t time_stamp;
    int32_t batch_count;
} message_header;

static const field header_fields[] = {
    F(FB_TAG_PROTOCOL_VERSION, FB_TTLV_STRUCTURE, REQ, message_header, version),
    F(FB_TAG_BATCH_COUNT, FB_TTLV_INTEGER, REQ, message_header, batch_count),
    F(FB_TAG_TIME_STAMP, FB_TTLV_DATE_TIME, OPT, message_header, time_stamp),
};

static const field response_item_fields[] = {
    F(FB_TAG_RESULT_STATUS, FB_TTLV_ENUMERATION, REQ, fb_response_item, result_status),
    F(FB_TAG_OPERATION, FB_TTLV_ENUMERATION, OPT, fb_response_item, operation),
    F(FB_TAG_RESULT_REASON, FB_TTLV_ENUMERATION, OPT, fb_response_item, result_reason),
    F(FB_TAG_RESULT_MESSAGE, FB_TTLV_TEXT_STRING, OPT, fb_response_item, result_message),
    F(FB_TAG_RESPONSE_PAYLOAD, FB_TTLV_STRUCTURE, OPT, fb_response_item, payload),
};

static const field request_item_fields[] = {
    F(FB_TAG_OPERATION, FB_TTLV_ENUMERATION, REQ, fb_request_item, operation),
    F(FB_TAG_REQUEST_PAYLOAD, FB_TTLV_STRUCTURE, REQ, fb_request_item, payload),
    F(FB_TAG_UNIQUE_BATCH_ITEM_ID, FB_TTLV_BYTE_STRING, OPT, fb_request_item, unique_batch_item_id),
};

/* What differs between a Response and a Request Message (KMIP 1.2 §7.2): tags, the item table,
 * and where the result goes (both results start with the fb_version). */
typedef struct message_kind {
    uint8_t message_tag;
    uint8_t header_tag;
    uint8_t item_field_count;
    uint8_t item_size;
    uint16_t size;         /* of the result structure */
    uint8_t count_offset;  /* its item_count */
    uint8_t items_offset;  /* its items[] */
    const field *item_fields;
} message_kind;

static const message_kind response_kind = {
    K(FB_TAG_RESPONSE_MESSAGE), K(FB_TAG_RESPONSE_HEADER), 5, (uint8_t)sizeof(fb_response_item),
    (uint16_t)sizeof(fb_response), (uint8_t)offsetof(fb_response, item_count),
    (uint8_t)offsetof(fb_response, items), response_item_fields,
};

static const message_kind request_kind = {
    K(FB_TAG_REQUEST_MESSAGE), K(FB_TAG_REQUEST_HEADER), 3, (uint8_t)sizeof(fb_request_item),
    (uint16_t)sizeof(fb_request_message), (uint8_t)offsetof(fb_request_message, item_count),
    (uint8_t)offsetof(fb_request_message, items), request_item_fields,
};

/*
 * A message's header (Protocol Version and Batch Count required; Time Stamp required in a
 * response) and its Batch Items (at most FB_MAX_BATCH_ITEMS, FB_ERR_TOO_LARGE), read into
 * `out` as `kind` says. Batch Count must equal the items present. `out` is all zeros on error.
 */
static fb_status read_message(const uint8_t *body, size_t len, const message_kind *kind, void *out)
{
    uint8_t *result = (uint8_t *)out;
    bool response = kind == &response_kind;
    fb_bytes children;
    fb_bytes header;
    message_header h;
    fb_ttlv_reader r;
    fb_ttlv_item item;
    uint32_t present = 0;
    fb_status status;
    size_t n = 0;
    bool end = false;
    if (out == NULL) {
        return FB_ERR_ARG;
    }
    memset(out, 0, kind->size);
    memset(&h, 0, sizeof h);
    if (body == NULL) {
        return FB_ERR_ARG;
    }
    /* The whole body is one message Structure; its header comes first (§7.2). */
    fb_ttlv_reader_init(&r, body, len);
    status = expect_structure(&r, kind->message_tag, &children);
    if (status == FB_OK && r.pos != len) {
        status = FB_ERR_MALFORMED;
    }
    if (status == FB_OK) {
        fb_ttlv_reader_init(&r, children.ptr, children.len);
        status = expect_structure(&r, kind->header_tag, &header);
    }
    if (status == FB_OK) {
        status = read_fields(header.ptr, header.len, header_fields, 3, &h, &present);
    }
    if (status == FB_OK) {
        status = read_fields(h.version.ptr, h.version.len, version_fields, 2, out, NULL);
    }
    if (status == FB_OK && response && (present & 4u) == 0u) {
        status = FB_ERR_NOT_FOUND;
    }
    while (status == FB_OK) {
        uint8_t *slot = result + kind->items_offset + n * kind->item_size;
        status = fb_ttlv_next(&r, &item);
        if (status == FB_ERR_NOT_FOUND) {
            end = true; /* the end of the message, every item read */
        } else if (status != FB_OK || item.tag != FB_TAG_BATCH_ITEM) {
            continue;
        } else if (item.type != FB_TTLV_STRUCTURE) {
            status = FB_ERR_MALFORMED;
        } else if (n == FB_MAX_BATCH_ITEMS) {
            status = FB_ERR_TOO_LARGE;
        } else {
            status = read_fields(item.value, item.len, kind->item_fields,
                                 kind->item_field_count, slot, &present);
            if (response) {
                ((fb_response_item *)(void *)slot)->has_payload = (present & 16u) != 0u;
            }
            n++;
        }
    }
    /* Batch Count must say how many items there are. */
    if (end && h.version.ptr != NULL && h.batch_count >= 0 && (size_t)h.batch_count == n) {
        if (response) {
            ((fb_response *)out)->time_stamp = h.time_stamp;
        }
        memcpy(result + kind->count_offset, &n, sizeof n);
        return FB_OK;
    }
    memset(out, 0, kind->size);
    /* A required field absent, or a Batch Count that says otherwise: malformed. */
    return status == FB_ERR_NOT_FOUND ? FB_ERR_MALFORMED : status;
}

fb_status fb_kmip_parse_response(const uint8_t *body, size_t len, fb_response *response)
{
    return read_message(body, len, &response_kind, response);
}

fb_status fb_kmip_parse_request(const uint8_t *body, size_t len, fb_request_message *request)
{
    return read_message(body, len, &request_kind, request);
}

/* ------------------------------------------------------------------ keys */

/* Managed object tags (KMIP 1.2 §2.2) by Object Type - 1: 0x420013 Certificate, 0x42008F
 * Symmetric Key, 0x42006D Public Key, 0x420064 Private Key, 0x420089 Split Key, 0x420090
 * Template, 0x420085 Secret Data, 0x42005B Opaque Object. */
static const uint8_t object_tags[8] = {0x13u, 0x8Fu, 0x6Du, 0x64u, 0x89u, 0x90u, 0x85u, 0x5Bu};

static uint32_t object_type_of_tag(uint32_t tag)
{
    uint32_t i;
    if ((tag >> 8) != 0x4200u) {
        return 0;
    }
    for (i = 0; i < sizeof object_tags; i++) {
        if (object_tags[i] == (uint8_t)tag) {
            return i + 1u;
        }
    }
    return 0;
}

/* What a Get or Put payload says about its key, read in one pass each level. */
typedef struct key_parts {
    fb_bytes uid;
    int32_t object_type;
    int32_t put_function;
    fb_bytes replaced_uid;
    fb_ttlv_item object;   /* the managed object structure */
    fb_bytes key_block;
    int32_t key_format_type;
    int32_t algorithm;
    int32_t length;
    fb_bytes wrapping;     /* Key Wrapping Data, when present */
    fb_ttlv_item key_value;
    int32_t method;
    fb_bytes mac;
} key_parts;

static const field payload_fields[] = {
    F(FB_TAG_UNIQUE_IDENTIFIER, FB_TTLV_TEXT_STRING, REQ, key_parts, uid),
    F(FB_TAG_OBJECT_TYPE, FB_TTLV_ENUMERATION, OPT, key_parts, object_type),
    F(FB_TAG_PUT_FUNCTION, FB_TTLV_ENUMERATION, OPT, key_parts, put_function),
    F(FB_TAG_REPLACED_UNIQUE_IDENTIFIER, FB_TTLV_TEXT_STRING, OPT, key_parts, replaced_uid),
};

static const field object_fields[] = {
    F(FB_TAG_KEY_BLOCK, FB_TTLV_STRUCTURE, REQ, key_parts, key_block),
};

static const field block_fields[] = {
    F(FB_TAG_KEY_VALUE, ANY, REQ, key_parts, key_value),
    F(FB_TAG_KEY_FORMAT_TYPE, FB_TTLV_ENUMERATION, OPT, key_parts, key_format_type),
    F(FB_TAG_CRYPTOGRAPHIC_ALGORITHM, FB_TTLV_ENUMERATION, OPT, key_parts, algorithm),
    F(FB_TAG_CRYPTOGRAPHIC_LENGTH, FB_TTLV_INTEGER, OPT, key_parts, length),
    F(FB_TAG_KEY_WRAPPING_DATA, FB_TTLV_STRUCTURE, OPT, key_parts, wrapping),
};

static const field wrapping_fields[] = {
    F(FB_TAG_WRAPPING_METHOD, FB_TTLV_ENUMERATION, REQ, key_parts, method),
    F(FB_TAG_MAC_SIGNATURE, FB_TTLV_BYTE_STRING, REQ, key_parts, mac),
};

/* The payload's fields, its managed object, and that object's Key Block (FB_ERR_NOT_FOUND when
 * the object has none). */
static fb_status read_key_parts(fb_bytes payload, key_parts *k)
{
    fb_ttlv_reader r;
    fb_status status;
    memset(k, 0, sizeof *k);
    if (payload.ptr == NULL) {
        return FB_ERR_ARG;
    }
    status = read_fields(payload.ptr, payload.len, payload_fields, 4, k, NULL);
    if (status != FB_OK) {
        return status;
    }
    fb_ttlv_reader_init(&r, payload.ptr, payload.len);
    while ((status = fb_ttlv_next(&r, &k->object)) == FB_OK &&
           object_type_of_tag(k->object.tag) == 0u) {
    }
    if (status != FB_OK) {
        return status; /* no managed object */
    }
    if (k->object.type != FB_TTLV_STRUCTURE) {
        return FB_ERR_MALFORMED;
    }
    status = read_fields(k->object.value, k->object.len, object_fields, 1, k, NULL);
    if (status != FB_OK) {
        return status;
    }
    return read_fields(k->key_block.ptr, k->key_block.len, block_fields, 5, k, NULL);
}

/* Key Material (a Byte String, or a Transparent Symmetric Key's Key) copied out of a Key Value. */
static fb_status copy_material(const key_parts *k, uint8_t *material, size_t material_size,
                               fb_key *key)
{
    fb_ttlv_item m;
    fb_status status;
    /* read_key calls this only for a plaintext Key Value (a Structure; a wrapped one is a Byte
     * String), checked there once for every kind of read. */
    status = fb_ttlv_find(k->key_value.value, k->key_value.len, FB_TAG_KEY_MATERIAL, &m);
    if (status == FB_OK && m.type == FB_TTLV_STRUCTURE) {
        status = fb_ttlv_find(m.value, m.len, FB_TAG_KEY, &m);
    }
    if (status != FB_OK) {
        return status;
    }
    if (m.type != FB_TTLV_BYTE_STRING) {
        return FB_ERR_MALFORMED;
    }
    if (m.len > material_size || (material == NULL && m.len > 0u)) {
        return FB_ERR_TOO_LARGE;
    }
    if (m.len > 0u) {
        memcpy(material, m.value, m.len);
    }
    key->material_len = m.len;
    return FB_OK;
}

static const uint8_t nonce_name[] = FB_NONCE_ATTRIBUTE;
#define NONCE_NAME_LEN (sizeof nonce_name - 1u)

static const field attribute_fields[] = {
    F(FB_TAG_ATTRIBUTE_NAME, FB_TTLV_TEXT_STRING, REQ, fb_attribute, name),
    F(FB_TAG_ATTRIBUTE_INDEX, FB_TTLV_INTEGER, OPT, fb_attribute, index),
    F(FB_TAG_ATTRIBUTE_VALUE, ANY, OPT, fb_attribute, value),
};

/* The three readers of a key (Get, nonce-MAC Get, Put) share one path: `mac` is the nonce-MAC
 * check (NULL: none), `put` a Put's result (NULL: a Get). */
typedef struct mac_check {
    const fb_crypto *crypto;
    const uint8_t *nonce;
    size_t nonce_len;
} mac_check;

/*
 * Reads the key of a Get or Put payload into *key, copying plaintext material. A Get: an
 * unwrapped key (a wrapped one is FB_ERR_MALFORMED). With `mac` (§5.1): MAC/sign-wrapped, the
 * HMAC over the Key Value as received verified through mac->crypto, then its x-Nonce compared
 * with mac->nonce in constant time — nothing inside the Key Value is used before. A Put: the
 * object may carry no Key Block or a wrapped one (material_len 0), *put gets the rest. The
 * callers' key_result clears *key (and `material`) on error.
 */
static fb_status read_key(fb_bytes payload, const mac_check *mac, uint8_t *material,
                          size_t material_size, fb_key *key, fb_put *put)
{
    key_parts k;
    fb_status status = read_key_parts(payload, &k);
    bool plain;
    fb_ttlv_reader attributes;
    fb_attribute a;
    /* A Put's object may have no Key Block (a certificate): nothing to copy then. */
    plain = status == FB_OK && k.key_value.type == FB_TTLV_STRUCTURE;
    if (put != NULL && status == FB_ERR_NOT_FOUND) {
        status = FB_OK;
    }
    if (status == FB_OK) {
        if (put != NULL) {
            if (k.uid.ptr == NULL || k.put_function == 0 || k.object.value == NULL) {
                status = FB_ERR_MALFORMED; /* Unique Identifier, Put Function, the object (§4.28) */
            }
        } else if (k.object_type == 0 || !plain || (k.wrapping.ptr == NULL) != (mac == NULL)) {
            /* A Get names its Object Type; a plain Get's key is unwrapped, a nonce-MAC Get's
             * MAC/sign-wrapped with the Key Value in plaintext (a wrapped one is a Byte String). */
            status = FB_ERR_MALFORMED;
        }
    }
    if (status == FB_OK && mac != NULL) {
        status = read_fields(k.wrapping.ptr, k.wrapping.len, wrapping_fields, 2, &k, NULL);
        if (status == FB_OK && (uint32_t)k.method != FB_WRAPPING_MAC_SIGN) {
            status = FB_ERR_MALFORMED;
        }
        if (status == FB_OK) {
            /* HMAC-SHA256 over the Key Value's TTLV bytes as received, in constant time (§5.1). */
            status = mac->crypto->hmac_sha256_verify(mac->crypto->ctx, k.key_value.raw, k.key_value.raw_len, k.mac.ptr, k.mac.len);
            if (status != FB_OK && status != FB_ERR_MAC) {
                status = FB_ERR_CRYPTO;
            }
        }
        if (status == FB_OK) {
            /* Only now is anything inside the Key Value trusted: its x-Nonce must be ours. */
            fb_ttlv_reader_init(&attributes, k.key_value.value, k.key_value.len);
            do {
                status = fb_kmip_next_attribute(&attributes, &a);
            } while (status == FB_OK && !(a.name.len == NONCE_NAME_LEN && memcmp(a.name.ptr, nonce_name, NONCE_NAME_LEN) == 0));
            if (status == FB_ERR_NOT_FOUND || (status == FB_OK && (!a.has_value || a.value.type != FB_TTLV_BYTE_STRING ||
                                                                   a.value.len != mac->nonce_len ||
                                                                   !fb_ct_equal(a.value.value, mac->nonce, mac->nonce_len)))) {
                status = FB_ERR_NONCE; /* none, a replayed response, or another client's nonce */
            }
        }
    }
    if (status == FB_OK && (put == NULL || (plain && k.wrapping.ptr == NULL))) {
        status = copy_material(&k, material, material_size, key);
    }
    if (status == FB_OK) {
        key->uid = k.uid;
        key->object_type = (uint32_t)k.object_type;
        key->key_format_type = (uint32_t)k.key_format_type;
        key->algorithm = (uint32_t)k.algorithm;
        key->length = k.length;
        if (put != NULL) {
            key->object_type = object_type_of_tag(k.object.tag);
            put->put_function = (uint32_t)k.put_function;
            put->replaced_uid = k.replaced_uid;
            fb_ttlv_reader_init(&put->attributes, payload.ptr, payload.len);
        }
    }
    return put != NULL && status == FB_ERR_NOT_FOUND ? FB_ERR_MALFORMED : status;
}

/* The error exit of the key readers: *key zeroed, material zeroized when `wipe`, FB_OK kept. */
static fb_status key_result(fb_status status, fb_key *key, uint8_t *material, size_t material_size,
                            bool wipe)
{
    if (status != FB_OK) {
        memset(key, 0, sizeof *key);
        if (wipe && material != NULL) {
            fb_zeroize(material, material_size);
        }
    }
    return status;
}

fb_status fb_kmip_read_get(fb_bytes payload, uint8_t *material, size_t material_size, fb_key *key)
{
    if (key == NULL) {
        return FB_ERR_ARG;
    }
    /* "nothing copied" on error (fb_kmip.h): the buffer is left as it was. */
    return key_result(read_key(payload, NULL, material, material_size, key, NULL), key, material,
                      material_size, false);
}

fb_status fb_kmip_verify_nonce_mac(const fb_crypto *crypto, fb_bytes payload, const uint8_t *nonce,
                                   size_t nonce_len, uint8_t *material, size_t material_size,
                                   fb_key *key)
{
    mac_check mac;
    if (crypto == NULL || crypto->hmac_sha256_verify == NULL || key == NULL || nonce == NULL ||
        nonce_len == 0u) {
        return FB_ERR_ARG;
    }
    mac.crypto = crypto;
    mac.nonce = nonce;
    mac.nonce_len = nonce_len;
    return key_result(read_key(payload, &mac, material, material_size, key, NULL), key, material,
                      material_size, true);
}

fb_status fb_kmip_read_put(fb_bytes payload, uint8_t *material, size_t material_size, fb_put *put)
{
    if (put == NULL) {
        return FB_ERR_ARG;
    }
    memset(put, 0, sizeof *put);
    return key_result(read_key(payload, NULL, material, material_size, &put->key, put), &put->key,
                      material, material_size, true);
}

/* ------------------------------------------------------------------ other payloads */

fb_status fb_kmip_read_attributes(fb_bytes payload, fb_bytes *uid, fb_ttlv_reader *attributes)
{
    fb_status status;
    if (uid == NULL || attributes == NULL) {
        return FB_ERR_ARG;
    }
    status = fb_kmip_read_uid(payload, uid);
    fb_ttlv_reader_init(attributes, payload.ptr, status == FB_OK ? payload.len : 0u);
    return status;
}

fb_status fb_kmip_next_attribute(fb_ttlv_reader *attributes, fb_attribute *attribute)
{
    fb_ttlv_item item;
    fb_status status;
    uint32_t present = 0;
    if (attributes == NULL || attribute == NULL) {
        return FB_ERR_ARG;
    }
    while ((status = fb_ttlv_next(attributes, &item)) == FB_OK) {
        if (item.tag != FB_TAG_ATTRIBUTE) {
            continue;
        }
        if (item.type != FB_TTLV_STRUCTURE) {
            return FB_ERR_MALFORMED;
        }
        memset(attribute, 0, sizeof *attribute);
        status = read_fields(item.value, item.len, attribute_fields, 3, attribute, &present);
        attribute->has_index = (present & 2u) != 0u;
        attribute->has_value = (present & 4u) != 0u;
        return status == FB_ERR_NOT_FOUND ? FB_ERR_MALFORMED : status;
    }
    return status;
}

typedef struct lease_parts {
    fb_bytes uid;
    int32_t lease;
    int64_t changed;
} lease_parts;

static const field lease_fields[] = {
    F(FB_TAG_UNIQUE_IDENTIFIER, FB_TTLV_TEXT_STRING, REQ, lease_parts, uid),
    F(FB_TAG_LEASE_TIME, FB_TTLV_INTERVAL, REQ, lease_parts, lease),
    F(FB_TAG_LAST_CHANGE_DATE, FB_TTLV_DATE_TIME, REQ, lease_parts, changed),
};

/* fb_kmip_read_uid reads lease_fields[0] straight into an fb_bytes: it must be at offset 0. */
typedef char lease_uid_first[offsetof(lease_parts, uid) == 0u ? 1 : -1];

fb_status fb_kmip_read_uid(fb_bytes payload, fb_bytes *uid)
{
    fb_status status;
    if (uid == NULL || payload.ptr == NULL) {
        return FB_ERR_ARG;
    }
    /* lease_fields[0] is the Unique Identifier at offset 0: read straight into *uid. */
    status = read_fields(payload.ptr, payload.len, lease_fields, 1, uid, NULL);
    if (status != FB_OK) {
        *uid = bytes_of(NULL, 0);
    }
    return status;
}

fb_status fb_kmip_read_lease(fb_bytes payload, fb_bytes *uid, int32_t *lease_seconds,
                             int64_t *last_change_date)
{
    lease_parts l;
    fb_status status;
    if (uid == NULL || lease_seconds == NULL || last_change_date == NULL || payload.ptr == NULL) {
        return FB_ERR_ARG;
    }
    status = read_fields(payload.ptr, payload.len, lease_fields, 3, &l, NULL);
    if (status == FB_OK) {
        *uid = l.uid;
        *lease_seconds = l.lease;
        *last_change_date = l.changed;
    }
    return status;
}

/*
 * A Query response's Operations (`versions` false: uint32_t) or a Discover Versions response's
 * Protocol Versions (true: fb_version), up to `capacity` into `out`; more is FB_ERR_TOO_LARGE
 * with the first `capacity` kept. Every item is length-checked by fb_ttlv_next.
 */
static fb_status read_list(fb_bytes payload, void *out, size_t capacity, size_t *count, bool versions)
{
    fb_ttlv_reader r;
    fb_ttlv_item item;
    fb_status status;
    size_t n = 0;
    if (count == NULL || (out == NULL && capacity > 0u) || payload.ptr == NULL) {
        return FB_ERR_ARG;
    }
    fb_ttlv_reader_init(&r, payload.ptr, payload.len);
    while ((status = fb_ttlv_next(&r, &item)) == FB_OK) {
        if (item.tag != (versions ? FB_TAG_PROTOCOL_VERSION : FB_TAG_OPERATION)) {
            continue;
        }
        if (n < capacity) {
            if (versions) {
                status = item.type != FB_TTLV_STRUCTURE ||
                                 read_fields(item.value, item.len, version_fields, 2,
                                             (fb_version *)out + n, NULL) != FB_OK
                             ? FB_ERR_MALFORMED
                             : FB_OK;
            } else if (item.type == FB_TTLV_ENUMERATION) {
                ((uint32_t *)out)[n] = fb_get_u32(item.value); /* 4 bytes: fb_ttlv_next checked */
            } else {
                status = FB_ERR_MALFORMED;
            }
            if (status != FB_OK) {
                return status;
            }
        }
        n++;
    }
    if (status != FB_ERR_NOT_FOUND) {
        return status;
    }
    *count = n < capacity ? n : capacity;
    return n > capacity ? FB_ERR_TOO_LARGE : FB_OK;
}

fb_status fb_kmip_read_query(fb_bytes payload, uint32_t *operations, size_t capacity, size_t *count)
{
    return read_list(payload, operations, capacity, count, false);
}

fb_status fb_kmip_read_versions(fb_bytes payload, fb_version *versions, size_t capacity,
                                size_t *count)
{
    return read_list(payload, versions, capacity, count, true);
}
