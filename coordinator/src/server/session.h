/* Sessions: the protocol of one connection (handshake, participant or client
 * role, heartbeats) on top of conn, and the requests a client is waiting on.
 * A request outlives its session safely: once the session is gone, answers to
 * it are dropped. */
#ifndef SAGAD_SESSION_H
#define SAGAD_SESSION_H

#include <stdint.h>
#include <uv.h>

#include "wire/msg.h"

struct session;
struct server;

/* One client request awaiting its answer. */
struct req;

/* Accepts a connection on `listener` for `srv`. Returns 0 or a SAGA_E* code. */
int session_accept(struct server *srv, uv_stream_t *listener) __attribute__((warn_unused_result));

/* Sends one message on the session's connection. Returns 0 or SAGA_ECLOSED,
 * SAGA_EAGAIN (the peer reads too slowly and is being dropped), SAGA_ETOOBIG. */
int session_send(struct session *s, const struct wire_msg *msg) __attribute__((warn_unused_result));

/* Closes every session (shutdown): participants and clients see the socket close. */
void session_close_all(struct server *srv);

/* Sends `msg` with the request's id as the final answer and frees the request;
 * *r is set to NULL. Dropped when the session is gone. */
void req_reply(struct req **r, struct wire_msg *msg);

/* Answers with an Error frame (code < 0, message) and frees the request. */
void req_fail(struct req **r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* req_fail for an operator command refused because another coordinator holds
 * the saga: the Error also carries that coordinator's HOST:PORT, which a
 * client may send the command to. */
void req_fail_held(struct req **r, const char *holder, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sends `msg` with the request's id without finishing the request (Watch).
 * Returns 0, or SAGA_ECLOSED once the session is gone. */
int req_send(struct req *r, struct wire_msg *msg) __attribute__((warn_unused_result));

/* 1 while the session that made the request is open. */
int req_alive(const struct req *r);

/* Frees a request without answering (its session is gone). */
void req_drop(struct req **r);

#endif
