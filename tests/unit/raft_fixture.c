/*
 * raft_fixture.c: the in-memory cluster of raft_fixture.h.
 */
#include "raft_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FX_GROW(arr, n, cap)                                                                       \
    do {                                                                                           \
        if ((n) >= (cap)) {                                                                        \
            size_t fx_nc_ = (cap) ? 2 * (cap) : 16;                                                \
            while (fx_nc_ <= (n))                                                                  \
                fx_nc_ *= 2;                                                                       \
            void *fx_p_ = realloc((arr), fx_nc_ * sizeof(*(arr)));                                 \
            assert_non_null(fx_p_);                                                                \
            (arr) = fx_p_;                                                                         \
            (cap) = fx_nc_;                                                                        \
        }                                                                                          \
    } while (0)

#define FX_PUSH(arr, n, cap, val)                                                                  \
    do {                                                                                           \
        FX_GROW(arr, n, cap);                                                                      \
        (arr)[(n)++] = (val);                                                                      \
    } while (0)

struct fx_batch {
    uint64_t seq;
    bool hs_changed;
    raft_hard_state hs;
    raft_entry *entries;
    uint32_t n_entries;
    bool has_snapshot;
    raft_snapshot_meta snapshot;
    uint8_t *snapshot_data; /* the complete pending snapshot being installed */
};

/* --------------------------------------------------------------- helpers */

static uint8_t *dup_bytes(const uint8_t *p, size_t len)
{
    if (len == 0)
        return NULL;
    assert_non_null(p);
    uint8_t *q = malloc(len);
    assert_non_null(q);
    memcpy(q, p, len);
    return q;
}

static raft_entry entry_copy(const raft_entry *e)
{
    raft_entry c = *e;
    c.data = dup_bytes(e->data, e->len);
    return c;
}

static void entry_free(raft_entry *e)
{
    free((void *)e->data);
    e->data = NULL;
}

static uint64_t fnv(uint64_t h, const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t entry_hash(const raft_entry *e)
{
    uint64_t h = 1469598103934665603ull;
    h = fnv(h, &e->term, sizeof e->term);
    h = fnv(h, &e->type, sizeof e->type);
    h = fnv(h, &e->len, sizeof e->len);
    if (e->len)
        h = fnv(h, e->data, e->len);
    return h;
}

/* ------------------------------------------------------------------ logs */

uint64_t fx_log_last(const fx_log *l)
{
    return l->base + l->n;
}

const raft_entry *fx_log_get(const fx_log *l, uint64_t index)
{
    if (index <= l->base || index > fx_log_last(l))
        return NULL;
    return &l->e[index - l->base - 1];
}

static void log_truncate(fx_log *l, uint64_t from)
{
    while (fx_log_last(l) >= from && l->n > 0) {
        entry_free(&l->e[l->n - 1]);
        l->n--;
    }
}

static void log_reset(fx_log *l, uint64_t base)
{
    log_truncate(l, 0);
    l->n = 0;
    l->base = base;
}

static void log_free(fx_log *l)
{
    log_reset(l, 0);
    free(l->e);
    l->e = NULL;
    l->cap = 0;
}

static void log_copy(fx_log *dst, const fx_log *src)
{
    log_reset(dst, src->base);
    for (size_t i = 0; i < src->n; i++)
        FX_PUSH(dst->e, dst->n, dst->cap, entry_copy(&src->e[i]));
}

/* "The log from entries[0].index on is replaced by them." */
static void log_write(fx_log *l, const raft_entry *es, uint32_t n)
{
    if (n == 0)
        return;
    uint64_t first = es[0].index;
    if (first <= l->base || first > fx_log_last(l) + 1)
        fail_msg("batch entries start at %llu but the log holds (%llu, %llu]",
                 (unsigned long long)first, (unsigned long long)l->base,
                 (unsigned long long)fx_log_last(l));
    log_truncate(l, first);
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(es[i].index, first + i);
        FX_PUSH(l->e, l->n, l->cap, entry_copy(&es[i]));
    }
}

/* --------------------------------------------------------------- matching */

static bool tri(int want, bool v)
{
    return want == FX_ANY || (want == FX_YES) == v;
}

bool fx_matches(const fx_match *mt, const raft_msg *m)
{
    if (mt->type && mt->type != m->type)
        return false;
    if (mt->from && mt->from != m->from)
        return false;
    if (mt->to && mt->to != m->to)
        return false;
    if (!tri(mt->reject, m->reject) || !tri(mt->pre_vote, m->pre_vote))
        return false;
    if (mt->pred && !mt->pred(m, mt->arg))
        return false;
    return true;
}

/* ------------------------------------------------------------- lifecycle */

raft_config fx_config(void)
{
    raft_config c;
    raft_config_default(&c);
    c.seed = 1;
    c.max_inflight_msgs = 64;
    c.max_msg_bytes = 64 * 1024;
    c.max_pending_reads = 1024;
    c.snapshot_entries = 0;
    c.trailing_entries = 0;
    c.snapshot_chunk_bytes = 64;
    /* FX_BUGS=mask turns on enum raft_bug defects (only in a core built with
     * CORD_RAFT_BUGS, i.e. raft_test_bugs): the tests must then fail. */
    const char *bugs = getenv("FX_BUGS");
    if (bugs)
        c.bugs = (uint32_t)strtoul(bugs, NULL, 0);
    return c;
}

fx_node *fx_node_of(fx *f, raft_id id)
{
    assert_true(id >= 1 && id <= FX_MAX_NODES);
    fx_node *n = &f->nodes[id];
    assert_true(n->exists);
    return n;
}

raft *fx_raft(fx *f, raft_id id)
{
    fx_node *n = fx_node_of(f, id);
    assert_true(n->up);
    return n->r;
}

static void node_init(fx *f, raft_id id, bool founding)
{
    assert_true(id >= 1 && id <= FX_MAX_NODES);
    fx_node *n = &f->nodes[id];
    assert_false(n->exists);
    memset(n, 0, sizeof *n);
    n->id = id;
    n->exists = true;
    n->founding = founding;
    n->auto_persist = true;
    n->auto_snapshot = true;
    n->auto_fetch = true;
    n->snap_size = 200;
    n->cfg = f->tmpl;
    n->cfg.id = id;
    n->cfg.seed = f->tmpl.seed * 1000003ull + id * 7919ull;
    char err[256] = "";
    raft_restore rs;
    memset(&rs, 0, sizeof rs);
    n->r = raft_new(&n->cfg, founding ? &f->bootstrap : NULL, &rs, err, sizeof err);
    if (!n->r)
        fail_msg("raft_new(%llu): %s", (unsigned long long)id, err);
    n->up = true;
    if (founding)
        n->sm_conf = f->bootstrap;
    if ((int)id > f->max_id)
        f->max_id = (int)id;
}

fx *fx_new_conf(int count, const raft_config *cfg, const raft_conf *bootstrap)
{
    assert_true(count >= 1 && count <= FX_MAX_NODES);
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->tmpl = *cfg;
    f->bootstrap = *bootstrap;
    const char *v = getenv("FX_TRACE");
    f->verbose = v && *v && *v != '0';
    for (int i = 1; i <= count; i++)
        node_init(f, (raft_id)i, true);
    raft_status st;
    raft_get_status(f->nodes[1].r, &st);
    f->boot_index = st.last_index;
    f->boot_term = st.term;
    f->boot_log_term = raft_log_term(f->nodes[1].r, st.last_index);
    for (int i = 2; i <= count; i++) {
        raft_get_status(f->nodes[i].r, &st);
        assert_int_equal(st.last_index, f->boot_index);
        assert_int_equal(st.term, f->boot_term);
    }
    return f;
}

fx *fx_new(int count, const raft_config *cfg)
{
    raft_conf c;
    memset(&c, 0, sizeof c);
    for (int i = 1; i <= count; i++)
        c.voters[c.n_voters++] = (raft_id)i;
    return fx_new_conf(count, cfg, &c);
}

void fx_add_node(fx *f, raft_id id)
{
    node_init(f, id, false);
}

static void batch_free(fx_batch *b)
{
    for (uint32_t i = 0; i < b->n_entries; i++)
        entry_free(&b->entries[i]);
    free(b->entries);
    free(b->snapshot_data);
    memset(b, 0, sizeof *b);
}

static void node_free(fx_node *n)
{
    if (!n->exists)
        return;
    if (n->up)
        raft_free(n->r);
    log_free(&n->dlog);
    log_free(&n->wlog);
    free(n->dsnap_data);
    for (size_t i = 0; i < n->n_pending; i++)
        batch_free(&n->pending[i]);
    free(n->pending);
    free(n->recv_data);
    free(n->recv_have);
    free(n->batches);
    free(n->reads);
    free(n->failed_reads);
    free(n->fetches);
    for (size_t i = 0; i < n->n_applied; i++)
        free(n->applied[i].data);
    free(n->applied);
    free(n->confs);
}

void fx_free(fx *f)
{
    if (!f)
        return;
    for (int i = 1; i <= FX_MAX_NODES; i++)
        node_free(&f->nodes[i]);
    for (size_t i = 0; i < f->n_trace; i++) {
        fx_sent *s = &f->trace[i];
        for (uint32_t k = 0; k < s->m.n_entries; k++)
            entry_free(&s->entries[k]);
        free(s->entries);
        free(s->data);
    }
    free(f->trace);
    free(f->queue);
    free(f->term_leader);
    free(f->g_term);
    free(f->g_data_hash);
    free(f->g_chain);
    free(f);
}

/* ------------------------------------------------------- state machine */

#define FX_SNAP_MAGIC  0x534e4150u /* "SNAP" */
#define FX_SNAP_HEADER 28

static uint8_t pad_byte(uint64_t index, uint64_t off)
{
    return (uint8_t)(index * 7 + off * 13 + 5);
}

static uint8_t *snapshot_encode(const fx_node *n, uint64_t size)
{
    assert_true(size >= FX_SNAP_HEADER);
    uint8_t *b = malloc(size);
    assert_non_null(b);
    uint32_t magic = FX_SNAP_MAGIC;
    memcpy(b, &magic, 4);
    memcpy(b + 4, &n->sm_applied, 8);
    memcpy(b + 12, &n->sm_applied_term, 8);
    memcpy(b + 20, &n->sm_hash, 8);
    for (uint64_t i = FX_SNAP_HEADER; i < size; i++)
        b[i] = pad_byte(n->sm_applied, i);
    return b;
}

static void g_reserve(fx *f, uint64_t index)
{
    if (index < f->cap_g)
        return;
    size_t nc = f->cap_g ? f->cap_g : 64;
    while (nc <= index)
        nc *= 2;
    f->g_term = realloc(f->g_term, nc * sizeof *f->g_term);
    f->g_data_hash = realloc(f->g_data_hash, nc * sizeof *f->g_data_hash);
    f->g_chain = realloc(f->g_chain, nc * sizeof *f->g_chain);
    assert_true(f->g_term && f->g_data_hash && f->g_chain);
    for (size_t i = f->cap_g; i < nc; i++)
        f->g_term[i] = f->g_data_hash[i] = f->g_chain[i] = 0;
    f->cap_g = nc;
}

/* No two members apply different entries at one index. */
static void check_chain(fx *f, fx_node *n, uint64_t index, uint64_t chain)
{
    g_reserve(f, index);
    if (f->g_chain[index] == 0)
        f->g_chain[index] = chain;
    else if (f->g_chain[index] != chain)
        fail_msg("safety: member %llu's state at index %llu differs from another member's",
                 (unsigned long long)n->id, (unsigned long long)index);
}

static void sm_apply(fx *f, fx_node *n, const raft_entry *e)
{
    g_reserve(f, e->index);
    uint64_t h = entry_hash(e);
    if (f->g_term[e->index] == 0) {
        f->g_term[e->index] = e->term;
        f->g_data_hash[e->index] = h;
    } else if (f->g_term[e->index] != e->term || f->g_data_hash[e->index] != h) {
        fail_msg("safety: member %llu applied (index %llu, term %llu), another applied term %llu",
                 (unsigned long long)n->id, (unsigned long long)e->index,
                 (unsigned long long)e->term, (unsigned long long)f->g_term[e->index]);
    }
    if (e->index != n->sm_applied + 1)
        fail_msg("member %llu: committed entry %llu handed out after applied %llu",
                 (unsigned long long)n->id, (unsigned long long)e->index,
                 (unsigned long long)n->sm_applied);
    n->sm_hash = fnv(n->sm_hash ? n->sm_hash : 1469598103934665603ull, &h, sizeof h);
    n->sm_applied = e->index;
    n->sm_applied_term = e->term;
    check_chain(f, n, e->index, n->sm_hash);
    if (e->type == RAFT_ENTRY_CONF) {
        raft_conf c;
        assert_int_equal(raft_conf_decode(&c, e->data, e->len), 0);
        n->sm_conf = c;
        fx_conf_rec rec = {e->index, e->term, c};
        FX_PUSH(n->confs, n->n_confs, n->cap_confs, rec);
    } else {
        assert_int_equal(e->type, RAFT_ENTRY_NORMAL);
        if (e->len > 0) {
            char *s = malloc(e->len + 1);
            assert_non_null(s);
            memcpy(s, e->data, e->len);
            s[e->len] = 0;
            fx_applied_entry a = {e->index, s};
            FX_PUSH(n->applied, n->n_applied, n->cap_applied, a);
            n->sm_normal_applied++;
        }
    }
}

static void sm_install(fx *f, fx_node *n, const raft_snapshot_meta *meta, const uint8_t *data)
{
    uint32_t magic;
    uint64_t index, term, hash;
    memcpy(&magic, data, 4);
    memcpy(&index, data + 4, 8);
    memcpy(&term, data + 12, 8);
    memcpy(&hash, data + 20, 8);
    assert_int_equal(magic, FX_SNAP_MAGIC);
    assert_int_equal(index, meta->index);
    assert_int_equal(term, meta->term);
    for (uint64_t i = FX_SNAP_HEADER; i < meta->size; i++)
        if (data[i] != pad_byte(index, i))
            fail_msg("member %llu: snapshot byte %llu corrupted", (unsigned long long)n->id,
                     (unsigned long long)i);
    check_chain(f, n, index, hash);
    n->sm_applied = index;
    n->sm_applied_term = term;
    n->sm_hash = hash;
    n->sm_conf = meta->conf;
    n->snapshots_installed++;
}

void fx_answer_fetches(fx *f, raft_id id)
{
    fx_node *n = fx_node_of(f, id);
    for (size_t k = 0; k < n->n_fetches; k++) {
        const raft_fetch *q = &n->fetches[k];
        const raft_entry *first = fx_log_get(&n->dlog, q->from);
        uint32_t cnt =
            first ? raft_entries_fitting(first, fx_log_last(&n->dlog) - q->from + 1, q->max_bytes)
                  : 0;
        assert_int_equal(raft_fetched(n->r, q->to, q->from, first, cnt), 0);
        if (cnt > 0)
            n->fetches_answered++;
    }
    n->n_fetches = 0;
}

/* ------------------------------------------------------------- tracing */

static void print_msg(const char *what, const raft_msg *m)
{
    fprintf(stderr,
            "  %s %s %llu->%llu t%llu%s%s%s li%llu lt%llu i%llu c%llu hint(%llu,%llu) ctx%llu",
            what, raft_msg_type_name(m->type), (unsigned long long)m->from,
            (unsigned long long)m->to, (unsigned long long)m->term, m->pre_vote ? " pre" : "",
            m->reject ? " REJECT" : "", m->force ? " force" : "", (unsigned long long)m->log_index,
            (unsigned long long)m->log_term, (unsigned long long)m->index,
            (unsigned long long)m->commit, (unsigned long long)m->hint_index,
            (unsigned long long)m->hint_term, (unsigned long long)m->context);
    if (m->n_entries)
        fprintf(stderr, " entries[%llu..%llu]", (unsigned long long)m->entries[0].index,
                (unsigned long long)m->entries[m->n_entries - 1].index);
    if (m->type == RAFT_MSG_SNAPSHOT || m->type == RAFT_MSG_SNAPSHOT_RESP)
        fprintf(stderr, " off%llu len%u size%llu%s", (unsigned long long)m->offset, m->len,
                (unsigned long long)m->snapshot_size, m->done ? " done" : "");
    fprintf(stderr, "\n");
}

/* ------------------------------------------------------- safety checks */

static void check_leader(fx *f, fx_node *n)
{
    raft_status st;
    raft_get_status(n->r, &st);
    if (st.commit < n->last_commit)
        fail_msg("safety: member %llu's commit went back from %llu to %llu",
                 (unsigned long long)n->id, (unsigned long long)n->last_commit,
                 (unsigned long long)st.commit);
    n->last_commit = st.commit;
    if (st.role != RAFT_LEADER)
        return;
    if (st.term >= f->cap_term_leader) {
        size_t nc = f->cap_term_leader ? f->cap_term_leader : 64;
        while (nc <= st.term)
            nc *= 2;
        f->term_leader = realloc(f->term_leader, nc * sizeof *f->term_leader);
        assert_non_null(f->term_leader);
        for (size_t i = f->cap_term_leader; i < nc; i++)
            f->term_leader[i] = 0;
        f->cap_term_leader = nc;
    }
    if (f->term_leader[st.term] == 0)
        f->term_leader[st.term] = n->id;
    else if (f->term_leader[st.term] != n->id)
        fail_msg("safety: two leaders in term %llu: %llu and %llu", (unsigned long long)st.term,
                 (unsigned long long)f->term_leader[st.term], (unsigned long long)n->id);
}

/* Every message the core emits is well formed. */
static void check_msg(const fx_node *n, const raft_msg *m)
{
    if (m->from != n->id || m->to == 0 || m->to == n->id)
        fail_msg("member %llu emitted %s from %llu to %llu", (unsigned long long)n->id,
                 raft_msg_type_name(m->type), (unsigned long long)m->from,
                 (unsigned long long)m->to);
    assert_true(m->type >= RAFT_MSG_VOTE && m->type <= RAFT_MSG_READ_INDEX_RESP);
    if (m->type == RAFT_MSG_APPEND) {
        for (uint32_t i = 0; i < m->n_entries; i++) {
            assert_int_equal(m->entries[i].index, m->log_index + 1 + i);
            assert_true(m->entries[i].term <= m->term);
            assert_true(m->entries[i].term >= (i ? m->entries[i - 1].term : m->log_term));
        }
    } else if (m->type != RAFT_MSG_PROPOSE) {
        assert_int_equal(m->n_entries, 0);
    }
    if (m->type == RAFT_MSG_SNAPSHOT) {
        assert_null(m->data);
        assert_true(m->offset + m->len <= m->snapshot_size);
        assert_true(m->done == (m->offset + m->len == m->snapshot_size));
    }
}

/* ---------------------------------------------------------------- disk */

static void disk_apply(fx_node *n, fx_batch *b)
{
    if (b->has_snapshot) {
        log_reset(&n->dlog, b->snapshot.index);
        n->has_dsnap = true;
        n->dsnap = b->snapshot;
        free(n->dsnap_data);
        n->dsnap_data = b->snapshot_data;
        b->snapshot_data = NULL;
    }
    log_write(&n->dlog, b->entries, b->n_entries);
    if (b->hs_changed)
        n->dhs = b->hs;
}

bool fx_persist_one(fx *f, raft_id id)
{
    fx_node *n = fx_node_of(f, id);
    if (n->n_pending == 0)
        return false;
    fx_batch b = n->pending[0];
    memmove(n->pending, n->pending + 1, (n->n_pending - 1) * sizeof *n->pending);
    n->n_pending--;
    disk_apply(n, &b);
    uint64_t seq = b.seq;
    batch_free(&b);
    if (f->verbose)
        fprintf(stderr, "[%llu] persisted seq %llu\n", (unsigned long long)id,
                (unsigned long long)seq);
    raft_persisted(n->r, seq);
    return true;
}

void fx_persist(fx *f, raft_id id)
{
    while (fx_persist_one(f, id)) {
    }
}

size_t fx_pending_batches(fx *f, raft_id id)
{
    return fx_node_of(f, id)->n_pending;
}

/* ------------------------------------------------------------ the loop */

static void recv_reserve(fx_node *n, size_t size)
{
    if (size <= n->recv_cap)
        return;
    n->recv_data = realloc(n->recv_data, size);
    n->recv_have = realloc(n->recv_have, size);
    assert_true(n->recv_data && n->recv_have);
    memset(n->recv_have + n->recv_cap, 0, size - n->recv_cap);
    n->recv_cap = size;
}

static void record_message(fx *f, fx_node *n, const raft_msg *m)
{
    check_msg(n, m);
    fx_sent s;
    memset(&s, 0, sizeof s);
    s.m = *m;
    s.ordinal = f->n_trace;
    if (m->n_entries) {
        s.entries = calloc(m->n_entries, sizeof *s.entries);
        assert_non_null(s.entries);
        for (uint32_t i = 0; i < m->n_entries; i++)
            s.entries[i] = entry_copy(&m->entries[i]);
    }
    s.m.entries = s.entries;
    s.m.data = NULL;
    if (m->type == RAFT_MSG_SNAPSHOT) {
        /* The transport fills the chunk from the sender's snapshot file. */
        if (n->has_dsnap && n->dsnap.index == m->log_index && n->dsnap.size == m->snapshot_size &&
            m->offset + m->len <= n->dsnap.size) {
            s.data = dup_bytes(n->dsnap_data + m->offset, m->len);
            s.m.data = s.data;
        } else {
            fail_msg("member %llu sends snapshot %llu (size %llu) but its file holds %llu (%llu)",
                     (unsigned long long)n->id, (unsigned long long)m->log_index,
                     (unsigned long long)m->snapshot_size, (unsigned long long)n->dsnap.index,
                     (unsigned long long)n->dsnap.size);
        }
    }
    FX_PUSH(f->trace, f->n_trace, f->cap_trace, s);
    FX_PUSH(f->queue, f->n_queue, f->cap_queue, f->n_trace - 1);
}

bool fx_ready(fx *f, raft_id id)
{
    fx_node *n = fx_node_of(f, id);
    if (!n->up || !raft_has_ready(n->r))
        return false;
    struct raft_ready rd;
    memset(&rd, 0, sizeof rd);
    raft_ready(n->r, &rd);
    size_t first_msg = f->n_trace;

    fx_batch_rec rec;
    memset(&rec, 0, sizeof rec);
    rec.seq = rd.seq;
    rec.ordinal = f->n_trace;
    rec.hs_changed = rd.hard_state_changed;
    rec.hs = rd.hard_state;
    rec.must_sync = rd.must_sync;
    rec.n_entries = rd.n_entries;
    if (rd.n_entries) {
        rec.first_entry = rd.entries[0].index;
        rec.last_entry = rd.entries[rd.n_entries - 1].index;
    }
    rec.n_messages = rd.n_messages;
    rec.n_committed = rd.n_committed;
    if (rd.n_committed) {
        rec.first_committed = rd.committed[0].index;
        rec.last_committed = rd.committed[rd.n_committed - 1].index;
    }
    rec.n_reads = rd.n_reads;
    rec.n_failed_reads = rd.n_failed_reads;
    rec.want_snapshot = rd.want_snapshot;
    rec.leader_changed = rd.leader_changed;
    rec.leader = rd.leader;
    rec.conf_changed = rd.conf_changed;

    if (f->verbose)
        fprintf(stderr,
                "[%llu] ready seq %llu hs%s(t%llu v%llu c%llu) entries %u [%llu..%llu] msgs %u "
                "committed %u [%llu..%llu] reads %u failed %u%s%s\n",
                (unsigned long long)id, (unsigned long long)rd.seq,
                rd.hard_state_changed ? "*" : "", (unsigned long long)rd.hard_state.term,
                (unsigned long long)rd.hard_state.vote, (unsigned long long)rd.hard_state.commit,
                rd.n_entries, (unsigned long long)rec.first_entry,
                (unsigned long long)rec.last_entry, rd.n_messages, rd.n_committed,
                (unsigned long long)rec.first_committed, (unsigned long long)rec.last_committed,
                rd.n_reads, rd.n_failed_reads, rd.snapshot ? " SNAPSHOT" : "",
                rd.snapshot_chunk_len ? " chunk" : "");

    /* Batches must carry increasing sequence numbers. */
    assert_true(rd.seq > n->last_seq);
    n->last_seq = rd.seq;

    /* 1. persist: the chunk, the snapshot, then entries and hard state. */
    fx_batch b;
    memset(&b, 0, sizeof b);
    b.seq = rd.seq;
    if (rd.snapshot_chunk_len) {
        assert_non_null(rd.snapshot_chunk);
        rec.has_chunk = true;
        rec.chunk_index = rd.snapshot_chunk_index;
        rec.chunk_offset = rd.snapshot_chunk_offset;
        rec.chunk_len = rd.snapshot_chunk_len;
        if (n->recv_index != rd.snapshot_chunk_index) {
            n->recv_index = rd.snapshot_chunk_index;
            if (n->recv_have)
                memset(n->recv_have, 0, n->recv_cap);
        }
        size_t end = rd.snapshot_chunk_offset + rd.snapshot_chunk_len;
        recv_reserve(n, end);
        memcpy(n->recv_data + rd.snapshot_chunk_offset, rd.snapshot_chunk, rd.snapshot_chunk_len);
        memset(n->recv_have + rd.snapshot_chunk_offset, 1, rd.snapshot_chunk_len);
    }
    if (rd.snapshot) {
        rec.has_snapshot = true;
        rec.snapshot = *rd.snapshot;
        if (n->recv_index != rd.snapshot->index || n->recv_cap < rd.snapshot->size)
            fail_msg("member %llu told to install snapshot %llu it has not received",
                     (unsigned long long)id, (unsigned long long)rd.snapshot->index);
        for (uint64_t i = 0; i < rd.snapshot->size; i++)
            if (!n->recv_have[i])
                fail_msg("member %llu installs snapshot %llu missing byte %llu",
                         (unsigned long long)id, (unsigned long long)rd.snapshot->index,
                         (unsigned long long)i);
        b.has_snapshot = true;
        b.snapshot = *rd.snapshot;
        b.snapshot_data = dup_bytes(n->recv_data, rd.snapshot->size);
        log_reset(&n->wlog, rd.snapshot->index);
    }
    if (rd.n_entries) {
        assert_non_null(rd.entries);
        b.entries = calloc(rd.n_entries, sizeof *b.entries);
        assert_non_null(b.entries);
        for (uint32_t i = 0; i < rd.n_entries; i++)
            b.entries[i] = entry_copy(&rd.entries[i]);
        b.n_entries = rd.n_entries;
        log_write(&n->wlog, rd.entries, rd.n_entries);
    }
    b.hs_changed = rd.hard_state_changed;
    b.hs = rd.hard_state;
    FX_PUSH(n->pending, n->n_pending, n->cap_pending, b);

    /* 2. send */
    for (uint32_t i = 0; i < rd.n_messages; i++)
        record_message(f, n, &rd.messages[i]);

    /* 3. apply; a snapshot replaces the state machine first. */
    if (rd.snapshot)
        sm_install(f, n, rd.snapshot, n->pending[n->n_pending - 1].snapshot_data);
    for (uint32_t i = 0; i < rd.n_committed; i++) {
        const raft_entry *e = &rd.committed[i];
        /* Committed entries are durable locally: they are in the written log. */
        const raft_entry *w = fx_log_get(&n->wlog, e->index);
        if (w && (w->term != e->term))
            fail_msg("member %llu applies entry %llu of term %llu, its log holds term %llu",
                     (unsigned long long)id, (unsigned long long)e->index,
                     (unsigned long long)e->term, (unsigned long long)w->term);
        sm_apply(f, n, e);
    }
    for (uint32_t i = 0; i < rd.n_reads; i++) {
        fx_read r = {rd.reads[i].context, rd.reads[i].index, n->sm_applied};
        FX_PUSH(n->reads, n->n_reads, n->cap_reads, r);
    }
    for (uint32_t i = 0; i < rd.n_failed_reads; i++)
        FX_PUSH(n->failed_reads, n->n_failed, n->cap_failed, rd.failed_reads[i]);
    if (rd.leader_changed)
        n->leader = rd.leader;
    if (rd.conf) {
        if (rd.conf_changed || !n->has_conf) {
            n->conf = *rd.conf;
            n->has_conf = true;
        }
    }
    bool want_snapshot = rd.want_snapshot;
    for (uint32_t i = 0; i < rd.n_fetches; i++)
        FX_PUSH(n->fetches, n->n_fetches, n->cap_fetches, rd.fetches[i]);

    raft_advance(n->r, &rd);

    /* What the sender knew when it produced each message (read-only queries). */
    raft_status st;
    raft_get_status(n->r, &st);
    for (size_t i = first_msg; i < f->n_trace; i++) {
        f->trace[i].sender_last_index = st.last_index;
        f->trace[i].sender_commit = st.commit;
        f->trace[i].sender_match_to =
            st.role == RAFT_LEADER ? raft_match_index(n->r, f->trace[i].m.to) : 0;
        if (f->verbose)
            print_msg("send", &f->trace[i].m);
    }
    FX_PUSH(n->batches, n->n_batches, n->cap_batches, rec);

    if (n->auto_persist)
        fx_persist(f, id);
    if (want_snapshot && n->auto_snapshot)
        fx_take_snapshot(f, id);
    if (n->auto_fetch)
        fx_answer_fetches(f, id);
    check_leader(f, n);
    return true;
}

void fx_take_snapshot(fx *f, raft_id id)
{
    fx_node *n = fx_node_of(f, id);
    assert_true(n->up);
    if (n->has_dsnap && n->dsnap.index >= n->sm_applied)
        return;
    uint8_t *data = snapshot_encode(n, n->snap_size);
    int rc = raft_snapshot_taken(n->r, n->sm_applied, n->snap_size);
    if (rc != 0)
        fail_msg("member %llu: raft_snapshot_taken(%llu) = %s", (unsigned long long)id,
                 (unsigned long long)n->sm_applied, raft_strerror(rc));
    n->has_dsnap = true;
    n->dsnap.index = n->sm_applied;
    n->dsnap.term = n->sm_applied_term;
    n->dsnap.size = n->snap_size;
    n->dsnap.conf = n->sm_conf;
    free(n->dsnap_data);
    n->dsnap_data = data;
    n->snapshots_taken++;
    if (f->verbose)
        fprintf(stderr, "[%llu] snapshot taken at %llu\n", (unsigned long long)id,
                (unsigned long long)n->sm_applied);
}

void fx_ready_all(fx *f)
{
    for (int guard = 0;; guard++) {
        assert_true(guard < 100000);
        bool any = false;
        for (int i = 1; i <= f->max_id; i++)
            if (f->nodes[i].exists && f->nodes[i].up)
                any |= fx_ready(f, (raft_id)i);
        if (!any)
            return;
    }
}

static bool rule_says(fx *f, const raft_msg *m, bool *hold)
{
    for (int i = 0; i < FX_MAX_RULES; i++) {
        fx_rule *r = &f->rules[i];
        if (!r->active || !fx_matches(&r->match, m))
            continue;
        if (r->hold) {
            *hold = true;
            return true;
        }
        if (r->remaining != 0) {
            if (r->remaining > 0 && --r->remaining == 0)
                r->active = false;
            *hold = false;
            return true;
        }
    }
    return false;
}

size_t fx_deliver(fx *f)
{
    size_t n_now = f->n_queue;
    size_t *now = malloc((n_now ? n_now : 1) * sizeof *now);
    assert_non_null(now);
    if (n_now)
        memcpy(now, f->queue, n_now * sizeof *now);
    f->n_queue = 0;
    size_t delivered = 0;
    for (size_t i = 0; i < n_now; i++) {
        fx_sent *s = &f->trace[now[i]];
        raft_id to = s->m.to;
        bool hold = false;
        bool ruled = rule_says(f, &s->m, &hold);
        if (ruled && hold) {
            FX_PUSH(f->queue, f->n_queue, f->cap_queue, now[i]);
            continue;
        }
        bool dead = to > FX_MAX_NODES || !f->nodes[to].exists || !f->nodes[to].up ||
                    (s->m.from <= FX_MAX_NODES && f->cut[s->m.from][to]);
        if (ruled || dead) {
            s->fate = FX_DROPPED;
            if (f->verbose)
                print_msg("drop", &s->m);
            continue;
        }
        s->fate = FX_DELIVERED;
        if (f->verbose)
            print_msg("deliver", &s->m);
        s->step_rc = raft_step(f->nodes[to].r, &s->m);
        delivered++;
    }
    free(now);
    return delivered;
}

void fx_stabilize(fx *f)
{
    for (int guard = 0;; guard++) {
        if (guard > 100000)
            fail_msg("fx_stabilize: the cluster does not settle");
        fx_ready_all(f);
        if (fx_deliver(f) == 0) {
            bool any = false;
            for (int i = 1; i <= f->max_id; i++)
                if (f->nodes[i].exists && f->nodes[i].up && raft_has_ready(f->nodes[i].r))
                    any = true;
            if (!any)
                return;
        }
    }
}

void fx_tick(fx *f, raft_id id, int count)
{
    for (int k = 0; k < count; k++) {
        for (int i = 1; i <= f->max_id; i++) {
            if ((id == 0 || (raft_id)i == id) && f->nodes[i].exists && f->nodes[i].up)
                raft_tick(f->nodes[i].r);
        }
        fx_stabilize(f);
    }
}

void fx_elect(fx *f, raft_id id)
{
    raft_campaign(fx_raft(f, id));
    fx_stabilize(f);
    raft_status st = fx_status(f, id);
    if (st.role != RAFT_LEADER)
        fail_msg("member %llu did not win its election (role %s, term %llu)",
                 (unsigned long long)id, raft_role_name(st.role), (unsigned long long)st.term);
}

void fx_pass_start_hold(fx *f)
{
    for (int i = 1; i <= FX_MAX_NODES; i++)
        fx_isolate(f, (raft_id)i);
    fx_tick(f, 0, (int)f->tmpl.election_ticks);
    fx_heal(f);
}

/* --------------------------------------------------------- crash/restart */

void fx_crash(fx *f, raft_id id)
{
    fx_node *n = fx_node_of(f, id);
    assert_true(n->up);
    raft_free(n->r);
    n->r = NULL;
    n->up = false;
    for (size_t i = 0; i < n->n_pending; i++)
        batch_free(&n->pending[i]);
    n->n_pending = 0;
    n->n_fetches = 0; /* asked by the core that just died */
    log_copy(&n->wlog, &n->dlog);
    n->recv_index = 0;
    if (n->recv_have)
        memset(n->recv_have, 0, n->recv_cap);
    if (f->verbose)
        fprintf(stderr, "[%llu] crashed\n", (unsigned long long)id);
}

void fx_restart(fx *f, raft_id id)
{
    fx_node *n = fx_node_of(f, id);
    assert_false(n->up);
    raft_restore rs;
    memset(&rs, 0, sizeof rs);
    rs.hard_state = n->dhs;
    uint64_t snap_index = 0;
    if (n->has_dsnap) {
        rs.snapshot = &n->dsnap;
        snap_index = n->dsnap.index;
    }
    /* entries: the durable log after the snapshot's index */
    uint64_t first = snap_index + 1;
    if (first <= n->dlog.base)
        first = n->dlog.base + 1;
    if (first <= fx_log_last(&n->dlog)) {
        rs.entries = fx_log_get(&n->dlog, first);
        rs.n_entries = (uint32_t)(fx_log_last(&n->dlog) - first + 1);
    }
    /* The state machine is durable (like an LMDB store recording its applied
     * index): it may be ahead of the durable commit index, never of the log. */
    uint64_t durable_last = fx_log_last(&n->dlog) > snap_index ? fx_log_last(&n->dlog) : snap_index;
    if (n->sm_applied > durable_last)
        fail_msg("member %llu applied %llu but its disk ends at %llu (not modelled)",
                 (unsigned long long)id, (unsigned long long)n->sm_applied,
                 (unsigned long long)durable_last);
    rs.applied = n->sm_applied;
    char err[256] = "";
    /* raft.h: bootstrap only for a brand-new member (empty restore);
     * otherwise the configuration comes from the snapshot and the log. */
    bool fresh = rs.hard_state.term == 0 && !rs.snapshot && rs.n_entries == 0;
    const raft_conf *boot = (n->founding && fresh) ? &f->bootstrap : NULL;
    n->r = raft_new(&n->cfg, boot, &rs, err, sizeof err);
    if (!n->r)
        fail_msg("raft_new(restart %llu): %s", (unsigned long long)id, err);
    n->up = true;
    n->last_commit = 0;
    n->last_seq = 0;
    log_copy(&n->wlog, &n->dlog);
    if (n->has_dsnap && n->wlog.base < n->dsnap.index) {
        /* the written log as the member now sees it starts after the snapshot */
        fx_log tmp = {0};
        tmp.base = n->dsnap.index;
        for (uint64_t i = n->dsnap.index + 1; i <= fx_log_last(&n->dlog); i++)
            FX_PUSH(tmp.e, tmp.n, tmp.cap, entry_copy(fx_log_get(&n->dlog, i)));
        log_free(&n->wlog);
        n->wlog = tmp;
    }
    if (f->verbose)
        fprintf(stderr, "[%llu] restarted (term %llu vote %llu commit %llu, %u entries)\n",
                (unsigned long long)id, (unsigned long long)rs.hard_state.term,
                (unsigned long long)rs.hard_state.vote, (unsigned long long)rs.hard_state.commit,
                rs.n_entries);
}

/* -------------------------------------------------------------- network */

void fx_cut_one(fx *f, raft_id from, raft_id to)
{
    f->cut[from][to] = true;
}

void fx_cut(fx *f, raft_id a, raft_id b)
{
    f->cut[a][b] = f->cut[b][a] = true;
}

void fx_isolate(fx *f, raft_id id)
{
    for (int i = 1; i <= FX_MAX_NODES; i++)
        if ((raft_id)i != id)
            fx_cut(f, id, (raft_id)i);
}

void fx_heal(fx *f)
{
    memset(f->cut, 0, sizeof f->cut);
}

static int add_rule(fx *f, fx_match m, bool hold, int count)
{
    for (int i = 0; i < FX_MAX_RULES; i++) {
        if (!f->rules[i].active) {
            f->rules[i].active = true;
            f->rules[i].hold = hold;
            f->rules[i].remaining = count;
            f->rules[i].match = m;
            return i;
        }
    }
    fail_msg("too many fixture rules");
    return -1;
}

int fx_hold(fx *f, fx_match m)
{
    return add_rule(f, m, true, -1);
}

int fx_drop(fx *f, fx_match m, int count)
{
    assert_true(count != 0);
    return add_rule(f, m, false, count);
}

void fx_release(fx *f, int rule)
{
    assert_true(rule >= 0 && rule < FX_MAX_RULES);
    f->rules[rule].active = false;
}

void fx_release_all(fx *f)
{
    for (int i = 0; i < FX_MAX_RULES; i++)
        f->rules[i].active = false;
}

size_t fx_drop_inflight(fx *f, fx_match m)
{
    size_t kept = 0, dropped = 0;
    for (size_t i = 0; i < f->n_queue; i++) {
        fx_sent *s = &f->trace[f->queue[i]];
        if (fx_matches(&m, &s->m)) {
            s->fate = FX_DROPPED;
            dropped++;
        } else {
            f->queue[kept++] = f->queue[i];
        }
    }
    f->n_queue = kept;
    return dropped;
}

int fx_inject(fx *f, const raft_msg *m)
{
    if (f->verbose)
        print_msg("inject", m);
    return raft_step(fx_raft(f, m->to), m);
}

/* ---------------------------------------------------------------- trace */

size_t fx_mark(const fx *f)
{
    return f->n_trace;
}

size_t fx_count(const fx *f, size_t since, fx_match m)
{
    size_t c = 0;
    for (size_t i = since; i < f->n_trace; i++)
        if (fx_matches(&m, &f->trace[i].m))
            c++;
    return c;
}

const fx_sent *fx_find(const fx *f, size_t since, fx_match m, size_t k)
{
    for (size_t i = since; i < f->n_trace; i++)
        if (fx_matches(&m, &f->trace[i].m) && k-- == 0)
            return &f->trace[i];
    return NULL;
}

size_t fx_inflight(const fx *f, fx_match m)
{
    size_t c = 0;
    for (size_t i = 0; i < f->n_queue; i++)
        if (fx_matches(&m, &f->trace[f->queue[i]].m))
            c++;
    return c;
}

/* -------------------------------------------------------------- queries */

raft_status fx_status(fx *f, raft_id id)
{
    raft_status st;
    raft_get_status(fx_raft(f, id), &st);
    return st;
}

enum raft_role fx_role(fx *f, raft_id id)
{
    return fx_status(f, id).role;
}

uint64_t fx_term(fx *f, raft_id id)
{
    return fx_status(f, id).term;
}

uint64_t fx_commit(fx *f, raft_id id)
{
    return fx_status(f, id).commit;
}

uint64_t fx_last_index(fx *f, raft_id id)
{
    return fx_status(f, id).last_index;
}

raft_id fx_agreed_leader(fx *f)
{
    raft_id l = 0;
    for (int i = 1; i <= f->max_id; i++) {
        fx_node *n = &f->nodes[i];
        if (!n->exists || !n->up)
            continue;
        raft_status st;
        raft_get_status(n->r, &st);
        if (st.removed)
            continue; /* a removed member no longer follows anyone */
        raft_id li = raft_leader(n->r);
        if (li == 0 || (l != 0 && li != l))
            return 0;
        l = li;
    }
    return l;
}

int fx_propose(fx *f, raft_id id, const char *s)
{
    return raft_propose(fx_raft(f, id), (const uint8_t *)s, (uint32_t)strlen(s));
}

bool fx_applied(fx *f, raft_id id, const char *s)
{
    fx_node *n = fx_node_of(f, id);
    for (size_t i = 0; i < n->n_applied; i++)
        if (strcmp(n->applied[i].data, s) == 0)
            return true;
    return false;
}

void fx_assert_logs_equal(fx *f, raft_id a, raft_id b, uint64_t from, uint64_t to)
{
    raft *ra = fx_raft(f, a), *rb = fx_raft(f, b);
    for (uint64_t i = from; i <= to; i++) {
        const raft_entry *ea, *eb;
        int ca = raft_log_entry(ra, i, &ea), cb = raft_log_entry(rb, i, &eb);
        if (ca != 0 || cb != 0)
            fail_msg("index %llu: member %llu says %s, member %llu says %s", (unsigned long long)i,
                     (unsigned long long)a, raft_strerror(ca), (unsigned long long)b,
                     raft_strerror(cb));
        if (ea->term != eb->term || ea->type != eb->type || ea->len != eb->len ||
            (ea->len && memcmp(ea->data, eb->data, ea->len) != 0))
            fail_msg("index %llu differs: member %llu term %llu, member %llu term %llu",
                     (unsigned long long)i, (unsigned long long)a, (unsigned long long)ea->term,
                     (unsigned long long)b, (unsigned long long)eb->term);
    }
}

void fx_check_log_matching(fx *f)
{
    for (int a = 1; a <= f->max_id; a++) {
        for (int b = a + 1; b <= f->max_id; b++) {
            fx_node *na = &f->nodes[a], *nb = &f->nodes[b];
            if (!na->exists || !nb->exists)
                continue;
            uint64_t lo = (na->wlog.base > nb->wlog.base ? na->wlog.base : nb->wlog.base) + 1;
            uint64_t hi = fx_log_last(&na->wlog) < fx_log_last(&nb->wlog) ? fx_log_last(&na->wlog)
                                                                          : fx_log_last(&nb->wlog);
            bool agree = false;
            for (uint64_t i = hi; i >= lo && i > 0; i--) {
                const raft_entry *ea = fx_log_get(&na->wlog, i), *eb = fx_log_get(&nb->wlog, i);
                if (!agree && ea->term == eb->term)
                    agree = true;
                if (agree && (ea->term != eb->term || entry_hash(ea) != entry_hash(eb)))
                    fail_msg("log matching: members %d and %d agree at a later index but differ "
                             "at %llu",
                             a, b, (unsigned long long)i);
            }
        }
    }
}

static void parse_ids(const char *s, raft_id *out, uint32_t *n)
{
    *n = 0;
    if (!s)
        return;
    while (*s) {
        if (*s >= '0' && *s <= '9') {
            raft_id v = 0;
            while (*s >= '0' && *s <= '9')
                v = v * 10 + (raft_id)(*s++ - '0');
            assert_true(*n < RAFT_MAX_MEMBERS);
            out[(*n)++] = v;
        } else {
            s++;
        }
    }
}

raft_conf fx_mkconf(const char *voters, const char *learners)
{
    raft_conf c;
    memset(&c, 0, sizeof c);
    parse_ids(voters, c.voters, &c.n_voters);
    parse_ids(learners, c.learners, &c.n_learners);
    return c;
}

static bool set_equal(const raft_id *a, uint32_t na, const raft_id *b, uint32_t nb)
{
    if (na != nb)
        return false;
    for (uint32_t i = 0; i < na; i++) {
        bool found = false;
        for (uint32_t k = 0; k < nb; k++)
            found |= a[i] == b[k];
        if (!found)
            return false;
    }
    return true;
}

bool fx_conf_equal(const raft_conf *a, const raft_conf *b)
{
    return set_equal(a->voters, a->n_voters, b->voters, b->n_voters) &&
           set_equal(a->voters_out, a->n_voters_out, b->voters_out, b->n_voters_out) &&
           set_equal(a->learners, a->n_learners, b->learners, b->n_learners);
}

const fx_batch_rec *fx_last_batch(fx *f, raft_id id)
{
    fx_node *n = fx_node_of(f, id);
    return n->n_batches ? &n->batches[n->n_batches - 1] : NULL;
}
