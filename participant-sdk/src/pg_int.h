/* libsaga-pg inside: what the barrier (pg_barrier.c) lends the two-phase
 * commit helper (pg_xa.c). Not installed; hidden from the library's users. */
#ifndef SAGA_PG_INT_H
#define SAGA_PG_INT_H

#include <stdbool.h>

#include "saga/pg.h"

/* How a barrier transaction ends and waits. */
struct saga__barrier_opts {
    const char *prepare_gid;  /* OK ends with PREPARE TRANSACTION of this gid, not COMMIT */
    unsigned lock_timeout_ms; /* 0: wait for row locks as long as it takes */
};

/* saga_pg_barrier_run() with options (NULL: none); `call` is what
 * saga_pg_effect_call() returns, may be NULL. */
int saga__pg_barrier_run(PGconn *db, const saga_pg_key_t *key, saga_call_t *call,
                         saga_pg_effect_fn fn, void *data, const struct saga__barrier_opts *opts,
                         saga_pg_outcome_t *out);

/* The outcome stored in the barrier row of (key's saga and step, `op`):
 * SAGA_OUTCOME_OK or _FAIL, 0 when there is no row, -1 on a database error.
 * A row inside a prepared transaction is not seen until its commit. */
int saga__pg_row_outcome(PGconn *db, const saga_pg_key_t *key, saga_op_t op);

/* The barrier key of a participant's call. */
void saga__pg_call_key(saga_call_t *call, saga_pg_key_t *key);

/* Completes `call` with *out (ok, fail or retry with the reason, or with
 * saga_strerror(rc) when there is none) and clears *out. */
void saga__pg_complete(saga_call_t *call, int rc, saga_pg_outcome_t *out);

/* A statement's result when its status is `want`; else NULL (cleared). */
PGresult *saga__pg_run(PGconn *db, const char *sql, int n, const char *const *values,
                       const int *lengths, const int *formats, ExecStatusType want);
bool saga__pg_cmd(PGconn *db, const char *sql);
/* Sets *out to RETRY with libpq's message, rolls back; returns SAGA_EDB. */
int saga__pg_failed(PGconn *db, saga_pg_outcome_t *out, const char *what);

#endif
