/* sagactl --json: the documented JSON form of what the coordinator answers
 * (docs/operations.md, "--json"). Pure: builds jansson values, prints them to
 * the stream it is handed. */
#ifndef SAGACTL_JSON_H
#define SAGACTL_JSON_H

#include <jansson.h>
#include <stdio.h>

#include "saga/client.h"

/* Each returns a new reference the caller releases with json_decref(), or
 * NULL when memory runs out. */
json_t *ctl_json_saga(const saga_info_t *info);
json_t *ctl_json_step(const saga_step_info_t *step);
json_t *ctl_json_event(const saga_event_t *ev);
json_t *ctl_json_summary(const saga_summary_t *s);
json_t *ctl_json_service(const saga_service_info_t *s);

/* Bytes as a JSON string when they are UTF-8 text, else null. */
json_t *ctl_json_bytes(const uint8_t *p, size_t len);

/* Writes `doc` indented by two, then a newline; steals the reference (NULL
 * is a no-memory failure). Returns 0, SAGA_ENOMEM or SAGA_EIO. */
int ctl_json_print(json_t *doc, FILE *out) __attribute__((warn_unused_result));

#endif
