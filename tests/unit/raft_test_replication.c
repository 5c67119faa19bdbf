/*
 * Log replication: the leader's first entry, commitment by durable replicas,
 * the durability of acknowledgements, pipelining, batching, fast back-off
 * and the Figure-8 rule (commit only entries of the leader's own term by
 * counting replicas).
 */
#include <stdio.h>
#include <string.h>

#include "raft_tests.h"

/* An elected leader first appends an empty entry of its own term; it
 * commits on every member. */
static void test_new_leader_appends_empty_entry(void **state)
{
    (void)state;
    raft_config c = fx_config();
    c.pre_vote = false;
    c.check_quorum = false;
    fx *f = fx_new(3, &c);
    fx_elect(f, 2);
    const raft_entry *e;
    assert_int_equal(raft_log_entry(fx_raft(f, 2), IDX(1), &e), 0);
    assert_int_equal(e->term, TERM(1));
    assert_int_equal(e->type, RAFT_ENTRY_NORMAL);
    assert_int_equal(e->len, 0);
    raft_conf boot = fx_mkconf("1,2,3", NULL);
    for (raft_id id = 1; id <= 3; id++) {
        /* The batches said who leads and what the configuration is. */
        assert_int_equal(fx_node_of(f, id)->leader, 2);
        assert_true(fx_node_of(f, id)->has_conf);
        assert_true(fx_conf_equal(&fx_node_of(f, id)->conf, &boot));
        assert_int_equal(fx_commit(f, id), IDX(1));
        assert_int_equal(fx_status(f, id).applied, IDX(1));
        assert_int_equal(fx_node_of(f, id)->sm_applied, IDX(1));
    }

    fx_elect(f, 3);
    assert_int_equal(fx_term(f, 3), TERM(2));
    assert_int_equal(raft_log_entry(fx_raft(f, 3), IDX(2), &e), 0);
    assert_int_equal(e->term, TERM(2));
    assert_int_equal(e->len, 0);
    for (raft_id id = 1; id <= 3; id++) {
        assert_int_equal(fx_commit(f, id), IDX(2));
        assert_int_equal(fx_node_of(f, id)->leader, 3);
    }
    fx_free(f);
}

static void manual_persistence(fx *f, int n)
{
    for (raft_id id = 1; id <= (raft_id)n; id++)
        fx_node_of(f, id)->auto_persist = false;
}

/* A proposal commits once a majority holds it durably. The followers'
 * acknowledgements leave only after their batch is durable, and the
 * leader counts its own copy only after its own batch is durable. */
static void test_commit_needs_durable_majority(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    manual_persistence(f, 3);
    size_t mark = fx_mark(f);
    assert_int_equal(fx_propose(f, 1, "x"), 0);
    fx_ready(f, 1);
    const fx_batch_rec *b = fx_last_batch(f, 1);
    assert_int_equal(b->n_entries, 1);
    assert_int_equal(b->first_entry, IDX(2));
    /* The appends may leave before the leader's own write is durable. */
    for (raft_id to = 2; to <= 3; to++) {
        const fx_sent *a = fx_find(f, mark, MSG(RAFT_MSG_APPEND, 1, to), 0);
        assert_non_null(a);
        assert_int_equal(a->m.log_index, IDX(1));
        assert_int_equal(a->m.log_term, TERM(1));
        assert_int_equal(a->m.n_entries, 1);
        assert_int_equal(a->m.entries[0].index, IDX(2));
        assert_int_equal(a->m.entries[0].len, 1);
        assert_memory_equal(a->m.entries[0].data, "x", 1);
    }
    fx_deliver(f);
    fx_ready(f, 2);
    fx_ready(f, 3);
    assert_int_equal(fx_last_batch(f, 2)->first_entry, IDX(2));
    /* Not durable on the followers: no acknowledgement. */
    assert_int_equal(fx_count(f, mark, MSG(RAFT_MSG_APPEND_RESP, 0, 1)), 0);
    fx_stabilize(f);
    assert_int_equal(fx_count(f, mark, MSG(RAFT_MSG_APPEND_RESP, 0, 1)), 0);
    assert_int_equal(fx_commit(f, 1), IDX(1));

    /* Follower 2 is durable and acknowledges; the leader is not durable:
     * one durable copy out of three is no majority. */
    fx_persist(f, 2);
    fx_stabilize(f);
    const fx_sent *ack = fx_find(f, mark, MSG(RAFT_MSG_APPEND_RESP, 2, 1), 0);
    assert_non_null(ack);
    assert_false(ack->m.reject);
    assert_int_equal(ack->m.index, IDX(2));
    assert_int_equal(fx_count(f, mark, MSG(RAFT_MSG_APPEND_RESP, 3, 1)), 0);
    assert_int_equal(fx_commit(f, 1), IDX(1));
    assert_int_equal(raft_match_index(fx_raft(f, 1), 2), IDX(2));

    /* The leader's own write becomes durable: two of three. */
    fx_persist(f, 1);
    fx_stabilize(f);
    assert_int_equal(fx_commit(f, 1), IDX(2));
    assert_true(fx_applied(f, 1, "x"));
    fx_tick(f, 1, 1); /* the next heartbeat carries the commit */
    fx_persist(f, 2);
    fx_stabilize(f);
    assert_int_equal(fx_commit(f, 2), IDX(2));
    assert_true(fx_applied(f, 2, "x"));
    /* Member 3 is still not durable and never acknowledged. */
    assert_int_equal(fx_count(f, mark, MSG(RAFT_MSG_APPEND_RESP, 3, 1)), 0);
    fx_free(f);
}

/* Two durable followers commit an entry that the leader has not yet made
 * durable itself (the leader's disk is one vote among three). */
static void test_commit_without_leader_durability(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    fx_node_of(f, 1)->auto_persist = false;
    assert_int_equal(fx_propose(f, 1, "y"), 0);
    fx_stabilize(f);
    assert_int_equal(raft_match_index(fx_raft(f, 1), 2), IDX(2));
    assert_int_equal(raft_match_index(fx_raft(f, 1), 3), IDX(2));
    assert_int_equal(fx_commit(f, 1), IDX(2));
    assert_int_equal(fx_status(f, 1).persisted, IDX(1));
    fx_persist(f, 1);
    fx_stabilize(f);
    assert_true(fx_applied(f, 1, "y"));
    fx_free(f);
}

static bool appends_entries(const raft_msg *m, const void *arg)
{
    (void)arg;
    return m->n_entries > 0;
}

/* Pipelining: once a follower is known to match, the leader keeps up to
 * max_inflight_msgs appends in flight to it without waiting, then pauses;
 * acknowledgements reopen the window and the backlog goes out together. */
static void test_pipelining_window(void **state)
{
    (void)state;
    raft_config c = fx_config();
    c.max_inflight_msgs = 3;
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    fx_tick(f, 0, 1);
    size_t mark = fx_mark(f);
    int hold = fx_hold(f, (fx_match){.type = RAFT_MSG_APPEND, .from = 1});
    char buf[16];
    for (int i = 0; i < 6; i++) {
        snprintf(buf, sizeof buf, "p%d", i);
        assert_int_equal(fx_propose(f, 1, buf), 0);
        fx_ready(f, 1);
    }
    fx_match to2 = {.type = RAFT_MSG_APPEND, .from = 1, .to = 2, .pred = appends_entries};
    assert_int_equal(fx_count(f, mark, to2), 3);
    for (size_t k = 0; k < 3; k++) {
        const fx_sent *a = fx_find(f, mark, to2, k);
        assert_int_equal(a->m.log_index, IDX(1 + k));
        assert_int_equal(a->m.n_entries, 1);
        assert_int_equal(a->m.entries[0].index, IDX(2 + k));
    }
    assert_int_equal(fx_inflight(f, to2), 3);
    assert_int_equal(fx_last_index(f, 1), IDX(7));

    /* The window reopens: the three waiting entries go in one message. */
    fx_release(f, hold);
    size_t reopened = fx_mark(f);
    fx_stabilize(f);
    const fx_sent *a = fx_find(f, reopened, to2, 0);
    assert_non_null(a);
    assert_int_equal(a->m.log_index, IDX(4));
    assert_int_equal(a->m.n_entries, 3);
    assert_int_equal(a->m.entries[2].index, IDX(7));
    fx_tick(f, 1, 1);
    for (raft_id id = 1; id <= 3; id++) {
        assert_int_equal(fx_commit(f, id), IDX(7));
        assert_true(fx_applied(f, id, "p5"));
    }
    fx_free(f);
}

/* raft_report_unreachable: the leader stops pipelining to that follower and
 * probes it with one append at a time until it answers. */
static void test_unreachable_follower_is_probed(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    fx_tick(f, 0, 1);
    int hold = fx_hold(f, MSG(RAFT_MSG_APPEND, 1, 3));
    raft_report_unreachable(fx_raft(f, 1), 3);
    size_t mark = fx_mark(f);
    char buf[16];
    for (int i = 0; i < 4; i++) {
        snprintf(buf, sizeof buf, "u%d", i);
        assert_int_equal(fx_propose(f, 1, buf), 0);
        fx_ready(f, 1);
    }
    fx_match to2 = {.type = RAFT_MSG_APPEND, .from = 1, .to = 2, .pred = appends_entries};
    fx_match to3 = {.type = RAFT_MSG_APPEND, .from = 1, .to = 3, .pred = appends_entries};
    assert_int_equal(fx_count(f, mark, to2), 4); /* pipelined */
    assert_int_equal(fx_count(f, mark, to3), 1); /* probing */

    /* An older answer (a duplicate, or one delayed behind the probe: its index is below the
     * probe's) does not release another probe. Before, each did, and the answers to those
     * probes counted again: the simulator saw 200,000 appends a second. */
    uint64_t match = raft_match_index(fx_raft(f, 1), 3);
    assert_true(match >= 2);
    raft_msg old;
    memset(&old, 0, sizeof old);
    old.type = RAFT_MSG_APPEND_RESP;
    old.from = 3;
    old.to = 1;
    old.term = fx_term(f, 1);
    old.index = match - 1;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(fx_inject(f, &old), 0);
        fx_ready(f, 1);
    }
    assert_int_equal(fx_count(f, mark, (fx_match){.type = RAFT_MSG_APPEND, .from = 1, .to = 3}), 1);

    /* the probe's own answer does: 3 catches up */
    fx_release(f, hold);
    fx_stabilize(f);
    fx_tick(f, 1, 1);
    assert_true(fx_applied(f, 3, "u3"));
    assert_int_equal(raft_match_index(fx_raft(f, 1), 3), fx_last_index(f, 1));
    fx_free(f);
}

/* A batch whose only change is the commit index need not be synced (rd.must_sync false, as
 * etcd's MustSync): the commit index is learnt again from the leader. One with entries, a new
 * term or vote, or the first commit of a configuration entry must be. */
static void test_commit_only_batches_need_no_sync(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    for (int i = 0; i < 3; i++) {
        char buf[8];
        snprintf(buf, sizeof buf, "m%d", i);
        assert_int_equal(fx_propose(f, 1, buf), 0);
        fx_stabilize(f);
        fx_tick(f, 0, 1);
    }
    for (raft_id id = 1; id <= 3; id++) {
        const fx_node *n = fx_node_of(f, id);
        raft_hard_state prev = {0, 0, 0};
        size_t commit_only = 0, synced = 0;
        for (size_t i = 0; i < n->n_batches; i++) {
            const fx_batch_rec *b = &n->batches[i];
            bool term_or_vote =
                b->hs_changed && (b->hs.term != prev.term || b->hs.vote != prev.vote);
            if (b->n_entries > 0 || term_or_vote) {
                assert_true(b->must_sync);
                synced++;
            } else {
                assert_false(b->must_sync);
                commit_only += b->hs_changed;
            }
            if (b->hs_changed)
                prev = b->hs;
        }
        assert_true(synced >= 1);
        assert_true(commit_only >= 1); /* the commit index alone moved at least once */
    }

    /* The batch that first commits a configuration entry is synced on every member: the
     * configuration takes effect only once that commit is durable. */
    size_t from[4];
    for (raft_id id = 1; id <= 3; id++)
        from[id] = fx_node_of(f, id)->n_batches;
    raft_conf t = fx_mkconf("1,2", NULL);
    assert_int_equal(raft_propose_conf(fx_raft(f, 1), &t), 0);
    uint64_t joint = fx_last_index(f, 1);
    fx_stabilize(f);
    fx_tick(f, 0, 2);
    for (raft_id id = 1; id <= 3; id++) {
        const fx_node *n = fx_node_of(f, id);
        size_t i = from[id];
        while (i < n->n_batches && !(n->batches[i].hs_changed && n->batches[i].hs.commit >= joint))
            i++;
        assert_true(i < n->n_batches);
        assert_true(n->batches[i].must_sync);
    }
    assert_true(fx_conf_equal(raft_get_conf(fx_raft(f, 2)), &t));
    fx_free(f);
}

/* Proposals that arrive before one raft_ready travel in one append per
 * follower; max_msg_bytes splits a large backlog. */
static void test_batching_proposals(void **state)
{
    (void)state;
    raft_config c = fx_config();
    c.max_msg_bytes = 100;
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    fx_tick(f, 0, 1);
    size_t mark = fx_mark(f);
    const char *five[] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(fx_propose(f, 1, five[i]), 0);
    fx_ready(f, 1);
    fx_match to3 = {.type = RAFT_MSG_APPEND, .from = 1, .to = 3, .pred = appends_entries};
    assert_int_equal(fx_count(f, mark, to3), 1);
    const fx_sent *a = fx_find(f, mark, to3, 0);
    assert_int_equal(a->m.n_entries, 5);
    assert_int_equal(a->m.entries[0].index, IDX(2));
    assert_memory_equal(a->m.entries[4].data, "e", 1);
    fx_stabilize(f);
    for (raft_id id = 1; id <= 3; id++)
        assert_int_equal(fx_commit(f, id), IDX(6));

    /* Ten entries of 40 bytes with a 100-byte soft cap: several messages,
     * contiguous, none far over the cap. */
    mark = fx_mark(f);
    char big[41];
    for (int i = 0; i < 10; i++) {
        memset(big, 'A' + i, 40);
        big[40] = 0;
        assert_int_equal(fx_propose(f, 1, big), 0);
    }
    fx_stabilize(f);
    size_t n = fx_count(f, mark, to3);
    assert_true(n >= 3);
    uint64_t next = IDX(7);
    for (size_t k = 0; k < n; k++) {
        a = fx_find(f, mark, to3, k);
        uint64_t bytes = 0;
        for (uint32_t i = 0; i < a->m.n_entries; i++) {
            assert_int_equal(a->m.entries[i].index, next++);
            bytes += a->m.entries[i].len;
        }
        assert_true(a->m.n_entries == 1 || bytes <= 100 + 40);
    }
    assert_int_equal(next, IDX(17));
    assert_int_equal(fx_commit(f, 3), IDX(16));
    fx_free(f);
}

/* A follower proposal goes to the leader in RAFT_MSG_PROPOSE and commits;
 * without a known leader the proposal is refused. */
static void test_follower_forwards_proposals(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    assert_int_equal(fx_propose(f, 2, "early"), RAFT_ENOLEADER);
    fx_elect(f, 1);
    size_t mark = fx_mark(f);
    assert_int_equal(fx_propose(f, 2, "fwd"), 0);
    fx_stabilize(f);
    const fx_sent *p = fx_find(f, mark, MSG(RAFT_MSG_PROPOSE, 2, 1), 0);
    assert_non_null(p);
    assert_int_equal(p->m.n_entries, 1);
    assert_memory_equal(p->m.entries[0].data, "fwd", 3);
    fx_tick(f, 1, 1);
    for (raft_id id = 1; id <= 3; id++)
        assert_true(fx_applied(f, id, "fwd"));
    fx_free(f);
}

/* Limits on proposals: one entry larger than max_entry_bytes, and the
 * leader's cap on uncommitted bytes. */
static void test_proposal_limits(void **state)
{
    (void)state;
    raft_config c = fx_config();
    c.max_entry_bytes = 64;
    c.max_uncommitted_bytes = 100;
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    uint8_t big[65];
    memset(big, 'x', sizeof big);
    assert_int_equal(raft_propose(fx_raft(f, 1), big, 65), RAFT_ETOOLARGE);
    assert_int_equal(raft_propose(fx_raft(f, 1), big, 64), 0);
    fx_stabilize(f);
    assert_int_equal(fx_commit(f, 1), IDX(2));

    /* The leader alone cannot commit: uncommitted bytes pile up to the cap. */
    fx_isolate(f, 1);
    int accepted = 0, rc = 0;
    for (int i = 0; i < 10 && rc == 0; i++) {
        rc = raft_propose(fx_raft(f, 1), big, 40);
        if (rc == 0)
            accepted++;
        fx_stabilize(f);
    }
    assert_int_equal(rc, RAFT_EBUSY);
    assert_in_range(accepted, 2, 3);
    /* Committing frees the room. */
    fx_heal(f);
    fx_tick(f, 1, 1);
    assert_int_equal(fx_commit(f, 1), fx_last_index(f, 1));
    assert_int_equal(raft_propose(fx_raft(f, 1), big, 40), 0);
    fx_free(f);
}

/* Fast back-off: a follower holding a long suffix of another term is
 * repaired in a couple of round trips, thanks to the term hints in its
 * rejections, not one round trip per divergent entry. */
static void test_fast_backoff_with_term_hints(void **state)
{
    (void)state;
    raft_config c = fx_config();
    c.check_quorum = false; /* the stale leader keeps its suffix around */
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(fx_propose(f, 1, "common"), 0);
    fx_stabilize(f);
    fx_elect(f, 3); /* TERM(2); IDX(5) is its empty entry */
    assert_int_equal(fx_term(f, 3), TERM(2));
    assert_int_equal(fx_commit(f, 1), IDX(5));

    /* Member 3, cut off, appends 30 entries of its term nobody else gets. */
    fx_isolate(f, 3);
    for (int i = 0; i < 30; i++)
        assert_int_equal(fx_propose(f, 3, "stale"), 0);
    fx_stabilize(f);
    assert_int_equal(fx_last_index(f, 3), IDX(35));

    /* Member 1 leads TERM(3) and commits 20 entries with 2. */
    fx_elect(f, 1);
    assert_int_equal(fx_term(f, 1), TERM(3));
    for (int i = 0; i < 20; i++)
        assert_int_equal(fx_propose(f, 1, "fresh"), 0);
    fx_stabilize(f);
    assert_int_equal(fx_commit(f, 1), IDX(26));
    /* Member 2 leads TERM(4): it probes 3 from its own last index. */
    fx_elect(f, 2);
    assert_int_equal(fx_term(f, 2), TERM(4));
    assert_int_equal(fx_last_index(f, 2), IDX(27));

    fx_heal(f);
    size_t mark = fx_mark(f);
    for (int t = 0; t < 5 && fx_last_index(f, 3) != 27; t++)
        fx_tick(f, 2, 1);
    fx_match rejects = {.type = RAFT_MSG_APPEND_RESP, .from = 3, .to = 2, .reject = FX_YES};
    size_t n_rejects = fx_count(f, mark, rejects);
    assert_in_range(n_rejects, 1, 2);
    const fx_sent *r = fx_find(f, mark, rejects, 0);
    assert_int_not_equal(r->m.hint_term, 0);
    assert_true(r->m.hint_term <= TERM(3));
    assert_true(r->m.hint_index <= IDX(26));
    /* Appends sent to 3 until it matched: a handful, not ~20. */
    const fx_sent *ok = fx_find(
        f, mark, (fx_match){.type = RAFT_MSG_APPEND_RESP, .from = 3, .to = 2, .reject = FX_NO}, 0);
    assert_non_null(ok);
    size_t probes = 0;
    for (size_t i = mark; i < ok->ordinal; i++)
        if (fx_matches(&(fx_match){.type = RAFT_MSG_APPEND, .from = 2, .to = 3}, &f->trace[i].m))
            probes++;
    assert_true(probes <= 3);

    fx_tick(f, 2, 1);
    assert_int_equal(fx_last_index(f, 3), IDX(27));
    fx_assert_logs_equal(f, 2, 3, 1, IDX(27));
    assert_int_equal(fx_commit(f, 3), IDX(27));
    assert_int_equal(fx_node_of(f, 3)->sm_applied, IDX(27));
    fx_check_log_matching(f);
    fx_free(f);
}

/* An append carrying `index` to a member that already holds index - 1: the
 * message that would give it the entry (probes that it must reject pass). */
typedef struct gives_entry_arg {
    fx *f;
    uint64_t index;
} gives_entry_arg;

static bool gives_entry(const raft_msg *m, const void *arg)
{
    const gives_entry_arg *g = arg;
    bool carries = false;
    for (uint32_t i = 0; i < m->n_entries; i++)
        carries |= m->entries[i].index == g->index;
    return carries && fx_log_last(&g->f->nodes[m->to].wlog) >= g->index - 1;
}

/* Figure 8 of the Raft paper: an entry of an earlier term stored on a
 * majority must not be committed by counting replicas; it commits only
 * once an entry of the leader's own term reaches a majority. */
static void test_figure8_no_commit_of_old_term_by_counting(void **state)
{
    (void)state;
    raft_config c = fx_config();
    c.pre_vote = false;
    c.check_quorum = false;
    c.max_msg_bytes = 100;
    c.max_inflight_msgs = 1; /* one append at a time: each step is visible */
    fx *f = fx_new(5, &c);
    fx_elect(f, 1);
    assert_int_equal(fx_commit(f, 5), IDX(1));

    /* First term: entry IDX(2) reaches member 2 only, and the
     * acknowledgement is lost, so the leader never commits it. */
    char x[151];
    memset(x, 'x', 150);
    x[150] = 0;
    for (raft_id id = 3; id <= 5; id++)
        fx_cut(f, 1, id);
    int lost = fx_drop(f, MSG(RAFT_MSG_APPEND_RESP, 2, 1), -1);
    assert_int_equal(fx_propose(f, 1, x), 0);
    fx_stabilize(f);
    fx_release(f, lost);
    assert_int_equal(fx_last_index(f, 2), IDX(2));
    assert_int_equal(raft_log_term(fx_raft(f, 2), IDX(2)), TERM(1));
    assert_int_equal(fx_commit(f, 1), IDX(1));

    /* Member 2 leads the next term with 4 and 5 (1 and 3 are away); its
     * own empty entry is IDX(3). Appends that would give 4 and 5 that entry
     * are held back (a first probe, which they must reject, passes). */
    fx_isolate(f, 1);
    fx_isolate(f, 3);
    gives_entry_arg three = {f, IDX(3)};
    int hold = fx_hold(f, (fx_match){.type = RAFT_MSG_APPEND, .pred = gives_entry, .arg = &three});
    fx_elect(f, 2);
    assert_int_equal(fx_term(f, 2), TERM(2));
    for (int t = 0; t < 3; t++)
        fx_tick(f, 2, 1);
    raft *l = fx_raft(f, 2);
    const raft_entry *e;
    assert_int_equal(raft_log_entry(l, IDX(3), &e), 0);
    assert_int_equal(e->term, TERM(2));
    /* Entry IDX(2) of the earlier term is now on 2, 4 and 5, a majority of
     * five, and the leader knows it... */
    assert_int_equal(raft_match_index(l, 4), IDX(2));
    assert_int_equal(raft_match_index(l, 5), IDX(2));
    assert_int_equal(fx_last_index(f, 4), IDX(2));
    /* ...but it is of an earlier term: nothing commits by counting it. */
    assert_int_equal(fx_commit(f, 2), IDX(1));
    for (raft_id id = 4; id <= 5; id++)
        assert_int_equal(fx_commit(f, id), IDX(1));

    /* The leader's own entry reaches the majority: everything up to IDX(3)
     * commits, the old entry with it. */
    fx_release(f, hold);
    fx_stabilize(f);
    fx_tick(f, 2, 1);
    assert_int_equal(fx_commit(f, 2), IDX(3));
    for (raft_id id = 4; id <= 5; id++) {
        assert_int_equal(fx_commit(f, id), IDX(3));
        assert_true(fx_applied(f, id, x));
    }
    fx_free(f);
}

/* A single member commits alone, but only once its write is durable. */
static void test_single_member_commits_after_persistence(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(1, &c);
    fx_elect(f, 1);
    assert_int_equal(fx_commit(f, 1), IDX(1));
    fx_node_of(f, 1)->auto_persist = false;
    assert_int_equal(fx_propose(f, 1, "solo"), 0);
    fx_stabilize(f);
    assert_int_equal(fx_commit(f, 1), IDX(1));
    assert_false(fx_applied(f, 1, "solo"));
    fx_persist(f, 1);
    fx_stabilize(f);
    assert_int_equal(fx_commit(f, 1), IDX(2));
    assert_true(fx_applied(f, 1, "solo"));
    fx_free(f);
}

/* A follower that crashes before its write is durable loses the entries,
 * never having acknowledged them; it catches up after restarting. */
static void test_unsynced_entries_lost_on_crash_were_never_acked(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    fx_node_of(f, 3)->auto_persist = false;
    size_t mark = fx_mark(f);
    assert_int_equal(fx_propose(f, 1, "z"), 0);
    fx_stabilize(f);
    assert_int_equal(fx_commit(f, 1), IDX(2));
    assert_int_equal(fx_count(f, mark, MSG(RAFT_MSG_APPEND_RESP, 3, 1)), 0);
    assert_int_equal(fx_status(f, 3).last_index, IDX(2));
    fx_crash(f, 3);
    fx_restart(f, 3);
    assert_int_equal(fx_last_index(f, 3), IDX(1));
    fx_node_of(f, 3)->auto_persist = true;
    fx_tick(f, 0, 3);
    assert_int_equal(fx_last_index(f, 3), IDX(2));
    assert_true(fx_applied(f, 3, "z"));
    fx_free(f);
}

/* A leader whose applies are held (its store is being defragmented) keeps its followers:
 * it commits, heartbeats and replicates, hands out nothing to apply, and applies it all,
 * in order, once released. */
static void test_held_applies(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    uint64_t term = fx_term(f, 1);
    raft_set_apply_held(fx_node_of(f, 1)->r, true);
    assert_int_equal(fx_propose(f, 1, "h1"), 0);
    assert_int_equal(fx_propose(f, 2, "h2"), 0); /* forwarded */
    fx_stabilize(f);
    assert_int_equal(fx_commit(f, 1), IDX(3));
    assert_false(fx_applied(f, 1, "h1"));
    assert_true(fx_applied(f, 2, "h1") && fx_applied(f, 3, "h2"));
    fx_tick(f, 0, 10 * (int)c.election_ticks); /* all members tick: no election */
    assert_int_equal(fx_term(f, 2), term);
    assert_int_equal(fx_agreed_leader(f), 1);
    assert_false(fx_applied(f, 1, "h2"));
    raft_set_apply_held(fx_node_of(f, 1)->r, false);
    fx_stabilize(f);
    assert_true(fx_applied(f, 1, "h1") && fx_applied(f, 1, "h2"));
    fx_free(f);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_new_leader_appends_empty_entry),
    cmocka_unit_test(test_commit_needs_durable_majority),
    cmocka_unit_test(test_commit_without_leader_durability),
    cmocka_unit_test(test_pipelining_window),
    cmocka_unit_test(test_batching_proposals),
    cmocka_unit_test(test_unreachable_follower_is_probed),
    cmocka_unit_test(test_commit_only_batches_need_no_sync),
    cmocka_unit_test(test_follower_forwards_proposals),
    cmocka_unit_test(test_proposal_limits),
    cmocka_unit_test(test_fast_backoff_with_term_hints),
    cmocka_unit_test(test_figure8_no_commit_of_old_term_by_counting),
    cmocka_unit_test(test_single_member_commits_after_persistence),
    cmocka_unit_test(test_unsynced_entries_lost_on_crash_were_never_acked),
    cmocka_unit_test(test_held_applies),
};

RAFT_TEST_GROUP(raft_replication_group, "replication", tests);
