/* The error table: every code has a distinct name and message; unknown codes are safe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "saga/error.h"
#include "saga/types.h"

static const int all_codes[] = {
#define CODE(name, num, msg) SAGA_E##name,
    SAGA_ERRNO_MAP(CODE)
#undef CODE
};

static void test_every_code_named(void **state)
{
    (void)state;
    size_t n = sizeof(all_codes) / sizeof(all_codes[0]);
    for (size_t i = 0; i < n; i++) {
        assert_true(all_codes[i] < 0);
        assert_string_not_equal(saga_err_name(all_codes[i]), "SAGA_EUNKNOWN");
        assert_string_not_equal(saga_strerror(all_codes[i]), "unknown error");
        for (size_t j = i + 1; j < n; j++) {
            assert_int_not_equal(all_codes[i], all_codes[j]);
            assert_string_not_equal(saga_err_name(all_codes[i]), saga_err_name(all_codes[j]));
        }
    }
}

static void test_known_values(void **state)
{
    (void)state;
    assert_string_equal(saga_err_name(SAGA_ENOTFOUND), "SAGA_ENOTFOUND");
    assert_string_equal(saga_err_name(0), "SAGA_OK");
    assert_string_equal(saga_strerror(0), "success");
    assert_int_equal(SAGA_EINVAL, -1);
}

static void test_unknown_codes(void **state)
{
    (void)state;
    assert_string_equal(saga_err_name(-9999), "SAGA_EUNKNOWN");
    assert_string_equal(saga_strerror(12345), "unknown error");
}

static void test_enum_names(void **state)
{
    (void)state;
    assert_string_equal(saga_status_name(SAGA_STATUS_COMPENSATED), "compensated");
    assert_string_equal(saga_status_name((saga_status_t)99), "unknown");
    assert_string_equal(saga_step_status_name(SAGA_STEP_WAITING), "waiting");
    assert_string_equal(saga_op_name(SAGA_OP_PREPARE), "prepare");
    assert_string_equal(saga_outcome_name(SAGA_OUTCOME_RETRY), "retry");
    assert_true(saga_status_is_terminal(SAGA_STATUS_ABORTED));
    assert_false(saga_status_is_terminal(SAGA_STATUS_STUCK));
    assert_true(saga_step_status_is_settled(SAGA_STEP_SUCCEEDED));
    assert_true(saga_step_status_is_settled(SAGA_STEP_STUCK));
    assert_true(saga_step_status_is_settled(SAGA_STEP_SKIPPED));
    assert_false(saga_step_status_is_settled(SAGA_STEP_PENDING));
    assert_false(saga_step_status_is_settled(SAGA_STEP_WAITING));
    assert_false(saga_step_status_is_settled(SAGA_STEP_COMPENSATING));
    assert_false(saga_step_status_is_settled((saga_step_status_t)99));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_named),
        cmocka_unit_test(test_known_values),
        cmocka_unit_test(test_unknown_codes),
        cmocka_unit_test(test_enum_names),
    };
    return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}
