/*
 * wal.h: cord's write-ahead log: the Raft hard state, log entries and
 * snapshot markers, made durable with group commit.
 *
 * FILES
 * The caller passes a directory (normally <data-dir>/member/wal). It holds
 * segments named "%016llx-%016llx.wal" (sequence number, index of the first
 * entry expected in the segment), like etcd's. A segment is created as
 * "<name>.tmp", preallocated (wal_options.segment_bytes), given its header,
 * fsynced, renamed, and the directory fsynced. A full segment is truncated to
 * its data and fsynced before the next one is created. Directory 0700 (when
 * the WAL creates it), files 0600. The directory is flock()ed while open.
 *
 * RECORDS (little-endian, every record starts 8-byte aligned)
 *     u32 crc      CRC32C of the rest of the record, padding included
 *     u32 word     type << 24 | payload length (< 2^24)
 *     payload      then zero padding to a multiple of 8
 * types: 1 segment header (first record of every segment: magic
 * "cordwal1", version, seq, first index, and a copy of the hard state and
 * snapshot marker in force when the segment was created, so that any suffix
 * of segments stands on its own), 2 hard state (term, vote, commit),
 * 3 entry (index, term, type u8, data), 4 snapshot marker (index, term,
 * flags). A zero word ends the data (the preallocated tail is zeros).
 *
 * WHAT A LOG MEANS (the reader applies these rules in write order)
 * - The latest hard state record wins.
 * - An entry at index i, when entries up to j >= i were written before it,
 *   replaces entries i..j (Raft truncation): entries written earlier at
 *   indexes >= i are discarded.
 * - A snapshot marker (index m, term t) says entries <= m are covered by a
 *   snapshot: they are not returned; the log is (m, last]. A marker written
 *   by wal_install_snapshot also discards every earlier entry > m (the log
 *   was replaced by a snapshot received from the leader).
 *
 * START-UP (wal_open)
 * All segments are read and checked. A record that is torn, half-written or
 * zero at the very end of the last segment, with no valid record after it,
 * is a write that was cut short by a crash: the file is truncated there and
 * the WAL opens (wal_open_info says so). Any other bad record (a checksum
 * mismatch followed by valid records, any damage in a segment that is not
 * the last, a missing segment, records that contradict each other) fails
 * with WAL_ECORRUPT and a message naming the file and byte offset. Nothing
 * committed is ever dropped silently. (A bit flip inside the very last record
 * cannot be told from a torn write and is treated as one.)
 *
 * GROUP COMMIT AND THREADS
 * One owner thread calls everything except wal_sync_do. Appends
 * (wal_append, wal_set_hard_state, wal_mark_snapshot, wal_install_snapshot)
 * only encode records into an in-memory buffer and never block on I/O.
 * Persisting a batch is a trio:
 *     wal_sync_begin  owner thread: hands the buffer to the sync side and
 *                     starts a new empty buffer for further appends.
 *     wal_sync_do     any one thread (a libuv worker): rolls to a new segment
 *                     if needed, one write() of the whole batch, one
 *                     fdatasync(). It touches only the sync side's state.
 *     wal_sync_end    owner thread, after wal_sync_do has returned (with a
 *                     happens-before edge, as uv_queue_work's after_work
 *                     callback gives): returns the result and "persisted up
 *                     to index N".
 * Between begin and end the owner may keep appending and may call wal_state_get(),
 * wal_buffered_bytes() and wal_read(); it must not call wal_sync_begin, wal_release_to,
 * wal_replay or wal_close. wal_sync() runs the trio on the calling thread.
 *
 * READING ENTRIES BACK (wal_read)
 * The owner side keeps, for every durable entry in (snapshot marker, last
 * durable index], where its latest record is: the low 32 bits of the
 * segment's sequence number and the byte offset, 12 bytes per entry (plus
 * 16 bytes per segment for its name); no entry data is held. The table is
 * built by wal_open's scan and updated at wal_sync_end from the batch just
 * written (the segment and offset wal_sync_do wrote it at), applying the
 * same rules as replay: an entry at i drops positions >= i, a marker drops
 * positions <= its index, an installed snapshot drops all. wal_release_to
 * only deletes segments whose entries are all <= the durable marker. Space
 * for the positions of buffered entries is reserved when they are appended,
 * so wal_sync_end does not allocate.
 *
 * FAILURES
 * An error from write or fdatasync (EIO, ENOSPC, ...) or from creating a
 * segment is returned by wal_sync_end and puts the WAL in a failed state:
 * every later call except wal_state_get/wal_close returns WAL_EFAILED with the
 * original message. Nothing in the failed batch (or appended after it) is
 * ever reported persisted. The caller must stop acknowledging writes; a
 * restart (wal_open) re-reads what actually reached the disk.
 *
 * ERRORS
 * Every function that can fail returns a code from enum wal_status and, if
 * `err` is not NULL, fills it (code, errno, message).
 */
#ifndef CORD_WAL_WAL_H
#define CORD_WAL_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/errors.h"
#include "raft/raft_types.h"

enum wal_status {
    WAL_OK = 0,
    WAL_EINVAL = -1,   /* bad argument or call out of order (message says which) */
    WAL_EIO = -2,      /* a system call failed; err->sys_errno has the errno (ENOSPC, EIO, ...) */
    WAL_ECORRUPT = -3, /* the log on disk is damaged; message names file and offset */
    WAL_EFAILED = -4,  /* an earlier write/sync failed; the WAL accepts nothing more */
    WAL_ENOMEM = -5,
    WAL_ELOCKED = -6,  /* another process (or wal handle) has the directory open */
    WAL_EBUSY = -7,    /* a sync is in flight */
    WAL_ELIMIT = -8,   /* a bound was reached: entry too large, buffer full, too many segments */
    WAL_EABORTED = -9, /* the replay callback returned non-zero */
};

#define WAL_SEGMENT_BYTES_DEFAULT (64ull << 20)
#define WAL_SEGMENT_BYTES_MIN     4096ull
#define WAL_ENTRY_DATA_MAX        ((1u << 24) - 64) /* bytes of data in one entry */
#define WAL_BUFFER_BYTES_DEFAULT  (64ull << 20)
#define WAL_SEGMENTS_MAX          65536
#define WAL_REWINDS_MAX           (1u << 20) /* truncations remembered for replay */
#define WAL_DIR_MAX               3800       /* length of the directory path */

typedef struct wal wal;

typedef struct wal_options {
    /* Size a segment is preallocated to; a segment is closed when the next
     * batch would not fit (a single larger batch still goes into one segment).
     * 0 = WAL_SEGMENT_BYTES_DEFAULT; at least WAL_SEGMENT_BYTES_MIN. */
    uint64_t segment_bytes;
    /* Most bytes buffered by appends and not yet handed to wal_sync_begin;
     * beyond it appends fail with WAL_ELIMIT. 0 = WAL_BUFFER_BYTES_DEFAULT;
     * raised to at least one largest entry. */
    uint64_t buffer_limit_bytes;
} wal_options;

/* The log as the owner thread sees it: including appends not yet synced. */
typedef struct wal_state {
    raft_hard_state hard_state; /* all zero if none was ever written */
    uint64_t snapshot_index;    /* 0 if no snapshot marker */
    uint64_t snapshot_term;
    uint64_t last_index; /* index of the last entry; snapshot_index if none after it */
    uint64_t last_term;  /* its term (snapshot_term if none after the marker) */
} wal_state;

/* What wal_open found besides the state. */
typedef struct wal_open_info {
    int created;              /* 1: the directory held no segment; a fresh WAL was made */
    int tail_repaired;        /* 1: a torn tail was cut off */
    uint64_t repaired_seq;    /* segment whose tail was cut */
    uint64_t repaired_offset; /* byte offset the file was truncated at */
    uint64_t segment_count;
    uint64_t entry_count; /* entries wal_replay will deliver */
} wal_open_info;

/* "The durable log ends at (index, term)" -- after a truncation this can be
 * lower than an earlier report. */
typedef struct wal_persisted {
    uint64_t index;
    uint64_t term;
} wal_persisted;

/*
 * wal_open: open (or create) the WAL in `dir`, check it, repair a torn tail.
 * Takes: the directory (created with parents, mode 0700, if missing), options
 * (NULL = defaults), where to store the handle, optional info (may be NULL).
 * Returns: WAL_OK with *out set; then call wal_replay once if the entries are
 * needed, before the first append.
 * Errors: WAL_EINVAL (options, path too long), WAL_EIO, WAL_ECORRUPT,
 * WAL_ELOCKED, WAL_ENOMEM, WAL_ELIMIT (more than WAL_SEGMENTS_MAX segments or
 * WAL_REWINDS_MAX truncations).
 */
int wal_open(const char *dir, const wal_options *opts, wal **out, wal_open_info *info,
             cord_error *err);

/*
 * wal_entry_fn: receives one entry of the log, in index order, from
 * snapshot_index + 1 to last_index without gaps. e->data is valid only during
 * the call. Return 0 to go on, non-zero to stop the replay.
 */
typedef int (*wal_entry_fn)(void *ctx, const raft_entry *e);

/*
 * wal_replay: deliver the log's entries (after the snapshot marker) to fn.
 * Reads the segments a second time; nothing is held in memory.
 * Allowed after wal_open and before the first append or sync; may be
 * repeated.
 * Errors: WAL_EINVAL (called after an append), WAL_EABORTED (fn returned
 * non-zero), WAL_EIO, WAL_ECORRUPT (the files changed since wal_open),
 * WAL_ENOMEM.
 */
int wal_replay(wal *w, wal_entry_fn fn, void *ctx, cord_error *err);

/* wal_state_get: the current logical state (owner thread). */
void wal_state_get(const wal *w, wal_state *out);

/* wal_persisted_get: where the durable log ends (owner thread, no sync in flight). */
void wal_persisted_get(const wal *w, wal_persisted *out);

/* wal_persisted_snapshot_index: the newest snapshot marker that is durable (owner thread, no
 * sync in flight): wal_release_to accepts indexes up to it + 1. */
uint64_t wal_persisted_snapshot_index(const wal *w);

/* wal_buffered_bytes: bytes appended and not yet handed to wal_sync_begin. */
size_t wal_buffered_bytes(const wal *w);

/*
 * wal_append: buffer entries. Each entry's index must be > snapshot_index
 * and <= last_index + 1; an index <= last_index truncates the log there
 * first. Entries are checked all before any is buffered (all or nothing).
 * Errors: WAL_EINVAL (index out of range, data NULL with len > 0), WAL_ELIMIT (data longer
 * than WAL_ENTRY_DATA_MAX, buffer full: sync first), WAL_ENOMEM, WAL_EFAILED.
 */
int wal_append(wal *w, const raft_entry *ents, size_t n, cord_error *err);

/*
 * wal_set_hard_state: buffer a hard state record (skipped when equal to the
 * current one). Errors: WAL_ELIMIT, WAL_ENOMEM, WAL_EFAILED.
 */
int wal_set_hard_state(wal *w, const raft_hard_state *hs, cord_error *err);

/*
 * wal_mark_snapshot: record that a snapshot of the state machine at (index,
 * term) exists, so entries <= index are no longer part of the log (log
 * compaction of the member's own log). Requires snapshot_index <= index <=
 * last_index. Segments become releasable once this is persisted.
 * Errors: WAL_EINVAL, WAL_ELIMIT, WAL_ENOMEM, WAL_EFAILED.
 */
int wal_mark_snapshot(wal *w, uint64_t index, uint64_t term, cord_error *err);

/*
 * wal_install_snapshot: record that the log was replaced by a snapshot at
 * (index, term) received from the leader: every entry is discarded, the log
 * continues at index + 1. Requires index >= snapshot_index.
 * Errors: WAL_EINVAL, WAL_ELIMIT, WAL_ENOMEM, WAL_EFAILED.
 */
int wal_install_snapshot(wal *w, uint64_t index, uint64_t term, cord_error *err);

/*
 * wal_sync_begin (owner thread): hand everything buffered to the sync side.
 * Errors: WAL_EBUSY (a sync is in flight), WAL_EFAILED.
 */
int wal_sync_begin(wal *w, cord_error *err);

/*
 * wal_sync_do (worker thread, once per begin): write the handed-over batch
 * with one write() and one fdatasync() (plus, when the segment is full, the
 * steps that close it and create the next). An empty batch does nothing.
 * Returns: WAL_OK, WAL_EIO (errno kept), WAL_ELIMIT (too many segments); the
 * message is kept for wal_sync_end.
 */
int wal_sync_do(wal *w);

/*
 * wal_sync_end (owner thread): finish the sync; on success *out (may be
 * NULL) is where the durable log now ends. On failure the WAL is failed (see
 * FAILURES above) and the error of wal_sync_do is returned.
 * Errors: WAL_EINVAL (no sync begun), WAL_EIO, WAL_ELIMIT.
 */
int wal_sync_end(wal *w, wal_persisted *out, cord_error *err);

/* wal_sync: begin + do + end on the calling thread. */
int wal_sync(wal *w, wal_persisted *out, cord_error *err);

/*
 * wal_read: entries of the log as it now stands (for each index, the latest write: the same
 * rules as replay), from index `from` on, in order and without gaps, stopping before the
 * entry that would take the data past max_bytes (but always at least one entry), after
 * max_n entries, or after the last entry that is durable (persisted: written by a completed
 * wal_sync_end / wal_sync). Owner thread; allowed while a sync is in flight (it reads only
 * records a completed sync wrote, never the buffer). *out is one malloc'd block holding the
 * raft_entry array and all their data (free(*out) releases everything); *n_out its count.
 * "As it now stands" includes appends not yet durable: the read stops before the lowest
 * index that a buffered (unsynced) entry or installed snapshot rewrites, and indexes at or
 * below a buffered snapshot marker count as compacted.
 * Errors: WAL_EINVAL (from <= the snapshot marker's index: compacted, say so in the message;
 * from > last durable index; max_n 0), WAL_EIO (pread failed), WAL_ECORRUPT (a record is not
 * what the index says it is: checksum, type, index mismatch -- message names file and
 * offset), WAL_ENOMEM, WAL_EFAILED.
 */
int wal_read(wal *w, uint64_t from, uint64_t max_bytes, uint32_t max_n, raft_entry **out,
             uint32_t *n_out, cord_error *err);

/*
 * wal_release_to: delete the oldest segments whose entries all have indexes
 * < index, never the segment being written. Requires index <= persisted
 * snapshot marker index + 1 (only what a durable snapshot covers can go).
 * Call with no sync in flight, on the owner thread or a worker the owner
 * waits for; it may block on unlink and directory fsync.
 * *released (may be NULL) receives the number of segments deleted.
 * Errors: WAL_EINVAL, WAL_EBUSY, WAL_EIO, WAL_EFAILED.
 */
int wal_release_to(wal *w, uint64_t index, uint64_t *released, cord_error *err);

/* wal_segment_count: number of segment files (owner, no sync in flight). */
uint64_t wal_segment_count(const wal *w);

/*
 * wal_close: close files and free. Buffered appends that were never synced
 * are dropped (sync first). Must not be called with a sync in flight. NULL ok.
 */
void wal_close(wal *w);

/* wal_status_name: "WAL_ECORRUPT" etc., for logs and tests. */
const char *wal_status_name(int status);

#endif
