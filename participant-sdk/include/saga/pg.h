/* libsaga-pg: PostgreSQL helpers for participants (a library of its own, so
 * plain libsaga does not need libpq; link with `pkg-config libsaga-pg`).
 *
 * The barrier makes a step's effect exactly-once inside the service's own
 * transaction. Delivery is at least once: the same command may arrive again
 * (a lost reply, a reconnect, a coordinator failover), and a compensation may
 * arrive before, or instead of, the action it undoes. The barrier keeps one
 * row per (saga, step, op) in the table saga_barrier, written in the same
 * transaction as the effect:
 *
 *  - duplicate: an op whose row exists is not run again; the stored outcome
 *    and output are returned;
 *  - null compensation: a compensate (or abort) whose action (or prepare)
 *    never ran, or was refused, answers OK and does nothing;
 *  - hanging protection: that compensate also leaves the action's row behind,
 *    so an action that arrives after its compensation does nothing and
 *    answers FAIL.
 *
 *   static void reserve_effect(PGconn *db, saga_pg_effect_t *e, void *data)
 *   {
 *       ... PQexecParams(db, "UPDATE stock SET ...", ...) ...   (no BEGIN/COMMIT)
 *       saga_pg_effect_ok(e, out, out_len);  (or _fail: refused, _retry: transient)
 *   }
 *   static void reserve(saga_call_t *call, void *data)     (on a pool thread)
 *   {
 *       PGconn *db = saga_pg_pool_get(pool);
 *       saga_pg_barrier_call(db, call, reserve_effect, data); (completes the call)
 *       saga_pg_pool_put(pool, db);
 *   }
 *
 * Every function here blocks on the database: call them from handlers that
 * run on the participant's thread pool (saga_participant_options_t.threads),
 * never on the loop. A PGconn is used by one thread at a time. */
#ifndef SAGA_PG_H
#define SAGA_PG_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "saga/participant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Which op of which step of which saga: the barrier's key. */
typedef struct saga_pg_key {
    uint8_t saga_id[SAGA_ID_LEN];
    uint32_t step_index;
    saga_op_t op;
    const char *step; /* the step's name, stored for people; NULL: "" */
} saga_pg_key_t;

/* What the barrier decided; filled by saga_pg_barrier_run(). */
typedef struct saga_pg_outcome {
    saga_outcome_t outcome; /* OK, FAIL or RETRY */
    int replayed;           /* 1: stored earlier; the effect did not run now */
    int skipped;            /* 1: null compensation or hanging: no effect at all */
    uint8_t *output;        /* OK: the effect's output (malloc'd; NULL when empty) */
    size_t output_len;
    char *reason; /* FAIL, RETRY: why (malloc'd); NULL otherwise */
} saga_pg_outcome_t;

/* Handed to an effect function; valid during that call only. */
typedef struct saga_pg_effect saga_pg_effect_t;

/* Makes the effect with `db`, inside the barrier's open transaction: run
 * statements with PQexecParams, never BEGIN, COMMIT or ROLLBACK. Decide with
 * exactly one of saga_pg_effect_ok/_fail/_retry (none counts as retry).
 * FAIL of a forward op rolls back what the effect wrote and is remembered;
 * FAIL of other ops and RETRY roll everything back and remember nothing. */
typedef void (*saga_pg_effect_fn)(PGconn *db, saga_pg_effect_t *e, void *data);

SAGA_EXTERN const saga_pg_key_t *saga_pg_effect_key(const saga_pg_effect_t *e);
/* The call being served, when run through saga_pg_barrier_call(); else NULL. */
SAGA_EXTERN saga_call_t *saga_pg_effect_call(const saga_pg_effect_t *e);
/* Compensate and abort: the output the forward op stored ("" when none). */
SAGA_EXTERN const uint8_t *saga_pg_effect_forward_output(const saga_pg_effect_t *e, size_t *len);
/* The effect took place; `out` (copied) is the step's output. Returns 0,
 * SAGA_EALREADY (decided before) or SAGA_ENOMEM. */
SAGA_EXTERN int saga_pg_effect_ok(saga_pg_effect_t *e, const void *out, size_t len);
/* A business refusal (never retried); `reason` is copied. */
SAGA_EXTERN int saga_pg_effect_fail(saga_pg_effect_t *e, const char *reason);
/* A transient failure: rolled back, retried later by the coordinator. */
SAGA_EXTERN int saga_pg_effect_retry(saga_pg_effect_t *e, const char *reason);

/* Creates saga_barrier and its index when missing (safe to run from several
 * services at once). Returns 0 or SAGA_EDB (the reason on stderr is not
 * printed: read PQerrorMessage(db)). */
SAGA_EXTERN int saga_pg_barrier_setup(PGconn *db);

/* Runs one op through the barrier, in one transaction on `db` (which must
 * not be in a transaction), and fills *out. Returns 0 when *out holds the
 * decision (any outcome); SAGA_EDB when the database failed (out->outcome is
 * RETRY with libpq's reason: nothing was recorded, or the commit's fate is
 * unknown and a redelivery will find it); SAGA_EINVAL or SAGA_ENOMEM. Free
 * *out with saga_pg_outcome_clear(). */
SAGA_EXTERN int saga_pg_barrier_run(PGconn *db, const saga_pg_key_t *key, saga_pg_effect_fn fn,
                                    void *data, saga_pg_outcome_t *out);

/* The same for a participant's call: the key comes from the call, and the
 * call is completed with the outcome (saga_call_ok/_fail/_retry). `db` NULL
 * completes it with RETRY ("database unavailable"). Returns what
 * saga_pg_barrier_run returned. */
SAGA_EXTERN int saga_pg_barrier_call(PGconn *db, saga_call_t *call, saga_pg_effect_fn fn,
                                     void *data);

/* Frees what *o holds and zeroes it. */
SAGA_EXTERN void saga_pg_outcome_clear(saga_pg_outcome_t *o);

/* The cleanup job: deletes up to `limit` barrier rows older than
 * `older_than_s` seconds (0 limit: all of them) and stores the count in
 * *deleted (may be NULL). Keep rows for longer than any saga can live,
 * retries and an operator's retry included: a row deleted too early lets a
 * very late duplicate run again. Returns 0 or SAGA_EDB. */
SAGA_EXTERN int saga_pg_barrier_cleanup(PGconn *db, unsigned older_than_s, unsigned limit,
                                        uint64_t *deleted);

/* ---- two-phase commit on PostgreSQL's prepared transactions ------------------------------ *
 *
 * For the steps of a 2PC saga ("mode": "2pc"): prepare runs the effect and
 * its barrier row in a transaction that ends with PREPARE TRANSACTION, so
 * both stay invisible, and their rows locked, until the coordinator's
 * decision: commit makes them durable and visible (COMMIT PREPARED), abort
 * throws them away (ROLLBACK PREPARED). The server needs
 * max_prepared_transactions > 0. A step's prepared transaction is named by
 * its global id "saga:<saga id>:<step index>" (saga_pg_xa_gid).
 *
 * Every delivery may repeat, and the answers are the barrier's:
 *  - prepare already prepared: OK without running again (and without its
 *    output, which is inside the prepared transaction); prepare already
 *    committed: its stored outcome; refused before: FAIL again;
 *  - commit already committed: OK; commit with nothing prepared (the prepare
 *    was refused, or someone rolled it back): FAIL, and the saga goes STUCK
 *    for an operator;
 *  - abort with nothing prepared: OK, and a prepare arriving after it does
 *    nothing and answers FAIL (hanging protection); abort of a transaction
 *    already committed: FAIL.
 * A delivery that would wait for another one's locks gives up after a
 * second with RETRY; the coordinator sends it again. */

/* Writes the global id of (saga, step) into out; returns 0 or SAGA_EINVAL
 * (size under SAGA_PG_XA_GID_LEN). */
#define SAGA_PG_XA_GID_LEN 64
SAGA_EXTERN int saga_pg_xa_gid(const uint8_t saga_id[SAGA_ID_LEN], uint32_t step_index, char *out,
                               size_t size);

/* The prepare op (key->op SAGA_OP_PREPARE): runs `fn` like
 * saga_pg_barrier_run() and prepares the transaction when fn says OK. */
SAGA_EXTERN int saga_pg_xa_prepare_run(PGconn *db, const saga_pg_key_t *key, saga_pg_effect_fn fn,
                                       void *data, saga_pg_outcome_t *out);

/* The decision (key->op SAGA_OP_COMMIT or SAGA_OP_ABORT) for a step whose
 * prepare went through saga_pg_xa_prepare_run(). Fills *out as
 * saga_pg_barrier_run() does and returns the same codes. */
SAGA_EXTERN int saga_pg_xa_decide_run(PGconn *db, const saga_pg_key_t *key, saga_pg_outcome_t *out);

/* The same for a participant's call, completed with the outcome: prepare
 * handlers call saga_pg_xa_prepare_call, commit and abort handlers
 * saga_pg_xa_decide_call. `db` NULL completes the call with RETRY. */
SAGA_EXTERN int saga_pg_xa_prepare_call(PGconn *db, saga_call_t *call, saga_pg_effect_fn fn,
                                        void *data);
SAGA_EXTERN int saga_pg_xa_decide_call(PGconn *db, saga_call_t *call);

/* A prepared transaction of this helper's, waiting for its decision. */
typedef struct saga_pg_xa_prepared {
    uint8_t saga_id[SAGA_ID_LEN];
    uint32_t step_index;
    int64_t prepared_ms; /* when it was prepared, ms since the Unix epoch */
} saga_pg_xa_prepared_t;

/* The prepared transactions of saga steps in db's database, oldest first:
 * after a restart, ask the coordinator for each one's decision
 * (saga_participant_query_decision) and apply it with
 * saga_pg_xa_decide_run(). *list is malloc'd (free() it; NULL when *n is 0).
 * Returns 0, SAGA_EDB or SAGA_ENOMEM. */
SAGA_EXTERN int saga_pg_xa_list(PGconn *db, saga_pg_xa_prepared_t **list, size_t *n);

/* ---- a small connection pool for handler threads ------------------------------------------ */

typedef struct saga_pg_pool saga_pg_pool_t;

/* A pool of at most `size` connections to `conninfo` (a URL or key=value
 * string; copied), opened when first needed. NULL on size 0 or no memory.
 * Free it with saga_pg_pool_free(). */
SAGA_EXTERN saga_pg_pool_t *saga_pg_pool_new(const char *conninfo, unsigned size);

/* A connection for this thread's exclusive use, waiting while all are
 * taken; a broken one is reset first. NULL when the database cannot be
 * reached (retry later). Give it back with saga_pg_pool_put(). */
SAGA_EXTERN PGconn *saga_pg_pool_get(saga_pg_pool_t *pool);
SAGA_EXTERN void saga_pg_pool_put(saga_pg_pool_t *pool, PGconn *db);

/* Closes every connection (all must have been put back), frees the pool and
 * sets *pool to NULL; NULL is a no-op. */
SAGA_EXTERN void saga_pg_pool_free(saga_pg_pool_t **pool);

#ifdef __cplusplus
}
#endif
#endif
