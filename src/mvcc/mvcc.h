/*
 * mvcc.h — cord's MVCC key space on LMDB: etcd's revision model as a C library.
 *
 * This header is the manual. Every public function says what it takes, what it returns
 * and which errors it can give.
 *
 * ## Model (the same as etcd v3, because clients depend on it)
 *
 * - The store has a current revision. A new store is at revision 1; the first write makes
 *   revision 2 (as in etcd).
 * - Every write transaction that changes something (a Put, a DeleteRange that deletes at
 *   least one key, a Txn whose chosen branch writes) makes exactly one new main revision.
 *   Operations inside it get sub-revisions 0, 1, 2, ... in execution order.
 * - Each key carries create_revision, mod_revision, version (1 on creation, +1 per put) and
 *   lease. A delete writes a tombstone: the key's history (and watch replay) keeps it; the
 *   next put re-creates the key with version 1.
 * - Reads at a past revision see the store as it was then, down to the compacted revision.
 *   Compaction to C removes history older than C: for each key, only the newest version at
 *   or below C survives (a tombstone older than C is removed too).
 *
 * ## Threading and transactions
 *
 * A store handle is owned by one thread at a time (cord's apply thread). Writes happen
 * inside an *apply batch* — one LMDB write transaction — that the caller opens with
 * mvcc_batch_begin(), fills with Put/DeleteRange/Txn/Compact/... calls for many applied Raft
 * entries, and closes with mvcc_batch_commit(store, applied_index, term): the applied Raft
 * index is written in that same LMDB transaction, so after a crash either all of the batch
 * and its index are on disk, or none of it. On restart, mvcc_applied() tells which entries
 * to replay.
 *
 * Every write function also works without an open batch: it then runs in its own LMDB
 * write transaction and commits it (the applied index is left unchanged). This is for
 * tools and tests; the server should always use batches.
 *
 * Reads (mvcc_range, read-only mvcc_txn, hashes, events) outside a batch use a short LMDB
 * read transaction; inside a batch they read the batch's uncommitted state (which is what
 * the apply loop wants: entry N+1 sees entry N).
 *
 * ## Errors
 *
 * Functions return MVCC_OK (0) or a negative MVCC_E* code, and when `err` (cord's common
 * cord_error, may be NULL) is given they record the code, the errno behind a system-call
 * failure and a message. For the etcd errors the message is the exact etcd string
 * (mvcc_strerror()); mvcc_grpc_status() gives the gRPC status code and the message etcd's
 * gRPC layer sends ("etcdserver: mvcc: ..."), which etcd clients match on.
 *
 * Validation errors (compacted, future revision, key not found, duplicate key, quota, ...)
 * leave the store unchanged: every request is fully checked before its first write.
 * Storage failures (MVCC_EIO, MVCC_ECORRUPT, MVCC_ENOMEM, and MVCC_ENOSPACE when it comes
 * from LMDB's map being full) poison an open batch: later calls in it fail with
 * MVCC_EBATCH and mvcc_batch_commit() aborts it. Nothing of the batch is then on disk and
 * the applied index did not move: re-apply the same entries.
 *
 * ## Results and memory
 *
 * Responses point into an mvcc_arena owned by the caller. Reset or free the arena to free a
 * whole response tree in one call. An arena has a byte limit: a read whose result would
 * exceed it fails with MVCC_ERESULT. A *write* never fails because of the arena: the write
 * is applied in full (replicas must stay identical), and if its response (prev_kv, ranges
 * inside a Txn) did not fit, the call returns MVCC_ERESULT after applying it.
 *
 * ## On-disk layout (LMDB environment in a directory: data.mdb, lock.mdb)
 *
 * - "key":       key = revision (8-byte big-endian main, '_', 8-byte big-endian sub, plus 't'
 *                for a tombstone: etcd's 17/18-byte bucket key), value = the protobuf
 *                encoding of mvccpb.KeyValue (a tombstone's value holds only the key).
 *                This is etcd's "key" bucket byte for byte: HashKV gives the same value
 *                as etcd 3.4 for the same history (checked against etcd 3.4.23, before and
 *                after compaction).
 * - "key_index": key = user key ++ ~main (8 BE) ++ ~sub (8 BE) (newest revision first, with
 *                a comparator that orders by user key, then by revision),
 *                value = flags (bit 0 tombstone) [+ create_revision, version, lease as 8 BE
 *                each]. Point and range reads at any revision are B-tree seeks; nothing is
 *                held in RAM, so opening a store costs the same at any size.
 * - "lease_keys": key = lease id (8 BE) ++ user key, empty value: the keys attached to
 *                each lease, maintained by puts and deletes.
 * - "meta":      consistent_index and term (applied Raft entry), current_rev, compact_rev,
 *                compaction progress (scheduled, finished, cursor), alarm_nospace, format.
 * Other modules may open their own named databases in the same environment (see
 * mvcc_env()/mvcc_batch_txn()); names starting with "key", "lease_keys" and "meta" are
 * taken. Up to MVCC_MAX_DBS databases exist in total.
 *
 * ## Durability
 *
 * By default every commit is fsynced by LMDB. With mvcc_options.no_sync the store commits
 * without fsync (MDB_NOSYNC): a killed process loses nothing (the page cache keeps every
 * commit), but a system crash or power loss may leave a torn file (LMDB writes the meta
 * page without ordering it after the data pages), so after one the store must be rebuilt
 * from a durable record (the server's storage does: a snapshot file and the WAL, see
 * storage.h). mvcc_sync() makes everything committed durable. With
 * mvcc_options.no_meta_sync (MDB_NOMETASYNC) the data pages are still fsynced at each commit
 * but the meta page is not: a system crash may undo the last commits, never corrupt; the
 * same replay rule applies.
 *
 * ## Limits
 *
 * Keys are 1..mvcc_options.max_value_bytes bytes, as values are (etcd limits neither but by
 * the request size, which the server checks first). Keys longer than LMDB's key limit are
 * indexed by a prefix and a hash (mvcc_internal.h). Txn lists are at most
 * mvcc_options.max_txn_ops long (etcd's --max-txn-ops).
 */
#ifndef CORD_MVCC_H
#define CORD_MVCC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "common/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Limits and defaults                                                                          */

#define MVCC_DEFAULT_QUOTA_BYTES       (2ull << 30) /* etcd --quota-backend-bytes default */
#define MVCC_DEFAULT_MAX_TXN_OPS       128u         /* etcd --max-txn-ops default */
#define MVCC_DEFAULT_COMPACT_BATCH     1000u        /* revisions per compaction step */
#define MVCC_DEFAULT_MAX_VALUE_BYTES   (2u << 20)
#define MVCC_DEFAULT_ARENA_LIMIT_BYTES (256u << 20)
#define MVCC_MAX_DBS                   16u  /* named LMDB databases, mvcc uses 4 */
#define MVCC_KV_OVERHEAD_BYTES         256u /* etcd's quota cost estimate per key-value */

/* ------------------------------------------------------------------------------------------ */
/* Errors                                                                                       */

enum {
    MVCC_OK = 0,
    MVCC_ECOMPACTED = -1,      /* "mvcc: required revision has been compacted" */
    MVCC_EFUTURE = -2,         /* "mvcc: required revision is a future revision" */
    MVCC_ENOSPACE = -3,        /* "etcdserver: mvcc: database space exceeded" */
    MVCC_EEMPTYKEY = -4,       /* "etcdserver: key is not provided" */
    MVCC_EKEYNOTFOUND = -5,    /* "etcdserver: key not found" */
    MVCC_EVALUEPROVIDED = -6,  /* "etcdserver: value is provided" */
    MVCC_ELEASEPROVIDED = -7,  /* "etcdserver: lease is provided" */
    MVCC_ETOOMANYOPS = -8,     /* "etcdserver: too many operations in txn request" */
    MVCC_EDUPKEY = -9,         /* "etcdserver: duplicate key given in txn request" */
    MVCC_ELEASENOTFOUND = -10, /* "etcdserver: requested lease not found" */
    MVCC_ETOOLARGE = -11,      /* "etcdserver: request is too large" (key or value too long) */
    MVCC_EINVAL = -12,         /* bad argument (sort option, API misuse) */
    MVCC_ERESULT = -13,        /* the response did not fit in the arena */
    MVCC_EBUSY = -14,          /* not allowed while an apply batch is open / batch state */
    MVCC_EBATCH = -15,         /* the open batch failed earlier; abort it */
    MVCC_EIO = -16,            /* LMDB or system call failure */
    MVCC_ECORRUPT = -17,       /* on-disk data does not decode / unknown format */
    MVCC_ENOMEM = -18,         /* malloc failed */
};

/* Takes an MVCC_E* code. Returns its fixed message (etcd's string for the etcd errors),
 * "unknown error" for other values. Never NULL. */
const char *mvcc_strerror(int code);

/* Takes an MVCC_E* code. Returns the gRPC status code etcd uses for it (0 OK, 3
 * InvalidArgument, 5 NotFound, 8 ResourceExhausted, 11 OutOfRange, 13 Internal, ...) and
 * stores in *message the message etcd's gRPC layer sends (e.g. "etcdserver: mvcc: required
 * revision has been compacted"). `message` may be NULL. */
int mvcc_grpc_status(int code, const char **message);

/* ------------------------------------------------------------------------------------------ */
/* Result arena                                                                                 */

typedef struct mvcc_arena_chunk mvcc_arena_chunk;

/* A bump allocator that owns response memory. Zero-initialised or mvcc_arena_init'ed. */
typedef struct mvcc_arena {
    mvcc_arena_chunk *chunks;
    size_t used_bytes; /* bytes taken from malloc, including chunk headers */
    size_t max_bytes;  /* 0 means MVCC_DEFAULT_ARENA_LIMIT_BYTES */
    bool exhausted;    /* an allocation failed since the last reset */
} mvcc_arena;

/* Takes an arena and a byte limit (0: default). Cannot fail (allocates lazily). */
void mvcc_arena_init(mvcc_arena *arena, size_t max_bytes);
/* Allocates `size` bytes aligned for any type. Returns NULL (and sets arena->exhausted)
 * when the limit would be passed or malloc fails. size 0 returns a valid unique pointer. */
void *mvcc_arena_alloc(mvcc_arena *arena, size_t size);
/* Frees everything allocated from the arena; the arena can be reused. */
void mvcc_arena_reset(mvcc_arena *arena);

/* ------------------------------------------------------------------------------------------ */
/* Plain data                                                                                   */

/* A byte string. In requests it is borrowed from the caller; in responses it points into
 * the arena. `data` may be NULL when `len` is 0. */
typedef struct mvcc_bytes {
    const uint8_t *data;
    size_t len;
} mvcc_bytes;

/* mvccpb.KeyValue */
typedef struct mvcc_kv {
    mvcc_bytes key;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    mvcc_bytes value;
    int64_t lease;
} mvcc_kv;

/* Range end conventions, as in etcd:
 *   range_end.len == 0            the single key `key`
 *   range_end == "\0" (one byte)  every key >= key ("from key")
 *   otherwise                     [key, range_end); empty when range_end <= key
 * A prefix range is key=prefix, range_end=prefix with its last byte incremented (the caller
 * computes it, like etcd clients do). */

typedef enum mvcc_sort_order {
    MVCC_SORT_NONE = 0,
    MVCC_SORT_ASCEND = 1,
    MVCC_SORT_DESCEND = 2,
} mvcc_sort_order;

typedef enum mvcc_sort_target {
    MVCC_SORT_KEY = 0,
    MVCC_SORT_VERSION = 1,
    MVCC_SORT_CREATE = 2,
    MVCC_SORT_MOD = 3,
    MVCC_SORT_VALUE = 4,
} mvcc_sort_target;

/* etcdserverpb.RangeRequest (serializable is the server's business). */
typedef struct mvcc_range_req {
    mvcc_bytes key;
    mvcc_bytes range_end;
    int64_t limit;    /* <= 0: no limit */
    int64_t revision; /* <= 0: current */
    mvcc_sort_order sort_order;
    mvcc_sort_target sort_target;
    bool keys_only;
    bool count_only;
    int64_t min_mod_revision; /* 0: no filter */
    int64_t max_mod_revision;
    int64_t min_create_revision;
    int64_t max_create_revision;
} mvcc_range_req;

typedef struct mvcc_range_resp {
    int64_t revision; /* header.revision: the store's revision the read ran against */
    mvcc_kv *kvs;
    size_t kvs_len;
    bool more;     /* more keys matched than `limit` returned */
    int64_t count; /* number of keys in the range at the revision (before filters/limit) */
} mvcc_range_resp;

typedef struct mvcc_put_req {
    mvcc_bytes key;
    mvcc_bytes value;
    int64_t lease;
    bool prev_kv;
    bool ignore_value; /* keep the current value; value must be empty */
    bool ignore_lease; /* keep the current lease; lease must be 0 */
} mvcc_put_req;

typedef struct mvcc_put_resp {
    int64_t revision;
    mvcc_kv *prev_kv; /* NULL unless prev_kv was asked and the key existed */
} mvcc_put_resp;

typedef struct mvcc_delete_req {
    mvcc_bytes key;
    mvcc_bytes range_end;
    bool prev_kv;
} mvcc_delete_req;

typedef struct mvcc_delete_resp {
    int64_t revision;
    int64_t deleted;
    mvcc_kv *prev_kvs; /* only when prev_kv was asked */
    size_t prev_kvs_len;
} mvcc_delete_resp;

/* etcdserverpb.Compare; enum values are etcd's. */
typedef enum mvcc_compare_result {
    MVCC_CMP_EQUAL = 0,
    MVCC_CMP_GREATER = 1,
    MVCC_CMP_LESS = 2,
    MVCC_CMP_NOT_EQUAL = 3,
} mvcc_compare_result;

typedef enum mvcc_compare_target {
    MVCC_CMP_VERSION = 0,
    MVCC_CMP_CREATE = 1,
    MVCC_CMP_MOD = 2,
    MVCC_CMP_VALUE = 3,
    MVCC_CMP_LEASE = 4,
} mvcc_compare_target;

typedef struct mvcc_compare {
    mvcc_compare_result result;
    mvcc_compare_target target;
    mvcc_bytes key;
    mvcc_bytes range_end; /* same conventions as Range; every key in it must satisfy */
    int64_t number;       /* version, create_revision, mod_revision or lease */
    mvcc_bytes value;     /* for MVCC_CMP_VALUE */
} mvcc_compare;

typedef enum mvcc_op_type {
    MVCC_OP_NONE = 0, /* an empty RequestOp: rejected with MVCC_EKEYNOTFOUND, like etcd */
    MVCC_OP_RANGE = 1,
    MVCC_OP_PUT = 2,
    MVCC_OP_DELETE_RANGE = 3,
    MVCC_OP_TXN = 4,
} mvcc_op_type;

struct mvcc_txn_req;
struct mvcc_txn_resp;

/* etcdserverpb.RequestOp */
typedef struct mvcc_request_op {
    mvcc_op_type type;
    union {
        mvcc_range_req range;
        mvcc_put_req put;
        mvcc_delete_req delete_range;
        const struct mvcc_txn_req *txn;
    };
} mvcc_request_op;

/* etcdserverpb.ResponseOp */
typedef struct mvcc_response_op {
    mvcc_op_type type;
    union {
        mvcc_range_resp range;
        mvcc_put_resp put;
        mvcc_delete_resp delete_range;
        struct mvcc_txn_resp *txn;
    };
} mvcc_response_op;

typedef struct mvcc_txn_req {
    const mvcc_compare *compare;
    size_t compare_len;
    const mvcc_request_op *success;
    size_t success_len;
    const mvcc_request_op *failure;
    size_t failure_len;
} mvcc_txn_req;

typedef struct mvcc_txn_resp {
    int64_t revision; /* header.revision; 0 in nested txn responses, as etcd */
    bool succeeded;
    mvcc_response_op *responses; /* one per op of the branch taken */
    size_t responses_len;
} mvcc_txn_resp;

/* ------------------------------------------------------------------------------------------ */
/* Store                                                                                        */

typedef struct mvcc_store mvcc_store;

/* Returns true when lease `lease_id` exists (a lease module callback). */
typedef bool (*mvcc_lease_exists_fn)(void *ctx, int64_t lease_id);

/* All fields zero means defaults. */
typedef struct mvcc_options {
    uint64_t quota_bytes;         /* 0: MVCC_DEFAULT_QUOTA_BYTES (2 GiB) */
    uint64_t map_size_bytes;      /* LMDB map; 0: max(2 * quota, quota + 256 MiB) */
    uint32_t max_txn_ops;         /* 0: MVCC_DEFAULT_MAX_TXN_OPS */
    uint32_t compact_batch_limit; /* 0: MVCC_DEFAULT_COMPACT_BATCH */
    uint32_t max_value_bytes;     /* 0: MVCC_DEFAULT_MAX_VALUE_BYTES */
    bool no_sync;                 /* MDB_NOSYNC: commits are not fsynced; see "Durability":
                                   * only for a store that can be rebuilt after a system crash */
    bool no_meta_sync; /* MDB_NOMETASYNC: one fsync per commit instead of two; a system crash
                        * may undo the last commits (the file stays consistent): safe when
                        * the WAL replays entries after mvcc_applied() */
    /* >0: a thread of the store checks every 100 ms how many bytes of files the process maps
     * (/proc/self/statm) and, past this, unmaps the store's pages (madvise MADV_DONTNEED: they
     * stay in the page cache, dirty ones included, and are mapped again when next touched).
     * So the resident set does not grow with every page of a large store that was read or
     * written (a snapshot copy or a large delete touches all of it). A thread, not the owner's
     * loop: a long transaction keeps the loop busy while it maps the pages. */
    uint64_t release_above_bytes;
    bool write_map; /* MDB_WRITEMAP: commits write the mapped pages in place instead of
                     * pwrite'ing every dirty page (the data file is extended to the map size,
                     * sparse; a full disk then faults the process instead of failing the
                     * commit); meant with no_sync */
    /* By default a write that would take the database file past the quota fails with
     * MVCC_ENOSPACE at apply time and raises the persistent NOSPACE alarm. The file size
     * differs between members, so in a replicated setting that check is not deterministic;
     * set this to skip it at apply time and instead call mvcc_quota_check() before
     * proposing, replicate the alarm through the log (mvcc_alarm_activate() when applied),
     * like etcd does. The alarm itself is always enforced. */
    bool no_quota_check_on_apply;
    /* By default mvcc_open() finishes a compaction that a crash interrupted. Set this to
     * leave it to mvcc_compact_step() (reads are correct either way). */
    bool no_compact_on_open;
    mvcc_lease_exists_fn lease_exists; /* NULL: every lease id is accepted */
    void *lease_ctx;
} mvcc_options;

/* Opens (creating when missing) the store in directory `dir` (mode 0700, files 0600).
 * Takes the directory path, options (NULL: defaults), and where to put the handle.
 * On success *out is the store; it must be closed with mvcc_close().
 * Resumes a compaction interrupted by a crash (unless options->no_compact_on_open).
 * Errors: MVCC_EIO (cannot create the directory, LMDB open failed, e.g. the file is not an
 *         LMDB environment or the map is too small), MVCC_ECORRUPT (not a cord store or an
 *         unknown format version), MVCC_EINVAL (bad options), MVCC_ENOMEM. */
int mvcc_open(const char *dir, const mvcc_options *options, mvcc_store **out, cord_error *err);

/* Closes the store, aborting an open batch. NULL is ignored. */
void mvcc_close(mvcc_store *store);

/* The LMDB environment, for modules that keep their own databases next to mvcc's. Valid
 * until mvcc_close/mvcc_defrag/mvcc_snapshot_restore. */
MDB_env *mvcc_env(mvcc_store *store);

/* ------------------------------------------------------------------------------------------ */
/* Apply batches: one LMDB write transaction for many applied Raft entries                      */

/* Opens an apply batch. Errors: MVCC_EBUSY (a batch is already open), MVCC_EIO. */
int mvcc_batch_begin(mvcc_store *store, cord_error *err);

/* Writes applied_index/applied_term (the last Raft entry this batch covers) into the batch
 * and commits it atomically with every write made in it.
 * Errors: MVCC_EBUSY (no batch open), MVCC_EINVAL (applied_index below the stored one; the
 *         batch stays open), MVCC_EBATCH or the storage error that poisoned the batch, or
 *         MVCC_EIO/MVCC_ENOSPACE from the commit itself: in all these cases the batch is
 *         aborted and nothing of it is on disk. */
int mvcc_batch_commit(mvcc_store *store, uint64_t applied_index, uint64_t applied_term,
                      cord_error *err);

/* Aborts the open batch, if any: nothing of it reaches disk. */
void mvcc_batch_abort(mvcc_store *store);

/* True while a batch is open. */
bool mvcc_batch_is_open(const mvcc_store *store);

/* The LMDB write transaction of the open batch (NULL if none), so another module (leases)
 * can write its own databases atomically with the batch. Do not commit or abort it. */
MDB_txn *mvcc_batch_txn(mvcc_store *store);

/* Stores the applied index and term of the last committed batch (0, 0 for a new store) —
 * the Raft entry to resume applying after. Never fails. */
void mvcc_applied(const mvcc_store *store, uint64_t *applied_index, uint64_t *applied_term);

/* ------------------------------------------------------------------------------------------ */
/* Key-value operations                                                                         */

/* Range (etcd's Range). Reads at req->revision (0: current).
 * Fills *resp with kvs in the arena, sorted as asked; when sorting or revision filters are
 * used, all matching keys are read, then filtered, sorted and cut to `limit`.
 * Errors: MVCC_EEMPTYKEY, MVCC_EINVAL (sort order/target out of range),
 *         MVCC_ECOMPACTED (revision < compact revision), MVCC_EFUTURE (revision > current),
 *         MVCC_ERESULT (arena limit), MVCC_EBATCH, MVCC_EIO, MVCC_ECORRUPT, MVCC_ENOMEM. */
int mvcc_range(mvcc_store *store, mvcc_arena *arena, const mvcc_range_req *req,
               mvcc_range_resp *resp, cord_error *err);

/* Put (etcd's Put): one new revision.
 * Errors (nothing written): MVCC_EEMPTYKEY, MVCC_ETOOLARGE, MVCC_EVALUEPROVIDED (ignore_value
 *         with a value), MVCC_ELEASEPROVIDED (ignore_lease with a lease), MVCC_ENOSPACE (alarm
 *         active, or this write passes the quota: the alarm is then raised),
 *         MVCC_ELEASENOTFOUND (lease_exists callback said no), MVCC_EKEYNOTFOUND (ignore_*
 *         on a missing key), MVCC_EBATCH.
 * Errors after applying: MVCC_ERESULT (prev_kv did not fit).
 * Storage errors: MVCC_EIO, MVCC_ENOSPACE (LMDB map full), MVCC_ECORRUPT, MVCC_ENOMEM. */
int mvcc_put(mvcc_store *store, mvcc_arena *arena, const mvcc_put_req *req, mvcc_put_resp *resp,
             cord_error *err);

/* DeleteRange (etcd's DeleteRange). A new revision only when at least one key is deleted.
 * Allowed while the NOSPACE alarm is active.
 * Errors: MVCC_EEMPTYKEY, MVCC_EBATCH; MVCC_ERESULT after applying (prev_kvs did not fit);
 *         storage errors as mvcc_put. */
int mvcc_delete_range(mvcc_store *store, mvcc_arena *arena, const mvcc_delete_req *req,
                      mvcc_delete_resp *resp, cord_error *err);

/* Txn (etcd's Txn). Checks the request like etcd's API layer (list lengths against
 * max_txn_ops, empty keys, empty ops, ignore_value/ignore_lease misuse, puts and deletes
 * touching the same key: etcd's checkIntervals), evaluates every compare of the branch path
 * against the state before the txn (nested txns included), checks the chosen ops (ranges'
 * revisions, ignore_* keys existing, leases existing), and only then executes. Ops see the
 * writes of earlier ops in the same txn. One new revision if anything was written.
 * Deviation from etcd: in the duplicate-key check a delete with range_end "\0" covers every
 * key from its start (etcd's interval check misses puts inside such a delete, and would
 * then panic on a put with ignore_value of a key the delete just removed).
 * A txn without any put/delete anywhere does not need a batch and is read-only.
 * Errors (nothing written): MVCC_ETOOMANYOPS, MVCC_EEMPTYKEY, MVCC_EKEYNOTFOUND,
 *         MVCC_EVALUEPROVIDED, MVCC_ELEASEPROVIDED, MVCC_EDUPKEY, MVCC_ETOOLARGE, MVCC_EINVAL,
 *         MVCC_ECOMPACTED/MVCC_EFUTURE (a range op's revision), MVCC_ELEASENOTFOUND,
 *         MVCC_ENOSPACE (the txn has puts and the alarm is active or the quota would be
 *         passed), MVCC_EBATCH.
 * Errors after applying: MVCC_ERESULT (some response did not fit; writes are complete).
 * Storage errors as mvcc_put. */
int mvcc_txn(mvcc_store *store, mvcc_arena *arena, const mvcc_txn_req *req, mvcc_txn_resp *resp,
             cord_error *err);

/* The API-layer checks of mvcc_txn alone (no storage access), so the server can reject a
 * bad request before proposing it. Returns MVCC_OK or one of the request errors above. */
int mvcc_txn_check(const mvcc_store *store, const mvcc_txn_req *req, cord_error *err);

/* True when the txn contains no put or delete in any branch at any depth (etcd's
 * IsTxnReadonly). */
bool mvcc_txn_is_readonly(const mvcc_txn_req *req);

/* ------------------------------------------------------------------------------------------ */
/* Compaction                                                                                   */

/* Compacts history to `revision` (etcd's Compact). Reads below it fail at once; the
 * physical removal happens later in bounded steps (mvcc_compact_step), recorded in meta so
 * it survives a crash. Runs in the open batch (atomic with the applied index) or alone.
 * Errors: MVCC_ECOMPACTED (revision <= compact revision), MVCC_EFUTURE (revision >
 *         current), MVCC_EBATCH, storage errors. */
int mvcc_compact(mvcc_store *store, int64_t revision, cord_error *err);

/* Does one bounded step of physical compaction in its own write transaction: at most
 * compact_batch_limit revisions examined or removed (at least one, so steps always make
 * progress). Sets *done when no compaction is pending. Call it between apply batches until
 * done: a writer waits for at most one step, LMDB readers never wait.
 * Errors: MVCC_EBUSY (a batch is open), storage errors. */
int mvcc_compact_step(mvcc_store *store, bool *done, cord_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Hashes                                                                                       */

typedef struct mvcc_hash_kv_result {
    uint32_t hash;            /* CRC-32C (Castagnoli) */
    int64_t compact_revision; /* compaction the hash was computed under */
    int64_t hash_revision;    /* the revision hashed up to */
    int64_t current_revision; /* header revision */
} mvcc_hash_kv_result;

/* HashKV (etcd's HashByRev): CRC-32C over "key" then every (revision key, KeyValue bytes)
 * of the "key" database with main revision <= `revision` (0: current), skipping revisions
 * at or below the compact revision that compaction removes or would remove (so the value
 * does not depend on how far physical compaction has gone). Members that applied the same
 * entries and compactions return the same hash. Same value as etcd, except where etcd's
 * own result depends on its compaction progress (it skips nothing below the compaction
 * when no key is live at `revision`); a never-compacted store reports compact_revision 0
 * where etcd says -1.
 * Errors: MVCC_ECOMPACTED (revision < compact revision), MVCC_EFUTURE, MVCC_EBATCH,
 *         storage errors. */
int mvcc_hash_kv(mvcc_store *store, int64_t revision, mvcc_hash_kv_result *out, cord_error *err);

/* Whole-store hash: CRC-32C over the names and entries of the "key", "key_index" and
 * "lease_keys" databases (not meta: applied index and alarms are member-local). Equal on
 * members with the same history once their physical compactions have finished.
 * Stores the hash and the current revision. Errors: MVCC_EBATCH, storage errors. */
int mvcc_hash(mvcc_store *store, uint32_t *hash, int64_t *revision, cord_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Watch history                                                                                */

typedef enum mvcc_event_type {
    MVCC_EVENT_PUT = 0,
    MVCC_EVENT_DELETE = 1,
} mvcc_event_type;

/* mvccpb.Event. For a delete, kv holds the key and mod_revision = the delete's revision. */
typedef struct mvcc_event {
    mvcc_event_type type;
    mvcc_kv kv;
    mvcc_kv *prev_kv; /* the key's previous live version, when asked and still present */
} mvcc_event;

typedef struct mvcc_events_req {
    mvcc_bytes key;
    mvcc_bytes range_end;   /* Range conventions */
    int64_t start_revision; /* first main revision to report (>= 1) */
    int64_t start_sub;      /* resume point inside start_revision (0 normally) */
    int64_t end_revision;   /* last main revision to report, inclusive; 0: current */
    bool prev_kv;
    size_t max_events; /* stop after this many events; 0: 1000 */
    size_t max_scan;   /* stop after examining this many revisions; 0: 100000 */
} mvcc_events_req;

typedef struct mvcc_events_resp {
    mvcc_event *events;
    size_t events_len;
    int64_t next_revision; /* resume with start_revision = next_revision, */
    int64_t next_sub;      /* start_sub = next_sub; past end_revision when complete */
    bool complete;         /* every revision up to end_revision was examined */
    int64_t compact_revision;
    int64_t current_revision;
} mvcc_events_resp;

/* Reads the events (puts and deletes, in revision order) on keys in the range between two
 * revisions, from the "key" database: watch history replay.
 * Errors: MVCC_EEMPTYKEY, MVCC_ECOMPACTED (start_revision < compact revision;
 *         resp->compact_revision says which), MVCC_EINVAL (start_revision < 1),
 *         MVCC_ERESULT, MVCC_EBATCH, storage errors. */
int mvcc_events(mvcc_store *store, mvcc_arena *arena, const mvcc_events_req *req,
                mvcc_events_resp *resp, cord_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Leases                                                                                       */

/* Lists the keys attached to `lease_id`, in key order, at most `max_keys` (0: no limit;
 * *more says whether some were left out). Keys are copied into the arena.
 * Errors: MVCC_ERESULT, MVCC_EBATCH, storage errors. */
int mvcc_lease_keys(mvcc_store *store, mvcc_arena *arena, int64_t lease_id, size_t max_keys,
                    mvcc_bytes **keys, size_t *keys_len, bool *more, cord_error *err);

/* Deletes every key attached to `lease_id` in one revision, in key order (etcd's lease
 * revoke). resp as DeleteRange's (prev_kvs filled when want_prev_kv). Allowed while the
 * NOSPACE alarm is active. Errors as mvcc_delete_range. */
int mvcc_lease_revoke(mvcc_store *store, mvcc_arena *arena, int64_t lease_id, bool want_prev_kv,
                      mvcc_delete_resp *resp, cord_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Quota, alarm, status                                                                         */

/* etcd's quota cost of a put / a txn (the larger branch's puts; nested txns included). */
uint64_t mvcc_put_cost(const mvcc_put_req *req);
uint64_t mvcc_txn_cost(const mvcc_txn_req *req);

/* The pre-proposal check (etcd's API-layer quota check): returns MVCC_ENOSPACE when the
 * alarm is active or the database size plus `cost` passes the quota, else MVCC_OK. Does
 * not raise the alarm. */
int mvcc_quota_check(const mvcc_store *store, uint64_t cost, cord_error *err);

/* Raises / clears the persistent NOSPACE alarm (in the open batch or alone). While it is
 * raised, puts and txns with puts fail with MVCC_ENOSPACE; ranges, deletes, lease revokes
 * and compaction work. Errors: MVCC_EBATCH, storage errors. */
int mvcc_alarm_activate(mvcc_store *store, cord_error *err);
int mvcc_alarm_disarm(mvcc_store *store, cord_error *err);

typedef struct mvcc_status {
    int64_t current_revision;
    int64_t compact_revision;
    int64_t compact_scheduled_revision;
    int64_t compact_finished_revision;
    bool compaction_pending;
    uint64_t applied_index;
    uint64_t applied_term;
    bool alarm_nospace;
    uint64_t db_size_bytes;        /* the file's used extent (etcd's dbSize) */
    uint64_t db_size_in_use_bytes; /* minus free pages (etcd's dbSizeInUse) */
    uint64_t quota_bytes;
    uint64_t map_size_bytes;
} mvcc_status;

/* Fills *out with the committed state (or the open batch's revisions). Errors: MVCC_EIO. */
int mvcc_status_get(mvcc_store *store, mvcc_status *out, cord_error *err);
/* The same without the sizes (db_size_bytes and db_size_in_use_bytes stay 0): no system
 * call and no walk of the free list, for hot paths. Errors: MVCC_EIO (store closed). */
int mvcc_status_revisions(const mvcc_store *store, mvcc_status *out);

/* ------------------------------------------------------------------------------------------ */
/* Maintenance: sync, defragment, snapshots                                                     */
/*
 * Failpoints (common/failpoint.h, CORD_FAILPOINTS=...):
 *   mvcc-before-commit  in mvcc_batch_commit, before the LMDB commit (error: the batch is
 *                       aborted and MVCC_EIO returned)
 *   mvcc-after-commit   right after a successful batch commit (crash only)
 *   mvcc-before-swap    in mvcc_defrag/mvcc_snapshot_restore, after the new file is
 *                       written and fsynced, before it is renamed over data.mdb (error:
 *                       MVCC_EIO, the old store stays)
 */

/* Flushes commits made with no_sync to disk (mdb_env_sync force). Errors: MVCC_EIO. */
int mvcc_sync(mvcc_store *store, cord_error *err);

/* Starts writing back the data file's dirty pages without waiting for them (a store opened
 * with no_sync otherwise leaves that to the kernel, which may flush many seconds of commits
 * at once and hold up other files' fsyncs). Not a durability point. Safe on another thread
 * than the owner's (waits for calls that replace the environment). */
void mvcc_writeback(mvcc_store *store);

/* Pages of the store unmapped by the release_above_bytes thread since open (statistics). */
uint64_t mvcc_release_count(mvcc_store *store);

/* Defragments: copies the environment compactly (MDB_CP_COMPACT, free pages dropped) to a
 * temporary file in the store directory, fsyncs it, then atomically renames it over the
 * data file and reopens. Blocks for the copy (run it off the event loop).
 * Errors: MVCC_EBUSY (batch open), MVCC_EIO (the old file stays in use when the copy
 * fails; if reopening fails the store is closed and every call returns MVCC_EIO). */
int mvcc_defrag(mvcc_store *store, cord_error *err);

/* mvcc_defrag in two steps, so that the copy can run on another thread while the owner goes
 * on (reading; it must not commit meanwhile, or the copy is stale and is not installed):
 * - mvcc_defrag_copy (any thread): the compacting copy into data.mdb.defrag in the store
 *   directory, fsynced; *state says which committed state it holds. Calls that replace or
 *   resize the environment wait for it, as for mvcc_snapshot_copy. Errors: MVCC_EIO.
 * - mvcc_defrag_install (owner thread): renames the copy over the data file and reopens, as
 *   mvcc_defrag does, if nothing was committed since `state`. Errors: MVCC_EBUSY (a batch is
 *   open, or the store was written since: the copy is removed, the store is as it was),
 *   MVCC_EIO (as mvcc_defrag). */
int mvcc_defrag_copy(mvcc_store *store, uint64_t *state, cord_error *err);
int mvcc_defrag_install(mvcc_store *store, uint64_t state, cord_error *err);
/* Removes a copy that will not be installed (the member stops, or its copy failed). */
void mvcc_defrag_discard(mvcc_store *store);

/* The same as mvcc_snapshot_write, but safe to call on another thread while the owner
 * keeps writing: copies the newest committed state (compacted) into fd, which must be a
 * regular file opened for reading and writing, and takes *applied_index / *applied_term
 * from the copy itself. Calls that replace or resize the environment (mvcc_defrag,
 * mvcc_snapshot_restore, map growth) wait for it. Errors: as mvcc_snapshot_write. */
int mvcc_snapshot_copy(mvcc_store *store, int fd, uint64_t *applied_index, uint64_t *applied_term,
                       cord_error *err);

/* An image: the store's data file as of one committed state, read with pread from the page
 * cache rather than through the map (so a copy of a large store adds nothing to the resident
 * set), byte for byte with its free pages (not compacted). Safe on another thread while the
 * owner keeps writing: the state is pinned by a read transaction, whose pages no writer may
 * reuse, and the meta pages are read under LMDB's writer lock. Calls that replace or resize
 * the environment wait until mvcc_image_close, as for mvcc_snapshot_copy. */
typedef struct mvcc_image mvcc_image;
typedef struct mvcc_image_info {
    uint64_t size;          /* bytes: the file's used extent at that state */
    uint64_t free_bytes;    /* of which on LMDB's free list */
    uint64_t applied_index; /* what the image holds */
    uint64_t applied_term;
} mvcc_image_info;

/* Opens an image of the newest committed state and fills *info. When more than
 * max_free_percent of it is free pages, *out stays NULL (the info is still filled): a
 * compacting copy (mvcc_snapshot_copy) is then worth its cost. Errors: MVCC_EIO, MVCC_ENOMEM. */
int mvcc_image_open(mvcc_store *store, unsigned max_free_percent, mvcc_image **out,
                    mvcc_image_info *info, cord_error *err);
/* Reads up to len bytes of the image at off into buf; *got = 0 at its end. Errors: MVCC_EIO. */
int mvcc_image_read(mvcc_image *image, uint64_t off, void *buf, size_t len, size_t *got,
                    cord_error *err);
void mvcc_image_close(mvcc_image *image); /* NULL is fine */

/* Writes a consistent compact copy of the whole store (an LMDB data file) to `fd` from its
 * current offset, from one read transaction; stores the applied index/term the copy holds.
 * Does not fsync or close fd. Errors: MVCC_EBUSY (batch open), MVCC_EIO. */
int mvcc_snapshot_write(mvcc_store *store, int fd, uint64_t *applied_index, uint64_t *applied_term,
                        cord_error *err);

/* The same into a file: writes `path`.tmp (mode 0600), fsyncs it, renames it to `path` and
 * fsyncs the directory, so `path` is either absent or complete.
 * Errors: MVCC_EBUSY (batch open), MVCC_EIO. */
int mvcc_snapshot_save(mvcc_store *store, const char *path, uint64_t *applied_index,
                       uint64_t *applied_term, cord_error *err);

/* Reads the applied index/term stored in a snapshot file without installing it.
 * Errors: MVCC_EIO (unreadable), MVCC_ECORRUPT (not a cord store). */
int mvcc_snapshot_info(const char *path, uint64_t *applied_index, uint64_t *applied_term,
                       cord_error *err);

/* Replaces the whole store by the snapshot file at `path` (from mvcc_snapshot_write):
 * validates it, copies it next to the data file, fsyncs, renames it over the data file
 * (atomic), and reopens. Afterwards mvcc_applied() gives the snapshot's index.
 * Errors: MVCC_EBUSY (batch open), MVCC_ECORRUPT/MVCC_EIO (bad file: the old store stays),
 *         MVCC_EIO after the rename if reopening fails (the store is then closed). */
int mvcc_snapshot_restore(mvcc_store *store, const char *path, cord_error *err);

/* Sets the stored applied Raft index and term to 0: for a store restored from a backup that
 * will start a new cluster (its log starts over). Keys, revisions and leases are kept.
 * Errors: MVCC_EBUSY (batch open), MVCC_EIO. */
int mvcc_reset_applied(mvcc_store *store, cord_error *err);

#ifdef __cplusplus
}
#endif

#endif /* CORD_MVCC_H */
