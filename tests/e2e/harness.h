/* The end-to-end harness: a fresh database per test, real `sagad` and
 * `saga-testpeer` processes with their logs in a temporary directory, the
 * testpeers' record files, and a little SQL for checks. Uses neither the SDK
 * nor the codec, so it links with either (test executables pick one).
 *
 * Every test owns one `struct e2e`: e2e_begin() stores it in cmocka's state
 * and e2e_teardown() (the test's teardown) kills whatever is still running,
 * prints the tail of every log when the test did not reach e2e_finish(),
 * drops the database and removes the directory of a test that passed
 * (unless SAGA_E2E_KEEP is set).
 * Children get SIGKILL if the test process dies (PR_SET_PDEATHSIG), so a
 * crashed or timed-out test leaves nothing behind either. */
#ifndef SAGA_E2E_HARNESS_H
#define SAGA_E2E_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define E2E_PATH      512
#define E2E_DIR       256 /* directories: room left for a file name */
#define E2E_URL       1024
#define E2E_MAX_PROCS 24

/* The default step and lease timings the tests are written against. */
#define E2E_HEARTBEAT "200ms"
#define E2E_LEASE     "2s"

struct e2e_proc {
    pid_t pid;
    int reaped; /* waited for; `status` holds the wait status */
    int status;
    int is_sagad;
    char name[48];
    char log[E2E_PATH];
    char addr[64];     /* sagad: the HOST:PORT it listens on */
    char instance[96]; /* sagad: its --instance-id; testpeer: its --instance */
};

struct e2e {
    char name[48];
    char dir[E2E_DIR];
    char server_url[E2E_URL]; /* the server's URL (database "saga") */
    char db_url[E2E_URL];     /* this test's database */
    char bin_dir[E2E_DIR];
    char src_dir[E2E_DIR];
    char records[E2E_PATH]; /* the record file every testpeer appends to by default */
    struct e2e_proc procs[E2E_MAX_PROCS];
    size_t n_procs;
    unsigned n_sagad;
    int passed;
    char pg_dir[E2E_DIR]; /* a private PostgreSQL (e2e_begin with private_pg) */
    void (*cleanup[32])(void *arg);
    void *cleanup_arg[32];
    size_t n_cleanup;
};

/* SAGA_TEST_DATABASE_URL, or exit 77 (skipped) when it is unset. */
const char *e2e_server_url(void);

/* Makes the test's directory, creates database e2e_NAME_PID and runs `sagad
 * migrate` on it. The server is the one SAGA_TEST_DATABASE_URL names, or with
 * `private_pg` a PostgreSQL of the test's own (tests/support/pg.sh), stopped
 * and removed at teardown. Stores the harness in *state for e2e_teardown(). */
struct e2e *e2e_begin(void **state, const char *name, int private_pg);

/* Runs `tests/support/pg.sh CMD DIR` on the private server (stop, start,
 * restart, kill); returns its exit status. */
int e2e_pg(struct e2e *h, const char *cmd);

/* Stops every process still running with SIGTERM and checks that each exits
 * 0 with a clean log (no sanitizer report); a test calls it last. Marks the
 * test passed, so its directory is removed. */
void e2e_finish(struct e2e *h);

/* Calls fn(arg) at teardown, after the processes were stopped (last in, first out). */
void e2e_on_teardown(struct e2e *h, void (*fn)(void *arg), void *arg);

/* cmocka teardown: SIGKILLs what is left, shows the logs of a failed test,
 * drops the database, frees the harness. */
int e2e_teardown(void **state);

/* ---- processes -------------------------------------------------------------------------- */

struct e2e_sagad_opts {
    const char *instance_id;  /* NULL: sagad@ADDR */
    const char *listen;       /* NULL: 127.0.0.1:0 (the log says which port) */
    const char *lease;        /* NULL: E2E_LEASE */
    const char *heartbeat;    /* NULL: E2E_HEARTBEAT */
    const char *database_url; /* NULL: the test's database */
    const char *extra[8];     /* more flags, NULL-terminated */
};

/* Starts `sagad serve` and waits (10 s) for event=server.ready; fills addr. */
struct e2e_proc *e2e_sagad(struct e2e *h, const struct e2e_sagad_opts *o);

struct e2e_peer_opts {
    const char *coordinators; /* "HOST:PORT[,HOST:PORT]" */
    const char *service;
    const char *instance; /* NULL: SERVICE-N */
    const char *record;   /* NULL: h->records */
    const char *on[16];   /* "action[.op]=behaviour", NULL-terminated */
    const char *extra[8]; /* more flags, NULL-terminated */
    int no_wait;          /* do not wait for event=registered */
};

/* Starts a saga-testpeer and waits (10 s) until it registered with every
 * coordinator it was given. */
struct e2e_proc *e2e_peer(struct e2e *h, const struct e2e_peer_opts *o);

/* Runs BIN_DIR/argv[0] (or argv[0] when it holds a '/') to completion with
 * its output in the log `name`; returns its exit status (-1: killed). */
int e2e_run(struct e2e *h, const char *name, const char *const argv[], unsigned timeout_ms);

/* Sends `sig` to a process the test started (and has not reaped). */
void e2e_signal(struct e2e_proc *p, int sig);

/* Waits up to timeout_ms for the process to exit; returns its exit code, or
 * 128 + signal when a signal ended it. Fails the test on timeout. */
int e2e_wait_exit(struct e2e_proc *p, unsigned timeout_ms);

/* SIGKILL and reap. */
void e2e_kill9(struct e2e_proc *p);

/* SIGTERM, then checks exit 0 within timeout_ms and a clean log. */
void e2e_stop(struct e2e_proc *p, unsigned timeout_ms);

/* 1 while the process runs (not exited). */
int e2e_alive(struct e2e_proc *p);

/* Fails the test when the log holds a sanitizer report. */
void e2e_assert_clean_log(const struct e2e_proc *p);

/* ---- logs ------------------------------------------------------------------------------- */

/* How many lines of the process's log contain every one of the `n` needles. */
size_t e2e_log_count(const struct e2e_proc *p, const char *needle, const char *needle2);

/* Waits until the log holds at least `count` lines with `needle` (and
 * `needle2` when not NULL); fails the test after timeout_ms, or at once when
 * the process exits first. Returns the milliseconds waited. */
uint64_t e2e_log_wait(struct e2e_proc *p, const char *needle, const char *needle2, size_t count,
                      unsigned timeout_ms);

/* ---- records (saga-testpeer --record) ---------------------------------------------------- */

struct e2e_rec {
    char op[16];
    char saga[40];
    char step[64];
    unsigned index;
    unsigned attempt;
    char key[128];
    char action[64];
    char instance[96];
};

/* Reads a record file (NULL: h->records); *out is malloc'd (free it). */
size_t e2e_records(struct e2e *h, const char *path, struct e2e_rec **out);

/* Records of one saga (NULL: any), step (NULL: any) and op (NULL: any). */
size_t e2e_rec_count(const struct e2e_rec *r, size_t n, const char *saga, const char *step,
                     const char *op);

/* Index of the first such record at or after `from`, or -1. */
long e2e_rec_find(const struct e2e_rec *r, size_t n, size_t from, const char *saga,
                  const char *step, const char *op);

/* Checks the record's invariants for one saga: every line's key is
 * SAGA/INDEX/OP, so that any repeat of an effect carries the same key. */
void e2e_rec_check_keys(const struct e2e_rec *r, size_t n, const char *saga);

/* Waits until the record file holds `count` lines matching; returns the count. */
size_t e2e_rec_wait(struct e2e *h, const char *saga, const char *step, const char *op, size_t count,
                    unsigned timeout_ms);

/* ---- SQL and time ----------------------------------------------------------------------- */

/* Runs `sql` on `url` (NULL: the test's database) and returns the first
 * column of the first row as an integer (0 for no row or NULL). */
long long e2e_sql_int(struct e2e *h, const char *url, const char *sql);

uint64_t e2e_now_ms(void);
void e2e_sleep_ms(unsigned ms);

#endif
