/* libsaga logging: logfmt lines handed to the application's callback, or to
 * stderr. Formats only; knows nothing of connections or calls. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

void saga__logger_init(struct saga__logger *lg, saga_log_fn fn, void *data, saga_log_level_t min)
{
    lg->fn = fn;
    lg->data = data;
    lg->min = min == SAGA_LOG_DEFAULT ? SAGA_LOG_WARN : min;
}

static const char *level_name(saga_log_level_t level)
{
    switch (level) {
    case SAGA_LOG_DEBUG:
        return "debug";
    case SAGA_LOG_INFO:
        return "info";
    case SAGA_LOG_WARN:
        return "warn";
    case SAGA_LOG_ERROR:
        return "error";
    default:
        return "unknown";
    }
}

void saga__log(const struct saga__logger *lg, saga_log_level_t level, const char *saga,
               const char *event, const char *fmt, ...)
{
    if (lg == NULL || level < lg->min || lg->min >= SAGA_LOG_OFF)
        return;
    char line[1024];
    size_t used = 0;
    int n;
    if (saga != NULL)
        n = snprintf(line, sizeof(line), "saga=%s event=%s", saga, event);
    else
        n = snprintf(line, sizeof(line), "event=%s", event);
    if (n > 0)
        used = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    if (fmt != NULL && used + 2 < sizeof(line)) {
        line[used++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line + used, sizeof(line) - used, fmt, ap);
        va_end(ap);
    }
    if (lg->fn != NULL)
        lg->fn(level, line, lg->data);
    else
        fprintf(stderr, "libsaga level=%s %s\n", level_name(level), line);
}

const char *saga__quote(char *buf, size_t size, const char *value)
{
    if (size == 0)
        return buf;
    if (value == NULL)
        value = "";
    int plain = value[0] != '\0';
    for (const char *s = value; *s != '\0' && plain; s++) {
        if (*s == ' ' || *s == '"' || *s == '=' || *s == '\\' || (unsigned char)*s < 0x20)
            plain = 0;
    }
    if (plain) {
        snprintf(buf, size, "%s", value);
        return buf;
    }
    size_t o = 0;
    buf[o++] = '"';
    for (const char *s = value; *s != '\0' && o + 3 < size; s++) {
        char c = *s;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = c;
        } else if (c == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else if ((unsigned char)c < 0x20) {
            buf[o++] = ' ';
        } else {
            buf[o++] = c;
        }
    }
    if (o + 1 < size)
        buf[o++] = '"';
    buf[o < size ? o : size - 1] = '\0';
    return buf;
}
