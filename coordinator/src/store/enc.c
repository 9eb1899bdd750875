/* PostgreSQL's binary formats: building array parameters and reading result
 * values. Pure byte work: no libpq, no I/O, no SQL. */
#include <stdlib.h>
#include <string.h>

#include "saga/error.h"
#include "store/enc.h"
#include "store/store.h"

void buf_reset(struct buf *b)
{
    b->len = 0;
    b->failed = 0;
}

void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}

static int buf_grow(struct buf *b, size_t more)
{
    if (b->failed)
        return -1;
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void buf_put(struct buf *b, const void *data, size_t len)
{
    if (buf_grow(b, len) != 0)
        return;
    if (len)
        memcpy(b->p + b->len, data, len);
    b->len += len;
}

void buf_put_u16(struct buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    buf_put(b, x, 2);
}

void buf_put_u32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    buf_put(b, x, 4);
}

void buf_put_u64(struct buf *b, uint64_t v)
{
    buf_put_u32(b, (uint32_t)(v >> 32));
    buf_put_u32(b, (uint32_t)v);
}

size_t buf_reserve_u32(struct buf *b)
{
    size_t at = b->len;
    buf_put_u32(b, 0);
    return at;
}

void buf_patch_u32(struct buf *b, size_t at, uint32_t v)
{
    if (b->failed || at + 4 > b->len)
        return;
    b->p[at] = (uint8_t)(v >> 24);
    b->p[at + 1] = (uint8_t)(v >> 16);
    b->p[at + 2] = (uint8_t)(v >> 8);
    b->p[at + 3] = (uint8_t)v;
}

/* Array header: ndim, has-null flag, element type, then (size, lower bound)
 * per dimension; one dimension here, patched at the end. */
void pgarr_begin(struct buf *b, struct pgarr *a, uint32_t elem_oid)
{
    a->start = b->len;
    a->n = 0;
    a->has_null = 0;
    buf_put_u32(b, 1);
    buf_put_u32(b, 0);
    buf_put_u32(b, elem_oid);
    buf_put_u32(b, 0);
    buf_put_u32(b, 1);
}

void pgarr_end(struct buf *b, struct pgarr *a)
{
    buf_patch_u32(b, a->start + 4, a->has_null ? 1 : 0);
    buf_patch_u32(b, a->start + 12, a->n);
}

void pgarr_null(struct buf *b, struct pgarr *a)
{
    buf_put_u32(b, UINT32_MAX); /* length -1 */
    a->has_null = 1;
    a->n++;
}

void pgarr_bytes(struct buf *b, struct pgarr *a, const void *data, size_t len)
{
    buf_put_u32(b, (uint32_t)len);
    buf_put(b, data, len);
    a->n++;
}

void pgarr_text(struct buf *b, struct pgarr *a, const char *s)
{
    if (!s)
        pgarr_null(b, a);
    else
        pgarr_bytes(b, a, s, strlen(s));
}

void pgarr_uuid(struct buf *b, struct pgarr *a, const struct saga_id *id)
{
    pgarr_bytes(b, a, id->bytes, sizeof(id->bytes));
}

void pgarr_bool(struct buf *b, struct pgarr *a, int v)
{
    uint8_t x = v ? 1 : 0;
    pgarr_bytes(b, a, &x, 1);
}

void pgarr_i16(struct buf *b, struct pgarr *a, int16_t v)
{
    buf_put_u32(b, 2);
    buf_put_u16(b, (uint16_t)v);
    a->n++;
}

void pgarr_i32(struct buf *b, struct pgarr *a, int32_t v)
{
    buf_put_u32(b, 4);
    buf_put_u32(b, (uint32_t)v);
    a->n++;
}

void pgarr_i64(struct buf *b, struct pgarr *a, int64_t v)
{
    buf_put_u32(b, 8);
    buf_put_u64(b, (uint64_t)v);
    a->n++;
}

void pgarr_ts_ms(struct buf *b, struct pgarr *a, uint64_t ms)
{
    if (ms == 0) {
        pgarr_null(b, a);
        return;
    }
    pgarr_i64(b, a, (int64_t)ms * 1000 - PG_EPOCH_OFFSET_US);
}

void enc_i64(uint8_t out[8], int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)u;
        u >>= 8;
    }
}

void enc_i32(uint8_t out[4], int32_t v)
{
    uint32_t u = (uint32_t)v;
    for (int i = 3; i >= 0; i--) {
        out[i] = (uint8_t)u;
        u >>= 8;
    }
}

static uint64_t be(const char *p, int len)
{
    uint64_t v = 0;
    for (int i = 0; i < len; i++)
        v = (v << 8) | (uint8_t)p[i];
    return v;
}

int dec_i16(const char *p, int len, int16_t *out)
{
    if (len != 2)
        return SAGA_EPROTO;
    *out = (int16_t)(uint16_t)be(p, 2);
    return 0;
}

int dec_i32(const char *p, int len, int32_t *out)
{
    if (len != 4)
        return SAGA_EPROTO;
    *out = (int32_t)(uint32_t)be(p, 4);
    return 0;
}

int dec_i64(const char *p, int len, int64_t *out)
{
    if (len != 8)
        return SAGA_EPROTO;
    *out = (int64_t)be(p, 8);
    return 0;
}

int dec_bool(const char *p, int len, int *out)
{
    if (len != 1)
        return SAGA_EPROTO;
    *out = p[0] != 0;
    return 0;
}

int dec_uuid(const char *p, int len, struct saga_id *out)
{
    if (len != 16)
        return SAGA_EPROTO;
    memcpy(out->bytes, p, 16);
    return 0;
}

int dec_ts_us(const char *p, int len, int64_t *out)
{
    int64_t v;
    int rc = dec_i64(p, len, &v);
    if (rc != 0)
        return rc;
    if (v == INT64_MIN || v == INT64_MAX)
        *out = v;
    else
        *out = v + PG_EPOCH_OFFSET_US;
    return 0;
}

int dec_ts_ms(const char *p, int len, uint64_t *out)
{
    int64_t us;
    int rc = dec_ts_us(p, len, &us);
    if (rc != 0)
        return rc;
    if (us <= 0)
        *out = 0;
    else if (us == INT64_MAX)
        *out = UINT64_MAX;
    else
        *out = (uint64_t)(us / 1000);
    return 0;
}

void store_id_format(const struct saga_id *id, char out[37])
{
    saga_id_format(id->bytes, out);
}

int store_id_parse(const char *text, struct saga_id *out)
{
    return saga_id_parse(text, out->bytes);
}
