/*
 * watch.h — cord's watch hub (etcd's watchableStore + the watch server's stream logic) as a
 * pure C library: no I/O, no clocks, no threads. The member feeds it applied writes and
 * client requests and gives it two callbacks: a per-stream *sink* that takes responses, and
 * a *history* reader (wired to mvcc_events()) for catching watchers up.
 *
 * This header is the manual. Every public function says what it takes, what it returns
 * and which errors it can give.
 *
 * ## Model (etcd v3's)
 *
 * A *stream* is one client Watch RPC. It holds *watchers*; each has a watch_id unique in the
 * stream (client-given, or assigned: 0, 1, 2, ... skipping taken ids, as etcd), a key range
 * with etcd's conventions (range_end empty: the single key; range_end "\0": every key >=
 * key; otherwise [key, range_end); an empty key means "\0"), a start revision, the prev_kv
 * flag, NOPUT/NODELETE filters, progress_notify and fragment flags.
 *
 * Guarantees, per watcher: every event on its range with revision >= its start revision is
 * delivered exactly once, in (revision, sub-revision) order, without gaps — or the watcher
 * is canceled with compact_revision set when history it still needs has been compacted.
 * The "created" response of a watcher reaches the sink before any event of it, and created
 * responses come in the order of the creates.
 *
 * Watcher states:
 *   synced    has everything up to the hub's current revision; receives new events from
 *             watch_hub_notify() directly (a watcher created with start revision 0 or in the
 *             future starts synced).
 *   unsynced  its start revision is in the past, or it was a *victim*: its stream's sink was
 *             full when events for it arrived (backpressure). watch_hub_sync() catches it up
 *             from history in bounded chunks; when it reaches the current revision it joins
 *             the synced set. Memory does not grow with a slow consumer: nothing is queued in
 *             the hub, the history is re-read from the store instead (etcd's victim list
 *             keeps the event batch; cord re-reads it).
 *
 * ## Backpressure
 *
 * Every response handed to a sink has an estimated size (protobuf bytes of its events plus
 * a fixed overhead, watch_response.size_bytes). The hub adds it to the stream's pending
 * bytes; the member calls watch_stream_drained() with the same number once the response
 * has been written out. Event responses are not offered while pending bytes + size would
 * pass the stream's limit (unless nothing is pending, so one large response can always
 * pass), and a sink may also refuse an event response (WATCH_SINK_FULL). Either way the
 * watchers concerned become victims. Control responses (created, canceled, and the answer
 * to an explicit progress request) are always delivered and the sink must take them;
 * periodic progress responses are dropped when the stream is full (etcd does the same). A client
 * that keeps creating and canceling without reading can still grow the member's output: the member
 * should close a stream whose pending bytes pass a hard limit (watch_stream_pending_bytes()).
 *
 * ## Calls the member makes
 *
 * - watch_hub_notify(events of one revision) after each applied write transaction, in
 *   revision order (after the batch is committed, so history reads see the same data).
 * - watch_hub_set_compacted() when a compaction is applied.
 * - watch_hub_sync() whenever there may be catch-up work: after creates, after drains, and
 *   on a timer (etcd: every 100 ms); it does at most a given amount of work per call.
 * - watch_hub_progress() on the progress-notify timer (etcd: every 10 minutes).
 *
 * The history reader is a thin adapter over mvcc_events() (same range conventions, same
 * resume point next_revision/next_sub, MVCC_ECOMPACTED -> WATCH_ECOMPACTED); see
 * read_events() in tests/unit/watch_mvcc_test.c, which is also how a member can build the
 * events of a committed revision for watch_hub_notify() (mvcc_events from rev to rev with
 * prev_kv).
 *
 * Cost of a notify: single-key watchers are found through a hash of their keys; watchers on
 * ranges are scanned one by one (etcd uses an interval tree for them).
 *
 * Callbacks must not call back into the hub (no create/cancel/notify/sync from a sink or the
 * history reader). Events given to the sink are borrowed for the duration of the call.
 *
 * ## Errors
 *
 * Functions return WATCH_OK (0) or a negative WATCH_E* code and record a message in `err`
 * (may be NULL). watch_strerror() gives etcd's text where one exists.
 */
#ifndef CORD_WATCH_H
#define CORD_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WATCH_DEFAULT_MAX_STREAMS             10000u
#define WATCH_DEFAULT_MAX_WATCHERS_PER_STREAM 10000u
#define WATCH_DEFAULT_PENDING_LIMIT_BYTES     (4u << 20)
#define WATCH_DEFAULT_CHUNK_EVENTS            1000u /* history events per catch-up chunk */
#define WATCH_RESPONSE_OVERHEAD_BYTES         64u   /* header etc. in size estimates */
#define WATCH_PROGRESS_WATCH_ID               (-1)  /* etcd's InvalidWatchID */

enum {
    WATCH_OK = 0,
    WATCH_EDUPID = -1,      /* "mvcc: duplicate watch ID provided on the WatchStream" */
    WATCH_EEMPTYRANGE = -2, /* "mvcc: watcher range is empty" */
    WATCH_ENOTFOUND = -3,   /* "mvcc: watcher does not exist" */
    WATCH_ECOMPACTED = -4,  /* "mvcc: required revision has been compacted" (history) */
    WATCH_ETOOMANY = -5,    /* too many streams / watchers on a stream */
    WATCH_EINVAL = -6,      /* bad argument */
    WATCH_ENOMEM = -7,
    WATCH_EHISTORY = -8, /* the history reader failed (retried at the next sync) */
};

const char *watch_strerror(int code);

/* ------------------------------------------------------------------------------------------ */
/* Events                                                                                       */

typedef struct watch_bytes {
    const uint8_t *data;
    size_t len;
} watch_bytes;

/* mvccpb.KeyValue (field for field as mvcc_kv) */
typedef struct watch_kv {
    watch_bytes key;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    watch_bytes value;
    int64_t lease;
} watch_kv;

typedef enum watch_event_type {
    WATCH_EVENT_PUT = 0,
    WATCH_EVENT_DELETE = 1,
} watch_event_type;

/* mvccpb.Event. kv.mod_revision is the event's revision. prev_kv may be NULL. */
typedef struct watch_event {
    watch_event_type type;
    watch_kv kv;
    const watch_kv *prev_kv;
} watch_event;

/* Filter bits (WatchCreateRequest.filters: NOPUT = 0, NODELETE = 1 in the proto). */
#define WATCH_FILTER_NOPUT    1u
#define WATCH_FILTER_NODELETE 2u

/* ------------------------------------------------------------------------------------------ */
/* Responses and callbacks                                                                      */

typedef enum watch_response_kind {
    WATCH_RESP_CREATED = 0,  /* created = true (canceled too when the create failed) */
    WATCH_RESP_EVENTS = 1,   /* events of one watcher */
    WATCH_RESP_CANCELED = 2, /* canceled = true; compact_revision when compacted */
    WATCH_RESP_PROGRESS = 3, /* no events; watch_id = the watcher's, or -1 for a stream-wide
                              * answer to a progress request */
} watch_response_kind;

typedef struct watch_response {
    watch_response_kind kind;
    int64_t watch_id;
    int64_t revision; /* header.revision: live events: their revision; catch-up chunks,
                       * created/canceled/progress: the hub's current revision (as etcd).
                       * For a progress response, every event of the watcher(s) up to it has
                       * been delivered. */
    bool created;
    bool canceled;
    int64_t compact_revision;
    const char *cancel_reason; /* NULL or a static string */
    const watch_event *events; /* prev_kv already removed unless the watcher asked */
    size_t events_len;
    bool fragment;     /* the watcher asked for fragmenting: split with watch_fragment_split() */
    size_t size_bytes; /* the estimate added to the stream's pending bytes */
} watch_response;

typedef struct watch_stream watch_stream;
typedef struct watch_hub watch_hub;

#define WATCH_SINK_OK   0
#define WATCH_SINK_FULL 1 /* not taken: only meaningful for events and progress */

/* Takes one response for the stream's client. Returns WATCH_SINK_OK, or WATCH_SINK_FULL to
 * refuse an events/progress response (nothing of it was taken). */
typedef int (*watch_sink_fn)(void *ctx, watch_stream *stream, const watch_response *resp);

typedef struct watch_history_req {
    watch_bytes key;
    watch_bytes range_end; /* the watcher's, with the conventions above */
    int64_t start_revision;
    int64_t start_sub;    /* resume point inside start_revision */
    int64_t end_revision; /* inclusive */
    bool prev_kv;
    size_t max_events; /* >= 1 */
} watch_history_req;

typedef struct watch_history_resp {
    const watch_event *events; /* valid until the reader is called again or sync returns */
    size_t events_len;
    int64_t next_revision; /* resume point (as mvcc_events_resp) */
    int64_t next_sub;
    bool complete;            /* every revision up to end_revision was examined */
    int64_t compact_revision; /* with WATCH_ECOMPACTED */
} watch_history_resp;

/* Reads history like mvcc_events(): events on the range with start <= revision <= end, in
 * order, at most max_events. Returns WATCH_OK, WATCH_ECOMPACTED (compact_revision set), or
 * any other negative code for a failure that is retried later. */
typedef int (*watch_history_fn)(void *ctx, const watch_history_req *req, watch_history_resp *resp);

/* ------------------------------------------------------------------------------------------ */
/* Hub                                                                                          */

typedef struct watch_hub_options {
    watch_history_fn history; /* required */
    void *history_ctx;
    int64_t current_revision; /* the store's current revision at start (>= 1) */
    int64_t compact_revision; /* the store's compacted revision (0: none) */
    uint32_t max_streams;     /* 0: default */
    uint32_t max_watchers_per_stream;
    size_t pending_limit_bytes; /* per stream */
    size_t chunk_events;        /* per history read */
} watch_hub_options;

typedef struct watch_hub_stats {
    size_t streams;
    size_t watchers;
    size_t synced;
    size_t unsynced; /* includes victims */
    size_t victims;  /* unsynced because of backpressure */
    uint64_t events_delivered;
    uint64_t history_reads;
} watch_hub_stats;

/* Creates a hub. Errors: WATCH_EINVAL (no history reader, current_revision < 1), ENOMEM. */
int watch_hub_new(const watch_hub_options *options, watch_hub **out, cord_error *err);
/* Frees the hub and every stream and watcher in it (no responses). NULL is ignored. */
void watch_hub_free(watch_hub *hub);

/* The revision of the last notify (or the initial one). */
int64_t watch_hub_revision(const watch_hub *hub);

/* Whether any synced watcher would look at the events of a notify (O(1)). When false, a
 * notify with no events at the newest revision does the same as one per revision. */
bool watch_hub_has_synced(const watch_hub *hub);

/* Whether watch_hub_sync has work: unsynced watchers (and with them deferred progress
 * requests) (O(1)). */
bool watch_hub_has_unsynced(const watch_hub *hub);

/* Feeds the events of one applied write transaction at `revision` (> the previous one;
 * events in sub-revision order, kv.mod_revision == revision; prev_kv filled when known:
 * watchers asking for prev_kv get it). Synced watchers get their matching events now;
 * watchers whose stream is full become victims. n may be 0 (a revision nothing matched).
 * Errors: WATCH_EINVAL (revision not increasing: nothing done). */
int watch_hub_notify(watch_hub *hub, const watch_event *events, size_t n, int64_t revision);

/* Records a compaction: unsynced watchers that still need history below it are canceled
 * with compact_revision at their next catch-up. */
void watch_hub_set_compacted(watch_hub *hub, int64_t compact_revision);

/* Catch-up work: reads history for unsynced watchers (round robin, streams that are not
 * full), delivers it, moves caught-up watchers to the synced set, answers deferred progress
 * requests, cancels watchers whose history is compacted. Examines at most about
 * `max_events` events (0: chunk_events). *more (may be NULL) says whether unsynced watchers
 * remain. Returns WATCH_OK or the first history error (other watchers still progressed). */
int watch_hub_sync(watch_hub *hub, size_t max_events, bool *more);

/* Progress notification to every synced watcher that asked for progress_notify and has not
 * had events since the previous call (etcd's progress ticker), with header revision =
 * `revision`, which must be the hub's current revision (checked). */
void watch_hub_progress(watch_hub *hub, int64_t revision);

void watch_hub_stats_get(const watch_hub *hub, watch_hub_stats *out);

/* ------------------------------------------------------------------------------------------ */
/* Streams                                                                                      */

/* Opens a stream with its sink. Errors: WATCH_ETOOMANY (max_streams), WATCH_ENOMEM. */
int watch_stream_open(watch_hub *hub, watch_sink_fn sink, void *sink_ctx, watch_stream **out,
                      cord_error *err);
/* Closes the stream: its watchers are dropped without responses. NULL is ignored. */
void watch_stream_close(watch_stream *stream);

typedef struct watch_create_req {
    watch_bytes key;
    watch_bytes range_end;
    int64_t start_revision; /* 0: from the next revision */
    int64_t watch_id;       /* 0: assign one (etcd's AutoWatchID) */
    bool prev_kv;
    bool progress_notify;
    bool fragment;
    unsigned filters; /* WATCH_FILTER_* */
} watch_create_req;

/* WatchCreateRequest: creates a watcher and sends its "created" response to the sink
 * before returning. On failure the sink gets etcd's failure response instead (created and
 * canceled, watch_id -1, cancel_reason = the error text) and nothing is created.
 * Stores the watch id in *watch_id (may be NULL). A past start revision needs
 * watch_hub_sync() to catch up (or to report compaction).
 * Errors: WATCH_EDUPID, WATCH_EEMPTYRANGE, WATCH_ETOOMANY (watchers per stream),
 *         WATCH_ENOMEM. */
int watch_create(watch_stream *stream, const watch_create_req *req, int64_t *watch_id,
                 cord_error *err);

/* WatchCancelRequest: removes the watcher and sends a canceled response. No more events of
 * it are delivered. Errors: WATCH_ENOTFOUND (no response sent, as etcd). */
int watch_cancel(watch_stream *stream, int64_t watch_id, cord_error *err);

/* WatchProgressRequest: when every watcher of the stream is synced, sends one progress
 * response (watch_id -1, current revision) now; otherwise it is sent as soon as they all
 * are (etcd 3.4 drops such a request; later etcd defers it like this). No watchers: nothing
 * is sent. */
void watch_stream_request_progress(watch_stream *stream);

/* The member wrote out `bytes` (sum of size_bytes of responses) of this stream's responses. */
void watch_stream_drained(watch_stream *stream, size_t bytes);
size_t watch_stream_pending_bytes(const watch_stream *stream);
size_t watch_stream_watchers(const watch_stream *stream);

/* ------------------------------------------------------------------------------------------ */
/* Sizes and fragmenting                                                                        */

/* Exact protobuf size of an mvccpb.Event (prev_kv counted when non-NULL). */
size_t watch_event_size(const watch_event *event);

/* Splits a response's events the way etcd's sendFragments does with limit = the server's
 * max request bytes. base_bytes is the encoded size of the WatchResponse without events and
 * without the fragment flag. If the whole response is smaller than limit_bytes or has fewer
 * than 2 events: one piece, sent with fragment = false. Otherwise pieces are sent with
 * fragment = true except the last; each piece has at least one event and takes events while
 * its size (fragment flag included) stays below limit_bytes.
 * Writes the end index (exclusive) of each piece to ends[] and returns the number of
 * pieces; room for n entries (1 when n is 0) is always enough. n == 0 gives one empty
 * piece; max_ends == 0 gives 0. */
size_t watch_fragment_split(const watch_event *events, size_t n, size_t base_bytes,
                            size_t limit_bytes, size_t *ends, size_t max_ends);

#ifdef __cplusplus
}
#endif

#endif /* CORD_WATCH_H */
