/* Private to the codec (proto/src/codec*.c): the protobuf conversion and the
 * checks protobuf cannot make. Nothing outside proto/src includes this. */
#ifndef SAGA_WIRE_CODEC_INT_H
#define SAGA_WIRE_CODEC_INT_H

#include <stddef.h>
#include <stdint.h>

#include "wire/codec.h"
#include "wire/msg.h"

/* Room for one error description. */
#define WIRE_ERR_MAX 160

/* Checks what protobuf cannot: every enum in range and set where it must be,
 * an Error code that is a negative SAGA_E* value, a Start with exactly one
 * definition, lengths without pointers. Returns 0, or SAGA_EINVAL with a
 * description in err[WIRE_ERR_MAX]. */
int wire_check(const struct wire_msg *msg, char *err) WIRE_MUST_CHECK;

/* Appends `msg` as one frame (length prefix and Envelope) to `out`; the frame's
 * length may not exceed `max_frame`. Does not check `msg` (wire_check does).
 * Returns 0, SAGA_ETOOBIG or SAGA_ENOMEM; `out->len` is unchanged on failure. */
int wire_pb_encode(const struct wire_msg *msg, struct wire_buf *out,
                   size_t max_frame) WIRE_MUST_CHECK;

/* Decodes `len` bytes of one Envelope into `*out`, which must be zeroed.
 * Returns 0, SAGA_EPROTO or SAGA_ENOMEM with a description in err[WIRE_ERR_MAX];
 * on failure `*out` may hold a partly filled message, for
 * wire_msg_free_contents(). Does not run wire_check. */
int wire_pb_decode(const uint8_t *data, size_t len, struct wire_msg *out,
                   char *err) WIRE_MUST_CHECK;

#endif
