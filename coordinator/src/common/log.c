/* Structured logging to one stream. May not touch anything but that stream and the clock. */
#include "common/log.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "saga/error.h"

static enum log_level min_level = LOG_INFO;
static FILE *log_out;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(enum log_level min, FILE *out)
{
    min_level = min;
    log_out = out;
}

int log_level_parse(const char *text, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return SAGA_EINVAL;
}

int log_enabled(enum log_level level)
{
    return level >= min_level;
}

void log_event(enum log_level level, const char *saga, const char *event, const char *fmt, ...)
{
    if (level < min_level)
        return;
    FILE *out = log_out ? log_out : stderr;

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);

    /* One buffer, one fwrite: lines from one process never interleave. */
    char line[2048];
    int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level]);
    if (saga != NULL && n >= 0 && (size_t)n < sizeof(line))
        n += snprintf(line + n, sizeof(line) - (size_t)n, " saga=%s", saga);
    if (n >= 0 && (size_t)n < sizeof(line))
        n += snprintf(line + n, sizeof(line) - (size_t)n, " event=%s", event);
    if (fmt != NULL && n >= 0 && (size_t)n + 1 < sizeof(line)) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
        va_end(ap);
    }
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, out);
    fflush(out);
}

const char *log_quote(char *buf, size_t size, const char *value)
{
    if (size == 0)
        return buf;
    int plain = value[0] != '\0';
    for (const char *p = value; *p; p++) {
        if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' || (unsigned char)*p < 0x20) {
            plain = 0;
            break;
        }
    }
    size_t o = 0;
    if (plain) {
        for (const char *p = value; *p && o + 1 < size; p++)
            buf[o++] = *p;
        buf[o] = '\0';
        return buf;
    }
    if (o + 1 < size)
        buf[o++] = '"';
    for (const char *p = value; *p && o + 3 < size; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else if (c < 0x20) {
            buf[o++] = '?';
        } else {
            buf[o++] = (char)c;
        }
    }
    if (o + 1 < size)
        buf[o++] = '"';
    buf[o < size ? o : size - 1] = '\0';
    return buf;
}
