/*
 * Membership: learners, joint consensus (both majorities decide), removing
 * the leader, one change at a time, invalid targets, and the encoding of a
 * configuration.
 */
#include <string.h>

#include "raft_tests.h"

static bool is_final_conf(const raft_entry *e)
{
    raft_conf c;
    return e->type == RAFT_ENTRY_CONF && raft_conf_decode(&c, e->data, e->len) == 0 &&
           c.n_voters_out == 0;
}

static bool carries_final_conf(const raft_msg *m, const void *arg)
{
    (void)arg;
    for (uint32_t i = 0; i < m->n_entries; i++)
        if (is_final_conf(&m->entries[i]))
            return true;
    return false;
}

/* Index of the last CONF entry in id's log (0 if none); decodes it. */
static uint64_t last_conf_entry(fx *f, raft_id id, raft_conf *out)
{
    raft *r = fx_raft(f, id);
    raft_status st = fx_status(f, id);
    for (uint64_t i = st.last_index; i >= st.first_index && i > 0; i--) {
        const raft_entry *e;
        assert_int_equal(raft_log_entry(r, i, &e), 0);
        if (e->type == RAFT_ENTRY_CONF) {
            assert_int_equal(raft_conf_decode(out, e->data, e->len), 0);
            return i;
        }
    }
    return 0;
}

/* A learner receives the log but never campaigns and is not counted; then
 * it is promoted through a joint configuration, the final configuration
 * following automatically once the joint one is committed. */
static void test_learner_added_then_promoted(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_add_node(f, 4);
    fx_elect(f, 1);
    assert_int_equal(fx_propose(f, 1, "a"), 0);
    fx_stabilize(f);

    raft_conf t = fx_mkconf("1,2,3", "4");
    assert_int_equal(raft_propose_conf(fx_raft(f, 1), &t), 0);
    fx_stabilize(f);
    fx_tick(f, 0, 3);
    for (raft_id id = 1; id <= 4; id++) {
        assert_true(fx_conf_equal(raft_get_conf(fx_raft(f, id)), &t));
        assert_int_equal(fx_commit(f, id), fx_commit(f, 1));
    }
    assert_true(fx_applied(f, 4, "a"));
    assert_true(raft_conf_is_learner(raft_get_conf(fx_raft(f, 1)), 4));
    assert_false(raft_conf_is_voter(raft_get_conf(fx_raft(f, 1)), 4));

    /* It never campaigns, however long it hears nothing. */
    fx_isolate(f, 4);
    size_t mark = fx_mark(f);
    fx_tick(f, 4, 10 * (int)c.election_ticks);
    assert_int_equal(fx_role(f, 4), RAFT_FOLLOWER);
    assert_int_equal(fx_term(f, 4), fx_term(f, 1));
    assert_int_equal(fx_count(f, mark, MSG(RAFT_MSG_VOTE, 4, 0)), 0);
    fx_heal(f);
    fx_tick(f, 1, 1);

    /* It is not counted: leader and learner alone do not commit. */
    fx_cut(f, 1, 2);
    fx_cut(f, 1, 3);
    uint64_t commit = fx_commit(f, 1);
    assert_int_equal(fx_propose(f, 1, "b"), 0);
    fx_stabilize(f);
    assert_int_equal(fx_last_index(f, 4), fx_last_index(f, 1));
    assert_int_equal(raft_match_index(fx_raft(f, 1), 4), fx_last_index(f, 1));
    assert_int_equal(fx_commit(f, 1), commit);
    fx_heal(f);
    fx_tick(f, 1, 1);
    assert_int_equal(fx_commit(f, 1), fx_last_index(f, 1));

    /* Promotion: joint configuration, committed, then the final one. */
    raft_conf t2 = fx_mkconf("1,2,3,4", NULL);
    fx_node *l = fx_node_of(f, 1);
    size_t confs_before = l->n_confs;
    assert_int_equal(raft_propose_conf(fx_raft(f, 1), &t2), 0);
    fx_stabilize(f);
    fx_tick(f, 0, 2);
    assert_int_equal(l->n_confs, confs_before + 2);
    const fx_conf_rec *joint = &l->confs[confs_before];
    const fx_conf_rec *final = &l->confs[confs_before + 1];
    raft_conf want_joint = t2;
    want_joint.n_voters_out = 3;
    want_joint.voters_out[0] = 1;
    want_joint.voters_out[1] = 2;
    want_joint.voters_out[2] = 3;
    assert_true(raft_conf_is_joint(&joint->conf));
    assert_true(fx_conf_equal(&joint->conf, &want_joint));
    assert_false(raft_conf_is_joint(&final->conf));
    assert_true(fx_conf_equal(&final->conf, &t2));
    assert_true(joint->index < final->index);
    /* The final entry was appended no earlier than the batch committing
     * the joint one. */
    size_t joint_committed = SIZE_MAX, final_appended = SIZE_MAX;
    for (size_t i = 0; i < l->n_batches; i++) {
        const fx_batch_rec *b = &l->batches[i];
        if (joint_committed == SIZE_MAX && b->n_committed && b->last_committed >= joint->index)
            joint_committed = i;
        if (final_appended == SIZE_MAX && b->n_entries && b->first_entry <= final->index &&
            b->last_entry >= final->index)
            final_appended = i;
    }
    assert_true(joint_committed != SIZE_MAX && final_appended != SIZE_MAX);
    assert_true(joint_committed <= final_appended);
    for (raft_id id = 1; id <= 4; id++)
        assert_true(fx_conf_equal(raft_get_conf(fx_raft(f, id)), &t2));

    /* Member 4 now counts: with 2 away, 1, 3 and 4 are three of four. */
    fx_isolate(f, 2);
    assert_int_equal(fx_propose(f, 1, "c"), 0);
    fx_stabilize(f);
    assert_int_equal(fx_commit(f, 1), fx_last_index(f, 1));
    fx_free(f);
}

/* Replacing voters {1,2,3} by {1,4,5}: in the joint phase, the final
 * configuration needs a majority of the new voters AND of the old ones. */
static void joint_needs_both_majorities(raft_id away_a, raft_id away_b)
{
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_add_node(f, 4);
    fx_add_node(f, 5);
    fx_elect(f, 1);
    assert_int_equal(fx_propose(f, 1, "a"), 0);
    fx_stabilize(f);

    int ha =
        fx_hold(f, (fx_match){.type = RAFT_MSG_APPEND, .to = away_a, .pred = carries_final_conf});
    int hb =
        fx_hold(f, (fx_match){.type = RAFT_MSG_APPEND, .to = away_b, .pred = carries_final_conf});
    raft_conf t = fx_mkconf("1,4,5", NULL);
    assert_int_equal(raft_propose_conf(fx_raft(f, 1), &t), 0);
    fx_stabilize(f);
    fx_tick(f, 0, 3);

    /* The joint configuration is in force; the final one is in the log,
     * uncommitted, because one of the two majorities lacks it. */
    const raft_conf *cur = raft_get_conf(fx_raft(f, 1));
    assert_true(raft_conf_is_joint(cur));
    raft_conf want_joint = t;
    want_joint.n_voters_out = 3;
    want_joint.voters_out[0] = 1;
    want_joint.voters_out[1] = 2;
    want_joint.voters_out[2] = 3;
    assert_true(fx_conf_equal(cur, &want_joint));
    raft_conf last;
    uint64_t final_index = last_conf_entry(f, 1, &last);
    assert_false(raft_conf_is_joint(&last));
    assert_true(fx_conf_equal(&last, &t));
    assert_true(fx_commit(f, 1) < final_index);
    assert_int_equal(fx_role(f, 1), RAFT_LEADER);
    raft_conf other = fx_mkconf("1,4,5", "2");
    assert_int_equal(raft_propose_conf(fx_raft(f, 1), &other), RAFT_ECONFPENDING);

    fx_release(f, ha);
    fx_release(f, hb);
    fx_stabilize(f);
    fx_tick(f, 1, 2);
    assert_true(fx_commit(f, 1) >= final_index);
    assert_true(fx_conf_equal(raft_get_conf(fx_raft(f, 1)), &t));
    /* The new voters alone decide from now on. */
    fx_isolate(f, 2);
    fx_isolate(f, 3);
    assert_int_equal(fx_propose(f, 1, "after"), 0);
    fx_stabilize(f);
    fx_tick(f, 1, 1);
    for (raft_id id = 4; id <= 5; id++) {
        assert_true(fx_applied(f, id, "after"));
        assert_true(fx_conf_equal(raft_get_conf(fx_raft(f, id)), &t));
    }
    assert_int_equal(fx_role(f, 1), RAFT_LEADER);
    fx_free(f);
}

static void test_joint_needs_new_majority(void **state)
{
    (void)state;
    joint_needs_both_majorities(4, 5);
}

static void test_joint_needs_old_majority(void **state)
{
    (void)state;
    joint_needs_both_majorities(2, 3);
}

/* Removing the leader: it commits the final configuration in its own term,
 * then steps down and hands over at once (no election timeout), and stays
 * quiet afterwards. */
static void test_removed_leader_steps_down_and_hands_over(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    assert_int_equal(fx_propose(f, 1, "a"), 0);
    fx_stabilize(f);
    raft_conf t = fx_mkconf("2,3", NULL);
    assert_int_equal(raft_propose_conf(fx_raft(f, 1), &t), 0);
    fx_stabilize(f);
    int ticks = 0;
    raft_id l = 0;
    for (; ticks < (int)c.election_ticks; ticks++) {
        l = fx_agreed_leader(f);
        if (l == 2 || l == 3)
            break;
        fx_tick(f, 0, 1);
    }
    assert_true(l == 2 || l == 3);
    assert_true(ticks < (int)c.election_ticks);
    assert_int_equal(fx_role(f, l), RAFT_LEADER);
    assert_true(fx_term(f, l) > TERM(1));

    /* The old leader committed the final configuration in its term. */
    fx_node *n1 = fx_node_of(f, 1);
    assert_true(n1->n_confs >= 2);
    assert_true(fx_conf_equal(&n1->confs[n1->n_confs - 1].conf, &t));
    assert_int_equal(n1->confs[n1->n_confs - 1].term, TERM(1));
    assert_true(raft_conf_is_joint(&n1->confs[n1->n_confs - 2].conf));
    raft_status st1 = fx_status(f, 1);
    assert_int_not_equal(st1.role, RAFT_LEADER);
    assert_true(st1.removed);
    assert_int_equal(fx_propose(f, 1, "x"), RAFT_ESTOPPED);

    for (raft_id id = 2; id <= 3; id++)
        assert_true(fx_conf_equal(raft_get_conf(fx_raft(f, id)), &t));
    assert_int_equal(fx_propose(f, l, "after"), 0);
    fx_stabilize(f);
    fx_tick(f, l, 1);
    assert_true(fx_applied(f, 2, "after"));
    assert_true(fx_applied(f, 3, "after"));
    assert_false(fx_applied(f, 1, "after"));

    /* The removed member does not disturb the others. */
    uint64_t term = fx_term(f, l);
    size_t mark = fx_mark(f);
    fx_tick(f, 0, 5 * (int)c.election_ticks);
    assert_int_equal(raft_leader(fx_raft(f, 2)), l);
    assert_int_equal(raft_leader(fx_raft(f, 3)), l);
    assert_int_equal(fx_term(f, l), term);
    assert_int_equal(fx_role(f, l), RAFT_LEADER);
    assert_int_equal(fx_count(f, mark, MSG(RAFT_MSG_VOTE, 1, 0)), 0);
    fx_free(f);
}

/* A member whose record of the commit index fell behind (a commit-only change is not synced,
 * and a store rebuilt after a machine crash restarts from an older applied index) becomes
 * leader and commits again a joint configuration its log already moved past (joint, final,
 * then another change). It must not append a second "final" configuration of that old joint
 * one: committed behind the later change, it would bring back the member that change removed. */
static void test_new_leader_does_not_repeat_an_old_final_conf(void **state)
{
    (void)state;
    raft_config c = fx_config();
    c.pre_vote = false;
    c.check_quorum = false;
    fx *f = fx_new(3, &c);
    fx_add_node(f, 4);
    fx_elect(f, 1);
    assert_int_equal(fx_propose(f, 1, "a"), 0);
    fx_stabilize(f);
    uint64_t k = fx_commit(f, 1); /* before any change */

    raft_conf add4 = fx_mkconf("1,2,3,4", NULL), back = fx_mkconf("1,2,3", NULL);
    assert_int_equal(raft_propose_conf(fx_raft(f, 1), &add4), 0);
    fx_stabilize(f);
    fx_tick(f, 0, 2);
    assert_true(fx_conf_equal(raft_get_conf(fx_raft(f, 2)), &add4));
    assert_int_equal(raft_propose_conf(fx_raft(f, 1), &back), 0);
    fx_stabilize(f);
    fx_tick(f, 0, 2);
    for (raft_id id = 1; id <= 3; id++)
        assert_true(fx_conf_equal(raft_get_conf(fx_raft(f, id)), &back));
    uint64_t last = fx_last_index(f, 2);

    /* 2 loses its commit records and its store's applied index goes back to k */
    fx_crash(f, 2);
    fx_node *n2 = fx_node_of(f, 2);
    n2->dhs.commit = k;
    n2->sm_applied = k;
    n2->sm_applied_term = f->g_term[k];
    n2->sm_hash = f->g_chain[k];
    size_t confs_before = n2->n_confs;
    fx_crash(f, 1); /* so that 2 can be elected (3 grants at once: no pre-vote, no lease) */
    fx_restart(f, 2);
    fx_elect(f, 2);
    fx_stabilize(f);
    fx_restart(f, 1);
    fx_tick(f, 0, 3);
    fx_stabilize(f);

    /* it applied the four entries of the two changes again, and nothing more */
    assert_int_equal(n2->n_confs, confs_before + 4);
    for (size_t i = confs_before; i < n2->n_confs; i++)
        assert_true(n2->confs[i].index <= last);
    assert_true(fx_conf_equal(&n2->confs[n2->n_confs - 1].conf, &back));
    /* its log holds no configuration entry of its own term (only its empty entry) */
    for (uint64_t i = last + 1; i <= fx_last_index(f, 2); i++) {
        const raft_entry *e;
        assert_int_equal(raft_log_entry(fx_raft(f, 2), i, &e), 0);
        assert_int_equal(e->type, RAFT_ENTRY_NORMAL);
    }
    for (raft_id id = 1; id <= 3; id++) {
        assert_true(fx_conf_equal(raft_get_conf(fx_raft(f, id)), &back));
        const fx_node *n = fx_node_of(f, id);
        assert_true(fx_conf_equal(&n->confs[n->n_confs - 1].conf, &back));
        assert_true(n->confs[n->n_confs - 1].index <= last);
    }
    fx_free(f);
}

/* The configuration a member would restart with: the last configuration entry of its durable
 * log up to the commit index a restart recovers (durable hard state, snapshot, or the state
 * machine's applied index, whichever is newest). */
static raft_conf restart_conf(fx *f, raft_id id)
{
    const fx_node *n = fx_node_of(f, id);
    raft_conf c = n->has_dsnap ? n->dsnap.conf : (raft_conf){0};
    uint64_t commit = n->dhs.commit > n->sm_applied ? n->dhs.commit : n->sm_applied;
    for (uint64_t i = n->dlog.base + 1; i <= commit && i <= fx_log_last(&n->dlog); i++) {
        const raft_entry *e = fx_log_get(&n->dlog, i);
        if (e && e->type == RAFT_ENTRY_CONF)
            assert_int_equal(raft_conf_decode(&c, e->data, e->len), 0);
    }
    return c;
}

/* A configuration takes effect on a member only once the commit index that commits it is
 * durable there. Acting on it earlier (voting or counting a quorum by it, a leader leaving
 * the joint configuration or stepping down) and then losing power would restart the member in
 * the configuration before it, while the others went on in the new one: the simulator found
 * such a cluster, whose two survivors each waited for a vote of a member already gone.
 * Members 2 and 3 make their batches durable one at a time, in a random order; after every
 * step, each member's configuration in force is the one it would restart with. */
static void test_conf_takes_effect_once_its_commit_is_durable(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 30; seed++) {
        raft_config c = fx_config();
        c.seed = seed;
        fx *f = fx_new(3, &c);
        fx_elect(f, 1);
        fx_node_of(f, 2)->auto_persist = false;
        fx_node_of(f, 3)->auto_persist = false;
        raft_conf t = fx_mkconf("1,2", NULL);
        assert_int_equal(raft_propose_conf(fx_raft(f, 1), &t), 0);
        uint64_t rng = seed * 0x9e3779b97f4a7c15ull;
        int steps = 0;
        for (; steps < 2000; steps++) {
            for (raft_id id = 1; id <= 3; id++) {
                raft_conf want = restart_conf(f, id);
                assert_true(fx_conf_equal(raft_get_conf(fx_raft(f, id)), &want));
            }
            bool done = true;
            for (raft_id id = 1; id <= 2; id++)
                done &= fx_conf_equal(raft_get_conf(fx_raft(f, id)), &t) &&
                        fx_pending_batches(f, id) == 0;
            if (done)
                break;
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            switch ((rng >> 33) % 4) {
            case 0:
                fx_deliver(f);
                break;
            case 1:
                fx_ready_all(f);
                break;
            default:
                fx_persist_one(f, (raft_id)(2 + ((rng >> 40) & 1)));
                break;
            }
        }
        assert_true(steps < 2000);
        fx_free(f);
    }
}

/* One change at a time, only on the leader, and only to a valid target. */
static void test_conf_change_rules(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_add_node(f, 4);
    fx_elect(f, 1);
    raft *l = fx_raft(f, 1);
    raft_conf t = fx_mkconf("1,2,3", "4");
    assert_int_equal(raft_propose_conf(fx_raft(f, 2), &t), RAFT_ENOTLEADER);

    uint64_t last = fx_last_index(f, 1);
    raft_conf bad = fx_mkconf("", NULL);
    assert_int_equal(raft_propose_conf(l, &bad), RAFT_EINVAL); /* no voters */
    bad = fx_mkconf("", "1,2,3");
    assert_int_equal(raft_propose_conf(l, &bad), RAFT_EINVAL); /* no voters */
    bad = fx_mkconf("1,2,3", NULL);
    assert_int_equal(raft_propose_conf(l, &bad), RAFT_EINVAL); /* no change */
    bad = fx_mkconf("1,2", "3");
    assert_int_equal(raft_propose_conf(l, &bad), RAFT_EINVAL); /* voter straight to learner */
    bad = fx_mkconf("1,2,3", "3");
    assert_int_equal(raft_propose_conf(l, &bad), RAFT_EINVAL); /* learner and voter */
    bad = fx_mkconf("1,2,3,0", NULL);
    assert_int_equal(raft_propose_conf(l, &bad), RAFT_EINVAL); /* id 0 */
    bad = fx_mkconf("1,2,3,4,4", NULL);
    assert_int_equal(raft_propose_conf(l, &bad), RAFT_EINVAL); /* duplicate */
    bad = t;
    bad.n_voters_out = 1;
    bad.voters_out[0] = 1;
    assert_int_equal(raft_propose_conf(l, &bad), RAFT_EINVAL); /* voters_out set */
    bad = fx_mkconf("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16", NULL);
    bad.n_voters = RAFT_MAX_MEMBERS + 1;
    assert_int_equal(raft_propose_conf(l, &bad), RAFT_EINVAL); /* too many */
    assert_int_equal(fx_last_index(f, 1), last);
    fx_stabilize(f);
    assert_int_equal(fx_last_index(f, 1), last);

    /* One change at a time. */
    assert_int_equal(raft_propose_conf(l, &t), 0);
    raft_conf t2 = fx_mkconf("1,2,3,4", NULL);
    assert_int_equal(raft_propose_conf(l, &t2), RAFT_ECONFPENDING);
    fx_stabilize(f);
    fx_tick(f, 0, 2);
    assert_true(fx_conf_equal(raft_get_conf(l), &t));

    /* In the joint phase, the change is still in flight. */
    int hold = fx_hold(f, (fx_match){.type = RAFT_MSG_APPEND, .pred = carries_final_conf});
    assert_int_equal(raft_propose_conf(l, &t2), 0);
    fx_stabilize(f);
    fx_tick(f, 0, 2);
    assert_true(raft_conf_is_joint(raft_get_conf(l)));
    raft_conf t3 = fx_mkconf("1,2,4", NULL);
    assert_int_equal(raft_propose_conf(l, &t3), RAFT_ECONFPENDING);
    fx_release(f, hold);
    fx_stabilize(f);
    fx_tick(f, 0, 2);
    assert_true(fx_conf_equal(raft_get_conf(l), &t2));
    /* Done: the next change is accepted. */
    assert_int_equal(raft_propose_conf(l, &t3), 0);
    fx_stabilize(f);
    fx_tick(f, 0, 3);
    assert_true(fx_conf_equal(raft_get_conf(fx_raft(f, 1)), &t3));
    assert_true(fx_conf_equal(raft_get_conf(fx_raft(f, 4)), &t3));
    fx_free(f);
}

/* raft_conf_encode / raft_conf_decode: round trip, and malformed input. */
static void test_conf_encoding(void **state)
{
    (void)state;
    raft_conf c;
    memset(&c, 0, sizeof c);
    c.n_voters = 3;
    c.voters[0] = 1;
    c.voters[1] = 2;
    c.voters[2] = 0x1122334455667788ull;
    c.n_voters_out = 2;
    c.voters_out[0] = 1;
    c.voters_out[1] = 9;
    c.n_learners = 1;
    c.learners[0] = 7;
    uint8_t buf[1024];
    size_t len = raft_conf_encoded_len(&c);
    assert_true(len > 0 && len <= sizeof buf);
    assert_int_equal(raft_conf_encode(&c, buf), len);
    raft_conf d;
    memset(&d, 0xff, sizeof d);
    assert_int_equal(raft_conf_decode(&d, buf, len), 0);
    assert_int_equal(d.n_voters, 3);
    assert_int_equal(d.n_voters_out, 2);
    assert_int_equal(d.n_learners, 1);
    assert_true(fx_conf_equal(&c, &d));
    assert_true(raft_conf_is_joint(&d));
    assert_true(raft_conf_is_voter(&d, 9));
    assert_true(raft_conf_is_voter(&d, 0x1122334455667788ull));
    assert_true(raft_conf_is_learner(&d, 7));
    assert_false(raft_conf_is_voter(&d, 7));
    assert_false(raft_conf_is_voter(&d, 3));

    /* Every strict prefix is malformed. */
    for (size_t k = 0; k < len; k++)
        assert_int_equal(raft_conf_decode(&d, buf, k), RAFT_EINVAL);

    /* The largest configuration round-trips. */
    raft_conf big = fx_mkconf("1,2,3,4,5,6,7,8", "9,10,11,12,13,14,15,16");
    len = raft_conf_encoded_len(&big);
    assert_true(len <= sizeof buf);
    raft_conf_encode(&big, buf);
    assert_int_equal(raft_conf_decode(&d, buf, len), 0);
    assert_true(fx_conf_equal(&big, &d));

    /* Well-framed but invalid contents. */
    raft_conf bad = fx_mkconf("1,2,2", NULL);
    len = raft_conf_encode(&bad, buf);
    assert_int_equal(raft_conf_decode(&d, buf, len), RAFT_EINVAL); /* duplicate voter */
    bad = fx_mkconf("1,0,2", NULL);
    len = raft_conf_encode(&bad, buf);
    assert_int_equal(raft_conf_decode(&d, buf, len), RAFT_EINVAL); /* id 0 */
    bad = fx_mkconf("1,2,3", "2");
    len = raft_conf_encode(&bad, buf);
    assert_int_equal(raft_conf_decode(&d, buf, len), RAFT_EINVAL); /* learner is a voter */
    bad = fx_mkconf("1,2", "4,4");
    len = raft_conf_encode(&bad, buf);
    assert_int_equal(raft_conf_decode(&d, buf, len), RAFT_EINVAL); /* duplicate learner */
    bad = fx_mkconf("1,2", NULL);
    bad.n_voters_out = 1;
    bad.voters_out[0] = 0;
    len = raft_conf_encode(&bad, buf);
    assert_int_equal(raft_conf_decode(&d, buf, len), RAFT_EINVAL); /* id 0 in voters_out */
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_learner_added_then_promoted),
    cmocka_unit_test(test_joint_needs_new_majority),
    cmocka_unit_test(test_joint_needs_old_majority),
    cmocka_unit_test(test_removed_leader_steps_down_and_hands_over),
    cmocka_unit_test(test_new_leader_does_not_repeat_an_old_final_conf),
    cmocka_unit_test(test_conf_takes_effect_once_its_commit_is_durable),
    cmocka_unit_test(test_conf_change_rules),
    cmocka_unit_test(test_conf_encoding),
};

RAFT_TEST_GROUP(raft_membership_group, "membership", tests);
