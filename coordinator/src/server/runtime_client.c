/* The runtime's client requests that change things: Define, Start, List,
 * operator commands and the 2PC in-doubt query. May not touch sockets or SQL. */
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
#include <sys/random.h>

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
        const struct definition *kept = rt_def_keep(ctx->rt, &ctx->def);
        if (kept != NULL)
            rt_latest_note(ctx->rt, kept, rt_now_ms());
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

static int define_def(struct runtime *rt, struct definition *def, store_define_cb cb, void *data)
{
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
    if (define_def(rt, def, on_defined, ctx) != 0) {
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

/* A version 7 UUID: 48 bits of Unix milliseconds, then 74 random bits (around
 * the version and variant bits). New sagas sort by creation time, so the rows
 * and index entries of the sagas being written sit together at the right-hand
 * edge of each index, in memory, instead of each on a random page; the random
 * part keeps ids unguessable and unique across coordinators. */
static int saga_id_new(struct saga_id *id, uint64_t unix_ms)
{
    if (getrandom(id->bytes + 6, sizeof(id->bytes) - 6, 0) != (ssize_t)(sizeof(id->bytes) - 6))
        return -1;
    for (int i = 0; i < 6; i++)
        id->bytes[i] = (uint8_t)(unix_ms >> (40 - 8 * i));
    id->bytes[6] = (uint8_t)((id->bytes[6] & 0x0f) | 0x70); /* version 7 */
    id->bytes[8] = (uint8_t)((id->bytes[8] & 0x3f) | 0x80); /* variant 1 */
    return 0;
}

static void start_with(struct startctx *ctx, const struct definition *def)
{
    struct runtime *rt = ctx->rt;
    struct saga_id id;
    if (saga_id_new(&id, rt_now_ms()) != 0) {
        req_fail(&ctx->req, SAGA_EINTERNAL, "no randomness for a saga id");
        start_free(ctx);
        return;
    }
    struct rsaga *rs = rt_saga_new(def, &id, 1);
    if (rs == NULL || effects_reserve(&rt->fx, def->n_steps) != 0 ||
        saga_engine_new(def, &id, ctx->input, ctx->input_len, &rt->rng, &rs->engine) != 0) {
        free(rs);
        req_fail(&ctx->req, SAGA_ENOMEM, "out of memory");
        start_free(ctx);
        return;
    }
    if (rt_map_insert(rt, rs) != 0 || saga_engine_start(rs->engine, rt_now_ms(), &rt->fx) != 0) {
        rt_map_remove(rt, rs);
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
    rt_saga_apply(rt, rs, req, W_CREATE, &create);
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
    const struct definition *def = rt_def_from_store(ctx->rt, r->def);
    if (def == NULL) {
        req_fail(&ctx->req, SAGA_EINTERNAL, "stored definition %s version %u does not parse",
                 r->def->name, r->def->version);
        start_free(ctx);
        return;
    }
    if (ctx->version == 0) {
        struct latest *l = rt_latest_find(ctx->rt, def->name);
        if (l != NULL && l->def->version > def->version)
            l->def = def; /* an older version read back: the log is the truth */
        rt_latest_note(ctx->rt, def, rt_now_ms());
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
    const struct definition *def = rt_def_keep(ctx->rt, &ctx->inline_def);
    if (def == NULL) {
        req_fail(&ctx->req, SAGA_ENOMEM, "out of memory");
        start_free(ctx);
        return;
    }
    rt_latest_note(ctx->rt, def, rt_now_ms()); /* as a Define does: it may be the newest version */
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
            rt_def_cached(rt, ctx->inline_def->name, ctx->inline_def->version);
        if (have != NULL && strcmp(have->hash, ctx->inline_def->hash) == 0) {
            start_with(ctx, have);
            return;
        }
        if (define_def(rt, ctx->inline_def, on_start_defined, ctx) != 0)
            goto unavailable;
        return;
    }
    ctx->name = strdup(m->definition ? m->definition : "");
    if (ctx->name == NULL)
        goto nomem;
    ctx->version = m->version;
    const struct definition *def = m->version != 0
                                       ? rt_def_cached(rt, m->definition, m->version)
                                       : rt_latest_fresh(rt, m->definition, rt_now_ms());
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
    saga_status_t status; /* of a saga another coordinator holds */
    char *owner;          /* its holder's instance id */
};

static void opctx_free(struct opctx *ctx)
{
    free(ctx->owner);
    free(ctx);
}

/* Says where to send the command: the holder's address when it is alive. */
static void on_op_holder(const struct store_instances *r, int status)
{
    struct opctx *ctx = r->data;
    const char *address = NULL;
    for (size_t i = 0; status == 0 && i < r->n; i++)
        if (strcmp(r->items[i].id, ctx->owner) == 0)
            address = r->items[i].address;
    if (address != NULL)
        req_fail_held(&ctx->req, address,
                      "saga is %s and held by coordinator %s at %s; send the command there "
                      "(sagactl follows by itself)",
                      saga_status_name(ctx->status), ctx->owner, address);
    else
        req_fail(&ctx->req, SAGA_ESTATE,
                 "saga is %s and held by coordinator %s, which has not been heard from lately; "
                 "a live coordinator takes it over once its lease ends, then try again",
                 saga_status_name(ctx->status), ctx->owner);
    opctx_free(ctx);
}

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
    } else if (view->saga->owner == NULL) {
        req_fail(&ctx->req, SAGA_ESTATE,
                 "saga is %s and held by no coordinator yet; a live coordinator takes it over "
                 "within half a lease, then try again",
                 saga_status_name(view->saga->status));
    } else {
        ctx->status = view->saga->status;
        ctx->owner = strdup(view->saga->owner);
        if (ctx->owner != NULL &&
            store_instances(ctx->rt->store, ctx->rt->cfg.lease_ms, on_op_holder, ctx) == 0)
            return;
        req_fail(&ctx->req, SAGA_ESTATE,
                 "saga is %s and held by coordinator %s; send the command there",
                 saga_status_name(view->saga->status), view->saga->owner);
    }
    opctx_free(ctx);
}

void runtime_operate(struct runtime *rt, struct req *req, enum runtime_op op, const uint8_t id[16],
                     saga_status_t as, const char *reason)
{
    struct rsaga *rs = rt_map_find(rt, id);
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
            opctx_free(ctx);
        }
        return;
    }
    uint64_t now = rt_now_ms();
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
    rt_saga_apply(rt, rs, req, W_OPERATE, NULL);
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
    struct rsaga *rs = rt_map_find(rt, m->saga_id);
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
