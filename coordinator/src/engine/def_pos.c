/* A position-recording pass over a JSON text that jansson has already parsed.
 * May not touch anything but the text it is given and the tree it builds. */
#include "engine/def_pos.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "saga/error.h"

/* Deeper than jansson's own limit, so only a text jansson refused gets here. */
#define POS_MAX_DEPTH (JSON_PARSER_MAX_DEPTH + 8)

struct scanner {
    const char *p;
    const char *end;
    int line;
    int chars; /* characters consumed on this line; the next one is at chars + 1 */
    int depth;
};

static void advance(struct scanner *s)
{
    unsigned char c = (unsigned char)*s->p++;
    if (c == '\n') {
        s->line++;
        s->chars = 0;
    } else if ((c & 0xc0) != 0x80) {
        s->chars++;
    }
}

static void skip_space(struct scanner *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        advance(s);
}

static void mark(const struct scanner *s, int *line, int *column)
{
    *line = s->line;
    *column = s->chars + 1;
}

/* Skips a string from its opening quote to past its closing one. */
static MUST_CHECK int skip_string(struct scanner *s)
{
    advance(s);
    while (s->p < s->end && *s->p != '"') {
        if (*s->p == '\\') {
            advance(s);
            if (s->p >= s->end)
                return SAGA_EINVAL;
        }
        advance(s);
    }
    if (s->p >= s->end)
        return SAGA_EINVAL;
    advance(s);
    return 0;
}

/* The decoded text of the string literal [start, end), quotes included. */
static MUST_CHECK int decode_key(const char *start, const char *end, char **out)
{
    size_t len = (size_t)(end - start);
    if (memchr(start, '\\', len) == NULL) {
        *out = strndup(start + 1, len - 2);
        return *out != NULL ? 0 : SAGA_ENOMEM;
    }
    /* Escapes: let jansson decode them exactly as it decoded the document. */
    json_error_t error;
    json_t *str = json_loadb(start, len, JSON_DECODE_ANY, &error);
    if (str == NULL || !json_is_string(str)) {
        json_decref(str);
        return SAGA_EINVAL;
    }
    *out = strdup(json_string_value(str));
    json_decref(str);
    return *out != NULL ? 0 : SAGA_ENOMEM;
}

static MUST_CHECK int grow(struct def_pos *pos, size_t *cap)
{
    if (pos->n < *cap)
        return 0;
    size_t next = *cap != 0 ? *cap * 2 : 4;
    struct def_pos_member *items = realloc(pos->items, next * sizeof(*items));
    if (items == NULL)
        return SAGA_ENOMEM;
    pos->items = items;
    *cap = next;
    return 0;
}

static void pos_clear(struct def_pos *pos)
{
    for (size_t i = 0; i < pos->n; i++) {
        free(pos->items[i].key);
        pos_clear(&pos->items[i].value);
    }
    free(pos->items);
    pos->items = NULL;
    pos->n = 0;
}

static MUST_CHECK int scan_value(struct scanner *s, struct def_pos *pos);

/* An object or an array: `close` is '}' or ']'. */
static MUST_CHECK int scan_container(struct scanner *s, struct def_pos *pos, char close)
{
    size_t cap = 0;
    int err;

    if (++s->depth > POS_MAX_DEPTH)
        return SAGA_EINVAL;
    advance(s);
    skip_space(s);
    if (s->p < s->end && *s->p == close) {
        advance(s);
        s->depth--;
        return 0;
    }
    for (;;) {
        if ((err = grow(pos, &cap)) != 0)
            return err;
        struct def_pos_member *m = &pos->items[pos->n];
        memset(m, 0, sizeof(*m));
        pos->n++;
        if (close == '}') {
            if (s->p >= s->end || *s->p != '"')
                return SAGA_EINVAL;
            const char *start = s->p;
            mark(s, &m->key_line, &m->key_column);
            if ((err = skip_string(s)) != 0 || (err = decode_key(start, s->p, &m->key)) != 0)
                return err;
            skip_space(s);
            if (s->p >= s->end || *s->p != ':')
                return SAGA_EINVAL;
            advance(s);
        }
        if ((err = scan_value(s, &m->value)) != 0)
            return err;
        skip_space(s);
        if (s->p >= s->end)
            return SAGA_EINVAL;
        if (*s->p == close) {
            advance(s);
            s->depth--;
            return 0;
        }
        if (*s->p != ',')
            return SAGA_EINVAL;
        advance(s);
        skip_space(s);
    }
}

static int is_scalar_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' || c == '+' || c == '.' ||
           c == 'E';
}

static int scan_value(struct scanner *s, struct def_pos *pos)
{
    skip_space(s);
    if (s->p >= s->end)
        return SAGA_EINVAL;
    mark(s, &pos->line, &pos->column);
    pos->type = *s->p;
    switch (*s->p) {
    case '{':
        return scan_container(s, pos, '}');
    case '[':
        return scan_container(s, pos, ']');
    case '"':
        return skip_string(s);
    default:
        if (!is_scalar_char(*s->p))
            return SAGA_EINVAL;
        while (s->p < s->end && is_scalar_char(*s->p))
            advance(s);
        return 0;
    }
}

int def_pos_scan(const char *text, size_t len, struct def_pos **out)
{
    struct scanner s = {.p = text, .end = text + len, .line = 1};
    struct def_pos *root = calloc(1, sizeof(*root));
    int err;

    *out = NULL;
    if (root == NULL)
        return SAGA_ENOMEM;
    if ((err = scan_value(&s, root)) != 0)
        goto fail;
    skip_space(&s);
    if (s.p != s.end) {
        err = SAGA_EINVAL;
        goto fail;
    }
    *out = root;
    return 0;

fail:
    def_pos_free(&root);
    return err;
}

const struct def_pos_member *def_pos_member(const struct def_pos *obj, const char *key)
{
    if (obj == NULL || obj->type != '{')
        return NULL;
    for (size_t i = obj->n; i > 0; i--) {
        if (strcmp(obj->items[i - 1].key, key) == 0)
            return &obj->items[i - 1];
    }
    return NULL;
}

const struct def_pos *def_pos_get(const struct def_pos *obj, const char *key)
{
    const struct def_pos_member *m = def_pos_member(obj, key);
    return m != NULL ? &m->value : NULL;
}

const struct def_pos *def_pos_at(const struct def_pos *arr, size_t index)
{
    if (arr == NULL || arr->type != '[' || index >= arr->n)
        return NULL;
    return &arr->items[index].value;
}

void def_pos_free(struct def_pos **pos)
{
    if (pos == NULL || *pos == NULL)
        return;
    pos_clear(*pos);
    free(*pos);
    *pos = NULL;
}
