/* sagactl's text output: human times, colours and aligned tables. Touches only
 * the caller's buffers and the stream it is handed; no clock, no network. */
#include "sagactl/fmt.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "saga/error.h"

#define MS_S   UINT64_C(1000)
#define MS_M   (60 * MS_S)
#define MS_H   (60 * MS_M)
#define MS_D   (24 * MS_H)
#define MS_MAX (3650 * MS_D) /* ten years: far past any saga */

const char *fmt_color(enum fmt_color c)
{
    switch (c) {
    case FMT_RED:
        return "\033[31m";
    case FMT_GREEN:
        return "\033[32m";
    case FMT_YELLOW:
        return "\033[33m";
    case FMT_BLUE:
        return "\033[34m";
    case FMT_DIM:
        return "\033[2m";
    case FMT_BOLD:
        return "\033[1m";
    case FMT_NONE:
        break;
    }
    return "";
}

const char *fmt_reset(void)
{
    return "\033[0m";
}

enum fmt_color fmt_status_color(saga_status_t s)
{
    switch (s) {
    case SAGA_STATUS_COMPLETED:
    case SAGA_STATUS_COMMITTED:
        return FMT_GREEN;
    case SAGA_STATUS_COMPENSATING:
    case SAGA_STATUS_COMPENSATED:
    case SAGA_STATUS_ABORTING:
    case SAGA_STATUS_ABORTED:
        return FMT_YELLOW;
    case SAGA_STATUS_STUCK:
        return FMT_RED;
    case SAGA_STATUS_RUNNING:
    case SAGA_STATUS_PREPARING:
    case SAGA_STATUS_COMMITTING:
        return FMT_BLUE;
    case SAGA_STATUS_UNKNOWN:
        break;
    }
    return FMT_NONE;
}

enum fmt_color fmt_step_color(saga_step_status_t s)
{
    switch (s) {
    case SAGA_STEP_SUCCEEDED:
    case SAGA_STEP_COMMITTED:
        return FMT_GREEN;
    case SAGA_STEP_COMPENSATING:
    case SAGA_STEP_COMPENSATED:
    case SAGA_STEP_ABORTED:
        return FMT_YELLOW;
    case SAGA_STEP_FAILED:
    case SAGA_STEP_STUCK:
        return FMT_RED;
    case SAGA_STEP_RUNNING:
    case SAGA_STEP_WAITING:
        return FMT_BLUE;
    case SAGA_STEP_PENDING:
    case SAGA_STEP_SKIPPED:
        return FMT_DIM;
    }
    return FMT_NONE;
}

const char *fmt_status_upper(saga_status_t s)
{
    switch (s) {
    case SAGA_STATUS_RUNNING:
        return "RUNNING";
    case SAGA_STATUS_COMPENSATING:
        return "COMPENSATING";
    case SAGA_STATUS_COMPLETED:
        return "COMPLETED";
    case SAGA_STATUS_COMPENSATED:
        return "COMPENSATED";
    case SAGA_STATUS_STUCK:
        return "STUCK";
    case SAGA_STATUS_PREPARING:
        return "PREPARING";
    case SAGA_STATUS_COMMITTING:
        return "COMMITTING";
    case SAGA_STATUS_ABORTING:
        return "ABORTING";
    case SAGA_STATUS_COMMITTED:
        return "COMMITTED";
    case SAGA_STATUS_ABORTED:
        return "ABORTED";
    case SAGA_STATUS_UNKNOWN:
        break;
    }
    return "UNKNOWN";
}

const char *fmt_elapsed(uint64_t ms, char *buf)
{
    if (ms < MS_S)
        snprintf(buf, FMT_LEN, "%" PRIu64 "ms", ms);
    else if (ms < 10 * MS_S) /* 1.25s: two decimals while they still matter */
        snprintf(buf, FMT_LEN, "%" PRIu64 ".%02" PRIu64 "s", ms / MS_S, ms % MS_S / 10);
    else if (ms < MS_M)
        snprintf(buf, FMT_LEN, "%" PRIu64 "s", ms / MS_S);
    else if (ms < MS_H)
        snprintf(buf, FMT_LEN, "%" PRIu64 "m%02" PRIu64 "s", ms / MS_M, ms % MS_M / MS_S);
    else if (ms < MS_D)
        snprintf(buf, FMT_LEN, "%" PRIu64 "h%02" PRIu64 "m", ms / MS_H, ms % MS_H / MS_M);
    else
        snprintf(buf, FMT_LEN, "%" PRIu64 "d%02" PRIu64 "h", ms / MS_D, ms % MS_D / MS_H);
    return buf;
}

const char *fmt_ago(uint64_t now_ms, uint64_t at_ms, char *buf)
{
    if (at_ms > now_ms + MS_S) {
        snprintf(buf, FMT_LEN, "in the future");
        return buf;
    }
    uint64_t d = now_ms > at_ms ? now_ms - at_ms : 0;
    if (d < MS_S)
        snprintf(buf, FMT_LEN, "just now");
    else if (d < MS_M)
        snprintf(buf, FMT_LEN, "%" PRIu64 "s ago", d / MS_S);
    else if (d < MS_H)
        snprintf(buf, FMT_LEN, "%" PRIu64 "m ago", d / MS_M);
    else if (d < MS_D)
        snprintf(buf, FMT_LEN, "%" PRIu64 "h ago", d / MS_H);
    else
        snprintf(buf, FMT_LEN, "%" PRIu64 "d ago", d / MS_D);
    return buf;
}

const char *fmt_offset(uint64_t start_ms, uint64_t at_ms, char *buf)
{
    char el[FMT_LEN];
    if (at_ms < start_ms) {
        snprintf(buf, FMT_LEN, "-%s", fmt_elapsed(start_ms - at_ms, el));
        return buf;
    }
    uint64_t d = at_ms - start_ms;
    if (d >= MS_S && d < 10 * MS_S) /* three decimals: events a few ms apart stay apart */
        snprintf(buf, FMT_LEN, "+%" PRIu64 ".%03" PRIu64 "s", d / MS_S, d % MS_S);
    else
        snprintf(buf, FMT_LEN, "+%s", fmt_elapsed(d, el));
    return buf;
}

const char *fmt_utc(uint64_t ms, char *buf)
{
    time_t secs = (time_t)(ms / MS_S);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL) {
        snprintf(buf, FMT_LEN, "?");
        return buf;
    }
    char day[32];
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, FMT_LEN, "%s.%03uZ", day, (unsigned)(ms % MS_S));
    return buf;
}

int fmt_parse_duration(const char *text, uint64_t *ms)
{
    static const struct {
        const char *suffix;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", MS_S}, {"m", MS_M}, {"h", MS_H}, {"d", MS_D}};
    const char *p = text;
    uint64_t n = 0;

    if (text == NULL || !isdigit((unsigned char)*p))
        return SAGA_EINVAL;
    for (; isdigit((unsigned char)*p); p++) {
        n = n * 10 + (uint64_t)(*p - '0');
        if (n > MS_MAX)
            return SAGA_EINVAL;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(p, units[i].suffix) != 0)
            continue;
        if (n == 0 || n > MS_MAX / units[i].ms)
            return SAGA_EINVAL;
        *ms = n * units[i].ms;
        return 0;
    }
    return SAGA_EINVAL;
}

int fmt_parse_status(const char *text, saga_status_t *out)
{
    for (int s = SAGA_STATUS_RUNNING; s <= SAGA_STATUS_ABORTED; s++) {
        if (text != NULL && strcasecmp(text, saga_status_name((saga_status_t)s)) == 0) {
            *out = (saga_status_t)s;
            return 0;
        }
    }
    return SAGA_EINVAL;
}

/* ---- tables ---------------------------------------------------------------------------------- */

struct table_row {
    char *cells[TABLE_MAX_COLS];
    enum fmt_color colors[TABLE_MAX_COLS];
};

struct table {
    size_t ncols;
    struct table_row *rows;
    size_t n, cap;
};

struct table *table_new(size_t ncols)
{
    if (ncols == 0 || ncols > TABLE_MAX_COLS)
        return NULL;
    struct table *t = calloc(1, sizeof(*t));
    if (t != NULL)
        t->ncols = ncols;
    return t;
}

void table_free(struct table **t)
{
    if (t == NULL || *t == NULL)
        return;
    for (size_t r = 0; r < (*t)->n; r++) {
        for (size_t c = 0; c < (*t)->ncols; c++)
            free((*t)->rows[r].cells[c]);
    }
    free((*t)->rows);
    free(*t);
    *t = NULL;
}

int table_add(struct table *t, const char *const *cells, const enum fmt_color *colors)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct table_row *rows = realloc(t->rows, cap * sizeof(*rows));
        if (rows == NULL)
            return SAGA_ENOMEM;
        t->rows = rows;
        t->cap = cap;
    }
    struct table_row *row = &t->rows[t->n];
    memset(row, 0, sizeof(*row));
    for (size_t c = 0; c < t->ncols; c++) {
        row->cells[c] = strdup(cells[c] != NULL ? cells[c] : "");
        row->colors[c] = colors != NULL ? colors[c] : FMT_NONE;
        if (row->cells[c] == NULL) {
            for (size_t k = 0; k < c; k++)
                free(row->cells[k]);
            return SAGA_ENOMEM;
        }
    }
    t->n++;
    return 0;
}

size_t table_rows(const struct table *t)
{
    return t->n;
}

/* Characters, not bytes: UTF-8 continuation bytes do not count. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s != '\0'; s++) {
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    }
    return w;
}

void table_print(const struct table *t, FILE *out, unsigned indent, bool color)
{
    size_t width[TABLE_MAX_COLS] = {0};
    for (size_t r = 0; r < t->n; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            size_t w = text_width(t->rows[r].cells[c]);
            if (w > width[c])
                width[c] = w;
        }
    }
    /* A column empty in every row takes no room. */
    size_t last = 0;
    for (size_t c = 0; c < t->ncols; c++) {
        if (width[c] > 0)
            last = c;
    }
    for (size_t r = 0; r < t->n; r++) {
        const struct table_row *row = &t->rows[r];
        size_t row_last = 0; /* no padding after the last cell with text */
        for (size_t c = 0; c <= last; c++) {
            if (row->cells[c][0] != '\0')
                row_last = c;
        }
        fprintf(out, "%*s", (int)indent, "");
        bool first = true;
        for (size_t c = 0; c <= row_last; c++) {
            if (width[c] == 0)
                continue;
            if (!first)
                fputs("  ", out);
            first = false;
            bool paint = color && row->colors[c] != FMT_NONE && row->cells[c][0] != '\0';
            if (paint)
                fputs(fmt_color(row->colors[c]), out);
            fputs(row->cells[c], out);
            if (paint)
                fputs(fmt_reset(), out);
            if (c < row_last)
                fprintf(out, "%*s", (int)(width[c] - text_width(row->cells[c])), "");
        }
        fputc('\n', out);
    }
}
