/*
 * mvcc_bench.c — cord-mvcc-bench: throughput of the MVCC store on LMDB.
 *
 *   puts/s, N puts per apply batch (one LMDB commit + fsync per batch)
 *   puts/s, one put per batch (one fsync per put), with and without fsync
 *   point ranges/s (random existing keys, warm cache)
 *   open time of a store with --keys keys (default 1,000,000): open + first read, with
 *   the data file warm and evicted from the page cache (posix_fadvise DONTNEED), next to
 *   a small store for comparison
 *
 * Usage: cord-mvcc-bench [--dir DIR] [--keys N] [--puts N] [--batch N] [--single N]
 *                        [--ranges N] [--value-bytes N] [--skip-open]
 * DIR (default: a new directory under /tmp) is removed at the end.
 */
#include "mvcc/mvcc.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const cord_error *err)
{
    fprintf(stderr, "cord-mvcc-bench: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 2685821657736338717ull;
}

static void rm_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[4400];
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(path);
}

static mvcc_store *open_store(const char *dir, bool no_sync)
{
    mvcc_options o = {.no_sync = no_sync};
    mvcc_store *s = NULL;
    cord_error err;
    if (mvcc_open(dir, &o, &s, &err))
        die("open", &err);
    return s;
}

static void key_of(char *buf, size_t n, uint64_t i)
{
    snprintf(buf, n, "/registry/k%012llu", (unsigned long long)i);
}

/* Loads `n` keys in batches of `batch`; returns elapsed seconds. */
static double load(mvcc_store *s, uint64_t first, uint64_t n, uint64_t batch, const char *value,
                   size_t vlen, uint64_t *applied)
{
    mvcc_arena a;
    mvcc_arena_init(&a, 0);
    cord_error err;
    char k[64];
    double t0 = now_s();
    for (uint64_t i = 0; i < n;) {
        if (mvcc_batch_begin(s, &err))
            die("batch begin", &err);
        for (uint64_t j = 0; j < batch && i < n; j++, i++) {
            key_of(k, sizeof(k), first + i);
            mvcc_put_req p = {.key = {(const uint8_t *)k, strlen(k)},
                              .value = {(const uint8_t *)value, vlen}};
            mvcc_put_resp r;
            if (mvcc_put(s, &a, &p, &r, &err))
                die("put", &err);
            mvcc_arena_reset(&a);
        }
        if (mvcc_batch_commit(s, ++*applied, 1, &err))
            die("commit", &err);
    }
    double t = now_s() - t0;
    mvcc_arena_reset(&a);
    return t;
}

static double ranges(mvcc_store *s, uint64_t nkeys, uint64_t n)
{
    mvcc_arena a;
    mvcc_arena_init(&a, 0);
    cord_error err;
    char k[64];
    double t0 = now_s();
    for (uint64_t i = 0; i < n; i++) {
        key_of(k, sizeof(k), rnd() % nkeys);
        mvcc_range_req req = {.key = {(const uint8_t *)k, strlen(k)}};
        mvcc_range_resp resp;
        if (mvcc_range(s, &a, &req, &resp, &err))
            die("range", &err);
        if (resp.kvs_len != 1)
            die("range found no key", NULL);
        mvcc_arena_reset(&a);
    }
    return now_s() - t0;
}

static void evict(const char *dir)
{
    char p[4400];
    snprintf(p, sizeof(p), "%s/data.mdb", dir);
    int fd = open(p, O_RDONLY);
    if (fd >= 0) {
        fdatasync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
}

/* open, then one point read; stores both durations in seconds */
static void time_open(const char *dir, uint64_t nkeys, bool cold, double *open_s, double *read_s)
{
    if (cold)
        evict(dir);
    char k[64];
    key_of(k, sizeof(k), rnd() % nkeys);
    double t0 = now_s();
    mvcc_store *s = open_store(dir, false);
    double t1 = now_s();
    mvcc_arena a;
    mvcc_arena_init(&a, 0);
    mvcc_range_req req = {.key = {(const uint8_t *)k, strlen(k)}};
    mvcc_range_resp resp;
    cord_error err;
    if (mvcc_range(s, &a, &req, &resp, &err) || resp.kvs_len != 1)
        die("first read", &err);
    double t2 = now_s();
    mvcc_arena_reset(&a);
    mvcc_close(s);
    *open_s = t1 - t0;
    *read_s = t2 - t1;
}

static void report_open(const char *dir, uint64_t nkeys)
{
    enum { RUNS = 7 };
    for (int cold = 0; cold < 2; cold++) {
        double o[RUNS], r[RUNS];
        for (int i = 0; i < RUNS; i++)
            time_open(dir, nkeys, cold, &o[i], &r[i]);
        /* median */
        for (int i = 1; i < RUNS; i++)
            for (int j = i; j > 0 && o[j] < o[j - 1]; j--) {
                double x = o[j];
                o[j] = o[j - 1];
                o[j - 1] = x;
            }
        for (int i = 1; i < RUNS; i++)
            for (int j = i; j > 0 && r[j] < r[j - 1]; j--) {
                double x = r[j];
                r[j] = r[j - 1];
                r[j - 1] = x;
            }
        printf("  %8llu keys, %s cache: open %7.3f ms + first read %7.3f ms (median of %d)\n",
               (unsigned long long)nkeys, cold ? "cold" : "warm", o[RUNS / 2] * 1e3,
               r[RUNS / 2] * 1e3, RUNS);
    }
}

static uint64_t file_bytes(const char *dir)
{
    char p[4400];
    struct stat st;
    snprintf(p, sizeof(p), "%s/data.mdb", dir);
    return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

int main(int argc, char **argv)
{
    const char *dir_arg = NULL;
    uint64_t keys = 1000000, puts = 200000, batch = 1000, single = 2000, nranges = 500000;
    size_t vbytes = 100;
    bool skip_open = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--dir") && v)
            dir_arg = v, i++;
        else if (!strcmp(a, "--keys") && v)
            keys = strtoull(v, NULL, 0), i++;
        else if (!strcmp(a, "--puts") && v)
            puts = strtoull(v, NULL, 0), i++;
        else if (!strcmp(a, "--batch") && v)
            batch = strtoull(v, NULL, 0), i++;
        else if (!strcmp(a, "--single") && v)
            single = strtoull(v, NULL, 0), i++;
        else if (!strcmp(a, "--ranges") && v)
            nranges = strtoull(v, NULL, 0), i++;
        else if (!strcmp(a, "--value-bytes") && v)
            vbytes = (size_t)strtoull(v, NULL, 0), i++;
        else if (!strcmp(a, "--skip-open"))
            skip_open = true;
        else {
            fprintf(stderr,
                    "usage: %s [--dir DIR] [--keys N] [--puts N] [--batch N] "
                    "[--single N] [--ranges N] [--value-bytes N] [--skip-open]\n",
                    argv[0]);
            return 2;
        }
    }
    if (batch == 0 || puts == 0)
        die("--batch and --puts must be > 0", NULL);
    char base[4096];
    if (dir_arg) {
        snprintf(base, sizeof(base), "%s", dir_arg);
        mkdir(base, 0700);
    } else {
        snprintf(base, sizeof(base), "/tmp/cord-mvcc-bench-XXXXXX");
        if (!mkdtemp(base))
            die("mkdtemp", NULL);
    }
    char *value = malloc(vbytes + 1);
    memset(value, 'v', vbytes);
    char d1[4200], d2[4200], d3[4200], d4[4200];
    snprintf(d1, sizeof(d1), "%s/batched", base);
    snprintf(d2, sizeof(d2), "%s/single", base);
    snprintf(d3, sizeof(d3), "%s/big", base);
    snprintf(d4, sizeof(d4), "%s/small", base);
    printf("cord-mvcc-bench: keys of 23 bytes, values of %zu bytes, dir %s\n", vbytes, base);

    uint64_t applied = 0;
    mvcc_store *s = open_store(d1, false);
    double t = load(s, 0, puts, batch, value, vbytes, &applied);
    printf("put, %llu per batch (fsync per batch):   %10.0f puts/s  (%llu puts in %.2f s)\n",
           (unsigned long long)batch, (double)puts / t, (unsigned long long)puts, t);
    t = ranges(s, puts, nranges);
    printf("point range (warm, %llu keys):           %10.0f ranges/s (%.2f us each)\n",
           (unsigned long long)puts, (double)nranges / t, t / (double)nranges * 1e6);
    mvcc_close(s);

    s = open_store(d2, false);
    applied = 0;
    t = load(s, 0, single, 1, value, vbytes, &applied);
    printf("put, 1 per batch (fsync per put):        %10.0f puts/s  (%llu puts in %.2f s)\n",
           (double)single / t, (unsigned long long)single, t);
    mvcc_close(s);
    rm_dir(d2);
    s = open_store(d2, true);
    applied = 0;
    t = load(s, 0, puts / 4, 1, value, vbytes, &applied);
    printf("put, 1 per batch (no_sync):              %10.0f puts/s  (%llu puts in %.2f s)\n",
           (double)(puts / 4) / t, (unsigned long long)(puts / 4), t);
    mvcc_close(s);

    if (!skip_open) {
        s = open_store(d3, true);
        applied = 0;
        t = load(s, 0, keys, 10000, value, vbytes, &applied);
        cord_error err;
        if (mvcc_sync(s, &err))
            die("sync", &err);
        mvcc_close(s);
        printf("load %llu keys (10000 per batch, no_sync): %.2f s, data file %.1f MiB\n",
               (unsigned long long)keys, t, (double)file_bytes(d3) / (1 << 20));
        s = open_store(d4, true);
        applied = 0;
        load(s, 0, 10000, 10000, value, vbytes, &applied);
        mvcc_sync(s, NULL);
        mvcc_close(s);
        printf("open time (cold = data file evicted with posix_fadvise DONTNEED):\n");
        report_open(d4, 10000);
        report_open(d3, keys);
    }
    rm_dir(d1);
    rm_dir(d2);
    rm_dir(d3);
    rm_dir(d4);
    if (!dir_arg)
        rmdir(base);
    free(value);
    return 0;
}
