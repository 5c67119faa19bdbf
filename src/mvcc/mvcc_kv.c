/*
 * mvcc_kv.c — the key space: index scans, Range, Put, DeleteRange, Txn, lease keys.
 *
 * The semantics follow etcd v3.5/3.6 (server/etcdserver/txn, server/storage/mvcc):
 * - a write op's response revision is beginRev+1, a read's is the txn's visible revision;
 * - Range fetches limit+1 keys unless sorting or revision filters ask for everything, then
 *   prunes, sorts and cuts to limit (`more`), `count` is the number of keys in the range;
 * - a Txn evaluates every compare on its branch path before any write, checks the chosen
 *   ops (range revisions, ignore_* keys, leases), then executes; ops see earlier writes.
 */
#include "mvcc/mvcc_internal.h"

#include <stdlib.h>

#define DELETE_CHUNK_KEYS 1024u

typedef enum range_kind { RK_SINGLE, RK_RANGE, RK_FROM } range_kind;

static range_kind kind_of(mvcc_bytes end)
{
    if (end.len == 0)
        return RK_SINGLE;
    if (end.len == 1 && end.data[0] == 0)
        return RK_FROM;
    return RK_RANGE;
}

bool mvcc_key_in_range(const uint8_t *k, size_t klen, mvcc_bytes key, mvcc_bytes end)
{
    int c = mvcc_bytes_cmp(k, klen, key.data, key.len);
    switch (kind_of(end)) {
    case RK_SINGLE:
        return c == 0;
    case RK_FROM:
        return c >= 0;
    case RK_RANGE:
    default:
        return c >= 0 && mvcc_bytes_cmp(k, klen, end.data, end.len) < 0;
    }
}

bool mvcc_arena_copy(mvcc_arena *a, mvcc_bytes *dst, const uint8_t *src, size_t len)
{
    dst->data = NULL;
    dst->len = 0;
    if (len == 0)
        return true;
    uint8_t *p = mvcc_arena_alloc(a, len);
    if (!p)
        return false;
    memcpy(p, src, len);
    dst->data = p;
    dst->len = len;
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* index access                                                                                 */

static int seek(mvcc_ctx *c, MDB_cursor *cur, const uint8_t *key, size_t key_len, int64_t main,
                int64_t sub, MDB_val *k, MDB_val *v)
{
    k->mv_size = mvcc_ikey_encode(c->seek_buf, key, key_len, main, sub);
    k->mv_data = c->seek_buf;
    return mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
}

static int seek_past(mvcc_ctx *c, MDB_cursor *cur, const uint8_t *key, size_t key_len, MDB_val *k,
                     MDB_val *v)
{
    k->mv_size = mvcc_ikey_encode_past(c->seek_buf, key, key_len);
    k->mv_data = c->seek_buf;
    return mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
}

/* A group's live members (see MVCC_IKEY_PART_MAX), collected to be sorted by full key. */
typedef struct group_member {
    mvcc_ientry e; /* e.key set once the blob stops moving */
    size_t off;
} group_member;

typedef struct group_vec {
    group_member *v;
    size_t n;
    size_t cap;
    uint8_t *blob;
    size_t blob_len;
    size_t blob_cap;
} group_vec;

static int group_push(group_vec *g, const mvcc_ientry *e, const uint8_t *key, size_t key_len,
                      cord_error *err)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        group_member *nv = realloc(g->v, cap * sizeof(*nv));
        if (!nv)
            return mvcc_fail(err, MVCC_ENOMEM);
        g->v = nv;
        g->cap = cap;
    }
    if (g->blob_len + key_len > g->blob_cap) {
        size_t cap = g->blob_cap ? g->blob_cap * 2 : 4096;
        while (cap < g->blob_len + key_len)
            cap *= 2;
        uint8_t *nb = realloc(g->blob, cap);
        if (!nb)
            return mvcc_fail(err, MVCC_ENOMEM);
        g->blob = nb;
        g->blob_cap = cap;
    }
    memcpy(g->blob + g->blob_len, key, key_len);
    group_member *m = &g->v[g->n++];
    m->e = *e;
    m->e.key = NULL;
    m->e.key_len = key_len;
    m->off = g->blob_len;
    g->blob_len += key_len;
    return MVCC_OK;
}

static int group_member_cmp(const void *a, const void *b)
{
    const mvcc_ientry *x = &((const group_member *)a)->e, *y = &((const group_member *)b)->e;
    return mvcc_bytes_cmp(x->key, x->key_len, y->key, y->key_len);
}

/* The cursor is at the first entry of a group (a part longer than MVCC_IKEY_PREFIX_BYTES).
 * Visits the group's keys live at `rev` and inside [key, end) in key order, and leaves the
 * cursor (k, v, *mrc) on the first entry past the group. *stop when fn asked to stop. */
static int scan_group(mvcc_ctx *c, MDB_cursor *cur, mvcc_bytes key, mvcc_bytes end, int64_t rev,
                      mvcc_visit_fn fn, void *arg, MDB_val *k, MDB_val *v, int *mrc, bool *stop,
                      cord_error *err)
{
    uint8_t prefix[MVCC_IKEY_PREFIX_BYTES];
    memcpy(prefix, k->mv_data, MVCC_IKEY_PREFIX_BYTES);
    group_vec g = {0};
    int rc = MVCC_OK;
    while (*mrc == 0) {
        mvcc_ientry e;
        if (mvcc_ientry_decode(k, v, &e) != MVCC_OK) {
            rc = mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: bad key_index entry");
            goto out;
        }
        if (e.key_len <= MVCC_IKEY_PREFIX_BYTES || memcmp(e.key, prefix, sizeof(prefix)) != 0)
            break; /* past the group */
        if (e.main > rev) {
            *mrc = seek(c, cur, e.key, e.key_len, rev, INT64_MAX, k, v);
            continue;
        }
        if (!e.tombstone) {
            const uint8_t *full = e.key;
            size_t full_len = e.key_len;
            if (mvcc_ikey_part_hashed(e.key_len)) {
                mvcc_kv stored;
                if ((rc = mvcc_fetch_kv(c, e.main, e.sub, &stored, err)))
                    goto out;
                full = stored.key.data;
                full_len = stored.key.len;
            }
            if (mvcc_key_in_range(full, full_len, key, end) &&
                (rc = group_push(&g, &e, full, full_len, err)))
                goto out;
        }
        *mrc = seek_past(c, cur, e.key, e.key_len, k, v);
    }
    if (*mrc && *mrc != MDB_NOTFOUND) {
        rc = mvcc_ctx_lmdb_fail(c, err, *mrc, "scan key_index");
        goto out;
    }
    for (size_t i = 0; i < g.n; i++)
        g.v[i].e.key = g.blob + g.v[i].off;
    if (g.n > 1)
        qsort(g.v, g.n, sizeof(*g.v), group_member_cmp);
    for (size_t i = 0; i < g.n; i++) {
        int r = fn(arg, &g.v[i].e);
        if (r < 0) {
            rc = r;
            goto out;
        }
        if (r > 0) {
            *stop = true;
            break;
        }
    }
out:
    free(g.v);
    free(g.blob);
    return rc;
}

int mvcc_scan(mvcc_ctx *c, mvcc_bytes key, mvcc_bytes end, int64_t rev, mvcc_visit_fn fn, void *arg,
              cord_error *err)
{
    int rc = MVCC_OK;
    range_kind kind = kind_of(end);
    if (kind == RK_RANGE && mvcc_bytes_cmp(end.data, end.len, key.data, key.len) <= 0)
        return MVCC_OK;
    if (kind == RK_SINGLE) {
        mvcc_ientry e;
        bool found = false;
        rc = mvcc_ilookup(c, key.data, key.len, rev, &e, &found, err);
        if (rc || !found || e.tombstone)
            return rc;
        int r = fn(arg, &e);
        return r < 0 ? r : MVCC_OK;
    }
    MDB_cursor *cur = mvcc_ctx_kidx(c, err, &rc);
    if (!cur)
        return rc;
    /* A start key longer than a group's prefix may sit inside a group: start at the group. */
    size_t start_len = key.len > MVCC_IKEY_PREFIX_BYTES ? MVCC_IKEY_PREFIX_BYTES : key.len;
    MDB_val k, v;
    int mrc = seek(c, cur, key.data, start_len, rev, INT64_MAX, &k, &v);
    for (;;) {
        if (mrc == MDB_NOTFOUND)
            return MVCC_OK;
        if (mrc)
            return mvcc_ctx_lmdb_fail(c, err, mrc, "scan key_index");
        mvcc_ientry e;
        if (mvcc_ientry_decode(&k, &v, &e) != MVCC_OK)
            return mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: bad key_index entry");
        if (e.key_len > MVCC_IKEY_PREFIX_BYTES) {
            /* every key of the group is longer than its prefix, so none is below an end that
             * is at most the prefix */
            if (kind == RK_RANGE &&
                mvcc_bytes_cmp(e.key, MVCC_IKEY_PREFIX_BYTES, end.data, end.len) >= 0)
                return MVCC_OK;
            bool stop = false;
            rc = scan_group(c, cur, key, end, rev, fn, arg, &k, &v, &mrc, &stop, err);
            if (rc || stop)
                return rc;
            continue;
        }
        if (kind == RK_RANGE && mvcc_bytes_cmp(e.key, e.key_len, end.data, end.len) >= 0)
            return MVCC_OK;
        if (start_len < key.len && mvcc_bytes_cmp(e.key, e.key_len, key.data, key.len) < 0) {
            mrc = seek_past(c, cur, e.key, e.key_len, &k, &v);
            continue;
        }
        if (e.main > rev) {
            /* newest entry of this key is too new: find its version at rev (or next key) */
            mrc = seek(c, cur, e.key, e.key_len, rev, INT64_MAX, &k, &v);
            continue;
        }
        if (!e.tombstone) {
            int r = fn(arg, &e);
            if (r < 0)
                return r;
            if (r > 0)
                return MVCC_OK;
        }
        /* next user key: step over a few older revisions, then seek past the rest */
        size_t cur_len = e.key_len;
        memmove(c->seek_buf, e.key, cur_len);
        for (int steps = 0;; steps++) {
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            if (mrc)
                break;
            if (k.mv_size < MVCC_REV_SUFFIX_BYTES)
                return mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: bad key_index key");
            if (k.mv_size - MVCC_REV_SUFFIX_BYTES != cur_len ||
                memcmp(k.mv_data, c->seek_buf, cur_len) != 0)
                break;
            if (steps >= 3) {
                mrc = seek_past(c, cur, c->seek_buf, cur_len, &k, &v);
                break;
            }
        }
    }
}

int mvcc_ilookup_part(mvcc_ctx *c, const uint8_t *part, size_t part_len, int64_t rev,
                      mvcc_ientry *e, bool *found, cord_error *err)
{
    int rc = MVCC_OK;
    *found = false;
    MDB_cursor *cur = mvcc_ctx_kidx(c, err, &rc);
    if (!cur)
        return rc;
    MDB_val k, v;
    int mrc = seek(c, cur, part, part_len, rev, INT64_MAX, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return MVCC_OK;
    if (mrc)
        return mvcc_ctx_lmdb_fail(c, err, mrc, "lookup key_index");
    if (mvcc_ientry_decode(&k, &v, e) != MVCC_OK)
        return mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: bad key_index entry");
    if (mvcc_bytes_cmp(e->key, e->key_len, part, part_len) != 0)
        return MVCC_OK;
    assert(e->main <= rev);
    *found = true;
    return MVCC_OK;
}

int mvcc_ilookup(mvcc_ctx *c, const uint8_t *key, size_t key_len, int64_t rev, mvcc_ientry *e,
                 bool *found, cord_error *err)
{
    uint8_t part[MVCC_IKEY_PART_MAX];
    size_t part_len = mvcc_ikey_part(part, key, key_len);
    int rc = mvcc_ilookup_part(c, part, part_len, rev, e, found, err);
    if (!rc && *found) {
        e->key = key;
        e->key_len = key_len;
    }
    return rc;
}

int mvcc_fetch_kv(mvcc_ctx *c, int64_t main, int64_t sub, mvcc_kv *kv, cord_error *err)
{
    uint8_t rb[MVCC_MARKED_REV_BYTES];
    MDB_val k = {mvcc_rev_encode(rb, main, sub, false), rb}, v;
    int mrc = mdb_get(c->txn, c->s->dbi_key, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: revision %lld.%lld missing from key db",
                           (long long)main, (long long)sub);
    if (mrc)
        return mvcc_ctx_lmdb_fail(c, err, mrc, "read key db");
    if (!mvcc_kvpb_decode(v.mv_data, v.mv_size, kv))
        return mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: revision %lld.%lld does not decode",
                           (long long)main, (long long)sub);
    return MVCC_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* growable malloc'd vectors (temporary, freed before returning)                               */

typedef struct kvvec {
    mvcc_kv *v;
    size_t n;
    size_t cap;
} kvvec;

static int kvvec_push(kvvec *vec, const mvcc_kv *kv, cord_error *err)
{
    if (vec->n == vec->cap) {
        size_t cap = vec->cap ? vec->cap * 2 : 16;
        mvcc_kv *nv = realloc(vec->v, cap * sizeof(*nv));
        if (!nv)
            return mvcc_fail(err, MVCC_ENOMEM);
        vec->v = nv;
        vec->cap = cap;
    }
    vec->v[vec->n++] = *kv;
    return MVCC_OK;
}

/* Moves the vector's elements into the arena. Returns false when the arena is full. */
static bool kvvec_to_arena(kvvec *vec, mvcc_arena *a, mvcc_kv **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (vec->n == 0)
        return true;
    mvcc_kv *p = mvcc_arena_alloc(a, vec->n * sizeof(*p));
    if (!p)
        return false;
    memcpy(p, vec->v, vec->n * sizeof(*p));
    *out = p;
    *out_len = vec->n;
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Range                                                                                        */

typedef struct range_collect {
    mvcc_ctx *c;
    mvcc_arena *a;
    cord_error *err;
    bool count_only;
    bool want_value;
    size_t fetch_limit; /* 0: all */
    int64_t count;
    kvvec out;
    bool arena_full;
} range_collect;

/* Builds an arena copy of the live entry `e` (with its value when want_value). */
static int entry_to_kv(mvcc_ctx *c, mvcc_arena *a, const mvcc_ientry *e, bool want_value,
                       mvcc_kv *kv, bool *arena_full, cord_error *err)
{
    memset(kv, 0, sizeof(*kv));
    kv->create_revision = e->create;
    kv->mod_revision = e->main;
    kv->version = e->version;
    kv->lease = e->lease;
    if (want_value) {
        mvcc_kv stored;
        int rc = mvcc_fetch_kv(c, e->main, e->sub, &stored, err);
        if (rc)
            return rc;
        if (!mvcc_arena_copy(a, &kv->value, stored.value.data, stored.value.len)) {
            *arena_full = true;
            return MVCC_OK;
        }
    }
    if (!mvcc_arena_copy(a, &kv->key, e->key, e->key_len))
        *arena_full = true;
    return MVCC_OK;
}

static int range_visit(void *arg, const mvcc_ientry *e)
{
    range_collect *rc = arg;
    rc->count++;
    if (rc->count_only || rc->arena_full)
        return 0;
    if (rc->fetch_limit && rc->out.n >= rc->fetch_limit)
        return 0; /* keep counting */
    mvcc_kv kv;
    int r = entry_to_kv(rc->c, rc->a, e, rc->want_value, &kv, &rc->arena_full, rc->err);
    if (r)
        return r;
    if (rc->arena_full)
        return 0;
    return kvvec_push(&rc->out, &kv, rc->err);
}

typedef struct sort_spec {
    mvcc_sort_target target;
    bool descend;
} sort_spec;

static int cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : (a > b ? 1 : 0);
}

static int kv_cmp(const sort_spec *sp, const mvcc_kv *a, const mvcc_kv *b)
{
    int c = 0;
    switch (sp->target) {
    case MVCC_SORT_KEY:
        c = mvcc_bytes_cmp(a->key.data, a->key.len, b->key.data, b->key.len);
        break;
    case MVCC_SORT_VERSION:
        c = cmp_i64(a->version, b->version);
        break;
    case MVCC_SORT_CREATE:
        c = cmp_i64(a->create_revision, b->create_revision);
        break;
    case MVCC_SORT_MOD:
        c = cmp_i64(a->mod_revision, b->mod_revision);
        break;
    case MVCC_SORT_VALUE:
        c = mvcc_bytes_cmp(a->value.data, a->value.len, b->value.data, b->value.len);
        break;
    }
    return sp->descend ? -c : c;
}

/* Stable merge sort: ties keep key order. */
static void merge_sort(const sort_spec *sp, mvcc_kv *v, mvcc_kv *tmp, size_t n)
{
    if (n < 2)
        return;
    size_t mid = n / 2;
    merge_sort(sp, v, tmp, mid);
    merge_sort(sp, v + mid, tmp, n - mid);
    size_t i = 0, j = mid, k = 0;
    while (i < mid && j < n)
        tmp[k++] = kv_cmp(sp, &v[j], &v[i]) < 0 ? v[j++] : v[i++];
    while (i < mid)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof(*v));
}

static bool default_ordering(mvcc_sort_target target, mvcc_sort_order order)
{
    return order == MVCC_SORT_NONE || (target == MVCC_SORT_KEY && order == MVCC_SORT_ASCEND);
}

static bool has_rev_filters(const mvcc_range_req *r)
{
    return r->min_mod_revision || r->max_mod_revision || r->min_create_revision ||
           r->max_create_revision;
}

static bool pruned(const mvcc_range_req *r, const mvcc_kv *kv)
{
    if (r->max_mod_revision && kv->mod_revision > r->max_mod_revision)
        return true;
    if (r->min_mod_revision && kv->mod_revision < r->min_mod_revision)
        return true;
    if (r->max_create_revision && kv->create_revision > r->max_create_revision)
        return true;
    if (r->min_create_revision && kv->create_revision < r->min_create_revision)
        return true;
    return false;
}

static int check_range_req(const mvcc_range_req *r, cord_error *err)
{
    if (r->key.len == 0)
        return mvcc_fail(err, MVCC_EEMPTYKEY);
    if ((unsigned)r->sort_order > MVCC_SORT_DESCEND || (unsigned)r->sort_target > MVCC_SORT_VALUE)
        return mvcc_seterr(err, MVCC_EINVAL, "mvcc: invalid sort option (order %d, target %d)",
                           (int)r->sort_order, (int)r->sort_target);
    return MVCC_OK;
}

int mvcc_range_exec(mvcc_ctx *c, mvcc_arena *arena, const mvcc_range_req *req,
                    mvcc_range_resp *resp, cord_error *err)
{
    memset(resp, 0, sizeof(*resp));
    int64_t cur = mvcc_ctx_visible_rev(c);
    int64_t rev = req->revision;
    if (rev > cur)
        return mvcc_fail(err, MVCC_EFUTURE);
    if (rev <= 0)
        rev = cur;
    if (rev < c->m->compact_rev)
        return mvcc_fail(err, MVCC_ECOMPACTED);

    mvcc_sort_order order = req->sort_order;
    if (req->sort_target != MVCC_SORT_KEY && order == MVCC_SORT_NONE)
        order = MVCC_SORT_ASCEND;
    bool do_sort = !default_ordering(req->sort_target, order);

    range_collect rc = {0};
    rc.c = c;
    rc.a = arena;
    rc.err = err;
    rc.count_only = req->count_only;
    rc.want_value = !req->keys_only || (do_sort && req->sort_target == MVCC_SORT_VALUE);
    if (default_ordering(req->sort_target, req->sort_order) && !has_rev_filters(req) &&
        req->limit > 0 && req->limit < INT64_MAX)
        rc.fetch_limit = (size_t)req->limit + 1;
    int r = mvcc_scan(c, req->key, req->range_end, rev, range_visit, &rc, err);
    if (r)
        goto out;
    if (rc.arena_full) {
        r = mvcc_fail(err, MVCC_ERESULT);
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < rc.out.n; i++)
        if (!pruned(req, &rc.out.v[i]))
            rc.out.v[n++] = rc.out.v[i];
    rc.out.n = n;
    if (do_sort && n > 1) {
        if (req->sort_target == MVCC_SORT_KEY && order == MVCC_SORT_DESCEND) {
            for (size_t i = 0; i < n / 2; i++) {
                mvcc_kv t = rc.out.v[i];
                rc.out.v[i] = rc.out.v[n - 1 - i];
                rc.out.v[n - 1 - i] = t;
            }
        } else {
            mvcc_kv *tmp = malloc(n * sizeof(*tmp));
            if (!tmp) {
                r = mvcc_fail(err, MVCC_ENOMEM);
                goto out;
            }
            sort_spec sp = {req->sort_target, order == MVCC_SORT_DESCEND};
            merge_sort(&sp, rc.out.v, tmp, n);
            free(tmp);
        }
    }
    if (req->limit > 0 && (uint64_t)rc.out.n > (uint64_t)req->limit) {
        rc.out.n = (size_t)req->limit;
        resp->more = true;
    }
    if (req->keys_only)
        for (size_t i = 0; i < rc.out.n; i++)
            rc.out.v[i].value = (mvcc_bytes){NULL, 0};
    if (!kvvec_to_arena(&rc.out, arena, &resp->kvs, &resp->kvs_len)) {
        r = mvcc_fail(err, MVCC_ERESULT);
        goto out;
    }
    resp->revision = cur;
    resp->count = rc.count;
out:
    free(rc.out.v);
    if (r)
        memset(resp, 0, sizeof(*resp));
    return r;
}

/* ------------------------------------------------------------------------------------------ */
/* writes                                                                                       */

static int lease_key_write(mvcc_ctx *c, int64_t lease, const uint8_t *key, size_t key_len,
                           bool attach, cord_error *err)
{
    /* lease id ++ the key's part; a hashed part's record holds the full key */
    uint8_t buf[8 + MVCC_IKEY_PART_MAX];
    mvcc_put_be64(buf, (uint64_t)lease);
    size_t part_len = mvcc_ikey_part(buf + 8, key, key_len);
    MDB_val k = {8 + part_len, buf}, v = {0, NULL};
    if (mvcc_ikey_part_hashed(part_len))
        v = (MDB_val){key_len, (void *)key};
    int mrc = attach ? mdb_put(c->txn, c->s->dbi_lease, &k, &v, 0)
                     : mdb_del(c->txn, c->s->dbi_lease, &k, NULL);
    if (mrc && !(mrc == MDB_NOTFOUND && !attach))
        return mvcc_ctx_lmdb_fail(c, err, mrc, attach ? "attach lease" : "detach lease");
    return MVCC_OK;
}

/* Appends one revision (put or tombstone) of `kv->key` at (beginRev+1, changes). */
static int write_revision(mvcc_ctx *c, const mvcc_kv *kv, bool tombstone, cord_error *err)
{
    assert(c->write);
    int64_t main = c->begin_rev + 1;
    int64_t sub = c->changes;
    uint8_t rb[MVCC_MARKED_REV_BYTES];
    MDB_val rk = {mvcc_rev_encode(rb, main, sub, tombstone), rb};
    MDB_val rv = {mvcc_kvpb_size(kv), NULL};
    int mrc = mdb_put(c->txn, c->s->dbi_key, &rk, &rv, MDB_RESERVE | MDB_APPEND);
    if (mrc == MDB_KEYEXIST)
        return mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: revision %lld is not past the key db end",
                           (long long)main);
    if (mrc)
        return mvcc_ctx_lmdb_fail(c, err, mrc, "write key db");
    mvcc_kvpb_encode(kv, rv.mv_data);

    uint8_t ik[MVCC_IKEY_MAX];
    uint8_t iv[MVCC_IVAL_LIVE_BYTES] = {0};
    size_t part_len = mvcc_ikey_part(ik, kv->key.data, kv->key.len);
    MDB_val k = {mvcc_ikey_encode(ik, ik, part_len, main, sub), ik};
    MDB_val v = {1, iv};
    if (tombstone) {
        iv[0] = MVCC_IFLAG_TOMBSTONE;
    } else {
        mvcc_put_be64(iv + 1, (uint64_t)kv->create_revision);
        mvcc_put_be64(iv + 9, (uint64_t)kv->version);
        mvcc_put_be64(iv + 17, (uint64_t)kv->lease);
        v.mv_size = MVCC_IVAL_LIVE_BYTES;
    }
    /* through the ctx's cursor: a put's lookup has just left it on this key's leaf, where
     * LMDB then searches without descending from the root again */
    int rc = MVCC_OK;
    MDB_cursor *cur = mvcc_ctx_kidx(c, err, &rc);
    if (!cur)
        return rc;
    mrc = mdb_cursor_put(cur, &k, &v, MDB_NOOVERWRITE);
    if (mrc == MDB_KEYEXIST)
        return mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: key_index already has revision %lld",
                           (long long)main);
    if (mrc)
        return mvcc_ctx_lmdb_fail(c, err, mrc, "write key_index");
    c->changes++;
    return MVCC_OK;
}

/* etcd's put(): the request has been checked. */
static int put_exec(mvcc_ctx *c, mvcc_arena *a, const mvcc_put_req *p, mvcc_put_resp *resp,
                    cord_error *err)
{
    memset(resp, 0, sizeof(*resp));
    mvcc_ientry e;
    bool found = false;
    int rc = mvcc_ilookup(c, p->key.data, p->key.len, INT64_MAX, &e, &found, err);
    if (rc)
        return rc;
    bool exists = found && !e.tombstone;
    int64_t cur_create = exists ? e.create : 0;
    int64_t cur_version = exists ? e.version : 0;
    int64_t cur_lease = exists ? e.lease : 0;
    mvcc_bytes value = p->value;
    int64_t lease = p->lease;
    uint8_t *value_copy = NULL;
    if (exists && (p->ignore_value || p->prev_kv)) {
        mvcc_kv stored;
        rc = mvcc_fetch_kv(c, e.main, e.sub, &stored, err);
        if (rc)
            return rc;
        if (p->prev_kv) {
            mvcc_kv *prev = mvcc_arena_alloc(a, sizeof(*prev));
            bool full = prev == NULL;
            if (prev) {
                rc = entry_to_kv(c, a, &e, true, prev, &full, err);
                if (rc)
                    return rc;
            }
            if (full)
                c->resp_lost = true;
            else
                resp->prev_kv = prev;
        }
        if (p->ignore_value && stored.value.len) {
            /* the stored bytes live in a page this txn may rewrite: copy them first */
            value_copy = malloc(stored.value.len);
            if (!value_copy)
                return mvcc_fail(err, MVCC_ENOMEM);
            memcpy(value_copy, stored.value.data, stored.value.len);
            value = (mvcc_bytes){value_copy, stored.value.len};
        } else if (p->ignore_value) {
            value = (mvcc_bytes){NULL, 0};
        }
    } else if (p->ignore_value) {
        value = (mvcc_bytes){NULL, 0}; /* unreachable: checked before executing */
    }
    if (p->ignore_lease)
        lease = cur_lease;
    int64_t rev = c->begin_rev + 1;
    mvcc_kv kv = {
        .key = p->key,
        .create_revision = exists ? cur_create : rev,
        .mod_revision = rev,
        .version = cur_version + 1,
        .value = value,
        .lease = lease,
    };
    rc = write_revision(c, &kv, false, err);
    free(value_copy);
    if (rc)
        return rc;
    if (cur_lease != lease) {
        if (cur_lease && (rc = lease_key_write(c, cur_lease, p->key.data, p->key.len, false, err)))
            return rc;
        if (lease && (rc = lease_key_write(c, lease, p->key.data, p->key.len, true, err)))
            return rc;
    }
    resp->revision = rev;
    return MVCC_OK;
}

/* Keys collected for deletion (copies: index memory moves once we write). */
typedef struct delset {
    uint8_t *blob;
    size_t blob_len;
    size_t blob_cap;
    size_t *off; /* n+1 offsets into blob */
    int64_t *lease;
    size_t n;
    size_t cap;
    kvvec prev; /* prev kvs (arena memory) when asked */
    bool want_prev;
    bool arena_full;
    mvcc_ctx *c;
    mvcc_arena *a;
    cord_error *err;
} delset;

static void delset_free(delset *d)
{
    free(d->blob);
    free(d->off);
    free(d->lease);
    free(d->prev.v);
}

static int delset_add(delset *d, const uint8_t *key, size_t key_len, int64_t lease)
{
    if (d->n + 1 >= d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        size_t *no = realloc(d->off, (cap + 1) * sizeof(*no));
        if (!no)
            return mvcc_fail(d->err, MVCC_ENOMEM);
        d->off = no;
        int64_t *nl = realloc(d->lease, cap * sizeof(*nl));
        if (!nl)
            return mvcc_fail(d->err, MVCC_ENOMEM);
        d->lease = nl;
        d->cap = cap;
    }
    if (d->blob_len + key_len > d->blob_cap) {
        size_t cap = d->blob_cap ? d->blob_cap * 2 : 4096;
        while (cap < d->blob_len + key_len)
            cap *= 2;
        uint8_t *nb = realloc(d->blob, cap);
        if (!nb)
            return mvcc_fail(d->err, MVCC_ENOMEM);
        d->blob = nb;
        d->blob_cap = cap;
    }
    if (d->n == 0)
        d->off[0] = 0;
    memcpy(d->blob + d->blob_len, key, key_len);
    d->blob_len += key_len;
    d->lease[d->n] = lease;
    d->off[++d->n] = d->blob_len;
    return MVCC_OK;
}

static int del_visit(void *arg, const mvcc_ientry *e)
{
    delset *d = arg;
    if (d->want_prev && !d->arena_full) {
        mvcc_kv kv;
        int r = entry_to_kv(d->c, d->a, e, true, &kv, &d->arena_full, d->err);
        if (r)
            return r;
        if (!d->arena_full && (r = kvvec_push(&d->prev, &kv, d->err)))
            return r;
    }
    int r = delset_add(d, e->key, e->key_len, e->lease);
    if (r)
        return r;
    return d->n >= DELETE_CHUNK_KEYS ? 1 : 0;
}

/* Tombstones the keys collected in d (then empties it, keeping prev). */
static int delset_apply(delset *d, int64_t *deleted)
{
    for (size_t i = 0; i < d->n; i++) {
        mvcc_kv kv = {0};
        kv.key = (mvcc_bytes){d->blob + d->off[i], d->off[i + 1] - d->off[i]};
        int rc = write_revision(d->c, &kv, true, d->err);
        if (rc)
            return rc;
        if (d->lease[i] &&
            (rc = lease_key_write(d->c, d->lease[i], kv.key.data, kv.key.len, false, d->err)))
            return rc;
        (*deleted)++;
    }
    return MVCC_OK;
}

static int delete_exec(mvcc_ctx *c, mvcc_arena *a, const mvcc_delete_req *req,
                       mvcc_delete_resp *resp, cord_error *err)
{
    memset(resp, 0, sizeof(*resp));
    delset d = {0};
    d.want_prev = req->prev_kv;
    d.c = c;
    d.a = a;
    d.err = err;
    int64_t deleted = 0;
    int rc = MVCC_OK;
    uint8_t *resume = NULL;
    mvcc_bytes start = req->key;
    for (;;) {
        d.n = 0;
        d.blob_len = 0;
        rc = mvcc_scan(c, start, req->range_end, INT64_MAX, del_visit, &d, err);
        if (rc)
            goto out;
        size_t got = d.n;
        if (got == 0)
            break;
        /* resume after the last collected key: copy it before the blob is reused */
        size_t last_len = d.off[got] - d.off[got - 1];
        uint8_t *nr = realloc(resume, last_len + 1);
        if (!nr) {
            rc = mvcc_fail(err, MVCC_ENOMEM);
            goto out;
        }
        resume = nr;
        memcpy(resume, d.blob + d.off[got - 1], last_len);
        resume[last_len] = 0;
        rc = delset_apply(&d, &deleted);
        if (rc)
            goto out;
        if (got < DELETE_CHUNK_KEYS || kind_of(req->range_end) == RK_SINGLE)
            break;
        start = (mvcc_bytes){resume, last_len + 1};
    }
    if (d.want_prev) {
        if (d.arena_full || !kvvec_to_arena(&d.prev, a, &resp->prev_kvs, &resp->prev_kvs_len))
            c->resp_lost = true;
    }
    resp->deleted = deleted;
    resp->revision = mvcc_ctx_visible_rev(c);
out:
    free(resume);
    delset_free(&d);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* request checks (etcd's v3rpc checks)                                                         */

static int check_put_req(const mvcc_store *s, const mvcc_put_req *p, cord_error *err)
{
    if (p->key.len == 0)
        return mvcc_fail(err, MVCC_EEMPTYKEY);
    if (p->ignore_value && p->value.len != 0)
        return mvcc_fail(err, MVCC_EVALUEPROVIDED);
    if (p->ignore_lease && p->lease != 0)
        return mvcc_fail(err, MVCC_ELEASEPROVIDED);
    if (p->key.len > s->opts.max_value_bytes)
        return mvcc_seterr(err, MVCC_ETOOLARGE, "%s (key of %zu bytes, limit %u)",
                           mvcc_strerror(MVCC_ETOOLARGE), p->key.len, s->opts.max_value_bytes);
    if (p->value.len > s->opts.max_value_bytes)
        return mvcc_seterr(err, MVCC_ETOOLARGE, "%s (value of %zu bytes, limit %u)",
                           mvcc_strerror(MVCC_ETOOLARGE), p->value.len, s->opts.max_value_bytes);
    return MVCC_OK;
}

static int check_txn_req(const mvcc_store *s, const mvcc_txn_req *r, int64_t max_ops,
                         cord_error *err);

static int check_op(const mvcc_store *s, const mvcc_request_op *op, int64_t max_ops,
                    cord_error *err)
{
    switch (op->type) {
    case MVCC_OP_RANGE:
        return check_range_req(&op->range, err);
    case MVCC_OP_PUT:
        return check_put_req(s, &op->put, err);
    case MVCC_OP_DELETE_RANGE:
        if (op->delete_range.key.len == 0)
            return mvcc_fail(err, MVCC_EEMPTYKEY);
        return MVCC_OK;
    case MVCC_OP_TXN:
        if (!op->txn)
            return mvcc_fail(err, MVCC_EKEYNOTFOUND);
        return check_txn_req(s, op->txn, max_ops, err);
    case MVCC_OP_NONE:
    default:
        return mvcc_fail(err, MVCC_EKEYNOTFOUND); /* etcd: empty op */
    }
}

static int check_txn_req(const mvcc_store *s, const mvcc_txn_req *r, int64_t max_ops,
                         cord_error *err)
{
    size_t opc = r->compare_len;
    if (opc < r->success_len)
        opc = r->success_len;
    if (opc < r->failure_len)
        opc = r->failure_len;
    if ((int64_t)opc > max_ops)
        return mvcc_fail(err, MVCC_ETOOMANYOPS);
    for (size_t i = 0; i < r->compare_len; i++)
        if (r->compare[i].key.len == 0)
            return mvcc_fail(err, MVCC_EEMPTYKEY);
    for (size_t i = 0; i < r->success_len; i++) {
        int rc = check_op(s, &r->success[i], max_ops - (int64_t)opc, err);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < r->failure_len; i++) {
        int rc = check_op(s, &r->failure[i], max_ops - (int64_t)opc, err);
        if (rc)
            return rc;
    }
    return MVCC_OK;
}

/* etcd's checkIntervals: puts and deletes of one op list must not touch the same key. */

typedef struct ivl {
    mvcc_bytes begin;
    mvcc_bytes end; /* len 0: point; "\0": from begin on (cord treats it as infinite) */
} ivl;

typedef struct ivset {
    ivl *v;
    size_t n;
    size_t cap;
} ivset;

typedef struct keyset {
    mvcc_bytes *v;
    size_t n;
    size_t cap;
} keyset;

static bool ivset_hits(const ivset *s, mvcc_bytes k)
{
    for (size_t i = 0; i < s->n; i++)
        if (mvcc_key_in_range(k.data, k.len, s->v[i].begin, s->v[i].end))
            return true;
    return false;
}

static bool keyset_has(const keyset *s, mvcc_bytes k)
{
    for (size_t i = 0; i < s->n; i++)
        if (mvcc_bytes_cmp(s->v[i].data, s->v[i].len, k.data, k.len) == 0)
            return true;
    return false;
}

static int ivset_add(ivset *s, ivl iv, cord_error *err)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        ivl *nv = realloc(s->v, cap * sizeof(*nv));
        if (!nv)
            return mvcc_fail(err, MVCC_ENOMEM);
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = iv;
    return MVCC_OK;
}

static int keyset_add(keyset *s, mvcc_bytes k, cord_error *err)
{
    if (keyset_has(s, k))
        return MVCC_OK;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        mvcc_bytes *nv = realloc(s->v, cap * sizeof(*nv));
        if (!nv)
            return mvcc_fail(err, MVCC_ENOMEM);
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = k;
    return MVCC_OK;
}

static int check_intervals(const mvcc_request_op *reqs, size_t n, keyset *puts, ivset *dels,
                           cord_error *err)
{
    int rc = MVCC_OK;
    for (size_t i = 0; i < n; i++) {
        if (reqs[i].type != MVCC_OP_DELETE_RANGE)
            continue;
        const mvcc_delete_req *d = &reqs[i].delete_range;
        if ((rc = ivset_add(dels, (ivl){d->key, d->range_end}, err)))
            return rc;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        if (reqs[i].type != MVCC_OP_TXN || !reqs[i].txn)
            continue;
        const mvcc_txn_req *t = reqs[i].txn;
        keyset pt = {0}, pe = {0};
        ivset dt = {0}, de = {0};
        rc = check_intervals(t->success, t->success_len, &pt, &dt, err);
        if (!rc)
            rc = check_intervals(t->failure, t->failure_len, &pe, &de, err);
        for (size_t j = 0; j < pt.n && !rc; j++) {
            if (keyset_has(puts, pt.v[j]) || ivset_hits(dels, pt.v[j]))
                rc = mvcc_fail(err, MVCC_EDUPKEY);
            else
                rc = keyset_add(puts, pt.v[j], err);
        }
        for (size_t j = 0; j < pe.n && !rc; j++) {
            /* a key put in both branches of one txn is fine: only one branch runs */
            if ((keyset_has(puts, pe.v[j]) && !keyset_has(&pt, pe.v[j])) ||
                ivset_hits(dels, pe.v[j]))
                rc = mvcc_fail(err, MVCC_EDUPKEY);
            else
                rc = keyset_add(puts, pe.v[j], err);
        }
        for (size_t j = 0; j < dt.n && !rc; j++)
            rc = ivset_add(dels, dt.v[j], err);
        for (size_t j = 0; j < de.n && !rc; j++)
            rc = ivset_add(dels, de.v[j], err);
        free(pt.v);
        free(pe.v);
        free(dt.v);
        free(de.v);
    }
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (reqs[i].type != MVCC_OP_PUT)
            continue;
        mvcc_bytes k = reqs[i].put.key;
        if (keyset_has(puts, k) || ivset_hits(dels, k))
            return mvcc_fail(err, MVCC_EDUPKEY);
        if ((rc = keyset_add(puts, k, err)))
            return rc;
    }
    return MVCC_OK;
}

static int check_intervals_top(const mvcc_request_op *reqs, size_t n, cord_error *err)
{
    keyset puts = {0};
    ivset dels = {0};
    int rc = check_intervals(reqs, n, &puts, &dels, err);
    free(puts.v);
    free(dels.v);
    return rc;
}

int mvcc_txn_check(const mvcc_store *s, const mvcc_txn_req *req, cord_error *err)
{
    int rc = check_txn_req(s, req, s->opts.max_txn_ops, err);
    if (!rc)
        rc = check_intervals_top(req->success, req->success_len, err);
    if (!rc)
        rc = check_intervals_top(req->failure, req->failure_len, err);
    return rc;
}

static bool ops_readonly(const mvcc_request_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].type == MVCC_OP_PUT || ops[i].type == MVCC_OP_DELETE_RANGE)
            return false;
        if (ops[i].type == MVCC_OP_TXN && ops[i].txn && !mvcc_txn_is_readonly(ops[i].txn))
            return false;
    }
    return true;
}

bool mvcc_txn_is_readonly(const mvcc_txn_req *req)
{
    return ops_readonly(req->success, req->success_len) &&
           ops_readonly(req->failure, req->failure_len);
}

/* ------------------------------------------------------------------------------------------ */
/* Txn evaluation                                                                               */

typedef struct cmp_state {
    mvcc_ctx *c;
    const mvcc_compare *cmp;
    cord_error *err;
    bool any;
    bool ok;
} cmp_state;

static bool compare_kv(const mvcc_compare *cmp, const mvcc_kv *kv)
{
    int result = 0;
    switch (cmp->target) {
    case MVCC_CMP_VALUE:
        result = mvcc_bytes_cmp(kv->value.data, kv->value.len, cmp->value.data, cmp->value.len);
        break;
    case MVCC_CMP_CREATE:
        result = cmp_i64(kv->create_revision, cmp->number);
        break;
    case MVCC_CMP_MOD:
        result = cmp_i64(kv->mod_revision, cmp->number);
        break;
    case MVCC_CMP_VERSION:
        result = cmp_i64(kv->version, cmp->number);
        break;
    case MVCC_CMP_LEASE:
        result = cmp_i64(kv->lease, cmp->number);
        break;
    default:
        break; /* etcd: unknown target compares as equal */
    }
    switch (cmp->result) {
    case MVCC_CMP_EQUAL:
        return result == 0;
    case MVCC_CMP_NOT_EQUAL:
        return result != 0;
    case MVCC_CMP_GREATER:
        return result > 0;
    case MVCC_CMP_LESS:
        return result < 0;
    default:
        return true; /* etcd: unknown result passes */
    }
}

static int cmp_visit(void *arg, const mvcc_ientry *e)
{
    cmp_state *st = arg;
    st->any = true;
    mvcc_kv kv = {0};
    kv.key = (mvcc_bytes){e->key, e->key_len};
    kv.create_revision = e->create;
    kv.mod_revision = e->main;
    kv.version = e->version;
    kv.lease = e->lease;
    if (st->cmp->target == MVCC_CMP_VALUE) {
        mvcc_kv stored;
        int rc = mvcc_fetch_kv(st->c, e->main, e->sub, &stored, st->err);
        if (rc)
            return rc;
        kv.value = stored.value;
    }
    if (!compare_kv(st->cmp, &kv)) {
        st->ok = false;
        return 1;
    }
    return 0;
}

static int eval_compare(mvcc_ctx *c, const mvcc_compare *cmp, bool *ok, cord_error *err)
{
    cmp_state st = {c, cmp, err, false, true};
    int rc = mvcc_scan(c, cmp->key, cmp->range_end, mvcc_ctx_visible_rev(c), cmp_visit, &st, err);
    if (rc)
        return rc;
    if (!st.any) {
        /* no key: a value compare always fails; others compare against zero values */
        if (cmp->target == MVCC_CMP_VALUE) {
            *ok = false;
            return MVCC_OK;
        }
        mvcc_kv zero = {0};
        *ok = compare_kv(cmp, &zero);
        return MVCC_OK;
    }
    *ok = st.ok;
    return MVCC_OK;
}

static size_t count_txns(const mvcc_txn_req *r)
{
    size_t n = 1;
    for (size_t i = 0; i < r->success_len; i++)
        if (r->success[i].type == MVCC_OP_TXN && r->success[i].txn)
            n += count_txns(r->success[i].txn);
    for (size_t i = 0; i < r->failure_len; i++)
        if (r->failure[i].type == MVCC_OP_TXN && r->failure[i].txn)
            n += count_txns(r->failure[i].txn);
    return n;
}

/* etcd's compareToPath: every compare on the path, against the state before the txn. */
static int compute_path(mvcc_ctx *c, const mvcc_txn_req *r, bool *path, size_t *n, size_t cap,
                        cord_error *err)
{
    bool ok = true;
    for (size_t i = 0; i < r->compare_len && ok; i++) {
        int rc = eval_compare(c, &r->compare[i], &ok, err);
        if (rc)
            return rc;
    }
    assert(*n < cap);
    path[(*n)++] = ok;
    const mvcc_request_op *ops = ok ? r->success : r->failure;
    size_t nops = ok ? r->success_len : r->failure_len;
    for (size_t i = 0; i < nops; i++) {
        if (ops[i].type != MVCC_OP_TXN)
            continue;
        int rc = compute_path(c, ops[i].txn, path, n, cap, err);
        if (rc)
            return rc;
    }
    return MVCC_OK;
}

static bool lease_known(const mvcc_store *s, int64_t lease)
{
    return lease == 0 || !s->opts.lease_exists || s->opts.lease_exists(s->opts.lease_ctx, lease);
}

/* etcd's checkTxn: the ops of the chosen branches, before any write. */
static int check_path(mvcc_ctx *c, const mvcc_txn_req *r, const bool *path, size_t *pos,
                      cord_error *err)
{
    bool ok = path[(*pos)++];
    const mvcc_request_op *ops = ok ? r->success : r->failure;
    size_t nops = ok ? r->success_len : r->failure_len;
    for (size_t i = 0; i < nops; i++) {
        const mvcc_request_op *op = &ops[i];
        int rc = MVCC_OK;
        switch (op->type) {
        case MVCC_OP_RANGE:
            if (op->range.revision == 0)
                break;
            if (op->range.revision > c->begin_rev)
                return mvcc_fail(err, MVCC_EFUTURE);
            if (op->range.revision < c->m->compact_rev)
                return mvcc_fail(err, MVCC_ECOMPACTED);
            break;
        case MVCC_OP_PUT:
            if (op->put.ignore_value || op->put.ignore_lease) {
                mvcc_ientry e;
                bool found = false;
                rc = mvcc_ilookup(c, op->put.key.data, op->put.key.len, c->begin_rev, &e, &found,
                                  err);
                if (rc)
                    return rc;
                if (!found || e.tombstone)
                    return mvcc_fail(err, MVCC_EKEYNOTFOUND);
            }
            if (!lease_known(c->s, op->put.lease))
                return mvcc_fail(err, MVCC_ELEASENOTFOUND);
            break;
        case MVCC_OP_TXN:
            rc = check_path(c, op->txn, path, pos, err);
            if (rc)
                return rc;
            break;
        default:
            break;
        }
    }
    return MVCC_OK;
}

static int exec_txn(mvcc_ctx *c, mvcc_arena *a, const mvcc_txn_req *r, const bool *path,
                    size_t *pos, mvcc_txn_resp *resp, cord_error *err)
{
    bool ok = path[(*pos)++];
    const mvcc_request_op *ops = ok ? r->success : r->failure;
    size_t nops = ok ? r->success_len : r->failure_len;
    memset(resp, 0, sizeof(*resp));
    resp->succeeded = ok;
    if (nops) {
        resp->responses = mvcc_arena_alloc(a, nops * sizeof(*resp->responses));
        if (resp->responses)
            resp->responses_len = nops;
        else
            c->resp_lost = true;
    }
    for (size_t i = 0; i < nops; i++) {
        const mvcc_request_op *op = &ops[i];
        mvcc_response_op scratch;
        mvcc_txn_resp sub_scratch;
        mvcc_response_op *ro = resp->responses ? &resp->responses[i] : &scratch;
        memset(ro, 0, sizeof(*ro));
        ro->type = op->type;
        int rc = MVCC_OK;
        switch (op->type) {
        case MVCC_OP_RANGE:
            rc = mvcc_range_exec(c, a, &op->range, &ro->range, err);
            if (rc == MVCC_ERESULT) {
                c->resp_lost = true;
                rc = MVCC_OK;
            }
            break;
        case MVCC_OP_PUT:
            rc = put_exec(c, a, &op->put, &ro->put, err);
            break;
        case MVCC_OP_DELETE_RANGE:
            rc = delete_exec(c, a, &op->delete_range, &ro->delete_range, err);
            break;
        case MVCC_OP_TXN: {
            mvcc_txn_resp *sub = mvcc_arena_alloc(a, sizeof(*sub));
            if (!sub) {
                c->resp_lost = true;
                sub = &sub_scratch;
            } else {
                ro->txn = sub;
            }
            rc = exec_txn(c, a, op->txn, path, pos, sub, err);
            if (sub == &sub_scratch)
                ro->txn = NULL;
            break;
        }
        default:
            break;
        }
        if (rc)
            return rc;
    }
    return MVCC_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* public operations                                                                            */

static int finish(mvcc_ctx *c, int rc, cord_error *err)
{
    rc = mvcc_ctx_end(c, rc, err);
    if (rc == MVCC_OK && c->resp_lost)
        rc = mvcc_seterr(err, MVCC_ERESULT, "%s (the write was applied)",
                         mvcc_strerror(MVCC_ERESULT));
    return rc;
}

int mvcc_range(mvcc_store *s, mvcc_arena *arena, const mvcc_range_req *req, mvcc_range_resp *resp,
               cord_error *err)
{
    memset(resp, 0, sizeof(*resp));
    int rc = check_range_req(req, err);
    if (rc)
        return rc;
    mvcc_ctx c;
    rc = mvcc_ctx_read(s, &c, err);
    if (rc)
        return rc;
    rc = mvcc_range_exec(&c, arena, req, resp, err);
    return mvcc_ctx_end(&c, rc, err);
}

/* NOSPACE gate for writes with a positive quota cost. */
static int quota_gate(mvcc_ctx *c, uint64_t cost, cord_error *err)
{
    if (cost == 0)
        return MVCC_OK;
    if (c->m->alarm_nospace)
        return mvcc_fail(err, MVCC_ENOSPACE);
    if (!c->s->opts.no_quota_check_on_apply && mvcc_quota_exceeded(c->s, cost)) {
        c->m->alarm_nospace = true;
        return mvcc_fail(err, MVCC_ENOSPACE);
    }
    return MVCC_OK;
}

static void charge(mvcc_ctx *c, uint64_t cost)
{
    if (!c->own)
        c->s->batch_cost += cost;
}

int mvcc_put(mvcc_store *s, mvcc_arena *arena, const mvcc_put_req *req, mvcc_put_resp *resp,
             cord_error *err)
{
    memset(resp, 0, sizeof(*resp));
    int rc = check_put_req(s, req, err);
    if (rc)
        return rc;
    mvcc_ctx c;
    rc = mvcc_ctx_write(s, &c, err);
    if (rc)
        return rc;
    uint64_t cost = mvcc_put_cost(req);
    if (c.m->alarm_nospace) {
        rc = mvcc_fail(err, MVCC_ENOSPACE);
        goto out;
    }
    if (!lease_known(s, req->lease)) {
        rc = mvcc_fail(err, MVCC_ELEASENOTFOUND);
        goto out;
    }
    if (req->ignore_value || req->ignore_lease) {
        mvcc_ientry e;
        bool found = false;
        rc = mvcc_ilookup(&c, req->key.data, req->key.len, c.begin_rev, &e, &found, err);
        if (rc)
            goto out;
        if (!found || e.tombstone) {
            rc = mvcc_fail(err, MVCC_EKEYNOTFOUND);
            goto out;
        }
    }
    rc = quota_gate(&c, cost, err);
    if (rc)
        goto out;
    rc = put_exec(&c, arena, req, resp, err);
    if (!rc)
        charge(&c, cost);
out:
    return finish(&c, rc, err);
}

int mvcc_delete_range(mvcc_store *s, mvcc_arena *arena, const mvcc_delete_req *req,
                      mvcc_delete_resp *resp, cord_error *err)
{
    memset(resp, 0, sizeof(*resp));
    if (req->key.len == 0)
        return mvcc_fail(err, MVCC_EEMPTYKEY);
    mvcc_ctx c;
    int rc = mvcc_ctx_write(s, &c, err);
    if (rc)
        return rc;
    rc = delete_exec(&c, arena, req, resp, err);
    return finish(&c, rc, err);
}

int mvcc_txn(mvcc_store *s, mvcc_arena *arena, const mvcc_txn_req *req, mvcc_txn_resp *resp,
             cord_error *err)
{
    memset(resp, 0, sizeof(*resp));
    int rc = mvcc_txn_check(s, req, err);
    if (rc)
        return rc;
    bool readonly = mvcc_txn_is_readonly(req);
    mvcc_ctx c;
    rc = readonly ? mvcc_ctx_read(s, &c, err) : mvcc_ctx_write(s, &c, err);
    if (rc)
        return rc;
    bool *path = NULL;
    uint64_t cost = readonly ? 0 : mvcc_txn_cost(req);
    rc = quota_gate(&c, cost, err);
    if (rc)
        goto out;
    size_t cap = count_txns(req), n = 0, pos = 0;
    path = malloc(cap * sizeof(*path));
    if (!path) {
        rc = mvcc_fail(err, MVCC_ENOMEM);
        goto out;
    }
    rc = compute_path(&c, req, path, &n, cap, err);
    if (rc)
        goto out;
    rc = check_path(&c, req, path, &pos, err);
    if (rc)
        goto out;
    pos = 0;
    rc = exec_txn(&c, arena, req, path, &pos, resp, err);
    if (rc)
        goto out;
    assert(pos == n);
    resp->revision = mvcc_ctx_visible_rev(&c);
    if (c.changes > 0)
        charge(&c, cost);
out:
    free(path);
    if (rc && rc != MVCC_ERESULT)
        memset(resp, 0, sizeof(*resp));
    return finish(&c, rc, err);
}

/* ------------------------------------------------------------------------------------------ */
/* leases                                                                                       */

typedef struct lease_iter {
    mvcc_ctx *c;
    int64_t lease;
    size_t max; /* 0: all */
} lease_iter;

/* Calls fn for each key attached to the lease, starting at the first one. */
static int lease_scan(mvcc_ctx *c, int64_t lease, size_t max,
                      int (*fn)(void *arg, const uint8_t *key, size_t key_len), void *arg,
                      bool *more, cord_error *err)
{
    MDB_cursor *cur = NULL;
    int mrc = mdb_cursor_open(c->txn, c->s->dbi_lease, &cur);
    if (mrc)
        return mvcc_ctx_lmdb_fail(c, err, mrc, "open lease cursor");
    uint8_t prefix[8];
    mvcc_put_be64(prefix, (uint64_t)lease);
    MDB_val k = {8, prefix}, v;
    size_t seen = 0;
    int rc = MVCC_OK;
    if (more)
        *more = false;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (mrc == 0) {
        if (k.mv_size < 8 || memcmp(k.mv_data, prefix, 8) != 0)
            break;
        if (max && seen == max) {
            if (more)
                *more = true;
            break;
        }
        /* a hashed part: the record holds the key */
        if (v.mv_size)
            rc = fn(arg, v.mv_data, v.mv_size);
        else
            rc = fn(arg, (const uint8_t *)k.mv_data + 8, k.mv_size - 8);
        if (rc)
            break;
        seen++;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc)
        return rc;
    if (mrc && mrc != MDB_NOTFOUND)
        return mvcc_ctx_lmdb_fail(c, err, mrc, "scan lease keys");
    return MVCC_OK;
}

typedef struct lease_list {
    mvcc_arena *a;
    mvcc_bytes *v;
    size_t n;
    size_t cap;
    cord_error *err;
} lease_list;

static int lease_list_add(void *arg, const uint8_t *key, size_t key_len)
{
    lease_list *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        mvcc_bytes *nv = realloc(l->v, cap * sizeof(*nv));
        if (!nv)
            return mvcc_fail(l->err, MVCC_ENOMEM);
        l->v = nv;
        l->cap = cap;
    }
    if (!mvcc_arena_copy(l->a, &l->v[l->n], key, key_len))
        return mvcc_fail(l->err, MVCC_ERESULT);
    l->n++;
    return MVCC_OK;
}

int mvcc_lease_keys(mvcc_store *s, mvcc_arena *arena, int64_t lease_id, size_t max_keys,
                    mvcc_bytes **keys, size_t *keys_len, bool *more, cord_error *err)
{
    *keys = NULL;
    *keys_len = 0;
    mvcc_ctx c;
    int rc = mvcc_ctx_read(s, &c, err);
    if (rc)
        return rc;
    lease_list l = {arena, NULL, 0, 0, err};
    rc = lease_scan(&c, lease_id, max_keys, lease_list_add, &l, more, err);
    if (!rc && l.n) {
        mvcc_bytes *out = mvcc_arena_alloc(arena, l.n * sizeof(*out));
        if (!out) {
            rc = mvcc_fail(err, MVCC_ERESULT);
        } else {
            memcpy(out, l.v, l.n * sizeof(*out));
            *keys = out;
            *keys_len = l.n;
        }
    }
    free(l.v);
    return mvcc_ctx_end(&c, rc, err);
}

typedef struct revoke_collect {
    delset *d;
    int64_t lease;
} revoke_collect;

static int revoke_add(void *arg, const uint8_t *key, size_t key_len)
{
    revoke_collect *rc = arg;
    delset *d = rc->d;
    if (d->want_prev && !d->arena_full) {
        mvcc_ientry e;
        bool found = false;
        int r = mvcc_ilookup(d->c, key, key_len, INT64_MAX, &e, &found, d->err);
        if (r)
            return r;
        if (!found || e.tombstone)
            return mvcc_seterr(d->err, MVCC_ECORRUPT, "mvcc: lease key without a live key");
        mvcc_kv kv;
        if ((r = entry_to_kv(d->c, d->a, &e, true, &kv, &d->arena_full, d->err)))
            return r;
        if (!d->arena_full && (r = kvvec_push(&d->prev, &kv, d->err)))
            return r;
    }
    return delset_add(d, key, key_len, rc->lease);
}

int mvcc_lease_revoke(mvcc_store *s, mvcc_arena *arena, int64_t lease_id, bool want_prev_kv,
                      mvcc_delete_resp *resp, cord_error *err)
{
    memset(resp, 0, sizeof(*resp));
    mvcc_ctx c;
    int rc = mvcc_ctx_write(s, &c, err);
    if (rc)
        return rc;
    delset d = {0};
    d.want_prev = want_prev_kv;
    d.c = &c;
    d.a = arena;
    d.err = err;
    revoke_collect col = {&d, lease_id};
    int64_t deleted = 0;
    for (;;) {
        d.n = 0;
        d.blob_len = 0;
        rc = lease_scan(&c, lease_id, DELETE_CHUNK_KEYS, revoke_add, &col, NULL, err);
        if (rc || d.n == 0)
            break;
        rc = delset_apply(&d, &deleted); /* detaches them: the next scan starts afresh */
        if (rc)
            break;
    }
    if (!rc) {
        if (d.want_prev &&
            (d.arena_full || !kvvec_to_arena(&d.prev, arena, &resp->prev_kvs, &resp->prev_kvs_len)))
            c.resp_lost = true;
        resp->deleted = deleted;
        resp->revision = mvcc_ctx_visible_rev(&c);
    }
    delset_free(&d);
    return finish(&c, rc, err);
}
