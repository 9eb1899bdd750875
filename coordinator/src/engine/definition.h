/* Saga definitions: parsing and validating the JSON document into the form the
 * engine runs. Pure: no I/O beyond the caller's text, no clock. */
#ifndef SAGAD_DEFINITION_H
#define SAGAD_DEFINITION_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DEF_MAX_STEPS    256
#define DEF_MAX_NAME_LEN 128

enum def_mode { DEF_MODE_SAGA = 0, DEF_MODE_2PC = 1 };

enum def_kind { DEF_KIND_COMPENSATABLE = 0, DEF_KIND_PIVOT = 1, DEF_KIND_RETRIABLE = 2 };

struct def_retry {
    uint32_t max_attempts;   /* attempts in all, the first included; 0 means unlimited */
    uint32_t backoff_ms;     /* delay before the second attempt, doubled after each */
    uint32_t max_backoff_ms; /* the cap on that delay */
};

struct def_step {
    char *name;
    char *service;
    char *action;
    enum def_kind kind;                /* DEF_KIND_COMPENSATABLE in 2pc mode */
    uint32_t timeout_ms;               /* per attempt, every op */
    struct def_retry retry;            /* forward ops: action, prepare, commit */
    struct def_retry compensate_retry; /* backward ops: compensate, abort */
    uint16_t n_after;                  /* dependencies: indices into steps, ascending */
    uint16_t *after;
    uint16_t n_dependents; /* derived: the steps that list this one in `after` */
    uint16_t *dependents;
    uint16_t stage; /* derived: 0 for roots, else 1 + the largest stage of `after` */
};

struct definition {
    char *name;
    uint32_t version;
    enum def_mode mode;
    uint32_t timeout_ms; /* the saga deadline from start; 0 means none */
    uint16_t n_steps;
    struct def_step *steps;
    uint16_t n_stages;
    int pivot; /* index of the pivot step, or -1 */
    /* The canonical JSON body: keys in a fixed order, defaults written out,
     * durations in milliseconds. Equal definitions have equal canonical text. */
    char *canonical;
    size_t canonical_len;
    char hash[65]; /* lower-case hex SHA-256 of `canonical`, NUL-terminated */
};

/* One validation error, at a place in the source document. */
struct def_diag {
    int line;   /* 1-based; 0 when the error has no place */
    int column; /* 1-based; 0 when the error has no place */
    char *message;
};

struct def_diags {
    struct def_diag *items;
    size_t n;
    size_t cap;
};

/* Parses and validates `len` bytes of `text`. On success returns 0 and stores a
 * new definition in *out, which the caller frees with definition_free(). On
 * failure returns SAGA_EDEFINITION (or SAGA_ENOMEM), leaves *out NULL and appends
 * every error found to `diags`, which the caller empties with def_diags_clear(). */
int definition_parse(const char *text, size_t len, struct definition **out, struct def_diags *diags)
    __attribute__((warn_unused_result));

/* Frees `*def` and sets `*def` to NULL; NULL and *def == NULL are no-ops. */
void definition_free(struct definition **def);

/* Index of the step named `name`, or -1. */
int definition_step_index(const struct definition *def, const char *name);

/* Prints each error as "FILE:LINE:COLUMN: message\n" (or "FILE: message"). */
void def_diags_print(const struct def_diags *diags, const char *file, FILE *out);

/* Frees the messages and empties the list; the list may be reused. */
void def_diags_clear(struct def_diags *diags);

#endif
