/*
 * Snapshots: when the core asks for one, log compaction with trailing
 * entries, and InstallSnapshot in chunks to a follower that is too far
 * behind (lost chunks, durability of chunk acknowledgements, catching up
 * by appends afterwards).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft_tests.h"

static raft_config snap_config(void)
{
    raft_config c = fx_config();
    c.snapshot_entries = 5;
    c.trailing_entries = 2;
    c.snapshot_chunk_bytes = 64;
    return c;
}

static void propose_n(fx *f, raft_id leader, int n, const char *prefix)
{
    char buf[32];
    for (int i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "%s%d", prefix, i);
        assert_int_equal(fx_propose(f, leader, buf), 0);
        fx_stabilize(f);
    }
}

/* The core asks for a snapshot once snapshot_entries entries were applied
 * since the last one; raft_snapshot_taken compacts the log, keeping
 * trailing_entries entries before the snapshot's index. */
static void test_snapshot_request_and_compaction(void **state)
{
    (void)state;
    raft_config c = snap_config();
    fx *f = fx_new(3, &c);
    for (raft_id id = 1; id <= 3; id++)
        fx_node_of(f, id)->auto_snapshot = false;
    fx_elect(f, 1);
    fx_node *n = fx_node_of(f, 1);
    /* Up to applied index 4: no request. */
    while (n->sm_applied < 4) {
        assert_int_equal(fx_propose(f, 1, "a"), 0);
        fx_stabilize(f);
    }
    fx_tick(f, 0, 1);
    assert_int_equal(n->sm_applied, 4);
    for (size_t i = 0; i < n->n_batches; i++)
        assert_false(n->batches[i].want_snapshot);
    propose_n(f, 1, 1, "b");
    fx_tick(f, 0, 1);
    assert_int_equal(n->sm_applied, 5);
    /* Asked for, but never before 5 entries were applied. */
    uint64_t applied = 0;
    bool wanted = false;
    for (size_t i = 0; i < n->n_batches; i++) {
        if (n->batches[i].n_committed)
            applied = n->batches[i].last_committed;
        if (n->batches[i].want_snapshot)
            assert_true(applied >= 5);
        wanted |= n->batches[i].want_snapshot;
    }
    assert_true(wanted);

    raft_status before = fx_status(f, 1);
    assert_int_equal(before.snapshot_index, 0);
    assert_int_equal(before.first_index, 1);
    fx_take_snapshot(f, 1);
    raft_status st = fx_status(f, 1);
    assert_int_equal(st.snapshot_index, 5);
    assert_int_equal(st.snapshot_term, TERM(1));
    assert_int_equal(st.first_index, 5 - 2 + 1);
    assert_int_equal(st.last_index, before.last_index);
    const raft_entry *e;
    assert_int_equal(raft_log_entry(fx_raft(f, 1), 3, &e), RAFT_ECOMPACTED);
    assert_int_equal(raft_log_term(fx_raft(f, 1), 2), 0);
    assert_int_equal(raft_log_entry(fx_raft(f, 1), 4, &e), 0);
    assert_int_equal(e->index, 4);
    assert_int_equal(raft_log_term(fx_raft(f, 1), 5), TERM(1));
    assert_int_equal(raft_log_entry(fx_raft(f, 1), st.last_index + 1, &e), RAFT_EINVAL);

    /* No new request until five more entries are applied. */
    fx_stabilize(f);
    size_t from = n->n_batches;
    propose_n(f, 1, 3, "c");
    fx_tick(f, 0, 1);
    for (size_t i = from; i < n->n_batches; i++)
        assert_false(n->batches[i].want_snapshot);
    propose_n(f, 1, 2, "d");
    fx_tick(f, 0, 1);
    bool asked = false;
    for (size_t i = from; i < n->n_batches; i++)
        asked |= n->batches[i].want_snapshot;
    assert_true(asked);

    /* A snapshot beyond the applied index is refused. */
    assert_int_equal(raft_snapshot_taken(fx_raft(f, 1), n->sm_applied + 1, 200), RAFT_EINVAL);
    /* The compacted member keeps replicating. */
    propose_n(f, 1, 1, "e");
    fx_tick(f, 0, 1);
    for (raft_id id = 1; id <= 3; id++)
        assert_true(fx_applied(f, id, "e0"));
    fx_free(f);
}

/* 3 members with config c, led by 1; 3 isolated while 1 and 2 commit `n` entries. If
 * !leader_answers, 1 leaves its rd.fetches to the test. */
static fx *isolated_follower(const raft_config *c, int n, const char *prefix, bool leader_answers)
{
    fx *f = fx_new(3, c);
    fx_elect(f, 1);
    fx_node_of(f, 1)->auto_fetch = leader_answers;
    fx_isolate(f, 3);
    propose_n(f, 1, n, prefix);
    fx_tick(f, 1, 1);
    return f;
}

/* Isolates 3 while 1 and 2 commit `n` entries (both compact). */
static fx *lagging_follower(int n, raft_config *out_cfg)
{
    raft_config c = snap_config();
    fx *f = isolated_follower(&c, n, "v", true);
    assert_true(fx_node_of(f, 1)->snapshots_taken >= 1);
    assert_true(fx_status(f, 1).first_index > IDX(2));
    assert_int_equal(fx_last_index(f, 3), IDX(1));
    if (out_cfg)
        *out_cfg = c;
    return f;
}

typedef struct chunk_seen {
    uint64_t offset;
    uint32_t len;
    bool done;
} chunk_seen;

/* A follower whose next entry was compacted away gets the snapshot in
 * chunks of snapshot_chunk_bytes, in order, the last marked done; its
 * batches carry the chunks and then the install; then it catches up by
 * appends. */
static void test_snapshot_sent_in_chunks(void **state)
{
    (void)state;
    raft_config c;
    fx *f = lagging_follower(20, &c);
    fx_node *l = fx_node_of(f, 1);
    uint64_t snap_index = l->dsnap.index;
    uint64_t snap_term = l->dsnap.term;
    assert_int_equal(l->dsnap.size, 200);

    fx_heal(f);
    size_t mark = fx_mark(f);
    for (int t = 0; t < 10 && fx_node_of(f, 3)->snapshots_installed == 0; t++)
        fx_tick(f, 1, 1);
    assert_int_equal(fx_node_of(f, 3)->snapshots_installed, 1);

    /* The chunks as sent: 64, 64, 64, 8 bytes. */
    fx_match snap = MSG(RAFT_MSG_SNAPSHOT, 1, 3);
    size_t n = fx_count(f, mark, snap);
    assert_int_equal(n, 4);
    for (size_t k = 0; k < n; k++) {
        const fx_sent *s = fx_find(f, mark, snap, k);
        assert_int_equal(s->m.offset, 64 * k);
        assert_int_equal(s->m.len, k < 3 ? 64 : 8);
        assert_int_equal(s->m.done, k == 3);
        assert_int_equal(s->m.log_index, snap_index);
        assert_int_equal(s->m.log_term, snap_term);
        assert_int_equal(s->m.snapshot_size, 200);
        raft_conf want = fx_mkconf("1,2,3", NULL);
        assert_true(fx_conf_equal(&s->m.conf, &want));
        assert_int_equal(s->m.term, fx_term(f, 1));
    }
    /* Each chunk was acknowledged with the bytes received so far (in
     * `index`, raft_msg's "SNAPSHOT_RESP: ack"), for this snapshot. */
    fx_match ack = MSG(RAFT_MSG_SNAPSHOT_RESP, 3, 1);
    assert_int_equal(fx_count(f, mark, ack), 4);
    for (size_t k = 0; k < 4; k++) {
        const fx_sent *a = fx_find(f, mark, ack, k);
        assert_false(a->m.reject);
        assert_int_equal(a->m.index, k < 3 ? 64 * (k + 1) : 200);
        assert_int_equal(a->m.log_index, snap_index);
    }

    /* The follower's batches: the chunks at their offsets, then the install. */
    fx_node *fo = fx_node_of(f, 3);
    uint64_t expect_off = 0;
    bool installed = false;
    for (size_t i = 0; i < fo->n_batches; i++) {
        const fx_batch_rec *b = &fo->batches[i];
        if (b->has_chunk) {
            assert_false(installed);
            assert_int_equal(b->chunk_index, snap_index);
            assert_int_equal(b->chunk_offset, expect_off);
            expect_off += b->chunk_len;
        }
        if (b->has_snapshot) {
            assert_int_equal(expect_off, 200);
            assert_int_equal(b->snapshot.index, snap_index);
            assert_int_equal(b->snapshot.term, snap_term);
            assert_int_equal(b->snapshot.size, 200);
            raft_conf want = fx_mkconf("1,2,3", NULL);
            assert_true(fx_conf_equal(&b->snapshot.conf, &want));
            installed = true;
        }
    }
    assert_true(installed);
    raft_status st = fx_status(f, 3);
    assert_true(st.snapshot_index >= snap_index);
    assert_true(st.commit >= snap_index);

    /* It catches up by appends: the entries after the snapshot. */
    fx_tick(f, 1, 2);
    assert_int_equal(fx_last_index(f, 3), fx_last_index(f, 1));
    assert_int_equal(fx_commit(f, 3), fx_commit(f, 1));
    assert_int_equal(fo->sm_applied, l->sm_applied);
    assert_int_equal(fo->sm_hash, l->sm_hash);
    if (fx_last_index(f, 1) > snap_index) {
        const fx_sent *a = fx_find(f, mark, MSG(RAFT_MSG_APPEND, 1, 3), 0);
        assert_non_null(a);
    }
    propose_n(f, 1, 1, "after");
    fx_tick(f, 1, 1);
    assert_true(fx_applied(f, 3, "after0"));
    assert_false(fx_applied(f, 3, "v0")); /* that one came inside the snapshot */
    fx_free(f);
}

static bool offset_is_64(const raft_msg *m, const void *arg)
{
    (void)arg;
    return m->offset == 64;
}

/* A lost chunk is sent again and the transfer completes. */
/* A snapshot that arrives after appends overtook it (its last entry is in the log already,
 * past the commit index) is not installed: that would drop the entries after it, which the
 * follower may have acknowledged, and the leader would probe above its log for ever. The
 * follower answers as an append that matched at the snapshot's index. */
static void test_snapshot_behind_the_log_is_not_installed(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    /* the followers' acks are lost: 3 holds entries past its commit index */
    fx_cut_one(f, 2, 1);
    fx_cut_one(f, 3, 1);
    assert_int_equal(fx_propose(f, 1, "a"), 0);
    assert_int_equal(fx_propose(f, 1, "b"), 0);
    fx_stabilize(f);
    uint64_t last = fx_last_index(f, 3);
    uint64_t commit = fx_commit(f, 3);
    assert_true(last >= commit + 1);
    uint64_t k = last - 1; /* an entry of 3's log past its commit index */
    assert_true(k > commit);

    raft_msg snap;
    memset(&snap, 0, sizeof snap);
    snap.type = RAFT_MSG_SNAPSHOT;
    snap.from = 1;
    snap.to = 3;
    snap.term = fx_term(f, 1);
    snap.log_index = k;
    snap.log_term = raft_log_term(fx_raft(f, 3), k);
    snap.offset = 0;
    snap.len = 4;
    snap.data = (const uint8_t *)"snap";
    snap.done = true;
    snap.snapshot_size = 4;
    snap.conf = fx_mkconf("1,2,3", NULL);
    size_t mark = fx_mark(f);
    assert_int_equal(fx_inject(f, &snap), 0);
    assert_int_equal(fx_last_index(f, 3), last); /* the log is kept */
    fx_ready_all(f);
    fx_ready_all(f);
    assert_int_equal(fx_last_index(f, 3), last);
    assert_int_equal(fx_node_of(f, 3)->snapshots_installed, 0);
    const fx_sent *r = fx_find(f, mark, MSG(RAFT_MSG_APPEND_RESP, 3, 1), 0);
    assert_non_null(r);
    assert_false(r->m.reject);
    assert_int_equal(r->m.index, k);
    assert_int_equal(fx_count(f, mark, MSG(RAFT_MSG_SNAPSHOT_RESP, 3, 1)), 0);
    fx_heal(f);
    fx_tick(f, 0, 2);
    assert_true(fx_applied(f, 3, "b"));
    fx_free(f);
}

static void test_lost_snapshot_chunk_is_resent(void **state)
{
    (void)state;
    raft_config c;
    fx *f = lagging_follower(20, &c);
    fx_heal(f);
    size_t mark = fx_mark(f);
    fx_drop(f, (fx_match){.type = RAFT_MSG_SNAPSHOT, .pred = offset_is_64}, 1);
    for (int t = 0; t < 4 * (int)c.election_ticks && fx_node_of(f, 3)->snapshots_installed == 0;
         t++)
        fx_tick(f, 1, 1);
    assert_int_equal(fx_node_of(f, 3)->snapshots_installed, 1);
    fx_match at64 = {.type = RAFT_MSG_SNAPSHOT, .from = 1, .to = 3, .pred = offset_is_64};
    assert_true(fx_count(f, mark, at64) >= 2);
    assert_int_equal(fx_find(f, mark, at64, 0)->fate, FX_DROPPED);
    assert_int_equal(fx_find(f, mark, at64, 1)->fate, FX_DELIVERED);
    fx_tick(f, 1, 2);
    assert_int_equal(fx_node_of(f, 3)->sm_hash, fx_node_of(f, 1)->sm_hash);
    assert_int_equal(fx_role(f, 1), RAFT_LEADER);
    fx_free(f);
}

/* A chunk acknowledgement promises the chunk is on disk: it leaves only
 * after raft_persisted of the batch holding the chunk. */
static void test_snapshot_ack_waits_for_persistence(void **state)
{
    (void)state;
    raft_config c;
    fx *f = lagging_follower(20, &c);
    fx_node *fo = fx_node_of(f, 3);
    fo->auto_persist = false;
    fx_heal(f);
    size_t mark = fx_mark(f);
    /* Drive until the first chunk is in a batch of 3, not yet durable. */
    for (int i = 0; i < 50 && !fx_last_batch(f, 3)->has_chunk; i++) {
        fx_persist(f, 3);
        fx_tick(f, 1, 1);
    }
    assert_true(fx_count(f, mark, MSG(RAFT_MSG_SNAPSHOT, 1, 3)) > 0);
    const fx_batch_rec *b = fx_last_batch(f, 3);
    assert_int_equal(b->chunk_offset, 0);
    size_t after_chunk = b->ordinal;
    fx_stabilize(f);
    assert_int_equal(fx_count(f, after_chunk, MSG(RAFT_MSG_SNAPSHOT_RESP, 3, 1)), 0);
    fx_persist(f, 3);
    fx_ready(f, 3);
    const fx_sent *ack = fx_find(f, after_chunk, MSG(RAFT_MSG_SNAPSHOT_RESP, 3, 1), 0);
    assert_non_null(ack);
    assert_int_equal(ack->m.index, 64);
    assert_false(ack->m.reject);

    /* Finish the transfer with manual persistence. */
    for (int i = 0; i < 100 && fo->snapshots_installed == 0; i++) {
        fx_stabilize(f);
        fx_persist(f, 3);
    }
    assert_int_equal(fo->snapshots_installed, 1);
    fx_persist(f, 3);
    fx_stabilize(f);
    fx_persist(f, 3);
    assert_true(fo->has_dsnap);
    assert_int_equal(fo->dsnap.index, fx_node_of(f, 1)->dsnap.index);
    fx_free(f);
}

/* A fresh member that joins as a learner after compaction gets the
 * snapshot and then the log. */
static void test_new_member_bootstraps_from_snapshot(void **state)
{
    (void)state;
    raft_config c = snap_config();
    fx *f = fx_new(3, &c);
    fx_add_node(f, 4);
    fx_elect(f, 1);
    propose_n(f, 1, 12, "w");
    fx_tick(f, 0, 1);
    assert_true(fx_status(f, 1).first_index > 1);
    raft_conf t = fx_mkconf("1,2,3", "4");
    assert_int_equal(raft_propose_conf(fx_raft(f, 1), &t), 0);
    fx_stabilize(f);
    fx_tick(f, 0, 5);
    fx_node *n4 = fx_node_of(f, 4);
    assert_int_equal(n4->snapshots_installed, 1);
    assert_int_equal(fx_commit(f, 4), fx_commit(f, 1));
    assert_int_equal(n4->sm_hash, fx_node_of(f, 1)->sm_hash);
    assert_true(fx_conf_equal(raft_get_conf(fx_raft(f, 4)), &t));
    fx_free(f);
}

/* A core with a small log_mem_bytes: the log in memory stays bounded, and a follower that
 * fell behind is brought up to date from the leader's durable log (rd.fetches), not with a
 * snapshot, as long as no snapshot covers what it needs. */
static raft_config mem_config(void)
{
    raft_config c = fx_config();
    c.snapshot_entries = 0; /* never: every old entry stays in the durable log */
    c.log_mem_bytes = 16;
    c.max_msg_bytes = 8; /* several read-backs per catch-up */
    return c;
}

static size_t count_fetch_from(const fx_node *n, uint64_t from)
{
    size_t k = 0;
    for (size_t i = 0; i < n->n_fetches; i++)
        k += n->fetches[i].from == from;
    return k;
}

/* isolated_follower with mem_config. */
static fx *behind_in_wal(int n, const char *prefix, bool leader_answers)
{
    raft_config c = mem_config();
    return isolated_follower(&c, n, prefix, leader_answers);
}

static void test_log_memory_bound_and_read_back(void **state)
{
    (void)state;
    fx *f = behind_in_wal(40, "mem", true);
    raft_status st = fx_status(f, 1);
    assert_int_equal(st.snapshot_index, 0);
    assert_true(st.first_index > IDX(30)); /* applied entries left memory */
    /* 16 bytes, trimmed to 8 at most when more comes: a handful of 3-byte entries */
    assert_true(st.last_index - st.first_index + 1 <= 6);
    /* terms of the dropped entries are still known */
    assert_int_equal(raft_log_term(fx_raft(f, 1), IDX(5)), TERM(1));
    size_t mark = fx_mark(f);
    fx_heal(f);
    fx_tick(f, 0, 10);
    fx_node *n1 = fx_node_of(f, 1), *n3 = fx_node_of(f, 3);
    assert_int_equal(fx_commit(f, 3), fx_commit(f, 1));
    assert_int_equal(n3->sm_hash, n1->sm_hash);
    assert_int_equal(n3->snapshots_installed, 0);
    assert_int_equal(fx_count(f, mark, (fx_match){.type = RAFT_MSG_SNAPSHOT}), 0);
    assert_true(n1->fetches_answered >= 5); /* 40 entries, 8 bytes a message */
    /* the follower keeps its memory bounded too */
    st = fx_status(f, 3);
    assert_true(st.last_index - st.first_index + 1 <= 6);
    fx_free(f);
}

static void test_read_back_answers_are_checked(void **state)
{
    (void)state;
    fx *f = behind_in_wal(20, "chk", false);
    fx_node *n1 = fx_node_of(f, 1), *n3 = fx_node_of(f, 3);
    fx_heal(f);
    fx_tick(f, 0, 3);
    assert_true(n1->n_fetches >= 1);
    raft_fetch q = n1->fetches[0];
    assert_int_equal(q.to, 3);
    assert_true(q.from <= IDX(5));
    n1->n_fetches = 0;
    const raft_entry *good = fx_log_get(&n1->dlog, q.from);
    assert_non_null(good);
    /* a wrong term (a log that is not the leader's) is refused and nothing is sent */
    raft_entry bad = *good;
    bad.term = good->term + 7;
    size_t mark = fx_mark(f);
    assert_int_equal(raft_fetched(n1->r, q.to, q.from, &bad, 1), RAFT_EINVAL);
    fx_ready_all(f);
    assert_int_equal(fx_count(f, mark, (fx_match){.type = RAFT_MSG_APPEND, .to = 3}), 0);
    /* a gap (wrong index) too */
    /* (the refusal answered the request; ask again by ticking, as a heartbeat makes it) */
    fx_tick(f, 0, 2);
    assert_true(count_fetch_from(n1, q.from) >= 1);
    n1->n_fetches = 0;
    raft_entry gap = *good;
    gap.index = q.from + 1;
    assert_int_equal(raft_fetched(n1->r, q.to, q.from, &gap, 1), RAFT_EINVAL);
    /* "could not read" is an answer: asked again later */
    fx_tick(f, 0, 2);
    assert_true(count_fetch_from(n1, q.from) >= 1);
    n1->n_fetches = 0;
    assert_int_equal(raft_fetched(n1->r, q.to, q.from, NULL, 0), 0);
    /* answers nobody asked for (another from, another member) are ignored */
    assert_int_equal(raft_fetched(n1->r, q.to, q.from + 3, good, 1), 0);
    assert_int_equal(raft_fetched(n1->r, 2, q.from, good, 1), 0);
    /* answering from the durable log brings it up to date */
    n1->auto_fetch = true;
    fx_tick(f, 0, 10);
    assert_int_equal(fx_commit(f, 3), fx_commit(f, 1));
    assert_int_equal(n3->sm_hash, n1->sm_hash);
    assert_int_equal(n3->snapshots_installed, 0);
    fx_free(f);
}

/* An answer may run past the entries dropped from memory: there the caller's durable log can
 * still hold older entries that a batch not yet synced replaces (a leader whose log was
 * rewritten just before it was elected). Only the dropped part, which is final, is taken. */
static void test_read_back_takes_only_the_dropped_entries(void **state)
{
    (void)state;
    fx *f = behind_in_wal(20, "past", false);
    fx_node *n1 = fx_node_of(f, 1);
    fx_heal(f);
    fx_tick(f, 0, 3);
    assert_true(n1->n_fetches >= 1);
    raft_fetch q = n1->fetches[0];
    n1->n_fetches = 0;
    raft_status st = fx_status(f, 1);
    uint64_t base = st.first_index - 1; /* the last entry dropped from memory */
    assert_true(q.from <= base);
    uint32_t n = (uint32_t)(base - q.from + 1);
    raft_entry *ents = calloc(n + 2, sizeof *ents);
    assert_non_null(ents);
    for (uint32_t i = 0; i < n; i++)
        ents[i] = *fx_log_get(&n1->dlog, q.from + i);
    /* two entries past base whose terms are not the leader's */
    for (uint32_t i = n; i < n + 2; i++) {
        ents[i] = ents[n - 1];
        ents[i].index = q.from + i;
        ents[i].term = raft_log_term(n1->r, q.from + i) + 5;
    }
    size_t mark = fx_mark(f);
    assert_int_equal(raft_fetched(n1->r, q.to, q.from, ents, n + 2), 0);
    fx_ready_all(f);
    const fx_sent *s = fx_find(f, mark, (fx_match){.type = RAFT_MSG_APPEND, .to = q.to}, 0);
    assert_non_null(s);
    assert_int_equal(s->m.log_index, q.from - 1);
    assert_true(s->m.n_entries >= 1);
    assert_true(s->m.log_index + s->m.n_entries <= base);
    free(ents);
    n1->auto_fetch = true;
    fx_tick(f, 0, 10);
    assert_int_equal(fx_commit(f, q.to), fx_commit(f, 1));
    assert_int_equal(fx_node_of(f, q.to)->sm_hash, n1->sm_hash);
    fx_free(f);
}

static void test_read_back_then_snapshot_when_compacted(void **state)
{
    (void)state;
    fx *f = behind_in_wal(30, "cmp", true);
    /* a snapshot at the applied index now covers what 3 needs: it gets the snapshot */
    fx_take_snapshot(f, 1);
    raft_status st = fx_status(f, 1);
    assert_true(st.snapshot_index >= IDX(30));
    fx_heal(f);
    fx_tick(f, 0, 10);
    fx_node *n3 = fx_node_of(f, 3);
    assert_int_equal(n3->snapshots_installed, 1);
    assert_int_equal(fx_commit(f, 3), fx_commit(f, 1));
    assert_int_equal(n3->sm_hash, fx_node_of(f, 1)->sm_hash);
    /* and a crash of the leader: it restarts from its durable log, all in memory, then bounded */
    fx_crash(f, 1);
    fx_restart(f, 1);
    fx_tick(f, 0, 30);
    raft_id lead = fx_agreed_leader(f);
    assert_true(lead != 0);
    propose_n(f, lead, 10, "after");
    fx_tick(f, 0, 5);
    for (raft_id id = 1; id <= 3; id++)
        assert_int_equal(fx_commit(f, id), fx_commit(f, lead));
    fx_free(f);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_snapshot_request_and_compaction),
    cmocka_unit_test(test_snapshot_sent_in_chunks),
    cmocka_unit_test(test_snapshot_behind_the_log_is_not_installed),
    cmocka_unit_test(test_lost_snapshot_chunk_is_resent),
    cmocka_unit_test(test_snapshot_ack_waits_for_persistence),
    cmocka_unit_test(test_new_member_bootstraps_from_snapshot),
    cmocka_unit_test(test_log_memory_bound_and_read_back),
    cmocka_unit_test(test_read_back_answers_are_checked),
    cmocka_unit_test(test_read_back_takes_only_the_dropped_entries),
    cmocka_unit_test(test_read_back_then_snapshot_when_compacted),
};

RAFT_TEST_GROUP(raft_snapshot_group, "snapshot", tests);
