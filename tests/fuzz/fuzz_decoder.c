/* libFuzzer target for the frame decoder: any bytes, in any split, must never
 * crash or leak, must decode the same way however they are split, and every
 * message that decodes must re-encode and decode back to itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/codec.h"
#include "wire/msg.h"
#include "wire_samples.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What one pass over the input produced: every decoded message re-encoded,
 * and how the decoder ended. Equal inputs must give equal results. */
struct outcome {
    struct wire_buf frames;
    int status;
    char error[256];
    size_t messages;
};

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_decoder: %s: %s\n", what, detail);
    abort();
}

static uint64_t fnv1a(const uint8_t *data, size_t size)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < size; i++) {
        h ^= data[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The re-encoded message must decode to an equal message. */
static void check_round_trip(const struct wire_msg *msg, struct wire_buf *frames)
{
    size_t start = frames->len;
    int rc = wire_encode(msg, frames, 0);
    if (rc != 0)
        die("a decoded message does not re-encode", saga_err_name(rc));

    struct wire_decoder *dec = NULL;
    if (wire_decoder_new(&dec, 0) != 0)
        die("wire_decoder_new", "out of memory");
    if (wire_decoder_feed(dec, frames->data + start, frames->len - start) != 0)
        die("feed", wire_decoder_error(dec));
    struct wire_msg again;
    if (wire_decoder_next(dec, &again) != 0)
        die("a re-encoded message does not decode", wire_decoder_error(dec));
    char why[128];
    if (!msg_equal(msg, &again, why, sizeof(why)))
        die("round trip changed the message", why);
    wire_msg_free_contents(&again);
    struct wire_msg none;
    if (wire_decoder_next(dec, &none) != SAGA_EAGAIN)
        die("a re-encoded frame left bytes over", wire_decoder_error(dec));
    wire_decoder_free(&dec);
}

/* Pulls every whole frame the decoder holds. Returns 0 to go on, or the
 * decoder's error once it failed. */
static int drain(struct wire_decoder *dec, struct outcome *out, int check)
{
    for (;;) {
        struct wire_msg msg;
        int rc = wire_decoder_next(dec, &msg);
        if (rc == SAGA_EAGAIN)
            return 0;
        if (rc != 0) {
            if (msg.type != WIRE_NONE)
                die("a failed decode returned a message", wire_decoder_error(dec));
            return rc;
        }
        if (check)
            check_round_trip(&msg, &out->frames);
        else if (wire_encode(&msg, &out->frames, 0) != 0)
            die("a decoded message does not re-encode", wire_type_name(msg.type));
        out->messages++;
        wire_msg_free_contents(&msg);
    }
}

enum split { SPLIT_WHOLE, SPLIT_RANDOM, SPLIT_BYTES };

/* One pass: feeds `data` in the given split, copying (feed) or writing into
 * the decoder's own buffer (space/commit), and records what came out. */
static void run_pass(const uint8_t *data, size_t size, size_t max_frame, enum split split,
                     uint64_t seed, struct outcome *out)
{
    struct wire_decoder *dec = NULL;
    memset(out, 0, sizeof(*out));
    if (wire_decoder_new(&dec, max_frame) != 0)
        die("wire_decoder_new", "out of memory");
    uint64_t rnd = seed | 1;
    size_t off = 0;
    int rc = 0;
    while (off < size && rc == 0) {
        size_t n = size - off;
        if (split == SPLIT_BYTES)
            n = 1;
        else if (split == SPLIT_RANDOM)
            n = 1 + next_rand(&rnd) % (n < 300 ? n : 300);
        if (n > size - off)
            n = size - off;
        if (split != SPLIT_WHOLE && next_rand(&rnd) % 2 == 0) {
            uint8_t *area = NULL;
            size_t avail = 0;
            rc = wire_decoder_space(dec, n, &area, &avail);
            if (rc == 0) {
                if (avail < n)
                    die("space", "less room than asked for");
                memcpy(area, data + off, n);
                wire_decoder_commit(dec, n);
            }
        } else {
            rc = wire_decoder_feed(dec, data + off, n);
        }
        off += n;
        if (rc == 0)
            rc = drain(dec, out, split == SPLIT_WHOLE);
    }
    out->status = wire_decoder_status(dec);
    if (out->status != rc)
        die("status", "the decoder's status is not the error it returned");
    snprintf(out->error, sizeof(out->error), "%s", wire_decoder_error(dec));
    if ((out->status != 0) != (out->error[0] != '\0'))
        die("error text", "present without an error, or missing with one");
    if (out->status != 0 && out->status != SAGA_EPROTO && out->status != SAGA_ETOOBIG)
        die("unexpected error", saga_err_name(out->status));
    wire_decoder_free(&dec);
}

static void same_outcome(const struct outcome *a, const struct outcome *b, const char *how)
{
    if (a->status != b->status || strcmp(a->error, b->error) != 0 || a->messages != b->messages ||
        a->frames.len != b->frames.len ||
        (a->frames.len > 0 && memcmp(a->frames.data, b->frames.data, a->frames.len) != 0)) {
        fprintf(stderr, "whole: %s \"%s\" %zu messages; %s: %s \"%s\" %zu messages\n",
                saga_err_name(a->status), a->error, a->messages, how, saga_err_name(b->status),
                b->error, b->messages);
        die("the split changed the result", how);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t h = fnv1a(data, size);
    /* mostly the default limit; sometimes a small one, to reach the size check */
    size_t max_frame = (h & 7) == 0 ? 1 + (size_t)(h >> 8) % 512 : 0;

    struct outcome whole, random, bytes;
    run_pass(data, size, max_frame, SPLIT_WHOLE, h, &whole);
    run_pass(data, size, max_frame, SPLIT_RANDOM, h, &random);
    same_outcome(&whole, &random, "random split");
    wire_buf_free(&random.frames);
    if (size <= 4096) { /* byte at a time is slow on big inputs, and adds little */
        run_pass(data, size, max_frame, SPLIT_BYTES, h >> 1, &bytes);
        same_outcome(&whole, &bytes, "one byte at a time");
        wire_buf_free(&bytes.frames);
    }
    wire_buf_free(&whole.frames);
    return 0;
}
