/* Shared helpers of the store's integration tests: a fresh database per test
 * executable on the server SAGA_TEST_DATABASE_URL names (skip, exit 77, when
 * it is unset), blocking SQL for checks, and running a loop until a condition. */
#ifndef SAGAD_ITEST_H
#define SAGAD_ITEST_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "engine/record.h"
#include "store/store.h"

#define ITEST_URL_MAX 1024

/* The superuser URL of the test server; exits 77 (skipped) when unset. */
const char *itest_server_url(void);

/* Creates database test_<name>_<pid> on the server at `server_url`, writes its
 * URL to `url`, and when `migrate` is set applies the built-in migrations. */
void itest_db_create(const char *server_url, const char *name, int migrate, char *url,
                     size_t url_size);
/* Drops the database `url` names (forcing its sessions out). */
void itest_db_drop(const char *server_url, const char *url);

/* Rewrites `url` (a URL or key=value string) with another database name. */
void itest_url_with_db(const char *url, const char *dbname, char *out, size_t size);

/* Runs `sql` (text parameters, NULL for SQL NULL) against `url`; fails the test
 * on error. Returns the first column of the first row as an integer (0 when
 * there are no rows or it is NULL). */
int64_t itest_sql_int(const char *url, const char *sql, int n, const char *const *params);
/* Same, but returns the error's SQLSTATE-prefixed message in `err` instead of
 * failing; returns 0 on success, -1 on error. */
int itest_sql_try(const char *url, const char *sql, char *err, size_t err_size);

/* Runs the loop until *counter >= target, or fails the test after timeout_ms. */
void itest_wait(uv_loop_t *loop, const int *counter, int target, uint64_t timeout_ms);
/* Runs the loop for ms milliseconds. */
void itest_sleep(uv_loop_t *loop, uint64_t ms);

/* Opens a store on `loop` with sensible test settings; `owner` names it. */
struct store *itest_store_open(uv_loop_t *loop, const char *url, const char *owner,
                               const struct store_config *overrides);
/* Closes the store and runs the loop until it is gone. */
void itest_store_close(uv_loop_t *loop, struct store **s);
/* Closes the loop, failing the test if handles remain. */
void itest_loop_close(uv_loop_t *loop);

/* The fixture of the tests that share one migrated database per executable
 * and give each test a fresh loop (test_store_batch, _lease, _queries). */
struct itest_fx {
    uv_loop_t loop;
    char url[ITEST_URL_MAX]; /* the test database */
    const char *server;      /* the server it is on */
    struct store *s;         /* a store a file's setup opens for each test, or NULL */
};

/* cmocka group setup: creates and migrates database test_<name>_<pid> and
 * makes *state a new struct itest_fx for it. */
int itest_fx_group_setup(void **state, const char *name);
/* cmocka group teardown: drops the database and frees the fixture. */
int itest_fx_group_teardown(void **state);
/* cmocka per-test setup and teardown: a fresh loop; closing it fails the
 * test if handles remain. */
int itest_fx_setup(void **state);
int itest_fx_teardown(void **state);

/* A fresh random saga id. */
void itest_id(struct saga_id *id);

/* Builds a REC_SAGA_INSERT, REC_SAGA_UPDATE or REC_STEP_UPDATE record. */
struct record itest_rec_insert(saga_status_t status, uint64_t at_ms);
struct record itest_rec_saga(saga_status_t status, uint64_t at_ms, const char *error);
struct record itest_rec_step(int step, saga_step_status_t status, uint32_t attempts,
                             const char *output, uint64_t at_ms);

/* A write's outcome, for tests that count callbacks. */
struct itest_result {
    int done;
    int status;
    int existing;
    struct saga_id id;
};

/* A store_write_cb that fills the struct itest_result passed as data. */
void itest_on_write(const struct store_write *w, int status);

/* A counting operation's outcome (renew, release, heartbeat...). */
struct itest_count {
    int done;
    int status;
    uint64_t n;
};

/* A store_count_cb that fills the struct itest_count passed as data. */
void itest_on_count(const struct store_count *c, int status);

/* Milliseconds since the Unix epoch. */
uint64_t itest_now_ms(void);

#endif
