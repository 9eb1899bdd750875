/* Values shared by the wire protocol, the coordinator and the SDK: saga and step
 * states, command ops and reply outcomes. The numbers are part of the protocol. */
#ifndef SAGA_TYPES_H
#define SAGA_TYPES_H

#include <stdint.h>

#include "saga/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of a raw saga id (a UUID), and of its text form with the NUL. */
#define SAGA_ID_LEN      16
#define SAGA_ID_TEXT_LEN 37

typedef enum saga_status {
    SAGA_STATUS_UNKNOWN = 0,
    /* mode "saga" */
    SAGA_STATUS_RUNNING = 1,
    SAGA_STATUS_COMPENSATING = 2,
    SAGA_STATUS_COMPLETED = 3,   /* terminal: every step succeeded */
    SAGA_STATUS_COMPENSATED = 4, /* terminal: every step that may have run was undone */
    SAGA_STATUS_STUCK = 5,       /* needs an operator; both modes */
    /* mode "2pc" */
    SAGA_STATUS_PREPARING = 6,
    SAGA_STATUS_COMMITTING = 7, /* the commit decision is durable */
    SAGA_STATUS_ABORTING = 8,
    SAGA_STATUS_COMMITTED = 9, /* terminal */
    SAGA_STATUS_ABORTED = 10,  /* terminal */
} saga_status_t;

typedef enum saga_step_status {
    SAGA_STEP_PENDING = 0,      /* not dispatched yet */
    SAGA_STEP_RUNNING = 1,      /* forward command in flight */
    SAGA_STEP_WAITING = 2,      /* forward attempt failed transiently; waiting to retry */
    SAGA_STEP_SUCCEEDED = 3,    /* forward OK (2pc: prepared) */
    SAGA_STEP_FAILED = 4,       /* forward FAIL or attempts exhausted */
    SAGA_STEP_COMPENSATING = 5, /* compensate (2pc: commit or abort) in flight or waiting */
    SAGA_STEP_COMPENSATED = 6,  /* compensate OK */
    SAGA_STEP_COMMITTED = 7,    /* 2pc: commit acknowledged */
    SAGA_STEP_ABORTED = 8,      /* 2pc: abort acknowledged */
    SAGA_STEP_STUCK = 9,        /* compensate FAIL or attempts exhausted */
    SAGA_STEP_SKIPPED = 10,     /* never dispatched and never will be */
} saga_step_status_t;

typedef enum saga_op {
    SAGA_OP_ACTION = 1,
    SAGA_OP_COMPENSATE = 2,
    SAGA_OP_PREPARE = 3,
    SAGA_OP_COMMIT = 4,
    SAGA_OP_ABORT = 5,
} saga_op_t;

typedef enum saga_outcome {
    SAGA_OUTCOME_OK = 1,
    SAGA_OUTCOME_FAIL = 2,  /* business refusal: never retried */
    SAGA_OUTCOME_RETRY = 3, /* transient: retried with backoff */
} saga_outcome_t;

/* Static lower-case names ("running", "compensate", "ok"); "unknown" for other values. */
SAGA_EXTERN const char *saga_status_name(saga_status_t status);
SAGA_EXTERN const char *saga_step_status_name(saga_step_status_t status);
SAGA_EXTERN const char *saga_op_name(saga_op_t op);
SAGA_EXTERN const char *saga_outcome_name(saga_outcome_t outcome);

/* 1 when `status` is terminal (COMPLETED, COMPENSATED, COMMITTED, ABORTED), else 0.
 * STUCK is not terminal: an operator can still move it. */
SAGA_EXTERN int saga_status_is_terminal(saga_status_t status);

/* 1 when `status` ends a step for now (SUCCEEDED, FAILED, COMPENSATED,
 * COMMITTED, ABORTED, STUCK, SKIPPED): the log stamps it with a finish time.
 * 0 for PENDING, RUNNING, WAITING and COMPENSATING. */
SAGA_EXTERN int saga_step_status_is_settled(saga_step_status_t status);

/* Writes the text form of `id` into `out` (SAGA_ID_TEXT_LEN bytes); returns out. */
SAGA_EXTERN char *saga_id_format(const uint8_t id[SAGA_ID_LEN], char out[SAGA_ID_TEXT_LEN]);
/* Parses the text form (dashes optional, either case); returns 0 or SAGA_EINVAL. */
SAGA_EXTERN int saga_id_parse(const char *text, uint8_t out[SAGA_ID_LEN]);

/* The SDK's version, "MAJOR.MINOR.PATCH"; static. */
SAGA_EXTERN const char *saga_version(void);

#ifdef __cplusplus
}
#endif
#endif
