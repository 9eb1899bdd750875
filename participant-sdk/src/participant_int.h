/* The participant's insides, shared by participant.c (connections, commands,
 * lifecycle) and call.c (calls, completion, the handler thread pool). */
#ifndef SAGA_SDK_PARTICIPANT_INT_H
#define SAGA_SDK_PARTICIPANT_INT_H

#include <stdatomic.h>

#include "internal.h"

struct saga__action {
    char *name;
    saga_handlers_t h;
};

enum saga__link_state {
    SAGA__LINK_IDLE,       /* waiting to (re)connect */
    SAGA__LINK_CONNECTING, /* TCP under way */
    SAGA__LINK_HELLO,      /* Hello sent, waiting for HelloOk */
    SAGA__LINK_READY,      /* HelloOk received: commands flow */
    SAGA__LINK_RETIRED,    /* a peer no longer listed: no reconnects */
};

/* Room for a coordinator id (longer ones are cut; they only match replies). */
#define SAGA__COORD_ID_MAX 128

/* One coordinator address and the connection to it, kept for the life of the
 * participant (connections come and go; the link stays). */
struct saga__link {
    saga_participant_t *p;
    char *addr;
    char host[256];
    int port;
    enum saga__link_state state;
    struct saga__conn *conn;
    uint64_t gen; /* bumped for each connection */
    uv_timer_t retry_timer;
    uv_timer_t hb_timer;
    int timers_init; /* both timers initialised (to be closed) */
    int configured;  /* from the options (never retired), not learned from peers */
    char coord_id[SAGA__COORD_ID_MAX]; /* from the last HelloOk */
    unsigned failures;                 /* connections in a row that did not reach HelloOk */
    unsigned silent;                   /* heartbeat ticks with no frame received */
    unsigned hb_ms;
    uint64_t register_req;
    uint64_t ping_nonce;
};

struct saga__query {
    saga_participant_t *p;
    struct saga__query *next;
    uint8_t saga_id[SAGA_ID_LEN];
    uint32_t step_index;
    saga_decision_cb cb;
    void *data;
    uint64_t request_id; /* 0 while not sent */
    struct saga__link *link;
    uint64_t gen;
    uv_timer_t timer;
};

struct saga_call {
    saga_participant_t *p;
    struct wire_command cmd; /* owned */
    char id_text[SAGA_ID_TEXT_LEN];
    saga_handler_fn fn;
    void *fn_data;
    /* where the reply goes (loop thread only) */
    struct saga__link *link;
    uint64_t gen;
    uint64_t request_id;
    uint32_t reply_attempt;            /* the attempt of the newest delivery, echoed in the reply */
    char coord_id[SAGA__COORD_ID_MAX]; /* the coordinator that sent the command */
    struct saga_call *prev, *next;     /* p->calls (loop thread only) */
    /* under p->mu */
    int in_handler; /* handed to its handler, which has not returned */
    int done;       /* completed */
    int reported;   /* counted as forgotten */
    saga_outcome_t outcome;
    uint8_t *out;
    size_t out_len;
    char *reason;
    struct saga_call *qnext; /* p->done_q or p->run_q */
};

struct saga_participant {
    char *service;
    char *instance_id;
    char *auth_token;
    unsigned max_in_flight;
    unsigned threads;
    unsigned reconnect_min_ms, reconnect_max_ms;
    unsigned connect_timeout_ms;
    unsigned heartbeat_ms;
    struct saga__logger log;
    void (*on_stopped)(saga_participant_t *p, void *data);
    void *on_stopped_data;

    struct saga__action *actions;
    size_t n_actions;
    struct saga__link **links;
    size_t n_links;

    uv_loop_t *loop;
    uv_loop_t own_loop;
    int own_loop_init;
    uv_async_t async;
    int attached;
    int stopping; /* stop started on the loop */
    int stopped;  /* every handle closed */
    int free_pending;
    int handles; /* open handles of ours on the loop */
    atomic_int stop_requested;
    atomic_int async_live;

    uint64_t next_request;
    uint64_t rng;
    saga_participant_stats_t stats;
    struct saga_call *calls; /* every call not freed yet (loop thread) */
    struct saga__query *queries;

    /* shared with pool threads and completing threads */
    uv_mutex_t mu;
    uv_cond_t cond;
    size_t max_payload;
    struct saga_call *done_q, *done_tail;
    struct saga_call *run_q, *run_tail;
    int pool_quit;
    uv_thread_t *pool;
    unsigned pool_started;
};

/* call.c */

/* Builds a call from a decoded command (its contents are taken). */
struct saga_call *saga__call_new(saga_participant_t *p, struct wire_command *cmd,
                                 saga_handler_fn fn, void *fn_data);
void saga__call_free(struct saga_call *call);
/* Runs the handler here (loop mode) or queues it for the pool. */
void saga__call_dispatch(struct saga_call *call);
/* Starts the pool threads; 0 or SAGA_ENOMEM / SAGA_EIO. */
int saga__pool_start(saga_participant_t *p) SAGA__MUST_CHECK;
/* Tells the pool threads to quit and joins them. */
void saga__pool_stop(saga_participant_t *p);
/* Takes the queue of finished calls (completed and their handler returned). */
struct saga_call *saga__done_take(saga_participant_t *p);

/* participant.c */

/* Sends the call's reply when its connection is still the one the command
 * came on; counts it dropped otherwise. */
void saga__call_reply(struct saga_call *call);

#endif
