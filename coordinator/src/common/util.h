/* Small helpers every coordinator module may use: no state, no I/O. */
#ifndef SAGAD_UTIL_H
#define SAGAD_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The struct of type `type` whose member `member` lives at `ptr`. */
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define MUST_CHECK __attribute__((warn_unused_result))

#endif
