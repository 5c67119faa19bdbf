#define _GNU_SOURCE
#include "common/errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int cord_error_set(cord_error *err, int code, int sys_errno, const char *fmt, ...)
{
    if (err == NULL) {
        return code;
    }
    err->code = code;
    err->sys_errno = sys_errno;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (n < 0) {
        err->msg[0] = '\0';
        n = 0;
    }
    size_t used = (size_t)n < sizeof err->msg ? (size_t)n : sizeof err->msg - 1;
    if (sys_errno != 0 && used < sizeof err->msg - 1) {
        char buf[128];
        const char *s = strerror_r(sys_errno, buf, sizeof buf);
        snprintf(err->msg + used, sizeof err->msg - used, ": %s", s);
    }
    return code;
}

void cord_error_clear(cord_error *err)
{
    if (err == NULL) {
        return;
    }
    err->code = 0;
    err->sys_errno = 0;
    err->msg[0] = '\0';
}

int cord_error_copy(cord_error *dst, const cord_error *src, const char *prefix)
{
    if (dst == NULL || dst == src) {
        return src->code;
    }
    dst->code = src->code;
    dst->sys_errno = src->sys_errno;
    snprintf(dst->msg, sizeof dst->msg, "%s%s", prefix != NULL ? prefix : "", src->msg);
    return src->code;
}
