/* Calls: the command a handler sees, its accessors, completion from any
 * thread, and the pool of handler threads. Sends nothing itself: finished
 * calls go back to the loop through the participant's uv_async. */
#include <stdlib.h>
#include <string.h>

#include "participant_int.h"

#define REASON_MAX 1024

struct saga_call *saga__call_new(saga_participant_t *p, struct wire_command *cmd,
                                 saga_handler_fn fn, void *fn_data)
{
    struct saga_call *call = calloc(1, sizeof(*call));
    if (call == NULL)
        return NULL;
    call->p = p;
    call->cmd = *cmd;
    call->reply_attempt = cmd->attempt;
    memset(cmd, 0, sizeof(*cmd));
    saga_id_format(call->cmd.saga_id, call->id_text);
    call->fn = fn;
    call->fn_data = fn_data;
    call->in_handler = 1;
    return call;
}

void saga__call_free(struct saga_call *call)
{
    if (call == NULL)
        return;
    struct wire_msg m = {.type = WIRE_COMMAND, .command = call->cmd};
    wire_msg_free_contents(&m);
    free(call->out);
    free(call->reason);
    free(call);
}

/* Hands a finished call to the loop; p->mu held. */
static void finished_locked(struct saga_call *call)
{
    saga_participant_t *p = call->p;
    call->qnext = NULL;
    if (p->done_tail != NULL)
        p->done_tail->qnext = call;
    else
        p->done_q = call;
    p->done_tail = call;
    if (atomic_load(&p->async_live))
        uv_async_send(&p->async);
}

struct saga_call *saga__done_take(saga_participant_t *p)
{
    uv_mutex_lock(&p->mu);
    struct saga_call *q = p->done_q;
    p->done_q = p->done_tail = NULL;
    uv_mutex_unlock(&p->mu);
    return q;
}

static void call_run(struct saga_call *call)
{
    call->fn(call, call->fn_data);
    saga_participant_t *p = call->p;
    uv_mutex_lock(&p->mu);
    call->in_handler = 0;
    if (call->done)
        finished_locked(call);
    uv_mutex_unlock(&p->mu);
}

static void pool_main(void *arg)
{
    saga_participant_t *p = arg;
    uv_mutex_lock(&p->mu);
    for (;;) {
        while (p->run_q == NULL && !p->pool_quit)
            uv_cond_wait(&p->cond, &p->mu);
        if (p->pool_quit)
            break;
        struct saga_call *call = p->run_q;
        p->run_q = call->qnext;
        if (p->run_q == NULL)
            p->run_tail = NULL;
        call->qnext = NULL;
        uv_mutex_unlock(&p->mu);
        call_run(call);
        uv_mutex_lock(&p->mu);
    }
    uv_mutex_unlock(&p->mu);
}

int saga__pool_start(saga_participant_t *p)
{
    if (p->threads == 0)
        return 0;
    p->pool = calloc(p->threads, sizeof(*p->pool));
    if (p->pool == NULL)
        return SAGA_ENOMEM;
    for (unsigned i = 0; i < p->threads; i++) {
        if (uv_thread_create(&p->pool[i], pool_main, p) != 0) {
            saga__pool_stop(p);
            return SAGA_EIO;
        }
        p->pool_started++;
    }
    return 0;
}

void saga__pool_stop(saga_participant_t *p)
{
    uv_mutex_lock(&p->mu);
    p->pool_quit = 1;
    uv_cond_broadcast(&p->cond);
    uv_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->pool_started; i++)
        uv_thread_join(&p->pool[i]);
    p->pool_started = 0;
    free(p->pool);
    p->pool = NULL;
}

void saga__call_dispatch(struct saga_call *call)
{
    saga_participant_t *p = call->p;
    if (p->threads == 0) {
        call_run(call);
        return;
    }
    uv_mutex_lock(&p->mu);
    call->qnext = NULL;
    if (p->run_tail != NULL)
        p->run_tail->qnext = call;
    else
        p->run_q = call;
    p->run_tail = call;
    uv_cond_signal(&p->cond);
    uv_mutex_unlock(&p->mu);
}

static int complete(saga_call_t *call, saga_outcome_t outcome, const void *out, size_t len,
                    const char *reason)
{
    if (call == NULL || (out == NULL && len > 0))
        return SAGA_EINVAL;
    uint8_t *copy = NULL;
    char *why = NULL;
    if (len > 0) {
        copy = malloc(len);
        if (copy == NULL)
            return SAGA_ENOMEM;
        memcpy(copy, out, len);
    }
    if (outcome != SAGA_OUTCOME_OK) {
        const char *r = reason != NULL ? reason : "";
        size_t rl = strnlen(r, REASON_MAX);
        why = malloc(rl + 1);
        if (why == NULL) {
            free(copy);
            return SAGA_ENOMEM;
        }
        memcpy(why, r, rl);
        why[rl] = '\0';
    }
    saga_participant_t *p = call->p;
    int rc = 0;
    uv_mutex_lock(&p->mu);
    if (call->done) {
        rc = SAGA_EALREADY;
    } else if (len > p->max_payload) {
        rc = SAGA_ETOOBIG;
    } else {
        call->done = 1;
        call->outcome = outcome;
        call->out = copy;
        call->out_len = len;
        call->reason = why;
        copy = NULL;
        why = NULL;
        if (!call->in_handler)
            finished_locked(call);
    }
    uv_mutex_unlock(&p->mu);
    free(copy);
    free(why);
    return rc;
}

SAGA_EXTERN int saga_call_ok(saga_call_t *call, const void *out, size_t len)
{
    return complete(call, SAGA_OUTCOME_OK, out, len, NULL);
}

SAGA_EXTERN int saga_call_fail(saga_call_t *call, const char *reason)
{
    return complete(call, SAGA_OUTCOME_FAIL, NULL, 0, reason);
}

SAGA_EXTERN int saga_call_retry(saga_call_t *call, const char *reason)
{
    return complete(call, SAGA_OUTCOME_RETRY, NULL, 0, reason);
}

/* ---- accessors ---------------------------------------------------------------- */

static const uint8_t empty_bytes[1];

static const uint8_t *bytes_or_empty(const uint8_t *b, size_t n, size_t *len)
{
    if (len != NULL)
        *len = n;
    return b != NULL ? b : empty_bytes;
}

SAGA_EXTERN saga_op_t saga_call_op(const saga_call_t *call)
{
    return call->cmd.op;
}

SAGA_EXTERN const uint8_t *saga_call_saga_id(const saga_call_t *call)
{
    return call->cmd.saga_id;
}

SAGA_EXTERN const char *saga_call_saga_id_text(const saga_call_t *call)
{
    return call->id_text;
}

SAGA_EXTERN const char *saga_call_definition(const saga_call_t *call)
{
    return call->cmd.definition;
}

SAGA_EXTERN uint32_t saga_call_definition_version(const saga_call_t *call)
{
    return call->cmd.definition_version;
}

SAGA_EXTERN const char *saga_call_step(const saga_call_t *call)
{
    return call->cmd.step;
}

SAGA_EXTERN uint32_t saga_call_step_index(const saga_call_t *call)
{
    return call->cmd.step_index;
}

SAGA_EXTERN const char *saga_call_action(const saga_call_t *call)
{
    return call->cmd.action;
}

SAGA_EXTERN uint32_t saga_call_attempt(const saga_call_t *call)
{
    return call->cmd.attempt;
}

SAGA_EXTERN const char *saga_call_idempotency_key(const saga_call_t *call)
{
    return call->cmd.idempotency_key;
}

SAGA_EXTERN uint32_t saga_call_timeout_ms(const saga_call_t *call)
{
    return call->cmd.timeout_ms;
}

SAGA_EXTERN const uint8_t *saga_call_input(const saga_call_t *call, size_t *len)
{
    return bytes_or_empty(call->cmd.input, call->cmd.input_len, len);
}

SAGA_EXTERN const uint8_t *saga_call_dep(const saga_call_t *call, const char *step, size_t *len)
{
    if (step != NULL) {
        for (size_t i = 0; i < call->cmd.n_deps; i++) {
            const struct wire_step_output *d = &call->cmd.deps[i];
            if (strcmp(d->step, step) == 0)
                return bytes_or_empty(d->output, d->output_len, len);
        }
    }
    if (len != NULL)
        *len = 0;
    return NULL;
}

SAGA_EXTERN size_t saga_call_dep_count(const saga_call_t *call)
{
    return call->cmd.n_deps;
}

SAGA_EXTERN const uint8_t *saga_call_dep_at(const saga_call_t *call, size_t i, const char **step,
                                            size_t *len)
{
    if (i >= call->cmd.n_deps) {
        if (step != NULL)
            *step = NULL;
        if (len != NULL)
            *len = 0;
        return NULL;
    }
    const struct wire_step_output *d = &call->cmd.deps[i];
    if (step != NULL)
        *step = d->step;
    return bytes_or_empty(d->output, d->output_len, len);
}

SAGA_EXTERN const uint8_t *saga_call_own_output(const saga_call_t *call, size_t *len)
{
    return bytes_or_empty(call->cmd.own_output, call->cmd.own_output_len, len);
}

SAGA_EXTERN saga_participant_t *saga_call_participant(const saga_call_t *call)
{
    return call->p;
}
