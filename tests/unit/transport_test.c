/*
 * transport_test.c: peer transports on loopback, several in one process on
 * one uv loop. Every wait is bounded by a deadline on the loop's clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <cmocka.h>
#include <uv.h>

#include "transport/msgcodec.h"
#include "transport/transport.h"

#define CLUSTER 0xC0FFEEull
#define MAXN    4

typedef struct node {
    transport *t;
    raft_id id;
    int port;
    int received;
    int received_from[MAXN + 10];
    uint64_t last_context_from[MAXN + 10];
    int out_of_order;
    int bad_data;
    int entries_checked;
    int snap_chunks;
    int unreachable[MAXN + 10];
    int fill_calls;
    int rejected_log_lines;
    bool close_on_context_999;
    bool remove_on_unreachable;
    bool reply;
} node;

static uv_loop_t loop;
static node nodes[MAXN];

/* ------------------------------------------------------------- fixtures */

static uint8_t entry_byte(uint64_t index, uint32_t j)
{
    return (uint8_t)(index * 31 + j);
}

static uint8_t snap_byte(uint64_t snap_index, uint64_t pos)
{
    return (uint8_t)((snap_index + pos) * 7 + (pos >> 8));
}

static void on_message(void *ctx, const raft_msg *m)
{
    node *n = ctx;
    assert_true(m->to == n->id);
    n->received++;
    if (m->from < MAXN + 10) {
        n->received_from[m->from]++;
        if (m->context != 0) {
            if (m->context <= n->last_context_from[m->from])
                n->out_of_order++;
            n->last_context_from[m->from] = m->context;
        }
    }
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const raft_entry *e = &m->entries[i];
        for (uint32_t j = 0; j < e->len; j++)
            if (e->data[j] != entry_byte(e->index, j)) {
                n->bad_data++;
                break;
            }
        n->entries_checked++;
    }
    if (m->type == RAFT_MSG_SNAPSHOT) {
        for (uint32_t k = 0; k < m->len; k++)
            if (m->data[k] != snap_byte(m->log_index, m->offset + k)) {
                n->bad_data++;
                break;
            }
        n->snap_chunks++;
    }
    if (n->reply && m->type == RAFT_MSG_HEARTBEAT) {
        raft_msg r;
        memset(&r, 0, sizeof(r));
        r.type = RAFT_MSG_HEARTBEAT_RESP;
        r.from = n->id;
        r.to = m->from;
        r.term = m->term;
        r.context = m->context;
        transport_send(n->t, &r);
    }
    if (n->close_on_context_999 && m->context == 999) {
        transport_close(n->t);
        n->t = NULL;
    }
}

static int snapshot_fill(void *ctx, uint64_t snap_index, uint64_t offset, uint32_t len,
                         uint8_t *buf)
{
    node *n = ctx;
    n->fill_calls++;
    if (snap_index == 666)
        return -1; /* "snapshot gone" */
    for (uint32_t k = 0; k < len; k++)
        buf[k] = snap_byte(snap_index, offset + k);
    return 0;
}

static void on_unreachable(void *ctx, raft_id peer)
{
    node *n = ctx;
    if (peer < MAXN + 10)
        n->unreachable[peer]++;
    if (n->remove_on_unreachable)
        assert_int_equal(transport_remove_peer(n->t, peer), 0);
}

static void test_log(void *ctx, enum transport_log_level level, const char *line)
{
    node *n = ctx;
    if (strstr(line, "cluster id mismatch"))
        n->rejected_log_lines++;
    if (getenv("TRANSPORT_TEST_VERBOSE"))
        fprintf(stderr, "%s\n", line);
    (void)level;
}

static void opts_for_test(transport_options *o)
{
    transport_options_default(o);
    o->log = test_log;
    o->log_level = TRANSPORT_LOG_DEBUG;
    o->backoff_min_ms = 20;
    o->backoff_max_ms = 200;
}

static void start_node_opts(int i, raft_id id, uint64_t cluster, int port,
                            const transport_options *o)
{
    node *n = &nodes[i];
    memset(n, 0, sizeof(*n));
    n->id = id;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    cord_error err;
    int rc = transport_new(&loop, id, cluster, url, on_message, snapshot_fill, n, o, &n->t, &err);
    if (rc != 0)
        fail_msg("transport_new: %s", err.msg);
    transport_set_unreachable_cb(n->t, on_unreachable);
    n->port = transport_listen_port(n->t);
    assert_true(n->port > 0);
}

static void start_node(int i, raft_id id, uint64_t cluster, int port)
{
    transport_options o;
    opts_for_test(&o);
    start_node_opts(i, id, cluster, port, &o);
}

static void add_peer(int from, int to)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", nodes[to].port);
    cord_error err;
    int rc = transport_add_peer(nodes[from].t, nodes[to].id, url, &err);
    if (rc != 0)
        fail_msg("add_peer: %s", err.msg);
}

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until pred(arg) or timeout_ms; returns pred's final value. */
static bool run_until(bool (*pred)(void *), void *arg, uint64_t timeout_ms)
{
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, tick_cb, 5, 5); /* so each UV_RUN_ONCE returns soon */
    uv_update_time(&loop);
    uint64_t deadline = uv_now(&loop) + timeout_ms;
    bool ok;
    while (!(ok = pred(arg)) && uv_now(&loop) < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return ok;
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

static void run_for(uint64_t ms)
{
    run_until(never, NULL, ms);
}

static void walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    fprintf(stderr, "leaked handle type %s\n", uv_handle_type_name(h->type));
}

static int setup(void **state)
{
    (void)state;
    memset(nodes, 0, sizeof(nodes));
    assert_int_equal(uv_loop_init(&loop), 0);
    return 0;
}

/* Closes every transport and checks the loop ends with no handle left. */
static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < MAXN; i++) {
        if (nodes[i].t) {
            transport_close(nodes[i].t);
            nodes[i].t = NULL;
        }
    }
    for (int i = 0; i < 2000; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        if (uv_loop_close(&loop) == 0)
            return 0;
        usleep(1000);
    }
    uv_walk(&loop, walk_cb, NULL);
    fail_msg("loop still has handles after closing every transport");
    return -1;
}

static raft_msg hb(raft_id from, raft_id to, uint64_t context)
{
    raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_HEARTBEAT;
    m.from = from;
    m.to = to;
    m.term = 3;
    m.commit = 10;
    m.context = context;
    return m;
}

typedef struct want {
    int node;
    int count;
} want;

static bool received_at_least(void *arg)
{
    want *w = arg;
    return nodes[w->node].received >= w->count;
}

/* ---------------------------------------------------------------- tests */

static void test_two_exchange(void **state)
{
    (void)state;
    start_node(0, 1, CLUSTER, 0);
    start_node(1, 2, CLUSTER, 0);
    add_peer(0, 1);
    add_peer(1, 0);

    /* Heartbeats both ways, sent before any connection is up (queued). */
    for (uint64_t c = 1; c <= 100; c++) {
        raft_msg a = hb(1, 2, c), b = hb(2, 1, c);
        assert_int_equal(transport_send(nodes[0].t, &a), 0);
        assert_int_equal(transport_send(nodes[1].t, &b), 0);
    }

    /* An append with entries of assorted sizes (one of 300 KB). */
    static raft_entry ents[10];
    static uint8_t *blobs[10];
    uint32_t sizes[10] = {0, 1, 7, 100, 4096, 300000, 3, 0, 65536, 10};
    for (int i = 0; i < 10; i++) {
        blobs[i] = malloc(sizes[i] + 1);
        ents[i].term = 3;
        ents[i].index = 50 + (uint64_t)i;
        ents[i].type = RAFT_ENTRY_NORMAL;
        ents[i].len = sizes[i];
        for (uint32_t j = 0; j < sizes[i]; j++)
            blobs[i][j] = entry_byte(ents[i].index, j);
        ents[i].data = blobs[i];
    }
    raft_msg ap;
    memset(&ap, 0, sizeof(ap));
    ap.type = RAFT_MSG_APPEND;
    ap.from = 1;
    ap.to = 2;
    ap.term = 3;
    ap.log_index = 49;
    ap.log_term = 3;
    ap.commit = 45;
    ap.n_entries = 10;
    ap.entries = ents;
    assert_int_equal(transport_send(nodes[0].t, &ap), 0);
    for (int i = 0; i < 10; i++) { /* the caller's memory may go at once */
        memset(blobs[i], 0xEE, sizeof(uint8_t) * (sizes[i] + 1));
        free(blobs[i]);
    }

    /* Snapshot chunks: data filled by the callback at send time. */
    for (int k = 0; k < 4; k++) {
        raft_msg sm;
        memset(&sm, 0, sizeof(sm));
        sm.type = RAFT_MSG_SNAPSHOT;
        sm.from = 1;
        sm.to = 2;
        sm.term = 3;
        sm.log_index = 1000;
        sm.log_term = 3;
        sm.offset = (uint64_t)k * 250000;
        sm.len = 250000;
        sm.snapshot_size = 1000000;
        sm.done = k == 3;
        sm.conf.n_voters = 3;
        sm.conf.voters[0] = 1;
        sm.conf.voters[1] = 2;
        sm.conf.voters[2] = 3;
        assert_int_equal(transport_send(nodes[0].t, &sm), 0);
    }
    assert_int_equal(nodes[0].fill_calls, 4);

    /* A chunk whose snapshot is gone is dropped with ESNAPSHOT. */
    raft_msg gone;
    memset(&gone, 0, sizeof(gone));
    gone.type = RAFT_MSG_SNAPSHOT;
    gone.from = 1;
    gone.to = 2;
    gone.log_index = 666;
    gone.len = 10;
    gone.snapshot_size = 10;
    assert_int_equal(transport_send(nodes[0].t, &gone), TRANSPORT_ESNAPSHOT);

    want w1 = {1, 105}, w0 = {0, 100};
    assert_true(run_until(received_at_least, &w1, 5000));
    assert_true(run_until(received_at_least, &w0, 5000));
    assert_int_equal(nodes[1].received, 105);
    assert_int_equal(nodes[0].received, 100);
    assert_int_equal(nodes[1].out_of_order, 0);
    assert_int_equal(nodes[0].out_of_order, 0);
    assert_int_equal(nodes[1].bad_data, 0);
    assert_int_equal(nodes[1].entries_checked, 10);
    assert_int_equal(nodes[1].snap_chunks, 4);

    transport_stats st;
    transport_get_stats(nodes[0].t, &st);
    assert_int_equal(st.msgs_sent, 105);
    assert_int_equal(st.msgs_dropped, 1);
    assert_int_equal(st.dropped_invalid, 1);
    assert_int_equal(st.msgs_received, 100);
    assert_true(transport_peer_connected(nodes[0].t, 2));
    assert_true(transport_peer_connected(nodes[1].t, 1));

    /* Unknown peer, message to self, malformed message. */
    raft_msg x = hb(1, 9, 1);
    assert_int_equal(transport_send(nodes[0].t, &x), TRANSPORT_ENOPEER);
    raft_msg bad = hb(1, 2, 1);
    bad.type = 99;
    assert_int_equal(transport_send(nodes[0].t, &bad), TRANSPORT_EINVAL);
    cord_error err;
    assert_int_equal(transport_add_peer(nodes[0].t, 2, "http://127.0.0.1:1", &err),
                     TRANSPORT_EEXIST);
    assert_int_equal(transport_add_peer(nodes[0].t, 1, "http://127.0.0.1:1", &err),
                     TRANSPORT_EEXIST);
    assert_int_equal(transport_add_peer(nodes[0].t, 5, "http://exa mple.com:1", &err),
                     TRANSPORT_EINVAL);
    assert_int_equal(transport_add_peer(nodes[0].t, 5, "http://[zz::1]:1", &err), TRANSPORT_EINVAL);
    assert_int_equal(transport_add_peer(nodes[0].t, 5, "http://127.0.0.1", &err), TRANSPORT_EINVAL);
    assert_int_equal(transport_add_peer(nodes[0].t, 5, "https://127.0.0.1:1", &err),
                     TRANSPORT_EINVAL);
    assert_int_equal(transport_add_peer(nodes[0].t, 5, "http://127.0.0.1:99999", &err),
                     TRANSPORT_EINVAL);
}

static void test_three_mesh(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        start_node(i, (raft_id)(i + 1), CLUSTER, 0);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (i != j)
                add_peer(i, j);
    for (uint64_t c = 1; c <= 200; c++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
                if (i != j) {
                    raft_msg m = hb((raft_id)(i + 1), (raft_id)(j + 1), c);
                    assert_int_equal(transport_send(nodes[i].t, &m), 0);
                }
    for (int i = 0; i < 3; i++) {
        want w = {i, 400};
        assert_true(run_until(received_at_least, &w, 5000));
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(nodes[i].received, 400);
        assert_int_equal(nodes[i].out_of_order, 0);
        for (int j = 0; j < 3; j++)
            if (i != j)
                assert_int_equal(nodes[i].received_from[j + 1], 200);
    }
}

static bool unreachable_reported_0_2(void *arg)
{
    (void)arg;
    return nodes[0].unreachable[2] > 0;
}

typedef struct pump {
    uv_timer_t timer;
    uint64_t ctx;
    int ok, dropped;
} pump;

static void pump_cb(uv_timer_t *tm)
{
    pump *p = tm->data;
    if (!nodes[0].t)
        return;
    raft_msg m = hb(1, 2, ++p->ctx);
    if (transport_send(nodes[0].t, &m) == 0)
        p->ok++;
    else
        p->dropped++;
}

static bool node1_got_one(void *arg)
{
    (void)arg;
    return nodes[1].t && nodes[1].received > 0;
}

static bool t_closed(void *arg)
{
    (void)arg;
    return nodes[1].t == NULL;
}

static void test_peer_restart(void **state)
{
    (void)state;
    start_node(0, 1, CLUSTER, 0);
    start_node(1, 2, CLUSTER, 0);
    int port_b = nodes[1].port;
    add_peer(0, 1);
    add_peer(1, 0);
    raft_msg m = hb(1, 2, 1);
    assert_int_equal(transport_send(nodes[0].t, &m), 0);
    want w = {1, 1};
    assert_true(run_until(received_at_least, &w, 3000));

    /* B closes itself from inside its message callback. */
    nodes[1].close_on_context_999 = true;
    m = hb(1, 2, 999);
    assert_int_equal(transport_send(nodes[0].t, &m), 0);
    assert_true(run_until(t_closed, NULL, 3000));

    /* A notices: unreachable is reported, sends are dropped. */
    assert_true(run_until(unreachable_reported_0_2, NULL, 3000));
    static pump p;
    memset(&p, 0, sizeof(p));
    p.ctx = 1000;
    uv_timer_init(&loop, &p.timer);
    p.timer.data = &p;
    uv_timer_start(&p.timer, pump_cb, 10, 10);
    run_for(300);
    transport_stats st;
    transport_get_stats(nodes[0].t, &st);
    assert_true(st.dropped_unreachable > 0);
    assert_true(st.dial_failures >= 2); /* the broken connection and refused redials */
    assert_false(transport_peer_connected(nodes[0].t, 2));
    uint64_t dials_down = st.dials;

    /* B comes back on the same port: traffic resumes. */
    start_node(1, 2, CLUSTER, port_b);
    add_peer(1, 0);
    assert_true(run_until(node1_got_one, NULL, 3000));
    transport_get_stats(nodes[0].t, &st);
    assert_true(st.reconnects >= 1);
    assert_true(st.dials > dials_down);
    /* Backoff is bounded: 300 ms down with 20..200 ms backoff is a handful of dials. */
    assert_true(dials_down < 20);
    raft_msg back = hb(2, 1, 5);
    int before = nodes[0].received;
    assert_int_equal(transport_send(nodes[1].t, &back), 0);
    want w0 = {0, before + 1};
    assert_true(run_until(received_at_least, &w0, 3000));
    uv_timer_stop(&p.timer);
    uv_close((uv_handle_t *)&p.timer, NULL);
}

static void test_queue_full(void **state)
{
    (void)state;
    transport_options o;
    opts_for_test(&o);
    o.queue_max_msgs = 8;
    start_node_opts(0, 1, CLUSTER, 0, &o);
    start_node(1, 2, CLUSTER, 0);
    add_peer(0, 1);
    int ok = 0, full = 0;
    for (uint64_t c = 1; c <= 100; c++) {
        raft_msg m = hb(1, 2, c);
        int rc = transport_send(nodes[0].t, &m);
        if (rc == 0)
            ok++;
        else if (rc == TRANSPORT_EFULL)
            full++;
    }
    assert_int_equal(ok, 8);
    assert_int_equal(full, 92);
    transport_stats st;
    transport_get_stats(nodes[0].t, &st);
    assert_int_equal(st.dropped_queue_full, 92);
    assert_int_equal(st.msgs_dropped, 92);
    assert_int_equal(st.queued_msgs, 8);
    transport_stats ps;
    assert_int_equal(transport_get_peer_stats(nodes[0].t, 2, &ps), 0);
    assert_int_equal(ps.dropped_queue_full, 92);
    want w = {1, 8};
    assert_true(run_until(received_at_least, &w, 3000));
    run_for(50);
    assert_int_equal(nodes[1].received, 8);
    assert_int_equal(nodes[1].out_of_order, 0);
    transport_get_stats(nodes[0].t, &st);
    assert_int_equal(st.queued_msgs, 0);
    assert_int_equal(st.msgs_sent, 8);
}

static bool mismatch_seen(void *arg)
{
    (void)arg;
    transport_stats a, c;
    transport_get_stats(nodes[0].t, &a);
    transport_get_stats(nodes[2].t, &c);
    return a.handshakes_rejected > 0 && c.handshakes_rejected > 0 && nodes[0].unreachable[3] > 0;
}

static void test_cluster_mismatch(void **state)
{
    (void)state;
    start_node(0, 1, CLUSTER, 0);
    start_node(2, 3, CLUSTER + 1, 0);
    add_peer(0, 2);
    raft_msg m = hb(1, 3, 1);
    assert_int_equal(transport_send(nodes[0].t, &m), 0);
    assert_true(run_until(mismatch_seen, NULL, 3000));
    run_for(100);
    assert_int_equal(nodes[2].received, 0);
    assert_true(nodes[0].rejected_log_lines > 0); /* "rejected by peer ... cluster id mismatch" */
    assert_true(nodes[2].rejected_log_lines > 0); /* "rejected ... cluster id mismatch" */
    assert_false(transport_peer_connected(nodes[0].t, 3));

    /* Right cluster, wrong member: node 0 believes member 5 lives at node 1's URL. */
    start_node(1, 2, CLUSTER, 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", nodes[1].port);
    cord_error err;
    assert_int_equal(transport_add_peer(nodes[0].t, 5, url, &err), 0);
    raft_msg m5 = hb(1, 5, 1);
    assert_int_equal(transport_send(nodes[0].t, &m5), 0);
    transport_stats b;
    for (int i = 0; i < 300; i++) {
        transport_get_stats(nodes[1].t, &b);
        if (b.handshakes_rejected > 0 && nodes[0].unreachable[5] > 0)
            break;
        run_for(10);
    }
    assert_int_equal(b.handshakes_rejected, 1);
    assert_true(nodes[0].unreachable[5] > 0);
    assert_int_equal(nodes[1].received, 0);
}

/* ---- raw TCP clients */

typedef struct raw {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    uint8_t *data;
    size_t len;
    bool connected, eof, closed;
    size_t got;
    char rbuf[4096];
} raw;

static void raw_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    raw *r = h->data;
    (void)s;
    *b = uv_buf_init(r->rbuf, sizeof(r->rbuf));
}

static void raw_closed(uv_handle_t *h)
{
    raw *r = h->data;
    r->closed = true;
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    raw *r = s->data;
    (void)b;
    if (n > 0)
        r->got += (size_t)n;
    if (n < 0) {
        r->eof = true;
        uv_close((uv_handle_t *)&r->tcp, raw_closed);
    }
}

static void raw_written(uv_write_t *w, int status)
{
    (void)w;
    (void)status;
}

static void raw_connected(uv_connect_t *c, int status)
{
    raw *r = c->data;
    assert_int_equal(status, 0);
    r->connected = true;
    uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
    if (r->len) {
        uv_buf_t b = uv_buf_init((char *)r->data, (unsigned)r->len);
        uv_write(&r->wreq, (uv_stream_t *)&r->tcp, &b, 1, raw_written);
    }
}

static void raw_start(raw *r, int port, uint8_t *data, size_t len)
{
    memset(r, 0, sizeof(*r));
    r->data = data;
    r->len = len;
    uv_tcp_init(&loop, &r->tcp);
    r->tcp.data = r;
    r->creq.data = r;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    assert_int_equal(uv_tcp_connect(&r->creq, &r->tcp, (struct sockaddr *)&a, raw_connected), 0);
}

static bool raw_done(void *arg)
{
    return ((raw *)arg)->closed;
}

static size_t hello_frame(uint8_t *buf, uint64_t cluster, raft_id from, raft_id to)
{
    msgcodec_hello h = {cluster, from, to, ""};
    return msgcodec_encode_hello_frame(MSGCODEC_FRAME_HELLO, &h, buf);
}

static void test_garbage(void **state)
{
    (void)state;
    transport_options o;
    opts_for_test(&o);
    o.handshake_timeout_ms = 200;
    o.max_frame_bytes = 1 << 20;
    start_node(0, 1, CLUSTER, 0);
    start_node_opts(1, 2, CLUSTER, 0, &o);
    add_peer(0, 1);
    raft_msg m = hb(1, 2, 1);
    assert_int_equal(transport_send(nodes[0].t, &m), 0);
    want w = {1, 1};
    assert_true(run_until(received_at_least, &w, 3000));
    int port = nodes[1].port;

    /* 1. an HTTP request */
    static uint8_t http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    static raw r1;
    raw_start(&r1, port, http, sizeof(http) - 1);
    assert_true(run_until(raw_done, &r1, 3000));

    /* 2. random bytes */
    static uint8_t rnd[8192];
    uint64_t s = 42;
    for (size_t i = 0; i < sizeof(rnd); i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        rnd[i] = (uint8_t)s;
    }
    static raw r2;
    raw_start(&r2, port, rnd, sizeof(rnd));
    assert_true(run_until(raw_done, &r2, 3000));

    /* 3. valid magic claiming a 4 GB frame */
    static uint8_t huge[MSGCODEC_HEADER_LEN];
    memcpy(huge, MSGCODEC_MAGIC, 4);
    huge[4] = MSGCODEC_VERSION;
    huge[5] = MSGCODEC_FRAME_HELLO;
    huge[8] = huge[9] = huge[10] = huge[11] = 0xff;
    static raw r3;
    raw_start(&r3, port, huge, sizeof(huge));
    assert_true(run_until(raw_done, &r3, 3000));

    /* 4. a valid HELLO, then a MSG frame with a bad CRC */
    static uint8_t seq[512];
    size_t n = hello_frame(seq, CLUSTER, 9, 2);
    raft_msg bm = hb(9, 2, 1);
    size_t fl;
    assert_int_equal(msgcodec_encode_msg_frame(&bm, seq + n, sizeof(seq) - n, &fl), 0);
    seq[n + fl - 1] ^= 0x55;
    static raw r4;
    raw_start(&r4, port, seq, n + fl);
    assert_true(run_until(raw_done, &r4, 3000));
    assert_true(r4.got > 0); /* it did get a HELLO_ACK first */

    /* 5. a client that connects and says nothing: closed at the handshake timeout */
    static raw r5;
    raw_start(&r5, port, NULL, 0);
    assert_true(run_until(raw_done, &r5, 3000));

    /* 6. HELLO then misaddressed messages: dropped, the connection stays */
    static uint8_t seq2[512];
    size_t n2 = hello_frame(seq2, CLUSTER, 9, 2);
    raft_msg wrong_to = hb(9, 7, 1), wrong_from = hb(8, 2, 2), good = hb(9, 2, 3);
    assert_int_equal(msgcodec_encode_msg_frame(&wrong_to, seq2 + n2, sizeof(seq2) - n2, &fl), 0);
    n2 += fl;
    assert_int_equal(msgcodec_encode_msg_frame(&wrong_from, seq2 + n2, sizeof(seq2) - n2, &fl), 0);
    n2 += fl;
    assert_int_equal(msgcodec_encode_msg_frame(&good, seq2 + n2, sizeof(seq2) - n2, &fl), 0);
    n2 += fl;
    static raw r6;
    int before = nodes[1].received;
    raw_start(&r6, port, seq2, n2);
    want w6 = {1, before + 1};
    assert_true(run_until(received_at_least, &w6, 3000));
    assert_int_equal(nodes[1].received_from[9], 1);
    transport_stats st;
    transport_get_stats(nodes[1].t, &st);
    assert_int_equal(st.received_dropped, 2);
    assert_false(r6.eof);
    assert_true(st.bad_frames >= 5);
    uv_close((uv_handle_t *)&r6.tcp, raw_closed);
    assert_true(run_until(raw_done, &r6, 3000));

    /* The real peer's connection was never disturbed. */
    before = nodes[1].received;
    m = hb(1, 2, 2);
    assert_int_equal(transport_send(nodes[0].t, &m), 0);
    want w2 = {1, before + 1};
    assert_true(run_until(received_at_least, &w2, 3000));
    transport_get_stats(nodes[0].t, &st);
    assert_int_equal(st.dial_failures, 0);
    assert_int_equal(st.dials, 1);
}

static uint64_t xs(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Frames whose payloads are mutated and then resealed (valid CRC), so they
 * reach the message decoder through the transport. Each connection either
 * delivers well-formed messages or is closed; the real peer is unaffected. */
static void test_resealed_fuzz(void **state)
{
    (void)state;
    start_node(0, 1, CLUSTER, 0);
    start_node(1, 2, CLUSTER, 0);
    add_peer(0, 1);
    static raw clients[16];
    static uint8_t *streams[16];
    uint64_t s = 777;
    for (int c = 0; c < 16; c++) {
        size_t cap = 64 * 1024;
        streams[c] = malloc(cap);
        assert_non_null(streams[c]);
        size_t len = hello_frame(streams[c], CLUSTER, 9, 2);
        for (int k = 0; k < 100; k++) {
            raft_msg m = hb(9, 2, (uint64_t)k + 1);
            m.type = (uint8_t)(1 + xs(&s) % 12);
            m.index = xs(&s) % 1000;
            raft_entry e = {1, 1, 0, 8, (const uint8_t *)"abcdefgh"};
            if (m.type == RAFT_MSG_APPEND || m.type == RAFT_MSG_PROPOSE) {
                m.n_entries = 1;
                m.entries = &e;
            }
            size_t fl;
            if (msgcodec_encode_msg_frame(&m, streams[c] + len, cap - len, &fl) != 0)
                continue;
            uint32_t plen = (uint32_t)(fl - MSGCODEC_HEADER_LEN);
            int flips = (int)(xs(&s) % 3);
            for (int f = 0; f < flips; f++)
                streams[c][len + MSGCODEC_HEADER_LEN + xs(&s) % plen] ^= (uint8_t)(xs(&s) | 1);
            msgcodec_frame_seal(streams[c] + len, MSGCODEC_FRAME_MSG, plen);
            len += fl;
        }
        raw_start(&clients[c], nodes[1].port, streams[c], len);
    }
    run_for(500);
    for (int c = 0; c < 16; c++) {
        if (!clients[c].closed) {
            if (!clients[c].eof)
                uv_close((uv_handle_t *)&clients[c].tcp, raw_closed);
        }
    }
    for (int c = 0; c < 16; c++) {
        assert_true(run_until(raw_done, &clients[c], 3000));
        free(streams[c]);
    }
    transport_stats st;
    transport_get_stats(nodes[1].t, &st);
    print_message("resealed fuzz: %d delivered, %llu connections closed for bad input\n",
                  nodes[1].received_from[9], (unsigned long long)st.bad_frames);
    assert_true(st.bad_frames > 0);
    raft_msg m = hb(1, 2, 1);
    int before = nodes[1].received_from[1];
    assert_int_equal(transport_send(nodes[0].t, &m), 0);
    for (int i = 0; i < 100 && nodes[1].received_from[1] == before; i++)
        run_for(10);
    assert_int_equal(nodes[1].received_from[1], before + 1);
}

/* A stream written a few bytes at a time (one write per timer tick):
 * frames are reassembled across reads. */
typedef struct dribble {
    uv_timer_t timer;
    raw *r;
    uint8_t *data;
    size_t len, off;
    uint64_t s;
    uv_write_t reqs[4096];
    int nreq;
} dribble;

static void dribble_cb(uv_timer_t *tm)
{
    dribble *d = tm->data;
    if (!d->r->connected || d->off >= d->len || d->nreq >= 4096)
        return;
    size_t n = 1 + xs(&d->s) % 7;
    if (n > d->len - d->off)
        n = d->len - d->off;
    uv_buf_t b = uv_buf_init((char *)d->data + d->off, (unsigned)n);
    uv_write(&d->reqs[d->nreq++], (uv_stream_t *)&d->r->tcp, &b, 1, raw_written);
    d->off += n;
}

static bool node1_from9_10(void *arg)
{
    (void)arg;
    return nodes[1].received_from[9] >= 10;
}

static void test_split_frames(void **state)
{
    (void)state;
    start_node(1, 2, CLUSTER, 0);
    static uint8_t stream[8192];
    size_t len = hello_frame(stream, CLUSTER, 9, 2);
    for (int k = 0; k < 10; k++) {
        raft_msg m = hb(9, 2, (uint64_t)k + 1);
        raft_entry e = {3, 100 + (uint64_t)k, 0, 40, NULL};
        uint8_t data[40];
        for (uint32_t j = 0; j < 40; j++)
            data[j] = entry_byte(e.index, j);
        e.data = data;
        m.type = RAFT_MSG_APPEND;
        m.log_index = 99 + (uint64_t)k;
        m.n_entries = 1;
        m.entries = &e;
        size_t fl;
        assert_int_equal(msgcodec_encode_msg_frame(&m, stream + len, sizeof(stream) - len, &fl), 0);
        len += fl;
    }
    static raw r;
    raw_start(&r, nodes[1].port, NULL, 0);
    static dribble d;
    memset(&d, 0, sizeof(d));
    d.r = &r;
    d.data = stream;
    d.len = len;
    d.s = 99;
    uv_timer_init(&loop, &d.timer);
    d.timer.data = &d;
    uv_timer_start(&d.timer, dribble_cb, 1, 1);
    bool ok = run_until(node1_from9_10, NULL, 5000);
    uv_timer_stop(&d.timer);
    uv_close((uv_handle_t *)&d.timer, NULL);
    assert_true(ok);
    assert_int_equal(nodes[1].bad_data, 0);
    assert_int_equal(nodes[1].entries_checked, 10);
    assert_int_equal(nodes[1].out_of_order, 0);
    assert_false(r.eof);
    uv_close((uv_handle_t *)&r.tcp, raw_closed);
    assert_true(run_until(raw_done, &r, 3000));
}

static bool a_reconnected(void *arg)
{
    (void)arg;
    transport_stats st;
    transport_get_stats(nodes[0].t, &st);
    return st.reconnects >= 1 && transport_peer_connected(nodes[0].t, 2);
}

/* A second HELLO from the same member id replaces the older connection. */
/* A member that does not know the dialer learns its URL from the HELLO and can answer. */
static raft_id hello_from;
static char hello_url[MSGCODEC_URL_MAX + 1];
static int hello_calls;

static void on_hello_add(void *ctx, raft_id from, const char *url)
{
    node *n = ctx;
    hello_calls++;
    hello_from = from;
    snprintf(hello_url, sizeof hello_url, "%s", url);
    if (!transport_has_peer(n->t, from))
        assert_int_equal(transport_add_peer(n->t, from, url, NULL), TRANSPORT_OK);
}

static void test_hello_carries_the_url(void **state)
{
    (void)state;
    hello_calls = 0;
    start_node(0, 1, CLUSTER, 0);
    start_node(1, 2, CLUSTER, 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", nodes[0].port);
    cord_error err;
    assert_int_equal(transport_set_advertise_url(nodes[0].t, "", &err), TRANSPORT_EINVAL);
    assert_int_equal(transport_set_advertise_url(nodes[0].t, "http://a b", &err),
                     TRANSPORT_EINVAL);
    assert_int_equal(transport_set_advertise_url(nodes[0].t, url, &err), TRANSPORT_OK);
    transport_set_hello_cb(nodes[1].t, on_hello_add);
    add_peer(0, 1); /* node 1 knows nothing of node 0 */
    raft_msg m = hb(1, 2, 7);
    assert_int_equal(transport_send(nodes[0].t, &m), TRANSPORT_OK);
    want w1 = {1, 1};
    assert_true(run_until(received_at_least, &w1, 5000));
    assert_int_equal(hello_calls, 1);
    assert_true(hello_from == 1);
    assert_string_equal(hello_url, url);
    /* node 1 answers through the peer it added from the HELLO */
    m = hb(2, 1, 8);
    assert_int_equal(transport_send(nodes[1].t, &m), TRANSPORT_OK);
    want w0 = {0, 1};
    assert_true(run_until(received_at_least, &w0, 5000));
}

static void test_duplicate_hello_replaces(void **state)
{
    (void)state;
    start_node(0, 1, CLUSTER, 0);
    start_node(1, 2, CLUSTER, 0);
    add_peer(0, 1);
    raft_msg m = hb(1, 2, 1);
    assert_int_equal(transport_send(nodes[0].t, &m), 0);
    want w = {1, 1};
    assert_true(run_until(received_at_least, &w, 3000));
    static uint8_t hello[MSGCODEC_HEADER_LEN + MSGCODEC_HELLO_LEN];
    hello_frame(hello, CLUSTER, 1, 2);
    static raw r;
    raw_start(&r, nodes[1].port, hello, sizeof(hello));
    /* A's connection is closed by B; A redials, and its new HELLO replaces r. */
    assert_true(run_until(a_reconnected, NULL, 3000));
    assert_true(run_until(raw_done, &r, 3000));
    m = hb(1, 2, 2);
    assert_int_equal(transport_send(nodes[0].t, &m), 0);
    want w2 = {1, 2};
    assert_true(run_until(received_at_least, &w2, 3000));
}

static void test_unreachable_and_remove(void **state)
{
    (void)state;
    start_node(0, 1, CLUSTER, 0);
    /* A port nobody listens on: bind one, learn its number, close it. */
    start_node(1, 2, CLUSTER, 0);
    int dead_port = nodes[1].port;
    transport_close(nodes[1].t);
    nodes[1].t = NULL;
    run_for(20);
    nodes[1].port = dead_port;
    add_peer(0, 1);
    assert_true(run_until(unreachable_reported_0_2, NULL, 3000));
    raft_msg m = hb(1, 2, 1);
    int rc = transport_send(nodes[0].t, &m);
    assert_true(rc == TRANSPORT_EUNREACHABLE || rc == 0);
    run_for(300);
    transport_stats ps;
    assert_int_equal(transport_get_peer_stats(nodes[0].t, 2, &ps), 0);
    assert_true(ps.dials >= 2 && ps.dials < 20);
    assert_true(ps.dial_failures >= 2);
    assert_int_equal(transport_remove_peer(nodes[0].t, 2), 0);
    assert_int_equal(transport_remove_peer(nodes[0].t, 2), TRANSPORT_ENOPEER);
    assert_false(transport_has_peer(nodes[0].t, 2));
    assert_int_equal(transport_send(nodes[0].t, &m), TRANSPORT_ENOPEER);
    run_for(50);
}

static bool removed_0_2(void *arg)
{
    (void)arg;
    return !transport_has_peer(nodes[0].t, 2);
}

/* The member removes the peer from inside the unreachable callback. */
static void test_remove_in_callback(void **state)
{
    (void)state;
    start_node(0, 1, CLUSTER, 0);
    nodes[0].remove_on_unreachable = true;
    cord_error err;
    assert_int_equal(transport_add_peer(nodes[0].t, 2, "http://127.0.0.1:1", &err), 0);
    assert_true(run_until(removed_0_2, NULL, 3000));
    run_for(100);
    assert_int_equal(nodes[0].unreachable[2], 1);
}

/* The receiver's frame limit closes the connection; the sender's limit drops. */
static void test_frame_limits(void **state)
{
    (void)state;
    transport_options o;
    opts_for_test(&o);
    o.max_frame_bytes = 64 * 1024;
    start_node(0, 1, CLUSTER, 0);
    start_node_opts(1, 2, CLUSTER, 0, &o);
    add_peer(0, 1);
    add_peer(1, 0);
    static uint8_t big[200 * 1024];
    raft_entry e = {3, 10, RAFT_ENTRY_NORMAL, sizeof(big), big};
    for (uint32_t j = 0; j < sizeof(big); j++)
        big[j] = entry_byte(10, j);
    raft_msg ap;
    memset(&ap, 0, sizeof(ap));
    ap.type = RAFT_MSG_APPEND;
    ap.from = 1;
    ap.to = 2;
    ap.term = 3;
    ap.log_index = 9;
    ap.n_entries = 1;
    ap.entries = &e;
    assert_int_equal(transport_send(nodes[0].t, &ap), 0); /* fits A's 8 MiB limit */
    raft_msg back = ap;
    back.from = 2;
    back.to = 1;
    assert_int_equal(transport_send(nodes[1].t, &back), TRANSPORT_ETOOLARGE);
    raft_msg sm;
    memset(&sm, 0, sizeof(sm));
    sm.type = RAFT_MSG_SNAPSHOT;
    sm.from = 2;
    sm.to = 1;
    sm.log_index = 5;
    sm.len = 100 * 1024;
    sm.snapshot_size = sm.len;
    assert_int_equal(transport_send(nodes[1].t, &sm), TRANSPORT_ETOOLARGE);
    run_for(300);
    assert_int_equal(nodes[1].received, 0);
    transport_stats st;
    transport_get_stats(nodes[1].t, &st);
    assert_true(st.bad_frames >= 1);
    /* Small messages still flow after A reconnects. */
    raft_msg m = hb(1, 2, 1);
    want w = {1, 1};
    for (int i = 0; i < 100 && nodes[1].received == 0; i++) {
        transport_send(nodes[0].t, &m);
        run_until(received_at_least, &w, 20);
    }
    assert_true(nodes[1].received >= 1);
    assert_int_equal(nodes[1].bad_data, 0);
}

typedef struct soak {
    uv_timer_t timer;
    uint64_t sent, ok, full, other;
} soak;

static void soak_cb(uv_timer_t *tm)
{
    soak *k = tm->data;
    for (int i = 0; i < 1000 && k->sent < 50000; i++) {
        raft_msg m = hb(1, 2, ++k->sent);
        int rc = transport_send(nodes[0].t, &m);
        if (rc == 0)
            k->ok++;
        else if (rc == TRANSPORT_EFULL)
            k->full++;
        else
            k->other++;
    }
}

static bool soak_done(void *arg)
{
    soak *k = arg;
    return k->sent == 50000 && (uint64_t)nodes[1].received == k->ok &&
           (uint64_t)nodes[0].received == k->ok;
}

/* Pipelining under load: 50k heartbeats (each answered), in order, and
 * every one either delivered or counted as dropped. */
static void test_soak(void **state)
{
    (void)state;
    start_node(0, 1, CLUSTER, 0);
    start_node(1, 2, CLUSTER, 0);
    nodes[1].reply = true;
    add_peer(0, 1);
    add_peer(1, 0);
    static soak k;
    memset(&k, 0, sizeof(k));
    uv_timer_init(&loop, &k.timer);
    k.timer.data = &k;
    uv_timer_start(&k.timer, soak_cb, 1, 1);
    bool ok = run_until(soak_done, &k, 20000);
    uv_timer_stop(&k.timer);
    uv_close((uv_handle_t *)&k.timer, NULL);
    print_message("soak: sent %llu ok %llu full %llu other %llu; B got %d, A got %d replies\n",
                  (unsigned long long)k.sent, (unsigned long long)k.ok, (unsigned long long)k.full,
                  (unsigned long long)k.other, nodes[1].received, nodes[0].received);
    assert_true(ok);
    assert_int_equal(k.other, 0);
    assert_int_equal(nodes[1].out_of_order, 0);
    assert_int_equal(nodes[0].out_of_order, 0);
    transport_stats st;
    transport_get_stats(nodes[0].t, &st);
    assert_int_equal(st.msgs_sent, k.ok);
    assert_int_equal(st.dropped_queue_full, k.full);
}

/* A "peer" that accepts and never reads: the queue stays within its byte
 * bound (drops counted), and the missing HELLO_ACK fails the connection at
 * the handshake deadline, dropping the queue and reporting the peer. */
static uv_tcp_t sink_listener;
static uv_tcp_t sink_conns[8];
static int n_sink;

static void sink_on_conn(uv_stream_t *srv, int status)
{
    assert_int_equal(status, 0);
    if (n_sink >= 8)
        return;
    uv_tcp_init(&loop, &sink_conns[n_sink]);
    assert_int_equal(uv_accept(srv, (uv_stream_t *)&sink_conns[n_sink]), 0);
    n_sink++; /* never uv_read_start */
}

static bool unreachable_0_2(void *arg)
{
    (void)arg;
    return nodes[0].unreachable[2] > 0;
}

static void test_peer_never_reads(void **state)
{
    (void)state;
    transport_options o;
    opts_for_test(&o);
    o.queue_max_bytes = 4u << 20;
    o.handshake_timeout_ms = 1500;
    start_node_opts(0, 1, CLUSTER, 0, &o);
    n_sink = 0;
    uv_tcp_init(&loop, &sink_listener);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&sink_listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&sink_listener, 8, sink_on_conn), 0);
    struct sockaddr_storage b;
    int blen = sizeof(b);
    uv_tcp_getsockname(&sink_listener, (struct sockaddr *)&b, &blen);
    nodes[1].port = ntohs(((struct sockaddr_in *)&b)->sin_port);
    nodes[1].id = 2;
    add_peer(0, 1);
    static uint8_t chunk[256 * 1024];
    raft_entry e = {3, 10, RAFT_ENTRY_NORMAL, sizeof(chunk), chunk};
    int full = 0;
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < 8; i++) {
            raft_msg ap;
            memset(&ap, 0, sizeof(ap));
            ap.type = RAFT_MSG_APPEND;
            ap.from = 1;
            ap.to = 2;
            ap.term = 3;
            ap.log_index = 9;
            ap.n_entries = 1;
            ap.entries = &e;
            if (transport_send(nodes[0].t, &ap) == TRANSPORT_EFULL)
                full++;
        }
        run_for(10);
        transport_stats st;
        transport_get_stats(nodes[0].t, &st);
        assert_true(st.queued_bytes <= o.queue_max_bytes + sizeof(chunk) + 64);
        if (nodes[0].unreachable[2])
            break;
    }
    assert_true(full > 0);
    assert_true(run_until(unreachable_0_2, NULL, 4000));
    transport_stats st;
    transport_get_stats(nodes[0].t, &st);
    assert_int_equal(st.queued_msgs, 0);
    assert_true(st.dropped_queue_full > 0 && st.dropped_unreachable > 0);
    for (int i = 0; i < n_sink; i++)
        uv_close((uv_handle_t *)&sink_conns[i], NULL);
    uv_close((uv_handle_t *)&sink_listener, NULL);
    nodes[1].port = 0;
}

/* Peer URLs with a host name are resolved (asynchronously) before dialing;
 * removing a peer while its resolution is in flight is safe. */
static void test_hostname_peer(void **state)
{
    (void)state;
    start_node(0, 1, CLUSTER, 0);
    start_node(1, 2, CLUSTER, 0);
    char url[64];
    snprintf(url, sizeof(url), "http://localhost:%d", nodes[1].port);
    cord_error err;
    assert_int_equal(transport_add_peer(nodes[0].t, 2, url, &err), 0);
    raft_msg m = hb(1, 2, 1);
    assert_int_equal(transport_send(nodes[0].t, &m), 0); /* queued while resolving */
    want w = {1, 1};
    assert_true(run_until(received_at_least, &w, 5000));
    assert_int_equal(transport_add_peer(nodes[0].t, 3, "http://localhost:1", &err), 0);
    assert_int_equal(transport_remove_peer(nodes[0].t, 3), 0);
    assert_int_equal(transport_add_peer(nodes[0].t, 4, "http://localhost:1", &err), 0);
    /* and closing with a resolution in flight (teardown) */
}

static void test_listen_errors(void **state)
{
    (void)state;
    start_node(0, 1, CLUSTER, 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", nodes[0].port);
    transport *t = NULL;
    cord_error err;
    /* Port in use (our SO_REUSEADDR does not allow two listeners). */
    assert_int_equal(transport_new(&loop, 2, CLUSTER, url, on_message, NULL, NULL, NULL, &t, &err),
                     TRANSPORT_ELISTEN);
    assert_null(t);
    assert_int_equal(
        transport_new(&loop, 2, CLUSTER, "127.0.0.1:5", on_message, NULL, NULL, NULL, &t, &err),
        TRANSPORT_EINVAL);
    assert_non_null(strstr(err.msg, "http://"));
    assert_int_equal(transport_new(&loop, 2, CLUSTER, "http://example.com:0", on_message, NULL,
                                   NULL, NULL, &t, &err),
                     TRANSPORT_EINVAL);
    assert_non_null(strstr(err.msg, "IP address"));
    assert_int_equal(transport_new(&loop, 3, CLUSTER, "http://localhost:0", on_message, NULL, NULL,
                                   NULL, &t, &err),
                     0);
    transport_close(t);
    assert_int_equal(transport_new(&loop, 0, CLUSTER, "http://127.0.0.1:0", on_message, NULL, NULL,
                                   NULL, &t, &err),
                     TRANSPORT_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_exchange, setup, teardown),
        cmocka_unit_test_setup_teardown(test_three_mesh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_hello_replaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_carries_the_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resealed_fuzz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_and_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frame_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_soak, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_never_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostname_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listen_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
