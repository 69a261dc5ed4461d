/*
 * The device logic the two examples share (what firmware would run over its own link): the
 * firmware-bridge device with the PSA Crypto backend and the counter state in a file; requests
 * resent as the same frame until answered or the deadline passes (PROTOCOL.md §3, as
 * src/devices/device-requester.ts); relayed pushes opened, applied and acknowledged (§5.2)
 * whenever they arrive; one JSON line per completed request on stdout, device-sim's lines.
 */
#ifndef EXAMPLE_DEVICE_APP_H
#define EXAMPLE_DEVICE_APP_H

#include "link.h"
#include "options.h"

/** Runs the action of `options` over `link`; returns the exit code (0 ok, 1 failed). */
int device_app_run(example_options *options, example_link *link, const char *program);

#endif
