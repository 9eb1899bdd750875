/* bench_store: durable records per second through the store's group commit.
 * Runs many sagas at once, each writing the records an engine would (start,
 * then per step: succeeded + next dispatched, then completed), each write
 * waiting for the previous one's commit, for a fixed time. Prints figures;
 * asserts nothing. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "saga/error.h"
#include "store/pg.h"
#include "store/store.h"

struct bench;

struct actor {
    struct bench *b;
    struct saga_id id;
    int step; /* -1: not started */
    uint64_t sent_ns;
};

struct bench {
    uv_loop_t *loop;
    struct store *s;
    unsigned steps;
    int running;
    int measuring;
    uint64_t in_flight;
    uint64_t records;
    uint64_t writes;
    uint64_t failures;
    uint64_t sagas_done;
    uint64_t id_counter;
    uint64_t lat_hist[64]; /* write latency, log2 buckets of microseconds */
    uint64_t rng;
};

static const uint8_t input[64] = "{\"order\":\"A-1001\",\"amount\":4200,\"currency\":\"EUR\"}";
static const uint8_t output[32] = "{\"reservation\":\"R-77\",\"ok\":1}";

static uint64_t now_ns(void)
{
    return uv_hrtime();
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void next_id(struct bench *b, struct saga_id *id)
{
    /* splitmix64 twice: random-looking version 4 ids without a syscall. */
    for (int half = 0; half < 2; half++) {
        uint64_t z = (b->rng += UINT64_C(0x9e3779b97f4a7c15));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        z ^= z >> 31;
        memcpy(id->bytes + 8 * half, &z, 8);
    }
    id->bytes[6] = (uint8_t)((id->bytes[6] & 0x0f) | 0x40);
    id->bytes[8] = (uint8_t)((id->bytes[8] & 0x3f) | 0x80);
}

static void actor_next(struct actor *a);

static void on_written(const struct store_write *w, int status)
{
    struct actor *a = w->data;
    struct bench *b = a->b;
    b->in_flight--;
    if (status != 0) {
        b->failures++;
        if (b->failures < 5)
            fprintf(stderr, "bench_store: write failed: %s\n", saga_strerror(status));
        a->step = -1; /* start a new saga */
    } else if (b->measuring) {
        b->records += w->n_records;
        b->writes++;
        uint64_t us = (now_ns() - a->sent_ns) / 1000;
        int bucket = 0;
        while (us > 1 && bucket < 63) {
            us >>= 1;
            bucket++;
        }
        b->lat_hist[bucket]++;
    }
    if (b->running)
        actor_next(a);
}

static void actor_next(struct actor *a)
{
    struct bench *b = a->b;
    uint64_t t = wall_ms();
    struct record rec[2];
    memset(rec, 0, sizeof(rec));
    const struct store_create *create = NULL;
    static const struct store_create info_template = {
        .definition = "bench", .version = 1, .mode = DEF_MODE_SAGA};
    struct store_create info = info_template;
    if (a->step < 0 || a->step >= (int)b->steps) {
        if (a->step >= (int)b->steps && b->measuring)
            b->sagas_done++;
        next_id(b, &a->id);
        a->step = 0;
        info.n_steps = (uint16_t)b->steps;
        info.input = input;
        info.input_len = sizeof(input);
        create = &info;
        rec[0] = (struct record){.kind = REC_SAGA_INSERT,
                                 .event = "saga.started",
                                 .at_ms = t,
                                 .step = -1,
                                 .saga_status = SAGA_STATUS_RUNNING,
                                 .deadline_ms = t + 30000,
                                 .wake_ms = t + 2000};
        rec[1] = (struct record){.kind = REC_STEP_UPDATE,
                                 .event = "step.dispatched",
                                 .at_ms = t,
                                 .step = 0,
                                 .attempt = 1,
                                 .step_status = SAGA_STEP_RUNNING,
                                 .attempts = 1};
    } else {
        int i = a->step;
        rec[0] = (struct record){.kind = REC_STEP_UPDATE,
                                 .event = "step.succeeded",
                                 .at_ms = t,
                                 .step = i,
                                 .attempt = 1,
                                 .step_status = SAGA_STEP_SUCCEEDED,
                                 .attempts = 1,
                                 .output = output,
                                 .output_len = sizeof(output)};
        if (i + 1 < (int)b->steps)
            rec[1] = (struct record){.kind = REC_STEP_UPDATE,
                                     .event = "step.dispatched",
                                     .at_ms = t,
                                     .step = i + 1,
                                     .attempt = 1,
                                     .step_status = SAGA_STEP_RUNNING,
                                     .attempts = 1};
        else
            rec[1] = (struct record){.kind = REC_SAGA_UPDATE,
                                     .event = "saga.completed",
                                     .at_ms = t,
                                     .step = -1,
                                     .saga_status = SAGA_STATUS_COMPLETED,
                                     .deadline_ms = t + 30000};
        a->step++;
    }
    a->sent_ns = now_ns();
    int rc = store_write(b->s, &a->id, 1, create, rec, 2, on_written, a);
    if (rc != 0) {
        fprintf(stderr, "bench_store: store_write: %s\n", saga_strerror(rc));
        exit(1);
    }
    b->in_flight++;
}

static void on_timer(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

static void run_for(uv_loop_t *loop, uint64_t ms)
{
    uv_timer_t t;
    int done = 0;
    uv_timer_init(loop, &t);
    t.data = &done;
    uv_timer_start(&t, on_timer, ms, 0);
    while (!done)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static void on_closed(void *data)
{
    *(int *)data = 1;
}

static double percentile(const uint64_t *hist, double p)
{
    uint64_t total = 0, seen = 0;
    for (int i = 0; i < 64; i++)
        total += hist[i];
    if (total == 0)
        return 0;
    for (int i = 0; i < 64; i++) {
        seen += hist[i];
        if ((double)seen >= p * (double)total)
            return (double)(UINT64_C(1) << i) / 1000.0; /* ms, bucket upper bound */
    }
    return 0;
}

static int64_t sql_int(const char *url, const char *sql)
{
    struct pg_sync *c = NULL;
    struct pg_res *r = NULL;
    char err[256];
    int64_t v = -1;
    if (pg_sync_open(url, &c, err, sizeof(err)) != 0)
        return -1;
    if (pg_sync_query(c, sql, 0, NULL, &r) == 0 && pg_res_rows(r) > 0)
        v = strtoll(pg_res_value(r, 0, 0), NULL, 10);
    pg_res_free(&r);
    pg_sync_close(&c);
    return v;
}

/* CPU time (ms) of the backends serving the store's connections, read from
 * /proc: they run on this machine. -1 when it cannot be read. */
struct backends {
    int n;
    int pid[64];
};

static void backends_find(const char *url, struct backends *b)
{
    struct pg_sync *c = NULL;
    struct pg_res *r = NULL;
    char err[256];
    b->n = 0;
    if (pg_sync_open(url, &c, err, sizeof(err)) != 0)
        return;
    if (pg_sync_query(c,
                      "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                      " AND application_name = 'sagad' AND pid <> pg_backend_pid()",
                      0, NULL, &r) == 0) {
        for (int i = 0; i < pg_res_rows(r) && b->n < 64; i++)
            b->pid[b->n++] = (int)strtol(pg_res_value(r, i, 0), NULL, 10);
    }
    pg_res_free(&r);
    pg_sync_close(&c);
}

static double backends_cpu_ms(const struct backends *b)
{
    double total = 0;
    long hz = sysconf(_SC_CLK_TCK);
    for (int i = 0; i < b->n; i++) {
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", b->pid[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            return -1;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* Fields after the command's closing parenthesis: 14 utime, 15 stime. */
        char *p = strrchr(buf, ')');
        unsigned long long ut = 0, st = 0;
        if (!p ||
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
            return -1;
        total += (double)(ut + st) * 1000.0 / (double)hz;
    }
    return total;
}

static double self_cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec * 1000.0 + (double)ru.ru_utime.tv_usec / 1000.0 +
           (double)ru.ru_stime.tv_sec * 1000.0 + (double)ru.ru_stime.tv_usec / 1000.0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: bench_store --database-url URL [--seconds N] [--sagas N] [--steps N]\n"
                 "                   [--pool N] [--batch N] [--warmup-seconds N]\n"
                 "The database must be migrated (sagad migrate).\n");
}

static unsigned parse_uint(const char *s, const char *what)
{
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (!end || *end || v == 0 || v > 1000000) {
        fprintf(stderr, "bench_store: bad %s '%s'\n", what, s);
        exit(2);
    }
    return (unsigned)v;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"database-url", required_argument, NULL, 'u'},
        {"seconds", required_argument, NULL, 't'},
        {"warmup-seconds", required_argument, NULL, 'w'},
        {"sagas", required_argument, NULL, 'n'},
        {"steps", required_argument, NULL, 's'},
        {"pool", required_argument, NULL, 'p'},
        {"batch", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *url = getenv("SAGAD_DATABASE_URL");
    unsigned seconds = 10, warmup = 2, sagas = 4096, steps = 4, pool = 4, batch = 256;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'u':
            url = optarg;
            break;
        case 't':
            seconds = parse_uint(optarg, "seconds");
            break;
        case 'w':
            warmup = parse_uint(optarg, "warmup");
            break;
        case 'n':
            sagas = parse_uint(optarg, "sagas");
            break;
        case 's':
            steps = parse_uint(optarg, "steps");
            break;
        case 'p':
            pool = parse_uint(optarg, "pool");
            break;
        case 'b':
            batch = parse_uint(optarg, "batch");
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!url) {
        usage(stderr);
        return 2;
    }

    uv_loop_t loop;
    uv_loop_init(&loop);
    static struct bench b;
    b.loop = &loop;
    b.steps = steps;
    b.rng = uv_hrtime();
    struct store_config cfg = {.database_url = url,
                               .owner = "bench",
                               .pool_size = pool,
                               .batch_writes = batch,
                               .queue_max = sagas + 16,
                               .unavailable_ms = 30000};
    if (store_open(&loop, &cfg, &b.s) != 0) {
        fprintf(stderr, "bench_store: cannot open the store\n");
        return 1;
    }
    for (int i = 0; i < 500 && !store_available(b.s); i++)
        run_for(&loop, 10);
    if (!store_available(b.s)) {
        fprintf(stderr, "bench_store: the database is not reachable (or not migrated)\n");
        return 1;
    }

    struct actor *actors = calloc(sagas, sizeof(*actors));
    if (!actors)
        return 1;
    b.running = 1;
    for (unsigned i = 0; i < sagas; i++) {
        actors[i].b = &b;
        actors[i].step = -1;
        actor_next(&actors[i]);
    }
    run_for(&loop, (uint64_t)warmup * 1000);
    struct backends be;
    backends_find(url, &be);
    struct store_stats s0, s1;
    store_get_stats(b.s, &s0);
    double pg0 = backends_cpu_ms(&be), me0 = self_cpu_ms();
    b.measuring = 1;
    uint64_t t0 = now_ns();
    run_for(&loop, (uint64_t)seconds * 1000);
    uint64_t t1 = now_ns();
    b.measuring = 0;
    double pg1 = backends_cpu_ms(&be), me1 = self_cpu_ms();
    store_get_stats(b.s, &s1);
    b.running = 0;
    while (b.in_flight > 0)
        uv_run(&loop, UV_RUN_ONCE);
    int closed = 0;
    store_close(b.s, on_closed, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    uv_loop_close(&loop);
    free(actors);

    double secs = (double)(t1 - t0) / 1e9;
    uint64_t commits = s1.commits - s0.commits;
    printf("bench_store: %u s, %u sagas in flight, %u steps each, pool %u, batch %u\n", seconds,
           sagas, steps, pool, batch);
    printf("  durable records/s   %10.0f\n", (double)b.records / secs);
    printf("  durable writes/s    %10.0f   (2 records each)\n", (double)b.writes / secs);
    printf("  commits/s           %10.0f   (%.0f records per commit)\n", (double)commits / secs,
           commits ? (double)(s1.records - s0.records) / (double)commits : 0.0);
    printf("  sagas completed/s   %10.0f\n", (double)b.sagas_done / secs);
    printf("  write latency       p50 <= %.1f ms, p99 <= %.1f ms\n", percentile(b.lat_hist, 0.5),
           percentile(b.lat_hist, 0.99));
    printf("  failed writes       %10" PRIu64 "\n", b.failures);
    if (b.records && be.n && pg0 >= 0 && pg1 >= 0)
        printf("  CPU per 1000 records: PostgreSQL backends %.1f ms, this process %.1f ms\n",
               (pg1 - pg0) * 1000.0 / (double)b.records, (me1 - me0) * 1000.0 / (double)b.records);
    /* What the database holds agrees with what was reported durable. */
    int64_t events = sql_int(url, "SELECT count(*) FROM saga_events");
    printf("  events in database  %10" PRId64 "\n", events);
    return b.failures ? 1 : 0;
}
