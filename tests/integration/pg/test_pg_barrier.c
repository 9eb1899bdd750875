/* libsaga-pg against a real PostgreSQL: the barrier (duplicates, null
 * compensation, hanging protection, what FAIL and RETRY remember, concurrent
 * deliveries), two-phase commit on prepared transactions (skipped when the
 * server has max_prepared_transactions = 0), the cleanup job and the
 * connection pool. Creates and drops a
 * database of its own on the server SAGA_TEST_DATABASE_URL names (exit 77,
 * skipped, when it is unset). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "saga/pg.h"

struct fixture {
    char dbname[64];
    PGconn *admin; /* on the server's database, to create and drop ours */
    PGconn *db;
    PGconn *db2;
};

/* What the effect functions do, and how often they ran. */
struct effect_plan {
    saga_outcome_t outcome;
    const char *output;
    const char *reason;
    int runs;
    int bad_sql; /* run a statement that fails, then answer as planned */
    int silent;  /* decide nothing */
    unsigned sleep_ms;
    char seen_forward[64]; /* backward ops: the forward output they were given */
};

static PGconn *connect_db(const char *url, const char *dbname)
{
    const char *keys[] = {"dbname", dbname != NULL ? "dbname" : NULL, NULL};
    const char *vals[] = {url, dbname, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("cannot connect: %s", PQerrorMessage(c));
    return c;
}

static void sql(PGconn *db, const char *text)
{
    PGresult *res = PQexecParams(db, text, 0, NULL, NULL, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", text, PQerrorMessage(db));
    PQclear(res);
}

static long sql_int(PGconn *db, const char *text)
{
    PGresult *res = PQexecParams(db, text, 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", text, PQerrorMessage(db));
    long v =
        PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) ? strtol(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return v;
}

static const char *server_url(void)
{
    const char *url = getenv("SAGA_TEST_DATABASE_URL");
    if (url == NULL || url[0] == '\0') {
        fprintf(stderr, "SAGA_TEST_DATABASE_URL is not set: skipping\n");
        exit(77);
    }
    return url;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    const char *url = server_url();
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(f->dbname, sizeof(f->dbname), "saga_pg_%ld_%ld_%ld", (long)getpid(), (long)ts.tv_sec,
             (long)ts.tv_nsec);
    f->admin = connect_db(url, NULL);
    char text[128];
    snprintf(text, sizeof(text), "CREATE DATABASE %s", f->dbname);
    sql(f->admin, text);
    f->db = connect_db(url, f->dbname);
    f->db2 = connect_db(url, f->dbname);
    assert_int_equal(saga_pg_barrier_setup(f->db), 0);
    sql(f->db, "CREATE TABLE effects (k text, v text)");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char text[128];
    /* A prepared transaction left behind would keep the database from being
     * dropped. */
    PGresult *left = PQexecParams(f->db,
                                  "SELECT gid FROM pg_prepared_xacts"
                                  " WHERE database = current_database()",
                                  0, NULL, NULL, NULL, NULL, 0);
    for (int i = 0; PQresultStatus(left) == PGRES_TUPLES_OK && i < PQntuples(left); i++) {
        snprintf(text, sizeof(text), "ROLLBACK PREPARED '%s'", PQgetvalue(left, i, 0));
        sql(f->db, text);
    }
    PQclear(left);
    PQfinish(f->db);
    PQfinish(f->db2);
    snprintf(text, sizeof(text), "DROP DATABASE IF EXISTS %s WITH (FORCE)", f->dbname);
    sql(f->admin, text);
    PQfinish(f->admin);
    free(f);
    return 0;
}

/* The effect: one row in `effects` per run that took place. */
static void effect(PGconn *db, saga_pg_effect_t *e, void *data)
{
    struct effect_plan *p = data;
    const saga_pg_key_t *k = saga_pg_effect_key(e);
    char key[64];
    p->runs++;
    if (p->sleep_ms > 0)
        usleep(p->sleep_ms * 1000);
    size_t flen = 0;
    const uint8_t *fwd = saga_pg_effect_forward_output(e, &flen);
    snprintf(p->seen_forward, sizeof(p->seen_forward), "%.*s", (int)flen, (const char *)fwd);
    snprintf(key, sizeof(key), "%u/%s", (unsigned)k->step_index, saga_op_name(k->op));
    const char *vals[2] = {key, p->output != NULL ? p->output : ""};
    PGresult *res = PQexecParams(db, "INSERT INTO effects (k, v) VALUES ($1, $2)", 2, NULL, vals,
                                 NULL, NULL, 0);
    PQclear(res);
    if (p->bad_sql) {
        res = PQexecParams(db, "SELECT no_such_column FROM effects", 0, NULL, NULL, NULL, NULL, 0);
        PQclear(res);
    }
    if (p->silent)
        return;
    switch (p->outcome) {
    case SAGA_OUTCOME_OK:
        assert_int_equal(saga_pg_effect_ok(e, p->output, p->output != NULL ? strlen(p->output) : 0),
                         0);
        assert_int_equal(saga_pg_effect_ok(e, NULL, 0), SAGA_EALREADY);
        break;
    case SAGA_OUTCOME_FAIL:
        assert_int_equal(saga_pg_effect_fail(e, p->reason), 0);
        break;
    default:
        assert_int_equal(saga_pg_effect_retry(e, p->reason), 0);
        break;
    }
}

static saga_pg_key_t key_of(uint8_t seed, uint32_t step, saga_op_t op)
{
    saga_pg_key_t k = {.step_index = step, .op = op, .step = "reserve"};
    memset(k.saga_id, seed, SAGA_ID_LEN);
    return k;
}

static long effects_of(PGconn *db, uint32_t step, const char *op)
{
    char text[160];
    snprintf(text, sizeof(text), "SELECT count(*) FROM effects WHERE k = '%u/%s'", (unsigned)step,
             op);
    return sql_int(db, text);
}

static void run(PGconn *db, saga_pg_key_t k, struct effect_plan *p, saga_pg_outcome_t *out,
                int want_rc)
{
    saga_pg_outcome_clear(out);
    assert_int_equal(saga_pg_barrier_run(db, &k, effect, p, out), want_rc);
}

static void test_setup_twice(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(saga_pg_barrier_setup(f->db), 0);
    assert_int_equal(saga_pg_barrier_setup(f->db2), 0);
    assert_int_equal(PQtransactionStatus(f->db), PQTRANS_IDLE);
}

static void test_action_once_then_duplicate(void **state)
{
    struct fixture *f = *state;
    struct effect_plan p = {.outcome = SAGA_OUTCOME_OK, .output = "reserved:7"};
    saga_pg_outcome_t out = {0};
    saga_pg_key_t k = key_of(1, 0, SAGA_OP_ACTION);

    run(f->db, k, &p, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(out.replayed, 0);
    assert_int_equal(out.skipped, 0);
    assert_int_equal(out.output_len, 10);
    assert_memory_equal(out.output, "reserved:7", 10);

    /* The same command again, on another connection: not run, same answer. */
    p.output = "different";
    run(f->db2, k, &p, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(out.replayed, 1);
    assert_memory_equal(out.output, "reserved:7", 10);
    assert_int_equal(p.runs, 1);
    assert_int_equal(effects_of(f->db, 0, "action"), 1);
    assert_int_equal(PQtransactionStatus(f->db2), PQTRANS_IDLE);
    saga_pg_outcome_clear(&out);
}

static void test_fail_is_remembered_and_rolled_back(void **state)
{
    struct fixture *f = *state;
    struct effect_plan p = {.outcome = SAGA_OUTCOME_FAIL, .reason = "out of stock"};
    saga_pg_outcome_t out = {0};
    saga_pg_key_t k = key_of(2, 1, SAGA_OP_ACTION);

    run(f->db, k, &p, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_FAIL);
    assert_string_equal(out.reason, "out of stock");
    assert_int_equal(effects_of(f->db, 1, "action"), 0); /* what it wrote is gone */

    p.outcome = SAGA_OUTCOME_OK;
    run(f->db, k, &p, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_FAIL);
    assert_int_equal(out.replayed, 1);
    assert_string_equal(out.reason, "out of stock");
    assert_int_equal(p.runs, 1);

    /* Its compensation has nothing to undo. */
    struct effect_plan c = {.outcome = SAGA_OUTCOME_OK};
    run(f->db, key_of(2, 1, SAGA_OP_COMPENSATE), &c, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(out.skipped, 1);
    assert_int_equal(c.runs, 0);
    saga_pg_outcome_clear(&out);
}

static void test_retry_remembers_nothing(void **state)
{
    struct fixture *f = *state;
    struct effect_plan p = {.outcome = SAGA_OUTCOME_RETRY, .reason = "lock timeout"};
    saga_pg_outcome_t out = {0};
    saga_pg_key_t k = key_of(3, 0, SAGA_OP_ACTION);

    run(f->db, k, &p, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_RETRY);
    assert_string_equal(out.reason, "lock timeout");
    assert_int_equal(effects_of(f->db, 0, "action"), 0);

    p.outcome = SAGA_OUTCOME_OK;
    p.output = "done";
    run(f->db, k, &p, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(out.replayed, 0);
    assert_int_equal(p.runs, 2);
    assert_int_equal(effects_of(f->db, 0, "action"), 1);

    /* An effect that decides nothing is a retry too. */
    struct effect_plan silent = {.silent = 1};
    run(f->db, key_of(3, 1, SAGA_OP_ACTION), &silent, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_RETRY);
    assert_non_null(out.reason);
    assert_int_equal(effects_of(f->db, 1, "action"), 0);
    saga_pg_outcome_clear(&out);
}

static void test_compensate_after_action(void **state)
{
    struct fixture *f = *state;
    struct effect_plan a = {.outcome = SAGA_OUTCOME_OK, .output = "charge-42"};
    struct effect_plan c = {.outcome = SAGA_OUTCOME_OK, .output = "refunded"};
    saga_pg_outcome_t out = {0};

    run(f->db, key_of(4, 2, SAGA_OP_ACTION), &a, &out, 0);
    run(f->db, key_of(4, 2, SAGA_OP_COMPENSATE), &c, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(out.skipped, 0);
    assert_int_equal(c.runs, 1);
    assert_string_equal(c.seen_forward, "charge-42"); /* the barrier's copy of the output */

    run(f->db2, key_of(4, 2, SAGA_OP_COMPENSATE), &c, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(out.replayed, 1);
    assert_int_equal(c.runs, 1);
    assert_int_equal(effects_of(f->db, 2, "compensate"), 1);

    /* A late duplicate of the action changes nothing either. */
    run(f->db, key_of(4, 2, SAGA_OP_ACTION), &a, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(out.replayed, 1);
    assert_int_equal(a.runs, 1);
    saga_pg_outcome_clear(&out);
}

static void test_null_compensation_then_late_action(void **state)
{
    struct fixture *f = *state;
    struct effect_plan c = {.outcome = SAGA_OUTCOME_OK};
    struct effect_plan a = {.outcome = SAGA_OUTCOME_OK, .output = "late"};
    saga_pg_outcome_t out = {0};

    /* The action's command was lost: its compensation comes first. */
    run(f->db, key_of(5, 0, SAGA_OP_COMPENSATE), &c, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(out.skipped, 1);
    assert_int_equal(out.replayed, 0);
    assert_int_equal(c.runs, 0);

    /* Then the action arrives after all (hanging): not run, FAIL. */
    run(f->db, key_of(5, 0, SAGA_OP_ACTION), &a, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_FAIL);
    assert_int_equal(out.replayed, 1);
    assert_int_equal(out.skipped, 1);
    assert_non_null(strstr(out.reason, "compensated before"));
    assert_int_equal(a.runs, 0);
    assert_int_equal(effects_of(f->db, 0, "action"), 0);

    /* The compensation again: the stored null compensation. */
    run(f->db2, key_of(5, 0, SAGA_OP_COMPENSATE), &c, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(out.replayed, 1);
    assert_int_equal(c.runs, 0);
    saga_pg_outcome_clear(&out);
}

static void test_compensate_fail_runs_again(void **state)
{
    struct fixture *f = *state;
    struct effect_plan a = {.outcome = SAGA_OUTCOME_OK, .output = "x"};
    struct effect_plan c = {.outcome = SAGA_OUTCOME_FAIL, .reason = "card closed"};
    saga_pg_outcome_t out = {0};

    run(f->db, key_of(6, 0, SAGA_OP_ACTION), &a, &out, 0);
    run(f->db, key_of(6, 0, SAGA_OP_COMPENSATE), &c, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_FAIL);
    assert_string_equal(out.reason, "card closed");
    assert_int_equal(effects_of(f->db, 0, "compensate"), 0);

    /* The operator fixed it and retried: the compensation runs for real. */
    c.outcome = SAGA_OUTCOME_OK;
    run(f->db, key_of(6, 0, SAGA_OP_COMPENSATE), &c, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(out.replayed, 0);
    assert_int_equal(c.runs, 2);
    assert_int_equal(effects_of(f->db, 0, "compensate"), 1);
    saga_pg_outcome_clear(&out);
}

static void test_database_error_in_effect(void **state)
{
    struct fixture *f = *state;
    struct effect_plan p = {.outcome = SAGA_OUTCOME_OK, .output = "x", .bad_sql = 1};
    saga_pg_outcome_t out = {0};

    /* The effect's statement failed but it said OK: nothing is kept. */
    run(f->db, key_of(7, 0, SAGA_OP_ACTION), &p, &out, SAGA_EDB);
    assert_int_equal(out.outcome, SAGA_OUTCOME_RETRY);
    assert_non_null(strstr(out.reason, "database error"));
    assert_int_equal(PQtransactionStatus(f->db), PQTRANS_IDLE);
    assert_int_equal(effects_of(f->db, 0, "action"), 0);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM saga_barrier WHERE step = 0 AND "
                                    "saga_id = '07070707-0707-0707-0707-070707070707'"),
                     0);

    /* A refusal after a failed statement still rolls back cleanly. */
    p.outcome = SAGA_OUTCOME_FAIL;
    p.reason = "no";
    run(f->db, key_of(7, 0, SAGA_OP_ACTION), &p, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_FAIL);
    saga_pg_outcome_clear(&out);
}

static void test_2pc_ops(void **state)
{
    struct fixture *f = *state;
    struct effect_plan p = {.outcome = SAGA_OUTCOME_OK, .output = "held"};
    struct effect_plan ab = {.outcome = SAGA_OUTCOME_OK};
    saga_pg_outcome_t out = {0};

    run(f->db, key_of(8, 0, SAGA_OP_PREPARE), &p, &out, 0);
    run(f->db, key_of(8, 0, SAGA_OP_COMMIT), &p, &out, 0);
    run(f->db, key_of(8, 0, SAGA_OP_COMMIT), &p, &out, 0);
    assert_int_equal(out.replayed, 1);
    assert_int_equal(p.runs, 2);

    /* An abort whose prepare never came: null, and the prepare is barred. */
    run(f->db, key_of(8, 1, SAGA_OP_ABORT), &ab, &out, 0);
    assert_int_equal(out.skipped, 1);
    run(f->db, key_of(8, 1, SAGA_OP_PREPARE), &p, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_FAIL);
    assert_int_equal(p.runs, 2);
    assert_int_equal(ab.runs, 0);
    saga_pg_outcome_clear(&out);
}

/* ---- two-phase commit on prepared transactions ---- */

static void need_prepared_transactions(PGconn *db)
{
    if (sql_int(db, "SELECT setting::int FROM pg_settings"
                    " WHERE name = 'max_prepared_transactions'") == 0) {
        fprintf(stderr, "max_prepared_transactions is 0 on this server: skipping\n");
        skip();
    }
}

static long prepared_count(PGconn *db)
{
    return sql_int(db, "SELECT count(*) FROM pg_prepared_xacts"
                       " WHERE database = current_database()");
}

static void xa_prepare(PGconn *db, saga_pg_key_t k, struct effect_plan *p, saga_pg_outcome_t *out,
                       int want_rc)
{
    saga_pg_outcome_clear(out);
    assert_int_equal(saga_pg_xa_prepare_run(db, &k, effect, p, out), want_rc);
}

static void xa_decide(PGconn *db, saga_pg_key_t k, saga_pg_outcome_t *out, int want_rc)
{
    saga_pg_outcome_clear(out);
    assert_int_equal(saga_pg_xa_decide_run(db, &k, out), want_rc);
}

static void test_xa_gid(void **state)
{
    (void)state;
    uint8_t id[SAGA_ID_LEN];
    char gid[SAGA_PG_XA_GID_LEN];
    memset(id, 0xab, sizeof(id));
    assert_int_equal(saga_pg_xa_gid(id, 7, gid, sizeof(gid)), 0);
    assert_string_equal(gid, "saga:abababab-abab-abab-abab-abababababab:7");
    assert_int_equal(saga_pg_xa_gid(id, 7, gid, 10), SAGA_EINVAL);
    assert_int_equal(saga_pg_xa_gid(NULL, 7, gid, sizeof(gid)), SAGA_EINVAL);
}

static void test_xa_prepare_then_commit(void **state)
{
    struct fixture *f = *state;
    need_prepared_transactions(f->db);
    struct effect_plan p = {.outcome = SAGA_OUTCOME_OK, .output = "held"};
    saga_pg_outcome_t out = {0};

    xa_prepare(f->db, key_of(20, 0, SAGA_OP_PREPARE), &p, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(out.replayed, 0);
    assert_int_equal(out.output_len, 4);
    /* Prepared: listed, invisible to everyone until the decision. */
    assert_int_equal(prepared_count(f->db), 1);
    assert_int_equal(effects_of(f->db2, 0, "prepare"), 0);
    saga_pg_xa_prepared_t *list = NULL;
    size_t n = 0;
    assert_int_equal(saga_pg_xa_list(f->db, &list, &n), 0);
    assert_int_equal(n, 1);
    uint8_t want[SAGA_ID_LEN];
    memset(want, 20, sizeof(want));
    assert_memory_equal(list[0].saga_id, want, SAGA_ID_LEN);
    assert_int_equal(list[0].step_index, 0);
    assert_true(list[0].prepared_ms > 1600000000000LL);
    free(list);

    /* The prepare again (a redelivery), on the other connection: not run,
     * OK, and it does not wait for the prepared transaction's locks. */
    xa_prepare(f->db2, key_of(20, 0, SAGA_OP_PREPARE), &p, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(out.replayed, 1);
    assert_int_equal(p.runs, 1);

    xa_decide(f->db2, key_of(20, 0, SAGA_OP_COMMIT), &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(out.replayed, 0);
    assert_int_equal(prepared_count(f->db), 0);
    assert_int_equal(effects_of(f->db2, 0, "prepare"), 1);

    /* Commit again: OK from the committed barrier row. A prepare after the
     * commit answers as the prepare did, and runs nothing. */
    xa_decide(f->db, key_of(20, 0, SAGA_OP_COMMIT), &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(out.replayed, 1);
    xa_prepare(f->db, key_of(20, 0, SAGA_OP_PREPARE), &p, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(out.replayed, 1);
    assert_int_equal(p.runs, 1);
    assert_int_equal(prepared_count(f->db), 0);

    /* An abort after the commit cannot undo it. */
    xa_decide(f->db, key_of(20, 0, SAGA_OP_ABORT), &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_FAIL);
    assert_int_equal(effects_of(f->db2, 0, "prepare"), 1);
    saga_pg_outcome_clear(&out);
}

static void test_xa_prepare_then_abort(void **state)
{
    struct fixture *f = *state;
    need_prepared_transactions(f->db);
    struct effect_plan p = {.outcome = SAGA_OUTCOME_OK, .output = "held"};
    saga_pg_outcome_t out = {0};

    xa_prepare(f->db, key_of(21, 2, SAGA_OP_PREPARE), &p, &out, 0);
    assert_int_equal(prepared_count(f->db), 1);
    xa_decide(f->db2, key_of(21, 2, SAGA_OP_ABORT), &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(out.skipped, 0);
    assert_int_equal(prepared_count(f->db), 0);
    assert_int_equal(effects_of(f->db, 2, "prepare"), 0);

    /* Abort again: OK. A late prepare: barred, runs nothing, prepares
     * nothing. A commit now has nothing to commit. */
    xa_decide(f->db, key_of(21, 2, SAGA_OP_ABORT), &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(out.replayed, 1);
    xa_prepare(f->db, key_of(21, 2, SAGA_OP_PREPARE), &p, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_FAIL);
    assert_int_equal(p.runs, 1);
    assert_int_equal(prepared_count(f->db), 0);
    xa_decide(f->db, key_of(21, 2, SAGA_OP_COMMIT), &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_FAIL);
    assert_non_null(strstr(out.reason, "nothing prepared"));
    saga_pg_outcome_clear(&out);
}

static void test_xa_abort_before_prepare_and_refusals(void **state)
{
    struct fixture *f = *state;
    need_prepared_transactions(f->db);
    struct effect_plan p = {.outcome = SAGA_OUTCOME_OK, .output = "held"};
    struct effect_plan no = {.outcome = SAGA_OUTCOME_FAIL, .reason = "out of stock"};
    struct effect_plan later = {.outcome = SAGA_OUTCOME_RETRY, .reason = "busy"};
    saga_pg_outcome_t out = {0};

    /* The abort overtook its prepare: null, and the prepare is barred. */
    xa_decide(f->db, key_of(22, 0, SAGA_OP_ABORT), &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(out.skipped, 1);
    xa_prepare(f->db, key_of(22, 0, SAGA_OP_PREPARE), &p, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_FAIL);
    assert_int_equal(p.runs, 0);

    /* A refused prepare prepares nothing and is remembered; its abort is
     * null and its commit finds nothing. */
    xa_prepare(f->db, key_of(22, 1, SAGA_OP_PREPARE), &no, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_FAIL);
    assert_string_equal(out.reason, "out of stock");
    assert_int_equal(prepared_count(f->db), 0);
    assert_int_equal(effects_of(f->db, 1, "prepare"), 0);
    xa_prepare(f->db, key_of(22, 1, SAGA_OP_PREPARE), &p, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_FAIL);
    assert_int_equal(out.replayed, 1);
    xa_decide(f->db, key_of(22, 1, SAGA_OP_COMMIT), &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_FAIL);
    xa_decide(f->db, key_of(22, 1, SAGA_OP_ABORT), &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(out.skipped, 1);

    /* RETRY prepares nothing and remembers nothing: the next one runs. */
    xa_prepare(f->db, key_of(22, 2, SAGA_OP_PREPARE), &later, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_RETRY);
    assert_int_equal(prepared_count(f->db), 0);
    xa_prepare(f->db, key_of(22, 2, SAGA_OP_PREPARE), &p, &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(prepared_count(f->db), 1);

    /* Wrong ops, and a connection inside a transaction. */
    xa_prepare(f->db, key_of(22, 3, SAGA_OP_ACTION), &p, &out, SAGA_EINVAL);
    xa_decide(f->db, key_of(22, 3, SAGA_OP_COMPENSATE), &out, SAGA_EINVAL);
    sql(f->db2, "BEGIN");
    xa_decide(f->db2, key_of(22, 2, SAGA_OP_COMMIT), &out, SAGA_EINVAL);
    sql(f->db2, "ROLLBACK");
    xa_decide(f->db2, key_of(22, 2, SAGA_OP_COMMIT), &out, 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(effects_of(f->db, 2, "prepare"), 1);
    saga_pg_outcome_clear(&out);
}

/* Takes one from the stock row; RETRY when the row cannot be had. */
static void take_stock(PGconn *db, saga_pg_effect_t *e, void *data)
{
    struct effect_plan *p = data;
    p->runs++;
    PGresult *res =
        PQexecParams(db, "UPDATE stock SET n = n - 1 WHERE item = 1", 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_COMMAND_OK)
        saga_pg_effect_ok(e, "took", 4);
    else
        saga_pg_effect_retry(e, "the stock row is locked");
    PQclear(res);
}

/* A prepared transaction holds its rows' locks until its decision: a
 * prepare that needs them gives up after a second with RETRY instead of
 * waiting (the decision may need the very thread that waits). */
static void test_xa_waits_are_bounded(void **state)
{
    struct fixture *f = *state;
    need_prepared_transactions(f->db);
    struct effect_plan p = {0};
    saga_pg_outcome_t out = {0};
    sql(f->db, "CREATE TABLE stock (item int PRIMARY KEY, n int)");
    sql(f->db, "INSERT INTO stock VALUES (1, 10)");
    sql(f->db, "BEGIN");
    sql(f->db, "UPDATE stock SET n = n - 1 WHERE item = 1");
    sql(f->db, "PREPARE TRANSACTION 'another_saga'");

    saga_pg_key_t k = key_of(23, 0, SAGA_OP_PREPARE);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(saga_pg_xa_prepare_run(f->db2, &k, take_stock, &p, &out), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(out.outcome, SAGA_OUTCOME_RETRY);
    assert_true(t1.tv_sec - t0.tv_sec < 10);
    assert_int_equal(PQtransactionStatus(f->db2), PQTRANS_IDLE);
    assert_int_equal(prepared_count(f->db), 1);

    /* The other saga's decision frees the row: the next delivery goes through. */
    sql(f->db, "ROLLBACK PREPARED 'another_saga'");
    saga_pg_outcome_clear(&out);
    assert_int_equal(saga_pg_xa_prepare_run(f->db2, &k, take_stock, &p, &out), 0);
    assert_int_equal(out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(p.runs, 2);
    xa_decide(f->db, key_of(23, 0, SAGA_OP_COMMIT), &out, 0);
    assert_int_equal(sql_int(f->db, "SELECT n FROM stock WHERE item = 1"), 9);
    saga_pg_outcome_clear(&out);
}

struct racer {
    PGconn *db;
    saga_pg_key_t key;
    struct effect_plan plan;
    saga_pg_outcome_t out;
    int rc;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    r->rc = saga_pg_barrier_run(r->db, &r->key, effect, &r->plan, &r->out);
    return NULL;
}

static void test_concurrent_deliveries(void **state)
{
    struct fixture *f = *state;
    /* The same action delivered twice at once: the slow first one holds the
     * barrier row; the second waits for it and answers as it did. */
    struct racer a = {.db = f->db,
                      .key = key_of(9, 0, SAGA_OP_ACTION),
                      .plan = {.outcome = SAGA_OUTCOME_OK, .output = "once", .sleep_ms = 300}};
    struct racer b = {.db = f->db2,
                      .key = key_of(9, 0, SAGA_OP_ACTION),
                      .plan = {.outcome = SAGA_OUTCOME_OK, .output = "twice"}};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, race, &a), 0);
    usleep(100 * 1000);
    assert_int_equal(pthread_create(&tb, NULL, race, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    assert_int_equal(a.plan.runs + b.plan.runs, 1);
    assert_int_equal(b.out.replayed, 1);
    assert_memory_equal(b.out.output, "once", 4);
    assert_int_equal(effects_of(f->db, 0, "action"), 1);

    /* A compensation racing a slow action waits for it and undoes it. */
    struct racer c = {.db = f->db,
                      .key = key_of(10, 0, SAGA_OP_ACTION),
                      .plan = {.outcome = SAGA_OUTCOME_OK, .output = "slow", .sleep_ms = 300}};
    struct racer d = {.db = f->db2,
                      .key = key_of(10, 0, SAGA_OP_COMPENSATE),
                      .plan = {.outcome = SAGA_OUTCOME_OK}};
    assert_int_equal(pthread_create(&ta, NULL, race, &c), 0);
    usleep(100 * 1000);
    assert_int_equal(pthread_create(&tb, NULL, race, &d), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(c.out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(d.out.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(d.out.skipped, 0);
    assert_int_equal(d.plan.runs, 1);
    assert_string_equal(d.plan.seen_forward, "slow");
    saga_pg_outcome_clear(&a.out);
    saga_pg_outcome_clear(&b.out);
    saga_pg_outcome_clear(&c.out);
    saga_pg_outcome_clear(&d.out);
}

static void test_bad_arguments(void **state)
{
    struct fixture *f = *state;
    struct effect_plan p = {.outcome = SAGA_OUTCOME_OK};
    saga_pg_outcome_t out = {0};
    saga_pg_key_t k = key_of(11, 0, SAGA_OP_ACTION);

    assert_int_equal(saga_pg_barrier_run(NULL, &k, effect, &p, &out), SAGA_EINVAL);
    assert_int_equal(saga_pg_barrier_run(f->db, NULL, effect, &p, &out), SAGA_EINVAL);
    assert_int_equal(saga_pg_barrier_run(f->db, &k, NULL, &p, &out), SAGA_EINVAL);
    k.op = (saga_op_t)9;
    assert_int_equal(saga_pg_barrier_run(f->db, &k, effect, &p, &out), SAGA_EINVAL);
    k.op = SAGA_OP_ACTION;
    /* The barrier owns its transaction: a connection inside one is refused. */
    sql(f->db, "BEGIN");
    assert_int_equal(saga_pg_barrier_run(f->db, &k, effect, &p, &out), SAGA_EINVAL);
    sql(f->db, "ROLLBACK");
    assert_int_equal(p.runs, 0);
    assert_int_equal(saga_pg_barrier_setup(NULL), SAGA_EINVAL);
    saga_pg_outcome_clear(&out);
}

static void test_cleanup(void **state)
{
    struct fixture *f = *state;
    struct effect_plan p = {.outcome = SAGA_OUTCOME_OK};
    saga_pg_outcome_t out = {0};
    uint64_t deleted = 99;
    for (uint32_t i = 0; i < 5; i++)
        run(f->db, key_of(12, i, SAGA_OP_ACTION), &p, &out, 0);
    assert_int_equal(saga_pg_barrier_cleanup(f->db, 3600, 0, &deleted), 0);
    assert_int_equal(deleted, 0);
    sql(f->db, "UPDATE saga_barrier SET created_at = now() - interval '2 hours'");
    assert_int_equal(saga_pg_barrier_cleanup(f->db, 3600, 2, &deleted), 0);
    assert_int_equal(deleted, 2);
    assert_int_equal(saga_pg_barrier_cleanup(f->db, 3600, 0, &deleted), 0);
    assert_int_equal(deleted, 3);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM saga_barrier"), 0);
    saga_pg_outcome_clear(&out);
}

static void test_pool(void **state)
{
    (void)state;
    assert_null(saga_pg_pool_new(server_url(), 0));
    saga_pg_pool_t *pool = saga_pg_pool_new(server_url(), 2);
    assert_non_null(pool);
    PGconn *a = saga_pg_pool_get(pool);
    PGconn *b = saga_pg_pool_get(pool);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    sql(a, "BEGIN"); /* put back inside a transaction: rolled back */
    saga_pg_pool_put(pool, a);
    PGconn *c = saga_pg_pool_get(pool);
    assert_ptr_equal(c, a);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
    saga_pg_pool_put(pool, b);
    saga_pg_pool_put(pool, c);
    saga_pg_pool_free(&pool);
    assert_null(pool);

    /* A server that is not there: NULL, and the slot is free again. */
    pool = saga_pg_pool_new("postgresql://127.0.0.1:1/none?connect_timeout=2", 1);
    assert_non_null(pool);
    assert_null(saga_pg_pool_get(pool));
    assert_null(saga_pg_pool_get(pool));
    saga_pg_pool_free(&pool);
}

int main(void)
{
    server_url();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_setup_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_action_once_then_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_is_remembered_and_rolled_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_remembers_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compensate_after_action, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_compensation_then_late_action, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compensate_fail_runs_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_error_in_effect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_2pc_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_deliveries, setup, teardown),
        cmocka_unit_test(test_xa_gid),
        cmocka_unit_test_setup_teardown(test_xa_prepare_then_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xa_prepare_then_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xa_abort_before_prepare_and_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xa_waits_are_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cleanup, setup, teardown),
        cmocka_unit_test(test_pool),
    };
    return cmocka_run_group_tests_name("pg_barrier", tests, NULL, NULL);
}
