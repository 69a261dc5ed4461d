#define _POSIX_C_SOURCE 200809L
#include "device_app.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <psa/crypto.h>

#include "fb/fb.h"
#include "fb/fb_crypto_psa.h"
#include "state_file.h"

/** Key material the examples accept (AES-256 at most, and room for HMAC keys). */
#define MATERIAL_MAX 64u

typedef struct app {
    example_options *o;
    example_link *link;
    const char *program;
    fb_device dev;
    fb_crypto crypto;
    fb_crypto_psa psa;
    fb_storage storage;
    fb_clock clock;
    state_file file;
    uint8_t request[FB_MAX_FRAME]; /* the request in flight: resent unchanged until answered */
    size_t request_len;
    uint64_t request_counter;
    uint8_t ack[FB_MAX_FRAME];
    long pushes;         /* pushes accepted and acknowledged */
    unsigned long sent;  /* frames sent, resends included */
    unsigned long dropped;
} app;

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double elapsed_ms(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) * 1e3 + (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

static int64_t wall_seconds(void *ctx) {
    (void)ctx;
    return (int64_t)time(NULL);
}

/** Prints `len` bytes as a JSON string (escaped: they come from the wire). */
static void json_string(const uint8_t *s, size_t len) {
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20 || c >= 0x7f) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void json_cstring(const char *s) {
    json_string((const uint8_t *)s, strlen(s));
}

/** KMIP 1.2 §9.1.3.2.29 Result Reason names, as device-sim prints them (the KMIP XML spelling). */
static const char *result_reason_name(uint32_t reason) {
    static const char *const names[] = {
        NULL, "ItemNotFound", "ResponseTooLarge", "AuthenticationNotSuccessful", "InvalidMessage",
        "OperationNotSupported", "MissingData", "InvalidField", "FeatureNotSupported",
        "OperationCanceledByRequester", "CryptographicFailure", "IllegalOperation", "PermissionDenied",
        "ObjectArchived", "IndexOutOfBounds", "ApplicationNamespaceNotSupported", "KeyFormatTypeNotSupported",
        "KeyCompressionTypeNotSupported", "EncodingOptionError", "KeyValueNotPresent", "AttestationRequired",
        "AttestationFailed", "Sensitive", "NotExtractable", "ObjectAlreadyExists", "InvalidTicket",
        "UsageLimitExceeded", "NumericRange", "InvalidDataType", "ReadOnlyAttribute", "MultiValuedAttribute",
    };
    if (reason < sizeof names / sizeof names[0] && names[reason] != NULL) return names[reason];
    if (reason == 0x100) return "GeneralFailure";
    return NULL;
}

/** SHA-256 of the key material, first 8 bytes in hex: how the demo shows keys (never the bytes). */
static void fingerprint(const uint8_t *material, size_t len, char out[17]) {
    uint8_t hash[32];
    size_t hash_len = 0;
    if (psa_hash_compute(PSA_ALG_SHA_256, material, len, hash, sizeof hash, &hash_len) != PSA_SUCCESS) {
        snprintf(out, 17, "unavailable");
        return;
    }
    for (int i = 0; i < 8; i++) snprintf(out + 2 * i, 3, "%02x", hash[i]);
}

static void print_attribute_names(fb_ttlv_reader attributes) {
    fb_attribute attribute;
    int first = 1;
    printf(",\"attributes\":[");
    while (fb_kmip_next_attribute(&attributes, &attribute) == FB_OK) {
        if (!first) putchar(',');
        json_string(attribute.name.ptr, attribute.name.len);
        first = 0;
    }
    putchar(']');
}

/**
 * A relayed Put/Notify (§5.2), already authenticated and its counter stored by fb_device_receive:
 * apply it (here: print what it says — never key material), then acknowledge it.
 */
static void handle_push(app *a, const fb_down *down) {
    fb_request_message request;
    uint8_t material[MATERIAL_MAX];
    size_t len = 0;
    uint64_t counter = 0;
    if (fb_kmip_parse_request(down->body, down->body_len, &request) != FB_OK) {
        /* Authentic but not a Request Message: nothing to apply; the agent resends it until
         * acknowledged, so say so (the agent logs its side). */
        fprintf(stderr, "%s: a relayed push is not a valid Request Message; not acknowledged\n", a->program);
        a->dropped++;
        return;
    }
    for (size_t i = 0; i < request.item_count; i++) {
        const fb_request_item *item = &request.items[i];
        printf("{\"op\":\"push\",\"ok\":true,\"operation\":");
        if (item->operation == FB_OP_PUT) {
            fb_put put;
            json_cstring("Put");
            fb_status status = fb_kmip_read_put(item->payload, material, sizeof material, &put);
            if (status == FB_OK) {
                printf(",\"uid\":");
                json_string(put.key.uid.ptr, put.key.uid.len);
                if (put.replaced_uid.len > 0) {
                    printf(",\"replaces\":");
                    json_string(put.replaced_uid.ptr, put.replaced_uid.len);
                }
                if (put.key.material_len > 0) {
                    char print[17];
                    fingerprint(material, put.key.material_len, print);
                    printf(",\"fingerprint\":\"%s\"", print);
                }
                print_attribute_names(put.attributes);
            } else {
                printf(",\"readError\":\"%s\"", fb_status_name(status));
            }
            fb_zeroize(material, sizeof material);
        } else if (item->operation == FB_OP_NOTIFY) {
            fb_bytes uid;
            fb_ttlv_reader attributes;
            json_cstring("Notify");
            if (fb_kmip_read_attributes(item->payload, &uid, &attributes) == FB_OK) {
                printf(",\"uid\":");
                json_string(uid.ptr, uid.len);
                print_attribute_names(attributes);
            }
        } else {
            printf("%u", (unsigned)item->operation);
        }
        printf("}\n");
    }
    fb_status status = fb_device_ack(&a->dev, &request, down->counter, a->ack, sizeof a->ack, &len, &counter);
    if (status != FB_OK) {
        fprintf(stderr, "%s: cannot seal the acknowledgement: %s\n", a->program, fb_status_name(status));
        return;
    }
    /* The agent sends the push again (a new frame) until this arrives: one try is enough. */
    a->sent++;
    a->link->send(a->link->ctx, a->ack, len);
    a->pushes++;
}

/**
 * Opens one frame that came down: a reply to the request in flight is returned (1), a push is
 * handled (0), anything else is dropped silently (0), as §4 says.
 */
static int handle_down(app *a, uint8_t *frame, size_t len, fb_down *down) {
    fb_status status = fb_device_receive(&a->dev, frame, len, down);
    if (status != FB_OK) {
        a->dropped++;
        return 0;
    }
    if (down->kind == FB_DOWN_PUSH) {
        handle_push(a, down);
        return 0;
    }
    return down->reply_to == a->request_counter ? 1 : 0;
}

/**
 * Sends the sealed request in a->request and waits for its reply, resending the same frame every
 * resend_ms (§3) until the deadline. 1 with the response read, 0 on no answer (the request is
 * forgotten), -1 when the reply is not a Response Message.
 */
static int exchange(app *a, fb_response *response) {
    long long start = now_ms();
    long long deadline = start + (long long)(a->o->timeout * 1000.0);
    long long resend_at = start + a->o->resend_ms;
    a->sent++;
    a->link->send(a->link->ctx, a->request, a->request_len);
    for (;;) {
        long long now = now_ms();
        if (now >= deadline) {
            fb_device_forget(&a->dev, a->request_counter);
            return 0;
        }
        if (now >= resend_at) {
            a->sent++;
            a->link->send(a->link->ctx, a->request, a->request_len);
            resend_at = now + a->o->resend_ms;
        }
        long long wait = (resend_at < deadline ? resend_at : deadline) - now;
        uint8_t *frame = NULL;
        size_t len = 0;
        int got = a->link->receive(a->link->ctx, &frame, &len, (int)(wait > 0 ? wait : 0));
        if (got < 0) {
            fprintf(stderr, "%s: the link failed\n", a->program);
            fb_device_forget(&a->dev, a->request_counter);
            return 0;
        }
        fb_down down;
        if (got == 1 && handle_down(a, frame, len, &down) == 1) {
            return fb_kmip_parse_response(down.body, down.body_len, response) == FB_OK ? 1 : -1;
        }
    }
}

/** Prints the common start of a request's line. */
static void line_start(const app *a, const char *op, const int64_t *count) {
    printf("{\"op\":\"%s\"", op);
    if (a->o->uid != NULL) {
        printf(",\"uid\":");
        json_cstring(a->o->uid);
    }
    if (count != NULL) printf(",\"count\":%lld", (long long)*count);
}

/**
 * The end of a line for a request that got no Success: why. Returns 0 (the request failed), so
 * that callers can `return line_failed(...)`.
 */
static int line_failed(int got, const fb_response *response, double ms) {
    printf(",\"ok\":false,\"ms\":%.2f", ms);
    if (got == 0) {
        printf(",\"error\":\"DEVICE_NO_ANSWER\"");
    } else if (got < 0 || response->item_count == 0) {
        printf(",\"error\":\"RESPONSE_INVALID\"");
    } else {
        const fb_response_item *item = &response->items[0];
        const char *reason = result_reason_name(item->result_reason);
        if (reason != NULL) printf(",\"resultReason\":\"%s\"", reason);
        if (item->result_message.len > 0) {
            printf(",\"resultMessage\":");
            json_string(item->result_message.ptr, item->result_message.len);
        }
    }
    printf("}\n");
    return 0;
}

static int sealed(app *a, fb_status status, const char *what) {
    if (status == FB_OK) return 1;
    fprintf(stderr, "%s: cannot seal the %s request: %s\n", a->program, what, fb_status_name(status));
    return 0;
}

/** Seals the request of `operation` on the key of the options, if any (fb_device_request;
 * `units`: a Get Usage Allocation's count; Query names no key) into a->request, to send and
 * resend. */
static fb_status seal_request(app *a, uint32_t operation, uint64_t units) {
    fb_request request = {.operation = operation, .usage_limits_count = units};
    if (a->o->uid != NULL) {
        request.uid.ptr = (const uint8_t *)a->o->uid;
        request.uid.len = strlen(a->o->uid);
    }
    return fb_device_request(&a->dev, &request, a->request, sizeof a->request, &a->request_len, &a->request_counter);
}

/** Get (§4.11): the key, shown by fingerprint; its material in `material` when wanted. 1 ok. */
static int do_get(app *a, uint8_t *material, size_t *material_len) {
    fb_response response;
    struct timespec started;
    uint8_t scratch[MATERIAL_MAX];
    clock_gettime(CLOCK_MONOTONIC, &started);
    if (!sealed(a, seal_request(a, FB_OP_GET, 0), "Get")) return 0;
    int got = exchange(a, &response);
    line_start(a, "get", NULL);
    if (got != 1 || response.item_count < 1 || response.items[0].result_status != FB_RESULT_SUCCESS) return line_failed(got, &response, elapsed_ms(&started));
    fb_key key;
    fb_status status = fb_kmip_read_get(response.items[0].payload, scratch, sizeof scratch, &key);
    if (status != FB_OK) {
        printf(",\"ok\":false,\"ms\":%.2f,\"error\":\"%s\"}\n", elapsed_ms(&started), fb_status_name(status));
        return 0;
    }
    char print[17];
    fingerprint(scratch, key.material_len, print);
    printf(",\"ok\":true,\"ms\":%.2f,\"fingerprint\":\"%s\",\"bytes\":%zu}\n", elapsed_ms(&started), print, key.material_len);
    if (material != NULL) {
        memcpy(material, scratch, key.material_len);
        *material_len = key.material_len;
    }
    fb_zeroize(scratch, sizeof scratch);
    return 1;
}

/** Get Usage Allocation (§4.18) of `count`: a request with an effect, answered once. 1 ok. */
static int do_allocate(app *a, int64_t count) {
    fb_response response;
    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    if (!sealed(a, seal_request(a, FB_OP_GET_USAGE_ALLOCATION, (uint64_t)count), "Get Usage Allocation")) return 0;
    int got = exchange(a, &response);
    line_start(a, "allocate", &count);
    if (got != 1 || response.item_count < 1 || response.items[0].result_status != FB_RESULT_SUCCESS) return line_failed(got, &response, elapsed_ms(&started));
    printf(",\"ok\":true,\"ms\":%.2f,\"counter\":%llu}\n", elapsed_ms(&started), (unsigned long long)a->request_counter);
    return 1;
}

/** Obtain Lease (§4.17). 1 ok. */
static int do_lease(app *a) {
    fb_response response;
    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    if (!sealed(a, seal_request(a, FB_OP_OBTAIN_LEASE, 0), "Obtain Lease")) return 0;
    int got = exchange(a, &response);
    line_start(a, "lease", NULL);
    if (got != 1 || response.item_count < 1 || response.items[0].result_status != FB_RESULT_SUCCESS) return line_failed(got, &response, elapsed_ms(&started));
    fb_bytes uid;
    int32_t lease = 0;
    int64_t changed = 0;
    fb_status status = fb_kmip_read_lease(response.items[0].payload, &uid, &lease, &changed);
    printf(",\"ok\":true,\"ms\":%.2f", elapsed_ms(&started));
    if (status == FB_OK) printf(",\"leaseSeconds\":%ld", (long)lease);
    printf("}\n");
    return 1;
}

/**
 * Tape encryption: the key once (Get), then the tape in chunks, each drawn from the key's usage
 * allowance first (Get Usage Allocation of the chunk's bytes) and only then encrypted (AES-CTR
 * here, standing in for the drive's cipher engine). Stops at the first refused allocation.
 */
static int do_tape(app *a) {
    uint8_t material[MATERIAL_MAX];
    size_t material_len = 0;
    static uint8_t chunk[65536];
    static uint8_t ciphertext[65536 + 16]; /* the IV psa_cipher_encrypt puts first */
    if (!do_get(a, material, &material_len)) return 0;
    psa_key_attributes_t attributes = PSA_KEY_ATTRIBUTES_INIT;
    psa_key_id_t key = 0;
    psa_set_key_type(&attributes, PSA_KEY_TYPE_AES);
    psa_set_key_usage_flags(&attributes, PSA_KEY_USAGE_ENCRYPT);
    psa_set_key_algorithm(&attributes, PSA_ALG_CTR);
    psa_status_t imported = psa_import_key(&attributes, material, material_len, &key);
    fb_zeroize(material, sizeof material);
    if (imported != PSA_SUCCESS) {
        fprintf(stderr, "%s: the key from the agent is not an AES key PSA accepts (%d)\n", a->program, (int)imported);
        return 0;
    }
    int ok = 1;
    int64_t done = 0;
    for (int64_t left = a->o->tape_bytes; left > 0 && ok;) {
        int64_t n = left < a->o->chunk ? left : a->o->chunk;
        if (!do_allocate(a, n)) {
            ok = 0;
            break;
        }
        for (int64_t at = 0; at < n; at += (int64_t)sizeof chunk) {
            size_t piece = (size_t)(n - at < (int64_t)sizeof chunk ? n - at : (int64_t)sizeof chunk);
            size_t out_len = 0;
            for (size_t i = 0; i < piece; i++) chunk[i] = (uint8_t)(done + at + (int64_t)i);
            if (psa_cipher_encrypt(key, PSA_ALG_CTR, chunk, piece, ciphertext, sizeof ciphertext, &out_len) != PSA_SUCCESS) ok = 0;
        }
        done += n;
        left -= n;
    }
    psa_destroy_key(key);
    printf("{\"op\":\"tape\",\"ok\":%s,\"uid\":", ok ? "true" : "false");
    json_cstring(a->o->uid);
    printf(",\"bytes\":%lld}\n", (long long)done);
    return ok;
}

/**
 * End-to-end nonce-MAC (PROTOCOL.md §5.1): a fresh x-Nonce set on the key and the key MAC-wrapped
 * by the key server in one batch; Modify first, Add when the key carries no nonce yet. The HMAC
 * (key M, through the PSA backend) and the nonce are verified here before the material is used:
 * neither the agent nor anything on the way can hand this device an altered or replayed key.
 */
static int do_get_verified(app *a) {
    fb_response response;
    struct timespec started;
    uint8_t nonce[32];
    uint8_t material[MATERIAL_MAX];
    int got = 0;
    clock_gettime(CLOCK_MONOTONIC, &started);
    /* A Get with mac_uid: the nonce-MAC batch; fb_device_request draws a fresh nonce into `nonce`. */
    fb_request request = {.operation = FB_OP_GET, .uid = {(const uint8_t *)a->o->uid, strlen(a->o->uid)},
                          .mac_uid = {(const uint8_t *)a->o->mac_uid, strlen(a->o->mac_uid)}, .nonce = nonce, .nonce_len = sizeof nonce};
    for (int setter = FB_NONCE_MODIFY; setter <= FB_NONCE_ADD; setter++) {
        request.setter = (fb_nonce_setter)setter;
        if (!sealed(a, fb_device_request(&a->dev, &request, a->request, sizeof a->request, &a->request_len, &a->request_counter), "nonce-MAC")) return 0;
        got = exchange(a, &response);
        if (got != 1 || response.item_count < 1 || response.items[0].result_status == FB_RESULT_SUCCESS) break;
    }
    line_start(a, "get-verified", NULL);
    if (got != 1 || response.item_count < 2 || response.items[1].result_status != FB_RESULT_SUCCESS) {
        if (got == 1 && response.item_count >= 2 && response.items[0].result_status == FB_RESULT_SUCCESS) response.items[0] = response.items[1];
        return line_failed(got, &response, elapsed_ms(&started));
    }
    fb_key key;
    fb_status status = fb_kmip_verify_nonce_mac(&a->crypto, response.items[1].payload, nonce, sizeof nonce, material, sizeof material, &key);
    fb_zeroize(nonce, sizeof nonce);
    if (status != FB_OK) {
        printf(",\"ok\":false,\"verified\":false,\"ms\":%.2f,\"error\":\"%s\"}\n", elapsed_ms(&started), fb_status_name(status));
        return 0;
    }
    char print[17];
    fingerprint(material, key.material_len, print);
    fb_zeroize(material, sizeof material);
    printf(",\"ok\":true,\"verified\":true,\"ms\":%.2f,\"fingerprint\":\"%s\",\"bytes\":%zu}\n", elapsed_ms(&started), print, key.material_len);
    return 1;
}

/**
 * listen: announce ourselves (a Query, as a device coming back should, §5.2: the agent then sends
 * what it holds at once), then acknowledge pushes until `pushes` arrived or `seconds` passed.
 */
static int do_listen(app *a) {
    fb_response response;
    if (!sealed(a, seal_request(a, FB_OP_QUERY, 0), "Query")) return 0;
    int got = exchange(a, &response);
    int hello = got == 1 && response.item_count >= 1 && response.items[0].result_status == FB_RESULT_SUCCESS;
    printf("{\"op\":\"hello\",\"ok\":%s}\n", hello ? "true" : "false");
    long long deadline = now_ms() + (long long)(a->o->seconds * 1000.0);
    while (a->pushes < a->o->pushes) {
        long long left = deadline - now_ms();
        if (left <= 0) return 0;
        uint8_t *frame = NULL;
        size_t len = 0;
        fb_down down;
        int r = a->link->receive(a->link->ctx, &frame, &len, (int)(left > 1000 ? 1000 : left));
        if (r < 0) return 0;
        if (r == 1) handle_down(a, frame, len, &down);
    }
    return 1;
}

int device_app_run(example_options *o, example_link *link, const char *program) {
    static app a; /* ~12 KB of frame buffers: not on the stack */
    fb_device_config config;
    memset(&a, 0, sizeof a);
    a.o = o;
    a.link = link;
    a.program = program;

    fb_status status = fb_crypto_psa_import(&a.psa, &a.crypto, o->suite, o->key, o->mac_key_len > 0 ? o->mac_key : NULL, o->mac_key_len);
    fb_zeroize(o->key, sizeof o->key); /* PSA holds them now */
    fb_zeroize(o->mac_key, sizeof o->mac_key);
    if (status != FB_OK) {
        fprintf(stderr, "%s: the PSA Crypto backend refused the device key: %s\n", program, fb_status_name(status));
        return 1;
    }
    if (state_file_init(&a.file, &a.storage, o->state) != FB_OK) {
        fprintf(stderr, "%s: --state path too long\n", program);
        return 2;
    }
    a.clock.ctx = NULL;
    a.clock.now = wall_seconds;
    memset(&config, 0, sizeof config);
    config.device_id = (const uint8_t *)o->id;
    config.device_id_len = strlen(o->id);
    config.suite = o->suite;
    config.crypto = &a.crypto;
    config.storage = &a.storage;
    config.clock = &a.clock;
    config.counter_block = o->counter_block;
    status = fb_device_init(&a.dev, &config);
    if (status != FB_OK) {
        fprintf(stderr, "%s: cannot load the counter state from %s: %s — a device that cannot know its counters must not send (restore the file, or re-provision with kmip-edge device add)\n",
                program, o->state, fb_status_name(status));
        fb_crypto_psa_free(&a.psa);
        return 1;
    }

    int ok = 1;
    switch (o->action) {
    case ACTION_GET:
        for (long i = 0; i < o->repeat; i++) ok &= do_get(&a, NULL, NULL);
        break;
    case ACTION_ALLOCATE:
        for (long i = 0; i < o->repeat; i++) ok &= do_allocate(&a, o->count);
        break;
    case ACTION_LEASE:
        for (long i = 0; i < o->repeat; i++) ok &= do_lease(&a);
        break;
    case ACTION_TAPE:
        ok = do_tape(&a);
        break;
    case ACTION_LISTEN:
        ok = do_listen(&a);
        break;
    case ACTION_GET_VERIFIED:
        for (long i = 0; i < o->repeat; i++) ok &= do_get_verified(&a);
        break;
    }
    fflush(stdout);
    /* NVM wear, as firmware authors budget it: storage writes against frames sent (§3). */
    fprintf(stderr, "%s: %lu frames sent, %u counter-state writes, %lu frames dropped\n", program, a.sent, a.file.writes, a.dropped);
    fb_crypto_psa_free(&a.psa);
    return ok ? 0 : 1;
}
