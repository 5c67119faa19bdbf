/*
 * Bad input and recovery: malformed messages are refused with RAFT_EINVAL
 * and leave the member working; raft_new refuses bad arguments and
 * inconsistent restores; a restart from the disk reproduces term, vote,
 * commit and configuration; a run is a function of its seed.
 */
#include <stdio.h>
#include <string.h>

#include "raft_tests.h"

static raft_msg append_from_leader(fx *f)
{
    raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_APPEND;
    m.from = 1;
    m.to = 2;
    m.term = fx_term(f, 1);
    m.log_index = fx_last_index(f, 2);
    m.log_term = raft_log_term(fx_raft(f, 2), m.log_index);
    m.commit = fx_commit(f, 1);
    return m;
}

static void assert_unchanged(fx *f, raft_id id, const raft_status *before)
{
    raft_status st = fx_status(f, id);
    assert_int_equal(st.term, before->term);
    assert_int_equal(st.vote, before->vote);
    assert_int_equal(st.commit, before->commit);
    assert_int_equal(st.last_index, before->last_index);
    assert_int_equal(st.role, before->role);
    assert_int_equal(st.leader, before->leader);
}

static void test_step_rejects_malformed_messages(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    assert_int_equal(fx_propose(f, 1, "a"), 0);
    fx_stabilize(f);
    fx_tick(f, 0, 1);
    raft *r2 = fx_raft(f, 2);
    raft_status before = fx_status(f, 2);
    uint64_t t = before.term;
    uint64_t li = before.last_index;

    raft_entry es[3];
    memset(es, 0, sizeof es);
    static const uint8_t payload[] = "abc";
    for (int i = 0; i < 3; i++) {
        es[i].term = t;
        es[i].index = li + 1 + (uint64_t)i;
        es[i].type = RAFT_ENTRY_NORMAL;
        es[i].len = 3;
        es[i].data = payload;
    }

    raft_msg m = append_from_leader(f);
    m.to = 3; /* addressed to another member */
    assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
    m = append_from_leader(f);
    m.to = 0;
    assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
    m = append_from_leader(f);
    m.from = 0;
    assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
    m = append_from_leader(f);
    m.type = 0; /* unknown types */
    assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
    m.type = 99;
    assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
    m.type = RAFT_MSG_READ_INDEX_RESP + 1;
    assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);

    /* Inconsistent entries. */
    m = append_from_leader(f);
    m.n_entries = 2;
    m.entries = NULL; /* count without entries */
    assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
    raft_entry bad[3];
    memcpy(bad, es, sizeof bad);
    bad[1].index = li + 3; /* gap */
    m.entries = bad;
    assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
    memcpy(bad, es, sizeof bad);
    bad[0].index = li + 2; /* does not follow log_index */
    bad[1].index = li + 3;
    assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
    memcpy(bad, es, sizeof bad);
    bad[1].term = t + 1; /* entry newer than the message's term */
    assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
    memcpy(bad, es, sizeof bad);
    bad[0].term = t;
    bad[1].term = t - 1 > 0 ? t - 1 : 0; /* terms going back */
    if (t > 1)
        assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
    memcpy(bad, es, sizeof bad);
    bad[0].term = 0; /* term 0 does not exist */
    assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
    memcpy(bad, es, sizeof bad);
    bad[1].type = 7; /* unknown entry type */
    assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
    memcpy(bad, es, sizeof bad);
    bad[1].data = NULL; /* length without bytes */
    assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
    memcpy(bad, es, sizeof bad);
    bad[0].type = RAFT_ENTRY_CONF; /* a configuration that does not decode */
    assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
    /* A malformed message of a higher term does not move the term. */
    memcpy(bad, es, sizeof bad);
    bad[1].index = li + 7;
    m.term = t + 5;
    assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);

    /* Snapshot chunks that do not fit their snapshot. */
    raft_msg s;
    memset(&s, 0, sizeof s);
    s.type = RAFT_MSG_SNAPSHOT;
    s.from = 1;
    s.to = 2;
    s.term = t;
    s.log_index = li + 10;
    s.log_term = t;
    s.snapshot_size = 100;
    s.conf = fx_mkconf("1,2,3", NULL);
    uint8_t chunk[64] = {0};
    s.offset = 80;
    s.len = 64; /* past the end */
    s.data = chunk;
    assert_int_equal(raft_step(r2, &s), RAFT_EINVAL);
    s.offset = 0;
    s.len = 32;
    s.data = NULL; /* length without bytes */
    assert_int_equal(raft_step(r2, &s), RAFT_EINVAL);
    s.data = chunk;
    s.conf = fx_mkconf("1,2,2", NULL); /* invalid membership */
    assert_int_equal(raft_step(r2, &s), RAFT_EINVAL);

    /* Nothing of it stuck, nothing was produced... */
    size_t mark = fx_mark(f);
    fx_ready_all(f);
    assert_unchanged(f, 2, &before);
    assert_int_equal(fx_count(f, mark, MSG(0, 2, 0)), 0);
    assert_int_equal(fx_node_of(f, 2)->snapshots_installed, 0);

    /* ...and the member keeps working. */
    assert_int_equal(fx_propose(f, 1, "b"), 0);
    fx_stabilize(f);
    fx_tick(f, 1, 1);
    assert_true(fx_applied(f, 2, "b"));
    assert_int_equal(fx_term(f, 2), t);
    fx_free(f);
}

/* Messages of stale terms are dropped without effect (but are not malformed). */
static void test_stale_term_messages_dropped(void **state)
{
    (void)state;
    raft_config c = fx_config();
    c.check_quorum = false;
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    fx_elect(f, 2);
    assert_int_equal(fx_term(f, 2), TERM(2));
    raft_status before = fx_status(f, 3);
    raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_APPEND;
    m.from = 1;
    m.to = 3;
    m.term = 1;
    m.log_index = 0;
    m.log_term = 0;
    m.commit = 0;
    int rc = raft_step(fx_raft(f, 3), &m);
    assert_true(rc == 0 || rc == RAFT_EINVAL);
    fx_ready_all(f);
    assert_unchanged(f, 3, &before);
    assert_int_equal(raft_leader(fx_raft(f, 3)), 2);
    fx_free(f);
}

static void test_new_refuses_bad_arguments(void **state)
{
    (void)state;
    raft_config c = fx_config();
    raft_conf boot = fx_mkconf("1,2,3", NULL);
    raft_restore rs;
    memset(&rs, 0, sizeof rs);
    char err[128];

    c.id = 0;
    err[0] = 0;
    assert_null(raft_new(&c, &boot, &rs, err, sizeof err));
    assert_true(err[0] != 0);
    c.id = 1;
    c.heartbeat_ticks = c.election_ticks;
    assert_null(raft_new(&c, &boot, &rs, err, sizeof err));
    c = fx_config();
    c.id = 1;
    raft *ok = raft_new(&c, &boot, &rs, err, sizeof err);
    assert_non_null(ok);
    raft_free(ok);

    /* Inconsistent restores. */
    raft_entry es[3];
    memset(es, 0, sizeof es);
    for (int i = 0; i < 3; i++) {
        es[i].term = 1;
        es[i].index = 1 + (uint64_t)i;
    }
    rs.hard_state.term = 1;
    rs.entries = es;
    rs.n_entries = 3;
    ok = raft_new(&c, NULL, &rs, err, sizeof err);
    assert_non_null(ok); /* the consistent one, for reference */
    raft_free(ok);
    es[2].index = 4; /* gap */
    assert_null(raft_new(&c, NULL, &rs, err, sizeof err));
    es[2].index = 3;
    es[1].term = 0; /* terms going back */
    assert_null(raft_new(&c, NULL, &rs, err, sizeof err));
    es[1].term = 1;
    rs.hard_state.commit = 5; /* commit beyond the log */
    assert_null(raft_new(&c, NULL, &rs, err, sizeof err));
    rs.hard_state.commit = 2;
    rs.applied = 4; /* applied beyond the log */
    assert_null(raft_new(&c, NULL, &rs, err, sizeof err));
    /* Applied beyond the durable commit is consistent: the driving loop
     * applies while the batch holding the commit index may still be in
     * flight. The entries applied were committed. */
    rs.applied = 3;
    ok = raft_new(&c, NULL, &rs, err, sizeof err);
    assert_non_null(ok);
    raft_status st;
    raft_get_status(ok, &st);
    assert_int_equal(st.applied, 3);
    assert_int_equal(st.commit, 3);
    raft_free(ok);
    rs.applied = 0;
    raft_snapshot_meta snap;
    memset(&snap, 0, sizeof snap);
    snap.index = 5;
    snap.term = 1;
    snap.conf = boot;
    rs.snapshot = &snap; /* entries must start right after the snapshot */
    assert_null(raft_new(&c, NULL, &rs, err, sizeof err));
}

/* A restored log of n entries (at most 200), index i + 1 at term t1, from index first_t2 on
 * at term t2, each 8 bytes of data; entry 1 is the configuration 1,2,3 and entry conf_at the
 * configuration 1,2,3,4. Entries at or below unloaded_through but configurations come
 * without data, as storage hands them over (raft_restore.unloaded_through). */
typedef struct restored_log {
    raft_entry es[200];
    uint8_t data[200][8];
    uint8_t cb[4 + 8 * 3 * RAFT_MAX_MEMBERS], gb[4 + 8 * 3 * RAFT_MAX_MEMBERS];
    raft_conf boot, grown;
} restored_log;

static void restored_log_fill(restored_log *l, int n, uint64_t t1, uint64_t first_t2, uint64_t t2,
                              int conf_at, uint64_t unloaded_through)
{
    memset(l->es, 0, sizeof l->es);
    l->boot = fx_mkconf("1,2,3", NULL);
    l->grown = fx_mkconf("1,2,3,4", NULL);
    for (int i = 0; i < n; i++) {
        raft_entry *e = &l->es[i];
        e->index = 1 + (uint64_t)i;
        e->term = e->index < first_t2 ? t1 : t2;
        e->type = RAFT_ENTRY_NORMAL;
        memset(l->data[i], 'a' + i % 26, sizeof l->data[i]);
        bool unloaded = e->index <= unloaded_through;
        e->data = unloaded ? NULL : l->data[i];
        e->len = unloaded ? 0 : sizeof l->data[i];
    }
    l->es[0].type = RAFT_ENTRY_CONF;
    l->es[0].data = l->cb;
    l->es[0].len = (uint32_t)raft_conf_encode(&l->boot, l->cb);
    l->es[conf_at - 1].type = RAFT_ENTRY_CONF;
    l->es[conf_at - 1].data = l->gb;
    l->es[conf_at - 1].len = (uint32_t)raft_conf_encode(&l->grown, l->gb);
}

/* A restart with a log larger than log_mem_bytes: the applied entries leave memory as they
 * are restored (their terms stay), the committed configurations in them still take effect,
 * and the committed entries after the applied index are handed out, in memory. */
static void test_restore_keeps_the_log_bounded(void **state)
{
    (void)state;
    raft_config c = fx_config();
    c.id = 1;
    c.log_mem_bytes = 64;
    static restored_log l;
    restored_log_fill(&l, 200, 1, 101, 2, 150, 0); /* 150: applied, its entry leaves memory */
    uint8_t(*data)[8] = l.data;
    raft_restore rs;
    memset(&rs, 0, sizeof rs);
    rs.hard_state.term = 2;
    rs.hard_state.commit = 198;
    rs.entries = l.es;
    rs.n_entries = 200;
    rs.applied = 190;
    char err[128];
    raft *r = raft_new(&c, NULL, &rs, err, sizeof err);
    assert_non_null(r);
    raft_status st;
    raft_get_status(r, &st);
    assert_int_equal(st.last_index, 200);
    /* what is not applied stays (191..200); of the applied, no more than the budget */
    assert_true(st.first_index >= 191 - 64 / 8);
    assert_int_equal(raft_log_term(r, 50), 1); /* terms of the entries that left */
    assert_int_equal(raft_log_term(r, 150), 2);
    const raft_entry *e;
    assert_int_not_equal(raft_log_entry(r, 150, &e), 0);
    assert_true(fx_conf_equal(raft_get_conf(r), &l.grown));
    /* 191..198 are committed and not applied: handed out at once */
    assert_true(raft_has_ready(r));
    struct raft_ready rd;
    raft_ready(r, &rd);
    assert_int_equal(rd.n_committed, 8);
    assert_int_equal(rd.committed[0].index, 191);
    assert_memory_equal(rd.committed[0].data, data[190], 8);
    raft_advance(r, &rd);
    raft_free(r);
    /* without a budget every entry stays */
    c.log_mem_bytes = 0;
    r = raft_new(&c, NULL, &rs, err, sizeof err);
    assert_non_null(r);
    raft_get_status(r, &st);
    assert_int_equal(st.first_index, 1);
    assert_true(fx_conf_equal(raft_get_conf(r), &l.grown));
    raft_free(r);
}

/* Entries the caller left on disk (unloaded_through): out of memory from the start with
 * their terms kept, a configuration among them in effect, the rest as usual. */
static void test_restore_with_unloaded_entries(void **state)
{
    (void)state;
    raft_config c = fx_config();
    c.id = 1;
    static restored_log l;
    restored_log_fill(&l, 100, 1, 41, 3, 50, 60); /* 50: unloaded, configurations keep data */
    uint8_t(*data)[8] = l.data;
    raft_entry *es = l.es;
    raft_restore rs;
    memset(&rs, 0, sizeof rs);
    rs.hard_state.term = 3;
    rs.hard_state.commit = 95;
    rs.entries = es;
    rs.n_entries = 100;
    rs.applied = 90;
    rs.unloaded_through = 60;
    char err[128];
    raft *r = raft_new(&c, NULL, &rs, err, sizeof err);
    assert_non_null(r);
    raft_status st;
    raft_get_status(r, &st);
    assert_int_equal(st.last_index, 100);
    assert_int_equal(st.first_index, 61);
    assert_int_equal(raft_log_term(r, 10), 1);
    assert_int_equal(raft_log_term(r, 40), 1);
    assert_int_equal(raft_log_term(r, 41), 3);
    assert_int_equal(raft_log_term(r, 60), 3);
    const raft_entry *e;
    assert_int_not_equal(raft_log_entry(r, 60, &e), 0);
    assert_int_equal(raft_log_entry(r, 61, &e), 0);
    assert_memory_equal(e->data, data[60], 8);
    assert_true(fx_conf_equal(raft_get_conf(r), &l.grown));
    assert_true(raft_has_ready(r));
    struct raft_ready rd;
    raft_ready(r, &rd);
    assert_int_equal(rd.n_committed, 5);
    assert_int_equal(rd.committed[0].index, 91);
    assert_memory_equal(rd.committed[0].data, data[90], 8);
    raft_advance(r, &rd);
    raft_free(r);

    /* unloaded entries must be applied ones */
    rs.applied = 55;
    assert_null(raft_new(&c, NULL, &rs, err, sizeof err));
    assert_non_null(strstr(err, "not applied"));
    /* and an unloaded configuration without its data is refused, not taken as empty */
    rs.applied = 90;
    es[49].data = NULL;
    es[49].len = 0;
    assert_null(raft_new(&c, NULL, &rs, err, sizeof err));
}

/* Restart from what the disk holds (hard state, entries, snapshot):
 * term, vote, commit, log and configuration come back, and the member
 * rejoins. */
static void test_restart_from_restore(void **state)
{
    (void)state;
    raft_config c = fx_config();
    c.snapshot_entries = 5;
    c.trailing_entries = 2;
    fx *f = fx_new(3, &c);
    fx_add_node(f, 4);
    fx_elect(f, 1);
    char buf[16];
    for (int i = 0; i < 12; i++) {
        snprintf(buf, sizeof buf, "r%d", i);
        assert_int_equal(fx_propose(f, 1, buf), 0);
        fx_stabilize(f);
    }
    raft_conf t = fx_mkconf("1,2,3", "4");
    assert_int_equal(raft_propose_conf(fx_raft(f, 1), &t), 0);
    fx_stabilize(f);
    fx_tick(f, 0, 2);
    assert_int_equal(fx_propose(f, 1, "tail"), 0);
    fx_stabilize(f);
    fx_tick(f, 0, 2);

    for (raft_id id = 2; id <= 4; id += 2) {
        fx_node *n = fx_node_of(f, id);
        raft_status before = fx_status(f, id);
        assert_true(n->has_dsnap);
        fx_crash(f, id);
        fx_restart(f, id);
        raft_status st = fx_status(f, id);
        assert_int_equal(st.term, n->dhs.term);
        assert_int_equal(st.vote, n->dhs.vote);
        assert_int_equal(st.term, before.term);
        assert_int_equal(st.vote, before.vote);
        assert_int_equal(st.commit, n->dhs.commit);
        assert_int_equal(st.commit, before.commit);
        assert_int_equal(st.last_index, before.last_index);
        assert_int_equal(st.snapshot_index, n->dsnap.index);
        assert_int_equal(st.role, RAFT_FOLLOWER);
        assert_int_equal(raft_log_term(fx_raft(f, id), st.last_index),
                         raft_log_term(fx_raft(f, 1), st.last_index));
        assert_true(fx_conf_equal(raft_get_conf(fx_raft(f, id)), &t));
    }
    assert_int_equal(fx_propose(f, 1, "after"), 0);
    fx_stabilize(f);
    fx_tick(f, 1, 1);
    assert_true(fx_applied(f, 2, "after"));
    assert_true(fx_applied(f, 4, "after"));

    /* The whole cluster restarts: a leader of a later term, nothing lost,
     * nothing applied twice (the fixture checks), and it goes on. */
    uint64_t commit = fx_commit(f, 1), term = fx_term(f, 1);
    for (raft_id id = 1; id <= 4; id++)
        fx_crash(f, id);
    for (raft_id id = 1; id <= 4; id++) {
        fx_restart(f, id);
        assert_true(fx_conf_equal(raft_get_conf(fx_raft(f, id)), &t));
    }
    raft_id l = 0;
    for (int k = 0; k < 20 * (int)c.election_ticks && !l; k++) {
        fx_tick(f, 0, 1);
        l = fx_agreed_leader(f);
    }
    assert_true(l >= 1 && l <= 3);
    assert_true(fx_term(f, l) > term);
    assert_true(fx_commit(f, l) >= commit);
    assert_int_equal(fx_propose(f, l, "reborn"), 0);
    fx_stabilize(f);
    fx_tick(f, l, 1);
    for (raft_id id = 1; id <= 4; id++)
        assert_true(fx_applied(f, id, "reborn"));
    fx_check_log_matching(f);
    fx_free(f);
}

/* A restart of a founding member that never took a snapshot. */
static void test_restart_without_snapshot(void **state)
{
    (void)state;
    raft_config c = fx_config();
    fx *f = fx_new(3, &c);
    fx_elect(f, 1);
    assert_int_equal(fx_propose(f, 1, "a"), 0);
    fx_stabilize(f);
    fx_tick(f, 0, 1);
    raft_status before = fx_status(f, 3);
    fx_crash(f, 3);
    fx_restart(f, 3);
    raft_status st = fx_status(f, 3);
    assert_int_equal(st.term, before.term);
    assert_int_equal(st.commit, before.commit);
    assert_int_equal(st.last_index, before.last_index);
    raft_conf boot = fx_mkconf("1,2,3", NULL);
    assert_true(fx_conf_equal(raft_get_conf(fx_raft(f, 3)), &boot));
    fx_tick(f, 0, 2);
    assert_int_equal(fx_propose(f, 1, "b"), 0);
    fx_stabilize(f);
    fx_tick(f, 1, 1);
    assert_true(fx_applied(f, 3, "b"));
    fx_free(f);
}

/* A run of the cluster is a function of the seed: the same seed, the same
 * trace; another seed, (here) another trace. */
static uint64_t run_hash(uint64_t seed)
{
    raft_config c = fx_config();
    c.seed = seed;
    fx *f = fx_new(5, &c);
    char buf[16];
    for (int k = 0; k < 300; k++) {
        fx_tick(f, 0, 1);
        raft_id l = fx_agreed_leader(f);
        if (l && k % 7 == 0) {
            snprintf(buf, sizeof buf, "k%d", k);
            fx_propose(f, l, buf);
        }
        if (k == 100)
            fx_isolate(f, l ? l : 1);
        if (k == 200)
            fx_heal(f);
    }
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < f->n_trace; i++) {
        const raft_msg *m = &f->trace[i].m;
        uint64_t v[] = {m->type,     m->from,  m->to,     m->term,   m->log_index,
                        m->log_term, m->index, m->commit, m->reject, m->n_entries};
        for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
            h ^= v[k];
            h *= 1099511628211ull;
        }
    }
    fx_free(f);
    return h;
}

static void test_runs_are_deterministic(void **state)
{
    (void)state;
    assert_int_equal(run_hash(42), run_hash(42));
    assert_int_equal(run_hash(7), run_hash(7));
    assert_int_not_equal(run_hash(42), run_hash(7));
}

/* Every error code, message type and role has a name. */
static void test_names(void **state)
{
    (void)state;
    for (int e = RAFT_OK; e >= RAFT_ESTOPPED; e--) {
        assert_non_null(raft_strerror(e));
        assert_true(raft_strerror(e)[0] != 0);
    }
    assert_non_null(raft_strerror(-1000));
    for (int t = RAFT_MSG_VOTE; t <= RAFT_MSG_READ_INDEX_RESP; t++)
        assert_non_null(raft_msg_type_name(t));
    assert_non_null(raft_msg_type_name(0));
    for (int r = RAFT_FOLLOWER; r <= RAFT_LEADER; r++)
        assert_non_null(raft_role_name((enum raft_role)r));
    raft_config c;
    raft_config_default(&c);
    assert_int_equal(c.election_ticks, 10);
    assert_int_equal(c.heartbeat_ticks, 1);
    assert_true(c.pre_vote && c.check_quorum);
    assert_int_equal(c.read_mode, RAFT_READ_SAFE);
    assert_int_equal(c.max_inflight_msgs, 256);
    assert_int_equal(c.snapshot_entries, 10000);
    assert_int_equal(c.trailing_entries, 5000);
    assert_int_equal(c.snapshot_chunk_bytes, 1 << 20);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_names),
    cmocka_unit_test(test_step_rejects_malformed_messages),
    cmocka_unit_test(test_stale_term_messages_dropped),
    cmocka_unit_test(test_new_refuses_bad_arguments),
    cmocka_unit_test(test_restart_from_restore),
    cmocka_unit_test(test_restore_keeps_the_log_bounded),
    cmocka_unit_test(test_restore_with_unloaded_entries),
    cmocka_unit_test(test_restart_without_snapshot),
    cmocka_unit_test(test_runs_are_deterministic),
};

RAFT_TEST_GROUP(raft_input_group, "input", tests);
