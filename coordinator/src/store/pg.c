/* Connections to PostgreSQL: libpq's async API in pipeline mode on a libuv loop,
 * plus a blocking connection for command-line tools. The only file that includes
 * libpq-fe.h; it knows no SQL of its own and nothing of sagas. */
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/log.h"
#include "saga/error.h"
#include "store/pg.h"

/* ---- results ---- */

static const PGresult *res_pg(const struct pg_res *r)
{
    return (const PGresult *)r;
}

enum pg_res_status pg_res_status(const struct pg_res *r)
{
    switch (PQresultStatus(res_pg(r))) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
        return PG_RES_OK;
    case PGRES_PIPELINE_ABORTED:
        return PG_RES_ABORTED;
    default:
        return PG_RES_ERROR;
    }
}

const char *pg_res_sqlstate(const struct pg_res *r)
{
    const char *s = PQresultErrorField(res_pg(r), PG_DIAG_SQLSTATE);
    return s ? s : "";
}

const char *pg_res_message(const struct pg_res *r)
{
    const char *s = PQresultErrorField(res_pg(r), PG_DIAG_MESSAGE_PRIMARY);
    if (s)
        return s;
    s = PQresultErrorMessage(res_pg(r));
    return s ? s : "";
}

int pg_res_rows(const struct pg_res *r)
{
    return PQntuples(res_pg(r));
}

uint64_t pg_res_affected(const struct pg_res *r)
{
    const char *s = PQcmdTuples((PGresult *)res_pg(r));
    char *end = NULL;
    if (!s || !*s)
        return 0;
    unsigned long long v = strtoull(s, &end, 10);
    return (end && *end == '\0') ? (uint64_t)v : 0;
}

int pg_res_isnull(const struct pg_res *r, int row, int col)
{
    return PQgetisnull(res_pg(r), row, col);
}

const char *pg_res_value(const struct pg_res *r, int row, int col)
{
    return PQgetvalue(res_pg(r), row, col);
}

int pg_res_length(const struct pg_res *r, int row, int col)
{
    return PQgetlength(res_pg(r), row, col);
}

void pg_res_free(struct pg_res **r)
{
    if (!r || !*r)
        return;
    PQclear((PGresult *)*r);
    *r = NULL;
}

/* ---- shared connection options ---- */

/* Keywords for PQconnect*Params: the caller's string is expanded as dbname;
 * keepalives notice a dead peer within about half a minute. */
static const char *const conn_keywords[] = {
    "dbname",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    NULL,
};

static void conn_values(const char *conninfo, const char *values[7])
{
    values[0] = conninfo;
    values[1] = "sagad";
    values[2] = "1";
    values[3] = "10";
    values[4] = "5";
    values[5] = "3";
    values[6] = NULL;
}

static void on_notice(void *arg, const char *message)
{
    char q[256];
    (void)arg;
    log_debug(NULL, "pg.notice", "message=%s", log_quote(q, sizeof(q), message));
}

/* ---- the loop-driven connection ---- */

enum conn_state {
    CONN_DOWN,
    CONN_CONNECTING,
    CONN_PREPARING,
    CONN_READY,
    CONN_CLOSED, /* pg_conn_close() was called */
};

/* One segment in flight: n statements then a Sync. */
struct seg {
    struct seg *next;
    pg_result_cb on_result;
    pg_done_cb on_done;
    void *arg;
    int n;           /* statements */
    int got;         /* statements whose results are complete */
    int have_result; /* a result of statement `got` was delivered; its NULL is due */
    int failed;      /* a statement or the commit failed */
    uint64_t sent_at;
};

/* A poll handle lives on the heap: during connect a new one is made for every
 * step, because libpq may close the socket and open another one (often with
 * the same number) inside PQconnectPoll(). */
struct poller {
    uv_poll_t handle;
    struct pg_conn *conn;
    int fd;
    int events;
};

struct pg_conn {
    uv_loop_t *loop;
    char *conninfo;
    const struct pg_stmt *stmts;
    size_t n_stmts;
    uint32_t connect_timeout_ms;
    pg_conn_cb cb;
    void *data;

    enum conn_state state;
    PGconn *pg;
    struct poller *poll;
    uv_timer_t timer; /* connect timeout, or a failure reported on the next turn */
    int timer_status;
    int want_write;

    struct seg *head;
    struct seg *tail;
    size_t n_segs;
    int prepare_status; /* the first prepare failure */
    char error[256];

    void (*close_cb)(void *data);
    void *close_data;
};

static void conn_on_poll(uv_poll_t *handle, int status, int events);

/* Keeps libpq's message, on one line, for the state callback to report. */
static void conn_note_error(struct pg_conn *c, const char *msg)
{
    size_t n = 0;
    for (const char *p = msg; *p && n + 1 < sizeof(c->error); p++)
        c->error[n++] = (*p == '\n' || *p == '\t') ? ' ' : *p;
    while (n && c->error[n - 1] == ' ')
        n--;
    c->error[n] = '\0';
}

static void poller_on_close(uv_handle_t *handle)
{
    free(container_of((uv_poll_t *)handle, struct poller, handle));
}

/* Stops watching, synchronously (libuv forgets the fd inside uv_close()). */
static void poller_drop(struct pg_conn *c)
{
    if (!c->poll)
        return;
    uv_close((uv_handle_t *)&c->poll->handle, poller_on_close);
    c->poll = NULL;
}

static int poller_watch(struct pg_conn *c, int events)
{
    int fd = PQsocket(c->pg);
    if (fd < 0)
        return SAGA_ECLOSED;
    if (c->poll && c->poll->fd != fd)
        poller_drop(c);
    if (!c->poll) {
        struct poller *p = calloc(1, sizeof(*p));
        if (!p)
            return SAGA_ENOMEM;
        if (uv_poll_init(c->loop, &p->handle, fd) != 0) {
            free(p);
            return SAGA_EIO;
        }
        p->conn = c;
        p->fd = fd;
        p->handle.data = p;
        c->poll = p;
    } else if (c->poll->events == events) {
        return 0;
    }
    if (uv_poll_start(&c->poll->handle, events, conn_on_poll) != 0)
        return SAGA_EIO;
    c->poll->events = events;
    return 0;
}

static void conn_on_timer(uv_timer_t *timer);

/* Fails the connection from the loop, not from inside the caller's call. */
static void conn_fail_later(struct pg_conn *c, int status)
{
    c->timer_status = status;
    uv_timer_start(&c->timer, conn_on_timer, 0, 0);
}

/* Tears the connection down; segments in flight end with `seg_status`. */
static void conn_down(struct pg_conn *c, int status, int seg_status, int notify)
{
    if (c->state == CONN_DOWN || (c->state == CONN_CLOSED && !c->pg && !c->head))
        return;
    if (c->state != CONN_CLOSED)
        c->state = CONN_DOWN;
    uv_timer_stop(&c->timer);
    poller_drop(c);
    if (c->pg) {
        if (!c->error[0] && PQstatus(c->pg) == CONNECTION_BAD)
            conn_note_error(c, PQerrorMessage(c->pg));
        PQfinish(c->pg);
        c->pg = NULL;
    }
    c->want_write = 0;
    struct seg *s = c->head;
    c->head = c->tail = NULL;
    c->n_segs = 0;
    while (s) {
        struct seg *next = s->next;
        s->on_done(s->arg, seg_status);
        free(s);
        s = next;
    }
    if (notify && c->state == CONN_DOWN)
        c->cb(c, status);
}

static void conn_on_timer(uv_timer_t *timer)
{
    struct pg_conn *c = container_of(timer, struct pg_conn, timer);
    conn_down(c, c->timer_status, SAGA_ECLOSED, 1);
}

static void conn_flush(struct pg_conn *c)
{
    int r = PQflush(c->pg);
    if (r < 0) {
        conn_fail_later(c, SAGA_ECLOSED);
        return;
    }
    c->want_write = r == 1;
    if (poller_watch(c, UV_READABLE | (c->want_write ? UV_WRITABLE : 0)) != 0)
        conn_fail_later(c, SAGA_ECLOSED);
}

static struct seg *seg_push(struct pg_conn *c, int n, pg_result_cb on_result, pg_done_cb on_done,
                            void *arg)
{
    struct seg *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->n = n;
    s->on_result = on_result;
    s->on_done = on_done;
    s->arg = arg;
    s->sent_at = uv_now(c->loop);
    if (c->tail)
        c->tail->next = s;
    else
        c->head = s;
    c->tail = s;
    c->n_segs++;
    return s;
}

/* Every statement is prepared once per connection and run with the same shape
 * of parameters (arrays of any length), so a plan made once serves every run:
 * planning the write statement anew for each batch cost more than running a
 * small batch. The plan is remade when ANALYZE changes the statistics. */
static const char session_sql[] = "SET plan_cache_mode = force_generic_plan";

/* Results of the preparing segment: the session setting (index 0), then one
 * per statement. */
static void prepare_on_result(void *arg, int index, const struct pg_res *res)
{
    struct pg_conn *c = arg;
    if (pg_res_status(res) != PG_RES_ERROR || c->prepare_status != 0)
        return;
    const char *state = pg_res_sqlstate(res);
    char q[256];
    log_error(NULL, "store.prepare_failed", "statement=%s sqlstate=%s message=%s",
              index == 0 ? "session" : c->stmts[index - 1].name, state,
              log_quote(q, sizeof(q), pg_res_message(res)));
    /* Class 42 (undefined table, column, function...): the schema is not the
     * one this binary was built for. */
    c->prepare_status = strncmp(state, "42", 2) == 0 ? SAGA_ESCHEMA : SAGA_EDB;
}

static void prepare_on_done(void *arg, int status)
{
    struct pg_conn *c = arg;
    if (status == SAGA_ECLOSED || status == SAGA_ECANCELED)
        return; /* conn_down() reports */
    if (status != 0 || c->prepare_status != 0) {
        conn_fail_later(c, c->prepare_status ? c->prepare_status : SAGA_EDB);
        return;
    }
    c->state = CONN_READY;
    c->cb(c, 0);
}

/* Connected: pipeline mode, then the session setting and every statement
 * prepared, in one segment. */
static void conn_established(struct pg_conn *c)
{
    uv_timer_stop(&c->timer);
    if (PQsetnonblocking(c->pg, 1) != 0 || PQenterPipelineMode(c->pg) != 1) {
        conn_fail_later(c, SAGA_ECONNECT);
        return;
    }
    PQsetNoticeProcessor(c->pg, on_notice, c);
    c->state = CONN_PREPARING;
    c->prepare_status = 0;
    if (!seg_push(c, (int)c->n_stmts + 1, prepare_on_result, prepare_on_done, c)) {
        conn_fail_later(c, SAGA_ENOMEM);
        return;
    }
    if (!PQsendQueryParams(c->pg, session_sql, 0, NULL, NULL, NULL, NULL, 0)) {
        conn_fail_later(c, SAGA_ECONNECT);
        return;
    }
    for (size_t i = 0; i < c->n_stmts; i++) {
        if (!PQsendPrepare(c->pg, c->stmts[i].name, c->stmts[i].sql, 0, NULL)) {
            conn_fail_later(c, SAGA_ECONNECT);
            return;
        }
    }
    if (!PQpipelineSync(c->pg)) {
        conn_fail_later(c, SAGA_ECONNECT);
        return;
    }
    conn_flush(c);
}

static void conn_connect_step(struct pg_conn *c)
{
    /* Forget the fd before libpq may close it. */
    poller_drop(c);
    PostgresPollingStatusType st = PQconnectPoll(c->pg);
    int r = 0;
    switch (st) {
    case PGRES_POLLING_READING:
        r = poller_watch(c, UV_READABLE);
        break;
    case PGRES_POLLING_WRITING:
        r = poller_watch(c, UV_WRITABLE);
        break;
    case PGRES_POLLING_OK:
        conn_established(c);
        return;
    default:
        conn_note_error(c, PQerrorMessage(c->pg));
        conn_fail_later(c, SAGA_ECONNECT);
        return;
    }
    if (r != 0)
        conn_fail_later(c, SAGA_ECONNECT);
}

static enum pg_res_status raw_status(PGresult *r)
{
    return pg_res_status((const struct pg_res *)r);
}

/* Hands every complete result to its segment. */
static void conn_read_results(struct pg_conn *c)
{
    int nulls = 0;
    while (c->head && c->pg) {
        if (PQisBusy(c->pg))
            break;
        PGresult *r = PQgetResult(c->pg);
        struct seg *s = c->head;
        if (s->got < s->n) {
            if (!r) {
                if (!s->have_result) {
                    if (++nulls > 2)
                        break;
                    continue;
                }
                s->have_result = 0;
                s->got++;
                continue;
            }
            nulls = 0;
            if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
                /* Fewer results than statements: the stream is out of step. */
                PQclear(r);
                conn_fail_later(c, SAGA_ECLOSED);
                return;
            }
            if (PQstatus(c->pg) == CONNECTION_BAD) {
                PQclear(r);
                break;
            }
            if (raw_status(r) != PG_RES_OK)
                s->failed = 1;
            if (!s->have_result)
                s->on_result(s->arg, s->got, (const struct pg_res *)r);
            s->have_result = 1;
            PQclear(r);
            if (c->head != s)
                return; /* the callback dropped the connection */
            continue;
        }
        /* Every statement is done: the Sync's result is due. */
        if (!r) {
            if (++nulls > 2)
                break;
            continue;
        }
        nulls = 0;
        if (PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
            /* An error in place of the Sync: the commit failed, or the
             * connection is ending. */
            s->failed = 1;
            PQclear(r);
            if (PQstatus(c->pg) == CONNECTION_BAD)
                break;
            continue;
        }
        PQclear(r);
        c->head = s->next;
        if (!c->head)
            c->tail = NULL;
        c->n_segs--;
        s->on_done(s->arg, s->failed ? SAGA_EDB : 0);
        free(s);
    }
    if (c->pg && PQstatus(c->pg) == CONNECTION_BAD)
        conn_down(c, SAGA_ECLOSED, SAGA_ECLOSED, 1);
}

static void conn_on_poll(uv_poll_t *handle, int status, int events)
{
    struct poller *p = handle->data;
    struct pg_conn *c = p->conn;
    if (c->poll != p)
        return;
    if (c->state == CONN_CONNECTING) {
        conn_connect_step(c);
        return;
    }
    if (status < 0) {
        conn_down(c, SAGA_ECLOSED, SAGA_ECLOSED, 1);
        return;
    }
    if (events & UV_WRITABLE) {
        conn_flush(c);
        if (c->state == CONN_DOWN)
            return;
    }
    if (events & UV_READABLE) {
        if (!PQconsumeInput(c->pg)) {
            conn_down(c, SAGA_ECLOSED, SAGA_ECLOSED, 1);
            return;
        }
        conn_read_results(c);
        /* libpq may still hold output when the server was slow to read. */
        if (c->pg && c->state != CONN_DOWN && c->want_write)
            conn_flush(c);
    }
}

int pg_conn_new(uv_loop_t *loop, const char *conninfo, const struct pg_stmt *stmts, size_t n_stmts,
                uint32_t connect_timeout_ms, pg_conn_cb cb, void *data, struct pg_conn **out)
{
    *out = NULL;
    if (!loop || !conninfo || !cb || (n_stmts && !stmts))
        return SAGA_EINVAL;
    struct pg_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return SAGA_ENOMEM;
    c->conninfo = strdup(conninfo);
    if (!c->conninfo) {
        free(c);
        return SAGA_ENOMEM;
    }
    c->loop = loop;
    c->stmts = stmts;
    c->n_stmts = n_stmts;
    c->connect_timeout_ms = connect_timeout_ms ? connect_timeout_ms : 5000;
    c->cb = cb;
    c->data = data;
    c->state = CONN_DOWN;
    uv_timer_init(loop, &c->timer);
    *out = c;
    return 0;
}

void *pg_conn_data(const struct pg_conn *c)
{
    return c->data;
}

int pg_conn_connect(struct pg_conn *c)
{
    if (c->state != CONN_DOWN)
        return SAGA_ESTATE;
    const char *values[7];
    conn_values(c->conninfo, values);
    c->pg = PQconnectStartParams(conn_keywords, values, 1);
    if (!c->pg)
        return SAGA_ENOMEM;
    c->state = CONN_CONNECTING;
    c->error[0] = '\0';
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_note_error(c, PQerrorMessage(c->pg));
        conn_fail_later(c, SAGA_ECONNECT);
        return 0;
    }
    c->timer_status = SAGA_ETIMEDOUT;
    uv_timer_start(&c->timer, conn_on_timer, c->connect_timeout_ms, 0);
    /* Before the first PQconnectPoll(), wait as if it had asked to write. */
    if (poller_watch(c, UV_WRITABLE) != 0)
        conn_fail_later(c, SAGA_ECONNECT);
    return 0;
}

int pg_conn_is_ready(const struct pg_conn *c)
{
    return c->state == CONN_READY;
}

const char *pg_conn_error(const struct pg_conn *c)
{
    return c->error;
}

size_t pg_conn_in_flight(const struct pg_conn *c)
{
    return c->n_segs;
}

uint64_t pg_conn_oldest(const struct pg_conn *c)
{
    return c->head ? c->head->sent_at : 0;
}

int pg_conn_send(struct pg_conn *c, const struct pg_query *q, size_t n, pg_result_cb on_result,
                 pg_done_cb on_done, void *arg)
{
    if (c->state != CONN_READY)
        return SAGA_ESTATE;
    if (n == 0 || n > INT32_MAX || !on_result || !on_done)
        return SAGA_EINVAL;
    if (!seg_push(c, (int)n, on_result, on_done, arg))
        return SAGA_ENOMEM;
    /* From here on the segment is in the list: a failure ends it through
     * conn_down() on the next turn of the loop. */
    for (size_t i = 0; i < n; i++) {
        int ok;
        if (q[i].stmt)
            ok = PQsendQueryPrepared(c->pg, q[i].stmt, q[i].n_params, q[i].values, q[i].lengths,
                                     q[i].formats, 1);
        else
            ok = PQsendQueryParams(c->pg, q[i].sql, q[i].n_params, NULL, q[i].values, q[i].lengths,
                                   q[i].formats, 1);
        if (!ok) {
            conn_fail_later(c, SAGA_ECLOSED);
            return 0;
        }
    }
    if (!PQpipelineSync(c->pg)) {
        conn_fail_later(c, SAGA_ECLOSED);
        return 0;
    }
    conn_flush(c);
    return 0;
}

void pg_conn_drop(struct pg_conn *c, int status)
{
    if (c->state == CONN_CLOSED)
        return;
    conn_down(c, status, SAGA_ECLOSED, 1);
}

static void conn_on_timer_closed(uv_handle_t *handle)
{
    struct pg_conn *c = container_of((uv_timer_t *)handle, struct pg_conn, timer);
    void (*cb)(void *) = c->close_cb;
    void *data = c->close_data;
    free(c->conninfo);
    free(c);
    if (cb)
        cb(data);
}

void pg_conn_close(struct pg_conn *c, void (*cb)(void *data), void *data)
{
    if (!c || c->state == CONN_CLOSED)
        return;
    c->state = CONN_CLOSED;
    c->close_cb = cb;
    c->close_data = data;
    conn_down(c, SAGA_ECANCELED, SAGA_ECANCELED, 0);
    uv_close((uv_handle_t *)&c->timer, conn_on_timer_closed);
}

int pg_conninfo_check(const char *conninfo, char *err, size_t err_size)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);
    if (!opts) {
        snprintf(err, err_size, "%s", msg ? msg : "out of memory");
        PQfreemem(msg);
        return SAGA_EINVAL;
    }
    PQconninfoFree(opts);
    return 0;
}

/* ---- the blocking connection ---- */

struct pg_sync {
    PGconn *pg;
    char error[1024];
    int position;
};

static void sync_set_error(struct pg_sync *c, const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *pos = r ? PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION) : NULL;
    c->position = 0;
    if (pos) {
        char *end = NULL;
        long v = strtol(pos, &end, 10);
        if (end && *end == '\0' && v > 0 && v < INT32_MAX)
            c->position = (int)v;
    }
    if (!msg) {
        msg = PQerrorMessage(c->pg);
        size_t n = strlen(msg);
        snprintf(c->error, sizeof(c->error), "%.*s", (int)(n && msg[n - 1] == '\n' ? n - 1 : n),
                 msg);
        return;
    }
    snprintf(c->error, sizeof(c->error), "%s: %s", state ? state : "?????", msg);
}

static void sync_on_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

int pg_sync_open(const char *conninfo, struct pg_sync **out, char *err, size_t err_size)
{
    *out = NULL;
    if (!conninfo || !*conninfo) {
        snprintf(err, err_size, "no database URL");
        return SAGA_EINVAL;
    }
    struct pg_sync *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, err_size, "out of memory");
        return SAGA_ENOMEM;
    }
    const char *values[7];
    conn_values(conninfo, values);
    c->pg = PQconnectdbParams(conn_keywords, values, 1);
    if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
        const char *msg = c->pg ? PQerrorMessage(c->pg) : "out of memory";
        size_t n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
            n--;
        snprintf(err, err_size, "%.*s", (int)n, msg);
        PQfinish(c->pg);
        free(c);
        return SAGA_ECONNECT;
    }
    PQsetNoticeProcessor(c->pg, sync_on_notice, c);
    *out = c;
    return 0;
}

int pg_sync_query(struct pg_sync *c, const char *sql, int n, const char *const *values,
                  struct pg_res **out)
{
    if (out)
        *out = NULL;
    c->error[0] = '\0';
    PGresult *r = PQexecParams(c->pg, sql, n, NULL, values, NULL, NULL, 0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        sync_set_error(c, r);
        PQclear(r);
        return PQstatus(c->pg) == CONNECTION_OK ? SAGA_EDB : SAGA_ECLOSED;
    }
    if (out)
        *out = (struct pg_res *)r;
    else
        PQclear(r);
    return 0;
}

int pg_sync_script(struct pg_sync *c, const char *sql)
{
    c->error[0] = '\0';
    /* The simple query protocol: the only way to send several statements at
     * once, which a migration file holds. */
    if (!PQsendQuery(c->pg, sql)) {
        sync_set_error(c, NULL);
        return SAGA_EDB;
    }
    int rc = 0;
    PGresult *r;
    while ((r = PQgetResult(c->pg)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (rc == 0 && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
            sync_set_error(c, r);
            rc = SAGA_EDB;
        }
        PQclear(r);
    }
    return rc;
}

const char *pg_sync_error(const struct pg_sync *c)
{
    return c->error;
}

int pg_sync_error_position(const struct pg_sync *c)
{
    return c->position;
}

void pg_sync_close(struct pg_sync **c)
{
    if (!c || !*c)
        return;
    PQfinish((*c)->pg);
    free(*c);
    *c = NULL;
}
