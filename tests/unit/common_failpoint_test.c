/* common_failpoint_test: spec parsing, actions, Nth hit, crash in a child,
 * and configuration from CORD_FAILPOINTS in a fresh process. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/failpoint.h"

static void test_unset_is_silent(void **state)
{
    (void)state;
    assert_int_equal(failpoint_configure(NULL, NULL), FAILPOINT_OK);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(failpoint_hit("wal-before-fsync"), 0);
    }
    assert_int_equal(failpoint_count("wal-before-fsync"), 0);
}

static void test_error_actions(void **state)
{
    (void)state;
    cord_error err;
    assert_int_equal(failpoint_configure("a=error,b=error(ENOSPC),c=error(28),d=off", &err),
                     FAILPOINT_OK);
    assert_int_equal(failpoint_hit("a"), EIO);
    assert_int_equal(failpoint_hit("b"), ENOSPC);
    assert_int_equal(failpoint_hit("c"), 28);
    assert_int_equal(failpoint_hit("d"), 0);
    assert_int_equal(failpoint_hit("unknown"), 0);
    assert_int_equal(failpoint_count("a"), 1);
    assert_int_equal(failpoint_count("d"), 1);
    assert_int_equal(failpoint_count("unknown"), 0);
    assert_int_equal(failpoint_configure("", NULL), FAILPOINT_OK);
    assert_int_equal(failpoint_hit("a"), 0);
}

static void test_nth_hit(void **state)
{
    (void)state;
    assert_int_equal(failpoint_configure("x=3*error(EIO)", NULL), FAILPOINT_OK);
    assert_int_equal(failpoint_hit("x"), 0);
    assert_int_equal(failpoint_hit("x"), 0);
    assert_int_equal(failpoint_hit("x"), EIO);
    assert_int_equal(failpoint_hit("x"), 0);
    assert_int_equal(failpoint_count("x"), 4);
    int e = 0;
    assert_int_equal(failpoint_configure("y=2*crash", NULL), FAILPOINT_OK);
    assert_int_equal(failpoint_eval("y", &e), FAILPOINT_NONE);
    assert_int_equal(failpoint_eval("y", &e), FAILPOINT_CRASH); /* eval does not act */
    assert_int_equal(failpoint_eval("y", &e), FAILPOINT_NONE);
    failpoint_configure(NULL, NULL);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* sleep(MS): the hit takes at least that long and then passes; with N* only the Nth sleeps */
static void test_sleep_action(void **state)
{
    (void)state;
    assert_int_equal(failpoint_configure("s=sleep(60),t=2*sleep(600000)", NULL), FAILPOINT_OK);
    double t0 = now_ms();
    assert_int_equal(failpoint_hit("s"), 0);
    assert_true(now_ms() - t0 >= 60.0);
    int e = -1;
    t0 = now_ms();
    assert_int_equal(failpoint_eval("s", &e), FAILPOINT_SLEEP);
    assert_true(now_ms() - t0 >= 60.0);
    assert_int_equal(e, -1);                 /* no errno for a sleep */
    assert_int_equal(failpoint_hit("t"), 0); /* the first hit of a 2* sleep passes at once */
    assert_int_equal(failpoint_count("s"), 2);
    failpoint_configure(NULL, NULL);
}

static void test_bad_specs(void **state)
{
    (void)state;
    const char *bad[] = {
        "noequals",
        "=crash",
        "a=explode",
        "a=0*crash",
        "a=x*crash",
        "a=error(EWHAT)",
        "a=error(",
        "a=error()",
        "a=sleep",
        "a=sleep()",
        "a=sleep(0)",
        "a=sleep(600001)",
        "a=sleep(1x)",
        "a=sleep(5",
        "a=crash,b",
        "a-very-long-failpoint-name-that-goes-on-and-on-past-the-sixty-four-byte-limit=crash",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cord_error err;
        assert_int_equal(failpoint_configure(bad[i], &err), FAILPOINT_EINVAL);
        assert_true(strlen(err.msg) > 0);
        /* a bad spec leaves nothing configured */
        assert_int_equal(failpoint_hit("a"), 0);
    }
    char many[2048] = "";
    for (int i = 0; i < FAILPOINT_TABLE_MAX + 1; i++) {
        char item[32];
        snprintf(item, sizeof item, "%sfp%d=error", i ? "," : "", i);
        strcat(many, item);
    }
    assert_int_equal(failpoint_configure(many, NULL), FAILPOINT_EINVAL);
    failpoint_configure(NULL, NULL);
}

static void test_crash_exits_child(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        failpoint_configure("boom=2*crash", NULL);
        failpoint_hit("boom");
        failpoint_hit("boom"); /* does not return */
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), FAILPOINT_CRASH_EXIT_CODE);
}

/* Run this binary again with CORD_FAILPOINTS set: a fresh process reads it. */
static void test_environment(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv(FAILPOINT_ENV, "env-point=error(ENOSPC),env-crash=crash", 1);
        execl("/proc/self/exe", "common_failpoint_test", "--env-child", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), FAILPOINT_CRASH_EXIT_CODE);
}

static int env_child(void)
{
    if (failpoint_hit("env-point") != ENOSPC) {
        return 1;
    }
    failpoint_hit("env-crash");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--env-child") == 0) {
        return env_child();
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unset_is_silent), cmocka_unit_test(test_error_actions),
        cmocka_unit_test(test_nth_hit),         cmocka_unit_test(test_sleep_action),
        cmocka_unit_test(test_bad_specs),       cmocka_unit_test(test_crash_exits_child),
        cmocka_unit_test(test_environment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
