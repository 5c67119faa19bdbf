/*
 * wal.c: segmented write-ahead log with group commit. The format and the
 * rules are in wal.h; this file keeps to the same order: encoding, reading
 * a segment, opening (pass 1: check and repair), replay (pass 2), appends,
 * sync, release.
 */
#define _GNU_SOURCE
#include "wal/wal.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/crc32c.h"
#include "common/failpoint.h"
#include "common/fileio.h"

#define WAL_MAGIC   0x316c617764726f63ull /* "cordwal1" as little-endian bytes */
#define WAL_VERSION 1u

enum wal_record_type {
    REC_SEGMENT = 1,
    REC_HARD_STATE = 2,
    REC_ENTRY = 3,
    REC_SNAPSHOT = 4,
};

#define REC_HEADER_BYTES     8u
#define REC_PAYLOAD_MAX      ((1u << 24) - 1)
#define REC_TOTAL_MAX        (REC_HEADER_BYTES + ((REC_PAYLOAD_MAX + 7u) & ~7u))
#define SEGMENT_PAYLOAD      72u
#define HARD_STATE_PAYLOAD   24u
#define ENTRY_FIXED          17u
#define SNAPSHOT_PAYLOAD     20u
#define SNAPSHOT_INSTALL     1u
#define SEGMENT_HEADER_TOTAL (REC_HEADER_BYTES + SEGMENT_PAYLOAD)
#define READ_WINDOW_BYTES    (1u << 20)
#define SEGMENT_NAME_LEN     37 /* 16 hex + '-' + 16 hex + ".wal" */

_Static_assert(WAL_ENTRY_DATA_MAX + ENTRY_FIXED <= REC_PAYLOAD_MAX, "entry must fit a record");

struct wal_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

struct wal_segment {
    uint64_t seq;
    uint64_t first_index;     /* from the name (and the header) */
    uint64_t max_entry_index; /* largest entry index written in it; 0 = none */
    uint64_t end_off;         /* end of valid data (at open; grows for the tail) */
};

/* "A record at (seq, off) truncated the log to below `target`." */
struct wal_rewind {
    uint64_t seq;
    uint64_t off;
    uint64_t target;
};

/* Where the latest record of one entry is: segment (low 32 bits of its seq;
 * the live segments are fewer than 2^32 and consecutive) and byte offset. 12 bytes. */
struct wal_pos {
    uint32_t seq;
    uint32_t off_lo;
    uint32_t off_hi;
};

/* Owner side's copy of a segment's name, for wal_read (w->segs belongs to the sync side). */
struct wal_rseg {
    uint64_t seq;
    uint64_t first_index;
};

struct wal_log_state {
    raft_hard_state hs;
    uint64_t snap_index;
    uint64_t snap_term;
    uint64_t last_index;
    uint64_t last_term;
};

struct wal {
    char dir[WAL_DIR_MAX + 1];
    int dir_fd; /* flock()ed; fsynced after creates, renames, unlinks */
    uint64_t segment_bytes;
    uint64_t buffer_limit;

    /* Sync side: owned by wal_sync_do while a sync is in flight. */
    struct wal_segment *segs;
    size_t nsegs;
    size_t segs_cap;
    int tail_fd;
    uint64_t tail_off;
    struct wal_log_state durable; /* state of everything written and synced */

    /* Owner side. */
    struct wal_log_state logical;
    struct wal_buf fill;
    uint64_t fill_max_entry;
    int failed;
    cord_error fail_err;
    int replay_allowed;
    struct wal_rewind *rewinds; /* from pass 1, for wal_replay */
    size_t nrewinds;
    size_t rewinds_cap;

    /* Positions of the durable entries (wal_read): entry pos_first + k is at
     * pos[pos_head + k] for k < pos_n; they are (durable snapshot, durable last]. */
    struct wal_pos *pos;
    size_t pos_head;
    size_t pos_n;
    size_t pos_cap;
    uint64_t pos_first;
    uint64_t fill_entries;   /* entry records in fill (positions not yet known) */
    uint64_t flight_entries; /* entry records in flight */
    uint64_t fill_floor;     /* lowest index rewritten by fill (UINT64_MAX: none) */
    uint64_t flight_floor;   /* the same for flight */
    struct wal_rseg *rsegs;  /* the segments, mirrored at open, sync_end, release */
    size_t nrsegs;
    size_t rsegs_cap;
    uint8_t *rbuf; /* wal_read's read window */
    size_t rbuf_cap;

    /* Hand-over between begin, do and end. */
    int in_flight;
    struct wal_buf flight;
    uint64_t flight_max_entry;
    struct wal_log_state flight_state;
    int flight_rc;
    cord_error flight_err;
    uint64_t flight_seq; /* segment the batch went to (set by wal_sync_do) */
    uint64_t flight_off; /* and its offset there */
};

/* ---------- encoding ---------- */

static uint64_t round8(uint64_t n)
{
    return (n + 7u) & ~(uint64_t)7u;
}

static uint64_t record_total(uint32_t payload_len)
{
    return REC_HEADER_BYTES + round8(payload_len);
}

/* Write one record at `out` (record_total(fixed_len + data_len) bytes). */
static void record_encode(uint8_t *out, uint8_t type, const uint8_t *fixed, uint32_t fixed_len,
                          const uint8_t *data, uint32_t data_len)
{
    uint32_t payload_len = fixed_len + data_len;
    assert(payload_len <= REC_PAYLOAD_MAX);
    uint64_t total = record_total(payload_len);
    bytes_put32(out + 4, ((uint32_t)type << 24) | payload_len);
    memcpy(out + REC_HEADER_BYTES, fixed, fixed_len);
    if (data_len > 0) {
        memcpy(out + REC_HEADER_BYTES + fixed_len, data, data_len);
    }
    memset(out + REC_HEADER_BYTES + payload_len, 0, total - REC_HEADER_BYTES - payload_len);
    bytes_put32(out, crc32c(out + 4, total - 4));
}

static void encode_segment_header(uint8_t *out, uint64_t seq, uint64_t first_index,
                                  const struct wal_log_state *st)
{
    uint8_t p[SEGMENT_PAYLOAD];
    bytes_put64(p, WAL_MAGIC);
    bytes_put32(p + 8, WAL_VERSION);
    bytes_put32(p + 12, 0);
    bytes_put64(p + 16, seq);
    bytes_put64(p + 24, first_index);
    bytes_put64(p + 32, st->hs.term);
    bytes_put64(p + 40, st->hs.vote);
    bytes_put64(p + 48, st->hs.commit);
    bytes_put64(p + 56, st->snap_index);
    bytes_put64(p + 64, st->snap_term);
    record_encode(out, REC_SEGMENT, p, sizeof p, NULL, 0);
}

static int buf_reserve(struct wal_buf *b, uint64_t extra, uint64_t limit, cord_error *err)
{
    if (b->len + extra > limit) {
        return cord_error_set(err, WAL_ELIMIT, 0,
                              "wal: %" PRIu64 " bytes buffered and not synced (limit %" PRIu64
                              "): sync first",
                              (uint64_t)(b->len + extra), limit);
    }
    if (b->len + extra <= b->cap) {
        return WAL_OK;
    }
    size_t cap = b->cap > 0 ? b->cap : 64 * 1024;
    while (cap < b->len + extra) {
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL) {
        return cord_error_set(err, WAL_ENOMEM, ENOMEM, "wal: buffer of %zu bytes", cap);
    }
    b->data = p;
    b->cap = cap;
    return WAL_OK;
}

/* ---------- naming ---------- */

static int segment_path(const wal *w, uint64_t seq, uint64_t first, const char *suffix, char *out,
                        size_t cap)
{
    int n =
        snprintf(out, cap, "%s/%016" PRIx64 "-%016" PRIx64 ".wal%s", w->dir, seq, first, suffix);
    return (n < 0 || (size_t)n >= cap) ? ENAMETOOLONG : 0;
}

static int parse_hex16(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d;
        if (c >= '0' && c <= '9') {
            d = c - '0';
        } else if (c >= 'a' && c <= 'f') {
            d = c - 'a' + 10;
        } else {
            return -1;
        }
        v = (v << 4) | (uint64_t)d;
    }
    *out = v;
    return 0;
}

static int parse_segment_name(const char *name, uint64_t *seq, uint64_t *first)
{
    if (strlen(name) != SEGMENT_NAME_LEN || name[16] != '-' || strcmp(name + 33, ".wal") != 0) {
        return -1;
    }
    if (parse_hex16(name, seq) != 0 || parse_hex16(name + 17, first) != 0) {
        return -1;
    }
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ---------- reading one segment ---------- */

struct seg_reader {
    int fd;
    uint64_t size;
    uint8_t *buf;
    size_t cap;
    uint64_t win_off;
    size_t win_len;
};

enum { RD_OK = 0, RD_EOF = 1, RD_ERR = -1 };

/* Make [off, off+need) readable at r->buf + (off - r->win_off). */
static int rd_ensure(struct seg_reader *r, uint64_t off, size_t need, int *sys_errno)
{
    if (off + need > r->size) {
        return RD_EOF;
    }
    if (off >= r->win_off && off + need <= r->win_off + r->win_len) {
        return RD_OK;
    }
    size_t want = need > READ_WINDOW_BYTES ? need : READ_WINDOW_BYTES;
    if (off + want > r->size) {
        want = (size_t)(r->size - off);
    }
    if (want > r->cap) {
        uint8_t *p = realloc(r->buf, want);
        if (p == NULL) {
            *sys_errno = ENOMEM;
            return RD_ERR;
        }
        r->buf = p;
        r->cap = want;
    }
    size_t got = 0;
    int e = fileio_pread_full(r->fd, r->buf, want, off, &got);
    if (e != 0) {
        *sys_errno = e;
        return RD_ERR;
    }
    r->win_off = off;
    r->win_len = got;
    if (got < need) {
        *sys_errno = EIO; /* the file shrank under us */
        return RD_ERR;
    }
    return RD_OK;
}

static const uint8_t *rd_ptr(const struct seg_reader *r, uint64_t off)
{
    return r->buf + (off - r->win_off);
}

enum rec_status { REC_VALID, REC_ZERO, REC_BAD, REC_IOERR };

struct rec {
    uint8_t type;
    uint32_t len;
    uint64_t total;
    const uint8_t *payload; /* valid until the next read */
};

static enum rec_status rec_read(struct seg_reader *r, uint64_t off, struct rec *rec,
                                const char **why, int *sys_errno)
{
    int rc = rd_ensure(r, off, REC_HEADER_BYTES, sys_errno);
    if (rc == RD_ERR) {
        return REC_IOERR;
    }
    if (rc == RD_EOF) {
        *why = "record header cut short by the end of the file";
        return REC_BAD;
    }
    const uint8_t *p = rd_ptr(r, off);
    uint32_t crc = bytes_get32(p);
    uint32_t word = bytes_get32(p + 4);
    if (crc == 0 && word == 0) {
        *why = "zero-filled record header";
        return REC_ZERO;
    }
    uint8_t type = (uint8_t)(word >> 24);
    uint32_t len = word & 0xffffffu;
    if (type < REC_SEGMENT || type > REC_SNAPSHOT) {
        *why = "unknown record type";
        return REC_BAD;
    }
    uint64_t total = record_total(len);
    rc = rd_ensure(r, off, (size_t)total, sys_errno);
    if (rc == RD_ERR) {
        return REC_IOERR;
    }
    if (rc == RD_EOF) {
        *why = "record runs past the end of the file";
        return REC_BAD;
    }
    p = rd_ptr(r, off);
    if (crc32c(p + 4, (size_t)total - 4) != crc) {
        *why = "checksum mismatch";
        return REC_BAD;
    }
    rec->type = type;
    rec->len = len;
    rec->total = total;
    rec->payload = p + REC_HEADER_BYTES;
    return REC_VALID;
}

/*
 * Look for any valid record at an 8-byte aligned offset in [from, size).
 * Returns 1 (found, *found_off), 0 (none), -1 (I/O error). *nonzero is set
 * if any non-zero byte was seen.
 */
static int scan_for_valid(struct seg_reader *r, uint64_t from, uint64_t *found_off, int *nonzero,
                          int *sys_errno)
{
    if (r->size % 8 != 0) {
        *nonzero = 1;
    }
    for (uint64_t off = from; off + REC_HEADER_BYTES <= r->size; off += 8) {
        int rc = rd_ensure(r, off, REC_HEADER_BYTES, sys_errno);
        if (rc == RD_ERR) {
            return -1;
        }
        const uint8_t *p = rd_ptr(r, off);
        uint32_t crc = bytes_get32(p);
        uint32_t word = bytes_get32(p + 4);
        if (crc == 0 && word == 0) {
            continue;
        }
        *nonzero = 1;
        uint8_t type = (uint8_t)(word >> 24);
        if (type < REC_SEGMENT || type > REC_SNAPSHOT) {
            continue;
        }
        uint64_t total = record_total(word & 0xffffffu);
        rc = rd_ensure(r, off, (size_t)total, sys_errno);
        if (rc == RD_ERR) {
            return -1;
        }
        if (rc == RD_EOF) {
            continue;
        }
        p = rd_ptr(r, off);
        if (crc32c(p + 4, (size_t)total - 4) == crc) {
            *found_off = off;
            return 1;
        }
    }
    return 0;
}

/* ---------- entry positions (for wal_read) ---------- */

/* Make room for `extra` more positions after the current ones. */
static int pos_reserve(wal *w, uint64_t extra, cord_error *err)
{
    uint64_t need = (uint64_t)w->pos_n + extra;
    if (w->pos_head + need <= w->pos_cap) {
        return WAL_OK;
    }
    if (w->pos_head > 0) {
        memmove(w->pos, w->pos + w->pos_head, w->pos_n * sizeof w->pos[0]);
        w->pos_head = 0;
        if (need <= w->pos_cap) {
            return WAL_OK;
        }
    }
    uint64_t cap = w->pos_cap > 0 ? w->pos_cap : 1024;
    while (cap < need) {
        cap *= 2;
    }
    if (cap > SIZE_MAX / sizeof w->pos[0]) {
        return cord_error_set(err, WAL_ENOMEM, ENOMEM, "wal: position table of %" PRIu64 " entries",
                              cap);
    }
    struct wal_pos *p = realloc(w->pos, (size_t)cap * sizeof *p);
    if (p == NULL) {
        return cord_error_set(err, WAL_ENOMEM, ENOMEM, "wal: position table of %" PRIu64 " entries",
                              cap);
    }
    w->pos = p;
    w->pos_cap = (size_t)cap;
    return WAL_OK;
}

/* An entry record for `index` at (seq, off): it replaces entries >= index. */
static int pos_entry(wal *w, uint64_t index, uint64_t seq, uint64_t off, cord_error *err)
{
    if (index < w->pos_first) {
        w->pos_head = 0;
        w->pos_n = 0;
        w->pos_first = index;
    } else if (index - w->pos_first < w->pos_n) {
        w->pos_n = (size_t)(index - w->pos_first);
    }
    assert(index == w->pos_first + w->pos_n);
    int rc = pos_reserve(w, 1, err);
    if (rc != WAL_OK) {
        return rc;
    }
    w->pos[w->pos_head + w->pos_n++] = (struct wal_pos){
        .seq = (uint32_t)seq, .off_lo = (uint32_t)off, .off_hi = (uint32_t)(off >> 32)};
    return WAL_OK;
}

/* A snapshot marker at `index`: entries <= index are gone (all of them if installed). */
static void pos_marker(wal *w, uint64_t index, int install)
{
    if (!install && index + 1 <= w->pos_first) {
        return;
    }
    if (install || index + 1 - w->pos_first >= w->pos_n) {
        w->pos_head = 0;
        w->pos_n = 0;
    } else {
        size_t k = (size_t)(index + 1 - w->pos_first);
        w->pos_head += k;
        w->pos_n -= k;
    }
    w->pos_first = index + 1;
}

static int rsegs_reserve(wal *w, size_t n, cord_error *err)
{
    if (n <= w->rsegs_cap) {
        return WAL_OK;
    }
    size_t cap = w->rsegs_cap > 0 ? w->rsegs_cap * 2 : 16;
    while (cap < n) {
        cap *= 2;
    }
    struct wal_rseg *p = realloc(w->rsegs, cap * sizeof *p);
    if (p == NULL) {
        return cord_error_set(err, WAL_ENOMEM, ENOMEM, "wal: segment names");
    }
    w->rsegs = p;
    w->rsegs_cap = cap;
    return WAL_OK;
}

/* Copy the sync side's segments newer than the mirror's last (no sync in flight). */
static int rsegs_mirror(wal *w, cord_error *err)
{
    for (size_t i = 0; i < w->nsegs; i++) {
        if (w->nrsegs > 0 && w->segs[i].seq <= w->rsegs[w->nrsegs - 1].seq) {
            continue;
        }
        int rc = rsegs_reserve(w, w->nrsegs + 1, err);
        if (rc != WAL_OK) {
            return rc;
        }
        w->rsegs[w->nrsegs++] =
            (struct wal_rseg){.seq = w->segs[i].seq, .first_index = w->segs[i].first_index};
    }
    return WAL_OK;
}

/* Before buffering anything: room for the positions of every entry not yet
 * synced plus `n`, and for the segment names up to two syncs may add (the
 * one in flight and the next), so that wal_sync_end never allocates. */
static int read_reserve(wal *w, uint64_t n, cord_error *err)
{
    int rc = pos_reserve(w, w->fill_entries + w->flight_entries + n, err);
    if (rc != WAL_OK) {
        return rc;
    }
    return rsegs_reserve(w, w->nrsegs + 2, err);
}

/* ---------- pass 1: check every record, build the state ---------- */

struct scan {
    struct wal_log_state st;
    uint64_t known_from; /* entries [known_from, last_index] are all in the retained segments */
};

static int rewind_push(wal *w, uint64_t seq, uint64_t off, uint64_t target, cord_error *err)
{
    /* Keep targets strictly increasing: an earlier rewind to a higher index
     * is implied by a later one to a lower index. */
    while (w->nrewinds > 0 && w->rewinds[w->nrewinds - 1].target >= target) {
        w->nrewinds--;
    }
    if (w->nrewinds == w->rewinds_cap) {
        if (w->rewinds_cap >= WAL_REWINDS_MAX) {
            return cord_error_set(err, WAL_ELIMIT, 0, "wal: more than %u log truncations to replay",
                                  WAL_REWINDS_MAX);
        }
        size_t cap = w->rewinds_cap > 0 ? w->rewinds_cap * 2 : 16;
        struct wal_rewind *p = realloc(w->rewinds, cap * sizeof *p);
        if (p == NULL) {
            return cord_error_set(err, WAL_ENOMEM, ENOMEM, "wal: rewind table");
        }
        w->rewinds = p;
        w->rewinds_cap = cap;
    }
    w->rewinds[w->nrewinds++] = (struct wal_rewind){.seq = seq, .off = off, .target = target};
    return WAL_OK;
}

static int scan_record(wal *w, struct scan *sc, size_t ordinal, struct wal_segment *seg,
                       const char *path, uint64_t off, const struct rec *rec, cord_error *err)
{
    struct wal_log_state *st = &sc->st;
    const uint8_t *p = rec->payload;
    if ((off == 0) != (rec->type == REC_SEGMENT)) {
        return cord_error_set(err, WAL_ECORRUPT, 0, "wal: %s: offset %" PRIu64 ": %s", path, off,
                              off == 0 ? "segment does not start with a segment header"
                                       : "segment header in the middle of a segment");
    }
    switch (rec->type) {
    case REC_SEGMENT: {
        if (rec->len != SEGMENT_PAYLOAD || bytes_get64(p) != WAL_MAGIC ||
            bytes_get32(p + 8) != WAL_VERSION) {
            return cord_error_set(err, WAL_ECORRUPT, 0,
                                  "wal: %s: offset 0: bad segment header (magic/version/length)",
                                  path);
        }
        uint64_t seq = bytes_get64(p + 16), first = bytes_get64(p + 24);
        if (seq != seg->seq || first != seg->first_index) {
            return cord_error_set(err, WAL_ECORRUPT, 0,
                                  "wal: %s: offset 0: header says segment %" PRIu64
                                  " first index %" PRIu64 ", the file name disagrees",
                                  path, seq, first);
        }
        struct wal_log_state h = {
            .hs = {.term = bytes_get64(p + 32),
                   .vote = bytes_get64(p + 40),
                   .commit = bytes_get64(p + 48)},
            .snap_index = bytes_get64(p + 56),
            .snap_term = bytes_get64(p + 64),
        };
        if (first == 0 || h.snap_index > first - 1) {
            return cord_error_set(err, WAL_ECORRUPT, 0,
                                  "wal: %s: offset 0: snapshot marker %" PRIu64
                                  " beyond first index %" PRIu64,
                                  path, h.snap_index, first);
        }
        if (ordinal == 0) {
            *st = h;
            st->last_index = first - 1;
            st->last_term = st->last_index == st->snap_index ? st->snap_term : 0;
            sc->known_from = first;
            w->pos_head = 0;
            w->pos_n = 0;
            w->pos_first = first;
        } else if (first != st->last_index + 1 || h.hs.term != st->hs.term ||
                   h.hs.vote != st->hs.vote || h.hs.commit != st->hs.commit ||
                   h.snap_index != st->snap_index || h.snap_term != st->snap_term) {
            return cord_error_set(err, WAL_ECORRUPT, 0,
                                  "wal: %s: offset 0: segment header (first index %" PRIu64
                                  ") disagrees with the previous segments (last index %" PRIu64 ")",
                                  path, first, st->last_index);
        }
        return WAL_OK;
    }
    case REC_HARD_STATE:
        if (rec->len != HARD_STATE_PAYLOAD) {
            break;
        }
        st->hs.term = bytes_get64(p);
        st->hs.vote = bytes_get64(p + 8);
        st->hs.commit = bytes_get64(p + 16);
        return WAL_OK;
    case REC_ENTRY: {
        if (rec->len < ENTRY_FIXED) {
            break;
        }
        uint64_t index = bytes_get64(p), term = bytes_get64(p + 8);
        if (index == 0 || index <= st->snap_index || index > st->last_index + 1) {
            return cord_error_set(err, WAL_ECORRUPT, 0,
                                  "wal: %s: offset %" PRIu64 ": entry %" PRIu64
                                  " out of place (log is (%" PRIu64 ", %" PRIu64 "])",
                                  path, off, index, st->snap_index, st->last_index);
        }
        if (index <= st->last_index) {
            int rc = rewind_push(w, seg->seq, off, index, err);
            if (rc != WAL_OK) {
                return rc;
            }
        }
        int prc = pos_entry(w, index, seg->seq, off, err);
        if (prc != WAL_OK) {
            return prc;
        }
        st->last_index = index;
        st->last_term = term;
        if (index < sc->known_from) {
            sc->known_from = index;
        }
        if (index > seg->max_entry_index) {
            seg->max_entry_index = index;
        }
        return WAL_OK;
    }
    case REC_SNAPSHOT: {
        if (rec->len != SNAPSHOT_PAYLOAD || (bytes_get32(p + 16) & ~SNAPSHOT_INSTALL) != 0) {
            break;
        }
        uint64_t index = bytes_get64(p), term = bytes_get64(p + 8);
        int install = (bytes_get32(p + 16) & SNAPSHOT_INSTALL) != 0;
        if (index < st->snap_index || (!install && index > st->last_index)) {
            return cord_error_set(err, WAL_ECORRUPT, 0,
                                  "wal: %s: offset %" PRIu64 ": snapshot marker %" PRIu64
                                  " out of place (log is (%" PRIu64 ", %" PRIu64 "])",
                                  path, off, index, st->snap_index, st->last_index);
        }
        if (install) {
            int rc = rewind_push(w, seg->seq, off, index + 1, err);
            if (rc != WAL_OK) {
                return rc;
            }
            st->last_index = index;
            st->last_term = term;
            sc->known_from = index + 1;
        } else if (index == st->last_index) {
            st->last_term = term;
        }
        pos_marker(w, index, install);
        st->snap_index = index;
        st->snap_term = term;
        return WAL_OK;
    }
    default:
        break;
    }
    return cord_error_set(err, WAL_ECORRUPT, 0,
                          "wal: %s: offset %" PRIu64 ": malformed record (type %u, %" PRIu32
                          " bytes)",
                          path, off, rec->type, rec->len);
}

/* Read one segment; on a torn tail of the last segment set *repair_off. */
static int scan_segment(wal *w, struct scan *sc, size_t ordinal, struct seg_reader *r,
                        int *need_repair, cord_error *err)
{
    struct wal_segment *seg = &w->segs[ordinal];
    int last = ordinal + 1 == w->nsegs;
    char path[FILEIO_PATH_MAX];
    int rc = WAL_OK;
    int e = segment_path(w, seg->seq, seg->first_index, "", path, sizeof path);
    assert(e == 0);
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        return cord_error_set(err, WAL_EIO, errno, "wal: open %s", path);
    }
    struct stat stbuf;
    if (fstat(r->fd, &stbuf) != 0) {
        rc = cord_error_set(err, WAL_EIO, errno, "wal: stat %s", path);
        goto out;
    }
    r->size = (uint64_t)stbuf.st_size;
    r->win_off = 0;
    r->win_len = 0;

    uint64_t off = 0;
    while (off < r->size) {
        struct rec rec;
        const char *why = "";
        int sys_errno = 0;
        enum rec_status s = rec_read(r, off, &rec, &why, &sys_errno);
        if (s == REC_IOERR) {
            rc = cord_error_set(err, WAL_EIO, sys_errno, "wal: read %s at offset %" PRIu64, path,
                                off);
            goto out;
        }
        if (s == REC_VALID) {
            rc = scan_record(w, sc, ordinal, seg, path, off, &rec, err);
            if (rc != WAL_OK) {
                goto out;
            }
            off += rec.total;
            continue;
        }
        /* A zero or bad record: the end of the data, or damage. */
        if (!last || off == 0) {
            rc = cord_error_set(err, WAL_ECORRUPT, 0, "wal: %s: offset %" PRIu64 ": %s (%s)", path,
                                off, why,
                                off == 0 ? "no segment header" : "segment is not the last one");
            goto out;
        }
        int nonzero = s == REC_BAD;
        uint64_t found = 0;
        int f = scan_for_valid(r, off + 8, &found, &nonzero, &sys_errno);
        if (f < 0) {
            rc = cord_error_set(err, WAL_EIO, sys_errno, "wal: read %s", path);
            goto out;
        }
        if (f > 0) {
            rc = cord_error_set(err, WAL_ECORRUPT, 0,
                                "wal: %s: offset %" PRIu64 ": %s, followed by a valid record at "
                                "offset %" PRIu64,
                                path, off, why, found);
            goto out;
        }
        *need_repair = nonzero;
        break;
    }
    seg->end_off = off;
out:
    close(r->fd);
    r->fd = -1;
    return rc;
}

static int segment_cmp(const void *a, const void *b)
{
    const struct wal_segment *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq ? 1 : 0;
}

static int segs_reserve(wal *w, size_t n, cord_error *err)
{
    if (n > WAL_SEGMENTS_MAX) {
        return cord_error_set(err, WAL_ELIMIT, 0, "wal: %s: more than %d segments", w->dir,
                              WAL_SEGMENTS_MAX);
    }
    if (n <= w->segs_cap) {
        return WAL_OK;
    }
    size_t cap = w->segs_cap > 0 ? w->segs_cap : 16;
    while (cap < n) {
        cap *= 2;
    }
    struct wal_segment *p = realloc(w->segs, cap * sizeof *p);
    if (p == NULL) {
        return cord_error_set(err, WAL_ENOMEM, ENOMEM, "wal: segment table");
    }
    w->segs = p;
    w->segs_cap = cap;
    return WAL_OK;
}

/* List the segments (sorted, checked consecutive); remove leftover .tmp files. */
static int list_segments(wal *w, cord_error *err)
{
    int rc = WAL_OK;
    int removed = 0;
    int fd = openat(w->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return cord_error_set(err, WAL_EIO, errno, "wal: open %s", w->dir);
    }
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return cord_error_set(err, WAL_EIO, errno, "wal: opendir %s", w->dir);
    }
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        uint64_t seq, first;
        if (ends_with(de->d_name, ".wal.tmp")) {
            if (unlinkat(w->dir_fd, de->d_name, 0) != 0) {
                rc = cord_error_set(err, WAL_EIO, errno, "wal: unlink %s/%s", w->dir, de->d_name);
                goto out;
            }
            removed = 1;
        } else if (parse_segment_name(de->d_name, &seq, &first) == 0) {
            rc = segs_reserve(w, w->nsegs + 1, err);
            if (rc != WAL_OK) {
                goto out;
            }
            w->segs[w->nsegs++] = (struct wal_segment){.seq = seq, .first_index = first};
        }
        errno = 0;
    }
    if (errno != 0) {
        rc = cord_error_set(err, WAL_EIO, errno, "wal: readdir %s", w->dir);
        goto out;
    }
    if (w->nsegs > 1) {
        qsort(w->segs, w->nsegs, sizeof w->segs[0], segment_cmp);
    }
    for (size_t i = 1; i < w->nsegs; i++) {
        if (w->segs[i].seq != w->segs[i - 1].seq + 1) {
            rc = cord_error_set(err, WAL_ECORRUPT, 0,
                                "wal: %s: segment %016" PRIx64 " is followed by %016" PRIx64
                                ": a segment is missing or duplicated",
                                w->dir, w->segs[i - 1].seq, w->segs[i].seq);
            goto out;
        }
    }
    if (removed && fsync(w->dir_fd) != 0) {
        rc = cord_error_set(err, WAL_EIO, errno, "wal: fsync %s", w->dir);
    }
out:
    closedir(d);
    return rc;
}

#define FP_CHECK(name, code, ...)                                                                  \
    do {                                                                                           \
        int fp_errno_ = failpoint_hit(name);                                                       \
        if (fp_errno_ != 0) {                                                                      \
            rc = cord_error_set(err, code, fp_errno_, __VA_ARGS__);                                \
            goto cleanup;                                                                          \
        }                                                                                          \
    } while (0)

/* Create segment `seq` as .tmp, preallocate, header, fsync, rename, fsync dir. */
static int segment_create(wal *w, uint64_t seq, uint64_t first_index,
                          const struct wal_log_state *st, int *fd_out, cord_error *err)
{
    int rc = WAL_OK;
    char path[FILEIO_PATH_MAX], tmp[FILEIO_PATH_MAX];
    if (segment_path(w, seq, first_index, "", path, sizeof path) != 0 ||
        segment_path(w, seq, first_index, ".tmp", tmp, sizeof tmp) != 0) {
        return cord_error_set(err, WAL_EINVAL, ENAMETOOLONG, "wal: segment path in %s", w->dir);
    }
    int renamed = 0;
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return cord_error_set(err, WAL_EIO, errno, "wal: create %s", tmp);
    }
    int e = fileio_preallocate(fd, w->segment_bytes);
    if (e != 0) {
        rc = cord_error_set(err, WAL_EIO, e, "wal: preallocate %s", tmp);
        goto cleanup;
    }
    uint8_t hdr[SEGMENT_HEADER_TOTAL];
    encode_segment_header(hdr, seq, first_index, st);
    e = fileio_pwrite_all(fd, hdr, sizeof hdr, 0);
    if (e != 0) {
        rc = cord_error_set(err, WAL_EIO, e, "wal: write %s", tmp);
        goto cleanup;
    }
    FP_CHECK("wal-before-segment-fsync", WAL_EIO, "wal: fsync %s (failpoint)", tmp);
    if (fsync(fd) != 0) {
        rc = cord_error_set(err, WAL_EIO, errno, "wal: fsync %s", tmp);
        goto cleanup;
    }
    FP_CHECK("wal-before-segment-rename", WAL_EIO, "wal: rename %s (failpoint)", tmp);
    if (rename(tmp, path) != 0) {
        rc = cord_error_set(err, WAL_EIO, errno, "wal: rename %s", tmp);
        goto cleanup;
    }
    renamed = 1;
    FP_CHECK("wal-after-segment-rename", WAL_EIO, "wal: fsync %s (failpoint)", w->dir);
    if (fsync(w->dir_fd) != 0) {
        rc = cord_error_set(err, WAL_EIO, errno, "wal: fsync %s", w->dir);
        goto cleanup;
    }
    *fd_out = fd;
    return WAL_OK;
cleanup:
    close(fd);
    if (!renamed) {
        unlink(tmp);
    }
    return rc;
}

/* Open the last segment for appending; cut a torn tail; preallocate. */
static int open_tail(wal *w, int need_repair, wal_open_info *info, cord_error *err)
{
    int rc = WAL_OK;
    struct wal_segment *seg = &w->segs[w->nsegs - 1];
    char path[FILEIO_PATH_MAX];
    int e = segment_path(w, seg->seq, seg->first_index, "", path, sizeof path);
    assert(e == 0);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return cord_error_set(err, WAL_EIO, errno, "wal: open %s", path);
    }
    if (need_repair) {
        FP_CHECK("wal-before-tail-repair", WAL_EIO, "wal: truncate %s (failpoint)", path);
        if (ftruncate(fd, (off_t)seg->end_off) != 0) {
            rc = cord_error_set(err, WAL_EIO, errno, "wal: truncate %s to %" PRIu64, path,
                                seg->end_off);
            goto cleanup;
        }
        info->tail_repaired = 1;
        info->repaired_seq = seg->seq;
        info->repaired_offset = seg->end_off;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = cord_error_set(err, WAL_EIO, errno, "wal: stat %s", path);
        goto cleanup;
    }
    if (need_repair || (uint64_t)st.st_size < w->segment_bytes) {
        e = fileio_preallocate(fd, w->segment_bytes);
        if (e != 0) {
            rc = cord_error_set(err, WAL_EIO, e, "wal: preallocate %s", path);
            goto cleanup;
        }
        if (fsync(fd) != 0) {
            rc = cord_error_set(err, WAL_EIO, errno, "wal: fsync %s", path);
            goto cleanup;
        }
    }
    w->tail_fd = fd;
    w->tail_off = seg->end_off;
    return WAL_OK;
cleanup:
    close(fd);
    return rc;
}

static int wal_scan_all(wal *w, struct wal_log_state *st, wal_open_info *info, cord_error *err)
{
    int rc = WAL_OK;
    struct scan sc;
    memset(&sc, 0, sizeof sc);
    struct seg_reader r = {.fd = -1};
    int need_repair = 0;
    for (size_t i = 0; i < w->nsegs; i++) {
        rc = scan_segment(w, &sc, i, &r, &need_repair, err);
        if (rc != WAL_OK) {
            goto cleanup;
        }
    }
    if (sc.st.snap_index + 1 < sc.known_from) {
        rc = cord_error_set(err, WAL_ECORRUPT, 0,
                            "wal: %s: entries %" PRIu64 "..%" PRIu64
                            " are missing (the oldest segment %016" PRIx64 " starts after them)",
                            w->dir, sc.st.snap_index + 1, sc.known_from - 1, w->segs[0].seq);
        goto cleanup;
    }
    if (w->pos_first != sc.st.snap_index + 1 || w->pos_n != sc.st.last_index - sc.st.snap_index) {
        rc = cord_error_set(err, WAL_ECORRUPT, 0,
                            "wal: %s: positions of entries (%" PRIu64 ", %" PRIu64
                            "] are incomplete",
                            w->dir, sc.st.snap_index, sc.st.last_index);
        goto cleanup;
    }
    rc = open_tail(w, need_repair, info, err);
    if (rc != WAL_OK) {
        goto cleanup;
    }
    *st = sc.st;
cleanup:
    free(r.buf);
    return rc;
}

/* ---------- open / close ---------- */

int wal_open(const char *dir, const wal_options *opts, wal **out, wal_open_info *info,
             cord_error *err)
{
    int rc = WAL_OK;
    wal_open_info info_local;
    if (info == NULL) {
        info = &info_local;
    }
    memset(info, 0, sizeof *info);
    cord_error_clear(err);
    *out = NULL;
    if (dir == NULL || dir[0] == '\0' || strlen(dir) > WAL_DIR_MAX) {
        return cord_error_set(err, WAL_EINVAL, 0, "wal: directory path empty or longer than %d",
                              WAL_DIR_MAX);
    }
    wal_options o = {0};
    if (opts != NULL) {
        o = *opts;
    }
    if (o.segment_bytes == 0) {
        o.segment_bytes = WAL_SEGMENT_BYTES_DEFAULT;
    }
    if (o.segment_bytes < WAL_SEGMENT_BYTES_MIN) {
        return cord_error_set(err, WAL_EINVAL, 0, "wal: segment_bytes %" PRIu64 " below %llu",
                              o.segment_bytes, WAL_SEGMENT_BYTES_MIN);
    }
    if (o.buffer_limit_bytes == 0) {
        o.buffer_limit_bytes = WAL_BUFFER_BYTES_DEFAULT;
    }
    if (o.buffer_limit_bytes < REC_TOTAL_MAX) {
        o.buffer_limit_bytes = REC_TOTAL_MAX;
    }

    wal *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return cord_error_set(err, WAL_ENOMEM, ENOMEM, "wal: handle");
    }
    w->dir_fd = -1;
    w->tail_fd = -1;
    w->segment_bytes = round8(o.segment_bytes);
    w->buffer_limit = o.buffer_limit_bytes;
    memcpy(w->dir, dir, strlen(dir) + 1);

    int e = fileio_mkdirs(dir, 0700, NULL);
    if (e != 0) {
        rc = cord_error_set(err, WAL_EIO, e, "wal: create directory %s", dir);
        goto cleanup;
    }
    w->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dir_fd < 0) {
        rc = cord_error_set(err, WAL_EIO, errno, "wal: open %s", dir);
        goto cleanup;
    }
    if (flock(w->dir_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK
                 ? cord_error_set(err, WAL_ELOCKED, 0, "wal: %s is in use by another process", dir)
                 : cord_error_set(err, WAL_EIO, errno, "wal: flock %s", dir);
        goto cleanup;
    }
    rc = list_segments(w, err);
    if (rc != WAL_OK) {
        goto cleanup;
    }
    struct wal_log_state st;
    memset(&st, 0, sizeof st);
    if (w->nsegs == 0) {
        rc = segs_reserve(w, 1, err);
        if (rc != WAL_OK) {
            goto cleanup;
        }
        int fd = -1;
        rc = segment_create(w, 0, 1, &st, &fd, err);
        if (rc != WAL_OK) {
            goto cleanup;
        }
        w->segs[0] =
            (struct wal_segment){.seq = 0, .first_index = 1, .end_off = SEGMENT_HEADER_TOTAL};
        w->nsegs = 1;
        w->tail_fd = fd;
        w->tail_off = SEGMENT_HEADER_TOTAL;
        info->created = 1;
    } else {
        rc = wal_scan_all(w, &st, info, err);
        if (rc != WAL_OK) {
            goto cleanup;
        }
    }
    if (w->nsegs == 1 && info->created) {
        w->pos_first = 1;
    }
    rc = rsegs_mirror(w, err);
    if (rc != WAL_OK) {
        goto cleanup;
    }
    w->fill_floor = UINT64_MAX;
    w->flight_floor = UINT64_MAX;
    w->durable = st;
    w->logical = st;
    w->replay_allowed = 1;
    info->segment_count = w->nsegs;
    info->entry_count = st.last_index - st.snap_index;
    *out = w;
    return WAL_OK;
cleanup:
    wal_close(w);
    return rc;
}

void wal_close(wal *w)
{
    if (w == NULL) {
        return;
    }
    assert(!w->in_flight);
    if (w->tail_fd >= 0) {
        close(w->tail_fd);
    }
    if (w->dir_fd >= 0) {
        close(w->dir_fd); /* releases the flock */
    }
    free(w->segs);
    free(w->rewinds);
    free(w->pos);
    free(w->rsegs);
    free(w->rbuf);
    free(w->fill.data);
    free(w->flight.data);
    free(w);
}

/* ---------- pass 2: replay ---------- */

static int failed_error(const wal *w, cord_error *err)
{
    return cord_error_set(err, WAL_EFAILED, w->fail_err.sys_errno, "wal: failed earlier: %s",
                          w->fail_err.msg);
}

int wal_replay(wal *w, wal_entry_fn fn, void *ctx, cord_error *err)
{
    if (w->failed) {
        return failed_error(w, err);
    }
    if (!w->replay_allowed || w->in_flight) {
        return cord_error_set(err, WAL_EINVAL, 0, "wal: replay is only allowed before appending");
    }
    int rc = WAL_OK;
    struct seg_reader r = {.fd = -1};
    size_t sp = 0;
    uint64_t expected = w->durable.snap_index + 1;
    char path[FILEIO_PATH_MAX];
    for (size_t i = 0; i < w->nsegs; i++) {
        const struct wal_segment *seg = &w->segs[i];
        int e = segment_path(w, seg->seq, seg->first_index, "", path, sizeof path);
        assert(e == 0);
        r.fd = open(path, O_RDONLY | O_CLOEXEC);
        if (r.fd < 0) {
            rc = cord_error_set(err, WAL_EIO, errno, "wal: open %s", path);
            goto cleanup;
        }
        struct stat stbuf;
        if (fstat(r.fd, &stbuf) != 0) {
            rc = cord_error_set(err, WAL_EIO, errno, "wal: stat %s", path);
            goto cleanup;
        }
        r.size = (uint64_t)stbuf.st_size;
        r.win_off = 0;
        r.win_len = 0;
        for (uint64_t off = 0; off < seg->end_off;) {
            struct rec rec;
            const char *why = "";
            int sys_errno = 0;
            enum rec_status s = rec_read(&r, off, &rec, &why, &sys_errno);
            if (s == REC_IOERR) {
                rc = cord_error_set(err, WAL_EIO, sys_errno, "wal: read %s", path);
                goto cleanup;
            }
            if (s != REC_VALID) {
                rc = cord_error_set(err, WAL_ECORRUPT, 0,
                                    "wal: %s: offset %" PRIu64 ": %s (changed since open)", path,
                                    off, why);
                goto cleanup;
            }
            if (rec.type == REC_ENTRY) {
                const uint8_t *p = rec.payload;
                raft_entry ent = {
                    .index = bytes_get64(p),
                    .term = bytes_get64(p + 8),
                    .type = p[16],
                    .len = rec.len - ENTRY_FIXED,
                    .data = p + ENTRY_FIXED,
                };
                while (sp < w->nrewinds &&
                       (w->rewinds[sp].seq < seg->seq ||
                        (w->rewinds[sp].seq == seg->seq && w->rewinds[sp].off <= off))) {
                    sp++;
                }
                int live = ent.index > w->durable.snap_index &&
                           (sp == w->nrewinds || ent.index < w->rewinds[sp].target);
                if (live) {
                    if (ent.index != expected) {
                        rc = cord_error_set(err, WAL_ECORRUPT, 0,
                                            "wal: %s: offset %" PRIu64 ": entry %" PRIu64
                                            " where %" PRIu64 " was expected",
                                            path, off, ent.index, expected);
                        goto cleanup;
                    }
                    if (fn(ctx, &ent) != 0) {
                        rc = cord_error_set(err, WAL_EABORTED, 0,
                                            "wal: replay stopped by the caller at entry %" PRIu64,
                                            ent.index);
                        goto cleanup;
                    }
                    expected++;
                }
            }
            off += rec.total;
        }
        close(r.fd);
        r.fd = -1;
    }
    if (expected - 1 != w->durable.last_index) {
        rc = cord_error_set(err, WAL_ECORRUPT, 0,
                            "wal: %s: replay ended at entry %" PRIu64 ", the log ends at %" PRIu64,
                            w->dir, expected - 1, w->durable.last_index);
    }
cleanup:
    if (r.fd >= 0) {
        close(r.fd);
    }
    free(r.buf);
    return rc;
}

/* ---------- state ---------- */

void wal_state_get(const wal *w, wal_state *out)
{
    out->hard_state = w->logical.hs;
    out->snapshot_index = w->logical.snap_index;
    out->snapshot_term = w->logical.snap_term;
    out->last_index = w->logical.last_index;
    out->last_term = w->logical.last_term;
}

uint64_t wal_persisted_snapshot_index(const wal *w)
{
    assert(!w->in_flight);
    return w->durable.snap_index;
}

void wal_persisted_get(const wal *w, wal_persisted *out)
{
    assert(!w->in_flight);
    out->index = w->durable.last_index;
    out->term = w->durable.last_term;
}

size_t wal_buffered_bytes(const wal *w)
{
    return w->fill.len;
}

uint64_t wal_segment_count(const wal *w)
{
    assert(!w->in_flight);
    return w->nsegs;
}

/* ---------- appends (owner thread, memory only) ---------- */

static int append_check(wal *w, cord_error *err)
{
    if (w->failed) {
        return failed_error(w, err);
    }
    return WAL_OK;
}

int wal_append(wal *w, const raft_entry *ents, size_t n, cord_error *err)
{
    int rc = append_check(w, err);
    if (rc != WAL_OK) {
        return rc;
    }
    uint64_t last = w->logical.last_index;
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const raft_entry *e = &ents[i];
        if (e->index == 0 || e->index <= w->logical.snap_index || e->index > last + 1) {
            return cord_error_set(err, WAL_EINVAL, 0,
                                  "wal: append of entry %" PRIu64 " to log (%" PRIu64 ", %" PRIu64
                                  "]: would leave a gap or rewrite the snapshot",
                                  e->index, w->logical.snap_index, last);
        }
        if (e->len > WAL_ENTRY_DATA_MAX) {
            return cord_error_set(err, WAL_ELIMIT, 0,
                                  "wal: entry %" PRIu64 " has %" PRIu32 " bytes (limit %u)",
                                  e->index, e->len, WAL_ENTRY_DATA_MAX);
        }
        if (e->len > 0 && e->data == NULL) {
            return cord_error_set(err, WAL_EINVAL, 0, "wal: entry %" PRIu64 " without data",
                                  e->index);
        }
        last = e->index;
        bytes += record_total(ENTRY_FIXED + e->len);
    }
    rc = buf_reserve(&w->fill, bytes, w->buffer_limit, err);
    if (rc != WAL_OK) {
        return rc;
    }
    rc = read_reserve(w, n, err);
    if (rc != WAL_OK) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        const raft_entry *e = &ents[i];
        uint8_t fixed[ENTRY_FIXED];
        bytes_put64(fixed, e->index);
        bytes_put64(fixed + 8, e->term);
        fixed[16] = e->type;
        record_encode(w->fill.data + w->fill.len, REC_ENTRY, fixed, ENTRY_FIXED, e->data, e->len);
        w->fill.len += record_total(ENTRY_FIXED + e->len);
        w->fill_entries++;
        if (e->index <= w->logical.last_index && e->index < w->fill_floor) {
            w->fill_floor = e->index;
        }
        w->logical.last_index = e->index;
        w->logical.last_term = e->term;
        if (e->index > w->fill_max_entry) {
            w->fill_max_entry = e->index;
        }
    }
    assert(w->fill.len <= w->fill.cap);
    if (n > 0) {
        w->replay_allowed = 0;
    }
    return WAL_OK;
}

int wal_set_hard_state(wal *w, const raft_hard_state *hs, cord_error *err)
{
    int rc = append_check(w, err);
    if (rc != WAL_OK) {
        return rc;
    }
    if (hs->term == w->logical.hs.term && hs->vote == w->logical.hs.vote &&
        hs->commit == w->logical.hs.commit) {
        return WAL_OK;
    }
    rc = buf_reserve(&w->fill, record_total(HARD_STATE_PAYLOAD), w->buffer_limit, err);
    if (rc == WAL_OK) {
        rc = read_reserve(w, 0, err);
    }
    if (rc != WAL_OK) {
        return rc;
    }
    uint8_t p[HARD_STATE_PAYLOAD];
    bytes_put64(p, hs->term);
    bytes_put64(p + 8, hs->vote);
    bytes_put64(p + 16, hs->commit);
    record_encode(w->fill.data + w->fill.len, REC_HARD_STATE, p, sizeof p, NULL, 0);
    w->fill.len += record_total(HARD_STATE_PAYLOAD);
    w->logical.hs = *hs;
    w->replay_allowed = 0;
    return WAL_OK;
}

static int snapshot_record(wal *w, uint64_t index, uint64_t term, uint32_t flags, cord_error *err)
{
    int rc = buf_reserve(&w->fill, record_total(SNAPSHOT_PAYLOAD), w->buffer_limit, err);
    if (rc == WAL_OK) {
        rc = read_reserve(w, 0, err);
    }
    if (rc != WAL_OK) {
        return rc;
    }
    uint8_t p[SNAPSHOT_PAYLOAD];
    bytes_put64(p, index);
    bytes_put64(p + 8, term);
    bytes_put32(p + 16, flags);
    record_encode(w->fill.data + w->fill.len, REC_SNAPSHOT, p, sizeof p, NULL, 0);
    w->fill.len += record_total(SNAPSHOT_PAYLOAD);
    w->logical.snap_index = index;
    w->logical.snap_term = term;
    w->replay_allowed = 0;
    return WAL_OK;
}

int wal_mark_snapshot(wal *w, uint64_t index, uint64_t term, cord_error *err)
{
    int rc = append_check(w, err);
    if (rc != WAL_OK) {
        return rc;
    }
    if (index < w->logical.snap_index || index > w->logical.last_index) {
        return cord_error_set(err, WAL_EINVAL, 0,
                              "wal: snapshot marker %" PRIu64 " outside the log [%" PRIu64
                              ", %" PRIu64 "]",
                              index, w->logical.snap_index, w->logical.last_index);
    }
    if (index == w->logical.snap_index && term == w->logical.snap_term) {
        return WAL_OK;
    }
    rc = snapshot_record(w, index, term, 0, err);
    if (rc == WAL_OK && index == w->logical.last_index) {
        w->logical.last_term = term;
    }
    return rc;
}

int wal_install_snapshot(wal *w, uint64_t index, uint64_t term, cord_error *err)
{
    int rc = append_check(w, err);
    if (rc != WAL_OK) {
        return rc;
    }
    if (index < w->logical.snap_index) {
        return cord_error_set(err, WAL_EINVAL, 0,
                              "wal: installing snapshot %" PRIu64 " older than marker %" PRIu64,
                              index, w->logical.snap_index);
    }
    rc = snapshot_record(w, index, term, SNAPSHOT_INSTALL, err);
    if (rc == WAL_OK) {
        if (index + 1 < w->fill_floor) {
            w->fill_floor = index + 1;
        }
        w->logical.last_index = index;
        w->logical.last_term = term;
    }
    return rc;
}

/* ---------- sync ---------- */

int wal_sync_begin(wal *w, cord_error *err)
{
    if (w->failed) {
        return failed_error(w, err);
    }
    if (w->in_flight) {
        return cord_error_set(err, WAL_EBUSY, 0, "wal: a sync is already in flight");
    }
    struct wal_buf t = w->flight;
    w->flight = w->fill;
    w->fill = t;
    w->fill.len = 0;
    w->flight_max_entry = w->fill_max_entry;
    w->fill_max_entry = 0;
    w->flight_entries = w->fill_entries;
    w->fill_entries = 0;
    w->flight_floor = w->fill_floor;
    w->fill_floor = UINT64_MAX;
    w->flight_state = w->logical;
    w->flight_rc = WAL_OK;
    cord_error_clear(&w->flight_err);
    w->replay_allowed = 0;
    free(w->rewinds); /* only replay needed them */
    w->rewinds = NULL;
    w->nrewinds = 0;
    w->rewinds_cap = 0;
    w->in_flight = 1;
    return WAL_OK;
}

/* Close the full tail segment and start the next one (sync side). */
static int wal_cut(wal *w, cord_error *err)
{
    int rc = segs_reserve(w, w->nsegs + 1, err);
    if (rc != WAL_OK) {
        return rc;
    }
    struct wal_segment *tail = &w->segs[w->nsegs - 1];
    FP_CHECK("wal-before-cut-truncate", WAL_EIO, "wal: truncate segment %016" PRIx64 " (failpoint)",
             tail->seq);
    if (ftruncate(w->tail_fd, (off_t)w->tail_off) != 0 || fsync(w->tail_fd) != 0) {
        rc = cord_error_set(err, WAL_EIO, errno, "wal: %s: truncate and fsync segment %016" PRIx64,
                            w->dir, tail->seq);
        goto cleanup;
    }
    uint64_t seq = tail->seq + 1;
    uint64_t first = w->durable.last_index + 1;
    int fd = -1;
    rc = segment_create(w, seq, first, &w->durable, &fd, err);
    if (rc != WAL_OK) {
        goto cleanup;
    }
    close(w->tail_fd);
    w->tail_fd = fd;
    w->tail_off = SEGMENT_HEADER_TOTAL;
    w->segs[w->nsegs++] =
        (struct wal_segment){.seq = seq, .first_index = first, .end_off = SEGMENT_HEADER_TOTAL};
cleanup:
    return rc;
}

int wal_sync_do(wal *w)
{
    assert(w->in_flight);
    cord_error *err = &w->flight_err;
    int rc = WAL_OK;
    const struct wal_buf *b = &w->flight;
    if (b->len == 0) {
        goto cleanup;
    }
    if (w->tail_off + b->len > w->segment_bytes && w->tail_off > SEGMENT_HEADER_TOTAL) {
        rc = wal_cut(w, err);
        if (rc != WAL_OK) {
            goto cleanup;
        }
    }
    struct wal_segment *tail = &w->segs[w->nsegs - 1];
    FP_CHECK("wal-before-write", WAL_EIO, "wal: %s: write segment %016" PRIx64 " (failpoint)",
             w->dir, tail->seq);
    if (failpoint_eval("wal-torn-write", NULL) == FAILPOINT_CRASH) {
        /* Half the batch reaches the file, not on a record boundary. */
        (void)fileio_pwrite_all(w->tail_fd, b->data, b->len / 2 + 3, w->tail_off);
        failpoint_crash("wal-torn-write");
    }
    int e = fileio_pwrite_all(w->tail_fd, b->data, b->len, w->tail_off);
    if (e != 0) {
        rc = cord_error_set(err, WAL_EIO, e,
                            "wal: %s: write %zu bytes to segment %016" PRIx64 " at offset %" PRIu64,
                            w->dir, b->len, tail->seq, w->tail_off);
        goto cleanup;
    }
    FP_CHECK("wal-after-write", WAL_EIO, "wal: %s: after write (failpoint)", w->dir);
    FP_CHECK("wal-before-fsync", WAL_EIO, "wal: %s: fdatasync segment %016" PRIx64 " (failpoint)",
             w->dir, tail->seq);
    if (fdatasync(w->tail_fd) != 0) {
        rc = cord_error_set(err, WAL_EIO, errno, "wal: %s: fdatasync segment %016" PRIx64, w->dir,
                            tail->seq);
        goto cleanup;
    }
    FP_CHECK("wal-after-fsync", WAL_EIO, "wal: %s: after fdatasync (failpoint)", w->dir);
    w->flight_seq = tail->seq;
    w->flight_off = w->tail_off;
    w->tail_off += b->len;
    tail->end_off = w->tail_off;
    if (w->flight_max_entry > tail->max_entry_index) {
        tail->max_entry_index = w->flight_max_entry;
    }
cleanup:
    w->flight_rc = rc;
    if (rc == WAL_OK) {
        w->durable = w->flight_state;
    }
    return rc;
}

/* After a successful wal_sync_do (owner thread): the batch's entries are
 * durable at flight_seq, flight_off + their offset in the buffer. Applies
 * the batch's records to the position table in write order. Allocates
 * nothing in practice (read_reserve made room when they were buffered). */
static int read_positions_apply(wal *w, cord_error *err)
{
    int rc = rsegs_mirror(w, err);
    if (rc != WAL_OK) {
        return rc;
    }
    const struct wal_buf *b = &w->flight;
    for (size_t off = 0; off < b->len;) {
        const uint8_t *p = b->data + off;
        uint32_t word = bytes_get32(p + 4);
        uint8_t type = (uint8_t)(word >> 24);
        uint32_t len = word & 0xffffffu;
        const uint8_t *payload = p + REC_HEADER_BYTES;
        if (type == REC_ENTRY) {
            rc = pos_entry(w, bytes_get64(payload), w->flight_seq, w->flight_off + off, err);
            if (rc != WAL_OK) {
                return rc;
            }
        } else if (type == REC_SNAPSHOT) {
            pos_marker(w, bytes_get64(payload),
                       (bytes_get32(payload + 16) & SNAPSHOT_INSTALL) != 0);
        }
        off += record_total(len);
    }
    return WAL_OK;
}

int wal_sync_end(wal *w, wal_persisted *out, cord_error *err)
{
    if (!w->in_flight) {
        return cord_error_set(err, WAL_EINVAL, 0, "wal: sync_end without sync_begin");
    }
    w->in_flight = 0;
    if (w->flight_rc == WAL_OK) {
        int rc = read_positions_apply(w, &w->flight_err);
        if (rc != WAL_OK) {
            w->flight_rc = rc;
        }
    }
    w->flight.len = 0;
    w->flight_entries = 0;
    w->flight_floor = UINT64_MAX;
    if (w->flight_rc != WAL_OK) {
        w->failed = 1;
        cord_error_copy(&w->fail_err, &w->flight_err, NULL);
        return cord_error_copy(err, &w->flight_err, NULL);
    }
    if (out != NULL) {
        out->index = w->durable.last_index;
        out->term = w->durable.last_term;
    }
    return WAL_OK;
}

int wal_sync(wal *w, wal_persisted *out, cord_error *err)
{
    int rc = wal_sync_begin(w, err);
    if (rc != WAL_OK) {
        return rc;
    }
    (void)wal_sync_do(w);
    return wal_sync_end(w, out, err);
}

/* ---------- reading entries back (owner thread) ---------- */

#define READ_CHUNK_BYTES (256u * 1024u)

struct read_ctx {
    wal *w;
    int fd;
    size_t seg; /* index in w->rsegs of the open fd */
    char path[FILEIO_PATH_MAX];
    uint64_t win_off;
    size_t win_len;
};

/* Make [off, off + need) of the segment readable in w->rbuf. Returns WAL_OK,
 * 1 (the file ends before it), or an error. */
static int read_window(struct read_ctx *c, uint64_t off, size_t need, cord_error *err)
{
    wal *w = c->w;
    if (c->win_len > 0 && off >= c->win_off && off + need <= c->win_off + c->win_len) {
        return WAL_OK;
    }
    size_t want = need > READ_CHUNK_BYTES ? need : READ_CHUNK_BYTES;
    if (want > w->rbuf_cap) {
        uint8_t *p = realloc(w->rbuf, want);
        if (p == NULL) {
            return cord_error_set(err, WAL_ENOMEM, ENOMEM, "wal: read buffer of %zu bytes", want);
        }
        w->rbuf = p;
        w->rbuf_cap = want;
    }
    size_t got = 0;
    int e = fileio_pread_full(c->fd, w->rbuf, want, off, &got);
    if (e != 0) {
        c->win_len = 0;
        return cord_error_set(err, WAL_EIO, e, "wal: read %s at offset %" PRIu64, c->path, off);
    }
    c->win_off = off;
    c->win_len = got;
    return got < need ? 1 : WAL_OK;
}

/* Point c at the segment holding `p`, opening it if needed. */
static int read_segment(struct read_ctx *c, const struct wal_pos *p, uint64_t index,
                        cord_error *err)
{
    wal *w = c->w;
    size_t i = w->nrsegs > 0 ? (size_t)(uint32_t)(p->seq - (uint32_t)w->rsegs[0].seq) : 0;
    if (i >= w->nrsegs || (uint32_t)w->rsegs[i].seq != p->seq) {
        return cord_error_set(err, WAL_EFAILED, 0,
                              "wal: %s: entry %" PRIu64 " is in segment %08" PRIx32
                              ", which is not known (internal error)",
                              w->dir, index, p->seq);
    }
    if (c->fd >= 0 && c->seg == i) {
        return WAL_OK;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->win_len = 0;
    int e = segment_path(w, w->rsegs[i].seq, w->rsegs[i].first_index, "", c->path, sizeof c->path);
    assert(e == 0);
    (void)e;
    c->fd = open(c->path, O_RDONLY | O_CLOEXEC);
    if (c->fd < 0) {
        return cord_error_set(err, WAL_EIO, errno, "wal: open %s", c->path);
    }
    c->seg = i;
    return WAL_OK;
}

struct read_item {
    uint64_t index;
    uint64_t term;
    uint32_t len;
    uint8_t type;
    size_t data_off; /* in the data buffer */
};

int wal_read(wal *w, uint64_t from, uint64_t max_bytes, uint32_t max_n, raft_entry **out,
             uint32_t *n_out, cord_error *err)
{
    *out = NULL;
    *n_out = 0;
    if (w->failed) {
        return failed_error(w, err);
    }
    if (max_n == 0) {
        return cord_error_set(err, WAL_EINVAL, 0, "wal: read of 0 entries");
    }
    if (from <= w->logical.snap_index) {
        return cord_error_set(err, WAL_EINVAL, 0,
                              "wal: entry %" PRIu64 " is compacted (snapshot marker at %" PRIu64
                              ")",
                              from, w->logical.snap_index);
    }
    /* The durable entries that are still part of the log: none at or past an
     * index that buffered (not yet durable) records rewrite. */
    uint64_t last = w->pos_first + w->pos_n - 1;
    if (w->flight_floor - 1 < last) {
        last = w->flight_floor - 1;
    }
    if (w->fill_floor - 1 < last) {
        last = w->fill_floor - 1;
    }
    if (from > last || from < w->pos_first) {
        return cord_error_set(err, WAL_EINVAL, 0,
                              "wal: entry %" PRIu64 " is not durable (durable log is (%" PRIu64
                              ", %" PRIu64 "])",
                              from, w->logical.snap_index, last);
    }
    uint64_t count = last - from + 1;
    if (count > max_n) {
        count = max_n;
    }

    int rc = WAL_OK;
    struct read_ctx c = {.w = w, .fd = -1};
    struct read_item *items = NULL;
    size_t items_cap = 0, n = 0;
    uint8_t *data = NULL;
    size_t data_len = 0, data_cap = 0;
    uint64_t total_bytes = 0;
    for (uint64_t index = from; index < from + count; index++) {
        const struct wal_pos *p = &w->pos[w->pos_head + (index - w->pos_first)];
        uint64_t off = (uint64_t)p->off_lo | (uint64_t)p->off_hi << 32;
        rc = read_segment(&c, p, index, err);
        if (rc != WAL_OK) {
            goto cleanup;
        }
        const char *why = NULL;
        rc = read_window(&c, off, REC_HEADER_BYTES, err);
        if (rc < 0) {
            goto cleanup;
        }
        uint32_t crc = 0, word = 0, len = 0;
        uint64_t rec_total = 0;
        if (rc == 1) {
            why = "record header past the end of the file";
        } else {
            const uint8_t *h = w->rbuf + (off - c.win_off);
            crc = bytes_get32(h);
            word = bytes_get32(h + 4);
            len = word & 0xffffffu;
            rec_total = record_total(len);
            rc = read_window(&c, off, (size_t)rec_total, err);
            if (rc < 0) {
                goto cleanup;
            }
            if (rc == 1) {
                why = "record runs past the end of the file";
            }
        }
        rc = WAL_OK;
        const uint8_t *r = NULL;
        if (why == NULL) {
            r = w->rbuf + (off - c.win_off);
            if (crc32c(r + 4, (size_t)rec_total - 4) != crc) {
                why = "checksum mismatch";
            } else if ((word >> 24) != REC_ENTRY || len < ENTRY_FIXED) {
                why = "not an entry record";
            } else if (bytes_get64(r + REC_HEADER_BYTES) != index) {
                why = "entry has another index";
            }
        }
        if (why != NULL) {
            rc = cord_error_set(err, WAL_ECORRUPT, 0,
                                "wal: %s: offset %" PRIu64 ": reading entry %" PRIu64 ": %s",
                                c.path, off, index, why);
            goto cleanup;
        }
        uint32_t dlen = len - ENTRY_FIXED;
        if (n > 0 && total_bytes + dlen > max_bytes) {
            break;
        }
        if (n == items_cap) {
            size_t cap = items_cap > 0 ? items_cap * 2 : 64;
            struct read_item *q = realloc(items, cap * sizeof *q);
            if (q == NULL) {
                rc = cord_error_set(err, WAL_ENOMEM, ENOMEM, "wal: read of %zu entries", cap);
                goto cleanup;
            }
            items = q;
            items_cap = cap;
        }
        if (data_len + dlen > data_cap) {
            size_t cap = data_cap > 0 ? data_cap : 4096;
            while (cap < data_len + dlen) {
                cap *= 2;
            }
            uint8_t *q = realloc(data, cap);
            if (q == NULL) {
                rc = cord_error_set(err, WAL_ENOMEM, ENOMEM, "wal: read of %zu bytes", cap);
                goto cleanup;
            }
            data = q;
            data_cap = cap;
        }
        const uint8_t *pl = r + REC_HEADER_BYTES;
        if (dlen > 0) {
            memcpy(data + data_len, pl + ENTRY_FIXED, dlen);
        }
        items[n++] = (struct read_item){.index = index,
                                        .term = bytes_get64(pl + 8),
                                        .type = pl[16],
                                        .len = dlen,
                                        .data_off = data_len};
        data_len += dlen;
        total_bytes += dlen;
    }

    size_t head = n * sizeof(raft_entry);
    raft_entry *ents = malloc(head + data_len > 0 ? head + data_len : 1);
    if (ents == NULL) {
        rc = cord_error_set(err, WAL_ENOMEM, ENOMEM, "wal: read result of %zu bytes",
                            head + data_len);
        goto cleanup;
    }
    uint8_t *dst = (uint8_t *)ents + head;
    if (data_len > 0) {
        memcpy(dst, data, data_len);
    }
    for (size_t i = 0; i < n; i++) {
        ents[i] = (raft_entry){.term = items[i].term,
                               .index = items[i].index,
                               .type = items[i].type,
                               .len = items[i].len,
                               .data = dst + items[i].data_off};
    }
    *out = ents;
    *n_out = (uint32_t)n;
cleanup:
    if (c.fd >= 0) {
        close(c.fd);
    }
    free(items);
    free(data);
    return rc;
}

/* ---------- release ---------- */

int wal_release_to(wal *w, uint64_t index, uint64_t *released, cord_error *err)
{
    int rc = WAL_OK;
    if (released != NULL) {
        *released = 0;
    }
    if (w->failed) {
        return failed_error(w, err);
    }
    if (w->in_flight) {
        return cord_error_set(err, WAL_EBUSY, 0, "wal: release during a sync");
    }
    if (index > w->durable.snap_index + 1) {
        return cord_error_set(err, WAL_EINVAL, 0,
                              "wal: release to %" PRIu64 " beyond the persisted snapshot %" PRIu64,
                              index, w->durable.snap_index);
    }
    size_t n = 0;
    while (n + 1 < w->nsegs && w->segs[n].max_entry_index < index) {
        n++;
    }
    size_t done = 0;
    char path[FILEIO_PATH_MAX];
    for (; done < n; done++) {
        const struct wal_segment *seg = &w->segs[done];
        int e = segment_path(w, seg->seq, seg->first_index, "", path, sizeof path);
        assert(e == 0);
        FP_CHECK("wal-before-release-unlink", WAL_EIO, "wal: unlink %s (failpoint)", path);
        if (unlink(path) != 0 && errno != ENOENT) {
            rc = cord_error_set(err, WAL_EIO, errno, "wal: unlink %s", path);
            goto cleanup;
        }
        /* Oldest first, each durable before the next, so a crash never leaves a hole. */
        if (fsync(w->dir_fd) != 0) {
            rc = cord_error_set(err, WAL_EIO, errno, "wal: fsync %s", w->dir);
            done++;
            goto cleanup;
        }
    }
cleanup:
    if (done > 0) {
        memmove(w->segs, w->segs + done, (w->nsegs - done) * sizeof w->segs[0]);
        w->nsegs -= done;
        size_t k = 0;
        while (k < w->nrsegs && w->rsegs[k].seq < w->segs[0].seq) {
            k++;
        }
        memmove(w->rsegs, w->rsegs + k, (w->nrsegs - k) * sizeof w->rsegs[0]);
        w->nrsegs -= k;
    }
    if (released != NULL) {
        *released = done;
    }
    return rc;
}

const char *wal_status_name(int status)
{
    switch (status) {
    case WAL_OK:
        return "WAL_OK";
    case WAL_EINVAL:
        return "WAL_EINVAL";
    case WAL_EIO:
        return "WAL_EIO";
    case WAL_ECORRUPT:
        return "WAL_ECORRUPT";
    case WAL_EFAILED:
        return "WAL_EFAILED";
    case WAL_ENOMEM:
        return "WAL_ENOMEM";
    case WAL_ELOCKED:
        return "WAL_ELOCKED";
    case WAL_EBUSY:
        return "WAL_EBUSY";
    case WAL_ELIMIT:
        return "WAL_ELIMIT";
    case WAL_EABORTED:
        return "WAL_EABORTED";
    default:
        return "WAL_E?";
    }
}
