/* The frame codec: a frame is a 4-byte big-endian length, then that many bytes
 * of one serialized saga.v1.Envelope. wire_encode() appends whole frames to a
 * caller's buffer; a wire_decoder takes bytes in any split and hands back one
 * message at a time. No I/O here: the connection code moves the bytes. */
#ifndef SAGA_WIRE_CODEC_H
#define SAGA_WIRE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "wire/msg.h"

/* Bytes of the length prefix. */
#define WIRE_FRAME_HEADER 4
/* The default limit on a frame's length (the Envelope, prefix not counted). */
#define WIRE_MAX_FRAME_DEFAULT (4u * 1024 * 1024)

#define WIRE_MUST_CHECK __attribute__((warn_unused_result))

/* A growable byte buffer the encoder appends to. Zero it (or wire_buf_init) to
 * start; `data[0..len)` is the content, `cap` the allocation. The caller owns
 * `data` and may hand it off (then zero the struct) or release it with
 * wire_buf_free(). */
struct wire_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

void wire_buf_init(struct wire_buf *buf);

/* Makes room for `extra` more bytes after `len` (may move `data`). Returns 0 or
 * SAGA_ENOMEM, leaving the buffer as it was on failure. */
int wire_buf_reserve(struct wire_buf *buf, size_t extra) WIRE_MUST_CHECK;

/* Drops the first `n` bytes (all of them when n >= len), keeping the allocation. */
void wire_buf_consume(struct wire_buf *buf, size_t n);

/* Frees `data` and zeroes the struct. */
void wire_buf_free(struct wire_buf *buf);

/* Appends one whole frame holding `msg` to `out`. `max_frame` limits the
 * frame's length (0 means WIRE_MAX_FRAME_DEFAULT). Reads `msg` only.
 * Returns 0; SAGA_EINVAL when `msg` is not a valid message (unknown type, an
 * enum out of range, an Error code that is not a negative SAGA_E* value, a
 * Start with both or neither definition); SAGA_ETOOBIG when the frame would be
 * over `max_frame`; SAGA_ENOMEM. On failure `out->len` is unchanged. */
int wire_encode(const struct wire_msg *msg, struct wire_buf *out, size_t max_frame) WIRE_MUST_CHECK;

/* A streaming decoder for one connection's incoming bytes. */
struct wire_decoder;

/* Creates a decoder that refuses frames longer than `max_frame` bytes (0 means
 * WIRE_MAX_FRAME_DEFAULT). Returns 0 or SAGA_ENOMEM; the caller frees *out
 * with wire_decoder_free(). */
int wire_decoder_new(struct wire_decoder **out, size_t max_frame) WIRE_MUST_CHECK;

/* Frees `*dec` and its buffered bytes, sets `*dec` to NULL; NULL is a no-op. */
void wire_decoder_free(struct wire_decoder **dec);

/* Copies `len` bytes into the decoder. Returns 0, SAGA_ENOMEM, or the decoder's
 * error once it has failed (the bytes are then dropped). */
int wire_decoder_feed(struct wire_decoder *dec, const void *data, size_t len) WIRE_MUST_CHECK;

/* Zero-copy feeding: gives a writable area of at least `want` bytes (more when
 * there is room) at the end of the decoder's buffer, for a read() or a libuv
 * alloc callback. Then wire_decoder_commit() says how many bytes were written
 * there. The area is valid until the next call on the decoder.
 * Returns 0, SAGA_ENOMEM, or the decoder's error once it has failed. */
int wire_decoder_space(struct wire_decoder *dec, size_t want, uint8_t **area,
                       size_t *avail) WIRE_MUST_CHECK;

/* Marks `n` bytes of the area from wire_decoder_space() as written; `n` must
 * not exceed the `avail` it returned (larger values are clamped). */
void wire_decoder_commit(struct wire_decoder *dec, size_t n);

/* Decodes the next whole frame into `*out` (any previous contents are ignored,
 * not freed). Returns:
 *   0             a message is in *out; free it with wire_msg_free_contents();
 *   SAGA_EAGAIN   no whole frame is buffered yet; *out is zeroed;
 *   SAGA_ETOOBIG  a frame's length is over the limit, or the frame would take
 *                 more than 16 times its size in memory to unpack (many empty
 *                 repeated sub-messages);
 *   SAGA_EPROTO   a zero-length frame, bytes that are no Envelope, an Envelope
 *                 with no known body, or a field protobuf cannot check (an enum
 *                 out of range, a saga id not 16 bytes, ...);
 *   SAGA_ENOMEM.
 * Every error but SAGA_EAGAIN leaves the decoder failed: each later call
 * returns the same error, and wire_decoder_error() says what went wrong. The
 * connection is then to be closed. */
int wire_decoder_next(struct wire_decoder *dec, struct wire_msg *out) WIRE_MUST_CHECK;

/* The decoder's error: 0 while it has not failed, else the SAGA_E* code. */
int wire_decoder_status(const struct wire_decoder *dec);

/* A description of the decoder's error ("frame of 5000000 bytes over the limit
 * of 4194304", "command: saga_id is 3 bytes, want 16"), or "" while it has not
 * failed. Owned by the decoder; valid until it is freed. */
const char *wire_decoder_error(const struct wire_decoder *dec);

/* Bytes fed and not yet decoded. */
size_t wire_decoder_buffered(const struct wire_decoder *dec);

#endif
