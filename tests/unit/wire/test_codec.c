/* The frame encoder: every message survives a round trip with all its fields,
 * invalid messages are refused, frames append to one buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire/codec.h"
#include "wire/msg.h"
#include "wire_samples.h"

/* Decodes exactly one frame from `buf` and checks nothing is left over. */
static void decode_one(const struct wire_buf *buf, struct wire_msg *out)
{
    struct wire_decoder *dec = NULL;
    assert_int_equal(wire_decoder_new(&dec, 0), 0);
    assert_int_equal(wire_decoder_feed(dec, buf->data, buf->len), 0);
    int rc = wire_decoder_next(dec, out);
    if (rc != 0)
        fail_msg("decode failed: %s", wire_decoder_error(dec));
    struct wire_msg none;
    assert_int_equal(wire_decoder_next(dec, &none), SAGA_EAGAIN);
    assert_int_equal(none.type, WIRE_NONE);
    assert_int_equal(wire_decoder_buffered(dec), 0);
    wire_decoder_free(&dec);
    assert_null(dec);
}

static void round_trip(const struct wire_msg *in)
{
    struct wire_buf buf;
    wire_buf_init(&buf);
    int rc = wire_encode(in, &buf, 0);
    if (rc != 0)
        fail_msg("encode %s: %s", wire_type_name(in->type), saga_err_name(rc));
    assert_true(buf.len > WIRE_FRAME_HEADER);
    uint32_t len = (uint32_t)buf.data[0] << 24 | (uint32_t)buf.data[1] << 16 |
                   (uint32_t)buf.data[2] << 8 | buf.data[3];
    assert_int_equal(len, buf.len - WIRE_FRAME_HEADER);

    struct wire_msg out;
    decode_one(&buf, &out);
    char why[128];
    if (!msg_equal(in, &out, why, sizeof(why)))
        fail_msg("%s: %s", wire_type_name(in->type), why);
    wire_msg_free_contents(&out);
    assert_int_equal(out.type, WIRE_NONE);
    wire_buf_free(&buf);
}

static void test_round_trip_every_type(void **state)
{
    (void)state;
    for (int t = WIRE_NONE + 1; t < WIRE_TYPE_COUNT; t++) {
        struct wire_msg m;
        sample_msg((enum wire_type)t, &m);
        round_trip(&m);
    }
    struct wire_msg inline_start;
    sample_start_inline(&inline_start);
    round_trip(&inline_start);
}

/* Every op, outcome, status and decision value survives, not only the sample's. */
static void test_round_trip_enum_values(void **state)
{
    (void)state;
    struct wire_msg m;
    for (int op = SAGA_OP_ACTION; op <= SAGA_OP_ABORT; op++) {
        for (int oc = SAGA_OUTCOME_OK; oc <= SAGA_OUTCOME_RETRY; oc++) {
            sample_msg(WIRE_REPLY, &m);
            m.reply.op = (saga_op_t)op;
            m.reply.outcome = (saga_outcome_t)oc;
            round_trip(&m);
        }
    }
    for (int st = SAGA_STATUS_RUNNING; st <= SAGA_STATUS_ABORTED; st++) {
        sample_msg(WIRE_SAGA_INFO, &m);
        m.saga_info.status = (saga_status_t)st;
        round_trip(&m);
    }
    struct wire_step_info step = {.name = "s", .status = SAGA_STEP_PENDING};
    for (int st = SAGA_STEP_PENDING; st <= SAGA_STEP_SKIPPED; st++) {
        sample_msg(WIRE_SAGA_INFO, &m);
        step.status = (saga_step_status_t)st;
        m.saga_info.steps = &step;
        m.saga_info.n_steps = 1;
        round_trip(&m);
    }
    for (int d = WIRE_DECISION_COMMIT; d <= WIRE_DECISION_PENDING; d++) {
        sample_msg(WIRE_DECISION, &m);
        m.decision.decision = (enum wire_decision)d;
        round_trip(&m);
    }
    const saga_status_t terminal[] = {SAGA_STATUS_COMPLETED, SAGA_STATUS_COMPENSATED,
                                      SAGA_STATUS_COMMITTED, SAGA_STATUS_ABORTED};
    for (size_t i = 0; i < sizeof(terminal) / sizeof(terminal[0]); i++) {
        sample_msg(WIRE_RESOLVE, &m);
        m.resolve.as = terminal[i];
        round_trip(&m);
    }
    sample_msg(WIRE_LIST, &m);
    m.list.status = SAGA_STATUS_UNKNOWN; /* "any" */
    round_trip(&m);
    sample_msg(WIRE_HELLO, &m);
    m.hello.role = WIRE_ROLE_CLIENT;
    round_trip(&m);
    sample_msg(WIRE_ERROR, &m);
    m.error.code = SAGA_EINTERNAL;
    m.error.fatal = false;
    round_trip(&m);
}

/* A message with nothing but what it must have: NULL strings go out as "" and
 * come back as "", never NULL; empty bytes come back NULL with length 0. */
static void test_defaults_decode_as_empty(void **state)
{
    (void)state;
    struct wire_msg m = {.type = WIRE_COMMAND};
    m.command.op = SAGA_OP_ACTION;
    struct wire_buf buf = {0};
    assert_int_equal(wire_encode(&m, &buf, 0), 0);
    struct wire_msg out;
    decode_one(&buf, &out);
    assert_int_equal(out.type, WIRE_COMMAND);
    assert_int_equal(out.request_id, 0);
    assert_non_null(out.command.definition);
    assert_string_equal(out.command.definition, "");
    assert_string_equal(out.command.step, "");
    assert_string_equal(out.command.action, "");
    assert_string_equal(out.command.idempotency_key, "");
    assert_null(out.command.input);
    assert_int_equal(out.command.input_len, 0);
    assert_null(out.command.deps);
    assert_int_equal(out.command.n_deps, 0);
    for (int i = 0; i < WIRE_SAGA_ID_LEN; i++)
        assert_int_equal(out.command.saga_id[i], 0);
    wire_msg_free_contents(&out);
    wire_buf_free(&buf);

    /* a NULL entry of a string array goes out as "" too */
    char *peers[] = {"a:1", NULL};
    m = (struct wire_msg){.type = WIRE_HELLO_OK};
    m.hello_ok.peers = peers;
    m.hello_ok.n_peers = 2;
    assert_int_equal(wire_encode(&m, &buf, 0), 0);
    decode_one(&buf, &out);
    assert_int_equal(out.hello_ok.n_peers, 2);
    assert_string_equal(out.hello_ok.peers[0], "a:1");
    assert_string_equal(out.hello_ok.peers[1], "");
    wire_msg_free_contents(&out);
    wire_buf_free(&buf);

    /* bodyless messages are still frames of their own */
    m = (struct wire_msg){.type = WIRE_ACK};
    assert_int_equal(wire_encode(&m, &buf, 0), 0);
    assert_int_equal(buf.len, WIRE_FRAME_HEADER + 2);
    decode_one(&buf, &out);
    assert_int_equal(out.type, WIRE_ACK);
    wire_buf_free(&buf);
}

/* The encoder refuses what the decoder would refuse, and leaves the buffer be. */
static void expect_einval(const struct wire_msg *m, const char *what)
{
    struct wire_buf buf = {0};
    assert_int_equal(wire_buf_reserve(&buf, 3), 0);
    memcpy(buf.data, "abc", 3);
    buf.len = 3;
    int rc = wire_encode(m, &buf, 0);
    if (rc != SAGA_EINVAL)
        fail_msg("%s: got %s, want SAGA_EINVAL", what, saga_err_name(rc));
    assert_int_equal(buf.len, 3);
    assert_memory_equal(buf.data, "abc", 3);
    wire_buf_free(&buf);
}

static void test_encode_refuses_invalid(void **state)
{
    (void)state;
    struct wire_msg m;

    m = (struct wire_msg){.type = WIRE_NONE};
    expect_einval(&m, "type none");
    m = (struct wire_msg){.type = WIRE_TYPE_COUNT};
    expect_einval(&m, "type count");
    m = (struct wire_msg){.type = (enum wire_type)999};
    expect_einval(&m, "type 999");

    sample_msg(WIRE_COMMAND, &m);
    m.command.op = (saga_op_t)0;
    expect_einval(&m, "command op 0");
    m.command.op = (saga_op_t)6;
    expect_einval(&m, "command op 6");
    sample_msg(WIRE_COMMAND, &m);
    m.command.input = NULL;
    expect_einval(&m, "command input_len without input");
    sample_msg(WIRE_COMMAND, &m);
    m.command.deps = NULL;
    expect_einval(&m, "command n_deps without deps");

    sample_msg(WIRE_REPLY, &m);
    m.reply.outcome = (saga_outcome_t)0;
    expect_einval(&m, "reply outcome 0");
    m.reply.outcome = (saga_outcome_t)4;
    expect_einval(&m, "reply outcome 4");

    sample_msg(WIRE_ERROR, &m);
    m.error.code = 0;
    expect_einval(&m, "error code 0");
    m.error.code = 3;
    expect_einval(&m, "error code positive");

    sample_msg(WIRE_HELLO, &m);
    m.hello.role = WIRE_ROLE_UNSPECIFIED;
    expect_einval(&m, "hello role 0");
    m.hello.role = (enum wire_role)3;
    expect_einval(&m, "hello role 3");

    sample_msg(WIRE_DECISION, &m);
    m.decision.decision = WIRE_DECISION_UNSPECIFIED;
    expect_einval(&m, "decision 0");

    sample_msg(WIRE_START, &m);
    m.start.definition_json = "{}";
    expect_einval(&m, "start with both");
    m.start.definition = NULL;
    m.start.definition_json = NULL;
    expect_einval(&m, "start with neither");

    sample_msg(WIRE_RESOLVE, &m);
    m.resolve.as = SAGA_STATUS_RUNNING;
    expect_einval(&m, "resolve as running");
    m.resolve.as = SAGA_STATUS_STUCK;
    expect_einval(&m, "resolve as stuck");

    struct wire_action bad_action = {.name = "x", .ops = WIRE_OP_BIT(6)};
    sample_msg(WIRE_REGISTER, &m);
    m.reg.actions = &bad_action;
    m.reg.n_actions = 1;
    expect_einval(&m, "register op bit 6");
    bad_action.ops = 1; /* bit 0: op "unspecified" */
    expect_einval(&m, "register op bit 0");

    sample_msg(WIRE_SAGA_INFO, &m);
    m.saga_info.mode = WIRE_MODE_UNSPECIFIED;
    expect_einval(&m, "saga_info mode 0");
    sample_msg(WIRE_SAGA_INFO, &m);
    m.saga_info.status = (saga_status_t)11;
    expect_einval(&m, "saga_info status 11");
    struct wire_step_info bad_step = {.status = (saga_step_status_t)11};
    sample_msg(WIRE_SAGA_INFO, &m);
    m.saga_info.steps = &bad_step;
    m.saga_info.n_steps = 1;
    expect_einval(&m, "step status 11");

    sample_msg(WIRE_LIST, &m);
    m.list.status = (saga_status_t)11;
    expect_einval(&m, "list status 11");

    sample_msg(WIRE_SERVICE_LIST, &m);
    m.service_list.services = NULL;
    expect_einval(&m, "service_list without array");

    assert_int_equal(wire_encode(NULL, &(struct wire_buf){0}, 0), SAGA_EINVAL);
}

static void test_encode_over_limit(void **state)
{
    (void)state;
    struct wire_msg m;
    sample_msg(WIRE_COMMAND, &m);
    struct wire_buf buf = {0};
    assert_int_equal(wire_encode(&m, &buf, 0), 0);
    size_t frame = buf.len - WIRE_FRAME_HEADER;
    wire_buf_free(&buf);

    /* exactly at the limit is fine, one byte under is not */
    assert_int_equal(wire_encode(&m, &buf, frame), 0);
    assert_int_equal(buf.len, frame + WIRE_FRAME_HEADER);
    assert_int_equal(wire_encode(&m, &buf, frame - 1), SAGA_ETOOBIG);
    assert_int_equal(buf.len, frame + WIRE_FRAME_HEADER);
    wire_buf_free(&buf);

    /* the default limit applies when none is given */
    size_t big = WIRE_MAX_FRAME_DEFAULT + 1;
    uint8_t *input = calloc(1, big);
    assert_non_null(input);
    m.command.input = input;
    m.command.input_len = big;
    assert_int_equal(wire_encode(&m, &buf, 0), SAGA_ETOOBIG);
    assert_int_equal(buf.len, 0);
    assert_int_equal(wire_encode(&m, &buf, big + 4096), 0);
    wire_buf_free(&buf);
    free(input);
}

/* Frames append to one buffer; the decoder reads them back in order. */
static void test_append_many_frames(void **state)
{
    (void)state;
    struct wire_buf buf;
    wire_buf_init(&buf);
    for (int round = 0; round < 3; round++) {
        for (int t = WIRE_NONE + 1; t < WIRE_TYPE_COUNT; t++) {
            struct wire_msg m;
            sample_msg((enum wire_type)t, &m);
            m.request_id = (uint64_t)(round * 100 + t);
            size_t before = buf.len;
            assert_int_equal(wire_encode(&m, &buf, 0), 0);
            assert_true(buf.len > before);
        }
    }
    struct wire_decoder *dec = NULL;
    assert_int_equal(wire_decoder_new(&dec, 0), 0);
    assert_int_equal(wire_decoder_feed(dec, buf.data, buf.len), 0);
    for (int round = 0; round < 3; round++) {
        for (int t = WIRE_NONE + 1; t < WIRE_TYPE_COUNT; t++) {
            struct wire_msg want, got;
            sample_msg((enum wire_type)t, &want);
            want.request_id = (uint64_t)(round * 100 + t);
            assert_int_equal(wire_decoder_next(dec, &got), 0);
            char why[128];
            if (!msg_equal(&want, &got, why, sizeof(why)))
                fail_msg("%s: %s", wire_type_name(want.type), why);
            wire_msg_free_contents(&got);
        }
    }
    struct wire_msg none;
    assert_int_equal(wire_decoder_next(dec, &none), SAGA_EAGAIN);
    wire_decoder_free(&dec);
    wire_buf_free(&buf);
}

static void test_buf(void **state)
{
    (void)state;
    struct wire_buf buf;
    wire_buf_init(&buf);
    assert_null(buf.data);
    assert_int_equal(wire_buf_reserve(&buf, 10), 0);
    assert_true(buf.cap >= 10);
    memcpy(buf.data, "0123456789", 10);
    buf.len = 10;
    wire_buf_consume(&buf, 4);
    assert_int_equal(buf.len, 6);
    assert_memory_equal(buf.data, "456789", 6);
    assert_int_equal(wire_buf_reserve(&buf, SIZE_MAX), SAGA_ENOMEM);
    assert_int_equal(buf.len, 6);
    wire_buf_consume(&buf, 100);
    assert_int_equal(buf.len, 0);
    wire_buf_free(&buf);
    assert_null(buf.data);
    assert_int_equal(buf.cap, 0);
    wire_buf_free(&buf); /* twice is fine */
}

static void test_type_names(void **state)
{
    (void)state;
    for (int t = WIRE_NONE + 1; t < WIRE_TYPE_COUNT; t++) {
        assert_string_not_equal(wire_type_name((enum wire_type)t), "unknown");
        for (int u = t + 1; u < WIRE_TYPE_COUNT; u++)
            assert_string_not_equal(wire_type_name((enum wire_type)t),
                                    wire_type_name((enum wire_type)u));
    }
    assert_string_equal(wire_type_name(WIRE_NONE), "unknown");
    assert_string_equal(wire_type_name((enum wire_type)1234), "unknown");
    assert_string_equal(wire_type_name(WIRE_HELLO_OK), "HelloOk");

    struct wire_msg zero = {0};
    wire_msg_free_contents(&zero);
    wire_msg_free_contents(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_type),
        cmocka_unit_test(test_round_trip_enum_values),
        cmocka_unit_test(test_defaults_decode_as_empty),
        cmocka_unit_test(test_encode_refuses_invalid),
        cmocka_unit_test(test_encode_over_limit),
        cmocka_unit_test(test_append_many_frames),
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_type_names),
    };
    return cmocka_run_group_tests_name("wire_codec", tests, NULL, NULL);
}
