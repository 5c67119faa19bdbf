/* hist.h: latency histogram with logarithmic buckets (HdrHistogram-like).
 *
 * Values are microseconds. Values below 128 us are counted exactly; above that each
 * power-of-two range is split into 64 sub-buckets, so a reported percentile is within
 * 1/64 (1.6%) of the true value. Values are capped at HIST_MAX_US. max is exact.
 */
#ifndef CORD_BENCH_HIST_H
#define CORD_BENCH_HIST_H

#include <stdint.h>

#define HIST_EXACT     128u
#define HIST_SUB       64u
#define HIST_MAX_SHIFT 34u /* up to 2^41 us */
#define HIST_BUCKETS   (HIST_EXACT + HIST_MAX_SHIFT * HIST_SUB)
#define HIST_MAX_US    ((UINT64_C(1) << (HIST_MAX_SHIFT + 7u)) - 1) /* ~25 days */

typedef struct hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total;
    uint64_t max_us;
    uint64_t sum_us;
} hist_t;

/* hist_init: zeroes h. */
void hist_init(hist_t *h);
/* hist_record: counts one value of us microseconds (capped at HIST_MAX_US). */
void hist_record(hist_t *h, uint64_t us);
/* hist_percentile: the value (us) at or below which q (0..100) percent of the recorded values
 * fall, as the upper bound of its bucket, never above the exact max. 0 when empty. */
uint64_t hist_percentile(const hist_t *h, double q);
/* hist_bucket_index / hist_bucket_upper: exposed for tests. */
uint32_t hist_bucket_index(uint64_t us);
uint64_t hist_bucket_upper(uint32_t idx);

#endif
