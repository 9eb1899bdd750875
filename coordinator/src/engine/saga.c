/* The saga engine's state machine: forward steps, compensation, two-phase
 * commit, operator commands and rebuild (docs/engine.md). Pure: it may not do
 * I/O, read a clock or keep global state; it allocates only saga memory. */
#include "engine/saga.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saga/error.h"

#define SAGA_ERROR_MAX  160  /* the saga's own error text, truncated to fit */
#define SAGA_REASON_MAX 1024 /* a participant's reason is cut to this length */

/* Where a step's command stands. */
enum flight {
    FLIGHT_NONE = 0,    /* nothing out: idle, or parked until the saga may act again */
    FLIGHT_OUT = 1,     /* (op, attempt) sent, awaiting a reply or the timeout */
    FLIGHT_BACKOFF = 2, /* (op, attempt + 1) to be sent when the backoff timer fires */
};

/* Which way the saga is going; kept through STUCK so a retry knows what to resume. */
enum phase {
    PHASE_FORWARD = 0,  /* RUNNING, PREPARING */
    PHASE_BACKWARD = 1, /* COMPENSATING, ABORTING */
    PHASE_COMMIT = 2,   /* COMMITTING */
};

struct step_rt {
    uint8_t *output;   /* forward output (owned), NULL when none */
    const char *error; /* the last persisted error: static text or owned */
    uint32_t output_len;
    uint32_t attempts;            /* forward ops dispatched: action, prepare, commit */
    uint32_t compensate_attempts; /* backward ops dispatched: compensate, abort */
    uint32_t base;                /* the attempt counter where the current op's budget began */
    uint8_t status;               /* saga_step_status_t, as persisted */
    uint8_t flight;               /* enum flight */
    uint8_t op;                   /* saga_op_t of the command out or waiting, 0 before any */
    uint8_t may_run;              /* 1: a forward command went out and no FAIL came back */
    uint8_t error_owned;
};

struct saga {
    const struct definition *def;
    struct saga_rng *rng;
    const uint8_t *input; /* inside this allocation, after the steps */
    size_t input_len;
    uint64_t created_ms;
    uint64_t deadline_ms;
    struct saga_id id;
    saga_status_t status;
    uint8_t phase;              /* enum phase */
    uint8_t dropped;            /* lease lost */
    uint8_t deadline_hit;       /* the deadline passed while the pivot was out: no more retries */
    char error[SAGA_ERROR_MAX]; /* "" when none */
    struct step_rt steps[];
};

static const char reason_timeout[] = "timed out";
static const char reason_none[] = "no reason given";
static const char reason_deadline[] = "deadline exceeded";
static const char reason_operator[] = "aborted by operator";
static const char reason_canceled[] = "canceled: the saga is compensating";

/* ---------------------------------------------------------------- helpers */

void saga_rng_seed(struct saga_rng *rng, uint64_t seed)
{
    rng->state = seed;
}

/* splitmix64: small, fast, and good enough for jitter. */
uint64_t saga_rng_next(struct saga_rng *rng)
{
    uint64_t z = (rng->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int is_2pc(const struct saga *s)
{
    return s->def->mode == DEF_MODE_2PC;
}

static int is_backward_op(uint8_t op)
{
    return op == SAGA_OP_COMPENSATE || op == SAGA_OP_ABORT;
}

static int is_forward_op(uint8_t op)
{
    return op == SAGA_OP_ACTION || op == SAGA_OP_PREPARE;
}

static int compensatable(const struct saga *s, uint16_t i)
{
    return is_2pc(s) || s->def->steps[i].kind == DEF_KIND_COMPENSATABLE;
}

static uint32_t *counter_of(struct step_rt *st, uint8_t op)
{
    return is_backward_op(op) ? &st->compensate_attempts : &st->attempts;
}

/* Cuts `len` back so that it does not end inside a UTF-8 sequence. */
static size_t utf8_cut(const char *text, size_t len)
{
    while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
        len--;
    return len;
}

static void step_set_error(struct step_rt *st, const char *text, int owned)
{
    if (st->error_owned)
        free((char *)st->error);
    st->error = text;
    st->error_owned = (uint8_t)(owned && text != NULL);
}

static void step_set_output(struct step_rt *st, uint8_t *output, uint32_t len)
{
    free(st->output);
    st->output = output;
    st->output_len = len;
}

static void saga_set_error(struct saga *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void saga_set_error(struct saga *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->error, sizeof(s->error), fmt, ap);
    va_end(ap);
    if (n < 0)
        s->error[0] = '\0';
    else if ((size_t)n >= sizeof(s->error))
        s->error[utf8_cut(s->error, sizeof(s->error) - 1)] = '\0';
}

static const char *step_name(const struct saga *s, uint16_t i)
{
    const char *name = s->def->steps[i].name;
    return name != NULL ? name : "?";
}

/* The pivot succeeded, or, without a pivot, every compensatable step did: from
 * here on the saga only goes forward. Never true in mode 2pc. */
static int past_pivot(const struct saga *s)
{
    if (is_2pc(s))
        return 0;
    if (s->def->pivot >= 0)
        return s->steps[s->def->pivot].status == SAGA_STEP_SUCCEEDED;
    for (uint16_t i = 0; i < s->def->n_steps; i++) {
        if (s->def->steps[i].kind == DEF_KIND_COMPENSATABLE &&
            s->steps[i].status != SAGA_STEP_SUCCEEDED)
            return 0;
    }
    return 1;
}

static uint64_t wake_of(const struct saga *s)
{
    if (s->status == SAGA_STATUS_RUNNING || s->status == SAGA_STATUS_PREPARING)
        return s->deadline_ms;
    return 0;
}

/* ---------------------------------------------------------------- emitting */

static void emit_saga(struct saga *s, enum record_kind kind, const char *event, uint64_t now,
                      struct effects *fx)
{
    struct record *r = effects_add_record(fx);
    r->kind = kind;
    r->event = event;
    r->at_ms = now;
    r->step = -1;
    r->saga_status = s->status;
    r->deadline_ms = s->deadline_ms;
    r->wake_ms = wake_of(s);
    r->error = s->error[0] != '\0' ? s->error : NULL;
}

static void emit_step(struct saga *s, uint16_t i, const char *event, uint32_t attempt, uint64_t now,
                      struct effects *fx)
{
    const struct step_rt *st = &s->steps[i];
    struct record *r = effects_add_record(fx);
    r->kind = REC_STEP_UPDATE;
    r->event = event;
    r->at_ms = now;
    r->step = i;
    r->attempt = attempt;
    r->step_status = (saga_step_status_t)st->status;
    r->attempts = st->attempts;
    r->compensate_attempts = st->compensate_attempts;
    r->output = st->output;
    r->output_len = st->output_len;
    r->error = st->error;
}

static void arm(struct effects *fx, enum saga_timer_kind kind, int32_t step, uint8_t op,
                uint32_t attempt, uint64_t at_ms)
{
    struct saga_timer *t = effects_add_timer(fx);
    t->kind = kind;
    t->step = step;
    t->op = (saga_op_t)op;
    t->attempt = attempt;
    t->at_ms = at_ms;
}

static const char *dispatch_event(uint8_t op)
{
    switch (op) {
    case SAGA_OP_ACTION:
        return "step.dispatched";
    case SAGA_OP_COMPENSATE:
        return "step.compensating";
    case SAGA_OP_PREPARE:
        return "step.preparing";
    case SAGA_OP_COMMIT:
        return "step.committing";
    default:
        return "step.aborting";
    }
}

/* Sends the next attempt of `op` to step i: its dispatch record, the command
 * and its timeout, all in this call (write-ahead: the record goes first). */
static void dispatch(struct saga *s, uint16_t i, uint8_t op, uint64_t now, struct effects *fx)
{
    struct step_rt *st = &s->steps[i];
    uint32_t *counter = counter_of(st, op);
    uint32_t timeout_ms = s->def->steps[i].timeout_ms;

    if (st->op != op) {
        st->op = op;
        st->base = *counter; /* a new op starts a new budget */
    }
    (*counter)++;
    if (is_forward_op(op))
        st->may_run = 1; /* from now on it may run, even from a late copy of this command */
    st->status = is_forward_op(op) ? SAGA_STEP_RUNNING : SAGA_STEP_COMPENSATING;
    st->flight = FLIGHT_OUT;
    emit_step(s, i, dispatch_event(op), *counter, now, fx);

    struct saga_command *c = effects_add_command(fx);
    c->step = i;
    c->op = (saga_op_t)op;
    c->attempt = *counter;
    c->timeout_ms = timeout_ms;
    if (timeout_ms > 0)
        arm(fx, SAGA_TIMER_TIMEOUT, i, op, *counter, now + timeout_ms);
}

static const struct def_retry *policy_of(const struct saga *s, uint16_t i, uint8_t op)
{
    return is_backward_op(op) ? &s->def->steps[i].compensate_retry : &s->def->steps[i].retry;
}

/* 1 when the attempt that just failed transiently was the last one allowed. */
static int exhausted(const struct saga *s, uint16_t i)
{
    const struct step_rt *st = &s->steps[i];
    if (st->op == SAGA_OP_COMMIT || st->op == SAGA_OP_ABORT)
        return 0; /* sent until acknowledged */
    if (st->op == SAGA_OP_ACTION && past_pivot(s))
        return 0; /* only forward from here: retried without limit */
    uint32_t max = policy_of(s, i, st->op)->max_attempts;
    uint32_t used = is_backward_op(st->op) ? st->compensate_attempts : st->attempts;
    return max != 0 && used - st->base >= max;
}

/* min(max_backoff, backoff * 2^(k-1)) for the k-th attempt of the budget, with
 * jitter uniform in [d/2, d]. A max_backoff of 0 means no cap. */
static uint64_t backoff_of(struct saga *s, uint16_t i)
{
    const struct step_rt *st = &s->steps[i];
    const struct def_retry *p = policy_of(s, i, st->op);
    uint32_t used = is_backward_op(st->op) ? st->compensate_attempts : st->attempts;
    uint32_t k = used - st->base;
    uint64_t cap = p->max_backoff_ms != 0 ? p->max_backoff_ms : UINT32_MAX;
    uint64_t d = p->backoff_ms;

    for (uint32_t j = 1; j < k && d < cap; j++)
        d *= 2;
    if (d > cap)
        d = cap;
    if (s->rng != NULL && d > 1) {
        uint64_t lo = d / 2;
        d = lo + saga_rng_next(s->rng) % (d - lo + 1);
    }
    return d;
}

/* Schedules the next attempt of the step's op after its backoff (at once when
 * the backoff is zero). No record: the next dispatch record is enough. */
static void retry_later(struct saga *s, uint16_t i, uint64_t now, struct effects *fx)
{
    struct step_rt *st = &s->steps[i];
    uint64_t delay = backoff_of(s, i);
    if (delay == 0) {
        dispatch(s, i, st->op, now, fx);
        return;
    }
    st->flight = FLIGHT_BACKOFF;
    arm(fx, SAGA_TIMER_BACKOFF, i, st->op, *counter_of(st, st->op) + 1, now + delay);
}

/* ---------------------------------------------------------------- advancing */

static int deps_succeeded(const struct saga *s, uint16_t i)
{
    const struct def_step *ds = &s->def->steps[i];
    for (uint16_t k = 0; k < ds->n_after; k++) {
        if (s->steps[ds->after[k]].status != SAGA_STEP_SUCCEEDED)
            return 0;
    }
    return 1;
}

static void skip_pending(struct saga *s, uint64_t now, struct effects *fx)
{
    for (uint16_t i = 0; i < s->def->n_steps; i++) {
        if (s->steps[i].status == SAGA_STEP_PENDING) {
            s->steps[i].status = SAGA_STEP_SKIPPED;
            emit_step(s, i, "step.skipped", 0, now, fx);
        }
    }
}

static void settle(struct saga *s, saga_status_t status, const char *event, uint64_t now,
                   struct effects *fx)
{
    s->status = status;
    s->deadline_hit = 0;
    emit_saga(s, REC_SAGA_UPDATE, event, now, fx);
    fx->settled = 1;
}

static void enter_stuck(struct saga *s, uint64_t now, struct effects *fx)
{
    for (uint16_t i = 0; i < s->def->n_steps; i++) {
        if (s->steps[i].flight == FLIGHT_BACKOFF)
            s->steps[i].flight = FLIGHT_NONE; /* parked until an operator retries */
    }
    settle(s, SAGA_STATUS_STUCK, "saga.stuck", now, fx);
}

/* RUNNING: dispatch what is ready; COMPLETED when every step succeeded. A pivot
 * also waits for every compensatable step, a retriable step for the pivot. */
static void advance_forward(struct saga *s, uint64_t now, struct effects *fx)
{
    const struct definition *def = s->def;
    int past = past_pivot(s);
    int all_comp = 1;
    int all_ok = 1;

    for (uint16_t i = 0; i < def->n_steps; i++) {
        if (def->steps[i].kind == DEF_KIND_COMPENSATABLE &&
            s->steps[i].status != SAGA_STEP_SUCCEEDED)
            all_comp = 0;
    }
    for (uint16_t i = 0; i < def->n_steps; i++) {
        struct step_rt *st = &s->steps[i];
        if (st->status == SAGA_STEP_SUCCEEDED)
            continue;
        all_ok = 0;
        if (st->status == SAGA_STEP_RUNNING && st->flight == FLIGHT_NONE) {
            dispatch(s, i, SAGA_OP_ACTION, now, fx); /* parked: resumed */
        } else if (st->status == SAGA_STEP_PENDING && deps_succeeded(s, i)) {
            enum def_kind kind = def->steps[i].kind;
            if ((kind == DEF_KIND_PIVOT && !all_comp) || (kind == DEF_KIND_RETRIABLE && !past))
                continue;
            dispatch(s, i, SAGA_OP_ACTION, now, fx);
        }
    }
    if (all_ok)
        settle(s, SAGA_STATUS_COMPLETED, "saga.completed", now, fx);
}

static void advance_commit(struct saga *s, uint64_t now, struct effects *fx)
{
    int done = 1;
    for (uint16_t i = 0; i < s->def->n_steps; i++) {
        struct step_rt *st = &s->steps[i];
        if (st->status == SAGA_STEP_COMMITTED)
            continue;
        done = 0;
        if (st->status == SAGA_STEP_SUCCEEDED ||
            (st->status == SAGA_STEP_COMPENSATING && st->flight == FLIGHT_NONE))
            dispatch(s, i, SAGA_OP_COMMIT, now, fx);
    }
    if (done)
        settle(s, SAGA_STATUS_COMMITTED, "saga.committed", now, fx);
}

/* PREPARING: prepare what is ready; once every step is prepared the commit
 * decision is logged in this very call, before the first commit goes out. */
static void advance_prepare(struct saga *s, uint64_t now, struct effects *fx)
{
    int all_ok = 1;
    for (uint16_t i = 0; i < s->def->n_steps; i++) {
        struct step_rt *st = &s->steps[i];
        if (st->status == SAGA_STEP_SUCCEEDED)
            continue;
        all_ok = 0;
        if ((st->status == SAGA_STEP_RUNNING && st->flight == FLIGHT_NONE) ||
            (st->status == SAGA_STEP_PENDING && deps_succeeded(s, i)))
            dispatch(s, i, SAGA_OP_PREPARE, now, fx);
    }
    if (!all_ok)
        return;
    s->status = SAGA_STATUS_COMMITTING;
    s->phase = PHASE_COMMIT;
    s->deadline_hit = 0;
    s->error[0] = '\0';
    emit_saga(s, REC_SAGA_UPDATE, "saga.committing", now, fx);
    advance_commit(s, now, fx);
}

/* Whether a step must be compensated (before COMPENSATED): it succeeded, or a
 * command was sent to it and no FAIL came back, so it may have run. */
static int needs_compensation(const struct saga *s, uint16_t i)
{
    const struct step_rt *st = &s->steps[i];
    if (!compensatable(s, i))
        return 0;
    switch (st->status) {
    case SAGA_STEP_SUCCEEDED:
    case SAGA_STEP_COMPENSATING:
    case SAGA_STEP_STUCK:
        return 1;
    case SAGA_STEP_RUNNING:
        return st->flight == FLIGHT_NONE && st->may_run;
    case SAGA_STEP_FAILED:
        return st->may_run;
    default:
        return 0;
    }
}

/* A dependent holds back the compensation of its dependencies while its own
 * forward command is out or its own compensation is not done. */
static int holds_back(const struct saga *s, uint16_t d)
{
    if (s->steps[d].status == SAGA_STEP_RUNNING)
        return 1;
    return needs_compensation(s, d);
}

/* COMPENSATING: compensate, in reverse dependency order, every step that needs
 * it; COMPENSATED once nothing is out and nothing is left. */
static void advance_backward(struct saga *s, uint64_t now, struct effects *fx)
{
    const struct definition *def = s->def;
    int busy = 0;

    for (uint16_t i = 0; i < def->n_steps; i++) {
        struct step_rt *st = &s->steps[i];
        if (st->flight != FLIGHT_NONE) {
            busy = 1;
            continue;
        }
        if (!needs_compensation(s, i))
            continue;
        busy = 1;
        int held = 0;
        for (uint16_t k = 0; k < def->steps[i].n_dependents && !held; k++)
            held = holds_back(s, def->steps[i].dependents[k]);
        if (!held)
            dispatch(s, i, SAGA_OP_COMPENSATE, now, fx);
    }
    if (!busy) {
        skip_pending(s, now, fx);
        settle(s, SAGA_STATUS_COMPENSATED, "saga.compensated", now, fx);
    }
}

/* ABORTING: abort every step whose prepare was ever sent (a prepare still out
 * is overtaken); ABORTED once every one of them acknowledged. */
static void advance_abort(struct saga *s, uint64_t now, struct effects *fx)
{
    int busy = 0;
    for (uint16_t i = 0; i < s->def->n_steps; i++) {
        struct step_rt *st = &s->steps[i];
        if (st->attempts == 0 || st->status == SAGA_STEP_ABORTED)
            continue;
        busy = 1;
        if (st->status == SAGA_STEP_COMPENSATING && st->flight != FLIGHT_NONE)
            continue;
        dispatch(s, i, SAGA_OP_ABORT, now, fx);
    }
    if (!busy) {
        skip_pending(s, now, fx);
        settle(s, SAGA_STATUS_ABORTED, "saga.aborted", now, fx);
    }
}

static void advance(struct saga *s, uint64_t now, struct effects *fx)
{
    switch (s->status) {
    case SAGA_STATUS_RUNNING:
        advance_forward(s, now, fx);
        break;
    case SAGA_STATUS_PREPARING:
        advance_prepare(s, now, fx);
        break;
    case SAGA_STATUS_COMPENSATING:
        advance_backward(s, now, fx);
        break;
    case SAGA_STATUS_COMMITTING:
        advance_commit(s, now, fx);
        break;
    case SAGA_STATUS_ABORTING:
        advance_abort(s, now, fx);
        break;
    default:
        break; /* STUCK and terminal sagas send nothing */
    }
}

/* RUNNING -> COMPENSATING. Retries waiting for their backoff are dropped and
 * their steps compensated (they may have run). Only a step that cannot be
 * compensated is canceled instead; with the pivot barrier none is waiting. */
static void begin_compensation(struct saga *s, uint64_t now, struct effects *fx)
{
    s->status = SAGA_STATUS_COMPENSATING;
    s->phase = PHASE_BACKWARD;
    s->deadline_hit = 0;
    emit_saga(s, REC_SAGA_UPDATE, "saga.compensating", now, fx);
    for (uint16_t i = 0; i < s->def->n_steps; i++) {
        struct step_rt *st = &s->steps[i];
        if (st->status != SAGA_STEP_RUNNING || st->flight != FLIGHT_BACKOFF)
            continue;
        st->flight = FLIGHT_NONE;
        if (!(st->may_run && compensatable(s, i))) {
            st->status = SAGA_STEP_FAILED;
            step_set_error(st, reason_canceled, 0);
            emit_step(s, i, "step.canceled", st->attempts, now, fx);
        }
    }
    advance_backward(s, now, fx);
}

/* PREPARING -> ABORTING (2pc). */
static void begin_abort(struct saga *s, uint64_t now, struct effects *fx)
{
    s->status = SAGA_STATUS_ABORTING;
    s->phase = PHASE_BACKWARD;
    s->deadline_hit = 0;
    emit_saga(s, REC_SAGA_UPDATE, "saga.aborting", now, fx);
    advance_abort(s, now, fx);
}

/* A forward step failed for good while the saga was going forward. */
static void forward_failed(struct saga *s, uint16_t i, const char *why, uint64_t now,
                           struct effects *fx)
{
    const char *name = step_name(s, i);
    if (is_2pc(s)) {
        saga_set_error(s, "step '%s' could not prepare: %s", name, why);
        begin_abort(s, now, fx);
    } else if (past_pivot(s)) {
        saga_set_error(s, "step '%s' failed after the pivot: %s", name, why);
        enter_stuck(s, now, fx);
    } else {
        saga_set_error(s, "step '%s' failed: %s", name, why);
        begin_compensation(s, now, fx);
    }
}

/* ---------------------------------------------------------------- results */

/* A matched reply or timeout. Owned pointers are taken by whoever keeps them. */
struct result {
    saga_outcome_t outcome;
    uint8_t *output; /* OK of a forward op: owned copy */
    uint32_t output_len;
    char *reason_copy;  /* FAIL/RETRY: owned copy, or NULL */
    const char *reason; /* the text: reason_copy or static */
};

static void take_reason(struct step_rt *st, struct result *res)
{
    if (res->reason_copy != NULL) {
        step_set_error(st, res->reason_copy, 1);
        res->reason_copy = NULL;
    } else {
        step_set_error(st, res->reason, 0);
    }
}

static void forward_result(struct saga *s, uint16_t i, struct result *res, uint64_t now,
                           struct effects *fx)
{
    struct step_rt *st = &s->steps[i];
    int active = s->status == SAGA_STATUS_RUNNING || s->status == SAGA_STATUS_PREPARING;
    uint32_t attempt = st->attempts;

    st->flight = FLIGHT_NONE;
    if (res->outcome == SAGA_OUTCOME_OK) {
        st->status = SAGA_STEP_SUCCEEDED;
        step_set_output(st, res->output, res->output_len);
        res->output = NULL;
        step_set_error(st, NULL, 0);
        emit_step(s, i, st->op == SAGA_OP_PREPARE ? "step.prepared" : "step.succeeded", attempt,
                  now, fx);
        advance(s, now, fx);
        return;
    }
    if (res->outcome == SAGA_OUTCOME_FAIL) {
        st->status = SAGA_STEP_FAILED;
        st->may_run = 0; /* a definite refusal: nothing to undo */
        take_reason(st, res);
        emit_step(s, i, "step.failed", attempt, now, fx);
        if (active)
            forward_failed(s, i, st->error, now, fx);
        else
            advance(s, now, fx);
        return;
    }
    /* RETRY, or no reply in time: the step may still run (a RETRY is not
     * remembered by the participant's barrier, so a late copy of the command
     * could run it), so it stays "may have run". */
    if (active) {
        int deadline = s->deadline_hit && (int)i == s->def->pivot;
        if (!deadline && !exhausted(s, i)) {
            retry_later(s, i, now, fx);
            return;
        }
        st->status = SAGA_STEP_FAILED;
        take_reason(st, res);
        emit_step(s, i, "step.failed", attempt, now, fx);
        if (deadline) {
            saga_set_error(s, "%s", reason_deadline);
            begin_compensation(s, now, fx);
        } else {
            char why[320];
            if (st->error != NULL && st->error[0] != '\0')
                snprintf(why, sizeof(why), "%u attempts failed, last: %s", st->attempts - st->base,
                         st->error);
            else
                snprintf(why, sizeof(why), "%u attempts failed", st->attempts - st->base);
            forward_failed(s, i, why, now, fx);
        }
        return;
    }
    if (s->phase == PHASE_FORWARD)
        return; /* STUCK going forward: parked until an operator retries */
    /* Compensating (or stuck compensating): no more forward attempts. */
    if (!(st->may_run && compensatable(s, i))) {
        st->status = SAGA_STEP_FAILED;
        step_set_error(st, reason_canceled, 0);
        emit_step(s, i, "step.canceled", attempt, now, fx);
    }
    advance(s, now, fx);
}

static void backward_result(struct saga *s, uint16_t i, struct result *res, uint64_t now,
                            struct effects *fx)
{
    struct step_rt *st = &s->steps[i];
    uint8_t op = st->op;
    uint32_t attempt = *counter_of(st, op);

    st->flight = FLIGHT_NONE;
    if (res->outcome == SAGA_OUTCOME_OK) {
        if (op == SAGA_OP_COMMIT) {
            st->status = SAGA_STEP_COMMITTED;
            emit_step(s, i, "step.committed", attempt, now, fx);
        } else if (op == SAGA_OP_ABORT) {
            st->status = SAGA_STEP_ABORTED;
            emit_step(s, i, "step.aborted", attempt, now, fx);
        } else {
            st->status = SAGA_STEP_COMPENSATED;
            emit_step(s, i, "step.compensated", attempt, now, fx);
        }
        advance(s, now, fx);
        return;
    }
    int fail = res->outcome == SAGA_OUTCOME_FAIL;
    if (!fail && s->status == SAGA_STATUS_STUCK)
        return; /* parked until an operator retries */
    if (!fail && !exhausted(s, i)) {
        retry_later(s, i, now, fx);
        return;
    }
    st->status = SAGA_STEP_STUCK;
    take_reason(st, res);
    emit_step(s, i, "step.stuck", attempt, now, fx);
    if (s->status == SAGA_STATUS_STUCK)
        return;
    if (fail)
        saga_set_error(s, "step '%s': %s failed: %s", step_name(s, i), saga_op_name(op), st->error);
    else
        saga_set_error(s, "step '%s': %s failed %u times, last: %s", step_name(s, i),
                       saga_op_name(op), attempt - st->base, st->error);
    enter_stuck(s, now, fx);
}

static void apply_result(struct saga *s, uint16_t i, struct result *res, uint64_t now,
                         struct effects *fx)
{
    if (is_forward_op(s->steps[i].op))
        forward_result(s, i, res, now, fx);
    else
        backward_result(s, i, res, now, fx);
}

/* ---------------------------------------------------------------- lifecycle */

static int definition_check(const struct definition *def)
{
    int pivots = 0;
    if (def == NULL || def->n_steps == 0 || def->n_steps > DEF_MAX_STEPS || def->steps == NULL)
        return SAGA_EINVAL;
    if (def->mode != DEF_MODE_SAGA && def->mode != DEF_MODE_2PC)
        return SAGA_EINVAL;
    for (uint16_t i = 0; i < def->n_steps; i++) {
        const struct def_step *ds = &def->steps[i];
        if (ds->kind == DEF_KIND_PIVOT) {
            pivots++;
            if (def->pivot != (int)i)
                return SAGA_EINVAL;
        }
        for (uint16_t k = 0; k < ds->n_after; k++) {
            uint16_t d = ds->after[k];
            if (d >= def->n_steps || d == i)
                return SAGA_EINVAL;
            /* compensatable* pivot? retriable*, along every dependency */
            if (def->mode == DEF_MODE_SAGA && def->steps[d].kind > ds->kind)
                return SAGA_EINVAL;
        }
        for (uint16_t k = 0; k < ds->n_dependents; k++) {
            if (ds->dependents[k] >= def->n_steps)
                return SAGA_EINVAL;
        }
    }
    if (def->mode == DEF_MODE_SAGA && pivots == 0 && def->pivot != -1)
        return SAGA_EINVAL;
    if (def->mode == DEF_MODE_2PC && pivots != 0)
        return SAGA_EINVAL;
    return pivots > 1 ? SAGA_EINVAL : 0;
}

size_t saga_engine_alloc_size(const struct definition *def, size_t input_len)
{
    return sizeof(struct saga) + (size_t)def->n_steps * sizeof(struct step_rt) + input_len;
}

static struct saga *saga_alloc(const struct definition *def, const struct saga_id *id,
                               const uint8_t *input, size_t input_len, struct saga_rng *rng)
{
    struct saga *s = malloc(saga_engine_alloc_size(def, input_len));
    if (s == NULL)
        return NULL;
    memset(s, 0, sizeof(*s) + (size_t)def->n_steps * sizeof(struct step_rt));
    s->def = def;
    s->rng = rng;
    if (id != NULL)
        s->id = *id;
    uint8_t *in = (uint8_t *)&s->steps[def->n_steps];
    if (input_len > 0)
        memcpy(in, input, input_len);
    s->input = in;
    s->input_len = input_len;
    s->status = SAGA_STATUS_UNKNOWN;
    return s;
}

int saga_engine_new(const struct definition *def, const struct saga_id *id, const uint8_t *input,
                    size_t input_len, struct saga_rng *rng, struct saga **out)
{
    *out = NULL;
    if (definition_check(def) != 0 || id == NULL || (input == NULL && input_len > 0))
        return SAGA_EINVAL;
    *out = saga_alloc(def, id, input, input_len, rng);
    return *out != NULL ? 0 : SAGA_ENOMEM;
}

void saga_engine_free(struct saga **sp)
{
    struct saga *s = sp != NULL ? *sp : NULL;
    if (s == NULL)
        return;
    for (uint16_t i = 0; i < s->def->n_steps; i++) {
        step_set_output(&s->steps[i], NULL, 0);
        step_set_error(&s->steps[i], NULL, 0);
    }
    free(s);
    *sp = NULL;
}

/* Common entry: empties fx, refuses a dropped saga, makes room for the call. */
static int enter(struct saga *s, struct effects *fx)
{
    effects_reset(fx);
    if (s->dropped)
        return SAGA_EFENCED;
    return effects_reserve(fx, s->def->n_steps);
}

static int leave(struct saga *s, struct effects *fx)
{
    fx->status = s->status;
    return 0;
}

static int refuse(struct effects *fx, int err)
{
    effects_reset(fx);
    return err;
}

static int ignore(struct saga *s, struct effects *fx, enum saga_ignored why)
{
    fx->ignored = why;
    return leave(s, fx);
}

int saga_engine_start(struct saga *s, uint64_t now_ms, struct effects *fx)
{
    int rc = enter(s, fx);
    if (rc != 0)
        return refuse(fx, rc);
    if (s->status != SAGA_STATUS_UNKNOWN)
        return refuse(fx, SAGA_ESTATE);
    s->status = is_2pc(s) ? SAGA_STATUS_PREPARING : SAGA_STATUS_RUNNING;
    s->phase = PHASE_FORWARD;
    s->created_ms = now_ms;
    s->deadline_ms = s->def->timeout_ms != 0 ? now_ms + s->def->timeout_ms : 0;
    emit_saga(s, REC_SAGA_INSERT, "saga.started", now_ms, fx);
    if (s->deadline_ms != 0)
        arm(fx, SAGA_TIMER_DEADLINE, -1, 0, 0, s->deadline_ms);
    advance(s, now_ms, fx);
    return leave(s, fx);
}

/* Why a reply or timer for (step, op, attempt) does not match, or SAGA_APPLIED. */
static enum saga_ignored match_out(const struct saga *s, uint32_t step, uint8_t op,
                                   uint32_t attempt)
{
    if (s->status == SAGA_STATUS_UNKNOWN || saga_status_is_terminal(s->status))
        return SAGA_IGNORED_FINISHED;
    if (step >= s->def->n_steps)
        return SAGA_IGNORED_UNKNOWN_STEP;
    const struct step_rt *st = &s->steps[step];
    if (st->flight != FLIGHT_OUT)
        return SAGA_IGNORED_NOT_IN_FLIGHT;
    if (st->op != op)
        return SAGA_IGNORED_WRONG_OP;
    if (attempt != (is_backward_op(op) ? st->compensate_attempts : st->attempts))
        return SAGA_IGNORED_WRONG_ATTEMPT;
    return SAGA_APPLIED;
}

int saga_engine_reply(struct saga *s, const struct saga_reply *reply, uint64_t now_ms,
                      struct effects *fx)
{
    struct result res = {0};
    int rc = enter(s, fx);
    if (rc != 0)
        return refuse(fx, rc);
    if (reply == NULL || reply->op < SAGA_OP_ACTION || reply->op > SAGA_OP_ABORT ||
        reply->outcome < SAGA_OUTCOME_OK || reply->outcome > SAGA_OUTCOME_RETRY ||
        reply->output_len > UINT32_MAX || (reply->output == NULL && reply->output_len > 0))
        return refuse(fx, SAGA_EINVAL);
    enum saga_ignored why = match_out(s, reply->step, reply->op, reply->attempt);
    if (why != SAGA_APPLIED)
        return ignore(s, fx, why);

    res.outcome = reply->outcome;
    res.reason = reason_none;
    if (reply->outcome == SAGA_OUTCOME_OK) {
        if (is_forward_op(reply->op) && reply->output_len > 0) {
            res.output = malloc(reply->output_len);
            if (res.output == NULL)
                return refuse(fx, SAGA_ENOMEM);
            memcpy(res.output, reply->output, reply->output_len);
            res.output_len = (uint32_t)reply->output_len;
        }
    } else if (reply->reason != NULL && reply->reason[0] != '\0') {
        size_t len = strnlen(reply->reason, SAGA_REASON_MAX + 1);
        if (len > SAGA_REASON_MAX)
            len = utf8_cut(reply->reason, SAGA_REASON_MAX);
        res.reason_copy = malloc(len + 1);
        if (res.reason_copy == NULL)
            return refuse(fx, SAGA_ENOMEM);
        memcpy(res.reason_copy, reply->reason, len);
        res.reason_copy[len] = '\0';
        res.reason = res.reason_copy;
    }
    apply_result(s, reply->step, &res, now_ms, fx);
    free(res.output);
    free(res.reason_copy);
    return leave(s, fx);
}

/* The pivot failed for good because of the deadline or an operator's abort. */
static void pivot_given_up(struct saga *s, const char *why, uint64_t now, struct effects *fx)
{
    uint16_t p = (uint16_t)s->def->pivot;
    struct step_rt *st = &s->steps[p];
    st->flight = FLIGHT_NONE;
    st->status = SAGA_STEP_FAILED;
    step_set_error(st, why, 0);
    emit_step(s, p, "step.failed", st->attempts, now, fx);
}

static int on_deadline(struct saga *s, uint64_t now, struct effects *fx)
{
    if (now < s->deadline_ms || s->deadline_ms == 0)
        return ignore(s, fx, SAGA_IGNORED_STALE_TIMER);
    if (s->status == SAGA_STATUS_PREPARING) {
        saga_set_error(s, "%s", reason_deadline);
        begin_abort(s, now, fx);
        return leave(s, fx);
    }
    if (s->status != SAGA_STATUS_RUNNING || past_pivot(s))
        return ignore(s, fx, SAGA_IGNORED_STALE_TIMER);
    int p = s->def->pivot;
    if (p >= 0 && s->steps[p].status == SAGA_STEP_RUNNING) {
        if (s->steps[p].flight == FLIGHT_OUT) {
            s->deadline_hit = 1; /* the pivot's attempt decides: no more retries */
            return leave(s, fx);
        }
        pivot_given_up(s, reason_deadline, now, fx);
    }
    saga_set_error(s, "%s", reason_deadline);
    begin_compensation(s, now, fx);
    return leave(s, fx);
}

int saga_engine_timer(struct saga *s, const struct saga_timer *timer, uint64_t now_ms,
                      struct effects *fx)
{
    int rc = enter(s, fx);
    if (rc != 0)
        return refuse(fx, rc);
    if (timer == NULL || timer->kind < SAGA_TIMER_DEADLINE || timer->kind > SAGA_TIMER_BACKOFF)
        return refuse(fx, SAGA_EINVAL);
    if (s->status == SAGA_STATUS_UNKNOWN || saga_status_is_terminal(s->status))
        return ignore(s, fx, SAGA_IGNORED_FINISHED);
    if (timer->kind == SAGA_TIMER_DEADLINE)
        return on_deadline(s, now_ms, fx);
    if (timer->step < 0 || (uint32_t)timer->step >= s->def->n_steps)
        return ignore(s, fx, SAGA_IGNORED_STALE_TIMER);

    uint16_t i = (uint16_t)timer->step;
    struct step_rt *st = &s->steps[i];
    if (timer->kind == SAGA_TIMER_TIMEOUT) {
        if (match_out(s, i, timer->op, timer->attempt) != SAGA_APPLIED)
            return ignore(s, fx, SAGA_IGNORED_STALE_TIMER);
        struct result res = {.outcome = SAGA_OUTCOME_RETRY, .reason = reason_timeout};
        apply_result(s, i, &res, now_ms, fx);
        return leave(s, fx);
    }
    if (st->flight != FLIGHT_BACKOFF || st->op != timer->op ||
        timer->attempt != *counter_of(st, st->op) + 1)
        return ignore(s, fx, SAGA_IGNORED_STALE_TIMER);
    dispatch(s, i, st->op, now_ms, fx);
    return leave(s, fx);
}

int saga_engine_abort(struct saga *s, uint64_t now_ms, struct effects *fx)
{
    int rc = enter(s, fx);
    if (rc != 0)
        return refuse(fx, rc);
    if (s->status == SAGA_STATUS_PREPARING) {
        saga_set_error(s, "%s", reason_operator);
        begin_abort(s, now_ms, fx);
        return leave(s, fx);
    }
    if (s->status != SAGA_STATUS_RUNNING || past_pivot(s))
        return refuse(fx, SAGA_ESTATE);
    int p = s->def->pivot;
    if (p >= 0 && s->steps[p].status == SAGA_STEP_RUNNING) {
        if (s->steps[p].flight == FLIGHT_OUT)
            return refuse(fx, SAGA_ESTATE); /* the pivot's reply decides */
        pivot_given_up(s, reason_operator, now_ms, fx);
    }
    saga_set_error(s, "%s", reason_operator);
    begin_compensation(s, now_ms, fx);
    return leave(s, fx);
}

/* The op a step is sent next in a phase (for steps parked or stuck). */
static uint8_t phase_op(const struct saga *s)
{
    if (s->phase == PHASE_COMMIT)
        return SAGA_OP_COMMIT;
    if (s->phase == PHASE_BACKWARD)
        return is_2pc(s) ? SAGA_OP_ABORT : SAGA_OP_COMPENSATE;
    return is_2pc(s) ? SAGA_OP_PREPARE : SAGA_OP_ACTION;
}

int saga_engine_retry(struct saga *s, uint64_t now_ms, struct effects *fx)
{
    int rc = enter(s, fx);
    if (rc != 0)
        return refuse(fx, rc);
    if (s->status != SAGA_STATUS_STUCK)
        return refuse(fx, SAGA_ESTATE);
    switch (s->phase) {
    case PHASE_FORWARD:
        s->status = is_2pc(s) ? SAGA_STATUS_PREPARING : SAGA_STATUS_RUNNING;
        break;
    case PHASE_COMMIT:
        s->status = SAGA_STATUS_COMMITTING;
        break;
    default:
        s->status = is_2pc(s) ? SAGA_STATUS_ABORTING : SAGA_STATUS_COMPENSATING;
        break;
    }
    s->error[0] = '\0';
    emit_saga(s, REC_SAGA_UPDATE, "saga.retried", now_ms, fx);
    for (uint16_t i = 0; i < s->def->n_steps; i++) {
        struct step_rt *st = &s->steps[i];
        if (st->status == SAGA_STEP_STUCK) {
            /* dispatched again below, with its record, in this call */
            st->status = SAGA_STEP_COMPENSATING;
            st->op = phase_op(s);
        } else if (s->phase == PHASE_FORWARD && st->status == SAGA_STEP_FAILED) {
            st->status = SAGA_STEP_RUNNING; /* failed after the pivot: try again */
            st->op = phase_op(s);
        } else if (st->flight != FLIGHT_NONE ||
                   (st->status != SAGA_STEP_RUNNING && st->status != SAGA_STEP_COMPENSATING)) {
            continue;
        }
        st->base = *counter_of(st, st->op); /* a fresh budget */
    }
    advance(s, now_ms, fx);
    return leave(s, fx);
}

int saga_engine_resolve(struct saga *s, saga_status_t outcome, uint64_t now_ms, struct effects *fx)
{
    int rc = enter(s, fx);
    if (rc != 0)
        return refuse(fx, rc);
    int ok = is_2pc(s) ? outcome == SAGA_STATUS_COMMITTED || outcome == SAGA_STATUS_ABORTED
                       : outcome == SAGA_STATUS_COMPLETED || outcome == SAGA_STATUS_COMPENSATED;
    if (!ok)
        return refuse(fx, SAGA_EINVAL);
    if (s->status != SAGA_STATUS_STUCK)
        return refuse(fx, SAGA_ESTATE);
    /* 2pc: the decision in the log stands; never both commit and abort. */
    if (is_2pc(s) && (outcome == SAGA_STATUS_COMMITTED) != (s->phase == PHASE_COMMIT))
        return refuse(fx, SAGA_ESTATE);
    for (uint16_t i = 0; i < s->def->n_steps; i++)
        s->steps[i].flight = FLIGHT_NONE; /* late replies are ignored from now on */
    skip_pending(s, now_ms, fx);
    saga_set_error(s, "resolved by operator as %s", saga_status_name(outcome));
    settle(s, outcome, "saga.resolved", now_ms, fx);
    return leave(s, fx);
}

int saga_engine_lease_lost(struct saga *s, struct effects *fx)
{
    effects_reset(fx);
    if (s->dropped)
        return SAGA_EFENCED;
    s->dropped = 1;
    fx->dropped = 1;
    return leave(s, fx);
}

int saga_engine_in_doubt(const struct saga *s, uint16_t step, enum saga_decision *out)
{
    if (s->dropped)
        return SAGA_EFENCED;
    if (!is_2pc(s) || step >= s->def->n_steps)
        return SAGA_EINVAL;
    switch (s->status) {
    case SAGA_STATUS_PREPARING:
        *out = SAGA_DECISION_PENDING;
        break;
    case SAGA_STATUS_COMMITTING:
    case SAGA_STATUS_COMMITTED:
        *out = SAGA_DECISION_COMMIT;
        break;
    case SAGA_STATUS_STUCK:
        *out = s->phase == PHASE_COMMIT ? SAGA_DECISION_COMMIT : SAGA_DECISION_ABORT;
        break;
    default:
        *out = SAGA_DECISION_ABORT; /* presumed abort */
        break;
    }
    return 0;
}

/* ---------------------------------------------------------------- rebuild */

static int step_status_valid(const struct definition *def, saga_status_t saga,
                             saga_step_status_t st)
{
#define B(x) (1u << SAGA_STEP_##x)
    unsigned allowed;
    if ((unsigned)st > SAGA_STEP_SKIPPED)
        return 0;
    unsigned bit = 1u << (unsigned)st;
    if (def->mode == DEF_MODE_SAGA) {
        switch (saga) {
        case SAGA_STATUS_RUNNING:
            allowed = B(PENDING) | B(RUNNING) | B(SUCCEEDED);
            break;
        case SAGA_STATUS_COMPENSATING:
            allowed = B(PENDING) | B(RUNNING) | B(SUCCEEDED) | B(FAILED) | B(COMPENSATING) |
                      B(COMPENSATED);
            break;
        case SAGA_STATUS_STUCK:
            allowed = B(PENDING) | B(RUNNING) | B(SUCCEEDED) | B(FAILED) | B(COMPENSATING) |
                      B(COMPENSATED) | B(STUCK);
            break;
        case SAGA_STATUS_COMPLETED:
        case SAGA_STATUS_COMPENSATED:
            allowed = ~(B(COMMITTED) | B(ABORTED) | B(WAITING));
            break;
        default:
            return 0;
        }
    } else {
        switch (saga) {
        case SAGA_STATUS_PREPARING:
            allowed = B(PENDING) | B(RUNNING) | B(SUCCEEDED);
            break;
        case SAGA_STATUS_COMMITTING:
            allowed = B(SUCCEEDED) | B(COMPENSATING) | B(COMMITTED);
            break;
        case SAGA_STATUS_ABORTING:
            allowed =
                B(PENDING) | B(RUNNING) | B(SUCCEEDED) | B(FAILED) | B(COMPENSATING) | B(ABORTED);
            break;
        case SAGA_STATUS_STUCK:
        case SAGA_STATUS_COMMITTED:
        case SAGA_STATUS_ABORTED:
            allowed = ~(B(COMPENSATED) | B(WAITING));
            break;
        default:
            return 0;
        }
    }
#undef B
    return (allowed & bit) != 0;
}

/* The phase of a persisted saga; for STUCK it is read off the steps: a
 * compensation left traces (mode saga); a 2pc decision shows in what was
 * committed or aborted, and an abort is counted in compensate_attempts. */
static int phase_of(const struct definition *def, const struct saga_snapshot *snap)
{
    int backward = 0;
    int commit = 0;
    switch (snap->status) {
    case SAGA_STATUS_RUNNING:
    case SAGA_STATUS_PREPARING:
    case SAGA_STATUS_COMPLETED:
        return PHASE_FORWARD;
    case SAGA_STATUS_COMMITTING:
    case SAGA_STATUS_COMMITTED:
        return PHASE_COMMIT;
    case SAGA_STATUS_STUCK:
        break;
    default:
        return PHASE_BACKWARD;
    }
    for (uint16_t i = 0; i < snap->n_steps; i++) {
        const struct step_snapshot *st = &snap->steps[i];
        if (def->mode == DEF_MODE_SAGA) {
            if (st->status == SAGA_STEP_COMPENSATING || st->status == SAGA_STEP_COMPENSATED ||
                st->status == SAGA_STEP_STUCK)
                backward = 1;
        } else if (st->status == SAGA_STEP_ABORTED || st->compensate_attempts > 0) {
            backward = 1;
        } else if (st->status == SAGA_STEP_COMMITTED || st->status == SAGA_STEP_COMPENSATING ||
                   st->status == SAGA_STEP_STUCK) {
            commit = 1;
        }
    }
    if (def->mode == DEF_MODE_SAGA)
        return backward ? PHASE_BACKWARD : PHASE_FORWARD;
    if (backward == commit)
        return -1; /* no decision, or both: not a state this engine writes */
    return commit ? PHASE_COMMIT : PHASE_BACKWARD;
}

static char *copy_text(const char *text)
{
    size_t len = strlen(text);
    char *copy = malloc(len + 1);
    if (copy != NULL)
        memcpy(copy, text, len + 1);
    return copy;
}

static int rebuild_steps(struct saga *s, const struct saga_snapshot *snap)
{
    for (uint16_t i = 0; i < snap->n_steps; i++) {
        const struct step_snapshot *in = &snap->steps[i];
        struct step_rt *st = &s->steps[i];
        st->status = (uint8_t)(in->status == SAGA_STEP_WAITING ? SAGA_STEP_RUNNING : in->status);
        st->attempts = in->attempts;
        st->compensate_attempts = in->compensate_attempts;
        if (in->output_len > 0) {
            st->output = malloc(in->output_len);
            if (st->output == NULL)
                return SAGA_ENOMEM;
            memcpy(st->output, in->output, in->output_len);
            st->output_len = (uint32_t)in->output_len;
        }
        if (in->error != NULL) {
            char *e = copy_text(in->error);
            if (e == NULL)
                return SAGA_ENOMEM;
            step_set_error(st, e, 1);
        }
        /* A command that was out may have run; it is sent again as its next
         * attempt, with a fresh budget (a redelivery, not a new try). */
        st->may_run = st->status == SAGA_STEP_RUNNING;
        switch (st->status) {
        case SAGA_STEP_RUNNING:
            st->op = is_2pc(s) ? SAGA_OP_PREPARE : SAGA_OP_ACTION;
            break;
        case SAGA_STEP_FAILED:
            if (s->phase == PHASE_FORWARD)
                st->op = SAGA_OP_ACTION; /* failed after the pivot: a retry sends it again */
            break;
        case SAGA_STEP_COMPENSATING:
        case SAGA_STEP_STUCK:
            st->op = phase_op(s);
            break;
        default:
            break;
        }
        st->base = st->op != 0 ? *counter_of(st, st->op) : 0;
    }
    return 0;
}

int saga_engine_rebuild(const struct definition *def, const struct saga_snapshot *snap,
                        struct saga_rng *rng, uint64_t now_ms, struct effects *fx,
                        struct saga **out)
{
    struct saga *s = NULL;
    int rc;

    *out = NULL;
    effects_reset(fx);
    if (definition_check(def) != 0 || snap == NULL || snap->n_steps != def->n_steps ||
        snap->steps == NULL || (snap->input == NULL && snap->input_len > 0))
        return SAGA_EINVAL;
    for (uint16_t i = 0; i < snap->n_steps; i++) {
        if (!step_status_valid(def, snap->status, snap->steps[i].status) ||
            snap->steps[i].output_len > UINT32_MAX ||
            (snap->steps[i].output == NULL && snap->steps[i].output_len > 0))
            return SAGA_EINVAL;
    }
    int phase = phase_of(def, snap);
    if (phase < 0)
        return SAGA_EINVAL;
    rc = effects_reserve(fx, def->n_steps);
    if (rc != 0)
        return rc;
    s = saga_alloc(def, &snap->id, snap->input, snap->input_len, rng);
    if (s == NULL)
        return SAGA_ENOMEM;
    s->status = snap->status;
    s->phase = (uint8_t)phase;
    s->created_ms = snap->created_ms;
    s->deadline_ms = snap->deadline_ms;
    if (snap->error != NULL)
        saga_set_error(s, "%s", snap->error);
    rc = rebuild_steps(s, snap);
    if (rc != 0)
        goto fail;
    /* A STUCK saga going forward must be past its pivot: only then is a step
     * failure not compensated. */
    if (s->status == SAGA_STATUS_STUCK && !is_2pc(s) && s->phase == PHASE_FORWARD &&
        !past_pivot(s)) {
        rc = SAGA_EINVAL;
        goto fail;
    }

    if (s->deadline_ms != 0 && ((s->status == SAGA_STATUS_RUNNING && !past_pivot(s)) ||
                                s->status == SAGA_STATUS_PREPARING))
        arm(fx, SAGA_TIMER_DEADLINE, -1, 0, 0, s->deadline_ms);
    advance(s, now_ms, fx);
    *out = s;
    return leave(s, fx);

fail:
    saga_engine_free(&s);
    effects_reset(fx);
    return rc;
}

/* ---------------------------------------------------------------- accessors */

const struct definition *saga_engine_definition(const struct saga *s)
{
    return s->def;
}

const struct saga_id *saga_engine_id(const struct saga *s)
{
    return &s->id;
}

saga_status_t saga_engine_status(const struct saga *s)
{
    return s->status;
}

const char *saga_engine_error(const struct saga *s)
{
    return s->error[0] != '\0' ? s->error : NULL;
}

uint64_t saga_engine_deadline(const struct saga *s)
{
    return s->deadline_ms;
}

const uint8_t *saga_engine_input(const struct saga *s, size_t *len)
{
    *len = s->input_len;
    return s->input;
}

saga_step_status_t saga_engine_step_status(const struct saga *s, uint16_t step)
{
    if (step >= s->def->n_steps)
        return SAGA_STEP_PENDING;
    return (saga_step_status_t)s->steps[step].status;
}

const uint8_t *saga_engine_step_output(const struct saga *s, uint16_t step, size_t *len)
{
    *len = 0;
    if (step >= s->def->n_steps || s->steps[step].output == NULL)
        return NULL;
    *len = s->steps[step].output_len;
    return s->steps[step].output;
}

void saga_engine_project(const struct saga *s, struct saga_snapshot *snap,
                         struct step_snapshot *steps)
{
    memset(snap, 0, sizeof(*snap));
    snap->id = s->id;
    snap->status = s->status;
    snap->created_ms = s->created_ms;
    snap->deadline_ms = s->deadline_ms;
    snap->wake_ms = wake_of(s);
    snap->input = s->input;
    snap->input_len = s->input_len;
    snap->error = saga_engine_error(s);
    snap->n_steps = s->def->n_steps;
    snap->steps = steps;
    for (uint16_t i = 0; i < s->def->n_steps; i++) {
        const struct step_rt *st = &s->steps[i];
        steps[i].status = (saga_step_status_t)st->status;
        steps[i].attempts = st->attempts;
        steps[i].compensate_attempts = st->compensate_attempts;
        steps[i].output = st->output;
        steps[i].output_len = st->output_len;
        steps[i].error = st->error;
    }
}
