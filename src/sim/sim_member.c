/*
 * sim_member.c: one member = the real core + a simulated disk + the KV
 * state machine. Start (fresh or from the durable image), crash (unsynced
 * writes lost, the last ones possibly torn), decommission (removed from the
 * cluster: the machine is wiped), and the driving loop of raft.h:
 * raft_ready, persist / send / apply, raft_advance, raft_persisted later.
 */
#include "sim/sim.h"

#include <stdlib.h>
#include <string.h>

raft_id sim_member_id(uint32_t slot, uint32_t gen)
{
    return (raft_id)slot + 1 + 10ull * gen;
}

void sim_member_init(sim *s, sim_member *mb, uint32_t slot)
{
    (void)s;
    memset(mb, 0, sizeof(*mb));
    mb->slot = slot;
    sim_disk_init(&mb->disk);
}

static void snaps_clear(sim_member *mb)
{
    for (int i = 0; i < SIM_KEEP_SNAPS; i++)
        sim_snap_clear(&mb->snaps[i]);
}

/* Keeps sn as the newest local snapshot (copies it). */
static void snaps_push(sim_member *mb, const sim_snap *sn)
{
    sim_snap_clear(&mb->snaps[SIM_KEEP_SNAPS - 1]);
    memmove(&mb->snaps[1], &mb->snaps[0], (SIM_KEEP_SNAPS - 1) * sizeof(sim_snap));
    memset(&mb->snaps[0], 0, sizeof(sim_snap));
    sim_snap_copy(&mb->snaps[0], sn);
}

static void incoming_clear(sim_member *mb)
{
    free(mb->in_buf);
    mb->in_buf = NULL;
    mb->in_cap = mb->in_index = mb->in_contig = 0;
}

void sim_member_free(sim_member *mb)
{
    raft_free(mb->r);
    mb->r = NULL;
    sim_disk_free(&mb->disk);
    snaps_clear(mb);
    incoming_clear(mb);
}

bool sim_member_start(sim *s, sim_member *mb)
{
    const sim_profile *p = &s->prof;
    raft_config cfg;
    raft_config_default(&cfg);
    cfg.id = mb->id;
    cfg.seed = sim_rng_next(&s->rng);
    cfg.election_ticks = p->election_ticks;
    cfg.heartbeat_ticks = p->heartbeat_ticks;
    cfg.pre_vote = p->pre_vote;
    cfg.check_quorum = p->check_quorum;
    cfg.read_mode = p->lease_reads ? RAFT_READ_LEASE : RAFT_READ_SAFE;
    cfg.max_inflight_msgs = p->max_inflight;
    cfg.max_msg_bytes = p->max_msg_bytes;
    cfg.snapshot_entries = p->snapshot_entries;
    cfg.trailing_entries = p->trailing_entries;
    cfg.log_mem_bytes = p->log_mem_bytes;
    cfg.snapshot_chunk_bytes = p->chunk_bytes;
    cfg.bugs = s->opt.bugs;

    sim_disk *d = &mb->disk;
    raft_restore rs;
    memset(&rs, 0, sizeof(rs));
    rs.hard_state = d->hs;
    raft_snapshot_meta meta;
    memset(&meta, 0, sizeof(meta));
    if (d->snap.index > 0) {
        meta.index = d->snap.index;
        meta.term = d->snap.term;
        meta.size = d->snap.len;
        meta.conf = d->snap.conf;
        rs.snapshot = &meta;
    }
    rs.entries = d->log.e;
    rs.n_entries = (uint32_t)d->log.n;
    rs.applied = d->snap.index;

    char err[256] = "";
    mb->r = raft_new(&cfg, mb->founding ? &s->bootstrap : NULL, &rs, err, sizeof(err));
    if (!mb->r) {
        sim_fail(
            s, "restart",
            "member %llu cannot start from its durable state: %s (hard state term %llu vote "
            "%llu commit %llu; snapshot %llu term %llu; log %llu entries, last %llu term %llu)",
            (unsigned long long)mb->id, err, (unsigned long long)d->hs.term,
            (unsigned long long)d->hs.vote, (unsigned long long)d->hs.commit,
            (unsigned long long)d->snap.index, (unsigned long long)d->snap.term,
            (unsigned long long)d->log.n, (unsigned long long)sim_disk_last_index(d),
            (unsigned long long)sim_disk_term(d, sim_disk_last_index(d)));
        mb->state = SIM_SLOT_DOWN;
        return false;
    }
    memset(&mb->kv, 0, sizeof(mb->kv));
    memset(&mb->sm_conf, 0, sizeof(mb->sm_conf));
    snaps_clear(mb);
    incoming_clear(mb);
    if (d->snap.index > 0) {
        if (!sim_kv_decode(&mb->kv, d->snap.data, d->snap.len)) {
            sim_fail(s, "snapshot", "member %llu: durable snapshot %llu does not decode",
                     (unsigned long long)mb->id, (unsigned long long)d->snap.index);
            return false;
        }
        mb->sm_conf = d->snap.conf;
        snaps_push(mb, &d->snap);
    }
    mb->applied = d->snap.index;
    mb->applied_term = d->snap.term;
    mb->kv_hash = sim_kv_hash(&mb->kv);
    mb->inc++;
    mb->state = SIM_SLOT_UP;
    mb->crash_after_ack = false;
    mb->crash_now = false;
    mb->isolate_on_commit = false;
    d->last_done = s->now;
    raft_get_status(mb->r, &mb->st);
    if (mb->st.commit < d->hs.commit) {
        sim_fail(s, "commit-monotonic",
                 "member %llu restarts with commit index %llu below its durable %llu",
                 (unsigned long long)mb->id, (unsigned long long)mb->st.commit,
                 (unsigned long long)d->hs.commit);
        return false;
    }
    mb->commit_seen = mb->st.commit;
    s->st.restarts++;
    sim_trace(s, "start", mb->slot, mb->id, mb->inc, sim_disk_last_index(d));
    sim_schedule(s, s->now + sim_rng_range(&s->rng, 1, SIM_TICK_US), SIM_EV_TICK, mb->slot, mb->inc,
                 0);
    sim_member_drive(s, mb);
    return true;
}

void sim_member_crash(sim *s, sim_member *mb, const char *why)
{
    if (mb->state != SIM_SLOT_UP)
        return;
    size_t units = sim_disk_pending_units(&mb->disk);
    size_t keep = 0;
    if (units > 0 && sim_rng_chance(&s->rng, s->prof.torn_ppm))
        keep = (size_t)sim_rng_range(&s->rng, 0, units);
    char err[256];
    if (!sim_disk_crash(&mb->disk, keep, err, sizeof(err)))
        sim_fail(s, "wal", "member %llu at crash: %s", (unsigned long long)mb->id, err);
    raft_free(mb->r);
    mb->r = NULL;
    mb->state = SIM_SLOT_DOWN;
    mb->inc++;
    mb->paused_until = 0;
    mb->crash_after_ack = false;
    mb->crash_now = false;
    snaps_clear(mb);
    incoming_clear(mb);
    s->st.crashes++;
    sim_trace(s, "crash", mb->slot, mb->id, keep, units);
    sim_trace_text(s, "crash n%u (id %llu, %s): kept %zu of %zu unsynced writes", mb->slot,
                   (unsigned long long)mb->id, why, keep, units);
    sim_client_member_lost(s, mb);
}

void sim_member_decommission(sim *s, sim_member *mb)
{
    if (mb->state == SIM_SLOT_EMPTY)
        return;
    sim_trace(s, "decommission", mb->slot, mb->id, mb->state, 0);
    if (mb->state == SIM_SLOT_UP)
        sim_client_member_lost(s, mb);
    raft_free(mb->r);
    mb->r = NULL;
    sim_disk_wipe(&mb->disk);
    snaps_clear(mb);
    incoming_clear(mb);
    mb->state = SIM_SLOT_EMPTY;
    mb->inc++;
    mb->paused_until = 0;
    mb->ever_in_conf = false;
}

/* --------------------------------------------------------------- applying */

static void apply_entry(sim *s, sim_member *mb, const raft_entry *e, uint64_t term_now)
{
    if (e->index != mb->applied + 1) {
        sim_fail(s, "apply-order", "member %llu applies index %llu right after %llu",
                 (unsigned long long)mb->id, (unsigned long long)e->index,
                 (unsigned long long)mb->applied);
        return;
    }
    if (e->index > sim_disk_last_index(&mb->disk) ||
        sim_disk_term(&mb->disk, e->index) != e->term) {
        sim_fail(s, "durability",
                 "member %llu applies index %llu (term %llu) that is not durable on its disk "
                 "(durable log ends at %llu)",
                 (unsigned long long)mb->id, (unsigned long long)e->index,
                 (unsigned long long)e->term, (unsigned long long)sim_disk_last_index(&mb->disk));
        return;
    }
    sim_cmd cmd;
    bool is_cmd = false, cas_ok = true;
    if (e->type == RAFT_ENTRY_NORMAL && e->len > 0) {
        if (!sim_cmd_decode(&cmd, e->data, e->len)) {
            sim_fail(s, "corrupt-entry", "member %llu applies an undecodable command at %llu",
                     (unsigned long long)mb->id, (unsigned long long)e->index);
            return;
        }
        is_cmd = true;
        cas_ok = sim_kv_apply(&mb->kv, &cmd);
    } else if (e->type == RAFT_ENTRY_CONF) {
        raft_conf c;
        if (raft_conf_decode(&c, e->data, e->len) != 0) {
            sim_fail(s, "corrupt-entry", "member %llu applies an undecodable conf at %llu",
                     (unsigned long long)mb->id, (unsigned long long)e->index);
            return;
        }
        mb->sm_conf = c;
        if (e->index > s->conf_index) {
            s->conf = c;
            s->conf_index = e->index;
            s->st.conf_changes++;
            sim_trace(s, "conf", mb->slot, e->index, c.n_voters, c.n_learners);
        }
    }
    mb->applied = e->index;
    mb->applied_term = e->term;
    mb->kv_hash = sim_kv_hash(&mb->kv);
    s->st.applied_entries++;
    sim_check_apply(s, mb, e, term_now);
    if (is_cmd && !s->failed)
        sim_client_applied(s, mb, &cmd, e->index, cas_ok);
}

static void install_snapshot(sim *s, sim_member *mb, const raft_snapshot_meta *meta, sim_batch *b)
{
    if (mb->in_index != meta->index || mb->in_contig < meta->size ||
        meta->size != SIM_KV_SNAP_BYTES) {
        sim_fail(s, "snapshot",
                 "member %llu is told to install snapshot %llu (%llu bytes) having received %llu "
                 "bytes of snapshot %llu",
                 (unsigned long long)mb->id, (unsigned long long)meta->index,
                 (unsigned long long)meta->size, (unsigned long long)mb->in_contig,
                 (unsigned long long)mb->in_index);
        return;
    }
    if (meta->index <= mb->applied) {
        sim_fail(s, "snapshot",
                 "member %llu is told to install snapshot %llu but has applied %llu already",
                 (unsigned long long)mb->id, (unsigned long long)meta->index,
                 (unsigned long long)mb->applied);
        return;
    }
    sim_kv kv;
    if (!sim_kv_decode(&kv, mb->in_buf, meta->size)) {
        sim_fail(s, "snapshot", "member %llu: snapshot %llu does not decode",
                 (unsigned long long)mb->id, (unsigned long long)meta->index);
        return;
    }
    uint64_t h = sim_kv_hash(&kv);
    sim_check_snapshot_install(s, mb, meta->index, meta->term, h);
    mb->kv = kv;
    mb->kv_hash = h;
    mb->applied = meta->index;
    mb->applied_term = meta->term;
    mb->sm_conf = meta->conf;
    sim_snap sn = {.index = meta->index,
                   .term = meta->term,
                   .conf = meta->conf,
                   .data = mb->in_buf,
                   .len = (uint32_t)meta->size};
    snaps_push(mb, &sn);
    b->has_snap = true;
    sim_snap_copy(&b->snap, &sn);
    s->st.snapshots_installed++;
    sim_trace(s, "install", mb->slot, meta->index, meta->term, h);
}

static void store_chunk(sim_member *mb, const struct raft_ready *rd)
{
    if (rd->snapshot_chunk_index != mb->in_index || rd->snapshot_chunk_offset == 0) {
        mb->in_index = rd->snapshot_chunk_index;
        mb->in_contig = 0;
    }
    uint64_t end = rd->snapshot_chunk_offset + rd->snapshot_chunk_len;
    if (end > mb->in_cap) {
        uint64_t ncap = mb->in_cap ? mb->in_cap : 256;
        while (ncap < end)
            ncap *= 2;
        uint8_t *p = realloc(mb->in_buf, ncap);
        if (!p)
            abort();
        mb->in_buf = p;
        mb->in_cap = ncap;
    }
    if (rd->snapshot_chunk_len > 0)
        memcpy(mb->in_buf + rd->snapshot_chunk_offset, rd->snapshot_chunk, rd->snapshot_chunk_len);
    if (rd->snapshot_chunk_offset <= mb->in_contig && end > mb->in_contig)
        mb->in_contig = end;
}

static void take_snapshot(sim *s, sim_member *mb)
{
    if (mb->applied == 0 || mb->applied <= mb->snaps[0].index)
        return;
    uint64_t t = raft_log_term(mb->r, mb->applied);
    if (t != mb->applied_term) {
        sim_fail(s, "snapshot",
                 "member %llu: term of applied index %llu is %llu in the core, %llu "
                 "in the state machine",
                 (unsigned long long)mb->id, (unsigned long long)mb->applied, (unsigned long long)t,
                 (unsigned long long)mb->applied_term);
        return;
    }
    size_t len = sim_kv_encode(&mb->kv, s->kvbuf);
    sim_snap sn = {.index = mb->applied,
                   .term = mb->applied_term,
                   .conf = mb->sm_conf,
                   .data = s->kvbuf,
                   .len = (uint32_t)len};
    sim_disk_put_snapshot(&mb->disk, &sn);
    snaps_push(mb, &sn);
    int rc = raft_snapshot_taken(mb->r, sn.index, sn.len);
    if (rc != 0)
        sim_fail(s, "snapshot", "member %llu: raft_snapshot_taken(%llu) = %s",
                 (unsigned long long)mb->id, (unsigned long long)sn.index, raft_strerror(rc));
    sim_trace(s, "snapshot", mb->slot, sn.index, sn.term, mb->kv_hash);
}

/* ----------------------------------------------------------- the ready loop */

static sim_time disk_latency(sim *s, sim_member *mb)
{
    if (mb->disk_slow_until > s->now)
        return sim_rng_range(&s->rng, s->prof.slow_disk_us / 2, s->prof.slow_disk_us);
    return sim_rng_range(&s->rng, s->prof.disk_min_us, s->prof.disk_max_us);
}

/* Handles one batch; returns true if it wrote something to disk. */
static bool process_ready(sim *s, sim_member *mb, const struct raft_ready *rd, uint64_t term_now)
{
    sim_trace(s, "ready", mb->slot, rd->seq, ((uint64_t)rd->n_entries << 32) | rd->n_messages,
              ((uint64_t)rd->n_committed << 32) |
                  (rd->hard_state_changed ? rd->hard_state.term : 0));
    /* A batch whose only change is the commit index is not written at all: the pessimistic
     * case of a record that waits for the next sync and is lost in a crash. */
    bool persisting = rd->must_sync || rd->snapshot_chunk != NULL || rd->snapshot != NULL;
    sim_batch *b = persisting ? sim_disk_push(&mb->disk, rd->seq) : NULL;

    /* 1. persist: chunk, snapshot install, entries, hard state */
    if (rd->snapshot_chunk)
        store_chunk(mb, rd);
    if (rd->snapshot) {
        install_snapshot(s, mb, rd->snapshot, b);
        if (s->failed)
            return persisting;
    }
    if (rd->n_entries > 0) {
        for (uint32_t i = 0; i < rd->n_entries; i++) {
            const raft_entry *e = &rd->entries[i];
            if (e->index != rd->entries[0].index + i ||
                (i > 0 && e->term < rd->entries[i - 1].term) || e->term > term_now) {
                sim_fail(s, "log", "member %llu writes a malformed run of entries at %llu",
                         (unsigned long long)mb->id, (unsigned long long)e->index);
                return persisting;
            }
            sim_log_push(&b->ents, e);
        }
    }
    if (rd->hard_state_changed && b) {
        b->has_hs = true;
        b->hs = rd->hard_state;
    }
    if (persisting) {
        sim_time done = s->now + disk_latency(s, mb);
        if (done < mb->disk.last_done)
            done = mb->disk.last_done;
        mb->disk.last_done = done;
        sim_schedule(s, done, SIM_EV_PERSIST, mb->slot, mb->inc, rd->seq);
    }

    /* 2. send */
    for (uint32_t i = 0; i < rd->n_messages && !s->failed; i++) {
        const raft_msg *m = &rd->messages[i];
        if (mb->crash_after_ack && m->type == RAFT_MSG_APPEND_RESP && !m->reject)
            mb->crash_now = true;
        sim_net_send(s, mb, m);
    }

    /* 3. apply */
    for (uint32_t i = 0; i < rd->n_committed && !s->failed; i++)
        apply_entry(s, mb, &rd->committed[i], term_now);
    for (uint32_t i = 0; i < rd->n_reads && !s->failed; i++)
        sim_client_read_ready(s, mb, rd->reads[i].context, rd->reads[i].index);
    for (uint32_t i = 0; i < rd->n_failed_reads && !s->failed; i++)
        sim_client_read_failed(s, mb, rd->failed_reads[i]);
    if (rd->leader_changed)
        sim_trace(s, "leader-seen", mb->slot, rd->leader, term_now, 0);
    return persisting;
}

/* The leader's read-back of entries it dropped from memory: from the durable log only (what
 * a real member's WAL read returns), sometimes "could not read". */
static void answer_fetch(sim *s, sim_member *mb, const raft_fetch *f)
{
    const sim_log *l = &mb->disk.log;
    uint64_t first = mb->disk.snap.index + 1;
    uint32_t n = 0;
    const raft_entry *ents = NULL;
    if (f->from >= first && f->from < first + l->n &&
        !(s->prof.fetch_fail_ppm && sim_rng_chance(&s->rng, s->prof.fetch_fail_ppm))) {
        ents = &l->e[f->from - first];
        n = raft_entries_fitting(ents, first + l->n - f->from, f->max_bytes);
    }
    sim_trace(s, "fetch", mb->slot, f->to, f->from, n);
    int rc = raft_fetched(mb->r, f->to, f->from, ents, n);
    if (rc != 0)
        sim_fail(s, "fetch",
                 "member %llu: its durable log from index %llu (%u entries) was refused by the "
                 "core: %s",
                 (unsigned long long)mb->id, (unsigned long long)f->from, n, raft_strerror(rc));
}

void sim_member_drive(sim *s, sim_member *mb)
{
    for (uint32_t iter = 0;; iter++) {
        if (s->failed || mb->state != SIM_SLOT_UP || !raft_has_ready(mb->r))
            return;
        if (iter >= SIM_DRIVE_LIMIT) {
            sim_fail(s, "ready-loop", "member %llu still has output after %u batches in a row",
                     (unsigned long long)mb->id, iter);
            return;
        }
        uint64_t term_now = raft_term(mb->r);
        struct raft_ready rd;
        raft_ready(mb->r, &rd);
        bool persisting = process_ready(s, mb, &rd, term_now);
        uint64_t from = rd.n_entries ? rd.entries[0].index : 0;
        uint64_t to = rd.n_entries ? rd.entries[rd.n_entries - 1].index : 0;
        bool want_snapshot = rd.want_snapshot;
        raft_fetch fetches[SIM_MAX_FETCHES];
        uint32_t n_fetches = rd.n_fetches < SIM_MAX_FETCHES ? rd.n_fetches : SIM_MAX_FETCHES;
        if (rd.n_fetches > SIM_MAX_FETCHES) {
            sim_fail(s, "fetch", "member %llu asked for %u read-backs in one batch",
                     (unsigned long long)mb->id, rd.n_fetches);
            return;
        }
        if (n_fetches > 0)
            memcpy(fetches, rd.fetches, n_fetches * sizeof(raft_fetch));
        raft_advance(mb->r, &rd);
        if (s->failed)
            return;
        for (uint32_t i = 0; i < n_fetches && !s->failed; i++)
            answer_fetch(s, mb, &fetches[i]);
        if (!persisting) {
            if (mb->disk.n_pend == 0)
                raft_persisted(mb->r, rd.seq);
            else
                mb->disk.pend[mb->disk.n_pend - 1].ack_seq = rd.seq;
        }
        if (from != 0)
            sim_check_log_range(s, mb, from, to);
        if (want_snapshot && !s->failed)
            take_snapshot(s, mb);
        sim_client_serve_reads(s, mb);
        if (mb->crash_now) {
            mb->crash_now = false;
            sim_member_crash(s, mb, "right after acknowledging an append");
            sim_nemesis_after_ack_crash(s, mb);
            return;
        }
    }
}

void sim_member_persisted(sim *s, sim_member *mb)
{
    uint64_t ack = 0;
    char err[256];
    if (!sim_disk_sync_oldest(&mb->disk, &ack, err, sizeof(err))) {
        sim_fail(s, "wal", "member %llu: %s", (unsigned long long)mb->id, err);
        return;
    }
    sim_trace(s, "persisted", mb->slot, ack, sim_disk_last_index(&mb->disk), mb->disk.hs.commit);
    raft_persisted(mb->r, ack);
    sim_member_drive(s, mb);
}
