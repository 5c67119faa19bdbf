#define _GNU_SOURCE
#include "common_testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

void tu_mkdtemp(char *out, size_t cap)
{
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    int n = snprintf(out, cap, "%s/cord-test-XXXXXX", base);
    assert_true(n > 0 && (size_t)n < cap);
    assert_non_null(mkdtemp(out));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void tu_rmrf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char tu_tmp[1024];

int tu_tmp_setup(void **state)
{
    (void)state;
    tu_mkdtemp(tu_tmp, sizeof tu_tmp);
    return 0;
}

int tu_tmp_teardown(void **state)
{
    (void)state;
    tu_rmrf(tu_tmp);
    return 0;
}

uint8_t *tu_read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    return buf;
}

void tu_write_file(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    const uint8_t *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        assert_true(n > 0);
        done += (size_t)n;
    }
    close(fd);
}

void tu_flip_bit(const char *path, uint64_t off, int bit)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
    b ^= (uint8_t)(1u << bit);
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

void tu_fill_range(const char *path, uint64_t off, uint64_t len, uint8_t value)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t buf[4096];
    memset(buf, value, sizeof buf);
    while (len > 0) {
        size_t n = len > sizeof buf ? sizeof buf : (size_t)len;
        assert_int_equal(pwrite(fd, buf, n, (off_t)off), (ssize_t)n);
        off += n;
        len -= n;
    }
    close(fd);
}

void tu_truncate(const char *path, uint64_t size)
{
    assert_int_equal(truncate(path, (off_t)size), 0);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t list_suffix(const char *dir, const char *suffix, char ***names_out)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    size_t sl = strlen(suffix);
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l >= sl && strcmp(de->d_name + l - sl, suffix) == 0) {
            names = realloc(names, (n + 1) * sizeof *names);
            assert_non_null(names);
            names[n++] = strdup(de->d_name);
        }
    }
    closedir(d);
    if (n > 1) {
        qsort(names, n, sizeof *names, name_cmp);
    }
    *names_out = names;
    return n;
}

size_t tu_count_suffix(const char *dir, const char *suffix)
{
    char **names;
    size_t n = list_suffix(dir, suffix, &names);
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    return n;
}

int tu_nth_with_suffix(const char *dir, const char *suffix, size_t nth, char *out, size_t cap)
{
    char **names;
    size_t n = list_suffix(dir, suffix, &names);
    int found = 0;
    if (nth < n) {
        snprintf(out, cap, "%s/%s", dir, names[nth]);
        found = 1;
    }
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    return found;
}

unsigned tu_mode(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (unsigned)(st.st_mode & 07777);
}

uint64_t tu_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}
