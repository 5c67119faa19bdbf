/*
 * transport_msgcodec_test.c: the peer frame codec. Random messages round
 * trip; every truncation, random byte flips and random garbage are rejected
 * or decode to a structurally valid message, and never read out of bounds
 * (every buffer is an exact-size heap copy, so ASan sees any overread).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "transport/msgcodec.h"

#define MAX_FRAME (8u << 20)

/* MSGCODEC_FUZZ_SCALE=N multiplies the iteration counts (default 1). */
static int scale(void)
{
    const char *e = getenv("MSGCODEC_FUZZ_SCALE");
    int n = e ? atoi(e) : 1;
    return n > 0 ? n : 1;
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* A value that is often small, sometimes zero, sometimes huge. */
static uint64_t rnd_u64(uint64_t *s)
{
    switch (rnd(s) % 5) {
    case 0:
        return 0;
    case 1:
        return rnd(s) % 128;
    case 2:
        return rnd(s) % 100000;
    case 3:
        return UINT64_MAX - rnd(s) % 3;
    default:
        return rnd(s);
    }
}

typedef struct gen {
    raft_msg m;
    raft_entry entries[64];
    uint8_t *blobs[65];
} gen;

static uint8_t *rnd_blob(uint64_t *s, uint32_t len)
{
    uint8_t *b = malloc(len ? len : 1);
    assert_non_null(b);
    for (uint32_t i = 0; i < len; i++)
        b[i] = (uint8_t)rnd(s);
    return b;
}

static void fill_ids(uint64_t *s, raft_id *ids, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        ids[i] = 1000 + i * 7 + rnd(s) % 5 * 1000000; /* distinct, non-zero */
}

static void gen_msg(uint64_t *s, gen *g)
{
    memset(g, 0, sizeof(*g));
    raft_msg *m = &g->m;
    m->type = (uint8_t)(RAFT_MSG_VOTE + rnd(s) % RAFT_MSG_READ_INDEX_RESP);
    m->pre_vote = rnd(s) & 1;
    m->reject = rnd(s) & 1;
    m->force = rnd(s) & 1;
    m->done = rnd(s) & 1;
    m->from = 1 + rnd(s) % 5;
    m->to = rnd(s) % 4 == 0 ? UINT64_MAX : 1 + rnd(s) % 5;
    m->term = rnd_u64(s);
    m->log_index = rnd_u64(s);
    m->log_term = rnd_u64(s);
    m->index = rnd_u64(s);
    m->commit = rnd_u64(s);
    m->hint_index = rnd_u64(s);
    m->hint_term = rnd_u64(s);
    m->context = rnd_u64(s);
    m->offset = rnd_u64(s);
    m->snapshot_size = rnd_u64(s);
    if (rnd(s) % 3 == 0) {
        m->conf.n_voters = (uint32_t)(rnd(s) % (RAFT_MAX_MEMBERS + 1));
        m->conf.n_voters_out = (uint32_t)(rnd(s) % 4);
        m->conf.n_learners = (uint32_t)(rnd(s) % 3);
        fill_ids(s, m->conf.voters, m->conf.n_voters);
        fill_ids(s, m->conf.voters_out, m->conf.n_voters_out);
        fill_ids(s, m->conf.learners, m->conf.n_learners);
    }
    if ((m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_PROPOSE) && rnd(s) % 4 != 0) {
        m->n_entries = (uint32_t)(1 + rnd(s) % 64);
        for (uint32_t i = 0; i < m->n_entries; i++) {
            raft_entry *e = &g->entries[i];
            e->term = rnd_u64(s);
            e->index = rnd_u64(s);
            e->type = (uint8_t)(rnd(s) % 2);
            e->len = rnd(s) % 3 == 0 ? 0 : (uint32_t)(rnd(s) % (rnd(s) % 8 == 0 ? 70000 : 40));
            g->blobs[i] = rnd_blob(s, e->len);
            e->data = e->len ? g->blobs[i] : (rnd(s) & 1 ? g->blobs[i] : NULL);
        }
        m->entries = g->entries;
    }
    if (m->type == RAFT_MSG_SNAPSHOT && rnd(s) % 4 != 0) {
        m->len = (uint32_t)(1 + rnd(s) % 5000);
        g->blobs[64] = rnd_blob(s, m->len);
        m->data = g->blobs[64];
    }
}

static void gen_free(gen *g)
{
    for (int i = 0; i < 65; i++)
        free(g->blobs[i]);
}

static void assert_conf_equal(const raft_conf *a, const raft_conf *b)
{
    assert_int_equal(a->n_voters, b->n_voters);
    assert_int_equal(a->n_voters_out, b->n_voters_out);
    assert_int_equal(a->n_learners, b->n_learners);
    for (uint32_t i = 0; i < a->n_voters; i++)
        assert_true(a->voters[i] == b->voters[i]);
    for (uint32_t i = 0; i < a->n_voters_out; i++)
        assert_true(a->voters_out[i] == b->voters_out[i]);
    for (uint32_t i = 0; i < a->n_learners; i++)
        assert_true(a->learners[i] == b->learners[i]);
}

static void assert_msg_equal(const raft_msg *a, const raft_msg *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->pre_vote, b->pre_vote);
    assert_int_equal(a->reject, b->reject);
    assert_int_equal(a->force, b->force);
    assert_int_equal(a->done, b->done);
    assert_true(a->from == b->from && a->to == b->to && a->term == b->term);
    assert_true(a->log_index == b->log_index && a->log_term == b->log_term);
    assert_true(a->index == b->index && a->commit == b->commit);
    assert_true(a->hint_index == b->hint_index && a->hint_term == b->hint_term);
    assert_true(a->context == b->context && a->offset == b->offset);
    assert_true(a->snapshot_size == b->snapshot_size);
    assert_conf_equal(&a->conf, &b->conf);
    assert_int_equal(a->n_entries, b->n_entries);
    for (uint32_t i = 0; i < a->n_entries; i++) {
        const raft_entry *x = &a->entries[i], *y = &b->entries[i];
        assert_true(x->term == y->term && x->index == y->index);
        assert_int_equal(x->type, y->type);
        assert_int_equal(x->len, y->len);
        if (x->len)
            assert_memory_equal(x->data, y->data, x->len);
    }
    assert_int_equal(a->len, b->len);
    if (a->len)
        assert_memory_equal(a->data, b->data, a->len);
}

/* Encodes m into an exact-size heap frame. */
static uint8_t *encode(const raft_msg *m, size_t *flen)
{
    size_t plen = msgcodec_msg_len(m);
    assert_true(plen > 0);
    uint8_t *buf = malloc(MSGCODEC_HEADER_LEN + plen);
    assert_non_null(buf);
    assert_int_equal(msgcodec_encode_msg_frame(m, buf, MSGCODEC_HEADER_LEN + plen, flen),
                     MSGCODEC_OK);
    assert_int_equal(*flen, MSGCODEC_HEADER_LEN + plen);
    return buf;
}

/* Everything a decoded message points at lies inside [buf, buf+len). */
static void assert_points_inside(const raft_msg *m, const uint8_t *buf, size_t len)
{
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const raft_entry *e = &m->entries[i];
        assert_true(e->type <= RAFT_ENTRY_CONF);
        if (e->len) {
            assert_true(e->data >= buf && e->data + e->len <= buf + len);
        }
    }
    if (m->len)
        assert_true(m->data >= buf && m->data + m->len <= buf + len);
    assert_true(m->from != 0 && m->to != 0);
    assert_true(m->type >= RAFT_MSG_VOTE && m->type <= RAFT_MSG_READ_INDEX_RESP);
    assert_true(m->conf.n_voters <= RAFT_MAX_MEMBERS && m->conf.n_voters_out <= RAFT_MAX_MEMBERS &&
                m->conf.n_learners <= RAFT_MAX_MEMBERS);
}

/* Decodes an exact-size heap copy of payload; if it decodes, it must be a
 * valid message whose re-encoding is the same bytes (one encoding per message). */
static int try_decode(const uint8_t *payload, size_t len, msgcodec_scratch *sc)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, payload, len);
    raft_msg m;
    int rc = msgcodec_decode_msg(copy, len, &m, sc);
    if (rc == MSGCODEC_OK) {
        assert_points_inside(&m, copy, len);
        size_t flen;
        uint8_t *again = encode(&m, &flen);
        assert_int_equal(flen - MSGCODEC_HEADER_LEN, len);
        assert_memory_equal(again + MSGCODEC_HEADER_LEN, copy, len);
        free(again);
    } else {
        assert_true(rc == MSGCODEC_EMALFORMED);
    }
    free(copy);
    return rc;
}

static void test_roundtrip(void **state)
{
    (void)state;
    uint64_t s = 0x1234567;
    msgcodec_scratch sc = {0};
    for (int iter = 0; iter < 3000 * scale(); iter++) {
        gen g;
        gen_msg(&s, &g);
        size_t flen;
        uint8_t *buf = encode(&g.m, &flen);
        msgcodec_frame f;
        assert_int_equal(msgcodec_frame_parse(buf, flen, MAX_FRAME, &f), MSGCODEC_OK);
        assert_int_equal(f.kind, MSGCODEC_FRAME_MSG);
        assert_int_equal(f.frame_len, flen);
        raft_msg out;
        assert_int_equal(msgcodec_decode_msg(f.payload, f.payload_len, &out, &sc), MSGCODEC_OK);
        assert_msg_equal(&g.m, &out);
        assert_points_inside(&out, f.payload, f.payload_len);
        free(buf);
        gen_free(&g);
    }
    msgcodec_scratch_free(&sc);
}

static void test_compact(void **state)
{
    (void)state;
    raft_msg m = {0};
    m.type = RAFT_MSG_HEARTBEAT;
    m.from = 1;
    m.to = 2;
    m.term = 5;
    m.commit = 100;
    size_t plen = msgcodec_msg_len(&m);
    assert_true(plen <= 10); /* type, flags, mask(2), 4 small varints */
}

static void test_encode_rejects_invalid(void **state)
{
    (void)state;
    uint8_t buf[256];
    size_t flen;
    raft_msg m = {0};
    m.type = RAFT_MSG_SNAPSHOT;
    m.from = 1;
    m.to = 2;
    m.len = 10; /* data NULL: the transport must fill it first */
    assert_int_equal(msgcodec_encode_msg_frame(&m, buf, sizeof(buf), &flen), MSGCODEC_EINVAL);
    m.len = 0;
    m.from = 0;
    assert_int_equal(msgcodec_encode_msg_frame(&m, buf, sizeof(buf), &flen), MSGCODEC_EINVAL);
    m.from = 1;
    m.type = 0;
    assert_int_equal(msgcodec_encode_msg_frame(&m, buf, sizeof(buf), &flen), MSGCODEC_EINVAL);
    m.type = RAFT_MSG_VOTE;
    raft_entry e = {1, 1, 0, 0, NULL};
    m.n_entries = 1;
    m.entries = &e; /* entries in a VOTE */
    assert_int_equal(msgcodec_encode_msg_frame(&m, buf, sizeof(buf), &flen), MSGCODEC_EINVAL);
    m.n_entries = 0;
    m.conf.n_voters = 2;
    m.conf.voters[0] = 3;
    m.conf.voters[1] = 3; /* duplicate */
    assert_int_equal(msgcodec_encode_msg_frame(&m, buf, sizeof(buf), &flen), MSGCODEC_EINVAL);
    m.conf.voters[1] = 4;
    assert_int_equal(msgcodec_encode_msg_frame(&m, buf, 10, &flen), MSGCODEC_ETOOLARGE);
    assert_int_equal(msgcodec_encode_msg_frame(&m, buf, sizeof(buf), &flen), MSGCODEC_OK);
}

/* Every strict prefix of a valid frame is INCOMPLETE, never OK; every strict
 * prefix of a payload fails to decode. */
static void test_truncation(void **state)
{
    (void)state;
    uint64_t s = 0xabcdef;
    msgcodec_scratch sc = {0};
    for (int iter = 0; iter < 300 * scale(); iter++) {
        gen g;
        gen_msg(&s, &g);
        size_t flen;
        uint8_t *buf = encode(&g.m, &flen);
        size_t step = flen > 4000 ? flen / 1500 : 1;
        for (size_t n = 0; n < flen; n += (n < 64 ? 1 : step)) {
            uint8_t *copy = malloc(n ? n : 1);
            memcpy(copy, buf, n);
            msgcodec_frame f;
            assert_int_equal(msgcodec_frame_parse(copy, n, MAX_FRAME, &f), MSGCODEC_INCOMPLETE);
            free(copy);
        }
        size_t plen = flen - MSGCODEC_HEADER_LEN;
        for (size_t n = 0; n < plen; n += (n < 64 ? 1 : step))
            assert_int_equal(try_decode(buf + MSGCODEC_HEADER_LEN, n, &sc), MSGCODEC_EMALFORMED);
        free(buf);
        gen_free(&g);
    }
    msgcodec_scratch_free(&sc);
}

/* Flipped bytes in a frame: the CRC catches them (or the header checks).
 * Flipped bytes in a payload decoded without the CRC: rejected or valid. */
static void test_flips(void **state)
{
    (void)state;
    uint64_t s = 0x5eed;
    msgcodec_scratch sc = {0};
    int decoded = 0, rejected = 0;
    for (int iter = 0; iter < 3000 * scale(); iter++) {
        gen g;
        gen_msg(&s, &g);
        size_t flen;
        uint8_t *buf = encode(&g.m, &flen);
        int nflips = 1 + (int)(rnd(&s) % 4);
        uint8_t *bad = malloc(flen);
        memcpy(bad, buf, flen);
        for (int k = 0; k < nflips; k++) {
            size_t at = (size_t)(rnd(&s) % flen);
            uint8_t x = (uint8_t)(rnd(&s) | 1);
            /* bias flips toward the structural head of the payload */
            if (k == 0 && flen > MSGCODEC_HEADER_LEN + 4 && rnd(&s) % 2)
                at = MSGCODEC_HEADER_LEN + (size_t)(rnd(&s) % 24 % (flen - MSGCODEC_HEADER_LEN));
            bad[at] ^= x;
        }
        msgcodec_frame f;
        int rc = msgcodec_frame_parse(bad, flen, MAX_FRAME, &f);
        if (memcmp(bad, buf, flen) != 0) {
            /* payload changed or header changed: never a clean OK with the old length */
            if (rc == MSGCODEC_OK)
                assert_memory_equal(bad, buf,
                                    MSGCODEC_HEADER_LEN); /* CRC collision: only payload */
        }
        /* Bypass the CRC: the decoder alone must hold. */
        if (try_decode(bad + MSGCODEC_HEADER_LEN, flen - MSGCODEC_HEADER_LEN, &sc) == 0)
            decoded++;
        else
            rejected++;
        free(bad);
        free(buf);
        gen_free(&g);
    }
    assert_true(rejected > 0);
    print_message("flips: %d decoded to valid messages, %d rejected\n", decoded, rejected);
    msgcodec_scratch_free(&sc);
}

static void test_garbage(void **state)
{
    (void)state;
    uint64_t s = 0x9a9a9a;
    msgcodec_scratch sc = {0};
    for (int iter = 0; iter < 20000 * scale(); iter++) {
        size_t len = (size_t)(rnd(&s) % 200);
        uint8_t *b = malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++)
            b[i] = (uint8_t)rnd(&s);
        if (len > 0 && rnd(&s) % 2)
            b[0] = (uint8_t)(1 + rnd(&s) % 12); /* a plausible type */
        if (len > 1 && rnd(&s) % 2)
            b[1] &= 0x7f;
        if (len > 3 && rnd(&s) % 2)
            b[3] &= 0x0f;
        try_decode(b, len, &sc);
        msgcodec_frame f;
        int rc = msgcodec_frame_parse(b, len, MAX_FRAME, &f);
        assert_true(rc != MSGCODEC_OK || f.frame_len <= len);
        free(b);
    }
    msgcodec_scratch_free(&sc);
}

/* A HELLO may carry the sender's peer URL; one without it (24 bytes) is still valid. */
static void test_hello_url(void **state)
{
    (void)state;
    uint8_t buf[MSGCODEC_HEADER_LEN + MSGCODEC_HELLO_LEN + 2 + MSGCODEC_URL_MAX];
    msgcodec_hello h = {7, 1, 2, "http://10.0.0.5:2380"}, out;
    size_t n = msgcodec_encode_hello_frame(MSGCODEC_FRAME_HELLO, &h, buf);
    assert_int_equal(n, msgcodec_hello_frame_len(&h));
    assert_int_equal(n, MSGCODEC_HEADER_LEN + MSGCODEC_HELLO_LEN + 2 + strlen(h.url));
    msgcodec_frame f;
    assert_int_equal(msgcodec_frame_parse(buf, n, 1024, &f), MSGCODEC_OK);
    assert_int_equal(msgcodec_decode_hello(f.payload, f.payload_len, &out), MSGCODEC_OK);
    assert_true(out.cluster_id == 7 && out.from == 1 && out.to == 2);
    assert_string_equal(out.url, "http://10.0.0.5:2380");
    uint8_t p[MSGCODEC_HELLO_LEN + 2 + MSGCODEC_URL_MAX + 1];
    memcpy(p, f.payload, f.payload_len);
    size_t len = f.payload_len;
    /* a length that does not match the bytes, zero, or past the limit */
    p[24] = (uint8_t)(len - 26 + 1);
    assert_int_equal(msgcodec_decode_hello(p, len, &out), MSGCODEC_EMALFORMED);
    assert_true(out.from == 0 && out.url[0] == '\0');
    p[24] = 0;
    assert_int_equal(msgcodec_decode_hello(p, 26, &out), MSGCODEC_EMALFORMED);
    memset(p + 26, 'a', MSGCODEC_URL_MAX + 1);
    p[24] = (uint8_t)((MSGCODEC_URL_MAX + 1) & 0xff);
    p[25] = (uint8_t)((MSGCODEC_URL_MAX + 1) >> 8);
    assert_int_equal(msgcodec_decode_hello(p, 26 + MSGCODEC_URL_MAX + 1, &out),
                     MSGCODEC_EMALFORMED);
    /* a byte that is not printable ASCII, or a truncated length field */
    memcpy(p, f.payload, f.payload_len);
    p[30] = ' ';
    assert_int_equal(msgcodec_decode_hello(p, len, &out), MSGCODEC_EMALFORMED);
    p[30] = 0x80;
    assert_int_equal(msgcodec_decode_hello(p, len, &out), MSGCODEC_EMALFORMED);
    assert_int_equal(msgcodec_decode_hello(p, 25, &out), MSGCODEC_EMALFORMED);
    /* a URL too long to send is left out rather than cut */
    memset(h.url, 'u', sizeof h.url);
    assert_int_equal(msgcodec_hello_frame_len(&h), MSGCODEC_HEADER_LEN + MSGCODEC_HELLO_LEN);
}

static void test_frame_header_checks(void **state)
{
    (void)state;
    uint8_t buf[MSGCODEC_HEADER_LEN + MSGCODEC_HELLO_LEN];
    msgcodec_hello h = {7, 1, 2, ""}, out;
    size_t n = msgcodec_encode_hello_frame(MSGCODEC_FRAME_HELLO, &h, buf);
    assert_int_equal(n, sizeof(buf));
    assert_int_equal(n, msgcodec_hello_frame_len(&h));
    msgcodec_frame f;
    assert_int_equal(msgcodec_frame_parse(buf, n, 1024, &f), MSGCODEC_OK);
    assert_int_equal(f.kind, MSGCODEC_FRAME_HELLO);
    assert_int_equal(msgcodec_decode_hello(f.payload, f.payload_len, &out), 0);
    assert_true(out.cluster_id == 7 && out.from == 1 && out.to == 2);
    /* Limit below the payload: refused from the header alone. */
    assert_int_equal(msgcodec_frame_parse(buf, MSGCODEC_HEADER_LEN, 10, &f), MSGCODEC_ETOOLARGE);
    /* Garbage refused after one byte. */
    uint8_t g[1] = {'G'};
    assert_int_equal(msgcodec_frame_parse(g, 1, 1024, &f), MSGCODEC_EMAGIC);
    buf[4] = 9;
    assert_int_equal(msgcodec_frame_parse(buf, 5, 1024, &f), MSGCODEC_EVERSION);
    buf[4] = MSGCODEC_VERSION;
    buf[5] = 77;
    assert_int_equal(msgcodec_frame_parse(buf, 6, 1024, &f), MSGCODEC_EMALFORMED);
    buf[5] = MSGCODEC_FRAME_HELLO;
    buf[20] ^= 1;
    assert_int_equal(msgcodec_frame_parse(buf, n, 1024, &f), MSGCODEC_ECRC);

    uint8_t rb[MSGCODEC_HEADER_LEN + MSGCODEC_REJECT_LEN];
    msgcodec_reject rj = {MSGCODEC_REJECT_CLUSTER_MISMATCH, 9, 3, 1}, rjo;
    msgcodec_encode_reject_frame(&rj, rb);
    assert_int_equal(msgcodec_frame_parse(rb, sizeof(rb), 1024, &f), MSGCODEC_OK);
    assert_int_equal(msgcodec_decode_reject(f.payload, f.payload_len, &rjo), 0);
    assert_true(rjo.reason == rj.reason && rjo.cluster_id == 9 && rjo.from == 3 && rjo.to == 1);
}

/* Hand-made hostile payloads. */
static void test_hostile(void **state)
{
    (void)state;
    msgcodec_scratch sc = {0};
    /* APPEND claiming 2^32-1 entries in a few bytes */
    uint8_t a[] = {RAFT_MSG_APPEND, 0x20, 0x03, 0x00, 1, 2, 0xff, 0xff, 0xff, 0xff, 0x0f};
    assert_int_equal(try_decode(a, sizeof(a), &sc), MSGCODEC_EMALFORMED);
    /* entry with length beyond the payload */
    uint8_t b[] = {RAFT_MSG_APPEND, 0x20, 0x03, 0x00, 1, 2, 1, 1, 1, 0, 0xff, 0x7f};
    assert_int_equal(try_decode(b, sizeof(b), &sc), MSGCODEC_EMALFORMED);
    /* overlong varint (0x80 0x00) for from */
    uint8_t c[] = {RAFT_MSG_VOTE, 0, 0x03, 0x00, 0x81, 0x00, 2};
    assert_int_equal(try_decode(c, sizeof(c), &sc), MSGCODEC_EMALFORMED);
    /* 11-byte varint */
    uint8_t d[] = {RAFT_MSG_VOTE, 0,    0x03, 0x00, 0xff, 0xff, 0xff, 0xff,
                   0xff,          0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 2};
    assert_int_equal(try_decode(d, sizeof(d), &sc), MSGCODEC_EMALFORMED);
    /* conf with 17 voters */
    uint8_t e[] = {RAFT_MSG_SNAPSHOT, 0x10, 0x03, 0x00, 1, 2, 17, 0, 0};
    assert_int_equal(try_decode(e, sizeof(e), &sc), MSGCODEC_EMALFORMED);
    /* trailing byte */
    uint8_t f[] = {RAFT_MSG_VOTE, 0, 0x03, 0x00, 1, 2, 0};
    assert_int_equal(try_decode(f, sizeof(f), &sc), MSGCODEC_EMALFORMED);
    /* and the valid core of it */
    assert_int_equal(try_decode(f, sizeof(f) - 1, &sc), MSGCODEC_OK);
    /* data in a non-snapshot message */
    uint8_t g[] = {RAFT_MSG_VOTE, 0x40, 0x03, 0x00, 1, 2, 1, 0xaa};
    assert_int_equal(try_decode(g, sizeof(g), &sc), MSGCODEC_EMALFORMED);
    /* reserved flag bit / mask bits */
    uint8_t h[] = {RAFT_MSG_VOTE, 0x80, 0x03, 0x00, 1, 2};
    assert_int_equal(try_decode(h, sizeof(h), &sc), MSGCODEC_EMALFORMED);
    uint8_t i[] = {RAFT_MSG_VOTE, 0, 0x03, 0x10, 1, 2, 1};
    assert_int_equal(try_decode(i, sizeof(i), &sc), MSGCODEC_EMALFORMED);
    msgcodec_scratch_free(&sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_compact),
        cmocka_unit_test(test_encode_rejects_invalid),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_flips),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_hello_url),
        cmocka_unit_test(test_frame_header_checks),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
