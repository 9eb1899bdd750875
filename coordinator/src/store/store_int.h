/* The store's internals, shared by store.c (pool, queues, scheduling), write.c
 * (group commit), ops.c (everything else) and sql.c (the statements). Nothing
 * outside store/ includes this. */
#ifndef SAGAD_STORE_INT_H
#define SAGAD_STORE_INT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "store/enc.h"
#include "store/pg.h"
#include "store/store.h"

/* ---- statements (sql.c) ---- */

enum stmt_id {
    STMT_WRITE,
    STMT_WRITE_CHECK,
    STMT_DEFINE,
    STMT_DEFINE_CHECK,
    STMT_DEF_GET,
    STMT_BEGIN_RO,
    STMT_COMMIT,
    STMT_GET_SAGA,
    STMT_GET_STEPS,
    STMT_GET_EVENTS,
    STMT_CLAIM_EXPIRED,
    STMT_CLAIM_OWN,
    STMT_CLAIM_TOKEN,
    STMT_CLAIM_ONE,
    STMT_RENEW,
    STMT_RELEASE,
    STMT_RELEASE_TOKEN,
    STMT_REGISTER,
    STMT_HEARTBEAT,
    STMT_INSTANCES,
    STMT_UNREGISTER,
    STMT_COUNT_
};

extern const struct pg_stmt store_stmts[STMT_COUNT_];

/* Parameters of STMT_WRITE, in order. */
enum {
    WP_OWNER,
    WP_LEASE_MS,
    WP_W_ID,
    WP_W_EPOCH,
    WP_W_TOKEN,
    WP_W_NEV,
    WP_W_UPD,
    WP_W_STATUS,
    WP_W_WAKE,
    WP_W_DEADLINE,
    WP_W_ERROR,
    WP_C_ID,
    WP_C_TOKEN,
    WP_C_DEF,
    WP_C_VER,
    WP_C_MODE,
    WP_C_NSTEPS,
    WP_C_STATUS,
    WP_C_INPUT,
    WP_C_KEY,
    WP_C_CREATED,
    WP_C_WAKE,
    WP_C_DEADLINE,
    WP_C_ERROR,
    WP_C_NEV,
    WP_S_ID,
    WP_S_STEP,
    WP_S_STATUS,
    WP_S_ATT,
    WP_S_CATT,
    WP_S_OUT,
    WP_S_ERR,
    WP_S_STARTED,
    WP_S_FINISHED,
    WP_E_ID,
    WP_E_BACK,
    WP_E_AT,
    WP_E_KIND,
    WP_E_STEP,
    WP_E_ATT,
    WP_E_STATUS,
    WP_E_DETAIL,
    WP_HOLDER,
    WP_COUNT_
};

/* Writes the text of a list query into `out`: the filters present take
 * parameters $1.. in the order status, definition, since, cursor (created_at,
 * id), then the limit. Returns 0 or SAGA_ENOMEM when it does not fit. */
int sql_list(char *out, size_t size, int status, int definition, int since, int cursor) MUST_CHECK;

/* SQLSTATE classes. */
int sqlstate_transient(const char *sqlstate); /* worth the same statement again */
int sqlstate_to_err(const char *sqlstate);    /* SAGA_EINVAL, SAGA_EEXIST, SAGA_EDB */

/* ---- small arena for results and copied arguments ---- */

struct arena {
    struct arena_chunk *head;
};

void *arena_alloc(struct arena *a, size_t n);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_strdup(struct arena *a, const char *s); /* NULL stays NULL */
void arena_free(struct arena *a);

/* ---- operations other than writes (ops.c) ---- */

struct op;

struct op_vtbl {
    const char *name;
    /* Fills the statements of one attempt into q (at most OP_MAX_QUERIES);
     * returns their number, or a negative SAGA_E* to fail the op. */
    int (*build)(struct op *op, struct pg_query *q);
    void (*result)(struct op *op, int index, const struct pg_res *res);
    /* The end: calls the caller's callback with `status`. The op is freed
     * by the caller of finish. */
    void (*finish)(struct op *op, int status);
    /* Called before an attempt whose predecessor's outcome is unknown, or
     * that failed transiently: forget partial results. May be NULL. */
    void (*retry)(struct op *op, int lost);
    void (*free)(struct op *op); /* frees what the op owns besides the arenas; may be NULL */
};

#define OP_MAX_QUERIES 8
#define OP_MAX_PARAMS  8

struct op {
    const struct op_vtbl *vt;
    struct store *s;
    struct op *next;
    struct op *prev;
    uint64_t deadline; /* uv_now() ms; UINT64_MAX for never */
    int attempts;
    int lost;   /* an attempt's outcome was unknown */
    int status; /* an error found in the results (set by `result`) */
    char sqlstate[6];
    void *data;
    struct arena args; /* what the op was asked, kept across attempts */
    struct arena res;  /* results of the current attempt */
    /* Parameter storage for one statement at a time (ops send at most a few). */
    const char *values[OP_MAX_QUERIES][OP_MAX_PARAMS];
    int lengths[OP_MAX_QUERIES][OP_MAX_PARAMS];
    int formats[OP_MAX_QUERIES][OP_MAX_PARAMS];
    uint8_t scratch[OP_MAX_QUERIES][OP_MAX_PARAMS][16];
};

/* Allocates an op of `size` bytes (a struct that starts with struct op). */
struct op *op_new(struct store *s, const struct op_vtbl *vt, size_t size, void *data);
/* Queues the op; returns 0 or SAGA_ECANCELED when closing (the op is freed). */
int op_submit(struct op *op) MUST_CHECK;
/* Records a failed statement's SQLSTATE and sets op->status (first one wins). */
void op_note_error(struct op *op, const struct pg_res *res);
void op_free(struct op *op);

/* Sets query k of an op to a prepared statement and returns its parameter slots. */
void op_query(struct op *op, struct pg_query *q, int k, enum stmt_id stmt, int n_params);
void op_param_text(struct op *op, int k, int i, const char *s);
void op_param_bytes(struct op *op, int k, int i, const void *p, size_t len);
void op_param_i64(struct op *op, int k, int i, int64_t v);
void op_param_i32(struct op *op, int k, int i, int32_t v);
void op_param_i16(struct op *op, int k, int i, int16_t v);
void op_param_uuid(struct op *op, int k, int i, const struct saga_id *id);

/* Sends queued ops on ready connections. */
void ops_flush(struct store *s);
/* Fails queued ops older than their deadline with SAGA_EUNAVAIL. */
void ops_expire(struct store *s, uint64_t now);
void ops_fail_all(struct store *s, int status);

/* Internal: gives back leases a claim may have taken when its outcome stayed
 * unknown. Retried until it succeeds or the store closes. */
int op_release_token(struct store *s, uint64_t token) MUST_CHECK;

/* ---- writes (write.c) ---- */

struct write;
struct batch;
struct store_conn;

/* In-flight writes by saga id: one write per saga at a time. */
struct busy_map {
    struct write **slots;
    size_t cap; /* a power of two */
    size_t n;
};

int busy_init(struct busy_map *m, size_t expected) MUST_CHECK;
void busy_free(struct busy_map *m);

/* Builds and sends one batch from the queue on `conn`; returns 1 if sent. */
int write_flush_one(struct store *s, struct store_conn *conn);
/* Fails queued writes older than their deadline; returns how many. */
size_t write_expire(struct store *s, uint64_t now);
/* Fails every queued write with `status` (closing). */
void write_fail_all(struct store *s, int status);
size_t write_queue_len(const struct store *s);

/* ---- the store (store.c) ---- */

struct store_conn {
    struct store *s;
    struct pg_conn *pg;
    uv_timer_t retry;
    uint32_t backoff_ms;
    unsigned index;
    struct batch *batch; /* the write batch in flight, or NULL */
    int closing;
};

struct write_queue {
    struct write *head;
    struct write *tail;
    size_t n;
};

struct store {
    uv_loop_t *loop;
    char *url;
    char owner[STORE_OWNER_MAX];
    unsigned pool_size;
    unsigned batch_writes;
    unsigned batch_records;
    unsigned queue_max;
    uint32_t unavailable_ms;
    uint32_t lease_ms;
    uint32_t connect_timeout_ms;
    uint32_t io_timeout_ms;
    uint32_t backoff_min_ms;
    uint32_t backoff_max_ms;

    struct store_conn *conns;
    uv_prepare_t flush; /* runs before the loop sleeps: sends what queued up */
    uv_timer_t tick;    /* deadlines, stuck connections, orphaned claims */
    int flush_active;
    int closing;
    unsigned handles_open;
    void (*close_cb)(void *data);
    void *close_data;

    struct write_queue writes;
    struct busy_map busy;
    size_t in_flight_writes;
    struct op *ops_head;
    struct op *ops_tail;

    uint64_t next_token;
    uint64_t holder; /* this incarnation, in sagas.holder */
    char holder_text[24];
    uint64_t rng;
    struct store_stats stats;
};

/* Asks for a flush before the loop next sleeps. */
void store_wake(struct store *s);
uint64_t store_token(struct store *s);
/* The ready connection with the least work in flight, or NULL. */
struct store_conn *store_pick_conn(struct store *s);
int store_orphan_add(struct store *s, uint64_t token);

#endif
