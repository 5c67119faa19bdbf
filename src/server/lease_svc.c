/*
 * lease_svc.c: the Lease service on the replicated lease table (src/lease).
 *
 * Grant and Revoke go through the log and are applied on every member.
 * Expiry is the leader's decision: its tick lists expired leases and
 * proposes their revokes. KeepAlive on the leader renews at once; on a
 * follower the renewal is carried to the leader as a log entry, and the
 * leader's verdict comes back the same way (REQ_LEASE_RENEW_ANSWER): only
 * the leader's table keeps deadlines. After a leader change, leases get
 * a full TTL plus an election timeout (lease_promote), never expiring at
 * once.
 */
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "etcdserverpb/rpc.pb-c.h"
#include "lease/lease.h"
#include "server/member_internal.h"

#define LEASE_EXPIRE_BATCH 64

static int64_t now_ms(member *m)
{
    return (int64_t)uv_now(m->loop);
}

static void lease_error(int code, int *status, const char **message)
{
    *status = lease_grpc_status(code, message);
    if (*status == 0) {
        *status = 13;
        *message = lease_strerror(code);
    }
}

static void header(member *m, Etcdserverpb__ResponseHeader *h)
{
    member_fill_header_fields(m, 0, &h->cluster_id, &h->member_id, &h->revision, &h->raft_term);
}

/* ------------------------------------------------------------- applying */

static int ttl_response(member *m, int64_t id, bool found, int64_t granted, int64_t remaining_ms,
                        bool want_keys, uint8_t **out, size_t *out_len);

/* Packs a LeaseKeepAliveResponse (TTL 0: not found or expired, as etcd answers). */
static int keep_alive_response(member *m, int64_t id, int64_t ttl, uint8_t **out, size_t *out_len)
{
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    header(m, &h);
    Etcdserverpb__LeaseKeepAliveResponse r = ETCDSERVERPB__LEASE_KEEP_ALIVE_RESPONSE__INIT;
    r.header = &h;
    r.id = id;
    r.ttl = ttl;
    return member_pack(&r.base, out, out_len);
}

/* The leader's answer entries (REQ_LEASE_TTL_ANSWER, REQ_LEASE_RENEW_ANSWER) start with the
 * asker's member id and request id. Returns the request id when the answer is ours and its
 * asker, a request of `asked`, still waits; else 0. */
static uint64_t answer_waiter(member *m, const uint8_t *req, size_t len, size_t want_len,
                              uint8_t asked)
{
    if (len != want_len || bytes_get64(req) != m->id)
        return 0; /* malformed, or someone else's */
    uint64_t req_id = bytes_get64(req + 8);
    waiter *w = member_waiter_find(m, req_id);
    return w && w->kind == asked ? req_id : 0;
}

int lease_apply(member *m, mvcc_store *mv, uint64_t index, uint8_t kind, const uint8_t *req,
                size_t len, bool want_reply, int *status, const char **message, uint8_t **msg,
                size_t *msg_len)
{
    return lease_apply_from(m, mv, index, kind, req, len, want_reply, status, message, msg, msg_len,
                            0, 0);
}

int lease_apply_from(member *m, mvcc_store *mv, uint64_t index, uint8_t kind, const uint8_t *req,
                     size_t len, bool want_reply, int *status, const char **message, uint8_t **msg,
                     size_t *msg_len, uint64_t answer_origin, uint64_t answer_req_id)
{

    (void)mv;
    cord_error e;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    switch (kind) {
    case REQ_LEASE_GRANT: {
        Etcdserverpb__LeaseGrantRequest *rq =
            etcdserverpb__lease_grant_request__unpack(NULL, len, req);
        if (!rq)
            return 0; /* nothing to do, on every member alike */
        int64_t id = 0, ttl = 0;
        int rc = lease_grant(m->leases, rq->id, rq->ttl, index, now_ms(m), &id, &ttl, &e);
        etcdserverpb__lease_grant_request__free_unpacked(rq, NULL);
        if (rc == LEASE_ESTORAGE || rc == LEASE_ENOMEM)
            return -1;
        if (!want_reply)
            return 0;
        if (rc != LEASE_OK) {
            lease_error(rc, status, message);
            return 0;
        }
        header(m, &h);
        Etcdserverpb__LeaseGrantResponse r = ETCDSERVERPB__LEASE_GRANT_RESPONSE__INIT;
        r.header = &h;
        r.id = id;
        r.ttl = ttl;
        if (member_pack(&r.base, msg, msg_len) != 0) {
            *status = 8;
            *message = "etcdserver: out of memory";
        }
        return 0;
    }
    case REQ_LEASE_REVOKE: {
        Etcdserverpb__LeaseRevokeRequest *rq =
            etcdserverpb__lease_revoke_request__unpack(NULL, len, req);
        if (!rq)
            return 0;
        int64_t id = rq->id;
        etcdserverpb__lease_revoke_request__free_unpacked(rq, NULL);
        mvcc_arena_reset(&m->arena);
        mvcc_delete_resp del;
        memset(&del, 0, sizeof del);
        int rc = lease_revoke(m->leases, &m->arena, id, false, &del, &e);
        if (rc == LEASE_ESTORAGE || rc == LEASE_ENOMEM)
            return -1;
        if (rc == LEASE_OK)
            log_debug("lease %016llx revoked, %lld keys deleted", (unsigned long long)id,
                      (long long)del.deleted);
        if (!want_reply)
            return 0;
        if (rc != LEASE_OK && rc != LEASE_ERESULT) {
            lease_error(rc, status, message);
            return 0;
        }
        header(m, &h);
        Etcdserverpb__LeaseRevokeResponse r = ETCDSERVERPB__LEASE_REVOKE_RESPONSE__INIT;
        r.header = &h;
        if (member_pack(&r.base, msg, msg_len) != 0) {
            *status = 8;
            *message = "etcdserver: out of memory";
        }
        return 0;
    }
    case REQ_LEASE_RENEW: {
        /* Only the leader's table has deadlines, so only its verdict counts. A follower
         * that answered from its own table could report a lease alive that the leader
         * had let expire, with its revoke already on the way. The leader renews here
         * and answers through the log (REQ_LEASE_RENEW_ANSWER), so the asker's answer
         * comes after every entry before it, a revoke included. */
        *status = -1;
        if (!lease_is_leader(m->leases))
            return 0;
        Etcdserverpb__LeaseKeepAliveRequest *rq =
            etcdserverpb__lease_keep_alive_request__unpack(NULL, len, req);
        if (!rq)
            return 0;
        int64_t id = rq->id;
        etcdserverpb__lease_keep_alive_request__free_unpacked(rq, NULL);
        int64_t ttl = 0;
        if (lease_renew(m->leases, id, now_ms(m), &ttl, NULL) != LEASE_OK)
            ttl = 0;
        if (answer_origin == m->id) { /* asked as a follower, leader by now */
            if (!want_reply)
                return 0;
            *status = 0;
            if (keep_alive_response(m, id, ttl, msg, msg_len) != 0) {
                *status = 8;
                *message = "etcdserver: out of memory";
            }
            return 0;
        }
        uint8_t a[32];
        bytes_put64(a, answer_origin);
        bytes_put64(a + 8, answer_req_id);
        bytes_put64(a + 16, (uint64_t)id);
        bytes_put64(a + 24, (uint64_t)ttl);
        member_propose_later(m, REQ_LEASE_RENEW_ANSWER, a, sizeof a);
        return 0;
    }
    case REQ_LEASE_RENEW_ANSWER: {
        uint64_t req_id = answer_waiter(m, req, len, 32, REQ_LEASE_RENEW);
        if (req_id == 0)
            return 0;
        int64_t id = (int64_t)bytes_get64(req + 16);
        int64_t ttl = (int64_t)bytes_get64(req + 24);
        if (!lease_exists(m->leases, id))
            ttl = 0; /* revoked between the renewal and this answer */
        uint8_t *out;
        size_t n;
        if (keep_alive_response(m, id, ttl, &out, &n) == 0)
            member_reply_later(m, req_id, 0, NULL, out, n);
        return 0;
    }
    case REQ_LEASE_TTL: {
        /* a follower's TimeToLive: the leader answers with its deadline */
        *status = -1; /* the answer comes with REQ_LEASE_TTL_ANSWER */
        if (!lease_is_leader(m->leases))
            return 0;
        Etcdserverpb__LeaseTimeToLiveRequest *rq =
            etcdserverpb__lease_time_to_live_request__unpack(NULL, len, req);
        if (!rq)
            return 0;
        int64_t granted = 0, remaining_ms = 0;
        int rc = lease_time_to_live(m->leases, rq->id, now_ms(m), &granted, &remaining_ms, NULL);
        uint8_t a[42];
        bytes_put64(a, answer_origin);
        bytes_put64(a + 8, answer_req_id);
        bytes_put64(a + 16, (uint64_t)rq->id);
        bytes_put64(a + 24, (uint64_t)granted);
        bytes_put64(a + 32, (uint64_t)remaining_ms);
        a[40] = rc == LEASE_OK;
        a[41] = rq->keys;
        etcdserverpb__lease_time_to_live_request__free_unpacked(rq, NULL);
        /* applying happens between raft_ready and raft_advance: propose afterwards */
        member_propose_later(m, REQ_LEASE_TTL_ANSWER, a, sizeof a);
        return 0;
    }
    case REQ_LEASE_TTL_ANSWER: {
        uint64_t req_id = answer_waiter(m, req, len, 42, REQ_LEASE_TTL);
        if (req_id == 0)
            return 0;
        uint8_t *out;
        size_t n;
        if (ttl_response(m, (int64_t)bytes_get64(req + 16), req[40] != 0,
                         (int64_t)bytes_get64(req + 24), (int64_t)bytes_get64(req + 32),
                         req[41] != 0, &out, &n) == 0)
            member_reply_later(m, req_id, 0, NULL, out, n);
        return 0;
    }
    default:
        return 0;
    }
}

/* --------------------------------------------------------------- leader */

void lease_svc_on_leader_change(member *m, bool leader)
{
    if (leader)
        lease_promote(m->leases, now_ms(m), (int64_t)m->cfg.election_timeout_ms);
    else
        lease_demote(m->leases);
}

/* Proposes a revoke for each expired lease (no client waits for these). */
void lease_svc_tick(member *m)
{
    if (!lease_is_leader(m->leases) || m->failed)
        return;
    int64_t ids[LEASE_EXPIRE_BATCH];
    size_t n = lease_expired(m->leases, now_ms(m), ids, LEASE_EXPIRE_BATCH);
    for (size_t i = 0; i < n; i++) {
        /* a test's stand-in for a refused proposal: lease_expired reports the lease again */
        if (failpoint_hit("lease-before-expiry-revoke") != 0)
            continue;
        Etcdserverpb__LeaseRevokeRequest rq = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
        rq.id = ids[i];
        uint8_t buf[32];
        size_t len = etcdserverpb__lease_revoke_request__pack(&rq, buf);
        member_propose(m, NULL, REQ_LEASE_REVOKE, buf, len);
    }
}

/* ------------------------------------------------------------- handlers */

static void on_grant(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    member *m = ud;
    Etcdserverpb__LeaseGrantRequest *rq = etcdserverpb__lease_grant_request__unpack(NULL, len, msg);
    if (!rq) {
        member_reply_error(call, 3, "etcdserver: malformed request");
        return;
    }
    int rc = lease_grant_check(m->leases, rq->id, rq->ttl, NULL);
    etcdserverpb__lease_grant_request__free_unpacked(rq, NULL);
    if (rc != LEASE_OK) {
        int status;
        const char *message;
        lease_error(rc, &status, &message);
        member_reply_error(call, status, message);
        return;
    }
    member_propose(m, call, REQ_LEASE_GRANT, msg, len);
}

static void on_revoke(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    member *m = ud;
    Etcdserverpb__LeaseRevokeRequest *rq =
        etcdserverpb__lease_revoke_request__unpack(NULL, len, msg);
    if (!rq) {
        member_reply_error(call, 3, "etcdserver: malformed request");
        return;
    }
    bool known = lease_exists(m->leases, rq->id);
    etcdserverpb__lease_revoke_request__free_unpacked(rq, NULL);
    if (!known) {
        int status;
        const char *message;
        lease_error(LEASE_ENOTFOUND, &status, &message);
        member_reply_error(call, status, message);
        return;
    }
    member_propose(m, call, REQ_LEASE_REVOKE, msg, len);
}

static void on_keep_alive(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    member *m = ud;
    Etcdserverpb__LeaseKeepAliveRequest *rq =
        etcdserverpb__lease_keep_alive_request__unpack(NULL, len, msg);
    if (!rq) {
        api_call_finish(call, 3, "etcdserver: malformed request");
        return;
    }
    int64_t id = rq->id;
    etcdserverpb__lease_keep_alive_request__free_unpacked(rq, NULL);
    if (!lease_is_leader(m->leases)) {
        member_propose_stream(m, call, REQ_LEASE_RENEW, msg, len);
        return;
    }
    int64_t ttl = 0;
    if (lease_renew(m->leases, id, now_ms(m), &ttl, NULL) != LEASE_OK)
        ttl = 0; /* not found or already expired: the client sees TTL 0, as from etcd */
    uint8_t *buf;
    size_t n;
    if (keep_alive_response(m, id, ttl, &buf, &n) == 0) {
        api_call_send(call, buf, n);
        free(buf);
    }
}

static void on_keep_alive_half_close(api_call *call, void *ud)
{
    member_stream_half_close(ud, call);
}

/* Builds and packs a TimeToLiveResponse (keys from the local store, which has
 * applied the same log). found false: TTL -1, as etcd answers for no lease. */
static int ttl_response(member *m, int64_t id, bool found, int64_t granted, int64_t remaining_ms,
                        bool want_keys, uint8_t **out, size_t *out_len)
{
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    header(m, &h);
    Etcdserverpb__LeaseTimeToLiveResponse r = ETCDSERVERPB__LEASE_TIME_TO_LIVE_RESPONSE__INIT;
    r.header = &h;
    r.id = id;
    ProtobufCBinaryData *keys = NULL;
    if (!found) {
        r.ttl = -1;
    } else {
        r.grantedttl = granted;
        r.ttl = remaining_ms > 0 ? remaining_ms / 1000 : 0;
        if (want_keys) {
            mvcc_arena_reset(&m->arena);
            mvcc_bytes *k = NULL;
            size_t nk = 0;
            bool more = false;
            if (mvcc_lease_keys(storage_mvcc(m->st), &m->arena, id, 100000, &k, &nk, &more, NULL) ==
                    MVCC_OK &&
                nk > 0) {
                keys = calloc(nk, sizeof(*keys));
                if (keys) {
                    for (size_t i = 0; i < nk; i++) {
                        keys[i].data = (uint8_t *)k[i].data;
                        keys[i].len = k[i].len;
                    }
                    r.keys = keys;
                    r.n_keys = nk;
                }
            }
        }
    }
    int rc = member_pack(&r.base, out, out_len);
    free(keys);
    return rc;
}

static void on_time_to_live(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    member *m = ud;
    Etcdserverpb__LeaseTimeToLiveRequest *rq =
        etcdserverpb__lease_time_to_live_request__unpack(NULL, len, msg);
    if (!rq) {
        member_reply_error(call, 3, "etcdserver: malformed request");
        return;
    }
    int64_t id = rq->id;
    bool want_keys = rq->keys;
    etcdserverpb__lease_time_to_live_request__free_unpacked(rq, NULL);
    if (!lease_is_leader(m->leases)) {
        /* only the leader knows deadlines: the question goes to it through the log and its
         * answer comes back the same way (REQ_LEASE_TTL, then REQ_LEASE_TTL_ANSWER) */
        member_propose(m, call, REQ_LEASE_TTL, msg, len);
        return;
    }
    int64_t granted = 0, remaining_ms = 0;
    int rc = lease_time_to_live(m->leases, id, now_ms(m), &granted, &remaining_ms, NULL);
    uint8_t *out;
    size_t n;
    if (ttl_response(m, id, rc == LEASE_OK, granted, remaining_ms, want_keys, &out, &n) != 0) {
        member_reply_error(call, 8, "etcdserver: out of memory");
        return;
    }
    api_call_reply(call, out, n);
    free(out);
}

static void on_leases(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    member *m = ud;
    Etcdserverpb__LeaseLeasesRequest *rq =
        etcdserverpb__lease_leases_request__unpack(NULL, len, msg);
    if (!rq) {
        member_reply_error(call, 3, "etcdserver: malformed request");
        return;
    }
    etcdserverpb__lease_leases_request__free_unpacked(rq, NULL);
    size_t n = lease_list(m->leases, NULL, 0);
    int64_t *ids = calloc(n ? n : 1, sizeof(*ids));
    Etcdserverpb__LeaseStatus *st = calloc(n ? n : 1, sizeof(*st));
    Etcdserverpb__LeaseStatus **stp = calloc(n ? n : 1, sizeof(*stp));
    if (!ids || !st || !stp) {
        free(ids);
        free(st);
        free(stp);
        member_reply_error(call, 8, "etcdserver: out of memory");
        return;
    }
    n = lease_list(m->leases, ids, n);
    for (size_t i = 0; i < n; i++) {
        Etcdserverpb__LeaseStatus init = ETCDSERVERPB__LEASE_STATUS__INIT;
        st[i] = init;
        st[i].id = ids[i];
        stp[i] = &st[i];
    }
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    header(m, &h);
    Etcdserverpb__LeaseLeasesResponse r = ETCDSERVERPB__LEASE_LEASES_RESPONSE__INIT;
    r.header = &h;
    r.leases = stp;
    r.n_leases = n;
    member_reply_pb(call, &r.base);
    free(ids);
    free(st);
    free(stp);
}

const api_method lease_methods[] = {
    {"/etcdserverpb.Lease/LeaseGrant", on_grant, NULL, NULL, NULL},
    {"/etcdserverpb.Lease/LeaseRevoke", on_revoke, NULL, NULL, NULL},
    {"/etcdserverpb.Lease/LeaseKeepAlive", on_keep_alive, NULL, NULL, on_keep_alive_half_close},
    {"/etcdserverpb.Lease/LeaseTimeToLive", on_time_to_live, NULL, NULL, NULL},
    {"/etcdserverpb.Lease/LeaseLeases", on_leases, NULL, NULL, NULL},
};
const size_t lease_n_methods = sizeof lease_methods / sizeof lease_methods[0];
