/*
 * lincheck_jsonl.c: history records as JSON lines (format in lincheck.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lincheck/lincheck.h"
#include "lincheck/lincheck_internal.h"
#include "lincheck/lincheck_json.h"

#define LJL_CHUNK 65536

static bool ljl_is(const lincheck_json_field *f, const char *s)
{
    size_t n = strlen(s);
    return f->type == LINCHECK_JSON_STRING && f->str_len == n && memcmp(f->str, s, n) == 0;
}

static int ljl_u64(const lincheck_json_object *obj, const char *name, bool required, uint64_t *out,
                   bool *present, char *err, size_t errlen)
{
    const lincheck_json_field *f = lincheck_json_get(obj, name);
    *present = false;
    if (f == NULL || f->type == LINCHECK_JSON_NULL) {
        if (required) {
            lincheck_set_error(err, errlen, "missing field \"%s\" (a non-negative integer)", name);
            return LINCHECK_EPARSE;
        }
        return 0;
    }
    if (lincheck_json_u64(f, out) != 0) {
        lincheck_set_error(err, errlen, "field \"%s\" must be a non-negative integer below 2^64",
                           name);
        return LINCHECK_EPARSE;
    }
    *present = true;
    return 0;
}

/* A string-or-null field. *s = NULL for null; *present false if missing. */
static int ljl_str_or_null(const lincheck_json_object *obj, const char *name, const char **s,
                           size_t *len, bool *present, char *err, size_t errlen)
{
    const lincheck_json_field *f = lincheck_json_get(obj, name);
    *s = NULL;
    *len = 0;
    *present = f != NULL;
    if (f == NULL || f->type == LINCHECK_JSON_NULL) {
        return 0;
    }
    if (f->type != LINCHECK_JSON_STRING) {
        lincheck_set_error(err, errlen, "field \"%s\" must be a string or null", name);
        return LINCHECK_EPARSE;
    }
    *s = f->str;
    *len = f->str_len;
    return 0;
}

static int ljl_absent_or_null(const lincheck_json_object *obj, const char *name, const char *op,
                              char *err, size_t errlen)
{
    const lincheck_json_field *f = lincheck_json_get(obj, name);
    if (f != NULL && f->type != LINCHECK_JSON_NULL) {
        lincheck_set_error(err, errlen, "field \"%s\" does not apply to op \"%s\"", name, op);
        return LINCHECK_EPARSE;
    }
    return 0;
}

/* Turn a parsed object into an operation and add it. */
static int ljl_add_object(lincheck_history *h, const lincheck_json_object *obj, char *err,
                          size_t errlen)
{
    lincheck_op op = {0};
    bool present;
    int rc = ljl_u64(obj, "id", true, &op.id, &present, err, errlen);
    if (rc == 0) {
        rc = ljl_u64(obj, "client", true, &op.client, &present, err, errlen);
    }
    if (rc == 0) {
        rc = ljl_u64(obj, "start", true, &op.start, &present, err, errlen);
    }
    bool has_end = false;
    if (rc == 0) {
        rc = ljl_u64(obj, "end", false, &op.end, &has_end, err, errlen);
    }
    if (rc != 0) {
        return rc;
    }
    if (!has_end) {
        op.end = LINCHECK_TIME_NONE;
    }

    const lincheck_json_field *f = lincheck_json_get(obj, "key");
    if (f == NULL || f->type != LINCHECK_JSON_STRING) {
        lincheck_set_error(err, errlen, "missing field \"key\" (a string)");
        return LINCHECK_EPARSE;
    }
    if (f->str_len == 0) {
        op.key = ""; /* length 0 means strlen() in lincheck_op */
    } else {
        op.key = f->str;
        op.key_len = f->str_len;
    }

    f = lincheck_json_get(obj, "status");
    if (f != NULL && ljl_is(f, "ok")) {
        op.status = LINCHECK_STATUS_OK;
    } else if (f != NULL && ljl_is(f, "fail")) {
        op.status = LINCHECK_STATUS_FAIL;
    } else if (f != NULL && ljl_is(f, "unknown")) {
        op.status = LINCHECK_STATUS_UNKNOWN;
    } else {
        lincheck_set_error(err, errlen,
                           "field \"status\" must be \"ok\", \"fail\" or \"unknown\"%s",
                           f == NULL ? " (missing)" : "");
        return LINCHECK_EPARSE;
    }

    f = lincheck_json_get(obj, "op");
    const char *opname;
    if (f != NULL && ljl_is(f, "read")) {
        op.kind = LINCHECK_READ;
        opname = "read";
    } else if (f != NULL && ljl_is(f, "write")) {
        op.kind = LINCHECK_WRITE;
        opname = "write";
    } else if (f != NULL && ljl_is(f, "cas")) {
        op.kind = LINCHECK_CAS;
        opname = "cas";
    } else if (f != NULL && ljl_is(f, "delete")) {
        op.kind = LINCHECK_DELETE;
        opname = "delete";
    } else {
        lincheck_set_error(err, errlen,
                           "field \"op\" must be \"read\", \"write\", \"cas\" or \"delete\"%s",
                           f == NULL ? " (missing)" : "");
        return LINCHECK_EPARSE;
    }

    if (op.status == LINCHECK_STATUS_OK && !has_end) {
        lincheck_set_error(err, errlen, "status \"ok\" needs an \"end\" time");
        return LINCHECK_EPARSE;
    }
    if (has_end && op.end < op.start) {
        lincheck_set_error(err, errlen, "\"end\" (%llu) is before \"start\" (%llu)",
                           (unsigned long long)op.end, (unsigned long long)op.start);
        return LINCHECK_EPARSE;
    }
    if (op.status == LINCHECK_STATUS_OK && op.end == LINCHECK_TIME_NONE) {
        lincheck_set_error(err, errlen, "\"end\" must be below 2^64-1");
        return LINCHECK_EPARSE;
    }

    const char *s;
    size_t slen;
    bool has_value;
    rc = ljl_str_or_null(obj, "value", &s, &slen, &has_value, err, errlen);
    if (rc != 0) {
        return rc;
    }
    switch (op.kind) {
    case LINCHECK_READ:
        if (op.status == LINCHECK_STATUS_OK && !has_value) {
            lincheck_set_error(err, errlen,
                               "an ok read needs \"value\" (the value seen, or null for absent)");
            return LINCHECK_EPARSE;
        }
        break;
    case LINCHECK_WRITE:
    case LINCHECK_CAS:
        if (s == NULL) {
            lincheck_set_error(err, errlen, "op \"%s\" needs \"value\" (a string)", opname);
            return LINCHECK_EPARSE;
        }
        break;
    default:
        if (s != NULL) {
            lincheck_set_error(err, errlen, "op \"delete\" takes no \"value\"");
            return LINCHECK_EPARSE;
        }
        break;
    }
    op.value = s;
    op.value_len = slen;
    if (s != NULL && slen == 0) {
        op.value = "";
    }

    if (op.kind == LINCHECK_CAS) {
        bool has_expect;
        rc = ljl_str_or_null(obj, "expect", &s, &slen, &has_expect, err, errlen);
        if (rc != 0) {
            return rc;
        }
        if (!has_expect) {
            lincheck_set_error(err, errlen,
                               "op \"cas\" needs \"expect\" (a string, or null for absent)");
            return LINCHECK_EPARSE;
        }
        op.expect = s != NULL && slen == 0 ? "" : s;
        op.expect_len = slen;
        f = lincheck_json_get(obj, "result");
        if (f != NULL && f->type == LINCHECK_JSON_TRUE) {
            op.cas_result = true;
        } else if (f != NULL && f->type == LINCHECK_JSON_FALSE) {
            op.cas_result = false;
        } else if (f != NULL && f->type != LINCHECK_JSON_NULL) {
            lincheck_set_error(err, errlen, "field \"result\" must be true, false or null");
            return LINCHECK_EPARSE;
        } else if (op.status == LINCHECK_STATUS_OK) {
            lincheck_set_error(err, errlen, "an ok cas needs \"result\" (true or false)");
            return LINCHECK_EPARSE;
        }
    } else {
        rc = ljl_absent_or_null(obj, "expect", opname, err, errlen);
        if (rc == 0) {
            rc = ljl_absent_or_null(obj, "result", opname, err, errlen);
        }
        if (rc != 0) {
            return rc;
        }
    }

    rc = lincheck_history_add(h, &op);
    if (rc == LINCHECK_ETOOBIG) {
        lincheck_set_error(err, errlen,
                           "too large (strings are limited to %u bytes, histories "
                           "to %u operations)",
                           LINCHECK_MAX_STRING_LEN, LINCHECK_MAX_OPS);
    } else if (rc == LINCHECK_ENOMEM) {
        lincheck_set_error(err, errlen, "out of memory");
    } else if (rc != 0) {
        lincheck_set_error(err, errlen, "invalid operation");
        rc = LINCHECK_EPARSE;
    }
    return rc;
}

int lincheck_history_add_jsonl(lincheck_history *h, const char *line, size_t len, char *err,
                               size_t errlen)
{
    if (h == NULL || line == NULL) {
        lincheck_set_error(err, errlen, "invalid argument");
        return LINCHECK_EINVAL;
    }
    lincheck_json_object obj;
    lincheck_json_object_init(&obj);
    int rc = lincheck_json_parse(&obj, line, len, err, errlen);
    if (rc == 0) {
        rc = ljl_add_object(h, &obj, err, errlen);
    } else if (rc == LINCHECK_ENOMEM) {
        lincheck_set_error(err, errlen, "out of memory");
    }
    lincheck_json_object_fini(&obj);
    return rc;
}

/* Buffered line reader with a bound on line length. */
typedef struct ljl_reader {
    FILE *f;
    char *buf;
    size_t cap;
    size_t start; /* first unconsumed byte */
    size_t end;   /* one past the last byte read */
    bool eof;
} ljl_reader;

/* Next line (without its newline) in line and len. Returns 1 for a line, 0 at
 * end of input, or LINCHECK_EIO / LINCHECK_ETOOBIG / LINCHECK_ENOMEM. */
static int ljl_next_line(ljl_reader *r, const char **line, size_t *len)
{
    size_t scanned = r->start;
    for (;;) {
        char *nl = r->end > scanned ? memchr(r->buf + scanned, '\n', r->end - scanned) : NULL;
        if (nl != NULL) {
            *line = r->buf + r->start;
            *len = (size_t)(nl - (r->buf + r->start));
            r->start = (size_t)(nl - r->buf) + 1;
            return 1;
        }
        scanned = r->end;
        if (r->end - r->start > LINCHECK_MAX_LINE_LEN) {
            return LINCHECK_ETOOBIG;
        }
        if (r->eof) {
            if (r->end == r->start) {
                return 0;
            }
            *line = r->buf + r->start;
            *len = r->end - r->start;
            r->start = r->end;
            return 1;
        }
        /* Make room: slide the partial line to the front, grow if needed. */
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            scanned -= r->start;
            r->start = 0;
        }
        if (r->cap - r->end < LJL_CHUNK) {
            size_t ncap = r->cap ? r->cap * 2 : 2 * LJL_CHUNK;
            char *b = realloc(r->buf, ncap);
            if (b == NULL) {
                return LINCHECK_ENOMEM;
            }
            r->buf = b;
            r->cap = ncap;
        }
        size_t got = fread(r->buf + r->end, 1, r->cap - r->end, r->f);
        r->end += got;
        if (got == 0) {
            if (ferror(r->f)) {
                return LINCHECK_EIO;
            }
            r->eof = true;
        }
    }
}

static bool ljl_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') {
            return false;
        }
    }
    return true;
}

int lincheck_history_load_jsonl(lincheck_history *h, const char *path, char *err, size_t errlen)
{
    if (h == NULL || path == NULL) {
        lincheck_set_error(err, errlen, "invalid argument");
        return LINCHECK_EINVAL;
    }
    bool use_stdin = strcmp(path, "-") == 0;
    const char *name = use_stdin ? "<stdin>" : path;
    ljl_reader r = {0};
    lincheck_json_object obj;
    lincheck_json_object_init(&obj);
    size_t count_before = lincheck_history_count(h);
    char msg[512];
    int rc = 0;
    uint64_t lineno = 0;

    r.f = use_stdin ? stdin : fopen(path, "rb");
    if (r.f == NULL) {
        lincheck_set_error(err, errlen, "%s: cannot open: %s", name, strerror(errno));
        rc = LINCHECK_EIO;
        goto out;
    }
    for (;;) {
        const char *line;
        size_t len;
        int got = ljl_next_line(&r, &line, &len);
        if (got == 0) {
            break;
        }
        lineno++;
        if (got < 0) {
            rc = got;
            if (rc == LINCHECK_ETOOBIG) {
                lincheck_set_error(err, errlen, "%s:%llu: line longer than %u bytes", name,
                                   (unsigned long long)lineno, LINCHECK_MAX_LINE_LEN);
            } else if (rc == LINCHECK_EIO) {
                lincheck_set_error(err, errlen, "%s:%llu: read error: %s", name,
                                   (unsigned long long)lineno, strerror(errno));
            } else {
                lincheck_set_error(err, errlen, "%s:%llu: out of memory", name,
                                   (unsigned long long)lineno);
            }
            goto out;
        }
        if (ljl_blank(line, len)) {
            continue;
        }
        msg[0] = '\0';
        rc = lincheck_json_parse(&obj, line, len, msg, sizeof(msg));
        if (rc == 0) {
            rc = ljl_add_object(h, &obj, msg, sizeof(msg));
        } else if (rc == LINCHECK_ENOMEM) {
            snprintf(msg, sizeof(msg), "out of memory");
        }
        if (rc != 0) {
            lincheck_set_error(err, errlen, "%s:%llu: %s", name, (unsigned long long)lineno, msg);
            goto out;
        }
    }
out:
    if (rc != 0) {
        lincheck_history_truncate(h, count_before);
    }
    if (r.f != NULL && !use_stdin) {
        fclose(r.f);
    }
    free(r.buf);
    lincheck_json_object_fini(&obj);
    return rc;
}
