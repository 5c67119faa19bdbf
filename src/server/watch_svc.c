/*
 * watch_svc.c: the Watch service: gRPC streams on the watch hub (src/watch).
 *
 * After every applied batch the member feeds the hub the events of each new
 * revision (read back from the store, prev_kv included), then lets it catch
 * up unsynced watchers in bounded steps. A stream's client that does not
 * read makes its transport queue grow; past a limit the sink refuses events
 * and the hub re-reads them from history later, so nothing grows without
 * bound in the member.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "etcdserverpb/rpc.pb-c.h"
#include "server/member_internal.h"
#include "watch/watch.h"

#define WATCH_SEND_LIMIT_BYTES (8u << 20) /* transport queue past which events wait */
#define WATCH_SYNC_BUDGET      4096       /* history events per catch-up step */
#define WATCH_PROGRESS_MS      (10 * 60 * 1000)

typedef struct watch_call {
    member *m;
    api_call *call;
    watch_stream *stream;
} watch_call;

/* ------------------------------------------------------------- history */

static watch_kv to_wkv(const mvcc_kv *kv)
{
    return (watch_kv){.key = {kv->key.data, kv->key.len},
                      .create_revision = kv->create_revision,
                      .mod_revision = kv->mod_revision,
                      .version = kv->version,
                      .value = {kv->value.data, kv->value.len},
                      .lease = kv->lease};
}

/* Reads events with mvcc_events into the member's watch buffers. */
static int read_history(member *m, const watch_history_req *req, watch_history_resp *resp)
{
    mvcc_arena_reset(&m->watch_arena);
    mvcc_events_req mr = {.key = {req->key.data, req->key.len},
                          .range_end = {req->range_end.data, req->range_end.len},
                          .start_revision = req->start_revision,
                          .start_sub = req->start_sub,
                          .end_revision = req->end_revision,
                          .prev_kv = req->prev_kv,
                          .max_events = req->max_events};
    mvcc_events_resp r;
    memset(&r, 0, sizeof r);
    memset(resp, 0, sizeof(*resp));
    int rc = mvcc_events(storage_mvcc(m->st), &m->watch_arena, &mr, &r, NULL);
    if (rc == MVCC_ECOMPACTED) {
        resp->compact_revision = r.compact_revision;
        return WATCH_ECOMPACTED;
    }
    if (rc != MVCC_OK)
        return WATCH_EHISTORY;
    if (r.events_len > m->watch_cap) {
        size_t cap = r.events_len * 2;
        watch_event *ev = realloc(m->watch_ev, cap * sizeof(*ev));
        if (!ev)
            return WATCH_ENOMEM;
        m->watch_ev = ev;
        watch_kv *prev = realloc(m->watch_prev, cap * sizeof(*prev));
        if (!prev)
            return WATCH_ENOMEM;
        m->watch_prev = prev;
        m->watch_cap = cap;
    }
    for (size_t i = 0; i < r.events_len; i++) {
        const mvcc_event *e = &r.events[i];
        m->watch_ev[i] =
            (watch_event){.type = e->type == MVCC_EVENT_PUT ? WATCH_EVENT_PUT : WATCH_EVENT_DELETE,
                          .kv = to_wkv(&e->kv)};
        if (e->prev_kv) {
            m->watch_prev[i] = to_wkv(e->prev_kv);
            m->watch_ev[i].prev_kv = &m->watch_prev[i];
        }
    }
    resp->events = m->watch_ev;
    resp->events_len = r.events_len;
    resp->next_revision = r.next_revision;
    resp->next_sub = r.next_sub;
    resp->complete = r.complete;
    return WATCH_OK;
}

static int history_cb(void *ctx, const watch_history_req *req, watch_history_resp *resp)
{
    return read_history(ctx, req, resp);
}

/* --------------------------------------------------------------- sink */

/* Packs and sends one WatchResponse: events [from, to) of an events response (watch_pb), or
 * a created, canceled or progress response, which carry none. */
static int send_piece(watch_call *wc, const watch_response *resp, size_t from, size_t to,
                      bool fragment)
{
    member *m = wc->m;
    uint64_t cluster_id, member_id, term;
    member_header_ids(m, &cluster_id, &member_id, &term);
    if (resp->kind == WATCH_RESP_EVENTS) {
        assert(!resp->created && !resp->canceled && !resp->compact_revision &&
               !resp->cancel_reason);
        size_t len = 0;
        const uint8_t *msg =
            watch_pb_events(&m->watch_pb, cluster_id, member_id, term, resp->revision,
                            resp->watch_id, fragment, resp->events + from, to - from, &len);
        if (!msg)
            return -1;
        api_call_send(wc->call, msg, len);
        return 0;
    }
    assert(from == to);
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    h.cluster_id = cluster_id;
    h.member_id = member_id;
    h.raft_term = term;
    h.revision = resp->revision;
    Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    r.header = &h;
    r.watch_id = resp->watch_id;
    r.created = resp->created;
    r.canceled = resp->canceled;
    r.compact_revision = resp->compact_revision;
    if (resp->cancel_reason)
        r.cancel_reason = (char *)resp->cancel_reason;
    r.fragment = fragment;
    uint8_t *buf;
    size_t len;
    int rc = member_pack(&r.base, &buf, &len);
    if (rc == 0) {
        api_call_send(wc->call, buf, len);
        free(buf);
    }
    return rc;
}

static int sink(void *ctx, watch_stream *stream, const watch_response *resp)
{
    watch_call *wc = ctx;
    bool control = resp->kind == WATCH_RESP_CREATED || resp->kind == WATCH_RESP_CANCELED;
    if (!control && api_call_pending_send_bytes(wc->call) > WATCH_SEND_LIMIT_BYTES)
        return WATCH_SINK_FULL; /* the hub re-reads these from history later */
    if (resp->fragment && resp->events_len > 1) {
        size_t ends[4096];
        size_t base = 64; /* header and flags */
        size_t pieces =
            watch_fragment_split(resp->events, resp->events_len, base, wc->m->cfg.max_request_bytes,
                                 ends, sizeof ends / sizeof ends[0]);
        if (pieces > 0 && ends[pieces - 1] == resp->events_len) {
            size_t from = 0;
            for (size_t i = 0; i < pieces; i++) {
                if (send_piece(wc, resp, from, ends[i], i + 1 < pieces) != 0)
                    break;
                from = ends[i];
            }
            watch_stream_drained(stream, resp->size_bytes);
            return WATCH_SINK_OK;
        }
    }
    (void)send_piece(wc, resp, 0, resp->events_len, false);
    /* the bytes now sit in the connection's queue, which the check above watches */
    watch_stream_drained(stream, resp->size_bytes);
    return WATCH_SINK_OK;
}

/* ------------------------------------------------------------ the RPC */

static void sync_soon(member *m);

static void on_watch_message(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    member *m = ud;
    watch_call *wc = api_call_get_ud(call);
    if (!wc) {
        wc = calloc(1, sizeof(*wc));
        if (!wc) {
            member_reply_error(call, 8, "etcdserver: out of memory");
            return;
        }
        wc->m = m;
        wc->call = call;
        cord_error e;
        if (watch_stream_open(m->watch, sink, wc, &wc->stream, &e) != WATCH_OK) {
            free(wc);
            member_reply_error(call, 8, "etcdserver: too many watch streams");
            return;
        }
        api_call_set_ud(call, wc);
    }
    Etcdserverpb__WatchRequest *rq = etcdserverpb__watch_request__unpack(NULL, len, msg);
    if (!rq) {
        member_reply_error(call, 3, "etcdserver: malformed request");
        return;
    }
    switch (rq->request_union_case) {
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST: {
        Etcdserverpb__WatchCreateRequest *c = rq->create_request;
        watch_create_req req = {.key = {c->key.data, c->key.len},
                                .range_end = {c->range_end.data, c->range_end.len},
                                .start_revision = c->start_revision,
                                .watch_id = c->watch_id,
                                .prev_kv = c->prev_kv,
                                .progress_notify = c->progress_notify,
                                .fragment = c->fragment};
        for (size_t i = 0; i < c->n_filters; i++) {
            if (c->filters[i] == ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT)
                req.filters |= WATCH_FILTER_NOPUT;
            else if (c->filters[i] == ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NODELETE)
                req.filters |= WATCH_FILTER_NODELETE;
        }
        (void)watch_create(wc->stream, &req, NULL, NULL); /* failures answered by the hub */
        sync_soon(m);
        break;
    }
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST:
        (void)watch_cancel(wc->stream, rq->cancel_request->watch_id, NULL);
        break;
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST:
        watch_stream_request_progress(wc->stream);
        break;
    default:
        break;
    }
    etcdserverpb__watch_request__free_unpacked(rq, NULL);
}

static void on_watch_half_close(api_call *call, void *ud)
{
    (void)ud;
    api_call_finish(call, 0, NULL); /* as etcd: the stream ends when the client's does */
}

static void on_watch_closed(api_call *call, void *ud)
{
    (void)ud;
    watch_call *wc = api_call_get_ud(call);
    if (!wc)
        return;
    watch_stream_close(wc->stream);
    free(wc);
}

const api_method watch_methods[] = {
    {"/etcdserverpb.Watch/Watch", on_watch_message, on_watch_closed, NULL, on_watch_half_close},
};
const size_t watch_n_methods = 1;

/* ----------------------------------------------------- feeding the hub */

static void on_sync_timer(uv_timer_t *t)
{
    member *m = t->data;
    bool more = false;
    (void)watch_hub_sync(m->watch, WATCH_SYNC_BUDGET, &more);
    if (more)
        uv_timer_start(&m->watch_sync_timer, on_sync_timer, 10, 0);
}

static void sync_soon(member *m)
{
    if (!uv_is_active((uv_handle_t *)&m->watch_sync_timer))
        uv_timer_start(&m->watch_sync_timer, on_sync_timer, 0, 0);
}

static void on_progress_timer(uv_timer_t *t)
{
    member *m = t->data;
    watch_hub_progress(m->watch, watch_hub_revision(m->watch));
}

void watch_svc_after_apply(member *m)
{
    mvcc_status st;
    if (mvcc_status_revisions(storage_mvcc(m->st), &st) != MVCC_OK)
        return;
    if (st.compact_revision > 0)
        watch_hub_set_compacted(m->watch, st.compact_revision);
    if (!watch_hub_has_synced(m->watch)) {
        /* nobody to deliver to: no history to read, only the revision moves */
        if (st.current_revision > watch_hub_revision(m->watch))
            (void)watch_hub_notify(m->watch, NULL, 0, st.current_revision);
    }
    static const uint8_t zero = 0;
    for (int64_t rev = watch_hub_revision(m->watch) + 1; rev <= st.current_revision; rev++) {
        watch_history_req req = {.key = {&zero, 1},
                                 .range_end = {&zero, 1},
                                 .start_revision = rev,
                                 .end_revision = rev,
                                 .prev_kv = true,
                                 .max_events = 100000};
        watch_history_resp resp;
        int rc = read_history(m, &req, &resp);
        if (rc != WATCH_OK) {
            /* compacted already (possible right after a snapshot install): skip it */
            resp.events_len = 0;
        }
        (void)watch_hub_notify(m->watch, resp.events, resp.events_len, rev);
    }
    /* only when there is catch-up work: an armed 0 ms timer makes the loop poll without
     * blocking, and this runs on every loop turn */
    if (watch_hub_has_unsynced(m->watch))
        sync_soon(m);
}

int watch_svc_start(member *m, cord_error *err)
{
    mvcc_status st;
    memset(&st, 0, sizeof st);
    (void)mvcc_status_get(storage_mvcc(m->st), &st, NULL);
    mvcc_arena_init(&m->watch_arena, 0);
    watch_pb_init(&m->watch_pb);
    watch_hub_options o = {.history = history_cb,
                           .history_ctx = m,
                           .current_revision = st.current_revision > 0 ? st.current_revision : 1,
                           .compact_revision = st.compact_revision,
                           .pending_limit_bytes = WATCH_SEND_LIMIT_BYTES};
    if (watch_hub_new(&o, &m->watch, err) != WATCH_OK)
        return -1;
    uv_timer_init(m->loop, &m->watch_sync_timer);
    m->watch_sync_timer.data = m;
    uv_timer_init(m->loop, &m->watch_progress_timer);
    m->watch_progress_timer.data = m;
    uv_timer_start(&m->watch_progress_timer, on_progress_timer, WATCH_PROGRESS_MS,
                   WATCH_PROGRESS_MS);
    return 0;
}

void watch_svc_free(member *m)
{
    watch_hub_free(m->watch);
    m->watch = NULL;
    mvcc_arena_reset(&m->watch_arena);
    watch_pb_free(&m->watch_pb);
    free(m->watch_ev);
    free(m->watch_prev);
}
