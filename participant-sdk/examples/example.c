/* The plumbing the example participants share (see example.h): options, the
 * database pool and tables, handlers, the run loop. Knows no service's SQL. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* uv.h needs the POSIX types, also under -std=c11 */
#endif
#include "example.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <saga/participant.h>
#include <uv.h>

/* Everything the handlers share. The pool is thread-safe; nothing else changes. */
struct app {
    const struct example_service *svc;
    saga_pg_pool_t *pool;
    saga_participant_t *participant;
    uv_signal_t sigterm, sigint;
};

/* ---- the database ------------------------------------------------------------------------- */

/* Runs one statement with no parameter, or with `arg` as $1; returns 0 or -1
 * (message printed). */
static int db_exec(PGconn *db, const char *service, const char *sql, const char *arg)
{
    PGresult *res = PQexecParams(db, sql, arg != NULL ? 1 : 0, NULL, &arg, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "%s: %s", service, PQerrorMessage(db));
    PQclear(res);
    return ok ? 0 : -1;
}

/* Creates the barrier's table and the service's when missing. Instances
 * starting together take turns, by an advisory lock named after the program. */
static int db_setup(saga_pg_pool_t *pool, const struct example_service *svc)
{
    char program[64];
    PGconn *db = saga_pg_pool_get(pool);
    int rc = -1;
    if (db == NULL) {
        fprintf(stderr, "%s: cannot connect to the database\n", svc->name);
        return -1;
    }
    if (saga_pg_barrier_setup(db) != 0) {
        fprintf(stderr, "%s: cannot create saga_barrier: %s", svc->name, PQerrorMessage(db));
        goto done;
    }
    snprintf(program, sizeof(program), "saga-example-%s", svc->name);
    if (db_exec(db, svc->name, "SELECT pg_advisory_lock(hashtext($1))", program) != 0)
        goto done;
    rc = 0;
    for (const char *const *sql = svc->tables; *sql != NULL; sql++) {
        if (db_exec(db, svc->name, *sql, NULL) != 0) {
            rc = -1;
            break;
        }
    }
    db_exec(db, svc->name, "SELECT pg_advisory_unlock(hashtext($1))", program);
done:
    saga_pg_pool_put(pool, db);
    return rc;
}

/* ---- the handlers (on the participant's thread pool) -------------------------------------- */

/* Each call goes to the barrier with a connection of the pool; the barrier
 * runs the effect at most once and answers the coordinator. Blocking on the
 * database is fine here: handlers run on the participant's threads. */
static void on_action(saga_call_t *call, void *data)
{
    struct app *app = data;
    PGconn *db = saga_pg_pool_get(app->pool); /* NULL: the barrier answers RETRY */
    saga_pg_barrier_call(db, call, app->svc->action, app->svc->data);
    saga_pg_pool_put(app->pool, db);
}

static void on_compensate(saga_call_t *call, void *data)
{
    struct app *app = data;
    PGconn *db = saga_pg_pool_get(app->pool);
    saga_pg_barrier_call(db, call, app->svc->compensate, app->svc->data);
    saga_pg_pool_put(app->pool, db);
}

/* 2pc sagas: the same effect as the action, made in a transaction that is
 * prepared and held until the coordinator's decision (saga/pg.h; the server
 * needs max_prepared_transactions > 0). Commit and abort act on it. */
static void on_prepare(saga_call_t *call, void *data)
{
    struct app *app = data;
    PGconn *db = saga_pg_pool_get(app->pool);
    saga_pg_xa_prepare_call(db, call, app->svc->action, app->svc->data);
    saga_pg_pool_put(app->pool, db);
}

static void on_decide(saga_call_t *call, void *data)
{
    struct app *app = data;
    PGconn *db = saga_pg_pool_get(app->pool);
    saga_pg_xa_decide_call(db, call);
    saga_pg_pool_put(app->pool, db);
}

/* ---- running ------------------------------------------------------------------------------ */

static void on_log(saga_log_level_t level, const char *line, void *data)
{
    const struct app *app = data;
    fprintf(stderr, "%s level=%s %s\n", app->svc->name,
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

static void usage(FILE *out, const struct example_service *svc)
{
    const struct example_extra_option *x = svc->extra;
    /* The second line lines up under the first option. */
    int indent = (int)strlen("usage: saga-example- ") + (int)strlen(svc->name);
    fprintf(out,
            "usage: saga-example-%s [--coordinator HOST:PORT] [--database-url URL]\n"
            "%*s[--threads N]%s\n"
            "  --coordinator   SAGA_COORDINATOR            default 127.0.0.1:7420\n"
            "  --database-url  SAGA_EXAMPLE_DATABASE_URL   this service's database\n"
            "  --threads       handler threads (and database connections), default 4\n"
            "%s",
            svc->name, indent, "", x != NULL ? x->synopsis : "", x != NULL ? x->help : "");
}

int example_parse_options(int argc, char **argv, const struct example_service *svc,
                          struct example_options *o)
{
    const struct example_extra_option *x = svc->extra;
    struct option opts[6] = {{"coordinator", required_argument, NULL, 'c'},
                             {"database-url", required_argument, NULL, 'd'},
                             {"threads", required_argument, NULL, 't'}};
    size_t n = 3;
    int opt;
    char *end;

    if (x != NULL) /* the service's own option, before --help */
        opts[n++] = (struct option){x->name, required_argument, NULL, 'x'};
    opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    opts[n] = (struct option){NULL, 0, NULL, 0};

    o->coordinator = getenv("SAGA_COORDINATOR");
    o->database_url = getenv("SAGA_EXAMPLE_DATABASE_URL");
    o->threads = 4;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
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
                fprintf(stderr, "%s: --threads wants 1 to 64\n", svc->name);
                return 2;
            }
            break;
        case 'x':
            if (x->parse(optarg, x->data) != 0)
                return 2;
            break;
        case 'h':
            usage(stdout, svc);
            return 1;
        default:
            usage(stderr, svc);
            return 2;
        }
    }
    if (o->coordinator == NULL || o->coordinator[0] == '\0')
        o->coordinator = "127.0.0.1:7420";
    if (o->database_url == NULL || o->database_url[0] == '\0') {
        fprintf(stderr, "%s: no database: --database-url or SAGA_EXAMPLE_DATABASE_URL\n",
                svc->name);
        return 2;
    }
    return 0;
}

int example_run(const struct example_service *svc, const struct example_options *o)
{
    struct app app = {.svc = svc};
    uv_loop_t loop;
    int rc;

    app.pool = saga_pg_pool_new(o->database_url, o->threads);
    if (app.pool == NULL || db_setup(app.pool, svc) != 0) {
        saga_pg_pool_free(&app.pool);
        return 1;
    }
    if (uv_loop_init(&loop) != 0) {
        saga_pg_pool_free(&app.pool);
        return 1;
    }
    app.participant = saga_participant_new(&(saga_participant_options_t){
        .service = svc->name,
        .coordinators = o->coordinator,
        .threads = o->threads, /* handlers block on the database: run them on a pool */
        .max_in_flight = 4 * o->threads,
        .log = on_log,
        .log_data = &app,
        .log_level = SAGA_LOG_INFO,
        .on_stopped = on_stopped,
        .on_stopped_data = &app});
    rc = 1;
    if (app.participant == NULL)
        goto done;
    if (saga_participant_on(app.participant, svc->operation,
                            &(saga_handlers_t){.action = on_action,
                                               .compensate = on_compensate,
                                               .prepare = on_prepare,
                                               .commit = on_decide,
                                               .abort = on_decide,
                                               .data = &app}) != 0)
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
    fprintf(stderr, "%s: serving %s for %s\n", svc->name, svc->serving, o->coordinator);
    uv_run(&loop, UV_RUN_DEFAULT); /* until SIGTERM or SIGINT */
    rc = 0;
done:
    saga_participant_free(&app.participant);
    uv_run(&loop, UV_RUN_DEFAULT); /* let the participant's handles close */
    uv_loop_close(&loop);
    saga_pg_pool_free(&app.pool);
    return rc;
}
