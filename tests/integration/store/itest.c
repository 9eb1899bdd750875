/* Shared helpers of the store's integration tests (see itest.h). Talks to the
 * database through the store's own blocking connection (store/pg.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "itest.h"
#include "saga/error.h"
#include "store/migrate.h"
#include "store/pg.h"

const char *itest_server_url(void)
{
    const char *url = getenv("SAGA_TEST_DATABASE_URL");
    if (!url || !*url) {
        fprintf(stderr, "SAGA_TEST_DATABASE_URL is not set: skipping\n");
        exit(77);
    }
    return url;
}

void itest_url_with_db(const char *url, const char *dbname, char *out, size_t size)
{
    /* postgresql://user@host:port/DB?params, or key=value pairs. */
    const char *scheme = strstr(url, "://");
    if (scheme) {
        const char *path = strchr(scheme + 3, '/');
        const char *query = strchr(scheme + 3, '?');
        size_t head = path ? (size_t)(path - url) : query ? (size_t)(query - url) : strlen(url);
        int n = snprintf(out, size, "%.*s/%s%s", (int)head, url, dbname, query ? query : "");
        assert_true(n > 0 && (size_t)n < size);
        return;
    }
    int n = snprintf(out, size, "%s dbname=%s", url, dbname);
    assert_true(n > 0 && (size_t)n < size);
}

static struct pg_sync *connect_or_fail(const char *url)
{
    struct pg_sync *c = NULL;
    char err[512];
    int rc = pg_sync_open(url, &c, err, sizeof(err));
    if (rc != 0)
        fail_msg("cannot connect to %s: %s", url, err);
    return c;
}

static void dbname_of(const char *url, char *out, size_t size)
{
    const char *scheme = strstr(url, "://");
    assert_non_null(scheme);
    const char *path = strchr(scheme + 3, '/');
    assert_non_null(path);
    size_t n = strcspn(path + 1, "?");
    assert_true(n < size);
    memcpy(out, path + 1, n);
    out[n] = '\0';
}

void itest_db_create(const char *server_url, const char *name, int migrate, char *url,
                     size_t url_size)
{
    char db[64], sql[160];
    snprintf(db, sizeof(db), "test_%s_%ld", name, (long)getpid());
    itest_url_with_db(server_url, db, url, url_size);
    struct pg_sync *c = connect_or_fail(server_url);
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    if (pg_sync_query(c, sql, 0, NULL, NULL) != 0)
        fail_msg("%s: %s", sql, pg_sync_error(c));
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
    if (pg_sync_query(c, sql, 0, NULL, NULL) != 0)
        fail_msg("%s: %s", sql, pg_sync_error(c));
    pg_sync_close(&c);
    if (migrate) {
        struct migration_set set = {0};
        char err[1024];
        assert_int_equal(migration_set_builtin(&set, err, sizeof(err)), 0);
        int rc = migrate_apply(url, &set, NULL, NULL, err, sizeof(err));
        if (rc != 0)
            fail_msg("migrate: %s", err);
        migration_set_free(&set);
    }
}

void itest_db_drop(const char *server_url, const char *url)
{
    char db[64], sql[160];
    dbname_of(url, db, sizeof(db));
    struct pg_sync *c = connect_or_fail(server_url);
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    if (pg_sync_query(c, sql, 0, NULL, NULL) != 0)
        fail_msg("%s: %s", sql, pg_sync_error(c));
    pg_sync_close(&c);
}

int64_t itest_sql_int(const char *url, const char *sql, int n, const char *const *params)
{
    struct pg_sync *c = connect_or_fail(url);
    struct pg_res *r = NULL;
    if (pg_sync_query(c, sql, n, params, &r) != 0)
        fail_msg("%s: %s", sql, pg_sync_error(c));
    int64_t v = 0;
    if (pg_res_rows(r) > 0 && !pg_res_isnull(r, 0, 0))
        v = strtoll(pg_res_value(r, 0, 0), NULL, 10);
    pg_res_free(&r);
    pg_sync_close(&c);
    return v;
}

int itest_sql_try(const char *url, const char *sql, char *err, size_t err_size)
{
    struct pg_sync *c = connect_or_fail(url);
    int rc = pg_sync_query(c, sql, 0, NULL, NULL);
    if (rc != 0)
        snprintf(err, err_size, "%s", pg_sync_error(c));
    pg_sync_close(&c);
    return rc == 0 ? 0 : -1;
}

static void on_timeout(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

static void on_timer_closed(uv_handle_t *h)
{
    (void)h;
}

void itest_wait(uv_loop_t *loop, const int *counter, int target, uint64_t timeout_ms)
{
    uv_timer_t t;
    int expired = 0;
    uv_timer_init(loop, &t);
    t.data = &expired;
    uv_timer_start(&t, on_timeout, timeout_ms, 0);
    while (*counter < target && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, on_timer_closed);
    uv_run(loop, UV_RUN_NOWAIT);
    if (*counter < target)
        fail_msg("timed out after %llu ms: %d of %d", (unsigned long long)timeout_ms, *counter,
                 target);
}

void itest_sleep(uv_loop_t *loop, uint64_t ms)
{
    uv_timer_t t;
    int expired = 0;
    uv_timer_init(loop, &t);
    t.data = &expired;
    uv_timer_start(&t, on_timeout, ms, 0);
    while (!expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, on_timer_closed);
    uv_run(loop, UV_RUN_NOWAIT);
}

struct store *itest_store_open(uv_loop_t *loop, const char *url, const char *owner,
                               const struct store_config *overrides)
{
    struct store_config cfg = {0};
    if (overrides)
        cfg = *overrides;
    cfg.database_url = url;
    cfg.owner = owner;
    struct store *s = NULL;
    assert_int_equal(store_open(loop, &cfg, &s), 0);
    /* Wait for a connection, so tests start from a ready store. */
    for (int i = 0; i < 500 && !store_available(s); i++)
        itest_sleep(loop, 10);
    assert_true(store_available(s));
    return s;
}

static void on_store_closed(void *data)
{
    (*(int *)data)++;
}

void itest_store_close(uv_loop_t *loop, struct store **s)
{
    int closed = 0;
    store_close(*s, on_store_closed, &closed);
    *s = NULL;
    itest_wait(loop, &closed, 1, 10000);
}

static void walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    fprintf(stderr, "open handle: %s active=%d\n", uv_handle_type_name(uv_handle_get_type(h)),
            uv_is_active(h));
}

void itest_loop_close(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_NOWAIT);
    if (uv_loop_close(loop) != 0) {
        uv_walk(loop, walk_cb, NULL);
        fail_msg("handles left open on the loop");
    }
}

int itest_fx_group_setup(void **state, const char *name)
{
    struct itest_fx *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    fx->server = itest_server_url();
    itest_db_create(fx->server, name, 1, fx->url, sizeof(fx->url));
    *state = fx;
    return 0;
}

int itest_fx_group_teardown(void **state)
{
    struct itest_fx *fx = *state;
    itest_db_drop(fx->server, fx->url);
    free(fx);
    return 0;
}

int itest_fx_setup(void **state)
{
    struct itest_fx *fx = *state;
    uv_loop_init(&fx->loop);
    return 0;
}

int itest_fx_teardown(void **state)
{
    struct itest_fx *fx = *state;
    itest_loop_close(&fx->loop);
    return 0;
}

void itest_id(struct saga_id *id)
{
    assert_int_equal(getrandom(id->bytes, sizeof(id->bytes), 0), (ssize_t)sizeof(id->bytes));
    id->bytes[6] = (uint8_t)((id->bytes[6] & 0x0f) | 0x40);
    id->bytes[8] = (uint8_t)((id->bytes[8] & 0x3f) | 0x80);
}

struct record itest_rec_insert(saga_status_t status, uint64_t at_ms)
{
    return (struct record){.kind = REC_SAGA_INSERT,
                           .event = "saga.started",
                           .at_ms = at_ms,
                           .step = -1,
                           .saga_status = status};
}

struct record itest_rec_saga(saga_status_t status, uint64_t at_ms, const char *error)
{
    return (struct record){.kind = REC_SAGA_UPDATE,
                           .event = "saga.status",
                           .at_ms = at_ms,
                           .step = -1,
                           .saga_status = status,
                           .error = error};
}

struct record itest_rec_step(int step, saga_step_status_t status, uint32_t attempts,
                             const char *output, uint64_t at_ms)
{
    return (struct record){.kind = REC_STEP_UPDATE,
                           .event =
                               status == SAGA_STEP_SUCCEEDED ? "step.succeeded" : "step.dispatched",
                           .at_ms = at_ms,
                           .step = step,
                           .attempt = attempts,
                           .step_status = status,
                           .attempts = attempts,
                           .output = (const uint8_t *)output,
                           .output_len = output ? strlen(output) : 0};
}

void itest_on_write(const struct store_write *w, int status)
{
    struct itest_result *r = w->data;
    r->done++;
    r->status = status;
    r->existing = w->existing;
    r->id = w->id;
}

void itest_on_count(const struct store_count *c, int status)
{
    struct itest_count *o = c->data;
    o->done++;
    o->status = status;
    o->n = c->n;
}

uint64_t itest_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
