/* The participant registry: services, their instances, actions and in-flight
 * counts. May not touch connections, sagas or the store. */
#include "server/registry.h"

#include <stdlib.h>
#include <string.h>

#include "saga/error.h"

struct action {
    char *name;
    uint32_t ops; /* WIRE_OP_BIT(op) set */
};

struct instance {
    struct instance *next; /* in its service */
    struct service *service;
    char *id;
    void *session;
    struct action *actions;
    size_t n_actions;
    uint32_t max_in_flight; /* 0 = no limit */
    uint32_t in_flight;
    struct inflight head; /* circular list of tracked commands */
};

struct service {
    struct service *next;
    char *name;
    struct instance *instances;
    size_t n_instances;
};

struct registry {
    struct service *services;
    size_t n_instances;
};

int registry_new(struct registry **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : SAGA_ENOMEM;
}

void registry_free(struct registry **r)
{
    if (*r == NULL)
        return;
    struct service *svc = (*r)->services;
    while (svc != NULL) {
        struct service *next = svc->next;
        free(svc->name);
        free(svc);
        svc = next;
    }
    free(*r);
    *r = NULL;
}

static struct service *service_find(const struct registry *r, const char *name)
{
    for (struct service *svc = r->services; svc != NULL; svc = svc->next) {
        if (strcmp(svc->name, name) == 0)
            return svc;
    }
    return NULL;
}

int registry_add(struct registry *r, const char *service, const char *instance_id, void *session,
                 struct instance **out)
{
    struct service *svc = service_find(r, service);
    int new_service = svc == NULL;
    if (new_service) {
        svc = calloc(1, sizeof(*svc));
        if (svc == NULL)
            return SAGA_ENOMEM;
        svc->name = strdup(service);
        if (svc->name == NULL)
            goto fail_service;
    }
    struct instance *inst = calloc(1, sizeof(*inst));
    if (inst == NULL)
        goto fail_service;
    inst->id = strdup(instance_id);
    if (inst->id == NULL) {
        free(inst);
        goto fail_service;
    }
    inst->session = session;
    inst->service = svc;
    inst->head.prev = inst->head.next = &inst->head;
    inst->next = svc->instances;
    svc->instances = inst;
    svc->n_instances++;
    if (new_service) {
        svc->next = r->services;
        r->services = svc;
    }
    r->n_instances++;
    *out = inst;
    return 0;

fail_service:
    if (new_service) {
        free(svc->name);
        free(svc);
    }
    return SAGA_ENOMEM;
}

static void actions_free(struct action *actions, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(actions[i].name);
    free(actions);
}

int registry_set_actions(struct registry *r, struct instance *inst, const struct wire_register *reg)
{
    (void)r;
    struct action *actions = calloc(reg->n_actions ? reg->n_actions : 1, sizeof(*actions));
    if (actions == NULL)
        return SAGA_ENOMEM;
    for (size_t i = 0; i < reg->n_actions; i++) {
        const char *name = reg->actions[i].name;
        int bad = name == NULL || name[0] == '\0';
        for (size_t j = 0; !bad && j < i; j++)
            bad = strcmp(actions[j].name, name) == 0;
        if (bad) {
            actions_free(actions, i);
            return SAGA_EINVAL;
        }
        actions[i].name = strdup(name);
        if (actions[i].name == NULL) {
            actions_free(actions, i);
            return SAGA_ENOMEM;
        }
        actions[i].ops = reg->actions[i].ops;
    }
    actions_free(inst->actions, inst->n_actions);
    inst->actions = actions;
    inst->n_actions = reg->n_actions;
    inst->max_in_flight = reg->max_in_flight;
    return 0;
}

void registry_remove(struct registry *r, struct instance *inst,
                     void (*lost)(struct inflight *f, void *data), void *data)
{
    struct service *svc = inst->service;
    for (struct instance **p = &svc->instances; *p != NULL; p = &(*p)->next) {
        if (*p == inst) {
            *p = inst->next;
            break;
        }
    }
    svc->n_instances--;
    r->n_instances--;
    while (inst->head.next != &inst->head) {
        struct inflight *f = inst->head.next;
        registry_untrack(f);
        if (lost != NULL)
            lost(f, data);
    }
    actions_free(inst->actions, inst->n_actions);
    free(inst->id);
    free(inst);
    /* Services stay listed (with no instances) once seen: there are few. */
}

static int serves(const struct instance *inst, const char *action, saga_op_t op)
{
    for (size_t i = 0; i < inst->n_actions; i++) {
        if (strcmp(inst->actions[i].name, action) == 0)
            return (inst->actions[i].ops & WIRE_OP_BIT(op)) != 0;
    }
    return 0;
}

struct instance *registry_pick(struct registry *r, const char *service, const char *action,
                               saga_op_t op, int *known)
{
    *known = 0;
    struct service *svc = service_find(r, service);
    if (svc == NULL)
        return NULL;
    struct instance *best = NULL;
    for (struct instance *inst = svc->instances; inst != NULL; inst = inst->next) {
        if (!serves(inst, action, op))
            continue;
        *known = 1;
        if (inst->max_in_flight != 0 && inst->in_flight >= inst->max_in_flight)
            continue;
        if (best == NULL || inst->in_flight < best->in_flight)
            best = inst;
    }
    return best;
}

void registry_track(struct instance *inst, struct inflight *f)
{
    f->inst = inst;
    f->prev = inst->head.prev;
    f->next = &inst->head;
    inst->head.prev->next = f;
    inst->head.prev = f;
    inst->in_flight++;
}

void registry_untrack(struct inflight *f)
{
    if (f->inst == NULL)
        return;
    f->prev->next = f->next;
    f->next->prev = f->prev;
    f->inst->in_flight--;
    f->inst = NULL;
    f->prev = f->next = NULL;
}

void *registry_session(const struct instance *inst)
{
    return inst->session;
}

const char *registry_instance_id(const struct instance *inst)
{
    return inst->id;
}

const char *registry_instance_service(const struct instance *inst)
{
    return inst->service->name;
}

uint32_t registry_in_flight(const struct instance *inst)
{
    return inst->in_flight;
}

size_t registry_count(const struct registry *r)
{
    return r->n_instances;
}

int registry_describe(const struct registry *r, const char *coordinator_id,
                      struct wire_service_list *out)
{
    *out = (struct wire_service_list){0};
    size_t n = 0;
    for (struct service *svc = r->services; svc != NULL; svc = svc->next)
        n++;
    if (n == 0)
        return 0;
    out->services = calloc(n, sizeof(*out->services));
    if (out->services == NULL)
        return SAGA_ENOMEM;
    for (struct service *svc = r->services; svc != NULL; svc = svc->next) {
        struct wire_service *ws = &out->services[out->n_services++];
        ws->name = strdup(svc->name);
        if (ws->name == NULL)
            return SAGA_ENOMEM;
        if (svc->n_instances == 0)
            continue;
        ws->instances = calloc(svc->n_instances, sizeof(*ws->instances));
        if (ws->instances == NULL)
            return SAGA_ENOMEM;
        for (struct instance *inst = svc->instances; inst != NULL; inst = inst->next) {
            struct wire_instance *wi = &ws->instances[ws->n_instances++];
            wi->instance_id = strdup(inst->id);
            wi->coordinator_id = strdup(coordinator_id);
            wi->in_flight = inst->in_flight;
            wi->max_in_flight = inst->max_in_flight;
            if (wi->instance_id == NULL || wi->coordinator_id == NULL)
                return SAGA_ENOMEM;
            if (inst->n_actions == 0)
                continue;
            wi->actions = calloc(inst->n_actions, sizeof(*wi->actions));
            if (wi->actions == NULL)
                return SAGA_ENOMEM;
            for (size_t i = 0; i < inst->n_actions; i++) {
                wi->actions[wi->n_actions] = strdup(inst->actions[i].name);
                if (wi->actions[wi->n_actions] == NULL)
                    return SAGA_ENOMEM;
                wi->n_actions++;
            }
        }
    }
    return 0;
}
