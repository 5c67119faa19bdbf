/*
 * transport.c: Raft peer connections over TCP on a libuv loop (see transport.h).
 *
 * Object lifetimes. libuv closes handles asynchronously, so nothing that owns
 * a handle is freed before its close callback has run:
 *   - a conn owns a uv_tcp_t and a uv_timer_t; it is freed when both closed
 *     (refs == 0). Write callbacks for its pending writes run before its
 *     close callbacks, so a conn is valid in them.
 *   - a peer owns its backoff timer and holds a reference from its current
 *     outgoing conn; it is freed when both are gone.
 *   - the transport counts its live listener, peers and conns (t->live) and
 *     is freed by the last of them after transport_close().
 * Callbacks to the member are suppressed once t->closing is set.
 */
#include "transport/transport.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/msgcodec.h"

#define READ_CHUNK     (64 * 1024)
#define MAX_WRITE_BUFS 256
#define URL_MAX        256
#define URL_HOST_MAX   128

/* ------------------------------------------------------------------ types */

typedef struct frame {
    struct frame *next;
    uint32_t len;
    bool is_msg; /* a raft message (counted in stats), not a handshake */
    uint8_t data[];
} frame;

typedef struct peer peer;
typedef struct conn conn;

struct conn {
    transport *t;
    peer *p; /* outgoing: the peer that dialed it (holds a reference); NULL if incoming */
    bool outgoing;
    bool closing;
    bool connected;         /* outgoing: TCP connected */
    bool hello_done;        /* incoming: HELLO accepted; outgoing: HELLO_ACK received */
    bool close_after_write; /* incoming: REJECT being written */
    bool writing;           /* outgoing: a batch write is in flight */
    int refs;               /* handles not yet closed */
    raft_id remote_id;      /* incoming: the HELLO's from */
    char remote[64];        /* incoming: "ip:port" of the other end, for logs */
    uv_tcp_t tcp;
    uv_timer_t timer; /* handshake / dial deadline */
    uv_connect_t connect_req;
    uint8_t *rbuf;
    size_t rlen, rcap;
    size_t want;       /* bytes of the frame being received, when its header is known */
    conn *next, *prev; /* incoming list */
};

enum peer_state { PEER_DOWN = 0, PEER_CONNECTING, PEER_CONNECTED };

struct peer {
    transport *t;
    raft_id id;
    char url[URL_MAX];
    struct sockaddr_storage addr; /* when !resolve, or the last resolution */
    bool resolve;                 /* host is a name: getaddrinfo before each dial */
    char host[URL_HOST_MAX];
    char port[8];
    struct resolve_req *resolving; /* in flight (holds a reference) */
    enum peer_state state;
    conn *c;
    uv_timer_t timer; /* reconnect backoff */
    int refs;         /* timer + conn */
    bool removed;
    bool ever_acked;
    bool unreachable_reported; /* since the last dial */
    bool failure_logged;       /* since the last successful handshake */
    uint32_t backoff_ms;
    frame *q_head, *q_tail;
    uint32_t q_msgs;
    uint64_t q_bytes;
    transport_stats st;
    peer *next;
};

typedef struct resolve_req {
    uv_getaddrinfo_t req;
    peer *p;
} resolve_req;

typedef struct wreq {
    uv_write_t req;
    conn *c;
    frame *frames;
    bool batch; /* a queue batch (clears conn.writing), not a handshake frame */
    uint32_t nbufs;
    uv_buf_t bufs[];
} wreq;

struct transport {
    uv_loop_t *loop;
    raft_id self_id;
    uint64_t cluster_id;
    transport_on_message_fn on_message;
    transport_snapshot_fill_fn snapshot_fill;
    transport_unreachable_fn on_unreachable;
    transport_hello_fn on_hello;
    void *ctx;
    char self_url[MSGCODEC_URL_MAX + 1]; /* sent in our HELLOs ("" until set) */
    transport_options o;
    uint64_t rng;
    bool closing;
    int live; /* listener + peers + conns not yet freed */
    uv_tcp_t listener;
    int port;
    peer *peers;
    conn *incoming;
    msgcodec_scratch scratch;
    transport_stats st;
};

/* ---------------------------------------------------------------- helpers */

const char *transport_strerror(int err)
{
    switch (err) {
    case TRANSPORT_OK:
        return "ok";
    case TRANSPORT_EINVAL:
        return "invalid argument";
    case TRANSPORT_ENOMEM:
        return "out of memory";
    case TRANSPORT_ELISTEN:
        return "cannot listen on peer URL";
    case TRANSPORT_ENOPEER:
        return "unknown peer";
    case TRANSPORT_EEXIST:
        return "peer already exists";
    case TRANSPORT_EFULL:
        return "peer queue full, message dropped";
    case TRANSPORT_EUNREACHABLE:
        return "peer unreachable, message dropped";
    case TRANSPORT_ETOOLARGE:
        return "message larger than the frame limit, dropped";
    case TRANSPORT_ESNAPSHOT:
        return "snapshot chunk could not be read, message dropped";
    case TRANSPORT_ECLOSED:
        return "transport closed";
    default:
        return "unknown transport error";
    }
}

void transport_options_default(transport_options *o)
{
    memset(o, 0, sizeof(*o));
    o->max_frame_bytes = 8u << 20;
    o->queue_max_msgs = 4096;
    o->queue_max_bytes = 64ull << 20;
    o->write_batch_bytes = 1u << 20;
    o->backoff_min_ms = 50;
    o->backoff_max_ms = 2000;
    o->handshake_timeout_ms = 5000;
    o->max_incoming = 256;
    o->tcp_user_timeout_ms = 15000;
    o->log_level = TRANSPORT_LOG_INFO;
}

static const char *level_name(enum transport_log_level l)
{
    switch (l) {
    case TRANSPORT_LOG_DEBUG:
        return "debug";
    case TRANSPORT_LOG_INFO:
        return "info";
    case TRANSPORT_LOG_WARN:
        return "warn";
    default:
        return "error";
    }
}

__attribute__((format(printf, 3, 4))) static void tlog(transport *t, enum transport_log_level level,
                                                       const char *fmt, ...)
{
    if (level < t->o.log_level)
        return;
    char line[512];
    int n = snprintf(line, sizeof(line), "level=%s component=transport member=%" PRIx64 " ",
                     level_name(level), t->self_id);
    if (n < 0 || (size_t)n >= sizeof(line))
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (t->o.log)
        t->o.log(t->ctx, level, line);
    else
        fprintf(stderr, "%s\n", line);
}

static uint64_t rng_next(transport *t)
{
    /* splitmix64 */
    uint64_t z = (t->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Parses "http://HOST:PORT". Returns 0 with addr filled when HOST is a
 * numeric address, 1 with host/port filled when it is a name to resolve, or
 * -1 with a reason in why. host_out has URL_HOST_MAX bytes. */
static int parse_url(const char *url, struct sockaddr_storage *addr, char *host_out,
                     unsigned *port_out, const char **why)
{
    const char *prefix = "http://";
    if (!url || strncmp(url, prefix, strlen(prefix)) != 0) {
        *why = "peer URL must start with http://";
        return -1;
    }
    const char *h = url + strlen(prefix);
    char host[URL_HOST_MAX];
    const char *portstr;
    bool v6 = false;
    if (*h == '[') {
        const char *end = strchr(h, ']');
        if (!end || end[1] != ':' || (size_t)(end - h - 1) >= sizeof(host)) {
            *why = "bad IPv6 host in peer URL";
            return -1;
        }
        memcpy(host, h + 1, (size_t)(end - h - 1));
        host[end - h - 1] = 0;
        portstr = end + 2;
        v6 = true;
    } else {
        const char *colon = strrchr(h, ':');
        if (!colon || colon == h || (size_t)(colon - h) >= sizeof(host)) {
            *why = "peer URL needs HOST:PORT";
            return -1;
        }
        memcpy(host, h, (size_t)(colon - h));
        host[colon - h] = 0;
        portstr = colon + 1;
    }
    size_t plen = strlen(portstr);
    if (plen > 0 && portstr[plen - 1] == '/')
        plen--;
    if (plen == 0 || plen > 5) {
        *why = "bad port in peer URL";
        return -1;
    }
    unsigned port = 0;
    for (size_t i = 0; i < plen; i++) {
        if (portstr[i] < '0' || portstr[i] > '9') {
            *why = "bad port in peer URL";
            return -1;
        }
        port = port * 10 + (unsigned)(portstr[i] - '0');
    }
    if (port > 65535) {
        *why = "port out of range in peer URL";
        return -1;
    }
    memset(addr, 0, sizeof(*addr));
    strcpy(host_out, host);
    *port_out = port;
    int rc = v6 ? uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)addr)
                : uv_ip4_addr(host, (int)port, (struct sockaddr_in *)addr);
    if (rc == 0)
        return 0;
    if (v6) {
        *why = "bad IPv6 address in peer URL";
        return -1;
    }
    for (const char *q = host; *q; q++) {
        bool okc = (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
                   (*q >= '0' && *q <= '9') || *q == '-' || *q == '.' || *q == '_';
        if (!okc) {
            *why = "bad host name in peer URL";
            return -1;
        }
    }
    return 1;
}

static void maybe_free_transport(transport *t)
{
    if (t->closing && t->live == 0) {
        msgcodec_scratch_free(&t->scratch);
        free(t);
    }
}

static void count_drop(transport *t, peer *p, uint64_t *(*field)(transport_stats *), uint32_t n)
{
    t->st.msgs_dropped += n;
    *field(&t->st) += n;
    if (p) {
        p->st.msgs_dropped += n;
        *field(&p->st) += n;
    }
}

static uint64_t *f_full(transport_stats *s)
{
    return &s->dropped_queue_full;
}
static uint64_t *f_unreach(transport_stats *s)
{
    return &s->dropped_unreachable;
}
static uint64_t *f_invalid(transport_stats *s)
{
    return &s->dropped_invalid;
}

static void report_unreachable(peer *p)
{
    transport *t = p->t;
    if (p->unreachable_reported || t->closing || p->removed)
        return;
    p->unreachable_reported = true;
    if (t->on_unreachable)
        t->on_unreachable(t->ctx, p->id);
}

/* --------------------------------------------------------------- queueing */

static void queue_drop_all(peer *p)
{
    transport *t = p->t;
    uint32_t n = 0;
    while (p->q_head) {
        frame *f = p->q_head;
        p->q_head = f->next;
        if (f->is_msg)
            n++;
        free(f);
    }
    p->q_tail = NULL;
    t->st.queued_msgs -= p->q_msgs;
    t->st.queued_bytes -= p->q_bytes;
    p->q_msgs = 0;
    p->q_bytes = 0;
    if (n)
        count_drop(t, p, f_unreach, n);
}

static void free_frames(frame *f)
{
    while (f) {
        frame *next = f->next;
        free(f);
        f = next;
    }
}

/* ----------------------------------------------------------- connections */

static void peer_unref(peer *p);
static void peer_conn_failed(peer *p, conn *c, const char *why, int uverr);
static void peer_flush(peer *p);

static void on_conn_closed(uv_handle_t *h)
{
    conn *c = h->data;
    if (--c->refs > 0)
        return;
    transport *t = c->t;
    if (!c->outgoing) {
        if (c->prev)
            c->prev->next = c->next;
        else
            t->incoming = c->next;
        if (c->next)
            c->next->prev = c->prev;
        t->st.incoming_open--;
    }
    peer *p = c->p;
    free(c->rbuf);
    free(c);
    if (p)
        peer_unref(p);
    t->live--;
    maybe_free_transport(t);
}

static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->outgoing && c->p && c->p->c == c)
        c->p->c = NULL;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static conn *conn_new(transport *t)
{
    conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->t = t;
    if (uv_tcp_init(t->loop, &c->tcp) != 0) {
        free(c);
        return NULL;
    }
    uv_timer_init(t->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->connect_req.data = c;
    c->refs = 2;
    t->live++;
    return c;
}

/* TCP_NODELAY; keepalive; and a bound on how long sent data may stay
 * unacknowledged before the kernel fails the connection (a peer that
 * vanished without a RST would otherwise look connected for many minutes). */
static void tune_socket(conn *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, 10);
#ifdef TCP_USER_TIMEOUT
    uv_os_fd_t fd;
    if (c->t->o.tcp_user_timeout_ms && uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
        unsigned int ms = c->t->o.tcp_user_timeout_ms;
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
    }
#endif
}

static void on_write(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    conn *c = w->c;
    transport *t = c->t;
    peer *p = c->p;
    uint32_t msgs = 0;
    uint64_t bytes = 0;
    for (frame *f = w->frames; f; f = f->next) {
        if (f->is_msg) {
            msgs++;
            bytes += f->len;
        }
    }
    bool w_batch = w->batch;
    free_frames(w->frames);
    free(w);
    if (status == 0) {
        t->st.msgs_sent += msgs;
        t->st.bytes_sent += bytes;
        if (p) {
            p->st.msgs_sent += msgs;
            p->st.bytes_sent += bytes;
        }
    } else if (msgs) {
        count_drop(t, p, f_unreach, msgs);
    }
    if (w_batch)
        c->writing = false;
    if (c->closing)
        return;
    if (status < 0) {
        if (c->outgoing && p)
            peer_conn_failed(p, c, "write failed", status);
        else
            conn_close(c);
        return;
    }
    if (c->close_after_write) {
        conn_close(c);
        return;
    }
    if (c->outgoing && p)
        peer_flush(p);
}

/* Writes the frames (a list) as one uv_write. Takes ownership of them. */
static int conn_write(conn *c, frame *frames, uint32_t n, bool batch)
{
    wreq *w = malloc(sizeof(*w) + n * sizeof(uv_buf_t));
    if (!w) {
        free_frames(frames);
        return UV_ENOMEM;
    }
    w->c = c;
    w->frames = frames;
    w->batch = batch;
    w->nbufs = n;
    uint32_t i = 0;
    for (frame *f = frames; f; f = f->next)
        w->bufs[i++] = uv_buf_init((char *)f->data, f->len);
    assert(i == n);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, w->bufs, n, on_write);
    if (rc != 0) {
        free_frames(frames);
        free(w);
    }
    return rc;
}

static frame *frame_alloc(size_t len, bool is_msg)
{
    frame *f = malloc(sizeof(*f) + len);
    if (!f)
        return NULL;
    f->next = NULL;
    f->len = (uint32_t)len;
    f->is_msg = is_msg;
    return f;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn *c = h->data;
    transport *t = c->t;
    size_t limit = MSGCODEC_HEADER_LEN + (size_t)t->o.max_frame_bytes + READ_CHUNK;
    size_t need = c->rlen + READ_CHUNK;
    if (c->want > c->rlen && c->want + READ_CHUNK > need)
        need = c->want + READ_CHUNK;
    if (need > limit)
        need = limit;
    if (c->rcap < need) {
        uint8_t *nb = realloc(c->rbuf, need);
        if (nb) {
            c->rbuf = nb;
            c->rcap = need;
        }
    }
    if (c->rcap <= c->rlen) {
        *buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void incoming_fail(conn *c, const char *why)
{
    transport *t = c->t;
    t->st.bad_frames++;
    tlog(t, TRANSPORT_LOG_WARN, "event=incoming_closed remote=%s peer=%" PRIx64 " reason=\"%s\"",
         c->remote, c->remote_id, why);
    conn_close(c);
}

static void send_reject(conn *c, uint32_t reason, uint64_t dialer)
{
    transport *t = c->t;
    t->st.handshakes_rejected++;
    msgcodec_reject rj = {reason, t->cluster_id, t->self_id, dialer};
    frame *f = frame_alloc(MSGCODEC_HEADER_LEN + MSGCODEC_REJECT_LEN, false);
    if (!f) {
        conn_close(c);
        return;
    }
    msgcodec_encode_reject_frame(&rj, f->data);
    c->close_after_write = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (conn_write(c, f, 1, false) != 0)
        conn_close(c);
}

/* Handles one complete frame on an incoming connection. Returns false when
 * the connection is being closed (stop parsing). */
static bool incoming_frame(conn *c, const msgcodec_frame *f)
{
    transport *t = c->t;
    if (!c->hello_done) {
        msgcodec_hello h;
        if (f->kind != MSGCODEC_FRAME_HELLO ||
            msgcodec_decode_hello(f->payload, f->payload_len, &h) != 0) {
            incoming_fail(c, "first frame is not a valid HELLO");
            return false;
        }
        c->remote_id = h.from;
        if (h.cluster_id != t->cluster_id) {
            tlog(t, TRANSPORT_LOG_ERROR,
                 "event=handshake_rejected peer=%" PRIx64
                 " remote=%s reason=\"cluster id mismatch\" "
                 "local_cluster=%" PRIx64 " remote_cluster=%" PRIx64
                 " (check --initial-cluster-token)",
                 h.from, c->remote, t->cluster_id, h.cluster_id);
            send_reject(c, MSGCODEC_REJECT_CLUSTER_MISMATCH, h.from);
            return false;
        }
        if (h.to != t->self_id || h.from == t->self_id) {
            tlog(t, TRANSPORT_LOG_ERROR,
                 "event=handshake_rejected peer=%" PRIx64 " remote=%s reason=\"wrong member id\" "
                 "dialed_member=%" PRIx64 " (check --initial-cluster)",
                 h.from, c->remote, h.to);
            send_reject(c, MSGCODEC_REJECT_WRONG_MEMBER, h.from);
            return false;
        }
        c->hello_done = true;
        uv_timer_stop(&c->timer);
        /* A peer has one connection to us: a new one replaces an older one
         * (the peer restarted, or its old connection is half-open). */
        for (conn *o = t->incoming; o; o = o->next) {
            if (o != c && !o->closing && o->hello_done && o->remote_id == h.from) {
                tlog(t, TRANSPORT_LOG_INFO,
                     "event=incoming_replaced peer=%" PRIx64 " old_remote=%s new_remote=%s", h.from,
                     o->remote, c->remote);
                conn_close(o);
            }
        }
        msgcodec_hello ack = {t->cluster_id, t->self_id, h.from, ""};
        frame *af = frame_alloc(msgcodec_hello_frame_len(&ack), false);
        if (!af) {
            conn_close(c);
            return false;
        }
        msgcodec_encode_hello_frame(MSGCODEC_FRAME_HELLO_ACK, &ack, af->data);
        if (conn_write(c, af, 1, false) != 0) {
            conn_close(c);
            return false;
        }
        tlog(t, TRANSPORT_LOG_DEBUG, "event=incoming_accepted peer=%" PRIx64, h.from);
        if (h.url[0] && t->on_hello) {
            t->on_hello(t->ctx, h.from, h.url);
            return !c->closing && !t->closing;
        }
        return true;
    }
    if (f->kind != MSGCODEC_FRAME_MSG) {
        incoming_fail(c, "unexpected frame kind after HELLO");
        return false;
    }
    raft_msg m;
    int rc = msgcodec_decode_msg(f->payload, f->payload_len, &m, &t->scratch);
    if (rc != 0) {
        incoming_fail(c, msgcodec_strerror(rc));
        return false;
    }
    if (m.to != t->self_id || m.from != c->remote_id) {
        t->st.received_dropped++;
        tlog(t, TRANSPORT_LOG_DEBUG,
             "event=message_dropped reason=\"misaddressed\" from=%" PRIx64 " to=%" PRIx64, m.from,
             m.to);
        return true;
    }
    t->st.msgs_received++;
    t->st.bytes_received += f->frame_len;
    if (!t->closing)
        t->on_message(t->ctx, &m);
    return !c->closing && !t->closing;
}

static void on_ack_received(peer *p)
{
    transport *t = p->t;
    if (p->ever_acked) {
        t->st.reconnects++;
        p->st.reconnects++;
    }
    p->ever_acked = true;
    p->backoff_ms = t->o.backoff_min_ms;
    p->failure_logged = false;
    tlog(t, TRANSPORT_LOG_INFO, "event=peer_connected peer=%" PRIx64 " url=%s", p->id, p->url);
}

/* Handles one frame on an outgoing connection (only HELLO_ACK / REJECT). */
static bool outgoing_frame(conn *c, const msgcodec_frame *f)
{
    transport *t = c->t;
    peer *p = c->p;
    if (!c->hello_done && f->kind == MSGCODEC_FRAME_HELLO_ACK) {
        msgcodec_hello h;
        if (msgcodec_decode_hello(f->payload, f->payload_len, &h) != 0 ||
            h.cluster_id != t->cluster_id || h.from != p->id || h.to != t->self_id) {
            peer_conn_failed(p, c, "bad HELLO_ACK", 0);
            return false;
        }
        c->hello_done = true;
        uv_timer_stop(&c->timer);
        on_ack_received(p);
        return true;
    }
    if (f->kind == MSGCODEC_FRAME_REJECT) {
        msgcodec_reject rj;
        msgcodec_decode_reject(f->payload, f->payload_len, &rj);
        t->st.handshakes_rejected++;
        p->st.handshakes_rejected++;
        tlog(t, TRANSPORT_LOG_ERROR,
             "event=handshake_rejected_by_peer peer=%" PRIx64 " url=%s reason=\"%s\" "
             "local_cluster=%" PRIx64 " remote_cluster=%" PRIx64 " remote_member=%" PRIx64,
             p->id, p->url, msgcodec_reject_reason_name(rj.reason), t->cluster_id, rj.cluster_id,
             rj.from);
        p->failure_logged = true; /* the error line above says it all */
        p->backoff_ms = t->o.backoff_max_ms;
        peer_conn_failed(p, c, "rejected", 0);
        return false;
    }
    peer_conn_failed(p, c, "unexpected frame from peer", 0);
    return false;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = s->data;
    transport *t = c->t;
    if (c->closing)
        return;
    if (nread < 0) {
        if (c->outgoing)
            peer_conn_failed(c->p, c, nread == UV_EOF ? "closed by peer" : "read failed",
                             nread == UV_EOF ? 0 : (int)nread);
        else if (nread == UV_EOF)
            conn_close(c);
        else
            incoming_fail(c, nread == UV_ENOBUFS ? "out of read buffer" : uv_strerror((int)nread));
        return;
    }
    c->rlen += (size_t)nread;
    size_t off = 0;
    bool keep = true;
    c->want = 0;
    while (keep && off < c->rlen) {
        msgcodec_frame f;
        int rc = msgcodec_frame_parse(c->rbuf + off, c->rlen - off, t->o.max_frame_bytes, &f);
        if (rc == MSGCODEC_INCOMPLETE) {
            if (c->rlen - off >= MSGCODEC_HEADER_LEN) {
                uint32_t plen = (uint32_t)c->rbuf[off + 8] | (uint32_t)c->rbuf[off + 9] << 8 |
                                (uint32_t)c->rbuf[off + 10] << 16 |
                                (uint32_t)c->rbuf[off + 11] << 24;
                c->want = MSGCODEC_HEADER_LEN + (size_t)plen;
            }
            break;
        }
        if (rc < 0) {
            if (c->outgoing)
                peer_conn_failed(c->p, c, msgcodec_strerror(rc), 0);
            else
                incoming_fail(c, msgcodec_strerror(rc));
            return;
        }
        off += f.frame_len;
        keep = c->outgoing ? outgoing_frame(c, &f) : incoming_frame(c, &f);
    }
    if (c->closing)
        return;
    /* Keep the partial frame at the start of the buffer. */
    if (off > 0) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
    if (c->rlen == 0 && c->rcap > 4 * READ_CHUNK) {
        free(c->rbuf);
        c->rbuf = NULL;
        c->rcap = 0;
    }
}

static void on_incoming_timeout(uv_timer_t *tm)
{
    conn *c = tm->data;
    if (!c->hello_done)
        incoming_fail(c, "no HELLO before the handshake timeout");
}

static void on_connection(uv_stream_t *server, int status)
{
    transport *t = server->data;
    if (t->closing)
        return;
    if (status < 0) {
        tlog(t, TRANSPORT_LOG_WARN, "event=accept_failed error=\"%s\"", uv_strerror(status));
        return;
    }
    conn *c = conn_new(t);
    if (!c)
        return;
    c->next = t->incoming;
    if (t->incoming)
        t->incoming->prev = c;
    t->incoming = c;
    t->st.incoming_open++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    if (t->st.incoming_open > t->o.max_incoming) {
        tlog(t, TRANSPORT_LOG_WARN, "event=incoming_refused reason=\"too many connections\"");
        conn_close(c);
        return;
    }
    tune_socket(c);
    struct sockaddr_storage ra;
    int ralen = sizeof(ra);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ra, &ralen) == 0) {
        char ip[48] = "?";
        int rport = 0;
        if (ra.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&ra, ip, sizeof(ip));
            rport = ntohs(((struct sockaddr_in *)&ra)->sin_port);
        } else if (ra.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ra, ip, sizeof(ip));
            rport = ntohs(((struct sockaddr_in6 *)&ra)->sin6_port);
        }
        snprintf(c->remote, sizeof(c->remote), "%s:%d", ip, rport);
    } else {
        strcpy(c->remote, "?");
    }
    uv_timer_start(&c->timer, on_incoming_timeout, t->o.handshake_timeout_ms, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

/* ----------------------------------------------------------------- peers */

static void peer_dial(peer *p);

static void on_backoff(uv_timer_t *tm)
{
    peer *p = tm->data;
    if (!p->removed && !p->t->closing && p->state == PEER_DOWN)
        peer_dial(p);
}

static void peer_schedule_redial(peer *p)
{
    transport *t = p->t;
    uint32_t d = p->backoff_ms;
    uint32_t half = d / 2;
    uint64_t delay = half + rng_next(t) % ((uint64_t)(d - half) + 1);
    uint64_t next = (uint64_t)p->backoff_ms * 2;
    p->backoff_ms = next > t->o.backoff_max_ms ? t->o.backoff_max_ms : (uint32_t)next;
    uv_timer_start(&p->timer, on_backoff, delay, 0);
}

/* p cannot be talked to (resolve, dial, handshake, read or write failed):
 * drop its queue, report it, and redial after a backoff. */
static void peer_down(peer *p, bool was_up, const char *why, int uverr)
{
    transport *t = p->t;
    if (p->removed || t->closing)
        return;
    t->st.dial_failures++;
    p->st.dial_failures++;
    enum transport_log_level lvl = p->failure_logged ? TRANSPORT_LOG_DEBUG : TRANSPORT_LOG_WARN;
    p->failure_logged = true;
    tlog(t, lvl, "event=%s peer=%" PRIx64 " url=%s reason=\"%s%s%s\" retry_ms<=%u",
         was_up ? "peer_disconnected" : "dial_failed", p->id, p->url, why, uverr ? ": " : "",
         uverr ? uv_strerror(uverr) : "", p->backoff_ms);
    p->state = PEER_DOWN;
    queue_drop_all(p);
    report_unreachable(p);
    if (p->removed || t->closing) /* the callback may remove the peer or close */
        return;
    peer_schedule_redial(p);
}

/* The outgoing connection c of p failed. */
static void peer_conn_failed(peer *p, conn *c, const char *why, int uverr)
{
    if (c->closing)
        return;
    bool was_up = c->hello_done;
    conn_close(c);
    peer_down(p, was_up, why, uverr);
}

static void on_dial_timeout(uv_timer_t *tm)
{
    conn *c = tm->data;
    if (!c->closing && c->p && !c->hello_done)
        peer_conn_failed(c->p, c, "connect/handshake timeout", 0);
}

static void on_connect(uv_connect_t *req, int status)
{
    conn *c = req->data;
    if (c->closing)
        return;
    peer *p = c->p;
    transport *t = c->t;
    if (status < 0) {
        peer_conn_failed(p, c, "connect failed", status);
        return;
    }
    c->connected = true;
    p->state = PEER_CONNECTED;
    tune_socket(c);
    msgcodec_hello h = {t->cluster_id, t->self_id, p->id, ""};
    memcpy(h.url, t->self_url, sizeof h.url);
    frame *f = frame_alloc(msgcodec_hello_frame_len(&h), false);
    if (!f) {
        peer_conn_failed(p, c, "out of memory", 0);
        return;
    }
    msgcodec_encode_hello_frame(MSGCODEC_FRAME_HELLO, &h, f->data);
    int rc = conn_write(c, f, 1, false);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0) {
        peer_conn_failed(p, c, "write hello", rc);
        return;
    }
    peer_flush(p);
}

static void peer_connect(peer *p)
{
    transport *t = p->t;
    conn *c = conn_new(t);
    if (!c) {
        peer_down(p, false, "out of memory", 0);
        return;
    }
    c->outgoing = true;
    c->p = p;
    p->refs++;
    p->c = c;
    p->state = PEER_CONNECTING;
    uv_timer_start(&c->timer, on_dial_timeout, t->o.handshake_timeout_ms, 0);
    int rc =
        uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&p->addr, on_connect);
    if (rc != 0)
        peer_conn_failed(p, c, "connect", rc);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    resolve_req *rq = (resolve_req *)req;
    peer *p = rq->p;
    transport *t = p->t;
    free(rq);
    p->resolving = NULL;
    if (p->removed || t->closing) {
        if (res)
            uv_freeaddrinfo(res);
        peer_unref(p);
        return;
    }
    /* Prefer IPv4 (a listener on "localhost" is usually 127.0.0.1). */
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *a = status == 0 ? res : NULL; a; a = a->ai_next) {
        if ((a->ai_family == AF_INET || a->ai_family == AF_INET6) &&
            a->ai_addrlen <= sizeof(p->addr) &&
            (!pick || (pick->ai_family != AF_INET && a->ai_family == AF_INET)))
            pick = a;
    }
    if (!pick) {
        if (res)
            uv_freeaddrinfo(res);
        peer_down(p, false, "cannot resolve host", status < 0 ? status : UV_EAI_NONAME);
        peer_unref(p);
        return;
    }
    memset(&p->addr, 0, sizeof(p->addr));
    memcpy(&p->addr, pick->ai_addr, pick->ai_addrlen);
    uv_freeaddrinfo(res);
    peer_connect(p);
    peer_unref(p); /* the timer's reference keeps p */
}

static void peer_dial(peer *p)
{
    transport *t = p->t;
    assert(!p->c && !p->resolving);
    p->unreachable_reported = false;
    t->st.dials++;
    p->st.dials++;
    p->state = PEER_CONNECTING;
    if (!p->resolve) {
        peer_connect(p);
        return;
    }
    resolve_req *rq = calloc(1, sizeof(*rq));
    if (!rq) {
        peer_down(p, false, "out of memory", 0);
        return;
    }
    rq->p = p;
    p->refs++;
    p->resolving = rq;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = uv_getaddrinfo(t->loop, &rq->req, on_resolved, p->host, p->port, &hints);
    if (rc != 0) {
        p->resolving = NULL;
        free(rq);
        p->refs--;
        peer_down(p, false, "resolve host", rc);
    }
}

static void peer_flush(peer *p)
{
    conn *c = p->c;
    transport *t = p->t;
    if (!c || c->closing || !c->connected || c->writing || !p->q_head)
        return;
    frame *head = p->q_head, *last = NULL, *f = head;
    uint32_t n = 0, msgs = 0;
    uint64_t bytes = 0;
    while (f && n < MAX_WRITE_BUFS && (n == 0 || bytes + f->len <= t->o.write_batch_bytes)) {
        bytes += f->len;
        if (f->is_msg)
            msgs++;
        n++;
        last = f;
        f = f->next;
    }
    p->q_head = f;
    if (!f)
        p->q_tail = NULL;
    last->next = NULL;
    p->q_msgs -= msgs;
    p->q_bytes -= bytes;
    t->st.queued_msgs -= msgs;
    t->st.queued_bytes -= bytes;
    c->writing = true;
    int rc = conn_write(c, head, n, true);
    if (rc != 0) {
        c->writing = false;
        count_drop(t, p, f_unreach, msgs);
        peer_conn_failed(p, c, "write", rc);
    }
}

static void peer_unref(peer *p)
{
    if (--p->refs > 0)
        return;
    transport *t = p->t;
    free(p);
    t->live--;
    maybe_free_transport(t);
}

static void on_peer_timer_closed(uv_handle_t *h)
{
    peer_unref(h->data);
}

static peer *find_peer(const transport *t, raft_id id)
{
    for (peer *p = t->peers; p; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

static void peer_destroy(peer *p)
{
    p->removed = true;
    if (p->resolving)
        uv_cancel((uv_req_t *)&p->resolving->req); /* its callback still runs */
    queue_drop_all(p);
    if (p->c)
        conn_close(p->c);
    uv_close((uv_handle_t *)&p->timer, on_peer_timer_closed);
}

/* ------------------------------------------------------------- public API */

int transport_new(uv_loop_t *loop, raft_id self_id, uint64_t cluster_id, const char *listen_url,
                  transport_on_message_fn on_message, transport_snapshot_fill_fn snapshot_fill,
                  void *ctx, const transport_options *opts, transport **out, cord_error *err)
{
    *out = NULL;
    if (!loop || self_id == 0 || !on_message)
        return cord_error_set(err, TRANSPORT_EINVAL, 0,
                              "transport: loop, non-zero member id and on_message are required");
    struct sockaddr_storage addr;
    const char *why = NULL;
    char host[URL_HOST_MAX];
    unsigned port = 0;
    int kind = parse_url(listen_url, &addr, host, &port, &why);
    if (kind == 1 && strcmp(host, "localhost") == 0) {
        uv_ip4_addr("127.0.0.1", (int)port, (struct sockaddr_in *)&addr);
        kind = 0;
    } else if (kind == 1) {
        why = "a listen URL needs an IP address (or localhost), as in etcd";
        kind = -1;
    }
    if (kind < 0)
        return cord_error_set(err, TRANSPORT_EINVAL, 0, "transport: listen URL \"%s\": %s",
                              listen_url ? listen_url : "(null)", why);
    transport_options o;
    if (opts)
        o = *opts;
    else
        transport_options_default(&o);
    if (o.max_frame_bytes < 1024 || o.queue_max_msgs == 0 || o.backoff_min_ms == 0 ||
        o.backoff_max_ms < o.backoff_min_ms || o.write_batch_bytes == 0 ||
        o.handshake_timeout_ms == 0)
        return cord_error_set(err, TRANSPORT_EINVAL, 0, "transport: bad options");
    if (o.seed == 0)
        o.seed = self_id;

    /* Bind with plain sockets first so failure needs no asynchronous cleanup. */
    int fam = addr.ss_family;
    int fd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return cord_error_set(err, TRANSPORT_ELISTEN, errno, "transport: socket for %s",
                              listen_url);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    socklen_t alen = fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (bind(fd, (struct sockaddr *)&addr, alen) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        close(fd);
        return cord_error_set(err, TRANSPORT_ELISTEN, e, "transport: listen on %s", listen_url);
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) != 0) {
        int e = errno;
        close(fd);
        return cord_error_set(err, TRANSPORT_ELISTEN, e, "transport: getsockname %s", listen_url);
    }
    transport *t = calloc(1, sizeof(*t));
    if (!t) {
        close(fd);
        return cord_error_set(err, TRANSPORT_ENOMEM, 0, "transport: out of memory");
    }
    t->loop = loop;
    t->self_id = self_id;
    t->cluster_id = cluster_id;
    t->on_message = on_message;
    t->snapshot_fill = snapshot_fill;
    t->ctx = ctx;
    t->o = o;
    t->rng = o.seed;
    t->port = ntohs(fam == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                   : ((struct sockaddr_in6 *)&bound)->sin6_port);
    int rc = uv_tcp_init(loop, &t->listener);
    if (rc != 0) {
        close(fd);
        free(t);
        return cord_error_set(err, TRANSPORT_ELISTEN, 0, "transport: uv_tcp_init: %s",
                              uv_strerror(rc));
    }
    t->listener.data = t;
    t->live = 1;
    rc = uv_tcp_open(&t->listener, fd);
    if (rc != 0)
        close(fd);
    else
        rc = uv_listen((uv_stream_t *)&t->listener, 128, on_connection);
    if (rc != 0) {
        /* The handle exists now: it closes with the loop's next turn. */
        transport_close(t);
        return cord_error_set(err, TRANSPORT_ELISTEN, 0, "transport: listen on %s: %s", listen_url,
                              uv_strerror(rc));
    }
    tlog(t, TRANSPORT_LOG_INFO, "event=listening url=%s port=%d cluster=%" PRIx64, listen_url,
         t->port, cluster_id);
    *out = t;
    return TRANSPORT_OK;
}

int transport_listen_port(const transport *t)
{
    return t->port;
}

void transport_set_unreachable_cb(transport *t, transport_unreachable_fn fn)
{
    t->on_unreachable = fn;
}

int transport_set_advertise_url(transport *t, const char *url, cord_error *err)
{
    size_t n = url ? strlen(url) : 0;
    if (!msgcodec_url_ok(url, n))
        return cord_error_set(err, TRANSPORT_EINVAL, 0, "transport: advertise URL \"%s\": %s",
                              url ? url : "(null)",
                              n > MSGCODEC_URL_MAX ? "too long" : "empty or not printable");
    memcpy(t->self_url, url, n + 1);
    return TRANSPORT_OK;
}

void transport_set_hello_cb(transport *t, transport_hello_fn fn)
{
    t->on_hello = fn;
}

int transport_add_peer(transport *t, raft_id id, const char *url, cord_error *err)
{
    if (t->closing)
        return cord_error_set(err, TRANSPORT_ECLOSED, 0, "transport: closed");
    if (id == 0)
        return cord_error_set(err, TRANSPORT_EINVAL, 0, "transport: peer id 0");
    if (id == t->self_id || find_peer(t, id))
        return cord_error_set(err, TRANSPORT_EEXIST, 0, "transport: peer %" PRIx64 " exists", id);
    struct sockaddr_storage addr;
    const char *why = NULL;
    char host[URL_HOST_MAX];
    unsigned port = 0;
    int kind = parse_url(url, &addr, host, &port, &why);
    if (kind < 0)
        return cord_error_set(err, TRANSPORT_EINVAL, 0, "transport: peer URL \"%s\": %s",
                              url ? url : "(null)", why);
    if (strlen(url) >= URL_MAX)
        return cord_error_set(err, TRANSPORT_EINVAL, 0, "transport: peer URL too long");
    peer *p = calloc(1, sizeof(*p));
    if (!p)
        return cord_error_set(err, TRANSPORT_ENOMEM, 0, "transport: out of memory");
    p->t = t;
    p->id = id;
    strcpy(p->url, url);
    p->addr = addr;
    p->resolve = kind == 1;
    strcpy(p->host, host);
    snprintf(p->port, sizeof(p->port), "%u", port);
    p->backoff_ms = t->o.backoff_min_ms;
    uv_timer_init(t->loop, &p->timer);
    p->timer.data = p;
    p->refs = 1;
    t->live++;
    p->next = t->peers;
    t->peers = p;
    peer_dial(p);
    return TRANSPORT_OK;
}

int transport_remove_peer(transport *t, raft_id id)
{
    for (peer **pp = &t->peers; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            peer *p = *pp;
            *pp = p->next;
            peer_destroy(p);
            return TRANSPORT_OK;
        }
    }
    return TRANSPORT_ENOPEER;
}

bool transport_has_peer(const transport *t, raft_id id)
{
    return find_peer(t, id) != NULL;
}

bool transport_peer_connected(const transport *t, raft_id id)
{
    const peer *p = find_peer(t, id);
    return p && p->c && p->c->hello_done && !p->c->closing;
}

int transport_send(transport *t, const raft_msg *m)
{
    if (t->closing)
        return TRANSPORT_ECLOSED;
    peer *p = find_peer(t, m->to);
    if (!p) {
        count_drop(t, NULL, f_invalid, 1);
        return TRANSPORT_ENOPEER;
    }
    if (p->state == PEER_DOWN) {
        count_drop(t, p, f_unreach, 1);
        report_unreachable(p);
        return TRANSPORT_EUNREACHABLE;
    }
    if (p->q_msgs >= t->o.queue_max_msgs || (p->q_msgs > 0 && p->q_bytes >= t->o.queue_max_bytes)) {
        count_drop(t, p, f_full, 1);
        return TRANSPORT_EFULL;
    }
    raft_msg local = *m;
    uint8_t *chunk = NULL;
    if (m->type == RAFT_MSG_SNAPSHOT && m->len > 0 && !m->data) {
        if (m->len > t->o.max_frame_bytes) {
            count_drop(t, p, f_invalid, 1);
            return TRANSPORT_ETOOLARGE;
        }
        chunk = malloc(m->len);
        if (!chunk || !t->snapshot_fill ||
            t->snapshot_fill(t->ctx, m->log_index, m->offset, m->len, chunk) != 0) {
            free(chunk);
            count_drop(t, p, f_invalid, 1);
            tlog(t, TRANSPORT_LOG_WARN,
                 "event=snapshot_chunk_dropped peer=%" PRIx64 " index=%" PRIu64 " offset=%" PRIu64
                 " len=%u reason=\"snapshot_fill failed\"",
                 p->id, m->log_index, m->offset, m->len);
            return TRANSPORT_ESNAPSHOT;
        }
        local.data = chunk;
    }
    int ret = TRANSPORT_OK;
    size_t plen = msgcodec_msg_len(&local);
    if (plen == 0) {
        ret = TRANSPORT_EINVAL;
    } else if (plen > t->o.max_frame_bytes) {
        ret = TRANSPORT_ETOOLARGE;
    } else {
        frame *f = frame_alloc(MSGCODEC_HEADER_LEN + plen, true);
        size_t flen = 0;
        if (!f) {
            ret = TRANSPORT_ENOMEM;
        } else if (msgcodec_encode_msg_frame(&local, f->data, MSGCODEC_HEADER_LEN + plen, &flen) !=
                   0) {
            free(f);
            ret = TRANSPORT_EINVAL;
        } else {
            assert(flen == f->len);
            if (p->q_tail)
                p->q_tail->next = f;
            else
                p->q_head = f;
            p->q_tail = f;
            p->q_msgs++;
            p->q_bytes += f->len;
            t->st.queued_msgs++;
            t->st.queued_bytes += f->len;
        }
    }
    free(chunk);
    if (ret != TRANSPORT_OK) {
        count_drop(t, p, f_invalid, 1);
        tlog(t, TRANSPORT_LOG_WARN, "event=message_dropped peer=%" PRIx64 " type=%s reason=\"%s\"",
             p->id, raft_msg_type_name(m->type), transport_strerror(ret));
        return ret;
    }
    peer_flush(p);
    return TRANSPORT_OK;
}

void transport_get_stats(const transport *t, transport_stats *st)
{
    *st = t->st;
}

int transport_get_peer_stats(const transport *t, raft_id id, transport_stats *st)
{
    const peer *p = find_peer(t, id);
    if (!p)
        return TRANSPORT_ENOPEER;
    *st = p->st;
    st->queued_msgs = p->q_msgs;
    st->queued_bytes = p->q_bytes;
    return TRANSPORT_OK;
}

static void on_listener_closed(uv_handle_t *h)
{
    transport *t = h->data;
    t->live--;
    maybe_free_transport(t);
}

void transport_close(transport *t)
{
    if (!t || t->closing)
        return;
    t->closing = true;
    tlog(t, TRANSPORT_LOG_INFO, "event=closing");
    while (t->peers) {
        peer *p = t->peers;
        t->peers = p->next;
        peer_destroy(p);
    }
    for (conn *c = t->incoming; c; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&t->listener, on_listener_closed);
}
