/* sagabench: a load generator on the client API. Closed loop by default: C
 * workers each start a saga and wait for its end, again and again. With
 * --rate R it is an open loop instead: sagas start R times a second on a fixed
 * schedule, at most C at once; a start that finds all C busy waits, and its
 * latency still counts from the time it was due (no coordinated omission).
 * After a warm-up, for a fixed time, it counts the sagas that ended and their
 * latency as a client sees it (Start due to Wait answered). Prints one JSON
 * object. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "saga/client.h"

struct bench;

struct worker {
    struct bench *b;
    saga_client_t *client;
    struct worker *next_free; /* open loop: the idle workers */
    uint64_t started_ns;
    uint8_t id[SAGA_ID_LEN];
};

struct bench {
    uv_loop_t loop;
    uv_timer_t phase;
    int phase_no; /* 0 warm-up, 1 measuring, 2 draining */
    const char *definition;
    char *input;
    size_t input_len;
    unsigned concurrency;
    unsigned clients;
    unsigned warmup_ms;
    unsigned duration_ms;
    double rate;     /* open loop: sagas started per second; 0 closed loop */
    uv_timer_t pace; /* open loop: starts the sagas that are due */
    uint64_t pace_start_ns;
    uint64_t scheduled;    /* open loop: sagas started or waiting for a worker */
    struct worker *idle;   /* open loop: workers without a saga */
    uint64_t last_pace_ns; /* open loop: when on_pace last ran */
    uint64_t late;         /* open loop: starts that found every worker busy */
    saga_client_t **conns;
    struct worker *workers;
    unsigned active;
    uint64_t measure_start_ns;
    uint64_t measure_end_ns;
    uint32_t *lat_us;
    uint32_t *due_ms; /* --latencies: when each saga was due, from the measure start */
    const char *latencies_path;
    size_t n_lat;
    size_t cap_lat;
    uint64_t completed, compensated, other, errors;
    int last_error;
    char last_message[256];
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void worker_next(struct worker *w);

static void note_error(struct bench *b, saga_result_t *res)
{
    b->errors++;
    b->last_error = saga_result_status(res);
    snprintf(b->last_message, sizeof(b->last_message), "%s", saga_result_error(res));
}

static void record(struct bench *b, uint64_t start_ns, uint64_t end_ns)
{
    if (b->phase_no != 1 || start_ns < b->measure_start_ns)
        return;
    if (b->n_lat == b->cap_lat) {
        size_t cap = b->cap_lat ? b->cap_lat * 2 : 65536;
        uint32_t *lat = realloc(b->lat_us, cap * sizeof(*lat));
        if (lat == NULL)
            return;
        b->lat_us = lat;
        if (b->latencies_path != NULL) {
            uint32_t *due = realloc(b->due_ms, cap * sizeof(*due));
            if (due == NULL)
                return;
            b->due_ms = due;
        }
        b->cap_lat = cap;
    }
    if (b->due_ms != NULL)
        b->due_ms[b->n_lat] = (uint32_t)((start_ns - b->measure_start_ns) / 1000000u);
    uint64_t us = (end_ns - start_ns) / 1000u;
    b->lat_us[b->n_lat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void on_waited(saga_client_t *c, saga_result_t *res, void *data)
{
    (void)c;
    struct worker *w = data;
    struct bench *b = w->b;
    uint64_t now = mono_ns();
    if (saga_result_status(res) != 0) {
        note_error(b, res);
    } else {
        const saga_info_t *info = saga_result_info(res);
        int measured = b->phase_no == 1 && w->started_ns >= b->measure_start_ns;
        if (measured) {
            if (info->status == SAGA_STATUS_COMPLETED || info->status == SAGA_STATUS_COMMITTED)
                b->completed++;
            else if (info->status == SAGA_STATUS_COMPENSATED || info->status == SAGA_STATUS_ABORTED)
                b->compensated++;
            else
                b->other++;
        }
        record(b, w->started_ns, now);
    }
    saga_result_free(&res);
    worker_next(w);
}

static void on_started(saga_client_t *c, saga_result_t *res, void *data)
{
    struct worker *w = data;
    if (saga_result_status(res) != 0) {
        note_error(w->b, res);
        saga_result_free(&res);
        worker_next(w);
        return;
    }
    memcpy(w->id, saga_result_saga_id(res), SAGA_ID_LEN);
    saga_result_free(&res);
    if (saga_client_wait(c, w->id, 60000, on_waited, w) != 0) {
        w->b->errors++;
        worker_next(w);
    }
}

/* The run is over: no more starts. */
static int bench_over(const struct bench *b)
{
    return b->phase_no >= 2 || b->errors > 1000;
}

/* The worker is done for good; the loop stops with the last one. */
static void worker_retire(struct worker *w)
{
    struct bench *b = w->b;
    b->active--;
    if (b->active == 0)
        uv_stop(&b->loop);
}

/* Open loop: the worker waits for the pacer to give it a saga. */
static void worker_park(struct worker *w)
{
    w->next_free = w->b->idle;
    w->b->idle = w;
}

static void worker_start(struct worker *w, uint64_t due_ns)
{
    struct bench *b = w->b;
    saga_start_request_t req = {
        .definition = b->definition, .input = b->input, .input_len = b->input_len};
    w->started_ns = due_ns;
    if (saga_client_start(w->client, &req, on_started, w) != 0) {
        b->errors++;
        if (b->rate > 0)
            worker_park(w);
        else
            worker_retire(w);
    }
}

static void worker_next(struct worker *w)
{
    if (bench_over(w->b))
        worker_retire(w);
    else if (w->b->rate > 0)
        worker_park(w);
    else
        worker_start(w, mono_ns());
}

/* Open loop: start every saga whose time has come, on an idle worker. The
 * schedule is fixed (the n-th saga is due n / rate seconds in); a saga that
 * waits for a worker keeps its due time. */
static void on_pace(uv_timer_t *t)
{
    struct bench *b = t->data;
    if (bench_over(b)) {
        uv_timer_stop(t);
        return;
    }
    uint64_t now = mono_ns();
    uint64_t due = (uint64_t)((double)(now - b->pace_start_ns) / 1e9 * b->rate) + 1;
    while (b->scheduled < due && b->idle) {
        struct worker *w = b->idle;
        b->idle = w->next_free;
        uint64_t due_ns = b->pace_start_ns + (uint64_t)((double)b->scheduled / b->rate * 1e9);
        b->scheduled++;
        /* Due before the previous tick: it waited for a worker, and that
         * wait is part of its latency. Otherwise it starts now, at the
         * first chance the timer gives. */
        if (due_ns < b->last_pace_ns) {
            b->late++;
            worker_start(w, due_ns);
        } else {
            worker_start(w, now);
        }
    }
    b->last_pace_ns = now;
}

static void on_phase(uv_timer_t *t)
{
    struct bench *b = t->data;
    if (b->phase_no == 0) {
        b->phase_no = 1;
        b->measure_start_ns = mono_ns();
        uv_timer_start(t, on_phase, b->duration_ms, 0);
    } else if (b->phase_no == 1) {
        b->phase_no = 2;
        b->measure_end_ns = mono_ns();
        if (b->rate > 0) {
            uv_close((uv_handle_t *)&b->pace, NULL);
            for (; b->idle; b->idle = b->idle->next_free)
                b->active--;
            if (b->active == 0) {
                uv_stop(&b->loop);
                return;
            }
        }
        /* Let the sagas in flight end; they are not counted. */
        uv_timer_start(t, on_phase, 30000, 0);
    } else {
        uv_stop(&b->loop);
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(const struct bench *b, double p)
{
    if (b->n_lat == 0)
        return 0;
    size_t i = (size_t)(p * (double)(b->n_lat - 1) + 0.5);
    return b->lat_us[i] / 1000.0;
}

/* --latencies FILE: one line per measured saga, in the order they ended:
 * when it was due (ms after the measurement began) and its latency (ms), to
 * see where in a run the slow ones fall. */
static int write_latencies(const struct bench *b)
{
    FILE *f = fopen(b->latencies_path, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "# due_ms latency_ms\n");
    for (size_t i = 0; i < b->n_lat; i++)
        fprintf(f, "%u %.3f\n", b->due_ms[i], b->lat_us[i] / 1000.0);
    return fclose(f) == 0 ? 0 : -1;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: sagabench --coordinator HOST:PORT --definition NAME [--concurrency C]\n"
                 "                 [--rate SAGAS_PER_S] [--clients K] [--warmup SECONDS]\n"
                 "                 [--duration SECONDS] [--input JSON] [--latencies FILE]\n"
                 "       sagabench --coordinator HOST:PORT --define FILE   (then exits)\n");
}

/* Registers the definition in `path` with a blocking client. */
static int define_file(const char *coordinator, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    saga_client_t *c = saga_client_new(&(saga_client_options_t){.coordinator = coordinator});
    saga_result_t *r = NULL;
    int rc = c ? saga_client_define_sync(c, text, &r) : SAGA_ENOMEM;
    if (rc != 0)
        fprintf(stderr, "sagabench: define %s: %s\n", path, r ? saga_result_error(r) : "no client");
    saga_result_free(&r);
    saga_client_free(&c);
    return rc != 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"coordinator", required_argument, NULL, 'c'}, {"definition", required_argument, NULL, 'd'},
        {"concurrency", required_argument, NULL, 'n'}, {"clients", required_argument, NULL, 'k'},
        {"warmup", required_argument, NULL, 'w'},      {"duration", required_argument, NULL, 't'},
        {"input", required_argument, NULL, 'i'},       {"help", no_argument, NULL, 'h'},
        {"define", required_argument, NULL, 'D'},      {"rate", required_argument, NULL, 'r'},
        {"latencies", required_argument, NULL, 'L'},   {NULL, 0, NULL, 0},
    };
    struct bench b = {.concurrency = 16, .warmup_ms = 2000, .duration_ms = 10000};
    const char *coordinator = NULL;
    const char *input = "{\"order\":1}";
    const char *define = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            coordinator = optarg;
            break;
        case 'd':
            b.definition = optarg;
            break;
        case 'n':
            b.concurrency = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'k':
            b.clients = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'w':
            b.warmup_ms = (unsigned)(strtod(optarg, NULL) * 1000);
            break;
        case 't':
            b.duration_ms = (unsigned)(strtod(optarg, NULL) * 1000);
            break;
        case 'i':
            input = optarg;
            break;
        case 'r':
            b.rate = strtod(optarg, NULL);
            break;
        case 'L':
            b.latencies_path = optarg;
            break;
        case 'D':
            define = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (coordinator != NULL && define != NULL)
        return define_file(coordinator, define);
    if (coordinator == NULL || b.definition == NULL || b.concurrency == 0 || b.duration_ms == 0) {
        usage(stderr);
        return 2;
    }
    if (b.clients == 0)
        b.clients = b.concurrency < 8 ? b.concurrency : 8;
    b.input = strdup(input);
    b.input_len = strlen(input);
    uv_loop_init(&b.loop);
    b.conns = calloc(b.clients, sizeof(*b.conns));
    b.workers = calloc(b.concurrency, sizeof(*b.workers));
    if (b.input == NULL || b.conns == NULL || b.workers == NULL)
        return 1;
    for (unsigned i = 0; i < b.clients; i++) {
        b.conns[i] = saga_client_new(&(saga_client_options_t){.coordinator = coordinator,
                                                              .label = "sagabench",
                                                              .loop = &b.loop,
                                                              .request_timeout_ms = 60000});
        if (b.conns[i] == NULL)
            return 1;
    }
    uv_timer_init(&b.loop, &b.phase);
    b.phase.data = &b;
    uv_timer_start(&b.phase, on_phase, b.warmup_ms, 0);
    b.active = b.concurrency;
    for (unsigned i = 0; i < b.concurrency; i++) {
        b.workers[i] = (struct worker){.b = &b, .client = b.conns[i % b.clients]};
        worker_next(&b.workers[i]);
    }
    if (b.rate > 0) {
        /* Sagas in flight when the time is up end after it; none is counted
         * then, so the loop stops by the phase timer. */
        uv_timer_init(&b.loop, &b.pace);
        b.pace.data = &b;
        b.pace_start_ns = mono_ns();
        uv_timer_start(&b.pace, on_pace, 0, 1);
    }
    uv_run(&b.loop, UV_RUN_DEFAULT);
    if (b.measure_end_ns == 0)
        b.measure_end_ns = mono_ns();

    if (b.latencies_path != NULL && write_latencies(&b) != 0)
        fprintf(stderr, "sagabench: cannot write %s: %s\n", b.latencies_path, strerror(errno));
    qsort(b.lat_us, b.n_lat, sizeof(*b.lat_us), cmp_u32);
    double secs = (double)(b.measure_end_ns - b.measure_start_ns) / 1e9;
    double ended = (double)(b.completed + b.compensated + b.other);
    printf("{\"definition\":\"%s\",\"concurrency\":%u,\"rate\":%.1f,\"late\":%llu,"
           "\"seconds\":%.3f,\"sagas\":%.0f,"
           "\"sagas_per_s\":%.1f,\"completed\":%llu,\"compensated\":%llu,\"other\":%llu,"
           "\"errors\":%llu,\"p50_ms\":%.2f,\"p90_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f",
           b.definition, b.concurrency, b.rate, (unsigned long long)b.late, secs, ended,
           secs > 0 ? ended / secs : 0, (unsigned long long)b.completed,
           (unsigned long long)b.compensated, (unsigned long long)b.other,
           (unsigned long long)b.errors, pct_ms(&b, 0.50), pct_ms(&b, 0.90), pct_ms(&b, 0.99),
           b.n_lat ? b.lat_us[b.n_lat - 1] / 1000.0 : 0.0);
    if (b.errors > 0)
        printf(",\"last_error\":%d", b.last_error);
    printf("}\n");
    if (b.errors > 0)
        fprintf(stderr, "sagabench: %llu errors; last: %s\n", (unsigned long long)b.errors,
                b.last_message);

    for (unsigned i = 0; i < b.clients; i++)
        saga_client_free(&b.conns[i]);
    uv_close((uv_handle_t *)&b.phase, NULL);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    uv_loop_close(&b.loop);
    free(b.lat_us);
    free(b.due_ms);
    free(b.conns);
    free(b.workers);
    free(b.input);
    return b.errors > 0 && ended == 0 ? 1 : 0;
}
