/*
 * sim_disk.c: a member's simulated disk, modelled on a write-ahead log.
 *
 * Each ready batch appends its writes (snapshot install, entries, hard
 * state, in that order) to the unsynced tail. After a disk latency the
 * oldest batch is synced: its writes join the durable image. A crash keeps
 * the durable image plus a prefix of the unsynced writes (the OS may have
 * flushed some of them; the last one kept may end mid-batch: a torn write
 * whose broken record the WAL's checksum drops), and loses the rest.
 * A member's own snapshot is written and synced at once (write to a temp
 * file, fsync, rename), after which the durable log drops what it covers.
 */
#include "sim/sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ logs */

void sim_log_clear(sim_log *l)
{
    sim_log_truncate(l, 0);
}

void sim_log_free(sim_log *l)
{
    sim_log_clear(l);
    free(l->e);
    memset(l, 0, sizeof(*l));
}

void sim_log_push(sim_log *l, const raft_entry *e)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        raft_entry *p = realloc(l->e, ncap * sizeof(*p));
        if (!p)
            abort();
        l->e = p;
        l->cap = ncap;
    }
    raft_entry c = *e;
    c.data = NULL;
    if (e->len > 0) {
        uint8_t *d = malloc(e->len);
        if (!d)
            abort();
        memcpy(d, e->data, e->len);
        c.data = d;
    }
    l->e[l->n++] = c;
}

void sim_log_truncate(sim_log *l, size_t keep)
{
    while (l->n > keep) {
        l->n--;
        free((void *)l->e[l->n].data);
        l->e[l->n].data = NULL;
    }
}

void sim_log_drop_front(sim_log *l, size_t n)
{
    if (n > l->n)
        n = l->n;
    for (size_t i = 0; i < n; i++)
        free((void *)l->e[i].data);
    memmove(l->e, l->e + n, (l->n - n) * sizeof(raft_entry));
    l->n -= n;
}

/* ------------------------------------------------------------------ disk */

void sim_disk_init(sim_disk *d)
{
    memset(d, 0, sizeof(*d));
}

static void batch_free(sim_batch *b)
{
    sim_snap_clear(&b->snap);
    sim_log_free(&b->ents);
}

void sim_disk_free(sim_disk *d)
{
    for (size_t i = 0; i < d->n_pend; i++)
        batch_free(&d->pend[i]);
    free(d->pend);
    sim_snap_clear(&d->snap);
    sim_log_free(&d->log);
    memset(d, 0, sizeof(*d));
}

void sim_disk_wipe(sim_disk *d)
{
    sim_disk_free(d);
}

sim_batch *sim_disk_push(sim_disk *d, uint64_t seq)
{
    if (d->n_pend == d->cap_pend) {
        size_t ncap = d->cap_pend ? d->cap_pend * 2 : 8;
        sim_batch *p = realloc(d->pend, ncap * sizeof(*p));
        if (!p)
            abort();
        d->pend = p;
        d->cap_pend = ncap;
    }
    sim_batch *b = &d->pend[d->n_pend++];
    memset(b, 0, sizeof(*b));
    b->seq = seq;
    b->ack_seq = seq;
    return b;
}

uint64_t sim_disk_last_index(const sim_disk *d)
{
    return d->snap.index + d->log.n;
}

uint64_t sim_disk_term(const sim_disk *d, uint64_t index)
{
    if (index == 0)
        return 0;
    if (index == d->snap.index)
        return d->snap.term;
    if (index <= d->snap.index || index > sim_disk_last_index(d))
        return 0;
    return d->log.e[index - d->snap.index - 1].term;
}

static void apply_snap(sim_disk *d, sim_snap *s)
{
    /* an installed snapshot replaces everything: the log restarts after it */
    sim_snap_clear(&d->snap);
    d->snap = *s;
    memset(s, 0, sizeof(*s));
    sim_log_clear(&d->log);
}

/* Writes entries [0, n) of ents: the log from ents[0].index on is replaced. */
static bool apply_entries(sim_disk *d, const sim_log *ents, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const raft_entry *e = &ents->e[i];
        if (e->index <= d->snap.index)
            continue; /* covered by the snapshot */
        uint64_t last = sim_disk_last_index(d);
        if (i == 0 || e->index <= last) {
            if (e->index > last + 1) {
                snprintf(err, errlen,
                         "WAL write of entry %llu leaves a gap (durable log ends at %llu)",
                         (unsigned long long)e->index, (unsigned long long)last);
                return false;
            }
            sim_log_truncate(&d->log, e->index - d->snap.index - 1);
        } else if (e->index != last + 1) {
            snprintf(err, errlen, "WAL batch entries not contiguous at %llu",
                     (unsigned long long)e->index);
            return false;
        }
        sim_log_push(&d->log, e);
    }
    return true;
}

static void remove_oldest(sim_disk *d)
{
    batch_free(&d->pend[0]);
    memmove(d->pend, d->pend + 1, (d->n_pend - 1) * sizeof(sim_batch));
    d->n_pend--;
}

bool sim_disk_sync_oldest(sim_disk *d, uint64_t *ack_seq, char *err, size_t errlen)
{
    if (d->n_pend == 0) {
        snprintf(err, errlen, "sync with nothing pending");
        return false;
    }
    sim_batch *b = &d->pend[0];
    *ack_seq = b->ack_seq;
    if (b->has_snap)
        apply_snap(d, &b->snap);
    bool ok = apply_entries(d, &b->ents, b->ents.n, err, errlen);
    if (b->has_hs)
        d->hs = b->hs;
    remove_oldest(d);
    return ok;
}

size_t sim_disk_pending_units(const sim_disk *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n_pend; i++)
        n += (d->pend[i].has_snap ? 1 : 0) + d->pend[i].ents.n + (d->pend[i].has_hs ? 1 : 0);
    return n;
}

bool sim_disk_crash(sim_disk *d, size_t keep_units, char *err, size_t errlen)
{
    size_t total = sim_disk_pending_units(d);
    bool ok = true;
    size_t left = keep_units;
    while (d->n_pend > 0) {
        sim_batch *b = &d->pend[0];
        if (left > 0 && b->has_snap) {
            apply_snap(d, &b->snap);
            left--;
        } else if (b->has_snap) {
            left = 0;
        }
        size_t n = b->ents.n < left ? b->ents.n : left;
        if (n > 0 && ok)
            ok = apply_entries(d, &b->ents, n, err, errlen);
        left -= n;
        if (n < b->ents.n)
            left = 0; /* torn inside the entries: nothing after survives */
        if (left > 0 && b->has_hs) {
            d->hs = b->hs;
            left--;
        }
        remove_oldest(d);
    }
    d->torn_units += keep_units < total ? keep_units : total;
    d->lost_units += keep_units < total ? total - keep_units : 0;
    return ok;
}

void sim_disk_put_snapshot(sim_disk *d, const sim_snap *s)
{
    if (s->index <= d->snap.index)
        return;
    uint64_t covered = s->index - d->snap.index;
    sim_log_drop_front(&d->log, covered > d->log.n ? d->log.n : (size_t)covered);
    uint64_t old_index = d->snap.index;
    sim_snap_copy(&d->snap, s);
    (void)old_index;
}
