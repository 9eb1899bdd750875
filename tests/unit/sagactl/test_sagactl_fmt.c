/* sagactl's text output: lengths of time, ages, offsets, UTC times, option
 * parsing of durations and states, colours, and aligned tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sagactl/fmt.h"

#define S  UINT64_C(1000)
#define M  (60 * S)
#define H  (60 * M)
#define D  (24 * H)
#define T0 UINT64_C(1795256726796) /* 2026-11-21T10:25:26.796Z */

static void test_elapsed(void **state)
{
    char b[FMT_LEN];
    (void)state;
    assert_string_equal(fmt_elapsed(0, b), "0ms");
    assert_string_equal(fmt_elapsed(840, b), "840ms");
    assert_string_equal(fmt_elapsed(999, b), "999ms");
    assert_string_equal(fmt_elapsed(1000, b), "1.00s");
    assert_string_equal(fmt_elapsed(1254, b), "1.25s");
    assert_string_equal(fmt_elapsed(9999, b), "9.99s");
    assert_string_equal(fmt_elapsed(42 * S + 900, b), "42s");
    assert_string_equal(fmt_elapsed(3 * M + 5 * S, b), "3m05s");
    assert_string_equal(fmt_elapsed(2 * H + 7 * M + 59 * S, b), "2h07m");
    assert_string_equal(fmt_elapsed(3 * D + 4 * H, b), "3d04h");
    assert_string_equal(fmt_elapsed(UINT64_MAX, b), "213503982334d14h");
}

static void test_ago(void **state)
{
    char b[FMT_LEN];
    (void)state;
    assert_string_equal(fmt_ago(T0, T0, b), "just now");
    assert_string_equal(fmt_ago(T0, T0 - 999, b), "just now");
    assert_string_equal(fmt_ago(T0, T0 - 12 * S, b), "12s ago");
    assert_string_equal(fmt_ago(T0, T0 - 5 * M - 59 * S, b), "5m ago");
    assert_string_equal(fmt_ago(T0, T0 - 3 * H, b), "3h ago");
    assert_string_equal(fmt_ago(T0, T0 - 2 * D, b), "2d ago");
    /* Clocks a little apart are not "the future"; far apart they are. */
    assert_string_equal(fmt_ago(T0, T0 + 500, b), "just now");
    assert_string_equal(fmt_ago(T0, T0 + 5 * S, b), "in the future");
}

static void test_offset(void **state)
{
    char b[FMT_LEN];
    (void)state;
    assert_string_equal(fmt_offset(T0, T0, b), "+0ms");
    assert_string_equal(fmt_offset(T0, T0 + 12, b), "+12ms");
    assert_string_equal(fmt_offset(T0, T0 + 1204, b), "+1.204s");
    assert_string_equal(fmt_offset(T0, T0 + 3 * M + 5 * S, b), "+3m05s");
    assert_string_equal(fmt_offset(T0, T0 - 40, b), "-40ms");
}

static void test_utc(void **state)
{
    char b[FMT_LEN];
    (void)state;
    assert_string_equal(fmt_utc(T0, b), "2026-11-21T10:25:26.796Z");
    assert_string_equal(fmt_utc(0, b), "1970-01-01T00:00:00.000Z");
    assert_string_equal(fmt_utc(5, b), "1970-01-01T00:00:00.005Z");
}

static void test_parse_duration(void **state)
{
    uint64_t ms = 0;
    (void)state;
    assert_int_equal(fmt_parse_duration("250ms", &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(fmt_parse_duration("90s", &ms), 0);
    assert_int_equal(ms, 90 * S);
    assert_int_equal(fmt_parse_duration("15m", &ms), 0);
    assert_int_equal(ms, 15 * M);
    assert_int_equal(fmt_parse_duration("2h", &ms), 0);
    assert_int_equal(ms, 2 * H);
    assert_int_equal(fmt_parse_duration("7d", &ms), 0);
    assert_int_equal(ms, 7 * D);
    assert_int_equal(fmt_parse_duration("3650d", &ms), 0);

    static const char *const bad[] = {"",     "s",     "0s",    "-5s",
                                      "1.5s", "5",     "5 s",   "5S",
                                      "5sec", "1m30s", "3651d", "99999999999999999999ms",
                                      "5y",   " 5s",   "+5s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ms = 77;
        assert_int_equal(fmt_parse_duration(bad[i], &ms), SAGA_EINVAL);
        assert_int_equal(ms, 77); /* untouched on error */
    }
    assert_int_equal(fmt_parse_duration(NULL, &ms), SAGA_EINVAL);
}

static void test_parse_status(void **state)
{
    saga_status_t s = SAGA_STATUS_UNKNOWN;
    (void)state;
    assert_int_equal(fmt_parse_status("stuck", &s), 0);
    assert_int_equal(s, SAGA_STATUS_STUCK);
    assert_int_equal(fmt_parse_status("COMPLETED", &s), 0);
    assert_int_equal(s, SAGA_STATUS_COMPLETED);
    assert_int_equal(fmt_parse_status("Aborted", &s), 0);
    assert_int_equal(s, SAGA_STATUS_ABORTED);
    for (int i = SAGA_STATUS_RUNNING; i <= SAGA_STATUS_ABORTED; i++) {
        assert_int_equal(fmt_parse_status(saga_status_name((saga_status_t)i), &s), 0);
        assert_int_equal(s, i);
        assert_int_equal(fmt_parse_status(fmt_status_upper((saga_status_t)i), &s), 0);
        assert_int_equal(s, i);
    }
    assert_int_equal(fmt_parse_status("unknown", &s), SAGA_EINVAL);
    assert_int_equal(fmt_parse_status("sleeping", &s), SAGA_EINVAL);
    assert_int_equal(fmt_parse_status("", &s), SAGA_EINVAL);
    assert_int_equal(fmt_parse_status(NULL, &s), SAGA_EINVAL);
}

static void test_colors(void **state)
{
    (void)state;
    assert_int_equal(fmt_status_color(SAGA_STATUS_COMPLETED), FMT_GREEN);
    assert_int_equal(fmt_status_color(SAGA_STATUS_COMMITTED), FMT_GREEN);
    assert_int_equal(fmt_status_color(SAGA_STATUS_COMPENSATED), FMT_YELLOW);
    assert_int_equal(fmt_status_color(SAGA_STATUS_STUCK), FMT_RED);
    assert_int_equal(fmt_status_color(SAGA_STATUS_RUNNING), FMT_BLUE);
    assert_int_equal(fmt_step_color(SAGA_STEP_FAILED), FMT_RED);
    assert_int_equal(fmt_step_color(SAGA_STEP_SKIPPED), FMT_DIM);
    assert_string_equal(fmt_color(FMT_NONE), "");
    assert_string_equal(fmt_color(FMT_RED), "\033[31m");
    assert_string_equal(fmt_status_upper(SAGA_STATUS_UNKNOWN), "UNKNOWN");
    assert_string_equal(fmt_status_upper((saga_status_t)99), "UNKNOWN");
}

/* Prints the table into a string (caller frees). */
static char *print_table(const struct table *t, unsigned indent, bool color)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    table_print(t, f, indent, color);
    fclose(f);
    return buf;
}

static void test_table_alignment(void **state)
{
    (void)state;
    struct table *t = table_new(3);
    assert_non_null(t);
    assert_int_equal(table_add(t, (const char *[]){"STEP", "STATE", "ERROR"}, NULL), 0);
    assert_int_equal(table_add(t, (const char *[]){"reserve", "ok", ""}, NULL), 0);
    assert_int_equal(table_add(t, (const char *[]){"charge", "failed", "no money"}, NULL), 0);
    assert_int_equal(table_add(t, (const char *[]){"b\xc3\xa9", NULL, "x"}, NULL), 0);
    assert_int_equal(table_rows(t), 4);
    char *out = print_table(t, 2, false);
    /* Columns two apart, as wide as their widest cell (characters, not bytes:
     * "bé" is two wide); no padding after the last cell of a row. */
    assert_string_equal(out, "  STEP     STATE   ERROR\n"
                             "  reserve  ok\n"
                             "  charge   failed  no money\n"
                             "  b\xc3\xa9               x\n");
    free(out);
    table_free(&t);
    assert_null(t);
    table_free(&t); /* NULL is fine */
}

static void test_table_color_and_empty_columns(void **state)
{
    (void)state;
    struct table *t = table_new(3);
    assert_int_equal(table_add(t, (const char *[]){"a", "", "DONE"},
                               (enum fmt_color[]){FMT_NONE, FMT_RED, FMT_GREEN}),
                     0);
    assert_int_equal(table_add(t, (const char *[]){"bbb", "", "x"}, NULL), 0);
    char *plain = print_table(t, 0, false);
    /* A column empty everywhere takes no room; no colour unless asked. */
    assert_string_equal(plain, "a    DONE\nbbb  x\n");
    char *color = print_table(t, 0, true);
    /* Colour codes do not move the columns, and empty cells get none. */
    assert_string_equal(color, "a    \033[32mDONE\033[0m\nbbb  x\n");
    free(plain);
    free(color);
    table_free(&t);
    assert_null(table_new(0));
    assert_null(table_new(TABLE_MAX_COLS + 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elapsed),
        cmocka_unit_test(test_ago),
        cmocka_unit_test(test_offset),
        cmocka_unit_test(test_utc),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_status),
        cmocka_unit_test(test_colors),
        cmocka_unit_test(test_table_alignment),
        cmocka_unit_test(test_table_color_and_empty_columns),
    };
    return cmocka_run_group_tests_name("sagactl_fmt", tests, NULL, NULL);
}
