/* A binary min-heap of embedded timers behind one uv_timer_t. Touches only the
 * loop's timer handle and its own heap. */
#include "server/timerq.h"

#include <stdlib.h>
#include <time.h>

#include "common/util.h"
#include "saga/error.h"

static void timerq_on_timer(uv_timer_t *handle);

uint64_t timerq_wall_ms(void *unused)
{
    (void)unused;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int timerq_init(uv_loop_t *loop, struct timerq *q, timerq_fire_cb fire, timerq_clock_fn clock,
                void *clock_data)
{
    *q = (struct timerq){
        .fire = fire, .clock = clock ? clock : timerq_wall_ms, .clock_data = clock_data};
    if (uv_timer_init(loop, &q->handle) != 0)
        return SAGA_EIO;
    return 0;
}

void timerq_close(struct timerq *q, uv_close_cb cb)
{
    for (size_t i = 0; i < q->n; i++)
        q->heap[i]->index = TIMERQ_IDLE;
    free(q->heap);
    q->heap = NULL;
    q->n = q->cap = 0;
    uv_close((uv_handle_t *)&q->handle, cb);
}

void timerq_timer_init(struct timerq_timer *t)
{
    t->at_ms = 0;
    t->index = TIMERQ_IDLE;
}

static void heap_set(struct timerq *q, size_t i, struct timerq_timer *t)
{
    q->heap[i] = t;
    t->index = i;
}

static void heap_up(struct timerq *q, size_t i)
{
    struct timerq_timer *t = q->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (q->heap[parent]->at_ms <= t->at_ms)
            break;
        heap_set(q, i, q->heap[parent]);
        i = parent;
    }
    heap_set(q, i, t);
}

static void heap_down(struct timerq *q, size_t i)
{
    struct timerq_timer *t = q->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= q->n)
            break;
        if (child + 1 < q->n && q->heap[child + 1]->at_ms < q->heap[child]->at_ms)
            child++;
        if (t->at_ms <= q->heap[child]->at_ms)
            break;
        heap_set(q, i, q->heap[child]);
        i = child;
    }
    heap_set(q, i, t);
}

/* Points the uv timer at the earliest deadline, or stops it. */
static void timerq_reschedule(struct timerq *q)
{
    if (q->n == 0) {
        uv_timer_stop(&q->handle);
        return;
    }
    uint64_t now = q->clock(q->clock_data);
    uint64_t at = q->heap[0]->at_ms;
    uv_timer_start(&q->handle, timerq_on_timer, at > now ? at - now : 0, 0);
}

static void heap_remove(struct timerq *q, struct timerq_timer *t)
{
    size_t i = t->index;
    struct timerq_timer *last = q->heap[--q->n];
    t->index = TIMERQ_IDLE;
    if (last == t)
        return;
    heap_set(q, i, last);
    heap_up(q, i);
    heap_down(q, last->index);
}

int timerq_arm(struct timerq *q, struct timerq_timer *t, uint64_t at_ms)
{
    int was_first = q->n > 0 && q->heap[0] == t;
    if (timerq_armed(t)) {
        t->at_ms = at_ms;
        heap_up(q, t->index);
        heap_down(q, t->index);
    } else {
        if (q->n == q->cap) {
            size_t cap = q->cap ? q->cap * 2 : 64;
            struct timerq_timer **heap = realloc(q->heap, cap * sizeof(*heap));
            if (heap == NULL)
                return SAGA_ENOMEM;
            q->heap = heap;
            q->cap = cap;
        }
        t->at_ms = at_ms;
        heap_set(q, q->n++, t);
        heap_up(q, t->index);
    }
    if (q->heap[0] == t || was_first)
        timerq_reschedule(q);
    return 0;
}

void timerq_cancel(struct timerq *q, struct timerq_timer *t)
{
    if (!timerq_armed(t))
        return;
    int was_first = q->heap[0] == t;
    heap_remove(q, t);
    if (was_first)
        timerq_reschedule(q);
}

static void timerq_on_timer(uv_timer_t *handle)
{
    struct timerq *q = container_of(handle, struct timerq, handle);
    uint64_t now = q->clock(q->clock_data);
    /* Bounded per turn so a flood of due timers cannot starve I/O. */
    for (int fired = 0; q->n > 0 && q->heap[0]->at_ms <= now && fired < 4096; fired++) {
        struct timerq_timer *t = q->heap[0];
        heap_remove(q, t);
        q->fire(q, t, now);
    }
    timerq_reschedule(q);
}
