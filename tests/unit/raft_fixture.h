/*
 * raft_fixture.h: a deterministic in-memory cluster for the consensus core's
 * unit tests (in the spirit of canonical/raft's fixture.h).
 *
 * N members of the real core, each driven exactly as raft.h's driving loop
 * says; a network that delivers only when the test says so (cut links,
 * isolate members, hold or drop chosen messages); a disk per member where the
 * test decides when batches become durable (raft_persisted); and a state
 * machine per member (a hash chain over the applied entries) whose snapshots
 * are real bytes carried in RAFT_MSG_SNAPSHOT chunks.
 *
 * Every message the core produces is recorded in a trace, so that tests can
 * count and inspect the exchange. Safety properties are checked continuously
 * by the fixture (at most one leader per term, commit never goes back, no two
 * members apply different entries at one index, every batch is well formed);
 * a violation fails the running test.
 *
 * FX_TRACE=1 in the environment prints the exchange to stderr. FX_BUGS=mask
 * sets raft_config.bugs (enum raft_bug) in fx_config(): against the core
 * built with CORD_RAFT_BUGS (raft_test_bugs) the suite must then fail.
 *
 * Indexes and terms: a fresh cluster's log is where bootstrap leaves it
 * (fx.boot_index, fx.boot_term); tests count from there (IDX/TERM in
 * raft_tests.h), so they do not depend on how bootstrap is recorded.
 */
#ifndef CORD_TEST_RAFT_FIXTURE_H
#define CORD_TEST_RAFT_FIXTURE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>

#include <cmocka.h>

#include "raft/raft.h"

#define FX_MAX_NODES 8

/* ---------------------------------------------------------------- logs */

typedef struct fx_log {
    uint64_t base; /* index before e[0] (the snapshot's index) */
    raft_entry *e; /* owned copies: e[i].index == base + 1 + i */
    size_t n, cap;
} fx_log;

uint64_t fx_log_last(const fx_log *l);
const raft_entry *fx_log_get(const fx_log *l, uint64_t index);

/* ---------------------------------------------------------- the trace */

enum fx_fate { FX_INFLIGHT = 0, FX_DELIVERED, FX_DROPPED };

typedef struct fx_sent {
    raft_msg m;                 /* entries point at owned copies; data filled for SNAPSHOT */
    raft_entry *entries;        /* owned */
    uint8_t *data;              /* owned */
    uint64_t ordinal;           /* position in the trace */
    int fate;                   /* enum fx_fate */
    int step_rc;                /* raft_step's return when delivered */
    uint64_t sender_last_index; /* sender's last log index when it was produced */
    uint64_t sender_match_to;   /* sender's raft_match_index(to) when produced */
    uint64_t sender_commit;
} fx_sent;

/* One processed raft_ready, as the fixture saw it. */
typedef struct fx_batch_rec {
    uint64_t seq;
    uint64_t ordinal; /* trace length when it was taken */
    bool hs_changed;
    raft_hard_state hs;
    bool must_sync;
    uint32_t n_entries;
    uint64_t first_entry, last_entry;
    bool has_chunk;
    uint64_t chunk_index, chunk_offset;
    uint32_t chunk_len;
    bool has_snapshot;
    raft_snapshot_meta snapshot;
    uint32_t n_messages;
    uint32_t n_committed;
    uint64_t first_committed, last_committed;
    uint32_t n_reads, n_failed_reads;
    bool want_snapshot;
    bool leader_changed;
    raft_id leader;
    bool conf_changed;
} fx_batch_rec;

/* --------------------------------------------------------- matching */

enum { FX_ANY = 0, FX_YES = 1, FX_NO = 2 };

typedef bool (*fx_pred)(const raft_msg *m, const void *arg);

/* Selects messages; zero fields match anything. */
typedef struct fx_match {
    int type;
    raft_id from, to;
    int reject;   /* FX_ANY, FX_YES, FX_NO */
    int pre_vote; /* FX_ANY, FX_YES, FX_NO */
    fx_pred pred; /* optional extra condition */
    const void *arg;
} fx_match;

bool fx_matches(const fx_match *mt, const raft_msg *m);

/* -------------------------------------------------------- the members */

typedef struct fx_batch fx_batch; /* a batch waiting to become durable */

typedef struct fx_read {
    uint64_t context, index;
    uint64_t applied_when_seen;
} fx_read;

typedef struct fx_applied_entry {
    uint64_t index;
    char *data;
} fx_applied_entry;

typedef struct fx_conf_rec {
    uint64_t index, term;
    raft_conf conf;
} fx_conf_rec;

typedef struct fx_node {
    raft_id id;
    raft *r;
    raft_config cfg;
    bool exists, up, founding;
    bool auto_persist;   /* raft_persisted right after each raft_advance (default) */
    bool auto_snapshot;  /* take a snapshot when rd.want_snapshot (default) */
    bool auto_fetch;     /* answer rd.fetches from the durable log after each batch (default) */
    raft_fetch *fetches; /* rd.fetches not yet answered, oldest first */
    size_t n_fetches, cap_fetches;
    uint64_t fetches_answered; /* with entries */
    uint64_t snap_size;        /* bytes of each state-machine snapshot */

    /* disk */
    raft_hard_state dhs; /* durable hard state */
    fx_log dlog;         /* durable log */
    fx_log wlog;         /* written log: durable plus pending batches */
    bool has_dsnap;
    raft_snapshot_meta dsnap;
    uint8_t *dsnap_data; /* the snapshot file the transport sends from */
    fx_batch *pending;   /* FIFO of batches not yet durable */
    size_t n_pending, cap_pending;
    uint64_t last_seq;

    /* snapshot being received */
    uint64_t recv_index;
    uint8_t *recv_data, *recv_have;
    size_t recv_cap;

    /* state machine (survives crashes, like an LMDB store with its applied index) */
    uint64_t sm_applied, sm_applied_term, sm_hash;
    raft_conf sm_conf;
    uint64_t sm_normal_applied; /* non-empty NORMAL entries applied */
    uint64_t snapshots_taken, snapshots_installed;

    /* what the member told us */
    raft_id leader;
    raft_conf conf;
    bool has_conf;
    uint64_t last_commit;

    fx_batch_rec *batches;
    size_t n_batches, cap_batches;
    fx_read *reads;
    size_t n_reads, cap_reads;
    uint64_t *failed_reads;
    size_t n_failed, cap_failed;
    /* applied non-empty NORMAL entries, payload as a string, in order */
    fx_applied_entry *applied;
    size_t n_applied, cap_applied;
    /* applied configuration entries, in order */
    fx_conf_rec *confs;
    size_t n_confs, cap_confs;
} fx_node;

typedef struct fx_rule {
    bool active;
    bool hold;     /* hold (keep queued) or drop */
    int remaining; /* drop: how many more to drop; -1 = all */
    fx_match match;
} fx_rule;

#define FX_MAX_RULES 16

typedef struct fx {
    fx_node nodes[FX_MAX_NODES + 1]; /* by id, 1-based */
    int max_id;
    raft_conf bootstrap;
    raft_config tmpl;

    fx_sent *trace;
    size_t n_trace, cap_trace;
    size_t *queue; /* trace positions in flight, FIFO */
    size_t n_queue, cap_queue;
    bool cut[FX_MAX_NODES + 1][FX_MAX_NODES + 1];
    fx_rule rules[FX_MAX_RULES];

    /* safety: leader of each term; entry (term, data hash) and chain hash by index */
    raft_id *term_leader;
    size_t cap_term_leader;
    uint64_t *g_term, *g_data_hash, *g_chain;
    size_t cap_g;

    /* Where a fresh cluster's log stands after bootstrap (before any
     * election): tests count indexes and terms from here. */
    uint64_t boot_index, boot_term, boot_log_term;

    bool verbose;
} fx;

/* A test configuration: raft_config_default with small limits that tests
 * then adjust (election 10 ticks, heartbeat 1). */
raft_config fx_config(void);

/* n founding voters 1..n bootstrapped with the same configuration. Node
 * seeds are derived from cfg->seed and the id. */
fx *fx_new(int n, const raft_config *cfg);
/* Founding members 1..n with an explicit bootstrap configuration. */
fx *fx_new_conf(int n, const raft_config *cfg, const raft_conf *bootstrap);
void fx_free(fx *f);
/* A fresh member that joins later (no bootstrap, empty restore). */
void fx_add_node(fx *f, raft_id id);

fx_node *fx_node_of(fx *f, raft_id id);
raft *fx_raft(fx *f, raft_id id);

/* ------------------------------------------------------------ driving */

/* Processes one raft_ready of `id` if it has one (persist/send/apply,
 * raft_advance, then raft_persisted if auto_persist). Returns true if it did. */
bool fx_ready(fx *f, raft_id id);
/* raft_ready on every up member until none has one. */
void fx_ready_all(fx *f);
/* Delivers the messages in flight once (FIFO), honouring cuts and rules.
 * Returns how many reached a member. */
size_t fx_deliver(fx *f);
/* Batches and deliveries until nothing moves. */
void fx_stabilize(fx *f);
/* n times: tick `id` (0: every up member) then stabilize. */
void fx_tick(fx *f, raft_id id, int n);

/* Makes every pending batch of `id` durable and calls raft_persisted. */
void fx_persist(fx *f, raft_id id);
/* Makes only the oldest pending batch durable. Returns false if none. */
bool fx_persist_one(fx *f, raft_id id);
size_t fx_pending_batches(fx *f, raft_id id);

/* raft_campaign(id), stabilize, and require that id leads. */
void fx_elect(fx *f, raft_id id);
/* With lease reads a member grants no vote for an election timeout after it starts: ticks
 * every up member through that time with every link cut (nobody is elected meanwhile), then
 * heals the links. */
void fx_pass_start_hold(fx *f);

/* Answers every unanswered rd.fetches request of `id` from its durable log (what a WAL read
 * returns): entries from the asked index, up to the asked bytes (at least one). */
void fx_answer_fetches(fx *f, raft_id id);
/* Takes a snapshot of `id`'s state machine at its applied index now. */
void fx_take_snapshot(fx *f, raft_id id);

/* Crash: the member's pending (unsynced) batches are lost. */
void fx_crash(fx *f, raft_id id);
/* Restart from the durable disk through raft_restore. */
void fx_restart(fx *f, raft_id id);

/* ------------------------------------------------------------ network */

void fx_cut(fx *f, raft_id a, raft_id b); /* both directions */
void fx_cut_one(fx *f, raft_id from, raft_id to);
void fx_isolate(fx *f, raft_id id);
void fx_heal(fx *f); /* restore every link */
/* Keeps matching messages queued until fx_release. Returns a rule id. */
int fx_hold(fx *f, fx_match m);
/* Drops the next `count` matching messages (-1: all, until fx_release). */
int fx_drop(fx *f, fx_match m, int count);
void fx_release(fx *f, int rule);
void fx_release_all(fx *f);
/* Removes matching in-flight messages. Returns how many. */
size_t fx_drop_inflight(fx *f, fx_match m);
/* Injects a message built by the test; returns raft_step's result. */
int fx_inject(fx *f, const raft_msg *m);

/* --------------------------------------------------------------- trace */

size_t fx_mark(const fx *f); /* current trace length */
size_t fx_count(const fx *f, size_t since, fx_match m);
/* k-th (0-based) matching message since `since`, or NULL. */
const fx_sent *fx_find(const fx *f, size_t since, fx_match m, size_t k);
size_t fx_inflight(const fx *f, fx_match m);

/* ------------------------------------------------------------- queries */

raft_status fx_status(fx *f, raft_id id);
enum raft_role fx_role(fx *f, raft_id id);
uint64_t fx_term(fx *f, raft_id id);
uint64_t fx_commit(fx *f, raft_id id);
uint64_t fx_last_index(fx *f, raft_id id);
/* The member that every up member agrees leads, or 0. */
raft_id fx_agreed_leader(fx *f);

/* Proposes the string s (without NUL). */
int fx_propose(fx *f, raft_id id, const char *s);
/* true if id applied a NORMAL entry with payload s. */
bool fx_applied(fx *f, raft_id id, const char *s);

/* Logs of a and b hold identical entries (index, term, type, bytes) from
 * `from` to `to`. */
void fx_assert_logs_equal(fx *f, raft_id a, raft_id b, uint64_t from, uint64_t to);
/* Log Matching across all members' written logs. */
void fx_check_log_matching(fx *f);

/* "1,2,3" style configuration builder and set comparison. */
raft_conf fx_mkconf(const char *voters, const char *learners);
bool fx_conf_equal(const raft_conf *a, const raft_conf *b);

/* Last batch records. */
const fx_batch_rec *fx_last_batch(fx *f, raft_id id);

#endif
