/* saga-testpeer against the fake coordinator: each behaviour, per-op
 * overrides, the record file, a crash, the thread pool, SIGTERM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_coord.h"

struct env {
    uv_loop_t loop;
    struct fake f;
    uv_process_t proc;
    int exited;
    int64_t exit_status;
    int term_signal;
    char record[256];
    char path[512];
    size_t replies_wanted;
};

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    assert_int_equal(uv_loop_init(&e->loop), 0);
    e->f.auto_hello = 1;
    e->f.auto_ack = 1;
    e->f.auto_pong = 1;
    e->f.heartbeat_ms = 1000;
    assert_int_equal(fake_start(&e->f, &e->loop), 0);
    snprintf(e->record, sizeof(e->record), "/tmp/saga-testpeer-record.%d", (int)getpid());
    unlink(e->record);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    if (!e->exited)
        uv_process_kill(&e->proc, SIGKILL);
    run_for(&e->loop, 20);
    fake_stop(&e->f);
    run_for(&e->loop, 10);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    unlink(e->record);
    free(e);
    return 0;
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    struct env *e = p->data;
    e->exited = 1;
    e->exit_status = status;
    e->term_signal = sig;
    uv_close((uv_handle_t *)p, NULL);
}

static void spawn(struct env *e, const char **extra)
{
    const char *dir = getenv("SAGA_BIN_DIR");
    char *path = e->path;
    snprintf(e->path, sizeof(e->path), "%s/saga-testpeer", dir != NULL ? dir : ".");
    const char *args[32] = {path,       "--coordinator", e->f.addr,     "--service", "inventory",
                            "--record", e->record,       "--log-level", "warn"};
    size_t n = 9;
    for (size_t i = 0; extra[i] != NULL; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
                                     {.flags = UV_INHERIT_FD, .data.fd = 2},
                                     {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t o = {.exit_cb = on_exit_cb,
                              .file = path,
                              .args = (char **)args,
                              .stdio = stdio,
                              .stdio_count = 3};
    e->proc.data = e;
    assert_int_equal(uv_spawn(&e->loop, &e->proc, &o), 0);
}

static int registered(void *arg)
{
    struct env *e = arg;
    return fake_count(fake_last(&e->f), WIRE_REGISTER) > 0;
}

static int exited(void *arg)
{
    struct env *e = arg;
    return e->exited;
}

static int has_replies(void *arg)
{
    struct env *e = arg;
    return fake_count(fake_last(&e->f), WIRE_REPLY) >= e->replies_wanted;
}

static void command(struct env *e, uint64_t rid, const char *action, saga_op_t op, uint32_t attempt)
{
    struct wire_msg m = {.request_id = rid, .type = WIRE_COMMAND};
    m.command.saga_id[0] = 0xab;
    m.command.definition = "checkout";
    m.command.step = "s1";
    m.command.step_index = (uint32_t)strlen(action); /* one step per action */
    m.command.action = (char *)action;
    m.command.op = op;
    m.command.attempt = attempt;
    m.command.idempotency_key = (char *)"ab/1/x";
    m.command.input = (uint8_t *)"payload";
    m.command.input_len = 7;
    fake_send(fake_last(&e->f), &m);
}

static const struct wire_msg *reply_for(struct env *e, uint64_t rid)
{
    struct fake_conn *c = fake_last(&e->f);
    for (size_t i = 0; i < c->n_msgs; i++) {
        if (c->msgs[i].type == WIRE_REPLY && c->msgs[i].request_id == rid)
            return &c->msgs[i];
    }
    return NULL;
}

static void test_behaviours(void **state)
{
    struct env *e = *state;
    const char *extra[] = {"--on", "reserve=retry:2", "--on",       "reserve.compensate=fail",
                           "--on", "ship=delay:60",   "--on",       "charge=fail",
                           "--on", "wait=hang",       "--instance", "tp-1",
                           NULL};
    spawn(e, extra);
    assert_true(run_until(&e->loop, registered, e, 5000));
    const struct wire_msg *reg = fake_find(fake_last(&e->f), WIRE_REGISTER, 0);
    assert_int_equal(reg->reg.n_actions, 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(reg->reg.actions[i].ops, WIRE_OP_ALL);
    assert_string_equal(fake_find(fake_last(&e->f), WIRE_HELLO, 0)->hello.instance_id, "tp-1");

    command(e, 1, "reserve", SAGA_OP_ACTION, 1);
    command(e, 2, "reserve", SAGA_OP_ACTION, 2);
    command(e, 3, "reserve", SAGA_OP_ACTION, 3);
    command(e, 4, "reserve", SAGA_OP_COMPENSATE, 1);
    command(e, 5, "charge", SAGA_OP_ACTION, 1);
    command(e, 6, "wait", SAGA_OP_ACTION, 1);
    uv_update_time(&e->loop);
    uint64_t t0 = uv_now(&e->loop);
    command(e, 7, "ship", SAGA_OP_PREPARE, 1);
    e->replies_wanted = 6;
    assert_true(run_until(&e->loop, has_replies, e, 5000));
    assert_true(uv_now(&e->loop) - t0 >= 60);

    assert_int_equal(reply_for(e, 1)->reply.outcome, SAGA_OUTCOME_RETRY);
    assert_string_equal(reply_for(e, 1)->reply.error, "testpeer: retry 1 of 2");
    assert_int_equal(reply_for(e, 2)->reply.outcome, SAGA_OUTCOME_RETRY);
    assert_int_equal(reply_for(e, 3)->reply.outcome, SAGA_OUTCOME_OK);
    assert_memory_equal(reply_for(e, 3)->reply.output, "payload", 7);
    assert_int_equal(reply_for(e, 4)->reply.outcome, SAGA_OUTCOME_FAIL);
    assert_int_equal(reply_for(e, 5)->reply.outcome, SAGA_OUTCOME_FAIL);
    assert_null(reply_for(e, 6));
    assert_int_equal(reply_for(e, 7)->reply.outcome, SAGA_OUTCOME_OK);

    uv_process_kill(&e->proc, SIGTERM);
    assert_true(run_until(&e->loop, exited, e, 5000));
    assert_int_equal(e->exit_status, 0);
    assert_int_equal(e->term_signal, 0);

    FILE *f = fopen(e->record, "r");
    assert_non_null(f);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (n == 0)
            assert_string_equal(line, "op=action saga=ab000000-0000-0000-0000-000000000000 "
                                      "step=s1 index=7 attempt=1 key=ab/1/x action=reserve "
                                      "instance=tp-1\n");
        n++;
    }
    fclose(f);
    assert_int_equal(n, 7);
}

static void test_crash(void **state)
{
    struct env *e = *state;
    const char *extra[] = {"--on", "boom=ok", "--on", "boom.commit=crash", NULL};
    spawn(e, extra);
    assert_true(run_until(&e->loop, registered, e, 5000));
    command(e, 1, "boom", SAGA_OP_PREPARE, 1);
    e->replies_wanted = 1;
    assert_true(run_until(&e->loop, has_replies, e, 5000));
    command(e, 2, "boom", SAGA_OP_COMMIT, 1);
    assert_true(run_until(&e->loop, exited, e, 5000));
    assert_int_equal(e->exit_status, 3);
    assert_null(reply_for(e, 2));
}

static void test_threads(void **state)
{
    struct env *e = *state;
    const char *extra[] = {"--threads", "2", "--on", "ship=delay:30", "--on", "pay=retry:1", NULL};
    spawn(e, extra);
    assert_true(run_until(&e->loop, registered, e, 5000));
    command(e, 1, "ship", SAGA_OP_ACTION, 1);
    command(e, 2, "pay", SAGA_OP_ACTION, 1);
    /* The next attempt only once the first was answered: a redelivery while
     * the first still runs would be folded into it. */
    e->replies_wanted = 2;
    assert_true(run_until(&e->loop, has_replies, e, 5000));
    command(e, 3, "pay", SAGA_OP_ACTION, 2);
    e->replies_wanted = 3;
    assert_true(run_until(&e->loop, has_replies, e, 5000));
    assert_int_equal(reply_for(e, 1)->reply.outcome, SAGA_OUTCOME_OK);
    assert_int_equal(reply_for(e, 2)->reply.outcome, SAGA_OUTCOME_RETRY);
    assert_int_equal(reply_for(e, 3)->reply.outcome, SAGA_OUTCOME_OK);
    uv_process_kill(&e->proc, SIGINT);
    assert_true(run_until(&e->loop, exited, e, 5000));
    assert_int_equal(e->exit_status, 0);
}

static void test_bad_arguments(void **state)
{
    struct env *e = *state;
    const char *extra[] = {"--on", "x=retry:many", NULL};
    spawn(e, extra);
    assert_true(run_until(&e->loop, exited, e, 5000));
    assert_int_equal(e->exit_status, 2);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_behaviours),
        T(test_crash),
        T(test_threads),
        T(test_bad_arguments),
    };
    return cmocka_run_group_tests_name("testpeer", tests, NULL, NULL);
}
