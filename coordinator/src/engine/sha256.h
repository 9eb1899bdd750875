/* SHA-256 (FIPS 180-4), small and dependency-free, for the content hash of
 * definitions. Pure: no I/O, no allocation. */
#ifndef SAGAD_SHA256_H
#define SAGAD_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32
#define SHA256_HEX_LEN    64

struct sha256 {
    uint32_t h[8];
    uint64_t total; /* bytes hashed so far */
    uint8_t block[64];
    size_t fill; /* bytes waiting in `block` */
};

void sha256_init(struct sha256 *ctx);
void sha256_update(struct sha256 *ctx, const void *data, size_t len);
/* Writes the digest; the context must be initialised again before reuse. */
void sha256_final(struct sha256 *ctx, uint8_t out[SHA256_DIGEST_LEN]);

/* The lower-case hex digest of `len` bytes of `data`, NUL-terminated in `out`. */
void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1]);

#endif
