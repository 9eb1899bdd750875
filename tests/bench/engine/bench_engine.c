/* Engine benchmark: drives many 3-step sagas through realistic event sequences
 * (mostly success, some retries, some compensations) and prints transitions
 * per second on one core, and the heap bytes one in-flight 3-step saga holds,
 * payloads aside, measured by the allocator itself (mallinfo2).
 *
 *   bench_engine [SAGAS [ROUNDS]]       default 100000 sagas, 5 rounds */
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_fixture.h"

#define TARGET_RATE  1000000.0
#define TARGET_BYTES 1024.0

static uint64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct sink {
    uint64_t calls;
    uint64_t records;
    uint64_t commands;
};

/* What a caller does with effects, cheaply: count them, and remember the
 * command to answer next. */
static void consume(struct sink *k, const struct effects *fx, struct saga_command *next)
{
    k->calls++;
    k->records += fx->n_records;
    k->commands += fx->n_commands;
    if (fx->n_commands > 0)
        *next = fx->commands[0];
}

static void must(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "bench: %s failed: %d\n", what, rc);
        exit(1);
    }
}

/* One round: every saga is started, then each gets its replies in turn, all
 * sagas interleaved the way a busy loop sees them. Saga i: i % 10 == 7 gets a
 * RETRY then its backoff timer; i % 20 == 13 fails its last step and
 * compensates. Returns the engine calls made. */
static uint64_t round_trip(const struct definition *def, struct saga **sagas, size_t n,
                           struct effects *fx, struct sink *k, uint64_t *elapsed_ns)
{
    struct saga_command *next = calloc(n, sizeof(*next));
    uint8_t *phase = calloc(n, 1);
    static const uint8_t input[] = "{\"order\":42}";
    uint64_t calls = 0, now = 1000;
    if (next == NULL || phase == NULL)
        exit(1);
    for (size_t i = 0; i < n; i++) {
        struct saga_id id = {{0}};
        memcpy(id.bytes, &i, sizeof(i));
        must(saga_engine_new(def, &id, input, sizeof(input) - 1, NULL, &sagas[i]), "new");
    }

    uint64_t t0 = clock_ns();
    for (size_t i = 0; i < n; i++) {
        must(saga_engine_start(sagas[i], now, fx), "start");
        consume(k, fx, &next[i]);
        calls++;
    }
    for (int live = 1; live;) {
        live = 0;
        now += 5;
        for (size_t i = 0; i < n; i++) {
            struct saga *s = sagas[i];
            if (saga_status_is_terminal(saga_engine_status(s)))
                continue;
            live = 1;
            struct saga_command c = next[i];
            int rc;
            if (i % 10 == 7 && phase[i] == 0 && c.step == 1) {
                struct saga_reply r = {c.step, c.op, c.attempt, SAGA_OUTCOME_RETRY,
                                       NULL,   0,    "busy"};
                must(saga_engine_reply(s, &r, now, fx), "retry");
                consume(k, fx, &next[i]);
                struct saga_timer t = fx->timers[0];
                must(saga_engine_timer(s, &t, now + 100, fx), "backoff");
                calls += 2;
                phase[i] = 1;
                consume(k, fx, &next[i]);
                continue;
            }
            saga_outcome_t o = SAGA_OUTCOME_OK;
            if (i % 20 == 13 && c.op == SAGA_OP_ACTION && c.step == 2)
                o = SAGA_OUTCOME_FAIL;
            struct saga_reply r = {c.step,
                                   c.op,
                                   c.attempt,
                                   o,
                                   (const uint8_t *)"ok",
                                   2,
                                   o == SAGA_OUTCOME_FAIL ? "declined" : NULL};
            rc = saga_engine_reply(s, &r, now, fx);
            must(rc, "reply");
            if (fx->ignored != SAGA_APPLIED) {
                fprintf(stderr, "bench: reply ignored (%s)\n", effects_ignored_name(fx->ignored));
                exit(1);
            }
            consume(k, fx, &next[i]);
            calls++;
        }
    }
    *elapsed_ns = clock_ns() - t0;
    for (size_t i = 0; i < n; i++)
        saga_engine_free(&sagas[i]);
    free(next);
    free(phase);
    return calls;
}

/* Heap bytes per saga started and left with one command out (the second step
 * of three), with no input and no outputs: the engine's own memory. */
static double bytes_per_saga(const struct definition *def, struct saga **sagas, size_t n,
                             struct effects *fx)
{
    struct mallinfo2 before = mallinfo2();
    for (size_t i = 0; i < n; i++) {
        struct saga_id id = {{0}};
        memcpy(id.bytes, &i, sizeof(i));
        must(saga_engine_new(def, &id, NULL, 0, NULL, &sagas[i]), "new");
        must(saga_engine_start(sagas[i], 1000, fx), "start");
        struct saga_reply r = {0, SAGA_OP_ACTION, 1, SAGA_OUTCOME_OK, NULL, 0, NULL};
        must(saga_engine_reply(sagas[i], &r, 1001, fx), "reply");
    }
    struct mallinfo2 after = mallinfo2();
    for (size_t i = 0; i < n; i++)
        saga_engine_free(&sagas[i]);
    return (double)(after.uordblks - before.uordblks) / (double)n;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    int rounds = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 5;
    struct definition *def = fixture_def(DEF_MODE_SAGA, "reserve charge<reserve ship<charge");
    struct saga **sagas = calloc(n, sizeof(*sagas));
    struct effects fx;
    struct sink k = {0};
    double best = 0;

    if (n == 0 || rounds <= 0 || sagas == NULL) {
        fprintf(stderr, "usage: bench_engine [SAGAS [ROUNDS]]\n");
        return 2;
    }
    effects_init(&fx);
    must(effects_reserve(&fx, def->n_steps), "reserve");

    for (int r = 0; r < rounds; r++) {
        uint64_t ns;
        uint64_t calls = round_trip(def, sagas, n, &fx, &k, &ns);
        double rate = (double)calls / ((double)ns / 1e9);
        if (rate > best)
            best = rate;
        printf("round %d: %" PRIu64 " transitions in %.1f ms: %.0f transitions/s\n", r + 1, calls,
               (double)ns / 1e6, rate);
    }
    double bytes = bytes_per_saga(def, sagas, n, &fx);
    printf("records %" PRIu64 ", commands %" PRIu64 " over %" PRIu64 " calls\n", k.records,
           k.commands, k.calls);
    printf("transitions/s (one core, best round): %.0f   target >= %.0f: %s\n", best, TARGET_RATE,
           best >= TARGET_RATE ? "met" : "MISSED");
    printf("bytes per in-flight 3-step saga (heap, payloads aside): %.0f (allocation %zu)   "
           "target <= %.0f: %s\n",
           bytes, saga_engine_alloc_size(def, 0), TARGET_BYTES,
           bytes <= TARGET_BYTES ? "met" : "MISSED");

    effects_destroy(&fx);
    free(sagas);
    fixture_def_free(&def);
    return 0;
}
