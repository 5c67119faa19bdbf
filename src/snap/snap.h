/*
 * snap.h: snapshot files: the state machine's consistent copy plus its Raft
 * metadata, written atomically, checked when read, and streamed in chunks to
 * a follower that is too far behind.
 *
 * FILES
 * In a directory (normally <data-dir>/member/snap, created 0700 with its
 * parents when a writer needs it), one file per snapshot, mode 0600, named
 * "%016llx-%016llx.snap" (term, index) like etcd's. A file is written as
 * "*.tmp", fsynced, renamed, and the directory fsynced, so a crash leaves
 * either the whole snapshot or none (plus a .tmp that snap_remove_tmp()
 * deletes).
 *
 * FORMAT (little-endian)
 *     0  u64 magic "cordsnap"      8  u32 version (1)   12 u32 membership_len
 *    16  u64 index                24  u64 term         32 u64 data_len
 *    40  u32 header_crc = CRC32C of bytes [0, 40) followed by the membership
 *    44  u32 reserved (0; anything else is damage)
 *    48  membership (membership_len bytes, opaque to this module)
 *        data (data_len bytes, opaque: the state machine's copy)
 *        u32 data_crc = CRC32C of the data
 * The file is also the transfer format: a leader sends the file's bytes
 * (snap_reader_read_file_at) and the follower feeds them to a receiver
 * (snap_receiver_begin, snap_writer_write_at), which checks everything
 * before installing the file under its name.
 *
 * THREADS
 * No shared state: each writer and reader is used by one thread at a time;
 * different ones may run in parallel. snap_purge and snap_remove_tmp must not
 * run while a writer of the same directory is open (they may delete its file).
 *
 * ERRORS
 * Functions return a code from enum snap_status and fill `err` (may be NULL).
 */
#ifndef CORD_SNAP_SNAP_H
#define CORD_SNAP_SNAP_H

#include <stddef.h>
#include <stdint.h>

#include "common/errors.h"

enum snap_status {
    SNAP_OK = 0,
    SNAP_EINVAL = -1,   /* bad argument, or the stream was incomplete or too long */
    SNAP_EIO = -2,      /* a system call failed; err->sys_errno has the errno */
    SNAP_ECORRUPT = -3, /* a file or stream fails its checks; the message names it */
    SNAP_ENOENT = -4,   /* no (matching) snapshot */
    SNAP_ENOMEM = -5,
    SNAP_EOFFSET = -6, /* a chunk not at the next expected offset; the writer stays usable */
    SNAP_ELIMIT =
        -7, /* membership longer than SNAP_MEMBERSHIP_MAX, data longer than SNAP_DATA_MAX */
    SNAP_EFAILED = -8, /* the writer failed earlier (I/O error): abort it */
};

#define SNAP_HEADER_BYTES   48u
#define SNAP_TRAILER_BYTES  4u
#define SNAP_MEMBERSHIP_MAX (1u << 20)
#define SNAP_DATA_MAX       (1ull << 48)
#define SNAP_DIR_MAX        3800

typedef struct snap_name {
    uint64_t term;
    uint64_t index;
} snap_name;

typedef struct snap_meta {
    uint64_t index; /* >= 1 */
    uint64_t term;
    uint32_t membership_len;
    const uint8_t *membership; /* for readers: owned by the reader */
    uint64_t data_len;         /* for writers: ignored (counted while writing) */
} snap_meta;

typedef struct snap_writer snap_writer;
typedef struct snap_reader snap_reader;

/*
 * snap_save: write a whole snapshot from one buffer (begin + write + commit).
 * Takes: directory, metadata (index, term, membership), data and its length.
 * Errors: as snap_writer_begin / _write / _commit.
 */
int snap_save(const char *dir, const snap_meta *meta, const void *data, uint64_t len,
              cord_error *err);

/*
 * snap_writer_begin: start writing a snapshot of this member's state.
 * Copies meta->membership. Then snap_writer_write the data in chunks of any
 * size, then snap_writer_commit (or snap_writer_abort).
 * Errors: SNAP_EINVAL (index 0, path too long), SNAP_ELIMIT, SNAP_EIO, SNAP_ENOMEM.
 */
int snap_writer_begin(const char *dir, const snap_meta *meta, snap_writer **out, cord_error *err);

/* snap_writer_write: append data (writer from snap_writer_begin only).
 * Errors: SNAP_EINVAL (a receiver), SNAP_ELIMIT, SNAP_EIO (the writer is then
 * failed), SNAP_EFAILED. */
int snap_writer_write(snap_writer *w, const void *buf, size_t len, cord_error *err);

/*
 * snap_receiver_begin: start receiving a snapshot streamed from a leader: the
 * bytes of its file, in chunks, through snap_writer_write_at.
 * Errors: SNAP_EINVAL, SNAP_EIO, SNAP_ENOMEM.
 */
int snap_receiver_begin(const char *dir, snap_writer **out, cord_error *err);

/*
 * snap_writer_write_at: write the chunk of the snapshot file at `offset`
 * (receiver only). The offset must be snap_writer_offset(w): a chunk at any
 * other offset (a duplicate, a gap) returns SNAP_EOFFSET and changes
 * nothing. The header is checked as soon as it has arrived.
 * Errors: SNAP_EOFFSET, SNAP_EINVAL (not a receiver; bytes past the end the
 * header announces), SNAP_ECORRUPT (bad header: the writer is then failed),
 * SNAP_ELIMIT, SNAP_EIO, SNAP_EFAILED.
 */
int snap_writer_write_at(snap_writer *w, uint64_t offset, const void *buf, size_t len,
                         cord_error *err);

/* snap_writer_offset: bytes of the file written so far (the next offset). */
uint64_t snap_writer_offset(const snap_writer *w);

/*
 * snap_writer_commit: finish: (receiver: check that the whole file arrived
 * and both checksums match;) fsync, rename to its final name, fsync the
 * directory. The writer is freed whatever the result; on failure its
 * temporary file is removed. *installed (may be NULL) receives the name.
 * Errors: SNAP_EINVAL (incomplete stream), SNAP_ECORRUPT (checksum), SNAP_EIO,
 * SNAP_EFAILED.
 */
int snap_writer_commit(snap_writer *w, snap_name *installed, cord_error *err);

/* snap_writer_abort: remove the temporary file and free. NULL ok. */
void snap_writer_abort(snap_writer *w);

/*
 * snap_list: the snapshot files in dir, newest (highest index, then term)
 * first. Stores up to `cap` names; *count receives how many there are (may
 * be more than cap). A missing directory holds none.
 * Errors: SNAP_EIO.
 */
int snap_list(const char *dir, snap_name *out, size_t cap, size_t *count, cord_error *err);

/*
 * snap_open: open one snapshot file and check its header, membership and
 * size (not the data checksum: see snap_reader_verify).
 * Errors: SNAP_ENOENT, SNAP_ECORRUPT (message names the file), SNAP_EIO,
 * SNAP_ENOMEM.
 */
int snap_open(const char *dir, const snap_name *name, snap_reader **out, cord_error *err);

/* snap_reader_verify: read all the data and check its checksum.
 * Errors: SNAP_ECORRUPT (names the file), SNAP_EIO. */
int snap_reader_verify(snap_reader *r, cord_error *err);

/*
 * snap_load_newest: open and fully verify the newest snapshot with index <=
 * max_index (UINT64_MAX for the newest of all).
 * Returns SNAP_OK with *out set, or SNAP_ENOENT (none). If that snapshot is
 * damaged, returns SNAP_ECORRUPT with the file named in the message and its
 * name in *tried (may be NULL): the caller decides whether to fall back to an
 * older one by calling again with max_index = tried->index - 1 (and must then
 * check that its WAL still reaches back to that older index).
 * Errors: SNAP_ENOENT, SNAP_ECORRUPT, SNAP_EIO, SNAP_ENOMEM.
 */
int snap_load_newest(const char *dir, uint64_t max_index, snap_reader **out, snap_name *tried,
                     cord_error *err);

/* snap_reader_meta: the snapshot's metadata; valid until snap_reader_close. */
const snap_meta *snap_reader_meta(const snap_reader *r);

/* snap_reader_file_size: the size of the file, i.e. of the stream to send. */
uint64_t snap_reader_file_size(const snap_reader *r);

/* snap_reader_path: the file's path. */
const char *snap_reader_path(const snap_reader *r);

/*
 * snap_reader_read_file_at: read up to `cap` bytes of the file at `off` (for
 * sending). *n receives the count: cap, or less at the end of the file, 0 at
 * or past it. Errors: SNAP_EIO.
 */
int snap_reader_read_file_at(snap_reader *r, uint64_t off, void *buf, size_t cap, size_t *n,
                             cord_error *err);

/* snap_reader_read_data_at: the same within the data section (for loading
 * the state machine). Errors: SNAP_EIO. */
int snap_reader_read_data_at(snap_reader *r, uint64_t off, void *buf, size_t cap, size_t *n,
                             cord_error *err);

/* snap_reader_close: close and free. NULL ok. */
void snap_reader_close(snap_reader *r);

/*
 * snap_purge: delete all but the `keep` newest snapshot files (keep >= 1).
 * *removed (may be NULL) receives the count. Errors: SNAP_EINVAL, SNAP_EIO.
 */
int snap_purge(const char *dir, size_t keep, size_t *removed, cord_error *err);

/* snap_remove_tmp: delete leftover *.tmp files (at start-up, no writer open).
 * Errors: SNAP_EIO. */
int snap_remove_tmp(const char *dir, size_t *removed, cord_error *err);

/* snap_status_name: "SNAP_ECORRUPT" etc. */
const char *snap_status_name(int status);

#endif
