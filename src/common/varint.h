/*
 * varint.h — protobuf / LEB128 base-128 varints: the encoded length and the writer. Readers
 * stay with their formats (bounds and minimality rules differ).
 */
#ifndef CORD_COMMON_VARINT_H
#define CORD_COMMON_VARINT_H

#include <stddef.h>
#include <stdint.h>

/* Bytes that v takes as a varint (1..10). */
static inline size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Writes v at p (varint_len(v) bytes); returns the end. */
static inline uint8_t *varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

#endif /* CORD_COMMON_VARINT_H */
