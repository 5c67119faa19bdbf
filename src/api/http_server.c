/*
 * http_server.c: gRPC over HTTP/2 (nghttp2) and HTTP/1.1 on one libuv port.
 * See http_server.h for the contract.
 *
 * Shape: one api_conn per accepted socket. The first bytes decide the
 * protocol (PROTO_DETECT -> PROTO_H2 on the exact preface, PROTO_H1 on
 * anything else). Output never leaves from inside an api_* call: replies are
 * queued, the connection is put on the server's dirty list, and a uv_prepare
 * handle (runs before the loop polls) flushes dirty connections and tears
 * down those marked for closing. That keeps user callbacks (on_close, route
 * handlers) from ever running re-entrantly inside api_call_* / api_http_*.
 */
#include "api/http_server.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nghttp2/nghttp2.h>

#define H2_PREFACE            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN        24
#define GRPC_HDR_LEN          5
#define MAX_GRPC_HEADER_BYTES (16 * 1024) /* sum of a request's header names+values */
#define MAX_PATH_BYTES        1024
#define H1_MAX_HEADER_BYTES   (16 * 1024)
#define WRITE_HIGH_WATER      (256 * 1024) /* stop pulling from nghttp2 past this in flight */
#define WRITE_BATCH           (64 * 1024)
#define H2_STREAM_WINDOW      (1 << 20)
#define H2_CONN_WINDOW        (16 << 20)
#define PARTIAL_MIN_CAP       (32u << 20) /* per-conn partial requests: max(this, 4 x max request) */

enum proto { PROTO_DETECT, PROTO_H1, PROTO_H2 };

typedef struct chunk {
    struct chunk *next;
    size_t len, off;
    uint8_t data[];
} chunk;

typedef struct api_conn api_conn;

struct api_call {
    uint64_t id;
    int32_t stream_id;
    api_conn *conn;
    const api_method *method; /* set once dispatched to a handler */
    void *ud;
    struct api_call *prev, *next;

    /* request headers */
    char *path;
    char *hdrs; /* "name\0value\0..." of the regular (non-pseudo) headers */
    size_t hdrs_len;
    size_t header_bytes;
    bool is_post, ct_grpc, ct_seen;

    /* receive: one message being assembled */
    uint8_t hdr[GRPC_HDR_LEN];
    size_t hdr_len;
    uint8_t *msg;
    size_t msg_len, msg_got;
    uint64_t n_msgs;
    bool half_closed;

    /* send */
    chunk *q_head, *q_tail;
    size_t q_bytes;
    bool headers_sent; /* response HEADERS submitted with our data provider */
    bool finished;     /* trailers requested (or stream reset): no more sends */
    bool trailers_submitted;
    bool deferred; /* data provider returned NGHTTP2_ERR_DEFERRED */
    void (*drain_fn)(api_call *, void *);
    void *drain_ud;
    size_t drain_low;
    bool reset;
    bool gone;        /* on_close running: nothing may be queued any more */
    bool local_done;  /* our END_STREAM went out */
    bool rst_sent;    /* RST_STREAM(NO_ERROR) after our END_STREAM */
    size_t discarded; /* request bytes dropped after the call was finished */
    int status;
    char *status_msg; /* percent-encoded, may be NULL */

    /* virtual calls (api_call_virtual_new): conn == NULL */
    api_server *vsrv;
    const api_virtual_ops *vops;
    void *vctx;
    bool vclosed; /* the owner called api_call_virtual_close: ops no longer called */
    bool vdrain;  /* drain callback armed: run at the next prepare */
    bool vclose_queued;
};

struct api_http_req {
    api_conn *conn; /* NULL once the client is gone */
    char *method, *path, *query;
    char *headers; /* raw header lines, NUL-terminated */
    uint8_t *body;
    size_t body_len;
    bool keep_alive, streaming, close_notified;
    void (*close_fn)(api_http_req *, void *);
    void *close_ud;
    char *extra; /* api_http_add_header: "Name: value\r\n" lines, NULL if none */
    size_t extra_len;
};

struct api_conn {
    uv_tcp_t tcp; /* first: handle->data not needed */
    uv_timer_t timer;
    api_server *srv;
    api_conn *prev, *next;
    api_conn *dirty_next;
    bool dirty;
    bool want_close;        /* tear down at the next prepare */
    bool close_after_write; /* tear down once in-flight writes are done */
    bool torn_down;
    bool timer_armed;   /* idle / request deadline running */
    bool stall_armed;   /* HTTP/2: output stalled at the high water; close if no progress */
    bool sent_continue; /* "100 Continue" written for the request being received */
    int handles_open;
    enum proto proto;
    char peer[64];

    uint8_t detect[H2_PREFACE_LEN];
    size_t detect_len;

    size_t write_inflight; /* bytes handed to uv_write, not yet completed */
    size_t pending;        /* queued reply bytes of all calls (not yet given to nghttp2) */
    size_t partial;        /* bytes allocated for request messages still being received */

    /* HTTP/2 */
    nghttp2_session *h2;
    api_call *calls;
    uint32_t n_calls;
    uint32_t n_drain; /* calls with a drain callback armed */

    /* HTTP/1.1 */
    uint8_t *in;
    size_t in_len, in_cap;
    api_http_req *cur; /* the request being handled (one at a time) */
};

struct api_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_prepare_t prepare;
    uv_idle_t idle; /* active while conns are dirty: the loop must not block before the flush */
    int port;
    api_method *methods;
    size_t n_methods;
    api_http_route *routes;
    size_t n_routes;
    api_limits limits;
    char *too_large_message;
    api_conn *conns;
    uint32_t n_conns;
    api_conn *dirty;
    uint64_t next_call_id;
    api_server_stats stats;
    bool stopping;
    int handles_open; /* listener + prepare */
    void (*done)(void *);
    void *done_arg;
    bool prepare_inited;
    api_call *vcalls; /* live virtual calls (prev/next) */
    uint32_t n_vcalls;
    uint32_t n_vwork; /* virtual calls with a queued close or drain: prepare must look */
    char rbuf[64 * 1024];
};

typedef struct write_req {
    uv_write_t req;
    api_conn *conn;
    size_t len;
    uint8_t data[];
} write_req;

static void conn_mark_dirty(api_conn *c);
static void call_maybe_rst(nghttp2_session *session, api_call *call);
static void on_idle_timeout(uv_timer_t *t);
static void conn_schedule_close(api_conn *c);
static void conn_flush_h2(api_conn *c);
static void h1_process(api_conn *c);
static void server_maybe_finish(api_server *s);
static const api_method *find_method(api_server *s, const char *path);
static void on_idle_noop(uv_idle_t *h);

/* ------------------------------------------------------------------ utils */

void api_limits_default(api_limits *l)
{
    memset(l, 0, sizeof *l);
    l->max_request_bytes = (size_t)(1.5 * 1024 * 1024) + 512 * 1024;
    l->max_connections = 4096;
    l->max_streams_per_conn = 1000;
    l->max_pending_send_bytes_per_conn = 64u << 20;
    l->idle_timeout_ms = 30000;
    l->too_large_grpc_status = API_GRPC_RESOURCE_EXHAUSTED;
    l->too_large_message = "etcdserver: request is too large";
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

/* Percent-encode a grpc-message: bytes outside 0x20..0x7E and '%'. */
static char *grpc_msg_encode(const char *m)
{
    if (!m || !*m)
        return NULL;
    size_t n = strlen(m);
    char *out = malloc(3 * n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)m[i];
        if (ch < 0x20 || ch > 0x7e || ch == '%') {
            static const char hex[] = "0123456789ABCDEF";
            *o++ = '%';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        } else {
            *o++ = (char)ch;
        }
    }
    *o = 0;
    return out;
}

#define MAKE_NV(n, v, vl)                                                                          \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), NGHTTP2_NV_FLAG_NONE                  \
    }

/* ------------------------------------------------------------- writing */

static void on_write_done(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    api_conn *c = w->conn;
    c->write_inflight -= w->len;
    if (status == 0)
        c->srv->stats.bytes_sent += w->len;
    free(w);
    if (c->torn_down)
        return;
    if (status < 0) {
        conn_schedule_close(c);
        return;
    }
    if (c->close_after_write && c->write_inflight == 0) {
        conn_schedule_close(c);
        return;
    }
    if (c->proto == PROTO_H2) {
        if (c->stall_armed) {
            if (c->write_inflight < WRITE_HIGH_WATER) {
                uv_timer_stop(&c->timer);
                c->stall_armed = false;
            } else { /* progress: push the deadline back */
                uv_timer_again(&c->timer);
            }
        }
        conn_flush_h2(c); /* top-level libuv callback: safe to pull more */
    }
}

/* Hand bytes to the socket (copied). Returns false if the connection is going away. */
static bool conn_write(api_conn *c, const void *a, size_t alen, const void *b, size_t blen)
{
    if (c->want_close || c->torn_down)
        return false;
    write_req *w = malloc(sizeof *w + alen + blen);
    if (!w) {
        conn_schedule_close(c);
        return false;
    }
    w->conn = c;
    w->len = alen + blen;
    if (alen)
        memcpy(w->data, a, alen);
    if (blen)
        memcpy(w->data + alen, b, blen);
    size_t before = c->write_inflight;
    /* (HTTP/2 output is bounded by WRITE_HIGH_WATER and the stall timer instead) */
    if (c->proto != PROTO_H2 && before > 0 &&
        before + w->len > c->srv->limits.max_pending_send_bytes_per_conn) {
        /* the kernel is not taking our bytes: a client that does not read
         * (one write bigger than the limit still goes when nothing is queued) */
        free(w);
        conn_schedule_close(c);
        return false;
    }
    uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)w->len);
    int rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write_done);
    if (rv < 0) {
        free(w);
        conn_schedule_close(c);
        return false;
    }
    c->write_inflight += w->len;
    return true;
}

/* Call the armed drain callbacks whose call is at or below its low water. */
static void conn_run_drain(api_conn *c)
{
    for (api_call *call = c->calls, *next; call && c->n_drain > 0; call = next) {
        next = call->next;
        if (!call->drain_fn || call->q_bytes > call->drain_low)
            continue;
        void (*fn)(api_call *, void *) = call->drain_fn;
        call->drain_fn = NULL;
        c->n_drain--;
        if (!call->finished && !call->gone && !c->want_close)
            fn(call, call->drain_ud);
    }
}

/* Pull frames from nghttp2 and write them, up to the in-flight high water. */
static void conn_flush_h2(api_conn *c)
{
    if (c->want_close || c->torn_down || !c->h2)
        return;
    uint8_t *batch = NULL;
    size_t blen = 0;
    while (c->write_inflight + blen < WRITE_HIGH_WATER) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->h2, &data);
        if (n < 0) {
            free(batch);
            conn_schedule_close(c);
            return;
        }
        if (n == 0)
            break;
        if (!batch) {
            batch = malloc(WRITE_BATCH > (size_t)n ? WRITE_BATCH : (size_t)n);
            if (!batch) {
                conn_schedule_close(c);
                return;
            }
        } else if (blen + (size_t)n > WRITE_BATCH) {
            if (!conn_write(c, batch, blen, NULL, 0)) {
                free(batch);
                return;
            }
            blen = 0;
            if ((size_t)n > WRITE_BATCH) {
                uint8_t *nb = realloc(batch, (size_t)n);
                if (!nb) {
                    free(batch);
                    conn_schedule_close(c);
                    return;
                }
                batch = nb;
            }
        }
        memcpy(batch + blen, data, (size_t)n);
        blen += (size_t)n;
    }
    if (blen && !conn_write(c, batch, blen, NULL, 0)) {
        free(batch);
        return;
    }
    free(batch);
    if (c->n_drain > 0)
        conn_run_drain(c);
    if (c->write_inflight >= WRITE_HIGH_WATER && !c->stall_armed) {
        /* the client is not reading: give it idle_timeout_ms to make progress */
        uint64_t ms = c->srv->limits.idle_timeout_ms;
        uv_timer_start(&c->timer, on_idle_timeout, ms, ms);
        c->stall_armed = true;
    }
    if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2)) {
        /* GOAWAY exchanged (or a fatal protocol error): close once written */
        c->close_after_write = true;
        if (c->write_inflight == 0)
            conn_schedule_close(c);
    }
}

/* -------------------------------------------------------- conn lifecycle */

static void on_idle_noop(uv_idle_t *h)
{
    (void)h;
}

static void conn_mark_dirty(api_conn *c)
{
    if (c->dirty || c->torn_down)
        return;
    c->dirty = true;
    c->dirty_next = c->srv->dirty;
    c->srv->dirty = c;
    /* Dirtied after this iteration's prepare ran (from a check or close
     * callback, or another prepare handle that runs after ours): an active
     * idle handle makes the next poll return at once, so the flush is not
     * held back until some unrelated event. */
    if (!uv_is_active((uv_handle_t *)&c->srv->idle) && !uv_is_closing((uv_handle_t *)&c->srv->idle))
        uv_idle_start(&c->srv->idle, on_idle_noop);
}

static void conn_schedule_close(api_conn *c)
{
    if (c->want_close)
        return;
    c->want_close = true;
    conn_mark_dirty(c);
}

static void call_free(api_call *call)
{
    chunk *k = call->q_head;
    while (k) {
        chunk *n = k->next;
        free(k);
        k = n;
    }
    free(call->msg);
    free(call->path);
    free(call->hdrs);
    free(call->status_msg);
    free(call);
}

static void call_unlink(api_call *call)
{
    api_conn *c = call->conn;
    if (call->prev)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    c->n_calls--;
    if (call->drain_fn) {
        call->drain_fn = NULL;
        c->n_drain--;
    }
    if (call->method)
        c->srv->stats.calls_live--;
    c->pending -= call->q_bytes;
    if (call->msg)
        c->partial -= call->msg_len;
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    api_conn *c = h->data;
    if (--c->handles_open > 0)
        return;
    api_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    free(c->in);
    free(c);
    server_maybe_finish(s);
}

static void http_req_detach(api_http_req *r)
{
    r->conn = NULL;
    if (r->close_fn && !r->close_notified) {
        r->close_notified = true;
        r->close_fn(r, r->close_ud);
    }
}

/* Runs from the prepare callback only. Calls on_close for live calls. */
static void conn_teardown(api_conn *c)
{
    if (c->torn_down)
        return;
    c->torn_down = true;
    while (c->calls) {
        api_call *call = c->calls;
        call_unlink(call);
        call->gone = true;
        if (call->method && call->method->on_close)
            call->method->on_close(call, call->method->ud);
        call_free(call);
    }
    if (c->h2) {
        nghttp2_session_del(c->h2);
        c->h2 = NULL;
    }
    if (c->cur) {
        api_http_req *r = c->cur;
        c->cur = NULL;
        http_req_detach(r);
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

/* ------------------------------------------------------ virtual calls */

static void vcall_wake(api_server *s)
{
    if (!uv_is_active((uv_handle_t *)&s->idle) && !uv_is_closing((uv_handle_t *)&s->idle))
        uv_idle_start(&s->idle, on_idle_noop);
}

api_call *api_call_virtual_new(api_server *s, const char *path, const api_virtual_ops *ops,
                               void *ctx)
{
    if (!s || !path || !ops || s->stopping)
        return NULL;
    const api_method *m = find_method(s, path);
    if (!m)
        return NULL;
    api_call *call = calloc(1, sizeof *call);
    if (!call)
        return NULL;
    call->path = strdup(path);
    if (!call->path) {
        free(call);
        return NULL;
    }
    call->vsrv = s;
    call->vops = ops;
    call->vctx = ctx;
    call->method = m;
    call->id = ++s->next_call_id;
    call->next = s->vcalls;
    if (s->vcalls)
        s->vcalls->prev = call;
    s->vcalls = call;
    s->n_vcalls++;
    s->stats.calls_started++;
    s->stats.calls_live++;
    return call;
}

void api_call_virtual_deliver(api_call *call, const uint8_t *msg, size_t len)
{
    assert(!call->conn && call->vsrv);
    if (call->finished || call->vclosed || call->gone || call->half_closed)
        return;
    call->n_msgs++;
    call->method->on_message(call, msg, len, call->method->ud);
}

void api_call_virtual_half_close(api_call *call)
{
    assert(!call->conn && call->vsrv);
    if (call->half_closed)
        return;
    call->half_closed = true;
    if (call->finished || call->vclosed || call->gone)
        return;
    if (call->method->on_half_close)
        call->method->on_half_close(call, call->method->ud);
    else if (call->n_msgs == 0)
        api_call_finish(call, API_GRPC_INTERNAL, "grpc: no request message received");
}

void api_call_virtual_close(api_call *call)
{
    assert(!call->conn && call->vsrv);
    assert(!call->vclosed);
    call->vclosed = true;
    call->vclose_queued = true;
    call->vsrv->n_vwork++;
    vcall_wake(call->vsrv);
}

/* From the prepare callback: run armed drain callbacks once, finish live
 * calls when stopping, and run on_close for the calls their owner closed. */
static void vcalls_run(api_server *s)
{
    if (s->stopping) {
        for (api_call *call = s->vcalls, *next; call; call = next) {
            next = call->next;
            if (!call->finished && !call->vclosed)
                api_call_finish(call, API_GRPC_UNAVAILABLE, "api server stopping");
        }
    }
    if (s->n_vwork == 0)
        return;
    /* One pass: a drain callback that re-arms itself runs again at the next
     * prepare (the idle handle keeps the loop from blocking meanwhile). */
    for (api_call *call = s->vcalls, *next; call; call = next) {
        next = call->next;
        if (call->vdrain && !call->vclose_queued) {
            call->vdrain = false;
            s->n_vwork--;
            void (*fn)(api_call *, void *) = call->drain_fn;
            call->drain_fn = NULL;
            if (fn && !call->finished && !call->gone)
                fn(call, call->drain_ud);
            next = call->next; /* callbacks only prepend or flag calls */
        }
    }
    for (api_call *call = s->vcalls, *next; call; call = next) {
        next = call->next;
        if (!call->vclose_queued)
            continue;
        if (call->prev)
            call->prev->next = call->next;
        else
            s->vcalls = call->next;
        if (call->next)
            call->next->prev = call->prev;
        s->n_vcalls--;
        s->n_vwork--;
        if (call->vdrain)
            s->n_vwork--;
        s->stats.calls_live--;
        call->gone = true;
        if (call->method->on_close)
            call->method->on_close(call, call->method->ud);
        next = call->next; /* unchanged: on_close only prepends or flags */
        call_free(call);
    }
}

static void on_prepare(uv_prepare_t *p)
{
    api_server *s = p->data;
    /* Handlers run below may dirty more conns; loop until quiet. */
    while (s->dirty) {
        api_conn *c = s->dirty;
        s->dirty = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        if (c->torn_down)
            continue;
        if (c->want_close) {
            conn_teardown(c);
            continue;
        }
        if (c->proto == PROTO_H2)
            conn_flush_h2(c);
        else if (c->proto == PROTO_H1)
            h1_process(c);
    }
    if (s->n_vcalls > 0) {
        vcalls_run(s);
        if (s->n_vcalls == 0 && s->stopping) {
            if (uv_is_active((uv_handle_t *)&s->idle))
                uv_idle_stop(&s->idle);
            server_maybe_finish(s); /* may free s */
            return;
        }
    }
    if (uv_is_active((uv_handle_t *)&s->idle) && s->n_vwork == 0 && !s->dirty)
        uv_idle_stop(&s->idle);
}

/* --------------------------------------------------------------- gRPC */

static int grpc_submit_trailers_only(api_conn *c, int32_t sid, int status, const char *enc_msg)
{
    char st[16];
    int stl = snprintf(st, sizeof st, "%d", status);
    nghttp2_nv nva[4] = {
        MAKE_NV(":status", "200", 3),
        MAKE_NV("content-type", "application/grpc", 16),
        MAKE_NV("grpc-status", st, (size_t)stl),
        MAKE_NV("grpc-message", enc_msg ? enc_msg : "", enc_msg ? strlen(enc_msg) : 0),
    };
    return nghttp2_submit_response(c->h2, sid, nva, enc_msg ? 4 : 3, NULL);
}

static void grpc_reject(api_conn *c, int32_t sid, int status, const char *msg)
{
    char *enc = grpc_msg_encode(msg);
    grpc_submit_trailers_only(c, sid, status, enc);
    free(enc);
    conn_mark_dirty(c);
}

static void http2_reject_status(api_conn *c, int32_t sid, const char *status)
{
    nghttp2_nv nva[1] = {MAKE_NV(":status", status, strlen(status))};
    nghttp2_submit_response(c->h2, sid, nva, 1, NULL);
    conn_mark_dirty(c);
}

static ssize_t call_data_read(nghttp2_session *session, int32_t sid, uint8_t *buf, size_t length,
                              uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    api_call *call = src->ptr;
    api_conn *c = call->conn;
    if (call->reset)
        return NGHTTP2_ERR_DEFERRED;
    size_t n = 0;
    while (n < length && call->q_head) {
        chunk *k = call->q_head;
        size_t take = k->len - k->off;
        if (take > length - n)
            take = length - n;
        memcpy(buf + n, k->data + k->off, take);
        k->off += take;
        n += take;
        if (k->off == k->len) {
            call->q_head = k->next;
            if (!call->q_head)
                call->q_tail = NULL;
            free(k);
        }
    }
    call->q_bytes -= n;
    c->pending -= n;
    if (!call->q_head && call->finished) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        char st[16];
        int stl = snprintf(st, sizeof st, "%d", call->status);
        nghttp2_nv nva[2] = {
            MAKE_NV("grpc-status", st, (size_t)stl),
            MAKE_NV("grpc-message", call->status_msg ? call->status_msg : "",
                    call->status_msg ? strlen(call->status_msg) : 0),
        };
        if (nghttp2_submit_trailer(session, sid, nva, call->status_msg ? 2 : 1) != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        call->trailers_submitted = true;
        return (ssize_t)n;
    }
    if (n == 0) {
        call->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

static int call_submit_headers(api_call *call)
{
    nghttp2_nv nva[2] = {
        MAKE_NV(":status", "200", 3),
        MAKE_NV("content-type", "application/grpc", 16),
    };
    nghttp2_data_provider prd;
    prd.source.ptr = call;
    prd.read_callback = call_data_read;
    call->headers_sent = true;
    return nghttp2_submit_response(call->conn->h2, call->stream_id, nva, 2, &prd);
}

static void call_kick(api_call *call)
{
    api_conn *c = call->conn;
    if (call->deferred) {
        call->deferred = false;
        nghttp2_session_resume_data(c->h2, call->stream_id);
    }
    conn_mark_dirty(c);
}

static bool call_usable(const api_call *call)
{
    if (call && !call->conn)
        return !call->finished && !call->gone;
    return call && !call->finished && !call->gone && !call->conn->want_close &&
           !call->conn->torn_down && call->conn->h2;
}

static void vcall_wake(api_server *s);

static void call_reset(api_call *call, uint32_t h2_error)
{
    api_conn *c = call->conn;
    call->finished = true;
    call->reset = true;
    chunk *k = call->q_head;
    while (k) {
        chunk *n = k->next;
        free(k);
        k = n;
    }
    c->pending -= call->q_bytes;
    call->q_bytes = 0;
    call->q_head = call->q_tail = NULL;
    nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, call->stream_id, h2_error);
    conn_mark_dirty(c);
}

void api_call_send(api_call *call, const uint8_t *msg, size_t len)
{
    if (!call_usable(call))
        return;
    if (!call->conn) { /* virtual: straight to the owner */
        if (!call->vclosed && call->vops->on_message)
            call->vops->on_message(call->vctx, msg, len);
        return;
    }
    api_conn *c = call->conn;
    size_t add = GRPC_HDR_LEN + len;
    if (c->pending > 0 && c->pending + add > c->srv->limits.max_pending_send_bytes_per_conn) {
        /* the client does not take what we send: RESOURCE_EXHAUSTED for this stream */
        c->srv->stats.calls_overflowed++;
        call_reset(call, NGHTTP2_ENHANCE_YOUR_CALM);
        return;
    }
    if (len > UINT32_MAX) {
        call_reset(call, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    chunk *k = malloc(sizeof *k + add);
    if (!k) {
        call_reset(call, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    k->next = NULL;
    k->len = add;
    k->off = 0;
    k->data[0] = 0;
    k->data[1] = (uint8_t)(len >> 24);
    k->data[2] = (uint8_t)(len >> 16);
    k->data[3] = (uint8_t)(len >> 8);
    k->data[4] = (uint8_t)len;
    if (len)
        memcpy(k->data + GRPC_HDR_LEN, msg, len);
    if (call->q_tail)
        call->q_tail->next = k;
    else
        call->q_head = k;
    call->q_tail = k;
    call->q_bytes += add;
    c->pending += add;
    if (!call->headers_sent) {
        if (call_submit_headers(call) != 0) {
            call_reset(call, NGHTTP2_INTERNAL_ERROR);
            return;
        }
    }
    call_kick(call);
}

void api_call_finish(api_call *call, int grpc_status, const char *grpc_message)
{
    if (!call_usable(call))
        return;
    call->finished = true;
    call->status = grpc_status;
    if (!call->conn) { /* virtual: straight to the owner (message not encoded) */
        if (!call->vclosed && call->vops->on_finish)
            call->vops->on_finish(call->vctx, grpc_status, grpc_message ? grpc_message : "");
        return;
    }
    call->status_msg = grpc_msg_encode(grpc_message);
    if (!call->headers_sent) {
        assert(call->q_head == NULL);
        call->headers_sent = true;
        call->trailers_submitted = true;
        if (grpc_submit_trailers_only(call->conn, call->stream_id, grpc_status, call->status_msg))
            nghttp2_submit_rst_stream(call->conn->h2, NGHTTP2_FLAG_NONE, call->stream_id,
                                      NGHTTP2_INTERNAL_ERROR);
        conn_mark_dirty(call->conn);
        return;
    }
    call_kick(call);
}

void api_call_reply(api_call *call, const uint8_t *msg, size_t len)
{
    api_call_send(call, msg, len);
    api_call_finish(call, API_GRPC_OK, NULL);
}

bool api_call_half_closed(const api_call *c)
{
    return c->half_closed;
}
bool api_call_can_send(const api_call *c)
{
    return call_usable(c) && !(!c->conn && c->vclosed);
}

bool api_call_finished(const api_call *c)
{
    return c->finished;
}
void api_call_set_ud(api_call *c, void *p)
{
    c->ud = p;
}
void *api_call_get_ud(const api_call *c)
{
    return c->ud;
}
uint64_t api_call_id(const api_call *c)
{
    return c->id;
}
size_t api_call_pending_send_bytes(const api_call *c)
{
    if (!c->conn && c->vops && c->vops->pending_bytes && !c->vclosed)
        return c->vops->pending_bytes(c->vctx);
    return c->q_bytes;
}
void api_call_set_drain_cb(api_call *c, void (*fn)(api_call *, void *), void *ud,
                           size_t low_water_bytes)
{
    if (!c->conn) { /* virtual: nothing is ever queued, so it runs at the next prepare */
        c->drain_fn = NULL;
        if (c->vdrain) {
            c->vdrain = false;
            c->vsrv->n_vwork--;
        }
        if (!fn || c->finished || c->gone)
            return;
        c->drain_fn = fn;
        c->drain_ud = ud;
        c->drain_low = low_water_bytes;
        c->vdrain = true;
        c->vsrv->n_vwork++;
        vcall_wake(c->vsrv);
        return;
    }
    if (c->drain_fn)
        c->conn->n_drain--;
    c->drain_fn = NULL;
    if (!fn || c->finished || c->gone)
        return;
    c->drain_fn = fn;
    c->drain_ud = ud;
    c->drain_low = low_water_bytes;
    c->conn->n_drain++;
    conn_mark_dirty(c->conn); /* checked at the next flush */
}

const char *api_call_path(const api_call *c)
{
    return c->path ? c->path : "";
}
const char *api_call_peer(const api_call *c)
{
    return c->conn ? c->conn->peer : "gateway";
}

const char *api_call_header(const api_call *c, const char *name)
{
    if (!c->hdrs)
        return NULL;
    for (const char *p = c->hdrs; p < c->hdrs + c->hdrs_len;) {
        const char *v = p + strlen(p) + 1;
        if (strcasecmp(p, name) == 0)
            return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

/* Finish a call because of a transport-level problem (too large, compressed). */
static void call_fail(api_call *call, int status, const char *msg)
{
    api_call_finish(call, status, msg);
}

static const api_method *find_method(api_server *s, const char *path)
{
    for (size_t i = 0; i < s->n_methods; i++)
        if (strcmp(s->methods[i].path, path) == 0)
            return &s->methods[i];
    return NULL;
}

/* grpc-go's wording for an unknown path. */
static void grpc_unknown_method(api_conn *c, int32_t sid, const char *path)
{
    char msg[MAX_PATH_BYTES + 64];
    const char *slash = path[0] == '/' ? strrchr(path + 1, '/') : NULL;
    if (!slash) {
        snprintf(msg, sizeof msg, "malformed method name: \"%s\"", path);
    } else {
        size_t svc_len = (size_t)(slash - (path + 1));
        bool known_service = false;
        for (size_t i = 0; i < c->srv->n_methods; i++) {
            const char *p = c->srv->methods[i].path;
            if (strncmp(p, path, svc_len + 2) == 0) {
                known_service = true;
                break;
            }
        }
        if (known_service)
            snprintf(msg, sizeof msg, "unknown method %s for service %.*s", slash + 1, (int)svc_len,
                     path + 1);
        else
            snprintf(msg, sizeof msg, "unknown service %.*s", (int)svc_len, path + 1);
    }
    grpc_reject(c, sid, API_GRPC_UNIMPLEMENTED, msg);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    api_conn *c = ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (c->n_calls >= c->srv->limits.max_streams_per_conn || c->want_close) {
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    api_call *call = calloc(1, sizeof *call);
    if (!call)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    call->conn = c;
    call->stream_id = frame->hd.stream_id;
    call->next = c->calls;
    if (c->calls)
        c->calls->prev = call;
    c->calls = call;
    c->n_calls++;
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, call);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    api_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!call)
        return 0;
    call->header_bytes += namelen + valuelen;
    if (call->header_bytes > MAX_GRPC_HEADER_BYTES)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM */
    if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
        if (valuelen > MAX_PATH_BYTES || call->path)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        call->path = xstrndup((const char *)value, valuelen);
        if (!call->path)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    } else if (namelen == 7 && memcmp(name, ":method", 7) == 0) {
        call->is_post = valuelen == 4 && memcmp(value, "POST", 4) == 0;
    } else if (namelen == 12 && memcmp(name, "content-type", 12) == 0) {
        call->ct_seen = true;
        call->ct_grpc = valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                        (valuelen == 16 || value[16] == '+' || value[16] == ';');
    }
    if (namelen > 0 && name[0] != ':') {
        /* kept for api_call_header (metadata such as "hasleader", "token") */
        char *nb = realloc(call->hdrs, call->hdrs_len + namelen + valuelen + 3);
        if (!nb)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        call->hdrs = nb;
        memcpy(nb + call->hdrs_len, name, namelen);
        call->hdrs_len += namelen;
        nb[call->hdrs_len++] = 0;
        memcpy(nb + call->hdrs_len, value, valuelen);
        call->hdrs_len += valuelen;
        nb[call->hdrs_len++] = 0;
        nb[call->hdrs_len] = 0; /* terminator, not counted */
    }
    return 0;
}

static void call_half_close(api_call *call)
{
    if (call->half_closed)
        return;
    call->half_closed = true;
    if (!call->method || call->finished)
        return;
    if (call->hdr_len > 0 || call->msg) {
        call_fail(call, API_GRPC_INTERNAL, "grpc: client sent an incomplete message");
        return;
    }
    if (call->method->on_half_close)
        call->method->on_half_close(call, call->method->ud);
    else if (call->n_msgs == 0)
        call_fail(call, API_GRPC_INTERNAL, "grpc: no request message received");
}

static void call_dispatch(api_conn *c, api_call *call)
{
    if (!call->is_post) {
        http2_reject_status(c, call->stream_id, "405");
        c->srv->stats.calls_rejected++;
        call->finished = true;
        return;
    }
    if (!call->ct_grpc) {
        http2_reject_status(c, call->stream_id, "415");
        c->srv->stats.calls_rejected++;
        call->finished = true;
        return;
    }
    const api_method *m = call->path ? find_method(c->srv, call->path) : NULL;
    if (!m) {
        grpc_unknown_method(c, call->stream_id, call->path ? call->path : "");
        c->srv->stats.calls_rejected++;
        call->finished = true;
        return;
    }
    call->method = m;
    call->id = ++c->srv->next_call_id;
    c->srv->stats.calls_started++;
    c->srv->stats.calls_live++;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    api_conn *c = ud;
    api_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!call)
        return 0;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST)
            call_dispatch(c, call);
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
            call_half_close(call);
        break;
    case NGHTTP2_DATA:
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
            call_half_close(call);
        break;
    default:
        break;
    }
    return 0;
}

static void call_deliver(api_call *call, const uint8_t *msg, size_t len)
{
    call->n_msgs++;
    call->method->on_message(call, msg, len, call->method->ud);
}

static int on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t sid,
                              const uint8_t *data, size_t len, void *ud)
{
    api_conn *c = ud;
    api_call *call = nghttp2_session_get_stream_user_data(session, sid);
    if (!call)
        return 0;
    if (!call->method || call->finished) {
        call->discarded += len;
        call_maybe_rst(session, call);
        return 0;
    }
    while (len > 0 && call->method && !call->finished) {
        if (call->hdr_len < GRPC_HDR_LEN) {
            size_t take = GRPC_HDR_LEN - call->hdr_len;
            if (take > len)
                take = len;
            memcpy(call->hdr + call->hdr_len, data, take);
            call->hdr_len += take;
            data += take;
            len -= take;
            if (call->hdr_len < GRPC_HDR_LEN)
                break;
            uint32_t mlen = ((uint32_t)call->hdr[1] << 24) | ((uint32_t)call->hdr[2] << 16) |
                            ((uint32_t)call->hdr[3] << 8) | call->hdr[4];
            if (call->hdr[0] & 1) {
                call_fail(call, API_GRPC_UNIMPLEMENTED,
                          "grpc: Decompressor is not installed for grpc-encoding");
                break;
            }
            if (mlen > c->srv->limits.max_request_bytes) {
                c->srv->stats.calls_too_large++;
                call_fail(call, c->srv->limits.too_large_grpc_status, c->srv->too_large_message);
                break;
            }
            call->msg_len = mlen;
            call->msg_got = 0;
            if (len >= mlen) { /* whole message in this chunk: no copy */
                const uint8_t *m = data;
                data += mlen;
                len -= mlen;
                call->hdr_len = 0;
                call_deliver(call, m, mlen);
                continue;
            }
            size_t cap = c->srv->limits.max_request_bytes * 4;
            if (cap < PARTIAL_MIN_CAP)
                cap = PARTIAL_MIN_CAP;
            if (c->partial + mlen > cap) {
                /* many big requests half-sent at once on one connection */
                call_fail(call, API_GRPC_RESOURCE_EXHAUSTED,
                          "grpc: too much partial request data on this connection");
                break;
            }
            call->msg = malloc(mlen);
            if (!call->msg)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
            c->partial += mlen;
        }
        size_t take = call->msg_len - call->msg_got;
        if (take > len)
            take = len;
        memcpy(call->msg + call->msg_got, data, take);
        call->msg_got += take;
        data += take;
        len -= take;
        if (call->msg_got == call->msg_len) {
            uint8_t *m = call->msg;
            call->msg = NULL;
            c->partial -= call->msg_len;
            call->hdr_len = 0;
            call_deliver(call, m, call->msg_len);
            free(m);
        }
    }
    return 0;
}

/* Our side is done but the client keeps sending: after this many dropped
 * bytes ask it to stop with RST_STREAM(NO_ERROR), as RFC 7540 8.1 allows.
 * (Not at once: curl reports an RST that overtakes its upload as an error.) */
#define DISCARD_BEFORE_RST (64 * 1024)

static void call_maybe_rst(nghttp2_session *session, api_call *call)
{
    if (call->local_done && !call->rst_sent && call->discarded > DISCARD_BEFORE_RST &&
        !call->half_closed) {
        call->rst_sent = true;
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_NO_ERROR);
    }
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        api_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (call) {
            call->local_done = true;
            call_maybe_rst(session, call);
        }
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t sid, uint32_t error_code, void *ud)
{
    api_call *call = nghttp2_session_get_stream_user_data(session, sid);
    if (!call)
        return 0;
    nghttp2_session_set_stream_user_data(session, sid, NULL);
    call_unlink(call);
    call->gone = true;
    if (call->method && call->method->on_close)
        call->method->on_close(call, call->method->ud);
    call_free(call);
    return 0;
}

static int conn_start_h2(api_conn *c)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return -1;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cbs);
        return -1;
    }
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    /* grpc-go clients (etcdctl) send the endpoint as given, "http://host:port",
     * in :authority, which nghttp2's RFC check rejects with PROTOCOL_ERROR:
     * turn that check off. :method, :path and content-type are checked here. */
    nghttp2_option_set_no_http_messaging(opt, 1);
    int rv = nghttp2_session_server_new2(&c->h2, cbs, c, opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    if (rv != 0) {
        c->h2 = NULL;
        return -1;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c->srv->limits.max_streams_per_conn},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_GRPC_HEADER_BYTES},
    };
    if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0)
        return -1;
    if (nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW) != 0)
        return -1;
    c->proto = PROTO_H2;
    return 0;
}

static void h2_feed(api_conn *c, const uint8_t *data, size_t len)
{
    ssize_t rv = nghttp2_session_mem_recv(c->h2, data, len);
    if (rv < 0) {
        /* fatal (flood, bad magic, out of memory): nghttp2 may have queued a
         * GOAWAY; try to send it, then close */
        c->close_after_write = true;
        conn_flush_h2(c);
        if (!c->want_close && c->write_inflight == 0)
            conn_schedule_close(c);
        return;
    }
    conn_flush_h2(c);
}

/* ------------------------------------------------------------- HTTP/1.1 */

static const char *http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return status < 400 ? "OK" : "Error";
    }
}

/* A response written by this module itself (errors); closes after it when !keep. */
static void h1_simple(api_conn *c, int status, const char *body, bool keep)
{
    char head[256];
    size_t blen = strlen(body);
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\n%s\r\n",
                     status, http_reason(status), blen, keep ? "" : "Connection: close\r\n");
    conn_write(c, head, (size_t)n, body, blen);
    if (!keep) {
        c->close_after_write = true;
        if (c->write_inflight == 0)
            conn_schedule_close(c);
    }
}

static void req_free(api_http_req *r)
{
    free(r->method);
    free(r->path);
    free(r->query);
    free(r->headers);
    free(r->body);
    free(r->extra);
    free(r);
}

/* Case-insensitive header lookup in a raw block of "Name: value\r\n" lines. */
static const char *hdr_find(const char *block, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = block;
    while (*p) {
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            eol = p + strlen(p);
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon && (size_t)(colon - p) == nl && strncasecmp(p, name, nl) == 0) {
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *e = eol;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            *vlen = (size_t)(e - v);
            return v;
        }
        p = *eol ? eol + 2 : eol;
    }
    return NULL;
}

static bool hdr_has_token(const char *v, size_t vlen, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= vlen; i++)
        if (strncasecmp(v + i, tok, tl) == 0 && (i == 0 || v[i - 1] == ' ' || v[i - 1] == ',') &&
            (i + tl == vlen || v[i + tl] == ' ' || v[i + tl] == ','))
            return true;
    return false;
}

static void h1_consume(api_conn *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

static void h1_idle_restart(api_conn *c);

/* Build "name\0value\0...\0" from raw header lines (names as sent). */
static char *h1_headers_normalize(const char *raw, size_t *out_len)
{
    size_t n = strlen(raw);
    char *out = malloc(n + 2), *o = out;
    if (!out)
        return NULL;
    const char *p = raw;
    while (*p) {
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            eol = p + strlen(p);
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon && colon > p) {
            const char *v = colon + 1, *e = eol;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            memcpy(o, p, (size_t)(colon - p));
            o += colon - p;
            *o++ = 0;
            memcpy(o, v, (size_t)(e - v));
            o += e - v;
            *o++ = 0;
        }
        p = *eol ? eol + 2 : eol;
    }
    *o++ = 0;
    *out_len = (size_t)(o - out);
    return out;
}

/* Parse one buffered request and dispatch it. Returns true if one was dispatched. */
static bool h1_process_one(api_conn *c)
{
    api_server *s = c->srv;
    size_t scan = c->in_len < H1_MAX_HEADER_BYTES ? c->in_len : H1_MAX_HEADER_BYTES;
    uint8_t *end = NULL;
    for (size_t i = 3; i < scan; i++)
        if (c->in[i - 3] == '\r' && c->in[i - 2] == '\n' && c->in[i - 1] == '\r' &&
            c->in[i] == '\n') {
            end = c->in + i + 1;
            break;
        }
    if (!end) {
        if (c->in_len >= H1_MAX_HEADER_BYTES)
            h1_simple(c, 431, "request headers too large\n", false);
        return false;
    }
    size_t head_len = (size_t)(end - c->in);
    if (memchr(c->in, 0, head_len)) {
        h1_simple(c, 400, "bad request\n", false);
        return false;
    }
    char *head = xstrndup((const char *)c->in, head_len);
    if (!head) {
        conn_schedule_close(c);
        return false;
    }
    /* request line: METHOD SP /target SP HTTP/1.x */
    char *eol = strstr(head, "\r\n");
    *eol = 0;
    char *sp1 = strchr(head, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || sp1 == head || sp2 == sp1 + 1 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
        strlen(sp2 + 1) != 8 || sp1[1] != '/') {
        free(head);
        h1_simple(c, 400, "bad request\n", false);
        return false;
    }
    *sp1 = 0;
    *sp2 = 0;
    bool http10 = sp2[8] == '0';
    const char *hdrs = eol + 2;
    size_t vl;
    const char *v;
    bool keep = !http10;
    if ((v = hdr_find(hdrs, "Connection", &vl))) {
        if (hdr_has_token(v, vl, "close"))
            keep = false;
        else if (hdr_has_token(v, vl, "keep-alive"))
            keep = true;
    }
    if (hdr_find(hdrs, "Transfer-Encoding", &vl)) {
        free(head);
        h1_simple(c, 501, "chunked request bodies are not supported\n", false);
        return false;
    }
    size_t body_len = 0;
    if ((v = hdr_find(hdrs, "Content-Length", &vl))) {
        bool ok = vl > 0 && vl <= 15;
        for (size_t i = 0; ok && i < vl; i++) {
            if (!isdigit((unsigned char)v[i]))
                ok = false;
            else
                body_len = body_len * 10 + (size_t)(v[i] - '0');
        }
        if (!ok) {
            free(head);
            h1_simple(c, 400, "bad Content-Length\n", false);
            return false;
        }
    }
    if (body_len > s->limits.max_request_bytes) {
        free(head);
        h1_simple(c, 413, "etcdserver: request is too large\n", false);
        return false;
    }
    if (c->in_len < head_len + body_len) {
        /* wait for the body; answer Expect: 100-continue once */
        if (!c->sent_continue && (v = hdr_find(hdrs, "Expect", &vl)) && vl == 12 &&
            strncasecmp(v, "100-continue", 12) == 0 && !http10) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            c->sent_continue = true;
            conn_write(c, cont, sizeof cont - 1, NULL, 0);
        }
        free(head);
        return false;
    }
    api_http_req *r = calloc(1, sizeof *r);
    char *target = sp1 + 1;
    char *q = strchr(target, '?');
    size_t hl = 0;
    if (r) {
        r->conn = c;
        r->method = strdup(head);
        r->path = q ? xstrndup(target, (size_t)(q - target)) : strdup(target);
        r->query = strdup(q ? q + 1 : "");
        r->headers = h1_headers_normalize(hdrs, &hl);
        r->body = malloc(body_len + 1);
        r->body_len = body_len;
        r->keep_alive = keep;
    }
    free(head);
    if (!r || !r->method || !r->path || !r->query || !r->headers || !r->body) {
        if (r)
            req_free(r);
        conn_schedule_close(c);
        return false;
    }
    memcpy(r->body, c->in + head_len, body_len);
    r->body[body_len] = 0;
    h1_consume(c, head_len + body_len);
    c->sent_continue = false;
    uv_timer_stop(&c->timer);
    c->timer_armed = false;

    const api_http_route *route = NULL;
    bool path_known = false;
    for (size_t i = 0; i < s->n_routes; i++) {
        if (strcmp(s->routes[i].path, r->path) != 0)
            continue;
        path_known = true;
        if (strcmp(s->routes[i].method, r->method) == 0) {
            route = &s->routes[i];
            break;
        }
    }
    c->cur = r;
    s->stats.http_requests++;
    if (route)
        route->fn(r, route->ud);
    else if (path_known)
        api_http_respond(r, 405, "text/plain; charset=utf-8", "method not allowed\n", 19);
    else
        api_http_respond(r, 404, "text/plain; charset=utf-8", "404 page not found\n", 19);
    return true;
}

/* Parse and dispatch buffered requests, one at a time (pipelined ones wait). */
static void h1_process(api_conn *c)
{
    while (!c->cur && !c->want_close && !c->close_after_write && c->in_len > 0)
        if (!h1_process_one(c))
            break;
    /* between requests: the idle timeout; a request being received: its deadline
     * (armed once, not pushed back by each byte, so a trickle cannot hold a conn) */
    if (!c->cur && !c->timer_armed)
        h1_idle_restart(c);
}

/* The request is over (responded or stream ended): free it, go on with the next. */
static void h1_req_done(api_http_req *r)
{
    api_conn *c = r->conn;
    if (c) {
        assert(c->cur == r);
        c->cur = NULL;
        if (!r->keep_alive) {
            c->close_after_write = true;
            if (c->write_inflight == 0)
                conn_schedule_close(c);
        } else {
            conn_mark_dirty(c); /* parse pipelined requests at the next prepare */
        }
    }
    req_free(r);
}

void api_http_respond(api_http_req *r, int status, const char *content_type, const void *body,
                      size_t len)
{
    assert(!r->streaming);
    api_conn *c = r->conn;
    if (c) {
        char head[512 + API_HTTP_MAX_EXTRA_HEADER_BYTES];
        int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n", status, http_reason(status));
        if (content_type)
            n += snprintf(head + n, sizeof head - (size_t)n, "Content-Type: %.200s\r\n",
                          content_type);
        if (r->extra)
            n += snprintf(head + n, sizeof head - (size_t)n, "%s", r->extra);
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\n%s\r\n", len,
                      r->keep_alive ? "" : "Connection: close\r\n");
        conn_write(c, head, (size_t)n, body, len);
    }
    h1_req_done(r);
}

void api_http_stream_begin(api_http_req *r, int status, const char *content_type)
{
    assert(!r->streaming);
    r->streaming = true;
    api_conn *c = r->conn;
    if (!c)
        return;
    char head[512 + API_HTTP_MAX_EXTRA_HEADER_BYTES];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n", status, http_reason(status));
    if (content_type)
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Type: %.200s\r\n", content_type);
    if (r->extra)
        n += snprintf(head + n, sizeof head - (size_t)n, "%s", r->extra);
    n += snprintf(head + n, sizeof head - (size_t)n, "Transfer-Encoding: chunked\r\n%s\r\n",
                  r->keep_alive ? "" : "Connection: close\r\n");
    conn_write(c, head, (size_t)n, NULL, 0);
}

int api_http_stream_write(api_http_req *r, const void *data, size_t len)
{
    assert(r->streaming);
    api_conn *c = r->conn;
    if (!c || c->want_close || c->torn_down)
        return API_ECLOSED;
    if (len == 0)
        return API_OK;
    if (c->write_inflight > 0 &&
        c->write_inflight + len > c->srv->limits.max_pending_send_bytes_per_conn) {
        conn_schedule_close(c);
        return API_EBUSY;
    }
    uint8_t *buf = malloc(len + 32);
    if (!buf)
        return API_EBUSY;
    int n = snprintf((char *)buf, 32, "%zx\r\n", len);
    memcpy(buf + n, data, len);
    memcpy(buf + n + len, "\r\n", 2);
    bool ok = conn_write(c, buf, (size_t)n + len + 2, NULL, 0);
    free(buf);
    return ok ? API_OK : API_ECLOSED;
}

size_t api_http_stream_pending(const api_http_req *r)
{
    const api_conn *c = r->conn;
    return c && !c->want_close && !c->torn_down ? c->write_inflight : 0;
}

void api_http_stream_end(api_http_req *r)
{
    assert(r->streaming);
    if (r->conn)
        conn_write(r->conn, "0\r\n\r\n", 5, NULL, 0);
    h1_req_done(r);
}

int api_http_add_header(api_http_req *r, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    if (nl == 0 || strpbrk(name, ":\r\n") || strpbrk(value, "\r\n") ||
        r->extra_len + nl + vl + 4 > API_HTTP_MAX_EXTRA_HEADER_BYTES)
        return API_EINVAL;
    char *e = realloc(r->extra, r->extra_len + nl + vl + 5);
    if (!e)
        return API_ENOMEM;
    r->extra = e;
    r->extra_len += (size_t)sprintf(e + r->extra_len, "%s: %s\r\n", name, value);
    return API_OK;
}

void api_http_set_close_cb(api_http_req *r, void (*fn)(api_http_req *, void *), void *ud)
{
    r->close_fn = fn;
    r->close_ud = ud;
}

const uint8_t *api_http_body(const api_http_req *r, size_t *len)
{
    if (len)
        *len = r->body_len;
    return r->body;
}
const char *api_http_path(const api_http_req *r)
{
    return r->path;
}
const char *api_http_query(const api_http_req *r)
{
    return r->query;
}
const char *api_http_method(const api_http_req *r)
{
    return r->method;
}
bool api_http_closed(const api_http_req *r)
{
    return r->conn == NULL;
}

const char *api_http_header(const api_http_req *r, const char *name)
{
    for (const char *p = r->headers; *p;) {
        const char *v = p + strlen(p) + 1;
        if (strcasecmp(p, name) == 0)
            return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

/* --------------------------------------------------------------- reading */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    /* one buffer per server: the loop is single-threaded and on_read consumes it */
    api_conn *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->srv->rbuf, sizeof c->srv->rbuf);
}

static void h1_feed(api_conn *c, const uint8_t *data, size_t len)
{
    api_server *s = c->srv;
    size_t limit = H1_MAX_HEADER_BYTES + s->limits.max_request_bytes;
    if (c->in_len + len > limit) {
        if (c->cur) {
            conn_schedule_close(c); /* pipelining flood while a request is in progress */
        } else {
            h1_simple(c, 413, "request too large\n", false);
        }
        return;
    }
    if (c->in_len + len > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 4096;
        while (cap < c->in_len + len)
            cap *= 2;
        uint8_t *nb = realloc(c->in, cap);
        if (!nb) {
            conn_schedule_close(c);
            return;
        }
        c->in = nb;
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, data, len);
    c->in_len += len;
    h1_process(c);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    api_conn *c = st->data;
    if (nread == 0)
        return;
    if (nread < 0 || c->want_close || c->torn_down) {
        if (nread < 0)
            uv_read_stop(st);
        conn_schedule_close(c);
        return;
    }
    const uint8_t *data = (const uint8_t *)buf->base;
    size_t len = (size_t)nread;
    c->srv->stats.bytes_received += len;
    if (c->proto == PROTO_DETECT) {
        size_t take = H2_PREFACE_LEN - c->detect_len;
        if (take > len)
            take = len;
        memcpy(c->detect + c->detect_len, data, take);
        c->detect_len += take;
        data += take;
        len -= take;
        if (memcmp(c->detect, H2_PREFACE, c->detect_len) != 0) {
            /* the accept-time timer stays armed: the deadline for a full request */
            c->proto = PROTO_H1;
            h1_feed(c, c->detect, c->detect_len);
        } else if (c->detect_len == H2_PREFACE_LEN) {
            uv_timer_stop(&c->timer);
            c->timer_armed = false;
            if (conn_start_h2(c) != 0) {
                conn_schedule_close(c);
                return;
            }
            h2_feed(c, c->detect, H2_PREFACE_LEN);
        } else {
            return; /* a prefix of the preface so far */
        }
        if (len == 0 || c->want_close)
            return;
    }
    if (c->proto == PROTO_H2)
        h2_feed(c, data, len);
    else
        h1_feed(c, data, len);
}

static void on_idle_timeout(uv_timer_t *t)
{
    api_conn *c = t->data;
    if (c->proto == PROTO_H2) {
        if (c->stall_armed) /* no write completed for a whole timeout */
            conn_schedule_close(c);
        return;
    }
    if (c->proto == PROTO_H1 && c->cur)
        return; /* a handler owns the connection (e.g. a watch stream) */
    conn_schedule_close(c);
}

static void h1_idle_restart(api_conn *c)
{
    if (!c->torn_down && !c->want_close) {
        uv_timer_start(&c->timer, on_idle_timeout, c->srv->limits.idle_timeout_ms, 0);
        c->timer_armed = true;
    }
}

static void on_connection(uv_stream_t *ls, int status)
{
    api_server *s = ls->data;
    if (status < 0 || s->stopping)
        return;
    api_conn *c = calloc(1, sizeof *c);
    if (!c)
        return; /* the pending connection stays in the backlog; retried on the next event */
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    s->stats.conns_accepted++;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
        conn_schedule_close(c);
        return;
    }
    if (s->n_conns > s->limits.max_connections) {
        s->stats.conns_refused++;
        conn_schedule_close(c); /* over the limit: close at once */
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        char ip[INET6_ADDRSTRLEN] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof ip);
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof ip);
            port = ntohs(a->sin6_port);
        }
        snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
    }
    uv_timer_start(&c->timer, on_idle_timeout, s->limits.idle_timeout_ms, 0);
    c->timer_armed = true;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_schedule_close(c);
}

/* --------------------------------------------------------------- server */

static int parse_listen_url(const char *url, struct sockaddr_storage *ss, cord_error *err)
{
    const char *p = url;
    if (strncmp(p, "https://", 8) == 0)
        return cord_error_set(err, API_EINVAL, 0, "listen url %s: TLS is not supported", url);
    if (strncmp(p, "http://", 7) == 0)
        p += 7;
    char host[256];
    const char *port_s;
    if (*p == '[') {
        const char *rb = strchr(p, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - p - 1) >= sizeof host)
            return cord_error_set(err, API_EINVAL, 0, "listen url %s: bad IPv6 address", url);
        memcpy(host, p + 1, (size_t)(rb - p - 1));
        host[rb - p - 1] = 0;
        port_s = rb + 2;
    } else {
        const char *colon = strrchr(p, ':');
        if (!colon || (size_t)(colon - p) >= sizeof host)
            return cord_error_set(err, API_EINVAL, 0, "listen url %s: want host:port", url);
        memcpy(host, p, (size_t)(colon - p));
        host[colon - p] = 0;
        port_s = colon + 1;
    }
    char *endp;
    errno = 0;
    long port = strtol(port_s, &endp, 10);
    if (endp == port_s || (*endp && strcmp(endp, "/") != 0) || port < 0 || port > 65535 || errno)
        return cord_error_set(err, API_EINVAL, 0, "listen url %s: bad port", url);
    if (strcmp(host, "localhost") == 0 || host[0] == 0)
        strcpy(host, host[0] ? "127.0.0.1" : "0.0.0.0");
    memset(ss, 0, sizeof *ss);
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
        return API_OK;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
        return API_OK;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rv = getaddrinfo(host, NULL, &hints, &res);
    if (rv != 0 || !res)
        return cord_error_set(err, API_EADDR, 0, "listen url %s: cannot resolve %s: %s", url, host,
                              gai_strerror(rv));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return API_OK;
}

static void server_free(api_server *s)
{
    for (size_t i = 0; i < s->n_methods; i++)
        free((char *)s->methods[i].path);
    for (size_t i = 0; i < s->n_routes; i++) {
        free((char *)s->routes[i].path);
        free((char *)s->routes[i].method);
    }
    free(s->methods);
    free(s->routes);
    free(s->too_large_message);
    free(s);
}

static void on_server_handle_closed(uv_handle_t *h)
{
    api_server *s = h->data;
    s->handles_open--;
    server_maybe_finish(s);
}

static void server_maybe_finish(api_server *s)
{
    if (!s->stopping)
        return;
    if (s->n_vcalls > 0)
        return; /* on_prepare calls again once their owners closed them */
    if (s->n_conns == 0 && s->prepare_inited && !uv_is_closing((uv_handle_t *)&s->prepare)) {
        uv_close((uv_handle_t *)&s->prepare, on_server_handle_closed);
        uv_close((uv_handle_t *)&s->idle, on_server_handle_closed);
        return;
    }
    if (s->n_conns == 0 && s->handles_open == 0) {
        void (*done)(void *) = s->done;
        void *arg = s->done_arg;
        server_free(s);
        if (done)
            done(arg);
    }
}

int api_server_start(uv_loop_t *loop, const char *listen_url, const api_method *methods,
                     size_t n_methods, const api_http_route *routes, size_t n_routes,
                     const api_limits *limits, api_server **out, cord_error *err)
{
    cord_error_clear(err);
    *out = NULL;
    struct sockaddr_storage ss;
    int rv = parse_listen_url(listen_url, &ss, err);
    if (rv != API_OK)
        return rv;
    api_server *s = calloc(1, sizeof *s);
    if (!s)
        return cord_error_set(err, API_ENOMEM, 0, "api_server_start: out of memory");
    s->loop = loop;
    api_limits_default(&s->limits);
    if (limits) {
        if (limits->max_request_bytes)
            s->limits.max_request_bytes = limits->max_request_bytes;
        if (limits->max_connections)
            s->limits.max_connections = limits->max_connections;
        if (limits->max_streams_per_conn)
            s->limits.max_streams_per_conn = limits->max_streams_per_conn;
        if (limits->max_pending_send_bytes_per_conn)
            s->limits.max_pending_send_bytes_per_conn = limits->max_pending_send_bytes_per_conn;
        if (limits->idle_timeout_ms)
            s->limits.idle_timeout_ms = limits->idle_timeout_ms;
        if (limits->too_large_grpc_status)
            s->limits.too_large_grpc_status = limits->too_large_grpc_status;
        if (limits->too_large_message)
            s->limits.too_large_message = limits->too_large_message;
    }
    s->too_large_message = strdup(s->limits.too_large_message);
    s->limits.too_large_message = s->too_large_message;
    s->methods = calloc(n_methods ? n_methods : 1, sizeof *s->methods);
    s->routes = calloc(n_routes ? n_routes : 1, sizeof *s->routes);
    if (!s->too_large_message || !s->methods || !s->routes) {
        server_free(s);
        return cord_error_set(err, API_ENOMEM, 0, "api_server_start: out of memory");
    }
    for (size_t i = 0; i < n_methods; i++) {
        const api_method *m = &methods[i];
        if (!m->path || m->path[0] != '/' || !strchr(m->path + 1, '/') || !m->on_message) {
            server_free(s);
            return cord_error_set(err, API_EINVAL, 0, "method %zu: bad path or no on_message", i);
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(methods[j].path, m->path) == 0) {
                server_free(s);
                return cord_error_set(err, API_EINVAL, 0, "method %s registered twice", m->path);
            }
        s->methods[i] = *m;
        s->methods[i].path = strdup(m->path);
        s->n_methods = i + 1;
        if (!s->methods[i].path) {
            server_free(s);
            return cord_error_set(err, API_ENOMEM, 0, "api_server_start: out of memory");
        }
    }
    for (size_t i = 0; i < n_routes; i++) {
        const api_http_route *r = &routes[i];
        if (!r->path || r->path[0] != '/' || !r->method || !r->fn) {
            server_free(s);
            return cord_error_set(err, API_EINVAL, 0, "route %zu: bad path/method/fn", i);
        }
        s->routes[i] = *r;
        s->routes[i].path = strdup(r->path);
        s->routes[i].method = strdup(r->method);
        s->n_routes = i + 1;
        if (!s->routes[i].path || !s->routes[i].method) {
            server_free(s);
            return cord_error_set(err, API_ENOMEM, 0, "api_server_start: out of memory");
        }
    }

    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->handles_open = 1;
    rv = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
    if (rv != 0) {
        cord_error_set(err, API_EADDR, -rv, "listen on %s: %s", listen_url, uv_strerror(rv));
        /* the listener handle is freed with s once its close callback ran */
        s->stopping = true;
        s->done = NULL;
        uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
        return API_EADDR;
    }
    struct sockaddr_storage bound;
    int bl = sizeof bound;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &bl);
    s->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    uv_prepare_init(loop, &s->prepare);
    s->prepare.data = s;
    s->prepare_inited = true;
    s->handles_open++;
    uv_idle_init(loop, &s->idle);
    s->idle.data = s;
    s->handles_open++;
    uv_prepare_start(&s->prepare, on_prepare);
    uv_unref((uv_handle_t *)&s->prepare);
    *out = s;
    return API_OK;
}

int api_server_port(const api_server *s)
{
    return s->port;
}

void api_server_get_stats(const api_server *s, api_server_stats *out)
{
    *out = s->stats;
    out->conns_open = s->n_conns;
}

void api_server_stop(api_server *s, void (*done)(void *), void *arg)
{
    assert(!s->stopping);
    s->stopping = true;
    s->done = done;
    s->done_arg = arg;
    uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
    for (api_conn *c = s->conns; c; c = c->next)
        conn_schedule_close(c);
    /* the prepare handle is unreferenced: keep the loop alive until it runs */
    uv_ref((uv_handle_t *)&s->prepare);
    if (s->n_vcalls > 0)
        vcall_wake(s); /* vcalls_run finishes them at the next prepare */
    server_maybe_finish(s);
}
