/*
 * raft.c: the consensus core. See raft.h for the contract.
 *
 * Layout of this file: helpers (PRNG, growable arrays), configuration
 * encoding, the in-memory log, progress tracking, role changes, message
 * handling per role, the flush that turns leader state into append and
 * snapshot messages, then the batch (ready/advance/persisted).
 */
#include "raft/raft.h"

#include "common/bytes.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CORD_RAFT_BUGS
#define BUG(r, b) (((r)->cfg.bugs & (b)) != 0)
#else
#define BUG(r, b) 0
#endif

#define MAX_PROGRESS (3 * RAFT_MAX_MEMBERS)

/* ------------------------------------------------------------------ errors */

const char *raft_strerror(int err)
{
    switch (err) {
    case RAFT_OK:
        return "ok";
    case RAFT_ENOTLEADER:
        return "not the leader";
    case RAFT_ENOLEADER:
        return "no leader";
    case RAFT_EBUSY:
        return "too many pending requests";
    case RAFT_ETRANSFER:
        return "leadership transfer in progress";
    case RAFT_ECONFPENDING:
        return "a membership change is in progress";
    case RAFT_EINVAL:
        return "invalid argument";
    case RAFT_ECOMPACTED:
        return "index compacted";
    case RAFT_ENOMEM:
        return "out of memory";
    case RAFT_ETOOLARGE:
        return "request too large";
    case RAFT_ENOTVOTER:
        return "not a voting member";
    case RAFT_ESTOPPED:
        return "member removed from the cluster";
    default:
        return "unknown error";
    }
}

const char *raft_msg_type_name(int type)
{
    switch (type) {
    case RAFT_MSG_VOTE:
        return "Vote";
    case RAFT_MSG_VOTE_RESP:
        return "VoteResp";
    case RAFT_MSG_APPEND:
        return "Append";
    case RAFT_MSG_APPEND_RESP:
        return "AppendResp";
    case RAFT_MSG_HEARTBEAT:
        return "Heartbeat";
    case RAFT_MSG_HEARTBEAT_RESP:
        return "HeartbeatResp";
    case RAFT_MSG_SNAPSHOT:
        return "Snapshot";
    case RAFT_MSG_SNAPSHOT_RESP:
        return "SnapshotResp";
    case RAFT_MSG_TIMEOUT_NOW:
        return "TimeoutNow";
    case RAFT_MSG_PROPOSE:
        return "Propose";
    case RAFT_MSG_READ_INDEX:
        return "ReadIndex";
    case RAFT_MSG_READ_INDEX_RESP:
        return "ReadIndexResp";
    default:
        return "Unknown";
    }
}

const char *raft_role_name(enum raft_role role)
{
    switch (role) {
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_PRE_CANDIDATE:
        return "pre-candidate";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_LEADER:
        return "leader";
    }
    return "unknown";
}

void raft_config_default(raft_config *c)
{
    memset(c, 0, sizeof(*c));
    c->election_ticks = 10;
    c->heartbeat_ticks = 1;
    c->pre_vote = true;
    c->check_quorum = true;
    c->read_mode = RAFT_READ_SAFE;
    c->max_inflight_msgs = 256;
    c->max_msg_bytes = 1u << 20;
    c->max_entry_bytes = (3u << 20) / 2;
    c->max_uncommitted_bytes = 64ull << 20;
    c->max_pending_reads = 4096;
    c->snapshot_entries = 10000;
    c->trailing_entries = 5000;
    c->snapshot_chunk_bytes = 1u << 20;
}

/* ------------------------------------------------------------ growable arrays */

/* Ensures *arr has room for `need` elements of `size` bytes. */
static int grow(void **arr, uint32_t *cap, uint32_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    uint32_t ncap = *cap ? *cap : 8;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*arr, (size_t)ncap * size);
    if (!p)
        return RAFT_ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

#define PUSH(r, arr, n, cap, val)                                                                  \
    do {                                                                                           \
        if (grow((void **)&(arr), &(cap), (n) + 1, sizeof(*(arr))) != 0)                           \
            abort(); /* message queues are bounded by the peers; OOM here is fatal */              \
        (arr)[(n)++] = (val);                                                                      \
    } while (0)

/* -------------------------------------------------------------------- conf */

static bool ids_contain(const raft_id *ids, uint32_t n, raft_id id)
{
    for (uint32_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

bool raft_conf_is_voter(const raft_conf *c, raft_id id)
{
    return ids_contain(c->voters, c->n_voters, id) ||
           ids_contain(c->voters_out, c->n_voters_out, id);
}

bool raft_conf_is_learner(const raft_conf *c, raft_id id)
{
    return ids_contain(c->learners, c->n_learners, id);
}

bool raft_conf_is_joint(const raft_conf *c)
{
    return c->n_voters_out > 0;
}

size_t raft_conf_encoded_len(const raft_conf *c)
{
    return 4 + 8 * ((size_t)c->n_voters + c->n_voters_out + c->n_learners);
}

size_t raft_conf_encode(const raft_conf *c, uint8_t *buf)
{
    uint8_t *p = buf;
    *p++ = 1; /* version */
    *p++ = (uint8_t)c->n_voters;
    *p++ = (uint8_t)c->n_voters_out;
    *p++ = (uint8_t)c->n_learners;
    for (uint32_t i = 0; i < c->n_voters; i++, p += 8)
        bytes_put64(p, c->voters[i]);
    for (uint32_t i = 0; i < c->n_voters_out; i++, p += 8)
        bytes_put64(p, c->voters_out[i]);
    for (uint32_t i = 0; i < c->n_learners; i++, p += 8)
        bytes_put64(p, c->learners[i]);
    return (size_t)(p - buf);
}

static bool conf_valid(const raft_conf *c)
{
    if (c->n_voters > RAFT_MAX_MEMBERS || c->n_voters_out > RAFT_MAX_MEMBERS ||
        c->n_learners > RAFT_MAX_MEMBERS)
        return false;
    for (uint32_t i = 0; i < c->n_voters; i++)
        if (c->voters[i] == 0 || ids_contain(c->voters, i, c->voters[i]))
            return false;
    for (uint32_t i = 0; i < c->n_voters_out; i++)
        if (c->voters_out[i] == 0 || ids_contain(c->voters_out, i, c->voters_out[i]))
            return false;
    for (uint32_t i = 0; i < c->n_learners; i++)
        if (c->learners[i] == 0 || ids_contain(c->learners, i, c->learners[i]) ||
            raft_conf_is_voter(c, c->learners[i]))
            return false;
    return true;
}

int raft_conf_decode(raft_conf *c, const uint8_t *buf, size_t len)
{
    if (len < 4 || buf[0] != 1)
        return RAFT_EINVAL;
    memset(c, 0, sizeof(*c));
    uint32_t nv = buf[1], no = buf[2], nl = buf[3];
    if (nv > RAFT_MAX_MEMBERS || no > RAFT_MAX_MEMBERS || nl > RAFT_MAX_MEMBERS)
        return RAFT_EINVAL;
    if (len != 4 + 8 * (size_t)(nv + no + nl))
        return RAFT_EINVAL;
    const uint8_t *p = buf + 4;
    c->n_voters = nv;
    c->n_voters_out = no;
    c->n_learners = nl;
    for (uint32_t i = 0; i < nv; i++, p += 8)
        c->voters[i] = bytes_get64(p);
    for (uint32_t i = 0; i < no; i++, p += 8)
        c->voters_out[i] = bytes_get64(p);
    for (uint32_t i = 0; i < nl; i++, p += 8)
        c->learners[i] = bytes_get64(p);
    return conf_valid(c) ? 0 : RAFT_EINVAL;
}

/* --------------------------------------------------------------- the core */

enum pr_state { PR_PROBE = 0, PR_REPLICATE, PR_SNAPSHOT };

typedef struct progress {
    raft_id id;
    uint64_t match, next;
    enum pr_state state;
    bool probe_sent;    /* PROBE: one append outstanding; wait for an answer */
    bool recent_active; /* heard from it since the last quorum check */
    uint64_t heard_at;  /* leader: r->now + 1 at the broadcast of the newest heartbeat round
                         * it answered in this term (0: none yet) */
    bool vote_answered, vote_granted;
    uint64_t sent_commit; /* highest commit index sent to it */
    uint64_t read_ack;    /* highest read round it acknowledged */
    /* inflight appends (REPLICATE): ring of their last indexes */
    uint64_t *inflight;
    uint32_t inflight_start, inflight_count;
    /* appends allowed in flight (1..cfg.max_inflight_msgs): halved when one is rejected in
     * REPLICATE, one more for each that is accepted (see pr_window_*) */
    uint32_t window;
    /* Leader: a member the configuration just removed. It is kept, outside
     * every quorum, until it has the entry that removed it and the commit
     * index covering it (so that it learns it is out and stops), or until
     * leave_deadline (ticks). */
    bool leaving;
    uint64_t leave_index, leave_deadline;
    /* SNAPSHOT state */
    uint64_t snap_index, snap_acked, snap_stall_acked;
    uint32_t snap_stall;
    bool snap_chunk_out;
    uint64_t snap_heard_at; /* r->now when it last answered a chunk of this transfer */
    /* an rd.fetches request for it is unanswered: entries from fetch_from */
    bool fetch_pending;
    uint64_t fetch_from;
} progress;

/* Terms of entries dropped from memory: index..(next run's index - 1) have `term`. */
typedef struct term_run {
    uint64_t index, term;
} term_run;

typedef struct held_msg {
    raft_msg m;
    uint64_t seq; /* release once batch seq is durable */
} held_msg;

typedef struct batch_rec {
    uint64_t seq;
    uint64_t last_index, last_term; /* entries this batch wrote (0: none) */
    uint64_t snap_index;            /* snapshot installed by this batch (0: none) */
    uint64_t commit;                /* commit index of the hard state it writes (0: none) */
    bool self_vote;                 /* carries our vote for ourselves ... */
    uint64_t term;                  /* ... in this term */
} batch_rec;

typedef struct pending_read {
    uint64_t context;
    uint64_t index;
    uint64_t round; /* heartbeat round that confirms it */
    raft_id from;   /* 0: local; else a follower that forwarded it */
} pending_read;

typedef struct conf_hist {
    uint64_t index;
    raft_conf conf;
} conf_hist;

struct raft {
    raft_config cfg;
    uint64_t rng;

    /* persistent state */
    uint64_t term;
    raft_id vote;

    enum raft_role role;
    raft_id lead;
    raft_id transferee;
    uint32_t transfer_elapsed;
    /* Leader: sent a TimeoutNow in this term. The forced election it starts (maybe much later:
     * the message can be delayed) takes votes that our lease counts on, so no lease reads
     * until the term ends. */
    bool timeout_now_sent;

    /* ticks */
    uint64_t now; /* ticks since start: the leader lease is measured in them */
    uint32_t election_elapsed;
    uint32_t heartbeat_elapsed;
    uint32_t randomized_timeout;

    /* the log: ents[0..n) hold indexes base_index+1 .. base_index+n */
    raft_entry *ents;
    uint32_t n_ents, cap_ents;
    uint64_t base_index, base_term;
    uint64_t commit;
    uint64_t applied;       /* handed out in committed entries */
    bool apply_held;        /* raft_set_apply_held */
    uint64_t persisted;     /* durable locally */
    uint64_t unstable_from; /* first index not yet handed out for persistence */
    uint64_t uncommitted_bytes;
    uint64_t mem_bytes; /* entry data held in ents */
    /* terms of the entries in (snap.index, base_index] that were dropped from memory while
     * still in the caller's log (cfg.log_mem_bytes) */
    term_run *runs;
    uint32_t n_runs, cap_runs;
    raft_fetch *fetches; /* leader: read-back requests gathered for the next batch */
    uint32_t n_fetches, cap_fetches;

    /* the newest snapshot of the state machine known to this member */
    raft_snapshot_meta snap;

    /* membership */
    raft_conf conf;
    uint64_t conf_version, reported_conf_version;
    conf_hist *hist; /* conf entries committed after snap.index */
    uint32_t n_hist, cap_hist;
    uint64_t pending_conf_index;
    /* Configuration entries take effect once their commit is durable here: conf_durable is
     * the commit index of the newest durable hard state (or restored), and conf_waiting the
     * first committed configuration entry after it (0: none), where applying stops. */
    uint64_t conf_durable;
    uint64_t conf_waiting;
    progress prs[MAX_PROGRESS];
    uint32_t n_prs;

    /* outputs being gathered for the next batch */
    raft_msg *out;
    uint32_t n_out, cap_out;
    held_msg *held; /* messages waiting for durability */
    uint32_t n_held, cap_held;
    held_msg *pend_held; /* generated since the last ready, not yet bound to a batch */
    uint32_t n_pend_held, cap_pend_held;
    batch_rec *batches; /* batches not yet durable */
    uint32_t n_batches, cap_batches;
    uint64_t next_seq;
    uint64_t persisted_seq;
    bool self_vote_pending; /* our vote for ourselves waits for the next batch */
    raft_hard_state reported_hs;
    raft_id reported_lead;

    /* reads */
    pending_read *reads;
    uint32_t n_reads, cap_reads;
    uint64_t read_round; /* last heartbeat round broadcast (every heartbeat is a round) */
#define ROUND_TICKS 64
    uint64_t round_tick[ROUND_TICKS]; /* r->now + 1 when round (i mod 64) went out */
    bool read_round_needed;           /* reads wait for a round not yet broadcast */
    raft_read_state *ready_reads;
    uint32_t n_ready_reads, cap_ready_reads;
    uint64_t *failed_reads;
    uint32_t n_failed_reads, cap_failed_reads;
    uint64_t *fwd_reads; /* follower: contexts forwarded to the leader */
    uint32_t n_fwd_reads, cap_fwd_reads;

    /* follower: the snapshot being received */
    uint64_t recv_snap_index, recv_snap_term, recv_snap_bytes;
    uint8_t *chunk;
    uint32_t chunk_len, cap_chunk;
    uint64_t chunk_offset, chunk_index;
    bool have_chunk;
    bool install_pending;
    raft_snapshot_meta install;

    /* scratch memory that lives until raft_advance (forwarded proposals) */
    uint8_t **scratch;
    uint32_t n_scratch, cap_scratch;

    bool in_ready; /* between raft_ready and raft_advance */
    struct raft_ready last_rd;
};

/* ------------------------------------------------------------------- PRNG */

static uint64_t rng_next(raft *r)
{
    /* splitmix64 */
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void reset_randomized_timeout(raft *r)
{
    r->randomized_timeout = r->cfg.election_ticks + (uint32_t)(rng_next(r) % r->cfg.election_ticks);
}

/* -------------------------------------------------------------------- log */

static uint64_t last_index(const raft *r)
{
    return r->base_index + r->n_ents;
}

static const raft_entry *entry_at(const raft *r, uint64_t index)
{
    if (index <= r->base_index || index > last_index(r))
        return NULL;
    const raft_entry *e = &r->ents[index - r->base_index - 1];
    assert(e->index == index);
    return e;
}

/* Term of an entry dropped from memory but still in the caller's log (0: not known). */
static uint64_t run_term(const raft *r, uint64_t index)
{
    if (r->n_runs == 0 || index < r->runs[0].index || index > r->base_index)
        return 0;
    uint32_t lo = 0, hi = r->n_runs; /* the last run starting at or before index */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (r->runs[mid].index <= index)
            lo = mid;
        else
            hi = mid;
    }
    return r->runs[lo].term;
}

static uint64_t term_at(const raft *r, uint64_t index)
{
    if (index == r->base_index)
        return r->base_term;
    if (index == r->snap.index && r->snap.index != 0)
        return r->snap.term;
    const raft_entry *e = entry_at(r, index);
    if (e)
        return e->term;
    return index > r->snap.index ? run_term(r, index) : 0;
}

static uint64_t last_term(const raft *r)
{
    return term_at(r, last_index(r));
}

static void free_entry(raft_entry *e)
{
    free((void *)e->data);
    e->data = NULL;
}

/* Removes entries with index >= from. Never below the commit index. */
static void log_truncate(raft *r, uint64_t from)
{
    assert(from > r->commit);
    assert(from > r->base_index);
    while (last_index(r) >= from) {
        r->mem_bytes -= r->ents[r->n_ents - 1].len;
        free_entry(&r->ents[r->n_ents - 1]);
        r->n_ents--;
    }
    if (r->unstable_from > from)
        r->unstable_from = from;
    if (r->persisted >= from)
        r->persisted = from - 1;
}

/* Appends a copy of e (its index must be last_index + 1). */
static int log_append(raft *r, uint64_t term, uint8_t type, const uint8_t *data, uint32_t len)
{
    if (grow((void **)&r->ents, &r->cap_ents, r->n_ents + 1, sizeof(raft_entry)) != 0)
        return RAFT_ENOMEM;
    uint8_t *copy = NULL;
    if (len > 0) {
        copy = malloc(len);
        if (!copy)
            return RAFT_ENOMEM;
        memcpy(copy, data, len);
    }
    raft_entry *e = &r->ents[r->n_ents++];
    r->mem_bytes += len;
    e->term = term;
    e->index = last_index(r);
    e->type = type;
    e->len = len;
    e->data = copy;
    return 0;
}

/* Drops entries up to and including `upto` from memory. */
static void log_compact(raft *r, uint64_t upto)
{
    if (upto <= r->base_index)
        return;
    if (upto > last_index(r))
        upto = last_index(r);
    uint64_t n = upto - r->base_index;
    uint64_t t = term_at(r, upto);
    for (uint64_t i = 0; i < n; i++) {
        r->mem_bytes -= r->ents[i].len;
        free_entry(&r->ents[i]);
    }
    memmove(r->ents, r->ents + n, (r->n_ents - n) * sizeof(raft_entry));
    r->n_ents -= (uint32_t)n;
    r->base_index = upto;
    r->base_term = t;
}

static void log_reset(raft *r, uint64_t index, uint64_t term)
{
    for (uint32_t i = 0; i < r->n_ents; i++)
        free_entry(&r->ents[i]);
    r->n_ents = 0;
    r->mem_bytes = 0;
    r->n_runs = 0;
    r->base_index = index;
    r->base_term = term;
}

/* Notes the term of an entry leaving memory (index above every noted one). 0, or -1 when
 * out of memory. */
static int runs_note(raft *r, uint64_t index, uint64_t term)
{
    if (r->n_runs > 0 && r->runs[r->n_runs - 1].term == term)
        return 0;
    if (grow((void **)&r->runs, &r->cap_runs, r->n_runs + 1, sizeof(term_run)) != 0)
        return -1;
    r->runs[r->n_runs++] = (term_run){.index = index, .term = term};
    return 0;
}

/* Past cfg.log_mem_bytes, drops entries that are applied and durable locally from memory,
 * oldest first, down to half of it (so the memmove is paid once per half a budget). Their
 * terms are kept in runs; their data is read back from the caller's log (rd.fetches). */
static void log_trim(raft *r)
{
    uint64_t budget = r->cfg.log_mem_bytes;
    if (budget == 0 || r->mem_bytes <= budget)
        return;
    uint64_t limit = r->applied < r->persisted ? r->applied : r->persisted;
    uint64_t left = r->mem_bytes;
    uint32_t n = 0;
    for (; n < r->n_ents && left > budget / 2 && r->ents[n].index <= limit; n++) {
        raft_entry *e = &r->ents[n];
        if (runs_note(r, e->index, e->term) != 0)
            break; /* keep the entry in memory rather than lose its term */
        left -= e->len;
    }
    if (n == 0)
        return;
    r->base_index = r->ents[n - 1].index;
    r->base_term = r->ents[n - 1].term;
    for (uint32_t i = 0; i < n; i++)
        free_entry(&r->ents[i]);
    memmove(r->ents, r->ents + n, (r->n_ents - n) * sizeof(raft_entry));
    r->n_ents -= n;
    r->mem_bytes = left;
}

/* Runs wholly at or below the snapshot are of no more use. */
static void runs_prune(raft *r)
{
    uint32_t drop = 0;
    while (drop + 1 < r->n_runs && r->runs[drop + 1].index <= r->snap.index + 1)
        drop++;
    if (r->n_runs > 0 && r->base_index <= r->snap.index)
        drop = r->n_runs; /* everything dropped from memory is in the snapshot */
    if (drop == 0)
        return;
    memmove(r->runs, r->runs + drop, (r->n_runs - drop) * sizeof(term_run));
    r->n_runs -= drop;
}

/* The largest index <= index whose term is <= term (etcd's findConflictByTerm). */
static uint64_t find_conflict_by_term(const raft *r, uint64_t index, uint64_t term)
{
    if (index > last_index(r))
        index = last_index(r);
    while (index > r->base_index) {
        uint64_t t = term_at(r, index);
        if (t <= term)
            break;
        index--;
    }
    return index;
}

static bool log_up_to_date(const raft *r, uint64_t lindex, uint64_t lterm)
{
    uint64_t lt = last_term(r);
    return lterm > lt || (lterm == lt && lindex >= last_index(r));
}

/* ---------------------------------------------------------------- progress */

static progress *pr_get(raft *r, raft_id id)
{
    for (uint32_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].id == id)
            return &r->prs[i];
    return NULL;
}

static void pr_inflight_reset(progress *pr)
{
    pr->inflight_start = 0;
    pr->inflight_count = 0;
}

static void pr_become_probe(raft *r, progress *pr)
{
    (void)r;
    if (pr->state == PR_SNAPSHOT) {
        uint64_t s = pr->snap_index;
        pr->next = (pr->match + 1 > s + 1) ? pr->match + 1 : s + 1;
    } else {
        pr->next = pr->match + 1;
    }
    pr->state = PR_PROBE;
    pr->probe_sent = false;
    pr_inflight_reset(pr);
}

static void pr_become_replicate(progress *pr)
{
    pr->state = PR_REPLICATE;
    pr->next = pr->match + 1;
    pr->probe_sent = false;
    pr_inflight_reset(pr);
}

static void pr_free_inflight_to(raft *r, progress *pr, uint64_t index)
{
    while (pr->inflight_count > 0 && pr->inflight[pr->inflight_start] <= index) {
        pr->inflight_start = (pr->inflight_start + 1) % r->cfg.max_inflight_msgs;
        pr->inflight_count--;
    }
}

/* A follower that rejects an append sent in REPLICATE missed or reordered what came before
 * it. Over an ordered connection that is rare (it restarted, or lost a batch), but where
 * appends arrive shuffled, each full window after a probe would be rejected but for the
 * first and sent again: O(n^2) messages for n entries. So the window shrinks by half at
 * each such reject and grows back by one at each accepted append (TCP's AIMD). */
static void pr_window_shrink(progress *pr)
{
    pr->window = pr->window > 1 ? pr->window / 2 : 1;
}

static void pr_window_grow(raft *r, progress *pr)
{
    if (pr->window < r->cfg.max_inflight_msgs)
        pr->window++;
}

static void pr_inflight_add(raft *r, progress *pr, uint64_t last)
{
    assert(pr->inflight_count < r->cfg.max_inflight_msgs);
    pr->inflight[(pr->inflight_start + pr->inflight_count) % r->cfg.max_inflight_msgs] = last;
    pr->inflight_count++;
}

/* Rebuilds the progress set after a configuration change, keeping the
 * progress of members that stay. */
static void prs_sync_at(raft *r, uint64_t conf_index);

static void prs_sync(raft *r)
{
    prs_sync_at(r, 0);
}

/* Rebuilds the progress set; conf_index is the index of the configuration
 * entry just applied (0: none), from which removed members are kept leaving. */
static void prs_sync_at(raft *r, uint64_t conf_index)
{
    progress old[MAX_PROGRESS];
    uint32_t n_old = r->n_prs;
    memcpy(old, r->prs, sizeof(progress) * n_old);
    raft_id ids[MAX_PROGRESS];
    uint32_t n = 0;
    const raft_conf *c = &r->conf;
    for (uint32_t i = 0; i < c->n_voters; i++)
        ids[n++] = c->voters[i];
    for (uint32_t i = 0; i < c->n_voters_out; i++)
        if (!ids_contain(ids, n, c->voters_out[i]))
            ids[n++] = c->voters_out[i];
    for (uint32_t i = 0; i < c->n_learners; i++)
        if (!ids_contain(ids, n, c->learners[i]))
            ids[n++] = c->learners[i];

    progress nprs[MAX_PROGRESS];
    for (uint32_t i = 0; i < n; i++) {
        progress *found = NULL;
        for (uint32_t j = 0; j < n_old; j++)
            if (old[j].id == ids[i]) {
                found = &old[j];
                break;
            }
        if (found) {
            nprs[i] = *found;
            found->id = 0; /* taken (after the copy: the kept progress keeps its id) */
        } else {
            memset(&nprs[i], 0, sizeof(progress));
            nprs[i].id = ids[i];
            nprs[i].next = last_index(r) + 1;
            nprs[i].state = PR_PROBE;
            nprs[i].recent_active = true; /* grace until the next quorum check */
            nprs[i].inflight = calloc(r->cfg.max_inflight_msgs, sizeof(uint64_t));
            if (!nprs[i].inflight)
                abort();
            nprs[i].window = r->cfg.max_inflight_msgs;
            if (ids[i] == r->cfg.id)
                nprs[i].match = r->persisted;
        }
    }
    for (uint32_t j = 0; j < n_old; j++) {
        if (old[j].id == 0)
            continue;
        bool keep = r->role == RAFT_LEADER && old[j].id != r->cfg.id && n < MAX_PROGRESS &&
                    (old[j].leaving || conf_index != 0);
        if (keep && !old[j].leaving) {
            old[j].leaving = true;
            old[j].leave_index = conf_index;
            old[j].leave_deadline = r->now + 20ull * r->cfg.election_ticks;
        }
        if (keep) {
            nprs[n++] = old[j];
        } else {
            free(old[j].inflight);
        }
    }
    memcpy(r->prs, nprs, sizeof(progress) * n);
    r->n_prs = n;
}

/* Drops leaving members that know they are out, or whose time is up. */
static void prs_drop_left(raft *r, bool all)
{
    uint32_t keep = 0;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        progress *pr = &r->prs[i];
        bool gone =
            pr->leaving && (all || r->now >= pr->leave_deadline ||
                            (pr->match >= pr->leave_index && pr->sent_commit >= pr->leave_index &&
                             r->commit >= pr->leave_index));
        if (gone)
            free(pr->inflight);
        else
            r->prs[keep++] = *pr;
    }
    r->n_prs = keep;
}

/* ------------------------------------------------------------------ quorum */

/* Counts of yes/no/missing in one majority config. */
enum vote_result { VOTE_PENDING, VOTE_WON, VOTE_LOST };

static enum vote_result majority_result(const raft_id *ids, uint32_t n, uint32_t yes, uint32_t no)
{
    if (n == 0)
        return VOTE_WON;
    uint32_t q = n / 2 + 1;
    if (yes >= q)
        return VOTE_WON;
    if (n - no < q)
        return VOTE_LOST;
    (void)ids;
    return VOTE_PENDING;
}

typedef bool (*pr_pred)(const raft *r, const progress *pr, uint64_t arg);

/* Evaluates pred over both majority configs (joint aware). */
static enum vote_result joint_result(raft *r, pr_pred yes_pred, pr_pred no_pred, uint64_t arg)
{
    const raft_conf *c = &r->conf;
    enum vote_result res[2];
    for (int s = 0; s < 2; s++) {
        const raft_id *ids = s == 0 ? c->voters : c->voters_out;
        uint32_t n = s == 0 ? c->n_voters : c->n_voters_out;
        uint32_t yes = 0, no = 0;
        for (uint32_t i = 0; i < n; i++) {
            progress *pr = pr_get(r, ids[i]);
            if (!pr)
                continue;
            if (yes_pred(r, pr, arg))
                yes++;
            else if (no_pred && no_pred(r, pr, arg))
                no++;
        }
        res[s] = majority_result(ids, n, yes, no);
    }
    if (c->n_voters == 0)
        return VOTE_LOST; /* an empty configuration can decide nothing */
    if (res[0] == VOTE_LOST || res[1] == VOTE_LOST)
        return VOTE_LOST;
    if (res[0] == VOTE_WON && res[1] == VOTE_WON)
        return VOTE_WON;
    return VOTE_PENDING;
}

static uint64_t sorted_quorum_index(raft *r, const raft_id *ids, uint32_t n)
{
    if (n == 0)
        return UINT64_MAX;
    uint64_t m[RAFT_MAX_MEMBERS];
    for (uint32_t i = 0; i < n; i++) {
        progress *pr = pr_get(r, ids[i]);
        m[i] = pr ? pr->match : 0;
    }
    for (uint32_t i = 1; i < n; i++)
        for (uint32_t j = i; j > 0 && m[j] > m[j - 1]; j--) {
            uint64_t t = m[j];
            m[j] = m[j - 1];
            m[j - 1] = t;
        }
    /* descending: the (n/2+1)-th largest is held by a majority */
    return m[n / 2];
}

/* The highest index replicated on a quorum of the (joint) configuration. */
static uint64_t committed_by_quorum(raft *r)
{
    if (r->conf.n_voters == 0)
        return 0;
    uint64_t a = sorted_quorum_index(r, r->conf.voters, r->conf.n_voters);
    uint64_t b = sorted_quorum_index(r, r->conf.voters_out, r->conf.n_voters_out);
    return a < b ? a : b;
}

static bool pred_active(const raft *r, const progress *pr, uint64_t arg)
{
    (void)arg;
    return pr->id == r->cfg.id || pr->recent_active;
}

static bool pred_vote_yes(const raft *r, const progress *pr, uint64_t arg)
{
    (void)r;
    (void)arg;
    return pr->vote_answered && pr->vote_granted;
}

static bool pred_vote_no(const raft *r, const progress *pr, uint64_t arg)
{
    (void)r;
    (void)arg;
    return pr->vote_answered && !pr->vote_granted;
}

static bool pred_read_acked(const raft *r, const progress *pr, uint64_t round)
{
    return pr->id == r->cfg.id || pr->read_ack >= round;
}

static bool promotable(const raft *r)
{
    return raft_conf_is_voter(&r->conf, r->cfg.id);
}

/* ---------------------------------------------------------------- outbox */

static void msg_init(raft *r, raft_msg *m, int type, raft_id to)
{
    memset(m, 0, sizeof(*m));
    m->type = (uint8_t)type;
    m->from = r->cfg.id;
    m->to = to;
    m->term = r->term;
}

static void send_now(raft *r, const raft_msg *m)
{
    PUSH(r, r->out, r->n_out, r->cap_out, *m);
}

/* Sends m once everything this member has accepted so far is durable. */
static void send_after_persist(raft *r, const raft_msg *m)
{
    if (BUG(r, RAFT_BUG_ACK_BEFORE_PERSIST) && m->type == RAFT_MSG_APPEND_RESP) {
        send_now(r, m);
        return;
    }
    held_msg h = {.m = *m, .seq = 0};
    PUSH(r, r->pend_held, r->n_pend_held, r->cap_pend_held, h);
}

/* ------------------------------------------------------------------ reads */

static void fail_read(raft *r, uint64_t context)
{
    PUSH(r, r->failed_reads, r->n_failed_reads, r->cap_failed_reads, context);
}

/* Drops the leader's pending reads: local ones are reported failed,
 * forwarded ones are answered with a rejection. */
static void fail_pending_reads(raft *r)
{
    for (uint32_t i = 0; i < r->n_reads; i++) {
        pending_read *pr = &r->reads[i];
        if (pr->from == 0 || pr->from == r->cfg.id) {
            fail_read(r, pr->context);
        } else {
            raft_msg m;
            msg_init(r, &m, RAFT_MSG_READ_INDEX_RESP, pr->from);
            m.context = pr->context;
            m.reject = true;
            send_now(r, &m);
        }
    }
    r->n_reads = 0;
    r->read_round_needed = false;
}

static void fail_forwarded_reads(raft *r)
{
    for (uint32_t i = 0; i < r->n_fwd_reads; i++)
        fail_read(r, r->fwd_reads[i]);
    r->n_fwd_reads = 0;
}

static void read_ready(raft *r, raft_id from, uint64_t context, uint64_t index)
{
    if (from == 0 || from == r->cfg.id) {
        raft_read_state rs = {.context = context, .index = index};
        PUSH(r, r->ready_reads, r->n_ready_reads, r->cap_ready_reads, rs);
    } else {
        raft_msg m;
        msg_init(r, &m, RAFT_MSG_READ_INDEX_RESP, from);
        m.context = context;
        m.index = index;
        send_now(r, &m);
    }
}

static bool committed_in_term(const raft *r)
{
    return term_at(r, r->commit) == r->term;
}

/* Releases the reads whose round a quorum has acknowledged. */
static void reads_advance(raft *r)
{
    if (r->role != RAFT_LEADER || r->n_reads == 0)
        return;
    uint32_t done = 0;
    while (done < r->n_reads) {
        pending_read *p = &r->reads[done];
        if (p->round == 0 || p->round > r->read_round)
            break; /* not yet broadcast */
        if (joint_result(r, pred_read_acked, NULL, p->round) != VOTE_WON)
            break;
        read_ready(r, p->from, p->context, p->index);
        done++;
    }
    if (done > 0) {
        memmove(r->reads, r->reads + done, (r->n_reads - done) * sizeof(pending_read));
        r->n_reads -= done;
    }
}

/* Reads that arrived before the first commit of this term get their index now. */
static void reads_on_commit_in_term(raft *r)
{
    for (uint32_t i = 0; i < r->n_reads; i++)
        if (r->reads[i].round == 0 && r->reads[i].index == 0) {
            r->reads[i].index = r->commit;
            r->reads[i].round = r->read_round + 1;
            r->read_round_needed = true;
        }
}

/* Lease: a quorum answered a heartbeat round that was sent within the last
 * election timeout. Each of them reset its election timer after we sent it,
 * so none grants a vote for another election_ticks ticks of its clock
 * (in_lease). The time is taken at the send, not at the answer, because the
 * answer can be delayed arbitrarily. CheckQuorum alone is not enough: it
 * notices a lost quorum only at the end of the next whole election timeout,
 * by when the others may have elected a new leader. */
static bool pred_heard_recently(const raft *r, const progress *pr, uint64_t arg)
{
    (void)arg;
    return pr->id == r->cfg.id ||
           (pr->heard_at != 0 && r->now + 1 - pr->heard_at < r->cfg.election_ticks);
}

static int leader_read(raft *r, raft_id from, uint64_t context)
{
    if (BUG(r, RAFT_BUG_STALE_READ)) {
        read_ready(r, from, context, r->commit);
        return 0;
    }
    if (r->cfg.read_mode == RAFT_READ_LEASE && r->cfg.check_quorum && committed_in_term(r) &&
        !r->timeout_now_sent && joint_result(r, pred_heard_recently, NULL, 0) == VOTE_WON) {
        read_ready(r, from, context, r->commit);
        return 0;
    }
    if (r->n_reads >= r->cfg.max_pending_reads)
        return RAFT_EBUSY;
    pending_read p = {.context = context, .from = from};
    if (committed_in_term(r)) {
        p.index = r->commit;
        p.round = r->read_round + 1;
        r->read_round_needed = true;
    }
    PUSH(r, r->reads, r->n_reads, r->cap_reads, p);
    reads_advance(r); /* a single voter confirms at once */
    return 0;
}

/* --------------------------------------------------------- role changes */

static void abort_transfer(raft *r)
{
    r->transferee = 0;
    r->transfer_elapsed = 0;
}

static void reset_term(raft *r, uint64_t term)
{
    if (r->term != term) {
        r->term = term;
        r->vote = 0;
    }
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    reset_randomized_timeout(r);
    abort_transfer(r);
    r->timeout_now_sent = false; /* a new role or term: a new lease */
    for (uint32_t i = 0; i < r->n_prs; i++) {
        r->prs[i].vote_answered = false;
        r->prs[i].vote_granted = false;
    }
    r->self_vote_pending = false;
}

static void set_lead(raft *r, raft_id lead)
{
    if (r->lead != lead && r->role != RAFT_LEADER)
        fail_forwarded_reads(r);
    r->lead = lead;
}

static void prs_drop_left(raft *r, bool all);

static void become_follower(raft *r, uint64_t term, raft_id lead)
{
    if (r->role == RAFT_LEADER) {
        fail_pending_reads(r);
        prs_drop_left(r, true);
    }
    reset_term(r, term);
    r->role = RAFT_FOLLOWER;
    set_lead(r, lead);
}

static void send_votes(raft *r, bool pre, bool force)
{
    const raft_conf *c = &r->conf;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        raft_id id = r->prs[i].id;
        if (id == r->cfg.id || !raft_conf_is_voter(c, id))
            continue;
        raft_msg m;
        msg_init(r, &m, RAFT_MSG_VOTE, id);
        m.pre_vote = pre;
        m.force = force;
        m.term = pre ? r->term + 1 : r->term;
        m.log_index = last_index(r);
        m.log_term = last_term(r);
        send_now(r, &m);
    }
}

static void become_leader(raft *r);

static void tally(raft *r)
{
    enum vote_result res = joint_result(r, pred_vote_yes, pred_vote_no, 0);
    if (res == VOTE_WON) {
        if (r->role == RAFT_PRE_CANDIDATE) {
            /* the real election */
            reset_term(r, r->term + 1);
            r->role = RAFT_CANDIDATE;
            r->vote = r->cfg.id;
            r->lead = 0;
            r->self_vote_pending = true;
            send_votes(r, false, false);
        } else if (r->role == RAFT_CANDIDATE) {
            /* Not before our own vote is durable, even when the others' votes make a quorum
             * without it: a leader that loses its term in a crash may win the same term again
             * (its voters voted for it) and write other entries at the same indexes of that
             * term (cord-sim --seed 2018983 --nodes 3). raft_persisted counts it and comes
             * back here. */
            progress *self = pr_get(r, r->cfg.id);
            if (self == NULL || self->vote_granted)
                become_leader(r);
        }
    } else if (res == VOTE_LOST) {
        become_follower(r, r->term, 0);
    }
}

static void campaign(raft *r, bool force)
{
    if (!promotable(r))
        return;
    set_lead(r, 0);
    if (r->cfg.pre_vote && !force) {
        uint64_t t = r->term;
        reset_term(r, t); /* keeps term and vote, resets timers and tallies */
        r->role = RAFT_PRE_CANDIDATE;
        progress *self = pr_get(r, r->cfg.id);
        self->vote_answered = self->vote_granted = true; /* pre-votes need no durability */
        send_votes(r, true, false);
        tally(r);
        return;
    }
    reset_term(r, r->term + 1);
    r->role = RAFT_CANDIDATE;
    r->vote = r->cfg.id;
    r->self_vote_pending = true; /* counted once the vote is durable */
    send_votes(r, false, force);
}

static int leader_append(raft *r, uint8_t type, const uint8_t *data, uint32_t len)
{
    int rc = log_append(r, r->term, type, data, len);
    if (rc != 0)
        return rc;
    r->uncommitted_bytes += len;
    if (type == RAFT_ENTRY_CONF)
        r->pending_conf_index = last_index(r);
    return 0;
}

static int append_conf_entry(raft *r, const raft_conf *c)
{
    uint8_t buf[4 + 8 * 3 * RAFT_MAX_MEMBERS];
    size_t n = raft_conf_encode(c, buf);
    return leader_append(r, RAFT_ENTRY_CONF, buf, (uint32_t)n);
}

/* The final configuration after a joint one. */
static void conf_leave_joint(const raft_conf *joint, raft_conf *out)
{
    *out = *joint;
    out->n_voters_out = 0;
}

static void become_leader(raft *r)
{
    assert(r->role == RAFT_CANDIDATE);
    r->role = RAFT_LEADER;
    set_lead(r, r->cfg.id);
    r->heartbeat_elapsed = 0;
    r->election_elapsed = 0;
    r->uncommitted_bytes = 0;
    r->n_reads = 0;
    r->read_round_needed = false;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        progress *pr = &r->prs[i];
        pr->match = pr->id == r->cfg.id ? r->persisted : 0;
        pr->next = last_index(r) + 1;
        pr->state = PR_PROBE;
        pr->probe_sent = false;
        pr->window = r->cfg.max_inflight_msgs;
        pr->recent_active = pr->id == r->cfg.id;
        pr->heard_at = 0;
        pr->sent_commit = 0;
        pr->read_ack = 0;
        pr->fetch_pending = false;
        pr_inflight_reset(pr);
    }
    /* An empty entry of our own term: committing it commits everything before. */
    if (leader_append(r, RAFT_ENTRY_NORMAL, NULL, 0) != 0)
        abort();
    r->pending_conf_index = last_index(r);
}

/* Leader: the joint configuration is committed and every configuration entry of the log is
 * applied (etcd's auto-leave rule): append the final one. Not earlier: a log taken over from
 * an earlier leader may already hold that final entry (and more changes after it), and a
 * second copy appended behind them would, once committed, bring back a membership the
 * cluster had already left (a member removed again after it was added). */
static void leave_joint_if_due(raft *r)
{
    if (r->role != RAFT_LEADER || !raft_conf_is_joint(&r->conf) ||
        r->commit < r->pending_conf_index || r->conf_waiting != 0)
        return;
    raft_conf fin;
    conf_leave_joint(&r->conf, &fin);
    if (append_conf_entry(r, &fin) != 0)
        abort();
}

/* ------------------------------------------------------------ membership */

static void conf_hist_push(raft *r, uint64_t index, const raft_conf *c)
{
    conf_hist h = {.index = index, .conf = *c};
    PUSH(r, r->hist, r->n_hist, r->cap_hist, h);
}

/* The configuration in force at index (which must be >= snap.index). */
static const raft_conf *conf_at(const raft *r, uint64_t index)
{
    const raft_conf *c = &r->snap.conf;
    for (uint32_t i = 0; i < r->n_hist; i++)
        if (r->hist[i].index <= index)
            c = &r->hist[i].conf;
    return c;
}

static void bcast_heartbeat(raft *r);

static void send_timeout_now(raft *r, raft_id to)
{
    raft_msg m;
    msg_init(r, &m, RAFT_MSG_TIMEOUT_NOW, to);
    send_now(r, &m);
    r->timeout_now_sent = true;
}

static void apply_conf(raft *r, uint64_t index, const raft_conf *c)
{
    r->conf = *c;
    r->conf_version++;
    conf_hist_push(r, index, c);
    prs_sync_at(r, index);
    if (r->role != RAFT_LEADER)
        return;
    if (raft_conf_is_joint(c))
        return; /* the final one is appended by leave_joint_if_due once the log holds none */
    if (!raft_conf_is_voter(c, r->cfg.id)) {
        /* We were removed: hand over to the most up-to-date voter and step down. */
        raft_id best = 0;
        uint64_t best_match = 0;
        for (uint32_t i = 0; i < c->n_voters; i++) {
            progress *pr = pr_get(r, c->voters[i]);
            if (pr && pr->match >= best_match) {
                best = pr->id;
                best_match = pr->match;
            }
        }
        /* tell everyone the final configuration is committed first, so that
         * the next leader starts from it rather than from the joint one */
        bcast_heartbeat(r);
        if (best != 0 && best_match == last_index(r))
            send_timeout_now(r, best);
        become_follower(r, r->term, 0);
    }
}

/* Sets the commit index. Configuration entries take effect only once a hard state holding
 * their commit is durable (conf_take_effect): a member that acted on one and then lost power
 * before writing that commit index would restart in the configuration before it, while others
 * (and its own past messages) went on in the new one. */
static void commit_to(raft *r, uint64_t index)
{
    if (index <= r->commit)
        return;
    if (index > last_index(r))
        index = last_index(r);
    uint64_t old = r->commit;
    r->commit = index;
    for (uint64_t i = old + 1; i <= index; i++) {
        const raft_entry *e = entry_at(r, i);
        if (!e)
            continue; /* below the log (covered by a snapshot) */
        if (r->role == RAFT_LEADER && e->term == r->term) {
            r->uncommitted_bytes =
                r->uncommitted_bytes > e->len ? r->uncommitted_bytes - e->len : 0;
        }
        if (e->type == RAFT_ENTRY_CONF && r->conf_waiting == 0)
            r->conf_waiting = i;
    }
}

/* The hard state with commit index `durable` is on disk: the configuration entries it
 * commits take effect, in order. */
static void conf_take_effect(raft *r, uint64_t durable)
{
    if (durable > r->commit)
        durable = r->commit;
    if (durable <= r->conf_durable)
        return;
    uint64_t from = r->conf_durable;
    r->conf_durable = durable;
    if (r->conf_waiting == 0 || r->conf_waiting > durable)
        return;
    r->conf_waiting = 0;
    for (uint64_t i = from + 1; i <= r->commit; i++) {
        const raft_entry *e = entry_at(r, i);
        if (!e || e->type != RAFT_ENTRY_CONF)
            continue; /* below the log (covered by a snapshot), or not a configuration */
        if (i > durable) {
            r->conf_waiting = i;
            break;
        }
        raft_conf c;
        if (raft_conf_decode(&c, e->data, e->len) == 0)
            apply_conf(r, i, &c);
    }
    leave_joint_if_due(r);
}

/* Leader: advance the commit index to what a quorum holds, own term only. */
static bool maybe_commit(raft *r)
{
    uint64_t q = committed_by_quorum(r);
    if (q == UINT64_MAX || q <= r->commit)
        return false;
    if (term_at(r, q) != r->term && !BUG(r, RAFT_BUG_COMMIT_OLD_TERM))
        return false;
    bool had = committed_in_term(r);
    commit_to(r, q);
    if (r->role == RAFT_LEADER && !had && committed_in_term(r))
        reads_on_commit_in_term(r);
    return true;
}

/* Copies entries (and their data) into memory that lives until raft_advance. */
static void *scratch_alloc(raft *r, size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        return NULL;
    if (grow((void **)&r->scratch, &r->cap_scratch, r->n_scratch + 1, sizeof(uint8_t *)) != 0) {
        free(p);
        return NULL;
    }
    r->scratch[r->n_scratch++] = p;
    return p;
}

static raft_entry *scratch_entries(raft *r, const raft_entry *src, uint32_t n)
{
    raft_entry *copy = scratch_alloc(r, sizeof(raft_entry) * n);
    if (!copy)
        return NULL;
    for (uint32_t i = 0; i < n; i++) {
        copy[i] = src[i];
        if (src[i].len > 0) {
            uint8_t *d = scratch_alloc(r, src[i].len);
            if (!d)
                return NULL;
            memcpy(d, src[i].data, src[i].len);
            copy[i].data = d;
        }
    }
    return copy;
}

/* ---------------------------------------------------------------- stepping */

/* A voter holds back its vote while a leader's lease may still count on it: for an election
 * timeout after it last heard from a leader and, with lease reads, for the first election
 * timeout after it (re)started. A member that answered a leader's heartbeat and then crashed
 * knows no leader when it comes back; without the second rule it would vote at once, inside
 * the lease it helped to grant, and the deposed leader could still serve a lease read that
 * misses a newer leader's writes (cord-sim --seed 2002008 --nodes 3 found it). Read-index
 * reads do not depend on it: without lease reads a restarted member votes at once, as in
 * etcd, and a restarted cluster elects a leader sooner. */
static bool in_lease(const raft *r)
{
    if (!r->cfg.check_quorum)
        return false;
    if (r->cfg.read_mode == RAFT_READ_LEASE && r->now < r->cfg.election_ticks)
        return true;
    return r->lead != 0 && r->election_elapsed < r->cfg.election_ticks;
}

static void handle_vote(raft *r, const raft_msg *m)
{
    raft_msg resp;
    msg_init(r, &resp, RAFT_MSG_VOTE_RESP, m->from);
    resp.pre_vote = m->pre_vote;
    bool can_vote =
        r->vote == m->from || (r->vote == 0 && r->lead == 0) || (m->pre_vote && m->term > r->term);
    if (BUG(r, RAFT_BUG_DOUBLE_VOTE) && !m->pre_vote)
        can_vote = true;
    if (can_vote && log_up_to_date(r, m->log_index, m->log_term)) {
        resp.term = m->term;
        resp.reject = false;
        if (m->pre_vote) {
            send_now(r, &resp);
        } else {
            r->vote = m->from;
            r->election_elapsed = 0;
            send_after_persist(r, &resp); /* the vote must be durable first */
        }
    } else {
        resp.term = r->term;
        resp.reject = true;
        send_now(r, &resp);
    }
}

static void handle_vote_resp(raft *r, const raft_msg *m)
{
    if ((r->role == RAFT_PRE_CANDIDATE) != m->pre_vote)
        return;
    if (r->role != RAFT_PRE_CANDIDATE && r->role != RAFT_CANDIDATE)
        return;
    progress *pr = pr_get(r, m->from);
    if (!pr || pr->vote_answered)
        return;
    pr->vote_answered = true;
    pr->vote_granted = !m->reject;
    tally(r);
}

static void handle_append(raft *r, const raft_msg *m)
{
    raft_msg resp;
    msg_init(r, &resp, RAFT_MSG_APPEND_RESP, m->from);
    if (m->log_index < r->commit) {
        resp.index = r->commit;
        send_after_persist(r, &resp); /* our committed entries may not be durable yet */
        return;
    }
    if (m->log_index > last_index(r) || m->log_index < r->base_index ||
        term_at(r, m->log_index) != m->log_term) {
        /* mismatch: hint where our log may agree */
        resp.reject = true;
        resp.index = m->log_index;
        uint64_t hi = find_conflict_by_term(r, m->log_index, m->log_term);
        resp.hint_index = hi;
        resp.hint_term = term_at(r, hi);
        send_now(r, &resp);
        return;
    }
    /* find the first conflicting entry, then truncate and append from there */
    uint32_t i = 0;
    for (; i < m->n_entries; i++) {
        const raft_entry *e = &m->entries[i];
        if (e->index > last_index(r))
            break;
        if (e->index <= r->base_index)
            continue;
        if (term_at(r, e->index) != e->term) {
            log_truncate(r, e->index);
            break;
        }
    }
    for (; i < m->n_entries; i++) {
        const raft_entry *e = &m->entries[i];
        if (log_append(r, e->term, e->type, e->data, e->len) != 0)
            abort();
    }
    uint64_t last_new = m->log_index + m->n_entries;
    commit_to(r, m->commit < last_new ? m->commit : last_new);
    resp.index = last_new;
    send_after_persist(r, &resp);
}

static void handle_heartbeat(raft *r, const raft_msg *m)
{
    uint64_t c = m->commit < last_index(r) ? m->commit : last_index(r);
    commit_to(r, c);
    raft_msg resp;
    msg_init(r, &resp, RAFT_MSG_HEARTBEAT_RESP, m->from);
    resp.context = m->context;
    send_now(r, &resp);
}

static void handle_snapshot(raft *r, const raft_msg *m)
{
    raft_msg resp;
    bool committed = m->log_index <= r->commit;
    if (committed || (m->log_index <= last_index(r) && term_at(r, m->log_index) == m->log_term)) {
        /* We need none: we hold everything it covers, or our log holds its last entry
         * (appends overtook a delayed snapshot). Installing it would then drop the entries
         * after that one, which we may have acknowledged already, and the leader would probe
         * above our log for ever (cord-sim --seed 6026254 --nodes 3). Answer as an append
         * that matched there. */
        if (r->recv_snap_index == m->log_index) {
            r->recv_snap_index = 0;
            r->recv_snap_bytes = 0;
        }
        msg_init(r, &resp, RAFT_MSG_APPEND_RESP, m->from);
        resp.index = committed ? r->commit : m->log_index;
        send_after_persist(r, &resp);
        return;
    }
    msg_init(r, &resp, RAFT_MSG_SNAPSHOT_RESP, m->from);
    resp.log_index = m->log_index;
    resp.log_term = m->log_term;
    if (m->offset == 0) {
        r->recv_snap_index = m->log_index;
        r->recv_snap_term = m->log_term;
        r->recv_snap_bytes = 0;
    }
    bool ours = r->recv_snap_index == m->log_index && r->recv_snap_term == m->log_term;
    if (!ours || m->offset != r->recv_snap_bytes || r->have_chunk || r->install_pending) {
        resp.reject = true;
        resp.index = ours ? r->recv_snap_bytes : 0;
        send_now(r, &resp);
        return;
    }
    if (grow((void **)&r->chunk, &r->cap_chunk, m->len, 1) != 0)
        abort();
    if (m->len)
        memcpy(r->chunk, m->data, m->len);
    r->chunk_len = m->len;
    r->chunk_offset = m->offset;
    r->chunk_index = m->log_index;
    r->have_chunk = true;
    r->recv_snap_bytes += m->len;
    resp.index = r->recv_snap_bytes;
    if (m->done) {
        /* install: the log restarts after the snapshot */
        r->install_pending = true;
        r->install.index = m->log_index;
        r->install.term = m->log_term;
        r->install.size = m->snapshot_size;
        r->install.conf = m->conf;
        log_reset(r, m->log_index, m->log_term);
        r->snap = r->install;
        r->n_hist = 0;
        r->commit = m->log_index;
        r->applied = m->log_index;
        r->unstable_from = m->log_index + 1;
        if (r->persisted > m->log_index)
            r->persisted = m->log_index; /* raised when the install is durable */
        r->conf = m->conf;
        r->conf_version++;
        r->conf_waiting = 0;
        if (r->conf_durable < m->log_index)
            r->conf_durable = m->log_index;
        prs_sync(r);
        r->recv_snap_index = 0;
        r->recv_snap_bytes = 0;
    }
    send_after_persist(r, &resp);
}

static void send_chunk(raft *r, progress *pr);

static void handle_append_resp(raft *r, progress *pr, const raft_msg *m)
{
    pr->recent_active = true;
    if (m->reject) {
        if (pr->state == PR_REPLICATE) {
            if (m->index <= pr->match)
                return; /* stale */
            pr_window_shrink(pr);
            pr_become_probe(r, pr);
            return;
        }
        if (pr->state != PR_PROBE || m->index != pr->next - 1)
            return; /* stale */
        uint64_t hint = m->hint_index;
        if (m->hint_term > 0)
            hint = find_conflict_by_term(r, m->hint_index, m->hint_term);
        uint64_t next = m->index < hint + 1 ? m->index : hint + 1;
        if (next < pr->match + 1)
            next = pr->match + 1;
        if (next < 1)
            next = 1;
        pr->next = next;
        pr->probe_sent = false;
        return;
    }
    if (m->index > pr->match) {
        pr->match = m->index;
        if (pr->next < pr->match + 1)
            pr->next = pr->match + 1;
        if (pr->state == PR_REPLICATE)
            pr_window_grow(r, pr);
        if (pr->state == PR_PROBE)
            pr_become_replicate(pr);
        else if (pr->state == PR_SNAPSHOT && pr->match >= pr->snap_index)
            pr_become_probe(r, pr);
        pr_free_inflight_to(r, pr, m->index);
        maybe_commit(r);
        if (r->role != RAFT_LEADER)
            return;
    } else if (pr->state == PR_PROBE) {
        /* the answer to the probe in flight (it was sent at next - 1) lets the next one go; an
         * older answer (a duplicate, or one delayed behind it) does not: each would send one
         * more probe, whose own answer would then count again, a storm of appends */
        if (m->index + 1 >= pr->next)
            pr->probe_sent = false;
    } else {
        /* an append that carried no new entries (only the commit index) is
         * answered with index == match: it is no longer in flight either */
        pr_free_inflight_to(r, pr, m->index);
    }
    if (r->transferee == pr->id && pr->match == last_index(r))
        send_timeout_now(r, pr->id);
}

static void handle_snapshot_resp(raft *r, progress *pr, const raft_msg *m)
{
    pr->recent_active = true;
    if (pr->state != PR_SNAPSHOT || m->log_index != pr->snap_index)
        return;
    pr->snap_heard_at = r->now;
    pr->snap_chunk_out = false;
    if (m->reject) {
        pr->snap_acked = m->index <= r->snap.size ? m->index : 0;
        send_chunk(r, pr);
        return;
    }
    if (m->index > pr->snap_acked)
        pr->snap_acked = m->index;
    if (pr->snap_acked >= r->snap.size && m->index >= r->snap.size) {
        if (pr->match < pr->snap_index)
            pr->match = pr->snap_index;
        pr_become_probe(r, pr);
        maybe_commit(r);
        return;
    }
    send_chunk(r, pr);
}

static void handle_heartbeat_resp(raft *r, progress *pr, const raft_msg *m)
{
    pr->recent_active = true;
    pr->probe_sent = false;
    if (pr->state == PR_REPLICATE && pr->inflight_count > 0 &&
        pr->inflight_count >= pr->window) {
        /* the window is full and may hold lost messages: let one more go */
        pr->inflight_start = (pr->inflight_start + 1) % r->cfg.max_inflight_msgs;
        pr->inflight_count--;
    }
    if (pr->state == PR_REPLICATE && pr->match < last_index(r)) {
        /* Appends to it may have been lost, and with no new proposal nothing
         * else would tell: an empty append at next - 1 is accepted behind the
         * ones in flight, or rejected (then we probe from its match). */
        uint64_t prev = pr->next - 1;
        if (prev < r->base_index || (prev > 0 && term_at(r, prev) == 0)) {
            pr_become_probe(r, pr);
        } else {
            raft_msg a;
            msg_init(r, &a, RAFT_MSG_APPEND, pr->id);
            a.log_index = prev;
            a.log_term = term_at(r, prev);
            a.commit = r->commit;
            send_now(r, &a);
        }
    }
    if (pr->state == PR_SNAPSHOT && pr->snap_chunk_out) {
        /* two beats without progress: the chunk or its answer was lost */
        if (pr->snap_stall_acked == pr->snap_acked) {
            if (++pr->snap_stall >= 2)
                pr->snap_chunk_out = false;
        } else {
            pr->snap_stall = 0;
            pr->snap_stall_acked = pr->snap_acked;
        }
    }
    if (m->context > pr->read_ack) {
        pr->read_ack = m->context;
        if (m->context + ROUND_TICKS > r->read_round)
            pr->heard_at = r->round_tick[m->context % ROUND_TICKS];
        reads_advance(r);
    }
}

static int propose_entries(raft *r, const raft_entry *ents, uint32_t n);

static void step_leader(raft *r, const raft_msg *m)
{
    progress *pr = pr_get(r, m->from);
    switch (m->type) {
    case RAFT_MSG_PROPOSE:
        (void)propose_entries(r, m->entries, m->n_entries);
        return;
    case RAFT_MSG_READ_INDEX:
        if (leader_read(r, m->from, m->context) != 0) {
            raft_msg resp;
            msg_init(r, &resp, RAFT_MSG_READ_INDEX_RESP, m->from);
            resp.context = m->context;
            resp.reject = true;
            send_now(r, &resp);
        }
        return;
    default:
        break;
    }
    if (!pr)
        return; /* not a member */
    switch (m->type) {
    case RAFT_MSG_APPEND_RESP:
        handle_append_resp(r, pr, m);
        break;
    case RAFT_MSG_HEARTBEAT_RESP:
        handle_heartbeat_resp(r, pr, m);
        break;
    case RAFT_MSG_SNAPSHOT_RESP:
        handle_snapshot_resp(r, pr, m);
        break;
    default:
        break;
    }
}

static void step_follower(raft *r, const raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_APPEND:
        r->election_elapsed = 0;
        set_lead(r, m->from);
        handle_append(r, m);
        break;
    case RAFT_MSG_HEARTBEAT:
        r->election_elapsed = 0;
        set_lead(r, m->from);
        handle_heartbeat(r, m);
        break;
    case RAFT_MSG_SNAPSHOT:
        r->election_elapsed = 0;
        set_lead(r, m->from);
        handle_snapshot(r, m);
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        campaign(r, true);
        break;
    case RAFT_MSG_PROPOSE:
        if (r->lead != 0 && r->lead != m->from) {
            /* forward once more: entries are copied into scratch by raft_step */
            raft_msg f = *m;
            f.from = r->cfg.id;
            f.to = r->lead;
            f.term = r->term;
            send_now(r, &f);
        }
        break;
    case RAFT_MSG_READ_INDEX_RESP: {
        bool known = false;
        for (uint32_t i = 0; i < r->n_fwd_reads; i++)
            if (r->fwd_reads[i] == m->context) {
                r->fwd_reads[i] = r->fwd_reads[--r->n_fwd_reads];
                known = true;
                break;
            }
        if (!known)
            break;
        if (m->reject) {
            fail_read(r, m->context);
        } else {
            raft_read_state rs = {.context = m->context, .index = m->index};
            PUSH(r, r->ready_reads, r->n_ready_reads, r->cap_ready_reads, rs);
        }
        break;
    }
    default:
        break;
    }
}

static void step_candidate(raft *r, const raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_APPEND:
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_SNAPSHOT:
        become_follower(r, m->term, m->from);
        step_follower(r, m);
        break;
    case RAFT_MSG_VOTE_RESP:
        handle_vote_resp(r, m);
        break;
    default:
        break;
    }
}

static bool msg_valid(const raft *r, const raft_msg *m)
{
    if (m->type < RAFT_MSG_VOTE || m->type > RAFT_MSG_READ_INDEX_RESP)
        return false;
    if (m->to != r->cfg.id || m->from == 0 || m->from == r->cfg.id)
        return false;
    if (m->n_entries > 0 && !m->entries)
        return false;
    if (m->n_entries > 0 && m->type != RAFT_MSG_APPEND && m->type != RAFT_MSG_PROPOSE)
        return false;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const raft_entry *e = &m->entries[i];
        if (e->type > RAFT_ENTRY_CONF || (e->len > 0 && !e->data))
            return false;
        if (e->type == RAFT_ENTRY_CONF) {
            raft_conf c; /* a configuration that does not decode would be skipped at commit */
            if (raft_conf_decode(&c, e->data, e->len) != 0)
                return false;
        }
        if (m->type == RAFT_MSG_APPEND) {
            if (e->index != m->log_index + 1 + i || e->term > m->term || e->term < m->log_term)
                return false;
            if (i > 0 && e->term < m->entries[i - 1].term)
                return false;
        }
    }
    if (m->type == RAFT_MSG_SNAPSHOT) {
        if (m->log_index == 0 || (m->len > 0 && !m->data) ||
            m->offset + m->len > m->snapshot_size ||
            (m->done != (m->offset + m->len == m->snapshot_size)))
            return false;
        if (!conf_valid(&m->conf) || m->conf.n_voters == 0)
            return false;
    }
    return true;
}

int raft_step(raft *r, const raft_msg *m)
{
    assert(!r->in_ready);
    if (!msg_valid(r, m))
        return RAFT_EINVAL;

    bool is_vote = m->type == RAFT_MSG_VOTE;
    if (m->term > r->term) {
        if (is_vote && !m->force && in_lease(r))
            return 0; /* a leader is alive: ignore the disruption */
        if (is_vote && m->pre_vote) {
            /* a pre-vote does not change our term */
        } else if (m->type == RAFT_MSG_VOTE_RESP && m->pre_vote && !m->reject) {
            /* granted pre-votes carry the future term */
        } else if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
                   m->type == RAFT_MSG_SNAPSHOT) {
            become_follower(r, m->term, m->from);
        } else {
            become_follower(r, m->term, 0);
        }
    } else if (m->term < r->term) {
        if ((r->cfg.check_quorum || r->cfg.pre_vote) &&
            (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT)) {
            /* tell a stale leader about the newer term */
            raft_msg resp;
            msg_init(r, &resp, RAFT_MSG_APPEND_RESP, m->from);
            send_now(r, &resp);
        } else if (is_vote && m->pre_vote) {
            raft_msg resp;
            msg_init(r, &resp, RAFT_MSG_VOTE_RESP, m->from);
            resp.pre_vote = true;
            resp.reject = true;
            send_now(r, &resp);
        }
        return 0;
    }

    if (is_vote) {
        handle_vote(r, m);
        return 0;
    }

    /* Proposals carried by a message must outlive it until raft_advance. */
    raft_msg local = *m;
    if (m->type == RAFT_MSG_PROPOSE && m->n_entries > 0) {
        raft_entry *copy = scratch_entries(r, m->entries, m->n_entries);
        if (!copy)
            return RAFT_ENOMEM;
        local.entries = copy;
    }

    switch (r->role) {
    case RAFT_LEADER:
        step_leader(r, &local);
        break;
    case RAFT_CANDIDATE:
    case RAFT_PRE_CANDIDATE:
        step_candidate(r, &local);
        break;
    case RAFT_FOLLOWER:
        step_follower(r, &local);
        break;
    }
    return 0;
}

/* ------------------------------------------------------------ leader flush */

static void send_chunk(raft *r, progress *pr)
{
    if (pr->state != PR_SNAPSHOT)
        return;
    if (pr->snap_index != r->snap.index) {
        pr->snap_index = r->snap.index; /* a newer snapshot replaces the one in flight */
        pr->snap_acked = 0;
    }
    uint64_t off = pr->snap_acked;
    uint64_t rest = r->snap.size - off;
    uint32_t len =
        rest < r->cfg.snapshot_chunk_bytes ? (uint32_t)rest : r->cfg.snapshot_chunk_bytes;
    raft_msg m;
    msg_init(r, &m, RAFT_MSG_SNAPSHOT, pr->id);
    m.log_index = r->snap.index;
    m.log_term = r->snap.term;
    m.offset = off;
    m.len = len;
    m.snapshot_size = r->snap.size;
    m.conf = r->snap.conf;
    m.done = off + len == r->snap.size;
    send_now(r, &m);
    pr->snap_chunk_out = true;
    pr->snap_stall = 0;
    pr->snap_stall_acked = pr->snap_acked;
}

static void pr_become_snapshot(raft *r, progress *pr)
{
    pr->state = PR_SNAPSHOT;
    pr->snap_index = r->snap.index;
    pr->snap_acked = 0;
    pr->snap_chunk_out = false;
    pr->snap_heard_at = r->now;
    pr_inflight_reset(pr);
}

/* Leader: a follower is receiving our current snapshot and answered a chunk
 * within the last two election timeouts. A new snapshot would restart that
 * transfer from offset 0 (send_chunk), so none is asked for meanwhile:
 * otherwise a follower never catches up when a transfer takes longer than
 * the leader needs to apply snapshot_entries entries. */
static bool snapshot_pinned(const raft *r)
{
    if (r->role != RAFT_LEADER)
        return false;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        const progress *pr = &r->prs[i];
        if (pr->state == PR_SNAPSHOT && pr->snap_index == r->snap.index &&
            r->now - pr->snap_heard_at < 2 * (uint64_t)r->cfg.election_ticks)
            return true;
    }
    return false;
}

/* Does the leader owe pr an append (or a chunk)? */
static bool pr_wants_send(const raft *r, const progress *pr)
{
    if (pr->id == r->cfg.id)
        return false;
    if (pr->fetch_pending && pr->state != PR_SNAPSHOT)
        return false; /* its entries are being read back */
    switch (pr->state) {
    case PR_SNAPSHOT:
        return !pr->snap_chunk_out;
    case PR_PROBE:
        return !pr->probe_sent && (pr->next <= last_index(r) || pr->match < last_index(r) ||
                                   pr->sent_commit < r->commit);
    case PR_REPLICATE:
        return pr->inflight_count < pr->window &&
               (pr->next <= last_index(r) || pr->sent_commit < r->commit);
    }
    return false;
}

/* How many of ents (at least one, if any) fit in one append message. */
uint32_t raft_entries_fitting(const raft_entry *ents, uint64_t avail, uint64_t max_bytes)
{
    uint32_t n = 0;
    uint64_t bytes = 0;
    while (n < avail && n < UINT32_MAX) {
        bytes += ents[n].len;
        if (n > 0 && bytes > max_bytes)
            break;
        n++;
    }
    return n;
}

/* Sends pr the entries after prev (n of them, from ents) and accounts for them. */
static void send_append(raft *r, progress *pr, uint64_t prev, const raft_entry *ents, uint32_t n)
{
    raft_msg m;
    msg_init(r, &m, RAFT_MSG_APPEND, pr->id);
    m.log_index = prev;
    m.log_term = term_at(r, prev);
    m.commit = r->commit;
    m.entries = ents;
    m.n_entries = n;
    send_now(r, &m);
    pr->sent_commit = r->commit;
    if (pr->state == PR_REPLICATE) {
        pr_inflight_add(r, pr, prev + n);
        pr->next = prev + n + 1;
    } else {
        pr->probe_sent = true;
    }
}

static void send_appends(raft *r, progress *pr)
{
    while (pr_wants_send(r, pr)) {
        if (pr->state == PR_SNAPSHOT) {
            send_chunk(r, pr);
            return;
        }
        uint64_t prev = pr->next - 1;
        if (pr->next <= r->base_index && pr->next > r->snap.index) {
            /* dropped from memory, still in the caller's log: ask for it */
            raft_fetch f = {.to = pr->id, .from = pr->next, .max_bytes = r->cfg.max_msg_bytes};
            if (grow((void **)&r->fetches, &r->cap_fetches, r->n_fetches + 1, sizeof(raft_fetch)) !=
                0)
                return;
            r->fetches[r->n_fetches++] = f;
            pr->fetch_pending = true;
            pr->fetch_from = pr->next;
            return;
        }
        if (prev < r->base_index || (prev > 0 && term_at(r, prev) == 0)) {
            /* what it needs was compacted: send the snapshot */
            if (r->snap.index == 0)
                return;
            pr_become_snapshot(r, pr);
            continue;
        }
        uint32_t n = 0;
        const raft_entry *ents = NULL;
        if (pr->next <= last_index(r)) {
            ents = entry_at(r, pr->next);
            n = raft_entries_fitting(ents, last_index(r) - pr->next + 1, r->cfg.max_msg_bytes);
        }
        send_append(r, pr, prev, ents, n);
    }
}

int raft_fetched(raft *r, raft_id to, uint64_t from, const raft_entry *ents, uint32_t n)
{
    assert(!r->in_ready);
    progress *pr = r->role == RAFT_LEADER ? pr_get(r, to) : NULL;
    if (!pr || !pr->fetch_pending || pr->fetch_from != from)
        return 0; /* stale */
    pr->fetch_pending = false;
    if (n == 0 || pr->next != from || pr->state == PR_SNAPSHOT ||
        (pr->state == PR_PROBE && pr->probe_sent) ||
        (pr->state == PR_REPLICATE && pr->inflight_count >= pr->window))
        return 0; /* the next flush asks again, or sends a snapshot */
    /* Only the entries dropped from memory are taken (they are applied and durable, so final).
     * Past base_index the log is in memory, and the caller's durable log may still hold older
     * entries there that a batch not yet synced replaces. */
    if (from > r->base_index)
        return 0;
    if (from + n - 1 > r->base_index)
        n = (uint32_t)(r->base_index - from + 1);
    for (uint32_t i = 0; i < n; i++) {
        if (ents[i].index != from + i || ents[i].term != term_at(r, from + i) ||
            (ents[i].len > 0 && !ents[i].data))
            return RAFT_EINVAL;
    }
    uint32_t k = raft_entries_fitting(ents, n, r->cfg.max_msg_bytes);
    raft_entry *copy = scratch_entries(r, ents, k);
    if (!copy)
        return RAFT_ENOMEM;
    send_append(r, pr, from - 1, copy, k);
    return 0;
}

/* Every heartbeat broadcast is a new read round: an answer to it proves we
 * were still leader when it was sent (confirming the reads queued before). */
static void bcast_heartbeat(raft *r)
{
    r->read_round++;
    r->round_tick[r->read_round % ROUND_TICKS] = r->now + 1;
    r->read_round_needed = false;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        progress *pr = &r->prs[i];
        if (pr->id == r->cfg.id)
            continue;
        raft_msg m;
        msg_init(r, &m, RAFT_MSG_HEARTBEAT, pr->id);
        m.commit = pr->match < r->commit ? pr->match : r->commit;
        m.context = r->read_round;
        send_now(r, &m);
    }
}

static void leader_flush(raft *r)
{
    if (r->read_round_needed) {
        bcast_heartbeat(r);
        reads_advance(r);
    }
    for (uint32_t i = 0; i < r->n_prs; i++)
        send_appends(r, &r->prs[i]);
}

static bool leader_flush_needed(const raft *r)
{
    if (r->read_round_needed)
        return true;
    for (uint32_t i = 0; i < r->n_prs; i++)
        if (pr_wants_send(r, &r->prs[i]))
            return true;
    return false;
}

/* ------------------------------------------------------------------ inputs */

static bool removed(const raft *r)
{
    return r->conf.n_voters > 0 && !raft_conf_is_voter(&r->conf, r->cfg.id) &&
           !raft_conf_is_learner(&r->conf, r->cfg.id);
}

void raft_tick(raft *r)
{
    assert(!r->in_ready);
    r->now++;
    if (r->role != RAFT_LEADER) {
        r->election_elapsed++;
        if (promotable(r) && r->election_elapsed >= r->randomized_timeout) {
            r->election_elapsed = 0;
            campaign(r, false);
        }
        return;
    }
    r->heartbeat_elapsed++;
    r->election_elapsed++;
    prs_drop_left(r, false);
    if (r->transferee != 0 && ++r->transfer_elapsed >= r->cfg.election_ticks)
        abort_transfer(r);
    if (r->election_elapsed >= r->cfg.election_ticks) {
        r->election_elapsed = 0;
        if (r->cfg.check_quorum) {
            if (joint_result(r, pred_active, NULL, 0) != VOTE_WON) {
                become_follower(r, r->term, 0);
                return;
            }
            for (uint32_t i = 0; i < r->n_prs; i++)
                if (r->prs[i].id != r->cfg.id)
                    r->prs[i].recent_active = false;
        }
    }
    if (r->heartbeat_elapsed >= r->cfg.heartbeat_ticks) {
        r->heartbeat_elapsed = 0;
        bcast_heartbeat(r);
        reads_advance(r); /* a single voter confirms its own rounds */
    }
}

static int propose_check(raft *r, uint32_t len)
{
    if (removed(r))
        return RAFT_ESTOPPED;
    if (len > r->cfg.max_entry_bytes)
        return RAFT_ETOOLARGE;
    if (r->role == RAFT_LEADER) {
        if (r->transferee != 0)
            return RAFT_ETRANSFER;
        if (r->uncommitted_bytes > 0 && r->uncommitted_bytes + len > r->cfg.max_uncommitted_bytes)
            return RAFT_EBUSY;
        return 0;
    }
    return r->lead == 0 ? RAFT_ENOLEADER : 0;
}

static int propose_entries(raft *r, const raft_entry *ents, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (ents[i].type != RAFT_ENTRY_NORMAL)
            return RAFT_EINVAL;
        int rc = propose_check(r, ents[i].len);
        if (rc != 0)
            return rc;
        rc = leader_append(r, RAFT_ENTRY_NORMAL, ents[i].data, ents[i].len);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int raft_propose(raft *r, const uint8_t *data, uint32_t len)
{
    assert(!r->in_ready);
    int rc = propose_check(r, len);
    if (rc != 0)
        return rc;
    if (r->role == RAFT_LEADER)
        return leader_append(r, RAFT_ENTRY_NORMAL, data, len);
    raft_entry e = {.type = RAFT_ENTRY_NORMAL, .len = len, .data = data};
    raft_entry *copy = scratch_entries(r, &e, 1);
    if (!copy)
        return RAFT_ENOMEM;
    raft_msg m;
    msg_init(r, &m, RAFT_MSG_PROPOSE, r->lead);
    m.entries = copy;
    m.n_entries = 1;
    send_now(r, &m);
    return 0;
}

static bool same_set(const raft_id *a, uint32_t na, const raft_id *b, uint32_t nb)
{
    if (na != nb)
        return false;
    for (uint32_t i = 0; i < na; i++)
        if (!ids_contain(b, nb, a[i]))
            return false;
    return true;
}

int raft_propose_conf(raft *r, const raft_conf *target)
{
    assert(!r->in_ready);
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    if (r->transferee != 0)
        return RAFT_ETRANSFER;
    if (r->pending_conf_index > r->commit || r->conf_waiting != 0 || raft_conf_is_joint(&r->conf))
        return RAFT_ECONFPENDING;
    if (!conf_valid(target) || target->n_voters == 0 || target->n_voters_out != 0)
        return RAFT_EINVAL;
    const raft_conf *cur = &r->conf;
    for (uint32_t i = 0; i < target->n_learners; i++)
        if (ids_contain(cur->voters, cur->n_voters, target->learners[i]))
            return RAFT_EINVAL; /* demote by removing, then adding as learner */
    bool voters_same = same_set(cur->voters, cur->n_voters, target->voters, target->n_voters);
    if (voters_same &&
        same_set(cur->learners, cur->n_learners, target->learners, target->n_learners))
        return RAFT_EINVAL; /* nothing changes */
    if (voters_same)
        return append_conf_entry(r, target); /* learners only: no joint phase needed */
    raft_conf joint = *target;
    memcpy(joint.voters_out, cur->voters, sizeof(raft_id) * cur->n_voters);
    joint.n_voters_out = cur->n_voters;
    if (!conf_valid(&joint))
        return RAFT_EINVAL;
    return append_conf_entry(r, &joint);
}

int raft_read_index(raft *r, uint64_t context)
{
    assert(!r->in_ready);
    if (r->role == RAFT_LEADER)
        return leader_read(r, 0, context);
    if (r->lead == 0)
        return RAFT_ENOLEADER;
    if (r->n_fwd_reads >= r->cfg.max_pending_reads)
        return RAFT_EBUSY;
    PUSH(r, r->fwd_reads, r->n_fwd_reads, r->cap_fwd_reads, context);
    raft_msg m;
    msg_init(r, &m, RAFT_MSG_READ_INDEX, r->lead);
    m.context = context;
    send_now(r, &m);
    return 0;
}

int raft_transfer_leader(raft *r, raft_id target)
{
    assert(!r->in_ready);
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    if (target == r->cfg.id)
        return 0;
    progress *pr = pr_get(r, target);
    if (!pr || !raft_conf_is_voter(&r->conf, target))
        return RAFT_ENOTVOTER;
    if (r->transferee == target)
        return 0;
    r->transferee = target;
    r->transfer_elapsed = 0;
    if (pr->match == last_index(r))
        send_timeout_now(r, target);
    return 0;
}

void raft_campaign(raft *r)
{
    assert(!r->in_ready);
    if (r->role == RAFT_LEADER)
        return;
    /* With lease reads, a member that may have answered the leader's heartbeats within the
     * last election timeout has promised not to help elect another leader for that long: the
     * leader answers reads from that promise. A campaign would drop the leader it knows, and
     * with it the refusal of other members' (pre-)votes, besides voting for itself. */
    if (r->cfg.read_mode == RAFT_READ_LEASE && in_lease(r))
        return;
    campaign(r, false);
}

int raft_snapshot_taken(raft *r, uint64_t index, uint64_t size)
{
    assert(!r->in_ready);
    if (index > r->applied || index < r->snap.index || (index > 0 && term_at(r, index) == 0))
        return RAFT_EINVAL;
    raft_snapshot_meta s = {.index = index, .term = term_at(r, index), .size = size};
    s.conf = *conf_at(r, index);
    r->snap = s;
    uint32_t keep = 0;
    for (uint32_t i = 0; i < r->n_hist; i++)
        if (r->hist[i].index > index)
            r->hist[keep++] = r->hist[i];
    r->n_hist = keep;
    uint64_t upto = index > r->cfg.trailing_entries ? index - r->cfg.trailing_entries : 0;
    log_compact(r, upto);
    runs_prune(r);
    return 0;
}

void raft_report_unreachable(raft *r, raft_id to)
{
    assert(!r->in_ready);
    if (r->role != RAFT_LEADER)
        return;
    progress *pr = pr_get(r, to);
    if (pr && pr->state == PR_REPLICATE)
        pr_become_probe(r, pr);
}

/* ---------------------------------------------------------------- batches */

/* Entries are applied once durable here and committed; a configuration entry only once it
 * has taken effect, so that the state machine (and a snapshot of it) never runs ahead of the
 * configuration. */
static uint64_t apply_limit(const raft *r)
{
    if (r->apply_held)
        return r->applied;
    uint64_t lim = r->commit < r->persisted ? r->commit : r->persisted;
    if (r->conf_waiting != 0 && r->conf_waiting <= lim)
        lim = r->conf_waiting - 1;
    return lim;
}

static bool hs_equal(const raft_hard_state *a, const raft_hard_state *b)
{
    return a->term == b->term && a->vote == b->vote && a->commit == b->commit;
}

bool raft_snapshot_pending(const raft *r)
{
    return r->have_chunk || r->install_pending;
}

void raft_set_apply_held(raft *r, bool held)
{
    r->apply_held = held;
}

bool raft_has_ready(const raft *r)
{
    raft_hard_state hs = {r->term, r->vote, r->commit};
    if (!hs_equal(&hs, &r->reported_hs) || r->unstable_from <= last_index(r) || r->have_chunk ||
        r->install_pending || r->n_out > 0 || r->n_pend_held > 0 || r->n_ready_reads > 0 ||
        r->n_failed_reads > 0 || r->lead != r->reported_lead ||
        r->conf_version != r->reported_conf_version || r->applied < apply_limit(r) ||
        r->n_fetches > 0)
        return true;
    return r->role == RAFT_LEADER && leader_flush_needed(r);
}

void raft_ready(raft *r, struct raft_ready *rd)
{
    assert(!r->in_ready);
    if (r->role == RAFT_LEADER)
        leader_flush(r);
    memset(rd, 0, sizeof(*rd));
    rd->seq = ++r->next_seq;

    raft_hard_state hs = {r->term, r->vote, r->commit};
    if (!hs_equal(&hs, &r->reported_hs)) {
        rd->hard_state_changed = true;
        rd->hard_state = hs;
    }
    if (r->unstable_from <= last_index(r)) {
        assert(r->unstable_from > r->base_index);
        rd->entries = entry_at(r, r->unstable_from);
        rd->n_entries = (uint32_t)(last_index(r) - r->unstable_from + 1);
    }
    /* A commit index alone need not be synced, unless it commits a configuration entry: that
     * takes effect only once its commit is durable (conf_take_effect). */
    rd->must_sync = rd->n_entries > 0 || hs.term != r->reported_hs.term ||
                    hs.vote != r->reported_hs.vote ||
                    (r->conf_waiting != 0 && hs.commit >= r->conf_waiting);
    if (r->have_chunk) {
        rd->snapshot_chunk = r->chunk;
        rd->snapshot_chunk_len = r->chunk_len;
        rd->snapshot_chunk_offset = r->chunk_offset;
        rd->snapshot_chunk_index = r->chunk_index;
    }
    if (r->install_pending)
        rd->snapshot = &r->install;

    bool persisting = rd->must_sync || r->have_chunk || r->install_pending;
    if (persisting) {
        batch_rec b = {.seq = rd->seq, .self_vote = r->self_vote_pending, .term = r->term};
        if (rd->hard_state_changed && rd->must_sync)
            b.commit = hs.commit; /* (an unsynced one may be lost: it proves nothing) */
        if (rd->n_entries > 0) {
            b.last_index = last_index(r);
            b.last_term = last_term(r);
        }
        if (r->install_pending)
            b.snap_index = r->install.index;
        PUSH(r, r->batches, r->n_batches, r->cap_batches, b);
        r->self_vote_pending = false;
    }
    assert(!r->self_vote_pending);
    uint64_t bind =
        persisting ? rd->seq : (r->n_batches > 0 ? r->batches[r->n_batches - 1].seq : 0);
    for (uint32_t i = 0; i < r->n_pend_held; i++) {
        if (bind == 0) {
            send_now(r, &r->pend_held[i].m);
        } else {
            r->pend_held[i].seq = bind;
            PUSH(r, r->held, r->n_held, r->cap_held, r->pend_held[i]);
        }
    }
    r->n_pend_held = 0;

    rd->messages = r->out;
    rd->n_messages = r->n_out;

    uint64_t lim = apply_limit(r);
    if (r->applied < lim) {
        rd->committed = entry_at(r, r->applied + 1);
        rd->n_committed = (uint32_t)(lim - r->applied);
    }
    rd->fetches = r->fetches;
    rd->n_fetches = r->n_fetches;
    rd->reads = r->ready_reads;
    rd->n_reads = r->n_ready_reads;
    rd->failed_reads = r->failed_reads;
    rd->n_failed_reads = r->n_failed_reads;

    uint64_t applied_after = r->applied + rd->n_committed;
    rd->want_snapshot = r->cfg.snapshot_entries > 0 &&
                        applied_after >= r->snap.index + r->cfg.snapshot_entries &&
                        !snapshot_pinned(r);
    rd->leader_changed = r->lead != r->reported_lead;
    rd->leader = r->lead;
    rd->conf_changed = r->conf_version != r->reported_conf_version;
    rd->conf = &r->conf;
    r->in_ready = true;
    r->last_rd = *rd;
}

void raft_advance(raft *r, const struct raft_ready *rd)
{
    assert(r->in_ready);
    assert(rd->seq == r->last_rd.seq);
    r->in_ready = false;
    if (rd->hard_state_changed)
        r->reported_hs = rd->hard_state;
    if (rd->n_entries > 0)
        r->unstable_from = rd->entries[rd->n_entries - 1].index + 1;
    r->have_chunk = false;
    r->install_pending = false;
    if (rd->n_committed > 0)
        r->applied = rd->committed[rd->n_committed - 1].index;
    r->n_out = 0;
    r->n_ready_reads = 0;
    r->n_failed_reads = 0;
    r->reported_lead = rd->leader;
    if (rd->conf_changed)
        r->reported_conf_version = r->conf_version;
    for (uint32_t i = 0; i < r->n_scratch; i++)
        free(r->scratch[i]);
    r->n_scratch = 0;
    r->n_fetches = 0;
    log_trim(r);
}

void raft_persisted(raft *r, uint64_t seq)
{
    assert(!r->in_ready);
    if (seq <= r->persisted_seq)
        return;
    r->persisted_seq = seq;
    uint32_t done = 0;
    for (; done < r->n_batches && r->batches[done].seq <= seq; done++) {
        batch_rec *b = &r->batches[done];
        if (b->snap_index != 0 && b->snap_index == r->snap.index && r->persisted < b->snap_index)
            r->persisted = b->snap_index;
        if (b->last_index != 0 && b->last_index > r->persisted &&
            term_at(r, b->last_index) == b->last_term)
            r->persisted = b->last_index;
        if (b->commit != 0)
            conf_take_effect(r, b->commit);
        if (b->self_vote && r->role == RAFT_CANDIDATE && r->vote == r->cfg.id &&
            r->term == b->term) {
            progress *self = pr_get(r, r->cfg.id);
            if (self && !self->vote_answered) {
                self->vote_answered = self->vote_granted = true;
                tally(r);
            }
        }
    }
    if (done > 0) { /* (batches may still be NULL: no memmove on it) */
        memmove(r->batches, r->batches + done, (r->n_batches - done) * sizeof(batch_rec));
        r->n_batches -= done;
    }

    uint32_t keep = 0;
    for (uint32_t i = 0; i < r->n_held; i++) {
        if (r->held[i].seq <= seq)
            send_now(r, &r->held[i].m);
        else
            r->held[keep++] = r->held[i];
    }
    r->n_held = keep;

    if (r->role == RAFT_LEADER) {
        progress *self = pr_get(r, r->cfg.id);
        if (self && r->persisted > self->match) {
            self->match = r->persisted;
            maybe_commit(r);
        }
    }
}

/* --------------------------------------------------------------- lifecycle */

static raft *fail_new(raft *r, char *err, size_t errlen, const char *why)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", why);
    raft_free(r);
    return NULL;
}

raft *raft_new(const raft_config *cfg, const raft_conf *bootstrap, const raft_restore *rs,
               char *err, size_t errlen)
{
    if (cfg->id == 0)
        return fail_new(NULL, err, errlen, "member id must be non-zero");
    if (cfg->election_ticks == 0 || cfg->heartbeat_ticks == 0 ||
        cfg->heartbeat_ticks >= cfg->election_ticks)
        return fail_new(NULL, err, errlen, "need 0 < heartbeat_ticks < election_ticks");
    if (cfg->max_inflight_msgs == 0 || cfg->snapshot_chunk_bytes == 0 || cfg->max_msg_bytes == 0)
        return fail_new(NULL, err, errlen, "inflight window, message and chunk sizes must be > 0");
    if (cfg->read_mode == RAFT_READ_LEASE && !cfg->check_quorum)
        return fail_new(NULL, err, errlen, "lease-based reads require check_quorum");
    raft *r = calloc(1, sizeof(*r));
    if (!r)
        return fail_new(NULL, err, errlen, "out of memory");
    r->cfg = *cfg;
    r->rng = cfg->seed ^ (cfg->id * 0x9e3779b97f4a7c15ull);
    raft_restore empty = {0};
    if (!rs)
        rs = &empty;

    if (rs->snapshot) {
        if (!conf_valid(&rs->snapshot->conf) || rs->snapshot->index == 0)
            return fail_new(r, err, errlen, "invalid snapshot metadata");
        r->snap = *rs->snapshot;
        r->base_index = r->snap.index;
        r->base_term = r->snap.term;
        r->conf = r->snap.conf;
    }
    uint64_t commit = rs->hard_state.commit;
    if (commit < r->snap.index)
        commit = r->snap.index;
    if (rs->applied > commit)
        commit = rs->applied; /* the state machine applied it, so it was committed */
    /* Every restored entry is durable, and those up to rs->applied are applied: past
     * cfg.log_mem_bytes they leave memory as they come (log_trim), so a restart holds no
     * more of the log than a running member. Committed configurations take effect as they
     * come, before their entries may leave. */
    r->applied = rs->applied;
    r->persisted = UINT64_MAX;
    if (rs->unloaded_through > rs->applied)
        return fail_new(r, err, errlen, "restored entries without data are not applied");
    for (uint32_t i = 0; i < rs->n_entries; i++) {
        const raft_entry *e = &rs->entries[i];
        if (e->index != last_index(r) + 1 || e->term < last_term(r) || e->type > RAFT_ENTRY_CONF)
            return fail_new(r, err, errlen, "restored log is not contiguous");
        if (e->index <= rs->unloaded_through) {
            /* on disk only: out of memory from the start, as log_trim leaves entries */
            if (runs_note(r, e->index, e->term) != 0)
                return fail_new(r, err, errlen, "out of memory");
            r->base_index = e->index;
            r->base_term = e->term;
        } else if (log_append(r, e->term, e->type, e->data, e->len) != 0) {
            return fail_new(r, err, errlen, "out of memory");
        }
        if (e->index <= commit && e->type == RAFT_ENTRY_CONF) {
            raft_conf c;
            if (raft_conf_decode(&c, e->data, e->len) != 0)
                return fail_new(r, err, errlen, "corrupt configuration entry in the log");
            r->conf = c;
            conf_hist_push(r, e->index, &c);
        }
        log_trim(r);
    }
    r->term = rs->hard_state.term;
    r->vote = rs->hard_state.vote;
    if (last_term(r) > r->term) {
        /* A crash kept a batch's entries but not the hard state written after
         * them (a torn write). No vote of that term can have left: votes go
         * out only once the hard state holding them is durable. So adopt the
         * log's term with no vote. */
        r->term = last_term(r);
        r->vote = 0;
    }
    if (commit > last_index(r))
        return fail_new(r, err, errlen, "commit index beyond the restored log");
    if (rs->applied < r->snap.index)
        return fail_new(r, err, errlen, "state machine is behind its snapshot");
    r->persisted = last_index(r);
    r->unstable_from = last_index(r) + 1;
    r->applied = rs->applied;

    bool fresh = rs->hard_state.term == 0 && !rs->snapshot && rs->n_entries == 0;
    if (fresh && bootstrap) {
        if (!conf_valid(bootstrap) || bootstrap->n_voters == 0 || bootstrap->n_voters_out != 0)
            return fail_new(r, err, errlen, "invalid bootstrap configuration");
        uint8_t buf[4 + 8 * 3 * RAFT_MAX_MEMBERS];
        size_t n = raft_conf_encode(bootstrap, buf);
        if (log_append(r, 1, RAFT_ENTRY_CONF, buf, (uint32_t)n) != 0)
            return fail_new(r, err, errlen, "out of memory");
        r->term = 1;
        r->persisted = 0;
        r->unstable_from = 1;
        commit = 1; /* every founding member holds the same entry 1 */
        if (raft_conf_decode(&r->conf, buf, n) != 0) /* as a restart would read it */
            return fail_new(r, err, errlen, "invalid bootstrap configuration");
        conf_hist_push(r, 1, &r->conf);
    }
    r->commit = commit;
    r->conf_durable = commit;
    r->conf_version = 1;
    r->role = RAFT_FOLLOWER;
    reset_randomized_timeout(r);
    prs_sync(r);
    return r;
}

void raft_free(raft *r)
{
    if (!r)
        return;
    for (uint32_t i = 0; i < r->n_ents; i++)
        free_entry(&r->ents[i]);
    free(r->ents);
    for (uint32_t i = 0; i < r->n_prs; i++)
        free(r->prs[i].inflight);
    for (uint32_t i = 0; i < r->n_scratch; i++)
        free(r->scratch[i]);
    free(r->scratch);
    free(r->runs);
    free(r->fetches);
    free(r->hist);
    free(r->out);
    free(r->held);
    free(r->pend_held);
    free(r->batches);
    free(r->reads);
    free(r->ready_reads);
    free(r->failed_reads);
    free(r->fwd_reads);
    free(r->chunk);
    free(r);
}

/* ----------------------------------------------------------------- queries */

void raft_get_status(const raft *r, raft_status *st)
{
    memset(st, 0, sizeof(*st));
    st->id = r->cfg.id;
    st->role = r->role;
    st->leader = r->lead;
    st->term = r->term;
    st->vote = r->vote;
    st->commit = r->commit;
    st->applied = r->applied;
    st->persisted = r->persisted;
    st->first_index = r->base_index + 1;
    st->last_index = last_index(r);
    st->snapshot_index = r->snap.index;
    st->snapshot_term = r->snap.term;
    st->snapshot_size = r->snap.size;
    st->transferee = r->transferee;
    st->removed = removed(r);
}

const raft_conf *raft_get_conf(const raft *r)
{
    return &r->conf;
}

raft_id raft_leader(const raft *r)
{
    return r->lead;
}

uint64_t raft_term(const raft *r)
{
    return r->term;
}

uint64_t raft_apply_gap(const raft *r)
{
    return r->commit > r->applied ? r->commit - r->applied : 0;
}

uint64_t raft_log_term(const raft *r, uint64_t index)
{
    return term_at(r, index);
}

int raft_log_entry(const raft *r, uint64_t index, const raft_entry **e)
{
    if (index <= r->base_index)
        return RAFT_ECOMPACTED;
    const raft_entry *x = entry_at(r, index);
    if (!x)
        return RAFT_EINVAL;
    *e = x;
    return 0;
}

bool raft_is_tracking(const raft *r, raft_id id)
{
    if (r->role != RAFT_LEADER)
        return false;
    for (uint32_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].id == id)
            return true;
    return false;
}

uint64_t raft_match_index(const raft *r, raft_id id)
{
    if (r->role != RAFT_LEADER)
        return 0;
    for (uint32_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].id == id)
            return r->prs[i].match;
    return 0;
}
