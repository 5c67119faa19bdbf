/*
 * mvcc_encode.c — on-disk encodings: etcd revision keys, key_index keys and values,
 * protobuf mvccpb.KeyValue.
 */
#include "mvcc/mvcc_internal.h"

#include "common/varint.h"

#include <openssl/evp.h>
#include <stdlib.h>

size_t mvcc_rev_encode(uint8_t out[MVCC_MARKED_REV_BYTES], int64_t main, int64_t sub,
                       bool tombstone)
{
    assert(main >= 0 && sub >= 0);
    mvcc_put_be64(out, (uint64_t)main);
    out[8] = '_';
    mvcc_put_be64(out + 9, (uint64_t)sub);
    if (tombstone) {
        out[17] = 't';
        return MVCC_MARKED_REV_BYTES;
    }
    return MVCC_REV_BYTES;
}

bool mvcc_rev_decode(const uint8_t *p, size_t len, int64_t *main, int64_t *sub, bool *tombstone)
{
    if (len != MVCC_REV_BYTES && len != MVCC_MARKED_REV_BYTES)
        return false;
    if (p[8] != '_')
        return false;
    if (len == MVCC_MARKED_REV_BYTES && p[17] != 't')
        return false;
    *main = (int64_t)mvcc_get_be64(p);
    *sub = (int64_t)mvcc_get_be64(p + 9);
    *tombstone = len == MVCC_MARKED_REV_BYTES;
    return *main >= 0 && *sub >= 0;
}

size_t mvcc_ikey_part(uint8_t out[MVCC_IKEY_PART_MAX], const uint8_t *key, size_t key_len)
{
    if (key_len <= MVCC_IKEY_SHORT_MAX) {
        if (key_len)
            memcpy(out, key, key_len);
        return key_len;
    }
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (EVP_Digest(key, key_len, digest, &dlen, EVP_sha256(), NULL) != 1 ||
        dlen < MVCC_IKEY_HASH_BYTES)
        abort(); /* SHA-256 of memory we hold cannot fail but for a broken libcrypto */
    memcpy(out, key, MVCC_IKEY_PREFIX_BYTES);
    memcpy(out + MVCC_IKEY_PREFIX_BYTES, digest, MVCC_IKEY_HASH_BYTES);
    return MVCC_IKEY_PART_MAX;
}

size_t mvcc_ikey_encode(uint8_t *out, const uint8_t *part, size_t part_len, int64_t main,
                        int64_t sub)
{
    assert(part_len <= MVCC_IKEY_PART_MAX);
    if (part_len && out != part)
        memmove(out, part, part_len);
    mvcc_put_be64(out + part_len, ~(uint64_t)main);
    mvcc_put_be64(out + part_len + 8, ~(uint64_t)sub);
    return part_len + MVCC_REV_SUFFIX_BYTES;
}

size_t mvcc_ikey_encode_past(uint8_t *out, const uint8_t *part, size_t part_len)
{
    /* ~0 ~0: revision (0, 0) never exists, and it sorts after every real revision */
    return mvcc_ikey_encode(out, part, part_len, 0, 0);
}

int mvcc_ientry_decode(const MDB_val *k, const MDB_val *v, mvcc_ientry *e)
{
    if (k->mv_size < MVCC_REV_SUFFIX_BYTES || v->mv_size < 1)
        return MVCC_ECORRUPT;
    const uint8_t *kp = k->mv_data;
    const uint8_t *vp = v->mv_data;
    e->key = kp;
    e->key_len = k->mv_size - MVCC_REV_SUFFIX_BYTES;
    e->main = (int64_t)~mvcc_get_be64(kp + e->key_len);
    e->sub = (int64_t)~mvcc_get_be64(kp + e->key_len + 8);
    e->tombstone = (vp[0] & MVCC_IFLAG_TOMBSTONE) != 0;
    if (e->tombstone) {
        e->create = e->version = e->lease = 0;
        return MVCC_OK;
    }
    if (v->mv_size != MVCC_IVAL_LIVE_BYTES)
        return MVCC_ECORRUPT;
    e->create = (int64_t)mvcc_get_be64(vp + 1);
    e->version = (int64_t)mvcc_get_be64(vp + 9);
    e->lease = (int64_t)mvcc_get_be64(vp + 17);
    return MVCC_OK;
}

int mvcc_ikey_cmp(const MDB_val *a, const MDB_val *b)
{
    const uint8_t *ap = a->mv_data;
    const uint8_t *bp = b->mv_data;
    /* Every stored and searched key has the 16-byte suffix; be total anyway. */
    size_t as = a->mv_size >= MVCC_REV_SUFFIX_BYTES ? MVCC_REV_SUFFIX_BYTES : 0;
    size_t bs = b->mv_size >= MVCC_REV_SUFFIX_BYTES ? MVCC_REV_SUFFIX_BYTES : 0;
    size_t al = a->mv_size - as;
    size_t bl = b->mv_size - bs;
    int c = mvcc_bytes_cmp(ap, al, bp, bl);
    if (c != 0)
        return c;
    return mvcc_bytes_cmp(ap + al, as, bp + bl, bs);
}

/* ---- protobuf: mvccpb.KeyValue {1 key, 2 create_revision, 3 mod_revision, 4 version,
 *      5 value, 6 lease}; proto3, zero fields omitted, ascending field order (gogoproto). */

size_t mvcc_kvpb_size(const mvcc_kv *kv)
{
    size_t n = 0;
    if (kv->key.len)
        n += 1 + varint_len(kv->key.len) + kv->key.len;
    if (kv->create_revision)
        n += 1 + varint_len((uint64_t)kv->create_revision);
    if (kv->mod_revision)
        n += 1 + varint_len((uint64_t)kv->mod_revision);
    if (kv->version)
        n += 1 + varint_len((uint64_t)kv->version);
    if (kv->value.len)
        n += 1 + varint_len(kv->value.len) + kv->value.len;
    if (kv->lease)
        n += 1 + varint_len((uint64_t)kv->lease);
    return n;
}

void mvcc_kvpb_encode(const mvcc_kv *kv, uint8_t *out)
{
    uint8_t *p = out;
    if (kv->key.len) {
        *p++ = 0x0a;
        p = varint_put(p, kv->key.len);
        memcpy(p, kv->key.data, kv->key.len);
        p += kv->key.len;
    }
    if (kv->create_revision) {
        *p++ = 0x10;
        p = varint_put(p, (uint64_t)kv->create_revision);
    }
    if (kv->mod_revision) {
        *p++ = 0x18;
        p = varint_put(p, (uint64_t)kv->mod_revision);
    }
    if (kv->version) {
        *p++ = 0x20;
        p = varint_put(p, (uint64_t)kv->version);
    }
    if (kv->value.len) {
        *p++ = 0x2a;
        p = varint_put(p, kv->value.len);
        memcpy(p, kv->value.data, kv->value.len);
        p += kv->value.len;
    }
    if (kv->lease) {
        *p++ = 0x30;
        p = varint_put(p, (uint64_t)kv->lease);
    }
    assert((size_t)(p - out) == mvcc_kvpb_size(kv));
}

static bool varint_get(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    const uint8_t *p = *pp;
    for (int shift = 0; shift < 64; shift += 7) {
        if (p >= end)
            return false;
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *pp = p;
            *out = v;
            return true;
        }
    }
    return false;
}

bool mvcc_kvpb_decode(const uint8_t *p, size_t len, mvcc_kv *kv)
{
    const uint8_t *end = p + len;
    memset(kv, 0, sizeof(*kv));
    while (p < end) {
        uint64_t tag, v;
        if (!varint_get(&p, end, &tag))
            return false;
        unsigned field = (unsigned)(tag >> 3);
        unsigned wire = (unsigned)(tag & 7);
        if (wire == 0) {
            if (!varint_get(&p, end, &v))
                return false;
            switch (field) {
            case 2:
                kv->create_revision = (int64_t)v;
                break;
            case 3:
                kv->mod_revision = (int64_t)v;
                break;
            case 4:
                kv->version = (int64_t)v;
                break;
            case 6:
                kv->lease = (int64_t)v;
                break;
            default:
                break; /* unknown field: skipped */
            }
        } else if (wire == 2) {
            if (!varint_get(&p, end, &v) || v > (uint64_t)(end - p))
                return false;
            if (field == 1) {
                kv->key.data = p;
                kv->key.len = (size_t)v;
            } else if (field == 5) {
                kv->value.data = p;
                kv->value.len = (size_t)v;
            }
            p += v;
        } else if (wire == 1) {
            if (end - p < 8)
                return false;
            p += 8;
        } else if (wire == 5) {
            if (end - p < 4)
                return false;
            p += 4;
        } else {
            return false;
        }
    }
    return true;
}
