/*
 * kv.c: the KV service (Range, Put, DeleteRange, Txn, Compact).
 *
 * Requests are checked before they are proposed (empty keys, txn size and
 * duplicate keys) so that a bad request costs no log entry. Writes are
 * proposed with their protobuf bytes unchanged and decoded again when the
 * entry is applied, on every member alike.
 */
#include <stdlib.h>
#include <string.h>

#include "api/etcd_conv.h"
#include "etcdserverpb/rpc.pb-c.h"
#include "server/member_internal.h"

/* A deliberately broken read path, for the nemesis tests only (CMake option
 * CORD_UNSAFE_LOCAL_READS, target cord-unsafe-reads): linearizable reads are
 * answered from the local state machine without confirming leadership, so a
 * partitioned member serves stale data. The tests show the checker catches it. */
#ifdef CORD_UNSAFE_LOCAL_READS
#define UNSAFE_LOCAL_READS true
#else
#define UNSAFE_LOCAL_READS false
#endif

/* An mvcc result that cannot be a client's error: the store itself failed. */
static bool mvcc_failed(int rc)
{
    return rc == MVCC_EIO || rc == MVCC_ECORRUPT || rc == MVCC_ENOMEM || rc == MVCC_EBATCH ||
           rc == MVCC_EBUSY;
}

static void header_of(member *m, etcd_conv_header *h)
{
    member_header_ids(m, &h->cluster_id, &h->member_id, &h->raft_term);
}

static void set_error(int rc, int *status, const char **message)
{
    *status = mvcc_grpc_status(rc, message);
    if (*status == 0) {
        *status = 13;
        *message = mvcc_strerror(rc);
    }
}

/* ------------------------------------------------------------ executing */

typedef struct kv_result {
    int rc;                 /* MVCC_OK or the request's error */
    ProtobufCMessage *resp; /* built in the member's arena */
} kv_result;

static kv_result run_range(member *m, mvcc_store *mv, const Etcdserverpb__RangeRequest *rq)
{
    kv_result res = {0};
    mvcc_range_req req;
    etcd_conv_range_req(rq, &req);
    mvcc_range_resp resp;
    memset(&resp, 0, sizeof resp);
    res.rc = mvcc_range(mv, &m->arena, &req, &resp, NULL);
    if (res.rc != MVCC_OK)
        return res;
    etcd_conv_header h;
    header_of(m, &h);
    Etcdserverpb__RangeResponse *out = NULL;
    res.rc = etcd_conv_range_resp(&m->arena, &h, &resp, &out);
    res.resp = out ? &out->base : NULL;
    return res;
}

static kv_result run_txn(member *m, mvcc_store *mv, const Etcdserverpb__TxnRequest *tq)
{
    kv_result res = {0};
    mvcc_txn_req req;
    res.rc = etcd_conv_txn_req(&m->arena, tq, &req);
    if (res.rc != MVCC_OK)
        return res;
    mvcc_txn_resp resp;
    memset(&resp, 0, sizeof resp);
    res.rc = mvcc_txn(mv, &m->arena, &req, &resp, NULL);
    if (res.rc != MVCC_OK)
        return res;
    etcd_conv_header h;
    header_of(m, &h);
    Etcdserverpb__TxnResponse *out = NULL;
    res.rc = etcd_conv_txn_resp(&m->arena, &h, &resp, &out);
    res.resp = out ? &out->base : NULL;
    return res;
}

static kv_result run_write(member *m, mvcc_store *mv, uint8_t kind, const uint8_t *data, size_t len)
{
    kv_result res = {.rc = MVCC_EINVAL};
    etcd_conv_header h;
    header_of(m, &h);
    switch (kind) {
    case REQ_PUT: {
        Etcdserverpb__PutRequest *rq = etcdserverpb__put_request__unpack(NULL, len, data);
        if (!rq)
            return res;
        mvcc_put_req req;
        etcd_conv_put_req(rq, &req);
        mvcc_put_resp resp;
        memset(&resp, 0, sizeof resp);
        res.rc = mvcc_put(mv, &m->arena, &req, &resp, NULL);
        if (res.rc == MVCC_OK) {
            Etcdserverpb__PutResponse *out = NULL;
            res.rc = etcd_conv_put_resp(&m->arena, &h, &resp, &out);
            res.resp = out ? &out->base : NULL;
        }
        /* the response borrows bytes of the arena only, not of rq */
        etcdserverpb__put_request__free_unpacked(rq, NULL);
        return res;
    }
    case REQ_DELETE_RANGE: {
        Etcdserverpb__DeleteRangeRequest *rq =
            etcdserverpb__delete_range_request__unpack(NULL, len, data);
        if (!rq)
            return res;
        mvcc_delete_req req;
        etcd_conv_delete_req(rq, &req);
        mvcc_delete_resp resp;
        memset(&resp, 0, sizeof resp);
        res.rc = mvcc_delete_range(mv, &m->arena, &req, &resp, NULL);
        if (res.rc == MVCC_OK) {
            Etcdserverpb__DeleteRangeResponse *out = NULL;
            res.rc = etcd_conv_delete_resp(&m->arena, &h, &resp, &out);
            res.resp = out ? &out->base : NULL;
        }
        etcdserverpb__delete_range_request__free_unpacked(rq, NULL);
        return res;
    }
    case REQ_TXN: {
        Etcdserverpb__TxnRequest *rq = etcdserverpb__txn_request__unpack(NULL, len, data);
        if (!rq)
            return res;
        res = run_txn(m, mv, rq);
        etcdserverpb__txn_request__free_unpacked(rq, NULL);
        return res;
    }
    case REQ_COMPACT: {
        Etcdserverpb__CompactionRequest *rq =
            etcdserverpb__compaction_request__unpack(NULL, len, data);
        if (!rq)
            return res;
        res.rc = mvcc_compact(mv, rq->revision, NULL);
        etcdserverpb__compaction_request__free_unpacked(rq, NULL);
        if (res.rc == MVCC_OK) {
            mvcc_status st;
            memset(&st, 0, sizeof st);
            (void)mvcc_status_revisions(mv, &st);
            Etcdserverpb__CompactionResponse *out = NULL;
            res.rc = etcd_conv_compaction_resp(&m->arena, &h, st.current_revision, &out);
            res.resp = out ? &out->base : NULL;
        }
        return res;
    }
    default:
        return res;
    }
}

int kv_apply(member *m, mvcc_store *mv, uint8_t kind, const uint8_t *req, size_t len,
             bool want_reply, int *grpc_status, const char **message, uint8_t **msg,
             size_t *msg_len)
{
    mvcc_arena_reset(&m->arena);
    kv_result res = run_write(m, mv, kind, req, len);
    if (mvcc_failed(res.rc))
        return -1;
    if (!want_reply)
        return 0;
    if (res.rc != MVCC_OK || !res.resp) {
        set_error(res.rc == MVCC_OK ? MVCC_ERESULT : res.rc, grpc_status, message);
        return 0;
    }
    if (member_pack(res.resp, msg, msg_len) != 0) {
        *grpc_status = 8;
        *message = "etcdserver: out of memory";
    }
    return 0;
}

void kv_serve_read(member *m, api_call *call, uint8_t kind, const uint8_t *req, size_t len)
{
    mvcc_arena_reset(&m->arena);
    mvcc_store *mv = storage_mvcc(m->st);
    kv_result res = {.rc = MVCC_EINVAL};
    if (kind == REQ_RANGE) {
        Etcdserverpb__RangeRequest *rq = etcdserverpb__range_request__unpack(NULL, len, req);
        if (rq) {
            res = run_range(m, mv, rq);
            if (res.rc == MVCC_OK && res.resp) {
                member_reply_pb(call, res.resp);
                etcdserverpb__range_request__free_unpacked(rq, NULL);
                return;
            }
            etcdserverpb__range_request__free_unpacked(rq, NULL);
        }
    } else if (kind == REQ_TXN) {
        Etcdserverpb__TxnRequest *rq = etcdserverpb__txn_request__unpack(NULL, len, req);
        if (rq) {
            res = run_txn(m, mv, rq);
            if (res.rc == MVCC_OK && res.resp) {
                member_reply_pb(call, res.resp);
                etcdserverpb__txn_request__free_unpacked(rq, NULL);
                return;
            }
            etcdserverpb__txn_request__free_unpacked(rq, NULL);
        }
    }
    int status;
    const char *message;
    set_error(res.rc == MVCC_OK ? MVCC_ERESULT : res.rc, &status, &message);
    member_reply_error(call, status, message);
}

/* ------------------------------------------------------------- handlers */

static void reply_mvcc_error(api_call *call, int rc);

/* The backend quota, checked before proposing (so that every member
 * decides alike: the alarm itself goes through the log). Returns true when
 * the write may go on; otherwise the client has its NOSPACE error and the
 * alarm is proposed if it is not raised yet. */
static bool quota_ok(member *m, api_call *call, uint64_t cost)
{
    if (cost == 0)
        return true; /* deletes and reads: allowed under the alarm, as etcd */
    mvcc_store *mv = storage_mvcc(m->st);
    if (mvcc_quota_check(mv, cost, NULL) == MVCC_OK)
        return true;
    mvcc_status st;
    if (mvcc_status_revisions(mv, &st) == MVCC_OK && !st.alarm_nospace)
        member_raise_nospace_for(m, call); /* answers NOSPACE once the alarm is applied */
    else
        reply_mvcc_error(call, MVCC_ENOSPACE);
    return false;
}

/* protobuf-c unpacks nested messages recursively without a depth limit, so a
 * small request could nest Txn in RequestOp in Txn ... deep enough to
 * overflow the stack. This walks the wire format of a TxnRequest (success =
 * 2, failure = 3: RequestOp; RequestOp.request_txn = 4: TxnRequest) with an
 * explicit bound before anything is unpacked. Returns false when nesting
 * exceeds max_depth or the bytes are not well-formed. */
#define TXN_MAX_DEPTH 16

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

static bool txn_depth_ok(const uint8_t *p, const uint8_t *end, bool is_txn, int depth)
{
    if (depth > 2 * TXN_MAX_DEPTH)
        return false;
    while (p < end) {
        uint64_t key, len;
        if (!read_varint(&p, end, &key))
            return false;
        switch (key & 7) {
        case 0:
            if (!read_varint(&p, end, &len))
                return false;
            break;
        case 1:
            if (end - p < 8)
                return false;
            p += 8;
            break;
        case 5:
            if (end - p < 4)
                return false;
            p += 4;
            break;
        case 2: {
            if (!read_varint(&p, end, &len) || len > (uint64_t)(end - p))
                return false;
            uint64_t field = key >> 3;
            bool nested = is_txn ? (field == 2 || field == 3) : field == 4;
            if (nested && !txn_depth_ok(p, p + len, !is_txn, depth + 1))
                return false;
            p += len;
            break;
        }
        default:
            return false;
        }
    }
    return true;
}

static void reply_malformed(api_call *call)
{
    member_reply_error(call, 3, "etcdserver: malformed request");
}

static void reply_mvcc_error(api_call *call, int rc)
{
    int status;
    const char *message;
    set_error(rc, &status, &message);
    member_reply_error(call, status, message);
}

static void on_range(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    member *m = ud;
    Etcdserverpb__RangeRequest *rq = etcdserverpb__range_request__unpack(NULL, len, msg);
    if (!rq) {
        reply_malformed(call);
        return;
    }
    bool empty = rq->key.len == 0;
    bool serializable = rq->serializable;
    etcdserverpb__range_request__free_unpacked(rq, NULL);
    if (empty) {
        reply_mvcc_error(call, MVCC_EEMPTYKEY);
        return;
    }
    if (serializable || UNSAFE_LOCAL_READS)
        kv_serve_read(m, call, REQ_RANGE, msg, len);
    else
        member_read(m, call, REQ_RANGE, msg, len);
}

static void on_put(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    member *m = ud;
    Etcdserverpb__PutRequest *rq = etcdserverpb__put_request__unpack(NULL, len, msg);
    if (!rq) {
        reply_malformed(call);
        return;
    }
    bool empty = rq->key.len == 0;
    mvcc_put_req preq;
    etcd_conv_put_req(rq, &preq);
    uint64_t cost = mvcc_put_cost(&preq);
    etcdserverpb__put_request__free_unpacked(rq, NULL);
    if (empty) {
        reply_mvcc_error(call, MVCC_EEMPTYKEY);
        return;
    }
    if (!quota_ok(m, call, cost))
        return;
    member_propose(m, call, REQ_PUT, msg, len);
}

static void on_delete_range(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    member *m = ud;
    Etcdserverpb__DeleteRangeRequest *rq =
        etcdserverpb__delete_range_request__unpack(NULL, len, msg);
    if (!rq) {
        reply_malformed(call);
        return;
    }
    bool empty = rq->key.len == 0;
    etcdserverpb__delete_range_request__free_unpacked(rq, NULL);
    if (empty) {
        reply_mvcc_error(call, MVCC_EEMPTYKEY);
        return;
    }
    member_propose(m, call, REQ_DELETE_RANGE, msg, len);
}

static void on_txn(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    member *m = ud;
    if (!txn_depth_ok(msg, msg + len, true, 0)) {
        member_reply_error(call, 3, "etcdserver: txn nested too deeply or malformed");
        return;
    }
    Etcdserverpb__TxnRequest *rq = etcdserverpb__txn_request__unpack(NULL, len, msg);
    if (!rq) {
        reply_malformed(call);
        return;
    }
    mvcc_arena_reset(&m->arena);
    mvcc_txn_req req;
    int rc = etcd_conv_txn_req(&m->arena, rq, &req);
    if (rc == MVCC_OK)
        rc = mvcc_txn_check(storage_mvcc(m->st), &req, NULL);
    bool readonly = rc == MVCC_OK && mvcc_txn_is_readonly(&req);
    uint64_t cost = rc == MVCC_OK && !readonly ? mvcc_txn_cost(&req) : 0;
    etcdserverpb__txn_request__free_unpacked(rq, NULL);
    if (rc != MVCC_OK) {
        reply_mvcc_error(call, rc);
        return;
    }
    if (!quota_ok(m, call, cost))
        return;
    if (readonly && UNSAFE_LOCAL_READS)
        kv_serve_read(m, call, REQ_TXN, msg, len);
    else if (readonly)
        member_read(m, call, REQ_TXN, msg, len);
    else
        member_propose(m, call, REQ_TXN, msg, len);
}

static void on_compact(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    member *m = ud;
    Etcdserverpb__CompactionRequest *rq = etcdserverpb__compaction_request__unpack(NULL, len, msg);
    if (!rq) {
        reply_malformed(call);
        return;
    }
    etcdserverpb__compaction_request__free_unpacked(rq, NULL);
    member_propose(m, call, REQ_COMPACT, msg, len);
}

const api_method kv_methods[] = {
    {"/etcdserverpb.KV/Range", on_range, NULL, NULL, NULL},
    {"/etcdserverpb.KV/Put", on_put, NULL, NULL, NULL},
    {"/etcdserverpb.KV/DeleteRange", on_delete_range, NULL, NULL, NULL},
    {"/etcdserverpb.KV/Txn", on_txn, NULL, NULL, NULL},
    {"/etcdserverpb.KV/Compact", on_compact, NULL, NULL, NULL},
};
const size_t kv_n_methods = sizeof kv_methods / sizeof kv_methods[0];
