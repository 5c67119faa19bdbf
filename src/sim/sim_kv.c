/*
 * sim_kv.c: the members' state machine, a map of a handful of keys, the
 * encoding of client commands in log entries, and the snapshot format.
 *
 * Command: 'C', request id (8 bytes LE), kind, key, value length, value,
 * expect flag, expect length, expect. Snapshot: for each key, present flag,
 * length, SIM_VALUE_MAX bytes (fixed size, deterministic).
 */
#include "sim/sim.h"

#include <stdlib.h>
#include <string.h>

uint64_t sim_fnv(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t sim_fnv_u64(uint64_t h, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        h ^= (uint8_t)(v >> (8 * i));
        h *= 0x100000001b3ull;
    }
    return h;
}

size_t sim_cmd_encode(const sim_cmd *c, uint8_t *buf)
{
    uint8_t *p = buf;
    *p++ = 'C';
    for (int i = 0; i < 8; i++)
        *p++ = (uint8_t)(c->req >> (8 * i));
    *p++ = c->kind;
    *p++ = c->key;
    *p++ = c->value_len;
    memcpy(p, c->value, c->value_len);
    p += c->value_len;
    *p++ = c->has_expect ? 1 : 0;
    *p++ = c->expect_len;
    memcpy(p, c->expect, c->expect_len);
    p += c->expect_len;
    return (size_t)(p - buf);
}

bool sim_cmd_decode(sim_cmd *c, const uint8_t *buf, size_t len)
{
    memset(c, 0, sizeof(*c));
    if (len < 1 + 8 + 3 + 2 || buf[0] != 'C')
        return false;
    const uint8_t *p = buf + 1, *end = buf + len;
    for (int i = 0; i < 8; i++)
        c->req |= (uint64_t)p[i] << (8 * i);
    p += 8;
    c->kind = *p++;
    c->key = *p++;
    c->value_len = *p++;
    if (c->kind != LINCHECK_WRITE && c->kind != LINCHECK_CAS && c->kind != LINCHECK_DELETE)
        return false;
    if (c->key >= SIM_N_KEYS || c->value_len > SIM_VALUE_MAX || end - p < c->value_len + 2)
        return false;
    memcpy(c->value, p, c->value_len);
    p += c->value_len;
    c->has_expect = *p++ != 0;
    c->expect_len = *p++;
    if (c->expect_len > SIM_VALUE_MAX || end - p != c->expect_len)
        return false;
    memcpy(c->expect, p, c->expect_len);
    return c->req != 0;
}

bool sim_kv_apply(sim_kv *kv, const sim_cmd *c)
{
    uint8_t k = c->key;
    switch (c->kind) {
    case LINCHECK_WRITE:
        kv->present[k] = true;
        kv->len[k] = c->value_len;
        memcpy(kv->val[k], c->value, c->value_len);
        return true;
    case LINCHECK_DELETE:
        kv->present[k] = false;
        kv->len[k] = 0;
        return true;
    case LINCHECK_CAS: {
        bool match;
        if (!c->has_expect)
            match = !kv->present[k];
        else
            match = kv->present[k] && kv->len[k] == c->expect_len &&
                    memcmp(kv->val[k], c->expect, c->expect_len) == 0;
        if (match) {
            kv->present[k] = true;
            kv->len[k] = c->value_len;
            memcpy(kv->val[k], c->value, c->value_len);
        }
        return match;
    }
    default:
        return false;
    }
}

size_t sim_kv_encode(const sim_kv *kv, uint8_t *buf)
{
    uint8_t *p = buf;
    for (int k = 0; k < SIM_N_KEYS; k++) {
        *p++ = kv->present[k] ? 1 : 0;
        *p++ = kv->present[k] ? kv->len[k] : 0;
        memset(p, 0, SIM_VALUE_MAX);
        if (kv->present[k])
            memcpy(p, kv->val[k], kv->len[k]);
        p += SIM_VALUE_MAX;
    }
    return (size_t)(p - buf);
}

bool sim_kv_decode(sim_kv *kv, const uint8_t *buf, size_t len)
{
    memset(kv, 0, sizeof(*kv));
    if (len != SIM_KV_SNAP_BYTES)
        return false;
    const uint8_t *p = buf;
    for (int k = 0; k < SIM_N_KEYS; k++) {
        if (p[0] > 1 || p[1] > SIM_VALUE_MAX)
            return false;
        kv->present[k] = p[0] != 0;
        kv->len[k] = p[1];
        memcpy(kv->val[k], p + 2, SIM_VALUE_MAX);
        p += 2 + SIM_VALUE_MAX;
    }
    return true;
}

uint64_t sim_kv_hash(const sim_kv *kv)
{
    uint64_t h = SIM_FNV_INIT;
    for (int k = 0; k < SIM_N_KEYS; k++) {
        h = sim_fnv_u64(h, kv->present[k] ? 1u + kv->len[k] : 0);
        if (kv->present[k])
            h = sim_fnv(h, kv->val[k], kv->len[k]);
    }
    return h;
}

void sim_snap_clear(sim_snap *s)
{
    free(s->data);
    memset(s, 0, sizeof(*s));
}

void sim_snap_copy(sim_snap *dst, const sim_snap *src)
{
    sim_snap_clear(dst);
    *dst = *src;
    dst->data = NULL;
    if (src->len > 0) {
        dst->data = malloc(src->len);
        if (!dst->data)
            abort();
        memcpy(dst->data, src->data, src->len);
    }
}
