/*
 * sim.h: the deterministic cluster simulator (build/cord-sim).
 *
 * One run ("a seed") builds N members of the real consensus core (the
 * cord_raft_bugs copy), each with a simulated disk and a small key-value
 * state machine, connects them through a simulated network, drives them with
 * simulated clients and a fault schedule (the nemesis), and checks the Raft
 * safety properties after every event, from outside the members. Everything
 * random comes from one seeded PRNG; simulated time is an integer count of
 * microseconds advanced by a priority queue of events. A run has a safety
 * phase (faults on) and a liveness phase (faults healed: a leader and
 * progress are required within a bounded time), then the clients' history is
 * checked for linearizability (src/lincheck).
 *
 * Files: sim_rng.c (PRNG), sim_queue.c (event heap), sim_kv.c (commands, the
 * state machine, snapshots), sim_disk.c (WAL model with torn writes),
 * sim_check.c (invariants), sim_net.c (network, partitions), sim_member.c
 * (start/crash/restart, the ready loop), sim_client.c (clients, history),
 * sim_nemesis.c (fault schedule), sim_run.c (one seed), sim_trace.c (trace
 * hash and --verbose output), sim_main.c (command line).
 *
 * No global mutable state: everything lives in struct sim.
 */
#ifndef CORD_SIM_H
#define CORD_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lincheck/lincheck.h"
#include "raft/raft.h"

#define SIM_MAX_NODES      7
#define SIM_MAX_CLIENTS    8
#define SIM_MAX_KEYS       6            /* client keys k0..k5 */
#define SIM_PROBE_KEY      SIM_MAX_KEYS /* the liveness probe's own key */
#define SIM_N_KEYS         (SIM_MAX_KEYS + 1)
#define SIM_VALUE_MAX      24
#define SIM_TICK_US        10000ull /* one raft tick = 10 ms of simulated time */
#define SIM_MS             1000ull
#define SIM_SEC            1000000ull
#define SIM_MAX_EVENTS     20000000ull  /* per seed: a runaway guard */
#define SIM_MAX_FETCHES    64           /* read-backs in one batch (one per follower) */
#define SIM_MAX_MSGS_PER_S 200000u      /* a storm: 20x anything a healthy cluster sends */
#define SIM_DRIVE_LIMIT    10000u       /* ready batches per drive: a runaway guard */
#define SIM_MAX_TERM       (1ull << 22) /* terms tracked by the one-leader check */
#define SIM_KEEP_SNAPS     4            /* local snapshots a member keeps to send */
#define SIM_CLIENT_PROBE   UINT32_MAX   /* client id of the liveness probe */

/* Exit codes of cord-sim. A crash (abort, sanitizer) is none of these. */
enum { SIM_EXIT_OK = 0, SIM_EXIT_VIOLATION = 1, SIM_EXIT_USAGE = 2 };

typedef uint64_t sim_time; /* microseconds */

/* ------------------------------------------------------------------- PRNG */

typedef struct sim_rng {
    uint64_t s[4];
} sim_rng;

void sim_rng_seed(sim_rng *r, uint64_t seed);
uint64_t sim_rng_next(sim_rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t sim_rng_below(sim_rng *r, uint64_t n);
/* Uniform in [lo, hi]; lo <= hi. */
uint64_t sim_rng_range(sim_rng *r, uint64_t lo, uint64_t hi);
/* true with probability ppm / 1e6. */
bool sim_rng_chance(sim_rng *r, uint32_t ppm);

/* ----------------------------------------------------------------- events */

enum sim_event_kind {
    SIM_EV_TICK = 1,       /* slot, inc */
    SIM_EV_DELIVER,        /* msg */
    SIM_EV_PERSIST,        /* slot, inc: the oldest unsynced batch is now durable */
    SIM_EV_REQUEST,        /* slot, arg = op id: a client request reaches a member */
    SIM_EV_CLIENT,         /* arg = client: it starts its next operation */
    SIM_EV_CLIENT_TIMEOUT, /* arg = op id */
    SIM_EV_NEMESIS,        /* the next fault */
    SIM_EV_HEAL,           /* arg = partition generation */
    SIM_EV_RESTART,        /* slot, inc (of the crashed incarnation) */
    SIM_EV_LIVENESS,       /* the safety phase ends */
    SIM_EV_PROBE,          /* liveness phase: check progress */
    SIM_EV_FULL_CHECK,     /* periodic whole-log comparison */
    SIM_EV_CRASH,          /* slot, inc: a scheduled crash */
    SIM_EV_ISOLATE,        /* slot, inc: cut a member off from all others */
    SIM_EV_MEMBERSHIP,     /* arg = membership steps still to take */
};

typedef struct sim_msg sim_msg;

typedef struct sim_event {
    sim_time at;
    uint64_t seq; /* insertion order: ties in time pop in FIFO order */
    uint8_t kind;
    uint8_t slot;
    uint32_t inc;
    uint64_t arg;
    sim_msg *msg;
} sim_event;

typedef struct sim_queue {
    sim_event *ev;
    size_t n, cap;
    uint64_t next_seq;
} sim_queue;

void sim_queue_init(sim_queue *q);
void sim_queue_free(sim_queue *q); /* frees queued messages too */
void sim_queue_push(sim_queue *q, const sim_event *e);
bool sim_queue_pop(sim_queue *q, sim_event *out);

/* --------------------------------------------------------- the KV machine */

/* A client command, as carried in a log entry. */
typedef struct sim_cmd {
    uint64_t req; /* unique request id (= op id) */
    uint8_t kind; /* lincheck_kind: WRITE, CAS, DELETE */
    uint8_t key;  /* 0..SIM_N_KEYS-1 */
    uint8_t value_len;
    bool has_expect;
    uint8_t expect_len;
    char value[SIM_VALUE_MAX];
    char expect[SIM_VALUE_MAX];
} sim_cmd;

#define SIM_CMD_MAX_BYTES (1 + 8 + 2 + 1 + SIM_VALUE_MAX + 2 + SIM_VALUE_MAX)

size_t sim_cmd_encode(const sim_cmd *c, uint8_t *buf);
bool sim_cmd_decode(sim_cmd *c, const uint8_t *buf, size_t len);

typedef struct sim_kv {
    bool present[SIM_N_KEYS];
    uint8_t len[SIM_N_KEYS];
    char val[SIM_N_KEYS][SIM_VALUE_MAX];
} sim_kv;

#define SIM_KV_SNAP_BYTES (SIM_N_KEYS * (2 + SIM_VALUE_MAX))

/* Applies c; returns the compare result for CAS (true otherwise). */
bool sim_kv_apply(sim_kv *kv, const sim_cmd *c);
/* Serialises the map (deterministic); returns bytes written. */
size_t sim_kv_encode(const sim_kv *kv, uint8_t *buf);
bool sim_kv_decode(sim_kv *kv, const uint8_t *buf, size_t len);
uint64_t sim_kv_hash(const sim_kv *kv);

uint64_t sim_fnv(uint64_t h, const void *data, size_t len);
uint64_t sim_fnv_u64(uint64_t h, uint64_t v);
#define SIM_FNV_INIT 0xcbf29ce484222325ull

/* ------------------------------------------------------------- snapshots */

typedef struct sim_snap {
    uint64_t index, term;
    raft_conf conf;
    uint8_t *data;
    uint32_t len;
} sim_snap;

void sim_snap_copy(sim_snap *dst, const sim_snap *src);
void sim_snap_clear(sim_snap *s);

/* ------------------------------------------------------------------- disk */

/* A growable run of owned log entries (data copied). */
typedef struct sim_log {
    raft_entry *e;
    size_t n, cap;
} sim_log;

void sim_log_clear(sim_log *l);
void sim_log_free(sim_log *l);
void sim_log_push(sim_log *l, const raft_entry *e);
void sim_log_truncate(sim_log *l, size_t keep);
void sim_log_drop_front(sim_log *l, size_t n);

/* What one ready batch wrote, in write order: snapshot install, entries,
 * hard state. A chunk of an incoming snapshot counts as a write too (its
 * acknowledgement waits for durability) but is kept in memory only. */
typedef struct sim_batch {
    uint64_t seq;     /* the batch's rd.seq */
    uint64_t ack_seq; /* raft_persisted() argument once durable (covers empty batches) */
    bool has_snap;
    sim_snap snap;
    sim_log ents;
    bool has_hs;
    raft_hard_state hs;
} sim_batch;

typedef struct sim_disk {
    /* durable */
    raft_hard_state hs;
    sim_snap snap; /* index 0: none */
    sim_log log;   /* entries snap.index+1 ... */
    /* written but not yet synced, oldest first */
    sim_batch *pend;
    size_t n_pend, cap_pend;
    sim_time last_done;  /* completion time of the newest pending batch */
    uint64_t torn_units; /* stats: units kept from unsynced writes at crashes */
    uint64_t lost_units; /* stats: units lost at crashes */
} sim_disk;

void sim_disk_init(sim_disk *d);
void sim_disk_free(sim_disk *d);
void sim_disk_wipe(sim_disk *d);
sim_batch *sim_disk_push(sim_disk *d, uint64_t seq);
/* Makes the oldest pending batch durable. Returns false (with a reason in
 * err) if the writes are inconsistent (a gap in the log). */
bool sim_disk_sync_oldest(sim_disk *d, uint64_t *ack_seq, char *err, size_t errlen);
/* A crash: keeps a prefix of `keep_units` units of the unsynced writes
 * (snapshot = 1, hard state = 1, each entry = 1) and drops the rest. */
size_t sim_disk_pending_units(const sim_disk *d);
bool sim_disk_crash(sim_disk *d, size_t keep_units, char *err, size_t errlen);
/* The member's own snapshot: written and synced at once (temp file, fsync,
 * rename); the durable log drops what it covers. */
void sim_disk_put_snapshot(sim_disk *d, const sim_snap *s);
uint64_t sim_disk_last_index(const sim_disk *d);
/* Term of the durable entry at index (snapshot term at snap.index), 0 if none. */
uint64_t sim_disk_term(const sim_disk *d, uint64_t index);

/* ---------------------------------------------------------------- members */

enum sim_slot_state {
    SIM_SLOT_EMPTY = 0, /* no member on this machine */
    SIM_SLOT_UP,
    SIM_SLOT_DOWN, /* crashed; restarts from its disk */
};

typedef struct sim_member {
    uint32_t slot;
    raft_id id;
    uint32_t gen;      /* ids: slot + 1 + 10 * gen */
    bool founding;     /* passes the bootstrap conf at start */
    bool ever_in_conf; /* seen in a committed configuration */
    uint8_t state;     /* enum sim_slot_state */
    uint32_t inc;      /* incarnation: bumps at every start and crash */
    raft *r;
    sim_disk disk;

    /* state machine */
    sim_kv kv;
    uint64_t applied, applied_term;
    uint64_t kv_hash;
    raft_conf sm_conf; /* configuration as of `applied` (for snapshot metadata) */

    /* local snapshots, newest first (what the leader sends from) */
    sim_snap snaps[SIM_KEEP_SNAPS];

    /* incoming snapshot being assembled from chunks */
    uint8_t *in_buf;
    uint64_t in_cap, in_index, in_contig;

    sim_time paused_until;
    sim_time disk_slow_until;
    uint64_t commit_seen;   /* highest commit observed in this incarnation */
    bool crash_after_ack;   /* nemesis trap: crash right after sending an append ack */
    bool isolate_on_commit; /* nemesis trap: cut off right after its commit index moves */
    uint64_t isolate_commit_base;
    bool crash_now;
    raft_status st; /* refreshed after every event */
} sim_member;

/* ---------------------------------------------------------------- clients */

enum sim_op_state { SIM_OP_PENDING = 0, SIM_OP_DONE };

typedef struct sim_op {
    uint64_t id; /* = request id = index in ops + 1 */
    uint32_t client;
    uint8_t kind;   /* lincheck_kind */
    uint8_t status; /* lincheck_status */
    uint8_t key;
    uint8_t state; /* enum sim_op_state */
    bool cas_result;
    bool has_value; /* read: observed present; write/cas: always */
    bool has_expect;
    uint8_t value_len, expect_len;
    char value[SIM_VALUE_MAX];
    char expect[SIM_VALUE_MAX];
    uint32_t slot, inc; /* the member it went to */
    bool sent;          /* reached the member */
    bool read_index_known;
    uint64_t read_index;
    uint64_t applied_index; /* index where its entry was first applied (0: never) */
    sim_time start, end;
} sim_op;

typedef struct sim_client {
    uint32_t id;
    uint64_t cur_op; /* 0: idle */
    uint32_t sticky_slot;
    /* last value seen per key, for CAS expectations */
    bool seen_present[SIM_MAX_KEYS];
    uint8_t seen_len[SIM_MAX_KEYS];
    char seen[SIM_MAX_KEYS][SIM_VALUE_MAX];
} sim_client;

/* ------------------------------------------------------------- the profile */

enum sim_fault {
    SIM_F_PARTITION = 0,
    SIM_F_CRASH,
    SIM_F_POWER,     /* several members at once (power loss) */
    SIM_F_ACK_CRASH, /* crash a follower right after it acknowledges */
    SIM_F_PAUSE,     /* process stall */
    SIM_F_SLOW_DISK,
    SIM_F_MEMBERSHIP,
    SIM_F_TRANSFER,
    SIM_F_CAMPAIGN,     /* competing candidates */
    SIM_F_LEADER_CHURN, /* crash the leader shortly after it is elected */
    SIM_F_COUNT
};

typedef struct sim_profile {
    /* core configuration */
    uint32_t election_ticks, heartbeat_ticks;
    bool pre_vote, check_quorum;
    bool lease_reads;        /* RAFT_READ_LEASE: only with check_quorum and no pauses */
    uint32_t tick_jitter_us; /* each tick lasts SIM_TICK_US +- this (clock drift) */
    uint32_t max_inflight, max_msg_bytes;
    uint64_t snapshot_entries, trailing_entries;
    uint64_t log_mem_bytes;  /* the core's in-memory log bound (0: none) */
    uint32_t fetch_fail_ppm; /* read-backs answered "could not read" */
    uint32_t chunk_bytes;
    /* network */
    uint32_t delay_min_us, delay_max_us;
    uint32_t spike_ppm, spike_max_us; /* occasional long delays: reordering */
    uint32_t loss_ppm, dup_ppm;
    /* disk */
    uint32_t disk_min_us, disk_max_us, slow_disk_us;
    uint32_t torn_ppm; /* chance a crash keeps part of the unsynced writes */
    /* nemesis */
    uint32_t nemesis_mean_us;
    uint32_t weight[SIM_F_COUNT];
    uint32_t restart_max_us;
    uint32_t fault_max_us; /* partitions, pauses, slow disks last up to this */
    /* clients */
    uint32_t n_clients, n_keys;
    uint32_t client_timeout_us, think_max_us;
    uint32_t read_pct, cas_pct, delete_pct; /* rest: writes */
    uint32_t sticky_pct;
} sim_profile;

/* -------------------------------------------------------------- the run */

typedef struct sim_options {
    uint64_t seed;
    uint32_t nodes;
    uint32_t bugs; /* enum raft_bug mask */
    bool verbose;
    sim_time safety_us;
    sim_time liveness_us;
    FILE *out; /* verbose trace and reports */
} sim_options;

typedef struct sim_stats {
    uint64_t events, ops, ops_ok, ops_fail, ops_unknown;
    uint64_t faults, elections, msgs, dropped, duplicated;
    uint64_t crashes, restarts, snapshots_sent, snapshots_installed, conf_changes;
    uint64_t applied_entries;
} sim_stats;

/* What the checker records about each applied index. */
typedef struct sim_applied {
    bool set;
    uint8_t type;
    uint64_t term;
    uint64_t data_hash;
    uint64_t state_hash;     /* KV hash after applying it */
    uint64_t commit_by_term; /* it was committed in this term or earlier */
} sim_applied;

enum sim_phase { SIM_PHASE_SAFETY = 0, SIM_PHASE_LIVENESS, SIM_PHASE_DONE };

typedef struct sim {
    sim_options opt;
    sim_profile prof;
    sim_rng rng;
    sim_queue q;
    sim_time now;
    uint8_t phase;
    sim_time liveness_start;

    uint32_t n_slots;
    sim_member m[SIM_MAX_NODES];
    raft_conf bootstrap;

    /* network */
    bool cut[SIM_MAX_NODES][SIM_MAX_NODES]; /* cut[a][b]: a cannot reach b */
    uint64_t part_gen;
    bool partitioned;

    /* clients */
    sim_client clients[SIM_MAX_CLIENTS];
    sim_op *ops;
    size_t n_ops, cap_ops;
    bool stale_leader_reads; /* nemesis: clients read from an isolated leader */
    uint32_t stale_leader_slot;
    bool ack_crash_leader_too; /* nemesis: the leader follows an ack-crash */
    uint32_t churn_left;       /* nemesis: leaders still to fail right after winning */
    bool churn_isolate;        /* ... by isolation rather than a crash */

    /* the latest committed configuration (from applied conf entries) */
    raft_conf conf;
    uint64_t conf_index;

    /* checker */
    raft_id *term_leader; /* term -> the leader seen in it */
    size_t cap_term_leader;
    sim_applied *applied; /* index -> what was applied there */
    size_t cap_applied;
    uint64_t max_applied;
    uint64_t max_term_seen;

    /* liveness */
    uint64_t probe_op;
    sim_time probe_sent_at;

    sim_stats st;
    uint64_t trace_hash;
    sim_time msg_window_start; /* message-storm guard */
    uint64_t msg_window_count;

    bool failed;
    char fail_prop[64];
    char fail_detail[1536];

    /* scratch */
    uint8_t kvbuf[SIM_KV_SNAP_BYTES];
} sim;

/* sim_run.c */
void sim_profile_draw(sim *s);
void sim_profile_print(const sim_profile *p, FILE *f);
/* Runs one seed. Returns true if every property held. */
bool sim_run(const sim_options *opt, sim_stats *stats, uint64_t *trace_hash, char *prop,
             size_t prop_len, char *detail, size_t detail_len, sim_profile *prof_out);
void sim_schedule(sim *s, sim_time at, uint8_t kind, uint32_t slot, uint32_t inc, uint64_t arg);

/* sim_check.c */
void sim_fail(sim *s, const char *prop, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void sim_check_init(sim *s);
void sim_check_free(sim *s);
void sim_check_after_event(sim *s);
void sim_check_apply(sim *s, sim_member *mb, const raft_entry *e, uint64_t term_now);
void sim_check_snapshot_install(sim *s, sim_member *mb, uint64_t index, uint64_t term,
                                uint64_t state_hash);
void sim_check_log_range(sim *s, sim_member *mb, uint64_t from, uint64_t to);
void sim_check_all_logs(sim *s);
uint64_t sim_entry_hash(const raft_entry *e);

/* sim_net.c */
void sim_net_send(sim *s, sim_member *from, const raft_msg *m);
void sim_net_deliver(sim *s, sim_msg *msg);
void sim_net_free_msg(sim_msg *msg);
void sim_net_heal(sim *s);
sim_member *sim_member_by_id(sim *s, raft_id id);

/* sim_member.c */
void sim_member_init(sim *s, sim_member *mb, uint32_t slot);
bool sim_member_start(sim *s, sim_member *mb);
void sim_member_crash(sim *s, sim_member *mb, const char *why);
void sim_member_decommission(sim *s, sim_member *mb);
void sim_member_free(sim_member *mb);
void sim_member_drive(sim *s, sim_member *mb);
void sim_member_persisted(sim *s, sim_member *mb);
raft_id sim_member_id(uint32_t slot, uint32_t gen);

/* sim_client.c */
void sim_clients_start(sim *s);
void sim_client_event(sim *s, uint32_t client);
void sim_client_request(sim *s, uint32_t slot, uint64_t op_id);
void sim_client_timeout(sim *s, uint64_t op_id);
void sim_client_applied(sim *s, sim_member *mb, const sim_cmd *c, uint64_t index, bool cas_ok);
void sim_client_read_ready(sim *s, sim_member *mb, uint64_t ctx, uint64_t index);
void sim_client_read_failed(sim *s, sim_member *mb, uint64_t ctx);
void sim_client_serve_reads(sim *s, sim_member *mb);
void sim_client_member_lost(sim *s, sim_member *mb);
sim_op *sim_op_new(sim *s, uint32_t client, uint8_t kind, uint8_t key);
sim_op *sim_op_get(sim *s, uint64_t id);
bool sim_client_check_history(sim *s);

/* sim_nemesis.c */
void sim_nemesis_event(sim *s);
void sim_nemesis_heal(sim *s, uint64_t gen);
void sim_nemesis_reconcile(sim *s);
void sim_nemesis_on_elected(sim *s, sim_member *mb);
void sim_nemesis_after_ack_crash(sim *s, sim_member *mb);
void sim_nemesis_crash_event(sim *s, uint32_t slot, uint32_t inc);
void sim_nemesis_isolate_event(sim *s, uint32_t slot, uint32_t inc);
void sim_nemesis_membership_event(sim *s, uint64_t left);
sim_member *sim_find_leader(sim *s);

/* sim_trace.c */
void sim_trace(sim *s, const char *what, uint32_t slot, uint64_t a, uint64_t b, uint64_t c);
void sim_trace_msg(sim *s, const char *what, const raft_msg *m);
void sim_trace_text(sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
