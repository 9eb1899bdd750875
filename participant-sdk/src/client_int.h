/* The client's result objects as client.c builds them (result.c). */
#ifndef SAGA_SDK_CLIENT_INT_H
#define SAGA_SDK_CLIENT_INT_H

#include "saga/client.h"
#include "internal.h"

/* A result carrying only a status and a message (copied). Never NULL: when
 * memory runs out it is a shared constant SAGA_ENOMEM result, which
 * saga_result_free() knows not to free. */
saga_result_t *saga__result_error(int status, const char *message);
/* An Error answer: saga__result_error plus the holder's address the
 * coordinator named, if any (saga_result_holder). */
saga_result_t *saga__result_refused(int status, const char *message, const char *holder);

/* A successful result from a decoded answer, whose contents it takes (the
 * message is zeroed). Never NULL (see saga__result_error). */
saga_result_t *saga__result_from_msg(struct wire_msg *msg);

/* A view of a decoded Event for the watch callback. */
void saga__event_view(const struct wire_event *in, saga_event_t *out);

#endif
