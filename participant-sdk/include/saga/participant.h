/* libsaga participant API: a service registers handlers for its actions, the
 * library keeps connections to the coordinators and runs the handlers for the
 * commands they send.
 *
 *   saga_participant_t *p = saga_participant_new(&(saga_participant_options_t){
 *       .service = "inventory", .coordinators = "127.0.0.1:7420"});
 *   saga_participant_on(p, "reserve", &(saga_handlers_t){
 *       .action = reserve, .compensate = release, .data = app});
 *   saga_participant_run(p);            (or saga_participant_attach_uv(p, loop))
 *   saga_participant_free(&p);
 *
 * Threading. Every function here is called on the thread that runs the loop,
 * except: saga_participant_stop() (any thread, and from a signal handler) and
 * the saga_call_* functions (any thread; see "Completion").
 *
 * Completion. Every call handed to a handler is completed exactly once with
 * saga_call_ok(), saga_call_fail() or saga_call_retry(): inside the handler,
 * or later from any thread. The call stays valid while the handler runs and,
 * when the handler returns without completing it, until it is completed; once
 * both have happened the library frees it, and it must not be touched again.
 * A second completion while the call is valid returns SAGA_EALREADY and sends
 * nothing. A call never completed is logged and counted in the stats
 * ("forgotten") when the participant stops. */
#ifndef SAGA_PARTICIPANT_H
#define SAGA_PARTICIPANT_H

#include <stddef.h>
#include <stdint.h>

#include "saga/error.h"
#include "saga/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* libuv's loop; include <uv.h> to get one. */
struct uv_loop_s;

typedef struct saga_participant saga_participant_t;
typedef struct saga_call saga_call_t;

typedef enum saga_log_level {
    SAGA_LOG_DEFAULT = 0, /* in options: SAGA_LOG_WARN */
    SAGA_LOG_DEBUG = 1,
    SAGA_LOG_INFO = 2,
    SAGA_LOG_WARN = 3,
    SAGA_LOG_ERROR = 4,
    SAGA_LOG_OFF = 5, /* in options: log nothing */
} saga_log_level_t;

/* Receives one log line (logfmt "saga=... event=... key=value", no level, no
 * newline); `line` is valid during the call only. Called on the loop thread. */
typedef void (*saga_log_fn)(saga_log_level_t level, const char *line, void *data);

/* Runs one op of one step. `data` is saga_handlers_t.data. */
typedef void (*saga_handler_fn)(saga_call_t *call, void *data);

/* The handlers of one action. NULL handlers are not registered: the
 * coordinator sends no command for that op. */
typedef struct saga_handlers {
    saga_handler_fn action;     /* saga mode: run the step forward */
    saga_handler_fn compensate; /* saga mode: undo the forward effect */
    saga_handler_fn prepare;    /* 2pc: do the work and hold it */
    saga_handler_fn commit;     /* 2pc: make the prepared work final */
    saga_handler_fn abort;      /* 2pc: drop the prepared work */
    void *data;
} saga_handlers_t;

/* Options; every string is copied by saga_participant_new(). Zero means the
 * default in every numeric field. */
typedef struct saga_participant_options {
    const char *service;         /* required: the service name steps refer to */
    const char *instance_id;     /* NULL: "host:pid" */
    const char *coordinators;    /* required: "host:port[,host:port...]" */
    const char *auth_token;      /* NULL: none */
    unsigned max_in_flight;      /* commands run at once; more are answered RETRY; 0: no limit */
    unsigned threads;            /* 0: handlers run on the loop; N: on a pool of N threads */
    unsigned reconnect_min_ms;   /* first reconnect delay; default 100 */
    unsigned reconnect_max_ms;   /* cap of the exponential backoff; default 5000 */
    unsigned connect_timeout_ms; /* default 5000 */
    unsigned heartbeat_ms;       /* until the coordinator says its own; default 5000 */
    saga_log_fn log;             /* NULL: warnings and errors to stderr */
    void *log_data;
    saga_log_level_t log_level; /* lines below this level are not produced */
    /* Called on the loop once the participant has stopped and closed every
     * handle it had on the loop; it may call saga_participant_free(). */
    void (*on_stopped)(saga_participant_t *p, void *data);
    void *on_stopped_data;
} saga_participant_options_t;

/* Counters, read on the loop thread (or after saga_participant_run returned). */
typedef struct saga_participant_stats {
    uint64_t commands;    /* commands received */
    uint64_t replies;     /* replies sent */
    uint64_t dropped;     /* replies dropped: their connection had closed */
    uint64_t refused;     /* commands answered RETRY over max_in_flight */
    uint64_t in_flight;   /* calls handed to handlers and not finished */
    uint64_t forgotten;   /* calls never completed, counted when stopping */
    uint64_t connects;    /* handshakes completed */
    uint64_t disconnects; /* connections lost after a handshake */
    uint64_t errors;      /* Error frames received */
} saga_participant_stats_t;

/* Creates a participant (not connected yet). Returns NULL when an option is
 * missing or invalid (the reason is logged through options->log) or memory
 * runs out. The caller frees it with saga_participant_free(). */
SAGA_EXTERN saga_participant_t *saga_participant_new(const saga_participant_options_t *options);

/* Registers (or replaces) the handlers of `action`; `h` is copied. Allowed
 * before and after attaching: a connected participant registers again.
 * Returns 0, SAGA_EINVAL (no handler, bad name) or SAGA_ENOMEM. */
SAGA_EXTERN int saga_participant_on(saga_participant_t *p, const char *action,
                                    const saga_handlers_t *h);

/* Starts connecting on the application's loop. The loop must outlive the
 * participant's handles: stop it and let the loop turn (on_stopped) before
 * closing the loop. Returns 0, SAGA_ESTATE (already attached or stopped),
 * SAGA_ENOMEM or SAGA_EIO. */
SAGA_EXTERN int saga_participant_attach_uv(saga_participant_t *p, struct uv_loop_s *loop);

/* Runs a private loop until saga_participant_stop(). Returns 0, or an error
 * when the loop could not start. */
SAGA_EXTERN int saga_participant_run(saga_participant_t *p);

/* Asks the participant to stop: close its connections and handles. Safe from
 * any thread and from a signal handler; idempotent. */
SAGA_EXTERN void saga_participant_stop(saga_participant_t *p);

/* Frees the participant, sets *p to NULL; NULL or *p NULL is a no-op. Call it
 * after stopping (after run returned, or from or after on_stopped). Freed
 * while still attached, it closes its handles and the memory is released on a
 * later turn of the loop. Waits for pool threads to finish their handler.
 * Calls not completed are reported as forgotten. */
SAGA_EXTERN void saga_participant_free(saga_participant_t **p);

SAGA_EXTERN void saga_participant_stats(const saga_participant_t *p, saga_participant_stats_t *out);

/* The instance id sent in Hello; owned by the participant. */
SAGA_EXTERN const char *saga_participant_instance_id(const saga_participant_t *p);

/* ---- 2pc in-doubt resolution ---------------------------------------------- */

typedef enum saga_decision {
    SAGA_DECISION_COMMIT = 1,  /* commit the prepared work */
    SAGA_DECISION_ABORT = 2,   /* roll it back (presumed abort) */
    SAGA_DECISION_PENDING = 3, /* still preparing: ask again later */
} saga_decision_t;

/* status: 0 and `decision`, or SAGA_ETIMEDOUT (no coordinator answered in
 * timeout), SAGA_ECLOSED (the connection closed first), SAGA_ECANCELED (the
 * participant stopped), or the code of the coordinator's Error frame. */
typedef void (*saga_decision_cb)(saga_participant_t *p, int status, saga_decision_t decision,
                                 void *data);

/* Asks a coordinator what became of step `step_index` of saga `saga_id`. Sent
 * as soon as a connection is ready; `cb` is called once, later, on the loop.
 * timeout_ms 0 means 10 s. Returns 0, SAGA_ESTATE (not attached, or stopped),
 * SAGA_EINVAL or SAGA_ENOMEM; on error cb is never called. */
SAGA_EXTERN int saga_participant_query_decision(saga_participant_t *p,
                                                const uint8_t saga_id[SAGA_ID_LEN],
                                                uint32_t step_index, unsigned timeout_ms,
                                                saga_decision_cb cb, void *data);

/* ---- calls ------------------------------------------------------------------
 * Accessors return pointers owned by the call, valid while the call is. */

SAGA_EXTERN saga_op_t saga_call_op(const saga_call_t *call);
/* 16 raw bytes. */
SAGA_EXTERN const uint8_t *saga_call_saga_id(const saga_call_t *call);
/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx". */
SAGA_EXTERN const char *saga_call_saga_id_text(const saga_call_t *call);
SAGA_EXTERN const char *saga_call_definition(const saga_call_t *call);
SAGA_EXTERN uint32_t saga_call_definition_version(const saga_call_t *call);
SAGA_EXTERN const char *saga_call_step(const saga_call_t *call);
SAGA_EXTERN uint32_t saga_call_step_index(const saga_call_t *call);
SAGA_EXTERN const char *saga_call_action(const saga_call_t *call);
/* 1 for the first attempt of this op. */
SAGA_EXTERN uint32_t saga_call_attempt(const saga_call_t *call);
/* "(saga id)/(step index)/(op)": the same for every attempt of this op. */
SAGA_EXTERN const char *saga_call_idempotency_key(const saga_call_t *call);
/* The coordinator counts no reply after this many ms as RETRY; 0 = unknown. */
SAGA_EXTERN uint32_t saga_call_timeout_ms(const saga_call_t *call);
/* The saga input; *len set (may be NULL). Never NULL ("" when empty). */
SAGA_EXTERN const uint8_t *saga_call_input(const saga_call_t *call, size_t *len);
/* Forward ops: the output of step `step` this step depends on, or NULL when
 * it is not one of its dependencies. */
SAGA_EXTERN const uint8_t *saga_call_dep(const saga_call_t *call, const char *step, size_t *len);
/* The number of dependency outputs, and the i-th one (NULL past the end). */
SAGA_EXTERN size_t saga_call_dep_count(const saga_call_t *call);
SAGA_EXTERN const uint8_t *saga_call_dep_at(const saga_call_t *call, size_t i, const char **step,
                                            size_t *len);
/* Compensate, commit, abort: this step's own forward output ("" when none). */
SAGA_EXTERN const uint8_t *saga_call_own_output(const saga_call_t *call, size_t *len);
SAGA_EXTERN saga_participant_t *saga_call_participant(const saga_call_t *call);

/* Completes the call: OK with `out` (copied; may be NULL when len is 0).
 * Returns 0; SAGA_EALREADY (already completed: nothing sent); SAGA_ETOOBIG
 * (len over the coordinator's payload limit: the call is NOT completed, so
 * the handler can fail or retry it instead); SAGA_EINVAL; SAGA_ENOMEM (not
 * completed). */
SAGA_EXTERN int saga_call_ok(saga_call_t *call, const void *out, size_t len);
/* Completes the call with a business refusal (never retried); `reason` is
 * copied and cut to 1024 bytes. Returns 0, SAGA_EALREADY or SAGA_ENOMEM. */
SAGA_EXTERN int saga_call_fail(saga_call_t *call, const char *reason);
/* Completes the call with a transient failure (retried with backoff). */
SAGA_EXTERN int saga_call_retry(saga_call_t *call, const char *reason);

#ifdef __cplusplus
}
#endif
#endif
