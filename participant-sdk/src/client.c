/* The client: one connection to one coordinator, requests matched to answers
 * by request id, per-request deadlines on one timer, blocking versions on a
 * private loop. Results are built in result.c; bytes move in conn.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

#define DEFAULT_REQUEST_MS   30000
#define DEFAULT_HEARTBEAT_MS 5000
#define SILENT_INTERVALS     3

enum client_state { CLIENT_IDLE, CLIENT_CONNECTING, CLIENT_HELLO, CLIENT_READY };

struct creq {
    struct creq *next;
    uint64_t id;
    enum wire_type expect;
    struct wire_buf frame; /* encoded; sent once the connection is ready */
    int sent;
    uint64_t deadline; /* loop time in ms; 0 = none */
    saga_client_cb cb;
    saga_event_cb on_event;
    void *data;
};

struct saga_client {
    char **addrs; /* "host:port": the configured ones, then peers learned */
    size_t n_addrs;
    size_t cur;   /* the address in use or tried last */
    size_t tried; /* addresses tried in this round of connecting */
    char *token;
    char *label;
    char *instance;
    unsigned request_timeout_ms;
    unsigned connect_timeout_ms;
    uv_loop_t *loop;
    uv_loop_t own_loop;
    int own;
    uv_timer_t timer;    /* request deadlines */
    uv_timer_t hb;       /* heartbeats while connected */
    int handles;         /* timers not closed yet */
    unsigned hb_ms;      /* from HelloOk */
    uint64_t last_rx;    /* loop time of the last frame received, or of the
                            first request after an idle spell */
    uint64_t idle_since; /* private loop: when the last blocking call returned */
    int closing;
    int in_sync;
    struct saga__conn *conn;
    enum client_state state;
    uint64_t hello_req;
    uint64_t next_id;
    struct creq *reqs;
};

static void client_close_conn(saga_client_t *c, int err, const char *reason);
static void on_timer(uv_timer_t *t);
static int client_connect(saga_client_t *c);

/* ---- requests ------------------------------------------------------------------ */

static void rearm(saga_client_t *c)
{
    if (c->closing)
        return;
    uint64_t min = 0;
    for (struct creq *r = c->reqs; r != NULL; r = r->next) {
        if (r->deadline != 0 && (min == 0 || r->deadline < min))
            min = r->deadline;
    }
    if (min == 0) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = uv_now(c->loop);
    uv_timer_start(&c->timer, on_timer, min > now ? min - now : 0, 0);
}

static void unlink_req(saga_client_t *c, struct creq *req)
{
    for (struct creq **pp = &c->reqs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == req) {
            *pp = req->next;
            return;
        }
    }
}

/* Removes the request, calls its callback with `res`, frees it. */
static void finish(saga_client_t *c, struct creq *req, saga_result_t *res)
{
    unlink_req(c, req);
    wire_buf_free(&req->frame);
    saga_client_cb cb = req->cb;
    void *data = req->data;
    free(req);
    cb(c, res, data);
}

static void fail_all(saga_client_t *c, int err, const char *reason)
{
    while (c->reqs != NULL)
        finish(c, c->reqs, saga__result_error(err, reason));
}

static void flush(saga_client_t *c)
{
    for (struct creq *r = c->reqs; r != NULL && c->state == CLIENT_READY; r = r->next) {
        if (r->sent)
            continue;
        int rc = saga__conn_send_raw(c->conn, &r->frame);
        if (rc != 0) {
            client_close_conn(c, rc, "cannot send a request");
            return;
        }
        r->sent = 1;
    }
}

static void on_timer(uv_timer_t *t)
{
    saga_client_t *c = t->data;
    uint64_t now = uv_now(c->loop);
    for (;;) {
        struct creq *due = NULL;
        for (struct creq *r = c->reqs; r != NULL && due == NULL; r = r->next) {
            if (r->deadline != 0 && r->deadline <= now)
                due = r;
        }
        if (due == NULL)
            break;
        finish(c, due,
               saga__result_error(SAGA_ETIMEDOUT, "no answer from the coordinator in time"));
        if (c->closing)
            return;
    }
    rearm(c);
}

/* Pings the coordinator, and gives up on it after three silent intervals
 * while answers are awaited (an idle connection is not judged). */
static void on_heartbeat(uv_timer_t *t)
{
    saga_client_t *c = t->data;
    if (c->conn == NULL || c->state != CLIENT_READY)
        return;
    uint64_t now = uv_now(c->loop);
    if (c->reqs != NULL && now - c->last_rx >= (uint64_t)SILENT_INTERVALS * c->hb_ms) {
        client_close_conn(c, SAGA_ETIMEDOUT, "no frame from the coordinator for 3 heartbeats");
        return;
    }
    struct wire_msg m = {.request_id = ++c->next_id, .type = WIRE_PING};
    m.ping.nonce = c->next_id;
    if (saga__conn_send(c->conn, &m) != 0)
        client_close_conn(c, SAGA_EIO, "cannot send Ping");
}

/* ---- the connection ----------------------------------------------------------------- */

static void on_conn_connect(struct saga__conn *conn, void *owner)
{
    saga_client_t *c = owner;
    struct wire_msg m = {.request_id = ++c->next_id, .type = WIRE_HELLO};
    m.hello.service = c->label;
    m.hello.instance_id = c->instance;
    m.hello.protocol_version = WIRE_PROTOCOL_VERSION;
    m.hello.auth_token = c->token;
    m.hello.role = WIRE_ROLE_CLIENT;
    c->hello_req = m.request_id;
    c->state = CLIENT_HELLO;
    int rc = saga__conn_send(conn, &m);
    if (rc != 0)
        client_close_conn(c, rc, "cannot send Hello");
}

static void on_conn_close(struct saga__conn *conn, int err, const char *reason, void *owner)
{
    saga_client_t *c = owner;
    (void)conn;
    int was_connecting = c->state == CLIENT_CONNECTING;
    c->conn = NULL;
    c->state = CLIENT_IDLE;
    uv_timer_stop(&c->hb);
    /* Cannot reach this coordinator: try the next one before giving up. */
    if (was_connecting && err == SAGA_ECONNECT && c->reqs != NULL && c->tried < c->n_addrs) {
        c->cur = (c->cur + 1) % c->n_addrs;
        c->tried++;
        if (client_connect(c) == 0)
            return;
    }
    fail_all(c, err, reason);
    rearm(c);
}

/* Remembers the coordinators HelloOk names, to fail over to them. */
static void learn_peers(saga_client_t *c, const struct wire_hello_ok *h)
{
    for (size_t i = 0; i < h->n_peers; i++) {
        char host[256];
        int port;
        int known = saga__addr_parse(h->peers[i], host, sizeof(host), &port) != 0;
        for (size_t j = 0; j < c->n_addrs && !known; j++)
            known = strcmp(c->addrs[j], h->peers[i]) == 0;
        if (known)
            continue;
        char *copy = saga__strdup(h->peers[i]);
        char **v = copy != NULL ? realloc(c->addrs, (c->n_addrs + 1) * sizeof(*v)) : NULL;
        if (v == NULL) {
            free(copy);
            return;
        }
        c->addrs = v;
        c->addrs[c->n_addrs++] = copy;
    }
}

static struct creq *req_by_id(saga_client_t *c, uint64_t id)
{
    for (struct creq *r = c->reqs; r != NULL; r = r->next) {
        if (r->id == id && r->sent)
            return r;
    }
    return NULL;
}

static void on_conn_msg(struct saga__conn *conn, struct wire_msg *msg, void *owner)
{
    saga_client_t *c = owner;
    c->last_rx = uv_now(c->loop);
    if (msg->type == WIRE_PING) {
        struct wire_msg m = {.request_id = msg->request_id, .type = WIRE_PONG};
        m.pong.nonce = msg->ping.nonce;
        if (saga__conn_send(conn, &m) != 0)
            client_close_conn(c, SAGA_EIO, "cannot send Pong");
        goto done;
    }
    if (c->state == CLIENT_HELLO) {
        if (msg->type == WIRE_HELLO_OK && msg->hello_ok.protocol_version == WIRE_PROTOCOL_VERSION) {
            saga__conn_set_max_frame(conn, msg->hello_ok.max_frame_bytes);
            c->state = CLIENT_READY;
            c->hb_ms = msg->hello_ok.heartbeat_interval_ms > 0 ? msg->hello_ok.heartbeat_interval_ms
                                                               : DEFAULT_HEARTBEAT_MS;
            uv_timer_start(&c->hb, on_heartbeat, c->hb_ms, c->hb_ms);
            c->tried = 0;
            learn_peers(c, &msg->hello_ok);
            flush(c);
        } else if (msg->type == WIRE_ERROR) {
            client_close_conn(c, msg->error.code, msg->error.message);
        } else if (msg->type == WIRE_HELLO_OK) {
            client_close_conn(c, SAGA_EVERSION, "the coordinator speaks another protocol version");
        } else {
            client_close_conn(c, SAGA_EPROTO, "no HelloOk in answer to Hello");
        }
        goto done;
    }
    if (msg->type == WIRE_ERROR && msg->request_id == 0) {
        if (msg->error.fatal)
            client_close_conn(c, msg->error.code, msg->error.message);
        goto done;
    }
    struct creq *req = req_by_id(c, msg->request_id);
    if (req == NULL)
        goto done; /* an answer that came after its request timed out */
    if (msg->type == WIRE_EVENT && req->on_event != NULL) {
        saga_event_t ev;
        saga__event_view(&msg->event, &ev);
        req->on_event(c, &ev, req->data);
        goto done;
    }
    int fatal = msg->type == WIRE_ERROR && msg->error.fatal;
    int code = msg->type == WIRE_ERROR ? msg->error.code : 0;
    char why[64];
    if (msg->type == WIRE_ERROR) {
        finish(c, req, saga__result_refused(code, msg->error.message, msg->error.holder));
    } else if (msg->type == req->expect) {
        finish(c, req, saga__result_from_msg(msg));
    } else {
        snprintf(why, sizeof(why), "unexpected %s in answer", wire_type_name(msg->type));
        finish(c, req, saga__result_error(SAGA_EPROTO, why));
    }
    if (fatal && !c->closing && c->conn == conn)
        client_close_conn(c, code, "the coordinator closed the connection");
done:
    wire_msg_free_contents(msg);
}

static const struct saga__conn_cbs client_cbs = {
    .on_connect = on_conn_connect,
    .on_msg = on_conn_msg,
    .on_close = on_conn_close,
};

static void client_close_conn(saga_client_t *c, int err, const char *reason)
{
    if (c->conn == NULL)
        return;
    saga__conn_close(c->conn);
    c->conn = NULL;
    c->state = CLIENT_IDLE;
    uv_timer_stop(&c->hb);
    fail_all(c, err, reason);
    rearm(c);
}

static int client_connect(saga_client_t *c)
{
    char host[256];
    int port;
    int rc = saga__addr_parse(c->addrs[c->cur], host, sizeof(host), &port);
    if (rc == 0)
        rc = saga__conn_open(c->loop, host, port, c->connect_timeout_ms, &client_cbs, c, &c->conn);
    if (rc != 0) {
        c->conn = NULL;
        return rc;
    }
    c->state = CLIENT_CONNECTING;
    return 0;
}

/* ---- submitting ---------------------------------------------------------------------- */

static int submit(saga_client_t *c, struct wire_msg *m, enum wire_type expect, uint64_t extra_ms,
                  int no_deadline, saga_client_cb cb, saga_event_cb on_event, void *data)
{
    if (c == NULL || cb == NULL)
        return SAGA_EINVAL;
    if (c->closing)
        return SAGA_ESTATE;
    struct creq *req = calloc(1, sizeof(*req));
    if (req == NULL)
        return SAGA_ENOMEM;
    m->request_id = ++c->next_id;
    wire_buf_init(&req->frame);
    int rc = wire_encode(m, &req->frame, 0);
    if (rc != 0) {
        wire_buf_free(&req->frame);
        free(req);
        return rc;
    }
    if (c->conn == NULL) {
        c->tried = 1;
        rc = client_connect(c);
        if (rc != 0) {
            wire_buf_free(&req->frame);
            free(req);
            return rc;
        }
    }
    req->id = m->request_id;
    req->expect = expect;
    req->cb = cb;
    req->on_event = on_event;
    req->data = data;
    uv_update_time(c->loop);
    if (c->reqs == NULL)
        c->last_rx = uv_now(c->loop); /* silence before this request does not count */
    if (!no_deadline)
        req->deadline = uv_now(c->loop) + c->request_timeout_ms + extra_ms;
    struct creq **tail = &c->reqs;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = req;
    if (c->state == CLIENT_READY)
        flush(c);
    rearm(c);
    return 0;
}

static int check_async(saga_client_t *c)
{
    if (c == NULL)
        return SAGA_EINVAL;
    return c->own ? SAGA_ESTATE : 0;
}

static int do_define(saga_client_t *c, const char *json, saga_client_cb cb, void *data)
{
    if (json == NULL)
        return SAGA_EINVAL;
    struct wire_msg m = {.type = WIRE_DEFINE};
    m.define.definition_json = (char *)json;
    return submit(c, &m, WIRE_DEFINED, 0, 0, cb, NULL, data);
}

static int do_start(saga_client_t *c, const saga_start_request_t *q, saga_client_cb cb, void *data)
{
    if (q == NULL || (q->input == NULL && q->input_len > 0))
        return SAGA_EINVAL;
    int named = q->definition != NULL && q->definition[0] != '\0';
    int inline_doc = q->definition_json != NULL && q->definition_json[0] != '\0';
    if (named == inline_doc)
        return SAGA_EINVAL;
    struct wire_msg m = {.type = WIRE_START};
    m.start.definition = named ? (char *)q->definition : NULL;
    m.start.version = q->version;
    m.start.definition_json = inline_doc ? (char *)q->definition_json : NULL;
    m.start.input = (uint8_t *)q->input;
    m.start.input_len = q->input_len;
    m.start.idempotency_key = (char *)(q->idempotency_key != NULL ? q->idempotency_key : "");
    return submit(c, &m, WIRE_STARTED, 0, 0, cb, NULL, data);
}

static int do_get(saga_client_t *c, const uint8_t *id, saga_client_cb cb, void *data)
{
    if (id == NULL)
        return SAGA_EINVAL;
    struct wire_msg m = {.type = WIRE_GET};
    memcpy(m.get.saga_id, id, SAGA_ID_LEN);
    return submit(c, &m, WIRE_SAGA_INFO, 0, 0, cb, NULL, data);
}

static int do_wait(saga_client_t *c, const uint8_t *id, unsigned timeout_ms, saga_client_cb cb,
                   void *data)
{
    if (id == NULL)
        return SAGA_EINVAL;
    struct wire_msg m = {.type = WIRE_WAIT};
    memcpy(m.wait.saga_id, id, SAGA_ID_LEN);
    m.wait.timeout_ms = timeout_ms;
    return submit(c, &m, WIRE_SAGA_INFO, timeout_ms, timeout_ms == 0, cb, NULL, data);
}

static int do_list(saga_client_t *c, const saga_list_filter_t *f, saga_client_cb cb, void *data)
{
    struct wire_msg m = {.type = WIRE_LIST};
    if (f != NULL) {
        m.list.status = f->status;
        m.list.definition = (char *)(f->definition != NULL ? f->definition : "");
        m.list.created_since_ms = f->created_since_ms;
        m.list.limit = f->limit;
        m.list.cursor = (char *)(f->cursor != NULL ? f->cursor : "");
    }
    return submit(c, &m, WIRE_SAGA_LIST, 0, 0, cb, NULL, data);
}

static int do_operator(saga_client_t *c, enum wire_type type, const uint8_t *id, const char *reason,
                       saga_client_cb cb, void *data)
{
    if (id == NULL)
        return SAGA_EINVAL;
    struct wire_msg m = {.type = type};
    struct wire_operator *op = type == WIRE_RETRY ? &m.retry : &m.abort;
    memcpy(op->saga_id, id, SAGA_ID_LEN);
    op->reason = (char *)(reason != NULL ? reason : "");
    return submit(c, &m, WIRE_SAGA_INFO, 0, 0, cb, NULL, data);
}

static int do_resolve(saga_client_t *c, const uint8_t *id, saga_status_t as, const char *reason,
                      saga_client_cb cb, void *data)
{
    if (id == NULL || (as != SAGA_STATUS_COMPLETED && as != SAGA_STATUS_COMPENSATED &&
                       as != SAGA_STATUS_COMMITTED && as != SAGA_STATUS_ABORTED))
        return SAGA_EINVAL;
    struct wire_msg m = {.type = WIRE_RESOLVE};
    memcpy(m.resolve.saga_id, id, SAGA_ID_LEN);
    m.resolve.as = as;
    m.resolve.reason = (char *)(reason != NULL ? reason : "");
    return submit(c, &m, WIRE_SAGA_INFO, 0, 0, cb, NULL, data);
}

static int do_services(saga_client_t *c, saga_client_cb cb, void *data)
{
    struct wire_msg m = {.type = WIRE_SERVICES};
    return submit(c, &m, WIRE_SERVICE_LIST, 0, 0, cb, NULL, data);
}

static int do_watch(saga_client_t *c, const uint8_t *id, saga_event_cb on_event, saga_client_cb cb,
                    void *data)
{
    if (id == NULL)
        return SAGA_EINVAL;
    struct wire_msg m = {.type = WIRE_WATCH};
    memcpy(m.watch.saga_id, id, SAGA_ID_LEN);
    return submit(c, &m, WIRE_SAGA_INFO, 0, 1, cb, on_event, data);
}

/* ---- public: asynchronous ------------------------------------------------------------- */

#define ASYNC(call)                    \
    do {                               \
        int async_rc = check_async(c); \
        if (async_rc != 0)             \
            return async_rc;           \
        return call;                   \
    } while (0)

SAGA_EXTERN int saga_client_define(saga_client_t *c, const char *json, saga_client_cb cb,
                                   void *data)
{
    ASYNC(do_define(c, json, cb, data));
}

SAGA_EXTERN int saga_client_start(saga_client_t *c, const saga_start_request_t *req,
                                  saga_client_cb cb, void *data)
{
    ASYNC(do_start(c, req, cb, data));
}

SAGA_EXTERN int saga_client_get(saga_client_t *c, const uint8_t id[SAGA_ID_LEN], saga_client_cb cb,
                                void *data)
{
    ASYNC(do_get(c, id, cb, data));
}

SAGA_EXTERN int saga_client_wait(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                 unsigned timeout_ms, saga_client_cb cb, void *data)
{
    ASYNC(do_wait(c, id, timeout_ms, cb, data));
}

SAGA_EXTERN int saga_client_list(saga_client_t *c, const saga_list_filter_t *filter,
                                 saga_client_cb cb, void *data)
{
    ASYNC(do_list(c, filter, cb, data));
}

SAGA_EXTERN int saga_client_retry(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                  const char *reason, saga_client_cb cb, void *data)
{
    ASYNC(do_operator(c, WIRE_RETRY, id, reason, cb, data));
}

SAGA_EXTERN int saga_client_abort(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                  const char *reason, saga_client_cb cb, void *data)
{
    ASYNC(do_operator(c, WIRE_ABORT, id, reason, cb, data));
}

SAGA_EXTERN int saga_client_resolve(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                    saga_status_t as, const char *reason, saga_client_cb cb,
                                    void *data)
{
    ASYNC(do_resolve(c, id, as, reason, cb, data));
}

SAGA_EXTERN int saga_client_services(saga_client_t *c, saga_client_cb cb, void *data)
{
    ASYNC(do_services(c, cb, data));
}

SAGA_EXTERN int saga_client_watch(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                  saga_event_cb on_event, saga_client_cb cb, void *data)
{
    ASYNC(do_watch(c, id, on_event, cb, data));
}

/* ---- public: blocking ----------------------------------------------------------------- */

struct sync_slot {
    saga_result_t *res;
    int done;
    saga_event_cb on_event;
    void *data;
};

static void sync_cb(saga_client_t *c, saga_result_t *res, void *data)
{
    struct sync_slot *slot = data;
    (void)c;
    slot->res = res;
    slot->done = 1;
}

static void sync_event(saga_client_t *c, const saga_event_t *ev, void *data)
{
    struct sync_slot *slot = data;
    if (slot->on_event != NULL)
        slot->on_event(c, ev, slot->data);
}

static int sync_begin(saga_client_t *c, saga_result_t **out)
{
    if (out == NULL)
        return SAGA_EINVAL;
    *out = NULL;
    if (c == NULL || !c->own || c->in_sync || c->closing) {
        int rc = c == NULL ? SAGA_EINVAL : SAGA_ESTATE;
        *out = saga__result_error(rc, "blocking calls need a client without a loop, one at a time");
        return rc;
    }
    /* The private loop did not run since the last call: take in what came
     * (a close), and do not trust a connection left idle past a heartbeat
     * interval (the coordinator may be about to drop it, or have done so). */
    uv_update_time(c->loop);
    uint64_t idle = uv_now(c->loop) - c->idle_since;
    uv_run(c->loop, UV_RUN_NOWAIT);
    if (c->conn != NULL && c->reqs == NULL && c->state == CLIENT_READY && idle > c->hb_ms)
        client_close_conn(c, SAGA_ECLOSED, "idle");
    return 0;
}

static int sync_end(saga_client_t *c, int rc, struct sync_slot *slot, saga_result_t **out)
{
    if (rc != 0) {
        *out = saga__result_error(rc, saga_strerror(rc));
        return rc;
    }
    c->in_sync = 1;
    while (!slot->done)
        uv_run(c->loop, UV_RUN_ONCE);
    c->in_sync = 0;
    uv_update_time(c->loop);
    c->idle_since = uv_now(c->loop);
    *out = slot->res;
    return saga_result_status(slot->res);
}

#define SYNC(call)                            \
    do {                                      \
        int sync_rc = sync_begin(c, out);     \
        if (sync_rc != 0)                     \
            return sync_rc;                   \
        struct sync_slot slot = {0};          \
        return sync_end(c, call, &slot, out); \
    } while (0)

SAGA_EXTERN int saga_client_define_sync(saga_client_t *c, const char *json, saga_result_t **out)
{
    SYNC(do_define(c, json, sync_cb, &slot));
}

SAGA_EXTERN int saga_client_start_sync(saga_client_t *c, const saga_start_request_t *req,
                                       saga_result_t **out)
{
    SYNC(do_start(c, req, sync_cb, &slot));
}

SAGA_EXTERN int saga_client_get_sync(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                     saga_result_t **out)
{
    SYNC(do_get(c, id, sync_cb, &slot));
}

SAGA_EXTERN int saga_client_wait_sync(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                      unsigned timeout_ms, saga_result_t **out)
{
    SYNC(do_wait(c, id, timeout_ms, sync_cb, &slot));
}

SAGA_EXTERN int saga_client_list_sync(saga_client_t *c, const saga_list_filter_t *filter,
                                      saga_result_t **out)
{
    SYNC(do_list(c, filter, sync_cb, &slot));
}

SAGA_EXTERN int saga_client_retry_sync(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                       const char *reason, saga_result_t **out)
{
    SYNC(do_operator(c, WIRE_RETRY, id, reason, sync_cb, &slot));
}

SAGA_EXTERN int saga_client_abort_sync(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                       const char *reason, saga_result_t **out)
{
    SYNC(do_operator(c, WIRE_ABORT, id, reason, sync_cb, &slot));
}

SAGA_EXTERN int saga_client_resolve_sync(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                         saga_status_t as, const char *reason, saga_result_t **out)
{
    SYNC(do_resolve(c, id, as, reason, sync_cb, &slot));
}

SAGA_EXTERN int saga_client_services_sync(saga_client_t *c, saga_result_t **out)
{
    SYNC(do_services(c, sync_cb, &slot));
}

SAGA_EXTERN int saga_client_watch_sync(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                       saga_event_cb on_event, void *data, saga_result_t **out)
{
    int rc = sync_begin(c, out);
    if (rc != 0)
        return rc;
    struct sync_slot slot = {.on_event = on_event, .data = data};
    return sync_end(c, do_watch(c, id, sync_event, sync_cb, &slot), &slot, out);
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static void release(saga_client_t *c)
{
    saga__strv_free(c->addrs, c->n_addrs);
    free(c->token);
    free(c->label);
    free(c->instance);
    free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    saga_client_t *c = h->data;
    if (--c->handles == 0 && !c->own)
        release(c);
}

SAGA_EXTERN saga_client_t *saga_client_new(const saga_client_options_t *o)
{
    if (o == NULL)
        return NULL;
    saga_client_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    if (saga__addr_list(o->coordinator, &c->addrs, &c->n_addrs) != 0)
        goto fail;
    c->token = saga__strdup(o->auth_token != NULL ? o->auth_token : "");
    c->label = saga__strdup(o->label != NULL && o->label[0] != '\0' ? o->label : "client");
    char inst[300];
    snprintf(inst, sizeof(inst), "%s:%d", c->label != NULL ? c->label : "client",
             (int)uv_os_getpid());
    c->instance = saga__strdup(inst);
    if (c->token == NULL || c->label == NULL || c->instance == NULL)
        goto fail;
    c->request_timeout_ms = o->request_timeout_ms > 0 ? o->request_timeout_ms : DEFAULT_REQUEST_MS;
    c->connect_timeout_ms = o->connect_timeout_ms;
    if (o->loop != NULL) {
        c->loop = o->loop;
    } else {
        if (uv_loop_init(&c->own_loop) != 0)
            goto fail;
        c->loop = &c->own_loop;
        c->own = 1;
    }
    if (uv_timer_init(c->loop, &c->timer) != 0)
        goto fail_loop;
    c->timer.data = c;
    c->handles++;
    if (uv_timer_init(c->loop, &c->hb) != 0)
        goto fail_timer;
    c->hb.data = c;
    c->handles++;
    return c;
fail_timer:
    if (!c->own) {
        uv_close((uv_handle_t *)&c->timer, on_timer_closed); /* releases c */
        return NULL;
    }
    uv_close((uv_handle_t *)&c->timer, NULL);
    uv_run(&c->own_loop, UV_RUN_DEFAULT);
fail_loop:
    if (c->own)
        uv_loop_close(&c->own_loop);
fail:
    release(c);
    return NULL;
}

SAGA_EXTERN void saga_client_free(saga_client_t **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    saga_client_t *c = *cp;
    *cp = NULL;
    if (c->closing)
        return;
    fail_all(c, SAGA_ECANCELED, "the client was freed");
    c->closing = 1;
    if (c->conn != NULL)
        saga__conn_close(c->conn);
    c->conn = NULL;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    uv_close((uv_handle_t *)&c->hb, on_timer_closed);
    if (c->own) {
        uv_run(&c->own_loop, UV_RUN_DEFAULT);
        uv_loop_close(&c->own_loop);
        release(c);
    }
}
