/*
 * mvcc_test.c — unit tests of the MVCC store, one behaviour per test, read like etcd's
 * documented semantics.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "mvcc/mvcc.h"
#include "mvcc/mvcc_internal.h"

#include "common/crc32c.h"
#include "common/failpoint.h"
#include "mvcc_testutil.h"

/* ------------------------------------------------------------------------------------------ */
/* fixture                                                                                      */

typedef struct fx {
    char *dir;
    mvcc_store *s;
    mvcc_arena a;
    mvcc_options opts;
} fx;

static void fx_open(fx *f)
{
    cord_error err;
    int rc = mvcc_open(f->dir, &f->opts, &f->s, &err);
    if (rc)
        fail_msg("mvcc_open: %s", err.msg);
}

static void fx_reopen(fx *f)
{
    mvcc_close(f->s);
    f->s = NULL;
    fx_open(f);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    f->dir = mvt_tmpdir("mvcc");
    mvcc_arena_init(&f->a, 0);
    fx_open(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    mvcc_close(f->s);
    mvcc_arena_reset(&f->a);
    mvt_rmrf(f->dir);
    free(f);
    return 0;
}

#define B(s) mvt_b(s)

static int64_t put(fx *f, const char *k, const char *v)
{
    mvcc_put_req req = {.key = B(k), .value = B(v)};
    mvcc_put_resp resp;
    cord_error err;
    int rc = mvcc_put(f->s, &f->a, &req, &resp, &err);
    if (rc)
        fail_msg("put %s: %s", k, err.msg);
    return resp.revision;
}

static int64_t put_lease(fx *f, const char *k, const char *v, int64_t lease)
{
    mvcc_put_req req = {.key = B(k), .value = B(v), .lease = lease};
    mvcc_put_resp resp;
    cord_error err;
    int rc = mvcc_put(f->s, &f->a, &req, &resp, &err);
    if (rc)
        fail_msg("put %s: %s", k, err.msg);
    return resp.revision;
}

static int64_t del(fx *f, const char *k, const char *end, int64_t *deleted)
{
    mvcc_delete_req req = {.key = B(k), .range_end = end ? B(end) : (mvcc_bytes){0}};
    mvcc_delete_resp resp;
    cord_error err;
    int rc = mvcc_delete_range(f->s, &f->a, &req, &resp, &err);
    if (rc)
        fail_msg("delete %s: %s", k, err.msg);
    if (deleted)
        *deleted = resp.deleted;
    return resp.revision;
}

/* Range into resp; returns the rc. */
static int rng(fx *f, mvcc_range_req *req, mvcc_range_resp *resp)
{
    cord_error err;
    return mvcc_range(f->s, &f->a, req, resp, &err);
}

/* Gets a single key at rev; returns true when found. */
static bool get(fx *f, const char *k, int64_t rev, mvcc_kv *out)
{
    mvcc_range_req req = {.key = B(k), .revision = rev};
    mvcc_range_resp resp;
    int rc = rng(f, &req, &resp);
    assert_int_equal(rc, MVCC_OK);
    if (resp.kvs_len == 0)
        return false;
    assert_int_equal(resp.kvs_len, 1);
    assert_int_equal(resp.count, 1);
    if (out)
        *out = resp.kvs[0];
    return true;
}

static int64_t cur_rev(fx *f)
{
    mvcc_status st;
    assert_int_equal(mvcc_status_get(f->s, &st, NULL), MVCC_OK);
    return st.current_revision;
}

static void compact_all(fx *f, int64_t rev)
{
    cord_error err;
    int rc = mvcc_compact(f->s, rev, &err);
    if (rc)
        fail_msg("compact %lld: %s", (long long)rev, err.msg);
    bool done = false;
    while (!done)
        assert_int_equal(mvcc_compact_step(f->s, &done, NULL), MVCC_OK);
}

/* ------------------------------------------------------------------------------------------ */
/* encodings                                                                                    */

static void test_encodings(void **state)
{
    (void)state;
    /* mvccpb.KeyValue{Key:"foo", CreateRevision:2, ModRevision:2, Version:1, Value:"bar"} as
     * gogoproto marshals it */
    static const uint8_t want[] = {0x0a, 0x03, 'f',  'o',  'o',  0x10, 0x02, 0x18,
                                   0x02, 0x20, 0x01, 0x2a, 0x03, 'b',  'a',  'r'};
    mvcc_kv kv = {
        .key = B("foo"), .create_revision = 2, .mod_revision = 2, .version = 1, .value = B("bar")};
    uint8_t buf[64];
    assert_int_equal(mvcc_kvpb_size(&kv), sizeof(want));
    mvcc_kvpb_encode(&kv, buf);
    assert_memory_equal(buf, want, sizeof(want));
    mvcc_kv back;
    assert_true(mvcc_kvpb_decode(buf, sizeof(want), &back));
    assert_true(mvt_eq(back.key, "foo") && mvt_eq(back.value, "bar"));
    assert_int_equal(back.version, 1);
    kv.lease = 0x694d71ddacfda227; /* a typical etcd lease id: 9-byte varint */
    size_t n = mvcc_kvpb_size(&kv);
    mvcc_kvpb_encode(&kv, buf);
    assert_true(mvcc_kvpb_decode(buf, n, &back));
    assert_true(back.lease == kv.lease);

    uint8_t rb[MVCC_MARKED_REV_BYTES];
    assert_int_equal(mvcc_rev_encode(rb, 5, 2, false), 17);
    static const uint8_t rwant[] = {0, 0, 0, 0, 0, 0, 0, 5, '_', 0, 0, 0, 0, 0, 0, 0, 2, 't'};
    assert_memory_equal(rb, rwant, 17);
    assert_int_equal(mvcc_rev_encode(rb, 5, 2, true), 18);
    assert_memory_equal(rb, rwant, 18);

    assert_int_equal(crc32c_extend(0, "123456789", 9), 0xE3069283u);
    uint32_t h = crc32c_extend(0, "12345", 5);
    assert_int_equal(crc32c_extend(h, "6789", 4), 0xE3069283u);

    /* key_index ordering: by user key (a prefix first), then newest revision first */
    uint8_t a[64], b[64];
    MDB_val va = {mvcc_ikey_encode(a, (const uint8_t *)"a", 1, 5, 0), a};
    MDB_val vb = {mvcc_ikey_encode(b, (const uint8_t *)"a", 1, 3, 0), b};
    assert_true(mvcc_ikey_cmp(&va, &vb) < 0);
    vb.mv_size = mvcc_ikey_encode(b, (const uint8_t *)"a\0", 2, 9, 0);
    assert_true(mvcc_ikey_cmp(&va, &vb) < 0);
    vb.mv_size = mvcc_ikey_encode(b, (const uint8_t *)"b", 1, 1, 0);
    assert_true(mvcc_ikey_cmp(&va, &vb) < 0);
}

static void test_errors_and_grpc(void **state)
{
    (void)state;
    const char *msg;
    assert_string_equal(mvcc_strerror(MVCC_ECOMPACTED),
                        "mvcc: required revision has been compacted");
    assert_string_equal(mvcc_strerror(MVCC_EFUTURE),
                        "mvcc: required revision is a future revision");
    assert_int_equal(mvcc_grpc_status(MVCC_ECOMPACTED, &msg), 11);
    assert_string_equal(msg, "etcdserver: mvcc: required revision has been compacted");
    assert_int_equal(mvcc_grpc_status(MVCC_ENOSPACE, &msg), 8);
    assert_string_equal(msg, "etcdserver: mvcc: database space exceeded");
    assert_int_equal(mvcc_grpc_status(MVCC_EDUPKEY, &msg), 3);
    assert_string_equal(msg, "etcdserver: duplicate key given in txn request");
    assert_int_equal(mvcc_grpc_status(MVCC_ETOOMANYOPS, &msg), 3);
    assert_string_equal(msg, "etcdserver: too many operations in txn request");
    assert_int_equal(mvcc_grpc_status(MVCC_ELEASENOTFOUND, &msg), 5);
    assert_string_equal(msg, "etcdserver: requested lease not found");
}

/* ------------------------------------------------------------------------------------------ */
/* store basics                                                                                 */

static void test_open_new_store(void **state)
{
    fx *f = *state;
    mvcc_status st;
    assert_int_equal(mvcc_status_get(f->s, &st, NULL), MVCC_OK);
    assert_int_equal(st.current_revision, 1);
    assert_int_equal(st.compact_revision, 0);
    assert_int_equal(st.applied_index, 0);
    assert_false(st.alarm_nospace);
    assert_true(st.map_size_bytes >= st.quota_bytes);
    struct stat sb;
    assert_int_equal(stat(f->dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    char path[4096];
    snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/lock.mdb", f->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* empty store: range at revision 1 works, 2 is the future */
    mvcc_range_req req = {.key = B("a"), .revision = 1};
    mvcc_range_resp resp;
    assert_int_equal(rng(f, &req, &resp), MVCC_OK);
    assert_int_equal(resp.revision, 1);
    req.revision = 2;
    assert_int_equal(rng(f, &req, &resp), MVCC_EFUTURE);
}

/* Resident kB of this process's mappings of `path` (smaps). */
/* Walks /proc/self/smaps over the mappings of `path`: the sum of their Rss (kB), and whether
 * each one's VmFlags holds every flag of `flags` (space-separated two-letter names). */
static long map_scan(const char *path, const char *flags, bool *all_flagged)
{
    FILE *f = fopen("/proc/self/smaps", "re");
    assert_non_null(f);
    char line[4096];
    bool in = false;
    long kb = 0;
    int maps = 0, flagged = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx ", &a, &b) == 2) {
            size_t n = strlen(line);
            while (n && (line[n - 1] == '\n' || line[n - 1] == ' '))
                line[--n] = 0;
            in = n >= strlen(path) && strcmp(line + n - strlen(path), path) == 0;
            maps += in;
        } else if (in && strncmp(line, "Rss:", 4) == 0) {
            kb += atol(line + 4);
        } else if (in && flags && strncmp(line, "VmFlags:", 8) == 0) {
            bool all = true;
            for (const char *p = flags; *p; p += 3) {
                char tok[5] = {' ', p[0], p[1], 0, 0};
                char *at = strstr(line + 7, tok);
                all = all && at && (at[3] == ' ' || at[3] == '\n');
                if (!p[2])
                    break;
            }
            flagged += all;
        }
    }
    fclose(f);
    if (all_flagged)
        *all_flagged = maps > 0 && flagged == maps;
    return kb;
}

static long mapped_kb(const char *path)
{
    return map_scan(path, NULL, NULL);
}

/* The map is advised MADV_NOHUGEPAGE ("nh") and MADV_RANDOM ("rr"), also after it grows:
 * otherwise the kernel reads around faults into folios of up to 2 MiB and maps them whole. */
static bool map_is_small_pages(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    bool ok = false;
    map_scan(path, "nh rr", &ok);
    return ok;
}

static void test_map_small_pages(void **state)
{
    fx *f = *state;
    assert_true(map_is_small_pages(f->dir));
    mvcc_close(f->s);
    f->opts.write_map = true;
    f->opts.no_sync = true;
    fx_open(f);
    assert_true(map_is_small_pages(f->dir));
    put(f, "k", "v");
    assert_true(map_is_small_pages(f->dir));
}

/* release_above_bytes: past the bound, a thread of the store unmaps its pages (they stay in
 * the page cache: everything reads back). */
static void test_release_thread(void **state)
{
    fx *f = *state;
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", f->dir);
    char *big = malloc(64 * 1024);
    memset(big, 'r', 64 * 1024 - 1);
    big[64 * 1024 - 1] = 0;
    /* without the thread the written pages stay mapped (MDB_WRITEMAP) */
    mvcc_close(f->s);
    f->opts.write_map = true;
    f->opts.no_sync = true;
    f->opts.release_above_bytes = 0;
    fx_open(f);
    char k[32];
    for (int i = 0; i < 128; i++) {
        snprintf(k, sizeof k, "r%03d", i);
        put(f, k, big);
    }
    long before = mapped_kb(path);
    assert_true(before >= 4 * 1024); /* 8 MiB written through the map */
    usleep(300 * 1000);
    assert_true(mapped_kb(path) >= 4 * 1024);
    assert_int_equal(mvcc_release_count(f->s), 0);
    /* with it (any file mapping counts, so a bound of 1 byte releases at every check) */
    mvcc_close(f->s);
    f->opts.release_above_bytes = 1;
    fx_open(f);
    for (int i = 0; i < 128; i++) {
        snprintf(k, sizeof k, "s%03d", i);
        put(f, k, big);
    }
    for (int tries = 0; tries < 50 && mvcc_release_count(f->s) < 2; tries++)
        usleep(50 * 1000);
    assert_true(mvcc_release_count(f->s) >= 2);
    assert_true(mapped_kb(path) < 1024);
    /* nothing was lost: every value reads back */
    mvcc_kv kv;
    for (int i = 0; i < 128; i++) {
        snprintf(k, sizeof k, "s%03d", i);
        assert_true(get(f, k, 0, &kv));
        assert_int_equal(kv.value.len, 64 * 1024 - 1);
        assert_true(memcmp(kv.value.data, big, kv.value.len) == 0);
    }
    fx_reopen(f); /* the thread stops and starts with the store */
    assert_true(get(f, "r127", 0, &kv));
    assert_int_equal(kv.value.len, 64 * 1024 - 1);
    free(big);
}

static void test_put_revisions(void **state)
{
    fx *f = *state;
    assert_int_equal(put(f, "a", "1"), 2);
    assert_int_equal(put(f, "a", "2"), 3);
    assert_int_equal(put(f, "b", "x"), 4);
    mvcc_kv kv;
    assert_true(get(f, "a", 0, &kv));
    assert_true(mvt_eq(kv.value, "2"));
    assert_int_equal(kv.create_revision, 2);
    assert_int_equal(kv.mod_revision, 3);
    assert_int_equal(kv.version, 2);
    assert_true(get(f, "a", 2, &kv));
    assert_true(mvt_eq(kv.value, "1"));
    assert_int_equal(kv.version, 1);
    assert_false(get(f, "b", 3, NULL));
    mvcc_range_req req = {.key = B("a"), .revision = 5};
    mvcc_range_resp resp;
    cord_error err;
    assert_int_equal(mvcc_range(f->s, &f->a, &req, &resp, &err), MVCC_EFUTURE);
    assert_int_equal(err.code, MVCC_EFUTURE);
    assert_string_equal(err.msg, "mvcc: required revision is a future revision");
    req.revision = 0;
    assert_int_equal(rng(f, &req, &resp), MVCC_OK);
    assert_int_equal(resp.revision, 4);
    /* empty key */
    req.key = B("");
    assert_int_equal(rng(f, &req, &resp), MVCC_EEMPTYKEY);
    mvcc_put_req p = {.key = B("")};
    mvcc_put_resp pr;
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &pr, &err), MVCC_EEMPTYKEY);
    assert_string_equal(err.msg, "etcdserver: key is not provided");
}

static void test_delete_tombstone(void **state)
{
    fx *f = *state;
    put(f, "a", "1"); /* 2 */
    put(f, "a", "2"); /* 3 */
    int64_t n = -1;
    assert_int_equal(del(f, "a", NULL, &n), 4);
    assert_int_equal(n, 1);
    assert_false(get(f, "a", 0, NULL));
    assert_true(get(f, "a", 3, NULL));
    /* deleting nothing does not bump the revision */
    assert_int_equal(del(f, "a", NULL, &n), 4);
    assert_int_equal(n, 0);
    assert_int_equal(del(f, "zzz", NULL, &n), 4);
    assert_int_equal(cur_rev(f), 4);
    /* re-created key starts a new generation */
    assert_int_equal(put(f, "a", "3"), 5);
    mvcc_kv kv;
    assert_true(get(f, "a", 0, &kv));
    assert_int_equal(kv.create_revision, 5);
    assert_int_equal(kv.version, 1);
    /* prev_kv and range delete */
    put(f, "b1", "x"); /* 6 */
    put(f, "b2", "y"); /* 7 */
    mvcc_delete_req dr = {.key = B("b"), .range_end = B("c"), .prev_kv = true};
    mvcc_delete_resp resp;
    assert_int_equal(mvcc_delete_range(f->s, &f->a, &dr, &resp, NULL), MVCC_OK);
    assert_int_equal(resp.deleted, 2);
    assert_int_equal(resp.revision, 8);
    assert_int_equal(resp.prev_kvs_len, 2);
    assert_true(mvt_eq(resp.prev_kvs[0].key, "b1") && mvt_eq(resp.prev_kvs[0].value, "x"));
    assert_true(mvt_eq(resp.prev_kvs[1].key, "b2") && mvt_eq(resp.prev_kvs[1].value, "y"));
    assert_int_equal(resp.prev_kvs[1].mod_revision, 7);
    /* both tombstones share revision 8 with sub-revisions 0 and 1 */
    mvcc_events_req er = {.key = B("b"), .range_end = B("c"), .start_revision = 8};
    mvcc_events_resp ev;
    assert_int_equal(mvcc_events(f->s, &f->a, &er, &ev, NULL), MVCC_OK);
    assert_int_equal(ev.events_len, 2);
    assert_int_equal(ev.events[0].type, MVCC_EVENT_DELETE);
    assert_int_equal(ev.events[0].kv.mod_revision, 8);
    assert_true(mvt_eq(ev.events[1].kv.key, "b2"));
}

static void test_range_forms(void **state)
{
    fx *f = *state;
    const char *keys[] = {"a", "ab", "abc", "abd", "b", "b\xff", "c"};
    for (size_t i = 0; i < 7; i++)
        put(f, keys[i], keys[i]); /* revisions 2..8 */
    mvcc_range_resp resp;
    mvcc_range_req req = {.key = B("ab"), .range_end = B("ac")}; /* prefix "ab" */
    assert_int_equal(rng(f, &req, &resp), MVCC_OK);
    assert_int_equal(resp.kvs_len, 3);
    assert_int_equal(resp.count, 3);
    assert_true(mvt_eq(resp.kvs[0].key, "ab") && mvt_eq(resp.kvs[2].key, "abd"));
    /* from key: range_end "\0" */
    req = (mvcc_range_req){.key = B("b"), .range_end = {(const uint8_t *)"", 1}};
    assert_int_equal(rng(f, &req, &resp), MVCC_OK);
    assert_int_equal(resp.kvs_len, 3);
    assert_true(mvt_eq(resp.kvs[2].key, "c"));
    /* all keys: key "\0", range_end "\0" */
    req = (mvcc_range_req){.key = {(const uint8_t *)"", 1}, .range_end = {(const uint8_t *)"", 1}};
    assert_int_equal(rng(f, &req, &resp), MVCC_OK);
    assert_int_equal(resp.count, 7);
    /* range_end <= key: nothing */
    req = (mvcc_range_req){.key = B("b"), .range_end = B("a")};
    assert_int_equal(rng(f, &req, &resp), MVCC_OK);
    assert_int_equal(resp.count, 0);
    assert_int_equal(resp.kvs_len, 0);
    /* limit and more; count is the whole range */
    req = (mvcc_range_req){.key = B("a"), .range_end = B("z"), .limit = 2};
    assert_int_equal(rng(f, &req, &resp), MVCC_OK);
    assert_int_equal(resp.kvs_len, 2);
    assert_true(resp.more);
    assert_int_equal(resp.count, 7);
    req.limit = 7;
    assert_int_equal(rng(f, &req, &resp), MVCC_OK);
    assert_false(resp.more);
    /* keys_only, count_only */
    req = (mvcc_range_req){.key = B("a"), .range_end = B("b"), .keys_only = true};
    assert_int_equal(rng(f, &req, &resp), MVCC_OK);
    assert_int_equal(resp.kvs_len, 4);
    assert_int_equal(resp.kvs[1].value.len, 0);
    assert_int_equal(resp.kvs[1].version, 1);
    req.keys_only = false;
    req.count_only = true;
    assert_int_equal(rng(f, &req, &resp), MVCC_OK);
    assert_int_equal(resp.kvs_len, 0);
    assert_int_equal(resp.count, 4);
    /* at a past revision: only the first 3 keys existed at revision 4 */
    req = (mvcc_range_req){.key = B("a"), .range_end = B("z"), .revision = 4};
    assert_int_equal(rng(f, &req, &resp), MVCC_OK);
    assert_int_equal(resp.count, 3);
    assert_int_equal(resp.revision, 8);
    /* a key longer than any stored key as range start */
    char longkey[600];
    memset(longkey, 'a', sizeof(longkey) - 1);
    longkey[599] = 0;
    req = (mvcc_range_req){.key = B(longkey), .range_end = B("b")};
    assert_int_equal(rng(f, &req, &resp), MVCC_OK);
    assert_int_equal(resp.count, 3); /* "ab", "abc", "abd" > "aaa..."; "a" < it */
}

static void test_range_sort_and_filters(void **state)
{
    fx *f = *state;
    put(f, "k1", "c"); /* 2 */
    put(f, "k2", "a"); /* 3 */
    put(f, "k3", "b"); /* 4 */
    put(f, "k1", "d"); /* 5: k1 version 2, mod 5 */
    put(f, "k2", "e"); /* 6 */
    put(f, "k2", "f"); /* 7: k2 version 3 */
    mvcc_range_resp resp;
    mvcc_range_req req = {.key = B("k"), .range_end = B("l")};
    struct {
        mvcc_sort_order order;
        mvcc_sort_target target;
        const char *want; /* first chars of keys' last digit */
    } cases[] = {
        {MVCC_SORT_ASCEND, MVCC_SORT_KEY, "123"},     {MVCC_SORT_DESCEND, MVCC_SORT_KEY, "321"},
        {MVCC_SORT_ASCEND, MVCC_SORT_VERSION, "312"}, {MVCC_SORT_DESCEND, MVCC_SORT_VERSION, "213"},
        {MVCC_SORT_ASCEND, MVCC_SORT_CREATE, "123"},  {MVCC_SORT_DESCEND, MVCC_SORT_CREATE, "321"},
        {MVCC_SORT_ASCEND, MVCC_SORT_MOD, "312"},     {MVCC_SORT_DESCEND, MVCC_SORT_MOD, "213"},
        {MVCC_SORT_ASCEND, MVCC_SORT_VALUE, "312"},   {MVCC_SORT_DESCEND, MVCC_SORT_VALUE, "213"},
        {MVCC_SORT_NONE, MVCC_SORT_VALUE, "312"}, /* NONE + non-key target: ascending */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        req.sort_order = cases[i].order;
        req.sort_target = cases[i].target;
        req.keys_only = cases[i].target == MVCC_SORT_VALUE; /* sorted by value, values dropped */
        assert_int_equal(rng(f, &req, &resp), MVCC_OK);
        assert_int_equal(resp.kvs_len, 3);
        for (size_t j = 0; j < 3; j++)
            assert_int_equal(resp.kvs[j].key.data[1], cases[i].want[j]);
        if (req.keys_only)
            assert_int_equal(resp.kvs[0].value.len, 0);
    }
    /* sorting with limit: sort everything, then cut; more says so */
    req = (mvcc_range_req){.key = B("k"),
                           .range_end = B("l"),
                           .limit = 1,
                           .sort_order = MVCC_SORT_DESCEND,
                           .sort_target = MVCC_SORT_MOD};
    assert_int_equal(rng(f, &req, &resp), MVCC_OK);
    assert_int_equal(resp.kvs_len, 1);
    assert_true(mvt_eq(resp.kvs[0].key, "k2"));
    assert_true(resp.more);
    assert_int_equal(resp.count, 3);
    /* etcd quirk kept: order NONE with a non-key target fetches limit+1 keys in key order,
     * then sorts those ascending and cuts */
    req = (mvcc_range_req){
        .key = B("k"), .range_end = B("l"), .limit = 1, .sort_target = MVCC_SORT_VERSION};
    assert_int_equal(rng(f, &req, &resp), MVCC_OK);
    assert_int_equal(resp.kvs_len, 1);
    assert_true(mvt_eq(resp.kvs[0].key, "k1")); /* {k1 v2, k2 v3} sorted: k1 first */
    assert_true(resp.more);
    /* filters */
    req = (mvcc_range_req){.key = B("k"), .range_end = B("l"), .min_mod_revision = 5};
    assert_int_equal(rng(f, &req, &resp), MVCC_OK);
    assert_int_equal(resp.kvs_len, 2);
    assert_int_equal(resp.count, 3); /* count ignores filters */
    req = (mvcc_range_req){.key = B("k"), .range_end = B("l"), .max_mod_revision = 5};
    assert_int_equal(rng(f, &req, &resp), MVCC_OK);
    assert_int_equal(resp.kvs_len, 2);
    req = (mvcc_range_req){
        .key = B("k"), .range_end = B("l"), .min_create_revision = 3, .max_create_revision = 3};
    assert_int_equal(rng(f, &req, &resp), MVCC_OK);
    assert_int_equal(resp.kvs_len, 1);
    assert_true(mvt_eq(resp.kvs[0].key, "k2"));
    req = (mvcc_range_req){.key = B("k"), .range_end = B("l"), .min_mod_revision = 5, .limit = 1};
    assert_int_equal(rng(f, &req, &resp), MVCC_OK);
    assert_int_equal(resp.kvs_len, 1);
    assert_true(resp.more);
    /* bad sort options */
    req = (mvcc_range_req){.key = B("k"), .sort_order = (mvcc_sort_order)7};
    assert_int_equal(rng(f, &req, &resp), MVCC_EINVAL);
}

static bool lease_1_or_2(void *ctx, int64_t lease)
{
    (void)ctx;
    return lease == 1 || lease == 2;
}

static void test_put_options(void **state)
{
    fx *f = *state;
    f->opts.lease_exists = lease_1_or_2;
    fx_reopen(f);
    mvcc_put_resp resp;
    cord_error err;
    mvcc_put_req p = {.key = B("a"), .value = B("1"), .lease = 1};
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &resp, &err), MVCC_OK);
    /* prev_kv */
    p = (mvcc_put_req){.key = B("a"), .value = B("2"), .lease = 1, .prev_kv = true};
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &resp, &err), MVCC_OK);
    assert_non_null(resp.prev_kv);
    assert_true(mvt_eq(resp.prev_kv->value, "1"));
    assert_int_equal(resp.prev_kv->mod_revision, 2);
    p = (mvcc_put_req){.key = B("new"), .value = B("x"), .prev_kv = true};
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &resp, &err), MVCC_OK);
    assert_null(resp.prev_kv);
    /* ignore_value keeps the value, takes the new lease */
    p = (mvcc_put_req){.key = B("a"), .ignore_value = true, .lease = 2};
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &resp, &err), MVCC_OK);
    mvcc_kv kv;
    assert_true(get(f, "a", 0, &kv));
    assert_true(mvt_eq(kv.value, "2"));
    assert_int_equal(kv.lease, 2);
    assert_int_equal(kv.version, 3);
    /* ignore_lease keeps the lease */
    p = (mvcc_put_req){.key = B("a"), .value = B("3"), .ignore_lease = true};
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &resp, &err), MVCC_OK);
    assert_true(get(f, "a", 0, &kv));
    assert_true(mvt_eq(kv.value, "3"));
    assert_int_equal(kv.lease, 2);
    /* errors, none of which writes */
    int64_t before = cur_rev(f);
    p = (mvcc_put_req){.key = B("a"), .value = B("v"), .ignore_value = true};
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &resp, &err), MVCC_EVALUEPROVIDED);
    assert_string_equal(err.msg, "etcdserver: value is provided");
    p = (mvcc_put_req){.key = B("a"), .lease = 1, .ignore_lease = true};
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &resp, &err), MVCC_ELEASEPROVIDED);
    assert_string_equal(err.msg, "etcdserver: lease is provided");
    p = (mvcc_put_req){.key = B("missing"), .ignore_value = true};
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &resp, &err), MVCC_EKEYNOTFOUND);
    assert_string_equal(err.msg, "etcdserver: key not found");
    p = (mvcc_put_req){.key = B("missing"), .value = B("x"), .ignore_lease = true};
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &resp, &err), MVCC_EKEYNOTFOUND);
    p = (mvcc_put_req){.key = B("x"), .value = B("x"), .lease = 3};
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &resp, &err), MVCC_ELEASENOTFOUND);
    assert_string_equal(err.msg, "etcdserver: requested lease not found");
    /* keys are limited as values are */
    size_t max = MVCC_DEFAULT_MAX_VALUE_BYTES;
    char *big = malloc(max + 2);
    memset(big, 'k', max + 1);
    big[max + 1] = 0;
    p = (mvcc_put_req){.key = B(big), .value = B("x")};
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &resp, &err), MVCC_ETOOLARGE);
    assert_non_null(strstr(err.msg, "key of 2097153 bytes"));
    big[max] = 0; /* exactly the limit works */
    p.key = B(big);
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &resp, &err), MVCC_OK);
    assert_true(get(f, big, 0, NULL));
    assert_int_equal(cur_rev(f), before + 1);
    free(big);
}

static void test_leases(void **state)
{
    fx *f = *state;
    put_lease(f, "x1", "a", 7);
    put_lease(f, "x2", "b", 7);
    put_lease(f, "x3", "c", 8);
    put_lease(f, "x3", "c2", 7); /* moves to 7 */
    put(f, "x4", "d");
    mvcc_bytes *keys;
    size_t n;
    bool more;
    assert_int_equal(mvcc_lease_keys(f->s, &f->a, 7, 0, &keys, &n, &more, NULL), MVCC_OK);
    assert_int_equal(n, 3);
    assert_true(mvt_eq(keys[0], "x1") && mvt_eq(keys[2], "x3"));
    assert_int_equal(mvcc_lease_keys(f->s, &f->a, 8, 0, &keys, &n, &more, NULL), MVCC_OK);
    assert_int_equal(n, 0);
    assert_int_equal(mvcc_lease_keys(f->s, &f->a, 7, 2, &keys, &n, &more, NULL), MVCC_OK);
    assert_int_equal(n, 2);
    assert_true(more);
    del(f, "x2", NULL, NULL); /* detaches */
    assert_int_equal(mvcc_lease_keys(f->s, &f->a, 7, 0, &keys, &n, &more, NULL), MVCC_OK);
    assert_int_equal(n, 2);
    int64_t rev = cur_rev(f);
    mvcc_delete_resp dr;
    assert_int_equal(mvcc_lease_revoke(f->s, &f->a, 7, true, &dr, NULL), MVCC_OK);
    assert_int_equal(dr.deleted, 2);
    assert_int_equal(dr.revision, rev + 1);
    assert_int_equal(dr.prev_kvs_len, 2);
    assert_true(mvt_eq(dr.prev_kvs[1].value, "c2"));
    assert_false(get(f, "x1", 0, NULL));
    assert_false(get(f, "x3", 0, NULL));
    assert_true(get(f, "x4", 0, NULL));
    assert_int_equal(mvcc_lease_keys(f->s, &f->a, 7, 0, &keys, &n, &more, NULL), MVCC_OK);
    assert_int_equal(n, 0);
    /* revoking an empty lease changes nothing */
    assert_int_equal(mvcc_lease_revoke(f->s, &f->a, 7, false, &dr, NULL), MVCC_OK);
    assert_int_equal(dr.deleted, 0);
    assert_int_equal(cur_rev(f), rev + 1);
}

/* A key of `n` bytes: `head` then `fill` up to n (NUL-terminated; heap, free it). */
static char *mkkey(const char *head, char fill, size_t n)
{
    char *k = malloc(n + 1);
    size_t h = strlen(head);
    memcpy(k, head, h < n ? h : n);
    if (n > h)
        memset(k + h, fill, n - h);
    k[n] = 0;
    return k;
}

static void test_long_keys(void **state)
{
    fx *f = *state;
    /* one group (the same first MVCC_IKEY_PREFIX_BYTES bytes): keys stored as they are and
     * hashed ones, put in an order that is neither key nor hash order */
    size_t P = MVCC_IKEY_PREFIX_BYTES;
    char *k[6];
    k[0] = mkkey("g/", 'x', 8000);                /* hashed */
    k[1] = mkkey("g/", 'x', P + 1);               /* as is */
    k[2] = mkkey("g/", 'x', MVCC_IKEY_PART_MAX);  /* the shortest hashed */
    k[3] = mkkey("g/", 'x', MVCC_IKEY_SHORT_MAX); /* the longest as is */
    k[4] = mkkey("g/", 'x', 600);
    k[5] = mkkey("g/", 'x', P); /* the group's prefix: not in the group */
    int put_order[6] = {4, 0, 2, 5, 1, 3};
    for (int i = 0; i < 6; i++)
        put(f, k[put_order[i]], "first");
    int key_order[6] = {5, 1, 3, 2, 4, 0}; /* by length: they share every byte */
    /* single gets return the full key */
    for (int i = 0; i < 6; i++) {
        mvcc_kv kv;
        assert_true(get(f, k[i], 0, &kv));
        assert_true(mvt_eq(kv.key, k[i]));
    }
    char *absent = mkkey("g/", 'x', 700);
    assert_false(get(f, absent, 0, NULL));
    /* a prefix range lists them in key order, with values */
    mvcc_range_req rq = {.key = B("g/"), .range_end = B("g0")};
    mvcc_range_resp rr;
    assert_int_equal(rng(f, &rq, &rr), MVCC_OK);
    assert_int_equal(rr.count, 6);
    for (int i = 0; i < 6; i++)
        assert_true(mvt_eq(rr.kvs[i].key, k[key_order[i]]));
    /* a start inside the group, an end inside the group */
    rq = (mvcc_range_req){.key = B(k[3]), .range_end = B(k[4])};
    assert_int_equal(rng(f, &rq, &rr), MVCC_OK);
    assert_int_equal(rr.count, 2); /* k[3], k[2] */
    assert_true(mvt_eq(rr.kvs[0].key, k[3]) && mvt_eq(rr.kvs[1].key, k[2]));
    /* limit and descending order */
    rq = (mvcc_range_req){
        .key = B("g/"), .range_end = B("g0"), .limit = 2, .sort_order = MVCC_SORT_DESCEND};
    assert_int_equal(rng(f, &rq, &rr), MVCC_OK);
    assert_int_equal(rr.kvs_len, 2);
    assert_true(rr.more);
    assert_true(mvt_eq(rr.kvs[0].key, k[0]) && mvt_eq(rr.kvs[1].key, k[4]));
    /* from a key */
    rq = (mvcc_range_req){.key = B(k[2]), .range_end = {(const uint8_t *)"", 1}, .keys_only = true};
    assert_int_equal(rng(f, &rq, &rr), MVCC_OK);
    assert_int_equal(rr.count, 3);
    assert_true(mvt_eq(rr.kvs[0].key, k[2]) && mvt_eq(rr.kvs[2].key, k[0]));
    /* an old revision of a hashed key */
    int64_t r1 = cur_rev(f);
    put(f, k[0], "second");
    mvcc_kv kv;
    assert_true(get(f, k[0], r1, &kv));
    assert_true(mvt_eq(kv.value, "first"));
    assert_true(get(f, k[0], 0, &kv));
    assert_true(mvt_eq(kv.value, "second"));
    assert_int_equal(kv.version, 2);
    /* leases: listed and revoked by full key */
    put_lease(f, k[2], "l", 9);
    put_lease(f, k[1], "l", 9);
    mvcc_bytes *keys;
    size_t n;
    bool more;
    assert_int_equal(mvcc_lease_keys(f->s, &f->a, 9, 0, &keys, &n, &more, NULL), MVCC_OK);
    assert_int_equal(n, 2);
    assert_true((mvt_eq(keys[0], k[1]) && mvt_eq(keys[1], k[2])) ||
                (mvt_eq(keys[0], k[2]) && mvt_eq(keys[1], k[1])));
    mvcc_delete_resp dr;
    assert_int_equal(mvcc_lease_revoke(f->s, &f->a, 9, true, &dr, NULL), MVCC_OK);
    assert_int_equal(dr.deleted, 2);
    assert_false(get(f, k[2], 0, NULL));
    assert_false(get(f, k[1], 0, NULL));
    assert_int_equal(mvt_db_entries(f->s, "lease_keys"), 0);
    /* compaction drops the hashed keys' old revisions and the tombstones (below C) */
    put(f, "z", "z");
    assert_int_equal(mvcc_compact(f->s, cur_rev(f), NULL), MVCC_OK);
    bool done = false;
    while (!done)
        assert_int_equal(mvcc_compact_step(f->s, &done, NULL), MVCC_OK);
    assert_int_equal(mvt_db_entries(f->s, "key_index"), 5); /* k[0], k[3], k[4], k[5], z */
    assert_int_equal(mvt_db_entries(f->s, "key"), 5);
    assert_true(get(f, k[0], 0, &kv));
    assert_true(mvt_eq(kv.value, "second"));
    /* a range delete across the group, with prev kvs, after a reopen */
    fx_reopen(f);
    mvcc_delete_req dq = {.key = B(k[3]), .range_end = B("g0"), .prev_kv = true};
    assert_int_equal(mvcc_delete_range(f->s, &f->a, &dq, &dr, NULL), MVCC_OK);
    assert_int_equal(dr.deleted, 3);
    assert_true(mvt_eq(dr.prev_kvs[0].key, k[3]) && mvt_eq(dr.prev_kvs[2].key, k[0]));
    rq = (mvcc_range_req){.key = B("g/"), .range_end = B("g0")};
    assert_int_equal(rng(f, &rq, &rr), MVCC_OK);
    assert_int_equal(rr.count, 1);
    assert_true(mvt_eq(rr.kvs[0].key, k[5]));
    for (int i = 0; i < 6; i++)
        free(k[i]);
    free(absent);
}

/* Sets the store's format record (the store must be idle). */
static void set_format(fx *f, uint64_t v)
{
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_txn_begin(mvcc_env(f->s), NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    uint8_t b[8];
    mvcc_put_be64(b, v);
    MDB_val k = {strlen("format_version"), "format_version"}, val = {8, b};
    assert_int_equal(mdb_put(txn, dbi, &k, &val, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
}

/* A store of format 1 (keys of up to 495 bytes stored as they are) opens as format 2 unless
 * it holds a key of exactly 495 bytes, which format 2 stores hashed. */
static void test_format_1_upgrade(void **state)
{
    fx *f = *state;
    put(f, "a", "1");
    set_format(f, 1);
    fx_reopen(f);
    assert_true(get(f, "a", 0, NULL));
    mvcc_close(f->s);
    f->s = NULL;
    /* what it wrote back is format 2: a format 2 store with a 495-byte key opens */
    fx_open(f);
    char *k = mkkey("k", 'k', MVCC_IKEY_PART_MAX);
    put(f, k, "v");
    fx_reopen(f);
    assert_true(get(f, k, 0, NULL));
    /* the same bytes read as format 1 would be a 495-byte key stored as is: refused */
    set_format(f, 1);
    mvcc_close(f->s);
    f->s = NULL;
    cord_error err;
    assert_int_equal(mvcc_open(f->dir, &f->opts, &f->s, &err), MVCC_ECORRUPT);
    assert_non_null(strstr(err.msg, "keys of exactly 495 bytes"));
    assert_null(f->s);
    free(k);
}

/* ------------------------------------------------------------------------------------------ */
/* txn                                                                                          */

static mvcc_request_op op_put(const char *k, const char *v)
{
    mvcc_request_op op = {.type = MVCC_OP_PUT};
    op.put = (mvcc_put_req){.key = B(k), .value = B(v)};
    return op;
}

static mvcc_request_op op_get(const char *k)
{
    mvcc_request_op op = {.type = MVCC_OP_RANGE};
    op.range = (mvcc_range_req){.key = B(k)};
    return op;
}

static mvcc_request_op op_del(const char *k, const char *end)
{
    mvcc_request_op op = {.type = MVCC_OP_DELETE_RANGE};
    op.delete_range = (mvcc_delete_req){.key = B(k)};
    if (end)
        op.delete_range.range_end = (mvcc_bytes){(const uint8_t *)end, end[0] ? strlen(end) : 1};
    return op;
}

static mvcc_request_op op_txn(const mvcc_txn_req *t)
{
    mvcc_request_op op = {.type = MVCC_OP_TXN};
    op.txn = t;
    return op;
}

static void test_txn_compare_and_branches(void **state)
{
    fx *f = *state;
    put(f, "a", "1"); /* 2 */
    put(f, "b", "2"); /* 3 */
    mvcc_compare cmp[] = {
        {.result = MVCC_CMP_EQUAL, .target = MVCC_CMP_VALUE, .key = B("a"), .value = B("1")},
        {.result = MVCC_CMP_GREATER, .target = MVCC_CMP_MOD, .key = B("b"), .number = 2},
    };
    mvcc_request_op succ[] = {op_put("a", "10"), op_get("a"), op_put("c", "30")};
    mvcc_request_op fail[] = {op_get("b")};
    mvcc_txn_req t = {cmp, 2, succ, 3, fail, 1};
    mvcc_txn_resp r;
    cord_error err;
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &r, &err), MVCC_OK);
    assert_true(r.succeeded);
    assert_int_equal(r.revision, 4);
    assert_int_equal(r.responses_len, 3);
    assert_int_equal(r.responses[0].type, MVCC_OP_PUT);
    assert_int_equal(r.responses[0].put.revision, 4);
    /* the range sees the txn's own put */
    assert_int_equal(r.responses[1].range.kvs_len, 1);
    assert_true(mvt_eq(r.responses[1].range.kvs[0].value, "10"));
    assert_int_equal(r.responses[1].range.revision, 4);
    assert_int_equal(r.responses[2].put.revision, 4);
    /* sub-revisions 0 and 1 in one main revision */
    mvcc_events_req er = {.key = {(const uint8_t *)"", 1},
                          .range_end = {(const uint8_t *)"", 1},
                          .start_revision = 4};
    mvcc_events_resp ev;
    assert_int_equal(mvcc_events(f->s, &f->a, &er, &ev, NULL), MVCC_OK);
    assert_int_equal(ev.events_len, 2);
    assert_true(mvt_eq(ev.events[0].kv.key, "a") && mvt_eq(ev.events[1].kv.key, "c"));
    /* same txn again: compare fails now, failure branch is read-only: no new revision */
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &r, &err), MVCC_OK);
    assert_false(r.succeeded);
    assert_int_equal(r.revision, 4);
    assert_int_equal(r.responses_len, 1);
    assert_true(mvt_eq(r.responses[0].range.kvs[0].value, "2"));
    assert_int_equal(cur_rev(f), 4);

    /* compares on missing keys: VALUE always fails, others compare with zero */
    mvcc_compare c2 = {
        .result = MVCC_CMP_EQUAL, .target = MVCC_CMP_VERSION, .key = B("nope"), .number = 0};
    mvcc_txn_req t2 = {&c2, 1, NULL, 0, NULL, 0};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t2, &r, &err), MVCC_OK);
    assert_true(r.succeeded);
    c2 = (mvcc_compare){
        .result = MVCC_CMP_NOT_EQUAL, .target = MVCC_CMP_VALUE, .key = B("nope"), .value = B("x")};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t2, &r, &err), MVCC_OK);
    assert_false(r.succeeded);
    c2 = (mvcc_compare){
        .result = MVCC_CMP_EQUAL, .target = MVCC_CMP_CREATE, .key = B("a"), .number = 2};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t2, &r, &err), MVCC_OK);
    assert_true(r.succeeded);
    c2 = (mvcc_compare){
        .result = MVCC_CMP_LESS, .target = MVCC_CMP_LEASE, .key = B("a"), .number = 1};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t2, &r, &err), MVCC_OK);
    assert_true(r.succeeded);
    /* a range compare: every key must satisfy */
    c2 = (mvcc_compare){.result = MVCC_CMP_GREATER,
                        .target = MVCC_CMP_MOD,
                        .key = B("a"),
                        .range_end = B("d"),
                        .number = 2};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t2, &r, &err), MVCC_OK);
    assert_true(r.succeeded); /* a:4 b:3 c:4 */
    c2.number = 3;
    assert_int_equal(mvcc_txn(f->s, &f->a, &t2, &r, &err), MVCC_OK);
    assert_false(r.succeeded);
}

static void test_txn_nested(void **state)
{
    fx *f = *state;
    put(f, "a", "1"); /* 2 */
    /* inner compare sees the state before the outer txn's writes */
    mvcc_compare inner_cmp = {
        .result = MVCC_CMP_EQUAL, .target = MVCC_CMP_VALUE, .key = B("a"), .value = B("1")};
    mvcc_request_op inner_succ[] = {op_put("b", "inner-then")};
    mvcc_request_op inner_fail[] = {op_put("b", "inner-else")};
    mvcc_txn_req inner = {&inner_cmp, 1, inner_succ, 1, inner_fail, 1};
    mvcc_request_op outer_succ[] = {op_put("a", "2"), op_txn(&inner), op_get("b")};
    mvcc_txn_req outer = {NULL, 0, outer_succ, 3, NULL, 0};
    mvcc_txn_resp r;
    cord_error err;
    assert_int_equal(mvcc_txn(f->s, &f->a, &outer, &r, &err), MVCC_OK);
    assert_true(r.succeeded);
    assert_int_equal(r.revision, 3);
    assert_int_equal(r.responses[1].type, MVCC_OP_TXN);
    assert_true(r.responses[1].txn->succeeded);
    assert_int_equal(r.responses[1].txn->revision, 0); /* as etcd: nested header is empty */
    assert_int_equal(r.responses[1].txn->responses[0].put.revision, 3);
    assert_true(mvt_eq(r.responses[2].range.kvs[0].value, "inner-then"));
    mvcc_kv kv;
    assert_true(get(f, "b", 0, &kv));
    assert_int_equal(kv.mod_revision, 3);
    /* a read-only nested txn works without writes */
    mvcc_request_op ro_ops[] = {op_get("a")};
    mvcc_txn_req ro_inner = {NULL, 0, ro_ops, 1, NULL, 0};
    mvcc_request_op ro_outer_ops[] = {op_txn(&ro_inner)};
    mvcc_txn_req ro_outer = {NULL, 0, ro_outer_ops, 1, NULL, 0};
    assert_true(mvcc_txn_is_readonly(&ro_outer));
    assert_false(mvcc_txn_is_readonly(&outer));
    assert_int_equal(mvcc_txn(f->s, &f->a, &ro_outer, &r, &err), MVCC_OK);
    assert_true(mvt_eq(r.responses[0].txn->responses[0].range.kvs[0].value, "2"));
    assert_int_equal(r.revision, 3);
}

static void test_txn_errors(void **state)
{
    fx *f = *state;
    f->opts.max_txn_ops = 4;
    fx_reopen(f);
    put(f, "a", "1");
    mvcc_txn_resp r;
    cord_error err;
    /* too many ops in one list */
    mvcc_request_op five[] = {op_get("a"), op_get("a"), op_get("a"), op_get("a"), op_get("a")};
    mvcc_txn_req t = {NULL, 0, five, 5, NULL, 0};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &r, &err), MVCC_ETOOMANYOPS);
    assert_string_equal(err.msg, "etcdserver: too many operations in txn request");
    t.success_len = 4;
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &r, &err), MVCC_OK);
    /* nested budget shrinks: outer uses 2, inner may use 2 */
    mvcc_request_op three[] = {op_get("a"), op_get("a"), op_get("a")};
    mvcc_txn_req inner = {NULL, 0, three, 3, NULL, 0};
    mvcc_request_op outer_ops[] = {op_txn(&inner), op_get("a")};
    t = (mvcc_txn_req){NULL, 0, outer_ops, 2, NULL, 0};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &r, &err), MVCC_ETOOMANYOPS);
    inner.success_len = 2;
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &r, &err), MVCC_OK);

    /* duplicate puts */
    mvcc_request_op dup[] = {op_put("x", "1"), op_put("x", "2")};
    t = (mvcc_txn_req){NULL, 0, dup, 2, NULL, 0};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &r, &err), MVCC_EDUPKEY);
    assert_string_equal(err.msg, "etcdserver: duplicate key given in txn request");
    /* put inside a deleted range */
    mvcc_request_op pd[] = {op_del("a", "z"), op_put("m", "1")};
    t = (mvcc_txn_req){NULL, 0, pd, 2, NULL, 0};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &r, &err), MVCC_EDUPKEY);
    /* from-key delete covers everything after its key (cord does not keep etcd's gap) */
    mvcc_request_op pf[] = {op_del("a", ""), op_put("m", "1")};
    t = (mvcc_txn_req){NULL, 0, pf, 2, NULL, 0};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &r, &err), MVCC_EDUPKEY);
    /* overlapping deletes are fine; put outside the range is fine */
    mvcc_request_op dd[] = {op_del("a", "c"), op_del("b", "d"), op_put("e", "1")};
    t = (mvcc_txn_req){NULL, 0, dd, 3, NULL, 0};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &r, &err), MVCC_OK);
    /* put in a nested txn vs delete in the parent */
    mvcc_request_op in_put[] = {op_put("a", "9")};
    mvcc_txn_req in = {NULL, 0, in_put, 1, NULL, 0};
    mvcc_request_op par[] = {op_del("a", NULL), op_txn(&in)};
    t = (mvcc_txn_req){NULL, 0, par, 2, NULL, 0};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &r, &err), MVCC_EDUPKEY);
    /* same key put in then and else of one nested txn is fine */
    mvcc_request_op then_ops[] = {op_put("q", "then")};
    mvcc_request_op else_ops[] = {op_put("q", "else")};
    mvcc_txn_req te = {NULL, 0, then_ops, 1, else_ops, 1};
    mvcc_request_op te_outer[] = {op_txn(&te)};
    t = (mvcc_txn_req){NULL, 0, te_outer, 1, NULL, 0};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &r, &err), MVCC_OK);
    /* but not together with a put of the same key at the parent level */
    mvcc_request_op te_outer2[] = {op_txn(&te), op_put("q", "parent")};
    t = (mvcc_txn_req){NULL, 0, te_outer2, 2, NULL, 0};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &r, &err), MVCC_EDUPKEY);
    /* an empty op */
    mvcc_request_op none[] = {{.type = MVCC_OP_NONE}};
    t = (mvcc_txn_req){NULL, 0, none, 1, NULL, 0};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &r, &err), MVCC_EKEYNOTFOUND);
    /* empty compare key */
    mvcc_compare ec = {.key = B("")};
    t = (mvcc_txn_req){&ec, 1, NULL, 0, NULL, 0};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &r, &err), MVCC_EEMPTYKEY);

    /* checks of the chosen ops happen before any write */
    int64_t before = cur_rev(f);
    mvcc_request_op fut[] = {op_put("w", "1"), op_get("a")};
    fut[1].range.revision = before + 5;
    t = (mvcc_txn_req){NULL, 0, fut, 2, NULL, 0};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &r, &err), MVCC_EFUTURE);
    assert_int_equal(cur_rev(f), before);
    mvcc_request_op ign[] = {op_put("w", "1"), op_put("missing", "")};
    ign[1].put.ignore_value = true;
    t = (mvcc_txn_req){NULL, 0, ign, 2, NULL, 0};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &r, &err), MVCC_EKEYNOTFOUND);
    assert_int_equal(cur_rev(f), before);
    assert_false(get(f, "w", 0, NULL));
    /* ... but only on the branch taken */
    mvcc_compare never = {
        .result = MVCC_CMP_EQUAL, .target = MVCC_CMP_VALUE, .key = B("a"), .value = B("nope")};
    t = (mvcc_txn_req){&never, 1, ign, 2, NULL, 0};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &r, &err), MVCC_OK);
    assert_false(r.succeeded);
    /* compacted range revision */
    put(f, "a", "2");
    compact_all(f, cur_rev(f));
    mvcc_request_op old[] = {op_get("a")};
    old[0].range.revision = 2;
    t = (mvcc_txn_req){NULL, 0, old, 1, NULL, 0};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &r, &err), MVCC_ECOMPACTED);
}

/* ------------------------------------------------------------------------------------------ */
/* batches, applied index, restart                                                              */

static void test_batch_applied_index(void **state)
{
    fx *f = *state;
    cord_error err;
    assert_int_equal(mvcc_batch_begin(f->s, &err), MVCC_OK);
    assert_int_equal(mvcc_batch_begin(f->s, &err), MVCC_EBUSY);
    assert_true(mvcc_batch_is_open(f->s));
    assert_non_null(mvcc_batch_txn(f->s));
    assert_int_equal(put(f, "a", "1"), 2);
    assert_int_equal(put(f, "b", "1"), 3); /* entry 2 sees entry 1 */
    assert_true(get(f, "a", 0, NULL));
    assert_int_equal(mvcc_compact_step(f->s, &(bool){false}, &err), MVCC_EBUSY);
    assert_int_equal(mvcc_batch_commit(f->s, 10, 3, &err), MVCC_OK);
    uint64_t idx, term;
    mvcc_applied(f->s, &idx, &term);
    assert_int_equal(idx, 10);
    assert_int_equal(term, 3);
    /* an aborted batch leaves nothing */
    assert_int_equal(mvcc_batch_begin(f->s, &err), MVCC_OK);
    put(f, "c", "1");
    mvcc_batch_abort(f->s);
    assert_false(get(f, "c", 0, NULL));
    assert_int_equal(cur_rev(f), 3);
    /* the applied index never goes back */
    assert_int_equal(mvcc_batch_begin(f->s, &err), MVCC_OK);
    put(f, "c", "1");
    assert_int_equal(mvcc_batch_commit(f->s, 9, 3, &err), MVCC_EINVAL);
    assert_true(mvcc_batch_is_open(f->s));
    assert_int_equal(mvcc_batch_commit(f->s, 11, 3, &err), MVCC_OK);
    /* restart: same state, same applied index; closing mid-batch loses the batch */
    assert_int_equal(mvcc_batch_begin(f->s, &err), MVCC_OK);
    put(f, "d", "1");
    fx_reopen(f);
    mvcc_applied(f->s, &idx, &term);
    assert_int_equal(idx, 11);
    assert_int_equal(cur_rev(f), 4);
    assert_true(get(f, "c", 0, NULL));
    assert_false(get(f, "d", 0, NULL));
    assert_int_equal(mvcc_batch_commit(f->s, 12, 3, &err), MVCC_EBUSY);
}

/* ------------------------------------------------------------------------------------------ */
/* compaction                                                                                   */

static void test_compaction_semantics(void **state)
{
    fx *f = *state;
    put(f, "a", "1");     /* 2 */
    put(f, "a", "2");     /* 3 */
    put(f, "b", "1");     /* 4 */
    del(f, "b", NULL, 0); /* 5 */
    put(f, "c", "1");     /* 6 */
    del(f, "c", NULL, 0); /* 7 */
    put(f, "a", "3");     /* 8 */
    cord_error err;
    assert_int_equal(mvcc_compact(f->s, 9, &err), MVCC_EFUTURE);
    assert_string_equal(err.msg, "mvcc: required revision is a future revision");
    assert_int_equal(mvt_db_entries(f->s, "key"), 7);
    compact_all(f, 7);
    assert_int_equal(mvcc_compact(f->s, 7, &err), MVCC_ECOMPACTED);
    assert_string_equal(err.msg, "mvcc: required revision has been compacted");
    assert_int_equal(mvcc_compact(f->s, 3, &err), MVCC_ECOMPACTED);
    /* kept: a@3 (newest <= 7), c's tombstone @7 (exactly at the compaction revision), a@8;
     * removed: a@2, b@4 and b's tombstone @5, c@6 */
    assert_int_equal(mvt_db_entries(f->s, "key"), 3);
    assert_int_equal(mvt_db_entries(f->s, "key_index"), 3);
    mvcc_range_req req = {.key = B("a"), .revision = 6};
    mvcc_range_resp resp;
    assert_int_equal(rng(f, &req, &resp), MVCC_ECOMPACTED);
    req.revision = 7;
    assert_int_equal(rng(f, &req, &resp), MVCC_OK);
    assert_true(mvt_eq(resp.kvs[0].value, "2"));
    /* a watcher from revision 7 still sees c's delete */
    mvcc_events_req er = {.key = B("c"), .start_revision = 7};
    mvcc_events_resp ev;
    assert_int_equal(mvcc_events(f->s, &f->a, &er, &ev, NULL), MVCC_OK);
    assert_int_equal(ev.events_len, 1);
    assert_int_equal(ev.events[0].type, MVCC_EVENT_DELETE);
    er.start_revision = 6;
    assert_int_equal(mvcc_events(f->s, &f->a, &er, &ev, &err), MVCC_ECOMPACTED);
    assert_int_equal(ev.compact_revision, 7);
    /* the next compaction removes that tombstone */
    compact_all(f, 8);
    assert_int_equal(mvt_db_entries(f->s, "key"), 1);
    assert_true(get(f, "a", 8, NULL));
    assert_false(get(f, "c", 8, NULL));
    /* a store whose whole history is compacted keeps its revision after restart */
    del(f, "a", NULL, 0); /* 9 */
    put(f, "z", "1");     /* 10 */
    del(f, "z", NULL, 0); /* 11 */
    compact_all(f, 11);
    fx_reopen(f);
    assert_int_equal(cur_rev(f), 11);
    assert_int_equal(put(f, "n", "1"), 12);
}

static void test_compaction_batches_and_resume(void **state)
{
    fx *f = *state;
    f->opts.compact_batch_limit = 10;
    f->opts.no_compact_on_open = true;
    fx_reopen(f);
    assert_int_equal(mvcc_batch_begin(f->s, NULL), MVCC_OK);
    char k[16];
    for (int v = 0; v < 5; v++)
        for (int i = 0; i < 40; i++) {
            snprintf(k, sizeof(k), "k%03d", i);
            put(f, k, v == 4 ? "last" : "old");
        }
    assert_int_equal(mvcc_batch_commit(f->s, 1, 1, NULL), MVCC_OK);
    int64_t rev = cur_rev(f); /* 201 */
    assert_int_equal(rev, 201);
    assert_int_equal(mvcc_compact(f->s, rev, NULL), MVCC_OK);
    mvcc_status st;
    mvcc_status_get(f->s, &st, NULL);
    assert_true(st.compaction_pending);
    assert_int_equal(st.compact_revision, 201);
    bool done = false;
    int steps = 0;
    /* a few steps, then "crash" */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(mvcc_compact_step(f->s, &done, NULL), MVCC_OK);
        steps++;
    }
    assert_false(done);
    long mid = mvt_db_entries(f->s, "key");
    assert_true(mid < 200 && mid > 40);
    /* reads at the compacted revision are right mid-way */
    mvcc_range_req req = {.key = B("k"), .range_end = B("l")};
    mvcc_range_resp resp;
    assert_int_equal(rng(f, &req, &resp), MVCC_OK);
    assert_int_equal(resp.count, 40);
    for (size_t i = 0; i < resp.kvs_len; i++)
        assert_true(mvt_eq(resp.kvs[i].value, "last"));
    fx_reopen(f); /* no_compact_on_open: still pending */
    mvcc_status_get(f->s, &st, NULL);
    assert_true(st.compaction_pending);
    while (!done) {
        assert_int_equal(mvcc_compact_step(f->s, &done, NULL), MVCC_OK);
        steps++;
    }
    /* per key: its first and last revision examined, 4 older ones removed (the ones in
     * between are gone before the walk reaches them): 40 * 6 = 240, at most 10 per step */
    assert_true(steps >= 24);
    assert_int_equal(mvt_db_entries(f->s, "key"), 40);
    assert_int_equal(mvt_db_entries(f->s, "key_index"), 40);
    mvcc_status_get(f->s, &st, NULL);
    assert_false(st.compaction_pending);
    assert_int_equal(st.compact_finished_revision, 201);

    /* by default, open finishes an interrupted compaction */
    for (int i = 0; i < 40; i++) {
        snprintf(k, sizeof(k), "k%03d", i);
        put(f, k, "newer");
    }
    assert_int_equal(mvcc_compact(f->s, cur_rev(f), NULL), MVCC_OK);
    assert_int_equal(mvcc_compact_step(f->s, &done, NULL), MVCC_OK);
    assert_false(done);
    f->opts.no_compact_on_open = false;
    fx_reopen(f);
    mvcc_status_get(f->s, &st, NULL);
    assert_false(st.compaction_pending);
    assert_int_equal(mvt_db_entries(f->s, "key"), 40);
}

static void test_compaction_budget_of_one(void **state)
{
    fx *f = *state;
    f->opts.compact_batch_limit = 1;
    fx_reopen(f);
    char k[16];
    for (int v = 0; v < 3; v++)
        for (int i = 0; i < 10; i++) {
            snprintf(k, sizeof(k), "b%d", i);
            put(f, k, "x");
        }
    del(f, "b0", "b5", NULL);
    assert_int_equal(mvcc_compact(f->s, cur_rev(f), NULL), MVCC_OK);
    bool done = false;
    int steps = 0;
    while (!done && steps < 1000) {
        assert_int_equal(mvcc_compact_step(f->s, &done, NULL), MVCC_OK);
        steps++;
    }
    assert_true(done);
    /* b5..b9 keep their last version; b0..b4's tombstones sit at the compaction revision */
    assert_int_equal(mvt_db_entries(f->s, "key"), 10);
    /* the next compaction removes those tombstones, one unit of work per step */
    put(f, "c", "x");
    compact_all(f, cur_rev(f));
    assert_int_equal(mvt_db_entries(f->s, "key"), 6);
    assert_int_equal(mvt_db_entries(f->s, "key_index"), 6);
}

/* ------------------------------------------------------------------------------------------ */
/* quota                                                                                        */

static void test_quota_nospace(void **state)
{
    fx *f = *state;
    f->opts.quota_bytes = 256 * 1024;
    fx_reopen(f);
    char val[1024];
    memset(val, 'v', sizeof(val) - 1);
    val[sizeof(val) - 1] = 0;
    char k[32];
    cord_error err;
    int i = 0, rc = MVCC_OK;
    for (; i < 10000; i++) {
        snprintf(k, sizeof(k), "key%05d", i);
        mvcc_put_req p = {.key = B(k), .value = B(val)};
        mvcc_put_resp pr;
        rc = mvcc_put(f->s, &f->a, &p, &pr, &err);
        if (rc)
            break;
    }
    assert_int_equal(rc, MVCC_ENOSPACE);
    assert_string_equal(err.msg, "etcdserver: mvcc: database space exceeded");
    assert_true(i > 50);
    int64_t rev = cur_rev(f);
    mvcc_status st;
    mvcc_status_get(f->s, &st, NULL);
    assert_true(st.alarm_nospace);
    assert_true(st.db_size_bytes <= 256 * 1024);
    /* the alarm survives a restart */
    fx_reopen(f);
    mvcc_status_get(f->s, &st, NULL);
    assert_true(st.alarm_nospace);
    /* writes fail, even tiny ones; a txn with puts fails; reads and deletes work */
    mvcc_put_req p = {.key = B("tiny"), .value = B("")};
    mvcc_put_resp pr;
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &pr, &err), MVCC_ENOSPACE);
    mvcc_request_op ops[] = {op_put("tiny", "x")};
    mvcc_txn_req t = {NULL, 0, ops, 1, NULL, 0};
    mvcc_txn_resp tr;
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &tr, &err), MVCC_ENOSPACE);
    assert_int_equal(mvcc_quota_check(f->s, 0, &err), MVCC_ENOSPACE);
    assert_true(get(f, "key00000", 0, NULL));
    int64_t n;
    assert_int_equal(del(f, "key", "kez", &n), rev + 1);
    assert_int_equal(n, i);
    mvcc_request_op dops[] = {op_del("key00000", NULL), op_get("key00001")};
    t = (mvcc_txn_req){NULL, 0, dops, 2, NULL, 0};
    assert_int_equal(mvcc_txn(f->s, &f->a, &t, &tr, &err), MVCC_OK);
    /* operator: compact, defragment, disarm */
    compact_all(f, cur_rev(f));
    uint64_t before = st.db_size_bytes;
    assert_int_equal(mvcc_defrag(f->s, &err), MVCC_OK);
    mvcc_status_get(f->s, &st, NULL);
    assert_true(st.db_size_bytes < before / 2);
    assert_true(st.alarm_nospace); /* defrag alone does not disarm */
    assert_int_equal(mvcc_alarm_disarm(f->s, &err), MVCC_OK);
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &pr, &err), MVCC_OK);
    assert_int_equal(mvcc_quota_check(f->s, 1000, &err), MVCC_OK);
    assert_int_equal(mvcc_quota_check(f->s, 1u << 20, &err), MVCC_ENOSPACE);
    /* the alarm can be raised explicitly (replicated alarm) */
    assert_int_equal(mvcc_alarm_activate(f->s, &err), MVCC_OK);
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &pr, &err), MVCC_ENOSPACE);
}

static void test_quota_in_batch(void **state)
{
    fx *f = *state;
    f->opts.quota_bytes = 128 * 1024;
    fx_reopen(f);
    char val[2048];
    memset(val, 'v', sizeof(val) - 1);
    val[sizeof(val) - 1] = 0;
    assert_int_equal(mvcc_batch_begin(f->s, NULL), MVCC_OK);
    int ok = 0, rc = MVCC_OK;
    for (int i = 0; i < 1000; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        mvcc_put_req p = {.key = B(k), .value = B(val)};
        mvcc_put_resp pr;
        rc = mvcc_put(f->s, &f->a, &p, &pr, NULL);
        if (rc)
            break;
        ok++;
    }
    /* the batch's own growth counts: the quota trips inside one batch, and the batch
     * (with its earlier puts and the alarm) still commits */
    assert_int_equal(rc, MVCC_ENOSPACE);
    assert_true(ok > 10 && ok < 64);
    assert_int_equal(mvcc_batch_commit(f->s, 5, 1, NULL), MVCC_OK);
    mvcc_status st;
    mvcc_status_get(f->s, &st, NULL);
    assert_true(st.alarm_nospace);
    assert_int_equal(st.current_revision, 1 + ok);
}

static void test_map_full_is_nospace(void **state)
{
    fx *f = *state;
    /* quota checks off and a tiny map: LMDB's MAP_FULL must come back as NOSPACE, abort the
     * batch cleanly, raise the alarm and leave the store usable */
    f->opts.quota_bytes = 1u << 20;
    f->opts.map_size_bytes = 1u << 20;
    f->opts.no_quota_check_on_apply = true;
    fx_reopen(f);
    put(f, "before", "1");
    char val[4096];
    memset(val, 'v', sizeof(val) - 1);
    val[sizeof(val) - 1] = 0;
    assert_int_equal(mvcc_batch_begin(f->s, NULL), MVCC_OK);
    int rc = MVCC_OK;
    for (int i = 0; i < 1000 && !rc; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        mvcc_put_req p = {.key = B(k), .value = B(val)};
        mvcc_put_resp pr;
        rc = mvcc_put(f->s, &f->a, &p, &pr, NULL);
    }
    assert_int_equal(rc, MVCC_ENOSPACE);
    mvcc_put_req p = {.key = B("after"), .value = B("x")};
    mvcc_put_resp pr;
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &pr, NULL), MVCC_EBATCH);
    cord_error err;
    assert_int_equal(mvcc_batch_commit(f->s, 7, 1, &err), MVCC_ENOSPACE);
    assert_false(mvcc_batch_is_open(f->s));
    uint64_t idx;
    mvcc_applied(f->s, &idx, NULL);
    assert_int_equal(idx, 0);
    assert_true(get(f, "before", 0, NULL));
    assert_false(get(f, "k0", 0, NULL));
    mvcc_status st;
    mvcc_status_get(f->s, &st, NULL);
    assert_true(st.alarm_nospace);
    assert_true(st.map_size_bytes > (1u << 20));
    assert_true(map_is_small_pages(f->dir)); /* the grown map too */
    del(f, "before", NULL, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* hashes                                                                                       */

static void feed(fx *f, int n)
{
    char k[16], v[16];
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "h%02d", i % 17);
        snprintf(v, sizeof(v), "v%d", i);
        if (i % 7 == 3)
            del(f, k, NULL, NULL);
        else
            put(f, k, v);
    }
}

static void test_hash_kv(void **state)
{
    fx *f = *state;
    fx g = {0};
    g.dir = mvt_tmpdir("mvcc-hash");
    g.opts.compact_batch_limit = 3;
    mvcc_arena_init(&g.a, 0);
    fx_open(&g);
    feed(f, 300);
    feed(&g, 300);
    mvcc_hash_kv_result hf, hg;
    for (int64_t rev = 1; rev <= cur_rev(f); rev += 37) {
        assert_int_equal(mvcc_hash_kv(f->s, rev, &hf, NULL), MVCC_OK);
        assert_int_equal(mvcc_hash_kv(g.s, rev, &hg, NULL), MVCC_OK);
        assert_int_equal(hf.hash, hg.hash);
        assert_int_equal(hf.hash_revision, rev);
    }
    /* f compacts fully, g only part-way: HashKV must not depend on physical progress */
    compact_all(f, 150);
    assert_int_equal(mvcc_compact(g.s, 150, NULL), MVCC_OK);
    bool done = false;
    assert_int_equal(mvcc_compact_step(g.s, &done, NULL), MVCC_OK);
    assert_false(done);
    for (int64_t rev = 150; rev <= cur_rev(f); rev += 13) {
        assert_int_equal(mvcc_hash_kv(f->s, rev, &hf, NULL), MVCC_OK);
        assert_int_equal(mvcc_hash_kv(g.s, rev, &hg, NULL), MVCC_OK);
        assert_int_equal(hf.hash, hg.hash);
        assert_int_equal(hf.compact_revision, 150);
    }
    cord_error err;
    assert_int_equal(mvcc_hash_kv(f->s, 149, &hf, &err), MVCC_ECOMPACTED);
    assert_int_equal(mvcc_hash_kv(f->s, cur_rev(f) + 1, &hf, &err), MVCC_EFUTURE);
    /* whole-store hashes agree once both compactions finished */
    uint32_t a, b;
    int64_t ra, rb;
    assert_int_equal(mvcc_hash(f->s, &a, &ra, NULL), MVCC_OK);
    assert_int_equal(mvcc_hash(g.s, &b, &rb, NULL), MVCC_OK);
    assert_int_not_equal(a, b);
    while (!done)
        assert_int_equal(mvcc_compact_step(g.s, &done, NULL), MVCC_OK);
    assert_int_equal(mvcc_hash(g.s, &b, &rb, NULL), MVCC_OK);
    assert_int_equal(a, b);
    assert_int_equal(ra, rb);
    /* one different write changes both hashes */
    put(f, "extra", "1");
    put(&g, "extra", "2");
    assert_int_equal(mvcc_hash_kv(f->s, 0, &hf, NULL), MVCC_OK);
    assert_int_equal(mvcc_hash_kv(g.s, 0, &hg, NULL), MVCC_OK);
    assert_int_not_equal(hf.hash, hg.hash);
    mvcc_close(g.s);
    mvcc_arena_reset(&g.a);
    mvt_rmrf(g.dir);
}

/* ------------------------------------------------------------------------------------------ */
/* watch history                                                                                */

static void test_events(void **state)
{
    fx *f = *state;
    put(f, "w/a", "1");     /* 2 */
    put(f, "x", "1");       /* 3 */
    put(f, "w/a", "2");     /* 4 */
    del(f, "w/a", NULL, 0); /* 5 */
    put(f, "w/b", "1");     /* 6 */
    mvcc_events_req er = {
        .key = B("w/"), .range_end = B("w0"), .start_revision = 1, .prev_kv = true};
    mvcc_events_resp ev;
    assert_int_equal(mvcc_events(f->s, &f->a, &er, &ev, NULL), MVCC_OK);
    assert_true(ev.complete);
    assert_int_equal(ev.events_len, 4);
    assert_int_equal(ev.events[0].type, MVCC_EVENT_PUT);
    assert_null(ev.events[0].prev_kv);
    assert_int_equal(ev.events[1].kv.version, 2);
    assert_true(mvt_eq(ev.events[1].prev_kv->value, "1"));
    assert_int_equal(ev.events[2].type, MVCC_EVENT_DELETE);
    assert_int_equal(ev.events[2].kv.mod_revision, 5);
    assert_int_equal(ev.events[2].kv.version, 0);
    assert_true(mvt_eq(ev.events[2].prev_kv->value, "2"));
    assert_null(ev.events[3].prev_kv);
    assert_int_equal(ev.next_revision, 7);
    /* paging */
    er.max_events = 1;
    er.prev_kv = false;
    int pages = 0;
    int64_t seen = 0;
    for (;;) {
        assert_int_equal(mvcc_events(f->s, &f->a, &er, &ev, NULL), MVCC_OK);
        seen += (int64_t)ev.events_len;
        pages++;
        if (ev.complete)
            break;
        er.start_revision = ev.next_revision;
        er.start_sub = ev.next_sub;
    }
    assert_int_equal(seen, 4);
    assert_true(pages >= 4);
    /* an end revision */
    er = (mvcc_events_req){
        .key = B("w/"), .range_end = B("w0"), .start_revision = 3, .end_revision = 4};
    assert_int_equal(mvcc_events(f->s, &f->a, &er, &ev, NULL), MVCC_OK);
    assert_int_equal(ev.events_len, 1);
    assert_int_equal(ev.events[0].kv.mod_revision, 4);
}

/* ------------------------------------------------------------------------------------------ */
/* big deletes, arena limits                                                                    */

static void test_large_delete_range(void **state)
{
    fx *f = *state;
    assert_int_equal(mvcc_batch_begin(f->s, NULL), MVCC_OK);
    char k[16];
    for (int i = 0; i < 3000; i++) {
        snprintf(k, sizeof(k), "d%05d", i);
        put_lease(f, k, "v", i % 2 ? 5 : 0);
    }
    assert_int_equal(mvcc_batch_commit(f->s, 1, 1, NULL), MVCC_OK);
    int64_t rev = cur_rev(f);
    mvcc_delete_req dr = {.key = B("d"), .range_end = B("e"), .prev_kv = true};
    mvcc_delete_resp resp;
    assert_int_equal(mvcc_delete_range(f->s, &f->a, &dr, &resp, NULL), MVCC_OK);
    assert_int_equal(resp.deleted, 3000);
    assert_int_equal(resp.revision, rev + 1);
    assert_int_equal(resp.prev_kvs_len, 3000);
    assert_true(mvt_eq(resp.prev_kvs[2999].key, "d02999"));
    mvcc_range_req req = {.key = B("d"), .range_end = B("e"), .count_only = true};
    mvcc_range_resp rr;
    assert_int_equal(rng(f, &req, &rr), MVCC_OK);
    assert_int_equal(rr.count, 0);
    assert_int_equal(mvt_db_entries(f->s, "lease_keys"), 0);
    mvcc_events_req er = {
        .key = B("d"), .range_end = B("e"), .start_revision = rev + 1, .max_events = 5000};
    mvcc_events_resp ev;
    assert_int_equal(mvcc_events(f->s, &f->a, &er, &ev, NULL), MVCC_OK);
    assert_int_equal(ev.events_len, 3000);
}

static void test_arena_limit(void **state)
{
    fx *f = *state;
    char val[4000];
    memset(val, 'v', sizeof(val) - 1);
    val[sizeof(val) - 1] = 0;
    char k[16];
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof(k), "r%02d", i);
        put(f, k, val);
    }
    mvcc_arena small;
    mvcc_arena_init(&small, 16 * 1024);
    mvcc_range_req req = {.key = B("r"), .range_end = B("s")};
    mvcc_range_resp rr;
    cord_error err;
    assert_int_equal(mvcc_range(f->s, &small, &req, &rr, &err), MVCC_ERESULT);
    mvcc_arena_reset(&small);
    req.keys_only = true;
    assert_int_equal(mvcc_range(f->s, &small, &req, &rr, &err), MVCC_OK);
    assert_int_equal(rr.kvs_len, 20);
    mvcc_arena_reset(&small);
    /* a write whose prev_kvs do not fit is still applied in full */
    int64_t rev = cur_rev(f);
    mvcc_delete_req dr = {.key = B("r"), .range_end = B("s"), .prev_kv = true};
    mvcc_delete_resp resp;
    assert_int_equal(mvcc_delete_range(f->s, &small, &dr, &resp, &err), MVCC_ERESULT);
    assert_int_equal(resp.deleted, 20);
    assert_int_equal(cur_rev(f), rev + 1);
    assert_false(get(f, "r00", 0, NULL));
    mvcc_arena_reset(&small);
}

/* ------------------------------------------------------------------------------------------ */
/* snapshots and defrag                                                                         */

static void test_snapshot_restore(void **state)
{
    fx *f = *state;
    assert_int_equal(mvcc_batch_begin(f->s, NULL), MVCC_OK);
    feed(f, 200);
    assert_int_equal(mvcc_batch_commit(f->s, 42, 7, NULL), MVCC_OK);
    char path[4096];
    snprintf(path, sizeof(path), "%s/../%s.snap", f->dir, strrchr(f->dir, '/') + 1);
    FILE *fp = fopen(path, "w+");
    assert_non_null(fp);
    uint64_t idx, term;
    cord_error err;
    assert_int_equal(mvcc_snapshot_write(f->s, fileno(fp), &idx, &term, &err), MVCC_OK);
    fclose(fp);
    assert_int_equal(idx, 42);
    assert_int_equal(term, 7);
    assert_int_equal(mvcc_snapshot_info(path, &idx, &term, &err), MVCC_OK);
    assert_int_equal(idx, 42);
    char path2[4200];
    snprintf(path2, sizeof(path2), "%s.saved", path);
    assert_int_equal(mvcc_snapshot_save(f->s, path2, &idx, &term, &err), MVCC_OK);
    struct stat sb;
    assert_int_equal(stat(path2, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(mvcc_snapshot_info(path2, &idx, &term, &err), MVCC_OK);
    assert_int_equal(idx, 42);
    assert_int_equal(term, 7);
    unlink(path2);
    mvcc_hash_kv_result h1, h2;
    assert_int_equal(mvcc_hash_kv(f->s, 0, &h1, NULL), MVCC_OK);
    /* install into a fresh store */
    fx g = {0};
    g.dir = mvt_tmpdir("mvcc-snap");
    mvcc_arena_init(&g.a, 0);
    fx_open(&g);
    put(&g, "junk", "1");
    assert_int_equal(mvcc_snapshot_restore(g.s, path, &err), MVCC_OK);
    mvcc_applied(g.s, &idx, &term);
    assert_int_equal(idx, 42);
    assert_int_equal(mvcc_hash_kv(g.s, 0, &h2, NULL), MVCC_OK);
    assert_int_equal(h1.hash, h2.hash);
    assert_false(get(&g, "junk", 0, NULL));
    assert_int_equal(cur_rev(&g), cur_rev(f));
    put(&g, "after", "1"); /* usable */
    /* rolling the original back to its own snapshot */
    put(f, "later", "1");
    assert_int_equal(mvcc_snapshot_restore(f->s, path, &err), MVCC_OK);
    assert_false(get(f, "later", 0, NULL));
    /* garbage is rejected and the store keeps working */
    FILE *junk = fopen(path, "w");
    fputs("not an lmdb file at all", junk);
    fclose(junk);
    assert_int_not_equal(mvcc_snapshot_restore(f->s, path, &err), MVCC_OK);
    assert_true(get(f, "h01", 0, NULL) || get(f, "h02", 0, NULL));
    unlink(path);
    mvcc_close(g.s);
    mvcc_arena_reset(&g.a);
    mvt_rmrf(g.dir);
}

static void put_round(fx *f, const char *prefix, int n, int round, uint64_t index)
{
    char k[32], val[600];
    memset(val, 'a' + round % 26, sizeof(val) - 1);
    val[sizeof(val) - 1] = 0;
    assert_int_equal(mvcc_batch_begin(f->s, NULL), MVCC_OK);
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "%s%04d", prefix, i);
        put(f, k, val);
    }
    assert_int_equal(mvcc_batch_commit(f->s, index, 2, NULL), MVCC_OK);
}

/* An image is the state at its opening, byte for byte, however much the store is rewritten
 * (and its freed pages reused) while it is read: its read transaction pins those pages. */
static void test_image_pins_its_state(void **state)
{
    fx *f = *state;
    put_round(f, "i", 300, 0, 10);
    mvcc_hash_kv_result h1, h2;
    assert_int_equal(mvcc_hash_kv(f->s, 0, &h1, NULL), MVCC_OK);
    int64_t rev = cur_rev(f);
    mvcc_image *im = NULL;
    mvcc_image_info info;
    cord_error err;
    assert_int_equal(mvcc_image_open(f->s, 100, &im, &info, &err), MVCC_OK);
    assert_non_null(im);
    assert_int_equal(info.applied_index, 10);
    assert_int_equal(info.applied_term, 2);
    assert_int_equal(info.size % 4096, 0);
    char path[4096];
    snprintf(path, sizeof(path), "%s/../%s.image", f->dir, strrchr(f->dir, '/') + 1);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    char buf[4096];
    uint64_t off = 0;
    for (int round = 1;; round++) {
        size_t got = 0;
        assert_int_equal(mvcc_image_read(im, off, buf, sizeof(buf), &got, &err), MVCC_OK);
        if (got == 0)
            break;
        assert_int_equal(fwrite(buf, 1, got, fp), got);
        off += got;
        /* rewrite every key and drop the old revisions: pages freed now are reused at once
         * unless the image holds them */
        put_round(f, "i", 300, round, 10 + (uint64_t)round);
        if (round % 4 == 0)
            compact_all(f, cur_rev(f));
    }
    fclose(fp);
    assert_int_equal(off, info.size);
    mvcc_image_close(im);
    uint64_t idx = 0, term = 0;
    assert_int_equal(mvcc_snapshot_info(path, &idx, &term, &err), MVCC_OK);
    assert_int_equal(idx, 10);
    fx g = {0};
    g.dir = mvt_tmpdir("mvcc-image");
    mvcc_arena_init(&g.a, 0);
    fx_open(&g);
    assert_int_equal(mvcc_snapshot_restore(g.s, path, &err), MVCC_OK);
    assert_int_equal(mvcc_hash_kv(g.s, 0, &h2, NULL), MVCC_OK);
    assert_int_equal(h1.hash, h2.hash);
    assert_int_equal(cur_rev(&g), rev);
    put(&g, "after", "1"); /* usable */
    mvcc_close(g.s);
    mvcc_arena_reset(&g.a);
    mvt_rmrf(g.dir);
    unlink(path);

    /* the churn left free pages: past max_free_percent no image, but the sizes */
    mvcc_status st;
    assert_int_equal(mvcc_status_get(f->s, &st, NULL), MVCC_OK);
    assert_true(st.db_size_in_use_bytes < st.db_size_bytes);
    assert_int_equal(mvcc_image_open(f->s, 0, &im, &info, &err), MVCC_OK);
    assert_null(im);
    assert_int_equal(info.size, st.db_size_bytes);
    assert_int_equal(info.free_bytes, st.db_size_bytes - st.db_size_in_use_bytes);
    assert_int_equal(info.applied_index, st.applied_index);
    assert_int_equal(mvcc_defrag(f->s, &err), MVCC_OK); /* the lock was let go */
}

/* Four versions of 500 keys "<c>NNNN" (511-byte values of c) in one batch committed at
 * index/term, then all compacted: a store with many free pages to defragment. */
static void fill_then_compact(fx *f, char c, uint64_t index, uint64_t term)
{
    char val[512];
    memset(val, c, sizeof(val) - 1);
    val[sizeof(val) - 1] = 0;
    assert_int_equal(mvcc_batch_begin(f->s, NULL), MVCC_OK);
    char k[16];
    for (int v = 0; v < 4; v++)
        for (int i = 0; i < 500; i++) {
            snprintf(k, sizeof(k), "%c%04d", c, i);
            put(f, k, val);
        }
    assert_int_equal(mvcc_batch_commit(f->s, index, term, NULL), MVCC_OK);
    compact_all(f, cur_rev(f));
}

static void test_defrag_keeps_data(void **state)
{
    fx *f = *state;
    fill_then_compact(f, 'f', 3, 1);
    mvcc_hash_kv_result h1, h2;
    assert_int_equal(mvcc_hash_kv(f->s, 0, &h1, NULL), MVCC_OK);
    mvcc_status st1, st2;
    mvcc_status_get(f->s, &st1, NULL);
    assert_true(st1.db_size_in_use_bytes < st1.db_size_bytes);
    assert_int_equal(mvcc_defrag(f->s, NULL), MVCC_OK);
    mvcc_status_get(f->s, &st2, NULL);
    assert_true(st2.db_size_bytes < st1.db_size_bytes);
    assert_int_equal(mvcc_hash_kv(f->s, 0, &h2, NULL), MVCC_OK);
    assert_int_equal(h1.hash, h2.hash);
    assert_int_equal(st2.applied_index, 3);
    int64_t rev = cur_rev(f);
    assert_int_equal(put(f, "g", "1"), rev + 1);
    char path[4096];
    snprintf(path, sizeof(path), "%s/data.mdb.defrag", f->dir);
    assert_int_not_equal(access(path, F_OK), 0);
}

struct defrag_arg {
    mvcc_store *s;
    uint64_t state;
    int rc;
};

static void *defrag_copy_thread(void *p)
{
    struct defrag_arg *a = p;
    a->rc = mvcc_defrag_copy(a->s, &a->state, NULL);
    return NULL;
}

/* mvcc_defrag_copy on another thread while the owner reads, then mvcc_defrag_install; a copy
 * that a later commit made stale is refused and removed, and the store keeps that commit. */
static void test_defrag_in_two_steps(void **state)
{
    fx *f = *state;
    fill_then_compact(f, 't', 7, 2);
    mvcc_hash_kv_result h1, h2;
    assert_int_equal(mvcc_hash_kv(f->s, 0, &h1, NULL), MVCC_OK);
    mvcc_status st1, st2;
    mvcc_status_get(f->s, &st1, NULL);
    char path[4096];
    snprintf(path, sizeof(path), "%s/data.mdb.defrag", f->dir);

    struct defrag_arg a = {.s = f->s};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, defrag_copy_thread, &a), 0);
    mvcc_kv kv;
    for (int i = 0; i < 200; i++) /* the owner reads meanwhile */
        assert_true(get(f, "t0123", 0, &kv));
    pthread_join(t, NULL);
    assert_int_equal(a.rc, MVCC_OK);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(mvcc_defrag_install(f->s, a.state, NULL), MVCC_OK);
    assert_int_not_equal(access(path, F_OK), 0);
    mvcc_status_get(f->s, &st2, NULL);
    assert_true(st2.db_size_bytes < st1.db_size_bytes);
    assert_int_equal(mvcc_hash_kv(f->s, 0, &h2, NULL), MVCC_OK);
    assert_int_equal(h1.hash, h2.hash);
    assert_int_equal(st2.applied_index, 7);

    /* stale: a put commits between the copy and its install */
    uint64_t st = 0;
    assert_int_equal(mvcc_defrag_copy(f->s, &st, NULL), MVCC_OK);
    int64_t rev = put(f, "after-copy", "1");
    cord_error err;
    assert_int_equal(mvcc_defrag_install(f->s, st, &err), MVCC_EBUSY);
    assert_non_null(strstr(err.msg, "written during"));
    assert_int_not_equal(access(path, F_OK), 0);
    assert_true(get(f, "after-copy", 0, &kv));
    assert_int_equal(kv.mod_revision, rev);

    /* a copy that is not installed is removed */
    assert_int_equal(mvcc_defrag_copy(f->s, &st, NULL), MVCC_OK);
    mvcc_defrag_discard(f->s);
    assert_int_not_equal(access(path, F_OK), 0);
    assert_true(get(f, "after-copy", 0, &kv));
}

static void test_big_values(void **state)
{
    fx *f = *state;
    size_t n = MVCC_DEFAULT_MAX_VALUE_BYTES;
    char *big = malloc(n + 2);
    memset(big, 'b', n + 1);
    big[n + 1] = 0;
    mvcc_put_req p = {.key = B("big"), .value = B(big)};
    mvcc_put_resp pr;
    cord_error err;
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &pr, &err), MVCC_ETOOLARGE);
    big[n] = 0;
    p.value = B(big);
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &pr, &err), MVCC_OK);
    big[0] = 'c';
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &pr, &err), MVCC_OK);
    mvcc_kv kv;
    assert_true(get(f, "big", 0, &kv));
    assert_int_equal(kv.value.len, n);
    assert_int_equal(kv.value.data[0], 'c');
    assert_true(get(f, "big", 2, &kv));
    assert_int_equal(kv.value.data[0], 'b');
    /* ignore_value copies the stored big value into the new revision */
    p = (mvcc_put_req){.key = B("big"), .ignore_value = true, .prev_kv = true};
    assert_int_equal(mvcc_put(f->s, &f->a, &p, &pr, &err), MVCC_OK);
    assert_int_equal(pr.prev_kv->value.len, n);
    assert_true(get(f, "big", 0, &kv));
    assert_int_equal(kv.value.len, n);
    assert_int_equal(kv.value.data[n - 1], 'b');
    assert_int_equal(kv.version, 3);
    compact_all(f, cur_rev(f));
    assert_int_equal(mvt_db_entries(f->s, "key"), 1);
    free(big);
}

static void test_not_a_store(void **state)
{
    (void)state;
    char *dir = mvt_tmpdir("mvcc-bad");
    char path[4096];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    FILE *fp = fopen(path, "w");
    for (int i = 0; i < 4096; i++)
        fputs("garbage!", fp);
    fclose(fp);
    mvcc_store *s = NULL;
    cord_error err;
    int rc = mvcc_open(dir, NULL, &s, &err);
    assert_true(rc == MVCC_ECORRUPT || rc == MVCC_EIO);
    assert_null(s);
    assert_true(strlen(err.msg) > 0);
    mvt_rmrf(dir);
}

/* Runs one apply batch (puts a1..a3, applied index 5) in a child process that crashes at
 * `spec`; returns the child's exit status. */
static int batch_in_child(const char *dir, const char *spec)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (failpoint_configure(spec, NULL) != FAILPOINT_OK)
            _exit(2);
        mvcc_store *s = NULL;
        mvcc_arena a;
        mvcc_arena_init(&a, 0);
        if (mvcc_open(dir, NULL, &s, NULL) || mvcc_batch_begin(s, NULL))
            _exit(3);
        const char *keys[] = {"a1", "a2", "a3"};
        for (int i = 0; i < 3; i++) {
            mvcc_put_req p = {.key = B(keys[i]), .value = B("v")};
            mvcc_put_resp r;
            if (mvcc_put(s, &a, &p, &r, NULL))
                _exit(4);
        }
        int rc = mvcc_batch_commit(s, 5, 1, NULL);
        _exit(rc == MVCC_OK ? 0 : 5);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_crash_points(void **state)
{
    fx *f = *state;
    mvcc_close(f->s);
    f->s = NULL;
    uint64_t idx;
    /* crash before the commit: nothing of the batch, applied index unchanged */
    assert_int_equal(batch_in_child(f->dir, "mvcc-before-commit=crash"), FAILPOINT_CRASH_EXIT_CODE);
    fx_open(f);
    mvcc_applied(f->s, &idx, NULL);
    assert_int_equal(idx, 0);
    assert_false(get(f, "a1", 0, NULL));
    assert_int_equal(cur_rev(f), 1);
    mvcc_close(f->s);
    f->s = NULL;
    /* an injected error before the commit: the caller sees EIO, nothing applied */
    assert_int_equal(batch_in_child(f->dir, "mvcc-before-commit=error(EIO)"), 5);
    /* crash right after the commit: all of it and its applied index survive */
    assert_int_equal(batch_in_child(f->dir, "mvcc-after-commit=crash"), FAILPOINT_CRASH_EXIT_CODE);
    fx_open(f);
    mvcc_applied(f->s, &idx, NULL);
    assert_int_equal(idx, 5);
    assert_true(get(f, "a3", 0, NULL));
    assert_int_equal(cur_rev(f), 4);
    /* a failed swap leaves the old store in place */
    assert_int_equal(failpoint_configure("mvcc-before-swap=error", NULL), FAILPOINT_OK);
    cord_error err;
    assert_int_equal(mvcc_defrag(f->s, &err), MVCC_EIO);
    assert_int_equal(failpoint_configure(NULL, NULL), FAILPOINT_OK);
    assert_true(get(f, "a3", 0, NULL));
    put(f, "after", "1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encodings),
        cmocka_unit_test(test_errors_and_grpc),
        cmocka_unit_test_setup_teardown(test_open_new_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_revisions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_tombstone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_sort_and_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_1_upgrade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_compare_and_branches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_nested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_applied_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction_semantics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction_batches_and_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction_budget_of_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota_nospace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota_in_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_full_is_nospace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hash_kv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_delete_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arena_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_image_pins_its_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defrag_keeps_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defrag_in_two_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_values, setup, teardown),
        cmocka_unit_test(test_not_a_store),
        cmocka_unit_test_setup_teardown(test_release_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_small_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_points, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
