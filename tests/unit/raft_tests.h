/*
 * raft_tests.h: the groups of the consensus core's unit tests (raft_test.c
 * runs them all). Each raft_test_*.c file defines one group.
 */
#ifndef CORD_TEST_RAFT_TESTS_H
#define CORD_TEST_RAFT_TESTS_H

#include "raft_fixture.h"

typedef struct raft_test_group {
    const char *name;
    const struct CMUnitTest *tests;
    size_t n;
} raft_test_group;

extern const raft_test_group raft_election_group;
extern const raft_test_group raft_replication_group;
extern const raft_test_group raft_snapshot_group;
extern const raft_test_group raft_membership_group;
extern const raft_test_group raft_transfer_group;
extern const raft_test_group raft_read_group;
extern const raft_test_group raft_input_group;

#define RAFT_TEST_GROUP(var, label, array)                                                         \
    const raft_test_group var = {label, array, sizeof(array) / sizeof((array)[0])}

/* Selects messages in fx_count/fx_find/fx_hold: MSG(RAFT_MSG_APPEND, 1, 2). */
#define MSG(t_, from_, to_) ((fx_match){.type = (t_), .from = (from_), .to = (to_)})

/* Indexes and terms counted from where bootstrap left the log (fx f in
 * scope): IDX(1) is the first entry after bootstrap, TERM(1) the first
 * election's term. */
#define IDX(k)  (f->boot_index + (uint64_t)(k))
#define TERM(k) (f->boot_term + (uint64_t)(k))

#endif
