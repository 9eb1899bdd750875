/* Where each value of a JSON text starts: a tree that mirrors the document, so
 * that validation errors can name a line and a column. jansson reports the
 * place of syntax errors only, not of the values it parsed. Pure: no I/O. */
#ifndef SAGAD_DEF_POS_H
#define SAGAD_DEF_POS_H

#include <stddef.h>

struct def_pos_member;

/* One JSON value. Lines are 1-based; columns are 1-based and count characters
 * (UTF-8 sequences), as jansson's do. */
struct def_pos {
    int line;
    int column;
    char type;                    /* the first character: '{', '[', '"', or that of a scalar */
    size_t n;                     /* members of an object, elements of an array, else 0 */
    struct def_pos_member *items; /* in document order */
};

struct def_pos_member {
    char *key; /* object members: the decoded key; NULL for array elements */
    int key_line;
    int key_column;
    struct def_pos value;
};

/* Scans `len` bytes of `text`, which must be one JSON value (with
 * JSON_DECODE_ANY), already accepted by jansson. On success returns 0 and
 * stores a new tree in *out (free it with def_pos_free()). Returns SAGA_EINVAL
 * if the text is not JSON after all, SAGA_ENOMEM when out of memory. */
int def_pos_scan(const char *text, size_t len, struct def_pos **out)
    __attribute__((warn_unused_result));

/* The member `key` of object `obj` (the last one if the key repeats), or NULL,
 * also when `obj` is NULL or not an object. Borrowed from the tree. */
const struct def_pos_member *def_pos_member(const struct def_pos *obj, const char *key);

/* The value of member `key`, or NULL as for def_pos_member(). */
const struct def_pos *def_pos_get(const struct def_pos *obj, const char *key);

/* Element `index` of array `arr`, or NULL when out of range or not an array. */
const struct def_pos *def_pos_at(const struct def_pos *arr, size_t index);

/* Frees the tree and sets *pos to NULL; NULL is a no-op. */
void def_pos_free(struct def_pos **pos);

#endif
