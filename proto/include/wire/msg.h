/* The wire protocol's messages as plain C structs: one struct per message of
 * the proto/saga/v1 files, held in a tagged `struct wire_msg`. The codec turns
 * these into frames and back; nothing else sees the generated protobuf code.
 *
 * Ownership. A wire_msg owns every pointer in it, or none:
 *  - A message returned by the decoder owns all its memory: every string,
 *    byte buffer and array was allocated with malloc() for it. Release it with
 *    wire_msg_free_contents(). Decoded strings are never NULL ("" when the peer
 *    sent none), except the two alternatives of wire_start noted there. Empty
 *    byte fields are NULL with length 0. Arrays are NULL with count 0 when empty.
 *  - A message built to be encoded may point anywhere (stack, static, borrowed):
 *    the encoder only reads it. NULL strings encode as "". Call
 *    wire_msg_free_contents() on it only if every pointer in it came from
 *    malloc() (or is NULL).
 *
 * Strings are NUL-terminated UTF-8 text; a string sent with an embedded NUL
 * reads as its text up to that NUL. Byte fields are (pointer, length).
 * Times are milliseconds since the Unix epoch (uint64_t *_ms); durations are
 * milliseconds (uint32_t *_ms). A saga id is 16 raw bytes (a UUID). */
#ifndef SAGA_WIRE_MSG_H
#define SAGA_WIRE_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "saga/types.h"

/* The protocol version this code speaks (Hello.protocol_version). */
#define WIRE_PROTOCOL_VERSION 1

/* Bytes in a saga id. */
#define WIRE_SAGA_ID_LEN 16

/* The bit of `op` (a saga_op_t) in wire_action.ops. */
#define WIRE_OP_BIT(op) (1u << (unsigned)(op))
/* Every bit wire_action.ops may have. */
#define WIRE_OP_ALL                                                  \
    (WIRE_OP_BIT(SAGA_OP_ACTION) | WIRE_OP_BIT(SAGA_OP_COMPENSATE) | \
     WIRE_OP_BIT(SAGA_OP_PREPARE) | WIRE_OP_BIT(SAGA_OP_COMMIT) | WIRE_OP_BIT(SAGA_OP_ABORT))

/* Which body an envelope carries. */
enum wire_type {
    WIRE_NONE = 0, /* no message (a zeroed struct wire_msg) */
    /* handshake, heartbeats, participants */
    WIRE_HELLO,
    WIRE_HELLO_OK,
    WIRE_REGISTER,
    WIRE_COMMAND,
    WIRE_REPLY,
    WIRE_PING,
    WIRE_PONG,
    WIRE_ERROR,
    WIRE_ACK,
    WIRE_IN_DOUBT,
    WIRE_DECISION,
    /* clients */
    WIRE_DEFINE,
    WIRE_DEFINED,
    WIRE_START,
    WIRE_STARTED,
    WIRE_GET,
    WIRE_SAGA_INFO,
    WIRE_WAIT,
    WIRE_LIST,
    WIRE_SAGA_LIST,
    WIRE_RETRY,
    WIRE_ABORT,
    WIRE_RESOLVE,
    WIRE_SERVICES,
    WIRE_SERVICE_LIST,
    WIRE_WATCH,
    WIRE_EVENT,
    WIRE_TYPE_COUNT /* not a type: one past the last */
};

enum wire_role {
    WIRE_ROLE_UNSPECIFIED = 0, /* never valid in a message */
    WIRE_ROLE_PARTICIPANT = 1,
    WIRE_ROLE_CLIENT = 2,
};

/* Note the numbers differ from enum def_mode: 0 means "not said" on the wire. */
enum wire_mode {
    WIRE_MODE_UNSPECIFIED = 0,
    WIRE_MODE_SAGA = 1,
    WIRE_MODE_2PC = 2,
};

enum wire_decision {
    WIRE_DECISION_UNSPECIFIED = 0, /* never valid in a message */
    WIRE_DECISION_COMMIT = 1,      /* the commit decision is durable */
    WIRE_DECISION_ABORT = 2,       /* presumed abort: roll back */
    WIRE_DECISION_PENDING = 3,     /* still preparing: ask again later */
};

/* ---- handshake, heartbeats, participants -------------------------------- */

struct wire_hello {
    char *service;     /* participant: the service; client: a free label */
    char *instance_id; /* unique per process of the service */
    uint32_t protocol_version;
    char *auth_token;    /* "" when none */
    enum wire_role role; /* PARTICIPANT or CLIENT */
};

struct wire_hello_ok {
    char *coordinator_id;
    char **peers; /* "host:port" of every live coordinator */
    size_t n_peers;
    uint32_t heartbeat_interval_ms;
    uint32_t max_frame_bytes;   /* the largest Envelope either side may send */
    uint32_t max_payload_bytes; /* the largest saga input or step output */
    uint32_t protocol_version;  /* the version this connection speaks */
};

struct wire_action {
    char *name;
    uint32_t ops; /* WIRE_OP_BIT(op) for each op handled; a subset of WIRE_OP_ALL */
};

struct wire_register {
    struct wire_action *actions;
    size_t n_actions;
    uint32_t max_in_flight; /* 0 = no limit */
};

struct wire_step_output {
    char *step;
    uint8_t *output;
    size_t output_len;
};

struct wire_command {
    uint8_t saga_id[WIRE_SAGA_ID_LEN];
    char *definition;
    uint32_t definition_version;
    char *step;
    uint32_t step_index;
    char *action;
    saga_op_t op;
    uint32_t attempt;      /* 1 for the first attempt of this op */
    char *idempotency_key; /* "<saga uuid>/<step index>/<op name>" */
    uint8_t *input;        /* the saga input */
    size_t input_len;
    struct wire_step_output *deps; /* forward ops: outputs of the steps depended on */
    size_t n_deps;
    uint8_t *own_output; /* compensate/commit/abort: this step's forward output */
    size_t own_output_len;
    uint32_t timeout_ms;
};

struct wire_reply {
    uint8_t saga_id[WIRE_SAGA_ID_LEN];
    uint32_t step_index;
    saga_op_t op;
    uint32_t attempt;
    saga_outcome_t outcome;
    uint8_t *output; /* OK: the step's output */
    size_t output_len;
    char *error; /* FAIL, RETRY: why */
};

struct wire_ping {
    uint64_t nonce;
};

struct wire_pong {
    uint64_t nonce;
};

struct wire_error {
    int code; /* a negative SAGA_E* code here; its positive number on the wire */
    char *message;
    bool fatal;   /* the sender closes the connection after this frame */
    char *holder; /* HOST:PORT of the coordinator that holds the saga, or "" / NULL */
};

struct wire_in_doubt {
    uint8_t saga_id[WIRE_SAGA_ID_LEN];
    uint32_t step_index;
};

struct wire_decision_msg {
    uint8_t saga_id[WIRE_SAGA_ID_LEN];
    uint32_t step_index;
    enum wire_decision decision; /* COMMIT, ABORT or PENDING */
};

/* ---- clients -------------------------------------------------------------- */

struct wire_define {
    char *definition_json;
};

struct wire_defined {
    char *name;
    uint32_t version;
    char *hash;   /* lower-case hex SHA-256 of the canonical definition */
    bool created; /* false: an identical definition was already stored */
};

/* Exactly one of `definition` (a stored definition by name) and
 * `definition_json` (an inline document) is set; when decoded, the other is NULL. */
struct wire_start {
    char *definition;
    uint32_t version; /* with `definition`: 0 = the latest */
    char *definition_json;
    uint8_t *input;
    size_t input_len;
    char *idempotency_key; /* "" = none */
};

struct wire_started {
    uint8_t saga_id[WIRE_SAGA_ID_LEN];
    bool existed; /* the idempotency key matched an earlier saga */
};

/* Get, Watch */
struct wire_saga_ref {
    uint8_t saga_id[WIRE_SAGA_ID_LEN];
};

struct wire_wait {
    uint8_t saga_id[WIRE_SAGA_ID_LEN];
    uint32_t timeout_ms; /* 0 = the coordinator's maximum */
};

struct wire_step_info {
    char *name;
    char *service;
    char *action;
    saga_step_status_t status;
    uint32_t attempts;
    uint32_t compensate_attempts;
    char *error;
    uint64_t started_ms;  /* 0 = not yet */
    uint64_t finished_ms; /* 0 = not yet */
    uint8_t *output;
    size_t output_len;
};

struct wire_event {
    uint64_t seq;
    uint64_t at_ms;
    char *kind; /* "saga.started", "step.succeeded", ... */
    char *step; /* "" for saga-level events */
    uint32_t attempt;
    char *detail;
};

struct wire_saga_info {
    uint8_t saga_id[WIRE_SAGA_ID_LEN];
    char *definition;
    uint32_t version;
    enum wire_mode mode;
    saga_status_t status;
    char *error;
    uint64_t created_ms;
    uint64_t updated_ms;
    uint64_t deadline_ms; /* 0 = none */
    uint8_t *input;
    size_t input_len;
    struct wire_step_info *steps;
    size_t n_steps;
    struct wire_event *events;
    size_t n_events;
};

struct wire_list {
    saga_status_t status;      /* SAGA_STATUS_UNKNOWN = any */
    char *definition;          /* "" = any */
    uint64_t created_since_ms; /* 0 = any */
    uint32_t limit;            /* 0 = the coordinator's default */
    char *cursor;              /* "" = from the start */
};

struct wire_saga_summary {
    uint8_t saga_id[WIRE_SAGA_ID_LEN];
    char *definition;
    uint32_t version;
    enum wire_mode mode;
    saga_status_t status;
    char *error;
    uint64_t created_ms;
    uint64_t updated_ms;
};

struct wire_saga_list {
    struct wire_saga_summary *sagas;
    size_t n_sagas;
    char *next_cursor; /* "" = no more */
};

/* Retry, Abort */
struct wire_operator {
    uint8_t saga_id[WIRE_SAGA_ID_LEN];
    char *reason;
};

struct wire_resolve {
    uint8_t saga_id[WIRE_SAGA_ID_LEN];
    saga_status_t as; /* COMPLETED, COMPENSATED, COMMITTED or ABORTED */
    char *reason;
};

struct wire_instance {
    char *instance_id;
    char *coordinator_id;
    char **actions;
    size_t n_actions;
    uint32_t in_flight;
    uint32_t max_in_flight; /* 0 = no limit */
};

struct wire_service {
    char *name;
    struct wire_instance *instances;
    size_t n_instances;
};

struct wire_service_list {
    struct wire_service *services;
    size_t n_services;
};

/* One frame's message. `type` says which member of the union is live; the
 * bodyless messages (Ack, Services) have none. */
struct wire_msg {
    uint64_t request_id;
    enum wire_type type;
    union {
        struct wire_hello hello;
        struct wire_hello_ok hello_ok;
        struct wire_register reg;
        struct wire_command command;
        struct wire_reply reply;
        struct wire_ping ping;
        struct wire_pong pong;
        struct wire_error error;
        struct wire_in_doubt in_doubt;
        struct wire_decision_msg decision;
        struct wire_define define;
        struct wire_defined defined;
        struct wire_start start;
        struct wire_started started;
        struct wire_saga_ref get;
        struct wire_saga_info saga_info;
        struct wire_wait wait;
        struct wire_list list;
        struct wire_saga_list saga_list;
        struct wire_operator retry;
        struct wire_operator abort;
        struct wire_resolve resolve;
        struct wire_service_list service_list;
        struct wire_saga_ref watch;
        struct wire_event event;
    };
};

/* Frees every string, byte buffer and array `msg` holds (see Ownership above)
 * and leaves `*msg` zeroed (type WIRE_NONE). Safe on a zeroed message and on
 * one the decoder partly filled. */
void wire_msg_free_contents(struct wire_msg *msg);

/* The static name of `type` as in the .proto ("Command", "HelloOk"), or "unknown". */
const char *wire_type_name(enum wire_type type);

#endif
