/* The canonical text of a definition: compact JSON, keys in a fixed order,
 * defaults written out, durations in milliseconds, `after` always explicit.
 * Its SHA-256 is the definition's identity, stored with every version, so this
 * output must never change for a given definition. May not touch anything but
 * the definition it reads and the string it returns. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/def_internal.h"
#include "saga/error.h"

struct buf {
    char *data;
    size_t len;
    size_t cap;
    int err;
};

static void buf_put(struct buf *b, const char *s, size_t n)
{
    if (b->err != 0)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 256;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *data = realloc(b->data, cap);
        if (data == NULL) {
            b->err = SAGA_ENOMEM;
            return;
        }
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

static __attribute__((format(printf, 2, 3))) void buf_fmt(struct buf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        b->err = SAGA_EINVAL; /* only short numbers are formatted here */
        return;
    }
    buf_put(b, tmp, (size_t)n);
}

/* A JSON string. Validated names need no escapes; escape anyway so the output
 * stays JSON whatever the validator lets through. */
static void buf_json_str(struct buf *b, const char *s)
{
    buf_put(b, "\"", 1);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            buf_put(b, esc, 2);
        } else if (c < 0x20) {
            buf_fmt(b, "\\u%04x", c);
        } else {
            buf_put(b, s, 1);
        }
    }
    buf_put(b, "\"", 1);
}

static void buf_ms(struct buf *b, uint32_t ms)
{
    buf_fmt(b, "\"%" PRIu32 "ms\"", ms);
}

static void buf_retry(struct buf *b, const char *key, const struct def_retry *r)
{
    buf_fmt(b, ",\"%s\":{\"max_attempts\":%" PRIu32 ",\"backoff\":", key, r->max_attempts);
    buf_ms(b, r->backoff_ms);
    buf_str(b, ",\"max_backoff\":");
    buf_ms(b, r->max_backoff_ms);
    buf_str(b, "}");
}

static const char *const kind_names[] = {"compensatable", "pivot", "retriable"};

static void buf_step(struct buf *b, const struct definition *def, const struct def_step *s)
{
    buf_str(b, "{\"name\":");
    buf_json_str(b, s->name);
    buf_str(b, ",\"service\":");
    buf_json_str(b, s->service);
    buf_str(b, ",\"action\":");
    buf_json_str(b, s->action);
    if (def->mode == DEF_MODE_SAGA) {
        buf_str(b, ",\"kind\":");
        buf_json_str(b, kind_names[s->kind]);
    }
    buf_str(b, ",\"after\":[");
    for (uint16_t i = 0; i < s->n_after; i++) {
        if (i > 0)
            buf_str(b, ",");
        buf_json_str(b, def->steps[s->after[i]].name);
    }
    buf_str(b, "],\"timeout\":");
    buf_ms(b, s->timeout_ms);
    buf_retry(b, "retry", &s->retry);
    /* Pivot and retriable steps are never compensated: no policy to write. */
    if (def->mode == DEF_MODE_2PC || s->kind == DEF_KIND_COMPENSATABLE)
        buf_retry(b, "compensate_retry", &s->compensate_retry);
    buf_str(b, "}");
}

int def_canon_write(const struct definition *def, char **out, size_t *len)
{
    struct buf b = {0};

    buf_str(&b, "{\"name\":");
    buf_json_str(&b, def->name);
    buf_fmt(&b, ",\"version\":%" PRIu32 ",\"mode\":", def->version);
    buf_str(&b, def->mode == DEF_MODE_2PC ? "\"2pc\"" : "\"saga\"");
    if (def->timeout_ms != 0) {
        buf_str(&b, ",\"timeout\":");
        buf_ms(&b, def->timeout_ms);
    }
    buf_str(&b, ",\"steps\":[");
    for (uint16_t i = 0; i < def->n_steps; i++) {
        if (i > 0)
            buf_str(&b, ",");
        buf_step(&b, def, &def->steps[i]);
    }
    buf_str(&b, "]}");

    if (b.err != 0) {
        free(b.data);
        return b.err;
    }
    *out = b.data;
    *len = b.len;
    return 0;
}
