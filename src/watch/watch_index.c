/*
 * watch_index.c — the delivery index of synced watchers: single-key watchers in buckets by
 * key (etcd's keyWatchers), the others in a range list; and the per-notify chains of events
 * with equal keys, so a notify costs O(events + matched watchers + range watchers).
 */
#include "watch/watch_internal.h"

#include <stdlib.h>
#include <string.h>

uint64_t watch_hash_key(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

kbucket *watch_bucket_find(const watch_hub *h, uint64_t hash, const uint8_t *key, size_t len)
{
    if (h->kb_cap == 0)
        return NULL;
    for (kbucket *b = h->kb[hash & (h->kb_cap - 1)]; b; b = b->next)
        if (b->hash == hash && b->len == len && (len == 0 || !memcmp(b->key, key, len)))
            return b;
    return NULL;
}

static bool buckets_grow(watch_hub *h)
{
    size_t ncap = h->kb_cap ? h->kb_cap * 2 : 64;
    kbucket **nk = calloc(ncap, sizeof(*nk));
    if (!nk)
        return false;
    for (size_t i = 0; i < h->kb_cap; i++) {
        for (kbucket *b = h->kb[i], *next; b; b = next) {
            next = b->next;
            b->next = nk[b->hash & (ncap - 1)];
            nk[b->hash & (ncap - 1)] = b;
        }
    }
    free(h->kb);
    h->kb = nk;
    h->kb_cap = ncap;
    return true;
}

static void list_push(watcher **head, watcher *w)
{
    w->sprev = NULL;
    w->snext = *head;
    if (*head)
        (*head)->sprev = w;
    *head = w;
}

static void list_unlink(watcher **head, watcher *w)
{
    if (w->sprev)
        w->sprev->snext = w->snext;
    else
        *head = w->snext;
    if (w->snext)
        w->snext->sprev = w->sprev;
    w->sprev = w->snext = NULL;
}

/* Adds a synced watcher to the delivery index: its key's bucket, or the range list (also
 * the fallback when a bucket cannot be allocated: the range list matches any watcher). */
void watch_index_add(watch_hub *h, watcher *w)
{
    w->bucket = NULL;
    if (w->end_len == 0) {
        uint64_t hash = watch_hash_key(w->key, w->key_len);
        kbucket *b = watch_bucket_find(h, hash, w->key, w->key_len);
        if (!b && (h->kb_count + 1 <= h->kb_cap || buckets_grow(h))) {
            b = calloc(1, sizeof(*b));
            if (b && !(b->key = malloc(w->key_len ? w->key_len : 1))) {
                free(b);
                b = NULL;
            }
            if (b) {
                memcpy(b->key, w->key, w->key_len);
                b->len = w->key_len;
                b->hash = hash;
                size_t i = hash & (h->kb_cap - 1);
                b->next = h->kb[i];
                h->kb[i] = b;
                h->kb_count++;
            }
        }
        if (b) {
            w->bucket = b;
            list_push(&b->head, w);
            return;
        }
    }
    list_push(&h->ranges, w);
}

void watch_index_remove(watch_hub *h, watcher *w)
{
    kbucket *b = w->bucket;
    if (!b) {
        list_unlink(&h->ranges, w);
        return;
    }
    list_unlink(&b->head, w);
    w->bucket = NULL;
    if (b->head)
        return;
    kbucket **pp = &h->kb[b->hash & (h->kb_cap - 1)];
    while (*pp != b)
        pp = &(*pp)->next;
    *pp = b->next;
    h->kb_count--;
    free(b->key);
    free(b);
}

/* Links events with equal keys: chain_next[i] is the next index with the same key
 * (SIZE_MAX: none), chain_first[i] whether i is the first. Returns false on ENOMEM. */
bool watch_build_chains(watch_hub *h, const watch_event *ev, size_t n)
{
    if (n > h->chain_cap) {
        size_t *cn = realloc(h->chain_next, n * sizeof(*cn));
        if (!cn)
            return false;
        h->chain_next = cn;
        bool *cf = realloc(h->chain_first, n * sizeof(*cf));
        if (!cf)
            return false;
        h->chain_first = cf;
        h->chain_cap = n;
    }
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    if (cap > h->slots_cap) {
        size_t *sl = realloc(h->chain_slots, cap * sizeof(*sl));
        if (!sl)
            return false;
        h->chain_slots = sl;
        h->slots_cap = cap;
    }
    size_t *slots = h->chain_slots; /* index + 1 of the last event seen with that key */
    memset(slots, 0, cap * sizeof(*slots));
    for (size_t i = 0; i < n; i++) {
        h->chain_next[i] = SIZE_MAX;
        h->chain_first[i] = true;
        const watch_bytes *k = &ev[i].kv.key;
        size_t j = watch_hash_key(k->data, k->len) & (cap - 1);
        for (;; j = (j + 1) & (cap - 1)) {
            if (slots[j] == 0) {
                slots[j] = i + 1;
                break;
            }
            const watch_bytes *o = &ev[slots[j] - 1].kv.key;
            if (o->len == k->len && (k->len == 0 || !memcmp(o->data, k->data, k->len))) {
                h->chain_next[slots[j] - 1] = i;
                h->chain_first[i] = false;
                slots[j] = i + 1;
                break;
            }
        }
    }
    return true;
}
