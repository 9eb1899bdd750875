/* Names shared between libsaga's own files (prefix saga__); never installed.
 * Logging, small helpers, and the coordinator connection (conn.c). */
#ifndef SAGA_SDK_INTERNAL_H
#define SAGA_SDK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "saga/participant.h"
#include "wire/codec.h"
#include "wire/msg.h"

#define SAGA__MUST_CHECK                      __attribute__((warn_unused_result))
#define saga__container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* The largest frame the SDK accepts from a coordinator (it announces its own
 * limit for what we send; what it sends is trusted up to this). */
#define SAGA__MAX_FRAME_IN (64u * 1024 * 1024)

/* ---- log.c ----------------------------------------------------------------- */

struct saga__logger {
    saga_log_fn fn; /* NULL: stderr */
    void *data;
    saga_log_level_t min;
};

void saga__logger_init(struct saga__logger *lg, saga_log_fn fn, void *data, saga_log_level_t min);

/* One line: "saga=<saga> event=<event> <fmt...>" (saga left out when NULL). */
void saga__log(const struct saga__logger *lg, saga_log_level_t level, const char *saga,
               const char *event, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* `value` as a logfmt value in buf (quoted when it needs to be); returns buf. */
const char *saga__quote(char *buf, size_t size, const char *value);

/* ---- util.c ---------------------------------------------------------------- */

/* strdup that maps NULL to NULL. */
char *saga__strdup(const char *s);

/* A coordinator address: wire_addr_split() with a port other than 0.
 * Returns 0 or SAGA_EINVAL (then `host` may have been written). */
int saga__addr_parse(const char *text, char *host, size_t host_size, int *port) SAGA__MUST_CHECK;

/* Splits "a:1, b:2" into a malloc'd array of malloc'd "a:1", "b:2", each
 * checked with saga__addr_parse. Returns 0, SAGA_EINVAL (empty list or a bad
 * address) or SAGA_ENOMEM. Free with saga__strv_free. */
int saga__addr_list(const char *list, char ***out, size_t *n) SAGA__MUST_CHECK;
void saga__strv_free(char **v, size_t n);

/* A cheap xorshift generator for backoff jitter; *state never 0. */
uint64_t saga__rand(uint64_t *state);
uint64_t saga__seed(const void *salt);

/* Capped exponential backoff with jitter: a delay in [d/2, d] where
 * d = min(max_ms, min_ms * 2^failures). */
unsigned saga__backoff(unsigned min_ms, unsigned max_ms, unsigned failures, uint64_t *rng);

/* Maps a libuv error to a SAGA_E* code. */
int saga__uv_err(int uv_err);

/* ---- conn.c: one TCP connection carrying frames ------------------------------ */

struct saga__conn;

struct saga__conn_cbs {
    /* TCP is up: the owner sends its Hello. */
    void (*on_connect)(struct saga__conn *conn, void *owner);
    /* One decoded message; the callee owns its contents (wire_msg_free_contents). */
    void (*on_msg)(struct saga__conn *conn, struct wire_msg *msg, void *owner);
    /* The connection failed or the peer closed it: SAGA_ECONNECT before it
     * was up (the reason says why: refused, timed out, ...), else
     * SAGA_ECLOSED, SAGA_EIO, SAGA_EPROTO, SAGA_ETOOBIG. The conn is gone once
     * this returns. Never called after the owner closed it with
     * saga__conn_close(). */
    void (*on_close)(struct saga__conn *conn, int err, const char *reason, void *owner);
};

/* Starts connecting to host:port (a name is resolved without blocking).
 * `cbs` must outlive the conn. Returns 0 or SAGA_ENOMEM / SAGA_EINVAL; the
 * callbacks only ever run from the loop, never from inside this call. */
int saga__conn_open(uv_loop_t *loop, const char *host, int port, unsigned connect_timeout_ms,
                    const struct saga__conn_cbs *cbs, void *owner,
                    struct saga__conn **out) SAGA__MUST_CHECK;

/* Encodes and queues one frame. Returns 0, SAGA_ECLOSED, SAGA_EINVAL,
 * SAGA_ETOOBIG (over the limit set below) or SAGA_ENOMEM. */
int saga__conn_send(struct saga__conn *conn, const struct wire_msg *msg) SAGA__MUST_CHECK;

/* Queues an already encoded frame; takes `frame` (zeroed) on success. */
int saga__conn_send_raw(struct saga__conn *conn, struct wire_buf *frame) SAGA__MUST_CHECK;

/* The limit on frames this side sends (HelloOk.max_frame_bytes); 0 = default. */
void saga__conn_set_max_frame(struct saga__conn *conn, size_t max_frame);

/* Closes the connection without calling on_close; its memory is released on
 * a later turn of the loop. */
void saga__conn_close(struct saga__conn *conn);

#endif
