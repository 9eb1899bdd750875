/* Randomized invariant test of the saga engine: random definitions (both
 * modes), participants that answer OK/FAIL/RETRY behind a network that delays,
 * drops, duplicates and reorders, timers, operator commands, crashes and lease
 * losses rebuilt from a model store; every invariant is checked after every
 * engine call, and every saga must finish once the participants behave.
 *
 *   test_saga_random [SEED [SAGAS]]       (or SAGA_RANDOM_SEED, SAGA_RANDOM_SAGAS)
 *   test_saga_random --one SAGA_SEED [--trace]   replays one saga */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine_fixture.h"

#define MAX_STEPS     12
#define CALM_LIMIT    20000 /* events after the chaos within which a saga must finish */
#define DEFAULT_SAGAS 30000

struct rnd {
    uint64_t s;
};

static uint64_t rnd_next(struct rnd *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint32_t below(struct rnd *r, uint32_t n)
{
    return n == 0 ? 0 : (uint32_t)(rnd_next(r) % n);
}

static int chance(struct rnd *r, unsigned per_mille)
{
    return below(r, 1000) < per_mille;
}

enum ev_kind { EV_DELIVER, EV_REPLY, EV_TIMER };

struct event {
    uint64_t at;
    uint64_t seq;
    enum ev_kind kind;
    struct saga_command cmd; /* EV_DELIVER */
    struct saga_reply reply; /* EV_REPLY; output and reason are static or in `part` */
    struct saga_timer timer; /* EV_TIMER */
};

/* One participant per step, with the SDK barrier's rules: the first definite
 * outcome (OK or FAIL) is remembered per (saga, step, op); a compensation or
 * abort that comes first is a null one and fences off the late action. */
struct part {
    uint8_t action;   /* 0 not run, 1 ran (OK), 2 refused (FAIL) */
    uint8_t guard;    /* compensated before it ran */
    uint8_t undone;   /* compensation ran with effect */
    uint8_t prepared; /* 2pc: 0, 1 prepared, 2 refused */
    uint8_t committed;
    uint8_t aborted;
    char output[16];
};

struct stats {
    uint64_t sagas, calls, events, crashes, lease_losses, lost_calls, ignored, operator_cmds;
    uint64_t ends[16];
    uint64_t resolved, stuck_seen;
};

struct world {
    uint64_t seed;
    int trace;
    struct rnd r;
    struct saga_rng jitter;
    struct definition *def;
    struct saga *s;
    struct effects fx;
    struct model_store store;
    uint64_t now;
    uint64_t seq;
    struct event *ev;
    size_t n_ev, cap_ev;
    struct part part[MAX_STEPS];
    int calm;
    /* what the run has shown so far, across rebuilds */
    int comp_started, pivot_ok, resolved, commit_sent, abort_sent, comp_sent;
    int prepared_ok[MAX_STEPS];
    int refused[MAX_STEPS]; /* the engine took a FAIL for the step's action */
    int ever_succeeded[MAX_STEPS];
    enum saga_decision told; /* the first definite in-doubt answer, or PENDING */
    struct stats *stats;
};

/* The seed of the saga being run, for the abort hook: file-local test state,
 * written before each saga, read only when an abort() ends the process. */
static char replay_line[128];

static void on_abort(int sig)
{
    (void)sig;
    ssize_t n = write(2, replay_line, strlen(replay_line));
    (void)n;
    signal(SIGABRT, SIG_DFL);
    raise(SIGABRT);
}

static void violation(struct world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void violation(struct world *w, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr,
            "INVARIANT BROKEN (saga seed 0x%016" PRIx64 ", now %" PRIu64 ", status %s): ", w->seed,
            w->now, w->s != NULL ? saga_status_name(saga_engine_status(w->s)) : "-");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", replay_line);
    exit(1);
}

static void trace(struct world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void trace(struct world *w, const char *fmt, ...)
{
    if (!w->trace)
        return;
    va_list ap;
    fprintf(stderr, "[%8" PRIu64 "] ", w->now);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---------------------------------------------------------------- definitions */

static struct definition *random_def(struct rnd *r)
{
    enum def_mode mode = chance(r, 250) ? DEF_MODE_2PC : DEF_MODE_SAGA;
    uint16_t n = (uint16_t)(1 + below(r, mode == DEF_MODE_2PC ? 6 : MAX_STEPS));
    struct definition *def = fixture_def_alloc(mode, n);
    uint16_t comp = mode == DEF_MODE_2PC ? n : (uint16_t)below(r, n + 1u);
    int pivot = comp < n && chance(r, 600);

    for (uint16_t i = 0; i < n; i++) {
        struct def_step *st = &def->steps[i];
        st->kind = i < comp               ? DEF_KIND_COMPENSATABLE
                   : (i == comp && pivot) ? DEF_KIND_PIVOT
                                          : DEF_KIND_RETRIABLE;
        for (uint16_t j = 0; j < i; j++) {
            if (chance(r, 300))
                fixture_after(def, i, j);
        }
        st->timeout_ms = chance(r, 100) ? 0 : 20 + below(r, 300);
        st->retry.max_attempts = st->kind == DEF_KIND_RETRIABLE ? 0 : below(r, 5);
        st->retry.backoff_ms = chance(r, 200) ? 0 : 1 + below(r, 50);
        st->retry.max_backoff_ms = st->retry.backoff_ms + below(r, 200);
        st->compensate_retry.max_attempts = below(r, 5);
        st->compensate_retry.backoff_ms = chance(r, 200) ? 0 : 1 + below(r, 50);
        st->compensate_retry.max_backoff_ms = st->compensate_retry.backoff_ms + below(r, 200);
    }
    def->timeout_ms = chance(r, 300) ? 200 + below(r, 3000) : 0;
    fixture_finish(def);
    return def;
}

/* ---------------------------------------------------------------- events */

static void push(struct world *w, struct event e)
{
    if (w->n_ev == w->cap_ev) {
        w->cap_ev = w->cap_ev ? 2 * w->cap_ev : 64;
        w->ev = realloc(w->ev, w->cap_ev * sizeof(*w->ev));
        if (w->ev == NULL)
            abort();
    }
    e.seq = w->seq++;
    w->ev[w->n_ev++] = e;
}

static struct event pop(struct world *w)
{
    size_t pick = 0;
    if (!w->calm && chance(&w->r, 150)) {
        pick = below(&w->r, (uint32_t)w->n_ev);
    } else {
        for (size_t i = 1; i < w->n_ev; i++) {
            if (w->ev[i].at < w->ev[pick].at ||
                (w->ev[i].at == w->ev[pick].at && w->ev[i].seq < w->ev[pick].seq))
                pick = i;
        }
    }
    struct event e = w->ev[pick];
    w->ev[pick] = w->ev[--w->n_ev];
    if (e.at > w->now)
        w->now = e.at;
    return e;
}

/* A delay for one leg (command or reply): in the chaos, long enough that the
 * two legs together may overrun the step timeout; once calm, well inside it. */
static uint64_t leg_delay(struct world *w, uint16_t step)
{
    uint32_t t = w->def->steps[step].timeout_ms;
    uint32_t span = t > 0 ? t : 100;
    if (w->calm)
        return below(&w->r, span > 2 ? span / 2 - 1 : 1);
    return below(&w->r, span + 1);
}

static int lossy(struct world *w, uint16_t step)
{
    return !w->calm && w->def->steps[step].timeout_ms > 0 && chance(&w->r, 50);
}

/* ---------------------------------------------------------------- checks */

/* Checks one call's effects, then applies them: records to the store, commands
 * to the network, timers to the clock. `prior` holds the store's attempt
 * counters before a rebuild (commands must be the next attempt), or NULL. */
static void take_effects(struct world *w, const char *what, const uint32_t (*prior)[2])
{
    const struct effects *fx = &w->fx;
    char why[256];

    w->stats->calls++;
    if (fx->ignored != SAGA_APPLIED) {
        w->stats->ignored++;
        if (fx->n_records || fx->n_commands || fx->n_timers)
            violation(w, "%s: an ignored event had effects", what);
    }
    /* write-ahead: each command follows its own dispatch record in this call */
    for (uint32_t c = 0; c < fx->n_commands; c++) {
        const struct saga_command *cmd = &fx->commands[c];
        int backward = cmd->op == SAGA_OP_COMPENSATE || cmd->op == SAGA_OP_ABORT;
        int found = 0;
        for (uint32_t i = 0; i < fx->n_records && !found; i++) {
            const struct record *r = &fx->records[i];
            found = r->kind == REC_STEP_UPDATE && r->step == cmd->step &&
                    r->attempt == cmd->attempt &&
                    (backward ? r->compensate_attempts : r->attempts) == cmd->attempt &&
                    r->step_status == (cmd->op == SAGA_OP_ACTION || cmd->op == SAGA_OP_PREPARE
                                           ? SAGA_STEP_RUNNING
                                           : SAGA_STEP_COMPENSATING);
        }
        if (!found)
            violation(w, "%s: %s to step %u attempt %u without its dispatch record", what,
                      saga_op_name(cmd->op), cmd->step, cmd->attempt);
        if (prior != NULL && cmd->attempt != prior[cmd->step][backward] + 1)
            violation(w, "rebuild sent %s to step %u as attempt %u after %u", saga_op_name(cmd->op),
                      cmd->step, cmd->attempt, prior[cmd->step][backward]);
    }

    model_store_apply(&w->store, fx);
    for (uint32_t i = 0; i < fx->n_records; i++) {
        const struct record *r = &fx->records[i];
        if (r->kind != REC_STEP_UPDATE) {
            if (r->saga_status == SAGA_STATUS_COMPENSATING)
                w->comp_started = 1;
            if (strcmp(r->event, "saga.resolved") == 0)
                w->resolved = 1;
            if (r->saga_status == SAGA_STATUS_STUCK)
                w->stats->stuck_seen++;
            continue;
        }
        if (r->step_status == SAGA_STEP_SUCCEEDED) {
            w->ever_succeeded[r->step] = 1;
            if (r->step == w->def->pivot)
                w->pivot_ok = 1;
            if (strcmp(r->event, "step.prepared") == 0)
                w->prepared_ok[r->step] = 1;
        }
    }
    if (!fixture_matches_store(w->s, &w->store, why, sizeof(why)))
        violation(w, "%s: the saga differs from what is persisted: %s", what, why);
    if (fx->status != saga_engine_status(w->s))
        violation(w, "%s: fx->status is not the saga's", what);
    if (fx->settled && !saga_status_is_terminal(fx->status) && fx->status != SAGA_STATUS_STUCK)
        violation(w, "%s: settled in %s", what, saga_status_name(fx->status));
    for (uint16_t i = 0; i < w->store.n_steps; i++) {
        if (w->store.steps[i].compensated_results > 1)
            violation(w, "step %u compensated %u times", i, w->store.steps[i].compensated_results);
    }

    for (uint32_t c = 0; c < fx->n_commands; c++) {
        const struct saga_command *cmd = &fx->commands[c];
        const struct def_step *ds = &w->def->steps[cmd->step];
        switch (cmd->op) {
        case SAGA_OP_ACTION:
            if (w->comp_started)
                violation(w, "action to step %u after compensation started", cmd->step);
            break;
        case SAGA_OP_COMPENSATE:
            w->comp_sent = 1;
            if (w->refused[cmd->step])
                violation(w, "compensation of step %u, which refused its action", cmd->step);
            if (w->pivot_ok)
                violation(w, "compensation of step %u after the pivot succeeded", cmd->step);
            if (ds->kind != DEF_KIND_COMPENSATABLE)
                violation(w, "compensation of %s step %u",
                          ds->kind == DEF_KIND_PIVOT ? "pivot" : "retriable", cmd->step);
            for (uint16_t k = 0; k < ds->n_dependents; k++) {
                saga_step_status_t d = w->store.steps[ds->dependents[k]].status;
                if (d != SAGA_STEP_COMPENSATED && d != SAGA_STEP_FAILED && d != SAGA_STEP_PENDING &&
                    d != SAGA_STEP_SKIPPED)
                    violation(w, "step %u compensated while its dependent %u is %s", cmd->step,
                              ds->dependents[k], saga_step_status_name(d));
            }
            break;
        case SAGA_OP_COMMIT:
            w->commit_sent = 1;
            for (uint16_t i = 0; i < w->def->n_steps; i++) {
                if (!w->prepared_ok[i])
                    violation(w, "commit sent though step %u never prepared", i);
            }
            break;
        case SAGA_OP_ABORT:
            w->abort_sent = 1;
            break;
        default:
            break;
        }
        if (w->commit_sent && w->abort_sent)
            violation(w, "both commit and abort were sent");

        /* to the network */
        if (lossy(w, cmd->step))
            continue;
        struct event e = {.at = w->now + leg_delay(w, cmd->step), .kind = EV_DELIVER, .cmd = *cmd};
        push(w, e);
        if (!w->calm && chance(&w->r, 80)) {
            /* a copy, delivered late: at least once means sometimes twice */
            e.at = w->now + leg_delay(w, cmd->step) * (1 + below(&w->r, 8));
            push(w, e);
        }
    }
    for (uint32_t t = 0; t < fx->n_timers; t++) {
        struct event e = {.at = fx->timers[t].at_ms, .kind = EV_TIMER, .timer = fx->timers[t]};
        push(w, e);
    }
}

/* ---------------------------------------------------------------- engine calls */

static void rebuild(struct world *w, const char *why)
{
    struct saga_snapshot snap;
    uint32_t prior[MAX_STEPS][2];
    saga_engine_free(&w->s);
    model_store_snapshot(&w->store, &snap);
    for (uint16_t i = 0; i < w->store.n_steps; i++) {
        prior[i][0] = w->store.steps[i].attempts;
        prior[i][1] = w->store.steps[i].compensate_attempts;
    }
    trace(w, "rebuild (%s) from %s", why, saga_status_name(snap.status));
    int rc = saga_engine_rebuild(w->def, &snap, &w->jitter, w->now, &w->fx, &w->s);
    if (rc != 0)
        violation(w, "rebuild from a persisted %s saga failed: %s", saga_status_name(snap.status),
                  saga_strerror(rc));
    take_effects(w, "rebuild", (const uint32_t(*)[2])prior);
}

/* After an event call: sometimes the process dies before the records are
 * durable, so nothing of the call happened; else the effects are taken. */
static int after_call(struct world *w, int rc, const char *what, int may_lose)
{
    if (rc != 0)
        violation(w, "%s failed: %s", what, saga_strerror(rc));
    if (may_lose && !w->calm && chance(&w->r, 10)) {
        w->stats->lost_calls++;
        rebuild(w, "crash before commit");
        return 0;
    }
    take_effects(w, what, NULL);
    return 1;
}

static void operator(struct world *w, int cmd)
{
    int rc;
    const char *what;
    w->stats->operator_cmds++;
    if (cmd == 0) {
        what = "retry";
        /* the operator fixed what made the steps fail for good */
        for (uint16_t i = 0; i < w->def->n_steps; i++) {
            if (w->def->steps[i].kind == DEF_KIND_RETRIABLE && w->part[i].action == 2)
                w->part[i].action = 0;
        }
        rc = saga_engine_retry(w->s, w->now, &w->fx);
    } else if (cmd == 1) {
        what = "abort";
        rc = saga_engine_abort(w->s, w->now, &w->fx);
    } else {
        what = "resolve";
        saga_status_t outs[2] = {SAGA_STATUS_COMPLETED, SAGA_STATUS_COMPENSATED};
        if (w->def->mode == DEF_MODE_2PC) {
            outs[0] = SAGA_STATUS_COMMITTED;
            outs[1] = SAGA_STATUS_ABORTED;
        }
        rc = saga_engine_resolve(w->s, outs[below(&w->r, 2)], w->now, &w->fx);
    }
    trace(w, "operator %s -> %d", what, rc);
    if (rc == SAGA_ESTATE) {
        if (w->fx.n_records || w->fx.n_commands || w->fx.n_timers)
            violation(w, "a refused %s had effects", what);
        return;
    }
    after_call(w, rc, what, 1);
}

static void in_doubt(struct world *w)
{
    enum saga_decision d;
    int rc = saga_engine_in_doubt(w->s, (uint16_t)below(&w->r, w->def->n_steps), &d);
    if (rc != 0)
        violation(w, "in-doubt query failed: %s", saga_strerror(rc));
    if (d == SAGA_DECISION_PENDING) {
        if (w->told != SAGA_DECISION_PENDING)
            violation(w, "in-doubt answer went back to pending");
        return;
    }
    if (d == SAGA_DECISION_COMMIT && w->store.status != SAGA_STATUS_COMMITTING &&
        w->store.status != SAGA_STATUS_COMMITTED && !w->commit_sent)
        violation(w, "in-doubt answered commit with no commit decision logged");
    if (w->told != SAGA_DECISION_PENDING && w->told != d)
        violation(w, "in-doubt answer changed");
    w->told = d;
}

/* ---------------------------------------------------------------- participants */

static saga_outcome_t roll(struct world *w, unsigned ok, unsigned retry)
{
    uint32_t x = below(&w->r, 1000);
    return x < ok ? SAGA_OUTCOME_OK : x < ok + retry ? SAGA_OUTCOME_RETRY : SAGA_OUTCOME_FAIL;
}

static saga_outcome_t participant(struct world *w, const struct saga_command *cmd)
{
    struct part *p = &w->part[cmd->step];
    const struct def_step *ds = &w->def->steps[cmd->step];
    saga_outcome_t o;

    switch (cmd->op) {
    case SAGA_OP_ACTION:
        if (p->guard || p->action == 2)
            return SAGA_OUTCOME_FAIL;
        if (p->action == 1)
            return SAGA_OUTCOME_OK;
        if (ds->kind == DEF_KIND_RETRIABLE)
            o = w->calm ? SAGA_OUTCOME_OK : roll(w, 500, 470);
        else
            o = w->calm ? roll(w, 850, 0) : roll(w, 550, 300);
        if (o == SAGA_OUTCOME_OK)
            p->action = 1;
        else if (o == SAGA_OUTCOME_FAIL)
            p->action = 2;
        return o;
    case SAGA_OP_COMPENSATE:
        if (ds->kind != DEF_KIND_COMPENSATABLE)
            violation(w, "a participant got compensate for a step that cannot be compensated");
        o = w->calm ? SAGA_OUTCOME_OK : roll(w, 700, 270);
        if (o != SAGA_OUTCOME_OK)
            return o;
        if (p->action == 1 && !p->undone) {
            /* A pivot that ran though every reply of it came late counts as
             * failed and is never undone: the one risk of a pivot. */
            for (uint16_t k = 0; k < ds->n_dependents; k++) {
                const struct part *d = &w->part[ds->dependents[k]];
                if (w->def->steps[ds->dependents[k]].kind != DEF_KIND_COMPENSATABLE)
                    continue;
                if (d->action == 1 && !d->undone)
                    violation(w, "step %u undone before its dependent %u", cmd->step,
                              ds->dependents[k]);
            }
            p->undone = 1;
        } else if (p->action != 1) {
            p->guard = 1; /* a null compensation */
        }
        return o;
    case SAGA_OP_PREPARE:
        if (p->aborted || p->prepared == 2)
            return SAGA_OUTCOME_FAIL;
        if (p->prepared == 1)
            return SAGA_OUTCOME_OK;
        o = w->calm ? roll(w, 850, 0) : roll(w, 550, 300);
        if (o == SAGA_OUTCOME_OK)
            p->prepared = 1;
        else if (o == SAGA_OUTCOME_FAIL)
            p->prepared = 2;
        return o;
    case SAGA_OP_COMMIT:
        if (p->prepared != 1)
            violation(w, "commit of step %u, which never prepared", cmd->step);
        if (p->aborted)
            violation(w, "commit of step %u, which was aborted", cmd->step);
        o = w->calm ? SAGA_OUTCOME_OK : roll(w, 750, 230);
        if (o == SAGA_OUTCOME_OK)
            p->committed = 1;
        return o;
    default:
        if (p->committed)
            violation(w, "abort of step %u, which was committed", cmd->step);
        o = w->calm ? SAGA_OUTCOME_OK : roll(w, 750, 230);
        if (o == SAGA_OUTCOME_OK)
            p->aborted = 1;
        return o;
    }
}

static void deliver(struct world *w, const struct saga_command *cmd)
{
    saga_outcome_t o = participant(w, cmd);
    struct part *p = &w->part[cmd->step];
    trace(w, "participant %u got %s #%u: %s", cmd->step, saga_op_name(cmd->op), cmd->attempt,
          saga_outcome_name(o));
    if (lossy(w, cmd->step))
        return;
    struct event e = {
        .at = w->now + leg_delay(w, cmd->step),
        .kind = EV_REPLY,
        .reply = {.step = cmd->step, .op = cmd->op, .attempt = cmd->attempt, .outcome = o},
    };
    if (o == SAGA_OUTCOME_OK && (cmd->op == SAGA_OP_ACTION || cmd->op == SAGA_OP_PREPARE)) {
        e.reply.output = (const uint8_t *)p->output;
        e.reply.output_len = strlen(p->output);
    } else if (o != SAGA_OUTCOME_OK) {
        e.reply.reason = o == SAGA_OUTCOME_FAIL ? "refused" : "busy";
    }
    push(w, e);
    if (!w->calm && chance(&w->r, 50)) {
        e.at += leg_delay(w, cmd->step) * (1 + below(&w->r, 4));
        push(w, e);
    }
}

/* ---------------------------------------------------------------- one saga */

static void final_checks(struct world *w)
{
    saga_status_t st = saga_engine_status(w->s);
    const struct definition *def = w->def;
    w->stats->ends[st]++;
    if (w->resolved) {
        w->stats->resolved++;
        return;
    }
    for (uint16_t i = 0; i < def->n_steps; i++) {
        const struct part *p = &w->part[i];
        const struct model_step *ms = &w->store.steps[i];
        switch (st) {
        case SAGA_STATUS_COMPLETED:
            if (w->comp_sent)
                violation(w, "a completed saga sent a compensation");
            if (ms->status != SAGA_STEP_SUCCEEDED || p->action != 1 || p->undone)
                violation(w, "completed, but step %u is %s", i, saga_step_status_name(ms->status));
            break;
        case SAGA_STATUS_COMPENSATED:
            if (w->pivot_ok)
                violation(w, "compensated after the pivot succeeded");
            if (def->steps[i].kind != DEF_KIND_COMPENSATABLE) {
                if (def->steps[i].kind == DEF_KIND_RETRIABLE && p->action == 1)
                    violation(w, "a retriable step ran in a compensated saga");
                break;
            }
            if ((p->action == 1 && !p->undone))
                violation(w, "step %u ran and was not undone", i);
            if ((w->ever_succeeded[i] || p->action == 1) &&
                (ms->status != SAGA_STEP_COMPENSATED || ms->compensated_results != 1))
                violation(w, "step %u succeeded but is %s (%u compensations)", i,
                          saga_step_status_name(ms->status), ms->compensated_results);
            break;
        case SAGA_STATUS_COMMITTED:
            if (w->abort_sent || !p->committed || p->prepared != 1)
                violation(w, "committed, but step %u is not", i);
            break;
        case SAGA_STATUS_ABORTED:
            if (w->commit_sent || (p->prepared == 1 && !p->aborted))
                violation(w, "aborted, but step %u stays prepared", i);
            break;
        default:
            violation(w, "ended in %s", saga_status_name(st));
        }
    }
}

static void run_saga(uint64_t seed, int tracing, struct stats *stats)
{
    struct world w;
    memset(&w, 0, sizeof(w));
    w.seed = seed;
    w.trace = tracing;
    w.stats = stats;
    w.r.s = seed;
    w.now = 1000000;
    saga_rng_seed(&w.jitter, seed ^ 0x5A5A5A5A5A5A5A5Aull);
    w.def = random_def(&w.r);
    effects_init(&w.fx);
    for (uint16_t i = 0; i < w.def->n_steps; i++)
        snprintf(w.part[i].output, sizeof(w.part[i].output), "out-%u", i);

    struct saga_id id;
    for (int i = 0; i < 16; i++)
        id.bytes[i] = (uint8_t)rnd_next(&w.r);
    static const uint8_t input[] = "order-42";
    model_store_init(&w.store, w.def->n_steps, &id, input, sizeof(input) - 1);
    if (saga_engine_new(w.def, &id, input, sizeof(input) - 1, &w.jitter, &w.s) != 0)
        violation(&w, "saga_engine_new failed");
    trace(&w, "%s saga of %u steps, pivot %d, timeout %u",
          w.def->mode == DEF_MODE_2PC ? "2pc" : "saga", w.def->n_steps, w.def->pivot,
          w.def->timeout_ms);
    after_call(&w, saga_engine_start(w.s, w.now, &w.fx), "start", 0);

    uint32_t chaos = below(&w.r, 400);
    for (uint32_t n = 0;; n++) {
        saga_status_t st = saga_engine_status(w.s);
        int done = saga_status_is_terminal(st);
        if (!w.calm && n >= chaos) {
            w.calm = 1;
            trace(&w, "calm");
        }
        if (done && w.n_ev == 0)
            break;
        if (w.calm && n > chaos + CALM_LIMIT)
            violation(&w, "no end %u events after the participants calmed down", CALM_LIMIT);
        if (!w.calm) {
            if (chance(&w.r, 15)) {
                w.stats->crashes++;
                rebuild(&w, "crash");
                continue;
            }
            if (chance(&w.r, 5)) {
                w.stats->lease_losses++;
                if (saga_engine_lease_lost(w.s, &w.fx) != 0 || !w.fx.dropped)
                    violation(&w, "lease loss not taken");
                struct saga_timer t = {SAGA_TIMER_DEADLINE, -1, 0, 0, 0};
                if (saga_engine_timer(w.s, &t, w.now, &w.fx) != SAGA_EFENCED)
                    violation(&w, "a dropped saga took an event");
                rebuild(&w, "lease taken over");
                continue;
            }
            if (chance(&w.r, 5)) {
                operator(&w, 1);
                continue;
            }
            if (st == SAGA_STATUS_STUCK && chance(&w.r, 50)) {
                operator(&w, chance(&w.r, 150) ? 2 : 0);
                continue;
            }
        }
        if (st == SAGA_STATUS_STUCK && (w.calm || w.n_ev == 0)) {
            operator(&w, 0); /* the operator steps in */
            continue;
        }
        if (w.def->mode == DEF_MODE_2PC && chance(&w.r, 20))
            in_doubt(&w);
        if (w.n_ev == 0) {
            if (!done)
                violation(&w, "waiting for nothing");
            break;
        }
        struct event e = pop(&w);
        w.stats->events++;
        int rc, refusal;
        switch (e.kind) {
        case EV_DELIVER:
            deliver(&w, &e.cmd);
            break;
        case EV_REPLY:
            trace(&w, "reply %u %s #%u %s", e.reply.step, saga_op_name(e.reply.op), e.reply.attempt,
                  saga_outcome_name(e.reply.outcome));
            rc = saga_engine_reply(w.s, &e.reply, w.now, &w.fx);
            refusal = rc == 0 && w.fx.ignored == SAGA_APPLIED && e.reply.op == SAGA_OP_ACTION &&
                      e.reply.outcome == SAGA_OUTCOME_FAIL;
            if (after_call(&w, rc, "reply", 1) && refusal)
                w.refused[e.reply.step] = 1; /* durable: nothing to undo from now on */
            break;
        case EV_TIMER:
            trace(&w, "timer %s %d %s #%u", effects_timer_name(e.timer.kind), e.timer.step,
                  e.timer.op ? saga_op_name(e.timer.op) : "-", e.timer.attempt);
            rc = saga_engine_timer(w.s, &e.timer, w.now, &w.fx);
            after_call(&w, rc, "timer", 1);
            break;
        }
    }
    final_checks(&w);

    saga_engine_free(&w.s);
    effects_destroy(&w.fx);
    model_store_destroy(&w.store);
    fixture_def_free(&w.def);
    free(w.ev);
}

static uint64_t parse_u64(const char *text)
{
    char *end;
    unsigned long long v = strtoull(text, &end, 0);
    if (*text == '\0' || *end != '\0') {
        fprintf(stderr, "not a number: %s\n", text);
        exit(2);
    }
    return (uint64_t)v;
}

int main(int argc, char **argv)
{
    struct stats stats;
    uint64_t seed = (uint64_t)time(NULL);
    uint64_t sagas = DEFAULT_SAGAS;
    const char *env;
    memset(&stats, 0, sizeof(stats));
    signal(SIGABRT, on_abort);

    if (argc >= 3 && strcmp(argv[1], "--one") == 0) {
        uint64_t one = parse_u64(argv[2]);
        snprintf(replay_line, sizeof(replay_line),
                 "replay: test_saga_random --one 0x%016" PRIx64 " --trace\n", one);
        run_saga(one, argc >= 4 && strcmp(argv[3], "--trace") == 0, &stats);
        printf("saga 0x%016" PRIx64 ": ok, %" PRIu64 " events\n", one, stats.events);
        return 0;
    }
    if ((env = getenv("SAGA_RANDOM_SEED")) != NULL)
        seed = parse_u64(env);
    if ((env = getenv("SAGA_RANDOM_SAGAS")) != NULL)
        sagas = parse_u64(env);
    if (argc >= 2)
        seed = parse_u64(argv[1]);
    if (argc >= 3)
        sagas = parse_u64(argv[2]);
    printf("seed %" PRIu64 ", %" PRIu64 " sagas (replay all: test_saga_random %" PRIu64 " %" PRIu64
           ")\n",
           seed, sagas, seed, sagas);
    fflush(stdout);

    struct rnd r = {seed};
    for (uint64_t i = 0; i < sagas; i++) {
        uint64_t one = rnd_next(&r);
        snprintf(replay_line, sizeof(replay_line),
                 "replay: test_saga_random --one 0x%016" PRIx64 " --trace   (run seed %" PRIu64
                 ", saga %" PRIu64 ")\n",
                 one, seed, i);
        run_saga(one, 0, &stats);
        stats.sagas++;
    }
    printf("%" PRIu64 " sagas, %" PRIu64 " events, %" PRIu64 " engine calls (%" PRIu64
           " ignored), %" PRIu64 " crashes, %" PRIu64 " lost calls, %" PRIu64
           " lease losses, %" PRIu64 " operator commands, %" PRIu64 " times stuck\n",
           stats.sagas, stats.events, stats.calls, stats.ignored, stats.crashes, stats.lost_calls,
           stats.lease_losses, stats.operator_cmds, stats.stuck_seen);
    printf("ends: completed %" PRIu64 ", compensated %" PRIu64 ", committed %" PRIu64
           ", aborted %" PRIu64 " (%" PRIu64 " resolved by operator)\n",
           stats.ends[SAGA_STATUS_COMPLETED], stats.ends[SAGA_STATUS_COMPENSATED],
           stats.ends[SAGA_STATUS_COMMITTED], stats.ends[SAGA_STATUS_ABORTED], stats.resolved);
    return 0;
}
