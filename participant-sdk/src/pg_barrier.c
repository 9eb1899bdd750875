/* libsaga-pg: the barrier (exactly-once effects, null compensation, hanging
 * protection) in the service's own PostgreSQL transaction. Blocking libpq on
 * the caller's thread; touches only the saga_barrier table and what the
 * effect function writes. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"
#include "saga/pg.h"

/* Stored outcomes: 1 ok, 2 fail (saga_outcome_t numbers); 0 only inside the
 * transaction that inserted the row. */
#define ROW_PENDING 0

/* Why a forward op that arrives after its compensation does nothing. */
#define HANGING_REASON "compensated before this operation arrived; not run"

struct saga_pg_effect {
    const saga_pg_key_t *key;
    saga_call_t *call;
    const uint8_t *forward_output;
    size_t forward_len;
    bool decided;
    saga_outcome_t outcome;
    uint8_t *output;
    size_t output_len;
    char *reason;
};

static const char barrier_ddl[] = "CREATE TABLE IF NOT EXISTS saga_barrier ("
                                  " saga_id uuid NOT NULL,"
                                  " step integer NOT NULL,"
                                  " op text NOT NULL,"
                                  " step_name text NOT NULL DEFAULT '',"
                                  " outcome smallint NOT NULL,"
                                  " skipped boolean NOT NULL DEFAULT false,"
                                  " output bytea,"
                                  " reason text,"
                                  " created_at timestamptz NOT NULL DEFAULT now(),"
                                  " PRIMARY KEY (saga_id, step, op))";
static const char barrier_index[] =
    "CREATE INDEX IF NOT EXISTS saga_barrier_created ON saga_barrier (created_at)";

/* ---- effect handle ------------------------------------------------------------------------- */

const saga_pg_key_t *saga_pg_effect_key(const saga_pg_effect_t *e)
{
    return e->key;
}

saga_call_t *saga_pg_effect_call(const saga_pg_effect_t *e)
{
    return e->call;
}

const uint8_t *saga_pg_effect_forward_output(const saga_pg_effect_t *e, size_t *len)
{
    if (len != NULL)
        *len = e->forward_len;
    return e->forward_output != NULL ? e->forward_output : (const uint8_t *)"";
}

static int effect_decide(saga_pg_effect_t *e, saga_outcome_t outcome, const void *out, size_t len,
                         const char *reason)
{
    if (e->decided)
        return SAGA_EALREADY;
    if (len > 0) {
        if ((e->output = malloc(len)) == NULL)
            return SAGA_ENOMEM;
        memcpy(e->output, out, len);
        e->output_len = len;
    }
    if (reason != NULL && (e->reason = strdup(reason)) == NULL) {
        free(e->output);
        e->output = NULL;
        e->output_len = 0;
        return SAGA_ENOMEM;
    }
    e->decided = true;
    e->outcome = outcome;
    return 0;
}

int saga_pg_effect_ok(saga_pg_effect_t *e, const void *out, size_t len)
{
    return effect_decide(e, SAGA_OUTCOME_OK, out, len, NULL);
}

int saga_pg_effect_fail(saga_pg_effect_t *e, const char *reason)
{
    return effect_decide(e, SAGA_OUTCOME_FAIL, NULL, 0, reason != NULL ? reason : "refused");
}

int saga_pg_effect_retry(saga_pg_effect_t *e, const char *reason)
{
    return effect_decide(e, SAGA_OUTCOME_RETRY, NULL, 0, reason != NULL ? reason : "retry");
}

/* ---- small libpq helpers ------------------------------------------------------------------- */

/* Runs a statement; returns its result when its status is `want`, else
 * clears it and returns NULL (PQerrorMessage(db) says why). */
PGresult *saga__pg_run(PGconn *db, const char *sql, int n, const char *const *values,
                       const int *lengths, const int *formats, ExecStatusType want)
{
    PGresult *res = PQexecParams(db, sql, n, NULL, values, lengths, formats, 0);
    if (res != NULL && PQresultStatus(res) == want)
        return res;
    PQclear(res);
    return NULL;
}

bool saga__pg_cmd(PGconn *db, const char *sql)
{
    PGresult *res = saga__pg_run(db, sql, 0, NULL, NULL, NULL, PGRES_COMMAND_OK);
    PQclear(res);
    return res != NULL;
}

/* Sets *out to RETRY with libpq's message, rolls back; returns SAGA_EDB. */
int saga__pg_failed(PGconn *db, saga_pg_outcome_t *out, const char *what)
{
    char buf[512];
    const char *msg = PQerrorMessage(db);
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
        len--;
    snprintf(buf, sizeof(buf), "database error (%s): %.*s", what, (int)len, msg);
    saga_pg_outcome_clear(out);
    out->outcome = SAGA_OUTCOME_RETRY;
    out->reason = strdup(buf);
    if (PQtransactionStatus(db) != PQTRANS_IDLE)
        saga__pg_cmd(db, "ROLLBACK");
    return SAGA_EDB;
}

int saga_pg_barrier_setup(PGconn *db)
{
    if (db == NULL)
        return SAGA_EINVAL;
    /* Concurrent CREATE ... IF NOT EXISTS can still collide: serialize them. */
    if (!saga__pg_cmd(db, "BEGIN"))
        return SAGA_EDB;
    PGresult *res = saga__pg_run(db, "SELECT pg_advisory_xact_lock(hashtext('saga_barrier'))", 0,
                                 NULL, NULL, NULL, PGRES_TUPLES_OK);
    if (res == NULL || !saga__pg_cmd(db, "SET LOCAL client_min_messages = warning") ||
        !saga__pg_cmd(db, barrier_ddl) || !saga__pg_cmd(db, barrier_index) ||
        !saga__pg_cmd(db, "COMMIT")) {
        PQclear(res);
        if (PQtransactionStatus(db) != PQTRANS_IDLE)
            saga__pg_cmd(db, "ROLLBACK");
        return SAGA_EDB;
    }
    PQclear(res);
    return 0;
}

void saga_pg_outcome_clear(saga_pg_outcome_t *o)
{
    if (o == NULL)
        return;
    free(o->output);
    free(o->reason);
    memset(o, 0, sizeof(*o));
}

/* ---- the barrier --------------------------------------------------------------------------- */

/* The key as the text parameters the statements take: $1 saga id, $2 step
 * index, $3 op name, $4 step name. */
struct key_params {
    char id[SAGA_ID_TEXT_LEN];
    char step[16];
    const char *values[4];
};

static void key_params(const saga_pg_key_t *key, saga_op_t op, struct key_params *kp)
{
    saga_id_format(key->saga_id, kp->id);
    snprintf(kp->step, sizeof(kp->step), "%u", (unsigned)key->step_index);
    kp->values[0] = kp->id;
    kp->values[1] = kp->step;
    kp->values[2] = saga_op_name(op);
    kp->values[3] = key->step != NULL ? key->step : "";
}

/* Inserts the row of `op` (pending, or decided when `outcome` is not 0).
 * Returns 1 inserted, 0 already there, -1 database error. */
static int row_insert(PGconn *db, const saga_pg_key_t *key, saga_op_t op, int outcome, bool skipped,
                      const char *reason)
{
    struct key_params kp;
    char oc[4];
    key_params(key, op, &kp);
    snprintf(oc, sizeof(oc), "%d", outcome);
    const char *values[7] = {kp.values[0], kp.values[1],        kp.values[2], kp.values[3],
                             oc,           skipped ? "t" : "f", reason};
    PGresult *res = saga__pg_run(db,
                                 "INSERT INTO saga_barrier (saga_id, step, op, step_name, outcome, "
                                 "skipped, reason) VALUES ($1::uuid, $2::integer, $3, $4, "
                                 "$5::smallint, $6::boolean, $7) ON CONFLICT DO NOTHING",
                                 7, values, NULL, NULL, PGRES_COMMAND_OK);
    if (res == NULL)
        return -1;
    int inserted = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    return inserted;
}

struct stored {
    int outcome;
    bool skipped;
    uint8_t *output; /* PQunescapeBytea's; PQfreemem */
    size_t output_len;
    char *reason;
};

static void stored_clear(struct stored *s)
{
    if (s->output != NULL)
        PQfreemem(s->output);
    free(s->reason);
    memset(s, 0, sizeof(*s));
}

/* Reads the row of `op`. Returns 1 found, 0 none, -1 error (database, or memory). */
static int row_read(PGconn *db, const saga_pg_key_t *key, saga_op_t op, struct stored *s)
{
    struct key_params kp;
    key_params(key, op, &kp);
    memset(s, 0, sizeof(*s));
    PGresult *res = saga__pg_run(db,
                                 "SELECT outcome, skipped, output, reason FROM saga_barrier "
                                 "WHERE saga_id = $1::uuid AND step = $2::integer AND op = $3",
                                 3, kp.values, NULL, NULL, PGRES_TUPLES_OK);
    if (res == NULL)
        return -1;
    int found = PQntuples(res) == 1;
    if (found) {
        s->outcome = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
        s->skipped = PQgetvalue(res, 0, 1)[0] == 't';
        if (!PQgetisnull(res, 0, 2)) {
            s->output =
                PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 2), &s->output_len);
            if (s->output == NULL)
                found = -1;
        }
        if (found == 1 && !PQgetisnull(res, 0, 3) &&
            (s->reason = strdup(PQgetvalue(res, 0, 3))) == NULL)
            found = -1;
    }
    PQclear(res);
    if (found < 0)
        stored_clear(s);
    return found;
}

/* Records the decision on the row inserted pending. Returns 0 or -1. */
static int row_decide(PGconn *db, const saga_pg_key_t *key, saga_op_t op, int outcome, bool skipped,
                      const uint8_t *output, size_t output_len, const char *reason)
{
    struct key_params kp;
    char oc[4];
    key_params(key, op, &kp);
    snprintf(oc, sizeof(oc), "%d", outcome);
    const char *values[7] = {
        kp.values[0], kp.values[1],        kp.values[2],
        oc,           skipped ? "t" : "f", output_len > 0 ? (const char *)output : "",
        reason};
    int lengths[7] = {0, 0, 0, 0, 0, (int)output_len, 0};
    int formats[7] = {0, 0, 0, 0, 0, 1, 0}; /* the output as raw bytes */
    PGresult *res =
        saga__pg_run(db,
                     "UPDATE saga_barrier SET outcome = $4::smallint, skipped = $5::boolean, "
                     "output = $6::bytea, reason = $7 "
                     "WHERE saga_id = $1::uuid AND step = $2::integer AND op = $3",
                     7, values, lengths, formats, PGRES_COMMAND_OK);
    if (res == NULL)
        return -1;
    PQclear(res);
    return 0;
}

int saga__pg_row_outcome(PGconn *db, const saga_pg_key_t *key, saga_op_t op)
{
    struct stored s;
    int found = row_read(db, key, op, &s);
    int outcome = found == 1 ? s.outcome : found;
    stored_clear(&s);
    return outcome;
}

/* Moves a stored row into *out as a replay. Returns 0 or SAGA_ENOMEM. */
static int out_from_stored(saga_pg_outcome_t *out, struct stored *s, bool replayed)
{
    out->outcome = s->outcome == SAGA_OUTCOME_OK ? SAGA_OUTCOME_OK : SAGA_OUTCOME_FAIL;
    out->replayed = replayed;
    out->skipped = s->skipped;
    if (s->output_len > 0) {
        if ((out->output = malloc(s->output_len)) == NULL)
            return SAGA_ENOMEM;
        memcpy(out->output, s->output, s->output_len);
        out->output_len = s->output_len;
    }
    if (out->outcome == SAGA_OUTCOME_FAIL) {
        out->reason = strdup(s->reason != NULL ? s->reason : "refused");
        if (out->reason == NULL)
            return SAGA_ENOMEM;
    }
    return 0;
}

static bool op_is_backward(saga_op_t op)
{
    return op == SAGA_OP_COMPENSATE || op == SAGA_OP_ABORT;
}

/* The forward op a backward op undoes. */
static saga_op_t op_forward_of(saga_op_t op)
{
    return op == SAGA_OP_ABORT ? SAGA_OP_PREPARE : SAGA_OP_ACTION;
}

/* Only forward ops remember a FAIL: it is final for them, and a later
 * compensate must see that nothing happened. A refused compensate, commit or
 * abort makes the saga STUCK; an operator's retry must run it again. */
static bool op_remembers_fail(saga_op_t op)
{
    return op == SAGA_OP_ACTION || op == SAGA_OP_PREPARE;
}

/* Ends the transaction with `sql` ("COMMIT" or "PREPARE TRANSACTION 'gid'").
 * Ending a transaction that failed answers "ROLLBACK", not an error: it
 * counts as ended only when the command tag is the statement's own. */
static bool pg_end(PGconn *db, const char *sql, const char *tag)
{
    PGresult *res = saga__pg_run(db, sql, 0, NULL, NULL, NULL, PGRES_COMMAND_OK);
    bool ok = res != NULL && strcmp(PQcmdStatus(res), tag) == 0;
    PQclear(res);
    return ok;
}

static bool pg_commit(PGconn *db)
{
    return pg_end(db, "COMMIT", "COMMIT");
}

/* A backward op: records its forward op's row as done-nothing when it is
 * missing (hanging protection). Sets *null_op when there is nothing to undo,
 * else loads the forward output into *fwd. Returns 0 or -1 (database). */
static int backward_check(PGconn *db, const saga_pg_key_t *key, bool *null_op, struct stored *fwd)
{
    saga_op_t fop = op_forward_of(key->op);
    /* Waits for a forward op still in its transaction, then sees its row. */
    int marker = row_insert(db, key, fop, SAGA_OUTCOME_FAIL, true, HANGING_REASON);
    if (marker < 0)
        return -1;
    if (marker == 1) {
        *null_op = true; /* it never ran; now it never will */
        return 0;
    }
    if (row_read(db, key, fop, fwd) <= 0)
        return -1;
    *null_op = fwd->outcome != SAGA_OUTCOME_OK; /* refused: nothing to undo */
    return 0;
}

static bool pg_prepare(PGconn *db, const char *gid)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "PREPARE TRANSACTION '%s'", gid);
    return pg_end(db, sql, "PREPARE TRANSACTION");
}

int saga__pg_barrier_run(PGconn *db, const saga_pg_key_t *key, saga_call_t *call,
                         saga_pg_effect_fn fn, void *data, const struct saga__barrier_opts *opts,
                         saga_pg_outcome_t *out)
{
    struct stored fwd = {0};
    saga_pg_effect_t e = {.key = key, .call = call};
    int rc = 0;

    if (out == NULL)
        return SAGA_EINVAL;
    memset(out, 0, sizeof(*out));
    out->outcome = SAGA_OUTCOME_RETRY;
    if (db == NULL || key == NULL || fn == NULL || key->op < SAGA_OP_ACTION ||
        key->op > SAGA_OP_ABORT)
        return SAGA_EINVAL;
    if (PQtransactionStatus(db) != PQTRANS_IDLE)
        return SAGA_EINVAL; /* the barrier must own the transaction */

    if (!saga__pg_cmd(db, "BEGIN"))
        return saga__pg_failed(db, out, "begin");
    if (opts != NULL && opts->lock_timeout_ms > 0) {
        char sql[64];
        snprintf(sql, sizeof(sql), "SET LOCAL lock_timeout = %u", opts->lock_timeout_ms);
        if (!saga__pg_cmd(db, sql))
            return saga__pg_failed(db, out, "lock timeout");
    }
    int inserted = row_insert(db, key, key->op, ROW_PENDING, false, NULL);
    if (inserted < 0)
        return saga__pg_failed(db, out, "barrier insert");
    if (inserted == 0) {
        /* Done before (or barred by its compensation): answer as then. */
        struct stored s;
        if (row_read(db, key, key->op, &s) <= 0)
            return saga__pg_failed(db, out, "barrier read");
        saga__pg_cmd(db, "ROLLBACK");
        rc = out_from_stored(out, &s, true);
        stored_clear(&s);
        return rc;
    }
    if (op_is_backward(key->op)) {
        bool null_op = false;
        if (backward_check(db, key, &null_op, &fwd) != 0) {
            rc = saga__pg_failed(db, out, "barrier check");
            goto done;
        }
        if (null_op) {
            if (row_decide(db, key, key->op, SAGA_OUTCOME_OK, true, NULL, 0, NULL) != 0 ||
                !pg_commit(db)) {
                rc = saga__pg_failed(db, out, "commit");
                goto done;
            }
            out->outcome = SAGA_OUTCOME_OK;
            out->skipped = 1;
            goto done;
        }
        e.forward_output = fwd.output;
        e.forward_len = fwd.output_len;
    }

    if (!saga__pg_cmd(db, "SAVEPOINT saga_effect")) {
        rc = saga__pg_failed(db, out, "savepoint");
        goto done;
    }
    fn(db, &e, data);
    if (!e.decided && effect_decide(&e, SAGA_OUTCOME_RETRY, NULL, 0,
                                    "the effect function gave no outcome") != 0) {
        saga__pg_cmd(db, "ROLLBACK");
        rc = SAGA_ENOMEM;
        goto done;
    }

    if (e.outcome == SAGA_OUTCOME_OK) {
        const char *gid = opts != NULL ? opts->prepare_gid : NULL;
        if (row_decide(db, key, key->op, SAGA_OUTCOME_OK, false, e.output, e.output_len, NULL) !=
                0 ||
            !(gid != NULL ? pg_prepare(db, gid) : pg_commit(db))) {
            rc = saga__pg_failed(db, out, gid != NULL ? "prepare transaction" : "commit");
            goto done;
        }
        out->output = e.output;
        out->output_len = e.output_len;
        e.output = NULL;
    } else if (e.outcome == SAGA_OUTCOME_FAIL && op_remembers_fail(key->op)) {
        if (!saga__pg_cmd(db, "ROLLBACK TO SAVEPOINT saga_effect") ||
            row_decide(db, key, key->op, SAGA_OUTCOME_FAIL, false, NULL, 0, e.reason) != 0 ||
            !pg_commit(db)) {
            rc = saga__pg_failed(db, out, "commit");
            goto done;
        }
    } else {
        saga__pg_cmd(db, "ROLLBACK"); /* nothing happened, nothing is remembered */
    }
    out->outcome = e.outcome;
    out->reason = e.reason;
    e.reason = NULL;
done:
    free(e.output);
    free(e.reason);
    stored_clear(&fwd);
    return rc;
}

int saga_pg_barrier_run(PGconn *db, const saga_pg_key_t *key, saga_pg_effect_fn fn, void *data,
                        saga_pg_outcome_t *out)
{
    return saga__pg_barrier_run(db, key, NULL, fn, data, NULL, out);
}

void saga__pg_call_key(saga_call_t *call, saga_pg_key_t *key)
{
    *key = (saga_pg_key_t){.step_index = saga_call_step_index(call),
                           .op = saga_call_op(call),
                           .step = saga_call_step(call)};
    memcpy(key->saga_id, saga_call_saga_id(call), SAGA_ID_LEN);
}

int saga_pg_barrier_call(PGconn *db, saga_call_t *call, saga_pg_effect_fn fn, void *data)
{
    saga_pg_outcome_t out = {0};
    saga_pg_key_t key;
    if (db == NULL) {
        saga_call_retry(call, "database unavailable");
        return SAGA_EDB;
    }
    saga__pg_call_key(call, &key);
    int rc = saga__pg_barrier_run(db, &key, call, fn, data, NULL, &out);
    saga__pg_complete(call, rc, &out);
    return rc;
}

void saga__pg_complete(saga_call_t *call, int rc, saga_pg_outcome_t *out)
{
    const char *reason = out->reason != NULL ? out->reason : saga_strerror(rc);
    switch (out->outcome) {
    case SAGA_OUTCOME_OK:
        if (saga_call_ok(call, out->output, out->output_len) == SAGA_ETOOBIG)
            saga_call_fail(call, "output over the coordinator's payload limit");
        break;
    case SAGA_OUTCOME_FAIL:
        saga_call_fail(call, reason);
        break;
    default:
        saga_call_retry(call, reason);
        break;
    }
    saga_pg_outcome_clear(out);
}

int saga_pg_barrier_cleanup(PGconn *db, unsigned older_than_s, unsigned limit, uint64_t *deleted)
{
    char age[16], lim[16];
    snprintf(age, sizeof(age), "%u", older_than_s);
    snprintf(lim, sizeof(lim), "%u", limit);
    const char *values[2] = {age, limit > 0 ? lim : NULL};
    if (db == NULL)
        return SAGA_EINVAL;
    PGresult *res =
        saga__pg_run(db,
                     "DELETE FROM saga_barrier WHERE ctid IN (SELECT ctid FROM saga_barrier "
                     "WHERE created_at < now() - make_interval(secs => $1::integer) "
                     "ORDER BY created_at LIMIT $2::bigint)",
                     2, values, NULL, NULL, PGRES_COMMAND_OK);
    if (res == NULL)
        return SAGA_EDB;
    if (deleted != NULL)
        *deleted = strtoull(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return 0;
}
