/* Unit test of cord-bench's latency histogram. */
#include <assert.h>
#include <stdio.h>

#include "hist.h"

static hist_t h;

int main(void)
{
    /* Buckets are contiguous, increasing, and each value lands in the bucket that covers it. */
    uint64_t prev = 0;
    for (uint32_t i = 1; i < HIST_BUCKETS; i++) {
        uint64_t up = hist_bucket_upper(i);
        assert(up > prev);
        assert(hist_bucket_index(up) == i);
        assert(hist_bucket_index(prev + 1) == i);
        prev = up;
    }
    for (uint64_t v = 0; v < 5000000; v += 7) {
        uint64_t up = hist_bucket_upper(hist_bucket_index(v));
        assert(up >= v);
        assert(up - v <= v / 64 + 1); /* relative error bound */
    }
    /* Percentiles of 1..10000 us. */
    hist_init(&h);
    assert(hist_percentile(&h, 50) == 0);
    for (uint64_t v = 1; v <= 10000; v++)
        hist_record(&h, v);
    assert(h.total == 10000 && h.max_us == 10000);
    uint64_t p50 = hist_percentile(&h, 50), p99 = hist_percentile(&h, 99),
             p999 = hist_percentile(&h, 99.9);
    assert(p50 >= 5000 && p50 <= 5000 + 5000 / 64 + 1);
    assert(p99 >= 9900 && p99 <= 9900 + 9900 / 64 + 1);
    assert(p999 >= 9990 && p999 <= 10000);
    assert(hist_percentile(&h, 100) == 10000);
    assert(hist_percentile(&h, 0) == 1);
    /* Capped values. */
    hist_record(&h, UINT64_MAX);
    assert(h.max_us == HIST_MAX_US);
    printf("hist ok\n");
    return 0;
}
