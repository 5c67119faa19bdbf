/* key_prefix_end: etcd's GetPrefixRangeEnd on ordinary, carrying and all-0xff prefixes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/keyrange.h"

static void expect_end(const char *p, size_t n, const char *want, size_t want_len)
{
    uint8_t out[16];
    size_t len = key_prefix_end(p, n, out);
    assert_int_equal(len, want_len);
    assert_memory_equal(out, want, want_len);
}

static void test_prefix_end(void **state)
{
    (void)state;
    expect_end("abc", 3, "abd", 3);
    expect_end("lock/", 5, "lock0", 5); /* '/' + 1 == '0' */
    expect_end("a\xff", 2, "b", 1);     /* carries over trailing 0xff */
    expect_end("a\xfe\xff\xff", 4, "a\xff", 2);
    expect_end("\xff\xff", 2, "\0", 1); /* every byte 0xff: all keys from there */
    expect_end("", 0, "\0", 1);         /* empty prefix: the whole key space */
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_prefix_end)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
