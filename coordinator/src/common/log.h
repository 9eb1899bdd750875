/* Structured logging: one line per event, logfmt key=value, saga id first when there is one.
 *
 *   ts=2026-11-21T09:46:13.123Z level=info saga=7f1c... event=step.ok step=reserve attempt=1
 *
 * The level and the stream are set once by log_setup() before the loop starts and
 * never change afterwards; that write-once pair is the only process-wide state. */
#ifndef SAGAD_LOG_H
#define SAGAD_LOG_H

#include <stdio.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Call once at start-up. `out` is borrowed and must outlive every log call. */
void log_setup(enum log_level min, FILE *out);

/* Parses "debug", "info", "warn" or "error"; returns 0 or SAGA_EINVAL. */
int log_level_parse(const char *text, enum log_level *out) __attribute__((warn_unused_result));

int log_enabled(enum log_level level);

/* Writes one line: ts, level, saga (when not NULL), event, then the caller's
 * key=value pairs formatted from `fmt` (may be NULL). Values with spaces must
 * be quoted by the caller with log_quote(). */
void log_event(enum log_level level, const char *saga, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes `value` into `buf` as a logfmt value, quoting and escaping when needed.
 * Returns `buf`; truncates to fit. */
const char *log_quote(char *buf, size_t size, const char *value);

#define log_debug(saga, event, ...)                         \
    do {                                                    \
        if (log_enabled(LOG_DEBUG))                         \
            log_event(LOG_DEBUG, saga, event, __VA_ARGS__); \
    } while (0)
#define log_info(saga, event, ...)  log_event(LOG_INFO, saga, event, __VA_ARGS__)
#define log_warn(saga, event, ...)  log_event(LOG_WARN, saga, event, __VA_ARGS__)
#define log_error(saga, event, ...) log_event(LOG_ERROR, saga, event, __VA_ARGS__)

#endif
