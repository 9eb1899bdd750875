/* Engine test support: hand-built definitions, a model store, finders. Test
 * code only; it may not reach into the engine beyond saga.h and record.h. */
#include "engine_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
    if (p == NULL)
        abort();
    return p;
}

static char *xstrdup(const char *s)
{
    size_t len = strlen(s);
    char *p = xcalloc(len + 1, 1);
    memcpy(p, s, len);
    return p;
}

struct definition *fixture_def_alloc(enum def_mode mode, uint16_t n)
{
    struct definition *def = xcalloc(1, sizeof(*def));
    def->name = xstrdup("fixture");
    def->version = 1;
    def->mode = mode;
    def->n_steps = n;
    def->steps = xcalloc(n, sizeof(*def->steps));
    def->pivot = -1;
    for (uint16_t i = 0; i < n; i++) {
        struct def_step *st = &def->steps[i];
        char name[16];
        snprintf(name, sizeof(name), "s%u", (unsigned)i);
        st->name = xstrdup(name);
        st->service = xstrdup("svc");
        st->action = xstrdup(name);
        st->kind = DEF_KIND_COMPENSATABLE;
        st->timeout_ms = 1000;
        st->retry = (struct def_retry){3, 100, 1000};
        st->compensate_retry = (struct def_retry){3, 100, 1000};
        st->after = xcalloc(n, sizeof(uint16_t));
        st->dependents = xcalloc(n, sizeof(uint16_t));
    }
    return def;
}

void fixture_after(struct definition *def, uint16_t step, uint16_t dep)
{
    struct def_step *st = &def->steps[step];
    uint16_t k = st->n_after;
    /* keep `after` ascending, as the parser does */
    while (k > 0 && st->after[k - 1] > dep) {
        st->after[k] = st->after[k - 1];
        k--;
    }
    st->after[k] = dep;
    st->n_after++;
}

void fixture_finish(struct definition *def)
{
    def->pivot = -1;
    def->n_stages = 0;
    for (uint16_t i = 0; i < def->n_steps; i++) {
        def->steps[i].n_dependents = 0;
        if (def->steps[i].kind == DEF_KIND_PIVOT)
            def->pivot = i;
    }
    for (uint16_t i = 0; i < def->n_steps; i++) {
        const struct def_step *st = &def->steps[i];
        for (uint16_t k = 0; k < st->n_after; k++) {
            struct def_step *d = &def->steps[st->after[k]];
            d->dependents[d->n_dependents++] = i;
        }
    }
    /* stages: dependencies always have lower indices in fixtures */
    for (uint16_t i = 0; i < def->n_steps; i++) {
        struct def_step *st = &def->steps[i];
        st->stage = 0;
        for (uint16_t k = 0; k < st->n_after; k++) {
            if (def->steps[st->after[k]].stage + 1 > st->stage)
                st->stage = (uint16_t)(def->steps[st->after[k]].stage + 1);
        }
        if (st->stage + 1 > def->n_stages)
            def->n_stages = (uint16_t)(st->stage + 1);
    }
}

void fixture_def_free(struct definition **defp)
{
    struct definition *def = *defp;
    if (def == NULL)
        return;
    for (uint16_t i = 0; i < def->n_steps; i++) {
        free(def->steps[i].name);
        free(def->steps[i].service);
        free(def->steps[i].action);
        free(def->steps[i].after);
        free(def->steps[i].dependents);
    }
    free(def->steps);
    free(def->name);
    free(def->canonical);
    free(def);
    *defp = NULL;
}

uint16_t fixture_index(const struct definition *def, const char *name)
{
    for (uint16_t i = 0; i < def->n_steps; i++) {
        if (strcmp(def->steps[i].name, name) == 0)
            return i;
    }
    fprintf(stderr, "fixture: no step %s\n", name);
    abort();
}

struct def_step *fixture_step(struct definition *def, const char *name)
{
    return &def->steps[fixture_index(def, name)];
}

struct definition *fixture_def(enum def_mode mode, const char *spec)
{
    char buf[1024];
    char *tokens[64];
    uint16_t n = 0;

    if (strlen(spec) >= sizeof(buf))
        abort();
    memcpy(buf, spec, strlen(spec) + 1);
    for (char *p = buf; *p != '\0';) {
        while (*p == ' ')
            *p++ = '\0';
        if (*p == '\0')
            break;
        if (n == 64)
            abort();
        tokens[n++] = p;
        while (*p != '\0' && *p != ' ')
            p++;
    }
    struct definition *def = fixture_def_alloc(mode, n);
    for (uint16_t i = 0; i < n; i++) {
        char *t = tokens[i];
        char *kind = strchr(t, ':');
        char *deps = strchr(t, '<');
        if (kind != NULL)
            *kind++ = '\0';
        if (deps != NULL)
            *deps++ = '\0';
        free(def->steps[i].name);
        def->steps[i].name = xstrdup(t);
        if (kind != NULL && strcmp(kind, "pivot") == 0) {
            def->steps[i].kind = DEF_KIND_PIVOT;
        } else if (kind != NULL && strcmp(kind, "retriable") == 0) {
            def->steps[i].kind = DEF_KIND_RETRIABLE;
            def->steps[i].retry.max_attempts = 0;
        } else if (kind != NULL) {
            abort();
        }
        while (deps != NULL && *deps != '\0') {
            char *comma = strchr(deps, ',');
            if (comma != NULL)
                *comma = '\0';
            uint16_t d = fixture_index(def, deps);
            if (d >= i)
                abort();
            fixture_after(def, i, d);
            deps = comma != NULL ? comma + 1 : NULL;
        }
    }
    fixture_finish(def);
    return def;
}

const struct saga_command *fixture_command(const struct effects *fx, uint16_t step, saga_op_t op)
{
    for (uint32_t i = 0; i < fx->n_commands; i++) {
        if (fx->commands[i].step == step && fx->commands[i].op == op)
            return &fx->commands[i];
    }
    return NULL;
}

const struct record *fixture_step_record(const struct effects *fx, uint16_t step,
                                         saga_step_status_t status)
{
    for (uint32_t i = 0; i < fx->n_records; i++) {
        const struct record *r = &fx->records[i];
        if (r->kind == REC_STEP_UPDATE && r->step == step && r->step_status == status)
            return r;
    }
    return NULL;
}

const struct record *fixture_saga_record(const struct effects *fx, saga_status_t status)
{
    for (uint32_t i = 0; i < fx->n_records; i++) {
        const struct record *r = &fx->records[i];
        if (r->kind != REC_STEP_UPDATE && r->saga_status == status)
            return r;
    }
    return NULL;
}

const struct saga_timer *fixture_timer(const struct effects *fx, enum saga_timer_kind kind,
                                       int32_t step)
{
    for (uint32_t i = 0; i < fx->n_timers; i++) {
        if (fx->timers[i].kind == kind && fx->timers[i].step == step)
            return &fx->timers[i];
    }
    return NULL;
}

int fixture_record_index(const struct effects *fx, const struct record *r)
{
    if (r == NULL)
        return -1;
    return (int)(r - fx->records);
}

/* ---------------------------------------------------------------- model store */

static void set_bytes(uint8_t **dst, size_t *dst_len, const uint8_t *src, size_t len)
{
    free(*dst);
    *dst = NULL;
    *dst_len = len;
    if (len > 0) {
        *dst = xcalloc(len, 1);
        memcpy(*dst, src, len);
    }
}

static void set_text(char **dst, const char *src)
{
    free(*dst);
    *dst = src != NULL ? xstrdup(src) : NULL;
}

void model_store_init(struct model_store *m, uint16_t n_steps, const struct saga_id *id,
                      const uint8_t *input, size_t input_len)
{
    memset(m, 0, sizeof(*m));
    m->n_steps = n_steps;
    m->steps = xcalloc(n_steps, sizeof(*m->steps));
    m->snap_steps = xcalloc(n_steps, sizeof(*m->snap_steps));
    if (id != NULL)
        m->id = *id;
    set_bytes(&m->input, &m->input_len, input, input_len);
}

void model_store_apply(struct model_store *m, const struct effects *fx)
{
    for (uint32_t i = 0; i < fx->n_records; i++) {
        const struct record *r = &fx->records[i];
        if (r->event == NULL)
            abort();
        switch (r->kind) {
        case REC_SAGA_INSERT:
            if (m->exists)
                abort(); /* a second insert: the store would refuse it */
            m->exists = 1;
            m->created_ms = r->at_ms;
            /* fall through */
        case REC_SAGA_UPDATE:
            if (!m->exists || r->step != -1)
                abort();
            m->status = r->saga_status;
            m->deadline_ms = r->deadline_ms;
            m->wake_ms = r->wake_ms;
            set_text(&m->error, r->error);
            break;
        case REC_STEP_UPDATE: {
            if (!m->exists || r->step < 0 || r->step >= m->n_steps)
                abort();
            struct model_step *st = &m->steps[r->step];
            st->status = r->step_status;
            st->attempts = r->attempts;
            st->compensate_attempts = r->compensate_attempts;
            set_bytes(&st->output, &st->output_len, r->output, r->output_len);
            set_text(&st->error, r->error);
            if (strcmp(r->event, "step.compensated") == 0)
                st->compensated_results++;
            break;
        }
        default:
            abort();
        }
    }
}

void model_store_snapshot(struct model_store *m, struct saga_snapshot *snap)
{
    memset(snap, 0, sizeof(*snap));
    snap->id = m->id;
    snap->status = m->status;
    snap->created_ms = m->created_ms;
    snap->deadline_ms = m->deadline_ms;
    snap->wake_ms = m->wake_ms;
    snap->input = m->input;
    snap->input_len = m->input_len;
    snap->error = m->error;
    snap->n_steps = m->n_steps;
    snap->steps = m->snap_steps;
    for (uint16_t i = 0; i < m->n_steps; i++) {
        const struct model_step *st = &m->steps[i];
        m->snap_steps[i] = (struct step_snapshot){
            .status = st->status,
            .attempts = st->attempts,
            .compensate_attempts = st->compensate_attempts,
            .output = st->output,
            .output_len = st->output_len,
            .error = st->error,
        };
    }
}

void model_store_destroy(struct model_store *m)
{
    for (uint16_t i = 0; i < m->n_steps; i++) {
        free(m->steps[i].output);
        free(m->steps[i].error);
    }
    free(m->steps);
    free(m->snap_steps);
    free(m->input);
    free(m->error);
    memset(m, 0, sizeof(*m));
}

static int text_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static int bytes_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

int fixture_snapshots_equal(const struct saga_snapshot *a, const struct saga_snapshot *b, char *why,
                            size_t why_size)
{
#define DIFF(...)                             \
    do {                                      \
        snprintf(why, why_size, __VA_ARGS__); \
        return 0;                             \
    } while (0)
    if (memcmp(&a->id, &b->id, sizeof(a->id)) != 0)
        DIFF("saga id differs");
    if (a->status != b->status)
        DIFF("saga status %s vs %s", saga_status_name(a->status), saga_status_name(b->status));
    if (a->created_ms != b->created_ms || a->deadline_ms != b->deadline_ms)
        DIFF("created/deadline differ");
    if (a->wake_ms != b->wake_ms)
        DIFF("wake %llu vs %llu", (unsigned long long)a->wake_ms, (unsigned long long)b->wake_ms);
    if (!bytes_equal(a->input, a->input_len, b->input, b->input_len))
        DIFF("input differs");
    if (!text_equal(a->error, b->error))
        DIFF("saga error '%s' vs '%s'", a->error ? a->error : "(null)",
             b->error ? b->error : "(null)");
    if (a->n_steps != b->n_steps)
        DIFF("step count differs");
    for (uint16_t i = 0; i < a->n_steps; i++) {
        const struct step_snapshot *x = &a->steps[i];
        const struct step_snapshot *y = &b->steps[i];
        if (x->status != y->status)
            DIFF("step %u status %s vs %s", (unsigned)i, saga_step_status_name(x->status),
                 saga_step_status_name(y->status));
        if (x->attempts != y->attempts || x->compensate_attempts != y->compensate_attempts)
            DIFF("step %u attempts %u/%u vs %u/%u", (unsigned)i, x->attempts,
                 x->compensate_attempts, y->attempts, y->compensate_attempts);
        if (!bytes_equal(x->output, x->output_len, y->output, y->output_len))
            DIFF("step %u output differs", (unsigned)i);
        if (!text_equal(x->error, y->error))
            DIFF("step %u error '%s' vs '%s'", (unsigned)i, x->error ? x->error : "(null)",
                 y->error ? y->error : "(null)");
    }
    return 1;
#undef DIFF
}

int fixture_matches_store(const struct saga *s, struct model_store *m, char *why, size_t why_size)
{
    struct saga_snapshot live, stored;
    struct step_snapshot *steps = xcalloc(m->n_steps, sizeof(*steps));
    saga_engine_project(s, &live, steps);
    model_store_snapshot(m, &stored);
    int eq = fixture_snapshots_equal(&live, &stored, why, why_size);
    free(steps);
    return eq;
}

/* ---------------------------------------------------------------- harness */

static void fail(const char *what, const char *why)
{
    fprintf(stderr, "engine invariant broken after %s: %s\n", what, why);
    abort();
}

void harness_check(struct harness *h, const char *what)
{
    char why[256];
    const struct effects *fx = &h->fx;
    if (h->rc != 0) {
        if (fx->n_records != 0 || fx->n_commands != 0 || fx->n_timers != 0)
            fail(what, "a failed call left effects");
        return;
    }
    /* write-ahead: each command has its dispatch record earlier in this call */
    for (uint32_t c = 0; c < fx->n_commands; c++) {
        const struct saga_command *cmd = &fx->commands[c];
        int found = 0;
        for (uint32_t i = 0; i < fx->n_records && !found; i++) {
            const struct record *r = &fx->records[i];
            int backward = cmd->op == SAGA_OP_COMPENSATE || cmd->op == SAGA_OP_ABORT;
            saga_step_status_t want = cmd->op == SAGA_OP_ACTION || cmd->op == SAGA_OP_PREPARE
                                          ? SAGA_STEP_RUNNING
                                          : SAGA_STEP_COMPENSATING;
            found = r->kind == REC_STEP_UPDATE && r->step == cmd->step &&
                    r->attempt == cmd->attempt && r->step_status == want &&
                    (backward ? r->compensate_attempts : r->attempts) == cmd->attempt;
        }
        if (!found) {
            snprintf(why, sizeof(why), "command step %u op %s attempt %u has no dispatch record",
                     (unsigned)cmd->step, saga_op_name(cmd->op), cmd->attempt);
            fail(what, why);
        }
    }
    model_store_apply(&h->store, fx);
    if (h->s != NULL && !fixture_matches_store(h->s, &h->store, why, sizeof(why)))
        fail(what, why);
    if (h->s != NULL && fx->status != saga_engine_status(h->s))
        fail(what, "fx->status is not the saga's status");
}

void harness_init(struct harness *h, struct definition *def)
{
    static const uint8_t input[] = "input";
    struct saga_id id;
    memset(h, 0, sizeof(*h));
    for (int i = 0; i < 16; i++)
        id.bytes[i] = (uint8_t)(i + 1);
    h->def = def;
    h->now = 1000;
    effects_init(&h->fx);
    model_store_init(&h->store, def->n_steps, &id, input, sizeof(input) - 1);
    if (saga_engine_new(def, &id, input, sizeof(input) - 1, NULL, &h->s) != 0)
        abort();
}

void harness_init_borrowed(struct harness *h, struct definition *def)
{
    harness_init(h, def);
    h->borrowed = 1;
}

void harness_destroy(struct harness *h)
{
    saga_engine_free(&h->s);
    effects_destroy(&h->fx);
    model_store_destroy(&h->store);
    if (!h->borrowed)
        fixture_def_free(&h->def);
}

int harness_start(struct harness *h)
{
    h->rc = saga_engine_start(h->s, h->now, &h->fx);
    harness_check(h, "start");
    return h->rc;
}

int harness_reply(struct harness *h, uint16_t step, saga_op_t op, uint32_t attempt,
                  saga_outcome_t outcome, const char *text)
{
    struct saga_reply r = {
        .step = step,
        .op = op,
        .attempt = attempt,
        .outcome = outcome,
    };
    if (outcome == SAGA_OUTCOME_OK && text != NULL) {
        r.output = (const uint8_t *)text;
        r.output_len = strlen(text);
    } else {
        r.reason = text;
    }
    h->rc = saga_engine_reply(h->s, &r, h->now, &h->fx);
    harness_check(h, "reply");
    return h->rc;
}

int harness_timer(struct harness *h, struct saga_timer timer)
{
    h->rc = saga_engine_timer(h->s, &timer, h->now, &h->fx);
    harness_check(h, "timer");
    return h->rc;
}

int harness_fire(struct harness *h, enum saga_timer_kind kind, int32_t step)
{
    const struct saga_timer *t = fixture_timer(&h->fx, kind, step);
    if (t == NULL) {
        fprintf(stderr, "harness: no %s timer for step %d\n", effects_timer_name(kind), step);
        abort();
    }
    struct saga_timer copy = *t;
    if (h->now < copy.at_ms)
        h->now = copy.at_ms;
    return harness_timer(h, copy);
}

int harness_retry(struct harness *h)
{
    h->rc = saga_engine_retry(h->s, h->now, &h->fx);
    harness_check(h, "retry");
    return h->rc;
}

int harness_abort(struct harness *h)
{
    h->rc = saga_engine_abort(h->s, h->now, &h->fx);
    harness_check(h, "abort");
    return h->rc;
}

int harness_resolve(struct harness *h, saga_status_t outcome)
{
    h->rc = saga_engine_resolve(h->s, outcome, h->now, &h->fx);
    harness_check(h, "resolve");
    return h->rc;
}

int harness_crash(struct harness *h)
{
    struct saga_snapshot snap;
    saga_engine_free(&h->s);
    model_store_snapshot(&h->store, &snap);
    h->rc = saga_engine_rebuild(h->def, &snap, h->rng, h->now, &h->fx, &h->s);
    harness_check(h, "rebuild");
    return h->rc;
}

uint32_t harness_attempt(const struct harness *h, uint16_t step, saga_op_t op)
{
    const struct saga_command *c = fixture_command(&h->fx, step, op);
    if (c == NULL) {
        fprintf(stderr, "harness: no %s command for step %u\n", saga_op_name(op), (unsigned)step);
        abort();
    }
    return c->attempt;
}
