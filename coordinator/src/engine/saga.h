/* The saga engine: the pure state machine that runs one saga (forward steps,
 * compensation) or one two-phase commit. Events in, effects out: no I/O, no
 * clock reads (each call brings now_ms), no globals. docs/engine.md has the
 * states, the transitions and the records each one emits.
 *
 * Every event call first empties `fx`, then fills it. The caller persists
 * fx->records (one transaction, in order) and only once they are durable sends
 * fx->commands; fx->timers are armed at once. Calls on one saga never overlap.
 * Calls that fail (a negative SAGA_E* code) change nothing and leave `fx` empty. */
#ifndef SAGAD_SAGA_H
#define SAGAD_SAGA_H

#include <stddef.h>
#include <stdint.h>

#include "engine/definition.h"
#include "engine/effects.h"
#include "engine/record.h"
#include "saga/types.h"

struct saga;

/* Randomness for backoff jitter, owned by the caller (one per loop, say) and
 * advanced by the engine. A saga given no generator uses no jitter. */
struct saga_rng {
    uint64_t state;
};

void saga_rng_seed(struct saga_rng *rng, uint64_t seed);
uint64_t saga_rng_next(struct saga_rng *rng);

/* A participant's reply, matched against the saga by (step, op, attempt). */
struct saga_reply {
    uint16_t step;
    saga_op_t op;
    uint32_t attempt;
    saga_outcome_t outcome;
    const uint8_t *output; /* OK of an action or prepare: kept (copied) */
    size_t output_len;
    const char *reason; /* FAIL and RETRY: why; NUL-terminated, may be NULL */
};

/* The answer to a participant asking about a prepared step (2pc). */
enum saga_decision {
    SAGA_DECISION_PENDING = 0, /* still preparing: ask again later */
    SAGA_DECISION_COMMIT = 1,
    SAGA_DECISION_ABORT = 2, /* also the answer for a saga the service does not know */
};

/* Creates a saga that has not started, in one allocation holding the saga, its
 * steps and a copy of `input`. `def` is borrowed and must outlive the saga;
 * `rng` (may be NULL) too. Returns 0 and *out, which the caller frees with
 * saga_engine_free(), or SAGA_EINVAL (a definition with no steps or bad
 * indices) or SAGA_ENOMEM. */
int saga_engine_new(const struct definition *def, const struct saga_id *id, const uint8_t *input,
                    size_t input_len, struct saga_rng *rng, struct saga **out)
    __attribute__((warn_unused_result));

/* Frees `*s` (and the outputs and errors it holds) and sets `*s` to NULL. */
void saga_engine_free(struct saga **s);

/* Rebuilds a saga from what the store persisted and emits the effects that
 * resume it: in-flight commands are sent again as their next attempt (with
 * their dispatch records), the deadline is re-armed, compensation or a logged
 * 2pc decision carries on. Nothing in `snap` is kept. Returns 0 and *out, or
 * SAGA_EINVAL (a snapshot that does not fit the definition or is inconsistent),
 * or SAGA_ENOMEM. */
int saga_engine_rebuild(const struct definition *def, const struct saga_snapshot *snap,
                        struct saga_rng *rng, uint64_t now_ms, struct effects *fx,
                        struct saga **out) __attribute__((warn_unused_result));

/* Events. Each returns 0 (fx->ignored says whether the event changed anything),
 * SAGA_EINVAL (a malformed argument), SAGA_ESTATE (an operator command or start
 * in the wrong state: nothing changes), SAGA_EFENCED (the saga was dropped) or
 * SAGA_ENOMEM (nothing changes; the event may be delivered again). */

/* Starts a new saga: the sagas row, the first dispatches, the deadline. */
int saga_engine_start(struct saga *s, uint64_t now_ms, struct effects *fx)
    __attribute__((warn_unused_result));

int saga_engine_reply(struct saga *s, const struct saga_reply *reply, uint64_t now_ms,
                      struct effects *fx) __attribute__((warn_unused_result));

/* A timer the engine asked for is due. */
int saga_engine_timer(struct saga *s, const struct saga_timer *timer, uint64_t now_ms,
                      struct effects *fx) __attribute__((warn_unused_result));

/* Operator: re-attempts what made a STUCK saga stuck, with fresh attempt budgets. */
int saga_engine_retry(struct saga *s, uint64_t now_ms, struct effects *fx)
    __attribute__((warn_unused_result));

/* Operator: compensates a RUNNING saga that has not passed its pivot, or aborts
 * a PREPARING 2pc saga. */
int saga_engine_abort(struct saga *s, uint64_t now_ms, struct effects *fx)
    __attribute__((warn_unused_result));

/* Operator: ends a STUCK saga as `outcome`: COMPLETED or COMPENSATED (mode saga),
 * COMMITTED after a commit decision or ABORTED otherwise (mode 2pc). */
int saga_engine_resolve(struct saga *s, saga_status_t outcome, uint64_t now_ms, struct effects *fx)
    __attribute__((warn_unused_result));

/* The lease is gone: the saga emits nothing more and every later call returns
 * SAGA_EFENCED. fx->dropped tells the caller to free it. */
int saga_engine_lease_lost(struct saga *s, struct effects *fx) __attribute__((warn_unused_result));

/* In-doubt resolution (2pc): what a participant holding prepared work for
 * `step` must do. Changes nothing. Returns 0, or SAGA_EINVAL (not a 2pc saga,
 * or no such step), or SAGA_EFENCED. */
int saga_engine_in_doubt(const struct saga *s, uint16_t step, enum saga_decision *out)
    __attribute__((warn_unused_result));

/* Accessors. Pointers are borrowed and valid until the next event call. */
const struct definition *saga_engine_definition(const struct saga *s);
const struct saga_id *saga_engine_id(const struct saga *s);
saga_status_t saga_engine_status(const struct saga *s);
const char *saga_engine_error(const struct saga *s); /* NULL when none */
uint64_t saga_engine_deadline(const struct saga *s); /* 0 when none */
const uint8_t *saga_engine_input(const struct saga *s, size_t *len);
saga_step_status_t saga_engine_step_status(const struct saga *s, uint16_t step);
/* The forward output of a succeeded step, or NULL (and *len 0). */
const uint8_t *saga_engine_step_output(const struct saga *s, uint16_t step, size_t *len);

/* The persisted projection: what the store holds for this saga once the
 * records of every call so far are durable. `steps` must have room for the
 * definition's step count; pointers are borrowed. */
void saga_engine_project(const struct saga *s, struct saga_snapshot *snap,
                         struct step_snapshot *steps);

/* The bytes saga_engine_new() allocates for `def` and an input of `input_len`. */
size_t saga_engine_alloc_size(const struct definition *def, size_t input_len);

#endif
