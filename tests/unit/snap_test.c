/* snap_test: snapshot save/load, damage reported with the file name and an
 * older one usable, streaming in chunks to a receiver (wrong offsets,
 * incomplete and corrupt streams), purge, and crash/error failpoints. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/failpoint.h"
#include "common_testutil.h"
#include "snap/snap.h"

static char tmp[1024];
static char dir[1200];  /* <tmp>/member/snap, created by the first save */
static char dir2[1200]; /* the receiving member's */

static int setup(void **state)
{
    (void)state;
    tu_mkdtemp(tmp, sizeof tmp);
    snprintf(dir, sizeof dir, "%s/member/snap", tmp);
    snprintf(dir2, sizeof dir2, "%s/follower/snap", tmp);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    failpoint_configure(NULL, NULL);
    tu_rmrf(tmp);
    return 0;
}

static uint8_t *make_data(size_t len, uint64_t seed)
{
    uint8_t *p = malloc(len + 1);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)tu_rand(&seed);
    }
    return p;
}

static void save(const char *d, uint64_t index, uint64_t term, const uint8_t *data, size_t len)
{
    static const uint8_t membership[] = "members: 1,2,3";
    snap_meta m = {.index = index,
                   .term = term,
                   .membership_len = sizeof membership,
                   .membership = membership};
    cord_error err;
    int rc = snap_save(d, &m, data, len, &err);
    if (rc != SNAP_OK) {
        print_error("snap_save: %s\n", err.msg);
    }
    assert_int_equal(rc, SNAP_OK);
}

/* Load the newest (<= max_index) and compare with data. */
static void expect_loads(const char *d, uint64_t max_index, uint64_t index, uint64_t term,
                         const uint8_t *data, size_t len)
{
    snap_reader *r = NULL;
    cord_error err;
    int rc = snap_load_newest(d, max_index, &r, NULL, &err);
    if (rc != SNAP_OK) {
        print_error("snap_load_newest: %s\n", err.msg);
    }
    assert_int_equal(rc, SNAP_OK);
    const snap_meta *m = snap_reader_meta(r);
    assert_int_equal(m->index, index);
    assert_int_equal(m->term, term);
    assert_int_equal(m->data_len, len);
    assert_int_equal(m->membership_len, sizeof "members: 1,2,3");
    assert_memory_equal(m->membership, "members: 1,2,3", m->membership_len);
    uint8_t *back = malloc(len + 1);
    assert_non_null(back);
    size_t got = 0;
    while (got < len) {
        size_t n = 0;
        assert_int_equal(snap_reader_read_data_at(r, got, back + got, 7777, &n, &err), SNAP_OK);
        assert_true(n > 0);
        got += n;
    }
    size_t n = 1;
    assert_int_equal(snap_reader_read_data_at(r, len, back, 10, &n, &err), SNAP_OK);
    assert_int_equal(n, 0);
    assert_memory_equal(back, data, len);
    free(back);
    snap_reader_close(r);
}

static void snap_path(const char *d, uint64_t term, uint64_t index, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%016" PRIx64 "-%016" PRIx64 ".snap", d, term, index);
}

static void test_save_and_load(void **state)
{
    (void)state;
    cord_error err;
    snap_reader *r = NULL;
    assert_int_equal(snap_load_newest(dir, UINT64_MAX, &r, NULL, &err), SNAP_ENOENT);
    size_t count = 99;
    assert_int_equal(snap_list(dir, NULL, 0, &count, &err), SNAP_OK);
    assert_int_equal(count, 0);

    size_t len = 3 * 1024 * 1024 + 17; /* several internal chunks */
    uint8_t *data = make_data(len, 1);
    save(dir, 10, 2, data, len);
    expect_loads(dir, UINT64_MAX, 10, 2, data, len);
    char path[1400];
    snap_path(dir, 2, 10, path, sizeof path);
    assert_int_equal(tu_mode(path), 0600);
    assert_int_equal(tu_mode(dir), 0700);
    assert_int_equal(tu_count_suffix(dir, ".tmp"), 0);
    /* empty data and empty membership */
    snap_meta m = {.index = 11, .term = 2};
    assert_int_equal(snap_save(dir, &m, NULL, 0, &err), SNAP_OK);
    assert_int_equal(snap_load_newest(dir, UINT64_MAX, &r, NULL, &err), SNAP_OK);
    assert_int_equal(snap_reader_meta(r)->data_len, 0);
    assert_int_equal(snap_reader_file_size(r), SNAP_HEADER_BYTES + SNAP_TRAILER_BYTES);
    snap_reader_close(r);
    /* bad arguments */
    m.index = 0;
    assert_int_equal(snap_save(dir, &m, NULL, 0, &err), SNAP_EINVAL);
    m.index = 12;
    m.membership_len = SNAP_MEMBERSHIP_MAX + 1;
    m.membership = data;
    assert_int_equal(snap_save(dir, &m, NULL, 0, &err), SNAP_ELIMIT);
    free(data);
}

static void test_newest_and_list(void **state)
{
    (void)state;
    uint8_t *d10 = make_data(1000, 10), *d20 = make_data(2000, 20), *d15 = make_data(1500, 15);
    save(dir, 10, 1, d10, 1000);
    save(dir, 20, 3, d20, 2000);
    save(dir, 15, 2, d15, 1500);
    snap_name names[2];
    size_t count = 0;
    cord_error err;
    assert_int_equal(snap_list(dir, names, 2, &count, &err), SNAP_OK);
    assert_int_equal(count, 3);
    assert_int_equal(names[0].index, 20);
    assert_int_equal(names[1].index, 15);
    expect_loads(dir, UINT64_MAX, 20, 3, d20, 2000);
    expect_loads(dir, 19, 15, 2, d15, 1500);
    expect_loads(dir, 10, 10, 1, d10, 1000);
    snap_reader *r = NULL;
    assert_int_equal(snap_load_newest(dir, 9, &r, NULL, &err), SNAP_ENOENT);
    free(d10);
    free(d20);
    free(d15);
}

static void expect_corrupt_newest(uint64_t index, const char *path)
{
    snap_reader *r = NULL;
    snap_name tried = {0};
    cord_error err;
    assert_int_equal(snap_load_newest(dir, UINT64_MAX, &r, &tried, &err), SNAP_ECORRUPT);
    assert_null(r);
    assert_int_equal(tried.index, index);
    if (strstr(err.msg, path) == NULL) {
        print_error("message does not name %s: %s\n", path, err.msg);
        fail();
    }
}

static void test_corrupt_newest_reported_then_fallback(void **state)
{
    (void)state;
    uint8_t *d10 = make_data(5000, 10), *d20 = make_data(5000, 20);
    save(dir, 10, 1, d10, 5000);
    save(dir, 20, 1, d20, 5000);
    char path[1400];
    snap_path(dir, 1, 20, path, sizeof path);
    size_t len;
    uint8_t *pristine = tu_read_file(path, &len);
    /* a bit flip anywhere: header, membership, data, trailer */
    uint64_t offsets[] = {0, 13, 17, 33, 41, 50, 200, 4000, len - 5, len - 1};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        tu_flip_bit(path, offsets[i], 2);
        expect_corrupt_newest(20, path);
        tu_write_file(path, pristine, len);
    }
    /* truncated, and too long */
    tu_truncate(path, len - 1);
    expect_corrupt_newest(20, path);
    tu_write_file(path, pristine, len);
    tu_fill_range(path, len, 3, 0);
    expect_corrupt_newest(20, path);
    /* the caller falls back to the older one */
    snap_reader *r = NULL;
    snap_name tried;
    cord_error err;
    assert_int_equal(snap_load_newest(dir, UINT64_MAX, &r, &tried, &err), SNAP_ECORRUPT);
    expect_loads(dir, tried.index - 1, 10, 1, d10, 5000);
    /* a file whose name disagrees with its header */
    char other[1400];
    snap_path(dir, 1, 30, other, sizeof other);
    tu_write_file(other, pristine, len);
    expect_corrupt_newest(30, other);
    free(pristine);
    free(d10);
    free(d20);
}

/* Stream `path`'s snapshot from the leader's dir to dir2 in random chunks. */
static void stream(uint64_t seed, size_t max_chunk, int corrupt_at, int *rc_out)
{
    snap_reader *r = NULL;
    cord_error err;
    assert_int_equal(snap_load_newest(dir, UINT64_MAX, &r, NULL, &err), SNAP_OK);
    snap_writer *w = NULL;
    assert_int_equal(snap_receiver_begin(dir2, &w, &err), SNAP_OK);
    uint64_t size = snap_reader_file_size(r);
    uint8_t *buf = malloc(max_chunk);
    assert_non_null(buf);
    uint64_t off = 0;
    while (off < size) {
        size_t want = 1 + (size_t)(tu_rand(&seed) % max_chunk);
        size_t n = 0;
        assert_int_equal(snap_reader_read_file_at(r, off, buf, want, &n, &err), SNAP_OK);
        assert_true(n > 0);
        if (corrupt_at >= 0 && off <= (uint64_t)corrupt_at && (uint64_t)corrupt_at < off + n) {
            buf[corrupt_at - off] ^= 0x10;
        }
        int rc = snap_writer_write_at(w, off, buf, n, &err);
        if (rc != SNAP_OK) {
            *rc_out = rc;
            snap_writer_abort(w);
            goto out;
        }
        off += n;
        assert_int_equal(snap_writer_offset(w), off);
    }
    snap_name installed = {0};
    *rc_out = snap_writer_commit(w, &installed, &err);
    if (*rc_out == SNAP_OK) {
        assert_int_equal(installed.index, snap_reader_meta(r)->index);
    }
out:
    free(buf);
    snap_reader_close(r);
}

static void test_streamed_chunks(void **state)
{
    (void)state;
    size_t len = 300000;
    uint8_t *data = make_data(len, 7);
    save(dir, 42, 5, data, len);
    for (uint64_t seed = 1; seed <= 5; seed++) {
        size_t max_chunks[] = {1 + 60 * (size_t)seed, 65536};
        for (size_t c = 0; c < 2; c++) {
            tu_rmrf(dir2);
            int rc = -100;
            stream(seed, max_chunks[c], -1, &rc);
            assert_int_equal(rc, SNAP_OK);
            expect_loads(dir2, UINT64_MAX, 42, 5, data, len);
            assert_int_equal(tu_count_suffix(dir2, ".tmp"), 0);
        }
    }
    free(data);
}

static void test_stream_corruption_never_installs(void **state)
{
    (void)state;
    size_t len = 20000;
    uint8_t *data = make_data(len, 8);
    save(dir, 42, 5, data, len);
    /* in the magic: caught as soon as the header is in; elsewhere: at commit */
    int where[] = {0, 20, 45, 50, 5000, 20000 + 48 + 15 + 2};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        tu_rmrf(dir2);
        int rc = SNAP_OK;
        stream(3, 999, where[i], &rc);
        assert_true(rc == SNAP_ECORRUPT || rc == SNAP_EINVAL);
        assert_int_equal(tu_count_suffix(dir2, ".snap"), 0);
        assert_int_equal(tu_count_suffix(dir2, ".tmp"), 0);
    }
    free(data);
}

static void test_stream_wrong_offsets_and_incomplete(void **state)
{
    (void)state;
    size_t len = 5000;
    uint8_t *data = make_data(len, 9);
    save(dir, 7, 1, data, len);
    snap_reader *r = NULL;
    cord_error err;
    assert_int_equal(snap_load_newest(dir, UINT64_MAX, &r, NULL, &err), SNAP_OK);
    uint64_t size = snap_reader_file_size(r);
    uint8_t *file = malloc(size);
    size_t n = 0;
    assert_int_equal(snap_reader_read_file_at(r, 0, file, size, &n, &err), SNAP_OK);
    assert_int_equal(n, size);
    snap_reader_close(r);

    snap_writer *w = NULL;
    assert_int_equal(snap_receiver_begin(dir2, &w, &err), SNAP_OK);
    assert_int_equal(snap_writer_write(w, file, 10, &err), SNAP_EINVAL); /* not a local writer */
    assert_int_equal(snap_writer_write_at(w, 0, file, 100, &err), SNAP_OK);
    assert_int_equal(snap_writer_write_at(w, 50, file + 50, 100, &err), SNAP_EOFFSET); /* resend */
    assert_non_null(strstr(err.msg, "expected 100"));
    assert_int_equal(snap_writer_write_at(w, 200, file + 200, 100, &err), SNAP_EOFFSET); /* gap */
    assert_int_equal(snap_writer_offset(w), 100);
    /* past the end the header announced */
    assert_int_equal(snap_writer_write_at(w, 100, file + 100, size, &err), SNAP_EINVAL);
    assert_int_equal(snap_writer_write_at(w, 100, file + 100, 1000, &err), SNAP_OK);
    /* commit before the end: refused, nothing installed, temp file gone */
    assert_int_equal(snap_writer_commit(w, NULL, &err), SNAP_EINVAL);
    assert_non_null(strstr(err.msg, "incomplete"));
    assert_int_equal(tu_count_suffix(dir2, ".snap"), 0);
    assert_int_equal(tu_count_suffix(dir2, ".tmp"), 0);

    /* the whole stream in one chunk, after a wrong-offset attempt */
    assert_int_equal(snap_receiver_begin(dir2, &w, &err), SNAP_OK);
    assert_int_equal(snap_writer_write_at(w, 1, file, size, &err), SNAP_EOFFSET);
    assert_int_equal(snap_writer_write_at(w, 0, file, size, &err), SNAP_OK);
    assert_int_equal(snap_writer_commit(w, NULL, &err), SNAP_OK);
    expect_loads(dir2, UINT64_MAX, 7, 1, data, len);
    /* a local writer cannot write_at */
    snap_meta m = {.index = 8, .term = 1};
    assert_int_equal(snap_writer_begin(dir2, &m, &w, &err), SNAP_OK);
    assert_int_equal(snap_writer_write_at(w, 0, file, 10, &err), SNAP_EINVAL);
    snap_writer_abort(w);
    assert_int_equal(tu_count_suffix(dir2, ".tmp"), 0);
    free(file);
    free(data);
}

static void test_purge_and_tmp_cleanup(void **state)
{
    (void)state;
    uint8_t *data = make_data(100, 3);
    for (uint64_t i = 1; i <= 6; i++) {
        save(dir, i * 10, 1, data, 100);
    }
    cord_error err;
    size_t removed = 0;
    assert_int_equal(snap_purge(dir, 0, &removed, &err), SNAP_EINVAL);
    assert_int_equal(snap_purge(dir, 2, &removed, &err), SNAP_OK);
    assert_int_equal(removed, 4);
    snap_name names[8];
    size_t count = 0;
    assert_int_equal(snap_list(dir, names, 8, &count, &err), SNAP_OK);
    assert_int_equal(count, 2);
    assert_int_equal(names[0].index, 60);
    assert_int_equal(names[1].index, 50);
    assert_int_equal(snap_purge(dir, 5, &removed, &err), SNAP_OK);
    assert_int_equal(removed, 0);
    /* leftovers of a crash */
    char path[1400];
    snprintf(path, sizeof path, "%s/receive.abcdef.tmp", dir);
    tu_write_file(path, "x", 1);
    snprintf(path, sizeof path, "%s/0000000000000001-0000000000000070.snap.abcdef.tmp", dir);
    tu_write_file(path, "x", 1);
    assert_int_equal(snap_remove_tmp(dir, &removed, &err), SNAP_OK);
    assert_int_equal(removed, 2);
    assert_int_equal(tu_count_suffix(dir, ".snap"), 2);
    expect_loads(dir, UINT64_MAX, 60, 1, data, 100);
    free(data);
}

/* Save snapshot 20 in a child process that crashes at `spec`. */
static void crash_while_saving(const char *spec)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        failpoint_configure(spec, NULL);
        uint8_t buf[1000];
        memset(buf, 0xab, sizeof buf);
        snap_meta m = {.index = 20, .term = 2};
        snap_save(dir, &m, buf, sizeof buf, NULL);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), FAILPOINT_CRASH_EXIT_CODE);
}

static void test_crash_and_error_failpoints(void **state)
{
    (void)state;
    uint8_t *data = make_data(100, 4);
    save(dir, 10, 1, data, 100);
    cord_error err;
    size_t removed = 0;
    /* crash before the rename: the old snapshot is the newest, a .tmp is left */
    crash_while_saving("snap-before-fsync=crash");
    crash_while_saving("snap-before-rename=crash");
    expect_loads(dir, UINT64_MAX, 10, 1, data, 100);
    assert_int_equal(snap_remove_tmp(dir, &removed, &err), SNAP_OK);
    assert_int_equal(removed, 2);
    /* errors: returned, temp file removed, old snapshot still newest */
    const char *errs[] = {"snap-before-write=error(ENOSPC)", "snap-before-fsync=error",
                          "snap-before-rename=error"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(failpoint_configure(errs[i], NULL), FAILPOINT_OK);
        snap_meta m = {.index = 20, .term = 2};
        uint8_t buf[10] = {0};
        assert_int_equal(snap_save(dir, &m, buf, sizeof buf, &err), SNAP_EIO);
        assert_int_equal(tu_count_suffix(dir, ".tmp"), 0);
        expect_loads(dir, UINT64_MAX, 10, 1, data, 100);
    }
    failpoint_configure(NULL, NULL);
    /* crash after the rename: the new snapshot is there and whole */
    crash_while_saving("snap-after-rename=crash");
    snap_reader *r = NULL;
    assert_int_equal(snap_load_newest(dir, UINT64_MAX, &r, NULL, &err), SNAP_OK);
    assert_int_equal(snap_reader_meta(r)->index, 20);
    assert_int_equal(snap_reader_meta(r)->data_len, 1000);
    snap_reader_close(r);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_save_and_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newest_and_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_newest_reported_then_fallback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_streamed_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_corruption_never_installs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_wrong_offsets_and_incomplete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_and_tmp_cleanup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_and_error_failpoints, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
