/* Duration text <-> milliseconds. May not touch anything but the caller's buffers. */
#include "engine/duration.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "saga/error.h"

static const struct unit {
    const char *suffix;
    uint64_t ms;
} units[] = {
    /* Largest first: duration_format() picks the first that divides exactly. */
    {"h", 3600000},
    {"m", 60000},
    {"s", 1000},
    {"ms", 1},
};

int duration_parse(const char *text, uint64_t *ms)
{
    const char *p = text;
    uint64_t n = 0;
    int too_big = 0;

    if (*p < '0' || *p > '9')
        return SAGA_EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (uint64_t)(*p - '0');
        if (n > DURATION_MAX_MS) { /* keep scanning: a bad unit is the worse error */
            too_big = 1;
            n = DURATION_MAX_MS + 1;
        }
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(p, units[i].suffix) != 0)
            continue;
        if (too_big || n > DURATION_MAX_MS / units[i].ms)
            return SAGA_ETOOBIG;
        *ms = n * units[i].ms;
        return 0;
    }
    return SAGA_EINVAL;
}

const char *duration_format(uint64_t ms, char *buf, size_t size)
{
    size_t i = 0;
    if (size == 0)
        return buf;
    while (ms != 0 && ms % units[i].ms != 0)
        i++;
    if (ms == 0)
        i = sizeof(units) / sizeof(units[0]) - 1; /* "0ms" */
    snprintf(buf, size, "%" PRIu64 "%s", ms / units[i].ms, units[i].suffix);
    return buf;
}
