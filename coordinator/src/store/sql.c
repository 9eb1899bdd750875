/* The SQL of the store: every statement prepared on each connection, and the
 * SQLSTATE classes the store tells apart. No I/O here; nothing outside store/
 * knows SQL. The schema lives in migrations/. */
#include <stdio.h>
#include <string.h>

#include "saga/error.h"
#include "store/store_int.h"

/* Active (non-terminal) sagas: written exactly as in the partial indexes of
 * migrations/0001, so the planner can use them. */
#define ACTIVE "status NOT IN (3, 4, 9, 10)"

#define MS "* interval '1 millisecond'"

/* One write batch: the records of many engine calls, each on its own saga.
 * Arrays carry one entry per writer (w_: existing sagas, c_: new ones), per
 * step row (s_) and per event (e_). `fence` updates only rows this owner holds
 * at the writer's epoch and that this very write has not already changed
 * (write_token: a retry after a lost connection must not apply twice); `ins`
 * skips new sagas whose id or idempotency key exists. Steps and events are
 * written only for the sagas in `ok`; the result lists them. */
static const char sql_write[] =
    "WITH w AS ("
    " SELECT * FROM unnest($3::uuid[], $4::int8[], $5::int8[], $6::int4[], $7::bool[],"
    " $8::int2[], $9::timestamptz[], $10::timestamptz[], $11::text[])"
    " AS w(id, epoch, token, nev, upd, status, wake, deadline, error)"
    "), fence AS ("
    " UPDATE sagas s SET"
    " status = CASE WHEN w.upd THEN w.status ELSE s.status END,"
    " wake_at = CASE WHEN w.upd THEN w.wake ELSE s.wake_at END,"
    " deadline_at = CASE WHEN w.upd THEN w.deadline ELSE s.deadline_at END,"
    " error = CASE WHEN w.upd THEN w.error ELSE s.error END,"
    " events = s.events + w.nev,"
    " write_token = w.token,"
    " updated_at = now(),"
    /* A lease in its second half is extended by the write that holds the
     * row; otherwise the value (and so HOT updates) stays. */
    " lease_until = CASE WHEN s.lease_until IS NULL OR s.lease_until < now() + $2::int8 / 2 " MS
    " THEN now() + $2::int8 " MS " ELSE s.lease_until END"
    " FROM w"
    " WHERE s.id = w.id AND s.owner = $1 AND s.epoch = w.epoch AND s.write_token <> w.token"
    " RETURNING s.id, s.events"
    "), ins AS ("
    " INSERT INTO sagas AS s (id, write_token, definition, version, mode, n_steps, status, input,"
    " idempotency_key, created_at, wake_at, deadline_at, error, events, owner, epoch,"
    " lease_until, updated_at, holder)"
    " SELECT c.*, $1, 1, now() + $2::int8 " MS ", now(), $43::int8"
    " FROM unnest($12::uuid[], $13::int8[], $14::text[], $15::int4[], $16::int2[], $17::int2[],"
    " $18::int2[], $19::bytea[], $20::text[], $21::timestamptz[], $22::timestamptz[],"
    " $23::timestamptz[], $24::text[], $25::int4[]) AS c"
    " ON CONFLICT DO NOTHING"
    " RETURNING s.id, s.events"
    "), ok AS ("
    " SELECT id, events FROM fence UNION ALL SELECT id, events FROM ins"
    "), st AS ("
    " INSERT INTO saga_steps AS t (saga_id, step, status, attempts, compensate_attempts, output,"
    " error, started_at, finished_at)"
    " SELECT x.* FROM unnest($26::uuid[], $27::int2[], $28::int2[], $29::int4[], $30::int4[],"
    " $31::bytea[], $32::text[], $33::timestamptz[], $34::timestamptz[])"
    " AS x(id, step, status, att, catt, out, err, started, finished)"
    " WHERE x.id IN (SELECT id FROM ok)"
    " ON CONFLICT (saga_id, step) DO UPDATE SET"
    " status = excluded.status, attempts = excluded.attempts,"
    " compensate_attempts = excluded.compensate_attempts,"
    " output = COALESCE(excluded.output, t.output), error = excluded.error,"
    " started_at = COALESCE(t.started_at, excluded.started_at),"
    " finished_at = excluded.finished_at"
    "), ev AS ("
    " INSERT INTO saga_events (saga_id, seq, at, kind, step, attempt, status, detail)"
    " SELECT e.id, ok.events - e.back, e.at, e.kind, e.step, e.att, e.status, e.detail"
    " FROM unnest($35::uuid[], $36::int4[], $37::timestamptz[], $38::text[], $39::int2[],"
    " $40::int4[], $41::int2[], $42::text[])"
    " AS e(id, back, at, kind, step, att, status, detail)"
    " JOIN ok ON ok.id = e.id"
    ")"
    " SELECT id FROM ok";

/* After a batch: who wrote these rows last, and which sagas hold these keys.
 * Tells a retried write that already committed from a fenced one, and an
 * idempotent start from a new one. */
static const char sql_write_check[] =
    "SELECT id, write_token, idempotency_key FROM sagas"
    " WHERE id = ANY($1::uuid[]) OR idempotency_key = ANY($2::text[])";

static const char sql_define[] =
    "INSERT INTO saga_definitions (name, version, mode, canonical, hash)"
    " VALUES ($1, $2::int4, $3::int2, $4, $5) ON CONFLICT DO NOTHING RETURNING 1";

static const char sql_define_check[] =
    "SELECT hash FROM saga_definitions WHERE name = $1 AND version = $2::int4";

static const char sql_def_get[] =
    "SELECT name, version, mode, canonical, hash, created_at FROM saga_definitions"
    " WHERE name = $1 AND ($2::int4 = 0 OR version = $2::int4)"
    " ORDER BY version DESC LIMIT 1";

static const char sql_get_saga[] = "SELECT id, definition, version, mode, n_steps, status, input,"
                                   " idempotency_key, owner, epoch, lease_until, wake_at,"
                                   " deadline_at, created_at, updated_at, error, events"
                                   " FROM sagas WHERE id = $1::uuid";

static const char sql_get_steps[] =
    "SELECT step, status, attempts, compensate_attempts, output, error, started_at, finished_at"
    " FROM saga_steps WHERE saga_id = $1::uuid ORDER BY step";

static const char sql_get_events[] = "SELECT seq, at, kind, step, attempt, status, detail"
                                     " FROM saga_events WHERE saga_id = $1::uuid ORDER BY seq";

/* Claims: lock up to $2 rows (skipping rows others hold), move them to this
 * owner ($1) and store incarnation ($5) at a new epoch, then return them with
 * their steps (kind 1) and their definitions (kind 2) in one result. $3 is the
 * claim's token (a retry after a lost connection finds what it took), $4 the
 * lease length, $6 (reclaim only) the saga id. Columns:
 *   kind, id, epoch, name, version, mode, n (n_steps or step), status,
 *   data (input or output), txt (error or canonical), created, deadline,
 *   wake, attempts, compensate_attempts, hash */
#define CLAIM(cond)                                                                            \
    "WITH c AS ("                                                                              \
    " SELECT id FROM sagas WHERE " ACTIVE " AND " cond " ORDER BY lease_until LIMIT $2::int4"  \
    " FOR UPDATE SKIP LOCKED"                                                                  \
    "), u AS ("                                                                                \
    " UPDATE sagas s SET owner = $1, epoch = s.epoch + 1, holder = $5::int8,"                  \
    " lease_until = now() + $4::int8 " MS ", write_token = $3::int8, updated_at = now()"       \
    " FROM c WHERE s.id = c.id"                                                                \
    " RETURNING s.id, s.epoch, s.definition, s.version, s.mode, s.n_steps, s.status, s.input," \
    " s.error, s.created_at, s.deadline_at, s.wake_at"                                         \
    ")"                                                                                        \
    " SELECT 0::int2 AS kind, id, epoch, definition AS name, version, mode, n_steps AS n,"     \
    " status, input AS data, error AS txt, created_at, deadline_at, wake_at,"                  \
    " NULL::int4 AS attempts, NULL::int4 AS catt, NULL::text AS hash FROM u"                   \
    " UNION ALL"                                                                               \
    " SELECT 1, t.saga_id, NULL, NULL, NULL, NULL, t.step, t.status, t.output, t.error,"       \
    " NULL, NULL, NULL, t.attempts, t.compensate_attempts, NULL"                               \
    " FROM saga_steps t WHERE t.saga_id IN (SELECT id FROM u)"                                 \
    " UNION ALL"                                                                               \
    " SELECT 2, NULL, NULL, d.name, d.version, d.mode, NULL, NULL, NULL, d.canonical,"         \
    " d.created_at, NULL, NULL, NULL, NULL, d.hash"                                            \
    " FROM saga_definitions d WHERE (d.name, d.version) IN (SELECT definition, version FROM u)"

static const char sql_claim_expired[] = CLAIM("lease_until < now()");
/* Left under this owner id by an earlier incarnation (a restart). */
static const char sql_claim_own[] = CLAIM("owner = $1 AND holder <> $5::int8");
static const char sql_claim_token[] = CLAIM("owner = $1 AND write_token = $3::int8");
/* One saga this owner holds (to load it again), or whose lease ended. */
static const char sql_claim_one[] = CLAIM("id = $6::uuid AND (owner = $1 OR lease_until < now())");

/* The same test as ACTIVE, written so that it cannot lead the planner to the
 * partial indexes on active sagas: those keep an entry for every saga that
 * ended since the last vacuum, and the statistics do not show it. */
#define ACTIVE_BY_ID "(status + 0) NOT IN (3, 4, 9, 10)"

/* The sagas among $4 that this incarnation holds, found by primary key. Rows
 * a write batch holds are skipped: waiting for them could deadlock with that
 * batch, and the batch extends their lease itself. */
static const char sql_renew[] =
    "UPDATE sagas s SET lease_until = now() + $2::int8 " MS
    " FROM (SELECT id FROM sagas WHERE id = ANY($4::uuid[]) AND owner = $1"
    " AND holder = $3::int8 AND " ACTIVE_BY_ID " FOR UPDATE SKIP LOCKED) l"
    " WHERE s.id = l.id";

static const char sql_release[] = "UPDATE sagas SET owner = NULL, lease_until = now()"
                                  " WHERE owner = $1 AND " ACTIVE;

static const char sql_release_token[] = "UPDATE sagas SET owner = NULL, lease_until = now()"
                                        " WHERE owner = $1 AND write_token = $2::int8 AND " ACTIVE;

static const char sql_register[] =
    "INSERT INTO saga_coordinators (id, address, started_at, heartbeat_at)"
    " VALUES ($1, $2, now(), now()) ON CONFLICT (id) DO UPDATE SET address = excluded.address,"
    " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at";

static const char sql_heartbeat[] = "UPDATE saga_coordinators SET heartbeat_at = now()"
                                    " WHERE id = $1";

static const char sql_instances[] = "SELECT id, address, started_at, heartbeat_at"
                                    " FROM saga_coordinators"
                                    " WHERE heartbeat_at > now() - $1::int8 " MS " ORDER BY id";

static const char sql_unregister[] = "DELETE FROM saga_coordinators WHERE id = $1";

const struct pg_stmt store_stmts[STMT_COUNT_] = {
    [STMT_WRITE] = {"saga_write", sql_write},
    [STMT_WRITE_CHECK] = {"saga_write_check", sql_write_check},
    [STMT_DEFINE] = {"saga_define", sql_define},
    [STMT_DEFINE_CHECK] = {"saga_define_check", sql_define_check},
    [STMT_DEF_GET] = {"saga_def_get", sql_def_get},
    [STMT_BEGIN_RO] = {"saga_begin_ro", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"},
    [STMT_COMMIT] = {"saga_commit", "COMMIT"},
    [STMT_GET_SAGA] = {"saga_get", sql_get_saga},
    [STMT_GET_STEPS] = {"saga_get_steps", sql_get_steps},
    [STMT_GET_EVENTS] = {"saga_get_events", sql_get_events},
    [STMT_CLAIM_EXPIRED] = {"saga_claim_expired", sql_claim_expired},
    [STMT_CLAIM_OWN] = {"saga_claim_own", sql_claim_own},
    [STMT_CLAIM_TOKEN] = {"saga_claim_token", sql_claim_token},
    [STMT_CLAIM_ONE] = {"saga_claim_one", sql_claim_one},
    [STMT_RENEW] = {"saga_renew", sql_renew},
    [STMT_RELEASE] = {"saga_release", sql_release},
    [STMT_RELEASE_TOKEN] = {"saga_release_token", sql_release_token},
    [STMT_REGISTER] = {"saga_register", sql_register},
    [STMT_HEARTBEAT] = {"saga_heartbeat", sql_heartbeat},
    [STMT_INSTANCES] = {"saga_instances", sql_instances},
    [STMT_UNREGISTER] = {"saga_unregister", sql_unregister},
};

int sqlstate_transient(const char *st)
{
    /* 08 connection, 40 rollback (serialization, deadlock), 53 resources,
     * 57 operator intervention (shutdown, cancel), 55P03 lock not available. */
    return strncmp(st, "08", 2) == 0 || strncmp(st, "40", 2) == 0 || strncmp(st, "53", 2) == 0 ||
           strncmp(st, "57", 2) == 0 || strcmp(st, "55P03") == 0;
}

int sqlstate_to_err(const char *st)
{
    if (strcmp(st, "23505") == 0)
        return SAGA_EEXIST;
    if (strncmp(st, "22", 2) == 0 || strncmp(st, "23", 2) == 0)
        return SAGA_EINVAL;
    return SAGA_EDB;
}

int sql_list(char *out, size_t size, int status, int definition, int since, int cursor)
{
    int k = 0;
    size_t len = 0;
    int n = snprintf(out, size,
                     "SELECT id, definition, version, mode, n_steps, status, NULL::bytea,"
                     " idempotency_key, owner, epoch, lease_until, wake_at, deadline_at,"
                     " created_at, updated_at, error, events FROM sagas WHERE true");
    if (n < 0 || (size_t)n >= size)
        return SAGA_ENOMEM;
    len = (size_t)n;
    if (status) {
        n = snprintf(out + len, size - len, " AND status = $%d::int2", ++k);
        if (n < 0 || (size_t)n >= size - len)
            return SAGA_ENOMEM;
        len += (size_t)n;
    }
    if (definition) {
        n = snprintf(out + len, size - len, " AND definition = $%d::text", ++k);
        if (n < 0 || (size_t)n >= size - len)
            return SAGA_ENOMEM;
        len += (size_t)n;
    }
    if (since) {
        n = snprintf(out + len, size - len, " AND created_at >= $%d::timestamptz", ++k);
        if (n < 0 || (size_t)n >= size - len)
            return SAGA_ENOMEM;
        len += (size_t)n;
    }
    if (cursor) {
        n = snprintf(out + len, size - len, " AND (created_at, id) < ($%d::timestamptz, $%d::uuid)",
                     k + 1, k + 2);
        k += 2;
        if (n < 0 || (size_t)n >= size - len)
            return SAGA_ENOMEM;
        len += (size_t)n;
    }
    n = snprintf(out + len, size - len, " ORDER BY created_at DESC, id DESC LIMIT $%d::int4", ++k);
    if (n < 0 || (size_t)n >= size - len)
        return SAGA_ENOMEM;
    return 0;
}
