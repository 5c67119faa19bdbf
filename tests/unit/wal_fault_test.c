/* wal_fault_test: injected I/O errors (ENOSPC, EIO) from write, fdatasync and
 * segment creation are returned, the WAL then refuses everything, nothing
 * unpersisted is reported persisted, and a restart reads what is on disk. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "common/failpoint.h"
#include "wal_testutil.h"

#define SMALL_SEGMENT 4096

static int teardown(void **state)
{
    failpoint_configure(NULL, NULL);
    return tu_tmp_teardown(state);
}

static void configure(const char *spec)
{
    cord_error err;
    assert_int_equal(failpoint_configure(spec, &err), FAILPOINT_OK);
}

/* After a failure every mutating call says WAL_EFAILED. */
static void expect_refusing(wal *w)
{
    cord_error err;
    assert_int_equal(wt_append(w, 1000, 1000, 9, &err), WAL_EFAILED);
    assert_non_null(strstr(err.msg, "failed earlier"));
    raft_hard_state hs = {.term = 9};
    assert_int_equal(wal_set_hard_state(w, &hs, &err), WAL_EFAILED);
    assert_int_equal(wal_mark_snapshot(w, 1, 1, &err), WAL_EFAILED);
    assert_int_equal(wal_install_snapshot(w, 1, 1, &err), WAL_EFAILED);
    assert_int_equal(wal_sync_begin(w, &err), WAL_EFAILED);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_EFAILED);
    assert_int_equal(wal_release_to(w, 1, NULL, &err), WAL_EFAILED);
    wt_log log;
    assert_int_equal(wt_replay(w, &log, &err), WAL_EFAILED);
}

static uint64_t reopen_last_index(void)
{
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    wt_log log;
    cord_error err;
    assert_int_equal(wt_replay(w, &log, &err), WAL_OK);
    assert_int_equal(log.bad, 0);
    wal_state st;
    wal_state_get(w, &st);
    assert_int_equal(log.count, st.last_index);
    wal_close(w);
    return st.last_index;
}

static void fail_sync_with(const char *spec, int want_errno, int write_reached_disk)
{
    cord_error err;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    wal_persisted p;
    assert_int_equal(wt_append(w, 1, 10, 1, &err), WAL_OK);
    assert_int_equal(wal_sync(w, &p, &err), WAL_OK);
    assert_int_equal(p.index, 10);
    configure(spec);
    assert_int_equal(wt_append(w, 11, 20, 1, &err), WAL_OK);
    p.index = 12345;
    assert_int_equal(wal_sync(w, &p, &err), WAL_EIO);
    assert_int_equal(p.index, 12345); /* nothing reported */
    assert_int_equal(err.sys_errno, want_errno);
    assert_non_null(strstr(err.msg, strerror(want_errno)));
    expect_refusing(w);
    wal_close(w);
    configure(NULL);
    uint64_t last = reopen_last_index();
    if (write_reached_disk) {
        assert_true(last == 10 || last == 20);
    } else {
        assert_int_equal(last, 10);
    }
}

static void test_enospc_on_write(void **state)
{
    (void)state;
    fail_sync_with("wal-before-write=error(ENOSPC)", ENOSPC, 0);
}

static void test_eio_on_write(void **state)
{
    (void)state;
    fail_sync_with("wal-before-write=error", EIO, 0);
}

static void test_eio_on_fdatasync(void **state)
{
    (void)state;
    fail_sync_with("wal-before-fsync=error(EIO)", EIO, 1);
}

static void test_enospc_on_fdatasync(void **state)
{
    (void)state;
    fail_sync_with("wal-before-fsync=error(ENOSPC)", ENOSPC, 1);
}

static void test_nth_sync_fails(void **state)
{
    (void)state;
    cord_error err;
    configure("wal-before-fsync=3*error");
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    assert_int_equal(wt_append(w, 1, 1, 1, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    assert_int_equal(wt_append(w, 2, 2, 1, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    assert_int_equal(wt_append(w, 3, 3, 1, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_EIO);
    assert_int_equal(failpoint_count("wal-before-fsync"), 3);
    expect_refusing(w);
    wal_close(w);
}

static void test_segment_creation_fails(void **state)
{
    (void)state;
    const char *specs[] = {
        "wal-before-segment-rename=error(ENOSPC)",
        "wal-before-segment-fsync=error",
        "wal-after-segment-rename=error",
        "wal-before-cut-truncate=error",
    };
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        tu_rmrf(tu_tmp);
        tu_mkdtemp(tu_tmp, sizeof tu_tmp);
        cord_error err;
        wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
        configure(specs[s]);
        uint64_t synced = 0;
        int rc = WAL_OK;
        for (uint64_t i = 1; rc == WAL_OK && i < 1000; i += 10) {
            assert_int_equal(wt_append(w, i, i + 9, 1, &err), WAL_OK);
            rc = wal_sync(w, NULL, &err);
            if (rc == WAL_OK) {
                synced = i + 9;
            }
        }
        assert_int_equal(rc, WAL_EIO);
        assert_non_null(strstr(err.msg, "failpoint"));
        expect_refusing(w);
        wal_close(w);
        configure(NULL);
        assert_int_equal(tu_count_suffix(tu_tmp, ".tmp"), 0);
        assert_int_equal(reopen_last_index(), synced);
    }
}

struct worker_arg {
    wal *w;
    int rc;
};

static void *worker(void *p)
{
    struct worker_arg *a = p;
    a->rc = wal_sync_do(a->w);
    return NULL;
}

static void test_failure_on_worker_thread(void **state)
{
    (void)state;
    cord_error err;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    assert_int_equal(wt_append(w, 1, 5, 1, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    configure("wal-before-fsync=error(ENOSPC)");
    assert_int_equal(wt_append(w, 6, 8, 1, &err), WAL_OK);
    assert_int_equal(wal_sync_begin(w, &err), WAL_OK);
    struct worker_arg a = {.w = w};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, worker, &a), 0);
    assert_int_equal(wt_append(w, 9, 10, 1, &err), WAL_OK); /* owner keeps going */
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(a.rc, WAL_EIO);
    wal_persisted p = {.index = 777};
    assert_int_equal(wal_sync_end(w, &p, &err), WAL_EIO);
    assert_int_equal(err.sys_errno, ENOSPC);
    assert_int_equal(p.index, 777);
    expect_refusing(w);
    wal_close(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_enospc_on_write, tu_tmp_setup, teardown),
        cmocka_unit_test_setup_teardown(test_eio_on_write, tu_tmp_setup, teardown),
        cmocka_unit_test_setup_teardown(test_eio_on_fdatasync, tu_tmp_setup, teardown),
        cmocka_unit_test_setup_teardown(test_enospc_on_fdatasync, tu_tmp_setup, teardown),
        cmocka_unit_test_setup_teardown(test_nth_sync_fails, tu_tmp_setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_creation_fails, tu_tmp_setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_on_worker_thread, tu_tmp_setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
