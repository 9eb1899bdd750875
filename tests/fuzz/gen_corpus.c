/* Writes the decoder's seed corpus: one valid frame of every message type, a
 * stream of several, and a few malformed frames. Test tool only.
 *
 *   fuzz_gen_corpus DIR      (the committed copy is tests/fuzz/corpus/decoder) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/codec.h"
#include "wire/msg.h"
#include "wire_samples.h"

static int write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        fprintf(stderr, "path too long: %s/%s\n", dir, name);
        return -1;
    }
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    int rc = 0;
    if (len > 0 && fwrite(data, 1, len, f) != len)
        rc = -1;
    if (fclose(f) != 0)
        rc = -1;
    if (rc != 0)
        perror(path);
    return rc;
}

/* The file name of a type: "valid-hello_ok.bin" from "HelloOk". */
static void type_file(enum wire_type type, char *out, size_t n)
{
    const char *name = wire_type_name(type);
    size_t k = (size_t)snprintf(out, n, "valid-");
    for (const char *p = name; *p != '\0' && k + 6 < n; p++) {
        if (*p >= 'A' && *p <= 'Z') {
            if (p != name)
                out[k++] = '_';
            out[k++] = (char)(*p - 'A' + 'a');
        } else {
            out[k++] = *p;
        }
    }
    snprintf(out + k, n - k, ".bin");
}

static int write_bad(const char *dir)
{
    static const uint8_t zero_length[] = {0, 0, 0, 0};
    static const uint8_t oversize[] = {0x00, 0x40, 0x00, 0x01, 0x0a};
    static const uint8_t garbage[] = {0, 0, 0, 6, 0xff, 0xfe, 0x80, 0x80, 0x80, 0x01};
    static const uint8_t truncated[] = {0, 0, 0, 9, 0x08, 0x01, 0x2a, 0x40, 0x0a, 0x10, 1, 2, 3};
    int rc = 0;
    rc |= write_file(dir, "bad-zero_length.bin", zero_length, sizeof(zero_length));
    rc |= write_file(dir, "bad-oversize.bin", oversize, sizeof(oversize));
    rc |= write_file(dir, "bad-garbage.bin", garbage, sizeof(garbage));
    rc |= write_file(dir, "bad-truncated.bin", truncated, sizeof(truncated));

    struct pbw body = {.len = 0}, inner = {.len = 0}, frame = {.len = 0};
    /* a body field from the future */
    pbw_uint(&body, 1, 7);
    pbw_bytes(&body, 99, "\x08\x01", 2);
    pbw_frame(&frame, &body);
    rc |= write_file(dir, "bad-unknown_body.bin", frame.data, frame.len);
    /* a Reply whose outcome is out of range */
    static const uint8_t id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    body.len = frame.len = 0;
    pbw_bytes(&inner, 1, id, sizeof(id));
    pbw_uint(&inner, 3, 1);
    pbw_uint(&inner, 5, 7);
    pbw_bytes(&body, 6, inner.data, inner.len);
    pbw_frame(&frame, &body);
    rc |= write_file(dir, "bad-enum_range.bin", frame.data, frame.len);
    /* a Get with a 15-byte saga id */
    body.len = inner.len = frame.len = 0;
    pbw_bytes(&inner, 1, id, 15);
    pbw_bytes(&body, 17, inner.data, inner.len);
    pbw_frame(&frame, &body);
    rc |= write_file(dir, "bad-saga_id.bin", frame.data, frame.len);
    /* unknown fields inside and around a Ping: valid */
    body.len = inner.len = frame.len = 0;
    pbw_uint(&inner, 1, 77);
    pbw_bytes(&inner, 12, "future", 6);
    pbw_uint(&body, 1, 42);
    pbw_bytes(&body, 500, "later", 5);
    pbw_bytes(&body, 7, inner.data, inner.len);
    pbw_frame(&frame, &body);
    rc |= write_file(dir, "valid-unknown_fields.bin", frame.data, frame.len);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    int rc = 0;
    struct wire_buf all = {0};
    for (int t = WIRE_NONE + 1; t < WIRE_TYPE_COUNT; t++) {
        struct wire_msg m;
        struct wire_buf one = {0};
        sample_msg((enum wire_type)t, &m);
        if (wire_encode(&m, &one, 0) != 0 || wire_encode(&m, &all, 0) != 0) {
            fprintf(stderr, "cannot encode %s\n", wire_type_name(m.type));
            return 1;
        }
        char name[64];
        type_file((enum wire_type)t, name, sizeof(name));
        rc |= write_file(dir, name, one.data, one.len);
        wire_buf_free(&one);
    }
    struct wire_msg m;
    sample_start_inline(&m);
    if (wire_encode(&m, &all, 0) != 0)
        return 1;
    rc |= write_file(dir, "valid-stream.bin", all.data, all.len);
    wire_buf_free(&all);
    rc |= write_bad(dir);
    return rc != 0 ? 1 : 0;
}
