/*
 * lincheck_test.c: the checker on classic cases, on histories generated from
 * real sequential executions, and against a brute-force reference.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lincheck/lincheck.h"

#define OK      LINCHECK_STATUS_OK
#define FAIL    LINCHECK_STATUS_FAIL
#define UNKNOWN LINCHECK_STATUS_UNKNOWN
#define NONE    LINCHECK_TIME_NONE

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

static void add_op(lincheck_history *h, uint64_t id, const char *key, lincheck_kind kind,
                   lincheck_status st, const char *value, const char *expect, bool result,
                   uint64_t start, uint64_t end)
{
    lincheck_op op = {
        .id = id,
        .client = id,
        .kind = kind,
        .status = st,
        .key = key,
        .value = value,
        .expect = expect,
        .cas_result = result,
        .start = start,
        .end = end,
    };
    assert_int_equal(lincheck_history_add(h, &op), 0);
}

static void w(lincheck_history *h, uint64_t id, const char *key, const char *v, uint64_t s,
              uint64_t e)
{
    add_op(h, id, key, LINCHECK_WRITE, OK, v, NULL, false, s, e);
}

static void w_st(lincheck_history *h, uint64_t id, const char *key, const char *v,
                 lincheck_status st, uint64_t s, uint64_t e)
{
    add_op(h, id, key, LINCHECK_WRITE, st, v, NULL, false, s, e);
}

static void r(lincheck_history *h, uint64_t id, const char *key, const char *v, uint64_t s,
              uint64_t e)
{
    add_op(h, id, key, LINCHECK_READ, OK, v, NULL, false, s, e);
}

static void cas(lincheck_history *h, uint64_t id, const char *key, const char *expect,
                const char *v, bool result, uint64_t s, uint64_t e)
{
    add_op(h, id, key, LINCHECK_CAS, OK, v, expect, result, s, e);
}

static void del(lincheck_history *h, uint64_t id, const char *key, lincheck_status st, uint64_t s,
                uint64_t e)
{
    add_op(h, id, key, LINCHECK_DELETE, st, NULL, NULL, false, s, e);
}

static lincheck_verdict check(lincheck_history *h, lincheck_result *res)
{
    assert_int_equal(lincheck_check(h, NULL, res), 0);
    return res->verdict;
}

static lincheck_verdict verdict_of(lincheck_history *h)
{
    lincheck_result res;
    return check(h, &res);
}

static int setup(void **state)
{
    *state = lincheck_history_new();
    return *state == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    lincheck_history_free(*state);
    return 0;
}

/* Deterministic PRNG for generated histories (splitmix64). */
typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *g)
{
    uint64_t z = (g->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rng_below(rng *g, uint64_t n)
{
    return rng_next(g) % n;
}

/* ---------------------------------------------------------------------- */
/* Classic cases                                                           */

static void test_empty(void **state)
{
    lincheck_history *h = *state;
    lincheck_result res;
    assert_int_equal(check(h, &res), LINCHECK_OK);
    assert_int_equal(res.keys_checked, 0);
    assert_int_equal(res.ops_total, 0);
    assert_null(res.key);
}

static void test_sequential_ok(void **state)
{
    lincheck_history *h = *state;
    r(h, 1, "k", NULL, 0, 5);
    w(h, 2, "k", "a", 10, 20);
    r(h, 3, "k", "a", 30, 40);
    cas(h, 4, "k", "a", "b", true, 50, 60);
    r(h, 5, "k", "b", 70, 80);
    del(h, 6, "k", OK, 90, 100);
    r(h, 7, "k", NULL, 110, 120);
    lincheck_result res;
    assert_int_equal(check(h, &res), LINCHECK_OK);
    assert_int_equal(res.keys_checked, 1);
    assert_int_equal(res.ops_total, 7);
    assert_int_equal(res.ops_checked, 7);
    assert_int_equal(res.limit, LINCHECK_LIMIT_NONE);
}

static void test_concurrent_read_sees_either(void **state)
{
    lincheck_history *h = *state;
    const char *seen[] = {"1", "2"};
    for (int i = 0; i < 2; i++) {
        lincheck_history_reset(h);
        w(h, 1, "k", "1", 0, 10);
        w(h, 2, "k", "2", 20, 60);
        r(h, 3, "k", seen[i], 30, 40);
        assert_int_equal(verdict_of(h), LINCHECK_OK);
    }
    /* ... but after the second write completed, only "2". */
    r(h, 4, "k", "1", 70, 80);
    assert_int_equal(verdict_of(h), LINCHECK_VIOLATION);
}

static void test_stale_read(void **state)
{
    lincheck_history *h = *state;
    w(h, 1, "k1", "1", 0, 10);
    w(h, 2, "k1", "2", 20, 30);
    r(h, 3, "k1", "1", 40, 50);
    lincheck_result res;
    assert_int_equal(check(h, &res), LINCHECK_VIOLATION);
    assert_int_equal(res.key_len, 2);
    assert_memory_equal(res.key, "k1", 2);
    assert_int_equal(res.op_id, 3);
    assert_non_null(strstr(res.explanation, "key \"k1\""));
    assert_non_null(strstr(res.explanation, "id=3 client=3 read -> \"1\" [40, 50] ok"));
    assert_non_null(strstr(res.explanation, "could hold when it returned: \"2\""));
    assert_non_null(strstr(res.explanation, "concurrent operations: none"));
    assert_non_null(strstr(res.explanation, "id=2 client=2 write \"2\" [20, 30] ok"));
}

static void test_read_of_never_written_value(void **state)
{
    lincheck_history *h = *state;
    w(h, 1, "k", "1", 0, 10);
    r(h, 2, "k", "7", 5, 50); /* concurrent, but nobody wrote "7" */
    lincheck_result res;
    assert_int_equal(check(h, &res), LINCHECK_VIOLATION);
    assert_int_equal(res.op_id, 2);
    assert_non_null(strstr(res.explanation, "id=1 client=1 write \"1\" [0, 10] ok"));
}

static void test_read_absent(void **state)
{
    lincheck_history *h = *state;
    r(h, 1, "k", NULL, 0, 10); /* before any write: fine */
    w(h, 2, "k", "1", 20, 30);
    r(h, 3, "k", NULL, 25, 40); /* concurrent with the write: fine */
    assert_int_equal(verdict_of(h), LINCHECK_OK);
    r(h, 4, "k", NULL, 50, 60); /* after it: the key cannot be absent */
    assert_int_equal(verdict_of(h), LINCHECK_VIOLATION);
}

static void test_touching_intervals_overlap(void **state)
{
    lincheck_history *h = *state;
    w(h, 1, "k", "1", 0, 10);
    r(h, 2, "k", NULL, 10, 20); /* end == start counts as concurrent */
    assert_int_equal(verdict_of(h), LINCHECK_OK);
    r(h, 3, "k", NULL, 11, 20);
    assert_int_equal(verdict_of(h), LINCHECK_VIOLATION);
}

static void test_unknown_write_observed(void **state)
{
    lincheck_history *h = *state;
    w(h, 1, "k", "1", 0, 10);
    w_st(h, 2, "k", "2", UNKNOWN, 20, NONE);
    r(h, 3, "k", "1", 30, 40);   /* it had not happened yet */
    r(h, 4, "k", "2", 500, 510); /* ... and then it had */
    r(h, 5, "k", "2", 600, 610);
    assert_int_equal(verdict_of(h), LINCHECK_OK);
    r(h, 6, "k", "1", 700, 710); /* nothing wrote "1" again */
    lincheck_result res;
    assert_int_equal(check(h, &res), LINCHECK_VIOLATION);
    assert_int_equal(res.op_id, 6);
}

static void test_unknown_write_observed_before_it_started(void **state)
{
    lincheck_history *h = *state;
    w_st(h, 1, "k", "2", UNKNOWN, 100, NONE);
    r(h, 2, "k", "2", 10, 50);
    assert_int_equal(verdict_of(h), LINCHECK_VIOLATION);
}

static void test_unknown_write_never_observed(void **state)
{
    lincheck_history *h = *state;
    w(h, 1, "k", "1", 0, 10);
    w_st(h, 2, "k", "2", UNKNOWN, 20, 30); /* end is ignored for unknown */
    r(h, 3, "k", "1", 100, 110);
    r(h, 4, "k", "1", 200, 210);
    assert_int_equal(verdict_of(h), LINCHECK_OK);
}

static void test_unknown_ops_not_droppable(void **state)
{
    lincheck_history *h = *state;
    /* Values are not unique, and a failed cas needs the unknown write to
     * explain it: only the search (not the simplification) can tell. */
    w(h, 1, "k", "a", 0, 10);
    w_st(h, 2, "k", "b", UNKNOWN, 20, NONE);
    cas(h, 3, "k", "a", "c", false, 30, 40); /* so the value was not "a" */
    w(h, 4, "k", "b", 50, 60);
    r(h, 5, "k", "b", 70, 80);
    assert_int_equal(verdict_of(h), LINCHECK_OK);

    lincheck_history_reset(h);
    w(h, 1, "k", "a", 0, 10);
    cas(h, 3, "k", "a", "c", false, 30, 40); /* no unknown write to explain it */
    w(h, 4, "k", "b", 50, 60);
    assert_int_equal(verdict_of(h), LINCHECK_VIOLATION);
}

static void test_unknown_delete(void **state)
{
    lincheck_history *h = *state;
    w(h, 1, "k", "1", 0, 10);
    del(h, 2, "k", UNKNOWN, 20, NONE);
    r(h, 3, "k", "1", 30, 40);
    r(h, 4, "k", NULL, 50, 60);
    assert_int_equal(verdict_of(h), LINCHECK_OK);
    r(h, 5, "k", "1", 70, 80);
    assert_int_equal(verdict_of(h), LINCHECK_VIOLATION);
}

static void test_unknown_and_failed_reads_ignored(void **state)
{
    lincheck_history *h = *state;
    w(h, 1, "k", "1", 0, 10);
    add_op(h, 2, "k", LINCHECK_READ, UNKNOWN, "nonsense", NULL, false, 20, NONE);
    add_op(h, 3, "k", LINCHECK_READ, FAIL, "nonsense", NULL, false, 20, 30);
    add_op(h, 4, "k", LINCHECK_READ, UNKNOWN, NULL, NULL, false, 20, NONE);
    lincheck_result res;
    assert_int_equal(check(h, &res), LINCHECK_OK);
    assert_int_equal(res.ops_total, 4);
    assert_int_equal(res.ops_checked, 3);
}

static void test_failed_write_did_not_happen(void **state)
{
    lincheck_history *h = *state;
    w(h, 1, "k", "1", 0, 10);
    w_st(h, 2, "k", "2", FAIL, 20, 30);
    r(h, 3, "k", "1", 40, 50);
    assert_int_equal(verdict_of(h), LINCHECK_OK);
    r(h, 4, "k", "2", 60, 70);
    assert_int_equal(verdict_of(h), LINCHECK_VIOLATION);
}

static void test_cas(void **state)
{
    lincheck_history *h = *state;
    /* swapped: consistent */
    w(h, 1, "k", "a", 0, 10);
    cas(h, 2, "k", "a", "b", true, 20, 30);
    r(h, 3, "k", "b", 40, 50);
    cas(h, 4, "k", "a", "c", false, 60, 70); /* value is "b": compare fails */
    r(h, 5, "k", "b", 80, 90);
    assert_int_equal(verdict_of(h), LINCHECK_OK);

    /* compare failed although the value surely equalled expect */
    lincheck_history_reset(h);
    w(h, 1, "k", "5", 0, 10);
    cas(h, 2, "k", "5", "6", false, 20, 30);
    assert_int_equal(verdict_of(h), LINCHECK_VIOLATION);

    /* swapped although the value surely differed */
    lincheck_history_reset(h);
    w(h, 1, "k", "5", 0, 10);
    cas(h, 2, "k", "4", "6", true, 20, 30);
    assert_int_equal(verdict_of(h), LINCHECK_VIOLATION);

    /* cas from absent (create-if-absent) */
    lincheck_history_reset(h);
    cas(h, 1, "k", NULL, "x", true, 0, 10);
    cas(h, 2, "k", NULL, "y", false, 20, 30);
    r(h, 3, "k", "x", 40, 50);
    assert_int_equal(verdict_of(h), LINCHECK_OK);

    /* two concurrent cas from the same value: only one may win */
    lincheck_history_reset(h);
    w(h, 1, "k", "0", 0, 10);
    cas(h, 2, "k", "0", "1", true, 20, 40);
    cas(h, 3, "k", "0", "2", true, 25, 45);
    assert_int_equal(verdict_of(h), LINCHECK_VIOLATION);

    /* ... while one winning and one losing is fine */
    lincheck_history_reset(h);
    w(h, 1, "k", "0", 0, 10);
    cas(h, 2, "k", "0", "1", true, 20, 40);
    cas(h, 3, "k", "0", "2", false, 25, 45);
    r(h, 4, "k", "1", 50, 60);
    assert_int_equal(verdict_of(h), LINCHECK_OK);
}

static void test_unknown_cas(void **state)
{
    lincheck_history *h = *state;
    w(h, 1, "k", "0", 0, 10);
    add_op(h, 2, "k", LINCHECK_CAS, UNKNOWN, "1", "0", false, 20, NONE);
    r(h, 3, "k", "1", 30, 40); /* it happened (and swapped) */
    assert_int_equal(verdict_of(h), LINCHECK_OK);

    /* an unknown cas whose compare could not succeed cannot explain "1" */
    lincheck_history_reset(h);
    w(h, 1, "k", "0", 0, 10);
    add_op(h, 2, "k", LINCHECK_CAS, UNKNOWN, "1", "9", false, 20, NONE);
    r(h, 3, "k", "1", 30, 40);
    assert_int_equal(verdict_of(h), LINCHECK_VIOLATION);
}

static void test_delete(void **state)
{
    lincheck_history *h = *state;
    w(h, 1, "k", "a", 0, 10);
    del(h, 2, "k", OK, 20, 30);
    r(h, 3, "k", NULL, 40, 50);
    cas(h, 4, "k", NULL, "b", true, 60, 70);
    r(h, 5, "k", "b", 80, 90);
    assert_int_equal(verdict_of(h), LINCHECK_OK);

    lincheck_history_reset(h);
    w(h, 1, "k", "a", 0, 10);
    del(h, 2, "k", OK, 20, 30);
    r(h, 3, "k", "a", 40, 50);
    assert_int_equal(verdict_of(h), LINCHECK_VIOLATION);
}

static void test_keys_independent(void **state)
{
    lincheck_history *h = *state;
    /* As one register this would be a violation; as two it is fine. */
    w(h, 1, "k1", "1", 0, 10);
    w(h, 2, "k2", "2", 20, 30);
    r(h, 3, "k1", "1", 40, 50);
    r(h, 4, "k2", "2", 60, 70);
    lincheck_result res;
    assert_int_equal(check(h, &res), LINCHECK_OK);
    assert_int_equal(res.keys_checked, 2);

    /* A violation on k2 is reported as k2's. */
    r(h, 5, "k2", NULL, 80, 90);
    assert_int_equal(check(h, &res), LINCHECK_VIOLATION);
    assert_int_equal(res.key_len, 2);
    assert_memory_equal(res.key, "k2", 2);
    assert_int_equal(res.op_id, 5);
}

static void test_binary_strings(void **state)
{
    lincheck_history *h = *state;
    lincheck_op op = {.id = 1,
                      .kind = LINCHECK_WRITE,
                      .status = OK,
                      .key = "k\0x",
                      .key_len = 3,
                      .value = "a\0b",
                      .value_len = 3,
                      .start = 0,
                      .end = 10};
    assert_int_equal(lincheck_history_add(h, &op), 0);
    op = (lincheck_op){.id = 2,
                       .kind = LINCHECK_READ,
                       .status = OK,
                       .key = "k\0x",
                       .key_len = 3,
                       .value = "a\0b",
                       .value_len = 3,
                       .start = 20,
                       .end = 30};
    assert_int_equal(lincheck_history_add(h, &op), 0);
    /* "k" (without the NUL and x) is a different key; "a" a different value */
    op = (lincheck_op){.id = 3,
                       .kind = LINCHECK_READ,
                       .status = OK,
                       .key = "k",
                       .value = NULL,
                       .start = 20,
                       .end = 30};
    assert_int_equal(lincheck_history_add(h, &op), 0);
    assert_int_equal(verdict_of(h), LINCHECK_OK);
    op = (lincheck_op){.id = 4,
                       .kind = LINCHECK_READ,
                       .status = OK,
                       .key = "k\0x",
                       .key_len = 3,
                       .value = "a",
                       .start = 40,
                       .end = 50};
    assert_int_equal(lincheck_history_add(h, &op), 0);
    assert_int_equal(verdict_of(h), LINCHECK_VIOLATION);
}

static void test_add_errors(void **state)
{
    lincheck_history *h = *state;
    lincheck_op op = {.kind = LINCHECK_WRITE, .status = OK, .key = "k", .value = "v", .end = 5};
    assert_int_equal(lincheck_history_add(NULL, &op), LINCHECK_EINVAL);
    assert_int_equal(lincheck_history_add(h, NULL), LINCHECK_EINVAL);
    lincheck_op bad = op;
    bad.key = NULL;
    assert_int_equal(lincheck_history_add(h, &bad), LINCHECK_EINVAL);
    bad = op;
    bad.value = NULL; /* a write needs a value */
    assert_int_equal(lincheck_history_add(h, &bad), LINCHECK_EINVAL);
    bad = op;
    bad.kind = (lincheck_kind)9;
    assert_int_equal(lincheck_history_add(h, &bad), LINCHECK_EINVAL);
    bad = op;
    bad.status = (lincheck_status)9;
    assert_int_equal(lincheck_history_add(h, &bad), LINCHECK_EINVAL);
    bad = op;
    bad.end = NONE; /* ok needs an end */
    assert_int_equal(lincheck_history_add(h, &bad), LINCHECK_EINVAL);
    bad = op;
    bad.start = 10; /* end before start */
    assert_int_equal(lincheck_history_add(h, &bad), LINCHECK_EINVAL);
    bad = op;
    bad.status = UNKNOWN;
    bad.end = NONE; /* fine for unknown */
    assert_int_equal(lincheck_history_add(h, &bad), 0);
    char *big = malloc(LINCHECK_MAX_STRING_LEN + 2);
    assert_non_null(big);
    memset(big, 'x', LINCHECK_MAX_STRING_LEN + 1);
    big[LINCHECK_MAX_STRING_LEN + 1] = '\0';
    bad = op;
    bad.value = big;
    assert_int_equal(lincheck_history_add(h, &bad), LINCHECK_ETOOBIG);
    free(big);
    assert_int_equal(lincheck_history_count(h), 1);

    lincheck_result res;
    assert_int_equal(lincheck_check(NULL, NULL, &res), LINCHECK_EINVAL);
    assert_int_equal(lincheck_check(h, NULL, NULL), LINCHECK_EINVAL);
    assert_string_equal(lincheck_strerror(LINCHECK_ENOMEM), "out of memory");
    assert_string_equal(lincheck_strerror(0), "success");
}

/* Many concurrent writes and reads of repeating values: a real search. */
static void add_hard_history(lincheck_history *h, bool linearizable)
{
    for (int c = 0; c < 9; c++) {
        char v[8];
        snprintf(v, sizeof(v), "%d", c % 3);
        w(h, (uint64_t)c + 1, "k", v, 0, 100);
    }
    for (int c = 0; c < 9; c++) {
        char v[8];
        snprintf(v, sizeof(v), "%d", (c + 1) % 3);
        r(h, (uint64_t)c + 20, "k", v, 0, 100);
    }
    if (!linearizable) {
        r(h, 40, "k", "9", 0, 100);
    }
}

static void test_search_limits(void **state)
{
    lincheck_history *h = *state;
    add_hard_history(h, false);
    lincheck_result res;
    lincheck_options opt = {.max_steps_per_key = 50};
    assert_int_equal(lincheck_check(h, &opt, &res), 0);
    assert_int_equal(res.verdict, LINCHECK_UNKNOWN);
    assert_int_equal(res.limit, LINCHECK_LIMIT_STEPS);
    assert_int_equal(res.steps, 50);
    assert_memory_equal(res.key, "k", 1);
    assert_non_null(strstr(res.explanation, "search limit of 50 steps"));

    opt = (lincheck_options){.max_memo_entries_per_key = 20};
    assert_int_equal(lincheck_check(h, &opt, &res), 0);
    assert_int_equal(res.verdict, LINCHECK_UNKNOWN);
    assert_int_equal(res.limit, LINCHECK_LIMIT_MEMO);

    /* With the default limits the search finishes and finds the bad read. */
    assert_int_equal(check(h, &res), LINCHECK_VIOLATION);
    assert_int_equal(res.op_id, 40);

    lincheck_history_reset(h);
    add_hard_history(h, true);
    assert_int_equal(check(h, &res), LINCHECK_OK);

    /* A violation on one key outranks a limit hit on another. */
    lincheck_history_reset(h);
    add_hard_history(h, true);
    w(h, 50, "z", "1", 0, 10);
    r(h, 51, "z", "2", 20, 30);
    opt = (lincheck_options){.max_steps_per_key = 30};
    assert_int_equal(lincheck_check(h, &opt, &res), 0);
    assert_int_equal(res.verdict, LINCHECK_VIOLATION);
    assert_memory_equal(res.key, "z", 1);
}

/* ---------------------------------------------------------------------- */
/* Histories generated from a real sequential execution                   */

typedef struct gen_op {
    uint64_t id;
    uint64_t client;
    int key;
    lincheck_kind kind;
    lincheck_status status;
    bool applied; /* unknown ops: whether it took effect */
    uint64_t start;
    uint64_t end;
    uint64_t point; /* linearization point; unique */
    int value;      /* -1 absent; else index of "v<value>" */
    int expect;
    bool result;
} gen_op;

typedef struct gen_params {
    int keys;
    int clients;
    int ops;
    int unknown_pct; /* share of ops whose outcome becomes unknown */
    int fail_pct;    /* share of ops that fail (never applied) */
    int values;      /* 0: every write has its own value; else values 0..values-1 */
} gen_params;

static int cmp_point(const void *a, const void *b)
{
    const gen_op *x = *(const gen_op *const *)a;
    const gen_op *y = *(const gen_op *const *)b;
    return x->point < y->point ? -1 : (x->point > y->point ? 1 : 0);
}

/* Generate p->ops operations from clients that each run one at a time, then
 * execute them on a real register at their linearization points. */
static gen_op *generate(rng *g, const gen_params *p)
{
    gen_op *ops = calloc((size_t)p->ops, sizeof(*ops));
    uint64_t *client_free = calloc((size_t)p->clients, sizeof(*client_free));
    gen_op **order = calloc((size_t)p->ops, sizeof(*order));
    int *current = malloc((size_t)p->keys * sizeof(*current));
    assert_non_null(ops);
    assert_non_null(client_free);
    assert_non_null(order);
    assert_non_null(current);

    for (int i = 0; i < p->ops; i++) {
        gen_op *o = &ops[i];
        int c = (int)rng_below(g, (uint64_t)p->clients);
        o->id = (uint64_t)i + 1;
        o->client = (uint64_t)c;
        o->key = (int)rng_below(g, (uint64_t)p->keys);
        uint64_t k = rng_below(g, 10);
        o->kind = k < 4 ? LINCHECK_READ
                        : (k < 7 ? LINCHECK_WRITE : (k < 9 ? LINCHECK_CAS : LINCHECK_DELETE));
        o->start = client_free[c] + rng_below(g, 20);
        uint64_t dur = 1 + rng_below(g, 40);
        o->end = o->start + dur;
        /* points are distinct: time * clients + client */
        o->point = (o->start + rng_below(g, dur + 1)) * (uint64_t)p->clients + (uint64_t)c;
        o->status = OK;
        o->applied = true;
        uint64_t roll = rng_below(g, 100);
        if (roll < (uint64_t)p->fail_pct) {
            o->status = FAIL;
            o->applied = false;
        } else if (roll < (uint64_t)(p->fail_pct + p->unknown_pct)) {
            o->status = UNKNOWN;
            o->applied = rng_below(g, 2) == 0;
            /* a timed-out request may take effect much later */
            o->point = (o->start + rng_below(g, 400)) * (uint64_t)p->clients + (uint64_t)c;
        }
        o->value = o->kind == LINCHECK_WRITE || o->kind == LINCHECK_CAS
                       ? (p->values ? (int)rng_below(g, (uint64_t)p->values) : i)
                       : -1;
        client_free[c] = o->end + 1;
        order[i] = o;
    }
    qsort(order, (size_t)p->ops, sizeof(*order), cmp_point);
    for (int k = 0; k < p->keys; k++) {
        current[k] = -1;
    }
    for (int i = 0; i < p->ops; i++) {
        gen_op *o = order[i];
        int *cur = &current[o->key];
        switch (o->kind) {
        case LINCHECK_READ:
            o->value = *cur;
            break;
        case LINCHECK_WRITE:
            if (o->applied) {
                *cur = o->value;
            }
            break;
        case LINCHECK_DELETE:
            if (o->applied) {
                *cur = -1;
            }
            break;
        default:
            /* expect: usually the real value, sometimes a stale one */
            if (rng_below(g, 3) != 0) {
                o->expect = *cur;
            } else if (p->values) {
                o->expect = (int)rng_below(g, (uint64_t)p->values + 1) - 1;
            } else {
                o->expect = (int)rng_below(g, (uint64_t)i + 1) - 1;
            }
            o->result = *cur == o->expect;
            if (o->applied && o->result) {
                *cur = o->value;
            }
            break;
        }
    }
    free(current);
    free(order);
    free(client_free);
    return ops;
}

static void add_generated(lincheck_history *h, const gen_op *ops, int n)
{
    for (int i = 0; i < n; i++) {
        const gen_op *o = &ops[i];
        char key[16], value[16], expect[16];
        snprintf(key, sizeof(key), "k%d", o->key);
        snprintf(value, sizeof(value), "v%d", o->value);
        snprintf(expect, sizeof(expect), "v%d", o->expect);
        lincheck_op op = {
            .id = o->id,
            .client = o->client,
            .kind = o->kind,
            .status = o->status,
            .key = key,
            .value = o->value < 0 ? NULL : value,
            .expect = o->expect < 0 ? NULL : expect,
            .cas_result = o->result,
            .start = o->start,
            .end = o->status == UNKNOWN ? NONE : o->end,
        };
        assert_int_equal(lincheck_history_add(h, &op), 0);
    }
}

static void test_generated_histories(void **state)
{
    lincheck_history *h = *state;
    rng g = {42};
    int corrupt_detected = 0;
    int corrupt_tried = 0;
    for (int round = 0; round < 300; round++) {
        gen_params p = {
            .keys = 1 + (int)rng_below(&g, 3),
            .clients = 1 + (int)rng_below(&g, 6),
            .ops = 5 + (int)rng_below(&g, 200),
            .unknown_pct = round % 3 == 0 ? 0 : (int)rng_below(&g, 30),
            .fail_pct = round % 4 == 0 ? 0 : (int)rng_below(&g, 10),
        };
        gen_op *ops = generate(&g, &p);

        lincheck_history_reset(h);
        add_generated(h, ops, p.ops);
        lincheck_result res;
        assert_int_equal(check(h, &res), LINCHECK_OK);

        /* Corrupt one ok read to a value nobody wrote: surely a violation. */
        int victim = -1;
        for (int i = 0; i < p.ops && victim < 0; i++) {
            int j = (i + round) % p.ops;
            if (ops[j].kind == LINCHECK_READ && ops[j].status == OK) {
                victim = j;
            }
        }
        if (victim >= 0) {
            int saved = ops[victim].value;
            ops[victim].value = 1000000; /* "v1000000" is never written */
            lincheck_history_reset(h);
            add_generated(h, ops, p.ops);
            assert_int_equal(check(h, &res), LINCHECK_VIOLATION);
            assert_int_equal(res.op_id, ops[victim].id);

            /* Corrupt it to some other value that was written: usually a
             * violation, but not always (a concurrent write may explain it). */
            int other = -1;
            for (int i = 0; i < p.ops; i++) {
                int j = (i + victim) % p.ops;
                if (ops[j].key == ops[victim].key && ops[j].kind == LINCHECK_WRITE &&
                    ops[j].value != saved) {
                    other = ops[j].value;
                    break;
                }
            }
            if (other >= 0) {
                ops[victim].value = other;
                lincheck_history_reset(h);
                add_generated(h, ops, p.ops);
                corrupt_tried++;
                if (check(h, &res) == LINCHECK_VIOLATION) {
                    corrupt_detected++;
                }
            }
        }
        free(ops);
    }
    print_message("corrupted reads detected: %d of %d\n", corrupt_detected, corrupt_tried);
    assert_true(corrupt_detected * 2 > corrupt_tried);
}

/* ---------------------------------------------------------------------- */
/* Cross-check against a brute-force search over all orders               */

/* Overridable for longer offline runs: -DBF_MAX=9 -DBF_ROUNDS=1000000 -DBF_SEED=... */
#ifndef BF_MAX
#define BF_MAX 7
#endif
#ifndef BF_ROUNDS
#define BF_ROUNDS 20000
#endif
#ifndef BF_SEED
#define BF_SEED 7
#endif
#ifndef BF_SPAN
#define BF_SPAN 20 /* starts are in [0, BF_SPAN) */
#endif
#ifndef BF_DUR
#define BF_DUR 8 /* durations are in [0, BF_DUR) */
#endif
#ifndef BF_OK_PCT
#define BF_OK_PCT 60 /* then BF_UNKNOWN_PCT unknown, the rest failed */
#endif
#ifndef BF_UNKNOWN_PCT
#define BF_UNKNOWN_PCT 20
#endif

typedef struct bf_op {
    lincheck_kind kind;
    lincheck_status status;
    int value; /* 0 absent, 1.. = "a", "b", ... */
    int expect;
    bool result;
    uint64_t start;
    uint64_t end; /* NONE if unknown */
} bf_op;

static bool bf_search(const bf_op *ops, int n, int state, unsigned used)
{
    bool all_ok_used = true;
    for (int i = 0; i < n; i++) {
        if (!(used & (1u << i)) && ops[i].status == OK) {
            all_ok_used = false;
        }
    }
    if (all_ok_used) {
        return true;
    }
    for (int i = 0; i < n; i++) {
        const bf_op *o = &ops[i];
        if ((used & (1u << i)) || o->status == FAIL ||
            (o->kind == LINCHECK_READ && o->status == UNKNOWN)) {
            continue;
        }
        bool minimal = true; /* no unused ok op finished before it began */
        for (int j = 0; j < n; j++) {
            if (!(used & (1u << j)) && ops[j].status == OK && ops[j].end < o->start) {
                minimal = false;
            }
        }
        if (!minimal) {
            continue;
        }
        int next = state;
        switch (o->kind) {
        case LINCHECK_READ:
            if (state != o->value) {
                continue;
            }
            break;
        case LINCHECK_WRITE:
            next = o->value;
            break;
        case LINCHECK_DELETE:
            next = 0;
            break;
        default:
            if (o->status == UNKNOWN || o->result) {
                if (state != o->expect) {
                    continue;
                }
                next = o->value;
            } else if (state == o->expect) {
                continue;
            }
            break;
        }
        if (bf_search(ops, n, next, used | (1u << i))) {
            return true;
        }
    }
    return false;
}

static void test_against_brute_force(void **state)
{
    lincheck_history *h = *state;
    rng g = {BF_SEED};
    static const char *const names[] = {NULL, "a", "b", "c"};
    int counts[3] = {0, 0, 0};
    for (int round = 0; round < BF_ROUNDS; round++) {
        int n = 1 + (int)rng_below(&g, BF_MAX);
        int nvalues = 1 + (int)rng_below(&g, 3);
        bf_op ops[BF_MAX];
        lincheck_history_reset(h);
        for (int i = 0; i < n; i++) {
            bf_op *o = &ops[i];
            o->kind = (lincheck_kind)rng_below(&g, 4);
            uint64_t s = rng_below(&g, 100);
            o->status = s < BF_OK_PCT ? OK : (s < BF_OK_PCT + BF_UNKNOWN_PCT ? UNKNOWN : FAIL);
            o->value = (int)rng_below(&g, (uint64_t)nvalues + 1);
            if (o->kind == LINCHECK_WRITE || o->kind == LINCHECK_CAS) {
                o->value = 1 + (int)rng_below(&g, (uint64_t)nvalues);
            }
            if (o->kind == LINCHECK_DELETE) {
                o->value = 0;
            }
            o->expect = (int)rng_below(&g, (uint64_t)nvalues + 1);
            o->result = rng_below(&g, 2) == 0;
            o->start = rng_below(&g, BF_SPAN);
            o->end = o->status == OK ? o->start + rng_below(&g, BF_DUR) : NONE;
            lincheck_op op = {
                .id = (uint64_t)i + 1,
                .kind = o->kind,
                .status = o->status,
                .key = "k",
                .value = names[o->value],
                .expect = names[o->expect],
                .cas_result = o->result,
                .start = o->start,
                .end = o->end,
            };
            assert_int_equal(lincheck_history_add(h, &op), 0);
        }
        bool expect_ok = bf_search(ops, n, 0, 0);
        lincheck_result res;
        lincheck_verdict v = check(h, &res);
        if (v != (expect_ok ? LINCHECK_OK : LINCHECK_VIOLATION)) {
            print_error("round %d: brute force says %s, lincheck %d\n", round,
                        expect_ok ? "ok" : "violation", (int)v);
            for (int i = 0; i < n; i++) {
                print_error("  op %d kind %d status %d value %d expect %d result %d [%llu, "
                            "%lld]\n",
                            i + 1, ops[i].kind, ops[i].status, ops[i].value, ops[i].expect,
                            ops[i].result, (unsigned long long)ops[i].start,
                            ops[i].end == NONE ? -1LL : (long long)ops[i].end);
            }
            fail();
        }
        counts[v]++;
    }
    print_message("brute force agreement: %d ok, %d violations\n", counts[0], counts[1]);
    assert_true(counts[LINCHECK_OK] > 1000);
    assert_true(counts[LINCHECK_VIOLATION] > 1000);
}

/* ---------------------------------------------------------------------- */
/* Cross-check against a plain WGL-style search on medium histories        */

/* A reference checker for one key with at most 64 operations: depth-first
 * search over (set of placed operations, value) with a memo of failures and
 * none of lincheck's simplifications. Unknown operations may be placed any
 * time after every ok operation that ended before they started, or never. */
typedef struct ref_memo {
    uint64_t *masks;
    int *states;
    size_t cap;
} ref_memo;

static bool ref_memo_has(ref_memo *m, uint64_t mask, int st, bool insert)
{
    uint64_t hv = (mask ^ ((uint64_t)(unsigned)st * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
    size_t i = (size_t)(hv >> 20) & (m->cap - 1);
    while (m->states[i] != INT32_MIN) {
        if (m->masks[i] == mask && m->states[i] == st) {
            return true;
        }
        i = (i + 1) & (m->cap - 1);
    }
    if (insert) {
        m->masks[i] = mask;
        m->states[i] = st;
    }
    return false;
}

static bool ref_search(const gen_op *ops, int n, uint64_t mask, int st, ref_memo *m, long *budget)
{
    uint64_t pending_ok = 0;
    for (int i = 0; i < n; i++) {
        if (!(mask & (1ull << i)) && ops[i].status == OK) {
            pending_ok |= 1ull << i;
        }
    }
    if (pending_ok == 0) {
        return true;
    }
    if (ref_memo_has(m, mask, st, false) || --*budget < 0) {
        return false;
    }
    for (int i = 0; i < n; i++) {
        const gen_op *o = &ops[i];
        if ((mask & (1ull << i)) || o->status == FAIL ||
            (o->kind == LINCHECK_READ && o->status == UNKNOWN)) {
            continue;
        }
        bool minimal = true;
        for (int j = 0; j < n && minimal; j++) {
            if ((pending_ok & (1ull << j)) && ops[j].end < o->start) {
                minimal = false;
            }
        }
        if (!minimal) {
            continue;
        }
        int next = st;
        if (o->kind == LINCHECK_READ) {
            if (st != o->value) {
                continue;
            }
        } else if (o->kind == LINCHECK_WRITE) {
            next = o->value;
        } else if (o->kind == LINCHECK_DELETE) {
            next = -1;
        } else if (o->status == UNKNOWN || o->result) {
            if (st != o->expect) {
                continue;
            }
            next = o->value;
        } else if (st == o->expect) {
            continue;
        }
        if (ref_search(ops, n, mask | (1ull << i), next, m, budget)) {
            return true;
        }
    }
    ref_memo_has(m, mask, st, true);
    return false;
}

#ifndef REF_ROUNDS
#define REF_ROUNDS 1500
#endif
#ifndef REF_SEED
#define REF_SEED 99
#endif

static void test_against_reference(void **state)
{
    lincheck_history *h = *state;
    rng g = {REF_SEED};
    ref_memo m = {.cap = 1u << 18}; /* > budget: never fills */
    m.masks = malloc(m.cap * sizeof(*m.masks));
    m.states = malloc(m.cap * sizeof(*m.states));
    assert_non_null(m.masks);
    assert_non_null(m.states);
    int counts[2] = {0, 0};
    int skipped = 0;
    for (int round = 0; round < REF_ROUNDS; round++) {
        gen_params p = {
            .keys = 1,
            .clients = 2 + (int)rng_below(&g, 5),
            .ops = 10 + (int)rng_below(&g, 40),
            .unknown_pct = (int)rng_below(&g, 40),
            .fail_pct = (int)rng_below(&g, 10),
            .values = (int)rng_below(&g, 4),
        };
        gen_op *ops = generate(&g, &p);
        /* Mutate a few results so that some histories are not linearizable. */
        int mutations = (int)rng_below(&g, 3);
        for (int k = 0; k < mutations; k++) {
            gen_op *o = &ops[rng_below(&g, (uint64_t)p.ops)];
            if (o->kind == LINCHECK_READ) {
                o->value = (int)rng_below(&g, (uint64_t)(p.values ? p.values : p.ops) + 1) - 1;
            } else if (o->kind == LINCHECK_CAS) {
                o->result = !o->result;
            }
        }
        for (size_t i = 0; i < m.cap; i++) {
            m.states[i] = INT32_MIN;
        }
        long budget = 100000;
        bool ref_ok = ref_search(ops, p.ops, 0, -1, &m, &budget);
        lincheck_history_reset(h);
        add_generated(h, ops, p.ops);
        lincheck_result res;
        lincheck_verdict v = check(h, &res);
        if (budget < 0) {
            skipped++; /* the reference gave up; nothing to compare */
        } else if (v != (ref_ok ? LINCHECK_OK : LINCHECK_VIOLATION)) {
            print_error("round %d: reference says %s, lincheck %d\n", round,
                        ref_ok ? "ok" : "violation", (int)v);
            for (int i = 0; i < p.ops; i++) {
                const gen_op *o = &ops[i];
                print_error("  id %llu kind %d status %d value %d expect %d result %d "
                            "[%llu, %llu]\n",
                            (unsigned long long)o->id, o->kind, o->status, o->value, o->expect,
                            o->result, (unsigned long long)o->start, (unsigned long long)o->end);
            }
            fail();
        } else {
            counts[v]++;
        }
        free(ops);
    }
    free(m.masks);
    free(m.states);
    print_message("reference agreement: %d ok, %d violations, %d skipped\n", counts[0], counts[1],
                  skipped);
    assert_true(counts[0] > REF_ROUNDS / 10);
    assert_true(counts[1] > REF_ROUNDS / 10);
}

/* ---------------------------------------------------------------------- */
/* Size                                                                    */

static void test_performance_20k(void **state)
{
    lincheck_history *h = *state;
    rng g = {2024};
    gen_params p = {.keys = 10, .clients = 8, .ops = 20000, .unknown_pct = 2, .fail_pct = 1};
    gen_op *ops = generate(&g, &p);
    add_generated(h, ops, p.ops);
    free(ops);
    lincheck_result res;
    assert_int_equal(check(h, &res), LINCHECK_OK);
    assert_int_equal(res.ops_total, 20000);
    assert_int_equal(res.keys_checked, 10);
    print_message("20000 ops: %llu search steps\n", (unsigned long long)res.steps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sequential_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_read_sees_either, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_of_never_written_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_touching_intervals_overlap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_write_observed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_write_observed_before_it_started, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unknown_write_never_observed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_ops_not_droppable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_and_failed_reads_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_did_not_happen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_cas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_independent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generated_histories, setup, teardown),
        cmocka_unit_test_setup_teardown(test_against_brute_force, setup, teardown),
        cmocka_unit_test_setup_teardown(test_against_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_performance_20k, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
