/*
 * How the examples move frames: one frame out, one frame in. The serial example implements it on
 * a termios line with SLIP (PROTOCOL.md §6), the MQTT example on libmosquitto, QoS 1; the device
 * logic (device_app.c) is the same for both, as it would be in firmware.
 */
#ifndef EXAMPLE_LINK_H
#define EXAMPLE_LINK_H

#include <stddef.h>
#include <stdint.h>

typedef struct example_link {
    void *ctx;
    /** Sends one frame. 0 when handed to the line, -1 when not (the request is resent later). */
    int (*send)(void *ctx, const uint8_t *frame, size_t len);
    /**
     * Waits up to `timeout_ms` for one frame: 1 with *frame / *len (a writable buffer of the link,
     * valid until the next call, so the frame can be opened in place), 0 when none came, -1 when
     * the link failed for good.
     */
    int (*receive)(void *ctx, uint8_t **frame, size_t *len, int timeout_ms);
} example_link;

#endif
