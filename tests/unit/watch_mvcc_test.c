/*
 * watch_mvcc_test.c — the watch hub wired to the real mvcc store the way a member wires it:
 * history = mvcc_events(), notify = the events of each committed revision (read back with
 * mvcc_events), leases granted and revoked through the lease table in apply batches, and
 * compactions. Random watchers and backpressure; every watcher must see exactly the
 * notified events that match it, in order (a compacted one: a prefix, then canceled).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lease/lease.h"
#include "mvcc_testutil.h"
#include "watch_testutil.h"

/* ---- the member's adapters --------------------------------------------------------------- */

typedef struct hist {
    mvcc_store *store;
    mvcc_arena arena;
    watch_event *ev;
    watch_kv *prev;
    size_t cap;
} hist;

static watch_kv to_wkv(const mvcc_kv *k)
{
    return (watch_kv){.key = {k->key.data, k->key.len},
                      .create_revision = k->create_revision,
                      .mod_revision = k->mod_revision,
                      .version = k->version,
                      .value = {k->value.data, k->value.len},
                      .lease = k->lease};
}

static int read_events(hist *h, const watch_history_req *req, watch_history_resp *resp)
{
    mvcc_arena_reset(&h->arena);
    mvcc_events_req mr = {.key = {req->key.data, req->key.len},
                          .range_end = {req->range_end.data, req->range_end.len},
                          .start_revision = req->start_revision,
                          .start_sub = req->start_sub,
                          .end_revision = req->end_revision,
                          .prev_kv = req->prev_kv,
                          .max_events = req->max_events};
    mvcc_events_resp r;
    int rc = mvcc_events(h->store, &h->arena, &mr, &r, NULL);
    memset(resp, 0, sizeof(*resp));
    if (rc == MVCC_ECOMPACTED) {
        resp->compact_revision = r.compact_revision;
        return WATCH_ECOMPACTED;
    }
    if (rc != MVCC_OK)
        return WATCH_EHISTORY;
    if (r.events_len > h->cap) {
        h->cap = r.events_len * 2;
        h->ev = realloc(h->ev, h->cap * sizeof(*h->ev));
        h->prev = realloc(h->prev, h->cap * sizeof(*h->prev));
        assert_non_null(h->ev);
        assert_non_null(h->prev);
    }
    for (size_t i = 0; i < r.events_len; i++) {
        const mvcc_event *e = &r.events[i];
        h->ev[i] =
            (watch_event){.type = e->type == MVCC_EVENT_PUT ? WATCH_EVENT_PUT : WATCH_EVENT_DELETE,
                          .kv = to_wkv(&e->kv)};
        if (e->prev_kv) {
            h->prev[i] = to_wkv(e->prev_kv);
            h->ev[i].prev_kv = &h->prev[i];
        }
    }
    resp->events = h->ev;
    resp->events_len = r.events_len;
    resp->next_revision = r.next_revision;
    resp->next_sub = r.next_sub;
    resp->complete = r.complete;
    return WATCH_OK;
}

static int history_cb(void *ctx, const watch_history_req *req, watch_history_resp *resp)
{
    return read_events(ctx, req, resp);
}

/* ---- ground truth: every notified event ----------------------------------------------- */

typedef struct truth_ev {
    int64_t rev;
    int type;
    char key[WT_MAX_STR], value[WT_MAX_STR], prev_value[WT_MAX_STR];
    bool has_prev;
} truth_ev;

static truth_ev *truth;
static size_t ntruth, truth_cap;

typedef struct member {
    mvcc_store *store;
    lease_table *leases;
    watch_hub *hub;
    hist h;   /* for the hub */
    hist own; /* for notify */
    uint64_t index;
} member;

static void copy_b(char *dst, watch_bytes b)
{
    size_t n = b.len < WT_MAX_STR - 1 ? b.len : WT_MAX_STR - 1;
    if (n)
        memcpy(dst, b.data, n);
    dst[n] = 0;
}

/* after a committed batch: notify every new revision */
static void notify_new(member *m, int64_t from_rev)
{
    mvcc_status st;
    assert_int_equal(mvcc_status_get(m->store, &st, NULL), MVCC_OK);
    static const uint8_t zero = 0;
    for (int64_t rev = from_rev + 1; rev <= st.current_revision; rev++) {
        watch_history_req req = {.key = {&zero, 1},
                                 .range_end = {&zero, 1},
                                 .start_revision = rev,
                                 .end_revision = rev,
                                 .prev_kv = true,
                                 .max_events = 100000};
        watch_history_resp resp;
        assert_int_equal(read_events(&m->own, &req, &resp), WATCH_OK);
        assert_true(resp.complete);
        for (size_t i = 0; i < resp.events_len; i++) {
            if (ntruth == truth_cap) {
                truth_cap = truth_cap ? truth_cap * 2 : 1024;
                truth = realloc(truth, truth_cap * sizeof(*truth));
            }
            truth_ev *t = &truth[ntruth++];
            memset(t, 0, sizeof(*t));
            t->rev = rev;
            t->type = resp.events[i].type;
            copy_b(t->key, resp.events[i].kv.key);
            copy_b(t->value, resp.events[i].kv.value);
            if (resp.events[i].prev_kv) {
                t->has_prev = true;
                copy_b(t->prev_value, resp.events[i].prev_kv->value);
            }
        }
        assert_int_equal(watch_hub_notify(m->hub, resp.events, resp.events_len, rev), WATCH_OK);
    }
}

/* ---- the test ------------------------------------------------------------------------ */

#define NSTREAMS 3
#define MAXW     200
static const char *keys[] = {"a", "ab", "b", "ba", "c", "k/1", "k/2", "z"};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

typedef struct model_w {
    int stream;
    int64_t id;
    char key[8], end[8];
    size_t key_len, end_len;
    int64_t eff_start;
    bool prev_kv, canceled;
} model_w;

static uint64_t rng;
static unsigned rnd(unsigned n)
{
    return (unsigned)(wt_rand(&rng) % n);
}

static void check(const wt_sink *sink, const model_w *w, int64_t compact_rev)
{
    size_t got = 0, want_i = 0;
    bool canceled = false;
    int64_t compact = 0;
    for (size_t i = 0; i < sink->n; i++) {
        const wt_rec *r = &sink->recs[i];
        if (r->watch_id != w->id)
            continue;
        assert_false(canceled);
        if (r->kind == WATCH_RESP_CANCELED) {
            canceled = true;
            compact = r->compact;
            continue;
        }
        if (r->kind != WATCH_RESP_EVENTS)
            continue;
        for (size_t j = 0; j < r->n; j++) {
            const wt_rev *g = &r->ev[j];
            /* next expected truth event */
            while (want_i < ntruth &&
                   (truth[want_i].rev < w->eff_start ||
                    !wt_in_range(truth[want_i].key, (const uint8_t *)w->key, w->key_len,
                                 (const uint8_t *)w->end, w->end_len)))
                want_i++;
            assert_true(want_i < ntruth);
            const truth_ev *t = &truth[want_i++];
            if (g->rev != t->rev || strcmp(g->key, t->key) || g->type != t->type ||
                strcmp(g->value, t->value))
                fail_msg("watcher %lld: got %s@%lld want %s@%lld", (long long)w->id, g->key,
                         (long long)g->rev, t->key, (long long)t->rev);
            if (w->prev_kv && t->has_prev && !(t->rev <= compact_rev && !g->has_prev)) {
                assert_true(g->has_prev);
                assert_string_equal(g->prev_value, t->prev_value);
            }
            if (!w->prev_kv)
                assert_false(g->has_prev);
            got++;
        }
    }
    if (w->canceled || (canceled && compact > 0))
        return;
    assert_false(canceled);
    while (want_i < ntruth && (truth[want_i].rev < w->eff_start ||
                               !wt_in_range(truth[want_i].key, (const uint8_t *)w->key, w->key_len,
                                            (const uint8_t *)w->end, w->end_len)))
        want_i++;
    if (want_i != ntruth)
        fail_msg("watcher %lld (start %lld) missed events from %lld", (long long)w->id,
                 (long long)w->eff_start, (long long)truth[want_i].rev);
}

static void run(uint64_t seed, int rounds)
{
    rng = seed;
    ntruth = 0;
    char *dir = mvt_tmpdir("watchmvcc");
    member m = {0};
    assert_int_equal(lease_table_new(NULL, &m.leases, NULL), LEASE_OK);
    mvcc_options mo = {.lease_exists = lease_exists_cb, .lease_ctx = m.leases, .no_sync = true};
    assert_int_equal(mvcc_open(dir, &mo, &m.store, NULL), MVCC_OK);
    assert_int_equal(lease_load(m.leases, m.store, NULL), LEASE_OK);
    m.h.store = m.own.store = m.store;
    mvcc_arena_init(&m.h.arena, 0);
    mvcc_arena_init(&m.own.arena, 0);
    watch_hub_options ho = {.history = history_cb,
                            .history_ctx = &m.h,
                            .current_revision = 1,
                            .chunk_events = 1 + rnd(4),
                            .pending_limit_bytes = 200 + rnd(1000)};
    assert_int_equal(watch_hub_new(&ho, &m.hub, NULL), WATCH_OK);
    wt_sink sinks[NSTREAMS];
    watch_stream *st[NSTREAMS];
    for (int i = 0; i < NSTREAMS; i++) {
        wt_sink_init(&sinks[i]);
        sinks[i].rng = seed + (uint64_t)i;
        sinks[i].full_pct = rnd(50);
        assert_int_equal(watch_stream_open(m.hub, wt_sink_fn, &sinks[i], &st[i], NULL), WATCH_OK);
    }
    static model_w ws[MAXW];
    size_t nw = 0;
    int64_t leases[16];
    size_t nleases = 0;
    mvcc_arena a;
    mvcc_arena_init(&a, 0);
    for (int round = 0; round < rounds; round++) {
        unsigned act = rnd(100);
        if (act < 45) { /* one apply batch of 1..3 entries */
            mvcc_status s0;
            assert_int_equal(mvcc_status_get(m.store, &s0, NULL), MVCC_OK);
            assert_int_equal(mvcc_batch_begin(m.store, NULL), MVCC_OK);
            unsigned entries = 1 + rnd(3);
            for (unsigned e = 0; e < entries; e++) {
                m.index++;
                unsigned op = rnd(10);
                const char *k = keys[rnd(NKEYS)];
                if (op < 5) {
                    char v[32];
                    snprintf(v, sizeof(v), "v%d.%u", round, e);
                    mvcc_put_req req = {.key = mvt_b(k), .value = mvt_b(v)};
                    if (nleases && rnd(3) == 0)
                        req.lease = leases[rnd((unsigned)nleases)];
                    mvcc_put_resp resp;
                    assert_int_equal(mvcc_put(m.store, &a, &req, &resp, NULL), MVCC_OK);
                } else if (op < 7) {
                    mvcc_delete_req req = {.key = mvt_b(k)};
                    if (rnd(2))
                        req.range_end = mvt_b("c");
                    mvcc_delete_resp resp;
                    assert_int_equal(mvcc_delete_range(m.store, &a, &req, &resp, NULL), MVCC_OK);
                } else if (op < 8 && nleases < 16) {
                    int64_t id;
                    assert_int_equal(lease_grant(m.leases, 0, 10, m.index, 0, &id, NULL, NULL),
                                     LEASE_OK);
                    leases[nleases++] = id;
                } else if (op < 9 && nleases > 0) {
                    size_t i = rnd((unsigned)nleases);
                    mvcc_delete_resp resp;
                    assert_int_equal(lease_revoke(m.leases, &a, leases[i], true, &resp, NULL),
                                     LEASE_OK);
                    leases[i] = leases[--nleases];
                }
                mvcc_arena_reset(&a);
            }
            assert_int_equal(mvcc_batch_commit(m.store, m.index, 1, NULL), MVCC_OK);
            notify_new(&m, s0.current_revision);
        } else if (act < 60 && nw < MAXW) {
            model_w *w = &ws[nw];
            memset(w, 0, sizeof(*w));
            w->stream = (int)rnd(NSTREAMS);
            const char *k1 = keys[rnd(NKEYS)];
            snprintf(w->key, sizeof(w->key), "%s", k1);
            w->key_len = strlen(k1);
            unsigned kind = rnd(4);
            if (kind == 1) {
                snprintf(w->end, sizeof(w->end), "%s", "k0");
                if (strcmp(k1, "k0") >= 0)
                    snprintf(w->end, sizeof(w->end), "%s", "zz");
                w->end_len = strlen(w->end);
            } else if (kind == 2) {
                w->end[0] = 0;
                w->end_len = 1;
            }
            int64_t cur = watch_hub_revision(m.hub);
            int64_t start = rnd(3) == 0 ? 0 : 1 + (int64_t)rnd((unsigned)cur + 2);
            w->eff_start = start ? start : cur + 1;
            w->prev_kv = rnd(2);
            watch_create_req r = {.key = {(const uint8_t *)w->key, w->key_len},
                                  .range_end = {(const uint8_t *)w->end, w->end_len},
                                  .start_revision = start,
                                  .prev_kv = w->prev_kv};
            assert_int_equal(watch_create(st[w->stream], &r, &w->id, NULL), WATCH_OK);
            nw++;
        } else if (act < 63 && nw > 0) {
            model_w *w = &ws[rnd((unsigned)nw)];
            if (!w->canceled)
                w->canceled = watch_cancel(st[w->stream], w->id, NULL) == WATCH_OK;
        } else if (act < 80) {
            watch_hub_sync(m.hub, 1 + rnd(8), NULL);
        } else if (act < 92) {
            int i = (int)rnd(NSTREAMS);
            wt_sink_drain(&sinks[i], st[i]);
        } else if (act < 95) {
            int i = (int)rnd(NSTREAMS);
            sinks[i].full = !sinks[i].full;
        } else if (act < 97) {
            mvcc_status s0;
            assert_int_equal(mvcc_status_get(m.store, &s0, NULL), MVCC_OK);
            int64_t c = s0.compact_revision + 1 + (int64_t)rnd(3);
            if (c < s0.current_revision) {
                assert_int_equal(mvcc_compact(m.store, c, NULL), MVCC_OK);
                if (rnd(2))
                    watch_hub_set_compacted(m.hub, c);
                bool done = false;
                while (!done)
                    assert_int_equal(mvcc_compact_step(m.store, &done, NULL), MVCC_OK);
            }
        }
    }
    for (int i = 0; i < NSTREAMS; i++) {
        sinks[i].full = false;
        sinks[i].full_pct = 0;
    }
    for (int it = 0;; it++) {
        assert_true(it < 100000);
        for (int i = 0; i < NSTREAMS; i++)
            wt_sink_drain(&sinks[i], st[i]);
        watch_hub_sync(m.hub, 0, NULL);
        watch_hub_stats hs;
        watch_hub_stats_get(m.hub, &hs);
        if (hs.unsynced == 0)
            break;
    }
    mvcc_status s1;
    assert_int_equal(mvcc_status_get(m.store, &s1, NULL), MVCC_OK);
    watch_hub_stats hs;
    watch_hub_stats_get(m.hub, &hs);
    if (getenv("WATCH_VERBOSE"))
        printf("seed %llu: rev %lld compact %lld, %zu events, %zu watchers, delivered %llu, "
               "history reads %llu\n",
               (unsigned long long)seed, (long long)s1.current_revision,
               (long long)s1.compact_revision, ntruth, nw, (unsigned long long)hs.events_delivered,
               (unsigned long long)hs.history_reads);
    for (size_t i = 0; i < nw; i++)
        check(&sinks[ws[i].stream], &ws[i], s1.compact_revision);
    watch_hub_free(m.hub);
    for (int i = 0; i < NSTREAMS; i++)
        wt_sink_free(&sinks[i]);
    mvcc_arena_reset(&a);
    mvcc_arena_reset(&m.h.arena);
    mvcc_arena_reset(&m.own.arena);
    free(m.h.ev);
    free(m.h.prev);
    free(m.own.ev);
    free(m.own.prev);
    mvcc_close(m.store);
    lease_table_free(m.leases);
    mvt_rmrf(dir);
}

static void test_watch_on_mvcc(void **state)
{
    (void)state;
    const char *s = getenv("WATCH_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 10) : 7;
    for (uint64_t k = 0; k < 20; k++)
        run(seed * 7919 + k, 1000);
    free(truth);
    truth = NULL;
    truth_cap = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watch_on_mvcc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
