/*
 * lease.h — cord's replicated lease table (etcd's lessor) as a C library.
 *
 * This header is the manual. Every public function says what it takes, what it returns
 * and which errors it can give.
 *
 * ## Model (etcd v3's, because clients depend on it)
 *
 * A lease is (id, granted TTL in seconds). The *set* of leases is replicated state: leases
 * are created and removed only by applying Raft entries (LeaseGrant, LeaseRevoke), which
 * every member does with lease_grant()/lease_revoke() in its apply path, inside the same
 * mvcc apply batch (one LMDB write transaction) as the rest of the entry. Those two calls
 * are deterministic: given the same table and the same arguments (and the same
 * lease_options.min_ttl_s / max_leases on every member), every member reaches the same
 * table and the same LMDB content.
 *
 * *Deadlines* are not replicated. Only the leader keeps them (in memory, in monotonic
 * milliseconds that the caller passes in; nothing here reads a clock):
 *   - lease_promote(now, extend) on becoming leader gives every lease its full TTL again,
 *     plus `extend` (etcd passes the election timeout), so a leader change extends leases
 *     rather than expiring them at once; like etcd, expiries that would bunch up beyond
 *     the revoke rate are spread out.
 *   - lease_renew() (KeepAlive) resets a lease's deadline to now + TTL;
 *   - lease_expired() lists leases whose deadline passed; the member proposes a
 *     LeaseRevoke for each (etcd rate-limits these to 1000/s; that is the member's job).
 *     A reported lease is reported again after lease_options.expired_retry_ms if it is
 *     still there (the revoke proposal got lost), as etcd's expiredLeaseRetryInterval.
 *   - lease_demote() on becoming follower forgets every deadline: followers never expire.
 *
 * ## IDs
 *
 * A LeaseGrant with ID 0 gets its ID *in the apply path*, deterministically: the member
 * passes the Raft index of the entry, the ID is a 63-bit mix of that index (never 0, never
 * negative), and if a lease with that ID exists the next value of the same mix is tried,
 * and so on. Every member computes the same ID; no collision error can happen for ID 0 (this
 * differs from etcd, which picks the ID in the proposer and can then fail with "lease
 * already exists"). The ID is returned by lease_grant() so the server answers the client
 * with it. A client-chosen non-zero ID is used as is.
 *
 * ## TTLs
 *
 * TTL > LEASE_MAX_TTL_S fails with LEASE_ETTLTOOLARGE. A TTL below min_ttl_s is raised to
 * it (and the raised value is stored and returned, as etcd). etcd's min TTL is
 * ceil(1.5 * election timeout) seconds: lease_min_ttl_s() computes it.
 *
 * ## Persistence
 *
 * Lease records live in the MVCC store's LMDB environment, named database "lease":
 * key = lease id (8-byte big-endian, two's complement), value = granted TTL in seconds
 * (8-byte big-endian). Keys attached to a lease are the mvcc module's business
 * ("lease_keys", see mvcc_lease_keys()); lease_revoke() deletes them through
 * mvcc_lease_revoke() in the same batch.
 *
 * lease_load() reads the records at startup. If an apply batch is aborted (commit failure),
 * or after mvcc_snapshot_restore()/mvcc_defrag() (the environment is reopened), call
 * lease_reload(): the in-memory table is rebuilt from LMDB (deadlines of leases that are
 * still there are kept).
 *
 * Writes made when no mvcc batch is open run in their own LMDB write transaction (tools and
 * tests; lease_revoke is then not atomic with its key deletion). The server always applies
 * inside a batch.
 *
 * A table without a store (lease_load never called) is memory-only; that is what the unit
 * tests of the expiry logic use.
 *
 * ## Wiring in the member
 *
 *   open      lease_table_new(); mvcc_open() with mvcc_options.lease_exists = lease_exists_cb
 *             and lease_ctx = the table (puts with an unknown lease then fail with
 *             "requested lease not found"); lease_load(table, store).
 *   propose   LeaseGrant: lease_grant_check() first (TTL, exists, limit).
 *   apply     LeaseGrant: lease_grant(id, ttl, entry index, now) in the batch; answer with
 *             the returned ID and TTL. LeaseRevoke (client or expiry): lease_revoke(...,
 *             want_prev_kv = true) in the batch; after the commit, notify watchers with the
 *             deletes of del_resp->revision (or read them back with mvcc_events()).
 *   abort     a batch commit failed: lease_reload(now).
 *   roles     became leader: lease_promote(now, election timeout); became follower (or
 *             candidate): lease_demote().
 *   timer     leader: lease_expired(now) -> propose LeaseRevoke for each (at most 1000/s);
 *             lease_next_expiry_ms() for the next wake-up.
 *   KeepAlive leader: lease_renew(); a follower forwards to the leader. LEASE_EEXPIRED: wait
 *             for the revoke to be applied (then "requested lease not found"), or for a
 *             leader change ("not leader": the client retries).
 *   TimeToLive leader: lease_time_to_live(); not found -> a response with TTL -1 (etcd);
 *             keys with mvcc_lease_keys(). Leases: lease_list() (any member).
 *
 * ## Errors
 *
 * Functions return LEASE_OK (0) or a negative LEASE_E* code and, when `err` is given, record
 * the code and a message. lease_grpc_status() gives the gRPC code and etcd's exact message.
 *
 * ## Threading
 *
 * A table is owned by one thread (the apply/event-loop thread).
 */
#ifndef CORD_LEASE_H
#define CORD_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/errors.h"
#include "mvcc/mvcc.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LEASE_MAX_TTL_S           9000000000LL /* etcd's MaxLeaseTTL */
#define LEASE_DEFAULT_MIN_TTL_S   2            /* etcd default: ceil(1.5 * 1000 ms) */
#define LEASE_DEFAULT_MAX_LEASES  (1u << 20)
#define LEASE_DEFAULT_RETRY_MS    3000 /* etcd's defaultExpiredleaseRetryInterval */
#define LEASE_DEFAULT_REVOKE_RATE 1000 /* etcd's leaseRevokeRate, per second */
#define LEASE_DB_NAME             "lease"
#define LEASE_FOREVER_MS          INT64_MAX /* a follower's deadline */

enum {
    LEASE_OK = 0,
    LEASE_ENOTFOUND = -1,    /* "etcdserver: requested lease not found" (NotFound) */
    LEASE_EEXISTS = -2,      /* "etcdserver: lease already exists" (FailedPrecondition) */
    LEASE_ETTLTOOLARGE = -3, /* "etcdserver: too large lease TTL" (OutOfRange) */
    LEASE_ENOTLEADER = -4,   /* "etcdserver: not leader" (Unavailable): forward or retry */
    LEASE_EEXPIRED = -5,     /* renew of a lease whose deadline passed: its revoke is on the
                              * way. etcd waits for the revoke, then answers "requested lease
                              * not found" (or "not leader" if leadership is lost first). */
    LEASE_ETOOMANY = -6,     /* max_leases reached (ResourceExhausted) */
    LEASE_EINVAL = -7,       /* bad argument */
    LEASE_ESTORAGE = -8,     /* LMDB/mvcc failure; err->msg says which. Inside a batch the
                              * batch must be aborted and lease_reload() called. */
    LEASE_ENOMEM = -9,
    LEASE_EBUSY = -10,   /* lease_load/lease_reload while an mvcc batch is open */
    LEASE_ERESULT = -11, /* lease_revoke: the revoke is complete, but prev_kvs did not fit in
                          * the arena (mvcc's MVCC_ERESULT) */
};

/* Fixed message for a LEASE_E* code (etcd's text where there is one). Never NULL. */
const char *lease_strerror(int code);
/* gRPC status code for a LEASE_E* code; *message (may be NULL) gets etcd's message. */
int lease_grpc_status(int code, const char **message);

typedef struct lease_options {
    int64_t min_ttl_s;        /* 0: LEASE_DEFAULT_MIN_TTL_S. Same on every member. */
    uint32_t max_leases;      /* 0: LEASE_DEFAULT_MAX_LEASES. Same on every member. */
    int64_t expired_retry_ms; /* 0: LEASE_DEFAULT_RETRY_MS */
    uint32_t revoke_rate;     /* revokes/s used to spread expiries on promote; 0: default */
} lease_options;

typedef struct lease_table lease_table;

/* etcd's minimum TTL for an election timeout: ceil(1.5 * election_timeout_ms / 1000) s
 * (etcd: (3 * electionTicks / 2) * heartbeat, rounded up to seconds). At least 1. */
int64_t lease_min_ttl_s(int64_t election_timeout_ms);

/* Creates an empty, memory-only table in follower state. options may be NULL.
 * Errors: LEASE_EINVAL (negative values), LEASE_ENOMEM. */
int lease_table_new(const lease_options *options, lease_table **out, cord_error *err);
/* Frees the table. NULL is ignored. Does not touch the store. */
void lease_table_free(lease_table *table);

/* Binds the table to `store` and loads every lease record from its "lease" database
 * (creating the database if missing), replacing the table's content. No mvcc batch may be
 * open. The table stays bound to the store for grant/revoke.
 * Errors: LEASE_EBUSY, LEASE_ESTORAGE (LMDB failure or a record that does not decode),
 *         LEASE_ETOOMANY (more records than max_leases), LEASE_ENOMEM. */
int lease_load(lease_table *table, mvcc_store *store, cord_error *err);

/* Rebuilds the table from the bound store (after an aborted batch, a snapshot restore or a
 * defrag). Leases that were already in memory keep their deadline; new ones get
 * now_ms + TTL when leader. Errors as lease_load, LEASE_EINVAL (no store bound). */
int lease_reload(lease_table *table, int64_t now_ms, cord_error *err);

/* mvcc_lease_exists_fn for mvcc_options.lease_exists, ctx = the table. */
bool lease_exists_cb(void *table, int64_t lease_id);
/* True when lease `lease_id` is in the table. */
bool lease_exists(const lease_table *table, int64_t lease_id);
/* Number of leases. */
size_t lease_count(const lease_table *table);

/* The ID lease_grant would give a LeaseGrant with ID 0 applied at `raft_index` (pure). */
int64_t lease_id_for_index(const lease_table *table, uint64_t raft_index);

/* Checks a LeaseGrant before proposing it (API layer): LEASE_ETTLTOOLARGE, LEASE_EEXISTS
 * (id != 0 and present), LEASE_ETOOMANY. The apply path checks again. */
int lease_grant_check(const lease_table *table, int64_t id, int64_t ttl_s, cord_error *err);

/* Applies a LeaseGrant (apply path). `id` 0 asks for an ID derived from raft_index (see
 * IDs). The TTL is raised to min_ttl_s when below it. Writes the record into the open mvcc
 * batch (or its own transaction). When leader, the deadline is now_ms + TTL; otherwise
 * now_ms is not used. Stores the lease's ID and TTL in *out_id / *out_ttl_s (may be NULL).
 * Errors (nothing changed): LEASE_ETTLTOOLARGE, LEASE_EEXISTS, LEASE_ETOOMANY;
 *        LEASE_ESTORAGE (the batch is poisoned), LEASE_ENOMEM. */
int lease_grant(lease_table *table, int64_t id, int64_t ttl_s, uint64_t raft_index, int64_t now_ms,
                int64_t *out_id, int64_t *out_ttl_s, cord_error *err);

/* Applies a LeaseRevoke (apply path): deletes every key attached to the lease in one
 * revision (mvcc_lease_revoke; *del_resp says which revision and how many, prev_kvs when
 * want_prev_kv so the member can build watch events), deletes the record, forgets the
 * lease. arena/del_resp may be NULL when no store is bound.
 * Errors: LEASE_ENOTFOUND (nothing changed), LEASE_ESTORAGE (the batch is poisoned; err
 *         holds mvcc's message), LEASE_ERESULT (revoked in full, like on success, but
 *         del_resp->prev_kvs is incomplete: read the events with mvcc_events instead). */
int lease_revoke(lease_table *table, mvcc_arena *arena, int64_t id, bool want_prev_kv,
                 mvcc_delete_resp *del_resp, cord_error *err);

/* Becomes leader at now_ms: every lease's deadline = now_ms + extend_ms + TTL, then
 * expiries bunched beyond 3/4 of the revoke rate per second are pushed back (etcd's
 * Promote). */
void lease_promote(lease_table *table, int64_t now_ms, int64_t extend_ms);
/* Becomes follower: forgets deadlines; lease_expired() reports nothing. */
void lease_demote(lease_table *table);
/* True between lease_promote and lease_demote. */
bool lease_is_leader(const lease_table *table);

/* KeepAlive on the leader: deadline = now_ms + TTL. Stores the TTL in *ttl_s.
 * Errors: LEASE_ENOTLEADER, LEASE_ENOTFOUND, LEASE_EEXPIRED (deadline already passed). */
int lease_renew(lease_table *table, int64_t id, int64_t now_ms, int64_t *ttl_s, cord_error *err);

/* TimeToLive on the leader: *granted_ttl_s = the TTL, *remaining_ms = deadline - now_ms
 * (may be <= 0 when expired and not yet revoked). etcd reports TTL as whole seconds
 * truncated (remaining_ms / 1000); for a missing lease etcd answers TTL -1 rather than an
 * error. Errors: LEASE_ENOTLEADER, LEASE_ENOTFOUND. */
int lease_time_to_live(const lease_table *table, int64_t id, int64_t now_ms, int64_t *granted_ttl_s,
                       int64_t *remaining_ms, cord_error *err);

/* Granted TTL of a lease (any member). Errors: LEASE_ENOTFOUND. */
int lease_ttl(const lease_table *table, int64_t id, int64_t *granted_ttl_s);

/* Lists lease IDs in ascending order: at most max written to out; returns the total count
 * (so out may be NULL with max 0 to size a buffer). */
size_t lease_list(const lease_table *table, int64_t *out, size_t max);

/* Leader only: writes up to `max` IDs of leases whose deadline is <= now_ms, earliest
 * deadline first (ties by ID), and returns how many. The member proposes a LeaseRevoke for
 * each. A reported lease is not reported again before now_ms + expired_retry_ms; if it is
 * still there then (the revoke proposal was lost) it is reported again. Leases left out
 * because `max` was reached are reported by the next call. Returns 0 on a follower. */
size_t lease_expired(lease_table *table, int64_t now_ms, int64_t *out_ids, size_t max);

/* Milliseconds until the next lease_expired() could report something (for the member's
 * timer): 0 if some is due, INT64_MAX if none (follower, or no leases). */
int64_t lease_next_expiry_ms(lease_table *table, int64_t now_ms);

#ifdef __cplusplus
}
#endif

#endif /* CORD_LEASE_H */
