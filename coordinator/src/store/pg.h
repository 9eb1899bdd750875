/* The connection module: the only file of the project that knows libpq.
 *
 * - struct pg_conn: one PostgreSQL connection driven by a libuv loop. It connects
 *   without blocking, prepares the caller's statements, then runs in pipeline
 *   mode. Work is sent as segments: a few statements followed by a Sync, which
 *   PostgreSQL runs as one implicit transaction.
 * - struct pg_sync: a blocking connection for command-line tools (migrate).
 * - struct pg_res: read access to one statement's result. */
#ifndef SAGAD_STORE_PG_H
#define SAGAD_STORE_PG_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/util.h"

/* Type OIDs of the binary formats the store sends and reads. */
enum pg_oid {
    PG_OID_BOOL = 16,
    PG_OID_BYTEA = 17,
    PG_OID_INT8 = 20,
    PG_OID_INT2 = 21,
    PG_OID_INT4 = 23,
    PG_OID_TEXT = 25,
    PG_OID_TIMESTAMPTZ = 1184,
    PG_OID_UUID = 2950,
};

/* ---- results ---- */

struct pg_res;

enum pg_res_status {
    PG_RES_OK,      /* the statement ran; rows (if any) are readable */
    PG_RES_ERROR,   /* the statement failed: see sqlstate and message */
    PG_RES_ABORTED, /* not run: an earlier statement of the segment failed */
};

enum pg_res_status pg_res_status(const struct pg_res *r);
/* The five-character SQLSTATE of a failed statement, or "". Static or owned by `r`. */
const char *pg_res_sqlstate(const struct pg_res *r);
/* The server's primary message of a failed statement, or "". Owned by `r`. */
const char *pg_res_message(const struct pg_res *r);
int pg_res_rows(const struct pg_res *r);
/* Rows an INSERT, UPDATE or DELETE touched. */
uint64_t pg_res_affected(const struct pg_res *r);
int pg_res_isnull(const struct pg_res *r, int row, int col);
/* The value's bytes (binary or text, as requested), always followed by a NUL;
 * owned by `r`. "" for NULL. */
const char *pg_res_value(const struct pg_res *r, int row, int col);
int pg_res_length(const struct pg_res *r, int row, int col);
/* Frees a result handed out by pg_sync_query() and clears *r; NULL is a no-op. */
void pg_res_free(struct pg_res **r);

/* ---- the loop-driven connection ---- */

/* A statement prepared on every new connection before it is used. */
struct pg_stmt {
    const char *name;
    const char *sql;
};

/* One statement of a segment: a prepared statement by name, or an unnamed one
 * by text. Parameters may be text (format 0) or binary (1); results are binary. */
struct pg_query {
    const char *stmt; /* prepared statement name, or NULL */
    const char *sql;  /* unnamed statement text when stmt is NULL */
    int n_params;
    const char *const *values;
    const int *lengths;
    const int *formats;
};

struct pg_conn;

/* Connection state changes: status 0 when the connection is ready (connected,
 * statements prepared); else it is down: SAGA_ECONNECT (connect failed),
 * SAGA_ETIMEDOUT (connect took too long), SAGA_ESCHEMA (a statement could not
 * be prepared: tables missing or older than this binary), SAGA_ECLOSED (lost).
 * A down connection stays down until pg_conn_connect() is called again. */
typedef void (*pg_conn_cb)(struct pg_conn *c, int status);
/* One result per statement of a segment, in order; `res` is valid only during
 * the call. Not called for statements whose results never arrived. */
typedef void (*pg_result_cb)(void *arg, int index, const struct pg_res *res);
/* The end of a segment, called exactly once: 0 when the transaction committed,
 * SAGA_EDB when a statement or the commit failed (everything rolled back),
 * SAGA_ECLOSED when the connection was lost first (the commit may or may not
 * have happened). */
typedef void (*pg_done_cb)(void *arg, int status);

/* Creates a connection object (not yet connected) for `conninfo` (a URL or
 * key=value string; copied). `stmts` (n of them) are borrowed and must outlive
 * the object. `cb` reports state changes. On success *out is set; the caller
 * frees it with pg_conn_close(). */
int pg_conn_new(uv_loop_t *loop, const char *conninfo, const struct pg_stmt *stmts, size_t n_stmts,
                uint32_t connect_timeout_ms, pg_conn_cb cb, void *data,
                struct pg_conn **out) MUST_CHECK;

void *pg_conn_data(const struct pg_conn *c);

/* Starts a non-blocking connect. Returns 0 (cb reports the outcome later),
 * SAGA_ESTATE when not down, or SAGA_ENOMEM. */
int pg_conn_connect(struct pg_conn *c) MUST_CHECK;

int pg_conn_is_ready(const struct pg_conn *c);

/* Why the last connect attempt or the connection failed (libpq's words), or "". */
const char *pg_conn_error(const struct pg_conn *c);

/* Segments sent and not yet done. */
size_t pg_conn_in_flight(const struct pg_conn *c);

/* uv_now() when the oldest segment in flight was sent, or 0 when none. */
uint64_t pg_conn_oldest(const struct pg_conn *c);

/* Sends `n` statements and a Sync. The parameter bytes are copied by libpq
 * before this returns. Returns 0 when queued (then on_result and on_done are
 * called later, never from inside this call), SAGA_ESTATE when the connection
 * is not ready, SAGA_EINVAL for n == 0. */
int pg_conn_send(struct pg_conn *c, const struct pg_query *q, size_t n, pg_result_cb on_result,
                 pg_done_cb on_done, void *arg) MUST_CHECK;

/* Abandons the connection now: every segment in flight is done with
 * SAGA_ECLOSED, then cb reports `status`. No-op when already down. */
void pg_conn_drop(struct pg_conn *c, int status);

/* Drops the connection (segments done with SAGA_ECANCELED, no state callback)
 * and frees the object; `cb` (may be NULL) is called when it is gone. */
void pg_conn_close(struct pg_conn *c, void (*cb)(void *data), void *data);

/* 0 when libpq can parse `conninfo` (a URL or key=value string), else
 * SAGA_EINVAL with libpq's reason in `err`. Connects to nothing. */
int pg_conninfo_check(const char *conninfo, char *err, size_t err_size) MUST_CHECK;

/* ---- the blocking connection (command-line tools only, never on the loop) ---- */

struct pg_sync;

/* Connects, blocking. On failure returns SAGA_ECONNECT and writes libpq's
 * message to err. On success the caller frees *out with pg_sync_close(). */
int pg_sync_open(const char *conninfo, struct pg_sync **out, char *err, size_t err_size) MUST_CHECK;

/* Runs one statement with `n` text parameters (NULL values are SQL NULL).
 * Text results. On success returns 0 and, when out is not NULL, a result the
 * caller frees with pg_res_free(). On failure returns SAGA_EDB (or SAGA_ECLOSED
 * when the connection is gone); pg_sync_error() says why. */
int pg_sync_query(struct pg_sync *c, const char *sql, int n, const char *const *values,
                  struct pg_res **out) MUST_CHECK;

/* Runs a script of several statements (the simple query protocol: one
 * implicit transaction unless the script or an open block says otherwise).
 * Returns 0 or SAGA_EDB; pg_sync_error() says why. */
int pg_sync_script(struct pg_sync *c, const char *sql) MUST_CHECK;

/* The last failure's message ("SQLSTATE: message"), or "". Owned by `c`. */
const char *pg_sync_error(const struct pg_sync *c);
/* Where in the statement text the last failure was (1-based character), or 0. */
int pg_sync_error_position(const struct pg_sync *c);

/* Closes the connection, frees it and clears *c; NULL is a no-op. */
void pg_sync_close(struct pg_sync **c);

#endif
