/* saga-testpeer: a participant whose handlers do what the command line says
 * (ok, fail, retry:N, delay:MS, hang, crash), for integration and end-to-end
 * tests. Uses only the public libsaga API; records every command it gets. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "saga/participant.h"

enum kind { B_OK, B_FAIL, B_RETRY, B_DELAY, B_HANG, B_CRASH };

struct behaviour {
    enum kind kind;
    unsigned n; /* retry: times; delay: ms */
};

#define N_OPS 6 /* indexed by saga_op_t (1..5) */

struct peer;

struct action {
    struct peer *peer;
    char name[128];
    struct behaviour all;
    struct behaviour op[N_OPS];
    int op_set[N_OPS];
};

struct counter {
    char key[160];
    unsigned n;
};

struct delayed {
    uv_timer_t timer;
    saga_call_t *call;
    struct peer *peer;
    struct delayed *next;
};

struct peer {
    uv_loop_t loop;
    saga_participant_t *p;
    struct action actions[64];
    size_t n_actions;
    unsigned threads;
    int record_fd;
    uv_mutex_t mu; /* counters and the record file, shared with pool threads */
    struct counter *counters;
    size_t n_counters;
    struct delayed *delays; /* loop mode only */
    uv_signal_t sigterm, sigint;
    saga_log_level_t log_level;
    const char *service;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: saga-testpeer --coordinator HOST:PORT[,HOST:PORT...] --service NAME\n"
                 "                     --on ACTION[.OP]=BEHAVIOUR [--on ...]\n"
                 "                     [--record FILE] [--instance ID] [--threads N]\n"
                 "                     [--max-in-flight N] [--token TOKEN] [--log-level LEVEL]\n"
                 "BEHAVIOUR: ok | fail | retry:N | delay:MS | hang | crash\n"
                 "OP: action | compensate | prepare | commit | abort (default: every op)\n");
}

static int parse_uint(const char *s, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > 0xffffffffUL)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int parse_behaviour(const char *s, struct behaviour *b)
{
    memset(b, 0, sizeof(*b));
    if (strcmp(s, "ok") == 0)
        b->kind = B_OK;
    else if (strcmp(s, "fail") == 0)
        b->kind = B_FAIL;
    else if (strcmp(s, "hang") == 0)
        b->kind = B_HANG;
    else if (strcmp(s, "crash") == 0)
        b->kind = B_CRASH;
    else if (strncmp(s, "retry:", 6) == 0 && parse_uint(s + 6, &b->n) == 0)
        b->kind = B_RETRY;
    else if (strncmp(s, "delay:", 6) == 0 && parse_uint(s + 6, &b->n) == 0)
        b->kind = B_DELAY;
    else
        return -1;
    return 0;
}

static int parse_op(const char *s, saga_op_t *op)
{
    for (int i = SAGA_OP_ACTION; i <= SAGA_OP_ABORT; i++) {
        if (strcmp(s, saga_op_name((saga_op_t)i)) == 0) {
            *op = (saga_op_t)i;
            return 0;
        }
    }
    return -1;
}

static struct action *action_get(struct peer *pr, const char *name, size_t len)
{
    for (size_t i = 0; i < pr->n_actions; i++) {
        if (strlen(pr->actions[i].name) == len && memcmp(pr->actions[i].name, name, len) == 0)
            return &pr->actions[i];
    }
    if (pr->n_actions == sizeof(pr->actions) / sizeof(pr->actions[0]) || len == 0 ||
        len >= sizeof(pr->actions[0].name))
        return NULL;
    struct action *a = &pr->actions[pr->n_actions++];
    memset(a, 0, sizeof(*a));
    a->peer = pr;
    memcpy(a->name, name, len);
    a->name[len] = '\0';
    return a;
}

/* "reserve=ok", "reserve.compensate=fail" */
static int parse_on(struct peer *pr, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (eq == NULL)
        return -1;
    struct behaviour b;
    if (parse_behaviour(eq + 1, &b) != 0)
        return -1;
    const char *dot = memchr(arg, '.', (size_t)(eq - arg));
    size_t name_len = (size_t)((dot != NULL ? dot : eq) - arg);
    struct action *a = action_get(pr, arg, name_len);
    if (a == NULL)
        return -1;
    if (dot == NULL) {
        a->all = b;
        return 0;
    }
    char opname[32];
    size_t ol = (size_t)(eq - dot - 1);
    if (ol == 0 || ol >= sizeof(opname))
        return -1;
    memcpy(opname, dot + 1, ol);
    opname[ol] = '\0';
    saga_op_t op;
    if (parse_op(opname, &op) != 0)
        return -1;
    a->op[op] = b;
    a->op_set[op] = 1;
    return 0;
}

/* One line per command, written with a single append so that lines from
 * several threads (or several peers sharing the file) never interleave. */
static void record(struct peer *pr, saga_call_t *call)
{
    if (pr->record_fd < 0)
        return;
    char line[1024];
    int n = snprintf(line, sizeof(line),
                     "op=%s saga=%s step=%s index=%u attempt=%u key=%s action=%s instance=%s\n",
                     saga_op_name(saga_call_op(call)), saga_call_saga_id_text(call),
                     saga_call_step(call), saga_call_step_index(call), saga_call_attempt(call),
                     saga_call_idempotency_key(call), saga_call_action(call),
                     saga_participant_instance_id(pr->p));
    if (n <= 0)
        return;
    size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    line[len - 1] = '\n';
    uv_mutex_lock(&pr->mu);
    ssize_t w = write(pr->record_fd, line, len);
    uv_mutex_unlock(&pr->mu);
    (void)w;
}

/* How many RETRY answers this saga/step/op has had; counts this one. */
static unsigned retries_so_far(struct peer *pr, saga_call_t *call)
{
    char key[160];
    snprintf(key, sizeof(key), "%s/%u/%s", saga_call_saga_id_text(call), saga_call_step_index(call),
             saga_op_name(saga_call_op(call)));
    uv_mutex_lock(&pr->mu);
    unsigned n = 0;
    size_t i;
    for (i = 0; i < pr->n_counters; i++) {
        if (strcmp(pr->counters[i].key, key) == 0)
            break;
    }
    if (i == pr->n_counters) {
        struct counter *v = realloc(pr->counters, (pr->n_counters + 1) * sizeof(*v));
        if (v != NULL) {
            pr->counters = v;
            memset(&v[i], 0, sizeof(v[i]));
            memcpy(v[i].key, key, sizeof(key));
            pr->n_counters++;
        }
    }
    if (i < pr->n_counters)
        n = pr->counters[i].n++;
    uv_mutex_unlock(&pr->mu);
    return n;
}

static void complete_ok(saga_call_t *call)
{
    size_t len;
    const uint8_t *in = saga_call_input(call, &len);
    if (saga_call_ok(call, in, len) == SAGA_ETOOBIG)
        saga_call_fail(call, "testpeer: output over the coordinator's limit");
}

static void on_delay_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_delay(uv_timer_t *t)
{
    struct delayed *d = t->data;
    struct peer *pr = d->peer;
    for (struct delayed **pp = &pr->delays; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    }
    complete_ok(d->call);
    uv_close((uv_handle_t *)t, on_delay_closed);
}

static void handle(saga_call_t *call, void *data)
{
    struct action *a = data;
    struct peer *pr = a->peer;
    saga_op_t op = saga_call_op(call);
    const struct behaviour *b = a->op_set[op] ? &a->op[op] : &a->all;
    record(pr, call);
    switch (b->kind) {
    case B_OK:
        complete_ok(call);
        return;
    case B_FAIL:
        saga_call_fail(call, "testpeer: fail");
        return;
    case B_RETRY: {
        unsigned k = retries_so_far(pr, call);
        if (k >= b->n) {
            complete_ok(call);
            return;
        }
        char why[64];
        snprintf(why, sizeof(why), "testpeer: retry %u of %u", k + 1, b->n);
        saga_call_retry(call, why);
        return;
    }
    case B_DELAY:
        if (pr->threads > 0) {
            uv_sleep(b->n); /* a blocking handler on a pool thread */
            complete_ok(call);
            return;
        } else {
            struct delayed *d = calloc(1, sizeof(*d));
            if (d == NULL) {
                saga_call_retry(call, "testpeer: out of memory");
                return;
            }
            d->call = call;
            d->peer = pr;
            uv_timer_init(&pr->loop, &d->timer);
            d->timer.data = d;
            d->next = pr->delays;
            pr->delays = d;
            uv_timer_start(&d->timer, on_delay, b->n, 0);
        }
        return;
    case B_HANG:
        return; /* never answered: the coordinator's step timeout decides */
    case B_CRASH:
        _exit(3);
    }
}

static void log_line(saga_log_level_t level, const char *line, void *data)
{
    struct peer *pr = data;
    static const char *const names[] = {"", "debug", "info", "warn", "error"};
    fprintf(stderr, "saga-testpeer service=%s level=%s %s\n", pr->service,
            level >= SAGA_LOG_DEBUG && level <= SAGA_LOG_ERROR ? names[level] : "?", line);
}

static void on_closed_signal(uv_handle_t *h)
{
    (void)h;
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct peer *pr = s->data;
    fprintf(stderr, "saga-testpeer service=%s level=info event=signal signal=%d\n", pr->service,
            signum);
    saga_participant_stop(pr->p);
    uv_close((uv_handle_t *)&pr->sigterm, on_closed_signal);
    uv_close((uv_handle_t *)&pr->sigint, on_closed_signal);
    while (pr->delays != NULL) {
        struct delayed *d = pr->delays;
        pr->delays = d->next;
        uv_close((uv_handle_t *)&d->timer, on_delay_closed);
    }
}

static int parse_level(const char *s, saga_log_level_t *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (saga_log_level_t)(i + 1);
            return 0;
        }
    }
    return -1;
}

static int peer_main(struct peer *pr, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"coordinator", required_argument, NULL, 'c'},
        {"service", required_argument, NULL, 's'},
        {"on", required_argument, NULL, 'o'},
        {"record", required_argument, NULL, 'r'},
        {"instance", required_argument, NULL, 'i'},
        {"threads", required_argument, NULL, 't'},
        {"max-in-flight", required_argument, NULL, 'm'},
        {"token", required_argument, NULL, 'k'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    pr->record_fd = -1;
    pr->log_level = SAGA_LOG_INFO;
    const char *coordinator = NULL, *record_path = NULL, *instance = NULL, *token = NULL;
    unsigned max_in_flight = 0;
    int c;
    while ((c = getopt_long(argc, argv, "c:s:o:r:i:t:m:k:l:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            coordinator = optarg;
            break;
        case 's':
            pr->service = optarg;
            break;
        case 'o':
            if (parse_on(pr, optarg) != 0) {
                fprintf(stderr, "saga-testpeer: bad --on %s\n", optarg);
                usage(stderr);
                return 2;
            }
            break;
        case 'r':
            record_path = optarg;
            break;
        case 'i':
            instance = optarg;
            break;
        case 't':
            if (parse_uint(optarg, &pr->threads) != 0 || pr->threads > 256) {
                fprintf(stderr, "saga-testpeer: bad --threads %s\n", optarg);
                return 2;
            }
            break;
        case 'm':
            if (parse_uint(optarg, &max_in_flight) != 0) {
                fprintf(stderr, "saga-testpeer: bad --max-in-flight %s\n", optarg);
                return 2;
            }
            break;
        case 'k':
            token = optarg;
            break;
        case 'l':
            if (parse_level(optarg, &pr->log_level) != 0) {
                fprintf(stderr, "saga-testpeer: bad --log-level %s\n", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (coordinator == NULL || pr->service == NULL || pr->n_actions == 0 || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (record_path != NULL) {
        pr->record_fd = open(record_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (pr->record_fd < 0) {
            fprintf(stderr, "saga-testpeer: cannot open %s: %s\n", record_path, strerror(errno));
            return 1;
        }
    }
    int rc = 1;
    if (uv_mutex_init(&pr->mu) != 0) {
        if (pr->record_fd >= 0)
            close(pr->record_fd);
        return 1;
    }
    if (uv_loop_init(&pr->loop) != 0) {
        uv_mutex_destroy(&pr->mu);
        if (pr->record_fd >= 0)
            close(pr->record_fd);
        return 1;
    }
    uv_signal_init(&pr->loop, &pr->sigterm);
    uv_signal_init(&pr->loop, &pr->sigint);
    pr->p = saga_participant_new(&(saga_participant_options_t){
        .service = pr->service,
        .instance_id = instance,
        .coordinators = coordinator,
        .auth_token = token,
        .max_in_flight = max_in_flight,
        .threads = pr->threads,
        .log = log_line,
        .log_data = pr,
        .log_level = pr->log_level,
    });
    if (pr->p == NULL)
        goto out;
    for (size_t i = 0; i < pr->n_actions; i++) {
        struct action *a = &pr->actions[i];
        saga_handlers_t h = {.action = handle,
                             .compensate = handle,
                             .prepare = handle,
                             .commit = handle,
                             .abort = handle,
                             .data = a};
        if (saga_participant_on(pr->p, a->name, &h) != 0)
            goto out;
    }
    pr->sigterm.data = pr->sigint.data = pr;
    uv_signal_start(&pr->sigterm, on_signal, SIGTERM);
    uv_signal_start(&pr->sigint, on_signal, SIGINT);
    if (saga_participant_attach_uv(pr->p, &pr->loop) != 0)
        goto out;
    uv_run(&pr->loop, UV_RUN_DEFAULT);
    rc = 0;
out:
    if (!uv_is_closing((uv_handle_t *)&pr->sigterm)) {
        uv_close((uv_handle_t *)&pr->sigterm, on_closed_signal);
        uv_close((uv_handle_t *)&pr->sigint, on_closed_signal);
    }
    saga_participant_free(&pr->p);
    uv_run(&pr->loop, UV_RUN_DEFAULT);
    uv_loop_close(&pr->loop);
    free(pr->counters);
    if (pr->record_fd >= 0)
        close(pr->record_fd);
    uv_mutex_destroy(&pr->mu);
    return rc;
}

int main(int argc, char **argv)
{
    struct peer *pr = calloc(1, sizeof(*pr));
    if (pr == NULL)
        return 1;
    int rc = peer_main(pr, argc, argv);
    free(pr);
    return rc;
}
