/* The timer queue: order, cancel, re-arm, re-arm from inside the callback, many timers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "common/util.h"
#include "server/timerq.h"

struct item {
    struct timerq_timer timer;
    int id;
    int rearm;
};

static int fired[4096];
static int n_fired;

static uint64_t loop_clock(void *data)
{
    return uv_now((uv_loop_t *)data);
}

static void on_fire(struct timerq *q, struct timerq_timer *t, uint64_t now)
{
    struct item *it = container_of(t, struct item, timer);
    assert_true(now >= t->at_ms);
    assert_false(timerq_armed(t));
    fired[n_fired++] = it->id;
    if (it->rearm > 0) {
        it->rearm--;
        assert_int_equal(timerq_arm(q, t, now + 1), 0);
    }
}

static void run(uv_loop_t *loop, struct timerq *q)
{
    while (q->n > 0)
        uv_run(loop, UV_RUN_ONCE);
}

static void setup_q(uv_loop_t *loop, struct timerq *q)
{
    n_fired = 0;
    assert_int_equal(uv_loop_init(loop), 0);
    assert_int_equal(timerq_init(loop, q, on_fire, loop_clock, loop), 0);
}

static void teardown_q(uv_loop_t *loop, struct timerq *q)
{
    timerq_close(q, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void test_order_and_cancel(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct timerq q;
    setup_q(&loop, &q);
    struct item items[5];
    uint64_t now = uv_now(&loop);
    const int delays[5] = {30, 10, 20, 5, 15};
    for (int i = 0; i < 5; i++) {
        items[i] = (struct item){.id = i};
        timerq_timer_init(&items[i].timer);
        assert_int_equal(timerq_arm(&q, &items[i].timer, now + (uint64_t)delays[i]), 0);
    }
    timerq_cancel(&q, &items[2].timer);
    timerq_cancel(&q, &items[2].timer);                            /* twice is harmless */
    assert_int_equal(timerq_arm(&q, &items[0].timer, now + 1), 0); /* move earlier */
    run(&loop, &q);
    assert_int_equal(n_fired, 4);
    const int want[4] = {0, 3, 1, 4};
    for (int i = 0; i < 4; i++)
        assert_int_equal(fired[i], want[i]);
    teardown_q(&loop, &q);
}

static void test_rearm_in_callback(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct timerq q;
    setup_q(&loop, &q);
    struct item it = {.id = 7, .rearm = 3};
    timerq_timer_init(&it.timer);
    assert_int_equal(timerq_arm(&q, &it.timer, uv_now(&loop)), 0);
    run(&loop, &q);
    assert_int_equal(n_fired, 4);
    teardown_q(&loop, &q);
}

static void test_many_random(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct timerq q;
    setup_q(&loop, &q);
    enum { N = 2000 };
    struct item *items = calloc(N, sizeof(*items));
    assert_non_null(items);
    uint64_t now = uv_now(&loop);
    srand(42);
    for (int i = 0; i < N; i++) {
        items[i].id = i;
        timerq_timer_init(&items[i].timer);
        assert_int_equal(timerq_arm(&q, &items[i].timer, now + (uint64_t)(rand() % 40)), 0);
    }
    for (int i = 0; i < N; i += 3)
        timerq_cancel(&q, &items[i].timer);
    run(&loop, &q);
    assert_int_equal(n_fired, N - (N + 2) / 3);
    for (int i = 1; i < n_fired; i++)
        assert_true(items[fired[i - 1]].timer.at_ms <= items[fired[i]].timer.at_ms);
    free(items);
    teardown_q(&loop, &q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_cancel),
        cmocka_unit_test(test_rearm_in_callback),
        cmocka_unit_test(test_many_random),
    };
    return cmocka_run_group_tests_name("timerq", tests, NULL, NULL);
}
