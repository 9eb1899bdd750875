/* The position map: every value and key found at its line and column, with
 * columns in characters, escaped keys decoded, and bad input refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/def_pos.h"
#include "saga/error.h"

static struct def_pos *scan(const char *text)
{
    struct def_pos *pos = NULL;
    assert_int_equal(def_pos_scan(text, strlen(text), &pos), 0);
    assert_non_null(pos);
    return pos;
}

static void assert_at(const struct def_pos *pos, int line, int column, char type)
{
    assert_non_null(pos);
    assert_int_equal(pos->line, line);
    assert_int_equal(pos->column, column);
    assert_int_equal(pos->type, type);
}

static void test_nested(void **state)
{
    (void)state;
    const char *text = "{\n"
                       "  \"name\": \"x\",\n"
                       "  \"steps\": [\n"
                       "    {\"a\": 1, \"b\": [true, null, -2.5e3]},\n"
                       "\t\t{}\n"
                       "  ]\n"
                       "}\n";
    struct def_pos *root = scan(text);
    assert_at(root, 1, 1, '{');
    assert_int_equal(root->n, 2);
    assert_string_equal(root->items[0].key, "name");
    assert_int_equal(root->items[0].key_line, 2);
    assert_int_equal(root->items[0].key_column, 3);
    assert_at(def_pos_get(root, "name"), 2, 11, '"');
    const struct def_pos *steps = def_pos_get(root, "steps");
    assert_at(steps, 3, 12, '[');
    assert_int_equal(steps->n, 2);
    const struct def_pos *first = def_pos_at(steps, 0);
    assert_at(first, 4, 5, '{');
    assert_at(def_pos_get(first, "a"), 4, 11, '1');
    const struct def_pos *b = def_pos_get(first, "b");
    assert_at(b, 4, 19, '[');
    assert_at(def_pos_at(b, 0), 4, 20, 't');
    assert_at(def_pos_at(b, 1), 4, 26, 'n');
    assert_at(def_pos_at(b, 2), 4, 32, '-');
    assert_null(def_pos_at(b, 3));
    assert_at(def_pos_at(steps, 1), 5, 3, '{'); /* a tab is one column */
    assert_int_equal(def_pos_at(steps, 1)->n, 0);
    def_pos_free(&root);
    assert_null(root);
}

static void test_lookups_on_wrong_types(void **state)
{
    (void)state;
    struct def_pos *root = scan("[1, {\"k\": 2}]");
    assert_null(def_pos_get(root, "k")); /* not an object */
    assert_null(def_pos_member(NULL, "k"));
    assert_null(def_pos_at(NULL, 0));
    assert_null(def_pos_at(def_pos_at(root, 1), 0)); /* not an array */
    assert_null(def_pos_get(def_pos_at(root, 1), "missing"));
    assert_at(def_pos_get(def_pos_at(root, 1), "k"), 1, 11, '2');
    def_pos_free(&root);
    def_pos_free(&root); /* NULL: no-op */
    def_pos_free(NULL);
}

static void test_utf8_columns(void **state)
{
    (void)state;
    /* "é" is two bytes and "€" three, one column each, as jansson counts. */
    struct def_pos *root = scan("{\"é€\": \"ü\", \"k\": 1}");
    assert_string_equal(root->items[0].key, "é€");
    assert_at(def_pos_get(root, "k"), 1, 18, '1');
    assert_int_equal(root->items[1].key_column, 13);
    def_pos_free(&root);
}

static void test_escapes_and_line_ends(void **state)
{
    (void)state;
    /* Escaped quotes and backslashes inside strings, \u escapes in keys, CRLF. */
    struct def_pos *root =
        scan("{\"a\\\"b\": \"x\\\\\",\r\n \"\\u006e\\u00e9\": \"\\\"}\",\r\n \"z\": 3}");
    assert_string_equal(root->items[0].key, "a\"b");
    assert_string_equal(root->items[1].key, "n\xc3\xa9");
    assert_int_equal(root->items[1].key_line, 2);
    assert_int_equal(root->items[1].key_column, 2);
    assert_at(def_pos_get(root, "n\xc3\xa9"), 2, 18, '"');
    assert_at(def_pos_get(root, "z"), 3, 7, '3');
    def_pos_free(&root);
}

static void test_repeated_key_finds_last(void **state)
{
    (void)state;
    struct def_pos *root = scan("{\"k\": 1, \"k\": 22}");
    assert_at(def_pos_get(root, "k"), 1, 15, '2');
    def_pos_free(&root);
}

static void test_scalars_and_space(void **state)
{
    (void)state;
    struct def_pos *root = scan("  \n  \"just a string\"  \n");
    assert_at(root, 2, 3, '"');
    assert_int_equal(root->n, 0);
    def_pos_free(&root);
}

static void test_refuses_non_json(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",       "   ",    "{",       "[1,", "{\"a\" 1}", "{\"a\": 1,}x",
        "{1: 2}", "\"open", "[1] [2]", "@",   "{\"a\":}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct def_pos *pos = (struct def_pos *)1;
        assert_int_equal(def_pos_scan(bad[i], strlen(bad[i]), &pos), SAGA_EINVAL);
        assert_null(pos);
    }
}

static void test_deep_nesting_refused(void **state)
{
    (void)state;
    enum { DEPTH = 5000 };
    static char text[2 * DEPTH + 1];
    memset(text, '[', DEPTH);
    memset(text + DEPTH, ']', DEPTH);
    struct def_pos *pos = NULL;
    assert_int_equal(def_pos_scan(text, 2 * DEPTH, &pos), SAGA_EINVAL);
    assert_null(pos);
    /* A few hundred levels are fine. */
    assert_int_equal(def_pos_scan(text + DEPTH - 300, 600, &pos), 0);
    def_pos_free(&pos);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nested),
        cmocka_unit_test(test_lookups_on_wrong_types),
        cmocka_unit_test(test_utf8_columns),
        cmocka_unit_test(test_escapes_and_line_ends),
        cmocka_unit_test(test_repeated_key_finds_last),
        cmocka_unit_test(test_scalars_and_space),
        cmocka_unit_test(test_refuses_non_json),
        cmocka_unit_test(test_deep_nesting_refused),
    };
    return cmocka_run_group_tests_name("def_pos", tests, NULL, NULL);
}
