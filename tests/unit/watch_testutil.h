/*
 * watch_testutil.h — a fake store history (an in-memory event log) that serves the hub's
 * history callback, and a recording sink with switchable backpressure.
 */
#ifndef CORD_WATCH_TESTUTIL_H
#define CORD_WATCH_TESTUTIL_H

#include "watch/watch.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WT_MAX_STR 40

typedef struct wt_entry {
    int64_t rev;
    int64_t sub;
    watch_event ev; /* points into the strings below */
    watch_kv prev;
    char key[WT_MAX_STR];
    char value[WT_MAX_STR];
    char prev_value[WT_MAX_STR];
} wt_entry;

typedef struct wt_live {
    char key[WT_MAX_STR];
    char value[WT_MAX_STR];
    int64_t create_rev, mod_rev, version;
    bool live;
} wt_live;

typedef struct wt_log {
    wt_entry **entries;
    size_t n, cap;
    int64_t current_rev;
    int64_t compact_rev;
    wt_live live[256];
    size_t nlive;
    /* events of the revision being built */
    size_t rev_start;
    unsigned history_calls;
    unsigned fail_next; /* the next history calls fail with WATCH_EHISTORY */
} wt_log;

void wt_log_init(wt_log *log); /* current revision 1, like a new store */
void wt_log_free(wt_log *log);
/* Starts a write txn at current_rev + 1. */
void wt_begin(wt_log *log);
void wt_put(wt_log *log, const char *key, const char *value);
/* Deletes key if live (no event otherwise). */
void wt_del(wt_log *log, const char *key);
/* Ends the txn; notifies the hub (if any) with the revision's events. Returns the number of
 * events (0: no new revision, nothing notified). */
size_t wt_commit(wt_log *log, watch_hub *hub);
void wt_compact(wt_log *log, watch_hub *hub, int64_t rev);

/* the history callback, ctx = wt_log */
int wt_history(void *ctx, const watch_history_req *req, watch_history_resp *resp);

/* mvcc/etcd range semantics */
bool wt_in_range(const char *key, const uint8_t *k, size_t klen, const uint8_t *end, size_t elen);

typedef struct wt_rev {
    int type;
    char key[WT_MAX_STR];
    char value[WT_MAX_STR];
    int64_t rev;
    bool has_prev;
    char prev_value[WT_MAX_STR];
} wt_rev;

typedef struct wt_rec {
    watch_response_kind kind;
    int64_t watch_id, revision, compact;
    bool created, canceled, fragment;
    const char *reason;
    size_t n;
    wt_rev *ev;
    size_t size_bytes;
} wt_rec;

typedef struct wt_sink {
    wt_rec *recs;
    size_t n, cap;
    bool full;         /* refuse events/progress */
    unsigned full_pct; /* refuse randomly this often (0-100) */
    uint64_t rng;
    bool auto_drain;    /* call watch_stream_drained right away... (not allowed in sink); see
                           wt_drain_all */
    size_t taken_bytes; /* accepted, not yet drained */
} wt_sink;

void wt_sink_init(wt_sink *s);
void wt_sink_free(wt_sink *s);
int wt_sink_fn(void *ctx, watch_stream *stream, const watch_response *resp);
/* Drains everything the sink took from the stream's accounting. */
void wt_sink_drain(wt_sink *s, watch_stream *st);

watch_bytes wt_b(const char *s);
uint64_t wt_rand(uint64_t *state);

#endif
