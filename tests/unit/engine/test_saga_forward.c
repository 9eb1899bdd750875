/* The engine going forward: dispatch, parallel steps, outputs, retries with
 * backoff, timeouts, exhausted attempts, ignored replies and timers, bad input. */
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

static void test_start_emits_insert_and_first_dispatch(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b<a"));
    assert_int_equal(harness_start(&h), 0);

    assert_int_equal(h.fx.n_records, 2);
    assert_int_equal(h.fx.records[0].kind, REC_SAGA_INSERT);
    assert_string_equal(h.fx.records[0].event, "saga.started");
    assert_int_equal(h.fx.records[0].saga_status, SAGA_STATUS_RUNNING);
    assert_int_equal(h.fx.records[0].step, -1);
    assert_int_equal(h.fx.records[0].at_ms, 1000);
    assert_int_equal(h.fx.records[0].deadline_ms, 0);
    assert_int_equal(h.fx.records[1].kind, REC_STEP_UPDATE);
    assert_string_equal(h.fx.records[1].event, "step.dispatched");
    assert_int_equal(h.fx.records[1].step, 0);
    assert_int_equal(h.fx.records[1].step_status, SAGA_STEP_RUNNING);
    assert_int_equal(h.fx.records[1].attempts, 1);
    assert_int_equal(h.fx.records[1].attempt, 1);

    assert_int_equal(h.fx.n_commands, 1);
    assert_int_equal(h.fx.commands[0].step, 0);
    assert_int_equal(h.fx.commands[0].op, ACT);
    assert_int_equal(h.fx.commands[0].attempt, 1);
    assert_int_equal(h.fx.commands[0].timeout_ms, 1000);
    assert_int_equal(h.fx.n_timers, 1);
    assert_int_equal(h.fx.timers[0].kind, SAGA_TIMER_TIMEOUT);
    assert_int_equal(h.fx.timers[0].at_ms, 2000);
    assert_int_equal(h.fx.status, SAGA_STATUS_RUNNING);
    assert_int_equal(h.fx.settled, 0);

    assert_int_equal(harness_start(&h), SAGA_ESTATE);
    harness_destroy(&h);
}

/* A two-step saga that succeeds: three transactions of two rows each. */
static void test_two_steps_three_transactions(void **state)
{
    (void)state;
    struct harness h;
    char out[8] = "out-a";
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b<a"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(h.fx.n_records, 2);

    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, out), 0);
    memcpy(out, "XXXXX", 5); /* the engine kept its own copy */
    assert_int_equal(h.fx.n_records, 2);
    assert_int_equal(h.fx.records[0].step, 0);
    assert_int_equal(h.fx.records[0].step_status, SAGA_STEP_SUCCEEDED);
    assert_string_equal(h.fx.records[0].event, "step.succeeded");
    assert_int_equal(h.fx.records[0].output_len, 5);
    assert_memory_equal(h.fx.records[0].output, "out-a", 5);
    assert_int_equal(h.fx.records[1].step, 1);
    assert_int_equal(h.fx.records[1].step_status, SAGA_STEP_RUNNING);
    assert_int_equal(h.fx.n_commands, 1);
    assert_int_equal(h.fx.commands[0].step, 1);

    size_t len;
    const uint8_t *o = saga_engine_step_output(h.s, 0, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(o, "out-a", 5);

    assert_int_equal(harness_reply(&h, 1, ACT, 1, OK, NULL), 0);
    assert_int_equal(h.fx.n_records, 2);
    assert_int_equal(h.fx.records[0].step_status, SAGA_STEP_SUCCEEDED);
    assert_int_equal(h.fx.records[1].kind, REC_SAGA_UPDATE);
    assert_int_equal(h.fx.records[1].saga_status, SAGA_STATUS_COMPLETED);
    assert_string_equal(h.fx.records[1].event, "saga.completed");
    assert_int_equal(h.fx.n_commands, 0);
    assert_int_equal(h.fx.settled, 1);
    assert_int_equal(h.fx.status, SAGA_STATUS_COMPLETED);
    assert_null(saga_engine_step_output(h.s, 1, &len));
    assert_int_equal(len, 0);
    harness_destroy(&h);
}

static void test_independent_steps_run_in_parallel(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b c<a,b d<c e<c"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(h.fx.n_commands, 2);
    assert_non_null(fixture_command(&h.fx, 0, ACT));
    assert_non_null(fixture_command(&h.fx, 1, ACT));

    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(h.fx.n_commands, 0); /* c still waits for b */
    assert_int_equal(harness_reply(&h, 1, ACT, 1, OK, NULL), 0);
    assert_int_equal(h.fx.n_commands, 1);
    assert_non_null(fixture_command(&h.fx, 2, ACT));
    assert_int_equal(harness_reply(&h, 2, ACT, 1, OK, NULL), 0);
    assert_int_equal(h.fx.n_commands, 2);
    assert_non_null(fixture_command(&h.fx, 3, ACT));
    assert_non_null(fixture_command(&h.fx, 4, ACT));
    assert_int_equal(harness_reply(&h, 4, ACT, 1, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_RUNNING);
    assert_int_equal(harness_reply(&h, 3, ACT, 1, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPLETED);
    harness_destroy(&h);
}

static void test_deadline_is_armed_and_recorded(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_SAGA, "a");
    def->timeout_ms = 5000;
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);
    const struct saga_timer *t = fixture_timer(&h.fx, SAGA_TIMER_DEADLINE, -1);
    assert_non_null(t);
    assert_int_equal(t->at_ms, 6000);
    assert_int_equal(h.fx.records[0].deadline_ms, 6000);
    assert_int_equal(h.fx.records[0].wake_ms, 6000);
    assert_int_equal(saga_engine_deadline(h.s), 6000);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(h.fx.records[1].wake_ms, 0); /* completed: nothing to wake for */
    harness_destroy(&h);
}

/* RETRY waits min(max_backoff, backoff * 2^(n-1)), records nothing while it
 * waits, then sends the next attempt with its dispatch record. */
static void test_retry_backs_off_exponentially_with_a_cap(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_SAGA, "a");
    def->steps[0].retry = (struct def_retry){5, 100, 300};
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);

    const uint64_t want[] = {100, 200, 300, 300};
    for (uint32_t n = 1; n <= 4; n++) {
        assert_int_equal(harness_reply(&h, 0, ACT, n, RETRY, "busy"), 0);
        assert_int_equal(h.fx.n_records, 0);
        assert_int_equal(h.fx.n_commands, 0);
        assert_int_equal(h.fx.n_timers, 1);
        assert_int_equal(h.fx.timers[0].kind, SAGA_TIMER_BACKOFF);
        assert_int_equal(h.fx.timers[0].attempt, n + 1);
        assert_int_equal(h.fx.timers[0].op, ACT);
        assert_int_equal(h.fx.timers[0].at_ms, h.now + want[n - 1]);
        assert_int_equal(saga_engine_step_status(h.s, 0), SAGA_STEP_RUNNING);
        assert_int_equal(harness_fire(&h, SAGA_TIMER_BACKOFF, 0), 0);
        assert_int_equal(h.fx.n_records, 1);
        assert_int_equal(h.fx.records[0].attempts, n + 1);
        assert_int_equal(harness_attempt(&h, 0, ACT), n + 1);
    }
    /* the fifth attempt was the last one allowed */
    assert_int_equal(harness_reply(&h, 0, ACT, 5, RETRY, "still busy"), 0);
    const struct record *r = fixture_step_record(&h.fx, 0, SAGA_STEP_FAILED);
    assert_non_null(r);
    assert_string_equal(r->error, "still busy");
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATING);
    assert_non_null(strstr(saga_engine_error(h.s), "'a'"));
    assert_non_null(strstr(saga_engine_error(h.s), "5 attempts"));
    /* a RETRY is no promise that nothing ran: a is compensated (most likely a
     * null compensation, which also fences off late copies of its command) */
    assert_int_equal(harness_reply(&h, 0, COMP, 1, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATED);
    harness_destroy(&h);
}

static void test_jitter_stays_within_half_to_full(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 50; seed++) {
        struct harness h;
        struct saga_rng rng;
        struct saga_id id = {{9}};
        struct definition *def = fixture_def(DEF_MODE_SAGA, "a");
        def->steps[0].retry = (struct def_retry){0, 1000, 8000};
        harness_init(&h, def);
        saga_engine_free(&h.s);
        saga_rng_seed(&rng, seed);
        assert_int_equal(saga_engine_new(def, &id, NULL, 0, &rng, &h.s), 0);
        model_store_destroy(&h.store);
        model_store_init(&h.store, 1, &id, NULL, 0);
        assert_int_equal(harness_start(&h), 0);
        uint64_t d = 1000;
        for (uint32_t n = 1; n <= 5; n++) {
            assert_int_equal(harness_reply(&h, 0, ACT, n, RETRY, NULL), 0);
            uint64_t at = h.fx.timers[0].at_ms - h.now;
            assert_true(at >= d / 2 && at <= d);
            assert_int_equal(harness_fire(&h, SAGA_TIMER_BACKOFF, 0), 0);
            d = d * 2 > 8000 ? 8000 : d * 2;
        }
        harness_destroy(&h);
    }
}

static void test_zero_backoff_sends_at_once(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_SAGA, "a");
    def->steps[0].retry = (struct def_retry){3, 0, 0};
    def->steps[0].timeout_ms = 0;
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(h.fx.n_timers, 0); /* no timeout: no timer */
    assert_int_equal(h.fx.commands[0].timeout_ms, 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, RETRY, NULL), 0);
    assert_int_equal(h.fx.n_records, 1);
    assert_int_equal(harness_attempt(&h, 0, ACT), 2);
    assert_int_equal(h.fx.n_timers, 0);
    harness_destroy(&h);
}

static void test_unlimited_attempts(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_SAGA, "a");
    def->steps[0].retry = (struct def_retry){0, 10, 20};
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);
    for (uint32_t n = 1; n <= 200; n++) {
        assert_int_equal(harness_reply(&h, 0, ACT, n, RETRY, NULL), 0);
        assert_int_equal(harness_fire(&h, SAGA_TIMER_BACKOFF, 0), 0);
    }
    assert_int_equal(harness_reply(&h, 0, ACT, 201, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPLETED);
    harness_destroy(&h);
}

/* Running out of attempts: the step counts as failed, but since no FAIL came
 * back it may have run, so it is compensated first, then what it depends on. */
static void test_exhausted_attempts_fail_and_compensate(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_SAGA, "a b<a");
    def->steps[1].retry = (struct def_retry){2, 100, 100};
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, RETRY, NULL), 0);
    assert_int_equal(harness_fire(&h, SAGA_TIMER_BACKOFF, 1), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 2, RETRY, "nope"), 0);
    /* one call: b failed, saga compensating, b's compensation sent */
    int failed = fixture_record_index(&h.fx, fixture_step_record(&h.fx, 1, SAGA_STEP_FAILED));
    int comp = fixture_record_index(&h.fx, fixture_saga_record(&h.fx, SAGA_STATUS_COMPENSATING));
    int disp = fixture_record_index(&h.fx, fixture_step_record(&h.fx, 1, SAGA_STEP_COMPENSATING));
    assert_true(failed >= 0 && comp > failed && disp > comp);
    assert_int_equal(h.fx.n_commands, 1);
    assert_non_null(fixture_command(&h.fx, 1, COMP));
    assert_int_equal(harness_reply(&h, 1, COMP, 1, OK, NULL), 0);
    assert_non_null(fixture_command(&h.fx, 0, COMP));
    assert_int_equal(harness_reply(&h, 0, COMP, 1, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATED);
    assert_int_equal(saga_engine_step_status(h.s, 1), SAGA_STEP_COMPENSATED);
    harness_destroy(&h);
}

/* A timeout counts as RETRY: when the attempts run out the step is compensated
 * too, before the steps it depends on. */
static void test_timeout_counts_as_retry(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_SAGA, "a b<a");
    def->steps[1].retry = (struct def_retry){2, 100, 100};
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_fire(&h, SAGA_TIMER_TIMEOUT, 1), 0);
    assert_int_equal(h.fx.n_records, 0); /* waiting for the backoff */
    assert_int_equal(harness_fire(&h, SAGA_TIMER_BACKOFF, 1), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 2, RETRY, NULL), 0);
    assert_non_null(fixture_step_record(&h.fx, 1, SAGA_STEP_FAILED));
    assert_non_null(fixture_command(&h.fx, 1, COMP));
    assert_null(fixture_command(&h.fx, 0, COMP)); /* a waits for b */
    assert_int_equal(harness_reply(&h, 1, COMP, 1, OK, NULL), 0);
    assert_non_null(fixture_command(&h.fx, 0, COMP));
    assert_int_equal(harness_reply(&h, 0, COMP, 1, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATED);
    assert_int_equal(saga_engine_step_status(h.s, 1), SAGA_STEP_COMPENSATED);
    harness_destroy(&h);
}

/* A definite FAIL after a timeout means nothing ran: nothing to undo. */
static void test_fail_after_timeout_is_not_compensated(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b<a"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(harness_fire(&h, SAGA_TIMER_TIMEOUT, 1), 0);
    assert_int_equal(harness_fire(&h, SAGA_TIMER_BACKOFF, 1), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 2, FAIL, "card declined"), 0);
    assert_null(fixture_command(&h.fx, 1, COMP));
    assert_non_null(fixture_command(&h.fx, 0, COMP));
    assert_string_equal(saga_engine_error(h.s), "step 'b' failed: card declined");
    harness_destroy(&h);
}

static void test_ignored_replies_change_nothing(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b<a"));
    /* not started */
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_FINISHED);
    assert_int_equal(harness_start(&h), 0);

    assert_int_equal(harness_reply(&h, 7, ACT, 1, OK, NULL), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_UNKNOWN_STEP);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, OK, NULL), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_NOT_IN_FLIGHT);
    assert_int_equal(harness_reply(&h, 0, COMP, 1, OK, NULL), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_WRONG_OP);
    assert_int_equal(harness_reply(&h, 0, SAGA_OP_PREPARE, 1, OK, NULL), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_WRONG_OP);
    assert_int_equal(harness_reply(&h, 0, ACT, 2, OK, NULL), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_WRONG_ATTEMPT);
    assert_int_equal(harness_reply(&h, 0, ACT, 0, OK, NULL), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_WRONG_ATTEMPT);

    /* a late reply after a timeout, while the retry waits, then once it is out */
    assert_int_equal(harness_timer(&h, (struct saga_timer){SAGA_TIMER_TIMEOUT, 0, ACT, 1, 0}), 0);
    assert_int_equal(h.fx.ignored, SAGA_APPLIED);
    struct saga_timer backoff = *fixture_timer(&h.fx, SAGA_TIMER_BACKOFF, 0);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_NOT_IN_FLIGHT);
    assert_int_equal(harness_timer(&h, backoff), 0);
    assert_int_equal(h.fx.ignored, SAGA_APPLIED);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, FAIL, NULL), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_WRONG_ATTEMPT);

    /* the awaited reply, then its duplicate */
    assert_int_equal(harness_reply(&h, 0, ACT, 2, OK, NULL), 0);
    assert_int_equal(h.fx.ignored, SAGA_APPLIED);
    assert_int_equal(harness_reply(&h, 0, ACT, 2, OK, NULL), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_NOT_IN_FLIGHT);
    assert_int_equal(harness_reply(&h, 0, ACT, 2, FAIL, NULL), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_NOT_IN_FLIGHT);

    assert_int_equal(harness_reply(&h, 1, ACT, 1, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPLETED);
    /* after the end */
    assert_int_equal(harness_reply(&h, 1, ACT, 1, OK, NULL), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_FINISHED);
    assert_int_equal(h.fx.status, SAGA_STATUS_COMPLETED);
    harness_destroy(&h);
}

static void test_stale_timers_change_nothing(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_SAGA, "a b<a");
    def->timeout_ms = 10000;
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);
    struct saga_timer timeout1 = *fixture_timer(&h.fx, SAGA_TIMER_TIMEOUT, 0);
    struct saga_timer deadline = *fixture_timer(&h.fx, SAGA_TIMER_DEADLINE, -1);

    /* the deadline fired early (clock skew between arm and fire) */
    assert_int_equal(harness_timer(&h, deadline), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_STALE_TIMER);
    /* a backoff timer with nothing waiting */
    struct saga_timer backoff = {SAGA_TIMER_BACKOFF, 0, ACT, 2, 0};
    assert_int_equal(harness_timer(&h, backoff), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_STALE_TIMER);
    struct saga_timer nostep = {SAGA_TIMER_TIMEOUT, 9, ACT, 1, 0};
    assert_int_equal(harness_timer(&h, nostep), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_STALE_TIMER);
    nostep.step = -1;
    assert_int_equal(harness_timer(&h, nostep), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_STALE_TIMER);

    assert_int_equal(harness_reply(&h, 0, ACT, 1, RETRY, NULL), 0);
    struct saga_timer backoff2 = *fixture_timer(&h.fx, SAGA_TIMER_BACKOFF, 0);
    /* the first attempt's timeout, while the retry waits */
    assert_int_equal(harness_timer(&h, timeout1), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_STALE_TIMER);
    /* a backoff timer for the wrong attempt or op */
    backoff.attempt = 3;
    assert_int_equal(harness_timer(&h, backoff), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_STALE_TIMER);
    backoff.attempt = 2;
    backoff.op = COMP;
    assert_int_equal(harness_timer(&h, backoff), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_STALE_TIMER);
    assert_int_equal(harness_timer(&h, backoff2), 0);
    assert_int_equal(h.fx.ignored, SAGA_APPLIED);
    /* twice */
    assert_int_equal(harness_timer(&h, backoff2), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_STALE_TIMER);
    /* the first attempt's timeout, now that the second is out */
    assert_int_equal(harness_timer(&h, timeout1), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_STALE_TIMER);

    assert_int_equal(harness_reply(&h, 0, ACT, 2, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, OK, NULL), 0);
    h.now = 20000;
    assert_int_equal(harness_timer(&h, deadline), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_FINISHED);
    harness_destroy(&h);
}

/* The barrier: a pivot waits for every compensatable step, a retriable step for
 * the pivot, even when the definition's edges would let them start earlier. */
static void test_pivot_and_retriable_wait_their_turn(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b p<a:pivot r:retriable"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(h.fx.n_commands, 2); /* a and b; not p, not r */
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(h.fx.n_commands, 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, OK, NULL), 0);
    assert_int_equal(h.fx.n_commands, 1);
    assert_non_null(fixture_command(&h.fx, 2, ACT));
    assert_int_equal(harness_reply(&h, 2, ACT, 1, OK, NULL), 0);
    assert_non_null(fixture_command(&h.fx, 3, ACT));
    assert_int_equal(harness_reply(&h, 3, ACT, 1, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPLETED);
    harness_destroy(&h);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    struct harness h;
    struct saga *s = NULL;
    struct saga_id id = {{1}};
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b<a"));
    assert_int_equal(harness_start(&h), 0);

    assert_int_equal(harness_reply(&h, 0, (saga_op_t)0, 1, OK, NULL), SAGA_EINVAL);
    assert_int_equal(harness_reply(&h, 0, (saga_op_t)6, 1, OK, NULL), SAGA_EINVAL);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, (saga_outcome_t)0, NULL), SAGA_EINVAL);
    assert_int_equal(harness_reply(&h, 0, ACT, 1, (saga_outcome_t)4, NULL), SAGA_EINVAL);
    struct saga_reply r = {.step = 0, .op = ACT, .attempt = 1, .outcome = OK, .output_len = 3};
    assert_int_equal(saga_engine_reply(h.s, &r, h.now, &h.fx), SAGA_EINVAL);
    assert_int_equal(saga_engine_reply(h.s, NULL, h.now, &h.fx), SAGA_EINVAL);
    assert_int_equal(saga_engine_timer(h.s, NULL, h.now, &h.fx), SAGA_EINVAL);
    struct saga_timer t = {(enum saga_timer_kind)0, 0, ACT, 1, 0};
    assert_int_equal(harness_timer(&h, t), SAGA_EINVAL);
    t.kind = (enum saga_timer_kind)4;
    assert_int_equal(harness_timer(&h, t), SAGA_EINVAL);
    assert_int_equal(saga_engine_resolve(h.s, SAGA_STATUS_RUNNING, h.now, &h.fx), SAGA_EINVAL);
    assert_int_equal(saga_engine_resolve(h.s, SAGA_STATUS_COMMITTED, h.now, &h.fx), SAGA_EINVAL);
    enum saga_decision d;
    assert_int_equal(saga_engine_in_doubt(h.s, 0, &d), SAGA_EINVAL); /* not 2pc */
    /* the saga did not move */
    assert_int_equal(harness_reply(&h, 0, ACT, 1, OK, NULL), 0);
    assert_int_equal(h.fx.ignored, SAGA_APPLIED);
    harness_destroy(&h);

    /* definitions the engine refuses */
    struct definition *def = fixture_def(DEF_MODE_SAGA, "a b<a");
    assert_int_equal(saga_engine_new(def, &id, NULL, 3, NULL, &s), SAGA_EINVAL);
    assert_int_equal(saga_engine_new(def, NULL, NULL, 0, NULL, &s), SAGA_EINVAL);
    assert_int_equal(saga_engine_new(NULL, &id, NULL, 0, NULL, &s), SAGA_EINVAL);
    def->steps[1].after[0] = 5;
    assert_int_equal(saga_engine_new(def, &id, NULL, 0, NULL, &s), SAGA_EINVAL);
    def->steps[1].after[0] = 1; /* itself */
    assert_int_equal(saga_engine_new(def, &id, NULL, 0, NULL, &s), SAGA_EINVAL);
    def->steps[1].after[0] = 0;
    def->steps[0].kind = DEF_KIND_PIVOT; /* compensatable after a pivot */
    fixture_finish(def);
    assert_int_equal(saga_engine_new(def, &id, NULL, 0, NULL, &s), SAGA_EINVAL);
    def->steps[0].kind = DEF_KIND_COMPENSATABLE;
    def->pivot = 1; /* a pivot index that names no pivot */
    assert_int_equal(saga_engine_new(def, &id, NULL, 0, NULL, &s), SAGA_EINVAL);
    fixture_finish(def);
    def->mode = (enum def_mode)7;
    assert_int_equal(saga_engine_new(def, &id, NULL, 0, NULL, &s), SAGA_EINVAL);
    def->mode = DEF_MODE_SAGA;
    def->n_steps = 0;
    assert_int_equal(saga_engine_new(def, &id, NULL, 0, NULL, &s), SAGA_EINVAL);
    def->n_steps = 2;
    assert_null(s);
    assert_int_equal(saga_engine_new(def, &id, NULL, 0, NULL, &s), 0);
    saga_engine_free(&s);
    assert_null(s);
    saga_engine_free(&s);
    saga_engine_free(NULL);
    fixture_def_free(&def);

    def = fixture_def(DEF_MODE_2PC, "a b:pivot");
    assert_int_equal(saga_engine_new(def, &id, NULL, 0, NULL, &s), SAGA_EINVAL);
    fixture_def_free(&def);
}

static int valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != 0) {
        int n = *p < 0x80 ? 0 : (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2 : 3;
        p++;
        for (int i = 0; i < n; i++, p++) {
            if ((*p & 0xC0) != 0x80)
                return 0;
        }
    }
    return 1;
}

static void test_reasons_are_kept_and_cut_on_a_character(void **state)
{
    (void)state;
    struct harness h;
    char reason[3001];
    for (int i = 0; i < 3000; i += 2)
        memcpy(reason + i, "\xc3\xa9", 2); /* é */
    reason[3000] = '\0';
    reason[1] = 'x'; /* off by one byte: a cut on 1024 would split a character */
    reason[0] = 'x';
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 1, ACT, 1, FAIL, NULL), 0);
    assert_string_equal(fixture_step_record(&h.fx, 1, SAGA_STEP_FAILED)->error, "no reason given");
    assert_int_equal(harness_reply(&h, 0, ACT, 1, FAIL, reason + 1), 0);
    const char *kept = fixture_step_record(&h.fx, 0, SAGA_STEP_FAILED)->error;
    assert_true(strlen(kept) <= 1024 && strlen(kept) >= 1020);
    assert_true(valid_utf8(kept));
    assert_true(strlen(saga_engine_error(h.s)) < 160);
    assert_true(valid_utf8(saga_engine_error(h.s)));
    harness_destroy(&h);
}

static void test_accessors(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_SAGA, "a b<a c<b"));
    size_t len;
    const uint8_t *in = saga_engine_input(h.s, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(in, "input", 5);
    assert_int_equal(saga_engine_id(h.s)->bytes[0], 1);
    assert_ptr_equal(saga_engine_definition(h.s), h.def);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_UNKNOWN);
    assert_null(saga_engine_error(h.s));
    assert_int_equal(saga_engine_step_status(h.s, 99), SAGA_STEP_PENDING);
    assert_null(saga_engine_step_output(h.s, 99, &len));
    /* one allocation of at most 1 KiB for a 3-step saga, payloads aside */
    assert_true(saga_engine_alloc_size(h.def, 0) <= 1024);
    assert_int_equal(saga_engine_alloc_size(h.def, 100), saga_engine_alloc_size(h.def, 0) + 100);
    harness_destroy(&h);
}

static void test_lease_lost_drops_the_saga(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_2PC, "a"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(saga_engine_lease_lost(h.s, &h.fx), 0);
    assert_int_equal(h.fx.dropped, 1);
    assert_int_equal(h.fx.n_records + h.fx.n_commands + h.fx.n_timers, 0);
    assert_int_equal(harness_reply(&h, 0, SAGA_OP_PREPARE, 1, OK, NULL), SAGA_EFENCED);
    struct saga_timer t = {SAGA_TIMER_TIMEOUT, 0, SAGA_OP_PREPARE, 1, 0};
    assert_int_equal(harness_timer(&h, t), SAGA_EFENCED);
    assert_int_equal(harness_retry(&h), SAGA_EFENCED);
    assert_int_equal(harness_abort(&h), SAGA_EFENCED);
    assert_int_equal(harness_resolve(&h, SAGA_STATUS_ABORTED), SAGA_EFENCED);
    assert_int_equal(harness_start(&h), SAGA_EFENCED);
    enum saga_decision d;
    assert_int_equal(saga_engine_in_doubt(h.s, 0, &d), SAGA_EFENCED);
    assert_int_equal(saga_engine_lease_lost(h.s, &h.fx), SAGA_EFENCED);
    assert_int_equal(h.fx.dropped, 0);
    harness_destroy(&h);
}

/* The widest calls: 256 steps at once, a compensation of 255 in one call, the
 * 2pc decision with 256 commits. The buffers are sized for them up front. */
static void test_widest_calls_fit(void **state)
{
    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        struct harness h;
        struct definition *def = fixture_def_alloc(mode ? DEF_MODE_2PC : DEF_MODE_SAGA, 256);
        fixture_finish(def);
        harness_init(&h, def);
        saga_op_t op = mode ? SAGA_OP_PREPARE : ACT;
        assert_int_equal(harness_start(&h), 0);
        assert_int_equal(h.fx.n_commands, 256);
        assert_int_equal(h.fx.n_timers, 256);
        for (uint16_t i = 0; i < 255; i++)
            assert_int_equal(harness_reply(&h, i, op, 1, OK, NULL), 0);
        assert_int_equal(harness_reply(&h, 255, op, 1, mode ? OK : FAIL, NULL), 0);
        assert_int_equal(h.fx.n_commands, mode ? 256 : 255);
        assert_true(h.fx.n_records <= h.fx.cap_records);
        harness_destroy(&h);
    }

    struct effects fx;
    effects_init(&fx);
    assert_int_equal(effects_reserve(&fx, 3), 0);
    uint32_t cap = fx.cap_records;
    assert_true(cap >= 3 * 2 + 3 && fx.cap_commands >= 3 && fx.cap_timers >= 4);
    effects_add_record(&fx)->step = 7;
    assert_int_equal(effects_reserve(&fx, 2), 0); /* enough already: unchanged */
    assert_int_equal(fx.cap_records, cap);
    assert_int_equal(effects_reserve(&fx, 100), 0);
    assert_true(fx.cap_records > cap);
    assert_int_equal(fx.n_records, 1);
    assert_int_equal(fx.records[0].step, 7); /* kept across growth */
    effects_reset(&fx);
    assert_int_equal(fx.n_records + fx.n_commands + fx.n_timers, 0);
    assert_int_equal(effects_add_timer(&fx)->kind, 0); /* entries come zeroed */
    assert_int_equal(effects_add_command(&fx)->attempt, 0);
    effects_destroy(&fx);
    assert_null(fx.records);
}

/* The engine runs what the definition parser produces (the design's example:
 * implicit "after", a pivot, a retriable step). */
static void test_runs_a_parsed_definition(void **state)
{
    (void)state;
    static const char text[] =
        "{\"name\": \"checkout\", \"version\": 3, \"timeout\": \"30s\", \"steps\": ["
        "{\"name\": \"reserve\", \"service\": \"inventory\", \"action\": \"reserve\","
        " \"timeout\": \"2s\","
        " \"retry\": {\"max_attempts\": 5, \"backoff\": \"100ms\", \"max_backoff\": \"5s\"}},"
        "{\"name\": \"charge\", \"service\": \"payment\", \"action\": \"charge\"},"
        "{\"name\": \"ship\", \"service\": \"shipping\", \"action\": \"ship\","
        " \"kind\": \"pivot\"},"
        "{\"name\": \"notify\", \"service\": \"mail\", \"action\": \"send\","
        " \"kind\": \"retriable\"}]}";
    struct definition *def = NULL;
    struct def_diags diags = {0};
    assert_int_equal(definition_parse(text, sizeof(text) - 1, &def, &diags), 0);
    def_diags_clear(&diags);

    for (int fail_charge = 0; fail_charge < 2; fail_charge++) {
        struct harness h;
        harness_init_borrowed(&h, def);
        assert_int_equal(harness_start(&h), 0);
        assert_int_equal(fixture_timer(&h.fx, SAGA_TIMER_DEADLINE, -1)->at_ms, 31000);
        assert_int_equal(h.fx.commands[0].timeout_ms, 2000);
        assert_int_equal(harness_reply(&h, 0, ACT, 1, RETRY, NULL), 0);
        assert_int_equal(h.fx.timers[0].at_ms - h.now, 100);
        assert_int_equal(harness_fire(&h, SAGA_TIMER_BACKOFF, 0), 0);
        assert_int_equal(harness_reply(&h, 0, ACT, 2, OK, "r"), 0);
        if (fail_charge) {
            assert_int_equal(harness_reply(&h, 1, ACT, 1, FAIL, "card declined"), 0);
            assert_string_equal(saga_engine_error(h.s), "step 'charge' failed: card declined");
            assert_int_equal(harness_reply(&h, 0, COMP, 1, OK, NULL), 0);
            assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPENSATED);
        } else {
            for (uint16_t i = 1; i < 4; i++)
                assert_int_equal(harness_reply(&h, i, ACT, 1, OK, NULL), 0);
            assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMPLETED);
        }
        harness_destroy(&h);
    }
    definition_free(&def);
}

static void test_effects_names(void **state)
{
    (void)state;
    assert_string_equal(effects_timer_name(SAGA_TIMER_DEADLINE), "deadline");
    assert_string_equal(effects_timer_name(SAGA_TIMER_BACKOFF), "backoff");
    assert_string_equal(effects_timer_name((enum saga_timer_kind)0), "unknown");
    assert_string_equal(effects_ignored_name(SAGA_IGNORED_WRONG_ATTEMPT), "wrong_attempt");
    assert_string_equal(effects_ignored_name((enum saga_ignored)99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_emits_insert_and_first_dispatch),
        cmocka_unit_test(test_two_steps_three_transactions),
        cmocka_unit_test(test_independent_steps_run_in_parallel),
        cmocka_unit_test(test_deadline_is_armed_and_recorded),
        cmocka_unit_test(test_retry_backs_off_exponentially_with_a_cap),
        cmocka_unit_test(test_jitter_stays_within_half_to_full),
        cmocka_unit_test(test_zero_backoff_sends_at_once),
        cmocka_unit_test(test_unlimited_attempts),
        cmocka_unit_test(test_exhausted_attempts_fail_and_compensate),
        cmocka_unit_test(test_timeout_counts_as_retry),
        cmocka_unit_test(test_fail_after_timeout_is_not_compensated),
        cmocka_unit_test(test_ignored_replies_change_nothing),
        cmocka_unit_test(test_stale_timers_change_nothing),
        cmocka_unit_test(test_pivot_and_retriable_wait_their_turn),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_reasons_are_kept_and_cut_on_a_character),
        cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_lease_lost_drops_the_saga),
        cmocka_unit_test(test_widest_calls_fit),
        cmocka_unit_test(test_runs_a_parsed_definition),
        cmocka_unit_test(test_effects_names),
    };
    return cmocka_run_group_tests_name("saga_forward", tests, NULL, NULL);
}
