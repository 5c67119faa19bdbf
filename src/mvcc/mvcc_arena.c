/*
 * mvcc_arena.c — bump allocator owning response memory.
 */
#include "mvcc/mvcc_internal.h"

#include <stdalign.h>
#include <stdlib.h>

#define ARENA_ALIGN       16u
#define ARENA_FIRST_CHUNK 4096u
#define ARENA_MAX_CHUNK   (1u << 20)

struct mvcc_arena_chunk {
    mvcc_arena_chunk *next;
    size_t cap;
    size_t used;
    alignas(ARENA_ALIGN) unsigned char data[];
};

void mvcc_arena_init(mvcc_arena *arena, size_t max_bytes)
{
    memset(arena, 0, sizeof(*arena));
    arena->max_bytes = max_bytes;
}

static size_t arena_limit(const mvcc_arena *a)
{
    return a->max_bytes ? a->max_bytes : MVCC_DEFAULT_ARENA_LIMIT_BYTES;
}

void *mvcc_arena_alloc(mvcc_arena *arena, size_t size)
{
    size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < size) {
        arena->exhausted = true;
        return NULL;
    }
    if (need == 0)
        need = ARENA_ALIGN;
    mvcc_arena_chunk *c = arena->chunks;
    if (c && c->cap - c->used >= need) {
        void *p = c->data + c->used;
        c->used += need;
        return p;
    }
    size_t cap = c ? c->cap * 2 : ARENA_FIRST_CHUNK;
    if (cap > ARENA_MAX_CHUNK)
        cap = ARENA_MAX_CHUNK;
    if (cap < need)
        cap = need;
    size_t total = sizeof(mvcc_arena_chunk) + cap;
    if (total < cap || arena->used_bytes + total > arena_limit(arena)) {
        arena->exhausted = true;
        return NULL;
    }
    mvcc_arena_chunk *nc = malloc(total);
    if (!nc) {
        arena->exhausted = true;
        return NULL;
    }
    nc->cap = cap;
    nc->used = need;
    arena->used_bytes += total;
    /* A big one-off allocation goes behind the current chunk so the current chunk's free
     * space stays usable. */
    if (c && cap == need && c->cap - c->used > 0) {
        nc->next = c->next;
        c->next = nc;
    } else {
        nc->next = c;
        arena->chunks = nc;
    }
    return nc->data;
}

void mvcc_arena_reset(mvcc_arena *arena)
{
    mvcc_arena_chunk *c = arena->chunks;
    while (c) {
        mvcc_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    arena->chunks = NULL;
    arena->used_bytes = 0;
    arena->exhausted = false;
}
