/*
 * errors.h: the error value every cord module returns alongside its status code.
 *
 * Functions that can fail take a `cord_error *err` (which may be NULL) and
 * return a module-specific named code (WAL_OK = 0, WAL_ECORRUPT, ...). On
 * failure the struct records the same code, the errno behind it (0 if none)
 * and a one-line message meant for an operator: it names the file, the
 * offset, the system call. Messages are truncated to CORD_ERROR_MSG_MAX - 1.
 */
#ifndef CORD_COMMON_ERRORS_H
#define CORD_COMMON_ERRORS_H

#include <stddef.h>

#define CORD_ERROR_MSG_MAX 1024

typedef struct cord_error {
    int code;      /* the module's status code; 0 = no error */
    int sys_errno; /* errno behind the failure, or 0 */
    char msg[CORD_ERROR_MSG_MAX];
} cord_error;

/*
 * cord_error_set: record a failure and return `code`, so callers can write
 * `return cord_error_set(err, WAL_EIO, errno, "write %s", path);`.
 * Takes: err (may be NULL), the code, the errno (0 for none; when non-zero
 * ": <strerror>" is appended), a printf format.
 * Returns: code. Never fails.
 */
int cord_error_set(cord_error *err, int code, int sys_errno, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* cord_error_clear: reset to "no error". err may be NULL. */
void cord_error_clear(cord_error *err);

/*
 * cord_error_copy: copy src into dst with `prefix` put before the message
 * (prefix may be NULL). dst may be NULL. Returns src->code.
 */
int cord_error_copy(cord_error *dst, const cord_error *src, const char *prefix);

#endif
