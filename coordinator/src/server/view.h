/* Views: turns what the store read back into the wire messages clients get
 * (SagaInfo, SagaList, Event). Pure copying; no I/O. */
#ifndef SAGAD_VIEW_H
#define SAGAD_VIEW_H

#include "engine/definition.h"
#include "store/store.h"
#include "wire/msg.h"

/* Fills `out` from `v`; `def` (may be NULL) names the steps. Everything is
 * copied: free with wire_msg_free_contents() on the message holding `out`,
 * also after a failure. Returns 0 or SAGA_ENOMEM. */
int view_saga_info(const struct store_saga_view *v, const struct definition *def,
                   struct wire_saga_info *out) __attribute__((warn_unused_result));

/* One timeline entry. Same ownership as view_saga_info(). */
int view_event(const struct store_event *e, const struct definition *def, struct wire_event *out)
    __attribute__((warn_unused_result));

/* A page of sagas. Same ownership as view_saga_info(). */
int view_saga_list(const struct store_page *p, struct wire_saga_list *out)
    __attribute__((warn_unused_result));

enum wire_mode view_mode(enum def_mode mode);

#endif
