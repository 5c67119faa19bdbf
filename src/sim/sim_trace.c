/*
 * sim_trace.c: the event trace. Every event of a run (ticks, message sends,
 * deliveries and drops with their fields, persistence, crashes, client
 * operations, faults) is folded into a 64-bit FNV-1a hash, which
 * `cord-sim --seed S --trace-hash` prints: the same seed must give the same
 * hash every time. With --verbose each event is also printed.
 */
#include "sim/sim.h"

#include <stdarg.h>
#include <string.h>

void sim_trace(sim *s, const char *what, uint32_t slot, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t h = s->trace_hash;
    h = sim_fnv_u64(h, s->now);
    h = sim_fnv(h, what, strlen(what));
    h = sim_fnv_u64(h, slot);
    h = sim_fnv_u64(h, a);
    h = sim_fnv_u64(h, b);
    h = sim_fnv_u64(h, c);
    s->trace_hash = h;
    if (s->opt.verbose)
        fprintf(s->opt.out, "%9llu.%03llu %-12s n%u %llu %llu %llu\n",
                (unsigned long long)(s->now / SIM_MS), (unsigned long long)(s->now % SIM_MS), what,
                slot, (unsigned long long)a, (unsigned long long)b, (unsigned long long)c);
}

void sim_trace_msg(sim *s, const char *what, const raft_msg *m)
{
    uint64_t h = s->trace_hash;
    h = sim_fnv_u64(h, s->now);
    h = sim_fnv(h, what, strlen(what));
    const uint64_t f[] = {m->type,          m->pre_vote,  m->reject,   m->force,
                          m->done,          m->from,      m->to,       m->term,
                          m->log_index,     m->log_term,  m->index,    m->commit,
                          m->hint_index,    m->hint_term, m->context,  m->offset,
                          m->snapshot_size, m->len,       m->n_entries};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        h = sim_fnv_u64(h, f[i]);
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const raft_entry *e = &m->entries[i];
        h = sim_fnv_u64(h, e->term);
        h = sim_fnv_u64(h, e->index);
        h = sim_fnv_u64(h, e->type);
        h = sim_fnv_u64(h, e->len);
        if (e->len > 0)
            h = sim_fnv(h, e->data, e->len);
    }
    if (m->len > 0 && m->data)
        h = sim_fnv(h, m->data, m->len);
    s->trace_hash = h;
    if (!s->opt.verbose)
        return;
    fprintf(s->opt.out,
            "%9llu.%03llu %-12s %s %llu->%llu t=%llu%s%s li=%llu lt=%llu idx=%llu c=%llu",
            (unsigned long long)(s->now / SIM_MS), (unsigned long long)(s->now % SIM_MS), what,
            raft_msg_type_name(m->type), (unsigned long long)m->from, (unsigned long long)m->to,
            (unsigned long long)m->term, m->pre_vote ? " pre" : "", m->reject ? " REJECT" : "",
            (unsigned long long)m->log_index, (unsigned long long)m->log_term,
            (unsigned long long)m->index, (unsigned long long)m->commit);
    if (m->n_entries > 0)
        fprintf(s->opt.out, " ents=%llu..%llu", (unsigned long long)m->entries[0].index,
                (unsigned long long)m->entries[m->n_entries - 1].index);
    if (m->type == RAFT_MSG_SNAPSHOT)
        fprintf(s->opt.out, " off=%llu len=%u size=%llu%s", (unsigned long long)m->offset, m->len,
                (unsigned long long)m->snapshot_size, m->done ? " done" : "");
    if (m->context)
        fprintf(s->opt.out, " ctx=%llu", (unsigned long long)m->context);
    if (m->reject && m->type == RAFT_MSG_APPEND_RESP)
        fprintf(s->opt.out, " hint=%llu/%llu", (unsigned long long)m->hint_index,
                (unsigned long long)m->hint_term);
    fputc('\n', s->opt.out);
}

void sim_trace_text(sim *s, const char *fmt, ...)
{
    if (!s->opt.verbose)
        return;
    fprintf(s->opt.out, "%9llu.%03llu ", (unsigned long long)(s->now / SIM_MS),
            (unsigned long long)(s->now % SIM_MS));
    va_list ap;
    va_start(ap, fmt);
    vfprintf(s->opt.out, fmt, ap);
    va_end(ap);
    fputc('\n', s->opt.out);
}
