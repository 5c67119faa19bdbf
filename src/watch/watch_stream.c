/*
 * watch_stream.c — streams and their watchers: open/close, create (ids, ranges, created
 * responses), cancel, progress requests, pending bytes.
 */
#include "watch/watch_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static size_t find_index(const watch_stream *s, int64_t id, bool *found)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->w[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < s->n && s->w[lo]->id == id;
    return lo;
}

static void watcher_free(watcher *w)
{
    free(w->key);
    free(w->end);
    free(w);
}

/* Removes w from its stream (and the unsynced list) and frees it. */
void watch_watcher_remove(watcher *w)
{
    watch_stream *s = w->stream;
    bool found;
    size_t i = find_index(s, w->id, &found);
    assert(found && s->w[i] == w);
    memmove(&s->w[i], &s->w[i + 1], (s->n - i - 1) * sizeof(*s->w));
    s->n--;
    if (!w->synced) {
        watch_unsynced_unlink(s->hub, w);
        s->unsynced--;
    } else {
        watch_index_remove(s->hub, w);
    }
    watcher_free(w);
}

void watch_send_stream_progress(watch_stream *s)
{
    watch_response r = {.kind = WATCH_RESP_PROGRESS,
                        .watch_id = WATCH_PROGRESS_WATCH_ID,
                        .revision = s->hub->current_rev};
    watch_send_control(s, &r);
    s->progress_deferred = false;
}

/* ---------------------------------------------------------------------------------------- */
/* Streams                                                                                    */

int watch_stream_open(watch_hub *h, watch_sink_fn sink, void *sink_ctx, watch_stream **out,
                      cord_error *err)
{
    assert(!h->in_callback);
    if (!sink)
        return watch_seterr(err, WATCH_EINVAL, "watch: a sink is required");
    if (h->nstreams >= h->opts.max_streams)
        return watch_seterr(err, WATCH_ETOOMANY, "watch: too many streams (%u)",
                            h->opts.max_streams);
    watch_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return watch_seterr(err, WATCH_ENOMEM, "watch: out of memory");
    s->hub = h;
    s->sink = sink;
    s->sink_ctx = sink_ctx;
    s->next = h->streams;
    if (h->streams)
        h->streams->prev = s;
    h->streams = s;
    h->nstreams++;
    *out = s;
    return WATCH_OK;
}

void watch_stream_close(watch_stream *s)
{
    if (!s)
        return;
    watch_hub *h = s->hub;
    assert(!h->in_callback);
    while (s->n > 0)
        watch_watcher_remove(s->w[s->n - 1]);
    free(s->w);
    if (s->prev)
        s->prev->next = s->next;
    else
        h->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    h->nstreams--;
    free(s);
}

static void send_create_failure(watch_stream *s, int code)
{
    watch_response r = {.kind = WATCH_RESP_CREATED,
                        .watch_id = -1,
                        .revision = s->hub->current_rev,
                        .created = true,
                        .canceled = true,
                        .cancel_reason = watch_strerror(code)};
    watch_send_control(s, &r);
}

static uint8_t *dup_bytes(watch_bytes b)
{
    uint8_t *p = malloc(b.len ? b.len : 1);
    if (p && b.len)
        memcpy(p, b.data, b.len);
    return p;
}

int watch_create(watch_stream *s, const watch_create_req *req, int64_t *watch_id, cord_error *err)
{
    watch_hub *h = s->hub;
    assert(!h->in_callback);
    static const uint8_t zero = 0;
    watch_bytes key = req->key;
    if (key.len == 0) /* etcd: "\0" is the smallest key */
        key = (watch_bytes){&zero, 1};
    watch_bytes end = req->range_end;
    bool from_key = end.len == 1 && end.data[0] == 0;
    if (end.len > 0 && !from_key && watch_bytes_cmp(key.data, key.len, end.data, end.len) >= 0) {
        send_create_failure(s, WATCH_EEMPTYRANGE);
        return watch_seterr(err, WATCH_EEMPTYRANGE, "%s", watch_strerror(WATCH_EEMPTYRANGE));
    }
    int64_t id = req->watch_id;
    bool found;
    size_t pos;
    if (id != 0) {
        pos = find_index(s, id, &found);
        if (found) {
            send_create_failure(s, WATCH_EDUPID);
            return watch_seterr(err, WATCH_EDUPID, "%s", watch_strerror(WATCH_EDUPID));
        }
    } else {
        for (;;) {
            pos = find_index(s, s->next_id, &found);
            if (!found)
                break;
            s->next_id++;
        }
        id = s->next_id++;
    }
    if (s->n >= h->opts.max_watchers_per_stream) {
        send_create_failure(s, WATCH_ETOOMANY);
        return watch_seterr(err, WATCH_ETOOMANY, "watch: too many watchers on the stream (%u)",
                            h->opts.max_watchers_per_stream);
    }
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 8;
        watcher **nw = realloc(s->w, ncap * sizeof(*nw));
        if (!nw)
            goto nomem;
        s->w = nw;
        s->cap = ncap;
    }
    watcher *w = calloc(1, sizeof(*w));
    if (!w)
        goto nomem;
    w->key = dup_bytes(key);
    w->key_len = key.len;
    if (end.len) {
        w->end = dup_bytes(end);
        w->end_len = end.len;
    }
    if (!w->key || (end.len && !w->end)) {
        watcher_free(w);
        goto nomem;
    }
    w->id = id;
    w->stream = s;
    w->from_key = from_key;
    w->filters = req->filters;
    w->prev_kv = req->prev_kv;
    w->progress_notify = req->progress_notify;
    w->fragment = req->fragment;
    w->synced = true;
    watch_index_add(h, w);
    memmove(&s->w[pos + 1], &s->w[pos], (s->n - pos) * sizeof(*s->w));
    s->w[pos] = w;
    s->n++;

    /* created goes out before anything else of this watcher */
    watch_response r = {
        .kind = WATCH_RESP_CREATED, .watch_id = id, .revision = h->current_rev, .created = true};
    watch_send_control(s, &r);

    int64_t start = req->start_revision;
    if (start == 0 || start > h->current_rev) {
        w->min_rev = start > h->current_rev ? start : h->current_rev + 1;
    } else {
        watch_make_unsynced(w, start < 1 ? 1 : start, false);
    }
    if (watch_id)
        *watch_id = id;
    return WATCH_OK;
nomem:
    send_create_failure(s, WATCH_ENOMEM);
    return watch_seterr(err, WATCH_ENOMEM, "watch: out of memory");
}

int watch_cancel(watch_stream *s, int64_t watch_id, cord_error *err)
{
    assert(!s->hub->in_callback);
    bool found;
    size_t i = find_index(s, watch_id, &found);
    if (!found)
        return watch_seterr(err, WATCH_ENOTFOUND, "%s", watch_strerror(WATCH_ENOTFOUND));
    watch_watcher_remove(s->w[i]);
    watch_response r = {.kind = WATCH_RESP_CANCELED,
                        .watch_id = watch_id,
                        .revision = s->hub->current_rev,
                        .canceled = true};
    watch_send_control(s, &r);
    if (s->progress_deferred && s->unsynced == 0)
        watch_send_stream_progress(s);
    return WATCH_OK;
}

void watch_stream_request_progress(watch_stream *s)
{
    assert(!s->hub->in_callback);
    if (s->n == 0)
        return;
    if (s->unsynced == 0)
        watch_send_stream_progress(s);
    else
        s->progress_deferred = true;
}

void watch_stream_drained(watch_stream *s, size_t bytes)
{
    s->pending_bytes = bytes >= s->pending_bytes ? 0 : s->pending_bytes - bytes;
}

size_t watch_stream_pending_bytes(const watch_stream *s)
{
    return s->pending_bytes;
}

size_t watch_stream_watchers(const watch_stream *s)
{
    return s->n;
}
