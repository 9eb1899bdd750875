/* Durations written as text in definitions: a whole number and a unit,
 * "250ms", "2s", "1m", "1h". Pure: no I/O, no allocation. */
#ifndef SAGAD_DURATION_H
#define SAGAD_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* The largest duration duration_parse() accepts: 49 days, the most that fits a
 * uint32_t count of milliseconds. Callers apply their own tighter limits. */
#define DURATION_MAX_MS UINT32_MAX

/* Parses NUMBER UNIT with no spaces, sign, fraction or exponent; UNIT is one of
 * ms, s, m, h. Stores milliseconds in *ms. Returns 0, SAGA_EINVAL on bad syntax
 * or SAGA_ETOOBIG above DURATION_MAX_MS. Zero is accepted: limits are the
 * caller's. */
int duration_parse(const char *text, uint64_t *ms) __attribute__((warn_unused_result));

/* Writes `ms` in the largest unit that divides it exactly ("2s", "1500ms",
 * "90m"), NUL-terminated and truncated to `size`. Returns `buf`. */
const char *duration_format(uint64_t ms, char *buf, size_t size);

#endif
