/*
 * member.c: the loop that ties the Raft core to storage, peers and clients.
 * See member.h for how a request flows.
 */
#include "server/member_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/fileio.h"
#include "common/log.h"
#include "etcdserverpb/rpc.pb-c.h"
#include "server/gateway.h" /* [gateway] */

/* ------------------------------------------------------------------- ids */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t member_compute_id(const char *peer_url, const char *token)
{
    uint64_t h = fnv1a(0xcbf29ce484222325ull, peer_url, strlen(peer_url));
    h = fnv1a(h, "/", 1);
    h = fnv1a(h, token, strlen(token));
    return h ? h : 1;
}

uint64_t member_compute_cluster_id(const char *token)
{
    uint64_t h = fnv1a(0xcbf29ce484222325ull, "cord-cluster/", 13);
    h = fnv1a(h, token, strlen(token));
    return h ? h : 1;
}

/* --------------------------------------------------------------- waiters */

static uint32_t bucket_of(uint64_t id)
{
    return (uint32_t)((id * 0x9e3779b97f4a7c15ull) >> 52) % MEMBER_WAITER_BUCKETS;
}

waiter *member_waiter_find(member *m, uint64_t id)
{
    for (waiter *w = m->buckets[bucket_of(id)]; w; w = w->next_in_bucket)
        if (w->id == id)
            return w;
    return NULL;
}

waiter *member_waiter_new(member *m, api_call *call, uint8_t kind, uint8_t state)
{
    if (m->n_waiters >= MEMBER_MAX_WAITERS)
        return NULL;
    waiter *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->id = ++m->next_req_id;
    if (w->id == 0) /* 0 means "no waiter" in an entry */
        w->id = ++m->next_req_id;
    w->call = call;
    w->kind = kind;
    w->state = state;
    w->deadline_tick = m->ticks + m->request_timeout_ticks;
    uint32_t b = bucket_of(w->id);
    w->next_in_bucket = m->buckets[b];
    m->buckets[b] = w;
    w->next_all = m->all;
    if (m->all)
        m->all->prev_all = w;
    m->all = w;
    m->n_waiters++;
    api_call_set_ud(call, w);
    return w;
}

static void waiter_free(member *m, waiter *w);

void member_waiter_release(member *m, waiter *w)
{
    waiter_free(m, w);
}

static void waiter_free(member *m, waiter *w)
{
    waiter **pp = &m->buckets[bucket_of(w->id)];
    while (*pp != w)
        pp = &(*pp)->next_in_bucket;
    *pp = w->next_in_bucket;
    if (w->prev_all)
        w->prev_all->next_all = w->next_all;
    else
        m->all = w->next_all;
    if (w->next_all)
        w->next_all->prev_all = w->prev_all;
    if (w->state == W_READ_APPLY) {
        if (w->prev_read)
            w->prev_read->next_read = w->next_read;
        else
            m->reads = w->next_read;
        if (w->next_read)
            w->next_read->prev_read = w->prev_read;
    }
    api_call *ended = w->end_stream ? w->call : NULL;
    if (w->call)
        api_call_set_ud(w->call, NULL);
    free(w->req);
    free(w);
    m->n_waiters--;
    if (ended) {
        for (waiter *o = m->all; o; o = o->next_all)
            if (o->call == ended)
                return; /* another answer is still due */
        api_call_finish(ended, 0, NULL);
    }
}

void member_stream_half_close(member *m, api_call *call)
{
    bool pending = false;
    for (waiter *w = m->all; w; w = w->next_all)
        if (w->call == call && w->streaming) {
            w->end_stream = true;
            pending = true;
        }
    if (!pending)
        api_call_finish(call, 0, NULL);
}

/* The client went away: forget its call in every waiter (a stream may have
 * several), keep the waiters until their entries are applied. */
static void on_call_closed(api_call *call, void *ud)
{
    member *m = ud;
    for (waiter *w = m->all; w; w = w->next_all)
        if (w->call == call)
            w->call = NULL;
}

void member_reply_error(api_call *call, int grpc_status, const char *message)
{
    if (call)
        api_call_finish(call, grpc_status, message);
}

static void waiter_finish_error(member *m, waiter *w, int grpc_status, const char *message)
{
    if (w->call && !w->streaming)
        api_call_finish(w->call, grpc_status, message);
    waiter_free(m, w);
}

void member_reply_later(member *m, uint64_t waiter_id, int grpc_status, const char *message,
                        uint8_t *msg, size_t len)
{
    if (m->n_replies == m->cap_replies) {
        uint32_t ncap = m->cap_replies ? 2 * m->cap_replies : 64;
        pending_reply *p = realloc(m->replies, sizeof(*p) * ncap);
        if (!p) {
            free(msg);
            return; /* the waiter times out */
        }
        m->replies = p;
        m->cap_replies = ncap;
    }
    m->replies[m->n_replies++] = (pending_reply){.waiter_id = waiter_id,
                                                 .grpc_status = grpc_status,
                                                 .grpc_message = message,
                                                 .msg = msg,
                                                 .len = len};
}

static void flush_replies(member *m)
{
    for (uint32_t i = 0; i < m->n_replies; i++) {
        pending_reply *p = &m->replies[i];
        waiter *w = member_waiter_find(m, p->waiter_id);
        if (w) {
            if (w->call && w->streaming) {
                if (p->grpc_status == 0)
                    api_call_send(w->call, p->msg, p->len);
            } else if (w->call) {
                if (p->grpc_status == 0)
                    api_call_reply(w->call, p->msg, p->len);
                else
                    api_call_finish(w->call, p->grpc_status, p->grpc_message);
            }
            waiter_free(m, w);
        }
        free(p->msg);
    }
    m->n_replies = 0;
}

static void drop_replies(member *m)
{
    for (uint32_t i = 0; i < m->n_replies; i++)
        free(m->replies[i].msg);
    m->n_replies = 0;
}

/* ------------------------------------------------------------- requests */

static void raft_error_reply(api_call *call, int rc)
{
    switch (rc) {
    case RAFT_ENOLEADER:
    case RAFT_ENOTLEADER:
        member_reply_error(call, 14, "etcdserver: no leader");
        break;
    case RAFT_EBUSY:
        member_reply_error(call, 8, "etcdserver: too many requests");
        break;
    case RAFT_ETRANSFER:
        member_reply_error(call, 14, "etcdserver: leadership transfer in progress");
        break;
    case RAFT_ETOOLARGE:
        member_reply_error(call, 3, "etcdserver: request is too large");
        break;
    case RAFT_ESTOPPED:
        member_reply_error(call, 9,
                           "etcdserver: the member has been permanently removed from the cluster");
        break;
    default:
        member_reply_error(call, 13, raft_strerror(rc));
        break;
    }
}

/* Encodes one entry (magic, kind, origin, waiter id, request) and hands it to
 * the core. waiter_id 0: nobody waits for the answer. */
static int propose_entry(member *m, uint8_t kind, uint64_t waiter_id, const uint8_t *req,
                         size_t len)
{
    uint8_t *buf = malloc(ENTRY_HEADER_LEN + len);
    if (!buf)
        return RAFT_ENOMEM;
    buf[0] = ENTRY_MAGIC;
    buf[1] = kind;
    bytes_put64(buf + 2, m->id);
    bytes_put64(buf + 10, waiter_id);
    if (len)
        memcpy(buf + ENTRY_HEADER_LEN, req, len);
    int rc = raft_propose(m->r, buf, (uint32_t)(ENTRY_HEADER_LEN + len));
    free(buf);
    return rc;
}

int member_propose_own(member *m, uint8_t kind, const uint8_t *req, size_t len)
{
    if (m->failed)
        return RAFT_ESTOPPED;
    if (len > m->cfg.max_request_bytes)
        return RAFT_ETOOLARGE;
    return propose_entry(m, kind, 0, req, len);
}

/* As etcd (maxGapBetweenApplyAndCommitIndex): while a member's applies lag its commits by more
 * than this many entries (a defragmentation holds them), its clients' proposals are refused
 * rather than kept in memory behind them. */
#define MAX_APPLY_GAP 5000

static waiter *propose_common(member *m, api_call *call, uint8_t kind, const uint8_t *req,
                              size_t len, bool streaming)
{
    if (m->failed) {
        member_reply_error(call, 14, "etcdserver: member is stopping");
        return NULL;
    }
    if (len > m->cfg.max_request_bytes) {
        member_reply_error(call, 3, "etcdserver: request is too large");
        return NULL;
    }
    if (call && raft_apply_gap(m->r) > MAX_APPLY_GAP) {
        member_reply_error(call, 8, "etcdserver: too many requests");
        return NULL;
    }
    if (!call) { /* the member's own request: nobody waits */
        (void)member_propose_own(m, kind, req, len);
        return NULL;
    }
    waiter *w = member_waiter_new(m, call, kind, W_PROPOSED);
    if (!w) {
        member_reply_error(call, 8, "etcdserver: too many requests");
        return NULL;
    }
    w->streaming = streaming;
    int rc = propose_entry(m, kind, w->id, req, len);
    if (rc != 0) {
        w->call = NULL;
        api_call_set_ud(call, NULL);
        waiter_free(m, w);
        if (!streaming)
            raft_error_reply(call, rc);
        return NULL;
    }
    return w;
}

static void defer(member *m, uint8_t kind, void (*fn)(member *, const uint8_t *, size_t),
                  const uint8_t *req, size_t len)
{
    if (m->n_deferred == m->cap_deferred) {
        uint32_t ncap = m->cap_deferred ? 2 * m->cap_deferred : 16;
        struct deferred_prop *p = realloc(m->deferred, sizeof(*p) * ncap);
        if (!p)
            return; /* the asker times out */
        m->deferred = p;
        m->cap_deferred = ncap;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return;
    memcpy(copy, req, len);
    m->deferred[m->n_deferred++] =
        (struct deferred_prop){.kind = kind, .fn = fn, .data = copy, .len = len};
}

void member_propose_later(member *m, uint8_t kind, const uint8_t *req, size_t len)
{
    defer(m, kind, NULL, req, len);
}

void member_after_apply(member *m, void (*fn)(member *m, const uint8_t *data, size_t len),
                        const uint8_t *data, size_t len)
{
    defer(m, 0, fn, data, len);
}

static void propose_deferred(member *m)
{
    for (uint32_t i = 0; i < m->n_deferred; i++) {
        if (m->deferred[i].fn)
            m->deferred[i].fn(m, m->deferred[i].data, m->deferred[i].len);
        else
            member_propose(m, NULL, m->deferred[i].kind, m->deferred[i].data, m->deferred[i].len);
        free(m->deferred[i].data);
    }
    m->n_deferred = 0;
}

void member_propose(member *m, api_call *call, uint8_t kind, const uint8_t *req, size_t len)
{
    (void)propose_common(m, call, kind, req, len, false);
}

waiter *member_propose_waiter(member *m, api_call *call, uint8_t kind, const uint8_t *req,
                              size_t len)
{
    return propose_common(m, call, kind, req, len, false);
}

void member_propose_stream(member *m, api_call *call, uint8_t kind, const uint8_t *req, size_t len)
{
    (void)propose_common(m, call, kind, req, len, true);
}

void member_read(member *m, api_call *call, uint8_t kind, const uint8_t *req, size_t len)
{
    waiter *w = member_waiter_new(m, call, kind, W_READ_INDEX);
    if (!w) {
        member_reply_error(call, 8, "etcdserver: too many requests");
        return;
    }
    w->req = malloc(len ? len : 1);
    if (!w->req) {
        waiter_finish_error(m, w, 8, "etcdserver: too many requests");
        return;
    }
    memcpy(w->req, req, len);
    w->req_len = len;
    int rc = raft_read_index(m->r, w->id);
    if (rc != 0) {
        w->call = NULL;
        api_call_set_ud(call, NULL);
        waiter_free(m, w);
        raft_error_reply(call, rc);
    }
}

void member_header_ids(member *m, uint64_t *cluster_id, uint64_t *member_id, uint64_t *term)
{
    *cluster_id = m->cluster_id;
    *member_id = m->id;
    *term = raft_term(m->r);
}

void member_fill_header_fields(member *m, int64_t revision, uint64_t *cluster_id,
                               uint64_t *member_id, int64_t *rev, uint64_t *term)
{
    member_header_ids(m, cluster_id, member_id, term);
    if (revision <= 0) {
        mvcc_status s;
        if (mvcc_status_revisions(storage_mvcc(m->st), &s) == MVCC_OK)
            revision = s.current_revision;
    }
    *rev = revision;
}

/* Serves the reads whose read point is now applied. */
static void serve_reads(member *m)
{
    uint64_t applied, term;
    storage_applied_get(m->st, &applied, &term);
    waiter *w = m->reads;
    while (w) {
        waiter *next = w->next_read;
        if (w->read_index <= applied) {
            if (w->call)
                kv_serve_read(m, w->call, w->kind, w->req, w->req_len);
            waiter_free(m, w);
        }
        w = next;
    }
}

void member_move_leader(member *m, api_call *call, uint64_t target)
{
    if (raft_leader(m->r) != m->id) {
        member_reply_error(call, 9, "etcdserver: not leader");
        return;
    }
    if (target != m->id) {
        int rc = raft_transfer_leader(m->r, target);
        if (rc != 0) {
            member_reply_error(call, 9, "etcdserver: bad leader transferee");
            return;
        }
        waiter *w = member_waiter_new(m, call, REQ_MOVE_LEADER, W_TRANSFER);
        if (!w) {
            member_reply_error(call, 8, "etcdserver: too many requests");
            return;
        }
        w->read_index = target;
        return;
    }
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    member_fill_header_fields(m, 0, &h.cluster_id, &h.member_id, &h.revision, &h.raft_term);
    Etcdserverpb__MoveLeaderResponse r = ETCDSERVERPB__MOVE_LEADER_RESPONSE__INIT;
    r.header = &h;
    member_reply_pb(call, &r.base);
}

/* Leadership moved: answer the MoveLeader calls waiting for it. */
static void transfers_done(member *m, raft_id leader)
{
    waiter *w = m->all;
    while (w) {
        waiter *next = w->next_all;
        if (w->state == W_TRANSFER && leader != 0) {
            if (leader == w->read_index) {
                if (w->call) {
                    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
                    member_fill_header_fields(m, 0, &h.cluster_id, &h.member_id, &h.revision,
                                              &h.raft_term);
                    Etcdserverpb__MoveLeaderResponse r = ETCDSERVERPB__MOVE_LEADER_RESPONSE__INIT;
                    r.header = &h;
                    member_reply_pb(w->call, &r.base);
                }
                waiter_free(m, w);
            } else if (leader != m->id) {
                waiter_finish_error(m, w, 9, "etcdserver: leadership transfer went elsewhere");
            }
        }
        w = next;
    }
}

/* ---------------------------------------------------------------- apply */

static int exec_entry(void *ctx, mvcc_store *mv, const raft_entry *e, cord_error *err)
{
    member *m = ctx;
    if (e->len < ENTRY_HEADER_LEN || e->data[0] != ENTRY_MAGIC)
        return STORAGE_OK; /* not ours: changes nothing, on every member alike */
    uint8_t kind = e->data[1];
    uint64_t origin = bytes_get64(e->data + 2);
    uint64_t req_id = bytes_get64(e->data + 10);
    waiter *w = origin == m->id && req_id != 0 ? member_waiter_find(m, req_id) : NULL;
    if (w && (w->kind != kind || w->state != W_PROPOSED))
        w = NULL; /* not the request this entry carries: never answer it with this */
    int status = 0;
    const char *message = NULL;
    uint8_t *msg = NULL;
    size_t msg_len = 0;
    int arc;
    if (kind == REQ_ALARM)
        arc = maint_apply_alarm(m, mv, e->data + ENTRY_HEADER_LEN, e->len - ENTRY_HEADER_LEN,
                                w != NULL, &status, &message, &msg, &msg_len);
    else if (kind == REQ_MEMBER_FORWARD) {
        cluster_apply_forward(m, e->data + ENTRY_HEADER_LEN, e->len - ENTRY_HEADER_LEN, origin,
                              req_id, &status);
        arc = 0;
    } else if (kind == REQ_MEMBER_FORWARD_ANSWER) {
        cluster_apply_forward_answer(m, e->data + ENTRY_HEADER_LEN, e->len - ENTRY_HEADER_LEN);
        arc = 0;
    } else if (kind == REQ_MEMBER_UPDATE || kind == REQ_MEMBER_ATTR)
        arc = cluster_apply(m, mv, kind, e->data + ENTRY_HEADER_LEN, e->len - ENTRY_HEADER_LEN,
                            w != NULL, &status, &message, &msg, &msg_len);
    else if ((kind >= REQ_LEASE_GRANT && kind <= REQ_LEASE_RENEW) ||
             (kind >= REQ_LEASE_TTL && kind <= REQ_LEASE_RENEW_ANSWER))
        arc = lease_apply_from(m, mv, e->index, kind, e->data + ENTRY_HEADER_LEN,
                               e->len - ENTRY_HEADER_LEN, w != NULL, &status, &message, &msg,
                               &msg_len, origin, req_id);
    else
        arc = kv_apply(m, mv, kind, e->data + ENTRY_HEADER_LEN, e->len - ENTRY_HEADER_LEN,
                       w != NULL, &status, &message, &msg, &msg_len);
    if (arc != 0)
        return cord_error_set(err, STORAGE_EIO, 0,
                              "applying entry %llu: the key-value store failed",
                              (unsigned long long)e->index);
    if (w && w->nospace_reply) { /* the write that raised the alarm gets its error now */
        free(msg);
        msg = NULL;
        msg_len = 0;
        status = mvcc_grpc_status(MVCC_ENOSPACE, &message);
    }
    m->proposals_committed++;
    if (w && status != -1) /* -1: the answer comes later */
        member_reply_later(m, req_id, status, message, msg, msg_len);
    else
        free(msg);
    return STORAGE_OK;
}

/* ---------------------------------------------------------- the batches */

static void fail_member(member *m, const char *what, const cord_error *e)
{
    if (m->failed)
        return;
    m->failed = true;
    log_error("member: %s: %s; the member stops acknowledging writes", what, e->msg);
}

static void handle_reads(member *m, const struct raft_ready *rd)
{
    for (uint32_t i = 0; i < rd->n_reads; i++) {
        waiter *w = member_waiter_find(m, rd->reads[i].context);
        if (w && w->state == W_READ_INDEX) {
            w->state = W_READ_APPLY;
            w->read_index = rd->reads[i].index;
            w->prev_read = NULL;
            w->next_read = m->reads;
            if (m->reads)
                m->reads->prev_read = w;
            m->reads = w;
        }
    }
    for (uint32_t i = 0; i < rd->n_failed_reads; i++) {
        waiter *w = member_waiter_find(m, rd->failed_reads[i]);
        if (w && w->state == W_READ_INDEX)
            waiter_finish_error(m, w, 14, "etcdserver: leader changed");
    }
}

static void process_ready(member *m);

static void on_compact_timer(uv_timer_t *t)
{
    process_ready(t->data); /* also runs the next compaction step */
}

/* One bounded step of a scheduled compaction per loop turn, between batches,
 * so that reads and writes are never stalled behind it. */
static void compact_step(member *m)
{
    mvcc_status st;
    if (m->failed || m->defrag || /* the store must not change under its copy */
        mvcc_status_revisions(storage_mvcc(m->st), &st) != MVCC_OK || !st.compaction_pending)
        return;
    bool done = false;
    cord_error e;
    if (mvcc_compact_step(storage_mvcc(m->st), &done, &e) != MVCC_OK)
        log_warn("member: compaction step failed: %s", e.msg);
    else if (!done)
        uv_timer_start(&m->compact_timer, on_compact_timer, 1, 0);
}

static void start_sync(member *m, uint64_t seq);

static void stop_step(struct stop_ctx *s);

static void snap_work_cb(uv_work_t *w)
{
    member *m = w->data;
    storage_snapshot_work(m->st);
}

/* A snapshot that could not be written (a full disk) is tried again after 2 s, then after
 * twice as long each time it fails again, up to a minute: not a whole-store copy per batch. */
#define SNAPSHOT_RETRY_MIN_MS 2000
#define SNAPSHOT_RETRY_MAX_MS 60000

/* Ends a snapshot whose work is done: its WAL marker is appended (the next sync makes it
 * durable; sync_done then releases the segments it covers). */
static void snapshot_end(member *m)
{
    cord_error e;
    uint64_t made_before = storage_last_snapshot_made(m->st).index;
    if (storage_snapshot_end_async(m->st, m->r, &e) != STORAGE_OK) {
        if (!storage_failed(m->st)) {
            /* the copy or its file could not be written (a full disk): nothing changed, the
             * member goes on, and a later snapshot is tried after a backoff */
            m->snap_failures++;
            m->conf_since_snap = m->conf_since_snap || m->snap_after_conf;
            m->snap_retry_ms = m->snap_retry_ms ? m->snap_retry_ms * 2 : SNAPSHOT_RETRY_MIN_MS;
            if (m->snap_retry_ms > SNAPSHOT_RETRY_MAX_MS)
                m->snap_retry_ms = SNAPSHOT_RETRY_MAX_MS;
            m->snap_retry_at = uv_now(m->loop) + m->snap_retry_ms;
            log_warn("member: snapshot not taken (%s); the next one will be tried in %" PRIu64
                     " ms at the earliest",
                     e.msg, m->snap_retry_ms);
            return;
        }
        fail_member(m, "taking a snapshot", &e);
        return;
    }
    m->snap_retry_ms = 0;
    m->wal_dirty = true;
    storage_snapshot_made made = storage_last_snapshot_made(m->st);
    if (made.index != made_before) { /* not when the copy was given up */
        log_info("member %016" PRIx64 ": snapshot at index %" PRIu64 ": %" PRIu64
                 " bytes of store (%s; %" PRIu64 " bytes were free pages)",
                 m->id, made.index, made.data_bytes,
                 made.compacted ? "a compacting copy" : "its file as it is", made.free_bytes);
    }
}

static void snap_done_cb(uv_work_t *w, int status)
{
    member *m = w->data;
    (void)status;
    m->snap_inflight = false;
    if (m->stop) {
        storage_snapshot_abandon(m->st);
        stop_step(m->stop);
        return;
    }
    snapshot_end(m);
    process_ready(m);
}

/* Snapshots copy the whole store: the copy and the file are written on a worker while the
 * loop goes on; only the WAL marker and the release of segments happen here, at the end. */
static void snapshot_start(member *m)
{
    /* during a defragmentation: later, or its install would wait for this copy */
    if (m->snap_inflight || m->stopping || m->defrag)
        return;
    bool started = false;
    cord_error e;
    if (storage_snapshot_begin(m->st, m->r, &started, &e) != STORAGE_OK) {
        fail_member(m, "taking a snapshot", &e);
        return;
    }
    if (!started)
        return;
    m->log_bytes_since_snap = 0; /* the log after this point counts toward the next one */
    m->snap_after_conf = m->conf_since_snap;
    m->conf_since_snap = false;
    m->snap_inflight = true;
    m->snap_work.data = m;
    if (uv_queue_work(m->loop, &m->snap_work, snap_work_cb, snap_done_cb) != 0) {
        storage_snapshot_work(m->st); /* no worker: here */
        m->snap_inflight = false;
        snapshot_end(m);
    }
}

/* A follower needs entries the core no longer holds in memory: read them back from the WAL.
 * A failed read is answered with none (the core asks again, or sends a snapshot once one
 * covers them). */
static void answer_fetch(member *m, const raft_fetch *f)
{
    raft_entry *ents = NULL;
    uint32_t n = 0;
    cord_error e;
    if (storage_read_entries(m->st, f->from, f->max_bytes, &ents, &n, &e) != STORAGE_OK) {
        log_warn("member %016" PRIx64 ": reading the log from index %" PRIu64 " for %016" PRIx64
                 ": %s",
                 m->id, f->from, f->to, e.msg);
        n = 0;
    }
    int rc = raft_fetched(m->r, f->to, f->from, ents, n);
    if (rc == 0 && n > 0) {
        m->log_reads++;
        m->log_read_entries += n;
    }
    if (rc != 0)
        log_warn("member %016" PRIx64 ": the WAL's entries from index %" PRIu64
                 " were refused by the core: %s",
                 m->id, f->from, raft_strerror(rc));
    free(ents);
}

/* A snapshot copies the whole store. The core asks for one every --snapshot-count applied
 * entries; it is taken once the log written since the last one is at least that snapshot's
 * size too (or SNAPSHOT_LOG_CAP), so that copying the store costs no more than writing the log
 * did (a large store under a high write rate is otherwise copied again and again). The cap
 * bounds the WAL a restart replays: every entry after the snapshot is read into memory then.
 * After a membership change it is taken at once: a member that joins installs the snapshot,
 * and the member table in it must know the members it has to answer (a joiner that restarts
 * before applying the entries after an old snapshot dials addresses of departed members and
 * cannot answer the leader: a nemesis soak lost its leader that way). */
#define SNAPSHOT_LOG_CAP (256ull << 20)

static bool snapshot_due(member *m)
{
    if (m->snap_retry_ms && uv_now(m->loop) < m->snap_retry_at)
        return false;
    raft_status st;
    raft_get_status(m->r, &st);
    uint64_t need = st.snapshot_size < SNAPSHOT_LOG_CAP ? st.snapshot_size : SNAPSHOT_LOG_CAP;
    return m->conf_since_snap || m->log_bytes_since_snap >= need;
}

/* Raft batches are persisted with group commit and pipelining: a batch's WAL records are
 * buffered, its messages leave at once (the core holds back those that need durability),
 * and one fdatasync on a worker covers every batch buffered when it began. While it runs
 * the loop keeps taking batches; the next sync covers them. Committed entries are applied
 * as soon as the core hands them out (they are durable already). */
static void process_ready(member *m)
{
    while (!m->failed && raft_has_ready(m->r)) {
        if ((m->sync_inflight || m->snap_inflight || m->defrag) && raft_snapshot_pending(m->r))
            break; /* installing a snapshot wants the WAL and the store idle: after */
        struct raft_ready rd;
        raft_ready(m->r, &rd);
        /* Messages leave before the batch is persisted and applied (the core holds back every
         * one that promises durability). So a leader's new commit index reaches the followers
         * before it applies the entries: a long apply (a delete of 300,000 keys takes seconds)
         * then runs on every member at once, instead of the followers hearing nothing from a
         * busy leader for that long and electing another. */
        for (uint32_t i = 0; i < rd.n_messages; i++)
            (void)transport_send(m->tr, &rd.messages[i]); /* loss is tolerated */
        cord_error e;
        bool need_sync = false;
        int rc = storage_handle_ready_async(m->st, &rd, NULL, NULL, &need_sync, &e);
        if (rc != STORAGE_OK) {
            drop_replies(m);
            raft_advance(m->r, &rd);
            fail_member(m, "persisting a batch", &e);
            return;
        }
        if (rd.leader_changed) {
            if (rd.leader != 0 && rd.leader != m->last_leader)
                m->leader_changes++; /* as etcd: a leader seen, other than the last one */
            m->last_leader = rd.leader;
            transfers_done(m, rd.leader);
            log_info("member %016" PRIx64 ": leader is now %016" PRIx64 " (term %" PRIu64 ")",
                     m->id, rd.leader, raft_term(m->r));
        }
        bool leader_now = raft_leader(m->r) == m->id;
        if (leader_now != m->was_leader) {
            m->was_leader = leader_now;
            lease_svc_on_leader_change(m, leader_now);
        }
        if (rd.snapshot) {
            log_info("member %016" PRIx64 ": installed the leader's snapshot at index %" PRIu64
                     " (term %" PRIu64 ")",
                     m->id, rd.snapshot->index, rd.snapshot->term);
            cluster_load(m);
            m->log_bytes_since_snap = 0;
            int64_t now = (int64_t)uv_now(m->loop);
            if (lease_reload(m->leases, now, &e) != LEASE_OK)
                log_warn("member: reloading leases after a snapshot install: %s", e.msg);
        }
        handle_reads(m, &rd);
        bool want_snapshot = rd.want_snapshot;
        for (uint32_t i = 0; i < rd.n_entries; i++)
            m->log_bytes_since_snap += rd.entries[i].len;
        if (rd.conf_changed)
            m->conf_since_snap = true;
        raft_fetch fetches[RAFT_MAX_MEMBERS * 3];
        uint32_t n_fetches = 0;
        for (uint32_t i = 0; i < rd.n_fetches && n_fetches < RAFT_MAX_MEMBERS * 3; i++)
            fetches[n_fetches++] = rd.fetches[i];
        m->last_seq = rd.seq;
        raft_advance(m->r, &rd);
        for (uint32_t i = 0; i < n_fetches; i++)
            answer_fetch(m, &fetches[i]);
        propose_deferred(m);
        flush_replies(m);
        if (need_sync)
            m->wal_dirty = true;
        else if (!m->wal_dirty && !m->sync_inflight)
            raft_persisted(m->r, m->last_seq); /* nothing of it or before it is pending */
        if (want_snapshot && snapshot_due(m))
            snapshot_start(m);
    }
    if (!m->failed && !m->sync_inflight && m->wal_dirty) {
        if (m->stopping) { /* finish on this thread */
            cord_error e;
            int rc = storage_sync_begin(m->st, &e);
            if (rc == STORAGE_OK) {
                storage_sync_do(m->st);
                rc = storage_sync_end(m->st, &e);
            }
            if (rc == STORAGE_OK)
                rc = storage_snapshot_release(m->st, &e);
            if (rc != STORAGE_OK) {
                fail_member(m, "syncing the WAL", &e);
            } else {
                m->wal_dirty = false;
                raft_persisted(m->r, m->last_seq);
            }
        } else {
            start_sync(m, m->last_seq);
        }
    }
    serve_reads(m);
    if (m->tr)
        cluster_sync_transport(m);
    cluster_after_apply(m);
    if (m->watch)
        watch_svc_after_apply(m);
    compact_step(m);
}

static void sync_work(uv_work_t *w)
{
    member *m = w->data;
    storage_sync_do(m->st);
}

static void sync_done(uv_work_t *w, int status)
{
    member *m = w->data;
    (void)status;
    m->sync_inflight = false;
    cord_error e;
    if (storage_sync_end(m->st, &e) != STORAGE_OK ||
        storage_snapshot_release(m->st, &e) != STORAGE_OK) {
        fail_member(m, "syncing the WAL", &e);
    } else {
        raft_persisted(m->r, m->sync_seq);
        if (!m->wal_dirty && m->last_seq > m->sync_seq)
            raft_persisted(m->r, m->last_seq); /* the batches since needed no write */
    }
    if (m->stop) {
        stop_step(m->stop);
        return;
    }
    process_ready(m);
}

static void start_sync(member *m, uint64_t seq)
{
    cord_error e;
    if (storage_sync_begin(m->st, &e) != STORAGE_OK) {
        fail_member(m, "syncing the WAL", &e);
        return;
    }
    m->sync_inflight = true;
    m->wal_dirty = false;
    m->sync_seq = seq;
    m->sync_work.data = m;
    if (uv_queue_work(m->loop, &m->sync_work, sync_work, sync_done) != 0) {
        /* no worker: do it here rather than lose the batch */
        storage_sync_do(m->st);
        sync_done(&m->sync_work, 0);
    }
}

static void writeback_work_cb(uv_work_t *w)
{
    member *m = w->data;
    mvcc_writeback(storage_mvcc(m->st));
}

static void writeback_done_cb(uv_work_t *w, int status)
{
    member *m = w->data;
    (void)status;
    m->writeback_inflight = false;
    if (m->stop)
        stop_step(m->stop);
}

/* The store commits without fsync: its dirty pages are written back at a steady pace rather
 * than in the kernel's bursts of 30 s of commits, which hold up the WAL's fdatasync. */
static void on_writeback_timer(uv_timer_t *t)
{
    member *m = t->data;
    if (m->writeback_inflight || m->stopping || m->failed)
        return;
    m->writeback_inflight = true;
    m->writeback_work.data = m;
    if (uv_queue_work(m->loop, &m->writeback_work, writeback_work_cb, writeback_done_cb) != 0)
        m->writeback_inflight = false;
}

static void on_prepare(uv_prepare_t *h)
{
    process_ready(h->data);
}

static void on_tick(uv_timer_t *t)
{
    member *m = t->data;
    m->ticks++;
    raft_tick(m->r);
    lease_svc_tick(m);
    cluster_publish(m);
    waiter *w = m->all;
    while (w) {
        waiter *next = w->next_all;
        if (w->deadline_tick <= m->ticks)
            waiter_finish_error(m, w, 14, "etcdserver: request timed out");
        w = next;
    }
}

/* ------------------------------------------------------------- transport */

static void on_peer_message(void *ctx, const raft_msg *msg)
{
    member *m = ctx;
    if (m->failed)
        return;
    int rc = raft_step(m->r, msg);
    if (rc != 0)
        log_debug("member: dropped a %s from %016" PRIx64 ": %s", raft_msg_type_name(msg->type),
                  msg->from, raft_strerror(rc));
}

static int on_snapshot_fill(void *ctx, uint64_t snap_index, uint64_t offset, uint32_t len,
                            uint8_t *buf)
{
    member *m = ctx;
    size_t n = 0;
    cord_error e;
    if (storage_read_snapshot_chunk(m->st, snap_index, offset, len, buf, &n, &e) != STORAGE_OK ||
        n != len)
        return -1;
    return 0;
}

static void on_unreachable(void *ctx, raft_id peer)
{
    member *m = ctx;
    raft_report_unreachable(m->r, peer);
}

/* ------------------------------------------------------------------ HTTP */

static void http_health(api_http_req *req, void *ud)
{
    member *m = ud;
    bool ok = !m->failed && raft_leader(m->r) != 0;
    const char *body = ok ? "{\"health\":\"true\"}" : "{\"health\":\"false\"}";
    api_http_respond(req, ok ? 200 : 503, "application/json", body, strlen(body));
}

static void http_version(api_http_req *req, void *ud)
{
    (void)ud;
    const char *body = "{\"etcdserver\":\"3.4.23\",\"etcdcluster\":\"3.4.0\",\"cord\":\"0.1.0\"}";
    api_http_respond(req, 200, "application/json", body, strlen(body));
}

static void http_metrics(api_http_req *req, void *ud)
{
    member *m = ud;
    raft_status rs;
    raft_get_status(m->r, &rs);
    mvcc_status ms;
    memset(&ms, 0, sizeof ms);
    (void)mvcc_status_get(storage_mvcc(m->st), &ms, NULL);
    transport_stats ts;
    transport_get_stats(m->tr, &ts);
    uint64_t rss = 0;
    fileio_resident(&rss, NULL);
    char body[4096];
    int n = snprintf(
        body, sizeof body,
        "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
        "# TYPE process_resident_memory_bytes gauge\n"
        "process_resident_memory_bytes %" PRIu64 "\n"
        "# TYPE etcd_server_has_leader gauge\netcd_server_has_leader %d\n"
        "# TYPE etcd_server_is_leader gauge\netcd_server_is_leader %d\n"
        "# TYPE etcd_server_leader_changes_seen_total counter\n"
        "etcd_server_leader_changes_seen_total %" PRIu64 "\n"
        "# TYPE etcd_server_proposals_committed_total gauge\n"
        "etcd_server_proposals_committed_total %" PRIu64 "\n"
        "# TYPE etcd_server_proposals_applied_total gauge\n"
        "etcd_server_proposals_applied_total %" PRIu64 "\n"
        "# TYPE etcd_server_proposals_pending gauge\netcd_server_proposals_pending %u\n"
        "# TYPE etcd_debugging_mvcc_current_revision gauge\n"
        "etcd_debugging_mvcc_current_revision %" PRId64 "\n"
        "# TYPE etcd_mvcc_db_total_size_in_bytes gauge\n"
        "etcd_mvcc_db_total_size_in_bytes %" PRIu64 "\n"
        "# TYPE etcd_server_quota_backend_bytes gauge\n"
        "etcd_server_quota_backend_bytes %" PRIu64 "\n"
        "# TYPE cord_raft_term gauge\ncord_raft_term %" PRIu64 "\n"
        "# TYPE cord_peer_sent_messages_total counter\ncord_peer_sent_messages_total %" PRIu64 "\n"
        "# TYPE cord_peer_dropped_messages_total counter\n"
        "cord_peer_dropped_messages_total %" PRIu64 "\n"
        "# TYPE cord_raft_log_reads_total counter\ncord_raft_log_reads_total %" PRIu64 "\n"
        "# TYPE cord_raft_log_read_entries_total counter\n"
        "cord_raft_log_read_entries_total %" PRIu64 "\n"
        "# TYPE cord_snapshot_failures_total counter\n"
        "cord_snapshot_failures_total %" PRIu64 "\n",
        rss, rs.leader != 0, rs.role == RAFT_LEADER, m->leader_changes, rs.commit, rs.applied,
        m->n_waiters, ms.current_revision, ms.db_size_bytes, ms.quota_bytes, rs.term, ts.msgs_sent,
        ts.msgs_dropped, m->log_reads, m->log_read_entries, m->snap_failures);
    api_http_respond(req, 200, "text/plain; version=0.0.4", body,
                     n > 0 && (size_t)n < sizeof body ? (size_t)n : 0);
}

static const api_http_route http_routes_tmpl[] = {
    {"GET", "/health", http_health, NULL},
    {"GET", "/version", http_version, NULL},
    {"GET", "/metrics", http_metrics, NULL},
};

/* ----------------------------------------------------------- lifecycle */

static int seed_from_urandom(uint64_t *out)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, out, sizeof(*out));
    close(fd);
    return n == (ssize_t)sizeof(*out) ? 0 : -1;
}

/* The first URL of a comma-separated list (more listeners: not yet). */
static void first_url(const char *list, char out[CONFIG_STR_MAX])
{
    snprintf(out, CONFIG_STR_MAX, "%s", list);
    char *comma = strchr(out, ',');
    if (comma)
        *comma = '\0';
}

int member_start(uv_loop_t *loop, const config *cfg, member **out, cord_error *err)
{
    member *m = calloc(1, sizeof(*m));
    if (!m)
        return cord_error_set(err, -1, ENOMEM, "member: out of memory");
    m->loop = loop;
    m->cfg = *cfg;
    /* Request ids travel in log entries and ReadIndex contexts, which outlive
     * the process: a restarted member that counted from 1 again answered new
     * requests with the results of its previous life's entries (the nemesis
     * soak saw a put acknowledged with another entry's revision before its own
     * entry was applied). Each life starts at a random point of the 64-bit space. */
    if (seed_from_urandom(&m->next_req_id) != 0)
        m->next_req_id = uv_hrtime() * 0x9e3779b97f4a7c15ull;
    mvcc_arena_init(&m->arena, 0);
    for (uint32_t i = 0; i < cfg->n_peers; i++) {
        peer_info *p = &m->peers[m->n_peers++];
        p->id = member_compute_id(cfg->peers[i].url, cfg->initial_cluster_token);
        snprintf(p->name, sizeof p->name, "%s", cfg->peers[i].name);
        snprintf(p->peer_url, sizeof p->peer_url, "%s", cfg->peers[i].url);
        if (strcmp(p->name, cfg->name) == 0) {
            m->id = p->id;
            first_url(cfg->advertise_client_urls, p->client_url);
        }
    }
    m->cluster_id = member_compute_cluster_id(cfg->initial_cluster_token);
    uint32_t election_ticks = cfg->election_timeout_ms / cfg->heartbeat_interval_ms;
    m->request_timeout_ticks = (5000 + 2 * cfg->election_timeout_ms) / cfg->heartbeat_interval_ms;

    lease_options lo;
    memset(&lo, 0, sizeof lo);
    lo.min_ttl_s = lease_min_ttl_s(cfg->election_timeout_ms);
    int rc = lease_table_new(&lo, &m->leases, err);
    if (rc != LEASE_OK)
        goto fail;
    storage_options so;
    memset(&so, 0, sizeof so);
    so.mvcc.quota_bytes = cfg->quota_backend_bytes;
    so.mvcc.no_quota_check_on_apply = true; /* checked before proposing: members agree */
    /* The WAL and the snapshot files are the durable record: the store commits without
     * fsync, and after a system crash it is rebuilt from them (storage_open). A killed
     * process loses nothing of it. no_meta_sync is the fallback without a boot id. */
    so.mvcc.no_sync = true;
    so.mvcc.no_meta_sync = true;
    so.mvcc.write_map = true; /* with no_sync: no pwrite of every dirty page per commit */
    /* Past 256 MiB of mapped files the store's pages are unmapped (they stay in the page
     * cache). Not lower: pages in use are then mapped again by minor faults, written ones also
     * by a write-protect fault, and unmapping every second cost 15-20 % more CPU per put under
     * `etcdctl check perf --load=l` (bench/RESULTS.md). */
    so.mvcc.release_above_bytes = 256u << 20;
    so.restore_applied_bytes = cfg->log_memory_bytes; /* raft keeps no more of them */
    so.mvcc.lease_exists = lease_exists_cb;
    so.mvcc.lease_ctx = m->leases;
    rc = storage_open(cfg->data_dir, &so, &m->st, err);
    if (rc != STORAGE_OK)
        goto fail;
    if (storage_store_rebuilt(m->st))
        log_warn("member: the key-value store had unsynced commits of an earlier boot; rebuilt "
                 "it from the snapshot and the WAL");
    rc = lease_load(m->leases, storage_mvcc(m->st), err);
    if (rc != LEASE_OK)
        goto fail;
    cluster_load(m);
    storage_set_executor(m->st, exec_entry, m);

    raft_config rc_;
    raft_config_default(&rc_);
    rc_.id = m->id;
    if (seed_from_urandom(&rc_.seed) != 0)
        rc_.seed = m->id ^ (uint64_t)uv_hrtime();
    rc_.election_ticks = election_ticks;
    rc_.heartbeat_ticks = 1;
    rc_.snapshot_entries = cfg->snapshot_count;
    rc_.trailing_entries = cfg->snapshot_count < 5000 ? cfg->snapshot_count : 5000;
    rc_.log_mem_bytes = cfg->log_memory_bytes;
    rc_.max_entry_bytes = (uint32_t)cfg->max_request_bytes + ENTRY_HEADER_LEN;

    const raft_restore *rs = storage_restore(m->st);
    raft_conf boot;
    memset(&boot, 0, sizeof boot);
    const raft_conf *bootstrap = NULL;
    if (cfg->initial_cluster_state_new) {
        for (uint32_t i = 0; i < m->n_peers; i++)
            boot.voters[boot.n_voters++] = m->peers[i].id;
        bootstrap = &boot;
    }
    char why[256];
    m->r = raft_new(&rc_, bootstrap, rs, why, sizeof why);
    storage_restore_release(m->st);
    /* the restored log was read into many small blocks, now free: hand their pages back */
    malloc_trim(0);
    if (!m->r) {
        rc = cord_error_set(err, -1, 0, "member: cannot start the consensus core: %s", why);
        goto fail;
    }
    cluster_load(m); /* again, now that the configuration says whose records matter */

    char peer_listen[CONFIG_STR_MAX], client_listen[CONFIG_STR_MAX];
    first_url(cfg->listen_peer_urls, peer_listen);
    first_url(cfg->listen_client_urls, client_listen);
    if (watch_svc_start(m, err) != 0)
        goto fail;
    const raft_conf *conf = raft_get_conf(m->r);
    if (conf->n_voters == 1 && conf->voters[0] == m->id && conf->n_voters_out == 0)
        raft_campaign(m->r); /* alone: no one to wait for */

    rc = transport_new(loop, m->id, m->cluster_id, peer_listen, on_peer_message, on_snapshot_fill,
                       m, NULL, &m->tr, err);
    if (rc != 0)
        goto fail;
    transport_set_unreachable_cb(m->tr, on_unreachable);
    transport_set_hello_cb(m->tr, cluster_on_hello);
    {
        /* our URL goes in every HELLO: members whose table is older than ours can answer */
        char self_url[CONFIG_STR_MAX];
        first_url(cfg->initial_advertise_peer_urls, self_url);
        peer_info *self = cluster_find(m, m->id);
        if (self && self->peer_url[0])
            snprintf(self_url, sizeof self_url, "%s", self->peer_url);
        cord_error ue;
        if (transport_set_advertise_url(m->tr, self_url, &ue) != 0)
            log_warn("member: %s; not sent to peers", ue.msg); /* they still dial us */
    }
    for (uint32_t i = 0; i < m->n_peers; i++)
        if (m->peers[i].id != m->id &&
            transport_add_peer(m->tr, m->peers[i].id, m->peers[i].peer_url, err) != 0)
            goto fail;

    /* [gateway] the JSON gateway's routes follow the fixed ones (src/server/gateway.c) */
    api_http_route routes[sizeof http_routes_tmpl / sizeof http_routes_tmpl[0] + GATEWAY_N_ROUTES];
    memcpy(routes, http_routes_tmpl, sizeof http_routes_tmpl);
    memcpy(routes + sizeof http_routes_tmpl / sizeof http_routes_tmpl[0], gateway_routes,
           sizeof gateway_routes);
    /* [/gateway] */
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        routes[i].ud = m;
    api_method methods[64];
    size_t n_methods = 0;
    const api_method *tables[] = {kv_methods,    maint_methods,   watch_methods,
                                  lease_methods, cluster_methods, conc_methods};
    const size_t sizes[] = {kv_n_methods,    maint_n_methods,   watch_n_methods,
                            lease_n_methods, cluster_n_methods, conc_n_methods};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++)
        for (size_t i = 0; i < sizes[t] && n_methods < 64; i++) {
            methods[n_methods] = tables[t][i];
            methods[n_methods].ud = m;
            if (!methods[n_methods].on_close)
                methods[n_methods].on_close = on_call_closed;
            n_methods++;
        }
    api_limits lim;
    memset(&lim, 0, sizeof lim);
    lim.max_request_bytes = cfg->max_request_bytes + 512; /* etcd allows some gRPC overhead */
    lim.too_large_grpc_status = 3; /* etcd: InvalidArgument "etcdserver: request is too large" */
    rc = api_server_start(loop, client_listen, methods, n_methods, routes,
                          sizeof routes / sizeof routes[0], &lim, &m->api, err);
    if (rc != 0)
        goto fail;

    uv_timer_init(loop, &m->tick_timer);
    m->tick_timer.data = m;
    uv_timer_start(&m->tick_timer, on_tick, cfg->heartbeat_interval_ms, cfg->heartbeat_interval_ms);
    if (compactor_start(m, err) != 0)
        goto fail;
    uv_timer_init(loop, &m->compact_timer);
    m->compact_timer.data = m;
    uv_timer_init(loop, &m->writeback_timer);
    m->writeback_timer.data = m;
    uv_timer_start(&m->writeback_timer, on_writeback_timer, 1000, 1000);
    uv_prepare_init(loop, &m->prepare);
    m->prepare.data = m;
    uv_prepare_start(&m->prepare, on_prepare);
    conc_svc_init(m);
    log_info("member %016" PRIx64 " (%s) of cluster %016" PRIx64
             " serving clients on %s, peers on %s, data in %s",
             m->id, cfg->name, m->cluster_id, cfg->listen_client_urls, cfg->listen_peer_urls,
             cfg->data_dir);
    *out = m;
    return 0;
fail:
    if (m->tr)
        transport_close(m->tr);
    raft_free(m->r);
    storage_close(m->st);
    lease_table_free(m->leases);
    free(m);
    return -1;
}

typedef struct stop_ctx {
    member *m;
    int pending;
    void (*done)(void *);
    void *arg;
} stop_ctx;

static void stop_step(stop_ctx *s)
{
    if (--s->pending > 0)
        return;
    member *m = s->m;
    while (m->all)
        waiter_free(m, m->all);
    watch_svc_free(m);
    raft_free(m->r);
    storage_close(m->st);
    lease_table_free(m->leases);
    mvcc_arena_reset(&m->arena);
    free(m->replies);
    for (uint32_t i = 0; i < m->n_deferred; i++)
        free(m->deferred[i].data);
    free(m->deferred);
    void (*done)(void *) = s->done;
    void *arg = s->arg;
    free(s);
    free(m);
    if (done)
        done(arg);
}

static void on_handle_closed(uv_handle_t *h)
{
    stop_step(h->data);
}

static void on_api_stopped(void *arg)
{
    stop_step(arg);
}

void member_stop(member *m, void (*done)(void *), void *arg)
{
    if (m->stopping)
        return;
    m->stopping = true;
    stop_ctx *s = calloc(1, sizeof(*s));
    if (!s)
        abort();
    s->m = m;
    s->done = done;
    s->arg = arg;
    s->pending = 9;
    if (m->sync_inflight) {
        s->pending++; /* the worker finishes first; sync_done calls stop_step */
        m->stop = s;
    } else {
        process_ready(m); /* persist what is pending */
    }
    if (m->snap_inflight) {
        s->pending++; /* snap_done_cb calls stop_step */
        m->stop = s;
    }
    if (m->writeback_inflight) {
        s->pending++; /* writeback_done_cb calls stop_step */
        m->stop = s;
    }
    if (m->jobs) {
        s->pending += (int)m->jobs; /* member_job_release calls stop_step */
        m->stop = s;
    }
    while (m->all)
        waiter_finish_error(m, m->all, 14, "etcdserver: server stopped");
    m->tick_timer.data = s;
    m->prepare.data = s;
    m->compact_timer.data = s;
    m->watch_sync_timer.data = s;
    m->watch_progress_timer.data = s;
    uv_close((uv_handle_t *)&m->watch_sync_timer, on_handle_closed);
    uv_close((uv_handle_t *)&m->watch_progress_timer, on_handle_closed);
    uv_close((uv_handle_t *)&m->compact_timer, on_handle_closed);
    m->compact_auto_timer.data = s;
    uv_close((uv_handle_t *)&m->compact_auto_timer, on_handle_closed);
    m->writeback_timer.data = s;
    uv_close((uv_handle_t *)&m->writeback_timer, on_handle_closed);
    uv_close((uv_handle_t *)&m->tick_timer, on_handle_closed);
    uv_close((uv_handle_t *)&m->prepare, on_handle_closed);
    conc_svc_stop(m);
    m->conc_idle.data = s;
    uv_close((uv_handle_t *)&m->conc_idle, on_handle_closed);
    transport_close(m->tr);
    api_server_stop(m->api, on_api_stopped, s);
}

void member_job_hold(member *m)
{
    assert(!m->stopping);
    m->jobs++;
}

void member_job_release(member *m)
{
    assert(m->jobs > 0);
    m->jobs--;
    if (m->stop)
        stop_step(m->stop);
}

int member_failed(const member *m)
{
    return m->failed;
}
