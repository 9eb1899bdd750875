/* End to end, the database goes away and comes back under a running sagad
 * (a private PostgreSQL); see README.md. Talks to sagad only through the SDK. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e_client.h"
#include "harness.h"

#define SETTLE_MS 40000

static const char along_def[] = "{\"name\": \"along\", \"version\": 1, \"steps\": ["
                                "{\"name\": \"slow\", \"service\": \"svc\", \"action\": \"slow\"},"
                                "{\"name\": \"ok\", \"service\": \"svc\", \"action\": \"ok\"}]}";

static void test_database_down(void **state)
{
    struct e2e *h = e2e_begin(state, "dbdown", 1);
    struct e2e_proc *sd =
        e2e_sagad(h, &(struct e2e_sagad_opts){.lease = "5s", .extra = {"--db-wait", "1s"}});
    e2e_peer(h, &(struct e2e_peer_opts){.coordinators = sd->addr,
                                        .service = "svc",
                                        .on = {"slow=delay:2000", "ok=ok"}});
    saga_client_t *c = e2e_client(h, sd->addr);
    e2e_define(c, along_def);
    uint8_t before[16];
    char before_t[37];
    e2e_start(c, "along", "{}", NULL, before, before_t);
    e2e_rec_wait(h, before_t, "slow", "action", 1, 10000);

    assert_int_equal(e2e_pg(h, "stop"), 0);
    /* Nothing can be logged: the start is refused, soon, and says why. */
    saga_result_t *r = NULL;
    uint64_t t0 = e2e_now_ms();
    int rc = saga_client_start_sync(
        c, &(saga_start_request_t){.definition = "along", .input = "{}", .input_len = 2}, &r);
    uint64_t took = e2e_now_ms() - t0;
    if (rc != SAGA_EUNAVAIL)
        fail_msg("start with the database down: %s (%s), want SAGA_EUNAVAIL", saga_err_name(rc),
                 saga_result_error(r));
    saga_result_free(&r);
    assert_true(took < 4000); /* --db-wait 1s, not the client's 5 s timeout */
    rc = saga_client_get_sync(c, before, &r);
    assert_true(rc == SAGA_EUNAVAIL || rc == SAGA_EDB);
    saga_result_free(&r);
    /* Long enough for the running saga's reply to find no database. */
    e2e_sleep_ms(2500);
    assert_true(e2e_alive(sd));

    assert_int_equal(e2e_pg(h, "start"), 0);
    /* The same process carries on: the saga that was running completes... */
    r = e2e_expect(c, before, SAGA_STATUS_COMPLETED, SETTLE_MS);
    saga_result_free(&r);
    /* ... and new ones start (after the store reconnected). */
    uint64_t until = e2e_now_ms() + 15000;
    uint8_t after[16];
    for (;;) {
        rc = saga_client_start_sync(
            c, &(saga_start_request_t){.definition = "along", .input = "{}", .input_len = 2}, &r);
        if (rc == 0) {
            memcpy(after, saga_result_saga_id(r), 16);
            saga_result_free(&r);
            break;
        }
        if (rc != SAGA_EUNAVAIL || e2e_now_ms() > until)
            fail_msg("start after the database came back: %s (%s)", saga_err_name(rc),
                     saga_result_error(r));
        saga_result_free(&r);
        e2e_sleep_ms(200);
    }
    r = e2e_expect(c, after, SAGA_STATUS_COMPLETED, SETTLE_MS);
    saga_result_free(&r);
    assert_true(e2e_alive(sd));

    struct e2e_rec *rec;
    size_t n = e2e_records(h, NULL, &rec);
    assert_int_equal(e2e_rec_count(rec, n, before_t, "ok", "action"), 1);
    assert_int_equal(e2e_rec_count(rec, n, before_t, NULL, "compensate"), 0);
    e2e_rec_check_keys(rec, n, NULL);
    free(rec);
    e2e_finish(h);
}

/* SIGTERM while the database is down: sagad still stops, promptly and
 * cleanly (its leases simply run out), and a peer finishes the saga later. */
static void test_sigterm_database_down(void **state)
{
    struct e2e *h = e2e_begin(state, "dbdownterm", 1);
    struct e2e_proc *a = e2e_sagad(
        h, &(struct e2e_sagad_opts){.instance_id = "coord-a", .extra = {"--db-wait", "1s"}});
    e2e_peer(h, &(struct e2e_peer_opts){
                    .coordinators = a->addr, .service = "svc", .on = {"slow=delay:1500", "ok=ok"}});
    saga_client_t *c = e2e_client(h, a->addr);
    e2e_define(c, along_def);
    uint8_t id[16];
    char text[37];
    e2e_start(c, "along", "{}", NULL, id, text);
    e2e_rec_wait(h, text, "slow", "action", 1, 10000);

    assert_int_equal(e2e_pg(h, "stop"), 0);
    e2e_sleep_ms(300);
    uint64_t t0 = e2e_now_ms();
    e2e_stop(a, 15000); /* exit 0, clean log */
    assert_true(e2e_now_ms() - t0 < 10000);
    assert_int_equal(e2e_log_count(a, "event=lease.released", NULL), 0);

    assert_int_equal(e2e_pg(h, "start"), 0);
    struct e2e_proc *b = e2e_sagad(h, &(struct e2e_sagad_opts){.instance_id = "coord-b"});
    e2e_log_wait(b, "event=saga.resumed", NULL, 1, 15000);
    /* The testpeer knew only a: a new one for b. */
    e2e_peer(h, &(struct e2e_peer_opts){
                    .coordinators = b->addr, .service = "svc", .on = {"slow=ok", "ok=ok"}});
    saga_client_t *cb = e2e_client(h, b->addr);
    saga_result_t *r = e2e_expect(cb, id, SAGA_STATUS_COMPLETED, SETTLE_MS);
    saga_result_free(&r);
    e2e_finish(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_database_down, e2e_teardown),
        cmocka_unit_test_teardown(test_sigterm_database_down, e2e_teardown),
    };
    e2e_server_url();
    return cmocka_run_group_tests_name("e2e_dbdown", tests, NULL, NULL);
}
