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
        api_server_start(&loop, "http://localhost:0", methods, 2, NULL, 0, &lim, &s, &err),
        API_OK);
    int port = api_server_port(s);
    assert_true(port > 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    assert_int_equal(api_server_start(&loop, url, methods, 2, NULL, 0, NULL, &s2, &err),
                     API_EADDR);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_bad_tables),
        cmocka_unit_test(test_start_stop_and_port_in_use),
        cmocka_unit_test(test_limits_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
