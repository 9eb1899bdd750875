/* The engine in mode 2pc (presumed abort): prepare in dependency order, the
 * commit decision logged with the first commits, aborts, in-doubt answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine_fixture.h"

#define OK      SAGA_OUTCOME_OK
#define FAIL    SAGA_OUTCOME_FAIL
#define RETRY   SAGA_OUTCOME_RETRY
#define PREPARE SAGA_OP_PREPARE
#define COMMIT  SAGA_OP_COMMIT
#define ABORT   SAGA_OP_ABORT

static enum saga_decision decision(const struct harness *h)
{
    enum saga_decision d = (enum saga_decision)99;
    assert_int_equal(saga_engine_in_doubt(h->s, 0, &d), 0);
    return d;
}

static int count_ops(const struct harness *h, saga_op_t op)
{
    int n = 0;
    for (uint32_t i = 0; i < h->fx.n_commands; i++)
        n += h->fx.commands[i].op == op;
    return n;
}

static void prepare_all(struct harness *h)
{
    assert_int_equal(harness_start(h), 0);
    for (uint16_t i = 0; i < h->def->n_steps; i++)
        assert_int_equal(harness_reply(h, i, PREPARE, 1, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h->s), SAGA_STATUS_COMMITTING);
}

static void test_prepare_then_commit(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_2PC, "a b c<a,b"));
    assert_int_equal(decision(&h), SAGA_DECISION_ABORT); /* not started: nothing prepared */
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(h.fx.records[0].saga_status, SAGA_STATUS_PREPARING);
    assert_string_equal(h.fx.records[1].event, "step.preparing");
    assert_int_equal(count_ops(&h, PREPARE), 2);
    assert_int_equal(decision(&h), SAGA_DECISION_PENDING);

    assert_int_equal(harness_reply(&h, 0, PREPARE, 1, OK, "xid-a"), 0);
    assert_string_equal(h.fx.records[0].event, "step.prepared");
    assert_int_equal(h.fx.records[0].step_status, SAGA_STEP_SUCCEEDED);
    assert_int_equal(h.fx.n_commands, 0);
    assert_int_equal(harness_reply(&h, 1, PREPARE, 1, OK, NULL), 0);
    assert_non_null(fixture_command(&h.fx, 2, PREPARE));
    assert_int_equal(decision(&h), SAGA_DECISION_PENDING);

    /* the last prepare: the decision and the first commits in one call */
    assert_int_equal(harness_reply(&h, 2, PREPARE, 1, OK, NULL), 0);
    int prepared = fixture_record_index(&h.fx, fixture_step_record(&h.fx, 2, SAGA_STEP_SUCCEEDED));
    int decided = fixture_record_index(&h.fx, fixture_saga_record(&h.fx, SAGA_STATUS_COMMITTING));
    assert_true(prepared == 0 && decided == 1);
    assert_int_equal(h.fx.n_records, 5);
    for (uint32_t i = 2; i < 5; i++) {
        assert_int_equal(h.fx.records[i].step_status, SAGA_STEP_COMPENSATING);
        assert_string_equal(h.fx.records[i].event, "step.committing");
        assert_int_equal(h.fx.records[i].attempts, 2); /* one prepare, one commit */
        assert_int_equal(h.fx.records[i].compensate_attempts, 0);
    }
    assert_int_equal(count_ops(&h, COMMIT), 3);
    assert_int_equal(decision(&h), SAGA_DECISION_COMMIT);
    size_t len;
    assert_memory_equal(saga_engine_step_output(h.s, 0, &len), "xid-a", 5);

    assert_int_equal(harness_reply(&h, 1, COMMIT, 2, OK, NULL), 0);
    assert_string_equal(h.fx.records[0].event, "step.committed");
    assert_int_equal(harness_reply(&h, 0, COMMIT, 2, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 2, COMMIT, 2, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMMITTED);
    assert_int_equal(h.fx.settled, 1);
    assert_int_equal(decision(&h), SAGA_DECISION_COMMIT);
    harness_destroy(&h);
}

static void test_prepare_retries_by_policy(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_2PC, "a b");
    def->steps[0].retry = (struct def_retry){3, 100, 100};
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, PREPARE, 1, RETRY, NULL), 0);
    assert_int_equal(harness_fire(&h, SAGA_TIMER_BACKOFF, 0), 0);
    assert_int_equal(harness_fire(&h, SAGA_TIMER_TIMEOUT, 0), 0);
    assert_int_equal(harness_fire(&h, SAGA_TIMER_BACKOFF, 0), 0);
    assert_int_equal(harness_attempt(&h, 0, PREPARE), 3);
    assert_int_equal(harness_reply(&h, 0, PREPARE, 3, RETRY, "lock timeout"), 0);
    /* out of attempts: abort every step whose prepare went out */
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_ABORTING);
    assert_string_equal(saga_engine_error(h.s),
                        "step 'a' could not prepare: 3 attempts failed, last: lock timeout");
    assert_int_equal(count_ops(&h, ABORT), 2);
    assert_int_equal(decision(&h), SAGA_DECISION_ABORT);
    harness_destroy(&h);
}

static void test_commit_until_acknowledged(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_2PC, "a");
    def->steps[0].retry = (struct def_retry){2, 100, 400};
    harness_init(&h, def);
    prepare_all(&h);
    const uint64_t want[] = {100, 200, 400, 400, 400, 400};
    for (uint32_t n = 0; n < 6; n++) {
        uint32_t attempt = harness_attempt(&h, 0, COMMIT);
        assert_int_equal(attempt, n + 2);
        if (n % 2 == 0)
            assert_int_equal(harness_reply(&h, 0, COMMIT, attempt, RETRY, NULL), 0);
        else
            assert_int_equal(harness_fire(&h, SAGA_TIMER_TIMEOUT, 0), 0);
        assert_int_equal(h.fx.timers[0].at_ms - h.now, want[n]);
        assert_int_equal(harness_fire(&h, SAGA_TIMER_BACKOFF, 0), 0);
    }
    assert_int_equal(harness_reply(&h, 0, COMMIT, 8, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMMITTED);
    harness_destroy(&h);
}

static void test_commit_fail_is_stuck_and_the_decision_stands(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_2PC, "a b"));
    prepare_all(&h);
    assert_int_equal(harness_reply(&h, 0, COMMIT, 2, FAIL, "xid gone"), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_STUCK);
    assert_string_equal(saga_engine_error(h.s), "step 'a': commit failed: xid gone");
    assert_int_equal(decision(&h), SAGA_DECISION_COMMIT);
    assert_int_equal(harness_resolve(&h, SAGA_STATUS_ABORTED), SAGA_ESTATE);
    assert_int_equal(harness_abort(&h), SAGA_ESTATE);
    /* b's commit was still out */
    assert_int_equal(harness_reply(&h, 1, COMMIT, 2, OK, NULL), 0);
    assert_int_equal(saga_engine_step_status(h.s, 1), SAGA_STEP_COMMITTED);
    assert_int_equal(harness_retry(&h), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMMITTING);
    assert_int_equal(h.fx.n_commands, 1);
    assert_int_equal(harness_attempt(&h, 0, COMMIT), 3);
    assert_int_equal(harness_reply(&h, 0, COMMIT, 3, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMMITTED);
    harness_destroy(&h);
}

static void test_prepare_fail_aborts_every_step_prepare_reached(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_2PC, "a b c d<a"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, PREPARE, 1, OK, NULL), 0); /* d's prepare goes out */
    assert_int_equal(harness_reply(&h, 3, PREPARE, 1, RETRY, NULL), 0);
    struct saga_timer d_backoff = *fixture_timer(&h.fx, SAGA_TIMER_BACKOFF, 3);
    assert_int_equal(harness_reply(&h, 2, PREPARE, 1, FAIL, "constraint"), 0);
    /* a prepared, b's prepare out, c refused, d waiting: all four are aborted */
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_ABORTING);
    assert_int_equal(count_ops(&h, ABORT), 4);
    assert_int_equal(count_ops(&h, COMMIT) + count_ops(&h, PREPARE), 0);
    const struct record *r = fixture_step_record(&h.fx, 1, SAGA_STEP_COMPENSATING);
    assert_non_null(r);
    assert_string_equal(r->event, "step.aborting");
    assert_int_equal(r->compensate_attempts, 1);
    /* b's prepare answers late; d's backoff fires: both stale */
    assert_int_equal(harness_reply(&h, 1, PREPARE, 1, OK, NULL), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_WRONG_OP);
    assert_int_equal(harness_timer(&h, d_backoff), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_STALE_TIMER);
    for (uint16_t i = 0; i < 4; i++)
        assert_int_equal(harness_reply(&h, i, ABORT, 1, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_ABORTED);
    assert_string_equal(saga_engine_error(h.s), "step 'c' could not prepare: constraint");
    assert_int_equal(decision(&h), SAGA_DECISION_ABORT);
    harness_destroy(&h);
}

static void test_steps_never_prepared_are_not_aborted(void **state)
{
    (void)state;
    struct harness h;
    harness_init(&h, fixture_def(DEF_MODE_2PC, "a b<a c<b"));
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_reply(&h, 0, PREPARE, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, PREPARE, 1, FAIL, NULL), 0);
    assert_int_equal(count_ops(&h, ABORT), 2);
    assert_null(fixture_command(&h.fx, 2, ABORT));
    assert_int_equal(harness_reply(&h, 0, ABORT, 1, OK, NULL), 0);
    assert_int_equal(harness_reply(&h, 1, ABORT, 1, OK, NULL), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_ABORTED);
    assert_non_null(fixture_step_record(&h.fx, 2, SAGA_STEP_SKIPPED));
    harness_destroy(&h);
}

static void test_abort_until_acknowledged_then_stuck_on_fail(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_2PC, "a b");
    def->steps[0].compensate_retry = (struct def_retry){1, 10, 10}; /* not a limit for abort */
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);
    assert_int_equal(harness_abort(&h), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_ABORTING);
    assert_string_equal(saga_engine_error(h.s), "aborted by operator");
    for (uint32_t n = 1; n <= 5; n++) {
        assert_int_equal(harness_reply(&h, 0, ABORT, n, RETRY, NULL), 0);
        assert_int_equal(harness_fire(&h, SAGA_TIMER_BACKOFF, 0), 0);
    }
    assert_int_equal(harness_reply(&h, 1, ABORT, 1, FAIL, "no such xid"), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_STUCK);
    assert_int_equal(decision(&h), SAGA_DECISION_ABORT);
    assert_int_equal(harness_resolve(&h, SAGA_STATUS_COMMITTED), SAGA_ESTATE);
    assert_int_equal(harness_reply(&h, 0, ABORT, 6, OK, NULL), 0);
    assert_int_equal(harness_resolve(&h, SAGA_STATUS_ABORTED), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_ABORTED);
    assert_string_equal(saga_engine_error(h.s), "resolved by operator as aborted");
    harness_destroy(&h);
}

static void test_deadline_aborts_only_while_preparing(void **state)
{
    (void)state;
    struct harness h;
    struct definition *def = fixture_def(DEF_MODE_2PC, "a b<a");
    def->timeout_ms = 2000;
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);
    struct saga_timer deadline = *fixture_timer(&h.fx, SAGA_TIMER_DEADLINE, -1);
    h.now = 3000;
    assert_int_equal(harness_timer(&h, deadline), 0);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_ABORTING);
    assert_string_equal(saga_engine_error(h.s), "deadline exceeded");
    assert_non_null(fixture_command(&h.fx, 0, ABORT));
    harness_destroy(&h);

    def = fixture_def(DEF_MODE_2PC, "a");
    def->timeout_ms = 2000;
    harness_init(&h, def);
    assert_int_equal(harness_start(&h), 0);
    deadline = *fixture_timer(&h.fx, SAGA_TIMER_DEADLINE, -1);
    assert_int_equal(harness_reply(&h, 0, PREPARE, 1, OK, NULL), 0);
    h.now = 3000;
    assert_int_equal(harness_timer(&h, deadline), 0);
    assert_int_equal(h.fx.ignored, SAGA_IGNORED_STALE_TIMER);
    assert_int_equal(saga_engine_status(h.s), SAGA_STATUS_COMMITTING);
    harness_destroy(&h);
}

static void test_in_doubt_bad_step(void **state)
{
    (void)state;
    struct harness h;
    enum saga_decision d;
    harness_init(&h, fixture_def(DEF_MODE_2PC, "a"));
    assert_int_equal(saga_engine_in_doubt(h.s, 1, &d), SAGA_EINVAL);
    harness_destroy(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepare_then_commit),
        cmocka_unit_test(test_prepare_retries_by_policy),
        cmocka_unit_test(test_commit_until_acknowledged),
        cmocka_unit_test(test_commit_fail_is_stuck_and_the_decision_stands),
        cmocka_unit_test(test_prepare_fail_aborts_every_step_prepare_reached),
        cmocka_unit_test(test_steps_never_prepared_are_not_aborted),
        cmocka_unit_test(test_abort_until_acknowledged_then_stuck_on_fail),
        cmocka_unit_test(test_deadline_aborts_only_while_preparing),
        cmocka_unit_test(test_in_doubt_bad_step),
    };
    return cmocka_run_group_tests_name("saga_2pc", tests, NULL, NULL);
}
