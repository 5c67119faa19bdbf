/*
 * storage.c: a member's storage: WAL + snapshot files + MVCC store, driven
 * by the Raft core's batches (see storage.h for the rules).
 */
#define _GNU_SOURCE
#include "server/storage.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/failpoint.h"
#include "common/fileio.h"
#include "snap/snap.h"

#define STORAGE_COPY_CHUNK (1u << 20)
#define SNAPSHOT_IMAGE_MAX_FREE_PERCENT 25 /* storage_options' default */
#define RESTORE_TMP_NAME   "db-restore.tmp"
#define UNSYNCED_NAME      "db.unsynced"
#define BOOT_ID_PATH       "/proc/sys/kernel/random/boot_id"

struct storage {
    char member_dir[FILEIO_PATH_MAX];
    char wal_dir[FILEIO_PATH_MAX];
    char snap_dir[FILEIO_PATH_MAX];
    char db_dir[FILEIO_PATH_MAX];
    char restore_tmp[FILEIO_PATH_MAX];
    char unsynced_path[FILEIO_PATH_MAX]; /* marker: the store commits without fsync */
    size_t snap_keep;
    unsigned image_max_free_percent;
    bool store_no_sync; /* the store was opened with mvcc no_sync (see storage_open) */
    bool store_rebuilt; /* this open discarded an unsynced store after a reboot */

    wal *w;
    mvcc_store *mv;
    mvcc_arena arena;

    /* What raft_new needs; ents own their data until storage_restore_release. The data of
     * applied entries at or below restore.unloaded_through was dropped as the WAL was read,
     * past restore_applied_bytes of it (restore_loaded_bytes) held. */
    raft_entry *ents;
    uint32_t n_ents, cap_ents;
    uint64_t restore_applied_bytes, restore_loaded_bytes;
    raft_snapshot_meta restore_snap;
    raft_restore restore;

    uint64_t applied_index, applied_term;
    uint64_t snap_index, snap_term;
    raft_conf conf;      /* in force at applied_index (n_voters 0: unknown) */
    uint64_t conf_index; /* last applied CONF entry */

    snap_writer *recv; /* snapshot being received */
    uint64_t recv_index;
    snap_reader *send; /* snapshot being sent */
    uint64_t send_index;

    storage_applied *results;
    uint32_t cap_results;

    /* a snapshot between storage_snapshot_begin and _end (the work on another thread) */
    struct snapshot_job {
        bool active;
        int fd;               /* scratch file for the store's copy */
        raft_conf conf;       /* in force at the applied index when it began */
        uint64_t index, term; /* what the copy holds */
        storage_snapshot_made made;
        bool gave_up;         /* a configuration entry was applied meanwhile: no file */
        int rc;               /* the work's result */
        cord_error err;
    } job;
    atomic_bool conf_applied; /* set by apply_one for a CONF entry while a job is active */
    uint64_t release_index;   /* a snapshot whose WAL segments wait for a durable marker */
    storage_snapshot_made made; /* the newest snapshot written */

    storage_exec_fn exec; /* applies NORMAL entries instead of the test format */
    void *exec_ctx;

    bool failed;
    cord_error fail_err;
};

/* ------------------------------------------------------------ errors */

const char *storage_status_name(int status)
{
    switch (status) {
    case STORAGE_OK:
        return "STORAGE_OK";
    case STORAGE_EINVAL:
        return "STORAGE_EINVAL";
    case STORAGE_EIO:
        return "STORAGE_EIO";
    case STORAGE_ECORRUPT:
        return "STORAGE_ECORRUPT";
    case STORAGE_ENOMEM:
        return "STORAGE_ENOMEM";
    case STORAGE_ELOCKED:
        return "STORAGE_ELOCKED";
    case STORAGE_ELIMIT:
        return "STORAGE_ELIMIT";
    case STORAGE_ENOENT:
        return "STORAGE_ENOENT";
    case STORAGE_EFAILED:
        return "STORAGE_EFAILED";
    case STORAGE_EBADCMD:
        return "STORAGE_EBADCMD";
    default:
        return "STORAGE_E?";
    }
}

static int code_from_wal(int rc)
{
    switch (rc) {
    case WAL_OK:
        return STORAGE_OK;
    case WAL_EINVAL:
        return STORAGE_EINVAL;
    case WAL_ECORRUPT:
        return STORAGE_ECORRUPT;
    case WAL_ENOMEM:
        return STORAGE_ENOMEM;
    case WAL_ELOCKED:
        return STORAGE_ELOCKED;
    case WAL_ELIMIT:
        return STORAGE_ELIMIT;
    case WAL_EFAILED:
        return STORAGE_EFAILED;
    default:
        return STORAGE_EIO;
    }
}

static int code_from_snap(int rc)
{
    switch (rc) {
    case SNAP_OK:
        return STORAGE_OK;
    case SNAP_EINVAL:
    case SNAP_EOFFSET:
        return STORAGE_EINVAL;
    case SNAP_ECORRUPT:
        return STORAGE_ECORRUPT;
    case SNAP_ENOENT:
        return STORAGE_ENOENT;
    case SNAP_ENOMEM:
        return STORAGE_ENOMEM;
    case SNAP_ELIMIT:
        return STORAGE_ELIMIT;
    default:
        return STORAGE_EIO;
    }
}

static int code_from_mvcc(int rc)
{
    switch (rc) {
    case MVCC_OK:
        return STORAGE_OK;
    case MVCC_ECORRUPT:
        return STORAGE_ECORRUPT;
    case MVCC_ENOMEM:
        return STORAGE_ENOMEM;
    case MVCC_ENOSPACE:
        return STORAGE_ELIMIT;
    case MVCC_EINVAL:
    case MVCC_EBUSY:
        return STORAGE_EINVAL;
    default:
        return STORAGE_EIO;
    }
}

/* Re-labels a module's error as a storage error, prefixing the step. */
static int wrap(cord_error *err, int code, const cord_error *src, const char *step)
{
    if (err != NULL) {
        cord_error_copy(err, src, step);
        err->code = code;
    }
    return code;
}

/* Puts the storage in the failed state with the error just reported. */
static int fail(storage *st, int code, const cord_error *err)
{
    if (!st->failed) {
        st->failed = true;
        if (err != NULL) {
            st->fail_err = *err;
        } else {
            cord_error_set(&st->fail_err, code, 0, "storage: failed (%s)",
                           storage_status_name(code));
        }
    }
    return code;
}

static int check_failed(const storage *st, cord_error *err)
{
    if (!st->failed) {
        return STORAGE_OK;
    }
    return cord_error_set(err, STORAGE_EFAILED, st->fail_err.sys_errno,
                          "storage: failed earlier: %s", st->fail_err.msg);
}

/* ----------------------------------------------------- command format */

size_t storage_cmd_put_len(uint32_t key_len, uint32_t value_len)
{
    return 1 + 4 + (size_t)key_len + value_len;
}

size_t storage_cmd_delete_len(uint32_t key_len)
{
    return 1 + (size_t)key_len;
}

size_t storage_cmd_encode_put(uint8_t *buf, const void *key, uint32_t key_len, const void *value,
                              uint32_t value_len)
{
    buf[0] = 'P';
    bytes_put32(buf + 1, key_len);
    if (key_len > 0) {
        memcpy(buf + 5, key, key_len);
    }
    if (value_len > 0) {
        memcpy(buf + 5 + key_len, value, value_len);
    }
    return storage_cmd_put_len(key_len, value_len);
}

size_t storage_cmd_encode_delete(uint8_t *buf, const void *key, uint32_t key_len)
{
    buf[0] = 'D';
    if (key_len > 0) {
        memcpy(buf + 1, key, key_len);
    }
    return storage_cmd_delete_len(key_len);
}

int storage_cmd_decode(const uint8_t *data, size_t len, storage_cmd *out)
{
    memset(out, 0, sizeof(*out));
    if (data == NULL || len < 2 || len > UINT32_MAX) {
        return STORAGE_EBADCMD;
    }
    if (data[0] == 'P') {
        if (len < 5) {
            return STORAGE_EBADCMD;
        }
        uint32_t klen = bytes_get32(data + 1);
        if (klen == 0 || klen > len - 5) {
            return STORAGE_EBADCMD;
        }
        out->op = STORAGE_CMD_PUT;
        out->key = data + 5;
        out->key_len = klen;
        out->value = data + 5 + klen;
        out->value_len = (uint32_t)(len - 5 - klen);
        return STORAGE_OK;
    }
    if (data[0] == 'D') {
        out->op = STORAGE_CMD_DELETE;
        out->key = data + 1;
        out->key_len = (uint32_t)(len - 1);
        return STORAGE_OK;
    }
    return STORAGE_EBADCMD;
}

/* ------------------------------------------------------ restore copy */

static void free_entries(storage *st)
{
    for (uint32_t i = 0; i < st->n_ents; i++) {
        free((void *)st->ents[i].data);
    }
    free(st->ents);
    st->ents = NULL;
    st->n_ents = 0;
    st->cap_ents = 0;
}

/* Past restore_applied_bytes of applied entries' data held, drops the oldest of it (the log
 * is read in index order, so what is dropped is a prefix: raft_restore.unloaded_through).
 * Configuration entries keep their data: raft_new takes them into effect. */
static void unload_oldest(storage *st)
{
    while (st->restore_loaded_bytes > st->restore_applied_bytes) {
        uint64_t next = st->restore.unloaded_through + 1;
        if (next < st->ents[0].index) {
            next = st->ents[0].index;
        }
        raft_entry *o = &st->ents[next - st->ents[0].index];
        if (o->type != RAFT_ENTRY_CONF) {
            st->restore_loaded_bytes -= o->len;
            free((void *)o->data);
            o->data = NULL;
            o->len = 0;
        }
        st->restore.unloaded_through = o->index;
    }
}

static int collect_entry(void *ctx, const raft_entry *e)
{
    storage *st = ctx;
    if (st->n_ents == st->cap_ents) {
        uint32_t ncap = st->cap_ents ? st->cap_ents * 2 : 256;
        raft_entry *p = realloc(st->ents, (size_t)ncap * sizeof(*p));
        if (p == NULL) {
            return 1;
        }
        st->ents = p;
        st->cap_ents = ncap;
    }
    raft_entry c = *e;
    c.data = NULL;
    if (e->len > 0) {
        uint8_t *d = malloc(e->len);
        if (d == NULL) {
            return 1;
        }
        memcpy(d, e->data, e->len);
        c.data = d;
    }
    st->ents[st->n_ents++] = c;
    if (e->index <= st->applied_index && e->type != RAFT_ENTRY_CONF &&
        st->restore_applied_bytes > 0) {
        st->restore_loaded_bytes += e->len;
        unload_oldest(st);
    }
    return 0;
}

/* Drops collected entries with index <= index (all of them if `all`). */
static void drop_entries_through(storage *st, uint64_t index, bool all)
{
    uint32_t keep_from = 0;
    while (keep_from < st->n_ents && (all || st->ents[keep_from].index <= index)) {
        free((void *)st->ents[keep_from].data);
        keep_from++;
    }
    if (keep_from == 0) {
        return; /* nothing to drop (and ents may be NULL: no memmove of it) */
    }
    memmove(st->ents, st->ents + keep_from, (size_t)(st->n_ents - keep_from) * sizeof(raft_entry));
    st->n_ents -= keep_from;
}

static const raft_entry *find_entry(const storage *st, uint64_t index)
{
    if (st->n_ents == 0 || index < st->ents[0].index) {
        return NULL;
    }
    uint64_t off = index - st->ents[0].index;
    if (off >= st->n_ents) {
        return NULL;
    }
    return &st->ents[off];
}

/* -------------------------------------------------- snapshot helpers */

/* Copies the data section of a snapshot file into st->restore_tmp and
 * replaces the MVCC store with it. */
static int restore_mvcc(storage *st, snap_reader *rd, cord_error *err)
{
    int rc = STORAGE_OK;
    int fd = -1;
    uint8_t *buf = NULL;
    cord_error e;
    cord_error_clear(&e);

    buf = malloc(STORAGE_COPY_CHUNK);
    if (buf == NULL) {
        rc = cord_error_set(err, STORAGE_ENOMEM, 0, "storage: out of memory");
        goto cleanup;
    }
    fd = open(st->restore_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = cord_error_set(err, STORAGE_EIO, errno, "storage: create %s", st->restore_tmp);
        goto cleanup;
    }
    uint64_t total = snap_reader_meta(rd)->data_len;
    for (uint64_t off = 0; off < total;) {
        size_t n = 0;
        int src = snap_reader_read_data_at(rd, off, buf, STORAGE_COPY_CHUNK, &n, &e);
        if (src != SNAP_OK) {
            rc = wrap(err, code_from_snap(src), &e, "storage: read snapshot data: ");
            goto cleanup;
        }
        if (n == 0) {
            rc = cord_error_set(err, STORAGE_ECORRUPT, 0,
                                "storage: %s: data shorter than its header says",
                                snap_reader_path(rd));
            goto cleanup;
        }
        int werr = fileio_write_all(fd, buf, n);
        if (werr != 0) {
            rc = cord_error_set(err, STORAGE_EIO, werr, "storage: write %s", st->restore_tmp);
            goto cleanup;
        }
        off += n;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = cord_error_set(err, STORAGE_EIO, errno, "storage: close %s", st->restore_tmp);
        goto cleanup;
    }
    fd = -1;
    int mrc = mvcc_snapshot_restore(st->mv, st->restore_tmp, &e);
    if (mrc != MVCC_OK) {
        rc = wrap(err, code_from_mvcc(mrc), &e, "storage: restore the store from a snapshot: ");
        goto cleanup;
    }
    uint64_t ai = 0, at = 0;
    mvcc_applied(st->mv, &ai, &at);
    const snap_meta *m = snap_reader_meta(rd);
    if (ai != m->index || at != m->term) {
        rc = cord_error_set(err, STORAGE_ECORRUPT, 0,
                            "storage: %s: its store is at index %" PRIu64 " term %" PRIu64
                            ", the file says %" PRIu64 "/%" PRIu64,
                            snap_reader_path(rd), ai, at, m->index, m->term);
        goto cleanup;
    }
    st->applied_index = ai;
    st->applied_term = at;
cleanup:
    if (fd >= 0) {
        close(fd);
    }
    unlink(st->restore_tmp);
    free(buf);
    return rc;
}

/* Decodes the membership blob of a snapshot file. */
static int snap_conf(const snap_reader *rd, raft_conf *conf, cord_error *err)
{
    const snap_meta *m = snap_reader_meta(rd);
    if (raft_conf_decode(conf, m->membership, m->membership_len) != 0 || conf->n_voters == 0) {
        return cord_error_set(err, STORAGE_ECORRUPT, 0,
                              "storage: %s: the membership is not a valid configuration",
                              snap_reader_path(rd));
    }
    return STORAGE_OK;
}

/* ----------------------------------------------------------- open */

static int set_paths(storage *st, const char *data_dir, cord_error *err)
{
    char member[FILEIO_PATH_MAX];
    if (fileio_join(member, sizeof member, data_dir, "member") != 0 ||
        strlen(member) + 32 > WAL_DIR_MAX || strlen(member) + 32 > SNAP_DIR_MAX) {
        return cord_error_set(err, STORAGE_EINVAL, 0, "storage: data directory path too long: %s",
                              data_dir);
    }
    snprintf(st->member_dir, sizeof st->member_dir, "%s", member);
    if (fileio_join(st->wal_dir, sizeof st->wal_dir, member, "wal") != 0 ||
        fileio_join(st->snap_dir, sizeof st->snap_dir, member, "snap") != 0 ||
        fileio_join(st->db_dir, sizeof st->db_dir, member, "db") != 0 ||
        fileio_join(st->restore_tmp, sizeof st->restore_tmp, member, RESTORE_TMP_NAME) != 0 ||
        fileio_join(st->unsynced_path, sizeof st->unsynced_path, member, UNSYNCED_NAME) != 0) {
        return cord_error_set(err, STORAGE_EINVAL, 0, "storage: data directory path too long: %s",
                              data_dir);
    }
    return STORAGE_OK;
}

/* Brings the WAL in line with a snapshot file newer than its marker (see
 * CRASH RECOVERY in storage.h). */
static int catch_up_wal_marker(storage *st, uint64_t index, uint64_t term, cord_error *err)
{
    cord_error e;
    int wrc;
    const raft_entry *at = find_entry(st, index);
    bool own = at != NULL && at->term == term;
    if (own) {
        wrc = wal_mark_snapshot(st->w, index, term, &e);
    } else {
        wrc = wal_install_snapshot(st->w, index, term, &e);
    }
    if (wrc == WAL_OK) {
        wrc = wal_sync(st->w, NULL, &e);
    }
    if (wrc != WAL_OK) {
        return wrap(err, code_from_wal(wrc), &e, "storage: record the snapshot marker: ");
    }
    drop_entries_through(st, index, !own);
    return STORAGE_OK;
}

/* This boot's id (a new one after every reboot, power loss included). Returns 0, or -1 when
 * the kernel does not say. */
static int read_boot_id(char out[64])
{
    int fd = open(BOOT_ID_PATH, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    ssize_t n = read(fd, out, 63);
    close(fd);
    if (n < 8) {
        return -1;
    }
    out[n] = '\0';
    return 0;
}

/*
 * A store opened with mvcc no_sync (MDB_NOSYNC) commits into the page cache only. A killed
 * process loses nothing of it (the kernel still holds every page and writes them back), but
 * a system crash or power loss may leave any mix of old and new pages on disk, meta pages
 * included: the file can be torn, not merely behind. So such a store is trusted only within
 * the boot that wrote it. The marker file holds that boot's id, written (and synced) before
 * the first unsynced commit and removed after a clean close synced the store. At open, a
 * marker naming another boot means the machine went down with unsynced pages: the store is
 * discarded and rebuilt from the newest snapshot file and the WAL, which are synced and
 * together hold every applied entry (the WAL is released only behind a snapshot).
 * Returns STORAGE_OK with *no_sync telling whether the store may skip fsync (false when
 * the kernel gives no boot id: then it keeps fsyncing).
 */
static int prepare_unsynced_store(storage *st, bool *no_sync, cord_error *err)
{
    char boot[64], prev[64];
    if (read_boot_id(boot) != 0) {
        *no_sync = false;
        return STORAGE_OK;
    }
    *no_sync = true;
    int fd = open(st->unsynced_path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, prev, sizeof prev - 1);
        close(fd);
        prev[n > 0 ? n : 0] = '\0';
        if (strcmp(prev, boot) == 0) {
            return STORAGE_OK; /* same boot: only the process went down */
        }
        char path[FILEIO_PATH_MAX];
        const char *files[] = {"data.mdb", "lock.mdb"};
        for (size_t i = 0; i < 2; i++) {
            if (fileio_join(path, sizeof path, st->db_dir, files[i]) != 0) {
                return cord_error_set(err, STORAGE_EINVAL, 0, "storage: path too long");
            }
            if (unlink(path) != 0 && errno != ENOENT) {
                return cord_error_set(err, STORAGE_EIO, errno, "storage: unlink %s", path);
            }
        }
        (void)fileio_fsync_dir(st->db_dir);
        st->store_rebuilt = true;
    } else if (errno != ENOENT) {
        return cord_error_set(err, STORAGE_EIO, errno, "storage: open %s", st->unsynced_path);
    }
    char tmp[FILEIO_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", st->unsynced_path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return cord_error_set(err, STORAGE_EIO, errno, "storage: create %s", tmp);
    }
    int werr = fileio_write_all(fd, boot, strlen(boot));
    if (werr == 0 && fsync(fd) != 0) {
        werr = errno;
    }
    close(fd);
    if (werr == 0 && rename(tmp, st->unsynced_path) != 0) {
        werr = errno;
    }
    if (werr == 0) {
        werr = fileio_fsync_dir(st->member_dir);
    }
    if (werr != 0) {
        unlink(tmp);
        return cord_error_set(err, STORAGE_EIO, werr, "storage: write %s", st->unsynced_path);
    }
    return STORAGE_OK;
}

int storage_open(const char *data_dir, const storage_options *opts, storage **out, cord_error *err)
{
    int rc = STORAGE_OK;
    cord_error e;
    cord_error_clear(&e);
    snap_reader *snap = NULL;
    storage_options defaults;
    memset(&defaults, 0, sizeof defaults);
    if (opts == NULL) {
        opts = &defaults;
    }
    *out = NULL;
    storage *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return cord_error_set(err, STORAGE_ENOMEM, 0, "storage: out of memory");
    }
    st->snap_keep = opts->snap_keep ? opts->snap_keep : STORAGE_SNAP_KEEP_DEFAULT;
    st->image_max_free_percent = opts->snapshot_image_max_free_percent
                                     ? opts->snapshot_image_max_free_percent
                                     : SNAPSHOT_IMAGE_MAX_FREE_PERCENT;
    mvcc_arena_init(&st->arena, 0);
    rc = set_paths(st, data_dir, err);
    if (rc != STORAGE_OK) {
        goto fail;
    }
    int ferr = fileio_mkdirs(st->member_dir, 0700, NULL);
    if (ferr == 0) {
        ferr = fileio_mkdirs(st->snap_dir, 0700, NULL);
    }
    if (ferr != 0) {
        rc = cord_error_set(err, STORAGE_EIO, ferr, "storage: create %s", st->snap_dir);
        goto fail;
    }
    int src = snap_remove_tmp(st->snap_dir, NULL, &e);
    if (src != SNAP_OK) {
        rc = wrap(err, code_from_snap(src), &e, "storage: ");
        goto fail;
    }
    if (unlink(st->restore_tmp) != 0 && errno != ENOENT) {
        rc = cord_error_set(err, STORAGE_EIO, errno, "storage: unlink %s", st->restore_tmp);
        goto fail;
    }

    /* 1. the WAL */
    wal_open_info winfo;
    int wrc = wal_open(st->wal_dir, &opts->wal, &st->w, &winfo, &e);
    if (wrc != WAL_OK) {
        rc = wrap(err, code_from_wal(wrc), &e, "storage: open the WAL: ");
        goto fail;
    }
    wal_state ws;
    wal_state_get(st->w, &ws);

    /* 2. the newest snapshot */
    src = snap_load_newest(st->snap_dir, UINT64_MAX, &snap, NULL, &e);
    if (src != SNAP_OK && src != SNAP_ENOENT) {
        rc = wrap(err, code_from_snap(src), &e, "storage: load the newest snapshot: ");
        goto fail;
    }
    if (snap != NULL && winfo.created) {
        rc = cord_error_set(err, STORAGE_ECORRUPT, 0,
                            "storage: %s holds snapshots but the WAL in %s is missing: the "
                            "member's hard state (term, vote) is lost",
                            st->snap_dir, st->wal_dir);
        goto fail;
    }
    uint64_t s_index = 0, s_term = 0;
    if (snap != NULL) {
        s_index = snap_reader_meta(snap)->index;
        s_term = snap_reader_meta(snap)->term;
    }
    if (ws.snapshot_index > s_index) {
        rc = cord_error_set(err, STORAGE_ECORRUPT, 0,
                            "storage: the WAL in %s marks a snapshot at index %" PRIu64
                            " but the newest snapshot file in %s is at %" PRIu64,
                            st->wal_dir, ws.snapshot_index, st->snap_dir, s_index);
        goto fail;
    }
    if (snap != NULL && ws.snapshot_index == s_index && ws.snapshot_term != s_term) {
        rc = cord_error_set(err, STORAGE_ECORRUPT, 0,
                            "storage: %s has term %" PRIu64 ", the WAL's marker at index %" PRIu64
                            " says term %" PRIu64,
                            snap_reader_path(snap), s_term, s_index, ws.snapshot_term);
        goto fail;
    }

    /* 3. the MVCC store */
    mvcc_options mo = opts->mvcc;
    if (!mo.no_sync) {
        mo.write_map = false; /* only for a store that is rebuilt after a system crash */
    }
    if (mo.no_sync) {
        rc = prepare_unsynced_store(st, &mo.no_sync, err);
        if (rc != STORAGE_OK) {
            goto fail;
        }
        if (!mo.no_sync) {
            mo.no_meta_sync = true; /* no boot id: one fsync per commit */
            mo.write_map = false;
        }
        st->store_no_sync = mo.no_sync;
    }
    int mrc = mvcc_open(st->db_dir, &mo, &st->mv, &e);
    if (mrc != MVCC_OK) {
        rc = wrap(err, code_from_mvcc(mrc), &e, "storage: open the store: ");
        goto fail;
    }
    mvcc_applied(st->mv, &st->applied_index, &st->applied_term);
    if (winfo.created && st->applied_index > 0) {
        rc = cord_error_set(err, STORAGE_ECORRUPT, 0,
                            "storage: the store in %s has applied index %" PRIu64
                            " but the WAL in %s is missing",
                            st->db_dir, st->applied_index, st->wal_dir);
        goto fail;
    }
    if (snap != NULL && st->applied_index < s_index) {
        rc = restore_mvcc(st, snap, err);
        if (rc != STORAGE_OK) {
            goto fail;
        }
    }

    /* 4. the log, read once the applied index is known: applied entries' data past
     * restore_applied_bytes stays on disk */
    st->restore_applied_bytes = opts->restore_applied_bytes;
    wrc = wal_replay(st->w, collect_entry, st, &e);
    if (wrc == WAL_EABORTED) {
        rc = cord_error_set(err, STORAGE_ENOMEM, 0, "storage: out of memory replaying %s",
                            st->wal_dir);
        goto fail;
    }
    if (wrc != WAL_OK) {
        rc = wrap(err, code_from_wal(wrc), &e, "storage: replay the WAL: ");
        goto fail;
    }
    if (snap != NULL && s_index > ws.snapshot_index) {
        rc = catch_up_wal_marker(st, s_index, s_term, err);
        if (rc != STORAGE_OK) {
            goto fail;
        }
        wal_state_get(st->w, &ws);
    }
    uint64_t last = st->n_ents > 0 ? st->ents[st->n_ents - 1].index : s_index;
    if (st->applied_index > last) {
        rc = cord_error_set(err, STORAGE_ECORRUPT, 0,
                            "storage: the store in %s has applied index %" PRIu64
                            ", beyond the log in %s (last index %" PRIu64 ")",
                            st->db_dir, st->applied_index, st->wal_dir, last);
        goto fail;
    }
    if (st->applied_index > s_index) {
        const raft_entry *a = find_entry(st, st->applied_index);
        if (a == NULL || a->term != st->applied_term) {
            rc = cord_error_set(err, STORAGE_ECORRUPT, 0,
                                "storage: the store in %s applied index %" PRIu64
                                " of term %" PRIu64 ", which the log in %s does not hold",
                                st->db_dir, st->applied_index, st->applied_term, st->wal_dir);
            goto fail;
        }
    }

    /* 5. the configuration in force at the applied index */
    if (snap != NULL) {
        rc = snap_conf(snap, &st->conf, err);
        if (rc != STORAGE_OK) {
            goto fail;
        }
        st->restore_snap.index = s_index;
        st->restore_snap.term = s_term;
        st->restore_snap.size = snap_reader_file_size(snap);
        st->restore_snap.conf = st->conf;
        st->restore.snapshot = &st->restore_snap;
        st->snap_index = s_index;
        st->snap_term = s_term;
    }
    for (uint32_t i = 0; i < st->n_ents && st->ents[i].index <= st->applied_index; i++) {
        const raft_entry *c = &st->ents[i];
        if (c->type != RAFT_ENTRY_CONF) {
            continue;
        }
        if (raft_conf_decode(&st->conf, c->data, c->len) != 0) {
            rc = cord_error_set(err, STORAGE_ECORRUPT, 0,
                                "storage: the WAL in %s holds a malformed configuration at index "
                                "%" PRIu64,
                                st->wal_dir, c->index);
            goto fail;
        }
        st->conf_index = c->index;
    }

    st->restore.hard_state = ws.hard_state;
    st->restore.entries = st->ents;
    st->restore.n_entries = st->n_ents;
    st->restore.applied = st->applied_index;
    snap_reader_close(snap);
    *out = st;
    return STORAGE_OK;

fail:
    snap_reader_close(snap);
    storage_close(st);
    return rc;
}

const raft_restore *storage_restore(const storage *st)
{
    return &st->restore;
}

void storage_restore_release(storage *st)
{
    free_entries(st);
    st->restore.entries = NULL;
    st->restore.n_entries = 0;
    st->restore.unloaded_through = 0;
}

/* ------------------------------------------------------------ ready */

static int receive_chunk(storage *st, const struct raft_ready *rd, cord_error *err)
{
    cord_error e;
    if (rd->snapshot_chunk_offset == 0) {
        snap_writer_abort(st->recv);
        st->recv = NULL;
        int src = snap_receiver_begin(st->snap_dir, &st->recv, &e);
        if (src != SNAP_OK) {
            return wrap(err, code_from_snap(src), &e, "storage: receive a snapshot: ");
        }
        st->recv_index = rd->snapshot_chunk_index;
    }
    if (st->recv == NULL || st->recv_index != rd->snapshot_chunk_index) {
        return cord_error_set(err, STORAGE_EINVAL, 0,
                              "storage: snapshot chunk at offset %" PRIu64 " of index %" PRIu64
                              " without the chunks before it",
                              rd->snapshot_chunk_offset, rd->snapshot_chunk_index);
    }
    int src = snap_writer_write_at(st->recv, rd->snapshot_chunk_offset, rd->snapshot_chunk,
                                   rd->snapshot_chunk_len, &e);
    if (src != SNAP_OK) {
        return wrap(err, code_from_snap(src), &e, "storage: receive a snapshot: ");
    }
    return STORAGE_OK;
}

static int install_snapshot(storage *st, const raft_snapshot_meta *meta, cord_error *err)
{
    int rc = STORAGE_OK;
    cord_error e;
    snap_reader *rd = NULL;
    if (st->recv == NULL || st->recv_index != meta->index) {
        return cord_error_set(err, STORAGE_EINVAL, 0,
                              "storage: install of snapshot %" PRIu64 " that was not received",
                              meta->index);
    }
    snap_name name;
    snap_writer *w = st->recv;
    st->recv = NULL;
    int src = snap_writer_commit(w, &name, &e);
    if (src != SNAP_OK) {
        return wrap(err, code_from_snap(src), &e, "storage: install a received snapshot: ");
    }
    src = snap_open(st->snap_dir, &name, &rd, &e);
    if (src != SNAP_OK) {
        rc = wrap(err, code_from_snap(src), &e, "storage: install a received snapshot: ");
        goto cleanup;
    }
    if (name.index != meta->index || name.term != meta->term) {
        rc = cord_error_set(err, STORAGE_ECORRUPT, 0,
                            "storage: received snapshot %s is at %" PRIu64 "/%" PRIu64
                            ", the leader announced %" PRIu64 "/%" PRIu64,
                            snap_reader_path(rd), name.index, name.term, meta->index, meta->term);
        goto cleanup;
    }
    raft_conf conf;
    rc = snap_conf(rd, &conf, err);
    if (rc != STORAGE_OK) {
        goto cleanup;
    }
    rc = restore_mvcc(st, rd, err);
    if (rc != STORAGE_OK) {
        goto cleanup;
    }
    int wrc = wal_install_snapshot(st->w, meta->index, meta->term, &e);
    if (wrc != WAL_OK) {
        rc = wrap(err, code_from_wal(wrc), &e, "storage: record the installed snapshot: ");
        goto cleanup;
    }
    st->snap_index = meta->index;
    st->snap_term = meta->term;
    st->conf = meta->conf;
    st->conf_index = 0;
cleanup:
    snap_reader_close(rd);
    return rc;
}

static bool mvcc_fatal(int mrc)
{
    return mrc == MVCC_EIO || mrc == MVCC_ECORRUPT || mrc == MVCC_ENOMEM || mrc == MVCC_EBATCH ||
           mrc == MVCC_EBUSY || mrc == MVCC_EINVAL;
}

static int apply_one(storage *st, const raft_entry *ent, storage_applied *a, cord_error *err)
{
    cord_error e;
    memset(a, 0, sizeof(*a));
    a->entry = ent;
    a->result = MVCC_OK;
    if (ent->type == RAFT_ENTRY_CONF) {
        raft_conf c;
        if (raft_conf_decode(&c, ent->data, ent->len) != 0) {
            return cord_error_set(err, STORAGE_ECORRUPT, 0,
                                  "storage: committed configuration at index %" PRIu64
                                  " does not decode",
                                  ent->index);
        }
        st->conf = c;
        st->conf_index = ent->index;
        /* before the batch commits, so a copy that sees the entry sees the flag */
        atomic_store(&st->conf_applied, true);
        return STORAGE_OK;
    }
    if (ent->type != RAFT_ENTRY_NORMAL || ent->len == 0) {
        return STORAGE_OK;
    }
    if (st->exec != NULL) {
        int xrc = st->exec(st->exec_ctx, st->mv, ent, &e);
        if (xrc != STORAGE_OK) {
            return wrap(err, xrc, &e, "storage: apply: ");
        }
        return STORAGE_OK;
    }
    if (storage_cmd_decode(ent->data, ent->len, &a->cmd) != STORAGE_OK) {
        memset(&a->cmd, 0, sizeof a->cmd);
        a->result = STORAGE_EBADCMD;
        return STORAGE_OK;
    }
    mvcc_arena_reset(&st->arena);
    int mrc;
    if (a->cmd.op == STORAGE_CMD_PUT) {
        mvcc_put_req req;
        memset(&req, 0, sizeof req);
        req.key.data = a->cmd.key;
        req.key.len = a->cmd.key_len;
        req.value.data = a->cmd.value;
        req.value.len = a->cmd.value_len;
        mvcc_put_resp resp;
        memset(&resp, 0, sizeof resp);
        mrc = mvcc_put(st->mv, &st->arena, &req, &resp, &e);
        a->revision = resp.revision;
    } else {
        mvcc_delete_req req;
        memset(&req, 0, sizeof req);
        req.key.data = a->cmd.key;
        req.key.len = a->cmd.key_len;
        mvcc_delete_resp resp;
        memset(&resp, 0, sizeof resp);
        mrc = mvcc_delete_range(st->mv, &st->arena, &req, &resp, &e);
        a->revision = resp.revision;
        a->deleted = resp.deleted;
    }
    if (mvcc_fatal(mrc)) {
        return wrap(err, code_from_mvcc(mrc), &e, "storage: apply: ");
    }
    a->result = mrc == MVCC_ERESULT ? MVCC_OK : mrc;
    return STORAGE_OK;
}

static int apply_committed(storage *st, const struct raft_ready *rd, storage_apply_fn fn, void *ctx,
                           cord_error *err)
{
    int rc = STORAGE_OK;
    cord_error e;
    uint32_t n = rd->n_committed;
    if (n == 0) {
        return STORAGE_OK;
    }
    if (rd->committed[0].index != st->applied_index + 1) {
        return cord_error_set(err, STORAGE_EINVAL, 0,
                              "storage: committed entries start at %" PRIu64
                              " but the store has applied up to %" PRIu64,
                              rd->committed[0].index, st->applied_index);
    }
    if (n > st->cap_results) {
        storage_applied *p = realloc(st->results, (size_t)n * sizeof(*p));
        if (p == NULL) {
            return cord_error_set(err, STORAGE_ENOMEM, 0, "storage: out of memory");
        }
        st->results = p;
        st->cap_results = n;
    }
    /* Keep the configuration so that an aborted batch leaves it unchanged. */
    raft_conf conf_before = st->conf;
    uint64_t conf_index_before = st->conf_index;
    int mrc = mvcc_batch_begin(st->mv, &e);
    if (mrc != MVCC_OK) {
        return wrap(err, code_from_mvcc(mrc), &e, "storage: begin an apply batch: ");
    }
    for (uint32_t i = 0; i < n; i++) {
        const raft_entry *ent = &rd->committed[i];
        if (ent->index != rd->committed[0].index + i) {
            rc =
                cord_error_set(err, STORAGE_EINVAL, 0,
                               "storage: committed entries not contiguous at %" PRIu64, ent->index);
            goto abort;
        }
        rc = apply_one(st, ent, &st->results[i], err);
        if (rc != STORAGE_OK) {
            goto abort;
        }
    }
    const raft_entry *last = &rd->committed[n - 1];
    mrc = mvcc_batch_commit(st->mv, last->index, last->term, &e);
    if (mrc != MVCC_OK) {
        st->conf = conf_before;
        st->conf_index = conf_index_before;
        return wrap(err, code_from_mvcc(mrc), &e, "storage: commit an apply batch: ");
    }
    st->applied_index = last->index;
    st->applied_term = last->term;
    if (fn != NULL) {
        for (uint32_t i = 0; i < n; i++) {
            fn(ctx, &st->results[i]);
        }
    }
    return STORAGE_OK;
abort:
    mvcc_batch_abort(st->mv);
    st->conf = conf_before;
    st->conf_index = conf_index_before;
    return rc;
}

static int handle_ready(storage *st, const struct raft_ready *rd, storage_apply_fn apply_fn,
                        void *ctx, bool *need_sync, cord_error *err);

int storage_handle_ready(storage *st, const struct raft_ready *rd, storage_apply_fn apply_fn,
                         void *ctx, cord_error *err)
{
    return handle_ready(st, rd, apply_fn, ctx, NULL, err);
}

int storage_handle_ready_async(storage *st, const struct raft_ready *rd, storage_apply_fn apply_fn,
                               void *ctx, bool *need_sync, cord_error *err)
{
    *need_sync = false;
    return handle_ready(st, rd, apply_fn, ctx, need_sync, err);
}

int storage_sync_begin(storage *st, cord_error *err)
{
    cord_error local;
    if (err == NULL)
        err = &local;
    int rc = check_failed(st, err);
    if (rc != STORAGE_OK)
        return rc;
    cord_error e;
    int wrc = wal_sync_begin(st->w, &e);
    if (wrc != WAL_OK)
        return fail(st, wrap(err, code_from_wal(wrc), &e, "storage: sync the WAL: "), err);
    return STORAGE_OK;
}

void storage_sync_do(storage *st)
{
    wal_sync_do(st->w);
}

int storage_sync_end(storage *st, cord_error *err)
{
    cord_error local;
    if (err == NULL)
        err = &local;
    cord_error e;
    int wrc = wal_sync_end(st->w, NULL, &e);
    if (wrc != WAL_OK)
        return fail(st, wrap(err, code_from_wal(wrc), &e, "storage: sync the WAL: "), err);
    return STORAGE_OK;
}

static int handle_ready(storage *st, const struct raft_ready *rd, storage_apply_fn apply_fn,
                        void *ctx, bool *need_sync, cord_error *err)
{
    cord_error local; /* so that the failed state keeps the message */
    if (err == NULL) {
        err = &local;
    }
    int rc = check_failed(st, err);
    if (rc != STORAGE_OK) {
        return rc;
    }
    cord_error e;
    cord_error_clear(&e);
    bool installed = false;

    if (rd->snapshot_chunk != NULL) {
        rc = receive_chunk(st, rd, err);
        if (rc != STORAGE_OK) {
            goto failed;
        }
    }
    if (rd->snapshot != NULL) {
        rc = install_snapshot(st, rd->snapshot, err);
        if (rc != STORAGE_OK) {
            goto failed;
        }
        installed = true;
    }
    if (rd->n_entries > 0) {
        int wrc = wal_append(st->w, rd->entries, rd->n_entries, &e);
        if (wrc != WAL_OK) {
            rc = wrap(err, code_from_wal(wrc), &e, "storage: append to the WAL: ");
            goto failed;
        }
    }
    if (rd->hard_state_changed) {
        int wrc = wal_set_hard_state(st->w, &rd->hard_state, &e);
        if (wrc != WAL_OK) {
            rc = wrap(err, code_from_wal(wrc), &e, "storage: record the hard state: ");
            goto failed;
        }
    }
    /* A batch without rd->must_sync (only a new commit index, none that puts a configuration
     * into effect) is not synced: its record goes out with the next sync, and a crash before
     * that only loses what the leader tells again. */
    if (need_sync != NULL && !installed && rd->must_sync) {
        *need_sync = true; /* the caller syncs, off its thread */
    } else if (rd->must_sync || installed) {
        int wrc = wal_sync(st->w, NULL, &e);
        if (wrc != WAL_OK) {
            rc = wrap(err, code_from_wal(wrc), &e, "storage: sync the WAL: ");
            goto failed;
        }
    }
    if (installed) {
        int src = snap_purge(st->snap_dir, st->snap_keep, NULL, &e);
        if (src != SNAP_OK) {
            rc = wrap(err, code_from_snap(src), &e, "storage: purge old snapshots: ");
            goto failed;
        }
        st->release_index = 0; /* released through the installed snapshot here */
        int wrc = wal_release_to(st->w, st->snap_index + 1, NULL, &e);
        if (wrc != WAL_OK) {
            rc = wrap(err, code_from_wal(wrc), &e, "storage: release WAL segments: ");
            goto failed;
        }
    }
    rc = apply_committed(st, rd, apply_fn, ctx, err);
    if (rc != STORAGE_OK) {
        goto failed;
    }
    return STORAGE_OK;
failed:
    return fail(st, rc, err);
}

/* --------------------------------------------------------- snapshots */

/* Where a snapshot's data comes from: the scratch file of a compacting copy, or an image of
 * the store's own file (mvcc_image). */
typedef struct copy_source {
    int fd;            /* the scratch file, when image is NULL */
    mvcc_image *image; /* closed once read: it holds the store's pages and its lock */
    uint64_t size;
} copy_source;

static int copy_source_read(const copy_source *src, uint64_t off, void *buf, size_t len,
                            size_t *got, cord_error *err)
{
    if (src->image != NULL) {
        cord_error e;
        if (mvcc_image_read(src->image, off, buf, len, got, &e) != MVCC_OK) {
            return wrap(err, STORAGE_EIO, &e, "storage: read the store: ");
        }
        return STORAGE_OK;
    }
    int ferr = fileio_pread_full(src->fd, buf, len, off, got);
    if (ferr != 0) {
        return cord_error_set(err, STORAGE_EIO, ferr, "storage: read the store copy");
    }
    return STORAGE_OK;
}

/* Writes `from` into a new snapshot file at index/term with `conf`. Thread-safe: uses nothing
 * but its arguments and the directory. */
static int write_snapshot_file(const char *snap_dir, copy_source *from, uint64_t index,
                               uint64_t term, const raft_conf *conf, cord_error *err)
{
    int rc = STORAGE_OK;
    cord_error e;
    uint8_t *buf = NULL;
    snap_writer *w = NULL;
    uint64_t size = from->size;
    uint8_t membership[4 + 8 * 3 * RAFT_MAX_MEMBERS + 64];
    assert(raft_conf_encoded_len(conf) <= sizeof membership);
    snap_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.index = index;
    meta.term = term;
    meta.membership = membership;
    meta.membership_len = (uint32_t)raft_conf_encode(conf, membership);
    int src = snap_writer_begin(snap_dir, &meta, &w, &e);
    if (src != SNAP_OK) {
        rc = wrap(err, code_from_snap(src), &e, "storage: write a snapshot: ");
        goto cleanup;
    }
    buf = malloc(STORAGE_COPY_CHUNK);
    if (buf == NULL) {
        rc = cord_error_set(err, STORAGE_ENOMEM, 0, "storage: out of memory");
        goto cleanup;
    }
    for (uint64_t off = 0; off < size;) {
        size_t got = 0;
        rc = copy_source_read(from, off, buf, STORAGE_COPY_CHUNK, &got, err);
        if (rc != STORAGE_OK) {
            goto cleanup;
        }
        if (got == 0) {
            rc = cord_error_set(err, STORAGE_EIO, 0, "storage: the store copy shrank");
            goto cleanup;
        }
        src = snap_writer_write(w, buf, got, &e);
        if (src != SNAP_OK) {
            rc = wrap(err, code_from_snap(src), &e, "storage: write a snapshot: ");
            goto cleanup;
        }
        off += got;
    }
    mvcc_image_close(from->image); /* before the file's fsync */
    from->image = NULL;
    snap_writer *tocommit = w;
    w = NULL;
    src = snap_writer_commit(tocommit, NULL, &e);
    if (src != SNAP_OK) {
        rc = wrap(err, code_from_snap(src), &e, "storage: write a snapshot: ");
        goto cleanup;
    }
cleanup:
    snap_writer_abort(w);
    free(buf);
    return rc;
}

int storage_snapshot_begin(storage *st, raft *r, bool *started, cord_error *err)
{
    cord_error local; /* so that the failed state keeps the message */
    if (err == NULL) {
        err = &local;
    }
    *started = false;
    assert(!st->job.active);
    int rc = check_failed(st, err);
    if (rc != STORAGE_OK) {
        return rc;
    }
    if (st->applied_index <= st->snap_index) {
        return STORAGE_OK;
    }
    char tmpl[FILEIO_PATH_MAX];
    if (snprintf(tmpl, sizeof tmpl, "%s/.snapcopy-XXXXXX", st->member_dir) >= (int)sizeof tmpl) {
        return fail(st, cord_error_set(err, STORAGE_EINVAL, 0, "storage: path too long"), err);
    }
    int fd = mkostemp(tmpl, O_CLOEXEC);
    if (fd < 0) {
        return fail(st, cord_error_set(err, STORAGE_EIO, errno, "storage: create %s", tmpl), err);
    }
    unlink(tmpl); /* an anonymous scratch file: nothing to clean after a crash */
    memset(&st->job, 0, sizeof st->job);
    st->job.active = true;
    st->job.fd = fd;
    st->job.conf = st->conf;
    if (st->job.conf.n_voters == 0) {
        st->job.conf = *raft_get_conf(r);
    }
    atomic_store(&st->conf_applied, false);
    *started = true;
    return STORAGE_OK;
}

/* Opens the source of a copy of the store's newest committed state: the store's file as it
 * is, read with pread, unless much of it is free pages: then a compacting copy (through the
 * map) into scratch_fd is worth its cost, and that file is the source (*compacted). Fills
 * *info (free_bytes is the store's) and the index and term the copy holds. */
static int copy_source_open(storage *st, int scratch_fd, copy_source *from, mvcc_image_info *info,
                            uint64_t *index, uint64_t *term, bool *compacted, cord_error *err)
{
    cord_error e;
    memset(from, 0, sizeof *from);
    memset(info, 0, sizeof *info);
    from->fd = scratch_fd;
    *compacted = false;
    int mrc = mvcc_image_open(st->mv, st->image_max_free_percent, &from->image, info, &e);
    if (mrc == MVCC_OK && from->image != NULL) {
        *index = info->applied_index;
        *term = info->applied_term;
        from->size = info->size;
        return STORAGE_OK;
    }
    if (mrc == MVCC_OK) {
        *compacted = true;
        mrc = mvcc_snapshot_copy(st->mv, scratch_fd, index, term, &e);
    }
    if (mrc != MVCC_OK) {
        return wrap(err, code_from_mvcc(mrc), &e, "storage: copy the store: ");
    }
    off_t size = lseek(scratch_fd, 0, SEEK_END);
    if (size < 0) {
        return cord_error_set(err, STORAGE_EIO, errno, "storage: lseek the store copy");
    }
    from->size = (uint64_t)size;
    return STORAGE_OK;
}

void storage_snapshot_work(storage *st)
{
    struct snapshot_job *j = &st->job;
    assert(j->active);
    copy_source from;
    mvcc_image_info info;
    bool compacted;
    j->rc = copy_source_open(st, j->fd, &from, &info, &j->index, &j->term, &compacted, &j->err);
    if (j->rc != STORAGE_OK) {
        return;
    }
    j->made.compacted = compacted;
    j->made.index = j->index;
    j->made.data_bytes = from.size;
    j->made.free_bytes = info.free_bytes;
    if (atomic_load(&st->conf_applied)) {
        /* the configuration in force at the copy's index may not be j->conf */
        j->gave_up = true;
    } else {
        j->rc = write_snapshot_file(st->snap_dir, &from, j->index, j->term, &j->conf, &j->err);
    }
    mvcc_image_close(from.image);
}

int storage_copy_store(storage *st, int fd, uint64_t *applied_index, bool *compacted,
                       cord_error *err)
{
    copy_source from;
    mvcc_image_info info;
    uint64_t term;
    int rc = copy_source_open(st, fd, &from, &info, applied_index, &term, compacted, err);
    if (rc != STORAGE_OK) {
        return rc;
    }
    int fp = failpoint_hit("storage-copy-store"); /* with an image, the state is pinned */
    if (fp != 0) {
        rc = cord_error_set(err, STORAGE_EIO, fp, "storage: copy the store");
    }
    uint8_t *buf = NULL;
    if (rc == STORAGE_OK && from.image != NULL) { /* a compacting copy is in fd already */
        buf = malloc(STORAGE_COPY_CHUNK);
        if (buf == NULL) {
            rc = cord_error_set(err, STORAGE_ENOMEM, 0, "storage: out of memory");
        }
        for (uint64_t off = 0; rc == STORAGE_OK && off < from.size;) {
            size_t got = 0;
            rc = copy_source_read(&from, off, buf, STORAGE_COPY_CHUNK, &got, err);
            if (rc == STORAGE_OK && got == 0) {
                rc = cord_error_set(err, STORAGE_EIO, 0, "storage: the store copy shrank");
            }
            int werr = rc == STORAGE_OK ? fileio_pwrite_all(fd, buf, got, off) : 0;
            if (werr != 0) {
                rc = cord_error_set(err, STORAGE_EIO, werr, "storage: write the store copy");
            }
            off += got;
        }
    }
    free(buf);
    mvcc_image_close(from.image);
    return rc;
}

storage_snapshot_made storage_last_snapshot_made(const storage *st)
{
    return st->made;
}

void storage_snapshot_abandon(storage *st)
{
    if (st->job.active) {
        close(st->job.fd);
        st->job.active = false;
    }
}

static int snapshot_end(storage *st, raft *r, bool wait, cord_error *err)
{
    cord_error local; /* so that the failed state keeps the message */
    if (err == NULL) {
        err = &local;
    }
    struct snapshot_job job = st->job;
    storage_snapshot_abandon(st);
    int rc = check_failed(st, err);
    if (rc != STORAGE_OK) {
        return rc;
    }
    if (job.rc != STORAGE_OK) {
        *err = job.err;
        if (job.rc == STORAGE_EIO || job.rc == STORAGE_ENOMEM) {
            /* the copy or its file failed (a full disk, say) before anything recorded it:
             * the store, the WAL and the last recorded snapshot are as they were; the
             * scratch copy is gone, and so is the file unless it was already renamed into
             * place, complete (a restart may then start from it, as after a crash at that
             * point). Not a failure of the storage: a later snapshot may be tried. */
            return job.rc;
        }
        rc = job.rc;
        goto failed;
    }
    if (job.gave_up || job.index <= st->snap_index) {
        return STORAGE_OK;
    }
    uint64_t index = job.index, term = job.term;
    uint64_t core_term = raft_log_term(r, index);
    if (core_term != 0 && core_term != term) {
        rc = cord_error_set(err, STORAGE_ECORRUPT, 0,
                            "storage: the store applied index %" PRIu64 " of term %" PRIu64
                            ", the core holds term %" PRIu64 " there",
                            index, term, core_term);
        goto failed;
    }
    cord_error e;
    int wrc = wal_mark_snapshot(st->w, index, term, &e);
    if (wrc == WAL_OK && wait) {
        wrc = wal_sync(st->w, NULL, &e);
    }
    if (wrc != WAL_OK) {
        rc = wrap(err, code_from_wal(wrc), &e, "storage: record the snapshot in the WAL: ");
        goto failed;
    }
    st->snap_index = index;
    st->snap_term = term;
    st->made = job.made;

    /* the file's size: what a leader streams to a follower */
    snap_reader *rd = NULL;
    snap_name name = {.term = term, .index = index};
    int src = snap_open(st->snap_dir, &name, &rd, &e);
    if (src != SNAP_OK) {
        rc = wrap(err, code_from_snap(src), &e, "storage: reopen the new snapshot: ");
        goto failed;
    }
    uint64_t size = snap_reader_file_size(rd);
    snap_reader_close(rd);
    int rrc = raft_snapshot_taken(r, index, size);
    if (rrc != RAFT_OK) {
        rc = cord_error_set(err, STORAGE_EINVAL, 0,
                            "storage: the core refused the snapshot at %" PRIu64 ": %s", index,
                            raft_strerror(rrc));
        goto failed;
    }
    src = snap_purge(st->snap_dir, st->snap_keep, NULL, &e);
    if (src != SNAP_OK) {
        rc = wrap(err, code_from_snap(src), &e, "storage: purge old snapshots: ");
        goto failed;
    }
    st->release_index = index;
    if (wait) {
        return storage_snapshot_release(st, err);
    }
    return STORAGE_OK;
failed:
    return fail(st, rc, err);
}

int storage_snapshot_end(storage *st, raft *r, cord_error *err)
{
    return snapshot_end(st, r, true, err);
}

int storage_snapshot_end_async(storage *st, raft *r, cord_error *err)
{
    return snapshot_end(st, r, false, err);
}

int storage_snapshot_release(storage *st, cord_error *err)
{
    cord_error local;
    if (err == NULL) {
        err = &local;
    }
    if (st->release_index == 0 || st->failed ||
        wal_persisted_snapshot_index(st->w) < st->release_index) {
        return STORAGE_OK;
    }
    cord_error e;
    int wrc = wal_release_to(st->w, st->release_index + 1, NULL, &e);
    if (wrc != WAL_OK) {
        return fail(st, wrap(err, code_from_wal(wrc), &e, "storage: release WAL segments: "), err);
    }
    st->release_index = 0;
    return STORAGE_OK;
}

int storage_take_snapshot(storage *st, raft *r, cord_error *err)
{
    bool started = false;
    int rc = storage_snapshot_begin(st, r, &started, err);
    if (rc != STORAGE_OK || !started) {
        return rc;
    }
    storage_snapshot_work(st);
    return storage_snapshot_end(st, r, err);
}

int storage_read_entries(storage *st, uint64_t from, uint64_t max_bytes, raft_entry **out,
                         uint32_t *n, cord_error *err)
{
    cord_error e;
    int wrc = wal_read(st->w, from, max_bytes, UINT32_MAX, out, n, &e);
    if (wrc != WAL_OK)
        return wrap(err, code_from_wal(wrc), &e, "storage: read back the WAL: ");
    return STORAGE_OK;
}

int storage_read_snapshot_chunk(storage *st, uint64_t index, uint64_t offset, uint32_t len,
                                uint8_t *buf, size_t *n, cord_error *err)
{
    cord_error e;
    *n = 0;
    if (st->send == NULL || st->send_index != index) {
        snap_reader_close(st->send);
        st->send = NULL;
        snap_reader *rd = NULL;
        int src = snap_load_newest(st->snap_dir, index, &rd, NULL, &e);
        if (src != SNAP_OK) {
            return wrap(err, code_from_snap(src), &e, "storage: open snapshot to send: ");
        }
        if (snap_reader_meta(rd)->index != index) {
            snap_reader_close(rd);
            return cord_error_set(err, STORAGE_ENOENT, 0,
                                  "storage: no snapshot at index %" PRIu64 " in %s", index,
                                  st->snap_dir);
        }
        st->send = rd;
        st->send_index = index;
    }
    int src = snap_reader_read_file_at(st->send, offset, buf, len, n, &e);
    if (src != SNAP_OK) {
        return wrap(err, code_from_snap(src), &e, "storage: read snapshot to send: ");
    }
    return STORAGE_OK;
}

/* ----------------------------------------------------------- queries */

mvcc_store *storage_mvcc(storage *st)
{
    return st->mv;
}

void storage_applied_get(const storage *st, uint64_t *index, uint64_t *term)
{
    *index = st->applied_index;
    *term = st->applied_term;
}

void storage_snapshot_get(const storage *st, uint64_t *index, uint64_t *term)
{
    *index = st->snap_index;
    *term = st->snap_term;
}

uint64_t storage_conf_get(const storage *st, raft_conf *conf)
{
    if (conf != NULL) {
        *conf = st->conf;
    }
    return st->conf_index;
}

bool storage_store_rebuilt(const storage *st)
{
    return st->store_rebuilt;
}

bool storage_failed(const storage *st)
{
    return st->failed;
}

void storage_close(storage *st)
{
    if (st == NULL) {
        return;
    }
    snap_writer_abort(st->recv);
    snap_reader_close(st->send);
    storage_snapshot_abandon(st);
    if (st->store_no_sync && st->mv != NULL && !st->failed && mvcc_sync(st->mv, NULL) == MVCC_OK) {
        /* synced: the store no longer depends on this boot's page cache */
        if (unlink(st->unsynced_path) == 0) {
            (void)fileio_fsync_dir(st->member_dir);
        }
    }
    mvcc_close(st->mv);
    wal_close(st->w);
    free_entries(st);
    free(st->results);
    mvcc_arena_reset(&st->arena);
    free(st);
}

void storage_set_executor(storage *st, storage_exec_fn fn, void *ctx)
{
    st->exec = fn;
    st->exec_ctx = ctx;
}
