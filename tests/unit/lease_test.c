/*
 * lease_test.c — the lease table: grant/revoke/renew/TTL, leader expiry ordering, promote
 * extension and spreading, demote, deterministic IDs, persistence in the mvcc LMDB.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lease/lease.h"
#include "mvcc_testutil.h"

static lease_table *mem_table(void)
{
    lease_table *t = NULL;
    assert_int_equal(lease_table_new(NULL, &t, NULL), LEASE_OK);
    return t;
}

static void test_errors_and_messages(void **state)
{
    (void)state;
    const char *msg;
    assert_int_equal(lease_grpc_status(LEASE_ENOTFOUND, &msg), 5);
    assert_string_equal(msg, "etcdserver: requested lease not found");
    assert_int_equal(lease_grpc_status(LEASE_EEXISTS, &msg), 9);
    assert_string_equal(msg, "etcdserver: lease already exists");
    assert_int_equal(lease_grpc_status(LEASE_ETTLTOOLARGE, &msg), 11);
    assert_string_equal(msg, "etcdserver: too large lease TTL");
    assert_int_equal(lease_grpc_status(LEASE_ENOTLEADER, &msg), 14);
    assert_string_equal(msg, "etcdserver: not leader");
    assert_int_equal(lease_min_ttl_s(1000), 2);
    assert_int_equal(lease_min_ttl_s(5000), 8);
    assert_int_equal(lease_min_ttl_s(100), 1);
}

static void test_grant_basic(void **state)
{
    (void)state;
    lease_table *t = mem_table();
    int64_t id, ttl;
    cord_error err = {0};
    assert_int_equal(lease_grant(t, 42, 10, 1, 0, &id, &ttl, &err), LEASE_OK);
    assert_int_equal(id, 42);
    assert_int_equal(ttl, 10);
    assert_true(lease_exists(t, 42));
    assert_int_equal(lease_grant(t, 42, 10, 2, 0, NULL, NULL, &err), LEASE_EEXISTS);
    assert_string_equal(err.msg, "etcdserver: lease already exists");
    assert_int_equal(lease_grant(t, 43, LEASE_MAX_TTL_S + 1, 3, 0, NULL, NULL, &err),
                     LEASE_ETTLTOOLARGE);
    assert_string_equal(err.msg, "etcdserver: too large lease TTL");
    assert_int_equal(lease_grant(t, 43, LEASE_MAX_TTL_S, 3, 0, NULL, &ttl, NULL), LEASE_OK);
    assert_int_equal(ttl, LEASE_MAX_TTL_S);
    /* below min TTL: raised */
    assert_int_equal(lease_grant(t, 44, 1, 4, 0, NULL, &ttl, NULL), LEASE_OK);
    assert_int_equal(ttl, LEASE_DEFAULT_MIN_TTL_S);
    assert_int_equal(lease_grant(t, 45, -5, 5, 0, NULL, &ttl, NULL), LEASE_OK);
    assert_int_equal(ttl, LEASE_DEFAULT_MIN_TTL_S);
    int64_t ids[8];
    assert_int_equal(lease_list(t, ids, 8), 4);
    assert_int_equal(ids[0], 42);
    assert_int_equal(ids[3], 45);
    assert_int_equal(lease_revoke(t, NULL, 42, false, NULL, NULL), LEASE_OK);
    assert_int_equal(lease_revoke(t, NULL, 42, false, NULL, &err), LEASE_ENOTFOUND);
    assert_string_equal(err.msg, "etcdserver: requested lease not found");
    assert_int_equal(lease_count(t), 3);
    lease_table_free(t);
}

static void test_id_generation_deterministic(void **state)
{
    (void)state;
    lease_table *a = mem_table(), *b = mem_table();
    for (uint64_t idx = 1; idx <= 200; idx++) {
        int64_t ia, ib;
        assert_int_equal(lease_grant(a, 0, 5, idx, 0, &ia, NULL, NULL), LEASE_OK);
        assert_int_equal(lease_grant(b, 0, 5, idx, 999, &ib, NULL, NULL), LEASE_OK);
        assert_int_equal(ia, ib);
        assert_true(ia > 0);
    }
    /* a client-chosen ID equal to what index 1000 would give forces probing */
    int64_t want = lease_id_for_index(a, 1000);
    assert_int_equal(lease_grant(a, want, 5, 999, 0, NULL, NULL, NULL), LEASE_OK);
    int64_t got;
    assert_int_equal(lease_grant(a, 0, 5, 1000, 0, &got, NULL, NULL), LEASE_OK);
    assert_true(got != want && got > 0);
    lease_table_free(a);
    lease_table_free(b);
}

static void test_limit(void **state)
{
    (void)state;
    lease_options o = {.max_leases = 3};
    lease_table *t;
    assert_int_equal(lease_table_new(&o, &t, NULL), LEASE_OK);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(lease_grant(t, i, 5, (uint64_t)i, 0, NULL, NULL, NULL), LEASE_OK);
    assert_int_equal(lease_grant_check(t, 0, 5, NULL), LEASE_ETOOMANY);
    assert_int_equal(lease_grant(t, 4, 5, 4, 0, NULL, NULL, NULL), LEASE_ETOOMANY);
    assert_int_equal(lease_revoke(t, NULL, 2, false, NULL, NULL), LEASE_OK);
    assert_int_equal(lease_grant(t, 4, 5, 4, 0, NULL, NULL, NULL), LEASE_OK);
    lease_table_free(t);
}

static void test_follower_never_expires(void **state)
{
    (void)state;
    lease_table *t = mem_table();
    assert_int_equal(lease_grant(t, 1, 5, 1, 0, NULL, NULL, NULL), LEASE_OK);
    int64_t out[4];
    assert_int_equal(lease_expired(t, 1000000000, out, 4), 0);
    int64_t ttl;
    assert_int_equal(lease_renew(t, 1, 0, &ttl, NULL), LEASE_ENOTLEADER);
    assert_int_equal(lease_time_to_live(t, 1, 0, NULL, NULL, NULL), LEASE_ENOTLEADER);
    assert_int_equal(lease_next_expiry_ms(t, 0), INT64_MAX);
    lease_table_free(t);
}

static void test_expiry_order_and_retry(void **state)
{
    (void)state;
    lease_table *t = mem_table();
    lease_promote(t, 0, 0);
    /* grants on the leader: deadline now + ttl */
    assert_int_equal(lease_grant(t, 30, 30, 1, 0, NULL, NULL, NULL), LEASE_OK);
    assert_int_equal(lease_grant(t, 10, 10, 2, 0, NULL, NULL, NULL), LEASE_OK);
    assert_int_equal(lease_grant(t, 20, 20, 3, 0, NULL, NULL, NULL), LEASE_OK);
    assert_int_equal(lease_grant(t, 11, 10, 4, 0, NULL, NULL, NULL), LEASE_OK);
    int64_t out[8];
    assert_int_equal(lease_next_expiry_ms(t, 0), 10000);
    assert_int_equal(lease_expired(t, 9999, out, 8), 0);
    assert_int_equal(lease_expired(t, 10000, out, 1), 1); /* max respected */
    assert_int_equal(out[0], 10);
    assert_int_equal(lease_expired(t, 10000, out, 8), 1);
    assert_int_equal(out[0], 11);
    /* not re-reported before the retry interval */
    assert_int_equal(lease_expired(t, 12000, out, 8), 0);
    /* renew of an expired lease fails: its revoke is on the way */
    int64_t ttl;
    assert_int_equal(lease_renew(t, 10, 12000, &ttl, NULL), LEASE_EEXPIRED);
    /* time to live of expired lease: remaining <= 0 */
    int64_t granted, rem;
    assert_int_equal(lease_time_to_live(t, 10, 12000, &granted, &rem, NULL), LEASE_OK);
    assert_int_equal(granted, 10);
    assert_int_equal(rem, -2000);
    /* revoke 11; 10 is reported again after the retry interval (revoke lost) */
    assert_int_equal(lease_revoke(t, NULL, 11, false, NULL, NULL), LEASE_OK);
    assert_int_equal(lease_expired(t, 13000, out, 8), 1);
    assert_int_equal(out[0], 10);
    /* renew 20 before it expires: moves its deadline */
    assert_int_equal(lease_renew(t, 20, 15000, &ttl, NULL), LEASE_OK);
    assert_int_equal(ttl, 20);
    assert_int_equal(lease_time_to_live(t, 20, 15000, &granted, &rem, NULL), LEASE_OK);
    assert_int_equal(rem, 20000);
    /* 10 is due again at 16000 (retry), 30 at 30000 */
    assert_int_equal(lease_expired(t, 30000, out, 8), 2);
    assert_int_equal(out[0], 10);
    assert_int_equal(out[1], 30);
    lease_table_free(t);
}

static void test_expiry_order_many(void **state)
{
    (void)state;
    lease_table *t = mem_table();
    lease_promote(t, 0, 0);
    srand(7);
    for (int i = 1; i <= 500; i++)
        assert_int_equal(lease_grant(t, i, 2 + rand() % 100, (uint64_t)i, 0, NULL, NULL, NULL),
                         LEASE_OK);
    /* renew some many times to create stale heap items */
    for (int round = 0; round < 50; round++)
        for (int i = 1; i <= 500; i += 7)
            assert_int_equal(lease_renew(t, i, round, NULL, NULL), LEASE_OK);
    int64_t prev_deadline = -1, prev_id = 0;
    size_t seen = 0;
    for (int64_t now = 0; now <= 200000; now += 500) {
        int64_t out[1000];
        size_t n = lease_expired(t, now, out, 1000);
        for (size_t k = 0; k < n; k++) {
            int64_t granted, rem;
            assert_int_equal(lease_time_to_live(t, out[k], now, &granted, &rem, NULL), LEASE_OK);
            int64_t deadline = now + rem;
            assert_true(rem <= 0);
            assert_true(deadline > prev_deadline ||
                        (deadline == prev_deadline && out[k] > prev_id));
            prev_deadline = deadline;
            prev_id = out[k];
            assert_int_equal(lease_revoke(t, NULL, out[k], false, NULL, NULL), LEASE_OK);
            seen++;
        }
    }
    assert_int_equal(seen, 500);
    assert_int_equal(lease_count(t), 0);
    lease_table_free(t);
}

static void test_promote_extends_demote_stops(void **state)
{
    (void)state;
    lease_table *t = mem_table();
    lease_promote(t, 0, 0);
    assert_int_equal(lease_grant(t, 1, 10, 1, 0, NULL, NULL, NULL), LEASE_OK);
    /* 9 s later the leader steps down, another member (here: the same table) becomes leader
     * at 20 s with a 1 s extension: the lease gets its full TTL + extension again */
    lease_demote(t);
    int64_t out[4];
    assert_int_equal(lease_expired(t, 20000, out, 4), 0);
    assert_int_equal(lease_renew(t, 1, 20000, NULL, NULL), LEASE_ENOTLEADER);
    lease_promote(t, 20000, 1000);
    assert_true(lease_is_leader(t));
    int64_t rem;
    assert_int_equal(lease_time_to_live(t, 1, 20000, NULL, &rem, NULL), LEASE_OK);
    assert_int_equal(rem, 11000);
    assert_int_equal(lease_expired(t, 30999, out, 4), 0);
    assert_int_equal(lease_expired(t, 31000, out, 4), 1);
    assert_int_equal(out[0], 1);
    /* demote clears reported state; promote again re-extends */
    lease_demote(t);
    lease_promote(t, 40000, 0);
    assert_int_equal(lease_expired(t, 49999, out, 4), 0);
    assert_int_equal(lease_expired(t, 50000, out, 4), 1);
    lease_table_free(t);
}

static void test_promote_spreads(void **state)
{
    (void)state;
    lease_options o = {.revoke_rate = 100}; /* target 75 per second */
    lease_table *t;
    assert_int_equal(lease_table_new(&o, &t, NULL), LEASE_OK);
    for (int i = 1; i <= 300; i++)
        assert_int_equal(lease_grant(t, i, 10, (uint64_t)i, 0, NULL, NULL, NULL), LEASE_OK);
    lease_promote(t, 0, 0);
    /* all would expire at 10 s; no second-long window may hold more than ~75 */
    int64_t out[400];
    size_t first = lease_expired(t, 10000, out, 400);
    assert_int_equal(first, 75);
    for (size_t k = 0; k < first; k++)
        assert_int_equal(lease_revoke(t, NULL, out[k], false, NULL, NULL), LEASE_OK);
    size_t total = first;
    int64_t last = 0;
    for (int64_t now = 10001; now <= 20000; now++) {
        size_t n = lease_expired(t, now, out, 400);
        for (size_t k = 0; k < n; k++)
            assert_int_equal(lease_revoke(t, NULL, out[k], false, NULL, NULL), LEASE_OK);
        if (n)
            last = now;
        total += n;
        if (now == 11000)
            assert_true(total <= 150);
    }
    assert_int_equal(total, 300);
    assert_int_equal(last, 14000);
    lease_table_free(t);
}

static void test_table_model(void **state)
{
    (void)state;
    /* grants/revokes/renews against a plain array model: the hash table (backward-shift
     * deletion, growth) and the lazy expiry heap must agree with it */
    lease_table *t = mem_table();
    lease_promote(t, 0, 0);
    enum { N = 3000 };
    static bool live[N + 1];
    static int64_t deadline[N + 1];
    memset(live, 0, sizeof(live));
    uint64_t x = 12345;
    int64_t now = 0;
    for (int step = 0; step < 60000; step++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int64_t id = (int64_t)((x >> 33) % N) + 1;
        unsigned op = (unsigned)(x >> 20) % 4;
        if (op == 0) {
            int rc = lease_grant(t, id, 5, 0, now, NULL, NULL, NULL);
            assert_int_equal(rc, live[id] ? LEASE_EEXISTS : LEASE_OK);
            if (!live[id])
                deadline[id] = now + 5000;
            live[id] = true;
        } else if (op == 1) {
            assert_int_equal(lease_revoke(t, NULL, id, false, NULL, NULL),
                             live[id] ? LEASE_OK : LEASE_ENOTFOUND);
            live[id] = false;
        } else if (op == 2) {
            int rc = lease_renew(t, id, now, NULL, NULL);
            if (!live[id])
                assert_int_equal(rc, LEASE_ENOTFOUND);
            else if (deadline[id] <= now)
                assert_int_equal(rc, LEASE_EEXPIRED);
            else {
                assert_int_equal(rc, LEASE_OK);
                deadline[id] = now + 5000;
            }
        } else {
            now += 1;
            int64_t out[64];
            size_t n = lease_expired(t, now, out, 64);
            for (size_t k = 0; k < n; k++) {
                assert_true(live[out[k]]);
                assert_true(deadline[out[k]] <= now);
                assert_int_equal(lease_revoke(t, NULL, out[k], false, NULL, NULL), LEASE_OK);
                live[out[k]] = false;
            }
        }
        if (step % 1000 == 0) {
            size_t cnt = 0;
            for (int i = 1; i <= N; i++) {
                assert_int_equal(lease_exists(t, i), live[i]);
                cnt += live[i];
            }
            assert_int_equal(lease_count(t), cnt);
        }
    }
    /* everything due must come out */
    now += 100000;
    int64_t out[N];
    size_t n = lease_expired(t, now, out, N);
    assert_int_equal(n, lease_count(t));
    lease_table_free(t);
}

/* ---------------------------------------------------------------------------------------- */
/* Persistence                                                                                */

static mvcc_bytes B(const char *s)
{
    return mvt_b(s);
}

static void put_with_lease(mvcc_store *s, const char *k, int64_t lease)
{
    mvcc_arena a;
    mvcc_arena_init(&a, 0);
    mvcc_put_req req = {.key = B(k), .value = B("v"), .lease = lease};
    mvcc_put_resp resp;
    assert_int_equal(mvcc_put(s, &a, &req, &resp, NULL), MVCC_OK);
    mvcc_arena_reset(&a);
}

/* A lease table on a store in `dir`, the store asking the table whether a lease exists; the
 * records are loaded. */
static void open_with_leases(const char *dir, lease_table **t, mvcc_store **s)
{
    assert_int_equal(lease_table_new(NULL, t, NULL), LEASE_OK);
    mvcc_options mo = {.lease_exists = lease_exists_cb, .lease_ctx = *t};
    assert_int_equal(mvcc_open(dir, &mo, s, NULL), MVCC_OK);
    cord_error err = {0};
    assert_int_equal(lease_load(*t, *s, &err), LEASE_OK);
}

static void test_persist_and_reload(void **state)
{
    (void)state;
    char *dir = mvt_tmpdir("lease");
    lease_table *t;
    mvcc_store *s;
    open_with_leases(dir, &t, &s);
    cord_error err = {0};
    assert_int_equal(lease_count(t), 0);

    /* apply in a batch: grant two leases, attach keys */
    assert_int_equal(mvcc_batch_begin(s, NULL), MVCC_OK);
    int64_t id1, id2;
    assert_int_equal(lease_grant(t, 0, 30, 5, 0, &id1, NULL, &err), LEASE_OK);
    assert_int_equal(lease_grant(t, 77, 60, 6, 0, &id2, NULL, &err), LEASE_OK);
    assert_int_equal(mvcc_batch_commit(s, 6, 1, NULL), MVCC_OK);
    put_with_lease(s, "a", id1);
    put_with_lease(s, "b", id1);
    put_with_lease(s, "c", id2);
    /* unknown lease rejected by mvcc through the callback */
    {
        mvcc_arena a;
        mvcc_arena_init(&a, 0);
        mvcc_put_req req = {.key = B("x"), .value = B("v"), .lease = 12345};
        mvcc_put_resp resp;
        assert_int_equal(mvcc_put(s, &a, &req, &resp, NULL), MVCC_ELEASENOTFOUND);
        mvcc_arena_reset(&a);
    }
    assert_int_equal(mvt_db_entries(s, "lease"), 2);

    /* an aborted batch: memory changed, disk did not; reload restores */
    assert_int_equal(mvcc_batch_begin(s, NULL), MVCC_OK);
    assert_int_equal(lease_grant(t, 99, 5, 7, 0, NULL, NULL, NULL), LEASE_OK);
    assert_true(lease_exists(t, 99));
    mvcc_batch_abort(s);
    assert_int_equal(lease_reload(t, 0, &err), LEASE_OK);
    assert_false(lease_exists(t, 99));
    assert_int_equal(lease_count(t), 2);

    /* revoke id1 in a batch: keys a, b deleted in one revision */
    assert_int_equal(mvcc_batch_begin(s, NULL), MVCC_OK);
    mvcc_arena a;
    mvcc_arena_init(&a, 0);
    mvcc_delete_resp dr;
    assert_int_equal(lease_revoke(t, &a, id1, true, &dr, &err), LEASE_OK);
    assert_int_equal(dr.deleted, 2);
    assert_int_equal(dr.prev_kvs_len, 2);
    assert_true(mvt_eq(dr.prev_kvs[0].key, "a"));
    assert_int_equal(mvcc_batch_commit(s, 8, 1, NULL), MVCC_OK);
    mvcc_arena_reset(&a);
    assert_false(lease_exists(t, id1));
    assert_int_equal(mvt_db_entries(s, "lease"), 1);

    /* close and reopen: id2 comes back with its TTL */
    mvcc_close(s);
    lease_table_free(t);
    open_with_leases(dir, &t, &s);
    assert_int_equal(lease_count(t), 1);
    int64_t ttl;
    assert_int_equal(lease_ttl(t, id2, &ttl), LEASE_OK);
    assert_int_equal(ttl, 60);
    mvcc_bytes *keys;
    size_t nkeys;
    bool more;
    mvcc_arena_init(&a, 0);
    assert_int_equal(mvcc_lease_keys(s, &a, id2, 0, &keys, &nkeys, &more, NULL), MVCC_OK);
    assert_int_equal(nkeys, 1);
    assert_true(mvt_eq(keys[0], "c"));
    mvcc_arena_reset(&a);
    /* the revoked lease's keys are gone */
    mvcc_range_req rq = {.key = B("a"), .range_end = B("c")};
    mvcc_range_resp rr;
    assert_int_equal(mvcc_range(s, &a, &rq, &rr, NULL), MVCC_OK);
    assert_int_equal(rr.kvs_len, 0);
    mvcc_arena_reset(&a);

    /* reload as leader keeps deadlines of known leases, gives new ones now + TTL */
    lease_promote(t, 1000, 0);
    assert_int_equal(lease_renew(t, id2, 5000, NULL, NULL), LEASE_OK);
    assert_int_equal(lease_grant(t, 555, 10, 9, 6000, NULL, NULL, NULL), LEASE_OK); /* own txn */
    assert_int_equal(lease_reload(t, 7000, &err), LEASE_OK);
    int64_t rem;
    assert_int_equal(lease_time_to_live(t, id2, 7000, NULL, &rem, NULL), LEASE_OK);
    assert_int_equal(rem, 58000);
    assert_int_equal(lease_time_to_live(t, 555, 7000, NULL, &rem, NULL), LEASE_OK);
    assert_int_equal(rem, 9000);

    /* load refuses while a batch is open */
    assert_int_equal(mvcc_batch_begin(s, NULL), MVCC_OK);
    assert_int_equal(lease_reload(t, 0, &err), LEASE_EBUSY);
    mvcc_batch_abort(s);

    mvcc_close(s);
    lease_table_free(t);
    mvt_rmrf(dir);
}

/* The store reopens its environment when it defragments: lease records are still written to
 * (and read from) their database after it, in a batch and in a transaction of their own. */
static void test_writes_after_defrag(void **state)
{
    (void)state;
    char *dir = mvt_tmpdir("lease-defrag");
    lease_table *t;
    mvcc_store *s;
    open_with_leases(dir, &t, &s);
    cord_error err = {0};
    assert_int_equal(lease_grant(t, 11, 30, 1, 0, NULL, NULL, &err), LEASE_OK);
    put_with_lease(s, "a", 11);

    assert_int_equal(mvcc_defrag(s, &err), MVCC_OK);
    assert_int_equal(mvcc_batch_begin(s, NULL), MVCC_OK);
    assert_int_equal(lease_grant(t, 12, 40, 2, 0, NULL, NULL, &err), LEASE_OK);
    assert_int_equal(mvcc_batch_commit(s, 2, 1, NULL), MVCC_OK);
    assert_int_equal(mvcc_defrag(s, &err), MVCC_OK);
    assert_int_equal(lease_grant(t, 13, 50, 3, 0, NULL, NULL, &err), LEASE_OK); /* own txn */
    assert_int_equal(mvcc_defrag(s, &err), MVCC_OK);
    mvcc_arena a;
    mvcc_arena_init(&a, 0);
    mvcc_delete_resp dr;
    assert_int_equal(lease_revoke(t, &a, 11, false, &dr, &err), LEASE_OK);
    assert_int_equal(dr.deleted, 1);
    mvcc_arena_reset(&a);
    assert_int_equal(mvt_db_entries(s, "lease"), 2);

    /* what is on disk is what the table says */
    assert_int_equal(lease_reload(t, 0, &err), LEASE_OK);
    assert_int_equal(lease_count(t), 2);
    assert_false(lease_exists(t, 11));
    int64_t ttl;
    assert_int_equal(lease_ttl(t, 12, &ttl), LEASE_OK);
    assert_int_equal(ttl, 40);
    assert_int_equal(lease_ttl(t, 13, &ttl), LEASE_OK);
    assert_int_equal(ttl, 50);

    mvcc_close(s);
    lease_table_free(t);
    mvt_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_and_messages),
        cmocka_unit_test(test_grant_basic),
        cmocka_unit_test(test_id_generation_deterministic),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_follower_never_expires),
        cmocka_unit_test(test_expiry_order_and_retry),
        cmocka_unit_test(test_expiry_order_many),
        cmocka_unit_test(test_promote_extends_demote_stops),
        cmocka_unit_test(test_promote_spreads),
        cmocka_unit_test(test_table_model),
        cmocka_unit_test(test_persist_and_reload),
        cmocka_unit_test(test_writes_after_defrag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
