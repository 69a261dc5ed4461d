/* Persisted counters with block reservation (PROTOCOL.md §3, §8) and the down replay window. */
#include <string.h>
#include "fb/fb_config.h"
#include "fb/fb_counter.h"
#include "fb/fb_slip.h"
#include "fb_internal.h"

static const uint8_t record_magic[4] = {'F', 'B', 'C', '1'};

void fb_counter_record_encode(uint64_t up_reserved, uint64_t push_accepted,
                              uint8_t out[FB_COUNTER_RECORD_BYTES])
{
    memcpy(out, record_magic, sizeof record_magic);
    fb_put_u64(out + 4, up_reserved);
    fb_put_u64(out + 12, push_accepted);
    fb_put_u32(out + 20, fb_crc32(0u, out, 20u));
}

fb_status fb_counter_record_decode(const uint8_t in[FB_COUNTER_RECORD_BYTES],
                                   uint64_t *up_reserved, uint64_t *push_accepted)
{
    if (memcmp(in, record_magic, sizeof record_magic) != 0 ||
        fb_get_u32(in + 20) != fb_crc32(0u, in, 20u)) {
        return FB_ERR_STORAGE;
    }
    *up_reserved = fb_get_u64(in + 4);
    *push_accepted = fb_get_u64(in + 12);
    return FB_OK;
}

static fb_status store(fb_counters *c, uint64_t up_reserved, uint64_t push_accepted)
{
    uint8_t record[FB_COUNTER_RECORD_BYTES];
    fb_status status;
    fb_counter_record_encode(up_reserved, push_accepted, record);
    status = c->storage->write(c->storage->ctx, record, sizeof record);
    if (status != FB_OK) {
        return FB_ERR_STORAGE;
    }
    c->writes++;
    return FB_OK;
}

fb_status fb_counters_load(fb_counters *counters, const fb_storage *storage, uint32_t block)
{
    uint8_t record[FB_COUNTER_RECORD_BYTES];
    int found = 0;
    uint64_t up = 0;
    uint64_t push = 0;
    if (counters == NULL || storage == NULL || storage->read == NULL || storage->write == NULL) {
        return FB_ERR_ARG;
    }
    memset(counters, 0, sizeof *counters);
    if (storage->read(storage->ctx, record, sizeof record, &found) != FB_OK) {
        return FB_ERR_STORAGE;
    }
    if (found && fb_counter_record_decode(record, &up, &push) != FB_OK) {
        return FB_ERR_STORAGE; /* corrupt: never guess which counters were used */
    }
    counters->storage = storage;
    /* Everything up to the stored block end may have been sent before the reboot (§8). */
    counters->up_reserved = up;
    counters->next_up = up + 1u; /* wraps to 0 after 2^64-1: exhausted */
    counters->push_accepted = push;
    counters->block = block == 0u ? FB_DEFAULT_COUNTER_BLOCK : block;
    return FB_OK;
}

fb_status fb_counters_next_up(fb_counters *counters, uint64_t *counter)
{
    uint64_t next;
    if (counters == NULL || counters->storage == NULL || counter == NULL) {
        return FB_ERR_ARG;
    }
    next = counters->next_up;
    if (next == 0u) {
        return FB_ERR_COUNTER_EXHAUSTED; /* 2^64-1 was the last counter (§2) */
    }
    if (next > counters->up_reserved) {
        /* Reserve the next block durably before the first of its counters leaves (§3). */
        uint64_t end = next + (counters->block - 1u);
        fb_status status;
        if (end < next) {
            end = UINT64_MAX; /* the block would pass 2^64-1: it ends there */
        }
        status = store(counters, end, counters->push_accepted);
        if (status != FB_OK) {
            return status;
        }
        counters->up_reserved = end;
    }
    *counter = next;
    counters->next_up = next + 1u; /* wraps to 0 after 2^64-1: exhausted */
    return FB_OK;
}

fb_status fb_counters_accept_push(fb_counters *counters, uint64_t counter)
{
    fb_status status;
    if (counters == NULL || counters->storage == NULL) {
        return FB_ERR_ARG;
    }
    if (counter <= counters->push_accepted) {
        return FB_ERR_REPLAY;
    }
    /* Stored before the push is acted on (§5.2): a replay after a reboot is refused too. */
    status = store(counters, counters->up_reserved, counter);
    if (status != FB_OK) {
        return status;
    }
    counters->push_accepted = counter;
    return FB_OK;
}

fb_status fb_replay_check(const fb_replay_window *window, uint64_t counter)
{
    uint64_t offset;
    if (window == NULL || counter == 0u) {
        return FB_ERR_ARG;
    }
    if (counter > window->highest) {
        return FB_OK;
    }
    offset = window->highest - counter;
    if (offset >= 64u) {
        return FB_OK; /* below the window: reply_to binds such a reply (§3) */
    }
    return (window->seen & ((uint64_t)1u << offset)) != 0u ? FB_ERR_REPLAY : FB_OK;
}

void fb_replay_record(fb_replay_window *window, uint64_t counter)
{
    uint64_t offset;
    if (window == NULL || counter == 0u) {
        return;
    }
    if (counter > window->highest) {
        /* The window slides up to the new highest counter. */
        uint64_t shift = counter - window->highest;
        window->seen = shift >= 64u ? 0u : window->seen << shift;
        window->highest = counter;
    }
    offset = window->highest - counter;
    if (offset < 64u) {
        window->seen |= (uint64_t)1u << offset;
    }
}
