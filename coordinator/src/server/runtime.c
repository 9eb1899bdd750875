/* The runtime: the sagas this coordinator holds in memory, between the engine
 * (pure), the store (durable log) and the participants (through sessions):
 * engine calls, log writes, dispatch once durable, timers, leases, recovery.
 * Write-ahead: commands and answers leave only from store write callbacks.
 * May not touch sockets or SQL directly. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/effects.h"
#include "engine/saga.h"
#include "saga/error.h"
#include "server/registry.h"
#include "server/runtime_int.h"
#include "server/session.h"
#include "server/timerq.h"
#include "server/view.h"

static void step_send(struct runtime *rt, struct rstep *st);
static void claim_round(struct runtime *rt);
static void shutdown_check(struct runtime *rt);

uint64_t rt_now_ms(void)
{
    return timerq_wall_ms(NULL);
}

/* ---- the saga map ---------------------------------------------------------------------- */

static size_t id_hash(const struct saga_id *id, size_t size)
{
    return saga_id_hash(id) & (size - 1);
}

struct rsaga *rt_map_find(const struct runtime *rt, const uint8_t id[16])
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

int rt_map_insert(struct runtime *rt, struct rsaga *rs)
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

void rt_map_remove(struct runtime *rt, struct rsaga *rs)
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

const struct definition *rt_def_cached(const struct runtime *rt, const char *name, uint32_t version)
{
    for (struct defentry *e = rt->defs; e != NULL; e = e->next) {
        if (e->def->version == version && strcmp(e->def->name, name) == 0)
            return e->def;
    }
    return NULL;
}

/* Keeps `*def` (taking ownership) unless an equal one is cached; returns the cached one. */
const struct definition *rt_def_keep(struct runtime *rt, struct definition **def)
{
    const struct definition *have = rt_def_cached(rt, (*def)->name, (*def)->version);
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

struct latest *rt_latest_find(const struct runtime *rt, const char *name)
{
    for (struct latest *l = rt->latest; l != NULL; l = l->next) {
        if (strcmp(l->def->name, name) == 0)
            return l;
    }
    return NULL;
}

/* The latest version of `name` if it was read within LATEST_TTL_MS, or NULL. */
const struct definition *rt_latest_fresh(const struct runtime *rt, const char *name, uint64_t now)
{
    const struct latest *l = rt_latest_find(rt, name);
    return l != NULL && now < l->read_ms + LATEST_TTL_MS ? l->def : NULL;
}

/* Notes that `def` is the newest version known of its name, as of `now`. */
void rt_latest_note(struct runtime *rt, const struct definition *def, uint64_t now)
{
    struct latest *l = rt_latest_find(rt, def->name);
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
const struct definition *rt_def_from_store(struct runtime *rt, const struct store_definition *sd)
{
    const struct definition *have = rt_def_cached(rt, sd->name, sd->version);
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
    return rt_def_keep(rt, &def);
}

/* ---- sagas in memory ------------------------------------------------------------------- */

struct rsaga *rt_saga_new(const struct definition *def, const struct saga_id *id, uint64_t epoch)
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
static void rs_maybe_free(struct rsaga *rs)
{
    if (!rs->dropped || rs->writes > 0)
        return;
    saga_engine_free(&rs->engine);
    free(rs);
}

/* Takes `rs` out of service: no timers, no commands, out of the map; waiters
 * go on reading the log. Freed once its writes are done. */
void rt_saga_drop(struct runtime *rt, struct rsaga *rs)
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
    rt_map_remove(rt, rs);
    rt_waiter_nudge_all(rs, RT_NUDGE_SETTLED);
    rt->stats.dropped++;
    rs_maybe_free(rs);
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
        if (timerq_arm(&rt->timers, &st->timer.t, rt_now_ms()) != 0)
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

void rt_answer_with_view(struct runtime *rt, struct req *req, const struct saga_id *id);

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
        rt_saga_drop(rt, rs);
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
            rt_saga_drop(rt, rs);
        } else if (ctx->kind == W_CREATE && status != SAGA_ETIMEDOUT) {
            rt_saga_drop(rt, rs); /* nothing was written: the saga never existed */
            rt->stats.dropped--;
        } else {
            /* The engine ran ahead of the log: drop the saga here and load it
             * again from what is durable. */
            rt_saga_release(rt, rs);
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
        rt_answer_with_view(rt, ctx->req, &rs->id);
        ctx->req = NULL;
    }
    if (ctx->settled) {
        rt->stats.settled++;
        log_info(rs->id_text, "saga.settled", "status=%s",
                 saga_status_name(saga_engine_status(rs->engine)));
        /* The write that settled it is durable: waiters may be answered
         * from memory now. */
        rt_waiter_nudge_all(rs, RT_NUDGE_SETTLED_DURABLE);
        if (saga_status_is_terminal(saga_engine_status(rs->engine)))
            rt_saga_drop(rt, rs);
    } else if (rs->waiters != NULL) {
        rt_waiter_nudge_all(rs, RT_NUDGE_WRITE);
    }

done:
    if (ctx->req != NULL)
        req_drop(&ctx->req);
    free(ctx);
    rs->writes--;
    rs_maybe_free(rs);
    shutdown_check(rt);
}

/* Keeps the times the log is given (step started and finished, saga
 * created), so that a Wait can be answered from memory as the log has it. */
void rt_saga_note_times(struct rsaga *rs, const struct effects *fx)
{
    for (uint32_t i = 0; i < fx->n_records; i++) {
        const struct record *r = &fx->records[i];
        if (r->kind == REC_SAGA_INSERT) {
            rs->created_ms = r->at_ms;
        } else if (r->kind == REC_STEP_UPDATE && r->step >= 0 && r->step < rs->n_steps) {
            struct rstep *st = &rs->steps[r->step];
            if (st->started_ms == 0 && r->step_status != SAGA_STEP_PENDING)
                st->started_ms = r->at_ms;
            st->finished_ms = saga_step_status_is_settled(r->step_status) ? r->at_ms : 0;
        }
    }
}

/* Hands the effects in rt->fx on: timers now, records to the store, commands
 * and answers once the records are durable. */
void rt_saga_apply(struct runtime *rt, struct rsaga *rs, struct req *req, enum wkind kind,
                   const struct store_create *create)
{
    struct effects *fx = &rt->fx;
    if (fx->dropped) {
        if (req != NULL)
            req_fail(&req, SAGA_EFENCED, "saga %s is no longer held by this coordinator",
                     rs->id_text);
        rt_saga_drop(rt, rs);
        return;
    }
    rs_arm_timers(rt, rs, fx);
    if (fx->n_records == 0) {
        for (uint32_t i = 0; i < fx->n_commands; i++)
            rs_dispatch(rt, rs, &fx->commands[i]);
        if (req != NULL)
            rt_answer_with_view(rt, req, &rs->id);
        return;
    }
    rt_saga_note_times(rs, fx);
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
        rt_saga_drop(rt, rs);
        rt->stats.dropped--;
    } else {
        rt_saga_release(rt, rs);
    }
}

/* The in-memory saga can no longer be trusted (its log write failed): drop it
 * and have it loaded again from the log. */
void rt_on_reclaimed(const struct store_claim *c, int status);

void rt_saga_release(struct runtime *rt, struct rsaga *rs)
{
    struct saga_id id = rs->id;
    rt_saga_drop(rt, rs);
    if (rt->shutting_down)
        return;
    if (store_reclaim(rt->store, &id, rt_on_reclaimed, rt) != 0)
        log_warn(rs->id_text, "saga.reclaim_refused",
                 "note=\"claimed again once its lease expires\"");
}

/* ---- events from participants and timers ----------------------------------------------- */

int runtime_reply(struct runtime *rt, const struct wire_reply *m)
{
    rt->stats.replies++;
    struct rsaga *rs = rt_map_find(rt, m->saga_id);
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
    int err = saga_engine_reply(rs->engine, &reply, rt_now_ms(), &rt->fx);
    if (err == 0 && rt->fx.ignored != SAGA_APPLIED) {
        rt->stats.replies_ignored++;
        log_debug(rs->id_text, "reply.ignored", "step=%u op=%s attempt=%u why=%s", m->step_index,
                  saga_op_name(m->op), m->attempt, effects_ignored_name(rt->fx.ignored));
    }
    if (err == 0)
        rt_saga_apply(rt, rs, NULL, W_EVENT, NULL);
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
    uint64_t now = rt_now_ms();
    struct saga_timer t = {.kind = SAGA_TIMER_TIMEOUT,
                           .step = step_index(st),
                           .op = st->op,
                           .attempt = st->attempt,
                           .at_ms = now};
    log_info(rs->id_text, "command.lost", "step=%s op=%s attempt=%u", rs->def->steps[t.step].name,
             saga_op_name(st->op), st->attempt);
    if (saga_engine_timer(rs->engine, &t, now, &rt->fx) == 0)
        rt_saga_apply(rt, rs, NULL, W_EVENT, NULL);
}

void runtime_instance_lost(struct runtime *rt, struct instance *inst)
{
    registry_remove(rt->registry, inst, on_inflight_lost, rt);
}

static void lease_tick(struct runtime *rt, struct rtimer *t);
void rt_waiter_fire(struct waiter *w);

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
                rt_saga_apply(rt, rs, NULL, W_EVENT, NULL);
            return;
        }
        if (st->pending.kind == SAGA_TIMER_TIMEOUT && st->inflight.inst != NULL &&
            st->op == st->pending.op && st->attempt == st->pending.attempt)
            registry_untrack(&st->inflight);
        if (st->pending.kind == SAGA_TIMER_TIMEOUT && st->op == st->pending.op &&
            st->attempt == st->pending.attempt)
            undefer(rt, st);
        if (saga_engine_timer(rs->engine, &st->pending, now, &rt->fx) == 0)
            rt_saga_apply(rt, rs, NULL, W_EVENT, NULL);
        runtime_capacity(rt);
        return;
    }
    case RT_DEADLINE: {
        struct rsaga *rs = container_of(t, struct rsaga, deadline);
        if (rs->dropped)
            return;
        struct saga_timer st = {.kind = SAGA_TIMER_DEADLINE, .step = -1, .at_ms = now};
        if (saga_engine_timer(rs->engine, &st, now, &rt->fx) == 0)
            rt_saga_apply(rt, rs, NULL, W_EVENT, NULL);
        return;
    }
    case RT_WAITER:
        rt_waiter_fire(container_of(t, struct waiter, timer));
        return;
    case RT_RENEW:
    case RT_CLAIM:
        lease_tick(rt, t);
        return;
    }
    log_error(NULL, "timer.unknown_kind", "kind=%d", (int)t->kind);
    abort();
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
    const struct definition *def = rt_def_from_store(rt, c->def);
    if (def == NULL)
        return;
    struct rsaga *old = rt_map_find(rt, c->snap.id.bytes);
    if (old != NULL)
        rt_saga_drop(rt, old); /* our own lease ran out and we took it again: the new epoch wins */
    struct rsaga *rs = rt_saga_new(def, &c->snap.id, c->epoch);
    if (rs == NULL || effects_reserve(&rt->fx, def->n_steps) != 0) {
        free(rs);
        log_error(text, "saga.resume_failed", "reason=no_memory");
        return;
    }
    int err = saga_engine_rebuild(def, &c->snap, &rt->rng, rt_now_ms(), &rt->fx, &rs->engine);
    if (err != 0 || rt_map_insert(rt, rs) != 0) {
        saga_engine_free(&rs->engine);
        free(rs);
        log_error(text, "saga.resume_failed", "error=%s", saga_err_name(err ? err : SAGA_ENOMEM));
        return;
    }
    rs->claimed = 1;
    rs->created_ms = c->snap.created_ms;
    rt->stats.claimed++;
    log_info(text, "saga.resumed", "status=%s epoch=%llu",
             saga_status_name(saga_engine_status(rs->engine)), (unsigned long long)c->epoch);
    rt_saga_apply(rt, rs, NULL, W_EVENT, NULL);
}

void rt_on_reclaimed(const struct store_claim *c, int status)
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

/* Renews the lease of every saga this coordinator drives: the ones in the
 * map, named by id. */
static void renew_all(struct runtime *rt)
{
    if (rt->map_count == 0)
        return;
    struct saga_id *ids = malloc(rt->map_count * sizeof(*ids));
    if (ids == NULL) {
        log_warn(NULL, "lease.renew_refused", "error=%s", saga_err_name(SAGA_ENOMEM));
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < rt->map_size; i++)
        for (struct rsaga *rs = rt->map[i]; rs != NULL && n < rt->map_count; rs = rs->hnext)
            ids[n++] = rs->id;
    int err = store_renew(rt->store, ids, n, on_renewed, rt);
    if (err != 0)
        log_warn(NULL, "lease.renew_refused", "error=%s", saga_err_name(err));
    free(ids);
}

static void on_heartbeat(const struct store_count *c, int status)
{
    (void)c;
    if (status != 0)
        log_warn(NULL, "instance.heartbeat_failed", "error=%s", saga_err_name(status));
}

static void lease_tick(struct runtime *rt, struct rtimer *t)
{
    uint64_t now = rt_now_ms();
    if (rt->shutting_down)
        return;
    if (t->kind == RT_RENEW) {
        renew_all(rt);
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
    uint64_t now = rt_now_ms();
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
        rt_waiter_finish(rt->waiters.next);
    for (size_t i = 0; i < rt->map_size; i++) {
        while (rt->map[i] != NULL) {
            struct rsaga *rs = rt->map[i];
            rs->writes = 0;
            rt_saga_drop(rt, rs);
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
