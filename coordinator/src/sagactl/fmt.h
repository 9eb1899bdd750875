/* sagactl's text output: times and durations for people, colours, aligned
 * tables. Pure: writes only to the caller's buffers and streams. */
#ifndef SAGACTL_FMT_H
#define SAGACTL_FMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "saga/types.h"

/* Enough for every string the fmt_* functions below write. */
#define FMT_LEN 48

/* ANSI colours; fmt_color() returns "" for FMT_NONE. */
enum fmt_color { FMT_NONE, FMT_RED, FMT_GREEN, FMT_YELLOW, FMT_BLUE, FMT_DIM, FMT_BOLD };

const char *fmt_color(enum fmt_color c);
const char *fmt_reset(void);

/* The colour of a saga or step state: green done, yellow undone, red failed or
 * stuck, blue in progress. */
enum fmt_color fmt_status_color(saga_status_t s);
enum fmt_color fmt_step_color(saga_step_status_t s);

/* The upper-case name of a saga state ("COMPLETED"), static. */
const char *fmt_status_upper(saga_status_t s);

/* A length of time, short and exact enough to read: "0ms", "840ms", "1.25s",
 * "42s", "3m05s", "2h07m", "3d04h". Returns buf (FMT_LEN bytes). */
const char *fmt_elapsed(uint64_t ms, char *buf);

/* How long before `now` something happened: "just now", "12s ago", "5m ago",
 * "3h ago", "2d ago"; "in the future" when at > now. Returns buf. */
const char *fmt_ago(uint64_t now_ms, uint64_t at_ms, char *buf);

/* An offset from a start: "+0ms", "+12ms", "+1.204s", "+3m05s". Returns buf. */
const char *fmt_offset(uint64_t start_ms, uint64_t at_ms, char *buf);

/* A wall-clock time in UTC, "2026-11-21T10:41:03.123Z" (ISO 8601). Returns buf. */
const char *fmt_utc(uint64_t ms, char *buf);

/* Parses a length of time for options: a whole number and a unit, ms, s, m,
 * h or d ("90s", "2h", "7d"). Returns 0 or SAGA_EINVAL (bad text, zero, or
 * more than 10 years). */
int fmt_parse_duration(const char *text, uint64_t *ms) __attribute__((warn_unused_result));

/* Parses a saga state name, either case ("stuck", "COMPLETED"). Returns 0 or
 * SAGA_EINVAL. */
int fmt_parse_status(const char *text, saga_status_t *out) __attribute__((warn_unused_result));

/* ---- tables ------------------------------------------------------------------------------------
 * Rows of cells printed in columns two spaces apart, each as wide as its
 * widest cell (counted in characters, not bytes); the last column is not
 * padded. A cell may carry a colour, printed only when asked, without
 * changing the alignment. */

#define TABLE_MAX_COLS 8

struct table;

/* A table of `ncols` columns (1..TABLE_MAX_COLS); NULL on no memory. Free it
 * with table_free(). */
struct table *table_new(size_t ncols);
void table_free(struct table **t);

/* Adds a row; `cells` has ncols strings (NULL prints as ""), copied.
 * `colors` may be NULL (no colour) or hold ncols colours. Returns 0 or
 * SAGA_ENOMEM. */
int table_add(struct table *t, const char *const *cells, const enum fmt_color *colors)
    __attribute__((warn_unused_result));

size_t table_rows(const struct table *t);

/* Prints every row, each prefixed by `indent` spaces. */
void table_print(const struct table *t, FILE *out, unsigned indent, bool color);

#endif
