/*
 * member_internal.h: the member's state, shared by member.c (the loop,
 * Raft, storage, transport) and the service files (kv.c, ...).
 */
#ifndef CORD_SERVER_MEMBER_INTERNAL_H
#define CORD_SERVER_MEMBER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "api/http_server.h"
#include "mvcc/mvcc.h"
#include "raft/raft.h"
#include "server/config.h"
#include "server/member.h"
#include "server/storage.h"
#include "server/watch_pb.h"
#include "transport/transport.h"
#include "lease/lease.h"
#include "watch/watch.h"

/* What a proposed entry carries, after its header. */
enum req_kind {
    REQ_PUT = 1,
    REQ_DELETE_RANGE = 2,
    REQ_TXN = 3,
    REQ_COMPACT = 4,
    REQ_RANGE = 5,       /* reads: never proposed, served after a read index */
    REQ_MOVE_LEADER = 6, /* never proposed: waits for the leader to change */
    REQ_LEASE_GRANT = 7,
    REQ_LEASE_REVOKE = 8,
    REQ_LEASE_RENEW = 9,         /* a follower's KeepAlive, carried to the leader by the log */
    REQ_MEMBER_ADD = 10,         /* never proposed as such: a conf change + REQ_MEMBER_UPDATE */
    REQ_MEMBER_REMOVE = 11,      /* never proposed as such: a conf change */
    REQ_MEMBER_PROMOTE = 12,     /* never proposed as such: a conf change */
    REQ_MEMBER_UPDATE = 13,      /* a member's peer URLs (etcdserverpb.Member) */
    REQ_MEMBER_ATTR = 14,        /* a member publishes its name and client URLs */
    REQ_ALARM = 15,              /* raise or disarm an alarm (etcdserverpb.AlarmRequest) */
    REQ_LEASE_TTL = 16,          /* a follower's TimeToLive, for the leader to answer */
    REQ_LEASE_TTL_ANSWER = 17,   /* the leader's answer (origin, request id, deadline) */
    REQ_LEASE_RENEW_ANSWER = 18, /* the leader's verdict on a REQ_LEASE_RENEW (origin, id, TTL) */
    REQ_MEMBER_FORWARD = 19,     /* a follower's MemberAdd/Remove/Promote, for the leader */
    REQ_MEMBER_FORWARD_ANSWER = 20, /* the leader's answer (origin, id, kind, status, member) */
};

/* Entry header: magic, kind, origin member, request id (little endian). */
#define ENTRY_MAGIC      0xC7
#define ENTRY_HEADER_LEN 18

#define MEMBER_MAX_WAITERS    65536
#define MEMBER_WAITER_BUCKETS 4096

enum waiter_state {
    W_PROPOSED = 1,   /* waiting for our entry to be applied */
    W_READ_INDEX = 2, /* waiting for the read point */
    W_READ_APPLY = 3, /* waiting until the read point is applied */
    W_TRANSFER = 4,   /* MoveLeader: waiting for the target to lead (target in read_index) */
    W_CONF = 5,       /* membership: waiting for the configuration (member id in read_index) */
};

typedef struct waiter {
    uint64_t id;
    api_call *call; /* NULL once the client went away */
    uint8_t kind;
    uint8_t state;
    bool streaming;     /* the call is a stream: answer with a message, never finish it */
    bool end_stream;    /* ...unless its client half-closed: the last waiter of it ends it */
    bool nospace_reply; /* REQ_ALARM for a write over the quota: answer it NOSPACE once applied */
    uint64_t read_index;
    uint64_t deadline_tick;
    uint8_t *req; /* reads: the request, run once the read point is applied */
    size_t req_len;
    struct waiter *next_in_bucket;
    struct waiter *prev_all, *next_all;
    struct waiter *prev_read, *next_read; /* W_READ_APPLY only: the reads list */
} waiter;

/* A reply prepared while applying, sent once the batch is committed. */
typedef struct pending_reply {
    uint64_t waiter_id;
    int grpc_status;
    const char *grpc_message;
    uint8_t *msg; /* packed response (status 0) */
    size_t len;
} pending_reply;

/* One row of the replicated member table (cluster_svc.c). */
typedef struct peer_info {
    uint64_t id;
    char name[128];
    char peer_url[CONFIG_STR_MAX];
    char client_url[CONFIG_STR_MAX];
} peer_info;

struct member {
    uv_loop_t *loop;
    config cfg;
    uint64_t id, cluster_id;
    peer_info peers[CONFIG_MAX_MEMBERS];
    uint32_t n_peers;
    /* Members our table does not know that dialed us with their URL (cluster_on_hello):
     * peers of the transport until the table knows them, or until unreachable a while. */
    struct hello_peer {
        uint64_t id;
        bool down;
        uint64_t down_since_tick;
    } hello_peers[CONFIG_MAX_MEMBERS];
    uint32_t n_hello_peers;

    storage *st;
    raft *r;
    transport *tr;
    api_server *api;
    mvcc_arena arena;

    uv_timer_t tick_timer;
    uv_prepare_t prepare;
    uv_timer_t compact_timer; /* wakes the loop while a compaction has steps left */
    uv_work_t sync_work;      /* the WAL's fdatasync, on a libuv worker */
    bool sync_inflight;
    uint64_t sync_seq;          /* batches up to this one are durable when the sync ends */
    uint64_t last_seq;          /* the last batch taken from the core */
    bool wal_dirty;             /* WAL records appended and not yet in a sync */
    uv_work_t snap_work;        /* a snapshot's copy and file, on a libuv worker */
    uv_timer_t writeback_timer; /* every second: start the store's writeback (unsynced store) */
    uv_work_t writeback_work;
    bool writeback_inflight;
    bool snap_inflight;            /* between storage_snapshot_begin and the work's end */
    unsigned jobs;                 /* services' worker jobs on the store (member_job_hold) */
    struct defrag_job *defrag;     /* the running defragmentation (maint.c), applies held */
    uint64_t log_bytes_since_snap; /* entry bytes appended to the WAL since the last snapshot */
    uint64_t log_reads, log_read_entries;  /* read-backs from the WAL sent to followers */
    bool conf_since_snap;                  /* the membership changed since the last snapshot */
    bool snap_after_conf;                  /* the snapshot in progress follows such a change */
    uint64_t snap_failures;                /* snapshots not taken: the copy could not be written */
    uint64_t snap_retry_ms, snap_retry_at; /* after such a failure: backoff, and its end (uv_now) */
    struct stop_ctx *stop;                 /* set while stopping */
    uint64_t ticks;
    bool failed;
    bool stopping;

    /* requests in flight */
    waiter *buckets[MEMBER_WAITER_BUCKETS];
    waiter *all;   /* every waiter, for timeouts */
    waiter *reads; /* waiters in W_READ_APPLY, so serving reads does not scan every waiter */
    uint32_t n_waiters;
    uint64_t next_req_id;
    uint32_t request_timeout_ticks;

    pending_reply *replies;
    uint32_t n_replies, cap_replies;

    /* work asked for while applying, done once the batch is applied (member_propose_later,
     * member_after_apply) */
    struct deferred_prop {
        uint8_t kind; /* fn NULL: propose an entry of this kind */
        void (*fn)(member *m, const uint8_t *data, size_t len);
        uint8_t *data;
        size_t len;
    } * deferred;
    uint32_t n_deferred, cap_deferred;

    lease_table *leases;
    bool was_leader;

    /* automatic compaction (compactor.c) */
#define COMPACT_SAMPLES 11
    uv_timer_t compact_auto_timer;
    bool compact_revision_mode;
    int64_t compact_retention; /* revisions, or ms in periodic mode */
    int64_t compact_ring[COMPACT_SAMPLES];
    uint64_t compact_samples;
    int64_t compact_last;
    bool was_member, removed, published;
    uint64_t next_publish_tick;

    /* watch (watch_svc.c) */
    watch_hub *watch;
    mvcc_arena watch_arena;
    watch_pb watch_pb; /* packs events responses for many watchers at once */
    watch_event *watch_ev;
    watch_kv *watch_prev;
    size_t watch_cap;
    uv_timer_t watch_sync_timer, watch_progress_timer;

    /* Lock and Election (conc_svc.c): calls whose internal request was answered */
    uv_idle_t conc_idle;
    struct conc_op *conc_ready;

    /* metrics */
    uint64_t proposals_committed, proposals_failed, leader_changes;
    raft_id last_leader;
};

/* member.c */
waiter *member_waiter_find(member *m, uint64_t id);
waiter *member_waiter_new(member *m, api_call *call, uint8_t kind, uint8_t state);
void member_waiter_release(member *m, waiter *w);
void member_reply_later(member *m, uint64_t waiter_id, int grpc_status, const char *message,
                        uint8_t *msg, size_t len);
/* The ResponseHeader fields: ids and term; revision as given, or the
 * store's current one when revision <= 0. */
void member_fill_header_fields(member *m, int64_t revision, uint64_t *cluster_id,
                               uint64_t *member_id, int64_t *rev, uint64_t *raft_term);
/* Only the ids and the term (for headers whose revision comes from elsewhere). */
void member_header_ids(member *m, uint64_t *cluster_id, uint64_t *member_id, uint64_t *term);

/* maint.c: Maintenance and Cluster services, and a reply helper. */
extern const api_method maint_methods[];
extern const size_t maint_n_methods;
struct ProtobufCMessage;
/* A service's job on a worker thread that uses the member's store (a Maintenance snapshot's
 * copy): held before it is queued, released by its completion on the loop. member_stop
 * waits for every held job before it frees the store. */
typedef struct defrag_job defrag_job;
void member_job_hold(member *m);
void member_job_release(member *m);

void member_reply_pb(api_call *call, const struct ProtobufCMessage *msg);
/* Packs msg into a malloc'd buffer. Returns 0, or -1 when out of memory. */
int member_pack(const struct ProtobufCMessage *msg, uint8_t **out, size_t *len);
/* Applies an AlarmRequest entry (NOSPACE raise or disarm). Returns 0, -1 when the store failed. */
int maint_apply_alarm(member *m, mvcc_store *mv, const uint8_t *req, size_t len, bool want_reply,
                      int *status, const char **message, uint8_t **msg, size_t *msg_len);
/* Proposes the NOSPACE alarm for a write refused over the quota: `call` gets its NOSPACE
 * error once the alarm is applied (as etcd, which raises the alarm before it answers). */
void member_raise_nospace_for(member *m, api_call *call);

/* watch_svc.c: the Watch service. */
extern const api_method watch_methods[];
extern const size_t watch_n_methods;
int watch_svc_start(member *m, cord_error *err);
/* Feeds the hub the revisions applied since the last call. */
void watch_svc_after_apply(member *m);
void watch_svc_free(member *m);

/* compactor.c: --auto-compaction-*. */
int compactor_start(member *m, cord_error *err);

/* cluster_svc.c: membership and the Cluster service. */
extern const api_method cluster_methods[];
extern const size_t cluster_n_methods;
peer_info *cluster_find(member *m, uint64_t id);
void cluster_load(member *m);
void cluster_sync_transport(member *m);
/* transport_hello_fn: a member dialed us with its peer URL. */
void cluster_on_hello(void *ctx, uint64_t from, const char *url);
void cluster_after_apply(member *m);
/* A follower's membership call, carried by the log (REQ_MEMBER_FORWARD): applying it (the
 * leader it names decides once the batch is applied: member_after_apply), and applying the
 * leader's answer. */
void cluster_apply_forward(member *m, const uint8_t *req, size_t len, uint64_t origin,
                           uint64_t req_id, int *status);
void cluster_apply_forward_answer(member *m, const uint8_t *a, size_t len);
void cluster_publish(member *m);
int cluster_apply(member *m, mvcc_store *mv, uint8_t kind, const uint8_t *req, size_t len,
                  bool want_reply, int *status, const char **message, uint8_t **msg,
                  size_t *msg_len);

/* lease_svc.c: the Lease service. */
extern const api_method lease_methods[];
extern const size_t lease_n_methods;
int lease_apply(member *m, mvcc_store *mv, uint64_t index, uint8_t kind, const uint8_t *req,
                size_t len, bool want_reply, int *status, const char **message, uint8_t **msg,
                size_t *msg_len);
/* The same for an entry proposed by member `origin` as request `req_id` (a
 * REQ_LEASE_TTL or REQ_LEASE_RENEW is answered for them by the leader, through
 * the log). *status -1: no answer yet. */
int lease_apply_from(member *m, mvcc_store *mv, uint64_t index, uint8_t kind, const uint8_t *req,
                     size_t len, bool want_reply, int *status, const char **message, uint8_t **msg,
                     size_t *msg_len, uint64_t origin, uint64_t req_id);
void lease_svc_on_leader_change(member *m, bool leader);
void lease_svc_tick(member *m);

/* conc_svc.c: the Lock and Election services (etcd's concurrency recipes, run against this
 * member's own services). */
extern const api_method conc_methods[];
extern const size_t conc_n_methods;
void conc_svc_init(member *m);
void conc_svc_stop(member *m);

/* kv.c: the KV service. */
extern const api_method kv_methods[];
extern const size_t kv_n_methods;
/* Applies one committed KV entry (inside the storage's MVCC batch). When
 * want_reply, returns the packed response in *msg (malloc'd) or an error
 * status. Must behave the same on every member. Returns 0, or -1 when the
 * store itself failed (the batch must be aborted). */
int kv_apply(member *m, mvcc_store *mv, uint8_t kind, const uint8_t *req, size_t len,
             bool want_reply, int *grpc_status, const char **message, uint8_t **msg,
             size_t *msg_len);
/* Serves a read now on the local store. */
void kv_serve_read(member *m, api_call *call, uint8_t kind, const uint8_t *req, size_t len);

/* Proposes a request of `kind` for `call`, or replies with an error. With call
 * NULL the member proposes on its own behalf (no one waits). */
void member_propose(member *m, api_call *call, uint8_t kind, const uint8_t *req, size_t len);
/* The member's own proposal (no one waits), with the core's answer: 0 when it
 * is in the leader's log (or on its way there from a follower), else a RAFT_E*
 * code (RAFT_EBUSY under load, for one). Callers that must not lose it check. */
int member_propose_own(member *m, uint8_t kind, const uint8_t *req, size_t len);
/* The same; returns the waiter (NULL when call is NULL or the proposal was refused: the
 * call then has its error). */
waiter *member_propose_waiter(member *m, api_call *call, uint8_t kind, const uint8_t *req,
                              size_t len);
/* The member's own proposal, made from the apply path: queued, and proposed
 * once the current batch is handed back to the core (raft_advance). */
void member_propose_later(member *m, uint8_t kind, const uint8_t *req, size_t len);
/* Calls fn(m, a copy of data, len) once the batch being applied is done (it may propose). */
void member_after_apply(member *m, void (*fn)(member *m, const uint8_t *data, size_t len),
                        const uint8_t *data, size_t len);
/* The same for one message of a stream: the answer is sent on the stream. */
void member_propose_stream(member *m, api_call *call, uint8_t kind, const uint8_t *req, size_t len);
/* The client of a stream half-closed: end it now, or once the requests it still waits for
 * are answered (etcd answers every keep-alive read before the end of the stream). */
void member_stream_half_close(member *m, api_call *call);
/* Linearizable read: waits for a read point, then kv_serve_read. */
void member_read(member *m, api_call *call, uint8_t kind, const uint8_t *req, size_t len);
void member_reply_error(api_call *call, int grpc_status, const char *message);
/* In a method handler: `type *req` = the request decoded by protobuf-c's unpack `fn`, or
 * answer "etcdserver: malformed request" (InvalidArgument) and return. */
#define UNPACK_OR_FAIL(type, fn, call, msg, len)                                                   \
    type *req = fn(NULL, len, msg);                                                                \
    if (!req) {                                                                                    \
        member_reply_error(call, 3, "etcdserver: malformed request");                              \
        return;                                                                                    \
    }
/* MoveLeader: hands leadership to target and answers once it leads. */
void member_move_leader(member *m, api_call *call, uint64_t target);

#endif
