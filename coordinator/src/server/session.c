/* Sessions: the protocol of one connection on top of conn (Hello, then the
 * participant or client exchange), and the requests a client waits on. May not
 * touch the store or the engine: work goes to the runtime. */
#include "server/session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "saga/error.h"
#include "server/server_int.h"
#include "server/timerq.h"

enum session_state { S_HELLO, S_PARTICIPANT, S_CLIENT };

struct req {
    struct req *next; /* in its session, while the session is open */
    struct req *prev;
    struct session *session; /* NULL once the session closed */
    uint64_t request_id;
};

struct session {
    struct session *next; /* in the server's list */
    struct session *prev;
    struct server *srv;
    struct conn *conn;
    enum session_state state;
    struct instance *inst;
    struct req reqs; /* list head */
    uint64_t last_seen_ms;
    uint64_t closing_ms; /* when a fatal Error went out, or 0 */
    char name[96];       /* service/instance or client label, for logs */
};

static void session_on_msg(struct conn *conn, struct wire_msg *msg);
static void session_on_close(struct conn *conn, int status);

/* Sends without a caller to tell: a failure means the connection is closing
 * (its close callback cleans up) or the message could not be encoded. */
static void post(struct conn *conn, const struct wire_msg *msg)
{
    int err = conn_send(conn, msg);
    if (err != 0 && err != SAGA_ECLOSED)
        log_warn(NULL, "session.send_failed", "peer=%s type=%s error=%s", conn_peer(conn),
                 wire_type_name(msg->type), saga_err_name(err));
}

int session_accept(struct server *srv, uv_stream_t *listener)
{
    struct session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return SAGA_ENOMEM;
    s->srv = srv;
    s->reqs.next = s->reqs.prev = &s->reqs;
    s->last_seen_ms = timerq_wall_ms(NULL);
    struct conn_config cc = {.max_frame = srv->cfg.max_frame};
    int err = conn_accept(listener, &cc, session_on_msg, session_on_close, s, &s->conn);
    if (err != 0) {
        free(s);
        return err;
    }
    snprintf(s->name, sizeof(s->name), "%s", conn_peer(s->conn));
    s->next = srv->sessions;
    if (srv->sessions != NULL)
        srv->sessions->prev = s;
    srv->sessions = s;
    log_debug(NULL, "session.open", "peer=%s", conn_peer(s->conn));
    return 0;
}

int session_send(struct session *s, const struct wire_msg *msg)
{
    return conn_send(s->conn, msg);
}

/* ---- requests ---------------------------------------------------------------------------- */

static struct req *req_new(struct session *s, uint64_t request_id)
{
    struct req *r = malloc(sizeof(*r));
    if (r == NULL)
        return NULL;
    r->session = s;
    r->request_id = request_id;
    r->next = s->reqs.next;
    r->prev = &s->reqs;
    s->reqs.next->prev = r;
    s->reqs.next = r;
    return r;
}

void req_drop(struct req **rp)
{
    struct req *r = *rp;
    if (r == NULL)
        return;
    if (r->session != NULL) {
        r->prev->next = r->next;
        r->next->prev = r->prev;
    }
    free(r);
    *rp = NULL;
}

int req_alive(const struct req *r)
{
    return r != NULL && r->session != NULL && !conn_closing(r->session->conn);
}

int req_send(struct req *r, struct wire_msg *msg)
{
    if (!req_alive(r))
        return SAGA_ECLOSED;
    msg->request_id = r->request_id;
    return conn_send(r->session->conn, msg);
}

void req_reply(struct req **rp, struct wire_msg *msg)
{
    struct req *r = *rp;
    if (r == NULL)
        return;
    if (req_alive(r)) {
        msg->request_id = r->request_id;
        int err = conn_send(r->session->conn, msg);
        if (err == SAGA_ETOOBIG || err == SAGA_EINVAL) {
            struct wire_msg e = {.request_id = r->request_id, .type = WIRE_ERROR};
            e.error.code = err;
            e.error.message = (char *)"the answer is too large to send";
            post(r->session->conn, &e);
        }
    }
    req_drop(rp);
}

static void req_vfail(struct req **rp, int code, const char *holder, const char *fmt, va_list ap)
{
    char text[2048];
    vsnprintf(text, sizeof(text), fmt, ap);
    struct wire_msg msg = {.type = WIRE_ERROR};
    msg.error.code = code < 0 ? code : SAGA_EINTERNAL;
    msg.error.message = text;
    msg.error.holder = (char *)holder;
    req_reply(rp, &msg);
}

void req_fail(struct req **rp, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    req_vfail(rp, code, NULL, fmt, ap);
    va_end(ap);
}

void req_fail_held(struct req **rp, const char *holder, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    req_vfail(rp, SAGA_ESTATE, holder, fmt, ap);
    va_end(ap);
}

/* ---- the exchange ------------------------------------------------------------------------- */

static void send_error(struct session *s, uint64_t request_id, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void send_error(struct session *s, uint64_t request_id, int code, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    struct wire_msg msg = {.request_id = request_id, .type = WIRE_ERROR};
    msg.error.code = code;
    msg.error.message = text;
    post(s->conn, &msg);
}

static void fatal(struct session *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fatal(struct session *s, int code, const char *fmt, ...)
{
    char text[512], quoted[560];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    log_warn(NULL, "session.refused", "peer=%s error=%s reason=%s", conn_peer(s->conn),
             saga_err_name(code), log_quote(quoted, sizeof(quoted), text));
    if (s->closing_ms == 0)
        s->closing_ms = timerq_wall_ms(NULL);
    conn_close(s->conn, code, text);
}

static void on_hello(struct session *s, const struct wire_msg *msg)
{
    struct server *srv = s->srv;
    const struct wire_hello *h = &msg->hello;
    if (h->protocol_version < WIRE_PROTOCOL_VERSION) {
        fatal(s, SAGA_EVERSION, "protocol version %u is not supported; this coordinator speaks %u",
              h->protocol_version, WIRE_PROTOCOL_VERSION);
        return;
    }
    const char *want = srv->cfg.auth_token;
    if (want != NULL && want[0] != '\0' && strcmp(want, h->auth_token ? h->auth_token : "") != 0) {
        fatal(s, SAGA_EAUTH, "authentication refused: wrong or missing token");
        return;
    }
    if (h->role == WIRE_ROLE_PARTICIPANT) {
        if (h->service == NULL || h->service[0] == '\0' || h->instance_id == NULL ||
            h->instance_id[0] == '\0') {
            fatal(s, SAGA_EINVAL, "a participant Hello needs a service and an instance id");
            return;
        }
        int err = registry_add(srv->registry, h->service, h->instance_id, s, &s->inst);
        if (err != 0) {
            fatal(s, err, "cannot register the participant: %s", saga_strerror(err));
            return;
        }
        s->state = S_PARTICIPANT;
        snprintf(s->name, sizeof(s->name), "%s/%s", h->service, h->instance_id);
        log_info(NULL, "participant.connected", "service=%s instance=%s peer=%s", h->service,
                 h->instance_id, conn_peer(s->conn));
    } else if (h->role == WIRE_ROLE_CLIENT) {
        s->state = S_CLIENT;
        log_debug(NULL, "client.connected", "label=%s peer=%s", h->service ? h->service : "",
                  conn_peer(s->conn));
    } else {
        fatal(s, SAGA_EPROTO, "Hello must say its role: participant or client");
        return;
    }
    struct wire_msg ok = {.request_id = msg->request_id, .type = WIRE_HELLO_OK};
    ok.hello_ok.coordinator_id = srv->coordinator_id;
    ok.hello_ok.peers = srv->peers;
    ok.hello_ok.n_peers = srv->n_peers;
    ok.hello_ok.heartbeat_interval_ms = srv->cfg.heartbeat_ms;
    ok.hello_ok.max_frame_bytes = srv->cfg.max_frame;
    ok.hello_ok.max_payload_bytes = srv->cfg.max_payload;
    ok.hello_ok.protocol_version = WIRE_PROTOCOL_VERSION;
    post(s->conn, &ok);
}

/* Client requests, allowed on client and participant connections alike. */
static int on_client_request(struct session *s, struct wire_msg *msg)
{
    struct runtime *rt = s->srv->runtime;
    struct req *req;
    switch (msg->type) {
    case WIRE_DEFINE:
    case WIRE_START:
    case WIRE_GET:
    case WIRE_WAIT:
    case WIRE_LIST:
    case WIRE_RETRY:
    case WIRE_ABORT:
    case WIRE_RESOLVE:
    case WIRE_WATCH:
        break;
    case WIRE_SERVICES: {
        struct wire_msg out = {.request_id = msg->request_id, .type = WIRE_SERVICE_LIST};
        if (registry_describe(s->srv->registry, s->srv->coordinator_id, &out.service_list) != 0)
            send_error(s, msg->request_id, SAGA_ENOMEM, "out of memory");
        else
            post(s->conn, &out);
        wire_msg_free_contents(&out);
        return 1;
    }
    default:
        return 0;
    }
    if (s->srv->stopping && msg->type == WIRE_START) {
        send_error(s, msg->request_id, SAGA_EUNAVAIL,
                   "the coordinator is shutting down; try another");
        return 1;
    }
    req = req_new(s, msg->request_id);
    if (req == NULL) {
        send_error(s, msg->request_id, SAGA_ENOMEM, "out of memory");
        return 1;
    }
    switch (msg->type) {
    case WIRE_DEFINE:
        runtime_define(rt, req, &msg->define);
        break;
    case WIRE_START:
        runtime_start(rt, req, &msg->start);
        break;
    case WIRE_GET:
        runtime_get(rt, req, msg->get.saga_id);
        break;
    case WIRE_WAIT:
        runtime_wait(rt, req, &msg->wait);
        break;
    case WIRE_LIST:
        runtime_list(rt, req, &msg->list);
        break;
    case WIRE_RETRY:
        runtime_operate(rt, req, RUNTIME_RETRY, msg->retry.saga_id, 0, msg->retry.reason);
        break;
    case WIRE_ABORT:
        runtime_operate(rt, req, RUNTIME_ABORT, msg->abort.saga_id, 0, msg->abort.reason);
        break;
    case WIRE_RESOLVE:
        runtime_operate(rt, req, RUNTIME_RESOLVE, msg->resolve.saga_id, msg->resolve.as,
                        msg->resolve.reason);
        break;
    case WIRE_WATCH:
        runtime_watch(rt, req, msg->watch.saga_id);
        break;
    default:
        req_drop(&req);
        return 0;
    }
    return 1;
}

static void on_participant_msg(struct session *s, struct wire_msg *msg)
{
    struct server *srv = s->srv;
    switch (msg->type) {
    case WIRE_REGISTER: {
        int err = registry_set_actions(srv->registry, s->inst, &msg->reg);
        if (err != 0) {
            send_error(s, msg->request_id, err,
                       err == SAGA_EINVAL ? "Register: action names must be non-empty and unique"
                                          : "out of memory");
            return;
        }
        struct wire_msg ack = {.request_id = msg->request_id, .type = WIRE_ACK};
        post(s->conn, &ack);
        log_info(NULL, "participant.registered", "service=%s instance=%s actions=%zu",
                 registry_instance_service(s->inst), registry_instance_id(s->inst),
                 msg->reg.n_actions);
        runtime_capacity(srv->runtime);
        return;
    }
    case WIRE_REPLY: {
        int err = runtime_reply(srv->runtime, &msg->reply);
        /* Request id 0: a Reply's id is the coordinator's own numbering, which
         * the participant could mistake for one of its requests. */
        if (err == SAGA_ETOOBIG)
            send_error(s, 0, SAGA_ETOOBIG,
                       "reply output of %zu bytes is over the limit of %u: dropped; an OK to "
                       "an action or prepare counts as RETRY (the step may have run)",
                       msg->reply.output_len, srv->cfg.max_payload);
        return;
    }
    case WIRE_IN_DOUBT: {
        struct req *req = req_new(s, msg->request_id);
        if (req == NULL)
            send_error(s, msg->request_id, SAGA_ENOMEM, "out of memory");
        else
            runtime_in_doubt(srv->runtime, req, &msg->in_doubt);
        return;
    }
    default:
        break;
    }
    if (!on_client_request(s, msg))
        fatal(s, SAGA_EPROTO, "unexpected %s from a participant", wire_type_name(msg->type));
}

static void session_on_msg(struct conn *conn, struct wire_msg *msg)
{
    struct session *s = conn_data(conn);
    s->last_seen_ms = timerq_wall_ms(NULL);
    if (s->state == S_HELLO) {
        if (msg->type != WIRE_HELLO)
            fatal(s, SAGA_EPROTO, "expected Hello first, got %s", wire_type_name(msg->type));
        else
            on_hello(s, msg);
        wire_msg_free_contents(msg);
        return;
    }
    switch (msg->type) {
    case WIRE_PING: {
        struct wire_msg pong = {.request_id = msg->request_id, .type = WIRE_PONG};
        pong.pong.nonce = msg->ping.nonce;
        post(conn, &pong);
        break;
    }
    case WIRE_PONG:
        break;
    case WIRE_HELLO:
        fatal(s, SAGA_EPROTO, "Hello was already accepted");
        break;
    case WIRE_ERROR: {
        char quoted[256];
        log_warn(NULL, "session.peer_error", "peer=%s code=%s message=%s", s->name,
                 saga_err_name(msg->error.code),
                 log_quote(quoted, sizeof(quoted), msg->error.message ? msg->error.message : ""));
        if (msg->error.fatal)
            conn_close(conn, 0, NULL);
        break;
    }
    default:
        if (s->state == S_PARTICIPANT)
            on_participant_msg(s, msg);
        else if (!on_client_request(s, msg))
            fatal(s, SAGA_EPROTO, "unexpected %s from a client", wire_type_name(msg->type));
        break;
    }
    wire_msg_free_contents(msg);
}

static void session_on_close(struct conn *conn, int status)
{
    struct session *s = conn_data(conn);
    struct server *srv = s->srv;
    if (s->inst != NULL) {
        log_info(NULL, "participant.disconnected", "who=%s in_flight=%u status=%s", s->name,
                 registry_in_flight(s->inst), saga_err_name(status));
        struct instance *inst = s->inst;
        s->inst = NULL;
        /* At shutdown the runtime may be gone before the last sessions close:
         * their commands then belong to whichever peer takes the sagas over. */
        if (srv->runtime != NULL)
            runtime_instance_lost(srv->runtime, inst);
        else
            registry_remove(srv->registry, inst, NULL, NULL);
    }
    /* Requests still waiting lose their session; their answers are dropped. */
    while (s->reqs.next != &s->reqs) {
        struct req *r = s->reqs.next;
        r->prev->next = r->next;
        r->next->prev = r->prev;
        r->session = NULL;
    }
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        srv->sessions = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    free(s);
}

void session_close_all(struct server *srv)
{
    for (struct session *s = srv->sessions; s != NULL; s = s->next)
        conn_close(s->conn, 0, NULL); /* each unlinks itself from its close callback */
}

void session_sweep(struct server *srv, uint64_t now_ms)
{
    uint64_t limit = 3ull * srv->cfg.heartbeat_ms;
    struct session *s = srv->sessions;
    while (s != NULL) {
        struct session *next = s->next;
        if (s->closing_ms != 0) {
            /* A fatal Error the peer does not read: close without it. */
            if (now_ms > s->closing_ms + limit)
                conn_abort(s->conn);
        } else if ((s->state == S_PARTICIPANT || s->state == S_HELLO) &&
                   now_ms > s->last_seen_ms + limit) {
            fatal(s, SAGA_ETIMEDOUT, "no frame for %llu ms (three heartbeats): closing",
                  (unsigned long long)(now_ms - s->last_seen_ms));
        }
        s = next;
    }
}
