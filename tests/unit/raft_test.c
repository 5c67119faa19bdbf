/*
 * raft_test.c: unit tests of the consensus core (src/raft), run against the
 * in-memory cluster of raft_fixture.h. Each group lives in raft_test_*.c.
 *
 *     raft_test [pattern]    runs the tests whose name matches the glob pattern
 *     FX_TRACE=1 raft_test   prints every batch and message
 *     FX_BUGS=mask raft_test_bugs   runs against the core with enum raft_bug defects on
 */
#include <stdio.h>
#include <string.h>

#include "raft_tests.h"

int main(int argc, char **argv)
{
    const raft_test_group *groups[] = {
        &raft_election_group, &raft_replication_group, &raft_snapshot_group, &raft_membership_group,
        &raft_transfer_group, &raft_read_group,        &raft_input_group,
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    int failed = 0;
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++)
        failed +=
            _cmocka_run_group_tests(groups[i]->name, groups[i]->tests, groups[i]->n, NULL, NULL);
    return failed ? 1 : 0;
}
