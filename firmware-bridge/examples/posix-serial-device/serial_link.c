#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* cfsetspeed's rates above 38400 */
#include "serial_link.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static speed_t speed_of(long baud) {
    switch (baud) {
    case 9600: return B9600;
    case 19200: return B19200;
    case 38400: return B38400;
    case 57600: return B57600;
    case 230400: return B230400;
    case 460800: return B460800;
    case 921600: return B921600;
    case 115200: return B115200;
    default: return B0;
    }
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* fb_slip_write's sink: bytes straight to the line. */
static fb_status put_bytes(void *ctx, const uint8_t *bytes, size_t len) {
    const serial_link *line = ctx;
    while (len > 0) {
        ssize_t n = write(line->fd, bytes, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
            struct pollfd p = { line->fd, POLLOUT, 0 };
            if (poll(&p, 1, 1000) <= 0) return FB_ERR_ARG;
            continue;
        }
        if (n <= 0) return FB_ERR_ARG;
        bytes += n;
        len -= (size_t)n;
    }
    return FB_OK;
}

static int serial_send(void *ctx, const uint8_t *frame, size_t len) {
    serial_link *line = ctx;
    return fb_slip_write(frame, len, put_bytes, line) == FB_OK ? 0 : -1;
}

static int serial_receive(void *ctx, uint8_t **frame, size_t *len, int timeout_ms) {
    serial_link *line = ctx;
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        while (line->rx_pos < line->rx_len) {
            size_t consumed = 0;
            fb_status status = fb_slip_decode(&line->decoder, line->rx + line->rx_pos, line->rx_len - line->rx_pos, &consumed, frame, len);
            line->rx_pos += consumed;
            if (status == FB_OK) return 1;
            /* FB_AGAIN: need more bytes; a dropped packet (CRC, oversize, bad escape): line noise,
             * counted in decoder.stats, and decoding goes on at the next END. */
            if (status == FB_AGAIN) break;
        }
        line->rx_pos = line->rx_len = 0;
        long long left = deadline - now_ms();
        if (left < 0) return 0;
        struct pollfd p = { line->fd, POLLIN, 0 };
        int ready = poll(&p, 1, (int)left);
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0) return -1;
        if (ready == 0) return 0;
        if (p.revents & (POLLERR | POLLNVAL)) return -1;
        ssize_t n = read(line->fd, line->rx, sizeof line->rx);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n < 0) return -1;
        if (n == 0) {
            /* A pty whose other end is closed reads as end of file (POLLHUP): the cable is out.
             * Wait and try again, as a device on a real line would. */
            struct timespec pause = { 0, 50 * 1000000L };
            nanosleep(&pause, NULL);
            continue;
        }
        line->rx_len = (size_t)n;
    }
}

int serial_link_open(serial_link *line, example_link *link, const char *path, long baud) {
    struct termios t;
    memset(line, 0, sizeof *line);
    if (speed_of(baud) == B0) {
        fprintf(stderr, "posix-serial-device: --baud %ld is not one of 9600 19200 38400 57600 115200 230400 460800 921600\n", baud);
        return -1;
    }
    line->fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (line->fd < 0) {
        fprintf(stderr, "posix-serial-device: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (tcgetattr(line->fd, &t) != 0) {
        fprintf(stderr, "posix-serial-device: %s is not a serial line: %s\n", path, strerror(errno));
        close(line->fd);
        return -1;
    }
    /* Raw 8N1, no flow control, no echo, no line editing or CR/LF translation (cfmakeraw). */
    t.c_iflag &= (tcflag_t) ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON | IXOFF);
    t.c_oflag &= (tcflag_t)~OPOST;
    t.c_lflag &= (tcflag_t) ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cflag &= (tcflag_t) ~(CSIZE | PARENB | CSTOPB);
    t.c_cflag |= CS8 | CREAD | CLOCAL;
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    cfsetispeed(&t, speed_of(baud));
    cfsetospeed(&t, speed_of(baud));
    if (tcsetattr(line->fd, TCSANOW, &t) != 0) {
        fprintf(stderr, "posix-serial-device: cannot set %s raw: %s\n", path, strerror(errno));
        close(line->fd);
        return -1;
    }
    if (fb_slip_decoder_init(&line->decoder, line->packet, sizeof line->packet) != FB_OK) {
        close(line->fd);
        return -1;
    }
    link->ctx = line;
    link->send = serial_send;
    link->receive = serial_receive;
    return 0;
}

void serial_link_close(serial_link *line) {
    if (line->fd >= 0) close(line->fd);
    line->fd = -1;
}
