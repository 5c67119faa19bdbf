/*
 * mvcc_testutil.c — see mvcc_testutil.h.
 */
#include "mvcc_testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *mvt_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    size_t n = strlen(base) + strlen(tag) + 32;
    char *p = malloc(n);
    if (!p)
        abort();
    snprintf(p, n, "%s/cord-%s-XXXXXX", base, tag);
    if (!mkdtemp(p)) {
        perror("mkdtemp");
        abort();
    }
    return p;
}

static void rm_tree(const char *path, int depth)
{
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char sub[4096];
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode) && depth < 4) {
            rm_tree(sub, depth + 1);
            rmdir(sub);
        } else {
            unlink(sub);
        }
    }
    closedir(d);
}

void mvt_rmrf(char *path)
{
    if (!path)
        return;
    rm_tree(path, 0);
    rmdir(path);
    free(path);
}

mvcc_bytes mvt_b(const char *s)
{
    return (mvcc_bytes){(const uint8_t *)s, strlen(s)};
}

int mvt_eq(mvcc_bytes b, const char *s)
{
    size_t n = strlen(s);
    return b.len == n && (n == 0 || memcmp(b.data, s, n) == 0);
}

long mvt_db_entries(mvcc_store *s, const char *name)
{
    MDB_env *env = mvcc_env(s);
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_stat st;
    long n = -1;
    if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))
        return -1;
    if (mdb_dbi_open(txn, name, 0, &dbi) == 0 && mdb_stat(txn, dbi, &st) == 0)
        n = (long)st.ms_entries;
    mdb_txn_abort(txn);
    return n;
}
