/**
 * @file fb_device.h
 * The device: one context, initialized by the caller with its configuration and injected
 * interfaces (crypto, storage, optional clock), as coreMQTT's MQTT_Init. It seals requests with
 * the next up counter (stored durably first), tracks the requests in flight, opens what comes
 * down (a reply to one of them, or a relayed Put/Notify) and seals push acknowledgements.
 *
 * The context holds no pointer to a buffer: every frame is in a caller buffer. Typical loop:
 *
 *     fb_request get = { .operation = FB_OP_GET, .uid = { uid, uid_len } };
 *     fb_device_request(&dev, &get, req, sizeof req, &req_len, &counter);
 *     send(req, req_len);                 // and again, the SAME bytes, until answered (§3)
 *     ...a frame arrives in rx (e.g. from fb_slip_decode)...
 *     fb_down down;
 *     if (fb_device_receive(&dev, rx, rx_len, &down) == FB_OK) {
 *         if (down.kind == FB_DOWN_REPLY && down.reply_to == counter) { fb_kmip_parse_response(...) }
 *         if (down.kind == FB_DOWN_PUSH) { fb_kmip_parse_request(...); apply; fb_device_ack(...); send }
 *     }                                   // any error: drop the frame silently (§4)
 */
#ifndef FB_DEVICE_H
#define FB_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "fb_config.h"
#include "fb_counter.h"
#include "fb_crypto.h"
#include "fb_frame.h"
#include "fb_kmip.h"
#include "fb_status.h"
#include "fb_ttlv.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Optional clock: seconds since the Unix epoch (Time Stamp of acknowledgements; 0 without). */
typedef struct fb_clock {
    void *ctx;
    int64_t (*now)(void *ctx);
} fb_clock;

typedef struct fb_device_config {
    const uint8_t *device_id; /**< 1-64 of [A-Za-z0-9._-]; must outlive the context */
    size_t device_id_len;
    uint8_t suite;            /**< FB_SUITE_AES_256_GCM or FB_SUITE_CHACHA20_POLY1305 */
    const fb_crypto *crypto;  /**< required; holds the device key (and M for nonce-MAC) */
    const fb_storage *storage; /**< required; the counter record */
    const fb_clock *clock;    /**< optional (NULL) */
    uint32_t counter_block;   /**< up counters per storage write; 0: FB_DEFAULT_COUNTER_BLOCK */
    size_t max_frame;         /**< frames accepted and sealed up to this; 0: FB_MAX_FRAME */
} fb_device_config;

typedef struct fb_device {
    fb_device_config config;
    fb_counters counters;
    fb_replay_window down;
    uint64_t in_flight[FB_MAX_IN_FLIGHT]; /**< counters of requests waiting; 0: free slot */
} fb_device;

/**
 * Checks the configuration and loads the counter record (no write). FB_ERR_ARG for a bad
 * config, FB_ERR_STORAGE when the record cannot be read or is corrupt.
 */
fb_status fb_device_init(fb_device *dev, const fb_device_config *config);

/**
 * Starts a message to seal in place: `body` writes at the body offset of `frame` (frame_size
 * bytes, clamped to max_frame). `reply` is true for an acknowledgement (a reply_to follows).
 */
fb_status fb_device_begin(const fb_device *dev, uint8_t *frame, size_t frame_size, bool reply,
                          fb_ttlv_writer *body);

/**
 * Seals the message written through `body` (from fb_device_begin on the same `frame`) with the
 * next up counter, reserved durably first. With reply_to == 0 it is a request: it is recorded in
 * flight (FB_ERR_BUSY, before any counter is used, when FB_MAX_IN_FLIGHT are waiting); else an
 * acknowledgement answering down counter `reply_to`. Either is FB_ERR_BUSY, before any counter is
 * used, while its counter would be 64 or more above the oldest request waiting (PROTOCOL.md §3.1
 * lead rule): wait for that answer, or give the request up with fb_device_forget. Writes
 * *frame_len and *counter.
 */
fb_status fb_device_seal(fb_device *dev, uint8_t *frame, const fb_ttlv_writer *body,
                         uint64_t reply_to, size_t *frame_len, uint64_t *counter);

/**
 * One call for every device operation (§5): builds `request` (fb_kmip_build_request: the
 * operation and its arguments) into `frame` and seals it. The frame is the caller's to send,
 * and to resend unchanged until a reply to *counter arrives. For the nonce-MAC batch (a Get
 * with mac_uid, §5.1) it first draws a fresh nonce of nonce_len (16..64) bytes into
 * request->nonce through crypto->random (FB_ERR_ARG without one; FB_ERR_CRYPTO when it fails):
 * keep it for fb_kmip_verify_nonce_mac.
 */
fb_status fb_device_request(fb_device *dev, const fb_request *request, uint8_t *frame,
                            size_t frame_size, size_t *frame_len, uint64_t *counter);

typedef enum fb_down_kind { FB_DOWN_REPLY = 1, FB_DOWN_PUSH = 2 } fb_down_kind;

/** A down frame opened by fb_device_receive. */
typedef struct fb_down {
    fb_down_kind kind;
    uint64_t counter;  /**< the agent's counter */
    uint64_t reply_to; /**< REPLY: the request answered (no longer in flight); PUSH: 0 */
    uint8_t *body;     /**< the TTLV message, inside the caller's frame buffer */
    size_t body_len;
} fb_down;

/**
 * Opens a frame that came down, in place (`frame` is overwritten). Before any crypto: the header
 * (fb_frame_parse_header), our device id, direction down, our suite; a reply must name a request
 * in flight and a counter not seen in the replay window; a push must carry a counter above the
 * last push accepted (FB_ERR_UNEXPECTED / FB_ERR_REPLAY). Then the tag (FB_ERR_AUTH). A reply
 * then leaves the in-flight set; a push's counter is stored durably before FB_OK (act on it,
 * then acknowledge it with fb_device_ack). On any error: drop the frame (§4).
 */
fb_status fb_device_receive(fb_device *dev, uint8_t *frame, size_t frame_len, fb_down *down);

/**
 * Seals the acknowledgement of a push (§5.2) opened by fb_device_receive: `request` is its body
 * read by fb_kmip_parse_request, `push_counter` its fb_down.counter. Not recorded in flight.
 */
fb_status fb_device_ack(fb_device *dev, const fb_request_message *request, uint64_t push_counter,
                        uint8_t *frame, size_t frame_size, size_t *frame_len, uint64_t *counter);

/** Stops waiting for a reply to `counter` (a deadline passed). FB_ERR_NOT_FOUND if not in flight. */
fb_status fb_device_forget(fb_device *dev, uint64_t counter);

/** Requests in flight. */
size_t fb_device_in_flight(const fb_device *dev);

#ifdef __cplusplus
}
#endif
#endif /* FB_DEVICE_H */
