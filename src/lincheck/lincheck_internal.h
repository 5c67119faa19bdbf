/*
 * lincheck_internal.h: what the files of the lincheck module share and
 * nobody else needs.
 */
#ifndef CORD_LINCHECK_INTERNAL_H
#define CORD_LINCHECK_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lincheck/lincheck.h"

#define LC_INF UINT64_MAX /* end time of an operation that never returned */

/* A string in the history's arena. Ids index lincheck_history.strs; id 0
 * is never a string: it stands for "absent". */
typedef struct lc_str {
    size_t off; /* into arena */
    size_t len;
} lc_str;

typedef struct lc_op {
    uint64_t id;
    uint64_t client;
    uint64_t start;
    uint64_t end;    /* LC_INF unless status ok */
    uint32_t key;    /* string id, >= 1 */
    uint32_t value;  /* string id, 0 = absent */
    uint32_t expect; /* string id, 0 = absent */
    uint8_t kind;
    uint8_t status;
    bool cas_result;
} lc_op;

struct lincheck_history {
    lc_op *ops;
    size_t ops_len;
    size_t ops_cap;
    char *arena;
    size_t arena_len;
    size_t arena_cap;
    lc_str *strs; /* strs[0] unused: id 0 is "absent" */
    uint32_t strs_len;
    uint32_t strs_cap;
    uint32_t *table; /* open addressing, 0 = empty slot, else a string id */
    size_t table_cap;
};

/* The string with id `id` (>= 1): its bytes (NUL-terminated) and length. */
const char *lincheck_history_string(const lincheck_history *h, uint32_t id, size_t *len);

/* Grow *ptr (an array of *cap elements of `elem` bytes) to hold at least
 * `need`, doubling. Returns 0 or LINCHECK_ENOMEM (leaving it unchanged). */
int lincheck_grow(void **ptr, size_t *cap, size_t need, size_t elem);

/* Drop operations added after the first `count` (count <= current count).
 * Interned strings stay; they are harmless. */
void lincheck_history_truncate(lincheck_history *h, size_t count);

/* snprintf into err[0..errlen) when err is not NULL and errlen > 0. */
void lincheck_set_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
