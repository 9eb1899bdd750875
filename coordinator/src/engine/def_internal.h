/* Shared between the files of the definition module (definition.c, def_diag.c,
 * def_canon.c); nothing outside them includes this. */
#ifndef SAGAD_DEF_INTERNAL_H
#define SAGAD_DEF_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

#include "engine/definition.h"

/* Appends one error at `line`:`column` (0, 0: no place). Returns 0 or SAGA_ENOMEM. */
int def_diag_add(struct def_diags *diags, int line, int column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), warn_unused_result));
int def_diag_vadd(struct def_diags *diags, int line, int column, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0), warn_unused_result));

/* Orders diags->items[from..] by line, then column, keeping the order of equals. */
void def_diags_sort(struct def_diags *diags, size_t from);

/* Writes the canonical text of a validated `def` into a new NUL-terminated
 * string the caller frees. Returns 0 or SAGA_ENOMEM. */
int def_canon_write(const struct definition *def, char **out, size_t *len)
    __attribute__((warn_unused_result));

#endif
