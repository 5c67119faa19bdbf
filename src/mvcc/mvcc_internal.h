/*
 * mvcc_internal.h — shared between the mvcc_*.c files; not part of the API.
 */
#ifndef CORD_MVCC_INTERNAL_H
#define CORD_MVCC_INTERNAL_H

#include "mvcc/mvcc.h"

#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>

#define MVCC_REV_BYTES        17 /* main(8) '_' sub(8) */
#define MVCC_MARKED_REV_BYTES 18 /* + 't' for a tombstone */
#define MVCC_REV_SUFFIX_BYTES 16 /* ~main ~sub in key_index keys */
#define MVCC_IVAL_LIVE_BYTES  25 /* flags, create, version, lease */
#define MVCC_IFLAG_TOMBSTONE  0x01
/* 2: keys of MVCC_IKEY_PART_MAX bytes and longer are stored hashed (format 1 stored keys of
 * up to 495 bytes as they are and refused longer ones). */
#define MVCC_FORMAT_VERSION 2u

/*
 * How key_index stores a key (its "part"). A key of at most MVCC_IKEY_SHORT_MAX bytes is
 * stored as it is. A longer key is stored as its first MVCC_IKEY_PREFIX_BYTES bytes followed
 * by the first MVCC_IKEY_HASH_BYTES bytes of its SHA-256: exactly MVCC_IKEY_PART_MAX bytes,
 * a length no stored-as-is key has, so two different keys never share a part. (LMDB keys are
 * at most 511 bytes, and key_index keys end in the 16-byte revision suffix.)
 *
 * Parts longer than MVCC_IKEY_PREFIX_BYTES that share their first MVCC_IKEY_PREFIX_BYTES
 * bytes form a "group": they are contiguous in key_index, and the group sits where its keys
 * belong in key order, but inside it the hashed parts are in hash order. Scans read a group
 * whole and sort it by the full keys, which the hashed entries' revisions hold.
 */
#define MVCC_IKEY_PART_MAX     495u
#define MVCC_IKEY_SHORT_MAX    (MVCC_IKEY_PART_MAX - 1)
#define MVCC_IKEY_HASH_BYTES   16u
#define MVCC_IKEY_PREFIX_BYTES (MVCC_IKEY_PART_MAX - MVCC_IKEY_HASH_BYTES)
#define MVCC_IKEY_MAX          (MVCC_IKEY_PART_MAX + MVCC_REV_SUFFIX_BYTES)

/* Meta as a transaction sees it. */
typedef struct mvcc_meta {
    uint64_t applied_index;
    uint64_t applied_term;
    int64_t current_rev;
    int64_t compact_rev;       /* reads below fail */
    int64_t compact_scheduled; /* target of pending physical compaction (== finished: idle) */
    int64_t compact_finished;
    int64_t cursor_main; /* next "key" revision the pending compaction examines */
    int64_t cursor_sub;
    bool alarm_nospace;
} mvcc_meta;

struct mvcc_store {
    char *dir;
    char *data_path;
    mvcc_options opts; /* defaults filled in */
    MDB_env *env;      /* NULL after a failed reopen */
    MDB_dbi dbi_key;
    MDB_dbi dbi_kidx;
    MDB_dbi dbi_meta;
    MDB_dbi dbi_lease;
    uint64_t map_size;
    unsigned int page_size;
    MDB_txn *rtxn; /* reusable read transaction (reset between uses) */
    bool rtxn_live;
    /* apply batch */
    MDB_txn *batch;
    int batch_rc; /* first storage failure inside the batch, 0 if none */
    uint64_t batch_cost;
    mvcc_meta batch_meta;
    mvcc_meta meta; /* committed */
    /* Read-held by mvcc_snapshot_copy (another thread) while it reads the environment and by
     * mvcc_writeback / mvcc_release_pages; write-held by whatever replaces or resizes the
     * environment (swap_in, map growth, close). */
    pthread_rwlock_t env_lock;
    /* the release_above_bytes thread */
    pthread_t release_thread;
    bool release_running;
    bool release_stop;
    pthread_mutex_t release_mu;
    pthread_cond_t release_cv;
    uint64_t releases;
};

/* One logical operation (etcd's storeTxnRead/storeTxnWrite) inside an LMDB transaction. */
typedef struct mvcc_ctx {
    mvcc_store *s;
    MDB_txn *txn;
    mvcc_meta *m; /* mutable only when `write` */
    bool write;
    bool own;       /* txn belongs to this call (not the batch, not the read txn) */
    bool fatal;     /* a storage failure happened: the txn must not be committed */
    bool resp_lost; /* the arena ran out while building a write's response */
    bool dirty;     /* wrote something other than revisions (compaction): commit */
    int64_t begin_rev;
    int64_t changes;    /* puts + tombstones so far = next sub revision */
    mvcc_meta own_meta; /* copy used when own */
    mvcc_meta meta_before;
    MDB_cursor *c_kidx;
    MDB_cursor *c_key;
    uint8_t seek_buf[MVCC_IKEY_MAX];
} mvcc_ctx;

/* A decoded key_index entry. Pointers are into LMDB memory: valid until the next write.
 * mvcc_ientry_decode sets key to the stored part; mvcc_ilookup and the entries mvcc_scan
 * visits have the full key. */
typedef struct mvcc_ientry {
    const uint8_t *key;
    size_t key_len;
    int64_t main;
    int64_t sub;
    bool tombstone;
    int64_t create;
    int64_t version;
    int64_t lease;
} mvcc_ientry;

/* ---- errors (mvcc_errors.c) ---- */
int mvcc_seterr(cord_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int mvcc_fail(cord_error *err, int code); /* code with its standard message */
/* Maps an LMDB return code to an MVCC code, writes the message, returns the code. */
int mvcc_lmdb_fail(cord_error *err, int mdb_rc, const char *what);
bool mvcc_is_storage_error(int code);

/* ---- encoding (mvcc_encode.c) ---- */
static inline void mvcc_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

static inline uint64_t mvcc_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Writes etcd's revision bucket key; returns its length (17, or 18 for a tombstone). */
size_t mvcc_rev_encode(uint8_t out[MVCC_MARKED_REV_BYTES], int64_t main, int64_t sub,
                       bool tombstone);
/* Parses a revision bucket key. Returns false when malformed. */
bool mvcc_rev_decode(const uint8_t *p, size_t len, int64_t *main, int64_t *sub, bool *tombstone);

/* The part key_index stores for a key (see MVCC_IKEY_PART_MAX). Returns its length. */
size_t mvcc_ikey_part(uint8_t out[MVCC_IKEY_PART_MAX], const uint8_t *key, size_t key_len);
static inline bool mvcc_ikey_part_hashed(size_t part_len)
{
    return part_len == MVCC_IKEY_PART_MAX;
}
/* key_index key: part ++ ~main ++ ~sub. Returns its length. */
size_t mvcc_ikey_encode(uint8_t *out, const uint8_t *part, size_t part_len, int64_t main,
                        int64_t sub);
/* Suffix meaning "older than every revision": seeks past all entries of a part. */
size_t mvcc_ikey_encode_past(uint8_t *out, const uint8_t *part, size_t part_len);
int mvcc_ientry_decode(const MDB_val *k, const MDB_val *v, mvcc_ientry *e);
/* key_index comparator (registered with mdb_set_compare). */
int mvcc_ikey_cmp(const MDB_val *a, const MDB_val *b);

/* bytes.Compare */
static inline int mvcc_bytes_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c < 0 ? -1 : 1;
    return alen < blen ? -1 : (alen > blen ? 1 : 0);
}

/* Protobuf mvccpb.KeyValue. */
size_t mvcc_kvpb_size(const mvcc_kv *kv);
void mvcc_kvpb_encode(const mvcc_kv *kv, uint8_t *out); /* writes exactly mvcc_kvpb_size */
/* Decodes; bytes fields point into `p`. Returns false on malformed input. */
bool mvcc_kvpb_decode(const uint8_t *p, size_t len, mvcc_kv *kv);

/* ---- store plumbing (mvcc_store.c) ---- */
int mvcc_ctx_read(mvcc_store *s, mvcc_ctx *c, cord_error *err);
int mvcc_ctx_write(mvcc_store *s, mvcc_ctx *c, cord_error *err);
/* Ends the ctx: commits (own write, no failure), aborts, or records a failure in the batch.
 * Returns rc, or the commit's error when rc was not an error yet. */
int mvcc_ctx_end(mvcc_ctx *c, int rc, cord_error *err);
/* Storage failure inside a write: mark fatal and return the mapped code. */
int mvcc_ctx_lmdb_fail(mvcc_ctx *c, cord_error *err, int mdb_rc, const char *what);
MDB_cursor *mvcc_ctx_kidx(mvcc_ctx *c, cord_error *err, int *rc);
MDB_cursor *mvcc_ctx_keyc(mvcc_ctx *c, cord_error *err, int *rc);
static inline int64_t mvcc_ctx_visible_rev(const mvcc_ctx *c)
{
    return c->begin_rev + (c->changes > 0 ? 1 : 0);
}
/* Quota: true when writing `cost` more bytes passes the quota. */
bool mvcc_quota_exceeded(mvcc_store *s, uint64_t cost);
uint64_t mvcc_db_size(mvcc_store *s);
int mvcc_meta_write(mvcc_store *s, MDB_txn *txn, const mvcc_meta *old, const mvcc_meta *m,
                    cord_error *err);

/* ---- key space (mvcc_kv.c) ---- */
/* Visits key_index entries live at `rev` for the range. fn returns 0 to go on, 1 to stop,
 * <0 error (returned). */
typedef int (*mvcc_visit_fn)(void *arg, const mvcc_ientry *e);
int mvcc_scan(mvcc_ctx *c, mvcc_bytes key, mvcc_bytes end, int64_t rev, mvcc_visit_fn fn, void *arg,
              cord_error *err);
/* Newest entry of `key` with main <= rev (tombstones included). *found false if none.
 * e->key is `key`. */
int mvcc_ilookup(mvcc_ctx *c, const uint8_t *key, size_t key_len, int64_t rev, mvcc_ientry *e,
                 bool *found, cord_error *err);
/* The same by stored part (e->key is the part). */
int mvcc_ilookup_part(mvcc_ctx *c, const uint8_t *part, size_t part_len, int64_t rev,
                      mvcc_ientry *e, bool *found, cord_error *err);
/* Fetches the stored KeyValue at (main, sub) (not a tombstone); kv points into LMDB. */
int mvcc_fetch_kv(mvcc_ctx *c, int64_t main, int64_t sub, mvcc_kv *kv, cord_error *err);
/* Copies bytes into the arena; on exhaustion returns false. */
bool mvcc_arena_copy(mvcc_arena *a, mvcc_bytes *dst, const uint8_t *src, size_t len);
/* Range body shared by mvcc_range and txns (checks revision, scans, filters, sorts). */
int mvcc_range_exec(mvcc_ctx *c, mvcc_arena *arena, const mvcc_range_req *req,
                    mvcc_range_resp *resp, cord_error *err);
bool mvcc_key_in_range(const uint8_t *k, size_t klen, mvcc_bytes key, mvcc_bytes end);

#endif /* CORD_MVCC_INTERNAL_H */
