/* The streaming frame decoder: bytes in any split, limits, malformed frames,
 * sticky failure, and tolerance of fields it does not know. */
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

/* Envelope field numbers, as in envelope.proto. */
enum {
    ENV_REQUEST_ID = 1,
    ENV_HELLO = 2,
    ENV_REGISTER = 4,
    ENV_COMMAND = 5,
    ENV_REPLY = 6,
    ENV_PING = 7,
    ENV_ERROR = 9,
    ENV_START = 15,
    ENV_GET = 17,
};

static const uint8_t some_id[WIRE_SAGA_ID_LEN] = {1, 2,  3,  4,  5,  6,  7,  8,
                                                  9, 10, 11, 12, 13, 14, 15, 16};

/* Every sample message, one frame each, in type order, into `buf`. */
static void encode_all_samples(struct wire_buf *buf)
{
    for (int t = WIRE_NONE + 1; t < WIRE_TYPE_COUNT; t++) {
        struct wire_msg m;
        sample_msg((enum wire_type)t, &m);
        assert_int_equal(wire_encode(&m, buf, 0), 0);
    }
}

static void expect_sample(struct wire_msg *got, enum wire_type type)
{
    struct wire_msg want;
    sample_msg(type, &want);
    char why[128];
    if (!msg_equal(&want, got, why, sizeof(why)))
        fail_msg("%s: %s", wire_type_name(type), why);
    wire_msg_free_contents(got);
}

static struct wire_decoder *new_decoder(size_t max)
{
    struct wire_decoder *dec = NULL;
    assert_int_equal(wire_decoder_new(&dec, max), 0);
    assert_non_null(dec);
    assert_int_equal(wire_decoder_status(dec), 0);
    assert_string_equal(wire_decoder_error(dec), "");
    return dec;
}

/* Feeds `frame` whole and expects the decoder to fail with `code`, its text
 * containing `text`; then checks the failure sticks. */
static void expect_failure(const uint8_t *bytes, size_t len, size_t max, int code, const char *text)
{
    struct wire_decoder *dec = new_decoder(max);
    struct wire_msg m;
    assert_int_equal(wire_decoder_feed(dec, bytes, len), 0);
    int rc = wire_decoder_next(dec, &m);
    if (rc != code)
        fail_msg("got %s (%s), want %s", saga_err_name(rc), wire_decoder_error(dec),
                 saga_err_name(code));
    assert_int_equal(m.type, WIRE_NONE);
    if (strstr(wire_decoder_error(dec), text) == NULL)
        fail_msg("error text \"%s\" lacks \"%s\"", wire_decoder_error(dec), text);
    /* failed for good: every call says so, nothing is buffered */
    assert_int_equal(wire_decoder_status(dec), code);
    assert_int_equal(wire_decoder_next(dec, &m), code);
    assert_int_equal(wire_decoder_feed(dec, "x", 1), code);
    uint8_t *area = (uint8_t *)1;
    size_t avail = 1;
    assert_int_equal(wire_decoder_space(dec, 16, &area, &avail), code);
    assert_null(area);
    assert_int_equal(avail, 0);
    wire_decoder_commit(dec, 5);
    assert_int_equal(wire_decoder_buffered(dec), 0);
    wire_decoder_free(&dec);
}

static void expect_body_failure(const struct pbw *body, int code, const char *text)
{
    struct pbw frame = {.len = 0};
    pbw_frame(&frame, body);
    expect_failure(frame.data, frame.len, 0, code, text);
}

static void test_partial_frames(void **state)
{
    (void)state;
    struct wire_msg m;
    sample_msg(WIRE_COMMAND, &m);
    struct wire_buf buf = {0};
    assert_int_equal(wire_encode(&m, &buf, 0), 0);

    /* every split point: header split, body split */
    for (size_t cut = 1; cut < buf.len; cut++) {
        struct wire_decoder *dec = new_decoder(0);
        struct wire_msg got;
        assert_int_equal(wire_decoder_feed(dec, buf.data, cut), 0);
        assert_int_equal(wire_decoder_next(dec, &got), SAGA_EAGAIN);
        assert_int_equal(got.type, WIRE_NONE);
        assert_int_equal(wire_decoder_buffered(dec), cut);
        assert_int_equal(wire_decoder_feed(dec, buf.data + cut, buf.len - cut), 0);
        assert_int_equal(wire_decoder_next(dec, &got), 0);
        expect_sample(&got, WIRE_COMMAND);
        assert_int_equal(wire_decoder_next(dec, &got), SAGA_EAGAIN);
        wire_decoder_free(&dec);
    }
    wire_buf_free(&buf);
}

static void test_one_byte_at_a_time(void **state)
{
    (void)state;
    struct wire_buf buf = {0};
    encode_all_samples(&buf);
    struct wire_decoder *dec = new_decoder(0);
    int next_type = WIRE_NONE + 1;
    for (size_t i = 0; i < buf.len; i++) {
        assert_int_equal(wire_decoder_feed(dec, buf.data + i, 1), 0);
        struct wire_msg got;
        int rc;
        while ((rc = wire_decoder_next(dec, &got)) == 0)
            expect_sample(&got, (enum wire_type)next_type++);
        assert_int_equal(rc, SAGA_EAGAIN);
    }
    assert_int_equal(next_type, WIRE_TYPE_COUNT);
    assert_int_equal(wire_decoder_buffered(dec), 0);
    wire_decoder_free(&dec);
    wire_buf_free(&buf);
}

static void test_many_frames_in_one_read(void **state)
{
    (void)state;
    struct wire_buf buf = {0};
    for (int i = 0; i < 50; i++)
        encode_all_samples(&buf);
    struct wire_decoder *dec = new_decoder(0);
    assert_int_equal(wire_decoder_feed(dec, buf.data, buf.len), 0);
    for (int i = 0; i < 50; i++) {
        for (int t = WIRE_NONE + 1; t < WIRE_TYPE_COUNT; t++) {
            struct wire_msg got;
            assert_int_equal(wire_decoder_next(dec, &got), 0);
            expect_sample(&got, (enum wire_type)t);
        }
    }
    struct wire_msg got;
    assert_int_equal(wire_decoder_next(dec, &got), SAGA_EAGAIN);
    wire_decoder_free(&dec);
    wire_buf_free(&buf);
}

/* Reads of odd sizes straight into the decoder's buffer, the way a socket would. */
static void test_zero_copy_reads(void **state)
{
    (void)state;
    struct wire_buf buf = {0};
    for (int i = 0; i < 20; i++)
        encode_all_samples(&buf);
    struct wire_decoder *dec = new_decoder(0);
    size_t off = 0, step = 1;
    int decoded = 0;
    while (off < buf.len) {
        uint8_t *area = NULL;
        size_t avail = 0;
        assert_int_equal(wire_decoder_space(dec, step, &area, &avail), 0);
        assert_non_null(area);
        assert_true(avail >= step);
        size_t n = buf.len - off < step ? buf.len - off : step;
        memcpy(area, buf.data + off, n);
        wire_decoder_commit(dec, n);
        off += n;
        step = step * 7 % 1013 + 1; /* 1, 8, 57, 400, ... a spread of sizes */
        struct wire_msg got;
        while (wire_decoder_next(dec, &got) == 0) {
            expect_sample(&got, (enum wire_type)(WIRE_NONE + 1 + decoded % (WIRE_TYPE_COUNT - 1)));
            decoded++;
        }
    }
    assert_int_equal(decoded, 20 * (WIRE_TYPE_COUNT - 1));
    wire_decoder_free(&dec);
    wire_buf_free(&buf);
}

/* A large frame: space() offers room for all of it once the header is in,
 * and the buffer is let go once the frame is decoded. */
static void test_large_frame(void **state)
{
    (void)state;
    size_t big = 1024 * 1024;
    uint8_t *input = malloc(big);
    assert_non_null(input);
    for (size_t i = 0; i < big; i++)
        input[i] = (uint8_t)(i * 31);
    struct wire_msg m = {.type = WIRE_START, .request_id = 5};
    m.start.definition = "big";
    m.start.input = input;
    m.start.input_len = big;
    struct wire_buf buf = {0};
    assert_int_equal(wire_encode(&m, &buf, 0), 0);

    struct wire_decoder *dec = new_decoder(0);
    uint8_t *area;
    size_t avail;
    assert_int_equal(wire_decoder_space(dec, 4, &area, &avail), 0);
    memcpy(area, buf.data, 4);
    wire_decoder_commit(dec, 4);
    assert_int_equal(wire_decoder_space(dec, 1, &area, &avail), 0);
    assert_true(avail >= buf.len - 4);
    memcpy(area, buf.data + 4, buf.len - 4);
    wire_decoder_commit(dec, buf.len - 4);
    struct wire_msg got;
    assert_int_equal(wire_decoder_next(dec, &got), 0);
    char why[128];
    assert_true(msg_equal(&m, &got, why, sizeof(why)));
    wire_msg_free_contents(&got);
    assert_int_equal(wire_decoder_buffered(dec), 0);
    wire_decoder_free(&dec);
    wire_buf_free(&buf);
    free(input);
}

static void test_oversize(void **state)
{
    (void)state;
    /* the header alone is enough to refuse: the body is never waited for */
    const uint8_t hdr[] = {0x00, 0x00, 0x01, 0x01}; /* 257 */
    expect_failure(hdr, sizeof(hdr), 256, SAGA_ETOOBIG, "frame of 257 bytes over the limit of 256");
    const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff};
    expect_failure(huge, sizeof(huge), 0, SAGA_ETOOBIG, "over the limit of 4194304");
    const uint8_t just_over[] = {0x00, 0x40, 0x00, 0x01}; /* 4 MiB + 1 */
    expect_failure(just_over, sizeof(just_over), 0, SAGA_ETOOBIG, "4194305");

    /* exactly at the limit decodes */
    struct wire_msg m;
    sample_msg(WIRE_REPLY, &m);
    struct wire_buf buf = {0};
    assert_int_equal(wire_encode(&m, &buf, 0), 0);
    size_t frame = buf.len - WIRE_FRAME_HEADER;
    struct wire_decoder *dec = new_decoder(frame);
    assert_int_equal(wire_decoder_feed(dec, buf.data, buf.len), 0);
    struct wire_msg got;
    assert_int_equal(wire_decoder_next(dec, &got), 0);
    expect_sample(&got, WIRE_REPLY);
    wire_decoder_free(&dec);
    /* and one byte less of limit does not */
    expect_failure(buf.data, buf.len, frame - 1, SAGA_ETOOBIG, "over the limit");
    wire_buf_free(&buf);
}

/* A frame within the size limit that protobuf-c would unpack into many times
 * its size: a Register of empty actions, two bytes each on the wire and a
 * struct and a pointer each in memory. Refused before it is built. */
static void test_expanding_frame(void **state)
{
    (void)state;
    size_t n = 2000000, inner = 2 * n;
    struct pbw env = {.len = 0}; /* the Envelope up to its Register's bytes */
    pbw_tag(&env, ENV_REGISTER, 2);
    pbw_varint(&env, inner);
    size_t len = env.len + inner;
    assert_true(len <= 4194304);
    uint8_t *buf = malloc(WIRE_FRAME_HEADER + len);
    assert_non_null(buf);
    buf[0] = (uint8_t)(len >> 24);
    buf[1] = (uint8_t)(len >> 16);
    buf[2] = (uint8_t)(len >> 8);
    buf[3] = (uint8_t)len;
    memcpy(buf + WIRE_FRAME_HEADER, env.data, env.len);
    uint8_t *p = buf + WIRE_FRAME_HEADER + env.len;
    for (size_t i = 0; i < n; i++) {
        *p++ = 1 << 3 | 2; /* Register.actions, length-delimited */
        *p++ = 0;          /* an empty Action */
    }
    expect_failure(buf, WIRE_FRAME_HEADER + len, 0, SAGA_ETOOBIG, "unpacks to more than");
    free(buf);

    /* The same shape with a few actions is an ordinary message (the
     * coordinator refuses empty action names later, in the session). */
    struct pbw reg = {.len = 0}, body = {.len = 0}, frame = {.len = 0};
    for (int i = 0; i < 3; i++)
        pbw_bytes(&reg, 1, NULL, 0);
    pbw_bytes(&body, ENV_REGISTER, reg.data, reg.len);
    pbw_frame(&frame, &body);
    struct wire_decoder *dec = new_decoder(0);
    struct wire_msg m;
    assert_int_equal(wire_decoder_feed(dec, frame.data, frame.len), 0);
    assert_int_equal(wire_decoder_next(dec, &m), 0);
    assert_int_equal(m.type, WIRE_REGISTER);
    assert_int_equal(m.reg.n_actions, 3);
    wire_msg_free_contents(&m);
    wire_decoder_free(&dec);
}

static void test_zero_length(void **state)
{
    (void)state;
    const uint8_t zero[] = {0, 0, 0, 0};
    expect_failure(zero, sizeof(zero), 0, SAGA_EPROTO, "zero-length frame");

    /* after a good frame too */
    struct wire_msg m;
    sample_msg(WIRE_PING, &m);
    struct wire_buf buf = {0};
    assert_int_equal(wire_encode(&m, &buf, 0), 0);
    assert_int_equal(wire_buf_reserve(&buf, 4), 0);
    memset(buf.data + buf.len, 0, 4);
    buf.len += 4;
    struct wire_decoder *dec = new_decoder(0);
    assert_int_equal(wire_decoder_feed(dec, buf.data, buf.len), 0);
    struct wire_msg got;
    assert_int_equal(wire_decoder_next(dec, &got), 0);
    expect_sample(&got, WIRE_PING);
    assert_int_equal(wire_decoder_next(dec, &got), SAGA_EPROTO);
    assert_int_equal(wire_decoder_next(dec, &got), SAGA_EPROTO);
    wire_decoder_free(&dec);
    wire_buf_free(&buf);
}

/* A frame cut short is only waited for; a frame whose protobuf is cut short
 * inside is refused. */
static void test_truncated(void **state)
{
    (void)state;
    struct wire_msg m;
    sample_msg(WIRE_SAGA_INFO, &m);
    struct wire_buf buf = {0};
    assert_int_equal(wire_encode(&m, &buf, 0), 0);

    struct wire_decoder *dec = new_decoder(0);
    assert_int_equal(wire_decoder_feed(dec, buf.data, buf.len - 1), 0);
    struct wire_msg got;
    assert_int_equal(wire_decoder_next(dec, &got), SAGA_EAGAIN);
    assert_int_equal(wire_decoder_next(dec, &got), SAGA_EAGAIN);
    assert_int_equal(wire_decoder_status(dec), 0);
    wire_decoder_free(&dec); /* frees the partial frame */

    /* the same bytes with a length prefix that ends the frame early */
    for (size_t keep = 1; keep < buf.len - WIRE_FRAME_HEADER; keep += 7) {
        uint8_t *copy = malloc(WIRE_FRAME_HEADER + keep);
        assert_non_null(copy);
        memcpy(copy + WIRE_FRAME_HEADER, buf.data + WIRE_FRAME_HEADER, keep);
        copy[0] = (uint8_t)(keep >> 24);
        copy[1] = (uint8_t)(keep >> 16);
        copy[2] = (uint8_t)(keep >> 8);
        copy[3] = (uint8_t)keep;
        expect_failure(copy, WIRE_FRAME_HEADER + keep, 0, SAGA_EPROTO, "");
        free(copy);
    }
    wire_buf_free(&buf);
}

static void test_garbage(void **state)
{
    (void)state;
    const uint8_t ff[] = {0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff};
    expect_failure(ff, sizeof(ff), 0, SAGA_EPROTO, "undecodable protobuf in a 5-byte frame");
    /* field 5 (command) sent as a varint instead of a message */
    const uint8_t wrong_wire_type[] = {0, 0, 0, 2, 0x28, 0x01};
    expect_failure(wrong_wire_type, sizeof(wrong_wire_type), 0, SAGA_EPROTO, "undecodable");
    /* a length-delimited field longer than the frame */
    const uint8_t overrun[] = {0, 0, 0, 3, 0x2a, 0x7f, 0x00};
    expect_failure(overrun, sizeof(overrun), 0, SAGA_EPROTO, "undecodable");
    /* field number 0 */
    const uint8_t field0[] = {0, 0, 0, 2, 0x00, 0x01};
    expect_failure(field0, sizeof(field0), 0, SAGA_EPROTO, "");

    /* pseudo-random streams in pseudo-random splits: any result but a crash
     * or a leak will do, and a failed decoder stays failed */
    uint32_t x = 12345;
    for (int round = 0; round < 2000; round++) {
        uint8_t bytes[256];
        size_t len = 1 + round % sizeof(bytes);
        for (size_t i = 0; i < len; i++) {
            x = x * 1103515245u + 12345u;
            bytes[i] = (uint8_t)(x >> 16);
        }
        if (round % 3 == 0) { /* a plausible length prefix */
            bytes[0] = bytes[1] = 0;
            bytes[2] = 0;
            bytes[3] = (uint8_t)(len > 4 ? len - 4 : 1);
        }
        struct wire_decoder *dec = new_decoder(1024);
        size_t off = 0;
        int failed = 0;
        while (off < len) {
            x = x * 1103515245u + 12345u;
            size_t n = 1 + (x >> 16) % 17;
            if (n > len - off)
                n = len - off;
            int frc = wire_decoder_feed(dec, bytes + off, n);
            off += n;
            struct wire_msg got;
            int rc;
            while ((rc = wire_decoder_next(dec, &got)) == 0)
                wire_msg_free_contents(&got);
            if (failed)
                assert_int_equal(frc, failed);
            if (rc != SAGA_EAGAIN) {
                assert_true(rc == SAGA_EPROTO || rc == SAGA_ETOOBIG);
                assert_string_not_equal(wire_decoder_error(dec), "");
                if (failed)
                    assert_int_equal(rc, failed);
                failed = rc;
            }
        }
        wire_decoder_free(&dec);
    }
}

static void test_unknown_body(void **state)
{
    (void)state;
    /* request id, then field 99 (a body from a newer protocol) */
    struct pbw body = {.len = 0};
    pbw_uint(&body, ENV_REQUEST_ID, 7);
    pbw_bytes(&body, 99, "\x08\x01", 2);
    expect_body_failure(&body, SAGA_EPROTO, "envelope with no known body (unknown field 99)");

    /* a request id and no body at all */
    body.len = 0;
    pbw_uint(&body, ENV_REQUEST_ID, 7);
    expect_body_failure(&body, SAGA_EPROTO, "envelope with no body");
}

static void test_enum_out_of_range(void **state)
{
    (void)state;
    struct pbw inner = {.len = 0}, body = {.len = 0};

    /* Reply with outcome 7 */
    pbw_bytes(&inner, 1, some_id, sizeof(some_id));
    pbw_uint(&inner, 3, SAGA_OP_ACTION);
    pbw_uint(&inner, 5, 7);
    pbw_bytes(&body, ENV_REPLY, inner.data, inner.len);
    expect_body_failure(&body, SAGA_EPROTO, "reply: outcome 7 out of range");

    /* Reply with no op */
    inner.len = body.len = 0;
    pbw_bytes(&inner, 1, some_id, sizeof(some_id));
    pbw_uint(&inner, 5, SAGA_OUTCOME_OK);
    pbw_bytes(&body, ENV_REPLY, inner.data, inner.len);
    expect_body_failure(&body, SAGA_EPROTO, "reply: op 0 out of range");

    /* Command with op 9 */
    inner.len = body.len = 0;
    pbw_bytes(&inner, 1, some_id, sizeof(some_id));
    pbw_uint(&inner, 7, 9);
    pbw_bytes(&body, ENV_COMMAND, inner.data, inner.len);
    expect_body_failure(&body, SAGA_EPROTO, "command: op 9 out of range");

    /* Command with a negative op (a 10-byte varint) */
    inner.len = body.len = 0;
    pbw_bytes(&inner, 1, some_id, sizeof(some_id));
    pbw_uint(&inner, 7, (uint64_t)(int64_t)-1);
    pbw_bytes(&body, ENV_COMMAND, inner.data, inner.len);
    expect_body_failure(&body, SAGA_EPROTO, "command: op -1 out of range");

    /* Hello with role 5 */
    inner.len = body.len = 0;
    pbw_uint(&inner, 5, 5);
    pbw_bytes(&body, ENV_HELLO, inner.data, inner.len);
    expect_body_failure(&body, SAGA_EPROTO, "hello: role 5 out of range");

    /* Register with an action handling op 6 */
    struct pbw action = {.len = 0};
    pbw_bytes(&action, 1, "x", 1);
    pbw_uint(&action, 2, SAGA_OP_ACTION);
    pbw_uint(&action, 2, 6);
    inner.len = body.len = 0;
    pbw_bytes(&inner, 1, action.data, action.len);
    pbw_bytes(&body, ENV_REGISTER, inner.data, inner.len);
    expect_body_failure(&body, SAGA_EPROTO, "register: op 6 out of range");

    /* Error with code 0 */
    inner.len = body.len = 0;
    pbw_bytes(&inner, 2, "oops", 4);
    pbw_bytes(&body, ENV_ERROR, inner.data, inner.len);
    expect_body_failure(&body, SAGA_EPROTO, "error: code 0");
}

static void test_bad_fields(void **state)
{
    (void)state;
    struct pbw inner = {.len = 0}, body = {.len = 0};

    /* Get with a 15-byte saga id */
    pbw_bytes(&inner, 1, some_id, 15);
    pbw_bytes(&body, ENV_GET, inner.data, inner.len);
    expect_body_failure(&body, SAGA_EPROTO, "get: saga_id is 15 bytes, want 16");

    /* Get with no saga id */
    body.len = 0;
    pbw_bytes(&body, ENV_GET, "", 0);
    expect_body_failure(&body, SAGA_EPROTO, "get: saga_id is 0 bytes");

    /* Command with a 17-byte saga id */
    uint8_t long_id[17] = {0};
    inner.len = body.len = 0;
    pbw_bytes(&inner, 1, long_id, sizeof(long_id));
    pbw_uint(&inner, 7, SAGA_OP_ACTION);
    pbw_bytes(&body, ENV_COMMAND, inner.data, inner.len);
    expect_body_failure(&body, SAGA_EPROTO, "command: saga_id is 17 bytes");

    /* Start naming no definition */
    inner.len = body.len = 0;
    pbw_bytes(&inner, 3, "in", 2);
    pbw_bytes(&body, ENV_START, inner.data, inner.len);
    expect_body_failure(&body, SAGA_EPROTO, "start: no definition");
}

/* A peer on a newer protocol adds fields: they are skipped, the rest decodes. */
static void test_unknown_fields_ignored(void **state)
{
    (void)state;
    /* Ping carrying an unknown varint, fixed64 and string besides its nonce,
     * in an envelope with an unknown field of its own before the body */
    struct pbw inner = {.len = 0}, body = {.len = 0}, frame = {.len = 0};
    pbw_uint(&inner, 9, 12345);
    pbw_tag(&inner, 10, 1);
    pbw_raw(&inner, "\1\2\3\4\5\6\7\x08", 8);
    pbw_uint(&inner, 1, 77);
    pbw_bytes(&inner, 11, "future", 6);
    pbw_uint(&body, ENV_REQUEST_ID, 42);
    pbw_bytes(&body, 500, "ignored", 7);
    pbw_bytes(&body, ENV_PING, inner.data, inner.len);
    pbw_frame(&frame, &body);

    struct wire_decoder *dec = new_decoder(0);
    assert_int_equal(wire_decoder_feed(dec, frame.data, frame.len), 0);
    struct wire_msg got;
    assert_int_equal(wire_decoder_next(dec, &got), 0);
    assert_int_equal(got.type, WIRE_PING);
    assert_int_equal(got.request_id, 42);
    assert_int_equal(got.ping.nonce, 77);
    wire_msg_free_contents(&got);

    /* a whole sample Command with an unknown field appended to the envelope */
    struct wire_msg m;
    sample_msg(WIRE_COMMAND, &m);
    struct wire_buf buf = {0};
    assert_int_equal(wire_encode(&m, &buf, 0), 0);
    struct pbw extra = {.len = 0};
    pbw_bytes(&extra, 4000, "x", 1);
    pbw_uint(&extra, 4001, 1);
    assert_int_equal(wire_buf_reserve(&buf, extra.len), 0);
    memcpy(buf.data + buf.len, extra.data, extra.len);
    buf.len += extra.len;
    size_t len = buf.len - WIRE_FRAME_HEADER;
    buf.data[0] = (uint8_t)(len >> 24);
    buf.data[1] = (uint8_t)(len >> 16);
    buf.data[2] = (uint8_t)(len >> 8);
    buf.data[3] = (uint8_t)len;
    assert_int_equal(wire_decoder_feed(dec, buf.data, buf.len), 0);
    assert_int_equal(wire_decoder_next(dec, &got), 0);
    expect_sample(&got, WIRE_COMMAND);
    assert_int_equal(wire_decoder_next(dec, &got), SAGA_EAGAIN);
    wire_decoder_free(&dec);
    wire_buf_free(&buf);
}

/* A good frame before a bad one still comes out; the bad one stops the rest. */
static void test_error_after_good_frames(void **state)
{
    (void)state;
    struct wire_buf buf = {0};
    struct wire_msg m;
    sample_msg(WIRE_HELLO, &m);
    assert_int_equal(wire_encode(&m, &buf, 0), 0);
    const uint8_t bad[] = {0, 0, 0, 3, 0xff, 0xff, 0xff};
    assert_int_equal(wire_buf_reserve(&buf, sizeof(bad)), 0);
    memcpy(buf.data + buf.len, bad, sizeof(bad));
    buf.len += sizeof(bad);
    sample_msg(WIRE_PING, &m);
    assert_int_equal(wire_encode(&m, &buf, 0), 0);

    struct wire_decoder *dec = new_decoder(0);
    assert_int_equal(wire_decoder_feed(dec, buf.data, buf.len), 0);
    struct wire_msg got;
    assert_int_equal(wire_decoder_next(dec, &got), 0);
    expect_sample(&got, WIRE_HELLO);
    assert_int_equal(wire_decoder_next(dec, &got), SAGA_EPROTO);
    assert_int_equal(wire_decoder_next(dec, &got), SAGA_EPROTO);
    assert_int_equal(got.type, WIRE_NONE);
    wire_decoder_free(&dec);
    wire_decoder_free(&dec); /* NULL now: a no-op */
    wire_decoder_free(NULL);
    wire_buf_free(&buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partial_frames),
        cmocka_unit_test(test_one_byte_at_a_time),
        cmocka_unit_test(test_many_frames_in_one_read),
        cmocka_unit_test(test_zero_copy_reads),
        cmocka_unit_test(test_large_frame),
        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_expanding_frame),
        cmocka_unit_test(test_zero_length),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_unknown_body),
        cmocka_unit_test(test_enum_out_of_range),
        cmocka_unit_test(test_bad_fields),
        cmocka_unit_test(test_unknown_fields_ignored),
        cmocka_unit_test(test_error_after_good_frames),
    };
    return cmocka_run_group_tests_name("wire_decoder", tests, NULL, NULL);
}
