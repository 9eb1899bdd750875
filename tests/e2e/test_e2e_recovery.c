/* End to end, failures of processes: sagad killed with SIGKILL mid-saga and
 * restarted under its instance id, or replaced by a peer once its lease
 * expires; a participant crashing or killed mid-step with another instance of
 * its service; sagad stopped with SIGTERM handing its sagas over at once.
 * Every saga finishes and no step's effect happens twice: a step is only ever
 * sent again under its one idempotency key. */
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

static void test_kill9_restart_same_id(void **state)
{
    struct e2e *h = e2e_begin(state, "kill9", 0);
    /* A long lease: taking the sagas back must not wait for it. */
    struct e2e_sagad_opts so = {.instance_id = "coord-a", .lease = "10s"};
    struct e2e_proc *a = e2e_sagad(h, &so);
    e2e_peer(h, &(struct e2e_peer_opts){
                    .coordinators = a->addr, .service = "first", .on = {"a=ok", "c=ok"}});
    e2e_peer(h, &(struct e2e_peer_opts){
                    .coordinators = a->addr, .service = "svc", .on = {"b=delay:1500"}});
    saga_client_t *c = e2e_client(h, a->addr);
    e2e_define(c, chain_def);
    struct sagas s;
    start_sagas(c, &s, N_SAGAS);
    for (size_t i = 0; i < s.n; i++)
        e2e_rec_wait(h, s.text[i], "b", "action", 1, 10000);

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
    e2e_peer(h, &(struct e2e_peer_opts){
                    .coordinators = both, .service = "first", .on = {"a=ok", "c=ok"}});
    e2e_peer(
        h, &(struct e2e_peer_opts){.coordinators = both, .service = "svc", .on = {"b=delay:1500"}});
    /* The client knows both and fails over when its coordinator dies. */
    saga_client_t *c = e2e_client(h, both);
    e2e_define(c, chain_def);
    struct sagas s;
    start_sagas(c, &s, N_SAGAS);
    for (size_t i = 0; i < s.n; i++)
        e2e_rec_wait(h, s.text[i], "b", "action", 1, 10000);
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

static void test_participant_kill9(void **state)
{
    struct e2e *h = e2e_begin(state, "peerkill", 0);
    struct e2e_proc *sd = e2e_sagad(h, NULL);
    e2e_peer(h,
             &(struct e2e_peer_opts){.coordinators = sd->addr, .service = "first", .on = {"a=ok"}});
    struct e2e_proc *p[2];
    p[0] = e2e_peer(h, &(struct e2e_peer_opts){.coordinators = sd->addr,
                                               .service = "svc",
                                               .instance = "svc-x",
                                               .on = {"b=delay:1500"}});
    p[1] = e2e_peer(h, &(struct e2e_peer_opts){.coordinators = sd->addr,
                                               .service = "svc",
                                               .instance = "svc-y",
                                               .on = {"b=delay:1500"}});
    saga_client_t *c = e2e_client(h, sd->addr);
    e2e_define(c, two_def);
    uint8_t id[16];
    char text[37];
    e2e_start(c, "two", "{}", NULL, id, text);
    e2e_rec_wait(h, text, "b", "action", 1, 10000);
    struct e2e_rec *rec;
    size_t n = e2e_records(h, NULL, &rec);
    long first = e2e_rec_find(rec, n, 0, text, "b", "action");
    int victim = strcmp(rec[first].instance, "svc-x") == 0 ? 0 : 1;
    free(rec);
    /* Kill whichever instance holds b while it works on it. */
    e2e_kill9(p[victim]);
    saga_result_t *r = e2e_expect(c, id, SAGA_STATUS_COMPLETED, SETTLE_MS);
    saga_result_free(&r);

    n = e2e_records(h, NULL, &rec);
    assert_int_equal(e2e_rec_count(rec, n, text, "b", "action"), 2);
    first = e2e_rec_find(rec, n, 0, text, "b", "action");
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
    e2e_peer(h,
             &(struct e2e_peer_opts){.coordinators = sd->addr, .service = "first", .on = {"a=ok"}});
    struct e2e_proc *p[2];
    p[0] = e2e_peer(h, &(struct e2e_peer_opts){.coordinators = sd->addr,
                                               .service = "svc",
                                               .instance = "svc-x",
                                               .on = {"b=delay:1000"}});
    p[1] = e2e_peer(h, &(struct e2e_peer_opts){.coordinators = sd->addr,
                                               .service = "svc",
                                               .instance = "svc-y",
                                               .on = {"b=delay:1000"}});
    saga_client_t *c = e2e_client(h, sd->addr);
    e2e_define(c, two_def);
    uint8_t id[16];
    char text[37];
    e2e_start(c, "two", "{}", NULL, id, text);
    e2e_rec_wait(h, text, "b", "action", 1, 10000);
    struct e2e_rec *rec;
    size_t n = e2e_records(h, NULL, &rec);
    long first = e2e_rec_find(rec, n, 0, text, "b", "action");
    int victim = strcmp(rec[first].instance, "svc-x") == 0 ? 0 : 1;
    free(rec);
    /* Frozen, not dead: its socket stays open but it no longer pings. */
    e2e_signal(p[victim], SIGSTOP);
    e2e_log_wait(sd, "event=session.refused", "SAGA_ETIMEDOUT", 1, 5000);
    saga_result_t *r = e2e_expect(c, id, SAGA_STATUS_COMPLETED, SETTLE_MS);
    saga_result_free(&r);
    e2e_signal(p[victim], SIGCONT);

    n = e2e_records(h, NULL, &rec);
    assert_int_equal(e2e_rec_count(rec, n, text, "b", "action"), 2);
    first = e2e_rec_find(rec, n, 0, text, "b", "action");
    long second = e2e_rec_find(rec, n, (size_t)first + 1, text, "b", "action");
    assert_string_equal(rec[second].instance, p[1 - victim]->instance);
    e2e_rec_check_keys(rec, n, text);
    free(rec);
    /* Thawed, it reconnects and serves again. */
    e2e_log_wait(p[victim], "event=registered", NULL, 2, 10000);
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
    e2e_peer(h, &(struct e2e_peer_opts){
                    .coordinators = both, .service = "first", .on = {"a=ok", "c=ok"}});
    e2e_peer(
        h, &(struct e2e_peer_opts){.coordinators = both, .service = "svc", .on = {"b=delay:1500"}});
    saga_client_t *c = e2e_client(h, both);
    e2e_define(c, chain_def);
    struct sagas s;
    start_sagas(c, &s, N_SAGAS);
    for (size_t i = 0; i < s.n; i++)
        e2e_rec_wait(h, s.text[i], "b", "action", 1, 10000);

    e2e_stop(a, 20000); /* exit 0, clean log */
    uint64_t t0 = e2e_now_ms();
    assert_int_equal(e2e_log_count(a, "event=lease.released", "sagas=3"), 1);
    assert_int_equal(e2e_sql_int(h, NULL, "SELECT count(*) FROM sagas WHERE owner = 'coord-a'"), 0);
    e2e_log_wait(b, "event=saga.resumed", NULL, N_SAGAS, 8000);
    assert_true(e2e_now_ms() - t0 < 6500);
    check_completed_once(h, c, &s);
    e2e_finish(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_kill9_restart_same_id, e2e_teardown),
        cmocka_unit_test_teardown(test_takeover_after_lease, e2e_teardown),
        cmocka_unit_test_teardown(test_participant_crash, e2e_teardown),
        cmocka_unit_test_teardown(test_participant_kill9, e2e_teardown),
        cmocka_unit_test_teardown(test_participant_frozen, e2e_teardown),
        cmocka_unit_test_teardown(test_sigterm_hands_over, e2e_teardown),
    };
    e2e_server_url();
    return cmocka_run_group_tests_name("e2e_recovery", tests, NULL, NULL);
}
