/* End to end, one sagad and testpeers run sagas of every shape and mode to
 * their end; see README.md. Talks to sagad only through the SDK. */
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

#define SETTLE_MS 20000

struct world {
    struct e2e *h;
    struct e2e_proc *sagad;
    saga_client_t *c;
};

/* A coordinator and a client; participants are the test's. */
static struct world world_begin(void **state, const char *name)
{
    struct world w = {0};
    w.h = e2e_begin(state, name, 0);
    w.sagad = e2e_sagad(w.h, NULL);
    w.c = e2e_client(w.h, w.sagad->addr);
    return w;
}

static void world_end(struct world *w)
{
    e2e_finish(w->h);
}

static struct e2e_proc *peer(struct world *w, const char *service, const char *const on[])
{
    struct e2e_peer_opts o = {.coordinators = w->sagad->addr, .service = service};
    for (size_t i = 0; on[i] != NULL && i < 15; i++)
        o.on[i] = on[i];
    return e2e_peer(w->h, &o);
}

static void test_completes(void **state)
{
    struct world w = world_begin(state, "completes");
    struct e2e_proc *inv = peer(&w, "inventory", (const char *[]){"reserve=ok", NULL});
    peer(&w, "payment", (const char *[]){"charge=ok", "ship=ok", NULL});
    e2e_define(w.c, "{\"name\": \"order\", \"version\": 1, \"steps\": ["
                    "{\"name\": \"reserve\", \"service\": \"inventory\", \"action\": \"reserve\"},"
                    "{\"name\": \"charge\", \"service\": \"payment\", \"action\": \"charge\"},"
                    "{\"name\": \"ship\", \"service\": \"payment\", \"action\": \"ship\"}]}");
    uint8_t id[16];
    char text[37];
    const char *input = "{\"order\": 7}";
    assert_int_equal(e2e_start(w.c, "order", input, NULL, id, text), 0);
    saga_result_t *r = e2e_expect(w.c, id, SAGA_STATUS_COMPLETED, SETTLE_MS);
    const saga_info_t *info = saga_result_info(r);
    assert_string_equal(info->definition, "order");
    assert_int_equal(info->n_steps, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(info->steps[i].status, SAGA_STEP_SUCCEEDED);
        assert_int_equal(info->steps[i].attempts, 1);
        assert_int_equal(info->steps[i].compensate_attempts, 0);
        /* testpeer answers with the input it got */
        assert_int_equal(info->steps[i].output_len, strlen(input));
        assert_memory_equal(info->steps[i].output, input, strlen(input));
    }
    assert_int_equal(info->input_len, strlen(input));
    assert_true(e2e_event(info, "saga.completed", NULL, 0) > 0);
    saga_result_free(&r);

    struct e2e_rec *rec;
    size_t n = e2e_records(w.h, NULL, &rec);
    assert_int_equal(n, 3);
    assert_string_equal(rec[0].step, "reserve");
    assert_string_equal(rec[1].step, "charge");
    assert_string_equal(rec[2].step, "ship");
    assert_int_equal(e2e_rec_count(rec, n, text, NULL, "action"), 3);
    assert_string_equal(rec[0].instance, inv->instance);
    e2e_rec_check_keys(rec, n, text);
    free(rec);

    /* It is listed, and Get says the same. */
    saga_result_t *l = NULL;
    assert_int_equal(saga_client_list_sync(w.c, &(saga_list_filter_t){.definition = "order"}, &l),
                     0);
    assert_int_equal(saga_result_list_count(l), 1);
    assert_memory_equal(saga_result_list_at(l, 0)->saga_id, id, 16);
    assert_int_equal(saga_result_list_at(l, 0)->status, SAGA_STATUS_COMPLETED);
    saga_result_free(&l);
    assert_int_equal(saga_client_get_sync(w.c, id, &l), 0);
    assert_int_equal(saga_result_info(l)->status, SAGA_STATUS_COMPLETED);
    saga_result_free(&l);
    world_end(&w);
}

static void test_compensates_in_reverse(void **state)
{
    struct world w = world_begin(state, "reverse");
    peer(&w, "svc", (const char *[]){"a=ok", "b=ok", "c=ok", "d=fail", NULL});
    e2e_define(w.c, "{\"name\": \"chain\", \"version\": 1, \"steps\": ["
                    "{\"name\": \"a\", \"service\": \"svc\", \"action\": \"a\"},"
                    "{\"name\": \"b\", \"service\": \"svc\", \"action\": \"b\"},"
                    "{\"name\": \"c\", \"service\": \"svc\", \"action\": \"c\"},"
                    "{\"name\": \"d\", \"service\": \"svc\", \"action\": \"d\"}]}");
    uint8_t id[16];
    char text[37];
    e2e_start(w.c, "chain", "{}", NULL, id, text);
    saga_result_t *r = e2e_expect(w.c, id, SAGA_STATUS_COMPENSATED, SETTLE_MS);
    const saga_info_t *info = saga_result_info(r);
    assert_non_null(strstr(info->error, "d"));
    assert_int_equal(e2e_step(info, "a")->status, SAGA_STEP_COMPENSATED);
    assert_int_equal(e2e_step(info, "b")->status, SAGA_STEP_COMPENSATED);
    assert_int_equal(e2e_step(info, "c")->status, SAGA_STEP_COMPENSATED);
    assert_int_equal(e2e_step(info, "d")->status, SAGA_STEP_FAILED);
    assert_non_null(strstr(e2e_step(info, "d")->error, "testpeer: fail"));
    saga_result_free(&r);

    /* The participant saw a, b, c, d forward, then c, b, a back; d (refused) is left alone. */
    struct e2e_rec *rec;
    size_t n = e2e_records(w.h, NULL, &rec);
    static const char *const want[][2] = {
        {"a", "action"},     {"b", "action"},     {"c", "action"},    {"d", "action"},
        {"c", "compensate"}, {"b", "compensate"}, {"a", "compensate"}};
    assert_int_equal(n, 7);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(rec[i].step, want[i][0]);
        assert_string_equal(rec[i].op, want[i][1]);
        assert_int_equal(rec[i].attempt, 1);
    }
    e2e_rec_check_keys(rec, n, text);
    free(rec);
    world_end(&w);
}

/* a, then b and c side by side, then d. */
static const char *fan_def(char *buf, size_t size, const char *name, const char *d_action)
{
    snprintf(buf, size,
             "{\"name\": \"%s\", \"version\": 1, \"steps\": ["
             "{\"name\": \"a\", \"service\": \"svc\", \"action\": \"a\"},"
             "{\"name\": \"b\", \"service\": \"svc\", \"action\": \"b\", \"after\": [\"a\"]},"
             "{\"name\": \"c\", \"service\": \"svc\", \"action\": \"c\", \"after\": [\"a\"]},"
             "{\"name\": \"d\", \"service\": \"svc\", \"action\": \"%s\", "
             "\"after\": [\"b\", \"c\"]}]}",
             name, d_action);
    return buf;
}

static void test_parallel(void **state)
{
    char def[1024];
    struct world w = world_begin(state, "parallel");
    peer(&w, "svc",
         (const char *[]){"a=ok", "b=delay:300", "c=delay:300", "join=ok", "join-fail=fail", NULL});
    e2e_define(w.c, fan_def(def, sizeof(def), "fan", "join"));
    e2e_define(w.c, fan_def(def, sizeof(def), "fan-fail", "join-fail"));

    uint8_t id[16];
    char text[37];
    e2e_start(w.c, "fan", "{}", NULL, id, text);
    saga_result_t *r = e2e_expect(w.c, id, SAGA_STATUS_COMPLETED, SETTLE_MS);
    const saga_info_t *info = saga_result_info(r);
    /* b and c were both sent before either answered. */
    long db = e2e_event(info, "step.dispatched", "b", 0);
    long dc = e2e_event(info, "step.dispatched", "c", 0);
    long sb = e2e_event(info, "step.succeeded", "b", 0);
    long sc = e2e_event(info, "step.succeeded", "c", 0);
    long dd = e2e_event(info, "step.dispatched", "d", 0);
    assert_true(db > 0 && dc > 0 && sb > 0 && sc > 0 && dd > 0);
    assert_true(db < sb && db < sc && dc < sb && dc < sc);
    assert_true(dd > sb && dd > sc);
    saga_result_free(&r);

    /* The same shape failing at d: b and c are undone side by side, then a. */
    uint8_t id2[16];
    char text2[37];
    e2e_start(w.c, "fan-fail", "{}", NULL, id2, text2);
    r = e2e_expect(w.c, id2, SAGA_STATUS_COMPENSATED, SETTLE_MS);
    info = saga_result_info(r);
    long cb = e2e_event(info, "step.compensating", "b", 0);
    long cc = e2e_event(info, "step.compensating", "c", 0);
    long okb = e2e_event(info, "step.compensated", "b", 0);
    long okc = e2e_event(info, "step.compensated", "c", 0);
    long ca = e2e_event(info, "step.compensating", "a", 0);
    assert_true(cb > 0 && cc > 0 && okb > 0 && okc > 0 && ca > 0);
    assert_true(cb < okb && cb < okc && cc < okb && cc < okc);
    assert_true(ca > okb && ca > okc);
    assert_int_equal(e2e_step(info, "a")->status, SAGA_STEP_COMPENSATED);
    assert_int_equal(e2e_step(info, "d")->status, SAGA_STEP_FAILED);
    saga_result_free(&r);

    struct e2e_rec *rec;
    size_t n = e2e_records(w.h, NULL, &rec);
    long ra = e2e_rec_find(rec, n, 0, text2, "a", "compensate");
    long rb = e2e_rec_find(rec, n, 0, text2, "b", "compensate");
    long rc = e2e_rec_find(rec, n, 0, text2, "c", "compensate");
    assert_true(ra > rb && ra > rc && rb > 0 && rc > 0);
    assert_int_equal(e2e_rec_count(rec, n, text2, NULL, "compensate"), 3);
    assert_int_equal(e2e_rec_count(rec, n, text, NULL, "compensate"), 0);
    e2e_rec_check_keys(rec, n, NULL);
    free(rec);
    world_end(&w);
}

static void test_retry_then_success(void **state)
{
    struct world w = world_begin(state, "retry");
    peer(&w, "svc", (const char *[]){"first=ok", "flaky=retry:2", "worse=retry:5", NULL});
    e2e_define(w.c, "{\"name\": \"flaky\", \"version\": 1, \"steps\": ["
                    "{\"name\": \"first\", \"service\": \"svc\", \"action\": \"first\"},"
                    "{\"name\": \"flaky\", \"service\": \"svc\", \"action\": \"flaky\", "
                    "\"retry\": {\"max_attempts\": 3, \"backoff\": \"50ms\"}}]}");
    e2e_define(w.c, "{\"name\": \"worse\", \"version\": 1, \"steps\": ["
                    "{\"name\": \"first\", \"service\": \"svc\", \"action\": \"first\"},"
                    "{\"name\": \"worse\", \"service\": \"svc\", \"action\": \"worse\", "
                    "\"retry\": {\"max_attempts\": 3, \"backoff\": \"50ms\"}}]}");
    uint8_t id[16], id2[16];
    char text[37], text2[37];
    e2e_start(w.c, "flaky", "{}", NULL, id, text);
    e2e_start(w.c, "worse", "{}", NULL, id2, text2);

    /* Two RETRYs, then OK on the third attempt. */
    saga_result_t *r = e2e_expect(w.c, id, SAGA_STATUS_COMPLETED, SETTLE_MS);
    assert_int_equal(e2e_step(saga_result_info(r), "flaky")->attempts, 3);
    assert_int_equal(e2e_step(saga_result_info(r), "flaky")->status, SAGA_STEP_SUCCEEDED);
    saga_result_free(&r);

    /* Five RETRYs are more than three attempts: the step fails, the saga compensates. */
    r = e2e_expect(w.c, id2, SAGA_STATUS_COMPENSATED, SETTLE_MS);
    assert_int_equal(e2e_step(saga_result_info(r), "worse")->attempts, 3);
    assert_int_equal(e2e_step(saga_result_info(r), "first")->status, SAGA_STEP_COMPENSATED);
    saga_result_free(&r);

    struct e2e_rec *rec;
    size_t n = e2e_records(w.h, NULL, &rec);
    assert_int_equal(e2e_rec_count(rec, n, text, "flaky", "action"), 3);
    assert_int_equal(e2e_rec_count(rec, n, text2, "worse", "action"), 3);
    for (unsigned a = 1; a <= 3; a++) {
        long i = e2e_rec_find(rec, n, 0, text, "flaky", "action");
        for (unsigned k = 1; k < a; k++)
            i = e2e_rec_find(rec, n, (size_t)i + 1, text, "flaky", "action");
        assert_int_equal(rec[i].attempt, a);
    }
    e2e_rec_check_keys(rec, n, NULL);
    free(rec);
    world_end(&w);
}

static void test_timeout_then_retry(void **state)
{
    struct world w = world_begin(state, "timeout");
    /* Each call takes 700 ms against a 400 ms step timeout: the first attempt
     * times out; the second, sent while the first call still runs, gets its
     * answer in time (the SDK answers the newest delivery). */
    peer(&w, "svc", (const char *[]){"slow=delay:700", NULL});
    e2e_define(w.c, "{\"name\": \"slow\", \"version\": 1, \"steps\": ["
                    "{\"name\": \"slow\", \"service\": \"svc\", \"action\": \"slow\", "
                    "\"timeout\": \"400ms\", \"retry\": {\"max_attempts\": 6, \"backoff\": "
                    "\"100ms\", \"max_backoff\": \"200ms\"}}]}");
    uint8_t id[16];
    char text[37];
    e2e_start(w.c, "slow", "{}", NULL, id, text);
    saga_result_t *r = e2e_expect(w.c, id, SAGA_STATUS_COMPLETED, SETTLE_MS);
    const saga_info_t *info = saga_result_info(r);
    const saga_step_info_t *st = e2e_step(info, "slow");
    assert_true(st->attempts >= 2);
    assert_int_equal(st->status, SAGA_STEP_SUCCEEDED);
    long d1 = e2e_event(info, "step.dispatched", "slow", 0);
    long d2 = e2e_event(info, "step.dispatched", "slow", (size_t)d1 + 1);
    assert_true(d1 >= 0 && d2 > d1);
    assert_int_equal(info->events[d2].attempt, 2);
    saga_result_free(&r);

    struct e2e_rec *rec;
    size_t n = e2e_records(w.h, NULL, &rec);
    assert_true(n >= 1);
    e2e_rec_check_keys(rec, n, text);
    free(rec);
    world_end(&w);
}

static void test_hang_compensates(void **state)
{
    struct world w = world_begin(state, "hang");
    peer(&w, "svc", (const char *[]){"a=ok", "b=hang", "b.compensate=ok", NULL});
    e2e_define(w.c, "{\"name\": \"hang\", \"version\": 1, \"steps\": ["
                    "{\"name\": \"a\", \"service\": \"svc\", \"action\": \"a\"},"
                    "{\"name\": \"b\", \"service\": \"svc\", \"action\": \"b\", "
                    "\"timeout\": \"300ms\", \"retry\": {\"max_attempts\": 2, \"backoff\": "
                    "\"50ms\"}}]}");
    uint8_t id[16];
    char text[37];
    e2e_start(w.c, "hang", "{}", NULL, id, text);
    saga_result_t *r = e2e_expect(w.c, id, SAGA_STATUS_COMPENSATED, SETTLE_MS);
    const saga_info_t *info = saga_result_info(r);
    /* b never answered: it may have run, so it is compensated too. */
    assert_int_equal(e2e_step(info, "b")->attempts, 2);
    assert_int_equal(e2e_step(info, "b")->status, SAGA_STEP_COMPENSATED);
    assert_int_equal(e2e_step(info, "a")->status, SAGA_STEP_COMPENSATED);
    saga_result_free(&r);

    struct e2e_rec *rec;
    size_t n = e2e_records(w.h, NULL, &rec);
    long cb = e2e_rec_find(rec, n, 0, text, "b", "compensate");
    long ca = e2e_rec_find(rec, n, 0, text, "a", "compensate");
    assert_true(cb > 0 && ca > cb);
    assert_true(e2e_rec_count(rec, n, text, "b", "action") >= 1);
    e2e_rec_check_keys(rec, n, text);
    free(rec);
    world_end(&w);
}

static const char *pivot_def(char *buf, size_t size, const char *name, const char *pivot_action,
                             const char *r_action)
{
    snprintf(buf, size,
             "{\"name\": \"%s\", \"version\": 1, \"steps\": ["
             "{\"name\": \"a\", \"service\": \"svc\", \"action\": \"a\"},"
             "{\"name\": \"p\", \"service\": \"svc\", \"action\": \"%s\", \"kind\": \"pivot\"},"
             "{\"name\": \"r\", \"service\": \"svc\", \"action\": \"%s\", \"kind\": "
             "\"retriable\", \"retry\": {\"backoff\": \"50ms\", \"max_backoff\": \"100ms\"}}]}",
             name, pivot_action, r_action);
    return buf;
}

static void test_pivot_and_retriable(void **state)
{
    char def[1024];
    struct world w = world_begin(state, "pivot");
    peer(&w, "svc",
         (const char *[]){"a=ok", "p=ok", "p-fail=fail", "r=retry:4", "r-fail=fail", NULL});
    e2e_define(w.c, pivot_def(def, sizeof(def), "forward", "p", "r"));
    e2e_define(w.c, pivot_def(def, sizeof(def), "refused", "p-fail", "r"));
    e2e_define(w.c, pivot_def(def, sizeof(def), "late", "p", "r-fail"));
    uint8_t fwd[16], ref[16], late[16];
    char fwd_t[37], ref_t[37], late_t[37];
    e2e_start(w.c, "forward", "{}", NULL, fwd, fwd_t);
    e2e_start(w.c, "refused", "{}", NULL, ref, ref_t);
    e2e_start(w.c, "late", "{}", NULL, late, late_t);

    /* After the pivot, a retriable step is retried beyond the default three attempts. */
    saga_result_t *r = e2e_expect(w.c, fwd, SAGA_STATUS_COMPLETED, SETTLE_MS);
    assert_int_equal(e2e_step(saga_result_info(r), "r")->attempts, 5);
    saga_result_free(&r);

    /* A refused pivot compensates what ran before it; the retriable step never runs. */
    r = e2e_expect(w.c, ref, SAGA_STATUS_COMPENSATED, SETTLE_MS);
    assert_int_equal(e2e_step(saga_result_info(r), "a")->status, SAGA_STEP_COMPENSATED);
    assert_int_equal(e2e_step(saga_result_info(r), "p")->status, SAGA_STEP_FAILED);
    assert_int_equal(e2e_step(saga_result_info(r), "r")->status, SAGA_STEP_SKIPPED);
    saga_result_free(&r);

    /* A refusal past the pivot cannot go back: STUCK, and an operator resolves it. */
    r = e2e_expect(w.c, late, SAGA_STATUS_STUCK, SETTLE_MS);
    assert_non_null(strstr(saga_result_info(r)->error, "pivot"));
    assert_int_equal(e2e_step(saga_result_info(r), "a")->status, SAGA_STEP_SUCCEEDED);
    saga_result_free(&r);
    assert_int_equal(saga_client_abort_sync(w.c, late, "no", &r), SAGA_ESTATE);
    saga_result_free(&r);
    assert_int_equal(
        saga_client_resolve_sync(w.c, late, SAGA_STATUS_COMPLETED, "shipped by hand", &r), 0);
    assert_int_equal(saga_result_info(r)->status, SAGA_STATUS_COMPLETED);
    saga_result_free(&r);

    struct e2e_rec *rec;
    size_t n = e2e_records(w.h, NULL, &rec);
    assert_int_equal(e2e_rec_count(rec, n, fwd_t, NULL, "compensate"), 0);
    assert_int_equal(e2e_rec_count(rec, n, ref_t, "a", "compensate"), 1);
    assert_int_equal(e2e_rec_count(rec, n, ref_t, "p", "compensate"), 0);
    assert_int_equal(e2e_rec_count(rec, n, ref_t, "r", NULL), 0);
    assert_int_equal(e2e_rec_count(rec, n, late_t, NULL, "compensate"), 0);
    e2e_rec_check_keys(rec, n, NULL);
    free(rec);
    world_end(&w);
}

static const char *tpc_def(char *buf, size_t size, const char *name, const char *y_action)
{
    snprintf(buf, size,
             "{\"name\": \"%s\", \"version\": 1, \"mode\": \"2pc\", \"steps\": ["
             "{\"name\": \"x\", \"service\": \"bank\", \"action\": \"x\"},"
             "{\"name\": \"y\", \"service\": \"bank\", \"action\": \"%s\", \"after\": []}]}",
             name, y_action);
    return buf;
}

static void test_two_phase(void **state)
{
    char def[1024];
    struct world w = world_begin(state, "twophase");
    peer(&w, "bank", (const char *[]){"x=ok", "y=ok", "y-no=ok", "y-no.prepare=fail", NULL});
    e2e_define(w.c, tpc_def(def, sizeof(def), "transfer", "y"));
    e2e_define(w.c, tpc_def(def, sizeof(def), "refused", "y-no"));
    uint8_t ok[16], no[16];
    char ok_t[37], no_t[37];
    e2e_start(w.c, "transfer", "{}", NULL, ok, ok_t);
    e2e_start(w.c, "refused", "{}", NULL, no, no_t);

    saga_result_t *r = e2e_expect(w.c, ok, SAGA_STATUS_COMMITTED, SETTLE_MS);
    assert_int_equal(saga_result_info(r)->mode, SAGA_MODE_2PC);
    assert_int_equal(e2e_step(saga_result_info(r), "x")->status, SAGA_STEP_COMMITTED);
    assert_int_equal(e2e_step(saga_result_info(r), "y")->status, SAGA_STEP_COMMITTED);
    saga_result_free(&r);

    r = e2e_expect(w.c, no, SAGA_STATUS_ABORTED, SETTLE_MS);
    assert_int_equal(e2e_step(saga_result_info(r), "x")->status, SAGA_STEP_ABORTED);
    saga_result_free(&r);

    struct e2e_rec *rec;
    size_t n = e2e_records(w.h, NULL, &rec);
    /* Commit: every commit after every prepare. */
    assert_int_equal(e2e_rec_count(rec, n, ok_t, NULL, "prepare"), 2);
    assert_int_equal(e2e_rec_count(rec, n, ok_t, NULL, "commit"), 2);
    assert_int_equal(e2e_rec_count(rec, n, ok_t, NULL, "abort"), 0);
    long first_commit = e2e_rec_find(rec, n, 0, ok_t, NULL, "commit");
    assert_int_equal(e2e_rec_find(rec, n, (size_t)first_commit, ok_t, NULL, "prepare"), -1);
    /* Abort: nothing is committed, x's prepared work is aborted after its prepare. */
    assert_int_equal(e2e_rec_count(rec, n, no_t, NULL, "commit"), 0);
    long px = e2e_rec_find(rec, n, 0, no_t, "x", "prepare");
    long ax = e2e_rec_find(rec, n, 0, no_t, "x", "abort");
    assert_true(px >= 0 && ax > px);
    e2e_rec_check_keys(rec, n, NULL);
    free(rec);
    world_end(&w);
}

static void test_idempotent_start(void **state)
{
    struct world w = world_begin(state, "idempotent");
    peer(&w, "svc", (const char *[]){"once=delay:200", NULL});
    e2e_define(w.c, "{\"name\": \"once\", \"version\": 1, \"steps\": ["
                    "{\"name\": \"once\", \"service\": \"svc\", \"action\": \"once\"}]}");
    uint8_t a[16], b[16], c[16], d[16];
    char at[37], dt[37];
    assert_int_equal(e2e_start(w.c, "once", "{\"n\": 1}", "order-42", a, at), 0);
    /* Same key while it runs, and with another input: the same saga. */
    assert_int_equal(e2e_start(w.c, "once", "{\"n\": 1}", "order-42", b, NULL), 1);
    assert_int_equal(e2e_start(w.c, "once", "{\"n\": 2}", "order-42", c, NULL), 1);
    assert_memory_equal(a, b, 16);
    assert_memory_equal(a, c, 16);
    saga_result_free(&(saga_result_t *){e2e_expect(w.c, a, SAGA_STATUS_COMPLETED, SETTLE_MS)});
    /* And after it finished. */
    assert_int_equal(e2e_start(w.c, "once", "{}", "order-42", b, NULL), 1);
    assert_memory_equal(a, b, 16);
    /* Another key is another saga. */
    assert_int_equal(e2e_start(w.c, "once", "{}", "order-43", d, dt), 0);
    assert_memory_not_equal(a, d, 16);
    saga_result_free(&(saga_result_t *){e2e_expect(w.c, d, SAGA_STATUS_COMPLETED, SETTLE_MS)});

    saga_result_t *l = NULL;
    assert_int_equal(saga_client_list_sync(w.c, &(saga_list_filter_t){.definition = "once"}, &l),
                     0);
    assert_int_equal(saga_result_list_count(l), 2);
    saga_result_free(&l);
    struct e2e_rec *rec;
    size_t n = e2e_records(w.h, NULL, &rec);
    assert_int_equal(e2e_rec_count(rec, n, at, NULL, NULL), 1);
    assert_int_equal(e2e_rec_count(rec, n, dt, NULL, NULL), 1);
    free(rec);
    world_end(&w);
}

struct watched {
    size_t n;
    uint64_t last_seq;
    int gaps;
    char last_kind[64];
};

static void on_event(saga_client_t *c, const saga_event_t *ev, void *data)
{
    struct watched *w = data;
    (void)c;
    if (ev->seq != w->last_seq + 1)
        w->gaps++;
    w->last_seq = ev->seq;
    w->n++;
    snprintf(w->last_kind, sizeof(w->last_kind), "%s", ev->kind);
}

static void test_watch_wait_services(void **state)
{
    struct world w = world_begin(state, "watch");
    struct e2e_proc *p = peer(&w, "svc", (const char *[]){"a=delay:400", "b=ok", NULL});
    e2e_define(w.c, "{\"name\": \"two\", \"version\": 1, \"steps\": ["
                    "{\"name\": \"a\", \"service\": \"svc\", \"action\": \"a\"},"
                    "{\"name\": \"b\", \"service\": \"svc\", \"action\": \"b\"}]}");

    /* Services: the testpeer, on this coordinator, with its actions. */
    saga_result_t *r = NULL;
    assert_int_equal(saga_client_services_sync(w.c, &r), 0);
    assert_int_equal(saga_result_service_count(r), 1);
    const saga_service_info_t *svc = saga_result_service_at(r, 0);
    assert_string_equal(svc->name, "svc");
    assert_int_equal(svc->n_instances, 1);
    assert_string_equal(svc->instances[0].instance_id, p->instance);
    assert_string_equal(svc->instances[0].coordinator_id, w.sagad->instance);
    assert_int_equal(svc->instances[0].n_actions, 2);
    saga_result_free(&r);

    /* A short Wait on a running saga answers in time, with the state then. */
    uint8_t id[16];
    e2e_start(w.c, "two", "{}", NULL, id, NULL);
    uint64_t t0 = e2e_now_ms();
    assert_int_equal(saga_client_wait_sync(w.c, id, 100, &r), 0);
    assert_true(e2e_now_ms() - t0 < 1000);
    assert_int_equal(saga_result_info(r)->status, SAGA_STATUS_RUNNING);
    saga_result_free(&r);

    /* Watch: every event once, in order, then the final state. */
    struct watched seen = {0};
    assert_int_equal(saga_client_watch_sync(w.c, id, on_event, &seen, &r), 0);
    assert_int_equal(saga_result_info(r)->status, SAGA_STATUS_COMPLETED);
    assert_int_equal(seen.gaps, 0);
    assert_int_equal(seen.n, saga_result_info(r)->n_events);
    assert_string_equal(seen.last_kind, "saga.completed");
    saga_result_free(&r);
    /* Watching a finished saga replays its timeline. */
    struct watched again = {0};
    assert_int_equal(saga_client_watch_sync(w.c, id, on_event, &again, &r), 0);
    assert_int_equal(again.n, seen.n);
    saga_result_free(&r);
    world_end(&w);
}

static void test_deadline(void **state)
{
    struct world w = world_begin(state, "deadline");
    peer(&w, "svc", (const char *[]){"a=ok", "b=delay:2000", NULL});
    e2e_define(w.c, "{\"name\": \"late\", \"version\": 1, \"timeout\": \"800ms\", \"steps\": ["
                    "{\"name\": \"a\", \"service\": \"svc\", \"action\": \"a\"},"
                    "{\"name\": \"b\", \"service\": \"svc\", \"action\": \"b\", "
                    "\"timeout\": \"5s\"}]}");
    uint8_t id[16];
    char text[37];
    e2e_start(w.c, "late", "{}", NULL, id, text);
    saga_result_t *r = e2e_expect(w.c, id, SAGA_STATUS_COMPENSATED, SETTLE_MS);
    const saga_info_t *info = saga_result_info(r);
    assert_non_null(strstr(info->error, "deadline"));
    assert_true(info->deadline_ms > 0);
    /* b was out when the deadline hit: its late OK is taken, then undone. */
    assert_int_equal(e2e_step(info, "b")->status, SAGA_STEP_COMPENSATED);
    assert_int_equal(e2e_step(info, "a")->status, SAGA_STEP_COMPENSATED);
    assert_int_equal(e2e_step(info, "b")->attempts, 1);
    saga_result_free(&r);
    struct e2e_rec *rec;
    size_t n = e2e_records(w.h, NULL, &rec);
    long cb = e2e_rec_find(rec, n, 0, text, "b", "compensate");
    long ca = e2e_rec_find(rec, n, 0, text, "a", "compensate");
    assert_true(cb > 0 && ca > cb);
    free(rec);
    world_end(&w);
}

#define MANY 40

static void test_many(void **state)
{
    struct world w = world_begin(state, "many");
    peer(&w, "inventory", (const char *[]){"reserve=ok", NULL});
    peer(&w, "payment", (const char *[]){"charge=ok", "ship=ok", NULL});
    e2e_define(w.c, "{\"name\": \"order\", \"version\": 1, \"steps\": ["
                    "{\"name\": \"reserve\", \"service\": \"inventory\", \"action\": \"reserve\"},"
                    "{\"name\": \"charge\", \"service\": \"payment\", \"action\": \"charge\"},"
                    "{\"name\": \"ship\", \"service\": \"payment\", \"action\": \"ship\"}]}");
    uint8_t ids[MANY][16];
    char texts[MANY][37];
    for (size_t i = 0; i < MANY; i++) {
        char input[32];
        snprintf(input, sizeof(input), "{\"order\": %zu}", i);
        e2e_start(w.c, "order", input, NULL, ids[i], texts[i]);
    }
    for (size_t i = 0; i < MANY; i++)
        saga_result_free(
            &(saga_result_t *){e2e_expect(w.c, ids[i], SAGA_STATUS_COMPLETED, SETTLE_MS)});
    struct e2e_rec *rec;
    size_t n = e2e_records(w.h, NULL, &rec);
    assert_int_equal(n, 3 * MANY);
    for (size_t i = 0; i < MANY; i++) {
        assert_int_equal(e2e_rec_count(rec, n, texts[i], "reserve", "action"), 1);
        assert_int_equal(e2e_rec_count(rec, n, texts[i], "charge", "action"), 1);
        assert_int_equal(e2e_rec_count(rec, n, texts[i], "ship", "action"), 1);
    }
    e2e_rec_check_keys(rec, n, NULL);
    free(rec);
    saga_result_t *l = NULL;
    assert_int_equal(
        saga_client_list_sync(
            w.c, &(saga_list_filter_t){.status = SAGA_STATUS_COMPLETED, .limit = MANY + 10}, &l),
        0);
    assert_int_equal(saga_result_list_count(l), MANY);
    saga_result_free(&l);
    world_end(&w);
}

/* A participant that takes one command at a time: the others wait at the
 * coordinator (not at the participant) and go out as it frees up. */
static void test_max_in_flight(void **state)
{
    struct world w = world_begin(state, "inflight");
    struct e2e_peer_opts o = {.coordinators = w.sagad->addr,
                              .service = "svc",
                              .on = {"one=delay:150"},
                              .extra = {"--max-in-flight", "1"}};
    e2e_peer(w.h, &o);
    e2e_define(w.c, "{\"name\": \"one\", \"version\": 1, \"steps\": ["
                    "{\"name\": \"one\", \"service\": \"svc\", \"action\": \"one\", "
                    "\"timeout\": \"5s\"}]}");
    uint8_t ids[6][16];
    char texts[6][37];
    for (size_t i = 0; i < 6; i++)
        e2e_start(w.c, "one", "{}", NULL, ids[i], texts[i]);
    saga_result_t *r = NULL;
    assert_int_equal(saga_client_services_sync(w.c, &r), 0);
    assert_true(saga_result_service_at(r, 0)->instances[0].in_flight <= 1);
    assert_int_equal(saga_result_service_at(r, 0)->instances[0].max_in_flight, 1);
    saga_result_free(&r);
    for (size_t i = 0; i < 6; i++) {
        r = e2e_expect(w.c, ids[i], SAGA_STATUS_COMPLETED, SETTLE_MS);
        /* never refused by the participant as busy: sent once each */
        assert_int_equal(e2e_step(saga_result_info(r), "one")->attempts, 1);
        saga_result_free(&r);
    }
    struct e2e_rec *rec;
    size_t n = e2e_records(w.h, NULL, &rec);
    assert_int_equal(n, 6);
    free(rec);
    world_end(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_completes, e2e_teardown),
        cmocka_unit_test_teardown(test_compensates_in_reverse, e2e_teardown),
        cmocka_unit_test_teardown(test_parallel, e2e_teardown),
        cmocka_unit_test_teardown(test_retry_then_success, e2e_teardown),
        cmocka_unit_test_teardown(test_timeout_then_retry, e2e_teardown),
        cmocka_unit_test_teardown(test_hang_compensates, e2e_teardown),
        cmocka_unit_test_teardown(test_pivot_and_retriable, e2e_teardown),
        cmocka_unit_test_teardown(test_two_phase, e2e_teardown),
        cmocka_unit_test_teardown(test_idempotent_start, e2e_teardown),
        cmocka_unit_test_teardown(test_watch_wait_services, e2e_teardown),
        cmocka_unit_test_teardown(test_deadline, e2e_teardown),
        cmocka_unit_test_teardown(test_many, e2e_teardown),
        cmocka_unit_test_teardown(test_max_in_flight, e2e_teardown),
    };
    e2e_server_url();
    return cmocka_run_group_tests_name("e2e_saga", tests, NULL, NULL);
}
