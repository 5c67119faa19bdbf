/*
 * watch_hub.c — the hub: live delivery (notify), catch-up from history and victims (sync),
 * progress ticks, errors.
 */
#include "watch/watch_internal.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *watch_strerror(int code)
{
    switch (code) {
    case WATCH_OK:
        return "ok";
    case WATCH_EDUPID:
        return "mvcc: duplicate watch ID provided on the WatchStream";
    case WATCH_EEMPTYRANGE:
        return "mvcc: watcher range is empty";
    case WATCH_ENOTFOUND:
        return "mvcc: watcher does not exist";
    case WATCH_ECOMPACTED:
        return "mvcc: required revision has been compacted";
    case WATCH_ETOOMANY:
        return "cord: too many watchers or watch streams";
    case WATCH_EINVAL:
        return "cord: invalid watch argument";
    case WATCH_ENOMEM:
        return "cord: out of memory";
    case WATCH_EHISTORY:
        return "cord: reading watch history failed";
    default:
        return "unknown error";
    }
}

int watch_seterr(cord_error *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    err->sys_errno = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

/* ---------------------------------------------------------------------------------------- */
/* Matching                                                                                   */

int watch_bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t m = an < bn ? an : bn;
    int c = m ? memcmp(a, b, m) : 0;
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

static bool key_matches(const watcher *w, watch_bytes k)
{
    int c = watch_bytes_cmp(k.data, k.len, w->key, w->key_len);
    if (w->end_len == 0)
        return c == 0;
    if (c < 0)
        return false;
    if (w->from_key)
        return true;
    return watch_bytes_cmp(k.data, k.len, w->end, w->end_len) < 0;
}

static bool event_passes(const watcher *w, const watch_event *ev)
{
    if (ev->type == WATCH_EVENT_PUT && (w->filters & WATCH_FILTER_NOPUT))
        return false;
    if (ev->type == WATCH_EVENT_DELETE && (w->filters & WATCH_FILTER_NODELETE))
        return false;
    return key_matches(w, ev->kv.key);
}

static bool reserve_scratch(watch_hub *h, size_t n)
{
    if (n <= h->scratch_cap)
        return true;
    size_t ncap = h->scratch_cap ? h->scratch_cap : 64;
    while (ncap < n)
        ncap *= 2;
    watch_event *ns = realloc(h->scratch, ncap * sizeof(*ns));
    if (!ns)
        return false;
    h->scratch = ns;
    h->scratch_cap = ncap;
    return true;
}

/* Copies the events `w` should see into the scratch buffer; returns how many. The caller
 * reserved room for n. */
static size_t select_events(watch_hub *h, const watcher *w, const watch_event *ev, size_t n,
                            int64_t min_rev)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].kv.mod_revision < min_rev || !event_passes(w, &ev[i]))
            continue;
        h->scratch[k] = ev[i];
        if (!w->prev_kv)
            h->scratch[k].prev_kv = NULL;
        k++;
    }
    return k;
}

/* ---------------------------------------------------------------------------------------- */
/* Delivery                                                                                   */

static int call_sink(watch_stream *s, const watch_response *r)
{
    watch_hub *h = s->hub;
    assert(!h->in_callback);
    h->in_callback = true;
    int rc = s->sink(s->sink_ctx, s, r);
    h->in_callback = false;
    return rc;
}

void watch_send_control(watch_stream *s, watch_response *r)
{
    r->size_bytes =
        WATCH_RESPONSE_OVERHEAD_BYTES + (r->cancel_reason ? strlen(r->cancel_reason) : 0);
    (void)call_sink(s, r); /* control responses must be taken */
    s->pending_bytes += r->size_bytes;
}

static bool stream_full(const watch_stream *s, size_t size)
{
    if (s->blocked_round == s->hub->round)
        return true;
    return s->pending_bytes > 0 && s->pending_bytes + size > s->hub->opts.pending_limit_bytes;
}

/* Offers an events response; returns true when taken. */
static bool deliver_events(watch_stream *s, watcher *w, const watch_event *ev, size_t n,
                           int64_t revision)
{
    size_t size = WATCH_RESPONSE_OVERHEAD_BYTES;
    for (size_t i = 0; i < n; i++)
        size += 4 + watch_event_size(&ev[i]);
    if (stream_full(s, size)) {
        s->blocked_round = s->hub->round;
        return false;
    }
    watch_response r = {.kind = WATCH_RESP_EVENTS,
                        .watch_id = w->id,
                        .revision = revision,
                        .events = ev,
                        .events_len = n,
                        .fragment = w->fragment,
                        .size_bytes = size};
    if (call_sink(s, &r) != WATCH_SINK_OK) {
        s->blocked_round = s->hub->round;
        return false;
    }
    s->pending_bytes += size;
    s->hub->events_delivered += n;
    w->had_events = true;
    return true;
}

/* ---------------------------------------------------------------------------------------- */
/* Watcher bookkeeping                                                                        */

static void unsynced_push(watch_hub *h, watcher *w)
{
    w->unext = NULL;
    w->uprev = h->utail;
    if (h->utail)
        h->utail->unext = w;
    else
        h->uhead = w;
    h->utail = w;
}

void watch_unsynced_unlink(watch_hub *h, watcher *w)
{
    if (w->uprev)
        w->uprev->unext = w->unext;
    else
        h->uhead = w->unext;
    if (w->unext)
        w->unext->uprev = w->uprev;
    else
        h->utail = w->uprev;
    w->uprev = w->unext = NULL;
}

void watch_make_unsynced(watcher *w, int64_t rev, bool victim)
{
    assert(w->synced);
    watch_index_remove(w->stream->hub, w);
    w->synced = false;
    w->victim = victim;
    w->next_rev = rev;
    w->next_sub = 0;
    w->stream->unsynced++;
    unsynced_push(w->stream->hub, w);
}

static void make_synced(watcher *w)
{
    watch_hub *h = w->stream->hub;
    assert(!w->synced);
    watch_unsynced_unlink(h, w);
    w->synced = true;
    w->victim = false;
    w->min_rev = w->next_rev > h->current_rev ? w->next_rev : h->current_rev + 1;
    watch_index_add(h, w);
    w->stream->unsynced--;
}

static void cancel_compacted(watcher *w, int64_t compact_rev)
{
    watch_stream *s = w->stream;
    watch_response r = {.kind = WATCH_RESP_CANCELED,
                        .watch_id = w->id,
                        .revision = s->hub->current_rev,
                        .canceled = true,
                        .compact_revision = compact_rev};
    watch_watcher_remove(w);
    watch_send_control(s, &r);
}

/* ---------------------------------------------------------------------------------------- */
/* Hub                                                                                        */

int watch_hub_new(const watch_hub_options *options, watch_hub **out, cord_error *err)
{
    if (!options || !options->history)
        return watch_seterr(err, WATCH_EINVAL, "watch: a history reader is required");
    watch_hub_options o = *options;
    if (o.current_revision < 1 || o.compact_revision < 0 || o.compact_revision > o.current_revision)
        return watch_seterr(err, WATCH_EINVAL, "watch: bad revisions %lld/%lld",
                            (long long)o.current_revision, (long long)o.compact_revision);
    if (!o.max_streams)
        o.max_streams = WATCH_DEFAULT_MAX_STREAMS;
    if (!o.max_watchers_per_stream)
        o.max_watchers_per_stream = WATCH_DEFAULT_MAX_WATCHERS_PER_STREAM;
    if (!o.pending_limit_bytes)
        o.pending_limit_bytes = WATCH_DEFAULT_PENDING_LIMIT_BYTES;
    if (!o.chunk_events)
        o.chunk_events = WATCH_DEFAULT_CHUNK_EVENTS;
    watch_hub *h = calloc(1, sizeof(*h));
    if (!h)
        return watch_seterr(err, WATCH_ENOMEM, "watch: out of memory");
    h->opts = o;
    h->current_rev = o.current_revision;
    h->compact_rev = o.compact_revision;
    h->round = 1; /* streams start with blocked_round 0: not blocked */
    *out = h;
    return WATCH_OK;
}

void watch_hub_free(watch_hub *h)
{
    if (!h)
        return;
    while (h->streams)
        watch_stream_close(h->streams);
    assert(h->kb_count == 0 && !h->ranges);
    free(h->kb);
    free(h->chain_next);
    free(h->chain_first);
    free(h->chain_slots);
    free(h->scratch);
    free(h);
}

int64_t watch_hub_revision(const watch_hub *h)
{
    return h->current_rev;
}

bool watch_hub_has_synced(const watch_hub *h)
{
    return h->ranges != NULL || h->kb_count > 0;
}

bool watch_hub_has_unsynced(const watch_hub *h)
{
    return h->uhead != NULL;
}

void watch_hub_set_compacted(watch_hub *h, int64_t compact_revision)
{
    if (compact_revision > h->compact_rev)
        h->compact_rev = compact_revision;
}

/* Delivers to one synced watcher the events in `ev` it should see; a refusal makes it a
 * victim. */
static void notify_watcher(watch_hub *h, watcher *w, const watch_event *ev, size_t n,
                           int64_t revision)
{
    if (revision < w->min_rev)
        return;
    size_t k = select_events(h, w, ev, n, w->min_rev);
    if (k > 0 && !deliver_events(w->stream, w, h->scratch, k, revision))
        watch_make_unsynced(w, revision, true);
}

int watch_hub_notify(watch_hub *h, const watch_event *events, size_t n, int64_t revision)
{
    assert(!h->in_callback);
    if (revision <= h->current_rev)
        return WATCH_EINVAL;
    h->current_rev = revision;
    h->round++;
    if (n == 0)
        return WATCH_OK;
    if (!reserve_scratch(h, n)) {
        /* out of memory: every synced watcher that matches becomes a victim; history
         * delivers it later */
        for (watch_stream *s = h->streams; s; s = s->next) {
            for (size_t i = 0; i < s->n; i++) {
                watcher *w = s->w[i];
                if (!w->synced || revision < w->min_rev)
                    continue;
                for (size_t j = 0; j < n; j++) {
                    if (event_passes(w, &events[j])) {
                        watch_make_unsynced(w, revision, true);
                        break;
                    }
                }
            }
        }
        return WATCH_OK;
    }
    /* range watchers (and single-key ones that did not get a bucket) */
    for (watcher *w = h->ranges, *next; w; w = next) {
        next = w->snext; /* notify_watcher may unlink w, never another watcher */
        notify_watcher(h, w, events, n, revision);
    }
    if (h->kb_count == 0)
        return WATCH_OK;
    if (!watch_build_chains(h, events, n)) {
        /* out of memory: scan every bucket's watchers against all events */
        for (size_t i = 0; i < h->kb_cap; i++) {
            for (kbucket *b = h->kb[i], *bnext; b; b = bnext) {
                bnext = b->next; /* b may be freed when its last watcher leaves */
                for (watcher *w = b->head, *next; w; w = next) {
                    next = w->snext;
                    notify_watcher(h, w, events, n, revision);
                }
            }
        }
        return WATCH_OK;
    }
    for (size_t i = 0; i < n; i++) {
        if (!h->chain_first[i])
            continue;
        const watch_bytes *k = &events[i].kv.key;
        kbucket *b = watch_bucket_find(h, watch_hash_key(k->data, k->len), k->data, k->len);
        if (!b)
            continue;
        for (watcher *w = b->head, *next; w; w = next) {
            next = w->snext;
            if (revision < w->min_rev)
                continue;
            size_t cnt = 0;
            for (size_t j = i; j != SIZE_MAX; j = h->chain_next[j]) {
                if (!event_passes(w, &events[j]))
                    continue;
                h->scratch[cnt] = events[j];
                if (!w->prev_kv)
                    h->scratch[cnt].prev_kv = NULL;
                cnt++;
            }
            if (cnt > 0 && !deliver_events(w->stream, w, h->scratch, cnt, revision))
                watch_make_unsynced(w, revision, true);
        }
    }
    return WATCH_OK;
}

/* One catch-up step for an unsynced watcher. Returns the work done (>= 1) and sets *rc on
 * a history failure. The watcher may be freed (compacted). */
static size_t sync_one(watch_hub *h, watcher *w, size_t budget, int *rc)
{
    watch_stream *s = w->stream;
    if (h->compact_rev > 0 && w->next_rev < h->compact_rev) {
        cancel_compacted(w, h->compact_rev);
        return 1;
    }
    if (w->next_rev > h->current_rev) {
        make_synced(w);
        return 1;
    }
    size_t max = budget < h->opts.chunk_events ? budget : h->opts.chunk_events;
    if (max == 0)
        max = 1;
    watch_history_req req = {.key = {w->key, w->key_len},
                             .range_end = {w->end, w->end_len},
                             .start_revision = w->next_rev,
                             .start_sub = w->next_sub,
                             .end_revision = h->current_rev,
                             .prev_kv = w->prev_kv,
                             .max_events = max};
    watch_history_resp resp = {0};
    h->in_callback = true;
    int hrc = h->opts.history(h->opts.history_ctx, &req, &resp);
    h->in_callback = false;
    h->history_reads++;
    if (hrc == WATCH_ECOMPACTED) {
        int64_t c = resp.compact_revision > 0 ? resp.compact_revision : h->compact_rev;
        watch_hub_set_compacted(h, c);
        cancel_compacted(w, c);
        return 1;
    }
    if (hrc != WATCH_OK) {
        if (*rc == WATCH_OK)
            *rc = WATCH_EHISTORY;
        watch_unsynced_unlink(h, w); /* retry later, after the others */
        unsynced_push(h, w);
        return 1;
    }
    assert(resp.complete || resp.next_revision > w->next_rev ||
           (resp.next_revision == w->next_rev && resp.next_sub > w->next_sub));
    size_t k = 0;
    if (resp.events_len > 0) {
        if (!reserve_scratch(h, resp.events_len)) {
            if (*rc == WATCH_OK)
                *rc = WATCH_ENOMEM;
            return 1;
        }
        k = select_events(h, w, resp.events, resp.events_len, 0);
    }
    /* header revision of a catch-up chunk: the current revision, as etcd (not "delivered up
     * to": a chunk may end inside a revision) */
    if (k > 0 && !deliver_events(s, w, h->scratch, k, h->current_rev)) {
        watch_unsynced_unlink(h, w);
        unsynced_push(h, w);
        return 1;
    }
    if (resp.complete) {
        w->next_rev = h->current_rev + 1;
        w->next_sub = 0;
        make_synced(w);
    } else {
        w->next_rev = resp.next_revision;
        w->next_sub = resp.next_sub;
        watch_unsynced_unlink(h, w);
        unsynced_push(h, w);
    }
    return resp.events_len > 0 ? resp.events_len : 1;
}

int watch_hub_sync(watch_hub *h, size_t max_events, bool *more)
{
    assert(!h->in_callback);
    if (max_events == 0)
        max_events = h->opts.chunk_events;
    h->round++;
    int rc = WATCH_OK;
    size_t budget = max_events;
    /* one pass over the watchers that are unsynced now; each gets at most one chunk */
    size_t todo = 0;
    for (watcher *w = h->uhead; w; w = w->unext)
        todo++;
    while (todo-- > 0 && budget > 0 && h->uhead) {
        watcher *w = h->uhead;
        if (stream_full(w->stream, 0)) {
            w->stream->blocked_round = h->round;
            watch_unsynced_unlink(h, w);
            unsynced_push(h, w);
            continue;
        }
        size_t used = sync_one(h, w, budget, &rc);
        budget = used >= budget ? 0 : budget - used;
    }
    bool any = false;
    for (watch_stream *s = h->streams; s; s = s->next) {
        if (s->progress_deferred && s->unsynced == 0)
            watch_send_stream_progress(s);
        if (s->unsynced > 0 && !stream_full(s, 0))
            any = true;
    }
    if (more)
        *more = any;
    return rc;
}

void watch_hub_progress(watch_hub *h, int64_t revision)
{
    assert(!h->in_callback);
    assert(revision == h->current_rev);
    (void)revision;
    for (watch_stream *s = h->streams; s; s = s->next) {
        for (size_t i = 0; i < s->n; i++) {
            watcher *w = s->w[i];
            if (!w->progress_notify || !w->synced)
                continue;
            if (w->had_events) {
                w->had_events = false;
                continue;
            }
            watch_response r = {.kind = WATCH_RESP_PROGRESS,
                                .watch_id = w->id,
                                .revision = h->current_rev,
                                .size_bytes = WATCH_RESPONSE_OVERHEAD_BYTES};
            if (stream_full(s, r.size_bytes))
                continue; /* dropped, as etcd when the channel is full */
            if (call_sink(s, &r) == WATCH_SINK_OK)
                s->pending_bytes += r.size_bytes;
        }
    }
}

void watch_hub_stats_get(const watch_hub *h, watch_hub_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->streams = h->nstreams;
    for (const watch_stream *s = h->streams; s; s = s->next) {
        out->watchers += s->n;
        for (size_t i = 0; i < s->n; i++) {
            if (s->w[i]->synced)
                out->synced++;
            else {
                out->unsynced++;
                if (s->w[i]->victim)
                    out->victims++;
            }
        }
    }
    out->events_delivered = h->events_delivered;
    out->history_reads = h->history_reads;
}
