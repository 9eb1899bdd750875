/* Participant SDK against a fake coordinator: handshake, Register, commands
 * for every op, completion rules, heartbeats, reconnects, errors, in-doubt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_coord.h"
#include "saga/participant.h"

struct seen {
    saga_op_t op;
    char key[64], def[32], idtext[40], step[32];
    uint32_t version, index, attempt, timeout;
    char input[32], dep[32], own[32];
    int missing_dep_null;
    size_t deps;
};
struct env {
    struct seen seen;
    size_t reply_target;
    uv_loop_t loop;
    struct fake f;
    saga_participant_t *p;
    char logs[32768];
    size_t log_len;
    /* what handlers saw and did */
    int calls;
    saga_call_t *held[8];
    size_t n_held;
    int second_rc;
    int ok_rc;
    uv_thread_t loop_thread;
    int on_loop_thread;
    int decided;
    int decision_status;
    saga_decision_t decision;
};

static void capture_log(saga_log_level_t level, const char *line, void *data)
{
    struct env *e = data;
    int n =
        snprintf(e->logs + e->log_len, sizeof(e->logs) - e->log_len, "%d %s\n", (int)level, line);
    if (n > 0 && e->log_len + (size_t)n < sizeof(e->logs))
        e->log_len += (size_t)n;
}

static saga_participant_options_t base_options(struct env *e)
{
    saga_participant_options_t o = {
        .service = "inventory",
        .instance_id = "inv-1",
        .coordinators = e->f.addr,
        .reconnect_min_ms = 20,
        .reconnect_max_ms = 100,
        .log = capture_log,
        .log_data = e,
        .log_level = SAGA_LOG_DEBUG,
    };
    return o;
}

static void env_start_fake(struct env *e)
{
    assert_int_equal(uv_loop_init(&e->loop), 0);
    e->f.auto_hello = 1;
    e->f.auto_ack = 1;
    e->f.auto_pong = 1;
    e->f.heartbeat_ms = 1000;
    assert_int_equal(fake_start(&e->f, &e->loop), 0);
    e->loop_thread = uv_thread_self();
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    env_start_fake(e);
    *state = e;
    return 0;
}

static int p_gone(void *arg)
{
    struct env *e = arg;
    return e->p == NULL;
}

static int teardown(void **state)
{
    struct env *e = *state;
    if (e->p != NULL)
        saga_participant_free(&e->p);
    run_for(&e->loop, 20);
    fake_stop(&e->f);
    run_for(&e->loop, 10);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    free(e);
    return 0;
}

/* ---- conditions ---- */

static int has_conn(void *arg)
{
    struct env *e = arg;
    return fake_count(fake_last(&e->f), WIRE_REGISTER) > 0;
}

static int registered(void *arg)
{
    struct env *e = arg;
    saga_participant_stats_t st;
    saga_participant_stats(e->p, &st);
    return has_conn(arg) && st.connects > 0 && strstr(e->logs, "event=registered") != NULL;
}

static int has_replies(void *arg)
{
    struct env *e = arg;
    return fake_count(fake_last(&e->f), WIRE_REPLY) >= e->reply_target;
}

static void connect_participant(struct env *e, saga_participant_options_t *o)
{
    e->p = saga_participant_new(o);
    assert_non_null(e->p);
}

static void attach_and_register(struct env *e)
{
    assert_int_equal(saga_participant_attach_uv(e->p, &e->loop), 0);
    assert_true(run_until(&e->loop, registered, e, 2000));
}

static int two_conns(void *arg)
{
    struct env *e = arg;
    return e->f.n_conns >= 2 && fake_count(fake_last(&e->f), WIRE_REGISTER) > 0;
}

/* ---- handlers ---- */

static void h_echo(saga_call_t *call, void *data)
{
    struct env *e = data;
    e->calls++;
    char out[128];
    int n = snprintf(out, sizeof(out), "%s:%s:%u", saga_op_name(saga_call_op(call)),
                     saga_call_step(call), saga_call_attempt(call));
    e->ok_rc = saga_call_ok(call, out, (size_t)n);
}

static void h_fail(saga_call_t *call, void *data)
{
    struct env *e = data;
    e->calls++;
    assert_int_equal(saga_call_fail(call, "out of stock"), 0);
}

static void h_retry(saga_call_t *call, void *data)
{
    struct env *e = data;
    e->calls++;
    assert_int_equal(saga_call_retry(call, "database busy"), 0);
}

static void h_hold(saga_call_t *call, void *data)
{
    struct env *e = data;
    e->calls++;
    e->held[e->n_held++] = call;
}

static void h_twice(saga_call_t *call, void *data)
{
    struct env *e = data;
    e->calls++;
    assert_int_equal(saga_call_ok(call, "one", 3), 0);
    e->second_rc = saga_call_ok(call, "two", 3);
    assert_int_equal(saga_call_fail(call, "three"), SAGA_EALREADY);
}

static void h_pool(saga_call_t *call, void *data)
{
    struct env *e = data;
    uv_thread_t self = uv_thread_self();
    e->on_loop_thread = uv_thread_equal(&self, &e->loop_thread);
    e->ok_rc = saga_call_ok(call, "pooled", 6);
    __atomic_add_fetch(&e->calls, 1, __ATOMIC_SEQ_CST);
}

static void h_big(saga_call_t *call, void *data)
{
    struct env *e = data;
    uint8_t big[200] = {0};
    e->calls++;
    e->ok_rc = saga_call_ok(call, big, sizeof(big));
    if (e->ok_rc != 0)
        assert_int_equal(saga_call_fail(call, "output too large"), 0);
}

/* ---- commands ---- */

static void send_command(struct env *e, uint64_t rid, const char *action, saga_op_t op,
                         uint32_t step_index, uint32_t attempt)
{
    struct wire_step_output dep = {.step = "auth", .output = (uint8_t *)"tok-9", .output_len = 5};
    struct wire_msg m = {.request_id = rid, .type = WIRE_COMMAND};
    for (int i = 0; i < WIRE_SAGA_ID_LEN; i++)
        m.command.saga_id[i] = (uint8_t)(0x10 + i);
    m.command.definition = "checkout";
    m.command.definition_version = 3;
    m.command.step = "reserve";
    m.command.step_index = step_index;
    m.command.action = (char *)action;
    m.command.op = op;
    m.command.attempt = attempt;
    m.command.idempotency_key = "key-1";
    m.command.input = (uint8_t *)"{\"sku\":1}";
    m.command.input_len = 9;
    if (op == SAGA_OP_ACTION || op == SAGA_OP_PREPARE) {
        m.command.deps = &dep;
        m.command.n_deps = 1;
    } else {
        m.command.own_output = (uint8_t *)"fwd";
        m.command.own_output_len = 3;
    }
    m.command.timeout_ms = 2000;
    fake_send(fake_last(&e->f), &m);
}

/* ---- tests ---- */

static void test_bad_options(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    o.service = NULL;
    assert_null(saga_participant_new(&o));
    o = base_options(e);
    o.coordinators = "no-port";
    assert_null(saga_participant_new(&o));
    o.coordinators = "";
    assert_null(saga_participant_new(&o));
    o.coordinators = "h:99999";
    assert_null(saga_participant_new(&o));
    assert_null(saga_participant_new(NULL));
    assert_non_null(strstr(e->logs, "event=participant.invalid"));
    o = base_options(e);
    connect_participant(e, &o);
    assert_int_equal(saga_participant_on(e->p, "x", &(saga_handlers_t){0}), SAGA_EINVAL);
    assert_int_equal(saga_participant_on(e->p, "", &(saga_handlers_t){.action = h_echo}),
                     SAGA_EINVAL);
    uint8_t id[SAGA_ID_LEN] = {0};
    assert_int_equal(saga_participant_query_decision(e->p, id, 0, 0,
                                                     (saga_decision_cb)(void (*)(void))h_echo, e),
                     SAGA_ESTATE);
}

static void test_handshake_register(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    o.auth_token = "s3cret";
    o.max_in_flight = 7;
    connect_participant(e, &o);
    assert_int_equal(
        saga_participant_on(e->p, "reserve",
                            &(saga_handlers_t){.action = h_echo, .compensate = h_echo, .data = e}),
        0);
    assert_int_equal(
        saga_participant_on(
            e->p, "pay",
            &(saga_handlers_t){.prepare = h_echo, .commit = h_echo, .abort = h_echo, .data = e}),
        0);
    attach_and_register(e);
    assert_int_equal(saga_participant_attach_uv(e->p, &e->loop), SAGA_ESTATE);

    struct fake_conn *c = fake_last(&e->f);
    const struct wire_msg *h = fake_find(c, WIRE_HELLO, 0);
    assert_non_null(h);
    assert_ptr_equal(&c->msgs[0], h); /* Hello comes first */
    assert_string_equal(h->hello.service, "inventory");
    assert_string_equal(h->hello.instance_id, "inv-1");
    assert_string_equal(h->hello.auth_token, "s3cret");
    assert_int_equal(h->hello.protocol_version, 1);
    assert_int_equal(h->hello.role, WIRE_ROLE_PARTICIPANT);

    const struct wire_msg *r = fake_find(c, WIRE_REGISTER, 0);
    assert_non_null(r);
    assert_int_equal(r->reg.max_in_flight, 7);
    assert_int_equal(r->reg.n_actions, 2);
    assert_string_equal(r->reg.actions[0].name, "reserve");
    assert_int_equal(r->reg.actions[0].ops,
                     WIRE_OP_BIT(SAGA_OP_ACTION) | WIRE_OP_BIT(SAGA_OP_COMPENSATE));
    assert_string_equal(r->reg.actions[1].name, "pay");
    assert_int_equal(r->reg.actions[1].ops, WIRE_OP_BIT(SAGA_OP_PREPARE) |
                                                WIRE_OP_BIT(SAGA_OP_COMMIT) |
                                                WIRE_OP_BIT(SAGA_OP_ABORT));

    /* a new action after connecting registers again */
    assert_int_equal(saga_participant_on(e->p, "ship", &(saga_handlers_t){.action = h_echo}), 0);
    run_for(&e->loop, 30);
    r = fake_find(c, WIRE_REGISTER, 1);
    assert_non_null(r);
    assert_int_equal(r->reg.n_actions, 3);
}

static void test_default_instance_id(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    o.instance_id = NULL;
    connect_participant(e, &o);
    char want[64];
    snprintf(want, sizeof(want), ":%d", (int)uv_os_getpid());
    assert_non_null(strstr(saga_participant_instance_id(e->p), want));
}

static void h_inspect(saga_call_t *call, void *data)
{
    struct env *e = data;
    e->calls++;
    size_t n;
    const uint8_t *b;
    e->seen.op = saga_call_op(call);
    snprintf(e->seen.key, sizeof(e->seen.key), "%s", saga_call_idempotency_key(call));
    snprintf(e->seen.def, sizeof(e->seen.def), "%s", saga_call_definition(call));
    snprintf(e->seen.idtext, sizeof(e->seen.idtext), "%s", saga_call_saga_id_text(call));
    snprintf(e->seen.step, sizeof(e->seen.step), "%s", saga_call_step(call));
    e->seen.version = saga_call_definition_version(call);
    e->seen.index = saga_call_step_index(call);
    e->seen.attempt = saga_call_attempt(call);
    e->seen.timeout = saga_call_timeout_ms(call);
    b = saga_call_input(call, &n);
    snprintf(e->seen.input, sizeof(e->seen.input), "%.*s", (int)n, (const char *)b);
    b = saga_call_dep(call, "auth", &n);
    snprintf(e->seen.dep, sizeof(e->seen.dep), "%.*s", b ? (int)n : 0, b ? (const char *)b : "");
    e->seen.missing_dep_null = saga_call_dep(call, "nope", &n) == NULL && n == 0;
    e->seen.deps = saga_call_dep_count(call);
    b = saga_call_own_output(call, &n);
    snprintf(e->seen.own, sizeof(e->seen.own), "%.*s", (int)n, (const char *)b);
    assert_ptr_equal(saga_call_participant(call), e->p);
    assert_int_equal(saga_call_saga_id(call)[0], 0x10);
    const char *dn = NULL;
    if (e->seen.deps > 0) {
        assert_non_null(saga_call_dep_at(call, 0, &dn, &n));
        assert_string_equal(dn, "auth");
    }
    assert_null(saga_call_dep_at(call, 5, &dn, &n));
    h_echo(call, data);
    e->calls--;
}

static void test_command_every_op(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    connect_participant(e, &o);
    saga_handlers_t h = {.action = h_inspect,
                         .compensate = h_inspect,
                         .prepare = h_inspect,
                         .commit = h_inspect,
                         .abort = h_inspect,
                         .data = e};
    assert_int_equal(saga_participant_on(e->p, "reserve", &h), 0);
    attach_and_register(e);

    send_command(e, 101, "reserve", SAGA_OP_ACTION, 2, 1);
    e->reply_target = 1;
    assert_true(run_until(&e->loop, has_replies, e, 2000));
    assert_int_equal(e->seen.op, SAGA_OP_ACTION);
    assert_string_equal(e->seen.key, "key-1");
    assert_string_equal(e->seen.def, "checkout");
    assert_int_equal(e->seen.version, 3);
    assert_string_equal(e->seen.idtext, "10111213-1415-1617-1819-1a1b1c1d1e1f");
    assert_string_equal(e->seen.step, "reserve");
    assert_int_equal(e->seen.index, 2);
    assert_int_equal(e->seen.attempt, 1);
    assert_int_equal(e->seen.timeout, 2000);
    assert_string_equal(e->seen.input, "{\"sku\":1}");
    assert_string_equal(e->seen.dep, "tok-9");
    assert_true(e->seen.missing_dep_null);
    assert_int_equal(e->seen.deps, 1);
    assert_string_equal(e->seen.own, "");

    saga_op_t ops[] = {SAGA_OP_COMPENSATE, SAGA_OP_PREPARE, SAGA_OP_COMMIT, SAGA_OP_ABORT};
    for (size_t i = 0; i < 4; i++) {
        send_command(e, 102 + i, "reserve", ops[i], 2, 2);
        e->reply_target = 2 + i;
        assert_true(run_until(&e->loop, has_replies, e, 2000));
        assert_int_equal(e->seen.op, ops[i]);
    }
    assert_string_equal(e->seen.own, "fwd");

    struct fake_conn *c = fake_last(&e->f);
    const char *want[] = {"action:reserve:1", "compensate:reserve:2", "prepare:reserve:2",
                          "commit:reserve:2", "abort:reserve:2"};
    for (size_t i = 0; i < 5; i++) {
        const struct wire_msg *r = fake_find(c, WIRE_REPLY, i);
        assert_non_null(r);
        assert_int_equal(r->request_id, 101 + i);
        assert_int_equal(r->reply.outcome, SAGA_OUTCOME_OK);
        assert_int_equal(r->reply.step_index, 2);
        assert_int_equal(r->reply.op, i == 0 ? SAGA_OP_ACTION : ops[i - 1]);
        assert_int_equal(r->reply.saga_id[15], 0x1f);
        assert_int_equal(r->reply.output_len, strlen(want[i]));
        assert_memory_equal(r->reply.output, want[i], strlen(want[i]));
    }
    saga_participant_stats_t st;
    saga_participant_stats(e->p, &st);
    assert_int_equal(st.commands, 5);
    assert_int_equal(st.replies, 5);
    assert_int_equal(st.in_flight, 0);
}

static void test_fail_and_retry(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    connect_participant(e, &o);
    assert_int_equal(
        saga_participant_on(e->p, "charge", &(saga_handlers_t){.action = h_fail, .data = e}), 0);
    assert_int_equal(
        saga_participant_on(e->p, "ship", &(saga_handlers_t){.action = h_retry, .data = e}), 0);
    attach_and_register(e);
    send_command(e, 7, "charge", SAGA_OP_ACTION, 0, 1);
    send_command(e, 8, "ship", SAGA_OP_ACTION, 1, 1);
    e->reply_target = 2;
    assert_true(run_until(&e->loop, has_replies, e, 2000));
    struct fake_conn *c = fake_last(&e->f);
    const struct wire_msg *r = fake_find(c, WIRE_REPLY, 0);
    assert_int_equal(r->reply.outcome, SAGA_OUTCOME_FAIL);
    assert_string_equal(r->reply.error, "out of stock");
    r = fake_find(c, WIRE_REPLY, 1);
    assert_int_equal(r->reply.outcome, SAGA_OUTCOME_RETRY);
    assert_string_equal(r->reply.error, "database busy");
}

static void test_no_handler(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    connect_participant(e, &o);
    assert_int_equal(
        saga_participant_on(e->p, "reserve", &(saga_handlers_t){.action = h_echo, .data = e}), 0);
    attach_and_register(e);
    send_command(e, 9, "reserve", SAGA_OP_COMPENSATE, 0, 1); /* op not registered */
    send_command(e, 10, "unknown", SAGA_OP_ACTION, 0, 1);
    e->reply_target = 2;
    assert_true(run_until(&e->loop, has_replies, e, 2000));
    struct fake_conn *c = fake_last(&e->f);
    const struct wire_msg *m = fake_find(c, WIRE_REPLY, 0);
    assert_int_equal(m->request_id, 9);
    assert_int_equal(m->reply.outcome, SAGA_OUTCOME_RETRY);
    assert_string_equal(m->reply.error, "no handler for action reserve op compensate");
    assert_int_equal(fake_find(c, WIRE_REPLY, 1)->reply.outcome, SAGA_OUTCOME_RETRY);
    assert_false(c->closed);
    assert_int_equal(e->calls, 0);
}

static void on_later(uv_timer_t *t)
{
    struct env *e = t->data;
    assert_int_equal(saga_call_ok(e->held[0], "later", 5), 0);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_async_completion(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    connect_participant(e, &o);
    assert_int_equal(
        saga_participant_on(e->p, "reserve", &(saga_handlers_t){.action = h_hold, .data = e}), 0);
    attach_and_register(e);
    send_command(e, 11, "reserve", SAGA_OP_ACTION, 0, 1);
    run_for(&e->loop, 40);
    assert_int_equal(e->n_held, 1);
    assert_int_equal(fake_count(fake_last(&e->f), WIRE_REPLY), 0);
    saga_participant_stats_t st;
    saga_participant_stats(e->p, &st);
    assert_int_equal(st.in_flight, 1);

    uv_timer_t t;
    uv_timer_init(&e->loop, &t);
    t.data = e;
    uv_timer_start(&t, on_later, 10, 0);
    e->reply_target = 1;
    assert_true(run_until(&e->loop, has_replies, e, 2000));
    const struct wire_msg *r = fake_find(fake_last(&e->f), WIRE_REPLY, 0);
    assert_int_equal(r->request_id, 11);
    assert_memory_equal(r->reply.output, "later", 5);
    saga_participant_stats(e->p, &st);
    assert_int_equal(st.in_flight, 0);
}

struct thread_arg {
    saga_call_t *call;
    int rc, rc2;
};

static void complete_from_thread(void *arg)
{
    struct thread_arg *a = arg;
    a->rc = saga_call_retry(a->call, "from another thread");
    a->rc2 = saga_call_retry(a->call, "again");
}

static void test_complete_from_other_thread(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    connect_participant(e, &o);
    assert_int_equal(
        saga_participant_on(e->p, "reserve", &(saga_handlers_t){.action = h_hold, .data = e}), 0);
    attach_and_register(e);
    send_command(e, 12, "reserve", SAGA_OP_ACTION, 0, 1);
    run_for(&e->loop, 40);
    assert_int_equal(e->n_held, 1);
    struct thread_arg a = {.call = e->held[0]};
    uv_thread_t th;
    /* the call is still valid while not completed; the second completion
     * races the loop freeing it, so the thread makes both before we turn */
    uv_thread_create(&th, complete_from_thread, &a);
    uv_thread_join(&th);
    assert_int_equal(a.rc, 0);
    assert_int_equal(a.rc2, SAGA_EALREADY);
    e->reply_target = 1;
    assert_true(run_until(&e->loop, has_replies, e, 2000));
    const struct wire_msg *r = fake_find(fake_last(&e->f), WIRE_REPLY, 0);
    assert_int_equal(r->reply.outcome, SAGA_OUTCOME_RETRY);
    assert_string_equal(r->reply.error, "from another thread");
}

static int pool_done(void *arg)
{
    struct env *e = arg;
    return fake_count(fake_last(&e->f), WIRE_REPLY) >= 3;
}

static void test_pool_completion(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    o.threads = 2;
    connect_participant(e, &o);
    assert_int_equal(
        saga_participant_on(e->p, "reserve", &(saga_handlers_t){.action = h_pool, .data = e}), 0);
    attach_and_register(e);
    e->on_loop_thread = -1;
    send_command(e, 13, "reserve", SAGA_OP_ACTION, 0, 1);
    send_command(e, 14, "reserve", SAGA_OP_ACTION, 1, 1);
    send_command(e, 15, "reserve", SAGA_OP_ACTION, 2, 1);
    assert_true(run_until(&e->loop, pool_done, e, 2000));
    assert_int_equal(e->on_loop_thread, 0);
    assert_int_equal(e->ok_rc, 0);
    const struct wire_msg *r = fake_find(fake_last(&e->f), WIRE_REPLY, 0);
    assert_memory_equal(r->reply.output, "pooled", 6);
}

static void test_double_completion(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    connect_participant(e, &o);
    assert_int_equal(
        saga_participant_on(e->p, "reserve", &(saga_handlers_t){.action = h_twice, .data = e}), 0);
    attach_and_register(e);
    send_command(e, 16, "reserve", SAGA_OP_ACTION, 0, 1);
    e->reply_target = 1;
    assert_true(run_until(&e->loop, has_replies, e, 2000));
    run_for(&e->loop, 30);
    assert_int_equal(e->second_rc, SAGA_EALREADY);
    struct fake_conn *c = fake_last(&e->f);
    assert_int_equal(fake_count(c, WIRE_REPLY), 1);
    assert_memory_equal(fake_find(c, WIRE_REPLY, 0)->reply.output, "one", 3);
}

static void on_stopped(saga_participant_t *p, void *data)
{
    struct env *e = data;
    saga_participant_stats_t st;
    saga_participant_stats(p, &st);
    e->calls = 1000 + (int)st.forgotten;
    saga_participant_free(&e->p);
}

static void test_forgotten_reported(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    o.on_stopped = on_stopped;
    o.on_stopped_data = e;
    connect_participant(e, &o);
    assert_int_equal(
        saga_participant_on(e->p, "reserve", &(saga_handlers_t){.action = h_hold, .data = e}), 0);
    attach_and_register(e);
    send_command(e, 17, "reserve", SAGA_OP_ACTION, 4, 2);
    run_for(&e->loop, 40);
    assert_int_equal(e->n_held, 1);
    saga_participant_stop(e->p);
    saga_participant_stop(e->p); /* idempotent */
    assert_true(run_until(&e->loop, p_gone, e, 2000));
    assert_int_equal(e->calls, 1001);
    assert_non_null(strstr(e->logs, "saga=10111213-1415-1617-1819-1a1b1c1d1e1f "
                                    "event=call.forgotten step=reserve op=action attempt=2"));
}

static void test_forgotten_at_free(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    connect_participant(e, &o);
    assert_int_equal(
        saga_participant_on(e->p, "reserve", &(saga_handlers_t){.action = h_hold, .data = e}), 0);
    attach_and_register(e);
    send_command(e, 18, "reserve", SAGA_OP_ACTION, 0, 1);
    run_for(&e->loop, 40);
    saga_participant_free(&e->p); /* still attached: finishes on the loop */
    assert_null(e->p);
    run_for(&e->loop, 50);
    assert_non_null(strstr(e->logs, "event=call.forgotten"));
}

static void test_ping_pong(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    connect_participant(e, &o);
    attach_and_register(e);
    struct wire_msg m = {.request_id = 9, .type = WIRE_PING};
    m.ping.nonce = 42;
    fake_send(fake_last(&e->f), &m);
    run_for(&e->loop, 50);
    const struct wire_msg *r = fake_find(fake_last(&e->f), WIRE_PONG, 0);
    assert_non_null(r);
    assert_int_equal(r->request_id, 9);
    assert_int_equal(r->pong.nonce, 42);
}

static void test_heartbeat(void **state)
{
    struct env *e = *state;
    e->f.heartbeat_ms = 30;
    saga_participant_options_t o = base_options(e);
    connect_participant(e, &o);
    attach_and_register(e);
    /* answered pings keep the connection */
    run_for(&e->loop, 200);
    assert_int_equal(e->f.n_conns, 1);
    assert_true(fake_count(e->f.conns[0], WIRE_PING) >= 3);
    /* unanswered: dead after three intervals, then a new connection */
    e->f.auto_pong = 0;
    assert_true(run_until(&e->loop, two_conns, e, 2000));
    assert_true(e->f.conns[0]->peer_eof);
    uint64_t silent_for = e->f.conns[0]->closed_ms - e->f.conns[0]->accepted_ms;
    assert_true(silent_for >= 200);
    assert_non_null(strstr(e->logs, "event=coordinator.lost"));
    saga_participant_stats_t st;
    saga_participant_stats(e->p, &st);
    assert_int_equal(st.disconnects, 1);
    assert_int_equal(st.connects, 2);
}

static int four_conns(void *arg)
{
    struct env *e = arg;
    return e->f.n_conns >= 5;
}

static void test_reconnect_backoff(void **state)
{
    struct env *e = *state;
    e->f.close_on_accept = 1;
    saga_participant_options_t o = base_options(e);
    o.reconnect_min_ms = 40;
    o.reconnect_max_ms = 120;
    connect_participant(e, &o);
    assert_int_equal(saga_participant_attach_uv(e->p, &e->loop), 0);
    assert_true(run_until(&e->loop, four_conns, e, 5000));
    uint64_t gaps[4];
    for (int i = 0; i < 4; i++)
        gaps[i] = e->f.conns[i + 1]->accepted_ms - e->f.conns[i]->accepted_ms;
    /* delay i is in [d/2, d] with d = min(120, 40 * 2^i); the upper bounds
     * leave room for a loaded machine, the lower ones are exact */
    assert_true(gaps[0] >= 20 && gaps[0] <= 40 + 200);
    assert_true(gaps[1] >= 40);
    assert_true(gaps[2] >= 60);
    assert_true(gaps[3] >= 60 && gaps[3] <= 120 + 200);
    /* a handshake resets the backoff */
    e->f.close_on_accept = 0;
    assert_true(run_until(&e->loop, registered, e, 2000));
}

static void test_fatal_error(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    connect_participant(e, &o);
    attach_and_register(e);
    struct wire_msg m = {.request_id = 0, .type = WIRE_ERROR};
    m.error.code = SAGA_EINTERNAL;
    m.error.message = "not fatal";
    fake_send(fake_last(&e->f), &m);
    run_for(&e->loop, 40);
    assert_int_equal(e->f.n_conns, 1);
    assert_false(e->f.conns[0]->closed);
    m.error.code = SAGA_EAUTH;
    m.error.message = "token refused";
    m.error.fatal = true;
    fake_send(fake_last(&e->f), &m);
    assert_true(run_until(&e->loop, two_conns, e, 2000));
    assert_true(e->f.conns[0]->peer_eof);
    saga_participant_stats_t st;
    saga_participant_stats(e->p, &st);
    assert_int_equal(st.errors, 2);
    assert_non_null(strstr(e->logs, "code=SAGA_EAUTH fatal=1 message=\"token refused\""));
}

static void test_oversize_reply(void **state)
{
    struct env *e = *state;
    e->f.max_payload = 100;
    saga_participant_options_t o = base_options(e);
    connect_participant(e, &o);
    assert_int_equal(
        saga_participant_on(e->p, "reserve", &(saga_handlers_t){.action = h_big, .data = e}), 0);
    attach_and_register(e);
    send_command(e, 19, "reserve", SAGA_OP_ACTION, 0, 1);
    e->reply_target = 1;
    assert_true(run_until(&e->loop, has_replies, e, 2000));
    assert_int_equal(e->ok_rc, SAGA_ETOOBIG);
    const struct wire_msg *r = fake_find(fake_last(&e->f), WIRE_REPLY, 0);
    assert_int_equal(r->reply.outcome, SAGA_OUTCOME_FAIL);
    assert_int_equal(r->reply.output_len, 0);
    assert_false(fake_last(&e->f)->closed);
}

static void test_garbage_closes(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    connect_participant(e, &o);
    attach_and_register(e);
    static const uint8_t junk[] = {0, 0, 0, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    fake_send_raw(fake_last(&e->f), junk, sizeof(junk));
    assert_true(run_until(&e->loop, two_conns, e, 2000));
    assert_true(e->f.conns[0]->peer_eof);
    assert_non_null(strstr(e->logs, "err=SAGA_EPROTO"));
}

static void test_frame_too_big_closes(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    connect_participant(e, &o);
    attach_and_register(e);
    static const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff, 1, 2, 3};
    fake_send_raw(fake_last(&e->f), huge, sizeof(huge));
    assert_true(run_until(&e->loop, two_conns, e, 2000));
    assert_non_null(strstr(e->logs, "err=SAGA_ETOOBIG"));
}

static int closed_again(void *arg)
{
    struct env *e = arg;
    return e->f.n_conns >= 2;
}

static void test_reply_dropped(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    connect_participant(e, &o);
    assert_int_equal(
        saga_participant_on(e->p, "reserve", &(saga_handlers_t){.action = h_hold, .data = e}), 0);
    attach_and_register(e);
    send_command(e, 20, "reserve", SAGA_OP_ACTION, 0, 1);
    run_for(&e->loop, 40);
    assert_int_equal(e->n_held, 1);
    e->f.close_on_accept = 1; /* no live connection to that coordinator */
    fake_close_conn(fake_last(&e->f));
    assert_true(run_until(&e->loop, closed_again, e, 2000));
    assert_int_equal(saga_call_ok(e->held[0], "x", 1), 0);
    run_for(&e->loop, 40);
    assert_int_equal(fake_count(e->f.conns[0], WIRE_REPLY), 0);
    saga_participant_stats_t st;
    saga_participant_stats(e->p, &st);
    assert_int_equal(st.dropped, 1);
    assert_int_equal(st.replies, 0);
    assert_non_null(strstr(e->logs, "event=reply.dropped"));
}

static void test_reply_after_reconnect(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    connect_participant(e, &o);
    assert_int_equal(
        saga_participant_on(e->p, "reserve", &(saga_handlers_t){.action = h_hold, .data = e}), 0);
    attach_and_register(e);
    send_command(e, 24, "reserve", SAGA_OP_ACTION, 0, 1);
    run_for(&e->loop, 40);
    fake_close_conn(fake_last(&e->f));
    assert_true(run_until(&e->loop, two_conns, e, 2000));
    /* the same coordinator again: the reply goes out on the new connection */
    assert_int_equal(saga_call_ok(e->held[0], "x", 1), 0);
    e->reply_target = 1;
    assert_true(run_until(&e->loop, has_replies, e, 2000));
    assert_int_equal(fake_find(fake_last(&e->f), WIRE_REPLY, 0)->request_id, 24);
}

static void test_redelivery_answers_once(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    connect_participant(e, &o);
    assert_int_equal(
        saga_participant_on(e->p, "reserve", &(saga_handlers_t){.action = h_hold, .data = e}), 0);
    attach_and_register(e);
    send_command(e, 21, "reserve", SAGA_OP_ACTION, 0, 1);
    run_for(&e->loop, 40);
    fake_close_conn(fake_last(&e->f));
    assert_true(run_until(&e->loop, two_conns, e, 2000));
    send_command(e, 77, "reserve", SAGA_OP_ACTION, 0, 1); /* the same command again */
    run_for(&e->loop, 40);
    assert_int_equal(e->n_held, 1); /* the handler did not run twice */
    assert_int_equal(saga_call_ok(e->held[0], "x", 1), 0);
    e->reply_target = 1;
    assert_true(run_until(&e->loop, has_replies, e, 2000));
    assert_int_equal(fake_find(fake_last(&e->f), WIRE_REPLY, 0)->request_id, 77);
}

static void test_max_in_flight(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    o.max_in_flight = 1;
    connect_participant(e, &o);
    assert_int_equal(
        saga_participant_on(e->p, "reserve", &(saga_handlers_t){.action = h_hold, .data = e}), 0);
    attach_and_register(e);
    send_command(e, 22, "reserve", SAGA_OP_ACTION, 0, 1);
    send_command(e, 23, "reserve", SAGA_OP_ACTION, 1, 1);
    e->reply_target = 1;
    assert_true(run_until(&e->loop, has_replies, e, 2000));
    const struct wire_msg *r = fake_find(fake_last(&e->f), WIRE_REPLY, 0);
    assert_int_equal(r->request_id, 23);
    assert_int_equal(r->reply.outcome, SAGA_OUTCOME_RETRY);
    assert_int_equal(e->n_held, 1);
    saga_participant_stats_t st;
    saga_participant_stats(e->p, &st);
    assert_int_equal(st.refused, 1);
    assert_int_equal(saga_call_ok(e->held[0], NULL, 0), 0);
    e->reply_target = 2;
    assert_true(run_until(&e->loop, has_replies, e, 2000));
}

static void on_decision(saga_participant_t *p, int status, saga_decision_t d, void *data)
{
    struct env *e = data;
    (void)p;
    e->decided++;
    e->decision_status = status;
    e->decision = d;
}

static void answer_in_doubt(struct fake_conn *c, const struct wire_msg *m, void *data)
{
    (void)data;
    if (m->type != WIRE_IN_DOUBT)
        return;
    if (m->in_doubt.step_index == 1) {
        struct wire_msg r = {.request_id = m->request_id, .type = WIRE_DECISION};
        memcpy(r.decision.saga_id, m->in_doubt.saga_id, WIRE_SAGA_ID_LEN);
        r.decision.step_index = 1;
        r.decision.decision = WIRE_DECISION_COMMIT;
        fake_send(c, &r);
    } else if (m->in_doubt.step_index == 2) {
        struct wire_msg r = {.request_id = m->request_id, .type = WIRE_ERROR};
        r.error.code = SAGA_ENOTFOUND;
        r.error.message = "no such saga";
        fake_send(c, &r);
    } /* 3: no answer */
}

static int decided(void *arg)
{
    struct env *e = arg;
    return e->decided > 0;
}

static void test_in_doubt(void **state)
{
    struct env *e = *state;
    e->f.on_msg = answer_in_doubt;
    saga_participant_options_t o = base_options(e);
    connect_participant(e, &o);
    uint8_t id[SAGA_ID_LEN];
    assert_int_equal(saga_id_parse("0a0b0c0d-0000-4000-8000-000000000001", id), 0);
    assert_int_equal(saga_participant_attach_uv(e->p, &e->loop), 0);
    /* asked before any connection is ready: sent once one is */
    assert_int_equal(saga_participant_query_decision(e->p, id, 1, 0, on_decision, e), 0);
    assert_int_equal(e->decided, 0); /* never from inside the call */
    assert_true(run_until(&e->loop, decided, e, 2000));
    assert_int_equal(e->decision_status, 0);
    assert_int_equal(e->decision, SAGA_DECISION_COMMIT);
    const struct wire_msg *q = fake_find(fake_last(&e->f), WIRE_IN_DOUBT, 0);
    assert_memory_equal(q->in_doubt.saga_id, id, SAGA_ID_LEN);

    e->decided = 0;
    assert_int_equal(saga_participant_query_decision(e->p, id, 2, 0, on_decision, e), 0);
    assert_true(run_until(&e->loop, decided, e, 2000));
    assert_int_equal(e->decision_status, SAGA_ENOTFOUND);

    e->decided = 0;
    assert_int_equal(saga_participant_query_decision(e->p, id, 3, 50, on_decision, e), 0);
    assert_true(run_until(&e->loop, decided, e, 2000));
    assert_int_equal(e->decision_status, SAGA_ETIMEDOUT);

    /* pending at stop: canceled */
    e->decided = 0;
    assert_int_equal(saga_participant_query_decision(e->p, id, 3, 5000, on_decision, e), 0);
    saga_participant_free(&e->p);
    assert_int_equal(e->decided, 1);
    assert_int_equal(e->decision_status, SAGA_ECANCELED);
    run_for(&e->loop, 30);
}

static void test_peers(void **state)
{
    struct env *e = *state;
    struct fake second = {.auto_hello = 1, .auto_ack = 1, .auto_pong = 1, .heartbeat_ms = 1000};
    assert_int_equal(fake_start(&second, &e->loop), 0);
    e->f.peers[0] = e->f.addr; /* itself: no second connection */
    e->f.peers[1] = second.addr;
    e->f.n_peers = 2;
    saga_participant_options_t o = base_options(e);
    connect_participant(e, &o);
    assert_int_equal(
        saga_participant_on(e->p, "reserve", &(saga_handlers_t){.action = h_echo, .data = e}), 0);
    attach_and_register(e);
    for (int i = 0; i < 200 && fake_count(fake_last(&second), WIRE_REGISTER) == 0; i++)
        run_for(&e->loop, 5);
    assert_int_equal(fake_count(fake_last(&second), WIRE_REGISTER), 1);
    assert_int_equal(e->f.n_conns, 1);
    /* a command from the peer is answered on the peer's connection */
    struct wire_msg m = {.request_id = 5, .type = WIRE_COMMAND};
    m.command.step = "s";
    m.command.action = "reserve";
    m.command.op = SAGA_OP_ACTION;
    m.command.attempt = 1;
    fake_send(fake_last(&second), &m);
    for (int i = 0; i < 200 && fake_count(fake_last(&second), WIRE_REPLY) == 0; i++)
        run_for(&e->loop, 5);
    assert_int_equal(fake_count(fake_last(&second), WIRE_REPLY), 1);
    saga_participant_free(&e->p);
    run_for(&e->loop, 20);
    fake_stop(&second);
}

static void test_peer_removed(void **state)
{
    struct env *e = *state;
    struct fake second = {.auto_hello = 1, .auto_ack = 1, .auto_pong = 1, .heartbeat_ms = 1000};
    assert_int_equal(fake_start(&second, &e->loop), 0);
    e->f.peers[0] = e->f.addr;
    e->f.peers[1] = second.addr;
    e->f.n_peers = 2;
    saga_participant_options_t o = base_options(e);
    connect_participant(e, &o);
    attach_and_register(e);
    for (int i = 0; i < 200 && fake_count(fake_last(&second), WIRE_REGISTER) == 0; i++)
        run_for(&e->loop, 5);
    assert_int_equal(second.n_conns, 1);
    /* the first coordinator stops listing the second: dropped, not retried */
    e->f.n_peers = 1;
    fake_close_conn(fake_last(&e->f));
    assert_true(run_until(&e->loop, two_conns, e, 2000));
    run_for(&e->loop, 150);
    assert_true(fake_last(&second)->peer_eof);
    assert_int_equal(second.n_conns, 1);
    assert_non_null(strstr(e->logs, "event=coordinator.peer_removed"));
    /* listed again: connected again */
    e->f.n_peers = 2;
    fake_close_conn(fake_last(&e->f));
    for (int i = 0; i < 400 && second.n_conns < 2; i++)
        run_for(&e->loop, 5);
    assert_int_equal(second.n_conns, 2);
    saga_participant_free(&e->p);
    run_for(&e->loop, 20);
    fake_stop(&second);
}

static void test_version_mismatch(void **state)
{
    struct env *e = *state;
    e->f.protocol_version = 2;
    saga_participant_options_t o = base_options(e);
    connect_participant(e, &o);
    assert_int_equal(saga_participant_attach_uv(e->p, &e->loop), 0);
    run_for(&e->loop, 100);
    assert_non_null(strstr(e->logs, "err=SAGA_EVERSION"));
    assert_int_equal(fake_count(e->f.conns[0], WIRE_REGISTER), 0);
}

/* saga_participant_run on its own thread, stopped from this one. */
struct runner {
    saga_participant_t *p;
    int rc;
    int returned;
};

static void run_thread(void *arg)
{
    struct runner *r = arg;
    r->rc = saga_participant_run(r->p);
    __atomic_store_n(&r->returned, 1, __ATOMIC_SEQ_CST);
}

static int runner_returned(void *arg)
{
    struct runner *r = arg;
    return __atomic_load_n(&r->returned, __ATOMIC_SEQ_CST);
}

static void test_run_and_stop(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    o.log = NULL; /* the log callback is for the loop thread, here another one */
    o.log_level = SAGA_LOG_OFF;
    struct runner r = {.p = saga_participant_new(&o)};
    assert_non_null(r.p);
    uv_thread_t th;
    uv_thread_create(&th, run_thread, &r);
    for (int i = 0; i < 400 && fake_count(fake_last(&e->f), WIRE_REGISTER) == 0; i++)
        run_for(&e->loop, 5);
    assert_int_equal(fake_count(fake_last(&e->f), WIRE_REGISTER), 1);
    saga_participant_stop(r.p);
    assert_true(run_until(&e->loop, runner_returned, &r, 2000));
    uv_thread_join(&th);
    assert_int_equal(r.rc, 0);
    run_for(&e->loop, 20);
    assert_true(fake_last(&e->f)->peer_eof);
    saga_participant_free(&r.p);
    assert_null(r.p);
}

static void test_stop_before_run(void **state)
{
    struct env *e = *state;
    saga_participant_options_t o = base_options(e);
    saga_participant_t *p = saga_participant_new(&o);
    saga_participant_stop(p);
    assert_int_equal(saga_participant_run(p), 0); /* returns at once */
    saga_participant_free(&p);
    saga_participant_free(&p); /* NULL: no-op */
}

static void test_ids(void **state)
{
    (void)state;
    uint8_t id[SAGA_ID_LEN];
    char text[SAGA_ID_TEXT_LEN];
    assert_int_equal(saga_id_parse("0A0B0C0D0E0F10111213141516171819", id), 0);
    assert_string_equal(saga_id_format(id, text), "0a0b0c0d-0e0f-1011-1213-141516171819");
    assert_int_equal(saga_id_parse("0a0b", id), SAGA_EINVAL);
    assert_int_equal(saga_id_parse("0a0b0c0d-0e0f-1011-1213-14151617181x", id), SAGA_EINVAL);
    assert_int_equal(saga_id_parse("0a0b0c0d-0e0f-1011-1213-1415161718191a", id), SAGA_EINVAL);
    assert_int_equal(saga_id_parse(NULL, id), SAGA_EINVAL);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_bad_options),
        T(test_handshake_register),
        T(test_default_instance_id),
        T(test_command_every_op),
        T(test_fail_and_retry),
        T(test_no_handler),
        T(test_async_completion),
        T(test_complete_from_other_thread),
        T(test_pool_completion),
        T(test_double_completion),
        T(test_forgotten_reported),
        T(test_forgotten_at_free),
        T(test_ping_pong),
        T(test_heartbeat),
        T(test_reconnect_backoff),
        T(test_fatal_error),
        T(test_oversize_reply),
        T(test_garbage_closes),
        T(test_frame_too_big_closes),
        T(test_reply_dropped),
        T(test_reply_after_reconnect),
        T(test_peer_removed),
        T(test_redelivery_answers_once),
        T(test_max_in_flight),
        T(test_in_doubt),
        T(test_peers),
        T(test_version_mismatch),
        T(test_run_and_stop),
        T(test_stop_before_run),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests_name("participant", tests, NULL, NULL);
}
