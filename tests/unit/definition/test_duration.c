/* Durations: the accepted forms, the rejected ones, the limits, and formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/duration.h"
#include "saga/error.h"

static void test_units(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t ms;
    } cases[] = {
        {"250ms", 250},
        {"1ms", 1},
        {"2s", 2000},
        {"1m", 60000},
        {"1h", 3600000},
        {"0ms", 0},
        {"0s", 0},
        {"007s", 7000},
        {"90m", 5400000},
        {"1500ms", 1500},
        {"4294967295ms", UINT32_MAX},
        {"4294967s", 4294967000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t ms = 12345;
        assert_int_equal(duration_parse(cases[i].text, &ms), 0);
        assert_int_equal(ms, cases[i].ms);
    }
}

static void test_bad_syntax(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",      "s",  "ms", "10",  "10 s", " 10s", "10s ", "-1s", "+1s",  "1.5s",
        "1e3ms", "1d", "1S", "1MS", "1sec", "1hr",  "10us", "s10", "1m1s", "0x10s",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t ms = 12345;
        assert_int_equal(duration_parse(bad[i], &ms), SAGA_EINVAL);
        assert_int_equal(ms, 12345); /* untouched */
    }
}

static void test_too_big(void **state)
{
    (void)state;
    uint64_t ms = 0;
    assert_int_equal(duration_parse("4294967296ms", &ms), SAGA_ETOOBIG);
    assert_int_equal(duration_parse("4294968s", &ms), SAGA_ETOOBIG);
    assert_int_equal(duration_parse("1194h", &ms), SAGA_ETOOBIG);
    assert_int_equal(duration_parse("1193h", &ms), 0);
    assert_int_equal(ms, 1193ull * 3600000);
    /* Digits that overflow 64 bits are still only "too big". */
    assert_int_equal(duration_parse("99999999999999999999999999s", &ms), SAGA_ETOOBIG);
    /* A huge number with a bad unit is a syntax error. */
    assert_int_equal(duration_parse("99999999999999999999999999x", &ms), SAGA_EINVAL);
}

static void test_format(void **state)
{
    (void)state;
    char buf[32];
    assert_string_equal(duration_format(0, buf, sizeof(buf)), "0ms");
    assert_string_equal(duration_format(250, buf, sizeof(buf)), "250ms");
    assert_string_equal(duration_format(1500, buf, sizeof(buf)), "1500ms");
    assert_string_equal(duration_format(2000, buf, sizeof(buf)), "2s");
    assert_string_equal(duration_format(90000, buf, sizeof(buf)), "90s");
    assert_string_equal(duration_format(120000, buf, sizeof(buf)), "2m");
    assert_string_equal(duration_format(3600000, buf, sizeof(buf)), "1h");
    assert_string_equal(duration_format(86400000, buf, sizeof(buf)), "24h");
    char tiny[3];
    assert_string_equal(duration_format(250, tiny, sizeof(tiny)), "25");
    /* Formatting then parsing gives the value back. */
    static const uint64_t values[] = {1, 999, 1000, 61000, 3600000, 3601000, UINT32_MAX};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        uint64_t ms = 0;
        assert_int_equal(duration_parse(duration_format(values[i], buf, sizeof(buf)), &ms), 0);
        assert_int_equal(ms, values[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_bad_syntax),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests_name("duration", tests, NULL, NULL);
}
