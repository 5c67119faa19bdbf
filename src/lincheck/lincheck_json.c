/*
 * lincheck_json.c: strict flat-object JSON parser (see lincheck_json.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lincheck/lincheck.h"
#include "lincheck/lincheck_internal.h"
#include "lincheck/lincheck_json.h"

typedef struct lj_parser {
    const char *text;
    size_t len;
    size_t pos;
    char *out; /* next free byte of the object's scratch */
    char *err;
    size_t errlen;
} lj_parser;

#define LJ_FAIL(p, ...)                                                                            \
    do {                                                                                           \
        lj_fail((p), __VA_ARGS__);                                                                 \
        return LINCHECK_EPARSE;                                                                    \
    } while (0)

__attribute__((format(printf, 2, 3))) static void lj_fail(lj_parser *p, const char *fmt, ...)
{
    if (p->err == NULL || p->errlen == 0) {
        return;
    }
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    lincheck_set_error(p->err, p->errlen, "column %zu: %s", p->pos + 1, msg);
}

void lincheck_json_object_init(lincheck_json_object *obj)
{
    memset(obj, 0, sizeof(*obj));
}

void lincheck_json_object_fini(lincheck_json_object *obj)
{
    free(obj->scratch);
    memset(obj, 0, sizeof(*obj));
}

static void lj_skip_ws(lj_parser *p)
{
    while (p->pos < p->len) {
        char c = p->text[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            break;
        }
        p->pos++;
    }
}

static int lj_hex4(lj_parser *p, unsigned *out)
{
    if (p->len - p->pos < 4) {
        LJ_FAIL(p, "truncated \\u escape");
    }
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->text[p->pos];
        unsigned d;
        if (c >= '0' && c <= '9') {
            d = (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = (unsigned)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            d = (unsigned)(c - 'A' + 10);
        } else {
            LJ_FAIL(p, "bad hex digit in \\u escape");
        }
        v = v * 16 + d;
        p->pos++;
    }
    *out = v;
    return 0;
}

static void lj_put_utf8(lj_parser *p, unsigned cp)
{
    if (cp < 0x80) {
        *p->out++ = (char)cp;
    } else if (cp < 0x800) {
        *p->out++ = (char)(0xc0 | (cp >> 6));
        *p->out++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *p->out++ = (char)(0xe0 | (cp >> 12));
        *p->out++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *p->out++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *p->out++ = (char)(0xf0 | (cp >> 18));
        *p->out++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *p->out++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *p->out++ = (char)(0x80 | (cp & 0x3f));
    }
}

/* Length of the valid UTF-8 sequence at s[0..avail), or 0 if invalid. */
static size_t lj_utf8_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) {
            lo = 0xa0;
        } else if (c == 0xed) {
            hi = 0x9f; /* no UTF-16 surrogates */
        }
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) {
            lo = 0x90;
        } else if (c == 0xf4) {
            hi = 0x8f;
        }
    } else {
        return 0;
    }
    if (avail < n || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) {
            return 0;
        }
    }
    return n;
}

/* Parse a string at p->pos (which is '"'); decode into p->out. */
static int lj_string(lj_parser *p, const char **str, size_t *slen)
{
    p->pos++; /* opening quote */
    char *start = p->out;
    for (;;) {
        if (p->pos >= p->len) {
            LJ_FAIL(p, "unterminated string");
        }
        unsigned char c = (unsigned char)p->text[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20) {
            LJ_FAIL(p, "control character in string (must be escaped)");
        }
        if (c >= 0x80) {
            size_t n = lj_utf8_len((const unsigned char *)p->text + p->pos, p->len - p->pos);
            if (n == 0) {
                LJ_FAIL(p, "invalid UTF-8 in string");
            }
            memcpy(p->out, p->text + p->pos, n);
            p->out += n;
            p->pos += n;
            continue;
        }
        if (c != '\\') {
            *p->out++ = (char)c;
            p->pos++;
            continue;
        }
        p->pos++;
        if (p->pos >= p->len) {
            LJ_FAIL(p, "unterminated escape");
        }
        char e = p->text[p->pos++];
        switch (e) {
        case '"':
        case '\\':
        case '/':
            *p->out++ = e;
            break;
        case 'b':
            *p->out++ = '\b';
            break;
        case 'f':
            *p->out++ = '\f';
            break;
        case 'n':
            *p->out++ = '\n';
            break;
        case 'r':
            *p->out++ = '\r';
            break;
        case 't':
            *p->out++ = '\t';
            break;
        case 'u': {
            unsigned cp;
            int rc = lj_hex4(p, &cp);
            if (rc != 0) {
                return rc;
            }
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                LJ_FAIL(p, "lone low surrogate in \\u escape");
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (p->len - p->pos < 2 || p->text[p->pos] != '\\' || p->text[p->pos + 1] != 'u') {
                    LJ_FAIL(p, "high surrogate not followed by a low one");
                }
                p->pos += 2;
                unsigned lo;
                rc = lj_hex4(p, &lo);
                if (rc != 0) {
                    return rc;
                }
                if (lo < 0xdc00 || lo > 0xdfff) {
                    LJ_FAIL(p, "high surrogate not followed by a low one");
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            lj_put_utf8(p, cp);
            break;
        }
        default:
            p->pos--;
            LJ_FAIL(p, "bad escape '\\%c'", e);
        }
    }
    *p->out++ = '\0';
    *str = start;
    *slen = (size_t)(p->out - start - 1);
    return 0;
}

static int lj_digits(lj_parser *p)
{
    size_t begin = p->pos;
    while (p->pos < p->len && p->text[p->pos] >= '0' && p->text[p->pos] <= '9') {
        p->pos++;
    }
    if (p->pos == begin) {
        LJ_FAIL(p, "expected a digit");
    }
    return 0;
}

static int lj_number(lj_parser *p, const char **str, size_t *slen)
{
    size_t begin = p->pos;
    if (p->text[p->pos] == '-') {
        p->pos++;
    }
    if (p->pos < p->len && p->text[p->pos] == '0') {
        p->pos++;
        if (p->pos < p->len && p->text[p->pos] >= '0' && p->text[p->pos] <= '9') {
            LJ_FAIL(p, "leading zero in number");
        }
    } else {
        int rc = lj_digits(p);
        if (rc != 0) {
            return rc;
        }
    }
    if (p->pos < p->len && p->text[p->pos] == '.') {
        p->pos++;
        int rc = lj_digits(p);
        if (rc != 0) {
            return rc;
        }
    }
    if (p->pos < p->len && (p->text[p->pos] == 'e' || p->text[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->text[p->pos] == '+' || p->text[p->pos] == '-')) {
            p->pos++;
        }
        int rc = lj_digits(p);
        if (rc != 0) {
            return rc;
        }
    }
    *str = p->text + begin;
    *slen = p->pos - begin;
    return 0;
}

static int lj_literal(lj_parser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->text + p->pos, word, n) != 0) {
        LJ_FAIL(p, "invalid value (expected a string, number, true, false or null)");
    }
    p->pos += n;
    return 0;
}

static int lj_value(lj_parser *p, lincheck_json_field *f)
{
    if (p->pos >= p->len) {
        LJ_FAIL(p, "missing value");
    }
    char c = p->text[p->pos];
    f->str = NULL;
    f->str_len = 0;
    switch (c) {
    case '"':
        f->type = LINCHECK_JSON_STRING;
        return lj_string(p, &f->str, &f->str_len);
    case 't':
        f->type = LINCHECK_JSON_TRUE;
        return lj_literal(p, "true");
    case 'f':
        f->type = LINCHECK_JSON_FALSE;
        return lj_literal(p, "false");
    case 'n':
        f->type = LINCHECK_JSON_NULL;
        return lj_literal(p, "null");
    case '{':
    case '[':
        LJ_FAIL(p, "nested objects and arrays are not supported");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            f->type = LINCHECK_JSON_NUMBER;
            return lj_number(p, &f->str, &f->str_len);
        }
        LJ_FAIL(p, "invalid value (expected a string, number, true, false or null)");
    }
}

int lincheck_json_parse(lincheck_json_object *obj, const char *text, size_t len, char *err,
                        size_t errlen)
{
    if (obj->scratch_cap < len + 1) {
        char *s = realloc(obj->scratch, len + 1);
        if (s == NULL) {
            return LINCHECK_ENOMEM;
        }
        obj->scratch = s;
        obj->scratch_cap = len + 1;
    }
    obj->count = 0;
    lj_parser p = {text, len, 0, obj->scratch, err, errlen};

    lj_skip_ws(&p);
    if (p.pos >= p.len || text[p.pos] != '{') {
        LJ_FAIL(&p, "expected '{' (each line must be one JSON object)");
    }
    p.pos++;
    lj_skip_ws(&p);
    if (p.pos < p.len && text[p.pos] == '}') {
        p.pos++;
    } else {
        for (;;) {
            lj_skip_ws(&p);
            if (p.pos >= p.len || text[p.pos] != '"') {
                LJ_FAIL(&p, "expected a field name in double quotes");
            }
            if (obj->count >= LINCHECK_JSON_MAX_FIELDS) {
                LJ_FAIL(&p, "more than %d fields", LINCHECK_JSON_MAX_FIELDS);
            }
            lincheck_json_field *f = &obj->fields[obj->count];
            size_t name_pos = p.pos;
            int rc = lj_string(&p, &f->name, &f->name_len);
            if (rc != 0) {
                return rc;
            }
            for (size_t i = 0; i < obj->count; i++) {
                if (obj->fields[i].name_len == f->name_len &&
                    memcmp(obj->fields[i].name, f->name, f->name_len) == 0) {
                    p.pos = name_pos;
                    LJ_FAIL(&p, "duplicate field \"%s\"", f->name);
                }
            }
            lj_skip_ws(&p);
            if (p.pos >= p.len || text[p.pos] != ':') {
                LJ_FAIL(&p, "expected ':' after field name");
            }
            p.pos++;
            lj_skip_ws(&p);
            rc = lj_value(&p, f);
            if (rc != 0) {
                return rc;
            }
            obj->count++;
            lj_skip_ws(&p);
            if (p.pos < p.len && text[p.pos] == ',') {
                p.pos++;
                continue;
            }
            if (p.pos < p.len && text[p.pos] == '}') {
                p.pos++;
                break;
            }
            LJ_FAIL(&p, "expected ',' or '}'");
        }
    }
    lj_skip_ws(&p);
    if (p.pos != p.len) {
        LJ_FAIL(&p, "unexpected characters after the object");
    }
    return 0;
}

const lincheck_json_field *lincheck_json_get(const lincheck_json_object *obj, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < obj->count; i++) {
        if (obj->fields[i].name_len == n && memcmp(obj->fields[i].name, name, n) == 0) {
            return &obj->fields[i];
        }
    }
    return NULL;
}

int lincheck_json_u64(const lincheck_json_field *f, uint64_t *out)
{
    if (f->type != LINCHECK_JSON_NUMBER || f->str_len == 0) {
        return LINCHECK_EINVAL;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < f->str_len; i++) {
        char c = f->str[i];
        if (c < '0' || c > '9') {
            return LINCHECK_EINVAL;
        }
        unsigned d = (unsigned)(c - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return LINCHECK_EINVAL;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}
