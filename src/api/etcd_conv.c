/*
 * etcd_conv.c — etcdserverpb/mvccpb <-> mvcc.h structs. See etcd_conv.h.
 */
#include "api/etcd_conv.h"

#include <string.h>

static mvcc_bytes from_pb(ProtobufCBinaryData b)
{
    mvcc_bytes out = {.data = b.len > 0 ? b.data : NULL, .len = b.len};
    return out;
}

static ProtobufCBinaryData to_pb(mvcc_bytes b)
{
    ProtobufCBinaryData out = {.len = b.data != NULL ? b.len : 0, .data = (uint8_t *)b.data};
    if (out.len == 0)
        out.data = NULL;
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* Requests                                                                                     */

void etcd_conv_range_req(const Etcdserverpb__RangeRequest *in, mvcc_range_req *out)
{
    memset(out, 0, sizeof *out);
    out->key = from_pb(in->key);
    out->range_end = from_pb(in->range_end);
    out->limit = in->limit;
    out->revision = in->revision;
    out->sort_order = (mvcc_sort_order)in->sort_order;
    out->sort_target = (mvcc_sort_target)in->sort_target;
    out->keys_only = in->keys_only;
    out->count_only = in->count_only;
    out->min_mod_revision = in->min_mod_revision;
    out->max_mod_revision = in->max_mod_revision;
    out->min_create_revision = in->min_create_revision;
    out->max_create_revision = in->max_create_revision;
}

void etcd_conv_put_req(const Etcdserverpb__PutRequest *in, mvcc_put_req *out)
{
    memset(out, 0, sizeof *out);
    out->key = from_pb(in->key);
    out->value = from_pb(in->value);
    out->lease = in->lease;
    out->prev_kv = in->prev_kv;
    out->ignore_value = in->ignore_value;
    out->ignore_lease = in->ignore_lease;
}

void etcd_conv_delete_req(const Etcdserverpb__DeleteRangeRequest *in, mvcc_delete_req *out)
{
    memset(out, 0, sizeof *out);
    out->key = from_pb(in->key);
    out->range_end = from_pb(in->range_end);
    out->prev_kv = in->prev_kv;
}

void etcd_conv_compare(const Etcdserverpb__Compare *in, mvcc_compare *out)
{
    memset(out, 0, sizeof *out);
    out->result = (mvcc_compare_result)in->result;
    out->target = (mvcc_compare_target)in->target;
    out->key = from_pb(in->key);
    out->range_end = from_pb(in->range_end);
    switch (in->target) {
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION:
        if (in->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION)
            out->number = in->version;
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE:
        if (in->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION)
            out->number = in->create_revision;
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD:
        if (in->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION)
            out->number = in->mod_revision;
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE:
        if (in->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE)
            out->value = from_pb(in->value);
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE:
        if (in->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE)
            out->number = in->lease;
        break;
    default:
        break;
    }
}

static int txn_req(mvcc_arena *arena, const Etcdserverpb__TxnRequest *in, mvcc_txn_req *out,
                   int depth);

static int request_op(mvcc_arena *arena, const Etcdserverpb__RequestOp *in, mvcc_request_op *out,
                      int depth)
{
    memset(out, 0, sizeof *out);
    if (in == NULL)
        return MVCC_OK; /* MVCC_OP_NONE */
    switch (in->request_case) {
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
        if (in->request_range == NULL)
            break;
        out->type = MVCC_OP_RANGE;
        etcd_conv_range_req(in->request_range, &out->range);
        break;
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
        if (in->request_put == NULL)
            break;
        out->type = MVCC_OP_PUT;
        etcd_conv_put_req(in->request_put, &out->put);
        break;
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
        if (in->request_delete_range == NULL)
            break;
        out->type = MVCC_OP_DELETE_RANGE;
        etcd_conv_delete_req(in->request_delete_range, &out->delete_range);
        break;
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN: {
        if (in->request_txn == NULL)
            break;
        mvcc_txn_req *t = mvcc_arena_alloc(arena, sizeof *t);
        if (t == NULL)
            return MVCC_ERESULT;
        int rc = txn_req(arena, in->request_txn, t, depth + 1);
        if (rc != MVCC_OK)
            return rc;
        out->type = MVCC_OP_TXN;
        out->txn = t;
        break;
    }
    default:
        break;
    }
    return MVCC_OK;
}

static int op_list(mvcc_arena *arena, Etcdserverpb__RequestOp *const *ops, size_t n,
                   const mvcc_request_op **out, size_t *out_len, int depth)
{
    *out = NULL;
    *out_len = 0;
    if (n == 0)
        return MVCC_OK;
    if (n > SIZE_MAX / sizeof(mvcc_request_op))
        return MVCC_ERESULT;
    mvcc_request_op *arr = mvcc_arena_alloc(arena, n * sizeof *arr);
    if (arr == NULL)
        return MVCC_ERESULT;
    for (size_t i = 0; i < n; i++) {
        int rc = request_op(arena, ops[i], &arr[i], depth);
        if (rc != MVCC_OK)
            return rc;
    }
    *out = arr;
    *out_len = n;
    return MVCC_OK;
}

static int txn_req(mvcc_arena *arena, const Etcdserverpb__TxnRequest *in, mvcc_txn_req *out,
                   int depth)
{
    memset(out, 0, sizeof *out);
    if (depth > ETCD_CONV_MAX_TXN_DEPTH)
        return MVCC_EINVAL;
    if (in->n_compare > 0) {
        if (in->n_compare > SIZE_MAX / sizeof(mvcc_compare))
            return MVCC_ERESULT;
        mvcc_compare *cmps = mvcc_arena_alloc(arena, in->n_compare * sizeof *cmps);
        if (cmps == NULL)
            return MVCC_ERESULT;
        for (size_t i = 0; i < in->n_compare; i++) {
            if (in->compare[i] == NULL) {
                Etcdserverpb__Compare empty = ETCDSERVERPB__COMPARE__INIT;
                etcd_conv_compare(&empty, &cmps[i]);
            } else {
                etcd_conv_compare(in->compare[i], &cmps[i]);
            }
        }
        out->compare = cmps;
        out->compare_len = in->n_compare;
    }
    int rc = op_list(arena, in->success, in->n_success, &out->success, &out->success_len, depth);
    if (rc != MVCC_OK)
        return rc;
    return op_list(arena, in->failure, in->n_failure, &out->failure, &out->failure_len, depth);
}

int etcd_conv_txn_req(mvcc_arena *arena, const Etcdserverpb__TxnRequest *in, mvcc_txn_req *out)
{
    if (arena == NULL || in == NULL || out == NULL)
        return MVCC_EINVAL;
    return txn_req(arena, in, out, 1);
}

int etcd_conv_request_op(mvcc_arena *arena, const Etcdserverpb__RequestOp *in, mvcc_request_op *out)
{
    if (arena == NULL || out == NULL)
        return MVCC_EINVAL;
    return request_op(arena, in, out, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* Responses                                                                                    */

#define NEW(arena, type, init, out)                                                                \
    do {                                                                                           \
        (out) = mvcc_arena_alloc((arena), sizeof(type));                                           \
        if ((out) == NULL)                                                                         \
            return MVCC_ERESULT;                                                                   \
        init(out);                                                                                 \
    } while (0)

int etcd_conv_header_new(mvcc_arena *arena, const etcd_conv_header *hdr, int64_t revision,
                         Etcdserverpb__ResponseHeader **out)
{
    if (arena == NULL || out == NULL)
        return MVCC_EINVAL;
    Etcdserverpb__ResponseHeader *h;
    NEW(arena, Etcdserverpb__ResponseHeader, etcdserverpb__response_header__init, h);
    if (hdr != NULL) {
        h->cluster_id = hdr->cluster_id;
        h->member_id = hdr->member_id;
        h->raft_term = hdr->raft_term;
    }
    h->revision = revision;
    *out = h;
    return MVCC_OK;
}

static void fill_kv(Mvccpb__KeyValue *kv, const mvcc_kv *in)
{
    mvccpb__key_value__init(kv);
    kv->key = to_pb(in->key);
    kv->create_revision = in->create_revision;
    kv->mod_revision = in->mod_revision;
    kv->version = in->version;
    kv->value = to_pb(in->value);
    kv->lease = in->lease;
}

int etcd_conv_kv(mvcc_arena *arena, const mvcc_kv *in, Mvccpb__KeyValue **out)
{
    if (arena == NULL || in == NULL || out == NULL)
        return MVCC_EINVAL;
    Mvccpb__KeyValue *kv = mvcc_arena_alloc(arena, sizeof *kv);
    if (kv == NULL)
        return MVCC_ERESULT;
    fill_kv(kv, in);
    *out = kv;
    return MVCC_OK;
}

/* An array of n KeyValue pointers backed by one block of n KeyValues. */
static int kv_list(mvcc_arena *arena, const mvcc_kv *in, size_t n, Mvccpb__KeyValue ***out)
{
    *out = NULL;
    if (n == 0)
        return MVCC_OK;
    if (n > SIZE_MAX / (sizeof(Mvccpb__KeyValue) + sizeof(Mvccpb__KeyValue *)))
        return MVCC_ERESULT;
    Mvccpb__KeyValue **ptrs = mvcc_arena_alloc(arena, n * sizeof *ptrs);
    Mvccpb__KeyValue *kvs = ptrs != NULL ? mvcc_arena_alloc(arena, n * sizeof *kvs) : NULL;
    if (kvs == NULL)
        return MVCC_ERESULT;
    for (size_t i = 0; i < n; i++) {
        fill_kv(&kvs[i], &in[i]);
        ptrs[i] = &kvs[i];
    }
    *out = ptrs;
    return MVCC_OK;
}

int etcd_conv_event(mvcc_arena *arena, const mvcc_event *in, Mvccpb__Event **out)
{
    if (arena == NULL || in == NULL || out == NULL)
        return MVCC_EINVAL;
    Mvccpb__Event *ev;
    NEW(arena, Mvccpb__Event, mvccpb__event__init, ev);
    ev->type = in->type == MVCC_EVENT_DELETE ? MVCCPB__EVENT__EVENT_TYPE__DELETE
                                             : MVCCPB__EVENT__EVENT_TYPE__PUT;
    int rc = etcd_conv_kv(arena, &in->kv, &ev->kv);
    if (rc != MVCC_OK)
        return rc;
    if (in->prev_kv != NULL && (rc = etcd_conv_kv(arena, in->prev_kv, &ev->prev_kv)) != MVCC_OK)
        return rc;
    *out = ev;
    return MVCC_OK;
}

int etcd_conv_range_resp(mvcc_arena *arena, const etcd_conv_header *hdr, const mvcc_range_resp *in,
                         Etcdserverpb__RangeResponse **out)
{
    if (arena == NULL || in == NULL || out == NULL)
        return MVCC_EINVAL;
    Etcdserverpb__RangeResponse *r;
    NEW(arena, Etcdserverpb__RangeResponse, etcdserverpb__range_response__init, r);
    int rc = etcd_conv_header_new(arena, hdr, in->revision, &r->header);
    if (rc != MVCC_OK)
        return rc;
    if ((rc = kv_list(arena, in->kvs, in->kvs_len, &r->kvs)) != MVCC_OK)
        return rc;
    r->n_kvs = in->kvs_len;
    r->more = in->more;
    r->count = in->count;
    *out = r;
    return MVCC_OK;
}

int etcd_conv_put_resp(mvcc_arena *arena, const etcd_conv_header *hdr, const mvcc_put_resp *in,
                       Etcdserverpb__PutResponse **out)
{
    if (arena == NULL || in == NULL || out == NULL)
        return MVCC_EINVAL;
    Etcdserverpb__PutResponse *r;
    NEW(arena, Etcdserverpb__PutResponse, etcdserverpb__put_response__init, r);
    int rc = etcd_conv_header_new(arena, hdr, in->revision, &r->header);
    if (rc != MVCC_OK)
        return rc;
    if (in->prev_kv != NULL && (rc = etcd_conv_kv(arena, in->prev_kv, &r->prev_kv)) != MVCC_OK)
        return rc;
    *out = r;
    return MVCC_OK;
}

int etcd_conv_delete_resp(mvcc_arena *arena, const etcd_conv_header *hdr,
                          const mvcc_delete_resp *in, Etcdserverpb__DeleteRangeResponse **out)
{
    if (arena == NULL || in == NULL || out == NULL)
        return MVCC_EINVAL;
    Etcdserverpb__DeleteRangeResponse *r;
    NEW(arena, Etcdserverpb__DeleteRangeResponse, etcdserverpb__delete_range_response__init, r);
    int rc = etcd_conv_header_new(arena, hdr, in->revision, &r->header);
    if (rc != MVCC_OK)
        return rc;
    r->deleted = in->deleted;
    if ((rc = kv_list(arena, in->prev_kvs, in->prev_kvs_len, &r->prev_kvs)) != MVCC_OK)
        return rc;
    r->n_prev_kvs = in->prev_kvs_len;
    *out = r;
    return MVCC_OK;
}

static int txn_resp(mvcc_arena *arena, const etcd_conv_header *hdr, const mvcc_txn_resp *in,
                    Etcdserverpb__TxnResponse **out, int depth)
{
    if (depth > ETCD_CONV_MAX_TXN_DEPTH)
        return MVCC_EINVAL;
    Etcdserverpb__TxnResponse *r;
    NEW(arena, Etcdserverpb__TxnResponse, etcdserverpb__txn_response__init, r);
    int rc = etcd_conv_header_new(arena, hdr, in->revision, &r->header);
    if (rc != MVCC_OK)
        return rc;
    r->succeeded = in->succeeded;
    size_t n = in->responses_len;
    if (n > 0) {
        if (n > SIZE_MAX / (sizeof(Etcdserverpb__ResponseOp) + sizeof(void *)))
            return MVCC_ERESULT;
        Etcdserverpb__ResponseOp **ptrs = mvcc_arena_alloc(arena, n * sizeof *ptrs);
        Etcdserverpb__ResponseOp *ops =
            ptrs != NULL ? mvcc_arena_alloc(arena, n * sizeof *ops) : NULL;
        if (ops == NULL)
            return MVCC_ERESULT;
        for (size_t i = 0; i < n; i++) {
            const mvcc_response_op *op = &in->responses[i];
            Etcdserverpb__ResponseOp *o = &ops[i];
            etcdserverpb__response_op__init(o);
            ptrs[i] = o;
            switch (op->type) {
            case MVCC_OP_RANGE:
                rc = etcd_conv_range_resp(arena, NULL, &op->range, &o->response_range);
                o->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
                break;
            case MVCC_OP_PUT:
                rc = etcd_conv_put_resp(arena, NULL, &op->put, &o->response_put);
                o->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT;
                break;
            case MVCC_OP_DELETE_RANGE:
                rc = etcd_conv_delete_resp(arena, NULL, &op->delete_range,
                                           &o->response_delete_range);
                o->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE;
                break;
            case MVCC_OP_TXN:
                if (op->txn == NULL)
                    return MVCC_EINVAL;
                rc = txn_resp(arena, NULL, op->txn, &o->response_txn, depth + 1);
                o->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN;
                break;
            default:
                rc = MVCC_OK;
                break; /* MVCC_OP_NONE: an empty ResponseOp */
            }
            if (rc != MVCC_OK)
                return rc;
        }
        r->responses = ptrs;
        r->n_responses = n;
    }
    *out = r;
    return MVCC_OK;
}

int etcd_conv_txn_resp(mvcc_arena *arena, const etcd_conv_header *hdr, const mvcc_txn_resp *in,
                       Etcdserverpb__TxnResponse **out)
{
    if (arena == NULL || in == NULL || out == NULL)
        return MVCC_EINVAL;
    return txn_resp(arena, hdr, in, out, 1);
}

int etcd_conv_compaction_resp(mvcc_arena *arena, const etcd_conv_header *hdr, int64_t revision,
                              Etcdserverpb__CompactionResponse **out)
{
    if (arena == NULL || out == NULL)
        return MVCC_EINVAL;
    Etcdserverpb__CompactionResponse *r;
    NEW(arena, Etcdserverpb__CompactionResponse, etcdserverpb__compaction_response__init, r);
    int rc = etcd_conv_header_new(arena, hdr, revision, &r->header);
    if (rc != MVCC_OK)
        return rc;
    *out = r;
    return MVCC_OK;
}
