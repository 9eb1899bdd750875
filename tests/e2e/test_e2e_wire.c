/* End to end on raw sockets (frames from the codec): bad input gets its fatal
 * Error while sagas go on; see README.md. Links saga_wire, never the SDK. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "saga/error.h"
#include "wire/codec.h"

#define MAX_FRAME   65536
#define MAX_PAYLOAD 1024
#define IO_MS       8000

/* ---- a raw connection ---------------------------------------------------------------------- */

struct raw {
    int fd;
    struct wire_decoder *dec;
    uint64_t next_id;
    int eof;
};

static void raw_close(void *arg)
{
    struct raw *r = arg;
    if (r->fd >= 0)
        close(r->fd);
    wire_decoder_free(&r->dec);
    free(r);
}

static struct raw *raw_open(struct e2e *h, const char *addr)
{
    struct raw *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->next_id = 1;
    assert_int_equal(wire_decoder_new(&r->dec, 0), 0);
    char host[64];
    const char *colon = strrchr(addr, ':');
    assert_non_null(colon);
    snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)strtoul(colon + 1, NULL, 10))};
    assert_int_equal(inet_pton(AF_INET, host, &sa.sin_addr), 1);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(r->fd >= 0);
    assert_int_equal(connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    int one = 1;
    setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    e2e_on_teardown(h, raw_close, r);
    return r;
}

static void raw_write(struct raw *r, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = send(r->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

/* Sends `m` with the next request id; returns the id. */
static uint64_t raw_send(struct raw *r, struct wire_msg *m)
{
    struct wire_buf buf = {0};
    if (m->request_id == 0)
        m->request_id = r->next_id++;
    assert_int_equal(wire_encode(m, &buf, 0), 0);
    raw_write(r, buf.data, buf.len);
    wire_buf_free(&buf);
    return m->request_id;
}

/* The next message: 0 with *out set, 1 at end of stream (the peer closed),
 * 2 when nothing came within timeout_ms. */
static int raw_try_next(struct raw *r, struct wire_msg *out, unsigned timeout_ms)
{
    uint64_t until = e2e_now_ms() + timeout_ms;
    for (;;) {
        int rc = wire_decoder_next(r->dec, out);
        if (rc == 0)
            return 0;
        if (rc != SAGA_EAGAIN)
            fail_msg("the coordinator sent bytes the codec refuses: %s",
                     wire_decoder_error(r->dec));
        if (r->eof)
            return 1;
        uint64_t now = e2e_now_ms();
        if (now >= until)
            return 2;
        struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)(until - now));
        if (pr <= 0)
            continue;
        uint8_t buf[16384];
        ssize_t n = recv(r->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r->eof = 1; /* closed (or reset after the close) */
            continue;
        }
        assert_int_equal(wire_decoder_feed(r->dec, buf, (size_t)n), 0);
    }
}

/* The next message; 1 at end of stream. Fails the test after timeout_ms. */
static int raw_next(struct raw *r, struct wire_msg *out, unsigned timeout_ms)
{
    int rc = raw_try_next(r, out, timeout_ms);
    if (rc == 2)
        fail_msg("no frame from the coordinator within %u ms", timeout_ms);
    return rc;
}

/* Reads until the answer to `id` (Pings answered, other frames dropped). */
static void raw_answer(struct raw *r, uint64_t id, struct wire_msg *out)
{
    for (;;) {
        if (raw_next(r, out, IO_MS) != 0)
            fail_msg("connection closed while waiting for the answer to request %llu",
                     (unsigned long long)id);
        if (out->type == WIRE_PING) {
            struct wire_msg pong = {.request_id = out->request_id, .type = WIRE_PONG};
            pong.pong.nonce = out->ping.nonce;
            raw_send(r, &pong);
        } else if (out->request_id == id) {
            return;
        }
        wire_msg_free_contents(out);
    }
}

/* The connection ends with one fatal Error of `code` (request id 0), then EOF. */
static void raw_expect_fatal(struct raw *r, int code, const char *what)
{
    struct wire_msg m;
    int seen = 0;
    while (raw_next(r, &m, IO_MS) == 0) {
        if (m.type == WIRE_ERROR) {
            if (m.error.code != code || !m.error.fatal || m.request_id != 0)
                fail_msg("%s: got Error %s fatal=%d id=%llu \"%s\", want fatal %s", what,
                         saga_err_name(m.error.code), m.error.fatal,
                         (unsigned long long)m.request_id, m.error.message, saga_err_name(code));
            seen++;
        } else if (m.type != WIRE_PING) {
            fail_msg("%s: got %s before the fatal Error", what, wire_type_name(m.type));
        }
        wire_msg_free_contents(&m);
    }
    if (seen != 1)
        fail_msg("%s: the connection closed with %d Error frames, want one fatal %s", what, seen,
                 saga_err_name(code));
}

static void raw_hello(struct raw *r, enum wire_role role, const char *service, uint32_t version,
                      struct wire_msg *out)
{
    struct wire_msg m = {.type = WIRE_HELLO};
    m.hello.service = (char *)service;
    m.hello.instance_id = (char *)"raw-1";
    m.hello.protocol_version = version;
    m.hello.role = role;
    uint64_t id = raw_send(r, &m);
    struct wire_msg ok;
    raw_answer(r, id, &ok);
    if (ok.type != WIRE_HELLO_OK)
        fail_msg("Hello: got %s (%s)", wire_type_name(ok.type),
                 ok.type == WIRE_ERROR ? ok.error.message : "");
    if (out != NULL)
        *out = ok;
    else
        wire_msg_free_contents(&ok);
}

/* A client request; the answer's type must be `want`. */
static void raw_call(struct raw *r, struct wire_msg *m, enum wire_type want, struct wire_msg *out)
{
    uint64_t id = raw_send(r, m);
    raw_answer(r, id, out);
    if (out->type != want)
        fail_msg("%s: got %s %s (%s), want %s", wire_type_name(m->type), wire_type_name(out->type),
                 out->type == WIRE_ERROR ? saga_err_name(out->error.code) : "",
                 out->type == WIRE_ERROR ? out->error.message : "", wire_type_name(want));
}

/* ---- the world: sagad, a testpeer, a client, a saga running alongside ---------------------- */

struct world {
    struct e2e *h;
    struct e2e_proc *sagad;
    struct raw *client;
    uint8_t along[16];
};

static void define(struct raw *c, const char *json)
{
    struct wire_msg m = {.type = WIRE_DEFINE}, out;
    m.define.definition_json = (char *)json;
    raw_call(c, &m, WIRE_DEFINED, &out);
    wire_msg_free_contents(&out);
}

static void start(struct raw *c, const char *def, uint8_t id[16])
{
    struct wire_msg m = {.type = WIRE_START}, out;
    m.start.definition = (char *)def;
    m.start.input = (uint8_t *)"{}";
    m.start.input_len = 2;
    raw_call(c, &m, WIRE_STARTED, &out);
    memcpy(id, out.started.saga_id, 16);
    wire_msg_free_contents(&out);
}

/* Waits for the saga to settle; returns its SagaInfo (free its contents). */
static void wait_settled(struct raw *c, const uint8_t id[16], struct wire_msg *out)
{
    uint64_t until = e2e_now_ms() + 20000;
    for (;;) {
        struct wire_msg m = {.type = WIRE_WAIT};
        memcpy(m.wait.saga_id, id, 16);
        m.wait.timeout_ms = 2000;
        raw_call(c, &m, WIRE_SAGA_INFO, out);
        saga_status_t s = out->saga_info.status;
        if (saga_status_is_terminal(s) || s == SAGA_STATUS_STUCK)
            return;
        if (e2e_now_ms() > until)
            fail_msg("saga still %s after 20 s", saga_status_name(s));
        wire_msg_free_contents(out);
    }
}

/* `heartbeat`: NULL for a long one (the raw participant does not ping). */
static struct world world_begin_hb(void **state, const char *name, const char *heartbeat)
{
    struct world w = {0};
    w.h = e2e_begin(state, name, 0);
    w.sagad = e2e_sagad(
        w.h, &(struct e2e_sagad_opts){.heartbeat = heartbeat ? heartbeat : "10s",
                                      .extra = {"--max-frame", "65536", "--max-payload", "1024"}});
    e2e_peer(w.h, &(struct e2e_peer_opts){.coordinators = w.sagad->addr,
                                          .service = "svc",
                                          .on = {"slow=delay:800", "ok=ok", "wide=ok"}});
    w.client = raw_open(w.h, w.sagad->addr);
    raw_hello(w.client, WIRE_ROLE_CLIENT, "e2e-raw", WIRE_PROTOCOL_VERSION, NULL);
    define(w.client, "{\"name\": \"along\", \"version\": 1, \"steps\": ["
                     "{\"name\": \"slow\", \"service\": \"svc\", \"action\": \"slow\"},"
                     "{\"name\": \"ok\", \"service\": \"svc\", \"action\": \"ok\"}]}");
    start(w.client, "along", w.along);
    return w;
}

static struct world world_begin(void **state, const char *name)
{
    return world_begin_hb(state, name, NULL);
}

/* The saga started first completed, and a new connection still works. */
static void world_end(struct world *w)
{
    struct wire_msg info;
    wait_settled(w->client, w->along, &info);
    assert_int_equal(info.saga_info.status, SAGA_STATUS_COMPLETED);
    wire_msg_free_contents(&info);
    struct raw *again = raw_open(w->h, w->sagad->addr);
    raw_hello(again, WIRE_ROLE_CLIENT, "e2e-raw", WIRE_PROTOCOL_VERSION, NULL);
    uint8_t id[16];
    start(again, "along", id);
    wait_settled(again, id, &info);
    assert_int_equal(info.saga_info.status, SAGA_STATUS_COMPLETED);
    wire_msg_free_contents(&info);
    e2e_finish(w->h);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_bad_frames(void **state)
{
    struct world w = world_begin(state, "frames");

    /* Bytes that are no Envelope (a 5-byte frame of 0xff). */
    struct raw *r = raw_open(w.h, w.sagad->addr);
    raw_write(r, "\x00\x00\x00\x05\xff\xff\xff\xff\xff", 9);
    raw_expect_fatal(r, SAGA_EPROTO, "garbage frame");

    /* Not even frames: text, whose first four bytes read as a huge length. */
    r = raw_open(w.h, w.sagad->addr);
    raw_write(r, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    raw_expect_fatal(r, SAGA_ETOOBIG, "HTTP request");

    /* A zero-length frame. */
    r = raw_open(w.h, w.sagad->addr);
    raw_write(r, "\x00\x00\x00\x00", 4);
    raw_expect_fatal(r, SAGA_EPROTO, "empty frame");

    /* One byte over --max-frame, refused from the prefix alone (no body sent). */
    r = raw_open(w.h, w.sagad->addr);
    uint32_t big = htonl(MAX_FRAME + 1);
    raw_write(r, &big, 4);
    raw_expect_fatal(r, SAGA_ETOOBIG, "oversized frame");

    /* The same after a good handshake. */
    r = raw_open(w.h, w.sagad->addr);
    raw_hello(r, WIRE_ROLE_CLIENT, "e2e-raw", WIRE_PROTOCOL_VERSION, NULL);
    raw_write(r, &big, 4);
    raw_expect_fatal(r, SAGA_ETOOBIG, "oversized frame after Hello");

    /* An Envelope whose only body is field 99 (unknown to version 1). */
    r = raw_open(w.h, w.sagad->addr);
    raw_hello(r, WIRE_ROLE_CLIENT, "e2e-raw", WIRE_PROTOCOL_VERSION, NULL);
    raw_write(r, "\x00\x00\x00\x05\x08\x07\x9a\x06\x00", 9);
    raw_expect_fatal(r, SAGA_EPROTO, "unknown body");

    /* A body the Envelope knows, with a saga id of 3 bytes (Get, field 17). */
    r = raw_open(w.h, w.sagad->addr);
    raw_hello(r, WIRE_ROLE_CLIENT, "e2e-raw", WIRE_PROTOCOL_VERSION, NULL);
    raw_write(r, "\x00\x00\x00\x0a\x08\x07\x8a\x01\x05\x0a\x03\x01\x02\x03", 14);
    raw_expect_fatal(r, SAGA_EPROTO, "short saga id");

    /* A frame cut short, then the sender goes away: nothing to answer, no harm. */
    r = raw_open(w.h, w.sagad->addr);
    raw_write(r, "\x00\x00\x01\x00\x08", 5);
    shutdown(r->fd, SHUT_WR);
    struct wire_msg m;
    assert_int_equal(raw_next(r, &m, IO_MS), 1);

    e2e_log_wait(w.sagad, "event=conn.bad_frame", NULL, 7, 2000);
    world_end(&w);
}

static void test_bad_handshakes(void **state)
{
    struct world w = world_begin(state, "handshake");
    struct wire_msg m, ok;

    /* Protocol version 0: nothing this coordinator speaks. */
    struct raw *r = raw_open(w.h, w.sagad->addr);
    m = (struct wire_msg){.type = WIRE_HELLO};
    m.hello.service = (char *)"old";
    m.hello.instance_id = (char *)"old-1";
    m.hello.protocol_version = 0;
    m.hello.role = WIRE_ROLE_CLIENT;
    raw_send(r, &m);
    raw_expect_fatal(r, SAGA_EVERSION, "version 0");

    /* A newer peer gets the version both speak. */
    r = raw_open(w.h, w.sagad->addr);
    raw_hello(r, WIRE_ROLE_CLIENT, "new", 7, &ok);
    assert_int_equal(ok.hello_ok.protocol_version, WIRE_PROTOCOL_VERSION);
    assert_int_equal(ok.hello_ok.max_frame_bytes, MAX_FRAME);
    assert_int_equal(ok.hello_ok.max_payload_bytes, MAX_PAYLOAD);
    wire_msg_free_contents(&ok);

    /* A participant Hello without a service. */
    r = raw_open(w.h, w.sagad->addr);
    m = (struct wire_msg){.type = WIRE_HELLO};
    m.hello.instance_id = (char *)"nobody-1";
    m.hello.protocol_version = WIRE_PROTOCOL_VERSION;
    m.hello.role = WIRE_ROLE_PARTICIPANT;
    raw_send(r, &m);
    raw_expect_fatal(r, SAGA_EINVAL, "participant without service");

    /* A request before Hello. */
    r = raw_open(w.h, w.sagad->addr);
    m = (struct wire_msg){.type = WIRE_GET};
    memcpy(m.get.saga_id, w.along, 16);
    raw_send(r, &m);
    raw_expect_fatal(r, SAGA_EPROTO, "Get before Hello");

    /* Hello twice. */
    r = raw_open(w.h, w.sagad->addr);
    raw_hello(r, WIRE_ROLE_CLIENT, "twice", WIRE_PROTOCOL_VERSION, NULL);
    m = (struct wire_msg){.type = WIRE_HELLO};
    m.hello.service = (char *)"twice";
    m.hello.instance_id = (char *)"twice-1";
    m.hello.protocol_version = WIRE_PROTOCOL_VERSION;
    m.hello.role = WIRE_ROLE_CLIENT;
    raw_send(r, &m);
    raw_expect_fatal(r, SAGA_EPROTO, "second Hello");

    /* A client sending what only participants send. */
    r = raw_open(w.h, w.sagad->addr);
    raw_hello(r, WIRE_ROLE_CLIENT, "pretender", WIRE_PROTOCOL_VERSION, NULL);
    struct wire_action act = {.name = (char *)"x", .ops = WIRE_OP_BIT(SAGA_OP_ACTION)};
    m = (struct wire_msg){.type = WIRE_REGISTER};
    m.reg.actions = &act;
    m.reg.n_actions = 1;
    raw_send(r, &m);
    raw_expect_fatal(r, SAGA_EPROTO, "Register from a client");

    /* A participant sending what only the coordinator sends. */
    r = raw_open(w.h, w.sagad->addr);
    raw_hello(r, WIRE_ROLE_PARTICIPANT, "odd", WIRE_PROTOCOL_VERSION, NULL);
    m = (struct wire_msg){.type = WIRE_HELLO_OK};
    m.hello_ok.coordinator_id = (char *)"me";
    m.hello_ok.protocol_version = WIRE_PROTOCOL_VERSION;
    raw_send(r, &m);
    raw_expect_fatal(r, SAGA_EPROTO, "HelloOk from a participant");

    /* A participant that never says Hello is dropped after three heartbeats
     * (10 s here): not waited for; the sweep is covered in test_e2e_saga's
     * heartbeat settings. */
    world_end(&w);
}

static void test_reply_over_payload(void **state)
{
    struct world w = world_begin(state, "bigreply");
    /* A participant of our own that answers with too much output. */
    struct raw *p = raw_open(w.h, w.sagad->addr);
    raw_hello(p, WIRE_ROLE_PARTICIPANT, "raw", WIRE_PROTOCOL_VERSION, NULL);
    struct wire_action act = {.name = (char *)"big",
                              .ops = WIRE_OP_BIT(SAGA_OP_ACTION) | WIRE_OP_BIT(SAGA_OP_COMPENSATE)};
    struct wire_msg m = {.type = WIRE_REGISTER}, out;
    m.reg.actions = &act;
    m.reg.n_actions = 1;
    uint64_t id = raw_send(p, &m);
    raw_answer(p, id, &out);
    assert_int_equal(out.type, WIRE_ACK);
    wire_msg_free_contents(&out);

    define(w.client, "{\"name\": \"bigout\", \"version\": 1, \"steps\": ["
                     "{\"name\": \"first\", \"service\": \"svc\", \"action\": \"ok\"},"
                     "{\"name\": \"big\", \"service\": \"raw\", \"action\": \"big\", "
                     "\"timeout\": \"2s\"}]}");
    uint8_t saga[16];
    start(w.client, "bigout", saga);

    /* Every attempt of the action is answered OK with one byte more than the
     * limit: the step ran, but its output cannot be kept. Each answer counts
     * as RETRY; once the attempts are spent the step fails, and since it may
     * have run it is compensated too, before the step ahead of it. */
    static uint8_t output[MAX_PAYLOAD + 1];
    memset(output, 'x', sizeof(output));
    int actions = 0, compensates = 0, toobig = 0;
    uint64_t until = e2e_now_ms() + 20000;
    while (compensates == 0) {
        if (e2e_now_ms() > until)
            fail_msg("no compensate after %d oversized answers", actions);
        struct wire_msg cmd;
        int rc = raw_try_next(p, &cmd, 500);
        if (rc == 1)
            fail_msg("the coordinator closed the participant's connection");
        if (rc == 2)
            continue;
        if (cmd.type == WIRE_ERROR) {
            assert_int_equal(cmd.error.code, SAGA_ETOOBIG);
            assert_false(cmd.error.fatal);
            assert_int_equal(cmd.request_id, 0);
            toobig++;
        } else if (cmd.type == WIRE_PING) {
            struct wire_msg pong = {.request_id = cmd.request_id, .type = WIRE_PONG};
            pong.pong.nonce = cmd.ping.nonce;
            raw_send(p, &pong);
        } else if (cmd.type == WIRE_COMMAND) {
            assert_memory_equal(cmd.command.saga_id, saga, 16);
            struct wire_msg rep = {.request_id = cmd.request_id, .type = WIRE_REPLY};
            memcpy(rep.reply.saga_id, cmd.command.saga_id, 16);
            rep.reply.step_index = cmd.command.step_index;
            rep.reply.op = cmd.command.op;
            rep.reply.attempt = cmd.command.attempt;
            rep.reply.outcome = SAGA_OUTCOME_OK;
            if (cmd.command.op == SAGA_OP_ACTION) {
                actions++;
                assert_int_equal(cmd.command.attempt, (uint32_t)actions);
                rep.reply.output = output;
                rep.reply.output_len = sizeof(output);
            } else {
                assert_int_equal(cmd.command.op, SAGA_OP_COMPENSATE);
                compensates++;
            }
            raw_send(p, &rep);
        } else {
            fail_msg("participant got %s", wire_type_name(cmd.type));
        }
        wire_msg_free_contents(&cmd);
    }
    assert_int_equal(actions, 3); /* the default retry policy: 3 attempts */

    struct wire_msg info;
    wait_settled(w.client, saga, &info);
    if (info.saga_info.status != SAGA_STATUS_COMPENSATED)
        fail_msg("saga is %s (%s), want compensated", saga_status_name(info.saga_info.status),
                 info.saga_info.error);
    assert_int_equal(info.saga_info.steps[0].status, SAGA_STEP_COMPENSATED);
    assert_int_equal(info.saga_info.steps[1].status, SAGA_STEP_COMPENSATED);
    assert_int_equal(info.saga_info.steps[1].attempts, 3);
    assert_int_equal(info.saga_info.steps[1].output_len, 0);
    assert_non_null(strstr(info.saga_info.error, "payload limit"));
    wire_msg_free_contents(&info);
    assert_true(toobig >= 3);
    e2e_log_wait(w.sagad, "event=reply.too_big", NULL, 1, 2000);
    world_end(&w);
}

static void test_silence(void **state)
{
    struct world w = world_begin_hb(state, "silence", "200ms");
    /* A connection that never says Hello is closed after three heartbeats. */
    struct raw *r = raw_open(w.h, w.sagad->addr);
    uint64_t t0 = e2e_now_ms();
    raw_expect_fatal(r, SAGA_ETIMEDOUT, "no Hello");
    assert_true(e2e_now_ms() - t0 >= 500);
    /* A client may sit idle: it is not swept. */
    r = raw_open(w.h, w.sagad->addr);
    raw_hello(r, WIRE_ROLE_CLIENT, "idle", WIRE_PROTOCOL_VERSION, NULL);
    e2e_sleep_ms(1000);
    struct wire_msg m = {.type = WIRE_GET}, out;
    memcpy(m.get.saga_id, w.along, 16);
    raw_call(r, &m, WIRE_SAGA_INFO, &out);
    wire_msg_free_contents(&out);
    /* A participant that stops pinging is dropped. */
    r = raw_open(w.h, w.sagad->addr);
    raw_hello(r, WIRE_ROLE_PARTICIPANT, "quiet", WIRE_PROTOCOL_VERSION, NULL);
    raw_expect_fatal(r, SAGA_ETIMEDOUT, "silent participant");
    world_end(&w);
}

/* 70 steps side by side with 1000 bytes of input each, then one after all
 * of them: its command (input and 70 outputs) cannot fit in a 64 KiB frame. */
static void test_too_large(void **state)
{
    struct world w = world_begin(state, "toolarge");
    char def[16384];
    size_t o =
        (size_t)snprintf(def, sizeof(def), "{\"name\": \"wide\", \"version\": 1, \"steps\": [");
    for (int i = 0; i < 70; i++)
        o += (size_t)snprintf(def + o, sizeof(def) - o,
                              "{\"name\": \"s%d\", \"service\": \"svc\", \"action\": \"wide\", "
                              "\"after\": []},",
                              i);
    o += (size_t)snprintf(def + o, sizeof(def) - o,
                          "{\"name\": \"join\", \"service\": \"svc\", \"action\": \"ok\", "
                          "\"after\": [");
    for (int i = 0; i < 70; i++)
        o += (size_t)snprintf(def + o, sizeof(def) - o, "%s\"s%d\"", i ? ", " : "", i);
    snprintf(def + o, sizeof(def) - o, "]}]}");
    define(w.client, def);
    uint8_t input[1000];
    memset(input, ' ', sizeof(input));
    input[0] = '"';
    input[sizeof(input) - 1] = '"';
    struct wire_msg m = {.type = WIRE_START}, out;
    m.start.definition = (char *)"wide";
    m.start.input = input;
    m.start.input_len = sizeof(input);
    raw_call(w.client, &m, WIRE_STARTED, &out);
    uint8_t id[16];
    memcpy(id, out.started.saga_id, 16);
    wire_msg_free_contents(&out);

    /* Settles: the join cannot be sent, so it fails and the rest is undone.
     * Its SagaInfo (70 outputs of 1000 bytes) is over the frame limit too:
     * List says how it ended, Get and Wait get a non-fatal TOOBIG. */
    uint64_t until = e2e_now_ms() + 20000;
    for (;;) {
        struct wire_msg l = {.type = WIRE_LIST};
        l.list.definition = (char *)"wide";
        raw_call(w.client, &l, WIRE_SAGA_LIST, &out);
        assert_int_equal(out.saga_list.n_sagas, 1);
        saga_status_t st = out.saga_list.sagas[0].status;
        wire_msg_free_contents(&out);
        if (st == SAGA_STATUS_COMPENSATED)
            break;
        if (saga_status_is_terminal(st) || st == SAGA_STATUS_STUCK || e2e_now_ms() > until)
            fail_msg("wide saga is %s, want compensated", saga_status_name(st));
        e2e_sleep_ms(100);
    }
    m = (struct wire_msg){.type = WIRE_GET};
    memcpy(m.get.saga_id, id, 16);
    raw_call(w.client, &m, WIRE_ERROR, &out);
    assert_int_equal(out.error.code, SAGA_ETOOBIG);
    assert_false(out.error.fatal);
    wire_msg_free_contents(&out);
    m = (struct wire_msg){.type = WIRE_WAIT};
    memcpy(m.wait.saga_id, id, 16);
    raw_call(w.client, &m, WIRE_ERROR, &out);
    assert_int_equal(out.error.code, SAGA_ETOOBIG);
    wire_msg_free_contents(&out);
    e2e_log_wait(w.sagad, "event=command.too_big", "step=join", 1, 1000);
    world_end(&w); /* the same connection goes on */
}

/* Starts with one idempotency key, pipelined on one connection and sent on
 * another at the same time: one saga. */
static void test_same_key_at_once(void **state)
{
    struct world w = world_begin(state, "samekey");
    struct raw *other = raw_open(w.h, w.sagad->addr);
    raw_hello(other, WIRE_ROLE_CLIENT, "other", WIRE_PROTOCOL_VERSION, NULL);
    uint64_t ids[6];
    struct raw *conn[6];
    for (int i = 0; i < 6; i++) {
        struct wire_msg m = {.type = WIRE_START};
        m.start.definition = (char *)"along";
        m.start.input = (uint8_t *)"{}";
        m.start.input_len = 2;
        m.start.idempotency_key = (char *)"the-one";
        conn[i] = i % 2 ? other : w.client;
        ids[i] = raw_send(conn[i], &m);
    }
    /* Answers on one connection may come in any order (the one that created
     * the saga commits at another time than those that found it): take each
     * connection's frames as they come and match them by request id. */
    uint8_t got[6][16];
    int answered[6] = {0};
    int created = 0;
    for (int c = 0; c < 2; c++) {
        struct raw *r = c ? other : w.client;
        for (int left = 3; left > 0;) {
            struct wire_msg out;
            if (raw_next(r, &out, IO_MS) != 0)
                fail_msg("connection %d closed with %d answers missing", c, left);
            if (out.type == WIRE_PING) {
                struct wire_msg pong = {.request_id = out.request_id, .type = WIRE_PONG};
                pong.pong.nonce = out.ping.nonce;
                raw_send(r, &pong);
                wire_msg_free_contents(&out);
                continue;
            }
            int i = -1;
            for (int k = 0; k < 6; k++) {
                if (conn[k] == r && ids[k] == out.request_id)
                    i = k;
            }
            if (i < 0 || answered[i])
                fail_msg("unexpected %s with request id %llu", wire_type_name(out.type),
                         (unsigned long long)out.request_id);
            if (out.type != WIRE_STARTED)
                fail_msg("start %d: %s %s", i, wire_type_name(out.type),
                         out.type == WIRE_ERROR ? out.error.message : "");
            memcpy(got[i], out.started.saga_id, 16);
            answered[i] = 1;
            created += !out.started.existed;
            wire_msg_free_contents(&out);
            left--;
        }
    }
    uint8_t first[16];
    memcpy(first, got[0], 16);
    for (int i = 1; i < 6; i++)
        assert_memory_equal(first, got[i], 16);
    assert_int_equal(created, 1);
    struct wire_msg info;
    wait_settled(w.client, first, &info);
    assert_int_equal(info.saga_info.status, SAGA_STATUS_COMPLETED);
    wire_msg_free_contents(&info);
    world_end(&w);
}

static enum wire_decision in_doubt(struct raw *p, const uint8_t id[16], uint32_t step)
{
    struct wire_msg m = {.type = WIRE_IN_DOUBT}, out;
    memcpy(m.in_doubt.saga_id, id, 16);
    m.in_doubt.step_index = step;
    uint64_t rid = raw_send(p, &m);
    raw_answer(p, rid, &out);
    if (out.type != WIRE_DECISION)
        fail_msg("InDoubt: got %s (%s)", wire_type_name(out.type),
                 out.type == WIRE_ERROR ? out.error.message : "");
    assert_memory_equal(out.decision.saga_id, id, 16);
    assert_int_equal(out.decision.step_index, step);
    enum wire_decision d = out.decision.decision;
    wire_msg_free_contents(&out);
    return d;
}

static void reply_ok(struct raw *p, const struct wire_msg *cmd)
{
    struct wire_msg rep = {.request_id = cmd->request_id, .type = WIRE_REPLY};
    memcpy(rep.reply.saga_id, cmd->command.saga_id, 16);
    rep.reply.step_index = cmd->command.step_index;
    rep.reply.op = cmd->command.op;
    rep.reply.attempt = cmd->command.attempt;
    rep.reply.outcome = SAGA_OUTCOME_OK;
    raw_send(p, &rep);
}

/* A 2pc participant of our own asks for decisions: pending while the saga
 * prepares, commit once it is decided (in memory and from the log), abort
 * for a saga nobody knows (presumed abort). Register's refusals on the way. */
static void test_in_doubt(void **state)
{
    struct world w = world_begin(state, "indoubt");
    struct raw *p = raw_open(w.h, w.sagad->addr);
    raw_hello(p, WIRE_ROLE_PARTICIPANT, "raw", WIRE_PROTOCOL_VERSION, NULL);
    /* Duplicate action names: refused, not fatal. */
    struct wire_action acts[2] = {
        {.name = (char *)"hold", .ops = WIRE_OP_BIT(SAGA_OP_PREPARE)},
        {.name = (char *)"hold", .ops = WIRE_OP_BIT(SAGA_OP_COMMIT)},
    };
    struct wire_msg m = {.type = WIRE_REGISTER}, out;
    m.reg.actions = acts;
    m.reg.n_actions = 2;
    uint64_t rid = raw_send(p, &m);
    raw_answer(p, rid, &out);
    assert_int_equal(out.type, WIRE_ERROR);
    assert_int_equal(out.error.code, SAGA_EINVAL);
    assert_false(out.error.fatal);
    wire_msg_free_contents(&out);
    acts[0].ops =
        WIRE_OP_BIT(SAGA_OP_PREPARE) | WIRE_OP_BIT(SAGA_OP_COMMIT) | WIRE_OP_BIT(SAGA_OP_ABORT);
    m = (struct wire_msg){.type = WIRE_REGISTER};
    m.reg.actions = acts;
    m.reg.n_actions = 1;
    rid = raw_send(p, &m);
    raw_answer(p, rid, &out);
    assert_int_equal(out.type, WIRE_ACK);
    wire_msg_free_contents(&out);

    uint8_t nobody[16] = {0x12, 0x34};
    assert_int_equal(in_doubt(p, nobody, 0), WIRE_DECISION_ABORT);

    define(w.client, "{\"name\": \"tpc\", \"version\": 1, \"mode\": \"2pc\", \"steps\": ["
                     "{\"name\": \"mine\", \"service\": \"raw\", \"action\": \"hold\"},"
                     "{\"name\": \"theirs\", \"service\": \"svc\", \"action\": \"ok\", "
                     "\"after\": []}]}");
    uint8_t id[16];
    start(w.client, "tpc", id);
    struct wire_msg cmd;
    assert_int_equal(raw_next(p, &cmd, IO_MS), 0);
    assert_int_equal(cmd.type, WIRE_COMMAND);
    assert_int_equal(cmd.command.op, SAGA_OP_PREPARE);
    /* Prepared here, not yet answered: no decision. */
    assert_int_equal(in_doubt(p, id, 0), WIRE_DECISION_PENDING);
    reply_ok(p, &cmd);
    wire_msg_free_contents(&cmd);
    assert_int_equal(raw_next(p, &cmd, IO_MS), 0);
    assert_int_equal(cmd.type, WIRE_COMMAND);
    assert_int_equal(cmd.command.op, SAGA_OP_COMMIT);
    assert_int_equal(in_doubt(p, id, 0), WIRE_DECISION_COMMIT);
    reply_ok(p, &cmd);
    wire_msg_free_contents(&cmd);
    struct wire_msg info;
    wait_settled(w.client, id, &info);
    assert_int_equal(info.saga_info.status, SAGA_STATUS_COMMITTED);
    wire_msg_free_contents(&info);
    /* Finished (read from the log now): still commit. */
    assert_int_equal(in_doubt(p, id, 0), WIRE_DECISION_COMMIT);
    world_end(&w);
}

/* Clients that go away with a Watch and a Wait outstanding: nothing is left
 * behind (the ASan build checks sagad's exit), and the saga goes on. */
static void test_client_gone(void **state)
{
    struct world w = world_begin(state, "gone");
    for (int i = 0; i < 3; i++) {
        struct raw *r = raw_open(w.h, w.sagad->addr);
        raw_hello(r, WIRE_ROLE_CLIENT, "gone", WIRE_PROTOCOL_VERSION, NULL);
        struct wire_msg m = {.type = i == 0 ? WIRE_WATCH : WIRE_WAIT};
        if (i == 0)
            memcpy(m.watch.saga_id, w.along, 16);
        else
            memcpy(m.wait.saga_id, w.along, 16);
        raw_send(r, &m);
        struct wire_msg ev;
        if (i == 0) { /* the first events of the watch arrive */
            assert_int_equal(raw_next(r, &ev, IO_MS), 0);
            assert_int_equal(ev.type, WIRE_EVENT);
            wire_msg_free_contents(&ev);
        }
        if (i == 2) /* half-closed: the answer has nowhere to go */
            shutdown(r->fd, SHUT_RDWR);
        close(r->fd);
        r->fd = -1;
    }
    world_end(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_bad_frames, e2e_teardown),
        cmocka_unit_test_teardown(test_bad_handshakes, e2e_teardown),
        cmocka_unit_test_teardown(test_reply_over_payload, e2e_teardown),
        cmocka_unit_test_teardown(test_silence, e2e_teardown),
        cmocka_unit_test_teardown(test_too_large, e2e_teardown),
        cmocka_unit_test_teardown(test_same_key_at_once, e2e_teardown),
        cmocka_unit_test_teardown(test_in_doubt, e2e_teardown),
        cmocka_unit_test_teardown(test_client_gone, e2e_teardown),
    };
    e2e_server_url();
    return cmocka_run_group_tests_name("e2e_wire", tests, NULL, NULL);
}
