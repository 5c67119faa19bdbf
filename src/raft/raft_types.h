/*
 * raft_types.h: the plain data types shared by the consensus core and the
 * modules that persist its output (WAL, snapshots). No behaviour lives here.
 */
#ifndef CORD_RAFT_TYPES_H
#define CORD_RAFT_TYPES_H

#include <stddef.h>
#include <stdint.h>

/* Member ids are non-zero; 0 means "none" (no vote, no leader). */
typedef uint64_t raft_id;

enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 0, /* application command; empty data = leader's no-op */
    RAFT_ENTRY_CONF = 1,   /* membership configuration (encoded by raft_conf_encode) */
};

/* One log entry. `data` is owned by whoever produced the struct; the core
 * copies what it is given and lends out pointers that stay valid until the
 * next raft_advance(). */
typedef struct raft_entry {
    uint64_t term;
    uint64_t index;
    uint8_t type; /* enum raft_entry_type */
    uint32_t len;
    const uint8_t *data;
} raft_entry;

/* What must be durable before votes and acknowledgements may leave. */
typedef struct raft_hard_state {
    uint64_t term;
    raft_id vote;
    uint64_t commit;
} raft_hard_state;

#endif
