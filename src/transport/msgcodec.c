/*
 * msgcodec.c: encoding and validating decoding of peer frames (see msgcodec.h).
 */
#include "transport/msgcodec.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/varint.h"

enum {
    FL_PRE_VOTE = 1u << 0,
    FL_REJECT = 1u << 1,
    FL_FORCE = 1u << 2,
    FL_DONE = 1u << 3,
    FL_CONF = 1u << 4,
    FL_ENTRIES = 1u << 5,
    FL_DATA = 1u << 6,
    FL_KNOWN = 0x7f,
};

#define N_U64_FIELDS 12
#define FIELDS_KNOWN ((1u << N_U64_FIELDS) - 1)

/* Smallest encoding of one entry: term, index, type, len, one byte each. */
#define MIN_ENTRY_BYTES 4

const char *msgcodec_strerror(int err)
{
    switch (err) {
    case MSGCODEC_OK:
        return "ok";
    case MSGCODEC_INCOMPLETE:
        return "incomplete frame";
    case MSGCODEC_EMAGIC:
        return "bad frame magic (not a cord peer)";
    case MSGCODEC_EVERSION:
        return "unsupported frame version";
    case MSGCODEC_ETOOLARGE:
        return "frame too large";
    case MSGCODEC_ECRC:
        return "frame checksum mismatch";
    case MSGCODEC_EMALFORMED:
        return "malformed frame payload";
    case MSGCODEC_ENOMEM:
        return "out of memory";
    case MSGCODEC_EINVAL:
        return "message is not valid";
    default:
        return "unknown msgcodec error";
    }
}

const char *msgcodec_reject_reason_name(uint32_t reason)
{
    switch (reason) {
    case MSGCODEC_REJECT_CLUSTER_MISMATCH:
        return "cluster id mismatch";
    case MSGCODEC_REJECT_WRONG_MEMBER:
        return "wrong member id";
    case MSGCODEC_REJECT_BAD_HELLO:
        return "malformed hello";
    default:
        return "unknown reason";
    }
}

/* ------------------------------------------------------------- primitives */

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* A writer that only counts when p is NULL. */
typedef struct writer {
    uint8_t *p;
    size_t n;
} writer;

static void w_u8(writer *w, uint8_t v)
{
    if (w->p)
        w->p[w->n] = v;
    w->n++;
}

static void w_varint(writer *w, uint64_t v)
{
    if (!w->p) {
        w->n += varint_len(v);
        return;
    }
    while (v >= 0x80) {
        w->p[w->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    w->p[w->n++] = (uint8_t)v;
}

static void w_bytes(writer *w, const uint8_t *b, size_t len)
{
    if (w->p && len > 0)
        memcpy(w->p + w->n, b, len);
    w->n += len;
}

typedef struct reader {
    const uint8_t *p;
    size_t len, off;
    bool bad;
} reader;

static uint8_t r_u8(reader *r)
{
    if (r->bad || r->off >= r->len) {
        r->bad = true;
        return 0;
    }
    return r->p[r->off++];
}

/* LEB128, at most 10 bytes, minimal (no trailing zero groups), fits in 64 bits. */
static uint64_t r_varint(reader *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        uint8_t b = r_u8(r);
        if (r->bad)
            return 0;
        if (i == 9 && b > 1) {
            r->bad = true;
            return 0;
        }
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (i > 0 && b == 0) { /* overlong */
                r->bad = true;
                return 0;
            }
            return v;
        }
    }
    r->bad = true;
    return 0;
}

static const uint8_t *r_bytes(reader *r, uint64_t len)
{
    if (r->bad || len > r->len - r->off) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *b = r->p + r->off;
    r->off += (size_t)len;
    return b;
}

/* ----------------------------------------------------------------- frames */

void msgcodec_frame_seal(uint8_t *buf, uint8_t kind, uint32_t payload_len)
{
    memcpy(buf, MSGCODEC_MAGIC, 4);
    buf[4] = MSGCODEC_VERSION;
    buf[5] = kind;
    buf[6] = 0;
    buf[7] = 0;
    put_u32(buf + 8, payload_len);
    uint32_t crc = crc32c(buf, 12);
    crc = crc32c_extend(crc, buf + MSGCODEC_HEADER_LEN, payload_len);
    put_u32(buf + 12, crc);
}

int msgcodec_frame_parse(const uint8_t *buf, size_t avail, uint32_t max_payload, msgcodec_frame *f)
{
    memset(f, 0, sizeof(*f));
    if (avail == 0)
        return MSGCODEC_INCOMPLETE;
    /* Check whatever prefix of the header we have, so garbage fails fast. */
    size_t m = avail < 4 ? avail : 4;
    if (memcmp(buf, MSGCODEC_MAGIC, m) != 0)
        return MSGCODEC_EMAGIC;
    if (avail > 4 && buf[4] != MSGCODEC_VERSION)
        return MSGCODEC_EVERSION;
    if (avail > 5 && (buf[5] < MSGCODEC_FRAME_HELLO || buf[5] > MSGCODEC_FRAME_MSG))
        return MSGCODEC_EMALFORMED;
    if ((avail > 6 && buf[6] != 0) || (avail > 7 && buf[7] != 0))
        return MSGCODEC_EMALFORMED;
    if (avail < MSGCODEC_HEADER_LEN)
        return MSGCODEC_INCOMPLETE;
    uint32_t plen = get_u32(buf + 8);
    if (plen > max_payload)
        return MSGCODEC_ETOOLARGE;
    if (avail - MSGCODEC_HEADER_LEN < plen)
        return MSGCODEC_INCOMPLETE;
    uint32_t crc = crc32c(buf, 12);
    crc = crc32c_extend(crc, buf + MSGCODEC_HEADER_LEN, plen);
    if (crc != get_u32(buf + 12))
        return MSGCODEC_ECRC;
    f->kind = buf[5];
    f->payload_len = plen;
    f->payload = buf + MSGCODEC_HEADER_LEN;
    f->frame_len = MSGCODEC_HEADER_LEN + (size_t)plen;
    return MSGCODEC_OK;
}

/* ----------------------------------------------------------- raft messages */

static void msg_fields(const raft_msg *m, uint64_t v[N_U64_FIELDS])
{
    v[0] = m->from;
    v[1] = m->to;
    v[2] = m->term;
    v[3] = m->log_index;
    v[4] = m->log_term;
    v[5] = m->index;
    v[6] = m->commit;
    v[7] = m->hint_index;
    v[8] = m->hint_term;
    v[9] = m->context;
    v[10] = m->offset;
    v[11] = m->snapshot_size;
}

static void msg_set_fields(raft_msg *m, const uint64_t v[N_U64_FIELDS])
{
    m->from = v[0];
    m->to = v[1];
    m->term = v[2];
    m->log_index = v[3];
    m->log_term = v[4];
    m->index = v[5];
    m->commit = v[6];
    m->hint_index = v[7];
    m->hint_term = v[8];
    m->context = v[9];
    m->offset = v[10];
    m->snapshot_size = v[11];
}

static bool ids_ok(const raft_id *ids, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (ids[i] == 0)
            return false;
        for (uint32_t j = 0; j < i; j++)
            if (ids[j] == ids[i])
                return false;
    }
    return true;
}

static bool conf_ok(const raft_conf *c)
{
    if (c->n_voters > RAFT_MAX_MEMBERS || c->n_voters_out > RAFT_MAX_MEMBERS ||
        c->n_learners > RAFT_MAX_MEMBERS)
        return false;
    return ids_ok(c->voters, c->n_voters) && ids_ok(c->voters_out, c->n_voters_out) &&
           ids_ok(c->learners, c->n_learners);
}

static bool conf_present(const raft_conf *c)
{
    return c->n_voters + c->n_voters_out + c->n_learners > 0;
}

/* The structural rules shared by encoder and decoder. */
static bool msg_ok(const raft_msg *m)
{
    if (m->type < RAFT_MSG_VOTE || m->type > RAFT_MSG_READ_INDEX_RESP)
        return false;
    if (m->from == 0 || m->to == 0)
        return false;
    if (m->n_entries > 0) {
        if (m->type != RAFT_MSG_APPEND && m->type != RAFT_MSG_PROPOSE)
            return false;
        if (!m->entries)
            return false;
        for (uint32_t i = 0; i < m->n_entries; i++) {
            const raft_entry *e = &m->entries[i];
            if (e->type > RAFT_ENTRY_CONF || (e->len > 0 && !e->data))
                return false;
        }
    }
    if (m->len > 0 && (m->type != RAFT_MSG_SNAPSHOT || !m->data))
        return false;
    return conf_ok(&m->conf);
}

static size_t encode_payload(const raft_msg *m, uint8_t *out)
{
    writer w = {out, 0};
    uint64_t v[N_U64_FIELDS];
    msg_fields(m, v);
    uint8_t flags = 0;
    if (m->pre_vote)
        flags |= FL_PRE_VOTE;
    if (m->reject)
        flags |= FL_REJECT;
    if (m->force)
        flags |= FL_FORCE;
    if (m->done)
        flags |= FL_DONE;
    if (conf_present(&m->conf))
        flags |= FL_CONF;
    if (m->n_entries > 0)
        flags |= FL_ENTRIES;
    if (m->len > 0)
        flags |= FL_DATA;
    uint16_t mask = 0;
    for (int i = 0; i < N_U64_FIELDS; i++)
        if (v[i] != 0)
            mask |= (uint16_t)(1u << i);
    w_u8(&w, m->type);
    w_u8(&w, flags);
    w_u8(&w, (uint8_t)mask);
    w_u8(&w, (uint8_t)(mask >> 8));
    for (int i = 0; i < N_U64_FIELDS; i++)
        if (v[i] != 0)
            w_varint(&w, v[i]);
    if (flags & FL_CONF) {
        const raft_conf *c = &m->conf;
        w_u8(&w, (uint8_t)c->n_voters);
        w_u8(&w, (uint8_t)c->n_voters_out);
        w_u8(&w, (uint8_t)c->n_learners);
        for (uint32_t i = 0; i < c->n_voters; i++)
            w_varint(&w, c->voters[i]);
        for (uint32_t i = 0; i < c->n_voters_out; i++)
            w_varint(&w, c->voters_out[i]);
        for (uint32_t i = 0; i < c->n_learners; i++)
            w_varint(&w, c->learners[i]);
    }
    if (flags & FL_ENTRIES) {
        w_varint(&w, m->n_entries);
        for (uint32_t i = 0; i < m->n_entries; i++) {
            const raft_entry *e = &m->entries[i];
            w_varint(&w, e->term);
            w_varint(&w, e->index);
            w_u8(&w, e->type);
            w_varint(&w, e->len);
            w_bytes(&w, e->data, e->len);
        }
    }
    if (flags & FL_DATA) {
        w_varint(&w, m->len);
        w_bytes(&w, m->data, m->len);
    }
    return w.n;
}

size_t msgcodec_msg_len(const raft_msg *m)
{
    if (!msg_ok(m))
        return 0;
    size_t n = encode_payload(m, NULL);
    return n > UINT32_MAX ? 0 : n;
}

int msgcodec_encode_msg_frame(const raft_msg *m, uint8_t *buf, size_t cap, size_t *frame_len)
{
    size_t plen = msgcodec_msg_len(m);
    if (plen == 0)
        return MSGCODEC_EINVAL;
    if (cap < MSGCODEC_HEADER_LEN || cap - MSGCODEC_HEADER_LEN < plen)
        return MSGCODEC_ETOOLARGE;
    size_t wrote = encode_payload(m, buf + MSGCODEC_HEADER_LEN);
    (void)wrote;
    msgcodec_frame_seal(buf, MSGCODEC_FRAME_MSG, (uint32_t)plen);
    *frame_len = MSGCODEC_HEADER_LEN + plen;
    return MSGCODEC_OK;
}

void msgcodec_scratch_free(msgcodec_scratch *s)
{
    free(s->entries);
    s->entries = NULL;
    s->cap = 0;
}

static bool r_ids(reader *r, raft_id *ids, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        ids[i] = r_varint(r);
    return !r->bad;
}

int msgcodec_decode_msg(const uint8_t *payload, size_t len, raft_msg *out, msgcodec_scratch *s)
{
    memset(out, 0, sizeof(*out));
    reader r = {payload, len, 0, false};
    raft_msg m;
    memset(&m, 0, sizeof(m));

    m.type = r_u8(&r);
    uint8_t flags = r_u8(&r);
    uint16_t mask = r_u8(&r);
    mask |= (uint16_t)(r_u8(&r) << 8);
    if (r.bad || (flags & ~FL_KNOWN) || (mask & ~FIELDS_KNOWN))
        return MSGCODEC_EMALFORMED;
    m.pre_vote = flags & FL_PRE_VOTE;
    m.reject = flags & FL_REJECT;
    m.force = flags & FL_FORCE;
    m.done = flags & FL_DONE;

    uint64_t v[N_U64_FIELDS] = {0};
    for (int i = 0; i < N_U64_FIELDS; i++) {
        if (mask & (1u << i)) {
            v[i] = r_varint(&r);
            if (r.bad || v[i] == 0) /* present fields are non-zero: one encoding per message */
                return MSGCODEC_EMALFORMED;
        }
    }
    msg_set_fields(&m, v);

    if (flags & FL_CONF) {
        raft_conf *c = &m.conf;
        c->n_voters = r_u8(&r);
        c->n_voters_out = r_u8(&r);
        c->n_learners = r_u8(&r);
        if (r.bad || c->n_voters > RAFT_MAX_MEMBERS || c->n_voters_out > RAFT_MAX_MEMBERS ||
            c->n_learners > RAFT_MAX_MEMBERS || !conf_present(c))
            return MSGCODEC_EMALFORMED;
        if (!r_ids(&r, c->voters, c->n_voters) || !r_ids(&r, c->voters_out, c->n_voters_out) ||
            !r_ids(&r, c->learners, c->n_learners))
            return MSGCODEC_EMALFORMED;
    }

    if (flags & FL_ENTRIES) {
        uint64_t n = r_varint(&r);
        if (r.bad || n == 0 || n > (len - r.off) / MIN_ENTRY_BYTES || n > UINT32_MAX)
            return MSGCODEC_EMALFORMED;
        if (n > s->cap) {
            raft_entry *grown = realloc(s->entries, (size_t)n * sizeof(raft_entry));
            if (!grown)
                return MSGCODEC_ENOMEM;
            s->entries = grown;
            s->cap = (uint32_t)n;
        }
        for (uint32_t i = 0; i < n; i++) {
            raft_entry *e = &s->entries[i];
            e->term = r_varint(&r);
            e->index = r_varint(&r);
            e->type = r_u8(&r);
            uint64_t elen = r_varint(&r);
            if (r.bad || e->type > RAFT_ENTRY_CONF || elen > UINT32_MAX)
                return MSGCODEC_EMALFORMED;
            e->len = (uint32_t)elen;
            e->data = elen > 0 ? r_bytes(&r, elen) : NULL;
            if (r.bad)
                return MSGCODEC_EMALFORMED;
        }
        m.n_entries = (uint32_t)n;
        m.entries = s->entries;
    }

    if (flags & FL_DATA) {
        uint64_t dlen = r_varint(&r);
        if (r.bad || dlen == 0 || dlen > UINT32_MAX)
            return MSGCODEC_EMALFORMED;
        m.len = (uint32_t)dlen;
        m.data = r_bytes(&r, dlen);
        if (r.bad)
            return MSGCODEC_EMALFORMED;
    }

    if (r.off != len || !msg_ok(&m))
        return MSGCODEC_EMALFORMED;
    *out = m;
    return MSGCODEC_OK;
}

/* ------------------------------------------------------------- handshakes */

bool msgcodec_url_ok(const char *url, size_t n)
{
    if (n == 0 || n > MSGCODEC_URL_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] < 0x21 || (unsigned char)url[i] > 0x7e)
            return false;
    return true;
}

static size_t hello_url_len(const msgcodec_hello *h)
{
    size_t n = strnlen(h->url, sizeof h->url);
    return n <= MSGCODEC_URL_MAX ? n : 0;
}

size_t msgcodec_hello_frame_len(const msgcodec_hello *h)
{
    size_t n = hello_url_len(h);
    return MSGCODEC_HEADER_LEN + MSGCODEC_HELLO_LEN + (n ? 2 + n : 0);
}

size_t msgcodec_encode_hello_frame(uint8_t kind, const msgcodec_hello *h, uint8_t *buf)
{
    uint8_t *p = buf + MSGCODEC_HEADER_LEN;
    put_u64(p, h->cluster_id);
    put_u64(p + 8, h->from);
    put_u64(p + 16, h->to);
    size_t n = hello_url_len(h), len = MSGCODEC_HELLO_LEN;
    if (n) {
        p[24] = (uint8_t)n;
        p[25] = (uint8_t)(n >> 8);
        memcpy(p + 26, h->url, n);
        len += 2 + n;
    }
    msgcodec_frame_seal(buf, kind, (uint32_t)len);
    return MSGCODEC_HEADER_LEN + len;
}

int msgcodec_decode_hello(const uint8_t *payload, size_t len, msgcodec_hello *h)
{
    memset(h, 0, sizeof(*h));
    if (len != MSGCODEC_HELLO_LEN) {
        if (len < MSGCODEC_HELLO_LEN + 2)
            return MSGCODEC_EMALFORMED;
        size_t n = (size_t)payload[24] | (size_t)payload[25] << 8;
        if (len != MSGCODEC_HELLO_LEN + 2 + n || !msgcodec_url_ok((const char *)payload + 26, n))
            return MSGCODEC_EMALFORMED;
        memcpy(h->url, payload + 26, n);
    }
    h->cluster_id = get_u64(payload);
    h->from = get_u64(payload + 8);
    h->to = get_u64(payload + 16);
    if (h->from == 0 || h->to == 0) {
        memset(h, 0, sizeof(*h));
        return MSGCODEC_EMALFORMED;
    }
    return MSGCODEC_OK;
}

size_t msgcodec_encode_reject_frame(const msgcodec_reject *rj, uint8_t *buf)
{
    uint8_t *p = buf + MSGCODEC_HEADER_LEN;
    put_u32(p, rj->reason);
    put_u64(p + 4, rj->cluster_id);
    put_u64(p + 12, rj->from);
    put_u64(p + 20, rj->to);
    msgcodec_frame_seal(buf, MSGCODEC_FRAME_REJECT, MSGCODEC_REJECT_LEN);
    return MSGCODEC_HEADER_LEN + MSGCODEC_REJECT_LEN;
}

int msgcodec_decode_reject(const uint8_t *payload, size_t len, msgcodec_reject *rj)
{
    memset(rj, 0, sizeof(*rj));
    if (len != MSGCODEC_REJECT_LEN)
        return MSGCODEC_EMALFORMED;
    rj->reason = get_u32(payload);
    rj->cluster_id = get_u64(payload + 4);
    rj->from = get_u64(payload + 12);
    rj->to = get_u64(payload + 20);
    return MSGCODEC_OK;
}
