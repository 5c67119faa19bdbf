/*
 * lease_table.c — the in-memory lease table: lookup, leader deadlines, expiry, errors.
 */
#include "lease/lease_internal.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                     */

const char *lease_strerror(int code)
{
    switch (code) {
    case LEASE_OK:
        return "ok";
    case LEASE_ENOTFOUND:
        return "etcdserver: requested lease not found";
    case LEASE_EEXISTS:
        return "etcdserver: lease already exists";
    case LEASE_ETTLTOOLARGE:
        return "etcdserver: too large lease TTL";
    case LEASE_ENOTLEADER:
        return "etcdserver: not leader";
    case LEASE_EEXPIRED:
        return "etcdserver: requested lease not found";
    case LEASE_ETOOMANY:
        return "cord: too many leases";
    case LEASE_EINVAL:
        return "cord: invalid lease argument";
    case LEASE_ESTORAGE:
        return "cord: lease storage failure";
    case LEASE_ENOMEM:
        return "cord: out of memory";
    case LEASE_EBUSY:
        return "cord: an apply batch is open";
    case LEASE_ERESULT:
        return "cord: lease revoked; response too large";
    default:
        return "unknown error";
    }
}

int lease_grpc_status(int code, const char **message)
{
    int status;
    switch (code) {
    case LEASE_OK:
        status = 0;
        break;
    case LEASE_ENOTFOUND:
    case LEASE_EEXPIRED:
        status = 5;
        break; /* NotFound */
    case LEASE_EEXISTS:
        status = 9;
        break; /* FailedPrecondition */
    case LEASE_ETTLTOOLARGE:
        status = 11;
        break; /* OutOfRange */
    case LEASE_ENOTLEADER:
        status = 14;
        break; /* Unavailable */
    case LEASE_ETOOMANY:
        status = 8;
        break; /* ResourceExhausted */
    case LEASE_EINVAL:
        status = 3;
        break; /* InvalidArgument */
    default:
        status = 13;
        break; /* Internal */
    }
    if (message)
        *message = lease_strerror(code);
    return status;
}

int lease_seterr(cord_error *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    err->sys_errno = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

/* ---------------------------------------------------------------------------------------- */
/* Hash table                                                                                 */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static size_t slot_of(const lease_table *t, int64_t id)
{
    return (size_t)mix64((uint64_t)id) & (t->cap - 1);
}

lease_rec *lease_find(const lease_table *t, int64_t id)
{
    if (id == 0 || t->cap == 0)
        return NULL;
    for (size_t i = slot_of(t, id);; i = (i + 1) & (t->cap - 1)) {
        if (t->slots[i].id == 0)
            return NULL;
        if (t->slots[i].id == id)
            return &t->slots[i];
    }
}

static int grow(lease_table *t)
{
    size_t ncap = t->cap ? t->cap * 2 : 64;
    lease_rec *ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return LEASE_ENOMEM;
    lease_rec *old = t->slots;
    size_t ocap = t->cap;
    t->slots = ns;
    t->cap = ncap;
    for (size_t i = 0; i < ocap; i++) {
        if (old[i].id == 0)
            continue;
        size_t j = slot_of(t, old[i].id);
        while (ns[j].id != 0)
            j = (j + 1) & (ncap - 1);
        ns[j] = old[i];
    }
    free(old);
    return LEASE_OK;
}

lease_rec *lease_insert(lease_table *t, int64_t id, int64_t ttl_s)
{
    assert(id != 0 && !lease_find(t, id));
    if ((t->count + 1) * 4 > t->cap * 3 && grow(t) != LEASE_OK)
        return NULL;
    size_t i = slot_of(t, id);
    while (t->slots[i].id != 0)
        i = (i + 1) & (t->cap - 1);
    t->slots[i] = (lease_rec){
        .id = id, .ttl_s = ttl_s, .deadline_ms = LEASE_FOREVER_MS, .check_ms = LEASE_FOREVER_MS};
    t->count++;
    return &t->slots[i];
}

void lease_remove(lease_table *t, int64_t id)
{
    lease_rec *r = lease_find(t, id);
    if (!r)
        return;
    size_t mask = t->cap - 1;
    size_t i = (size_t)(r - t->slots);
    /* backward-shift deletion keeps probe chains intact without tombstones */
    for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        if (t->slots[j].id == 0)
            break;
        size_t home = slot_of(t, t->slots[j].id);
        /* can slot j's entry move to i? yes if home is not cyclically in (i, j] */
        bool in_range = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i].id = 0;
    t->count--;
}

void lease_clear(lease_table *t)
{
    if (t->slots)
        memset(t->slots, 0, t->cap * sizeof(*t->slots));
    t->count = 0;
    t->heap_len = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Expiry heap                                                                                */

static bool heap_less(const lease_heap_item *a, const lease_heap_item *b)
{
    return a->at_ms < b->at_ms || (a->at_ms == b->at_ms && a->id < b->id);
}

static void heap_down(lease_table *t, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < t->heap_len && heap_less(&t->heap[l], &t->heap[m]))
            m = l;
        if (r < t->heap_len && heap_less(&t->heap[r], &t->heap[m]))
            m = r;
        if (m == i)
            return;
        lease_heap_item tmp = t->heap[i];
        t->heap[i] = t->heap[m];
        t->heap[m] = tmp;
        i = m;
    }
}

static void heap_pop(lease_table *t)
{
    assert(t->heap_len > 0);
    t->heap[0] = t->heap[--t->heap_len];
    heap_down(t, 0);
}

static void heap_rebuild(lease_table *t)
{
    t->heap_len = 0;
    if (!t->leader)
        return;
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].id != 0 && t->slots[i].check_ms != LEASE_FOREVER_MS) {
            assert(t->heap_len < t->heap_cap);
            t->heap[t->heap_len++] =
                (lease_heap_item){.at_ms = t->slots[i].check_ms, .id = t->slots[i].id};
        }
    }
    for (size_t i = t->heap_len / 2; i-- > 0;)
        heap_down(t, i);
}

int lease_heap_push(lease_table *t, int64_t at_ms, int64_t id)
{
    if (t->heap_len > 2 * t->count + 64 && t->heap_cap >= t->count)
        heap_rebuild(t); /* drop stale items (lazy deletion) */
    if (t->heap_len == t->heap_cap) {
        size_t ncap = t->heap_cap ? t->heap_cap * 2 : 64;
        lease_heap_item *nh = realloc(t->heap, ncap * sizeof(*nh));
        if (!nh)
            return LEASE_ENOMEM;
        t->heap = nh;
        t->heap_cap = ncap;
    }
    size_t i = t->heap_len++;
    t->heap[i] = (lease_heap_item){.at_ms = at_ms, .id = id};
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&t->heap[i], &t->heap[p]))
            break;
        lease_heap_item tmp = t->heap[i];
        t->heap[i] = t->heap[p];
        t->heap[p] = tmp;
        i = p;
    }
    return LEASE_OK;
}

int lease_set_deadline(lease_table *t, lease_rec *r, int64_t at_ms)
{
    r->deadline_ms = at_ms;
    r->check_ms = at_ms;
    if (!t->leader || at_ms == LEASE_FOREVER_MS)
        return LEASE_OK;
    return lease_heap_push(t, at_ms, r->id);
}

static int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX - 1;
    return a + b;
}

static int64_t ttl_ms(int64_t ttl_s)
{
    return ttl_s > (INT64_MAX / 4) / 1000 ? INT64_MAX / 4 : ttl_s * 1000;
}

/* ---------------------------------------------------------------------------------------- */
/* Table                                                                                      */

int64_t lease_min_ttl_s(int64_t election_timeout_ms)
{
    int64_t ms = election_timeout_ms * 3 / 2;
    int64_t s = (ms + 999) / 1000;
    return s < 1 ? 1 : s;
}

int lease_table_new(const lease_options *options, lease_table **out, cord_error *err)
{
    lease_options o = options ? *options : (lease_options){0};
    if (o.min_ttl_s < 0 || o.expired_retry_ms < 0)
        return lease_seterr(err, LEASE_EINVAL, "lease: negative option");
    if (!o.min_ttl_s)
        o.min_ttl_s = LEASE_DEFAULT_MIN_TTL_S;
    if (!o.max_leases)
        o.max_leases = LEASE_DEFAULT_MAX_LEASES;
    if (!o.expired_retry_ms)
        o.expired_retry_ms = LEASE_DEFAULT_RETRY_MS;
    if (!o.revoke_rate)
        o.revoke_rate = LEASE_DEFAULT_REVOKE_RATE;
    lease_table *t = calloc(1, sizeof(*t));
    if (!t)
        return lease_seterr(err, LEASE_ENOMEM, "lease: out of memory");
    t->opts = o;
    *out = t;
    return LEASE_OK;
}

void lease_table_free(lease_table *t)
{
    if (!t)
        return;
    free(t->slots);
    free(t->heap);
    free(t);
}

bool lease_exists(const lease_table *t, int64_t id)
{
    return lease_find(t, id) != NULL;
}

bool lease_exists_cb(void *t, int64_t id)
{
    return lease_exists(t, id);
}

size_t lease_count(const lease_table *t)
{
    return t->count;
}

bool lease_is_leader(const lease_table *t)
{
    return t->leader;
}

int64_t lease_id_for_index(const lease_table *t, uint64_t raft_index)
{
    uint64_t x = raft_index;
    for (;;) {
        x = mix64(x);
        int64_t id = (int64_t)(x & (uint64_t)INT64_MAX);
        if (id != 0 && !lease_find(t, id))
            return id;
    }
}

int lease_grant_check(const lease_table *t, int64_t id, int64_t ttl_s, cord_error *err)
{
    if (ttl_s > LEASE_MAX_TTL_S)
        return lease_seterr(err, LEASE_ETTLTOOLARGE, "%s", lease_strerror(LEASE_ETTLTOOLARGE));
    if (id != 0 && lease_find(t, id))
        return lease_seterr(err, LEASE_EEXISTS, "%s", lease_strerror(LEASE_EEXISTS));
    if (t->count >= t->opts.max_leases)
        return lease_seterr(err, LEASE_ETOOMANY, "%s (%u)", lease_strerror(LEASE_ETOOMANY),
                            t->opts.max_leases);
    return LEASE_OK;
}

typedef struct by_deadline {
    int64_t deadline_ms;
    int64_t id;
} by_deadline;

static int cmp_deadline(const void *a, const void *b)
{
    const by_deadline *x = a, *y = b;
    if (x->deadline_ms != y->deadline_ms)
        return x->deadline_ms < y->deadline_ms ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

void lease_promote(lease_table *t, int64_t now_ms, int64_t extend_ms)
{
    t->leader = true;
    for (size_t i = 0; i < t->cap; i++) {
        lease_rec *r = &t->slots[i];
        if (r->id == 0)
            continue;
        r->deadline_ms = sat_add(sat_add(now_ms, extend_ms), ttl_ms(r->ttl_s));
        r->check_ms = r->deadline_ms;
    }
    if (t->count >= t->opts.revoke_rate) {
        /* etcd's Promote: spread expiries so that at most 3/4 of the revoke rate expire in
         * any one-second window starting at a window's first expiry. */
        by_deadline *v = malloc(t->count * sizeof(*v));
        if (v) {
            size_t n = 0;
            for (size_t i = 0; i < t->cap; i++)
                if (t->slots[i].id)
                    v[n++] = (by_deadline){t->slots[i].deadline_ms, t->slots[i].id};
            qsort(v, n, sizeof(*v), cmp_deadline);
            int64_t target = (int64_t)t->opts.revoke_rate * 3 / 4;
            if (target < 1)
                target = 1;
            int64_t base = v[0].deadline_ms, next = base + 1000, expires = 0;
            for (size_t k = 0; k < n; k++) {
                if (v[k].deadline_ms > next) {
                    base = v[k].deadline_ms;
                    next = base + 1000;
                    expires = 1;
                    continue;
                }
                expires++;
                if (expires <= target)
                    continue;
                lease_rec *r = lease_find(t, v[k].id);
                r->deadline_ms = base + 1000 * expires / target;
                r->check_ms = r->deadline_ms;
            }
            free(v);
        } /* on ENOMEM the expiries are simply not spread */
    }
    if (t->heap_cap < t->count) {
        size_t ncap = t->count + 64;
        lease_heap_item *nh = realloc(t->heap, ncap * sizeof(*nh));
        if (nh) {
            t->heap = nh;
            t->heap_cap = ncap;
        }
    }
    if (t->heap_cap >= t->count) {
        heap_rebuild(t);
    } else { /* out of memory: push one by one as far as possible */
        t->heap_len = 0;
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i].id)
                (void)lease_heap_push(t, t->slots[i].check_ms, t->slots[i].id);
    }
}

void lease_demote(lease_table *t)
{
    t->leader = false;
    t->heap_len = 0;
    for (size_t i = 0; i < t->cap; i++) {
        t->slots[i].deadline_ms = LEASE_FOREVER_MS;
        t->slots[i].check_ms = LEASE_FOREVER_MS;
    }
}

int lease_renew(lease_table *t, int64_t id, int64_t now_ms, int64_t *ttl_s, cord_error *err)
{
    if (!t->leader)
        return lease_seterr(err, LEASE_ENOTLEADER, "%s", lease_strerror(LEASE_ENOTLEADER));
    lease_rec *r = lease_find(t, id);
    if (!r)
        return lease_seterr(err, LEASE_ENOTFOUND, "%s", lease_strerror(LEASE_ENOTFOUND));
    if (r->deadline_ms <= now_ms)
        return lease_seterr(err, LEASE_EEXPIRED, "%s", lease_strerror(LEASE_EEXPIRED));
    if (lease_set_deadline(t, r, sat_add(now_ms, ttl_ms(r->ttl_s))) != LEASE_OK)
        return lease_seterr(err, LEASE_ENOMEM, "lease: out of memory");
    if (ttl_s)
        *ttl_s = r->ttl_s;
    return LEASE_OK;
}

int lease_time_to_live(const lease_table *t, int64_t id, int64_t now_ms, int64_t *granted_ttl_s,
                       int64_t *remaining_ms, cord_error *err)
{
    if (!t->leader)
        return lease_seterr(err, LEASE_ENOTLEADER, "%s", lease_strerror(LEASE_ENOTLEADER));
    lease_rec *r = lease_find(t, id);
    if (!r)
        return lease_seterr(err, LEASE_ENOTFOUND, "%s", lease_strerror(LEASE_ENOTFOUND));
    if (granted_ttl_s)
        *granted_ttl_s = r->ttl_s;
    if (remaining_ms)
        *remaining_ms = r->deadline_ms - now_ms;
    return LEASE_OK;
}

int lease_ttl(const lease_table *t, int64_t id, int64_t *granted_ttl_s)
{
    lease_rec *r = lease_find(t, id);
    if (!r)
        return LEASE_ENOTFOUND;
    if (granted_ttl_s)
        *granted_ttl_s = r->ttl_s;
    return LEASE_OK;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

size_t lease_list(const lease_table *t, int64_t *out, size_t max)
{
    if (!out || max == 0)
        return t->count;
    if (max >= t->count) {
        size_t n = 0;
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i].id)
                out[n++] = t->slots[i].id;
        qsort(out, n, sizeof(*out), cmp_i64);
        return t->count;
    }
    /* partial: sort all in a temporary buffer, copy the smallest */
    int64_t *all = malloc(t->count * sizeof(*all));
    if (!all)
        return t->count; /* out left unfilled: only under memory exhaustion */
    size_t n = 0;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].id)
            all[n++] = t->slots[i].id;
    qsort(all, n, sizeof(*all), cmp_i64);
    memcpy(out, all, max * sizeof(*out));
    free(all);
    return t->count;
}

size_t lease_expired(lease_table *t, int64_t now_ms, int64_t *out_ids, size_t max)
{
    size_t n = 0;
    if (!t->leader)
        return 0;
    while (n < max && t->heap_len > 0 && t->heap[0].at_ms <= now_ms) {
        lease_heap_item top = t->heap[0];
        heap_pop(t);
        lease_rec *r = lease_find(t, top.id);
        if (!r || r->check_ms != top.at_ms)
            continue; /* stale */
        out_ids[n++] = r->id;
        r->check_ms = sat_add(now_ms, t->opts.expired_retry_ms);
        if (lease_heap_push(t, r->check_ms, r->id) != LEASE_OK)
            r->check_ms = LEASE_FOREVER_MS; /* ENOMEM: not re-reported; revoke still due */
    }
    return n;
}

int64_t lease_next_expiry_ms(lease_table *t, int64_t now_ms)
{
    if (!t->leader)
        return INT64_MAX;
    while (t->heap_len > 0) {
        lease_heap_item top = t->heap[0];
        lease_rec *r = lease_find(t, top.id);
        if (r && r->check_ms == top.at_ms)
            return top.at_ms <= now_ms ? 0 : top.at_ms - now_ms;
        heap_pop(t);
    }
    return INT64_MAX;
}
