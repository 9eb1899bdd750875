/* Client SDK against a fake coordinator: every request, error replies, watch,
 * timeouts, a dead or closing coordinator, and the blocking versions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_coord.h"
#include "saga/client.h"

struct env {
    uv_loop_t loop;
    struct fake f;
    saga_client_t *c;
    saga_result_t *res[16];
    int n_res;
    int taken;
    int events;
    char event_kinds[256];
    /* for the blocking tests: the fake runs on its own thread */
    uv_thread_t thread;
    uv_async_t quit;
    int auth_refuse;
};

static const uint8_t ID_OK[SAGA_ID_LEN] = {0x01, 0x02};
static const uint8_t ID_MISSING[SAGA_ID_LEN] = {0xee};
static const uint8_t ID_SILENT[SAGA_ID_LEN] = {0xdd};
static const uint8_t ID_CLOSE[SAGA_ID_LEN] = {0xcc};

static void send_info(struct fake_conn *c, uint64_t rid, const uint8_t *id, saga_status_t st,
                      const char *error)
{
    struct wire_step_info steps[2] = {
        {.name = "reserve",
         .service = "inventory",
         .action = "reserve",
         .status = SAGA_STEP_SUCCEEDED,
         .attempts = 2,
         .error = "",
         .started_ms = 10,
         .finished_ms = 20,
         .output = (uint8_t *)"r1",
         .output_len = 2},
        {.name = "charge",
         .service = "payment",
         .action = "charge",
         .status = SAGA_STEP_FAILED,
         .attempts = 1,
         .error = "card declined"},
    };
    struct wire_event ev = {.seq = 1, .at_ms = 5, .kind = "saga.started", .step = "", .detail = ""};
    struct wire_msg m = {.request_id = rid, .type = WIRE_SAGA_INFO};
    memcpy(m.saga_info.saga_id, id, SAGA_ID_LEN);
    m.saga_info.definition = "checkout";
    m.saga_info.version = 3;
    m.saga_info.mode = WIRE_MODE_SAGA;
    m.saga_info.status = st;
    m.saga_info.error = (char *)error;
    m.saga_info.created_ms = 1000;
    m.saga_info.updated_ms = 2000;
    m.saga_info.input = (uint8_t *)"in";
    m.saga_info.input_len = 2;
    m.saga_info.steps = steps;
    m.saga_info.n_steps = 2;
    m.saga_info.events = &ev;
    m.saga_info.n_events = 1;
    fake_send(c, &m);
}

static void send_error(struct fake_conn *c, uint64_t rid, int code, const char *text, bool fatal)
{
    struct wire_msg m = {.request_id = rid, .type = WIRE_ERROR};
    m.error.code = code;
    m.error.message = (char *)text;
    m.error.fatal = fatal;
    fake_send(c, &m);
}

/* The fake coordinator's answers to client requests. */
static void answer(struct fake_conn *c, const struct wire_msg *m, void *data)
{
    struct env *e = data;
    uint64_t rid = m->request_id;
    switch (m->type) {
    case WIRE_HELLO:
        if (e->auth_refuse) {
            send_error(c, rid, SAGA_EAUTH, "bad token", true);
            fake_close_conn(c);
        }
        break;
    case WIRE_DEFINE:
        if (strstr(m->define.definition_json, "bad") != NULL) {
            send_error(c, rid, SAGA_EDEFINITION, "line 1, column 9: expected a step name", false);
        } else {
            struct wire_msg r = {.request_id = rid, .type = WIRE_DEFINED};
            r.defined.name = "checkout";
            r.defined.version = 3;
            r.defined.hash = "abc123";
            r.defined.created = true;
            fake_send(c, &r);
        }
        break;
    case WIRE_START: {
        struct wire_msg r = {.request_id = rid, .type = WIRE_STARTED};
        memcpy(r.started.saga_id, ID_OK, SAGA_ID_LEN);
        r.started.existed = strcmp(m->start.idempotency_key, "dup") == 0;
        fake_send(c, &r);
        break;
    }
    case WIRE_GET:
    case WIRE_WAIT: {
        const uint8_t *id = m->type == WIRE_GET ? m->get.saga_id : m->wait.saga_id;
        if (id[0] == 0xee)
            send_error(c, rid, SAGA_ENOTFOUND, "no saga 00ee", false);
        else if (id[0] == 0xcc)
            fake_close_conn(c);
        else if (id[0] != 0xdd)
            send_info(c, rid, id, m->type == WIRE_GET ? SAGA_STATUS_RUNNING : SAGA_STATUS_COMPLETED,
                      "");
        break;
    }
    case WIRE_LIST: {
        struct wire_saga_summary s[2] = {
            {.saga_id = {0x0a},
             .definition = "checkout",
             .version = 3,
             .mode = WIRE_MODE_SAGA,
             .status = SAGA_STATUS_STUCK,
             .error = "compensation failed"},
            {.saga_id = {0x0b},
             .definition = "pay",
             .version = 1,
             .mode = WIRE_MODE_2PC,
             .status = SAGA_STATUS_COMMITTED,
             .error = ""},
        };
        struct wire_msg r = {.request_id = rid, .type = WIRE_SAGA_LIST};
        r.saga_list.sagas = s;
        r.saga_list.n_sagas = 2;
        r.saga_list.next_cursor = "c2";
        fake_send(c, &r);
        break;
    }
    case WIRE_RETRY:
        send_info(c, rid, m->retry.saga_id, SAGA_STATUS_RUNNING, m->retry.reason);
        break;
    case WIRE_ABORT:
        send_info(c, rid, m->abort.saga_id, SAGA_STATUS_COMPENSATING, m->abort.reason);
        break;
    case WIRE_RESOLVE:
        send_info(c, rid, m->resolve.saga_id, m->resolve.as, m->resolve.reason);
        break;
    case WIRE_SERVICES: {
        char *acts[2] = {"reserve", "release"};
        struct wire_instance in[2] = {
            {.instance_id = "inv-1",
             .coordinator_id = "c1",
             .actions = acts,
             .n_actions = 2,
             .in_flight = 3,
             .max_in_flight = 8},
            {.instance_id = "inv-2", .coordinator_id = "c2", .actions = acts, .n_actions = 1},
        };
        struct wire_service s = {.name = "inventory", .instances = in, .n_instances = 2};
        struct wire_msg r = {.request_id = rid, .type = WIRE_SERVICE_LIST};
        r.service_list.services = &s;
        r.service_list.n_services = 1;
        fake_send(c, &r);
        break;
    }
    case WIRE_WATCH: {
        const char *kinds[2] = {"step.started", "step.succeeded"};
        for (int i = 0; i < 2; i++) {
            struct wire_msg ev = {.request_id = rid, .type = WIRE_EVENT};
            ev.event.seq = (uint64_t)i + 2;
            ev.event.kind = (char *)kinds[i];
            ev.event.step = "reserve";
            ev.event.attempt = 1;
            ev.event.detail = "";
            fake_send(c, &ev);
        }
        send_info(c, rid, m->watch.saga_id, SAGA_STATUS_COMPLETED, "");
        break;
    }
    default:
        break;
    }
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    assert_int_equal(uv_loop_init(&e->loop), 0);
    e->f.auto_hello = 1;
    e->f.auto_pong = 1;
    e->f.heartbeat_ms = 1000;
    e->f.on_msg = answer;
    e->f.data = e;
    assert_int_equal(fake_start(&e->f, &e->loop), 0);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    saga_client_free(&e->c);
    for (int i = 0; i < e->n_res; i++)
        saga_result_free(&e->res[i]);
    run_for(&e->loop, 10);
    fake_stop(&e->f);
    run_for(&e->loop, 10);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    free(e);
    return 0;
}

static void on_result(saga_client_t *c, saga_result_t *res, void *data)
{
    struct env *e = data;
    (void)c;
    assert_non_null(res);
    e->res[e->n_res++] = res;
}

static void on_event(saga_client_t *c, const saga_event_t *ev, void *data)
{
    struct env *e = data;
    (void)c;
    e->events++;
    size_t l = strlen(e->event_kinds);
    snprintf(e->event_kinds + l, sizeof(e->event_kinds) - l, "%s%s/%u/%s;",
             e->events == 1 ? "" : "", ev->kind, ev->attempt, ev->step);
}

/* The next result not looked at yet, waiting for it when needed. */
static saga_result_t *await_one(struct env *e)
{
    for (int i = 0; i < 1000 && e->n_res == e->taken; i++)
        run_for(&e->loop, 2);
    assert_true(e->n_res > e->taken);
    return e->res[e->taken++];
}

static void new_async_client(struct env *e, const char *addr, unsigned timeout_ms)
{
    e->c = saga_client_new(&(saga_client_options_t){.coordinator = addr,
                                                    .loop = &e->loop,
                                                    .request_timeout_ms = timeout_ms,
                                                    .auth_token = "tok",
                                                    .label = "test"});
    assert_non_null(e->c);
}

static void test_define_start_get(void **state)
{
    struct env *e = *state;
    new_async_client(e, e->f.addr, 2000);
    assert_int_equal(saga_client_define(e->c, "{\"name\":\"checkout\"}", on_result, e), 0);
    assert_int_equal(e->n_res, 0); /* never from inside the call */
    saga_result_t *r = await_one(e);
    assert_int_equal(saga_result_status(r), 0);
    assert_string_equal(saga_result_error(r), "");
    assert_string_equal(saga_result_def_name(r), "checkout");
    assert_int_equal(saga_result_def_version(r), 3);
    assert_string_equal(saga_result_def_hash(r), "abc123");
    assert_true(saga_result_def_created(r));
    assert_null(saga_result_info(r));

    const struct wire_msg *h = fake_find(fake_last(&e->f), WIRE_HELLO, 0);
    assert_int_equal(h->hello.role, WIRE_ROLE_CLIENT);
    assert_string_equal(h->hello.auth_token, "tok");
    assert_string_equal(h->hello.service, "test");

    saga_start_request_t sr = {.definition = "checkout",
                               .version = 3,
                               .input = "{}",
                               .input_len = 2,
                               .idempotency_key = "order-7"};
    assert_int_equal(saga_client_start(e->c, &sr, on_result, e), 0);
    r = await_one(e);
    assert_int_equal(saga_result_status(r), 0);
    assert_memory_equal(saga_result_saga_id(r), ID_OK, SAGA_ID_LEN);
    assert_string_equal(saga_result_saga_id_text(r), "01020000-0000-0000-0000-000000000000");
    assert_false(saga_result_existed(r));
    const struct wire_msg *s = fake_find(fake_last(&e->f), WIRE_START, 0);
    assert_string_equal(s->start.definition, "checkout");
    assert_null(s->start.definition_json);
    assert_int_equal(s->start.version, 3);
    assert_memory_equal(s->start.input, "{}", 2);
    assert_string_equal(s->start.idempotency_key, "order-7");

    saga_start_request_t inl = {.definition_json = "{\"name\":\"x\"}", .idempotency_key = "dup"};
    assert_int_equal(saga_client_start(e->c, &inl, on_result, e), 0);
    r = await_one(e);
    assert_true(saga_result_existed(r));
    s = fake_find(fake_last(&e->f), WIRE_START, 1);
    assert_string_equal(s->start.definition_json, "{\"name\":\"x\"}");
    assert_null(s->start.definition);

    assert_int_equal(saga_client_get(e->c, ID_OK, on_result, e), 0);
    r = await_one(e);
    const saga_info_t *in = saga_result_info(r);
    assert_non_null(in);
    assert_string_equal(in->saga_id_text, "01020000-0000-0000-0000-000000000000");
    assert_string_equal(in->definition, "checkout");
    assert_int_equal(in->version, 3);
    assert_int_equal(in->mode, SAGA_MODE_SAGA);
    assert_int_equal(in->status, SAGA_STATUS_RUNNING);
    assert_int_equal(in->input_len, 2);
    assert_int_equal(in->n_steps, 2);
    assert_string_equal(in->steps[0].name, "reserve");
    assert_int_equal(in->steps[0].attempts, 2);
    assert_memory_equal(in->steps[0].output, "r1", 2);
    assert_string_equal(in->steps[1].error, "card declined");
    assert_int_equal(in->steps[1].output_len, 0);
    assert_non_null(in->steps[1].output);
    assert_int_equal(in->n_events, 1);
    assert_string_equal(in->events[0].kind, "saga.started");
    assert_int_equal(e->f.n_conns, 1); /* one connection for every request */
}

static void test_error_replies(void **state)
{
    struct env *e = *state;
    new_async_client(e, e->f.addr, 2000);
    assert_int_equal(saga_client_define(e->c, "{bad}", on_result, e), 0);
    saga_result_t *r = await_one(e);
    assert_int_equal(saga_result_status(r), SAGA_EDEFINITION);
    assert_string_equal(saga_result_error(r), "line 1, column 9: expected a step name");
    assert_string_equal(saga_result_def_name(r), "");
    assert_int_equal(saga_client_get(e->c, ID_MISSING, on_result, e), 0);
    r = await_one(e);
    assert_int_equal(saga_result_status(r), SAGA_ENOTFOUND);
    assert_string_equal(saga_result_error(r), "no saga 00ee");
    assert_null(saga_result_info(r));
    /* the connection survives non-fatal errors */
    assert_int_equal(saga_client_get(e->c, ID_OK, on_result, e), 0);
    r = await_one(e);
    assert_int_equal(saga_result_status(r), 0);
    assert_int_equal(e->f.n_conns, 1);
}

static void test_bad_arguments(void **state)
{
    struct env *e = *state;
    assert_null(saga_client_new(&(saga_client_options_t){.coordinator = "nowhere"}));
    assert_null(saga_client_new(&(saga_client_options_t){0}));
    assert_null(saga_client_new(NULL));
    new_async_client(e, e->f.addr, 2000);
    saga_start_request_t both = {.definition = "a", .definition_json = "{}"};
    assert_int_equal(saga_client_start(e->c, &both, on_result, e), SAGA_EINVAL);
    saga_start_request_t neither = {0};
    assert_int_equal(saga_client_start(e->c, &neither, on_result, e), SAGA_EINVAL);
    assert_int_equal(saga_client_define(e->c, NULL, on_result, e), SAGA_EINVAL);
    assert_int_equal(saga_client_get(e->c, ID_OK, NULL, e), SAGA_EINVAL);
    assert_int_equal(saga_client_resolve(e->c, ID_OK, SAGA_STATUS_RUNNING, "x", on_result, e),
                     SAGA_EINVAL);
    saga_result_t *r = NULL;
    assert_int_equal(saga_client_get_sync(e->c, ID_OK, &r), SAGA_ESTATE); /* has a loop */
    assert_int_equal(saga_result_status(r), SAGA_ESTATE);
    saga_result_free(&r);
    assert_null(r);
    run_for(&e->loop, 20);
    assert_int_equal(e->n_res, 0);
}

static void test_list(void **state)
{
    struct env *e = *state;
    new_async_client(e, e->f.addr, 2000);
    saga_list_filter_t f = {.status = SAGA_STATUS_STUCK,
                            .definition = "checkout",
                            .created_since_ms = 77,
                            .limit = 2,
                            .cursor = "c1"};
    assert_int_equal(saga_client_list(e->c, &f, on_result, e), 0);
    saga_result_t *r = await_one(e);
    assert_int_equal(saga_result_status(r), 0);
    assert_int_equal(saga_result_list_count(r), 2);
    const saga_summary_t *s = saga_result_list_at(r, 0);
    assert_int_equal(s->status, SAGA_STATUS_STUCK);
    assert_string_equal(s->error, "compensation failed");
    assert_string_equal(s->saga_id_text, "0a000000-0000-0000-0000-000000000000");
    assert_int_equal(saga_result_list_at(r, 1)->mode, SAGA_MODE_2PC);
    assert_null(saga_result_list_at(r, 2));
    assert_string_equal(saga_result_next_cursor(r), "c2");
    const struct wire_msg *m = fake_find(fake_last(&e->f), WIRE_LIST, 0);
    assert_int_equal(m->list.status, SAGA_STATUS_STUCK);
    assert_string_equal(m->list.definition, "checkout");
    assert_int_equal(m->list.created_since_ms, 77);
    assert_int_equal(m->list.limit, 2);
    assert_string_equal(m->list.cursor, "c1");
    /* no filter at all */
    assert_int_equal(saga_client_list(e->c, NULL, on_result, e), 0);
    r = await_one(e);
    assert_int_equal(saga_result_status(r), 0);
    m = fake_find(fake_last(&e->f), WIRE_LIST, 1);
    assert_int_equal(m->list.limit, 0);
    assert_string_equal(m->list.cursor, "");
}

static void test_operator(void **state)
{
    struct env *e = *state;
    new_async_client(e, e->f.addr, 2000);
    assert_int_equal(saga_client_retry(e->c, ID_OK, "db back", on_result, e), 0);
    saga_result_t *r = await_one(e);
    assert_int_equal(saga_result_info(r)->status, SAGA_STATUS_RUNNING);
    assert_string_equal(saga_result_info(r)->error, "db back");
    assert_int_equal(saga_client_abort(e->c, ID_OK, "customer left", on_result, e), 0);
    r = await_one(e);
    assert_int_equal(saga_result_info(r)->status, SAGA_STATUS_COMPENSATING);
    assert_int_equal(
        saga_client_resolve(e->c, ID_OK, SAGA_STATUS_COMPENSATED, "refunded by hand", on_result, e),
        0);
    r = await_one(e);
    assert_int_equal(saga_result_info(r)->status, SAGA_STATUS_COMPENSATED);
    const struct wire_msg *m = fake_find(fake_last(&e->f), WIRE_RESOLVE, 0);
    assert_int_equal(m->resolve.as, SAGA_STATUS_COMPENSATED);
    assert_string_equal(m->resolve.reason, "refunded by hand");
    assert_string_equal(fake_find(fake_last(&e->f), WIRE_ABORT, 0)->abort.reason, "customer left");
}

static void test_services(void **state)
{
    struct env *e = *state;
    new_async_client(e, e->f.addr, 2000);
    assert_int_equal(saga_client_services(e->c, on_result, e), 0);
    saga_result_t *r = await_one(e);
    assert_int_equal(saga_result_service_count(r), 1);
    const saga_service_info_t *s = saga_result_service_at(r, 0);
    assert_string_equal(s->name, "inventory");
    assert_int_equal(s->n_instances, 2);
    assert_string_equal(s->instances[0].instance_id, "inv-1");
    assert_int_equal(s->instances[0].n_actions, 2);
    assert_string_equal(s->instances[0].actions[1], "release");
    assert_int_equal(s->instances[0].max_in_flight, 8);
    assert_string_equal(s->instances[1].coordinator_id, "c2");
    assert_null(saga_result_service_at(r, 1));
}

static void test_watch(void **state)
{
    struct env *e = *state;
    new_async_client(e, e->f.addr, 50); /* a watch has no deadline */
    assert_int_equal(saga_client_watch(e->c, ID_OK, on_event, on_result, e), 0);
    saga_result_t *r = await_one(e);
    assert_int_equal(e->events, 2);
    assert_string_equal(e->event_kinds, "step.started/1/reserve;step.succeeded/1/reserve;");
    assert_int_equal(saga_result_info(r)->status, SAGA_STATUS_COMPLETED);
}

static void test_request_timeout(void **state)
{
    struct env *e = *state;
    new_async_client(e, e->f.addr, 60);
    uv_update_time(&e->loop);
    uint64_t t0 = uv_now(&e->loop);
    assert_int_equal(saga_client_wait(e->c, ID_SILENT, 40, on_result, e), 0);
    assert_int_equal(saga_client_get(e->c, ID_SILENT, on_result, e), 0);
    saga_result_t *r = await_one(e);
    assert_int_equal(saga_result_status(r), SAGA_ETIMEDOUT); /* the get: 60 ms */
    r = await_one(e);
    assert_int_equal(saga_result_status(r), SAGA_ETIMEDOUT); /* the wait: 40 + 60 ms */
    uint64_t took = uv_now(&e->loop) - t0;
    assert_true(took >= 100 && took < 1000);
    /* a late answer after the timeout is ignored; the client still works */
    assert_int_equal(saga_client_get(e->c, ID_OK, on_result, e), 0);
    r = await_one(e);
    assert_int_equal(saga_result_status(r), 0);
}

static int dead_port(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_tcp_t t;
    uv_tcp_init(&loop, &t);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_bind(&t, (const struct sockaddr *)&sa, 0);
    struct sockaddr_in bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(&t, (struct sockaddr *)&bound, &len);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return ntohs(bound.sin_port);
}

static void test_dead_coordinator(void **state)
{
    struct env *e = *state;
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", dead_port());
    new_async_client(e, addr, 2000);
    assert_int_equal(saga_client_get(e->c, ID_OK, on_result, e), 0);
    assert_int_equal(saga_client_services(e->c, on_result, e), 0);
    saga_result_t *r = await_one(e);
    assert_int_equal(saga_result_status(r), SAGA_ECONNECT);
    assert_string_not_equal(saga_result_error(r), "");
    r = await_one(e);
    assert_int_equal(saga_result_status(r), SAGA_ECONNECT);

    /* blocking, within its timeout */
    saga_client_t *c =
        saga_client_new(&(saga_client_options_t){.coordinator = addr, .request_timeout_ms = 500});
    uint64_t t0 = uv_hrtime();
    assert_int_equal(saga_client_get_sync(c, ID_OK, &r), SAGA_ECONNECT);
    assert_true(uv_hrtime() - t0 < 1000000000ull);
    saga_result_free(&r);
    saga_client_free(&c);
}

static void test_failover(void **state)
{
    struct env *e = *state;
    struct fake first = {
        .auto_hello = 1, .auto_pong = 1, .heartbeat_ms = 1000, .on_msg = answer, .data = e};
    struct fake second = first;
    assert_int_equal(fake_start(&first, &e->loop), 0);
    assert_int_equal(fake_start(&second, &e->loop), 0);
    first.peers[0] = first.addr;
    first.peers[1] = second.addr;
    first.n_peers = 2;
    char addrs[160];
    snprintf(addrs, sizeof(addrs), "127.0.0.1:%d, %s", dead_port(), first.addr);
    new_async_client(e, addrs, 2000);
    /* the first address is dead: the second answers */
    assert_int_equal(saga_client_get(e->c, ID_OK, on_result, e), 0);
    assert_int_equal(saga_result_status(await_one(e)), 0);
    assert_int_equal(first.n_conns, 1);
    /* that one goes away: the peer it named takes over */
    fake_stop(&first);
    run_for(&e->loop, 20);
    assert_int_equal(saga_client_get(e->c, ID_OK, on_result, e), 0);
    saga_result_t *r = await_one(e);
    assert_int_equal(saga_result_status(r), 0);
    assert_int_equal(second.n_conns, 1);
    /* none left: SAGA_ECONNECT once every address was tried */
    saga_client_free(&e->c);
    fake_stop(&second);
    new_async_client(e, addrs, 2000);
    assert_int_equal(saga_client_get(e->c, ID_OK, on_result, e), 0);
    r = await_one(e);
    assert_int_equal(saga_result_status(r), SAGA_ECONNECT);
}

static void test_connection_closed(void **state)
{
    struct env *e = *state;
    new_async_client(e, e->f.addr, 2000);
    assert_int_equal(saga_client_wait(e->c, ID_SILENT, 0, on_result, e), 0);
    assert_int_equal(saga_client_get(e->c, ID_CLOSE, on_result, e), 0);
    saga_result_t *r = await_one(e);
    assert_int_equal(saga_result_status(r), SAGA_ECLOSED);
    r = await_one(e);
    assert_int_equal(saga_result_status(r), SAGA_ECLOSED);
    /* the next request opens a new connection */
    assert_int_equal(saga_client_get(e->c, ID_OK, on_result, e), 0);
    r = await_one(e);
    assert_int_equal(saga_result_status(r), 0);
    assert_int_equal(e->f.n_conns, 2);
}

static void test_auth_refused(void **state)
{
    struct env *e = *state;
    e->auth_refuse = 1;
    e->f.auto_hello = 0;
    new_async_client(e, e->f.addr, 2000);
    assert_int_equal(saga_client_get(e->c, ID_OK, on_result, e), 0);
    saga_result_t *r = await_one(e);
    assert_int_equal(saga_result_status(r), SAGA_EAUTH);
    assert_string_equal(saga_result_error(r), "bad token");
}

static void test_free_cancels(void **state)
{
    struct env *e = *state;
    new_async_client(e, e->f.addr, 2000);
    assert_int_equal(saga_client_wait(e->c, ID_SILENT, 0, on_result, e), 0);
    run_for(&e->loop, 20);
    assert_int_equal(e->n_res, 0);
    saga_client_free(&e->c);
    assert_null(e->c);
    assert_int_equal(e->n_res, 1);
    assert_int_equal(saga_result_status(e->res[0]), SAGA_ECANCELED);
    run_for(&e->loop, 20);
}

static void test_heartbeat(void **state)
{
    struct env *e = *state;
    e->f.heartbeat_ms = 30;
    new_async_client(e, e->f.addr, 2000);
    /* a wait with no deadline stays open while the coordinator answers Pings */
    assert_int_equal(saga_client_wait(e->c, ID_SILENT, 0, on_result, e), 0);
    run_for(&e->loop, 200);
    assert_int_equal(e->n_res, 0);
    assert_true(fake_count(fake_last(&e->f), WIRE_PING) >= 3);
    /* a silent coordinator is given up after three intervals */
    e->f.auto_pong = 0;
    uv_update_time(&e->loop);
    uint64_t t0 = uv_now(&e->loop);
    saga_result_t *r = await_one(e);
    assert_int_equal(saga_result_status(r), SAGA_ETIMEDOUT);
    uint64_t took = uv_now(&e->loop) - t0;
    assert_true(took >= 60 && took < 1000);
    assert_true(fake_last(&e->f)->peer_eof);
}

/* ---- blocking calls: the fake runs on a thread of its own ---- */

static void on_quit(uv_async_t *a)
{
    struct env *e = a->data;
    (void)e;
    uv_close((uv_handle_t *)a, NULL);
    uv_stop(a->loop);
}

static void fake_thread(void *arg)
{
    struct env *e = arg;
    uv_run(&e->loop, UV_RUN_DEFAULT);
}

static void sync_event(saga_client_t *c, const saga_event_t *ev, void *data)
{
    on_event(c, ev, data);
}

static void test_blocking_idle(void **state)
{
    struct env *e = *state;
    e->f.heartbeat_ms = 30;
    uv_async_init(&e->loop, &e->quit, on_quit);
    e->quit.data = e;
    uv_thread_create(&e->thread, fake_thread, e);
    saga_client_t *c = saga_client_new(&(saga_client_options_t){.coordinator = e->f.addr});
    saga_result_t *r = NULL;
    assert_int_equal(saga_client_get_sync(c, ID_OK, &r), 0);
    saga_result_free(&r);
    assert_int_equal(saga_client_get_sync(c, ID_OK, &r), 0); /* at once: same connection */
    saga_result_free(&r);
    uv_sleep(100); /* idle past a heartbeat: the next call connects again */
    assert_int_equal(saga_client_get_sync(c, ID_OK, &r), 0);
    saga_result_free(&r);
    saga_client_free(&c);
    uv_async_send(&e->quit);
    uv_thread_join(&e->thread);
    assert_int_equal(e->f.n_conns, 2);
    run_for(&e->loop, 10);
}

static void test_blocking(void **state)
{
    struct env *e = *state;
    uv_async_init(&e->loop, &e->quit, on_quit);
    e->quit.data = e;
    uv_thread_create(&e->thread, fake_thread, e);

    saga_client_t *c =
        saga_client_new(&(saga_client_options_t){.coordinator = e->f.addr, .label = "sagactl"});
    assert_non_null(c);
    saga_result_t *r = NULL;
    assert_int_equal(saga_client_define_sync(c, "{}", &r), 0);
    assert_string_equal(saga_result_def_name(r), "checkout");
    saga_result_free(&r);
    assert_int_equal(saga_client_define_sync(c, "{bad}", &r), SAGA_EDEFINITION);
    assert_string_equal(saga_result_error(r), "line 1, column 9: expected a step name");
    saga_result_free(&r);
    saga_start_request_t sr = {.definition = "checkout", .input = "x", .input_len = 1};
    assert_int_equal(saga_client_start_sync(c, &sr, &r), 0);
    assert_memory_equal(saga_result_saga_id(r), ID_OK, SAGA_ID_LEN);
    saga_result_free(&r);
    assert_int_equal(saga_client_get_sync(c, ID_OK, &r), 0);
    assert_int_equal(saga_result_info(r)->status, SAGA_STATUS_RUNNING);
    saga_result_free(&r);
    assert_int_equal(saga_client_wait_sync(c, ID_OK, 1000, &r), 0);
    assert_int_equal(saga_result_info(r)->status, SAGA_STATUS_COMPLETED);
    saga_result_free(&r);
    assert_int_equal(saga_client_list_sync(c, NULL, &r), 0);
    assert_int_equal(saga_result_list_count(r), 2);
    saga_result_free(&r);
    assert_int_equal(saga_client_retry_sync(c, ID_OK, "r", &r), 0);
    saga_result_free(&r);
    assert_int_equal(saga_client_abort_sync(c, ID_OK, "a", &r), 0);
    saga_result_free(&r);
    assert_int_equal(saga_client_resolve_sync(c, ID_OK, SAGA_STATUS_COMPLETED, "by hand", &r), 0);
    assert_int_equal(saga_result_info(r)->status, SAGA_STATUS_COMPLETED);
    saga_result_free(&r);
    assert_int_equal(saga_client_services_sync(c, &r), 0);
    assert_int_equal(saga_result_service_count(r), 1);
    saga_result_free(&r);
    assert_int_equal(saga_client_get_sync(c, ID_MISSING, &r), SAGA_ENOTFOUND);
    saga_result_free(&r);
    assert_int_equal(saga_client_watch_sync(c, ID_OK, sync_event, e, &r), 0);
    assert_int_equal(e->events, 2);
    saga_result_free(&r);
    /* asynchronous calls need an application loop */
    assert_int_equal(saga_client_get(c, ID_OK, on_result, e), SAGA_ESTATE);
    assert_int_equal(saga_client_get_sync(c, ID_OK, NULL), SAGA_EINVAL);
    saga_client_free(&c);
    assert_null(c);

    uv_async_send(&e->quit);
    uv_thread_join(&e->thread);
    run_for(&e->loop, 10);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_define_start_get),
        T(test_error_replies),
        T(test_bad_arguments),
        T(test_list),
        T(test_operator),
        T(test_services),
        T(test_watch),
        T(test_request_timeout),
        T(test_dead_coordinator),
        T(test_failover),
        T(test_connection_closed),
        T(test_auth_refused),
        T(test_free_cancels),
        T(test_heartbeat),
        T(test_blocking_idle),
        T(test_blocking),
    };
    return cmocka_run_group_tests_name("client", tests, NULL, NULL);
}
