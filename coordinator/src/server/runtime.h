/* The runtime: the sagas this coordinator runs. It feeds events to the engine,
 * writes the records the engine asks for, and only once they are durable sends
 * the commands, answers the clients and wakes the waiters; it arms the engine's
 * timers, holds the leases, and resumes claimed sagas from the log.
 * May not touch sockets (it sends through sessions) or SQL (it calls the store). */
#ifndef SAGAD_RUNTIME_H
#define SAGAD_RUNTIME_H

#include <stdint.h>
#include <uv.h>

#include "store/store.h"
#include "wire/msg.h"

struct runtime;
struct registry;
struct instance;
struct req;

struct runtime_config {
    const char *coordinator_id;
    uint32_t max_payload; /* the largest saga input or step output */
    uint32_t lease_ms;    /* must match the store's */
    uint32_t max_wait_ms; /* the longest Wait a client may ask for */
    uint32_t claim_batch; /* sagas claimed per round */
    uint64_t seed;        /* backoff jitter */
};

struct runtime_stats {
    uint64_t started;
    uint64_t settled;
    uint64_t commands_sent;
    uint64_t replies;
    uint64_t replies_ignored;
    uint64_t write_failures;
    uint64_t claimed;
    uint64_t dropped;
    uint64_t active;   /* sagas in memory */
    uint64_t deferred; /* commands waiting for an instance */
};

int runtime_new(uv_loop_t *loop, const struct runtime_config *cfg, struct store *store,
                struct registry *registry, struct runtime **out)
    __attribute__((warn_unused_result));

/* Starts the lease work: claims this coordinator's own sagas (a restart under
 * the same id) and expired ones, then renews and claims periodically. */
void runtime_start_leases(struct runtime *rt);

/* Stops timers and claims, waits for writes in flight to finish (`cb` runs
 * then), then releases the leases it holds so peers may take over at once. */
void runtime_shutdown(struct runtime *rt, void (*cb)(void *data), void *data);

/* Drops every saga still in memory and frees the runtime once libuv released
 * its timer (run the loop); *rt is set to NULL. Call it after the store was
 * closed, so no store callback can reach it any more. */
void runtime_close(struct runtime **rt);

void runtime_get_stats(const struct runtime *rt, struct runtime_stats *out);

/* ---- client requests: each answers `req` exactly once (or drops it if its session closed) */

void runtime_define(struct runtime *rt, struct req *req, const struct wire_define *m);
void runtime_start(struct runtime *rt, struct req *req, const struct wire_start *m);
void runtime_get(struct runtime *rt, struct req *req, const uint8_t id[16]);
void runtime_wait(struct runtime *rt, struct req *req, const struct wire_wait *m);
void runtime_list(struct runtime *rt, struct req *req, const struct wire_list *m);
void runtime_watch(struct runtime *rt, struct req *req, const uint8_t id[16]);

enum runtime_op { RUNTIME_RETRY, RUNTIME_ABORT, RUNTIME_RESOLVE };
void runtime_operate(struct runtime *rt, struct req *req, enum runtime_op op, const uint8_t id[16],
                     saga_status_t as, const char *reason);

/* ---- participants */

/* A participant's Reply (matched by saga, step, op and attempt, whichever
 * instance sends it). Returns 0, or SAGA_ETOOBIG when its output is over the
 * payload limit: the output is not kept, and an OK to an action or prepare
 * counts as RETRY of a step that ran. */
int runtime_reply(struct runtime *rt, const struct wire_reply *m);

/* The 2pc in-doubt query; answers `req` with a Decision. */
void runtime_in_doubt(struct runtime *rt, struct req *req, const struct wire_in_doubt *m);

/* An instance registered or has room again: send what waits for it. */
void runtime_capacity(struct runtime *rt);

/* The instance's connection is gone: its commands in flight go elsewhere as
 * their next attempt. Removes it from the registry. */
void runtime_instance_lost(struct runtime *rt, struct instance *inst);

#endif
