/*
 * Leadership transfer: the target is brought up to date, then receives
 * TIMEOUT_NOW and wins at once; proposals are refused meanwhile; an
 * unreachable target makes the transfer time out.
 */
#include <string.h>

#include "raft_tests.h"

static bool not_forced(const raft_msg *m, const void *arg)
{
    (void)arg;
    return !m->force;
}

static void test_transfer_to_lagging_target(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    int hold = fx_hold(f, MSG(RAFT_MSG_APPEND, 1, 3));
    const char *props[] = {"t0", "t1", "t2", "t3", "t4"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(fx_propose(f, 1, props[i]), 0);
    fx_stabilize(f);
    assert_int_equal(fx_commit(f, 1), IDX(6));
    assert_int_equal(fx_last_index(f, 3), IDX(1));

    size_t mark = fx_mark(f);
    assert_int_equal(raft_transfer_leader(fx_raft(f, 1), 3), 0);
    assert_int_equal(fx_status(f, 1).transferee, 3);
    assert_int_equal(fx_propose(f, 1, "refused"), RAFT_ETRANSFER);
    fx_stabilize(f);
    /* The target is behind: no TIMEOUT_NOW yet. */
    assert_int_equal(fx_count(f, mark, MSG(RAFT_MSG_TIMEOUT_NOW, 0, 0)), 0);
    assert_int_equal(fx_role(f, 1), RAFT_LEADER);

    fx_release(f, hold);
    fx_stabilize(f);
    fx_tick(f, 0, 1);
    /* Sent (possibly more than once: one per acknowledgement) only to the
     * target, and only once its log matched the leader's. */
    size_t n_tn = fx_count(f, mark, MSG(RAFT_MSG_TIMEOUT_NOW, 0, 0));
    assert_true(n_tn >= 1);
    assert_int_equal(fx_count(f, mark, MSG(RAFT_MSG_TIMEOUT_NOW, 1, 3)), n_tn);
    for (size_t k = 0; k < n_tn; k++) {
        const fx_sent *t = fx_find(f, mark, MSG(RAFT_MSG_TIMEOUT_NOW, 1, 3), k);
        assert_int_equal(t->sender_match_to, t->sender_last_index);
        assert_int_equal(t->sender_last_index, IDX(6));
        assert_int_equal(t->m.term, TERM(1));
    }
    const fx_sent *tn = fx_find(f, mark, MSG(RAFT_MSG_TIMEOUT_NOW, 1, 3), 0);

    /* The target campaigns at once, past the others' leader lease, and
     * wins in one election (term + 1). */
    assert_int_equal(fx_role(f, 3), RAFT_LEADER);
    assert_int_equal(fx_term(f, 3), TERM(2));
    assert_true(fx_count(f, tn->ordinal, MSG(RAFT_MSG_VOTE, 3, 0)) > 0);
    assert_int_equal(
        fx_count(f, tn->ordinal, (fx_match){.type = RAFT_MSG_VOTE, .from = 3, .pred = not_forced}),
        0);
    assert_int_equal(fx_role(f, 1), RAFT_FOLLOWER);
    assert_int_equal(fx_status(f, 1).transferee, 0);
    assert_int_equal(raft_leader(fx_raft(f, 1)), 3);
    assert_int_equal(fx_propose(f, 3, "new"), 0);
    fx_stabilize(f);
    fx_tick(f, 3, 1);
    for (raft_id id = 1; id <= 3; id++) {
        assert_true(fx_applied(f, id, "t4"));
        assert_true(fx_applied(f, id, "new"));
    }
    fx_free(f);
}

/* A target that never answers: after one election timeout the transfer is
 * abandoned and the leader takes proposals again. */
static void test_transfer_times_out(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    fx_tick(f, 0, 1);
    fx_isolate(f, 3);
    assert_int_equal(raft_transfer_leader(fx_raft(f, 1), 3), 0);
    assert_int_equal(fx_propose(f, 1, "refused"), RAFT_ETRANSFER);
    int ticks = 0;
    while (fx_status(f, 1).transferee != 0) {
        fx_tick(f, 0, 1);
        ticks++;
        assert_true(ticks <= (int)c.election_ticks);
    }
    assert_int_equal(fx_role(f, 1), RAFT_LEADER);
    assert_int_equal(fx_term(f, 1), TERM(1));
    assert_int_equal(fx_propose(f, 1, "accepted"), 0);
    fx_stabilize(f);
    fx_tick(f, 1, 1);
    assert_true(fx_applied(f, 2, "accepted"));
    fx_free(f);
}

static void test_transfer_errors(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_add_node(f, 4);
    fx_elect(f, 1);
    raft_conf t = fx_mkconf("1,2,3", "4");
    assert_int_equal(raft_propose_conf(fx_raft(f, 1), &t), 0);
    fx_stabilize(f);
    fx_tick(f, 0, 2);
    assert_int_equal(raft_transfer_leader(fx_raft(f, 2), 3), RAFT_ENOTLEADER);
    assert_int_equal(raft_transfer_leader(fx_raft(f, 1), 4), RAFT_ENOTVOTER); /* learner */
    assert_int_equal(raft_transfer_leader(fx_raft(f, 1), 9), RAFT_ENOTVOTER); /* unknown */
    assert_int_equal(raft_transfer_leader(fx_raft(f, 1), 0), RAFT_ENOTVOTER);
    assert_int_equal(fx_status(f, 1).transferee, 0);
    assert_int_equal(fx_propose(f, 1, "still fine"), 0);
    fx_free(f);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_transfer_to_lagging_target),
    cmocka_unit_test(test_transfer_times_out),
    cmocka_unit_test(test_transfer_errors),
};

RAFT_TEST_GROUP(raft_transfer_group, "transfer", tests);
