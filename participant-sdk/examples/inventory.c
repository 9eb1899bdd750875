/* saga-example-inventory: a participant that reserves stock (action) and
 * releases it (compensate) in its own PostgreSQL table. Copy it to start a
 * service of your own. Touches only its tables and saga_barrier.
 *
 * The shape every participant has:
 *   1. a connection pool to the service's own database;
 *   2. an "effect" function per operation: the SQL that changes the data,
 *      run inside the barrier's transaction (saga/pg.h), so it happens
 *      exactly once however often the coordinator delivers the command;
 *   3. handlers that hand each call to the barrier (they run on a thread
 *      pool, so blocking on the database is fine);
 *   4. a participant that registers the handlers and runs until SIGTERM.
 *
 *   saga-example-inventory --coordinator 127.0.0.1:7420 \
 *                          --database-url postgresql://localhost/shop
 *
 * Input of the checkout saga (JSON): {"order": "A-1", "sku": "widget",
 * "qty": 2, "amount": 40}. Tables: inventory_stock (sku, available,
 * reserved), seeded with a few products, and inventory_reservations (one row
 * per saga: what it reserved, and whether it was released). */
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

#define SERVICE "inventory"

struct options {
    const char *coordinator;
    const char *database_url;
    unsigned threads;
};

/* Everything the handlers share. The pool is thread-safe; nothing else changes. */
struct app {
    saga_pg_pool_t *pool;
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
    if (db_exec(db, "SELECT pg_advisory_lock(hashtext('saga-example-inventory'))") != 0)
        goto done;
    if (db_exec(db, "CREATE TABLE IF NOT EXISTS inventory_stock ("
                    " sku text PRIMARY KEY,"
                    " available integer NOT NULL CHECK (available >= 0),"
                    " reserved integer NOT NULL DEFAULT 0 CHECK (reserved >= 0))") == 0 &&
        db_exec(db, "CREATE TABLE IF NOT EXISTS inventory_reservations ("
                    " saga_id uuid PRIMARY KEY,"
                    " order_id text NOT NULL,"
                    " sku text NOT NULL,"
                    " qty integer NOT NULL,"
                    " state text NOT NULL," /* reserved, released */
                    " updated_at timestamptz NOT NULL DEFAULT now())") == 0 &&
        db_exec(db, "INSERT INTO inventory_stock (sku, available) VALUES"
                    " ('widget', 100), ('gadget', 25), ('gizmo', 5)"
                    " ON CONFLICT (sku) DO NOTHING") == 0)
        rc = 0;
    db_exec(db, "SELECT pg_advisory_unlock(hashtext('saga-example-inventory'))");
done:
    saga_pg_pool_put(pool, db);
    return rc;
}

/* ---- the effects (run inside the barrier's transaction) ----------------------------------- */

/* reserve: take `qty` of `sku` from the available stock. */
static void reserve_effect(PGconn *db, saga_pg_effect_t *e, void *data)
{
    saga_call_t *call = saga_pg_effect_call(e);
    size_t len;
    const uint8_t *input = saga_call_input(call, &len);
    const char *order, *sku;
    int qty;
    char qty_text[16], reason[160];
    (void)data;

    /* The saga input is the caller's JSON: refuse (FAIL) what we cannot read. */
    json_t *doc = json_loadb((const char *)input, len, 0, NULL);
    if (doc == NULL ||
        json_unpack(doc, "{s:s, s:s, s:i}", "order", &order, "sku", &sku, "qty", &qty) != 0 ||
        qty <= 0) {
        saga_pg_effect_fail(e, "input needs {\"order\": text, \"sku\": text, \"qty\": n > 0}");
        json_decref(doc);
        return;
    }
    snprintf(qty_text, sizeof(qty_text), "%d", qty);

    const char *take[2] = {sku, qty_text};
    PGresult *res = PQexecParams(db,
                                 "UPDATE inventory_stock SET available = available - $2::integer,"
                                 " reserved = reserved + $2::integer"
                                 " WHERE sku = $1 AND available >= $2::integer RETURNING available",
                                 2, NULL, take, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        saga_pg_effect_retry(e, PQerrorMessage(db)); /* transient: the coordinator retries */
    } else if (PQntuples(res) == 0) {
        /* A business refusal: FAIL makes the saga compensate, and is never retried. */
        snprintf(reason, sizeof(reason), "not enough '%s' in stock for %d", sku, qty);
        saga_pg_effect_fail(e, reason);
    } else {
        const char *row[4] = {saga_call_saga_id_text(call), order, sku, qty_text};
        PGresult *ins = PQexecParams(db,
                                     "INSERT INTO inventory_reservations"
                                     " (saga_id, order_id, sku, qty, state)"
                                     " VALUES ($1::uuid, $2, $3, $4::integer, 'reserved')",
                                     4, NULL, row, NULL, NULL, 0);
        if (PQresultStatus(ins) != PGRES_COMMAND_OK) {
            saga_pg_effect_retry(e, PQerrorMessage(db));
        } else {
            /* The step's output: the coordinator keeps it, shows it, and hands
             * it to the steps after this one and to this step's compensate. */
            long left = strtol(PQgetvalue(res, 0, 0), NULL, 10);
            json_t *o =
                json_pack("{s:s, s:i, s:I}", "sku", sku, "qty", qty, "left", (json_int_t)left);
            char *out = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
            json_decref(o);
            saga_pg_effect_ok(e, out, out != NULL ? strlen(out) : 0);
            free(out);
            fprintf(stderr, SERVICE ": saga=%s reserved %d %s for order %s (%s left)\n",
                    saga_call_saga_id_text(call), qty, sku, order, PQgetvalue(res, 0, 0));
        }
        PQclear(ins);
    }
    PQclear(res);
    json_decref(doc);
}

/* release (compensate): put back what reserve took. Reads the reservation
 * row, not the input: it is exactly what the forward operation did. */
static void release_effect(PGconn *db, saga_pg_effect_t *e, void *data)
{
    saga_call_t *call = saga_pg_effect_call(e);
    const char *id[1] = {saga_call_saga_id_text(call)};
    (void)data;

    PGresult *res = PQexecParams(db,
                                 "UPDATE inventory_reservations SET state = 'released',"
                                 " updated_at = now()"
                                 " WHERE saga_id = $1::uuid AND state = 'reserved'"
                                 " RETURNING sku, qty",
                                 1, NULL, id, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        saga_pg_effect_retry(e, PQerrorMessage(db));
        PQclear(res);
        return;
    }
    if (PQntuples(res) == 1) {
        const char *back[2] = {PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1)};
        PGresult *upd = PQexecParams(db,
                                     "UPDATE inventory_stock SET available = available +"
                                     " $2::integer, reserved = reserved - $2::integer"
                                     " WHERE sku = $1",
                                     2, NULL, back, NULL, NULL, 0);
        if (PQresultStatus(upd) != PGRES_COMMAND_OK) {
            saga_pg_effect_retry(e, PQerrorMessage(db));
            PQclear(upd);
            PQclear(res);
            return;
        }
        PQclear(upd);
        fprintf(stderr, SERVICE ": saga=%s released %s %s\n", id[0], back[1], back[0]);
    }
    /* (No row: nothing was reserved; the barrier normally answers that case
     * itself, before calling us.) */
    saga_pg_effect_ok(e, NULL, 0);
    PQclear(res);
}

/* ---- the handlers (on the participant's thread pool) -------------------------------------- */

static void on_reserve(saga_call_t *call, void *data)
{
    struct app *app = data;
    PGconn *db = saga_pg_pool_get(app->pool); /* NULL: the barrier answers RETRY */
    saga_pg_barrier_call(db, call, reserve_effect, app);
    saga_pg_pool_put(app->pool, db);
}

static void on_release(saga_call_t *call, void *data)
{
    struct app *app = data;
    PGconn *db = saga_pg_pool_get(app->pool);
    saga_pg_barrier_call(db, call, release_effect, app);
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
    fprintf(out, "usage: saga-example-inventory [--coordinator HOST:PORT] [--database-url URL]\n"
                 "                              [--threads N]\n"
                 "  --coordinator   SAGA_COORDINATOR            default 127.0.0.1:7420\n"
                 "  --database-url  SAGA_EXAMPLE_DATABASE_URL   this service's database\n"
                 "  --threads       handler threads (and database connections), default 4\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {{"coordinator", required_argument, NULL, 'c'},
                                             {"database-url", required_argument, NULL, 'd'},
                                             {"threads", required_argument, NULL, 't'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int opt;
    char *end;
    o->coordinator = getenv("SAGA_COORDINATOR");
    o->database_url = getenv("SAGA_EXAMPLE_DATABASE_URL");
    o->threads = 4;
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
            app.participant, "reserve",
            &(saga_handlers_t){.action = on_reserve, .compensate = on_release, .data = &app}) != 0)
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
    fprintf(stderr, SERVICE ": serving reserve/release for %s\n", opts.coordinator);
    uv_run(&loop, UV_RUN_DEFAULT); /* until SIGTERM or SIGINT */
    rc = 0;
done:
    saga_participant_free(&app.participant);
    uv_run(&loop, UV_RUN_DEFAULT); /* let the participant's handles close */
    uv_loop_close(&loop);
    saga_pg_pool_free(&app.pool);
    return rc;
}
