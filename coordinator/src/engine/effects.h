/* Effects: what one engine call asks of its caller. Records to persist (one
 * transaction, in order), commands to send once they are durable, timers to
 * arm, and how the saga stands afterwards. Caller-owned buffers, reused. */
#ifndef SAGAD_EFFECTS_H
#define SAGAD_EFFECTS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/record.h"
#include "saga/types.h"

/* A command for a participant. It carries no payload: the dispatcher builds it
 * from the saga (saga_engine_input(), saga_engine_step_output()). */
struct saga_command {
    uint16_t step;
    saga_op_t op;
    uint32_t attempt;    /* 1-based; the reply must echo it */
    uint32_t timeout_ms; /* the step's per-attempt timeout, 0 for none */
};

enum saga_timer_kind {
    SAGA_TIMER_DEADLINE = 1, /* the saga deadline; step -1, op 0, attempt 0 */
    SAGA_TIMER_TIMEOUT = 2,  /* no reply to (step, op, attempt) in time */
    SAGA_TIMER_BACKOFF = 3,  /* time to send (step, op, attempt) after a retry */
};

/* A timer to arm. It comes back through saga_engine_timer() when due; one that
 * no longer matches the saga is ignored, so timers never need cancelling. At
 * most one TIMEOUT or BACKOFF timer per step is live at a time: a new one for a
 * step may replace the caller's earlier one for that step. */
struct saga_timer {
    enum saga_timer_kind kind;
    int32_t step;     /* -1 for the deadline */
    saga_op_t op;     /* 0 for the deadline */
    uint32_t attempt; /* TIMEOUT: the attempt in flight; BACKOFF: the attempt to send */
    uint64_t at_ms;   /* wall-clock ms since the Unix epoch */
};

/* Why an event changed nothing. Ignored events are normal (at-least-once
 * delivery, stale timers); callers count them. */
enum saga_ignored {
    SAGA_APPLIED = 0,
    SAGA_IGNORED_FINISHED = 1,      /* the saga is terminal, dropped or not started */
    SAGA_IGNORED_UNKNOWN_STEP = 2,  /* no such step index */
    SAGA_IGNORED_NOT_IN_FLIGHT = 3, /* nothing is awaited from the step: late or duplicate */
    SAGA_IGNORED_WRONG_OP = 4,      /* the step awaits another op */
    SAGA_IGNORED_WRONG_ATTEMPT = 5, /* the step awaits another attempt */
    SAGA_IGNORED_STALE_TIMER = 6,   /* the timer no longer matches the saga */
};

struct effects {
    struct record *records; /* in order; all of them form one transaction */
    uint32_t n_records;
    struct saga_command *commands; /* send only after the records are durable */
    uint32_t n_commands;
    struct saga_timer *timers; /* local: arm at once */
    uint32_t n_timers;

    saga_status_t status;      /* the saga's status after the call */
    unsigned settled;          /* 1: the call made the saga terminal or STUCK */
    unsigned dropped;          /* 1: the saga lost its lease; free it */
    enum saga_ignored ignored; /* SAGA_APPLIED unless the event changed nothing */

    uint32_t cap_records;
    uint32_t cap_commands;
    uint32_t cap_timers;
};

/* An empty set with no buffers yet. */
void effects_init(struct effects *fx);

/* Frees the buffers; the struct may be initialized again. */
void effects_destroy(struct effects *fx);

/* Empties the set, keeping the buffers. Every engine call starts with it. */
void effects_reset(struct effects *fx);

/* Grows the buffers so that one engine call on a saga of `n_steps` steps can
 * never overflow them. Returns 0 or SAGA_ENOMEM (the set is unchanged). */
int effects_reserve(struct effects *fx, uint16_t n_steps) __attribute__((warn_unused_result));

/* Engine internals: append one zeroed entry and return it. Aborts on overflow,
 * which effects_reserve() rules out. */
struct record *effects_add_record(struct effects *fx);
struct saga_command *effects_add_command(struct effects *fx);
struct saga_timer *effects_add_timer(struct effects *fx);

/* Static names ("deadline", "timeout", "backoff"; "applied", "stale_timer", ...);
 * "unknown" for other values. */
const char *effects_timer_name(enum saga_timer_kind kind);
const char *effects_ignored_name(enum saga_ignored why);

#endif
