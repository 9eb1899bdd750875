/* Client results: one object per answer, holding the decoded message and
 * read-only public views of it. No I/O; built and read only. */
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

struct saga_result {
    int status;
    char *message;
    char *holder;        /* an operator command refused: HOST:PORT of the saga's coordinator */
    struct wire_msg msg; /* the answer's contents (owned), type WIRE_NONE for errors */
    char id_text[SAGA_ID_TEXT_LEN];
    saga_info_t info;
    saga_step_info_t *steps;
    saga_event_t *events;
    saga_summary_t *summaries;
    saga_service_info_t *services;
    saga_instance_info_t *instances;
};

static const uint8_t empty[1];

/* Handed out when even an error result cannot be allocated. */
static const struct saga_result nomem_result = {.status = SAGA_ENOMEM,
                                                .message = (char *)"out of memory"};

static const uint8_t *bytes(const uint8_t *b)
{
    return b != NULL ? b : empty;
}

saga_result_t *saga__result_refused(int status, const char *message, const char *holder)
{
    saga_result_t *r = saga__result_error(status, message);
    if (r != &nomem_result && holder != NULL && holder[0] != '\0')
        r->holder = saga__strdup(holder); /* NULL when out of memory: no address, still an error */
    return r;
}

saga_result_t *saga__result_error(int status, const char *message)
{
    saga_result_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return (saga_result_t *)&nomem_result;
    r->status = status != 0 ? status : SAGA_EINTERNAL;
    r->message = saga__strdup(message != NULL ? message : saga_strerror(r->status));
    if (r->message == NULL) {
        free(r);
        return (saga_result_t *)&nomem_result;
    }
    return r;
}

void saga__event_view(const struct wire_event *in, saga_event_t *out)
{
    out->seq = in->seq;
    out->at_ms = in->at_ms;
    out->kind = in->kind;
    out->step = in->step;
    out->attempt = in->attempt;
    out->detail = in->detail;
}

static int build_info(saga_result_t *r)
{
    const struct wire_saga_info *m = &r->msg.saga_info;
    saga_info_t *in = &r->info;
    memcpy(in->saga_id, m->saga_id, SAGA_ID_LEN);
    saga_id_format(m->saga_id, in->saga_id_text);
    in->definition = m->definition;
    in->version = m->version;
    in->mode = (saga_mode_t)m->mode;
    in->status = m->status;
    in->error = m->error;
    in->created_ms = m->created_ms;
    in->updated_ms = m->updated_ms;
    in->deadline_ms = m->deadline_ms;
    in->input = bytes(m->input);
    in->input_len = m->input_len;
    if (m->n_steps > 0) {
        r->steps = calloc(m->n_steps, sizeof(*r->steps));
        if (r->steps == NULL)
            return SAGA_ENOMEM;
    }
    for (size_t i = 0; i < m->n_steps; i++) {
        const struct wire_step_info *s = &m->steps[i];
        r->steps[i] = (saga_step_info_t){
            .name = s->name,
            .service = s->service,
            .action = s->action,
            .status = s->status,
            .attempts = s->attempts,
            .compensate_attempts = s->compensate_attempts,
            .error = s->error,
            .started_ms = s->started_ms,
            .finished_ms = s->finished_ms,
            .output = bytes(s->output),
            .output_len = s->output_len,
        };
    }
    in->steps = r->steps;
    in->n_steps = m->n_steps;
    if (m->n_events > 0) {
        r->events = calloc(m->n_events, sizeof(*r->events));
        if (r->events == NULL)
            return SAGA_ENOMEM;
    }
    for (size_t i = 0; i < m->n_events; i++)
        saga__event_view(&m->events[i], &r->events[i]);
    in->events = r->events;
    in->n_events = m->n_events;
    return 0;
}

static int build_list(saga_result_t *r)
{
    const struct wire_saga_list *m = &r->msg.saga_list;
    if (m->n_sagas == 0)
        return 0;
    r->summaries = calloc(m->n_sagas, sizeof(*r->summaries));
    if (r->summaries == NULL)
        return SAGA_ENOMEM;
    for (size_t i = 0; i < m->n_sagas; i++) {
        const struct wire_saga_summary *s = &m->sagas[i];
        saga_summary_t *o = &r->summaries[i];
        memcpy(o->saga_id, s->saga_id, SAGA_ID_LEN);
        saga_id_format(s->saga_id, o->saga_id_text);
        o->definition = s->definition;
        o->version = s->version;
        o->mode = (saga_mode_t)s->mode;
        o->status = s->status;
        o->error = s->error;
        o->created_ms = s->created_ms;
        o->updated_ms = s->updated_ms;
    }
    return 0;
}

static int build_services(saga_result_t *r)
{
    const struct wire_service_list *m = &r->msg.service_list;
    size_t total = 0;
    for (size_t i = 0; i < m->n_services; i++)
        total += m->services[i].n_instances;
    if (m->n_services > 0) {
        r->services = calloc(m->n_services, sizeof(*r->services));
        if (r->services == NULL)
            return SAGA_ENOMEM;
    }
    if (total > 0) {
        r->instances = calloc(total, sizeof(*r->instances));
        if (r->instances == NULL)
            return SAGA_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < m->n_services; i++) {
        const struct wire_service *s = &m->services[i];
        r->services[i].name = s->name;
        r->services[i].instances = r->instances != NULL ? &r->instances[k] : NULL;
        r->services[i].n_instances = s->n_instances;
        for (size_t j = 0; j < s->n_instances; j++, k++) {
            const struct wire_instance *in = &s->instances[j];
            r->instances[k] = (saga_instance_info_t){
                .instance_id = in->instance_id,
                .coordinator_id = in->coordinator_id,
                .actions = (const char *const *)in->actions,
                .n_actions = in->n_actions,
                .in_flight = in->in_flight,
                .max_in_flight = in->max_in_flight,
            };
        }
    }
    return 0;
}

saga_result_t *saga__result_from_msg(struct wire_msg *msg)
{
    saga_result_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        wire_msg_free_contents(msg);
        return (saga_result_t *)&nomem_result;
    }
    r->msg = *msg;
    memset(msg, 0, sizeof(*msg));
    r->message = saga__strdup("");
    int rc = r->message != NULL ? 0 : SAGA_ENOMEM;
    if (rc == 0) {
        switch (r->msg.type) {
        case WIRE_STARTED:
            saga_id_format(r->msg.started.saga_id, r->id_text);
            break;
        case WIRE_SAGA_INFO:
            rc = build_info(r);
            break;
        case WIRE_SAGA_LIST:
            rc = build_list(r);
            break;
        case WIRE_SERVICE_LIST:
            rc = build_services(r);
            break;
        default:
            break;
        }
    }
    if (rc != 0) {
        saga_result_free(&r);
        return (saga_result_t *)&nomem_result;
    }
    return r;
}

SAGA_EXTERN void saga_result_free(saga_result_t **rp)
{
    if (rp == NULL || *rp == NULL)
        return;
    saga_result_t *r = *rp;
    *rp = NULL;
    if (r == &nomem_result)
        return;
    wire_msg_free_contents(&r->msg);
    free(r->message);
    free(r->holder);
    free(r->steps);
    free(r->events);
    free(r->summaries);
    free(r->services);
    free(r->instances);
    free(r);
}

SAGA_EXTERN int saga_result_status(const saga_result_t *r)
{
    return r != NULL ? r->status : SAGA_EINVAL;
}

SAGA_EXTERN const char *saga_result_error(const saga_result_t *r)
{
    return r != NULL && r->message != NULL ? r->message : "";
}

SAGA_EXTERN const char *saga_result_holder(const saga_result_t *r)
{
    return r != NULL && r->holder != NULL ? r->holder : "";
}

SAGA_EXTERN const char *saga_result_def_name(const saga_result_t *r)
{
    return r != NULL && r->msg.type == WIRE_DEFINED ? r->msg.defined.name : "";
}

SAGA_EXTERN uint32_t saga_result_def_version(const saga_result_t *r)
{
    return r != NULL && r->msg.type == WIRE_DEFINED ? r->msg.defined.version : 0;
}

SAGA_EXTERN const char *saga_result_def_hash(const saga_result_t *r)
{
    return r != NULL && r->msg.type == WIRE_DEFINED ? r->msg.defined.hash : "";
}

SAGA_EXTERN int saga_result_def_created(const saga_result_t *r)
{
    return r != NULL && r->msg.type == WIRE_DEFINED && r->msg.defined.created;
}

SAGA_EXTERN const uint8_t *saga_result_saga_id(const saga_result_t *r)
{
    return r != NULL && r->msg.type == WIRE_STARTED ? r->msg.started.saga_id : NULL;
}

SAGA_EXTERN const char *saga_result_saga_id_text(const saga_result_t *r)
{
    return r != NULL && r->msg.type == WIRE_STARTED ? r->id_text : "";
}

SAGA_EXTERN int saga_result_existed(const saga_result_t *r)
{
    return r != NULL && r->msg.type == WIRE_STARTED && r->msg.started.existed;
}

SAGA_EXTERN const saga_info_t *saga_result_info(const saga_result_t *r)
{
    return r != NULL && r->msg.type == WIRE_SAGA_INFO ? &r->info : NULL;
}

SAGA_EXTERN size_t saga_result_list_count(const saga_result_t *r)
{
    return r != NULL && r->msg.type == WIRE_SAGA_LIST ? r->msg.saga_list.n_sagas : 0;
}

SAGA_EXTERN const saga_summary_t *saga_result_list_at(const saga_result_t *r, size_t i)
{
    return i < saga_result_list_count(r) ? &r->summaries[i] : NULL;
}

SAGA_EXTERN const char *saga_result_next_cursor(const saga_result_t *r)
{
    return r != NULL && r->msg.type == WIRE_SAGA_LIST ? r->msg.saga_list.next_cursor : "";
}

SAGA_EXTERN size_t saga_result_service_count(const saga_result_t *r)
{
    return r != NULL && r->msg.type == WIRE_SERVICE_LIST ? r->msg.service_list.n_services : 0;
}

SAGA_EXTERN const saga_service_info_t *saga_result_service_at(const saga_result_t *r, size_t i)
{
    return i < saga_result_service_count(r) ? &r->services[i] : NULL;
}

SAGA_EXTERN const char *saga_mode_name(saga_mode_t mode)
{
    switch (mode) {
    case SAGA_MODE_SAGA:
        return "saga";
    case SAGA_MODE_2PC:
        return "2pc";
    default:
        return "unknown";
    }
}
