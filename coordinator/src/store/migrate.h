/* Schema migrations: the NNNN_name.sql files of migrations/, built into the
 * binary, applied in order under an advisory lock, each in its own transaction,
 * with its SHA-256 recorded. Blocking: for `sagad migrate` and for the schema
 * check `sagad serve` makes before its loop starts, never for the loop. */
#ifndef SAGAD_STORE_MIGRATE_H
#define SAGAD_STORE_MIGRATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/util.h"

/* A file as built into the binary (generated from migrations/ at build time). */
struct migration_file {
    const char *name; /* "0001_saga_log.sql" */
    const char *sql;
    size_t len;
};

extern const struct migration_file store_migrations[];
extern const size_t store_n_migrations;

struct migration {
    uint32_t version; /* the NNNN of the name */
    char *name;
    char *sql;
    size_t len;
    char checksum[65]; /* lower-case hex SHA-256 of the file's bytes */
};

/* An ordered set of migrations; owns its memory. */
struct migration_set {
    struct migration *items;
    size_t n;
};

/* Fills `set` with the files built into the binary. Returns 0, SAGA_ENOMEM or
 * SAGA_EINVAL (a misnamed or duplicated file; `err` says which). */
int migration_set_builtin(struct migration_set *set, char *err, size_t err_size) MUST_CHECK;

/* Fills `set` with the NNNN_name.sql files of `dir`. Returns 0, SAGA_EIO (the
 * directory or a file cannot be read), SAGA_EINVAL or SAGA_ENOMEM. */
int migration_set_load(struct migration_set *set, const char *dir, char *err,
                       size_t err_size) MUST_CHECK;

void migration_set_free(struct migration_set *set);

/* Applies every pending migration of `set` to the database at `url`, in order.
 * Progress lines go to `out` (may be NULL); *applied (may be NULL) counts the
 * files applied. Returns 0; SAGA_ECONNECT; SAGA_ESCHEMA when an applied file
 * was changed since, or a pending file is older than an applied one (nothing
 * is applied then); SAGA_EDB when a file fails (it is rolled back, the ones
 * before it stay). `err` gets the reason on failure. */
int migrate_apply(const char *url, const struct migration_set *set, FILE *out, size_t *applied,
                  char *err, size_t err_size) MUST_CHECK;

/* Prints every migration, applied or pending (and applied ones this binary does
 * not know), to `out`. *pending (may be NULL) counts the pending. Returns 0,
 * SAGA_ECONNECT, SAGA_EDB, or SAGA_ESCHEMA when an applied file was changed. */
int migrate_status(const char *url, const struct migration_set *set, FILE *out, size_t *pending,
                   char *err, size_t err_size) MUST_CHECK;

/* For `sagad serve` at start-up: 0 when every built-in migration is applied
 * unchanged; SAGA_ESCHEMA (with a message saying to run `sagad migrate`) when
 * the schema is older or differs; SAGA_ECONNECT or SAGA_EDB otherwise. */
int store_schema_check(const char *url, char *err, size_t err_size) MUST_CHECK;

#endif
