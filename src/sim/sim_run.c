/*
 * sim_run.c: one seed. Draws the profile (core settings, fault rates,
 * client mix) from the seed, builds the cluster, runs the event loop with
 * the checks after every event, then the liveness phase and the
 * linearizability check.
 */
#include "sim/sim.h"

#include <stdlib.h>
#include <string.h>

void sim_schedule(sim *s, sim_time at, uint8_t kind, uint32_t slot, uint32_t inc, uint64_t arg)
{
    sim_event ev = {.at = at, .kind = kind, .slot = (uint8_t)slot, .inc = inc, .arg = arg};
    sim_queue_push(&s->q, &ev);
}

static uint32_t pick_u32(sim_rng *r, const uint32_t *choices, size_t n)
{
    return choices[sim_rng_below(r, n)];
}

void sim_profile_draw(sim *s)
{
    sim_rng *r = &s->rng;
    sim_profile *p = &s->prof;
    memset(p, 0, sizeof(*p));
    p->election_ticks = 10;
    p->heartbeat_ticks = (uint32_t)sim_rng_range(r, 1, 3);
    p->pre_vote = sim_rng_chance(r, 800000);
    p->check_quorum = sim_rng_chance(r, 750000);
    /* small messages and windows often: entries then travel one by one */
    static const uint32_t inflight[] = {1, 1, 2, 4, 16, 256};
    static const uint32_t msg_bytes[] = {1, 1, 64, 512, 1u << 20};
    p->max_inflight = pick_u32(r, inflight, 6);
    p->max_msg_bytes = pick_u32(r, msg_bytes, 5);
    p->snapshot_entries = sim_rng_range(r, 5, 60);
    p->trailing_entries = sim_rng_range(r, 0, 20);
    p->chunk_bytes = (uint32_t)sim_rng_range(r, 8, 100);
    {
        /* Drawn from the seed apart from the run's PRNG, so that the other draws (and the
         * seeds known to find planted bugs) stay what they were. Half the seeds keep the whole
         * log in memory; the others drop applied entries past a few bytes to a few KiB and
         * serve followers by reading the durable log back. */
        sim_rng side;
        sim_rng_seed(&side, s->opt.seed ^ 0x6c6f676d656d6279ull);
        static const uint32_t budgets[] = {0, 0, 0, 0, 1, 64, 512, 4096};
        p->log_mem_bytes = pick_u32(&side, budgets, 8);
        p->fetch_fail_ppm = sim_rng_chance(&side, 300000) ? 100000 : 0;
        if (p->log_mem_bytes && sim_rng_chance(&side, 500000))
            p->snapshot_entries *= 8; /* lagging followers then mostly read back, not install */
    }

    p->delay_min_us = (uint32_t)sim_rng_range(r, 100, 2000);
    p->delay_max_us = p->delay_min_us + (uint32_t)sim_rng_range(r, 0, 20000);
    p->spike_ppm = sim_rng_chance(r, 500000) ? (uint32_t)sim_rng_range(r, 0, 50000) : 0;
    p->spike_max_us = (uint32_t)sim_rng_range(r, 10 * SIM_MS, 300 * SIM_MS);
    p->loss_ppm = sim_rng_chance(r, 700000) ? (uint32_t)sim_rng_range(r, 0, 100000) : 0;
    p->dup_ppm = sim_rng_chance(r, 500000) ? (uint32_t)sim_rng_range(r, 0, 50000) : 0;

    p->disk_min_us = (uint32_t)sim_rng_range(r, 50, 1000);
    p->disk_max_us = p->disk_min_us + (uint32_t)sim_rng_range(r, 0, 5000);
    p->slow_disk_us = (uint32_t)sim_rng_range(r, 20 * SIM_MS, 300 * SIM_MS);
    p->torn_ppm = (uint32_t)sim_rng_range(r, 0, 1000000);

    p->nemesis_mean_us = (uint32_t)sim_rng_range(r, 80 * SIM_MS, 1000 * SIM_MS);
    for (int f = 0; f < SIM_F_COUNT; f++)
        p->weight[f] = sim_rng_chance(r, 300000) ? 0 : (uint32_t)sim_rng_range(r, 1, 10);
    /* Lease reads rest on bounded clock drift and no process pause longer
     * than (election - heartbeat) ticks (raft.h): such seeds get no pauses. */
    p->lease_reads = p->check_quorum && sim_rng_chance(r, 300000);
    if (p->lease_reads)
        p->weight[SIM_F_PAUSE] = 0;
    p->tick_jitter_us = (uint32_t)sim_rng_range(r, 0, SIM_TICK_US / 50);
    p->restart_max_us = (uint32_t)sim_rng_range(r, 20 * SIM_MS, 2 * SIM_SEC);
    p->fault_max_us = (uint32_t)sim_rng_range(r, 50 * SIM_MS, 2 * SIM_SEC);

    p->n_clients = (uint32_t)sim_rng_range(r, 2, 6);
    p->n_keys = (uint32_t)sim_rng_range(r, 1, 5);
    p->client_timeout_us = (uint32_t)sim_rng_range(r, 100 * SIM_MS, SIM_SEC);
    p->think_max_us = (uint32_t)sim_rng_range(r, 0, 30 * SIM_MS);
    p->read_pct = (uint32_t)sim_rng_range(r, 20, 60);
    p->cas_pct = (uint32_t)sim_rng_range(r, 0, 25);
    p->delete_pct = (uint32_t)sim_rng_range(r, 0, 15);
    p->sticky_pct = (uint32_t)sim_rng_range(r, 0, 95);
}

void sim_profile_print(const sim_profile *p, FILE *f)
{
    static const char *names[SIM_F_COUNT] = {"partition", "crash",     "power",  "ack-crash",
                                             "pause",     "slow-disk", "member", "transfer",
                                             "campaign",  "churn"};
    fprintf(f,
            "  core: election %u heartbeat %u ticks (+-%u us), pre_vote %d, check_quorum %d, "
            "%s reads, inflight %u, msg bytes %u, snapshot every %llu (+%llu trailing), chunks %u "
            "bytes, log in memory %s%llu bytes (read-back failures %.0f%%)\n",
            p->election_ticks, p->heartbeat_ticks, p->tick_jitter_us, p->pre_vote, p->check_quorum,
            p->lease_reads ? "lease" : "read-index", p->max_inflight, p->max_msg_bytes,
            (unsigned long long)p->snapshot_entries, (unsigned long long)p->trailing_entries,
            p->chunk_bytes, p->log_mem_bytes ? "<= " : "unbounded, ",
            (unsigned long long)p->log_mem_bytes, p->fetch_fail_ppm / 1e4);
    fprintf(f,
            "  net: delay %u-%u us, spikes %.2f%% up to %u ms, loss %.2f%%, dup %.2f%%; disk %u-%u "
            "us, slow %u ms, torn %.0f%%\n",
            p->delay_min_us, p->delay_max_us, p->spike_ppm / 1e4, p->spike_max_us / 1000,
            p->loss_ppm / 1e4, p->dup_ppm / 1e4, p->disk_min_us, p->disk_max_us,
            p->slow_disk_us / 1000, p->torn_ppm / 1e4);
    fprintf(f, "  faults: every ~%u ms, lasting up to %u ms, restarts within %u ms; weights",
            p->nemesis_mean_us / 1000, p->fault_max_us / 1000, p->restart_max_us / 1000);
    for (int i = 0; i < SIM_F_COUNT; i++)
        fprintf(f, " %s=%u", names[i], p->weight[i]);
    fprintf(f,
            "\n  clients: %u on %u keys, timeout %u ms, think <= %u ms, reads %u%% cas %u%% "
            "deletes %u%%, sticky %u%%\n",
            p->n_clients, p->n_keys, p->client_timeout_us / 1000, p->think_max_us / 1000,
            p->read_pct, p->cas_pct, p->delete_pct, p->sticky_pct);
}

/* ---------------------------------------------------------------- liveness */

static void liveness_start(sim *s)
{
    s->phase = SIM_PHASE_LIVENESS;
    s->liveness_start = s->now;
    sim_trace(s, "liveness", 0, 0, 0, 0);
    sim_net_heal(s);
    s->part_gen++;
    s->stale_leader_reads = false;
    s->churn_left = 0;
    s->ack_crash_leader_too = false;
    for (uint32_t k = 0; k < s->n_slots; k++) {
        sim_member *mb = &s->m[k];
        mb->crash_after_ack = false;
        mb->isolate_on_commit = false;
        mb->disk_slow_until = 0;
        if (mb->state == SIM_SLOT_DOWN)
            sim_schedule(s, s->now + sim_rng_range(&s->rng, 0, 10 * SIM_MS), SIM_EV_RESTART, k,
                         mb->inc, 0);
    }
    sim_nemesis_reconcile(s);
    sim_schedule(s, s->now + 10 * SIM_MS, SIM_EV_PROBE, 0, 0, 0);
}

static void liveness_report(sim *s, const char *why)
{
    char buf[1024];
    size_t off = 0;
    for (uint32_t k = 0; k < s->n_slots && off < sizeof(buf); k++) {
        sim_member *mb = &s->m[k];
        if (mb->state == SIM_SLOT_EMPTY)
            continue;
        if (mb->state != SIM_SLOT_UP) {
            off += (size_t)snprintf(buf + off, sizeof(buf) - off, " [id %llu down]",
                                    (unsigned long long)mb->id);
            continue;
        }
        raft_get_status(mb->r, &mb->st);
        off +=
            (size_t)snprintf(buf + off, sizeof(buf) - off,
                             " [id %llu %s term %llu commit %llu applied %llu last %llu%s]",
                             (unsigned long long)mb->id, raft_role_name(mb->st.role),
                             (unsigned long long)mb->st.term, (unsigned long long)mb->st.commit,
                             (unsigned long long)mb->applied, (unsigned long long)mb->st.last_index,
                             mb->st.removed ? " removed" : "");
    }
    const sim_op *probe = sim_op_get(s, s->probe_op);
    sim_fail(
        s, "liveness",
        "%s within %llu ms of healing (probe %s%llu); conf %u voters %u learners; members:%s", why,
        (unsigned long long)(s->opt.liveness_us / SIM_MS),
        probe && probe->applied_index ? "applied at " : "not applied, op ",
        (unsigned long long)(probe && probe->applied_index ? probe->applied_index : s->probe_op),
        s->conf.n_voters, s->conf.n_learners, buf);
}

static bool all_applied(sim *s, uint64_t index)
{
    const raft_conf *c = &s->conf;
    const raft_id *lists[3] = {c->voters, c->voters_out, c->learners};
    uint32_t counts[3] = {c->n_voters, c->n_voters_out, c->n_learners};
    for (int l = 0; l < 3; l++)
        for (uint32_t i = 0; i < counts[l]; i++) {
            sim_member *mb = sim_member_by_id(s, lists[l][i]);
            if (!mb || mb->state != SIM_SLOT_UP || mb->applied < index)
                return false;
        }
    return true;
}

static void liveness_probe(sim *s)
{
    if (s->phase != SIM_PHASE_LIVENESS)
        return;
    sim_nemesis_reconcile(s);
    sim_op *op = sim_op_get(s, s->probe_op);
    if (op && op->applied_index != 0 && all_applied(s, op->applied_index)) {
        s->phase = SIM_PHASE_DONE;
        sim_trace(s, "live", 0, op->applied_index, s->now - s->liveness_start, 0);
        return;
    }
    if (s->now - s->liveness_start > s->opt.liveness_us) {
        sim_member *l = sim_find_leader(s);
        liveness_report(s, !l                        ? "no leader"
                           : op && op->applied_index ? "not every member applied the probe"
                                                     : "no write committed");
        return;
    }
    sim_member *l = sim_find_leader(s);
    if (l && l->paused_until <= s->now && (!op || op->applied_index == 0) &&
        (!op || s->now - s->probe_sent_at > 300 * SIM_MS)) {
        sim_op *p = sim_op_new(s, SIM_CLIENT_PROBE, LINCHECK_WRITE, SIM_PROBE_KEY);
        p->value_len =
            (uint8_t)snprintf(p->value, sizeof(p->value), "p%llu", (unsigned long long)p->id);
        p->has_value = true;
        p->slot = l->slot;
        p->inc = l->inc;
        p->sent = true;
        sim_cmd c;
        memset(&c, 0, sizeof(c));
        c.req = p->id;
        c.kind = LINCHECK_WRITE;
        c.key = SIM_PROBE_KEY;
        c.value_len = p->value_len;
        memcpy(c.value, p->value, p->value_len);
        uint8_t buf[SIM_CMD_MAX_BYTES];
        size_t len = sim_cmd_encode(&c, buf);
        int rc = raft_propose(l->r, buf, (uint32_t)len);
        sim_trace(s, "probe", l->slot, p->id, (uint64_t)(int64_t)rc, 0);
        if (rc == 0) {
            s->probe_op = p->id;
            s->probe_sent_at = s->now;
        }
        sim_member_drive(s, l);
    }
    sim_schedule(s, s->now + 20 * SIM_MS, SIM_EV_PROBE, 0, 0, 0);
}

/* ------------------------------------------------------------------ events */

/* A paused member handles nothing: its events wait until it resumes. */
static bool defer_if_paused(sim *s, const sim_event *ev, sim_member *mb)
{
    if (!mb || mb->paused_until <= s->now)
        return false;
    sim_event again = *ev;
    again.at = mb->paused_until;
    sim_queue_push(&s->q, &again);
    return true;
}

static void handle(sim *s, const sim_event *ev)
{
    sim_member *mb = ev->slot < s->n_slots ? &s->m[ev->slot] : NULL;
    switch (ev->kind) {
    case SIM_EV_TICK:
        if (mb->state != SIM_SLOT_UP || mb->inc != ev->inc || defer_if_paused(s, ev, mb))
            return;
        sim_trace(s, "tick", mb->slot, mb->id, 0, 0);
        raft_tick(mb->r);
        sim_member_drive(s, mb);
        if (mb->state == SIM_SLOT_UP && mb->inc == ev->inc) {
            sim_time j = s->prof.tick_jitter_us;
            sim_schedule(s, s->now + SIM_TICK_US - j + sim_rng_range(&s->rng, 0, 2 * j),
                         SIM_EV_TICK, mb->slot, mb->inc, 0);
        }
        return;
    case SIM_EV_DELIVER:
        if (mb && mb->state == SIM_SLOT_UP && defer_if_paused(s, ev, mb))
            return;
        sim_net_deliver(s, ev->msg);
        return;
    case SIM_EV_PERSIST:
        if (mb->state != SIM_SLOT_UP || mb->inc != ev->inc || defer_if_paused(s, ev, mb))
            return;
        sim_member_persisted(s, mb);
        return;
    case SIM_EV_REQUEST:
        if (mb->state == SIM_SLOT_UP && defer_if_paused(s, ev, mb))
            return;
        sim_client_request(s, ev->slot, ev->arg);
        return;
    case SIM_EV_CLIENT:
        sim_client_event(s, (uint32_t)ev->arg);
        return;
    case SIM_EV_CLIENT_TIMEOUT:
        sim_client_timeout(s, ev->arg);
        return;
    case SIM_EV_NEMESIS:
        sim_nemesis_event(s);
        return;
    case SIM_EV_HEAL:
        sim_nemesis_heal(s, ev->arg);
        return;
    case SIM_EV_RESTART:
        if (mb->state == SIM_SLOT_DOWN && mb->inc == ev->inc)
            sim_member_start(s, mb);
        return;
    case SIM_EV_CRASH:
        sim_nemesis_crash_event(s, ev->slot, ev->inc);
        return;
    case SIM_EV_ISOLATE:
        sim_nemesis_isolate_event(s, ev->slot, ev->inc);
        return;
    case SIM_EV_MEMBERSHIP:
        sim_nemesis_membership_event(s, ev->arg);
        return;
    case SIM_EV_LIVENESS:
        liveness_start(s);
        return;
    case SIM_EV_PROBE:
        liveness_probe(s);
        return;
    case SIM_EV_FULL_CHECK:
        sim_check_all_logs(s);
        if (s->phase != SIM_PHASE_DONE)
            sim_schedule(s, s->now + SIM_SEC, SIM_EV_FULL_CHECK, 0, 0, 0);
        return;
    default:
        abort();
    }
}

/* ------------------------------------------------------------------- a run */

bool sim_run(const sim_options *opt, sim_stats *stats, uint64_t *trace_hash, char *prop,
             size_t prop_len, char *detail, size_t detail_len, sim_profile *prof_out)
{
    sim *s = calloc(1, sizeof(*s));
    if (!s)
        abort();
    s->opt = *opt;
    s->trace_hash = SIM_FNV_INIT;
    sim_rng_seed(&s->rng, opt->seed);
    sim_queue_init(&s->q);
    sim_check_init(s);
    sim_profile_draw(s);
    if (prof_out)
        *prof_out = s->prof;
    if (opt->verbose) {
        fprintf(opt->out, "seed %llu, %u nodes:\n", (unsigned long long)opt->seed, opt->nodes);
        sim_profile_print(&s->prof, opt->out);
    }

    s->n_slots = opt->nodes;
    memset(&s->bootstrap, 0, sizeof(s->bootstrap));
    for (uint32_t k = 0; k < s->n_slots; k++)
        s->bootstrap.voters[s->bootstrap.n_voters++] = sim_member_id(k, 0);
    for (uint32_t k = 0; k < s->n_slots; k++) {
        sim_member *mb = &s->m[k];
        sim_member_init(s, mb, k);
        mb->id = sim_member_id(k, 0);
        mb->founding = true;
        mb->ever_in_conf = true;
        mb->state = SIM_SLOT_DOWN;
    }
    for (uint32_t k = 0; k < s->n_slots && !s->failed; k++)
        sim_member_start(s, &s->m[k]);
    sim_clients_start(s);
    sim_time mean = s->prof.nemesis_mean_us;
    sim_schedule(s, sim_rng_range(&s->rng, mean / 2, mean + mean / 2), SIM_EV_NEMESIS, 0, 0, 0);
    sim_schedule(s, opt->safety_us, SIM_EV_LIVENESS, 0, 0, 0);
    sim_schedule(s, SIM_SEC, SIM_EV_FULL_CHECK, 0, 0, 0);

    sim_event ev;
    while (!s->failed && s->phase != SIM_PHASE_DONE) {
        if (!sim_queue_pop(&s->q, &ev)) {
            sim_fail(s, "liveness", "nothing left to happen (the event queue ran dry)");
            break;
        }
        if (++s->st.events > SIM_MAX_EVENTS) {
            sim_fail(s, "runaway", "more than %llu events", (unsigned long long)SIM_MAX_EVENTS);
            if (ev.msg)
                sim_net_free_msg(ev.msg);
            break;
        }
        s->now = ev.at;
        handle(s, &ev);
        if (!s->failed)
            sim_check_after_event(s);
    }
    if (!s->failed)
        sim_check_all_logs(s);
    if (!s->failed)
        sim_client_check_history(s);
    if (!s->failed)
        sim_trace(s, "end", 0, s->st.ops, s->st.elections, s->max_applied);

    bool ok = !s->failed;
    *stats = s->st;
    *trace_hash = s->trace_hash;
    snprintf(prop, prop_len, "%s", s->fail_prop);
    snprintf(detail, detail_len, "%s", s->fail_detail);

    for (uint32_t k = 0; k < s->n_slots; k++)
        sim_member_free(&s->m[k]);
    sim_queue_free(&s->q);
    sim_check_free(s);
    free(s->ops);
    free(s);
    return ok;
}
