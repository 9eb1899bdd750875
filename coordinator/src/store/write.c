/* Group commit: writes queued while the loop turns are sent together, as one
 * statement over arrays in one pipelined transaction, and each writer hears
 * back only once that commit is durable. Knows the write statements' shape;
 * knows nothing of connections beyond pg.h. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "saga/error.h"
#include "store/store_int.h"

#define WRITE_MAX_RECORDS  4096
#define BATCH_MAX_BYTES    (32u << 20)
#define WRITE_MAX_ATTEMPTS 4
#define STORE_KEY_MAX      1024

struct wstep {
    int16_t step;
    int16_t status;
    uint32_t attempts;
    uint32_t compensate_attempts;
    const uint8_t *output; /* NULL: keep what is stored */
    size_t output_len;
    const char *error;
    uint64_t started_ms;
    uint64_t finished_ms;
};

struct wevent {
    uint64_t at_ms;
    const char *kind;
    int32_t step;
    uint32_t attempt;
    int16_t status;
    const char *detail;
};

struct write {
    struct store_write pub;
    store_write_cb cb;
    struct write *next;
    struct write *prev;
    struct batch *batch; /* the batch it is in flight with, or NULL */
    uint64_t epoch;
    uint64_t token; /* unique per write, the same on every attempt */
    uint64_t deadline;
    int attempts;        /* attempts that failed transiently */
    int maybe_committed; /* an attempt's outcome was never learned */
    int isolate;         /* send alone: its batch failed */

    /* The current attempt's outcome. */
    int r_ok;
    int r_dup;
    int r_existing;
    struct saga_id r_existing_id;

    /* The saga row: a create, or an update (upd) of status, wake, deadline, error. */
    int is_create;
    int upd;
    int16_t status;
    uint64_t wake_ms;
    uint64_t deadline_ms;
    const char *error;
    uint64_t created_ms;
    const char *def;
    uint32_t version;
    int16_t mode;
    uint16_t n_steps;
    const uint8_t *input;
    size_t input_len;
    const char *key;

    size_t n_rows; /* step rows */
    struct wstep *rows;
    size_t n_events;
    struct wevent *events;
};

struct batch {
    struct store *s;
    struct store_conn *conn;
    struct write **w;
    size_t n;
    int isolated;
    size_t n_records;
    struct buf buf;
    /* Statements: for each, the writer it belongs to (isolated) and whether
     * it is the check. */
    size_t n_queries;
    struct pg_query *q;
    size_t *q_writer;
    uint8_t *q_check;
    const char **values;
    int *lengths;
    int *formats;
    /* The first failure. */
    int err_index;
    char sqlstate[6];
    char message[256];
};

/* ---- the busy map: writes in flight by saga id ---- */

int busy_init(struct busy_map *m, size_t expected)
{
    size_t cap = 64;
    while (cap < expected * 2)
        cap *= 2;
    m->slots = calloc(cap, sizeof(*m->slots));
    if (!m->slots)
        return SAGA_ENOMEM;
    m->cap = cap;
    m->n = 0;
    return 0;
}

void busy_free(struct busy_map *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}

static struct write *busy_get(const struct busy_map *m, const struct saga_id *id)
{
    size_t mask = m->cap - 1;
    for (size_t i = saga_id_hash(id) & mask;; i = (i + 1) & mask) {
        struct write *w = m->slots[i];
        if (!w)
            return NULL;
        if (memcmp(w->pub.id.bytes, id->bytes, 16) == 0)
            return w;
    }
}

/* The map never fills: it holds at most pool_size * batch_writes entries and
 * has twice that many slots. */
static void busy_put(struct busy_map *m, struct write *w)
{
    size_t mask = m->cap - 1;
    size_t i = saga_id_hash(&w->pub.id) & mask;
    while (m->slots[i])
        i = (i + 1) & mask;
    m->slots[i] = w;
    m->n++;
}

static void busy_del(struct busy_map *m, struct write *w)
{
    size_t mask = m->cap - 1;
    size_t i = saga_id_hash(&w->pub.id) & mask;
    while (m->slots[i] != w) {
        if (!m->slots[i])
            return;
        i = (i + 1) & mask;
    }
    m->slots[i] = NULL;
    m->n--;
    /* Shift back the entries of the cluster after the hole. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        struct write *x = m->slots[j];
        if (!x)
            return;
        size_t home = saga_id_hash(&x->pub.id) & mask;
        /* x stays if its home lies cyclically in (i, j]. */
        int stays = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (stays)
            continue;
        m->slots[i] = x;
        m->slots[j] = NULL;
        i = j;
    }
}

/* ---- the queue ---- */

static void queue_push_back(struct write_queue *q, struct write *w)
{
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    q->n++;
}

static void queue_push_front(struct write_queue *q, struct write *w)
{
    w->prev = NULL;
    w->next = q->head;
    if (q->head)
        q->head->prev = w;
    else
        q->tail = w;
    q->head = w;
    q->n++;
}

static void queue_remove(struct write_queue *q, struct write *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->next = w->prev = NULL;
    q->n--;
}

size_t write_queue_len(const struct store *s)
{
    return s->writes.n;
}

/* ---- completing writes ---- */

static void write_finish(struct store *s, struct write *w, int status);

/* A write of a saga failed: the writes queued behind it for the same saga were
 * computed from a state the log does not hold, so none of them may commit.
 * They fail with SAGA_ECANCELED, nothing written. */
static void write_cancel_followers(struct store *s, const struct saga_id *id)
{
    struct write_queue followers = {0};
    struct write *next;
    for (struct write *w = s->writes.head; w; w = next) {
        next = w->next;
        if (memcmp(w->pub.id.bytes, id->bytes, sizeof(id->bytes)) == 0) {
            queue_remove(&s->writes, w);
            queue_push_back(&followers, w);
        }
    }
    struct write *w;
    while ((w = followers.head) != NULL) {
        queue_remove(&followers, w);
        write_finish(s, w, SAGA_ECANCELED);
    }
}

static void write_finish(struct store *s, struct write *w, int status)
{
    if (status != 0 && status != SAGA_ECANCELED)
        write_cancel_followers(s, &w->pub.id);
    if (status == 0) {
        s->stats.writes++;
        s->stats.records += w->pub.n_records;
    } else {
        s->stats.write_failures++;
        if (log_enabled(LOG_DEBUG)) {
            char id[37];
            store_id_format(&w->pub.id, id);
            log_debug(id, "store.write_failed", "error=%s", saga_err_name(status));
        }
    }
    w->cb(&w->pub, status);
    free(w);
}

/* ---- submission ---- */

static size_t str_size(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

static int write_validate(const struct saga_id *id, const struct store_create *create,
                          const struct record *records, size_t n)
{
    if (!id || !records || n == 0 || n > WRITE_MAX_RECORDS)
        return SAGA_EINVAL;
    if (create) {
        if (records[0].kind != REC_SAGA_INSERT || !create->definition || !*create->definition ||
            create->version == 0 || create->version > INT32_MAX ||
            (create->input_len && !create->input) ||
            (create->idempotency_key && strlen(create->idempotency_key) > STORE_KEY_MAX) ||
            create->n_steps > INT16_MAX)
            return SAGA_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const struct record *r = &records[i];
        if (!r->event)
            return SAGA_EINVAL;
        switch (r->kind) {
        case REC_SAGA_INSERT:
            if (i != 0 || !create)
                return SAGA_EINVAL;
            break;
        case REC_SAGA_UPDATE:
            break;
        case REC_STEP_UPDATE:
            if (r->step < 0 || r->step > INT16_MAX || (r->output_len && !r->output))
                return SAGA_EINVAL;
            if (create && r->step >= create->n_steps)
                return SAGA_EINVAL;
            break;
        default:
            return SAGA_EINVAL;
        }
    }
    return 0;
}

/* One allocation: the write, its step rows, its events, then the bytes of every
 * string and blob it keeps. */
static struct write *write_build(const struct saga_id *id, const struct store_create *create,
                                 const struct record *records, size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        bytes += str_size(records[i].event) + str_size(records[i].error);
        if (records[i].kind == REC_STEP_UPDATE && records[i].output)
            bytes += records[i].output_len + 1;
    }
    if (create)
        bytes += str_size(create->definition) + str_size(create->idempotency_key) +
                 create->input_len + 1;
    size_t head = sizeof(struct write) + n * sizeof(struct wstep) + n * sizeof(struct wevent);
    struct write *w = calloc(1, head + bytes);
    if (!w)
        return NULL;
    w->rows = (struct wstep *)(w + 1);
    w->events = (struct wevent *)(w->rows + n);
    char *blob = (char *)(w->events + n);

#define KEEP_STR(dst, src)               \
    do {                                 \
        if (src) {                       \
            size_t l_ = strlen(src) + 1; \
            memcpy(blob, (src), l_);     \
            (dst) = blob;                \
            blob += l_;                  \
        } else {                         \
            (dst) = NULL;                \
        }                                \
    } while (0)

    w->pub.id = *id;
    w->pub.n_records = n;
    if (create) {
        w->is_create = 1;
        KEEP_STR(w->def, create->definition);
        KEEP_STR(w->key, create->idempotency_key);
        w->version = create->version;
        w->mode = (int16_t)create->mode;
        w->n_steps = create->n_steps;
        memcpy(blob, create->input_len ? (const void *)create->input : "", create->input_len);
        w->input = (const uint8_t *)blob;
        w->input_len = create->input_len;
        blob += create->input_len + 1;
    }
    for (size_t i = 0; i < n; i++) {
        const struct record *r = &records[i];
        struct wevent *e = &w->events[i];
        const char *err;
        KEEP_STR(e->kind, r->event);
        KEEP_STR(err, r->error);
        e->at_ms = r->at_ms;
        e->step = r->kind == REC_STEP_UPDATE ? r->step : -1;
        e->attempt = r->attempt;
        e->detail = err;
        if (r->kind == REC_STEP_UPDATE) {
            e->status = (int16_t)r->step_status;
            struct wstep *st = NULL;
            for (size_t k = 0; k < w->n_rows; k++) {
                if (w->rows[k].step == r->step)
                    st = &w->rows[k];
            }
            if (!st) {
                st = &w->rows[w->n_rows++];
                st->step = (int16_t)r->step;
            }
            st->status = (int16_t)r->step_status;
            st->attempts = r->attempts;
            st->compensate_attempts = r->compensate_attempts;
            if (r->output) {
                memcpy(blob, r->output, r->output_len);
                st->output = (const uint8_t *)blob;
                st->output_len = r->output_len;
                blob += r->output_len + 1;
            }
            st->error = err;
            if (!st->started_ms && r->step_status != SAGA_STEP_PENDING)
                st->started_ms = r->at_ms;
            st->finished_ms = saga_step_status_is_settled(r->step_status) ? r->at_ms : 0;
        } else {
            e->status = (int16_t)r->saga_status;
            if (r->kind == REC_SAGA_INSERT)
                w->created_ms = r->at_ms;
            else
                w->upd = 1;
            w->status = (int16_t)r->saga_status;
            w->wake_ms = r->wake_ms;
            w->deadline_ms = r->deadline_ms;
            w->error = err;
        }
    }
    w->n_events = n;
#undef KEEP_STR
    return w;
}

int store_write(struct store *s, const struct saga_id *id, uint64_t epoch,
                const struct store_create *create, const struct record *records, size_t n,
                store_write_cb cb, void *data)
{
    if (!s || !cb)
        return SAGA_EINVAL;
    if (s->closing)
        return SAGA_ECANCELED;
    int rc = write_validate(id, create, records, n);
    if (rc != 0)
        return rc;
    if (!create && (epoch == 0 || epoch > INT64_MAX))
        return SAGA_EINVAL;
    if (s->writes.n >= s->queue_max)
        return SAGA_EUNAVAIL;
    struct write *w = write_build(id, create, records, n);
    if (!w)
        return SAGA_ENOMEM;
    w->pub.data = data;
    w->cb = cb;
    w->epoch = create ? 1 : epoch;
    w->token = store_token(s);
    w->deadline = uv_now(s->loop) + s->unavailable_ms;
    queue_push_back(&s->writes, w);
    store_wake(s);
    return 0;
}

/* ---- encoding a batch ---- */

struct span {
    size_t from, to; /* writers [from, to) of the batch */
};

/* Writes the array parameters of STMT_WRITE for writers `sp` of the batch;
 * offsets[] and sizes[] receive where each landed in the buffer. */
static void encode_write(struct batch *b, struct span sp, size_t offsets[WP_COUNT_],
                         size_t sizes[WP_COUNT_])
{
    struct buf *buf = &b->buf;
    struct pgarr a;
    struct write **w = b->w;

#define ARRAY(param, oid, cond, body)              \
    do {                                           \
        offsets[param] = buf->len;                 \
        pgarr_begin(buf, &a, oid);                 \
        for (size_t i = sp.from; i < sp.to; i++) { \
            const struct write *x = w[i];          \
            if (!(cond))                           \
                continue;                          \
            body;                                  \
        }                                          \
        pgarr_end(buf, &a);                        \
        sizes[param] = buf->len - offsets[param];  \
    } while (0)

/* One element per step row (ROWS: `r`) or event (EVENTS: `e`) of every
 * writer in `sp`; `k` is the item's index within its writer. */
#define EACH(param, oid, count, list, type, var, body) \
    do {                                               \
        offsets[param] = buf->len;                     \
        pgarr_begin(buf, &a, oid);                     \
        for (size_t i = sp.from; i < sp.to; i++) {     \
            const struct write *x = w[i];              \
            for (size_t k = 0; k < x->count; k++) {    \
                const type *var = &x->list[k];         \
                (void)var;                             \
                body;                                  \
            }                                          \
        }                                              \
        pgarr_end(buf, &a);                            \
        sizes[param] = buf->len - offsets[param];      \
    } while (0)
#define ROWS(param, oid, body)   EACH(param, oid, n_rows, rows, struct wstep, r, body)
#define EVENTS(param, oid, body) EACH(param, oid, n_events, events, struct wevent, e, body)

    /* $1 owner, $2 lease and $43 holder are scalars the caller points at. */
    offsets[WP_OWNER] = sizes[WP_OWNER] = 0;
    offsets[WP_LEASE_MS] = sizes[WP_LEASE_MS] = 0;
    offsets[WP_HOLDER] = sizes[WP_HOLDER] = 0;

    ARRAY(WP_W_ID, PG_OID_UUID, !x->is_create, pgarr_uuid(buf, &a, &x->pub.id));
    ARRAY(WP_W_EPOCH, PG_OID_INT8, !x->is_create, pgarr_i64(buf, &a, (int64_t)x->epoch));
    ARRAY(WP_W_TOKEN, PG_OID_INT8, !x->is_create, pgarr_i64(buf, &a, (int64_t)x->token));
    ARRAY(WP_W_NEV, PG_OID_INT4, !x->is_create, pgarr_i32(buf, &a, (int32_t)x->n_events));
    ARRAY(WP_W_UPD, PG_OID_BOOL, !x->is_create, pgarr_bool(buf, &a, x->upd));
    ARRAY(WP_W_STATUS, PG_OID_INT2, !x->is_create, pgarr_i16(buf, &a, x->status));
    ARRAY(WP_W_WAKE, PG_OID_TIMESTAMPTZ, !x->is_create, pgarr_ts_ms(buf, &a, x->wake_ms));
    ARRAY(WP_W_DEADLINE, PG_OID_TIMESTAMPTZ, !x->is_create, pgarr_ts_ms(buf, &a, x->deadline_ms));
    ARRAY(WP_W_ERROR, PG_OID_TEXT, !x->is_create, pgarr_text(buf, &a, x->error));

    ARRAY(WP_C_ID, PG_OID_UUID, x->is_create, pgarr_uuid(buf, &a, &x->pub.id));
    ARRAY(WP_C_TOKEN, PG_OID_INT8, x->is_create, pgarr_i64(buf, &a, (int64_t)x->token));
    ARRAY(WP_C_DEF, PG_OID_TEXT, x->is_create, pgarr_text(buf, &a, x->def));
    ARRAY(WP_C_VER, PG_OID_INT4, x->is_create, pgarr_i32(buf, &a, (int32_t)x->version));
    ARRAY(WP_C_MODE, PG_OID_INT2, x->is_create, pgarr_i16(buf, &a, x->mode));
    ARRAY(WP_C_NSTEPS, PG_OID_INT2, x->is_create, pgarr_i16(buf, &a, (int16_t)x->n_steps));
    ARRAY(WP_C_STATUS, PG_OID_INT2, x->is_create, pgarr_i16(buf, &a, x->status));
    ARRAY(WP_C_INPUT, PG_OID_BYTEA, x->is_create, pgarr_bytes(buf, &a, x->input, x->input_len));
    ARRAY(WP_C_KEY, PG_OID_TEXT, x->is_create, pgarr_text(buf, &a, x->key));
    ARRAY(WP_C_CREATED, PG_OID_TIMESTAMPTZ, x->is_create, pgarr_ts_ms(buf, &a, x->created_ms));
    ARRAY(WP_C_WAKE, PG_OID_TIMESTAMPTZ, x->is_create, pgarr_ts_ms(buf, &a, x->wake_ms));
    ARRAY(WP_C_DEADLINE, PG_OID_TIMESTAMPTZ, x->is_create, pgarr_ts_ms(buf, &a, x->deadline_ms));
    ARRAY(WP_C_ERROR, PG_OID_TEXT, x->is_create, pgarr_text(buf, &a, x->error));
    ARRAY(WP_C_NEV, PG_OID_INT4, x->is_create, pgarr_i32(buf, &a, (int32_t)x->n_events));

    ROWS(WP_S_ID, PG_OID_UUID, pgarr_uuid(buf, &a, &x->pub.id));
    ROWS(WP_S_STEP, PG_OID_INT2, pgarr_i16(buf, &a, r->step));
    ROWS(WP_S_STATUS, PG_OID_INT2, pgarr_i16(buf, &a, r->status));
    ROWS(WP_S_ATT, PG_OID_INT4, pgarr_i32(buf, &a, (int32_t)r->attempts));
    ROWS(WP_S_CATT, PG_OID_INT4, pgarr_i32(buf, &a, (int32_t)r->compensate_attempts));
    ROWS(WP_S_OUT, PG_OID_BYTEA,
         r->output ? pgarr_bytes(buf, &a, r->output, r->output_len) : pgarr_null(buf, &a));
    ROWS(WP_S_ERR, PG_OID_TEXT, pgarr_text(buf, &a, r->error));
    ROWS(WP_S_STARTED, PG_OID_TIMESTAMPTZ, pgarr_ts_ms(buf, &a, r->started_ms));
    ROWS(WP_S_FINISHED, PG_OID_TIMESTAMPTZ, pgarr_ts_ms(buf, &a, r->finished_ms));

    EVENTS(WP_E_ID, PG_OID_UUID, pgarr_uuid(buf, &a, &x->pub.id));
    EVENTS(WP_E_BACK, PG_OID_INT4, pgarr_i32(buf, &a, (int32_t)(x->n_events - 1 - k)));
    EVENTS(WP_E_AT, PG_OID_TIMESTAMPTZ, pgarr_ts_ms(buf, &a, e->at_ms));
    EVENTS(WP_E_KIND, PG_OID_TEXT, pgarr_text(buf, &a, e->kind));
    EVENTS(WP_E_STEP, PG_OID_INT2,
           e->step >= 0 ? pgarr_i16(buf, &a, (int16_t)e->step) : pgarr_null(buf, &a));
    EVENTS(WP_E_ATT, PG_OID_INT4,
           e->attempt ? pgarr_i32(buf, &a, (int32_t)e->attempt) : pgarr_null(buf, &a));
    EVENTS(WP_E_STATUS, PG_OID_INT2, pgarr_i16(buf, &a, e->status));
    EVENTS(WP_E_DETAIL, PG_OID_TEXT, pgarr_text(buf, &a, e->detail));
#undef ARRAY
#undef EACH
#undef ROWS
#undef EVENTS
}

/* Whether writers `sp` need the check statement, and its two arrays. */
static int encode_check(struct batch *b, struct span sp, size_t offsets[2], size_t sizes[2])
{
    int need = 0;
    for (size_t i = sp.from; i < sp.to; i++)
        need |= b->w[i]->maybe_committed || (b->w[i]->is_create && b->w[i]->key);
    if (!need)
        return 0;
    struct buf *buf = &b->buf;
    struct pgarr a;
    offsets[0] = buf->len;
    pgarr_begin(buf, &a, PG_OID_UUID);
    for (size_t i = sp.from; i < sp.to; i++) {
        if (b->w[i]->maybe_committed)
            pgarr_uuid(buf, &a, &b->w[i]->pub.id);
    }
    pgarr_end(buf, &a);
    sizes[0] = buf->len - offsets[0];
    offsets[1] = buf->len;
    pgarr_begin(buf, &a, PG_OID_TEXT);
    for (size_t i = sp.from; i < sp.to; i++) {
        if (b->w[i]->is_create && b->w[i]->key)
            pgarr_text(buf, &a, b->w[i]->key);
    }
    pgarr_end(buf, &a);
    sizes[1] = buf->len - offsets[1];
    return 1;
}

static void batch_free(struct batch *b)
{
    if (!b)
        return;
    buf_free(&b->buf);
    free(b->w);
    free(b->q);
    free(b->q_writer);
    free(b->q_check);
    free(b->values);
    free(b->lengths);
    free(b->formats);
    free(b);
}

/* Lays out the statements: one main (+ check) for the whole batch, or one
 * main (+ check) per writer when isolated. All parameters are binary; the
 * lease length and the holder sit once at the start of the buffer. */
static int batch_encode(struct batch *b)
{
    size_t groups = b->isolated ? b->n : 1;
    size_t max_q = groups * 2;
    size_t max_p = max_q * WP_COUNT_;
    b->q = calloc(max_q, sizeof(*b->q));
    b->q_writer = calloc(max_q, sizeof(*b->q_writer));
    b->q_check = calloc(max_q, sizeof(*b->q_check));
    b->values = calloc(max_p, sizeof(*b->values));
    b->lengths = calloc(max_p, sizeof(*b->lengths));
    b->formats = calloc(max_p, sizeof(*b->formats));
    /* Offsets first: the buffer moves while it grows. */
    size_t *off = calloc(max_p, sizeof(*off));
    size_t *len = calloc(max_p, sizeof(*len));
    int rc = SAGA_ENOMEM;
    if (!b->q || !b->q_writer || !b->q_check || !b->values || !b->lengths || !b->formats || !off ||
        !len)
        goto out;
    uint8_t lease[8], holder[8];
    enc_i64(lease, b->s->lease_ms);
    enc_i64(holder, (int64_t)b->s->holder);
    buf_put(&b->buf, lease, sizeof(lease));
    buf_put(&b->buf, holder, sizeof(holder));
    size_t k = 0, p = 0;
    for (size_t g = 0; g < groups; g++) {
        struct span sp = b->isolated ? (struct span){g, g + 1} : (struct span){0, b->n};
        b->q[k].stmt = store_stmts[STMT_WRITE].name;
        b->q[k].n_params = WP_COUNT_;
        b->q_writer[k] = sp.from;
        encode_write(b, sp, off + p, len + p);
        off[p + WP_LEASE_MS] = 0;
        len[p + WP_LEASE_MS] = sizeof(lease);
        off[p + WP_HOLDER] = sizeof(lease);
        len[p + WP_HOLDER] = sizeof(holder);
        p += WP_COUNT_;
        k++;
        if (encode_check(b, sp, off + p, len + p)) {
            b->q[k].stmt = store_stmts[STMT_WRITE_CHECK].name;
            b->q[k].n_params = 2;
            b->q_writer[k] = sp.from;
            b->q_check[k] = 1;
            p += 2;
            k++;
        }
    }
    if (b->buf.failed)
        goto out;
    /* The buffer is final: point every parameter into it. */
    p = 0;
    for (size_t i = 0; i < k; i++) {
        b->q[i].values = b->values + p;
        b->q[i].lengths = b->lengths + p;
        b->q[i].formats = b->formats + p;
        for (int j = 0; j < b->q[i].n_params; j++, p++) {
            b->formats[p] = 1;
            if (!b->q_check[i] && j == WP_OWNER) {
                b->values[p] = b->s->owner;
                b->lengths[p] = (int)strlen(b->s->owner);
            } else {
                b->values[p] = (const char *)b->buf.p + off[p];
                b->lengths[p] = (int)len[p];
            }
        }
    }
    b->n_queries = k;
    rc = 0;
out:
    free(off);
    free(len);
    return rc;
}

/* ---- results ---- */

static struct write *batch_writer(struct batch *b, const struct pg_res *res, int row)
{
    struct saga_id id;
    if (pg_res_isnull(res, row, 0) ||
        dec_uuid(pg_res_value(res, row, 0), pg_res_length(res, row, 0), &id) != 0)
        return NULL;
    struct write *w = busy_get(&b->s->busy, &id);
    return (w && w->batch == b) ? w : NULL;
}

static void batch_on_result(void *arg, int index, const struct pg_res *res)
{
    struct batch *b = arg;
    enum pg_res_status st = pg_res_status(res);
    if (st == PG_RES_ABORTED)
        return;
    if (st == PG_RES_ERROR) {
        if (b->err_index < 0) {
            b->err_index = index;
            snprintf(b->sqlstate, sizeof(b->sqlstate), "%s", pg_res_sqlstate(res));
            snprintf(b->message, sizeof(b->message), "%s", pg_res_message(res));
        }
        return;
    }
    int rows = pg_res_rows(res);
    if (!b->q_check[index]) {
        for (int r = 0; r < rows; r++) {
            struct write *w = batch_writer(b, res, r);
            if (w)
                w->r_ok = 1;
        }
        return;
    }
    /* The check: id, write_token, idempotency_key. */
    for (int r = 0; r < rows; r++) {
        struct saga_id id;
        int64_t token = 0;
        if (dec_uuid(pg_res_value(res, r, 0), pg_res_length(res, r, 0), &id) != 0 ||
            dec_i64(pg_res_value(res, r, 1), pg_res_length(res, r, 1), &token) != 0)
            continue;
        struct write *w = busy_get(&b->s->busy, &id);
        if (w && w->batch == b && w->token == (uint64_t)token)
            w->r_dup = 1;
        if (pg_res_isnull(res, r, 2))
            continue;
        const char *key = pg_res_value(res, r, 2);
        for (size_t i = 0; i < b->n; i++) {
            struct write *x = b->w[i];
            if (x->is_create && x->key && strcmp(x->key, key) == 0 &&
                memcmp(x->pub.id.bytes, id.bytes, 16) != 0) {
                x->r_existing = 1;
                x->r_existing_id = id;
            }
        }
    }
}

/* Puts the batch's writers back at the head of the queue, in their order. */
static void batch_requeue(struct store *s, struct batch *b, size_t skip, int isolate)
{
    for (size_t i = b->n; i-- > 0;) {
        if (i == skip)
            continue;
        struct write *w = b->w[i];
        w->isolate = isolate;
        s->stats.retries++;
        queue_push_front(&s->writes, w);
    }
}

static void batch_on_done(void *arg, int status)
{
    struct batch *b = arg;
    struct store *s = b->s;
    b->conn->batch = NULL;
    s->in_flight_writes -= b->n;
    for (size_t i = 0; i < b->n; i++) {
        busy_del(&s->busy, b->w[i]);
        b->w[i]->batch = NULL;
    }
    /* Writers that end now; the others went back to the queue. */
    size_t n_done = 0;
    int *done_status = calloc(b->n, sizeof(*done_status));
    struct write **done = calloc(b->n, sizeof(*done));
    if (!done_status || !done) {
        /* Cannot even record outcomes: keep the writes for another try. */
        free(done_status);
        free(done);
        if (status == SAGA_ECLOSED || status == 0)
            for (size_t i = 0; i < b->n; i++)
                b->w[i]->maybe_committed = 1;
        batch_requeue(s, b, SIZE_MAX, 0);
        goto out;
    }

    if (status == 0) {
        s->stats.commits++;
        for (size_t i = 0; i < b->n; i++) {
            struct write *w = b->w[i];
            int st;
            if (w->r_ok || w->r_dup) {
                s->stats.recovered += !w->r_ok;
                st = 0;
            } else if (w->is_create && w->r_existing) {
                w->pub.existing = 1;
                w->pub.id = w->r_existing_id;
                st = 0;
            } else {
                st = w->is_create ? SAGA_EEXIST : SAGA_EFENCED;
            }
            done[n_done] = w;
            done_status[n_done++] = st;
        }
    } else if (status == SAGA_EDB) {
        const char *st = b->sqlstate;
        char q[300];
        if (b->err_index < 0 || sqlstate_transient(st)) {
            /* Not the data's fault (a deadlock, a shutdown, a failed commit):
             * everyone again, a few times. */
            log_warn(NULL, "store.batch_retry", "sqlstate=%s message=%s writes=%zu", st,
                     log_quote(q, sizeof(q), b->message), b->n);
            for (size_t i = b->n; i-- > 0;) {
                struct write *w = b->w[i];
                if (++w->attempts >= WRITE_MAX_ATTEMPTS) {
                    done[n_done] = w;
                    done_status[n_done++] = SAGA_EDB;
                } else {
                    w->isolate = b->isolated;
                    s->stats.retries++;
                    queue_push_front(&s->writes, w);
                }
            }
        } else if (!b->isolated) {
            /* Find the guilty writer: send them again, one statement each. */
            s->stats.isolations++;
            batch_requeue(s, b, SIZE_MAX, 1);
        } else {
            size_t guilty = b->q_writer[b->err_index];
            struct write *w = b->w[guilty];
            char id[37];
            store_id_format(&w->pub.id, id);
            log_warn(id, "store.write_refused", "sqlstate=%s message=%s", st,
                     log_quote(q, sizeof(q), b->message));
            done[n_done] = w;
            done_status[n_done++] = sqlstate_to_err(st);
            batch_requeue(s, b, guilty, 0);
        }
    } else if (status == SAGA_ECLOSED) {
        /* The commit may or may not have happened: the next attempt finds out
         * (write_token) before it changes anything. */
        for (size_t i = 0; i < b->n; i++)
            b->w[i]->maybe_committed = 1;
        batch_requeue(s, b, SIZE_MAX, 0);
    } else {
        for (size_t i = 0; i < b->n; i++) {
            done[n_done] = b->w[i];
            done_status[n_done++] = status;
        }
    }
    for (size_t i = 0; i < n_done; i++) {
        done[i]->isolate = 0;
        write_finish(s, done[i], done_status[i]);
    }
    free(done);
    free(done_status);
out:
    batch_free(b);
    store_wake(s);
}

/* ---- flushing ---- */

int write_flush_one(struct store *s, struct store_conn *conn)
{
    if (!s->writes.head || conn->batch)
        return 0;
    struct batch *b = calloc(1, sizeof(*b));
    if (!b)
        return 0;
    b->s = s;
    b->conn = conn;
    b->err_index = -1;
    b->w = calloc(s->batch_writes, sizeof(*b->w));
    if (!b->w) {
        free(b);
        return 0;
    }
    b->isolated = s->writes.head->isolate;
    size_t bytes = 0;
    struct write *next;
    for (struct write *w = s->writes.head; w && b->n < s->batch_writes; w = next) {
        next = w->next;
        if (b->isolated && !w->isolate)
            break;
        if (busy_get(&s->busy, &w->pub.id))
            continue; /* a write of this saga is in flight: keep the order */
        size_t wb = w->input_len + 256;
        for (size_t k = 0; k < w->n_rows; k++)
            wb += w->rows[k].output_len + 64;
        wb += w->n_events * 96;
        if (b->n > 0 &&
            (b->n_records + w->n_events > s->batch_records || bytes + wb > BATCH_MAX_BYTES))
            break;
        queue_remove(&s->writes, w);
        busy_put(&s->busy, w);
        w->batch = b;
        w->r_ok = w->r_dup = w->r_existing = 0;
        b->w[b->n++] = w;
        b->n_records += w->n_events;
        bytes += wb;
    }
    if (b->n == 0) {
        batch_free(b);
        return 0;
    }
    s->in_flight_writes += b->n;
    conn->batch = b;
    int rc = batch_encode(b);
    if (rc == 0)
        rc = pg_conn_send(conn->pg, b->q, b->n_queries, batch_on_result, batch_on_done, b);
    if (rc != 0) {
        /* Nothing was sent: put everyone back untouched. */
        conn->batch = NULL;
        s->in_flight_writes -= b->n;
        for (size_t i = 0; i < b->n; i++) {
            busy_del(&s->busy, b->w[i]);
            b->w[i]->batch = NULL;
        }
        for (size_t i = b->n; i-- > 0;)
            queue_push_front(&s->writes, b->w[i]);
        batch_free(b);
        return 0;
    }
    /* The parameters were copied into libpq's buffer: drop ours now. */
    buf_free(&b->buf);
    return 1;
}

size_t write_expire(struct store *s, uint64_t now)
{
    /* Unlink first, call back after: a callback may queue or close. */
    struct write_queue expired = {0};
    struct write *next;
    for (struct write *w = s->writes.head; w; w = next) {
        next = w->next;
        if (w->deadline > now)
            continue;
        queue_remove(&s->writes, w);
        queue_push_back(&expired, w);
    }
    size_t n = expired.n;
    struct write *w;
    while ((w = expired.head) != NULL) {
        queue_remove(&expired, w);
        /* A write sent once whose outcome stayed unknown may have committed. */
        write_finish(s, w, w->maybe_committed ? SAGA_ETIMEDOUT : SAGA_EUNAVAIL);
    }
    return n;
}

void write_fail_all(struct store *s, int status)
{
    struct write *w;
    while ((w = s->writes.head) != NULL) {
        queue_remove(&s->writes, w);
        write_finish(s, w, status);
    }
}
