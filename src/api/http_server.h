/*
 * http_server.h: the client-facing transport of a cord member.
 *
 * One listening port serves two protocols, told apart by the first bytes a
 * client sends:
 *   - HTTP/2 with prior knowledge (cleartext, no TLS, no h2c upgrade): the
 *     client opens with the 24-byte preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".
 *     Every HTTP/2 request is a gRPC call (content-type application/grpc or
 *     application/grpc+proto, method POST); other HTTP/2 requests get 415/405.
 *   - HTTP/1.1 (keep-alive, Content-Length bodies, no chunked request bodies,
 *     pipelined requests answered in order): routed by exact method + path.
 *
 * This module does not know the etcd services. The member registers one
 * api_method per gRPC path and one api_http_route per HTTP/1.1 endpoint and
 * gets raw bytes (the protobuf of each request message); it answers with raw
 * bytes. Everything runs on the caller's libuv loop thread; no function here
 * blocks and none may be called from another thread.
 *
 * Lifetimes and re-entrancy (the rules handlers rely on):
 *   - api_call: created when a request's HEADERS name a registered method;
 *     on_message is called for each complete request message, on_half_close
 *     once when the client ends its side, on_close exactly once when the call
 *     is gone (both sides done, RST_STREAM from the client, a limit hit, the
 *     connection lost, or api_server_stop). After on_close returns the pointer
 *     is invalid. on_close is never called from inside an api_call_* or
 *     api_http_* function, so a handler may call them freely, and may call
 *     them later (after a Raft commit) as long as on_close has not run.
 *   - Replies are queued and written before the loop next polls (the
 *     "beforeSleep" flush, a uv_prepare handle), in batches, honouring HTTP/2
 *     flow control: what the peer's window does not admit stays queued (see
 *     api_call_pending_send_bytes).
 *   - api_http_req: created for each complete HTTP/1.1 request and handed to
 *     the route's fn. It stays valid until the handler calls
 *     api_http_respond or api_http_stream_end, even if the client goes away
 *     meanwhile (then writes are dropped, api_http_stream_write returns
 *     API_ECLOSED, and the optional close callback has been called).
 *
 * gRPC wire behaviour:
 *   - reply HEADERS: ":status 200", "content-type application/grpc"; then
 *     5-byte-prefixed messages; then trailers grpc-status / grpc-message
 *     (percent-encoded). An error before any message is a trailers-only
 *     response (one HEADERS frame with END_STREAM).
 *   - unknown path: UNIMPLEMENTED with grpc-go's texts: "unknown service S",
 *     "unknown method M for service S", "malformed method name: \"P\"".
 *     Not POST: HTTP 405; content-type not application/grpc[+...|;...]: 415.
 *   - request messages may be split across DATA frames, several per frame.
 *     Compressed flag set: UNIMPLEMENTED. END_STREAM inside a message:
 *     INTERNAL. Stream ends (END_STREAM) with nothing sent and no
 *     on_half_close: INTERNAL "grpc: no request message received".
 *   - after our END_STREAM, request bytes are dropped; past 64 KiB of them the
 *     stream is reset with NO_ERROR (RFC 7540 8.1).
 *   - protocol errors (bad frames, HPACK, flow control, floods) are
 *     nghttp2's: GOAWAY and close of that connection only.
 *   - SETTINGS: MAX_CONCURRENT_STREAMS = max_streams_per_conn, stream window
 *     1 MiB, connection window 16 MiB, MAX_HEADER_LIST_SIZE 16 KiB. Window
 *     updates are automatic (bounded by the partial-message cap below).
 *
 * Errors: functions that can fail return API_OK (0) or one of the API_E*
 * codes below and fill a cord_error (may be NULL) with a message.
 */
#ifndef CORD_API_HTTP_SERVER_H
#define CORD_API_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/errors.h"

/* Status codes. */
enum {
    API_OK = 0,
    API_EINVAL = 1,  /* bad argument: listen URL, method table, ... */
    API_EADDR = 2,   /* cannot resolve / bind / listen on the address */
    API_ENOMEM = 3,  /* allocation failed */
    API_ECLOSED = 4, /* the client is gone (api_http_stream_write) */
    API_EBUSY = 5,   /* per-connection pending-send limit reached (api_http_stream_write) */
};

/* gRPC status codes used by this module (the full list is in the gRPC spec). */
enum {
    API_GRPC_OK = 0,
    API_GRPC_CANCELLED = 1,
    API_GRPC_UNKNOWN = 2,
    API_GRPC_INVALID_ARGUMENT = 3,
    API_GRPC_DEADLINE_EXCEEDED = 4,
    API_GRPC_NOT_FOUND = 5,
    API_GRPC_ALREADY_EXISTS = 6,
    API_GRPC_PERMISSION_DENIED = 7,
    API_GRPC_RESOURCE_EXHAUSTED = 8,
    API_GRPC_FAILED_PRECONDITION = 9,
    API_GRPC_ABORTED = 10,
    API_GRPC_OUT_OF_RANGE = 11,
    API_GRPC_UNIMPLEMENTED = 12,
    API_GRPC_INTERNAL = 13,
    API_GRPC_UNAVAILABLE = 14,
    API_GRPC_DATA_LOSS = 15,
    API_GRPC_UNAUTHENTICATED = 16,
};

typedef struct api_server api_server;
typedef struct api_call api_call;         /* one gRPC stream (unary or streaming) */
typedef struct api_http_req api_http_req; /* one HTTP/1.1 request */

/*
 * api_msg_fn: one complete gRPC request message, the 5-byte length prefix
 * removed. `msg` is only valid during the callback (copy what you keep); it
 * may be NULL when len == 0. A message with the compressed flag set never
 * reaches the handler: the call is finished with UNIMPLEMENTED. Once the call
 * is finished (api_call_finish/reply, or an error by this module), later
 * messages of that stream are discarded.
 */
typedef void (*api_msg_fn)(api_call *call, const uint8_t *msg, size_t len, void *ud);

/*
 * api_close_fn: the call is gone. Called exactly once per call that reached a
 * handler, never from inside api_call_* / api_http_*. After it returns the
 * call pointer is invalid: never touch it again.
 */
typedef void (*api_close_fn)(api_call *call, void *ud);

/*
 * api_half_close_fn: the client ended its side (END_STREAM) after its last
 * message; api_call_half_closed() is true from now on. Streaming handlers
 * (Watch, LeaseKeepAlive) finish the call here, as etcd does when its
 * receive loop sees io.EOF. Optional: when NULL, a call that half-closes
 * without having sent a single message is finished with INTERNAL
 * "grpc: no request message received"; otherwise nothing happens.
 */
typedef void (*api_half_close_fn)(api_call *call, void *ud);

typedef struct api_method {
    const char *path; /* "/etcdserverpb.KV/Range"; copied at start */
    api_msg_fn on_message;
    api_close_fn on_close;
    void *ud;                        /* passed to every callback of this method */
    api_half_close_fn on_half_close; /* optional, see above */
} api_method;

/* api_http_fn: a complete HTTP/1.1 request; answer with api_http_respond now or later. */
typedef void (*api_http_fn)(api_http_req *req, void *ud);

typedef struct api_http_route {
    const char *method; /* "GET" / "POST" (exact, case-sensitive as HTTP says) */
    const char *path;   /* exact match on the path without the query string */
    api_http_fn fn;
    void *ud;
} api_http_route;

/*
 * Limits. A zero field takes the default shown. Pass NULL for all defaults.
 */
typedef struct api_limits {
    /* Largest gRPC request message and HTTP/1.1 body. Default 1.5 MiB + 512 KiB
     * (etcd's --max-request-bytes plus its gRPC overhead allowance). */
    size_t max_request_bytes;
    /* Open client connections; past it new ones are accepted and closed at
     * once. Default 4096. */
    uint32_t max_connections;
    /* HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS; also enforced before the client
     * acknowledges the setting (REFUSED_STREAM). Default 1000. */
    uint32_t max_streams_per_conn;
    /* Reply bytes queued on one connection that the client has not taken yet
     * (flow-control window shut or socket full). A send that would exceed it
     * (while something is already queued) resets that stream with
     * ENHANCE_YOUR_CALM, which gRPC clients report as RESOURCE_EXHAUSTED; a
     * socket that does not drain past it closes the connection. A single
     * message bigger than the limit is still admitted when nothing is queued.
     * Default 64 MiB. */
    size_t max_pending_send_bytes_per_conn;
    /* A connection that sends nothing (no preface, no complete HTTP/1.1
     * request) for this long is closed; also idle HTTP/1.1 keep-alive
     * connections, and an HTTP/2 connection whose socket has not taken any
     * of our output (256 KiB in flight) for this long. Idle HTTP/2
     * connections are otherwise kept. Default 30000 ms. */
    uint32_t idle_timeout_ms;
    /* gRPC status and message for a request message larger than
     * max_request_bytes. Defaults: RESOURCE_EXHAUSTED (8) and
     * "etcdserver: request is too large". (etcd itself answers that text with
     * INVALID_ARGUMENT (3) from etcdserver, and grpc-go answers
     * RESOURCE_EXHAUSTED "grpc: received message larger than max (N vs. M)"
     * above max-request-bytes + 512 KiB; set these to match either.) */
    int too_large_grpc_status;
    const char *too_large_message; /* copied at start */
} api_limits;

/* api_limits_default: fill *l with the defaults above. */
void api_limits_default(api_limits *l);

/*
 * api_server_start: bind and listen on listen_url, serve on loop.
 * listen_url: "http://HOST:PORT", "HOST:PORT" or "http://[V6]:PORT"; HOST
 * "localhost" means 127.0.0.1; other names are resolved once, here
 * (getaddrinfo, blocking: call at startup). PORT 0 picks a free port (see
 * api_server_port). "https://" is refused (API_EINVAL).
 * methods/routes: copied (paths too); ud pointers are kept. n may be 0.
 * limits: NULL or a struct with zero fields meaning the defaults.
 * Returns API_OK and *out, or API_EINVAL (bad URL, duplicate or malformed
 * path), API_EADDR (resolve/bind/listen failed; err->sys_errno set),
 * API_ENOMEM. After API_EADDR from bind/listen the half-made server is freed
 * by a close callback: run the loop (uv_run) before uv_loop_close.
 *
 * Request limits applied here, before any handler: a gRPC message over
 * max_request_bytes finishes the call (see too_large_*); request headers
 * over 16 KiB reset the stream; one connection may hold at most
 * max(32 MiB, 4 x max_request_bytes) of partially received messages (past
 * it the call fails with RESOURCE_EXHAUSTED); HTTP/1.1 headers over 16 KiB
 * get 431, bodies over max_request_bytes 413, chunked request bodies 501.
 */
int api_server_start(uv_loop_t *loop, const char *listen_url, const api_method *methods,
                     size_t n_methods, const api_http_route *routes, size_t n_routes,
                     const api_limits *limits, api_server **out, cord_error *err);

/* api_server_port: the bound TCP port (useful with port 0). */
int api_server_port(const api_server *s);

/* Counters for /metrics and logs (since start; "open"/"live" are gauges). */
typedef struct api_server_stats {
    uint64_t conns_open;       /* gauge: accepted connections not yet closed */
    uint64_t conns_accepted;   /* all accepted, including those refused by max_connections */
    uint64_t conns_refused;    /* closed at once: max_connections reached */
    uint64_t calls_live;       /* gauge: gRPC calls dispatched to a handler, not yet closed */
    uint64_t calls_started;    /* gRPC calls dispatched to a handler */
    uint64_t calls_rejected;   /* unknown method / not POST / not gRPC content type */
    uint64_t calls_too_large;  /* a request message over max_request_bytes */
    uint64_t calls_overflowed; /* reset: pending-send limit reached */
    uint64_t http_requests;    /* HTTP/1.1 requests dispatched (including 404/405) */
    uint64_t bytes_received;   /* socket bytes read, all protocols */
    uint64_t bytes_sent;       /* socket bytes written (completed), all protocols */
} api_server_stats;

/* api_server_get_stats: copy the counters into *out. */
void api_server_get_stats(const api_server *s, api_server_stats *out);

/*
 * api_server_stop: stop listening and close every connection. on_close runs
 * for every live call and the close callback of every outstanding HTTP
 * request, on a later loop iteration (never inside this function). When all
 * handles are closed, done(arg) is called (done may be NULL) and s is freed.
 * Safe to call from inside a handler. Call once.
 */
void api_server_stop(api_server *s, void (*done)(void *), void *arg);

/* ---- gRPC replies -------------------------------------------------------
 * All of these may be called from a handler or at any later time before
 * on_close. After the call is finished (reply/finish, or an error raised by
 * this module such as "request is too large" or a pending-send overflow),
 * further sends and finishes are ignored.
 */

/* api_call_reply: unary answer: one message then trailers grpc-status 0. */
void api_call_reply(api_call *c, const uint8_t *msg, size_t len);

/* api_call_send: streaming: queue one more message (response HEADERS go out
 * before the first). Copies msg. If the connection's pending bytes would
 * exceed max_pending_send_bytes_per_conn, the stream is reset instead (see
 * api_limits) and on_close follows later. */
void api_call_send(api_call *c, const uint8_t *msg, size_t len);

/* api_call_finish: end the call with grpc-status and grpc-message (may be
 * NULL; percent-encoded here as the gRPC spec says). Queued messages go out
 * first. If nothing was sent yet this is a trailers-only response. */
void api_call_finish(api_call *c, int grpc_status, const char *grpc_message);

/* api_call_half_closed: true once the client has sent END_STREAM. */
bool api_call_half_closed(const api_call *c);

/* api_call_finished: true once the call was finished (by the handler or by this module). */
bool api_call_finished(const api_call *c);

/* Handler state attached to the call (NULL at first). */
void api_call_set_ud(api_call *c, void *p);
void *api_call_get_ud(const api_call *c);

/* api_call_id: unique per server, never 0. */
uint64_t api_call_id(const api_call *c);

/* api_call_can_send: a reply would still reach the client: the call is not
 * finished, not gone, its connection is open (a virtual call: its owner has
 * not closed it). A stream producer stops when this turns false. */
bool api_call_can_send(const api_call *c);

/* api_call_pending_send_bytes: reply bytes of this call queued and not yet
 * handed to the socket (held back by flow control); slow-watcher handling. */
size_t api_call_pending_send_bytes(const api_call *c);

/* api_call_set_drain_cb: pacing for big or endless streams (Snapshot,
 * Watch): fn(c, ud) is called once, from the loop (never inside an api_*
 * call), as soon as api_call_pending_send_bytes(c) <= low_water_bytes;
 * right at the next flush if that already holds. Call again to re-arm; fn
 * NULL disarms. Not called after the call is finished or gone. */
void api_call_set_drain_cb(api_call *c, void (*fn)(api_call *c, void *ud), void *ud,
                           size_t low_water_bytes);

/* api_call_path: the request's :path, e.g. "/etcdserverpb.KV/Range". */
const char *api_call_path(const api_call *c);

/* api_call_peer: "ip:port" of the client (for logs). */
const char *api_call_peer(const api_call *c);

/* api_call_header: value of a request header / gRPC metadata entry
 * (case-insensitive name, e.g. "hasleader", "token", "grpc-timeout"), or
 * NULL. The first one if repeated. Valid until on_close. */
const char *api_call_header(const api_call *c, const char *name);

/* ---- virtual calls ----------------------------------------------------------
 * A call that runs a registered gRPC method without HTTP/2: the JSON gateway
 * (an HTTP/1.1 route) feeds it request messages and gets the handler's
 * replies through callbacks. The handler sees an ordinary api_call: every
 * api_call_* function works on it (api_call_peer is "gateway", there are no
 * headers, api_call_pending_send_bytes is what the owner's pending_bytes
 * reports (0 without it), an armed drain callback runs at the next loop
 * iteration).
 *
 * Lifetime: the owner (who created it) calls api_call_virtual_close exactly
 * once, when it no longer wants replies (after on_finish, or when its own
 * client went away). From then on no ops callback runs and the owner must not
 * touch the call; the method's on_close runs at a later loop iteration (never
 * inside an api_* function), after which the call is freed. A finished call
 * stays alive until the owner closes it. api_server_stop finishes every live,
 * unfinished virtual call with UNAVAILABLE "api server stopping" (through
 * on_finish) and completes only once their owners closed them all.
 */
typedef struct api_virtual_ops {
    /* a reply message (api_call_send / api_call_reply); msg valid during the call only */
    void (*on_message)(void *ctx, const uint8_t *msg, size_t len);
    /* the call was finished (api_call_finish / api_call_reply): grpc status and
     * message (never NULL, "" if none; valid during the call only). Called at
     * most once. The owner may call api_call_virtual_close from here. */
    void (*on_finish)(void *ctx, int grpc_status, const char *grpc_message);
    /* optional: the replies the owner has taken and not yet passed on (its own
     * client's backlog), for api_call_pending_send_bytes: what paces a big
     * stream such as Maintenance.Snapshot */
    size_t (*pending_bytes)(void *ctx);
} api_virtual_ops;

/* api_call_virtual_new: a virtual call of the method registered under the
 * gRPC `path` ("/etcdserverpb.KV/Range"). ops is kept (not copied); ctx is
 * passed to its callbacks. Returns NULL if no such method is registered, the
 * server is stopping, or out of memory. */
api_call *api_call_virtual_new(api_server *s, const char *path, const api_virtual_ops *ops,
                               void *ctx);

/* api_call_virtual_deliver: one request message: runs the method's
 * on_message now (its replies may reach ops before this returns). Ignored
 * once the call is finished, half-closed or closed. */
void api_call_virtual_deliver(api_call *c, const uint8_t *msg, size_t len);

/* api_call_virtual_half_close: the client's side is done (END_STREAM): runs
 * on_half_close, or finishes with INTERNAL "grpc: no request message
 * received" if there is none and no message was delivered. Once only. */
void api_call_virtual_half_close(api_call *c);

/* api_call_virtual_close: the owner is done with the call (see above). */
void api_call_virtual_close(api_call *c);

/* ---- HTTP/1.1 -------------------------------------------------------------- */

/* api_http_respond: status line, Content-Type (omitted if NULL),
 * Content-Length, body (copied). Ends the request: r is invalid after
 * (respond or stream_end exactly once per request). */
void api_http_respond(api_http_req *r, int status, const char *content_type, const void *body,
                      size_t len);

/* api_http_add_header: one more response header line "name: value" for the
 * response this request gets (api_http_respond / api_http_stream_begin; call
 * before them). All added headers together are at most
 * API_HTTP_MAX_EXTRA_HEADER_BYTES. Returns API_OK, API_EINVAL (empty name, a
 * name with ':', CR or LF, a value with CR or LF, over the limit) or API_ENOMEM. */
#define API_HTTP_MAX_EXTRA_HEADER_BYTES 1024
int api_http_add_header(api_http_req *r, const char *name, const char *value);

/* api_http_stream_begin: start a chunked response (Transfer-Encoding: chunked,
 * for /v3/watch). Follow with api_http_stream_write and api_http_stream_end. */
void api_http_stream_begin(api_http_req *r, int status, const char *content_type);

/* api_http_stream_write: send one chunk (len 0 is a no-op). Returns API_OK,
 * API_ECLOSED (client gone: stop writing, call api_http_stream_end), or
 * API_EBUSY (the client is not reading: pending bytes past the limit; the
 * chunk was dropped and the connection will be closed). */
int api_http_stream_write(api_http_req *r, const void *data, size_t len);

/* api_http_stream_pending: response bytes written and not yet taken by the
 * socket (0 once the client is gone). */
size_t api_http_stream_pending(const api_http_req *r);

/* api_http_stream_end: last chunk; ends the request: r is invalid after. */
void api_http_stream_end(api_http_req *r);

/* api_http_set_close_cb: fn(r, ud) is called once if the client goes away
 * before the request is ended (r stays valid: still end it). */
void api_http_set_close_cb(api_http_req *r, void (*fn)(api_http_req *r, void *ud), void *ud);

/* Request accessors; valid until the request is ended. */
const uint8_t *api_http_body(const api_http_req *r, size_t *len);
const char *api_http_path(const api_http_req *r);   /* without the query string */
const char *api_http_query(const api_http_req *r);  /* after '?', "" if none */
const char *api_http_method(const api_http_req *r); /* "GET", ... */
/* api_http_header: value of a request header (case-insensitive name), or NULL. */
const char *api_http_header(const api_http_req *r, const char *name);
bool api_http_closed(const api_http_req *r); /* the client is gone */

#endif
