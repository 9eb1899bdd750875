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
 * This file holds what is the service's own: its tables (2's data) and its
 * effects. The rest (1, 3 and 4, with the command line) is the same for
 * every example and lives in example.c; copy both.
 *
 *   saga-example-inventory --coordinator 127.0.0.1:7420 \
 *                          --database-url postgresql://localhost/shop
 *
 * Input of the checkout saga (JSON): {"order": "A-1", "sku": "widget",
 * "qty": 2, "amount": 40}. Tables: inventory_stock (sku, available,
 * reserved), seeded with a few products, and inventory_reservations (one row
 * per saga: what it reserved, and whether it was released). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <saga/participant.h>
#include <saga/pg.h>

#include "example.h"

#define SERVICE "inventory"

/* ---- the database ------------------------------------------------------------------------- */

/* Created at start when missing (example.c runs them in order). */
static const char *const tables[] = {
    "CREATE TABLE IF NOT EXISTS inventory_stock ("
    " sku text PRIMARY KEY,"
    " available integer NOT NULL CHECK (available >= 0),"
    " reserved integer NOT NULL DEFAULT 0 CHECK (reserved >= 0))",
    "CREATE TABLE IF NOT EXISTS inventory_reservations ("
    " saga_id uuid PRIMARY KEY,"
    " order_id text NOT NULL,"
    " sku text NOT NULL,"
    " qty integer NOT NULL,"
    " state text NOT NULL," /* reserved, released */
    " updated_at timestamptz NOT NULL DEFAULT now())",
    "INSERT INTO inventory_stock (sku, available) VALUES"
    " ('widget', 100), ('gadget', 25), ('gizmo', 5)"
    " ON CONFLICT (sku) DO NOTHING",
    NULL,
};

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

/* ---- running (example.c: options, the pool, the handlers, until SIGTERM) ------------------ */

int main(int argc, char **argv)
{
    const struct example_service svc = {.name = SERVICE,
                                        .tables = tables,
                                        .operation = "reserve",
                                        .action = reserve_effect,
                                        .compensate = release_effect,
                                        .serving = "reserve/release"};
    struct example_options opts;
    int rc = example_parse_options(argc, argv, &svc, &opts);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    return example_run(&svc, &opts);
}
