/* End to end, sagad is killed, restarted, replaced and stopped mid-saga and
 * every saga finishes exactly once; see README.md. Signals only its own processes. */
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
#define N_SAGAS   3

static const char chain_def[] =
    "{\"name\": \"chain\", \"version\": 1, \"steps\": ["
    "{\"name\": \"a\", \"service\": \"first\", \"action\": \"a\"},"
    "{\"name\": \"b\", \"service\": \"svc\", \"action\": \"b\", \"timeout\": \"5s\"},"
    "{\"name\": \"c\", \"service\": \"first\", \"action\": \"c\"}]}";

struct sagas {
    uint8_t id[N_SAGAS][16];
    char text[N_SAGAS][37];
    size_t n;
};

static void start_sagas(saga_client_t *c, struct sagas *s, size_t n)
{
    s->n = n;
    for (size_t i = 0; i < n; i++)
        e2e_start(c, "chain", "{}", NULL, s->id[i], s->text[i]);
}

/* Every saga completed; a and c ran once each, b at least once, nothing was
 * compensated, and every repeat came with the same key. */
static void check_completed_once(struct e2e *h, saga_client_t *c, const struct sagas *s)
{
    for (size_t i = 0; i < s->n; i++) {
        saga_result_t *r = e2e_expect(c, s->id[i], SAGA_STATUS_COMPLETED, SETTLE_MS);
        saga_result_free(&r);
    }
    struct e2e_rec *rec;
    size_t n = e2e_records(h, NULL, &rec);
    for (size_t i = 0; i < s->n; i++) {
        assert_int_equal(e2e_rec_count(rec, n, s->text[i], "a", "action"), 1);
        assert_int_equal(e2e_rec_count(rec, n, s->text[i], "c", "action"), 1);
        assert_true(e2e_rec_count(rec, n, s->text[i], "b", "action") >= 1);
        assert_int_equal(e2e_rec_count(rec, n, s->text[i], NULL, "compensate"), 0);
        e2e_rec_check_keys(rec, n, s->text[i]);
    }
    free(rec);
}

/* The chain's participants on `coordinators` ("svc" takes 1.5 s over b), a
 * client on the same, and N_SAGAS sagas of chain_def started through it;
 * returns the client once every saga's b is running. */
static saga_client_t *start_held_at_b(struct e2e *h, const char *coordinators, struct sagas *s)
{
    e2e_peer(h, &(struct e2e_peer_opts){
                    .coordinators = coordinators, .service = "first", .on = {"a=ok", "c=ok"}});
    e2e_peer(h, &(struct e2e_peer_opts){
                    .coordinators = coordinators, .service = "svc", .on = {"b=delay:1500"}});
    saga_client_t *c = e2e_client(h, coordinators);
    e2e_define(c, chain_def);
    start_sagas(c, s, N_SAGAS);
    for (size_t i = 0; i < s->n; i++)
        e2e_rec_wait(h, s->text[i], "b", "action", 1, 10000);
    return c;
}

static void test_kill9_restart_same_id(void **state)
{
    struct e2e *h = e2e_begin(state, "kill9", 0);
    /* A long lease: taking the sagas back must not wait for it. */
    struct e2e_sagad_opts so = {.instance_id = "coord-a", .lease = "10s"};
    struct e2e_proc *a = e2e_sagad(h, &so);
    struct sagas s;
    saga_client_t *c = start_held_at_b(h, a->addr, &s);

    e2e_kill9(a);
    /* Same id, same address: participants come back by themselves. */
    so.listen = a->addr;
    struct e2e_proc *a2 = e2e_sagad(h, &so);
    uint64_t waited = e2e_log_wait(a2, "event=saga.resumed", NULL, N_SAGAS, 5000);
    assert_true(waited < 5000); /* well within the 10 s lease */
    check_completed_once(h, c, &s);
    e2e_finish(h);
}

static void test_takeover_after_lease(void **state)
{
    struct e2e *h = e2e_begin(state, "takeover", 0);
    struct e2e_proc *a = e2e_sagad(h, &(struct e2e_sagad_opts){.instance_id = "coord-a"});
    struct e2e_proc *b = e2e_sagad(h, &(struct e2e_sagad_opts){.instance_id = "coord-b"});
    char both[160];
    snprintf(both, sizeof(both), "%s,%s", a->addr, b->addr);
    /* The client knows both and fails over when its coordinator dies. */
    struct sagas s;
    saga_client_t *c = start_held_at_b(h, both, &s);
    assert_int_equal(e2e_sql_int(h, NULL, "SELECT count(*) FROM sagas WHERE owner = 'coord-a'"),
                     N_SAGAS);

    /* The leases run at least this long (renewals only push them further). */
    long long lease_ms =
        e2e_sql_int(h, NULL,
                    "SELECT (extract(epoch FROM min(lease_until)) * 1000)::bigint FROM sagas"
                    " WHERE owner = 'coord-a'");
    e2e_kill9(a);
    e2e_log_wait(b, "event=saga.resumed", NULL, N_SAGAS, 15000);
    /* b took them over, and not before they ran out. */
    assert_true((long long)e2e_now_ms() >= lease_ms);
    check_completed_once(h, c, &s);
    assert_int_equal(e2e_sql_int(h, NULL, "SELECT count(*) FROM sagas WHERE owner = 'coord-a'"), 0);
    e2e_finish(h);
}

/* Restarts `a` in place: same instance id, same address, same lease. */
static struct e2e_proc *restart(struct e2e *h, struct e2e_proc *a, const char *lease)
{
    e2e_kill9(a);
    struct e2e_sagad_opts so = {.instance_id = a->instance, .listen = a->addr, .lease = lease};
    return e2e_sagad(h, &so);
}

static void test_kill9_while_compensating(void **state)
{
    struct e2e *h = e2e_begin(state, "kill9comp", 0);
    struct e2e_proc *a =
        e2e_sagad(h, &(struct e2e_sagad_opts){.instance_id = "coord-a", .lease = "10s"});
    e2e_peer(h, &(struct e2e_peer_opts){.coordinators = a->addr,
                                        .service = "first",
                                        .on = {"a=ok", "a.compensate=delay:1500"}});
    e2e_peer(h,
             &(struct e2e_peer_opts){.coordinators = a->addr, .service = "svc", .on = {"b=fail"}});
    saga_client_t *c = e2e_client(h, a->addr);
    e2e_define(c, "{\"name\": \"back\", \"version\": 1, \"steps\": ["
                  "{\"name\": \"a\", \"service\": \"first\", \"action\": \"a\"},"
                  "{\"name\": \"b\", \"service\": \"svc\", \"action\": \"b\"}]}");
    uint8_t id[16];
    char text[37];
    e2e_start(c, "back", "{}", NULL, id, text);
    e2e_rec_wait(h, text, "a", "compensate", 1, 10000);

    struct e2e_proc *a2 = restart(h, a, "10s");
    e2e_log_wait(a2, "event=saga.resumed", "status=compensating", 1, 5000);
    saga_result_t *r = e2e_expect(c, id, SAGA_STATUS_COMPENSATED, SETTLE_MS);
    assert_int_equal(e2e_step(saga_result_info(r), "b")->status, SAGA_STEP_FAILED);
    saga_result_free(&r);
    struct e2e_rec *rec;
    size_t n = e2e_records(h, NULL, &rec);
    /* Nothing went forward again once compensation had begun. */
    assert_int_equal(e2e_rec_count(rec, n, text, NULL, "action"), 2);
    assert_true(e2e_rec_count(rec, n, text, "a", "compensate") >= 1);
    assert_int_equal(e2e_rec_count(rec, n, text, "b", "compensate"), 0);
    e2e_rec_check_keys(rec, n, text);
    free(rec);
    e2e_finish(h);
}

static const char *tpc_def(char *buf, size_t size, const char *name, const char *x, const char *y)
{
    snprintf(buf, size,
             "{\"name\": \"%s\", \"version\": 1, \"mode\": \"2pc\", \"steps\": ["
             "{\"name\": \"x\", \"service\": \"bank\", \"action\": \"%s\"},"
             "{\"name\": \"y\", \"service\": \"bank\", \"action\": \"%s\", \"after\": []}]}",
             name, x, y);
    return buf;
}

static void test_kill9_two_phase(void **state)
{
    char def[512];
    struct e2e *h = e2e_begin(state, "kill9tpc", 0);
    struct e2e_proc *a =
        e2e_sagad(h, &(struct e2e_sagad_opts){.instance_id = "coord-a", .lease = "10s"});
    e2e_peer(h, &(struct e2e_peer_opts){.coordinators = a->addr,
                                        .service = "bank",
                                        .on = {"x=ok", "y-slow=ok", "y-slow.prepare=delay:1500",
                                               "x-slow=ok", "x-slow.commit=delay:1500"}});
    saga_client_t *c = e2e_client(h, a->addr);
    e2e_define(c, tpc_def(def, sizeof(def), "preparing", "x", "y-slow"));
    e2e_define(c, tpc_def(def, sizeof(def), "committing", "x-slow", "x"));
    uint8_t p[16], k[16];
    char pt[37], kt[37];
    e2e_start(c, "preparing", "{}", NULL, p, pt);
    e2e_start(c, "committing", "{}", NULL, k, kt);
    /* One saga is still preparing, the other has decided to commit. */
    e2e_rec_wait(h, pt, "y", "prepare", 1, 10000);
    e2e_rec_wait(h, kt, "x", "commit", 1, 10000);

    struct e2e_proc *a2 = restart(h, a, "10s");
    e2e_log_wait(a2, "event=saga.resumed", NULL, 2, 5000);
    saga_result_free(&(saga_result_t *){e2e_expect(c, p, SAGA_STATUS_COMMITTED, SETTLE_MS)});
    saga_result_free(&(saga_result_t *){e2e_expect(c, k, SAGA_STATUS_COMMITTED, SETTLE_MS)});
    struct e2e_rec *rec;
    size_t n = e2e_records(h, NULL, &rec);
    const char *both[] = {pt, kt};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(e2e_rec_count(rec, n, both[i], NULL, "abort"), 0);
        assert_true(e2e_rec_count(rec, n, both[i], "x", "commit") >= 1);
        assert_true(e2e_rec_count(rec, n, both[i], "y", "commit") >= 1);
        /* no commit before both prepares */
        long first_commit = e2e_rec_find(rec, n, 0, both[i], NULL, "commit");
        assert_true(e2e_rec_find(rec, n, 0, both[i], "x", "prepare") < first_commit);
        assert_true(e2e_rec_find(rec, n, 0, both[i], "y", "prepare") < first_commit);
        e2e_rec_check_keys(rec, n, both[i]);
    }
    /* The decided saga was not prepared again. */
    assert_int_equal(e2e_rec_count(rec, n, kt, NULL, "prepare"), 2);
    free(rec);
    e2e_finish(h);
}

static void test_sigterm_hands_over(void **state)
{
    struct e2e *h = e2e_begin(state, "sigterm", 0);
    /* Expired leases would wait 10 s; released ones go at the next claim round (5 s). */
    struct e2e_proc *a =
        e2e_sagad(h, &(struct e2e_sagad_opts){.instance_id = "coord-a", .lease = "10s"});
    struct e2e_proc *b =
        e2e_sagad(h, &(struct e2e_sagad_opts){.instance_id = "coord-b", .lease = "10s"});
    char both[160];
    snprintf(both, sizeof(both), "%s,%s", a->addr, b->addr);
    struct sagas s;
    saga_client_t *c = start_held_at_b(h, both, &s);

    e2e_stop(a, 20000); /* exit 0, clean log */
    uint64_t t0 = e2e_now_ms();
    assert_int_equal(e2e_log_count(a, "event=lease.released", "sagas=3"), 1);
    assert_int_equal(e2e_sql_int(h, NULL, "SELECT count(*) FROM sagas WHERE owner = 'coord-a'"), 0);
    e2e_log_wait(b, "event=saga.resumed", NULL, N_SAGAS, 8000);
    assert_true(e2e_now_ms() - t0 < 6500);
    check_completed_once(h, c, &s);
    e2e_finish(h);
}

static void count_event(saga_client_t *c, const saga_event_t *ev, void *data)
{
    (void)c;
    (void)ev;
    (*(size_t *)data)++;
}

/* Two coordinators, one log: a saga held by one is seen, waited for and
 * watched through the other, an operator command sent to the other names the
 * holder (sagactl follows it there), and an idempotency key holds across
 * both. */
static void test_two_coordinators(void **state)
{
    struct e2e *h = e2e_begin(state, "twocoord", 0);
    struct e2e_proc *a = e2e_sagad(h, &(struct e2e_sagad_opts){.instance_id = "coord-a"});
    struct e2e_proc *b = e2e_sagad(h, &(struct e2e_sagad_opts){.instance_id = "coord-b"});
    e2e_peer(h, &(struct e2e_peer_opts){
                    .coordinators = a->addr, .service = "first", .on = {"a=ok", "c=ok"}});
    e2e_peer(h, &(struct e2e_peer_opts){
                    .coordinators = a->addr, .service = "svc", .on = {"b=delay:1000"}});
    saga_client_t *ca = e2e_client(h, a->addr);
    saga_client_t *cb = e2e_client(h, b->addr);
    e2e_define(ca, chain_def);
    uint8_t id[16], again[16];
    char text[37];
    assert_int_equal(e2e_start(ca, "chain", "{}", "k-1", id, text), 0);
    assert_int_equal(e2e_start(cb, "chain", "{}", "k-1", again, NULL), 1);
    assert_memory_equal(id, again, 16);

    saga_result_t *r = NULL;
    assert_int_equal(saga_client_get_sync(cb, id, &r), 0);
    assert_int_equal(saga_result_info(r)->status, SAGA_STATUS_RUNNING);
    saga_result_free(&r);
    /* An operator command sent to the other coordinator is refused, and the
     * answer says which coordinator holds the saga and where it listens. */
    assert_int_equal(saga_client_abort_sync(cb, id, "wrong door", &r), SAGA_ESTATE);
    assert_non_null(strstr(saga_result_error(r), "coord-a"));
    assert_non_null(strstr(saga_result_error(r), a->addr));
    assert_string_equal(saga_result_holder(r), a->addr);
    saga_result_free(&r);
    size_t events = 0;
    assert_int_equal(saga_client_watch_sync(cb, id, count_event, &events, &r), 0);
    assert_int_equal(saga_result_info(r)->status, SAGA_STATUS_COMPLETED);
    assert_int_equal(events, saga_result_info(r)->n_events);
    saga_result_free(&r);
    r = e2e_expect(cb, id, SAGA_STATUS_COMPLETED, SETTLE_MS);
    saga_result_free(&r);

    /* sagactl, told the wrong coordinator, sends the command to the holder. */
    uint8_t second[16];
    char second_text[37];
    assert_int_equal(e2e_start(ca, "chain", "{}", "k-2", second, second_text), 0);
    e2e_sleep_ms(300); /* b is running now: 1 s per call */
    const char *abort_argv[] = {"sagactl", "abort", second_text, "--coordinator", b->addr, NULL};
    assert_int_equal(e2e_run(h, "sagactl-abort", abort_argv, 30000), 0);
    r = e2e_expect(cb, second, SAGA_STATUS_COMPENSATED, SETTLE_MS);
    saga_result_free(&r);
    assert_int_equal(e2e_sql_int(h, NULL, "SELECT count(*) FROM sagas"), 2);
    e2e_finish(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_kill9_restart_same_id, e2e_teardown),
        cmocka_unit_test_teardown(test_takeover_after_lease, e2e_teardown),
        cmocka_unit_test_teardown(test_kill9_while_compensating, e2e_teardown),
        cmocka_unit_test_teardown(test_kill9_two_phase, e2e_teardown),
        cmocka_unit_test_teardown(test_sigterm_hands_over, e2e_teardown),
        cmocka_unit_test_teardown(test_two_coordinators, e2e_teardown),
    };
    e2e_server_url();
    return cmocka_run_group_tests_name("e2e_recovery", tests, NULL, NULL);
}
