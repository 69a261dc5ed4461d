/**
 * @file fb_counter.h
 * The device's persisted counter state (PROTOCOL.md §3, §5.2, §8) and the storage interface it
 * goes through. Up counters are reserved in blocks, as OSCORE (RFC 8613 App. B.1.1) and LoRaWAN
 * devices do: the stored value is the highest counter that may have been used; a write reserves
 * the next `block` counters before the first of them is sent, so a reboot continues after the
 * stored block end and never reuses a counter, at one NVM write per `block` requests. The last
 * accepted push counter is written before a push is acted on (one write per push).
 *
 * Stored record (FB_COUNTER_RECORD_BYTES, big-endian): magic "FBC1" | up_reserved u64 |
 * push_accepted u64 | crc32 of the preceding 20 bytes. A record whose magic or CRC is wrong is
 * FB_ERR_STORAGE: the device refuses to send rather than guess (a stale or torn record could
 * reuse counters).
 */
#ifndef FB_COUNTER_H
#define FB_COUNTER_H

#include <stddef.h>
#include <stdint.h>
#include "fb_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FB_COUNTER_RECORD_BYTES 24u

/**
 * The storage interface the caller injects. Both calls are synchronous; `write` returns only
 * when the record is durable (flash programmed, fsync done). A port that keeps two copies (A/B
 * pages, as wear levelling wants) returns the newer valid one from `read`.
 */
typedef struct fb_storage {
    void *ctx;
    /**
     * Reads the record into `buf` (FB_COUNTER_RECORD_BYTES). Sets *found to 0 when nothing was
     * ever stored (a fresh device: counters start at 1), 1 otherwise. FB_ERR_STORAGE on failure.
     */
    fb_status (*read)(void *ctx, uint8_t *buf, size_t len, int *found);
    /** Durably replaces the record with `buf` (FB_COUNTER_RECORD_BYTES). FB_ERR_STORAGE on failure. */
    fb_status (*write)(void *ctx, const uint8_t *buf, size_t len);
} fb_storage;

/** The counter state, in RAM. */
typedef struct fb_counters {
    const fb_storage *storage;
    uint64_t next_up;       /**< the counter the next up frame gets; 0 once 2^64-1 was used */
    uint64_t up_reserved;   /**< stored: counters up to this one may be used without a write */
    uint64_t push_accepted; /**< stored: the down counter of the last push accepted (0: none) */
    uint32_t block;         /**< counters reserved per write (>= 1) */
    uint32_t writes;        /**< storage writes made since fb_counters_load (for wear figures) */
} fb_counters;

/** Encodes a record (magic, both counters, CRC). */
void fb_counter_record_encode(uint64_t up_reserved, uint64_t push_accepted,
                              uint8_t out[FB_COUNTER_RECORD_BYTES]);
/** Decodes a record; FB_ERR_STORAGE when its magic or CRC is wrong. */
fb_status fb_counter_record_decode(const uint8_t in[FB_COUNTER_RECORD_BYTES],
                                   uint64_t *up_reserved, uint64_t *push_accepted);

/**
 * Loads the state through `storage` (no write: a device rebooting in a loop wears nothing).
 * `block` 0 means FB_DEFAULT_COUNTER_BLOCK.
 */
fb_status fb_counters_load(fb_counters *counters, const fb_storage *storage, uint32_t block);

/**
 * The next up counter, reserved durably: when it lies beyond the stored block, the next block is
 * written first (FB_ERR_STORAGE if that fails, and no counter is handed out).
 * FB_ERR_COUNTER_EXHAUSTED at 2^64-1.
 */
fb_status fb_counters_next_up(fb_counters *counters, uint64_t *counter);

/**
 * Accepts a push counter (§5.2): FB_ERR_REPLAY unless above the last accepted; else stores it
 * durably (FB_ERR_STORAGE, not accepted, when that fails) and FB_OK.
 */
fb_status fb_counters_accept_push(fb_counters *counters, uint64_t counter);

/**
 * A sliding window of the 64 latest down counters seen (RFC 6347 §4.1.2.6), in RAM: a second
 * line of defence for replies, which are bound to their request by reply_to (§3).
 */
typedef struct fb_replay_window {
    uint64_t highest; /**< 0: nothing seen */
    uint64_t seen;    /**< bit i: counter highest - i was seen */
} fb_replay_window;

/** FB_ERR_REPLAY when `counter` was seen (in the window); else FB_OK. Below the window: FB_OK
 *  (such a frame is judged by reply_to alone). Does not record. */
fb_status fb_replay_check(const fb_replay_window *window, uint64_t counter);
/** Records `counter` as seen. */
void fb_replay_record(fb_replay_window *window, uint64_t counter);

#ifdef __cplusplus
}
#endif
#endif /* FB_COUNTER_H */
