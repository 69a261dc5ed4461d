/* A serial line (termios, raw 8N1) carrying SLIP packets (PROTOCOL.md §6), as an example_link. */
#ifndef EXAMPLE_SERIAL_LINK_H
#define EXAMPLE_SERIAL_LINK_H

#include "../common/link.h"
#include "fb/fb_slip.h"

typedef struct serial_link {
    int fd;
    fb_slip_decoder decoder;
    uint8_t packet[FB_SLIP_BUFFER_SIZE]; /* the decoder's buffer: one frame and its CRC */
    uint8_t rx[512];                     /* bytes read from the line, not yet decoded */
    size_t rx_len;
    size_t rx_pos;
} serial_link;

/** Opens `path` raw at `baud`; 0, or -1 with a message on stderr. */
int serial_link_open(serial_link *line, example_link *link, const char *path, long baud);
void serial_link_close(serial_link *line);

#endif
