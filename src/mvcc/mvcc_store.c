#define _GNU_SOURCE
/*
 * mvcc_store.c — opening the LMDB environment, meta, transactions and apply batches,
 * quota and alarm, status, sync, defragmentation and snapshots.
 */
#include "mvcc/mvcc_internal.h"

#include "common/failpoint.h"
#include "common/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define DB_KEY   "key"
#define DB_KIDX  "key_index"
#define DB_META  "meta"
#define DB_LEASE "lease_keys"

#define META_FORMAT    "format_version"
#define META_INDEX     "consistent_index"
#define META_TERM      "term"
#define META_CUR_REV   "current_rev"
#define META_COMPACT   "compact_rev"
#define META_SCHEDULED "compact_scheduled_rev"
#define META_FINISHED  "compact_finished_rev"
#define META_CURSOR    "compact_cursor"
#define META_ALARM     "alarm_nospace"

/* ------------------------------------------------------------------------------------------ */
/* meta                                                                                         */

static int meta_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *out, bool *found,
                        cord_error *err)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND) {
        *found = false;
        return MVCC_OK;
    }
    if (rc)
        return mvcc_lmdb_fail(err, rc, "read meta");
    if (v.mv_size != 8)
        return mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: meta %s has %zu bytes", name, v.mv_size);
    *out = mvcc_get_be64(v.mv_data);
    *found = true;
    return MVCC_OK;
}

static int meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t value,
                        cord_error *err)
{
    uint8_t buf[8];
    mvcc_put_be64(buf, value);
    MDB_val k = {strlen(name), (void *)name}, v = {8, buf};
    int rc = mdb_put(txn, dbi, &k, &v, 0);
    if (rc)
        return mvcc_lmdb_fail(err, rc, "write meta");
    return MVCC_OK;
}

static int meta_read(MDB_txn *txn, MDB_dbi dbi, mvcc_meta *m, bool *initialized, uint64_t *format,
                     cord_error *err)
{
    uint64_t v = 0;
    bool found = false;
    int rc = meta_get_u64(txn, dbi, META_FORMAT, &v, &found, err);
    if (rc)
        return rc;
    *initialized = found;
    *format = v;
    memset(m, 0, sizeof(*m));
    if (!found)
        return MVCC_OK;
    if (v != MVCC_FORMAT_VERSION && v != 1)
        return mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: unknown store format %llu",
                           (unsigned long long)v);
    struct {
        const char *name;
        void *dst;
        bool is_signed;
    } fields[] = {
        {META_INDEX, &m->applied_index, false},        {META_TERM, &m->applied_term, false},
        {META_CUR_REV, &m->current_rev, true},         {META_COMPACT, &m->compact_rev, true},
        {META_SCHEDULED, &m->compact_scheduled, true}, {META_FINISHED, &m->compact_finished, true},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        rc = meta_get_u64(txn, dbi, fields[i].name, &v, &found, err);
        if (rc)
            return rc;
        if (!found)
            return mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: meta %s missing", fields[i].name);
        if (fields[i].is_signed)
            *(int64_t *)fields[i].dst = (int64_t)v;
        else
            *(uint64_t *)fields[i].dst = v;
    }
    MDB_val k = {strlen(META_CURSOR), (void *)META_CURSOR}, val;
    rc = mdb_get(txn, dbi, &k, &val);
    if (rc || val.mv_size != 16)
        return rc ? mvcc_lmdb_fail(err, rc, "read meta cursor")
                  : mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: bad compaction cursor");
    m->cursor_main = (int64_t)mvcc_get_be64(val.mv_data);
    m->cursor_sub = (int64_t)mvcc_get_be64((const uint8_t *)val.mv_data + 8);
    k = (MDB_val){strlen(META_ALARM), (void *)META_ALARM};
    rc = mdb_get(txn, dbi, &k, &val);
    if (rc || val.mv_size != 1)
        return rc ? mvcc_lmdb_fail(err, rc, "read meta alarm")
                  : mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: bad alarm record");
    m->alarm_nospace = ((const uint8_t *)val.mv_data)[0] != 0;
    if (m->current_rev < 1 || m->compact_rev < 0 || m->compact_rev > m->current_rev ||
        m->compact_finished > m->compact_scheduled || m->compact_scheduled > m->compact_rev)
        return mvcc_seterr(err, MVCC_ECORRUPT,
                           "mvcc: inconsistent meta (current %lld compact %lld scheduled %lld "
                           "finished %lld)",
                           (long long)m->current_rev, (long long)m->compact_rev,
                           (long long)m->compact_scheduled, (long long)m->compact_finished);
    return MVCC_OK;
}

/* Format 1 stored keys of up to MVCC_IKEY_PART_MAX bytes as they are; format 2 stores keys of
 * exactly that length hashed. A format-1 store without such a key is a format-2 store. */
static int upgrade_from_1(mvcc_store *s, MDB_txn *txn, cord_error *err)
{
    MDB_cursor *cur = NULL;
    int rc = mdb_cursor_open(txn, s->dbi_kidx, &cur);
    if (rc)
        return mvcc_lmdb_fail(err, rc, "open key_index cursor");
    MDB_val k, v;
    size_t n = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size == MVCC_IKEY_PART_MAX + MVCC_REV_SUFFIX_BYTES)
            n++;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return mvcc_lmdb_fail(err, rc, "scan key_index");
    if (n)
        return mvcc_seterr(err, MVCC_ECORRUPT,
                           "mvcc: %s holds %zu revisions of keys of exactly %u bytes, which this "
                           "version stores differently; read them with the version that wrote "
                           "them, delete them, and compact past them first",
                           s->dir, n, MVCC_IKEY_PART_MAX);
    return meta_put_u64(txn, s->dbi_meta, META_FORMAT, MVCC_FORMAT_VERSION, err);
}

/* Writes the fields of `m` that differ from `old` (all of them when old is NULL). */
int mvcc_meta_write(mvcc_store *s, MDB_txn *txn, const mvcc_meta *old, const mvcc_meta *m,
                    cord_error *err)
{
    MDB_dbi dbi = s->dbi_meta;
    int rc = MVCC_OK;
#define META_U64(field, name)                                                                      \
    if (!old || old->field != m->field) {                                                          \
        rc = meta_put_u64(txn, dbi, name, (uint64_t)m->field, err);                                \
        if (rc)                                                                                    \
            return rc;                                                                             \
    }
    if (!old) {
        rc = meta_put_u64(txn, dbi, META_FORMAT, MVCC_FORMAT_VERSION, err);
        if (rc)
            return rc;
    }
    META_U64(applied_index, META_INDEX)
    META_U64(applied_term, META_TERM)
    META_U64(current_rev, META_CUR_REV)
    META_U64(compact_rev, META_COMPACT)
    META_U64(compact_scheduled, META_SCHEDULED)
    META_U64(compact_finished, META_FINISHED)
#undef META_U64
    if (!old || old->cursor_main != m->cursor_main || old->cursor_sub != m->cursor_sub) {
        uint8_t buf[16];
        mvcc_put_be64(buf, (uint64_t)m->cursor_main);
        mvcc_put_be64(buf + 8, (uint64_t)m->cursor_sub);
        MDB_val k = {strlen(META_CURSOR), (void *)META_CURSOR}, v = {16, buf};
        int mrc = mdb_put(txn, dbi, &k, &v, 0);
        if (mrc)
            return mvcc_lmdb_fail(err, mrc, "write meta cursor");
    }
    if (!old || old->alarm_nospace != m->alarm_nospace) {
        uint8_t b = m->alarm_nospace ? 1 : 0;
        MDB_val k = {strlen(META_ALARM), (void *)META_ALARM}, v = {1, &b};
        int mrc = mdb_put(txn, dbi, &k, &v, 0);
        if (mrc)
            return mvcc_lmdb_fail(err, mrc, "write meta alarm");
    }
    return MVCC_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* environment                                                                                  */

static void env_close(mvcc_store *s)
{
    if (s->batch) {
        mdb_txn_abort(s->batch);
        s->batch = NULL;
    }
    if (s->rtxn) {
        mdb_txn_abort(s->rtxn);
        s->rtxn = NULL;
        s->rtxn_live = false;
    }
    if (s->env) {
        mdb_env_close(s->env);
        s->env = NULL;
    }
}

static int fsync_dir(const char *dir, cord_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cord_error_set(err, MVCC_EIO, errno, "mvcc: open %s", dir);
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc)
        return cord_error_set(err, MVCC_EIO, e, "mvcc: fsync %s", dir);
    return MVCC_OK;
}

/* madvise(advice) over every mapping of the file open as `fd` (LMDB's map: its address is
 * not exported, so it is found in /proc/self/maps by device and inode). */
static void advise_map(int fd, int advice)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return;
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        unsigned long start, end, ino;
        unsigned int maj, mnr;
        if (sscanf(line, "%lx-%lx %*s %*x %x:%x %lu", &start, &end, &maj, &mnr, &ino) == 5 &&
            ino == (unsigned long)st.st_ino && maj == major(st.st_dev) && mnr == minor(st.st_dev))
            (void)madvise((void *)start, end - start, advice);
        if (!strchr(line, '\n')) { /* a longer line (a long path): skip its rest */
            int c;
            while ((c = fgetc(f)) != EOF && c != '\n')
                ;
        }
    }
    fclose(f);
}

/* The map is read and written one 4 KiB B-tree page at a time, at random. Left to itself the
 * kernel (6.x, ext4 with large folios) reads around each fault into folios of up to 2 MiB and
 * maps them whole: a write to one page of a clean folio then costs page_mkwrite over all of
 * its buffers, writeback writes the whole folio, and a read maps up to 2 MiB into the resident
 * set. So: no huge pages, no read-ahead (bbolt advises MADV_RANDOM for the same reason).
 * NOHUGEPAGE alone still leaves 2 MiB folios (mapped by PTEs). The price: a store on a cold
 * page cache is read 4 KiB a time (bench/RESULTS.md, fourth session).
 * LMDB maps anew when the map grows, hence a call after every mdb_env_open and set_mapsize. */
static void advise_small_pages(MDB_env *env)
{
    int fd = -1;
    if (mdb_env_get_fd(env, &fd) != 0 || fd < 0)
        return;
    advise_map(fd, MADV_NOHUGEPAGE);
    advise_map(fd, MADV_RANDOM);
}

static int env_open(mvcc_store *s, cord_error *err)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    int rc = mdb_env_create(&env);
    if (rc)
        return mvcc_lmdb_fail(err, rc, "mdb_env_create");
    rc = mdb_env_set_maxdbs(env, MVCC_MAX_DBS);
    if (!rc)
        rc = mdb_env_set_mapsize(env, (size_t)s->map_size);
    if (rc) {
        rc = mvcc_lmdb_fail(err, rc, "configure environment");
        goto fail;
    }
    unsigned int flags = MDB_NOTLS;
    if (s->opts.no_sync)
        flags |= MDB_NOSYNC;
    if (s->opts.no_meta_sync)
        flags |= MDB_NOMETASYNC;
    if (s->opts.write_map)
        flags |= MDB_WRITEMAP;
    rc = mdb_env_open(env, s->dir, flags, 0600);
    if (rc) {
        rc = mvcc_seterr(err, rc == MDB_INVALID ? MVCC_ECORRUPT : MVCC_EIO, "mvcc: open %s: %s",
                         s->dir, mdb_strerror(rc));
        goto fail;
    }
    advise_small_pages(env);
    int dead = 0;
    (void)mdb_reader_check(env, &dead);
    if (mdb_env_get_maxkeysize(env) < (int)MVCC_IKEY_MAX) {
        rc = mvcc_seterr(err, MVCC_EIO, "mvcc: LMDB max key size %d is too small",
                         mdb_env_get_maxkeysize(env));
        goto fail;
    }
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(env, &info);
    mdb_env_stat(env, &st);
    s->map_size = info.me_mapsize;
    s->page_size = st.ms_psize;

    rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc) {
        rc = mvcc_lmdb_fail(err, rc, "begin open transaction");
        goto fail;
    }
    if ((rc = mdb_dbi_open(txn, DB_KEY, MDB_CREATE, &s->dbi_key)) ||
        (rc = mdb_dbi_open(txn, DB_KIDX, MDB_CREATE, &s->dbi_kidx)) ||
        (rc = mdb_set_compare(txn, s->dbi_kidx, mvcc_ikey_cmp)) ||
        (rc = mdb_dbi_open(txn, DB_META, MDB_CREATE, &s->dbi_meta)) ||
        (rc = mdb_dbi_open(txn, DB_LEASE, MDB_CREATE, &s->dbi_lease))) {
        rc = mvcc_lmdb_fail(err, rc, "open databases");
        goto fail;
    }
    bool initialized = false;
    uint64_t format = 0;
    rc = meta_read(txn, s->dbi_meta, &s->meta, &initialized, &format, err);
    if (rc)
        goto fail;
    if (initialized && format == 1 && (rc = upgrade_from_1(s, txn, err)))
        goto fail;
    if (!initialized) {
        MDB_stat kst;
        mdb_stat(txn, s->dbi_key, &kst);
        if (kst.ms_entries != 0) {
            rc = mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: %s has revisions but no meta", s->dir);
            goto fail;
        }
        memset(&s->meta, 0, sizeof(s->meta));
        s->meta.current_rev = 1; /* etcd: an empty store is at revision 1 */
        rc = mvcc_meta_write(s, txn, NULL, &s->meta, err);
        if (rc)
            goto fail;
    }
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc) {
        rc = mvcc_lmdb_fail(err, rc, "commit open transaction");
        goto fail;
    }
    /* a new store: make its files' directory entries durable before anyone relies on the
     * applied index inside them */
    if (!initialized && (rc = fsync_dir(s->dir, err)))
        goto fail;
    s->env = env;
    return MVCC_OK;
fail:
    if (txn)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    return rc;
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + 1 + strlen(name) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void release_start(mvcc_store *s);
static void release_end(mvcc_store *s);

static int finish_pending_compaction(mvcc_store *s, cord_error *err)
{
    if (s->opts.no_compact_on_open)
        return MVCC_OK;
    bool done = false;
    while (!done) {
        int rc = mvcc_compact_step(s, &done, err);
        if (rc)
            return rc;
    }
    return MVCC_OK;
}

int mvcc_open(const char *dir, const mvcc_options *options, mvcc_store **out, cord_error *err)
{
    *out = NULL;
    mvcc_store *s = calloc(1, sizeof(*s));
    if (!s)
        return mvcc_fail(err, MVCC_ENOMEM);
    pthread_rwlock_init(&s->env_lock, NULL);
    int rc;
    if (options)
        s->opts = *options;
    if (!s->opts.quota_bytes)
        s->opts.quota_bytes = MVCC_DEFAULT_QUOTA_BYTES;
    if (!s->opts.max_txn_ops)
        s->opts.max_txn_ops = MVCC_DEFAULT_MAX_TXN_OPS;
    if (!s->opts.compact_batch_limit)
        s->opts.compact_batch_limit = MVCC_DEFAULT_COMPACT_BATCH;
    if (!s->opts.max_value_bytes)
        s->opts.max_value_bytes = MVCC_DEFAULT_MAX_VALUE_BYTES;
    s->map_size = s->opts.map_size_bytes;
    if (!s->map_size) {
        uint64_t q = s->opts.quota_bytes;
        s->map_size = q * 2 > q + (256ull << 20) ? q * 2 : q + (256ull << 20);
    }
    if (s->map_size < (1u << 20) || (sizeof(size_t) < 8 && s->map_size > SIZE_MAX)) {
        rc = mvcc_seterr(err, MVCC_EINVAL, "mvcc: bad map size %llu",
                         (unsigned long long)s->map_size);
        goto fail;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rc = cord_error_set(err, MVCC_EIO, errno, "mvcc: mkdir %s", dir);
        goto fail;
    }
    if (chmod(dir, 0700) != 0) {
        rc = cord_error_set(err, MVCC_EIO, errno, "mvcc: chmod %s", dir);
        goto fail;
    }
    s->dir = strdup(dir);
    s->data_path = path_join(dir, "data.mdb");
    if (!s->dir || !s->data_path) {
        rc = mvcc_fail(err, MVCC_ENOMEM);
        goto fail;
    }
    rc = env_open(s, err);
    if (rc)
        goto fail;
    rc = finish_pending_compaction(s, err);
    if (rc)
        goto fail;
    release_start(s);
    *out = s;
    return MVCC_OK;
fail:
    mvcc_close(s);
    return rc;
}

void mvcc_close(mvcc_store *s)
{
    if (!s)
        return;
    release_end(s);
    pthread_rwlock_wrlock(&s->env_lock);
    env_close(s);
    pthread_rwlock_unlock(&s->env_lock);
    pthread_rwlock_destroy(&s->env_lock);
    free(s->dir);
    free(s->data_path);
    free(s);
}

MDB_env *mvcc_env(mvcc_store *s)
{
    return s->env;
}

void mvcc_applied(const mvcc_store *s, uint64_t *applied_index, uint64_t *applied_term)
{
    if (applied_index)
        *applied_index = s->meta.applied_index;
    if (applied_term)
        *applied_term = s->meta.applied_term;
}

/* ------------------------------------------------------------------------------------------ */
/* map full: raise the alarm and grow the map so deletes and compaction can proceed            */

static void after_map_full(mvcc_store *s)
{
    assert(!s->batch);
    if (!s->env)
        return;
    if (s->rtxn) {
        mdb_txn_abort(s->rtxn);
        s->rtxn = NULL;
        s->rtxn_live = false;
    }
    uint64_t bigger = s->map_size + s->map_size / 4;
    pthread_rwlock_wrlock(&s->env_lock); /* no copy may read the map while it moves */
    if (mdb_env_set_mapsize(s->env, (size_t)bigger) == 0) {
        s->map_size = bigger;
        advise_small_pages(s->env);
    }
    pthread_rwlock_unlock(&s->env_lock);
    MDB_txn *txn = NULL;
    if (mdb_txn_begin(s->env, NULL, 0, &txn) == 0) {
        mvcc_meta m = s->meta;
        m.alarm_nospace = true;
        if (mvcc_meta_write(s, txn, &s->meta, &m, NULL) == MVCC_OK && mdb_txn_commit(txn) == 0)
            s->meta = m;
        else if (txn)
            mdb_txn_abort(txn);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* per-call contexts                                                                            */

static void ctx_init(mvcc_ctx *c, mvcc_store *s)
{
    /* seek_buf is scratch; leave it uninitialised */
    c->s = s;
    c->txn = NULL;
    c->m = NULL;
    c->write = c->own = c->fatal = c->resp_lost = c->dirty = false;
    c->begin_rev = 0;
    c->changes = 0;
    c->c_kidx = c->c_key = NULL;
}

int mvcc_ctx_read(mvcc_store *s, mvcc_ctx *c, cord_error *err)
{
    ctx_init(c, s);
    if (!s->env)
        return mvcc_seterr(err, MVCC_EIO, "mvcc: store is closed after a failed reopen");
    if (s->batch) {
        if (s->batch_rc)
            return mvcc_fail(err, MVCC_EBATCH);
        c->txn = s->batch;
        c->m = &s->batch_meta;
    } else {
        assert(!s->rtxn_live);
        int rc =
            s->rtxn ? mdb_txn_renew(s->rtxn) : mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->rtxn);
        if (rc) {
            if (s->rtxn) {
                mdb_txn_abort(s->rtxn);
                s->rtxn = NULL;
            }
            return mvcc_lmdb_fail(err, rc, "begin read transaction");
        }
        s->rtxn_live = true;
        c->txn = s->rtxn;
        c->m = &s->meta;
        c->own = true;
    }
    c->begin_rev = c->m->current_rev;
    return MVCC_OK;
}

int mvcc_ctx_write(mvcc_store *s, mvcc_ctx *c, cord_error *err)
{
    ctx_init(c, s);
    if (!s->env)
        return mvcc_seterr(err, MVCC_EIO, "mvcc: store is closed after a failed reopen");
    c->write = true;
    if (s->batch) {
        if (s->batch_rc)
            return mvcc_fail(err, MVCC_EBATCH);
        c->txn = s->batch;
        c->m = &s->batch_meta;
    } else {
        int rc = mdb_txn_begin(s->env, NULL, 0, &c->txn);
        if (rc)
            return mvcc_lmdb_fail(err, rc, "begin write transaction");
        c->own = true;
        c->own_meta = s->meta;
        c->m = &c->own_meta;
    }
    c->meta_before = *c->m;
    c->begin_rev = c->m->current_rev;
    return MVCC_OK;
}

int mvcc_ctx_lmdb_fail(mvcc_ctx *c, cord_error *err, int mdb_rc, const char *what)
{
    c->fatal = true;
    return mvcc_lmdb_fail(err, mdb_rc, what);
}

MDB_cursor *mvcc_ctx_kidx(mvcc_ctx *c, cord_error *err, int *rc)
{
    if (!c->c_kidx) {
        int mrc = mdb_cursor_open(c->txn, c->s->dbi_kidx, &c->c_kidx);
        if (mrc) {
            c->c_kidx = NULL;
            *rc = mvcc_ctx_lmdb_fail(c, err, mrc, "open key_index cursor");
            return NULL;
        }
    }
    return c->c_kidx;
}

MDB_cursor *mvcc_ctx_keyc(mvcc_ctx *c, cord_error *err, int *rc)
{
    if (!c->c_key) {
        int mrc = mdb_cursor_open(c->txn, c->s->dbi_key, &c->c_key);
        if (mrc) {
            c->c_key = NULL;
            *rc = mvcc_ctx_lmdb_fail(c, err, mrc, "open key cursor");
            return NULL;
        }
    }
    return c->c_key;
}

static bool meta_equal(const mvcc_meta *a, const mvcc_meta *b)
{
    return a->applied_index == b->applied_index && a->applied_term == b->applied_term &&
           a->current_rev == b->current_rev && a->compact_rev == b->compact_rev &&
           a->compact_scheduled == b->compact_scheduled &&
           a->compact_finished == b->compact_finished && a->cursor_main == b->cursor_main &&
           a->cursor_sub == b->cursor_sub && a->alarm_nospace == b->alarm_nospace;
}

int mvcc_ctx_end(mvcc_ctx *c, int rc, cord_error *err)
{
    mvcc_store *s = c->s;
    if (c->c_kidx)
        mdb_cursor_close(c->c_kidx);
    if (c->c_key)
        mdb_cursor_close(c->c_key);
    c->c_kidx = c->c_key = NULL;
    if (!c->txn)
        return rc;
    if (mvcc_is_storage_error(rc) || (rc == MVCC_ENOSPACE && c->fatal))
        c->fatal = true;
    if (!c->write) {
        if (c->own) {
            mdb_txn_reset(s->rtxn);
            s->rtxn_live = false;
        }
        c->txn = NULL;
        return rc;
    }
    if (!c->fatal && c->changes > 0) {
        assert(c->m->current_rev == c->begin_rev);
        c->m->current_rev = c->begin_rev + 1;
    }
    if (!c->own) {
        if (c->fatal && !s->batch_rc)
            s->batch_rc = rc ? rc : MVCC_EIO;
        c->txn = NULL;
        return rc;
    }
    bool map_full = c->fatal && rc == MVCC_ENOSPACE;
    if (c->fatal || (c->changes == 0 && !c->dirty && meta_equal(&s->meta, c->m))) {
        mdb_txn_abort(c->txn);
        c->txn = NULL;
        if (map_full)
            after_map_full(s);
        return rc;
    }
    int wrc = mvcc_meta_write(s, c->txn, &s->meta, c->m, rc ? NULL : err);
    if (wrc) {
        mdb_txn_abort(c->txn);
        c->txn = NULL;
        if (wrc == MVCC_ENOSPACE)
            after_map_full(s);
        return rc ? rc : wrc;
    }
    int mrc = mdb_txn_commit(c->txn);
    c->txn = NULL;
    if (mrc) {
        int code = rc ? rc : mvcc_lmdb_fail(err, mrc, "commit");
        if (mrc == MDB_MAP_FULL)
            after_map_full(s);
        return code;
    }
    s->meta = *c->m;
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* batches                                                                                      */

int mvcc_batch_begin(mvcc_store *s, cord_error *err)
{
    if (!s->env)
        return mvcc_seterr(err, MVCC_EIO, "mvcc: store is closed after a failed reopen");
    if (s->batch)
        return mvcc_seterr(err, MVCC_EBUSY, "mvcc: an apply batch is already open");
    assert(!s->rtxn_live);
    int rc = mdb_txn_begin(s->env, NULL, 0, &s->batch);
    if (rc) {
        s->batch = NULL;
        return mvcc_lmdb_fail(err, rc, "begin apply batch");
    }
    s->batch_rc = 0;
    s->batch_cost = 0;
    s->batch_meta = s->meta;
    return MVCC_OK;
}

void mvcc_batch_abort(mvcc_store *s)
{
    if (!s->batch)
        return;
    bool map_full = s->batch_rc == MVCC_ENOSPACE;
    mdb_txn_abort(s->batch);
    s->batch = NULL;
    s->batch_rc = 0;
    s->batch_cost = 0;
    if (map_full)
        after_map_full(s);
}

int mvcc_batch_commit(mvcc_store *s, uint64_t applied_index, uint64_t applied_term, cord_error *err)
{
    if (!s->batch)
        return mvcc_seterr(err, MVCC_EBUSY, "mvcc: no apply batch is open");
    if (s->batch_rc) {
        int code = s->batch_rc;
        mvcc_batch_abort(s);
        return mvcc_seterr(err, code, "mvcc: apply batch aborted after an earlier failure: %s",
                           mvcc_strerror(code));
    }
    if (applied_index < s->meta.applied_index)
        return mvcc_seterr(
            err, MVCC_EINVAL, "mvcc: applied index %llu is below the stored applied index %llu",
            (unsigned long long)applied_index, (unsigned long long)s->meta.applied_index);
    s->batch_meta.applied_index = applied_index;
    s->batch_meta.applied_term = applied_term;
    int rc = mvcc_meta_write(s, s->batch, &s->meta, &s->batch_meta, err);
    if (rc) {
        s->batch_rc = rc;
        mvcc_batch_abort(s);
        return rc;
    }
    int fp = failpoint_hit("mvcc-before-commit");
    if (fp) {
        mvcc_batch_abort(s);
        return cord_error_set(err, MVCC_EIO, fp, "mvcc: failpoint mvcc-before-commit");
    }
    int mrc = mdb_txn_commit(s->batch);
    s->batch = NULL;
    s->batch_cost = 0;
    if (mrc) {
        rc = mvcc_lmdb_fail(err, mrc, "commit apply batch");
        if (mrc == MDB_MAP_FULL)
            after_map_full(s);
        return rc;
    }
    s->meta = s->batch_meta;
    (void)failpoint_hit("mvcc-after-commit");
    return MVCC_OK;
}

bool mvcc_batch_is_open(const mvcc_store *s)
{
    return s->batch != NULL;
}

MDB_txn *mvcc_batch_txn(mvcc_store *s)
{
    return s->batch;
}

/* ------------------------------------------------------------------------------------------ */
/* quota, alarm, status                                                                         */

uint64_t mvcc_db_size(mvcc_store *s)
{
    MDB_envinfo info;
    if (!s->env || mdb_env_info(s->env, &info) != 0)
        return 0;
    return ((uint64_t)info.me_last_pgno + 1) * s->page_size;
}

bool mvcc_quota_exceeded(mvcc_store *s, uint64_t cost)
{
    uint64_t size = mvcc_db_size(s) + (s->batch ? s->batch_cost : 0);
    return size + cost > s->opts.quota_bytes;
}

uint64_t mvcc_put_cost(const mvcc_put_req *req)
{
    return MVCC_KV_OVERHEAD_BYTES + req->key.len + req->value.len;
}

static uint64_t ops_cost(const mvcc_request_op *ops, size_t n)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].type == MVCC_OP_PUT)
            sum += mvcc_put_cost(&ops[i].put);
        else if (ops[i].type == MVCC_OP_TXN && ops[i].txn)
            sum += mvcc_txn_cost(ops[i].txn);
    }
    return sum;
}

uint64_t mvcc_txn_cost(const mvcc_txn_req *req)
{
    uint64_t a = ops_cost(req->success, req->success_len);
    uint64_t b = ops_cost(req->failure, req->failure_len);
    return a > b ? a : b;
}

int mvcc_quota_check(const mvcc_store *cs, uint64_t cost, cord_error *err)
{
    mvcc_store *s = (mvcc_store *)cs; /* reads only */
    const mvcc_meta *m = s->batch ? &s->batch_meta : &s->meta;
    if (m->alarm_nospace || (cost > 0 && mvcc_quota_exceeded(s, cost)))
        return mvcc_fail(err, MVCC_ENOSPACE);
    return MVCC_OK;
}

static int set_alarm(mvcc_store *s, bool on, cord_error *err)
{
    mvcc_ctx c;
    int rc = mvcc_ctx_write(s, &c, err);
    if (rc)
        return rc;
    c.m->alarm_nospace = on;
    return mvcc_ctx_end(&c, MVCC_OK, err);
}

int mvcc_alarm_activate(mvcc_store *s, cord_error *err)
{
    return set_alarm(s, true, err);
}

int mvcc_alarm_disarm(mvcc_store *s, cord_error *err)
{
    return set_alarm(s, false, err);
}

int mvcc_status_revisions(const mvcc_store *s, mvcc_status *out)
{
    memset(out, 0, sizeof(*out));
    if (!s->env)
        return MVCC_EIO;
    const mvcc_meta *m = s->batch ? &s->batch_meta : &s->meta;
    out->current_revision = m->current_rev;
    out->compact_revision = m->compact_rev;
    out->compact_scheduled_revision = m->compact_scheduled;
    out->compact_finished_revision = m->compact_finished;
    out->compaction_pending = m->compact_scheduled > m->compact_finished;
    out->applied_index = s->meta.applied_index;
    out->applied_term = s->meta.applied_term;
    out->alarm_nospace = m->alarm_nospace;
    out->quota_bytes = s->opts.quota_bytes;
    out->map_size_bytes = s->map_size;
    return MVCC_OK;
}

/* Free pages as txn sees them: the sum of the page lists in LMDB's free database (dbi 0). */
static uint64_t free_pages(MDB_txn *txn)
{
    MDB_cursor *cur = NULL;
    uint64_t n_free = 0;
    if (mdb_cursor_open(txn, 0, &cur) != 0)
        return 0;
    MDB_val k, v;
    int grc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (grc == 0) {
        if (v.mv_size >= sizeof(size_t)) {
            size_t n;
            memcpy(&n, v.mv_data, sizeof(n));
            n_free += n;
        }
        grc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return n_free;
}

int mvcc_status_get(mvcc_store *s, mvcc_status *out, cord_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!s->env)
        return mvcc_seterr(err, MVCC_EIO, "mvcc: store is closed after a failed reopen");
    const mvcc_meta *m = s->batch ? &s->batch_meta : &s->meta;
    out->current_revision = m->current_rev;
    out->compact_revision = m->compact_rev;
    out->compact_scheduled_revision = m->compact_scheduled;
    out->compact_finished_revision = m->compact_finished;
    out->compaction_pending = m->compact_scheduled > m->compact_finished;
    out->applied_index = s->meta.applied_index;
    out->applied_term = s->meta.applied_term;
    out->alarm_nospace = m->alarm_nospace;
    out->db_size_bytes = mvcc_db_size(s);
    out->quota_bytes = s->opts.quota_bytes;
    out->map_size_bytes = s->map_size;
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return mvcc_lmdb_fail(err, rc, "begin status transaction");
    uint64_t free_bytes = free_pages(txn) * s->page_size;
    mdb_txn_abort(txn);
    out->db_size_in_use_bytes =
        out->db_size_bytes > free_bytes ? out->db_size_bytes - free_bytes : 0;
    return MVCC_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* sync, defrag, snapshots                                                                      */

int mvcc_sync(mvcc_store *s, cord_error *err)
{
    if (!s->env)
        return mvcc_seterr(err, MVCC_EIO, "mvcc: store is closed after a failed reopen");
    int rc = mdb_env_sync(s->env, 1);
    if (rc)
        return mvcc_lmdb_fail(err, rc, "mdb_env_sync");
    return MVCC_OK;
}

void mvcc_writeback(mvcc_store *s)
{
    pthread_rwlock_rdlock(&s->env_lock);
    int fd = -1;
    if (s->env && mdb_env_get_fd(s->env, &fd) == 0 && fd >= 0)
        (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    pthread_rwlock_unlock(&s->env_lock);
}

static void *release_main(void *arg)
{
    mvcc_store *s = arg;
    pthread_mutex_lock(&s->release_mu);
    while (!s->release_stop) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        t.tv_nsec += 100 * 1000 * 1000;
        if (t.tv_nsec >= 1000000000L) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->release_cv, &s->release_mu, &t);
        if (s->release_stop)
            break;
        pthread_mutex_unlock(&s->release_mu);
        uint64_t mapped = 0;
        fileio_resident(NULL, &mapped);
        if (mapped > s->opts.release_above_bytes) {
            pthread_rwlock_rdlock(&s->env_lock); /* the map does not move meanwhile */
            int fd = -1;
            if (s->env && mdb_env_get_fd(s->env, &fd) == 0 && fd >= 0) {
                advise_map(fd, MADV_DONTNEED);
                __atomic_add_fetch(&s->releases, 1, __ATOMIC_RELAXED);
            }
            pthread_rwlock_unlock(&s->env_lock);
        }
        pthread_mutex_lock(&s->release_mu);
    }
    pthread_mutex_unlock(&s->release_mu);
    return NULL;
}

static void release_start(mvcc_store *s)
{
    if (!s->opts.release_above_bytes)
        return;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->release_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->release_mu, NULL);
    s->release_running = pthread_create(&s->release_thread, NULL, release_main, s) == 0;
    if (!s->release_running) {
        pthread_cond_destroy(&s->release_cv);
        pthread_mutex_destroy(&s->release_mu);
    }
}

static void release_end(mvcc_store *s)
{
    if (!s->release_running)
        return;
    pthread_mutex_lock(&s->release_mu);
    s->release_stop = true;
    pthread_cond_signal(&s->release_cv);
    pthread_mutex_unlock(&s->release_mu);
    pthread_join(s->release_thread, NULL);
    pthread_cond_destroy(&s->release_cv);
    pthread_mutex_destroy(&s->release_mu);
    s->release_running = false;
}

uint64_t mvcc_release_count(mvcc_store *s)
{
    return __atomic_load_n(&s->releases, __ATOMIC_RELAXED);
}

/* Renames `tmp` over the data file, fsyncs the directory and reopens the environment. */
static int swap_in_locked(mvcc_store *s, const char *tmp, cord_error *err);

static int swap_in(mvcc_store *s, const char *tmp, cord_error *err)
{
    pthread_rwlock_wrlock(&s->env_lock); /* waits for a snapshot copy on another thread */
    int rc = swap_in_locked(s, tmp, err);
    pthread_rwlock_unlock(&s->env_lock);
    return rc;
}

static int swap_in_locked(mvcc_store *s, const char *tmp, cord_error *err)
{
    int fp = failpoint_hit("mvcc-before-swap");
    if (fp) {
        unlink(tmp);
        return cord_error_set(err, MVCC_EIO, fp, "mvcc: failpoint mvcc-before-swap");
    }
    env_close(s);
    if (rename(tmp, s->data_path) != 0) {
        int e = errno;
        unlink(tmp);
        int rc = env_open(s, NULL);
        if (rc)
            return cord_error_set(err, MVCC_EIO, e,
                                  "mvcc: rename %s (and reopening the old store failed)", tmp);
        return cord_error_set(err, MVCC_EIO, e, "mvcc: rename %s", tmp);
    }
    int rc = fsync_dir(s->dir, err);
    if (rc)
        return rc; /* env stays closed: the directory entry is not durable */
    rc = env_open(s, err);
    if (rc)
        return rc;
    return finish_pending_compaction(s, err);
}

static int write_all_fsync(int fd, cord_error *err, const char *path)
{
    if (fsync(fd) != 0)
        return cord_error_set(err, MVCC_EIO, errno, "mvcc: fsync %s", path);
    return MVCC_OK;
}

/* The newest committed transaction's id: a state that a later commit would change. */
static int last_txnid(mvcc_store *s, uint64_t *id, cord_error *err)
{
    MDB_envinfo info;
    int mrc = mdb_env_info(s->env, &info);
    if (mrc)
        return mvcc_lmdb_fail(err, mrc, "mdb_env_info");
    *id = (uint64_t)info.me_last_txnid;
    return MVCC_OK;
}

int mvcc_defrag_copy(mvcc_store *s, uint64_t *state, cord_error *err)
{
    char *tmp = path_join(s->dir, "data.mdb.defrag");
    if (!tmp)
        return mvcc_fail(err, MVCC_ENOMEM);
    int rc = MVCC_OK;
    pthread_rwlock_rdlock(&s->env_lock); /* the environment stays while it is copied */
    if (!s->env) {
        rc = mvcc_seterr(err, MVCC_EIO, "mvcc: store is closed after a failed reopen");
        goto out;
    }
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = cord_error_set(err, MVCC_EIO, errno, "mvcc: create %s", tmp);
        goto out;
    }
    /* Taken before the copy begins its read transaction: if no commit follows, the copy
     * holds exactly this state (mvcc_defrag_install checks). */
    rc = last_txnid(s, state, err);
    int mrc = rc ? 0 : mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
    if (mrc)
        rc = mvcc_lmdb_fail(err, mrc, "compacting copy");
    if (!rc)
        rc = write_all_fsync(fd, err, tmp);
    close(fd);
    if (rc)
        unlink(tmp);
out:
    pthread_rwlock_unlock(&s->env_lock);
    free(tmp);
    return rc;
}

int mvcc_defrag_install(mvcc_store *s, uint64_t state, cord_error *err)
{
    char *tmp = path_join(s->dir, "data.mdb.defrag");
    if (!tmp)
        return mvcc_fail(err, MVCC_ENOMEM);
    int rc;
    uint64_t now = 0;
    if (!s->env) {
        rc = mvcc_seterr(err, MVCC_EIO, "mvcc: store is closed after a failed reopen");
    } else if (s->batch) {
        rc = mvcc_seterr(err, MVCC_EBUSY, "mvcc: cannot defragment inside an apply batch");
    } else if ((rc = last_txnid(s, &now, err)) == MVCC_OK && now != state) {
        rc = mvcc_seterr(err, MVCC_EBUSY,
                         "mvcc: the store was written during the defragmentation's copy");
    }
    if (rc) {
        unlink(tmp);
        free(tmp);
        return rc;
    }
    if (s->rtxn) {
        mdb_txn_abort(s->rtxn);
        s->rtxn = NULL;
    }
    rc = swap_in(s, tmp, err);
    free(tmp);
    return rc;
}

void mvcc_defrag_discard(mvcc_store *s)
{
    char *tmp = path_join(s->dir, "data.mdb.defrag");
    if (tmp)
        unlink(tmp);
    free(tmp);
}

int mvcc_defrag(mvcc_store *s, cord_error *err)
{
    if (!s->env)
        return mvcc_seterr(err, MVCC_EIO, "mvcc: store is closed after a failed reopen");
    if (s->batch)
        return mvcc_seterr(err, MVCC_EBUSY, "mvcc: cannot defragment inside an apply batch");
    uint64_t state = 0;
    int rc = mvcc_defrag_copy(s, &state, err);
    return rc ? rc : mvcc_defrag_install(s, state, err);
}

int mvcc_snapshot_write(mvcc_store *s, int fd, uint64_t *applied_index, uint64_t *applied_term,
                        cord_error *err)
{
    if (!s->env)
        return mvcc_seterr(err, MVCC_EIO, "mvcc: store is closed after a failed reopen");
    if (s->batch)
        return mvcc_seterr(err, MVCC_EBUSY, "mvcc: cannot snapshot inside an apply batch");
    /* The owner thread is the only writer: nothing commits during the copy, so the copy
     * holds exactly the committed meta read here. */
    mvcc_meta before = s->meta;
    int mrc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
    if (mrc)
        return mvcc_lmdb_fail(err, mrc, "snapshot copy");
    assert(meta_equal(&before, &s->meta));
    if (applied_index)
        *applied_index = before.applied_index;
    if (applied_term)
        *applied_term = before.applied_term;
    return MVCC_OK;
}

int mvcc_snapshot_copy(mvcc_store *s, int fd, uint64_t *applied_index, uint64_t *applied_term,
                       cord_error *err)
{
    pthread_rwlock_rdlock(&s->env_lock);
    int mrc = s->env ? mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT) : EIO;
    pthread_rwlock_unlock(&s->env_lock);
    if (mrc)
        return mvcc_lmdb_fail(err, mrc, "snapshot copy");
    /* the copy is one read transaction's view: its own meta says what it holds */
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return mvcc_snapshot_info(path, applied_index, applied_term, err);
}

struct mvcc_image {
    mvcc_store *s;
    MDB_txn *txn;   /* pins every page of the copied state: writers cannot reuse them */
    int fd;         /* the data file */
    uint8_t *metas; /* its meta pages, read while no commit could run */
    uint64_t meta_bytes;
    mvcc_image_info info;
};

/* The meta pages and the extent of the newest commit, read under LMDB's writer lock (an
 * empty write transaction), then a read transaction on that same commit. A commit that slips
 * in between shows as a newer transaction id: then again. */
static int image_pin(mvcc_store *s, mvcc_image *im, cord_error *err)
{
    for (int attempt = 0; attempt < 1000; attempt++) {
        MDB_txn *w = NULL;
        int rc = mdb_txn_begin(s->env, NULL, 0, &w);
        if (rc)
            return mvcc_lmdb_fail(err, rc, "begin image transaction");
        MDB_envinfo info;
        size_t got = 0;
        int ferr = mdb_env_info(s->env, &info) != 0
                       ? EIO
                       : fileio_pread_full(im->fd, im->metas, im->meta_bytes, 0, &got);
        mdb_txn_abort(w);
        if (ferr || got != im->meta_bytes)
            return cord_error_set(err, MVCC_EIO, ferr, "mvcc: read the meta pages");
        rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &im->txn);
        if (rc)
            return mvcc_lmdb_fail(err, rc, "begin image read");
        if (mdb_txn_id(im->txn) == info.me_last_txnid) {
            im->info.size = ((uint64_t)info.me_last_pgno + 1) * s->page_size;
            return MVCC_OK;
        }
        mdb_txn_abort(im->txn);
        im->txn = NULL;
    }
    return mvcc_seterr(err, MVCC_EIO, "mvcc: no quiet moment to pin the store for a copy");
}

int mvcc_image_open(mvcc_store *s, unsigned max_free_percent, mvcc_image **out,
                    mvcc_image_info *info, cord_error *err)
{
    *out = NULL;
    mvcc_image *im = calloc(1, sizeof *im);
    if (im)
        im->metas = malloc(2u * s->page_size);
    if (!im || !im->metas) {
        if (im)
            free(im);
        return mvcc_fail(err, MVCC_ENOMEM);
    }
    im->s = s;
    im->meta_bytes = 2u * s->page_size;
    pthread_rwlock_rdlock(&s->env_lock); /* the environment stays: released by close */
    int rc;
    if (!s->env || mdb_env_get_fd(s->env, &im->fd) != 0) {
        rc = mvcc_seterr(err, MVCC_EIO, "mvcc: store is closed after a failed reopen");
        goto fail;
    }
    rc = image_pin(s, im, err);
    if (rc)
        goto fail;
    mvcc_meta m;
    bool initialized = false;
    uint64_t format = 0;
    rc = meta_read(im->txn, s->dbi_meta, &m, &initialized, &format, err);
    if (rc)
        goto fail;
    im->info.applied_index = m.applied_index;
    im->info.applied_term = m.applied_term;
    im->info.free_bytes = free_pages(im->txn) * s->page_size;
    *info = im->info;
    if (im->info.free_bytes * 100 > im->info.size * max_free_percent) {
        mvcc_image_close(im); /* a compacting copy is worth its cost */
        return MVCC_OK;
    }
    *out = im;
    return MVCC_OK;
fail:
    mvcc_image_close(im);
    return rc;
}

int mvcc_image_read(mvcc_image *im, uint64_t off, void *buf, size_t len, size_t *got,
                    cord_error *err)
{
    *got = 0;
    if (off >= im->info.size)
        return MVCC_OK;
    if (len > im->info.size - off)
        len = (size_t)(im->info.size - off);
    if (off < im->meta_bytes) {
        size_t n = len < im->meta_bytes - off ? len : (size_t)(im->meta_bytes - off);
        memcpy(buf, im->metas + off, n);
        *got = n;
        return MVCC_OK;
    }
    int ferr = fileio_pread_full(im->fd, buf, len, off, got);
    if (ferr)
        return cord_error_set(err, MVCC_EIO, ferr, "mvcc: read the data file");
    if (*got < len)
        return mvcc_seterr(err, MVCC_EIO, "mvcc: the data file is shorter than its meta says");
    return MVCC_OK;
}

void mvcc_image_close(mvcc_image *im)
{
    if (!im)
        return;
    if (im->txn)
        mdb_txn_abort(im->txn);
    pthread_rwlock_unlock(&im->s->env_lock);
    free(im->metas);
    free(im);
}

int mvcc_snapshot_save(mvcc_store *s, const char *path, uint64_t *applied_index,
                       uint64_t *applied_term, cord_error *err)
{
    size_t n = strlen(path) + 5;
    char *tmp = malloc(n);
    char *dir = strdup(path);
    int rc = MVCC_OK;
    if (!tmp || !dir) {
        rc = mvcc_fail(err, MVCC_ENOMEM);
        goto out;
    }
    snprintf(tmp, n, "%s.tmp", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = 0;
    else if (slash)
        *slash = 0;
    else
        strcpy(dir, ".");
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = cord_error_set(err, MVCC_EIO, errno, "mvcc: create %s", tmp);
        goto out;
    }
    rc = mvcc_snapshot_write(s, fd, applied_index, applied_term, err);
    if (!rc)
        rc = write_all_fsync(fd, err, tmp);
    close(fd);
    if (!rc && rename(tmp, path) != 0)
        rc = cord_error_set(err, MVCC_EIO, errno, "mvcc: rename %s", tmp);
    if (!rc)
        rc = fsync_dir(dir, err);
    if (rc)
        unlink(tmp);
out:
    free(tmp);
    free(dir);
    return rc;
}

int mvcc_snapshot_info(const char *path, uint64_t *applied_index, uint64_t *applied_term,
                       cord_error *err)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    int rc = mdb_env_create(&env);
    if (rc)
        return mvcc_lmdb_fail(err, rc, "mdb_env_create");
    mdb_env_set_maxdbs(env, MVCC_MAX_DBS);
    rc = mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0600);
    if (rc) {
        rc = mvcc_seterr(err, rc == MDB_INVALID ? MVCC_ECORRUPT : MVCC_EIO,
                         "mvcc: open snapshot %s: %s", path, mdb_strerror(rc));
        goto out;
    }
    rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (rc) {
        rc = mvcc_lmdb_fail(err, rc, "begin snapshot read");
        goto out;
    }
    rc = mdb_dbi_open(txn, DB_META, 0, &dbi);
    if (rc) {
        rc = mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: %s is not a cord store (%s)", path,
                         mdb_strerror(rc));
        goto out;
    }
    mvcc_meta m;
    bool initialized = false;
    uint64_t format = 0;
    rc = meta_read(txn, dbi, &m, &initialized, &format, err);
    if (rc)
        goto out;
    if (!initialized) {
        rc = mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: %s has no cord meta", path);
        goto out;
    }
    if (applied_index)
        *applied_index = m.applied_index;
    if (applied_term)
        *applied_term = m.applied_term;
    rc = MVCC_OK;
out:
    if (txn)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    return rc;
}

static int copy_file(const char *from, const char *to, cord_error *err)
{
    int rc = MVCC_OK;
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return cord_error_set(err, MVCC_EIO, errno, "mvcc: open %s", from);
    unlink(to);
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        rc = cord_error_set(err, MVCC_EIO, errno, "mvcc: create %s", to);
        close(in);
        return rc;
    }
    enum { BUF = 1 << 16 };
    char *buf = malloc(BUF);
    if (!buf) {
        rc = mvcc_fail(err, MVCC_ENOMEM);
        goto done;
    }
    for (;;) {
        ssize_t n = read(in, buf, BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = cord_error_set(err, MVCC_EIO, errno, "mvcc: read %s", from);
            goto done;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rc = cord_error_set(err, MVCC_EIO, errno, "mvcc: write %s", to);
                goto done;
            }
            off += w;
        }
    }
    rc = write_all_fsync(out, err, to);
done:
    free(buf);
    close(in);
    close(out);
    if (rc)
        unlink(to);
    return rc;
}

int mvcc_snapshot_restore(mvcc_store *s, const char *path, cord_error *err)
{
    if (s->batch)
        return mvcc_seterr(err, MVCC_EBUSY, "mvcc: cannot restore inside an apply batch");
    int rc = mvcc_snapshot_info(path, NULL, NULL, err);
    if (rc)
        return rc;
    char *tmp = path_join(s->dir, "data.mdb.restore");
    if (!tmp)
        return mvcc_fail(err, MVCC_ENOMEM);
    rc = copy_file(path, tmp, err);
    if (!rc)
        rc = swap_in(s, tmp, err);
    free(tmp);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* restoring a backup into a new cluster                                                        */

int mvcc_reset_applied(mvcc_store *s, cord_error *err)
{
    if (s->batch)
        return mvcc_fail(err, MVCC_EBUSY);
    MDB_txn *txn = NULL;
    if (mdb_txn_begin(s->env, NULL, 0, &txn) != 0)
        return mvcc_fail(err, MVCC_EIO);
    mvcc_meta m = s->meta;
    m.applied_index = 0;
    m.applied_term = 0;
    int rc = mvcc_meta_write(s, txn, &s->meta, &m, err);
    if (rc != MVCC_OK) {
        mdb_txn_abort(txn);
        return rc;
    }
    if (mdb_txn_commit(txn) != 0)
        return mvcc_fail(err, MVCC_EIO);
    s->meta = m;
    return MVCC_OK;
}
