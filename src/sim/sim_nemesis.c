/*
 * sim_nemesis.c: the fault schedule of the safety phase.
 *
 * At random intervals (mean drawn from the seed) one fault is chosen with
 * weights drawn from the seed:
 *   partition    symmetric split, one-way (asymmetric) cut, isolate the
 *                leader (clients keep reading from it), leader in the
 *                minority, bridge (one member sees both sides); healed later
 *   crash        one member (often the leader); restarts later from disk
 *   power        a majority or everyone at once (power loss): everything
 *                unsynced is lost on all of them together
 *   ack-crash    a follower with a slow disk crashes right after it sends an
 *                append acknowledgement; often the leader follows it
 *   pause        a process stall: the member neither ticks nor handles
 *                anything until it resumes (clients keep talking to it)
 *   slow disk    one member's fsyncs take long for a while
 *   membership   add a learner (a fresh machine with a new id), promote it,
 *                add a voter directly, remove a voter (possibly the leader)
 *                or a learner; removed members are shut down and their
 *                machines wiped, and a slot is reused with a new id later
 *   transfer     leadership transfer to a random voter
 *   campaign     two or more members campaign at the same instant
 *   churn        crash or isolate the leader, and the next few leaders within
 *                milliseconds of winning (clients keep writing to the isolated
 *                ones): divergent uncommitted suffixes of many terms (Figure 8)
 */
#include "sim/sim.h"

#include <string.h>

static sim_time fault_duration(sim *s)
{
    return sim_rng_range(&s->rng, s->prof.fault_max_us / 10, s->prof.fault_max_us);
}

sim_member *sim_find_leader(sim *s)
{
    sim_member *best = NULL;
    for (uint32_t k = 0; k < s->n_slots; k++) {
        sim_member *mb = &s->m[k];
        if (mb->state != SIM_SLOT_UP)
            continue;
        raft_get_status(mb->r, &mb->st);
        if (mb->st.role == RAFT_LEADER && (!best || mb->st.term > best->st.term))
            best = mb;
    }
    return best;
}

static uint32_t hosted_slots(sim *s, uint32_t *out, bool up_only)
{
    uint32_t n = 0;
    for (uint32_t k = 0; k < s->n_slots; k++)
        if (up_only ? s->m[k].state == SIM_SLOT_UP : s->m[k].state != SIM_SLOT_EMPTY)
            out[n++] = k;
    return n;
}

static void shuffle(sim *s, uint32_t *a, uint32_t n)
{
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = (uint32_t)sim_rng_below(&s->rng, i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

static void schedule_restart(sim *s, sim_member *mb, sim_time lo)
{
    sim_time at = s->now + lo + sim_rng_range(&s->rng, SIM_MS, s->prof.restart_max_us);
    sim_schedule(s, at, SIM_EV_RESTART, mb->slot, mb->inc, 0);
}

static void crash_and_restart(sim *s, sim_member *mb, const char *why)
{
    if (mb->state != SIM_SLOT_UP)
        return;
    sim_member_crash(s, mb, why);
    schedule_restart(s, mb, 0);
}

void sim_nemesis_crash_event(sim *s, uint32_t slot, uint32_t inc)
{
    sim_member *mb = &s->m[slot];
    if (s->phase != SIM_PHASE_SAFETY || mb->state != SIM_SLOT_UP || mb->inc != inc)
        return;
    crash_and_restart(s, mb, "scheduled");
}

/* ------------------------------------------------------------ partitions */

static void partition(sim *s)
{
    uint32_t slots[SIM_MAX_NODES];
    uint32_t n = hosted_slots(s, slots, false);
    if (n < 2)
        return;
    sim_net_heal(s);
    s->stale_leader_reads = false;
    shuffle(s, slots, n);
    sim_member *leader = sim_find_leader(s);
    bool side[SIM_MAX_NODES] = {false}; /* true: side A */
    bool bridge_on = false;
    uint32_t bridge = 0;
    uint32_t kind = (uint32_t)sim_rng_below(&s->rng, 5);
    bool one_way = false;
    switch (kind) {
    case 0: /* symmetric split */
    case 1: /* asymmetric: A cannot reach B, B still reaches A */
    {
        uint32_t na = (uint32_t)sim_rng_range(&s->rng, 1, n - 1);
        for (uint32_t i = 0; i < na; i++)
            side[slots[i]] = true;
        one_way = kind == 1;
        break;
    }
    case 2: /* isolate the leader */
    {
        uint32_t l = leader ? leader->slot : slots[0];
        side[l] = true;
        if (leader && sim_rng_chance(&s->rng, 700000)) {
            s->stale_leader_reads = true;
            s->stale_leader_slot = l;
        }
        if (sim_rng_chance(&s->rng, 300000))
            one_way = true; /* the leader hears others but cannot reach them */
        break;
    }
    case 3: /* the leader with a minority */
    {
        uint32_t size_a = (n - 1) / 2 > 0 ? (n - 1) / 2 : 1;
        uint32_t l = leader ? leader->slot : slots[0];
        side[l] = true;
        uint32_t added = 1;
        for (uint32_t i = 0; i < n && added < size_a; i++)
            if (slots[i] != l) {
                side[slots[i]] = true;
                added++;
            }
        break;
    }
    default: /* bridge: one member sees both halves */
        if (n < 3)
            return;
        bridge = slots[0];
        bridge_on = true;
        for (uint32_t i = 1; i < n; i++)
            side[slots[i]] = (i % 2) == 1;
        break;
    }
    for (uint32_t a = 0; a < s->n_slots; a++)
        for (uint32_t b = 0; b < s->n_slots; b++) {
            if (a == b || side[a] == side[b])
                continue;
            if (bridge_on && (a == bridge || b == bridge))
                continue;
            if (one_way && !side[a])
                continue; /* only A -> B is cut */
            s->cut[a][b] = true;
        }
    s->partitioned = true;
    s->part_gen++;
    uint64_t mask = 0;
    for (uint32_t k = 0; k < s->n_slots; k++)
        mask |= (uint64_t)side[k] << k;
    sim_trace(s, "partition", kind, mask, one_way | ((uint64_t)bridge_on << 1), bridge);
    sim_trace_text(s, "partition kind %u sideA=%#llx one_way=%d bridge=%d(n%u) stale_reads=%d",
                   kind, (unsigned long long)mask, one_way, bridge_on, bridge,
                   s->stale_leader_reads);
    sim_schedule(s, s->now + fault_duration(s), SIM_EV_HEAL, 0, 0, s->part_gen);
}

void sim_nemesis_heal(sim *s, uint64_t gen)
{
    if (gen != s->part_gen || !s->partitioned)
        return;
    sim_net_heal(s);
    s->stale_leader_reads = false;
    sim_trace(s, "heal", 0, gen, 0, 0);
}

/* ----------------------------------------------------------------- crashes */

static sim_member *random_up(sim *s, bool prefer_leader)
{
    if (prefer_leader) {
        sim_member *l = sim_find_leader(s);
        if (l)
            return l;
    }
    uint32_t slots[SIM_MAX_NODES];
    uint32_t n = hosted_slots(s, slots, true);
    return n ? &s->m[slots[sim_rng_below(&s->rng, n)]] : NULL;
}

static void power_loss(sim *s)
{
    uint32_t slots[SIM_MAX_NODES];
    uint32_t n = hosted_slots(s, slots, true);
    if (n == 0)
        return;
    shuffle(s, slots, n);
    uint32_t k = sim_rng_chance(&s->rng, 500000) ? n : n / 2 + 1;
    if (k > n)
        k = n;
    sim_trace(s, "power-loss", 0, k, n, 0);
    for (uint32_t i = 0; i < k; i++)
        crash_and_restart(s, &s->m[slots[i]], "power loss");
}

static void arm_ack_crash(sim *s)
{
    sim_member *l = sim_find_leader(s);
    uint32_t slots[SIM_MAX_NODES];
    uint32_t n = hosted_slots(s, slots, true), m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!l || slots[i] != l->slot)
            slots[m++] = slots[i];
    if (m == 0)
        return;
    sim_member *f = &s->m[slots[sim_rng_below(&s->rng, m)]];
    f->crash_after_ack = true;
    f->disk_slow_until = s->now + fault_duration(s);
    s->ack_crash_leader_too = sim_rng_chance(&s->rng, 600000);
    sim_trace(s, "arm-ack-crash", f->slot, f->id, s->ack_crash_leader_too, 0);
}

void sim_nemesis_after_ack_crash(sim *s, sim_member *mb)
{
    schedule_restart(s, mb, 0);
    if (!s->ack_crash_leader_too)
        return;
    s->ack_crash_leader_too = false;
    sim_member *l = sim_find_leader(s);
    if (l)
        sim_schedule(s, s->now + sim_rng_range(&s->rng, 0, 5 * SIM_MS), SIM_EV_CRASH, l->slot,
                     l->inc, 0);
}

void sim_nemesis_on_elected(sim *s, sim_member *mb)
{
    if (s->phase != SIM_PHASE_SAFETY || s->churn_left == 0)
        return;
    s->churn_left--;
    /* right away (before its first appends land), in the middle of bringing
     * the others up to date, or right after its commit index first moves */
    uint32_t when = (uint32_t)sim_rng_below(&s->rng, 3);
    sim_time at = s->now + sim_rng_range(&s->rng, 0, when == 0 ? 20 * SIM_MS : 150 * SIM_MS);
    if (when == 2 && s->churn_isolate) {
        raft_get_status(mb->r, &mb->st);
        mb->isolate_on_commit = true;
        mb->isolate_commit_base = mb->st.commit;
    } else if (s->churn_isolate) {
        sim_schedule(s, at, SIM_EV_ISOLATE, mb->slot, mb->inc, 0);
    } else {
        sim_schedule(s, at, SIM_EV_CRASH, mb->slot, mb->inc, 0);
    }
}

/* Cuts mb off (both ways) for a while, alone or with a minority of the
 * others; clients keep using it. */
static void isolate(sim *s, sim_member *mb)
{
    sim_net_heal(s);
    bool side[SIM_MAX_NODES] = {false};
    side[mb->slot] = true;
    uint32_t slots[SIM_MAX_NODES];
    uint32_t n = hosted_slots(s, slots, false);
    if (n >= 5 && sim_rng_chance(&s->rng, 500000)) {
        shuffle(s, slots, n);
        /* partners: 1 .. (minority size - 1) */
        uint32_t want = (uint32_t)sim_rng_range(&s->rng, 1, (n - 1) / 2 - 1);
        for (uint32_t i = 0, added = 0; i < n && added < want; i++)
            if (slots[i] != mb->slot) {
                side[slots[i]] = true;
                added++;
            }
    }
    for (uint32_t a = 0; a < s->n_slots; a++)
        for (uint32_t b = 0; b < s->n_slots; b++)
            if (side[a] != side[b])
                s->cut[a][b] = true;
    s->partitioned = true;
    s->part_gen++;
    s->stale_leader_reads = true;
    s->stale_leader_slot = mb->slot;
    sim_trace(s, "isolate", mb->slot, mb->id, s->part_gen, 0);
    sim_schedule(s, s->now + fault_duration(s), SIM_EV_HEAL, 0, 0, s->part_gen);
}

void sim_nemesis_isolate_event(sim *s, uint32_t slot, uint32_t inc)
{
    sim_member *mb = &s->m[slot];
    if (s->phase != SIM_PHASE_SAFETY || mb->state != SIM_SLOT_UP || mb->inc != inc)
        return;
    isolate(s, mb);
}

static void pause_member(sim *s)
{
    sim_member *mb = random_up(s, sim_rng_chance(&s->rng, 500000));
    if (!mb)
        return;
    mb->paused_until = s->now + fault_duration(s);
    raft_get_status(mb->r, &mb->st);
    if (mb->st.role == RAFT_LEADER && sim_rng_chance(&s->rng, 700000)) {
        s->stale_leader_reads = true;
        s->stale_leader_slot = mb->slot;
    }
    sim_trace(s, "pause", mb->slot, mb->id, mb->paused_until, 0);
}

static void slow_disk(sim *s)
{
    sim_member *mb = random_up(s, false);
    if (!mb)
        return;
    mb->disk_slow_until = s->now + fault_duration(s);
    sim_trace(s, "slow-disk", mb->slot, mb->id, mb->disk_slow_until, 0);
}

/* -------------------------------------------------------------- membership */

static bool ids_have(const raft_id *ids, uint32_t n, raft_id id)
{
    for (uint32_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

static bool conf_has(const raft_conf *c, raft_id id)
{
    return ids_have(c->voters, c->n_voters, id) || ids_have(c->voters_out, c->n_voters_out, id) ||
           ids_have(c->learners, c->n_learners, id);
}

static void ids_remove(raft_id *ids, uint32_t *n, raft_id id)
{
    for (uint32_t i = 0; i < *n; i++)
        if (ids[i] == id) {
            ids[i] = ids[--*n];
            return;
        }
}

void sim_nemesis_reconcile(sim *s)
{
    if (s->conf_index == 0)
        return;
    for (uint32_t k = 0; k < s->n_slots; k++) {
        sim_member *mb = &s->m[k];
        if (mb->state == SIM_SLOT_EMPTY)
            continue;
        if (conf_has(&s->conf, mb->id))
            mb->ever_in_conf = true;
        else if (mb->ever_in_conf)
            sim_member_decommission(s, mb); /* removed: shut down, machine wiped */
    }
}

/* One step of membership churn, chosen from the cluster's state: promote a
 * learner, bring a fresh machine in (as a learner, or straight in as a
 * voter), or remove a voter (sometimes the leader itself) or a learner.
 * Returns true if the leader accepted the proposal. */
static bool membership(sim *s)
{
    sim_member *l = sim_find_leader(s);
    if (!l || l->paused_until > s->now)
        return false;
    const raft_conf *c = raft_get_conf(l->r);
    if (raft_conf_is_joint(c))
        return false;
    raft_conf t = *c;
    /* a member waiting to join (started, never in a committed conf) */
    sim_member *spare = NULL, *empty = NULL;
    for (uint32_t k = 0; k < s->n_slots; k++) {
        sim_member *mb = &s->m[k];
        if (mb->state == SIM_SLOT_EMPTY && !empty)
            empty = mb;
        else if (mb->state != SIM_SLOT_EMPTY && !mb->ever_in_conf && !conf_has(c, mb->id) && !spare)
            spare = mb;
    }
    const char *what;
    raft_id who;
    if (t.n_learners > 0 && sim_rng_chance(&s->rng, 700000)) {
        who = t.learners[sim_rng_below(&s->rng, t.n_learners)];
        ids_remove(t.learners, &t.n_learners, who);
        if (sim_rng_chance(&s->rng, 850000)) {
            t.voters[t.n_voters++] = who;
            what = "promote";
        } else {
            what = "remove-learner";
        }
    } else if ((spare || empty) && sim_rng_chance(&s->rng, 800000)) {
        if (!spare) {
            spare = empty;
            spare->gen++;
            spare->id = sim_member_id(spare->slot, spare->gen);
            spare->founding = false;
            spare->ever_in_conf = false;
            sim_disk_wipe(&spare->disk);
            sim_trace(s, "new-member", spare->slot, spare->id, 0, 0);
            if (!sim_member_start(s, spare))
                return false;
        }
        who = spare->id;
        if (sim_rng_chance(&s->rng, 700000)) {
            t.learners[t.n_learners++] = who;
            what = "add-learner";
        } else {
            t.voters[t.n_voters++] = who;
            what = "add-voter";
        }
    } else if (t.n_voters >= 3) {
        who =
            sim_rng_chance(&s->rng, 350000) ? l->id : t.voters[sim_rng_below(&s->rng, t.n_voters)];
        ids_remove(t.voters, &t.n_voters, who);
        what = who == l->id ? "remove-leader" : "remove-voter";
    } else {
        return false;
    }
    int rc = raft_propose_conf(l->r, &t);
    sim_trace(s, "propose-conf", l->slot, who, ((uint64_t)t.n_voters << 8) | t.n_learners,
              (uint64_t)(int64_t)rc);
    sim_trace_text(s, "membership %s %llu via leader %llu: %s", what, (unsigned long long)who,
                   (unsigned long long)l->id, raft_strerror(rc));
    sim_member_drive(s, l);
    return rc == 0;
}

void sim_nemesis_membership_event(sim *s, uint64_t left)
{
    if (s->phase != SIM_PHASE_SAFETY)
        return;
    sim_nemesis_reconcile(s);
    if (membership(s) && left > 1)
        sim_schedule(s, s->now + sim_rng_range(&s->rng, 50 * SIM_MS, 400 * SIM_MS),
                     SIM_EV_MEMBERSHIP, 0, 0, left - 1);
}

static void transfer(sim *s)
{
    sim_member *l = sim_find_leader(s);
    if (!l)
        return;
    const raft_conf *c = raft_get_conf(l->r);
    if (c->n_voters < 2)
        return;
    raft_id to = c->voters[sim_rng_below(&s->rng, c->n_voters)];
    if (to == l->id)
        return;
    int rc = raft_transfer_leader(l->r, to);
    sim_trace(s, "transfer", l->slot, l->id, to, (uint64_t)(int64_t)rc);
    sim_member_drive(s, l);
}

static void campaign(sim *s)
{
    uint32_t slots[SIM_MAX_NODES];
    uint32_t n = hosted_slots(s, slots, true);
    if (n < 2)
        return;
    shuffle(s, slots, n);
    uint32_t k = (uint32_t)sim_rng_range(&s->rng, 2, n);
    for (uint32_t i = 0; i < k; i++) {
        sim_member *mb = &s->m[slots[i]];
        if (mb->paused_until > s->now)
            continue;
        sim_trace(s, "campaign", mb->slot, mb->id, 0, 0);
        raft_campaign(mb->r);
    }
    for (uint32_t i = 0; i < k && !s->failed; i++) {
        sim_member *mb = &s->m[slots[i]];
        if (mb->state == SIM_SLOT_UP)
            sim_member_drive(s, mb);
    }
}

/* ------------------------------------------------------------------- pick */

void sim_nemesis_event(sim *s)
{
    if (s->phase != SIM_PHASE_SAFETY)
        return;
    sim_nemesis_reconcile(s);
    uint64_t total = 0;
    for (int f = 0; f < SIM_F_COUNT; f++)
        total += s->prof.weight[f];
    if (total > 0) {
        uint64_t r = sim_rng_below(&s->rng, total);
        int f = 0;
        while (f < SIM_F_COUNT - 1 && r >= s->prof.weight[f]) {
            r -= s->prof.weight[f];
            f++;
        }
        s->st.faults++;
        sim_trace(s, "fault", 0, (uint64_t)f, 0, 0);
        switch (f) {
        case SIM_F_PARTITION:
            partition(s);
            break;
        case SIM_F_CRASH: {
            sim_member *mb = random_up(s, sim_rng_chance(&s->rng, 500000));
            if (mb)
                crash_and_restart(s, mb, "crash");
            break;
        }
        case SIM_F_POWER:
            power_loss(s);
            break;
        case SIM_F_ACK_CRASH:
            arm_ack_crash(s);
            break;
        case SIM_F_PAUSE:
            pause_member(s);
            break;
        case SIM_F_SLOW_DISK:
            slow_disk(s);
            break;
        case SIM_F_MEMBERSHIP: /* a few steps in a row: remove, add, promote... */
            sim_nemesis_membership_event(s, sim_rng_range(&s->rng, 1, 4));
            break;
        case SIM_F_TRANSFER:
            transfer(s);
            break;
        case SIM_F_CAMPAIGN:
            campaign(s);
            break;
        case SIM_F_LEADER_CHURN: {
            /* the leader fails, and so do the next few right after winning */
            s->churn_left = (uint32_t)sim_rng_range(&s->rng, 2, 6);
            s->churn_isolate = sim_rng_chance(&s->rng, 600000);
            sim_member *l = sim_find_leader(s);
            if (l && s->churn_isolate)
                isolate(s, l);
            else if (l)
                crash_and_restart(s, l, "leader churn");
            break;
        }
        default:
            break;
        }
    }
    sim_time mean = s->prof.nemesis_mean_us;
    sim_schedule(s, s->now + sim_rng_range(&s->rng, mean / 2, mean + mean / 2), SIM_EV_NEMESIS, 0,
                 0, 0);
}
