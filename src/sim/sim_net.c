/*
 * sim_net.c: the simulated network. A message handed out by a member is
 * deep-copied (entries and data, which die at raft_advance), then may be
 * dropped (partition, loss), duplicated, delayed (a random delay per
 * message, so messages reorder; sometimes a long spike), and is delivered to
 * the member that owns its `to` id at that time, if it is up and the link is
 * not cut then either. SNAPSHOT chunks get their bytes here, from the
 * sender's own snapshot, as the real transport fills them from its file.
 *
 * Forwarded proposals (PROPOSE) are never duplicated: the transport is
 * TCP-like (no duplicates on one connection), and a duplicated proposal
 * would be a second, distinct client command as far as Raft is concerned.
 */
#include "sim/sim.h"

#include <stdlib.h>
#include <string.h>

struct sim_msg {
    raft_msg m;
    uint32_t from_slot;
    raft_entry ents[];
};

void sim_net_free_msg(sim_msg *msg)
{
    free(msg);
}

static uint32_t slot_of(raft_id id)
{
    return id == 0 ? UINT32_MAX : (uint32_t)((id - 1) % 10);
}

sim_member *sim_member_by_id(sim *s, raft_id id)
{
    uint32_t slot = slot_of(id);
    if (slot >= s->n_slots)
        return NULL;
    sim_member *mb = &s->m[slot];
    if (mb->state == SIM_SLOT_EMPTY || mb->id != id)
        return NULL;
    return mb;
}

static sim_msg *msg_copy(const raft_msg *m, uint32_t from_slot, const uint8_t *chunk)
{
    size_t data = 0;
    for (uint32_t i = 0; i < m->n_entries; i++)
        data += m->entries[i].len;
    if (chunk)
        data += m->len;
    size_t sz = sizeof(sim_msg) + (size_t)m->n_entries * sizeof(raft_entry) + data;
    sim_msg *c = malloc(sz);
    if (!c)
        abort();
    c->m = *m;
    c->from_slot = from_slot;
    uint8_t *p = (uint8_t *)(c->ents + m->n_entries);
    for (uint32_t i = 0; i < m->n_entries; i++) {
        c->ents[i] = m->entries[i];
        if (m->entries[i].len > 0) {
            memcpy(p, m->entries[i].data, m->entries[i].len);
            c->ents[i].data = p;
            p += m->entries[i].len;
        } else {
            c->ents[i].data = NULL;
        }
    }
    c->m.entries = m->n_entries > 0 ? c->ents : NULL;
    c->m.data = NULL;
    if (chunk) {
        if (m->len > 0)
            memcpy(p, chunk, m->len);
        c->m.data = p;
    }
    return c;
}

static const sim_snap *find_snap(const sim_member *mb, uint64_t index)
{
    for (int i = 0; i < SIM_KEEP_SNAPS; i++)
        if (mb->snaps[i].index == index && index != 0)
            return &mb->snaps[i];
    return NULL;
}

void sim_net_send(sim *s, sim_member *from, const raft_msg *m)
{
    s->st.msgs++;
    if (s->now - s->msg_window_start >= SIM_SEC) {
        s->msg_window_start = s->now;
        s->msg_window_count = 0;
    }
    if (++s->msg_window_count > SIM_MAX_MSGS_PER_S) {
        sim_fail(s, "message-storm",
                 "more than %u messages within one simulated second (now %s from %llu to %llu)",
                 SIM_MAX_MSGS_PER_S, raft_msg_type_name(m->type), (unsigned long long)m->from,
                 (unsigned long long)m->to);
        return;
    }
    const uint8_t *chunk = NULL;
    if (m->type == RAFT_MSG_SNAPSHOT) {
        const sim_snap *sn = find_snap(from, m->log_index);
        if (!sn) {
            sim_fail(s, "snapshot-send",
                     "member %llu sends a chunk of snapshot %llu it does not have (newest %llu)",
                     (unsigned long long)from->id, (unsigned long long)m->log_index,
                     (unsigned long long)from->snaps[0].index);
            return;
        }
        if (sn->term != m->log_term || sn->len != m->snapshot_size ||
            m->offset + m->len > sn->len) {
            sim_fail(s, "snapshot-send",
                     "member %llu: chunk of snapshot %llu (term %llu size %llu off %llu len %u) "
                     "does not fit its snapshot (term %llu size %u)",
                     (unsigned long long)from->id, (unsigned long long)m->log_index,
                     (unsigned long long)m->log_term, (unsigned long long)m->snapshot_size,
                     (unsigned long long)m->offset, m->len, (unsigned long long)sn->term, sn->len);
            return;
        }
        chunk = sn->data + m->offset;
        if (m->offset == 0)
            s->st.snapshots_sent++;
    }
    uint32_t to_slot = slot_of(m->to);
    bool cut = to_slot < s->n_slots && s->cut[from->slot][to_slot];
    if (cut || sim_rng_chance(&s->rng, s->prof.loss_ppm)) {
        s->st.dropped++;
        sim_trace_msg(s, cut ? "drop-cut" : "drop-loss", m);
        return;
    }
    int copies = 1;
    if (m->type != RAFT_MSG_PROPOSE && sim_rng_chance(&s->rng, s->prof.dup_ppm)) {
        copies = 2;
        s->st.duplicated++;
    }
    for (int i = 0; i < copies; i++) {
        sim_msg *c = msg_copy(m, from->slot, chunk);
        sim_time delay = sim_rng_range(&s->rng, s->prof.delay_min_us, s->prof.delay_max_us);
        if (s->phase == SIM_PHASE_SAFETY && sim_rng_chance(&s->rng, s->prof.spike_ppm))
            delay += sim_rng_range(&s->rng, 0, s->prof.spike_max_us);
        sim_trace_msg(s, i == 0 ? "send" : "send-dup", &c->m);
        sim_event ev = {
            .at = s->now + delay, .kind = SIM_EV_DELIVER, .slot = (uint8_t)to_slot, .msg = c};
        sim_queue_push(&s->q, &ev);
    }
}

void sim_net_deliver(sim *s, sim_msg *msg)
{
    sim_member *mb = sim_member_by_id(s, msg->m.to);
    if (!mb || mb->state != SIM_SLOT_UP) {
        /* connection refused: the sender's transport learns it */
        sim_trace_msg(s, "drop-down", &msg->m);
        sim_member *from = sim_member_by_id(s, msg->m.from);
        raft_id to = msg->m.to;
        sim_net_free_msg(msg);
        if (from && from->state == SIM_SLOT_UP && from->paused_until <= s->now) {
            raft_report_unreachable(from->r, to);
            sim_member_drive(s, from);
        }
        return;
    }
    if (s->cut[msg->from_slot][mb->slot]) {
        s->st.dropped++;
        sim_trace_msg(s, "drop-cut", &msg->m);
        sim_net_free_msg(msg);
        return;
    }
    sim_trace_msg(s, "deliver", &msg->m);
    int rc = raft_step(mb->r, &msg->m);
    if (rc == RAFT_EINVAL)
        sim_fail(s, "message", "member %llu refused a %s from %llu as malformed",
                 (unsigned long long)mb->id, raft_msg_type_name(msg->m.type),
                 (unsigned long long)msg->m.from);
    sim_net_free_msg(msg);
    sim_member_drive(s, mb);
}

void sim_net_heal(sim *s)
{
    memset(s->cut, 0, sizeof(s->cut));
    s->partitioned = false;
}
