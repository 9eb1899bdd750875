/* The fake coordinator of the SDK tests (see fake_coord.h). Test support only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_coord.h"

static void on_conn_closed(uv_handle_t *h)
{
    struct fake_conn *c = h->data;
    (void)c;
}

void fake_close_conn(struct fake_conn *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    c->closed_ms = uv_now(c->f->loop);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    free(req->data);
    free(req);
}

void fake_send_raw(struct fake_conn *c, const void *bytes, size_t n)
{
    if (c->closed)
        return;
    uv_write_t *req = malloc(sizeof(*req));
    void *copy = malloc(n);
    memcpy(copy, bytes, n);
    req->data = copy;
    uv_buf_t b = uv_buf_init(copy, (unsigned)n);
    if (uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(copy);
        free(req);
    }
}

void fake_send(struct fake_conn *c, const struct wire_msg *m)
{
    struct wire_buf buf;
    wire_buf_init(&buf);
    if (wire_encode(m, &buf, 0) == 0)
        fake_send_raw(c, buf.data, buf.len);
    wire_buf_free(&buf);
}

static void auto_answer(struct fake_conn *c, const struct wire_msg *m)
{
    struct fake *f = c->f;
    if (m->type == WIRE_HELLO && f->auto_hello) {
        struct wire_msg r = {.request_id = m->request_id, .type = WIRE_HELLO_OK};
        r.hello_ok.coordinator_id = "fake";
        r.hello_ok.peers = (char **)f->peers;
        r.hello_ok.n_peers = f->n_peers;
        r.hello_ok.heartbeat_interval_ms = f->heartbeat_ms;
        r.hello_ok.max_frame_bytes = 0;
        r.hello_ok.max_payload_bytes = f->max_payload;
        r.hello_ok.protocol_version = f->protocol_version ? f->protocol_version : 1;
        fake_send(c, &r);
    } else if (m->type == WIRE_REGISTER && f->auto_ack) {
        struct wire_msg r = {.request_id = m->request_id, .type = WIRE_ACK};
        fake_send(c, &r);
    } else if (m->type == WIRE_PING && f->auto_pong) {
        struct wire_msg r = {.request_id = m->request_id, .type = WIRE_PONG};
        r.pong.nonce = m->ping.nonce;
        fake_send(c, &r);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct fake_conn *c = h->data;
    uint8_t *area;
    size_t avail;
    (void)suggested;
    if (wire_decoder_space(c->dec, 65536, &area, &avail) != 0) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)area, (unsigned)avail);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct fake_conn *c = s->data;
    (void)buf;
    if (nread < 0) {
        c->peer_eof = 1;
        fake_close_conn(c);
        return;
    }
    wire_decoder_commit(c->dec, (size_t)nread);
    for (;;) {
        struct wire_msg m;
        int rc = wire_decoder_next(c->dec, &m);
        if (rc != 0) {
            if (rc != SAGA_EAGAIN)
                fake_close_conn(c);
            return;
        }
        if (c->n_msgs < FAKE_MAX_MSGS) {
            c->msgs[c->n_msgs++] = m;
        } else {
            wire_msg_free_contents(&m);
            continue;
        }
        const struct wire_msg *kept = &c->msgs[c->n_msgs - 1];
        auto_answer(c, kept);
        if (c->f->on_msg != NULL)
            c->f->on_msg(c, kept, c->f->data);
        if (c->closed)
            return;
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct fake *f = server->data;
    if (status < 0 || f->n_conns >= FAKE_MAX_CONNS)
        return;
    struct fake_conn *c = calloc(1, sizeof(*c));
    c->f = f;
    uv_tcp_init(f->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || wire_decoder_new(&c->dec, 0) != 0) {
        uv_close((uv_handle_t *)&c->tcp, NULL);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->accepted_ms = uv_now(f->loop);
    f->conns[f->n_conns++] = c;
    if (f->close_on_accept) {
        fake_close_conn(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int fake_start(struct fake *f, uv_loop_t *loop)
{
    f->loop = loop;
    int rc = uv_tcp_init(loop, &f->server);
    if (rc != 0)
        return rc;
    f->server.data = f;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    rc = uv_tcp_bind(&f->server, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&f->server, 64, on_connection);
    if (rc != 0)
        return rc;
    struct sockaddr_in bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(&f->server, (struct sockaddr *)&bound, &len);
    f->port = ntohs(bound.sin_port);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", f->port);
    return 0;
}

void fake_stop(struct fake *f)
{
    uv_close((uv_handle_t *)&f->server, NULL);
    for (size_t i = 0; i < f->n_conns; i++)
        fake_close_conn(f->conns[i]);
    run_for(f->loop, 10);
    for (size_t i = 0; i < f->n_conns; i++) {
        struct fake_conn *c = f->conns[i];
        for (size_t j = 0; j < c->n_msgs; j++)
            wire_msg_free_contents(&c->msgs[j]);
        wire_decoder_free(&c->dec);
        free(c);
    }
    f->n_conns = 0;
}

struct fake_conn *fake_last(struct fake *f)
{
    return f->n_conns > 0 ? f->conns[f->n_conns - 1] : NULL;
}

const struct wire_msg *fake_find(const struct fake_conn *c, enum wire_type type, size_t n)
{
    if (c == NULL)
        return NULL;
    for (size_t i = 0; i < c->n_msgs; i++) {
        if (c->msgs[i].type == type && n-- == 0)
            return &c->msgs[i];
    }
    return NULL;
}

size_t fake_count(const struct fake_conn *c, enum wire_type type)
{
    size_t n = 0;
    for (size_t i = 0; c != NULL && i < c->n_msgs; i++)
        n += c->msgs[i].type == type;
    return n;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

int run_until(uv_loop_t *loop, int (*done)(void *arg), void *arg, unsigned timeout_ms)
{
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 2, 2);
    uv_update_time(loop);
    uint64_t end = uv_now(loop) + timeout_ms;
    int ok;
    while (!(ok = done(arg)) && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

static int never(void *arg)
{
    (void)arg;
    return 0;
}

void run_for(uv_loop_t *loop, unsigned ms)
{
    (void)run_until(loop, never, NULL, ms);
}
