/* One TCP connection's byte I/O on libuv: the decoder fed straight from libuv's
 * read buffers, and double-buffered writes (one frame batch on the wire, the
 * next filling behind it). May not touch sessions, sagas or the store. */
#include "server/conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "saga/error.h"
#include "wire/codec.h"

#define READ_CHUNK 65536

struct conn {
    uv_tcp_t tcp;
    uv_write_t write_req;
    struct wire_decoder *decoder;
    struct wire_buf pending; /* frames queued since the last write started */
    struct wire_buf writing; /* frames handed to libuv */
    size_t max_frame;
    size_t max_backlog;
    conn_msg_cb on_msg;
    conn_close_cb on_close;
    void *data;
    int closing;
    int close_after_write; /* a fatal Error frame is on its way */
    int write_active;
    int reading;
    int close_status;
    char peer[64];
};

static void conn_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);
static void conn_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void conn_write_cb(uv_write_t *req, int status);
static void conn_closed_cb(uv_handle_t *handle);
static void conn_start_write(struct conn *conn);
static void conn_begin_close(struct conn *conn, int status);

void conn_addr_text(const struct sockaddr_storage *ss, char *out, size_t size)
{
    char host[64] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        uv_ip4_name(in, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        uv_ip6_name(in6, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    }
    snprintf(out, size, "%s:%d", host, port);
}

static void peer_name(uv_tcp_t *tcp, char *out, size_t size)
{
    struct sockaddr_storage ss = {0};
    int len = sizeof(ss);
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0)
        ss.ss_family = AF_UNSPEC;
    conn_addr_text(&ss, out, size);
}

int conn_accept(uv_stream_t *server, const struct conn_config *cfg, conn_msg_cb on_msg,
                conn_close_cb on_close, void *data, struct conn **out)
{
    struct conn *conn = calloc(1, sizeof(*conn));
    if (conn == NULL)
        return SAGA_ENOMEM;
    conn->max_frame = cfg->max_frame ? cfg->max_frame : WIRE_MAX_FRAME_DEFAULT;
    conn->max_backlog = cfg->max_write_backlog ? cfg->max_write_backlog : 64u * 1024 * 1024;
    conn->on_msg = on_msg;
    conn->on_close = on_close;
    conn->data = data;
    int err = wire_decoder_new(&conn->decoder, conn->max_frame);
    if (err != 0)
        goto fail_free;
    if (uv_tcp_init(server->loop, &conn->tcp) != 0) {
        err = SAGA_EIO;
        goto fail_decoder;
    }
    if (uv_accept(server, (uv_stream_t *)&conn->tcp) != 0) {
        /* The handle is live: free through the close callback. */
        conn->closing = 1;
        conn->on_close = NULL;
        uv_close((uv_handle_t *)&conn->tcp, conn_closed_cb);
        return SAGA_EIO;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    peer_name(&conn->tcp, conn->peer, sizeof(conn->peer));
    if (uv_read_start((uv_stream_t *)&conn->tcp, conn_alloc_cb, conn_read_cb) != 0) {
        conn->closing = 1;
        conn->on_close = NULL;
        uv_close((uv_handle_t *)&conn->tcp, conn_closed_cb);
        return SAGA_EIO;
    }
    conn->reading = 1;
    *out = conn;
    return 0;

fail_decoder:
    wire_decoder_free(&conn->decoder);
fail_free:
    free(conn);
    return err;
}

static void conn_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct conn *conn = container_of((uv_tcp_t *)handle, struct conn, tcp);
    (void)suggested;
    uint8_t *area = NULL;
    size_t avail = 0;
    if (wire_decoder_space(conn->decoder, READ_CHUNK, &area, &avail) != 0) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS to the read callback */
        return;
    }
    *buf = uv_buf_init((char *)area, (unsigned int)(avail > UINT32_MAX ? UINT32_MAX : avail));
}

static void conn_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *conn = container_of((uv_tcp_t *)stream, struct conn, tcp);
    (void)buf;
    if (nread < 0) {
        if (nread == UV_ENOBUFS) {
            conn_close(conn,
                       wire_decoder_status(conn->decoder) ? wire_decoder_status(conn->decoder)
                                                          : SAGA_ENOMEM,
                       wire_decoder_status(conn->decoder) ? wire_decoder_error(conn->decoder)
                                                          : "out of memory for the read buffer");
            return;
        }
        conn_begin_close(conn, nread == UV_EOF ? SAGA_ECLOSED : SAGA_EIO);
        return;
    }
    if (nread == 0)
        return;
    wire_decoder_commit(conn->decoder, (size_t)nread);
    while (!conn->closing && conn->reading) {
        struct wire_msg msg;
        int rc = wire_decoder_next(conn->decoder, &msg);
        if (rc == SAGA_EAGAIN)
            break;
        if (rc != 0) {
            char detail[160];
            log_warn(NULL, "conn.bad_frame", "peer=%s error=%s detail=%s", conn->peer,
                     saga_err_name(rc),
                     log_quote(detail, sizeof(detail), wire_decoder_error(conn->decoder)));
            conn_close(conn, rc, wire_decoder_error(conn->decoder));
            return;
        }
        conn->on_msg(conn, &msg);
    }
}

int conn_send(struct conn *conn, const struct wire_msg *msg)
{
    if (conn->closing)
        return SAGA_ECLOSED;
    int err = wire_encode(msg, &conn->pending, conn->max_frame);
    if (err != 0)
        return err;
    if (conn->pending.len + conn->writing.len > conn->max_backlog) {
        log_warn(NULL, "conn.slow_reader", "peer=%s backlog=%zu", conn->peer,
                 conn->pending.len + conn->writing.len);
        conn_begin_close(conn, SAGA_EAGAIN);
        return SAGA_EAGAIN;
    }
    if (!conn->write_active)
        conn_start_write(conn);
    return 0;
}

static void conn_start_write(struct conn *conn)
{
    struct wire_buf tmp = conn->writing;
    conn->writing = conn->pending;
    conn->pending = tmp;
    conn->pending.len = 0;
    uv_buf_t buf = uv_buf_init((char *)conn->writing.data, (unsigned int)conn->writing.len);
    if (uv_write(&conn->write_req, (uv_stream_t *)&conn->tcp, &buf, 1, conn_write_cb) != 0) {
        conn->writing.len = 0;
        conn_begin_close(conn, SAGA_EIO);
        return;
    }
    conn->write_active = 1;
}

static void conn_write_cb(uv_write_t *req, int status)
{
    struct conn *conn = container_of(req, struct conn, write_req);
    conn->write_active = 0;
    conn->writing.len = 0;
    if (status == UV_ECANCELED)
        return; /* the handle is closing */
    if (status < 0) {
        conn_begin_close(conn, SAGA_EIO);
        return;
    }
    if (conn->pending.len > 0 && (!conn->closing || conn->close_after_write)) {
        conn_start_write(conn);
        return;
    }
    if (conn->close_after_write && !uv_is_closing((uv_handle_t *)&conn->tcp))
        uv_close((uv_handle_t *)&conn->tcp, conn_closed_cb);
}

/* Marks the conn closing and tells the owner once; the handle closes now, or
 * after the final frame is written when close_after_write is set. */
static void conn_begin_close(struct conn *conn, int status)
{
    if (conn->closing) {
        /* A failure while flushing the last frame: close at once. */
        if (!uv_is_closing((uv_handle_t *)&conn->tcp) && status != 0) {
            conn->close_after_write = 0;
            uv_close((uv_handle_t *)&conn->tcp, conn_closed_cb);
        }
        return;
    }
    conn->closing = 1;
    conn->close_status = status;
    if (conn->reading) {
        uv_read_stop((uv_stream_t *)&conn->tcp);
        conn->reading = 0;
    }
    if (!conn->close_after_write)
        uv_close((uv_handle_t *)&conn->tcp, conn_closed_cb);
}

void conn_close(struct conn *conn, int code, const char *reason)
{
    if (conn->closing)
        return;
    if (code < 0) {
        struct wire_msg msg = {.type = WIRE_ERROR};
        msg.error.code = code;
        msg.error.message = (char *)(reason ? reason : saga_strerror(code));
        msg.error.fatal = true;
        if (wire_encode(&msg, &conn->pending, conn->max_frame) == 0) {
            conn->close_after_write = 1;
            if (!conn->write_active)
                conn_start_write(conn);
            if (!conn->write_active)
                conn->close_after_write = 0; /* the write failed to start */
        }
    }
    conn_begin_close(conn, code);
}

static void conn_closed_cb(uv_handle_t *handle)
{
    struct conn *conn = container_of((uv_tcp_t *)handle, struct conn, tcp);
    if (conn->on_close != NULL)
        conn->on_close(conn, conn->close_status);
    wire_decoder_free(&conn->decoder);
    wire_buf_free(&conn->pending);
    wire_buf_free(&conn->writing);
    free(conn);
}

void conn_abort(struct conn *conn)
{
    if (uv_is_closing((uv_handle_t *)&conn->tcp))
        return;
    if (!conn->closing) {
        conn->closing = 1;
        conn->close_status = SAGA_ECANCELED;
    }
    conn->close_after_write = 0;
    if (conn->reading) {
        uv_read_stop((uv_stream_t *)&conn->tcp);
        conn->reading = 0;
    }
    uv_close((uv_handle_t *)&conn->tcp, conn_closed_cb);
}

void conn_pause(struct conn *conn)
{
    if (conn->reading) {
        uv_read_stop((uv_stream_t *)&conn->tcp);
        conn->reading = 0;
    }
}

void conn_resume(struct conn *conn)
{
    if (!conn->reading && !conn->closing) {
        if (uv_read_start((uv_stream_t *)&conn->tcp, conn_alloc_cb, conn_read_cb) == 0)
            conn->reading = 1;
    }
}

void *conn_data(const struct conn *conn)
{
    return conn->data;
}

void conn_set_data(struct conn *conn, void *data)
{
    conn->data = data;
}

const char *conn_peer(const struct conn *conn)
{
    return conn->peer;
}

int conn_closing(const struct conn *conn)
{
    return conn->closing;
}

size_t conn_backlog(const struct conn *conn)
{
    return conn->pending.len + conn->writing.len;
}
