/*
 * etcd_conv.h — conversions between etcd's protobuf-c messages (etcdserverpb, mvccpb) and
 * the MVCC store's request/response structs (mvcc/mvcc.h), so a member can hand a decoded
 * client request to mvcc_range/mvcc_put/mvcc_delete_range/mvcc_txn/mvcc_compact and turn
 * the result into the message it sends back.
 *
 * Memory. Everything these functions allocate comes from the caller's mvcc_arena (the same
 * arena mvcc_* fills its responses into is fine). Nothing is copied that need not be:
 *   - a converted request borrows the bytes (keys, values, ranges) of the protobuf-c request
 *     it came from: keep that message alive while the mvcc request is used;
 *   - a converted response borrows the bytes of the mvcc response (which live in the arena).
 * Response messages built here must NOT be freed with protobuf_c_message_free_unpacked():
 * pack them (protobuf_c_message_pack / pbjson_encode), then reset or free the arena.
 *
 * Errors: functions that allocate return MVCC_OK, MVCC_ERESULT when the arena is exhausted
 * (arena->exhausted is then set), or MVCC_EINVAL (a NULL argument, or txns nested deeper
 * than ETCD_CONV_MAX_TXN_DEPTH).
 *
 * Semantics kept from etcd:
 *   - Compare: the number/value compared is the target_union member that matches `target`
 *     (version for VERSION, create_revision for CREATE, mod_revision for MOD, value for
 *     VALUE, lease for LEASE); when the union holds another member or none, 0 / empty is
 *     compared, as etcd's compareKV does.
 *   - A RequestOp with no member set becomes MVCC_OP_NONE (mvcc rejects it like etcd).
 *   - Response headers: the top-level header gets cluster_id, member_id and raft_term from
 *     the etcd_conv_header given and the revision from the mvcc response. Responses nested in
 *     a TxnResponse get a header holding only their revision (a nested TxnResponse's header
 *     is empty), which is what etcd returns.
 *   - RangeRequest.serializable is not part of mvcc_range_req: the server reads it from the
 *     protobuf message (etcd_conv_range_req leaves the choice to the caller).
 */
#ifndef CORD_API_ETCD_CONV_H
#define CORD_API_ETCD_CONV_H

#include <stdbool.h>
#include <stdint.h>

#include "etcdserverpb/rpc.pb-c.h"
#include "mvcc/mvcc.h"
#include "mvccpb/kv.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Nested txns deeper than this are rejected with MVCC_EINVAL by etcd_conv_txn_req. */
#define ETCD_CONV_MAX_TXN_DEPTH 64

/* The member-level fields of a ResponseHeader (the revision comes from each response). */
typedef struct etcd_conv_header {
    uint64_t cluster_id;
    uint64_t member_id;
    uint64_t raft_term;
} etcd_conv_header;

/* ------------------------------------------------------------------------------------------ */
/* Requests: protobuf-c -> mvcc (borrowing the message's bytes)                                 */

/* These never fail (in and out must not be NULL). Enum values are passed through unchanged,
 * so an out-of-range sort order/target or compare result/target reaches mvcc, which rejects
 * it with MVCC_EINVAL. */
void etcd_conv_range_req(const Etcdserverpb__RangeRequest *in, mvcc_range_req *out);
void etcd_conv_put_req(const Etcdserverpb__PutRequest *in, mvcc_put_req *out);
void etcd_conv_delete_req(const Etcdserverpb__DeleteRangeRequest *in, mvcc_delete_req *out);
void etcd_conv_compare(const Etcdserverpb__Compare *in, mvcc_compare *out);

/* Converts a TxnRequest, nested txns included; compare and op arrays (and nested
 * mvcc_txn_req structs) are allocated in `arena`. A NULL element in the message's arrays
 * (never produced by protobuf_c_message_unpack) is treated as an empty Compare/RequestOp.
 * Errors: MVCC_ERESULT (arena), MVCC_EINVAL (NULL argument, too deep). */
int etcd_conv_txn_req(mvcc_arena *arena, const Etcdserverpb__TxnRequest *in, mvcc_txn_req *out);

/* Converts one RequestOp (a nested txn's lists go into `arena`). Errors as etcd_conv_txn_req. */
int etcd_conv_request_op(mvcc_arena *arena, const Etcdserverpb__RequestOp *in,
                         mvcc_request_op *out);

/* ------------------------------------------------------------------------------------------ */
/* Responses: mvcc -> protobuf-c (allocated in the arena)                                       */

/* A ResponseHeader with hdr's fields (hdr may be NULL: all zero) and `revision`. */
int etcd_conv_header_new(mvcc_arena *arena, const etcd_conv_header *hdr, int64_t revision,
                         Etcdserverpb__ResponseHeader **out);

/* One mvccpb.KeyValue / mvccpb.Event (borrowing the bytes of `in`). */
int etcd_conv_kv(mvcc_arena *arena, const mvcc_kv *in, Mvccpb__KeyValue **out);
int etcd_conv_event(mvcc_arena *arena, const mvcc_event *in, Mvccpb__Event **out);

/* Top-level responses: `hdr` gives cluster_id/member_id/raft_term (NULL: zeros), the
 * revision is the mvcc response's. */
int etcd_conv_range_resp(mvcc_arena *arena, const etcd_conv_header *hdr, const mvcc_range_resp *in,
                         Etcdserverpb__RangeResponse **out);
int etcd_conv_put_resp(mvcc_arena *arena, const etcd_conv_header *hdr, const mvcc_put_resp *in,
                       Etcdserverpb__PutResponse **out);
int etcd_conv_delete_resp(mvcc_arena *arena, const etcd_conv_header *hdr,
                          const mvcc_delete_resp *in, Etcdserverpb__DeleteRangeResponse **out);
/* The TxnResponse with one ResponseOp per executed op, nested txn responses included. */
int etcd_conv_txn_resp(mvcc_arena *arena, const etcd_conv_header *hdr, const mvcc_txn_resp *in,
                       Etcdserverpb__TxnResponse **out);
/* CompactionResponse: only a header; `revision` is the store's current revision. */
int etcd_conv_compaction_resp(mvcc_arena *arena, const etcd_conv_header *hdr, int64_t revision,
                              Etcdserverpb__CompactionResponse **out);

#ifdef __cplusplus
}
#endif

#endif /* CORD_API_ETCD_CONV_H */
