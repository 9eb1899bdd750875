/* A fake coordinator for the SDK tests: a libuv TCP server on 127.0.0.1 that
 * speaks the wire codec, records every message it receives, answers the
 * handshake on its own when told to, and lets a test send, close and garble. */
#ifndef SAGA_TEST_FAKE_COORD_H
#define SAGA_TEST_FAKE_COORD_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "wire/codec.h"
#include "wire/msg.h"

#define FAKE_MAX_CONNS 32
#define FAKE_MAX_MSGS  256

struct fake;

struct fake_conn {
    struct fake *f;
    uv_tcp_t tcp;
    struct wire_decoder *dec;
    int closed;   /* we closed it, or the peer did */
    int peer_eof; /* the peer closed it */
    uint64_t accepted_ms;
    uint64_t closed_ms;
    struct wire_msg msgs[FAKE_MAX_MSGS];
    size_t n_msgs;
};

struct fake {
    uv_loop_t *loop;
    uv_tcp_t server;
    int port;
    char addr[64];
    struct fake_conn *conns[FAKE_MAX_CONNS];
    size_t n_conns;
    /* behaviour */
    int auto_hello;            /* answer Hello with HelloOk */
    int auto_ack;              /* answer Register with Ack */
    int auto_pong;             /* answer Ping with Pong */
    int close_on_accept;       /* close each connection at once */
    uint32_t heartbeat_ms;     /* in HelloOk */
    uint32_t max_payload;      /* in HelloOk; 0 = not said */
    uint32_t protocol_version; /* in HelloOk; 0 = 1 */
    const char *peers[4];
    size_t n_peers;
    /* called for every message after the automatic answers */
    void (*on_msg)(struct fake_conn *c, const struct wire_msg *m, void *data);
    void *data;
};

/* Listens on 127.0.0.1, a free port; returns 0 or a libuv error. */
int fake_start(struct fake *f, uv_loop_t *loop);
/* Closes the server and every connection, and frees what they recorded. */
void fake_stop(struct fake *f);
void fake_send(struct fake_conn *c, const struct wire_msg *m);
void fake_send_raw(struct fake_conn *c, const void *bytes, size_t n);
void fake_close_conn(struct fake_conn *c);
/* The last connection accepted, or NULL. */
struct fake_conn *fake_last(struct fake *f);
/* The n-th message of `type` received on c (0-based), or NULL. */
const struct wire_msg *fake_find(const struct fake_conn *c, enum wire_type type, size_t n);
size_t fake_count(const struct fake_conn *c, enum wire_type type);

/* Turns `loop` until done(arg) is true or timeout_ms passes; returns done(arg). */
int run_until(uv_loop_t *loop, int (*done)(void *arg), void *arg, unsigned timeout_ms);
/* Turns `loop` for ms milliseconds. */
void run_for(uv_loop_t *loop, unsigned ms);

#endif
