/* Records: what the engine asks the store to make durable, and the snapshot the
 * store gives back so the engine can rebuild a saga. This header is the whole
 * contract between engine/ and store/; neither knows more of the other. */
#ifndef SAGAD_RECORD_H
#define SAGAD_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "saga/types.h"

/* A saga id: a version 7 UUID, the Unix time in milliseconds (48 bits) then
 * random bits, so ids sort by creation time (see the runtime's saga_id_new). */
struct saga_id {
    uint8_t bytes[16];
};

/* A hash of all 16 bytes: the leading ones are a clock, not randomness. */
static inline size_t saga_id_hash(const struct saga_id *id)
{
    uint64_t a = 0, b = 0;
    for (int i = 0; i < 8; i++) {
        a = a << 8 | id->bytes[i];
        b = b << 8 | id->bytes[8 + i];
    }
    uint64_t h = b ^ (a * UINT64_C(0x9e3779b97f4a7c15));
    h ^= h >> 31;
    h *= UINT64_C(0xbf58476d1ce4e5b9);
    h ^= h >> 29;
    return (size_t)h;
}

enum record_kind {
    REC_SAGA_INSERT = 1, /* a new sagas row (and its first event) */
    REC_SAGA_UPDATE = 2, /* the sagas row changes status, error or wake time */
    REC_STEP_UPDATE = 3, /* one saga_steps row is inserted or replaced */
};

/* One durable change of one saga. Every record is also one row of the saga's
 * event timeline (saga_events), with `event` as its kind.
 *
 * Pointer fields are borrowed from the engine's saga and stay valid only until
 * the next engine call on that saga: the store copies what it keeps. The
 * records of one engine call are written in one transaction, in order. */
struct record {
    enum record_kind kind;
    const char *event; /* static timeline kind, "saga.started", "step.succeeded", ... */
    uint64_t at_ms;    /* wall-clock time of the event, ms since the Unix epoch */
    int32_t step;      /* step index, or -1 for saga-level records */
    uint32_t attempt;  /* the attempt the event concerns, or 0 */

    /* REC_SAGA_INSERT and REC_SAGA_UPDATE: the saga's new state. */
    saga_status_t saga_status;
    uint64_t deadline_ms; /* 0 means none */
    uint64_t wake_ms;     /* the next time the saga needs attention, 0 means none */

    /* REC_STEP_UPDATE: the step's new state. */
    saga_step_status_t step_status;
    uint32_t attempts;            /* forward attempts dispatched so far */
    uint32_t compensate_attempts; /* backward attempts dispatched so far */
    const uint8_t *output;        /* forward output of a succeeded step */
    size_t output_len;

    /* Both: why (a failure reason, a stuck reason, a timeout), or NULL. */
    const char *error;
};

/* The persisted state of one step, as the store read it back. */
struct step_snapshot {
    saga_step_status_t status; /* SAGA_STEP_PENDING for a step with no row */
    uint32_t attempts;
    uint32_t compensate_attempts;
    const uint8_t *output;
    size_t output_len;
    const char *error;
};

/* The persisted state of one saga: what the engine rebuilds from after a crash
 * or a lease takeover. Pointers are owned by whoever filled the snapshot and
 * need only outlive the rebuild call. */
struct saga_snapshot {
    struct saga_id id;
    saga_status_t status;
    uint64_t created_ms;
    uint64_t deadline_ms;
    uint64_t wake_ms;
    const uint8_t *input;
    size_t input_len;
    const char *error;
    uint16_t n_steps; /* equals the definition's step count */
    const struct step_snapshot *steps;
};

#endif
