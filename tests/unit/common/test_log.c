/* Logging: logfmt lines with level, saga id first, and quoting of awkward values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"

static char *capture(enum log_level min, enum log_level level, const char *saga)
{
    static char buf[4096];
    memset(buf, 0, sizeof(buf));
    FILE *f = fmemopen(buf, sizeof(buf), "w");
    assert_non_null(f);
    log_setup(min, f);
    log_event(level, saga, "step.ok", "step=%s attempt=%d", "reserve", 2);
    fclose(f);
    log_setup(LOG_INFO, NULL);
    return buf;
}

static void test_line_shape(void **state)
{
    (void)state;
    char *line = capture(LOG_DEBUG, LOG_WARN, "7f1c");
    assert_non_null(strstr(line, "ts="));
    assert_non_null(strstr(line, " level=warn saga=7f1c event=step.ok step=reserve attempt=2\n"));
}

static void test_no_saga(void **state)
{
    (void)state;
    char *line = capture(LOG_DEBUG, LOG_INFO, NULL);
    assert_non_null(strstr(line, " level=info event=step.ok "));
    assert_null(strstr(line, "saga="));
}

static void test_filtered(void **state)
{
    (void)state;
    char *line = capture(LOG_ERROR, LOG_INFO, "x");
    assert_string_equal(line, "");
}

static void test_quote(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(log_quote(buf, sizeof(buf), "plain"), "plain");
    assert_string_equal(log_quote(buf, sizeof(buf), "two words"), "\"two words\"");
    assert_string_equal(log_quote(buf, sizeof(buf), "a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    assert_string_equal(log_quote(buf, sizeof(buf), ""), "\"\"");
    char tiny[4];
    log_quote(tiny, sizeof(tiny), "a long value");
    assert_true(strlen(tiny) < sizeof(tiny));
}

static void test_level_parse(void **state)
{
    (void)state;
    enum log_level l;
    assert_int_equal(log_level_parse("debug", &l), 0);
    assert_int_equal(l, LOG_DEBUG);
    assert_int_equal(log_level_parse("error", &l), 0);
    assert_int_equal(l, LOG_ERROR);
    assert_int_not_equal(log_level_parse("loud", &l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_shape),  cmocka_unit_test(test_no_saga),
        cmocka_unit_test(test_filtered),    cmocka_unit_test(test_quote),
        cmocka_unit_test(test_level_parse),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
