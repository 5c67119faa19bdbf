/*
 * snap.c: snapshot files (see snap.h for the format and the rules).
 */
#define _GNU_SOURCE
#include "snap/snap.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/crc32c.h"
#include "common/failpoint.h"
#include "common/fileio.h"

#define SNAP_MAGIC       0x70616e7364726f63ull /* "cordsnap" as little-endian bytes */
#define SNAP_VERSION     1u
#define SNAP_NAME_LEN    38 /* 16 hex + '-' + 16 hex + ".snap" */
#define SNAP_CHUNK_BYTES (1u << 20)

struct snap_writer {
    char dir[SNAP_DIR_MAX + 1];
    char tmp[FILEIO_PATH_MAX];
    int fd;
    int receiver; /* 1: bytes of a whole file arrive via write_at */
    int failed;
    uint64_t off; /* bytes of the file written so far */
    uint32_t data_crc;
    /* The header (own snapshot: filled at begin; receiver: as it arrives). */
    uint8_t header[SNAP_HEADER_BYTES];
    uint8_t *membership;
    uint32_t membership_len;
    uint64_t data_len; /* receiver: announced by the header */
    uint64_t total;    /* receiver: file size the header announces; 0 until known */
    uint8_t trailer[SNAP_TRAILER_BYTES];
};

struct snap_reader {
    char path[FILEIO_PATH_MAX];
    int fd;
    uint64_t size;
    snap_meta meta;
    uint8_t *membership;
    uint32_t data_crc;
};

static void header_encode(uint8_t *h, const snap_meta *m, const uint8_t *membership)
{
    bytes_put64(h, SNAP_MAGIC);
    bytes_put32(h + 8, SNAP_VERSION);
    bytes_put32(h + 12, m->membership_len);
    bytes_put64(h + 16, m->index);
    bytes_put64(h + 24, m->term);
    bytes_put64(h + 32, m->data_len);
    uint32_t crc = crc32c(h, 40);
    crc = crc32c_extend(crc, membership, m->membership_len);
    bytes_put32(h + 40, crc);
    bytes_put32(h + 44, 0);
}

/* Parse the fixed header; the membership CRC is checked by the caller. */
static int header_decode(const uint8_t *h, snap_meta *m, const char *what, cord_error *err)
{
    if (bytes_get64(h) != SNAP_MAGIC || bytes_get32(h + 8) != SNAP_VERSION ||
        bytes_get32(h + 44) != 0) {
        return cord_error_set(err, SNAP_ECORRUPT, 0,
                              "snap: %s: bad magic, version or reserved field", what);
    }
    m->membership_len = bytes_get32(h + 12);
    m->index = bytes_get64(h + 16);
    m->term = bytes_get64(h + 24);
    m->data_len = bytes_get64(h + 32);
    if (m->membership_len > SNAP_MEMBERSHIP_MAX || m->data_len > SNAP_DATA_MAX || m->index == 0) {
        return cord_error_set(err, SNAP_ECORRUPT, 0,
                              "snap: %s: implausible header (index %" PRIu64 ", membership %" PRIu32
                              " bytes, data %" PRIu64 " bytes)",
                              what, m->index, m->membership_len, m->data_len);
    }
    return SNAP_OK;
}

static uint32_t header_crc(const uint8_t *h, const uint8_t *membership, uint32_t len)
{
    return crc32c_extend(crc32c(h, 40), membership, len);
}

static int name_format(char *out, size_t cap, const char *dir, uint64_t term, uint64_t index,
                       const char *suffix)
{
    int n = snprintf(out, cap, "%s/%016" PRIx64 "-%016" PRIx64 ".snap%s", dir, term, index, suffix);
    return (n < 0 || (size_t)n >= cap) ? ENAMETOOLONG : 0;
}

static int parse_hex16(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d;
        if (c >= '0' && c <= '9') {
            d = c - '0';
        } else if (c >= 'a' && c <= 'f') {
            d = c - 'a' + 10;
        } else {
            return -1;
        }
        v = (v << 4) | (uint64_t)d;
    }
    *out = v;
    return 0;
}

static int parse_name(const char *s, snap_name *out)
{
    if (strlen(s) != SNAP_NAME_LEN || s[16] != '-' || strcmp(s + 33, ".snap") != 0) {
        return -1;
    }
    return parse_hex16(s, &out->term) == 0 && parse_hex16(s + 17, &out->index) == 0 ? 0 : -1;
}

/* ---------- writing ---------- */

static int writer_new(const char *dir, int receiver, const char *tmp_prefix, snap_writer **out,
                      cord_error *err)
{
    int rc = SNAP_OK;
    *out = NULL;
    if (dir == NULL || dir[0] == '\0' || strlen(dir) > SNAP_DIR_MAX) {
        return cord_error_set(err, SNAP_EINVAL, 0, "snap: directory path empty or too long");
    }
    snap_writer *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return cord_error_set(err, SNAP_ENOMEM, ENOMEM, "snap: writer");
    }
    w->fd = -1;
    w->receiver = receiver;
    memcpy(w->dir, dir, strlen(dir) + 1);
    int e = fileio_mkdirs(dir, 0700, NULL);
    if (e != 0) {
        rc = cord_error_set(err, SNAP_EIO, e, "snap: create directory %s", dir);
        goto cleanup;
    }
    int n = snprintf(w->tmp, sizeof w->tmp, "%s/%s.XXXXXX.tmp", dir, tmp_prefix);
    if (n < 0 || (size_t)n >= sizeof w->tmp) {
        rc = cord_error_set(err, SNAP_EINVAL, ENAMETOOLONG, "snap: path in %s", dir);
        goto cleanup;
    }
    w->fd = mkostemps(w->tmp, 4, O_CLOEXEC); /* mode 0600 */
    if (w->fd < 0) {
        rc = cord_error_set(err, SNAP_EIO, errno, "snap: create %s", w->tmp);
        goto cleanup;
    }
    *out = w;
    return SNAP_OK;
cleanup:
    free(w);
    return rc;
}

int snap_writer_begin(const char *dir, const snap_meta *meta, snap_writer **out, cord_error *err)
{
    int rc;
    *out = NULL;
    if (meta->index == 0 || (meta->membership_len > 0 && meta->membership == NULL)) {
        return cord_error_set(err, SNAP_EINVAL, 0, "snap: index 0 or membership missing");
    }
    if (meta->membership_len > SNAP_MEMBERSHIP_MAX) {
        return cord_error_set(err, SNAP_ELIMIT, 0,
                              "snap: membership of %" PRIu32 " bytes (limit %u)",
                              meta->membership_len, SNAP_MEMBERSHIP_MAX);
    }
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%016" PRIx64 "-%016" PRIx64 ".snap", meta->term, meta->index);
    snap_writer *w = NULL;
    rc = writer_new(dir, 0, prefix, &w, err);
    if (rc != SNAP_OK) {
        return rc;
    }
    w->membership_len = meta->membership_len;
    w->membership = malloc(meta->membership_len > 0 ? meta->membership_len : 1);
    if (w->membership == NULL) {
        rc = cord_error_set(err, SNAP_ENOMEM, ENOMEM, "snap: membership copy");
        goto cleanup;
    }
    if (meta->membership_len > 0) {
        memcpy(w->membership, meta->membership, meta->membership_len);
    }
    snap_meta m = *meta;
    m.data_len = 0; /* patched at commit */
    header_encode(w->header, &m, w->membership);
    int e = fileio_pwrite_all(w->fd, w->header, SNAP_HEADER_BYTES, 0);
    if (e == 0) {
        e = fileio_pwrite_all(w->fd, w->membership, w->membership_len, SNAP_HEADER_BYTES);
    }
    if (e != 0) {
        rc = cord_error_set(err, SNAP_EIO, e, "snap: write %s", w->tmp);
        goto cleanup;
    }
    w->off = SNAP_HEADER_BYTES + w->membership_len;
    *out = w;
    return SNAP_OK;
cleanup:
    snap_writer_abort(w);
    return rc;
}

int snap_receiver_begin(const char *dir, snap_writer **out, cord_error *err)
{
    return writer_new(dir, 1, "receive", out, err);
}

uint64_t snap_writer_offset(const snap_writer *w)
{
    return w->off;
}

static int writer_failed(const snap_writer *w, cord_error *err)
{
    return cord_error_set(err, SNAP_EFAILED, 0, "snap: %s: writer failed earlier", w->tmp);
}

static int writer_put(snap_writer *w, const void *buf, size_t len, cord_error *err)
{
    int fp = failpoint_hit("snap-before-write");
    int e = fp != 0 ? fp : fileio_pwrite_all(w->fd, buf, len, w->off);
    if (e != 0) {
        w->failed = 1;
        return cord_error_set(err, SNAP_EIO, e, "snap: write %s at offset %" PRIu64 "%s", w->tmp,
                              w->off, fp != 0 ? " (failpoint)" : "");
    }
    w->off += len;
    return SNAP_OK;
}

int snap_writer_write(snap_writer *w, const void *buf, size_t len, cord_error *err)
{
    if (w->failed) {
        return writer_failed(w, err);
    }
    if (w->receiver) {
        return cord_error_set(err, SNAP_EINVAL, 0, "snap: write on a receiver (use write_at)");
    }
    uint64_t data_len = w->off - SNAP_HEADER_BYTES - w->membership_len;
    if (data_len + len > SNAP_DATA_MAX) {
        return cord_error_set(err, SNAP_ELIMIT, 0, "snap: data longer than %llu bytes",
                              SNAP_DATA_MAX);
    }
    int rc = writer_put(w, buf, len, err);
    if (rc == SNAP_OK) {
        w->data_crc = crc32c_extend(w->data_crc, buf, len);
    }
    return rc;
}

/* Receiver: check and account for the bytes [off, off + len) of the stream. */
static int receiver_absorb(snap_writer *w, uint64_t off, const uint8_t *p, size_t len,
                           cord_error *err)
{
    while (len > 0) {
        size_t take;
        if (off < SNAP_HEADER_BYTES) {
            take =
                (size_t)(SNAP_HEADER_BYTES - off) < len ? (size_t)(SNAP_HEADER_BYTES - off) : len;
            memcpy(w->header + off, p, take);
            if (off + take == SNAP_HEADER_BYTES) {
                snap_meta m;
                int rc = header_decode(w->header, &m, w->tmp, err);
                if (rc != SNAP_OK) {
                    w->failed = 1;
                    return rc;
                }
                w->membership_len = m.membership_len;
                w->data_len = m.data_len;
                w->total = SNAP_HEADER_BYTES + m.membership_len + m.data_len + SNAP_TRAILER_BYTES;
                w->membership = malloc(m.membership_len > 0 ? m.membership_len : 1);
                if (w->membership == NULL) {
                    w->failed = 1;
                    return cord_error_set(err, SNAP_ENOMEM, ENOMEM, "snap: membership buffer");
                }
            }
        } else {
            uint64_t mend = SNAP_HEADER_BYTES + w->membership_len;
            uint64_t dend = mend + w->data_len;
            uint64_t avail = len;
            if (off < mend) {
                take = (size_t)(mend - off < avail ? mend - off : avail);
                memcpy(w->membership + (off - SNAP_HEADER_BYTES), p, take);
            } else if (off < dend) {
                take = (size_t)(dend - off < avail ? dend - off : avail);
                w->data_crc = crc32c_extend(w->data_crc, p, take);
            } else {
                assert(off < w->total);
                take = (size_t)(w->total - off < avail ? w->total - off : avail);
                memcpy(w->trailer + (off - dend), p, take);
            }
        }
        off += take;
        p += take;
        len -= take;
    }
    return SNAP_OK;
}

int snap_writer_write_at(snap_writer *w, uint64_t offset, const void *buf, size_t len,
                         cord_error *err)
{
    if (w->failed) {
        return writer_failed(w, err);
    }
    if (!w->receiver) {
        return cord_error_set(err, SNAP_EINVAL, 0, "snap: write_at on a local writer");
    }
    if (offset != w->off) {
        return cord_error_set(err, SNAP_EOFFSET, 0,
                              "snap: %s: chunk at offset %" PRIu64 ", expected %" PRIu64, w->tmp,
                              offset, w->off);
    }
    if (w->total > 0 && w->off + len > w->total) {
        return cord_error_set(err, SNAP_EINVAL, 0,
                              "snap: %s: chunk [%" PRIu64 ", +%zu) past the end (%" PRIu64 ")",
                              w->tmp, offset, len, w->total);
    }
    /* Before the header is complete the total is unknown: check the part
     * beyond the header once it is parsed. */
    size_t first = len;
    if (w->total == 0 && w->off + len > SNAP_HEADER_BYTES) {
        first = (size_t)(SNAP_HEADER_BYTES - w->off);
    }
    int rc = receiver_absorb(w, offset, buf, first, err);
    if (rc != SNAP_OK) {
        return rc;
    }
    if (first < len && w->off + len > w->total) {
        w->failed = 1;
        return cord_error_set(err, SNAP_EINVAL, 0,
                              "snap: %s: chunk runs past the end (%" PRIu64 ")", w->tmp, w->total);
    }
    if (first < len) {
        rc = receiver_absorb(w, offset + first, (const uint8_t *)buf + first, len - first, err);
        if (rc != SNAP_OK) {
            return rc;
        }
    }
    return writer_put(w, buf, len, err);
}

void snap_writer_abort(snap_writer *w)
{
    if (w == NULL) {
        return;
    }
    if (w->fd >= 0) {
        close(w->fd);
        unlink(w->tmp);
    }
    free(w->membership);
    free(w);
}

#define FP_CHECK(name, ...)                                                                        \
    do {                                                                                           \
        int fp_errno_ = failpoint_hit(name);                                                       \
        if (fp_errno_ != 0) {                                                                      \
            rc = cord_error_set(err, SNAP_EIO, fp_errno_, __VA_ARGS__);                            \
            goto cleanup;                                                                          \
        }                                                                                          \
    } while (0)

int snap_writer_commit(snap_writer *w, snap_name *installed, cord_error *err)
{
    int rc = SNAP_OK;
    int e;
    char path[FILEIO_PATH_MAX];
    snap_meta m;
    if (w->failed) {
        rc = writer_failed(w, err);
        goto cleanup;
    }
    if (w->receiver) {
        if (w->total == 0 || w->off != w->total) {
            rc = cord_error_set(err, SNAP_EINVAL, 0,
                                "snap: %s: incomplete: %" PRIu64 " of %" PRIu64 " bytes received",
                                w->tmp, w->off, w->total);
            goto cleanup;
        }
        rc = header_decode(w->header, &m, w->tmp, err);
        assert(rc == SNAP_OK); /* checked when it arrived */
        if (bytes_get32(w->header + 40) !=
            header_crc(w->header, w->membership, w->membership_len)) {
            rc = cord_error_set(err, SNAP_ECORRUPT, 0,
                                "snap: received %s: header checksum mismatch", w->tmp);
            goto cleanup;
        }
        if (bytes_get32(w->trailer) != w->data_crc) {
            rc = cord_error_set(err, SNAP_ECORRUPT, 0, "snap: received %s: data checksum mismatch",
                                w->tmp);
            goto cleanup;
        }
    } else {
        m.index = bytes_get64(w->header + 16);
        m.term = bytes_get64(w->header + 24);
        m.membership_len = w->membership_len;
        m.data_len = w->off - SNAP_HEADER_BYTES - w->membership_len;
        header_encode(w->header, &m, w->membership);
        uint8_t trailer[SNAP_TRAILER_BYTES];
        bytes_put32(trailer, w->data_crc);
        e = fileio_pwrite_all(w->fd, trailer, sizeof trailer, w->off);
        if (e == 0) {
            e = fileio_pwrite_all(w->fd, w->header, SNAP_HEADER_BYTES, 0);
        }
        if (e != 0) {
            rc = cord_error_set(err, SNAP_EIO, e, "snap: write %s", w->tmp);
            goto cleanup;
        }
    }
    if (name_format(path, sizeof path, w->dir, m.term, m.index, "") != 0) {
        rc = cord_error_set(err, SNAP_EINVAL, ENAMETOOLONG, "snap: path in %s", w->dir);
        goto cleanup;
    }
    FP_CHECK("snap-before-fsync", "snap: fsync %s (failpoint)", w->tmp);
    if (fsync(w->fd) != 0) {
        rc = cord_error_set(err, SNAP_EIO, errno, "snap: fsync %s", w->tmp);
        goto cleanup;
    }
    FP_CHECK("snap-before-rename", "snap: rename %s (failpoint)", w->tmp);
    if (rename(w->tmp, path) != 0) {
        rc = cord_error_set(err, SNAP_EIO, errno, "snap: rename %s to %s", w->tmp, path);
        goto cleanup;
    }
    close(w->fd);
    w->fd = -1; /* renamed: nothing to unlink any more */
    FP_CHECK("snap-after-rename", "snap: fsync %s (failpoint)", w->dir);
    e = fileio_fsync_dir(w->dir);
    if (e != 0) {
        rc = cord_error_set(err, SNAP_EIO, e, "snap: fsync %s", w->dir);
        goto cleanup;
    }
    if (installed != NULL) {
        installed->term = m.term;
        installed->index = m.index;
    }
cleanup:
    snap_writer_abort(w);
    return rc;
}

int snap_save(const char *dir, const snap_meta *meta, const void *data, uint64_t len,
              cord_error *err)
{
    snap_writer *w = NULL;
    int rc = snap_writer_begin(dir, meta, &w, err);
    if (rc != SNAP_OK) {
        return rc;
    }
    const uint8_t *p = data;
    while (len > 0) {
        size_t chunk = len > SNAP_CHUNK_BYTES ? SNAP_CHUNK_BYTES : (size_t)len;
        rc = snap_writer_write(w, p, chunk, err);
        if (rc != SNAP_OK) {
            snap_writer_abort(w);
            return rc;
        }
        p += chunk;
        len -= chunk;
    }
    return snap_writer_commit(w, NULL, err);
}

/* ---------- reading ---------- */

int snap_open(const char *dir, const snap_name *name, snap_reader **out, cord_error *err)
{
    int rc = SNAP_OK;
    *out = NULL;
    snap_reader *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return cord_error_set(err, SNAP_ENOMEM, ENOMEM, "snap: reader");
    }
    r->fd = -1;
    if (name_format(r->path, sizeof r->path, dir, name->term, name->index, "") != 0) {
        rc = cord_error_set(err, SNAP_EINVAL, ENAMETOOLONG, "snap: path in %s", dir);
        goto cleanup;
    }
    r->fd = open(r->path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        rc = cord_error_set(err, errno == ENOENT ? SNAP_ENOENT : SNAP_EIO, errno, "snap: open %s",
                            r->path);
        goto cleanup;
    }
    struct stat st;
    if (fstat(r->fd, &st) != 0) {
        rc = cord_error_set(err, SNAP_EIO, errno, "snap: stat %s", r->path);
        goto cleanup;
    }
    r->size = (uint64_t)st.st_size;
    uint8_t h[SNAP_HEADER_BYTES];
    size_t got = 0;
    int e = fileio_pread_full(r->fd, h, sizeof h, 0, &got);
    if (e != 0) {
        rc = cord_error_set(err, SNAP_EIO, e, "snap: read %s", r->path);
        goto cleanup;
    }
    if (got < sizeof h) {
        rc =
            cord_error_set(err, SNAP_ECORRUPT, 0,
                           "snap: %s: shorter than a header (%" PRIu64 " bytes)", r->path, r->size);
        goto cleanup;
    }
    rc = header_decode(h, &r->meta, r->path, err);
    if (rc != SNAP_OK) {
        goto cleanup;
    }
    uint64_t total =
        SNAP_HEADER_BYTES + r->meta.membership_len + r->meta.data_len + SNAP_TRAILER_BYTES;
    if (total != r->size) {
        rc = cord_error_set(err, SNAP_ECORRUPT, 0,
                            "snap: %s: file is %" PRIu64 " bytes, header says %" PRIu64, r->path,
                            r->size, total);
        goto cleanup;
    }
    r->membership = malloc(r->meta.membership_len > 0 ? r->meta.membership_len : 1);
    if (r->membership == NULL) {
        rc = cord_error_set(err, SNAP_ENOMEM, ENOMEM, "snap: membership");
        goto cleanup;
    }
    e = fileio_pread_full(r->fd, r->membership, r->meta.membership_len, SNAP_HEADER_BYTES, &got);
    if (e != 0 || got != r->meta.membership_len) {
        rc = cord_error_set(err, SNAP_EIO, e != 0 ? e : EIO, "snap: read %s", r->path);
        goto cleanup;
    }
    if (bytes_get32(h + 40) != header_crc(h, r->membership, r->meta.membership_len)) {
        rc = cord_error_set(err, SNAP_ECORRUPT, 0, "snap: %s: header checksum mismatch", r->path);
        goto cleanup;
    }
    if (r->meta.index != name->index || r->meta.term != name->term) {
        rc = cord_error_set(err, SNAP_ECORRUPT, 0,
                            "snap: %s: header says term %" PRIu64 " index %" PRIu64
                            ", the name disagrees",
                            r->path, r->meta.term, r->meta.index);
        goto cleanup;
    }
    uint8_t trailer[SNAP_TRAILER_BYTES];
    e = fileio_pread_full(r->fd, trailer, sizeof trailer, r->size - SNAP_TRAILER_BYTES, &got);
    if (e != 0 || got != sizeof trailer) {
        rc = cord_error_set(err, SNAP_EIO, e != 0 ? e : EIO, "snap: read %s", r->path);
        goto cleanup;
    }
    r->data_crc = bytes_get32(trailer);
    r->meta.membership = r->membership;
    *out = r;
    return SNAP_OK;
cleanup:
    snap_reader_close(r);
    return rc;
}

int snap_reader_verify(snap_reader *r, cord_error *err)
{
    uint8_t *buf = malloc(SNAP_CHUNK_BYTES);
    if (buf == NULL) {
        return cord_error_set(err, SNAP_ENOMEM, ENOMEM, "snap: buffer");
    }
    int rc = SNAP_OK;
    uint32_t crc = 0;
    for (uint64_t off = 0; off < r->meta.data_len;) {
        size_t n = 0;
        rc = snap_reader_read_data_at(r, off, buf, SNAP_CHUNK_BYTES, &n, err);
        if (rc != SNAP_OK) {
            goto cleanup;
        }
        if (n == 0) {
            rc = cord_error_set(err, SNAP_ECORRUPT, 0, "snap: %s: data ends early", r->path);
            goto cleanup;
        }
        crc = crc32c_extend(crc, buf, n);
        off += n;
    }
    if (crc != r->data_crc) {
        rc = cord_error_set(err, SNAP_ECORRUPT, 0, "snap: %s: data checksum mismatch", r->path);
    }
cleanup:
    free(buf);
    return rc;
}

const snap_meta *snap_reader_meta(const snap_reader *r)
{
    return &r->meta;
}

uint64_t snap_reader_file_size(const snap_reader *r)
{
    return r->size;
}

const char *snap_reader_path(const snap_reader *r)
{
    return r->path;
}

int snap_reader_read_file_at(snap_reader *r, uint64_t off, void *buf, size_t cap, size_t *n,
                             cord_error *err)
{
    *n = 0;
    if (off >= r->size) {
        return SNAP_OK;
    }
    if (cap > r->size - off) {
        cap = (size_t)(r->size - off);
    }
    int e = fileio_pread_full(r->fd, buf, cap, off, n);
    if (e != 0) {
        return cord_error_set(err, SNAP_EIO, e, "snap: read %s at offset %" PRIu64, r->path, off);
    }
    return SNAP_OK;
}

int snap_reader_read_data_at(snap_reader *r, uint64_t off, void *buf, size_t cap, size_t *n,
                             cord_error *err)
{
    *n = 0;
    if (off >= r->meta.data_len) {
        return SNAP_OK;
    }
    if (cap > r->meta.data_len - off) {
        cap = (size_t)(r->meta.data_len - off);
    }
    return snap_reader_read_file_at(r, SNAP_HEADER_BYTES + r->meta.membership_len + off, buf, cap,
                                    n, err);
}

void snap_reader_close(snap_reader *r)
{
    if (r == NULL) {
        return;
    }
    if (r->fd >= 0) {
        close(r->fd);
    }
    free(r->membership);
    free(r);
}

/* ---------- the directory ---------- */

static int name_newer_first(const void *a, const void *b)
{
    const snap_name *x = a, *y = b;
    if (x->index != y->index) {
        return x->index > y->index ? -1 : 1;
    }
    if (x->term != y->term) {
        return x->term > y->term ? -1 : 1;
    }
    return 0;
}

/* All snapshot names, newest first, in a malloc'ed array. */
static int list_all(const char *dir, snap_name **out, size_t *count, cord_error *err)
{
    *out = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT) {
            return SNAP_OK;
        }
        return cord_error_set(err, SNAP_EIO, errno, "snap: opendir %s", dir);
    }
    int rc = SNAP_OK;
    snap_name *names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        snap_name nm;
        if (parse_name(de->d_name, &nm) == 0) {
            if (n == cap) {
                size_t ncap = cap > 0 ? cap * 2 : 16;
                snap_name *p = realloc(names, ncap * sizeof *p);
                if (p == NULL) {
                    rc = cord_error_set(err, SNAP_ENOMEM, ENOMEM, "snap: name list");
                    goto cleanup;
                }
                names = p;
                cap = ncap;
            }
            names[n++] = nm;
        }
        errno = 0;
    }
    if (errno != 0) {
        rc = cord_error_set(err, SNAP_EIO, errno, "snap: readdir %s", dir);
        goto cleanup;
    }
    if (n > 1) {
        qsort(names, n, sizeof names[0], name_newer_first);
    }
    *out = names;
    *count = n;
    names = NULL;
cleanup:
    free(names);
    closedir(d);
    return rc;
}

int snap_list(const char *dir, snap_name *out, size_t cap, size_t *count, cord_error *err)
{
    snap_name *names;
    size_t n;
    int rc = list_all(dir, &names, &n, err);
    if (rc != SNAP_OK) {
        return rc;
    }
    for (size_t i = 0; i < n && i < cap; i++) {
        out[i] = names[i];
    }
    *count = n;
    free(names);
    return SNAP_OK;
}

int snap_load_newest(const char *dir, uint64_t max_index, snap_reader **out, snap_name *tried,
                     cord_error *err)
{
    *out = NULL;
    snap_name *names;
    size_t n;
    int rc = list_all(dir, &names, &n, err);
    if (rc != SNAP_OK) {
        return rc;
    }
    size_t i = 0;
    while (i < n && names[i].index > max_index) {
        i++;
    }
    if (i == n) {
        rc = cord_error_set(err, SNAP_ENOENT, 0, "snap: %s: no snapshot with index <= %" PRIu64,
                            dir, max_index);
        goto cleanup;
    }
    if (tried != NULL) {
        *tried = names[i];
    }
    snap_reader *r = NULL;
    rc = snap_open(dir, &names[i], &r, err);
    if (rc == SNAP_OK) {
        rc = snap_reader_verify(r, err);
    }
    if (rc != SNAP_OK) {
        snap_reader_close(r);
        if (rc == SNAP_ENOENT) { /* vanished between listing and opening */
            rc = cord_error_set(err, SNAP_EIO, ENOENT, "snap: %s changed while loading", dir);
        }
        goto cleanup;
    }
    *out = r;
cleanup:
    free(names);
    return rc;
}

int snap_purge(const char *dir, size_t keep, size_t *removed, cord_error *err)
{
    if (removed != NULL) {
        *removed = 0;
    }
    if (keep == 0) {
        return cord_error_set(err, SNAP_EINVAL, 0, "snap: purge must keep at least one snapshot");
    }
    snap_name *names;
    size_t n;
    int rc = list_all(dir, &names, &n, err);
    if (rc != SNAP_OK) {
        return rc;
    }
    size_t done = 0;
    char path[FILEIO_PATH_MAX];
    for (size_t i = keep; i < n; i++) {
        if (name_format(path, sizeof path, dir, names[i].term, names[i].index, "") != 0) {
            rc = cord_error_set(err, SNAP_EINVAL, ENAMETOOLONG, "snap: path in %s", dir);
            goto cleanup;
        }
        if (unlink(path) != 0 && errno != ENOENT) {
            rc = cord_error_set(err, SNAP_EIO, errno, "snap: unlink %s", path);
            goto cleanup;
        }
        done++;
    }
cleanup:
    if (done > 0) {
        int e = fileio_fsync_dir(dir);
        if (e != 0 && rc == SNAP_OK) {
            rc = cord_error_set(err, SNAP_EIO, e, "snap: fsync %s", dir);
        }
    }
    if (removed != NULL) {
        *removed = done;
    }
    free(names);
    return rc;
}

int snap_remove_tmp(const char *dir, size_t *removed, cord_error *err)
{
    size_t done = 0;
    if (removed != NULL) {
        *removed = 0;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        return errno == ENOENT ? SNAP_OK
                               : cord_error_set(err, SNAP_EIO, errno, "snap: opendir %s", dir);
    }
    int rc = SNAP_OK;
    struct dirent *de;
    char path[FILEIO_PATH_MAX];
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 4 || strcmp(de->d_name + len - 4, ".tmp") != 0) {
            continue;
        }
        if (fileio_join(path, sizeof path, dir, de->d_name) != 0) {
            continue;
        }
        if (unlink(path) != 0 && errno != ENOENT) {
            rc = cord_error_set(err, SNAP_EIO, errno, "snap: unlink %s", path);
            break;
        }
        done++;
    }
    closedir(d);
    if (done > 0) {
        int e = fileio_fsync_dir(dir);
        if (e != 0 && rc == SNAP_OK) {
            rc = cord_error_set(err, SNAP_EIO, e, "snap: fsync %s", dir);
        }
    }
    if (removed != NULL) {
        *removed = done;
    }
    return rc;
}

const char *snap_status_name(int status)
{
    switch (status) {
    case SNAP_OK:
        return "SNAP_OK";
    case SNAP_EINVAL:
        return "SNAP_EINVAL";
    case SNAP_EIO:
        return "SNAP_EIO";
    case SNAP_ECORRUPT:
        return "SNAP_ECORRUPT";
    case SNAP_ENOENT:
        return "SNAP_ENOENT";
    case SNAP_ENOMEM:
        return "SNAP_ENOMEM";
    case SNAP_EOFFSET:
        return "SNAP_EOFFSET";
    case SNAP_ELIMIT:
        return "SNAP_ELIMIT";
    case SNAP_EFAILED:
        return "SNAP_EFAILED";
    default:
        return "SNAP_E?";
    }
}
