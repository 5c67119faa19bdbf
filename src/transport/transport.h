/*
 * transport.h: Raft peer connections over TCP, on the member's libuv loop.
 *
 * Single-threaded: every function must be called on the loop's thread, and
 * every callback runs there. The transport never blocks.
 *
 * Connections
 * -----------
 * For each peer the transport dials one outgoing TCP connection and sends
 * every message to that peer over it; a peer's messages to us arrive on the
 * connection that peer dialed (each direction has its own connection, as in
 * etcd's streams). A connection starts with a HELLO frame carrying the
 * cluster id, our id, the id we expect the peer to have and, once set, our
 * advertised peer URL (transport_set_advertise_url; the listener hands it to
 * the hello callback, so a member that does not know us yet can answer). The listener
 * answers HELLO_ACK, or REJECT (cluster id mismatch, wrong member id) and
 * closes; both sides log the reason. The dialer pipelines messages right
 * after its HELLO without waiting for the ACK; a dial that has no HELLO_ACK
 * within handshake_timeout_ms fails. A newer HELLO from a member replaces
 * that member's older incoming connection (it restarted, or the old one is
 * half-open). Sockets get TCP_NODELAY, keepalive, and TCP_USER_TIMEOUT
 * (unacknowledged data fails the connection after tcp_user_timeout_ms).
 *
 * One event-loop turn: the first message to an idle connection is written at
 * once; messages sent while a write is in flight go out together in the next
 * write (at most write_batch_bytes, one write in flight per peer).
 *
 * Sending and loss
 * ----------------
 * transport_send() encodes the message at once (the caller may free its
 * batch on return) into the peer's bounded queue, which is written out in
 * batches of frames (one uv_write per batch). Raft tolerates loss, so the
 * transport drops rather than waits: a message is dropped (and counted) when
 * the queue is full, when the peer is down (between reconnect attempts), or
 * when the connection breaks with frames still queued. While down, the
 * transport reports the peer through the unreachable callback so the member
 * can call raft_report_unreachable().
 *
 * Reconnect: after a failed dial or a broken connection the transport waits
 * an exponential backoff (backoff_min_ms doubling to backoff_max_ms) with
 * jitter in [delay/2, delay] drawn from a PRNG seeded by opts.seed; the
 * backoff resets when a HELLO_ACK arrives.
 *
 * Receiving
 * ---------
 * Frames larger than max_frame_bytes, bad magic/version/CRC, a malformed
 * message, a first frame that is not a HELLO, or a HELLO that does not match
 * close that one connection (logged and counted); other connections are
 * unaffected. A decoded message whose `to` is not us, or whose `from` is not
 * the member that said HELLO, is dropped and counted. An incoming connection
 * that does not complete its HELLO within handshake_timeout_ms is closed.
 *
 * Snapshots: for RAFT_MSG_SNAPSHOT the core leaves `data` NULL; the
 * transport calls snapshot_fill(ctx, snap_index = m->log_index, m->offset,
 * m->len, buf) to read the chunk from the member's snapshot file before
 * encoding it. On the receiving side the chunk data is in the message given
 * to on_message.
 *
 * URLs: "http://HOST:PORT". A listen URL's HOST is a numeric IPv4 address,
 * a bracketed IPv6 address or "localhost" (bound as 127.0.0.1), as etcd
 * requires. A peer URL's HOST may also be a name: it is resolved with
 * uv_getaddrinfo (libuv's thread pool, never blocking the loop) before every
 * dial, IPv4 preferred, first address used.
 *
 * Errors: functions return TRANSPORT_OK (0) or a negative TRANSPORT_E* code
 * (transport_strerror()); those that take a cord_error fill it too.
 */
#ifndef CORD_TRANSPORT_TRANSPORT_H
#define CORD_TRANSPORT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/errors.h"
#include "raft/raft.h"

enum {
    TRANSPORT_OK = 0,
    TRANSPORT_EINVAL = -1,       /* bad argument, bad URL, malformed message */
    TRANSPORT_ENOMEM = -2,       /* allocation failed */
    TRANSPORT_ELISTEN = -3,      /* cannot bind or listen on the peer URL */
    TRANSPORT_ENOPEER = -4,      /* send/remove: no such peer */
    TRANSPORT_EEXIST = -5,       /* add_peer: peer already known, or the id is ours */
    TRANSPORT_EFULL = -6,        /* send: the peer's queue is full; message dropped */
    TRANSPORT_EUNREACHABLE = -7, /* send: peer is down (backing off); message dropped */
    TRANSPORT_ETOOLARGE = -8,    /* send: encoded frame above max_frame_bytes; dropped */
    TRANSPORT_ESNAPSHOT = -9,    /* send: snapshot_fill failed; dropped */
    TRANSPORT_ECLOSED = -10,     /* transport_close was called */
};

const char *transport_strerror(int err);

typedef struct transport transport;

/* A message from a peer, already validated (structure, to == self_id, from
 * == the peer that said HELLO). m and everything it points to (entries,
 * entry data, snapshot chunk data) are valid only during the call: pass it
 * to raft_step(), which copies what it keeps. The callback may call any
 * transport function, including transport_close(). */
typedef void (*transport_on_message_fn)(void *ctx, const raft_msg *m);

/* Reads `len` bytes at `offset` of the snapshot taken at `snap_index` into
 * buf. Returns 0, or non-zero to drop the message (e.g. the snapshot is gone). */
typedef int (*transport_snapshot_fill_fn)(void *ctx, uint64_t snap_index, uint64_t offset,
                                          uint32_t len, uint8_t *buf);

/* The peer could not be reached: a dial failed, the connection broke, or a
 * message was dropped because the peer is down. Called at most once per
 * connection attempt. */
typedef void (*transport_unreachable_fn)(void *ctx, raft_id peer);

enum transport_log_level {
    TRANSPORT_LOG_DEBUG = 0,
    TRANSPORT_LOG_INFO,
    TRANSPORT_LOG_WARN,
    TRANSPORT_LOG_ERROR
};

/* A log line (no newline), logfmt: "level=warn component=transport member=ID event=... ".
 * Default: written to stderr. */
typedef void (*transport_log_fn)(void *ctx, enum transport_log_level level, const char *line);

typedef struct transport_options {
    uint64_t seed;                      /* backoff jitter PRNG seed (default: self_id) */
    uint32_t max_frame_bytes;           /* largest frame payload sent or accepted (default 8 MiB) */
    uint32_t queue_max_msgs;            /* per-peer queued messages (default 4096) */
    uint64_t queue_max_bytes;           /* per-peer queued bytes (default 64 MiB) */
    uint32_t write_batch_bytes;         /* bytes handed to one uv_write (default 1 MiB) */
    uint32_t backoff_min_ms;            /* first reconnect delay (default 50) */
    uint32_t backoff_max_ms;            /* reconnect delay cap (default 2000) */
    uint32_t handshake_timeout_ms;      /* HELLO (incoming) / dial+ACK (outgoing) deadline
                                           (default 5000) */
    uint32_t max_incoming;              /* accepted connections open at once (default 256) */
    uint32_t tcp_user_timeout_ms;       /* TCP_USER_TIMEOUT: unacknowledged data fails the
                                           connection after this long (default 15000; 0: off) */
    transport_log_fn log;               /* NULL: stderr */
    enum transport_log_level log_level; /* lowest level logged (default INFO) */
} transport_options;

/* Fills o with the defaults above. */
void transport_options_default(transport_options *o);

typedef struct transport_stats {
    uint64_t msgs_sent; /* frames of raft messages fully written */
    uint64_t bytes_sent;
    uint64_t msgs_received; /* messages delivered to on_message */
    uint64_t bytes_received;
    uint64_t msgs_dropped; /* every send that did not reach the wire, any reason */
    uint64_t dropped_queue_full;
    uint64_t dropped_unreachable; /* peer down at send time, or queued when it broke */
    uint64_t dropped_invalid;     /* encode failed, too large, snapshot_fill failed */
    uint64_t received_dropped;    /* received but not delivered (wrong to/from) */
    uint64_t dials;               /* connection attempts */
    uint64_t reconnects;          /* successful dials after the first for that peer */
    uint64_t dial_failures;       /* failed dials and broken outgoing connections */
    uint64_t handshakes_rejected; /* REJECTs sent or received */
    uint64_t bad_frames;          /* incoming connections closed for bad input */
    uint64_t incoming_open;       /* accepted connections currently open */
    uint64_t queued_msgs;         /* currently queued across peers */
    uint64_t queued_bytes;
} transport_stats;

/*
 * transport_new: create a transport listening on listen_url.
 * Takes: the loop; our member id (non-zero) and the cluster id; the URL
 * ("http://127.0.0.1:2380"; port 0 picks a free port, see
 * transport_listen_port); on_message (required), snapshot_fill (may be NULL:
 * snapshot messages are then dropped), ctx for every callback; opts (NULL for
 * defaults, copied).
 * Returns: TRANSPORT_OK with *out set, TRANSPORT_EINVAL, TRANSPORT_ELISTEN,
 * TRANSPORT_ENOMEM, with err filled.
 */
int transport_new(uv_loop_t *loop, raft_id self_id, uint64_t cluster_id, const char *listen_url,
                  transport_on_message_fn on_message, transport_snapshot_fill_fn snapshot_fill,
                  void *ctx, const transport_options *opts, transport **out, cord_error *err);

/* The port actually bound (useful with port 0). */
int transport_listen_port(const transport *t);

void transport_set_unreachable_cb(transport *t, transport_unreachable_fn fn);

/* The peer URL we advertise, sent in the HELLO of every connection we dial (at most
 * MSGCODEC_URL_MAX printable bytes). Returns TRANSPORT_OK or TRANSPORT_EINVAL. */
int transport_set_advertise_url(transport *t, const char *url, cord_error *err);

/* A HELLO was accepted from member `from` that gave its peer URL (whether or not it is
 * a peer of ours). A member whose member table does not know `from` yet can add it as
 * a peer at that URL, so that its answers reach it. May call any transport function. */
typedef void (*transport_hello_fn)(void *ctx, raft_id from, const char *url);
void transport_set_hello_cb(transport *t, transport_hello_fn fn);

/*
 * transport_add_peer: start talking to member `id` at url (dials at once).
 * Returns TRANSPORT_OK, TRANSPORT_EINVAL (id 0, bad URL), TRANSPORT_EEXIST
 * (already a peer, or our own id), TRANSPORT_ENOMEM, TRANSPORT_ECLOSED.
 */
int transport_add_peer(transport *t, raft_id id, const char *url, cord_error *err);

/* Forgets peer `id`: its queue is dropped and its connection closed.
 * Returns TRANSPORT_OK or TRANSPORT_ENOPEER. */
int transport_remove_peer(transport *t, raft_id id);

bool transport_has_peer(const transport *t, raft_id id);

/*
 * transport_send: encode m and queue it for m->to. Never blocks.
 * Returns TRANSPORT_OK (queued; delivery is not guaranteed), or the reason
 * it was dropped: TRANSPORT_ENOPEER, TRANSPORT_EFULL, TRANSPORT_EUNREACHABLE,
 * TRANSPORT_EINVAL, TRANSPORT_ETOOLARGE, TRANSPORT_ESNAPSHOT,
 * TRANSPORT_ECLOSED. Every drop is counted in the stats.
 */
int transport_send(transport *t, const raft_msg *m);

/* Totals since transport_new. */
void transport_get_stats(const transport *t, transport_stats *st);

/* Per peer; returns TRANSPORT_ENOPEER if unknown. Fields that are not per
 * peer (incoming_open, bad_frames, received counters) are zero. */
int transport_get_peer_stats(const transport *t, raft_id id, transport_stats *st);

/* true while the outgoing connection to id has been acknowledged by the peer. */
bool transport_peer_connected(const transport *t, raft_id id);

/*
 * transport_close: stop. No callback is made after this returns. Handles
 * close asynchronously; the memory is freed once the loop has run their
 * close callbacks (run the loop until it has no more of our handles). Safe
 * to call from inside a transport callback.
 */
void transport_close(transport *t);

#endif
