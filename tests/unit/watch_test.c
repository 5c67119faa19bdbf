/*
 * watch_test.c — the watch hub against a fake history: key/range/prefix/from-key watches,
 * filters, prev_kv, catch-up from a past revision (chunked, resuming inside a revision),
 * compaction, created-before-events ordering, victims under backpressure, cancel, progress,
 * watch ids, fragmenting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "watch_testutil.h"

typedef struct fx {
    wt_log log;
    watch_hub *hub;
    wt_sink sink;
    watch_stream *st;
} fx;

static fx *fx_new(size_t chunk, size_t pending_limit)
{
    fx *f = calloc(1, sizeof(*f));
    wt_log_init(&f->log);
    wt_sink_init(&f->sink);
    watch_hub_options o = {.history = wt_history,
                           .history_ctx = &f->log,
                           .current_revision = 1,
                           .chunk_events = chunk,
                           .pending_limit_bytes = pending_limit};
    assert_int_equal(watch_hub_new(&o, &f->hub, NULL), WATCH_OK);
    assert_int_equal(watch_stream_open(f->hub, wt_sink_fn, &f->sink, &f->st, NULL), WATCH_OK);
    return f;
}

static void fx_free(fx *f)
{
    watch_hub_free(f->hub);
    wt_sink_free(&f->sink);
    wt_log_free(&f->log);
    free(f);
}

static void put1(fx *f, const char *k, const char *v)
{
    wt_begin(&f->log);
    wt_put(&f->log, k, v);
    wt_commit(&f->log, f->hub);
}

static void del1(fx *f, const char *k)
{
    wt_begin(&f->log);
    wt_del(&f->log, k);
    wt_commit(&f->log, f->hub);
}

static int64_t create(fx *f, const char *key, const char *end, int64_t start, bool prev_kv,
                      unsigned filters)
{
    watch_create_req r = {
        .key = wt_b(key), .start_revision = start, .prev_kv = prev_kv, .filters = filters};
    if (end)
        r.range_end = (watch_bytes){(const uint8_t *)end, end[0] ? strlen(end) : 1};
    int64_t id = -5;
    assert_int_equal(watch_create(f->st, &r, &id, NULL), WATCH_OK);
    return id;
}

/* "k=v@rev" / "-k@rev" strings of a watcher's events, joined by spaces */
static const char *events_of(const wt_sink *s, int64_t id)
{
    static char buf[8192];
    size_t off = 0;
    buf[0] = 0;
    for (size_t i = 0; i < s->n; i++) {
        const wt_rec *r = &s->recs[i];
        if (r->kind != WATCH_RESP_EVENTS || r->watch_id != id)
            continue;
        for (size_t j = 0; j < r->n; j++) {
            const wt_rev *e = &r->ev[j];
            if (e->type == WATCH_EVENT_PUT)
                off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s=%s@%lld",
                                        off ? " " : "", e->key, e->value, (long long)e->rev);
            else
                off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s-%s@%lld", off ? " " : "",
                                        e->key, (long long)e->rev);
            if (e->has_prev)
                off += (size_t)snprintf(buf + off, sizeof(buf) - off, "(%s)", e->prev_value);
        }
    }
    return buf;
}

static void sync_all(fx *f)
{
    bool more = true;
    for (int i = 0; i < 1000 && more; i++)
        watch_hub_sync(f->hub, 0, &more);
    assert_false(more);
}

static void test_key_range_prefix_fromkey(void **state)
{
    (void)state;
    fx *f = fx_new(0, 0);
    int64_t w_key = create(f, "foo", NULL, 0, false, 0);
    int64_t w_range = create(f, "a", "c", 0, false, 0);
    int64_t w_prefix = create(f, "p/", "p0", 0, false, 0);
    int64_t w_from = create(f, "m", "", 0, false, 0); /* "" here means "\0" */
    int64_t w_all = create(f, "", "", 0, false, 0);
    assert_int_equal(w_key, 0);
    assert_int_equal(w_all, 4);
    put1(f, "foo", "1");
    put1(f, "a", "2");
    put1(f, "bz", "3");
    put1(f, "c", "4");
    put1(f, "p/x", "5");
    put1(f, "p", "6");
    put1(f, "zz", "7");
    del1(f, "foo");
    assert_string_equal(events_of(&f->sink, w_key), "foo=1@2 -foo@9");
    assert_string_equal(events_of(&f->sink, w_range), "a=2@3 bz=3@4");
    assert_string_equal(events_of(&f->sink, w_prefix), "p/x=5@6");
    assert_string_equal(events_of(&f->sink, w_from), "p/x=5@6 p=6@7 zz=7@8");
    assert_string_equal(events_of(&f->sink, w_all),
                        "foo=1@2 a=2@3 bz=3@4 c=4@5 p/x=5@6 p=6@7 zz=7@8 -foo@9");
    /* an events response's header revision is the event's revision */
    assert_int_equal(f->sink.recs[f->sink.n - 1].revision, 9);
    fx_free(f);
}

static void test_filters_and_prev_kv(void **state)
{
    (void)state;
    fx *f = fx_new(0, 0);
    int64_t noput = create(f, "k", NULL, 0, false, WATCH_FILTER_NOPUT);
    int64_t nodel = create(f, "k", NULL, 0, false, WATCH_FILTER_NODELETE);
    int64_t prev = create(f, "k", NULL, 0, true, 0);
    int64_t noprev = create(f, "k", NULL, 0, false, 0);
    put1(f, "k", "a");
    put1(f, "k", "b");
    del1(f, "k");
    assert_string_equal(events_of(&f->sink, noput), "-k@4");
    assert_string_equal(events_of(&f->sink, nodel), "k=a@2 k=b@3");
    assert_string_equal(events_of(&f->sink, prev), "k=a@2 k=b@3(a) -k@4(b)");
    assert_string_equal(events_of(&f->sink, noprev), "k=a@2 k=b@3 -k@4");
    fx_free(f);
}

static void test_multi_event_txn(void **state)
{
    (void)state;
    fx *f = fx_new(0, 0);
    int64_t w = create(f, "a", "z", 0, false, 0);
    wt_begin(&f->log);
    wt_put(&f->log, "b", "1");
    wt_put(&f->log, "zz", "x"); /* outside */
    wt_put(&f->log, "c", "2");
    wt_commit(&f->log, f->hub);
    assert_string_equal(events_of(&f->sink, w), "b=1@2 c=2@2");
    /* one response for one revision */
    size_t responses = 0;
    for (size_t i = 0; i < f->sink.n; i++)
        responses += f->sink.recs[i].kind == WATCH_RESP_EVENTS;
    assert_int_equal(responses, 1);
    fx_free(f);
}

static void test_past_start_catch_up_chunked(void **state)
{
    (void)state;
    fx *f = fx_new(2, 0);
    for (int i = 0; i < 5; i++) {
        char v[8];
        snprintf(v, sizeof(v), "%d", i);
        put1(f, "k", v); /* revs 2..6 */
    }
    wt_begin(&f->log); /* rev 7: five events in one revision, chunk of 2 splits it */
    wt_put(&f->log, "k1", "a");
    wt_put(&f->log, "k2", "b");
    wt_put(&f->log, "k3", "c");
    wt_put(&f->log, "k4", "d");
    wt_put(&f->log, "k5", "e");
    wt_commit(&f->log, f->hub);
    int64_t w = create(f, "k", "l", 4, true, 0);
    /* created answered at once, no events yet */
    assert_int_equal(f->sink.n, 1);
    assert_true(f->sink.recs[0].created);
    assert_int_equal(f->sink.recs[0].revision, 7);
    watch_hub_stats st;
    watch_hub_stats_get(f->hub, &st);
    assert_int_equal(st.unsynced, 1);
    assert_int_equal(st.victims, 0);
    bool more;
    assert_int_equal(watch_hub_sync(f->hub, 2, &more), WATCH_OK);
    assert_true(more);
    assert_string_equal(events_of(&f->sink, w), "k=2@4(1) k=3@5(2)");
    /* a write while catching up: must come after history, exactly once */
    put1(f, "k", "late");
    sync_all(f);
    assert_string_equal(events_of(&f->sink, w),
                        "k=2@4(1) k=3@5(2) k=4@6(3) k1=a@7 k2=b@7 k3=c@7 k4=d@7 k5=e@7 "
                        "k=late@8(4)");
    put1(f, "k2", "z");
    assert_string_equal(events_of(&f->sink, w) + strlen(events_of(&f->sink, w)) - 9, "k2=z@9(b)");
    watch_hub_stats_get(f->hub, &st);
    assert_int_equal(st.synced, 1);
    fx_free(f);
}

static void test_future_start(void **state)
{
    (void)state;
    fx *f = fx_new(0, 0);
    int64_t w = create(f, "k", NULL, 4, false, 0);
    put1(f, "k", "a"); /* 2 */
    put1(f, "k", "b"); /* 3 */
    put1(f, "k", "c"); /* 4 */
    assert_string_equal(events_of(&f->sink, w), "k=c@4");
    fx_free(f);
}

static void test_compacted_start(void **state)
{
    (void)state;
    fx *f = fx_new(0, 0);
    for (int i = 0; i < 6; i++)
        put1(f, "k", "v"); /* revs 2..7 */
    wt_compact(&f->log, f->hub, 5);
    int64_t ok = create(f, "k", NULL, 5, false, 0); /* compact rev itself is readable */
    int64_t bad = create(f, "k", NULL, 3, false, 0);
    sync_all(f);
    assert_string_equal(events_of(&f->sink, ok), "k=v@5 k=v@6 k=v@7");
    /* created(ok), created(bad), then the canceled with compact_revision */
    int created_bad = -1, canceled_bad = -1;
    for (size_t i = 0; i < f->sink.n; i++) {
        const wt_rec *r = &f->sink.recs[i];
        if (r->watch_id != bad)
            continue;
        if (r->kind == WATCH_RESP_CREATED)
            created_bad = (int)i;
        if (r->kind == WATCH_RESP_CANCELED) {
            canceled_bad = (int)i;
            assert_true(r->canceled);
            assert_int_equal(r->compact, 5);
        }
    }
    assert_true(created_bad >= 0 && canceled_bad > created_bad);
    assert_int_equal(watch_stream_watchers(f->st), 1);
    /* compaction learned only from the history reader (hub not told) */
    wt_compact(&f->log, NULL, 7);
    int64_t bad2 = create(f, "k", NULL, 6, false, 0);
    sync_all(f);
    const wt_rec *last = &f->sink.recs[f->sink.n - 1];
    assert_int_equal(last->watch_id, bad2);
    assert_true(last->canceled);
    assert_int_equal(last->compact, 7);
    fx_free(f);
}

static void test_created_order(void **state)
{
    (void)state;
    fx *f = fx_new(1, 0);
    for (int i = 0; i < 4; i++)
        put1(f, "k", "v");
    int64_t ids[4];
    ids[0] = create(f, "k", NULL, 2, false, 0);
    ids[1] = create(f, "k", NULL, 0, false, 0);
    ids[2] = create(f, "k", NULL, 3, false, 0);
    ids[3] = create(f, "k", NULL, 4, false, 0);
    put1(f, "k", "live"); /* 6: ids[1] gets it now, the others are unsynced */
    sync_all(f);
    /* the first four responses are the created ones, in create order */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(f->sink.recs[i].kind, WATCH_RESP_CREATED);
        assert_int_equal(f->sink.recs[i].watch_id, ids[i]);
    }
    assert_string_equal(events_of(&f->sink, ids[0]), "k=v@2 k=v@3 k=v@4 k=v@5 k=live@6");
    assert_string_equal(events_of(&f->sink, ids[1]), "k=live@6");
    assert_string_equal(events_of(&f->sink, ids[3]), "k=v@4 k=v@5 k=live@6");
    fx_free(f);
}

static void test_victim_catch_up(void **state)
{
    (void)state;
    fx *f = fx_new(0, 0);
    int64_t w = create(f, "a", "z", 0, true, 0);
    int64_t other = create(f, "zz", NULL, 0, false, 0);
    put1(f, "b", "1");
    f->sink.full = true;
    put1(f, "b", "2");
    put1(f, "c", "3");
    put1(f, "zz", "x");
    watch_hub_stats st;
    watch_hub_stats_get(f->hub, &st);
    assert_int_equal(st.victims, 2);
    bool more;
    watch_hub_sync(f->hub, 0, &more); /* still full: nothing moves */
    assert_string_equal(events_of(&f->sink, w), "b=1@2");
    f->sink.full = false;
    put1(f, "d", "4"); /* victim: not delivered live, comes from history in order */
    assert_string_equal(events_of(&f->sink, w), "b=1@2");
    sync_all(f);
    assert_string_equal(events_of(&f->sink, w), "b=1@2 b=2@3(1) c=3@4 d=4@6");
    assert_string_equal(events_of(&f->sink, other), "zz=x@5");
    watch_hub_stats_get(f->hub, &st);
    assert_int_equal(st.victims, 0);
    assert_int_equal(st.synced, 2);
    put1(f, "e", "5");
    assert_string_equal(events_of(&f->sink, w), "b=1@2 b=2@3(1) c=3@4 d=4@6 e=5@7");
    fx_free(f);
}

static void test_pending_limit(void **state)
{
    (void)state;
    fx *f = fx_new(0, 400); /* a few responses */
    int64_t w = create(f, "k", NULL, 0, false, 0);
    for (int i = 0; i < 20; i++)
        put1(f, "k", "0123456789012345678901234567890123456789");
    /* not drained: the hub stopped offering */
    size_t got = 0;
    for (size_t i = 0; i < f->sink.n; i++)
        got += f->sink.recs[i].kind == WATCH_RESP_EVENTS;
    assert_true(got < 20 && got >= 1);
    assert_true(watch_stream_pending_bytes(f->st) <= 400 + 200);
    /* drain repeatedly and sync until caught up */
    for (int i = 0; i < 100; i++) {
        wt_sink_drain(&f->sink, f->st);
        bool more;
        watch_hub_sync(f->hub, 3, &more);
        watch_hub_stats st;
        watch_hub_stats_get(f->hub, &st);
        if (!more && st.unsynced == 0)
            break;
    }
    const char *s = events_of(&f->sink, w);
    int count = 0;
    int64_t last = 1;
    for (size_t i = 0; i < f->sink.n; i++)
        for (size_t j = 0; j < f->sink.recs[i].n; j++) {
            assert_int_equal(f->sink.recs[i].ev[j].rev, last + 1);
            last++;
            count++;
        }
    assert_int_equal(count, 20);
    (void)s;
    fx_free(f);
}

static void test_cancel(void **state)
{
    (void)state;
    fx *f = fx_new(0, 0);
    int64_t a = create(f, "k", NULL, 0, false, 0);
    put1(f, "k", "1");
    cord_error err = {0};
    assert_int_equal(watch_cancel(f->st, a, &err), WATCH_OK);
    const wt_rec *r = &f->sink.recs[f->sink.n - 1];
    assert_int_equal(r->kind, WATCH_RESP_CANCELED);
    assert_true(r->canceled);
    assert_int_equal(r->watch_id, a);
    put1(f, "k", "2");
    assert_string_equal(events_of(&f->sink, a), "k=1@2");
    size_t n = f->sink.n;
    assert_int_equal(watch_cancel(f->st, a, &err), WATCH_ENOTFOUND);
    assert_string_equal(err.msg, "mvcc: watcher does not exist");
    assert_int_equal(f->sink.n, n);
    /* cancel an unsynced watcher */
    int64_t b = create(f, "k", NULL, 2, false, 0);
    assert_int_equal(watch_cancel(f->st, b, NULL), WATCH_OK);
    sync_all(f);
    assert_string_equal(events_of(&f->sink, b), "");
    fx_free(f);
}

static void test_ids(void **state)
{
    (void)state;
    fx *f = fx_new(0, 0);
    watch_create_req r = {.key = wt_b("k"), .watch_id = 1};
    int64_t id;
    assert_int_equal(watch_create(f->st, &r, &id, NULL), WATCH_OK);
    assert_int_equal(id, 1);
    cord_error err = {0};
    assert_int_equal(watch_create(f->st, &r, &id, &err), WATCH_EDUPID);
    const wt_rec *last = &f->sink.recs[f->sink.n - 1];
    assert_true(last->created && last->canceled);
    assert_int_equal(last->watch_id, -1);
    assert_string_equal(last->reason, "mvcc: duplicate watch ID provided on the WatchStream");
    r.watch_id = 0;
    assert_int_equal(watch_create(f->st, &r, &id, NULL), WATCH_OK);
    assert_int_equal(id, 0);
    assert_int_equal(watch_create(f->st, &r, &id, NULL), WATCH_OK);
    assert_int_equal(id, 2); /* 1 is taken */
    /* empty range */
    watch_create_req bad = {.key = wt_b("b"), .range_end = wt_b("a")};
    assert_int_equal(watch_create(f->st, &bad, &id, NULL), WATCH_EEMPTYRANGE);
    last = &f->sink.recs[f->sink.n - 1];
    assert_string_equal(last->reason, "mvcc: watcher range is empty");
    bad.range_end = wt_b("b");
    assert_int_equal(watch_create(f->st, &bad, &id, NULL), WATCH_EEMPTYRANGE);
    /* watchers per stream */
    watch_hub *h;
    watch_hub_options o = {.history = wt_history,
                           .history_ctx = &f->log,
                           .current_revision = 1,
                           .max_watchers_per_stream = 2,
                           .max_streams = 1};
    assert_int_equal(watch_hub_new(&o, &h, NULL), WATCH_OK);
    wt_sink s2;
    wt_sink_init(&s2);
    watch_stream *st, *st2;
    assert_int_equal(watch_stream_open(h, wt_sink_fn, &s2, &st, NULL), WATCH_OK);
    assert_int_equal(watch_stream_open(h, wt_sink_fn, &s2, &st2, NULL), WATCH_ETOOMANY);
    r.watch_id = 0;
    assert_int_equal(watch_create(st, &r, &id, NULL), WATCH_OK);
    assert_int_equal(watch_create(st, &r, &id, NULL), WATCH_OK);
    assert_int_equal(watch_create(st, &r, &id, NULL), WATCH_ETOOMANY);
    watch_hub_free(h);
    wt_sink_free(&s2);
    fx_free(f);
}

static void test_progress(void **state)
{
    (void)state;
    fx *f = fx_new(0, 0);
    watch_create_req r = {.key = wt_b("k"), .progress_notify = true};
    int64_t a, b;
    assert_int_equal(watch_create(f->st, &r, &a, NULL), WATCH_OK);
    r.progress_notify = false;
    r.key = wt_b("j");
    assert_int_equal(watch_create(f->st, &r, &b, NULL), WATCH_OK);
    put1(f, "x", "1");
    size_t n0 = f->sink.n;
    watch_hub_progress(f->hub, 2);
    assert_int_equal(f->sink.n, n0 + 1);
    assert_int_equal(f->sink.recs[n0].kind, WATCH_RESP_PROGRESS);
    assert_int_equal(f->sink.recs[n0].watch_id, a);
    assert_int_equal(f->sink.recs[n0].revision, 2);
    /* events since the last tick: no progress this tick */
    put1(f, "k", "1");
    n0 = f->sink.n;
    watch_hub_progress(f->hub, 3);
    assert_int_equal(f->sink.n, n0);
    watch_hub_progress(f->hub, 3);
    assert_int_equal(f->sink.n, n0 + 1);

    /* explicit request: all synced -> now, one response with watch id -1 */
    n0 = f->sink.n;
    watch_stream_request_progress(f->st);
    assert_int_equal(f->sink.n, n0 + 1);
    assert_int_equal(f->sink.recs[n0].watch_id, -1);
    assert_int_equal(f->sink.recs[n0].revision, 3);
    /* an unsynced watcher defers it until caught up, after its events */
    int64_t c = create(f, "k", NULL, 2, false, 0);
    n0 = f->sink.n;
    watch_stream_request_progress(f->st);
    assert_int_equal(f->sink.n, n0);
    sync_all(f);
    assert_string_equal(events_of(&f->sink, c), "k=1@3");
    const wt_rec *last = &f->sink.recs[f->sink.n - 1];
    assert_int_equal(last->kind, WATCH_RESP_PROGRESS);
    assert_int_equal(last->watch_id, -1);
    assert_int_equal(last->revision, 3);
    fx_free(f);
}

static void test_history_failure_retried(void **state)
{
    (void)state;
    fx *f = fx_new(0, 0);
    put1(f, "k", "1");
    int64_t w = create(f, "k", NULL, 1, false, 0);
    f->log.fail_next = 2;
    bool more;
    assert_int_equal(watch_hub_sync(f->hub, 0, &more), WATCH_EHISTORY);
    assert_true(more);
    assert_int_equal(watch_hub_sync(f->hub, 0, &more), WATCH_EHISTORY);
    sync_all(f);
    assert_string_equal(events_of(&f->sink, w), "k=1@2");
    fx_free(f);
}

static void test_stream_close_and_many_streams(void **state)
{
    (void)state;
    fx *f = fx_new(0, 0);
    wt_sink s2;
    wt_sink_init(&s2);
    watch_stream *st2;
    assert_int_equal(watch_stream_open(f->hub, wt_sink_fn, &s2, &st2, NULL), WATCH_OK);
    int64_t a = create(f, "k", NULL, 0, false, 0);
    watch_create_req r = {.key = wt_b("k")};
    int64_t b;
    assert_int_equal(watch_create(st2, &r, &b, NULL), WATCH_OK);
    assert_int_equal(a, b); /* ids are per stream */
    put1(f, "k", "1");
    assert_string_equal(events_of(&s2, b), "k=1@2");
    int64_t c = create(f, "k", NULL, 1, false, 0); /* unsynced, then the stream closes */
    (void)c;
    watch_stream_close(f->st);
    f->st = NULL;
    put1(f, "k", "2");
    sync_all(f);
    assert_string_equal(events_of(&s2, b), "k=1@2 k=2@3");
    watch_hub_stats st;
    watch_hub_stats_get(f->hub, &st);
    assert_int_equal(st.streams, 1);
    assert_int_equal(st.watchers, 1);
    wt_sink_free(&s2);
    fx_free(f);
}

static void test_fragment(void **state)
{
    (void)state;
    watch_event ev[5];
    char vals[5][100];
    memset(ev, 0, sizeof(ev));
    for (int i = 0; i < 5; i++) {
        memset(vals[i], 'a' + i, 99);
        vals[i][99] = 0;
        ev[i].kv.key = wt_b("key");
        ev[i].kv.value = wt_b(vals[i]);
        ev[i].kv.mod_revision = 5;
        ev[i].kv.create_revision = 2;
        ev[i].kv.version = 1;
    }
    /* kv: key 5 + create 2 + mod 2 + version 2 + value 2+99 = 112; event: 2+112=114;
     * in a response: 2+114 = 116 */
    assert_int_equal(watch_event_size(&ev[0]), 114);
    watch_kv prev = ev[0].kv;
    watch_event d = ev[0];
    d.type = WATCH_EVENT_DELETE;
    d.prev_kv = &prev;
    assert_int_equal(watch_event_size(&d), 2 + 114 + 114);
    size_t ends[5];
    /* small enough: one piece */
    assert_int_equal(watch_fragment_split(ev, 5, 20, 10000, ends, 5), 1);
    assert_int_equal(ends[0], 5);
    /* one event: never split */
    assert_int_equal(watch_fragment_split(ev, 1, 20, 10, ends, 5), 1);
    /* limit 260 with base 20: 22 + 116 = 138, +116 = 254 < 260 -> two per piece */
    assert_int_equal(watch_fragment_split(ev, 5, 20, 260, ends, 5), 3);
    assert_int_equal(ends[0], 2);
    assert_int_equal(ends[1], 4);
    assert_int_equal(ends[2], 5);
    /* limit 254: 254 >= limit -> one per piece */
    assert_int_equal(watch_fragment_split(ev, 5, 20, 254, ends, 5), 5);
    /* tiny limit: still one event per piece */
    assert_int_equal(watch_fragment_split(ev, 5, 20, 1, ends, 5), 5);
    assert_int_equal(ends[4], 5);
    /* the fragment flag is passed to the sink */
    fx *f = fx_new(0, 0);
    watch_create_req r = {.key = wt_b("k"), .fragment = true};
    int64_t id;
    assert_int_equal(watch_create(f->st, &r, &id, NULL), WATCH_OK);
    put1(f, "k", "v");
    assert_true(f->sink.recs[f->sink.n - 1].fragment);
    fx_free(f);
}

static void test_key_index_churn(void **state)
{
    (void)state;
    fx *f = fx_new(0, 0);
    wt_sink s2;
    wt_sink_init(&s2);
    watch_stream *st2;
    assert_int_equal(watch_stream_open(f->hub, wt_sink_fn, &s2, &st2, NULL), WATCH_OK);
    /* several watchers on one key in two streams; stream 2 refuses: its watchers leave the
     * key's bucket while it is being walked */
    int64_t a = create(f, "k", NULL, 0, true, 0);
    watch_create_req r = {.key = wt_b("k")};
    int64_t b1, b2;
    assert_int_equal(watch_create(st2, &r, &b1, NULL), WATCH_OK);
    assert_int_equal(watch_create(st2, &r, &b2, NULL), WATCH_OK);
    int64_t c = create(f, "k", NULL, 0, false, WATCH_FILTER_NOPUT);
    s2.full = true;
    wt_begin(&f->log); /* the same key twice in one revision (a generic hub allows it) */
    wt_put(&f->log, "k", "1");
    wt_put(&f->log, "j", "x");
    wt_del(&f->log, "k");
    wt_commit(&f->log, f->hub);
    assert_string_equal(events_of(&f->sink, a), "k=1@2 -k@2(1)");
    assert_string_equal(events_of(&f->sink, c), "-k@2");
    watch_hub_stats st;
    watch_hub_stats_get(f->hub, &st);
    assert_int_equal(st.victims, 2);
    s2.full = false;
    put1(f, "k", "2");
    sync_all(f);
    assert_string_equal(events_of(&s2, b1), "k=1@2 -k@2 k=2@3");
    assert_string_equal(events_of(&s2, b2), "k=1@2 -k@2 k=2@3");
    /* cancel everything: the bucket goes away; a new watcher re-creates it */
    assert_int_equal(watch_cancel(f->st, a, NULL), WATCH_OK);
    assert_int_equal(watch_cancel(f->st, c, NULL), WATCH_OK);
    assert_int_equal(watch_cancel(st2, b1, NULL), WATCH_OK);
    assert_int_equal(watch_cancel(st2, b2, NULL), WATCH_OK);
    int64_t d = create(f, "k", NULL, 0, false, 0);
    /* many distinct keys: buckets grow */
    char key[16];
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "key%03d", i);
        watch_create_req rr = {.key = wt_b(key)};
        assert_int_equal(watch_create(st2, &rr, NULL, NULL), WATCH_OK);
    }
    put1(f, "key150", "z");
    put1(f, "k", "3");
    assert_string_equal(events_of(&s2, 150 + 2), "key150=z@4");
    assert_string_equal(events_of(&f->sink, d), "k=3@5");
    wt_sink_free(&s2);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_range_prefix_fromkey),
        cmocka_unit_test(test_filters_and_prev_kv),
        cmocka_unit_test(test_multi_event_txn),
        cmocka_unit_test(test_past_start_catch_up_chunked),
        cmocka_unit_test(test_future_start),
        cmocka_unit_test(test_compacted_start),
        cmocka_unit_test(test_created_order),
        cmocka_unit_test(test_victim_catch_up),
        cmocka_unit_test(test_pending_limit),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_history_failure_retried),
        cmocka_unit_test(test_stream_close_and_many_streams),
        cmocka_unit_test(test_fragment),
        cmocka_unit_test(test_key_index_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
