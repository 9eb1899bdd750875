/* PostgreSQL binary formats for parameters and results: a growable byte buffer,
 * one-dimensional arrays, and readers of the scalar types the store uses. */
#ifndef SAGAD_STORE_ENC_H
#define SAGAD_STORE_ENC_H

#include <stddef.h>
#include <stdint.h>

#include "common/util.h"
#include "engine/record.h"

/* Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC). */
#define PG_EPOCH_OFFSET_US INT64_C(946684800000000)

/* A growable buffer. A failed allocation sets `failed` and later writes are
 * dropped, so a caller checks once at the end. */
struct buf {
    uint8_t *p;
    size_t len;
    size_t cap;
    int failed;
};

void buf_reset(struct buf *b); /* empties, keeps the memory */
void buf_free(struct buf *b);  /* frees the memory; the buffer may be reused */
void buf_put(struct buf *b, const void *data, size_t len);
void buf_put_u16(struct buf *b, uint16_t v);
void buf_put_u32(struct buf *b, uint32_t v);
void buf_put_u64(struct buf *b, uint64_t v);
/* Reserves room for a 32-bit value written later with buf_patch_u32(). */
size_t buf_reserve_u32(struct buf *b);
void buf_patch_u32(struct buf *b, size_t at, uint32_t v);

/* A one-dimensional array parameter being written into a buffer. */
struct pgarr {
    size_t start; /* offset of the array's header in the buffer */
    uint32_t n;
    int has_null;
};

void pgarr_begin(struct buf *b, struct pgarr *a, uint32_t elem_oid);
void pgarr_end(struct buf *b, struct pgarr *a);
void pgarr_null(struct buf *b, struct pgarr *a);
void pgarr_bytes(struct buf *b, struct pgarr *a, const void *data, size_t len); /* text, bytea */
void pgarr_text(struct buf *b, struct pgarr *a, const char *s);                 /* NULL: SQL NULL */
void pgarr_uuid(struct buf *b, struct pgarr *a, const struct saga_id *id);
void pgarr_bool(struct buf *b, struct pgarr *a, int v);
void pgarr_i16(struct buf *b, struct pgarr *a, int16_t v);
void pgarr_i32(struct buf *b, struct pgarr *a, int32_t v);
void pgarr_i64(struct buf *b, struct pgarr *a, int64_t v);
/* A timestamptz from ms since the Unix epoch; 0 writes SQL NULL. */
void pgarr_ts_ms(struct buf *b, struct pgarr *a, uint64_t ms);

/* Scalars in binary form, for single-value parameters. */
void enc_i64(uint8_t out[8], int64_t v);
void enc_i32(uint8_t out[4], int32_t v);

/* Readers of binary result values (`p` points at `len` bytes). Each returns 0,
 * or SAGA_EPROTO when the length is not the type's. */
int dec_i16(const char *p, int len, int16_t *out) MUST_CHECK;
int dec_i32(const char *p, int len, int32_t *out) MUST_CHECK;
int dec_i64(const char *p, int len, int64_t *out) MUST_CHECK;
int dec_bool(const char *p, int len, int *out) MUST_CHECK;
int dec_uuid(const char *p, int len, struct saga_id *out) MUST_CHECK;
/* A timestamptz as ms since the Unix epoch (negative infinity reads as 0). */
int dec_ts_ms(const char *p, int len, uint64_t *out) MUST_CHECK;
int dec_ts_us(const char *p, int len, int64_t *out) MUST_CHECK;

#endif
