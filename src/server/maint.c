/*
 * maint.c: the Maintenance service, which reads the member's own
 * state (Status, Hash, HashKV, Alarm, Defragment, Snapshot, MoveLeader).
 */
#define _GNU_SOURCE /* mkostemp */
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/failpoint.h"
#include "common/log.h"

#include "etcdserverpb/rpc.pb-c.h"
#include "server/member_internal.h"

int member_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return -1;
    protobuf_c_message_pack(msg, buf);
    *out = buf;
    *len = n;
    return 0;
}

/* Packs msg and replies; RESOURCE_EXHAUSTED if it cannot. */
void member_reply_pb(api_call *call, const ProtobufCMessage *msg)
{
    uint8_t *buf;
    size_t n;
    if (member_pack(msg, &buf, &n) != 0) {
        member_reply_error(call, 8, "etcdserver: out of memory");
        return;
    }
    api_call_reply(call, buf, n);
    free(buf);
}

static void fill_header(member *m, Etcdserverpb__ResponseHeader *h, int64_t revision)
{
    member_fill_header_fields(m, revision, &h->cluster_id, &h->member_id, &h->revision,
                              &h->raft_term);
}

static void on_status(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    member *m = ud;
    UNPACK_OR_FAIL(Etcdserverpb__StatusRequest, etcdserverpb__status_request__unpack, call, msg,
                   len);
    etcdserverpb__status_request__free_unpacked(req, NULL);
    raft_status rs;
    raft_get_status(m->r, &rs);
    mvcc_status ms;
    memset(&ms, 0, sizeof ms);
    (void)mvcc_status_get(storage_mvcc(m->st), &ms, NULL);
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    fill_header(m, &h, ms.current_revision);
    Etcdserverpb__StatusResponse r = ETCDSERVERPB__STATUS_RESPONSE__INIT;
    r.header = &h;
    r.version = "3.4.23";
    r.dbsize = (int64_t)ms.db_size_bytes;
    r.dbsizeinuse = (int64_t)ms.db_size_in_use_bytes;
    r.dbsizequota = (int64_t)ms.quota_bytes;
    r.leader = rs.leader;
    r.raftindex = rs.commit;
    r.raftterm = rs.term;
    r.raftappliedindex = rs.applied;
    r.islearner = raft_conf_is_learner(raft_get_conf(m->r), m->id);
    char alarm_text[96];
    char *errs[1] = {alarm_text};
    if (ms.alarm_nospace) {
        snprintf(alarm_text, sizeof alarm_text, "memberID:%llu alarm:NOSPACE ",
                 (unsigned long long)m->id);
        r.errors = errs;
        r.n_errors = 1;
    }
    member_reply_pb(call, &r.base);
}

static void on_hash(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    member *m = ud;
    UNPACK_OR_FAIL(Etcdserverpb__HashRequest, etcdserverpb__hash_request__unpack, call, msg, len);
    etcdserverpb__hash_request__free_unpacked(req, NULL);
    uint32_t hash = 0;
    int64_t rev = 0;
    cord_error e;
    int rc = mvcc_hash(storage_mvcc(m->st), &hash, &rev, &e);
    if (rc != MVCC_OK) {
        const char *text;
        int code = mvcc_grpc_status(rc, &text);
        member_reply_error(call, code, text);
        return;
    }
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    fill_header(m, &h, rev);
    Etcdserverpb__HashResponse r = ETCDSERVERPB__HASH_RESPONSE__INIT;
    r.header = &h;
    r.hash = hash;
    member_reply_pb(call, &r.base);
}

static void on_hash_kv(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    member *m = ud;
    UNPACK_OR_FAIL(Etcdserverpb__HashKVRequest, etcdserverpb__hash_kvrequest__unpack, call, msg,
                   len);
    int64_t revision = req->revision;
    etcdserverpb__hash_kvrequest__free_unpacked(req, NULL);
    mvcc_hash_kv_result hr;
    memset(&hr, 0, sizeof hr);
    cord_error e;
    int rc = mvcc_hash_kv(storage_mvcc(m->st), revision, &hr, &e);
    if (rc != MVCC_OK) {
        const char *text;
        int code = mvcc_grpc_status(rc, &text);
        member_reply_error(call, code, text);
        return;
    }
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    fill_header(m, &h, 0);
    Etcdserverpb__HashKVResponse r = ETCDSERVERPB__HASH_KVRESPONSE__INIT;
    r.header = &h;
    r.hash = hr.hash;
    r.compact_revision = hr.compact_revision;
    r.hash_revision = hr.hash_revision;
    member_reply_pb(call, &r.base);
}

/* The alarms as a response (only NOSPACE exists in cord so far). */
static int alarm_response(member *m, mvcc_store *mv, bool only_if_active, uint8_t **out,
                          size_t *out_len)
{
    mvcc_status ms;
    memset(&ms, 0, sizeof ms);
    (void)mvcc_status_get(mv, &ms, NULL);
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    fill_header(m, &h, ms.current_revision);
    Etcdserverpb__AlarmResponse r = ETCDSERVERPB__ALARM_RESPONSE__INIT;
    r.header = &h;
    Etcdserverpb__AlarmMember am = ETCDSERVERPB__ALARM_MEMBER__INIT;
    Etcdserverpb__AlarmMember *list[1] = {&am};
    if (ms.alarm_nospace || !only_if_active) {
        am.memberid = m->id;
        am.alarm = ETCDSERVERPB__ALARM_TYPE__NOSPACE;
        r.alarms = list;
        r.n_alarms = 1;
    }
    return member_pack(&r.base, out, out_len);
}

static void on_alarm(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    member *m = ud;
    UNPACK_OR_FAIL(Etcdserverpb__AlarmRequest, etcdserverpb__alarm_request__unpack, call, msg, len);
    int action = req->action;
    etcdserverpb__alarm_request__free_unpacked(req, NULL);
    if (action != ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__GET) {
        /* raising and disarming change replicated state: through the log */
        member_propose(m, call, REQ_ALARM, msg, len);
        return;
    }
    uint8_t *out;
    size_t n;
    if (alarm_response(m, storage_mvcc(m->st), true, &out, &n) != 0) {
        member_reply_error(call, 8, "etcdserver: out of memory");
        return;
    }
    api_call_reply(call, out, n);
    free(out);
}

int maint_apply_alarm(member *m, mvcc_store *mv, const uint8_t *req, size_t len, bool want_reply,
                      int *status, const char **message, uint8_t **msg, size_t *msg_len)
{
    Etcdserverpb__AlarmRequest *rq = etcdserverpb__alarm_request__unpack(NULL, len, req);
    if (!rq)
        return 0;
    int action = rq->action;
    bool nospace = rq->alarm == ETCDSERVERPB__ALARM_TYPE__NOSPACE ||
                   rq->alarm == ETCDSERVERPB__ALARM_TYPE__NONE;
    etcdserverpb__alarm_request__free_unpacked(rq, NULL);
    int rc = MVCC_OK;
    if (nospace && action == ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__ACTIVATE)
        rc = mvcc_alarm_activate(mv, NULL);
    else if (nospace && action == ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__DEACTIVATE)
        rc = mvcc_alarm_disarm(mv, NULL);
    if (rc != MVCC_OK)
        return -1; /* the store failed */
    if (nospace && action == ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__ACTIVATE)
        log_warn("alarm: NOSPACE raised: writes refused until compaction, defragment and "
                 "'alarm disarm'");
    if (want_reply && alarm_response(m, mv, false, msg, msg_len) != 0) {
        *status = 8;
        *message = "etcdserver: out of memory";
    }
    return 0;
}

void member_raise_nospace_for(member *m, api_call *call)
{
    Etcdserverpb__AlarmRequest rq = ETCDSERVERPB__ALARM_REQUEST__INIT;
    rq.action = ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__ACTIVATE;
    rq.memberid = m->id;
    rq.alarm = ETCDSERVERPB__ALARM_TYPE__NOSPACE;
    uint8_t buf[32];
    size_t n = etcdserverpb__alarm_request__pack(&rq, buf);
    waiter *w = member_propose_waiter(m, call, REQ_ALARM, buf, n);
    if (w)
        w->nospace_reply = true;
}

/* A defragmentation copies the store compactly on a worker while the member goes on with its
 * applies held (raft_set_apply_held): it keeps its leadership or its leader, replicates and
 * commits, and the store does not change, so the copy stays current. The copy is then renamed
 * into place on the loop, and the held entries are applied. Calls that arrive meanwhile share
 * its outcome. Should the store have been written anyway, the copy is dropped and the
 * defragmentation is done again on the loop, as before there was a worker. */
struct defrag_job {
    member *m;
    mvcc_store *mv;
    uv_work_t work;
    uint64_t state; /* what the copy holds (mvcc_defrag_copy) */
    int rc;
    cord_error err;
    api_call **calls; /* waiting for the outcome; NULL where a client left */
    size_t n_calls, cap_calls;
};

static void defrag_work(uv_work_t *w)
{
    defrag_job *j = w->data;
    j->rc = mvcc_defrag_copy(j->mv, &j->state, &j->err);
    int fp = j->rc == MVCC_OK ? failpoint_hit("maint-defrag-copy") : 0;
    if (fp != 0)
        j->rc = cord_error_set(&j->err, MVCC_EIO, fp, "mvcc: copy the store");
}

static void defrag_reply(member *m, api_call *call, int rc)
{
    api_call_set_ud(call, NULL);
    if (rc != MVCC_OK) {
        const char *text;
        int code = mvcc_grpc_status(rc, &text);
        member_reply_error(call, code, text);
        return;
    }
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    fill_header(m, &h, 0);
    Etcdserverpb__DefragmentResponse r = ETCDSERVERPB__DEFRAGMENT_RESPONSE__INIT;
    r.header = &h;
    member_reply_pb(call, &r.base);
}

static void defrag_done(uv_work_t *w, int status)
{
    defrag_job *j = w->data;
    member *m = j->m;
    m->defrag = NULL;
    if (status != 0 && j->rc == MVCC_OK)
        j->rc = cord_error_set(&j->err, MVCC_EIO, 0, "the copy was canceled");
    if (m->stopping) {
        if (j->rc == MVCC_OK)
            mvcc_defrag_discard(j->mv);
        j->rc = MVCC_EIO;
    } else {
        if (j->rc == MVCC_OK) {
            j->rc = mvcc_defrag_install(j->mv, j->state, &j->err);
            if (j->rc == MVCC_EBUSY) {
                log_warn("defragment: %s; defragmenting again on the loop", j->err.msg);
                j->rc = mvcc_defrag(j->mv, &j->err);
            }
        } else {
            mvcc_defrag_discard(j->mv);
        }
        if (j->rc != MVCC_OK)
            log_warn("defragment: %s", j->err.msg);
        raft_set_apply_held(m->r, false); /* the held entries are applied at the next batch */
    }
    for (size_t i = 0; i < j->n_calls; i++)
        if (j->calls[i])
            defrag_reply(m, j->calls[i], j->rc);
    free(j->calls);
    free(j);
    member_job_release(m);
}

static void on_defragment_closed(api_call *call, void *ud)
{
    (void)ud;
    defrag_job *j = api_call_get_ud(call);
    for (size_t i = 0; j && i < j->n_calls; i++)
        if (j->calls[i] == call)
            j->calls[i] = NULL;
}

static void on_defragment(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    member *m = ud;
    UNPACK_OR_FAIL(Etcdserverpb__DefragmentRequest, etcdserverpb__defragment_request__unpack, call,
                   msg, len);
    etcdserverpb__defragment_request__free_unpacked(req, NULL);
    if (m->stopping) {
        member_reply_error(call, 14, "etcdserver: member is stopping");
        return;
    }
    defrag_job *j = m->defrag;
    bool start = j == NULL;
    if (start) {
        j = calloc(1, sizeof *j);
        if (!j) {
            member_reply_error(call, 8, "etcdserver: out of memory");
            return;
        }
        j->m = m;
        j->mv = storage_mvcc(m->st);
    }
    if (j->n_calls == j->cap_calls) {
        size_t cap = j->cap_calls ? 2 * j->cap_calls : 4;
        api_call **calls = realloc(j->calls, cap * sizeof *calls);
        if (!calls) {
            if (start)
                free(j);
            member_reply_error(call, 8, "etcdserver: out of memory");
            return;
        }
        j->calls = calls;
        j->cap_calls = cap;
    }
    j->calls[j->n_calls++] = call;
    api_call_set_ud(call, j);
    if (!start)
        return; /* the running one answers it too */
    m->defrag = j;
    raft_set_apply_held(m->r, true);
    member_job_hold(m);
    j->work.data = j;
    if (uv_queue_work(m->loop, &j->work, defrag_work, defrag_done) != 0) {
        defrag_work(&j->work); /* no worker: here */
        defrag_done(&j->work, 0);
    }
}

/* ------------------------------------------------------------ Snapshot */

/* The Maintenance Snapshot stream: a consistent copy of the store is written to a temporary
 * file on a worker thread (the loop goes on serving meanwhile), then sent in chunks as the
 * client's flow control allows, followed by the SHA-256 of everything sent before (as etcd
 * does; etcdctl checks it on restore). The copy is taken whole before streaming, so a slow
 * client holds no read transaction of the store: only its temporary file. */
#define SNAP_CHUNK_BYTES (64 * 1024)
#define SNAP_MAX_PENDING (1024 * 1024)

typedef struct snap_stream {
    member *m;
    api_call *call; /* NULL once the client is gone */
    int fd;
    uint64_t size, sent;
    EVP_MD_CTX *sha;
    uv_timer_t timer;
    bool closing;
    /* the copy, on a worker, and its outcome */
    uv_work_t work;
    int copy_rc;
    cord_error copy_err;
    uint64_t applied_index;
    bool compacted;
} snap_stream;

static void snap_stream_closed(uv_handle_t *h)
{
    free(h->data);
}

static void snap_stream_end(snap_stream *s)
{
    if (s->closing)
        return;
    s->closing = true;
    if (s->call)
        api_call_set_ud(s->call, NULL);
    if (s->fd >= 0)
        close(s->fd);
    EVP_MD_CTX_free(s->sha);
    s->sha = NULL;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, snap_stream_closed);
}

static void snap_pump(uv_timer_t *t)
{
    snap_stream *s = t->data;
    if (!s->call) {
        snap_stream_end(s);
        return;
    }
    uint8_t buf[SNAP_CHUNK_BYTES];
    while (s->sent < s->size && api_call_can_send(s->call) &&
           api_call_pending_send_bytes(s->call) < SNAP_MAX_PENDING) {
        size_t want = s->size - s->sent < sizeof buf ? (size_t)(s->size - s->sent) : sizeof buf;
        ssize_t n = pread(s->fd, buf, want, (off_t)s->sent);
        if (n <= 0) {
            api_call_finish(s->call, 13, "etcdserver: reading the snapshot failed");
            snap_stream_end(s);
            return;
        }
        EVP_DigestUpdate(s->sha, buf, (size_t)n);
        s->sent += (uint64_t)n;
        Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
        fill_header(s->m, &h, 0);
        Etcdserverpb__SnapshotResponse r = ETCDSERVERPB__SNAPSHOT_RESPONSE__INIT;
        r.header = &h;
        r.remaining_bytes = s->size - s->sent;
        r.blob.data = buf;
        r.blob.len = (size_t)n;
        size_t plen = etcdserverpb__snapshot_response__get_packed_size(&r);
        uint8_t *out = malloc(plen);
        if (!out) {
            api_call_finish(s->call, 8, "etcdserver: out of memory");
            snap_stream_end(s);
            return;
        }
        etcdserverpb__snapshot_response__pack(&r, out);
        api_call_send(s->call, out, plen);
        free(out);
    }
    if (!api_call_can_send(s->call)) { /* the client left: read no further */
        snap_stream_end(s);
        return;
    }
    if (s->sent < s->size) {
        uv_timer_start(&s->timer, snap_pump, 5, 0); /* wait for the client to read */
        return;
    }
    uint8_t digest[32];
    unsigned int dlen = 0;
    EVP_DigestFinal_ex(s->sha, digest, &dlen);
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    fill_header(s->m, &h, 0);
    Etcdserverpb__SnapshotResponse r = ETCDSERVERPB__SNAPSHOT_RESPONSE__INIT;
    r.header = &h;
    r.blob.data = digest;
    r.blob.len = sizeof digest;
    member_reply_pb(s->call, &r.base); /* last message + OK trailers */
    snap_stream_end(s);
}

static void on_snapshot_closed(api_call *call, void *ud)
{
    (void)ud;
    snap_stream *s = api_call_get_ud(call);
    if (s)
        s->call = NULL; /* the pump notices and stops */
}

/* On a worker: the newest committed state of the store into s->fd (storage_copy_store). */
static void snap_copy_work(uv_work_t *w)
{
    snap_stream *s = w->data;
    s->copy_rc =
        storage_copy_store(s->m->st, s->fd, &s->applied_index, &s->compacted, &s->copy_err);
}

static void snap_copy_done(uv_work_t *w, int status)
{
    snap_stream *s = w->data;
    member *m = s->m;
    if (status != 0 && s->copy_rc == STORAGE_OK)
        s->copy_rc = cord_error_set(&s->copy_err, STORAGE_EIO, 0, "the copy was canceled");
    if (!s->call || m->stopping) {
        snap_stream_end(s);
    } else if (s->copy_rc != STORAGE_OK) {
        log_warn("snapshot: %s", s->copy_err.msg);
        api_call_finish(s->call, 13, "etcdserver: snapshot failed");
        snap_stream_end(s);
    } else {
        off_t size = lseek(s->fd, 0, SEEK_END);
        if (size < 0) {
            api_call_finish(s->call, 13, "etcdserver: reading the snapshot failed");
            snap_stream_end(s);
        } else {
            s->size = (uint64_t)size;
            log_info("snapshot: streaming %llu bytes at applied index %llu (%s)",
                     (unsigned long long)s->size, (unsigned long long)s->applied_index,
                     s->compacted ? "a compacting copy" : "the store's file as it is");
            snap_pump(&s->timer);
        }
    }
    member_job_release(m);
}

static void on_snapshot(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    member *m = ud;
    UNPACK_OR_FAIL(Etcdserverpb__SnapshotRequest, etcdserverpb__snapshot_request__unpack, call, msg,
                   len);
    etcdserverpb__snapshot_request__free_unpacked(req, NULL);
    if (m->stopping) {
        member_reply_error(call, 14, "etcdserver: member is stopping");
        return;
    }
    char path[CONFIG_STR_MAX + 64];
    snprintf(path, sizeof path, "%s/member/snapshot-stream-XXXXXX", m->cfg.data_dir);
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        member_reply_error(call, 13, "etcdserver: cannot create a snapshot file");
        return;
    }
    unlink(path); /* the open descriptor keeps it until the stream ends */
    snap_stream *s = calloc(1, sizeof(*s));
    EVP_MD_CTX *sha = s ? EVP_MD_CTX_new() : NULL;
    if (!sha || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(sha);
        free(s);
        close(fd);
        member_reply_error(call, 8, "etcdserver: out of memory");
        return;
    }
    s->m = m;
    s->call = call;
    s->fd = fd;
    s->sha = sha;
    uv_timer_init(m->loop, &s->timer);
    s->timer.data = s;
    s->work.data = s;
    api_call_set_ud(call, s);
    member_job_hold(m);
    if (uv_queue_work(m->loop, &s->work, snap_copy_work, snap_copy_done) != 0) {
        snap_copy_work(&s->work); /* no worker: here */
        snap_copy_done(&s->work, 0);
    }
}

/* ---------------------------------------------------------- MoveLeader */

static void on_move_leader(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    member *m = ud;
    UNPACK_OR_FAIL(Etcdserverpb__MoveLeaderRequest, etcdserverpb__move_leader_request__unpack, call,
                   msg, len);
    uint64_t target = req->targetid;
    etcdserverpb__move_leader_request__free_unpacked(req, NULL);
    member_move_leader(m, call, target);
}

const api_method maint_methods[] = {
    {"/etcdserverpb.Maintenance/Snapshot", on_snapshot, on_snapshot_closed, NULL, NULL},
    {"/etcdserverpb.Maintenance/MoveLeader", on_move_leader, NULL, NULL, NULL},
    {"/etcdserverpb.Maintenance/Status", on_status, NULL, NULL, NULL},
    {"/etcdserverpb.Maintenance/Hash", on_hash, NULL, NULL, NULL},
    {"/etcdserverpb.Maintenance/HashKV", on_hash_kv, NULL, NULL, NULL},
    {"/etcdserverpb.Maintenance/Alarm", on_alarm, NULL, NULL, NULL},
    {"/etcdserverpb.Maintenance/Defragment", on_defragment, on_defragment_closed, NULL, NULL},
};
const size_t maint_n_methods = sizeof maint_methods / sizeof maint_methods[0];
