/* The participant: options, handler registry, one link per coordinator
 * (handshake, Register, heartbeats, reconnect with backoff), commands turned
 * into calls, replies sent back, in-doubt queries, stop and free. Handler
 * threads and completion are in call.c; bytes on the socket are conn.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "participant_int.h"

#define DEFAULT_RECONNECT_MIN_MS 100
#define DEFAULT_RECONNECT_MAX_MS 5000
#define DEFAULT_HEARTBEAT_MS     5000
#define DEFAULT_QUERY_MS         10000
#define SILENT_TICKS_DEAD        3

static void link_connect(struct saga__link *link);
static void link_close(struct saga__link *link, int err, const char *reason);
static void query_flush(saga_participant_t *p);
static void maybe_stopped(saga_participant_t *p);

/* ---- small things ------------------------------------------------------------ */

static uint64_t next_request(saga_participant_t *p)
{
    return ++p->next_request;
}

static struct saga__action *action_find(saga_participant_t *p, const char *name)
{
    for (size_t i = 0; i < p->n_actions; i++) {
        if (strcmp(p->actions[i].name, name) == 0)
            return &p->actions[i];
    }
    return NULL;
}

static saga_handler_fn handler_for(const struct saga__action *a, saga_op_t op)
{
    switch (op) {
    case SAGA_OP_ACTION:
        return a->h.action;
    case SAGA_OP_COMPENSATE:
        return a->h.compensate;
    case SAGA_OP_PREPARE:
        return a->h.prepare;
    case SAGA_OP_COMMIT:
        return a->h.commit;
    case SAGA_OP_ABORT:
        return a->h.abort;
    }
    return NULL;
}

static uint32_t ops_of(const struct saga__action *a)
{
    uint32_t ops = 0;
    for (int op = SAGA_OP_ACTION; op <= SAGA_OP_ABORT; op++) {
        if (handler_for(a, (saga_op_t)op) != NULL)
            ops |= WIRE_OP_BIT(op);
    }
    return ops;
}

static void on_handle_closed(uv_handle_t *h)
{
    saga_participant_t *p = h->data;
    p->handles--;
    maybe_stopped(p);
}

static void on_link_timer_closed(uv_handle_t *h)
{
    struct saga__link *link = h->data;
    saga_participant_t *p = link->p;
    p->handles--;
    maybe_stopped(p);
}

/* ---- links ------------------------------------------------------------------- */

static struct saga__link *link_new(saga_participant_t *p, const char *addr)
{
    struct saga__link *link = calloc(1, sizeof(*link));
    if (link == NULL)
        return NULL;
    link->p = p;
    link->addr = saga__strdup(addr);
    if (link->addr == NULL ||
        saga__addr_parse(addr, link->host, sizeof(link->host), &link->port) != 0) {
        free(link->addr);
        free(link);
        return NULL;
    }
    return link;
}

static int link_init_timers(struct saga__link *link)
{
    saga_participant_t *p = link->p;
    if (uv_timer_init(p->loop, &link->retry_timer) < 0)
        return SAGA_EIO;
    link->retry_timer.data = link;
    p->handles++;
    if (uv_timer_init(p->loop, &link->hb_timer) < 0) {
        uv_close((uv_handle_t *)&link->retry_timer, on_link_timer_closed);
        return SAGA_EIO;
    }
    link->hb_timer.data = link;
    p->handles++;
    link->timers_init = 1;
    return 0;
}

/* Adds a link for `addr` unless one exists (a retired one comes back);
 * connects it when attached. */
static void link_add(saga_participant_t *p, const char *addr)
{
    for (size_t i = 0; i < p->n_links; i++) {
        struct saga__link *old = p->links[i];
        if (strcmp(old->addr, addr) != 0)
            continue;
        if (old->state == SAGA__LINK_RETIRED && p->attached && !p->stopping) {
            saga__log(&p->log, SAGA_LOG_INFO, NULL, "coordinator.peer_added", "addr=%s", addr);
            old->failures = 0;
            link_connect(old);
        }
        return;
    }
    struct saga__link *link = link_new(p, addr);
    if (link == NULL) {
        saga__log(&p->log, SAGA_LOG_WARN, NULL, "coordinator.peer_ignored", "addr=%s", addr);
        return;
    }
    struct saga__link **v = realloc(p->links, (p->n_links + 1) * sizeof(*v));
    if (v == NULL) {
        free(link->addr);
        free(link);
        return;
    }
    p->links = v;
    p->links[p->n_links++] = link;
    if (p->attached && !p->stopping) {
        if (link_init_timers(link) != 0) {
            p->n_links--;
            free(link->addr);
            free(link);
            return;
        }
        saga__log(&p->log, SAGA_LOG_INFO, NULL, "coordinator.peer_added", "addr=%s", addr);
        link_connect(link);
    }
}

static void on_retry_timer(uv_timer_t *t)
{
    link_connect(t->data);
}

static void link_schedule_retry(struct saga__link *link)
{
    saga_participant_t *p = link->p;
    if (p->stopping || link->state == SAGA__LINK_RETIRED)
        return;
    unsigned delay =
        saga__backoff(p->reconnect_min_ms, p->reconnect_max_ms, link->failures, &p->rng);
    if (link->failures < 32)
        link->failures++;
    link->state = SAGA__LINK_IDLE;
    uv_timer_start(&link->retry_timer, on_retry_timer, delay, 0);
    saga__log(&p->log, SAGA_LOG_DEBUG, NULL, "coordinator.retry", "addr=%s delay_ms=%u", link->addr,
              delay);
}

static int link_send(struct saga__link *link, const struct wire_msg *msg)
{
    if (link->conn == NULL)
        return SAGA_ECLOSED;
    int rc = saga__conn_send(link->conn, msg);
    if (rc != 0)
        saga__log(&link->p->log, SAGA_LOG_WARN, NULL, "frame.not_sent", "addr=%s type=%s err=%s",
                  link->addr, wire_type_name(msg->type), saga_err_name(rc));
    return rc;
}

static void link_send_register(struct saga__link *link)
{
    saga_participant_t *p = link->p;
    struct wire_action *acts = NULL;
    if (p->n_actions > 0) {
        acts = calloc(p->n_actions, sizeof(*acts));
        if (acts == NULL) {
            link_close(link, SAGA_ENOMEM, "no memory for Register");
            return;
        }
    }
    for (size_t i = 0; i < p->n_actions; i++) {
        acts[i].name = p->actions[i].name;
        acts[i].ops = ops_of(&p->actions[i]);
    }
    struct wire_msg m = {.request_id = next_request(p), .type = WIRE_REGISTER};
    m.reg.actions = acts;
    m.reg.n_actions = p->n_actions;
    m.reg.max_in_flight = p->max_in_flight;
    link->register_req = m.request_id;
    (void)link_send(link, &m);
    free(acts);
}

static void on_heartbeat(uv_timer_t *t)
{
    struct saga__link *link = t->data;
    if (++link->silent >= SILENT_TICKS_DEAD) {
        char why[96];
        snprintf(why, sizeof(why), "no frame for %u heartbeat intervals of %u ms",
                 SILENT_TICKS_DEAD, link->hb_ms);
        link_close(link, SAGA_ETIMEDOUT, why);
        return;
    }
    if (link->state != SAGA__LINK_READY)
        return;
    struct wire_msg m = {.request_id = next_request(link->p), .type = WIRE_PING};
    m.ping.nonce = ++link->ping_nonce;
    (void)link_send(link, &m);
}

static void link_heartbeat_start(struct saga__link *link, unsigned ms)
{
    link->hb_ms = ms;
    link->silent = 0;
    uv_timer_start(&link->hb_timer, on_heartbeat, ms, ms);
}

/* The connection is gone (closed by either side): forget it, put its queries
 * back in line, and reconnect later. */
static void link_lost(struct saga__link *link, int err, const char *reason)
{
    saga_participant_t *p = link->p;
    int was_ready = link->state == SAGA__LINK_READY;
    link->conn = NULL;
    if (link->state != SAGA__LINK_RETIRED)
        link->state = SAGA__LINK_IDLE;
    uv_timer_stop(&link->hb_timer);
    for (struct saga__query *q = p->queries; q != NULL; q = q->next) {
        if (q->link == link) {
            q->link = NULL;
            q->request_id = 0;
        }
    }
    char quoted[256];
    if (was_ready) {
        p->stats.disconnects++;
        saga__log(&p->log, SAGA_LOG_WARN, NULL, "coordinator.lost", "addr=%s err=%s reason=%s",
                  link->addr, saga_err_name(err), saga__quote(quoted, sizeof(quoted), reason));
    } else {
        saga__log(&p->log, link->failures == 0 ? SAGA_LOG_WARN : SAGA_LOG_INFO, NULL,
                  "coordinator.connect_failed", "addr=%s err=%s reason=%s failures=%u", link->addr,
                  saga_err_name(err), saga__quote(quoted, sizeof(quoted), reason),
                  link->failures + 1);
    }
    link_schedule_retry(link);
    query_flush(p);
}

static void link_close(struct saga__link *link, int err, const char *reason)
{
    if (link->conn == NULL)
        return;
    saga__conn_close(link->conn);
    link_lost(link, err, reason);
}

/* A peer the coordinators no longer list: close it and stop reconnecting
 * (the link stays, in case the address comes back). */
static void link_retire(struct saga__link *link)
{
    saga_participant_t *p = link->p;
    saga__log(&p->log, SAGA_LOG_INFO, NULL, "coordinator.peer_removed", "addr=%s", link->addr);
    if (link->conn != NULL) {
        saga__conn_close(link->conn);
        link_lost(link, SAGA_ECLOSED, "no longer a peer");
    }
    uv_timer_stop(&link->retry_timer); /* link_lost armed it */
    link->state = SAGA__LINK_RETIRED;
}

static void on_conn_connect(struct saga__conn *conn, void *owner)
{
    struct saga__link *link = owner;
    saga_participant_t *p = link->p;
    (void)conn;
    struct wire_msg m = {.request_id = next_request(p), .type = WIRE_HELLO};
    m.hello.service = p->service;
    m.hello.instance_id = p->instance_id;
    m.hello.protocol_version = WIRE_PROTOCOL_VERSION;
    m.hello.auth_token = p->auth_token;
    m.hello.role = WIRE_ROLE_PARTICIPANT;
    link->state = SAGA__LINK_HELLO;
    link_heartbeat_start(link, p->heartbeat_ms);
    if (link_send(link, &m) != 0)
        link_close(link, SAGA_EIO, "cannot send Hello");
}

static void on_conn_close(struct saga__conn *conn, int err, const char *reason, void *owner)
{
    struct saga__link *link = owner;
    (void)conn;
    link_lost(link, err, reason);
}

static void handle_msg(struct saga__link *link, struct wire_msg *msg);

static void on_conn_msg(struct saga__conn *conn, struct wire_msg *msg, void *owner)
{
    struct saga__link *link = owner;
    (void)conn;
    link->silent = 0;
    handle_msg(link, msg);
    wire_msg_free_contents(msg);
}

static const struct saga__conn_cbs link_cbs = {
    .on_connect = on_conn_connect,
    .on_msg = on_conn_msg,
    .on_close = on_conn_close,
};

static void link_connect(struct saga__link *link)
{
    saga_participant_t *p = link->p;
    if (p->stopping)
        return;
    link->gen++;
    link->state = SAGA__LINK_CONNECTING;
    int rc = saga__conn_open(p->loop, link->host, link->port, p->connect_timeout_ms, &link_cbs,
                             link, &link->conn);
    if (rc != 0) {
        link->conn = NULL;
        saga__log(&p->log, SAGA_LOG_ERROR, NULL, "coordinator.connect_failed", "addr=%s err=%s",
                  link->addr, saga_err_name(rc));
        link_schedule_retry(link);
    }
}

/* ---- messages ------------------------------------------------------------------ */

static void send_reply(struct saga__link *link, uint64_t request_id, const struct wire_command *c,
                       uint32_t attempt, saga_outcome_t outcome, const uint8_t *out, size_t out_len,
                       const char *reason)
{
    struct wire_msg m = {.request_id = request_id, .type = WIRE_REPLY};
    memcpy(m.reply.saga_id, c->saga_id, WIRE_SAGA_ID_LEN);
    m.reply.step_index = c->step_index;
    m.reply.op = c->op;
    m.reply.attempt = attempt;
    m.reply.outcome = outcome;
    m.reply.output = (uint8_t *)out;
    m.reply.output_len = out_len;
    m.reply.error = (char *)reason;
    if (link_send(link, &m) == 0)
        link->p->stats.replies++;
    else
        link->p->stats.dropped++;
}

/* The link to answer `call` on: the connection the command came on, or else
 * a live connection to the same coordinator; NULL when there is none. */
static struct saga__link *reply_link(struct saga_call *call)
{
    saga_participant_t *p = call->p;
    struct saga__link *link = call->link;
    if (link != NULL && link->conn != NULL && link->gen == call->gen &&
        link->state == SAGA__LINK_READY)
        return link;
    if (call->coord_id[0] == '\0')
        return NULL;
    for (size_t i = 0; i < p->n_links; i++) {
        struct saga__link *l = p->links[i];
        if (l->state == SAGA__LINK_READY && strcmp(l->coord_id, call->coord_id) == 0)
            return l;
    }
    return NULL;
}

void saga__call_reply(struct saga_call *call)
{
    saga_participant_t *p = call->p;
    struct saga__link *link = reply_link(call);
    if (link == NULL) {
        p->stats.dropped++;
        saga__log(&p->log, SAGA_LOG_INFO, call->id_text, "reply.dropped",
                  "step=%s op=%s attempt=%u reason=connection_closed", call->cmd.step,
                  saga_op_name(call->cmd.op), call->reply_attempt);
        return;
    }
    saga__log(&p->log, SAGA_LOG_DEBUG, call->id_text, "reply",
              "step=%s op=%s attempt=%u outcome=%s", call->cmd.step, saga_op_name(call->cmd.op),
              call->reply_attempt, saga_outcome_name(call->outcome));
    send_reply(link, call->request_id, &call->cmd, call->reply_attempt, call->outcome, call->out,
               call->out_len, call->reason);
}

static void calls_unlink(saga_participant_t *p, struct saga_call *call)
{
    if (call->prev != NULL)
        call->prev->next = call->next;
    else
        p->calls = call->next;
    if (call->next != NULL)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
}

static void handle_command(struct saga__link *link, uint64_t request_id, struct wire_command *c)
{
    saga_participant_t *p = link->p;
    p->stats.commands++;
    char id_text[SAGA_ID_TEXT_LEN];
    saga_id_format(c->saga_id, id_text);

    struct saga__action *a = action_find(p, c->action);
    saga_handler_fn fn = a != NULL ? handler_for(a, c->op) : NULL;
    if (fn == NULL) {
        char text[256];
        snprintf(text, sizeof(text), "no handler for action %s op %s", c->action,
                 saga_op_name(c->op));
        saga__log(&p->log, SAGA_LOG_WARN, id_text, "command.no_handler", "action=%s op=%s",
                  c->action, saga_op_name(c->op));
        send_reply(link, request_id, c, c->attempt, SAGA_OUTCOME_RETRY, NULL, 0, text);
        return;
    }

    /* A command delivered again while the first delivery still runs (the
     * coordinator resends after a timeout, a reconnect or a failover, with a
     * higher attempt): run it once, and answer the newest delivery, on its
     * connection, with its attempt (protocol.md 7.2: the attempt is not for
     * deduplication). A call already completed has its answer on the way;
     * only an exact repeat of it is folded in. */
    for (struct saga_call *call = p->calls; call != NULL; call = call->next) {
        if (memcmp(call->cmd.saga_id, c->saga_id, WIRE_SAGA_ID_LEN) != 0 ||
            call->cmd.step_index != c->step_index || call->cmd.op != c->op ||
            strcmp(call->cmd.action, c->action) != 0)
            continue;
        uv_mutex_lock(&p->mu);
        int running = !call->done;
        uv_mutex_unlock(&p->mu);
        if (running || call->cmd.attempt == c->attempt) {
            call->link = link;
            call->gen = link->gen;
            call->request_id = request_id;
            call->reply_attempt = c->attempt;
            memcpy(call->coord_id, link->coord_id, sizeof(call->coord_id));
            saga__log(&p->log, SAGA_LOG_DEBUG, id_text, "command.duplicate",
                      "step=%s op=%s attempt=%u", c->step, saga_op_name(c->op), c->attempt);
            return;
        }
    }

    if (p->max_in_flight > 0 && p->stats.in_flight >= p->max_in_flight) {
        char text[96];
        snprintf(text, sizeof(text), "participant busy: %u commands in flight", p->max_in_flight);
        p->stats.refused++;
        send_reply(link, request_id, c, c->attempt, SAGA_OUTCOME_RETRY, NULL, 0, text);
        return;
    }

    struct saga_call *call = saga__call_new(p, c, fn, a->h.data);
    if (call == NULL) {
        send_reply(link, request_id, c, c->attempt, SAGA_OUTCOME_RETRY, NULL, 0,
                   "participant out of memory");
        return;
    }
    call->link = link;
    call->gen = link->gen;
    call->request_id = request_id;
    memcpy(call->coord_id, link->coord_id, sizeof(call->coord_id));
    call->next = p->calls;
    if (p->calls != NULL)
        p->calls->prev = call;
    p->calls = call;
    p->stats.in_flight++;
    saga__log(&p->log, SAGA_LOG_DEBUG, call->id_text, "command", "step=%s op=%s attempt=%u",
              call->cmd.step, saga_op_name(call->cmd.op), call->cmd.attempt);
    saga__call_dispatch(call);
}

static void handle_hello_ok(struct saga__link *link, const struct wire_hello_ok *h)
{
    saga_participant_t *p = link->p;
    if (h->protocol_version != WIRE_PROTOCOL_VERSION) {
        char why[64];
        snprintf(why, sizeof(why), "coordinator speaks protocol %u", h->protocol_version);
        link_close(link, SAGA_EVERSION, why);
        return;
    }
    link->state = SAGA__LINK_READY;
    link->failures = 0;
    snprintf(link->coord_id, sizeof(link->coord_id), "%s", h->coordinator_id);
    p->stats.connects++;
    link_heartbeat_start(link,
                         h->heartbeat_interval_ms > 0 ? h->heartbeat_interval_ms : p->heartbeat_ms);
    saga__conn_set_max_frame(link->conn, h->max_frame_bytes);
    if (h->max_payload_bytes > 0) {
        uv_mutex_lock(&p->mu);
        p->max_payload = h->max_payload_bytes;
        uv_mutex_unlock(&p->mu);
    }
    saga__log(&p->log, SAGA_LOG_INFO, NULL, "coordinator.ready",
              "addr=%s coordinator=%s heartbeat_ms=%u peers=%zu", link->addr, h->coordinator_id,
              link->hb_ms, h->n_peers);
    link_send_register(link);
    for (size_t i = 0; i < h->n_peers; i++)
        link_add(p, h->peers[i]);
    /* Peers learned earlier that the coordinators no longer list. An empty
     * list says nothing (a coordinator that does not know its peers). */
    for (size_t i = 0; i < p->n_links && h->n_peers > 0; i++) {
        struct saga__link *l = p->links[i];
        int listed = 0;
        for (size_t j = 0; j < h->n_peers && !listed; j++)
            listed = strcmp(h->peers[j], l->addr) == 0;
        if (!listed && !l->configured && l != link && l->state != SAGA__LINK_RETIRED)
            link_retire(l);
    }
    query_flush(p);
}

static struct saga__query *query_by_request(saga_participant_t *p, uint64_t request_id)
{
    for (struct saga__query *q = p->queries; q != NULL; q = q->next) {
        if (q->request_id == request_id && request_id != 0)
            return q;
    }
    return NULL;
}

static void query_finish(struct saga__query *q, int status, saga_decision_t decision);

static void handle_msg(struct saga__link *link, struct wire_msg *msg)
{
    saga_participant_t *p = link->p;
    char quoted[512];
    switch (msg->type) {
    case WIRE_HELLO_OK:
        if (link->state != SAGA__LINK_HELLO) {
            link_close(link, SAGA_EPROTO, "HelloOk out of turn");
            return;
        }
        handle_hello_ok(link, &msg->hello_ok);
        return;
    case WIRE_PING: {
        struct wire_msg m = {.request_id = msg->request_id, .type = WIRE_PONG};
        m.pong.nonce = msg->ping.nonce;
        (void)link_send(link, &m);
        return;
    }
    case WIRE_PONG:
        return;
    case WIRE_ACK:
        if (msg->request_id == link->register_req)
            saga__log(&p->log, SAGA_LOG_INFO, NULL, "registered", "addr=%s actions=%zu", link->addr,
                      p->n_actions);
        return;
    case WIRE_COMMAND:
        if (link->state != SAGA__LINK_READY) {
            link_close(link, SAGA_EPROTO, "Command before HelloOk");
            return;
        }
        handle_command(link, msg->request_id, &msg->command);
        return;
    case WIRE_DECISION: {
        struct saga__query *q = query_by_request(p, msg->request_id);
        if (q != NULL)
            query_finish(q, 0, (saga_decision_t)msg->decision.decision);
        return;
    }
    case WIRE_ERROR: {
        p->stats.errors++;
        int code = msg->error.code;
        saga__log(&p->log, msg->error.fatal ? SAGA_LOG_ERROR : SAGA_LOG_WARN, NULL,
                  "coordinator.error", "addr=%s code=%s fatal=%d message=%s", link->addr,
                  saga_err_name(code), msg->error.fatal ? 1 : 0,
                  saga__quote(quoted, sizeof(quoted), msg->error.message));
        struct saga__query *q = query_by_request(p, msg->request_id);
        if (q != NULL)
            query_finish(q, code, (saga_decision_t)0);
        if (msg->error.fatal)
            link_close(link, code, msg->error.message);
        return;
    }
    default: {
        char why[64];
        snprintf(why, sizeof(why), "unexpected %s", wire_type_name(msg->type));
        link_close(link, SAGA_EPROTO, why);
        return;
    }
    }
}

/* ---- in-doubt queries -------------------------------------------------------------- */

static void on_query_closed(uv_handle_t *h)
{
    struct saga__query *q = h->data;
    saga_participant_t *p = q->p;
    free(q);
    p->handles--;
    maybe_stopped(p);
}

static void query_finish(struct saga__query *q, int status, saga_decision_t decision)
{
    saga_participant_t *p = q->p;
    for (struct saga__query **pp = &p->queries; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == q) {
            *pp = q->next;
            break;
        }
    }
    uv_timer_stop(&q->timer);
    q->cb(p, status, decision, q->data);
    uv_close((uv_handle_t *)&q->timer, on_query_closed);
}

static void on_query_timeout(uv_timer_t *t)
{
    query_finish(t->data, SAGA_ETIMEDOUT, (saga_decision_t)0);
}

/* Sends every query not sent yet on a ready link. */
static void query_flush(saga_participant_t *p)
{
    if (p->stopping)
        return;
    struct saga__link *ready = NULL;
    for (size_t i = 0; i < p->n_links && ready == NULL; i++) {
        if (p->links[i]->state == SAGA__LINK_READY)
            ready = p->links[i];
    }
    if (ready == NULL)
        return;
    for (struct saga__query *q = p->queries; q != NULL; q = q->next) {
        if (q->request_id != 0)
            continue;
        struct wire_msg m = {.request_id = next_request(p), .type = WIRE_IN_DOUBT};
        memcpy(m.in_doubt.saga_id, q->saga_id, WIRE_SAGA_ID_LEN);
        m.in_doubt.step_index = q->step_index;
        if (link_send(ready, &m) == 0) {
            q->request_id = m.request_id;
            q->link = ready;
            q->gen = ready->gen;
        }
    }
}

SAGA_EXTERN int saga_participant_query_decision(saga_participant_t *p,
                                                const uint8_t saga_id[SAGA_ID_LEN],
                                                uint32_t step_index, unsigned timeout_ms,
                                                saga_decision_cb cb, void *data)
{
    if (p == NULL || saga_id == NULL || cb == NULL)
        return SAGA_EINVAL;
    if (!p->attached || p->stopping)
        return SAGA_ESTATE;
    struct saga__query *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return SAGA_ENOMEM;
    if (uv_timer_init(p->loop, &q->timer) < 0) {
        free(q);
        return SAGA_EIO;
    }
    p->handles++;
    q->p = p;
    q->timer.data = q;
    memcpy(q->saga_id, saga_id, SAGA_ID_LEN);
    q->step_index = step_index;
    q->cb = cb;
    q->data = data;
    uv_timer_start(&q->timer, on_query_timeout, timeout_ms > 0 ? timeout_ms : DEFAULT_QUERY_MS, 0);
    q->next = p->queries;
    p->queries = q;
    query_flush(p);
    return 0;
}

/* ---- lifecycle ----------------------------------------------------------------------- */

static void report_forgotten(saga_participant_t *p)
{
    for (struct saga_call *call = p->calls; call != NULL; call = call->next) {
        uv_mutex_lock(&p->mu);
        int forgotten = !call->done && !call->reported;
        if (forgotten)
            call->reported = 1;
        uv_mutex_unlock(&p->mu);
        if (!forgotten)
            continue;
        p->stats.forgotten++;
        saga__log(&p->log, SAGA_LOG_WARN, call->id_text, "call.forgotten",
                  "step=%s op=%s attempt=%u action=%s", call->cmd.step, saga_op_name(call->cmd.op),
                  call->cmd.attempt, call->cmd.action);
    }
}

static void drain_done(saga_participant_t *p)
{
    struct saga_call *call = saga__done_take(p);
    while (call != NULL) {
        struct saga_call *next = call->qnext;
        saga__call_reply(call);
        calls_unlink(p, call);
        p->stats.in_flight--;
        saga__call_free(call);
        call = next;
    }
}

static void destroy(saga_participant_t *p)
{
    saga__pool_stop(p);
    report_forgotten(p);
    while (p->calls != NULL) {
        struct saga_call *call = p->calls;
        calls_unlink(p, call);
        saga__call_free(call);
    }
    for (size_t i = 0; i < p->n_links; i++) {
        free(p->links[i]->addr);
        free(p->links[i]);
    }
    free(p->links);
    for (size_t i = 0; i < p->n_actions; i++)
        free(p->actions[i].name);
    free(p->actions);
    free(p->service);
    free(p->instance_id);
    free(p->auth_token);
    uv_cond_destroy(&p->cond);
    uv_mutex_destroy(&p->mu);
    free(p);
}

static void maybe_stopped(saga_participant_t *p)
{
    if (!p->stopping || p->stopped || p->handles > 0)
        return;
    p->stopped = 1;
    report_forgotten(p);
    saga__log(&p->log, SAGA_LOG_INFO, NULL, "participant.stopped", "forgotten=%llu",
              (unsigned long long)p->stats.forgotten);
    if (p->free_pending) {
        destroy(p);
        return;
    }
    if (p->on_stopped != NULL && p->loop != &p->own_loop)
        p->on_stopped(p, p->on_stopped_data);
}

static void begin_stop(saga_participant_t *p)
{
    if (p->stopping)
        return;
    p->stopping = 1;
    saga__log(&p->log, SAGA_LOG_INFO, NULL, "participant.stopping", "in_flight=%llu",
              (unsigned long long)p->stats.in_flight);
    while (p->queries != NULL)
        query_finish(p->queries, SAGA_ECANCELED, (saga_decision_t)0);
    drain_done(p);
    for (size_t i = 0; i < p->n_links; i++) {
        struct saga__link *link = p->links[i];
        if (link->conn != NULL)
            saga__conn_close(link->conn);
        link->conn = NULL;
        link->state = SAGA__LINK_IDLE;
        if (link->timers_init) {
            link->timers_init = 0;
            uv_close((uv_handle_t *)&link->retry_timer, on_link_timer_closed);
            uv_close((uv_handle_t *)&link->hb_timer, on_link_timer_closed);
        }
    }
    uv_mutex_lock(&p->mu);
    atomic_store(&p->async_live, 0);
    uv_mutex_unlock(&p->mu);
    uv_close((uv_handle_t *)&p->async, on_handle_closed);
}

static void on_async(uv_async_t *a)
{
    saga_participant_t *p = a->data;
    drain_done(p);
    if (atomic_load(&p->stop_requested))
        begin_stop(p);
}

static char *default_instance_id(void)
{
    char host[256];
    size_t size = sizeof(host);
    if (uv_os_gethostname(host, &size) != 0)
        memcpy(host, "localhost", sizeof("localhost"));
    char buf[300];
    snprintf(buf, sizeof(buf), "%s:%d", host, (int)uv_os_getpid());
    return saga__strdup(buf);
}

SAGA_EXTERN saga_participant_t *saga_participant_new(const saga_participant_options_t *o)
{
    struct saga__logger lg;
    if (o == NULL)
        return NULL;
    saga__logger_init(&lg, o->log, o->log_data, o->log_level);
    if (o->service == NULL || o->service[0] == '\0') {
        saga__log(&lg, SAGA_LOG_ERROR, NULL, "participant.invalid", "reason=no_service");
        return NULL;
    }
    char **addrs = NULL;
    size_t n_addrs = 0;
    if (saga__addr_list(o->coordinators, &addrs, &n_addrs) != 0) {
        char q[256];
        saga__log(&lg, SAGA_LOG_ERROR, NULL, "participant.invalid",
                  "reason=bad_coordinators coordinators=%s",
                  saga__quote(q, sizeof(q), o->coordinators));
        return NULL;
    }
    saga_participant_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        goto fail_addrs;
    p->log = lg;
    p->service = saga__strdup(o->service);
    p->instance_id = o->instance_id != NULL && o->instance_id[0] != '\0'
                         ? saga__strdup(o->instance_id)
                         : default_instance_id();
    p->auth_token = saga__strdup(o->auth_token != NULL ? o->auth_token : "");
    if (p->service == NULL || p->instance_id == NULL || p->auth_token == NULL)
        goto fail_strings;
    p->max_in_flight = o->max_in_flight;
    p->threads = o->threads;
    p->reconnect_min_ms = o->reconnect_min_ms > 0 ? o->reconnect_min_ms : DEFAULT_RECONNECT_MIN_MS;
    p->reconnect_max_ms = o->reconnect_max_ms > 0 ? o->reconnect_max_ms : DEFAULT_RECONNECT_MAX_MS;
    if (p->reconnect_max_ms < p->reconnect_min_ms)
        p->reconnect_max_ms = p->reconnect_min_ms;
    p->connect_timeout_ms = o->connect_timeout_ms;
    p->heartbeat_ms = o->heartbeat_ms > 0 ? o->heartbeat_ms : DEFAULT_HEARTBEAT_MS;
    p->on_stopped = o->on_stopped;
    p->on_stopped_data = o->on_stopped_data;
    p->rng = saga__seed(p);
    p->max_payload = WIRE_MAX_FRAME_DEFAULT / 2;
    if (uv_mutex_init(&p->mu) != 0)
        goto fail_strings;
    if (uv_cond_init(&p->cond) != 0)
        goto fail_mutex;
    for (size_t i = 0; i < n_addrs; i++) {
        link_add(p, addrs[i]);
        struct saga__link *added = NULL;
        for (size_t k = 0; k < p->n_links && added == NULL; k++) {
            if (strcmp(p->links[k]->addr, addrs[i]) == 0)
                added = p->links[k];
        }
        if (added == NULL)
            goto fail_links;
        added->configured = 1;
    }
    saga__strv_free(addrs, n_addrs);
    return p;

fail_links:
    for (size_t i = 0; i < p->n_links; i++) {
        free(p->links[i]->addr);
        free(p->links[i]);
    }
    free(p->links);
    uv_cond_destroy(&p->cond);
fail_mutex:
    uv_mutex_destroy(&p->mu);
fail_strings:
    free(p->service);
    free(p->instance_id);
    free(p->auth_token);
    free(p);
fail_addrs:
    saga__strv_free(addrs, n_addrs);
    return NULL;
}

SAGA_EXTERN int saga_participant_on(saga_participant_t *p, const char *action,
                                    const saga_handlers_t *h)
{
    if (p == NULL || action == NULL || action[0] == '\0' || h == NULL)
        return SAGA_EINVAL;
    if (h->action == NULL && h->compensate == NULL && h->prepare == NULL && h->commit == NULL &&
        h->abort == NULL)
        return SAGA_EINVAL;
    struct saga__action *a = action_find(p, action);
    if (a == NULL) {
        char *name = saga__strdup(action);
        if (name == NULL)
            return SAGA_ENOMEM;
        struct saga__action *v = realloc(p->actions, (p->n_actions + 1) * sizeof(*v));
        if (v == NULL) {
            free(name);
            return SAGA_ENOMEM;
        }
        p->actions = v;
        a = &p->actions[p->n_actions++];
        a->name = name;
    }
    a->h = *h;
    if (p->attached && !p->stopping) {
        for (size_t i = 0; i < p->n_links; i++) {
            if (p->links[i]->state == SAGA__LINK_READY)
                link_send_register(p->links[i]);
        }
    }
    return 0;
}

SAGA_EXTERN int saga_participant_attach_uv(saga_participant_t *p, struct uv_loop_s *loop)
{
    if (p == NULL || loop == NULL)
        return SAGA_EINVAL;
    if (p->attached || p->stopping)
        return SAGA_ESTATE;
    p->loop = loop;
    if (uv_async_init(loop, &p->async, on_async) < 0)
        return SAGA_EIO;
    p->async.data = p;
    p->handles++;
    atomic_store(&p->async_live, 1);
    p->attached = 1;
    int rc = saga__pool_start(p);
    for (size_t i = 0; i < p->n_links && rc == 0; i++)
        rc = link_init_timers(p->links[i]);
    if (rc != 0) {
        /* Close what was opened; the application's loop finishes it. */
        atomic_store(&p->stop_requested, 1);
        begin_stop(p);
        return rc;
    }
    for (size_t i = 0; i < p->n_links; i++)
        link_connect(p->links[i]);
    if (atomic_load(&p->stop_requested))
        uv_async_send(&p->async);
    return 0;
}

SAGA_EXTERN int saga_participant_run(saga_participant_t *p)
{
    if (p == NULL)
        return SAGA_EINVAL;
    if (p->attached)
        return SAGA_ESTATE;
    if (uv_loop_init(&p->own_loop) != 0)
        return SAGA_EIO;
    int rc = saga_participant_attach_uv(p, &p->own_loop);
    uv_run(&p->own_loop, UV_RUN_DEFAULT);
    uv_loop_close(&p->own_loop);
    return rc;
}

SAGA_EXTERN void saga_participant_stop(saga_participant_t *p)
{
    if (p == NULL)
        return;
    atomic_store(&p->stop_requested, 1);
    if (atomic_load(&p->async_live))
        uv_async_send(&p->async);
}

SAGA_EXTERN void saga_participant_free(saga_participant_t **pp)
{
    if (pp == NULL || *pp == NULL)
        return;
    saga_participant_t *p = *pp;
    *pp = NULL;
    if (p->attached && !p->stopped) {
        /* Still on the loop: close everything; the last close frees. */
        p->free_pending = 1;
        atomic_store(&p->stop_requested, 1);
        begin_stop(p);
        return;
    }
    destroy(p);
}

SAGA_EXTERN void saga_participant_stats(const saga_participant_t *p, saga_participant_stats_t *out)
{
    if (p == NULL || out == NULL)
        return;
    *out = p->stats;
}

SAGA_EXTERN const char *saga_participant_instance_id(const saga_participant_t *p)
{
    return p->instance_id;
}
