/*
 * fbtool: the firmware-bridge host tool (CLI.md "firmware-bridge host tool"): seals, opens and
 * SLIP-encodes/decodes frames from hex, to debug a link and cross-check implementations.
 *   fbtool seal --key HEX --suite S --direction up|down --device-id ID --counter N [--reply-to N] --body HEX
 *   fbtool open --key HEX --suite S --direction up|down --hex FRAME
 *   fbtool slip encode --hex FRAME
 *   fbtool slip decode --hex BYTES
 * --key-file PATH (a file holding the hex key) may replace --key, to keep a real key off the
 * command line. Exit 0 ok, 1 refused (the frame does not open / no valid packet), 2 bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fb/fb.h"
#include "fb/fb_crypto_psa.h"

#define MAX_HEX_BYTES (2u * FB_SLIP_MAX_ENCODED(FB_MAX_FRAME))

static int usage(const char *problem)
{
    fprintf(stderr, "fbtool: %s\n", problem);
    fprintf(stderr, "usage: fbtool seal|open|slip encode|slip decode ... (see CLI.md, \"firmware-bridge host tool\")\n");
    return 2;
}

typedef struct args {
    const char *key;
    const char *key_file;
    const char *suite;
    const char *direction;
    const char *device_id;
    const char *counter;
    const char *reply_to;
    const char *body;
    const char *hex;
} args;

static int parse_args(int argc, char **argv, int first, args *a)
{
    int i;
    memset(a, 0, sizeof *a);
    for (i = first; i < argc; i += 2) {
        const char *name = argv[i];
        const char **slot = NULL;
        if (strcmp(name, "--key") == 0) slot = &a->key;
        else if (strcmp(name, "--key-file") == 0) slot = &a->key_file;
        else if (strcmp(name, "--suite") == 0) slot = &a->suite;
        else if (strcmp(name, "--direction") == 0) slot = &a->direction;
        else if (strcmp(name, "--device-id") == 0) slot = &a->device_id;
        else if (strcmp(name, "--counter") == 0) slot = &a->counter;
        else if (strcmp(name, "--reply-to") == 0) slot = &a->reply_to;
        else if (strcmp(name, "--body") == 0) slot = &a->body;
        else if (strcmp(name, "--hex") == 0) slot = &a->hex;
        if (slot == NULL) {
            fprintf(stderr, "fbtool: unknown option %s: see CLI.md for the options of each command\n", name);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "fbtool: %s needs a value\n", name);
            return 2;
        }
        *slot = argv[i + 1];
    }
    return 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes hex (whitespace at the ends allowed) into out; 0 on success. */
static int from_hex(const char *hex, uint8_t *out, size_t size, size_t *len)
{
    size_t n = strlen(hex);
    size_t i;
    while (n > 0 && (hex[n - 1] == '\n' || hex[n - 1] == ' ' || hex[n - 1] == '\r')) n--;
    if (n % 2u != 0u || n / 2u > size) return -1;
    for (i = 0; i < n / 2u; i++) {
        int hi = hex_value(hex[2 * i]);
        int lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (uint8_t)(hi * 16 + lo);
    }
    *len = n / 2u;
    return 0;
}

static void print_hex(const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) printf("%02x", p[i]);
}

/* A counter: decimal, 1 .. 2^64-1. */
static int parse_counter(const char *text, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v;
    if (text == NULL || text[0] < '0' || text[0] > '9') return -1;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0) return -1;
    *out = (uint64_t)v;
    return 0;
}

static int parse_suite(const char *text, uint8_t *suite)
{
    if (text != NULL && strcmp(text, "aes-256-gcm") == 0) *suite = FB_SUITE_AES_256_GCM;
    else if (text != NULL && strcmp(text, "chacha20-poly1305") == 0) *suite = FB_SUITE_CHACHA20_POLY1305;
    else return -1;
    return 0;
}

static int parse_direction(const char *text, fb_direction *d)
{
    if (text != NULL && strcmp(text, "up") == 0) *d = FB_UP;
    else if (text != NULL && strcmp(text, "down") == 0) *d = FB_DOWN;
    else return -1;
    return 0;
}

static int load_key(const args *a, uint8_t key[FB_KEY_BYTES])
{
    size_t len = 0;
    char text[160];
    if ((a->key == NULL) == (a->key_file == NULL)) {
        return usage("give the device key with --key HEX or --key-file PATH (64 hex digits)");
    }
    if (a->key_file != NULL) {
        FILE *f = fopen(a->key_file, "r");
        size_t got;
        if (f == NULL) {
            fprintf(stderr, "fbtool: cannot read --key-file %s: %s\n", a->key_file, strerror(errno));
            return 2;
        }
        got = fread(text, 1, sizeof text - 1u, f);
        fclose(f);
        text[got] = '\0';
        if (from_hex(text, key, FB_KEY_BYTES, &len) != 0 || len != FB_KEY_BYTES) {
            fb_zeroize(text, sizeof text);
            return usage("--key-file must hold the key as 64 hex digits");
        }
        fb_zeroize(text, sizeof text);
        return 0;
    }
    if (from_hex(a->key, key, FB_KEY_BYTES, &len) != 0 || len != FB_KEY_BYTES) {
        return usage("--key is 64 hex digits (a 256-bit device key)");
    }
    return 0;
}

static uint8_t frame[FB_MAX_FRAME + 1];
static uint8_t bytes[MAX_HEX_BYTES];

static int cmd_seal(const args *a)
{
    uint8_t key[FB_KEY_BYTES];
    fb_crypto_psa state;
    fb_crypto crypto;
    fb_frame_header h;
    size_t body_len = 0;
    size_t frame_len = 0;
    fb_status st;
    int rc;
    memset(&h, 0, sizeof h);
    if (parse_suite(a->suite, &h.suite) != 0) return usage("--suite is aes-256-gcm or chacha20-poly1305");
    if (parse_direction(a->direction, &h.direction) != 0) return usage("--direction is up or down");
    if (a->device_id == NULL || fb_device_id_check((const uint8_t *)a->device_id, strlen(a->device_id)) != FB_OK) {
        return usage("--device-id is 1-64 characters of [A-Za-z0-9._-]");
    }
    h.device_id = (const uint8_t *)a->device_id;
    h.device_id_len = strlen(a->device_id);
    if (parse_counter(a->counter, &h.counter) != 0) return usage("--counter is a decimal number from 1 to 2^64-1");
    if (a->reply_to != NULL) {
        if (parse_counter(a->reply_to, &h.reply_to) != 0) return usage("--reply-to is a decimal number from 1 to 2^64-1");
        h.has_reply_to = true;
    }
    if (a->body == NULL || from_hex(a->body, bytes, FB_MAX_FRAME, &body_len) != 0) {
        return usage("--body is the TTLV message as hex (at most 4096 bytes)");
    }
    if (body_len < FB_MIN_BODY) return usage("--body must be at least 8 bytes (one TTLV item)");
    rc = load_key(a, key);
    if (rc != 0) return rc;
    if (fb_crypto_psa_import(&state, &crypto, h.suite, key, NULL, 0) != FB_OK) {
        fb_zeroize(key, sizeof key);
        fprintf(stderr, "fbtool: the PSA crypto backend refused the key\n");
        return 2;
    }
    fb_zeroize(key, sizeof key);
    st = fb_frame_seal(&crypto, &h, bytes, body_len, frame, sizeof frame, &frame_len);
    fb_crypto_psa_free(&state);
    fb_zeroize(bytes, body_len);
    if (st == FB_ERR_TOO_LARGE) return usage("the frame would exceed 4096 bytes (PROTOCOL.md §2): shorten --body");
    if (st != FB_OK) {
        fprintf(stderr, "fbtool: sealing failed: %s\n", fb_status_name(st));
        return 2;
    }
    print_hex(frame, frame_len);
    printf("\n");
    return 0;
}

static int cmd_open(const args *a)
{
    uint8_t key[FB_KEY_BYTES];
    fb_crypto_psa state;
    fb_crypto crypto;
    fb_frame_header h;
    uint8_t suite;
    fb_direction direction;
    size_t len = 0;
    uint8_t *body;
    size_t body_len;
    fb_status st;
    int rc;
    if (parse_suite(a->suite, &suite) != 0) return usage("--suite is aes-256-gcm or chacha20-poly1305");
    if (parse_direction(a->direction, &direction) != 0) return usage("--direction is up or down");
    if (a->hex == NULL || from_hex(a->hex, bytes, sizeof bytes, &len) != 0) return usage("--hex is the frame as hex");
    rc = load_key(a, key);
    if (rc != 0) return rc;
    if (fb_crypto_psa_import(&state, &crypto, suite, key, NULL, 0) != FB_OK) {
        fb_zeroize(key, sizeof key);
        fprintf(stderr, "fbtool: the PSA crypto backend refused the key\n");
        return 2;
    }
    fb_zeroize(key, sizeof key);
    if (len > FB_MAX_FRAME) {
        fb_crypto_psa_free(&state);
        fprintf(stderr, "fbtool: frame refused: %s (%zu bytes, the limit is 4096)\n", fb_status_name(FB_ERR_TOO_LARGE), len);
        return 1;
    }
    st = fb_frame_open(&crypto, suite, direction, bytes, len, &h, &body, &body_len);
    fb_crypto_psa_free(&state);
    if (st != FB_OK) {
        fprintf(stderr, "fbtool: frame refused: %s\n", fb_status_name(st));
        return 1;
    }
    printf("{\"deviceId\":\"%.*s\",\"counter\":\"%llu\",\"replyTo\":", (int)h.device_id_len, (const char *)h.device_id,
           (unsigned long long)h.counter);
    if (h.has_reply_to) printf("\"%llu\"", (unsigned long long)h.reply_to);
    else printf("null");
    printf(",\"body\":\"");
    print_hex(body, body_len);
    printf("\"}\n");
    fb_zeroize(body, body_len);
    return 0;
}

static int cmd_slip_encode(const args *a)
{
    static uint8_t out[FB_SLIP_MAX_ENCODED(FB_MAX_FRAME)];
    size_t len = 0;
    size_t out_len = 0;
    if (a->hex == NULL || from_hex(a->hex, bytes, sizeof bytes, &len) != 0) return usage("--hex is the frame as hex");
    if (len == 0 || len > FB_MAX_FRAME) return usage("a frame is 1 to 4096 bytes (PROTOCOL.md §2)");
    if (fb_slip_encode(bytes, len, out, sizeof out, &out_len) != FB_OK) return usage("cannot encode this frame");
    print_hex(out, out_len);
    printf("\n");
    return 0;
}

static int cmd_slip_decode(const args *a)
{
    static uint8_t buffer[FB_SLIP_BUFFER_SIZE];
    fb_slip_decoder d;
    size_t len = 0;
    size_t pos = 0;
    int found = 0;
    if (a->hex == NULL || from_hex(a->hex, bytes, sizeof bytes, &len) != 0) return usage("--hex is the received bytes as hex");
    fb_slip_decoder_init(&d, buffer, sizeof buffer);
    while (pos < len) {
        size_t used;
        uint8_t *f;
        size_t f_len;
        fb_status st = fb_slip_decode(&d, bytes + pos, len - pos, &used, &f, &f_len);
        pos += used;
        if (st == FB_OK) {
            printf("{\"frame\":\"");
            print_hex(f, f_len);
            printf("\"}\n");
            found++;
        } else if (st == FB_AGAIN) {
            break;
        } else {
            fprintf(stderr, "fbtool: packet dropped: %s\n", fb_status_name(st));
        }
    }
    return found > 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    args a;
    int rc;
    if (argc < 2) return usage("name a command: seal, open, slip encode or slip decode");
    if (strcmp(argv[1], "seal") == 0 || strcmp(argv[1], "open") == 0) {
        rc = parse_args(argc, argv, 2, &a);
        if (rc != 0) return rc;
        return argv[1][0] == 's' ? cmd_seal(&a) : cmd_open(&a);
    }
    if (strcmp(argv[1], "slip") == 0) {
        if (argc < 3 || (strcmp(argv[2], "encode") != 0 && strcmp(argv[2], "decode") != 0)) {
            return usage("slip takes encode or decode");
        }
        rc = parse_args(argc, argv, 3, &a);
        if (rc != 0) return rc;
        return argv[2][0] == 'e' ? cmd_slip_encode(&a) : cmd_slip_decode(&a);
    }
    return usage("unknown command: use seal, open, slip encode or slip decode");
}
