/* One TCP connection's byte I/O: bytes in become messages, messages out become
 * frames. Knows libuv and the codec; nothing about sessions, sagas or the store. */
#ifndef SAGAD_CONN_H
#define SAGAD_CONN_H

#include <stddef.h>
#include <uv.h>

#include "wire/msg.h"

struct conn;

/* Called once per decoded message. The callee owns `msg`'s contents and frees
 * them with wire_msg_free_contents(). May call conn_close(). */
typedef void (*conn_msg_cb)(struct conn *conn, struct wire_msg *msg);

/* Called once after the connection closed, for whatever reason, from the loop
 * (never from inside conn_send or conn_close): `status` is 0 for a local
 * conn_close() without error, SAGA_ECLOSED when the peer went away, else the
 * error. The conn is freed right after it returns. Between the start of the
 * close and this callback, conn_closing() is 1 and sends fail. */
typedef void (*conn_close_cb)(struct conn *conn, int status);

struct conn_config {
    size_t max_frame;         /* the decoder's limit; 0 = WIRE_MAX_FRAME_DEFAULT */
    size_t max_write_backlog; /* bytes queued for a slow reader before it is dropped */
};

/* Accepts the pending connection on `server`. On success *out is a new conn that
 * reads at once; it frees itself after `on_close` has run and libuv released
 * the handle. Returns 0, SAGA_ENOMEM or SAGA_EIO. */
int conn_accept(uv_stream_t *server, const struct conn_config *cfg, conn_msg_cb on_msg,
                conn_close_cb on_close, void *data, struct conn **out)
    __attribute__((warn_unused_result));

/* Queues `msg` as one frame. Returns 0; SAGA_ECLOSED once closing;
 * SAGA_ETOOBIG or SAGA_EINVAL when `msg` cannot be encoded (nothing is sent);
 * SAGA_EAGAIN when the write backlog is over its limit (the conn is then
 * closed: a reader that slow is treated as gone); SAGA_ENOMEM. */
int conn_send(struct conn *conn, const struct wire_msg *msg) __attribute__((warn_unused_result));

/* Closes the connection. With `code` < 0, a fatal Error frame carrying `code`
 * and `reason` is sent first and the socket closes once it is written. Safe to
 * call more than once and from inside the message callback. */
void conn_close(struct conn *conn, int code, const char *reason);

/* Closes the socket now, dropping whatever is still queued (a fatal Error a
 * peer does not read). A no-op once the handle is closing. */
void conn_abort(struct conn *conn);

/* Stops or resumes reading (backpressure). */
void conn_pause(struct conn *conn);
void conn_resume(struct conn *conn);

void *conn_data(const struct conn *conn);
void conn_set_data(struct conn *conn, void *data);

/* Writes `ss` as "host:port" ("?:0" for anything but IPv4 and IPv6). */
void conn_addr_text(const struct sockaddr_storage *ss, char *out, size_t size);

/* "host:port" of the peer, for logs. Owned by the conn. */
const char *conn_peer(const struct conn *conn);

/* 1 once conn_close() ran or the peer went away. */
int conn_closing(const struct conn *conn);

/* Bytes queued and not yet written. */
size_t conn_backlog(const struct conn *conn);

#endif
