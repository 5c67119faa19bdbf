/* wal_crash_test: a child process (this binary, re-executed with
 * CORD_FAILPOINTS in its environment) appends and syncs, reporting over a
 * pipe each index it was told is persisted, until a crash failpoint kills it.
 * The parent then reopens the WAL and checks that everything reported is
 * there, whole, and that the WAL goes on working. Each scenario runs three
 * child lives in the same directory, so recovery after recovery is tested. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/failpoint.h"
#include "wal_testutil.h"

#define SMALL_SEGMENT 8192

/* Child: continue the log from where it is, batches of `batch` entries. */
static int child_main(const char *dir, uint64_t segment_bytes, uint64_t batch, int fd)
{
    wal *w = NULL;
    cord_error err;
    wal_options o = {.segment_bytes = segment_bytes};
    if (wal_open(dir, &o, &w, NULL, &err) != WAL_OK) {
        fprintf(stderr, "child: open: %s\n", err.msg);
        return 3;
    }
    wal_state st;
    wal_state_get(w, &st);
    uint64_t next = st.last_index + 1;
    for (int round = 0; round < 200; round++) {
        if (wt_append(w, next, next + batch - 1, 1, &err) != WAL_OK) {
            return 4;
        }
        next += batch;
        raft_hard_state hs = {.term = 1, .vote = 1, .commit = next - 1};
        if (wal_set_hard_state(w, &hs, &err) != WAL_OK) {
            return 5;
        }
        wal_persisted p;
        if (wal_sync(w, &p, &err) != WAL_OK) {
            fprintf(stderr, "child: sync: %s\n", err.msg);
            return 6;
        }
        if (write(fd, &p.index, sizeof p.index) != (ssize_t)sizeof p.index) {
            return 7;
        }
    }
    wal_close(w);
    return 0;
}

/* Run one child life; returns the highest index it reported persisted. */
static uint64_t run_child(const char *spec, uint64_t batch, int *exit_code)
{
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        char seg[32], b[32], fd[32];
        snprintf(seg, sizeof seg, "%d", SMALL_SEGMENT);
        snprintf(b, sizeof b, "%" PRIu64, batch);
        snprintf(fd, sizeof fd, "%d", pfd[1]);
        setenv(FAILPOINT_ENV, spec, 1);
        execl("/proc/self/exe", "wal_crash_test", "--child", tu_tmp, seg, b, fd, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    uint64_t max = 0, v;
    ssize_t n;
    while ((n = read(pfd[0], &v, sizeof v)) == (ssize_t)sizeof v) {
        assert_true(v > max);
        max = v;
    }
    close(pfd[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    *exit_code = WEXITSTATUS(status);
    return max;
}

/* expect_repair: 1 a torn tail must have been cut, 0 must not, -1 either. */
static void check_after_crash(uint64_t reported, int expect_repair)
{
    wal_open_info info;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, &info);
    if (expect_repair >= 0) {
        assert_int_equal(info.tail_repaired, expect_repair);
    }
    wal_state st;
    wal_state_get(w, &st);
    wt_log log;
    cord_error err;
    assert_int_equal(wt_replay(w, &log, &err), WAL_OK);
    assert_int_equal(log.bad, 0); /* every entry whole and correct */
    assert_int_equal(log.first, 1);
    assert_int_equal(log.count, st.last_index);
    if (st.last_index < reported) {
        print_error("reported %" PRIu64 " persisted, found only %" PRIu64 "\n", reported,
                    st.last_index);
        fail();
    }
    assert_true(st.hard_state.commit >= reported);
    assert_true(st.hard_state.commit <= st.last_index);
    wal_close(w);
    assert_int_equal(tu_count_suffix(tu_tmp, ".tmp"), 0);
}

static void crash_scenario(const char *spec, uint64_t batch, int expect_repair)
{
    for (int life = 0; life < 3; life++) {
        int code = -1;
        uint64_t reported = run_child(spec, batch, &code);
        if (code != FAILPOINT_CRASH_EXIT_CODE) {
            print_error("%s: child exited %d instead of crashing\n", spec, code);
            fail();
        }
        check_after_crash(reported, expect_repair);
    }
}

static void test_crash_before_write(void **state)
{
    (void)state;
    crash_scenario("wal-before-write=6*crash", 7, 0);
}

static void test_crash_after_write(void **state)
{
    (void)state;
    crash_scenario("wal-after-write=6*crash", 7, 0);
}

static void test_crash_before_fsync(void **state)
{
    (void)state;
    crash_scenario("wal-before-fsync=5*crash", 9, 0);
}

static void test_crash_after_fsync(void **state)
{
    (void)state;
    crash_scenario("wal-after-fsync=5*crash", 9, 0);
}

static void test_crash_torn_write(void **state)
{
    (void)state;
    crash_scenario("wal-torn-write=6*crash", 13, 1);
}

static void test_crash_in_segment_creation(void **state)
{
    (void)state;
    crash_scenario("wal-before-segment-rename=2*crash", 20, -1);
    crash_scenario("wal-after-segment-rename=2*crash", 20, -1);
    crash_scenario("wal-before-segment-fsync=2*crash", 20, -1);
    crash_scenario("wal-before-cut-truncate=2*crash", 20, -1);
}

static void test_clean_run_reports_everything(void **state)
{
    (void)state;
    int code = -1;
    uint64_t reported = run_child("", 3, &code);
    assert_int_equal(code, 0);
    assert_int_equal(reported, 600);
    check_after_crash(600, 0);
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "--child") == 0) {
        return child_main(argv[2], strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10),
                          atoi(argv[5]));
    }
    /* clang-format off: one test per line */
    const struct CMUnitTest tests[] = {
        TU_TMP_TEST(test_crash_before_write),
        TU_TMP_TEST(test_crash_after_write),
        TU_TMP_TEST(test_crash_before_fsync),
        TU_TMP_TEST(test_crash_after_fsync),
        TU_TMP_TEST(test_crash_torn_write),
        TU_TMP_TEST(test_crash_in_segment_creation),
        TU_TMP_TEST(test_clean_run_reports_everything),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
