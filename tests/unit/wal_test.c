/* wal_test: the WAL's normal life: create, append, replay, truncation,
 * snapshot markers, segment rollover and release, limits, threads. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wal_testutil.h"

#define SMALL_SEGMENT 4096

static void wal_dir(char *out, size_t cap)
{
    snprintf(out, cap, "%s/member/wal", tu_tmp);
}

static void test_fresh_and_missing_dir(void **state)
{
    (void)state;
    char dir[1200];
    wal_dir(dir, sizeof dir); /* two levels missing */
    wal_open_info info;
    wal *w = wt_open(dir, 0, &info);
    assert_int_equal(info.created, 1);
    assert_int_equal(info.segment_count, 1);
    wal_state st;
    wal_state_get(w, &st);
    assert_int_equal(st.last_index, 0);
    assert_int_equal(st.snapshot_index, 0);
    assert_int_equal(st.hard_state.term, 0);
    wal_close(w);
    assert_int_equal(tu_mode(dir), 0700);
    char path[1400];
    snprintf(path, sizeof path, "%s/0000000000000000-0000000000000001.wal", dir);
    assert_int_equal(tu_mode(path), 0600);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal((uint64_t)sb.st_size, WAL_SEGMENT_BYTES_DEFAULT); /* preallocated */

    w = wt_open(dir, 0, &info);
    assert_int_equal(info.created, 0);
    assert_int_equal(info.tail_repaired, 0);
    wt_log log;
    assert_int_equal(wt_replay(w, &log, NULL), WAL_OK);
    assert_int_equal(log.count, 0);
    wal_close(w);
}

static void test_existing_empty_dir(void **state)
{
    (void)state;
    wal_open_info info;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, &info); /* exists, empty */
    assert_int_equal(info.created, 1);
    wal_close(w);
    assert_int_equal(tu_count_suffix(tu_tmp, ".wal"), 1);
}

static void test_append_replay_reopen(void **state)
{
    (void)state;
    cord_error err;
    wal *w = wt_open(tu_tmp, 0, NULL);
    wal_persisted p;
    for (uint64_t i = 1; i <= 100; i += 10) {
        assert_int_equal(wt_append(w, i, i + 9, 1, &err), WAL_OK);
        raft_hard_state hs = {.term = 1, .vote = 2, .commit = i};
        assert_int_equal(wal_set_hard_state(w, &hs, &err), WAL_OK);
        assert_int_equal(wal_sync(w, &p, &err), WAL_OK);
        assert_int_equal(p.index, i + 9);
        assert_int_equal(p.term, 1);
    }
    wal_close(w);

    wal_open_info info;
    w = wt_open(tu_tmp, 0, &info);
    assert_int_equal(info.entry_count, 100);
    wal_state st;
    wal_state_get(w, &st);
    assert_int_equal(st.last_index, 100);
    assert_int_equal(st.last_term, 1);
    assert_int_equal(st.hard_state.commit, 91);
    assert_int_equal(st.hard_state.vote, 2);
    wt_log log;
    assert_int_equal(wt_replay(w, &log, &err), WAL_OK);
    assert_int_equal(log.bad, 0);
    assert_int_equal(log.first, 1);
    assert_int_equal(log.count, 100);
    /* replay can be repeated before appending */
    assert_int_equal(wt_replay(w, &log, &err), WAL_OK);
    assert_int_equal(log.count, 100);
    /* continue after reopen */
    assert_int_equal(wt_append(w, 101, 120, 2, &err), WAL_OK);
    assert_int_equal(wal_sync(w, &p, &err), WAL_OK);
    assert_int_equal(p.index, 120);
    assert_int_equal(p.term, 2);
    /* no replay after appending */
    assert_int_equal(wt_replay(w, &log, &err), WAL_EINVAL);
    wal_close(w);
    w = wt_open(tu_tmp, 0, NULL);
    assert_int_equal(wt_replay(w, &log, &err), WAL_OK);
    assert_int_equal(log.count, 120);
    assert_int_equal(log.terms[119], 2);
    wal_close(w);
}

static void test_hard_state_latest_wins(void **state)
{
    (void)state;
    cord_error err;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    for (uint64_t t = 1; t <= 300; t++) {
        raft_hard_state hs = {.term = t, .vote = t % 5, .commit = t / 2};
        assert_int_equal(wal_set_hard_state(w, &hs, &err), WAL_OK);
        if (t % 3 == 0) {
            assert_int_equal(wt_append(w, t / 3, t / 3, t, &err), WAL_OK);
        }
        if (t % 7 == 0) {
            assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
        }
    }
    /* the same hard state again writes nothing */
    size_t before = wal_buffered_bytes(w);
    raft_hard_state same = {.term = 300, .vote = 0, .commit = 150};
    assert_int_equal(wal_set_hard_state(w, &same, &err), WAL_OK);
    assert_int_equal(wal_buffered_bytes(w), before);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    assert_true(wal_segment_count(w) > 1); /* crossed segments */
    wal_close(w);
    w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    wal_state st;
    wal_state_get(w, &st);
    assert_int_equal(st.hard_state.term, 300);
    assert_int_equal(st.hard_state.vote, 0);
    assert_int_equal(st.hard_state.commit, 150);
    assert_int_equal(st.last_index, 100);
    wal_close(w);
}

static void test_truncation_overwrites_suffix(void **state)
{
    (void)state;
    cord_error err;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    assert_int_equal(wt_append(w, 1, 10, 1, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    /* a new leader overwrites 6.. */
    assert_int_equal(wt_append(w, 6, 8, 2, &err), WAL_OK);
    wal_persisted p;
    assert_int_equal(wal_sync(w, &p, &err), WAL_OK);
    assert_int_equal(p.index, 8);
    assert_int_equal(p.term, 2);
    /* and within one batch: 9..12 at term 2, then 4..5 at term 3 */
    assert_int_equal(wt_append(w, 9, 12, 2, &err), WAL_OK);
    assert_int_equal(wt_append(w, 4, 5, 3, &err), WAL_OK);
    wal_state st;
    wal_state_get(w, &st);
    assert_int_equal(st.last_index, 5);
    assert_int_equal(wal_sync(w, &p, &err), WAL_OK);
    assert_int_equal(p.index, 5);
    wal_close(w);

    w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    wt_log log;
    assert_int_equal(wt_replay(w, &log, &err), WAL_OK);
    assert_int_equal(log.bad, 0);
    assert_int_equal(log.count, 5);
    uint64_t want[] = {1, 1, 1, 3, 3};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(log.terms[i], want[i]);
    }
    /* grow past the old end again */
    assert_int_equal(wt_append(w, 6, 20, 4, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    wal_close(w);
    w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    assert_int_equal(wt_replay(w, &log, &err), WAL_OK);
    assert_int_equal(log.count, 20);
    assert_int_equal(log.terms[4], 3);
    assert_int_equal(log.terms[5], 4);
    assert_int_equal(log.terms[19], 4);
    wal_close(w);
}

static void test_truncation_across_segments(void **state)
{
    (void)state;
    cord_error err;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    for (uint64_t i = 1; i <= 400; i += 20) {
        assert_int_equal(wt_append(w, i, i + 19, 1, &err), WAL_OK);
        assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    }
    uint64_t segs = wal_segment_count(w);
    assert_true(segs >= 5);
    /* rewind deep into an older segment */
    assert_int_equal(wt_append(w, 50, 60, 2, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    assert_int_equal(wt_append(w, 61, 70, 3, &err), WAL_OK);
    assert_int_equal(wt_append(w, 55, 58, 4, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    wal_close(w);

    w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    wt_log log;
    assert_int_equal(wt_replay(w, &log, &err), WAL_OK);
    assert_int_equal(log.bad, 0);
    assert_int_equal(log.count, 58);
    assert_int_equal(log.terms[48], 1); /* 49 */
    assert_int_equal(log.terms[49], 2); /* 50 */
    assert_int_equal(log.terms[53], 2); /* 54 */
    assert_int_equal(log.terms[54], 4); /* 55 */
    assert_int_equal(log.terms[57], 4); /* 58 */
    wal_state st;
    wal_state_get(w, &st);
    assert_int_equal(st.last_index, 58);
    assert_int_equal(st.last_term, 4);
    wal_close(w);
}

static void test_snapshot_marker(void **state)
{
    (void)state;
    cord_error err;
    wal *w = wt_open(tu_tmp, 0, NULL);
    assert_int_equal(wt_append(w, 1, 20, 1, &err), WAL_OK);
    assert_int_equal(wal_mark_snapshot(w, 21, 1, &err), WAL_EINVAL); /* beyond the log */
    assert_int_equal(wal_mark_snapshot(w, 10, 1, &err), WAL_OK);
    assert_int_equal(wal_mark_snapshot(w, 9, 1, &err), WAL_EINVAL); /* backwards */
    raft_entry e = {.term = 1, .index = 10};
    assert_int_equal(wal_append(w, &e, 1, &err), WAL_EINVAL); /* into the snapshot */
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    wal_close(w);

    w = wt_open(tu_tmp, 0, NULL);
    wal_state st;
    wal_state_get(w, &st);
    assert_int_equal(st.snapshot_index, 10);
    assert_int_equal(st.snapshot_term, 1);
    assert_int_equal(st.last_index, 20);
    wt_log log;
    assert_int_equal(wt_replay(w, &log, &err), WAL_OK);
    assert_int_equal(log.first, 11);
    assert_int_equal(log.count, 10);
    /* a marker at the last entry leaves an empty log */
    assert_int_equal(wal_mark_snapshot(w, 20, 1, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    wal_close(w);
    w = wt_open(tu_tmp, 0, NULL);
    wal_state_get(w, &st);
    assert_int_equal(st.snapshot_index, 20);
    assert_int_equal(st.last_index, 20);
    assert_int_equal(st.last_term, 1);
    assert_int_equal(wt_replay(w, &log, &err), WAL_OK);
    assert_int_equal(log.count, 0);
    wal_close(w);
}

static void test_install_snapshot(void **state)
{
    (void)state;
    cord_error err;
    wal *w = wt_open(tu_tmp, 0, NULL);
    assert_int_equal(wt_append(w, 1, 20, 1, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    /* the leader sends a snapshot at 15 (term 3): the whole log is replaced */
    assert_int_equal(wal_install_snapshot(w, 15, 3, &err), WAL_OK);
    wal_persisted p;
    assert_int_equal(wal_sync(w, &p, &err), WAL_OK);
    assert_int_equal(p.index, 15);
    assert_int_equal(p.term, 3);
    assert_int_equal(wt_append(w, 16, 18, 3, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    wal_close(w);
    w = wt_open(tu_tmp, 0, NULL);
    wt_log log;
    assert_int_equal(wt_replay(w, &log, &err), WAL_OK);
    assert_int_equal(log.bad, 0);
    assert_int_equal(log.first, 16);
    assert_int_equal(log.count, 3); /* old 19, 20 at term 1 are gone */
    assert_int_equal(log.terms[0], 3);
    /* install far beyond the log */
    assert_int_equal(wal_install_snapshot(w, 1000, 5, &err), WAL_OK);
    assert_int_equal(wal_install_snapshot(w, 999, 5, &err), WAL_EINVAL);
    assert_int_equal(wt_append(w, 1001, 1002, 5, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    wal_close(w);
    w = wt_open(tu_tmp, 0, NULL);
    wal_state st;
    wal_state_get(w, &st);
    assert_int_equal(st.snapshot_index, 1000);
    assert_int_equal(st.last_index, 1002);
    assert_int_equal(wt_replay(w, &log, &err), WAL_OK);
    assert_int_equal(log.first, 1001);
    assert_int_equal(log.count, 2);
    wal_close(w);
}

static void test_rollover_and_release(void **state)
{
    (void)state;
    cord_error err;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    for (uint64_t i = 1; i <= 500; i += 10) {
        assert_int_equal(wt_append(w, i, i + 9, 1, &err), WAL_OK);
        raft_hard_state hs = {.term = 1, .vote = 1, .commit = i + 9};
        assert_int_equal(wal_set_hard_state(w, &hs, &err), WAL_OK);
        assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    }
    uint64_t segs = wal_segment_count(w);
    assert_true(segs >= 8);
    assert_int_equal(tu_count_suffix(tu_tmp, ".wal"), segs);
    /* names: consecutive sequences, first index = first entry of the segment */
    char path[1400];
    assert_true(tu_nth_with_suffix(tu_tmp, ".wal", 1, path, sizeof path));
    assert_non_null(strstr(path, "/0000000000000001-"));
    /* every non-last segment was cut to its data */
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_size < SMALL_SEGMENT + 1);

    /* release needs a persisted snapshot marker */
    assert_int_equal(wal_release_to(w, 301, NULL, &err), WAL_EINVAL);
    assert_int_equal(wal_mark_snapshot(w, 300, 1, &err), WAL_OK);
    assert_int_equal(wal_release_to(w, 301, NULL, &err), WAL_EINVAL); /* not yet synced */
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    assert_int_equal(wal_release_to(w, 302, NULL, &err), WAL_EINVAL);
    uint64_t released = 0;
    assert_int_equal(wal_release_to(w, 301, &released, &err), WAL_OK);
    assert_true(released > 0);
    assert_int_equal(wal_segment_count(w), segs - released);
    assert_int_equal(tu_count_suffix(tu_tmp, ".wal"), segs - released);
    /* again: nothing more to release */
    assert_int_equal(wal_release_to(w, 301, &released, &err), WAL_OK);
    assert_int_equal(released, 0);
    wal_close(w);

    wal_open_info info;
    w = wt_open(tu_tmp, SMALL_SEGMENT, &info);
    wal_state st;
    wal_state_get(w, &st);
    assert_int_equal(st.snapshot_index, 300);
    assert_int_equal(st.last_index, 500);
    assert_int_equal(st.hard_state.commit, 500);
    wt_log log;
    assert_int_equal(wt_replay(w, &log, &err), WAL_OK);
    assert_int_equal(log.bad, 0);
    assert_int_equal(log.first, 301);
    assert_int_equal(log.count, 200);
    /* the oldest retained segment holds entries from before 301 */
    assert_true(tu_nth_with_suffix(tu_tmp, ".wal", 0, path, sizeof path));
    wal_close(w);

    /* release everything up to the last segment */
    w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    assert_int_equal(wal_mark_snapshot(w, 500, 1, &err), WAL_OK);
    assert_int_equal(wt_append(w, 501, 501, 1, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    assert_int_equal(wal_release_to(w, 501, &released, &err), WAL_OK);
    wal_close(w);
    w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    assert_int_equal(wt_replay(w, &log, &err), WAL_OK);
    assert_int_equal(log.first, 501);
    assert_int_equal(log.count, 1);
    wal_close(w);
}

static void test_invalid_appends_and_limits(void **state)
{
    (void)state;
    cord_error err;
    wal *w = NULL;
    wal_options o = {.segment_bytes = 100};
    assert_int_equal(wal_open(tu_tmp, &o, &w, NULL, &err), WAL_EINVAL);
    o = (wal_options){.segment_bytes = SMALL_SEGMENT, .buffer_limit_bytes = 1};
    assert_int_equal(wal_open(tu_tmp, &o, &w, NULL, &err), WAL_OK);
    raft_entry e = {.term = 1, .index = 2};
    assert_int_equal(wal_append(w, &e, 1, &err), WAL_EINVAL); /* gap */
    assert_non_null(strstr(err.msg, "gap"));
    e.index = 0;
    assert_int_equal(wal_append(w, &e, 1, &err), WAL_EINVAL);
    e.index = 1;
    e.len = 5;
    e.data = NULL;
    assert_int_equal(wal_append(w, &e, 1, &err), WAL_EINVAL);
    uint8_t *big = calloc(1, WAL_ENTRY_DATA_MAX + 1);
    assert_non_null(big);
    e.data = big;
    e.len = WAL_ENTRY_DATA_MAX + 1;
    assert_int_equal(wal_append(w, &e, 1, &err), WAL_ELIMIT);
    /* a batch is all or nothing */
    raft_entry two[2] = {{.term = 1, .index = 1}, {.term = 1, .index = 3}};
    assert_int_equal(wal_append(w, two, 2, &err), WAL_EINVAL);
    wal_state st;
    wal_state_get(w, &st);
    assert_int_equal(st.last_index, 0);
    assert_int_equal(wal_buffered_bytes(w), 0);
    /* the largest entry fits; the buffer limit then stops more */
    e.len = WAL_ENTRY_DATA_MAX;
    assert_int_equal(wal_append(w, &e, 1, &err), WAL_OK);
    e.index = 2;
    assert_int_equal(wal_append(w, &e, 1, &err), WAL_ELIMIT);
    assert_non_null(strstr(err.msg, "sync first"));
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK); /* one batch larger than a segment */
    assert_int_equal(wal_append(w, &e, 1, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    free(big);
    wal_close(w);
    w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    wal_state_get(w, &st);
    assert_int_equal(st.last_index, 2);
    wal_close(w);
}

static void test_lock_and_tmp_leftover(void **state)
{
    (void)state;
    cord_error err;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    wal *w2 = NULL;
    assert_int_equal(wal_open(tu_tmp, NULL, &w2, NULL, &err), WAL_ELOCKED);
    assert_null(w2);
    wal_close(w);
    char path[1400];
    snprintf(path, sizeof path, "%s/0000000000000001-0000000000000001.wal.tmp", tu_tmp);
    tu_write_file(path, "junk", 4);
    w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    assert_int_equal(tu_count_suffix(tu_tmp, ".tmp"), 0);
    assert_int_equal(wal_segment_count(w), 1);
    wal_close(w);
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

static void test_group_commit_on_worker_thread(void **state)
{
    (void)state;
    cord_error err;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    wal_persisted p;
    uint64_t next = 1;
    for (int round = 0; round < 50; round++) {
        assert_int_equal(wt_append(w, next, next + 4, 1, &err), WAL_OK);
        next += 5;
        assert_int_equal(wal_sync_begin(w, &err), WAL_OK);
        uint64_t handed = next - 1;
        assert_int_equal(wal_sync_begin(w, &err), WAL_EBUSY);
        assert_int_equal(wal_release_to(w, 0, NULL, &err), WAL_EBUSY);
        struct worker_arg a = {.w = w};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, worker, &a), 0);
        /* the owner keeps appending into the next batch meanwhile */
        assert_int_equal(wt_append(w, next, next + 2, 1, &err), WAL_OK);
        next += 3;
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(a.rc, WAL_OK);
        assert_int_equal(wal_sync_end(w, &p, &err), WAL_OK);
        assert_int_equal(p.index, handed);
    }
    assert_int_equal(wal_sync_end(w, &p, &err), WAL_EINVAL);
    assert_int_equal(wal_sync(w, &p, &err), WAL_OK);
    assert_int_equal(p.index, next - 1);
    wal_close(w);
    w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    wt_log log;
    assert_int_equal(wt_replay(w, &log, &err), WAL_OK);
    assert_int_equal(log.bad, 0);
    assert_int_equal(log.count, next - 1);
    wal_close(w);
}

static int stop_at_5(void *ctx, const raft_entry *e)
{
    (void)ctx;
    return e->index == 5;
}

static void test_replay_abort_and_empty_sync(void **state)
{
    (void)state;
    cord_error err;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    wal_persisted p;
    assert_int_equal(wal_sync(w, &p, &err), WAL_OK); /* nothing buffered */
    assert_int_equal(p.index, 0);
    assert_int_equal(wt_append(w, 1, 10, 1, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    wal_close(w);
    w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    assert_int_equal(wal_replay(w, stop_at_5, NULL, &err), WAL_EABORTED);
    assert_string_equal(wal_status_name(WAL_EABORTED), "WAL_EABORTED");
    wal_close(w);
}

int main(void)
{
    /* clang-format off: one test per line */
    const struct CMUnitTest tests[] = {
        TU_TMP_TEST(test_fresh_and_missing_dir),
        TU_TMP_TEST(test_existing_empty_dir),
        TU_TMP_TEST(test_append_replay_reopen),
        TU_TMP_TEST(test_hard_state_latest_wins),
        TU_TMP_TEST(test_truncation_overwrites_suffix),
        TU_TMP_TEST(test_truncation_across_segments),
        TU_TMP_TEST(test_snapshot_marker),
        TU_TMP_TEST(test_install_snapshot),
        TU_TMP_TEST(test_rollover_and_release),
        TU_TMP_TEST(test_invalid_appends_and_limits),
        TU_TMP_TEST(test_lock_and_tmp_leftover),
        TU_TMP_TEST(test_group_commit_on_worker_thread),
        TU_TMP_TEST(test_replay_abort_and_empty_sync),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
