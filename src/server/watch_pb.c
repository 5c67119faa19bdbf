/*
 * watch_pb.c — see watch_pb.h.
 */
#include "server/watch_pb.h"

#include <stdlib.h>
#include <string.h>

#include "common/varint.h"
#include "etcdserverpb/rpc.pb-c.h"
#include "mvccpb/kv.pb-c.h"

void watch_pb_init(watch_pb *p)
{
    memset(p, 0, sizeof(*p));
}

static void slot_clear(watch_pb_slot *s)
{
    free(s->key);
    free(s->bytes);
    memset(s, 0, sizeof(*s));
}

void watch_pb_free(watch_pb *p)
{
    for (size_t i = 0; i < WATCH_PB_SLOTS; i++)
        slot_clear(&p->slot[i]);
    free(p->buf);
    memset(p, 0, sizeof(*p));
}

static void fill_kv(Mvccpb__KeyValue *out, const watch_kv *kv)
{
    Mvccpb__KeyValue init = MVCCPB__KEY_VALUE__INIT;
    *out = init;
    out->key.data = (uint8_t *)kv->key.data;
    out->key.len = kv->key.len;
    out->create_revision = kv->create_revision;
    out->mod_revision = kv->mod_revision;
    out->version = kv->version;
    out->value.data = (uint8_t *)kv->value.data;
    out->value.len = kv->value.len;
    out->lease = kv->lease;
}

/* Packs one mvccpb.Event into a new buffer. */
static uint8_t *pack_event(const watch_event *e, size_t *len)
{
    Mvccpb__KeyValue kv, prev;
    Mvccpb__Event ev = MVCCPB__EVENT__INIT;
    ev.type = e->type == WATCH_EVENT_PUT ? MVCCPB__EVENT__EVENT_TYPE__PUT
                                         : MVCCPB__EVENT__EVENT_TYPE__DELETE;
    fill_kv(&kv, &e->kv);
    ev.kv = &kv;
    if (e->prev_kv) {
        fill_kv(&prev, e->prev_kv);
        ev.prev_kv = &prev;
    }
    *len = mvccpb__event__get_packed_size(&ev);
    uint8_t *b = malloc(*len ? *len : 1);
    if (b)
        mvccpb__event__pack(&ev, b);
    return b;
}

static uint64_t slot_hash(const watch_event *e)
{
    /* FNV-1a over the key, mixed with the revision and the flags */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < e->kv.key.len; i++)
        h = (h ^ e->kv.key.data[i]) * 1099511628211ull;
    h ^= (uint64_t)e->kv.mod_revision * 0x9E3779B97F4A7C15ull;
    h ^= (uint64_t)e->type << 1 ^ (e->prev_kv != NULL);
    return h ^ (h >> 29);
}

/* The packed Event: from the cache, or packed now (and cached when small). *owned when the
 * caller must free it. */
static const uint8_t *event_bytes(watch_pb *p, const watch_event *e, size_t *len, bool *owned)
{
    *owned = false;
    watch_pb_slot *s = &p->slot[slot_hash(e) % WATCH_PB_SLOTS];
    bool prev = e->prev_kv != NULL;
    if (s->bytes && s->mod_revision == e->kv.mod_revision && s->type == (int)e->type &&
        s->prev == prev && s->key_len == e->kv.key.len &&
        (s->key_len == 0 || memcmp(s->key, e->kv.key.data, s->key_len) == 0)) {
        p->hits++;
        *len = s->len;
        return s->bytes;
    }
    p->misses++;
    uint8_t *b = pack_event(e, len);
    if (!b)
        return NULL;
    if (*len > WATCH_PB_MAX_EVENT_SIZE) {
        *owned = true;
        return b;
    }
    uint8_t *k = malloc(e->kv.key.len ? e->kv.key.len : 1);
    if (!k) {
        *owned = true;
        return b;
    }
    if (e->kv.key.len)
        memcpy(k, e->kv.key.data, e->kv.key.len);
    slot_clear(s);
    *s = (watch_pb_slot){.key = k,
                         .key_len = e->kv.key.len,
                         .mod_revision = e->kv.mod_revision,
                         .type = (int)e->type,
                         .prev = prev,
                         .bytes = b,
                         .len = *len};
    return b;
}

static bool reserve(watch_pb *p, size_t need)
{
    if (need <= p->cap)
        return true;
    size_t cap = p->cap ? p->cap : 4096;
    while (cap < need)
        cap *= 2;
    uint8_t *b = realloc(p->buf, cap);
    if (!b)
        return false;
    p->buf = b;
    p->cap = cap;
    return true;
}

const uint8_t *watch_pb_events(watch_pb *p, uint64_t cluster_id, uint64_t member_id,
                               uint64_t raft_term, int64_t revision, int64_t watch_id,
                               bool fragment, const watch_event *ev, size_t n, size_t *len)
{
    if (!p->hdr_len || p->hdr_cluster != cluster_id || p->hdr_member != member_id ||
        p->hdr_term != raft_term || p->hdr_revision != revision) {
        Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
        h.cluster_id = cluster_id;
        h.member_id = member_id;
        h.revision = revision;
        h.raft_term = raft_term;
        size_t hl = etcdserverpb__response_header__get_packed_size(&h);
        if (hl > sizeof(p->hdr))
            return NULL; /* cannot be: four varints */
        etcdserverpb__response_header__pack(&h, p->hdr);
        p->hdr_len = hl;
        p->hdr_cluster = cluster_id;
        p->hdr_member = member_id;
        p->hdr_term = raft_term;
        p->hdr_revision = revision;
    }
    /* header (1), watch_id (2), fragment (7), events (11): protobuf-c's order */
    size_t total = 1 + varint_len(p->hdr_len) + p->hdr_len;
    if (watch_id != 0)
        total += 1 + varint_len((uint64_t)watch_id);
    if (fragment)
        total += 2;
    if (!reserve(p, total))
        return NULL;
    uint8_t *o = p->buf;
    *o++ = 0x0a;
    o = varint_put(o, p->hdr_len);
    memcpy(o, p->hdr, p->hdr_len);
    o += p->hdr_len;
    if (watch_id != 0) {
        *o++ = 0x10;
        o = varint_put(o, (uint64_t)watch_id);
    }
    if (fragment) {
        *o++ = 0x38;
        *o++ = 1;
    }
    size_t at = (size_t)(o - p->buf);
    for (size_t i = 0; i < n; i++) {
        size_t el = 0;
        bool owned = false;
        const uint8_t *eb = event_bytes(p, &ev[i], &el, &owned);
        if (!eb)
            return NULL;
        size_t need = at + 1 + varint_len(el) + el;
        if (!reserve(p, need)) {
            if (owned)
                free((void *)eb);
            return NULL;
        }
        o = p->buf + at;
        *o++ = 0x5a;
        o = varint_put(o, el);
        memcpy(o, eb, el);
        at = need;
        if (owned)
            free((void *)eb);
    }
    *len = at;
    return p->buf;
}
