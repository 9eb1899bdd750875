/* sagactl --json: the documents built from client results keep the documented
 * keys, types and values (docs/operations.md), including bytes that are not
 * text and times that are not set yet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sagactl/json.h"

#define T0 UINT64_C(1795256726796) /* 2026-11-21T10:25:26.796Z */

static const saga_step_info_t steps[2] = {
    {.name = "reserve",
     .service = "inventory",
     .action = "reserve",
     .status = SAGA_STEP_COMPENSATED,
     .attempts = 1,
     .compensate_attempts = 2,
     .error = "",
     .started_ms = T0,
     .finished_ms = T0 + 12,
     .output = (const uint8_t *)"{\"qty\":2}",
     .output_len = 9},
    {.name = "charge",
     .service = "payment",
     .action = "charge",
     .status = SAGA_STEP_FAILED,
     .attempts = 3,
     .error = "amount 900 over the limit 500",
     .started_ms = T0 + 5,
     .finished_ms = 0,
     .output = (const uint8_t *)"\xff\xfe",
     .output_len = 2},
};

static const saga_event_t events[2] = {
    {.seq = 1, .at_ms = T0, .kind = "saga.started", .step = "", .attempt = 0, .detail = ""},
    {.seq = 2,
     .at_ms = T0 + 7,
     .kind = "step.failed",
     .step = "charge",
     .attempt = 3,
     .detail = "amount 900 over the limit 500"},
};

static saga_info_t info_fixture(void)
{
    saga_info_t info = {.definition = "checkout",
                        .version = 4,
                        .mode = SAGA_MODE_SAGA,
                        .status = SAGA_STATUS_COMPENSATED,
                        .error = "step 'charge' failed",
                        .created_ms = T0,
                        .updated_ms = T0 + 20,
                        .deadline_ms = 0,
                        .input = (const uint8_t *)"{\"order\":\"A-2\"}",
                        .input_len = 15,
                        .steps = steps,
                        .n_steps = 2,
                        .events = events,
                        .n_events = 2};
    memset(info.saga_id, 0xab, SAGA_ID_LEN);
    saga_id_format(info.saga_id, info.saga_id_text);
    return info;
}

static void test_saga_document(void **state)
{
    (void)state;
    saga_info_t info = info_fixture();
    json_t *d = ctl_json_saga(&info);
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(d, "saga_id")),
                        "abababab-abab-abab-abab-abababababab");
    assert_string_equal(json_string_value(json_object_get(d, "definition")), "checkout");
    assert_int_equal(json_integer_value(json_object_get(d, "version")), 4);
    assert_string_equal(json_string_value(json_object_get(d, "mode")), "saga");
    assert_string_equal(json_string_value(json_object_get(d, "status")), "compensated");
    assert_true(json_is_true(json_object_get(d, "terminal")));
    assert_string_equal(json_string_value(json_object_get(d, "error")), "step 'charge' failed");
    assert_int_equal(json_integer_value(json_object_get(d, "created_ms")), (json_int_t)T0);
    assert_string_equal(json_string_value(json_object_get(d, "created")),
                        "2026-11-21T10:25:26.796Z");
    assert_int_equal(json_integer_value(json_object_get(d, "deadline_ms")), 0);
    assert_true(json_is_null(json_object_get(d, "deadline")));
    assert_string_equal(json_string_value(json_object_get(d, "input")), "{\"order\":\"A-2\"}");

    json_t *st = json_object_get(d, "steps");
    assert_int_equal(json_array_size(st), 2);
    json_t *s0 = json_array_get(st, 0), *s1 = json_array_get(st, 1);
    assert_string_equal(json_string_value(json_object_get(s0, "status")), "compensated");
    assert_int_equal(json_integer_value(json_object_get(s0, "attempts")), 1);
    assert_int_equal(json_integer_value(json_object_get(s0, "compensate_attempts")), 2);
    assert_int_equal(json_integer_value(json_object_get(s0, "duration_ms")), 12);
    assert_string_equal(json_string_value(json_object_get(s0, "output")), "{\"qty\":2}");
    assert_string_equal(json_string_value(json_object_get(s1, "status")), "failed");
    assert_string_equal(json_string_value(json_object_get(s1, "error")),
                        "amount 900 over the limit 500");
    /* Not finished: no duration, no finish time. Not text: null. */
    assert_true(json_is_null(json_object_get(s1, "duration_ms")));
    assert_true(json_is_null(json_object_get(s1, "finished")));
    assert_int_equal(json_integer_value(json_object_get(s1, "finished_ms")), 0);
    assert_true(json_is_null(json_object_get(s1, "output")));

    json_t *ev = json_object_get(d, "events");
    assert_int_equal(json_array_size(ev), 2);
    json_t *e1 = json_array_get(ev, 1);
    assert_int_equal(json_integer_value(json_object_get(e1, "seq")), 2);
    assert_int_equal(json_integer_value(json_object_get(e1, "at_ms")), (json_int_t)(T0 + 7));
    assert_string_equal(json_string_value(json_object_get(e1, "at")), "2026-11-21T10:25:26.803Z");
    assert_string_equal(json_string_value(json_object_get(e1, "kind")), "step.failed");
    assert_string_equal(json_string_value(json_object_get(e1, "step")), "charge");
    assert_int_equal(json_integer_value(json_object_get(e1, "attempt")), 3);
    json_decref(d);
}

/* The keys of an object, in order, joined by commas. */
static void keys_of(json_t *o, char *buf, size_t size)
{
    const char *k;
    json_t *v;
    size_t used = 0;
    buf[0] = '\0';
    json_object_foreach(o, k, v)
    {
        int n = snprintf(buf + used, size - used, "%s%s", used ? "," : "", k);
        assert_true(n > 0 && (size_t)n < size - used);
        used += (size_t)n;
    }
}

static void test_key_order_is_stable(void **state)
{
    (void)state;
    char keys[512];
    saga_info_t info = info_fixture();
    json_t *d = ctl_json_saga(&info);
    keys_of(d, keys, sizeof(keys));
    assert_string_equal(keys, "saga_id,definition,version,mode,status,terminal,error,created_ms,"
                              "updated_ms,deadline_ms,created,updated,deadline,input,steps,events");
    keys_of(json_array_get(json_object_get(d, "steps"), 0), keys, sizeof(keys));
    assert_string_equal(keys, "name,service,action,status,attempts,compensate_attempts,error,"
                              "started_ms,finished_ms,duration_ms,started,finished,output");
    keys_of(json_array_get(json_object_get(d, "events"), 0), keys, sizeof(keys));
    assert_string_equal(keys, "seq,at_ms,at,kind,step,attempt,detail");
    json_decref(d);
}

static void test_summary_and_service(void **state)
{
    (void)state;
    saga_summary_t s = {.definition = "checkout",
                        .version = 1,
                        .mode = SAGA_MODE_2PC,
                        .status = SAGA_STATUS_PREPARING,
                        .error = "",
                        .created_ms = T0,
                        .updated_ms = T0 + 1};
    memcpy(s.saga_id_text, "00000000-0000-0000-0000-000000000001", SAGA_ID_TEXT_LEN);
    json_t *d = ctl_json_summary(&s);
    assert_string_equal(json_string_value(json_object_get(d, "mode")), "2pc");
    assert_string_equal(json_string_value(json_object_get(d, "status")), "preparing");
    assert_true(json_is_false(json_object_get(d, "terminal")));
    json_decref(d);

    static const char *const actions[] = {"reserve", "release"};
    saga_instance_info_t in = {.instance_id = "host:42",
                               .coordinator_id = "sagad@127.0.0.1:7420",
                               .actions = actions,
                               .n_actions = 2,
                               .in_flight = 3,
                               .max_in_flight = 16};
    saga_service_info_t svc = {.name = "inventory", .instances = &in, .n_instances = 1};
    d = ctl_json_service(&svc);
    assert_string_equal(json_string_value(json_object_get(d, "name")), "inventory");
    json_t *i0 = json_array_get(json_object_get(d, "instances"), 0);
    assert_string_equal(json_string_value(json_object_get(i0, "instance_id")), "host:42");
    assert_int_equal(json_array_size(json_object_get(i0, "actions")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(i0, "actions"), 1)),
                        "release");
    assert_int_equal(json_integer_value(json_object_get(i0, "in_flight")), 3);
    assert_int_equal(json_integer_value(json_object_get(i0, "max_in_flight")), 16);
    json_decref(d);
}

static void test_bytes_and_print(void **state)
{
    (void)state;
    json_t *v = ctl_json_bytes((const uint8_t *)"", 0);
    assert_string_equal(json_string_value(v), "");
    json_decref(v);
    v = ctl_json_bytes((const uint8_t *)"caf\xc3\xa9", 5);
    assert_string_equal(json_string_value(v), "caf\xc3\xa9");
    json_decref(v);
    v = ctl_json_bytes((const uint8_t *)"\xc3", 1); /* cut in the middle of a character */
    assert_true(json_is_null(v));
    json_decref(v);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(ctl_json_print(json_pack("{s:i}", "a", 1), f), 0);
    assert_int_equal(ctl_json_print(NULL, f), SAGA_ENOMEM);
    fclose(f);
    assert_string_equal(buf, "{\n  \"a\": 1\n}\n");
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_saga_document),
        cmocka_unit_test(test_key_order_is_stable),
        cmocka_unit_test(test_summary_and_service),
        cmocka_unit_test(test_bytes_and_print),
    };
    return cmocka_run_group_tests_name("sagactl_json", tests, NULL, NULL);
}
