/*
 * pbjson.c — JSON <-> protobuf-c via descriptors. See pbjson.h for the mapping.
 *
 * Decoding is one pass: a recursive-descent JSON parser that writes straight into the
 * message being built. The message is kept consistent at every step (counts are raised
 * only after an element is complete), so on any error protobuf_c_message_free_unpacked()
 * frees exactly what was allocated.
 */
#include "api/pbjson.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEMBER_PTR(msg, off) ((void *)((char *)(msg) + (off)))

/* ------------------------------------------------------------------------------------------ */
/* Common                                                                                       */

const char *pbjson_strerror(int code)
{
    switch (code) {
    case PBJSON_OK:
        return "ok";
    case PBJSON_ESYNTAX:
        return "malformed JSON";
    case PBJSON_ETYPE:
        return "JSON value of the wrong type for the field";
    case PBJSON_ERANGE:
        return "number out of range for the field";
    case PBJSON_EUNKNOWN:
        return "unknown field";
    case PBJSON_EDEPTH:
        return "JSON nested too deeply";
    case PBJSON_ENOMEM:
        return "out of memory";
    case PBJSON_EINVAL:
        return "invalid argument";
    default:
        return "unknown error";
    }
}

void pbjson_message_free(ProtobufCMessage *msg)
{
    if (msg != NULL)
        protobuf_c_message_free_unpacked(msg, NULL);
}

void pbjson_free(char *text)
{
    free(text);
}

/* protoc's ToJsonName: drop '_' and upper-case the next letter. */
static void json_name(const char *name, char *buf, size_t buflen)
{
    size_t j = 0;
    bool upper = false;
    for (const char *s = name; *s != '\0' && j + 1 < buflen; s++) {
        if (*s == '_') {
            upper = true;
            continue;
        }
        char c = *s;
        if (upper && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        upper = false;
        buf[j++] = c;
    }
    buf[j] = '\0';
}

static size_t type_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 0;
}

/* Frees the element at p of type f->type (not the slot itself). */
static void free_element(const ProtobufCFieldDescriptor *f, void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        char *s = *(char **)p;
        if (s != NULL && s != (const char *)f->default_value && s != protobuf_c_empty_string)
            free(s);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = p;
        const ProtobufCBinaryData *def = f->default_value;
        if (b->data != NULL && (def == NULL || b->data != def->data))
            free(b->data);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage *m = *(ProtobufCMessage **)p;
        if (m != NULL && m != f->default_value)
            protobuf_c_message_free_unpacked(m, NULL);
        break;
    }
    default:
        break;
    }
}

/* Resets a field of msg to "not set", freeing what it holds. */
static void clear_field(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    void *p = MEMBER_PTR(msg, f->offset);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t *n = MEMBER_PTR(msg, f->quantifier_offset);
        char *arr = *(char **)p;
        size_t sz = type_size(f->type);
        for (size_t i = 0; i < *n; i++)
            free_element(f, arr + i * sz);
        free(arr);
        *(void **)p = NULL;
        *n = 0;
        return;
    }
    free_element(f, p);
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        *(char **)p = (char *)f->default_value;
        break;
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = p;
        const ProtobufCBinaryData *def = f->default_value;
        if (def != NULL)
            *b = *def;
        else
            b->data = NULL, b->len = 0;
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        *(void **)p = NULL;
        break;
    default:
        if (f->default_value != NULL)
            memcpy(p, f->default_value, type_size(f->type));
        else
            memset(p, 0, type_size(f->type));
        break;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *(uint32_t *)MEMBER_PTR(msg, f->quantifier_offset) = 0;
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
             f->type != PROTOBUF_C_TYPE_MESSAGE)
        *(protobuf_c_boolean *)MEMBER_PTR(msg, f->quantifier_offset) = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Decoder                                                                                      */

typedef struct dec {
    const char *start;
    const char *p;
    const char *end;
    unsigned flags;
    int depth;
    char *err;
    size_t errlen;
    const char *field; /* name of the field being decoded, for messages */
} dec;

static int fail(dec *d, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(dec *d, int code, const char *fmt, ...)
{
    if (d->err != NULL && d->errlen > 0 && d->err[0] == '\0') {
        int n = snprintf(d->err, d->errlen, "offset %zu: ", (size_t)(d->p - d->start));
        if (n >= 0 && (size_t)n < d->errlen && d->field != NULL) {
            int m = snprintf(d->err + n, d->errlen - (size_t)n, "field \"%s\": ", d->field);
            if (m > 0)
                n += m;
        }
        if (n >= 0 && (size_t)n < d->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(d->err + n, d->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

static void skip_ws(dec *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
        d->p++;
}

static bool at_end(dec *d)
{
    skip_ws(d);
    return d->p >= d->end;
}

static int expect(dec *d, char c)
{
    skip_ws(d);
    if (d->p >= d->end)
        return fail(d, PBJSON_ESYNTAX, "unexpected end of input, expected '%c'", c);
    if (*d->p != c)
        return fail(d, PBJSON_ESYNTAX, "expected '%c'", c);
    d->p++;
    return PBJSON_OK;
}

static bool match_literal(dec *d, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, lit, n) != 0)
        return false;
    /* the literal must not run into an identifier character */
    const char *after = d->p + n;
    if (after < d->end && ((*after >= 'a' && *after <= 'z') || (*after >= 'A' && *after <= 'Z') ||
                           (*after >= '0' && *after <= '9') || *after == '_'))
        return false;
    d->p += n;
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int read_hex4(dec *d, uint32_t *out)
{
    if (d->end - d->p < 4)
        return fail(d, PBJSON_ESYNTAX, "truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(d->p[i]);
        if (h < 0)
            return fail(d, PBJSON_ESYNTAX, "bad \\u escape");
        v = v << 4 | (uint32_t)h;
    }
    d->p += 4;
    *out = v;
    return PBJSON_OK;
}

/* Parses a JSON string at d->p (which must be '"'). When out is not NULL stores a malloc'ed
 * NUL-terminated copy of the decoded bytes in *out and its length in *outlen. */
static int parse_string(dec *d, char **out, size_t *outlen)
{
    skip_ws(d);
    if (d->p >= d->end || *d->p != '"')
        return fail(d, PBJSON_ESYNTAX, "expected a string");
    d->p++;
    /* the decoded string is never longer than the encoded one */
    const char *q = d->p;
    while (q < d->end && *q != '"') {
        if (*q == '\\')
            q++;
        q++;
    }
    if (q >= d->end)
        return fail(d, PBJSON_ESYNTAX, "unterminated string");
    size_t cap = (size_t)(q - d->p) + 1;
    char *buf = NULL;
    if (out != NULL) {
        buf = malloc(cap);
        if (buf == NULL)
            return fail(d, PBJSON_ENOMEM, "out of memory");
    }
    size_t n = 0;
    int rc = PBJSON_OK;
    while (d->p < d->end && *d->p != '"') {
        unsigned char c = (unsigned char)*d->p;
        if (c < 0x20) {
            rc = fail(d, PBJSON_ESYNTAX, "control character in string");
            goto fail;
        }
        if (c != '\\') {
            if (buf != NULL)
                buf[n] = (char)c;
            n++;
            d->p++;
            continue;
        }
        d->p++;
        if (d->p >= d->end) {
            rc = fail(d, PBJSON_ESYNTAX, "unterminated string");
            goto fail;
        }
        char e = *d->p++;
        char lit = 0;
        switch (e) {
        case '"':
            lit = '"';
            break;
        case '\\':
            lit = '\\';
            break;
        case '/':
            lit = '/';
            break;
        case 'b':
            lit = '\b';
            break;
        case 'f':
            lit = '\f';
            break;
        case 'n':
            lit = '\n';
            break;
        case 'r':
            lit = '\r';
            break;
        case 't':
            lit = '\t';
            break;
        case 'u': {
            uint32_t cp;
            if ((rc = read_hex4(d, &cp)) != PBJSON_OK)
                goto fail;
            if (cp >= 0xD800 && cp < 0xDC00) {
                /* a high surrogate: a low one must follow, else U+FFFD (as Go does) */
                uint32_t lo = 0;
                if (d->end - d->p >= 6 && d->p[0] == '\\' && d->p[1] == 'u') {
                    const char *save = d->p;
                    d->p += 2;
                    if ((rc = read_hex4(d, &lo)) != PBJSON_OK)
                        goto fail;
                    if (lo >= 0xDC00 && lo < 0xE000)
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    else {
                        d->p = save;
                        cp = 0xFFFD;
                    }
                } else {
                    cp = 0xFFFD;
                }
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                cp = 0xFFFD;
            }
            char tmp[4];
            size_t k = put_utf8(tmp, cp);
            if (buf != NULL)
                memcpy(buf + n, tmp, k);
            n += k;
            continue;
        }
        default:
            rc = fail(d, PBJSON_ESYNTAX, "bad escape '\\%c' in string", e);
            goto fail;
        }
        if (buf != NULL)
            buf[n] = lit;
        n++;
    }
    d->p++; /* closing quote */
    if (buf != NULL) {
        buf[n] = '\0';
        *out = buf;
    }
    if (outlen != NULL)
        *outlen = n;
    return PBJSON_OK;
fail:
    free(buf);
    return rc;
}

/* Scans a JSON number token; stores its span. */
static int scan_number(dec *d, const char **s, size_t *n)
{
    const char *p = d->p;
    const char *e = d->end;
    const char *begin = p;
    if (p < e && *p == '-')
        p++;
    if (p >= e || !(*p >= '0' && *p <= '9'))
        return fail(d, PBJSON_ESYNTAX, "invalid value");
    if (*p == '0')
        p++;
    else
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    if (p < e && *p == '.') {
        p++;
        if (p >= e || !(*p >= '0' && *p <= '9'))
            return fail(d, PBJSON_ESYNTAX, "invalid number");
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || !(*p >= '0' && *p <= '9'))
            return fail(d, PBJSON_ESYNTAX, "invalid number");
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    *s = begin;
    *n = (size_t)(p - begin);
    d->p = p;
    return PBJSON_OK;
}

static int skip_value(dec *d);

static int skip_container(dec *d, char open, char close)
{
    if (++d->depth > PBJSON_MAX_DEPTH)
        return fail(d, PBJSON_EDEPTH, "nesting deeper than %d", PBJSON_MAX_DEPTH);
    d->p++; /* open */
    (void)open;
    skip_ws(d);
    if (d->p < d->end && *d->p == close) {
        d->p++;
        d->depth--;
        return PBJSON_OK;
    }
    for (;;) {
        int rc;
        if (close == '}') {
            if ((rc = parse_string(d, NULL, NULL)) != PBJSON_OK)
                return rc;
            if ((rc = expect(d, ':')) != PBJSON_OK)
                return rc;
        }
        if ((rc = skip_value(d)) != PBJSON_OK)
            return rc;
        skip_ws(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            continue;
        }
        if ((rc = expect(d, close)) != PBJSON_OK)
            return rc;
        break;
    }
    d->depth--;
    return PBJSON_OK;
}

static int skip_value(dec *d)
{
    skip_ws(d);
    if (d->p >= d->end)
        return fail(d, PBJSON_ESYNTAX, "unexpected end of input");
    switch (*d->p) {
    case '{':
        return skip_container(d, '{', '}');
    case '[':
        return skip_container(d, '[', ']');
    case '"':
        return parse_string(d, NULL, NULL);
    case 't':
        if (match_literal(d, "true"))
            return PBJSON_OK;
        break;
    case 'f':
        if (match_literal(d, "false"))
            return PBJSON_OK;
        break;
    case 'n':
        if (match_literal(d, "null"))
            return PBJSON_OK;
        break;
    default: {
        const char *s;
        size_t n;
        return scan_number(d, &s, &n);
    }
    }
    return fail(d, PBJSON_ESYNTAX, "invalid value");
}

/* Reads the text of a numeric field value: a JSON number, or a JSON string holding one.
 * Stores it NUL-terminated in buf. *quoted says which. */
static int numeric_text(dec *d, char *buf, size_t buflen, bool *quoted)
{
    skip_ws(d);
    if (d->p >= d->end)
        return fail(d, PBJSON_ESYNTAX, "unexpected end of input");
    if (*d->p == '"') {
        const char *at = d->p;
        char *s = NULL;
        size_t n = 0;
        int rc = parse_string(d, &s, &n);
        if (rc != PBJSON_OK)
            return rc;
        if (n == 0 || n >= buflen || strlen(s) != n) {
            free(s);
            d->p = at;
            return fail(d, PBJSON_ETYPE, "expected a number");
        }
        memcpy(buf, s, n + 1);
        free(s);
        *quoted = true;
        return PBJSON_OK;
    }
    if (*d->p != '-' && !(*d->p >= '0' && *d->p <= '9')) {
        if (*d->p == '{' || *d->p == '[' || *d->p == 't' || *d->p == 'f') {
            int rc = skip_value(d);
            if (rc != PBJSON_OK)
                return rc;
            return fail(d, PBJSON_ETYPE, "expected a number");
        }
        return fail(d, PBJSON_ESYNTAX, "invalid value");
    }
    const char *s;
    size_t n;
    int rc = scan_number(d, &s, &n);
    if (rc != PBJSON_OK)
        return rc;
    if (n >= buflen)
        return fail(d, PBJSON_ERANGE, "number too long");
    memcpy(buf, s, n);
    buf[n] = '\0';
    *quoted = false;
    return PBJSON_OK;
}

/* Parses an integer: optional '-' then digits, nothing else (like Go's encoding/json under
 * jsonpb, which rejects 1.0 and 1e3 for integer fields, quoted or not). */
static int parse_int_text(dec *d, const char *t, bool is_signed, int64_t lo, int64_t hi,
                          uint64_t uhi, int64_t *sv, uint64_t *uv)
{
    const char *p = t;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    if (!(*p >= '0' && *p <= '9'))
        return fail(d, PBJSON_ETYPE, "expected an integer, got \"%s\"", t);
    for (const char *q = p; *q; q++)
        if (!(*q >= '0' && *q <= '9'))
            return fail(d, PBJSON_ETYPE, "expected an integer, got \"%s\"", t);
    if (p[0] == '0' && p[1] != '\0')
        return fail(d, PBJSON_ETYPE, "expected an integer, got \"%s\"", t);
    uint64_t acc = 0;
    for (; *p; p++) {
        unsigned dgt = (unsigned)(*p - '0');
        if (acc > (UINT64_MAX - dgt) / 10)
            return fail(d, PBJSON_ERANGE, "integer out of range: %s", t);
        acc = acc * 10 + dgt;
    }
    if (is_signed) {
        if (neg) {
            if (acc > (uint64_t)INT64_MAX + 1)
                return fail(d, PBJSON_ERANGE, "integer out of range: %s", t);
            int64_t v = acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc;
            if (v < lo)
                return fail(d, PBJSON_ERANGE, "integer out of range: %s", t);
            *sv = v;
        } else {
            if (acc > (uint64_t)hi)
                return fail(d, PBJSON_ERANGE, "integer out of range: %s", t);
            *sv = (int64_t)acc;
        }
    } else {
        if (neg)
            return fail(d, PBJSON_ERANGE, "integer out of range: %s", t);
        if (acc > uhi)
            return fail(d, PBJSON_ERANGE, "integer out of range: %s", t);
        *uv = acc;
    }
    return PBJSON_OK;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* Decodes base64 (standard or URL-safe alphabet, padding optional, CR/LF ignored) in place
 * semantics: out must have room for (n / 4 + 1) * 3 bytes. Returns false on bad input. */
static bool base64_decode(const char *s, size_t n, uint8_t *out, size_t *outlen)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    size_t pad = 0;
    size_t chars = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' || c == '\n')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad > 0)
            return false; /* data after padding */
        int v = b64val(c);
        if (v < 0)
            return false;
        chars++;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (chars % 4 == 1)
        return false;
    if (pad > 0 && (chars + pad) % 4 != 0)
        return false;
    if (pad > 2)
        return false;
    if (acc != 0)
        return false; /* non-canonical trailing bits */
    *outlen = o;
    return true;
}

static int decode_object(dec *d, const ProtobufCMessageDescriptor *desc, ProtobufCMessage *msg);

/* Decodes one value of field f's type into the slot at dst. */
static int decode_scalar(dec *d, const ProtobufCFieldDescriptor *f, void *dst)
{
    skip_ws(d);
    if (d->p >= d->end)
        return fail(d, PBJSON_ESYNTAX, "unexpected end of input");
    char c = *d->p;
    char tbuf[400];
    bool quoted = false;
    int rc;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: {
        const char *at = d->p;
        if ((rc = numeric_text(d, tbuf, sizeof tbuf, &quoted)) != PBJSON_OK)
            return rc;
        bool is64 = type_size(f->type) == 8;
        int64_t v = 0;
        uint64_t u = 0;
        const char *save = d->p;
        d->p = at;
        rc = parse_int_text(d, tbuf, true, is64 ? INT64_MIN : INT32_MIN,
                            is64 ? INT64_MAX : INT32_MAX, 0, &v, &u);
        if (rc != PBJSON_OK)
            return rc;
        d->p = save;
        if (is64)
            *(int64_t *)dst = v;
        else
            *(int32_t *)dst = (int32_t)v;
        return PBJSON_OK;
    }
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        const char *at = d->p;
        if ((rc = numeric_text(d, tbuf, sizeof tbuf, &quoted)) != PBJSON_OK)
            return rc;
        bool is64 = type_size(f->type) == 8;
        int64_t v = 0;
        uint64_t u = 0;
        const char *save = d->p;
        d->p = at;
        rc = parse_int_text(d, tbuf, false, 0, 0, is64 ? UINT64_MAX : UINT32_MAX, &v, &u);
        if (rc != PBJSON_OK)
            return rc;
        d->p = save;
        if (is64)
            *(uint64_t *)dst = u;
        else
            *(uint32_t *)dst = (uint32_t)u;
        return PBJSON_OK;
    }
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v;
        if (c == '"') {
            const char *at = d->p;
            char *s = NULL;
            size_t n;
            if ((rc = parse_string(d, &s, &n)) != PBJSON_OK)
                return rc;
            if (strcmp(s, "NaN") == 0)
                v = NAN;
            else if (strcmp(s, "Infinity") == 0)
                v = INFINITY;
            else if (strcmp(s, "-Infinity") == 0)
                v = -INFINITY;
            else {
                dec sub = *d;
                sub.p = s;
                sub.end = s + n;
                const char *ns;
                size_t nn;
                if (n == 0 || scan_number(&sub, &ns, &nn) != PBJSON_OK || nn != n) {
                    free(s);
                    d->p = at;
                    return fail(d, PBJSON_ETYPE, "expected a number");
                }
                v = strtod(s, NULL);
            }
            free(s);
        } else {
            if ((rc = numeric_text(d, tbuf, sizeof tbuf, &quoted)) != PBJSON_OK)
                return rc;
            v = strtod(tbuf, NULL);
        }
        if (f->type == PROTOBUF_C_TYPE_FLOAT) {
            if (isfinite(v) && (v > 3.4028234663852886e38 || v < -3.4028234663852886e38))
                return fail(d, PBJSON_ERANGE, "float out of range");
            *(float *)dst = (float)v;
        } else {
            if (isinf(v) && c != '"')
                return fail(d, PBJSON_ERANGE, "double out of range");
            *(double *)dst = v;
        }
        return PBJSON_OK;
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (match_literal(d, "true"))
            *(protobuf_c_boolean *)dst = 1;
        else if (match_literal(d, "false"))
            *(protobuf_c_boolean *)dst = 0;
        else {
            if ((rc = skip_value(d)) != PBJSON_OK)
                return rc;
            return fail(d, PBJSON_ETYPE, "expected true or false");
        }
        return PBJSON_OK;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        if (c == '"') {
            const char *at = d->p;
            char *s = NULL;
            if ((rc = parse_string(d, &s, NULL)) != PBJSON_OK)
                return rc;
            const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(ed, s);
            if (ev == NULL) {
                d->p = at;
                rc = fail(d, PBJSON_ETYPE, "unknown value \"%s\" for enum %s", s, ed->name);
                free(s);
                return rc;
            }
            free(s);
            *(int32_t *)dst = ev->value;
            return PBJSON_OK;
        }
        const char *at = d->p;
        if ((rc = numeric_text(d, tbuf, sizeof tbuf, &quoted)) != PBJSON_OK)
            return rc;
        int64_t v = 0;
        uint64_t u = 0;
        const char *save = d->p;
        d->p = at;
        if ((rc = parse_int_text(d, tbuf, true, INT32_MIN, INT32_MAX, 0, &v, &u)) != PBJSON_OK)
            return rc;
        d->p = save;
        *(int32_t *)dst = (int32_t)v;
        return PBJSON_OK;
    }
    case PROTOBUF_C_TYPE_STRING: {
        if (c != '"') {
            if ((rc = skip_value(d)) != PBJSON_OK)
                return rc;
            return fail(d, PBJSON_ETYPE, "expected a string");
        }
        char *s = NULL;
        if ((rc = parse_string(d, &s, NULL)) != PBJSON_OK)
            return rc;
        *(char **)dst = s;
        return PBJSON_OK;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        if (c != '"') {
            if ((rc = skip_value(d)) != PBJSON_OK)
                return rc;
            return fail(d, PBJSON_ETYPE, "expected a base64 string");
        }
        const char *at = d->p;
        char *s = NULL;
        size_t n = 0;
        if ((rc = parse_string(d, &s, &n)) != PBJSON_OK)
            return rc;
        ProtobufCBinaryData *b = dst;
        b->data = NULL;
        b->len = 0;
        if (n == 0) {
            free(s);
            return PBJSON_OK;
        }
        uint8_t *data = malloc(n / 4 * 3 + 3);
        if (data == NULL) {
            free(s);
            return fail(d, PBJSON_ENOMEM, "out of memory");
        }
        size_t dn = 0;
        if (!base64_decode(s, n, data, &dn)) {
            free(s);
            free(data);
            d->p = at;
            return fail(d, PBJSON_ETYPE, "illegal base64 data");
        }
        free(s);
        if (dn == 0) {
            free(data);
            return PBJSON_OK;
        }
        b->data = data;
        b->len = dn;
        return PBJSON_OK;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        if (c != '{') {
            if ((rc = skip_value(d)) != PBJSON_OK)
                return rc;
            return fail(d, PBJSON_ETYPE, "expected an object");
        }
        const ProtobufCMessageDescriptor *md = f->descriptor;
        ProtobufCMessage *m = malloc(md->sizeof_message);
        if (m == NULL)
            return fail(d, PBJSON_ENOMEM, "out of memory");
        protobuf_c_message_init(md, m);
        const char *saved_field = d->field;
        rc = decode_object(d, md, m);
        d->field = saved_field;
        if (rc != PBJSON_OK) {
            protobuf_c_message_free_unpacked(m, NULL);
            return rc;
        }
        *(ProtobufCMessage **)dst = m;
        return PBJSON_OK;
    }
    }
    return fail(d, PBJSON_EINVAL, "unsupported field type");
}

static int decode_repeated(dec *d, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    skip_ws(d);
    if (d->p >= d->end || *d->p != '[') {
        int rc = skip_value(d);
        if (rc != PBJSON_OK)
            return rc;
        return fail(d, PBJSON_ETYPE, "expected an array");
    }
    if (++d->depth > PBJSON_MAX_DEPTH)
        return fail(d, PBJSON_EDEPTH, "nesting deeper than %d", PBJSON_MAX_DEPTH);
    d->p++;
    clear_field(msg, f);
    size_t *n = MEMBER_PTR(msg, f->quantifier_offset);
    char **arr = MEMBER_PTR(msg, f->offset);
    size_t cap = 0;
    size_t sz = type_size(f->type);
    skip_ws(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
        d->depth--;
        return PBJSON_OK;
    }
    for (;;) {
        skip_ws(d);
        if (match_literal(d, "null"))
            return fail(d, PBJSON_ETYPE, "null in an array");
        if (*n == cap) {
            size_t ncap = cap == 0 ? 4 : cap * 2;
            char *na = realloc(*arr, ncap * sz);
            if (na == NULL)
                return fail(d, PBJSON_ENOMEM, "out of memory");
            *arr = na;
            cap = ncap;
        }
        char *slot = *arr + *n * sz;
        memset(slot, 0, sz);
        int rc = decode_scalar(d, f, slot);
        if (rc != PBJSON_OK)
            return rc;
        (*n)++;
        skip_ws(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            continue;
        }
        if ((rc = expect(d, ']')) != PBJSON_OK)
            return rc;
        break;
    }
    d->depth--;
    return PBJSON_OK;
}

static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *desc,
                                                  const char *key)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(desc, key);
    if (f != NULL)
        return f;
    char jn[256];
    for (unsigned i = 0; i < desc->n_fields; i++) {
        json_name(desc->fields[i].name, jn, sizeof jn);
        if (strcmp(jn, key) == 0)
            return &desc->fields[i];
    }
    return NULL;
}

static int decode_field(dec *d, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    skip_ws(d);
    if (match_literal(d, "null")) {
        /* null: the field is not set */
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(uint32_t *)MEMBER_PTR(msg, f->quantifier_offset) == f->id)
                clear_field(msg, f);
        } else {
            clear_field(msg, f);
        }
        return PBJSON_OK;
    }
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return decode_repeated(d, msg, f);

    /* Decode into a temporary slot, then install (so a failure leaves msg consistent). */
    union {
        uint64_t u64;
        double dbl;
        void *ptr;
        ProtobufCBinaryData bin;
    } tmp;
    memset(&tmp, 0, sizeof tmp);
    int rc = decode_scalar(d, f, &tmp);
    if (rc != PBJSON_OK)
        return rc;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *cs = MEMBER_PTR(msg, f->quantifier_offset);
        if (*cs != 0) {
            const ProtobufCFieldDescriptor *cur =
                protobuf_c_message_descriptor_get_field(msg->descriptor, *cs);
            if (cur != NULL)
                clear_field(msg, cur);
        }
        *cs = f->id;
    } else {
        clear_field(msg, f);
        if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
            f->type != PROTOBUF_C_TYPE_MESSAGE)
            *(protobuf_c_boolean *)MEMBER_PTR(msg, f->quantifier_offset) = 1;
    }
    memcpy(MEMBER_PTR(msg, f->offset), &tmp, type_size(f->type));
    return PBJSON_OK;
}

static int decode_object(dec *d, const ProtobufCMessageDescriptor *desc, ProtobufCMessage *msg)
{
    int rc;
    skip_ws(d);
    if (d->p >= d->end)
        return fail(d, PBJSON_ESYNTAX, "unexpected end of input, expected an object");
    if (*d->p != '{')
        return fail(d, PBJSON_ETYPE, "expected an object for %s", desc->name);
    if (++d->depth > PBJSON_MAX_DEPTH)
        return fail(d, PBJSON_EDEPTH, "nesting deeper than %d", PBJSON_MAX_DEPTH);
    d->p++;
    skip_ws(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
        d->depth--;
        return PBJSON_OK;
    }
    for (;;) {
        skip_ws(d);
        char *key = NULL;
        const char *key_at = d->p;
        if ((rc = parse_string(d, &key, NULL)) != PBJSON_OK)
            return rc;
        if ((rc = expect(d, ':')) != PBJSON_OK) {
            free(key);
            return rc;
        }
        const ProtobufCFieldDescriptor *f = find_field(desc, key);
        if (f == NULL) {
            if (d->flags & PBJSON_DECODE_REJECT_UNKNOWN) {
                d->p = key_at;
                rc = fail(d, PBJSON_EUNKNOWN, "unknown field \"%s\" in %s", key, desc->name);
                free(key);
                return rc;
            }
            free(key);
            if ((rc = skip_value(d)) != PBJSON_OK)
                return rc;
        } else {
            free(key);
            d->field = f->name;
            rc = decode_field(d, msg, f);
            if (rc != PBJSON_OK)
                return rc;
            d->field = NULL;
        }
        skip_ws(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            continue;
        }
        if (d->p >= d->end)
            return fail(d, PBJSON_ESYNTAX, "unexpected end of input in object");
        if (*d->p != '}')
            return fail(d, PBJSON_ESYNTAX, "expected ',' or '}'");
        d->p++;
        break;
    }
    d->depth--;
    return PBJSON_OK;
}

int pbjson_decode_ex(const ProtobufCMessageDescriptor *desc, const char *json, size_t len,
                     unsigned flags, ProtobufCMessage **out, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (out != NULL)
        *out = NULL;
    if (desc == NULL || out == NULL || (json == NULL && len > 0)) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "invalid argument");
        return PBJSON_EINVAL;
    }
    dec d = {
        .start = json, .p = json, .end = json + len, .flags = flags, .err = err, .errlen = errlen};
    ProtobufCMessage *msg = malloc(desc->sizeof_message);
    if (msg == NULL)
        return fail(&d, PBJSON_ENOMEM, "out of memory");
    protobuf_c_message_init(desc, msg);
    int rc = decode_object(&d, desc, msg);
    if (rc == PBJSON_OK && !at_end(&d))
        rc = fail(&d, PBJSON_ESYNTAX, "unexpected data after the JSON object");
    if (rc != PBJSON_OK) {
        protobuf_c_message_free_unpacked(msg, NULL);
        return rc;
    }
    *out = msg;
    return PBJSON_OK;
}

int pbjson_decode(const ProtobufCMessageDescriptor *desc, const char *json, size_t len,
                  ProtobufCMessage **out, char *err, size_t errlen)
{
    return pbjson_decode_ex(desc, json, len, 0, out, err, errlen);
}

/* ------------------------------------------------------------------------------------------ */
/* Encoder                                                                                      */

typedef struct enc {
    char *buf;
    size_t len;
    size_t cap;
    bool oom;
    unsigned flags;
    int depth;
} enc;

static bool reserve(enc *e, size_t n)
{
    if (e->oom)
        return false;
    if (e->len + n + 1 <= e->cap)
        return true;
    size_t ncap = e->cap == 0 ? 256 : e->cap;
    while (ncap < e->len + n + 1)
        ncap *= 2;
    char *nb = realloc(e->buf, ncap);
    if (nb == NULL) {
        e->oom = true;
        return false;
    }
    e->buf = nb;
    e->cap = ncap;
    return true;
}

static void put_mem(enc *e, const char *s, size_t n)
{
    if (!reserve(e, n))
        return;
    memcpy(e->buf + e->len, s, n);
    e->len += n;
}

static void put_str(enc *e, const char *s)
{
    put_mem(e, s, strlen(s));
}

static void put_ch(enc *e, char c)
{
    put_mem(e, &c, 1);
}

/* Length of a valid UTF-8 sequence at s (n bytes available), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t k;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        k = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        k = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        k = 4, cp = c & 0x07;
    else
        return 0;
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp < 0xE000))
        return 0;
    return k;
}

/* Writes s as a JSON string the way Go's encoding/json does (HTML-safe). */
static void put_json_string(enc *e, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    put_ch(e, '"');
    size_t i = 0;
    while (i < n) {
        unsigned char c = u[i];
        if (c < 0x80) {
            if (c == '"' || c == '\\') {
                char b[2] = {'\\', (char)c};
                put_mem(e, b, 2);
            } else if (c == '\n') {
                put_mem(e, "\\n", 2);
            } else if (c == '\r') {
                put_mem(e, "\\r", 2);
            } else if (c == '\t') {
                put_mem(e, "\\t", 2);
            } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
                char b[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
                put_mem(e, b, 6);
            } else {
                put_ch(e, (char)c);
            }
            i++;
            continue;
        }
        size_t k = utf8_len(u + i, n - i);
        if (k == 0) {
            put_mem(e, "\xEF\xBF\xBD", 3); /* U+FFFD */
            i++;
            continue;
        }
        if (k == 3 && u[i] == 0xE2 && u[i + 1] == 0x80 && (u[i + 2] == 0xA8 || u[i + 2] == 0xA9)) {
            put_str(e, u[i + 2] == 0xA8 ? "\\u2028" : "\\u2029");
        } else {
            put_mem(e, s + i, k);
        }
        i += k;
    }
    put_ch(e, '"');
}

static void put_base64(enc *e, const uint8_t *data, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    put_ch(e, '"');
    size_t out = (n + 2) / 3 * 4;
    if (!reserve(e, out))
        return;
    char *o = e->buf + e->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *o++ = tbl[v >> 18];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = tbl[(v >> 6) & 63];
        *o++ = tbl[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)data[i] << 16;
        *o++ = tbl[v >> 18];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
        *o++ = tbl[v >> 18];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = tbl[(v >> 6) & 63];
        *o++ = '=';
    }
    e->len += out;
    put_ch(e, '"');
}

/* Writes a finite number as Go's encoding/json does: the shortest digits that read back to
 * the same value (as float32 for float fields); exponent form only below 1e-6 or from 1e21
 * on, with a negative exponent's leading zero dropped (1e-7, 1e+21). */
static void put_double(enc *e, double v, bool is_float)
{
    if (isnan(v)) {
        put_str(e, "\"NaN\"");
        return;
    }
    if (isinf(v)) {
        put_str(e, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return;
    }
    char sci[64];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec - 1, v);
        double back = strtod(sci, NULL);
        if (is_float ? (float)back == (float)v : back == v)
            break;
    }
    if (prec > 17)
        prec = 17;
    char *ep = strchr(sci, 'e');
    double a = fabs(v);
    if (a != 0 && (a < 1e-6 || a >= 1e21)) {
        size_t n = strlen(sci);
        if (ep != NULL && n >= 4 && sci[n - 4] == 'e' && sci[n - 3] == '-' && sci[n - 2] == '0') {
            sci[n - 2] = sci[n - 1];
            sci[n - 1] = '\0';
        }
        put_str(e, sci);
        return;
    }
    int exp10 = ep != NULL ? atoi(ep + 1) : 0;
    int decimals = prec - 1 - exp10;
    if (decimals < 0)
        decimals = 0;
    char fix[400];
    snprintf(fix, sizeof fix, "%.*f", decimals, v);
    put_str(e, fix);
}

static int encode_message(enc *e, const ProtobufCMessage *msg);

static int encode_value(enc *e, const ProtobufCFieldDescriptor *f, const void *p)
{
    char b[48];
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        snprintf(b, sizeof b, "%" PRId32, *(const int32_t *)p);
        put_str(e, b);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        snprintf(b, sizeof b, "%" PRIu32, *(const uint32_t *)p);
        put_str(e, b);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(b, sizeof b, "\"%" PRId64 "\"", *(const int64_t *)p);
        put_str(e, b);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(b, sizeof b, "\"%" PRIu64 "\"", *(const uint64_t *)p);
        put_str(e, b);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        put_double(e, *(const float *)p, true);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        put_double(e, *(const double *)p, false);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        put_str(e, *(const protobuf_c_boolean *)p ? "true" : "false");
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        int32_t v = *(const int32_t *)p;
        const ProtobufCEnumValue *ev = NULL;
        if (!(e->flags & PBJSON_ENCODE_ENUMS_AS_INTS))
            ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        if (ev != NULL) {
            put_json_string(e, ev->name, strlen(ev->name));
        } else {
            snprintf(b, sizeof b, "%" PRId32, v);
            put_str(e, b);
        }
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        if (s == NULL)
            s = "";
        put_json_string(e, s, strlen(s));
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *bd = p;
        put_base64(e, bd->data, bd->data == NULL ? 0 : bd->len);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        if (m == NULL) {
            put_str(e, "null");
            break;
        }
        return encode_message(e, m);
    }
    }
    return PBJSON_OK;
}

static bool is_zero(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return s == NULL || s[0] == '\0';
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *)p == NULL;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)p == 0 && !signbit(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)p == 0 && !signbit(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return !*(const protobuf_c_boolean *)p;
    default:
        break;
    }
    size_t sz = type_size(f->type);
    static const char zeros[8];
    return memcmp(p, zeros, sz) == 0;
}

static int encode_message(enc *e, const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    if (desc == NULL)
        return PBJSON_EINVAL;
    if (++e->depth > PBJSON_MAX_DEPTH)
        return PBJSON_EDEPTH;
    bool emit_defaults = e->flags & PBJSON_ENCODE_EMIT_DEFAULTS;
    bool first = true;
    put_ch(e, '{');
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        const void *p = (const char *)msg + f->offset;
        size_t count = 1;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t cs = *(const uint32_t *)((const char *)msg + f->quantifier_offset);
            if (cs != f->id)
                continue;
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            count = *(const size_t *)((const char *)msg + f->quantifier_offset);
            if (count == 0 && !emit_defaults)
                continue;
        } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
            if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING) {
                if (*(void *const *)p == NULL && !emit_defaults)
                    continue;
            } else if (!*(const protobuf_c_boolean *)((const char *)msg + f->quantifier_offset) &&
                       !emit_defaults) {
                continue;
            }
        } else if (f->label == PROTOBUF_C_LABEL_NONE) {
            if (!emit_defaults && is_zero(f, p))
                continue;
        }
        if (!first)
            put_ch(e, ',');
        first = false;
        if (e->flags & PBJSON_ENCODE_JSON_NAMES) {
            char jn[256];
            json_name(f->name, jn, sizeof jn);
            put_json_string(e, jn, strlen(jn));
        } else {
            put_json_string(e, f->name, strlen(f->name));
        }
        put_ch(e, ':');
        int rc;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            const char *arr = *(const char *const *)p;
            size_t sz = type_size(f->type);
            put_ch(e, '[');
            for (size_t k = 0; k < count; k++) {
                if (k > 0)
                    put_ch(e, ',');
                if ((rc = encode_value(e, f, arr + k * sz)) != PBJSON_OK)
                    return rc;
            }
            put_ch(e, ']');
        } else if ((rc = encode_value(e, f, p)) != PBJSON_OK) {
            return rc;
        }
    }
    put_ch(e, '}');
    e->depth--;
    return e->oom ? PBJSON_ENOMEM : PBJSON_OK;
}

int pbjson_encode_ex(const ProtobufCMessage *msg, unsigned flags, char **out, size_t *len)
{
    if (out != NULL)
        *out = NULL;
    if (len != NULL)
        *len = 0;
    if (msg == NULL || out == NULL || msg->descriptor == NULL)
        return PBJSON_EINVAL;
    enc e = {.flags = flags};
    int rc = encode_message(&e, msg);
    if (rc == PBJSON_OK && (e.oom || !reserve(&e, 1)))
        rc = PBJSON_ENOMEM;
    if (rc != PBJSON_OK) {
        free(e.buf);
        return rc;
    }
    e.buf[e.len] = '\0';
    *out = e.buf;
    if (len != NULL)
        *len = e.len;
    return PBJSON_OK;
}

int pbjson_encode(const ProtobufCMessage *msg, char **out, size_t *len)
{
    return pbjson_encode_ex(msg, 0, out, len);
}
