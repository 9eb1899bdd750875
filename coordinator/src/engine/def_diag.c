/* Validation errors of definitions: collect, order, print. May not touch
 * anything but the caller's list and stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/def_internal.h"
#include "saga/error.h"

int def_diag_vadd(struct def_diags *diags, int line, int column, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int len = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (len < 0)
        return SAGA_EINVAL;

    if (diags->n == diags->cap) {
        size_t cap = diags->cap != 0 ? diags->cap * 2 : 8;
        struct def_diag *items = realloc(diags->items, cap * sizeof(*items));
        if (items == NULL)
            return SAGA_ENOMEM;
        diags->items = items;
        diags->cap = cap;
    }
    char *message = malloc((size_t)len + 1);
    if (message == NULL)
        return SAGA_ENOMEM;
    vsnprintf(message, (size_t)len + 1, fmt, ap);
    diags->items[diags->n++] =
        (struct def_diag){.line = line, .column = column, .message = message};
    return 0;
}

int def_diag_add(struct def_diags *diags, int line, int column, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int err = def_diag_vadd(diags, line, column, fmt, ap);
    va_end(ap);
    return err;
}

static int before(const struct def_diag *a, const struct def_diag *b)
{
    return a->line < b->line || (a->line == b->line && a->column < b->column);
}

void def_diags_sort(struct def_diags *diags, size_t from)
{
    /* Insertion sort: stable, and the lists are short (the parser caps them). */
    for (size_t i = from + 1; i < diags->n; i++) {
        struct def_diag d = diags->items[i];
        size_t j = i;
        while (j > from && before(&d, &diags->items[j - 1])) {
            diags->items[j] = diags->items[j - 1];
            j--;
        }
        diags->items[j] = d;
    }
}

void def_diags_print(const struct def_diags *diags, const char *file, FILE *out)
{
    if (file == NULL)
        file = "<input>";
    for (size_t i = 0; i < diags->n; i++) {
        const struct def_diag *d = &diags->items[i];
        if (d->line > 0)
            fprintf(out, "%s:%d:%d: %s\n", file, d->line, d->column, d->message);
        else
            fprintf(out, "%s: %s\n", file, d->message);
    }
}

void def_diags_clear(struct def_diags *diags)
{
    for (size_t i = 0; i < diags->n; i++)
        free(diags->items[i].message);
    free(diags->items);
    diags->items = NULL;
    diags->n = 0;
    diags->cap = 0;
}
