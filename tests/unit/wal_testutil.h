/*
 * wal_testutil.h: shared helpers for the WAL tests: deterministic entry
 * contents, a replay collector that checks them, and a record walker that
 * finds record offsets in a segment file (mirrors the format in wal.h).
 */
#ifndef CORD_TESTS_WAL_TESTUTIL_H
#define CORD_TESTS_WAL_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common_testutil.h"
#include "wal/wal.h"

#define WT_DATA_MAX 512

/* Data of entry (index, term): length and bytes follow from both. */
static inline uint32_t wt_len(uint64_t index, uint64_t term)
{
    return (uint32_t)((index * 37 + term * 11) % 120);
}

static inline void wt_fill(uint8_t *buf, uint64_t index, uint64_t term)
{
    uint32_t n = wt_len(index, term);
    for (uint32_t i = 0; i < n; i++) {
        buf[i] = (uint8_t)(index * 131 + term * 17 + i * 7);
    }
}

static inline int wt_check(const raft_entry *e)
{
    if (e->len != wt_len(e->index, e->term) || e->type != (uint8_t)(e->index % 2)) {
        return 0;
    }
    for (uint32_t i = 0; i < e->len; i++) {
        if (e->data[i] != (uint8_t)(e->index * 131 + e->term * 17 + i * 7)) {
            return 0;
        }
    }
    return 1;
}

/* Append entries [from, to] at `term`. */
static inline int wt_append(wal *w, uint64_t from, uint64_t to, uint64_t term, cord_error *err)
{
    for (uint64_t i = from; i <= to; i++) {
        uint8_t buf[WT_DATA_MAX];
        wt_fill(buf, i, term);
        raft_entry e = {.term = term,
                        .index = i,
                        .type = (uint8_t)(i % 2),
                        .len = wt_len(i, term),
                        .data = buf};
        int rc = wal_append(w, &e, 1, err);
        if (rc != WAL_OK) {
            return rc;
        }
    }
    return WAL_OK;
}

/* What replay delivered: the term of each index, and whether contents checked out. */
typedef struct wt_log {
    uint64_t first;
    uint64_t count;
    uint64_t terms[4096];
    int bad;
} wt_log;

static inline int wt_collect_fn(void *ctx, const raft_entry *e)
{
    wt_log *log = ctx;
    if (log->count == 0) {
        log->first = e->index;
    }
    if (log->count >= 4096 || e->index != log->first + log->count || !wt_check(e)) {
        log->bad = 1;
        return 1;
    }
    log->terms[log->count++] = e->term;
    return 0;
}

static inline int wt_replay(wal *w, wt_log *log, cord_error *err)
{
    memset(log, 0, sizeof *log);
    return wal_replay(w, wt_collect_fn, log, err);
}

/* Open, asserting success. */
static inline wal *wt_open(const char *dir, uint64_t segment_bytes, wal_open_info *info)
{
    wal *w = NULL;
    cord_error err;
    wal_options o = {.segment_bytes = segment_bytes};
    int rc = wal_open(dir, &o, &w, info, &err);
    if (rc != WAL_OK) {
        print_error("wal_open: %s: %s\n", wal_status_name(rc), err.msg);
    }
    assert_int_equal(rc, WAL_OK);
    return w;
}

/* Offsets and sizes of the valid records of a segment file (up to cap). */
static inline size_t wt_records(const char *path, uint64_t *offs, uint64_t *sizes, size_t cap)
{
    size_t len;
    uint8_t *buf = tu_read_file(path, &len);
    size_t n = 0;
    uint64_t off = 0;
    while (off + 8 <= len && n < cap) {
        uint32_t word = (uint32_t)buf[off + 4] | (uint32_t)buf[off + 5] << 8 |
                        (uint32_t)buf[off + 6] << 16 | (uint32_t)buf[off + 7] << 24;
        if (word == 0) {
            break;
        }
        uint64_t total = 8 + (((word & 0xffffffu) + 7) & ~7ull);
        offs[n] = off;
        sizes[n] = total;
        n++;
        off += total;
    }
    free(buf);
    return n;
}

#endif
