/* Saga definitions: the JSON document -> a validated struct definition with its
 * derived fields, canonical text and hash. Pure: no I/O, no clock. */
#include "engine/definition.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "engine/def_internal.h"
#include "engine/def_pos.h"
#include "engine/duration.h"
#include "engine/sha256.h"
#include "saga/error.h"

/* Defaults and limits. docs/definitions.md lists them for users: keep both in step. */
#define STEP_TIMEOUT_DEFAULT_MS 10000u
#define STEP_TIMEOUT_MAX_MS     (24u * 3600 * 1000)
#define SAGA_TIMEOUT_MAX_MS     (30u * 24 * 3600 * 1000)
#define BACKOFF_MAX_MS          (3600u * 1000)
#define ATTEMPTS_MAX            10000
#define VERSION_MAX             INT32_MAX
#define ERRORS_MAX              100

static const struct def_retry retry_default = {3, 100, 10000};
static const struct def_retry retriable_retry_default = {0, 100, 10000};
static const struct def_retry compensate_retry_default = {10, 100, 10000};

static const char *const root_keys[] = {"name", "version", "mode", "timeout", "steps"};
static const char *const step_keys[] = {"name",  "service", "action", "kind",
                                        "after", "timeout", "retry",  "compensate_retry"};
static const char *const retry_keys[] = {"max_attempts", "backoff", "max_backoff"};
static const char *const kind_names[] = {"compensatable", "pivot", "retriable"};
static const char *const mode_names[] = {"saga", "2pc"};

#define DURATION_EXAMPLES "such as \"250ms\", \"2s\", \"1m\" or \"1h\""
#define KIND_ORDER        "the order is compensatable steps, then the pivot, then retriable steps"

/* What the validator keeps of each step's source between its passes. */
struct step_src {
    json_t *json;                  /* the step object, or NULL when it is not one */
    const struct def_pos *at;      /* the step's value */
    const struct def_pos *kind_at; /* the "kind" value, or NULL */
    const char *name;              /* the "name" string as written (any content), or NULL */
    bool kind_ok;                  /* the kind is known (given or default) */
    bool after_ok;                 /* every dependency resolved */
};

struct parse {
    struct def_diags *diags;
    size_t errors; /* reported by this parse, including those over ERRORS_MAX */
    int err;       /* SAGA_ENOMEM once an allocation failed */
    struct definition *def;
    struct step_src *src; /* def->n_steps entries */
    const char **names;   /* src[i].name for each step, for suggestions */
};

/* --- reporting ----------------------------------------------------------- */

static __attribute__((format(printf, 4, 0))) void report_v(struct parse *p, int line, int column,
                                                           const char *fmt, va_list ap)
{
    if (++p->errors > ERRORS_MAX)
        return;
    if (def_diag_vadd(p->diags, line, column, fmt, ap) != 0)
        p->err = SAGA_ENOMEM;
}

static __attribute__((format(printf, 4, 5))) void report(struct parse *p, int line, int column,
                                                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report_v(p, line, column, fmt, ap);
    va_end(ap);
}

/* Reports at the start of the value `at` (no place if NULL). */
static __attribute__((format(printf, 3, 4))) void
report_at(struct parse *p, const struct def_pos *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report_v(p, at != NULL ? at->line : 0, at != NULL ? at->column : 0, fmt, ap);
    va_end(ap);
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

/* `s` quoted for a message: escaped, and cut short when long. Returns `buf`. */
static const char *quote(char *buf, size_t size, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    buf[o++] = '"';
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (o + 11 > size) { /* room for the longest escape, "...\"" and the NUL */
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(buf + o, "\\u00", 4);
            buf[o + 4] = hex[c >> 4];
            buf[o + 5] = hex[c & 0xf];
            o += 6;
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

#define QUOTE_SIZE 80

/* Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
static size_t distance(const char *a, const char *b)
{
    enum { MAX = 64 };
    size_t la = strlen(a), lb = strlen(b);
    uint8_t d[MAX + 1][MAX + 1]; /* distances never exceed MAX */
    if (la > MAX || lb > MAX)
        return SIZE_MAX;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (uint8_t)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (uint8_t)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = (uint8_t)best;
        }
    }
    return d[la][lb];
}

/* Index of the candidate closest to `word`, if close enough to be a likely typo
 * (at most half the candidate's length away), else -1. NULL candidates are skipped. */
static int closest(const char *word, const char *const *candidates, size_t n)
{
    int best = -1;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        if (candidates[i] == NULL)
            continue;
        size_t d = distance(word, candidates[i]);
        size_t len = strlen(candidates[i]);
        if (d > 0 && d < best_d && d < len && 2 * d <= len + 1) {
            best = (int)i;
            best_d = d;
        }
    }
    return best;
}

/* --- fields -------------------------------------------------------------- */

/* Reports known keys given twice in `json` (at `obj`). jansson keeps the last. */
static void check_repeats(struct parse *p, json_t *json, const struct def_pos *obj,
                          const char *const *known, size_t n_known)
{
    if (json_object_size(json) == obj->n)
        return; /* the usual case: no key repeats */
    for (size_t k = 0; k < n_known; k++) {
        const struct def_pos_member *first = NULL;
        for (size_t i = 0; i < obj->n; i++) {
            const struct def_pos_member *m = &obj->items[i];
            if (strcmp(m->key, known[k]) != 0)
                continue;
            if (first == NULL)
                first = m;
            else
                report(p, m->key_line, m->key_column,
                       "duplicate key \"%s\" (first at line %d, column %d)", known[k],
                       first->key_line, first->key_column);
        }
    }
}

/* Reports the keys of `json` (at `obj`) that are not `known`, or are given twice.
 * Returns the set (bit i for known[i]) of keys offered as suggestions, so a
 * "missing key" error can be left out when the key is there, only misspelt. */
static unsigned check_keys(struct parse *p, json_t *json, const struct def_pos *obj,
                           const char *const *known, size_t n_known)
{
    unsigned suggested = 0;
    char q[QUOTE_SIZE];
    if (obj == NULL)
        return 0;
    check_repeats(p, json, obj, known, n_known);
    for (size_t i = 0; i < obj->n && p->errors <= ERRORS_MAX; i++) {
        const struct def_pos_member *m = &obj->items[i];
        size_t k;
        for (k = 0; k < n_known && strcmp(m->key, known[k]) != 0; k++)
            ;
        if (k < n_known)
            continue;
        int near = closest(m->key, known, n_known);
        if (near >= 0) {
            suggested |= 1u << near;
            report(p, m->key_line, m->key_column, "unknown key %s; did you mean \"%s\"?",
                   quote(q, sizeof(q), m->key), known[near]);
            continue;
        }
        char list[256];
        size_t o = 0;
        for (k = 0; k < n_known; k++)
            o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", k > 0 ? ", " : "", known[k]);
        report(p, m->key_line, m->key_column, "unknown key %s (expected one of: %s)",
               quote(q, sizeof(q), m->key), list);
    }
    return suggested;
}

static unsigned key_bit(const char *const *known, size_t n_known, const char *key)
{
    for (size_t k = 0; k < n_known; k++) {
        if (strcmp(known[k], key) == 0)
            return 1u << k;
    }
    return 0;
}

static bool ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/* A required name-like string: the saga's and steps' names, services, actions.
 * Returns the string (borrowed from `obj`) or NULL after reporting. */
static const char *get_ident(struct parse *p, json_t *obj, const struct def_pos *obj_at,
                             const char *key, bool misspelt)
{
    json_t *v = json_object_get(obj, key);
    const struct def_pos *at = def_pos_get(obj_at, key);
    char q[QUOTE_SIZE];

    if (v == NULL) {
        if (!misspelt) /* else already reported as an unknown key, with a suggestion */
            report_at(p, obj_at, "missing required key \"%s\"", key);
        return NULL;
    }
    if (!json_is_string(v)) {
        report_at(p, at, "\"%s\" must be a string, got %s", key, type_name(v));
        return NULL;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0) {
        report_at(p, at, "\"%s\" must not be empty", key);
        return NULL;
    }
    if (len > DEF_MAX_NAME_LEN) {
        report_at(p, at, "\"%s\" is %zu bytes long; at most %d are allowed", key, len,
                  DEF_MAX_NAME_LEN);
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        if (!ident_char(s[i])) {
            report_at(p, at, "\"%s\" may hold only ASCII letters, digits, '_', '.' and '-', got %s",
                      key, quote(q, sizeof(q), s));
            return NULL;
        }
    }
    return s;
}

/* An optional duration at most `max_ms`. Returns 1 and stores it when present
 * and valid, 0 when absent, -1 after reporting. */
static int get_duration(struct parse *p, json_t *obj, const struct def_pos *obj_at, const char *key,
                        uint32_t max_ms, uint32_t *ms)
{
    json_t *v = json_object_get(obj, key);
    const struct def_pos *at = def_pos_get(obj_at, key);
    char q[QUOTE_SIZE], limit[32];
    uint64_t value;

    if (v == NULL)
        return 0;
    if (!json_is_string(v)) {
        report_at(p, at, "\"%s\" must be a duration string " DURATION_EXAMPLES ", got %s", key,
                  type_name(v));
        return -1;
    }
    const char *s = json_string_value(v);
    int err = duration_parse(s, &value);
    if (err == SAGA_EINVAL || strlen(s) != json_string_length(v)) {
        report_at(p, at, "\"%s\" must be a duration " DURATION_EXAMPLES ", got %s", key,
                  quote(q, sizeof(q), s));
        return -1;
    }
    if (err != 0 || value > max_ms) {
        report_at(p, at, "\"%s\" must be at most %s, got %s", key,
                  duration_format(max_ms, limit, sizeof(limit)), quote(q, sizeof(q), s));
        return -1;
    }
    if (value == 0) {
        report_at(p, at, "\"%s\" must be positive, got %s", key, quote(q, sizeof(q), s));
        return -1;
    }
    *ms = (uint32_t)value;
    return 1;
}

/* One of `names`, as an enum value. Returns 1 and stores the index when present
 * and valid, 0 when absent, -1 after reporting. */
static int get_enum(struct parse *p, json_t *obj, const struct def_pos *obj_at, const char *key,
                    const char *const *names, size_t n, const char *expected, int *out)
{
    json_t *v = json_object_get(obj, key);
    const struct def_pos *at = def_pos_get(obj_at, key);
    char q[QUOTE_SIZE];

    if (v == NULL)
        return 0;
    if (!json_is_string(v)) {
        report_at(p, at, "\"%s\" must be %s, got %s", key, expected, type_name(v));
        return -1;
    }
    const char *s = json_string_value(v);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (int)i;
            return 1;
        }
    }
    int near = closest(s, names, n);
    if (near >= 0)
        report_at(p, at, "\"%s\" must be %s, got %s; did you mean \"%s\"?", key, expected,
                  quote(q, sizeof(q), s), names[near]);
    else
        report_at(p, at, "\"%s\" must be %s, got %s", key, expected, quote(q, sizeof(q), s));
    return -1;
}

/* A retry policy object under `key`, over the defaults already in *r. */
static void get_retry(struct parse *p, json_t *obj, const struct def_pos *obj_at, const char *key,
                      bool unlimited_only, struct def_retry *r)
{
    json_t *v = json_object_get(obj, key);
    const struct def_pos *at = def_pos_get(obj_at, key);
    char a[32], b[32];

    if (v == NULL)
        return;
    if (!json_is_object(v)) {
        report_at(p, at,
                  "\"%s\" must be an object with \"max_attempts\", \"backoff\" and "
                  "\"max_backoff\", got %s",
                  key, type_name(v));
        return;
    }
    check_keys(p, v, at, retry_keys, ARRAY_SIZE(retry_keys));

    json_t *attempts = json_object_get(v, "max_attempts");
    const struct def_pos *attempts_at = def_pos_get(at, "max_attempts");
    if (attempts != NULL && !json_is_integer(attempts)) {
        report_at(p, attempts_at,
                  "\"max_attempts\" must be a whole number from 0 (unlimited) to %d, got %s",
                  ATTEMPTS_MAX, type_name(attempts));
    } else if (attempts != NULL) {
        json_int_t n = json_integer_value(attempts);
        if (n < 0 || n > ATTEMPTS_MAX)
            report_at(p, attempts_at,
                      "\"max_attempts\" must be a whole number from 0 (unlimited) to %d, "
                      "got %" JSON_INTEGER_FORMAT,
                      ATTEMPTS_MAX, n);
        else if (unlimited_only && n != 0)
            report_at(p, attempts_at,
                      "\"max_attempts\" of a retriable step must be 0 (unlimited): it is "
                      "retried until it succeeds");
        else
            r->max_attempts = (uint32_t)n;
    }

    int has_backoff = get_duration(p, v, at, "backoff", BACKOFF_MAX_MS, &r->backoff_ms);
    int has_max = get_duration(p, v, at, "max_backoff", BACKOFF_MAX_MS, &r->max_backoff_ms);
    if (has_backoff < 0 || has_max < 0 || r->backoff_ms <= r->max_backoff_ms)
        return;
    duration_format(r->backoff_ms, a, sizeof(a));
    duration_format(r->max_backoff_ms, b, sizeof(b));
    if (has_backoff)
        report_at(p, def_pos_get(at, "backoff"),
                  "\"backoff\" (%s) must not exceed \"max_backoff\" (%s%s)", a, b,
                  has_max ? "" : " by default");
    else
        report_at(p, def_pos_get(at, "max_backoff"),
                  "\"max_backoff\" (%s) must not be less than \"backoff\" (%s by default)", b, a);
}

/* --- steps --------------------------------------------------------------- */

/* Copies a validated string into the definition; NULL (invalid) is skipped. */
static void dup_into(struct parse *p, char **dst, const char *s)
{
    if (s == NULL)
        return;
    *dst = strdup(s);
    if (*dst == NULL)
        p->err = SAGA_ENOMEM;
}

/* A step for messages: its name quoted, or its number when it has none. */
static const char *step_label(const struct parse *p, uint16_t i, char *buf, size_t size)
{
    if (p->src[i].name != NULL)
        return quote(buf, size, p->src[i].name);
    snprintf(buf, size, "number %u", (unsigned)i + 1);
    return buf;
}

static void parse_step(struct parse *p, uint16_t i, json_t *json, const struct def_pos *at)
{
    struct definition *def = p->def;
    struct def_step *step = &def->steps[i];
    struct step_src *src = &p->src[i];
    char q[QUOTE_SIZE];
    int kind = DEF_KIND_COMPENSATABLE;

    src->at = at;
    step->timeout_ms = STEP_TIMEOUT_DEFAULT_MS;
    step->retry = retry_default;
    step->compensate_retry = compensate_retry_default;
    if (!json_is_object(json)) {
        report_at(p, at, "each step must be an object, got %s", type_name(json));
        return;
    }
    src->json = json;

    unsigned misspelt = check_keys(p, json, at, step_keys, ARRAY_SIZE(step_keys));
    const char *name = get_ident(p, json, at, "name",
                                 misspelt & key_bit(step_keys, ARRAY_SIZE(step_keys), "name"));
    json_t *name_json = json_object_get(json, "name");
    if (json_is_string(name_json))
        src->name = json_string_value(name_json);
    if (name != NULL) {
        for (uint16_t j = 0; j < i; j++) {
            if (p->src[j].name != NULL && strcmp(p->src[j].name, name) == 0) {
                const struct def_pos *first = def_pos_get(p->src[j].at, "name");
                report_at(p, def_pos_get(at, "name"),
                          "duplicate step name %s (first used at line %d, column %d)",
                          quote(q, sizeof(q), name), first->line, first->column);
                break;
            }
        }
    }
    dup_into(p, &step->name, name);
    dup_into(p, &step->service,
             get_ident(p, json, at, "service",
                       misspelt & key_bit(step_keys, ARRAY_SIZE(step_keys), "service")));
    dup_into(p, &step->action,
             get_ident(p, json, at, "action",
                       misspelt & key_bit(step_keys, ARRAY_SIZE(step_keys), "action")));

    src->kind_at = def_pos_get(at, "kind");
    src->kind_ok = true;
    if (def->mode == DEF_MODE_2PC && src->kind_at != NULL) {
        report_at(p, src->kind_at,
                  "\"kind\" is not allowed in 2pc mode: every step prepares, then commits or "
                  "aborts");
    } else if (get_enum(p, json, at, "kind", kind_names, ARRAY_SIZE(kind_names),
                        "\"compensatable\", \"pivot\" or \"retriable\"", &kind) < 0) {
        src->kind_ok = false;
    }
    step->kind = (enum def_kind)kind;
    if (step->kind == DEF_KIND_PIVOT) {
        if (def->pivot < 0)
            def->pivot = i;
        else
            report_at(p, src->kind_at, "only one step may be the pivot, and step %s already is",
                      step_label(p, (uint16_t)def->pivot, q, sizeof(q)));
    }

    (void)get_duration(p, json, at, "timeout", STEP_TIMEOUT_MAX_MS, &step->timeout_ms);

    if (step->kind == DEF_KIND_RETRIABLE)
        step->retry = retriable_retry_default;
    get_retry(p, json, at, "retry", step->kind == DEF_KIND_RETRIABLE, &step->retry);

    if (step->kind != DEF_KIND_COMPENSATABLE && json_object_get(json, "compensate_retry") != NULL)
        report_at(p, def_pos_get(at, "compensate_retry"),
                  "\"compensate_retry\" is not allowed on a %s step: it is never compensated",
                  kind_names[step->kind]);
    else
        get_retry(p, json, at, "compensate_retry", false, &step->compensate_retry);
}

static int step_named(const struct parse *p, const char *name)
{
    for (uint16_t j = 0; j < p->def->n_steps; j++) {
        if (p->src[j].name != NULL && strcmp(p->src[j].name, name) == 0)
            return j;
    }
    return -1;
}

/* Fills steps[i].after from "after", or from the step before when absent. */
static void resolve_after(struct parse *p, uint16_t i)
{
    struct def_step *step = &p->def->steps[i];
    struct step_src *src = &p->src[i];
    const struct def_pos *at = def_pos_get(src->at, "after");
    json_t *after = src->json != NULL ? json_object_get(src->json, "after") : NULL;
    bool seen[DEF_MAX_STEPS] = {false};
    char q[QUOTE_SIZE];

    src->after_ok = src->json != NULL;
    if (src->json == NULL)
        return; /* not a step: no dependencies to follow */
    if (after == NULL) {
        if (i > 0)
            seen[i - 1] = true;
    } else if (!json_is_array(after)) {
        report_at(p, at, "\"after\" must be an array of step names, got %s", type_name(after));
        src->after_ok = false;
    } else {
        for (size_t k = 0; k < json_array_size(after) && p->errors <= ERRORS_MAX; k++) {
            json_t *e = json_array_get(after, k);
            const struct def_pos *e_at = def_pos_at(at, k);
            if (!json_is_string(e)) {
                report_at(p, e_at, "\"after\" must list step names, got %s", type_name(e));
                src->after_ok = false;
                continue;
            }
            const char *name = json_string_value(e);
            int j = step_named(p, name);
            int near = j < 0 ? closest(name, p->names, p->def->n_steps) : -1;
            if (j < 0 && near >= 0) {
                report_at(p, e_at, "unknown step %s in \"after\"; did you mean \"%s\"?",
                          quote(q, sizeof(q), name), p->names[near]);
            } else if (j < 0) {
                report_at(p, e_at, "unknown step %s in \"after\"", quote(q, sizeof(q), name));
            } else if (j == i) {
                report_at(p, e_at, "step %s cannot come after itself", quote(q, sizeof(q), name));
            } else if (seen[j]) {
                report_at(p, e_at, "\"after\" lists %s twice", quote(q, sizeof(q), name));
                continue; /* harmless to the graph */
            } else {
                seen[j] = true;
                continue;
            }
            src->after_ok = false;
        }
    }

    for (uint16_t j = 0; j < p->def->n_steps; j++)
        step->n_after += seen[j];
    if (step->n_after == 0)
        return;
    step->after = malloc(step->n_after * sizeof(*step->after));
    if (step->after == NULL) {
        step->n_after = 0;
        p->err = SAGA_ENOMEM;
        return;
    }
    uint16_t k = 0;
    for (uint16_t j = 0; j < p->def->n_steps; j++) {
        if (seen[j])
            step->after[k++] = j;
    }
}

/* --- the graph ----------------------------------------------------------- */

struct walk {
    struct parse *p;
    uint8_t *color; /* 0 unvisited, 1 on the stack, 2 done */
    uint16_t *stack;
    size_t depth;
    bool cycle;
};

/* The place of the entry of step `u`'s "after" that names step `v`, or of the
 * step itself when its "after" is implicit. */
static const struct def_pos *edge_at(const struct parse *p, uint16_t u, uint16_t v)
{
    json_t *after = json_object_get(p->src[u].json, "after");
    const struct def_pos *at = def_pos_get(p->src[u].at, "after");
    for (size_t k = 0; k < json_array_size(after); k++) {
        json_t *e = json_array_get(after, k);
        if (json_is_string(e) && strcmp(json_string_value(e), p->src[v].name) == 0)
            return def_pos_at(at, k);
    }
    return p->src[u].at;
}

/* Names the cycle closed by the edge u -> stack[from] ("u waits for it"). */
static void report_cycle(struct walk *w, size_t from, uint16_t u)
{
    struct parse *p = w->p;
    char q[QUOTE_SIZE];
    const char *implicit = NULL;
    /* Each link is at most ", which waits for " and a quoted name. */
    size_t size = (w->depth - from + 2) * (QUOTE_SIZE + 24) + 2 * QUOTE_SIZE + 128, len = 0;
    char *text = malloc(size);

    if (text == NULL) {
        p->err = SAGA_ENOMEM;
        return;
    }
    len += (size_t)snprintf(text + len, size - len, "\"after\" makes a cycle: %s",
                            step_label(p, u, q, sizeof(q)));
    for (size_t e = 0; e < w->depth - from; e++) {
        uint16_t waiter = e == 0 ? u : w->stack[from + e - 1];
        uint16_t target = w->stack[from + e];
        if (json_object_get(p->src[waiter].json, "after") == NULL && implicit == NULL)
            implicit = p->src[waiter].name;
        len += (size_t)snprintf(text + len, size - len, "%s waits for %s", e == 0 ? "" : ", which",
                                step_label(p, target, q, sizeof(q)));
        if (len >= size) /* cannot happen with the size above; never write past it */
            len = size - 1;
    }
    if (implicit != NULL)
        snprintf(text + len, size - len,
                 " (%s has no \"after\", so it waits for the step listed before it)",
                 quote(q, sizeof(q), implicit));
    report_at(p, edge_at(p, u, w->stack[from]), "%s", text);
    free(text);
}

static void walk_from(struct walk *w, uint16_t u)
{
    const struct def_step *step = &w->p->def->steps[u];
    w->color[u] = 1;
    w->stack[w->depth++] = u;
    for (uint16_t k = 0; k < step->n_after; k++) {
        uint16_t v = step->after[k];
        if (w->color[v] == 0) {
            walk_from(w, v);
        } else if (w->color[v] == 1) {
            size_t from = 0;
            while (w->stack[from] != v)
                from++;
            w->cycle = true;
            report_cycle(w, from, u);
        }
    }
    w->depth--;
    w->color[u] = 2;
}

/* Reports every cycle a depth-first walk meets. Returns true if there is none. */
static bool check_acyclic(struct parse *p)
{
    uint16_t n = p->def->n_steps;
    struct walk w = {.p = p, .color = calloc(n, 1), .stack = calloc(n, sizeof(uint16_t))};
    if (w.color == NULL || w.stack == NULL) {
        p->err = SAGA_ENOMEM;
        w.cycle = true;
        goto done;
    }
    for (uint16_t i = 0; i < n; i++) {
        if (w.color[i] == 0)
            walk_from(&w, i);
    }
done:
    free(w.color);
    free(w.stack);
    return !w.cycle;
}

/* Bit sets of steps, one word per 64 steps. */
#define SET_WORDS ((DEF_MAX_STEPS + 63) / 64)
struct step_set {
    uint64_t w[SET_WORDS];
};

static bool set_has(const struct step_set *s, uint16_t i)
{
    return (s->w[i / 64] >> (i % 64)) & 1;
}

/* anc[i]: every step that step i waits for, directly or not. Needs no cycle. */
static void fill_ancestors(const struct definition *def, struct step_set *anc, uint8_t *done,
                           uint16_t i)
{
    if (done[i])
        return;
    for (uint16_t k = 0; k < def->steps[i].n_after; k++) {
        uint16_t a = def->steps[i].after[k];
        fill_ancestors(def, anc, done, a);
        for (size_t x = 0; x < SET_WORDS; x++)
            anc[i].w[x] |= anc[a].w[x];
        anc[i].w[a / 64] |= (uint64_t)1 << (a % 64);
    }
    done[i] = 1;
}

/* The kind order, for a graph: whenever step X's kind comes before step Y's in
 * compensatable < pivot < retriable, Y must wait for X, directly or through
 * other steps. On a list with implicit "after" this is compensatable* pivot?
 * retriable*; in a graph it also rules out running side by side. Reports at
 * most one error per step. */
static void check_kind_order(struct parse *p)
{
    const struct definition *def = p->def;
    uint16_t n = def->n_steps;
    struct step_set *anc = calloc(n, sizeof(*anc));
    uint8_t *done = calloc(n, 1);
    char q1[QUOTE_SIZE], q2[QUOTE_SIZE];

    if (anc == NULL || done == NULL) {
        p->err = SAGA_ENOMEM;
        goto done;
    }
    for (uint16_t i = 0; i < n; i++)
        fill_ancestors(def, anc, done, i);

    for (uint16_t s = 0; s < n; s++) {
        const struct def_step *x = &def->steps[s];
        const struct def_pos *at = p->src[s].kind_at != NULL ? p->src[s].kind_at : p->src[s].at;
        if (!p->src[s].kind_ok)
            continue;
        /* s runs after a step of a later kind? */
        for (uint16_t t = 0; t < n; t++) {
            const struct def_step *y = &def->steps[t];
            if (p->src[t].kind_ok && y->kind > x->kind && set_has(&anc[s], t)) {
                report_at(p, at, "%s step %s cannot run after %s step %s: " KIND_ORDER,
                          kind_names[x->kind], step_label(p, s, q1, sizeof(q1)),
                          kind_names[y->kind], step_label(p, t, q2, sizeof(q2)));
                goto next;
            }
        }
        /* s runs side by side with a step of an earlier kind? */
        for (uint16_t t = 0; t < n; t++) {
            const struct def_step *y = &def->steps[t];
            if (p->src[t].kind_ok && y->kind < x->kind && !set_has(&anc[s], t) &&
                !set_has(&anc[t], s)) {
                report_at(p, at,
                          "%s step %s must wait for %s step %s (list it in \"after\", directly "
                          "or through other steps): " KIND_ORDER,
                          kind_names[x->kind], step_label(p, s, q1, sizeof(q1)),
                          kind_names[y->kind], step_label(p, t, q2, sizeof(q2)));
                goto next;
            }
        }
    next:;
    }
done:
    free(anc);
    free(done);
}

/* Dependents and stages, on a valid graph. */
static MUST_CHECK int derive(struct definition *def)
{
    uint16_t n = def->n_steps;
    uint16_t *count = calloc(n, sizeof(*count));
    uint8_t *staged = calloc(n, 1);
    int err = 0;

    if (count == NULL || staged == NULL) {
        err = SAGA_ENOMEM;
        goto done;
    }
    for (uint16_t i = 0; i < n; i++) {
        for (uint16_t k = 0; k < def->steps[i].n_after; k++)
            count[def->steps[i].after[k]]++;
    }
    for (uint16_t i = 0; i < n; i++) {
        if (count[i] == 0)
            continue;
        def->steps[i].dependents = malloc(count[i] * sizeof(uint16_t));
        if (def->steps[i].dependents == NULL) {
            err = SAGA_ENOMEM;
            goto done;
        }
    }
    /* Visiting dependents in index order keeps each list ascending. */
    for (uint16_t i = 0; i < n; i++) {
        for (uint16_t k = 0; k < def->steps[i].n_after; k++) {
            struct def_step *a = &def->steps[def->steps[i].after[k]];
            a->dependents[a->n_dependents++] = i;
        }
    }

    /* Stages: repeat until settled; each pass fixes at least one more step
     * since the graph has no cycle, so at most n passes. */
    uint16_t left = n;
    while (left > 0) {
        for (uint16_t i = 0; i < n; i++) {
            struct def_step *s = &def->steps[i];
            uint16_t stage = 0;
            bool ready = !staged[i];
            for (uint16_t k = 0; ready && k < s->n_after; k++) {
                ready = staged[s->after[k]];
                if (ready && def->steps[s->after[k]].stage + 1 > stage)
                    stage = (uint16_t)(def->steps[s->after[k]].stage + 1);
            }
            if (!ready)
                continue;
            s->stage = stage;
            staged[i] = 1;
            left--;
            if (stage + 1 > def->n_stages)
                def->n_stages = (uint16_t)(stage + 1);
        }
    }
done:
    free(count);
    free(staged);
    return err;
}

/* --- the document -------------------------------------------------------- */

static void parse_root(struct parse *p, json_t *root, const struct def_pos *at)
{
    struct definition *def = p->def;
    int mode = DEF_MODE_SAGA;

    if (!json_is_object(root)) {
        report_at(p, at, "a definition must be a JSON object, got %s", type_name(root));
        return;
    }
    unsigned misspelt = check_keys(p, root, at, root_keys, ARRAY_SIZE(root_keys));
    dup_into(p, &def->name,
             get_ident(p, root, at, "name",
                       misspelt & key_bit(root_keys, ARRAY_SIZE(root_keys), "name")));

    json_t *version = json_object_get(root, "version");
    const struct def_pos *version_at = def_pos_get(at, "version");
    if (version == NULL) {
        if (!(misspelt & key_bit(root_keys, ARRAY_SIZE(root_keys), "version")))
            report_at(p, at, "missing required key \"version\"");
    } else if (!json_is_integer(version)) {
        report_at(p, version_at, "\"version\" must be a positive integer, got %s",
                  type_name(version));
    } else if (json_integer_value(version) < 1 || json_integer_value(version) > VERSION_MAX) {
        report_at(p, version_at,
                  "\"version\" must be a positive integer of at most %d, got %" JSON_INTEGER_FORMAT,
                  VERSION_MAX, json_integer_value(version));
    } else {
        def->version = (uint32_t)json_integer_value(version);
    }

    (void)get_enum(p, root, at, "mode", mode_names, ARRAY_SIZE(mode_names), "\"saga\" or \"2pc\"",
                   &mode);
    def->mode = (enum def_mode)mode;
    (void)get_duration(p, root, at, "timeout", SAGA_TIMEOUT_MAX_MS, &def->timeout_ms);

    json_t *steps = json_object_get(root, "steps");
    const struct def_pos *steps_at = def_pos_get(at, "steps");
    if (steps == NULL) {
        if (!(misspelt & key_bit(root_keys, ARRAY_SIZE(root_keys), "steps")))
            report_at(p, at, "missing required key \"steps\"");
        return;
    }
    if (!json_is_array(steps)) {
        report_at(p, steps_at, "\"steps\" must be an array of steps, got %s", type_name(steps));
        return;
    }
    size_t n = json_array_size(steps);
    if (n == 0) {
        report_at(p, steps_at, "\"steps\" must hold at least one step");
        return;
    }
    bool too_many = n > DEF_MAX_STEPS;
    if (too_many) {
        /* Only the first DEF_MAX_STEPS are checked, and not as a graph. */
        report_at(p, steps_at, "\"steps\" holds %zu steps; at most %d are allowed", n,
                  DEF_MAX_STEPS);
        n = DEF_MAX_STEPS;
    }
    def->steps = calloc(n, sizeof(*def->steps));
    p->src = calloc(n, sizeof(*p->src));
    if (def->steps == NULL || p->src == NULL) {
        p->err = SAGA_ENOMEM;
        return;
    }
    def->n_steps = (uint16_t)n;
    for (uint16_t i = 0; i < n && p->err == 0; i++)
        parse_step(p, i, json_array_get(steps, i), def_pos_at(steps_at, i));
    if (too_many || p->err != 0)
        return;

    p->names = calloc(n, sizeof(*p->names));
    if (p->names == NULL) {
        p->err = SAGA_ENOMEM;
        return;
    }
    for (uint16_t i = 0; i < n; i++)
        p->names[i] = p->src[i].name;
    bool graph_ok = true;
    for (uint16_t i = 0; i < n && p->err == 0; i++) {
        resolve_after(p, i);
        graph_ok = graph_ok && p->src[i].after_ok;
    }
    if (p->err != 0 || !check_acyclic(p) || p->err != 0)
        return;
    if (graph_ok && def->mode == DEF_MODE_SAGA)
        check_kind_order(p);
}

int definition_parse(const char *text, size_t len, struct definition **out, struct def_diags *diags)
{
    struct parse p = {.diags = diags};
    size_t first = diags->n;
    json_error_t jerr;
    json_t *root = NULL;
    struct def_pos *pos = NULL;
    struct definition *def = NULL;
    int err;

    *out = NULL;
    root = json_loadb(text != NULL ? text : "", text != NULL ? len : 0, JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        int line = jerr.line > 0 ? jerr.line : 0;
        int column = line > 0 ? (jerr.column > 0 ? jerr.column : 1) : 0;
        report(&p, line, column, "invalid JSON: %s", jerr.text);
        goto done;
    }
    err = def_pos_scan(text, len, &pos);
    if (err == SAGA_ENOMEM) {
        p.err = err;
        goto done;
    }
    if (err != 0) {
        report(&p, 0, 0, "cannot locate the values of this document");
        goto done;
    }

    def = calloc(1, sizeof(*def));
    if (def == NULL) {
        p.err = SAGA_ENOMEM;
        goto done;
    }
    def->pivot = -1;
    p.def = def;
    parse_root(&p, root, pos);
    if (p.err != 0 || p.errors > 0)
        goto done;

    if ((err = derive(def)) != 0 ||
        (err = def_canon_write(def, &def->canonical, &def->canonical_len)) != 0) {
        p.err = err;
        goto done;
    }
    sha256_hex(def->canonical, def->canonical_len, def->hash);
    *out = def;
    def = NULL;

done:
    free(p.names);
    free(p.src);
    definition_free(&def);
    def_pos_free(&pos);
    json_decref(root);
    if (p.err != 0)
        return p.err;
    if (*out != NULL)
        return 0;
    def_diags_sort(diags, first);
    if (p.errors > ERRORS_MAX &&
        def_diag_add(diags, 0, 0, "too many errors: only the first %d are shown", ERRORS_MAX) != 0)
        return SAGA_ENOMEM;
    return SAGA_EDEFINITION;
}

void definition_free(struct definition **def)
{
    if (def == NULL || *def == NULL)
        return;
    struct definition *d = *def;
    for (uint16_t i = 0; i < d->n_steps; i++) {
        free(d->steps[i].name);
        free(d->steps[i].service);
        free(d->steps[i].action);
        free(d->steps[i].after);
        free(d->steps[i].dependents);
    }
    free(d->steps);
    free(d->name);
    free(d->canonical);
    free(d);
    *def = NULL;
}

int definition_step_index(const struct definition *def, const char *name)
{
    if (def == NULL || name == NULL)
        return -1;
    for (uint16_t i = 0; i < def->n_steps; i++) {
        if (strcmp(def->steps[i].name, name) == 0)
            return i;
    }
    return -1;
}
