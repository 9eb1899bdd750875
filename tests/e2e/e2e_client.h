/* Client-side helpers of the end-to-end tests, over the SDK's blocking client
 * (saga/client.h): define, start, wait until settled, and look into the
 * answer. Each helper fails the test on an unexpected answer. */
#ifndef SAGA_E2E_CLIENT_H
#define SAGA_E2E_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "saga/client.h"

struct e2e;

/* A blocking client of `coordinators` (5 s per request), freed at teardown. */
saga_client_t *e2e_client(struct e2e *h, const char *coordinators);

/* Defines `json`; expects success. */
void e2e_define(saga_client_t *c, const char *json);

/* Starts `definition` (latest version) with `input` and `key` (NULL: none);
 * expects success; writes the id (raw and text) and returns `existed`. */
int e2e_start(saga_client_t *c, const char *definition, const char *input, const char *key,
              uint8_t id[SAGA_ID_LEN], char text[SAGA_ID_TEXT_LEN]);

/* Waits until the saga is terminal or STUCK (fails the test after
 * timeout_ms); returns the last answer (free it). */
saga_result_t *e2e_wait(saga_client_t *c, const uint8_t id[SAGA_ID_LEN], unsigned timeout_ms);

/* Waits until the saga is settled and checks its status; returns the answer. */
saga_result_t *e2e_expect(saga_client_t *c, const uint8_t id[SAGA_ID_LEN], saga_status_t want,
                          unsigned timeout_ms);

/* The named step of a saga (fails the test when there is none). */
const saga_step_info_t *e2e_step(const saga_info_t *info, const char *name);

/* Index of the first event of `kind` (and `step`, when not NULL) at or after
 * `from`, or -1. */
long e2e_event(const saga_info_t *info, const char *kind, const char *step, size_t from);

/* Prints the saga's steps and timeline to stderr (for failing tests). */
void e2e_dump(const saga_info_t *info);

#endif
