/* Group commit and its failure modes: many writes in one commit, a bad writer
 * failing alone without poisoning the next batch, fencing by owner and epoch,
 * per-saga order, the queue bound, and closing with writes pending. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "itest.h"
#include "saga/error.h"

static int group_setup(void **state)
{
    return itest_fx_group_setup(state, "batch");
}

static const struct store_create create = {
    .definition = "batch", .version = 1, .mode = DEF_MODE_SAGA, .n_steps = 3};

/* Starts a saga with three records: the insert and two dispatches. */
static void submit_create(struct store *s, const struct saga_id *id, struct itest_result *r,
                          saga_status_t status)
{
    uint64_t t = itest_now_ms();
    struct record rec[3] = {itest_rec_insert(status, t),
                            itest_rec_step(0, SAGA_STEP_RUNNING, 1, NULL, t),
                            itest_rec_step(1, SAGA_STEP_RUNNING, 1, NULL, t)};
    assert_int_equal(store_write(s, id, 0, &create, rec, 3, itest_on_write, r), 0);
}

static int64_t count_rows(struct itest_fx *fx, const char *sql, const struct saga_id *ids, size_t n)
{
    /* ids as a uuid[] literal */
    static char arr[160 * 1024];
    size_t len = 0;
    arr[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        char text[37];
        store_id_format(&ids[i], text);
        len += (size_t)snprintf(arr + len, sizeof(arr) - len, "%s%s", i ? "," : "", text);
        assert_true(len < sizeof(arr) - 40);
    }
    arr[len++] = '}';
    arr[len] = '\0';
    const char *params[1] = {arr};
    return itest_sql_int(fx->url, sql, 1, params);
}

static void test_many_records_one_commit(void **state)
{
    struct itest_fx *fx = *state;
    struct store_config cfg = {.pool_size = 1, .batch_writes = 1000};
    struct store *s = itest_store_open(&fx->loop, fx->url, "batcher", &cfg);
    enum { N = 400 };
    static struct saga_id ids[N];
    static struct itest_result r[N];
    struct store_stats before, after;
    store_get_stats(s, &before);
    int done = 0;
    for (int i = 0; i < N; i++) {
        itest_id(&ids[i]);
        memset(&r[i], 0, sizeof(r[i]));
        submit_create(s, &ids[i], &r[i], SAGA_STATUS_RUNNING);
    }
    /* Queued, not yet sent: nothing is durable before the commit. */
    for (int i = 0; i < N; i++)
        assert_int_equal(r[i].done, 0);
    while (done < N) {
        uv_run(&fx->loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < N; i++)
            done += r[i].done;
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(r[i].status, 0);
    store_get_stats(s, &after);
    /* 400 writes, 1200 records: one commit. */
    assert_int_equal(after.commits - before.commits, 1);
    assert_int_equal(after.writes - before.writes, N);
    assert_int_equal(after.records - before.records, 3 * N);
    /* The database agrees: every row came from one transaction. */
    assert_int_equal(
        count_rows(fx, "SELECT count(*) FROM saga_events WHERE saga_id = ANY($1)", ids, N), 3 * N);
    assert_int_equal(
        count_rows(fx, "SELECT count(DISTINCT xmin::text) FROM saga_events WHERE saga_id = ANY($1)",
                   ids, N),
        1);
    assert_int_equal(
        count_rows(fx, "SELECT count(DISTINCT xmin::text) FROM sagas WHERE id = ANY($1)", ids, N),
        1);
    itest_store_close(&fx->loop, &s);
}

static void test_default_pool_groups(void **state)
{
    struct itest_fx *fx = *state;
    struct store *s = itest_store_open(&fx->loop, fx->url, "batcher", NULL);
    enum { N = 2000 };
    static struct saga_id ids[N];
    static struct itest_result r[N];
    struct store_stats before, after;
    store_get_stats(s, &before);
    for (int i = 0; i < N; i++) {
        itest_id(&ids[i]);
        memset(&r[i], 0, sizeof(r[i]));
        submit_create(s, &ids[i], &r[i], SAGA_STATUS_RUNNING);
    }
    int done = 0;
    while (done < N) {
        uv_run(&fx->loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < N; i++)
            done += r[i].done;
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(r[i].status, 0);
    store_get_stats(s, &after);
    /* At most 256 writes per commit, so at least 8 commits, and far fewer
     * than one per write. */
    uint64_t commits = after.commits - before.commits;
    assert_true(commits >= N / 256);
    assert_true(commits <= 16);
    assert_int_equal(count_rows(fx, "SELECT count(*) FROM sagas WHERE id = ANY($1)", ids, N), N);
    itest_store_close(&fx->loop, &s);
}

static void test_bad_writer_fails_alone(void **state)
{
    struct itest_fx *fx = *state;
    struct store_config cfg = {.pool_size = 1};
    struct store *s = itest_store_open(&fx->loop, fx->url, "batcher", &cfg);
    enum { N = 12 };
    struct saga_id ids[N];
    struct itest_result r[N];
    struct store_stats before, after;
    store_get_stats(s, &before);
    memset(r, 0, sizeof(r));
    for (int i = 0; i < N; i++) {
        itest_id(&ids[i]);
        /* Two writers carry a status the schema refuses (CHECK constraint). */
        submit_create(s, &ids[i], &r[i],
                      i == 4 || i == 9 ? (saga_status_t)42 : SAGA_STATUS_RUNNING);
    }
    int done = 0;
    while (done < N) {
        uv_run(&fx->loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < N; i++)
            done += r[i].done;
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(r[i].status, i == 4 || i == 9 ? SAGA_EINVAL : 0);
    store_get_stats(s, &after);
    assert_int_equal(after.isolations - before.isolations, 2);
    assert_int_equal(after.write_failures - before.write_failures, 2);
    assert_int_equal(count_rows(fx, "SELECT count(*) FROM sagas WHERE id = ANY($1)", ids, N),
                     N - 2);
    /* The guilty wrote nothing at all. */
    struct saga_id guilty[2] = {ids[4], ids[9]};
    assert_int_equal(
        count_rows(fx, "SELECT count(*) FROM saga_events WHERE saga_id = ANY($1)", guilty, 2), 0);

    /* The next batch works at once, in one commit. */
    store_get_stats(s, &before);
    struct saga_id more[5];
    struct itest_result rm[5];
    memset(rm, 0, sizeof(rm));
    for (int i = 0; i < 5; i++) {
        itest_id(&more[i]);
        submit_create(s, &more[i], &rm[i], SAGA_STATUS_RUNNING);
    }
    itest_wait(&fx->loop, &rm[4].done, 1, 5000);
    for (int i = 0; i < 5; i++)
        assert_int_equal(rm[i].status, 0);
    store_get_stats(s, &after);
    assert_int_equal(after.commits - before.commits, 1);
    assert_int_equal(after.isolations - before.isolations, 0);

    /* A bad update of an existing saga changes nothing of it. */
    struct record bad = itest_rec_saga((saga_status_t)99, itest_now_ms(), NULL);
    struct record good = itest_rec_step(2, SAGA_STEP_RUNNING, 1, NULL, itest_now_ms());
    struct itest_result rb = {0}, rg = {0};
    assert_int_equal(store_write(s, &more[0], 1, NULL, &bad, 1, itest_on_write, &rb), 0);
    assert_int_equal(store_write(s, &more[1], 1, NULL, &good, 1, itest_on_write, &rg), 0);
    itest_wait(&fx->loop, &rb.done, 1, 5000);
    itest_wait(&fx->loop, &rg.done, 1, 5000);
    assert_int_equal(rb.status, SAGA_EINVAL);
    assert_int_equal(rg.status, 0);
    assert_int_equal(count_rows(fx, "SELECT events FROM sagas WHERE id = ANY($1)", &more[0], 1), 3);
    assert_int_equal(count_rows(fx, "SELECT events FROM sagas WHERE id = ANY($1)", &more[1], 1), 4);
    itest_store_close(&fx->loop, &s);
}

static void test_fencing(void **state)
{
    struct itest_fx *fx = *state;
    struct store *a = itest_store_open(&fx->loop, fx->url, "owner-a", NULL);
    struct store *b = itest_store_open(&fx->loop, fx->url, "owner-b", NULL);
    struct saga_id id;
    itest_id(&id);
    struct itest_result r = {0};
    submit_create(a, &id, &r, SAGA_STATUS_RUNNING);
    itest_wait(&fx->loop, &r.done, 1, 5000);
    assert_int_equal(r.status, 0);

    uint64_t t = itest_now_ms();
    struct record step = itest_rec_step(0, SAGA_STEP_SUCCEEDED, 1, "x", t);
    struct record end = itest_rec_saga(SAGA_STATUS_COMPLETED, t, NULL);
    struct record both[2] = {step, end};

    /* Another owner, right epoch: fenced, nothing changes. */
    memset(&r, 0, sizeof(r));
    assert_int_equal(store_write(b, &id, 1, NULL, both, 2, itest_on_write, &r), 0);
    itest_wait(&fx->loop, &r.done, 1, 5000);
    assert_int_equal(r.status, SAGA_EFENCED);
    /* The owner at a stale (or future) epoch: fenced. */
    memset(&r, 0, sizeof(r));
    assert_int_equal(store_write(a, &id, 2, NULL, both, 2, itest_on_write, &r), 0);
    itest_wait(&fx->loop, &r.done, 1, 5000);
    assert_int_equal(r.status, SAGA_EFENCED);
    /* A saga that does not exist: fenced too (not ours). */
    struct saga_id ghost;
    itest_id(&ghost);
    memset(&r, 0, sizeof(r));
    assert_int_equal(store_write(a, &ghost, 1, NULL, &step, 1, itest_on_write, &r), 0);
    itest_wait(&fx->loop, &r.done, 1, 5000);
    assert_int_equal(r.status, SAGA_EFENCED);

    assert_int_equal(count_rows(fx, "SELECT events FROM sagas WHERE id = ANY($1)", &id, 1), 3);
    assert_int_equal(count_rows(fx, "SELECT status FROM sagas WHERE id = ANY($1)", &id, 1),
                     SAGA_STATUS_RUNNING);
    assert_int_equal(
        count_rows(fx, "SELECT count(*) FROM saga_steps WHERE saga_id = ANY($1) AND status = 3",
                   &id, 1),
        0);

    /* Fenced writers in a batch do not disturb the other sagas' writers, and
     * cost no isolation: the batch commits once. A write of the same saga
     * queued behind the fenced one was computed from a state the log does not
     * hold: it is cancelled, nothing written. */
    struct saga_id ok_id;
    itest_id(&ok_id);
    struct itest_result rc = {0};
    submit_create(a, &ok_id, &rc, SAGA_STATUS_RUNNING);
    itest_wait(&fx->loop, &rc.done, 1, 5000);
    struct store_stats before, after;
    store_get_stats(a, &before);
    struct itest_result r1 = {0}, r2 = {0}, r3 = {0};
    assert_int_equal(store_write(a, &id, 7, NULL, both, 2, itest_on_write, &r1), 0);
    assert_int_equal(store_write(a, &ok_id, 1, NULL, both, 2, itest_on_write, &r2), 0);
    assert_int_equal(store_write(a, &id, 1, NULL, both, 2, itest_on_write, &r3), 0);
    itest_wait(&fx->loop, &r3.done, 1, 5000);
    itest_wait(&fx->loop, &r2.done, 1, 5000);
    assert_int_equal(r1.status, SAGA_EFENCED);
    assert_int_equal(r2.status, 0);
    assert_int_equal(r3.status, SAGA_ECANCELED);
    store_get_stats(a, &after);
    assert_int_equal(after.isolations - before.isolations, 0);
    assert_int_equal(count_rows(fx, "SELECT status FROM sagas WHERE id = ANY($1)", &id, 1),
                     SAGA_STATUS_RUNNING);
    assert_int_equal(count_rows(fx, "SELECT status FROM sagas WHERE id = ANY($1)", &ok_id, 1),
                     SAGA_STATUS_COMPLETED);

    /* Once the failure is reported, a new write of that saga goes through. */
    struct itest_result r4 = {0};
    assert_int_equal(store_write(a, &id, 1, NULL, both, 2, itest_on_write, &r4), 0);
    itest_wait(&fx->loop, &r4.done, 1, 5000);
    assert_int_equal(r4.status, 0);
    assert_int_equal(count_rows(fx, "SELECT status FROM sagas WHERE id = ANY($1)", &id, 1),
                     SAGA_STATUS_COMPLETED);
    itest_store_close(&fx->loop, &a);
    itest_store_close(&fx->loop, &b);
}

static void test_per_saga_order(void **state)
{
    struct itest_fx *fx = *state;
    struct store *s = itest_store_open(&fx->loop, fx->url, "orderly", NULL);
    struct saga_id id;
    itest_id(&id);
    struct itest_result r = {0};
    submit_create(s, &id, &r, SAGA_STATUS_RUNNING);
    /* Twenty more writes of the same saga in the same turn: they commit one
     * after the other, in order, on whatever connection. */
    enum { N = 20 };
    struct itest_result rs[N];
    memset(rs, 0, sizeof(rs));
    for (int i = 0; i < N; i++) {
        struct record rec =
            itest_rec_step(0, SAGA_STEP_WAITING, (uint32_t)i + 2, NULL, itest_now_ms());
        assert_int_equal(store_write(s, &id, 1, NULL, &rec, 1, itest_on_write, &rs[i]), 0);
    }
    itest_wait(&fx->loop, &rs[N - 1].done, 1, 10000);
    for (int i = 0; i < N; i++)
        assert_int_equal(rs[i].status, 0);
    assert_int_equal(
        count_rows(fx, "SELECT attempts FROM saga_steps WHERE saga_id = ANY($1) AND step = 0", &id,
                   1),
        N + 1);
    /* The timeline holds the attempts in submission order. */
    assert_int_equal(count_rows(fx,
                                "SELECT count(*) FROM saga_events WHERE saga_id = ANY($1)"
                                " AND seq > 3 AND attempt <> seq - 2",
                                &id, 1),
                     0);
    assert_int_equal(
        count_rows(fx, "SELECT max(seq) FROM saga_events WHERE saga_id = ANY($1)", &id, 1), N + 3);
    itest_store_close(&fx->loop, &s);
}

static void test_queue_bound_and_close(void **state)
{
    struct itest_fx *fx = *state;
    struct store_config cfg = {.queue_max = 10};
    struct store *s = itest_store_open(&fx->loop, fx->url, "bounded", &cfg);
    struct saga_id ids[11];
    struct itest_result r[11];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 10; i++) {
        itest_id(&ids[i]);
        submit_create(s, &ids[i], &r[i], SAGA_STATUS_RUNNING);
    }
    /* The eleventh is refused at once: no callback. */
    itest_id(&ids[10]);
    uint64_t t = itest_now_ms();
    struct record rec = itest_rec_insert(SAGA_STATUS_RUNNING, t);
    assert_int_equal(store_write(s, &ids[10], 0, &create, &rec, 1, itest_on_write, &r[10]),
                     SAGA_EUNAVAIL);
    /* Closing with writes queued: each hears SAGA_ECANCELED, once. */
    store_close(s, NULL, NULL);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(r[i].done, 1);
        assert_int_equal(r[i].status, SAGA_ECANCELED);
    }
    assert_int_equal(r[10].done, 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(count_rows(fx, "SELECT count(*) FROM sagas WHERE id = ANY($1)", ids, 11), 0);
}

static void test_lost_answer_resolved(void **state)
{
    struct itest_fx *fx = *state;
    /* A short I/O timeout makes the store give up on a batch whose answer it
     * did not read in time, as if the connection had died after the commit. */
    struct store_config cfg = {.pool_size = 1, .io_timeout_ms = 50, .backoff_min_ms = 10};
    struct store *s = itest_store_open(&fx->loop, fx->url, "lossy", &cfg);
    struct saga_id old_id, new_id;
    itest_id(&old_id);
    struct itest_result r = {0};
    submit_create(s, &old_id, &r, SAGA_STATUS_RUNNING);
    itest_wait(&fx->loop, &r.done, 1, 5000);
    assert_int_equal(r.status, 0);

    struct store_stats before, after;
    store_get_stats(s, &before);
    itest_id(&new_id);
    struct itest_result rn = {0}, ru = {0};
    submit_create(s, &new_id, &rn, SAGA_STATUS_RUNNING);
    struct record rec = itest_rec_step(2, SAGA_STEP_RUNNING, 1, NULL, itest_now_ms());
    assert_int_equal(store_write(s, &old_id, 1, NULL, &rec, 1, itest_on_write, &ru), 0);
    /* Send the batch, then stop reading while the database commits it. */
    struct store_stats st;
    do {
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        store_get_stats(s, &st);
    } while (st.in_flight == 0);
    usleep(300 * 1000);
    itest_wait(&fx->loop, &rn.done, 1, 10000);
    itest_wait(&fx->loop, &ru.done, 1, 10000);
    /* Both were found committed by the retry, not applied twice. */
    assert_int_equal(rn.status, 0);
    assert_int_equal(ru.status, 0);
    store_get_stats(s, &after);
    assert_true(after.disconnects > before.disconnects);
    assert_int_equal(after.recovered - before.recovered, 2);
    assert_int_equal(
        count_rows(fx, "SELECT count(*) FROM saga_events WHERE saga_id = ANY($1)", &new_id, 1), 3);
    assert_int_equal(
        count_rows(fx, "SELECT count(*) FROM saga_events WHERE saga_id = ANY($1)", &old_id, 1), 4);
    assert_int_equal(count_rows(fx, "SELECT events FROM sagas WHERE id = ANY($1)", &old_id, 1), 4);
    itest_store_close(&fx->loop, &s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_many_records_one_commit, itest_fx_setup,
                                        itest_fx_teardown),
        cmocka_unit_test_setup_teardown(test_default_pool_groups, itest_fx_setup,
                                        itest_fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_writer_fails_alone, itest_fx_setup,
                                        itest_fx_teardown),
        cmocka_unit_test_setup_teardown(test_fencing, itest_fx_setup, itest_fx_teardown),
        cmocka_unit_test_setup_teardown(test_per_saga_order, itest_fx_setup, itest_fx_teardown),
        cmocka_unit_test_setup_teardown(test_queue_bound_and_close, itest_fx_setup,
                                        itest_fx_teardown),
        cmocka_unit_test_setup_teardown(test_lost_answer_resolved, itest_fx_setup,
                                        itest_fx_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, itest_fx_group_teardown);
}
