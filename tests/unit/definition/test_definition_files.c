/* The example definitions under tests/data/definitions/: every valid/ file
 * parses and its canonical text parses back to itself; every invalid/ file
 * fails with exactly the errors in its .expected file. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/definition.h"
#include "saga/error.h"

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 > cap) {
            cap = cap * 2 + 8192;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    assert_false(ferror(f));
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* snprintf into `buf`, failing the test if the result does not fit. */
static __attribute__((format(printf, 3, 4))) void path_of(char *buf, size_t size, const char *fmt,
                                                          ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size)
        fail_msg("path too long");
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names of the *.json files in `dir` (under the data directory). */
static char **list_json(const char *root, const char *dir, size_t *n)
{
    char path[4096];
    path_of(path, sizeof(path), "%s/%s", root, dir);
    DIR *d = opendir(path);
    if (d == NULL)
        fail_msg("cannot open directory %s", path);
    char **names = NULL;
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        names = realloc(names, (count + 1) * sizeof(*names));
        assert_non_null(names);
        names[count] = strdup(e->d_name);
        assert_non_null(names[count]);
        count++;
    }
    closedir(d);
    qsort(names, count, sizeof(*names), by_name);
    *n = count;
    return names;
}

static void free_list(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static const char *data_root(void)
{
    static char root[4096];
    const char *src = getenv("SAGA_SOURCE_DIR");
    if (src == NULL)
        fail_msg("SAGA_SOURCE_DIR is not set: run this test through ctest");
    path_of(root, sizeof(root), "%s/tests/data/definitions", src);
    return root;
}

static void test_valid_files(void **state)
{
    (void)state;
    const char *root = data_root();
    size_t n;
    char **names = list_json(root, "valid", &n);
    assert_true(n >= 5); /* the directory was found and holds the examples */
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        size_t len;
        path_of(path, sizeof(path), "%s/valid/%s", root, names[i]);
        char *text = read_file(path, &len);
        struct def_diags diags = {0};
        struct definition *def = NULL, *again = NULL;
        int err = definition_parse(text, len, &def, &diags);
        if (err != 0) {
            def_diags_print(&diags, path, stderr);
            fail_msg("%s: expected valid", names[i]);
        }
        assert_int_equal(definition_parse(def->canonical, def->canonical_len, &again, &diags), 0);
        assert_string_equal(again->canonical, def->canonical);
        assert_string_equal(again->hash, def->hash);
        definition_free(&again);
        definition_free(&def);
        free(text);
    }
    free_list(names, n);
}

static void test_invalid_files(void **state)
{
    (void)state;
    const char *root = data_root();
    size_t n;
    char **names = list_json(root, "invalid", &n);
    assert_true(n >= 10);
    for (size_t i = 0; i < n; i++) {
        char path[4096], label[512], expected_path[4096];
        size_t len, expected_len;
        path_of(path, sizeof(path), "%s/invalid/%s", root, names[i]);
        path_of(label, sizeof(label), "invalid/%s", names[i]);
        path_of(expected_path, sizeof(expected_path), "%s/invalid/%.*s.expected", root,
                (int)(strlen(names[i]) - 5), names[i]);
        char *text = read_file(path, &len);
        char *expected = read_file(expected_path, &expected_len);

        struct def_diags diags = {0};
        struct definition *def = NULL;
        assert_int_equal(definition_parse(text, len, &def, &diags), SAGA_EDEFINITION);
        assert_null(def);
        char *got = NULL;
        size_t got_len = 0;
        FILE *f = open_memstream(&got, &got_len);
        assert_non_null(f);
        def_diags_print(&diags, label, f);
        fclose(f);
        if (strcmp(got, expected) != 0)
            print_error("%s:\nexpected:\n%sgot:\n%s", label, expected, got);
        assert_string_equal(got, expected);
        free(got);
        def_diags_clear(&diags);
        free(expected);
        free(text);
    }
    free_list(names, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_files),
        cmocka_unit_test(test_invalid_files),
    };
    return cmocka_run_group_tests_name("definition_files", tests, NULL, NULL);
}
