#define _GNU_SOURCE
#include "common/failpoint.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { FP_UNINIT = 0, FP_INACTIVE = 1, FP_ACTIVE = 2 };

struct failpoint {
    char name[FAILPOINT_NAME_MAX];
    enum failpoint_action action;
    int arg;      /* errno for FAILPOINT_ERROR, milliseconds for FAILPOINT_SLEEP */
    uint64_t nth; /* 0 = every hit; else only the nth */
    _Atomic uint64_t hits;
};

/* The only global mutable state in cord (see failpoint.h). */
static struct failpoint fp_table[FAILPOINT_TABLE_MAX];
static size_t fp_count;
static _Atomic int fp_state = FP_UNINIT;
static pthread_once_t fp_once = PTHREAD_ONCE_INIT;

static const struct {
    const char *name;
    int value;
} fp_errnos[] = {
    {"EIO", EIO},     {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT}, {"EROFS", EROFS},
    {"EFBIG", EFBIG}, {"ENOMEM", ENOMEM}, {"EINTR", EINTR},   {"EAGAIN", EAGAIN},
    {"EPERM", EPERM}, {"EACCES", EACCES},
};

static int fp_parse_uint(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 9) {
        return -1;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

static int fp_parse_action(const char *s, size_t len, struct failpoint *fp, cord_error *err)
{
    const char *star = memchr(s, '*', len);
    fp->nth = 0;
    if (star != NULL) {
        uint64_t n;
        if (fp_parse_uint(s, (size_t)(star - s), &n) != 0 || n == 0) {
            return cord_error_set(err, FAILPOINT_EINVAL, 0, "failpoint %s: bad count '%.*s'",
                                  fp->name, (int)len, s);
        }
        fp->nth = n;
        len -= (size_t)(star - s) + 1;
        s = star + 1;
    }
    fp->arg = 0;
    if (len == 3 && memcmp(s, "off", 3) == 0) {
        fp->action = FAILPOINT_NONE;
    } else if (len == 5 && memcmp(s, "crash", 5) == 0) {
        fp->action = FAILPOINT_CRASH;
    } else if (len >= 5 && memcmp(s, "error", 5) == 0) {
        fp->action = FAILPOINT_ERROR;
        fp->arg = EIO;
        if (len > 5) {
            if (len < 8 || s[5] != '(' || s[len - 1] != ')') {
                return cord_error_set(err, FAILPOINT_EINVAL, 0, "failpoint %s: bad action '%.*s'",
                                      fp->name, (int)len, s);
            }
            const char *arg = s + 6;
            size_t arglen = len - 7;
            uint64_t num;
            int found = 0;
            if (fp_parse_uint(arg, arglen, &num) == 0 && num > 0 && num < 4096) {
                fp->arg = (int)num;
                found = 1;
            }
            for (size_t i = 0; !found && i < sizeof fp_errnos / sizeof fp_errnos[0]; i++) {
                if (strlen(fp_errnos[i].name) == arglen &&
                    memcmp(fp_errnos[i].name, arg, arglen) == 0) {
                    fp->arg = fp_errnos[i].value;
                    found = 1;
                }
            }
            if (!found) {
                return cord_error_set(err, FAILPOINT_EINVAL, 0,
                                      "failpoint %s: unknown errno '%.*s'", fp->name, (int)arglen,
                                      arg);
            }
        }
    } else if (len >= 8 && memcmp(s, "sleep(", 6) == 0 && s[len - 1] == ')') {
        uint64_t ms;
        if (fp_parse_uint(s + 6, len - 7, &ms) != 0 || ms == 0 || ms > 600000) {
            return cord_error_set(err, FAILPOINT_EINVAL, 0,
                                  "failpoint %s: bad sleep '%.*s' (1-600000 ms)", fp->name,
                                  (int)len, s);
        }
        fp->action = FAILPOINT_SLEEP;
        fp->arg = (int)ms;
    } else {
        return cord_error_set(err, FAILPOINT_EINVAL, 0,
                              "failpoint %s: unknown action '%.*s' (off, crash, error[(E)], "
                              "sleep(MS))",
                              fp->name, (int)len, s);
    }
    return FAILPOINT_OK;
}

/* Parse into a scratch table first so that a bad spec leaves nothing half-set. */
static int fp_parse(const char *spec, struct failpoint *table, size_t *count, cord_error *err)
{
    *count = 0;
    if (spec == NULL) {
        return FAILPOINT_OK;
    }
    size_t total = strnlen(spec, FAILPOINT_SPEC_MAX + 1);
    if (total > FAILPOINT_SPEC_MAX) {
        return cord_error_set(err, FAILPOINT_EINVAL, 0, "failpoint spec longer than %d bytes",
                              FAILPOINT_SPEC_MAX);
    }
    const char *p = spec;
    const char *end = spec + total;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma != NULL ? comma : end;
        if (item_end > p) {
            const char *eq = memchr(p, '=', (size_t)(item_end - p));
            if (eq == NULL || eq == p) {
                return cord_error_set(err, FAILPOINT_EINVAL, 0,
                                      "failpoint item '%.*s' is not name=action",
                                      (int)(item_end - p), p);
            }
            size_t namelen = (size_t)(eq - p);
            if (namelen >= FAILPOINT_NAME_MAX) {
                return cord_error_set(err, FAILPOINT_EINVAL, 0, "failpoint name '%.*s' too long",
                                      (int)namelen, p);
            }
            if (*count >= FAILPOINT_TABLE_MAX) {
                return cord_error_set(err, FAILPOINT_EINVAL, 0, "more than %d failpoints",
                                      FAILPOINT_TABLE_MAX);
            }
            struct failpoint *fp = &table[*count];
            memset(fp->name, 0, sizeof fp->name);
            memcpy(fp->name, p, namelen);
            atomic_store(&fp->hits, 0);
            int rc = fp_parse_action(eq + 1, (size_t)(item_end - eq - 1), fp, err);
            if (rc != FAILPOINT_OK) {
                return rc;
            }
            (*count)++;
        }
        p = item_end + (comma != NULL ? 1 : 0);
    }
    return FAILPOINT_OK;
}

static void fp_init_from_env(void)
{
    const char *spec = getenv(FAILPOINT_ENV);
    cord_error err;
    size_t count = 0;
    if (fp_parse(spec, fp_table, &count, &err) != FAILPOINT_OK) {
        fprintf(stderr, "cord: %s is malformed: %s\n", FAILPOINT_ENV, err.msg);
        abort();
    }
    fp_count = count;
    atomic_store_explicit(&fp_state, count > 0 ? FP_ACTIVE : FP_INACTIVE, memory_order_release);
}

static struct failpoint *fp_find(const char *name)
{
    int st = atomic_load_explicit(&fp_state, memory_order_acquire);
    if (st == FP_UNINIT) {
        pthread_once(&fp_once, fp_init_from_env);
        st = atomic_load_explicit(&fp_state, memory_order_acquire);
    }
    if (st != FP_ACTIVE) {
        return NULL;
    }
    for (size_t i = 0; i < fp_count; i++) {
        if (strcmp(fp_table[i].name, name) == 0) {
            return &fp_table[i];
        }
    }
    return NULL;
}

enum failpoint_action failpoint_eval(const char *name, int *err_out)
{
    struct failpoint *fp = fp_find(name);
    if (fp == NULL) {
        return FAILPOINT_NONE;
    }
    uint64_t hit = atomic_fetch_add(&fp->hits, 1) + 1;
    if (fp->action == FAILPOINT_NONE || (fp->nth != 0 && hit != fp->nth)) {
        return FAILPOINT_NONE;
    }
    if (fp->action == FAILPOINT_ERROR && err_out != NULL) {
        *err_out = fp->arg;
    }
    if (fp->action == FAILPOINT_SLEEP) {
        struct timespec ts = {.tv_sec = fp->arg / 1000,
                              .tv_nsec = (long)(fp->arg % 1000) * 1000000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    return fp->action;
}

void failpoint_crash(const char *name)
{
    char msg[FAILPOINT_NAME_MAX + 64];
    int n = snprintf(msg, sizeof msg, "cord: failpoint %s: crash\n", name);
    if (n > 0) {
        ssize_t ignored =
            write(STDERR_FILENO, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg);
        (void)ignored;
    }
    _exit(FAILPOINT_CRASH_EXIT_CODE);
}

int failpoint_hit(const char *name)
{
    int e = 0;
    switch (failpoint_eval(name, &e)) {
    case FAILPOINT_NONE:
    case FAILPOINT_SLEEP:
        return 0;
    case FAILPOINT_ERROR:
        assert(e > 0);
        return e;
    case FAILPOINT_CRASH:
        failpoint_crash(name);
    }
    return 0;
}

int failpoint_configure(const char *spec, cord_error *err)
{
    pthread_once(&fp_once, fp_init_from_env);
    struct failpoint scratch[FAILPOINT_TABLE_MAX];
    size_t count = 0;
    atomic_store_explicit(&fp_state, FP_INACTIVE, memory_order_release);
    fp_count = 0;
    int rc = fp_parse(spec, scratch, &count, err);
    if (rc != FAILPOINT_OK) {
        return rc;
    }
    for (size_t i = 0; i < count; i++) {
        memcpy(fp_table[i].name, scratch[i].name, sizeof fp_table[i].name);
        fp_table[i].action = scratch[i].action;
        fp_table[i].arg = scratch[i].arg;
        fp_table[i].nth = scratch[i].nth;
        atomic_store(&fp_table[i].hits, 0);
    }
    fp_count = count;
    atomic_store_explicit(&fp_state, count > 0 ? FP_ACTIVE : FP_INACTIVE, memory_order_release);
    return FAILPOINT_OK;
}

uint64_t failpoint_count(const char *name)
{
    struct failpoint *fp = fp_find(name);
    return fp != NULL ? atomic_load(&fp->hits) : 0;
}
