/*
 * lincheck_history.c: the history: operations as given, with their keys
 * and values interned (each distinct byte string gets a small id, 0 meaning
 * "absent"), so that the checker compares values as integers.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lincheck/lincheck.h"
#include "lincheck/lincheck_internal.h"

#define LC_MAX_STRS (UINT32_MAX - 2u) /* ids stay clear of the checker's sentinels */

const char *lincheck_strerror(int rc)
{
    switch (rc) {
    case 0:
        return "success";
    case LINCHECK_ENOMEM:
        return "out of memory";
    case LINCHECK_EINVAL:
        return "invalid argument";
    case LINCHECK_EIO:
        return "input/output error";
    case LINCHECK_EPARSE:
        return "malformed input";
    case LINCHECK_ETOOBIG:
        return "limit exceeded";
    default:
        return "unknown error";
    }
}

void lincheck_set_error(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static uint64_t lc_hash_bytes(const char *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

int lincheck_grow(void **ptr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) {
        return 0;
    }
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem) {
            return LINCHECK_ENOMEM;
        }
        ncap *= 2;
    }
    void *p = realloc(*ptr, ncap * elem);
    if (p == NULL) {
        return LINCHECK_ENOMEM;
    }
    *ptr = p;
    *cap = ncap;
    return 0;
}

lincheck_history *lincheck_history_new(void)
{
    lincheck_history *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return NULL;
    }
    h->strs_len = 1;
    return h;
}

void lincheck_history_free(lincheck_history *h)
{
    if (h == NULL) {
        return;
    }
    free(h->ops);
    free(h->arena);
    free(h->strs);
    free(h->table);
    free(h);
}

void lincheck_history_reset(lincheck_history *h)
{
    assert(h != NULL);
    h->ops_len = 0;
    h->arena_len = 0;
    h->strs_len = 1;
    if (h->table != NULL) {
        memset(h->table, 0, h->table_cap * sizeof(h->table[0]));
    }
}

size_t lincheck_history_count(const lincheck_history *h)
{
    assert(h != NULL);
    return h->ops_len;
}

void lincheck_history_truncate(lincheck_history *h, size_t count)
{
    assert(h != NULL);
    assert(count <= h->ops_len);
    h->ops_len = count;
}

const char *lincheck_history_string(const lincheck_history *h, uint32_t id, size_t *len)
{
    assert(id >= 1 && id < h->strs_len);
    *len = h->strs[id].len;
    return h->arena + h->strs[id].off;
}

static int lc_table_rehash(lincheck_history *h, size_t ncap)
{
    uint32_t *t = calloc(ncap, sizeof(*t));
    if (t == NULL) {
        return LINCHECK_ENOMEM;
    }
    for (uint32_t id = 1; id < h->strs_len; id++) {
        uint64_t hv = lc_hash_bytes(h->arena + h->strs[id].off, h->strs[id].len);
        size_t i = (size_t)hv & (ncap - 1);
        while (t[i] != 0) {
            i = (i + 1) & (ncap - 1);
        }
        t[i] = id;
    }
    free(h->table);
    h->table = t;
    h->table_cap = ncap;
    return 0;
}

/* Find or add the string; *id gets its id (>= 1). */
static int lc_intern(lincheck_history *h, const char *p, size_t len, uint32_t *id)
{
    if (len > LINCHECK_MAX_STRING_LEN) {
        return LINCHECK_ETOOBIG;
    }
    if ((size_t)h->strs_len * 2 >= h->table_cap) {
        size_t ncap = h->table_cap ? h->table_cap * 2 : 256;
        int rc = lc_table_rehash(h, ncap);
        if (rc != 0) {
            return rc;
        }
    }
    uint64_t hv = lc_hash_bytes(p, len);
    size_t mask = h->table_cap - 1;
    size_t i = (size_t)hv & mask;
    while (h->table[i] != 0) {
        const lc_str *s = &h->strs[h->table[i]];
        if (s->len == len && memcmp(h->arena + s->off, p, len) == 0) {
            *id = h->table[i];
            return 0;
        }
        i = (i + 1) & mask;
    }
    if (h->strs_len >= LC_MAX_STRS) {
        return LINCHECK_ETOOBIG;
    }
    size_t scap = h->strs_cap;
    int rc = lincheck_grow((void **)&h->strs, &scap, (size_t)h->strs_len + 1, sizeof(*h->strs));
    if (rc != 0) {
        return rc;
    }
    h->strs_cap = (uint32_t)(scap > UINT32_MAX ? UINT32_MAX : scap);
    rc = lincheck_grow((void **)&h->arena, &h->arena_cap, h->arena_len + len + 1, 1);
    if (rc != 0) {
        return rc;
    }
    memcpy(h->arena + h->arena_len, p, len);
    h->arena[h->arena_len + len] = '\0';
    h->strs[h->strs_len].off = h->arena_len;
    h->strs[h->strs_len].len = len;
    h->arena_len += len + 1;
    h->table[i] = h->strs_len;
    *id = h->strs_len;
    h->strs_len++;
    return 0;
}

static size_t lc_len(const char *p, size_t len)
{
    return len != 0 ? len : strlen(p);
}

int lincheck_history_add(lincheck_history *h, const lincheck_op *op)
{
    if (h == NULL || op == NULL || op->key == NULL) {
        return LINCHECK_EINVAL;
    }
    if ((unsigned)op->kind > LINCHECK_DELETE || (unsigned)op->status > LINCHECK_STATUS_UNKNOWN) {
        return LINCHECK_EINVAL;
    }
    if ((op->kind == LINCHECK_WRITE || op->kind == LINCHECK_CAS) && op->value == NULL) {
        return LINCHECK_EINVAL;
    }
    if (op->status == LINCHECK_STATUS_OK &&
        (op->end == LINCHECK_TIME_NONE || op->end < op->start)) {
        return LINCHECK_EINVAL;
    }
    if (h->ops_len >= LINCHECK_MAX_OPS) {
        return LINCHECK_ETOOBIG;
    }
    int rc = lincheck_grow((void **)&h->ops, &h->ops_cap, h->ops_len + 1, sizeof(*h->ops));
    if (rc != 0) {
        return rc;
    }
    lc_op o = {
        .id = op->id,
        .client = op->client,
        .start = op->start,
        .end = op->status == LINCHECK_STATUS_OK ? op->end : LC_INF,
        .kind = (uint8_t)op->kind,
        .status = (uint8_t)op->status,
        .cas_result = op->kind == LINCHECK_CAS && op->cas_result,
    };
    rc = lc_intern(h, op->key, lc_len(op->key, op->key_len), &o.key);
    if (rc != 0) {
        return rc;
    }
    if (op->kind != LINCHECK_DELETE && op->value != NULL) {
        rc = lc_intern(h, op->value, lc_len(op->value, op->value_len), &o.value);
        if (rc != 0) {
            return rc;
        }
    }
    if (op->kind == LINCHECK_CAS && op->expect != NULL) {
        rc = lc_intern(h, op->expect, lc_len(op->expect, op->expect_len), &o.expect);
        if (rc != 0) {
            return rc;
        }
    }
    h->ops[h->ops_len++] = o;
    return 0;
}
