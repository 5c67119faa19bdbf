/*
 * mvcc_compact.c — compaction (scheduled in meta, done in bounded steps), HashKV and the
 * whole-store hash, and watch history (events between revisions).
 *
 * Physical compaction to C walks the "key" database in revision order from the previous
 * compaction's revision (inclusive: a tombstone at exactly that revision was kept for
 * watchers and must go now) up to C. For each revision r of key K it looks up L, K's newest
 * revision <= C, and removes every revision of K older than L, then L itself when L is a
 * tombstone older than C (etcd keeps a tombstone at exactly C). Revisions are removed from
 * "key" and "key_index" together, newest-first below L, so a crash or a pause between steps
 * never exposes an older version: reads at revisions >= C see the same data throughout.
 * Progress (the next revision to examine) is written in meta in the same transaction.
 */
#include "mvcc/mvcc_internal.h"

#include "common/crc32c.h"

#include <stdlib.h>

int mvcc_compact(mvcc_store *s, int64_t revision, cord_error *err)
{
    mvcc_ctx c;
    int rc = mvcc_ctx_write(s, &c, err);
    if (rc)
        return rc;
    mvcc_meta *m = c.m;
    if (revision <= m->compact_rev) {
        rc = mvcc_fail(err, MVCC_ECOMPACTED);
    } else if (revision > m->current_rev) {
        rc = mvcc_fail(err, MVCC_EFUTURE);
    } else {
        /* The window starts at the last finished compaction's revision (inclusive: its
         * tombstones at exactly that revision were kept for watchers). When a compaction
         * was still pending, restart its walk: entries it passed were judged against the
         * older target (removing is idempotent, so re-examining them is only work). */
        m->cursor_main = m->compact_finished;
        m->cursor_sub = 0;
        m->compact_rev = revision;
        m->compact_scheduled = revision;
    }
    return mvcc_ctx_end(&c, rc, err);
}

static int del_both(mvcc_ctx *c, const uint8_t *part, size_t part_len, int64_t main, int64_t sub,
                    bool tombstone, cord_error *err)
{
    uint8_t rb[MVCC_MARKED_REV_BYTES];
    MDB_val k = {mvcc_rev_encode(rb, main, sub, tombstone), rb};
    int mrc = mdb_del(c->txn, c->s->dbi_key, &k, NULL);
    if (mrc && mrc != MDB_NOTFOUND)
        return mvcc_ctx_lmdb_fail(c, err, mrc, "compact key db");
    uint8_t ik[MVCC_IKEY_MAX];
    k = (MDB_val){mvcc_ikey_encode(ik, part, part_len, main, sub), ik};
    mrc = mdb_del(c->txn, c->s->dbi_kidx, &k, NULL);
    if (mrc && mrc != MDB_NOTFOUND)
        return mvcc_ctx_lmdb_fail(c, err, mrc, "compact key_index");
    return MVCC_OK;
}

/* Compacts the key stored as `part` to revision C. Uses at most *budget deletions; sets
 * *complete. */
static int compact_key(mvcc_ctx *c, const uint8_t *part, size_t part_len, int64_t C,
                       uint32_t *budget, bool *complete, cord_error *err)
{
    int rc = MVCC_OK;
    *complete = false;
    MDB_cursor *cur = mvcc_ctx_kidx(c, err, &rc);
    if (!cur)
        return rc;
    mvcc_ientry L;
    bool found = false;
    rc = mvcc_ilookup_part(c, part, part_len, C, &L, &found, err);
    if (rc)
        return rc;
    if (!found) {
        *complete = true; /* already gone */
        return MVCC_OK;
    }
    int64_t l_main = L.main, l_sub = L.sub;
    bool l_tomb = L.tombstone;
    /* remove older revisions, newest first; the budget is only spent on removals, so a
     * call with budget >= 1 always completes the key or removes something */
    for (;;) {
        MDB_val k, v;
        k.mv_size = mvcc_ikey_encode(c->seek_buf, part, part_len, l_main, l_sub);
        k.mv_data = c->seek_buf;
        int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
        if (mrc)
            return mrc == MDB_NOTFOUND
                       ? mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: key_index entry vanished")
                       : mvcc_ctx_lmdb_fail(c, err, mrc, "compact seek");
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        if (mrc == MDB_NOTFOUND)
            break;
        if (mrc)
            return mvcc_ctx_lmdb_fail(c, err, mrc, "compact next");
        mvcc_ientry o;
        if (mvcc_ientry_decode(&k, &v, &o) != MVCC_OK)
            return mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: bad key_index entry");
        if (mvcc_bytes_cmp(o.key, o.key_len, part, part_len) != 0)
            break;
        if (*budget == 0)
            return MVCC_OK;
        int64_t o_main = o.main, o_sub = o.sub;
        bool o_tomb = o.tombstone;
        rc = del_both(c, part, part_len, o_main, o_sub, o_tomb, err);
        if (rc)
            return rc;
        (*budget)--;
    }
    if (l_tomb && l_main < C) {
        if (*budget == 0)
            return MVCC_OK;
        rc = del_both(c, part, part_len, l_main, l_sub, true, err);
        if (rc)
            return rc;
        (*budget)--;
    }
    *complete = true;
    return MVCC_OK;
}

int mvcc_compact_step(mvcc_store *s, bool *done, cord_error *err)
{
    *done = false;
    if (s->batch)
        return mvcc_seterr(err, MVCC_EBUSY, "mvcc: compaction steps run between batches");
    if (s->meta.compact_scheduled == s->meta.compact_finished) {
        *done = true;
        return MVCC_OK;
    }
    mvcc_ctx c;
    int rc = mvcc_ctx_write(s, &c, err);
    if (rc)
        return rc;
    c.dirty = true;
    mvcc_meta *m = c.m;
    int64_t C = m->compact_scheduled;
    uint32_t budget = s->opts.compact_batch_limit;
    MDB_cursor *cur = mvcc_ctx_keyc(&c, err, &rc);
    if (!cur)
        goto out;
    uint8_t part[MVCC_IKEY_PART_MAX];
    while (budget > 0) {
        uint8_t rb[MVCC_MARKED_REV_BYTES];
        MDB_val k = {mvcc_rev_encode(rb, m->cursor_main, m->cursor_sub, false), rb}, v;
        int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        int64_t main = 0, sub = 0;
        bool tomb = false;
        if (mrc && mrc != MDB_NOTFOUND) {
            rc = mvcc_ctx_lmdb_fail(&c, err, mrc, "compact scan");
            goto out;
        }
        if (mrc == 0 && !mvcc_rev_decode(k.mv_data, k.mv_size, &main, &sub, &tomb)) {
            rc = mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: bad revision key");
            goto out;
        }
        if (mrc == MDB_NOTFOUND || main > C) {
            m->compact_finished = C;
            m->cursor_main = C;
            m->cursor_sub = 0;
            *done = true;
            break;
        }
        mvcc_kv kv;
        if (!mvcc_kvpb_decode(v.mv_data, v.mv_size, &kv) || kv.key.len == 0) {
            rc = mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: revision %lld does not decode",
                             (long long)main);
            goto out;
        }
        /* a copy: the record's memory changes as compact_key deletes */
        size_t part_len = mvcc_ikey_part(part, kv.key.data, kv.key.len);
        bool complete = false;
        rc = compact_key(&c, part, part_len, C, &budget, &complete, err);
        if (rc)
            goto out;
        if (!complete)
            break; /* out of budget inside this key: the next step goes on with it */
        m->cursor_main = main;
        m->cursor_sub = sub + 1;
        if (budget > 0)
            budget--; /* the examination itself */
    }
out:
    rc = mvcc_ctx_end(&c, rc, err);
    if (rc)
        *done = false;
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* hashes                                                                                       */

/* True when revision (main, sub) of `key` survives compaction at `rev`: it is the key's
 * newest revision <= rev and not a tombstone (etcd's keyIndex.keep). */
static int kept_at(mvcc_ctx *c, const mvcc_kv *kv, int64_t main, int64_t sub, int64_t rev,
                   bool *kept, cord_error *err)
{
    mvcc_ientry e;
    bool found = false;
    *kept = false;
    int rc = mvcc_ilookup(c, kv->key.data, kv->key.len, rev, &e, &found, err);
    if (rc)
        return rc;
    *kept = found && !e.tombstone && e.main == main && e.sub == sub;
    return MVCC_OK;
}

int mvcc_hash_kv(mvcc_store *s, int64_t revision, mvcc_hash_kv_result *out, cord_error *err)
{
    memset(out, 0, sizeof(*out));
    mvcc_ctx c;
    int rc = mvcc_ctx_read(s, &c, err);
    if (rc)
        return rc;
    int64_t compact = c.m->compact_rev, current = c.m->current_rev;
    out->current_revision = current;
    out->compact_revision = compact;
    if (revision > 0 && revision < compact) {
        rc = mvcc_fail(err, MVCC_ECOMPACTED);
        goto out;
    }
    if (revision > current) {
        rc = mvcc_fail(err, MVCC_EFUTURE);
        goto out;
    }
    if (revision <= 0)
        revision = current;
    uint32_t h = crc32c_extend(0, "key", 3);
    MDB_cursor *cur = mvcc_ctx_keyc(&c, err, &rc);
    if (!cur)
        goto out;
    MDB_val k, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (mrc == 0) {
        int64_t main, sub;
        bool tomb;
        if (!mvcc_rev_decode(k.mv_data, k.mv_size, &main, &sub, &tomb)) {
            rc = mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: bad revision key");
            goto out;
        }
        if (main > revision)
            break;
        bool include = true;
        if (main <= compact) {
            mvcc_kv kv;
            if (!mvcc_kvpb_decode(v.mv_data, v.mv_size, &kv)) {
                rc = mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: revision does not decode");
                goto out;
            }
            rc = kept_at(&c, &kv, main, sub, revision, &include, err);
            if (rc)
                goto out;
        }
        if (include) {
            h = crc32c_extend(h, k.mv_data, k.mv_size);
            h = crc32c_extend(h, v.mv_data, v.mv_size);
        }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (mrc && mrc != MDB_NOTFOUND) {
        rc = mvcc_ctx_lmdb_fail(&c, err, mrc, "hash scan");
        goto out;
    }
    out->hash = h;
    out->hash_revision = revision;
out:
    return mvcc_ctx_end(&c, rc, err);
}

static int hash_db(mvcc_ctx *c, MDB_dbi dbi, const char *name, uint32_t *h, cord_error *err)
{
    MDB_cursor *cur = NULL;
    int mrc = mdb_cursor_open(c->txn, dbi, &cur);
    if (mrc)
        return mvcc_ctx_lmdb_fail(c, err, mrc, "open hash cursor");
    *h = crc32c_extend(*h, name, strlen(name));
    MDB_val k, v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (mrc == 0) {
        *h = crc32c_extend(*h, k.mv_data, k.mv_size);
        *h = crc32c_extend(*h, v.mv_data, v.mv_size);
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (mrc != MDB_NOTFOUND)
        return mvcc_ctx_lmdb_fail(c, err, mrc, "hash scan");
    return MVCC_OK;
}

int mvcc_hash(mvcc_store *s, uint32_t *hash, int64_t *revision, cord_error *err)
{
    *hash = 0;
    mvcc_ctx c;
    int rc = mvcc_ctx_read(s, &c, err);
    if (rc)
        return rc;
    uint32_t h = 0;
    rc = hash_db(&c, s->dbi_key, "key", &h, err);
    if (!rc)
        rc = hash_db(&c, s->dbi_kidx, "key_index", &h, err);
    if (!rc)
        rc = hash_db(&c, s->dbi_lease, "lease_keys", &h, err);
    if (!rc) {
        *hash = h;
        if (revision)
            *revision = c.m->current_rev;
    }
    return mvcc_ctx_end(&c, rc, err);
}

/* ------------------------------------------------------------------------------------------ */
/* watch history                                                                                */

typedef struct evvec {
    mvcc_event *v;
    size_t n;
    size_t cap;
} evvec;

int mvcc_events(mvcc_store *s, mvcc_arena *arena, const mvcc_events_req *req,
                mvcc_events_resp *resp, cord_error *err)
{
    memset(resp, 0, sizeof(*resp));
    if (req->key.len == 0)
        return mvcc_fail(err, MVCC_EEMPTYKEY);
    if (req->start_revision < 1 || req->start_sub < 0)
        return mvcc_seterr(err, MVCC_EINVAL, "mvcc: events start revision must be >= 1");
    mvcc_ctx c;
    int rc = mvcc_ctx_read(s, &c, err);
    if (rc)
        return rc;
    evvec ev = {0};
    resp->compact_revision = c.m->compact_rev;
    resp->current_revision = c.m->current_rev;
    resp->next_revision = req->start_revision;
    resp->next_sub = req->start_sub;
    if (req->start_revision < c.m->compact_rev) {
        rc = mvcc_fail(err, MVCC_ECOMPACTED);
        goto out;
    }
    int64_t end = req->end_revision > 0 && req->end_revision < c.m->current_rev ? req->end_revision
                                                                                : c.m->current_rev;
    size_t max_events = req->max_events ? req->max_events : 1000;
    size_t max_scan = req->max_scan ? req->max_scan : 100000;
    MDB_cursor *cur = mvcc_ctx_keyc(&c, err, &rc);
    if (!cur)
        goto out;
    uint8_t rb[MVCC_MARKED_REV_BYTES];
    MDB_val k = {mvcc_rev_encode(rb, req->start_revision, req->start_sub, false), rb}, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    size_t scanned = 0;
    resp->complete = false;
    for (;;) {
        if (mrc == MDB_NOTFOUND) {
            resp->complete = true;
            resp->next_revision = end + 1 > req->start_revision ? end + 1 : req->start_revision;
            resp->next_sub = 0;
            break;
        }
        if (mrc) {
            rc = mvcc_ctx_lmdb_fail(&c, err, mrc, "events scan");
            goto out;
        }
        int64_t main, sub;
        bool tomb;
        if (!mvcc_rev_decode(k.mv_data, k.mv_size, &main, &sub, &tomb)) {
            rc = mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: bad revision key");
            goto out;
        }
        if (main > end) {
            resp->complete = true;
            resp->next_revision = end + 1 > req->start_revision ? end + 1 : req->start_revision;
            resp->next_sub = 0;
            break;
        }
        if (ev.n >= max_events || scanned >= max_scan) {
            resp->next_revision = main;
            resp->next_sub = sub;
            break;
        }
        scanned++;
        mvcc_kv kv;
        if (!mvcc_kvpb_decode(v.mv_data, v.mv_size, &kv)) {
            rc = mvcc_seterr(err, MVCC_ECORRUPT, "mvcc: revision does not decode");
            goto out;
        }
        if (mvcc_key_in_range(kv.key.data, kv.key.len, req->key, req->range_end)) {
            mvcc_event e;
            memset(&e, 0, sizeof(e));
            e.type = tomb ? MVCC_EVENT_DELETE : MVCC_EVENT_PUT;
            if (tomb) {
                e.kv.mod_revision = main;
                if (!mvcc_arena_copy(arena, &e.kv.key, kv.key.data, kv.key.len))
                    goto full;
            } else {
                e.kv = kv;
                if (!mvcc_arena_copy(arena, &e.kv.key, kv.key.data, kv.key.len) ||
                    !mvcc_arena_copy(arena, &e.kv.value, kv.value.data, kv.value.len))
                    goto full;
            }
            if (req->prev_kv && main > 1) {
                mvcc_ientry pe;
                bool found = false;
                rc = mvcc_ilookup(&c, kv.key.data, kv.key.len, main - 1, &pe, &found, err);
                if (rc)
                    goto out;
                if (found && !pe.tombstone) {
                    mvcc_kv stored;
                    rc = mvcc_fetch_kv(&c, pe.main, pe.sub, &stored, err);
                    if (rc)
                        goto out;
                    mvcc_kv *prev = mvcc_arena_alloc(arena, sizeof(*prev));
                    if (!prev)
                        goto full;
                    *prev = stored;
                    if (!mvcc_arena_copy(arena, &prev->key, stored.key.data, stored.key.len) ||
                        !mvcc_arena_copy(arena, &prev->value, stored.value.data, stored.value.len))
                        goto full;
                    e.prev_kv = prev;
                }
            }
            if (ev.n == ev.cap) {
                size_t cap = ev.cap ? ev.cap * 2 : 16;
                mvcc_event *nv = realloc(ev.v, cap * sizeof(*nv));
                if (!nv) {
                    rc = mvcc_fail(err, MVCC_ENOMEM);
                    goto out;
                }
                ev.v = nv;
                ev.cap = cap;
            }
            ev.v[ev.n++] = e;
        }
        /* re-read the position: ilookup used another cursor, ours is still valid */
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (ev.n) {
        mvcc_event *out = mvcc_arena_alloc(arena, ev.n * sizeof(*out));
        if (!out)
            goto full;
        memcpy(out, ev.v, ev.n * sizeof(*out));
        resp->events = out;
        resp->events_len = ev.n;
    }
    rc = MVCC_OK;
    goto out;
full:
    rc = mvcc_fail(err, MVCC_ERESULT);
out:
    free(ev.v);
    if (rc && rc != MVCC_ECOMPACTED) {
        resp->events = NULL;
        resp->events_len = 0;
    }
    return mvcc_ctx_end(&c, rc, err);
}
