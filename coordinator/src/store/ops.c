/* Everything the store does besides writes: definitions, inspection reads,
 * lease claims and renewals, the coordinator registry. Each is an op: a few
 * statements in one transaction, retried when the connection is lost, results
 * parsed into an arena the callback reads. Knows the statements' columns. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "saga/error.h"
#include "store/enc.h"
#include "store/store_int.h"

#define OP_MAX_ATTEMPTS 4
#define LIST_MAX        1000
#define CLAIM_MAX       1000

/* ---- arena ---- */

struct arena_chunk {
    struct arena_chunk *next;
    size_t used;
    size_t cap;
    max_align_t data[];
};

void *arena_alloc(struct arena *a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    struct arena_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 8192 ? n : 8192;
        c = malloc(sizeof(*c) + cap);
        if (!c)
            return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
    return s ? arena_strndup(a, s, strlen(s)) : NULL;
}

void arena_free(struct arena *a)
{
    struct arena_chunk *c = a->head;
    while (c) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}

/* ---- the op machinery ---- */

struct op *op_new(struct store *s, const struct op_vtbl *vt, size_t size, void *data)
{
    struct op *op = calloc(1, size);
    if (!op)
        return NULL;
    op->vt = vt;
    op->s = s;
    op->data = data;
    op->deadline = uv_now(s->loop) + s->unavailable_ms;
    return op;
}

void op_free(struct op *op)
{
    if (!op)
        return;
    if (op->vt->free)
        op->vt->free(op);
    arena_free(&op->args);
    arena_free(&op->res);
    free(op);
}

static void ops_push_back(struct store *s, struct op *op)
{
    op->next = NULL;
    op->prev = s->ops_tail;
    if (s->ops_tail)
        s->ops_tail->next = op;
    else
        s->ops_head = op;
    s->ops_tail = op;
}

static void ops_push_front(struct store *s, struct op *op)
{
    op->prev = NULL;
    op->next = s->ops_head;
    if (s->ops_head)
        s->ops_head->prev = op;
    else
        s->ops_tail = op;
    s->ops_head = op;
}

static void ops_remove(struct store *s, struct op *op)
{
    if (op->prev)
        op->prev->next = op->next;
    else
        s->ops_head = op->next;
    if (op->next)
        op->next->prev = op->prev;
    else
        s->ops_tail = op->prev;
    op->next = op->prev = NULL;
}

int op_submit(struct op *op)
{
    struct store *s = op->s;
    if (s->closing) {
        op_free(op);
        return SAGA_ECANCELED;
    }
    ops_push_back(s, op);
    store_wake(s);
    return 0;
}

void op_note_error(struct op *op, const struct pg_res *res)
{
    if (op->sqlstate[0])
        return;
    snprintf(op->sqlstate, sizeof(op->sqlstate), "%s", pg_res_sqlstate(res));
    char q[300];
    log_warn(NULL, "store.op_failed", "op=%s sqlstate=%s message=%s", op->vt->name, op->sqlstate,
             log_quote(q, sizeof(q), pg_res_message(res)));
}

static void op_end(struct op *op, int status)
{
    op->vt->finish(op, status);
    op_free(op);
}

/* Forget the attempt, go back to the head of the queue. */
static void op_again(struct op *op, int lost)
{
    arena_free(&op->res);
    op->status = 0;
    op->sqlstate[0] = '\0';
    if (lost)
        op->lost = 1;
    if (op->vt->retry)
        op->vt->retry(op, lost);
    ops_push_front(op->s, op);
    store_wake(op->s);
}

static void op_on_result(void *arg, int index, const struct pg_res *res)
{
    struct op *op = arg;
    switch (pg_res_status(res)) {
    case PG_RES_OK:
        op->vt->result(op, index, res);
        break;
    case PG_RES_ERROR:
        op_note_error(op, res);
        break;
    case PG_RES_ABORTED:
        break;
    }
}

static void op_on_done(void *arg, int status)
{
    struct op *op = arg;
    uint64_t now = uv_now(op->s->loop);
    switch (status) {
    case 0:
        op_end(op, op->status);
        return;
    case SAGA_EDB:
        if ((!op->sqlstate[0] || sqlstate_transient(op->sqlstate)) &&
            ++op->attempts < OP_MAX_ATTEMPTS && now < op->deadline) {
            op_again(op, 0);
            return;
        }
        op_end(op, op->sqlstate[0] ? sqlstate_to_err(op->sqlstate) : SAGA_EDB);
        return;
    case SAGA_ECLOSED:
        if (now < op->deadline && !op->s->closing) {
            op_again(op, 1);
            return;
        }
        op->lost = 1;
        op_end(op, SAGA_EUNAVAIL);
        return;
    default:
        op_end(op, status);
        return;
    }
}

void ops_flush(struct store *s)
{
    while (s->ops_head) {
        struct store_conn *sc = store_pick_conn(s);
        if (!sc)
            return;
        struct op *op = s->ops_head;
        ops_remove(s, op);
        struct pg_query q[OP_MAX_QUERIES];
        memset(q, 0, sizeof(q));
        int n = op->vt->build(op, q);
        if (n < 0) {
            op_end(op, n);
            continue;
        }
        int rc = pg_conn_send(sc->pg, q, (size_t)n, op_on_result, op_on_done, op);
        if (rc != 0) {
            ops_push_front(s, op);
            return;
        }
    }
}

void ops_expire(struct store *s, uint64_t now)
{
    struct op *expired = NULL;
    struct op *next;
    for (struct op *op = s->ops_head; op; op = next) {
        next = op->next;
        if (op->deadline > now)
            continue;
        ops_remove(s, op);
        op->next = expired;
        expired = op;
    }
    while (expired) {
        struct op *op = expired;
        expired = op->next;
        op_end(op, SAGA_EUNAVAIL);
    }
}

void ops_fail_all(struct store *s, int status)
{
    struct op *op;
    while ((op = s->ops_head) != NULL) {
        ops_remove(s, op);
        op_end(op, status);
    }
}

void op_query(struct op *op, struct pg_query *q, int k, enum stmt_id stmt, int n_params)
{
    q[k].stmt = stmt < STMT_COUNT_ ? store_stmts[stmt].name : NULL;
    q[k].n_params = n_params;
    q[k].values = op->values[k];
    q[k].lengths = op->lengths[k];
    q[k].formats = op->formats[k];
}

void op_param_text(struct op *op, int k, int i, const char *s)
{
    op->values[k][i] = s;
    op->lengths[k][i] = s ? (int)strlen(s) : 0;
    op->formats[k][i] = 0;
}

void op_param_bytes(struct op *op, int k, int i, const void *p, size_t len)
{
    op->values[k][i] = p;
    op->lengths[k][i] = (int)len;
    op->formats[k][i] = 1;
}

void op_param_i64(struct op *op, int k, int i, int64_t v)
{
    enc_i64(op->scratch[k][i], v);
    op_param_bytes(op, k, i, op->scratch[k][i], 8);
}

void op_param_i32(struct op *op, int k, int i, int32_t v)
{
    enc_i32(op->scratch[k][i], v);
    op_param_bytes(op, k, i, op->scratch[k][i], 4);
}

void op_param_i16(struct op *op, int k, int i, int16_t v)
{
    op->scratch[k][i][0] = (uint8_t)((uint16_t)v >> 8);
    op->scratch[k][i][1] = (uint8_t)v;
    op_param_bytes(op, k, i, op->scratch[k][i], 2);
}

void op_param_uuid(struct op *op, int k, int i, const struct saga_id *id)
{
    memcpy(op->scratch[k][i], id->bytes, 16);
    op_param_bytes(op, k, i, op->scratch[k][i], 16);
}

/* ---- reading columns (binary) ---- */

static void bad_result(struct op *op, const char *what)
{
    if (op->status == 0) {
        op->status = SAGA_EDB;
        log_error(NULL, "store.bad_result", "op=%s column=%s", op->vt->name, what);
    }
}

static const char *col_text(struct op *op, const struct pg_res *r, int row, int col)
{
    if (pg_res_isnull(r, row, col))
        return NULL;
    const char *p =
        arena_strndup(&op->res, pg_res_value(r, row, col), (size_t)pg_res_length(r, row, col));
    if (!p)
        op->status = SAGA_ENOMEM;
    return p;
}

static const uint8_t *col_bytes(struct op *op, const struct pg_res *r, int row, int col,
                                size_t *len)
{
    *len = 0;
    if (pg_res_isnull(r, row, col))
        return NULL;
    size_t n = (size_t)pg_res_length(r, row, col);
    const char *p = arena_strndup(&op->res, pg_res_value(r, row, col), n);
    if (!p) {
        op->status = SAGA_ENOMEM;
        return NULL;
    }
    *len = n;
    return (const uint8_t *)p;
}

static int64_t col_i64(struct op *op, const struct pg_res *r, int row, int col)
{
    if (pg_res_isnull(r, row, col))
        return 0;
    const char *p = pg_res_value(r, row, col);
    int len = pg_res_length(r, row, col);
    int64_t v = 0;
    int16_t v16;
    int32_t v32;
    if (len == 2 && dec_i16(p, len, &v16) == 0)
        v = v16;
    else if (len == 4 && dec_i32(p, len, &v32) == 0)
        v = v32;
    else if (dec_i64(p, len, &v) != 0)
        bad_result(op, "integer");
    return v;
}

static uint64_t col_ts(struct op *op, const struct pg_res *r, int row, int col)
{
    uint64_t ms = 0;
    if (pg_res_isnull(r, row, col))
        return 0;
    if (dec_ts_ms(pg_res_value(r, row, col), pg_res_length(r, row, col), &ms) != 0)
        bad_result(op, "timestamptz");
    return ms;
}

static struct saga_id col_uuid(struct op *op, const struct pg_res *r, int row, int col)
{
    struct saga_id id = {{0}};
    if (pg_res_isnull(r, row, col) ||
        dec_uuid(pg_res_value(r, row, col), pg_res_length(r, row, col), &id) != 0)
        bad_result(op, "uuid");
    return id;
}

/* The sagas row as STMT_GET_SAGA and list queries return it. */
static void read_saga(struct op *op, const struct pg_res *r, int row, struct store_saga *out)
{
    out->id = col_uuid(op, r, row, 0);
    out->definition = col_text(op, r, row, 1);
    out->version = (uint32_t)col_i64(op, r, row, 2);
    out->mode = (enum def_mode)col_i64(op, r, row, 3);
    out->n_steps = (uint16_t)col_i64(op, r, row, 4);
    out->status = (saga_status_t)col_i64(op, r, row, 5);
    out->input = col_bytes(op, r, row, 6, &out->input_len);
    out->idempotency_key = col_text(op, r, row, 7);
    out->owner = col_text(op, r, row, 8);
    out->epoch = (uint64_t)col_i64(op, r, row, 9);
    out->lease_until_ms = col_ts(op, r, row, 10);
    out->wake_ms = col_ts(op, r, row, 11);
    out->deadline_ms = col_ts(op, r, row, 12);
    out->created_ms = col_ts(op, r, row, 13);
    out->updated_ms = col_ts(op, r, row, 14);
    out->error = col_text(op, r, row, 15);
    out->events = (uint32_t)col_i64(op, r, row, 16);
}

/* ---- define ---- */

struct op_define {
    struct op op;
    store_define_cb cb;
    const char *name;
    char version[16];
    char mode[8];
    const char *canonical;
    const char *hash;
    struct store_define result;
    int check_seen;
};

static int define_build(struct op *op, struct pg_query *q)
{
    struct op_define *d = (struct op_define *)op;
    op_query(op, q, 0, STMT_DEFINE, 5);
    op_param_text(op, 0, 0, d->name);
    op_param_text(op, 0, 1, d->version);
    op_param_text(op, 0, 2, d->mode);
    op_param_text(op, 0, 3, d->canonical);
    op_param_text(op, 0, 4, d->hash);
    op_query(op, q, 1, STMT_DEFINE_CHECK, 2);
    op_param_text(op, 1, 0, d->name);
    op_param_text(op, 1, 1, d->version);
    return 2;
}

static void define_result(struct op *op, int index, const struct pg_res *res)
{
    struct op_define *d = (struct op_define *)op;
    if (index == 0) {
        d->result.created = pg_res_rows(res) > 0;
        return;
    }
    d->check_seen = 1;
    if (pg_res_rows(res) != 1) {
        bad_result(op, "hash");
        return;
    }
    const char *hash = pg_res_value(res, 0, 0);
    if (!d->result.created && strcmp(hash, d->hash) != 0)
        op->status = SAGA_EEXIST;
}

static void define_finish(struct op *op, int status)
{
    struct op_define *d = (struct op_define *)op;
    d->result.data = op->data;
    if (status == 0 && !d->check_seen)
        status = SAGA_EDB;
    d->cb(&d->result, status);
}

static void define_retry(struct op *op, int lost)
{
    struct op_define *d = (struct op_define *)op;
    (void)lost;
    d->result.created = 0;
    d->check_seen = 0;
}

static const struct op_vtbl define_vtbl = {
    .name = "define",
    .build = define_build,
    .result = define_result,
    .finish = define_finish,
    .retry = define_retry,
};

int store_define(struct store *s, const char *name, uint32_t version, enum def_mode mode,
                 const char *canonical, size_t canonical_len, const char *hash, store_define_cb cb,
                 void *data)
{
    if (!s || !cb || !name || !*name || !canonical || !hash || version == 0 ||
        version > INT32_MAX || (mode != DEF_MODE_SAGA && mode != DEF_MODE_2PC) ||
        memchr(canonical, '\0', canonical_len))
        return SAGA_EINVAL;
    struct op_define *d = (struct op_define *)op_new(s, &define_vtbl, sizeof(*d), data);
    if (!d)
        return SAGA_ENOMEM;
    d->cb = cb;
    d->name = arena_strdup(&d->op.args, name);
    d->canonical = arena_strndup(&d->op.args, canonical, canonical_len);
    d->hash = arena_strdup(&d->op.args, hash);
    snprintf(d->version, sizeof(d->version), "%" PRIu32, version);
    snprintf(d->mode, sizeof(d->mode), "%d", (int)mode);
    if (!d->name || !d->canonical || !d->hash) {
        op_free(&d->op);
        return SAGA_ENOMEM;
    }
    return op_submit(&d->op);
}

/* ---- definition_get ---- */

struct op_defget {
    struct op op;
    store_def_cb cb;
    const char *name;
    char version[16];
    struct store_definition def;
    int found;
};

static int defget_build(struct op *op, struct pg_query *q)
{
    struct op_defget *d = (struct op_defget *)op;
    op_query(op, q, 0, STMT_DEF_GET, 2);
    op_param_text(op, 0, 0, d->name);
    op_param_text(op, 0, 1, d->version);
    return 1;
}

static void read_definition(struct op *op, const struct pg_res *r, int row, int c_name,
                            int c_version, int c_mode, int c_canonical, int c_hash, int c_created,
                            struct store_definition *out)
{
    out->name = col_text(op, r, row, c_name);
    out->version = (uint32_t)col_i64(op, r, row, c_version);
    out->mode = (enum def_mode)col_i64(op, r, row, c_mode);
    out->canonical = col_text(op, r, row, c_canonical);
    out->canonical_len = out->canonical ? (size_t)pg_res_length(r, row, c_canonical) : 0;
    out->hash = col_text(op, r, row, c_hash);
    out->created_ms = col_ts(op, r, row, c_created);
}

static void defget_result(struct op *op, int index, const struct pg_res *res)
{
    struct op_defget *d = (struct op_defget *)op;
    (void)index;
    if (pg_res_rows(res) < 1)
        return;
    read_definition(op, res, 0, 0, 1, 2, 3, 4, 5, &d->def);
    d->found = 1;
}

static void defget_finish(struct op *op, int status)
{
    struct op_defget *d = (struct op_defget *)op;
    struct store_def_result r = {.data = op->data};
    if (status == 0 && !d->found)
        status = SAGA_ENOTFOUND;
    if (status == 0)
        r.def = &d->def;
    d->cb(&r, status);
}

static void defget_retry(struct op *op, int lost)
{
    (void)lost;
    ((struct op_defget *)op)->found = 0;
}

static const struct op_vtbl defget_vtbl = {
    .name = "definition_get",
    .build = defget_build,
    .result = defget_result,
    .finish = defget_finish,
    .retry = defget_retry,
};

int store_definition_get(struct store *s, const char *name, uint32_t version, store_def_cb cb,
                         void *data)
{
    if (!s || !cb || !name || !*name || version > INT32_MAX)
        return SAGA_EINVAL;
    struct op_defget *d = (struct op_defget *)op_new(s, &defget_vtbl, sizeof(*d), data);
    if (!d)
        return SAGA_ENOMEM;
    d->cb = cb;
    d->name = arena_strdup(&d->op.args, name);
    snprintf(d->version, sizeof(d->version), "%" PRIu32, version);
    if (!d->name) {
        op_free(&d->op);
        return SAGA_ENOMEM;
    }
    return op_submit(&d->op);
}

/* ---- get ---- */

struct op_get {
    struct op op;
    store_get_cb cb;
    struct saga_id id;
    struct store_saga saga;
    int found;
    struct store_step *steps;
    size_t n_steps;
    struct store_event *events;
    size_t n_events;
};

static int get_build(struct op *op, struct pg_query *q)
{
    struct op_get *g = (struct op_get *)op;
    op_query(op, q, 0, STMT_BEGIN_RO, 0);
    for (int k = 1; k <= 3; k++) {
        op_query(op, q, k, k == 1 ? STMT_GET_SAGA : k == 2 ? STMT_GET_STEPS : STMT_GET_EVENTS, 1);
        op_param_uuid(op, k, 0, &g->id);
    }
    op_query(op, q, 4, STMT_COMMIT, 0);
    return 5;
}

static void get_result(struct op *op, int index, const struct pg_res *res)
{
    struct op_get *g = (struct op_get *)op;
    int rows = pg_res_rows(res);
    if (index == 1 && rows == 1) {
        read_saga(op, res, 0, &g->saga);
        g->found = 1;
    } else if (index == 2 && rows > 0) {
        g->steps = arena_alloc(&op->res, (size_t)rows * sizeof(*g->steps));
        if (!g->steps) {
            op->status = SAGA_ENOMEM;
            return;
        }
        for (int r = 0; r < rows; r++) {
            struct store_step *st = &g->steps[r];
            st->step = (uint16_t)col_i64(op, res, r, 0);
            st->status = (saga_step_status_t)col_i64(op, res, r, 1);
            st->attempts = (uint32_t)col_i64(op, res, r, 2);
            st->compensate_attempts = (uint32_t)col_i64(op, res, r, 3);
            st->output = col_bytes(op, res, r, 4, &st->output_len);
            st->error = col_text(op, res, r, 5);
            st->started_ms = col_ts(op, res, r, 6);
            st->finished_ms = col_ts(op, res, r, 7);
        }
        g->n_steps = (size_t)rows;
    } else if (index == 3 && rows > 0) {
        g->events = arena_alloc(&op->res, (size_t)rows * sizeof(*g->events));
        if (!g->events) {
            op->status = SAGA_ENOMEM;
            return;
        }
        for (int r = 0; r < rows; r++) {
            struct store_event *e = &g->events[r];
            e->seq = (uint32_t)col_i64(op, res, r, 0);
            e->at_ms = col_ts(op, res, r, 1);
            e->kind = col_text(op, res, r, 2);
            e->step = pg_res_isnull(res, r, 3) ? -1 : (int32_t)col_i64(op, res, r, 3);
            e->attempt = (uint32_t)col_i64(op, res, r, 4);
            e->status = (int)col_i64(op, res, r, 5);
            e->detail = col_text(op, res, r, 6);
        }
        g->n_events = (size_t)rows;
    }
}

static void get_finish(struct op *op, int status)
{
    struct op_get *g = (struct op_get *)op;
    struct store_saga_view v = {.data = op->data};
    if (status == 0 && !g->found)
        status = SAGA_ENOTFOUND;
    if (status == 0) {
        v.saga = &g->saga;
        v.n_steps = g->n_steps;
        v.steps = g->steps;
        v.n_events = g->n_events;
        v.events = g->events;
    }
    g->cb(&v, status);
}

static void get_retry(struct op *op, int lost)
{
    struct op_get *g = (struct op_get *)op;
    (void)lost;
    g->found = 0;
    g->steps = NULL;
    g->n_steps = 0;
    g->events = NULL;
    g->n_events = 0;
}

static const struct op_vtbl get_vtbl = {
    .name = "get",
    .build = get_build,
    .result = get_result,
    .finish = get_finish,
    .retry = get_retry,
};

int store_get(struct store *s, const struct saga_id *id, store_get_cb cb, void *data)
{
    if (!s || !id || !cb)
        return SAGA_EINVAL;
    struct op_get *g = (struct op_get *)op_new(s, &get_vtbl, sizeof(*g), data);
    if (!g)
        return SAGA_ENOMEM;
    g->cb = cb;
    g->id = *id;
    return op_submit(&g->op);
}

/* ---- list ---- */

struct op_list {
    struct op op;
    store_list_cb cb;
    char *sql;
    int16_t status;
    const char *definition;
    uint64_t since_ms;
    int has_cursor;
    int64_t cursor_us;
    struct saga_id cursor_id;
    unsigned limit;
    struct store_saga *sagas;
    size_t n;
    char next[STORE_CURSOR_LEN + 1];
    int more;
};

static int list_build(struct op *op, struct pg_query *q)
{
    struct op_list *l = (struct op_list *)op;
    int k = 0;
    op_query(op, q, 0, STMT_COUNT_, 0);
    q[0].sql = l->sql;
    if (l->status)
        op_param_i16(op, 0, k++, l->status);
    if (l->definition)
        op_param_bytes(op, 0, k++, l->definition, strlen(l->definition));
    if (l->since_ms)
        op_param_i64(op, 0, k++, (int64_t)l->since_ms * 1000 - PG_EPOCH_OFFSET_US);
    if (l->has_cursor) {
        op_param_i64(op, 0, k++, l->cursor_us - PG_EPOCH_OFFSET_US);
        op_param_uuid(op, 0, k++, &l->cursor_id);
    }
    op_param_i32(op, 0, k++, (int32_t)l->limit + 1);
    q[0].n_params = k;
    return 1;
}

static void list_result(struct op *op, int index, const struct pg_res *res)
{
    struct op_list *l = (struct op_list *)op;
    (void)index;
    int rows = pg_res_rows(res);
    l->more = rows > (int)l->limit;
    size_t n = l->more ? l->limit : (size_t)rows;
    if (n == 0)
        return;
    l->sagas = arena_alloc(&op->res, n * sizeof(*l->sagas));
    if (!l->sagas) {
        op->status = SAGA_ENOMEM;
        return;
    }
    for (size_t r = 0; r < n; r++)
        read_saga(op, res, (int)r, &l->sagas[r]);
    l->n = n;
    if (l->more) {
        int64_t us = 0;
        int last = (int)n - 1;
        if (dec_ts_us(pg_res_value(res, last, 13), pg_res_length(res, last, 13), &us) != 0) {
            bad_result(op, "created_at");
            return;
        }
        static const char hex[] = "0123456789abcdef";
        uint64_t u = (uint64_t)us;
        for (int i = 0; i < 16; i++)
            l->next[i] = hex[(u >> (60 - 4 * i)) & 15];
        for (int i = 0; i < 16; i++) {
            l->next[16 + 2 * i] = hex[l->sagas[last].id.bytes[i] >> 4];
            l->next[17 + 2 * i] = hex[l->sagas[last].id.bytes[i] & 15];
        }
        l->next[STORE_CURSOR_LEN] = '\0';
    }
}

static void list_finish(struct op *op, int status)
{
    struct op_list *l = (struct op_list *)op;
    struct store_page p = {.data = op->data};
    if (status == 0) {
        p.n = l->n;
        p.sagas = l->sagas;
        p.next_cursor = l->more ? l->next : NULL;
    }
    l->cb(&p, status);
}

static void list_retry(struct op *op, int lost)
{
    struct op_list *l = (struct op_list *)op;
    (void)lost;
    l->sagas = NULL;
    l->n = 0;
    l->more = 0;
}

static const struct op_vtbl list_vtbl = {
    .name = "list",
    .build = list_build,
    .result = list_result,
    .finish = list_finish,
    .retry = list_retry,
};

static int cursor_parse(const char *text, int64_t *us, struct saga_id *id)
{
    if (strlen(text) != STORE_CURSOR_LEN)
        return SAGA_EINVAL;
    uint64_t u = 0;
    for (int i = 0; i < 16; i++) {
        char c = text[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return SAGA_EINVAL;
        u = u << 4 | (uint64_t)v;
    }
    *us = (int64_t)u;
    return store_id_parse(text + 16, id);
}

int store_list(struct store *s, const struct store_filter *f, store_list_cb cb, void *data)
{
    if (!s || !f || !cb || f->limit > LIST_MAX || (unsigned)f->status > 10)
        return SAGA_EINVAL;
    struct op_list *l = (struct op_list *)op_new(s, &list_vtbl, sizeof(*l), data);
    if (!l)
        return SAGA_ENOMEM;
    l->cb = cb;
    l->status = (int16_t)f->status;
    l->since_ms = f->created_since_ms;
    l->limit = f->limit ? f->limit : 50;
    int rc = SAGA_ENOMEM;
    if (f->definition && !(l->definition = arena_strdup(&l->op.args, f->definition)))
        goto fail;
    if (f->cursor) {
        rc = cursor_parse(f->cursor, &l->cursor_us, &l->cursor_id);
        if (rc != 0)
            goto fail;
        l->has_cursor = 1;
    }
    rc = SAGA_ENOMEM;
    l->sql = arena_alloc(&l->op.args, 1024);
    if (!l->sql)
        goto fail;
    rc = sql_list(l->sql, 1024, l->status != 0, l->definition != NULL, l->since_ms != 0,
                  l->has_cursor);
    if (rc != 0)
        goto fail;
    return op_submit(&l->op);
fail:
    op_free(&l->op);
    return rc;
}

/* ---- claim ---- */

struct op_claim {
    struct op op;
    store_claim_cb cb;
    unsigned max;
    unsigned flags;
    int one; /* store_reclaim() */
    char id_text[37];
    uint64_t token;
    char owner_max[16];
    char token_text[24];
    char lease_text[16];
    struct store_claimed *sagas;
    size_t n;
    struct store_definition *defs;
    size_t n_defs;
};

static int claim_build(struct op *op, struct pg_query *q)
{
    struct op_claim *c = (struct op_claim *)op;
    /* After a lost attempt, take back exactly what that attempt took. */
    enum stmt_id stmt = op->lost                       ? STMT_CLAIM_TOKEN
                        : c->one                       ? STMT_CLAIM_ONE
                        : (c->flags & STORE_CLAIM_OWN) ? STMT_CLAIM_OWN
                                                       : STMT_CLAIM_EXPIRED;
    op_query(op, q, 0, stmt, stmt == STMT_CLAIM_ONE ? 6 : 5);
    op_param_text(op, 0, 0, op->s->owner);
    op_param_text(op, 0, 1, c->owner_max);
    op_param_text(op, 0, 2, c->token_text);
    op_param_text(op, 0, 3, c->lease_text);
    op_param_text(op, 0, 4, op->s->holder_text);
    if (stmt == STMT_CLAIM_ONE)
        op_param_text(op, 0, 5, c->id_text);
    return 1;
}

static void claim_result(struct op *op, int index, const struct pg_res *res)
{
    struct op_claim *c = (struct op_claim *)op;
    (void)index;
    int rows = pg_res_rows(res);
    size_t n_sagas = 0, n_defs = 0;
    for (int r = 0; r < rows; r++) {
        int64_t kind = col_i64(op, res, r, 0);
        n_sagas += kind == 0;
        n_defs += kind == 2;
    }
    if (n_sagas == 0)
        return;
    c->sagas = arena_alloc(&op->res, n_sagas * sizeof(*c->sagas));
    c->defs = n_defs ? arena_alloc(&op->res, n_defs * sizeof(*c->defs)) : NULL;
    if (!c->sagas || (n_defs && !c->defs)) {
        op->status = SAGA_ENOMEM;
        return;
    }
    memset(c->sagas, 0, n_sagas * sizeof(*c->sagas));
    /* Columns: kind, id, epoch, name, version, mode, n, status, data, txt,
     * created, deadline, wake, attempts, catt, hash. */
    for (int r = 0; r < rows; r++) {
        int64_t kind = col_i64(op, res, r, 0);
        if (kind == 0) {
            struct store_claimed *x = &c->sagas[c->n++];
            x->snap.id = col_uuid(op, res, r, 1);
            x->epoch = (uint64_t)col_i64(op, res, r, 2);
            x->definition = col_text(op, res, r, 3);
            x->version = (uint32_t)col_i64(op, res, r, 4);
            x->mode = (enum def_mode)col_i64(op, res, r, 5);
            x->snap.n_steps = (uint16_t)col_i64(op, res, r, 6);
            x->snap.status = (saga_status_t)col_i64(op, res, r, 7);
            x->snap.input = col_bytes(op, res, r, 8, &x->snap.input_len);
            if (!x->snap.input)
                x->snap.input = (const uint8_t *)"";
            x->snap.error = col_text(op, res, r, 9);
            x->snap.created_ms = col_ts(op, res, r, 10);
            x->snap.deadline_ms = col_ts(op, res, r, 11);
            x->snap.wake_ms = col_ts(op, res, r, 12);
            struct step_snapshot *steps = NULL;
            if (x->snap.n_steps) {
                steps = arena_alloc(&op->res, x->snap.n_steps * sizeof(*steps));
                if (!steps) {
                    op->status = SAGA_ENOMEM;
                    return;
                }
                memset(steps, 0, x->snap.n_steps * sizeof(*steps));
                for (size_t k = 0; k < x->snap.n_steps; k++)
                    steps[k].status = SAGA_STEP_PENDING;
            }
            x->snap.steps = steps;
        } else if (kind == 2) {
            read_definition(op, res, r, 3, 4, 5, 9, 15, 10, &c->defs[c->n_defs++]);
        }
    }
    /* Steps: rows of kind 1 come after every saga (UNION ALL keeps order). */
    for (int r = 0; r < rows; r++) {
        if (col_i64(op, res, r, 0) != 1)
            continue;
        struct saga_id id = col_uuid(op, res, r, 1);
        int64_t step = col_i64(op, res, r, 6);
        for (size_t i = 0; i < c->n; i++) {
            struct store_claimed *x = &c->sagas[i];
            if (memcmp(x->snap.id.bytes, id.bytes, 16) != 0)
                continue;
            if (step < 0 || step >= x->snap.n_steps) {
                char ids[37];
                store_id_format(&id, ids);
                log_warn(ids, "store.claim_step_ignored", "step=%" PRId64 " n_steps=%u", step,
                         (unsigned)x->snap.n_steps);
                break;
            }
            struct step_snapshot *st = (struct step_snapshot *)&x->snap.steps[step];
            st->status = (saga_step_status_t)col_i64(op, res, r, 7);
            st->output = col_bytes(op, res, r, 8, &st->output_len);
            st->error = col_text(op, res, r, 9);
            st->attempts = (uint32_t)col_i64(op, res, r, 13);
            st->compensate_attempts = (uint32_t)col_i64(op, res, r, 14);
            break;
        }
    }
    for (size_t i = 0; i < c->n; i++) {
        struct store_claimed *x = &c->sagas[i];
        for (size_t k = 0; k < c->n_defs; k++) {
            if (x->definition && c->defs[k].name && strcmp(c->defs[k].name, x->definition) == 0 &&
                c->defs[k].version == x->version)
                x->def = &c->defs[k];
        }
    }
}

static void claim_finish(struct op *op, int status)
{
    struct op_claim *c = (struct op_claim *)op;
    struct store_claim r = {.data = op->data};
    if (status == 0) {
        r.n = c->n;
        r.sagas = c->sagas;
    } else if (op->lost) {
        /* The last word from the database was lost: rows may be ours that
         * nobody will run. Give them back once it answers again. */
        if (store_orphan_add(op->s, c->token) != 0)
            log_error(NULL, "store.claim_orphaned", "token=%" PRIu64, c->token);
    }
    c->cb(&r, status);
}

static void claim_retry(struct op *op, int lost)
{
    struct op_claim *c = (struct op_claim *)op;
    (void)lost;
    c->sagas = NULL;
    c->n = 0;
    c->defs = NULL;
    c->n_defs = 0;
}

static const struct op_vtbl claim_vtbl = {
    .name = "claim",
    .build = claim_build,
    .result = claim_result,
    .finish = claim_finish,
    .retry = claim_retry,
};

static struct op_claim *claim_new(struct store *s, unsigned max, store_claim_cb cb, void *data)
{
    struct op_claim *c = (struct op_claim *)op_new(s, &claim_vtbl, sizeof(*c), data);
    if (!c)
        return NULL;
    c->cb = cb;
    c->max = max;
    c->token = store_token(s);
    snprintf(c->owner_max, sizeof(c->owner_max), "%u", max);
    snprintf(c->token_text, sizeof(c->token_text), "%" PRId64, (int64_t)c->token);
    snprintf(c->lease_text, sizeof(c->lease_text), "%" PRIu32, s->lease_ms);
    return c;
}

int store_claim(struct store *s, unsigned max, unsigned flags, store_claim_cb cb, void *data)
{
    if (!s || !cb || max == 0 || max > CLAIM_MAX || (flags & ~(unsigned)STORE_CLAIM_OWN))
        return SAGA_EINVAL;
    struct op_claim *c = claim_new(s, max, cb, data);
    if (!c)
        return SAGA_ENOMEM;
    c->flags = flags;
    return op_submit(&c->op);
}

int store_reclaim(struct store *s, const struct saga_id *id, store_claim_cb cb, void *data)
{
    if (!s || !id || !cb)
        return SAGA_EINVAL;
    struct op_claim *c = claim_new(s, 1, cb, data);
    if (!c)
        return SAGA_ENOMEM;
    c->one = 1;
    store_id_format(id, c->id_text);
    /* Recovery work: it waits for the database as long as it takes. */
    c->op.deadline = UINT64_MAX;
    return op_submit(&c->op);
}

/* ---- commands that return a row count ---- */

struct op_count {
    struct op op;
    store_count_cb cb; /* NULL for internal ops */
    enum stmt_id stmt;
    int n_params;
    const char *params[3];
    char num[2][24];
    const uint8_t *ids; /* renew: a uuid[] in binary after the text parameters */
    size_t ids_len;
    uint64_t n;
};

static int count_build(struct op *op, struct pg_query *q)
{
    struct op_count *c = (struct op_count *)op;
    op_query(op, q, 0, c->stmt, c->n_params + (c->ids != NULL));
    for (int i = 0; i < c->n_params; i++)
        op_param_text(op, 0, i, c->params[i]);
    if (c->ids)
        op_param_bytes(op, 0, c->n_params, c->ids, c->ids_len);
    return 1;
}

static void count_result(struct op *op, int index, const struct pg_res *res)
{
    (void)index;
    ((struct op_count *)op)->n = pg_res_affected(res);
}

static void count_finish(struct op *op, int status)
{
    struct op_count *c = (struct op_count *)op;
    struct store_count r = {.data = op->data, .n = status == 0 ? c->n : 0};
    if (c->cb)
        c->cb(&r, status);
}

static void count_retry(struct op *op, int lost)
{
    (void)lost;
    ((struct op_count *)op)->n = 0;
}

static const struct op_vtbl count_vtbl = {
    .name = "command",
    .build = count_build,
    .result = count_result,
    .finish = count_finish,
    .retry = count_retry,
};

static struct op_count *count_new(struct store *s, enum stmt_id stmt, store_count_cb cb, void *data)
{
    struct op_count *c = (struct op_count *)op_new(s, &count_vtbl, sizeof(*c), data);
    if (!c)
        return NULL;
    c->cb = cb;
    c->stmt = stmt;
    c->params[0] = s->owner;
    c->n_params = 1;
    return c;
}

int store_renew(struct store *s, const struct saga_id *ids, size_t n, store_count_cb cb, void *data)
{
    if (!s || !cb || (n > 0 && !ids) || n > INT32_MAX)
        return SAGA_EINVAL;
    struct buf b = {0};
    struct pgarr a;
    pgarr_begin(&b, &a, PG_OID_UUID);
    for (size_t i = 0; i < n; i++)
        pgarr_uuid(&b, &a, &ids[i]);
    pgarr_end(&b, &a);
    struct op_count *c = b.failed ? NULL : count_new(s, STMT_RENEW, cb, data);
    uint8_t *copy = c ? arena_alloc(&c->op.args, b.len) : NULL;
    if (!copy) {
        if (c)
            op_free(&c->op);
        buf_free(&b);
        return SAGA_ENOMEM;
    }
    memcpy(copy, b.p, b.len);
    c->ids = copy;
    c->ids_len = b.len;
    buf_free(&b);
    snprintf(c->num[0], sizeof(c->num[0]), "%" PRIu32, s->lease_ms);
    c->params[1] = c->num[0];
    c->params[2] = s->holder_text;
    c->n_params = 3;
    return op_submit(&c->op);
}

int store_release(struct store *s, store_count_cb cb, void *data)
{
    if (!s || !cb)
        return SAGA_EINVAL;
    struct op_count *c = count_new(s, STMT_RELEASE, cb, data);
    return c ? op_submit(&c->op) : SAGA_ENOMEM;
}

int op_release_token(struct store *s, uint64_t token)
{
    struct op_count *c = count_new(s, STMT_RELEASE_TOKEN, NULL, NULL);
    if (!c)
        return SAGA_ENOMEM;
    c->op.deadline = UINT64_MAX;
    snprintf(c->num[0], sizeof(c->num[0]), "%" PRId64, (int64_t)token);
    c->params[1] = c->num[0];
    c->n_params = 2;
    return op_submit(&c->op);
}

int store_register(struct store *s, const char *address, store_count_cb cb, void *data)
{
    if (!s || !cb || !address)
        return SAGA_EINVAL;
    struct op_count *c = count_new(s, STMT_REGISTER, cb, data);
    if (!c)
        return SAGA_ENOMEM;
    c->params[1] = arena_strdup(&c->op.args, address);
    c->n_params = 2;
    if (!c->params[1]) {
        op_free(&c->op);
        return SAGA_ENOMEM;
    }
    return op_submit(&c->op);
}

int store_heartbeat(struct store *s, store_count_cb cb, void *data)
{
    if (!s || !cb)
        return SAGA_EINVAL;
    struct op_count *c = count_new(s, STMT_HEARTBEAT, cb, data);
    return c ? op_submit(&c->op) : SAGA_ENOMEM;
}

int store_unregister(struct store *s, store_count_cb cb, void *data)
{
    if (!s || !cb)
        return SAGA_EINVAL;
    struct op_count *c = count_new(s, STMT_UNREGISTER, cb, data);
    return c ? op_submit(&c->op) : SAGA_ENOMEM;
}

/* ---- instances ---- */

struct op_instances {
    struct op op;
    store_instances_cb cb;
    char within[16];
    struct store_instance *items;
    size_t n;
};

static int instances_build(struct op *op, struct pg_query *q)
{
    struct op_instances *x = (struct op_instances *)op;
    op_query(op, q, 0, STMT_INSTANCES, 1);
    op_param_text(op, 0, 0, x->within);
    return 1;
}

static void instances_result(struct op *op, int index, const struct pg_res *res)
{
    struct op_instances *x = (struct op_instances *)op;
    (void)index;
    int rows = pg_res_rows(res);
    if (rows == 0)
        return;
    x->items = arena_alloc(&op->res, (size_t)rows * sizeof(*x->items));
    if (!x->items) {
        op->status = SAGA_ENOMEM;
        return;
    }
    for (int r = 0; r < rows; r++) {
        x->items[r].id = col_text(op, res, r, 0);
        x->items[r].address = col_text(op, res, r, 1);
        x->items[r].started_ms = col_ts(op, res, r, 2);
        x->items[r].heartbeat_ms = col_ts(op, res, r, 3);
    }
    x->n = (size_t)rows;
}

static void instances_finish(struct op *op, int status)
{
    struct op_instances *x = (struct op_instances *)op;
    struct store_instances r = {.data = op->data};
    if (status == 0) {
        r.n = x->n;
        r.items = x->items;
    }
    x->cb(&r, status);
}

static void instances_retry(struct op *op, int lost)
{
    struct op_instances *x = (struct op_instances *)op;
    (void)lost;
    x->items = NULL;
    x->n = 0;
}

static const struct op_vtbl instances_vtbl = {
    .name = "instances",
    .build = instances_build,
    .result = instances_result,
    .finish = instances_finish,
    .retry = instances_retry,
};

int store_instances(struct store *s, uint32_t within_ms, store_instances_cb cb, void *data)
{
    if (!s || !cb || within_ms == 0)
        return SAGA_EINVAL;
    struct op_instances *x = (struct op_instances *)op_new(s, &instances_vtbl, sizeof(*x), data);
    if (!x)
        return SAGA_ENOMEM;
    x->cb = cb;
    snprintf(x->within, sizeof(x->within), "%" PRIu32, within_ms);
    return op_submit(&x->op);
}
