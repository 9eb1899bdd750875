/* saga-example-payment: a participant that charges an order (action) and
 * refunds it (compensate) in its own PostgreSQL table. It refuses amounts
 * over a limit (--limit, default 500): that refusal is a FAIL, which makes
 * the coordinator compensate the steps that ran before. Touches only its
 * table and saga_barrier. See inventory.c for the shape of a participant.
 *
 *   saga-example-payment --coordinator 127.0.0.1:7420 \
 *                        --database-url postgresql://localhost/shop --limit 500
 *
 * Input (JSON): {"order": "A-1", "amount": 40, ...}. Table: payment_charges,
 * one row per saga: the amount charged and whether it was refunded. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* uv.h needs the POSIX types, also under -std=c11 */
#endif
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <saga/participant.h>
#include <saga/pg.h>
#include <uv.h>

#define SERVICE "payment"

struct options {
    const char *coordinator;
    const char *database_url;
    unsigned threads;
    long limit;
};

/* Everything the handlers share. The pool is thread-safe; nothing else changes. */
struct app {
    saga_pg_pool_t *pool;
    long limit; /* the largest amount charged without asking a human */
    saga_participant_t *participant;
    uv_signal_t sigterm, sigint;
};

/* ---- the database ------------------------------------------------------------------------- */

/* Runs one statement with no parameters; returns 0 or -1 (message printed). */
static int db_exec(PGconn *db, const char *sql)
{
    PGresult *res = PQexecParams(db, sql, 0, NULL, NULL, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, SERVICE ": %s", PQerrorMessage(db));
    PQclear(res);
    return ok ? 0 : -1;
}

/* Creates the service's tables (and the barrier's) when missing. */
static int db_setup(saga_pg_pool_t *pool)
{
    PGconn *db = saga_pg_pool_get(pool);
    int rc = -1;
    if (db == NULL) {
        fprintf(stderr, SERVICE ": cannot connect to the database\n");
        return -1;
    }
    if (saga_pg_barrier_setup(db) != 0) {
        fprintf(stderr, SERVICE ": cannot create saga_barrier: %s", PQerrorMessage(db));
        goto done;
    }
    if (db_exec(db, "SELECT pg_advisory_lock(hashtext('saga-example-payment'))") != 0)
        goto done;
    if (db_exec(db, "CREATE TABLE IF NOT EXISTS payment_charges ("
                    " saga_id uuid PRIMARY KEY,"
                    " order_id text NOT NULL,"
                    " amount integer NOT NULL CHECK (amount > 0),"
                    " state text NOT NULL," /* charged, refunded */
                    " updated_at timestamptz NOT NULL DEFAULT now())") == 0)
        rc = 0;
    db_exec(db, "SELECT pg_advisory_unlock(hashtext('saga-example-payment'))");
done:
    saga_pg_pool_put(pool, db);
    return rc;
}

/* ---- the effects (run inside the barrier's transaction) ----------------------------------- */

/* charge: record the payment, unless the amount is over the limit. */
static void charge_effect(PGconn *db, saga_pg_effect_t *e, void *data)
{
    const struct app *app = data;
    saga_call_t *call = saga_pg_effect_call(e);
    size_t len;
    const uint8_t *input = saga_call_input(call, &len);
    const char *order;
    json_int_t amount;
    char reason[160];

    json_t *doc = json_loadb((const char *)input, len, 0, NULL);
    if (doc == NULL || json_unpack(doc, "{s:s, s:I}", "order", &order, "amount", &amount) != 0 ||
        amount <= 0) {
        saga_pg_effect_fail(e, "input needs {\"order\": text, \"amount\": n > 0}");
        json_decref(doc);
        return;
    }
    if (amount > app->limit) {
        /* The business says no: FAIL. Nothing is written; the coordinator
         * compensates the steps that already ran. */
        snprintf(reason, sizeof(reason), "amount %" PRId64 " over the limit %ld", (int64_t)amount,
                 app->limit);
        saga_pg_effect_fail(e, reason);
        fprintf(stderr, SERVICE ": saga=%s refused order %s: %s\n", saga_call_saga_id_text(call),
                order, reason);
        json_decref(doc);
        return;
    }
    char amount_text[24];
    snprintf(amount_text, sizeof(amount_text), "%" PRId64, (int64_t)amount);
    const char *row[3] = {saga_call_saga_id_text(call), order, amount_text};
    PGresult *res = PQexecParams(db,
                                 "INSERT INTO payment_charges (saga_id, order_id, amount, state)"
                                 " VALUES ($1::uuid, $2, $3::integer, 'charged')",
                                 3, NULL, row, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        saga_pg_effect_retry(e, PQerrorMessage(db));
    } else {
        json_t *o = json_pack("{s:s, s:I}", "charge", row[0], "amount", amount);
        char *out = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        saga_pg_effect_ok(e, out, out != NULL ? strlen(out) : 0);
        free(out);
        fprintf(stderr, SERVICE ": saga=%s charged %s for order %s\n", row[0], amount_text, order);
    }
    PQclear(res);
    json_decref(doc);
}

/* refund (compensate): mark the charge refunded. */
static void refund_effect(PGconn *db, saga_pg_effect_t *e, void *data)
{
    saga_call_t *call = saga_pg_effect_call(e);
    const char *id[1] = {saga_call_saga_id_text(call)};
    (void)data;

    PGresult *res = PQexecParams(db,
                                 "UPDATE payment_charges SET state = 'refunded', updated_at = now()"
                                 " WHERE saga_id = $1::uuid AND state = 'charged' RETURNING amount",
                                 1, NULL, id, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        saga_pg_effect_retry(e, PQerrorMessage(db));
    } else {
        if (PQntuples(res) == 1)
            fprintf(stderr, SERVICE ": saga=%s refunded %s\n", id[0], PQgetvalue(res, 0, 0));
        saga_pg_effect_ok(e, NULL, 0);
    }
    PQclear(res);
}

/* ---- the handlers (on the participant's thread pool) -------------------------------------- */

static void on_charge(saga_call_t *call, void *data)
{
    struct app *app = data;
    PGconn *db = saga_pg_pool_get(app->pool); /* NULL: the barrier answers RETRY */
    saga_pg_barrier_call(db, call, charge_effect, app);
    saga_pg_pool_put(app->pool, db);
}

static void on_refund(saga_call_t *call, void *data)
{
    struct app *app = data;
    PGconn *db = saga_pg_pool_get(app->pool);
    saga_pg_barrier_call(db, call, refund_effect, app);
    saga_pg_pool_put(app->pool, db);
}

/* ---- running ------------------------------------------------------------------------------ */

static void on_log(saga_log_level_t level, const char *line, void *data)
{
    (void)data;
    fprintf(stderr, SERVICE " level=%s %s\n",
            level >= SAGA_LOG_ERROR  ? "error"
            : level >= SAGA_LOG_WARN ? "warn"
                                     : "info",
            line);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct app *app = sig->data;
    (void)signum;
    saga_participant_stop(app->participant); /* on_stopped follows on the loop */
}

static void on_stopped(saga_participant_t *p, void *data)
{
    struct app *app = data;
    (void)p;
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_close((uv_handle_t *)&app->sigint, NULL);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: saga-example-payment [--coordinator HOST:PORT] [--database-url URL]\n"
                 "                            [--threads N] [--limit AMOUNT]\n"
                 "  --coordinator   SAGA_COORDINATOR            default 127.0.0.1:7420\n"
                 "  --database-url  SAGA_EXAMPLE_DATABASE_URL   this service's database\n"
                 "  --threads       handler threads (and database connections), default 4\n"
                 "  --limit         PAYMENT_LIMIT  the largest amount charged, default 500\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {{"coordinator", required_argument, NULL, 'c'},
                                             {"database-url", required_argument, NULL, 'd'},
                                             {"threads", required_argument, NULL, 't'},
                                             {"limit", required_argument, NULL, 'l'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int opt;
    char *end;
    o->coordinator = getenv("SAGA_COORDINATOR");
    o->database_url = getenv("SAGA_EXAMPLE_DATABASE_URL");
    o->threads = 4;
    o->limit = 500;
    const char *limit = getenv("PAYMENT_LIMIT");
    if (limit != NULL && limit[0] != '\0') {
        o->limit = strtol(limit, &end, 10);
        if (*end != '\0' || o->limit <= 0) {
            fprintf(stderr, SERVICE ": PAYMENT_LIMIT wants a positive number\n");
            return 2;
        }
    }
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            o->coordinator = optarg;
            break;
        case 'd':
            o->database_url = optarg;
            break;
        case 't':
            o->threads = (unsigned)strtoul(optarg, &end, 10);
            if (*end != '\0' || o->threads == 0 || o->threads > 64) {
                fprintf(stderr, SERVICE ": --threads wants 1 to 64\n");
                return 2;
            }
            break;
        case 'l':
            o->limit = strtol(optarg, &end, 10);
            if (*end != '\0' || o->limit <= 0) {
                fprintf(stderr, SERVICE ": --limit wants a positive number\n");
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (o->coordinator == NULL || o->coordinator[0] == '\0')
        o->coordinator = "127.0.0.1:7420";
    if (o->database_url == NULL || o->database_url[0] == '\0') {
        fprintf(stderr, SERVICE ": no database: --database-url or SAGA_EXAMPLE_DATABASE_URL\n");
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct options opts;
    struct app app = {0};
    uv_loop_t loop;
    int rc = parse_options(argc, argv, &opts);
    if (rc != 0)
        return rc == 1 ? 0 : rc;

    app.limit = opts.limit;
    app.pool = saga_pg_pool_new(opts.database_url, opts.threads);
    if (app.pool == NULL || db_setup(app.pool) != 0) {
        saga_pg_pool_free(&app.pool);
        return 1;
    }
    if (uv_loop_init(&loop) != 0) {
        saga_pg_pool_free(&app.pool);
        return 1;
    }
    app.participant = saga_participant_new(&(saga_participant_options_t){
        .service = SERVICE,
        .coordinators = opts.coordinator,
        .threads = opts.threads, /* handlers block on the database: run them on a pool */
        .max_in_flight = 4 * opts.threads,
        .log = on_log,
        .log_level = SAGA_LOG_INFO,
        .on_stopped = on_stopped,
        .on_stopped_data = &app});
    rc = 1;
    if (app.participant == NULL)
        goto done;
    if (saga_participant_on(
            app.participant, "charge",
            &(saga_handlers_t){.action = on_charge, .compensate = on_refund, .data = &app}) != 0)
        goto done;

    uv_signal_init(&loop, &app.sigterm);
    uv_signal_init(&loop, &app.sigint);
    app.sigterm.data = app.sigint.data = &app;
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    if (saga_participant_attach_uv(app.participant, &loop) != 0) {
        uv_close((uv_handle_t *)&app.sigterm, NULL);
        uv_close((uv_handle_t *)&app.sigint, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        goto done;
    }
    fprintf(stderr, SERVICE ": serving charge/refund (limit %ld) for %s\n", opts.limit,
            opts.coordinator);
    uv_run(&loop, UV_RUN_DEFAULT); /* until SIGTERM or SIGINT */
    rc = 0;
done:
    saga_participant_free(&app.participant);
    uv_run(&loop, UV_RUN_DEFAULT); /* let the participant's handles close */
    uv_loop_close(&loop);
    saga_pg_pool_free(&app.pool);
    return rc;
}
