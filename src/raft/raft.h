/*
 * raft.h: cord's consensus core, a pure Raft state machine.
 *
 * The core does no I/O. It owns no sockets, files, clocks, threads or global
 * randomness: every input is a call below (a message, a tick, a proposal, "this
 * batch is now durable"), and every output is collected into a batch
 * (struct raft_ready) that the caller drains. A seed and the sequence of calls
 * determine everything the core does, which is what makes the simulator
 * (src/sim) possible. The design follows etcd's raft (rawnode Ready/Advance)
 * and cowsql/raft.
 *
 * The driving loop
 * ----------------
 *     raft_step / raft_tick / raft_propose / raft_read_index / ...   (any number)
 *     if (raft_has_ready(r)) {
 *         raft_ready(r, &rd);
 *         1. start persisting, in this order: rd.snapshot (install it), then
 *            rd.entries (the log from rd.entries[0].index on is replaced by
 *            them) and rd.hard_state (if rd.hard_state_changed). Persistence
 *            may run asynchronously, but batches must become durable in order.
 *         2. send rd.messages now (they may go out before persistence: the
 *            core keeps back every message that promises durability).
 *         3. apply rd.committed (already durable locally) in order; answer
 *            rd.reads once the applied index reaches each read's index.
 *         raft_advance(r, &rd);        (rd's pointers die here)
 *         ... later, once batch rd.seq is durable: raft_persisted(r, rd.seq);
 *         (a batch without rd.must_sync need not be synced: it counts as durable
 *         as soon as every batch before it is)
 *     }
 * Between raft_ready and raft_advance no other raft_* call may be made.
 *
 * The durability rule lives here: vote grants, append and snapshot
 * acknowledgements, the leader's count of its own log and a candidate's own
 * vote (it leads only once that is durable, whatever the others answered)
 * are held inside the core until raft_persisted() says the batch holding
 * what they promise is on disk (etcd keeps them in msgsAfterAppend).
 *
 * Snapshots
 * ---------
 * The state machine's snapshot data never passes through the core. When
 * rd.want_snapshot is set, the caller takes a snapshot of its state at some
 * applied index and reports it with raft_snapshot_taken(index, size); the
 * core then compacts its log (keeping conf.trailing_entries). To bring a
 * follower that is too far behind up to date, the leader sends
 * RAFT_MSG_SNAPSHOT chunks that carry offset and length only: the caller's
 * transport fills `data` from its snapshot file when it sends the message.
 * On the follower the chunk data is handed back in rd.snapshot_chunk (write it
 * at that offset into a pending snapshot); after the last chunk,
 * rd.snapshot says "install the pending snapshot at index/term".
 *
 * Membership
 * ----------
 * Changes go through joint consensus: raft_propose_conf(target) makes the
 * leader append a joint configuration (old and new voters both decide); when
 * that is committed the leader appends the final configuration. A
 * configuration takes effect on each member once a hard state that commits
 * its entry is durable there (as in etcd, whose server applies a committed
 * configuration change only after the WAL sync); entries from that one on
 * are applied only after it has taken effect. Only one change is
 * in flight at a time. Learners receive the log but never vote or count. A
 * leader that is removed steps down once the final configuration commits,
 * handing leadership to the most up-to-date remaining voter.
 *
 * Reads
 * -----
 * raft_read_index(ctx) asks for a linearizable read point. The leader
 * batches all reads that arrive before the next raft_ready() into one
 * heartbeat round; once a quorum answers that round, each read comes out in
 * rd.reads with the commit index it must wait for. On a follower the request
 * is forwarded to the leader. With read_mode RAFT_READ_LEASE the leader
 * answers at once while it has heard from a quorum within the last election
 * timeout: that is safe only if clocks on the members advance at the same
 * rate to within (election_timeout - heartbeat) ticks per election timeout,
 * i.e. bounded clock drift and no process pause longer than that; etcd
 * documents the same assumption. In this mode a member also grants no vote
 * (but a forced one, leadership transfer) for an election timeout after it
 * starts: it may have answered a lease-granting heartbeat before a crash.
 * Forced votes ignore leases, so a leader that has sent TimeoutNow answers
 * reads with a heartbeat round for the rest of its term.
 * RAFT_READ_SAFE (the default) assumes nothing about clocks.
 *
 * Errors: functions return 0 or a negative RAFT_E* code (raft_strerror()).
 */
#ifndef CORD_RAFT_H
#define CORD_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft_types.h"

/* ------------------------------------------------------------------ errors */

enum {
    RAFT_OK = 0,
    RAFT_ENOTLEADER = -1,   /* this member is not the leader (raft_leader() hints) */
    RAFT_ENOLEADER = -2,    /* no leader known: proposal cannot be forwarded */
    RAFT_EBUSY = -3,        /* too many uncommitted/queued bytes or reads: try later */
    RAFT_ETRANSFER = -4,    /* leadership transfer in progress: proposals refused */
    RAFT_ECONFPENDING = -5, /* a membership change is still in flight */
    RAFT_EINVAL = -6,       /* malformed argument or message */
    RAFT_ECOMPACTED = -7,   /* the index asked for was compacted away */
    RAFT_ENOMEM = -8,       /* allocation failed; the core state is unchanged */
    RAFT_ETOOLARGE = -9,    /* one proposal is larger than max_entry_bytes */
    RAFT_ENOTVOTER = -10,   /* transfer target is not a voter, or unknown member */
    RAFT_ESTOPPED = -11,    /* this member was removed from the cluster */
};

/* A static description of an error code. */
const char *raft_strerror(int err);

/* ---------------------------------------------------------- configuration */

#define RAFT_MAX_MEMBERS 16

/* A membership configuration. voters_out is non-empty only in the joint
 * phase; then decisions need a majority of voters AND of voters_out. */
typedef struct raft_conf {
    uint32_t n_voters, n_voters_out, n_learners;
    raft_id voters[RAFT_MAX_MEMBERS];
    raft_id voters_out[RAFT_MAX_MEMBERS];
    raft_id learners[RAFT_MAX_MEMBERS];
} raft_conf;

/* Encoded size of a configuration in a RAFT_ENTRY_CONF entry. */
size_t raft_conf_encoded_len(const raft_conf *c);
/* Writes c into buf (raft_conf_encoded_len bytes). Returns bytes written. */
size_t raft_conf_encode(const raft_conf *c, uint8_t *buf);
/* Decodes a RAFT_ENTRY_CONF payload. Returns 0 or RAFT_EINVAL (malformed,
 * duplicate ids, id 0, more than RAFT_MAX_MEMBERS, a learner that is a voter). */
int raft_conf_decode(raft_conf *c, const uint8_t *buf, size_t len);
/* true if id is in voters or voters_out. */
bool raft_conf_is_voter(const raft_conf *c, raft_id id);
bool raft_conf_is_learner(const raft_conf *c, raft_id id);
bool raft_conf_is_joint(const raft_conf *c);

enum raft_read_mode {
    RAFT_READ_SAFE = 0,  /* ReadIndex with a heartbeat round (default) */
    RAFT_READ_LEASE = 1, /* leader lease; needs bounded clock drift (see above) */
};

/* Deliberate defects, compiled in only when CORD_RAFT_BUGS is defined (the
 * simulator's copy of the core). They exist to prove the checks bite. */
enum raft_bug {
    RAFT_BUG_COMMIT_OLD_TERM = 1u << 0,    /* commit by counting replicas of old-term entries */
    RAFT_BUG_DOUBLE_VOTE = 1u << 1,        /* grant a second vote in the same term */
    RAFT_BUG_ACK_BEFORE_PERSIST = 1u << 2, /* acknowledge appends before they are durable */
    RAFT_BUG_STALE_READ = 1u << 3,         /* answer ReadIndex without confirming leadership */
};

typedef struct raft_config {
    raft_id id;                     /* this member, non-zero */
    uint32_t election_ticks;        /* election timeout in ticks; randomised in [e, 2e) */
    uint32_t heartbeat_ticks;       /* leader heartbeat period in ticks (< election_ticks) */
    uint64_t seed;                  /* seeds the core's own PRNG (election jitter) */
    bool pre_vote;                  /* run a pre-vote round before bumping the term */
    bool check_quorum;              /* leader steps down if it cannot hear a quorum */
    enum raft_read_mode read_mode;  /* RAFT_READ_LEASE requires check_quorum */
    uint32_t max_inflight_msgs;     /* appends in flight per follower (pipelining window) */
    uint32_t max_msg_bytes;         /* soft cap of entry bytes in one append message */
    uint32_t max_entry_bytes;       /* largest single proposal; larger: RAFT_ETOOLARGE */
    uint64_t max_uncommitted_bytes; /* leader's cap on proposed-but-uncommitted bytes */
    uint32_t max_pending_reads;     /* cap on queued read-index requests */
    uint64_t snapshot_entries;      /* want a snapshot every this many applied entries (0: never) */
    uint64_t trailing_entries;      /* entries kept after compaction for slow followers */
    uint32_t snapshot_chunk_bytes;  /* InstallSnapshot chunk size */
    /* Bytes of entry data the core may hold in memory (0: no bound, the log stays in memory
     * until a snapshot compacts it). Past it, entries that are applied and durable locally
     * are dropped from memory, oldest first, down to half of it; a follower that needs them
     * is served with rd.fetches (the caller reads them back from its log). */
    uint64_t log_mem_bytes;
    uint32_t bugs; /* enum raft_bug mask; ignored unless CORD_RAFT_BUGS */
} raft_config;

/* Fills c with defaults (election 10 ticks, heartbeat 1, pre_vote and
 * check_quorum on, inflight 256, 1 MiB messages, 1.5 MiB entries, 64 MiB
 * uncommitted, 4096 reads, snapshot every 10000 entries, 5000 trailing, 1 MiB
 * chunks). The caller sets id and seed. */
void raft_config_default(raft_config *c);

/* ---------------------------------------------------------------- messages */

enum raft_msg_type {
    RAFT_MSG_VOTE = 1,        /* RequestVote (pre_vote: PreVote, term = candidate's term + 1) */
    RAFT_MSG_VOTE_RESP,       /* reject = vote refused */
    RAFT_MSG_APPEND,          /* AppendEntries: log_index/log_term = prev; entries; commit */
    RAFT_MSG_APPEND_RESP,     /* ok: index = last matching index; reject: hint_index/hint_term */
    RAFT_MSG_HEARTBEAT,       /* commit (capped at the follower's match); context = read round */
    RAFT_MSG_HEARTBEAT_RESP,  /* context echoed */
    RAFT_MSG_SNAPSHOT,        /* one chunk: snapshot index/term in log_index/log_term */
    RAFT_MSG_SNAPSHOT_RESP,   /* index = bytes received so far; reject: resend from index */
    RAFT_MSG_TIMEOUT_NOW,     /* leadership transfer: campaign now */
    RAFT_MSG_PROPOSE,         /* a follower forwards proposals to the leader */
    RAFT_MSG_READ_INDEX,      /* a follower forwards a read; context = its request id */
    RAFT_MSG_READ_INDEX_RESP, /* index = read point; reject = leader refused it */
};

typedef struct raft_msg {
    uint8_t type;  /* enum raft_msg_type */
    bool pre_vote; /* VOTE / VOTE_RESP of the pre-vote round */
    bool reject;
    bool force; /* VOTE caused by leadership transfer: ignore leader lease */
    bool done;  /* SNAPSHOT: last chunk */
    raft_id from, to;
    uint64_t term;
    uint64_t log_index, log_term; /* VOTE: last log; APPEND: prev; SNAPSHOT: snapshot's */
    uint64_t index;               /* APPEND_RESP/READ_INDEX_RESP: index; SNAPSHOT_RESP: ack */
    uint64_t commit;
    uint64_t hint_index, hint_term; /* APPEND_RESP reject: where the follower's log may match */
    uint64_t context;               /* HEARTBEAT(_RESP): read round; READ_INDEX(_RESP): request */
    uint64_t offset;                /* SNAPSHOT: chunk offset in bytes */
    uint64_t snapshot_size;         /* SNAPSHOT: total bytes */
    raft_conf conf;                 /* SNAPSHOT: membership at the snapshot's index */
    uint32_t n_entries;             /* APPEND / PROPOSE */
    const raft_entry *entries;
    uint32_t len;        /* SNAPSHOT: chunk length; the transport fills data */
    const uint8_t *data; /* SNAPSHOT: chunk bytes (NULL as produced by the core) */
} raft_msg;

const char *raft_msg_type_name(int type);

/* ---------------------------------------------------------------- the batch */

typedef struct raft_read_state {
    uint64_t context; /* the caller's request id from raft_read_index() */
    uint64_t index;   /* serve the read once applied >= index */
} raft_read_state;

typedef struct raft_snapshot_meta {
    uint64_t index, term;
    uint64_t size; /* bytes of state-machine data */
    raft_conf conf;
} raft_snapshot_meta;

/* Leader: read the log from `from` on (entries held only by the caller's durable log, no
 * longer in the core's memory) for follower `to`, up to about max_bytes of data, and hand
 * them to raft_fetched(). `from` is one below the first entry the follower needs when that
 * entry's predecessor is also only on disk, so that its term travels with it. */
typedef struct raft_fetch {
    raft_id to;
    uint64_t from;
    uint64_t max_bytes;
} raft_fetch;

/* The batch. (A struct tag only: raft_ready() is the function that fills it.) */
struct raft_ready {
    uint64_t seq; /* pass to raft_persisted() once this batch is durable */

    bool hard_state_changed;
    raft_hard_state hard_state;
    /* The batch holds entries, a new term or vote, or the commit of a configuration entry:
     * it must be durable before raft_persisted(seq). A batch whose only change is some other
     * commit index need not be synced (etcd's MustSync): the commit index is recovered from
     * the leader and from the applied index, so its record may reach the disk with the next
     * synced batch or be lost. A configuration takes effect only once its commit is durable:
     * a member restarted from an older commit index would otherwise go back to the
     * configuration before it, after acting on the new one. */
    bool must_sync;

    const raft_entry *entries; /* to append; replaces the log from entries[0].index */
    uint32_t n_entries;

    /* Follower: bytes of an incoming snapshot to store at chunk_offset. */
    const uint8_t *snapshot_chunk;
    uint32_t snapshot_chunk_len;
    uint64_t snapshot_chunk_offset;
    uint64_t snapshot_chunk_index; /* which snapshot they belong to */

    /* Follower: install the pending snapshot (after storing its chunks); the
     * log is now empty after snapshot->index. NULL when none. */
    const raft_snapshot_meta *snapshot;

    const raft_msg *messages; /* send now */
    uint32_t n_messages;

    const raft_entry *committed; /* apply in order; durable locally */
    uint32_t n_committed;

    const raft_read_state *reads;
    uint32_t n_reads;

    /* Read requests the core has dropped (leader lost, transfer, limit):
     * answer these with an error. */
    const uint64_t *failed_reads;
    uint32_t n_failed_reads;

    /* Leader: entries to read back from the durable log, each answered with raft_fetched()
     * (also when the read fails: with none) after raft_advance. */
    const raft_fetch *fetches;
    uint32_t n_fetches;

    bool want_snapshot; /* applied is >= snapshot_entries past the last snapshot */
    bool leader_changed;
    raft_id leader;
    bool conf_changed; /* conf below differs from the previous batch's */
    const raft_conf *conf;
};

/* --------------------------------------------------------------- lifecycle */

typedef struct raft raft;

/* What the caller recovered from its disk at start. All fields may be zero
 * for a fresh member. `entries` are the log after snapshot.index, in order.
 * Entries at or below `unloaded_through` come without their data (data NULL,
 * len 0), except configuration entries, which keep theirs: the caller left
 * them on disk, and they are out of memory from the start, read back through
 * rd.fetches like entries that left by cfg.log_mem_bytes. They must be applied
 * (unloaded_through <= applied). 0: every entry has its data. */
typedef struct raft_restore {
    raft_hard_state hard_state;
    const raft_snapshot_meta *snapshot; /* NULL: none */
    const raft_entry *entries;
    uint32_t n_entries;
    uint64_t applied; /* state machine's applied index (>= snapshot index) */
    uint64_t unloaded_through;
} raft_restore;

/* Creates a member. For a brand-new cluster, pass bootstrap = the initial
 * configuration and an empty restore: every founding member must pass the
 * same one. It becomes a committed RAFT_ENTRY_CONF entry at index 1, term 1
 * (persisted and applied through the first batches like any other), so the
 * first election is for term 2. bootstrap is ignored when the restore holds
 * any state. A member added later starts with bootstrap NULL and an empty
 * restore and learns the configuration from the leader.
 * If the restored log ends in a term above the hard state's (a crash kept a
 * batch's entries but not its hard state), the log's term is adopted with no
 * vote: no vote in that term can have left before the hard state was durable.
 * Returns NULL on bad arguments (id 0, heartbeat >= election, inconsistent
 * restore) or allocation failure, with a reason in err. */
raft *raft_new(const raft_config *cfg, const raft_conf *bootstrap, const raft_restore *rs,
               char *err, size_t errlen);
void raft_free(raft *r);

/* ------------------------------------------------------------------ inputs */

/* One logical clock tick. */
void raft_tick(raft *r);

/* A message from a peer. Messages for other members, from stale terms, or
 * malformed are dropped (returns RAFT_EINVAL for malformed). The message
 * and its entries/data are copied as needed: they may be freed on return. */
int raft_step(raft *r, const raft_msg *m);

/* Proposes one application command. On the leader it is appended at once;
 * on a follower it is forwarded to the leader. Returns 0 (no guarantee it
 * commits: watch the applied entries), RAFT_ENOLEADER, RAFT_EBUSY,
 * RAFT_ETRANSFER, RAFT_ETOOLARGE, RAFT_ESTOPPED. */
int raft_propose(raft *r, const uint8_t *data, uint32_t len);

/* Proposes a membership change to `target` (voters and learners; voters_out
 * must be empty). Only on the leader. Returns 0, RAFT_ENOTLEADER,
 * RAFT_ECONFPENDING, RAFT_EINVAL (no voters, too many, a voter demoted
 * straight to learner, or no change). */
int raft_propose_conf(raft *r, const raft_conf *target);

/* Asks for a linearizable read point; `context` is the caller's request id
 * and comes back in rd.reads (or rd.failed_reads). Returns 0,
 * RAFT_ENOLEADER, RAFT_EBUSY. */
int raft_read_index(raft *r, uint64_t context);

/* Leader only: hand leadership to `target`. Proposals are refused until the
 * transfer finishes or times out (one election timeout). Returns 0,
 * RAFT_ENOTLEADER, RAFT_ENOTVOTER. */
int raft_transfer_leader(raft *r, raft_id target);

/* Starts an election now (tests, or operators). With lease reads, not while the member may
 * still be part of a leader's lease (it heard from a leader within the election timeout, or
 * started less than an election timeout ago): it campaigns on its own once that is over. */
void raft_campaign(raft *r);

/* The caller took a snapshot of its state machine at `index` (<= applied),
 * `size` bytes long. The core compacts its log. Returns 0 or RAFT_EINVAL. */
int raft_snapshot_taken(raft *r, uint64_t index, uint64_t size);

/* The answer to an rd.fetches request (`to`, `from` as asked): the entries read, in order
 * from `from`, or n = 0 when they could not be read. The core copies what it sends; stale
 * answers (the follower moved on, leadership changed) are ignored. Returns 0, or RAFT_EINVAL
 * when the entries are not the log's (wrong index or term): nothing is sent then. */
int raft_fetched(raft *r, raft_id to, uint64_t from, const raft_entry *ents, uint32_t n);

/* How many of the `avail` entries at ents fit in max_bytes of data: at least one (if any),
 * as one append message or one answer to a raft_fetch holds. */
uint32_t raft_entries_fitting(const raft_entry *ents, uint64_t avail, uint64_t max_bytes);

/* The follower's transport could not deliver to `to` (connection refused
 * etc.): the leader slows down to probing that follower. */
void raft_report_unreachable(raft *r, raft_id to);

/* ------------------------------------------------------------ the batch */

bool raft_has_ready(const raft *r);
/* true when the next batch stores a snapshot chunk or installs a snapshot (a
 * caller that persists asynchronously may want its log idle for those). */
bool raft_snapshot_pending(const raft *r);
/* While held, batches hand out no committed entries (rd.n_committed == 0); everything else
 * goes on: elections, heartbeats, replication, commits, reads. For a state machine that is
 * busy elsewhere for a while (cord: a defragmentation copying its store) and must not change
 * meanwhile. Volatile: a new or restarted core is not held. */
void raft_set_apply_held(raft *r, bool held);
/* Collects everything since the last batch into rd. */
void raft_ready(raft *r, struct raft_ready *rd);
/* The caller is done with rd's pointers (not that it is durable). */
void raft_advance(raft *r, const struct raft_ready *rd);
/* Batch `seq` (and every earlier one) is durable. */
void raft_persisted(raft *r, uint64_t seq);

/* ----------------------------------------------------------------- queries */

enum raft_role { RAFT_FOLLOWER = 0, RAFT_PRE_CANDIDATE, RAFT_CANDIDATE, RAFT_LEADER };

typedef struct raft_status {
    raft_id id;
    enum raft_role role;
    raft_id leader;
    uint64_t term;
    raft_id vote;
    uint64_t commit;
    uint64_t applied;     /* last index handed out in rd.committed */
    uint64_t persisted;   /* last index known durable locally */
    uint64_t first_index; /* first index held in memory */
    uint64_t last_index;
    uint64_t snapshot_index; /* log starts after this */
    uint64_t snapshot_term;
    uint64_t snapshot_size; /* bytes, as raft_snapshot_taken or the leader said */
    raft_id transferee;     /* leadership transfer target, or 0 */
    bool removed;           /* not a member of the current configuration */
} raft_status;

void raft_get_status(const raft *r, raft_status *st);
const raft_conf *raft_get_conf(const raft *r);
raft_id raft_leader(const raft *r);
uint64_t raft_term(const raft *r);
/* Entries committed but not yet handed out in rd.committed (held, or waiting for durability). */
uint64_t raft_apply_gap(const raft *r);
/* Term of the entry at index, 0 if unknown (compacted or beyond the log). */
uint64_t raft_log_term(const raft *r, uint64_t index);
/* Points *e at the entry at index. Returns 0, RAFT_ECOMPACTED, RAFT_EINVAL. */
int raft_log_entry(const raft *r, uint64_t index, const raft_entry **e);

/* Leader only: the follower's match index (0 if unknown). */
uint64_t raft_match_index(const raft *r, raft_id id);

/* Leader only: true while the leader still sends to `id`: a member of the
 * configuration, or one just removed that has not yet learned it is out (the
 * transport must keep its connection until then). */
bool raft_is_tracking(const raft *r, raft_id id);

const char *raft_role_name(enum raft_role role);

#endif
