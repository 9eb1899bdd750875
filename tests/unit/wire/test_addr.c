/* wire_addr_split: the HOST:PORT parser the coordinator and libsaga share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "saga/error.h"
#include "wire/addr.h"

static void accepts(const char *text, const char *want_host, int want_port)
{
    char host[64] = "untouched";
    int port = -1;
    assert_int_equal(wire_addr_split(text, host, sizeof(host), &port), 0);
    assert_string_equal(host, want_host);
    assert_int_equal(port, want_port);
}

static void refuses(const char *text, size_t host_size)
{
    char host[64] = "untouched";
    int port = -1;
    assert_int_equal(wire_addr_split(text, host, host_size, &port), SAGA_EINVAL);
    assert_string_equal(host, "untouched");
    assert_int_equal(port, -1);
}

static void test_forms(void **state)
{
    (void)state;
    accepts("127.0.0.1:7420", "127.0.0.1", 7420);
    accepts("localhost:1", "localhost", 1);
    accepts("[::1]:7420", "::1", 7420);
    accepts("[fe80::1%eth0]:80", "fe80::1%eth0", 80);
    accepts("0.0.0.0:0", "0.0.0.0", 0); /* a listener may ask for any port */
    accepts("host:65535", "host", 65535);
    accepts("::1:9", "::1", 9); /* the last colon splits */
}

static void test_refusals(void **state)
{
    (void)state;
    refuses("127.0.0.1", 64);        /* no port */
    refuses(":7420", 64);            /* no host */
    refuses("[]:7420", 64);          /* no host */
    refuses("host:", 64);            /* empty port */
    refuses("host:65536", 64);       /* too big */
    refuses("host:99999999999", 64); /* far too big */
    refuses("host:-1", 64);          /* not digits */
    refuses("host:+1", 64);          /* not digits */
    refuses("host:80x", 64);         /* trailing junk */
    refuses("host: 80", 64);         /* space */
    refuses("[::1]7420", 64);        /* no colon after the bracket */
    refuses("[::1:7420", 64);        /* no closing bracket */
    refuses("abcdefgh:1", 8);        /* host does not fit with its NUL */
    refuses("", 64);
    assert_int_equal(wire_addr_split(NULL, (char[8]){0}, 8, &(int){0}), SAGA_EINVAL);
}

static void test_host_exactly_fits(void **state)
{
    (void)state;
    char host[8];
    int port = 0;
    assert_int_equal(wire_addr_split("abcdefg:1", host, sizeof(host), &port), 0);
    assert_string_equal(host, "abcdefg");
    assert_int_equal(port, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_host_exactly_fits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
