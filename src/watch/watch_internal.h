/*
 * watch_internal.h — the hub's layout, shared by watch_hub.c (delivery, catch-up),
 * watch_stream.c (streams, create/cancel) and watch_index.c (key buckets). Not API.
 */
#ifndef CORD_WATCH_INTERNAL_H
#define CORD_WATCH_INTERNAL_H

#include "watch/watch.h"

typedef struct watcher watcher;

/* The synced single-key watchers of one key (etcd's keyWatchers map). */
typedef struct kbucket {
    uint64_t hash;
    uint8_t *key;
    size_t len;
    watcher *head;
    struct kbucket *next;
} kbucket;

struct watcher {
    int64_t id;
    watch_stream *stream;
    uint8_t *key;
    size_t key_len;
    uint8_t *end; /* NULL when end_len == 0 */
    size_t end_len;
    bool from_key;
    unsigned filters;
    bool prev_kv, progress_notify, fragment;
    bool synced;
    bool victim;
    bool had_events;  /* since the last progress tick */
    int64_t min_rev;  /* synced: first revision to deliver */
    int64_t next_rev; /* unsynced: resume point */
    int64_t next_sub;
    watcher *uprev, *unext; /* the hub's unsynced list */
    /* synced: in a key bucket (single-key watchers) or the hub's range list */
    kbucket *bucket;
    watcher *sprev, *snext;
};

struct watch_stream {
    watch_hub *hub;
    watch_sink_fn sink;
    void *sink_ctx;
    watcher **w; /* sorted by id */
    size_t n, cap;
    int64_t next_id;
    size_t pending_bytes;
    size_t unsynced;
    bool progress_deferred;
    uint64_t blocked_round; /* == hub round: the sink refused during this notify/sync */
    watch_stream *prev, *next;
};

struct watch_hub {
    watch_hub_options opts;
    int64_t current_rev;
    int64_t compact_rev;
    watch_stream *streams;
    size_t nstreams;
    watcher *uhead, *utail;
    watcher *ranges; /* synced watchers not in a key bucket */
    kbucket **kb;    /* chained hash of key buckets; kb_cap is 0 or a power of two */
    size_t kb_cap, kb_count;
    uint64_t round;
    watch_event *scratch;
    size_t scratch_cap;
    /* per-notify chains of events with equal keys */
    size_t *chain_next;
    bool *chain_first;
    size_t *chain_slots;
    size_t chain_cap, slots_cap;
    bool in_callback;
    uint64_t events_delivered;
    uint64_t history_reads;
};

int watch_seterr(cord_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int watch_bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn);

/* watch_hub.c */
/* Delivers a created/canceled/stream-progress response (the sink must take it). */
void watch_send_control(watch_stream *s, watch_response *r);
/* Moves a synced watcher to the unsynced list at `rev` (victim: because of backpressure). */
void watch_make_unsynced(watcher *w, int64_t rev, bool victim);
/* Takes w off the hub's unsynced list. */
void watch_unsynced_unlink(watch_hub *h, watcher *w);

/* watch_stream.c */
/* Removes w from its stream, the unsynced list or the delivery index, and frees it. */
void watch_watcher_remove(watcher *w);
/* The stream-wide progress response (watch id -1) at the current revision. */
void watch_send_stream_progress(watch_stream *s);

/* watch_index.c */
uint64_t watch_hash_key(const uint8_t *p, size_t n);
kbucket *watch_bucket_find(const watch_hub *h, uint64_t hash, const uint8_t *key, size_t len);
/* Adds a synced watcher to the delivery index (its key's bucket, or the range list). */
void watch_index_add(watch_hub *h, watcher *w);
void watch_index_remove(watch_hub *h, watcher *w);
/* Links the events of one notify with equal keys (chain_next / chain_first). Returns false
 * on ENOMEM. */
bool watch_build_chains(watch_hub *h, const watch_event *ev, size_t n);

#endif
