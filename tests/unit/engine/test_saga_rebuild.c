/* Rebuild from the store's snapshot: at every point of several runs the
 * rebuilt saga equals what was persisted and finishes the job; in-flight
 * commands go out again as their next attempt; bad snapshots are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine_fixture.h"

#define OK    SAGA_OUTCOME_OK
#define FAIL  SAGA_OUTCOME_FAIL
#define RETRY SAGA_OUTCOME_RETRY
#define ACT   SAGA_OP_ACTION
#define COMP  SAGA_OP_COMPENSATE

/* One scripted event. Attempts are read off the store, so a script can go on
 * after a rebuild changed them. */
enum act_kind { REPLY, TIMEOUT, BACKOFF, DEADLINE, OP_RETRY, OP_ABORT };

struct act {
    enum act_kind kind;
    uint16_t step;
    saga_op_t op;
    saga_outcome_t outcome;
};

static uint32_t counter(const struct harness *h, uint16_t step, saga_op_t op)
{
    const struct model_step *st = &h->store.steps[step];
    return op == COMP || op == SAGA_OP_ABORT ? st->compensate_attempts : st->attempts;
}

static void play(struct harness *h, const struct act *a)
{
    switch (a->kind) {
    case REPLY:
        assert_int_equal(
            harness_reply(h, a->step, a->op, counter(h, a->step, a->op), a->outcome, "x"), 0);
        break;
    case TIMEOUT:
        assert_int_equal(harness_timer(h, (struct saga_timer){SAGA_TIMER_TIMEOUT, a->step, a->op,
                                                              counter(h, a->step, a->op), 0}),
                         0);
        break;
    case BACKOFF:
        assert_int_equal(harness_timer(h, (struct saga_timer){SAGA_TIMER_BACKOFF, a->step, a->op,
                                                              counter(h, a->step, a->op) + 1, 0}),
                         0);
        break;
    case DEADLINE:
        h->now = saga_engine_deadline(h->s) + 1;
        assert_int_equal(harness_timer(h, (struct saga_timer){SAGA_TIMER_DEADLINE, -1, 0, 0, 0}),
                         0);
        break;
    case OP_RETRY:
        assert_int_equal(harness_retry(h), 0);
        break;
    case OP_ABORT:
        assert_int_equal(harness_abort(h), 0);
        break;
    }
    h->now += 10;
}

/* Answers OK to whatever is out (firing the backoff of whatever waits) until
 * the saga settles; a STUCK saga gets an operator retry. Works off the
 * persisted state alone, as anything driving a rebuilt saga must. */
static saga_status_t drive_ok(struct harness *h)
{
    for (int round = 0; round < 1000; round++) {
        saga_status_t st = saga_engine_status(h->s);
        if (saga_status_is_terminal(st))
            return st;
        if (st == SAGA_STATUS_STUCK) {
            assert_int_equal(harness_retry(h), 0);
            continue;
        }
        int moved = 0;
        for (uint16_t i = 0; i < h->def->n_steps && !moved; i++) {
            saga_op_t op;
            if (h->store.steps[i].status == SAGA_STEP_RUNNING)
                op = h->def->mode == DEF_MODE_2PC ? SAGA_OP_PREPARE : ACT;
            else if (h->store.steps[i].status == SAGA_STEP_COMPENSATING)
                op = st == SAGA_STATUS_COMMITTING ? SAGA_OP_COMMIT
                     : st == SAGA_STATUS_ABORTING ? SAGA_OP_ABORT
                                                  : COMP;
            else
                continue;
            assert_int_equal(harness_reply(h, i, op, counter(h, i, op), OK, NULL), 0);
            if (h->fx.ignored == SAGA_IGNORED_NOT_IN_FLIGHT)
                assert_int_equal(harness_timer(h, (struct saga_timer){SAGA_TIMER_BACKOFF, i, op,
                                                                      counter(h, i, op) + 1, 0}),
                                 0);
            moved = h->fx.ignored == SAGA_APPLIED;
        }
        if (!moved)
            fail_msg("saga %s is waiting for nothing", saga_status_name(st));
        h->now += 10;
    }
    fail_msg("saga did not settle");
    return SAGA_STATUS_UNKNOWN;
}

struct script {
    enum def_mode mode;
    const char *spec;
    uint32_t timeout_ms;
    saga_status_t end; /* without a crash */
    size_t n;
    struct act acts[16];
};

static const struct script scripts[] = {
    {DEF_MODE_SAGA,
     "a b<a c<a d<b,c",
     0,
     SAGA_STATUS_COMPLETED,
     5,
     {{REPLY, 0, ACT, OK},
      {REPLY, 2, ACT, OK},
      {REPLY, 1, ACT, RETRY},
      {BACKOFF, 1, ACT, 0},
      {REPLY, 1, ACT, OK}}},
    {DEF_MODE_SAGA,
     "a b<a c<a d<b,c",
     0,
     SAGA_STATUS_COMPENSATED,
     9,
     {{REPLY, 0, ACT, OK},
      {REPLY, 1, ACT, OK},
      {TIMEOUT, 2, ACT, 0},
      {BACKOFF, 2, ACT, 0},
      {REPLY, 2, ACT, OK},
      {REPLY, 3, ACT, FAIL},
      {REPLY, 2, COMP, RETRY},
      {BACKOFF, 2, COMP, 0},
      {REPLY, 2, COMP, OK}}},
    {DEF_MODE_SAGA,
     "a b c d<a,b,c",
     0,
     SAGA_STATUS_COMPENSATED,
     7,
     {{REPLY, 0, ACT, OK},
      {REPLY, 1, ACT, RETRY},
      {TIMEOUT, 2, ACT, 0},
      {OP_ABORT, 0, 0, 0},
      {REPLY, 0, COMP, FAIL},
      {OP_RETRY, 0, 0, 0},
      {REPLY, 2, COMP, OK}}},
    {DEF_MODE_SAGA,
     "a p<a:pivot r<p:retriable s<p:retriable",
     5000,
     SAGA_STATUS_COMPLETED,
     7,
     {{REPLY, 0, ACT, OK},
      {DEADLINE, 0, 0, 0},
      {REPLY, 1, ACT, OK},
      {REPLY, 2, ACT, FAIL},
      {REPLY, 3, ACT, RETRY},
      {OP_RETRY, 0, 0, 0},
      {REPLY, 2, ACT, OK}}},
    {DEF_MODE_SAGA,
     "a b<a p<b:pivot",
     5000,
     SAGA_STATUS_COMPENSATED,
     4,
     {{REPLY, 0, ACT, OK}, {REPLY, 1, ACT, OK}, {DEADLINE, 0, 0, 0}, {TIMEOUT, 2, ACT, 0}}},
    {DEF_MODE_2PC,
     "a b c<a",
     0,
     SAGA_STATUS_COMMITTED,
     7,
     {{REPLY, 0, SAGA_OP_PREPARE, OK},
      {REPLY, 1, SAGA_OP_PREPARE, RETRY},
      {BACKOFF, 1, SAGA_OP_PREPARE, 0},
      {REPLY, 2, SAGA_OP_PREPARE, OK},
      {REPLY, 1, SAGA_OP_PREPARE, OK},
      {REPLY, 0, SAGA_OP_COMMIT, FAIL},
      {OP_RETRY, 0, 0, 0}}},
    {DEF_MODE_2PC,
     "a b c<a",
     4000,
     SAGA_STATUS_ABORTED,
     5,
     {{REPLY, 0, SAGA_OP_PREPARE, OK},
      {DEADLINE, 0, 0, 0},
      {REPLY, 1, SAGA_OP_ABORT, FAIL},
      {OP_RETRY, 0, 0, 0},
      {REPLY, 0, SAGA_OP_ABORT, RETRY}}},
};

static struct harness *setup(struct harness *h, const struct script *sc)
{
    struct definition *def = fixture_def(sc->mode, sc->spec);
    def->timeout_ms = sc->timeout_ms;
    harness_init(h, def);
    assert_int_equal(harness_start(h), 0);
    return h;
}

/* Crash after each event of each script: the rebuilt saga equals the store
 * (the harness checks it), everything out goes again with a higher attempt,
 * and answering it all OK finishes the saga. */
static void test_rebuild_at_every_point(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(scripts) / sizeof(scripts[0]); k++) {
        const struct script *sc = &scripts[k];
        struct harness h;

        /* the script as written, without a crash */
        setup(&h, sc);
        for (size_t i = 0; i < sc->n; i++)
            play(&h, &sc->acts[i]);
        if (!saga_status_is_terminal(saga_engine_status(h.s)))
            drive_ok(&h);
        assert_int_equal(saga_engine_status(h.s), sc->end);
        harness_destroy(&h);

        for (size_t cut = 0; cut <= sc->n; cut++) {
            setup(&h, sc);
            for (size_t i = 0; i < cut; i++)
                play(&h, &sc->acts[i]);
            uint32_t att[16], comp[16];
            for (uint16_t i = 0; i < h.def->n_steps; i++) {
                att[i] = h.store.steps[i].attempts;
                comp[i] = h.store.steps[i].compensate_attempts;
            }
            assert_int_equal(harness_crash(&h), 0);
            for (uint32_t i = 0; i < h.fx.n_commands; i++) {
                const struct saga_command *c = &h.fx.commands[i];
                uint32_t was =
                    c->op == COMP || c->op == SAGA_OP_ABORT ? comp[c->step] : att[c->step];
                assert_int_equal(c->attempt, was + 1);
            }
            saga_status_t end = drive_ok(&h);
            assert_true(saga_status_is_terminal(end));
            harness_destroy(&h);
        }
    }
}

static void test_rebuild_resends_what_was_out(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_SAGA, "a b c<a,b");
    def->timeout_ms = 60000;
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, RETRY, NULL), 0);
    assert_int_equal(harness_fire(&h, SAGA_TIMER_BACKOFF, 0), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, RETRY, NULL), 0); /* b waits */
    struct saga_timer old_backoff = *fixture_timer(&h.fx, SAGA_TIMER_BACKOFF, 1);
    h.now = 5000;
    assert_int_equal(harness_crash(&h), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_RUNNING);
    /* a's second attempt was out, b's second was waiting: both go as the next */
    assert_int_equal(h.fx.n_commands, 2);
    assert_int_equal(harness_attempt(&h, 0, ACT), 3);
    assert_int_equal(harness_attempt(&h, 1, ACT), 2);
    const struct record *r = fixture_step_record(&h.fx, 0, SAGA_STEP_RUNNING);
    assert_int_equal(r->attempts, 3);
    assert_int_equal(r->at_ms, 5000);
    const struct saga_timer *d = fixture_timer(&h.fx, SAGA_TIMER_DEADLINE, -1);
    assert_non_null(d);
    assert_int_equal(d->at_ms, 61000);
    assert_non_null(fixture_timer(&h.fx, SAGA_TIMER_TIMEOUT, 0));
    /* replies and timers of the first life are stale */
    assert_int_equal(harness_reply(&h, 0, ACT, 2, OK, NULL), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_WRONG_ATTEMPT);
    assert_int_equal(harness_timer(&h, old_backoff), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_STALE_TIMER);
    /* a rebuild gives a fresh budget: three more attempts for a */
    assert_int_equal(harness_reply(&h, 0, ACT, 3, RETRY, NULL), 0);
    assert_int_equal(harness_fire(&h, SAGA_TIMER_BACKOFF, 0), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 4, RETRY, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_RUNNING);
    harness_destroy(&h);
}

/* A forward command out when compensation began may have run: after a rebuild
 * it is compensated rather than waited for. */
static void test_rebuild_compensates_what_was_out(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b c<a"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, FAIL, NULL), 0);
    assert_int_equal(h.fx.n_commands, 0); /* c is out, a waits for it */
    assert_int_equal(harness_crash(&h), 0);
    assert_int_equal(h.fx.n_commands, 1);
    assert_int_equal(harness_attempt(&h, 2, COMP), 1);
    assert_null(fixture_command(&h.fx, 2, ACT));
    assert_null(fixture_timer(&h.fx, SAGA_TIMER_DEADLINE, -1));
    assert_int_equal(harness_reply(&h, 2, COMP, 1, OK, NULL), 0);
    assert_non_null(fixture_command(&h.fx, 0, COMP));
    harness_destroy(&h);
}

static void test_rebuild_stuck_and_terminal_send_nothing(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b<a"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, FAIL, NULL), 0);
    assert_int_equal(harness_reply(&h, 0, COMP, 1, FAIL, NULL), 0);
    assert_int_equal(harness_crash(&h), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_STUCK);
    assert_int_equal(h.fx.n_records + h.fx.n_commands + h.fx.n_timers, 0);
    assert_int_equal(harness_retry(&h), 0);
    assert_int_equal(harness_attempt(&h, 0, COMP), 2);
    assert_int_equal(harness_reply(&h, 0, COMP, 2, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATED);
    assert_int_equal(harness_crash(&h), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATED);
    assert_int_equal(h.fx.n_records + h.fx.n_commands + h.fx.n_timers, 0);
    assert_int_equal(harness_reply(&h, 0, COMP, 2, OK, NULL), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_FINISHED);
    harness_destroy(&h);
}

/* 2pc: a STUCK saga's decision is read off its steps. */
static void test_rebuild_stuck_2pc_keeps_the_decision(void **state)
{
    (void)state;
    enum saga_decision d;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_2PC, "a b"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, SAGA_OP_PREPARE, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, SAGA_OP_PREPARE, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 0, SAGA_OP_COMMIT, 2, FAIL, NULL), 0);
    assert_int_equal(harness_crash(&h), 0);
    assert_int_equal(saga_engine_in_doubt(h.s, 1, &d), 0);
    assert_int_equal(d, SAGA_DECISION_COMMIT);
    assert_int_equal(harness_resolve(&h, SAGA_STATUS_ABORTED), SAGA_ESTATE);
    assert_int_equal(harness_retry(&h), 0);
    assert_int_equal(h.fx.n_commands, 2); /* a stuck, b's commit was out */
    harness_destroy(&h);

    harness_init(&h, fixture_def(DEF_MODE_2PC, "a b"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, SAGA_OP_PREPARE, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, SAGA_OP_PREPARE, 1, FAIL, NULL), 0);
    assert_int_equal(harness_reply(&h, 0, SAGA_OP_ABORT, 1, FAIL, NULL), 0);
    assert_int_equal(harness_crash(&h), 0);
    assert_int_equal(saga_engine_in_doubt(h.s, 0, &d), 0);
    assert_int_equal(d, SAGA_DECISION_ABORT);
    assert_int_equal(harness_resolve(&h, SAGA_STATUS_COMMITTED), SAGA_ESTATE);
    assert_int_equal(harness_retry(&h), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_ABORTING);
    harness_destroy(&h);
}

static void test_rebuild_refuses_bad_snapshots(void **state)
{
    (void)state;
    struct definition *def = fixture_def(DEF_MODE_SAGA, "a p<a:pivot");
    struct definition *tpc = fixture_def(DEF_MODE_2PC, "a b");
    struct step_snapshot steps[2];
    struct saga_snapshot snap;
    struct effects fx;
    struct saga *s = NULL;
    effects_init(&fx);

#define RESET(status_)                   \
    do {                                 \
        memset(steps, 0, sizeof(steps)); \
        memset(&snap, 0, sizeof(snap));  \
        snap.status = (status_);         \
        snap.n_steps = 2;                \
        snap.steps = steps;              \
    } while (0)
#define REFUSED(d)                                                                        \
    do {                                                                                  \
        assert_int_equal(saga_engine_rebuild((d), &snap, NULL, 0, &fx, &s), SAGA_EINVAL); \
        assert_null(s);                                                                   \
        assert_int_equal(fx.n_records + fx.n_commands + fx.n_timers, 0);                  \
    } while (0)

    RESET(SAGA_STATUS_RUNNING);
    assert_int_equal(saga_engine_rebuild(def, &snap, NULL, 0, &fx, &s), 0);
    assert_int_equal(fx.n_commands, 1); /* a, never sent before */
    saga_engine_free(&s);

    RESET(SAGA_STATUS_UNKNOWN);
    REFUSED(def);
    RESET(SAGA_STATUS_PREPARING); /* a 2pc status in mode saga */
    REFUSED(def);
    RESET(SAGA_STATUS_RUNNING);
    snap.n_steps = 1;
    REFUSED(def);
    RESET(SAGA_STATUS_RUNNING);
    steps[0].status = SAGA_STEP_COMPENSATED;
    REFUSED(def);
    RESET(SAGA_STATUS_RUNNING);
    steps[0].status = (saga_step_status_t)99;
    REFUSED(def);
    RESET(SAGA_STATUS_COMPENSATING);
    steps[0].status = SAGA_STEP_COMMITTED;
    REFUSED(def);
    RESET(SAGA_STATUS_RUNNING);
    steps[0].output_len = 4;
    REFUSED(def);
    RESET(SAGA_STATUS_RUNNING);
    snap.input_len = 4;
    REFUSED(def);
    RESET(SAGA_STATUS_STUCK); /* stuck going forward before the pivot */
    steps[0].status = SAGA_STEP_SUCCEEDED;
    steps[1].status = SAGA_STEP_FAILED;
    REFUSED(def);
    RESET(SAGA_STATUS_RUNNING);
    snap.steps = NULL;
    REFUSED(def);
    assert_int_equal(saga_engine_rebuild(def, NULL, NULL, 0, &fx, &s), SAGA_EINVAL);
    assert_int_equal(saga_engine_rebuild(NULL, &snap, NULL, 0, &fx, &s), SAGA_EINVAL);

    RESET(SAGA_STATUS_STUCK); /* 2pc stuck with no decision to be seen */
    steps[0].status = SAGA_STEP_SUCCEEDED;
    steps[0].attempts = 1;
    REFUSED(tpc);
    RESET(SAGA_STATUS_STUCK); /* or with both */
    steps[0].status = SAGA_STEP_COMMITTED;
    steps[1].status = SAGA_STEP_ABORTED;
    REFUSED(tpc);
    RESET(SAGA_STATUS_COMMITTING);
    steps[0].status = SAGA_STEP_PENDING;
    REFUSED(tpc);
    RESET(SAGA_STATUS_COMPLETED); /* a saga status in mode 2pc */
    REFUSED(tpc);

    /* a terminal snapshot is fine and inert */
    RESET(SAGA_STATUS_COMMITTED);
    steps[0].status = SAGA_STEP_COMMITTED;
    steps[1].status = SAGA_STEP_COMMITTED;
    assert_int_equal(saga_engine_rebuild(tpc, &snap, NULL, 0, &fx, &s), 0);
    assert_int_equal(fx.n_records + fx.n_commands + fx.n_timers, 0);
    enum saga_decision d;
    assert_int_equal(saga_engine_in_doubt(s, 0, &d), 0);
    assert_int_equal(d, SAGA_DECISION_COMMIT);
    saga_engine_free(&s);
#undef RESET
#undef REFUSED
    effects_destroy(&fx);
    fixture_def_free(&def);
    fixture_def_free(&tpc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rebuild_at_every_point),
        cmocka_unit_test(test_rebuild_resends_what_was_out),
        cmocka_unit_test(test_rebuild_compensates_what_was_out),
        cmocka_unit_test(test_rebuild_stuck_and_terminal_send_nothing),
        cmocka_unit_test(test_rebuild_stuck_2pc_keeps_the_decision),
        cmocka_unit_test(test_rebuild_refuses_bad_snapshots),
    };
    return cmocka_run_group_tests_name("saga_rebuild", tests, NULL, NULL);
}
