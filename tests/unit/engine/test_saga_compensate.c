/* The engine going backward: compensation order, in-flight steps, canceled
 * retries, compensation retries, STUCK, the pivot, the saga deadline. */
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

static int n_commands(const struct harness *h, saga_op_t op)
{
    int n = 0;
    for (uint32_t i = 0; i < h->fx.n_commands; i++)
        n += h->fx.commands[i].op == op;
    return n;
}

static void test_fail_starts_compensation_in_one_call(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b<a c<b"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, "A"), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, OK, "B"), 0);
    assert_int_equal(harness_reply(&h, 2, ACT, 1, FAIL, "out of stock"), 0);
    /* c failed, the saga compensates, b's compensation leaves: one transaction */
    assert_int_equal(h.fx.n_records, 3);
    assert_int_equal(h.fx.records[0].step, 2);
    assert_int_equal(h.fx.records[0].step_status, SAGA_STEP_FAILED);
    assert_string_equal(h.fx.records[0].error, "out of stock");
    assert_int_equal(h.fx.records[1].kind, REC_SAGA_UPDATE);
    assert_int_equal(h.fx.records[1].saga_status, SAGA_STATUS_COMPENSATING);
    assert_string_equal(h.fx.records[1].error, "step 'c' failed: out of stock");
    assert_int_equal(h.fx.records[2].step, 1);
    assert_int_equal(h.fx.records[2].step_status, SAGA_STEP_COMPENSATING);
    assert_int_equal(h.fx.records[2].compensate_attempts, 1);
    assert_string_equal(h.fx.records[2].event, "step.compensating");
    assert_int_equal(h.fx.n_commands, 1);
    assert_int_equal(h.fx.commands[0].op, COMP);
    assert_int_equal(h.fx.commands[0].step, 1);
    assert_non_null(fixture_timer(&h.fx, SAGA_TIMER_TIMEOUT, 1));
    /* the compensate command is built from b's own output */
    size_t len;
    assert_memory_equal(saga_engine_step_output(h.s, 1, &len), "B", 1);

    assert_int_equal(harness_reply(&h, 1, COMP, 1, OK, NULL), 0);
    assert_int_equal(h.fx.n_records, 2);
    assert_string_equal(h.fx.records[0].event, "step.compensated");
    assert_non_null(fixture_command(&h.fx, 0, COMP));
    assert_int_equal(harness_reply(&h, 0, COMP, 1, OK, NULL), 0);
    assert_int_equal(h.fx.n_records, 2);
    assert_int_equal(h.fx.records[1].saga_status, SAGA_STATUS_COMPENSATED);
    assert_string_equal(h.fx.records[1].error, "step 'c' failed: out of stock");
    assert_int_equal(h.fx.settled, 1);
    assert_int_equal(saga_engine_step_status(h.s, 2), SAGA_STEP_FAILED);
    /* a duplicate of the last compensation reply */
    assert_int_equal(harness_reply(&h, 0, COMP, 1, OK, NULL), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_FINISHED);
    assert_int_equal(h.store.steps[0].compensated_results, 1);
    harness_destroy(&h);
}

/* a -> b, a -> c, b,c -> d, d -> e; e fails: d first, then b and c together, then a. */
static void test_reverse_dependency_order(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b<a c<a d<b,c e<d"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 2, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 3, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 4, ACT, 1, FAIL, NULL), 0);
    assert_int_equal(n_commands(&h, COMP), 1);
    assert_non_null(fixture_command(&h.fx, 3, COMP));
    assert_int_equal(harness_reply(&h, 3, COMP, 1, OK, NULL), 0);
    assert_int_equal(n_commands(&h, COMP), 2);
    assert_non_null(fixture_command(&h.fx, 1, COMP));
    assert_non_null(fixture_command(&h.fx, 2, COMP));
    assert_int_equal(harness_reply(&h, 2, COMP, 1, OK, NULL), 0);
    assert_int_equal(n_commands(&h, COMP), 0); /* a still waits for b */
    assert_int_equal(harness_reply(&h, 1, COMP, 1, OK, NULL), 0);
    assert_non_null(fixture_command(&h.fx, 0, COMP));
    assert_int_equal(harness_reply(&h, 0, COMP, 1, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATED);
    harness_destroy(&h);
}

static void test_independent_compensations_in_parallel(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b c<a,b"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 2, ACT, 1, FAIL, NULL), 0);
    assert_int_equal(n_commands(&h, COMP), 2);
    assert_int_equal(harness_reply(&h, 1, COMP, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 0, COMP, 1, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATED);
    harness_destroy(&h);
}

/* Forward commands out when compensation starts are waited for, never retried:
 * FAIL means nothing to undo; OK, RETRY or a timeout mean compensate. */
static void test_in_flight_steps_are_waited_for(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b c d x"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(h.fx.n_commands, 5);
    assert_int_equal(harness_reply(&h, 4, ACT, 1, FAIL, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATING);
    assert_int_equal(h.fx.n_commands, 0);

    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_non_null(fixture_step_record(&h.fx, 0, SAGA_STEP_SUCCEEDED));
    assert_non_null(fixture_command(&h.fx, 0, COMP));
    assert_int_equal(harness_timer(&h, (struct saga_timer){SAGA_TIMER_TIMEOUT, 1, ACT, 1, 0}), 0);
    assert_int_equal(h.fx.n_commands, 1); /* no retry: b may have run, so undo it */
    assert_non_null(fixture_command(&h.fx, 1, COMP));
    assert_null(fixture_timer(&h.fx, SAGA_TIMER_BACKOFF, 1));
    assert_int_equal(harness_reply(&h, 2, ACT, 1, FAIL, NULL), 0);
    assert_int_equal(h.fx.n_commands, 0);
    assert_int_equal(saga_engine_step_status(h.s, 2), SAGA_STEP_FAILED);
    assert_int_equal(harness_reply(&h, 3, ACT, 1, RETRY, NULL), 0);
    assert_int_equal(h.fx.n_commands, 1);
    assert_non_null(fixture_command(&h.fx, 3, COMP));
    assert_null(fixture_timer(&h.fx, SAGA_TIMER_BACKOFF, 3));

    assert_int_equal(harness_reply(&h, 0, COMP, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, COMP, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 3, COMP, 1, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATED);
    harness_destroy(&h);
}

/* A dependent still out holds back the compensation of what it depends on. */
static void test_in_flight_dependent_holds_back(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b<a c<a"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 2, ACT, 1, FAIL, NULL), 0);
    assert_int_equal(h.fx.n_commands, 0); /* b is out: a must wait */
    assert_int_equal(harness_reply(&h, 1, ACT, 1, OK, NULL), 0);
    assert_int_equal(h.fx.n_commands, 1);
    assert_non_null(fixture_command(&h.fx, 1, COMP));
    assert_int_equal(harness_reply(&h, 1, COMP, 1, OK, NULL), 0);
    assert_non_null(fixture_command(&h.fx, 0, COMP));
    assert_int_equal(harness_reply(&h, 0, COMP, 1, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATED);
    harness_destroy(&h);
}

/* Retries waiting for their backoff are dropped; their steps are compensated. */
static void test_waiting_retries_are_dropped_and_compensated(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b c"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, RETRY, NULL), 0);
    struct saga_timer b_backoff = *fixture_timer(&h.fx, SAGA_TIMER_BACKOFF, 1);
    assert_int_equal(harness_timer(&h, (struct saga_timer){SAGA_TIMER_TIMEOUT, 2, ACT, 1, 0}), 0);
    struct saga_timer c_backoff = *fixture_timer(&h.fx, SAGA_TIMER_BACKOFF, 2);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, FAIL, NULL), 0);
    assert_non_null(fixture_command(&h.fx, 1, COMP));
    assert_non_null(fixture_command(&h.fx, 2, COMP));
    assert_null(fixture_command(&h.fx, 0, COMP));
    assert_int_equal(n_commands(&h, ACT), 0);
    /* their backoff timers are stale now */
    assert_int_equal(harness_timer(&h, b_backoff), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_STALE_TIMER);
    assert_int_equal(harness_timer(&h, c_backoff), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_STALE_TIMER);
    assert_int_equal(harness_reply(&h, 2, COMP, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, COMP, 1, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATED);
    assert_int_equal(saga_engine_step_status(h.s, 0), SAGA_STEP_FAILED);
    harness_destroy(&h);
}

static void test_compensation_retries_with_its_own_policy(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_SAGA, "a b<a");
    def->steps[0].compensate_retry = (struct def_retry){4, 50, 70};
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, FAIL, NULL), 0);
    assert_int_equal(harness_reply(&h, 0, COMP, 1, RETRY, NULL), 0);
    assert_int_equal(h.fx.n_records, 0);
    assert_int_equal(h.fx.timers[0].at_ms, h.now + 50);
    assert_int_equal(h.fx.timers[0].op, COMP);
    assert_int_equal(harness_fire(&h, SAGA_TIMER_BACKOFF, 0), 0);
    assert_int_equal(h.fx.records[0].compensate_attempts, 2);
    assert_int_equal(harness_fire(&h, SAGA_TIMER_TIMEOUT, 0), 0);
    assert_int_equal(h.fx.timers[0].at_ms, h.now + 70);
    assert_int_equal(harness_fire(&h, SAGA_TIMER_BACKOFF, 0), 0);
    assert_int_equal(harness_reply(&h, 0, COMP, 3, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATED);
    assert_int_equal(h.store.steps[0].compensate_attempts, 3);
    assert_int_equal(h.store.steps[0].attempts, 1);
    harness_destroy(&h);
}

static void test_compensate_fail_is_stuck(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b x<a,b"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 2, ACT, 1, FAIL, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, COMP, 1, FAIL, "refund refused"), 0);
    assert_int_equal(h.fx.n_records, 2);
    assert_int_equal(h.fx.records[0].step_status, SAGA_STEP_STUCK);
    assert_string_equal(h.fx.records[0].error, "refund refused");
    assert_int_equal(h.fx.records[1].saga_status, SAGA_STATUS_STUCK);
    assert_string_equal(h.fx.records[1].error, "step 'b': compensate failed: refund refused");
    assert_int_equal(h.fx.settled, 1);
    assert_int_equal(h.fx.status, SAGA_STATUS_STUCK);
    /* a's compensation was still out: its result is recorded, nothing more is sent */
    assert_int_equal(harness_reply(&h, 0, COMP, 1, RETRY, NULL), 0);
    assert_int_equal(h.fx.n_records + h.fx.n_commands + h.fx.n_timers, 0);
    assert_int_equal(h.fx.ignored, SAGA_APPLIED);
    harness_destroy(&h);
}

static void test_compensate_exhausted_is_stuck(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_SAGA, "a b<a");
    def->steps[0].compensate_retry = (struct def_retry){2, 10, 10};
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, FAIL, NULL), 0);
    assert_int_equal(harness_fire(&h, SAGA_TIMER_TIMEOUT, 0), 0);
    assert_int_equal(harness_fire(&h, SAGA_TIMER_BACKOFF, 0), 0);
    assert_int_equal(harness_fire(&h, SAGA_TIMER_TIMEOUT, 0), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_STUCK);
    assert_int_equal(saga_engine_step_status(h.s, 0), SAGA_STEP_STUCK);
    assert_string_equal(saga_engine_error(h.s),
                        "step 'a': compensate failed 2 times, last: timed out");
    harness_destroy(&h);
}

static void test_steps_never_run_are_skipped_at_the_end(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b<a c<b"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, FAIL, NULL), 0);
    /* nothing ran: compensated at once, b and c skipped, all in one call */
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATED);
    assert_non_null(fixture_step_record(&h.fx, 1, SAGA_STEP_SKIPPED));
    assert_non_null(fixture_step_record(&h.fx, 2, SAGA_STEP_SKIPPED));
    int skip = fixture_record_index(&h.fx, fixture_step_record(&h.fx, 2, SAGA_STEP_SKIPPED));
    int end = fixture_record_index(&h.fx, fixture_saga_record(&h.fx, SAGA_STATUS_COMPENSATED));
    assert_true(skip < end);
    harness_destroy(&h);
}

static void test_failed_pivot_compensates_what_ran_before(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b<a p<b:pivot r<p:retriable"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 2, ACT, 1, FAIL, "payment gateway says no"), 0);
    assert_non_null(fixture_command(&h.fx, 1, COMP));
    assert_int_equal(harness_reply(&h, 1, COMP, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 0, COMP, 1, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATED);
    assert_int_equal(saga_engine_step_status(h.s, 3), SAGA_STEP_SKIPPED);
    assert_int_equal(saga_engine_step_status(h.s, 2), SAGA_STEP_FAILED);
    harness_destroy(&h);
}

/* A pivot that times out until its attempts run out is a failed pivot: it is
 * not compensatable, the steps before it are. */
static void test_pivot_exhausted_after_timeouts(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_SAGA, "a p<a:pivot");
    def->steps[1].retry = (struct def_retry){1, 10, 10};
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_fire(&h, SAGA_TIMER_TIMEOUT, 1), 0);
    assert_null(fixture_command(&h.fx, 1, COMP));
    assert_non_null(fixture_command(&h.fx, 0, COMP));
    harness_destroy(&h);
}

/* Past the pivot the saga only goes forward: retries without limit (even over a
 * max_attempts), a FAIL is STUCK, never a compensation. */
static void test_after_the_pivot_only_forward(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_SAGA, "a p<a:pivot r<p:retriable s<p:retriable");
    def->steps[2].retry = (struct def_retry){2, 10, 10};
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, OK, NULL), 0);
    assert_int_equal(h.fx.n_commands, 2);
    for (uint32_t n = 1; n <= 10; n++) {
        assert_int_equal(harness_reply(&h, 2, ACT, n, RETRY, NULL), 0);
        assert_int_equal(harness_fire(&h, SAGA_TIMER_BACKOFF, 2), 0);
    }
    assert_int_equal(harness_reply(&h, 3, ACT, 1, RETRY, NULL), 0);
    struct saga_timer s_backoff = *fixture_timer(&h.fx, SAGA_TIMER_BACKOFF, 3);
    assert_int_equal(harness_reply(&h, 2, ACT, 11, FAIL, "address unknown"), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_STUCK);
    assert_string_equal(saga_engine_error(h.s), "step 'r' failed after the pivot: address unknown");
    assert_int_equal(h.fx.n_commands, 0);
    assert_int_equal(h.fx.settled, 1);
    /* s's retry is parked, not sent */
    assert_int_equal(harness_timer(&h, s_backoff), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_STALE_TIMER);
    harness_destroy(&h);
}

static void test_deadline_before_the_pivot_compensates(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_SAGA, "a b<a p<b:pivot");
    def->timeout_ms = 3000;
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);
    struct saga_timer deadline = *fixture_timer(&h.fx, SAGA_TIMER_DEADLINE, -1);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    h.now = 4000;
    assert_int_equal(harness_timer(&h, deadline), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATING);
    assert_string_equal(saga_engine_error(h.s), "deadline exceeded");
    assert_int_equal(h.fx.n_commands, 0); /* b is out */
    /* a second firing changes nothing */
    assert_int_equal(harness_timer(&h, deadline), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_STALE_TIMER);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, OK, NULL), 0);
    assert_non_null(fixture_command(&h.fx, 1, COMP));
    assert_int_equal(harness_reply(&h, 1, COMP, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 0, COMP, 1, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATED);
    assert_int_equal(saga_engine_step_status(h.s, 2), SAGA_STEP_SKIPPED);
    harness_destroy(&h);
}

static void test_deadline_after_the_pivot_is_ignored(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_SAGA, "p:pivot r<p:retriable");
    def->timeout_ms = 3000;
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);
    struct saga_timer deadline = *fixture_timer(&h.fx, SAGA_TIMER_DEADLINE, -1);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    h.now = 5000;
    assert_int_equal(harness_timer(&h, deadline), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_STALE_TIMER);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_RUNNING);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPLETED);
    harness_destroy(&h);
}

/* The deadline while the pivot is out: the pivot's reply decides. */
static void test_deadline_while_the_pivot_is_out(void **state)
{
    (void)state;
    for (int variant = 0; variant < 4; variant++) {
        struct harness h;
        struct definition *def = fixture_def(DEF_MODE_SAGA, "a p<a:pivot r<p:retriable");
        def->timeout_ms = 3000;
        harness_init(&h, def);
        assert_int_equal(harness_start(&h), 0);
        struct saga_timer deadline = *fixture_timer(&h.fx, SAGA_TIMER_DEADLINE, -1);
        assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
        h.now = 4000;
        assert_int_equal(harness_timer(&h, deadline), 0);
        assert_int_equal(h.fx.ignored, SAGA_APPLIED);
        assert_int_equal(h.fx.n_records, 0);
        assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_RUNNING);
        switch (variant) {
        case 0: /* OK: past the pivot, the deadline no longer counts */
            assert_int_equal(harness_reply(&h, 1, ACT, 1, OK, NULL), 0);
            assert_non_null(fixture_command(&h.fx, 2, ACT));
            assert_int_equal(harness_reply(&h, 2, ACT, 1, OK, NULL), 0);
            assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPLETED);
            break;
        case 1: /* RETRY: no more attempts */
            assert_int_equal(harness_reply(&h, 1, ACT, 1, RETRY, NULL), 0);
            assert_string_equal(saga_engine_error(h.s), "deadline exceeded");
            assert_non_null(fixture_command(&h.fx, 0, COMP));
            break;
        case 2: /* no reply in time */
            assert_int_equal(
                harness_timer(&h, (struct saga_timer){SAGA_TIMER_TIMEOUT, 1, ACT, 1, 0}), 0);
            assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATING);
            assert_non_null(fixture_command(&h.fx, 0, COMP));
            break;
        default: /* FAIL */
            assert_int_equal(harness_reply(&h, 1, ACT, 1, FAIL, "no"), 0);
            assert_string_equal(saga_engine_error(h.s), "step 'p' failed: no");
            break;
        }
        harness_destroy(&h);
    }
}

/* The deadline while the pivot waits for a retry: the pivot has failed. */
static void test_deadline_while_the_pivot_waits(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_SAGA, "a p<a:pivot");
    def->timeout_ms = 3000;
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);
    struct saga_timer deadline = *fixture_timer(&h.fx, SAGA_TIMER_DEADLINE, -1);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, RETRY, NULL), 0);
    struct saga_timer backoff = *fixture_timer(&h.fx, SAGA_TIMER_BACKOFF, 1);
    h.now = 4000;
    assert_int_equal(harness_timer(&h, deadline), 0);
    const struct record *r = fixture_step_record(&h.fx, 1, SAGA_STEP_FAILED);
    assert_non_null(r);
    assert_string_equal(r->error, "deadline exceeded");
    assert_non_null(fixture_command(&h.fx, 0, COMP));
    assert_int_equal(harness_timer(&h, backoff), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_STALE_TIMER);
    harness_destroy(&h);
}

static void test_deadline_while_compensating_is_ignored(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_SAGA, "a b<a");
    def->timeout_ms = 3000;
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);
    struct saga_timer deadline = *fixture_timer(&h.fx, SAGA_TIMER_DEADLINE, -1);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, FAIL, "x"), 0);
    h.now = 9000;
    assert_int_equal(harness_timer(&h, deadline), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_STALE_TIMER);
    assert_string_equal(saga_engine_error(h.s), "step 'b' failed: x");
    harness_destroy(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fail_starts_compensation_in_one_call),
        cmocka_unit_test(test_reverse_dependency_order),
        cmocka_unit_test(test_independent_compensations_in_parallel),
        cmocka_unit_test(test_in_flight_steps_are_waited_for),
        cmocka_unit_test(test_in_flight_dependent_holds_back),
        cmocka_unit_test(test_waiting_retries_are_dropped_and_compensated),
        cmocka_unit_test(test_compensation_retries_with_its_own_policy),
        cmocka_unit_test(test_compensate_fail_is_stuck),
        cmocka_unit_test(test_compensate_exhausted_is_stuck),
        cmocka_unit_test(test_steps_never_run_are_skipped_at_the_end),
        cmocka_unit_test(test_failed_pivot_compensates_what_ran_before),
        cmocka_unit_test(test_pivot_exhausted_after_timeouts),
        cmocka_unit_test(test_after_the_pivot_only_forward),
        cmocka_unit_test(test_deadline_before_the_pivot_compensates),
        cmocka_unit_test(test_deadline_after_the_pivot_is_ignored),
        cmocka_unit_test(test_deadline_while_the_pivot_is_out),
        cmocka_unit_test(test_deadline_while_the_pivot_waits),
        cmocka_unit_test(test_deadline_while_compensating_is_ignored),
    };
    return cmocka_run_group_tests_name("saga_compensate", tests, NULL, NULL);
}
