/*
 * fb-frame-bench: frames sealed and opened per second by the C library on this machine, with the
 * default PSA Crypto backend (Mbed TLS). `kmip-edge bench firmware` runs it next to the
 * TypeScript implementation (src/devices/frame.ts) in the same run; a benchmark, never a test.
 *
 *   fb-frame-bench [--seconds S] [--body BYTES] [--suite aes-256-gcm|chacha20-poly1305]
 *   prints {"suite":…,"bodyBytes":N,"frameBytes":M,"sealPerSec":X,"openPerSec":Y}
 *
 * seal = header + AEAD of the body into the caller's frame buffer (what a device does per
 * request); open = header checks + tag verification + decryption in place, of a fresh copy of a
 * sealed frame each time (the copy is counted: a receiver gets the frame in its own buffer).
 * Five timed rounds after a warm-up; the median round is reported, as src/bench/measure.ts does.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fb/fb_crypto_psa.h"
#include "fb/fb_frame.h"

#define ROUNDS 5

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct bench_state {
    const fb_crypto *crypto;
    fb_frame_header header;
    uint8_t body[FB_MAX_FRAME];
    size_t body_len;
    uint8_t frame[FB_MAX_FRAME];
    size_t frame_len;
    uint8_t work[FB_MAX_FRAME];
    uint64_t counter;
    int failed;
} bench_state;

static void seal_once(bench_state *s) {
    fb_frame_header header = s->header;
    size_t len = 0;
    header.counter = ++s->counter;
    if (fb_frame_seal(s->crypto, &header, s->body, s->body_len, s->frame, sizeof s->frame, &len) != FB_OK) s->failed = 1;
}

static void open_once(bench_state *s) {
    fb_frame_header header;
    uint8_t *body = NULL;
    size_t body_len = 0;
    memcpy(s->work, s->frame, s->frame_len);
    if (fb_frame_open(s->crypto, s->header.suite, FB_UP, s->work, s->frame_len, &header, &body, &body_len) != FB_OK ||
        body_len != s->body_len) {
        s->failed = 1;
    }
}

/** Operations per second of `op`, median of ROUNDS rounds of `seconds / ROUNDS` each. */
static double measure(void (*op)(bench_state *), bench_state *s, double seconds) {
    double rates[ROUNDS];
    double round_seconds = seconds / ROUNDS;
    double warm_end = now_seconds() + (round_seconds < 0.2 ? round_seconds : 0.2);
    while (now_seconds() < warm_end) op(s);
    for (int r = 0; r < ROUNDS; r++) {
        unsigned long n = 0;
        double start = now_seconds();
        double elapsed;
        do {
            for (int i = 0; i < 256; i++) op(s);
            n += 256;
            elapsed = now_seconds() - start;
        } while (elapsed < round_seconds);
        rates[r] = (double)n / elapsed;
    }
    qsort(rates, ROUNDS, sizeof rates[0], compare_doubles);
    return rates[ROUNDS / 2];
}

static int usage(const char *why) {
    fprintf(stderr, "fb-frame-bench: %s\nusage: fb-frame-bench [--seconds S] [--body BYTES] [--suite aes-256-gcm|chacha20-poly1305]\n", why);
    return 2;
}

int main(int argc, char **argv) {
    static bench_state s;
    double seconds = 1.0;
    long body = 64;
    uint8_t suite = FB_SUITE_AES_256_GCM;
    static const uint8_t id[] = "bench-device";
    uint8_t key[FB_KEY_BYTES];
    fb_crypto_psa psa;
    fb_crypto crypto;

    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--seconds") == 0 && value) {
            seconds = strtod(value, NULL);
            i++;
        } else if (strcmp(argv[i], "--body") == 0 && value) {
            body = strtol(value, NULL, 10);
            i++;
        } else if (strcmp(argv[i], "--suite") == 0 && value) {
            if (strcmp(value, "aes-256-gcm") == 0) suite = FB_SUITE_AES_256_GCM;
            else if (strcmp(value, "chacha20-poly1305") == 0) suite = FB_SUITE_CHACHA20_POLY1305;
            else return usage("--suite is aes-256-gcm or chacha20-poly1305");
            i++;
        } else {
            return usage("unknown or incomplete option");
        }
    }
    if (!(seconds > 0.0 && seconds <= 600.0)) return usage("--seconds is in (0, 600]");
    if (body < (long)FB_MIN_BODY || (size_t)body + FB_FRAME_HEADER_LEN(sizeof id - 1, 0) + FB_TAG_BYTES > FB_MAX_FRAME) {
        return usage("--body must fit one frame (8 .. 4096 - header - tag bytes)");
    }

    for (size_t i = 0; i < sizeof key; i++) key[i] = (uint8_t)(i * 7u + 1u); /* a fixed bench key */
    if (fb_crypto_psa_import(&psa, &crypto, suite, key, NULL, 0) != FB_OK) {
        fprintf(stderr, "fb-frame-bench: the PSA backend refused the key\n");
        return 1;
    }
    s.crypto = &crypto;
    s.header.suite = suite;
    s.header.direction = FB_UP;
    s.header.device_id = id;
    s.header.device_id_len = sizeof id - 1;
    s.body_len = (size_t)body;
    for (size_t i = 0; i < s.body_len; i++) s.body[i] = (uint8_t)i;

    double seal = measure(seal_once, &s, seconds);
    s.frame_len = FB_FRAME_LEN(sizeof id - 1, 0, s.body_len); /* the last frame sealed, kept for open */
    double open = measure(open_once, &s, seconds);
    fb_crypto_psa_free(&psa);
    if (s.failed) {
        fprintf(stderr, "fb-frame-bench: a seal or open failed: not a valid measurement\n");
        return 1;
    }
    printf("{\"suite\":\"%s\",\"bodyBytes\":%zu,\"frameBytes\":%zu,\"sealPerSec\":%.0f,\"openPerSec\":%.0f}\n",
           suite == FB_SUITE_AES_256_GCM ? "aes-256-gcm" : "chacha20-poly1305", s.body_len, s.frame_len, seal, open);
    return 0;
}
