/* A timer queue: any number of timers on one uv_timer_t, ordered in a binary
 * heap. Timers are embedded in their owners' structs (find the owner with
 * container_of); arming an armed timer moves it. Times are wall-clock ms since
 * the Unix epoch, the engine's time base. */
#ifndef SAGAD_TIMERQ_H
#define SAGAD_TIMERQ_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct timerq;

struct timerq_timer {
    uint64_t at_ms;
    size_t index; /* position in the heap; TIMERQ_IDLE when not armed */
};

#define TIMERQ_IDLE ((size_t)-1)

/* Called for each due timer, earliest first, after it was disarmed; it may
 * re-arm it or arm and cancel others. */
typedef void (*timerq_fire_cb)(struct timerq *q, struct timerq_timer *timer, uint64_t now_ms);

/* Returns the wall-clock time, ms since the Unix epoch. */
typedef uint64_t (*timerq_clock_fn)(void *data);

struct timerq {
    uv_timer_t handle;
    struct timerq_timer **heap;
    size_t n;
    size_t cap;
    timerq_fire_cb fire;
    timerq_clock_fn clock;
    void *clock_data;
    void *data;
};

/* Starts an empty queue on `loop`. `clock` may be NULL for the real clock.
 * Returns 0 or SAGA_EIO. */
int timerq_init(uv_loop_t *loop, struct timerq *q, timerq_fire_cb fire, timerq_clock_fn clock,
                void *clock_data) __attribute__((warn_unused_result));

/* Stops the queue and releases its memory; `cb` runs when libuv released the
 * handle (may be NULL). Armed timers are simply forgotten. */
void timerq_close(struct timerq *q, uv_close_cb cb);

/* Initializes a timer as not armed. */
void timerq_timer_init(struct timerq_timer *t);

/* Arms `t` to fire at `at_ms` (at once, on the next loop turn, when in the
 * past); moves it when already armed. Returns 0 or SAGA_ENOMEM. */
int timerq_arm(struct timerq *q, struct timerq_timer *t, uint64_t at_ms)
    __attribute__((warn_unused_result));

/* Disarms `t`; a no-op when it is not armed. */
void timerq_cancel(struct timerq *q, struct timerq_timer *t);

static inline int timerq_armed(const struct timerq_timer *t)
{
    return t->index != TIMERQ_IDLE;
}

/* The real wall clock, ms since the Unix epoch. */
uint64_t timerq_wall_ms(void *unused);

#endif
