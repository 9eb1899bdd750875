/* libsaga-pg: two-phase commit on PostgreSQL's prepared transactions (see
 * saga/pg.h). The prepare goes through the barrier and ends with PREPARE
 * TRANSACTION instead of COMMIT; commit and abort act on the prepared
 * transaction when there is one, and otherwise answer from the barrier's
 * rows. Blocking libpq on the caller's thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"
#include "saga/pg.h"

#define GID_PREFIX "saga:"

/* How long a delivery waits for another one's row locks before RETRY: a
 * prepared transaction holds its locks until its decision, which may be the
 * very delivery waiting. */
#define XA_LOCK_TIMEOUT_MS 1000

/* SQLSTATE undefined_object: COMMIT/ROLLBACK PREPARED of an unknown gid. */
#define SQLSTATE_NO_SUCH_GID "42704"

int saga_pg_xa_gid(const uint8_t saga_id[SAGA_ID_LEN], uint32_t step_index, char *out, size_t size)
{
    char id[SAGA_ID_TEXT_LEN];
    if (saga_id == NULL || out == NULL || size < SAGA_PG_XA_GID_LEN)
        return SAGA_EINVAL;
    snprintf(out, size, GID_PREFIX "%s:%u", saga_id_format(saga_id, id), (unsigned)step_index);
    return 0;
}

/* 1 when `gid` is prepared in db's database, 0 when not, -1 on error. */
static int xa_is_prepared(PGconn *db, const char *gid)
{
    const char *v[1] = {gid};
    PGresult *res = saga__pg_run(db,
                                 "SELECT 1 FROM pg_prepared_xacts"
                                 " WHERE gid = $1 AND database = current_database()",
                                 1, v, NULL, NULL, PGRES_TUPLES_OK);
    if (res == NULL)
        return -1;
    int prepared = PQntuples(res) > 0;
    PQclear(res);
    return prepared;
}

/* COMMIT PREPARED or ROLLBACK PREPARED: 1 done, 0 no such gid (another
 * delivery finished it first), -1 on error. The gid is ours ("saga:", hex,
 * dashes and digits), so it is safe inside the quotes. */
static int xa_finish(PGconn *db, const char *verb, const char *gid)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "%s PREPARED '%s'", verb, gid);
    PGresult *res = PQexecParams(db, sql, 0, NULL, NULL, NULL, NULL, 0);
    int rc = -1;
    if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK) {
        rc = 1;
    } else if (res != NULL) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state != NULL && strcmp(state, SQLSTATE_NO_SUCH_GID) == 0)
            rc = 0;
    }
    PQclear(res);
    return rc;
}

static int xa_start(PGconn *db, const saga_pg_key_t *key, saga_pg_outcome_t *out,
                    char gid[SAGA_PG_XA_GID_LEN])
{
    if (out == NULL)
        return SAGA_EINVAL;
    memset(out, 0, sizeof(*out));
    out->outcome = SAGA_OUTCOME_RETRY;
    if (db == NULL || key == NULL ||
        saga_pg_xa_gid(key->saga_id, key->step_index, gid, SAGA_PG_XA_GID_LEN) != 0)
        return SAGA_EINVAL;
    if (PQtransactionStatus(db) != PQTRANS_IDLE)
        return SAGA_EINVAL; /* PREPARE and COMMIT PREPARED need a connection of their own */
    return 0;
}

static int xa_prepare(PGconn *db, const saga_pg_key_t *key, saga_call_t *call, saga_pg_effect_fn fn,
                      void *data, saga_pg_outcome_t *out)
{
    char gid[SAGA_PG_XA_GID_LEN];
    int rc = xa_start(db, key, out, gid);
    if (rc != 0)
        return rc;
    if (fn == NULL || key->op != SAGA_OP_PREPARE)
        return SAGA_EINVAL;
    int prepared = xa_is_prepared(db, gid);
    if (prepared < 0)
        return saga__pg_failed(db, out, "prepared transactions");
    if (prepared) {
        out->outcome = SAGA_OUTCOME_OK;
        out->replayed = 1;
        return 0;
    }
    struct saga__barrier_opts opts = {.prepare_gid = gid, .lock_timeout_ms = XA_LOCK_TIMEOUT_MS};
    return saga__pg_barrier_run(db, key, call, fn, data, &opts, out);
}

/* Abort's effect runs only when the prepare's row says OK with no prepared
 * transaction left: the transaction was committed, and that cannot be undone. */
static void abort_after_commit(PGconn *db, saga_pg_effect_t *e, void *data)
{
    (void)db;
    (void)data;
    saga_pg_effect_fail(e, "the prepared transaction was committed; it cannot be aborted");
}

static int xa_decide(PGconn *db, const saga_pg_key_t *key, saga_call_t *call,
                     saga_pg_outcome_t *out)
{
    char gid[SAGA_PG_XA_GID_LEN];
    int rc = xa_start(db, key, out, gid);
    if (rc != 0)
        return rc;
    if (key->op == SAGA_OP_COMMIT) {
        int done = xa_finish(db, "COMMIT", gid);
        if (done < 0)
            return saga__pg_failed(db, out, "commit prepared");
        /* Nothing prepared: committed before when the prepare's row (part of
         * the prepared transaction) is there and says OK. */
        int prepared = done ? SAGA_OUTCOME_OK : saga__pg_row_outcome(db, key, SAGA_OP_PREPARE);
        if (prepared < 0)
            return saga__pg_failed(db, out, "barrier read");
        if (prepared == SAGA_OUTCOME_OK) {
            out->outcome = SAGA_OUTCOME_OK;
            out->replayed = !done;
        } else {
            out->outcome = SAGA_OUTCOME_FAIL;
            out->reason = strdup("nothing prepared to commit: the prepare was refused, or its "
                                 "transaction was rolled back outside the saga");
            if (out->reason == NULL)
                return SAGA_ENOMEM;
        }
        return 0;
    }
    if (key->op != SAGA_OP_ABORT)
        return SAGA_EINVAL;
    int done = xa_finish(db, "ROLLBACK", gid);
    if (done < 0)
        return saga__pg_failed(db, out, "rollback prepared");
    /* Through the barrier either way: with the prepare's row gone (rolled
     * back, or never written) it records the prepare as barred, so a late
     * prepare does nothing. */
    struct saga__barrier_opts opts = {.lock_timeout_ms = XA_LOCK_TIMEOUT_MS};
    rc = saga__pg_barrier_run(db, key, call, abort_after_commit, NULL, &opts, out);
    if (rc == 0 && done && out->outcome == SAGA_OUTCOME_OK)
        out->skipped = 0; /* the rollback undid the prepare */
    return rc;
}

int saga_pg_xa_prepare_run(PGconn *db, const saga_pg_key_t *key, saga_pg_effect_fn fn, void *data,
                           saga_pg_outcome_t *out)
{
    return xa_prepare(db, key, NULL, fn, data, out);
}

int saga_pg_xa_decide_run(PGconn *db, const saga_pg_key_t *key, saga_pg_outcome_t *out)
{
    return xa_decide(db, key, NULL, out);
}

/* A handler registered for the wrong op is a programming error: FAIL says
 * so at once instead of RETRY forever. */
static int call_misused(saga_call_t *call, const char *what)
{
    char reason[128];
    snprintf(reason, sizeof(reason), "%s cannot serve a %s", what,
             saga_op_name(saga_call_op(call)));
    saga_call_fail(call, reason);
    return SAGA_EINVAL;
}

int saga_pg_xa_prepare_call(PGconn *db, saga_call_t *call, saga_pg_effect_fn fn, void *data)
{
    if (saga_call_op(call) != SAGA_OP_PREPARE)
        return call_misused(call, "saga_pg_xa_prepare_call");
    if (db == NULL) {
        saga_call_retry(call, "database unavailable");
        return SAGA_EDB;
    }
    saga_pg_key_t key;
    saga_pg_outcome_t out = {0};
    saga__pg_call_key(call, &key);
    int rc = xa_prepare(db, &key, call, fn, data, &out);
    saga__pg_complete(call, rc, &out);
    return rc;
}

int saga_pg_xa_decide_call(PGconn *db, saga_call_t *call)
{
    saga_op_t op = saga_call_op(call);
    if (op != SAGA_OP_COMMIT && op != SAGA_OP_ABORT)
        return call_misused(call, "saga_pg_xa_decide_call");
    if (db == NULL) {
        saga_call_retry(call, "database unavailable");
        return SAGA_EDB;
    }
    saga_pg_key_t key;
    saga_pg_outcome_t out = {0};
    saga__pg_call_key(call, &key);
    int rc = xa_decide(db, &key, call, &out);
    saga__pg_complete(call, rc, &out);
    return rc;
}

int saga_pg_xa_list(PGconn *db, saga_pg_xa_prepared_t **list, size_t *n)
{
    if (db == NULL || list == NULL || n == NULL)
        return SAGA_EINVAL;
    *list = NULL;
    *n = 0;
    PGresult *res = saga__pg_run(db,
                                 "SELECT gid, (extract(epoch FROM prepared) * 1000)::int8"
                                 " FROM pg_prepared_xacts"
                                 " WHERE database = current_database() AND gid LIKE 'saga:%'"
                                 " ORDER BY prepared, gid",
                                 0, NULL, NULL, NULL, PGRES_TUPLES_OK);
    if (res == NULL)
        return SAGA_EDB;
    int rows = PQntuples(res);
    saga_pg_xa_prepared_t *out = rows > 0 ? calloc((size_t)rows, sizeof(*out)) : NULL;
    if (rows > 0 && out == NULL) {
        PQclear(res);
        return SAGA_ENOMEM;
    }
    size_t k = 0;
    for (int r = 0; r < rows; r++) {
        /* "saga:" + 36-character id + ":" + step; anything else is not ours. */
        const char *gid = PQgetvalue(res, r, 0);
        char id[SAGA_ID_TEXT_LEN];
        char *end = NULL;
        if (strlen(gid) < 5 + 36 + 2 || gid[5 + 36] != ':')
            continue;
        memcpy(id, gid + 5, 36);
        id[36] = '\0';
        unsigned long step = strtoul(gid + 5 + 36 + 1, &end, 10);
        if (saga_id_parse(id, out[k].saga_id) != 0 || *end != '\0' || step > UINT32_MAX)
            continue;
        out[k].step_index = (uint32_t)step;
        out[k].prepared_ms = strtoll(PQgetvalue(res, r, 1), NULL, 10);
        k++;
    }
    PQclear(res);
    if (k == 0) {
        free(out);
        out = NULL;
    }
    *list = out;
    *n = k;
    return 0;
}
