/* Leases between coordinators: two stores claiming expired sagas at once never
 * take the same saga, the coordinator that lost a saga is fenced, renewal keeps
 * peers away, and a write extends a lease past its half-life. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "itest.h"
#include "saga/error.h"

static int group_setup(void **state)
{
    return itest_fx_group_setup(state, "lease");
}

static int setup(void **state)
{
    struct itest_fx *fx = *state;
    itest_fx_setup(state);
    /* Each test starts with no active saga left by another. */
    itest_sql_int(fx->url, "UPDATE sagas SET status = 3 WHERE status NOT IN (3, 4, 9, 10)", 0,
                  NULL);
    return 0;
}

static const struct store_create create = {
    .definition = "lease", .version = 1, .mode = DEF_MODE_SAGA, .n_steps = 2};

/* Creates n sagas through `s`; waits for them. */
static void create_sagas(struct itest_fx *fx, struct store *s, struct saga_id *ids, int n)
{
    struct itest_result *r = calloc((size_t)n, sizeof(*r));
    assert_non_null(r);
    uint64_t t = itest_now_ms();
    struct record rec[2] = {itest_rec_insert(SAGA_STATUS_RUNNING, t),
                            itest_rec_step(0, SAGA_STEP_RUNNING, 1, NULL, t)};
    for (int i = 0; i < n; i++) {
        itest_id(&ids[i]);
        assert_int_equal(store_write(s, &ids[i], 0, &create, rec, 2, itest_on_write, &r[i]), 0);
    }
    for (int i = 0; i < n; i++) {
        itest_wait(&fx->loop, &r[i].done, 1, 10000);
        assert_int_equal(r[i].status, 0);
    }
    free(r);
}

/* A claimer keeps several claims in flight until one comes back empty. */
struct claimer {
    struct store *s;
    int in_flight;
    int empty;
    int calls;
    size_t n;
    struct saga_id ids[1024];
    uint64_t epochs[1024];
};

static void on_claim(const struct store_claim *c, int status);

static void claim_more(struct claimer *cl)
{
    assert_int_equal(store_claim(cl->s, 7, STORE_CLAIM_EXPIRED, on_claim, cl), 0);
    cl->in_flight++;
}

static void on_claim(const struct store_claim *c, int status)
{
    struct claimer *cl = c->data;
    assert_int_equal(status, 0);
    cl->in_flight--;
    cl->calls++;
    for (size_t i = 0; i < c->n; i++) {
        assert_true(cl->n < 1024);
        cl->ids[cl->n] = c->sagas[i].snap.id;
        cl->epochs[cl->n++] = c->sagas[i].epoch;
        assert_int_equal(c->sagas[i].snap.n_steps, 2);
        assert_int_equal(c->sagas[i].snap.steps[0].status, SAGA_STEP_RUNNING);
    }
    if (c->n == 0)
        cl->empty = 1;
    else if (!cl->empty)
        claim_more(cl);
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static void test_concurrent_claims(void **state)
{
    struct itest_fx *fx = *state;
    enum { N = 300 };
    static struct saga_id ids[N];
    /* The dead coordinator: short leases, gone without releasing. */
    struct store_config short_lease = {.lease_ms = 200};
    struct store *dead = itest_store_open(&fx->loop, fx->url, "dead", &short_lease);
    create_sagas(fx, dead, ids, N);
    itest_store_close(&fx->loop, &dead);
    itest_sleep(&fx->loop, 400);

    static struct claimer a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.s = itest_store_open(&fx->loop, fx->url, "peer-a", NULL);
    b.s = itest_store_open(&fx->loop, fx->url, "peer-b", NULL);
    /* Four claims in flight each: eight statements racing for the rows. */
    for (int i = 0; i < 4; i++) {
        claim_more(&a);
        claim_more(&b);
    }
    while (a.in_flight || b.in_flight)
        uv_run(&fx->loop, UV_RUN_ONCE);

    assert_int_equal(a.n + b.n, N);
    assert_true(a.calls > 1 && b.calls > 1);
    static struct saga_id all[N];
    memcpy(all, a.ids, a.n * sizeof(all[0]));
    memcpy(all + a.n, b.ids, b.n * sizeof(all[0]));
    qsort(all, N, sizeof(all[0]), cmp_id);
    for (int i = 1; i < N; i++)
        assert_true(memcmp(&all[i - 1], &all[i], 16) != 0);
    for (size_t i = 0; i < a.n; i++)
        assert_int_equal(a.epochs[i], 2);
    for (size_t i = 0; i < b.n; i++)
        assert_int_equal(b.epochs[i], 2);
    assert_int_equal(itest_sql_int(fx->url,
                                   "SELECT count(*) FROM sagas WHERE owner = 'peer-a' AND epoch = 2"
                                   " AND status NOT IN (3, 4, 9, 10)",
                                   0, NULL),
                     (int64_t)a.n);

    /* The dead coordinator comes back with its old epoch: fenced. */
    dead = itest_store_open(&fx->loop, fx->url, "dead", NULL);
    struct record rec = itest_rec_step(0, SAGA_STEP_SUCCEEDED, 1, "late", itest_now_ms());
    struct itest_result r = {0};
    assert_int_equal(store_write(dead, &ids[0], 1, NULL, &rec, 1, itest_on_write, &r), 0);
    itest_wait(&fx->loop, &r.done, 1, 5000);
    assert_int_equal(r.status, SAGA_EFENCED);
    char text[37];
    store_id_format(&ids[0], text);
    const char *p[1] = {text};
    assert_int_equal(itest_sql_int(fx->url, "SELECT events FROM sagas WHERE id = $1", 1, p), 2);

    itest_store_close(&fx->loop, &dead);
    itest_store_close(&fx->loop, &a.s);
    itest_store_close(&fx->loop, &b.s);
}

struct claim_count {
    int done;
    int status;
    size_t n;
};

static void on_claim_count(const struct store_claim *c, int status)
{
    struct claim_count *o = c->data;
    o->done++;
    o->status = status;
    o->n = c->n;
}

static size_t claim_now(struct itest_fx *fx, struct store *s)
{
    struct claim_count o = {0};
    assert_int_equal(store_claim(s, 1000, STORE_CLAIM_EXPIRED, on_claim_count, &o), 0);
    itest_wait(&fx->loop, &o.done, 1, 5000);
    assert_int_equal(o.status, 0);
    return o.n;
}

static void test_renewal_keeps_peers_away(void **state)
{
    struct itest_fx *fx = *state;
    struct store_config cfg = {.lease_ms = 400};
    struct store *holder = itest_store_open(&fx->loop, fx->url, "holder", &cfg);
    struct store *peer = itest_store_open(&fx->loop, fx->url, "peer", NULL);
    struct saga_id ids[20];
    create_sagas(fx, holder, ids, 20);
    /* Renewing every 100 ms for over two lease lengths: nothing to claim. */
    for (int i = 0; i < 10; i++) {
        struct itest_count c = {0};
        assert_int_equal(store_renew(holder, ids, 20, itest_on_count, &c), 0);
        itest_wait(&fx->loop, &c.done, 1, 5000);
        assert_int_equal(c.status, 0);
        assert_int_equal(c.n, 20);
        assert_int_equal(claim_now(fx, peer), 0);
        itest_sleep(&fx->loop, 100);
    }
    /* Renewal stops: the leases run out and the peer takes all of them. */
    itest_sleep(&fx->loop, 500);
    assert_int_equal(claim_now(fx, peer), 20);
    /* The holder renews nothing now: the sagas are no longer its own. */
    struct itest_count c = {0};
    assert_int_equal(store_renew(holder, ids, 20, itest_on_count, &c), 0);
    itest_wait(&fx->loop, &c.done, 1, 5000);
    assert_int_equal(c.n, 0);
    itest_store_close(&fx->loop, &holder);
    itest_store_close(&fx->loop, &peer);
}

/* Only the sagas named are renewed: one the holder no longer names (it lost
 * track of it) runs out its lease and a peer claims it. Unknown ids and an
 * empty list renew nothing and fail nothing. */
static void test_renewal_names_its_sagas(void **state)
{
    struct itest_fx *fx = *state;
    struct store_config cfg = {.lease_ms = 400};
    struct store *holder = itest_store_open(&fx->loop, fx->url, "holder", &cfg);
    struct store *peer = itest_store_open(&fx->loop, fx->url, "peer", NULL);
    struct saga_id ids[12];
    create_sagas(fx, holder, ids, 10);
    itest_id(&ids[10]); /* never created */
    itest_id(&ids[11]);
    for (int i = 0; i < 8; i++) {
        itest_sleep(&fx->loop, 100);
        struct itest_count c = {0};
        /* The first six and the two unknown ones. */
        struct saga_id named[8];
        memcpy(named, ids, 6 * sizeof(ids[0]));
        named[6] = ids[10];
        named[7] = ids[11];
        assert_int_equal(store_renew(holder, named, 8, itest_on_count, &c), 0);
        itest_wait(&fx->loop, &c.done, 1, 5000);
        assert_int_equal(c.status, 0);
        assert_int_equal(c.n, 6);
    }
    /* Over 800 ms after the creates, just after a renewal: the four not named
     * have expired, the six named have most of a lease left. */
    assert_int_equal(claim_now(fx, peer), 4);
    struct itest_count c = {0};
    assert_int_equal(store_renew(holder, NULL, 0, itest_on_count, &c), 0);
    itest_wait(&fx->loop, &c.done, 1, 5000);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.n, 0);
    itest_store_close(&fx->loop, &holder);
    itest_store_close(&fx->loop, &peer);
}

static void test_write_extends_lease(void **state)
{
    struct itest_fx *fx = *state;
    struct store_config cfg = {.lease_ms = 1000};
    struct store *s = itest_store_open(&fx->loop, fx->url, "writer", &cfg);
    struct saga_id id;
    create_sagas(fx, s, &id, 1);
    char text[37];
    store_id_format(&id, text);
    const char *p[1] = {text};
    const char *left_ms = "SELECT (extract(epoch FROM lease_until - now()) * 1000)::int8"
                          " FROM sagas WHERE id = $1";
    /* In its first half a write leaves the lease alone (no index churn)... */
    int64_t before = itest_sql_int(fx->url, left_ms, 1, p);
    struct record rec = itest_rec_step(0, SAGA_STEP_WAITING, 2, NULL, itest_now_ms());
    struct itest_result r = {0};
    assert_int_equal(store_write(s, &id, 1, NULL, &rec, 1, itest_on_write, &r), 0);
    itest_wait(&fx->loop, &r.done, 1, 5000);
    assert_int_equal(r.status, 0);
    assert_true(itest_sql_int(fx->url, left_ms, 1, p) <= before);
    /* ...past it, the write extends the lease to a full length again. */
    itest_sleep(&fx->loop, 650);
    assert_true(itest_sql_int(fx->url, left_ms, 1, p) < 500);
    memset(&r, 0, sizeof(r));
    assert_int_equal(store_write(s, &id, 1, NULL, &rec, 1, itest_on_write, &r), 0);
    itest_wait(&fx->loop, &r.done, 1, 5000);
    assert_int_equal(r.status, 0);
    assert_true(itest_sql_int(fx->url, left_ms, 1, p) > 800);
    itest_store_close(&fx->loop, &s);
}

static void test_release_then_peer(void **state)
{
    struct itest_fx *fx = *state;
    struct store *a = itest_store_open(&fx->loop, fx->url, "leaving", NULL);
    struct store *b = itest_store_open(&fx->loop, fx->url, "staying", NULL);
    struct saga_id ids[5];
    create_sagas(fx, a, ids, 5);
    assert_int_equal(claim_now(fx, b), 0);
    struct itest_count c = {0};
    assert_int_equal(store_release(a, itest_on_count, &c), 0);
    itest_wait(&fx->loop, &c.done, 1, 5000);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.n, 5);
    /* Released leases are claimable at once. */
    assert_int_equal(claim_now(fx, b), 5);
    itest_store_close(&fx->loop, &a);
    itest_store_close(&fx->loop, &b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_concurrent_claims, setup, itest_fx_teardown),
        cmocka_unit_test_setup_teardown(test_renewal_keeps_peers_away, setup, itest_fx_teardown),
        cmocka_unit_test_setup_teardown(test_renewal_names_its_sagas, setup, itest_fx_teardown),
        cmocka_unit_test_setup_teardown(test_write_extends_lease, setup, itest_fx_teardown),
        cmocka_unit_test_setup_teardown(test_release_then_peer, setup, itest_fx_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, itest_fx_group_teardown);
}
