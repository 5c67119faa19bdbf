/*
 * ReadIndex: one heartbeat round confirms a whole batch of reads; a leader
 * that cannot reach a majority confirms nothing and fails its reads when it
 * steps down; a new leader waits for its first commit; followers forward
 * reads; lease mode answers without a round.
 */
#include <string.h>

#include "raft_tests.h"

static bool has_read(fx *f, raft_id id, uint64_t ctx, uint64_t *index)
{
    fx_node *n = fx_node_of(f, id);
    for (size_t i = 0; i < n->n_reads; i++)
        if (n->reads[i].context == ctx) {
            if (index)
                *index = n->reads[i].index;
            return true;
        }
    return false;
}

static bool has_failed_read(fx *f, raft_id id, uint64_t ctx)
{
    fx_node *n = fx_node_of(f, id);
    for (size_t i = 0; i < n->n_failed; i++)
        if (n->failed_reads[i] == ctx)
            return true;
    return false;
}

static bool has_context(const raft_msg *m, const void *arg)
{
    (void)arg;
    return m->context != 0;
}

/* Ten reads issued before one raft_ready: one heartbeat per follower
 * confirms them all. */
static void test_reads_batched_into_one_heartbeat_round(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    assert_int_equal(fx_propose(f, 1, "a"), 0);
    fx_stabilize(f);
    uint64_t commit = fx_commit(f, 1);
    assert_int_equal(commit, IDX(2));

    size_t mark = fx_mark(f);
    for (uint64_t ctx = 100; ctx < 110; ctx++)
        assert_int_equal(raft_read_index(fx_raft(f, 1), ctx), 0);
    fx_ready(f, 1);
    assert_int_equal(fx_last_batch(f, 1)->n_reads, 0); /* not confirmed yet */
    assert_int_equal(fx_count(f, mark, MSG(RAFT_MSG_HEARTBEAT, 1, 2)), 1);
    assert_int_equal(fx_count(f, mark, MSG(RAFT_MSG_HEARTBEAT, 1, 3)), 1);
    const fx_sent *hb = fx_find(f, mark, MSG(RAFT_MSG_HEARTBEAT, 1, 2), 0);
    assert_int_not_equal(hb->m.context, 0);
    fx_stabilize(f);
    /* The followers echo the round. */
    const fx_sent *resp = fx_find(f, mark, MSG(RAFT_MSG_HEARTBEAT_RESP, 2, 1), 0);
    assert_non_null(resp);
    assert_int_equal(resp->m.context, hb->m.context);
    /* All ten come out, at the commit index. */
    for (uint64_t ctx = 100; ctx < 110; ctx++) {
        uint64_t index = 0;
        assert_true(has_read(f, 1, ctx, &index));
        assert_int_equal(index, commit);
    }
    assert_int_equal(fx_node_of(f, 1)->n_reads, 10);
    assert_int_equal(fx_count(f, mark, MSG(RAFT_MSG_HEARTBEAT, 0, 0)), 2);
    assert_int_equal(fx_count(f, mark, MSG(RAFT_MSG_APPEND, 0, 0)), 0);
    assert_int_equal(fx_last_index(f, 1), IDX(2)); /* nothing written to the log */

    /* One answer is a majority with the leader: the round completes with 3 away. */
    fx_isolate(f, 3);
    assert_int_equal(raft_read_index(fx_raft(f, 1), 200), 0);
    fx_stabilize(f);
    assert_true(has_read(f, 1, 200, NULL));
    fx_free(f);
}

/* A leader cut off from the majority confirms no read; when CheckQuorum
 * makes it step down, the read is failed. */
static void test_isolated_leader_does_not_confirm_reads(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    fx_tick(f, 0, 2);
    fx_isolate(f, 1);
    assert_int_equal(raft_read_index(fx_raft(f, 1), 7), 0);
    fx_stabilize(f);
    assert_false(has_read(f, 1, 7, NULL));
    int t = 0;
    while (fx_role(f, 1) == RAFT_LEADER) {
        fx_tick(f, 1, 1);
        assert_false(has_read(f, 1, 7, NULL));
        assert_true(++t <= 2 * (int)c.election_ticks);
    }
    fx_ready_all(f);
    assert_false(has_read(f, 1, 7, NULL));
    assert_true(has_failed_read(f, 1, 7));
    fx_free(f);
}

/* Without CheckQuorum the deposed leader learns of the new term from the
 * others, steps down, and fails its pending reads. */
static void test_reads_failed_when_leader_deposed(void **state)
{
    (void)state;
    raft_config c = fx_config();
    c.check_quorum = false;
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    fx_isolate(f, 1);
    assert_int_equal(raft_read_index(fx_raft(f, 1), 9), 0);
    assert_int_equal(raft_read_index(fx_raft(f, 1), 10), 0);
    fx_stabilize(f);
    fx_elect(f, 2);
    fx_heal(f);
    fx_tick(f, 2, 1);
    fx_ready_all(f);
    assert_int_equal(fx_role(f, 1), RAFT_FOLLOWER);
    assert_int_equal(fx_term(f, 1), TERM(2));
    assert_true(has_failed_read(f, 1, 9));
    assert_true(has_failed_read(f, 1, 10));
    assert_false(has_read(f, 1, 9, NULL));
    assert_false(has_read(f, 1, 10, NULL));
    fx_free(f);
}

/* A new leader does not know the commit index until an entry of its own
 * term commits: its reads wait for that. */
static void test_new_leader_reads_wait_for_first_commit(void **state)
{
    (void)state;
    raft_config c = fx_config();
    c.pre_vote = false;
    c.check_quorum = false;
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    assert_int_equal(fx_propose(f, 1, "a"), 0);
    fx_stabilize(f);
    int hold = fx_hold(f, (fx_match){.type = RAFT_MSG_APPEND, .from = 2});
    fx_elect(f, 2);
    assert_int_equal(fx_term(f, 2), TERM(2));
    uint64_t own = fx_last_index(f, 2);
    assert_int_equal(raft_log_term(fx_raft(f, 2), own), TERM(2));
    assert_true(fx_commit(f, 2) < own);

    int rc = raft_read_index(fx_raft(f, 2), 55);
    assert_int_equal(rc, 0);
    fx_stabilize(f);
    fx_tick(f, 2, 2);
    assert_false(has_read(f, 2, 55, NULL));
    assert_false(has_failed_read(f, 2, 55));

    fx_release(f, hold);
    fx_stabilize(f);
    fx_tick(f, 2, 1);
    uint64_t index = 0;
    assert_true(has_read(f, 2, 55, &index));
    assert_true(index >= own);
    fx_free(f);
}

/* A follower's read goes to the leader, which confirms it with a heartbeat
 * round and answers with its commit index. Without a leader: ENOLEADER. */
static void test_follower_read_is_forwarded(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    assert_int_equal(raft_read_index(fx_raft(f, 2), 1), RAFT_ENOLEADER);
    fx_elect(f, 1);
    assert_int_equal(fx_propose(f, 1, "a"), 0);
    fx_stabilize(f);
    size_t mark = fx_mark(f);
    assert_int_equal(raft_read_index(fx_raft(f, 2), 77), 0);
    fx_stabilize(f);
    const fx_sent *req = fx_find(f, mark, MSG(RAFT_MSG_READ_INDEX, 2, 1), 0);
    assert_non_null(req);
    const fx_sent *hb = fx_find(
        f, req->ordinal, (fx_match){.type = RAFT_MSG_HEARTBEAT, .from = 1, .pred = has_context}, 0);
    assert_non_null(hb);
    const fx_sent *resp = fx_find(f, mark, MSG(RAFT_MSG_READ_INDEX_RESP, 1, 2), 0);
    assert_non_null(resp);
    assert_true(resp->ordinal > hb->ordinal);
    assert_false(resp->m.reject);
    assert_int_equal(resp->m.index, IDX(2));
    assert_int_equal(resp->m.context, req->m.context);
    uint64_t index = 0;
    assert_true(has_read(f, 2, 77, &index));
    assert_int_equal(index, IDX(2));
    assert_false(has_read(f, 1, 77, NULL));
    fx_free(f);
}

/* Three members with lease reads (seed 0: the fixture's), past the vote hold after start,
 * 1 elected and `ticks` ticks of heartbeats after. */
static fx *lease_cluster(raft_config *c, uint64_t seed, int ticks)
{
    *c = fx_config();
    c->read_mode = RAFT_READ_LEASE;
    if (seed)
        c->seed = seed;
    fx *f = fx_new(3, c);
    fx_pass_start_hold(f);
    fx_elect(f, 1);
    fx_tick(f, 0, ticks);
    return f;
}

/* Asks 1 for a read and says whether it answered at once (from its lease). */
static bool lease_read_served(fx *f, uint64_t ctx)
{
    int rc = raft_read_index(fx_raft(f, 1), ctx);
    assert_true(rc == 0 || rc == RAFT_EBUSY);
    fx_ready_all(f);
    return has_read(f, 1, ctx, NULL);
}

/* 1 is cut off. For up to 4 election timeouts, while it still leads: once another leader has
 * committed "w" (which 1 cannot know), 1 must not answer a lease read. `each_tick` (or NULL)
 * runs before every tick. */
static void expect_no_stale_lease_read(fx *f, const raft_config *c, uint64_t seed,
                                       void (*each_tick)(fx *f))
{
    uint64_t ctx = 1000;
    bool written = false;
    for (int t = 0; t < 4 * (int)c->election_ticks && fx_role(f, 1) == RAFT_LEADER; t++) {
        if (each_tick)
            each_tick(f);
        fx_tick(f, 0, 1);
        raft_id l = fx_role(f, 2) == RAFT_LEADER ? 2 : fx_role(f, 3) == RAFT_LEADER ? 3 : 0;
        if (l && !written) {
            assert_int_equal(fx_propose(f, l, "w"), 0);
            fx_stabilize(f);
            written = fx_applied(f, l, "w");
        }
        if (written && fx_role(f, 1) == RAFT_LEADER && lease_read_served(f, ++ctx))
            fail_msg("seed %llu: stale lease read on the deposed leader at tick %d",
                     (unsigned long long)seed, t);
    }
}

/* Lease reads: the leader answers at once while it has heard from a
 * majority within the election timeout; not after. */
static void test_lease_read_without_round(void **state)
{
    (void)state;
    raft_config c;
    fx *f = lease_cluster(&c, 0, 2);
    size_t mark = fx_mark(f);
    assert_int_equal(raft_read_index(fx_raft(f, 1), 5), 0);
    fx_ready_all(f);
    uint64_t index = 0;
    assert_true(has_read(f, 1, 5, &index));
    assert_int_equal(index, fx_commit(f, 1));
    assert_int_equal(fx_count(f, mark, (fx_match){0}), 0);

    /* An election timeout without hearing a majority: no lease. */
    fx_isolate(f, 1);
    fx_tick(f, 1, (int)c.election_ticks);
    if (fx_role(f, 1) == RAFT_LEADER) {
        int rc = raft_read_index(fx_raft(f, 1), 6);
        assert_true(rc == 0 || rc == RAFT_ENOLEADER);
        fx_stabilize(f);
        assert_false(has_read(f, 1, 6, NULL));
    }
    fx_free(f);
}

/* Lease reads are never stale: once the majority, cut off from the leader,
 * has elected a new leader and committed a write, the old leader (which may
 * not have noticed yet) must not answer a lease read. Several seeds, so
 * that the elections fall at different ticks. */
static void test_lease_read_never_stale_after_partition(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 30; seed++) {
        raft_config c;
        fx *f = lease_cluster(&c, seed, 3);
        fx_isolate(f, 1);
        expect_no_stale_lease_read(f, &c, seed, NULL);
        fx_free(f);
    }
}

/* A voter that acknowledged the leader's heartbeats and then restarted knows no leader, but
 * the old leader's lease still counts on it: it must not help elect another leader before
 * that lease has run out. Here 2 is cut off from the leader 1 and keeps campaigning; 3, the
 * voter that gives 1 its quorum, crashes and restarts at once while 1 is cut off too. */
static void test_lease_read_never_stale_after_voter_restart(void **state)
{
    (void)state;
    int elected = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        raft_config c;
        fx *f = lease_cluster(&c, seed, 3);
        fx_cut(f, 1, 2);
        fx_tick(f, 0, (int)(seed % (2 * c.election_ticks)) + (int)c.election_ticks);
        assert_int_equal(fx_role(f, 1), RAFT_LEADER); /* 3 still answers it */
        fx_crash(f, 3);
        fx_restart(f, 3);
        fx_isolate(f, 1);
        expect_no_stale_lease_read(f, &c, seed, NULL);
        /* 2 is elected in the end, with the vote of 3, once the hold is over */
        fx_tick(f, 0, 4 * (int)c.election_ticks);
        if (fx_role(f, 2) == RAFT_LEADER)
            elected++;
        fx_free(f);
    }
    assert_true(elected > 0);
}

/* A leader that handed over (TimeoutNow) serves no more lease reads in its term: the forced
 * election that message starts takes the votes its lease counts on, and it may come long
 * after the transfer timed out on the leader (here the message is held that long). */
static void test_lease_read_never_stale_after_transfer(void **state)
{
    (void)state;
    raft_config c;
    fx *f = lease_cluster(&c, 0, 2);
    int h = fx_hold(f, MSG(RAFT_MSG_TIMEOUT_NOW, 1, 2));
    assert_int_equal(raft_transfer_leader(fx_raft(f, 1), 2), 0);
    fx_stabilize(f);
    assert_int_equal(fx_inflight(f, MSG(RAFT_MSG_TIMEOUT_NOW, 1, 2)), 1);
    fx_tick(f, 0, (int)c.election_ticks); /* the transfer times out; 1 leads on */
    assert_int_equal(fx_status(f, 1).transferee, 0);
    assert_int_equal(fx_role(f, 1), RAFT_LEADER);

    fx_release(f, h);
    fx_deliver(f); /* 2 gets the TimeoutNow at last */
    fx_ready(f, 2);
    fx_isolate(f, 1);
    fx_stabilize(f);
    assert_int_equal(fx_role(f, 2), RAFT_LEADER);
    assert_int_equal(fx_propose(f, 2, "w"), 0);
    fx_stabilize(f);
    assert_true(fx_applied(f, 2, "w"));

    assert_int_equal(fx_role(f, 1), RAFT_LEADER); /* it cannot know yet */
    assert_false(lease_read_served(f, 77));
    fx_free(f);
}

/* Followers told to campaign (raft_campaign: an operator, or the simulator's nemesis) while
 * the leader's lease counts on them: a campaign drops the leader they know, and with it their
 * refusal of the others' (pre-)votes. The simulator found 4 of 5 members campaigning at once,
 * electing a new leader among themselves within the old one's lease (seed 104195 of 5
 * members, with commit-only batches unsynced). Here 1 is cut off, and 3 then 2 are told to
 * campaign before every tick. */
static void campaign_3_then_2(fx *f)
{
    raft_campaign(fx_raft(f, 3)); /* 2 refuses its pre-vote, but 3 now knows no leader */
    fx_stabilize(f);
    raft_campaign(fx_raft(f, 2));
    fx_stabilize(f);
}

static void test_lease_read_never_stale_after_campaign(void **state)
{
    (void)state;
    int elected = 0;
    for (uint64_t seed = 1; seed <= 30; seed++) {
        raft_config c;
        fx *f = lease_cluster(&c, seed, 3);
        fx_isolate(f, 1);
        expect_no_stale_lease_read(f, &c, seed, campaign_3_then_2);
        /* once the lease is over, a campaign elects 2 or 3 */
        fx_tick(f, 0, 4 * (int)c.election_ticks);
        raft_campaign(fx_raft(f, 2));
        fx_stabilize(f);
        if (fx_role(f, 2) == RAFT_LEADER || fx_role(f, 3) == RAFT_LEADER)
            elected++;
        fx_free(f);
    }
    assert_int_equal(elected, 30);
}

/* The queue of reads is bounded by max_pending_reads. */
static void test_pending_reads_are_bounded(void **state)
{
    (void)state;
    raft_config c = fx_config();
    c.max_pending_reads = 4;
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    fx_isolate(f, 1);
    for (uint64_t ctx = 1; ctx <= 4; ctx++) {
        assert_int_equal(raft_read_index(fx_raft(f, 1), ctx), 0);
        fx_stabilize(f);
    }
    assert_int_equal(raft_read_index(fx_raft(f, 1), 5), RAFT_EBUSY);
    fx_heal(f);
    fx_tick(f, 1, 1);
    for (uint64_t ctx = 1; ctx <= 4; ctx++)
        assert_true(has_read(f, 1, ctx, NULL));
    assert_int_equal(raft_read_index(fx_raft(f, 1), 6), 0);
    fx_free(f);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_reads_batched_into_one_heartbeat_round),
    cmocka_unit_test(test_isolated_leader_does_not_confirm_reads),
    cmocka_unit_test(test_reads_failed_when_leader_deposed),
    cmocka_unit_test(test_new_leader_reads_wait_for_first_commit),
    cmocka_unit_test(test_follower_read_is_forwarded),
    cmocka_unit_test(test_lease_read_without_round),
    cmocka_unit_test(test_lease_read_never_stale_after_partition),
    cmocka_unit_test(test_lease_read_never_stale_after_voter_restart),
    cmocka_unit_test(test_lease_read_never_stale_after_transfer),
    cmocka_unit_test(test_lease_read_never_stale_after_campaign),
    cmocka_unit_test(test_pending_reads_are_bounded),
};

RAFT_TEST_GROUP(raft_read_group, "read", tests);
