/*
 * restore.c: `cord snapshot restore FILE [flags]`, the counterpart of
 * `etcdctl snapshot save`: it checks the file (the trailing SHA-256 of what
 * precedes it, as etcd writes it), and creates a new member's data
 * directory whose key-value store is the snapshot's. The member is then
 * started with the same flags and --initial-cluster-state new: it founds a
 * new cluster (new log, new member table) that starts from that data.
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "mvcc/mvcc.h"
#include "server/config.h"

int restore_main(const char *file, const config *cfg)
{
    int rc = 1;
    uint8_t *data = NULL;
    char tmp[CONFIG_STR_MAX + 64] = "";
    mvcc_store *st = NULL;
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "cord: snapshot restore: cannot open %s: %s\n", file, strerror(errno));
        return 1;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size < 32 + 512) {
        fprintf(stderr, "cord: snapshot restore: %s is too small to be a snapshot\n", file);
        goto out;
    }
    size_t size = (size_t)sb.st_size;
    if (size % 512 != 32) {
        fprintf(stderr, "cord: snapshot restore: %s has no trailing SHA-256 (size %zu)\n", file,
                size);
        goto out;
    }
    data = malloc(size);
    if (!data || fread(data, 1, size, f) != size) {
        fprintf(stderr, "cord: snapshot restore: cannot read %s\n", file);
        goto out;
    }
    uint8_t digest[32];
    unsigned int dlen = 0;
    EVP_Digest(data, size - 32, digest, &dlen, EVP_sha256(), NULL);
    if (dlen != 32 || memcmp(digest, data + size - 32, 32) != 0) {
        fprintf(stderr,
                "cord: snapshot restore: %s: snapshot file integrity check failed "
                "(SHA-256 mismatch)\n",
                file);
        goto out;
    }
    struct stat ds;
    if (stat(cfg->data_dir, &ds) == 0) {
        fprintf(stderr, "cord: snapshot restore: data-dir %s exists\n", cfg->data_dir);
        goto out;
    }
    char member_dir[CONFIG_STR_MAX + 16], db_dir[CONFIG_STR_MAX + 32];
    snprintf(member_dir, sizeof member_dir, "%s/member", cfg->data_dir);
    snprintf(db_dir, sizeof db_dir, "%s/member/db", cfg->data_dir);
    int created = 0;
    if (fileio_mkdirs(member_dir, 0700, &created) != 0) {
        fprintf(stderr, "cord: snapshot restore: cannot create %s: %s\n", member_dir,
                strerror(errno));
        goto out;
    }
    snprintf(tmp, sizeof tmp, "%s/member/restore.tmp", cfg->data_dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, data, size - 32) != (ssize_t)(size - 32) || fsync(fd) != 0) {
        fprintf(stderr, "cord: snapshot restore: cannot write %s\n", tmp);
        if (fd >= 0)
            close(fd);
        goto out;
    }
    close(fd);
    cord_error e;
    mvcc_options o;
    memset(&o, 0, sizeof o);
    if (mvcc_open(db_dir, &o, &st, &e) != MVCC_OK ||
        mvcc_snapshot_restore(st, tmp, &e) != MVCC_OK || mvcc_reset_applied(st, &e) != MVCC_OK) {
        fprintf(stderr, "cord: snapshot restore: %s\n", e.msg);
        goto out;
    }
    /* the old cluster's member table does not describe the new one */
    MDB_txn *txn;
    MDB_dbi dbi;
    if (mdb_txn_begin(mvcc_env(st), NULL, 0, &txn) == 0) {
        if (mdb_dbi_open(txn, "members", 0, &dbi) == 0)
            mdb_drop(txn, dbi, 1);
        if (mdb_txn_commit(txn) != 0) {
            fprintf(stderr, "cord: snapshot restore: cannot reset the member table\n");
            goto out;
        }
    }
    mvcc_status ms;
    if (mvcc_status_get(st, &ms, &e) == MVCC_OK)
        printf("restored snapshot %s into %s (revision %lld); start the member with "
               "--initial-cluster-state new\n",
               file, cfg->data_dir, (long long)ms.current_revision);
    rc = 0;
out:
    if (st)
        mvcc_close(st);
    if (tmp[0])
        unlink(tmp);
    free(data);
    fclose(f);
    return rc;
}
