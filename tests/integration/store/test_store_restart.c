/* The database goes away under a stream of writes: a restart and a crash (kill
 * -9) in mid-stream lose no write reported durable, apply none twice, and the
 * store carries on; with the database down, work fails with SAGA_EUNAVAIL
 * within its deadline, and the store recovers once the database is back.
 * Uses its own server (tests/support/pg.sh), since it stops and kills it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "itest.h"
#include "saga/error.h"
#include "store/pg.h"

static char pg_sh[512];
static char dir[64];
static char server[ITEST_URL_MAX];
static char url[ITEST_URL_MAX];

/* ---- the private server ---- */

struct spawn {
    uv_process_t proc;
    int done;
    int64_t status;
};

static void on_spawn_exit(uv_process_t *p, int64_t status, int sig)
{
    struct spawn *sp = p->data;
    (void)sig;
    sp->status = status;
    sp->done = 1;
    uv_close((uv_handle_t *)p, NULL);
}

/* Starts `pg.sh CMD DIR` without blocking the loop. */
static void pg_start_cmd(uv_loop_t *loop, const char *cmd, struct spawn *sp)
{
    char *args[] = {"bash", pg_sh, (char *)cmd, dir, NULL};
    uv_process_options_t o = {0};
    o.file = "bash";
    o.args = args;
    o.exit_cb = on_spawn_exit;
    memset(sp, 0, sizeof(*sp));
    sp->proc.data = sp;
    assert_int_equal(uv_spawn(loop, &sp->proc, &o), 0);
}

static void pg_cmd(uv_loop_t *loop, const char *cmd)
{
    struct spawn sp;
    pg_start_cmd(loop, cmd, &sp);
    itest_wait(loop, &sp.done, 1, 90000);
    assert_int_equal(sp.status, 0);
}

static int group_setup(void **state)
{
    (void)state;
    itest_server_url(); /* skipped like every integration test without a server */
    const char *src = getenv("SAGA_SOURCE_DIR");
    if (!src) {
        fprintf(stderr, "SAGA_SOURCE_DIR is not set: skipping\n");
        exit(77);
    }
    snprintf(pg_sh, sizeof(pg_sh), "%s/tests/support/pg.sh", src);
    snprintf(dir, sizeof(dir), "/tmp/pgrs-%ld", (long)getpid());
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "bash '%s' start '%s'", pg_sh, dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(server, sizeof(server), p));
    assert_int_equal(pclose(p), 0);
    server[strcspn(server, "\n")] = '\0';
    itest_db_create(server, "restart", 1, url, sizeof(url));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "bash '%s' stop '%s' && rm -rf '%s'", pg_sh, dir, dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- a stream of writes ---- */

enum { SAGAS = 48, MAX_WRITES = 200 };

struct saga_stream {
    struct saga_id id;
    int next; /* the next write's number; 0 is the create */
    int status[MAX_WRITES];
    int done[MAX_WRITES];
};

struct stream {
    struct store *s;
    int running;
    int in_flight;
    int completed;
    int ok;
    int failed;
    int ok_after_mark; /* successes completed after `mark` was set */
    int mark;
    struct saga_stream sagas[SAGAS];
};

struct wctx {
    struct stream *st;
    int saga;
    int n;
};

static void stream_next(struct stream *st, int i);

static void on_stream_write(const struct store_write *w, int status)
{
    struct wctx *c = w->data;
    struct stream *st = c->st;
    struct saga_stream *ss = &st->sagas[c->saga];
    ss->status[c->n] = status;
    ss->done[c->n]++;
    st->in_flight--;
    st->completed++;
    if (status == 0) {
        st->ok++;
        if (st->mark)
            st->ok_after_mark++;
    } else {
        st->failed++;
    }
    int i = c->saga;
    free(c);
    if (st->running)
        stream_next(st, i);
}

/* Write 0 starts the saga; write n > 0 dispatches step 0 attempt n, and so
 * leaves exactly one event with attempt = n. */
static void stream_next(struct stream *st, int i)
{
    struct saga_stream *ss = &st->sagas[i];
    if (ss->next >= MAX_WRITES)
        return;
    struct wctx *c = malloc(sizeof(*c));
    assert_non_null(c);
    *c = (struct wctx){.st = st, .saga = i, .n = ss->next++};
    uint64_t t = itest_now_ms();
    int rc;
    if (c->n == 0) {
        static const struct store_create create = {
            .definition = "stream", .version = 1, .mode = DEF_MODE_SAGA, .n_steps = 1};
        struct record rec = itest_rec_insert(SAGA_STATUS_RUNNING, t);
        rc = store_write(st->s, &ss->id, 0, &create, &rec, 1, on_stream_write, c);
    } else {
        struct record rec = itest_rec_step(0, SAGA_STEP_RUNNING, (uint32_t)c->n, NULL, t);
        rc = store_write(st->s, &ss->id, 1, NULL, &rec, 1, on_stream_write, c);
    }
    assert_int_equal(rc, 0);
    st->in_flight++;
}

static void stream_start(struct stream *st)
{
    st->running = 1;
    for (int i = 0; i < SAGAS; i++) {
        itest_id(&st->sagas[i].id);
        stream_next(st, i);
    }
}

static void stream_stop(uv_loop_t *loop, struct stream *st)
{
    st->running = 0;
    while (st->in_flight > 0)
        uv_run(loop, UV_RUN_ONCE);
}

/* Every write reported durable is there, once; every write reported not
 * written is not; a write whose outcome stayed unknown is there at most once. */
static void stream_verify(struct stream *st)
{
    struct pg_sync *c = NULL;
    char err[256];
    assert_int_equal(pg_sync_open(url, &c, err, sizeof(err)), 0);
    int unknown = 0;
    for (int i = 0; i < SAGAS; i++) {
        struct saga_stream *ss = &st->sagas[i];
        char text[37];
        store_id_format(&ss->id, text);
        const char *p[1] = {text};
        struct pg_res *r = NULL;
        assert_int_equal(pg_sync_query(c,
                                       "SELECT coalesce(attempt, 0), count(*) FROM saga_events"
                                       " WHERE saga_id = $1::uuid GROUP BY 1",
                                       1, p, &r),
                         0);
        int seen[MAX_WRITES] = {0};
        for (int row = 0; row < pg_res_rows(r); row++) {
            int n = (int)strtol(pg_res_value(r, row, 0), NULL, 10);
            int count = (int)strtol(pg_res_value(r, row, 1), NULL, 10);
            assert_true(n >= 0 && n < MAX_WRITES);
            seen[n] = count;
        }
        pg_res_free(&r);
        for (int n = 0; n < ss->next; n++) {
            assert_int_equal(ss->done[n], 1);
            if (seen[n] > 1)
                fail_msg("saga %d write %d applied %d times", i, n, seen[n]);
            switch (ss->status[n]) {
            case 0:
                if (seen[n] != 1)
                    fail_msg("saga %d write %d reported durable but missing", i, n);
                break;
            case SAGA_EUNAVAIL:
                if (seen[n] != 0)
                    fail_msg("saga %d write %d reported unwritten but present", i, n);
                break;
            case SAGA_ETIMEDOUT:
                unknown++;
                break;
            case SAGA_EFENCED:
                /* Only after its create failed: the saga does not exist. */
                assert_int_not_equal(ss->status[0], 0);
                break;
            default:
                fail_msg("saga %d write %d: unexpected %s", i, n, saga_err_name(ss->status[n]));
            }
        }
    }
    pg_sync_close(&c);
    printf("      writes: %d durable, %d failed (%d outcome unknown)\n", st->ok, st->failed,
           unknown);
}

static void run_interrupted(const char *how)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    static struct stream st;
    memset(&st, 0, sizeof(st));
    struct store_config cfg = {.unavailable_ms = 30000, .backoff_max_ms = 500};
    st.s = itest_store_open(&loop, url, "streamer", &cfg);
    stream_start(&st);
    itest_wait(&loop, &st.completed, 400, 30000);

    struct store_stats before;
    store_get_stats(st.s, &before);
    if (strcmp(how, "restart") == 0) {
        struct spawn sp;
        pg_start_cmd(&loop, "restart", &sp);
        itest_wait(&loop, &sp.done, 1, 90000);
        assert_int_equal(sp.status, 0);
    } else {
        pg_cmd(&loop, "kill");
        pg_cmd(&loop, "start");
    }
    /* The store carries on: hundreds more writes after the server is back. */
    st.mark = 1;
    itest_wait(&loop, &st.ok_after_mark, 400, 60000);
    stream_stop(&loop, &st);
    struct store_stats after;
    store_get_stats(st.s, &after);
    assert_true(after.disconnects > before.disconnects);
    assert_true(after.connects > before.connects);
    printf("      %s: %llu writes sent again, %llu reconnects\n", how,
           (unsigned long long)(after.retries - before.retries),
           (unsigned long long)(after.connects - before.connects));
    itest_store_close(&loop, &st.s);
    itest_loop_close(&loop);
    stream_verify(&st);
}

static void test_restart_mid_stream(void **state)
{
    (void)state;
    run_interrupted("restart");
}

static void test_crash_mid_stream(void **state)
{
    (void)state;
    run_interrupted("kill");
}

/* ---- down: unavailable within the deadline, then recovery ---- */

static void on_get(const struct store_saga_view *v, int status)
{
    struct itest_result *r = v->data;
    r->done++;
    r->status = status;
}

static void test_down_then_back(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct store_config cfg = {.unavailable_ms = 1000, .backoff_max_ms = 300};
    struct store *s = itest_store_open(&loop, url, "outage", &cfg);
    struct store_config patient_cfg = {.unavailable_ms = 60000, .backoff_max_ms = 300};
    struct store *patient = itest_store_open(&loop, url, "patient", &patient_cfg);

    pg_cmd(&loop, "stop");
    for (int i = 0; i < 200 && store_available(s); i++)
        itest_sleep(&loop, 20);
    assert_false(store_available(s));

    static const struct store_create create = {
        .definition = "outage", .version = 1, .mode = DEF_MODE_SAGA, .n_steps = 1};
    struct saga_id id, id2;
    itest_id(&id);
    itest_id(&id2);
    struct record rec = itest_rec_insert(SAGA_STATUS_RUNNING, itest_now_ms());
    struct itest_result w = {0}, g = {0}, late = {0};
    uint64_t t0 = uv_now(&loop);
    assert_int_equal(store_write(s, &id, 0, &create, &rec, 1, itest_on_write, &w), 0);
    assert_int_equal(store_get(s, &id, on_get, &g), 0);
    /* A patient store's write waits for the database instead. */
    assert_int_equal(store_write(patient, &id2, 0, &create, &rec, 1, itest_on_write, &late), 0);
    itest_wait(&loop, &w.done, 1, 5000);
    itest_wait(&loop, &g.done, 1, 5000);
    uv_update_time(&loop);
    uint64_t waited = uv_now(&loop) - t0;
    assert_int_equal(w.status, SAGA_EUNAVAIL);
    assert_int_equal(g.status, SAGA_EUNAVAIL);
    assert_true(waited >= 1000);
    assert_true(waited < 1000 + 500);
    assert_int_equal(late.done, 0);
    printf("      unavailable after %llu ms (deadline 1000 ms)\n", (unsigned long long)waited);

    pg_cmd(&loop, "start");
    for (int i = 0; i < 500 && !store_available(s); i++)
        itest_sleep(&loop, 20);
    assert_true(store_available(s));
    itest_wait(&loop, &late.done, 1, 10000);
    assert_int_equal(late.status, 0);

    /* Recovered without a restart: the same write now commits. */
    memset(&w, 0, sizeof(w));
    assert_int_equal(store_write(s, &id, 0, &create, &rec, 1, itest_on_write, &w), 0);
    itest_wait(&loop, &w.done, 1, 5000);
    assert_int_equal(w.status, 0);
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_get(s, &id, on_get, &g), 0);
    itest_wait(&loop, &g.done, 1, 5000);
    assert_int_equal(g.status, 0);

    itest_store_close(&loop, &s);
    itest_store_close(&loop, &patient);
    itest_loop_close(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_mid_stream),
        cmocka_unit_test(test_crash_mid_stream),
        cmocka_unit_test(test_down_then_back),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
