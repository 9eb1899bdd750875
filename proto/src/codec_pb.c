/* Plain wire messages to and from protobuf-c Envelopes. The only file that
 * knows the generated saga.v1 code; it does no framing decisions and no I/O. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saga/v1/client.pb-c.h"
#include "saga/v1/envelope.pb-c.h"
#include "saga/v1/participant.pb-c.h"

#include "codec_int.h"

/* ---- memory ----------------------------------------------------------------
 * protobuf-c allocates through plain malloc()/free() here, so decoded strings,
 * byte buffers and string arrays can be taken over by the plain message
 * instead of copied: the field is then cleared so free_unpacked() skips it.
 *
 * protobuf-c builds the whole message tree before anything of ours looks at
 * it, and a frame of empty repeated sub-messages costs it dozens of times its
 * size (two bytes on the wire; a struct, a pointer and malloc's header in
 * memory): a 4 MiB frame would take over 100 MiB. So one decode may allocate at most
 * DECODE_BUDGET(frame length); past that the unpack fails and the frame is
 * refused. A real message takes a few times its size at most. */

#define DECODE_BUDGET(len) ((len)*16 + 65536)

struct decode_budget {
    size_t left;
    bool spent; /* an allocation was refused */
};

static void *pb_alloc(void *data, size_t size)
{
    struct decode_budget *b = data;
    if (size > b->left) {
        b->spent = true;
        return NULL;
    }
    b->left -= size;
    return malloc(size);
}

static void pb_free(void *data, void *ptr)
{
    (void)data;
    free(ptr);
}

/* Scratch memory for one encode: every block is freed together at the end. */
struct arena {
    void **blocks;
    size_t n;
    size_t cap;
};

static void *arena_calloc(struct arena *a, size_t n, size_t size)
{
    if (n == 0)
        return NULL;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        void **blocks = realloc(a->blocks, cap * sizeof(*blocks));
        if (blocks == NULL)
            return NULL;
        a->blocks = blocks;
        a->cap = cap;
    }
    void *p = calloc(n, size); /* calloc checks n * size for overflow */
    if (p != NULL)
        a->blocks[a->n++] = p;
    return p;
}

static void arena_free(struct arena *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->blocks[i]);
    free(a->blocks);
    memset(a, 0, sizeof(*a));
}

/* ---- encoding: plain -> protobuf-c (borrowing, never copying payloads) ---- */

static char *str_in(const char *s)
{
    return s != NULL ? (char *)s : (char *)"";
}

static ProtobufCBinaryData bin_in(const uint8_t *p, size_t len)
{
    return (ProtobufCBinaryData){.len = len, .data = (uint8_t *)p};
}

static ProtobufCBinaryData id_in(const uint8_t id[WIRE_SAGA_ID_LEN])
{
    return bin_in(id, WIRE_SAGA_ID_LEN);
}

/* A string array whose NULL entries read as "". Returns 0 or SAGA_ENOMEM. */
static int strv_in(struct arena *a, char *const *v, size_t n, char ***out)
{
    *out = NULL;
    if (n == 0)
        return 0;
    char **copy = arena_calloc(a, n, sizeof(*copy));
    if (copy == NULL)
        return SAGA_ENOMEM;
    for (size_t i = 0; i < n; i++)
        copy[i] = str_in(v[i]);
    *out = copy;
    return 0;
}

/* An array of `n` pointers to `n` zeroed structs of `size` bytes, in the arena. */
static void **objv_in(struct arena *a, size_t n, size_t size)
{
    if (n == 0)
        return NULL;
    void **v = arena_calloc(a, n, sizeof(*v));
    char *objs = arena_calloc(a, n, size);
    if (v == NULL || objs == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        v[i] = objs + i * size;
    return v;
}

/* Every body type, so one encode keeps its top-level body on the stack. */
union pb_body {
    Saga__V1__Hello hello;
    Saga__V1__HelloOk hello_ok;
    Saga__V1__Register reg;
    Saga__V1__Command command;
    Saga__V1__Reply reply;
    Saga__V1__Ping ping;
    Saga__V1__Pong pong;
    Saga__V1__Error error;
    Saga__V1__Ack ack;
    Saga__V1__InDoubt in_doubt;
    Saga__V1__Decision decision;
    Saga__V1__Define define;
    Saga__V1__Defined defined;
    Saga__V1__Start start;
    Saga__V1__Started started;
    Saga__V1__Get get;
    Saga__V1__SagaInfo saga_info;
    Saga__V1__Wait wait;
    Saga__V1__List list;
    Saga__V1__SagaList saga_list;
    Saga__V1__Retry retry;
    Saga__V1__Abort abort;
    Saga__V1__Resolve resolve;
    Saga__V1__Services services;
    Saga__V1__ServiceList service_list;
    Saga__V1__Watch watch;
    Saga__V1__Event event;
};

/* Scratch for the one nested message of a Start. */
struct pb_extra {
    Saga__V1__DefinitionRef ref;
};

static int enc_register(const struct wire_register *m, Saga__V1__Register *pb, struct arena *a)
{
    saga__v1__register__init(pb);
    pb->max_in_flight = m->max_in_flight;
    if (m->n_actions == 0)
        return 0;
    Saga__V1__Action **v = (Saga__V1__Action **)objv_in(a, m->n_actions, sizeof(**v));
    if (v == NULL)
        return SAGA_ENOMEM;
    for (size_t i = 0; i < m->n_actions; i++) {
        saga__v1__action__init(v[i]);
        v[i]->name = str_in(m->actions[i].name);
        Saga__V1__Op *ops = arena_calloc(a, SAGA_OP_ABORT, sizeof(*ops));
        if (ops == NULL)
            return SAGA_ENOMEM;
        for (int op = SAGA_OP_ACTION; op <= SAGA_OP_ABORT; op++) {
            if (m->actions[i].ops & WIRE_OP_BIT(op))
                ops[v[i]->n_ops++] = (Saga__V1__Op)op;
        }
        v[i]->ops = ops;
    }
    pb->actions = v;
    pb->n_actions = m->n_actions;
    return 0;
}

static int enc_command(const struct wire_command *m, Saga__V1__Command *pb, struct arena *a)
{
    saga__v1__command__init(pb);
    pb->saga_id = id_in(m->saga_id);
    pb->definition = str_in(m->definition);
    pb->definition_version = m->definition_version;
    pb->step = str_in(m->step);
    pb->step_index = m->step_index;
    pb->action = str_in(m->action);
    pb->op = (Saga__V1__Op)m->op;
    pb->attempt = m->attempt;
    pb->idempotency_key = str_in(m->idempotency_key);
    pb->input = bin_in(m->input, m->input_len);
    pb->own_output = bin_in(m->own_output, m->own_output_len);
    pb->timeout_ms = m->timeout_ms;
    if (m->n_deps == 0)
        return 0;
    Saga__V1__StepOutput **v = (Saga__V1__StepOutput **)objv_in(a, m->n_deps, sizeof(**v));
    if (v == NULL)
        return SAGA_ENOMEM;
    for (size_t i = 0; i < m->n_deps; i++) {
        saga__v1__step_output__init(v[i]);
        v[i]->step = str_in(m->deps[i].step);
        v[i]->output = bin_in(m->deps[i].output, m->deps[i].output_len);
    }
    pb->deps = v;
    pb->n_deps = m->n_deps;
    return 0;
}

static void enc_event(const struct wire_event *m, Saga__V1__Event *pb)
{
    saga__v1__event__init(pb);
    pb->seq = m->seq;
    pb->at_ms = m->at_ms;
    pb->kind = str_in(m->kind);
    pb->step = str_in(m->step);
    pb->attempt = m->attempt;
    pb->detail = str_in(m->detail);
}

static int enc_saga_info(const struct wire_saga_info *m, Saga__V1__SagaInfo *pb, struct arena *a)
{
    saga__v1__saga_info__init(pb);
    pb->saga_id = id_in(m->saga_id);
    pb->definition = str_in(m->definition);
    pb->version = m->version;
    pb->mode = (Saga__V1__Mode)m->mode;
    pb->status = (Saga__V1__SagaStatus)m->status;
    pb->error = str_in(m->error);
    pb->created_ms = m->created_ms;
    pb->updated_ms = m->updated_ms;
    pb->deadline_ms = m->deadline_ms;
    pb->input = bin_in(m->input, m->input_len);
    if (m->n_steps > 0) {
        Saga__V1__StepInfo **v = (Saga__V1__StepInfo **)objv_in(a, m->n_steps, sizeof(**v));
        if (v == NULL)
            return SAGA_ENOMEM;
        for (size_t i = 0; i < m->n_steps; i++) {
            const struct wire_step_info *s = &m->steps[i];
            saga__v1__step_info__init(v[i]);
            v[i]->name = str_in(s->name);
            v[i]->service = str_in(s->service);
            v[i]->action = str_in(s->action);
            v[i]->status = (Saga__V1__StepStatus)s->status;
            v[i]->attempts = s->attempts;
            v[i]->compensate_attempts = s->compensate_attempts;
            v[i]->error = str_in(s->error);
            v[i]->started_ms = s->started_ms;
            v[i]->finished_ms = s->finished_ms;
            v[i]->output = bin_in(s->output, s->output_len);
        }
        pb->steps = v;
        pb->n_steps = m->n_steps;
    }
    if (m->n_events > 0) {
        Saga__V1__Event **v = (Saga__V1__Event **)objv_in(a, m->n_events, sizeof(**v));
        if (v == NULL)
            return SAGA_ENOMEM;
        for (size_t i = 0; i < m->n_events; i++)
            enc_event(&m->events[i], v[i]);
        pb->events = v;
        pb->n_events = m->n_events;
    }
    return 0;
}

static int enc_saga_list(const struct wire_saga_list *m, Saga__V1__SagaList *pb, struct arena *a)
{
    saga__v1__saga_list__init(pb);
    pb->next_cursor = str_in(m->next_cursor);
    if (m->n_sagas == 0)
        return 0;
    Saga__V1__SagaSummary **v = (Saga__V1__SagaSummary **)objv_in(a, m->n_sagas, sizeof(**v));
    if (v == NULL)
        return SAGA_ENOMEM;
    for (size_t i = 0; i < m->n_sagas; i++) {
        const struct wire_saga_summary *s = &m->sagas[i];
        saga__v1__saga_summary__init(v[i]);
        v[i]->saga_id = id_in(s->saga_id);
        v[i]->definition = str_in(s->definition);
        v[i]->version = s->version;
        v[i]->mode = (Saga__V1__Mode)s->mode;
        v[i]->status = (Saga__V1__SagaStatus)s->status;
        v[i]->error = str_in(s->error);
        v[i]->created_ms = s->created_ms;
        v[i]->updated_ms = s->updated_ms;
    }
    pb->sagas = v;
    pb->n_sagas = m->n_sagas;
    return 0;
}

static int enc_service_list(const struct wire_service_list *m, Saga__V1__ServiceList *pb,
                            struct arena *a)
{
    saga__v1__service_list__init(pb);
    if (m->n_services == 0)
        return 0;
    Saga__V1__Service **v = (Saga__V1__Service **)objv_in(a, m->n_services, sizeof(**v));
    if (v == NULL)
        return SAGA_ENOMEM;
    for (size_t i = 0; i < m->n_services; i++) {
        const struct wire_service *s = &m->services[i];
        saga__v1__service__init(v[i]);
        v[i]->name = str_in(s->name);
        if (s->n_instances == 0)
            continue;
        Saga__V1__Instance **iv = (Saga__V1__Instance **)objv_in(a, s->n_instances, sizeof(**iv));
        if (iv == NULL)
            return SAGA_ENOMEM;
        for (size_t j = 0; j < s->n_instances; j++) {
            const struct wire_instance *in = &s->instances[j];
            saga__v1__instance__init(iv[j]);
            iv[j]->instance_id = str_in(in->instance_id);
            iv[j]->coordinator_id = str_in(in->coordinator_id);
            if (strv_in(a, in->actions, in->n_actions, &iv[j]->actions) != 0)
                return SAGA_ENOMEM;
            iv[j]->n_actions = in->n_actions;
            iv[j]->in_flight = in->in_flight;
            iv[j]->max_in_flight = in->max_in_flight;
        }
        v[i]->instances = iv;
        v[i]->n_instances = s->n_instances;
    }
    pb->services = v;
    pb->n_services = m->n_services;
    return 0;
}

/* Fills `env` (and `body`, `extra`, the arena) from `msg`. */
static int enc_envelope(const struct wire_msg *msg, Saga__V1__Envelope *env, union pb_body *b,
                        struct pb_extra *x, struct arena *a)
{
    saga__v1__envelope__init(env);
    env->request_id = msg->request_id;
    switch (msg->type) {
    case WIRE_HELLO:
        saga__v1__hello__init(&b->hello);
        b->hello.service = str_in(msg->hello.service);
        b->hello.instance_id = str_in(msg->hello.instance_id);
        b->hello.protocol_version = msg->hello.protocol_version;
        b->hello.auth_token = str_in(msg->hello.auth_token);
        b->hello.role = (Saga__V1__Role)msg->hello.role;
        env->body_case = SAGA__V1__ENVELOPE__BODY_HELLO;
        env->hello = &b->hello;
        return 0;
    case WIRE_HELLO_OK:
        saga__v1__hello_ok__init(&b->hello_ok);
        b->hello_ok.coordinator_id = str_in(msg->hello_ok.coordinator_id);
        if (strv_in(a, msg->hello_ok.peers, msg->hello_ok.n_peers, &b->hello_ok.peers) != 0)
            return SAGA_ENOMEM;
        b->hello_ok.n_peers = msg->hello_ok.n_peers;
        b->hello_ok.heartbeat_interval_ms = msg->hello_ok.heartbeat_interval_ms;
        b->hello_ok.max_frame_bytes = msg->hello_ok.max_frame_bytes;
        b->hello_ok.max_payload_bytes = msg->hello_ok.max_payload_bytes;
        b->hello_ok.protocol_version = msg->hello_ok.protocol_version;
        env->body_case = SAGA__V1__ENVELOPE__BODY_HELLO_OK;
        env->hello_ok = &b->hello_ok;
        return 0;
    case WIRE_REGISTER:
        env->body_case = SAGA__V1__ENVELOPE__BODY_REGISTER;
        env->register_ = &b->reg;
        return enc_register(&msg->reg, &b->reg, a);
    case WIRE_COMMAND:
        env->body_case = SAGA__V1__ENVELOPE__BODY_COMMAND;
        env->command = &b->command;
        return enc_command(&msg->command, &b->command, a);
    case WIRE_REPLY:
        saga__v1__reply__init(&b->reply);
        b->reply.saga_id = id_in(msg->reply.saga_id);
        b->reply.step_index = msg->reply.step_index;
        b->reply.op = (Saga__V1__Op)msg->reply.op;
        b->reply.attempt = msg->reply.attempt;
        b->reply.outcome = (Saga__V1__Outcome)msg->reply.outcome;
        b->reply.output = bin_in(msg->reply.output, msg->reply.output_len);
        b->reply.error = str_in(msg->reply.error);
        env->body_case = SAGA__V1__ENVELOPE__BODY_REPLY;
        env->reply = &b->reply;
        return 0;
    case WIRE_PING:
        saga__v1__ping__init(&b->ping);
        b->ping.nonce = msg->ping.nonce;
        env->body_case = SAGA__V1__ENVELOPE__BODY_PING;
        env->ping = &b->ping;
        return 0;
    case WIRE_PONG:
        saga__v1__pong__init(&b->pong);
        b->pong.nonce = msg->pong.nonce;
        env->body_case = SAGA__V1__ENVELOPE__BODY_PONG;
        env->pong = &b->pong;
        return 0;
    case WIRE_ERROR:
        saga__v1__error__init(&b->error);
        b->error.code = (uint32_t)-msg->error.code;
        b->error.message = str_in(msg->error.message);
        b->error.fatal = msg->error.fatal;
        b->error.holder = str_in(msg->error.holder);
        env->body_case = SAGA__V1__ENVELOPE__BODY_ERROR;
        env->error = &b->error;
        return 0;
    case WIRE_ACK:
        saga__v1__ack__init(&b->ack);
        env->body_case = SAGA__V1__ENVELOPE__BODY_ACK;
        env->ack = &b->ack;
        return 0;
    case WIRE_IN_DOUBT:
        saga__v1__in_doubt__init(&b->in_doubt);
        b->in_doubt.saga_id = id_in(msg->in_doubt.saga_id);
        b->in_doubt.step_index = msg->in_doubt.step_index;
        env->body_case = SAGA__V1__ENVELOPE__BODY_IN_DOUBT;
        env->in_doubt = &b->in_doubt;
        return 0;
    case WIRE_DECISION:
        saga__v1__decision__init(&b->decision);
        b->decision.saga_id = id_in(msg->decision.saga_id);
        b->decision.step_index = msg->decision.step_index;
        b->decision.decision = (Saga__V1__DecisionKind)msg->decision.decision;
        env->body_case = SAGA__V1__ENVELOPE__BODY_DECISION;
        env->decision = &b->decision;
        return 0;
    case WIRE_DEFINE:
        saga__v1__define__init(&b->define);
        b->define.definition_json = str_in(msg->define.definition_json);
        env->body_case = SAGA__V1__ENVELOPE__BODY_DEFINE;
        env->define = &b->define;
        return 0;
    case WIRE_DEFINED:
        saga__v1__defined__init(&b->defined);
        b->defined.name = str_in(msg->defined.name);
        b->defined.version = msg->defined.version;
        b->defined.hash = str_in(msg->defined.hash);
        b->defined.created = msg->defined.created;
        env->body_case = SAGA__V1__ENVELOPE__BODY_DEFINED;
        env->defined = &b->defined;
        return 0;
    case WIRE_START:
        saga__v1__start__init(&b->start);
        if (msg->start.definition_json != NULL) {
            b->start.definition_case = SAGA__V1__START__DEFINITION_INLINE_JSON;
            b->start.inline_json = str_in(msg->start.definition_json);
        } else {
            saga__v1__definition_ref__init(&x->ref);
            x->ref.name = str_in(msg->start.definition);
            x->ref.version = msg->start.version;
            b->start.definition_case = SAGA__V1__START__DEFINITION_REF;
            b->start.ref = &x->ref;
        }
        b->start.input = bin_in(msg->start.input, msg->start.input_len);
        b->start.idempotency_key = str_in(msg->start.idempotency_key);
        env->body_case = SAGA__V1__ENVELOPE__BODY_START;
        env->start = &b->start;
        return 0;
    case WIRE_STARTED:
        saga__v1__started__init(&b->started);
        b->started.saga_id = id_in(msg->started.saga_id);
        b->started.existed = msg->started.existed;
        env->body_case = SAGA__V1__ENVELOPE__BODY_STARTED;
        env->started = &b->started;
        return 0;
    case WIRE_GET:
        saga__v1__get__init(&b->get);
        b->get.saga_id = id_in(msg->get.saga_id);
        env->body_case = SAGA__V1__ENVELOPE__BODY_GET;
        env->get = &b->get;
        return 0;
    case WIRE_SAGA_INFO:
        env->body_case = SAGA__V1__ENVELOPE__BODY_SAGA_INFO;
        env->saga_info = &b->saga_info;
        return enc_saga_info(&msg->saga_info, &b->saga_info, a);
    case WIRE_WAIT:
        saga__v1__wait__init(&b->wait);
        b->wait.saga_id = id_in(msg->wait.saga_id);
        b->wait.timeout_ms = msg->wait.timeout_ms;
        env->body_case = SAGA__V1__ENVELOPE__BODY_WAIT;
        env->wait = &b->wait;
        return 0;
    case WIRE_LIST:
        saga__v1__list__init(&b->list);
        b->list.status = (Saga__V1__SagaStatus)msg->list.status;
        b->list.definition = str_in(msg->list.definition);
        b->list.created_since_ms = msg->list.created_since_ms;
        b->list.limit = msg->list.limit;
        b->list.cursor = str_in(msg->list.cursor);
        env->body_case = SAGA__V1__ENVELOPE__BODY_LIST;
        env->list = &b->list;
        return 0;
    case WIRE_SAGA_LIST:
        env->body_case = SAGA__V1__ENVELOPE__BODY_SAGA_LIST;
        env->saga_list = &b->saga_list;
        return enc_saga_list(&msg->saga_list, &b->saga_list, a);
    case WIRE_RETRY:
        saga__v1__retry__init(&b->retry);
        b->retry.saga_id = id_in(msg->retry.saga_id);
        b->retry.reason = str_in(msg->retry.reason);
        env->body_case = SAGA__V1__ENVELOPE__BODY_RETRY;
        env->retry = &b->retry;
        return 0;
    case WIRE_ABORT:
        saga__v1__abort__init(&b->abort);
        b->abort.saga_id = id_in(msg->abort.saga_id);
        b->abort.reason = str_in(msg->abort.reason);
        env->body_case = SAGA__V1__ENVELOPE__BODY_ABORT;
        env->abort = &b->abort;
        return 0;
    case WIRE_RESOLVE:
        saga__v1__resolve__init(&b->resolve);
        b->resolve.saga_id = id_in(msg->resolve.saga_id);
        b->resolve.as = (Saga__V1__SagaStatus)msg->resolve.as;
        b->resolve.reason = str_in(msg->resolve.reason);
        env->body_case = SAGA__V1__ENVELOPE__BODY_RESOLVE;
        env->resolve = &b->resolve;
        return 0;
    case WIRE_SERVICES:
        saga__v1__services__init(&b->services);
        env->body_case = SAGA__V1__ENVELOPE__BODY_SERVICES;
        env->services = &b->services;
        return 0;
    case WIRE_SERVICE_LIST:
        env->body_case = SAGA__V1__ENVELOPE__BODY_SERVICE_LIST;
        env->service_list = &b->service_list;
        return enc_service_list(&msg->service_list, &b->service_list, a);
    case WIRE_WATCH:
        saga__v1__watch__init(&b->watch);
        b->watch.saga_id = id_in(msg->watch.saga_id);
        env->body_case = SAGA__V1__ENVELOPE__BODY_WATCH;
        env->watch = &b->watch;
        return 0;
    case WIRE_EVENT:
        enc_event(&msg->event, &b->event);
        env->body_case = SAGA__V1__ENVELOPE__BODY_EVENT;
        env->event = &b->event;
        return 0;
    case WIRE_NONE:
    case WIRE_TYPE_COUNT:
        break;
    }
    return SAGA_EINVAL; /* wire_check turns unknown types away first */
}

int wire_pb_encode(const struct wire_msg *msg, struct wire_buf *out, size_t max_frame)
{
    Saga__V1__Envelope env;
    union pb_body body;
    struct pb_extra extra;
    struct arena arena = {0};

    int rc = enc_envelope(msg, &env, &body, &extra, &arena);
    if (rc != 0)
        goto out;
    size_t size = protobuf_c_message_get_packed_size(&env.base);
    if (size > max_frame || size > UINT32_MAX) {
        rc = SAGA_ETOOBIG;
        goto out;
    }
    rc = wire_buf_reserve(out, WIRE_FRAME_HEADER + size);
    if (rc != 0)
        goto out;
    uint8_t *p = out->data + out->len;
    p[0] = (uint8_t)(size >> 24);
    p[1] = (uint8_t)(size >> 16);
    p[2] = (uint8_t)(size >> 8);
    p[3] = (uint8_t)size;
    size_t packed = protobuf_c_message_pack(&env.base, p + WIRE_FRAME_HEADER);
    if (packed != size) {
        rc = SAGA_EINTERNAL;
        goto out;
    }
    out->len += WIRE_FRAME_HEADER + size;
out:
    arena_free(&arena);
    return rc;
}

/* ---- decoding: protobuf-c -> plain (taking over what protobuf-c allocated) - */

static int dec_fail(char *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int dec_fail(char *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, WIRE_ERR_MAX, fmt, ap);
    va_end(ap);
    return code;
}

static int nomem(char *err)
{
    return dec_fail(err, SAGA_ENOMEM, "out of memory while decoding");
}

/* Moves a decoded string into *out, leaving "" rather than NULL. */
static int take_str(char **field, char **out, char *err)
{
    char *s = *field;
    if (s == NULL || s == protobuf_c_empty_string) {
        *out = strdup("");
        return *out != NULL ? 0 : nomem(err);
    }
    *field = NULL;
    *out = s;
    return 0;
}

static void take_bytes(ProtobufCBinaryData *field, uint8_t **out, size_t *len)
{
    if (field->len == 0) {
        *out = NULL;
        *len = 0;
        return;
    }
    *out = field->data;
    *len = field->len;
    field->data = NULL;
    field->len = 0;
}

static int take_id(const ProtobufCBinaryData *field, uint8_t id[WIRE_SAGA_ID_LEN], const char *what,
                   char *err)
{
    if (field->len != WIRE_SAGA_ID_LEN)
        return dec_fail(err, SAGA_EPROTO, "%s: saga_id is %zu bytes, want %d", what, field->len,
                        WIRE_SAGA_ID_LEN);
    memcpy(id, field->data, WIRE_SAGA_ID_LEN);
    return 0;
}

static int take_strv(size_t *n_field, char ***field, char ***out, size_t *n, char *err)
{
    *out = NULL;
    *n = 0;
    if (*n_field == 0 || *field == NULL)
        return 0;
    char **v = *field;
    size_t count = *n_field;
    *field = NULL;
    *n_field = 0;
    *out = v;
    *n = count;
    for (size_t i = 0; i < count; i++) {
        if (v[i] == NULL || v[i] == protobuf_c_empty_string) {
            v[i] = strdup("");
            if (v[i] == NULL) {
                /* leave the array freeable: drop the entries not yet checked */
                for (size_t j = i + 1; j < count; j++) {
                    if (v[j] == protobuf_c_empty_string)
                        v[j] = NULL;
                }
                return nomem(err);
            }
        }
    }
    return 0;
}

/* calloc'd array of n plain structs; NULL for n == 0. */
static int new_array(void **out, size_t n, size_t size, char *err)
{
    *out = NULL;
    if (n == 0)
        return 0;
    *out = calloc(n, size);
    return *out != NULL ? 0 : nomem(err);
}

#define TRY(expr)         \
    do {                  \
        int rc_ = (expr); \
        if (rc_ != 0)     \
            return rc_;   \
    } while (0)

static int dec_op(int32_t v, saga_op_t *out, const char *what, char *err)
{
    if (v < SAGA_OP_ACTION || v > SAGA_OP_ABORT)
        return dec_fail(err, SAGA_EPROTO, "%s: op %ld out of range", what, (long)v);
    *out = (saga_op_t)v;
    return 0;
}

/* Enum fields are copied as they came (protobuf keeps unknown values);
 * wire_check then tells good from bad, so values above the enum's range
 * stay visible there. int32 to the C enum types is lossless. */

static int dec_register(Saga__V1__Register *pb, struct wire_register *m, char *err)
{
    m->max_in_flight = pb->max_in_flight;
    TRY(new_array((void **)&m->actions, pb->n_actions, sizeof(*m->actions), err));
    m->n_actions = pb->n_actions;
    for (size_t i = 0; i < pb->n_actions; i++) {
        Saga__V1__Action *a = pb->actions[i];
        TRY(take_str(&a->name, &m->actions[i].name, err));
        for (size_t j = 0; j < a->n_ops; j++) {
            saga_op_t op = SAGA_OP_ACTION;
            TRY(dec_op(a->ops[j], &op, "register", err));
            m->actions[i].ops |= WIRE_OP_BIT(op);
        }
    }
    return 0;
}

static int dec_command(Saga__V1__Command *pb, struct wire_command *m, char *err)
{
    TRY(take_id(&pb->saga_id, m->saga_id, "command", err));
    TRY(take_str(&pb->definition, &m->definition, err));
    m->definition_version = pb->definition_version;
    TRY(take_str(&pb->step, &m->step, err));
    m->step_index = pb->step_index;
    TRY(take_str(&pb->action, &m->action, err));
    m->op = (saga_op_t)pb->op;
    m->attempt = pb->attempt;
    TRY(take_str(&pb->idempotency_key, &m->idempotency_key, err));
    take_bytes(&pb->input, &m->input, &m->input_len);
    take_bytes(&pb->own_output, &m->own_output, &m->own_output_len);
    m->timeout_ms = pb->timeout_ms;
    TRY(new_array((void **)&m->deps, pb->n_deps, sizeof(*m->deps), err));
    m->n_deps = pb->n_deps;
    for (size_t i = 0; i < pb->n_deps; i++) {
        TRY(take_str(&pb->deps[i]->step, &m->deps[i].step, err));
        take_bytes(&pb->deps[i]->output, &m->deps[i].output, &m->deps[i].output_len);
    }
    return 0;
}

static int dec_event(Saga__V1__Event *pb, struct wire_event *m, char *err)
{
    m->seq = pb->seq;
    m->at_ms = pb->at_ms;
    TRY(take_str(&pb->kind, &m->kind, err));
    TRY(take_str(&pb->step, &m->step, err));
    m->attempt = pb->attempt;
    TRY(take_str(&pb->detail, &m->detail, err));
    return 0;
}

static int dec_saga_info(Saga__V1__SagaInfo *pb, struct wire_saga_info *m, char *err)
{
    TRY(take_id(&pb->saga_id, m->saga_id, "saga_info", err));
    TRY(take_str(&pb->definition, &m->definition, err));
    m->version = pb->version;
    m->mode = (enum wire_mode)pb->mode;
    m->status = (saga_status_t)pb->status;
    TRY(take_str(&pb->error, &m->error, err));
    m->created_ms = pb->created_ms;
    m->updated_ms = pb->updated_ms;
    m->deadline_ms = pb->deadline_ms;
    take_bytes(&pb->input, &m->input, &m->input_len);
    TRY(new_array((void **)&m->steps, pb->n_steps, sizeof(*m->steps), err));
    m->n_steps = pb->n_steps;
    for (size_t i = 0; i < pb->n_steps; i++) {
        Saga__V1__StepInfo *p = pb->steps[i];
        struct wire_step_info *s = &m->steps[i];
        TRY(take_str(&p->name, &s->name, err));
        TRY(take_str(&p->service, &s->service, err));
        TRY(take_str(&p->action, &s->action, err));
        s->status = (saga_step_status_t)p->status;
        s->attempts = p->attempts;
        s->compensate_attempts = p->compensate_attempts;
        TRY(take_str(&p->error, &s->error, err));
        s->started_ms = p->started_ms;
        s->finished_ms = p->finished_ms;
        take_bytes(&p->output, &s->output, &s->output_len);
    }
    TRY(new_array((void **)&m->events, pb->n_events, sizeof(*m->events), err));
    m->n_events = pb->n_events;
    for (size_t i = 0; i < pb->n_events; i++)
        TRY(dec_event(pb->events[i], &m->events[i], err));
    return 0;
}

static int dec_saga_list(Saga__V1__SagaList *pb, struct wire_saga_list *m, char *err)
{
    TRY(take_str(&pb->next_cursor, &m->next_cursor, err));
    TRY(new_array((void **)&m->sagas, pb->n_sagas, sizeof(*m->sagas), err));
    m->n_sagas = pb->n_sagas;
    for (size_t i = 0; i < pb->n_sagas; i++) {
        Saga__V1__SagaSummary *p = pb->sagas[i];
        struct wire_saga_summary *s = &m->sagas[i];
        TRY(take_id(&p->saga_id, s->saga_id, "saga_list", err));
        TRY(take_str(&p->definition, &s->definition, err));
        s->version = p->version;
        s->mode = (enum wire_mode)p->mode;
        s->status = (saga_status_t)p->status;
        TRY(take_str(&p->error, &s->error, err));
        s->created_ms = p->created_ms;
        s->updated_ms = p->updated_ms;
    }
    return 0;
}

static int dec_service_list(Saga__V1__ServiceList *pb, struct wire_service_list *m, char *err)
{
    TRY(new_array((void **)&m->services, pb->n_services, sizeof(*m->services), err));
    m->n_services = pb->n_services;
    for (size_t i = 0; i < pb->n_services; i++) {
        Saga__V1__Service *p = pb->services[i];
        struct wire_service *s = &m->services[i];
        TRY(take_str(&p->name, &s->name, err));
        TRY(new_array((void **)&s->instances, p->n_instances, sizeof(*s->instances), err));
        s->n_instances = p->n_instances;
        for (size_t j = 0; j < p->n_instances; j++) {
            Saga__V1__Instance *pi = p->instances[j];
            struct wire_instance *in = &s->instances[j];
            TRY(take_str(&pi->instance_id, &in->instance_id, err));
            TRY(take_str(&pi->coordinator_id, &in->coordinator_id, err));
            TRY(take_strv(&pi->n_actions, &pi->actions, &in->actions, &in->n_actions, err));
            in->in_flight = pi->in_flight;
            in->max_in_flight = pi->max_in_flight;
        }
    }
    return 0;
}

static int dec_start(Saga__V1__Start *pb, struct wire_start *m, char *err)
{
    switch (pb->definition_case) {
    case SAGA__V1__START__DEFINITION_REF:
        if (pb->ref == NULL)
            return dec_fail(err, SAGA_EPROTO, "start: empty ref");
        TRY(take_str(&pb->ref->name, &m->definition, err));
        m->version = pb->ref->version;
        break;
    case SAGA__V1__START__DEFINITION_INLINE_JSON:
        TRY(take_str(&pb->inline_json, &m->definition_json, err));
        break;
    default:
        return dec_fail(err, SAGA_EPROTO, "start: no definition (neither ref nor inline_json)");
    }
    take_bytes(&pb->input, &m->input, &m->input_len);
    TRY(take_str(&pb->idempotency_key, &m->idempotency_key, err));
    return 0;
}

/* Names the first unknown field of an envelope, for the error text. */
static int dec_no_body(const Saga__V1__Envelope *env, char *err)
{
    if (env->base.n_unknown_fields > 0)
        return dec_fail(err, SAGA_EPROTO, "envelope with no known body (unknown field %u)",
                        (unsigned)env->base.unknown_fields[0].tag);
    return dec_fail(err, SAGA_EPROTO, "envelope with no body");
}

static int dec_body(Saga__V1__Envelope *env, struct wire_msg *out, char *err)
{
    out->request_id = env->request_id;
    switch (env->body_case) {
    case SAGA__V1__ENVELOPE__BODY_HELLO: {
        Saga__V1__Hello *pb = env->hello;
        out->type = WIRE_HELLO;
        TRY(take_str(&pb->service, &out->hello.service, err));
        TRY(take_str(&pb->instance_id, &out->hello.instance_id, err));
        out->hello.protocol_version = pb->protocol_version;
        TRY(take_str(&pb->auth_token, &out->hello.auth_token, err));
        out->hello.role = (enum wire_role)pb->role;
        return 0;
    }
    case SAGA__V1__ENVELOPE__BODY_HELLO_OK: {
        Saga__V1__HelloOk *pb = env->hello_ok;
        struct wire_hello_ok *m = &out->hello_ok;
        out->type = WIRE_HELLO_OK;
        TRY(take_str(&pb->coordinator_id, &m->coordinator_id, err));
        TRY(take_strv(&pb->n_peers, &pb->peers, &m->peers, &m->n_peers, err));
        m->heartbeat_interval_ms = pb->heartbeat_interval_ms;
        m->max_frame_bytes = pb->max_frame_bytes;
        m->max_payload_bytes = pb->max_payload_bytes;
        m->protocol_version = pb->protocol_version;
        return 0;
    }
    case SAGA__V1__ENVELOPE__BODY_REGISTER:
        out->type = WIRE_REGISTER;
        return dec_register(env->register_, &out->reg, err);
    case SAGA__V1__ENVELOPE__BODY_COMMAND:
        out->type = WIRE_COMMAND;
        return dec_command(env->command, &out->command, err);
    case SAGA__V1__ENVELOPE__BODY_REPLY: {
        Saga__V1__Reply *pb = env->reply;
        struct wire_reply *m = &out->reply;
        out->type = WIRE_REPLY;
        TRY(take_id(&pb->saga_id, m->saga_id, "reply", err));
        m->step_index = pb->step_index;
        m->op = (saga_op_t)pb->op;
        m->attempt = pb->attempt;
        m->outcome = (saga_outcome_t)pb->outcome;
        take_bytes(&pb->output, &m->output, &m->output_len);
        TRY(take_str(&pb->error, &m->error, err));
        return 0;
    }
    case SAGA__V1__ENVELOPE__BODY_PING:
        out->type = WIRE_PING;
        out->ping.nonce = env->ping->nonce;
        return 0;
    case SAGA__V1__ENVELOPE__BODY_PONG:
        out->type = WIRE_PONG;
        out->pong.nonce = env->pong->nonce;
        return 0;
    case SAGA__V1__ENVELOPE__BODY_ERROR: {
        Saga__V1__Error *pb = env->error;
        out->type = WIRE_ERROR;
        if (pb->code == 0 || pb->code > INT32_MAX)
            return dec_fail(err, SAGA_EPROTO, "error: code %lu is not a SAGA_E* number",
                            (unsigned long)pb->code);
        out->error.code = -(int)pb->code;
        TRY(take_str(&pb->message, &out->error.message, err));
        out->error.fatal = pb->fatal != 0;
        TRY(take_str(&pb->holder, &out->error.holder, err));
        return 0;
    }
    case SAGA__V1__ENVELOPE__BODY_ACK:
        out->type = WIRE_ACK;
        return 0;
    case SAGA__V1__ENVELOPE__BODY_IN_DOUBT:
        out->type = WIRE_IN_DOUBT;
        out->in_doubt.step_index = env->in_doubt->step_index;
        return take_id(&env->in_doubt->saga_id, out->in_doubt.saga_id, "in_doubt", err);
    case SAGA__V1__ENVELOPE__BODY_DECISION:
        out->type = WIRE_DECISION;
        out->decision.step_index = env->decision->step_index;
        out->decision.decision = (enum wire_decision)env->decision->decision;
        return take_id(&env->decision->saga_id, out->decision.saga_id, "decision", err);
    case SAGA__V1__ENVELOPE__BODY_DEFINE:
        out->type = WIRE_DEFINE;
        return take_str(&env->define->definition_json, &out->define.definition_json, err);
    case SAGA__V1__ENVELOPE__BODY_DEFINED: {
        Saga__V1__Defined *pb = env->defined;
        out->type = WIRE_DEFINED;
        TRY(take_str(&pb->name, &out->defined.name, err));
        out->defined.version = pb->version;
        TRY(take_str(&pb->hash, &out->defined.hash, err));
        out->defined.created = pb->created != 0;
        return 0;
    }
    case SAGA__V1__ENVELOPE__BODY_START:
        out->type = WIRE_START;
        return dec_start(env->start, &out->start, err);
    case SAGA__V1__ENVELOPE__BODY_STARTED:
        out->type = WIRE_STARTED;
        out->started.existed = env->started->existed != 0;
        return take_id(&env->started->saga_id, out->started.saga_id, "started", err);
    case SAGA__V1__ENVELOPE__BODY_GET:
        out->type = WIRE_GET;
        return take_id(&env->get->saga_id, out->get.saga_id, "get", err);
    case SAGA__V1__ENVELOPE__BODY_SAGA_INFO:
        out->type = WIRE_SAGA_INFO;
        return dec_saga_info(env->saga_info, &out->saga_info, err);
    case SAGA__V1__ENVELOPE__BODY_WAIT:
        out->type = WIRE_WAIT;
        out->wait.timeout_ms = env->wait->timeout_ms;
        return take_id(&env->wait->saga_id, out->wait.saga_id, "wait", err);
    case SAGA__V1__ENVELOPE__BODY_LIST: {
        Saga__V1__List *pb = env->list;
        out->type = WIRE_LIST;
        out->list.status = (saga_status_t)pb->status;
        TRY(take_str(&pb->definition, &out->list.definition, err));
        out->list.created_since_ms = pb->created_since_ms;
        out->list.limit = pb->limit;
        TRY(take_str(&pb->cursor, &out->list.cursor, err));
        return 0;
    }
    case SAGA__V1__ENVELOPE__BODY_SAGA_LIST:
        out->type = WIRE_SAGA_LIST;
        return dec_saga_list(env->saga_list, &out->saga_list, err);
    case SAGA__V1__ENVELOPE__BODY_RETRY:
        out->type = WIRE_RETRY;
        TRY(take_id(&env->retry->saga_id, out->retry.saga_id, "retry", err));
        return take_str(&env->retry->reason, &out->retry.reason, err);
    case SAGA__V1__ENVELOPE__BODY_ABORT:
        out->type = WIRE_ABORT;
        TRY(take_id(&env->abort->saga_id, out->abort.saga_id, "abort", err));
        return take_str(&env->abort->reason, &out->abort.reason, err);
    case SAGA__V1__ENVELOPE__BODY_RESOLVE:
        out->type = WIRE_RESOLVE;
        TRY(take_id(&env->resolve->saga_id, out->resolve.saga_id, "resolve", err));
        out->resolve.as = (saga_status_t)env->resolve->as;
        return take_str(&env->resolve->reason, &out->resolve.reason, err);
    case SAGA__V1__ENVELOPE__BODY_SERVICES:
        out->type = WIRE_SERVICES;
        return 0;
    case SAGA__V1__ENVELOPE__BODY_SERVICE_LIST:
        out->type = WIRE_SERVICE_LIST;
        return dec_service_list(env->service_list, &out->service_list, err);
    case SAGA__V1__ENVELOPE__BODY_WATCH:
        out->type = WIRE_WATCH;
        return take_id(&env->watch->saga_id, out->watch.saga_id, "watch", err);
    case SAGA__V1__ENVELOPE__BODY_EVENT:
        out->type = WIRE_EVENT;
        return dec_event(env->event, &out->event, err);
    case SAGA__V1__ENVELOPE__BODY__NOT_SET:
    default:
        break;
    }
    return dec_no_body(env, err);
}

int wire_pb_decode(const uint8_t *data, size_t len, struct wire_msg *out, char *err)
{
    struct decode_budget budget = {.left = DECODE_BUDGET(len)};
    ProtobufCAllocator alloc = {.alloc = pb_alloc, .free = pb_free, .allocator_data = &budget};
    Saga__V1__Envelope *env = saga__v1__envelope__unpack(&alloc, len, data);
    if (env == NULL && budget.spent)
        return dec_fail(err, SAGA_ETOOBIG, "a %zu-byte frame unpacks to more than %zu bytes", len,
                        (size_t)DECODE_BUDGET(len));
    if (env == NULL)
        return dec_fail(err, SAGA_EPROTO, "undecodable protobuf in a %zu-byte frame", len);
    int rc = dec_body(env, out, err);
    saga__v1__envelope__free_unpacked(env, &alloc);
    return rc;
}
