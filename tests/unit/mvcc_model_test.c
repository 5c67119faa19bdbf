/*
 * mvcc_model_test.c — randomized test of the MVCC store against a simple in-memory model
 * that keeps every revision of every key.
 *
 * Thousands of seeded random operations (Put, DeleteRange, Txn with nested txns and
 * deliberate errors, Range in every form, Compact, watch history, HashKV) run on two
 * stores: the primary does physical compaction a few small steps at a time, the shadow
 * finishes it at once. Every result is compared with the model — revisions, versions,
 * create/mod revisions, leases, counts, `more`, errors — and the shadow's with the
 * primary's. Apply batches are committed with a Raft index or aborted (a crash), and the
 * primary is reopened from disk now and then: it must come back with the same state and
 * applied index. Environment: MVCC_SEED (default: time), MVCC_OPS (default 3000).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mvcc/mvcc.h"
#include "mvcc/mvcc_internal.h"

#include "common/crc32c.h"
#include "mvcc_testutil.h"

/* ------------------------------------------------------------------------------------------ */
/* randomness and failure reporting                                                             */

static uint64_t g_seed;
static uint64_t g_rng;
static long g_op;

static uint64_t rnd(void)
{
    /* xorshift64* */
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 2685821657736338717ull;
}

static int64_t rnd_in(int64_t lo, int64_t hi) /* inclusive */
{
    if (hi <= lo)
        return lo;
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static bool chance(int percent)
{
    return (int)(rnd() % 100) < percent;
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            char msg_[2048];                                                                       \
            snprintf(msg_, sizeof(msg_), __VA_ARGS__);                                             \
            fail_msg("seed %llu op %ld: %s (%s:%d: %s)", (unsigned long long)g_seed, g_op, msg_,   \
                     __FILE__, __LINE__, #cond);                                                   \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------------------------------------ */
/* key space                                                                                    */

typedef struct kdef {
    const char *p;
    size_t len;
} kdef;

/* Twelve short keys, and twelve long ones built by init_keys: keys past MVCC_IKEY_SHORT_MAX
 * bytes are stored hashed, and keys longer than MVCC_IKEY_PREFIX_BYTES that share that many
 * bytes form a group that scans must put back in key order (mvcc_internal.h). */
#define NSHORT 12
#define NKEYS  (NSHORT + 12)
static kdef KEYS[NKEYS] = {
    {"a", 1},   {"a/1", 3},  {"a/2", 3}, {"a0", 2},  {"ab", 2}, {"b", 1},
    {"b\0", 2}, {"b\0c", 3}, {"c", 1},   {"c/d", 3}, {"d", 1},  {"\xff", 1},
};
/* room for the protobuf of any revision (model_hash): checked in run */
#define PB_KV_MAX 2048
#define NBOUNDS   12
static kdef BOUNDS[NBOUNDS] = {
    {"a/", 2}, {"a0", 2}, {"z", 1}, {"0", 1}, {"b", 1}, {"b\x01", 2}, {"c0", 2},
};

/* kdef of `head` (n bytes of it) followed by `count` bytes `c` */
static kdef long_key(const char *head, size_t n, char c, size_t count)
{
    char *p = malloc(n + count);
    memcpy(p, head, n);
    memset(p + n, c, count);
    return (kdef){p, n + count};
}

static void init_keys(void)
{
    /* P: "c/" and 477 'x', a group prefix (MVCC_IKEY_PREFIX_BYTES long) */
    enum { PL = MVCC_IKEY_PREFIX_BYTES };
    char P[PL + 1];
    memcpy(P, "c/", 2);
    memset(P + 2, 'x', PL - 2);
    P[PL] = 0;
    char Q[PL]; /* the next group prefix: P with its last byte 'y' */
    memcpy(Q, P, PL);
    Q[PL - 1] = 'y';
    char Pa[PL + 1];
    memcpy(Pa, P, PL);
    Pa[PL] = 'a';
    kdef *k = &KEYS[NSHORT];
    k[0] = long_key(P, PL, 0, 0);                          /* the prefix itself: no group */
    k[1] = long_key(P, PL, 'a', 1);                        /* in the group, stored as is */
    k[2] = long_key(P, PL, 'b', MVCC_IKEY_SHORT_MAX - PL); /* the longest stored as is */
    k[3] = long_key(P, PL, 'b', MVCC_IKEY_PART_MAX - PL);  /* the shortest hashed */
    k[4] = long_key(Pa, PL + 1, 'y', 100);
    k[5] = long_key(P, PL, 'c', 200);
    k[6] = long_key(P, PL, 0, 17);
    k[7] = long_key(P, PL, (char)0xff, 30);
    k[8] = long_key(Q, PL, 0, 0);
    k[9] = long_key(Q, PL, 'z', 600);
    k[10] = long_key("c/", 2, 'x', 600);
    k[11] = long_key("c/", 2, 'x', PL - 3);
    kdef *b = &BOUNDS[7];
    b[0] = long_key(P, PL, 'b', 1);
    b[1] = long_key(P, PL, 'b', MVCC_IKEY_PART_MAX - PL + 1); /* just past k[3] */
    b[2] = long_key(Pa, PL + 1, 'y', 50);
    b[3] = long_key(P, PL, 'x', 1);
    b[4] = long_key(Q, PL, 'z', 300);
}

static mvcc_bytes kb(int kid)
{
    return (mvcc_bytes){(const uint8_t *)KEYS[kid].p, KEYS[kid].len};
}

static int bcmp_(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return al < bl ? -1 : (al > bl ? 1 : 0);
}

/* key ids in byte order */
static int g_order[NKEYS];

static void init_order(void)
{
    for (int i = 0; i < NKEYS; i++)
        g_order[i] = i;
    for (int i = 1; i < NKEYS; i++)
        for (int j = i; j > 0; j--) {
            int a = g_order[j - 1], b = g_order[j];
            if (bcmp_((const uint8_t *)KEYS[a].p, KEYS[a].len, (const uint8_t *)KEYS[b].p,
                      KEYS[b].len) > 0) {
                g_order[j - 1] = b;
                g_order[j] = a;
            }
        }
}

/* the model's own range test (etcd conventions) */
static bool in_range(int kid, mvcc_bytes key, mvcc_bytes end)
{
    const uint8_t *k = (const uint8_t *)KEYS[kid].p;
    size_t kl = KEYS[kid].len;
    int c = bcmp_(k, kl, key.data, key.len);
    if (end.len == 0)
        return c == 0;
    if (end.len == 1 && end.data[0] == 0)
        return c >= 0;
    return c >= 0 && bcmp_(k, kl, end.data, end.len) < 0;
}

/* ------------------------------------------------------------------------------------------ */
/* model                                                                                        */

#define VMAX 16

typedef struct mrev {
    int64_t main, sub;
    bool tomb;
    char val[VMAX];
    size_t vlen;
    int64_t create, ver, lease;
} mrev;

typedef struct mkey {
    mrev *r;
    size_t n, cap;
} mkey;

typedef struct model {
    mkey keys[NKEYS];
    int64_t current, compacted;
    uint64_t applied;
} model;

typedef struct msnap {
    size_t n[NKEYS];
    int64_t current, compacted;
} msnap;

static void model_snap(const model *m, msnap *s)
{
    for (int i = 0; i < NKEYS; i++)
        s->n[i] = m->keys[i].n;
    s->current = m->current;
    s->compacted = m->compacted;
}

static void model_restore(model *m, const msnap *s)
{
    for (int i = 0; i < NKEYS; i++)
        m->keys[i].n = s->n[i];
    m->current = s->current;
    m->compacted = s->compacted;
}

/* newest revision of kid with main <= rev, tombstones included; NULL if none */
static const mrev *latest(const model *m, int kid, int64_t rev)
{
    const mkey *k = &m->keys[kid];
    for (size_t i = k->n; i > 0; i--)
        if (k->r[i - 1].main <= rev)
            return &k->r[i - 1];
    return NULL;
}

static const mrev *live(const model *m, int kid, int64_t rev)
{
    const mrev *r = latest(m, kid, rev);
    return r && !r->tomb ? r : NULL;
}

static void add_rev(model *m, int kid, const mrev *r)
{
    mkey *k = &m->keys[kid];
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 16;
        k->r = realloc(k->r, k->cap * sizeof(*k->r));
        if (!k->r)
            abort();
    }
    k->r[k->n++] = *r;
}

typedef struct mtx {
    model *m;
    int64_t begin;
    int64_t changes;
} mtx;

static int64_t visible(const mtx *t)
{
    return t->begin + (t->changes > 0 ? 1 : 0);
}

/* expected key-value */
typedef struct ekv {
    int kid;
    char val[VMAX];
    size_t vlen;
    int64_t create, mod, ver, lease;
} ekv;

static ekv to_ekv(int kid, const mrev *r)
{
    ekv e = {.kid = kid,
             .vlen = r->vlen,
             .create = r->create,
             .mod = r->main,
             .ver = r->ver,
             .lease = r->lease};
    if (r->vlen)
        memcpy(e.val, r->val, r->vlen);
    return e;
}

static void check_kv(const mvcc_kv *got, const ekv *e, bool with_value, const char *what)
{
    CHECK(bcmp_(got->key.data, got->key.len, (const uint8_t *)KEYS[e->kid].p, KEYS[e->kid].len) ==
              0,
          "%s: key differs (want kid %d)", what, e->kid);
    CHECK(got->create_revision == e->create, "%s: create %lld want %lld", what,
          (long long)got->create_revision, (long long)e->create);
    CHECK(got->mod_revision == e->mod, "%s: mod %lld want %lld", what, (long long)got->mod_revision,
          (long long)e->mod);
    CHECK(got->version == e->ver, "%s: version %lld want %lld", what, (long long)got->version,
          (long long)e->ver);
    CHECK(got->lease == e->lease, "%s: lease %lld want %lld", what, (long long)got->lease,
          (long long)e->lease);
    if (with_value)
        CHECK(bcmp_(got->value.data, got->value.len, (const uint8_t *)e->val, e->vlen) == 0,
              "%s: value differs", what);
    else
        CHECK(got->value.len == 0, "%s: keys_only value not empty", what);
}

/* ------------------------------------------------------------------------------------------ */
/* model operations                                                                             */

typedef struct erange {
    ekv kvs[NKEYS];
    size_t n;
    int64_t count;
    bool more;
    int64_t rev;
} erange;

static int ekv_cmp(const ekv *a, const ekv *b, mvcc_sort_target t)
{
    switch (t) {
    case MVCC_SORT_KEY:
        return bcmp_((const uint8_t *)KEYS[a->kid].p, KEYS[a->kid].len,
                     (const uint8_t *)KEYS[b->kid].p, KEYS[b->kid].len);
    case MVCC_SORT_VERSION:
        return (a->ver > b->ver) - (a->ver < b->ver);
    case MVCC_SORT_CREATE:
        return (a->create > b->create) - (a->create < b->create);
    case MVCC_SORT_MOD:
        return (a->mod > b->mod) - (a->mod < b->mod);
    case MVCC_SORT_VALUE:
        return bcmp_((const uint8_t *)a->val, a->vlen, (const uint8_t *)b->val, b->vlen);
    }
    return 0;
}

/* etcd's executeRange against the model at the txn's visible revision */
static int model_range(const mtx *t, const mvcc_range_req *r, erange *out)
{
    memset(out, 0, sizeof(*out));
    int64_t cur = visible(t);
    int64_t rev = r->revision;
    if (rev > cur)
        return MVCC_EFUTURE;
    if (rev <= 0)
        rev = cur;
    if (rev < t->m->compacted)
        return MVCC_ECOMPACTED;
    ekv all[NKEYS];
    size_t n = 0;
    for (int i = 0; i < NKEYS; i++) {
        int kid = g_order[i];
        if (!in_range(kid, r->key, r->range_end))
            continue;
        const mrev *v = live(t->m, kid, rev);
        if (v)
            all[n++] = to_ekv(kid, v);
    }
    out->count = (int64_t)n;
    out->rev = cur;
    if (r->count_only)
        return MVCC_OK;
    bool filters = r->min_mod_revision || r->max_mod_revision || r->min_create_revision ||
                   r->max_create_revision;
    bool deflt = r->sort_order == MVCC_SORT_NONE ||
                 (r->sort_target == MVCC_SORT_KEY && r->sort_order == MVCC_SORT_ASCEND);
    size_t fetch = n;
    if (deflt && !filters && r->limit > 0 && (uint64_t)r->limit + 1 < fetch)
        fetch = (size_t)r->limit + 1;
    size_t m = 0;
    for (size_t i = 0; i < fetch; i++) {
        const ekv *e = &all[i];
        if (r->max_mod_revision && e->mod > r->max_mod_revision)
            continue;
        if (r->min_mod_revision && e->mod < r->min_mod_revision)
            continue;
        if (r->max_create_revision && e->create > r->max_create_revision)
            continue;
        if (r->min_create_revision && e->create < r->min_create_revision)
            continue;
        out->kvs[m++] = *e;
    }
    mvcc_sort_order order = r->sort_order;
    if (r->sort_target != MVCC_SORT_KEY && order == MVCC_SORT_NONE)
        order = MVCC_SORT_ASCEND;
    bool sort = !(order == MVCC_SORT_NONE ||
                  (r->sort_target == MVCC_SORT_KEY && order == MVCC_SORT_ASCEND));
    if (sort) {
        int dir = order == MVCC_SORT_DESCEND ? -1 : 1;
        for (size_t i = 1; i < m; i++) /* stable insertion sort */
            for (size_t j = i;
                 j > 0 && dir * ekv_cmp(&out->kvs[j], &out->kvs[j - 1], r->sort_target) < 0; j--) {
                ekv tmp = out->kvs[j];
                out->kvs[j] = out->kvs[j - 1];
                out->kvs[j - 1] = tmp;
            }
    }
    if (r->limit > 0 && (uint64_t)m > (uint64_t)r->limit) {
        m = (size_t)r->limit;
        out->more = true;
    }
    out->n = m;
    return MVCC_OK;
}

static void check_range(const erange *e, const mvcc_range_resp *got, bool keys_only,
                        const char *what)
{
    CHECK(got->revision == e->rev, "%s: header revision %lld want %lld", what,
          (long long)got->revision, (long long)e->rev);
    CHECK(got->count == e->count, "%s: count %lld want %lld", what, (long long)got->count,
          (long long)e->count);
    CHECK(got->more == e->more, "%s: more %d want %d", what, got->more, e->more);
    CHECK(got->kvs_len == e->n, "%s: %zu kvs want %zu", what, got->kvs_len, e->n);
    for (size_t i = 0; i < e->n; i++)
        check_kv(&got->kvs[i], &e->kvs[i], !keys_only, what);
}

typedef struct eput {
    int64_t rev;
    bool has_prev;
    ekv prev;
} eput;

static void model_put(mtx *t, const mvcc_put_req *p, int kid, eput *out)
{
    const mrev *cur = live(t->m, kid, INT64_MAX);
    memset(out, 0, sizeof(*out));
    if (cur && p->prev_kv) {
        out->has_prev = true;
        out->prev = to_ekv(kid, cur);
    }
    mrev r = {0};
    r.main = t->begin + 1;
    r.sub = t->changes++;
    r.create = cur ? cur->create : r.main;
    r.ver = cur ? cur->ver + 1 : 1;
    if (p->ignore_value) {
        if (cur && cur->vlen) {
            memcpy(r.val, cur->val, cur->vlen);
            r.vlen = cur->vlen;
        }
    } else if (p->value.len) {
        memcpy(r.val, p->value.data, p->value.len);
        r.vlen = p->value.len;
    }
    r.lease = p->ignore_lease ? (cur ? cur->lease : 0) : p->lease;
    add_rev(t->m, kid, &r);
    out->rev = t->begin + 1;
}

static void check_put(const eput *e, const mvcc_put_resp *got, const char *what)
{
    CHECK(got->revision == e->rev, "%s: put revision %lld want %lld", what,
          (long long)got->revision, (long long)e->rev);
    CHECK((got->prev_kv != NULL) == e->has_prev, "%s: prev_kv presence", what);
    if (e->has_prev)
        check_kv(got->prev_kv, &e->prev, true, what);
}

typedef struct edel {
    int64_t rev, deleted;
    ekv prev[NKEYS];
    size_t nprev;
} edel;

static void model_delete(mtx *t, const mvcc_delete_req *d, edel *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < NKEYS; i++) {
        int kid = g_order[i];
        if (!in_range(kid, d->key, d->range_end))
            continue;
        const mrev *cur = live(t->m, kid, INT64_MAX);
        if (!cur)
            continue;
        if (d->prev_kv)
            out->prev[out->nprev++] = to_ekv(kid, cur);
        mrev r = {0};
        r.main = t->begin + 1;
        r.sub = t->changes++;
        r.tomb = true;
        add_rev(t->m, kid, &r);
        out->deleted++;
    }
    out->rev = visible(t);
}

static void check_delete(const edel *e, const mvcc_delete_resp *got, const char *what)
{
    CHECK(got->revision == e->rev, "%s: delete revision %lld want %lld", what,
          (long long)got->revision, (long long)e->rev);
    CHECK(got->deleted == e->deleted, "%s: deleted %lld want %lld", what, (long long)got->deleted,
          (long long)e->deleted);
    CHECK(got->prev_kvs_len == e->nprev, "%s: %zu prev_kvs want %zu", what, got->prev_kvs_len,
          e->nprev);
    for (size_t i = 0; i < e->nprev; i++)
        check_kv(&got->prev_kvs[i], &e->prev[i], true, what);
}

/* Txn */

static int key_id(mvcc_bytes k)
{
    for (int i = 0; i < NKEYS; i++)
        if (bcmp_(k.data, k.len, (const uint8_t *)KEYS[i].p, KEYS[i].len) == 0)
            return i;
    return -1;
}

static bool model_compare(const mtx *t, const mvcc_compare *c)
{
    bool any = false;
    for (int i = 0; i < NKEYS; i++) {
        int kid = g_order[i];
        if (!in_range(kid, c->key, c->range_end))
            continue;
        const mrev *v = live(t->m, kid, visible(t));
        if (!v)
            continue;
        any = true;
        int res;
        switch (c->target) {
        case MVCC_CMP_VALUE:
            res = bcmp_((const uint8_t *)v->val, v->vlen, c->value.data, c->value.len);
            break;
        case MVCC_CMP_VERSION:
            res = (v->ver > c->number) - (v->ver < c->number);
            break;
        case MVCC_CMP_CREATE:
            res = (v->create > c->number) - (v->create < c->number);
            break;
        case MVCC_CMP_MOD:
            res = (v->main > c->number) - (v->main < c->number);
            break;
        default:
            res = (v->lease > c->number) - (v->lease < c->number);
            break;
        }
        bool ok = c->result == MVCC_CMP_EQUAL       ? res == 0
                  : c->result == MVCC_CMP_NOT_EQUAL ? res != 0
                  : c->result == MVCC_CMP_GREATER   ? res > 0
                                                    : res < 0;
        if (!ok)
            return false;
    }
    if (!any) {
        if (c->target == MVCC_CMP_VALUE)
            return false;
        int res = (0 > c->number) - (0 < c->number);
        return c->result == MVCC_CMP_EQUAL       ? res == 0
               : c->result == MVCC_CMP_NOT_EQUAL ? res != 0
               : c->result == MVCC_CMP_GREATER   ? res > 0
                                                 : res < 0;
    }
    return true;
}

#define PATH_MAX_NODES 64

static void model_path(const mtx *t, const mvcc_txn_req *r, bool *path, size_t *n)
{
    bool ok = true;
    for (size_t i = 0; i < r->compare_len && ok; i++)
        ok = model_compare(t, &r->compare[i]);
    CHECK(*n < PATH_MAX_NODES, "path too long");
    path[(*n)++] = ok;
    const mvcc_request_op *ops = ok ? r->success : r->failure;
    size_t nops = ok ? r->success_len : r->failure_len;
    for (size_t i = 0; i < nops; i++)
        if (ops[i].type == MVCC_OP_TXN)
            model_path(t, ops[i].txn, path, n);
}

static int model_check_path(const mtx *t, const mvcc_txn_req *r, const bool *path, size_t *pos)
{
    bool ok = path[(*pos)++];
    const mvcc_request_op *ops = ok ? r->success : r->failure;
    size_t nops = ok ? r->success_len : r->failure_len;
    for (size_t i = 0; i < nops; i++) {
        const mvcc_request_op *op = &ops[i];
        if (op->type == MVCC_OP_RANGE && op->range.revision != 0) {
            if (op->range.revision > t->begin)
                return MVCC_EFUTURE;
            if (op->range.revision < t->m->compacted)
                return MVCC_ECOMPACTED;
        } else if (op->type == MVCC_OP_PUT) {
            if ((op->put.ignore_value || op->put.ignore_lease) &&
                !live(t->m, key_id(op->put.key), t->begin))
                return MVCC_EKEYNOTFOUND;
            if (op->put.lease == 3)
                return MVCC_ELEASENOTFOUND;
        } else if (op->type == MVCC_OP_TXN) {
            int rc = model_check_path(t, op->txn, path, pos);
            if (rc)
                return rc;
        }
    }
    return MVCC_OK;
}

static void model_exec_txn(mtx *t, const mvcc_txn_req *r, const bool *path, size_t *pos,
                           const mvcc_txn_resp *got, bool top)
{
    bool ok = path[(*pos)++];
    const mvcc_request_op *ops = ok ? r->success : r->failure;
    size_t nops = ok ? r->success_len : r->failure_len;
    CHECK(got->succeeded == ok, "txn succeeded %d want %d", got->succeeded, ok);
    CHECK(got->responses_len == nops, "txn %zu responses want %zu", got->responses_len, nops);
    for (size_t i = 0; i < nops; i++) {
        const mvcc_request_op *op = &ops[i];
        const mvcc_response_op *ro = &got->responses[i];
        CHECK(ro->type == op->type, "txn response %zu type %d want %d", i, ro->type, op->type);
        switch (op->type) {
        case MVCC_OP_RANGE: {
            erange e;
            int rc = model_range(t, &op->range, &e);
            CHECK(rc == MVCC_OK, "txn range failed in the model: %d", rc);
            check_range(&e, &ro->range, op->range.keys_only, "txn range");
            break;
        }
        case MVCC_OP_PUT: {
            eput e;
            model_put(t, &op->put, key_id(op->put.key), &e);
            check_put(&e, &ro->put, "txn put");
            break;
        }
        case MVCC_OP_DELETE_RANGE: {
            edel e;
            model_delete(t, &op->delete_range, &e);
            check_delete(&e, &ro->delete_range, "txn delete");
            break;
        }
        case MVCC_OP_TXN:
            CHECK(ro->txn != NULL, "nested txn response missing");
            model_exec_txn(t, op->txn, path, pos, ro->txn, false);
            break;
        default:
            break;
        }
    }
    if (top)
        CHECK(got->revision == visible(t), "txn revision %lld want %lld", (long long)got->revision,
              (long long)visible(t));
    else
        CHECK(got->revision == 0, "nested txn revision %lld", (long long)got->revision);
}

/* ------------------------------------------------------------------------------------------ */
/* response equality between the two stores                                                    */

static bool kv_eq(const mvcc_kv *a, const mvcc_kv *b)
{
    return bcmp_(a->key.data, a->key.len, b->key.data, b->key.len) == 0 &&
           bcmp_(a->value.data, a->value.len, b->value.data, b->value.len) == 0 &&
           a->create_revision == b->create_revision && a->mod_revision == b->mod_revision &&
           a->version == b->version && a->lease == b->lease;
}

static bool txn_eq(const mvcc_txn_resp *a, const mvcc_txn_resp *b);

static bool op_eq(const mvcc_response_op *a, const mvcc_response_op *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case MVCC_OP_RANGE:
        if (a->range.revision != b->range.revision || a->range.count != b->range.count ||
            a->range.more != b->range.more || a->range.kvs_len != b->range.kvs_len)
            return false;
        for (size_t i = 0; i < a->range.kvs_len; i++)
            if (!kv_eq(&a->range.kvs[i], &b->range.kvs[i]))
                return false;
        return true;
    case MVCC_OP_PUT:
        if (a->put.revision != b->put.revision || !a->put.prev_kv != !b->put.prev_kv)
            return false;
        return !a->put.prev_kv || kv_eq(a->put.prev_kv, b->put.prev_kv);
    case MVCC_OP_DELETE_RANGE:
        if (a->delete_range.revision != b->delete_range.revision ||
            a->delete_range.deleted != b->delete_range.deleted ||
            a->delete_range.prev_kvs_len != b->delete_range.prev_kvs_len)
            return false;
        for (size_t i = 0; i < a->delete_range.prev_kvs_len; i++)
            if (!kv_eq(&a->delete_range.prev_kvs[i], &b->delete_range.prev_kvs[i]))
                return false;
        return true;
    case MVCC_OP_TXN:
        return txn_eq(a->txn, b->txn);
    default:
        return true;
    }
}

static bool txn_eq(const mvcc_txn_resp *a, const mvcc_txn_resp *b)
{
    if (a->revision != b->revision || a->succeeded != b->succeeded ||
        a->responses_len != b->responses_len)
        return false;
    for (size_t i = 0; i < a->responses_len; i++)
        if (!op_eq(&a->responses[i], &b->responses[i]))
            return false;
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* request generation                                                                           */

typedef struct pool {
    void *ptrs[512];
    size_t n;
} pool;

static void *palloc(pool *p, size_t size)
{
    CHECK(p->n < 512, "request pool full");
    void *x = calloc(1, size);
    if (!x)
        abort();
    p->ptrs[p->n++] = x;
    return x;
}

static void pool_free(pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->ptrs[i]);
    p->n = 0;
}

static mvcc_bytes gen_end(pool *p, mvcc_bytes key)
{
    int r = (int)(rnd() % 100);
    if (r < 40)
        return (mvcc_bytes){0};
    if (r < 55)
        return (mvcc_bytes){(const uint8_t *)"", 1}; /* from key */
    if (r < 75) {
        /* prefix end, as clients compute it */
        uint8_t *e = palloc(p, key.len + 1);
        size_t n = key.len;
        memcpy(e, key.data, n);
        while (n > 0 && e[n - 1] == 0xff)
            n--;
        if (n == 0)
            return (mvcc_bytes){(const uint8_t *)"", 1};
        e[n - 1]++;
        return (mvcc_bytes){e, n};
    }
    if (r < 88) {
        int b = (int)(rnd() % NBOUNDS);
        return (mvcc_bytes){(const uint8_t *)BOUNDS[b].p, BOUNDS[b].len};
    }
    return kb((int)(rnd() % NKEYS));
}

static mvcc_bytes gen_value(pool *p)
{
    static unsigned long counter;
    if (chance(10))
        return (mvcc_bytes){0};
    char *v = palloc(p, VMAX);
    int n = snprintf(v, VMAX, "v%lu", counter++ % 50);
    return (mvcc_bytes){(const uint8_t *)v, (size_t)n};
}

static int64_t gen_rev(const model *m)
{
    if (chance(60))
        return 0;
    return rnd_in(m->compacted - 1, m->current + 1);
}

static void gen_range(pool *p, const model *m, mvcc_range_req *r, bool in_txn)
{
    memset(r, 0, sizeof(*r));
    r->key = chance(8) ? (mvcc_bytes){(const uint8_t *)"", 1} : kb((int)(rnd() % NKEYS));
    if (r->key.len == 1 && r->key.data[0] == 0)
        r->range_end = (mvcc_bytes){(const uint8_t *)"", 1};
    else
        r->range_end = gen_end(p, r->key);
    r->revision = in_txn ? (chance(85) ? 0 : gen_rev(m)) : gen_rev(m);
    if (chance(50))
        r->limit = rnd_in(1, 4);
    if (chance(40)) {
        r->sort_order = (mvcc_sort_order)rnd_in(0, 2);
        r->sort_target = (mvcc_sort_target)rnd_in(0, 4);
    }
    r->keys_only = chance(20);
    r->count_only = chance(10);
    if (chance(15)) {
        int64_t lo = rnd_in(0, m->current + 1);
        if (chance(50))
            r->min_mod_revision = lo;
        if (chance(50))
            r->max_mod_revision = rnd_in(lo, m->current + 1);
        if (chance(30))
            r->min_create_revision = rnd_in(0, m->current);
        if (chance(30))
            r->max_create_revision = rnd_in(0, m->current + 1);
    }
}

static void gen_put(pool *p, mvcc_put_req *r, int kid)
{
    memset(r, 0, sizeof(*r));
    r->key = kb(kid);
    int x = (int)(rnd() % 100);
    r->lease = x < 70 ? 0 : (x < 95 ? rnd_in(1, 2) : 3);
    r->prev_kv = chance(30);
    if (chance(10)) {
        r->ignore_value = true;
    } else {
        r->value = gen_value(p);
    }
    if (chance(10)) {
        r->ignore_lease = true;
        r->lease = 0;
    }
}

/* write-conflict bookkeeping for generating valid txns */
typedef struct wset {
    bool put[NKEYS];
    mvcc_delete_req dels[64];
    size_t ndels;
} wset;

static bool covered(const wset *w, int kid)
{
    for (size_t i = 0; i < w->ndels; i++)
        if (in_range(kid, w->dels[i].key, w->dels[i].range_end))
            return true;
    return false;
}

static bool del_hits_put(const wset *w, const mvcc_delete_req *d)
{
    for (int i = 0; i < NKEYS; i++)
        if (w->put[i] && in_range(i, d->key, d->range_end))
            return true;
    return false;
}

static mvcc_txn_req *gen_txn(pool *p, const model *m, int depth, wset *w)
{
    mvcc_txn_req *t = palloc(p, sizeof(*t));
    size_t nc = (size_t)rnd_in(0, 2);
    mvcc_compare *cmps = palloc(p, (nc ? nc : 1) * sizeof(*cmps));
    for (size_t i = 0; i < nc; i++) {
        mvcc_compare *c = &cmps[i];
        c->result = (mvcc_compare_result)rnd_in(0, 3);
        c->target = (mvcc_compare_target)rnd_in(0, 4);
        c->key = kb((int)(rnd() % NKEYS));
        if (chance(25))
            c->range_end = gen_end(p, c->key);
        c->number = c->target == MVCC_CMP_LEASE ? rnd_in(0, 2) : rnd_in(0, m->current + 1);
        if (c->target == MVCC_CMP_VERSION)
            c->number = rnd_in(0, 4);
        c->value = gen_value(p);
    }
    t->compare = cmps;
    t->compare_len = nc;
    for (int branch = 0; branch < 2; branch++) {
        size_t n = (size_t)rnd_in(0, 3);
        mvcc_request_op *ops = palloc(p, (n ? n : 1) * sizeof(*ops));
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            mvcc_request_op *op = &ops[k];
            int x = (int)(rnd() % 100);
            if (x < 30) {
                op->type = MVCC_OP_RANGE;
                gen_range(p, m, &op->range, true);
                k++;
            } else if (x < 65) {
                int kid = (int)(rnd() % NKEYS);
                if (w->put[kid] || covered(w, kid))
                    continue;
                op->type = MVCC_OP_PUT;
                gen_put(p, &op->put, kid);
                w->put[kid] = true;
                k++;
            } else if (x < 85) {
                mvcc_delete_req d = {.key = kb((int)(rnd() % NKEYS)), .prev_kv = chance(40)};
                d.range_end = chance(50) ? (mvcc_bytes){0} : gen_end(p, d.key);
                if (del_hits_put(w, &d) || w->ndels == 64)
                    continue;
                w->dels[w->ndels++] = d;
                op->type = MVCC_OP_DELETE_RANGE;
                op->delete_range = d;
                k++;
            } else if (depth < 2) {
                op->type = MVCC_OP_TXN;
                op->txn = gen_txn(p, m, depth + 1, w);
                k++;
            }
        }
        if (branch == 0) {
            t->success = ops;
            t->success_len = k;
        } else {
            t->failure = ops;
            t->failure_len = k;
        }
    }
    return t;
}

/* ------------------------------------------------------------------------------------------ */
/* the run                                                                                      */

typedef struct world {
    char *dir_p, *dir_s;
    mvcc_store *p, *s; /* primary, shadow */
    mvcc_options opts_p, opts_s;
    mvcc_arena ap, as;
    model m;
    bool in_batch;
    int batch_left;
    int batch_ops;
    msnap batch_snap;
    long stats[16];
} world;

enum {
    ST_PUT,
    ST_DEL,
    ST_TXN,
    ST_RANGE,
    ST_COMPACT,
    ST_REOPEN,
    ST_EVENTS,
    ST_HASH,
    ST_COMMIT,
    ST_ABORT,
    ST_ERR,
    ST_SNAP,
    ST_DEFRAG
};

static bool lease_exists(void *ctx, int64_t lease)
{
    (void)ctx;
    return lease != 3;
}

static void open_store(const char *dir, const mvcc_options *o, mvcc_store **s)
{
    cord_error err;
    int rc = mvcc_open(dir, o, s, &err);
    CHECK(rc == MVCC_OK, "open %s: %s", dir, err.msg);
}

static void check_status(world *w)
{
    mvcc_status st;
    CHECK(mvcc_status_get(w->p, &st, NULL) == MVCC_OK, "status");
    CHECK(st.current_revision == w->m.current, "current %lld want %lld",
          (long long)st.current_revision, (long long)w->m.current);
    CHECK(st.compact_revision == w->m.compacted, "compacted %lld want %lld",
          (long long)st.compact_revision, (long long)w->m.compacted);
}

static void do_put(world *w, pool *p)
{
    int kid = (int)(rnd() % NKEYS);
    mvcc_put_req req;
    gen_put(p, &req, kid);
    mvcc_put_resp rp, rs;
    cord_error err;
    int rcp = mvcc_put(w->p, &w->ap, &req, &rp, &err);
    int rcs = mvcc_put(w->s, &w->as, &req, &rs, NULL);
    CHECK(rcp == rcs, "put rc differs %d %d", rcp, rcs);
    int want = MVCC_OK;
    if (req.lease == 3)
        want = MVCC_ELEASENOTFOUND;
    else if ((req.ignore_value || req.ignore_lease) && !live(&w->m, kid, w->m.current))
        want = MVCC_EKEYNOTFOUND;
    CHECK(rcp == want, "put rc %d want %d (%s)", rcp, want, err.msg);
    if (want) {
        w->stats[ST_ERR]++;
        return;
    }
    mtx t = {&w->m, w->m.current, 0};
    eput e;
    model_put(&t, &req, kid, &e);
    w->m.current++;
    check_put(&e, &rp, "put");
    mvcc_response_op a = {.type = MVCC_OP_PUT}, b = {.type = MVCC_OP_PUT};
    a.put = rp;
    b.put = rs;
    CHECK(op_eq(&a, &b), "put responses differ between stores");
    w->stats[ST_PUT]++;
}

static void do_delete(world *w, pool *p)
{
    mvcc_delete_req req = {.key = kb((int)(rnd() % NKEYS)), .prev_kv = chance(50)};
    if (chance(10))
        req.key = (mvcc_bytes){(const uint8_t *)"", 1};
    req.range_end = chance(40) ? (mvcc_bytes){0} : gen_end(p, req.key);
    mvcc_delete_resp rp, rs;
    cord_error err;
    int rcp = mvcc_delete_range(w->p, &w->ap, &req, &rp, &err);
    int rcs = mvcc_delete_range(w->s, &w->as, &req, &rs, NULL);
    CHECK(rcp == MVCC_OK && rcs == MVCC_OK, "delete rc %d %d: %s", rcp, rcs, err.msg);
    mtx t = {&w->m, w->m.current, 0};
    edel e;
    model_delete(&t, &req, &e);
    if (t.changes)
        w->m.current++;
    check_delete(&e, &rp, "delete");
    mvcc_response_op a = {.type = MVCC_OP_DELETE_RANGE}, b = {.type = MVCC_OP_DELETE_RANGE};
    a.delete_range = rp;
    b.delete_range = rs;
    CHECK(op_eq(&a, &b), "delete responses differ between stores");
    w->stats[ST_DEL]++;
}

static void do_range(world *w, pool *p)
{
    mvcc_range_req req;
    gen_range(p, &w->m, &req, false);
    mvcc_range_resp rp, rs;
    cord_error err;
    int rcp = mvcc_range(w->p, &w->ap, &req, &rp, &err);
    int rcs = mvcc_range(w->s, &w->as, &req, &rs, NULL);
    mtx t = {&w->m, w->m.current, 0};
    erange e;
    int want = model_range(&t, &req, &e);
    CHECK(rcp == want && rcs == want, "range rc %d/%d want %d (%s)", rcp, rcs, want, err.msg);
    if (want) {
        w->stats[ST_ERR]++;
        return;
    }
    check_range(&e, &rp, req.keys_only, "range");
    check_range(&e, &rs, req.keys_only, "shadow range");
    w->stats[ST_RANGE]++;
}

/* etcd's checkTxnRequest list-length rule (nested txns get what the parent left) */
static bool too_many(const mvcc_txn_req *t, int64_t max)
{
    size_t opc = t->compare_len;
    if (opc < t->success_len)
        opc = t->success_len;
    if (opc < t->failure_len)
        opc = t->failure_len;
    if ((int64_t)opc > max)
        return true;
    for (int b = 0; b < 2; b++) {
        const mvcc_request_op *ops = b ? t->failure : t->success;
        size_t n = b ? t->failure_len : t->success_len;
        for (size_t i = 0; i < n; i++)
            if (ops[i].type == MVCC_OP_TXN && too_many(ops[i].txn, max - (int64_t)opc))
                return true;
    }
    return false;
}

static void do_txn(world *w, pool *p)
{
    wset ws = {0};
    mvcc_txn_req *t = gen_txn(p, &w->m, 0, &ws);
    int want_static = MVCC_OK;
    int x = (int)(rnd() % 100);
    if (x < 4) {
        /* a duplicate put at the top level */
        for (size_t i = 0; i < t->success_len; i++) {
            if (t->success[i].type != MVCC_OP_PUT)
                continue;
            mvcc_request_op *ops = palloc(p, (t->success_len + 1) * sizeof(*ops));
            memcpy(ops, t->success, t->success_len * sizeof(*ops));
            ops[t->success_len] = t->success[i];
            t->success = ops;
            t->success_len++;
            want_static = MVCC_EDUPKEY;
            break;
        }
    } else if (x < 7 && ws.ndels == 0) {
        /* a put inside a top-level delete range */
        mvcc_request_op *ops = palloc(p, (t->failure_len + 2) * sizeof(*ops));
        memcpy(ops, t->failure, t->failure_len * sizeof(*ops));
        ops[t->failure_len].type = MVCC_OP_DELETE_RANGE;
        ops[t->failure_len].delete_range =
            (mvcc_delete_req){.key = kb(0), .range_end = {(const uint8_t *)"", 1}};
        ops[t->failure_len + 1].type = MVCC_OP_PUT;
        gen_put(p, &ops[t->failure_len + 1].put, 5);
        t->failure = ops;
        t->failure_len += 2;
        want_static = MVCC_EDUPKEY;
    } else if (x < 9) {
        /* more compares than max_txn_ops (8 in this test) */
        size_t n = 9;
        mvcc_compare *c = palloc(p, n * sizeof(*c));
        for (size_t i = 0; i < n; i++)
            c[i] = (mvcc_compare){.target = MVCC_CMP_VERSION, .key = kb(0)};
        t->compare = c;
        t->compare_len = n;
        want_static = MVCC_ETOOMANYOPS;
    }
    if (too_many(t, 8))
        want_static = MVCC_ETOOMANYOPS;
    mvcc_txn_resp rp, rs;
    cord_error err;
    int rcp = mvcc_txn(w->p, &w->ap, t, &rp, &err);
    int rcs = mvcc_txn(w->s, &w->as, t, &rs, NULL);
    CHECK(rcp == rcs, "txn rc differs %d %d", rcp, rcs);
    if (want_static) {
        CHECK(rcp == want_static, "txn rc %d want %d (%s)", rcp, want_static, err.msg);
        w->stats[ST_ERR]++;
        return;
    }
    mtx mt = {&w->m, w->m.current, 0};
    bool path[PATH_MAX_NODES];
    size_t n = 0, pos = 0;
    model_path(&mt, t, path, &n);
    int want = model_check_path(&mt, t, path, &pos);
    CHECK(rcp == want, "txn rc %d want %d (%s)", rcp, want, err.msg);
    if (want) {
        w->stats[ST_ERR]++;
        return;
    }
    pos = 0;
    model_exec_txn(&mt, t, path, &pos, &rp, true);
    CHECK(pos == n, "path not consumed");
    if (mt.changes)
        w->m.current++;
    CHECK(txn_eq(&rp, &rs), "txn responses differ between stores");
    w->stats[ST_TXN]++;
}

static void finish_compaction(mvcc_store *s)
{
    bool done = false;
    cord_error err = {0};
    while (!done)
        CHECK(mvcc_compact_step(s, &done, &err) == MVCC_OK, "compact step: %s", err.msg);
}

static void do_compact(world *w)
{
    /* mostly a short way forward, so that plenty of history stays readable */
    int64_t rev = rnd_in(w->m.compacted - 1, w->m.current + 1);
    if (chance(70))
        rev = rnd_in(w->m.compacted + 1, w->m.compacted + (w->m.current - w->m.compacted) / 4 + 1);
    cord_error err;
    int rcp = mvcc_compact(w->p, rev, &err);
    int rcs = mvcc_compact(w->s, rev, NULL);
    int want = rev <= w->m.compacted ? MVCC_ECOMPACTED
               : rev > w->m.current  ? MVCC_EFUTURE
                                     : MVCC_OK;
    CHECK(rcp == want && rcs == want, "compact %lld rc %d/%d want %d (%s)", (long long)rev, rcp,
          rcs, want, err.msg);
    if (want) {
        w->stats[ST_ERR]++;
        return;
    }
    w->m.compacted = rev;
    w->stats[ST_COMPACT]++;
}

/* physical compaction outside batches: shadow at once, primary a little */
static void compaction_steps(world *w)
{
    finish_compaction(w->s);
    int steps = (int)rnd_in(0, 2);
    bool done = false;
    cord_error err = {0};
    for (int i = 0; i < steps && !done; i++)
        CHECK(mvcc_compact_step(w->p, &done, &err) == MVCC_OK, "compact step: %s", err.msg);
}

typedef struct eev {
    int kid;
    const mrev *r;
} eev;

static int eev_cmp(const void *a, const void *b)
{
    const mrev *x = ((const eev *)a)->r, *y = ((const eev *)b)->r;
    if (x->main != y->main)
        return x->main < y->main ? -1 : 1;
    return (x->sub > y->sub) - (x->sub < y->sub);
}

static size_t model_events(const model *m, mvcc_bytes key, mvcc_bytes end, int64_t start,
                           int64_t upto, eev *out, size_t cap)
{
    size_t n = 0;
    for (int kid = 0; kid < NKEYS; kid++) {
        if (!in_range(kid, key, end))
            continue;
        for (size_t i = 0; i < m->keys[kid].n; i++) {
            const mrev *r = &m->keys[kid].r[i];
            if (r->main >= start && r->main <= upto) {
                CHECK(n < cap, "too many events");
                out[n++] = (eev){kid, r};
            }
        }
    }
    qsort(out, n, sizeof(*out), eev_cmp);
    return n;
}

static void do_events(world *w, pool *p)
{
    mvcc_events_req req = {.key = kb((int)(rnd() % NKEYS))};
    req.range_end = gen_end(p, req.key);
    int64_t lo = w->m.compacted > 1 ? w->m.compacted : 1;
    req.start_revision = rnd_in(lo - (chance(10) ? 1 : 0), w->m.current + 1);
    if (req.start_revision < 1)
        req.start_revision = 1;
    req.prev_kv = chance(50);
    req.max_events = chance(50) ? 0 : (size_t)rnd_in(1, 5);
    mvcc_events_resp resp;
    cord_error err;
    int rc = mvcc_events(w->p, &w->ap, &req, &resp, &err);
    if (req.start_revision < w->m.compacted) {
        CHECK(rc == MVCC_ECOMPACTED, "events below compaction rc %d", rc);
        return;
    }
    CHECK(rc == MVCC_OK, "events rc %d: %s", rc, err.msg);
    static eev want[8192];
    size_t n =
        model_events(&w->m, req.key, req.range_end, req.start_revision, w->m.current, want, 8192);
    size_t max = req.max_events ? req.max_events : 1000;
    size_t expect = n < max ? n : max;
    CHECK(resp.events_len == expect, "%zu events want %zu", resp.events_len, expect);
    CHECK(n < max ? resp.complete : (n > max ? !resp.complete : true), "events complete flag");
    for (size_t i = 0; i < expect; i++) {
        const mvcc_event *e = &resp.events[i];
        const mrev *r = want[i].r;
        CHECK(e->type == (r->tomb ? MVCC_EVENT_DELETE : MVCC_EVENT_PUT), "event %zu type", i);
        if (r->tomb) {
            CHECK(e->kv.mod_revision == r->main && e->kv.version == 0, "delete event %zu", i);
            CHECK(bcmp_(e->kv.key.data, e->kv.key.len, (const uint8_t *)KEYS[want[i].kid].p,
                        KEYS[want[i].kid].len) == 0,
                  "delete event key");
        } else {
            ekv x = to_ekv(want[i].kid, r);
            check_kv(&e->kv, &x, true, "put event");
        }
        if (req.prev_kv && r->main > w->m.compacted) {
            const mrev *pr = live(&w->m, want[i].kid, r->main - 1);
            CHECK((e->prev_kv != NULL) == (pr != NULL), "event %zu prev_kv presence", i);
            if (pr) {
                ekv x = to_ekv(want[i].kid, pr);
                check_kv(e->prev_kv, &x, true, "event prev_kv");
            }
        }
    }
    w->stats[ST_EVENTS]++;
}

/* HashKV recomputed from the model: etcd's rule with our protobuf/revision encodings */
static size_t pb_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static size_t pb_kv(uint8_t *out, int kid, const mrev *r)
{
    size_t n = 0;
    out[n++] = 0x0a;
    n += pb_varint(out + n, KEYS[kid].len);
    memcpy(out + n, KEYS[kid].p, KEYS[kid].len);
    n += KEYS[kid].len;
    if (r->tomb)
        return n;
    uint64_t f[3] = {(uint64_t)r->create, (uint64_t)r->main, (uint64_t)r->ver};
    for (int i = 0; i < 3; i++) {
        if (!f[i])
            continue;
        out[n++] = (uint8_t)(0x10 + 8 * i);
        n += pb_varint(out + n, f[i]);
    }
    if (r->vlen) {
        out[n++] = 0x2a;
        n += pb_varint(out + n, r->vlen);
        memcpy(out + n, r->val, r->vlen);
        n += r->vlen;
    }
    if (r->lease) {
        out[n++] = 0x30;
        n += pb_varint(out + n, (uint64_t)r->lease);
    }
    return n;
}

static uint32_t model_hash(const model *m, int64_t rev)
{
    static eev all[1 << 16];
    size_t n = 0;
    for (int kid = 0; kid < NKEYS; kid++)
        for (size_t i = 0; i < m->keys[kid].n; i++)
            if (m->keys[kid].r[i].main <= rev) {
                CHECK(n < (1u << 16), "model too big for hash");
                all[n++] = (eev){kid, &m->keys[kid].r[i]};
            }
    qsort(all, n, sizeof(*all), eev_cmp);
    uint32_t h = crc32c_extend(0, "key", 3);
    for (size_t i = 0; i < n; i++) {
        const mrev *r = all[i].r;
        if (r->main <= m->compacted && (r->tomb || latest(m, all[i].kid, rev) != r))
            continue;
        uint8_t kbuf[18], vbuf[PB_KV_MAX];
        mvcc_put_be64(kbuf, (uint64_t)r->main);
        kbuf[8] = '_';
        mvcc_put_be64(kbuf + 9, (uint64_t)r->sub);
        kbuf[17] = 't';
        h = crc32c_extend(h, kbuf, r->tomb ? 18 : 17);
        h = crc32c_extend(h, vbuf, pb_kv(vbuf, all[i].kid, r));
    }
    return h;
}

static void do_hash(world *w)
{
    int64_t lo = w->m.compacted > 1 ? w->m.compacted : 1;
    int64_t rev = rnd_in(lo, w->m.current);
    mvcc_hash_kv_result hp, hs;
    CHECK(mvcc_hash_kv(w->p, rev, &hp, NULL) == MVCC_OK, "hash_kv primary");
    CHECK(mvcc_hash_kv(w->s, rev, &hs, NULL) == MVCC_OK, "hash_kv shadow");
    CHECK(hp.hash == hs.hash, "HashKV(%lld) differs between stores", (long long)rev);
    CHECK(hp.compact_revision == w->m.compacted, "hash compact revision");
    uint32_t mh = model_hash(&w->m, rev);
    CHECK(hp.hash == mh, "HashKV(%lld) %08x, model %08x", (long long)rev, hp.hash, mh);
    if (!w->in_batch && chance(20)) {
        finish_compaction(w->p);
        uint32_t a, b;
        CHECK(mvcc_hash(w->p, &a, NULL, NULL) == MVCC_OK, "hash");
        CHECK(mvcc_hash(w->s, &b, NULL, NULL) == MVCC_OK, "hash");
        CHECK(a == b, "whole-store hashes differ after compaction finished");
    }
    w->stats[ST_HASH]++;
}

static void do_reopen(world *w)
{
    mvcc_close(w->p);
    w->p = NULL;
    open_store(w->dir_p, &w->opts_p, &w->p);
    uint64_t idx;
    mvcc_applied(w->p, &idx, NULL);
    CHECK(idx == w->m.applied, "applied index after reopen %llu want %llu", (unsigned long long)idx,
          (unsigned long long)w->m.applied);
    check_status(w);
    w->stats[ST_REOPEN]++;
}

static void do_snapshot_into_shadow(world *w)
{
    /* the shadow is replaced by a snapshot of the primary (different physical state) */
    char path[4096];
    snprintf(path, sizeof(path), "%s.snap", w->dir_s);
    FILE *fp = fopen(path, "w");
    CHECK(fp != NULL, "snapshot file");
    uint64_t idx;
    CHECK(mvcc_snapshot_write(w->p, fileno(fp), &idx, NULL, NULL) == MVCC_OK, "snapshot");
    fclose(fp);
    CHECK(idx == w->m.applied, "snapshot applied index");
    cord_error err;
    CHECK(mvcc_snapshot_restore(w->s, path, &err) == MVCC_OK, "restore: %s", err.msg);
    unlink(path);
    uint64_t sidx;
    mvcc_applied(w->s, &sidx, NULL);
    CHECK(sidx == w->m.applied, "restored applied index");
    w->stats[ST_SNAP]++;
}

static void batch_begin(world *w)
{
    CHECK(mvcc_batch_begin(w->p, NULL) == MVCC_OK, "batch begin");
    CHECK(mvcc_batch_begin(w->s, NULL) == MVCC_OK, "batch begin shadow");
    w->in_batch = true;
    w->batch_left = (int)rnd_in(1, 8);
    w->batch_ops = 0;
    model_snap(&w->m, &w->batch_snap);
}

static void batch_end(world *w)
{
    if (chance(6)) {
        /* crash before the commit: nothing of the batch survives */
        mvcc_batch_abort(w->p);
        mvcc_batch_abort(w->s);
        model_restore(&w->m, &w->batch_snap);
        w->stats[ST_ABORT]++;
        if (chance(50))
            do_reopen(w);
    } else {
        uint64_t idx = w->m.applied + (uint64_t)w->batch_ops;
        cord_error err;
        CHECK(mvcc_batch_commit(w->p, idx, 1, &err) == MVCC_OK, "commit: %s", err.msg);
        CHECK(mvcc_batch_commit(w->s, idx, 1, &err) == MVCC_OK, "commit shadow: %s", err.msg);
        w->m.applied = idx;
        w->stats[ST_COMMIT]++;
    }
    w->in_batch = false;
    check_status(w);
}

static void run(void **state)
{
    (void)state;
    const char *es = getenv("MVCC_SEED");
    g_seed = es ? strtoull(es, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
    if (g_seed == 0)
        g_seed = 1;
    g_rng = g_seed * 0x9E3779B97F4A7C15ull + 1;
    const char *eo = getenv("MVCC_OPS");
    long nops = eo ? strtol(eo, NULL, 0) : 3000;
    printf("mvcc_model_test: seed %llu ops %ld (rerun: MVCC_SEED=%llu)\n",
           (unsigned long long)g_seed, nops, (unsigned long long)g_seed);
    fflush(stdout);
    init_keys();
    init_order();
    for (int i = 0; i < NKEYS; i++)
        if (KEYS[i].len + 64 + VMAX > PB_KV_MAX)
            fail_msg("key %d of %zu bytes: raise PB_KV_MAX", i, KEYS[i].len);

    world *w = calloc(1, sizeof(*w));
    w->dir_p = mvt_tmpdir("mvcc-model-p");
    w->dir_s = mvt_tmpdir("mvcc-model-s");
    w->opts_p = (mvcc_options){.max_txn_ops = 8,
                               .compact_batch_limit = (uint32_t)(1 + g_seed % 6),
                               .no_compact_on_open = true,
                               .lease_exists = lease_exists,
                               .no_sync = true};
    w->opts_s = w->opts_p;
    w->opts_s.compact_batch_limit = 1000;
    w->opts_s.no_compact_on_open = false;
    mvcc_arena_init(&w->ap, 0);
    mvcc_arena_init(&w->as, 0);
    w->m.current = 1;
    open_store(w->dir_p, &w->opts_p, &w->p);
    open_store(w->dir_s, &w->opts_s, &w->s);

    pool p = {0};
    for (g_op = 0; g_op < nops; g_op++) {
        if (!w->in_batch && chance(70))
            batch_begin(w);
        int x = (int)(rnd() % 100);
        bool entry = true; /* counts as an applied Raft entry */
        if (x < 25)
            do_put(w, &p);
        else if (x < 35)
            do_delete(w, &p);
        else if (x < 55)
            do_txn(w, &p);
        else if (x < 80) {
            do_range(w, &p);
            entry = false;
        } else if (x < 82)
            do_compact(w);
        else if (x < 90) {
            do_events(w, &p);
            entry = false;
        } else if (x < 95) {
            do_hash(w);
            entry = false;
        } else {
            entry = false;
            if (!w->in_batch) {
                int y = (int)(rnd() % 100);
                if (y < 50)
                    do_reopen(w);
                else if (y < 70)
                    do_snapshot_into_shadow(w);
                else if (y < 80) {
                    CHECK(mvcc_defrag(w->p, NULL) == MVCC_OK, "defrag");
                    w->stats[ST_DEFRAG]++;
                }
            }
        }
        pool_free(&p);
        mvcc_arena_reset(&w->ap);
        mvcc_arena_reset(&w->as);
        if (w->in_batch) {
            if (entry)
                w->batch_ops++;
            if (--w->batch_left <= 0)
                batch_end(w);
        }
        if (!w->in_batch)
            compaction_steps(w);
    }
    if (w->in_batch)
        batch_end(w);
    /* final: every key at every retained revision, and the hashes */
    finish_compaction(w->p);
    finish_compaction(w->s);
    for (int64_t rev = w->m.compacted > 1 ? w->m.compacted : 1; rev <= w->m.current; rev++) {
        mvcc_range_req req = {.key = {(const uint8_t *)"", 1},
                              .range_end = {(const uint8_t *)"", 1},
                              .revision = rev};
        mvcc_range_resp resp;
        mtx t = {&w->m, w->m.current, 0};
        erange e;
        CHECK(model_range(&t, &req, &e) == MVCC_OK, "final model range");
        CHECK(mvcc_range(w->p, &w->ap, &req, &resp, NULL) == MVCC_OK, "final range");
        check_range(&e, &resp, false, "final range");
        mvcc_arena_reset(&w->ap);
    }
    uint32_t a, b;
    CHECK(mvcc_hash(w->p, &a, NULL, NULL) == MVCC_OK && mvcc_hash(w->s, &b, NULL, NULL) == 0,
          "final hash");
    CHECK(a == b, "final whole-store hashes differ");
    do_reopen(w);
    printf("mvcc_model_test: ok: current revision %lld, compacted %lld, applied %llu\n"
           "  puts %ld deletes %ld txns %ld ranges %ld compactions %ld events %ld hashes %ld\n"
           "  commits %ld aborts %ld reopens %ld snapshots %ld defrags %ld expected-errors %ld\n",
           (long long)w->m.current, (long long)w->m.compacted, (unsigned long long)w->m.applied,
           w->stats[ST_PUT], w->stats[ST_DEL], w->stats[ST_TXN], w->stats[ST_RANGE],
           w->stats[ST_COMPACT], w->stats[ST_EVENTS], w->stats[ST_HASH], w->stats[ST_COMMIT],
           w->stats[ST_ABORT], w->stats[ST_REOPEN], w->stats[ST_SNAP], w->stats[ST_DEFRAG],
           w->stats[ST_ERR]);

    mvcc_close(w->p);
    mvcc_close(w->s);
    mvcc_arena_reset(&w->ap);
    mvcc_arena_reset(&w->as);
    mvt_rmrf(w->dir_p);
    mvt_rmrf(w->dir_s);
    for (int i = 0; i < NKEYS; i++)
        free(w->m.keys[i].r);
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(run)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
