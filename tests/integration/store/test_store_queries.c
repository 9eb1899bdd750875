/* Every store query against a real database: definitions, writes read back with
 * their steps and timeline, idempotent starts, listing with filters and keyset
 * paging, leases (renew, release, claim) and the coordinator registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "itest.h"
#include "saga/error.h"

static int group_setup(void **state)
{
    return itest_fx_group_setup(state, "queries");
}

/* Each test gets a store, as coordinator coord-a. */
static int setup(void **state)
{
    struct itest_fx *fx = *state;
    itest_fx_setup(state);
    fx->s = itest_store_open(&fx->loop, fx->url, "coord-a", NULL);
    return 0;
}

static int teardown(void **state)
{
    struct itest_fx *fx = *state;
    itest_store_close(&fx->loop, &fx->s);
    return itest_fx_teardown(state);
}

/* ---- definitions ---- */

struct def_out {
    int done;
    int status;
    int created;
    char canonical[256];
    char hash[80];
    uint32_t version;
};

static void on_define(const struct store_define *d, int status)
{
    struct def_out *o = d->data;
    o->done++;
    o->status = status;
    o->created = d->created;
}

static void on_def(const struct store_def_result *r, int status)
{
    struct def_out *o = r->data;
    o->done++;
    o->status = status;
    if (status == 0) {
        snprintf(o->canonical, sizeof(o->canonical), "%s", r->def->canonical);
        snprintf(o->hash, sizeof(o->hash), "%s", r->def->hash);
        o->version = r->def->version;
        assert_int_equal(r->def->canonical_len, strlen(r->def->canonical));
    } else {
        assert_null(r->def);
    }
}

static void define(struct itest_fx *fx, const char *name, uint32_t v, const char *body,
                   const char *hash, struct def_out *o)
{
    memset(o, 0, sizeof(*o));
    assert_int_equal(
        store_define(fx->s, name, v, DEF_MODE_SAGA, body, strlen(body), hash, on_define, o), 0);
    itest_wait(&fx->loop, &o->done, 1, 5000);
}

static void def_get(struct itest_fx *fx, const char *name, uint32_t v, struct def_out *o)
{
    memset(o, 0, sizeof(*o));
    assert_int_equal(store_definition_get(fx->s, name, v, on_def, o), 0);
    itest_wait(&fx->loop, &o->done, 1, 5000);
}

static void test_definitions(void **state)
{
    struct itest_fx *fx = *state;
    struct def_out o;
    define(fx, "checkout", 1, "{\"name\":\"checkout\",\"version\":1}", "h1", &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.created, 1);
    /* The same body again: a no-op. */
    define(fx, "checkout", 1, "{\"name\":\"checkout\",\"version\":1}", "h1", &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.created, 0);
    /* Another body under the same version: refused. */
    define(fx, "checkout", 1, "{\"name\":\"checkout\",\"version\":1,\"x\":2}", "h1b", &o);
    assert_int_equal(o.status, SAGA_EEXIST);
    define(fx, "checkout", 2, "{\"name\":\"checkout\",\"version\":2}", "h2", &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.created, 1);

    def_get(fx, "checkout", 1, &o);
    assert_int_equal(o.status, 0);
    assert_string_equal(o.canonical, "{\"name\":\"checkout\",\"version\":1}");
    assert_string_equal(o.hash, "h1");
    def_get(fx, "checkout", 0, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.version, 2);
    assert_string_equal(o.hash, "h2");
    def_get(fx, "checkout", 7, &o);
    assert_int_equal(o.status, SAGA_ENOTFOUND);
    def_get(fx, "nothing", 0, &o);
    assert_int_equal(o.status, SAGA_ENOTFOUND);

    /* Bad arguments are refused at once, without a callback. */
    assert_int_equal(store_define(fx->s, "", 1, DEF_MODE_SAGA, "{}", 2, "h", on_define, &o),
                     SAGA_EINVAL);
    assert_int_equal(store_define(fx->s, "x", 0, DEF_MODE_SAGA, "{}", 2, "h", on_define, &o),
                     SAGA_EINVAL);
    assert_int_equal(store_define(fx->s, "x", 1, (enum def_mode)7, "{}", 2, "h", on_define, &o),
                     SAGA_EINVAL);
    assert_int_equal(store_definition_get(fx->s, NULL, 1, on_def, &o), SAGA_EINVAL);
    /* A body the database cannot parse as JSON fails with SAGA_EINVAL. */
    define(fx, "broken", 1, "{not json", "hb", &o);
    assert_int_equal(o.status, SAGA_EINVAL);
}

/* ---- writes, read back ---- */

struct view_out {
    int done;
    int status;
    struct store_saga saga;
    char definition[64];
    char owner[64];
    char key[64];
    char error[64];
    uint8_t input[64];
    size_t input_len;
    size_t n_steps;
    struct {
        int step;
        int status;
        uint32_t attempts;
        char output[64];
        int has_output;
        uint64_t started_ms, finished_ms;
    } steps[8];
    size_t n_events;
    struct {
        uint32_t seq;
        char kind[32];
        int32_t step;
        uint32_t attempt;
        int status;
        char detail[64];
        uint64_t at_ms;
    } events[16];
};

static void on_get(const struct store_saga_view *v, int status)
{
    struct view_out *o = v->data;
    o->done++;
    o->status = status;
    if (status != 0) {
        assert_null(v->saga);
        return;
    }
    o->saga = *v->saga;
    snprintf(o->definition, sizeof(o->definition), "%s", v->saga->definition);
    snprintf(o->owner, sizeof(o->owner), "%s", v->saga->owner ? v->saga->owner : "(null)");
    snprintf(o->key, sizeof(o->key), "%s",
             v->saga->idempotency_key ? v->saga->idempotency_key : "(null)");
    snprintf(o->error, sizeof(o->error), "%s", v->saga->error ? v->saga->error : "(null)");
    assert_true(v->saga->input_len <= sizeof(o->input));
    memcpy(o->input, v->saga->input, v->saga->input_len);
    o->input_len = v->saga->input_len;
    o->n_steps = v->n_steps;
    for (size_t i = 0; i < v->n_steps && i < 8; i++) {
        o->steps[i].step = v->steps[i].step;
        o->steps[i].status = v->steps[i].status;
        o->steps[i].attempts = v->steps[i].attempts;
        o->steps[i].has_output = v->steps[i].output != NULL;
        snprintf(o->steps[i].output, sizeof(o->steps[i].output), "%.*s",
                 (int)v->steps[i].output_len,
                 v->steps[i].output ? (const char *)v->steps[i].output : "");
        o->steps[i].started_ms = v->steps[i].started_ms;
        o->steps[i].finished_ms = v->steps[i].finished_ms;
    }
    o->n_events = v->n_events;
    for (size_t i = 0; i < v->n_events && i < 16; i++) {
        o->events[i].seq = v->events[i].seq;
        snprintf(o->events[i].kind, sizeof(o->events[i].kind), "%s", v->events[i].kind);
        o->events[i].step = v->events[i].step;
        o->events[i].attempt = v->events[i].attempt;
        o->events[i].status = v->events[i].status;
        o->events[i].at_ms = v->events[i].at_ms;
        snprintf(o->events[i].detail, sizeof(o->events[i].detail), "%s",
                 v->events[i].detail ? v->events[i].detail : "(null)");
    }
}

static void get(struct itest_fx *fx, const struct saga_id *id, struct view_out *o)
{
    memset(o, 0, sizeof(*o));
    assert_int_equal(store_get(fx->s, id, on_get, o), 0);
    itest_wait(&fx->loop, &o->done, 1, 5000);
}

static void write_ok(struct itest_fx *fx, const struct saga_id *id, uint64_t epoch,
                     const struct store_create *c, const struct record *r, size_t n,
                     struct itest_result *out)
{
    memset(out, 0, sizeof(*out));
    assert_int_equal(store_write(fx->s, id, epoch, c, r, n, itest_on_write, out), 0);
    itest_wait(&fx->loop, &out->done, 1, 5000);
}

static const uint8_t input_bytes[] = {'{', 0, 1, 2, 0xff, '}'};

static struct store_create create_info(const char *def, const char *key)
{
    return (struct store_create){.definition = def,
                                 .version = 1,
                                 .mode = DEF_MODE_SAGA,
                                 .n_steps = 2,
                                 .input = input_bytes,
                                 .input_len = sizeof(input_bytes),
                                 .idempotency_key = key};
}

static void test_write_and_get(void **state)
{
    struct itest_fx *fx = *state;
    struct saga_id id;
    itest_id(&id);
    uint64_t t0 = itest_now_ms();
    struct store_create c = create_info("checkout", NULL);
    struct record start[2] = {itest_rec_insert(SAGA_STATUS_RUNNING, t0),
                              itest_rec_step(0, SAGA_STEP_RUNNING, 1, NULL, t0)};
    start[0].deadline_ms = t0 + 60000;
    start[0].wake_ms = t0 + 2000;
    struct itest_result r;
    write_ok(fx, &id, 0, &c, start, 2, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.existing, 0);
    assert_memory_equal(r.id.bytes, id.bytes, 16);

    struct record next[3] = {itest_rec_step(0, SAGA_STEP_SUCCEEDED, 1, "out-0", t0 + 10),
                             itest_rec_step(1, SAGA_STEP_RUNNING, 1, NULL, t0 + 10),
                             itest_rec_saga(SAGA_STATUS_RUNNING, t0 + 10, NULL)};
    next[2].wake_ms = t0 + 4000;
    next[2].deadline_ms = t0 + 60000;
    write_ok(fx, &id, 1, NULL, next, 3, &r);
    assert_int_equal(r.status, 0);

    /* A step whose update carries no output keeps its stored output; two
     * updates of one step in one write leave the last state. */
    struct record back[3] = {itest_rec_step(0, SAGA_STEP_COMPENSATING, 1, NULL, t0 + 20),
                             itest_rec_step(1, SAGA_STEP_WAITING, 2, NULL, t0 + 20),
                             itest_rec_step(1, SAGA_STEP_FAILED, 2, NULL, t0 + 21)};
    back[1].error = "timeout";
    back[2].error = "refused";
    write_ok(fx, &id, 1, NULL, back, 3, &r);
    assert_int_equal(r.status, 0);

    struct view_out v;
    get(fx, &id, &v);
    assert_int_equal(v.status, 0);
    assert_memory_equal(v.saga.id.bytes, id.bytes, 16);
    assert_string_equal(v.definition, "checkout");
    assert_int_equal(v.saga.version, 1);
    assert_int_equal(v.saga.mode, DEF_MODE_SAGA);
    assert_int_equal(v.saga.n_steps, 2);
    assert_int_equal(v.saga.status, SAGA_STATUS_RUNNING);
    assert_int_equal(v.input_len, sizeof(input_bytes));
    assert_memory_equal(v.input, input_bytes, sizeof(input_bytes));
    assert_string_equal(v.owner, "coord-a");
    assert_string_equal(v.key, "(null)");
    assert_int_equal(v.saga.epoch, 1);
    assert_int_equal(v.saga.created_ms, t0);
    assert_int_equal(v.saga.deadline_ms, t0 + 60000);
    assert_int_equal(v.saga.wake_ms, t0 + 4000);
    assert_true(v.saga.lease_until_ms > itest_now_ms());
    assert_int_equal(v.saga.events, 8);

    assert_int_equal(v.n_steps, 2);
    assert_int_equal(v.steps[0].step, 0);
    assert_int_equal(v.steps[0].status, SAGA_STEP_COMPENSATING);
    assert_true(v.steps[0].has_output);
    assert_string_equal(v.steps[0].output, "out-0");
    assert_int_equal(v.steps[0].started_ms, t0);
    assert_int_equal(v.steps[1].status, SAGA_STEP_FAILED);
    assert_int_equal(v.steps[1].attempts, 2);
    assert_false(v.steps[1].has_output);
    assert_int_equal(v.steps[1].started_ms, t0 + 10);
    assert_int_equal(v.steps[1].finished_ms, t0 + 21);

    /* The timeline: every record, in order, seq from 1. */
    assert_int_equal(v.n_events, 8);
    for (size_t i = 0; i < v.n_events; i++)
        assert_int_equal(v.events[i].seq, i + 1);
    assert_string_equal(v.events[0].kind, "saga.started");
    assert_int_equal(v.events[0].step, -1);
    assert_int_equal(v.events[0].status, SAGA_STATUS_RUNNING);
    assert_int_equal(v.events[0].at_ms, t0);
    assert_string_equal(v.events[2].kind, "step.succeeded");
    assert_int_equal(v.events[2].step, 0);
    assert_int_equal(v.events[2].attempt, 1);
    assert_string_equal(v.events[4].kind, "saga.status");
    assert_string_equal(v.events[6].detail, "timeout");
    assert_string_equal(v.events[7].detail, "refused");
    assert_int_equal(v.events[7].status, SAGA_STEP_FAILED);

    /* The end: completed sagas leave the active indexes. */
    struct record end[1] = {itest_rec_saga(SAGA_STATUS_COMPENSATED, t0 + 30, "step 1 refused")};
    write_ok(fx, &id, 1, NULL, end, 1, &r);
    assert_int_equal(r.status, 0);
    get(fx, &id, &v);
    assert_int_equal(v.saga.status, SAGA_STATUS_COMPENSATED);
    assert_string_equal(v.error, "step 1 refused");
    assert_int_equal(v.saga.wake_ms, 0);
    assert_int_equal(v.n_events, 9);

    /* Unknown sagas. */
    struct saga_id other;
    itest_id(&other);
    get(fx, &other, &v);
    assert_int_equal(v.status, SAGA_ENOTFOUND);
}

static void test_write_rejects_bad_records(void **state)
{
    struct itest_fx *fx = *state;
    struct saga_id id;
    itest_id(&id);
    struct itest_result r = {0};
    uint64_t t = itest_now_ms();
    struct store_create c = create_info("checkout", NULL);
    struct record ins = itest_rec_insert(SAGA_STATUS_RUNNING, t);
    struct record step = itest_rec_step(0, SAGA_STEP_RUNNING, 1, NULL, t);
    struct record bad_step = itest_rec_step(-2, SAGA_STEP_RUNNING, 1, NULL, t);
    struct record no_event = step;
    no_event.event = NULL;
    struct record bad_kind = step;
    bad_kind.kind = (enum record_kind)99;

    assert_int_equal(store_write(fx->s, &id, 1, NULL, NULL, 0, itest_on_write, &r), SAGA_EINVAL);
    /* A create needs REC_SAGA_INSERT first; REC_SAGA_INSERT needs a create. */
    assert_int_equal(store_write(fx->s, &id, 0, &c, &step, 1, itest_on_write, &r), SAGA_EINVAL);
    assert_int_equal(store_write(fx->s, &id, 1, NULL, &ins, 1, itest_on_write, &r), SAGA_EINVAL);
    assert_int_equal(store_write(fx->s, &id, 1, NULL, &bad_step, 1, itest_on_write, &r),
                     SAGA_EINVAL);
    assert_int_equal(store_write(fx->s, &id, 1, NULL, &no_event, 1, itest_on_write, &r),
                     SAGA_EINVAL);
    assert_int_equal(store_write(fx->s, &id, 1, NULL, &bad_kind, 1, itest_on_write, &r),
                     SAGA_EINVAL);
    assert_int_equal(store_write(fx->s, &id, 0, NULL, &step, 1, itest_on_write, &r), SAGA_EINVAL);
    struct store_create nodef = c;
    nodef.definition = NULL;
    assert_int_equal(store_write(fx->s, &id, 0, &nodef, &ins, 1, itest_on_write, &r), SAGA_EINVAL);
    /* A new saga's steps are within its step count. */
    struct record far = itest_rec_step(2, SAGA_STEP_RUNNING, 1, NULL, t);
    struct record two[2] = {ins, far};
    assert_int_equal(store_write(fx->s, &id, 0, &c, two, 2, itest_on_write, &r), SAGA_EINVAL);
    assert_int_equal(r.done, 0);

    /* A URL libpq cannot parse is refused at open. */
    struct store_config bad = {.database_url = "postgresql://x/db?no_such_option=1", .owner = "o"};
    struct store *none = NULL;
    assert_int_equal(store_open(&fx->loop, &bad, &none), SAGA_EINVAL);
    assert_null(none);
    bad.database_url = "dbname=x";
    bad.owner = "";
    assert_int_equal(store_open(&fx->loop, &bad, &none), SAGA_EINVAL);
}

/* ---- idempotent start ---- */

static void test_idempotent_start(void **state)
{
    struct itest_fx *fx = *state;
    struct saga_id a, b;
    itest_id(&a);
    itest_id(&b);
    uint64_t t = itest_now_ms();
    struct store_create c = create_info("checkout", "order-17");
    struct record rec[2] = {itest_rec_insert(SAGA_STATUS_RUNNING, t),
                            itest_rec_step(0, SAGA_STEP_RUNNING, 1, NULL, t)};
    struct itest_result r;
    write_ok(fx, &a, 0, &c, rec, 2, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.existing, 0);

    /* Same key, new id: the existing saga, and nothing written. */
    write_ok(fx, &b, 0, &c, rec, 2, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.existing, 1);
    assert_memory_equal(r.id.bytes, a.bytes, 16);
    struct view_out v;
    get(fx, &b, &v);
    assert_int_equal(v.status, SAGA_ENOTFOUND);
    get(fx, &a, &v);
    assert_int_equal(v.status, 0);
    assert_string_equal(v.key, "order-17");
    assert_int_equal(v.n_events, 2);

    /* Two starts with one new key in the same batch: one saga. */
    struct saga_id x, y;
    itest_id(&x);
    itest_id(&y);
    struct store_create c2 = create_info("checkout", "order-18");
    struct itest_result rx = {0}, ry = {0};
    assert_int_equal(store_write(fx->s, &x, 0, &c2, rec, 2, itest_on_write, &rx), 0);
    assert_int_equal(store_write(fx->s, &y, 0, &c2, rec, 2, itest_on_write, &ry), 0);
    itest_wait(&fx->loop, &ry.done, 1, 5000);
    itest_wait(&fx->loop, &rx.done, 1, 5000);
    assert_int_equal(rx.status, 0);
    assert_int_equal(ry.status, 0);
    assert_int_equal(rx.existing + ry.existing, 1);
    assert_memory_equal(rx.id.bytes, ry.id.bytes, 16);
    const char *key[1] = {"order-18"};
    assert_int_equal(
        itest_sql_int(fx->url, "SELECT count(*) FROM sagas WHERE idempotency_key = $1", 1, key), 1);
}

/* ---- list ---- */

struct page_out {
    int done;
    int status;
    size_t n;
    struct saga_id ids[16];
    int statuses[16];
    char next[STORE_CURSOR_LEN + 1];
    int has_next;
};

static void on_page(const struct store_page *p, int status)
{
    struct page_out *o = p->data;
    o->done++;
    o->status = status;
    o->n = p->n;
    for (size_t i = 0; i < p->n && i < 16; i++) {
        o->ids[i] = p->sagas[i].id;
        o->statuses[i] = p->sagas[i].status;
        assert_null(p->sagas[i].input);
    }
    o->has_next = p->next_cursor != NULL;
    if (p->next_cursor)
        snprintf(o->next, sizeof(o->next), "%s", p->next_cursor);
}

static void list(struct itest_fx *fx, const struct store_filter *f, struct page_out *o)
{
    memset(o, 0, sizeof(*o));
    assert_int_equal(store_list(fx->s, f, on_page, o), 0);
    itest_wait(&fx->loop, &o->done, 1, 5000);
    assert_int_equal(o->status, 0);
}

static void test_list(void **state)
{
    struct itest_fx *fx = *state;
    /* Seven sagas of a definition of their own, one ms apart, some done. */
    struct saga_id ids[7];
    uint64_t t0 = itest_now_ms() - 100000;
    for (int i = 0; i < 7; i++) {
        itest_id(&ids[i]);
        struct store_create c = create_info("listing", NULL);
        struct record rec = itest_rec_insert(SAGA_STATUS_RUNNING, t0 + (uint64_t)i);
        struct itest_result r;
        write_ok(fx, &ids[i], 0, &c, &rec, 1, &r);
        assert_int_equal(r.status, 0);
        if (i % 3 == 0) {
            struct record end = itest_rec_saga(SAGA_STATUS_COMPLETED, t0 + 50, NULL);
            write_ok(fx, &ids[i], 1, NULL, &end, 1, &r);
            assert_int_equal(r.status, 0);
        }
    }
    /* Pages of three, newest first, following the cursor. */
    struct store_filter f = {.definition = "listing", .limit = 3};
    struct page_out p;
    int seen = 6;
    for (int page = 0; page < 3; page++) {
        list(fx, &f, &p);
        assert_int_equal(p.n, page < 2 ? 3 : 1);
        for (size_t i = 0; i < p.n; i++, seen--)
            assert_memory_equal(p.ids[i].bytes, ids[seen].bytes, 16);
        assert_int_equal(p.has_next, page < 2);
        static char cursor[STORE_CURSOR_LEN + 1];
        memcpy(cursor, p.next, sizeof(cursor));
        f.cursor = cursor;
    }
    assert_int_equal(seen, -1);

    /* By status. */
    struct store_filter by_status = {
        .definition = "listing", .status = SAGA_STATUS_COMPLETED, .limit = 10};
    list(fx, &by_status, &p);
    assert_int_equal(p.n, 3);
    for (size_t i = 0; i < p.n; i++)
        assert_int_equal(p.statuses[i], SAGA_STATUS_COMPLETED);
    assert_memory_equal(p.ids[0].bytes, ids[6].bytes, 16);
    assert_false(p.has_next);

    /* Created since. */
    struct store_filter since = {.definition = "listing", .created_since_ms = t0 + 4};
    list(fx, &since, &p);
    assert_int_equal(p.n, 3);

    /* Any definition: at least these seven. */
    struct store_filter all = {.limit = 1000};
    list(fx, &all, &p);
    assert_true(p.n >= 7);

    /* Bad cursors and filters are refused at once. */
    struct store_filter bad = {.cursor = "zz"};
    assert_int_equal(store_list(fx->s, &bad, on_page, &p), SAGA_EINVAL);
    bad.cursor = "0000000000000000000000000000000000000000000000zz";
    assert_int_equal(store_list(fx->s, &bad, on_page, &p), SAGA_EINVAL);
    struct store_filter big = {.limit = 5000};
    assert_int_equal(store_list(fx->s, &big, on_page, &p), SAGA_EINVAL);
    struct store_filter bad_status = {.status = (saga_status_t)77};
    assert_int_equal(store_list(fx->s, &bad_status, on_page, &p), SAGA_EINVAL);
}

/* ---- leases ---- */

struct claim_out {
    int done;
    int status;
    size_t n;
    struct saga_id ids[8];
    uint64_t epochs[8];
    int statuses[8];
    uint16_t n_steps[8];
    int step_status[8][4];
    char outputs[8][4][16];
    char def_canonical[8][64];
    uint8_t input[8][16];
    size_t input_len[8];
};

static void on_claim(const struct store_claim *c, int status)
{
    struct claim_out *o = c->data;
    o->done++;
    o->status = status;
    o->n = c->n;
    for (size_t i = 0; i < c->n && i < 8; i++) {
        const struct store_claimed *x = &c->sagas[i];
        o->ids[i] = x->snap.id;
        o->epochs[i] = x->epoch;
        o->statuses[i] = x->snap.status;
        o->n_steps[i] = x->snap.n_steps;
        for (size_t k = 0; k < x->snap.n_steps && k < 4; k++) {
            o->step_status[i][k] = x->snap.steps[k].status;
            snprintf(o->outputs[i][k], sizeof(o->outputs[i][k]), "%.*s",
                     (int)x->snap.steps[k].output_len,
                     x->snap.steps[k].output ? (const char *)x->snap.steps[k].output : "");
        }
        snprintf(o->def_canonical[i], sizeof(o->def_canonical[i]), "%s",
                 x->def ? x->def->canonical : "(none)");
        memcpy(o->input[i], x->snap.input, x->snap.input_len < 16 ? x->snap.input_len : 16);
        o->input_len[i] = x->snap.input_len;
    }
}

static void test_leases(void **state)
{
    struct itest_fx *fx = *state;
    struct def_out d;
    define(fx, "leased", 4, "{\"name\":\"leased\",\"version\":4}", "h4", &d);
    assert_int_equal(d.status, 0);

    struct saga_id id;
    itest_id(&id);
    uint64_t t = itest_now_ms();
    struct store_create c = create_info("leased", NULL);
    c.version = 4;
    c.n_steps = 3;
    struct record rec[3] = {itest_rec_insert(SAGA_STATUS_RUNNING, t),
                            itest_rec_step(0, SAGA_STEP_SUCCEEDED, 1, "zero", t),
                            itest_rec_step(1, SAGA_STEP_RUNNING, 2, NULL, t)};
    struct itest_result r;
    write_ok(fx, &id, 0, &c, rec, 3, &r);
    assert_int_equal(r.status, 0);

    /* Renew: the active saga named, which this owner holds. */
    struct itest_count n = {0};
    assert_int_equal(store_renew(fx->s, &id, 1, itest_on_count, &n), 0);
    itest_wait(&fx->loop, &n.done, 1, 5000);
    assert_int_equal(n.status, 0);
    assert_int_equal(n.n, 1);

    /* Nothing to claim while leases hold. */
    struct claim_out cl = {0};
    assert_int_equal(store_claim(fx->s, 10, STORE_CLAIM_EXPIRED, on_claim, &cl), 0);
    itest_wait(&fx->loop, &cl.done, 1, 5000);
    assert_int_equal(cl.status, 0);
    assert_int_equal(cl.n, 0);

    /* Release: leases end now, writes are fenced. */
    memset(&n, 0, sizeof(n));
    assert_int_equal(store_release(fx->s, itest_on_count, &n), 0);
    itest_wait(&fx->loop, &n.done, 1, 5000);
    assert_int_equal(n.status, 0);
    assert_true(n.n >= 1);
    struct record step = itest_rec_step(1, SAGA_STEP_SUCCEEDED, 2, "one", t + 5);
    write_ok(fx, &id, 1, NULL, &step, 1, &r);
    assert_int_equal(r.status, SAGA_EFENCED);

    /* Claim it back: a new epoch, and the snapshot to rebuild from. */
    memset(&cl, 0, sizeof(cl));
    assert_int_equal(store_claim(fx->s, 1000, STORE_CLAIM_EXPIRED, on_claim, &cl), 0);
    itest_wait(&fx->loop, &cl.done, 1, 5000);
    assert_int_equal(cl.status, 0);
    int found = -1;
    for (size_t i = 0; i < cl.n; i++) {
        if (memcmp(cl.ids[i].bytes, id.bytes, 16) == 0)
            found = (int)i;
    }
    assert_true(found >= 0);
    assert_int_equal(cl.epochs[found], 2);
    assert_int_equal(cl.statuses[found], SAGA_STATUS_RUNNING);
    assert_int_equal(cl.n_steps[found], 3);
    assert_int_equal(cl.step_status[found][0], SAGA_STEP_SUCCEEDED);
    assert_string_equal(cl.outputs[found][0], "zero");
    assert_int_equal(cl.step_status[found][1], SAGA_STEP_RUNNING);
    assert_int_equal(cl.step_status[found][2], SAGA_STEP_PENDING);
    assert_string_equal(cl.def_canonical[found], "{\"name\":\"leased\",\"version\":4}");
    assert_int_equal(cl.input_len[found], sizeof(input_bytes));
    assert_memory_equal(cl.input[found], input_bytes, sizeof(input_bytes));

    /* The old epoch is fenced; the new one writes. */
    write_ok(fx, &id, 1, NULL, &step, 1, &r);
    assert_int_equal(r.status, SAGA_EFENCED);
    write_ok(fx, &id, 2, NULL, &step, 1, &r);
    assert_int_equal(r.status, 0);

    /* This store's own-claim never takes again what it holds... */
    memset(&cl, 0, sizeof(cl));
    assert_int_equal(store_claim(fx->s, 1000, STORE_CLAIM_OWN, on_claim, &cl), 0);
    itest_wait(&fx->loop, &cl.done, 1, 5000);
    assert_int_equal(cl.status, 0);
    assert_int_equal(cl.n, 0);

    /* ...but a restart under the same owner id takes them at once, and the
     * earlier process is fenced. */
    struct store *again = itest_store_open(&fx->loop, fx->url, "coord-a", NULL);
    memset(&cl, 0, sizeof(cl));
    assert_int_equal(store_claim(again, 1000, STORE_CLAIM_OWN, on_claim, &cl), 0);
    itest_wait(&fx->loop, &cl.done, 1, 5000);
    assert_int_equal(cl.status, 0);
    assert_true(cl.n >= 1);
    found = -1;
    for (size_t i = 0; i < cl.n; i++) {
        if (memcmp(cl.ids[i].bytes, id.bytes, 16) == 0)
            found = (int)i;
    }
    assert_true(found >= 0);
    assert_int_equal(cl.epochs[found], 3);
    assert_string_equal(cl.outputs[found][1], "one");
    write_ok(fx, &id, 2, NULL, &step, 1, &r);
    assert_int_equal(r.status, SAGA_EFENCED);

    /* Reclaim: one saga, by id, for the store that holds it. */
    memset(&cl, 0, sizeof(cl));
    assert_int_equal(store_reclaim(again, &id, on_claim, &cl), 0);
    itest_wait(&fx->loop, &cl.done, 1, 5000);
    assert_int_equal(cl.status, 0);
    assert_int_equal(cl.n, 1);
    assert_int_equal(cl.epochs[0], 4);
    /* Another owner cannot reclaim a saga whose lease holds. */
    memset(&cl, 0, sizeof(cl));
    assert_int_equal(store_reclaim(fx->s, &id, on_claim, &cl), 0);
    itest_wait(&fx->loop, &cl.done, 1, 5000);
    assert_int_equal(cl.status, 0);
    assert_int_equal(cl.n, 1); /* same owner id "coord-a": it may */
    itest_store_close(&fx->loop, &again);

    assert_int_equal(store_claim(fx->s, 0, 0, on_claim, &cl), SAGA_EINVAL);
    assert_int_equal(store_claim(fx->s, 1, 8, on_claim, &cl), SAGA_EINVAL);
}

/* ---- registry ---- */

struct inst_out {
    int done;
    int status;
    size_t n;
    int found;
    char address[64];
    uint64_t started_ms;
};

static void on_instances(const struct store_instances *r, int status)
{
    struct inst_out *o = r->data;
    o->done++;
    o->status = status;
    o->n = r->n;
    o->found = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->items[i].id, "coord-a") == 0) {
            o->found = 1;
            snprintf(o->address, sizeof(o->address), "%s", r->items[i].address);
            o->started_ms = r->items[i].started_ms;
        }
    }
}

static void test_registry(void **state)
{
    struct itest_fx *fx = *state;
    struct itest_count n = {0};
    assert_int_equal(store_register(fx->s, "10.0.0.1:7420", itest_on_count, &n), 0);
    itest_wait(&fx->loop, &n.done, 1, 5000);
    assert_int_equal(n.status, 0);
    assert_int_equal(n.n, 1);

    memset(&n, 0, sizeof(n));
    assert_int_equal(store_heartbeat(fx->s, itest_on_count, &n), 0);
    itest_wait(&fx->loop, &n.done, 1, 5000);
    assert_int_equal(n.n, 1);

    struct inst_out o = {0};
    assert_int_equal(store_instances(fx->s, 60000, on_instances, &o), 0);
    itest_wait(&fx->loop, &o.done, 1, 5000);
    assert_int_equal(o.status, 0);
    assert_true(o.found);
    assert_string_equal(o.address, "10.0.0.1:7420");
    assert_true(o.started_ms > 0);

    /* Re-registering moves the address. */
    memset(&n, 0, sizeof(n));
    assert_int_equal(store_register(fx->s, "10.0.0.2:7420", itest_on_count, &n), 0);
    itest_wait(&fx->loop, &n.done, 1, 5000);
    memset(&o, 0, sizeof(o));
    assert_int_equal(store_instances(fx->s, 60000, on_instances, &o), 0);
    itest_wait(&fx->loop, &o.done, 1, 5000);
    assert_string_equal(o.address, "10.0.0.2:7420");

    /* A stale heartbeat is not live. */
    itest_sql_int(fx->url,
                  "UPDATE saga_coordinators SET heartbeat_at = now() - interval '1 hour'"
                  " WHERE id = 'coord-a'",
                  0, NULL);
    memset(&o, 0, sizeof(o));
    assert_int_equal(store_instances(fx->s, 60000, on_instances, &o), 0);
    itest_wait(&fx->loop, &o.done, 1, 5000);
    assert_false(o.found);

    memset(&n, 0, sizeof(n));
    assert_int_equal(store_unregister(fx->s, itest_on_count, &n), 0);
    itest_wait(&fx->loop, &n.done, 1, 5000);
    assert_int_equal(n.n, 1);
    memset(&n, 0, sizeof(n));
    assert_int_equal(store_heartbeat(fx->s, itest_on_count, &n), 0);
    itest_wait(&fx->loop, &n.done, 1, 5000);
    assert_int_equal(n.n, 0);
    assert_int_equal(store_instances(fx->s, 0, on_instances, &o), SAGA_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_definitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_and_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_rejects_bad_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotent_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, itest_fx_group_teardown);
}
