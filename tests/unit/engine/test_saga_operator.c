/* Operator commands (retry, abort, resolve) in every state, and what each one
 * does where it is allowed. A refused command changes nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine_fixture.h"

#define OK    SAGA_OUTCOME_OK
#define FAIL  SAGA_OUTCOME_FAIL
#define RETRY SAGA_OUTCOME_RETRY
#define ACT   SAGA_OP_ACTION
#define COMP  SAGA_OP_COMPENSATE

enum where {
    NEW,
    RUNNING,
    PIVOT_OUT,
    PIVOT_WAITING,
    PAST_PIVOT,
    COMPENSATING,
    COMPLETED,
    COMPENSATED,
    STUCK_FORWARD,
    STUCK_BACKWARD,
    TPC_NEW,
    PREPARING,
    COMMITTING,
    ABORTING,
    COMMITTED,
    ABORTED,
    STUCK_COMMIT,
    STUCK_ABORT,
    N_WHERE,
};

static const char *const where_names[] = {
    "new",        "running",     "pivot out",     "pivot waiting",  "past pivot",   "compensating",
    "completed",  "compensated", "stuck forward", "stuck backward", "2pc new",      "preparing",
    "committing", "aborting",    "committed",     "aborted",        "stuck commit", "stuck abort",
};

/* Drives a fresh saga to `w`. Saga mode: a -> p (pivot) -> r (retriable);
 * 2pc: a, b. */
static void reach(struct harness *h, enum where w)
{
    if (w < TPC_NEW) {
        harness_init(h, fixture_def(DEF_MODE_SAGA, "a p<a:pivot r<p:retriable"));
        if (w == NEW)
            return;
        assert_int_equal(harness_start(h), 0);
        switch (w) {
        case RUNNING:
            return;
        case COMPENSATING:
            assert_int_equal(harness_reply(h, 0, ACT, 1, OK, NULL), 0);
            assert_int_equal(harness_reply(h, 1, ACT, 1, FAIL, NULL), 0);
            return;
        case COMPENSATED:
            assert_int_equal(harness_reply(h, 0, ACT, 1, FAIL, NULL), 0);
            return;
        case STUCK_BACKWARD:
            assert_int_equal(harness_reply(h, 0, ACT, 1, OK, NULL), 0);
            assert_int_equal(harness_reply(h, 1, ACT, 1, FAIL, NULL), 0);
            assert_int_equal(harness_reply(h, 0, COMP, 1, FAIL, NULL), 0);
            return;
        default:
            break;
        }
        assert_int_equal(harness_reply(h, 0, ACT, 1, OK, NULL), 0);
        if (w == PIVOT_OUT)
            return;
        if (w == PIVOT_WAITING) {
            assert_int_equal(harness_reply(h, 1, ACT, 1, RETRY, NULL), 0);
            return;
        }
        assert_int_equal(harness_reply(h, 1, ACT, 1, OK, NULL), 0);
        if (w == PAST_PIVOT)
            return;
        if (w == STUCK_FORWARD) {
            assert_int_equal(harness_reply(h, 2, ACT, 1, FAIL, NULL), 0);
            return;
        }
        assert_int_equal(harness_reply(h, 2, ACT, 1, OK, NULL), 0);
        assert_int_equal(w, COMPLETED);
        return;
    }
    harness_init(h, fixture_def(DEF_MODE_2PC, "a b"));
    if (w == TPC_NEW)
        return;
    assert_int_equal(harness_start(h), 0);
    if (w == PREPARING)
        return;
    if (w == ABORTING || w == ABORTED || w == STUCK_ABORT) {
        assert_int_equal(harness_reply(h, 0, SAGA_OP_PREPARE, 1, FAIL, NULL), 0);
        if (w == ABORTED) {
            assert_int_equal(harness_reply(h, 0, SAGA_OP_ABORT, 1, OK, NULL), 0);
            assert_int_equal(harness_reply(h, 1, SAGA_OP_ABORT, 1, OK, NULL), 0);
        } else if (w == STUCK_ABORT) {
            assert_int_equal(harness_reply(h, 1, SAGA_OP_ABORT, 1, FAIL, NULL), 0);
        }
        return;
    }
    assert_int_equal(harness_reply(h, 0, SAGA_OP_PREPARE, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(h, 1, SAGA_OP_PREPARE, 1, OK, NULL), 0);
    if (w == COMMITTED) {
        assert_int_equal(harness_reply(h, 0, SAGA_OP_COMMIT, 2, OK, NULL), 0);
        assert_int_equal(harness_reply(h, 1, SAGA_OP_COMMIT, 2, OK, NULL), 0);
    } else if (w == STUCK_COMMIT) {
        assert_int_equal(harness_reply(h, 1, SAGA_OP_COMMIT, 2, FAIL, NULL), 0);
    }
}

enum command { RETRY_CMD, ABORT_CMD, RES_COMPLETED, RES_COMPENSATED, RES_COMMITTED, RES_ABORTED };

#define ST SAGA_ESTATE
#define IV SAGA_EINVAL

/* rows: enum where; columns: enum command */
static const int expected[N_WHERE][6] = {
    [NEW] = {ST, ST, ST, ST, IV, IV},        [RUNNING] = {ST, 0, ST, ST, IV, IV},
    [PIVOT_OUT] = {ST, ST, ST, ST, IV, IV},  [PIVOT_WAITING] = {ST, 0, ST, ST, IV, IV},
    [PAST_PIVOT] = {ST, ST, ST, ST, IV, IV}, [COMPENSATING] = {ST, ST, ST, ST, IV, IV},
    [COMPLETED] = {ST, ST, ST, ST, IV, IV},  [COMPENSATED] = {ST, ST, ST, ST, IV, IV},
    [STUCK_FORWARD] = {0, ST, 0, 0, IV, IV}, [STUCK_BACKWARD] = {0, ST, 0, 0, IV, IV},
    [TPC_NEW] = {ST, ST, IV, IV, ST, ST},    [PREPARING] = {ST, 0, IV, IV, ST, ST},
    [COMMITTING] = {ST, ST, IV, IV, ST, ST}, [ABORTING] = {ST, ST, IV, IV, ST, ST},
    [COMMITTED] = {ST, ST, IV, IV, ST, ST},  [ABORTED] = {ST, ST, IV, IV, ST, ST},
    [STUCK_COMMIT] = {0, ST, IV, IV, 0, ST}, [STUCK_ABORT] = {0, ST, IV, IV, ST, 0},
};

/* The status each allowed command leads to. */
static saga_status_t after_command(enum where w, enum command c)
{
    switch (c) {
    case RETRY_CMD:
        return w == STUCK_FORWARD    ? SAGA_STATUS_RUNNING
               : w == STUCK_BACKWARD ? SAGA_STATUS_COMPENSATING
               : w == STUCK_COMMIT   ? SAGA_STATUS_COMMITTING
                                     : SAGA_STATUS_ABORTING;
    case ABORT_CMD:
        return w == PREPARING ? SAGA_STATUS_ABORTING : SAGA_STATUS_COMPENSATING;
    case RES_COMPLETED:
        return SAGA_STATUS_COMPLETED;
    case RES_COMPENSATED:
        return SAGA_STATUS_COMPENSATED;
    case RES_COMMITTED:
        return SAGA_STATUS_COMMITTED;
    default:
        return SAGA_STATUS_ABORTED;
    }
}

static int run_command(struct harness *h, enum command c)
{
    switch (c) {
    case RETRY_CMD:
        return harness_retry(h);
    case ABORT_CMD:
        return harness_abort(h);
    case RES_COMPLETED:
        return harness_resolve(h, SAGA_STATUS_COMPLETED);
    case RES_COMPENSATED:
        return harness_resolve(h, SAGA_STATUS_COMPENSATED);
    case RES_COMMITTED:
        return harness_resolve(h, SAGA_STATUS_COMMITTED);
    default:
        return harness_resolve(h, SAGA_STATUS_ABORTED);
    }
}

static void test_every_command_in_every_state(void **state)
{
    (void)state;
    for (int w = 0; w < N_WHERE; w++) {
        for (int c = 0; c <= RES_ABORTED; c++) {
            struct harness h;
            reach(&h, (enum where)w);
            saga_status_t before = saga_engine_status(h.s);
            int rc = run_command(&h, (enum command)c);
            if (rc != expected[w][c])
                fail_msg("state %s, command %d: rc %d, expected %d", where_names[w], c, rc,
                         expected[w][c]);
            if (rc != 0) {
                /* refused: nothing emitted (the harness checked), nothing changed */
                assert_int_equal(saga_engine_status(h.s), before);
                assert_int_equal(h.fx.n_records + h.fx.n_commands + h.fx.n_timers, 0);
            } else {
                saga_status_t want = after_command((enum where)w, (enum command)c);
                if (saga_engine_status(h.s) != want)
                    fail_msg("state %s, command %d: status %s", where_names[w], c,
                             saga_status_name(saga_engine_status(h.s)));
                assert_true(h.fx.n_records > 0);
            }
            harness_destroy(&h);
        }
    }
}

/* Retry of a stuck compensation: sent again with the next attempt number and a
 * fresh budget; the rest of the compensation then carries on. */
static void test_retry_stuck_compensation_with_fresh_budget(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_SAGA, "a b<a c<b");
    def->steps[1].compensate_retry = (struct def_retry){2, 10, 10};
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 2, ACT, 1, FAIL, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, COMP, 1, RETRY, NULL), 0);
    assert_int_equal(harness_fire(&h, SAGA_TIMER_BACKOFF, 1), 0);
    assert_int_equal(harness_reply(&h, 1, COMP, 2, RETRY, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_STUCK);

    assert_int_equal(harness_retry(&h), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATING);
    assert_null(saga_engine_error(h.s));
    assert_string_equal(h.fx.records[0].event, "saga.retried");
    assert_int_equal(h.fx.n_commands, 1);
    assert_int_equal(harness_attempt(&h, 1, COMP), 3);
    /* two more attempts allowed */
    assert_int_equal(harness_reply(&h, 1, COMP, 3, RETRY, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATING);
    assert_int_equal(harness_fire(&h, SAGA_TIMER_BACKOFF, 1), 0);
    assert_int_equal(harness_reply(&h, 1, COMP, 4, OK, NULL), 0);
    assert_non_null(fixture_command(&h.fx, 0, COMP));
    assert_int_equal(harness_reply(&h, 0, COMP, 1, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATED);
    harness_destroy(&h);
}

/* While stuck, other compensations still report; what they unblock, and their
 * own retries, wait for the operator's retry. */
static void test_stuck_compensation_parks_the_rest(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b c<a d x<b,c,d"));
    assert_int_equal(harness_start(&h), 0);
    for (uint16_t i = 0; i < 4; i++)
        assert_int_equal(harness_reply(&h, i, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 4, ACT, 1, FAIL, NULL), 0);
    assert_int_equal(h.fx.n_commands, 3); /* b, c, d */
    assert_int_equal(harness_reply(&h, 1, COMP, 1, FAIL, "refused"), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_STUCK);
    assert_int_equal(harness_reply(&h, 2, COMP, 1, OK, NULL), 0);
    assert_non_null(fixture_step_record(&h.fx, 2, SAGA_STEP_COMPENSATED));
    assert_int_equal(h.fx.n_commands, 0); /* a is free now, but the saga is stuck */
    assert_int_equal(harness_timer(&h, (struct saga_timer){SAGA_TIMER_TIMEOUT, 3, COMP, 1, 0}), 0);
    assert_int_equal(h.fx.ignored, SAGA_APPLIED);
    assert_int_equal(h.fx.n_records + h.fx.n_commands + h.fx.n_timers, 0);

    assert_int_equal(harness_retry(&h), 0);
    assert_int_equal(h.fx.n_commands, 3);
    assert_int_equal(harness_attempt(&h, 0, COMP), 1);
    assert_int_equal(harness_attempt(&h, 1, COMP), 2);
    assert_int_equal(harness_attempt(&h, 3, COMP), 2);
    assert_int_equal(harness_reply(&h, 0, COMP, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, COMP, 2, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 3, COMP, 2, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATED);
    harness_destroy(&h);
}

static void test_retry_stuck_forward(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h,
                 fixture_def(DEF_MODE_SAGA, "p:pivot r<p:retriable s<p:retriable t<s:retriable"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 2, ACT, 1, RETRY, NULL), 0); /* s waits */
    assert_int_equal(harness_reply(&h, 1, ACT, 1, FAIL, "bad address"), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_STUCK);
    assert_int_equal(h.fx.n_commands, 0);

    assert_int_equal(harness_retry(&h), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_RUNNING);
    assert_int_equal(h.fx.n_commands, 2); /* r again, and s's parked retry */
    assert_int_equal(harness_attempt(&h, 1, ACT), 2);
    assert_int_equal(harness_attempt(&h, 2, ACT), 2);
    assert_int_equal(harness_reply(&h, 1, ACT, 2, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 2, ACT, 2, OK, NULL), 0);
    assert_non_null(fixture_command(&h.fx, 3, ACT));
    assert_int_equal(harness_reply(&h, 3, ACT, 1, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPLETED);
    harness_destroy(&h);
}

static void test_resolve_is_final(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h,
                 fixture_def(DEF_MODE_SAGA, "p:pivot r<p:retriable s<p:retriable t<s:retriable"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, FAIL, "bad address"), 0);
    assert_int_equal(harness_resolve(&h, SAGA_STATUS_COMPLETED), 0);
    assert_int_equal(h.fx.settled, 1);
    assert_non_null(fixture_step_record(&h.fx, 3, SAGA_STEP_SKIPPED));
    const struct record *r = fixture_saga_record(&h.fx, SAGA_STATUS_COMPLETED);
    assert_non_null(r);
    assert_string_equal(r->event, "saga.resolved");
    assert_string_equal(r->error, "resolved by operator as completed");
    /* s was still out: its late reply is ignored */
    assert_int_equal(harness_reply(&h, 2, ACT, 1, OK, NULL), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_FINISHED);
    assert_int_equal(harness_retry(&h), SAGA_ESTATE);
    assert_int_equal(harness_resolve(&h, SAGA_STATUS_COMPENSATED), SAGA_ESTATE);
    harness_destroy(&h);
}

static void test_abort_compensates_and_waits_for_steps_out(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b c<a,b"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_abort(&h), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATING);
    assert_string_equal(saga_engine_error(h.s), "aborted by operator");
    assert_non_null(fixture_command(&h.fx, 0, COMP));
    assert_null(fixture_command(&h.fx, 1, COMP));
    assert_int_equal(harness_abort(&h), SAGA_ESTATE);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, OK, NULL), 0);
    assert_non_null(fixture_command(&h.fx, 1, COMP));
    assert_null(fixture_command(&h.fx, 2, ACT));
    harness_destroy(&h);
}

static void test_abort_while_the_pivot_waits(void **state)
{
    (void)state;
    struct harness h;
    reach(&h, PIVOT_WAITING);
    assert_int_equal(harness_abort(&h), 0);
    const struct record *r = fixture_step_record(&h.fx, 1, SAGA_STEP_FAILED);
    assert_non_null(r);
    assert_string_equal(r->error, "aborted by operator");
    assert_non_null(fixture_command(&h.fx, 0, COMP));
    harness_destroy(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_command_in_every_state),
        cmocka_unit_test(test_retry_stuck_compensation_with_fresh_budget),
        cmocka_unit_test(test_stuck_compensation_parks_the_rest),
        cmocka_unit_test(test_retry_stuck_forward),
        cmocka_unit_test(test_resolve_is_final),
        cmocka_unit_test(test_abort_compensates_and_waits_for_steps_out),
        cmocka_unit_test(test_abort_while_the_pivot_waits),
    };
    return cmocka_run_group_tests_name("saga_operator", tests, NULL, NULL);
}
