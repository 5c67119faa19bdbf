/*
 * keyrange.h: etcd's range end for a key prefix (clientv3.GetPrefixRangeEnd): the prefix with
 * its last byte below 0xff increased and the bytes after it dropped; "\0" (every key from the
 * start on) when every byte is 0xff. Shared by the server and cord-bench.
 */
#ifndef CORD_COMMON_KEYRANGE_H
#define CORD_COMMON_KEYRANGE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Writes the range end of prefix p[0..n) to out (room for max(n, 1) bytes); returns its length. */
static inline size_t key_prefix_end(const void *p, size_t n, uint8_t *out)
{
    if (n)
        memcpy(out, p, n);
    for (size_t i = n; i > 0; i--) {
        if (out[i - 1] < 0xff) {
            out[i - 1]++;
            return i;
        }
    }
    out[0] = 0;
    return 1;
}

#endif /* CORD_COMMON_KEYRANGE_H */
