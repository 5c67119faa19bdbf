/*
 * api_server_test: in-process checks of the api server's lifecycle and
 * argument handling (the protocol itself is driven by real clients in
 * tests/api/test_api_server.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/http_server.h"

static void on_msg(api_call *c, const uint8_t *m, size_t n, void *ud)
{
    api_call_reply(c, m, n);
}

static const api_method methods[] = {
    {"/t.S/A", on_msg, NULL, NULL, NULL},
    {"/t.S/B", on_msg, NULL, NULL, NULL},
};

static int stopped;
static void on_stopped(void *arg)
{
    stopped++;
    *(int *)arg = 1;
}

static void run_until_closed(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void test_bad_urls(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    api_server *s = NULL;
    cord_error err;
    const char *bad[] = {"https://127.0.0.1:2379", "127.0.0.1", "http://127.0.0.1:x",
                         "http://127.0.0.1:70000", "[::1:2379", "http://1.2.3.4:5/extra"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(api_server_start(&loop, bad[i], methods, 2, NULL, 0, NULL, &s, &err),
                         API_EINVAL);
        assert_null(s);
        assert_int_equal(err.code, API_EINVAL);
        assert_non_null(strstr(err.msg, "listen url"));
    }
    assert_int_equal(api_server_start(&loop, "http://no-such-host.invalid:1", methods, 2, NULL, 0,
                                      NULL, &s, &err),
                     API_EADDR);
    run_until_closed(&loop);
}

static void test_bad_tables(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    api_server *s = NULL;
    cord_error err;
    api_method dup[] = {methods[0], methods[0]};
    assert_int_equal(api_server_start(&loop, "127.0.0.1:0", dup, 2, NULL, 0, NULL, &s, &err),
                     API_EINVAL);
    api_method noslash[] = {{"t.S/A", on_msg, NULL, NULL, NULL}};
    assert_int_equal(api_server_start(&loop, "127.0.0.1:0", noslash, 1, NULL, 0, NULL, &s, &err),
                     API_EINVAL);
    api_method nofn[] = {{"/t.S/A", NULL, NULL, NULL, NULL}};
    assert_int_equal(api_server_start(&loop, "127.0.0.1:0", nofn, 1, NULL, 0, NULL, &s, &err),
                     API_EINVAL);
    api_http_route badroute[] = {{"GET", "health", NULL, NULL}};
    assert_int_equal(
        api_server_start(&loop, "127.0.0.1:0", methods, 2, badroute, 1, NULL, &s, &err),
        API_EINVAL);
    run_until_closed(&loop);
}

static void test_start_stop_and_port_in_use(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    api_server *s = NULL, *s2 = NULL;
    cord_error err;
    api_limits lim;
    api_limits_default(&lim);
    lim.max_connections = 10;
    assert_int_equal(
        api_server_start(&loop, "http://localhost:0", methods, 2, NULL, 0, &lim, &s, &err), API_OK);
    int port = api_server_port(s);
    assert_true(port > 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    assert_int_equal(api_server_start(&loop, url, methods, 2, NULL, 0, NULL, &s2, &err), API_EADDR);
    assert_null(s2);
    assert_non_null(strstr(err.msg, "address already in use"));
    int done = 0;
    stopped = 0;
    api_server_stop(s, on_stopped, &done);
    assert_int_equal(done, 0); /* asynchronous */
    run_until_closed(&loop);
    assert_int_equal(done, 1);
    assert_int_equal(stopped, 1);
}

static void test_limits_default(void **state)
{
    api_limits l;
    api_limits_default(&l);
    assert_int_equal(l.max_request_bytes, 1572864 + 524288);
    assert_int_equal(l.too_large_grpc_status, API_GRPC_RESOURCE_EXHAUSTED);
    assert_string_equal(l.too_large_message, "etcdserver: request is too large");
    assert_true(l.max_connections > 0 && l.max_streams_per_conn > 0 && l.idle_timeout_ms > 0);
}

/* ---- a gRPC reply queued from a uv_prepare that runs after the server's
 * own (libuv runs later-started prepare handles first, so one started before
 * the server runs after it) must still go out at once, not when some other
 * event wakes the loop. The client is a raw socket speaking HTTP/2 bytes. */

typedef struct late_ctx {
    api_server *srv;
    int port;
    uv_prepare_t late; /* started before the server */
    uv_timer_t watchdog;
    uv_async_t client_done;
    api_call *held;
    bool done, timed_out, trailers_seen;
} late_ctx;

static late_ctx lc;

static void late_msg(api_call *c, const uint8_t *m, size_t n, void *ud)
{
    lc.held = c; /* answered from the late prepare */
}

static void late_close(api_call *c, void *ud)
{
    if (lc.held == c)
        lc.held = NULL;
}

static void on_late_prepare(uv_prepare_t *p)
{
    if (lc.held) {
        api_call *c = lc.held;
        lc.held = NULL;
        api_call_reply(c, (const uint8_t *)"late", 4);
    }
}

static void finish_late(void)
{
    if (lc.done)
        return;
    lc.done = true;
    uv_close((uv_handle_t *)&lc.late, NULL);
    uv_close((uv_handle_t *)&lc.watchdog, NULL);
    uv_close((uv_handle_t *)&lc.client_done, NULL);
    api_server_stop(lc.srv, NULL, NULL);
}

static size_t hpack_lit(uint8_t *o, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    o[0] = 0;
    o[1] = (uint8_t)nl;
    memcpy(o + 2, name, nl);
    o[2 + nl] = (uint8_t)vl;
    memcpy(o + 3 + nl, value, vl);
    return 3 + nl + vl;
}

static size_t h2_frame(uint8_t *o, uint8_t type, uint8_t flags, uint32_t sid, const uint8_t *p,
                       size_t len)
{
    o[0] = (uint8_t)(len >> 16);
    o[1] = (uint8_t)(len >> 8);
    o[2] = (uint8_t)len;
    o[3] = type;
    o[4] = flags;
    o[5] = (uint8_t)(sid >> 24);
    o[6] = (uint8_t)(sid >> 16);
    o[7] = (uint8_t)(sid >> 8);
    o[8] = (uint8_t)sid;
    if (len)
        memcpy(o + 9, p, len);
    return 9 + len;
}

/* The client runs in its own thread with blocking sockets, so that nothing
 * it does wakes the server's loop while the reply waits to be flushed. */
static void client_thread(void *arg)
{
    uint8_t out[1024], hb[512], got[4096];
    size_t hl = 0, n = 24, got_len = 0;
    hl += hpack_lit(hb + hl, ":method", "POST");
    hl += hpack_lit(hb + hl, ":scheme", "http");
    hl += hpack_lit(hb + hl, ":path", "/t.S/A");
    hl += hpack_lit(hb + hl, ":authority", "x");
    hl += hpack_lit(hb + hl, "content-type", "application/grpc");
    memcpy(out, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    n += h2_frame(out + n, 4, 0, 0, NULL, 0); /* SETTINGS */
    n += h2_frame(out + n, 1, 4, 1, hb, hl);  /* HEADERS, END_HEADERS */
    static const uint8_t msg[] = {0, 0, 0, 0, 2, 'h', 'i'};
    n += h2_frame(out + n, 0, 1, 1, msg, sizeof msg); /* DATA, END_STREAM */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", lc.port, &a);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, out, n) == (ssize_t)n) {
        while (!lc.trailers_seen && got_len < sizeof got) {
            ssize_t r = read(fd, got + got_len, sizeof got - got_len);
            if (r <= 0)
                break;
            got_len += (size_t)r;
            /* HEADERS (1) with END_STREAM (1) on stream 1 = the trailers */
            for (size_t off = 0; off + 9 <= got_len;) {
                size_t len = ((size_t)got[off] << 16) | ((size_t)got[off + 1] << 8) | got[off + 2];
                if (off + 9 + len > got_len)
                    break;
                if (got[off + 3] == 1 && (got[off + 4] & 1) && got[off + 8] == 1)
                    lc.trailers_seen = true;
                off += 9 + len;
            }
        }
    }
    close(fd);
    uv_async_send(&lc.client_done);
}

static void on_client_done(uv_async_t *h)
{
    finish_late();
}

static void on_watchdog(uv_timer_t *t)
{
    lc.timed_out = true; /* the reply sat unflushed */
}

static void test_reply_from_late_prepare_is_flushed(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    memset(&lc, 0, sizeof lc);
    uv_prepare_init(&loop, &lc.late);
    uv_prepare_start(&lc.late, on_late_prepare);
    api_method m[] = {{"/t.S/A", late_msg, late_close, NULL, NULL}};
    cord_error err;
    assert_int_equal(api_server_start(&loop, "127.0.0.1:0", m, 1, NULL, 0, NULL, &lc.srv, &err),
                     API_OK);
    lc.port = api_server_port(lc.srv);
    uv_timer_init(&loop, &lc.watchdog);
    uv_timer_start(&lc.watchdog, on_watchdog, 1000, 0);
    uv_async_init(&loop, &lc.client_done, on_client_done);
    uv_thread_t th;
    uv_thread_create(&th, client_thread, NULL);
    run_until_closed(&loop);
    uv_thread_join(&th);
    assert_true(lc.trailers_seen);
    assert_false(lc.timed_out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_bad_tables),
        cmocka_unit_test(test_start_stop_and_port_in_use),
        cmocka_unit_test(test_limits_default),
        cmocka_unit_test(test_reply_from_late_prepare_is_flushed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
