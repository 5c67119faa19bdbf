/*
 * watch_pb.h — WatchResponse messages with events, encoded for many watchers at once.
 *
 * When a put reaches 100 watchers, the same Event goes into 100 responses that differ only in
 * their watch_id. Building each with protobuf-c (three allocations, a packed-size pass and a
 * pack of every event, per watcher) was a third of a member's CPU under bench/compare's watch
 * workload. Here each Event is packed once and kept in a small cache keyed by what determines
 * it (its key, mod revision, type and whether prev_kv is wanted), the header once per revision,
 * and a response is the concatenation of these fields, byte for byte what protobuf-c packs
 * (fields in ascending order, zero scalars left out).
 */
#ifndef CORD_SERVER_WATCH_PB_H
#define CORD_SERVER_WATCH_PB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "watch/watch.h"

#define WATCH_PB_SLOTS          64u
#define WATCH_PB_MAX_EVENT_SIZE (16u * 1024u) /* bigger events are packed each time */

typedef struct watch_pb_slot {
    uint8_t *key; /* a copy of the event's key */
    size_t key_len;
    int64_t mod_revision;
    int type;
    bool prev;      /* packed with its prev_kv */
    uint8_t *bytes; /* the packed mvccpb.Event */
    size_t len;
} watch_pb_slot;

typedef struct watch_pb {
    /* the header of the last response (cluster, member, revision, term) */
    uint64_t hdr_cluster, hdr_member, hdr_term;
    int64_t hdr_revision;
    uint8_t hdr[64];
    size_t hdr_len; /* 0: none yet */
    watch_pb_slot slot[WATCH_PB_SLOTS];
    uint8_t *buf; /* the message being built */
    size_t cap;
    uint64_t hits, misses; /* for tests */
} watch_pb;

void watch_pb_init(watch_pb *p);
void watch_pb_free(watch_pb *p);

/* A WatchResponse{header, watch_id, fragment, events[from, to)} packed exactly as protobuf-c
 * packs it. Returns the bytes (valid until the next call) or NULL when out of memory. */
const uint8_t *watch_pb_events(watch_pb *p, uint64_t cluster_id, uint64_t member_id,
                               uint64_t raft_term, int64_t revision, int64_t watch_id,
                               bool fragment, const watch_event *ev, size_t n, size_t *len);

#endif /* CORD_SERVER_WATCH_PB_H */
