/* What the runtime's own files (runtime.c, runtime_read.c, runtime_client.c)
 * share: the sagas in memory, the waiters, the definition cache, and the
 * functions that cross between them. Nothing outside the runtime includes it. */
#ifndef SAGAD_RUNTIME_INT_H
#define SAGAD_RUNTIME_INT_H

#include <stdint.h>

#include "engine/definition.h"
#include "engine/effects.h"
#include "engine/saga.h"
#include "server/registry.h"
#include "server/runtime.h"
#include "server/timerq.h"

enum rtimer_kind { RT_STEP = 1, RT_DEADLINE, RT_WAITER, RT_RENEW, RT_CLAIM };

struct rtimer {
    struct timerq_timer t;
    enum rtimer_kind kind;
};

struct rsaga;

struct rstep {
    struct rsaga *saga;
    struct rtimer timer;       /* the engine's TIMEOUT or BACKOFF timer for this step */
    struct saga_timer pending; /* what `timer` stands for */
    struct inflight inflight;  /* the command, while an instance holds it */
    struct rstep *dnext;       /* the deferred list, while no instance can take it */
    struct rstep *dprev;
    int deferred;
    int oversize; /* the command cannot fit in a frame: fail it from the timer */
    saga_op_t op; /* the command last dispatched */
    uint32_t attempt;
    uint32_t timeout_ms;
    uint64_t started_ms;  /* as logged: the first dispatch */
    uint64_t finished_ms; /* as logged: the last result that ended the step, or 0 */
};

struct waiter;

struct rsaga {
    struct rsaga *hnext;
    struct saga_id id;
    char id_text[37];
    struct saga *engine;
    const struct definition *def;
    uint64_t epoch;
    struct rtimer deadline;
    unsigned writes; /* store writes in flight */
    int in_map;
    int dropped; /* no more events; freed once its writes are done */
    int claimed; /* taken from the log: step times before that are not known here */
    uint64_t created_ms;
    struct waiter *waiters;
    uint16_t n_steps;
    struct rstep steps[];
};

/* A Wait or a Watch: polls the log until the saga settles or time runs out;
 * a local saga nudges it at once when it settles or writes. */
struct waiter {
    struct waiter *next; /* in the runtime's list */
    struct waiter *prev;
    struct waiter *snext; /* in its rsaga's list, while the saga is local */
    struct runtime *rt;
    struct req *req;
    struct rsaga *rs;
    struct rtimer timer;
    struct saga_id id;
    uint64_t until_ms; /* Wait: answer with the state at this time */
    uint32_t last_seq; /* Watch: events sent so far */
    int watch;
    int busy;  /* a read is in flight */
    int again; /* a nudge came while it was: read once more at once */
    int done;
};

struct defentry {
    struct defentry *next;
    struct definition *def;
};

/* The latest version of a definition, as last read: starts that ask for the
 * latest use it for LATEST_TTL_MS before reading the log again, so a version
 * defined on another coordinator is picked up within that time. */
struct latest {
    struct latest *next;
    const struct definition *def;
    uint64_t read_ms;
};

#define LATEST_TTL_MS 1000

enum wkind { W_EVENT, W_CREATE, W_OPERATE };

/* One store write in flight and what waits on its commit. */
struct wctx {
    struct runtime *rt;
    struct rsaga *rs;
    struct req *req;
    enum wkind kind;
    unsigned settled;
    uint32_t n_commands;
    struct saga_command commands[];
};

struct runtime {
    uv_loop_t *loop;
    struct runtime_config cfg;
    char *coordinator_id;
    struct store *store;
    struct registry *registry;
    struct timerq timers;
    struct effects fx;
    struct saga_rng rng;
    struct rsaga **map;
    size_t map_size;
    size_t map_count;
    struct rstep *deferred;
    struct waiter waiters; /* list head */
    struct defentry *defs;
    struct latest *latest;
    struct rtimer renew;
    struct rtimer claim;
    int claim_busy;
    int claim_own_done;
    int shutting_down;
    unsigned writes; /* store writes in flight, all sagas */
    void (*shutdown_cb)(void *data);
    void *shutdown_data;
    struct runtime_stats stats;
};

/* ---- runtime.c: the sagas in memory */

uint64_t rt_now_ms(void);
struct rsaga *rt_map_find(const struct runtime *rt, const uint8_t id[16]);
int rt_map_insert(struct runtime *rt, struct rsaga *rs) __attribute__((warn_unused_result));
void rt_map_remove(struct runtime *rt, struct rsaga *rs);

/* The definition cache: parsed definitions live as long as the runtime. */
const struct definition *rt_def_cached(const struct runtime *rt, const char *name,
                                       uint32_t version);
const struct definition *rt_def_keep(struct runtime *rt, struct definition **def);
const struct definition *rt_def_from_store(struct runtime *rt, const struct store_definition *sd);
struct latest *rt_latest_find(const struct runtime *rt, const char *name);
const struct definition *rt_latest_fresh(const struct runtime *rt, const char *name, uint64_t now);
void rt_latest_note(struct runtime *rt, const struct definition *def, uint64_t now);

struct rsaga *rt_saga_new(const struct definition *def, const struct saga_id *id, uint64_t epoch);
/* Takes a saga out of service; freed once its writes are done. */
void rt_saga_drop(struct runtime *rt, struct rsaga *rs);
/* Hands rt->fx on: timers now, records to the store, commands and the answer
 * to `req` once durable. */
void rt_saga_apply(struct runtime *rt, struct rsaga *rs, struct req *req, enum wkind kind,
                   const struct store_create *create);
/* Notes the times fx's records give the log (created, step started/finished). */
void rt_saga_note_times(struct rsaga *rs, const struct effects *fx);
/* Drops a saga whose log write failed and has the store claim it again. */
void rt_saga_release(struct runtime *rt, struct rsaga *rs);
void rt_on_reclaimed(const struct store_claim *c, int status);

/* ---- runtime_read.c: Get, Wait, Watch */

/* Answers `req` with the saga's SagaInfo read from the log. */
void rt_answer_with_view(struct runtime *rt, struct req *req, const struct saga_id *id);
enum rt_nudge {
    RT_NUDGE_WRITE = 0,           /* a write committed: watchers read the new events */
    RT_NUDGE_SETTLED = 1,         /* the saga left (or settled): every waiter reads the log */
    RT_NUDGE_SETTLED_DURABLE = 2, /* the write that settled it committed: a Wait is
                                     answered from memory, watchers read the log */
};

void rt_waiter_nudge_all(struct rsaga *rs, enum rt_nudge why);
void rt_waiter_fire(struct waiter *w);
void rt_waiter_finish(struct waiter *w);
int rt_settled_status(saga_status_t s);

#endif
