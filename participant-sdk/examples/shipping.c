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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <saga/participant.h>
#include <saga/pg.h>

#include "example.h"

#define SERVICE "shipping"

/* ---- the database ------------------------------------------------------------------------- */

/* Created at start when missing (example.c runs them). */
static const char *const tables[] = {
    "CREATE TABLE IF NOT EXISTS shipping_bookings ("
    " saga_id uuid PRIMARY KEY,"
    " order_id text NOT NULL,"
    " courier text NOT NULL,"
    " state text NOT NULL," /* booked, cancelled */
    " updated_at timestamptz NOT NULL DEFAULT now())",
    NULL,
};

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

/* ---- running (example.c: options, the pool, the handlers, until SIGTERM) ------------------ */

int main(int argc, char **argv)
{
    const struct example_service svc = {.name = SERVICE,
                                        .tables = tables,
                                        .operation = "book",
                                        .action = book_effect,
                                        .compensate = cancel_effect,
                                        .serving = "book/cancel"};
    struct example_options opts;
    int rc = example_parse_options(argc, argv, &svc, &opts);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    return example_run(&svc, &opts);
}
