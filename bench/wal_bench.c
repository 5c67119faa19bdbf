/*
 * wal_bench: WAL appends per second and bytes per second with group commit,
 * at several batch sizes (entries per wal_sync), next to this machine's raw
 * rate of write + fdatasync on a preallocated file.
 *
 *   cord-wal-bench [--dir DIR] [--seconds S] [--entry-bytes N]
 *
 * DIR defaults to a new directory under $TMPDIR or /tmp (removed at the end):
 * run it on the disk the data directory will live on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/fileio.h"
#include "wal/wal.h"

#define LAT_MAX 1000000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

struct result {
    double seconds;
    uint64_t syncs;
    uint64_t entries;
    double p50_us;
    double p99_us;
};

static void percentiles(double *lat, uint64_t n, struct result *r)
{
    if (n == 0) {
        return;
    }
    qsort(lat, n, sizeof *lat, cmp_double);
    r->p50_us = lat[n / 2] * 1e6;
    r->p99_us = lat[(n * 99) / 100] * 1e6;
}

static int bench_wal(const char *dir, uint64_t batch, double seconds, uint32_t entry_bytes,
                     double *lat, struct result *res)
{
    wal *w = NULL;
    cord_error err;
    if (wal_open(dir, NULL, &w, NULL, &err) != WAL_OK) {
        fprintf(stderr, "wal_open: %s\n", err.msg);
        return -1;
    }
    uint8_t *data = malloc(entry_bytes);
    raft_entry *ents = malloc(batch * sizeof *ents);
    if (data == NULL || ents == NULL) {
        return -1;
    }
    memset(data, 0x5a, entry_bytes);
    uint64_t next = 1;
    memset(res, 0, sizeof *res);
    double start = now_s(), t = start;
    while (t - start < seconds && res->syncs < LAT_MAX) {
        for (uint64_t i = 0; i < batch; i++) {
            ents[i] = (raft_entry){.term = 1, .index = next++, .len = entry_bytes, .data = data};
        }
        double t0 = now_s();
        if (wal_append(w, ents, batch, &err) != WAL_OK || wal_sync(w, NULL, &err) != WAL_OK) {
            fprintf(stderr, "wal: %s\n", err.msg);
            return -1;
        }
        t = now_s();
        lat[res->syncs++] = t - t0;
        res->entries += batch;
    }
    res->seconds = t - start;
    percentiles(lat, res->syncs, res);
    free(ents);
    free(data);
    wal_close(w);
    return 0;
}

/* Raw: pwrite `bytes` at increasing offsets of a preallocated file + fdatasync. */
static int bench_raw(const char *dir, size_t bytes, double seconds, double *lat, struct result *res)
{
    char path[FILEIO_PATH_MAX];
    if (fileio_join(path, sizeof path, dir, "raw-fdatasync.bin") != 0) {
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || fileio_preallocate(fd, 64ull << 20) != 0 || fsync(fd) != 0) {
        perror("raw file");
        return -1;
    }
    uint8_t *buf = malloc(bytes);
    memset(buf, 0xa5, bytes);
    memset(res, 0, sizeof *res);
    uint64_t off = 0;
    double start = now_s(), t = start;
    while (t - start < seconds && res->syncs < LAT_MAX) {
        if (off + bytes > (64ull << 20)) {
            off = 0;
        }
        double t0 = now_s();
        if (fileio_pwrite_all(fd, buf, bytes, off) != 0 || fdatasync(fd) != 0) {
            perror("raw write");
            return -1;
        }
        t = now_s();
        lat[res->syncs++] = t - t0;
        off += bytes;
    }
    res->seconds = t - start;
    res->entries = res->syncs;
    percentiles(lat, res->syncs, res);
    free(buf);
    close(fd);
    unlink(path);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir_arg = NULL;
    double seconds = 3.0;
    uint32_t entry_bytes = 256;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir_arg = argv[++i];
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (strcmp(argv[i], "--entry-bytes") == 0 && i + 1 < argc) {
            entry_bytes = (uint32_t)atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--dir DIR] [--seconds S] [--entry-bytes N]\n", argv[0]);
            return 2;
        }
    }
    char base[2048];
    if (dir_arg != NULL) {
        snprintf(base, sizeof base, "%s/cord-wal-bench-XXXXXX", dir_arg);
    } else {
        const char *t = getenv("TMPDIR");
        snprintf(base, sizeof base, "%s/cord-wal-bench-XXXXXX", t != NULL && *t ? t : "/tmp");
    }
    if (strlen(base) > 2000 || mkdtemp(base) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    double *lat = malloc(LAT_MAX * sizeof *lat);
    if (lat == NULL) {
        return 1;
    }
    printf("cord-wal-bench: dir %s, %u-byte entries, %.1f s per row, crc32c %s\n", base,
           entry_bytes, seconds, crc32c_hardware_available() ? "sse4.2" : "table");
    printf("%-28s %10s %12s %10s %10s %10s\n", "case", "syncs/s", "appends/s", "MB/s", "p50 us",
           "p99 us");
    int rc = 0;
    struct result r;
    size_t raw_sizes[] = {256, 4096};
    for (size_t i = 0; i < 2 && rc == 0; i++) {
        rc = bench_raw(base, raw_sizes[i], seconds, lat, &r);
        if (rc == 0) {
            char name[64];
            snprintf(name, sizeof name, "raw pwrite %zuB+fdatasync", raw_sizes[i]);
            printf("%-28s %10.0f %12s %10.2f %10.1f %10.1f\n", name, r.syncs / r.seconds, "-",
                   (double)r.syncs * raw_sizes[i] / r.seconds / 1e6, r.p50_us, r.p99_us);
        }
    }
    uint64_t batches[] = {1, 8, 64, 512};
    for (size_t i = 0; i < 4 && rc == 0; i++) {
        char dir[FILEIO_PATH_MAX], name[32];
        snprintf(name, sizeof name, "wal-%" PRIu64, batches[i]);
        if (fileio_join(dir, sizeof dir, base, name) != 0) {
            rc = -1;
            break;
        }
        rc = bench_wal(dir, batches[i], seconds, entry_bytes, lat, &r);
        if (rc == 0) {
            snprintf(name, sizeof name, "wal batch %" PRIu64, batches[i]);
            printf("%-28s %10.0f %12.0f %10.2f %10.1f %10.1f\n", name, r.syncs / r.seconds,
                   r.entries / r.seconds, (double)r.entries * entry_bytes / r.seconds / 1e6,
                   r.p50_us, r.p99_us);
        }
        fflush(stdout);
    }
    nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(lat);
    return rc == 0 ? 0 : 1;
}
