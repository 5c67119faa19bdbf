/* wal_torn_test: what start-up does with damaged files: a torn tail at every
 * byte offset of the last record is cut off; bit flips and holes anywhere
 * else, damage in a non-last segment, and missing segments fail with
 * WAL_ECORRUPT naming the file and offset. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wal_testutil.h"

#define SMALL_SEGMENT 4096

/* Entries 1..n, each in its own write; returns the (single) segment path. */
static void build_log(uint64_t n, char *path, size_t cap)
{
    cord_error err;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    for (uint64_t i = 1; i <= n; i++) {
        assert_int_equal(wt_append(w, i, i, 1, &err), WAL_OK);
        assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    }
    assert_int_equal(wal_segment_count(w), 1);
    wal_close(w);
    assert_true(tu_nth_with_suffix(tu_tmp, ".wal", 0, path, cap));
}

static void expect_open_corrupt(const char *path, uint64_t off)
{
    wal *w = NULL;
    cord_error err;
    wal_options o = {.segment_bytes = SMALL_SEGMENT};
    int rc = wal_open(tu_tmp, &o, &w, NULL, &err);
    if (rc != WAL_ECORRUPT) {
        print_error("expected WAL_ECORRUPT at %" PRIu64 ", got %s: %s\n", off, wal_status_name(rc),
                    rc != WAL_OK ? err.msg : "");
    }
    assert_int_equal(rc, WAL_ECORRUPT);
    assert_null(w);
    char where[64];
    snprintf(where, sizeof where, "offset %" PRIu64 ":", off);
    if (strstr(err.msg, path) == NULL || strstr(err.msg, where) == NULL) {
        print_error("message does not name %s and '%s': %s\n", path, where, err.msg);
        fail();
    }
}

/* Open must succeed with entries 1..n and nothing else. */
static void expect_log(uint64_t n, int repaired)
{
    wal_open_info info;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, &info);
    assert_int_equal(info.tail_repaired, repaired);
    wal_state st;
    wal_state_get(w, &st);
    assert_int_equal(st.last_index, n);
    wt_log log;
    cord_error err;
    assert_int_equal(wt_replay(w, &log, &err), WAL_OK);
    assert_int_equal(log.bad, 0);
    assert_int_equal(log.count, n);
    wal_close(w);
}

static void torn_tail_every_offset(uint8_t fill)
{
    char path[1400];
    build_log(5, path, sizeof path);
    uint64_t offs[16], sizes[16];
    size_t nrec = wt_records(path, offs, sizes, 16);
    assert_int_equal(nrec, 6); /* segment header + 5 entries */
    uint64_t last_off = offs[5], last_size = sizes[5];
    size_t len;
    uint8_t *pristine = tu_read_file(path, &len);
    uint32_t payload_len = (uint32_t)pristine[last_off + 4] |
                           (uint32_t)pristine[last_off + 5] << 8 |
                           (uint32_t)pristine[last_off + 6] << 16;
    assert_true(8 + payload_len < last_size); /* entry 5 has padding to test */
    uint64_t seed = 42;
    for (uint64_t k = 0; k < last_size; k++) {
        /* The first k bytes of the last record reached the disk. */
        tu_write_file(path, pristine, len);
        if (fill == 0) {
            tu_fill_range(path, last_off + k, last_size - k, 0);
        } else {
            for (uint64_t i = k; i < last_size; i++) {
                tu_fill_range(path, last_off + i, 1, (uint8_t)tu_rand(&seed));
            }
        }
        /* The repair is reported when anything but zeros was left behind.
         * A record whose padding alone is zeroed is still whole. */
        int nonzero_tail = fill != 0;
        for (uint64_t i = 0; i < k; i++) {
            nonzero_tail |= pristine[last_off + i] != 0;
        }
        if (fill == 0 && k >= 8 + payload_len) {
            expect_log(5, 0);
            continue;
        }
        expect_log(4, nonzero_tail);
        /* After the repair the file ends cleanly: a second open repairs nothing,
         * and the log can go on. */
        expect_log(4, 0);
        cord_error err;
        wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
        assert_int_equal(wt_append(w, 5, 6, 2, &err), WAL_OK);
        assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
        wal_close(w);
        expect_log(6, 0);
    }
    /* The whole record intact: nothing is cut. */
    tu_write_file(path, pristine, len);
    expect_log(5, 0);
    free(pristine);
}

static void test_torn_tail_zeros_every_offset(void **state)
{
    (void)state;
    torn_tail_every_offset(0);
}

static void test_torn_tail_garbage_every_offset(void **state)
{
    (void)state;
    torn_tail_every_offset(1);
}

static void test_torn_tail_short_file(void **state)
{
    (void)state;
    char path[1400];
    build_log(5, path, sizeof path);
    uint64_t offs[16], sizes[16];
    assert_int_equal(wt_records(path, offs, sizes, 16), 6);
    /* the file itself ends inside the last record (not preallocated) */
    for (uint64_t k = 1; k < sizes[5]; k += 3) {
        tu_truncate(path, offs[5] + k);
        expect_log(4, 1);
        cord_error err;
        wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
        assert_int_equal(wt_append(w, 5, 5, 1, &err), WAL_OK);
        assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
        wal_close(w);
        expect_log(5, 0);
        assert_int_equal(wt_records(path, offs, sizes, 16), 6);
    }
}

static void test_bit_flips_in_middle_record(void **state)
{
    (void)state;
    char path[1400];
    build_log(5, path, sizeof path);
    uint64_t offs[16], sizes[16];
    assert_int_equal(wt_records(path, offs, sizes, 16), 6);
    uint64_t mid_off = offs[3], mid_size = sizes[3]; /* entry 3 */
    for (uint64_t byte = 0; byte < mid_size; byte++) {
        for (int bit = 0; bit < 8; bit++) {
            tu_flip_bit(path, mid_off + byte, bit);
            expect_open_corrupt(path, mid_off);
            tu_flip_bit(path, mid_off + byte, bit);
        }
    }
    expect_log(5, 0);
}

static void test_zeroed_middle_record(void **state)
{
    (void)state;
    char path[1400];
    build_log(5, path, sizeof path);
    uint64_t offs[16], sizes[16];
    assert_int_equal(wt_records(path, offs, sizes, 16), 6);
    tu_fill_range(path, offs[2], sizes[2], 0);
    expect_open_corrupt(path, offs[2]);
}

static void test_bit_flip_in_segment_header(void **state)
{
    (void)state;
    char path[1400];
    build_log(3, path, sizeof path);
    tu_flip_bit(path, 20, 3);
    expect_open_corrupt(path, 0);
}

/* Several segments: damage in one that is not the last is never a torn tail. */
static void build_segments(void)
{
    cord_error err;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    for (uint64_t i = 1; i <= 300; i += 10) {
        assert_int_equal(wt_append(w, i, i + 9, 1, &err), WAL_OK);
        assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    }
    assert_true(wal_segment_count(w) >= 4);
    wal_close(w);
}

static void test_damage_in_non_last_segment(void **state)
{
    (void)state;
    build_segments();
    char path[1400];
    assert_true(tu_nth_with_suffix(tu_tmp, ".wal", 1, path, sizeof path));
    uint64_t offs[256], sizes[256];
    size_t n = wt_records(path, offs, sizes, 256);
    assert_true(n > 2);
    /* the very last record of segment 1: nothing valid follows in that file */
    tu_flip_bit(path, offs[n - 1] + sizes[n - 1] - 2, 0);
    expect_open_corrupt(path, offs[n - 1]);
    tu_flip_bit(path, offs[n - 1] + sizes[n - 1] - 2, 0);
    expect_log(300, 0);
    /* cut short */
    tu_truncate(path, offs[n - 1] + 5);
    expect_open_corrupt(path, offs[n - 1]);
}

static void test_missing_segments(void **state)
{
    (void)state;
    build_segments();
    char path[1400];
    /* a hole in the sequence */
    assert_true(tu_nth_with_suffix(tu_tmp, ".wal", 2, path, sizeof path));
    size_t len;
    uint8_t *saved = tu_read_file(path, &len);
    assert_int_equal(unlink(path), 0);
    wal *w = NULL;
    cord_error err;
    wal_options o = {.segment_bytes = SMALL_SEGMENT};
    assert_int_equal(wal_open(tu_tmp, &o, &w, NULL, &err), WAL_ECORRUPT);
    assert_non_null(strstr(err.msg, "missing"));
    tu_write_file(path, saved, len);
    free(saved);
    expect_log(300, 0);
    /* the oldest segment gone without a snapshot covering it */
    assert_true(tu_nth_with_suffix(tu_tmp, ".wal", 0, path, sizeof path));
    assert_int_equal(unlink(path), 0);
    assert_int_equal(wal_open(tu_tmp, &o, &w, NULL, &err), WAL_ECORRUPT);
    assert_non_null(strstr(err.msg, "missing"));
}

static void test_renamed_segment(void **state)
{
    (void)state;
    build_log(3, (char[1400]){0}, 1400);
    char path[1400], renamed[1400];
    assert_true(tu_nth_with_suffix(tu_tmp, ".wal", 0, path, sizeof path));
    snprintf(renamed, sizeof renamed, "%s/0000000000000000-0000000000000002.wal", tu_tmp);
    assert_int_equal(rename(path, renamed), 0);
    expect_open_corrupt(renamed, 0);
}

int main(void)
{
    /* clang-format off: one test per line */
    const struct CMUnitTest tests[] = {
        TU_TMP_TEST(test_torn_tail_zeros_every_offset),
        TU_TMP_TEST(test_torn_tail_garbage_every_offset),
        TU_TMP_TEST(test_torn_tail_short_file),
        TU_TMP_TEST(test_bit_flips_in_middle_record),
        TU_TMP_TEST(test_zeroed_middle_record),
        TU_TMP_TEST(test_bit_flip_in_segment_header),
        TU_TMP_TEST(test_damage_in_non_last_segment),
        TU_TMP_TEST(test_missing_segments),
        TU_TMP_TEST(test_renamed_segment),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
