/*
 * fileio.h: the small file-system helpers the WAL and snapshot code share.
 * Each returns 0 on success or the errno of the failing system call (> 0);
 * callers turn that into their own named code and a message with the path.
 * EINTR is retried; short reads and writes are continued.
 */
#ifndef CORD_COMMON_FILEIO_H
#define CORD_COMMON_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FILEIO_PATH_MAX 4096

/*
 * fileio_mkdirs: create `path` and any missing parents with `mode`; each
 * directory created is made durable by fsyncing its parent. Existing
 * directories are left as they are. *created (may be NULL) is set to 1 if the
 * last component was created.
 */
int fileio_mkdirs(const char *path, mode_t mode, int *created);

/* fileio_fsync_dir: open `path` as a directory, fsync it, close it. */
int fileio_fsync_dir(const char *path);

/* fileio_pwrite_all: write all `len` bytes at `off`. */
int fileio_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);

/* fileio_write_all: write all `len` bytes at the file position. */
int fileio_write_all(int fd, const void *buf, size_t len);

/* fileio_pread_full: read up to `len` bytes at `off`, stopping early only at
 * end of file; *got receives the count. */
int fileio_pread_full(int fd, void *buf, size_t len, uint64_t off, size_t *got);

/* fileio_preallocate: make the file at least `size` bytes with the blocks
 * allocated (fallocate mode 0, zero-filled). Falls back to ftruncate (sparse)
 * where the file system does not support fallocate. Never shrinks. */
int fileio_preallocate(int fd, uint64_t size);

/* fileio_join: snprintf "dir/name" into out; ENAMETOOLONG if it does not fit. */
int fileio_join(char *out, size_t cap, const char *dir, const char *name);

/* fileio_resident: this process's resident set in bytes (/proc/self/statm), and of it
 * (file_bytes, may be NULL) the pages backed by files and shared memory: mapped library and
 * data-file pages. Both 0 when statm cannot be read. */
void fileio_resident(uint64_t *rss_bytes, uint64_t *file_bytes);

#endif
