/* Copies store results into wire messages. May not touch the loop, the store or sockets. */
#include "server/view.h"

#include <stdlib.h>
#include <string.h>

#include "saga/error.h"

static int dup_str(const char *in, char **out)
{
    *out = strdup(in ? in : "");
    return *out ? 0 : SAGA_ENOMEM;
}

static int dup_bytes(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (in == NULL || len == 0)
        return 0;
    *out = malloc(len);
    if (*out == NULL)
        return SAGA_ENOMEM;
    memcpy(*out, in, len);
    *out_len = len;
    return 0;
}

enum wire_mode view_mode(enum def_mode mode)
{
    return mode == DEF_MODE_2PC ? WIRE_MODE_2PC : WIRE_MODE_SAGA;
}

static const char *step_name(const struct definition *def, int32_t step)
{
    if (step < 0)
        return "";
    if (def != NULL && step < def->n_steps)
        return def->steps[step].name;
    return "?";
}

int view_event(const struct store_event *e, const struct definition *def, struct wire_event *out)
{
    *out = (struct wire_event){.seq = e->seq, .at_ms = e->at_ms, .attempt = e->attempt};
    if (dup_str(e->kind, &out->kind) || dup_str(step_name(def, e->step), &out->step) ||
        dup_str(e->detail, &out->detail))
        return SAGA_ENOMEM;
    return 0;
}

int view_saga_info(const struct store_saga_view *v, const struct definition *def,
                   struct wire_saga_info *out)
{
    const struct store_saga *s = v->saga;
    *out = (struct wire_saga_info){
        .version = s->version,
        .mode = view_mode(s->mode),
        .status = s->status,
        .created_ms = s->created_ms,
        .updated_ms = s->updated_ms,
        .deadline_ms = s->deadline_ms,
    };
    memcpy(out->saga_id, s->id.bytes, sizeof(out->saga_id));
    if (dup_str(s->definition, &out->definition) || dup_str(s->error, &out->error) ||
        dup_bytes(s->input, s->input_len, &out->input, &out->input_len))
        return SAGA_ENOMEM;

    size_t n_steps = def != NULL ? def->n_steps : s->n_steps;
    if (n_steps > 0) {
        out->steps = calloc(n_steps, sizeof(*out->steps));
        if (out->steps == NULL)
            return SAGA_ENOMEM;
    }
    for (size_t i = 0; i < n_steps; i++) {
        struct wire_step_info *si = &out->steps[out->n_steps++];
        si->status = SAGA_STEP_PENDING;
        const struct def_step *ds = def != NULL ? &def->steps[i] : NULL;
        if (dup_str(ds ? ds->name : "?", &si->name) ||
            dup_str(ds ? ds->service : "", &si->service) ||
            dup_str(ds ? ds->action : "", &si->action))
            return SAGA_ENOMEM;
        for (size_t j = 0; j < v->n_steps; j++) {
            const struct store_step *st = &v->steps[j];
            if (st->step != i)
                continue;
            si->status = st->status;
            si->attempts = st->attempts;
            si->compensate_attempts = st->compensate_attempts;
            si->started_ms = st->started_ms;
            si->finished_ms = st->finished_ms;
            if (st->error != NULL && dup_str(st->error, &si->error))
                return SAGA_ENOMEM;
            if (dup_bytes(st->output, st->output_len, &si->output, &si->output_len))
                return SAGA_ENOMEM;
            break;
        }
        if (si->error == NULL && dup_str("", &si->error))
            return SAGA_ENOMEM;
    }

    if (v->n_events > 0) {
        out->events = calloc(v->n_events, sizeof(*out->events));
        if (out->events == NULL)
            return SAGA_ENOMEM;
    }
    for (size_t i = 0; i < v->n_events; i++) {
        int err = view_event(&v->events[i], def, &out->events[out->n_events++]);
        if (err != 0)
            return err;
    }
    return 0;
}

int view_saga_list(const struct store_page *p, struct wire_saga_list *out)
{
    *out = (struct wire_saga_list){0};
    if (dup_str(p->next_cursor, &out->next_cursor))
        return SAGA_ENOMEM;
    if (p->n == 0)
        return 0;
    out->sagas = calloc(p->n, sizeof(*out->sagas));
    if (out->sagas == NULL)
        return SAGA_ENOMEM;
    for (size_t i = 0; i < p->n; i++) {
        const struct store_saga *s = &p->sagas[i];
        struct wire_saga_summary *w = &out->sagas[out->n_sagas++];
        *w = (struct wire_saga_summary){
            .version = s->version,
            .mode = view_mode(s->mode),
            .status = s->status,
            .created_ms = s->created_ms,
            .updated_ms = s->updated_ms,
        };
        memcpy(w->saga_id, s->id.bytes, sizeof(w->saga_id));
        if (dup_str(s->definition, &w->definition) || dup_str(s->error, &w->error))
            return SAGA_ENOMEM;
    }
    return 0;
}
