/*
 * lease_internal.h — the table's layout, shared by lease_table.c (memory, expiry) and
 * lease_store.c (LMDB records). Not part of the API.
 */
#ifndef CORD_LEASE_INTERNAL_H
#define CORD_LEASE_INTERNAL_H

#include "lease/lease.h"

#include <lmdb.h>

typedef struct lease_rec {
    int64_t id; /* 0: free slot */
    int64_t ttl_s;
    int64_t deadline_ms; /* LEASE_FOREVER_MS on a follower */
    int64_t check_ms;    /* heap key: deadline, or the retry time after being reported */
} lease_rec;

typedef struct lease_heap_item {
    int64_t at_ms;
    int64_t id;
} lease_heap_item;

struct lease_table {
    lease_options opts;
    /* open addressing, linear probing, backward-shift deletion; cap is a power of two */
    lease_rec *slots;
    size_t cap;
    size_t count;
    bool leader;
    /* min-heap of (check_ms, id) with lazy deletion: an item is live when the lease exists
     * and its check_ms equals at_ms. */
    lease_heap_item *heap;
    size_t heap_len, heap_cap;
    mvcc_store *store;
    bool loaded; /* the records were read from the store (lease_load/lease_reload) */
};

lease_rec *lease_find(const lease_table *t, int64_t id);
/* Inserts a new record (id must be absent). Returns NULL on ENOMEM. */
lease_rec *lease_insert(lease_table *t, int64_t id, int64_t ttl_s);
void lease_remove(lease_table *t, int64_t id);
void lease_clear(lease_table *t);
int lease_heap_push(lease_table *t, int64_t at_ms, int64_t id);
/* Sets deadline (and check time) of r to at_ms and queues it when leader. */
int lease_set_deadline(lease_table *t, lease_rec *r, int64_t at_ms);
int lease_seterr(cord_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
