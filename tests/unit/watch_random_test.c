/*
 * watch_random_test.c — random writes, random watchers (ranges, start revisions, filters,
 * prev_kv) on several streams, random backpressure, drains, syncs, cancels and compactions.
 * At the end every watcher must have seen exactly the matching events of the log, in order,
 * after its created response (a canceled watcher: a prefix; a compacted one: a prefix and a
 * compact_revision). WATCH_SEED / WATCH_ROUNDS choose the run.
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

#define NSTREAMS 4
#define MAXW     512

static const char *keys[] = {"a", "ab", "b", "ba", "c", "k/1", "k/2", "z"};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

typedef struct model_w {
    int stream;
    int64_t id;
    char key[8], end[8];
    size_t key_len, end_len;
    int64_t eff_start;
    unsigned filters;
    bool prev_kv;
    bool canceled; /* by the client */
} model_w;

static uint64_t rng;
static struct {
    size_t watchers, events, compacted, canceled, max_victims, history_reads, progress;
} tally;
static unsigned rnd(unsigned n)
{
    return (unsigned)(wt_rand(&rng) % n);
}

static void check_watcher(const wt_log *log, const wt_sink *sink, const model_w *m)
{
    /* expected events */
    size_t ne = 0;
    static const wt_entry *exp[100000];
    for (size_t i = 0; i < log->n; i++) {
        const wt_entry *e = log->entries[i];
        if (e->rev < m->eff_start)
            continue;
        if (!wt_in_range(e->key, (const uint8_t *)m->key, m->key_len, (const uint8_t *)m->end,
                         m->end_len))
            continue;
        if (e->ev.type == WATCH_EVENT_PUT && (m->filters & WATCH_FILTER_NOPUT))
            continue;
        if (e->ev.type == WATCH_EVENT_DELETE && (m->filters & WATCH_FILTER_NODELETE))
            continue;
        exp[ne++] = e;
    }
    size_t got = 0;
    bool created = false, canceled = false;
    int64_t compact = 0, last_rev = 0;
    for (size_t i = 0; i < sink->n; i++) {
        const wt_rec *r = &sink->recs[i];
        if (r->kind == WATCH_RESP_PROGRESS && created && !canceled &&
            (r->watch_id == m->id || r->watch_id == WATCH_PROGRESS_WATCH_ID)) {
            /* a progress response at P: every event up to P is already delivered */
            size_t due = 0;
            while (due < ne && exp[due]->rev <= r->revision)
                due++;
            if (got < due)
                fail_msg("watcher %lld: progress at %lld before %zu of %zu due events",
                         (long long)m->id, (long long)r->revision, got, due);
            tally.progress++;
            continue;
        }
        if (r->watch_id != m->id)
            continue;
        assert_false(canceled); /* nothing after the cancel */
        if (r->kind == WATCH_RESP_CREATED) {
            assert_false(created);
            assert_false(r->canceled);
            created = true;
            continue;
        }
        assert_true(created); /* created before anything else */
        if (r->kind == WATCH_RESP_CANCELED) {
            canceled = true;
            compact = r->compact;
            continue;
        }
        if (r->kind == WATCH_RESP_PROGRESS)
            continue;
        assert_true(r->revision >= last_rev);
        last_rev = r->revision;
        for (size_t j = 0; j < r->n; j++) {
            const wt_rev *g = &r->ev[j];
            if (got >= ne)
                fail_msg("watcher %lld: more events than expected (%zu)", (long long)m->id, ne);
            const wt_entry *e = exp[got];
            if (g->rev != e->rev || strcmp(g->key, e->key) != 0 || g->type != (int)e->ev.type ||
                strcmp(g->value, e->value) != 0)
                fail_msg("watcher %lld event %zu: got %s@%lld want %s@%lld", (long long)m->id, got,
                         g->key, (long long)g->rev, e->key, (long long)e->rev);
            assert_true(g->rev <= r->revision);
            bool want_prev = m->prev_kv && e->ev.prev_kv != NULL;
            assert_int_equal(g->has_prev, want_prev);
            if (want_prev)
                assert_string_equal(g->prev_value, e->prev_value);
            got++;
        }
    }
    assert_true(created);
    tally.watchers++;
    tally.events += got;
    if (m->canceled || (canceled && compact > 0)) {
        assert_true(got <= ne);
        if (!m->canceled) {
            assert_true(compact > 0);
            assert_true(m->eff_start < compact); /* needed history was gone */
            tally.compacted++;
        } else {
            tally.canceled++;
        }
    } else {
        assert_false(canceled);
        if (got != ne)
            fail_msg("watcher %lld (start %lld): got %zu of %zu events", (long long)m->id,
                     (long long)m->eff_start, got, ne);
    }
}

static void run(uint64_t seed, int rounds)
{
    rng = seed;
    wt_log log;
    wt_log_init(&log);
    watch_hub *hub;
    watch_hub_options o = {.history = wt_history,
                           .history_ctx = &log,
                           .current_revision = 1,
                           .chunk_events = 1 + rnd(6),
                           .pending_limit_bytes = rnd(2) ? 150 + rnd(2000) : 0};
    assert_int_equal(watch_hub_new(&o, &hub, NULL), WATCH_OK);
    wt_sink sinks[NSTREAMS];
    watch_stream *st[NSTREAMS];
    for (int i = 0; i < NSTREAMS; i++) {
        wt_sink_init(&sinks[i]);
        sinks[i].rng = seed * 31 + (uint64_t)i;
        sinks[i].full_pct = rnd(3) == 0 ? 0 : rnd(60);
        assert_int_equal(watch_stream_open(hub, wt_sink_fn, &sinks[i], &st[i], NULL), WATCH_OK);
    }
    static model_w ws[MAXW];
    size_t nw = 0;
    bool compact_enabled = rnd(2);
    for (int round = 0; round < rounds; round++) {
        unsigned a = rnd(100);
        if (a < 40) {
            wt_begin(&log);
            unsigned ops = 1 + rnd(3);
            for (unsigned i = 0; i < ops; i++) {
                const char *k = keys[rnd(NKEYS)];
                if (rnd(4) == 0) {
                    wt_del(&log, k);
                } else {
                    char v[32];
                    snprintf(v, sizeof(v), "v%d.%u", round, i);
                    wt_put(&log, k, v);
                }
            }
            wt_commit(&log, hub);
        } else if (a < 55 && nw < MAXW) {
            model_w *m = &ws[nw];
            memset(m, 0, sizeof(*m));
            m->stream = (int)rnd(NSTREAMS);
            unsigned kind = rnd(5);
            const char *k1 = keys[rnd(NKEYS)];
            snprintf(m->key, sizeof(m->key), "%s", k1);
            m->key_len = strlen(m->key);
            if (kind == 1) { /* range */
                const char *k2 = keys[rnd(NKEYS)];
                if (strcmp(k2, k1) <= 0)
                    k2 = "zz";
                snprintf(m->end, sizeof(m->end), "%s", k2);
                m->end_len = strlen(m->end);
            } else if (kind == 2) { /* prefix */
                snprintf(m->end, sizeof(m->end), "%s", k1);
                m->end_len = strlen(m->end);
                m->end[m->end_len - 1]++;
            } else if (kind == 3) { /* from key */
                m->end[0] = 0;
                m->end_len = 1;
            } else if (kind == 4 && rnd(2)) { /* all keys */
                m->key_len = 0;
                m->end[0] = 0;
                m->end_len = 1;
            }
            int64_t cur = log.current_rev;
            int64_t start = rnd(3) == 0 ? 0 : 1 + (int64_t)rnd((unsigned)cur + 3);
            m->eff_start = start == 0 ? cur + 1 : start;
            m->prev_kv = rnd(2);
            m->filters = rnd(5) == 0 ? 1 + rnd(2) : 0;
            watch_create_req r = {.key = {(const uint8_t *)m->key, m->key_len},
                                  .range_end = {(const uint8_t *)m->end, m->end_len},
                                  .start_revision = start,
                                  .prev_kv = m->prev_kv,
                                  .filters = m->filters,
                                  .progress_notify = rnd(2)};
            assert_int_equal(watch_create(st[m->stream], &r, &m->id, NULL), WATCH_OK);
            nw++;
        } else if (a < 60 && nw > 0) {
            model_w *m = &ws[rnd((unsigned)nw)];
            if (!m->canceled) {
                int rc = watch_cancel(st[m->stream], m->id, NULL);
                /* it may be gone already (compacted) */
                assert_true(rc == WATCH_OK || rc == WATCH_ENOTFOUND);
                m->canceled = rc == WATCH_OK;
            }
        } else if (a < 75) {
            watch_hub_sync(hub, 1 + rnd(10), NULL);
            watch_hub_stats hs;
            watch_hub_stats_get(hub, &hs);
            if (hs.victims > tally.max_victims)
                tally.max_victims = hs.victims;
        } else if (a < 85) {
            int i = (int)rnd(NSTREAMS);
            wt_sink_drain(&sinks[i], st[i]);
        } else if (a < 90) {
            int i = (int)rnd(NSTREAMS);
            sinks[i].full = !sinks[i].full;
        } else if (a < 93) {
            watch_hub_progress(hub, log.current_rev);
        } else if (a < 95) {
            watch_stream_request_progress(st[rnd(NSTREAMS)]);
        } else if (a < 97 && compact_enabled && log.current_rev > 2) {
            int64_t c = log.compact_rev + 1 + (int64_t)rnd(3);
            if (c <= log.current_rev)
                wt_compact(&log, rnd(2) ? hub : NULL, c);
        }
    }
    /* settle: no backpressure, drain, sync until everything is synced */
    for (int i = 0; i < NSTREAMS; i++) {
        sinks[i].full = false;
        sinks[i].full_pct = 0;
    }
    for (int it = 0; it < 100000; it++) {
        for (int i = 0; i < NSTREAMS; i++)
            wt_sink_drain(&sinks[i], st[i]);
        bool more;
        watch_hub_sync(hub, 0, &more);
        watch_hub_stats s;
        watch_hub_stats_get(hub, &s);
        if (s.unsynced == 0)
            break;
        assert_true(it < 99999);
    }
    for (size_t i = 0; i < nw; i++)
        check_watcher(&log, &sinks[ws[i].stream], &ws[i]);
    watch_hub_stats hs;
    watch_hub_stats_get(hub, &hs);
    tally.history_reads += hs.history_reads;
    watch_hub_free(hub);
    for (int i = 0; i < NSTREAMS; i++)
        wt_sink_free(&sinks[i]);
    wt_log_free(&log);
}

static void test_random(void **state)
{
    (void)state;
    const char *s = getenv("WATCH_SEED");
    const char *r = getenv("WATCH_ROUNDS");
    uint64_t seed = s ? strtoull(s, NULL, 10) : 1;
    int rounds = r ? atoi(r) : 300;
    /* many short runs per seed, so that configurations vary */
    for (uint64_t k = 0; k < 200; k++) {
        uint64_t sd = seed * 1000003ull + k;
        run(sd, rounds);
    }
    printf("watchers %zu, events checked %zu, compacted %zu, canceled %zu, max victims %zu, "
           "history reads %zu, progress checks %zu\n",
           tally.watchers, tally.events, tally.compacted, tally.canceled, tally.max_victims,
           tally.history_reads, tally.progress);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
