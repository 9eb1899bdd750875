/* End to end, participants crash, are killed or freeze mid-step and another
 * instance takes over; see README.md. Signals only the processes it started. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e_client.h"
#include "harness.h"

#define SETTLE_MS 30000

static const char two_def[] = "{\"name\": \"two\", \"version\": 1, \"steps\": ["
                              "{\"name\": \"a\", \"service\": \"first\", \"action\": \"a\"},"
                              "{\"name\": \"b\", \"service\": \"svc\", \"action\": \"b\"}]}";

static void test_participant_crash(void **state)
{
    struct e2e *h = e2e_begin(state, "crash", 0);
    struct e2e_proc *sd = e2e_sagad(h, NULL);
    e2e_peer(h,
             &(struct e2e_peer_opts){.coordinators = sd->addr, .service = "first", .on = {"a=ok"}});
    struct e2e_proc *x = e2e_peer(
        h, &(struct e2e_peer_opts){
               .coordinators = sd->addr, .service = "svc", .instance = "svc-x", .on = {"b=crash"}});
    saga_client_t *c = e2e_client(h, sd->addr);
    e2e_define(c, two_def);
    uint8_t id[16];
    char text[37];
    e2e_start(c, "two", "{}", NULL, id, text);
    /* svc-x dies in the middle of b; the command is lost with its connection. */
    assert_int_equal(e2e_wait_exit(x, 10000), 3);
    e2e_log_wait(sd, "event=command.lost", "step=b", 1, 5000);
    saga_result_t *r = NULL;
    assert_int_equal(saga_client_get_sync(c, id, &r), 0);
    assert_int_equal(saga_result_info(r)->status, SAGA_STATUS_RUNNING);
    saga_result_free(&r);
    /* Another instance of the service gets it. */
    e2e_peer(h,
             &(struct e2e_peer_opts){
                 .coordinators = sd->addr, .service = "svc", .instance = "svc-y", .on = {"b=ok"}});
    r = e2e_expect(c, id, SAGA_STATUS_COMPLETED, SETTLE_MS);
    assert_true(e2e_step(saga_result_info(r), "b")->attempts >= 2);
    saga_result_free(&r);

    struct e2e_rec *rec;
    size_t n = e2e_records(h, NULL, &rec);
    long first = e2e_rec_find(rec, n, 0, text, "b", "action");
    assert_true(first >= 0);
    assert_string_equal(rec[first].instance, "svc-x");
    long second = e2e_rec_find(rec, n, (size_t)first + 1, text, "b", "action");
    assert_true(second > first);
    assert_string_equal(rec[second].instance, "svc-y");
    assert_true(rec[second].attempt > rec[first].attempt);
    assert_int_equal(e2e_rec_count(rec, n, text, "a", "action"), 1);
    assert_int_equal(e2e_rec_count(rec, n, text, NULL, "compensate"), 0);
    e2e_rec_check_keys(rec, n, text);
    free(rec);
    e2e_finish(h);
}

/* "first" does a; two instances of "svc", svc-x and svc-y, take `b_on` (a
 * slow b) for b. Starts a saga of two_def and waits until one of them has b.
 * Returns the index in p[] of the instance working on b. */
static int start_with_b_held(struct e2e *h, struct e2e_proc *sd, const char *b_on,
                             struct e2e_proc *p[2], saga_client_t **c, uint8_t id[16],
                             char text[37])
{
    e2e_peer(h,
             &(struct e2e_peer_opts){.coordinators = sd->addr, .service = "first", .on = {"a=ok"}});
    p[0] = e2e_peer(
        h, &(struct e2e_peer_opts){
               .coordinators = sd->addr, .service = "svc", .instance = "svc-x", .on = {b_on}});
    p[1] = e2e_peer(
        h, &(struct e2e_peer_opts){
               .coordinators = sd->addr, .service = "svc", .instance = "svc-y", .on = {b_on}});
    *c = e2e_client(h, sd->addr);
    e2e_define(*c, two_def);
    e2e_start(*c, "two", "{}", NULL, id, text);
    e2e_rec_wait(h, text, "b", "action", 1, 10000);
    struct e2e_rec *rec;
    size_t n = e2e_records(h, NULL, &rec);
    long first = e2e_rec_find(rec, n, 0, text, "b", "action");
    int held = strcmp(rec[first].instance, "svc-x") == 0 ? 0 : 1;
    free(rec);
    return held;
}

static void test_participant_kill9(void **state)
{
    struct e2e *h = e2e_begin(state, "peerkill", 0);
    struct e2e_proc *sd = e2e_sagad(h, NULL);
    struct e2e_proc *p[2];
    saga_client_t *c;
    uint8_t id[16];
    char text[37];
    int victim = start_with_b_held(h, sd, "b=delay:1500", p, &c, id, text);
    /* Kill whichever instance holds b while it works on it. */
    e2e_kill9(p[victim]);
    saga_result_t *r = e2e_expect(c, id, SAGA_STATUS_COMPLETED, SETTLE_MS);
    saga_result_free(&r);

    struct e2e_rec *rec;
    size_t n = e2e_records(h, NULL, &rec);
    assert_int_equal(e2e_rec_count(rec, n, text, "b", "action"), 2);
    long first = e2e_rec_find(rec, n, 0, text, "b", "action");
    long second = e2e_rec_find(rec, n, (size_t)first + 1, text, "b", "action");
    assert_string_equal(rec[first].instance, p[victim]->instance);
    assert_string_equal(rec[second].instance, p[1 - victim]->instance);
    assert_int_equal(rec[second].attempt, rec[first].attempt + 1);
    e2e_rec_check_keys(rec, n, text);
    free(rec);
    e2e_finish(h);
}

static void test_participant_frozen(void **state)
{
    struct e2e *h = e2e_begin(state, "frozen", 0);
    struct e2e_proc *sd = e2e_sagad(h, NULL); /* heartbeat 200 ms: silent 600 ms = dead */
    struct e2e_proc *p[2];
    saga_client_t *c;
    uint8_t id[16];
    char text[37];
    int victim = start_with_b_held(h, sd, "b=delay:1000", p, &c, id, text);
    /* Frozen, not dead: its socket stays open but it no longer pings. */
    e2e_signal(p[victim], SIGSTOP);
    e2e_log_wait(sd, "event=session.refused", "SAGA_ETIMEDOUT", 1, 5000);
    saga_result_t *r = e2e_expect(c, id, SAGA_STATUS_COMPLETED, SETTLE_MS);
    saga_result_free(&r);
    e2e_signal(p[victim], SIGCONT);

    struct e2e_rec *rec;
    size_t n = e2e_records(h, NULL, &rec);
    assert_int_equal(e2e_rec_count(rec, n, text, "b", "action"), 2);
    long first = e2e_rec_find(rec, n, 0, text, "b", "action");
    long second = e2e_rec_find(rec, n, (size_t)first + 1, text, "b", "action");
    assert_string_equal(rec[second].instance, p[1 - victim]->instance);
    e2e_rec_check_keys(rec, n, text);
    free(rec);
    /* Thawed, it reconnects and serves again. */
    e2e_log_wait(p[victim], "event=registered", NULL, 2, 10000);
    e2e_finish(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_participant_crash, e2e_teardown),
        cmocka_unit_test_teardown(test_participant_kill9, e2e_teardown),
        cmocka_unit_test_teardown(test_participant_frozen, e2e_teardown),
    };
    e2e_server_url();
    return cmocka_run_group_tests_name("e2e_participants", tests, NULL, NULL);
}
