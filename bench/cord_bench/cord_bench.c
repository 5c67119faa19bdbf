/* cord-bench: a load generator for the etcd v3 gRPC API (cord and etcd alike).
 *
 * One libuv loop. --conns TCP connections, each an HTTP/2 client session (nghttp2, prior
 * knowledge), round-robin over --endpoints. --clients request loops, client i bound to
 * connection i % conns, each with at most one request in flight (one HTTP/2 stream per
 * unary call). Watchers (watch workload) each hold one long-lived Watch stream.
 *
 * Everything is bounded: ops by --total and/or --duration, each request by --timeout-ms,
 * the whole run by --max-time, connecting by --connect-timeout-ms.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/keyrange.h"

#include <nghttp2/nghttp2.h>
#include <uv.h>

#include "etcdserverpb/rpc.pb-c.h"
#include "hist.h"

#define MAX_CONNS     1024
#define MAX_CLIENTS   65536
#define MAX_WATCHERS  10000
#define MAX_ENDPOINTS 64
#define MAX_KEY       4096
#define MAX_VAL       (4u << 20)
#define MAX_RESP      (64u << 20) /* largest gRPC message accepted */
#define MAX_ERR_KINDS 48

enum workload { W_PUT, W_RANGE, W_TXN, W_WATCH, W_LEASE, W_MIXED };
static const char *workload_names[] = {"put", "range", "txn", "watch", "lease", "mixed"};

enum op_kind { OP_PUT, OP_RANGE, OP_TXN, OP_LEASE_GRANT, OP_LEASE_KEEPALIVE, OP_WATCH };

typedef struct conn conn_t;
typedef struct client client_t;
typedef struct watcher watcher_t;

typedef struct req {
    enum op_kind kind;
    client_t *client;   /* NULL for a watch stream */
    watcher_t *watcher; /* watch stream only */
    conn_t *conn;
    int32_t stream_id;
    uint8_t *body;
    size_t body_len, body_off;
    bool keep_open; /* watch: do not half-close after the body */
    uint8_t *rbuf;
    size_t rlen, rcap;
    int http_status;
    int grpc_status; /* -1: not seen */
    bool timed_out;
    uint64_t start_ns;
} req_t;

struct conn {
    int idx;
    struct sockaddr_storage addr;
    char authority[300];
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    nghttp2_session *session;
    bool connected, dead, closing, in_recv;
    uint8_t rdbuf[65536];
    uint8_t *wbuf;
    size_t wlen, wcap;
    uint8_t *inflight_buf; /* buffer of the uv_write in flight */
    uv_write_t write_req;
    bool writing;
};

struct client {
    int id;
    conn_t *conn;
    req_t *inflight;  /* unary request in flight */
    req_t *ka_stream; /* lease: the client's long-lived LeaseKeepAlive stream */
    bool ka_pending;  /* a keep-alive sent on ka_stream awaits its response */
    uint64_t ka_start_ns;
    uv_timer_t timer;
    uint64_t rng;
    int64_t lease_id;
    uint32_t lease_uses;
    int64_t txn_rev;
    bool done;
};

struct watcher {
    int id;
    conn_t *conn;
    req_t *stream;
    bool created;
    uint64_t events;
};

typedef struct {
    char name[40];
    uint64_t count;
} err_kind_t;

static struct {
    /* options */
    enum workload workload;
    char *endpoints[MAX_ENDPOINTS];
    int n_endpoints;
    int conns, clients;
    uint64_t total;  /* 0: unbounded by count */
    double duration; /* seconds; 0: unbounded by time */
    double rate;     /* ops/s, 0 unlimited */
    int key_size, val_size;
    uint64_t key_space;
    bool sequential;
    const char *key_prefix;
    bool serializable;
    const char *range_prefix;
    int64_t range_limit;
    double read_ratio;
    int watchers;
    int64_t lease_ttl;
    uint32_t keepalives_per_lease;
    bool json;
    bool quiet;
    uint64_t seed;
    uint64_t timeout_ms;
    uint64_t connect_timeout_ms;
    double max_time;

    /* state */
    uv_loop_t *loop;
    conn_t *conn;
    client_t *client;
    watcher_t *watcher;
    uint8_t *value;  /* --val-size bytes */
    uv_timer_t tick; /* 100 ms: timeouts, progress, phase changes */
    uv_timer_t connect_timer;
    int phase; /* 0 connecting, 1 watch setup, 2 running, 3 draining watch events, 4 done */
    uint64_t phase_start_ns;
    int connected;
    uint64_t next_op;  /* ops claimed */
    uint64_t ops_done; /* ops finished (ok or error) */
    uint64_t errors;
    err_kind_t err_kinds[MAX_ERR_KINDS];
    int n_err_kinds;
    hist_t hist;
    uint64_t run_start_ns, run_end_ns, last_progress_ns, last_progress_ops;
    uint64_t reads, writes, txn_conflicts, leases_granted, keepalives;
    uint64_t events, events_expected, puts_ok;
    int clients_done;
    bool fatal;
    char fatal_msg[512];
    int exit_code;
} g;

static void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cord-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(cord-bench --help for usage)\n");
    va_end(ap);
    exit(2);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "cord-bench: out of memory\n");
        exit(3);
    }
    return p;
}

static uint64_t now_ns(void)
{
    return uv_hrtime();
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static void count_errors(const char *name, uint64_t n)
{
    g.errors += n;
    for (int i = 0; i < g.n_err_kinds; i++)
        if (strcmp(g.err_kinds[i].name, name) == 0) {
            g.err_kinds[i].count += n;
            return;
        }
    if (g.n_err_kinds < MAX_ERR_KINDS) {
        snprintf(g.err_kinds[g.n_err_kinds].name, sizeof(g.err_kinds[0].name), "%s", name);
        g.err_kinds[g.n_err_kinds].count = n;
        g.n_err_kinds++;
    } else {
        g.err_kinds[MAX_ERR_KINDS - 1].count += n;
    }
}

static void count_error(const char *name)
{
    count_errors(name, 1);
}

static const char *grpc_status_name(int s)
{
    static const char *names[] = {"OK",
                                  "CANCELLED",
                                  "UNKNOWN",
                                  "INVALID_ARGUMENT",
                                  "DEADLINE_EXCEEDED",
                                  "NOT_FOUND",
                                  "ALREADY_EXISTS",
                                  "PERMISSION_DENIED",
                                  "RESOURCE_EXHAUSTED",
                                  "FAILED_PRECONDITION",
                                  "ABORTED",
                                  "OUT_OF_RANGE",
                                  "UNIMPLEMENTED",
                                  "INTERNAL",
                                  "UNAVAILABLE",
                                  "DATA_LOSS",
                                  "UNAUTHENTICATED"};
    if (s >= 0 && s < (int)(sizeof(names) / sizeof(names[0])))
        return names[s];
    return "GRPC_STATUS_OTHER";
}

static void set_fatal(const char *fmt, ...)
{
    if (g.fatal)
        return;
    g.fatal = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g.fatal_msg, sizeof(g.fatal_msg), fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- keys and bodies */

static size_t make_key(uint64_t idx, char *buf)
{
    size_t plen = strlen(g.key_prefix);
    int width = g.key_size - (int)plen;
    if (width < 1)
        width = 1;
    int n = snprintf(buf, MAX_KEY, "%s%0*" PRIu64, g.key_prefix, width, idx);
    return (size_t)n < MAX_KEY ? (size_t)n : MAX_KEY - 1;
}

static uint64_t pick_key(client_t *c, uint64_t op)
{
    if (g.sequential)
        return op % g.key_space;
    return rng_next(&c->rng) % g.key_space;
}

/* frame: gRPC length-prefixed message around a packed protobuf. */
static uint8_t *frame(const ProtobufCMessage *m, size_t *len_out)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = xmalloc(n + 5);
    b[0] = 0;
    b[1] = (uint8_t)(n >> 24);
    b[2] = (uint8_t)(n >> 16);
    b[3] = (uint8_t)(n >> 8);
    b[4] = (uint8_t)n;
    protobuf_c_message_pack(m, b + 5);
    *len_out = n + 5;
    return b;
}

static uint8_t *body_put(const char *key, size_t klen, const uint8_t *val, size_t vlen, size_t *len)
{
    Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;
    r.key.data = (uint8_t *)key;
    r.key.len = klen;
    r.value.data = (uint8_t *)val;
    r.value.len = vlen;
    return frame(&r.base, len);
}

static uint8_t prefix_end_buf[MAX_KEY + 1];


static uint8_t *body_range(const char *key, size_t klen, bool prefix, size_t *len)
{
    Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
    r.key.data = (uint8_t *)key;
    r.key.len = klen;
    if (prefix) {
        r.range_end.len = key_prefix_end(key, klen, prefix_end_buf);
        r.range_end.data = prefix_end_buf;
        r.limit = g.range_limit;
    }
    r.serializable = g.serializable;
    return frame(&r.base, len);
}

/* ---------------------------------------------------------------- HTTP/2 plumbing */

static void conn_flush(conn_t *c);
static void client_next(client_t *c);
static void maybe_finish(void);
static void finish_run(void);

static void req_free(req_t *r)
{
    if (!r)
        return;
    free(r->body);
    free(r->rbuf);
    free(r);
}

static ssize_t data_read_cb(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    req_t *r = src->ptr;
    size_t left = r->body_len - r->body_off;
    size_t n = left < length ? left : length;
    memcpy(buf, r->body + r->body_off, n);
    r->body_off += n;
    if (r->body_off == r->body_len) {
        if (!r->keep_open)
            *flags |= NGHTTP2_DATA_FLAG_EOF;
        else if (n == 0)
            return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE             \
    }

static int submit(conn_t *c, req_t *r, const char *path)
{
    nghttp2_nv nva[] = {NV(":method", "POST"),
                        NV(":scheme", "http"),
                        NV(":path", path),
                        NV(":authority", c->authority),
                        NV("content-type", "application/grpc"),
                        NV("te", "trailers"),
                        NV("user-agent", "cord-bench")};
    nghttp2_data_provider prd;
    prd.source.ptr = r;
    prd.read_callback = data_read_cb;
    r->conn = c;
    r->grpc_status = -1;
    r->start_ns = now_ns();
    int32_t sid =
        nghttp2_submit_request(c->session, NULL, nva, sizeof(nva) / sizeof(nva[0]), &prd, r);
    if (sid < 0)
        return -1;
    r->stream_id = sid;
    if (!c->in_recv)
        conn_flush(c);
    return 0;
}

static void on_write(uv_write_t *w, int status)
{
    conn_t *c = w->data;
    c->writing = false;
    free(c->inflight_buf);
    c->inflight_buf = NULL;
    if (status < 0) {
        if (!c->closing && g.phase < 4)
            set_fatal("write to %s failed: %s", c->authority, uv_strerror(status));
        c->dead = true;
        finish_run();
        return;
    }
    conn_flush(c);
}

static void conn_flush(conn_t *c)
{
    if (c->dead || c->closing || !c->session)
        return;
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->session, &data);
        if (n < 0) {
            set_fatal("HTTP/2 error on %s: %s", c->authority, nghttp2_strerror((int)n));
            c->dead = true;
            finish_run();
            return;
        }
        if (n == 0)
            break;
        if (c->wlen + (size_t)n > c->wcap) {
            size_t cap = c->wcap ? c->wcap : 65536;
            while (cap < c->wlen + (size_t)n)
                cap *= 2;
            uint8_t *nb = realloc(c->wbuf, cap);
            if (!nb) {
                fprintf(stderr, "cord-bench: out of memory\n");
                exit(3);
            }
            c->wbuf = nb;
            c->wcap = cap;
        }
        memcpy(c->wbuf + c->wlen, data, (size_t)n);
        c->wlen += (size_t)n;
    }
    if (c->writing || c->wlen == 0)
        return;
    uv_buf_t b = uv_buf_init((char *)c->wbuf, (unsigned)c->wlen);
    c->inflight_buf = c->wbuf;
    c->wbuf = NULL;
    c->wlen = c->wcap = 0;
    c->writing = true;
    c->write_req.data = c;
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0) {
        c->writing = false;
        free(c->inflight_buf);
        c->inflight_buf = NULL;
        set_fatal("write to %s failed: %s", c->authority, uv_strerror(rc));
        c->dead = true;
        finish_run();
    }
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    req_t *r = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!r)
        return 0;
    char v[32];
    size_t m = vlen < sizeof(v) - 1 ? vlen : sizeof(v) - 1;
    memcpy(v, value, m);
    v[m] = 0;
    if (nlen == 7 && memcmp(name, ":status", 7) == 0)
        r->http_status = atoi(v);
    else if (nlen == 11 && memcmp(name, "grpc-status", 11) == 0)
        r->grpc_status = atoi(v);
    return 0;
}

static void watch_message(req_t *r, const uint8_t *msg, size_t len);
static void keepalive_message(req_t *r, const uint8_t *msg, size_t len);

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                         size_t len, void *ud)
{
    req_t *r = nghttp2_session_get_stream_user_data(s, sid);
    if (!r)
        return 0;
    if (r->rlen + len > MAX_RESP + 5)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (r->rlen + len > r->rcap) {
        size_t cap = r->rcap ? r->rcap : 256;
        while (cap < r->rlen + len)
            cap *= 2;
        uint8_t *nb = realloc(r->rbuf, cap);
        if (!nb)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        r->rbuf = nb;
        r->rcap = cap;
    }
    memcpy(r->rbuf + r->rlen, data, len);
    r->rlen += len;
    if (r->kind == OP_WATCH || r->kind == OP_LEASE_KEEPALIVE) {
        /* Streams: consume every complete message; keep a partial one. */
        size_t off = 0;
        while (r->rlen - off >= 5) {
            uint32_t mlen = ((uint32_t)r->rbuf[off + 1] << 24) |
                            ((uint32_t)r->rbuf[off + 2] << 16) | ((uint32_t)r->rbuf[off + 3] << 8) |
                            r->rbuf[off + 4];
            if (r->rlen - off - 5 < mlen)
                break;
            if (r->kind == OP_WATCH)
                watch_message(r, r->rbuf + off + 5, mlen);
            else
                keepalive_message(r, r->rbuf + off + 5, mlen);
            off += 5 + (size_t)mlen;
        }
        memmove(r->rbuf, r->rbuf + off, r->rlen - off);
        r->rlen -= off;
    }
    return 0;
}

/* first_message: the single gRPC message of a unary response, or NULL. */
static const uint8_t *first_message(req_t *r, size_t *len)
{
    if (r->rlen < 5 || r->rbuf[0] != 0)
        return NULL;
    uint32_t mlen = ((uint32_t)r->rbuf[1] << 24) | ((uint32_t)r->rbuf[2] << 16) |
                    ((uint32_t)r->rbuf[3] << 8) | r->rbuf[4];
    if (r->rlen - 5 < mlen)
        return NULL;
    *len = mlen;
    return r->rbuf + 5;
}

/* handle_response: checks the response of a finished unary op; returns NULL when it succeeded,
 * else the error kind to count. Updates the client's per-workload state. */
static const char *handle_response(req_t *r)
{
    client_t *c = r->client;
    size_t len = 0;
    const uint8_t *m = first_message(r, &len);
    if (!m)
        return "bad_response";
    switch (r->kind) {
    case OP_PUT: {
        Etcdserverpb__PutResponse *p = etcdserverpb__put_response__unpack(NULL, len, m);
        if (!p)
            return "bad_response";
        etcdserverpb__put_response__free_unpacked(p, NULL);
        return NULL;
    }
    case OP_RANGE: {
        Etcdserverpb__RangeResponse *p = etcdserverpb__range_response__unpack(NULL, len, m);
        if (!p)
            return "bad_response";
        etcdserverpb__range_response__free_unpacked(p, NULL);
        return NULL;
    }
    case OP_TXN: {
        Etcdserverpb__TxnResponse *p = etcdserverpb__txn_response__unpack(NULL, len, m);
        if (!p)
            return "bad_response";
        const char *err = NULL;
        if (p->succeeded) {
            if (p->header)
                c->txn_rev = p->header->revision;
            else
                err = "bad_response";
        } else {
            g.txn_conflicts++;
            c->txn_rev = 0;
            if (p->n_responses == 1 && p->responses[0]->response_case ==
                                           ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE) {
                Etcdserverpb__RangeResponse *rr = p->responses[0]->response_range;
                if (rr->n_kvs > 0)
                    c->txn_rev = rr->kvs[0]->mod_revision;
            } else {
                err = "bad_response";
            }
        }
        etcdserverpb__txn_response__free_unpacked(p, NULL);
        return err;
    }
    case OP_LEASE_GRANT: {
        Etcdserverpb__LeaseGrantResponse *p =
            etcdserverpb__lease_grant_response__unpack(NULL, len, m);
        if (!p)
            return "bad_response";
        const char *err = NULL;
        if (p->id == 0 || p->ttl <= 0 || (p->error && p->error[0]))
            err = "lease_grant_failed";
        else
            c->lease_id = p->id, c->lease_uses = 0, g.leases_granted++;
        etcdserverpb__lease_grant_response__free_unpacked(p, NULL);
        return err;
    }
    case OP_LEASE_KEEPALIVE: /* a stream, see keepalive_message */
    case OP_WATCH:
        break;
    }
    return "bad_response";
}

/* op_done: accounts one finished op of client c (err NULL: success) and starts its next. */
static void op_done(client_t *c, const char *err, uint64_t lat_us)
{
    g.ops_done++;
    if (err)
        count_error(err);
    else if (g.workload == W_WATCH)
        g.puts_ok++; /* the watch histogram holds put -> event latencies */
    else
        hist_record(&g.hist, lat_us);
    if (g.phase == 2)
        client_next(c);
}

/* keepalive_message: one LeaseKeepAliveResponse on a client's keep-alive stream. */
static void keepalive_message(req_t *r, const uint8_t *msg, size_t len)
{
    client_t *c = r->client;
    if (!c->ka_pending) {
        count_error("unexpected_keepalive_response");
        return;
    }
    c->ka_pending = false;
    uint64_t lat_us = (now_ns() - c->ka_start_ns) / 1000u;
    const char *err = NULL;
    Etcdserverpb__LeaseKeepAliveResponse *p =
        etcdserverpb__lease_keep_alive_response__unpack(NULL, len, msg);
    if (!p) {
        err = "bad_response";
    } else {
        if (p->ttl <= 0) {
            err = "lease_not_found";
            c->lease_id = 0;
        } else {
            g.keepalives++;
        }
        etcdserverpb__lease_keep_alive_response__free_unpacked(p, NULL);
    }
    op_done(c, err, lat_us);
}

/* send_keepalive: sends a keep-alive for c's lease on c's stream (opened on first use). */
static void send_keepalive(client_t *c)
{
    Etcdserverpb__LeaseKeepAliveRequest ka = ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;
    ka.id = c->lease_id;
    c->lease_uses++;
    size_t n;
    uint8_t *msg = frame(&ka.base, &n);
    c->ka_pending = true;
    c->ka_start_ns = now_ns();
    req_t *r = c->ka_stream;
    if (r) {
        if (r->body_off == r->body_len)
            r->body_off = r->body_len = 0;
        uint8_t *nb = realloc(r->body, r->body_len + n);
        if (!nb) {
            fprintf(stderr, "cord-bench: out of memory\n");
            exit(3);
        }
        memcpy(nb + r->body_len, msg, n);
        r->body = nb;
        r->body_len += n;
        free(msg);
        nghttp2_session_resume_data(r->conn->session, r->stream_id); /* no-op if not deferred */
        if (!r->conn->in_recv)
            conn_flush(r->conn);
        return;
    }
    r = calloc(1, sizeof(*r));
    if (!r)
        exit(3);
    r->kind = OP_LEASE_KEEPALIVE;
    r->client = c;
    r->keep_open = true;
    r->body = msg;
    r->body_len = n;
    c->ka_stream = r;
    if (submit(c->conn, r, "/etcdserverpb.Lease/LeaseKeepAlive") < 0) {
        c->ka_stream = NULL;
        c->ka_pending = false;
        req_free(r);
        set_fatal("cannot submit a request on %s", c->conn->authority);
        finish_run();
    }
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t error_code, void *ud)
{
    req_t *r = nghttp2_session_get_stream_user_data(s, sid);
    if (!r)
        return 0;
    nghttp2_session_set_stream_user_data(s, sid, NULL);
    if (r->kind == OP_WATCH) {
        watcher_t *w = r->watcher;
        w->stream = NULL;
        if (g.phase < 4) {
            char kind[40];
            if (r->grpc_status > 0)
                snprintf(kind, sizeof(kind), "%s", grpc_status_name(r->grpc_status));
            else
                snprintf(kind, sizeof(kind), "watch_stream_closed");
            count_error(kind);
            if (!w->created)
                set_fatal("watch stream %d closed before it was created (%s)", w->id, kind);
        }
        req_free(r);
        return 0;
    }
    client_t *c = r->client;
    if (r->kind == OP_LEASE_KEEPALIVE) {
        c->ka_stream = NULL;
        char kind[40];
        snprintf(kind, sizeof(kind), "%s",
                 r->timed_out         ? "client_timeout"
                 : r->grpc_status > 0 ? grpc_status_name(r->grpc_status)
                                      : "keepalive_stream_closed");
        bool pending = c->ka_pending;
        uint64_t lat_us = (now_ns() - c->ka_start_ns) / 1000u;
        req_free(r);
        if (pending) {
            c->ka_pending = false;
            op_done(c, kind, lat_us);
        }
        return 0;
    }
    uint64_t lat_us = (now_ns() - r->start_ns) / 1000u;
    const char *err = NULL;
    char kind[40];
    if (r->timed_out)
        err = "client_timeout";
    else if (error_code != NGHTTP2_NO_ERROR && r->grpc_status < 0)
        err = "stream_reset";
    else if (r->http_status != 200) {
        snprintf(kind, sizeof(kind), "http_%d", r->http_status);
        err = kind;
    } else if (r->grpc_status < 0)
        err = "no_grpc_status";
    else if (r->grpc_status != 0)
        err = grpc_status_name(r->grpc_status);
    else
        err = handle_response(r);
    if (err && r->kind == OP_LEASE_GRANT)
        c->lease_id = 0;
    c->inflight = NULL;
    req_free(r);
    op_done(c, err, lat_us);
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    conn_t *c = h->data;
    *buf = uv_buf_init((char *)c->rdbuf, sizeof(c->rdbuf));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    conn_t *c = st->data;
    if (n == 0)
        return;
    if (n < 0) {
        c->dead = true;
        if (g.phase < 4)
            set_fatal("connection to %s lost: %s", c->authority,
                      n == UV_EOF ? "closed by peer" : uv_strerror((int)n));
        finish_run();
        return;
    }
    c->in_recv = true;
    ssize_t rc = nghttp2_session_mem_recv(c->session, (const uint8_t *)buf->base, (size_t)n);
    c->in_recv = false;
    if (rc < 0) {
        c->dead = true;
        set_fatal("HTTP/2 error from %s: %s", c->authority, nghttp2_strerror((int)rc));
        finish_run();
        return;
    }
    conn_flush(c);
    if (g.phase < 4 && !nghttp2_session_want_read(c->session) &&
        !nghttp2_session_want_write(c->session)) {
        c->dead = true;
        set_fatal("server %s ended the HTTP/2 session (GOAWAY)", c->authority);
        finish_run();
    }
}

static void start_phase(int phase);

static void on_connect(uv_connect_t *cr, int status)
{
    conn_t *c = cr->data;
    if (status < 0) {
        c->dead = true;
        set_fatal("cannot connect to %s: %s", c->authority, uv_strerror(status));
        finish_run();
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    int rc = nghttp2_session_client_new(&c->session, cb, c);
    nghttp2_session_callbacks_del(cb);
    if (rc != 0) {
        fprintf(stderr, "cord-bench: nghttp2_session_client_new: %s\n", nghttp2_strerror(rc));
        exit(3);
    }
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20},
                                   {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, 3);
    nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, 1 << 24);
    c->connected = true;
    rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        set_fatal("read from %s: %s", c->authority, uv_strerror(rc));
        finish_run();
        return;
    }
    conn_flush(c);
    if (++g.connected == g.conns && g.phase == 0)
        start_phase(g.workload == W_WATCH ? 1 : 2);
}

/* ---------------------------------------------------------------- workloads */

static void watch_message(req_t *r, const uint8_t *msg, size_t len)
{
    watcher_t *w = r->watcher;
    Etcdserverpb__WatchResponse *p = etcdserverpb__watch_response__unpack(NULL, len, msg);
    if (!p) {
        count_error("bad_response");
        return;
    }
    if (p->created && !w->created) {
        w->created = true;
        bool all = true;
        for (int i = 0; i < g.watchers; i++)
            all = all && g.watcher[i].created;
        if (all && g.phase == 1)
            start_phase(2);
    }
    if (p->canceled)
        count_error("watch_canceled");
    uint64_t t = now_ns();
    for (size_t i = 0; i < p->n_events; i++) {
        Mvccpb__Event *e = p->events[i];
        if (e->type != MVCCPB__EVENT__EVENT_TYPE__PUT || !e->kv)
            continue;
        w->events++;
        g.events++;
        if (e->kv->value.len >= 16) {
            char hex[17];
            memcpy(hex, e->kv->value.data, 16);
            hex[16] = 0;
            uint64_t sent = strtoull(hex, NULL, 16);
            if (sent != 0 && sent <= t)
                hist_record(&g.hist, (t - sent) / 1000u);
        }
    }
    etcdserverpb__watch_response__free_unpacked(p, NULL);
    if (g.phase == 3 && g.events >= g.events_expected)
        finish_run();
}

static void open_watchers(void)
{
    for (int i = 0; i < g.watchers; i++) {
        watcher_t *w = &g.watcher[i];
        w->id = i;
        w->conn = &g.conn[i % g.conns];
        Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
        size_t plen = strlen(g.key_prefix);
        uint8_t end[MAX_KEY + 1];
        cr.key.data = (uint8_t *)g.key_prefix;
        cr.key.len = plen;
        cr.range_end.len = key_prefix_end(g.key_prefix, plen, end);
        cr.range_end.data = end;
        Etcdserverpb__WatchRequest wr = ETCDSERVERPB__WATCH_REQUEST__INIT;
        wr.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
        wr.create_request = &cr;
        req_t *r = calloc(1, sizeof(*r));
        if (!r)
            exit(3);
        r->kind = OP_WATCH;
        r->watcher = w;
        r->keep_open = true;
        r->body = frame(&wr.base, &r->body_len);
        w->stream = r;
        if (submit(w->conn, r, "/etcdserverpb.Watch/Watch") < 0) {
            set_fatal("cannot open watch stream");
            finish_run();
            return;
        }
    }
}

/* claim_op: the next op number, or UINT64_MAX when the run has issued all it should. */
static uint64_t claim_op(void)
{
    if (g.phase != 2 || g.fatal)
        return UINT64_MAX;
    if (g.total && g.next_op >= g.total)
        return UINT64_MAX;
    if (g.duration > 0 && (double)(now_ns() - g.run_start_ns) / 1e9 >= g.duration)
        return UINT64_MAX;
    return g.next_op++;
}

static void client_issue(client_t *c, uint64_t op)
{
    char key[MAX_KEY];
    req_t *r = calloc(1, sizeof(*r));
    if (!r)
        exit(3);
    r->client = c;
    const char *path = NULL;
    enum workload w = g.workload;
    if (w == W_MIXED)
        w = ((double)(rng_next(&c->rng) % 1000000) / 1e6 < g.read_ratio) ? W_RANGE : W_PUT;
    switch (w) {
    case W_PUT:
    case W_WATCH: {
        size_t kl = make_key(pick_key(c, op), key);
        if (g.workload == W_WATCH) {
            char hex[17];
            snprintf(hex, sizeof(hex), "%016" PRIx64, now_ns());
            memcpy(g.value, hex, 16);
        }
        r->kind = OP_PUT;
        r->body = body_put(key, kl, g.value, (size_t)g.val_size, &r->body_len);
        path = "/etcdserverpb.KV/Put";
        g.writes++;
        break;
    }
    case W_RANGE: {
        size_t kl;
        bool prefix = g.range_prefix != NULL;
        if (prefix) {
            kl = strlen(g.range_prefix);
            memcpy(key, g.range_prefix, kl);
        } else {
            kl = make_key(pick_key(c, op), key);
        }
        r->kind = OP_RANGE;
        r->body = body_range(key, kl, prefix, &r->body_len);
        path = "/etcdserverpb.KV/Range";
        g.reads++;
        break;
    }
    case W_TXN: {
        size_t kl = make_key((uint64_t)c->id % g.key_space, key);
        Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
        cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
        cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
        cmp.key.data = (uint8_t *)key;
        cmp.key.len = kl;
        cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
        cmp.mod_revision = c->txn_rev;
        Etcdserverpb__Compare *cmps[1] = {&cmp};
        Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
        put.key = cmp.key;
        put.value.data = g.value;
        put.value.len = (size_t)g.val_size;
        Etcdserverpb__RequestOp sop = ETCDSERVERPB__REQUEST_OP__INIT;
        sop.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        sop.request_put = &put;
        Etcdserverpb__RangeRequest get = ETCDSERVERPB__RANGE_REQUEST__INIT;
        get.key = cmp.key;
        Etcdserverpb__RequestOp fop = ETCDSERVERPB__REQUEST_OP__INIT;
        fop.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
        fop.request_range = &get;
        Etcdserverpb__RequestOp *sops[1] = {&sop}, *fops[1] = {&fop};
        Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
        t.n_compare = 1;
        t.compare = cmps;
        t.n_success = 1;
        t.success = sops;
        t.n_failure = 1;
        t.failure = fops;
        r->kind = OP_TXN;
        r->body = frame(&t.base, &r->body_len);
        path = "/etcdserverpb.KV/Txn";
        g.writes++;
        break;
    }
    case W_LEASE: {
        if (c->lease_id == 0 || c->lease_uses >= g.keepalives_per_lease) {
            Etcdserverpb__LeaseGrantRequest lg = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
            lg.ttl = g.lease_ttl;
            r->kind = OP_LEASE_GRANT;
            r->body = frame(&lg.base, &r->body_len);
            path = "/etcdserverpb.Lease/LeaseGrant";
        } else {
            req_free(r);
            send_keepalive(c);
            return;
        }
        break;
    }
    case W_MIXED:
        break;
    }
    c->inflight = r;
    if (submit(c->conn, r, path) < 0) {
        c->inflight = NULL;
        req_free(r);
        set_fatal("cannot submit a request on %s", c->conn->authority);
        finish_run();
    }
}

static void on_client_timer(uv_timer_t *t)
{
    client_next(t->data);
}

/* client_next: issues the client's next op now, or when --rate allows it, or retires it. */
static void client_next(client_t *c)
{
    if (c->done)
        return;
    uint64_t op = claim_op();
    if (op == UINT64_MAX) {
        c->done = true;
        g.clients_done++;
        maybe_finish();
        return;
    }
    if (g.rate > 0) {
        uint64_t due = g.run_start_ns + (uint64_t)((double)op * 1e9 / g.rate);
        uint64_t t = now_ns();
        if (due > t + 500000) {
            g.next_op--; /* unclaim; re-claimed when the timer fires (ops are interchangeable) */
            uv_timer_start(&c->timer, on_client_timer, (due - t) / 1000000u, 0);
            return;
        }
        client_issue(c, op);
        /* With --rate, latency counts from when the op was due, not from when it could be
         * sent (no coordinated omission: a server that falls behind the rate shows it). */
        if (c->inflight && c->inflight->start_ns > due)
            c->inflight->start_ns = due;
        if (c->ka_pending && c->ka_start_ns > due)
            c->ka_start_ns = due;
        return;
    }
    client_issue(c, op);
}

static void maybe_finish(void)
{
    if (g.phase != 2 || g.clients_done < g.clients)
        return;
    g.run_end_ns = now_ns();
    if (g.workload == W_WATCH) {
        g.events_expected = g.puts_ok * (uint64_t)g.watchers;
        g.phase = 3;
        g.phase_start_ns = now_ns();
        if (g.events >= g.events_expected)
            finish_run();
        return;
    }
    finish_run();
}

static void start_phase(int phase)
{
    g.phase = phase;
    g.phase_start_ns = now_ns();
    uv_timer_stop(&g.connect_timer);
    if (phase == 1) {
        open_watchers();
        return;
    }
    g.run_start_ns = g.last_progress_ns = now_ns();
    for (int i = 0; i < g.clients && g.phase == 2; i++)
        client_next(&g.client[i]);
}

static void on_connect_timeout(uv_timer_t *t)
{
    if (g.phase == 0) {
        for (int i = 0; i < g.conns; i++)
            if (!g.conn[i].connected) {
                set_fatal("cannot connect to %s: timed out after %" PRIu64 " ms",
                          g.conn[i].authority, g.connect_timeout_ms);
                break;
            }
        finish_run();
    }
}

static void on_tick(uv_timer_t *t)
{
    uint64_t n = now_ns();
    if (g.phase == 1 && n - g.phase_start_ns > 10 * 1000000000ull) {
        set_fatal("watchers not created within 10 s");
        finish_run();
        return;
    }
    if (g.phase == 2 || g.phase == 3) {
        if (g.max_time > 0 && (double)(n - g.run_start_ns) / 1e9 > g.max_time) {
            set_fatal("run exceeded --max-time %.0f s", g.max_time);
            finish_run();
            return;
        }
        /* Per-request deadline: cancel the stream; it is counted as client_timeout. */
        for (int i = 0; i < g.clients; i++) {
            req_t *r = g.client[i].inflight;
            if (r && !r->timed_out && n - r->start_ns > g.timeout_ms * 1000000ull) {
                r->timed_out = true;
                nghttp2_submit_rst_stream(r->conn->session, NGHTTP2_FLAG_NONE, r->stream_id,
                                          NGHTTP2_CANCEL);
                conn_flush(r->conn);
            }
            r = g.client[i].ka_stream;
            if (r && g.client[i].ka_pending && !r->timed_out &&
                n - g.client[i].ka_start_ns > g.timeout_ms * 1000000ull) {
                r->timed_out = true;
                nghttp2_submit_rst_stream(r->conn->session, NGHTTP2_FLAG_NONE, r->stream_id,
                                          NGHTTP2_CANCEL);
                conn_flush(r->conn);
            }
        }
        if (g.phase == 2 && g.duration > 0 && (double)(n - g.run_start_ns) / 1e9 >= g.duration) {
            /* Retire clients waiting on a --rate timer. */
            for (int i = 0; i < g.clients; i++) {
                client_t *c = &g.client[i];
                if (!c->done && !c->inflight && !c->ka_pending &&
                    uv_is_active((uv_handle_t *)&c->timer)) {
                    uv_timer_stop(&c->timer);
                    c->done = true;
                    g.clients_done++;
                }
            }
            maybe_finish();
        }
        if (g.phase == 3 && n - g.phase_start_ns > 10 * 1000000000ull) {
            if (g.events < g.events_expected)
                count_errors("watch_missing", g.events_expected - g.events);
            finish_run();
            return;
        }
        if (!g.quiet && n - g.last_progress_ns >= 1000000000ull) {
            double dt = (double)(n - g.last_progress_ns) / 1e9;
            fprintf(stderr, "cord-bench: %s %.0fs ops=%" PRIu64 " errors=%" PRIu64 " qps=%.0f%s\n",
                    workload_names[g.workload], (double)(n - g.run_start_ns) / 1e9, g.ops_done,
                    g.errors, (double)(g.ops_done - g.last_progress_ops) / dt,
                    g.phase == 3 ? " (waiting for events)" : "");
            g.last_progress_ns = n;
            g.last_progress_ops = g.ops_done;
        }
    }
}

/* ---------------------------------------------------------------- teardown and report */

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

/* finish_run: ends the run. May be called from inside nghttp2 callbacks, so it only stops
 * timers and the loop; teardown() frees sessions once uv_run has returned. */
static void finish_run(void)
{
    if (g.phase == 4)
        return;
    if ((g.phase == 2 || g.phase == 3) && !g.run_end_ns)
        g.run_end_ns = now_ns();
    g.phase = 4;
    uv_timer_stop(&g.tick);
    uv_timer_stop(&g.connect_timer);
    for (int i = 0; i < g.clients; i++)
        uv_timer_stop(&g.client[i].timer);
    uv_stop(g.loop);
}

static void teardown(void)
{
    for (int i = 0; i < g.clients; i++) {
        if (g.client[i].inflight || g.client[i].ka_pending) {
            /* Abandoned by a fatal stop: counted so that ops and errors stay consistent. */
            g.ops_done++;
            count_error("aborted");
        }
    }
    for (int i = 0; i < g.conns; i++) {
        conn_t *c = &g.conn[i];
        c->closing = true;
        if (c->session) {
            nghttp2_session_del(c->session); /* calls no callbacks; requests are freed below */
            c->session = NULL;
        }
    }
    for (int i = 0; i < g.clients; i++) {
        req_free(g.client[i].inflight);
        g.client[i].inflight = NULL;
        req_free(g.client[i].ka_stream);
        g.client[i].ka_stream = NULL;
    }
    for (int i = 0; i < g.watchers; i++) {
        req_free(g.watcher[i].stream);
        g.watcher[i].stream = NULL;
    }
}

static void json_errors(FILE *f)
{
    fprintf(f, "{");
    for (int i = 0; i < g.n_err_kinds; i++)
        fprintf(f, "%s\"%s\": %" PRIu64, i ? ", " : "", g.err_kinds[i].name, g.err_kinds[i].count);
    fprintf(f, "}");
}

static void report(void)
{
    double dur = g.run_start_ns && g.run_end_ns > g.run_start_ns
                     ? (double)(g.run_end_ns - g.run_start_ns) / 1e9
                     : 0;
    uint64_t ok = g.ops_done - (g.errors > g.ops_done ? g.ops_done : g.errors);
    double qps = dur > 0 ? (double)ok / dur : 0;
    double p50 = (double)hist_percentile(&g.hist, 50) / 1000.0,
           p90 = (double)hist_percentile(&g.hist, 90) / 1000.0,
           p99 = (double)hist_percentile(&g.hist, 99) / 1000.0,
           p999 = (double)hist_percentile(&g.hist, 99.9) / 1000.0,
           mx = (double)g.hist.max_us / 1000.0;
    double mean = g.hist.total ? (double)g.hist.sum_us / (double)g.hist.total / 1000.0 : 0;
    if (g.json) {
        printf("{\"workload\": \"%s\", \"ops\": %" PRIu64 ", \"errors\": %" PRIu64
               ", \"errors_by_status\": ",
               workload_names[g.workload], g.ops_done, g.errors);
        json_errors(stdout);
        printf(
            ", \"duration_s\": %.6f, \"qps\": %.1f, \"p50_ms\": %.3f, \"p90_ms\": %.3f, "
            "\"p99_ms\": %.3f, "
            "\"p999_ms\": %.3f, \"max_ms\": %.3f, \"mean_ms\": %.3f, \"latency_samples\": %" PRIu64
            ", \"conns\": %d, \"clients\": %d",
            dur, qps, p50, p90, p99, p999, mx, mean, g.hist.total, g.conns, g.clients);
        if (g.workload == W_MIXED)
            printf(", \"reads\": %" PRIu64 ", \"writes\": %" PRIu64, g.reads, g.writes);
        if (g.workload == W_TXN)
            printf(", \"txn_conflicts\": %" PRIu64, g.txn_conflicts);
        if (g.workload == W_LEASE)
            printf(", \"leases_granted\": %" PRIu64 ", \"keepalives\": %" PRIu64, g.leases_granted,
                   g.keepalives);
        if (g.workload == W_WATCH)
            printf(", \"watchers\": %d, \"events\": %" PRIu64 ", \"events_expected\": %" PRIu64,
                   g.watchers, g.events, g.events_expected);
        if (g.fatal) {
            printf(", \"fatal\": \"");
            for (const char *p = g.fatal_msg; *p; p++) {
                if (*p == '"' || *p == '\\')
                    printf("\\%c", *p);
                else if ((unsigned char)*p >= 0x20)
                    putchar(*p);
            }
            printf("\"");
        }
        printf("}\n");
    } else {
        printf("workload:   %s (%d conns, %d clients)\n", workload_names[g.workload], g.conns,
               g.clients);
        printf("ops:        %" PRIu64 " in %.3f s, %.1f ops/s (successful)\n", g.ops_done, dur,
               qps);
        printf("errors:     %" PRIu64, g.errors);
        for (int i = 0; i < g.n_err_kinds; i++)
            printf(" %s=%" PRIu64, g.err_kinds[i].name, g.err_kinds[i].count);
        printf("\n");
        if (g.workload == W_WATCH)
            printf("events:     %" PRIu64 " of %" PRIu64
                   " expected (%d watchers); latency is put send -> event\n",
                   g.events, g.events_expected, g.watchers);
        if (g.workload == W_TXN)
            printf("conflicts:  %" PRIu64 "\n", g.txn_conflicts);
        if (g.workload == W_LEASE)
            printf("leases:     %" PRIu64 " granted, %" PRIu64 " keep-alives\n", g.leases_granted,
                   g.keepalives);
        if (g.workload == W_MIXED)
            printf("reads:      %" PRIu64 ", writes %" PRIu64 "\n", g.reads, g.writes);
        printf("latency ms: mean %.3f p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f max %.3f\n", mean, p50,
               p90, p99, p999, mx);
        /* Coarse histogram: powers of two in us. */
        uint64_t edge = 128, seen = 0;
        printf("histogram (upper bound ms: count):\n");
        uint32_t i = 0;
        while (seen < g.hist.total && i < HIST_BUCKETS) {
            uint64_t cnt = 0;
            while (i < HIST_BUCKETS && hist_bucket_upper(i) < edge)
                cnt += g.hist.counts[i++];
            if (cnt)
                printf("  %10.3f: %" PRIu64 "\n", (double)edge / 1000.0, cnt);
            seen += cnt;
            edge *= 2;
        }
    }
    fflush(stdout);
}

/* ---------------------------------------------------------------- options */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: cord-bench WORKLOAD [options]     WORKLOAD: put range txn watch lease mixed\n"
        "  --endpoints H:P[,H:P...]  gRPC endpoints (default 127.0.0.1:2379; http:// prefix ok)\n"
        "  --conns N                 TCP connections / HTTP2 sessions (default 1)\n"
        "  --clients N               concurrent request loops over the connections (default 1)\n"
        "  --total N                 ops to run (default 10000 unless --duration is given)\n"
        "  --duration S              stop issuing after S seconds (with --total: whichever first)\n"
        "  --rate R                  target ops/s over all clients, 0 = unlimited (default 0)\n"
        "  --key-size N  --val-size N  (default 8, 256)\n"
        "  --key-space N             distinct keys (default 100000)\n"
        "  --sequential-keys         key = op number mod key-space (default random)\n"
        "  --key-prefix P            prefix of every key (default empty)\n"
        "  --consistency l|s         range/mixed reads: linearizable or serializable (default l)\n"
        "  --prefix P                range: read the prefix P instead of one key (with --limit N)\n"
        "  --read-ratio F            mixed: fraction of reads, 0..1 (default 0.5)\n"
        "  --watchers N              watch: watch streams on --key-prefix (default 10)\n"
        "  --lease-ttl S             lease: TTL of granted leases (default 60)\n"
        "  --keepalives N            lease: keep-alives per granted lease (default 10)\n"
        "  --timeout-ms N            per-request deadline (default 10000)\n"
        "  --connect-timeout-ms N    (default 5000)\n"
        "  --max-time S              hard bound on the whole run (default 900)\n"
        "  --seed N                  random key seed (default 1)\n"
        "  -w json|simple            output format; json: one object on stdout\n"
        "  -q, --quiet               no progress lines on stderr\n"
        "exit status: 0 all ops succeeded; 1 some ops failed or the run was cut short; 2 usage or\n"
        "cannot connect.\n");
}

static uint64_t parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || end == s || s[0] == '-' || v < lo || v > hi)
        die_usage("%s: expected an integer in [%" PRIu64 ", %" PRIu64 "], got '%s'", opt, lo, hi,
                  s);
    return v;
}

static double parse_double(const char *opt, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= lo && v <= hi))
        die_usage("%s: expected a number in [%g, %g], got '%s'", opt, lo, hi, s);
    return v;
}

static char *endpoints_arg = "127.0.0.1:2379";

static void parse_args(int argc, char **argv)
{
    enum {
        O_ENDPOINTS = 256,
        O_CONNS,
        O_CLIENTS,
        O_TOTAL,
        O_DURATION,
        O_RATE,
        O_KEYSIZE,
        O_VALSIZE,
        O_KEYSPACE,
        O_SEQ,
        O_KEYPREFIX,
        O_CONS,
        O_PREFIX,
        O_LIMIT,
        O_READRATIO,
        O_WATCHERS,
        O_LEASETTL,
        O_KEEPALIVES,
        O_TIMEOUT,
        O_CTIMEOUT,
        O_MAXTIME,
        O_SEED,
        O_WORKLOAD
    };
    static const struct option opts[] = {{"endpoints", 1, 0, O_ENDPOINTS},
                                         {"conns", 1, 0, O_CONNS},
                                         {"clients", 1, 0, O_CLIENTS},
                                         {"total", 1, 0, O_TOTAL},
                                         {"duration", 1, 0, O_DURATION},
                                         {"rate", 1, 0, O_RATE},
                                         {"key-size", 1, 0, O_KEYSIZE},
                                         {"val-size", 1, 0, O_VALSIZE},
                                         {"key-space", 1, 0, O_KEYSPACE},
                                         {"key-space-size", 1, 0, O_KEYSPACE},
                                         {"sequential-keys", 0, 0, O_SEQ},
                                         {"key-prefix", 1, 0, O_KEYPREFIX},
                                         {"consistency", 1, 0, O_CONS},
                                         {"prefix", 1, 0, O_PREFIX},
                                         {"limit", 1, 0, O_LIMIT},
                                         {"read-ratio", 1, 0, O_READRATIO},
                                         {"watchers", 1, 0, O_WATCHERS},
                                         {"lease-ttl", 1, 0, O_LEASETTL},
                                         {"keepalives", 1, 0, O_KEEPALIVES},
                                         {"timeout-ms", 1, 0, O_TIMEOUT},
                                         {"connect-timeout-ms", 1, 0, O_CTIMEOUT},
                                         {"max-time", 1, 0, O_MAXTIME},
                                         {"seed", 1, 0, O_SEED},
                                         {"workload", 1, 0, O_WORKLOAD},
                                         {"write-out", 1, 0, 'w'},
                                         {"quiet", 0, 0, 'q'},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    g.conns = 1;
    g.clients = 1;
    g.key_size = 8;
    g.val_size = 256;
    g.key_space = 100000;
    g.key_prefix = "";
    g.read_ratio = 0.5;
    g.watchers = 10;
    g.lease_ttl = 60;
    g.keepalives_per_lease = 10;
    g.timeout_ms = 10000;
    g.connect_timeout_ms = 5000;
    g.max_time = 900;
    g.seed = 1;
    const char *wl = NULL;
    bool have_total = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "w:qh", opts, NULL)) != -1) {
        switch (ch) {
        case O_ENDPOINTS:
            endpoints_arg = optarg;
            break;
        case O_CONNS:
            g.conns = (int)parse_u64("--conns", optarg, 1, MAX_CONNS);
            break;
        case O_CLIENTS:
            g.clients = (int)parse_u64("--clients", optarg, 1, MAX_CLIENTS);
            break;
        case O_TOTAL:
            g.total = parse_u64("--total", optarg, 1, UINT64_C(1) << 40);
            have_total = true;
            break;
        case O_DURATION:
            g.duration = parse_double("--duration", optarg, 0.001, 86400);
            break;
        case O_RATE:
            g.rate = parse_double("--rate", optarg, 0, 1e8);
            break;
        case O_KEYSIZE:
            g.key_size = (int)parse_u64("--key-size", optarg, 1, MAX_KEY - 64);
            break;
        case O_VALSIZE:
            g.val_size = (int)parse_u64("--val-size", optarg, 0, MAX_VAL);
            break;
        case O_KEYSPACE:
            g.key_space = parse_u64("--key-space", optarg, 1, UINT64_C(1) << 40);
            break;
        case O_SEQ:
            g.sequential = true;
            break;
        case O_KEYPREFIX:
            if (strlen(optarg) > 256)
                die_usage("--key-prefix: at most 256 bytes");
            g.key_prefix = optarg;
            break;
        case O_CONS:
            if (strcmp(optarg, "l") == 0)
                g.serializable = false;
            else if (strcmp(optarg, "s") == 0)
                g.serializable = true;
            else
                die_usage("--consistency: expected l or s, got '%s'", optarg);
            break;
        case O_PREFIX:
            if (strlen(optarg) > 256)
                die_usage("--prefix: at most 256 bytes");
            g.range_prefix = optarg;
            break;
        case O_LIMIT:
            g.range_limit = (int64_t)parse_u64("--limit", optarg, 0, INT64_MAX);
            break;
        case O_READRATIO:
            g.read_ratio = parse_double("--read-ratio", optarg, 0, 1);
            break;
        case O_WATCHERS:
            g.watchers = (int)parse_u64("--watchers", optarg, 1, MAX_WATCHERS);
            break;
        case O_LEASETTL:
            g.lease_ttl = (int64_t)parse_u64("--lease-ttl", optarg, 1, 1u << 30);
            break;
        case O_KEEPALIVES:
            g.keepalives_per_lease = (uint32_t)parse_u64("--keepalives", optarg, 0, 1u << 30);
            break;
        case O_TIMEOUT:
            g.timeout_ms = parse_u64("--timeout-ms", optarg, 1, 3600000);
            break;
        case O_CTIMEOUT:
            g.connect_timeout_ms = parse_u64("--connect-timeout-ms", optarg, 1, 600000);
            break;
        case O_MAXTIME:
            g.max_time = parse_double("--max-time", optarg, 0.001, 86400);
            break;
        case O_SEED:
            g.seed = parse_u64("--seed", optarg, 0, UINT64_MAX);
            break;
        case O_WORKLOAD:
            wl = optarg;
            break;
        case 'w':
            if (strcmp(optarg, "json") == 0)
                g.json = true;
            else if (strcmp(optarg, "simple") == 0)
                g.json = false;
            else
                die_usage("-w: expected json or simple, got '%s'", optarg);
            break;
        case 'q':
            g.quiet = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc) {
        if (wl)
            die_usage("workload given twice");
        wl = argv[optind++];
    }
    if (optind < argc)
        die_usage("unexpected argument '%s'", argv[optind]);
    if (!wl)
        die_usage("no workload given");
    int found = -1;
    for (int i = 0; i < (int)(sizeof(workload_names) / sizeof(workload_names[0])); i++)
        if (strcmp(wl, workload_names[i]) == 0)
            found = i;
    if (found < 0)
        die_usage("unknown workload '%s' (put range txn watch lease mixed)", wl);
    g.workload = (enum workload)found;
    if (!have_total && g.duration == 0)
        g.total = 10000;
    if (g.workload == W_WATCH && g.val_size < 16)
        g.val_size = 16; /* holds the send timestamp */
    if (g.workload == W_WATCH && g.key_prefix[0] == 0)
        die_usage("watch: give --key-prefix (watchers watch that prefix)");
    if (g.workload != W_WATCH)
        g.watchers = 0;
    if (g.max_time < g.duration)
        g.max_time = g.duration + 60;
}

static void parse_endpoints(void)
{
    char *dup = strdup(endpoints_arg);
    if (!dup)
        exit(3);
    for (char *save = NULL, *tok = strtok_r(dup, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (g.n_endpoints >= MAX_ENDPOINTS)
            die_usage("--endpoints: at most %d", MAX_ENDPOINTS);
        if (strncmp(tok, "http://", 7) == 0)
            tok += 7;
        size_t n = strlen(tok);
        if (n && tok[n - 1] == '/')
            tok[n - 1] = 0;
        g.endpoints[g.n_endpoints++] = strdup(tok);
    }
    free(dup);
    if (g.n_endpoints == 0)
        die_usage("--endpoints: empty");
}

static void setup_conn(conn_t *c, const char *ep)
{
    char host[256];
    const char *colon = strrchr(ep, ':');
    if (!colon || colon == ep || strlen(ep) >= sizeof(c->authority))
        die_usage("endpoint '%s': expected host:port", ep);
    size_t hl = (size_t)(colon - ep);
    if (hl >= sizeof(host))
        die_usage("endpoint '%s': host too long", ep);
    memcpy(host, ep, hl);
    host[hl] = 0;
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    int port = (int)parse_u64("endpoint port", colon + 1, 1, 65535);
    snprintf(c->authority, sizeof(c->authority), "%s", ep);
    uv_getaddrinfo_t gai;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char ps[8];
    snprintf(ps, sizeof(ps), "%d", port);
    int rc = uv_getaddrinfo(g.loop, &gai, NULL, host, ps, &hints);
    if (rc < 0 || !gai.addrinfo) {
        fprintf(stderr, "cord-bench: cannot resolve '%s': %s\n", host, uv_strerror(rc));
        exit(2);
    }
    memcpy(&c->addr, gai.addrinfo->ai_addr, gai.addrinfo->ai_addrlen);
    uv_freeaddrinfo(gai.addrinfo);
    uv_tcp_init(g.loop, &c->tcp);
    c->tcp.data = c;
    c->connect_req.data = c;
    rc = uv_tcp_connect(&c->connect_req, &c->tcp, (struct sockaddr *)&c->addr, on_connect);
    if (rc < 0) {
        fprintf(stderr, "cord-bench: cannot connect to %s: %s\n", ep, uv_strerror(rc));
        exit(2);
    }
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a server that goes away is an error return, not death */
    parse_args(argc, argv);
    parse_endpoints();
    g.loop = uv_default_loop();
    g.value = xmalloc((size_t)g.val_size + 1);
    memset(g.value, 'v', (size_t)g.val_size);
    hist_init(&g.hist);
    g.conn = calloc((size_t)g.conns, sizeof(conn_t));
    g.client = calloc((size_t)g.clients, sizeof(client_t));
    g.watcher = calloc((size_t)(g.watchers ? g.watchers : 1), sizeof(watcher_t));
    if (!g.conn || !g.client || !g.watcher)
        exit(3);
    for (int i = 0; i < g.clients; i++) {
        client_t *c = &g.client[i];
        c->id = i;
        c->conn = &g.conn[i % g.conns];
        c->rng = (g.seed + 1) * 0x9E3779B97F4A7C15ull ^ ((uint64_t)i + 1) * 0xBF58476D1CE4E5B9ull;
        if (c->rng == 0)
            c->rng = 1;
        uv_timer_init(g.loop, &c->timer);
        c->timer.data = c;
    }
    for (int i = 0; i < g.conns; i++) {
        g.conn[i].idx = i;
        setup_conn(&g.conn[i], g.endpoints[i % g.n_endpoints]);
    }
    uv_timer_init(g.loop, &g.tick);
    uv_timer_start(&g.tick, on_tick, 100, 100);
    uv_timer_init(g.loop, &g.connect_timer);
    uv_timer_start(&g.connect_timer, on_connect_timeout, g.connect_timeout_ms, 0);

    uv_run(g.loop, UV_RUN_DEFAULT);
    teardown();

    bool connect_failed = g.fatal && g.run_start_ns == 0;
    if (g.fatal)
        fprintf(stderr, "cord-bench: error: %s\n", g.fatal_msg);
    if (!connect_failed)
        report();
    int code = connect_failed ? 2 : (g.fatal || g.errors) ? 1 : 0;

    /* Close every handle, let the loop run the close callbacks, free. */
    for (int i = 0; i < g.clients; i++)
        uv_close((uv_handle_t *)&g.client[i].timer, on_closed);
    for (int i = 0; i < g.conns; i++)
        uv_close((uv_handle_t *)&g.conn[i].tcp, on_closed);
    uv_close((uv_handle_t *)&g.tick, on_closed);
    uv_close((uv_handle_t *)&g.connect_timer, on_closed);
    uv_run(g.loop, UV_RUN_DEFAULT);
    for (int i = 0; i < g.conns; i++) {
        free(g.conn[i].wbuf);
        free(g.conn[i].inflight_buf);
    }
    uv_loop_close(g.loop);
    for (int i = 0; i < g.n_endpoints; i++)
        free(g.endpoints[i]);
    free(g.conn);
    free(g.client);
    free(g.watcher);
    free(g.value);
    return code;
}
