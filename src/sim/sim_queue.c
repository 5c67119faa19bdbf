/*
 * sim_queue.c: the event queue, a binary min-heap ordered by (time, seq).
 * seq is the insertion order, so events at the same time pop FIFO and the
 * order is total: a seed replays the same sequence every time.
 */
#include "sim/sim.h"

#include <stdlib.h>
#include <string.h>

void sim_queue_init(sim_queue *q)
{
    memset(q, 0, sizeof(*q));
}

void sim_queue_free(sim_queue *q)
{
    for (size_t i = 0; i < q->n; i++)
        if (q->ev[i].msg)
            sim_net_free_msg(q->ev[i].msg);
    free(q->ev);
    memset(q, 0, sizeof(*q));
}

static bool before(const sim_event *a, const sim_event *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

void sim_queue_push(sim_queue *q, const sim_event *e)
{
    if (q->n == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 1024;
        sim_event *p = realloc(q->ev, ncap * sizeof(*p));
        if (!p)
            abort();
        q->ev = p;
        q->cap = ncap;
    }
    sim_event x = *e;
    x.seq = q->next_seq++;
    size_t i = q->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&x, &q->ev[parent]))
            break;
        q->ev[i] = q->ev[parent];
        i = parent;
    }
    q->ev[i] = x;
}

bool sim_queue_pop(sim_queue *q, sim_event *out)
{
    if (q->n == 0)
        return false;
    *out = q->ev[0];
    sim_event last = q->ev[--q->n];
    size_t i = 0;
    size_t n = q->n;
    while (n > 0) {
        size_t l = 2 * i + 1;
        if (l >= n)
            break;
        size_t c = l;
        if (l + 1 < n && before(&q->ev[l + 1], &q->ev[l]))
            c = l + 1;
        if (!before(&q->ev[c], &last))
            break;
        q->ev[i] = q->ev[c];
        i = c;
    }
    if (n > 0)
        q->ev[i] = last;
    return true;
}
