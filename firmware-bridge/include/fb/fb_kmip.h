/**
 * @file fb_kmip.h
 * KMIP messages for exactly the device operations (PROTOCOL.md §5): Request Message builders
 * (protocol version 1.2, one batch item, or the two-item nonce-MAC batch of §5.1), the Response
 * Message reader, typed readers of each response payload, the nonce-MAC check, the reader of a
 * relayed Put/Notify and the builder of its acknowledgement (§5.2).
 *
 * Results that are strings or byte strings are fb_bytes views into the message read (valid as
 * long as its buffer is); key material alone is copied, into a caller buffer of stated size
 * (FB_ERR_TOO_LARGE, and nothing copied, when it does not fit).
 */
#ifndef FB_KMIP_H
#define FB_KMIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "fb_config.h"
#include "fb_crypto.h"
#include "fb_status.h"
#include "fb_ttlv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Tags (KMIP 1.2 §9.1.3.1) the library reads or writes. */
#define FB_TAG_ATTRIBUTE 0x420008u
#define FB_TAG_ATTRIBUTE_INDEX 0x420009u
#define FB_TAG_ATTRIBUTE_NAME 0x42000Au
#define FB_TAG_ATTRIBUTE_VALUE 0x42000Bu
#define FB_TAG_BATCH_COUNT 0x42000Du
#define FB_TAG_BATCH_ITEM 0x42000Fu
#define FB_TAG_BATCH_ORDER_OPTION 0x420010u
#define FB_TAG_CRYPTOGRAPHIC_ALGORITHM 0x420028u
#define FB_TAG_CRYPTOGRAPHIC_LENGTH 0x42002Au
#define FB_TAG_CRYPTOGRAPHIC_USAGE_MASK 0x42002Cu
#define FB_TAG_KEY 0x42003Fu
#define FB_TAG_KEY_BLOCK 0x420040u
#define FB_TAG_KEY_FORMAT_TYPE 0x420042u
#define FB_TAG_KEY_MATERIAL 0x420043u
#define FB_TAG_KEY_VALUE 0x420045u
#define FB_TAG_KEY_WRAPPING_DATA 0x420046u
#define FB_TAG_KEY_WRAPPING_SPECIFICATION 0x420047u
#define FB_TAG_LAST_CHANGE_DATE 0x420048u
#define FB_TAG_LEASE_TIME 0x420049u
#define FB_TAG_MAC_SIGNATURE 0x42004Du
#define FB_TAG_MAC_SIGNATURE_KEY_INFORMATION 0x42004Eu
#define FB_TAG_OBJECT_TYPE 0x420057u
#define FB_TAG_OPERATION 0x42005Cu
#define FB_TAG_PROTOCOL_VERSION 0x420069u
#define FB_TAG_PROTOCOL_VERSION_MAJOR 0x42006Au
#define FB_TAG_PROTOCOL_VERSION_MINOR 0x42006Bu
#define FB_TAG_PUT_FUNCTION 0x420070u
#define FB_TAG_QUERY_FUNCTION 0x420074u
#define FB_TAG_REPLACED_UNIQUE_IDENTIFIER 0x420076u
#define FB_TAG_REQUEST_HEADER 0x420077u
#define FB_TAG_REQUEST_MESSAGE 0x420078u
#define FB_TAG_REQUEST_PAYLOAD 0x420079u
#define FB_TAG_RESPONSE_HEADER 0x42007Au
#define FB_TAG_RESPONSE_MESSAGE 0x42007Bu
#define FB_TAG_RESPONSE_PAYLOAD 0x42007Cu
#define FB_TAG_RESULT_MESSAGE 0x42007Du
#define FB_TAG_RESULT_REASON 0x42007Eu
#define FB_TAG_RESULT_STATUS 0x42007Fu
#define FB_TAG_TIME_STAMP 0x420092u
#define FB_TAG_UNIQUE_BATCH_ITEM_ID 0x420093u
#define FB_TAG_UNIQUE_IDENTIFIER 0x420094u
#define FB_TAG_USAGE_LIMITS_COUNT 0x420096u
#define FB_TAG_VENDOR_IDENTIFICATION 0x42009Du
#define FB_TAG_WRAPPING_METHOD 0x42009Eu

/* Operations (KMIP 1.2 §9.1.3.2.27). */
#define FB_OP_CHECK 0x09u
#define FB_OP_GET 0x0Au
#define FB_OP_GET_ATTRIBUTES 0x0Bu
#define FB_OP_ADD_ATTRIBUTE 0x0Du
#define FB_OP_MODIFY_ATTRIBUTE 0x0Eu
#define FB_OP_OBTAIN_LEASE 0x10u
#define FB_OP_GET_USAGE_ALLOCATION 0x11u
#define FB_OP_QUERY 0x18u
#define FB_OP_NOTIFY 0x1Bu
#define FB_OP_PUT 0x1Cu
#define FB_OP_DISCOVER_VERSIONS 0x1Eu

#define FB_RESULT_SUCCESS 0u
#define FB_RESULT_OPERATION_FAILED 1u
#define FB_WRAPPING_MAC_SIGN 2u
#define FB_PUT_NEW 1u
#define FB_PUT_REPLACE 2u
/** The attribute the nonce-MAC exchange sets (§5.1), and its length bounds. */
#define FB_NONCE_ATTRIBUTE "x-Nonce"
#define FB_NONCE_MIN 16u
#define FB_NONCE_MAX 64u

/** A view of bytes inside a message (not copied). */
typedef struct fb_bytes {
    const uint8_t *ptr;
    size_t len;
} fb_bytes;

typedef struct fb_version {
    int32_t major;
    int32_t minor;
} fb_version;

/* ---- Request Message builder: writes one whole message into `w` (check w->status). ---- */

typedef enum fb_nonce_setter { FB_NONCE_MODIFY = 0, FB_NONCE_ADD = 1 } fb_nonce_setter;

/**
 * One device operation's request (§5), for fb_kmip_build_request and fb_device_request: the
 * operation and its arguments. Members the operation does not use are ignored (leave them 0:
 * `fb_request r = { .operation = FB_OP_GET, .uid = { uid, uid_len } };`).
 *
 * | operation                  | KMIP 1.2 | members                                                  |
 * |----------------------------|----------|----------------------------------------------------------|
 * | FB_OP_GET                  | §4.11    | uid: the key as the agent holds it; with mac_uid, below  |
 * | FB_OP_GET_ATTRIBUTES       | §4.12    | uid; `count` names (Attribute Names), or all when 0      |
 * | FB_OP_GET_USAGE_ALLOCATION | §4.18    | uid; usage_limits_count: the units (>= 1), an effect     |
 * | FB_OP_OBTAIN_LEASE         | §4.17    | uid                                                      |
 * | FB_OP_CHECK                | §4.10    | uid; usage_limits_count and usage_mask, each 0: absent   |
 * | FB_OP_QUERY                | §4.25    | `count` functions (0: the device's operations)           |
 * | FB_OP_DISCOVER_VERSIONS    | §4.26    | `count` versions (0: all the agent speaks)               |
 *
 * A Get with mac_uid (not NULL) is the nonce-MAC batch (PROTOCOL.md §5.1): Batch Order Option
 * true; Modify (FB_NONCE_MODIFY) or Add (FB_NONCE_ADD) Attribute x-Nonce = the nonce_len
 * (16..64) bytes at `nonce` on uid; then the Get of uid MAC/sign-wrapped with the key mac_uid
 * over the Key Value and x-Nonce. Send MODIFY first; when the reply's first item failed (no
 * nonce on the key yet), ADD. fb_device_request draws the nonce fresh into `nonce` (keep it for
 * fb_kmip_verify_nonce_mac); fb_kmip_build_request writes it as it is.
 *
 * FB_ERR_ARG (in w->status) for another operation, an empty uid or mac_uid where one is needed,
 * a Get Usage Allocation of 0 units, a usage_limits_count above INT64_MAX, an empty name, a NULL
 * list with a count, or a nonce-MAC nonce or setter out of range.
 */
typedef struct fb_request {
    uint32_t operation;          /**< one of the seven operations above */
    fb_bytes uid;                /**< the Unique Identifier (not for Query, Discover Versions) */
    uint64_t usage_limits_count; /**< Get Usage Allocation: units (>= 1); Check: 0 or a count */
    uint32_t usage_mask;         /**< Check: 0 or the Cryptographic Usage Mask to protect */
    size_t count;                /**< entries of the operation's list: names, functions, versions */
    const fb_bytes *names;       /**< Get Attributes */
    const uint32_t *functions;   /**< Query: Query Functions */
    const fb_version *versions;  /**< Discover Versions */
    fb_bytes mac_uid;            /**< Get: the MAC key's Unique Identifier (nonce-MAC); NULL: none */
    fb_nonce_setter setter;      /**< nonce-MAC: how x-Nonce is set */
    uint8_t *nonce;              /**< nonce-MAC: nonce_len bytes (fb_device_request writes them) */
    size_t nonce_len;            /**< nonce-MAC: 16..64 (FB_NONCE_MIN..FB_NONCE_MAX) */
} fb_request;

/** The Request Message (protocol version 1.2; one Batch Item, two for nonce-MAC) of `request`. */
void fb_kmip_build_request(fb_ttlv_writer *w, const fb_request *request);

/* ---- Response Message ---- */

typedef struct fb_response_item {
    uint32_t operation;      /**< 0 when absent */
    uint32_t result_status;  /**< FB_RESULT_SUCCESS, FB_RESULT_OPERATION_FAILED, ... */
    uint32_t result_reason;  /**< 0 when absent (KMIP 1.2 §9.1.3.2.29) */
    fb_bytes result_message; /**< empty when absent */
    bool has_payload;
    fb_bytes payload;        /**< the Response Payload's children */
} fb_response_item;

typedef struct fb_response {
    fb_version version;
    int64_t time_stamp;
    size_t item_count;
    fb_response_item items[FB_MAX_BATCH_ITEMS];
} fb_response;

/**
 * Reads a Response Message (KMIP 1.2 §7.2): the whole body must be that one item; the header's
 * Protocol Version, Time Stamp and Batch Count are required, the Batch Count must equal the
 * items present (FB_ERR_MALFORMED), and at most FB_MAX_BATCH_ITEMS (FB_ERR_TOO_LARGE).
 */
fb_status fb_kmip_parse_response(const uint8_t *body, size_t len, fb_response *response);

/* ---- Typed payload readers (pass a Success item's payload) ---- */

/** A key as read from a Get or Put. */
typedef struct fb_key {
    fb_bytes uid;
    uint32_t object_type;     /**< e.g. 2 Symmetric Key, 7 Secret Data */
    uint32_t key_format_type; /**< e.g. 1 Raw, 7 Transparent Symmetric Key */
    uint32_t algorithm;       /**< 0 when absent; 3 AES */
    int32_t length;           /**< bits, 0 when absent */
    size_t material_len;      /**< bytes copied to the caller's buffer */
} fb_key;

/**
 * A Get response payload with a plaintext, unwrapped key: copies Key Material (a Byte String, or
 * the Key of a Transparent Symmetric Key) into `material` (material_size bytes). A wrapped Key
 * Block is FB_ERR_MALFORMED here (nonce-MAC keys go through fb_kmip_verify_nonce_mac).
 */
fb_status fb_kmip_read_get(fb_bytes payload, uint8_t *material, size_t material_size, fb_key *key);

/** One attribute: its name, optional index and the Attribute Value item. */
typedef struct fb_attribute {
    fb_bytes name;
    bool has_index;
    int32_t index;
    bool has_value;
    fb_ttlv_item value;
} fb_attribute;

/**
 * A Get Attributes response payload (also a Notify's): its Unique Identifier, and `attributes`
 * positioned for fb_kmip_next_attribute.
 */
fb_status fb_kmip_read_attributes(fb_bytes payload, fb_bytes *uid, fb_ttlv_reader *attributes);
/** The next Attribute structure of `attributes` (other items are skipped); FB_ERR_NOT_FOUND at the end. */
fb_status fb_kmip_next_attribute(fb_ttlv_reader *attributes, fb_attribute *attribute);

/** Get Usage Allocation and Check responses: the Unique Identifier. */
fb_status fb_kmip_read_uid(fb_bytes payload, fb_bytes *uid);

/** An Obtain Lease response: the lease in seconds and the Last Change Date. */
fb_status fb_kmip_read_lease(fb_bytes payload, fb_bytes *uid, int32_t *lease_seconds,
                             int64_t *last_change_date);

/** A Query response: up to `capacity` Operations into `operations`, their number in *count
 *  (FB_ERR_TOO_LARGE when more are listed; the first `capacity` are kept). */
fb_status fb_kmip_read_query(fb_bytes payload, uint32_t *operations, size_t capacity, size_t *count);

/** A Discover Versions response: up to `capacity` versions, as fb_kmip_read_query. */
fb_status fb_kmip_read_versions(fb_bytes payload, fb_version *versions, size_t capacity,
                                size_t *count);

/**
 * End-to-end nonce-MAC (§5.1) on the payload of the batch's Get item: the Key Block must be
 * MAC/sign-wrapped with a plaintext Key Value Structure; HMAC-SHA256 (through crypto, key M)
 * over the Key Value's TTLV bytes as received must verify (FB_ERR_MAC), and the Key Value's
 * x-Nonce must equal `nonce` (constant time; FB_ERR_NONCE). Only then is the material copied.
 * On any error `material` is zeroized.
 */
fb_status fb_kmip_verify_nonce_mac(const fb_crypto *crypto, fb_bytes payload, const uint8_t *nonce,
                                   size_t nonce_len, uint8_t *material, size_t material_size,
                                   fb_key *key);

/* ---- Relayed Put / Notify (§5.2) ---- */

typedef struct fb_request_item {
    uint32_t operation;
    fb_bytes unique_batch_item_id; /**< empty when absent */
    fb_bytes payload;              /**< the Request Payload's children */
} fb_request_item;

typedef struct fb_request_message {
    fb_version version;
    size_t item_count;
    fb_request_item items[FB_MAX_BATCH_ITEMS];
} fb_request_message;

/** Reads a Request Message (a relayed push), with the same checks as fb_kmip_parse_response. */
fb_status fb_kmip_parse_request(const uint8_t *body, size_t len, fb_request_message *request);

/** A Put payload (KMIP 1.2 §4.28). */
typedef struct fb_put {
    uint32_t put_function;    /**< FB_PUT_NEW or FB_PUT_REPLACE */
    fb_bytes replaced_uid;    /**< empty when absent */
    fb_key key;               /**< material_len 0 when the object carries no plaintext material */
    fb_ttlv_reader attributes; /**< for fb_kmip_next_attribute */
} fb_put;

/**
 * Reads a Put payload (Unique Identifier, Put Function and the managed object required),
 * copying plaintext key material into `material` as fb_kmip_read_get does; an object without a
 * Key Block, or with a wrapped one, gives material_len 0. `material` is zeroized on error.
 */
fb_status fb_kmip_read_put(fb_bytes payload, uint8_t *material, size_t material_size, fb_put *put);

/**
 * The acknowledgement of `request` (§5.2): a Response Message at the request's version, Time
 * Stamp `now` (seconds), one item per request item: its Operation (and Unique Batch Item ID),
 * Result Status Success, an empty Response Payload.
 */
void fb_kmip_build_ack(fb_ttlv_writer *w, const fb_request_message *request, int64_t now);

#ifdef __cplusplus
}
#endif
#endif /* FB_KMIP_H */
