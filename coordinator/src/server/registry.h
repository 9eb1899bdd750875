/* The participant registry: which connected instances serve which service and
 * actions, how many commands each has in flight, and which one gets the next
 * command (least in flight, with room under its limit). Pure bookkeeping: no
 * I/O; the session owns the connection an instance stands for. */
#ifndef SAGAD_REGISTRY_H
#define SAGAD_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "saga/types.h"
#include "wire/msg.h"

struct registry;
struct instance;

/* One command outstanding at an instance; embedded in the caller's struct. */
struct inflight {
    struct inflight *prev;
    struct inflight *next;
    struct instance *inst; /* NULL when not tracked */
};

int registry_new(struct registry **out) __attribute__((warn_unused_result));

/* Frees the registry; every instance must have been removed. */
void registry_free(struct registry **r);

/* Adds an instance of `service` (strings copied) standing for `session`.
 * It serves nothing until registry_set_actions(). Returns 0 or SAGA_ENOMEM. */
int registry_add(struct registry *r, const char *service, const char *instance_id, void *session,
                 struct instance **out) __attribute__((warn_unused_result));

/* Replaces the instance's actions with those of a Register message. Returns 0,
 * SAGA_EINVAL (an empty or duplicate action name) or SAGA_ENOMEM (unchanged). */
int registry_set_actions(struct registry *r, struct instance *inst, const struct wire_register *reg)
    __attribute__((warn_unused_result));

/* Removes the instance. `lost` is called for each command it had in flight
 * (already untracked) so the caller can send it elsewhere. */
void registry_remove(struct registry *r, struct instance *inst,
                     void (*lost)(struct inflight *f, void *data), void *data);

/* The instance to send (service, action, op) to: the one with the fewest
 * commands in flight among those with room, or NULL. `*known` is set to 1 when
 * some instance registered the action for the op, even if none has room. */
struct instance *registry_pick(struct registry *r, const char *service, const char *action,
                               saga_op_t op, int *known);

/* Counts `f` against `inst` until registry_untrack(). */
void registry_track(struct instance *inst, struct inflight *f);

/* Stops counting `f`; a no-op when it is not tracked. */
void registry_untrack(struct inflight *f);

void *registry_session(const struct instance *inst);
const char *registry_instance_id(const struct instance *inst);
const char *registry_instance_service(const struct instance *inst);
uint32_t registry_in_flight(const struct instance *inst);

/* Fills a ServiceList (for the Services request); `coordinator_id` is copied
 * into every instance. The caller frees it with wire_msg_free_contents() on a
 * message holding it. Returns 0 or SAGA_ENOMEM. */
int registry_describe(const struct registry *r, const char *coordinator_id,
                      struct wire_service_list *out) __attribute__((warn_unused_result));

/* Instances connected, over all services. */
size_t registry_count(const struct registry *r);

#endif
