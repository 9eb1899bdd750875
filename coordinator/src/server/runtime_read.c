/* The runtime's reads for clients: Get, Wait and Watch, answered from the log;
 * waiters woken by the writes of sagas held here. May not touch sockets or SQL. */
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
        rt_def_from_store(v->rt, r->def);
    v->refetched = 1;
    if (store_get(v->rt->store, &v->id, on_view, v) != 0)
        view_deliver(v, NULL, SAGA_EUNAVAIL, NULL);
}

static void on_view(const struct store_saga_view *view, int status)
{
    struct viewctx *v = view->data;
    const struct definition *def = NULL;
    if (status == 0) {
        def = rt_def_cached(v->rt, view->saga->definition, view->saga->version);
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

/* Answers with the saga as read from the log; a Wait's answer leaves the
 * timeline out (docs/protocol.md: Get and Watch carry it). */
static void reply_info(struct req **req, const struct store_saga_view *view,
                       const struct definition *def, int with_events)
{
    struct wire_msg msg = {.type = WIRE_SAGA_INFO};
    struct store_saga_view v = *view;
    if (!with_events)
        v.n_events = 0;
    if (view_saga_info(&v, def, &msg.saga_info) != 0) {
        wire_msg_free_contents(&msg);
        req_fail(req, SAGA_ENOMEM, "out of memory building the answer");
        return;
    }
    req_reply(req, &msg);
    wire_msg_free_contents(&msg);
}

/* Answers a Wait on a saga held here from memory, right after the write that
 * settled it committed: what the log holds, without reading it back. Fields
 * point into the saga and its definition; nothing is copied. */
static void reply_from_memory(struct req **req, const struct rsaga *rs)
{
    const struct definition *def = rs->def;
    struct step_snapshot snaps[DEF_MAX_STEPS];
    struct saga_snapshot snap;
    struct wire_step_info steps[DEF_MAX_STEPS];
    saga_engine_project(rs->engine, &snap, snaps);
    struct wire_msg msg = {.type = WIRE_SAGA_INFO};
    struct wire_saga_info *info = &msg.saga_info;
    memcpy(info->saga_id, rs->id.bytes, 16);
    info->definition = def->name;
    info->version = def->version;
    info->mode = view_mode(def->mode);
    info->status = saga_engine_status(rs->engine);
    info->error = (char *)(saga_engine_error(rs->engine) ? saga_engine_error(rs->engine) : "");
    info->created_ms = rs->created_ms;
    info->updated_ms = rt_now_ms();
    info->deadline_ms = saga_engine_deadline(rs->engine);
    size_t input_len = 0;
    info->input = (uint8_t *)saga_engine_input(rs->engine, &input_len);
    info->input_len = input_len;
    for (uint16_t i = 0; i < def->n_steps; i++) {
        const struct step_snapshot *ss = &snaps[i];
        steps[i] = (struct wire_step_info){
            .name = def->steps[i].name,
            .service = def->steps[i].service,
            .action = def->steps[i].action,
            .status = ss->status,
            .attempts = ss->attempts,
            .compensate_attempts = ss->compensate_attempts,
            .error = (char *)(ss->error ? ss->error : ""),
            .started_ms = rs->steps[i].started_ms,
            .finished_ms = rs->steps[i].finished_ms,
            .output = (uint8_t *)ss->output,
            .output_len = ss->output_len,
        };
    }
    info->steps = steps;
    info->n_steps = def->n_steps;
    req_reply(req, &msg);
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
        reply_info(&v->req, view, def, 1);
    }
    free(v);
}

void rt_answer_with_view(struct runtime *rt, struct req *req, const struct saga_id *id)
{
    if (load_view(rt, id, req, NULL) != 0)
        req_fail(&req, SAGA_EUNAVAIL, "the saga log is unavailable");
}

void runtime_get(struct runtime *rt, struct req *req, const uint8_t id[16])
{
    struct saga_id sid;
    memcpy(sid.bytes, id, 16);
    rt_answer_with_view(rt, req, &sid);
}

/* ---- Wait and Watch -------------------------------------------------------------------- */

#define WAITER_POLL_REMOTE_MS 200
#define WAITER_POLL_LOCAL_MS  2000

void rt_waiter_finish(struct waiter *w)
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
    uint64_t now = rt_now_ms();
    uint64_t next = now + (w->rs != NULL ? WAITER_POLL_LOCAL_MS : WAITER_POLL_REMOTE_MS);
    if (!w->watch && w->until_ms < next)
        next = w->until_ms;
    if (timerq_arm(&w->rt->timers, &w->timer.t, next) != 0) {
        req_fail(&w->req, SAGA_ENOMEM, "out of memory");
        rt_waiter_finish(w);
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
        rt_waiter_finish(w);
        return;
    }
    w->busy = 1;
    if (load_view(w->rt, &w->id, NULL, w) != 0) {
        w->busy = 0;
        waiter_schedule(w);
    }
}

void rt_waiter_fire(struct waiter *w)
{
    waiter_poll(w);
}

/* A write of `rs` committed: watchers read the new events; waiters read the
 * outcome once the saga settled (or it left this coordinator). */
void rt_waiter_nudge_all(struct rsaga *rs, enum rt_nudge why)
{
    struct waiter *w = rs->waiters;
    if (rs->dropped) {
        rs->waiters = NULL;
        for (struct waiter *x = w; x != NULL; x = x->snext)
            x->rs = NULL;
    }
    while (w != NULL) {
        struct waiter *next = w->snext;
        if (!w->watch && why == RT_NUDGE_SETTLED_DURABLE && !rs->claimed && !w->busy &&
            req_alive(w->req)) {
            reply_from_memory(&w->req, rs);
            rt_waiter_finish(w);
        } else if (w->watch || why != RT_NUDGE_WRITE || rs->dropped) {
            waiter_poll(w);
        }
        w = next;
    }
}

int rt_settled_status(saga_status_t s)
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
        rt_waiter_finish(w);
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
                rt_waiter_finish(w);
                return;
            }
            w->last_seq = e->seq;
        }
    }
    if (rt_settled_status(view->saga->status) || (!w->watch && rt_now_ms() >= w->until_ms)) {
        reply_info(&w->req, view, def, w->watch);
        rt_waiter_finish(w);
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
    w->until_ms = rt_now_ms() + timeout_ms;
    timerq_timer_init(&w->timer.t);
    w->timer.kind = RT_WAITER;
    w->next = rt->waiters.next;
    w->prev = &rt->waiters;
    rt->waiters.next->prev = w;
    rt->waiters.next = w;
    struct rsaga *rs = rt_map_find(rt, id);
    if (rs != NULL && !rs->dropped) {
        w->rs = rs;
        w->snext = rs->waiters;
        rs->waiters = w;
        /* Held here and still running: its settling write wakes the waiter;
         * nothing to read before that. */
        if (!watch && !rt_settled_status(saga_engine_status(rs->engine))) {
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
