/*
 * watch_size.c — protobuf sizes of events and etcd's fragmenting of large watch responses.
 */
#include "watch/watch.h"

#include "common/varint.h"

/* a length-delimited field with a one-byte tag */
static size_t field_bytes(size_t len)
{
    return 1 + varint_len(len) + len;
}

static size_t int_field(int64_t v)
{
    return v ? 1 + varint_len((uint64_t)v) : 0;
}

static size_t kv_size(const watch_kv *kv)
{
    size_t n = 0;
    if (kv->key.len)
        n += field_bytes(kv->key.len);
    n += int_field(kv->create_revision);
    n += int_field(kv->mod_revision);
    n += int_field(kv->version);
    if (kv->value.len)
        n += field_bytes(kv->value.len);
    n += int_field(kv->lease);
    return n;
}

size_t watch_event_size(const watch_event *ev)
{
    size_t n = 0;
    if (ev->type != WATCH_EVENT_PUT)
        n += 1 + varint_len((uint64_t)ev->type);
    n += field_bytes(kv_size(&ev->kv)); /* kv is always present in etcd's encoding */
    if (ev->prev_kv)
        n += field_bytes(kv_size(ev->prev_kv));
    return n;
}

size_t watch_fragment_split(const watch_event *events, size_t n, size_t base_bytes,
                            size_t limit_bytes, size_t *ends, size_t max_ends)
{
    if (max_ends == 0)
        return 0;
    size_t total = base_bytes;
    for (size_t i = 0; i < n; i++)
        total += field_bytes(watch_event_size(&events[i]));
    if (total < limit_bytes || n < 2) {
        ends[0] = n;
        return 1;
    }
    const size_t frag_flag = 2; /* field 7, varint 1 */
    size_t pieces = 0, idx = 0;
    while (idx < n && pieces < max_ends) {
        size_t size = base_bytes + frag_flag, count = 0;
        while (idx < n) {
            size_t add = field_bytes(watch_event_size(&events[idx]));
            if (count >= 1 && size + add >= limit_bytes)
                break;
            size += add;
            count++;
            idx++;
        }
        ends[pieces++] = idx;
    }
    return pieces;
}
