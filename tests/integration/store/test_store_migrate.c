/* Migrations against a real database: applying twice changes nothing, a changed
 * file is refused, concurrent migrators do not race, a failing file rolls back
 * alone, the start-up schema check, and the `sagad migrate` command line. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "itest.h"
#include "saga/error.h"
#include "store/migrate.h"
#include "store/pg.h"

static const char *server;

static int group_setup(void **state)
{
    (void)state;
    server = itest_server_url();
    return 0;
}

/* A fingerprint of the schema: every column and index of the public schema. */
static int64_t schema_hash(const char *url)
{
    return itest_sql_int(
        url,
        "SELECT ('x' || substr(md5(coalesce(string_agg(x, ',' ORDER BY x), '')), 1, 15))"
        "::bit(60)::int8 FROM ("
        " SELECT table_name || '.' || column_name || ':' || data_type || ':' ||"
        " coalesce(column_default, '') AS x FROM information_schema.columns"
        " WHERE table_schema = 'public'"
        " UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'public') s",
        0, NULL);
}

static void builtin(struct migration_set *set)
{
    char err[512];
    assert_int_equal(migration_set_builtin(set, err, sizeof(err)), 0);
    assert_true(set->n >= 2);
    for (size_t i = 1; i < set->n; i++)
        assert_true(set->items[i].version > set->items[i - 1].version);
}

static void test_apply_twice(void **state)
{
    (void)state;
    char url[ITEST_URL_MAX], err[1024];
    itest_db_create(server, "migrate_twice", 0, url, sizeof(url));
    struct migration_set set;
    builtin(&set);

    /* Before: the check sends the operator to `sagad migrate`. */
    assert_int_equal(store_schema_check(url, err, sizeof(err)), SAGA_ESCHEMA);
    assert_non_null(strstr(err, "sagad migrate"));

    size_t applied = 0;
    assert_int_equal(migrate_apply(url, &set, NULL, &applied, err, sizeof(err)), 0);
    assert_int_equal(applied, set.n);
    int64_t h1 = schema_hash(url);
    assert_int_equal(itest_sql_int(url, "SELECT count(*) FROM saga_schema_migrations", 0, NULL),
                     (int64_t)set.n);
    assert_int_equal(store_schema_check(url, err, sizeof(err)), 0);

    /* Again: nothing applied, nothing changed. */
    assert_int_equal(migrate_apply(url, &set, NULL, &applied, err, sizeof(err)), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(schema_hash(url), h1);
    size_t pending = 99;
    FILE *out = fopen("/dev/null", "w");
    assert_int_equal(migrate_status(url, &set, out, &pending, err, sizeof(err)), 0);
    fclose(out);
    assert_int_equal(pending, 0);

    /* A schema one migration behind the binary is refused at start-up. */
    char v[16];
    snprintf(v, sizeof(v), "%u", set.items[set.n - 1].version);
    const char *p[1] = {v};
    itest_sql_int(url, "DELETE FROM saga_schema_migrations WHERE version = $1::int4", 1, p);
    assert_int_equal(store_schema_check(url, err, sizeof(err)), SAGA_ESCHEMA);
    assert_non_null(strstr(err, set.items[set.n - 1].name));
    migration_set_free(&set);
    itest_db_drop(server, url);
}

static void test_changed_file_refused(void **state)
{
    (void)state;
    char url[ITEST_URL_MAX], err[1024];
    itest_db_create(server, "migrate_tamper", 1, url, sizeof(url));
    struct migration_set set;
    builtin(&set);
    /* The file changed after it was applied (seen from the database side). */
    itest_sql_int(url,
                  "UPDATE saga_schema_migrations SET checksum = repeat('0', 64) WHERE version = 1",
                  0, NULL);
    size_t applied = 5;
    assert_int_equal(migrate_apply(url, &set, NULL, &applied, err, sizeof(err)), SAGA_ESCHEMA);
    assert_int_equal(applied, 0);
    assert_non_null(strstr(err, "0001_"));
    assert_non_null(strstr(err, "changed"));
    assert_int_equal(store_schema_check(url, err, sizeof(err)), SAGA_ESCHEMA);
    FILE *out = fopen("/dev/null", "w");
    assert_int_equal(migrate_status(url, &set, out, NULL, err, sizeof(err)), SAGA_ESCHEMA);
    fclose(out);
    migration_set_free(&set);
    itest_db_drop(server, url);
}

struct migrator {
    const char *url;
    int rc;
    size_t applied;
    char err[1024];
};

static void *migrate_thread(void *arg)
{
    struct migrator *m = arg;
    struct migration_set set = {0};
    char err[512];
    if (migration_set_builtin(&set, err, sizeof(err)) != 0) {
        m->rc = -1;
        return NULL;
    }
    m->rc = migrate_apply(m->url, &set, NULL, &m->applied, m->err, sizeof(m->err));
    migration_set_free(&set);
    return NULL;
}

static void test_concurrent_migrators(void **state)
{
    (void)state;
    char url[ITEST_URL_MAX];
    itest_db_create(server, "migrate_race", 0, url, sizeof(url));
    enum { N = 4 };
    struct migrator m[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        memset(&m[i], 0, sizeof(m[i]));
        m[i].url = url;
        assert_int_equal(pthread_create(&t[i], NULL, migrate_thread, &m[i]), 0);
    }
    size_t total = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        if (m[i].rc != 0)
            fail_msg("migrator %d: %s", i, m[i].err);
        total += m[i].applied;
    }
    struct migration_set set;
    builtin(&set);
    /* Every file applied exactly once, by whichever migrator got the lock. */
    assert_int_equal(total, set.n);
    assert_int_equal(itest_sql_int(url, "SELECT count(*) FROM saga_schema_migrations", 0, NULL),
                     (int64_t)set.n);
    migration_set_free(&set);
    itest_db_drop(server, url);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void make_dir(char *dir, size_t size, const char *tag)
{
    snprintf(dir, size, "/tmp/saga-mig-%s-%ld", tag, (long)getpid());
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(mkdir(dir, 0755), 0);
}

static void remove_dir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_failing_file_rolls_back(void **state)
{
    (void)state;
    char url[ITEST_URL_MAX], dir[256], err[1024];
    itest_db_create(server, "migrate_fail", 0, url, sizeof(url));
    make_dir(dir, sizeof(dir), "fail");
    write_file(dir, "0001_a.sql", "CREATE TABLE a (x int);\n");
    write_file(dir, "0002_b.sql", "CREATE TABLE b (x int);\nCREATE TABLE c (x nosuchtype);\n");
    write_file(dir, "0003_c.sql", "CREATE TABLE d (x int);\n");
    struct migration_set set;
    assert_int_equal(migration_set_load(&set, dir, err, sizeof(err)), 0);
    assert_int_equal(set.n, 3);
    size_t applied = 0;
    assert_int_equal(migrate_apply(url, &set, NULL, &applied, err, sizeof(err)), SAGA_EDB);
    assert_int_equal(applied, 1);
    /* The failure names the file, line and column. */
    assert_non_null(strstr(err, "0002_b.sql:2:"));
    assert_non_null(strstr(err, "nosuchtype"));
    /* 0001 stays, 0002 left nothing behind, 0003 never ran. */
    assert_int_equal(itest_sql_int(url, "SELECT count(*) FROM saga_schema_migrations", 0, NULL), 1);
    assert_int_equal(itest_sql_int(url, "SELECT (to_regclass('a') IS NOT NULL)::int", 0, NULL), 1);
    assert_int_equal(itest_sql_int(url, "SELECT (to_regclass('b') IS NOT NULL)::int", 0, NULL), 0);
    assert_int_equal(itest_sql_int(url, "SELECT (to_regclass('d') IS NOT NULL)::int", 0, NULL), 0);
    migration_set_free(&set);

    /* Fixed: the rest applies. */
    write_file(dir, "0002_b.sql", "CREATE TABLE b (x int);\n");
    assert_int_equal(migration_set_load(&set, dir, err, sizeof(err)), 0);
    assert_int_equal(migrate_apply(url, &set, NULL, &applied, err, sizeof(err)), 0);
    assert_int_equal(applied, 2);
    migration_set_free(&set);

    /* Version 0 is no version; a file older than one applied is refused. */
    write_file(dir, "0000_late.sql", "SELECT 1;\n");
    assert_int_equal(migration_set_load(&set, dir, err, sizeof(err)), SAGA_EINVAL);
    remove_dir(dir);
    make_dir(dir, sizeof(dir), "order");
    write_file(dir, "0001_a.sql", "CREATE TABLE a (x int);\n");
    write_file(dir, "0003_c.sql", "CREATE TABLE d (x int);\n");
    write_file(dir, "0002_b.sql", "CREATE TABLE b (x int);\n");
    write_file(dir, "0004_bis.sql", "SELECT 1;\n");
    itest_sql_int(url, "DELETE FROM saga_schema_migrations WHERE version = 2", 0, NULL);
    assert_int_equal(migration_set_load(&set, dir, err, sizeof(err)), 0);
    assert_int_equal(migrate_apply(url, &set, NULL, &applied, err, sizeof(err)), SAGA_ESCHEMA);
    assert_non_null(strstr(err, "0002_b.sql is pending"));
    migration_set_free(&set);
    write_file(dir, "5_x.txt", "ignored: not .sql");
    write_file(dir, "two_b.sql", "SELECT 1;\n");
    assert_int_equal(migration_set_load(&set, dir, err, sizeof(err)), SAGA_EINVAL);
    assert_non_null(strstr(err, "two_b.sql"));
    remove_dir(dir);
    itest_db_drop(server, url);
}

/* Runs the sagad binary; returns its exit code and its stderr in `err`. */
static int run_sagad(const char *args, char *err, size_t err_size)
{
    const char *bin = getenv("SAGA_BIN_DIR");
    if (!bin)
        skip();
    char cmd[2048], path[256];
    snprintf(path, sizeof(path), "/tmp/saga-mig-err-%ld", (long)getpid());
    snprintf(cmd, sizeof(cmd), "%s/sagad migrate %s >/dev/null 2>%s", bin, args, path);
    int st = system(cmd);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(err, 1, err_size - 1, f) : 0;
    err[n] = '\0';
    if (f)
        fclose(f);
    unlink(path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_command_line(void **state)
{
    (void)state;
    char url[ITEST_URL_MAX], dir[256], err[2048], args[1600];
    itest_db_create(server, "migrate_cli", 0, url, sizeof(url));
    snprintf(args, sizeof(args), "--database-url '%s'", url);
    assert_int_equal(run_sagad(args, err, sizeof(err)), 0);
    assert_int_equal(run_sagad(args, err, sizeof(err)), 0);
    snprintf(args, sizeof(args), "--status --database-url '%s'", url);
    assert_int_equal(run_sagad(args, err, sizeof(err)), 0);

    /* A changed file: refused with exit code 1 and a clear message. */
    make_dir(dir, sizeof(dir), "cli");
    struct migration_set set;
    builtin(&set);
    for (size_t i = 0; i < set.n; i++) {
        char *text = set.items[i].sql;
        if (i == 0) {
            static char changed[65536];
            snprintf(changed, sizeof(changed), "%s\n-- edited afterwards\n", text);
            text = changed;
        }
        write_file(dir, set.items[i].name, text);
    }
    snprintf(args, sizeof(args), "--dir '%s' --database-url '%s'", dir, url);
    assert_int_equal(run_sagad(args, err, sizeof(err)), 1);
    assert_non_null(strstr(err, "was changed after it was applied"));
    snprintf(args, sizeof(args), "--status --dir '%s' --database-url '%s'", dir, url);
    assert_int_equal(run_sagad(args, err, sizeof(err)), 1);
    remove_dir(dir);
    migration_set_free(&set);

    /* No database named, or one that is not there. */
    assert_int_equal(run_sagad("--database-url ''", err, sizeof(err)), 2);
    assert_int_equal(
        run_sagad("--database-url 'postgresql://postgres@127.0.0.1:1/none?connect_timeout=2'", err,
                  sizeof(err)),
        1);
    assert_non_null(strstr(err, "sagad migrate:"));
    assert_int_equal(run_sagad("--bogus", err, sizeof(err)), 2);
    itest_db_drop(server, url);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_twice),          cmocka_unit_test(test_changed_file_refused),
        cmocka_unit_test(test_concurrent_migrators), cmocka_unit_test(test_failing_file_rolls_back),
        cmocka_unit_test(test_command_line),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
