/*
 * Leader election: randomised timeouts, PreVote, the vote rules, the
 * durability of votes, CheckQuorum and the leader lease.
 */
#include <string.h>

#include "raft_tests.h"

/* Ticks `id` alone (its messages go nowhere) until its role leaves
 * `from`; returns the number of ticks. */
static int ticks_until_role_changes(fx *f, raft_id id, enum raft_role from)
{
    for (int t = 1; t <= 1000; t++) {
        raft_tick(fx_raft(f, id));
        fx_stabilize(f);
        if (fx_role(f, id) != from)
            return t;
    }
    fail_msg("member %llu never left role %s", (unsigned long long)id, raft_role_name(from));
    return -1;
}

/* A follower that hears nothing times out within [election, 2*election)
 * ticks, and the timeout differs between seeds. A candidate that does not
 * win times out again within the same range and starts a new term. */
static void test_election_timeout_is_randomised_in_range(void **state)
{
    (void)state;
    bool seen[64] = {false};
    int distinct = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        raft_config c = fx_config();
        c.seed = seed;
        c.pre_vote = false;
        fx *f = fx_new(3, &c);
        fx_isolate(f, 1);
        int t = ticks_until_role_changes(f, 1, RAFT_FOLLOWER);
        assert_in_range(t, c.election_ticks, 2 * c.election_ticks - 1);
        assert_int_equal(fx_role(f, 1), RAFT_CANDIDATE);
        assert_int_equal(fx_term(f, 1), TERM(1));
        if (!seen[t]) {
            seen[t] = true;
            distinct++;
        }
        /* The lost election times out again: TERM(2), within the range. */
        int t2 = 0;
        while (fx_term(f, 1) == TERM(1)) {
            raft_tick(fx_raft(f, 1));
            fx_stabilize(f);
            t2++;
            assert_true(t2 < 1000);
        }
        assert_in_range(t2, c.election_ticks, 2 * c.election_ticks - 1);
        assert_int_equal(fx_term(f, 1), TERM(2));
        assert_int_equal(fx_role(f, 1), RAFT_CANDIDATE);
        fx_free(f);
    }
    assert_true(distinct >= 4);

    /* With PreVote the first step is a pre-candidacy, in the same range. */
    for (uint64_t seed = 1; seed <= 10; seed++) {
        raft_config c = fx_config();
        c.seed = seed;
        fx *f = fx_new(3, &c);
        fx_isolate(f, 2);
        int t = ticks_until_role_changes(f, 2, RAFT_FOLLOWER);
        assert_in_range(t, c.election_ticks, 2 * c.election_ticks - 1);
        assert_int_equal(fx_role(f, 2), RAFT_PRE_CANDIDATE);
        assert_int_equal(fx_term(f, 2), TERM(0));
        fx_free(f);
    }
}

/* PreVote: the member that times out asks for pre-votes with term+1 without
 * bumping its own term; the voters' terms and votes stay untouched; only
 * after a majority of pre-votes does it become a candidate. */
static void test_prevote_does_not_bump_terms(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    int hold = fx_hold(f, (fx_match){0}); /* nothing moves yet */
    size_t mark = fx_mark(f);
    ticks_until_role_changes(f, 1, RAFT_FOLLOWER);
    assert_int_equal(fx_role(f, 1), RAFT_PRE_CANDIDATE);
    raft_status st = fx_status(f, 1);
    assert_int_equal(st.term, TERM(0));
    assert_int_equal(st.vote, 0);
    /* Nothing about the term was written to disk. */
    assert_int_equal(fx_node_of(f, 1)->dhs.term, TERM(0));

    assert_int_equal(fx_count(f, mark, MSG(RAFT_MSG_VOTE, 1, 0)), 2);
    for (raft_id to = 2; to <= 3; to++) {
        const fx_sent *v = fx_find(f, mark, MSG(RAFT_MSG_VOTE, 1, to), 0);
        assert_non_null(v);
        assert_true(v->m.pre_vote);
        assert_int_equal(v->m.term, TERM(1));
        assert_int_equal(v->m.log_index, IDX(0));
        assert_int_equal(v->m.log_term, f->boot_log_term);
    }

    /* Deliver the pre-votes only: the voters answer without changing state. */
    fx_release(f, hold);
    hold = fx_hold(f, (fx_match){.to = 1});
    fx_deliver(f);
    fx_ready_all(f);
    for (raft_id id = 2; id <= 3; id++) {
        assert_int_equal(fx_term(f, id), TERM(0));
        assert_int_equal(fx_status(f, id).vote, 0);
        assert_int_equal(fx_node_of(f, id)->dhs.term, TERM(0));
        const fx_sent *r = fx_find(f, mark, MSG(RAFT_MSG_VOTE_RESP, id, 1), 0);
        assert_non_null(r);
        assert_true(r->m.pre_vote);
        assert_false(r->m.reject);
    }
    size_t before_real = fx_mark(f);
    fx_release(f, hold);
    fx_stabilize(f);

    /* Now the real election in the next term. */
    const fx_sent *v = fx_find(f, before_real, MSG(RAFT_MSG_VOTE, 1, 2), 0);
    assert_non_null(v);
    assert_false(v->m.pre_vote);
    assert_int_equal(v->m.term, TERM(1));
    assert_int_equal(fx_role(f, 1), RAFT_LEADER);
    for (raft_id id = 1; id <= 3; id++)
        assert_int_equal(fx_term(f, id), TERM(1));
    assert_int_equal(fx_node_of(f, 1)->dhs.vote, 1);
    fx_free(f);
}

/* A candidate whose log is behind a voter's does not get its vote; the
 * member with the longer log then wins and repairs the other. */
static void test_candidate_with_stale_log_loses(void **state)
{
    (void)state;
    raft_config c = fx_config();
    c.pre_vote = false;
    c.check_quorum = false;
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    fx_cut(f, 1, 3);
    assert_int_equal(fx_propose(f, 1, "a"), 0);
    assert_int_equal(fx_propose(f, 1, "b"), 0);
    fx_stabilize(f);
    assert_int_equal(fx_commit(f, 1), IDX(3));
    assert_int_equal(fx_commit(f, 2), IDX(3));
    assert_int_equal(fx_last_index(f, 3), IDX(1));

    fx_crash(f, 1);
    fx_heal(f);
    size_t mark = fx_mark(f);
    raft_campaign(fx_raft(f, 3));
    fx_stabilize(f);
    const fx_sent *v = fx_find(f, mark, MSG(RAFT_MSG_VOTE, 3, 2), 0);
    assert_non_null(v);
    assert_int_equal(v->m.term, TERM(2));
    assert_int_equal(v->m.log_index, IDX(1));
    assert_int_equal(v->m.log_term, TERM(1));
    const fx_sent *r = fx_find(f, mark, MSG(RAFT_MSG_VOTE_RESP, 2, 3), 0);
    assert_non_null(r);
    assert_true(r->m.reject);
    assert_int_equal(
        fx_count(f, mark, (fx_match){.type = RAFT_MSG_VOTE_RESP, .from = 2, .reject = FX_NO}), 0);
    assert_int_not_equal(fx_role(f, 3), RAFT_LEADER);
    assert_int_not_equal(fx_status(f, 2).vote, 3);
    assert_int_equal(fx_term(f, 2), TERM(2)); /* it saw the higher term */

    /* The up-to-date member wins and brings the other up to date. */
    raft_campaign(fx_raft(f, 2));
    fx_stabilize(f);
    assert_int_equal(fx_role(f, 2), RAFT_LEADER);
    assert_int_equal(fx_term(f, 2), TERM(3));
    assert_true(fx_applied(f, 3, "a"));
    assert_true(fx_applied(f, 3, "b"));
    fx_assert_logs_equal(f, 2, 3, 1, fx_last_index(f, 2));
    fx_free(f);
}

/* One vote per term: member 1 grants TERM(1) to the first candidate that
 * asks, refuses the second, and grants again to a retransmission of the
 * first. Only one member wins TERM(1). */
static void test_no_second_vote_in_a_term(void **state)
{
    (void)state;
    raft_config c = fx_config();
    c.pre_vote = false;
    c.check_quorum = false;
    fx *f = fx_new(3, &c);
    raft_campaign(fx_raft(f, 2));
    raft_campaign(fx_raft(f, 3));
    assert_int_equal(fx_term(f, 2), TERM(1));
    assert_int_equal(fx_term(f, 3), TERM(1));
    size_t mark = fx_mark(f);
    int h2 = fx_hold(f, (fx_match){.to = 2});
    int h3 = fx_hold(f, (fx_match){.to = 3});
    fx_ready(f, 2); /* member 2's requests are queued first */
    fx_ready(f, 3);
    fx_stabilize(f); /* member 1 sees 2's request, then 3's */

    const fx_sent *to2 = fx_find(f, mark, MSG(RAFT_MSG_VOTE_RESP, 1, 2), 0);
    const fx_sent *to3 = fx_find(f, mark, MSG(RAFT_MSG_VOTE_RESP, 1, 3), 0);
    assert_non_null(to2);
    assert_non_null(to3);
    assert_false(to2->m.reject);
    assert_true(to3->m.reject);
    assert_int_equal(to2->m.term, TERM(1));
    assert_int_equal(fx_status(f, 1).vote, 2);
    assert_int_equal(fx_node_of(f, 1)->dhs.vote, 2);
    assert_int_equal(fx_node_of(f, 1)->dhs.term, TERM(1));

    /* A retransmitted request from 2 is granted again, a new one from 3 is not. */
    const fx_sent *req2 = fx_find(f, mark, MSG(RAFT_MSG_VOTE, 2, 1), 0);
    const fx_sent *req3 = fx_find(f, mark, MSG(RAFT_MSG_VOTE, 3, 1), 0);
    assert_non_null(req2);
    assert_non_null(req3);
    size_t again = fx_mark(f);
    assert_int_equal(fx_inject(f, &req3->m), 0);
    assert_int_equal(fx_inject(f, &req2->m), 0);
    fx_ready_all(f);
    fx_ready_all(f);
    assert_int_equal(
        fx_count(f, again,
                 (fx_match){.type = RAFT_MSG_VOTE_RESP, .from = 1, .to = 3, .reject = FX_NO}),
        0);
    assert_int_equal(
        fx_count(f, again,
                 (fx_match){.type = RAFT_MSG_VOTE_RESP, .from = 1, .to = 2, .reject = FX_NO}),
        1);
    assert_int_equal(fx_status(f, 1).vote, 2);

    fx_release(f, h2);
    fx_release(f, h3);
    fx_stabilize(f);
    assert_int_equal(fx_role(f, 2), RAFT_LEADER);
    assert_int_equal(fx_term(f, 2), TERM(1));
    assert_int_not_equal(fx_role(f, 3), RAFT_LEADER);
    fx_free(f);
}

/* A vote grant promises that the vote is on disk: it leaves only after
 * raft_persisted of the batch that holds it. */
static void test_vote_grant_waits_for_persistence(void **state)
{
    (void)state;
    raft_config c = fx_config();
    c.pre_vote = false;
    fx *f = fx_new(3, &c);
    fx_stabilize(f); /* the bootstrap batches are durable */
    fx_node_of(f, 1)->auto_persist = false;
    int h3 = fx_hold(f, (fx_match){.to = 3});
    raft_campaign(fx_raft(f, 2));
    size_t mark = fx_mark(f);
    fx_stabilize(f);

    /* Member 1 has decided: its batch holds TERM(1), vote 2 ... */
    const fx_batch_rec *b = fx_last_batch(f, 1);
    assert_non_null(b);
    assert_true(b->hs_changed);
    assert_int_equal(b->hs.term, TERM(1));
    assert_int_equal(b->hs.vote, 2);
    assert_int_equal(fx_pending_batches(f, 1), 1);
    /* ... but the grant has not left, and 2 is still a candidate. */
    assert_int_equal(fx_count(f, mark, MSG(RAFT_MSG_VOTE_RESP, 1, 0)), 0);
    assert_int_equal(fx_role(f, 2), RAFT_CANDIDATE);
    fx_tick(f, 2, 1); /* time passes; still nothing */
    assert_int_equal(fx_count(f, mark, MSG(RAFT_MSG_VOTE_RESP, 1, 0)), 0);

    uint64_t durable_seq = b->seq;
    fx_persist(f, 1);
    assert_int_equal(fx_node_of(f, 1)->dhs.vote, 2);
    fx_ready(f, 1);
    const fx_sent *r = fx_find(f, mark, MSG(RAFT_MSG_VOTE_RESP, 1, 2), 0);
    assert_non_null(r);
    assert_false(r->m.reject);
    assert_int_equal(r->m.term, TERM(1));
    /* It left in a batch taken after the durable one. */
    assert_true(fx_last_batch(f, 1)->seq > durable_seq);
    assert_true(r->ordinal >= fx_last_batch(f, 1)->ordinal);
    fx_stabilize(f);
    fx_persist(f, 1);
    fx_stabilize(f);
    assert_int_equal(fx_role(f, 2), RAFT_LEADER);
    fx_release(f, h3);
    fx_free(f);
}

/* A candidate leads only once its own vote is on disk, even when the others' votes make a
 * quorum without it. Otherwise a crash could take its term back, it would win the same term
 * again with the same voters, and write other entries at the indexes it had already sent. */
static void test_candidate_leads_only_with_its_vote_durable(void **state)
{
    (void)state;
    raft_config c = fx_config();
    c.pre_vote = false;
    fx *f = fx_new(3, &c);
    fx_stabilize(f);
    fx_node_of(f, 1)->auto_persist = false;
    raft_campaign(fx_raft(f, 1));
    fx_stabilize(f);
    /* 2 and 3 granted their votes: a quorum, but 1's own term and vote are not durable */
    assert_int_equal(fx_role(f, 1), RAFT_CANDIDATE);
    assert_int_equal(fx_status(f, 1).term, TERM(1));

    /* A crash now loses them; the restarted member campaigns for the same term again and
     * may win it: it never led it before. */
    fx_crash(f, 1);
    fx_restart(f, 1);
    assert_int_equal(fx_status(f, 1).term, TERM(0));
    fx_node_of(f, 1)->auto_persist = false;
    raft_campaign(fx_raft(f, 1));
    fx_stabilize(f);
    assert_int_equal(fx_role(f, 1), RAFT_CANDIDATE);
    fx_persist(f, 1);
    fx_stabilize(f);
    assert_int_equal(fx_role(f, 1), RAFT_LEADER);
    assert_int_equal(fx_status(f, 1).term, TERM(1));
    assert_int_equal(fx_node_of(f, 1)->dhs.term, TERM(1));
    fx_free(f);
}

/* A member cut off from the cluster keeps pre-campaigning without raising
 * its term; when it comes back the leader and the term are unchanged. */
static void test_prevote_rejoin_does_not_disrupt(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    assert_int_equal(fx_propose(f, 1, "x"), 0);
    fx_stabilize(f);
    fx_isolate(f, 3);
    size_t mark = fx_mark(f);
    fx_tick(f, 0, 10 * (int)c.election_ticks);
    assert_int_equal(fx_role(f, 1), RAFT_LEADER);
    assert_int_equal(fx_term(f, 3), TERM(1));
    assert_true(
        fx_count(f, mark, (fx_match){.type = RAFT_MSG_VOTE, .from = 3, .pre_vote = FX_YES}) > 0);
    assert_int_equal(
        fx_count(f, mark, (fx_match){.type = RAFT_MSG_VOTE, .from = 3, .pre_vote = FX_NO}), 0);
    assert_int_equal(fx_propose(f, 1, "y"), 0);
    fx_stabilize(f);

    fx_heal(f);
    mark = fx_mark(f);
    fx_tick(f, 0, 5 * (int)c.election_ticks);
    for (raft_id id = 1; id <= 3; id++) {
        assert_int_equal(fx_term(f, id), TERM(1));
        assert_int_equal(raft_leader(fx_raft(f, id)), 1);
    }
    assert_int_equal(fx_count(f, mark, (fx_match){.type = RAFT_MSG_VOTE, .pre_vote = FX_NO}), 0);
    assert_true(fx_applied(f, 3, "y"));
    fx_free(f);
}

/* CheckQuorum: a leader that hears from no majority steps down after an
 * election timeout (and not while it does hear from one); the majority
 * elects a new leader. */
static void test_check_quorum_isolated_leader_steps_down(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    fx_tick(f, 0, 10 * (int)c.election_ticks);
    assert_int_equal(fx_role(f, 1), RAFT_LEADER);
    assert_int_equal(fx_term(f, 1), TERM(1));

    fx_isolate(f, 1);
    int t = 0;
    while (fx_role(f, 1) == RAFT_LEADER) {
        fx_tick(f, 1, 1);
        t++;
        assert_true(t <= 2 * (int)c.election_ticks);
    }
    assert_true(t >= (int)c.election_ticks);
    assert_int_equal(fx_role(f, 1), RAFT_FOLLOWER);
    assert_int_equal(fx_term(f, 1), TERM(1)); /* stepping down does not need a new term */
    assert_int_equal(raft_leader(fx_raft(f, 1)), 0);
    assert_int_equal(fx_propose(f, 1, "z"), RAFT_ENOLEADER);

    /* The majority side elects a leader of a higher term. */
    for (int k = 0; k < 10 * (int)c.election_ticks; k++) {
        fx_tick(f, 2, 1);
        fx_tick(f, 3, 1);
        if (fx_role(f, 2) == RAFT_LEADER || fx_role(f, 3) == RAFT_LEADER)
            break;
    }
    raft_id l = fx_role(f, 2) == RAFT_LEADER ? 2 : 3;
    assert_int_equal(fx_role(f, l), RAFT_LEADER);
    assert_true(fx_term(f, l) >= TERM(2));
    fx_heal(f);
    fx_tick(f, 0, 3);
    assert_int_equal(raft_leader(fx_raft(f, 1)), l);
    assert_int_equal(fx_term(f, 1), fx_term(f, l));
    fx_free(f);
}

/* Leader lease: a follower that heard from its leader within the election
 * timeout ignores vote requests, unless they come from a leadership
 * transfer (force). Once the lease has passed, it votes normally. */
static void test_leader_lease_ignores_votes_unless_forced(void **state)
{
    (void)state;
    raft_config c = fx_config();
    c.pre_vote = false;
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    fx_tick(f, 0, 2);
    uint64_t last = fx_last_index(f, 3);
    raft_msg v;
    memset(&v, 0, sizeof v);
    v.type = RAFT_MSG_VOTE;
    v.from = 3;
    v.to = 2;
    v.term = TERM(5);
    v.log_index = last;
    v.log_term = raft_log_term(fx_raft(f, 3), last);

    size_t mark = fx_mark(f);
    fx_inject(f, &v);
    fx_ready_all(f);
    assert_int_equal(fx_term(f, 2), TERM(1));
    assert_int_equal(raft_leader(fx_raft(f, 2)), 1);
    assert_int_equal(
        fx_count(f, mark, (fx_match){.type = RAFT_MSG_VOTE_RESP, .from = 2, .reject = FX_NO}), 0);

    v.force = true;
    fx_inject(f, &v);
    fx_ready_all(f);
    fx_ready_all(f);
    assert_int_equal(fx_term(f, 2), TERM(5));
    assert_int_equal(fx_status(f, 2).vote, 3);
    const fx_sent *r = fx_find(f, mark, MSG(RAFT_MSG_VOTE_RESP, 2, 3), 0);
    assert_non_null(r);
    assert_false(r->m.reject);
    assert_int_equal(r->m.term, TERM(5));
    fx_free(f);

    /* Without contact for an election timeout, the lease is over. */
    f = fx_new(3, &c);
    fx_elect(f, 1);
    fx_isolate(f, 1);
    fx_isolate(f, 2); /* 2 hears nothing, not even 3 */
    fx_tick(f, 2, (int)c.election_ticks);
    uint64_t term2 = fx_term(f, 2);
    v.force = false;
    v.term = term2 + 5;
    mark = fx_mark(f);
    fx_inject(f, &v);
    fx_ready_all(f);
    fx_ready_all(f);
    assert_int_equal(fx_term(f, 2), term2 + 5);
    assert_int_equal(fx_status(f, 2).vote, 3);
    r = fx_find(f, mark, MSG(RAFT_MSG_VOTE_RESP, 2, 3), 0);
    assert_non_null(r);
    assert_false(r->m.reject);
    fx_free(f);
}

/* Pre-votes are subject to the lease too: a member that is cut off from the
 * leader alone cannot win a pre-vote from a follower that still hears it. */
static void test_prevote_refused_while_leader_is_heard(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    fx_cut(f, 1, 3);
    size_t mark = fx_mark(f);
    fx_tick(f, 0, 6 * (int)c.election_ticks);
    assert_true(
        fx_count(f, mark, (fx_match){.type = RAFT_MSG_VOTE, .from = 3, .pre_vote = FX_YES}) > 0);
    assert_int_equal(
        fx_count(f, mark, (fx_match){.type = RAFT_MSG_VOTE_RESP, .from = 2, .reject = FX_NO}), 0);
    assert_int_equal(fx_role(f, 1), RAFT_LEADER);
    assert_int_equal(fx_term(f, 1), TERM(1));
    assert_int_equal(fx_term(f, 2), TERM(1));
    fx_free(f);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_election_timeout_is_randomised_in_range),
    cmocka_unit_test(test_prevote_does_not_bump_terms),
    cmocka_unit_test(test_candidate_with_stale_log_loses),
    cmocka_unit_test(test_no_second_vote_in_a_term),
    cmocka_unit_test(test_vote_grant_waits_for_persistence),
    cmocka_unit_test(test_candidate_leads_only_with_its_vote_durable),
    cmocka_unit_test(test_prevote_rejoin_does_not_disrupt),
    cmocka_unit_test(test_check_quorum_isolated_leader_steps_down),
    cmocka_unit_test(test_leader_lease_ignores_votes_unless_forced),
    cmocka_unit_test(test_prevote_refused_while_leader_is_heard),
};

RAFT_TEST_GROUP(raft_election_group, "election", tests);
