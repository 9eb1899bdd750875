/* sagactl --json: the stable JSON documents scripts read (docs/operations.md).
 * Builds jansson values from client results; touches no network or clock. */
#include "sagactl/json.h"

#include "saga/error.h"
#include "sagactl/fmt.h"

json_t *ctl_json_bytes(const uint8_t *p, size_t len)
{
    /* json_stringn refuses invalid UTF-8 (and NUL bytes are allowed): null then. */
    json_t *s = json_stringn((const char *)p, len);
    return s != NULL ? s : json_null();
}

/* A time as an ISO 8601 string, or null for 0 ("not yet"). */
static json_t *json_time(uint64_t ms)
{
    char buf[FMT_LEN];
    return ms == 0 ? json_null() : json_string(fmt_utc(ms, buf));
}

json_t *ctl_json_step(const saga_step_info_t *st)
{
    json_t *duration = json_null();
    if (st->started_ms != 0 && st->finished_ms >= st->started_ms)
        duration = json_integer((json_int_t)(st->finished_ms - st->started_ms));
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:I, s:o, s:o, s:o, s:o}", "name",
                     st->name, "service", st->service, "action", st->action, "status",
                     saga_step_status_name(st->status), "attempts", (json_int_t)st->attempts,
                     "compensate_attempts", (json_int_t)st->compensate_attempts, "error", st->error,
                     "started_ms", (json_int_t)st->started_ms, "finished_ms",
                     (json_int_t)st->finished_ms, "duration_ms", duration, "started",
                     json_time(st->started_ms), "finished", json_time(st->finished_ms), "output",
                     ctl_json_bytes(st->output, st->output_len));
}

json_t *ctl_json_event(const saga_event_t *ev)
{
    return json_pack("{s:I, s:I, s:o, s:s, s:s, s:I, s:s}", "seq", (json_int_t)ev->seq, "at_ms",
                     (json_int_t)ev->at_ms, "at", json_time(ev->at_ms), "kind", ev->kind, "step",
                     ev->step, "attempt", (json_int_t)ev->attempt, "detail", ev->detail);
}

json_t *ctl_json_saga(const saga_info_t *info)
{
    json_t *steps = json_array(), *events = json_array(), *doc = NULL;
    if (steps == NULL || events == NULL)
        goto fail;
    for (size_t i = 0; i < info->n_steps; i++) {
        if (json_array_append_new(steps, ctl_json_step(&info->steps[i])) != 0)
            goto fail;
    }
    for (size_t i = 0; i < info->n_events; i++) {
        if (json_array_append_new(events, ctl_json_event(&info->events[i])) != 0)
            goto fail;
    }
    doc =
        json_pack("{s:s, s:s, s:I, s:s, s:s, s:b, s:s, s:I, s:I, s:I, s:o, s:o, s:o, s:o, "
                  "s:o, s:o}",
                  "saga_id", info->saga_id_text, "definition", info->definition, "version",
                  (json_int_t)info->version, "mode", saga_mode_name(info->mode), "status",
                  saga_status_name(info->status), "terminal", saga_status_is_terminal(info->status),
                  "error", info->error, "created_ms", (json_int_t)info->created_ms, "updated_ms",
                  (json_int_t)info->updated_ms, "deadline_ms", (json_int_t)info->deadline_ms,
                  "created", json_time(info->created_ms), "updated", json_time(info->updated_ms),
                  "deadline", json_time(info->deadline_ms), "input",
                  ctl_json_bytes(info->input, info->input_len), "steps", steps, "events", events);
    return doc; /* "o" stole steps and events, also on failure */
fail:
    json_decref(steps);
    json_decref(events);
    return NULL;
}

json_t *ctl_json_summary(const saga_summary_t *s)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:b, s:s, s:I, s:I, s:o, s:o}", "saga_id",
                     s->saga_id_text, "definition", s->definition, "version",
                     (json_int_t)s->version, "mode", saga_mode_name(s->mode), "status",
                     saga_status_name(s->status), "terminal", saga_status_is_terminal(s->status),
                     "error", s->error, "created_ms", (json_int_t)s->created_ms, "updated_ms",
                     (json_int_t)s->updated_ms, "created", json_time(s->created_ms), "updated",
                     json_time(s->updated_ms));
}

json_t *ctl_json_service(const saga_service_info_t *s)
{
    json_t *instances = json_array();
    if (instances == NULL)
        return NULL;
    for (size_t i = 0; i < s->n_instances; i++) {
        const saga_instance_info_t *in = &s->instances[i];
        json_t *actions = json_array();
        for (size_t a = 0; actions != NULL && a < in->n_actions; a++) {
            if (json_array_append_new(actions, json_string(in->actions[a])) != 0) {
                json_decref(actions);
                actions = NULL;
            }
        }
        json_t *o = actions == NULL
                        ? NULL
                        : json_pack("{s:s, s:s, s:o, s:I, s:I}", "instance_id", in->instance_id,
                                    "coordinator_id", in->coordinator_id, "actions", actions,
                                    "in_flight", (json_int_t)in->in_flight, "max_in_flight",
                                    (json_int_t)in->max_in_flight);
        if (json_array_append_new(instances, o) != 0) {
            json_decref(instances);
            return NULL;
        }
    }
    return json_pack("{s:s, s:o}", "name", s->name, "instances", instances);
}

int ctl_json_print(json_t *doc, FILE *out)
{
    if (doc == NULL)
        return SAGA_ENOMEM;
    int rc = json_dumpf(doc, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (rc != 0 || fputc('\n', out) == EOF || fflush(out) != 0)
        return SAGA_EIO;
    return 0;
}
