/*
 * watch_testutil.c — see watch_testutil.h.
 */
#include "watch_testutil.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

watch_bytes wt_b(const char *s)
{
    return (watch_bytes){(const uint8_t *)s, strlen(s)};
}

uint64_t wt_rand(uint64_t *x)
{
    *x += 0x9e3779b97f4a7c15ull;
    uint64_t z = *x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void wt_log_init(wt_log *log)
{
    memset(log, 0, sizeof(*log));
    log->current_rev = 1;
}

void wt_log_free(wt_log *log)
{
    for (size_t i = 0; i < log->n; i++)
        free(log->entries[i]);
    free(log->entries);
    memset(log, 0, sizeof(*log));
}

void wt_begin(wt_log *log)
{
    log->rev_start = log->n;
}

static wt_live *live_of(wt_log *log, const char *key)
{
    for (size_t i = 0; i < log->nlive; i++)
        if (!strcmp(log->live[i].key, key))
            return &log->live[i];
    assert(log->nlive < 256);
    wt_live *l = &log->live[log->nlive++];
    memset(l, 0, sizeof(*l));
    snprintf(l->key, sizeof(l->key), "%s", key);
    return l;
}

static wt_entry *append(wt_log *log)
{
    if (log->n == log->cap) {
        log->cap = log->cap ? log->cap * 2 : 64;
        log->entries = realloc(log->entries, log->cap * sizeof(*log->entries));
        assert(log->entries);
    }
    wt_entry *e = calloc(1, sizeof(*e));
    assert(e);
    log->entries[log->n++] = e;
    e->rev = log->current_rev + 1;
    e->sub = (int64_t)(log->n - 1 - log->rev_start);
    return e;
}

static void fill(wt_entry *e, const wt_live *l, bool had_prev)
{
    e->ev.kv.key = wt_b(e->key);
    e->ev.kv.value = wt_b(e->value);
    if (had_prev) {
        e->prev.key = wt_b(e->key);
        e->prev.value = wt_b(e->prev_value);
        e->ev.prev_kv = &e->prev;
    }
    (void)l;
}

void wt_put(wt_log *log, const char *key, const char *value)
{
    wt_live *l = live_of(log, key);
    wt_entry *e = append(log);
    snprintf(e->key, sizeof(e->key), "%s", key);
    snprintf(e->value, sizeof(e->value), "%s", value);
    bool had = l->live;
    if (had) {
        snprintf(e->prev_value, sizeof(e->prev_value), "%s", l->value);
        e->prev.create_revision = l->create_rev;
        e->prev.mod_revision = l->mod_rev;
        e->prev.version = l->version;
    }
    if (!l->live) {
        l->live = true;
        l->create_rev = e->rev;
        l->version = 0;
    }
    l->version++;
    l->mod_rev = e->rev;
    snprintf(l->value, sizeof(l->value), "%s", value);
    e->ev.type = WATCH_EVENT_PUT;
    e->ev.kv.create_revision = l->create_rev;
    e->ev.kv.mod_revision = e->rev;
    e->ev.kv.version = l->version;
    fill(e, l, had);
}

void wt_del(wt_log *log, const char *key)
{
    wt_live *l = live_of(log, key);
    if (!l->live)
        return;
    wt_entry *e = append(log);
    snprintf(e->key, sizeof(e->key), "%s", key);
    snprintf(e->prev_value, sizeof(e->prev_value), "%s", l->value);
    e->prev.create_revision = l->create_rev;
    e->prev.mod_revision = l->mod_rev;
    e->prev.version = l->version;
    l->live = false;
    e->ev.type = WATCH_EVENT_DELETE;
    e->ev.kv.mod_revision = e->rev;
    e->value[0] = 0;
    fill(e, l, true);
}

size_t wt_commit(wt_log *log, watch_hub *hub)
{
    size_t n = log->n - log->rev_start;
    if (n == 0)
        return 0;
    log->current_rev++;
    /* the entries' strings may have moved? no: entries are heap-allocated one by one; fix
     * the pointers anyway (fill() used the entry's own arrays) */
    watch_event *evs = malloc(n * sizeof(*evs));
    assert(evs);
    for (size_t i = 0; i < n; i++)
        evs[i] = log->entries[log->rev_start + i]->ev;
    if (hub)
        assert(watch_hub_notify(hub, evs, n, log->current_rev) == WATCH_OK);
    free(evs);
    return n;
}

void wt_compact(wt_log *log, watch_hub *hub, int64_t rev)
{
    assert(rev <= log->current_rev);
    if (rev > log->compact_rev)
        log->compact_rev = rev;
    if (hub)
        watch_hub_set_compacted(hub, rev);
}

static int cmpk(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t m = an < bn ? an : bn;
    int c = m ? memcmp(a, b, m) : 0;
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

bool wt_in_range(const char *key, const uint8_t *k, size_t klen, const uint8_t *end, size_t elen)
{
    size_t n = strlen(key);
    static const uint8_t zero = 0;
    if (klen == 0) {
        k = &zero;
        klen = 1;
    }
    int c = cmpk((const uint8_t *)key, n, k, klen);
    if (elen == 0)
        return c == 0;
    if (c < 0)
        return false;
    if (elen == 1 && end[0] == 0)
        return true;
    return cmpk((const uint8_t *)key, n, end, elen) < 0;
}

int wt_history(void *ctx, const watch_history_req *req, watch_history_resp *resp)
{
    wt_log *log = ctx;
    static watch_event buf[4096];
    log->history_calls++;
    memset(resp, 0, sizeof(*resp));
    if (log->fail_next) {
        log->fail_next--;
        return WATCH_EHISTORY;
    }
    if (req->start_revision < log->compact_rev) {
        resp->compact_revision = log->compact_rev;
        return WATCH_ECOMPACTED;
    }
    assert(req->max_events >= 1 && req->max_events <= 4096);
    assert(req->end_revision <= log->current_rev);
    size_t k = 0;
    resp->complete = true;
    resp->next_revision = req->end_revision + 1;
    for (size_t i = 0; i < log->n; i++) {
        wt_entry *e = log->entries[i];
        if (e->rev < req->start_revision ||
            (e->rev == req->start_revision && e->sub < req->start_sub))
            continue;
        if (e->rev > req->end_revision)
            break;
        if (!wt_in_range(e->key, req->key.data, req->key.len, req->range_end.data,
                         req->range_end.len))
            continue;
        if (k == req->max_events) {
            resp->complete = false;
            resp->next_revision = e->rev;
            resp->next_sub = e->sub;
            break;
        }
        buf[k] = e->ev;
        if (!req->prev_kv)
            buf[k].prev_kv = NULL;
        k++;
    }
    resp->events = buf;
    resp->events_len = k;
    return WATCH_OK;
}

void wt_sink_init(wt_sink *s)
{
    memset(s, 0, sizeof(*s));
    s->rng = 1;
}

void wt_sink_free(wt_sink *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->recs[i].ev);
    free(s->recs);
    memset(s, 0, sizeof(*s));
}

static void copy_str(char *dst, watch_bytes b)
{
    size_t n = b.len < WT_MAX_STR - 1 ? b.len : WT_MAX_STR - 1;
    if (n)
        memcpy(dst, b.data, n);
    dst[n] = 0;
}

int wt_sink_fn(void *ctx, watch_stream *stream, const watch_response *r)
{
    (void)stream;
    wt_sink *s = ctx;
    bool control = r->kind == WATCH_RESP_CREATED || r->kind == WATCH_RESP_CANCELED ||
                   (r->kind == WATCH_RESP_PROGRESS && r->watch_id == WATCH_PROGRESS_WATCH_ID);
    if (!control) {
        if (s->full)
            return WATCH_SINK_FULL;
        if (s->full_pct && wt_rand(&s->rng) % 100 < s->full_pct)
            return WATCH_SINK_FULL;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->recs = realloc(s->recs, s->cap * sizeof(*s->recs));
        assert(s->recs);
    }
    wt_rec *rec = &s->recs[s->n++];
    memset(rec, 0, sizeof(*rec));
    rec->kind = r->kind;
    rec->watch_id = r->watch_id;
    rec->revision = r->revision;
    rec->compact = r->compact_revision;
    rec->created = r->created;
    rec->canceled = r->canceled;
    rec->fragment = r->fragment;
    rec->reason = r->cancel_reason;
    rec->size_bytes = r->size_bytes;
    rec->n = r->events_len;
    if (r->events_len) {
        rec->ev = calloc(r->events_len, sizeof(*rec->ev));
        assert(rec->ev);
    }
    for (size_t i = 0; i < r->events_len; i++) {
        const watch_event *e = &r->events[i];
        rec->ev[i].type = e->type;
        copy_str(rec->ev[i].key, e->kv.key);
        copy_str(rec->ev[i].value, e->kv.value);
        rec->ev[i].rev = e->kv.mod_revision;
        if (e->prev_kv) {
            rec->ev[i].has_prev = true;
            copy_str(rec->ev[i].prev_value, e->prev_kv->value);
        }
    }
    s->taken_bytes += r->size_bytes;
    return WATCH_SINK_OK;
}

void wt_sink_drain(wt_sink *s, watch_stream *st)
{
    watch_stream_drained(st, s->taken_bytes);
    s->taken_bytes = 0;
}
