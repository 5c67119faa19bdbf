/*
 * sim_check.c: the safety properties, checked from outside the members
 * after every event:
 *   election safety      at most one leader per term;
 *   log matching         logs that agree on the term at an index agree on
 *                        every entry up to it (checked on each write of
 *                        entries against every other member, and over all
 *                        pairs of whole logs once a simulated second);
 *   leader completeness  an entry applied by anyone (so committed, in the
 *                        applier's term or earlier) is in the log of every
 *                        leader of a later term;
 *   state machine safety no two members apply different entries (or reach
 *                        different states) at one index; a member applies
 *                        indexes in order, each once, only once durable
 *                        locally; an installed snapshot equals the state
 *                        others reached at its index;
 *   commit monotonicity  a member's commit index never goes back while it
 *                        lives, nor below what was durable across restarts.
 * Linearizability of the clients' history is checked at the end
 * (sim_client.c). The first violation stops the run.
 */
#include "sim/sim.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void sim_fail(sim *s, const char *prop, const char *fmt, ...)
{
    if (s->failed)
        return;
    s->failed = true;
    snprintf(s->fail_prop, sizeof(s->fail_prop), "%s", prop);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->fail_detail, sizeof(s->fail_detail), fmt, ap);
    va_end(ap);
    sim_trace_text(s, "VIOLATION %s: %s", s->fail_prop, s->fail_detail);
}

void sim_check_init(sim *s)
{
    s->term_leader = NULL;
    s->cap_term_leader = 0;
    s->applied = NULL;
    s->cap_applied = 0;
    s->max_applied = 0;
}

void sim_check_free(sim *s)
{
    free(s->term_leader);
    free(s->applied);
    s->term_leader = NULL;
    s->applied = NULL;
}

static void *grow_zero(void *arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return arr;
    size_t ncap = *cap ? *cap : 256;
    while (ncap < need)
        ncap *= 2;
    uint8_t *p = realloc(arr, ncap * size);
    if (!p)
        abort();
    memset(p + *cap * size, 0, (ncap - *cap) * size);
    *cap = ncap;
    return p;
}

uint64_t sim_entry_hash(const raft_entry *e)
{
    uint64_t h = sim_fnv_u64(SIM_FNV_INIT, e->type);
    h = sim_fnv_u64(h, e->len);
    if (e->len > 0)
        h = sim_fnv(h, e->data, e->len);
    return h;
}

static sim_applied *applied_at(sim *s, uint64_t index)
{
    s->applied = grow_zero(s->applied, &s->cap_applied, index + 1, sizeof(sim_applied));
    return &s->applied[index];
}

void sim_check_apply(sim *s, sim_member *mb, const raft_entry *e, uint64_t term_now)
{
    sim_applied *a = applied_at(s, e->index);
    uint64_t dh = sim_entry_hash(e);
    if (!a->set) {
        a->set = true;
        a->type = e->type;
        a->term = e->term;
        a->data_hash = dh;
        a->state_hash = mb->kv_hash;
        a->commit_by_term = term_now;
        if (e->index > s->max_applied)
            s->max_applied = e->index;
        return;
    }
    if (a->term != e->term || a->data_hash != dh || a->type != e->type) {
        sim_fail(s, "state-machine-safety",
                 "member %llu applies at index %llu an entry of term %llu (type %u, hash %016llx); "
                 "another member applied one of term %llu (type %u, hash %016llx) there",
                 (unsigned long long)mb->id, (unsigned long long)e->index,
                 (unsigned long long)e->term, e->type, (unsigned long long)dh,
                 (unsigned long long)a->term, a->type, (unsigned long long)a->data_hash);
        return;
    }
    if (a->state_hash != mb->kv_hash) {
        sim_fail(s, "state-machine-safety",
                 "member %llu reaches state %016llx after index %llu; another member reached "
                 "%016llx",
                 (unsigned long long)mb->id, (unsigned long long)mb->kv_hash,
                 (unsigned long long)e->index, (unsigned long long)a->state_hash);
        return;
    }
    if (term_now < a->commit_by_term)
        a->commit_by_term = term_now;
}

void sim_check_snapshot_install(sim *s, sim_member *mb, uint64_t index, uint64_t term,
                                uint64_t state_hash)
{
    if (index >= s->cap_applied || !s->applied[index].set) {
        sim_fail(s, "snapshot", "member %llu installs a snapshot at index %llu that nobody applied",
                 (unsigned long long)mb->id, (unsigned long long)index);
        return;
    }
    const sim_applied *a = &s->applied[index];
    if (a->term != term || a->state_hash != state_hash)
        sim_fail(s, "snapshot",
                 "member %llu installs a snapshot at index %llu (term %llu, state %016llx); the "
                 "applied entry there has term %llu and state %016llx",
                 (unsigned long long)mb->id, (unsigned long long)index, (unsigned long long)term,
                 (unsigned long long)state_hash, (unsigned long long)a->term,
                 (unsigned long long)a->state_hash);
}

/* ------------------------------------------------------------ log matching */

static uint64_t first_index(const sim_member *mb)
{
    return mb->st.first_index > 0 ? mb->st.first_index : 1;
}

/* Compares a and b at index i (both have a term there). Returns false after
 * reporting a violation. */
static bool same_entry(sim *s, const sim_member *a, const sim_member *b, uint64_t i,
                       uint64_t agree_at, uint64_t agree_term)
{
    uint64_t ta = raft_log_term(a->r, i), tb = raft_log_term(b->r, i);
    if (ta != tb) {
        sim_fail(s, "log-matching",
                 "members %llu and %llu hold term %llu at index %llu but differ at index %llu "
                 "(term %llu vs %llu)",
                 (unsigned long long)a->id, (unsigned long long)b->id,
                 (unsigned long long)agree_term, (unsigned long long)agree_at,
                 (unsigned long long)i, (unsigned long long)ta, (unsigned long long)tb);
        return false;
    }
    const raft_entry *ea, *eb;
    if (raft_log_entry(a->r, i, &ea) != 0 || raft_log_entry(b->r, i, &eb) != 0)
        return true; /* only the term is known (snapshot boundary) */
    if (ea->type != eb->type || sim_entry_hash(ea) != sim_entry_hash(eb)) {
        sim_fail(s, "log-matching",
                 "members %llu and %llu hold different entries of term %llu at index %llu",
                 (unsigned long long)a->id, (unsigned long long)b->id, (unsigned long long)ta,
                 (unsigned long long)i);
        return false;
    }
    return true;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

void sim_check_log_range(sim *s, sim_member *mb, uint64_t from, uint64_t to)
{
    if (s->failed || mb->state != SIM_SLOT_UP)
        return;
    raft_get_status(mb->r, &mb->st);
    for (uint32_t k = 0; k < s->n_slots; k++) {
        sim_member *p = &s->m[k];
        if (p == mb || p->state != SIM_SLOT_UP)
            continue;
        raft_get_status(p->r, &p->st);
        uint64_t hi = to < p->st.last_index ? to : p->st.last_index;
        uint64_t j = 0, tj = 0;
        for (uint64_t i = hi; i >= from && i > 0; i--) {
            uint64_t tm = raft_log_term(mb->r, i);
            if (tm != 0 && tm == raft_log_term(p->r, i)) {
                j = i;
                tj = tm;
                break;
            }
        }
        if (j == 0)
            continue;
        uint64_t lo = max_u64(from > 1 ? from - 1 : 1, max_u64(first_index(mb), first_index(p)));
        for (uint64_t i = j; i >= lo && i > 0; i--) {
            if (raft_log_term(mb->r, i) == 0 || raft_log_term(p->r, i) == 0)
                break;
            if (!same_entry(s, mb, p, i, j, tj))
                return;
        }
    }
}

void sim_check_all_logs(sim *s)
{
    for (uint32_t a = 0; a < s->n_slots && !s->failed; a++) {
        sim_member *x = &s->m[a];
        if (x->state != SIM_SLOT_UP)
            continue;
        raft_get_status(x->r, &x->st);
        for (uint32_t b = a + 1; b < s->n_slots && !s->failed; b++) {
            sim_member *y = &s->m[b];
            if (y->state != SIM_SLOT_UP)
                continue;
            raft_get_status(y->r, &y->st);
            uint64_t hi = x->st.last_index < y->st.last_index ? x->st.last_index : y->st.last_index;
            uint64_t lo = max_u64(first_index(x), first_index(y));
            uint64_t j = 0, tj = 0;
            for (uint64_t i = hi; i >= lo && i > 0; i--) {
                uint64_t tx = raft_log_term(x->r, i);
                if (j == 0) {
                    if (tx != 0 && tx == raft_log_term(y->r, i)) {
                        j = i;
                        tj = tx;
                    }
                    continue;
                }
                if (!same_entry(s, x, y, i, j, tj))
                    return;
            }
        }
    }
}

/* ----------------------------------------------------- leader completeness */

static void check_leader_completeness(sim *s, sim_member *mb)
{
    const raft_status *st = &mb->st;
    uint64_t from = max_u64(first_index(mb), st->snapshot_index + 1);
    for (uint64_t i = from; i <= s->max_applied; i++) {
        const sim_applied *a = &s->applied[i];
        if (!a->set || a->commit_by_term >= st->term)
            continue;
        const raft_entry *e;
        if (raft_log_entry(mb->r, i, &e) != 0) {
            sim_fail(s, "leader-completeness",
                     "member %llu became leader of term %llu without index %llu (term %llu, "
                     "committed by term %llu); its log ends at %llu",
                     (unsigned long long)mb->id, (unsigned long long)st->term,
                     (unsigned long long)i, (unsigned long long)a->term,
                     (unsigned long long)a->commit_by_term, (unsigned long long)st->last_index);
            return;
        }
        if (e->term != a->term || sim_entry_hash(e) != a->data_hash) {
            sim_fail(s, "leader-completeness",
                     "member %llu became leader of term %llu with a different entry at index %llu "
                     "(term %llu) than the committed one (term %llu, committed by term %llu)",
                     (unsigned long long)mb->id, (unsigned long long)st->term,
                     (unsigned long long)i, (unsigned long long)e->term,
                     (unsigned long long)a->term, (unsigned long long)a->commit_by_term);
            return;
        }
    }
}

/* ------------------------------------------------------------ after events */

void sim_check_after_event(sim *s)
{
    for (uint32_t k = 0; k < s->n_slots && !s->failed; k++) {
        sim_member *mb = &s->m[k];
        if (mb->state != SIM_SLOT_UP)
            continue;
        raft_get_status(mb->r, &mb->st);
        const raft_status *st = &mb->st;
        if (st->term > s->max_term_seen)
            s->max_term_seen = st->term;
        if (st->role == RAFT_LEADER) {
            if (st->term >= SIM_MAX_TERM) {
                sim_fail(s, "term", "term %llu is beyond what the checker tracks",
                         (unsigned long long)st->term);
                return;
            }
            s->term_leader =
                grow_zero(s->term_leader, &s->cap_term_leader, st->term + 1, sizeof(raft_id));
            raft_id *l = &s->term_leader[st->term];
            if (*l == 0) {
                *l = st->id;
                s->st.elections++;
                sim_trace(s, "elected", k, st->id, st->term, st->last_index);
                check_leader_completeness(s, mb);
                sim_nemesis_on_elected(s, mb);
            } else if (*l != st->id) {
                sim_fail(s, "election-safety", "two leaders in term %llu: members %llu and %llu",
                         (unsigned long long)st->term, (unsigned long long)*l,
                         (unsigned long long)st->id);
                return;
            }
        }
        if (mb->isolate_on_commit && st->commit > mb->isolate_commit_base) {
            mb->isolate_on_commit = false;
            if (st->role == RAFT_LEADER)
                sim_schedule(s, s->now, SIM_EV_ISOLATE, mb->slot, mb->inc, 0);
        }
        if (st->commit < mb->commit_seen) {
            sim_fail(s, "commit-monotonic",
                     "member %llu's commit index went back from %llu to %llu",
                     (unsigned long long)mb->id, (unsigned long long)mb->commit_seen,
                     (unsigned long long)st->commit);
            return;
        }
        mb->commit_seen = st->commit;
    }
}
