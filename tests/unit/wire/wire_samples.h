/* Test support for the wire codec: one sample of every message with every
 * field set, a deep comparison, and a tiny protobuf writer for hand-made
 * frames. Shared by the unit tests, the fuzz target and its corpus generator. */
#ifndef SAGA_TEST_WIRE_SAMPLES_H
#define SAGA_TEST_WIRE_SAMPLES_H

#include <stddef.h>
#include <stdint.h>

#include "wire/msg.h"

/* Fills *out with a sample of `type` whose every field is set to a value other
 * than its default (arrays hold two or more entries). The message borrows
 * static storage: never free its contents. */
void sample_msg(enum wire_type type, struct wire_msg *out);

/* The second way to start a saga: an inline definition instead of a name. */
void sample_start_inline(struct wire_msg *out);

/* 1 when `a` and `b` carry the same message (a NULL string equals ""), else 0
 * with the first difference described in why[n]. */
int msg_equal(const struct wire_msg *a, const struct wire_msg *b, char *why, size_t n);

/* A byte writer for hand-made protobuf and frames; aborts on overflow. */
struct pbw {
    uint8_t data[4096];
    size_t len;
};

void pbw_varint(struct pbw *w, uint64_t v);
void pbw_tag(struct pbw *w, uint32_t field, uint32_t wire_type);
void pbw_raw(struct pbw *w, const void *p, size_t n);
/* field as length-delimited bytes */
void pbw_bytes(struct pbw *w, uint32_t field, const void *p, size_t n);
void pbw_uint(struct pbw *w, uint32_t field, uint64_t v);
/* A frame: 4-byte big-endian length of `body`, then `body`. */
void pbw_frame(struct pbw *out, const struct pbw *body);

#endif
