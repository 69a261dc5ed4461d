/*
 * posix-serial-device: a device on a serial line (CLI.md "firmware-bridge examples").
 *   posix-serial-device --id ID --key HEX [--suite S] --serial PATH --state FILE ACTION
 * The line is opened raw (termios) and carries SLIP packets (PROTOCOL.md §6); everything else is
 * common/device_app.c. Also runs as an armhf binary under qemu-arm.
 */
#include <stdio.h>

#include "../common/device_app.h"
#include "../common/options.h"
#include "serial_link.h"

int main(int argc, char **argv) {
    static example_options options;
    static serial_link line;
    example_link link;
    setvbuf(stdout, NULL, _IOLBF, 0); /* one JSON line per request, as it completes */
    int bad = options_parse(argc, argv, TRANSPORT_SERIAL, &options);
    if (bad) return bad;
    if (serial_link_open(&line, &link, options.serial, options.baud) != 0) return 1;
    int status = device_app_run(&options, &link, "posix-serial-device");
    /* Line quality, for whoever installs the cable (never frame contents). */
    const fb_slip_stats *stats = &line.decoder.stats;
    fprintf(stderr, "posix-serial-device: SLIP %lu packets, dropped %lu bad CRC, %lu oversize, %lu bad escapes\n",
            (unsigned long)stats->frames, (unsigned long)stats->crc_errors, (unsigned long)stats->oversize, (unsigned long)stats->bad_escapes);
    serial_link_close(&line);
    return status;
}
