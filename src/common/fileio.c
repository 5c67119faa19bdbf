#define _GNU_SOURCE
#include "common/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fileio_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return errno;
    }
    int rc = 0;
    while (fsync(fd) != 0) {
        if (errno != EINTR) {
            rc = errno;
            break;
        }
    }
    close(fd);
    return rc;
}

int fileio_mkdirs(const char *path, mode_t mode, int *created)
{
    char buf[FILEIO_PATH_MAX];
    size_t len = strnlen(path, sizeof buf);
    if (len == 0) {
        return EINVAL;
    }
    if (len >= sizeof buf) {
        return ENAMETOOLONG;
    }
    memcpy(buf, path, len + 1);
    while (len > 1 && buf[len - 1] == '/') {
        buf[--len] = '\0';
    }
    if (created != NULL) {
        *created = 0;
    }
    /* Walk each prefix ending before a '/', then the whole path. */
    for (size_t i = 1; i <= len; i++) {
        if (i < len && buf[i] != '/') {
            continue;
        }
        char saved = buf[i];
        buf[i] = '\0';
        struct stat st;
        if (stat(buf, &st) == 0) {
            if (!S_ISDIR(st.st_mode)) {
                buf[i] = saved;
                return ENOTDIR;
            }
        } else if (errno != ENOENT) {
            int e = errno;
            buf[i] = saved;
            return e;
        } else if (mkdir(buf, mode) != 0 && errno != EEXIST) {
            int e = errno;
            buf[i] = saved;
            return e;
        } else {
            /* Make the new entry durable in its parent. */
            char *slash = strrchr(buf, '/');
            int rc;
            if (slash == NULL) {
                rc = fileio_fsync_dir(".");
            } else if (slash == buf) {
                rc = fileio_fsync_dir("/");
            } else {
                *slash = '\0';
                rc = fileio_fsync_dir(buf);
                *slash = '/';
            }
            if (rc != 0) {
                buf[i] = saved;
                return rc;
            }
            if (i == len && created != NULL) {
                *created = 1;
            }
        }
        buf[i] = saved;
    }
    return 0;
}

int fileio_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        if (n == 0) {
            return EIO;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int fileio_write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        if (n == 0) {
            return EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int fileio_pread_full(int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
    uint8_t *p = buf;
    size_t total = 0;
    while (total < len) {
        ssize_t n = pread(fd, p + total, len - total, (off_t)(off + total));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            *got = total;
            return errno;
        }
        if (n == 0) {
            break;
        }
        total += (size_t)n;
    }
    *got = total;
    return 0;
}

int fileio_preallocate(int fd, uint64_t size)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return errno;
    }
    if ((uint64_t)st.st_size >= size) {
        return 0;
    }
    for (;;) {
        if (fallocate(fd, 0, 0, (off_t)size) == 0) {
            return 0;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EOPNOTSUPP && errno != ENOSYS) {
            return errno;
        }
        break;
    }
    if (ftruncate(fd, (off_t)size) != 0) {
        return errno;
    }
    return 0;
}

int fileio_join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) {
        return ENAMETOOLONG;
    }
    return 0;
}

void fileio_resident(uint64_t *rss_bytes, uint64_t *file_bytes)
{
    unsigned long size = 0, resident = 0, shared = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f) {
        if (fscanf(f, "%lu %lu %lu", &size, &resident, &shared) != 3)
            resident = shared = 0;
        fclose(f);
    }
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    if (rss_bytes)
        *rss_bytes = (uint64_t)resident * page;
    if (file_bytes)
        *file_bytes = (uint64_t)shared * page;
}
