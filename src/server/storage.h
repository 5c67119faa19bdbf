/*
 * storage.h: a cord member's storage: the write-ahead log, the snapshot
 * files and the MVCC key space, driven by the batches of the Raft core.
 *
 * This header is the manual. It is single-threaded for now: every call,
 * fdatasync included (wal_sync), runs on the calling thread.
 *
 * FILES (under the member's data directory, like etcd's)
 *     <data-dir>/member/wal/    WAL segments (src/wal)
 *     <data-dir>/member/snap/   snapshot files (src/snap); their data
 *                               section is a compact copy of the MVCC
 *                               store (an LMDB data file)
 *     <data-dir>/member/db/     the MVCC store (src/mvcc, LMDB)
 * Directories are created 0700, files 0600.
 *
 * THE LOOP
 *     storage_open(dir, opts, &st, &err);
 *     r = raft_new(&cfg, bootstrap, storage_restore(st), ...);
 *     storage_restore_release(st);               (optional: frees the copy)
 *     loop:
 *         raft_tick / raft_step / raft_propose ...
 *         while (raft_has_ready(r)) {
 *             raft_ready(r, &rd);
 *             storage_handle_ready(st, &rd, apply_fn, ctx);   persist, sync, apply
 *             send rd.messages (a leader fills snapshot chunks with
 *                 storage_read_snapshot_chunk)
 *             raft_advance(r, &rd);
 *             raft_persisted(r, rd.seq);          (the batch was synced above)
 *             if (rd.want_snapshot) storage_take_snapshot(st, r);
 *         }
 * storage_handle_ready works from the batch alone and makes no raft_* call:
 * between raft_ready and raft_advance the core accepts none.
 *
 * WHAT HANDLE_READY DOES, IN THIS ORDER
 * 1. rd.snapshot_chunk: written into a snapshot receiver (a chunk at offset
 *    0 starts a new one).
 * 2. rd.snapshot: the received file is checked and installed (snap commit:
 *    fsync + rename), the MVCC store is replaced by its data
 *    (mvcc_snapshot_restore), and wal_install_snapshot records it.
 * 3. rd.entries are appended, rd.hard_state recorded, then ONE wal_sync
 *    (one fdatasync) for the whole batch.
 * 4. rd.committed are applied in ONE MVCC batch (one LMDB write transaction)
 *    that also stores the index and term of the last of them, so that after
 *    a crash no entry is applied twice and none is skipped. NORMAL entries
 *    with data carry a command in the test command format below; empty ones
 *    (the leader's no-op) change nothing; CONF entries are recorded (index,
 *    configuration) and do not touch the key space.
 * 5. apply_fn is called once per committed entry, after the MVCC batch is
 *    committed: a write may be acknowledged to its client from there.
 *
 * CRASH RECOVERY (storage_open)
 * - The newest snapshot file is loaded and verified (a damaged one stops the
 *   start-up with SNAP's message naming the file).
 * - The WAL is opened (a torn tail is cut; damage elsewhere stops the
 *   start-up: STORAGE_ECORRUPT naming the segment and offset) and replayed.
 * - A snapshot file newer than the WAL's snapshot marker is one whose
 *   marker did not reach the WAL before a crash: if the WAL holds the entry
 *   at its index with its term, the marker is written now (own snapshot);
 *   otherwise the install of a received snapshot is completed
 *   (wal_install_snapshot: the log restarts after it).
 * - With mvcc no_sync, a store left by an earlier boot with unsynced commits
 *   (marker member/db.unsynced names another boot id: the machine crashed
 *   or lost power) may be torn; it is discarded first and rebuilt from the
 *   snapshot and the WAL (see prepare_unsynced_store in storage.c).
 * - If the MVCC store's applied index is behind the snapshot (a crash while
 *   installing, or a discarded store), the store is restored from
 *   the snapshot file first.
 * - The raft_restore handed to raft_new holds the hard state, the snapshot's
 *   metadata (membership decoded from the file), the entries after it and
 *   applied = the MVCC store's applied index: the core re-delivers the
 *   committed entries after it, and only those.
 *
 * FAILURES
 * Any error from storage_handle_ready or storage_take_snapshot (but for a
 * snapshot whose copy or file could not be written) leaves the storage
 * failed: a batch may be half persisted and the core cannot be told,
 * so the member must stop acknowledging writes (and exit; a restart re-reads
 * what reached the disk). Every later call except the queries and
 * storage_close returns STORAGE_EFAILED with the original message.
 *
 * TEST COMMAND FORMAT (what NORMAL entries carry for now; the server will
 * later carry etcd's protobuf requests instead)
 *     put:     'P' | u32 little-endian key length | key | value (the rest)
 *     delete:  'D' | key (the rest)                  deletes that one key
 * A NORMAL entry whose data does not decode is applied as a no-op and
 * reported with result STORAGE_EBADCMD (the same on every member).
 *
 * ERRORS
 * Functions return a code from enum storage_status and fill `err` (may be
 * NULL) with it, the errno behind it and a message naming the file, the
 * module and the step.
 */
#ifndef CORD_SERVER_STORAGE_H
#define CORD_SERVER_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/errors.h"
#include "mvcc/mvcc.h"
#include "raft/raft.h"
#include "wal/wal.h"

enum storage_status {
    STORAGE_OK = 0,
    STORAGE_EINVAL = -1,   /* bad argument, or a batch that contradicts the storage */
    STORAGE_EIO = -2,      /* a system call failed (err->sys_errno: ENOSPC, EIO, ...) */
    STORAGE_ECORRUPT = -3, /* files on disk are damaged or contradict each other */
    STORAGE_ENOMEM = -4,
    STORAGE_ELOCKED = -5, /* another process has this member's WAL open */
    STORAGE_ELIMIT = -6,  /* a size limit of the WAL, snapshot or store was reached */
    STORAGE_ENOENT = -7,  /* storage_read_snapshot_chunk: no snapshot at that index */
    STORAGE_EFAILED = -8, /* an earlier persistence step failed; stop (see FAILURES) */
    STORAGE_EBADCMD = -9, /* (apply result only) the entry's command did not decode */
};

/* One snapshot file is enough: a restart needs the newest (the WAL is released up to it), and
 * a leader streaming an older one to a follower keeps its file open, or starts over with the
 * newest when a chunk cannot be read. Each file is a copy of the store: a second one doubled
 * what the snapshots took on disk. */
#define STORAGE_SNAP_KEEP_DEFAULT 1

typedef struct storage_options {
    wal_options wal;   /* all zero: defaults */
    mvcc_options mvcc; /* all zero: defaults */
    size_t snap_keep;  /* snapshot files kept by storage_take_snapshot; 0: default 1 */
    /* A snapshot's data is the store's file as it is while at most this share of it is free
     * pages, else a compacting copy (percent, 1-100; 0: default 25). */
    unsigned snapshot_image_max_free_percent;
    /* Of the entries the store has applied, the restore keeps the data of the newest ones up
     * to this many bytes (raft_config.log_mem_bytes); the older stay on disk (their index and
     * term are kept, and configuration entries whole). 0: all of them. */
    uint64_t restore_applied_bytes;
} storage_options;

typedef struct storage storage;

/*
 * storage_open: open (creating when missing) the member's storage under
 * data_dir and recover it (see CRASH RECOVERY).
 * Takes: the data directory (data_dir/member/... is used), options (NULL:
 * defaults), where to store the handle.
 * Returns: STORAGE_OK with *out set; storage_restore(*out) is then ready
 * for raft_new.
 * Errors: STORAGE_EINVAL (path too long, bad options), STORAGE_EIO,
 * STORAGE_ECORRUPT (damaged WAL, snapshot or store; a WAL marker or
 * an applied index no snapshot or log can back), STORAGE_ELOCKED,
 * STORAGE_ELIMIT, STORAGE_ENOMEM.
 */
int storage_open(const char *data_dir, const storage_options *opts, storage **out, cord_error *err);

/*
 * storage_restore: what raft_new needs to resume (all zero for a fresh
 * member: pass the bootstrap configuration then). Valid until
 * storage_restore_release or storage_close. The entries are the log after
 * the snapshot, held in memory until released: every entry's index and term,
 * the data of those the store has not applied and of configuration entries,
 * and the data of the newest applied ones up to restore_applied_bytes (the
 * rest, restore.unloaded_through and below, stay on disk).
 */
const raft_restore *storage_restore(const storage *st);

/* storage_store_rebuilt: whether storage_open discarded an unsynced store
 * of an earlier boot (it is rebuilt from the snapshot and the log). */
bool storage_store_rebuilt(const storage *st);

/* storage_restore_release: free the copy of the log kept for raft_new. */
void storage_restore_release(storage *st);

/* One committed entry as applied, for the apply callback. */
typedef enum storage_cmd_op {
    STORAGE_CMD_NONE = 0, /* no-op entry, CONF entry, or undecodable command */
    STORAGE_CMD_PUT = 1,
    STORAGE_CMD_DELETE = 2,
} storage_cmd_op;

typedef struct storage_cmd {
    storage_cmd_op op;
    const uint8_t *key;
    uint32_t key_len;
    const uint8_t *value; /* put only */
    uint32_t value_len;
} storage_cmd;

typedef struct storage_applied {
    const raft_entry *entry; /* valid during the call */
    storage_cmd cmd;         /* points into entry->data */
    /* MVCC_OK, a request error of mvcc.h (MVCC_ETOOLARGE, MVCC_ENOSPACE, ...:
     * the entry changed nothing, on every member alike) or STORAGE_EBADCMD. */
    int result;
    int64_t revision; /* the store's revision after this entry */
    int64_t deleted;  /* delete: keys deleted (0 or 1) */
} storage_applied;

/* Called once per applied entry, after its MVCC batch committed. */
typedef void (*storage_apply_fn)(void *ctx, const storage_applied *a);

/*
 * An executor applies the NORMAL entries that carry data, inside the MVCC
 * batch of handle_ready (mv has the batch open: call mvcc_put, mvcc_txn, ...
 * on it and nothing that opens or commits a transaction). It must be
 * deterministic: every member applies the same entries alike. It returns
 * STORAGE_OK, also when the request itself failed (that is a result for the
 * client, to be kept by the executor), or a storage error code for a fatal
 * failure (then the batch is aborted and the storage fails).
 */
typedef int (*storage_exec_fn)(void *ctx, mvcc_store *mv, const raft_entry *e, cord_error *err);

/* Installs (fn non-NULL) or removes the executor. Without one, entries are
 * read in the test command format below. */
void storage_set_executor(storage *st, storage_exec_fn fn, void *ctx);

/*
 * storage_handle_ready: persist and apply one batch of the core (see WHAT
 * HANDLE_READY DOES). Call between raft_ready and raft_advance; on
 * STORAGE_OK the batch is durable: call raft_persisted(r, rd->seq) after
 * raft_advance. apply_fn may be NULL.
 * Errors (the storage is then failed): STORAGE_EIO, STORAGE_ECORRUPT (a
 * received snapshot fails its checks, the store's applied index does not
 * match the batch), STORAGE_EINVAL (a chunk out of order, a batch that does
 * not follow the log), STORAGE_ELIMIT, STORAGE_ENOMEM, STORAGE_EFAILED.
 */
int storage_handle_ready(storage *st, const struct raft_ready *rd, storage_apply_fn apply_fn,
                         void *ctx, cord_error *err);

/*
 * storage_handle_ready_async: storage_handle_ready without its fdatasync,
 * for a caller that syncs on a worker thread (group commit). Everything
 * else happens as described above, applying included (committed entries
 * are durable already). *need_sync says whether the batch left WAL records
 * to sync: then call storage_sync_begin (owner thread), storage_sync_do (any
 * one thread, e.g. a libuv worker), storage_sync_end (owner thread), and
 * only then raft_persisted(r, rd->seq). A batch that installs a snapshot is
 * synced inside, as before (*need_sync false). While a sync is in flight the
 * caller may go on with storage_handle_ready_async for batches that neither
 * store a snapshot chunk nor install a snapshot (raft_snapshot_pending), whose
 * records then wait for the next sync; it must not call storage_handle_ready,
 * storage_take_snapshot or storage_sync_begin until storage_sync_end.
 * Errors: as storage_handle_ready; storage_sync_begin/end: STORAGE_EIO,
 * STORAGE_EFAILED (the storage is then failed).
 */
int storage_handle_ready_async(storage *st, const struct raft_ready *rd, storage_apply_fn apply_fn,
                               void *ctx, bool *need_sync, cord_error *err);
int storage_sync_begin(storage *st, cord_error *err);
void storage_sync_do(storage *st);
int storage_sync_end(storage *st, cord_error *err);

/*
 * storage_take_snapshot: take a snapshot at the MVCC store's applied index
 * (call after raft_advance, when the batch had want_snapshot): the store is
 * copied into a snapshot file whose membership is raft_conf_encode of the
 * configuration in force at that index, the WAL gets the snapshot marker
 * and is synced, the core is told (raft_snapshot_taken with the file's
 * size: the byte stream a leader sends), older snapshot files beyond
 * snap_keep are deleted and WAL segments the snapshot covers are released.
 * Does nothing when the applied index is not past the last snapshot.
 * Errors (the storage is then failed): STORAGE_EIO, STORAGE_EINVAL (the
 * core refused the snapshot), STORAGE_ECORRUPT (the store's applied term
 * differs from the core's term at that index), STORAGE_ELIMIT,
 * STORAGE_ENOMEM, STORAGE_EFAILED. Except: when copying the store or
 * writing the snapshot file fails with STORAGE_EIO or STORAGE_ENOMEM (a
 * full disk), nothing has changed and the storage is not failed
 * (storage_failed() says false): the snapshot was not taken; try again
 * later.
 */
int storage_take_snapshot(storage *st, raft *r, cord_error *err);

/*
 * The same in three steps, so that the copy (which takes time proportional to
 * the store) runs on another thread while the owner goes on applying:
 * - storage_snapshot_begin (owner thread): *started false when there is
 *   nothing to do (applied index not past the last snapshot).
 * - storage_snapshot_work (any one thread, once, after a begin that started):
 *   writes the snapshot file from the store as of its newest commit, with the
 *   configuration in force at that index. The data is the store's file as it
 *   is, read with pread (mvcc_image: no pass through the map, no scratch copy),
 *   unless more of it than snapshot_image_max_free_percent is free pages:
 *   then a compacting copy (mvcc_snapshot_copy into the scratch file) makes
 *   it smaller. It touches nothing the owner uses but the store's environment
 *   and the snapshot directory. If a configuration entry is applied while it runs, it gives
 *   up (no file) and the owner may begin again later.
 * - storage_snapshot_end (owner thread, after the work returned; the WAL
 *   must be idle, as for storage_take_snapshot): WAL marker and sync, the
 *   core is told, old files deleted, segments released.
 * While a snapshot is between begin and end, the owner must not install a
 * received snapshot (hold batches with raft_snapshot_pending).
 * Errors of end: as storage_take_snapshot (for the work's failures too).
 */
int storage_snapshot_begin(storage *st, raft *r, bool *started, cord_error *err);
void storage_snapshot_work(storage *st);
int storage_snapshot_end(storage *st, raft *r, cord_error *err);
/* The same without waiting for the WAL: the marker is only appended (the WAL may be syncing),
 * the core is told, old files deleted; the segments it covers are released by a later
 * storage_snapshot_release once a sync has made the marker durable. */
int storage_snapshot_end_async(storage *st, raft *r, cord_error *err);
/* Releases the WAL segments behind the newest snapshot if its marker is durable (owner
 * thread, no WAL sync in flight); does nothing otherwise. Errors: as storage_snapshot_end. */
int storage_snapshot_release(storage *st, cord_error *err);
/* How the newest snapshot this storage wrote was made: its data's bytes, the store's free
 * bytes at that moment, and whether they were compacted away. */
typedef struct storage_snapshot_made {
    uint64_t index;
    uint64_t data_bytes;
    uint64_t free_bytes;
    bool compacted;
} storage_snapshot_made;
storage_snapshot_made storage_last_snapshot_made(const storage *st);
/* Drops a begun snapshot without its end (the member is stopping): the file, if the work
 * wrote one, is found at the next start (CRASH RECOVERY: a snapshot newer than the marker). */
void storage_snapshot_abandon(storage *st);

/*
 * storage_read_snapshot_chunk: read up to `len` bytes at `offset` of the
 * snapshot file with the given index (what a leader puts in the data of a
 * RAFT_MSG_SNAPSHOT chunk: msg.log_index, msg.offset, msg.len).
 * *n receives the count (less than len only at the end of the file).
 * Works while the storage is failed (it only reads).
 * Errors: STORAGE_ENOENT (no such snapshot), STORAGE_ECORRUPT, STORAGE_EIO,
 * STORAGE_ENOMEM.
 */
int storage_read_snapshot_chunk(storage *st, uint64_t index, uint64_t offset, uint32_t len,
                                uint8_t *buf, size_t *n, cord_error *err);

/*
 * storage_read_entries: entries of the durable log from index `from` on (what a leader reads
 * back for rd.fetches once the core has dropped them from memory), at most about max_bytes of
 * data (at least one entry). *out is one malloc'd block (free(*out)); *n its count. Owner
 * thread; allowed while a WAL sync runs. Errors: STORAGE_EINVAL (compacted behind a snapshot,
 * or not durable yet), STORAGE_EIO, STORAGE_ECORRUPT, STORAGE_ENOMEM, STORAGE_EFAILED. A
 * failed read does not fail the storage.
 */
int storage_read_entries(storage *st, uint64_t from, uint64_t max_bytes, raft_entry **out,
                         uint32_t *n, cord_error *err);

/* ------------------------------------------------------------- queries */

/* The MVCC store (reads; do not open batches on it). */
mvcc_store *storage_mvcc(storage *st);
/* Writes the store's newest committed state into fd (a new regular file, from offset 0), as
 * a store file that `cord snapshot restore` takes. Safe on a worker thread while the owner
 * goes on, like storage_snapshot_work, and with the same choice: the store's file as it is
 * (read with pread; nothing added to the resident set), unless more of it than
 * snapshot_image_max_free_percent is free pages: then a compacting copy (*compacted).
 * *applied_index: what the copy holds. Errors: STORAGE_EIO, STORAGE_ENOMEM. */
int storage_copy_store(storage *st, int fd, uint64_t *applied_index, bool *compacted,
                       cord_error *err);

/* Index and term of the last applied entry. */
void storage_applied_get(const storage *st, uint64_t *index, uint64_t *term);

/* Index and term of the newest snapshot (0, 0: none). */
void storage_snapshot_get(const storage *st, uint64_t *index, uint64_t *term);

/* Index of the last applied CONF entry (0: none since the snapshot) and the
 * configuration in force at the applied index (n_voters 0 if unknown). */
uint64_t storage_conf_get(const storage *st, raft_conf *conf);

/* true once a persistence step failed. */
bool storage_failed(const storage *st);

/* Closes everything and frees (every batch was synced by storage_handle_ready,
 * so nothing is lost). An unfinished snapshot receive is dropped. NULL ok. */
void storage_close(storage *st);

/* "STORAGE_ECORRUPT" etc. */
const char *storage_status_name(int status);

/* ------------------------------------------------ test command format */

/* Bytes needed for a put / delete command. */
size_t storage_cmd_put_len(uint32_t key_len, uint32_t value_len);
size_t storage_cmd_delete_len(uint32_t key_len);

/* Encode into buf (at least the length above). Return bytes written. */
size_t storage_cmd_encode_put(uint8_t *buf, const void *key, uint32_t key_len, const void *value,
                              uint32_t value_len);
size_t storage_cmd_encode_delete(uint8_t *buf, const void *key, uint32_t key_len);

/* Decode an entry's data. Returns STORAGE_OK or STORAGE_EBADCMD (unknown
 * op, short, empty key). out points into data. */
int storage_cmd_decode(const uint8_t *data, size_t len, storage_cmd *out);

#endif
