/* The runtime: the sagas this coordinator holds in memory, between the engine
 * (pure), the store (durable log) and the participants (through sessions).
 * Write-ahead: commands and answers leave only from store write callbacks.
 * May not touch sockets or SQL directly. */
#include "server/runtime.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/effects.h"
#include "engine/saga.h"
#include "saga/error.h"
#include "server/registry.h"
#include "server/session.h"
#include "server/timerq.h"
#include "server/view.h"

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

static void rs_apply(struct runtime *rt, struct rsaga *rs, struct req *req, enum wkind kind,
                     const struct store_create *create);
static void rs_release(struct runtime *rt, struct rsaga *rs);
static void step_send(struct runtime *rt, struct rstep *st);
static void waiter_poll(struct waiter *w);
static void waiter_nudge_all(struct rsaga *rs, int settled);
static void claim_round(struct runtime *rt);
static void shutdown_check(struct runtime *rt);

static uint64_t now_ms(void)
{
    return timerq_wall_ms(NULL);
}

/* ---- the saga map ---------------------------------------------------------------------- */

static size_t id_hash(const struct saga_id *id, size_t size)
{
    uint64_t h;
    memcpy(&h, id->bytes, sizeof(h)); /* random ids: the bytes are the hash */
    return (size_t)(h & (size - 1));
}

static struct rsaga *map_find(const struct runtime *rt, const uint8_t id[16])
{
    struct saga_id key;
    memcpy(key.bytes, id, 16);
    for (struct rsaga *rs = rt->map[id_hash(&key, rt->map_size)]; rs != NULL; rs = rs->hnext) {
        if (memcmp(rs->id.bytes, id, 16) == 0)
            return rs;
    }
    return NULL;
}

static int map_grow(struct runtime *rt)
{
    size_t size = rt->map_size * 2;
    struct rsaga **map = calloc(size, sizeof(*map));
    if (map == NULL)
        return SAGA_ENOMEM;
    for (size_t i = 0; i < rt->map_size; i++) {
        struct rsaga *rs = rt->map[i];
        while (rs != NULL) {
            struct rsaga *next = rs->hnext;
            size_t b = id_hash(&rs->id, size);
            rs->hnext = map[b];
            map[b] = rs;
            rs = next;
        }
    }
    free(rt->map);
    rt->map = map;
    rt->map_size = size;
    return 0;
}

static int map_insert(struct runtime *rt, struct rsaga *rs)
{
    if (rt->map_count + 1 > rt->map_size && map_grow(rt) != 0)
        return SAGA_ENOMEM;
    size_t b = id_hash(&rs->id, rt->map_size);
    rs->hnext = rt->map[b];
    rt->map[b] = rs;
    rs->in_map = 1;
    rt->map_count++;
    rt->stats.active = rt->map_count;
    return 0;
}

static void map_remove(struct runtime *rt, struct rsaga *rs)
{
    if (!rs->in_map)
        return;
    for (struct rsaga **p = &rt->map[id_hash(&rs->id, rt->map_size)]; *p; p = &(*p)->hnext) {
        if (*p == rs) {
            *p = rs->hnext;
            break;
        }
    }
    rs->in_map = 0;
    rt->map_count--;
    rt->stats.active = rt->map_count;
}

/* ---- definitions ----------------------------------------------------------------------- */

static const struct definition *def_cached(const struct runtime *rt, const char *name,
                                           uint32_t version)
{
    for (struct defentry *e = rt->defs; e != NULL; e = e->next) {
        if (e->def->version == version && strcmp(e->def->name, name) == 0)
            return e->def;
    }
    return NULL;
}

/* Keeps `*def` (taking ownership) unless an equal one is cached; returns the cached one. */
static const struct definition *def_keep(struct runtime *rt, struct definition **def)
{
    const struct definition *have = def_cached(rt, (*def)->name, (*def)->version);
    if (have != NULL) {
        definition_free(def);
        return have;
    }
    struct defentry *e = malloc(sizeof(*e));
    if (e == NULL) {
        definition_free(def);
        return NULL;
    }
    e->def = *def;
    e->next = rt->defs;
    rt->defs = e;
    *def = NULL;
    return e->def;
}

static struct latest *latest_find(const struct runtime *rt, const char *name)
{
    for (struct latest *l = rt->latest; l != NULL; l = l->next) {
        if (strcmp(l->def->name, name) == 0)
            return l;
    }
    return NULL;
}

/* The latest version of `name` if it was read within LATEST_TTL_MS, or NULL. */
static const struct definition *latest_fresh(const struct runtime *rt, const char *name,
                                             uint64_t now)
{
    const struct latest *l = latest_find(rt, name);
    return l != NULL && now < l->read_ms + LATEST_TTL_MS ? l->def : NULL;
}

/* Notes that `def` is the newest version known of its name, as of `now`. */
static void latest_note(struct runtime *rt, const struct definition *def, uint64_t now)
{
    struct latest *l = latest_find(rt, def->name);
    if (l == NULL) {
        l = malloc(sizeof(*l));
        if (l == NULL)
            return;
        l->next = rt->latest;
        rt->latest = l;
    } else if (l->def->version > def->version) {
        return;
    }
    l->def = def;
    l->read_ms = now;
}

/* Parses a stored canonical body and caches it. NULL when it does not parse. */
static const struct definition *def_from_store(struct runtime *rt,
                                               const struct store_definition *sd)
{
    const struct definition *have = def_cached(rt, sd->name, sd->version);
    if (have != NULL)
        return have;
    struct def_diags diags = {0};
    struct definition *def = NULL;
    if (definition_parse(sd->canonical, sd->canonical_len, &def, &diags) != 0) {
        log_error(NULL, "definition.corrupt", "name=%s version=%u errors=%zu", sd->name,
                  sd->version, diags.n);
        def_diags_clear(&diags);
        return NULL;
    }
    def_diags_clear(&diags);
    return def_keep(rt, &def);
}

/* Formats every diagnostic into one message: "LINE:COL: msg; LINE:COL: msg". */
static void diags_text(const struct def_diags *diags, char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < diags->n && o + 1 < size; i++) {
        int n = snprintf(buf + o, size - o, "%s%d:%d: %s", i ? "; " : "", diags->items[i].line,
                         diags->items[i].column, diags->items[i].message);
        if (n < 0)
            break;
        o += (size_t)n;
    }
}

/* ---- sagas in memory ------------------------------------------------------------------- */

static struct rsaga *rs_new(struct runtime *rt, const struct definition *def,
                            const struct saga_id *id, uint64_t epoch)
{
    struct rsaga *rs = calloc(1, sizeof(*rs) + def->n_steps * sizeof(struct rstep));
    if (rs == NULL)
        return NULL;
    rs->id = *id;
    store_id_format(id, rs->id_text);
    rs->def = def;
    rs->epoch = epoch;
    rs->n_steps = def->n_steps;
    timerq_timer_init(&rs->deadline.t);
    rs->deadline.kind = RT_DEADLINE;
    for (uint16_t i = 0; i < def->n_steps; i++) {
        struct rstep *st = &rs->steps[i];
        st->saga = rs;
        timerq_timer_init(&st->timer.t);
        st->timer.kind = RT_STEP;
    }
    (void)rt;
    return rs;
}

static uint16_t step_index(const struct rstep *st)
{
    return (uint16_t)(st - st->saga->steps);
}

static void undefer(struct runtime *rt, struct rstep *st)
{
    if (!st->deferred)
        return;
    if (st->dprev != NULL)
        st->dprev->dnext = st->dnext;
    else
        rt->deferred = st->dnext;
    if (st->dnext != NULL)
        st->dnext->dprev = st->dprev;
    st->dnext = st->dprev = NULL;
    st->deferred = 0;
    rt->stats.deferred--;
}

static void defer(struct runtime *rt, struct rstep *st)
{
    if (st->deferred)
        return;
    st->deferred = 1;
    st->dprev = NULL;
    st->dnext = rt->deferred;
    if (rt->deferred != NULL)
        rt->deferred->dprev = st;
    rt->deferred = st;
    rt->stats.deferred++;
}

/* Frees `rs` once nothing refers to it any more. */
static void rs_maybe_free(struct runtime *rt, struct rsaga *rs)
{
    if (!rs->dropped || rs->writes > 0)
        return;
    saga_engine_free(&rs->engine);
    free(rs);
    (void)rt;
}

/* Takes `rs` out of service: no timers, no commands, out of the map; waiters
 * go on reading the log. Freed once its writes are done. */
static void rs_drop(struct runtime *rt, struct rsaga *rs)
{
    if (rs->dropped)
        return;
    rs->dropped = 1;
    timerq_cancel(&rt->timers, &rs->deadline.t);
    for (uint16_t i = 0; i < rs->n_steps; i++) {
        struct rstep *st = &rs->steps[i];
        timerq_cancel(&rt->timers, &st->timer.t);
        registry_untrack(&st->inflight);
        undefer(rt, st);
    }
    map_remove(rt, rs);
    waiter_nudge_all(rs, 1);
    rt->stats.dropped++;
    rs_maybe_free(rt, rs);
}

static void rs_arm_timers(struct runtime *rt, struct rsaga *rs, const struct effects *fx)
{
    for (uint32_t i = 0; i < fx->n_timers; i++) {
        const struct saga_timer *t = &fx->timers[i];
        struct rtimer *slot;
        if (t->kind == SAGA_TIMER_DEADLINE) {
            slot = &rs->deadline;
        } else {
            if (t->step < 0 || t->step >= rs->n_steps)
                continue;
            struct rstep *st = &rs->steps[t->step];
            st->pending = *t;
            slot = &st->timer;
        }
        if (timerq_arm(&rt->timers, &slot->t, t->at_ms) != 0)
            log_error(rs->id_text, "timer.lost", "reason=no_memory");
    }
}

/* ---- dispatch -------------------------------------------------------------------------- */

static void step_send(struct runtime *rt, struct rstep *st)
{
    struct rsaga *rs = st->saga;
    uint16_t idx = step_index(st);
    const struct def_step *ds = &rs->def->steps[idx];
    int known = 0;
    struct instance *inst = registry_pick(rt->registry, ds->service, ds->action, st->op, &known);
    if (inst == NULL) {
        if (!st->deferred)
            log_debug(rs->id_text, "command.deferred", "step=%s op=%s service=%s known=%d",
                      ds->name, saga_op_name(st->op), ds->service, known);
        defer(rt, st);
        return;
    }

    char key[96];
    snprintf(key, sizeof(key), "%s/%u/%s", rs->id_text, idx, saga_op_name(st->op));
    struct wire_step_output deps_small[8];
    struct wire_step_output *deps = deps_small;
    size_t n_deps = 0;
    int forward = st->op == SAGA_OP_ACTION || st->op == SAGA_OP_PREPARE;
    if (forward && ds->n_after > ARRAY_SIZE(deps_small)) {
        deps = calloc(ds->n_after, sizeof(*deps));
        if (deps == NULL) {
            defer(rt, st);
            return;
        }
    }
    if (forward) {
        for (uint16_t i = 0; i < ds->n_after; i++) {
            uint16_t dep = ds->after[i];
            size_t len = 0;
            const uint8_t *out = saga_engine_step_output(rs->engine, dep, &len);
            deps[n_deps++] = (struct wire_step_output){
                .step = rs->def->steps[dep].name, .output = (uint8_t *)out, .output_len = len};
        }
    }
    size_t input_len = 0, own_len = 0;
    const uint8_t *input = saga_engine_input(rs->engine, &input_len);
    const uint8_t *own = forward ? NULL : saga_engine_step_output(rs->engine, idx, &own_len);
    struct wire_msg msg = {.type = WIRE_COMMAND};
    struct wire_command *c = &msg.command;
    memcpy(c->saga_id, rs->id.bytes, 16);
    c->definition = rs->def->name;
    c->definition_version = rs->def->version;
    c->step = ds->name;
    c->step_index = idx;
    c->action = ds->action;
    c->op = st->op;
    c->attempt = st->attempt;
    c->idempotency_key = key;
    c->input = (uint8_t *)input;
    c->input_len = input_len;
    c->deps = deps;
    c->n_deps = n_deps;
    c->own_output = (uint8_t *)own;
    c->own_output_len = own_len;
    c->timeout_ms = st->timeout_ms;
    int err = session_send(registry_session(inst), &msg);
    if (deps != deps_small)
        free(deps);
    if (err == SAGA_ETOOBIG) {
        /* Input plus dependency outputs over the frame limit: it never will
         * fit. It fails (nothing ran) on the next loop turn, from the timer. */
        log_error(rs->id_text, "command.too_big", "step=%s op=%s", ds->name, saga_op_name(st->op));
        undefer(rt, st);
        st->oversize = 1;
        if (timerq_arm(&rt->timers, &st->timer.t, now_ms()) != 0)
            log_error(rs->id_text, "timer.lost", "reason=no_memory");
        return;
    }
    if (err != 0) {
        log_warn(rs->id_text, "command.send_failed", "step=%s op=%s instance=%s error=%s", ds->name,
                 saga_op_name(st->op), registry_instance_id(inst), saga_err_name(err));
        defer(rt, st);
        return;
    }
    undefer(rt, st);
    registry_track(inst, &st->inflight);
    rt->stats.commands_sent++;
    log_debug(rs->id_text, "command.sent", "step=%s op=%s attempt=%u instance=%s", ds->name,
              saga_op_name(st->op), st->attempt, registry_instance_id(inst));
}

static void rs_dispatch(struct runtime *rt, struct rsaga *rs, const struct saga_command *c)
{
    if (c->step >= rs->n_steps)
        return;
    struct rstep *st = &rs->steps[c->step];
    registry_untrack(&st->inflight);
    st->op = c->op;
    st->attempt = c->attempt;
    st->timeout_ms = c->timeout_ms;
    step_send(rt, st);
}

void runtime_capacity(struct runtime *rt)
{
    struct rstep *st = rt->deferred;
    while (st != NULL) {
        struct rstep *next = st->dnext;
        step_send(rt, st);
        st = next;
    }
}

/* ---- applying effects ------------------------------------------------------------------ */

static void answer_with_view(struct runtime *rt, struct req *req, const struct saga_id *id);

static void on_written(const struct store_write *w, int status)
{
    struct wctx *ctx = w->data;
    struct runtime *rt = ctx->rt;
    struct rsaga *rs = ctx->rs;
    rt->writes--; /* rs->writes drops at the end: it keeps rs alive meanwhile */

    if (status == 0 && ctx->kind == W_CREATE && w->existing) {
        /* The idempotency key was taken: answer with the saga that has it. */
        struct wire_msg msg = {.type = WIRE_STARTED};
        memcpy(msg.started.saga_id, w->id.bytes, 16);
        msg.started.existed = true;
        req_reply(&ctx->req, &msg);
        rs_drop(rt, rs);
        rt->stats.dropped--; /* never ran */
        goto done;
    }
    if (status != 0) {
        rt->stats.write_failures++;
        log_warn(rs->id_text, "store.write_failed", "error=%s", saga_err_name(status));
        if (ctx->req != NULL)
            req_fail(&ctx->req, status == SAGA_EFENCED ? SAGA_EFENCED : SAGA_EUNAVAIL,
                     "the saga log could not be written: %s", saga_strerror(status));
        if (rs->dropped) {
            /* an earlier failure already took it out of service */
        } else if (status == SAGA_EFENCED) {
            if (saga_engine_lease_lost(rs->engine, &rt->fx) == 0)
                log_warn(rs->id_text, "lease.lost", NULL);
            rs_drop(rt, rs);
        } else if (ctx->kind == W_CREATE && status != SAGA_ETIMEDOUT) {
            rs_drop(rt, rs); /* nothing was written: the saga never existed */
            rt->stats.dropped--;
        } else {
            /* The engine ran ahead of the log: drop the saga here and load it
             * again from what is durable. */
            rs_release(rt, rs);
        }
        goto done;
    }

    if (!rs->dropped) {
        for (uint32_t i = 0; i < ctx->n_commands; i++)
            rs_dispatch(rt, rs, &ctx->commands[i]);
    }
    if (ctx->kind == W_CREATE) {
        struct wire_msg msg = {.type = WIRE_STARTED};
        memcpy(msg.started.saga_id, rs->id.bytes, 16);
        req_reply(&ctx->req, &msg);
    } else if (ctx->req != NULL) {
        answer_with_view(rt, ctx->req, &rs->id);
        ctx->req = NULL;
    }
    if (ctx->settled) {
        rt->stats.settled++;
        log_info(rs->id_text, "saga.settled", "status=%s",
                 saga_status_name(saga_engine_status(rs->engine)));
        if (saga_status_is_terminal(saga_engine_status(rs->engine)))
            rs_drop(rt, rs);
        else
            waiter_nudge_all(rs, 1);
    } else if (rs->waiters != NULL) {
        waiter_nudge_all(rs, 0);
    }

done:
    if (ctx->req != NULL)
        req_drop(&ctx->req);
    free(ctx);
    rs->writes--;
    rs_maybe_free(rt, rs);
    shutdown_check(rt);
}

/* Hands the effects in rt->fx on: timers now, records to the store, commands
 * and answers once the records are durable. */
static void rs_apply(struct runtime *rt, struct rsaga *rs, struct req *req, enum wkind kind,
                     const struct store_create *create)
{
    struct effects *fx = &rt->fx;
    if (fx->dropped) {
        if (req != NULL)
            req_fail(&req, SAGA_EFENCED, "saga %s is no longer held by this coordinator",
                     rs->id_text);
        rs_drop(rt, rs);
        return;
    }
    rs_arm_timers(rt, rs, fx);
    if (fx->n_records == 0) {
        for (uint32_t i = 0; i < fx->n_commands; i++)
            rs_dispatch(rt, rs, &fx->commands[i]);
        if (req != NULL)
            answer_with_view(rt, req, &rs->id);
        return;
    }
    struct wctx *ctx = malloc(sizeof(*ctx) + fx->n_commands * sizeof(struct saga_command));
    if (ctx == NULL)
        goto fail;
    *ctx = (struct wctx){.rt = rt,
                         .rs = rs,
                         .req = req,
                         .kind = kind,
                         .settled = fx->settled,
                         .n_commands = fx->n_commands};
    memcpy(ctx->commands, fx->commands, fx->n_commands * sizeof(struct saga_command));
    int err = store_write(rt->store, &rs->id, rs->epoch, create, fx->records, fx->n_records,
                          on_written, ctx);
    if (err != 0) {
        free(ctx);
        goto fail;
    }
    rs->writes++;
    rt->writes++;
    return;

fail:
    rt->stats.write_failures++;
    log_warn(rs->id_text, "store.write_refused", NULL);
    if (req != NULL)
        req_fail(&req, SAGA_EUNAVAIL, "the saga log is unavailable; nothing was done");
    if (kind == W_CREATE) {
        rs_drop(rt, rs);
        rt->stats.dropped--;
    } else {
        rs_release(rt, rs);
    }
}

/* The in-memory saga can no longer be trusted (its log write failed): drop it
 * and have it loaded again from the log. */
static void on_reclaimed(const struct store_claim *c, int status);

static void rs_release(struct runtime *rt, struct rsaga *rs)
{
    struct saga_id id = rs->id;
    rs_drop(rt, rs);
    if (rt->shutting_down)
        return;
    if (store_reclaim(rt->store, &id, on_reclaimed, rt) != 0)
        log_warn(rs->id_text, "saga.reclaim_refused",
                 "note=\"claimed again once its lease expires\"");
}

/* ---- events from participants and timers ----------------------------------------------- */

int runtime_reply(struct runtime *rt, struct instance *inst, const struct wire_reply *m)
{
    (void)inst;
    rt->stats.replies++;
    struct rsaga *rs = map_find(rt, m->saga_id);
    if (rs == NULL || rs->dropped || m->step_index >= rs->n_steps) {
        rt->stats.replies_ignored++;
        return 0;
    }
    struct rstep *st = &rs->steps[m->step_index];
    int freed = 0;
    if (st->inflight.inst != NULL && st->op == m->op && st->attempt == m->attempt) {
        registry_untrack(&st->inflight);
        freed = 1;
    }
    struct saga_reply reply = {
        .step = (uint16_t)m->step_index,
        .op = m->op,
        .attempt = m->attempt,
        .outcome = m->outcome,
        .output = m->output,
        .output_len = m->output_len,
        .reason = m->error,
    };
    int too_big = m->output_len > rt->cfg.max_payload;
    char why[96];
    if (too_big) {
        /* The step ran (it answered OK) but its output cannot be kept: a
         * transient failure of the step, never a refusal. It is retried (the
         * participant's barrier answers the same) and, once its attempts are
         * spent, fails and is compensated like any step that may have run. */
        log_warn(rs->id_text, "reply.too_big", "step=%s op=%s bytes=%zu limit=%u",
                 rs->def->steps[m->step_index].name, saga_op_name(m->op), m->output_len,
                 rt->cfg.max_payload);
        if (m->outcome == SAGA_OUTCOME_OK &&
            (m->op == SAGA_OP_ACTION || m->op == SAGA_OP_PREPARE)) {
            snprintf(why, sizeof(why), "output of %zu bytes over the payload limit of %u",
                     m->output_len, rt->cfg.max_payload);
            reply.outcome = SAGA_OUTCOME_RETRY;
            reply.reason = why;
        }
        reply.output = NULL;
        reply.output_len = 0;
    }
    int err = saga_engine_reply(rs->engine, &reply, now_ms(), &rt->fx);
    if (err == 0 && rt->fx.ignored != SAGA_APPLIED) {
        rt->stats.replies_ignored++;
        log_debug(rs->id_text, "reply.ignored", "step=%u op=%s attempt=%u why=%s", m->step_index,
                  saga_op_name(m->op), m->attempt, effects_ignored_name(rt->fx.ignored));
    }
    if (err == 0)
        rs_apply(rt, rs, NULL, W_EVENT, NULL);
    else
        log_warn(rs->id_text, "reply.error", "error=%s", saga_err_name(err));
    if (freed)
        runtime_capacity(rt);
    return too_big ? SAGA_ETOOBIG : 0;
}

/* A command the instance held is lost with its connection: the engine sees the
 * attempt time out now, and retries it elsewhere. */
static void on_inflight_lost(struct inflight *f, void *data)
{
    struct runtime *rt = data;
    struct rstep *st = container_of(f, struct rstep, inflight);
    struct rsaga *rs = st->saga;
    /* Shutting down, the leases are (being) released: a peer resends it. */
    if (rs->dropped || rt->shutting_down)
        return;
    uint64_t now = now_ms();
    struct saga_timer t = {.kind = SAGA_TIMER_TIMEOUT,
                           .step = step_index(st),
                           .op = st->op,
                           .attempt = st->attempt,
                           .at_ms = now};
    log_info(rs->id_text, "command.lost", "step=%s op=%s attempt=%u", rs->def->steps[t.step].name,
             saga_op_name(st->op), st->attempt);
    if (saga_engine_timer(rs->engine, &t, now, &rt->fx) == 0)
        rs_apply(rt, rs, NULL, W_EVENT, NULL);
}

void runtime_instance_lost(struct runtime *rt, struct instance *inst)
{
    registry_remove(rt->registry, inst, on_inflight_lost, rt);
}

static void lease_tick(struct runtime *rt, struct rtimer *t);
static void waiter_fire(struct waiter *w);

static void on_timer(struct timerq *q, struct timerq_timer *tt, uint64_t now)
{
    struct runtime *rt = container_of(q, struct runtime, timers);
    struct rtimer *t = container_of(tt, struct rtimer, t);
    switch (t->kind) {
    case RT_STEP: {
        struct rstep *st = container_of(t, struct rstep, timer);
        struct rsaga *rs = st->saga;
        if (rs->dropped)
            return;
        if (st->oversize) {
            st->oversize = 0;
            struct saga_reply fail = {.step = step_index(st),
                                      .op = st->op,
                                      .attempt = st->attempt,
                                      .outcome = SAGA_OUTCOME_FAIL,
                                      .reason = "command over the frame size limit"};
            if (saga_engine_reply(rs->engine, &fail, now, &rt->fx) == 0)
                rs_apply(rt, rs, NULL, W_EVENT, NULL);
            return;
        }
        if (st->pending.kind == SAGA_TIMER_TIMEOUT && st->inflight.inst != NULL &&
            st->op == st->pending.op && st->attempt == st->pending.attempt)
            registry_untrack(&st->inflight);
        if (st->pending.kind == SAGA_TIMER_TIMEOUT && st->op == st->pending.op &&
            st->attempt == st->pending.attempt)
            undefer(rt, st);
        if (saga_engine_timer(rs->engine, &st->pending, now, &rt->fx) == 0)
            rs_apply(rt, rs, NULL, W_EVENT, NULL);
        runtime_capacity(rt);
        return;
    }
    case RT_DEADLINE: {
        struct rsaga *rs = container_of(t, struct rsaga, deadline);
        if (rs->dropped)
            return;
        struct saga_timer st = {.kind = SAGA_TIMER_DEADLINE, .step = -1, .at_ms = now};
        if (saga_engine_timer(rs->engine, &st, now, &rt->fx) == 0)
            rs_apply(rt, rs, NULL, W_EVENT, NULL);
        return;
    }
    case RT_WAITER:
        waiter_fire(container_of(t, struct waiter, timer));
        return;
    case RT_RENEW:
    case RT_CLAIM:
        lease_tick(rt, t);
        return;
    }
    log_error(NULL, "timer.unknown_kind", "kind=%d", (int)t->kind);
    abort();
}

/* ---- reading sagas back for clients ---------------------------------------------------- */

struct viewctx {
    struct runtime *rt;
    struct req *req;
    struct waiter *w; /* or a waiter to feed */
    struct saga_id id;
    int refetched;
};

static void view_deliver(struct viewctx *v, const struct store_saga_view *view, int status,
                         const struct definition *def);
static void on_view(const struct store_saga_view *view, int status);

static void on_view_def(const struct store_def_result *r, int status)
{
    struct viewctx *v = r->data;
    if (status == 0)
        def_from_store(v->rt, r->def);
    v->refetched = 1;
    if (store_get(v->rt->store, &v->id, on_view, v) != 0)
        view_deliver(v, NULL, SAGA_EUNAVAIL, NULL);
}

static void on_view(const struct store_saga_view *view, int status)
{
    struct viewctx *v = view->data;
    const struct definition *def = NULL;
    if (status == 0) {
        def = def_cached(v->rt, view->saga->definition, view->saga->version);
        if (def == NULL && !v->refetched) {
            if (store_definition_get(v->rt->store, view->saga->definition, view->saga->version,
                                     on_view_def, v) == 0)
                return;
        }
    }
    view_deliver(v, view, status, def);
}

static int load_view(struct runtime *rt, const struct saga_id *id, struct req *req,
                     struct waiter *w)
{
    struct viewctx *v = malloc(sizeof(*v));
    if (v == NULL)
        return SAGA_ENOMEM;
    *v = (struct viewctx){.rt = rt, .req = req, .w = w, .id = *id};
    int err = store_get(rt->store, id, on_view, v);
    if (err != 0)
        free(v);
    return err;
}

static void reply_info(struct req **req, const struct store_saga_view *view,
                       const struct definition *def)
{
    struct wire_msg msg = {.type = WIRE_SAGA_INFO};
    if (view_saga_info(view, def, &msg.saga_info) != 0) {
        wire_msg_free_contents(&msg);
        req_fail(req, SAGA_ENOMEM, "out of memory building the answer");
        return;
    }
    req_reply(req, &msg);
    wire_msg_free_contents(&msg);
}

static void waiter_view(struct waiter *w, const struct store_saga_view *view, int status,
                        const struct definition *def);

static void view_deliver(struct viewctx *v, const struct store_saga_view *view, int status,
                         const struct definition *def)
{
    if (v->w != NULL) {
        waiter_view(v->w, view, status, def);
    } else if (status == SAGA_ENOTFOUND) {
        char text[37];
        store_id_format(&v->id, text);
        req_fail(&v->req, SAGA_ENOTFOUND, "no saga %s", text);
    } else if (status != 0) {
        req_fail(&v->req, status, "reading the saga failed: %s", saga_strerror(status));
    } else {
        reply_info(&v->req, view, def);
    }
    free(v);
}

static void answer_with_view(struct runtime *rt, struct req *req, const struct saga_id *id)
{
    if (load_view(rt, id, req, NULL) != 0)
        req_fail(&req, SAGA_EUNAVAIL, "the saga log is unavailable");
}

void runtime_get(struct runtime *rt, struct req *req, const uint8_t id[16])
{
    struct saga_id sid;
    memcpy(sid.bytes, id, 16);
    answer_with_view(rt, req, &sid);
}

/* ---- Wait and Watch -------------------------------------------------------------------- */

#define WAITER_POLL_REMOTE_MS 200
#define WAITER_POLL_LOCAL_MS  2000

static void waiter_finish(struct waiter *w)
{
    struct runtime *rt = w->rt;
    w->done = 1;
    timerq_cancel(&rt->timers, &w->timer.t);
    if (w->rs != NULL) {
        for (struct waiter **p = &w->rs->waiters; *p != NULL; p = &(*p)->snext) {
            if (*p == w) {
                *p = w->snext;
                break;
            }
        }
        w->rs = NULL;
    }
    w->prev->next = w->next;
    w->next->prev = w->prev;
    if (w->req != NULL)
        req_drop(&w->req);
    if (!w->busy)
        free(w);
}

static void waiter_schedule(struct waiter *w)
{
    uint64_t now = now_ms();
    uint64_t next = now + (w->rs != NULL ? WAITER_POLL_LOCAL_MS : WAITER_POLL_REMOTE_MS);
    if (!w->watch && w->until_ms < next)
        next = w->until_ms;
    if (timerq_arm(&w->rt->timers, &w->timer.t, next) != 0) {
        req_fail(&w->req, SAGA_ENOMEM, "out of memory");
        waiter_finish(w);
    }
}

static void waiter_poll(struct waiter *w)
{
    if (w->done)
        return;
    if (w->busy) {
        w->again = 1; /* the read in flight may predate what woke us */
        return;
    }
    w->again = 0;
    if (!req_alive(w->req)) {
        waiter_finish(w);
        return;
    }
    w->busy = 1;
    if (load_view(w->rt, &w->id, NULL, w) != 0) {
        w->busy = 0;
        waiter_schedule(w);
    }
}

static void waiter_fire(struct waiter *w)
{
    waiter_poll(w);
}

/* A write of `rs` committed: watchers read the new events; waiters read the
 * outcome once the saga settled (or it left this coordinator). */
static void waiter_nudge_all(struct rsaga *rs, int settled)
{
    struct waiter *w = rs->waiters;
    if (rs->dropped) {
        rs->waiters = NULL;
        for (struct waiter *x = w; x != NULL; x = x->snext)
            x->rs = NULL;
    }
    while (w != NULL) {
        struct waiter *next = w->snext;
        if (w->watch || settled || rs->dropped)
            waiter_poll(w);
        w = next;
    }
}

static int settled_status(saga_status_t s)
{
    return saga_status_is_terminal(s) || s == SAGA_STATUS_STUCK;
}

static void waiter_view(struct waiter *w, const struct store_saga_view *view, int status,
                        const struct definition *def)
{
    w->busy = 0;
    if (w->done) {
        free(w);
        return;
    }
    if (status == SAGA_ENOTFOUND) {
        char text[37];
        store_id_format(&w->id, text);
        req_fail(&w->req, SAGA_ENOTFOUND, "no saga %s", text);
        waiter_finish(w);
        return;
    }
    if (status != 0) {
        waiter_schedule(w); /* the log is away for now: try again */
        return;
    }
    if (w->watch) {
        for (size_t i = 0; i < view->n_events; i++) {
            const struct store_event *e = &view->events[i];
            if (e->seq <= w->last_seq)
                continue;
            struct wire_msg msg = {.type = WIRE_EVENT};
            int err = view_event(e, def, &msg.event);
            if (err == 0)
                err = req_send(w->req, &msg);
            wire_msg_free_contents(&msg);
            if (err != 0) {
                waiter_finish(w);
                return;
            }
            w->last_seq = e->seq;
        }
    }
    if (settled_status(view->saga->status) || (!w->watch && now_ms() >= w->until_ms)) {
        reply_info(&w->req, view, def);
        waiter_finish(w);
        return;
    }
    if (w->again)
        waiter_poll(w);
    else
        waiter_schedule(w);
}

static void waiter_begin(struct runtime *rt, struct req *req, const uint8_t id[16],
                         uint32_t timeout_ms, int watch)
{
    struct waiter *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        req_fail(&req, SAGA_ENOMEM, "out of memory");
        return;
    }
    w->rt = rt;
    w->req = req;
    w->watch = watch;
    memcpy(w->id.bytes, id, 16);
    if (timeout_ms == 0 || timeout_ms > rt->cfg.max_wait_ms)
        timeout_ms = rt->cfg.max_wait_ms;
    w->until_ms = now_ms() + timeout_ms;
    timerq_timer_init(&w->timer.t);
    w->timer.kind = RT_WAITER;
    w->next = rt->waiters.next;
    w->prev = &rt->waiters;
    rt->waiters.next->prev = w;
    rt->waiters.next = w;
    struct rsaga *rs = map_find(rt, id);
    if (rs != NULL && !rs->dropped) {
        w->rs = rs;
        w->snext = rs->waiters;
        rs->waiters = w;
        /* Held here and still running: its settling write wakes the waiter;
         * nothing to read before that. */
        if (!watch && !settled_status(saga_engine_status(rs->engine))) {
            waiter_schedule(w);
            return;
        }
    }
    waiter_poll(w);
}

void runtime_wait(struct runtime *rt, struct req *req, const struct wire_wait *m)
{
    waiter_begin(rt, req, m->saga_id, m->timeout_ms, 0);
}

void runtime_watch(struct runtime *rt, struct req *req, const uint8_t id[16])
{
    waiter_begin(rt, req, id, 0, 1);
}

/* ---- Define and Start ------------------------------------------------------------------ */

struct definectx {
    struct runtime *rt;
    struct req *req;
    struct definition *def;
};

static void on_defined(const struct store_define *d, int status)
{
    struct definectx *ctx = d->data;
    struct definition *def = ctx->def;
    if (status == SAGA_EEXIST) {
        req_fail(&ctx->req, SAGA_EEXIST,
                 "definition %s version %u already exists with a different body; "
                 "define it under a new version",
                 def->name, def->version);
        definition_free(&ctx->def);
    } else if (status != 0) {
        req_fail(&ctx->req, status, "storing the definition failed: %s", saga_strerror(status));
        definition_free(&ctx->def);
    } else {
        struct wire_msg msg = {.type = WIRE_DEFINED};
        msg.defined.name = def->name;
        msg.defined.version = def->version;
        msg.defined.hash = def->hash;
        msg.defined.created = d->created;
        req_reply(&ctx->req, &msg);
        const struct definition *kept = def_keep(ctx->rt, &ctx->def);
        if (kept != NULL)
            latest_note(ctx->rt, kept, now_ms());
    }
    free(ctx);
}

/* Parses `json`; on failure answers `req` and returns NULL. */
static struct definition *parse_or_fail(struct req **req, const char *json)
{
    struct def_diags diags = {0};
    struct definition *def = NULL;
    int err = definition_parse(json, strlen(json), &def, &diags);
    if (err != 0) {
        char text[2048];
        diags_text(&diags, text, sizeof(text));
        req_fail(req, err, "invalid definition: %s", text[0] ? text : saga_strerror(err));
        def_diags_clear(&diags);
        return NULL;
    }
    def_diags_clear(&diags);
    return def;
}

static int define_def(struct runtime *rt, struct req *req, struct definition *def,
                      store_define_cb cb, void *data)
{
    (void)req;
    return store_define(rt->store, def->name, def->version, def->mode, def->canonical,
                        def->canonical_len, def->hash, cb, data);
}

void runtime_define(struct runtime *rt, struct req *req, const struct wire_define *m)
{
    struct definition *def = parse_or_fail(&req, m->definition_json);
    if (def == NULL)
        return;
    struct definectx *ctx = malloc(sizeof(*ctx));
    if (ctx == NULL) {
        definition_free(&def);
        req_fail(&req, SAGA_ENOMEM, "out of memory");
        return;
    }
    *ctx = (struct definectx){.rt = rt, .req = req, .def = def};
    if (define_def(rt, req, def, on_defined, ctx) != 0) {
        req_fail(&ctx->req, SAGA_EUNAVAIL, "the saga log is unavailable");
        definition_free(&ctx->def);
        free(ctx);
    }
}

struct startctx {
    struct runtime *rt;
    struct req *req;
    struct definition *inline_def;
    char *name;
    uint32_t version;
    char *key;
    size_t input_len;
    uint8_t input[];
};

static void start_free(struct startctx *ctx)
{
    definition_free(&ctx->inline_def);
    free(ctx->name);
    free(ctx->key);
    free(ctx);
}

static void start_with(struct startctx *ctx, const struct definition *def)
{
    struct runtime *rt = ctx->rt;
    struct saga_id id;
    if (getrandom(id.bytes, sizeof(id.bytes), 0) != (ssize_t)sizeof(id.bytes)) {
        req_fail(&ctx->req, SAGA_EINTERNAL, "no randomness for a saga id");
        start_free(ctx);
        return;
    }
    id.bytes[6] = (uint8_t)((id.bytes[6] & 0x0f) | 0x40); /* version 4 */
    id.bytes[8] = (uint8_t)((id.bytes[8] & 0x3f) | 0x80); /* variant 1 */
    struct rsaga *rs = rs_new(rt, def, &id, 1);
    if (rs == NULL || effects_reserve(&rt->fx, def->n_steps) != 0 ||
        saga_engine_new(def, &id, ctx->input, ctx->input_len, &rt->rng, &rs->engine) != 0) {
        free(rs);
        req_fail(&ctx->req, SAGA_ENOMEM, "out of memory");
        start_free(ctx);
        return;
    }
    if (map_insert(rt, rs) != 0 || saga_engine_start(rs->engine, now_ms(), &rt->fx) != 0) {
        map_remove(rt, rs);
        saga_engine_free(&rs->engine);
        free(rs);
        req_fail(&ctx->req, SAGA_ENOMEM, "out of memory");
        start_free(ctx);
        return;
    }
    struct store_create create = {
        .definition = def->name,
        .version = def->version,
        .mode = def->mode,
        .n_steps = def->n_steps,
        .input = ctx->input,
        .input_len = ctx->input_len,
        .idempotency_key = ctx->key,
    };
    rt->stats.started++;
    log_info(rs->id_text, "saga.start", "definition=%s version=%u", def->name, def->version);
    struct req *req = ctx->req;
    ctx->req = NULL;
    rs_apply(rt, rs, req, W_CREATE, &create);
    start_free(ctx);
}

static void on_start_def(const struct store_def_result *r, int status)
{
    struct startctx *ctx = r->data;
    if (status == SAGA_ENOTFOUND) {
        if (ctx->version != 0)
            req_fail(&ctx->req, SAGA_ENOTFOUND, "no definition %s version %u; define it first",
                     ctx->name, ctx->version);
        else
            req_fail(&ctx->req, SAGA_ENOTFOUND, "no definition %s; define it first", ctx->name);
        start_free(ctx);
        return;
    }
    if (status != 0) {
        req_fail(&ctx->req, status, "loading the definition failed: %s", saga_strerror(status));
        start_free(ctx);
        return;
    }
    const struct definition *def = def_from_store(ctx->rt, r->def);
    if (def == NULL) {
        req_fail(&ctx->req, SAGA_EINTERNAL, "stored definition %s version %u does not parse",
                 r->def->name, r->def->version);
        start_free(ctx);
        return;
    }
    if (ctx->version == 0) {
        struct latest *l = latest_find(ctx->rt, def->name);
        if (l != NULL && l->def->version > def->version)
            l->def = def; /* an older version read back: the log is the truth */
        latest_note(ctx->rt, def, now_ms());
    }
    start_with(ctx, def);
}

static void on_start_defined(const struct store_define *d, int status)
{
    struct startctx *ctx = d->data;
    if (status != 0) {
        if (status == SAGA_EEXIST)
            req_fail(&ctx->req, SAGA_EEXIST,
                     "definition %s version %u already exists with a different body",
                     ctx->inline_def->name, ctx->inline_def->version);
        else
            req_fail(&ctx->req, status, "storing the definition failed: %s", saga_strerror(status));
        start_free(ctx);
        return;
    }
    const struct definition *def = def_keep(ctx->rt, &ctx->inline_def);
    if (def == NULL) {
        req_fail(&ctx->req, SAGA_ENOMEM, "out of memory");
        start_free(ctx);
        return;
    }
    latest_note(ctx->rt, def, now_ms()); /* as a Define does: it may be the newest version */
    start_with(ctx, def);
}

void runtime_start(struct runtime *rt, struct req *req, const struct wire_start *m)
{
    if (rt->shutting_down) {
        req_fail(&req, SAGA_EUNAVAIL, "the coordinator is shutting down; try another");
        return;
    }
    if (m->input_len > rt->cfg.max_payload) {
        req_fail(&req, SAGA_ETOOBIG, "input of %zu bytes is over the limit of %u", m->input_len,
                 rt->cfg.max_payload);
        return;
    }
    struct startctx *ctx = calloc(1, sizeof(*ctx) + m->input_len);
    if (ctx == NULL) {
        req_fail(&req, SAGA_ENOMEM, "out of memory");
        return;
    }
    ctx->rt = rt;
    ctx->req = req;
    ctx->input_len = m->input_len;
    if (m->input_len > 0)
        memcpy(ctx->input, m->input, m->input_len);
    if (m->idempotency_key != NULL && m->idempotency_key[0] != '\0') {
        ctx->key = strdup(m->idempotency_key);
        if (ctx->key == NULL)
            goto nomem;
    }
    if (m->definition_json != NULL) {
        ctx->inline_def = parse_or_fail(&ctx->req, m->definition_json);
        if (ctx->inline_def == NULL) {
            start_free(ctx);
            return;
        }
        const struct definition *have =
            def_cached(rt, ctx->inline_def->name, ctx->inline_def->version);
        if (have != NULL && strcmp(have->hash, ctx->inline_def->hash) == 0) {
            start_with(ctx, have);
            return;
        }
        if (define_def(rt, req, ctx->inline_def, on_start_defined, ctx) != 0)
            goto unavailable;
        return;
    }
    ctx->name = strdup(m->definition ? m->definition : "");
    if (ctx->name == NULL)
        goto nomem;
    ctx->version = m->version;
    const struct definition *def = m->version != 0 ? def_cached(rt, m->definition, m->version)
                                                   : latest_fresh(rt, m->definition, now_ms());
    if (def != NULL) {
        start_with(ctx, def);
        return;
    }
    if (store_definition_get(rt->store, ctx->name, ctx->version, on_start_def, ctx) != 0)
        goto unavailable;
    return;

nomem:
    req_fail(&ctx->req, SAGA_ENOMEM, "out of memory");
    start_free(ctx);
    return;
unavailable:
    req_fail(&ctx->req, SAGA_EUNAVAIL, "the saga log is unavailable; nothing was started");
    start_free(ctx);
}

/* ---- List ------------------------------------------------------------------------------ */

static void on_list(const struct store_page *p, int status)
{
    struct req *req = p->data;
    if (status != 0) {
        req_fail(&req, status, status == SAGA_EINVAL ? "malformed cursor" : "listing failed: %s",
                 saga_strerror(status));
        return;
    }
    struct wire_msg msg = {.type = WIRE_SAGA_LIST};
    if (view_saga_list(p, &msg.saga_list) != 0) {
        wire_msg_free_contents(&msg);
        req_fail(&req, SAGA_ENOMEM, "out of memory building the answer");
        return;
    }
    req_reply(&req, &msg);
    wire_msg_free_contents(&msg);
}

void runtime_list(struct runtime *rt, struct req *req, const struct wire_list *m)
{
    struct store_filter f = {
        .status = m->status,
        .definition = m->definition && m->definition[0] ? m->definition : NULL,
        .created_since_ms = m->created_since_ms,
        .limit = m->limit > 1000 ? 1000 : m->limit,
        .cursor = m->cursor && m->cursor[0] ? m->cursor : NULL,
    };
    int err = store_list(rt->store, &f, on_list, req);
    if (err == SAGA_EINVAL)
        req_fail(&req, SAGA_EINVAL, "malformed cursor or filter");
    else if (err != 0)
        req_fail(&req, SAGA_EUNAVAIL, "the saga log is unavailable");
}

/* ---- operator commands ----------------------------------------------------------------- */

struct opctx {
    struct runtime *rt;
    struct req *req;
    enum runtime_op op;
};

static void on_op_view(const struct store_saga_view *view, int status)
{
    struct opctx *ctx = view->data;
    if (status == SAGA_ENOTFOUND) {
        req_fail(&ctx->req, SAGA_ENOTFOUND, "no such saga");
    } else if (status != 0) {
        req_fail(&ctx->req, status, "reading the saga failed: %s", saga_strerror(status));
    } else if (saga_status_is_terminal(view->saga->status)) {
        req_fail(&ctx->req, SAGA_ESTATE, "saga is %s: nothing to do",
                 saga_status_name(view->saga->status));
    } else {
        req_fail(
            &ctx->req, SAGA_ESTATE, "saga is %s and held by coordinator %s; send the command there",
            saga_status_name(view->saga->status), view->saga->owner ? view->saga->owner : "(none)");
    }
    free(ctx);
}

void runtime_operate(struct runtime *rt, struct req *req, enum runtime_op op, const uint8_t id[16],
                     saga_status_t as, const char *reason)
{
    struct rsaga *rs = map_find(rt, id);
    if (rs == NULL || rs->dropped) {
        struct opctx *ctx = malloc(sizeof(*ctx));
        struct saga_id sid;
        memcpy(sid.bytes, id, 16);
        if (ctx == NULL) {
            req_fail(&req, SAGA_ENOMEM, "out of memory");
            return;
        }
        *ctx = (struct opctx){.rt = rt, .req = req, .op = op};
        if (store_get(rt->store, &sid, on_op_view, ctx) != 0) {
            req_fail(&ctx->req, SAGA_EUNAVAIL, "the saga log is unavailable");
            free(ctx);
        }
        return;
    }
    uint64_t now = now_ms();
    saga_status_t before = saga_engine_status(rs->engine);
    int err;
    const char *what;
    switch (op) {
    case RUNTIME_RETRY:
        what = "retry";
        err = saga_engine_retry(rs->engine, now, &rt->fx);
        break;
    case RUNTIME_ABORT:
        what = "abort";
        err = saga_engine_abort(rs->engine, now, &rt->fx);
        break;
    case RUNTIME_RESOLVE:
        what = "resolve";
        err = saga_engine_resolve(rs->engine, as, now, &rt->fx);
        break;
    default:
        req_fail(&req, SAGA_EINVAL, "unknown operator command");
        return;
    }
    if (err == SAGA_ESTATE) {
        req_fail(&req, SAGA_ESTATE, "cannot %s a saga that is %s%s", what, saga_status_name(before),
                 op == RUNTIME_RETRY ? " (retry needs STUCK)"
                 : op == RUNTIME_RESOLVE
                     ? " (resolve needs STUCK, and a status the saga can end in)"
                     : " (abort needs RUNNING before the pivot, or PREPARING)");
        return;
    }
    if (err != 0) {
        req_fail(&req, err, "%s failed: %s", what, saga_strerror(err));
        return;
    }
    log_info(rs->id_text, "operator.command", "op=%s reason=%s", what,
             log_quote((char[128]){0}, 128, reason ? reason : ""));
    /* The operator's reason goes into the timeline with the saga's change. */
    char detail[512];
    for (uint32_t i = 0; reason != NULL && reason[0] != '\0' && i < rt->fx.n_records; i++) {
        struct record *rec = &rt->fx.records[i];
        if (rec->kind != REC_SAGA_UPDATE)
            continue;
        snprintf(detail, sizeof(detail), "%s%soperator: %s", rec->error ? rec->error : "",
                 rec->error ? "; " : "", reason);
        rec->error = detail;
        break;
    }
    rs_apply(rt, rs, req, W_OPERATE, NULL);
}

/* ---- 2pc in-doubt ---------------------------------------------------------------------- */

static void reply_decision(struct req **req, const uint8_t id[16], uint32_t step,
                           enum wire_decision d)
{
    struct wire_msg msg = {.type = WIRE_DECISION};
    memcpy(msg.decision.saga_id, id, 16);
    msg.decision.step_index = step;
    msg.decision.decision = d;
    req_reply(req, &msg);
}

struct doubtctx {
    struct req *req;
    uint8_t id[16];
    uint32_t step;
};

static void on_doubt_view(const struct store_saga_view *view, int status)
{
    struct doubtctx *ctx = view->data;
    if (status == SAGA_ENOTFOUND) {
        reply_decision(&ctx->req, ctx->id, ctx->step, WIRE_DECISION_ABORT); /* presumed abort */
    } else if (status != 0) {
        req_fail(&ctx->req, status, "reading the saga failed: %s", saga_strerror(status));
    } else {
        saga_status_t s = view->saga->status;
        enum wire_decision d = WIRE_DECISION_ABORT;
        if (s == SAGA_STATUS_COMMITTING || s == SAGA_STATUS_COMMITTED)
            d = WIRE_DECISION_COMMIT;
        else if (s == SAGA_STATUS_PREPARING ||
                 (s == SAGA_STATUS_STUCK && view->saga->mode == DEF_MODE_2PC))
            d = WIRE_DECISION_PENDING;
        reply_decision(&ctx->req, ctx->id, ctx->step, d);
    }
    free(ctx);
}

void runtime_in_doubt(struct runtime *rt, struct req *req, const struct wire_in_doubt *m)
{
    struct rsaga *rs = map_find(rt, m->saga_id);
    if (rs != NULL && !rs->dropped) {
        enum saga_decision d;
        if (m->step_index >= rs->n_steps ||
            saga_engine_in_doubt(rs->engine, (uint16_t)m->step_index, &d) != 0) {
            req_fail(&req, SAGA_EINVAL, "saga %s has no 2pc step %u", rs->id_text, m->step_index);
            return;
        }
        reply_decision(&req, m->saga_id, m->step_index,
                       d == SAGA_DECISION_COMMIT  ? WIRE_DECISION_COMMIT
                       : d == SAGA_DECISION_ABORT ? WIRE_DECISION_ABORT
                                                  : WIRE_DECISION_PENDING);
        return;
    }
    struct doubtctx *ctx = malloc(sizeof(*ctx));
    if (ctx == NULL) {
        req_fail(&req, SAGA_ENOMEM, "out of memory");
        return;
    }
    ctx->req = req;
    memcpy(ctx->id, m->saga_id, 16);
    ctx->step = m->step_index;
    struct saga_id sid;
    memcpy(sid.bytes, m->saga_id, 16);
    if (store_get(rt->store, &sid, on_doubt_view, ctx) != 0) {
        req_fail(&ctx->req, SAGA_EUNAVAIL, "the saga log is unavailable; ask again");
        free(ctx);
    }
}

/* ---- leases and recovery --------------------------------------------------------------- */

/* Resumes one claimed saga from its snapshot. */
static void resume_claimed(struct runtime *rt, const struct store_claimed *c)
{
    char text[37];
    store_id_format(&c->snap.id, text);
    if (c->def == NULL) {
        log_error(text, "saga.resume_failed", "reason=definition_missing definition=%s version=%u",
                  c->definition, c->version);
        return;
    }
    const struct definition *def = def_from_store(rt, c->def);
    if (def == NULL)
        return;
    struct rsaga *old = map_find(rt, c->snap.id.bytes);
    if (old != NULL)
        rs_drop(rt, old); /* our own lease ran out and we took it again: the new epoch wins */
    struct rsaga *rs = rs_new(rt, def, &c->snap.id, c->epoch);
    if (rs == NULL || effects_reserve(&rt->fx, def->n_steps) != 0) {
        free(rs);
        log_error(text, "saga.resume_failed", "reason=no_memory");
        return;
    }
    int err = saga_engine_rebuild(def, &c->snap, &rt->rng, now_ms(), &rt->fx, &rs->engine);
    if (err != 0 || map_insert(rt, rs) != 0) {
        saga_engine_free(&rs->engine);
        free(rs);
        log_error(text, "saga.resume_failed", "error=%s", saga_err_name(err ? err : SAGA_ENOMEM));
        return;
    }
    rt->stats.claimed++;
    log_info(text, "saga.resumed", "status=%s epoch=%llu",
             saga_status_name(saga_engine_status(rs->engine)), (unsigned long long)c->epoch);
    rs_apply(rt, rs, NULL, W_EVENT, NULL);
}

static void on_reclaimed(const struct store_claim *c, int status)
{
    struct runtime *rt = c->data;
    if (status != 0) {
        log_warn(NULL, "saga.reclaim_failed", "error=%s", saga_err_name(status));
        return;
    }
    for (size_t i = 0; i < c->n; i++)
        resume_claimed(rt, &c->sagas[i]);
}

static void on_claimed(const struct store_claim *c, int status)
{
    struct runtime *rt = c->data;
    rt->claim_busy = 0;
    if (rt->shutting_down) {
        shutdown_check(rt);
        return;
    }
    if (status != 0) {
        log_warn(NULL, "lease.claim_failed", "error=%s", saga_err_name(status));
        return;
    }
    for (size_t i = 0; i < c->n; i++)
        resume_claimed(rt, &c->sagas[i]);
    if (c->n >= rt->cfg.claim_batch) {
        claim_round(rt); /* more are waiting */
        return;
    }
    if (!rt->claim_own_done) {
        rt->claim_own_done = 1;
        claim_round(rt);
    }
}

static void claim_round(struct runtime *rt)
{
    if (rt->claim_busy || rt->shutting_down)
        return;
    unsigned flags = rt->claim_own_done ? STORE_CLAIM_EXPIRED : STORE_CLAIM_OWN;
    if (store_claim(rt->store, rt->cfg.claim_batch, flags, on_claimed, rt) == 0)
        rt->claim_busy = 1;
}

static void on_renewed(const struct store_count *c, int status)
{
    (void)c;
    if (status != 0)
        log_warn(NULL, "lease.renew_failed", "error=%s", saga_err_name(status));
}

static void on_heartbeat(const struct store_count *c, int status)
{
    (void)c;
    if (status != 0)
        log_warn(NULL, "instance.heartbeat_failed", "error=%s", saga_err_name(status));
}

static void lease_tick(struct runtime *rt, struct rtimer *t)
{
    uint64_t now = now_ms();
    if (rt->shutting_down)
        return;
    if (t->kind == RT_RENEW) {
        if (store_renew(rt->store, on_renewed, rt) != 0)
            log_warn(NULL, "lease.renew_refused", NULL);
        if (store_heartbeat(rt->store, on_heartbeat, rt) != 0)
            log_warn(NULL, "instance.heartbeat_refused", NULL);
        if (timerq_arm(&rt->timers, &t->t, now + rt->cfg.lease_ms / 3) != 0)
            log_error(NULL, "lease.timer_lost", NULL);
    } else {
        claim_round(rt);
        if (timerq_arm(&rt->timers, &t->t, now + rt->cfg.lease_ms / 2) != 0)
            log_error(NULL, "lease.timer_lost", NULL);
    }
}

void runtime_start_leases(struct runtime *rt)
{
    uint64_t now = now_ms();
    claim_round(rt);
    if (timerq_arm(&rt->timers, &rt->renew.t, now + rt->cfg.lease_ms / 3) != 0 ||
        timerq_arm(&rt->timers, &rt->claim.t, now + rt->cfg.lease_ms / 2) != 0)
        log_error(NULL, "lease.timer_lost", NULL);
}

/* ---- life cycle ------------------------------------------------------------------------ */

int runtime_new(uv_loop_t *loop, const struct runtime_config *cfg, struct store *store,
                struct registry *registry, struct runtime **out)
{
    struct runtime *rt = calloc(1, sizeof(*rt));
    if (rt == NULL)
        return SAGA_ENOMEM;
    rt->loop = loop;
    rt->cfg = *cfg;
    if (rt->cfg.claim_batch == 0)
        rt->cfg.claim_batch = 100;
    if (rt->cfg.max_wait_ms == 0)
        rt->cfg.max_wait_ms = 300000;
    if (rt->cfg.lease_ms == 0)
        rt->cfg.lease_ms = 15000;
    rt->coordinator_id = strdup(cfg->coordinator_id);
    rt->cfg.coordinator_id = rt->coordinator_id;
    rt->store = store;
    rt->registry = registry;
    rt->map_size = 1024;
    rt->map = calloc(rt->map_size, sizeof(*rt->map));
    rt->waiters.next = rt->waiters.prev = &rt->waiters;
    effects_init(&rt->fx);
    saga_rng_seed(&rt->rng, cfg->seed);
    timerq_timer_init(&rt->renew.t);
    rt->renew.kind = RT_RENEW;
    timerq_timer_init(&rt->claim.t);
    rt->claim.kind = RT_CLAIM;
    if (rt->coordinator_id == NULL || rt->map == NULL)
        goto fail;
    if (timerq_init(loop, &rt->timers, on_timer, NULL, NULL) != 0)
        goto fail;
    *out = rt;
    return 0;

fail:
    free(rt->map);
    free(rt->coordinator_id);
    free(rt);
    return SAGA_ENOMEM;
}

static void on_released(const struct store_count *c, int status)
{
    struct runtime *rt = c->data;
    if (status != 0)
        log_warn(NULL, "lease.release_failed", "error=%s", saga_err_name(status));
    else
        log_info(NULL, "lease.released", "sagas=%llu", (unsigned long long)c->n);
    void (*cb)(void *) = rt->shutdown_cb;
    rt->shutdown_cb = NULL;
    if (cb != NULL)
        cb(rt->shutdown_data);
}

static void shutdown_check(struct runtime *rt)
{
    if (!rt->shutting_down || rt->shutdown_cb == NULL || rt->writes > 0 || rt->claim_busy)
        return;
    if (rt->shutting_down == 2)
        return;
    rt->shutting_down = 2;
    if (store_release(rt->store, on_released, rt) != 0) {
        struct store_count c = {.data = rt};
        on_released(&c, SAGA_EUNAVAIL);
    }
}

void runtime_shutdown(struct runtime *rt, void (*cb)(void *data), void *data)
{
    rt->shutting_down = 1;
    rt->shutdown_cb = cb;
    rt->shutdown_data = data;
    timerq_cancel(&rt->timers, &rt->renew.t);
    timerq_cancel(&rt->timers, &rt->claim.t);
    shutdown_check(rt);
}

static void on_timers_closed(uv_handle_t *handle)
{
    struct runtime *rt = container_of((uv_timer_t *)handle, struct runtime, timers.handle);
    free(rt);
}

void runtime_close(struct runtime **rtp)
{
    struct runtime *rt = *rtp;
    if (rt == NULL)
        return;
    while (rt->waiters.next != &rt->waiters)
        waiter_finish(rt->waiters.next);
    for (size_t i = 0; i < rt->map_size; i++) {
        while (rt->map[i] != NULL) {
            struct rsaga *rs = rt->map[i];
            rs->writes = 0;
            rs_drop(rt, rs);
        }
    }
    while (rt->latest != NULL) {
        struct latest *l = rt->latest;
        rt->latest = l->next;
        free(l);
    }
    while (rt->defs != NULL) {
        struct defentry *e = rt->defs;
        rt->defs = e->next;
        definition_free(&e->def);
        free(e);
    }
    effects_destroy(&rt->fx);
    free(rt->map);
    rt->map = NULL;
    free(rt->coordinator_id);
    rt->coordinator_id = NULL;
    timerq_close(&rt->timers, on_timers_closed);
    *rtp = NULL;
}

void runtime_get_stats(const struct runtime *rt, struct runtime_stats *out)
{
    *out = rt->stats;
}
