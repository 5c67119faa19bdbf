/*
 * member.h: one cord member: the Raft core, its storage, the peer transport
 * and the client API, all owned by one libuv loop thread.
 *
 * How a request flows:
 *   write (Put, DeleteRange, Txn with writes, Compact): the request bytes
 *     are proposed as one entry (header: kind, origin member, request id);
 *     a follower's core forwards it to the leader. Every member applies the
 *     committed entry in one MVCC batch per Raft batch; the member that
 *     received the request answers its client once the batch is committed.
 *   linearizable read (Range, read-only Txn): raft_read_index; once the
 *     read point is applied locally, the read runs on the MVCC store.
 *   serializable read: runs at once on the local store.
 * Persistence happens in the loop's prepare phase (Redis's beforeSleep):
 * every turn's batch is persisted with one fdatasync before the messages
 * that depend on it leave.
 */
#ifndef CORD_SERVER_MEMBER_H
#define CORD_SERVER_MEMBER_H

#include <stdint.h>
#include <uv.h>

#include "common/errors.h"
#include "server/config.h"

typedef struct member member;

/* Member and cluster ids: 64-bit hashes (never 0) of the first peer URL and
 * the cluster token, and of the token alone, so that a member joining with
 * --initial-cluster-state existing computes the ids the cluster uses. */
uint64_t member_compute_id(const char *peer_url, const char *token);
uint64_t member_compute_cluster_id(const char *token);

/*
 * member_start: opens the data directory, recovers, binds the client and
 * peer listeners and starts serving on `loop`.
 * Returns 0 with *out set, or -1 with err filled (bad data directory,
 * corrupt files, a listener that cannot bind).
 */
int member_start(uv_loop_t *loop, const config *cfg, member **out, cord_error *err);

/* Stops serving, closes everything; `done` runs once all handles closed. */
void member_stop(member *m, void (*done)(void *arg), void *arg);

/* true once the member failed (storage error) or was removed: the process
 * should exit. */
int member_failed(const member *m);

#endif
