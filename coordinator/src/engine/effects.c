/* Effect buffers for the engine: growth, reset and append. Knows nothing of
 * sagas beyond how many entries one call can produce. */
#include "engine/effects.h"

#include <stdlib.h>
#include <string.h>

#include "saga/error.h"

/* The most one engine call emits on a saga of n steps: per step at most two
 * records (a result and the next dispatch, or a cancel, or a skip), one
 * command and one timer; per saga a few status records and the deadline. */
static uint32_t records_for(uint16_t n)
{
    return 3u * n + 8u;
}

static uint32_t commands_for(uint16_t n)
{
    return 2u * n + 4u;
}

void effects_init(struct effects *fx)
{
    memset(fx, 0, sizeof(*fx));
}

void effects_destroy(struct effects *fx)
{
    free(fx->records);
    free(fx->commands);
    free(fx->timers);
    memset(fx, 0, sizeof(*fx));
}

void effects_reset(struct effects *fx)
{
    fx->n_records = 0;
    fx->n_commands = 0;
    fx->n_timers = 0;
    fx->status = SAGA_STATUS_UNKNOWN;
    fx->settled = 0;
    fx->dropped = 0;
    fx->ignored = SAGA_APPLIED;
}

int effects_reserve(struct effects *fx, uint16_t n_steps)
{
    uint32_t want_records = records_for(n_steps);
    uint32_t want_commands = commands_for(n_steps);
    struct record *records = NULL;
    struct saga_command *commands = NULL;
    struct saga_timer *timers = NULL;

    if (fx->cap_records >= want_records && fx->cap_commands >= want_commands &&
        fx->cap_timers >= want_commands)
        return 0;
    records = malloc(want_records * sizeof(*records));
    commands = malloc(want_commands * sizeof(*commands));
    timers = malloc(want_commands * sizeof(*timers));
    if (records == NULL || commands == NULL || timers == NULL)
        goto fail;
    /* Nothing of the current call is lost: reserve runs before the first append. */
    if (fx->n_records > 0)
        memcpy(records, fx->records, fx->n_records * sizeof(*records));
    if (fx->n_commands > 0)
        memcpy(commands, fx->commands, fx->n_commands * sizeof(*commands));
    if (fx->n_timers > 0)
        memcpy(timers, fx->timers, fx->n_timers * sizeof(*timers));
    free(fx->records);
    free(fx->commands);
    free(fx->timers);
    fx->records = records;
    fx->commands = commands;
    fx->timers = timers;
    fx->cap_records = want_records;
    fx->cap_commands = want_commands;
    fx->cap_timers = want_commands;
    return 0;

fail:
    free(timers);
    free(commands);
    free(records);
    return SAGA_ENOMEM;
}

struct record *effects_add_record(struct effects *fx)
{
    if (fx->n_records >= fx->cap_records)
        abort();
    struct record *r = &fx->records[fx->n_records++];
    memset(r, 0, sizeof(*r));
    return r;
}

struct saga_command *effects_add_command(struct effects *fx)
{
    if (fx->n_commands >= fx->cap_commands)
        abort();
    struct saga_command *c = &fx->commands[fx->n_commands++];
    memset(c, 0, sizeof(*c));
    return c;
}

struct saga_timer *effects_add_timer(struct effects *fx)
{
    if (fx->n_timers >= fx->cap_timers)
        abort();
    struct saga_timer *t = &fx->timers[fx->n_timers++];
    memset(t, 0, sizeof(*t));
    return t;
}

const char *effects_timer_name(enum saga_timer_kind kind)
{
    switch (kind) {
    case SAGA_TIMER_DEADLINE:
        return "deadline";
    case SAGA_TIMER_TIMEOUT:
        return "timeout";
    case SAGA_TIMER_BACKOFF:
        return "backoff";
    }
    return "unknown";
}

const char *effects_ignored_name(enum saga_ignored why)
{
    switch (why) {
    case SAGA_APPLIED:
        return "applied";
    case SAGA_IGNORED_FINISHED:
        return "finished";
    case SAGA_IGNORED_UNKNOWN_STEP:
        return "unknown_step";
    case SAGA_IGNORED_NOT_IN_FLIGHT:
        return "not_in_flight";
    case SAGA_IGNORED_WRONG_OP:
        return "wrong_op";
    case SAGA_IGNORED_WRONG_ATTEMPT:
        return "wrong_attempt";
    case SAGA_IGNORED_STALE_TIMER:
        return "stale_timer";
    }
    return "unknown";
}
