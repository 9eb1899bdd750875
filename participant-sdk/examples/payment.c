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
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <saga/participant.h>
#include <saga/pg.h>

#include "example.h"

#define SERVICE "payment"

/* ---- the database ------------------------------------------------------------------------- */

/* Created at start when missing (example.c runs them). */
static const char *const tables[] = {
    "CREATE TABLE IF NOT EXISTS payment_charges ("
    " saga_id uuid PRIMARY KEY,"
    " order_id text NOT NULL,"
    " amount integer NOT NULL CHECK (amount > 0),"
    " state text NOT NULL," /* charged, refunded */
    " updated_at timestamptz NOT NULL DEFAULT now())",
    NULL,
};

/* ---- the effects (run inside the barrier's transaction) ----------------------------------- */

/* charge: record the payment, unless the amount is over the limit. */
static void charge_effect(PGconn *db, saga_pg_effect_t *e, void *data)
{
    const long *limit = data; /* --limit */
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
    if (amount > *limit) {
        /* The business says no: FAIL. Nothing is written; the coordinator
         * compensates the steps that already ran. */
        snprintf(reason, sizeof(reason), "amount %" PRId64 " over the limit %ld", (int64_t)amount,
                 *limit);
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

/* ---- running (example.c: options, the pool, the handlers, until SIGTERM) ------------------ */

/* --limit and PAYMENT_LIMIT: the largest amount charged without asking a human. */
static int parse_limit(const char *text, const char *what, long *limit)
{
    char *end;
    *limit = strtol(text, &end, 10);
    if (*end != '\0' || *limit <= 0) {
        fprintf(stderr, SERVICE ": %s wants a positive number\n", what);
        return -1;
    }
    return 0;
}

static int parse_limit_option(const char *value, void *data)
{
    return parse_limit(value, "--limit", data);
}

int main(int argc, char **argv)
{
    long limit = 500;
    const char *env = getenv("PAYMENT_LIMIT");
    if (env != NULL && env[0] != '\0' && parse_limit(env, "PAYMENT_LIMIT", &limit) != 0)
        return 2;

    struct example_service svc = {
        .name = SERVICE,
        .tables = tables,
        .operation = "charge",
        .action = charge_effect,
        .compensate = refund_effect,
        .data = &limit,
        .extra = &(const struct example_extra_option){
            .name = "limit",
            .synopsis = " [--limit AMOUNT]",
            .help = "  --limit         PAYMENT_LIMIT  the largest amount charged, default 500\n",
            .parse = parse_limit_option,
            .data = &limit}};
    struct example_options opts;
    char serving[64];
    int rc = example_parse_options(argc, argv, &svc, &opts);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    snprintf(serving, sizeof(serving), "charge/refund (limit %ld)", limit);
    svc.serving = serving;
    return example_run(&svc, &opts);
}
