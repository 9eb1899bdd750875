/* Plain wire messages: freeing what a message owns, and type names.
 * Knows nothing of protobuf; touches only the message it is given. */
#include <stdlib.h>
#include <string.h>

#include "wire/msg.h"

static void free_str(char **s)
{
    free(*s);
    *s = NULL;
}

static void free_bytes(uint8_t **p, size_t *len)
{
    free(*p);
    *p = NULL;
    *len = 0;
}

static void free_strv(char ***v, size_t *n)
{
    if (*v != NULL) {
        for (size_t i = 0; i < *n; i++)
            free((*v)[i]);
    }
    free(*v);
    *v = NULL;
    *n = 0;
}

static void free_saga_info(struct wire_saga_info *m)
{
    free_str(&m->definition);
    free_str(&m->error);
    free_bytes(&m->input, &m->input_len);
    if (m->steps != NULL) {
        for (size_t i = 0; i < m->n_steps; i++) {
            struct wire_step_info *s = &m->steps[i];
            free_str(&s->name);
            free_str(&s->service);
            free_str(&s->action);
            free_str(&s->error);
            free_bytes(&s->output, &s->output_len);
        }
    }
    free(m->steps);
    if (m->events != NULL) {
        for (size_t i = 0; i < m->n_events; i++) {
            free(m->events[i].kind);
            free(m->events[i].step);
            free(m->events[i].detail);
        }
    }
    free(m->events);
}

static void free_service_list(struct wire_service_list *m)
{
    if (m->services != NULL) {
        for (size_t i = 0; i < m->n_services; i++) {
            struct wire_service *s = &m->services[i];
            free(s->name);
            if (s->instances != NULL) {
                for (size_t j = 0; j < s->n_instances; j++) {
                    struct wire_instance *in = &s->instances[j];
                    free(in->instance_id);
                    free(in->coordinator_id);
                    free_strv(&in->actions, &in->n_actions);
                }
            }
            free(s->instances);
        }
    }
    free(m->services);
}

void wire_msg_free_contents(struct wire_msg *msg)
{
    if (msg == NULL)
        return;
    switch (msg->type) {
    case WIRE_HELLO:
        free(msg->hello.service);
        free(msg->hello.instance_id);
        free(msg->hello.auth_token);
        break;
    case WIRE_HELLO_OK:
        free(msg->hello_ok.coordinator_id);
        free_strv(&msg->hello_ok.peers, &msg->hello_ok.n_peers);
        break;
    case WIRE_REGISTER:
        if (msg->reg.actions != NULL) {
            for (size_t i = 0; i < msg->reg.n_actions; i++)
                free(msg->reg.actions[i].name);
        }
        free(msg->reg.actions);
        break;
    case WIRE_COMMAND: {
        struct wire_command *c = &msg->command;
        free(c->definition);
        free(c->step);
        free(c->action);
        free(c->idempotency_key);
        free(c->input);
        if (c->deps != NULL) {
            for (size_t i = 0; i < c->n_deps; i++) {
                free(c->deps[i].step);
                free(c->deps[i].output);
            }
        }
        free(c->deps);
        free(c->own_output);
        break;
    }
    case WIRE_REPLY:
        free(msg->reply.output);
        free(msg->reply.error);
        break;
    case WIRE_ERROR:
        free(msg->error.message);
        free(msg->error.holder);
        break;
    case WIRE_DEFINE:
        free(msg->define.definition_json);
        break;
    case WIRE_DEFINED:
        free(msg->defined.name);
        free(msg->defined.hash);
        break;
    case WIRE_START:
        free(msg->start.definition);
        free(msg->start.definition_json);
        free(msg->start.input);
        free(msg->start.idempotency_key);
        break;
    case WIRE_SAGA_INFO:
        free_saga_info(&msg->saga_info);
        break;
    case WIRE_LIST:
        free(msg->list.definition);
        free(msg->list.cursor);
        break;
    case WIRE_SAGA_LIST:
        if (msg->saga_list.sagas != NULL) {
            for (size_t i = 0; i < msg->saga_list.n_sagas; i++) {
                free(msg->saga_list.sagas[i].definition);
                free(msg->saga_list.sagas[i].error);
            }
        }
        free(msg->saga_list.sagas);
        free(msg->saga_list.next_cursor);
        break;
    case WIRE_RETRY:
        free(msg->retry.reason);
        break;
    case WIRE_ABORT:
        free(msg->abort.reason);
        break;
    case WIRE_RESOLVE:
        free(msg->resolve.reason);
        break;
    case WIRE_SERVICE_LIST:
        free_service_list(&msg->service_list);
        break;
    case WIRE_EVENT:
        free(msg->event.kind);
        free(msg->event.step);
        free(msg->event.detail);
        break;
    case WIRE_NONE:
    case WIRE_PING:
    case WIRE_PONG:
    case WIRE_ACK:
    case WIRE_IN_DOUBT:
    case WIRE_DECISION:
    case WIRE_STARTED:
    case WIRE_GET:
    case WIRE_WAIT:
    case WIRE_SERVICES:
    case WIRE_WATCH:
    case WIRE_TYPE_COUNT:
        break;
    }
    memset(msg, 0, sizeof(*msg));
}

const char *wire_type_name(enum wire_type type)
{
    switch (type) {
    case WIRE_HELLO:
        return "Hello";
    case WIRE_HELLO_OK:
        return "HelloOk";
    case WIRE_REGISTER:
        return "Register";
    case WIRE_COMMAND:
        return "Command";
    case WIRE_REPLY:
        return "Reply";
    case WIRE_PING:
        return "Ping";
    case WIRE_PONG:
        return "Pong";
    case WIRE_ERROR:
        return "Error";
    case WIRE_ACK:
        return "Ack";
    case WIRE_IN_DOUBT:
        return "InDoubt";
    case WIRE_DECISION:
        return "Decision";
    case WIRE_DEFINE:
        return "Define";
    case WIRE_DEFINED:
        return "Defined";
    case WIRE_START:
        return "Start";
    case WIRE_STARTED:
        return "Started";
    case WIRE_GET:
        return "Get";
    case WIRE_SAGA_INFO:
        return "SagaInfo";
    case WIRE_WAIT:
        return "Wait";
    case WIRE_LIST:
        return "List";
    case WIRE_SAGA_LIST:
        return "SagaList";
    case WIRE_RETRY:
        return "Retry";
    case WIRE_ABORT:
        return "Abort";
    case WIRE_RESOLVE:
        return "Resolve";
    case WIRE_SERVICES:
        return "Services";
    case WIRE_SERVICE_LIST:
        return "ServiceList";
    case WIRE_WATCH:
        return "Watch";
    case WIRE_EVENT:
        return "Event";
    case WIRE_NONE:
    case WIRE_TYPE_COUNT:
        break;
    }
    return "unknown";
}
