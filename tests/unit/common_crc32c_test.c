/* common_crc32c_test: CRC-32C test vectors (RFC 3720 B.4) and both paths agree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/crc32c.h"
#include "common_testutil.h"

static void test_vectors(void **state)
{
    (void)state;
    assert_int_equal(crc32c("123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c_extend_portable(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c("", 0), 0u);
    uint8_t buf[32];
    memset(buf, 0, sizeof buf);
    assert_int_equal(crc32c(buf, sizeof buf), 0x8A9136AAu);
    memset(buf, 0xff, sizeof buf);
    assert_int_equal(crc32c(buf, sizeof buf), 0x62A8AB43u);
    for (int i = 0; i < 32; i++) {
        buf[i] = (uint8_t)i;
    }
    assert_int_equal(crc32c(buf, sizeof buf), 0x46DD794Eu);
    for (int i = 0; i < 32; i++) {
        buf[i] = (uint8_t)(31 - i);
    }
    assert_int_equal(crc32c(buf, sizeof buf), 0x113FDB5Cu);
}

static void test_hardware_matches_table(void **state)
{
    (void)state;
    static uint8_t buf[4096 + 16];
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < sizeof buf; i++) {
        buf[i] = (uint8_t)tu_rand(&seed);
    }
    for (int round = 0; round < 2000; round++) {
        size_t off = tu_rand(&seed) % 16;
        size_t len = tu_rand(&seed) % 4096;
        uint32_t init = (uint32_t)tu_rand(&seed);
        assert_int_equal(crc32c_extend(init, buf + off, len),
                         crc32c_extend_portable(init, buf + off, len));
    }
}

static void test_extend_is_concatenation(void **state)
{
    (void)state;
    const char *s = "the quick brown fox jumps over the lazy dog";
    size_t n = strlen(s);
    uint32_t whole = crc32c(s, n);
    for (size_t cut = 0; cut <= n; cut++) {
        assert_int_equal(crc32c_extend(crc32c(s, cut), s + cut, n - cut), whole);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_hardware_matches_table),
        cmocka_unit_test(test_extend_is_concatenation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
