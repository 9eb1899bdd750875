/* Framing: output buffers, wire_encode(), and the streaming frame decoder.
 * Moves no bytes to or from sockets; the protobuf side is in codec_pb.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_int.h"

/* The decoder's first allocation, and the most it keeps once drained: a
 * buffer grown for one large frame is released when it empties. */
#define DECODER_MIN_CAP  (16u * 1024)
#define DECODER_KEEP_CAP (256u * 1024)

/* ---- output buffers ------------------------------------------------------- */

void wire_buf_init(struct wire_buf *buf)
{
    memset(buf, 0, sizeof(*buf));
}

int wire_buf_reserve(struct wire_buf *buf, size_t extra)
{
    if (extra > SIZE_MAX - buf->len)
        return SAGA_ENOMEM;
    size_t need = buf->len + extra;
    if (need <= buf->cap)
        return 0;
    size_t cap = buf->cap > 0 ? buf->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *data = realloc(buf->data, cap);
    if (data == NULL)
        return SAGA_ENOMEM;
    buf->data = data;
    buf->cap = cap;
    return 0;
}

void wire_buf_consume(struct wire_buf *buf, size_t n)
{
    if (n >= buf->len) {
        buf->len = 0;
        return;
    }
    memmove(buf->data, buf->data + n, buf->len - n);
    buf->len -= n;
}

void wire_buf_free(struct wire_buf *buf)
{
    free(buf->data);
    memset(buf, 0, sizeof(*buf));
}

/* ---- encoding ------------------------------------------------------------- */

int wire_encode(const struct wire_msg *msg, struct wire_buf *out, size_t max_frame)
{
    char err[WIRE_ERR_MAX];
    if (msg == NULL || out == NULL)
        return SAGA_EINVAL;
    int rc = wire_check(msg, err);
    if (rc != 0)
        return rc;
    return wire_pb_encode(msg, out, max_frame ? max_frame : WIRE_MAX_FRAME_DEFAULT);
}

/* ---- decoding ------------------------------------------------------------- */

/* Bytes [start, end) of buf are received and not yet decoded. */
struct wire_decoder {
    uint8_t *buf;
    size_t cap;
    size_t start;
    size_t end;
    size_t max_frame;
    int status; /* 0, or the error that failed the decoder for good */
    char error[WIRE_ERR_MAX];
};

int wire_decoder_new(struct wire_decoder **out, size_t max_frame)
{
    struct wire_decoder *dec = calloc(1, sizeof(*dec));
    *out = dec;
    if (dec == NULL)
        return SAGA_ENOMEM;
    dec->max_frame = max_frame ? max_frame : WIRE_MAX_FRAME_DEFAULT;
    return 0;
}

void wire_decoder_free(struct wire_decoder **dec)
{
    if (dec == NULL || *dec == NULL)
        return;
    free((*dec)->buf);
    free(*dec);
    *dec = NULL;
}

static int decoder_fail(struct wire_decoder *dec, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int decoder_fail(struct wire_decoder *dec, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dec->error, sizeof(dec->error), fmt, ap);
    va_end(ap);
    dec->status = code;
    /* Nothing more will be decoded: let the bytes go now. */
    free(dec->buf);
    dec->buf = NULL;
    dec->cap = dec->start = dec->end = 0;
    return code;
}

static uint32_t read_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Makes at least `want` writable bytes after `end`: moves the pending bytes to
 * the front only when the tail is short, grows only when that is not enough. */
static int decoder_reserve(struct wire_decoder *dec, size_t want)
{
    if (dec->cap - dec->end >= want)
        return 0;
    size_t pending = dec->end - dec->start;
    if (dec->start > 0 && dec->cap - pending >= want) {
        memmove(dec->buf, dec->buf + dec->start, pending);
        dec->start = 0;
        dec->end = pending;
        return 0;
    }
    if (want > SIZE_MAX - pending)
        return decoder_fail(dec, SAGA_ENOMEM, "out of memory buffering %zu bytes", want);
    size_t need = pending + want;
    size_t cap = dec->cap > DECODER_MIN_CAP ? dec->cap : DECODER_MIN_CAP;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (dec->start > 0) {
        memmove(dec->buf, dec->buf + dec->start, pending);
        dec->start = 0;
        dec->end = pending;
    }
    uint8_t *buf = realloc(dec->buf, cap);
    if (buf == NULL)
        return decoder_fail(dec, SAGA_ENOMEM, "out of memory buffering %zu bytes", need);
    dec->buf = buf;
    dec->cap = cap;
    return 0;
}

int wire_decoder_feed(struct wire_decoder *dec, const void *data, size_t len)
{
    if (dec->status != 0)
        return dec->status;
    if (len == 0)
        return 0;
    int rc = decoder_reserve(dec, len);
    if (rc != 0)
        return rc;
    memcpy(dec->buf + dec->end, data, len);
    dec->end += len;
    return 0;
}

int wire_decoder_space(struct wire_decoder *dec, size_t want, uint8_t **area, size_t *avail)
{
    *area = NULL;
    *avail = 0;
    if (dec->status != 0)
        return dec->status;
    if (want == 0)
        want = 1;
    /* A frame whose header is in: make room for the whole of it at once. */
    size_t pending = dec->end - dec->start;
    if (pending >= WIRE_FRAME_HEADER) {
        size_t len = read_be32(dec->buf + dec->start);
        if (len <= dec->max_frame && WIRE_FRAME_HEADER + len > pending &&
            WIRE_FRAME_HEADER + len - pending > want)
            want = WIRE_FRAME_HEADER + len - pending;
    }
    int rc = decoder_reserve(dec, want);
    if (rc != 0)
        return rc;
    *area = dec->buf + dec->end;
    *avail = dec->cap - dec->end;
    return 0;
}

void wire_decoder_commit(struct wire_decoder *dec, size_t n)
{
    if (dec->status != 0)
        return;
    if (n > dec->cap - dec->end)
        n = dec->cap - dec->end;
    dec->end += n;
}

/* All bytes decoded: start over at the front, and let a big buffer go. */
static void decoder_drained(struct wire_decoder *dec)
{
    dec->start = dec->end = 0;
    if (dec->cap > DECODER_KEEP_CAP) {
        free(dec->buf);
        dec->buf = NULL;
        dec->cap = 0;
    }
}

int wire_decoder_next(struct wire_decoder *dec, struct wire_msg *out)
{
    memset(out, 0, sizeof(*out));
    if (dec->status != 0)
        return dec->status;
    size_t pending = dec->end - dec->start;
    if (pending < WIRE_FRAME_HEADER)
        return SAGA_EAGAIN;
    uint32_t len = read_be32(dec->buf + dec->start);
    if (len == 0)
        return decoder_fail(dec, SAGA_EPROTO, "zero-length frame");
    if (len > dec->max_frame)
        return decoder_fail(dec, SAGA_ETOOBIG, "frame of %lu bytes over the limit of %zu",
                            (unsigned long)len, dec->max_frame);
    if (pending - WIRE_FRAME_HEADER < len)
        return SAGA_EAGAIN;

    char err[WIRE_ERR_MAX];
    const uint8_t *frame = dec->buf + dec->start + WIRE_FRAME_HEADER;
    int rc = wire_pb_decode(frame, len, out, err);
    if (rc == 0 && wire_check(out, err) != 0)
        rc = SAGA_EPROTO;
    if (rc != 0) {
        wire_msg_free_contents(out);
        return decoder_fail(dec, rc, "%s", err);
    }
    dec->start += WIRE_FRAME_HEADER + len;
    if (dec->start == dec->end)
        decoder_drained(dec);
    return 0;
}

int wire_decoder_status(const struct wire_decoder *dec)
{
    return dec->status;
}

const char *wire_decoder_error(const struct wire_decoder *dec)
{
    return dec->status != 0 ? dec->error : "";
}

size_t wire_decoder_buffered(const struct wire_decoder *dec)
{
    return dec->end - dec->start;
}
