/**
 * @file fb_config.h
 * Compile-time limits, each overridable with -D (as coreMQTT's core_mqtt_config.h): defaults are
 * PROTOCOL.md's maxima. Smaller values save RAM in the fb_device context only; buffers are the
 * caller's and sized by the caller.
 */
#ifndef FB_CONFIG_H
#define FB_CONFIG_H

/** Largest frame (PROTOCOL.md §2: 4096). A device MAY lower it; it must not raise it. */
#ifndef FB_MAX_FRAME
#define FB_MAX_FRAME 4096u
#endif

/** Requests in flight per device (PROTOCOL.md §3: the agent answers resends of 16). */
#ifndef FB_MAX_IN_FLIGHT
#define FB_MAX_IN_FLIGHT 16u
#endif

/** Batch items read from one Response Message (device operations use 1, nonce-MAC 2). */
#ifndef FB_MAX_BATCH_ITEMS
#define FB_MAX_BATCH_ITEMS 2u
#endif

/** Up counters reserved per storage write when fb_device_config.counter_block is 0. */
#ifndef FB_DEFAULT_COUNTER_BLOCK
#define FB_DEFAULT_COUNTER_BLOCK 1000u
#endif

/**
 * 0 (default): fb_status_name returns "FB_OK", "FB_AGAIN" or "FB_ERR" only; log the status's
 * number (fb_status.h lists them). 1: each status's constant name ("FB_ERR_AUTH"), for about 245
 * bytes more flash on Cortex-M (the strings). Off by default as nanopb's error messages can be
 * (PB_NO_ERRMSG): a firmware image pays only for what it logs. The CMake build turns the names on
 * (option FB_STATUS_NAMES) for the host tool, the tests and the examples.
 */
#ifndef FB_CONFIG_STATUS_NAMES
#define FB_CONFIG_STATUS_NAMES 0
#endif

#if FB_MAX_FRAME > 4096u
#error "FB_MAX_FRAME may not exceed PROTOCOL.md's 4096 bytes"
#endif
#if FB_MAX_IN_FLIGHT < 1u || FB_MAX_IN_FLIGHT > 64u
#error "FB_MAX_IN_FLIGHT is 1..64"
#endif

#endif /* FB_CONFIG_H */
