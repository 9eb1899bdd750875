/* The end-to-end harness (see harness.h): databases, processes, logs, record
 * files. Signals only the processes it started, by their pid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "harness.h"

#define READY_MS 15000
#define STOP_MS  20000

uint64_t e2e_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void e2e_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

const char *e2e_server_url(void)
{
    const char *url = getenv("SAGA_TEST_DATABASE_URL");
    if (url == NULL || url[0] == '\0') {
        fprintf(stderr, "SAGA_TEST_DATABASE_URL is not set: skipping\n");
        exit(77);
    }
    return url;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return calloc(1, 1);
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        if (cap - len < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* ---- SQL --------------------------------------------------------------------------------- */

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* NOTICEs such as "database ... does not exist, skipping" */
}

static PGconn *db_connect(const char *url)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("cannot connect to %s: %s", url, PQerrorMessage(c));
    PQsetNoticeProcessor(c, quiet, NULL);
    return c;
}

static void db_command(const char *url, const char *sql)
{
    PGconn *c = db_connect(url);
    PGresult *r = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

long long e2e_sql_int(struct e2e *h, const char *url, const char *sql)
{
    PGconn *c = db_connect(url != NULL ? url : h->db_url);
    PGresult *r = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    long long v = 0;
    if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return v;
}

/* postgresql://user@host:port/DB?params with another DB. */
static void url_with_db(const char *url, const char *db, char *out, size_t size)
{
    const char *scheme = strstr(url, "://");
    assert_non_null(scheme);
    const char *path = strchr(scheme + 3, '/');
    const char *query = strchr(scheme + 3, '?');
    size_t head = path ? (size_t)(path - url) : query ? (size_t)(query - url) : strlen(url);
    int n = snprintf(out, size, "%.*s/%s%s", (int)head, url, db, query ? query : "");
    assert_true(n > 0 && (size_t)n < size);
}

/* ---- processes --------------------------------------------------------------------------- */

struct args {
    const char *v[64];
    size_t n;
};

static void args_add(struct args *a, const char *s)
{
    assert_true(a->n + 1 < sizeof(a->v) / sizeof(a->v[0]));
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

static struct e2e_proc *spawn(struct e2e *h, const char *name, const char *const argv[])
{
    assert_true(h->n_procs < E2E_MAX_PROCS);
    struct e2e_proc *p = &h->procs[h->n_procs++];
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    int n = snprintf(p->log, sizeof(p->log), "%s/%02zu-%s.log", h->dir, h->n_procs, name);
    assert_true(n > 0 && (size_t)n < sizeof(p->log));
    char path[E2E_PATH];
    if (strchr(argv[0], '/') != NULL)
        n = snprintf(path, sizeof(path), "%s", argv[0]);
    else
        n = snprintf(path, sizeof(path), "%s/%s", h->bin_dir, argv[0]);
    assert_true(n > 0 && (size_t)n < sizeof(path));
    int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Die with the test, whatever ends it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int nul = open("/dev/null", O_RDONLY);
        if (nul < 0 || dup2(nul, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(127);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(fd);
    p->pid = pid;
    return p;
}

static int reap(struct e2e_proc *p, int block)
{
    if (p->reaped)
        return 1;
    int st;
    pid_t r = waitpid(p->pid, &st, block ? 0 : WNOHANG);
    if (r == p->pid) {
        p->reaped = 1;
        p->status = st;
        return 1;
    }
    return 0;
}

int e2e_alive(struct e2e_proc *p)
{
    return !reap(p, 0);
}

void e2e_signal(struct e2e_proc *p, int sig)
{
    assert_false(p->reaped);
    assert_true(p->pid > 0);
    assert_int_equal(kill(p->pid, sig), 0);
}

static int exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

int e2e_wait_exit(struct e2e_proc *p, unsigned timeout_ms)
{
    uint64_t until = e2e_now_ms() + timeout_ms;
    while (!reap(p, 0)) {
        if (e2e_now_ms() > until)
            fail_msg("%s (pid %d) did not exit within %u ms", p->name, (int)p->pid, timeout_ms);
        e2e_sleep_ms(10);
    }
    return exit_code(p->status);
}

void e2e_kill9(struct e2e_proc *p)
{
    if (p->reaped)
        return;
    kill(p->pid, SIGKILL);
    reap(p, 1);
}

void e2e_assert_clean_log(const struct e2e_proc *p)
{
    static const char *const reports[] = {
        "ERROR: AddressSanitizer",
        "ERROR: LeakSanitizer",
        "runtime error:",
        "SUMMARY: UndefinedBehaviorSanitizer",
        "SUMMARY: AddressSanitizer",
    };
    char *log = read_file(p->log);
    for (size_t i = 0; i < sizeof(reports) / sizeof(reports[0]); i++) {
        if (strstr(log, reports[i]) != NULL) {
            fprintf(stderr, "---- %s (%s) ----\n%s\n", p->name, p->log, log);
            free(log);
            fail_msg("%s: the log holds a sanitizer report (%s)", p->name, reports[i]);
        }
    }
    free(log);
}

void e2e_stop(struct e2e_proc *p, unsigned timeout_ms)
{
    e2e_signal(p, SIGTERM);
    int code = e2e_wait_exit(p, timeout_ms);
    e2e_assert_clean_log(p);
    if (code != 0)
        fail_msg("%s exited %d after SIGTERM (log %s)", p->name, code, p->log);
}

int e2e_run(struct e2e *h, const char *name, const char *const argv[], unsigned timeout_ms)
{
    struct e2e_proc *p = spawn(h, name, argv);
    return e2e_wait_exit(p, timeout_ms);
}

/* ---- logs -------------------------------------------------------------------------------- */

static size_t count_lines(const char *text, const char *a, const char *b)
{
    size_t n = 0;
    const char *line = text;
    while (*line != '\0') {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *hit = memmem(line, len, a, strlen(a));
        if (hit != NULL && (b == NULL || memmem(line, len, b, strlen(b)) != NULL))
            n++;
        line += len + (end ? 1 : 0);
    }
    return n;
}

size_t e2e_log_count(const struct e2e_proc *p, const char *needle, const char *needle2)
{
    char *log = read_file(p->log);
    size_t n = count_lines(log, needle, needle2);
    free(log);
    return n;
}

static void show_tail(const char *title, const char *path, size_t lines)
{
    char *text = read_file(path);
    size_t len = strlen(text), seen = 0;
    size_t i = len;
    while (i > 0 && seen <= lines) {
        i--;
        if (text[i] == '\n' && i + 1 < len)
            seen++;
    }
    if (seen > lines)
        i++;
    fprintf(stderr, "---- %s (%s), last lines ----\n%s\n", title, path, text + i);
    free(text);
}

uint64_t e2e_log_wait(struct e2e_proc *p, const char *needle, const char *needle2, size_t count,
                      unsigned timeout_ms)
{
    uint64_t t0 = e2e_now_ms();
    for (;;) {
        int gone = reap(p, 0);
        if (e2e_log_count(p, needle, needle2) >= count)
            return e2e_now_ms() - t0;
        if (gone) {
            show_tail(p->name, p->log, 40);
            fail_msg("%s exited (%d) before logging %s%s%s", p->name, exit_code(p->status), needle,
                     needle2 ? " " : "", needle2 ? needle2 : "");
        }
        if (e2e_now_ms() - t0 > timeout_ms) {
            show_tail(p->name, p->log, 40);
            fail_msg("%s: no %s%s%s (x%zu) in its log within %u ms", p->name, needle,
                     needle2 ? " " : "", needle2 ? needle2 : "", count, timeout_ms);
        }
        e2e_sleep_ms(20);
    }
}

/* ---- sagad and testpeers ----------------------------------------------------------------- */

struct e2e_proc *e2e_sagad(struct e2e *h, const struct e2e_sagad_opts *o)
{
    static const struct e2e_sagad_opts none = {0};
    if (o == NULL)
        o = &none;
    struct args a = {0};
    args_add(&a, "sagad");
    args_add(&a, "serve");
    args_add(&a, "--database-url");
    args_add(&a, o->database_url ? o->database_url : h->db_url);
    args_add(&a, "--listen");
    args_add(&a, o->listen ? o->listen : "127.0.0.1:0");
    args_add(&a, "--lease");
    args_add(&a, o->lease ? o->lease : E2E_LEASE);
    args_add(&a, "--heartbeat");
    args_add(&a, o->heartbeat ? o->heartbeat : E2E_HEARTBEAT);
    if (o->instance_id != NULL) {
        args_add(&a, "--instance-id");
        args_add(&a, o->instance_id);
    }
    for (size_t i = 0; i < 8 && o->extra[i] != NULL; i++)
        args_add(&a, o->extra[i]);
    char name[48];
    snprintf(name, sizeof(name), "sagad%u", ++h->n_sagad);
    struct e2e_proc *p = spawn(h, name, a.v);
    p->is_sagad = 1;
    e2e_log_wait(p, "event=server.ready", NULL, 1, READY_MS);
    char *log = read_file(p->log);
    const char *at = strstr(log, "event=server.listening address=");
    assert_non_null(at);
    at += strlen("event=server.listening address=");
    size_t n = strcspn(at, " \n");
    assert_true(n > 0 && n < sizeof(p->addr));
    memcpy(p->addr, at, n);
    p->addr[n] = '\0';
    at = strstr(log, "event=server.ready instance=");
    assert_non_null(at);
    at += strlen("event=server.ready instance=");
    n = strcspn(at, " \n");
    assert_true(n > 0 && n < sizeof(p->instance));
    memcpy(p->instance, at, n);
    p->instance[n] = '\0';
    free(log);
    return p;
}

struct e2e_proc *e2e_peer(struct e2e *h, const struct e2e_peer_opts *o)
{
    struct args a = {0};
    char instance[96];
    if (o->instance != NULL)
        snprintf(instance, sizeof(instance), "%s", o->instance);
    else
        snprintf(instance, sizeof(instance), "%s-%zu", o->service, h->n_procs + 1);
    args_add(&a, "saga-testpeer");
    args_add(&a, "--coordinator");
    args_add(&a, o->coordinators);
    args_add(&a, "--service");
    args_add(&a, o->service);
    args_add(&a, "--instance");
    args_add(&a, instance);
    args_add(&a, "--record");
    args_add(&a, o->record ? o->record : h->records);
    for (size_t i = 0; i < 16 && o->on[i] != NULL; i++) {
        args_add(&a, "--on");
        args_add(&a, o->on[i]);
    }
    for (size_t i = 0; i < 8 && o->extra[i] != NULL; i++)
        args_add(&a, o->extra[i]);
    struct e2e_proc *p = spawn(h, instance, a.v);
    snprintf(p->instance, sizeof(p->instance), "%s", instance);
    if (o->no_wait)
        return p;
    /* Registered with each coordinator it was given. */
    const char *s = o->coordinators;
    while (*s != '\0') {
        size_t n = strcspn(s, ",");
        char want[96];
        snprintf(want, sizeof(want), "addr=%.*s ", (int)n, s);
        e2e_log_wait(p, "event=registered", want, 1, READY_MS);
        s += n + (s[n] == ',' ? 1 : 0);
    }
    return p;
}

/* ---- records ----------------------------------------------------------------------------- */

static void field(const char *line, const char *key, char *out, size_t size)
{
    size_t kl = strlen(key);
    const char *at = NULL;
    if (strncmp(line, key, kl) == 0 && line[kl] == '=') {
        at = line + kl + 1;
    } else {
        char pat[32];
        snprintf(pat, sizeof(pat), " %s=", key);
        at = strstr(line, pat);
        if (at != NULL)
            at += strlen(pat);
    }
    out[0] = '\0';
    if (at == NULL)
        return;
    size_t n = strcspn(at, " \n");
    if (n >= size)
        n = size - 1;
    memcpy(out, at, n);
    out[n] = '\0';
}

size_t e2e_records(struct e2e *h, const char *path, struct e2e_rec **out)
{
    char *text = read_file(path ? path : h->records);
    size_t n = 0, cap = 16;
    struct e2e_rec *r = calloc(cap, sizeof(*r));
    assert_non_null(r);
    for (char *line = text; *line != '\0';) {
        char *end = strchr(line, '\n');
        if (end != NULL)
            *end = '\0';
        if (strncmp(line, "op=", 3) == 0) {
            if (n == cap) {
                cap *= 2;
                r = realloc(r, cap * sizeof(*r));
                assert_non_null(r);
            }
            struct e2e_rec *x = &r[n++];
            char num[16];
            field(line, "op", x->op, sizeof(x->op));
            field(line, "saga", x->saga, sizeof(x->saga));
            field(line, "step", x->step, sizeof(x->step));
            field(line, "index", num, sizeof(num));
            x->index = (unsigned)strtoul(num, NULL, 10);
            field(line, "attempt", num, sizeof(num));
            x->attempt = (unsigned)strtoul(num, NULL, 10);
            field(line, "key", x->key, sizeof(x->key));
            field(line, "action", x->action, sizeof(x->action));
            field(line, "instance", x->instance, sizeof(x->instance));
        }
        if (end == NULL)
            break;
        line = end + 1;
    }
    free(text);
    *out = r;
    return n;
}

static int rec_match(const struct e2e_rec *x, const char *saga, const char *step, const char *op)
{
    return (saga == NULL || strcmp(x->saga, saga) == 0) &&
           (step == NULL || strcmp(x->step, step) == 0) && (op == NULL || strcmp(x->op, op) == 0);
}

size_t e2e_rec_count(const struct e2e_rec *r, size_t n, const char *saga, const char *step,
                     const char *op)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += rec_match(&r[i], saga, step, op);
    return c;
}

long e2e_rec_find(const struct e2e_rec *r, size_t n, size_t from, const char *saga,
                  const char *step, const char *op)
{
    for (size_t i = from; i < n; i++) {
        if (rec_match(&r[i], saga, step, op))
            return (long)i;
    }
    return -1;
}

void e2e_rec_check_keys(const struct e2e_rec *r, size_t n, const char *saga)
{
    for (size_t i = 0; i < n; i++) {
        if (saga != NULL && strcmp(r[i].saga, saga) != 0)
            continue;
        char want[160];
        snprintf(want, sizeof(want), "%s/%u/%s", r[i].saga, r[i].index, r[i].op);
        if (strcmp(r[i].key, want) != 0)
            fail_msg("record %zu: key %s, want %s", i, r[i].key, want);
    }
}

size_t e2e_rec_wait(struct e2e *h, const char *saga, const char *step, const char *op, size_t count,
                    unsigned timeout_ms)
{
    uint64_t until = e2e_now_ms() + timeout_ms;
    for (;;) {
        struct e2e_rec *r;
        size_t n = e2e_records(h, NULL, &r);
        size_t c = e2e_rec_count(r, n, saga, step, op);
        free(r);
        if (c >= count)
            return c;
        if (e2e_now_ms() > until) {
            show_tail("records", h->records, 40);
            fail_msg("no %zu records of saga %s step %s op %s within %u ms", count,
                     saga ? saga : "*", step ? step : "*", op ? op : "*", timeout_ms);
        }
        e2e_sleep_ms(20);
    }
}

/* ---- life cycle -------------------------------------------------------------------------- */

static void pg_script(struct e2e *h, char *out, size_t size)
{
    snprintf(out, size, "%s/tests/support/pg.sh", h->src_dir);
}

int e2e_pg(struct e2e *h, const char *cmd)
{
    char script[E2E_PATH];
    pg_script(h, script, sizeof(script));
    const char *argv[] = {"/bin/bash", script, cmd, h->pg_dir, NULL};
    char name[32];
    snprintf(name, sizeof(name), "pg-%s", cmd);
    return e2e_run(h, name, argv, 90000);
}

static void private_pg(struct e2e *h)
{
    /* Short: the server's Unix socket lives under it. */
    snprintf(h->pg_dir, sizeof(h->pg_dir), "/tmp/e2epg-XXXXXX");
    assert_non_null(mkdtemp(h->pg_dir));
    chmod(h->pg_dir, 0755);
    assert_int_equal(e2e_pg(h, "start"), 0);
    char port_file[E2E_PATH + 8];
    snprintf(port_file, sizeof(port_file), "%s/port", h->pg_dir);
    char *port = read_file(port_file);
    long pn = strtol(port, NULL, 10);
    free(port);
    assert_true(pn > 0 && pn < 65536);
    snprintf(h->server_url, sizeof(h->server_url),
             "postgresql://postgres@127.0.0.1:%ld/saga?sslmode=disable", pn);
}

struct e2e *e2e_begin(void **state, const char *name, int private_pg_server)
{
    const char *server = e2e_server_url(); /* skip (77) when unset, even with a private server */
    struct e2e *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    *state = h;
    snprintf(h->name, sizeof(h->name), "%s", name);
    const char *bin = getenv("SAGA_BIN_DIR");
    const char *src = getenv("SAGA_SOURCE_DIR");
    if (bin == NULL || src == NULL)
        fail_msg("SAGA_BIN_DIR and SAGA_SOURCE_DIR must be set: run the test through ctest");
    snprintf(h->bin_dir, sizeof(h->bin_dir), "%s", bin);
    snprintf(h->src_dir, sizeof(h->src_dir), "%s", src);
    snprintf(h->dir, sizeof(h->dir), "/tmp/saga-e2e-%s-XXXXXX", name);
    assert_non_null(mkdtemp(h->dir));
    snprintf(h->records, sizeof(h->records), "%s/records.txt", h->dir);
    if (private_pg_server)
        private_pg(h);
    else
        snprintf(h->server_url, sizeof(h->server_url), "%s", server);

    char db[64];
    snprintf(db, sizeof(db), "e2e_%s_%ld", name, (long)getpid());
    for (char *c = db; *c; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')))
            *c = '_';
    }
    url_with_db(h->server_url, db, h->db_url, sizeof(h->db_url));
    char sql[160];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    db_command(h->server_url, sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
    db_command(h->server_url, sql);
    const char *argv[] = {"sagad", "migrate", "--database-url", h->db_url, NULL};
    assert_int_equal(e2e_run(h, "migrate", argv, 30000), 0);
    return h;
}

void e2e_finish(struct e2e *h)
{
    /* Participants first, then coordinators: each must exit 0, cleanly. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < h->n_procs; i++) {
            struct e2e_proc *p = &h->procs[i];
            if (p->is_sagad != pass)
                continue;
            if (!reap(p, 0))
                e2e_stop(p, STOP_MS);
            else
                e2e_assert_clean_log(p);
        }
    }
    h->passed = 1;
}

static void remove_dir(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[E2E_PATH + 256];
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(path);
}

void e2e_on_teardown(struct e2e *h, void (*fn)(void *arg), void *arg)
{
    assert_true(h->n_cleanup < sizeof(h->cleanup) / sizeof(h->cleanup[0]));
    h->cleanup[h->n_cleanup] = fn;
    h->cleanup_arg[h->n_cleanup] = arg;
    h->n_cleanup++;
}

int e2e_teardown(void **state)
{
    struct e2e *h = *state;
    if (h == NULL)
        return 0;
    for (size_t i = 0; i < h->n_procs; i++)
        e2e_kill9(&h->procs[i]);
    while (h->n_cleanup > 0) {
        h->n_cleanup--;
        h->cleanup[h->n_cleanup](h->cleanup_arg[h->n_cleanup]);
    }
    if (!h->passed) {
        for (size_t i = 0; i < h->n_procs; i++)
            show_tail(h->procs[i].name, h->procs[i].log, 60);
        show_tail("records", h->records, 60);
        fprintf(stderr, "e2e %s: logs kept in %s\n", h->name, h->dir);
    }
    if (h->db_url[0] != '\0' && h->server_url[0] != '\0') {
        /* Best effort: a test that stopped its server must not fail here. */
        PGconn *c = PQconnectdb(h->server_url);
        PQsetNoticeProcessor(c, quiet, NULL);
        if (PQstatus(c) == CONNECTION_OK) {
            const char *db = strrchr(h->db_url, '/') + 1;
            char sql[160];
            snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %.*s WITH (FORCE)",
                     (int)strcspn(db, "?"), db);
            PQclear(PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 0));
        }
        PQfinish(c);
    }
    if (h->pg_dir[0] != '\0') {
        char script[E2E_PATH];
        pg_script(h, script, sizeof(script));
        h->n_procs = 0; /* room for the stop command */
        const char *argv[] = {"/bin/bash", script, "stop", h->pg_dir, NULL};
        struct e2e_proc *p = spawn(h, "pg-stop-final", argv);
        reap(p, 1);
        /* The data directory belongs to the postgres user: remove it as a tree. */
        const char *rm[] = {"/bin/rm", "-rf", h->pg_dir, NULL};
        p = spawn(h, "rm-pg", rm);
        reap(p, 1);
    }
    const char *keep = getenv("SAGA_E2E_KEEP");
    if (h->passed && (keep == NULL || keep[0] == '\0'))
        remove_dir(h->dir);
    else if (h->passed)
        fprintf(stderr, "e2e %s: logs kept in %s (SAGA_E2E_KEEP)\n", h->name, h->dir);
    free(h);
    *state = NULL;
    return 0;
}
