/* One TCP connection to a coordinator: resolve, connect (with a timeout), read
 * frames through the wire decoder, write encoded frames. Knows the codec, not
 * what the messages mean: that is participant.c's and client.c's business. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct saga__conn {
    uv_loop_t *loop;
    const struct saga__conn_cbs *cbs;
    void *owner;
    char host[256];
    int port;
    unsigned connect_timeout_ms;
    size_t max_frame; /* what we send */
    struct wire_decoder *dec;

    uv_getaddrinfo_t gai;
    uv_connect_t connect_req;
    uv_timer_t timer; /* connect timeout */
    uv_tcp_t tcp;

    int refs;      /* libuv handles and requests still to come back */
    int resolving; /* the name lookup is in flight */
    int tcp_init;  /* tcp handle initialised (to be closed) */
    int connected; /* connect succeeded */
    int closing;   /* closed or failed: no more callbacks to the owner */
};

struct write_req {
    uv_write_t req;
    struct saga__conn *conn;
    struct wire_buf buf;
};

static void conn_unref(struct saga__conn *conn)
{
    if (--conn->refs > 0)
        return;
    wire_decoder_free(&conn->dec);
    free(conn);
}

static void on_handle_closed(uv_handle_t *h)
{
    conn_unref(h->data);
}

/* Starts closing every handle; the memory goes when the last one is back. */
static void conn_shutdown(struct saga__conn *conn)
{
    conn->closing = 1;
    if (!uv_is_closing((uv_handle_t *)&conn->timer))
        uv_close((uv_handle_t *)&conn->timer, on_handle_closed);
    if (conn->tcp_init && !uv_is_closing((uv_handle_t *)&conn->tcp))
        uv_close((uv_handle_t *)&conn->tcp, on_handle_closed);
}

static void conn_fail(struct saga__conn *conn, int err, const char *reason)
{
    if (conn->closing)
        return;
    conn_shutdown(conn);
    if (!conn->connected)
        err = SAGA_ECONNECT; /* refused, unresolvable, unreachable, timed out */
    conn->cbs->on_close(conn, err, reason, conn->owner);
}

void saga__conn_close(struct saga__conn *conn)
{
    if (conn == NULL || conn->closing)
        return;
    if (conn->resolving) {
        /* the resolver callback finds `closing` set and lets go */
        uv_cancel((uv_req_t *)&conn->gai);
    }
    conn_shutdown(conn);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct saga__conn *conn = h->data;
    uint8_t *area = NULL;
    size_t avail = 0;
    (void)suggested;
    if (conn->closing || wire_decoder_space(conn->dec, 64 * 1024, &area, &avail) != 0) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)area, (unsigned)(avail > 1u << 30 ? 1u << 30 : avail));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct saga__conn *conn = s->data;
    (void)buf;
    if (conn->closing)
        return;
    if (nread < 0) {
        if (nread == UV_EOF)
            conn_fail(conn, SAGA_ECLOSED, "closed by the coordinator");
        else if (nread == UV_ENOBUFS)
            conn_fail(conn, SAGA_ENOMEM, "no memory for incoming bytes");
        else
            conn_fail(conn, saga__uv_err((int)nread), uv_strerror((int)nread));
        return;
    }
    wire_decoder_commit(conn->dec, (size_t)nread);
    while (!conn->closing) {
        struct wire_msg msg;
        int rc = wire_decoder_next(conn->dec, &msg);
        if (rc == SAGA_EAGAIN)
            break;
        if (rc != 0) {
            conn_fail(conn, rc, wire_decoder_error(conn->dec));
            break;
        }
        conn->cbs->on_msg(conn, &msg, conn->owner);
    }
}

static void on_connected(uv_connect_t *req, int status)
{
    struct saga__conn *conn = req->data;
    if (status == UV_ECANCELED || conn->closing)
        return;
    if (status < 0) {
        conn_fail(conn, SAGA_ECONNECT, uv_strerror(status));
        return;
    }
    uv_timer_stop(&conn->timer);
    int rc = uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
    if (rc < 0) {
        conn_fail(conn, SAGA_EIO, uv_strerror(rc));
        return;
    }
    conn->connected = 1;
    conn->cbs->on_connect(conn, conn->owner);
}

static void start_connect(struct saga__conn *conn, const struct sockaddr *addr)
{
    int rc = uv_tcp_init(conn->loop, &conn->tcp);
    if (rc < 0) {
        conn_fail(conn, SAGA_EIO, uv_strerror(rc));
        return;
    }
    conn->tcp.data = conn;
    conn->tcp_init = 1;
    conn->refs++;
    uv_tcp_nodelay(&conn->tcp, 1);
    conn->connect_req.data = conn;
    rc = uv_tcp_connect(&conn->connect_req, &conn->tcp, addr, on_connected);
    if (rc < 0)
        conn_fail(conn, SAGA_ECONNECT, uv_strerror(rc));
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct saga__conn *conn = req->data;
    conn->resolving = 0;
    if (conn->closing) {
        uv_freeaddrinfo(res);
        conn_unref(conn);
        return;
    }
    if (status < 0 || res == NULL) {
        conn_fail(conn, SAGA_ECONNECT, status < 0 ? uv_strerror(status) : "no address");
    } else {
        start_connect(conn, res->ai_addr);
    }
    uv_freeaddrinfo(res);
    conn_unref(conn);
}

static void on_connect_timeout(uv_timer_t *t)
{
    struct saga__conn *conn = t->data;
    conn_fail(conn, SAGA_ETIMEDOUT, "connect timed out");
}

/* Runs on the loop right after open: failures found at once are reported
 * from here, never from inside saga__conn_open. */
static void on_start(uv_timer_t *t)
{
    struct saga__conn *conn = t->data;
    if (conn->closing)
        return;
    uv_timer_start(&conn->timer, on_connect_timeout,
                   conn->connect_timeout_ms > 0 ? conn->connect_timeout_ms : 5000, 0);

    struct sockaddr_storage ss;
    if (uv_ip4_addr(conn->host, conn->port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(conn->host, conn->port, (struct sockaddr_in6 *)&ss) == 0) {
        start_connect(conn, (const struct sockaddr *)&ss);
        return;
    }
    char port[16];
    snprintf(port, sizeof(port), "%d", conn->port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    conn->gai.data = conn;
    int rc = uv_getaddrinfo(conn->loop, &conn->gai, on_resolved, conn->host, port, &hints);
    if (rc < 0) {
        conn_fail(conn, SAGA_ECONNECT, uv_strerror(rc));
        return;
    }
    conn->resolving = 1;
    conn->refs++;
}

int saga__conn_open(uv_loop_t *loop, const char *host, int port, unsigned connect_timeout_ms,
                    const struct saga__conn_cbs *cbs, void *owner, struct saga__conn **out)
{
    *out = NULL;
    if (host == NULL || strlen(host) >= sizeof(((struct saga__conn *)0)->host) || port <= 0)
        return SAGA_EINVAL;
    struct saga__conn *conn = calloc(1, sizeof(*conn));
    if (conn == NULL)
        return SAGA_ENOMEM;
    int rc = wire_decoder_new(&conn->dec, SAGA__MAX_FRAME_IN);
    if (rc != 0)
        goto fail_conn;
    conn->loop = loop;
    conn->cbs = cbs;
    conn->owner = owner;
    memcpy(conn->host, host, strlen(host) + 1);
    conn->port = port;
    conn->connect_timeout_ms = connect_timeout_ms;
    conn->max_frame = WIRE_MAX_FRAME_DEFAULT;
    if (uv_timer_init(loop, &conn->timer) < 0) {
        rc = SAGA_EIO;
        goto fail_dec;
    }
    conn->timer.data = conn;
    conn->refs = 1;
    uv_timer_start(&conn->timer, on_start, 0, 0);
    *out = conn;
    return 0;
fail_dec:
    wire_decoder_free(&conn->dec);
fail_conn:
    free(conn);
    return rc;
}

void saga__conn_set_max_frame(struct saga__conn *conn, size_t max_frame)
{
    conn->max_frame = max_frame > 0 ? max_frame : WIRE_MAX_FRAME_DEFAULT;
}

static void on_written(uv_write_t *req, int status)
{
    struct write_req *wr = saga__container_of(req, struct write_req, req);
    struct saga__conn *conn = wr->conn;
    wire_buf_free(&wr->buf);
    free(wr);
    if (status < 0 && status != UV_ECANCELED)
        conn_fail(conn, saga__uv_err(status), uv_strerror(status));
}

int saga__conn_send_raw(struct saga__conn *conn, struct wire_buf *frame)
{
    if (conn->closing || !conn->connected)
        return SAGA_ECLOSED;
    struct write_req *wr = calloc(1, sizeof(*wr));
    if (wr == NULL)
        return SAGA_ENOMEM;
    wr->conn = conn;
    wr->buf = *frame;
    uv_buf_t b = uv_buf_init((char *)wr->buf.data, (unsigned)wr->buf.len);
    int rc = uv_write(&wr->req, (uv_stream_t *)&conn->tcp, &b, 1, on_written);
    if (rc < 0) {
        free(wr);
        return saga__uv_err(rc);
    }
    memset(frame, 0, sizeof(*frame));
    return 0;
}

int saga__conn_send(struct saga__conn *conn, const struct wire_msg *msg)
{
    if (conn->closing || !conn->connected)
        return SAGA_ECLOSED;
    struct wire_buf buf;
    wire_buf_init(&buf);
    int rc = wire_encode(msg, &buf, conn->max_frame);
    if (rc == 0)
        rc = saga__conn_send_raw(conn, &buf);
    wire_buf_free(&buf);
    return rc;
}
