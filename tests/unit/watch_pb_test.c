/*
 * watch_pb_test.c — watch_pb_events packs what protobuf-c packs, byte for byte, through its
 * cache of packed events (hits, evictions, events too big to cache) and its header cache.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "etcdserverpb/rpc.pb-c.h"
#include "mvccpb/kv.pb-c.h"
#include "server/watch_pb.h"

static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* ---- the reference: a WatchResponse built and packed with protobuf-c ---- */

static void ref_kv(Mvccpb__KeyValue *out, const watch_kv *kv)
{
    Mvccpb__KeyValue init = MVCCPB__KEY_VALUE__INIT;
    *out = init;
    out->key.data = (uint8_t *)kv->key.data;
    out->key.len = kv->key.len;
    out->create_revision = kv->create_revision;
    out->mod_revision = kv->mod_revision;
    out->version = kv->version;
    out->value.data = (uint8_t *)kv->value.data;
    out->value.len = kv->value.len;
    out->lease = kv->lease;
}

static uint8_t *ref_pack(uint64_t cluster, uint64_t member, uint64_t term, int64_t revision,
                         int64_t watch_id, bool fragment, const watch_event *e, size_t n,
                         size_t *len)
{
    Mvccpb__Event ev[8];
    Mvccpb__Event *evp[8];
    Mvccpb__KeyValue kvs[16];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        Mvccpb__Event init = MVCCPB__EVENT__INIT;
        ev[i] = init;
        ev[i].type = e[i].type == WATCH_EVENT_PUT ? MVCCPB__EVENT__EVENT_TYPE__PUT
                                                  : MVCCPB__EVENT__EVENT_TYPE__DELETE;
        ref_kv(&kvs[2 * i], &e[i].kv);
        ev[i].kv = &kvs[2 * i];
        if (e[i].prev_kv) {
            ref_kv(&kvs[2 * i + 1], e[i].prev_kv);
            ev[i].prev_kv = &kvs[2 * i + 1];
        }
        evp[i] = &ev[i];
    }
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    h.cluster_id = cluster;
    h.member_id = member;
    h.revision = revision;
    h.raft_term = term;
    Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    r.header = &h;
    r.watch_id = watch_id;
    r.fragment = fragment;
    r.events = evp;
    r.n_events = n;
    *len = etcdserverpb__watch_response__get_packed_size(&r);
    uint8_t *b = malloc(*len + 1);
    etcdserverpb__watch_response__pack(&r, b);
    return b;
}

/* ---- events: everything but the key is a function of (key, revision), as in a store ---- */

#define NKEYS 12
static uint8_t *keys[NKEYS];
static size_t key_lens[NKEYS];
static uint8_t bigval[100 * 1024];

typedef struct evbuf {
    watch_event e;
    watch_kv prev;
    uint8_t val[32];
    uint8_t pval[32];
} evbuf;

static void make_event(evbuf *b, int k, int64_t rev, bool del, bool with_prev)
{
    memset(b, 0, sizeof(*b));
    b->e.type = del ? WATCH_EVENT_DELETE : WATCH_EVENT_PUT;
    b->e.kv.key = (watch_bytes){keys[k], key_lens[k]};
    b->e.kv.mod_revision = rev;
    if (!del) {
        b->e.kv.create_revision = rev - k;
        b->e.kv.version = 1 + k;
        b->e.kv.lease = k % 3 == 0 ? 0 : 7 + k;
        if (k == NKEYS - 1) {
            b->e.kv.value = (watch_bytes){bigval, sizeof(bigval)}; /* past the cache limit */
        } else {
            int l = snprintf((char *)b->val, sizeof(b->val), "v%d.%lld", k, (long long)rev);
            b->e.kv.value = (watch_bytes){b->val, (size_t)(k % 4 == 1 ? 0 : l)};
        }
    }
    if (with_prev) {
        b->prev.key = b->e.kv.key;
        b->prev.mod_revision = rev - 1;
        b->prev.create_revision = rev - 1 - k;
        b->prev.version = k;
        int l = snprintf((char *)b->pval, sizeof(b->pval), "p%d.%lld", k, (long long)rev);
        b->prev.value = (watch_bytes){b->pval, (size_t)l};
        b->e.prev_kv = &b->prev;
    }
}

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < NKEYS; i++) {
        key_lens[i] = i == 0 ? 0 : (i == 5 ? 3000 : (size_t)(1 + i * 7));
        keys[i] = malloc(key_lens[i] + 1);
        for (size_t j = 0; j < key_lens[i]; j++)
            keys[i][j] = (uint8_t)('a' + (i + j) % 26);
    }
    memset(bigval, 'z', sizeof(bigval));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < NKEYS; i++)
        free(keys[i]);
    return 0;
}

static void check_one(watch_pb *p, uint64_t cluster, uint64_t member, uint64_t term, int64_t rev,
                      int64_t wid, bool frag, const watch_event *ev, size_t n)
{
    size_t want_len = 0, got_len = 0;
    uint8_t *want = ref_pack(cluster, member, term, rev, wid, frag, ev, n, &want_len);
    const uint8_t *got = watch_pb_events(p, cluster, member, term, rev, wid, frag, ev, n, &got_len);
    assert_non_null(got);
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
    free(want);
}

static void test_same_bytes_as_protobuf_c(void **state)
{
    (void)state;
    watch_pb p;
    watch_pb_init(&p);
    static const int64_t ids[] = {0, 1, 2, 127, 128, 300000, INT64_MAX, -1};
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(rnd() % 5);
        evbuf b[8];
        watch_event ev[8];
        int64_t rev = 2 + (int64_t)(rnd() % 40); /* few revisions: the cache gets hits */
        bool with_prev = rnd() % 3 == 0;
        for (size_t i = 0; i < n; i++) {
            int k = (int)(rnd() % NKEYS);
            bool del = rnd() % 4 == 0;
            make_event(&b[i], k, rev, del, with_prev);
            ev[i] = b[i].e;
        }
        uint64_t term = 1 + rnd() % 3;
        int64_t wid = ids[rnd() % (sizeof ids / sizeof ids[0])];
        bool frag = rnd() % 7 == 0;
        uint64_t member = rnd() % 5 == 0 ? 0 : 0x8e9e05c52164694dull;
        check_one(&p, 0xcdf818194e3a8c32ull, member, term, rev, wid, frag, ev, n);
    }
    /* every path ran: cached events used again, and others packed anew */
    assert_true(p.hits > 1000);
    assert_true(p.misses > 1000);
    watch_pb_free(&p);
}

static void test_a_hundred_watchers_pack_an_event_once(void **state)
{
    (void)state;
    watch_pb p;
    watch_pb_init(&p);
    evbuf b;
    make_event(&b, 3, 1000, false, false);
    for (int64_t w = 0; w < 100; w++)
        check_one(&p, 1, 2, 3, 1000, w, false, &b.e, 1);
    assert_int_equal(p.misses, 1);
    assert_int_equal(p.hits, 99);
    /* with prev_kv it is another event; a delete at another revision too */
    evbuf c;
    make_event(&c, 3, 1000, false, true);
    check_one(&p, 1, 2, 3, 1000, 5, false, &c.e, 1);
    make_event(&c, 3, 1001, true, false);
    check_one(&p, 1, 2, 3, 1001, 5, false, &c.e, 1);
    assert_int_equal(p.misses, 3);
    /* a value past WATCH_PB_MAX_EVENT_SIZE is packed every time, never cached */
    make_event(&c, NKEYS - 1, 1002, false, false);
    check_one(&p, 1, 2, 3, 1002, 5, false, &c.e, 1);
    check_one(&p, 1, 2, 3, 1002, 6, false, &c.e, 1);
    assert_int_equal(p.misses, 5);
    watch_pb_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes_as_protobuf_c),
        cmocka_unit_test(test_a_hundred_watchers_pack_an_event_once),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
