/* Migrations: checks and applies the schema files with a blocking connection.
 * For command-line use and start-up checks only: never called on the loop. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sha256.h"
#include "saga/error.h"
#include "store/migrate.h"
#include "store/pg.h"

/* pg_advisory_lock key of `sagad migrate`: "saga" in ASCII. */
#define MIGRATE_LOCK_KEY "1935763297"
#define NAME_MAX_LEN     128

static const char sql_bootstrap[] = "CREATE TABLE IF NOT EXISTS saga_schema_migrations ("
                                    " version integer PRIMARY KEY,"
                                    " name text NOT NULL,"
                                    " checksum text NOT NULL,"
                                    " applied_at timestamptz NOT NULL DEFAULT now())";

static const char sql_applied[] =
    "SELECT version, name, checksum, to_char(applied_at AT TIME ZONE 'UTC',"
    " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM saga_schema_migrations ORDER BY version";

static const char sql_has_table[] = "SELECT to_regclass('saga_schema_migrations') IS NOT NULL";

/* ---- sets ---- */

/* "0001_name.sql" -> 1; 0 when the name does not have that shape. */
static uint32_t name_version(const char *name)
{
    size_t digits = strspn(name, "0123456789");
    size_t len = strlen(name);
    if (digits == 0 || digits > 9 || name[digits] != '_' || len <= digits + 5 ||
        len >= NAME_MAX_LEN || strcmp(name + len - 4, ".sql") != 0)
        return 0;
    char *end = NULL;
    unsigned long v = strtoul(name, &end, 10);
    if (end != name + digits || v == 0 || v > INT32_MAX)
        return 0;
    return (uint32_t)v;
}

static int set_add(struct migration_set *set, const char *name, const char *sql, size_t len,
                   char *err, size_t err_size)
{
    uint32_t version = name_version(name);
    if (version == 0) {
        snprintf(err, err_size, "%s: a migration is named NNNN_name.sql", name);
        return SAGA_EINVAL;
    }
    if (memchr(sql, '\0', len)) {
        snprintf(err, err_size, "%s: contains a NUL byte", name);
        return SAGA_EINVAL;
    }
    struct migration *items = realloc(set->items, (set->n + 1) * sizeof(*items));
    if (!items)
        return SAGA_ENOMEM;
    set->items = items;
    struct migration *m = &items[set->n];
    memset(m, 0, sizeof(*m));
    m->version = version;
    m->name = strdup(name);
    m->sql = malloc(len + 1);
    if (!m->name || !m->sql) {
        free(m->name);
        free(m->sql);
        return SAGA_ENOMEM;
    }
    memcpy(m->sql, sql, len);
    m->sql[len] = '\0';
    m->len = len;
    sha256_hex(sql, len, m->checksum);
    set->n++;
    return 0;
}

static int cmp_migration(const void *a, const void *b)
{
    const struct migration *x = a, *y = b;
    return x->version < y->version ? -1 : x->version > y->version;
}

static int set_finish(struct migration_set *set, char *err, size_t err_size)
{
    qsort(set->items, set->n, sizeof(*set->items), cmp_migration);
    for (size_t i = 1; i < set->n; i++) {
        if (set->items[i].version == set->items[i - 1].version) {
            snprintf(err, err_size, "%s and %s have the same version", set->items[i - 1].name,
                     set->items[i].name);
            return SAGA_EINVAL;
        }
    }
    return 0;
}

void migration_set_free(struct migration_set *set)
{
    for (size_t i = 0; i < set->n; i++) {
        free(set->items[i].name);
        free(set->items[i].sql);
    }
    free(set->items);
    set->items = NULL;
    set->n = 0;
}

int migration_set_builtin(struct migration_set *set, char *err, size_t err_size)
{
    set->items = NULL;
    set->n = 0;
    for (size_t i = 0; i < store_n_migrations; i++) {
        int rc = set_add(set, store_migrations[i].name, store_migrations[i].sql,
                         store_migrations[i].len, err, err_size);
        if (rc != 0) {
            migration_set_free(set);
            return rc;
        }
    }
    int rc = set_finish(set, err, err_size);
    if (rc != 0)
        migration_set_free(set);
    return rc;
}

static int read_file(const char *path, char **out, size_t *len)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return SAGA_EIO;
    int rc = SAGA_EIO;
    size_t cap = 0, n = 0;
    char *buf = NULL;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8192;
            char *p = realloc(buf, cap);
            if (!p) {
                rc = SAGA_ENOMEM;
                goto out;
            }
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                goto out;
            break;
        }
    }
    *out = buf;
    *len = n;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    fclose(f);
    return rc;
}

int migration_set_load(struct migration_set *set, const char *dir, char *err, size_t err_size)
{
    set->items = NULL;
    set->n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, err_size, "%s: %s", dir, strerror(errno));
        return SAGA_EIO;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 4, ".sql") != 0)
            continue;
        char path[4096];
        int n = snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof(path)) {
            snprintf(err, err_size, "%s: path too long", e->d_name);
            rc = SAGA_EINVAL;
            break;
        }
        char *sql = NULL;
        size_t sql_len = 0;
        rc = read_file(path, &sql, &sql_len);
        if (rc != 0) {
            snprintf(err, err_size, "%s: cannot read", path);
            break;
        }
        rc = set_add(set, e->d_name, sql, sql_len, err, err_size);
        free(sql);
        if (rc != 0)
            break;
    }
    closedir(d);
    if (rc == 0)
        rc = set_finish(set, err, err_size);
    if (rc != 0)
        migration_set_free(set);
    return rc;
}

/* ---- the database side ---- */

struct applied {
    uint32_t version;
    char name[NAME_MAX_LEN];
    char checksum[65];
    char at[32];
};

struct applied_list {
    struct applied *items;
    size_t n;
};

static int read_applied(struct pg_sync *c, struct applied_list *out, char *err, size_t err_size)
{
    out->items = NULL;
    out->n = 0;
    struct pg_res *r = NULL;
    if (pg_sync_query(c, sql_applied, 0, NULL, &r) != 0) {
        snprintf(err, err_size, "reading saga_schema_migrations: %s", pg_sync_error(c));
        return SAGA_EDB;
    }
    int rows = pg_res_rows(r);
    out->items = calloc(rows ? (size_t)rows : 1, sizeof(*out->items));
    if (!out->items) {
        pg_res_free(&r);
        return SAGA_ENOMEM;
    }
    for (int i = 0; i < rows; i++) {
        struct applied *a = &out->items[i];
        a->version = (uint32_t)strtoul(pg_res_value(r, i, 0), NULL, 10);
        snprintf(a->name, sizeof(a->name), "%s", pg_res_value(r, i, 1));
        snprintf(a->checksum, sizeof(a->checksum), "%s", pg_res_value(r, i, 2));
        snprintf(a->at, sizeof(a->at), "%s", pg_res_value(r, i, 3));
    }
    out->n = (size_t)rows;
    pg_res_free(&r);
    return 0;
}

static const struct applied *find_applied(const struct applied_list *l, uint32_t version)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->items[i].version == version)
            return &l->items[i];
    }
    return NULL;
}

/* Refuses a set whose applied files changed, or that would apply an old file
 * after a newer one. */
static int verify(const struct migration_set *set, const struct applied_list *applied, char *err,
                  size_t err_size)
{
    uint32_t newest = 0;
    for (size_t i = 0; i < applied->n; i++) {
        const struct applied *a = &applied->items[i];
        if (a->version > newest)
            newest = a->version;
        for (size_t k = 0; k < set->n; k++) {
            const struct migration *m = &set->items[k];
            if (m->version != a->version)
                continue;
            if (strcmp(m->checksum, a->checksum) != 0) {
                snprintf(err, err_size,
                         "%s was changed after it was applied (applied sha256 %.12s..., file "
                         "%.12s...): restore it and put the change in a new migration",
                         m->name, a->checksum, m->checksum);
                return SAGA_ESCHEMA;
            }
        }
    }
    for (size_t k = 0; k < set->n; k++) {
        const struct migration *m = &set->items[k];
        if (!find_applied(applied, m->version) && m->version < newest) {
            snprintf(err, err_size,
                     "%s is pending but a newer migration (%" PRIu32 ") is already applied",
                     m->name, newest);
            return SAGA_ESCHEMA;
        }
    }
    return 0;
}

/* Line and column of a 1-based character position in `text`. */
static void position_of(const char *text, int pos, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (int i = 0; text[i] && i < pos - 1; i++) {
        /* Count characters, not UTF-8 continuation bytes. */
        if (((unsigned char)text[i] & 0xC0) == 0x80)
            continue;
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static int apply_one(struct pg_sync *c, const struct migration *m, char *err, size_t err_size)
{
    char version[16];
    snprintf(version, sizeof(version), "%" PRIu32, m->version);
    const char *params[3] = {version, m->name, m->checksum};
    if (pg_sync_query(c, "BEGIN", 0, NULL, NULL) != 0) {
        snprintf(err, err_size, "%s: %s", m->name, pg_sync_error(c));
        return SAGA_EDB;
    }
    if (pg_sync_script(c, m->sql) != 0) {
        int line = 0, col = 0;
        if (pg_sync_error_position(c) > 0) {
            position_of(m->sql, pg_sync_error_position(c), &line, &col);
            snprintf(err, err_size, "%s:%d:%d: %s", m->name, line, col, pg_sync_error(c));
        } else {
            snprintf(err, err_size, "%s: %s", m->name, pg_sync_error(c));
        }
        goto rollback;
    }
    if (pg_sync_query(c,
                      "INSERT INTO saga_schema_migrations (version, name, checksum)"
                      " VALUES ($1::int4, $2, $3)",
                      3, params, NULL) != 0 ||
        pg_sync_query(c, "COMMIT", 0, NULL, NULL) != 0) {
        snprintf(err, err_size, "%s: recording it: %s", m->name, pg_sync_error(c));
        goto rollback;
    }
    return 0;
rollback:
    if (pg_sync_query(c, "ROLLBACK", 0, NULL, NULL) != 0) {
        /* The connection is gone; the server rolls back on its own. */
    }
    return SAGA_EDB;
}

int migrate_apply(const char *url, const struct migration_set *set, FILE *out, size_t *applied,
                  char *err, size_t err_size)
{
    struct pg_sync *c = NULL;
    struct applied_list done = {0};
    const char *key[1] = {MIGRATE_LOCK_KEY};
    size_t n = 0;
    int rc = pg_sync_open(url, &c, err, err_size);
    if (applied)
        *applied = 0;
    if (rc != 0)
        return rc;
    /* One migrator at a time; a second one waits here, then finds nothing to do. */
    if (pg_sync_query(c, "SELECT pg_advisory_lock($1::int8)", 1, key, NULL) != 0 ||
        pg_sync_query(c, sql_bootstrap, 0, NULL, NULL) != 0) {
        snprintf(err, err_size, "%s", pg_sync_error(c));
        rc = SAGA_EDB;
        goto out;
    }
    rc = read_applied(c, &done, err, err_size);
    if (rc != 0)
        goto out;
    rc = verify(set, &done, err, err_size);
    if (rc != 0)
        goto out;
    for (size_t i = 0; i < set->n; i++) {
        const struct migration *m = &set->items[i];
        if (find_applied(&done, m->version))
            continue;
        rc = apply_one(c, m, err, err_size);
        if (rc != 0)
            goto out;
        n++;
        if (out)
            fprintf(out, "applied %s (sha256 %.12s...)\n", m->name, m->checksum);
    }
    if (out && n == 0)
        fprintf(out, "nothing to apply: %zu migration%s already applied\n", done.n,
                done.n == 1 ? "" : "s");
out:
    if (applied)
        *applied = n;
    if (rc != SAGA_ECONNECT && c &&
        pg_sync_query(c, "SELECT pg_advisory_unlock($1::int8)", 1, key, NULL) != 0) {
        /* Closing the session releases the lock anyway. */
    }
    free(done.items);
    pg_sync_close(&c);
    return rc;
}

static int has_table(struct pg_sync *c, int *yes, char *err, size_t err_size)
{
    struct pg_res *r = NULL;
    if (pg_sync_query(c, sql_has_table, 0, NULL, &r) != 0) {
        snprintf(err, err_size, "%s", pg_sync_error(c));
        return SAGA_EDB;
    }
    *yes = pg_res_rows(r) == 1 && strcmp(pg_res_value(r, 0, 0), "t") == 0;
    pg_res_free(&r);
    return 0;
}

int migrate_status(const char *url, const struct migration_set *set, FILE *out, size_t *pending,
                   char *err, size_t err_size)
{
    struct pg_sync *c = NULL;
    struct applied_list done = {0};
    size_t n_pending = 0;
    int exists = 0;
    int rc = pg_sync_open(url, &c, err, err_size);
    if (pending)
        *pending = 0;
    if (rc != 0)
        return rc;
    rc = has_table(c, &exists, err, err_size);
    if (rc == 0 && exists)
        rc = read_applied(c, &done, err, err_size);
    if (rc != 0)
        goto out;
    fprintf(out, "%-8s %-40s %-9s %s\n", "VERSION", "NAME", "STATE", "APPLIED_AT");
    int changed = 0;
    /* Both lists are sorted by version: merge them. */
    size_t i = 0, k = 0;
    while (i < set->n || k < done.n) {
        const struct migration *m = i < set->n ? &set->items[i] : NULL;
        const struct applied *a = k < done.n ? &done.items[k] : NULL;
        if (m && (!a || m->version < a->version)) {
            fprintf(out, "%04" PRIu32 "     %-40s %-9s %s\n", m->version, m->name, "pending", "-");
            n_pending++;
            i++;
        } else if (a && (!m || a->version < m->version)) {
            fprintf(out, "%04" PRIu32 "     %-40s %-9s %s\n", a->version, a->name, "unknown",
                    a->at);
            k++;
        } else {
            int same = strcmp(m->checksum, a->checksum) == 0;
            changed |= !same;
            fprintf(out, "%04" PRIu32 "     %-40s %-9s %s\n", m->version, m->name,
                    same ? "applied" : "CHANGED", a->at);
            i++;
            k++;
        }
    }
    if (changed) {
        snprintf(err, err_size, "an applied migration was changed since (state CHANGED)");
        rc = SAGA_ESCHEMA;
    }
out:
    if (pending)
        *pending = n_pending;
    free(done.items);
    pg_sync_close(&c);
    return rc;
}

int store_schema_check(const char *url, char *err, size_t err_size)
{
    struct migration_set set = {0};
    struct pg_sync *c = NULL;
    struct applied_list done = {0};
    int exists = 0;
    int rc = migration_set_builtin(&set, err, err_size);
    if (rc != 0)
        return rc;
    rc = pg_sync_open(url, &c, err, err_size);
    if (rc != 0)
        goto out;
    rc = has_table(c, &exists, err, err_size);
    if (rc != 0)
        goto out;
    if (!exists) {
        snprintf(err, err_size, "the database has no saga schema: run `sagad migrate`");
        rc = SAGA_ESCHEMA;
        goto out;
    }
    rc = read_applied(c, &done, err, err_size);
    if (rc != 0)
        goto out;
    for (size_t i = 0; i < set.n; i++) {
        const struct migration *m = &set.items[i];
        const struct applied *a = find_applied(&done, m->version);
        if (!a) {
            snprintf(err, err_size,
                     "the database schema is older than this binary (%s is not applied): run "
                     "`sagad migrate`",
                     m->name);
            rc = SAGA_ESCHEMA;
            goto out;
        }
        if (strcmp(a->checksum, m->checksum) != 0) {
            snprintf(err, err_size,
                     "the database applied a different %s than this binary carries: the "
                     "schema does not match this build",
                     m->name);
            rc = SAGA_ESCHEMA;
            goto out;
        }
    }
out:
    free(done.items);
    pg_sync_close(&c);
    migration_set_free(&set);
    return rc;
}
