/* The device context (fb_device.h): requests in flight, down frames, push acknowledgements. */
#include <string.h>
#include "fb/fb_device.h"

static size_t max_frame_of(const fb_device *dev)
{
    size_t m = dev->config.max_frame;
    return (m == 0u || m > FB_MAX_FRAME) ? FB_MAX_FRAME : m;
}

fb_status fb_device_init(fb_device *dev, const fb_device_config *config)
{
    const fb_crypto *c;
    if (dev == NULL || config == NULL) {
        return FB_ERR_ARG;
    }
    memset(dev, 0, sizeof *dev);
    c = config->crypto;
    if (fb_device_id_check(config->device_id, config->device_id_len) != FB_OK ||
        (config->suite != FB_SUITE_AES_256_GCM && config->suite != FB_SUITE_CHACHA20_POLY1305) ||
        c == NULL || c->aead_seal == NULL || c->aead_open == NULL || config->storage == NULL ||
        (config->clock != NULL && config->clock->now == NULL) ||
        (config->max_frame != 0u && config->max_frame < FB_FRAME_LEN(config->device_id_len, true, FB_MIN_BODY))) {
        return FB_ERR_ARG;
    }
    dev->config = *config;
    return fb_counters_load(&dev->counters, config->storage, config->counter_block);
}

fb_status fb_device_begin(const fb_device *dev, uint8_t *frame, size_t frame_size, bool reply,
                          fb_ttlv_writer *body)
{
    size_t header_len;
    size_t room;
    if (dev == NULL || frame == NULL || body == NULL) {
        return FB_ERR_ARG;
    }
    header_len = FB_FRAME_HEADER_LEN(dev->config.device_id_len, reply);
    room = frame_size < max_frame_of(dev) ? frame_size : max_frame_of(dev);
    if (room < header_len + FB_MIN_BODY + FB_TAG_BYTES) {
        fb_ttlv_writer_init(body, frame, 0);
        body->status = FB_ERR_TOO_LARGE;
        return FB_ERR_TOO_LARGE;
    }
    /* The body is written where the frame's ciphertext goes, leaving room for the tag. */
    fb_ttlv_writer_init(body, frame + header_len, room - header_len - FB_TAG_BYTES);
    return FB_OK;
}

/* The in-flight slot holding `counter` (0: a free slot), NULL when none does. */
static uint64_t *slot_of(fb_device *dev, uint64_t counter)
{
    uint64_t *slot;
    for (slot = dev->in_flight; slot < dev->in_flight + FB_MAX_IN_FLIGHT; slot++) {
        if (*slot == counter) {
            return slot;
        }
    }
    return NULL;
}

/*
 * PROTOCOL.md §3.1 lead rule: the agent keeps a request answerable only while its counter is
 * within 64 of the highest it accepted, so no up frame may be 64 or more above the oldest request
 * still waiting for its answer (it waits, or that request is given up with fb_device_forget).
 */
#define FB_LEAD_LIMIT 64u /* the agent's replay window (PROTOCOL.md §3.1) */

static bool too_far_ahead(const fb_device *dev)
{
    const uint64_t *slot;
    uint64_t next = dev->counters.next_up;
    for (slot = dev->in_flight; slot < dev->in_flight + FB_MAX_IN_FLIGHT; slot++) {
        if (*slot != 0u && next != 0u && next - *slot >= FB_LEAD_LIMIT) {
            return true;
        }
    }
    return false;
}

fb_status fb_device_seal(fb_device *dev, uint8_t *frame, const fb_ttlv_writer *body,
                         uint64_t reply_to, size_t *frame_len, uint64_t *counter)
{
    fb_frame_header h;
    fb_status status;
    uint64_t *slot = NULL;
    size_t header_len;
    if (dev == NULL || frame == NULL || body == NULL || frame_len == NULL || counter == NULL) {
        return FB_ERR_ARG;
    }
    *frame_len = 0;
    *counter = 0;
    header_len = FB_FRAME_HEADER_LEN(dev->config.device_id_len, reply_to != 0u);
    status = body->status;
    if (status == FB_OK && body->buf != frame + header_len) {
        return FB_ERR_ARG; /* not begun on this frame with this kind */
    }
    if (status == FB_OK && reply_to == 0u) {
        slot = slot_of(dev, 0u);
        if (slot == NULL) {
            status = FB_ERR_BUSY; /* before a counter is spent */
        }
    }
    if (status == FB_OK && too_far_ahead(dev)) {
        status = FB_ERR_BUSY; /* §3.1 lead rule, requests and acknowledgements alike */
    }
    if (status == FB_OK) {
        status = fb_counters_next_up(&dev->counters, counter);
    }
    if (status != FB_OK) {
        /* Not sealed: no plaintext body left behind in the caller's frame. */
        fb_zeroize(body->buf, body->size);
        return status;
    }
    h.suite = dev->config.suite;
    h.direction = FB_UP;
    h.device_id = dev->config.device_id;
    h.device_id_len = dev->config.device_id_len;
    h.counter = *counter;
    h.has_reply_to = reply_to != 0u;
    h.reply_to = reply_to;
    h.header_len = header_len;
    status = fb_frame_seal(dev->config.crypto, &h, body->buf, body->len, frame,
                           header_len + body->size + FB_TAG_BYTES, frame_len);
    if (status != FB_OK) {
        return status; /* the counter stays used: counters are never reused (§3) */
    }
    if (slot != NULL) {
        *slot = *counter;
    }
    return FB_OK;
}

/*
 * Every message the context sends: the body begun in `frame`, written by the builder (reply_to 0:
 * `request`; else the acknowledgement of `ack`), sealed. A builder's error too goes through
 * fb_device_seal, which returns it before any counter is used, the body zeroized.
 */
static fb_status build_and_seal(fb_device *dev, const fb_request *request, const fb_request_message *ack,
                                uint64_t reply_to, uint8_t *frame, size_t frame_size, size_t *frame_len,
                                uint64_t *counter)
{
    fb_ttlv_writer w;
    fb_status status = fb_device_begin(dev, frame, frame_size, reply_to != 0u, &w);
    if (status != FB_OK) {
        return status;
    }
    if (reply_to == 0u) {
        fb_kmip_build_request(&w, request);
    } else {
        fb_kmip_build_ack(&w, ack, dev->config.clock != NULL ? dev->config.clock->now(dev->config.clock->ctx) : 0);
    }
    return fb_device_seal(dev, frame, &w, reply_to, frame_len, counter);
}

fb_status fb_device_request(fb_device *dev, const fb_request *request, uint8_t *frame,
                            size_t frame_size, size_t *frame_len, uint64_t *counter)
{
    if (dev != NULL && request != NULL && request->operation == FB_OP_GET && request->mac_uid.ptr != NULL) {
        const fb_crypto *c = dev->config.crypto;
        if (request->nonce == NULL || request->nonce_len < FB_NONCE_MIN || request->nonce_len > FB_NONCE_MAX ||
            c->random == NULL) {
            return FB_ERR_ARG;
        }
        /* A fresh nonce for every exchange (§5.1): a recorded response carries an old one. */
        if (c->random(c->ctx, request->nonce, request->nonce_len) != FB_OK) {
            return FB_ERR_CRYPTO;
        }
    }
    return build_and_seal(dev, request, NULL, 0u, frame, frame_size, frame_len, counter);
}

fb_status fb_device_receive(fb_device *dev, uint8_t *frame, size_t frame_len, fb_down *down)
{
    fb_frame_header h;
    fb_status status;
    uint64_t *slot = NULL;
    if (dev == NULL || frame == NULL || down == NULL) {
        return FB_ERR_ARG;
    }
    memset(down, 0, sizeof *down);
    /* Everything about the header first, before any cryptography (§2, §4). */
    status = fb_frame_parse_header(frame, frame_len, max_frame_of(dev), &h);
    if (status != FB_OK) {
        return status;
    }
    if (h.suite != dev->config.suite) {
        return FB_ERR_SUITE;
    }
    if (h.direction != FB_DOWN || h.device_id_len != dev->config.device_id_len ||
        memcmp(h.device_id, dev->config.device_id, h.device_id_len) != 0) {
        return FB_ERR_UNEXPECTED;
    }
    if (h.has_reply_to) {
        /* §4: a reply must answer a request in flight; bound to it by reply_to (§3). */
        slot = slot_of(dev, h.reply_to);
        if (slot == NULL) {
            return FB_ERR_UNEXPECTED;
        }
        if (fb_replay_check(&dev->down, h.counter) != FB_OK) {
            return FB_ERR_REPLAY;
        }
    } else if (h.counter <= dev->counters.push_accepted) {
        return FB_ERR_REPLAY; /* §5.2: only above the last push accepted */
    }
    status = fb_frame_open_parsed(dev->config.crypto, frame, frame_len, &h, &down->body, &down->body_len);
    if (status != FB_OK) {
        return status;
    }
    if (slot != NULL) {
        *slot = 0u;
        fb_replay_record(&dev->down, h.counter);
        down->kind = FB_DOWN_REPLY;
        down->reply_to = h.reply_to;
    } else {
        /* Stored durably before the caller acts on the push (§5.2). */
        status = fb_counters_accept_push(&dev->counters, h.counter);
        if (status != FB_OK) {
            fb_zeroize(down->body, down->body_len);
            memset(down, 0, sizeof *down);
            return status;
        }
        fb_replay_record(&dev->down, h.counter);
        down->kind = FB_DOWN_PUSH;
    }
    down->counter = h.counter;
    return FB_OK;
}

fb_status fb_device_ack(fb_device *dev, const fb_request_message *request, uint64_t push_counter,
                        uint8_t *frame, size_t frame_size, size_t *frame_len, uint64_t *counter)
{
    if (push_counter == 0u) {
        return FB_ERR_ARG; /* dev, frame: fb_device_begin; request: the builder */
    }
    return build_and_seal(dev, NULL, request, push_counter, frame, frame_size, frame_len, counter);
}

fb_status fb_device_forget(fb_device *dev, uint64_t counter)
{
    uint64_t *slot;
    if (dev == NULL || counter == 0u) {
        return FB_ERR_ARG;
    }
    slot = slot_of(dev, counter);
    if (slot == NULL) {
        return FB_ERR_NOT_FOUND;
    }
    *slot = 0u;
    return FB_OK;
}

size_t fb_device_in_flight(const fb_device *dev)
{
    size_t i;
    size_t n = 0;
    if (dev == NULL) {
        return 0;
    }
    for (i = 0; i < FB_MAX_IN_FLIGHT; i++) {
        n += dev->in_flight[i] != 0u ? 1u : 0u;
    }
    return n;
}
