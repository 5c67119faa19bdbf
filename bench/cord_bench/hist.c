#include "hist.h"

#include <assert.h>
#include <string.h>

void hist_init(hist_t *h)
{
    memset(h, 0, sizeof(*h));
}

uint32_t hist_bucket_index(uint64_t us)
{
    if (us > HIST_MAX_US)
        us = HIST_MAX_US;
    if (us < HIST_EXACT)
        return (uint32_t)us;
    unsigned msb = 63u - (unsigned)__builtin_clzll(us); /* >= 7 */
    unsigned shift = msb - 6u;                          /* >= 1 */
    uint64_t sub = us >> shift;                         /* 64..127 */
    uint32_t idx = HIST_EXACT + (shift - 1u) * HIST_SUB + (uint32_t)(sub - HIST_SUB);
    assert(idx < HIST_BUCKETS);
    return idx;
}

uint64_t hist_bucket_upper(uint32_t idx)
{
    assert(idx < HIST_BUCKETS);
    if (idx < HIST_EXACT)
        return idx;
    uint32_t shift = (idx - HIST_EXACT) / HIST_SUB + 1u;
    uint64_t sub = (idx - HIST_EXACT) % HIST_SUB + HIST_SUB;
    return ((sub + 1u) << shift) - 1u;
}

void hist_record(hist_t *h, uint64_t us)
{
    if (us > HIST_MAX_US)
        us = HIST_MAX_US;
    h->counts[hist_bucket_index(us)]++;
    h->total++;
    h->sum_us += us;
    if (us > h->max_us)
        h->max_us = us;
}

uint64_t hist_percentile(const hist_t *h, double q)
{
    if (h->total == 0)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 100)
        q = 100;
    uint64_t rank = (uint64_t)((q / 100.0) * (double)h->total + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > h->total)
        rank = h->total;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = hist_bucket_upper(i);
            return v > h->max_us ? h->max_us : v;
        }
    }
    return h->max_us;
}
