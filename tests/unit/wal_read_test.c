/* wal_read_test: reading durable entries back from the WAL (wal_read):
 * across segments, limits, truncation, snapshot markers, durability bound,
 * reopen, release, damage, and a randomized comparison with a model. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wal_testutil.h"

#define SMALL_SEGMENT 4096
#define MODEL_MAX     16384

/* terms[i] = term of entry i expected in the log. */
static uint64_t model_terms[MODEL_MAX];

/* How many entries a read from `from` should return: the limits of the contract. */
static uint32_t expect_count(uint64_t from, uint64_t last, uint64_t max_bytes, uint32_t max_n)
{
    uint32_t n = 0;
    uint64_t bytes = 0;
    for (uint64_t i = from; i <= last && n < max_n; i++) {
        uint32_t len = wt_len(i, model_terms[i]);
        if (n > 0 && bytes + len > max_bytes) {
            break;
        }
        bytes += len;
        n++;
    }
    return n;
}

/* Read and compare every entry with model_terms; the log readable is [from, last]. */
static void check_read(wal *w, uint64_t from, uint64_t last, uint64_t max_bytes, uint32_t max_n)
{
    raft_entry *ents = NULL;
    uint32_t n = 0;
    cord_error err;
    int rc = wal_read(w, from, max_bytes, max_n, &ents, &n, &err);
    if (rc != WAL_OK) {
        print_error("wal_read(%llu, %llu, %u): %s: %s\n", (unsigned long long)from,
                    (unsigned long long)max_bytes, max_n, wal_status_name(rc), err.msg);
    }
    assert_int_equal(rc, WAL_OK);
    assert_non_null(ents);
    assert_int_equal(n, expect_count(from, last, max_bytes, max_n));
    for (uint32_t k = 0; k < n; k++) {
        assert_int_equal(ents[k].index, from + k);
        assert_int_equal(ents[k].term, model_terms[from + k]);
        assert_int_equal(ents[k].len, wt_len(from + k, model_terms[from + k]));
        assert_true(wt_check(&ents[k])); /* type and bytes */
    }
    free(ents);
}

static void expect_read_error(wal *w, uint64_t from, int code, const char *msg_part)
{
    raft_entry *ents = (raft_entry *)&ents; /* must be reset */
    uint32_t n = 77;
    cord_error err;
    assert_int_equal(wal_read(w, from, UINT64_MAX, 100, &ents, &n, &err), code);
    assert_null(ents);
    assert_int_equal(n, 0);
    if (msg_part != NULL) {
        if (strstr(err.msg, msg_part) == NULL) {
            print_error("message \"%s\" lacks \"%s\"\n", err.msg, msg_part);
        }
        assert_non_null(strstr(err.msg, msg_part));
    }
}

static void model_set(uint64_t from, uint64_t to, uint64_t term)
{
    for (uint64_t i = from; i <= to; i++) {
        model_terms[i] = term;
    }
}

static void test_read_across_segments(void **state)
{
    (void)state;
    cord_error err;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    for (uint64_t i = 1; i <= 300; i += 10) {
        assert_int_equal(wt_append(w, i, i + 4, 1, &err), WAL_OK);
        raft_hard_state hs = {.term = 1, .vote = 2, .commit = i};
        assert_int_equal(wal_set_hard_state(w, &hs, &err), WAL_OK); /* between entries */
        assert_int_equal(wt_append(w, i + 5, i + 9, 1, &err), WAL_OK);
        assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    }
    model_set(1, 300, 1);
    assert_true(wal_segment_count(w) >= 5);
    check_read(w, 1, 300, UINT64_MAX, UINT32_MAX); /* everything */
    uint64_t froms[] = {1, 2, 9, 10, 11, 57, 150, 199, 290, 299, 300};
    uint64_t bytes[] = {0, 1, 50, 119, 120, 500, 4000, 100000, UINT64_MAX};
    uint32_t ns[] = {1, 2, 3, 10, 64, 1000};
    for (size_t a = 0; a < sizeof froms / sizeof froms[0]; a++) {
        for (size_t b = 0; b < sizeof bytes / sizeof bytes[0]; b++) {
            for (size_t c = 0; c < sizeof ns / sizeof ns[0]; c++) {
                check_read(w, froms[a], 300, bytes[b], ns[c]);
            }
        }
    }
    /* max_bytes 0 still gives one entry; the limit is on the data */
    raft_entry *ents = NULL;
    uint32_t n = 0;
    assert_int_equal(wal_read(w, 5, 0, 10, &ents, &n, &err), WAL_OK);
    assert_int_equal(n, 1);
    free(ents);
    /* exactly the bytes of 3 entries: 3, not 4 */
    uint64_t three = wt_len(40, 1) + wt_len(41, 1) + wt_len(42, 1);
    assert_int_equal(wal_read(w, 40, three, 100, &ents, &n, &err), WAL_OK);
    assert_int_equal(n, wt_len(43, 1) == 0 ? 4 : 3);
    free(ents);

    expect_read_error(w, 0, WAL_EINVAL, "compacted");
    expect_read_error(w, 301, WAL_EINVAL, "not durable");
    assert_int_equal(wal_read(w, 1, 100, 0, &ents, &n, &err), WAL_EINVAL);
    wal_close(w);
}

static void test_read_truncation(void **state)
{
    (void)state;
    cord_error err;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    assert_int_equal(wt_append(w, 1, 10, 1, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    model_set(1, 10, 1);
    check_read(w, 5, 10, UINT64_MAX, 100);
    assert_int_equal(wt_append(w, 8, 12, 2, &err), WAL_OK);
    /* buffered: 8.. of term 1 are no longer the log, 8.. of term 2 not durable */
    check_read(w, 5, 7, UINT64_MAX, 100);
    expect_read_error(w, 8, WAL_EINVAL, "not durable");
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    model_set(8, 12, 2);
    check_read(w, 5, 12, UINT64_MAX, 100);
    raft_entry *ents = NULL;
    uint32_t n = 0;
    assert_int_equal(wal_read(w, 5, UINT64_MAX, 100, &ents, &n, &err), WAL_OK);
    assert_int_equal(n, 8);
    assert_int_equal(ents[2].term, 1);
    assert_int_equal(ents[3].index, 8);
    assert_int_equal(ents[3].term, 2);
    assert_int_equal(ents[7].index, 12);
    free(ents);
    /* truncation to below the start of several segments */
    for (uint64_t i = 13; i <= 200; i += 20) {
        assert_int_equal(wt_append(w, i, i + 19, 2, &err), WAL_OK);
        assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    }
    model_set(13, 212, 2);
    assert_true(wal_segment_count(w) >= 3);
    assert_int_equal(wt_append(w, 30, 40, 3, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    model_set(30, 40, 3);
    check_read(w, 1, 40, UINT64_MAX, 1000);
    expect_read_error(w, 41, WAL_EINVAL, "not durable");
    wal_close(w);
    w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    check_read(w, 1, 40, UINT64_MAX, 1000);
    check_read(w, 29, 40, 200, 1000);
    expect_read_error(w, 41, WAL_EINVAL, NULL);
    wal_close(w);
}

static void test_read_snapshot_marker(void **state)
{
    (void)state;
    cord_error err;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    assert_int_equal(wt_append(w, 1, 100, 1, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    model_set(1, 100, 1);
    assert_int_equal(wal_mark_snapshot(w, 30, 1, &err), WAL_OK);
    /* the marker counts as soon as it is buffered */
    expect_read_error(w, 30, WAL_EINVAL, "compacted");
    check_read(w, 31, 100, UINT64_MAX, 1000);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    expect_read_error(w, 1, WAL_EINVAL, "compacted");
    expect_read_error(w, 30, WAL_EINVAL, "compacted");
    check_read(w, 31, 100, UINT64_MAX, 1000);
    wal_close(w);
    w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    expect_read_error(w, 30, WAL_EINVAL, "compacted");
    check_read(w, 31, 100, UINT64_MAX, 1000);
    /* marker at the last entry: nothing to read */
    assert_int_equal(wal_mark_snapshot(w, 100, 1, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    expect_read_error(w, 100, WAL_EINVAL, "compacted");
    expect_read_error(w, 101, WAL_EINVAL, "not durable");
    assert_int_equal(wt_append(w, 101, 105, 2, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    model_set(101, 105, 2);
    check_read(w, 101, 105, UINT64_MAX, 1000);
    wal_close(w);
}

static void test_read_durable_bound_and_in_flight(void **state)
{
    (void)state;
    cord_error err;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    expect_read_error(w, 1, WAL_EINVAL, "not durable"); /* empty */
    assert_int_equal(wt_append(w, 1, 20, 1, &err), WAL_OK);
    expect_read_error(w, 1, WAL_EINVAL, "not durable");
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    model_set(1, 40, 1);
    assert_int_equal(wt_append(w, 21, 30, 1, &err), WAL_OK);
    check_read(w, 1, 20, UINT64_MAX, 1000); /* stops at 20 */
    expect_read_error(w, 21, WAL_EINVAL, "not durable");
    /* with a sync in flight: still only what a completed sync wrote */
    assert_int_equal(wal_sync_begin(w, &err), WAL_OK);
    assert_int_equal(wt_append(w, 31, 40, 1, &err), WAL_OK);
    check_read(w, 1, 20, UINT64_MAX, 1000);
    assert_int_equal(wal_sync_do(w), WAL_OK);
    check_read(w, 1, 20, UINT64_MAX, 1000);
    expect_read_error(w, 21, WAL_EINVAL, "not durable");
    assert_int_equal(wal_sync_end(w, NULL, &err), WAL_OK);
    check_read(w, 1, 30, UINT64_MAX, 1000);
    expect_read_error(w, 31, WAL_EINVAL, "not durable");
    /* a truncation buffered during the flight hides what it rewrites */
    assert_int_equal(wal_sync_begin(w, &err), WAL_OK);
    assert_int_equal(wt_append(w, 25, 26, 2, &err), WAL_OK);
    check_read(w, 1, 24, UINT64_MAX, 1000);
    assert_int_equal(wal_sync_do(w), WAL_OK);
    assert_int_equal(wal_sync_end(w, NULL, &err), WAL_OK);
    check_read(w, 1, 24, UINT64_MAX, 1000); /* 31..40 durable, but 25.. is rewritten */
    expect_read_error(w, 25, WAL_EINVAL, "not durable");
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    model_set(25, 26, 2);
    check_read(w, 1, 26, UINT64_MAX, 1000);
    expect_read_error(w, 27, WAL_EINVAL, "not durable");
    wal_close(w);
}

static void test_read_install_snapshot(void **state)
{
    (void)state;
    cord_error err;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    assert_int_equal(wt_append(w, 1, 20, 1, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    model_set(1, 20, 1);
    assert_int_equal(wal_install_snapshot(w, 15, 3, &err), WAL_OK);
    expect_read_error(w, 10, WAL_EINVAL, "compacted");
    expect_read_error(w, 16, WAL_EINVAL, "not durable"); /* 16..20 of term 1 are gone */
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    expect_read_error(w, 16, WAL_EINVAL, "not durable");
    assert_int_equal(wt_append(w, 16, 18, 3, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    model_set(16, 18, 3);
    check_read(w, 16, 18, UINT64_MAX, 1000);
    expect_read_error(w, 19, WAL_EINVAL, "not durable");
    /* far beyond the log */
    assert_int_equal(wal_install_snapshot(w, 1000, 5, &err), WAL_OK);
    assert_int_equal(wt_append(w, 1001, 1010, 5, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    model_set(1001, 1010, 5);
    expect_read_error(w, 18, WAL_EINVAL, "compacted");
    check_read(w, 1001, 1010, UINT64_MAX, 1000);
    wal_close(w);
    w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    expect_read_error(w, 1000, WAL_EINVAL, "compacted");
    check_read(w, 1001, 1010, UINT64_MAX, 1000);
    check_read(w, 1005, 1010, 10, 3);
    wal_close(w);
}

static void test_read_after_release_and_reopen(void **state)
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
    model_set(1, 500, 1);
    uint64_t segs = wal_segment_count(w);
    assert_int_equal(wal_mark_snapshot(w, 300, 1, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    uint64_t released = 0;
    assert_int_equal(wal_release_to(w, 301, &released, &err), WAL_OK);
    assert_true(released > 0);
    assert_int_equal(wal_segment_count(w), segs - released);
    expect_read_error(w, 300, WAL_EINVAL, "compacted");
    check_read(w, 301, 500, UINT64_MAX, 1000);
    check_read(w, 450, 500, 300, 1000);
    /* appends after the release land in new segments, still readable */
    assert_int_equal(wt_append(w, 501, 700, 2, &err), WAL_OK);
    assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    model_set(501, 700, 2);
    check_read(w, 301, 700, UINT64_MAX, 10000);
    wal_close(w);
    /* positions rebuilt by wal_open (without replay), and after replay */
    w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    check_read(w, 301, 700, UINT64_MAX, 10000);
    check_read(w, 499, 700, 1000, 10000);
    wt_log log;
    assert_int_equal(wt_replay(w, &log, &err), WAL_OK);
    check_read(w, 301, 700, UINT64_MAX, 10000);
    expect_read_error(w, 701, WAL_EINVAL, "not durable");
    wal_close(w);
}

static void test_read_damaged_record(void **state)
{
    (void)state;
    cord_error err;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    for (uint64_t i = 1; i <= 200; i += 10) {
        assert_int_equal(wt_append(w, i, i + 9, 1, &err), WAL_OK);
        assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
    }
    model_set(1, 200, 1);
    assert_true(wal_segment_count(w) >= 2);
    char path[1400];
    assert_true(tu_nth_with_suffix(tu_tmp, ".wal", 0, path, sizeof path));
    uint64_t offs[64], sizes[64];
    size_t nrec = wt_records(path, offs, sizes, 64);
    assert_true(nrec > 8);
    /* record 0 is the segment header, record k entry k: damage entry 5's data */
    tu_flip_bit(path, offs[5] + 8 + 17 + 1, 3);
    char want[64];
    snprintf(want, sizeof want, "offset %llu", (unsigned long long)offs[5]);
    const char *name = strrchr(path, '/') + 1;
    raft_entry *ents = NULL;
    uint32_t n = 0;
    assert_int_equal(wal_read(w, 1, UINT64_MAX, 100, &ents, &n, &err), WAL_ECORRUPT);
    assert_null(ents);
    assert_non_null(strstr(err.msg, name));
    assert_non_null(strstr(err.msg, want));
    assert_non_null(strstr(err.msg, "checksum"));
    expect_read_error(w, 5, WAL_ECORRUPT, name);
    check_read(w, 1, 4, UINT64_MAX, 4); /* before the damage */
    check_read(w, 6, 200, UINT64_MAX, 1000);
    /* a valid record where another entry is expected: overwrite entry l with a copy of k */
    tu_flip_bit(path, offs[5] + 8 + 17 + 1, 3);
    check_read(w, 1, 200, UINT64_MAX, 1000);
    size_t k = 0, l = 0;
    for (size_t a = 1; a < nrec && l == 0; a++) {
        for (size_t b = a + 1; b < nrec; b++) {
            if (sizes[a] == sizes[b]) {
                k = a;
                l = b;
                break;
            }
        }
    }
    assert_true(l > 0);
    size_t len;
    uint8_t *buf = tu_read_file(path, &len);
    memcpy(buf + offs[l], buf + offs[k], sizes[k]);
    tu_write_file(path, buf, len);
    free(buf);
    expect_read_error(w, l, WAL_ECORRUPT, "another index");
    expect_read_error(w, 1, WAL_ECORRUPT, name);
    check_read(w, 1, l - 1, UINT64_MAX, (uint32_t)(l - 1));
    check_read(w, l + 1, 200, UINT64_MAX, 1000);
    /* a record that is not an entry: entry 2 replaced by zeros (what a hole reads as) */
    tu_fill_range(path, offs[2], sizes[2], 0);
    expect_read_error(w, 2, WAL_ECORRUPT, "checksum");
    wal_close(w);
}

static void *sync_worker(void *p)
{
    (void)wal_sync_do(p);
    return NULL;
}

/* wal_sync_do on another thread (segments rolling) while the owner reads. */
static void test_read_during_worker_sync(void **state)
{
    (void)state;
    cord_error err;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    uint64_t durable = 0;
    for (uint64_t round = 0; round < 40; round++) {
        uint64_t first = durable + 1;
        assert_int_equal(wt_append(w, first, first + 29, 1, &err), WAL_OK);
        assert_int_equal(wal_sync_begin(w, &err), WAL_OK);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, sync_worker, w), 0);
        for (int k = 0; k < 5; k++) {
            if (durable > 0) {
                check_read(w, 1 + (uint64_t)k * durable / 5, durable, UINT64_MAX, UINT32_MAX);
            } else {
                expect_read_error(w, 1, WAL_EINVAL, "not durable");
            }
        }
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(wal_sync_end(w, NULL, &err), WAL_OK);
        model_set(first, first + 29, 1);
        durable = first + 29;
        check_read(w, 1, durable, UINT64_MAX, UINT32_MAX);
    }
    assert_true(wal_segment_count(w) >= 10);
    wal_close(w);
}

/* ---------- randomized: appends, truncations, markers, installs, syncs, reopen ---------- */

static uint64_t rng_state = 88172645463325252ull;

static uint64_t rnd(uint64_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return n == 0 ? 0 : rng_state % n;
}

struct model {
    uint64_t snap, last;   /* logical */
    uint64_t dsnap, dlast; /* durable */
    uint64_t floor;        /* lowest index rewritten since the last sync */
    uint64_t terms[MODEL_MAX];
    uint64_t dterms[MODEL_MAX];
    uint64_t term;
};

static struct model m;

static void random_reads(wal *w)
{
    uint64_t last = m.dlast < m.floor - 1 ? m.dlast : m.floor - 1;
    memcpy(model_terms, m.dterms, sizeof model_terms);
    for (int k = 0; k < 6; k++) {
        if (m.snap >= last) {
            break;
        }
        uint64_t from = m.snap + 1 + rnd(last - m.snap);
        uint64_t max_bytes = rnd(4) == 0 ? UINT64_MAX : rnd(2000);
        uint32_t max_n = rnd(4) == 0 ? UINT32_MAX : 1 + (uint32_t)rnd(60);
        check_read(w, from, last, max_bytes, max_n);
    }
    if (m.snap > 0) {
        expect_read_error(w, 1 + rnd(m.snap), WAL_EINVAL, "compacted");
    }
    uint64_t beyond = (last > m.snap ? last : m.snap) + 1;
    expect_read_error(w, beyond + rnd(3), WAL_EINVAL, NULL);
}

static void test_read_random(void **state)
{
    (void)state;
    cord_error err;
    memset(&m, 0, sizeof m);
    m.floor = UINT64_MAX;
    m.term = 1;
    wal *w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
    for (int step = 0; step < 3000; step++) {
        uint64_t op = rnd(100);
        if (op < 45) { /* append, sometimes rewriting a suffix */
            uint64_t start = m.last + 1;
            if (rnd(4) == 0 && m.last > m.snap) {
                uint64_t back = 1 + rnd(m.last - m.snap < 15 ? m.last - m.snap : 15);
                start = m.last + 1 - back;
                m.term++;
            }
            uint64_t count = 1 + rnd(12);
            if (start + count >= MODEL_MAX - 100) {
                continue;
            }
            assert_int_equal(wt_append(w, start, start + count - 1, m.term, &err), WAL_OK);
            if (start <= m.last && start < m.floor) {
                m.floor = start;
            }
            for (uint64_t i = start; i < start + count; i++) {
                m.terms[i] = m.term;
            }
            m.last = start + count - 1;
        } else if (op < 55) {
            raft_hard_state hs = {.term = m.term, .vote = rnd(3), .commit = m.snap};
            assert_int_equal(wal_set_hard_state(w, &hs, &err), WAL_OK);
        } else if (op < 62 && m.last > m.snap) { /* compaction */
            uint64_t idx = m.snap + 1 + rnd(m.last - m.snap);
            assert_int_equal(wal_mark_snapshot(w, idx, m.terms[idx], &err), WAL_OK);
            m.snap = idx;
        } else if (op < 64) { /* snapshot from a leader */
            uint64_t idx = m.snap + rnd(m.last - m.snap + 20);
            if (idx >= MODEL_MAX - 200) {
                continue;
            }
            m.term++;
            assert_int_equal(wal_install_snapshot(w, idx, m.term, &err), WAL_OK);
            if (idx + 1 < m.floor) {
                m.floor = idx + 1;
            }
            m.snap = idx;
            m.last = idx;
        } else if (op < 90) {
            assert_int_equal(wal_sync(w, NULL, &err), WAL_OK);
            m.dsnap = m.snap;
            m.dlast = m.last;
            m.floor = UINT64_MAX;
            memcpy(m.dterms, m.terms, sizeof m.terms);
            if (rnd(5) == 0) {
                uint64_t released = 0;
                assert_int_equal(wal_release_to(w, m.dsnap + 1, &released, &err), WAL_OK);
            }
            if (rnd(12) == 0) {
                wal_close(w);
                w = wt_open(tu_tmp, SMALL_SEGMENT, NULL);
                wal_state st;
                wal_state_get(w, &st);
                assert_int_equal(st.snapshot_index, m.snap);
                assert_int_equal(st.last_index, m.last);
            }
        }
        random_reads(w);
    }
    wal_close(w);
}

int main(void)
{
    /* clang-format off: one test per line */
    const struct CMUnitTest tests[] = {
        TU_TMP_TEST(test_read_across_segments),  TU_TMP_TEST(test_read_truncation),
        TU_TMP_TEST(test_read_snapshot_marker),  TU_TMP_TEST(test_read_durable_bound_and_in_flight),
        TU_TMP_TEST(test_read_install_snapshot), TU_TMP_TEST(test_read_after_release_and_reopen),
        TU_TMP_TEST(test_read_damaged_record),   TU_TMP_TEST(test_read_during_worker_sync),
        TU_TMP_TEST(test_read_random),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
