/* Sample wire messages, a deep comparison and a protobuf byte writer, for the
 * codec's tests and fuzz target. Test code only; touches no codec internals. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire_samples.h"

static const uint8_t sample_id[WIRE_SAGA_ID_LEN] = {0x3f, 0x2a, 0x01, 0x00, 0x9c, 0xde, 0x4b, 0x11,
                                                    0x80, 0x07, 0xaa, 0x55, 0x00, 0xff, 0x10, 0x42};
static uint8_t sample_input[] = {'{', '"', 'q', '"', ':', '1', '}', 0x00, 0xff};
static uint8_t sample_output[] = {0x01, 0x00, 0x02};
static uint8_t sample_output2[] = {'o', 'k'};

static char *sample_peers[] = {"10.0.0.1:7420", "10.0.0.2:7420", "coord-3.internal:7420"};
static char *sample_actions[] = {"reserve", "release"};

static struct wire_action sample_reg_actions[] = {
    {.name = "reserve", .ops = WIRE_OP_BIT(SAGA_OP_ACTION) | WIRE_OP_BIT(SAGA_OP_COMPENSATE)},
    {.name = "hold",
     .ops =
         WIRE_OP_BIT(SAGA_OP_PREPARE) | WIRE_OP_BIT(SAGA_OP_COMMIT) | WIRE_OP_BIT(SAGA_OP_ABORT)},
};

static struct wire_step_output sample_deps[] = {
    {.step = "reserve", .output = sample_output, .output_len = sizeof(sample_output)},
    {.step = "charge", .output = sample_output2, .output_len = sizeof(sample_output2)},
};

static struct wire_step_info sample_steps[] = {
    {.name = "reserve",
     .service = "inventory",
     .action = "reserve",
     .status = SAGA_STEP_COMPENSATED,
     .attempts = 2,
     .compensate_attempts = 1,
     .error = "out of stock",
     .started_ms = 1700000000001ull,
     .finished_ms = 1700000000202ull,
     .output = sample_output,
     .output_len = sizeof(sample_output)},
    {.name = "charge",
     .service = "payment",
     .action = "charge",
     .status = SAGA_STEP_SKIPPED,
     .attempts = 7,
     .compensate_attempts = 3,
     .error = "card declined",
     .started_ms = 1700000000303ull,
     .finished_ms = 1700000000404ull,
     .output = sample_output2,
     .output_len = sizeof(sample_output2)},
};

static struct wire_event sample_events[] = {
    {.seq = 1,
     .at_ms = 1700000000000ull,
     .kind = "saga.started",
     .step = "",
     .attempt = 0,
     .detail = "by client"},
    {.seq = 2,
     .at_ms = 1700000000202ull,
     .kind = "step.failed",
     .step = "reserve",
     .attempt = 2,
     .detail = "out of stock"},
};

static struct wire_saga_summary sample_summaries[] = {
    {.definition = "checkout",
     .version = 3,
     .mode = WIRE_MODE_SAGA,
     .status = SAGA_STATUS_COMPENSATED,
     .error = "reserve failed",
     .created_ms = 1700000000000ull,
     .updated_ms = 1700000000500ull},
    {.definition = "transfer",
     .version = 1,
     .mode = WIRE_MODE_2PC,
     .status = SAGA_STATUS_COMMITTED,
     .error = "none really",
     .created_ms = 1700000001000ull,
     .updated_ms = 1700000001500ull},
};

static struct wire_instance sample_instances[] = {
    {.instance_id = "inv-1:4242",
     .coordinator_id = "coord-a",
     .actions = sample_actions,
     .n_actions = 2,
     .in_flight = 3,
     .max_in_flight = 64},
    {.instance_id = "inv-2:4343",
     .coordinator_id = "coord-b",
     .actions = sample_actions,
     .n_actions = 1,
     .in_flight = 9,
     .max_in_flight = 16},
};

static struct wire_service sample_services[] = {
    {.name = "inventory", .instances = sample_instances, .n_instances = 2},
    {.name = "payment", .instances = sample_instances + 1, .n_instances = 1},
};

void sample_msg(enum wire_type type, struct wire_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->request_id = 0x0123456789abcdefull + (uint64_t)type;
    switch (type) {
    case WIRE_HELLO:
        m->hello = (struct wire_hello){.service = "inventory",
                                       .instance_id = "inv-1:4242",
                                       .protocol_version = WIRE_PROTOCOL_VERSION,
                                       .auth_token = "s3cret",
                                       .role = WIRE_ROLE_PARTICIPANT};
        break;
    case WIRE_HELLO_OK:
        m->hello_ok = (struct wire_hello_ok){.coordinator_id = "coord-a",
                                             .peers = sample_peers,
                                             .n_peers = 3,
                                             .heartbeat_interval_ms = 5000,
                                             .max_frame_bytes = 4194304,
                                             .max_payload_bytes = 1048576,
                                             .protocol_version = 1};
        break;
    case WIRE_REGISTER:
        m->reg = (struct wire_register){
            .actions = sample_reg_actions, .n_actions = 2, .max_in_flight = 128};
        break;
    case WIRE_COMMAND:
        m->command = (struct wire_command){.definition = "checkout",
                                           .definition_version = 3,
                                           .step = "ship",
                                           .step_index = 2,
                                           .action = "ship",
                                           .op = SAGA_OP_COMPENSATE,
                                           .attempt = 4,
                                           .idempotency_key = "3f2a/2/compensate",
                                           .input = sample_input,
                                           .input_len = sizeof(sample_input),
                                           .deps = sample_deps,
                                           .n_deps = 2,
                                           .own_output = sample_output2,
                                           .own_output_len = sizeof(sample_output2),
                                           .timeout_ms = 2000};
        memcpy(m->command.saga_id, sample_id, WIRE_SAGA_ID_LEN);
        break;
    case WIRE_REPLY:
        m->reply = (struct wire_reply){.step_index = 2,
                                       .op = SAGA_OP_PREPARE,
                                       .attempt = 4,
                                       .outcome = SAGA_OUTCOME_RETRY,
                                       .output = sample_output,
                                       .output_len = sizeof(sample_output),
                                       .error = "lock timeout"};
        memcpy(m->reply.saga_id, sample_id, WIRE_SAGA_ID_LEN);
        break;
    case WIRE_PING:
        m->ping.nonce = 0xfeedfacecafebeefull;
        break;
    case WIRE_PONG:
        m->pong.nonce = 0xfeedfacecafebeefull;
        break;
    case WIRE_ERROR:
        m->error = (struct wire_error){.code = SAGA_ESTATE,
                                       .message = "held elsewhere",
                                       .fatal = true,
                                       .holder = "[::1]:7421"};
        break;
    case WIRE_IN_DOUBT:
        m->in_doubt.step_index = 5;
        memcpy(m->in_doubt.saga_id, sample_id, WIRE_SAGA_ID_LEN);
        break;
    case WIRE_DECISION:
        m->decision.step_index = 5;
        m->decision.decision = WIRE_DECISION_PENDING;
        memcpy(m->decision.saga_id, sample_id, WIRE_SAGA_ID_LEN);
        break;
    case WIRE_DEFINE:
        m->define.definition_json = "{\"name\":\"checkout\",\"steps\":[]}";
        break;
    case WIRE_DEFINED:
        m->defined = (struct wire_defined){
            .name = "checkout",
            .version = 3,
            .hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            .created = true};
        break;
    case WIRE_START:
        m->start = (struct wire_start){.definition = "checkout",
                                       .version = 3,
                                       .input = sample_input,
                                       .input_len = sizeof(sample_input),
                                       .idempotency_key = "order-1234"};
        break;
    case WIRE_STARTED:
        m->started.existed = true;
        memcpy(m->started.saga_id, sample_id, WIRE_SAGA_ID_LEN);
        break;
    case WIRE_GET:
        memcpy(m->get.saga_id, sample_id, WIRE_SAGA_ID_LEN);
        break;
    case WIRE_SAGA_INFO:
        m->saga_info = (struct wire_saga_info){.definition = "checkout",
                                               .version = 3,
                                               .mode = WIRE_MODE_2PC,
                                               .status = SAGA_STATUS_STUCK,
                                               .error = "compensation of ship failed",
                                               .created_ms = 1700000000000ull,
                                               .updated_ms = 1700000000999ull,
                                               .deadline_ms = 1700000030000ull,
                                               .input = sample_input,
                                               .input_len = sizeof(sample_input),
                                               .steps = sample_steps,
                                               .n_steps = 2,
                                               .events = sample_events,
                                               .n_events = 2};
        memcpy(m->saga_info.saga_id, sample_id, WIRE_SAGA_ID_LEN);
        break;
    case WIRE_WAIT:
        m->wait.timeout_ms = 30000;
        memcpy(m->wait.saga_id, sample_id, WIRE_SAGA_ID_LEN);
        break;
    case WIRE_LIST:
        m->list = (struct wire_list){.status = SAGA_STATUS_ABORTED,
                                     .definition = "checkout",
                                     .created_since_ms = 1699999999999ull,
                                     .limit = 50,
                                     .cursor = "opaque-cursor-1"};
        break;
    case WIRE_SAGA_LIST:
        m->saga_list = (struct wire_saga_list){
            .sagas = sample_summaries, .n_sagas = 2, .next_cursor = "opaque-cursor-2"};
        memcpy(sample_summaries[0].saga_id, sample_id, WIRE_SAGA_ID_LEN);
        memset(sample_summaries[1].saga_id, 0x77, WIRE_SAGA_ID_LEN);
        break;
    case WIRE_RETRY:
        m->retry.reason = "ticket 17: payment fixed";
        memcpy(m->retry.saga_id, sample_id, WIRE_SAGA_ID_LEN);
        break;
    case WIRE_ABORT:
        m->abort.reason = "customer cancelled";
        memcpy(m->abort.saga_id, sample_id, WIRE_SAGA_ID_LEN);
        break;
    case WIRE_RESOLVE:
        m->resolve.as = SAGA_STATUS_COMPENSATED;
        m->resolve.reason = "refunded by hand";
        memcpy(m->resolve.saga_id, sample_id, WIRE_SAGA_ID_LEN);
        break;
    case WIRE_SERVICE_LIST:
        m->service_list = (struct wire_service_list){.services = sample_services, .n_services = 2};
        break;
    case WIRE_WATCH:
        memcpy(m->watch.saga_id, sample_id, WIRE_SAGA_ID_LEN);
        break;
    case WIRE_EVENT:
        m->event = sample_events[1];
        break;
    case WIRE_ACK:
    case WIRE_SERVICES:
    case WIRE_NONE:
    case WIRE_TYPE_COUNT:
        break;
    }
}

void sample_start_inline(struct wire_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = WIRE_START;
    m->request_id = 99;
    m->start.definition_json = "{\"name\":\"inline\",\"steps\":[{\"name\":\"a\"}]}";
    m->start.input = sample_output;
    m->start.input_len = sizeof(sample_output);
}

/* ---- comparison ----------------------------------------------------------- */

struct cmp {
    char *why;
    size_t n;
    int ok;
};

static void differ(struct cmp *c, const char *what)
{
    if (c->ok)
        snprintf(c->why, c->n, "%s differs", what);
    c->ok = 0;
}

static void eq_u(struct cmp *c, const char *what, uint64_t a, uint64_t b)
{
    if (a != b)
        differ(c, what);
}

static void eq_s(struct cmp *c, const char *what, const char *a, const char *b)
{
    if (strcmp(a ? a : "", b ? b : "") != 0)
        differ(c, what);
}

static void eq_b(struct cmp *c, const char *what, const uint8_t *a, size_t alen, const uint8_t *b,
                 size_t blen)
{
    if (alen != blen || (alen > 0 && memcmp(a, b, alen) != 0))
        differ(c, what);
}

static void eq_id(struct cmp *c, const char *what, const uint8_t *a, const uint8_t *b)
{
    if (memcmp(a, b, WIRE_SAGA_ID_LEN) != 0)
        differ(c, what);
}

static void eq_event(struct cmp *c, const struct wire_event *a, const struct wire_event *b)
{
    eq_u(c, "event.seq", a->seq, b->seq);
    eq_u(c, "event.at_ms", a->at_ms, b->at_ms);
    eq_s(c, "event.kind", a->kind, b->kind);
    eq_s(c, "event.step", a->step, b->step);
    eq_u(c, "event.attempt", a->attempt, b->attempt);
    eq_s(c, "event.detail", a->detail, b->detail);
}

static void eq_saga_info(struct cmp *c, const struct wire_saga_info *a,
                         const struct wire_saga_info *b)
{
    eq_id(c, "saga_info.saga_id", a->saga_id, b->saga_id);
    eq_s(c, "saga_info.definition", a->definition, b->definition);
    eq_u(c, "saga_info.version", a->version, b->version);
    eq_u(c, "saga_info.mode", a->mode, b->mode);
    eq_u(c, "saga_info.status", a->status, b->status);
    eq_s(c, "saga_info.error", a->error, b->error);
    eq_u(c, "saga_info.created_ms", a->created_ms, b->created_ms);
    eq_u(c, "saga_info.updated_ms", a->updated_ms, b->updated_ms);
    eq_u(c, "saga_info.deadline_ms", a->deadline_ms, b->deadline_ms);
    eq_b(c, "saga_info.input", a->input, a->input_len, b->input, b->input_len);
    eq_u(c, "saga_info.n_steps", a->n_steps, b->n_steps);
    for (size_t i = 0; c->ok && i < a->n_steps; i++) {
        const struct wire_step_info *x = &a->steps[i], *y = &b->steps[i];
        eq_s(c, "step.name", x->name, y->name);
        eq_s(c, "step.service", x->service, y->service);
        eq_s(c, "step.action", x->action, y->action);
        eq_u(c, "step.status", x->status, y->status);
        eq_u(c, "step.attempts", x->attempts, y->attempts);
        eq_u(c, "step.compensate_attempts", x->compensate_attempts, y->compensate_attempts);
        eq_s(c, "step.error", x->error, y->error);
        eq_u(c, "step.started_ms", x->started_ms, y->started_ms);
        eq_u(c, "step.finished_ms", x->finished_ms, y->finished_ms);
        eq_b(c, "step.output", x->output, x->output_len, y->output, y->output_len);
    }
    eq_u(c, "saga_info.n_events", a->n_events, b->n_events);
    for (size_t i = 0; c->ok && i < a->n_events; i++)
        eq_event(c, &a->events[i], &b->events[i]);
}

static void eq_service_list(struct cmp *c, const struct wire_service_list *a,
                            const struct wire_service_list *b)
{
    eq_u(c, "service_list.n_services", a->n_services, b->n_services);
    for (size_t i = 0; c->ok && i < a->n_services; i++) {
        const struct wire_service *x = &a->services[i], *y = &b->services[i];
        eq_s(c, "service.name", x->name, y->name);
        eq_u(c, "service.n_instances", x->n_instances, y->n_instances);
        for (size_t j = 0; c->ok && j < x->n_instances; j++) {
            const struct wire_instance *p = &x->instances[j], *q = &y->instances[j];
            eq_s(c, "instance.instance_id", p->instance_id, q->instance_id);
            eq_s(c, "instance.coordinator_id", p->coordinator_id, q->coordinator_id);
            eq_u(c, "instance.in_flight", p->in_flight, q->in_flight);
            eq_u(c, "instance.max_in_flight", p->max_in_flight, q->max_in_flight);
            eq_u(c, "instance.n_actions", p->n_actions, q->n_actions);
            for (size_t k = 0; c->ok && k < p->n_actions; k++)
                eq_s(c, "instance.actions[]", p->actions[k], q->actions[k]);
        }
    }
}

static void eq_body(struct cmp *c, const struct wire_msg *a, const struct wire_msg *b)
{
    switch (a->type) {
    case WIRE_HELLO:
        eq_s(c, "hello.service", a->hello.service, b->hello.service);
        eq_s(c, "hello.instance_id", a->hello.instance_id, b->hello.instance_id);
        eq_u(c, "hello.protocol_version", a->hello.protocol_version, b->hello.protocol_version);
        eq_s(c, "hello.auth_token", a->hello.auth_token, b->hello.auth_token);
        eq_u(c, "hello.role", a->hello.role, b->hello.role);
        break;
    case WIRE_HELLO_OK:
        eq_s(c, "hello_ok.coordinator_id", a->hello_ok.coordinator_id, b->hello_ok.coordinator_id);
        eq_u(c, "hello_ok.n_peers", a->hello_ok.n_peers, b->hello_ok.n_peers);
        for (size_t i = 0; c->ok && i < a->hello_ok.n_peers; i++)
            eq_s(c, "hello_ok.peers[]", a->hello_ok.peers[i], b->hello_ok.peers[i]);
        eq_u(c, "hello_ok.heartbeat_interval_ms", a->hello_ok.heartbeat_interval_ms,
             b->hello_ok.heartbeat_interval_ms);
        eq_u(c, "hello_ok.max_frame_bytes", a->hello_ok.max_frame_bytes,
             b->hello_ok.max_frame_bytes);
        eq_u(c, "hello_ok.max_payload_bytes", a->hello_ok.max_payload_bytes,
             b->hello_ok.max_payload_bytes);
        eq_u(c, "hello_ok.protocol_version", a->hello_ok.protocol_version,
             b->hello_ok.protocol_version);
        break;
    case WIRE_REGISTER:
        eq_u(c, "register.max_in_flight", a->reg.max_in_flight, b->reg.max_in_flight);
        eq_u(c, "register.n_actions", a->reg.n_actions, b->reg.n_actions);
        for (size_t i = 0; c->ok && i < a->reg.n_actions; i++) {
            eq_s(c, "action.name", a->reg.actions[i].name, b->reg.actions[i].name);
            eq_u(c, "action.ops", a->reg.actions[i].ops, b->reg.actions[i].ops);
        }
        break;
    case WIRE_COMMAND: {
        const struct wire_command *x = &a->command, *y = &b->command;
        eq_id(c, "command.saga_id", x->saga_id, y->saga_id);
        eq_s(c, "command.definition", x->definition, y->definition);
        eq_u(c, "command.definition_version", x->definition_version, y->definition_version);
        eq_s(c, "command.step", x->step, y->step);
        eq_u(c, "command.step_index", x->step_index, y->step_index);
        eq_s(c, "command.action", x->action, y->action);
        eq_u(c, "command.op", x->op, y->op);
        eq_u(c, "command.attempt", x->attempt, y->attempt);
        eq_s(c, "command.idempotency_key", x->idempotency_key, y->idempotency_key);
        eq_b(c, "command.input", x->input, x->input_len, y->input, y->input_len);
        eq_b(c, "command.own_output", x->own_output, x->own_output_len, y->own_output,
             y->own_output_len);
        eq_u(c, "command.timeout_ms", x->timeout_ms, y->timeout_ms);
        eq_u(c, "command.n_deps", x->n_deps, y->n_deps);
        for (size_t i = 0; c->ok && i < x->n_deps; i++) {
            eq_s(c, "dep.step", x->deps[i].step, y->deps[i].step);
            eq_b(c, "dep.output", x->deps[i].output, x->deps[i].output_len, y->deps[i].output,
                 y->deps[i].output_len);
        }
        break;
    }
    case WIRE_REPLY: {
        const struct wire_reply *x = &a->reply, *y = &b->reply;
        eq_id(c, "reply.saga_id", x->saga_id, y->saga_id);
        eq_u(c, "reply.step_index", x->step_index, y->step_index);
        eq_u(c, "reply.op", x->op, y->op);
        eq_u(c, "reply.attempt", x->attempt, y->attempt);
        eq_u(c, "reply.outcome", x->outcome, y->outcome);
        eq_b(c, "reply.output", x->output, x->output_len, y->output, y->output_len);
        eq_s(c, "reply.error", x->error, y->error);
        break;
    }
    case WIRE_PING:
        eq_u(c, "ping.nonce", a->ping.nonce, b->ping.nonce);
        break;
    case WIRE_PONG:
        eq_u(c, "pong.nonce", a->pong.nonce, b->pong.nonce);
        break;
    case WIRE_ERROR:
        eq_u(c, "error.code", (uint64_t)(int64_t)a->error.code, (uint64_t)(int64_t)b->error.code);
        eq_s(c, "error.message", a->error.message, b->error.message);
        eq_u(c, "error.fatal", a->error.fatal, b->error.fatal);
        eq_s(c, "error.holder", a->error.holder, b->error.holder);
        break;
    case WIRE_IN_DOUBT:
        eq_id(c, "in_doubt.saga_id", a->in_doubt.saga_id, b->in_doubt.saga_id);
        eq_u(c, "in_doubt.step_index", a->in_doubt.step_index, b->in_doubt.step_index);
        break;
    case WIRE_DECISION:
        eq_id(c, "decision.saga_id", a->decision.saga_id, b->decision.saga_id);
        eq_u(c, "decision.step_index", a->decision.step_index, b->decision.step_index);
        eq_u(c, "decision.decision", a->decision.decision, b->decision.decision);
        break;
    case WIRE_DEFINE:
        eq_s(c, "define.definition_json", a->define.definition_json, b->define.definition_json);
        break;
    case WIRE_DEFINED:
        eq_s(c, "defined.name", a->defined.name, b->defined.name);
        eq_u(c, "defined.version", a->defined.version, b->defined.version);
        eq_s(c, "defined.hash", a->defined.hash, b->defined.hash);
        eq_u(c, "defined.created", a->defined.created, b->defined.created);
        break;
    case WIRE_START:
        /* NULL and set differ here: they say which definition alternative */
        if ((a->start.definition == NULL) != (b->start.definition == NULL) ||
            (a->start.definition_json == NULL) != (b->start.definition_json == NULL))
            differ(c, "start alternative");
        eq_s(c, "start.definition", a->start.definition, b->start.definition);
        eq_u(c, "start.version", a->start.version, b->start.version);
        eq_s(c, "start.definition_json", a->start.definition_json, b->start.definition_json);
        eq_b(c, "start.input", a->start.input, a->start.input_len, b->start.input,
             b->start.input_len);
        eq_s(c, "start.idempotency_key", a->start.idempotency_key, b->start.idempotency_key);
        break;
    case WIRE_STARTED:
        eq_id(c, "started.saga_id", a->started.saga_id, b->started.saga_id);
        eq_u(c, "started.existed", a->started.existed, b->started.existed);
        break;
    case WIRE_GET:
        eq_id(c, "get.saga_id", a->get.saga_id, b->get.saga_id);
        break;
    case WIRE_SAGA_INFO:
        eq_saga_info(c, &a->saga_info, &b->saga_info);
        break;
    case WIRE_WAIT:
        eq_id(c, "wait.saga_id", a->wait.saga_id, b->wait.saga_id);
        eq_u(c, "wait.timeout_ms", a->wait.timeout_ms, b->wait.timeout_ms);
        break;
    case WIRE_LIST:
        eq_u(c, "list.status", a->list.status, b->list.status);
        eq_s(c, "list.definition", a->list.definition, b->list.definition);
        eq_u(c, "list.created_since_ms", a->list.created_since_ms, b->list.created_since_ms);
        eq_u(c, "list.limit", a->list.limit, b->list.limit);
        eq_s(c, "list.cursor", a->list.cursor, b->list.cursor);
        break;
    case WIRE_SAGA_LIST:
        eq_s(c, "saga_list.next_cursor", a->saga_list.next_cursor, b->saga_list.next_cursor);
        eq_u(c, "saga_list.n_sagas", a->saga_list.n_sagas, b->saga_list.n_sagas);
        for (size_t i = 0; c->ok && i < a->saga_list.n_sagas; i++) {
            const struct wire_saga_summary *x = &a->saga_list.sagas[i];
            const struct wire_saga_summary *y = &b->saga_list.sagas[i];
            eq_id(c, "summary.saga_id", x->saga_id, y->saga_id);
            eq_s(c, "summary.definition", x->definition, y->definition);
            eq_u(c, "summary.version", x->version, y->version);
            eq_u(c, "summary.mode", x->mode, y->mode);
            eq_u(c, "summary.status", x->status, y->status);
            eq_s(c, "summary.error", x->error, y->error);
            eq_u(c, "summary.created_ms", x->created_ms, y->created_ms);
            eq_u(c, "summary.updated_ms", x->updated_ms, y->updated_ms);
        }
        break;
    case WIRE_RETRY:
        eq_id(c, "retry.saga_id", a->retry.saga_id, b->retry.saga_id);
        eq_s(c, "retry.reason", a->retry.reason, b->retry.reason);
        break;
    case WIRE_ABORT:
        eq_id(c, "abort.saga_id", a->abort.saga_id, b->abort.saga_id);
        eq_s(c, "abort.reason", a->abort.reason, b->abort.reason);
        break;
    case WIRE_RESOLVE:
        eq_id(c, "resolve.saga_id", a->resolve.saga_id, b->resolve.saga_id);
        eq_u(c, "resolve.as", a->resolve.as, b->resolve.as);
        eq_s(c, "resolve.reason", a->resolve.reason, b->resolve.reason);
        break;
    case WIRE_SERVICE_LIST:
        eq_service_list(c, &a->service_list, &b->service_list);
        break;
    case WIRE_WATCH:
        eq_id(c, "watch.saga_id", a->watch.saga_id, b->watch.saga_id);
        break;
    case WIRE_EVENT:
        eq_event(c, &a->event, &b->event);
        break;
    case WIRE_ACK:
    case WIRE_SERVICES:
    case WIRE_NONE:
    case WIRE_TYPE_COUNT:
        break;
    }
}

int msg_equal(const struct wire_msg *a, const struct wire_msg *b, char *why, size_t n)
{
    struct cmp c = {.why = why, .n = n, .ok = 1};
    if (n > 0)
        why[0] = '\0';
    eq_u(&c, "request_id", a->request_id, b->request_id);
    eq_u(&c, "type", a->type, b->type);
    if (c.ok)
        eq_body(&c, a, b);
    return c.ok;
}

/* ---- protobuf writer ------------------------------------------------------ */

static void pbw_room(struct pbw *w, size_t n)
{
    if (n > sizeof(w->data) - w->len) {
        fprintf(stderr, "pbw: test buffer overflow\n");
        abort();
    }
}

void pbw_raw(struct pbw *w, const void *p, size_t n)
{
    pbw_room(w, n);
    if (n > 0)
        memcpy(w->data + w->len, p, n);
    w->len += n;
}

void pbw_varint(struct pbw *w, uint64_t v)
{
    do {
        uint8_t byte = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v != 0)
            byte |= 0x80;
        pbw_raw(w, &byte, 1);
    } while (v != 0);
}

void pbw_tag(struct pbw *w, uint32_t field, uint32_t wire_type)
{
    pbw_varint(w, (uint64_t)field << 3 | wire_type);
}

void pbw_bytes(struct pbw *w, uint32_t field, const void *p, size_t n)
{
    pbw_tag(w, field, 2);
    pbw_varint(w, n);
    pbw_raw(w, p, n);
}

void pbw_uint(struct pbw *w, uint32_t field, uint64_t v)
{
    pbw_tag(w, field, 0);
    pbw_varint(w, v);
}

void pbw_frame(struct pbw *out, const struct pbw *body)
{
    uint8_t hdr[4] = {(uint8_t)(body->len >> 24), (uint8_t)(body->len >> 16),
                      (uint8_t)(body->len >> 8), (uint8_t)body->len};
    pbw_raw(out, hdr, sizeof(hdr));
    pbw_raw(out, body->data, body->len);
}
