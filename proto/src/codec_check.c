/* The checks protobuf cannot make on a message: enum ranges, required enums,
 * error codes, exactly-one choices. Pure: reads the message, writes the text. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>

#include "codec_int.h"

static int check_fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int check_fail(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, WIRE_ERR_MAX, fmt, ap);
    va_end(ap);
    return SAGA_EINVAL;
}

static int in_range(long v, long lo, long hi)
{
    return v >= lo && v <= hi;
}

static int check_op(const char *what, saga_op_t op, char *err)
{
    if (!in_range((long)op, SAGA_OP_ACTION, SAGA_OP_ABORT))
        return check_fail(err, "%s: op %d out of range", what, (int)op);
    return 0;
}

/* Saga status: 1..10, or 0 too when `any_ok` (a List filter). */
static int check_status(const char *what, saga_status_t status, int any_ok, char *err)
{
    if (!in_range((long)status, any_ok ? SAGA_STATUS_UNKNOWN : SAGA_STATUS_RUNNING,
                  SAGA_STATUS_ABORTED))
        return check_fail(err, "%s: saga status %d out of range", what, (int)status);
    return 0;
}

static int check_mode(const char *what, enum wire_mode mode, char *err)
{
    if (!in_range((long)mode, WIRE_MODE_SAGA, WIRE_MODE_2PC))
        return check_fail(err, "%s: mode %d out of range", what, (int)mode);
    return 0;
}

/* A byte field: a length needs a pointer. */
static int check_bytes(const char *what, const char *field, const uint8_t *p, size_t len, char *err)
{
    if (len > 0 && p == NULL)
        return check_fail(err, "%s: %s has %zu bytes and no data", what, field, len);
    return 0;
}

/* An array: a count needs a pointer. */
static int check_array(const char *what, const char *field, const void *p, size_t n, char *err)
{
    if (n > 0 && p == NULL)
        return check_fail(err, "%s: %s has %zu entries and no array", what, field, n);
    return 0;
}

static int check_register(const struct wire_register *m, char *err)
{
    int rc = check_array("register", "actions", m->actions, m->n_actions, err);
    for (size_t i = 0; rc == 0 && i < m->n_actions; i++) {
        if ((m->actions[i].ops & ~WIRE_OP_ALL) != 0)
            return check_fail(err, "register: actions[%zu] has unknown op bits 0x%x", i,
                              (unsigned)(m->actions[i].ops & ~WIRE_OP_ALL));
    }
    return rc;
}

static int check_command(const struct wire_command *m, char *err)
{
    int rc = check_op("command", m->op, err);
    if (rc == 0)
        rc = check_bytes("command", "input", m->input, m->input_len, err);
    if (rc == 0)
        rc = check_bytes("command", "own_output", m->own_output, m->own_output_len, err);
    if (rc == 0)
        rc = check_array("command", "deps", m->deps, m->n_deps, err);
    for (size_t i = 0; rc == 0 && i < m->n_deps; i++)
        rc = check_bytes("command", "deps[].output", m->deps[i].output, m->deps[i].output_len, err);
    return rc;
}

static int check_reply(const struct wire_reply *m, char *err)
{
    int rc = check_op("reply", m->op, err);
    if (rc == 0 && !in_range((long)m->outcome, SAGA_OUTCOME_OK, SAGA_OUTCOME_RETRY))
        rc = check_fail(err, "reply: outcome %d out of range", (int)m->outcome);
    if (rc == 0)
        rc = check_bytes("reply", "output", m->output, m->output_len, err);
    return rc;
}

static int check_start(const struct wire_start *m, char *err)
{
    if ((m->definition == NULL) == (m->definition_json == NULL))
        return check_fail(err, "start: %s",
                          m->definition == NULL ? "neither a definition name nor a document"
                                                : "both a definition name and a document");
    return check_bytes("start", "input", m->input, m->input_len, err);
}

static int check_saga_info(const struct wire_saga_info *m, char *err)
{
    int rc = check_mode("saga_info", m->mode, err);
    if (rc == 0)
        rc = check_status("saga_info", m->status, 0, err);
    if (rc == 0)
        rc = check_bytes("saga_info", "input", m->input, m->input_len, err);
    if (rc == 0)
        rc = check_array("saga_info", "steps", m->steps, m->n_steps, err);
    if (rc == 0)
        rc = check_array("saga_info", "events", m->events, m->n_events, err);
    for (size_t i = 0; rc == 0 && i < m->n_steps; i++) {
        const struct wire_step_info *s = &m->steps[i];
        if (!in_range((long)s->status, SAGA_STEP_PENDING, SAGA_STEP_SKIPPED))
            return check_fail(err, "saga_info: steps[%zu] status %d out of range", i,
                              (int)s->status);
        rc = check_bytes("saga_info", "steps[].output", s->output, s->output_len, err);
    }
    return rc;
}

static int check_saga_list(const struct wire_saga_list *m, char *err)
{
    int rc = check_array("saga_list", "sagas", m->sagas, m->n_sagas, err);
    for (size_t i = 0; rc == 0 && i < m->n_sagas; i++) {
        rc = check_mode("saga_list", m->sagas[i].mode, err);
        if (rc == 0)
            rc = check_status("saga_list", m->sagas[i].status, 0, err);
    }
    return rc;
}

static int check_resolve(const struct wire_resolve *m, char *err)
{
    switch (m->as) {
    case SAGA_STATUS_COMPLETED:
    case SAGA_STATUS_COMPENSATED:
    case SAGA_STATUS_COMMITTED:
    case SAGA_STATUS_ABORTED:
        return 0;
    default:
        return check_fail(err, "resolve: as %d is not a terminal saga status", (int)m->as);
    }
}

static int check_service_list(const struct wire_service_list *m, char *err)
{
    int rc = check_array("service_list", "services", m->services, m->n_services, err);
    for (size_t i = 0; rc == 0 && i < m->n_services; i++) {
        const struct wire_service *s = &m->services[i];
        rc = check_array("service_list", "instances", s->instances, s->n_instances, err);
        for (size_t j = 0; rc == 0 && j < s->n_instances; j++)
            rc = check_array("service_list", "actions", s->instances[j].actions,
                             s->instances[j].n_actions, err);
    }
    return rc;
}

int wire_check(const struct wire_msg *msg, char *err)
{
    err[0] = '\0';
    switch (msg->type) {
    case WIRE_HELLO:
        if (!in_range((long)msg->hello.role, WIRE_ROLE_PARTICIPANT, WIRE_ROLE_CLIENT))
            return check_fail(err, "hello: role %d out of range", (int)msg->hello.role);
        return 0;
    case WIRE_HELLO_OK:
        return check_array("hello_ok", "peers", msg->hello_ok.peers, msg->hello_ok.n_peers, err);
    case WIRE_REGISTER:
        return check_register(&msg->reg, err);
    case WIRE_COMMAND:
        return check_command(&msg->command, err);
    case WIRE_REPLY:
        return check_reply(&msg->reply, err);
    case WIRE_ERROR:
        if (msg->error.code >= 0 || msg->error.code == INT_MIN)
            return check_fail(err, "error: code %d is not a SAGA_E* code", msg->error.code);
        return 0;
    case WIRE_DECISION:
        if (!in_range((long)msg->decision.decision, WIRE_DECISION_COMMIT, WIRE_DECISION_PENDING))
            return check_fail(err, "decision: decision %d out of range",
                              (int)msg->decision.decision);
        return 0;
    case WIRE_START:
        return check_start(&msg->start, err);
    case WIRE_SAGA_INFO:
        return check_saga_info(&msg->saga_info, err);
    case WIRE_LIST:
        return check_status("list", msg->list.status, 1, err);
    case WIRE_SAGA_LIST:
        return check_saga_list(&msg->saga_list, err);
    case WIRE_RESOLVE:
        return check_resolve(&msg->resolve, err);
    case WIRE_SERVICE_LIST:
        return check_service_list(&msg->service_list, err);
    case WIRE_PING:
    case WIRE_PONG:
    case WIRE_ACK:
    case WIRE_IN_DOUBT:
    case WIRE_DEFINE:
    case WIRE_DEFINED:
    case WIRE_STARTED:
    case WIRE_GET:
    case WIRE_WAIT:
    case WIRE_RETRY:
    case WIRE_ABORT:
    case WIRE_SERVICES:
    case WIRE_WATCH:
    case WIRE_EVENT:
        return 0;
    case WIRE_NONE:
    case WIRE_TYPE_COUNT:
        break;
    }
    return check_fail(err, "message type %d unknown", (int)msg->type);
}
