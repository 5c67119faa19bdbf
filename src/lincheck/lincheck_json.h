/*
 * lincheck_json.h: a strict parser for flat JSON objects, one per line:
 * {"name": value, ...} where each value is a string, a number, true, false
 * or null. Enough for history records; nested objects and arrays are
 * rejected. Strict means RFC 8259: no trailing commas, no comments, no
 * control characters or invalid UTF-8 inside strings, no lone surrogates.
 */
#ifndef CORD_LINCHECK_JSON_H
#define CORD_LINCHECK_JSON_H

#include <stddef.h>
#include <stdint.h>

#define LINCHECK_JSON_MAX_FIELDS 32

typedef enum lincheck_json_type {
    LINCHECK_JSON_STRING = 0,
    LINCHECK_JSON_NUMBER = 1,
    LINCHECK_JSON_TRUE = 2,
    LINCHECK_JSON_FALSE = 3,
    LINCHECK_JSON_NULL = 4,
} lincheck_json_type;

typedef struct lincheck_json_field {
    const char *name; /* decoded, NUL-terminated (may contain NUL bytes) */
    size_t name_len;
    lincheck_json_type type;
    const char *str; /* STRING: decoded bytes, NUL-terminated; NUMBER: raw text */
    size_t str_len;
} lincheck_json_field;

/* A parsed object. Decoded strings live in `scratch`, which the object owns
 * and reuses across parses; fields point into it (or into the input text,
 * for numbers) until the next parse or lincheck_json_object_fini(). */
typedef struct lincheck_json_object {
    lincheck_json_field fields[LINCHECK_JSON_MAX_FIELDS];
    size_t count;
    char *scratch;
    size_t scratch_cap;
} lincheck_json_object;

/* Initialize an empty object (no allocation). */
void lincheck_json_object_init(lincheck_json_object *obj);

/* Release the object's scratch memory. */
void lincheck_json_object_fini(lincheck_json_object *obj);

/* Parse text[0..len) as one flat object, optionally surrounded by
 * whitespace (space, tab, CR, LF).
 * Returns 0, LINCHECK_EPARSE with a message "column N: ..." in err, or
 * LINCHECK_ENOMEM. Errors: not an object, nested value, duplicate name, more
 * than LINCHECK_JSON_MAX_FIELDS fields, bad string/number/literal syntax,
 * trailing characters. */
int lincheck_json_parse(lincheck_json_object *obj, const char *text, size_t len, char *err,
                        size_t errlen);

/* The field named `name` (a C string), or NULL. */
const lincheck_json_field *lincheck_json_get(const lincheck_json_object *obj, const char *name);

/* Convert a NUMBER field that is a plain non-negative integer (no sign,
 * fraction or exponent) fitting in uint64_t. Returns 0 or LINCHECK_EINVAL. */
int lincheck_json_u64(const lincheck_json_field *f, uint64_t *out);

#endif
