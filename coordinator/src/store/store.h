/* The store: the durable saga log in PostgreSQL, driven by a libuv loop.
 *
 * All calls are made on the loop's thread. Asynchronous calls take a callback
 * and a `void *data`; they return 0 when the work was accepted (the callback
 * will run, never from inside the call) or a negative SAGA_E* code when it was
 * not (the callback will not run). Results handed to a callback are owned by
 * the store and valid only during the callback: copy what you keep.
 *
 * Errors a callback may see: SAGA_EUNAVAIL (the database could not be reached
 * in time: nothing was written), SAGA_ETIMEDOUT (a write was sent but its
 * outcome could not be learned in time: it may be durable), SAGA_EFENCED (the
 * saga is no longer ours), SAGA_EEXIST, SAGA_ENOTFOUND, SAGA_EINVAL (the
 * database refused the data), SAGA_EDB (another database error),
 * SAGA_ECANCELED (the store was closed first). */
#ifndef SAGAD_STORE_H
#define SAGAD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/util.h"
#include "engine/definition.h"
#include "engine/record.h"
#include "saga/types.h"

#define STORE_OWNER_MAX 64 /* owner ids are shorter than this */

struct store;

struct store_config {
    const char *database_url;    /* libpq URL or key=value string; copied */
    const char *owner;           /* this coordinator's instance id; copied */
    unsigned pool_size;          /* connections; 0 means 4 */
    unsigned batch_writes;       /* most writes committed together; 0 means 256 */
    unsigned queue_max;          /* most writes waiting to be sent; 0 means 65536 */
    uint32_t unavailable_ms;     /* how long work waits for the database; 0 means 5000 */
    uint32_t lease_ms;           /* a lease's length; 0 means 15000 */
    uint32_t connect_timeout_ms; /* 0 means 5000 */
    uint32_t io_timeout_ms;      /* a segment in flight longer than this drops its
                                    connection; 0 means 30000 */
    uint32_t backoff_min_ms;     /* first reconnect delay; 0 means 100 */
    uint32_t backoff_max_ms;     /* reconnect delay cap; 0 means 5000 */
};

/* Counters since store_open(), for tests, benchmarks and /metrics. */
struct store_stats {
    uint64_t commits;        /* write transactions committed */
    uint64_t writes;         /* writes reported durable */
    uint64_t records;        /* records in those writes */
    uint64_t write_failures; /* writes reported failed */
    uint64_t isolations;     /* batches re-sent one writer per statement after an error */
    uint64_t retries;        /* writes sent again after a lost connection or a transient error */
    uint64_t recovered;      /* of those, writes found already committed (lost answer) */
    uint64_t connects;       /* connections made ready */
    uint64_t disconnects;    /* connections lost or refused */
    uint64_t queued;         /* writes waiting now */
    uint64_t in_flight;      /* writes sent and not yet done */
};

/* Opens a store on `loop`: starts connecting the pool and returns at once;
 * work submitted before a connection is ready waits (see unavailable_ms).
 * On success *out is set; close it with store_close(). Returns SAGA_EINVAL for
 * a missing or malformed URL or a missing owner, SAGA_ENOMEM. */
int store_open(uv_loop_t *loop, const struct store_config *cfg, struct store **out) MUST_CHECK;

/* Closes the store: work not yet done fails with SAGA_ECANCELED, connections
 * close. `cb` (may be NULL) runs once every handle is closed; the store is
 * freed right after it returns. Writes in flight may still commit. */
void store_close(struct store *s, void (*cb)(void *data), void *data);

/* 1 when at least one connection is ready. */
int store_available(const struct store *s);

void store_get_stats(const struct store *s, struct store_stats *out);

/* ---- writes ---- */

/* What a new saga needs besides its REC_SAGA_INSERT record. Borrowed: copied
 * by store_write(). */
struct store_create {
    const char *definition;
    uint32_t version;
    enum def_mode mode;
    uint16_t n_steps;
    const uint8_t *input;
    size_t input_len;
    const char *idempotency_key; /* NULL for none */
};

/* A write's outcome. */
struct store_write {
    void *data;
    /* The saga written; for a create that found its idempotency key taken,
     * the existing saga's id. */
    struct saga_id id;
    int existing; /* 1: the key was taken, nothing was written, status 0 */
    size_t n_records;
};

/* status 0: durable (committed with synchronous_commit on). */
typedef void (*store_write_cb)(const struct store_write *w, int status);

/* Persists the records of one engine call on one saga, in one transaction,
 * after the writes submitted before it for the same saga. `records` and
 * `create` are copied before this returns.
 *
 * For a new saga pass `create` (the first record must be REC_SAGA_INSERT; the
 * saga is owned by this store with epoch 1 and a fresh lease). Otherwise pass
 * NULL and the epoch this store holds the saga at: the write commits only if
 * this store's owner id and `epoch` still match the saga row, else it fails
 * with SAGA_EFENCED and changes nothing.
 *
 * When a write of a saga fails, the writes of that saga still queued behind it
 * fail with SAGA_ECANCELED (nothing written): they were computed from a state
 * the log does not hold.
 *
 * Step outputs: a REC_STEP_UPDATE with output == NULL keeps the stored output.
 * Returns 0, SAGA_EINVAL (malformed records), SAGA_EUNAVAIL (the queue is
 * full), SAGA_ENOMEM, SAGA_ECANCELED (closing). */
int store_write(struct store *s, const struct saga_id *id, uint64_t epoch,
                const struct store_create *create, const struct record *records, size_t n,
                store_write_cb cb, void *data) MUST_CHECK;

/* ---- definitions ---- */

struct store_definition {
    const char *name;
    uint32_t version;
    enum def_mode mode;
    const char *canonical; /* the canonical JSON text, NUL-terminated */
    size_t canonical_len;
    const char *hash;
    uint64_t created_ms;
};

struct store_define {
    void *data;
    int created; /* 1: stored now; 0: it was already there, same hash */
};

/* status 0, or SAGA_EEXIST when (name, version) holds a different body. */
typedef void (*store_define_cb)(const struct store_define *d, int status);

/* Stores a definition version. All strings are copied. */
int store_define(struct store *s, const char *name, uint32_t version, enum def_mode mode,
                 const char *canonical, size_t canonical_len, const char *hash, store_define_cb cb,
                 void *data) MUST_CHECK;

struct store_def_result {
    void *data;
    const struct store_definition *def; /* NULL unless status is 0 */
};

/* status 0 or SAGA_ENOTFOUND. */
typedef void (*store_def_cb)(const struct store_def_result *r, int status);

/* Loads one version of a definition, or the latest when version is 0. */
int store_definition_get(struct store *s, const char *name, uint32_t version, store_def_cb cb,
                         void *data) MUST_CHECK;

/* ---- inspection ---- */

struct store_saga {
    struct saga_id id;
    const char *definition;
    uint32_t version;
    enum def_mode mode;
    uint16_t n_steps;
    saga_status_t status;
    const uint8_t *input;
    size_t input_len;
    const char *idempotency_key; /* or NULL */
    const char *owner;           /* or NULL */
    uint64_t epoch;
    uint64_t lease_until_ms; /* 0 when none */
    uint64_t wake_ms;
    uint64_t deadline_ms;
    uint64_t created_ms;
    uint64_t updated_ms;
    const char *error; /* or NULL */
    uint32_t events;   /* timeline length */
};

struct store_step {
    uint16_t step;
    saga_step_status_t status;
    uint32_t attempts;
    uint32_t compensate_attempts;
    const uint8_t *output; /* or NULL */
    size_t output_len;
    const char *error;
    uint64_t started_ms;
    uint64_t finished_ms;
};

struct store_event {
    uint32_t seq; /* from 1, in order */
    uint64_t at_ms;
    const char *kind;
    int32_t step; /* -1 for saga-level events */
    uint32_t attempt;
    int status;         /* the saga or step status the event set */
    const char *detail; /* or NULL */
};

struct store_saga_view {
    void *data;
    const struct store_saga *saga; /* NULL unless status is 0 */
    size_t n_steps;                /* step rows written so far, by step index */
    const struct store_step *steps;
    size_t n_events;
    const struct store_event *events; /* the timeline, oldest first */
};

/* status 0 or SAGA_ENOTFOUND. */
typedef void (*store_get_cb)(const struct store_saga_view *v, int status);

/* Reads one saga, its steps and its timeline, from one snapshot. */
int store_get(struct store *s, const struct saga_id *id, store_get_cb cb, void *data) MUST_CHECK;

struct store_filter {
    saga_status_t status;      /* 0: any */
    const char *definition;    /* NULL: any */
    uint64_t created_since_ms; /* 0: any */
    unsigned limit;            /* 0 means 50; at most 1000 */
    const char *cursor;        /* NULL: the first page; else a next_cursor */
};

#define STORE_CURSOR_LEN 48

struct store_page {
    void *data;
    size_t n;
    const struct store_saga *sagas; /* newest first; input is not loaded */
    const char *next_cursor;        /* NULL on the last page */
};

/* status 0, or SAGA_EINVAL for a malformed cursor. */
typedef void (*store_list_cb)(const struct store_page *p, int status);

int store_list(struct store *s, const struct store_filter *f, store_list_cb cb,
               void *data) MUST_CHECK;

/* ---- leases ---- */

struct store_claimed {
    struct saga_snapshot snap; /* steps: n_steps entries, PENDING where no row */
    uint64_t epoch;            /* the epoch to write at from now on */
    const char *definition;
    uint32_t version;
    enum def_mode mode;
    const struct store_definition *def; /* the pinned definition, or NULL if missing */
};

struct store_claim {
    void *data;
    size_t n;
    const struct store_claimed *sagas;
};

typedef void (*store_claim_cb)(const struct store_claim *c, int status);

enum store_claim_flags {
    STORE_CLAIM_EXPIRED = 0, /* sagas whose lease ended */
    /* Sagas held under this owner id by an earlier process (a restart with the
     * same id), whatever their lease; never the ones this store took. */
    STORE_CLAIM_OWN = 1,
};

/* Takes up to `max` sagas (oldest lease first; rows another claimer holds are
 * skipped), bumps their epoch, leases them to this owner, and loads them for
 * the engine's rebuild. Returns SAGA_EINVAL for max 0 or over 1000. When the
 * database stops answering mid-claim the claim is retried so that what it took
 * is returned; if it finally fails, whatever it may have taken is given back
 * (released) once the database answers again. */
int store_claim(struct store *s, unsigned max, unsigned flags, store_claim_cb cb,
                void *data) MUST_CHECK;

/* Takes one saga again (a new epoch) and loads it: for a saga whose in-memory
 * state can no longer be trusted, e.g. after a write of it failed. Succeeds
 * with n == 1 when this owner id holds it or its lease ended, with n == 0 when
 * another coordinator holds it or it has ended. Waits for the database without
 * a deadline. */
int store_reclaim(struct store *s, const struct saga_id *id, store_claim_cb cb,
                  void *data) MUST_CHECK;

struct store_count {
    void *data;
    uint64_t n; /* rows touched */
};

typedef void (*store_count_cb)(const struct store_count *c, int status);

/* Extends to now + lease_ms the lease of each of `ids` (n of them, copied)
 * that this store holds (created or claimed), in one statement; `n` in the
 * result is how many. The caller names the sagas it drives: looking them up by
 * id costs the same however many sagas have ended since the last vacuum,
 * which a scan of the active-saga indexes does not. Rows a write holds at
 * that moment are skipped (a write extends the lease of its saga once half of
 * it has passed). A saga held here but not named runs out its lease and is
 * claimed like any other. */
int store_renew(struct store *s, const struct saga_id *ids, size_t n, store_count_cb cb,
                void *data) MUST_CHECK;

/* Gives up every lease this owner holds (on shutdown), so peers may claim at
 * once. Writes after this fail with SAGA_EFENCED. */
int store_release(struct store *s, store_count_cb cb, void *data) MUST_CHECK;

/* ---- coordinator registry ---- */

struct store_instance {
    const char *id;
    const char *address;
    uint64_t started_ms;
    uint64_t heartbeat_ms;
};

struct store_instances {
    void *data;
    size_t n;
    const struct store_instance *items;
};

typedef void (*store_instances_cb)(const struct store_instances *r, int status);

/* Registers (or re-registers) this owner id with its listen address. */
int store_register(struct store *s, const char *address, store_count_cb cb, void *data) MUST_CHECK;
/* Refreshes this instance's heartbeat; n is 0 when it was not registered. */
int store_heartbeat(struct store *s, store_count_cb cb, void *data) MUST_CHECK;
/* Lists instances whose heartbeat is newer than `within_ms` ago, by id. */
int store_instances(struct store *s, uint32_t within_ms, store_instances_cb cb,
                    void *data) MUST_CHECK;
int store_unregister(struct store *s, store_count_cb cb, void *data) MUST_CHECK;

/* ---- saga ids ---- */

/* Writes the 36-character text form of `id`, NUL-terminated. */
void store_id_format(const struct saga_id *id, char out[37]);
/* Parses the text form (hyphens optional). Returns 0 or SAGA_EINVAL. */
int store_id_parse(const char *text, struct saga_id *out) MUST_CHECK;

#endif
