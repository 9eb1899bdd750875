/* Test support for the engine: definitions built by hand, a model of the
 * store that applies emitted records, and finders over effects. Plain C (no
 * cmocka), so the benchmark can use it too. Aborts on out-of-memory. */
#ifndef ENGINE_FIXTURE_H
#define ENGINE_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/definition.h"
#include "engine/effects.h"
#include "engine/record.h"
#include "engine/saga.h"

/* An empty definition of `n` steps named s0, s1, ...: no dependencies,
 * compensatable, timeout 1000 ms, retry and compensate_retry {3, 100 ms, 1000 ms},
 * no saga timeout. Add dependencies with fixture_after(), then call
 * fixture_finish() to derive dependents, stages and the pivot. */
struct definition *fixture_def_alloc(enum def_mode mode, uint16_t n);
void fixture_after(struct definition *def, uint16_t step, uint16_t dep);
void fixture_finish(struct definition *def);
void fixture_def_free(struct definition **def);

/* A finished definition from a spec: space-separated steps
 * "name[<dep,dep...][:pivot|:retriable]", dependencies named before. */
struct definition *fixture_def(enum def_mode mode, const char *spec);
struct def_step *fixture_step(struct definition *def, const char *name);
uint16_t fixture_index(const struct definition *def, const char *name);

/* Finders: the first entry for step (and op), or NULL / -1. */
const struct saga_command *fixture_command(const struct effects *fx, uint16_t step, saga_op_t op);
const struct record *fixture_step_record(const struct effects *fx, uint16_t step,
                                         saga_step_status_t status);
const struct record *fixture_saga_record(const struct effects *fx, saga_status_t status);
const struct saga_timer *fixture_timer(const struct effects *fx, enum saga_timer_kind kind,
                                       int32_t step);
int fixture_record_index(const struct effects *fx, const struct record *r);

/* The store, modelled: it applies records as the real store would (one saga
 * row, one row per step, owned copies) and counts per-step events. */
struct model_step {
    saga_step_status_t status;
    uint32_t attempts;
    uint32_t compensate_attempts;
    uint8_t *output;
    size_t output_len;
    char *error;
    uint32_t compensated_results; /* step.compensated records seen */
};

struct model_store {
    int exists;
    struct saga_id id;
    saga_status_t status;
    uint64_t created_ms;
    uint64_t deadline_ms;
    uint64_t wake_ms;
    uint8_t *input;
    size_t input_len;
    char *error;
    uint16_t n_steps;
    struct model_step *steps;
    struct step_snapshot *snap_steps; /* for model_store_snapshot() */
};

void model_store_init(struct model_store *m, uint16_t n_steps, const struct saga_id *id,
                      const uint8_t *input, size_t input_len);
void model_store_apply(struct model_store *m, const struct effects *fx);
/* A snapshot borrowing the model's memory. */
void model_store_snapshot(struct model_store *m, struct saga_snapshot *snap);
void model_store_destroy(struct model_store *m);

/* 1 when two snapshots hold the same persisted state; else 0 and `why`. */
int fixture_snapshots_equal(const struct saga_snapshot *a, const struct saga_snapshot *b, char *why,
                            size_t why_size);

/* 1 when the saga's projection equals the model store; else 0 and `why`. */
int fixture_matches_store(const struct saga *s, struct model_store *m, char *why, size_t why_size);

/* One saga driven step by step: every call resets the effects, applies the
 * records to the model store, then checks the write-ahead rule (each command
 * follows its dispatch record) and that the saga's projection equals the
 * store; a broken check prints why and aborts. */
struct harness {
    struct definition *def; /* owned unless borrowed */
    int borrowed;
    struct saga *s;
    struct effects fx;
    struct model_store store;
    struct saga_rng *rng;
    uint64_t now;
    int rc;
};

void harness_init(struct harness *h, struct definition *def);          /* takes def; now = 1000 */
void harness_init_borrowed(struct harness *h, struct definition *def); /* def stays the caller's */
void harness_destroy(struct harness *h);
int harness_start(struct harness *h);
/* `text` is the output of an OK, the reason of a FAIL or RETRY (may be NULL). */
int harness_reply(struct harness *h, uint16_t step, saga_op_t op, uint32_t attempt,
                  saga_outcome_t outcome, const char *text);
int harness_timer(struct harness *h, struct saga_timer timer);
/* Fires the timer of `kind` for `step` found in the last effects; aborts if none. */
int harness_fire(struct harness *h, enum saga_timer_kind kind, int32_t step);
int harness_retry(struct harness *h);
int harness_abort(struct harness *h);
int harness_resolve(struct harness *h, saga_status_t outcome);
/* Rebuilds the saga from the model store (as after a crash) and checks it. */
int harness_crash(struct harness *h);
/* Checks the last effects and the store; called by every harness call. */
void harness_check(struct harness *h, const char *what);

/* The attempt of the command for (step, op) in the last effects; aborts if none. */
uint32_t harness_attempt(const struct harness *h, uint16_t step, saga_op_t op);

#endif
