/*
 * lease_store.c — lease records in the mvcc store's LMDB ("lease" database): load, reload,
 * and the two apply-path writes (grant, revoke).
 */
#include "lease/lease_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static int lmdb_fail(cord_error *err, int rc, const char *what)
{
    return lease_seterr(err, LEASE_ESTORAGE, "lease: %s: %s", what, mdb_strerror(rc));
}

/* The records' database in `txn`. The handle is looked up in every transaction, not kept:
 * the store reopens its environment (mvcc_defrag, a snapshot restore), and a handle of the
 * old one names no database, or another, in the new. */
static int lease_dbi(MDB_txn *txn, MDB_dbi *dbi, cord_error *err)
{
    int rc = mdb_dbi_open(txn, LEASE_DB_NAME, MDB_CREATE, dbi);
    if (rc)
        return lmdb_fail(err, rc, "open database \"" LEASE_DB_NAME "\"");
    return LEASE_OK;
}

/* Runs with the open batch's transaction, or begins a write transaction of its own
 * (*own = true); *dbi is the records' database in it. */
static int write_txn(lease_table *t, MDB_txn **txn, bool *own, MDB_dbi *dbi, cord_error *err)
{
    *own = false;
    if (!t->loaded)
        return lease_seterr(err, LEASE_ESTORAGE, "lease: records not loaded (reload)");
    if (mvcc_batch_is_open(t->store)) {
        *txn = mvcc_batch_txn(t->store);
        if (!*txn)
            return lease_seterr(err, LEASE_ESTORAGE, "lease: the mvcc batch failed earlier");
        return lease_dbi(*txn, dbi, err);
    }
    MDB_env *env = mvcc_env(t->store);
    if (!env)
        return lease_seterr(err, LEASE_ESTORAGE, "lease: mvcc store is closed");
    int rc = mdb_txn_begin(env, NULL, 0, txn);
    if (rc)
        return lmdb_fail(err, rc, "begin write transaction");
    *own = true;
    int code = lease_dbi(*txn, dbi, err);
    if (code != LEASE_OK)
        mdb_txn_abort(*txn);
    return code;
}

static int finish_txn(MDB_txn *txn, bool own, int code, cord_error *err)
{
    if (!own)
        return code;
    if (code != LEASE_OK) {
        mdb_txn_abort(txn);
        return code;
    }
    int rc = mdb_txn_commit(txn);
    if (rc)
        return lmdb_fail(err, rc, "commit");
    return LEASE_OK;
}

/* Reads every record into table t (cleared first), keeping deadlines found in `old`
 * (may be NULL). */
static int read_all(lease_table *t, const lease_table *old, int64_t now_ms, cord_error *err)
{
    if (mvcc_batch_is_open(t->store))
        return lease_seterr(err, LEASE_EBUSY, "lease: load while an mvcc batch is open");
    MDB_env *env = mvcc_env(t->store);
    if (!env)
        return lease_seterr(err, LEASE_ESTORAGE, "lease: mvcc store is closed");
    MDB_txn *txn;
    int rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc)
        return lmdb_fail(err, rc, "begin transaction");
    int code = LEASE_OK;
    MDB_cursor *cur = NULL;
    MDB_dbi dbi;
    if ((code = lease_dbi(txn, &dbi, err)) != LEASE_OK)
        goto out;
    if ((rc = mdb_cursor_open(txn, dbi, &cur))) {
        code = lmdb_fail(err, rc, "open cursor");
        goto out;
    }
    lease_clear(t);
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8 || v.mv_size != 8) {
            code = lease_seterr(err, LEASE_ESTORAGE, "lease: record of %zu/%zu bytes", k.mv_size,
                                v.mv_size);
            goto out;
        }
        int64_t id = (int64_t)get_be64(k.mv_data);
        int64_t ttl = (int64_t)get_be64(v.mv_data);
        if (id == 0 || lease_find(t, id) || ttl < 0 || ttl > LEASE_MAX_TTL_S) {
            code = lease_seterr(err, LEASE_ESTORAGE, "lease: bad record id %lld", (long long)id);
            goto out;
        }
        if (t->count >= t->opts.max_leases) {
            code = lease_seterr(err, LEASE_ETOOMANY, "lease: more than %u leases stored",
                                t->opts.max_leases);
            goto out;
        }
        lease_rec *r = lease_insert(t, id, ttl);
        if (!r) {
            code = lease_seterr(err, LEASE_ENOMEM, "lease: out of memory");
            goto out;
        }
        if (t->leader) {
            const lease_rec *o = old ? lease_find(old, id) : NULL;
            int prc;
            if (o) {
                r->deadline_ms = o->deadline_ms;
                r->check_ms = o->check_ms;
                prc = o->check_ms == LEASE_FOREVER_MS ? LEASE_OK
                                                      : lease_heap_push(t, o->check_ms, id);
            } else {
                prc = lease_set_deadline(t, r, now_ms + ttl * 1000);
            }
            if (prc != LEASE_OK) {
                code = lease_seterr(err, LEASE_ENOMEM, "lease: out of memory");
                goto out;
            }
        }
    }
    if (rc != MDB_NOTFOUND) {
        code = lmdb_fail(err, rc, "read records");
        goto out;
    }
out:
    if (cur)
        mdb_cursor_close(cur);
    if (code == LEASE_OK) {
        rc = mdb_txn_commit(txn); /* the database is created on the first load */
        if (rc)
            code = lmdb_fail(err, rc, "commit");
        else
            t->loaded = true;
    } else {
        mdb_txn_abort(txn);
        t->loaded = false;
    }
    return code;
}

int lease_load(lease_table *t, mvcc_store *store, cord_error *err)
{
    if (!store)
        return lease_seterr(err, LEASE_EINVAL, "lease: no store");
    t->store = store;
    return read_all(t, NULL, 0, err);
}

int lease_reload(lease_table *t, int64_t now_ms, cord_error *err)
{
    if (!t->store)
        return lease_seterr(err, LEASE_EINVAL, "lease: no store bound");
    /* keep a copy of the old table for its deadlines */
    lease_table old = *t;
    old.slots = NULL;
    old.heap = NULL;
    old.heap_len = old.heap_cap = 0;
    if (t->cap) {
        old.slots = malloc(t->cap * sizeof(*old.slots));
        if (!old.slots)
            return lease_seterr(err, LEASE_ENOMEM, "lease: out of memory");
        memcpy(old.slots, t->slots, t->cap * sizeof(*old.slots));
    }
    int code = read_all(t, &old, now_ms, err);
    free(old.slots);
    return code;
}

int lease_grant(lease_table *t, int64_t id, int64_t ttl_s, uint64_t raft_index, int64_t now_ms,
                int64_t *out_id, int64_t *out_ttl_s, cord_error *err)
{
    int code = lease_grant_check(t, id, ttl_s, err);
    if (code != LEASE_OK)
        return code;
    if (id == 0)
        id = lease_id_for_index(t, raft_index);
    if (ttl_s < t->opts.min_ttl_s)
        ttl_s = t->opts.min_ttl_s;
    if (t->store) {
        MDB_txn *txn;
        bool own;
        MDB_dbi dbi;
        if ((code = write_txn(t, &txn, &own, &dbi, err)) != LEASE_OK)
            return code;
        uint8_t kb[8], vb[8];
        put_be64(kb, (uint64_t)id);
        put_be64(vb, (uint64_t)ttl_s);
        MDB_val k = {8, kb}, v = {8, vb};
        int rc = mdb_put(txn, dbi, &k, &v, 0);
        if (rc)
            code = lmdb_fail(err, rc, "put record");
        if ((code = finish_txn(txn, own, code, err)) != LEASE_OK)
            return code;
    }
    lease_rec *r = lease_insert(t, id, ttl_s);
    if (!r)
        return lease_seterr(err, LEASE_ENOMEM,
                            "lease: out of memory (table now differs from "
                            "disk: abort the batch and reload)");
    /* ttl_s <= LEASE_MAX_TTL_S: ttl_s * 1000 cannot overflow */
    if (t->leader && lease_set_deadline(t, r, now_ms + ttl_s * 1000) != LEASE_OK)
        return lease_seterr(err, LEASE_ENOMEM, "lease: out of memory");
    if (out_id)
        *out_id = id;
    if (out_ttl_s)
        *out_ttl_s = ttl_s;
    return LEASE_OK;
}

int lease_revoke(lease_table *t, mvcc_arena *arena, int64_t id, bool want_prev_kv,
                 mvcc_delete_resp *del_resp, cord_error *err)
{
    if (!lease_find(t, id))
        return lease_seterr(err, LEASE_ENOTFOUND, "%s", lease_strerror(LEASE_ENOTFOUND));
    int result_rc = LEASE_OK;
    if (t->store) {
        if (!t->loaded)
            return lease_seterr(err, LEASE_ESTORAGE, "lease: records not loaded (reload)");
        mvcc_arena local;
        mvcc_delete_resp local_resp;
        mvcc_arena_init(&local, 0);
        cord_error merr = {0};
        int mrc = mvcc_lease_revoke(t->store, arena ? arena : &local, id, want_prev_kv,
                                    del_resp ? del_resp : &local_resp, &merr);
        mvcc_arena_reset(&local);
        if (mrc == MVCC_ERESULT) {
            result_rc = LEASE_ERESULT; /* applied in full: go on */
        } else if (mrc != MVCC_OK) {
            return lease_seterr(err, LEASE_ESTORAGE, "lease: revoke keys of %lld: %s",
                                (long long)id, merr.msg[0] ? merr.msg : mvcc_strerror(mrc));
        }
        MDB_txn *txn;
        bool own;
        MDB_dbi dbi;
        int code = write_txn(t, &txn, &own, &dbi, err);
        if (code != LEASE_OK)
            return code;
        uint8_t kb[8];
        put_be64(kb, (uint64_t)id);
        MDB_val k = {8, kb};
        int rc = mdb_del(txn, dbi, &k, NULL);
        if (rc && rc != MDB_NOTFOUND)
            code = lmdb_fail(err, rc, "delete record");
        if ((code = finish_txn(txn, own, code, err)) != LEASE_OK)
            return code;
    } else if (del_resp) {
        memset(del_resp, 0, sizeof(*del_resp));
    }
    lease_remove(t, id);
    if (result_rc != LEASE_OK)
        return lease_seterr(err, result_rc, "lease: %lld revoked; prev_kvs did not fit",
                            (long long)id);
    return LEASE_OK;
}
