/* saga-example-shipping: a participant that books a courier for an order
 * (action) and cancels the booking (compensate) in its own PostgreSQL table.
 * Touches only its table and saga_barrier. See inventory.c for the shape of
 * a participant.
 *
 *   saga-example-shipping --coordinator 127.0.0.1:7420 \
 *                         --database-url postgresql://localhost/shop
 *
 * Input (JSON): {"order": "A-1", ...}. Table: shipping_bookings, one row per
 * saga: the courier booked and whether the booking was cancelled. */
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

#define SERVICE "shipping"

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
    if (db_exec(db, "SELECT pg_advisory_lock(hashtext('saga-example-shipping'))") != 0)
        goto done;
    if (db_exec(db, "CREATE TABLE IF NOT EXISTS shipping_bookings ("
                    " saga_id uuid PRIMARY KEY,"
                    " order_id text NOT NULL,"
                    " courier text NOT NULL,"
                    " state text NOT NULL," /* booked, cancelled */
                    " updated_at timestamptz NOT NULL DEFAULT now())") == 0)
        rc = 0;
    db_exec(db, "SELECT pg_advisory_unlock(hashtext('saga-example-shipping'))");
done:
    saga_pg_pool_put(pool, db);
    return rc;
}

/* ---- the effects (run inside the barrier's transaction) ----------------------------------- */

/* The couriers this shop works with; an order always goes to the same one. */
static const char *const couriers[] = {"Rapid Parcel", "Bike Post", "Night Freight"};

static const char *courier_for(const char *order)
{
    unsigned h = 5381;
    for (const char *p = order; *p != '\0'; p++)
        h = h * 33 + (unsigned char)*p;
    return couriers[h % (sizeof(couriers) / sizeof(couriers[0]))];
}

/* book: reserve a courier for the order. */
static void book_effect(PGconn *db, saga_pg_effect_t *e, void *data)
{
    saga_call_t *call = saga_pg_effect_call(e);
    size_t len;
    const uint8_t *input = saga_call_input(call, &len);
    const char *order;
    (void)data;

    json_t *doc = json_loadb((const char *)input, len, 0, NULL);
    if (doc == NULL || json_unpack(doc, "{s:s}", "order", &order) != 0) {
        saga_pg_effect_fail(e, "input needs {\"order\": text}");
        json_decref(doc);
        return;
    }
    const char *row[3] = {saga_call_saga_id_text(call), order, courier_for(order)};
    PGresult *res = PQexecParams(db,
                                 "INSERT INTO shipping_bookings (saga_id, order_id, courier, state)"
                                 " VALUES ($1::uuid, $2, $3, 'booked')",
                                 3, NULL, row, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        saga_pg_effect_retry(e, PQerrorMessage(db));
    } else {
        json_t *o = json_pack("{s:s, s:s}", "courier", row[2], "booking", row[0]);
        char *out = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        saga_pg_effect_ok(e, out, out != NULL ? strlen(out) : 0);
        free(out);
        fprintf(stderr, SERVICE ": saga=%s booked %s for order %s\n", row[0], row[2], order);
    }
    PQclear(res);
    json_decref(doc);
}

/* cancel (compensate): cancel the booking. */
static void cancel_effect(PGconn *db, saga_pg_effect_t *e, void *data)
{
    saga_call_t *call = saga_pg_effect_call(e);
    const char *id[1] = {saga_call_saga_id_text(call)};
    (void)data;

    PGresult *res = PQexecParams(db,
                                 "UPDATE shipping_bookings SET state = 'cancelled',"
                                 " updated_at = now()"
                                 " WHERE saga_id = $1::uuid AND state = 'booked' RETURNING courier",
                                 1, NULL, id, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        saga_pg_effect_retry(e, PQerrorMessage(db));
    } else {
        if (PQntuples(res) == 1)
            fprintf(stderr, SERVICE ": saga=%s cancelled %s\n", id[0], PQgetvalue(res, 0, 0));
        saga_pg_effect_ok(e, NULL, 0);
    }
    PQclear(res);
}

/* ---- the handlers (on the participant's thread pool) -------------------------------------- */

static void on_book(saga_call_t *call, void *data)
{
    struct app *app = data;
    PGconn *db = saga_pg_pool_get(app->pool); /* NULL: the barrier answers RETRY */
    saga_pg_barrier_call(db, call, book_effect, app);
    saga_pg_pool_put(app->pool, db);
}

static void on_cancel(saga_call_t *call, void *data)
{
    struct app *app = data;
    PGconn *db = saga_pg_pool_get(app->pool);
    saga_pg_barrier_call(db, call, cancel_effect, app);
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
    fprintf(out, "usage: saga-example-shipping [--coordinator HOST:PORT] [--database-url URL]\n"
                 "                             [--threads N]\n"
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
            app.participant, "book",
            &(saga_handlers_t){.action = on_book, .compensate = on_cancel, .data = &app}) != 0)
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
    fprintf(stderr, SERVICE ": serving book/cancel for %s\n", opts.coordinator);
    uv_run(&loop, UV_RUN_DEFAULT); /* until SIGTERM or SIGINT */
    rc = 0;
done:
    saga_participant_free(&app.participant);
    uv_run(&loop, UV_RUN_DEFAULT); /* let the participant's handles close */
    uv_loop_close(&loop);
    saga_pg_pool_free(&app.pool);
    return rc;
}
