/* The device context against an agent side built from the same frame functions: requests and
 * replies bound by reply_to, resends, the in-flight limit, pushes and their acknowledgement,
 * reboots that never reuse a counter, and every header refusal before any crypto. */
#include "test_support.h"
#include "vectors.h"

static fb_crypto_psa psa_state;
static fb_crypto crypto;
static const uint8_t id[] = "tape-drive-7";

static int setup(void **state)
{
    (void)state;
    return fb_crypto_psa_import(&psa_state, &crypto, FB_SUITE_AES_256_GCM, vector_key, NULL, 0) == FB_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fb_crypto_psa_free(&psa_state);
    return 0;
}

/* A request of `op` on the key named by the string literal `key`; UNITS: a Get Usage Allocation
 * of `n` units (fb_request, as C99 compound literals). */
#define ON(op, key) (&(fb_request){.operation = (op), .uid = {(const uint8_t *)(key), sizeof(key) - 1u}})
#define UNITS(key, n) \
    (&(fb_request){.operation = FB_OP_GET_USAGE_ALLOCATION, .uid = {(const uint8_t *)(key), sizeof(key) - 1u}, .usage_limits_count = (n)})

typedef struct rig {
    test_storage storage;
    fb_storage storage_iface;
    fb_device_config config;
    fb_device dev;
} rig;

static void rig_init(rig *r, uint32_t block)
{
    memset(r, 0, sizeof *r);
    test_storage_iface(&r->storage, &r->storage_iface);
    r->config.device_id = id;
    r->config.device_id_len = sizeof id - 1u;
    r->config.suite = FB_SUITE_AES_256_GCM;
    r->config.crypto = &crypto;
    r->config.storage = &r->storage_iface;
    r->config.counter_block = block;
    assert_int_equal(fb_device_init(&r->dev, &r->config), FB_OK);
}

/* The agent: opens an up frame and returns its header and body. */
static void agent_open(uint8_t *frame, size_t len, fb_frame_header *h, uint8_t **body, size_t *body_len)
{
    assert_int_equal(fb_frame_open(&crypto, FB_SUITE_AES_256_GCM, FB_UP, frame, len, h, body, body_len), FB_OK);
}

/* The agent: a down frame (a reply when reply_to != 0) carrying `body`. */
static size_t agent_seal(uint64_t counter, uint64_t reply_to, const uint8_t *body, size_t body_len, uint8_t *frame, size_t size)
{
    fb_frame_header h;
    size_t len = 0;
    memset(&h, 0, sizeof h);
    h.suite = FB_SUITE_AES_256_GCM;
    h.direction = FB_DOWN;
    h.device_id = id;
    h.device_id_len = sizeof id - 1u;
    h.counter = counter;
    h.has_reply_to = reply_to != 0u;
    h.reply_to = reply_to;
    assert_int_equal(fb_frame_seal(&crypto, &h, body, body_len, frame, size, &len), FB_OK);
    return len;
}

static void test_request_reply(void **state)
{
    static rig r;
    uint8_t req[FB_MAX_FRAME];
    uint8_t copy[FB_MAX_FRAME];
    uint8_t rx[FB_MAX_FRAME];
    size_t req_len;
    size_t rx_len;
    uint64_t counter;
    fb_frame_header h;
    uint8_t *body;
    size_t body_len;
    fb_down down;
    fb_response resp;
    (void)state;
    rig_init(&r, 100);
    assert_int_equal(fb_device_request(&r.dev, ON(FB_OP_GET, "tape-key-1"), req, sizeof req, &req_len, &counter), FB_OK);
    assert_int_equal(counter, 1);
    assert_int_equal(fb_device_in_flight(&r.dev), 1);
    assert_int_equal(r.storage.writes, 1); /* the block 1..100, before the frame existed */
    /* What the agent receives is the vector frame: same key, id, counter and body. */
    assert_int_equal(req_len, vectors[0].frame_len);
    assert_memory_equal(req, vectors[0].frame, req_len);
    memcpy(copy, req, req_len);
    agent_open(copy, req_len, &h, &body, &body_len);
    assert_memory_equal(body, vectors[0].body, body_len);
    /* The reply (vector 1: down counter 1, reply_to 1). */
    memcpy(rx, vectors[1].frame, vectors[1].frame_len);
    assert_int_equal(fb_device_receive(&r.dev, rx, vectors[1].frame_len, &down), FB_OK);
    assert_int_equal(down.kind, FB_DOWN_REPLY);
    assert_int_equal(down.reply_to, 1);
    assert_int_equal(down.counter, 1);
    assert_int_equal(fb_device_in_flight(&r.dev), 0);
    assert_int_equal(fb_kmip_parse_response(down.body, down.body_len, &resp), FB_OK);
    assert_int_equal(resp.items[0].operation, FB_OP_GET);
    /* The same reply again (duplicated by the link): no request waits for it. */
    memcpy(rx, vectors[1].frame, vectors[1].frame_len);
    assert_int_equal(fb_device_receive(&r.dev, rx, vectors[1].frame_len, &down), FB_ERR_UNEXPECTED);
    (void)rx_len;
}

static void test_resend_and_kept_reply(void **state)
{
    static rig r;
    uint8_t a[FB_MAX_FRAME];
    uint8_t b[FB_MAX_FRAME];
    uint8_t rx[FB_MAX_FRAME];
    size_t a_len;
    size_t b_len;
    uint64_t ca;
    uint64_t cb;
    fb_down down;
    size_t len;
    (void)state;
    rig_init(&r, 100);
    assert_int_equal(fb_device_request(&r.dev, UNITS("tape-key-1", 5), a, sizeof a, &a_len, &ca), FB_OK);
    assert_int_equal(fb_device_request(&r.dev, ON(FB_OP_OBTAIN_LEASE, "tape-key-1"), b, sizeof b, &b_len, &cb), FB_OK);
    assert_int_equal(fb_device_in_flight(&r.dev), 2);
    /* The reply to b arrives first, with a higher down counter; then a's reply with a lower
     * one (a kept reply re-sent after the device resent a): both are bound by reply_to. */
    len = agent_seal(40, cb, vectors[1].body, vectors[1].body_len, rx, sizeof rx);
    assert_int_equal(fb_device_receive(&r.dev, rx, len, &down), FB_OK);
    assert_int_equal(down.reply_to, cb);
    len = agent_seal(30, ca, vectors[1].body, vectors[1].body_len, rx, sizeof rx);
    assert_int_equal(fb_device_receive(&r.dev, rx, len, &down), FB_OK);
    assert_int_equal(down.reply_to, ca);
    assert_int_equal(fb_device_in_flight(&r.dev), 0);
}

static void test_refusals_before_crypto(void **state)
{
    static rig r;
    uint8_t req[FB_MAX_FRAME];
    uint8_t rx[FB_MAX_FRAME];
    size_t req_len;
    size_t len;
    uint64_t counter;
    fb_down down;
    (void)state;
    rig_init(&r, 100);
    assert_int_equal(fb_device_request(&r.dev, &(fb_request){.operation = FB_OP_QUERY}, req, sizeof req, &req_len, &counter), FB_OK);
    /* A reply to a counter not in flight. */
    len = agent_seal(5, counter + 1u, vectors[1].body, vectors[1].body_len, rx, sizeof rx);
    assert_int_equal(fb_device_receive(&r.dev, rx, len, &down), FB_ERR_UNEXPECTED);
    /* Another device's id (same key: a confused or hostile peer). */
    len = agent_seal(5, counter, vectors[1].body, vectors[1].body_len, rx, sizeof rx);
    rx[4] = 'T';
    assert_int_equal(fb_device_receive(&r.dev, rx, len, &down), FB_ERR_UNEXPECTED);
    /* An up frame (our own, reflected back). */
    assert_int_equal(fb_device_receive(&r.dev, req, req_len, &down), FB_ERR_UNEXPECTED);
    /* Another suite. */
    len = agent_seal(5, counter, vectors[1].body, vectors[1].body_len, rx, sizeof rx);
    rx[1] = FB_SUITE_CHACHA20_POLY1305;
    assert_int_equal(fb_device_receive(&r.dev, rx, len, &down), FB_ERR_SUITE);
    /* Over the device's frame limit. */
    assert_int_equal(fb_device_receive(&r.dev, rx, FB_MAX_FRAME + 1u, &down), FB_ERR_TOO_LARGE);
    /* Tampered: FB_ERR_AUTH, and the request still waits; the genuine reply then passes. */
    len = agent_seal(5, counter, vectors[1].body, vectors[1].body_len, rx, sizeof rx);
    rx[len - 1] ^= 0x80u;
    assert_int_equal(fb_device_receive(&r.dev, rx, len, &down), FB_ERR_AUTH);
    assert_int_equal(fb_device_in_flight(&r.dev), 1);
    len = agent_seal(5, counter, vectors[1].body, vectors[1].body_len, rx, sizeof rx);
    assert_int_equal(fb_device_receive(&r.dev, rx, len, &down), FB_OK);
}

static void test_in_flight_limit(void **state)
{
    static rig r;
    static uint8_t req[FB_MAX_FRAME];
    size_t req_len;
    uint64_t counter;
    size_t i;
    (void)state;
    rig_init(&r, 1000);
    for (i = 0; i < FB_MAX_IN_FLIGHT; i++) {
        assert_int_equal(fb_device_request(&r.dev, ON(FB_OP_GET, "k"), req, sizeof req, &req_len, &counter), FB_OK);
    }
    assert_int_equal(fb_device_request(&r.dev, ON(FB_OP_GET, "k"), req, sizeof req, &req_len, &counter), FB_ERR_BUSY);
    assert_int_equal(counter, 0);
    assert_int_equal(fb_device_forget(&r.dev, 3), FB_OK);
    assert_int_equal(fb_device_forget(&r.dev, 3), FB_ERR_NOT_FOUND);
    assert_int_equal(fb_device_request(&r.dev, ON(FB_OP_GET, "k"), req, sizeof req, &req_len, &counter), FB_OK);
    assert_int_equal(counter, FB_MAX_IN_FLIGHT + 1u); /* BUSY spent no counter */
}

static size_t put_body(uint8_t *buf, size_t size)
{
    /* A Request Message with one Put New item (minimal payload). */
    fb_ttlv_writer w;
    size_t m, h, pv, it, p;
    fb_ttlv_writer_init(&w, buf, size);
    m = fb_ttlv_begin(&w, FB_TAG_REQUEST_MESSAGE);
    h = fb_ttlv_begin(&w, FB_TAG_REQUEST_HEADER);
    pv = fb_ttlv_begin(&w, FB_TAG_PROTOCOL_VERSION);
    fb_ttlv_put_int32(&w, FB_TAG_PROTOCOL_VERSION_MAJOR, FB_TTLV_INTEGER, 1);
    fb_ttlv_put_int32(&w, FB_TAG_PROTOCOL_VERSION_MINOR, FB_TTLV_INTEGER, 2);
    fb_ttlv_end(&w, pv);
    fb_ttlv_put_int32(&w, FB_TAG_BATCH_COUNT, FB_TTLV_INTEGER, 1);
    fb_ttlv_end(&w, h);
    it = fb_ttlv_begin(&w, FB_TAG_BATCH_ITEM);
    fb_ttlv_put_int32(&w, FB_TAG_OPERATION, FB_TTLV_ENUMERATION, FB_OP_NOTIFY);
    p = fb_ttlv_begin(&w, FB_TAG_REQUEST_PAYLOAD);
    fb_ttlv_put_bytes(&w, FB_TAG_UNIQUE_IDENTIFIER, FB_TTLV_TEXT_STRING, (const uint8_t *)"tape-key-1", 10);
    fb_ttlv_end(&w, p);
    fb_ttlv_end(&w, it);
    fb_ttlv_end(&w, m);
    assert_int_equal(w.status, FB_OK);
    return w.len;
}

static int64_t fixed_now(void *ctx)
{
    (void)ctx;
    return 1700000042;
}

static void test_push_and_ack(void **state)
{
    static rig r;
    uint8_t body[256];
    uint8_t rx[FB_MAX_FRAME];
    uint8_t ack[FB_MAX_FRAME];
    size_t body_len = put_body(body, sizeof body);
    size_t len;
    size_t ack_len;
    uint64_t ack_counter;
    fb_down down;
    fb_request_message push;
    fb_frame_header h;
    uint8_t *ack_body;
    size_t ack_body_len;
    fb_response resp;
    fb_clock clock = {NULL, fixed_now};
    int writes;
    (void)state;
    rig_init(&r, 100);
    r.dev.config.clock = &clock;
    len = agent_seal(20, 0, body, body_len, rx, sizeof rx);
    writes = r.storage.writes;
    assert_int_equal(fb_device_receive(&r.dev, rx, len, &down), FB_OK);
    assert_int_equal(down.kind, FB_DOWN_PUSH);
    assert_int_equal(down.counter, 20);
    assert_int_equal(r.storage.writes, writes + 1); /* stored before we act on it */
    assert_int_equal(fb_kmip_parse_request(down.body, down.body_len, &push), FB_OK);
    assert_int_equal(fb_device_ack(&r.dev, &push, down.counter, ack, sizeof ack, &ack_len, &ack_counter), FB_OK);
    assert_int_equal(fb_device_in_flight(&r.dev), 0); /* an acknowledgement waits for nothing */
    /* The agent opens it: reply_to is the push's counter; a Success item for the Notify. */
    agent_open(ack, ack_len, &h, &ack_body, &ack_body_len);
    assert_true(h.has_reply_to);
    assert_int_equal(h.reply_to, 20);
    assert_int_equal(h.counter, ack_counter);
    assert_int_equal(fb_kmip_parse_response(ack_body, ack_body_len, &resp), FB_OK);
    assert_int_equal(resp.item_count, 1);
    assert_int_equal(resp.items[0].operation, FB_OP_NOTIFY);
    assert_int_equal(resp.items[0].result_status, FB_RESULT_SUCCESS);
    assert_int_equal(resp.time_stamp, 1700000042);
    /* The same push frame replayed, and an older one: refused before any crypto. */
    len = agent_seal(20, 0, body, body_len, rx, sizeof rx);
    assert_int_equal(fb_device_receive(&r.dev, rx, len, &down), FB_ERR_REPLAY);
    len = agent_seal(19, 0, body, body_len, rx, sizeof rx);
    assert_int_equal(fb_device_receive(&r.dev, rx, len, &down), FB_ERR_REPLAY);
    /* After a reboot too. */
    assert_int_equal(fb_device_init(&r.dev, &r.config), FB_OK);
    len = agent_seal(20, 0, body, body_len, rx, sizeof rx);
    assert_int_equal(fb_device_receive(&r.dev, rx, len, &down), FB_ERR_REPLAY);
    /* The agent's resend of the same push under a new counter is accepted (idempotent). */
    len = agent_seal(25, 0, body, body_len, rx, sizeof rx);
    assert_int_equal(fb_device_receive(&r.dev, rx, len, &down), FB_OK);
    /* A push whose counter cannot be stored is not accepted, and not remembered. */
    r.storage.fail_writes = 1;
    len = agent_seal(26, 0, body, body_len, rx, sizeof rx);
    assert_int_equal(fb_device_receive(&r.dev, rx, len, &down), FB_ERR_STORAGE);
    assert_null(down.body);
    r.storage.fail_writes = 0;
    len = agent_seal(26, 0, body, body_len, rx, sizeof rx);
    assert_int_equal(fb_device_receive(&r.dev, rx, len, &down), FB_OK);
}

/*
 * PROTOCOL.md §3.1 lead rule: no up frame 64 or more above the oldest request still waiting —
 * acknowledgements use up counters too, so 63 of them behind one unanswered request reach it.
 */
static void test_lead_rule(void **state)
{
    static rig r;
    static uint8_t req[FB_MAX_FRAME];
    uint8_t body[256];
    uint8_t rx[FB_MAX_FRAME];
    uint8_t ack[FB_MAX_FRAME];
    size_t body_len = put_body(body, sizeof body);
    size_t req_len, len, ack_len;
    uint64_t oldest, counter;
    fb_down down;
    fb_request_message push;
    uint64_t i;
    (void)state;
    rig_init(&r, 1000);
    assert_int_equal(fb_device_request(&r.dev, ON(FB_OP_GET, "k"), req, sizeof req, &req_len, &oldest), FB_OK);
    for (i = 1; i < 64u; i++) { /* counters oldest+1 … oldest+63: within the window */
        len = agent_seal(100u + i, 0, body, body_len, rx, sizeof rx);
        assert_int_equal(fb_device_receive(&r.dev, rx, len, &down), FB_OK);
        assert_int_equal(fb_kmip_parse_request(down.body, down.body_len, &push), FB_OK);
        assert_int_equal(fb_device_ack(&r.dev, &push, down.counter, ack, sizeof ack, &ack_len, &counter), FB_OK);
        assert_int_equal(counter, oldest + i);
    }
    /* oldest + 64 would be refused by the agent: neither an acknowledgement nor a request is sent. */
    len = agent_seal(200u, 0, body, body_len, rx, sizeof rx);
    assert_int_equal(fb_device_receive(&r.dev, rx, len, &down), FB_OK);
    assert_int_equal(fb_kmip_parse_request(down.body, down.body_len, &push), FB_OK);
    assert_int_equal(fb_device_ack(&r.dev, &push, down.counter, ack, sizeof ack, &ack_len, &counter), FB_ERR_BUSY);
    assert_int_equal(fb_device_request(&r.dev, ON(FB_OP_GET, "k"), req, sizeof req, &req_len, &counter), FB_ERR_BUSY);
    /* Once the oldest is answered (or given up), the device goes on, with no counter skipped. */
    assert_int_equal(fb_device_forget(&r.dev, oldest), FB_OK);
    assert_int_equal(fb_device_request(&r.dev, ON(FB_OP_GET, "k"), req, sizeof req, &req_len, &counter), FB_OK);
    assert_int_equal(counter, oldest + 64u);
}

static void test_reboot_never_reuses(void **state)
{
    static rig r;
    static uint8_t req[FB_MAX_FRAME];
    size_t req_len;
    uint64_t counter;
    uint64_t highest = 0;
    int boot;
    int i;
    (void)state;
    rig_init(&r, 4);
    for (boot = 0; boot < 5; boot++) {
        for (i = 0; i < 3; i++) {
            assert_int_equal(fb_device_request(&r.dev, ON(FB_OP_GET, "k"), req, sizeof req, &req_len, &counter), FB_OK);
            assert_true(counter > highest);
            highest = counter;
            assert_int_equal(fb_device_forget(&r.dev, counter), FB_OK);
        }
        /* Power cut: a new context from storage only. */
        assert_int_equal(fb_device_init(&r.dev, &r.config), FB_OK);
    }
    /* 15 frames over 5 boots with blocks of 4: one write per boot (3 counters fit a block). */
    assert_int_equal(r.storage.writes, 5);
    /* Storage down: no frame is sealed, and nothing is left in the buffer. */
    r.storage.fail_writes = 1;
    assert_int_equal(fb_device_init(&r.dev, &r.config), FB_OK);
    memset(req, 0x77, sizeof req);
    assert_int_equal(fb_device_request(&r.dev, ON(FB_OP_GET, "k"), req, sizeof req, &req_len, &counter), FB_ERR_STORAGE);
    assert_int_equal(req_len, 0);
    assert_int_equal(fb_device_in_flight(&r.dev), 0);
}

static void test_nonce_mac_and_limits(void **state)
{
    static rig r;
    static uint8_t req[FB_MAX_FRAME];
    uint8_t copy[FB_MAX_FRAME];
    uint8_t nonce[16];
    uint8_t zero[16];
    size_t req_len;
    uint64_t counter;
    fb_frame_header h;
    uint8_t *body;
    size_t body_len;
    fb_request_message q;
    fb_request nonce_mac;
    uint8_t first[16];
    (void)state;
    rig_init(&r, 10);
    memset(nonce, 0, sizeof nonce);
    memset(zero, 0, sizeof zero);
    /* A Get with mac_uid: the nonce-MAC batch, its nonce drawn by the device. */
    nonce_mac = *ON(FB_OP_GET, "tape-key-1");
    nonce_mac.mac_uid.ptr = (const uint8_t *)"mac-1";
    nonce_mac.mac_uid.len = 5;
    nonce_mac.setter = FB_NONCE_MODIFY;
    nonce_mac.nonce = nonce;
    nonce_mac.nonce_len = 15; /* out of 16..64: refused before anything is drawn or spent */
    assert_int_equal(fb_device_request(&r.dev, &nonce_mac, req, sizeof req, &req_len, &counter), FB_ERR_ARG);
    assert_memory_equal(nonce, zero, sizeof nonce);
    nonce_mac.nonce = NULL;
    nonce_mac.nonce_len = sizeof nonce;
    assert_int_equal(fb_device_request(&r.dev, &nonce_mac, req, sizeof req, &req_len, &counter), FB_ERR_ARG);
    assert_int_equal(r.storage.writes, 0);
    nonce_mac.nonce = nonce;
    assert_int_equal(fb_device_request(&r.dev, &nonce_mac, req, sizeof req, &req_len, &counter), FB_OK);
    assert_int_equal(counter, 1);
    assert_memory_not_equal(nonce, zero, sizeof nonce); /* drawn from the backend's generator */
    memcpy(first, nonce, sizeof first);
    memcpy(copy, req, req_len);
    agent_open(copy, req_len, &h, &body, &body_len);
    assert_int_equal(fb_kmip_parse_request(body, body_len, &q), FB_OK);
    assert_int_equal(q.item_count, 2);
    assert_int_equal(q.items[0].operation, FB_OP_MODIFY_ATTRIBUTE);
    /* Each request draws a fresh one (§5.1). */
    assert_int_equal(fb_device_request(&r.dev, &nonce_mac, req, sizeof req, &req_len, &counter), FB_OK);
    assert_memory_not_equal(nonce, first, sizeof nonce);
    assert_int_equal(fb_device_forget(&r.dev, counter), FB_OK);
    assert_int_equal(fb_device_forget(&r.dev, 1), FB_OK);
    /* A frame buffer too small for the request: FB_ERR_TOO_LARGE before a counter is spent. */
    assert_int_equal(fb_device_request(&r.dev, ON(FB_OP_GET, "tape-key-1"), req, 60, &req_len, &counter), FB_ERR_TOO_LARGE);
    assert_int_equal(fb_device_request(&r.dev, ON(FB_OP_GET, "k"), req, sizeof req, &req_len, &counter), FB_OK);
    assert_int_equal(counter, 3);
    /* A device with a small frame limit. */
    r.config.max_frame = 100;
    assert_int_equal(fb_device_init(&r.dev, &r.config), FB_OK);
    assert_int_equal(fb_device_request(&r.dev, ON(FB_OP_GET, "tape-key-1"), req, sizeof req, &req_len, &counter), FB_ERR_TOO_LARGE);
    /* Bad configurations. */
    r.config.max_frame = 0;
    r.config.device_id_len = 0;
    assert_int_equal(fb_device_init(&r.dev, &r.config), FB_ERR_ARG);
    r.config.device_id_len = sizeof id - 1u;
    r.config.suite = 3;
    assert_int_equal(fb_device_init(&r.dev, &r.config), FB_ERR_ARG);
    r.config.suite = FB_SUITE_AES_256_GCM;
    r.storage.record[5] ^= 1u;
    assert_int_equal(fb_device_init(&r.dev, &r.config), FB_ERR_STORAGE);
}


/* Every request: a frame the agent opens to a Request Message of that operation. */
static void test_every_operation(void **state)
{
    static rig r;
    static uint8_t req[FB_MAX_FRAME];
    uint8_t nonce[16];
    size_t len;
    uint64_t counter;
    uint64_t expected = 1;
    fb_frame_header h;
    uint8_t *body;
    size_t body_len;
    fb_request_message q;
    const uint8_t *uid = (const uint8_t *)"tape-key-1";
    fb_bytes names[1];
    uint32_t functions[1] = {1};
    fb_version versions[1] = {{1, 2}};
    /* The seven operations of fb_device_request, each with its arguments; then the nonce-MAC. */
    fb_request requests[8];
    uint32_t ops[8] = {FB_OP_GET, FB_OP_GET_ATTRIBUTES, FB_OP_GET_USAGE_ALLOCATION, FB_OP_OBTAIN_LEASE,
                       FB_OP_CHECK, FB_OP_QUERY, FB_OP_DISCOVER_VERSIONS, FB_OP_ADD_ATTRIBUTE};
    size_t i;
    (void)state;
    names[0].ptr = (const uint8_t *)"State";
    names[0].len = 5;
    memset(requests, 0, sizeof requests);
    for (i = 0; i < 8; i++) {
        requests[i].operation = i < 7 ? ops[i] : FB_OP_GET;
        requests[i].uid.ptr = uid;
        requests[i].uid.len = 10;
    }
    requests[1].names = names;
    requests[1].count = 1;
    requests[2].usage_limits_count = 7;
    requests[4].usage_limits_count = 3;
    requests[4].usage_mask = 4;
    requests[5].functions = functions;
    requests[5].count = 1;
    requests[6].versions = versions;
    requests[6].count = 1;
    requests[7].mac_uid.ptr = (const uint8_t *)"mac-1";
    requests[7].mac_uid.len = 5;
    requests[7].setter = FB_NONCE_ADD;
    requests[7].nonce = nonce;
    requests[7].nonce_len = sizeof nonce;
    rig_init(&r, 1000);
    for (i = 0; i < 8; i++) {
        assert_int_equal(fb_device_request(&r.dev, &requests[i], req, sizeof req, &len, &counter), FB_OK);
        assert_int_equal(counter, expected++);
        agent_open(req, len, &h, &body, &body_len);
        assert_false(h.has_reply_to);
        assert_int_equal(h.counter, counter);
        assert_int_equal(fb_kmip_parse_request(body, body_len, &q), FB_OK);
        assert_int_equal(q.items[0].operation, ops[i]);
    }
    assert_int_equal(fb_device_in_flight(&r.dev), 8);
    assert_int_equal(r.storage.writes, 1); /* eight frames, one block */
    /* A request the builder refuses (another operation, none at all) spends no counter, leaves
     * nothing in flight and no body in the frame. */
    requests[0].operation = FB_OP_PUT;
    memset(req, 0xA5, sizeof req);
    assert_int_equal(fb_device_request(&r.dev, &requests[0], req, sizeof req, &len, &counter), FB_ERR_ARG);
    assert_int_equal(counter, 0);
    for (i = 0; i < sizeof req; i++) {
        assert_true(req[i] == 0u || req[i] == 0xA5u);
    }
    assert_int_equal(fb_device_request(&r.dev, NULL, req, sizeof req, &len, &counter), FB_ERR_ARG);
    assert_int_equal(fb_device_in_flight(&r.dev), 8);
    assert_int_equal(fb_device_request(&r.dev, &requests[1], req, sizeof req, &len, &counter), FB_OK);
    assert_int_equal(counter, expected);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_reply),
        cmocka_unit_test(test_resend_and_kept_reply),
        cmocka_unit_test(test_refusals_before_crypto),
        cmocka_unit_test(test_in_flight_limit),
        cmocka_unit_test(test_push_and_ack),
        cmocka_unit_test(test_lead_rule),
        cmocka_unit_test(test_reboot_never_reuses),
        cmocka_unit_test(test_nonce_mac_and_limits),
        cmocka_unit_test(test_every_operation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
