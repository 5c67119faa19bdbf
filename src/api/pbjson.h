/*
 * pbjson.h — JSON <-> protobuf-c messages, driven by the message descriptors (reflection).
 *
 * The mapping is the one etcd's JSON gateway uses: grpc-gateway v1's default marshaler
 * `runtime.JSONPb{OrigName: true}` (golang/protobuf jsonpb, EmitDefaults false,
 * EnumsAsInts false), which etcd 3.4 registers for every content type:
 *
 *   - Field names are the .proto names ("range_end", "create_revision", "cluster_id",
 *     "peerURLs"). On input both the .proto name and the lowerCamelCase JSON name
 *     ("rangeEnd") are accepted, as jsonpb does.
 *   - Fields holding their default value (0, false, "", empty bytes, empty repeated, NULL
 *     message, enum value 0) are omitted on output. A member of a oneof is emitted whenever
 *     it is the one set, even with a zero value. A set sub-message is emitted even when
 *     empty ("header":{}).
 *   - int64, sint64, sfixed64, uint64, fixed64: JSON strings on output ("revision":"5"); a
 *     string or a number on input. 32-bit integers: numbers on output, number or string
 *     on input. Integers are plain digits with an optional '-' and must be in range: 1.0,
 *     1e3 and "1e3" are rejected, as etcd's gateway rejects them.
 *   - bytes: standard base64 with padding on output; on input standard or URL-safe base64,
 *     padding optional (etcd's gateway insists on standard, padded base64: cord accepts
 *     more).
 *   - Enums: the value's name on output ("DESCEND"; a number not in the enum is written as a
 *     number); a name or a JSON number on input (a quoted number such as "1" is rejected,
 *     as jsonpb does: "unknown value").
 *   - float/double: numbers written as Go's encoding/json writes them (shortest digits,
 *     exponent only below 1e-6 or from 1e21); "NaN", "Infinity", "-Infinity" as strings.
 *   - Strings are escaped as Go's encoding/json does (HTML-safe: <, >, & as \u003c, \u003e,
 *     \u0026; U+2028/2029 escaped; invalid UTF-8 replaced by U+FFFD).
 *   - null for a field means "not set". Unknown fields are ignored (etcd 3.4's gateway
 *     ignores them too) unless PBJSON_DECODE_REJECT_UNKNOWN is given. A field given twice: the last
 * wins; setting a second member of a oneof replaces the first.
 *   - Output is compact (no whitespace), fields in field-number order, which for etcd's
 *     messages is jsonpb's order.
 * Maps (map<,>) and the well-known types (Any, Timestamp, wrappers, ...) get no special
 * treatment: etcd's API uses none of them.
 *
 * Memory: a decoded message is allocated with malloc (protobuf-c's default allocator), so
 * pbjson_message_free() (= protobuf_c_message_free_unpacked(m, NULL)) frees it. Encoded
 * text is malloc'ed and NUL-terminated; free it with pbjson_free().
 */
#ifndef CORD_API_PBJSON_H
#define CORD_API_PBJSON_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    PBJSON_OK = 0,
    PBJSON_ESYNTAX = -1,  /* not JSON (bad token, unterminated string, trailing garbage) */
    PBJSON_ETYPE = -2,    /* valid JSON of the wrong shape for the field (string for a bool,
                             object for a repeated field, bad base64, unknown enum name) */
    PBJSON_ERANGE = -3,   /* a number out of the field's range or not integral */
    PBJSON_EUNKNOWN = -4, /* unknown field name (only with PBJSON_DECODE_REJECT_UNKNOWN) */
    PBJSON_EDEPTH = -5,   /* nesting deeper than PBJSON_MAX_DEPTH */
    PBJSON_ENOMEM = -6,   /* malloc failed */
    PBJSON_EINVAL = -7,   /* bad arguments (NULL descriptor, message without descriptor) */
};

/* Objects and arrays nest at most this deep (bounds the recursion on hostile input). */
#define PBJSON_MAX_DEPTH 100

/* Decode flags. */
#define PBJSON_DECODE_REJECT_UNKNOWN 0x1u /* unknown field names are PBJSON_EUNKNOWN */

/* Encode flags. */
#define PBJSON_ENCODE_EMIT_DEFAULTS 0x1u /* jsonpb EmitDefaults: every field, null messages */
#define PBJSON_ENCODE_ENUMS_AS_INTS 0x2u /* jsonpb EnumsAsInts */
#define PBJSON_ENCODE_JSON_NAMES    0x4u /* lowerCamelCase names (OrigName false) */

/* Takes a message descriptor and `len` bytes of JSON text (need not be NUL-terminated; a
 * UTF-8 BOM is not accepted). The text must be one JSON object, optionally surrounded by
 * whitespace. On success stores a new message in *out (free with pbjson_message_free) and
 * returns PBJSON_OK. On failure returns a PBJSON_E* code, leaves *out NULL and, when `err`
 * is not NULL, writes a NUL-terminated message (truncated to errlen) saying what and where
 * (byte offset), e.g. "offset 12: field \"limit\": expected an integer". */
int pbjson_decode(const ProtobufCMessageDescriptor *desc, const char *json, size_t len,
                  ProtobufCMessage **out, char *err, size_t errlen);

/* pbjson_decode with PBJSON_DECODE_* flags. */
int pbjson_decode_ex(const ProtobufCMessageDescriptor *desc, const char *json, size_t len,
                     unsigned flags, ProtobufCMessage **out, char *err, size_t errlen);

/* Frees a message from pbjson_decode (or protobuf_c_message_unpack with a NULL allocator).
 * NULL is ignored. */
void pbjson_message_free(ProtobufCMessage *msg);

/* Takes a message. On success stores in *out a malloc'ed, NUL-terminated JSON text, in
 * *len its length (without the NUL; `len` may be NULL) and returns PBJSON_OK.
 * Errors: PBJSON_EINVAL (NULL message), PBJSON_EDEPTH, PBJSON_ENOMEM. */
int pbjson_encode(const ProtobufCMessage *msg, char **out, size_t *len);

/* pbjson_encode with PBJSON_ENCODE_* flags. */
int pbjson_encode_ex(const ProtobufCMessage *msg, unsigned flags, char **out, size_t *len);

/* Frees text from pbjson_encode. NULL is ignored. */
void pbjson_free(char *text);

/* Takes a PBJSON_E* code; returns a fixed description. Never NULL. */
const char *pbjson_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif /* CORD_API_PBJSON_H */
