/*
 * api_echo_server: a test server on top of cord_api, driven by real clients
 * (curl, python3-grpcio, raw sockets) from test_api_server.py.
 *
 * gRPC methods (request/response bytes are opaque; no protobuf):
 *   /test.Echo/Unary         reply with the request bytes
 *   /test.Echo/ServerStream  request "N S": N messages of S bytes ("<i>:" then 'x's), then OK
 *   /test.Echo/Bidi          echo every message; finish OK when the client half-closes
 *   /test.Echo/Delayed       request "<ms>": reply "late" after ms (async reply after a timer)
 *   /test.Echo/Fail          request "<code> <message>": finish with that status
 *   /test.Echo/Ticker        one message every 10 ms until the client goes away
 *   /test.Echo/Paced         request "N S": N messages of S bytes, paced with the drain
 *                            callback (at most 64 KiB queued); last message "maxq=<bytes>"
 *   /test.Echo/Header        request "<name>": reply that request header's value, or "<none>"
 *   /etcdserverpb.KV/Range, /etcdserverpb.KV/Put   reply an empty message (a valid empty
 *                            RangeResponse / PutResponse) so stock etcdctl (grpc-go) can call them
 * HTTP/1.1 routes:
 *   GET /health   {"health":"true"}
 *   POST /echo    the body back (header X-Echo-Length: its length, via api_http_add_header)
 *   GET /stream   ?n=N chunked: N chunks "chunk <i>\n", one per 20 ms
 *   GET /stats    {"live_calls":L,"opened":O,"closed":C}
 *   GET /slow     answers after 200 ms
 *   POST /shutdown  answers, then api_server_stop from inside the handler
 *   POST /virtual ?method=PATH[&half=1]  runs gRPC method PATH through a virtual call
 *                 (api_call_virtual_new) with the body as its one request message
 *                 (half-closed after it with half=1; nomsg=1: no message); chunked answer: one line
 *                 "msg <len> <bytes>" per reply message, then "status <code> <message>";
 *                 404 for an unknown method; the client leaving closes the call
 * Flags: --listen URL --max-request-bytes N --max-conns N --max-streams N
 *        --max-pending N --idle-ms N. Prints "PORT <port>" once listening.
 * SIGTERM/SIGINT: api_server_stop, then exit 0 once everything is closed.
 */
#include "api/http_server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uv_loop_t *loop;
static api_server *server;
static uv_signal_t sig_term, sig_int;
static long live_calls, opened_calls, closed_calls;

/* per-call state for methods with timers */
typedef struct timer_state {
    uv_timer_t timer;
    api_call *call; /* NULL once the call is gone */
    int kind;       /* 0 delayed, 1 ticker */
    long ticks;
} timer_state;

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void generic_open(api_call *c)
{
    if (api_call_get_ud(c) == NULL) {
        live_calls++;
        opened_calls++;
        api_call_set_ud(c, (void *)1);
    }
}

static void generic_close(api_call *c, void *ud)
{
    (void)ud;
    void *p = api_call_get_ud(c);
    if (p == NULL)
        return;
    live_calls--;
    closed_calls++;
    if (p != (void *)1) {
        timer_state *t = p;
        t->call = NULL;
        uv_timer_stop(&t->timer);
        uv_close((uv_handle_t *)&t->timer, on_timer_closed);
    }
}

static void unary(api_call *c, const uint8_t *m, size_t n, void *ud)
{
    generic_open(c);
    api_call_reply(c, m, n);
}

static void empty_reply(api_call *c, const uint8_t *m, size_t n, void *ud)
{
    generic_open(c);
    api_call_reply(c, NULL, 0);
}

static void header(api_call *c, const uint8_t *m, size_t n, void *ud)
{
    generic_open(c);
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)(n < 127 ? n : 127), (const char *)m);
    const char *v = api_call_header(c, name);
    if (!v)
        v = "<none>";
    api_call_reply(c, (const uint8_t *)v, strlen(v));
}

typedef struct paced {
    unsigned long left, size, i;
    size_t maxq;
} paced;

static void paced_pump(api_call *c, void *ud)
{
    paced *p = ud;
    uint8_t *msg = malloc(p->size + 32);
    while (p->left > 0 && api_call_pending_send_bytes(c) < 64 * 1024) {
        int k = snprintf((char *)msg, 32, "%lu:", p->i++);
        size_t len = p->size > (size_t)k ? p->size : (size_t)k;
        memset(msg + k, 'p', len - (size_t)k);
        api_call_send(c, msg, len);
        p->left--;
        if (api_call_pending_send_bytes(c) > p->maxq)
            p->maxq = api_call_pending_send_bytes(c);
    }
    free(msg);
    if (p->left > 0) {
        api_call_set_drain_cb(c, paced_pump, p, 16 * 1024);
        return;
    }
    char last[64];
    int n = snprintf(last, sizeof last, "maxq=%zu", p->maxq);
    api_call_send(c, (const uint8_t *)last, (size_t)n);
    api_call_finish(c, API_GRPC_OK, NULL);
}

static void paced_close(api_call *c, void *ud)
{
    paced *p = api_call_get_ud(c);
    if (p && p != (void *)1) {
        api_call_set_ud(c, (void *)1); /* generic_close counts it, frees nothing */
        free(p);
    }
    generic_close(c, ud);
}

static void paced_start(api_call *c, const uint8_t *m, size_t n, void *ud)
{
    if (api_call_get_ud(c))
        return;
    char buf[64];
    paced *p = calloc(1, sizeof *p);
    snprintf(buf, sizeof buf, "%.*s", (int)(n < 63 ? n : 63), (const char *)m);
    if (sscanf(buf, "%lu %lu", &p->left, &p->size) != 2 || p->size > (1u << 20)) {
        free(p);
        generic_open(c);
        api_call_finish(c, API_GRPC_INVALID_ARGUMENT, "want \"N S\"");
        return;
    }
    live_calls++;
    opened_calls++;
    api_call_set_ud(c, p);
    paced_pump(c, p);
}

static void server_stream(api_call *c, const uint8_t *m, size_t n, void *ud)
{
    generic_open(c);
    char buf[64];
    unsigned long count = 0, size = 0;
    snprintf(buf, sizeof buf, "%.*s", (int)(n < 63 ? n : 63), (const char *)m);
    if (sscanf(buf, "%lu %lu", &count, &size) != 2 || size > (64u << 20)) {
        api_call_finish(c, API_GRPC_INVALID_ARGUMENT, "want \"N S\"");
        return;
    }
    uint8_t *msg = malloc(size + 32);
    for (unsigned long i = 0; i < count && !api_call_finished(c); i++) {
        int k = snprintf((char *)msg, 32, "%lu:", i);
        size_t len = size > (size_t)k ? size : (size_t)k;
        memset(msg + k, 'x', len - (size_t)k);
        api_call_send(c, msg, len);
    }
    free(msg);
    api_call_finish(c, API_GRPC_OK, NULL);
}

static void bidi(api_call *c, const uint8_t *m, size_t n, void *ud)
{
    generic_open(c);
    api_call_send(c, m, n);
}

static void bidi_half_close(api_call *c, void *ud)
{
    generic_open(c);
    api_call_finish(c, API_GRPC_OK, NULL);
}

static void on_tick(uv_timer_t *t)
{
    timer_state *ts = t->data;
    if (!ts->call)
        return;
    if (ts->kind == 0) {
        api_call_reply(ts->call, (const uint8_t *)"late", 4);
        return;
    }
    char buf[32];
    int k = snprintf(buf, sizeof buf, "tick %ld", ts->ticks++);
    api_call_send(ts->call, (const uint8_t *)buf, (size_t)k);
}

static void start_timer(api_call *c, int kind, uint64_t ms, uint64_t repeat)
{
    timer_state *ts = calloc(1, sizeof *ts);
    ts->call = c;
    ts->kind = kind;
    uv_timer_init(loop, &ts->timer);
    ts->timer.data = ts;
    live_calls++;
    opened_calls++;
    api_call_set_ud(c, ts);
    uv_timer_start(&ts->timer, on_tick, ms, repeat);
}

static void delayed(api_call *c, const uint8_t *m, size_t n, void *ud)
{
    if (api_call_get_ud(c))
        return;
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)(n < 31 ? n : 31), (const char *)m);
    start_timer(c, 0, strtoull(buf, NULL, 10), 0);
}

static void ticker(api_call *c, const uint8_t *m, size_t n, void *ud)
{
    if (!api_call_get_ud(c))
        start_timer(c, 1, 10, 10);
}

static void ticker_half_close(api_call *c, void *ud)
{
    /* keep ticking: the client stops it by cancelling */
}

static void fail(api_call *c, const uint8_t *m, size_t n, void *ud)
{
    generic_open(c);
    char buf[512];
    snprintf(buf, sizeof buf, "%.*s", (int)(n < 511 ? n : 511), (const char *)m);
    char *sp = strchr(buf, ' ');
    api_call_finish(c, atoi(buf), sp ? sp + 1 : NULL);
}

/* ---- HTTP routes ---- */

static void h_health(api_http_req *r, void *ud)
{
    static const char body[] = "{\"health\":\"true\"}";
    api_http_respond(r, 200, "application/json", body, sizeof body - 1);
}

static void h_echo(api_http_req *r, void *ud)
{
    size_t len;
    const uint8_t *b = api_http_body(r, &len);
    const char *ct = api_http_header(r, "content-type");
    char n[32];
    snprintf(n, sizeof n, "%zu", len);
    if (api_http_add_header(r, "X-Echo-Length", n) != API_OK ||
        api_http_add_header(r, "Bad:Name", "x") != API_EINVAL ||
        api_http_add_header(r, "X-Bad", "a\r\nInjected: 1") != API_EINVAL)
        abort();
    api_http_respond(r, 200, ct ? ct : "application/octet-stream", b, len);
}

static void h_stats(api_http_req *r, void *ud)
{
    char body[1024];
    api_server_stats st;
    api_server_get_stats(server, &st);
    int n = snprintf(body, sizeof body,
                     "{\"live_calls\":%ld,\"opened\":%ld,\"closed\":%ld,"
                     "\"conns_open\":%llu,\"conns_accepted\":%llu,\"conns_refused\":%llu,"
                     "\"calls_live\":%llu,\"calls_started\":%llu,\"calls_rejected\":%llu,"
                     "\"calls_too_large\":%llu,\"calls_overflowed\":%llu,"
                     "\"http_requests\":%llu,\"bytes_received\":%llu,\"bytes_sent\":%llu}",
                     live_calls, opened_calls, closed_calls, (unsigned long long)st.conns_open,
                     (unsigned long long)st.conns_accepted, (unsigned long long)st.conns_refused,
                     (unsigned long long)st.calls_live, (unsigned long long)st.calls_started,
                     (unsigned long long)st.calls_rejected, (unsigned long long)st.calls_too_large,
                     (unsigned long long)st.calls_overflowed, (unsigned long long)st.http_requests,
                     (unsigned long long)st.bytes_received, (unsigned long long)st.bytes_sent);
    api_http_respond(r, 200, "application/json", body, (size_t)n);
}

typedef struct http_timer {
    uv_timer_t timer;
    api_http_req *req;
    long left, i;
} http_timer;

static void http_timer_end(http_timer *ht)
{
    uv_timer_stop(&ht->timer);
    uv_close((uv_handle_t *)&ht->timer, on_timer_closed);
}

static void on_stream_tick(uv_timer_t *t)
{
    http_timer *ht = t->data;
    if (ht->left-- <= 0) {
        api_http_stream_end(ht->req);
        http_timer_end(ht);
        return;
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "chunk %ld\n", ht->i++);
    if (api_http_stream_write(ht->req, buf, (size_t)n) != API_OK) {
        api_http_stream_end(ht->req);
        http_timer_end(ht);
    }
}

static void on_http_req_closed(api_http_req *r, void *ud)
{
    /* the client left: end now (the request stays valid until ended) */
    http_timer *ht = ud;
    if (ht->req) {
        api_http_req *req = ht->req;
        ht->req = NULL;
        if (api_http_method(req)[0] == 'G' && strcmp(api_http_path(req), "/stream") == 0)
            api_http_stream_end(req);
        else
            api_http_respond(req, 500, NULL, NULL, 0);
        http_timer_end(ht);
    }
}

static void h_stream(api_http_req *r, void *ud)
{
    http_timer *ht = calloc(1, sizeof *ht);
    const char *q = api_http_query(r);
    ht->left = strncmp(q, "n=", 2) == 0 ? atol(q + 2) : 3;
    ht->req = r;
    uv_timer_init(loop, &ht->timer);
    ht->timer.data = ht;
    api_http_set_close_cb(r, on_http_req_closed, ht);
    api_http_stream_begin(r, 200, "text/plain");
    uv_timer_start(&ht->timer, on_stream_tick, 20, 20);
}

static void on_slow_tick(uv_timer_t *t)
{
    http_timer *ht = t->data;
    api_http_req *r = ht->req;
    ht->req = NULL;
    api_http_respond(r, 200, "text/plain", "slow\n", 5);
    http_timer_end(ht);
}

static void h_slow(api_http_req *r, void *ud)
{
    http_timer *ht = calloc(1, sizeof *ht);
    ht->req = r;
    uv_timer_init(loop, &ht->timer);
    ht->timer.data = ht;
    api_http_set_close_cb(r, on_http_req_closed, ht);
    uv_timer_start(&ht->timer, on_slow_tick, 200, 0);
}

/* ---- /virtual: a gRPC method through a virtual call ---- */

typedef struct vreq {
    api_http_req *req; /* NULL once ended */
    api_call *call;    /* NULL once closed */
    bool busy;
} vreq;

static void v_maybe_free(vreq *v)
{
    if (!v->busy && !v->req && !v->call)
        free(v);
}

static void v_close_call(vreq *v)
{
    if (v->call) {
        api_call *c = v->call;
        v->call = NULL;
        api_call_virtual_close(c);
    }
}

static void v_end(vreq *v)
{
    if (v->req) {
        api_http_req *r = v->req;
        v->req = NULL;
        api_http_stream_end(r);
    }
}

static void v_msg(void *ctx, const uint8_t *m, size_t n)
{
    vreq *v = ctx;
    if (!v->req)
        return;
    char *line = malloc(n + 48);
    int k = snprintf(line, 48, "msg %zu ", n);
    if (n)
        memcpy(line + k, m, n);
    line[(size_t)k + n] = '\n';
    if (api_http_stream_write(v->req, line, (size_t)k + n + 1) != API_OK) {
        v_close_call(v);
        v_end(v);
    }
    free(line);
    v_maybe_free(v);
}

static void v_finish(void *ctx, int status, const char *message)
{
    vreq *v = ctx;
    v_close_call(v);
    if (v->req) {
        char line[600];
        int k = snprintf(line, sizeof line, "status %d %.500s\n", status, message);
        (void)api_http_stream_write(v->req, line, (size_t)k);
        v_end(v);
    }
    v_maybe_free(v);
}

static const api_virtual_ops v_ops = {.on_message = v_msg, .on_finish = v_finish};

static void v_http_closed(api_http_req *r, void *ud)
{
    vreq *v = ud;
    v_close_call(v);
    v_end(v);
    v_maybe_free(v);
}

static void h_virtual(api_http_req *r, void *ud)
{
    const char *q = api_http_query(r);
    char path[256] = "";
    const char *mp = strstr(q, "method=");
    if (mp)
        snprintf(path, sizeof path, "%.*s", (int)strcspn(mp + 7, "&"), mp + 7);
    bool half = strstr(q, "half=1") != NULL;
    vreq *v = calloc(1, sizeof *v);
    api_call *c = api_call_virtual_new(server, path, &v_ops, v);
    if (!c) {
        free(v);
        api_http_respond(r, 404, "text/plain", "no such method\n", 15);
        return;
    }
    v->req = r;
    v->call = c;
    api_http_set_close_cb(r, v_http_closed, v);
    api_http_stream_begin(r, 200, "text/plain");
    size_t len;
    const uint8_t *b = api_http_body(r, &len);
    v->busy = true;
    if (v->call && !strstr(q, "nomsg=1"))
        api_call_virtual_deliver(v->call, b, len);
    if (half && v->call)
        api_call_virtual_half_close(v->call);
    v->busy = false;
    v_maybe_free(v);
}

static void on_stopped(void *arg)
{
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
}

static void h_shutdown(api_http_req *r, void *ud)
{
    api_http_respond(r, 200, "text/plain", "bye\n", 4);
    if (server) {
        api_server_stop(server, on_stopped, NULL);
        server = NULL;
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    if (server) {
        api_server_stop(server, on_stopped, NULL);
        server = NULL;
    }
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a peer that resets mid-write is an error return, not death */
    const char *listen = "http://127.0.0.1:0";
    api_limits lim;
    memset(&lim, 0, sizeof lim);
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--listen"))
            listen = v;
        else if (!strcmp(k, "--max-request-bytes"))
            lim.max_request_bytes = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--max-conns"))
            lim.max_connections = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(k, "--max-streams"))
            lim.max_streams_per_conn = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(k, "--max-pending"))
            lim.max_pending_send_bytes_per_conn = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--idle-ms"))
            lim.idle_timeout_ms = (uint32_t)strtoul(v, NULL, 10);
        else {
            fprintf(stderr, "unknown flag %s\n", k);
            return 2;
        }
    }
    static const api_method methods[] = {
        {"/test.Echo/Unary", unary, generic_close, NULL, NULL},
        {"/test.Echo/ServerStream", server_stream, generic_close, NULL, NULL},
        {"/test.Echo/Bidi", bidi, generic_close, NULL, bidi_half_close},
        {"/test.Echo/Delayed", delayed, generic_close, NULL, NULL},
        {"/test.Echo/Fail", fail, generic_close, NULL, NULL},
        {"/test.Echo/Ticker", ticker, generic_close, NULL, ticker_half_close},
        {"/test.Echo/Header", header, generic_close, NULL, NULL},
        {"/test.Echo/Paced", paced_start, paced_close, NULL, NULL},
        {"/etcdserverpb.KV/Range", empty_reply, generic_close, NULL, NULL},
        {"/etcdserverpb.KV/Put", empty_reply, generic_close, NULL, NULL},
    };
    static const api_http_route routes[] = {
        {"GET", "/health", h_health, NULL},
        {"POST", "/echo", h_echo, NULL},
        {"GET", "/stream", h_stream, NULL},
        {"GET", "/stats", h_stats, NULL},
        {"GET", "/slow", h_slow, NULL},
        {"POST", "/shutdown", h_shutdown, NULL},
        /* a gRPC method through a virtual call */
        {"POST", "/virtual", h_virtual, NULL},
    };
    loop = uv_default_loop();
    cord_error err;
    int rv = api_server_start(loop, listen, methods, sizeof methods / sizeof methods[0], routes,
                              sizeof routes / sizeof routes[0], &lim, &server, &err);
    if (rv != API_OK) {
        fprintf(stderr, "api_echo_server: %s\n", err.msg);
        uv_run(loop, UV_RUN_DEFAULT); /* let the failed listener close */
        uv_loop_close(loop);
        return 1;
    }
    printf("PORT %d\n", api_server_port(server));
    fflush(stdout);
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_run(loop, UV_RUN_DEFAULT);
    rv = uv_loop_close(loop);
    if (rv != 0) {
        fprintf(stderr, "api_echo_server: loop not empty at exit: %s\n", uv_strerror(rv));
        return 1;
    }
    fprintf(stderr, "api_echo_server: clean exit\n");
    return 0;
}
