/* Counters (PROTOCOL.md §3, §8): block reservation, reboot skips to the block end, no counter
 * without a durable reservation, corrupt records refused, exhaustion, pushes; the replay window. */
#include "test_support.h"

static void test_block_reservation_and_reboot(void **state)
{
    test_storage s;
    fb_storage iface;
    fb_counters c;
    uint64_t counter = 0;
    uint64_t i;
    (void)state;
    memset(&s, 0, sizeof s);
    test_storage_iface(&s, &iface);
    assert_int_equal(fb_counters_load(&c, &iface, 10), FB_OK);
    assert_int_equal(s.writes, 0); /* loading writes nothing */
    for (i = 1; i <= 25; i++) {
        assert_int_equal(fb_counters_next_up(&c, &counter), FB_OK);
        assert_int_equal(counter, i);
    }
    assert_int_equal(s.writes, 3); /* blocks 1-10, 11-20, 21-30: one write per 10 counters */
    /* Power cut after counter 25: the next boot continues after the stored block end, 30. */
    assert_int_equal(fb_counters_load(&c, &iface, 10), FB_OK);
    assert_int_equal(fb_counters_next_up(&c, &counter), FB_OK);
    assert_int_equal(counter, 31);
    assert_int_equal(s.writes, 4);
    /* A reboot loop without sending wears nothing and still never reuses. */
    assert_int_equal(fb_counters_load(&c, &iface, 10), FB_OK);
    assert_int_equal(fb_counters_load(&c, &iface, 10), FB_OK);
    assert_int_equal(s.writes, 4);
    assert_int_equal(fb_counters_next_up(&c, &counter), FB_OK);
    assert_int_equal(counter, 41);
}

static void test_no_counter_without_reservation(void **state)
{
    test_storage s;
    fb_storage iface;
    fb_counters c;
    uint64_t counter = 0;
    (void)state;
    memset(&s, 0, sizeof s);
    test_storage_iface(&s, &iface);
    assert_int_equal(fb_counters_load(&c, &iface, 2), FB_OK);
    s.fail_writes = 1;
    assert_int_equal(fb_counters_next_up(&c, &counter), FB_ERR_STORAGE);
    assert_int_equal(counter, 0);
    s.fail_writes = 0;
    assert_int_equal(fb_counters_next_up(&c, &counter), FB_OK);
    assert_int_equal(counter, 1);
    assert_int_equal(fb_counters_next_up(&c, &counter), FB_OK);
    assert_int_equal(counter, 2);
    s.fail_writes = 1;
    assert_int_equal(fb_counters_next_up(&c, &counter), FB_ERR_STORAGE); /* 3 needs a new block */
    s.fail_writes = 0;
    assert_int_equal(fb_counters_next_up(&c, &counter), FB_OK);
    assert_int_equal(counter, 3);
}

static void test_corrupt_or_unreadable_record(void **state)
{
    test_storage s;
    fb_storage iface;
    fb_counters c;
    uint64_t counter;
    (void)state;
    memset(&s, 0, sizeof s);
    test_storage_iface(&s, &iface);
    assert_int_equal(fb_counters_load(&c, &iface, 0), FB_OK);
    assert_int_equal(c.block, FB_DEFAULT_COUNTER_BLOCK);
    assert_int_equal(fb_counters_next_up(&c, &counter), FB_OK);
    s.record[9] ^= 0x40u; /* a torn or decayed write */
    assert_int_equal(fb_counters_load(&c, &iface, 0), FB_ERR_STORAGE);
    s.record[9] ^= 0x40u;
    s.record[0] = 'X';
    assert_int_equal(fb_counters_load(&c, &iface, 0), FB_ERR_STORAGE);
    s.record[0] = 'F';
    s.fail_reads = 1;
    assert_int_equal(fb_counters_load(&c, &iface, 0), FB_ERR_STORAGE);
    s.fail_reads = 0;
    assert_int_equal(fb_counters_load(&c, &iface, 0), FB_OK);
    assert_int_equal(c.next_up, FB_DEFAULT_COUNTER_BLOCK + 1u);
}

static void test_exhaustion(void **state)
{
    test_storage s;
    fb_storage iface;
    fb_counters c;
    uint64_t counter;
    (void)state;
    memset(&s, 0, sizeof s);
    test_storage_iface(&s, &iface);
    fb_counter_record_encode(UINT64_MAX - 2u, 0, s.record);
    s.found = 1;
    assert_int_equal(fb_counters_load(&c, &iface, 1000), FB_OK);
    assert_int_equal(fb_counters_next_up(&c, &counter), FB_OK);
    assert_int_equal(counter, UINT64_MAX - 1u);
    assert_int_equal(fb_counters_next_up(&c, &counter), FB_OK);
    assert_int_equal(counter, UINT64_MAX);
    assert_int_equal(fb_counters_next_up(&c, &counter), FB_ERR_COUNTER_EXHAUSTED);
    /* And after a reboot too (the block end stored is 2^64-1). */
    assert_int_equal(fb_counters_load(&c, &iface, 1000), FB_OK);
    assert_int_equal(fb_counters_next_up(&c, &counter), FB_ERR_COUNTER_EXHAUSTED);
}

static void test_push_counter(void **state)
{
    test_storage s;
    fb_storage iface;
    fb_counters c;
    (void)state;
    memset(&s, 0, sizeof s);
    test_storage_iface(&s, &iface);
    assert_int_equal(fb_counters_load(&c, &iface, 10), FB_OK);
    assert_int_equal(fb_counters_accept_push(&c, 5), FB_OK);
    assert_int_equal(s.writes, 1); /* one write per push */
    assert_int_equal(fb_counters_accept_push(&c, 5), FB_ERR_REPLAY);
    assert_int_equal(fb_counters_accept_push(&c, 4), FB_ERR_REPLAY);
    s.fail_writes = 1;
    assert_int_equal(fb_counters_accept_push(&c, 9), FB_ERR_STORAGE);
    assert_int_equal(c.push_accepted, 5); /* not accepted when not stored */
    s.fail_writes = 0;
    assert_int_equal(fb_counters_load(&c, &iface, 10), FB_OK);
    assert_int_equal(fb_counters_accept_push(&c, 5), FB_ERR_REPLAY); /* across a reboot */
    assert_int_equal(fb_counters_accept_push(&c, 6), FB_OK);
}

static void test_replay_window(void **state)
{
    fb_replay_window w;
    (void)state;
    memset(&w, 0, sizeof w);
    assert_int_equal(fb_replay_check(&w, 1), FB_OK);
    fb_replay_record(&w, 1);
    assert_int_equal(fb_replay_check(&w, 1), FB_ERR_REPLAY);
    fb_replay_record(&w, 10);
    assert_int_equal(fb_replay_check(&w, 5), FB_OK);
    fb_replay_record(&w, 5);
    assert_int_equal(fb_replay_check(&w, 5), FB_ERR_REPLAY);
    assert_int_equal(fb_replay_check(&w, 1), FB_ERR_REPLAY);
    fb_replay_record(&w, 73); /* 10 is now 63 below: still in the window; 9 is 64 below */
    assert_int_equal(fb_replay_check(&w, 10), FB_ERR_REPLAY);
    assert_int_equal(fb_replay_check(&w, 9), FB_OK); /* below the window: judged by reply_to */
    fb_replay_record(&w, 1000);
    assert_int_equal(fb_replay_check(&w, 73), FB_OK);
    assert_int_equal(fb_replay_check(&w, 1000), FB_ERR_REPLAY);
    assert_int_equal(fb_replay_check(&w, 0), FB_ERR_ARG);
}

/* As the library was built: FB_CONFIG_STATUS_NAMES=1 (the CMake build's FB_STATUS_NAMES, on by
 * default) every name; 0 (fb_config.h's default) the class of the status only. */
static void test_status_names(void **state)
{
    (void)state;
    assert_string_equal(fb_status_name(FB_AGAIN), "FB_AGAIN");
    assert_string_equal(fb_status_name(FB_OK), "FB_OK");
#if FB_CONFIG_STATUS_NAMES
    assert_string_equal(fb_status_name(FB_ERR_ARG), "FB_ERR_ARG");
    assert_string_equal(fb_status_name(FB_ERR_AUTH), "FB_ERR_AUTH");
    assert_string_equal(fb_status_name(FB_ERR_STORAGE), "FB_ERR_STORAGE");
    assert_string_equal(fb_status_name(FB_ERR_NOT_FOUND), "FB_ERR_NOT_FOUND");
    assert_string_equal(fb_status_name((fb_status)-17), "FB_ERR_UNKNOWN");
    assert_string_equal(fb_status_name((fb_status)2), "FB_ERR_UNKNOWN");
#else
    assert_string_equal(fb_status_name(FB_ERR_ARG), "FB_ERR");
    assert_string_equal(fb_status_name(FB_ERR_NOT_FOUND), "FB_ERR");
    assert_string_equal(fb_status_name((fb_status)-17), "FB_ERR");
    assert_string_equal(fb_status_name((fb_status)2), "FB_ERR");
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_reservation_and_reboot),
        cmocka_unit_test(test_no_counter_without_reservation),
        cmocka_unit_test(test_corrupt_or_unreadable_record),
        cmocka_unit_test(test_exhaustion),
        cmocka_unit_test(test_push_counter),
        cmocka_unit_test(test_replay_window),
        cmocka_unit_test(test_status_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
