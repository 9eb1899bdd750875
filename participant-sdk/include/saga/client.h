/* libsaga client API: define and start sagas, read and steer them, as sagactl
 * does. One client keeps one connection to one coordinator, opened on the
 * first request and again on the first request after it closed; when a
 * coordinator cannot be reached, the next one it knows of is tried.
 *
 * Two ways to use it:
 *  - asynchronous: options.loop is the application's libuv loop; every
 *    request takes a callback called exactly once, later, on that loop;
 *  - blocking: options.loop is NULL; the client runs a private loop inside
 *    each *_sync call until its answer (or timeout) arrives.
 *
 * Results. Every answer is a saga_result_t: a status (0 or SAGA_E*), the
 * coordinator's error text, and the body the request asked for, read through
 * the accessors below. The receiver owns it (the callback, or the caller of a
 * *_sync function) and frees it with saga_result_free(). Pointers from the
 * accessors belong to the result and live as long as it does. */
#ifndef SAGA_CLIENT_H
#define SAGA_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "saga/error.h"
#include "saga/types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct uv_loop_s;

typedef struct saga_client saga_client_t;
typedef struct saga_result saga_result_t;

typedef enum saga_mode {
    SAGA_MODE_UNKNOWN = 0,
    SAGA_MODE_SAGA = 1,
    SAGA_MODE_2PC = 2,
} saga_mode_t;

typedef struct saga_client_options {
    /* required: "host:port[,host:port...]", tried in turn when one cannot be
     * reached; the peers a coordinator names are added to the list */
    const char *coordinator;
    const char *auth_token;      /* NULL: none */
    const char *label;           /* sent as Hello.service; NULL: "client" */
    unsigned request_timeout_ms; /* per request, wait time not counted; default 30000 */
    unsigned connect_timeout_ms; /* default 5000 */
    struct uv_loop_s *loop;      /* NULL: a private loop for the *_sync calls */
} saga_client_options_t;

/* Creates a client (not connected yet); strings are copied. Returns NULL on a
 * missing option or no memory. Free it with saga_client_free(). */
SAGA_EXTERN saga_client_t *saga_client_new(const saga_client_options_t *options);

/* Fails every outstanding request with SAGA_ECANCELED (their callbacks run
 * now), closes the connection, frees the client and sets *c to NULL. With an
 * application loop the memory is released on a later turn of that loop.
 * NULL or *c NULL is a no-op. */
SAGA_EXTERN void saga_client_free(saga_client_t **c);

/* Called once per request, on the loop; owns `res` (never NULL). */
typedef void (*saga_client_cb)(saga_client_t *c, saga_result_t *res, void *data);

/* Called for each event a watch receives; `ev` is valid during the call. */
typedef struct saga_event saga_event_t;
typedef void (*saga_event_cb)(saga_client_t *c, const saga_event_t *ev, void *data);

typedef struct saga_start_request {
    const char *definition;      /* a stored definition by name ... */
    uint32_t version;            /* ... at this version; 0 = the latest */
    const char *definition_json; /* ... or an inline document (exactly one of the two) */
    const void *input;           /* the saga input (copied) */
    size_t input_len;
    const char *idempotency_key; /* NULL or "": none */
} saga_start_request_t;

typedef struct saga_list_filter {
    saga_status_t status;      /* SAGA_STATUS_UNKNOWN: any */
    const char *definition;    /* NULL or "": any */
    uint64_t created_since_ms; /* 0: any */
    uint32_t limit;            /* 0: the coordinator's default */
    const char *cursor;        /* NULL or "": from the start; else a next cursor */
} saga_list_filter_t;

/* Asynchronous requests. Each returns 0 and calls `cb` once later, or returns
 * an error (SAGA_EINVAL, SAGA_ENOMEM, SAGA_ESTATE without a loop) and never
 * calls it. Failures of the request itself reach the callback: SAGA_ECONNECT
 * (cannot connect), SAGA_ETIMEDOUT, SAGA_ECLOSED (the connection closed
 * before the answer), SAGA_ECANCELED (the client was freed), or the
 * coordinator's code with its message (SAGA_ENOTFOUND, SAGA_EDEFINITION...). */
SAGA_EXTERN int saga_client_define(saga_client_t *c, const char *json, saga_client_cb cb,
                                   void *data);
SAGA_EXTERN int saga_client_start(saga_client_t *c, const saga_start_request_t *req,
                                  saga_client_cb cb, void *data);
SAGA_EXTERN int saga_client_get(saga_client_t *c, const uint8_t id[SAGA_ID_LEN], saga_client_cb cb,
                                void *data);
/* Answers once the saga is terminal or stuck, or after timeout_ms (0: the
 * coordinator's maximum) with its state then, without the timeline (no
 * events: saga_client_get has them). */
SAGA_EXTERN int saga_client_wait(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                 unsigned timeout_ms, saga_client_cb cb, void *data);
SAGA_EXTERN int saga_client_list(saga_client_t *c, const saga_list_filter_t *filter,
                                 saga_client_cb cb, void *data);
SAGA_EXTERN int saga_client_retry(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                  const char *reason, saga_client_cb cb, void *data);
SAGA_EXTERN int saga_client_abort(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                  const char *reason, saga_client_cb cb, void *data);
/* as: COMPLETED or COMPENSATED (2pc: COMMITTED or ABORTED). */
SAGA_EXTERN int saga_client_resolve(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                    saga_status_t as, const char *reason, saga_client_cb cb,
                                    void *data);
SAGA_EXTERN int saga_client_services(saga_client_t *c, saga_client_cb cb, void *data);
/* Calls on_event for each event of the saga as it is logged, then `cb` once
 * with the final saga info (terminal or stuck) or an error. No timeout. */
SAGA_EXTERN int saga_client_watch(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                  saga_event_cb on_event, saga_client_cb cb, void *data);

/* Blocking versions (only on a client without options.loop). Each returns the
 * result's status and stores the result in *out (always, even on error:
 * it carries the message); the caller frees it with saga_result_free(). */
SAGA_EXTERN int saga_client_define_sync(saga_client_t *c, const char *json, saga_result_t **out);
SAGA_EXTERN int saga_client_start_sync(saga_client_t *c, const saga_start_request_t *req,
                                       saga_result_t **out);
SAGA_EXTERN int saga_client_get_sync(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                     saga_result_t **out);
SAGA_EXTERN int saga_client_wait_sync(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                      unsigned timeout_ms, saga_result_t **out);
SAGA_EXTERN int saga_client_list_sync(saga_client_t *c, const saga_list_filter_t *filter,
                                      saga_result_t **out);
SAGA_EXTERN int saga_client_retry_sync(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                       const char *reason, saga_result_t **out);
SAGA_EXTERN int saga_client_abort_sync(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                       const char *reason, saga_result_t **out);
SAGA_EXTERN int saga_client_resolve_sync(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                         saga_status_t as, const char *reason, saga_result_t **out);
SAGA_EXTERN int saga_client_services_sync(saga_client_t *c, saga_result_t **out);
SAGA_EXTERN int saga_client_watch_sync(saga_client_t *c, const uint8_t id[SAGA_ID_LEN],
                                       saga_event_cb on_event, void *data, saga_result_t **out);

/* ---- results ------------------------------------------------------------- */

/* Read-only views into a result. Strings are never NULL ("" when empty);
 * byte fields are never NULL when their length is 0 either. */
typedef struct saga_step_info {
    const char *name, *service, *action;
    saga_step_status_t status;
    uint32_t attempts;            /* forward attempts dispatched */
    uint32_t compensate_attempts; /* backward attempts dispatched */
    const char *error;
    uint64_t started_ms, finished_ms; /* ms since the epoch; 0 = not yet */
    const uint8_t *output;
    size_t output_len;
} saga_step_info_t;

struct saga_event {
    uint64_t seq;
    uint64_t at_ms;
    const char *kind; /* "saga.started", "step.succeeded", ... */
    const char *step; /* "" for saga-level events */
    uint32_t attempt;
    const char *detail;
};

typedef struct saga_info {
    uint8_t saga_id[SAGA_ID_LEN];
    char saga_id_text[SAGA_ID_TEXT_LEN];
    const char *definition;
    uint32_t version;
    saga_mode_t mode;
    saga_status_t status;
    const char *error;
    uint64_t created_ms, updated_ms, deadline_ms; /* deadline 0 = none */
    const uint8_t *input;
    size_t input_len;
    const saga_step_info_t *steps;
    size_t n_steps;
    const saga_event_t *events;
    size_t n_events;
} saga_info_t;

typedef struct saga_summary {
    uint8_t saga_id[SAGA_ID_LEN];
    char saga_id_text[SAGA_ID_TEXT_LEN];
    const char *definition;
    uint32_t version;
    saga_mode_t mode;
    saga_status_t status;
    const char *error;
    uint64_t created_ms, updated_ms;
} saga_summary_t;

typedef struct saga_instance_info {
    const char *instance_id;
    const char *coordinator_id;
    const char *const *actions;
    size_t n_actions;
    uint32_t in_flight;
    uint32_t max_in_flight; /* 0 = no limit */
} saga_instance_info_t;

typedef struct saga_service_info {
    const char *name;
    const saga_instance_info_t *instances;
    size_t n_instances;
} saga_service_info_t;

/* 0 or the SAGA_E* code of the failure. */
SAGA_EXTERN int saga_result_status(const saga_result_t *r);
/* The coordinator's error text, or a local description; "" when none. */
SAGA_EXTERN const char *saga_result_error(const saga_result_t *r);
/* retry/abort/resolve refused with SAGA_ESTATE because another coordinator
 * holds the saga: that coordinator's HOST:PORT, where the same command can be
 * sent (a client for it: saga_client_options_t.coordinator). "" otherwise. */
SAGA_EXTERN const char *saga_result_holder(const saga_result_t *r);

/* define: the stored name, version, hash, and whether it was new (1/0). */
SAGA_EXTERN const char *saga_result_def_name(const saga_result_t *r);
SAGA_EXTERN uint32_t saga_result_def_version(const saga_result_t *r);
SAGA_EXTERN const char *saga_result_def_hash(const saga_result_t *r);
SAGA_EXTERN int saga_result_def_created(const saga_result_t *r);

/* start: the saga id (NULL for other results) and whether the idempotency key
 * matched an earlier saga (1/0). */
SAGA_EXTERN const uint8_t *saga_result_saga_id(const saga_result_t *r);
SAGA_EXTERN const char *saga_result_saga_id_text(const saga_result_t *r);
SAGA_EXTERN int saga_result_existed(const saga_result_t *r);

/* get, wait, retry, abort, resolve, watch: the saga; NULL for other results. */
SAGA_EXTERN const saga_info_t *saga_result_info(const saga_result_t *r);

/* list: the page of sagas and the cursor of the next page ("" = no more). */
SAGA_EXTERN size_t saga_result_list_count(const saga_result_t *r);
SAGA_EXTERN const saga_summary_t *saga_result_list_at(const saga_result_t *r, size_t i);
SAGA_EXTERN const char *saga_result_next_cursor(const saga_result_t *r);

/* services: the connected services. */
SAGA_EXTERN size_t saga_result_service_count(const saga_result_t *r);
SAGA_EXTERN const saga_service_info_t *saga_result_service_at(const saga_result_t *r, size_t i);

/* Frees the result and sets *r to NULL; NULL or *r NULL is a no-op. */
SAGA_EXTERN void saga_result_free(saga_result_t **r);

SAGA_EXTERN const char *saga_mode_name(saga_mode_t mode);

#ifdef __cplusplus
}
#endif
#endif
