/*
 * proto_etcd_conv_test.c — etcdserverpb/mvccpb messages <-> mvcc.h structs
 * (src/api/etcd_conv), and one request path end to end: JSON -> protobuf -> mvcc -> protobuf
 * -> JSON on a real store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/etcd_conv.h"
#include "api/pbjson.h"

#define BIN(s) ((ProtobufCBinaryData){.len = sizeof(s) - 1, .data = (uint8_t *)(s)})

static void assert_bytes(mvcc_bytes b, const char *s)
{
    assert_int_equal(b.len, strlen(s));
    if (b.len > 0)
        assert_memory_equal(b.data, s, b.len);
}

static void assert_pb_bytes(ProtobufCBinaryData b, const char *s)
{
    assert_int_equal(b.len, strlen(s));
    if (b.len > 0)
        assert_memory_equal(b.data, s, b.len);
}

static ProtobufCMessage *from_json(const ProtobufCMessageDescriptor *d, const char *json)
{
    ProtobufCMessage *m = NULL;
    char err[200];
    int rc = pbjson_decode(d, json, strlen(json), &m, err, sizeof err);
    if (rc != PBJSON_OK)
        fail_msg("%s: %s", json, err);
    return m;
}

static void assert_json(const ProtobufCMessage *m, const char *want)
{
    char *got = NULL;
    assert_int_equal(pbjson_encode(m, &got, NULL), PBJSON_OK);
    if (strcmp(got, want) != 0)
        fail_msg("got  %s\nwant %s", got, want);
    pbjson_free(got);
    /* the message also packs and unpacks to the same JSON */
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n + 1);
    assert_non_null(buf);
    assert_int_equal(protobuf_c_message_pack(m, buf), n);
    ProtobufCMessage *u = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
    assert_non_null(u);
    assert_int_equal(pbjson_encode(u, &got, NULL), PBJSON_OK);
    assert_string_equal(got, want);
    pbjson_free(got);
    protobuf_c_message_free_unpacked(u, NULL);
    free(buf);
}

/* ------------------------------------------------------------------------------------------ */
/* Requests                                                                                     */

static void test_range_req(void **state)
{
    (void)state;
    Etcdserverpb__RangeRequest in = ETCDSERVERPB__RANGE_REQUEST__INIT;
    in.key = BIN("a");
    in.range_end = BIN("b");
    in.limit = 10;
    in.revision = 7;
    in.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
    in.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE;
    in.serializable = 1;
    in.keys_only = 1;
    in.count_only = 1;
    in.min_mod_revision = 1;
    in.max_mod_revision = 2;
    in.min_create_revision = 3;
    in.max_create_revision = 4;
    mvcc_range_req r;
    etcd_conv_range_req(&in, &r);
    assert_bytes(r.key, "a");
    assert_bytes(r.range_end, "b");
    assert_int_equal(r.limit, 10);
    assert_int_equal(r.revision, 7);
    assert_int_equal(r.sort_order, MVCC_SORT_DESCEND);
    assert_int_equal(r.sort_target, MVCC_SORT_VALUE);
    assert_true(r.keys_only);
    assert_true(r.count_only);
    assert_int_equal(r.min_mod_revision, 1);
    assert_int_equal(r.max_mod_revision, 2);
    assert_int_equal(r.min_create_revision, 3);
    assert_int_equal(r.max_create_revision, 4);
    /* the key is borrowed, not copied */
    assert_ptr_equal(r.key.data, in.key.data);

    Etcdserverpb__RangeRequest empty = ETCDSERVERPB__RANGE_REQUEST__INIT;
    etcd_conv_range_req(&empty, &r);
    assert_int_equal(r.key.len, 0);
    assert_null(r.key.data);
    assert_int_equal(r.range_end.len, 0);
    assert_int_equal(r.sort_order, MVCC_SORT_NONE);
    assert_int_equal(r.sort_target, MVCC_SORT_KEY);
}

static void test_put_delete_req(void **state)
{
    (void)state;
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = BIN("k");
    p.value = BIN("v");
    p.lease = 99;
    p.prev_kv = 1;
    p.ignore_value = 1;
    p.ignore_lease = 1;
    mvcc_put_req pr;
    etcd_conv_put_req(&p, &pr);
    assert_bytes(pr.key, "k");
    assert_bytes(pr.value, "v");
    assert_int_equal(pr.lease, 99);
    assert_true(pr.prev_kv && pr.ignore_value && pr.ignore_lease);

    Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    d.key = BIN("a");
    d.range_end = BIN("\0");
    d.prev_kv = 1;
    mvcc_delete_req dr;
    etcd_conv_delete_req(&d, &dr);
    assert_bytes(dr.key, "a");
    assert_int_equal(dr.range_end.len, 1);
    assert_int_equal(dr.range_end.data[0], 0);
    assert_true(dr.prev_kv);
}

static void test_compare(void **state)
{
    (void)state;
    static const struct {
        int target;
        int ucase;
        int64_t num;
        const char *val;
        int64_t want_num;
        const char *want_val;
    } cases[] = {
        /* the union member matching the target */
        {ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION,
         ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION, 3, NULL, 3, ""},
        {ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE,
         ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION, 4, NULL, 4, ""},
        {ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD,
         ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION, 5, NULL, 5, ""},
        {ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE, ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE, 0,
         "xy", 0, "xy"},
        {ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE, ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE, 6,
         NULL, 6, ""},
        /* another member or none: etcd compares against 0 / empty */
        {ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION,
         ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION, 3, NULL, 0, ""},
        {ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE, ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION,
         3, NULL, 0, ""},
        {ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE, ETCDSERVERPB__COMPARE__TARGET_UNION__NOT_SET,
         0, NULL, 0, ""},
        {ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE, ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE,
         0, "z", 0, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Etcdserverpb__Compare c = ETCDSERVERPB__COMPARE__INIT;
        c.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL;
        c.target = cases[i].target;
        c.key = BIN("key");
        c.range_end = BIN("kez");
        c.target_union_case = cases[i].ucase;
        switch (cases[i].ucase) {
        case ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION:
            c.version = cases[i].num;
            break;
        case ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION:
            c.create_revision = cases[i].num;
            break;
        case ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION:
            c.mod_revision = cases[i].num;
            break;
        case ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE:
            c.lease = cases[i].num;
            break;
        case ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE:
            c.value.data = (uint8_t *)cases[i].val;
            c.value.len = strlen(cases[i].val);
            break;
        default:
            break;
        }
        mvcc_compare m;
        etcd_conv_compare(&c, &m);
        assert_int_equal(m.result, MVCC_CMP_NOT_EQUAL);
        assert_int_equal((int)m.target, cases[i].target);
        assert_bytes(m.key, "key");
        assert_bytes(m.range_end, "kez");
        assert_int_equal(m.number, cases[i].want_num);
        assert_bytes(m.value, cases[i].want_val);
    }
    /* enum values line up with mvcc's */
    assert_int_equal(ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL, MVCC_CMP_EQUAL);
    assert_int_equal(ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER, MVCC_CMP_GREATER);
    assert_int_equal(ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS, MVCC_CMP_LESS);
    assert_int_equal(ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION, MVCC_CMP_VERSION);
    assert_int_equal(ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE, MVCC_CMP_CREATE);
    assert_int_equal(ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD, MVCC_CMP_MOD);
    assert_int_equal(ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE, MVCC_CMP_VALUE);
    assert_int_equal(ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE, MVCC_CMP_LEASE);
    assert_int_equal(ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD, MVCC_SORT_MOD);
    assert_int_equal(ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE, MVCC_SORT_CREATE);
    assert_int_equal(ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VERSION, MVCC_SORT_VERSION);
    assert_int_equal(MVCCPB__EVENT__EVENT_TYPE__DELETE, MVCC_EVENT_DELETE);
}

static const char *TXN_JSON =
    "{\"compare\":["
    "{\"result\":\"GREATER\",\"target\":\"VERSION\",\"key\":\"YQ==\",\"version\":\"1\"},"
    "{\"result\":\"LESS\",\"target\":\"CREATE\",\"key\":\"Yg==\",\"create_revision\":\"7\"},"
    "{\"result\":\"NOT_EQUAL\",\"target\":\"MOD\",\"key\":\"Yw==\",\"mod_revision\":\"3\","
    "\"range_end\":\"ZA==\"},"
    "{\"target\":\"VALUE\",\"key\":\"ZQ==\",\"value\":\"dg==\"},"
    "{\"target\":\"LEASE\",\"key\":\"Zg==\",\"lease\":\"42\"}],"
    "\"success\":["
    "{\"request_put\":{\"key\":\"YQ==\",\"value\":\"MQ==\",\"lease\":\"5\",\"prev_kv\":true}},"
    "{\"request_delete_range\":{\"key\":\"Yg==\",\"range_end\":\"AA==\",\"prev_kv\":true}},"
    "{\"request_txn\":{\"compare\":[{\"key\":\"eA==\",\"target\":\"MOD\",\"mod_revision\":\"2\"}],"
    "\"success\":[{\"request_range\":{\"key\":\"eA==\",\"limit\":\"3\",\"count_only\":true}}],"
    "\"failure\":[{\"request_txn\":{\"success\":[{\"request_put\":{\"key\":\"eQ==\"}}]}}]}},"
    "{}],"
    "\"failure\":[{\"request_range\":{\"key\":\"YQ==\",\"sort_order\":\"ASCEND\"}}]}";

static void test_txn_req(void **state)
{
    (void)state;
    Etcdserverpb__TxnRequest *in =
        (Etcdserverpb__TxnRequest *)from_json(&etcdserverpb__txn_request__descriptor, TXN_JSON);
    mvcc_arena arena;
    mvcc_arena_init(&arena, 0);
    mvcc_txn_req t;
    assert_int_equal(etcd_conv_txn_req(&arena, in, &t), MVCC_OK);

    assert_int_equal(t.compare_len, 5);
    assert_int_equal(t.compare[0].result, MVCC_CMP_GREATER);
    assert_int_equal(t.compare[0].target, MVCC_CMP_VERSION);
    assert_int_equal(t.compare[0].number, 1);
    assert_bytes(t.compare[0].key, "a");
    assert_int_equal(t.compare[1].result, MVCC_CMP_LESS);
    assert_int_equal(t.compare[1].target, MVCC_CMP_CREATE);
    assert_int_equal(t.compare[1].number, 7);
    assert_int_equal(t.compare[2].result, MVCC_CMP_NOT_EQUAL);
    assert_int_equal(t.compare[2].target, MVCC_CMP_MOD);
    assert_int_equal(t.compare[2].number, 3);
    assert_bytes(t.compare[2].range_end, "d");
    assert_int_equal(t.compare[3].result, MVCC_CMP_EQUAL);
    assert_int_equal(t.compare[3].target, MVCC_CMP_VALUE);
    assert_bytes(t.compare[3].value, "v");
    assert_int_equal(t.compare[4].target, MVCC_CMP_LEASE);
    assert_int_equal(t.compare[4].number, 42);

    assert_int_equal(t.success_len, 4);
    assert_int_equal(t.success[0].type, MVCC_OP_PUT);
    assert_bytes(t.success[0].put.key, "a");
    assert_bytes(t.success[0].put.value, "1");
    assert_int_equal(t.success[0].put.lease, 5);
    assert_true(t.success[0].put.prev_kv);
    assert_int_equal(t.success[1].type, MVCC_OP_DELETE_RANGE);
    assert_bytes(t.success[1].delete_range.key, "b");
    assert_int_equal(t.success[1].delete_range.range_end.len, 1);
    assert_true(t.success[1].delete_range.prev_kv);
    assert_int_equal(t.success[2].type, MVCC_OP_TXN);
    const mvcc_txn_req *n1 = t.success[2].txn;
    assert_non_null(n1);
    assert_int_equal(n1->compare_len, 1);
    assert_int_equal(n1->compare[0].target, MVCC_CMP_MOD);
    assert_int_equal(n1->compare[0].number, 2);
    assert_int_equal(n1->success_len, 1);
    assert_int_equal(n1->success[0].type, MVCC_OP_RANGE);
    assert_int_equal(n1->success[0].range.limit, 3);
    assert_true(n1->success[0].range.count_only);
    assert_int_equal(n1->failure_len, 1);
    assert_int_equal(n1->failure[0].type, MVCC_OP_TXN);
    const mvcc_txn_req *n2 = n1->failure[0].txn;
    assert_int_equal(n2->compare_len, 0);
    assert_null(n2->compare);
    assert_int_equal(n2->success_len, 1);
    assert_int_equal(n2->success[0].type, MVCC_OP_PUT);
    assert_bytes(n2->success[0].put.key, "y");
    assert_int_equal(n2->failure_len, 0);
    assert_int_equal(t.success[3].type, MVCC_OP_NONE);
    assert_int_equal(t.failure_len, 1);
    assert_int_equal(t.failure[0].type, MVCC_OP_RANGE);
    assert_int_equal(t.failure[0].range.sort_order, MVCC_SORT_ASCEND);
    assert_false(mvcc_txn_is_readonly(&t));

    /* a single RequestOp */
    mvcc_request_op op;
    assert_int_equal(etcd_conv_request_op(&arena, in->failure[0], &op), MVCC_OK);
    assert_int_equal(op.type, MVCC_OP_RANGE);
    assert_int_equal(etcd_conv_request_op(&arena, NULL, &op), MVCC_OK);
    assert_int_equal(op.type, MVCC_OP_NONE);

    /* arena too small */
    mvcc_arena tiny;
    mvcc_arena_init(&tiny, 64);
    assert_int_equal(etcd_conv_txn_req(&tiny, in, &t), MVCC_ERESULT);
    mvcc_arena_reset(&tiny);

    assert_int_equal(etcd_conv_txn_req(NULL, in, &t), MVCC_EINVAL);
    mvcc_arena_reset(&arena);
    pbjson_message_free(&in->base);
}

static void test_txn_req_depth(void **state)
{
    (void)state;
    /* build ETCD_CONV_MAX_TXN_DEPTH + 1 levels by hand (no JSON depth limit in the way) */
    size_t levels = ETCD_CONV_MAX_TXN_DEPTH + 1;
    Etcdserverpb__TxnRequest *txns = calloc(levels, sizeof *txns);
    Etcdserverpb__RequestOp *ops = calloc(levels, sizeof *ops);
    Etcdserverpb__RequestOp **ptrs = calloc(levels, sizeof *ptrs);
    assert_non_null(txns);
    assert_non_null(ops);
    assert_non_null(ptrs);
    for (size_t i = 0; i < levels; i++) {
        etcdserverpb__txn_request__init(&txns[i]);
        etcdserverpb__request_op__init(&ops[i]);
        ptrs[i] = &ops[i];
        if (i + 1 < levels) {
            ops[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
            ops[i].request_txn = &txns[i + 1];
            txns[i].n_success = 1;
            txns[i].success = &ptrs[i];
        }
    }
    mvcc_arena arena;
    mvcc_arena_init(&arena, 0);
    mvcc_txn_req t;
    assert_int_equal(etcd_conv_txn_req(&arena, &txns[0], &t), MVCC_EINVAL);
    /* one level less is fine */
    assert_int_equal(etcd_conv_txn_req(&arena, &txns[1], &t), MVCC_OK);
    mvcc_arena_reset(&arena);
    free(txns);
    free(ops);
    free(ptrs);
}

/* ------------------------------------------------------------------------------------------ */
/* Responses                                                                                    */

static const etcd_conv_header HDR = {
    .cluster_id = 14841639068965178418ull, .member_id = 10276657743932975437ull, .raft_term = 2};
#define HDR_JSON(rev)                                                                              \
    "\"header\":{\"cluster_id\":\"14841639068965178418\",\"member_id\":"                           \
    "\"10276657743932975437\",\"revision\":\"" rev "\",\"raft_term\":\"2\"}"

static mvcc_kv mkkv(const char *k, const char *v, int64_t c, int64_t m, int64_t ver, int64_t lease)
{
    mvcc_kv kv = {.key = {(const uint8_t *)k, strlen(k)},
                  .value = {(const uint8_t *)v, v != NULL ? strlen(v) : 0},
                  .create_revision = c,
                  .mod_revision = m,
                  .version = ver,
                  .lease = lease};
    return kv;
}

static void test_range_resp(void **state)
{
    (void)state;
    mvcc_arena arena;
    mvcc_arena_init(&arena, 0);
    mvcc_kv kvs[2] = {mkkv("foo", "bar", 2, 3, 2, 0), mkkv("foo1", NULL, 3, 3, 1, 7)};
    mvcc_range_resp in = {.revision = 3, .kvs = kvs, .kvs_len = 2, .more = true, .count = 5};
    Etcdserverpb__RangeResponse *r = NULL;
    assert_int_equal(etcd_conv_range_resp(&arena, &HDR, &in, &r), MVCC_OK);
    assert_int_equal(r->n_kvs, 2);
    assert_pb_bytes(r->kvs[0]->key, "foo");
    assert_pb_bytes(r->kvs[0]->value, "bar");
    assert_int_equal(r->kvs[1]->lease, 7);
    assert_json(
        &r->base,
        "{" HDR_JSON("3") ",\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":\"2\","
                          "\"mod_revision\":\"3\",\"version\":\"2\",\"value\":\"YmFy\"},{\"key\":"
                          "\"Zm9vMQ==\",\"create_revision\":\"3\",\"mod_revision\":\"3\","
                          "\"version\":\"1\",\"lease\":\"7\"}],\"more\":true,\"count\":\"5\"}");

    /* an empty result: header only (count 0 omitted, as etcd's gateway shows) */
    mvcc_range_resp none = {.revision = 9};
    assert_int_equal(etcd_conv_range_resp(&arena, &HDR, &none, &r), MVCC_OK);
    assert_int_equal(r->n_kvs, 0);
    assert_json(&r->base, "{" HDR_JSON("9") "}");

    mvcc_arena tiny;
    mvcc_arena_init(&tiny, 32);
    assert_int_equal(etcd_conv_range_resp(&tiny, &HDR, &in, &r), MVCC_ERESULT);
    assert_true(tiny.exhausted);
    mvcc_arena_reset(&tiny);
    mvcc_arena_reset(&arena);
}

static void test_put_delete_compact_resp(void **state)
{
    (void)state;
    mvcc_arena arena;
    mvcc_arena_init(&arena, 0);
    mvcc_kv prev = mkkv("k", "old", 2, 2, 1, 0);
    mvcc_put_resp pin = {.revision = 4, .prev_kv = &prev};
    Etcdserverpb__PutResponse *p = NULL;
    assert_int_equal(etcd_conv_put_resp(&arena, &HDR, &pin, &p), MVCC_OK);
    assert_json(
        &p->base,
        "{" HDR_JSON("4") ",\"prev_kv\":{\"key\":\"aw==\",\"create_revision\":"
                          "\"2\",\"mod_revision\":\"2\",\"version\":\"1\",\"value\":\"b2xk\"}}");
    pin.prev_kv = NULL;
    assert_int_equal(etcd_conv_put_resp(&arena, &HDR, &pin, &p), MVCC_OK);
    assert_null(p->prev_kv);
    assert_json(&p->base, "{" HDR_JSON("4") "}");

    mvcc_kv gone[2] = {mkkv("a", "1", 2, 2, 1, 0), mkkv("b", "2", 3, 3, 1, 0)};
    mvcc_delete_resp din = {.revision = 5, .deleted = 2, .prev_kvs = gone, .prev_kvs_len = 2};
    Etcdserverpb__DeleteRangeResponse *d = NULL;
    assert_int_equal(etcd_conv_delete_resp(&arena, &HDR, &din, &d), MVCC_OK);
    assert_int_equal(d->deleted, 2);
    assert_int_equal(d->n_prev_kvs, 2);
    assert_json(
        &d->base,
        "{" HDR_JSON("5") ",\"deleted\":\"2\",\"prev_kvs\":[{\"key\":\"YQ==\","
                          "\"create_revision\":\"2\",\"mod_revision\":\"2\",\"version\":\"1\","
                          "\"value\":\"MQ==\"},{\"key\":\"Yg==\",\"create_revision\":\"3\","
                          "\"mod_revision\":\"3\",\"version\":\"1\",\"value\":\"Mg==\"}]}");

    Etcdserverpb__CompactionResponse *c = NULL;
    assert_int_equal(etcd_conv_compaction_resp(&arena, &HDR, 6, &c), MVCC_OK);
    assert_json(&c->base, "{" HDR_JSON("6") "}");
    /* NULL header template: revision only */
    assert_int_equal(etcd_conv_compaction_resp(&arena, NULL, 6, &c), MVCC_OK);
    assert_json(&c->base, "{\"header\":{\"revision\":\"6\"}}");

    /* events: a PUT (type omitted) with prev_kv, a DELETE */
    mvcc_event ev = {.type = MVCC_EVENT_PUT, .kv = mkkv("k", "new", 2, 4, 2, 0), .prev_kv = &prev};
    Mvccpb__Event *e = NULL;
    assert_int_equal(etcd_conv_event(&arena, &ev, &e), MVCC_OK);
    assert_json(&e->base, "{\"kv\":{\"key\":\"aw==\",\"create_revision\":\"2\",\"mod_revision\":"
                          "\"4\",\"version\":\"2\",\"value\":\"bmV3\"},\"prev_kv\":{\"key\":"
                          "\"aw==\",\"create_revision\":\"2\",\"mod_revision\":\"2\",\"version\":"
                          "\"1\",\"value\":\"b2xk\"}}");
    mvcc_event del = {.type = MVCC_EVENT_DELETE, .kv = mkkv("k", NULL, 0, 5, 0, 0)};
    assert_int_equal(etcd_conv_event(&arena, &del, &e), MVCC_OK);
    assert_json(&e->base, "{\"type\":\"DELETE\",\"kv\":{\"key\":\"aw==\",\"mod_revision\":\"5\"}}");
    mvcc_arena_reset(&arena);
}

static void test_txn_resp(void **state)
{
    (void)state;
    mvcc_arena arena;
    mvcc_arena_init(&arena, 0);
    mvcc_kv x = mkkv("x", "1", 2, 2, 1, 0);
    mvcc_kv prev = mkkv("b", "0", 2, 2, 1, 0);

    mvcc_response_op inner_ops[1];
    memset(inner_ops, 0, sizeof inner_ops);
    inner_ops[0].type = MVCC_OP_PUT;
    inner_ops[0].put.revision = 8;
    mvcc_txn_resp inner = {
        .revision = 0, .succeeded = false, .responses = inner_ops, .responses_len = 1};

    mvcc_response_op ops[5];
    memset(ops, 0, sizeof ops);
    ops[0].type = MVCC_OP_RANGE;
    ops[0].range = (mvcc_range_resp){.revision = 8, .kvs = &x, .kvs_len = 1, .count = 1};
    ops[1].type = MVCC_OP_PUT;
    ops[1].put.revision = 8;
    ops[2].type = MVCC_OP_DELETE_RANGE;
    ops[2].delete_range =
        (mvcc_delete_resp){.revision = 8, .deleted = 1, .prev_kvs = &prev, .prev_kvs_len = 1};
    ops[3].type = MVCC_OP_TXN;
    ops[3].txn = &inner;
    ops[4].type = MVCC_OP_NONE;
    mvcc_txn_resp in = {.revision = 8, .succeeded = true, .responses = ops, .responses_len = 5};
    Etcdserverpb__TxnResponse *t = NULL;
    assert_int_equal(etcd_conv_txn_resp(&arena, &HDR, &in, &t), MVCC_OK);
    assert_int_equal(t->n_responses, 5);
    assert_int_equal(t->responses[3]->response_case,
                     ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN);
    assert_non_null(t->responses[3]->response_txn->header);
    assert_json(
        &t->base,
        "{" HDR_JSON(
            "8") ",\"succeeded\":true,\"responses\":["
                 "{\"response_range\":{\"header\":{\"revision\":\"8\"},\"kvs\":[{\"key\":\"eA==\","
                 "\"create_revision\":\"2\",\"mod_revision\":\"2\",\"version\":\"1\",\"value\":"
                 "\"MQ==\"}],\"count\":\"1\"}},"
                 "{\"response_put\":{\"header\":{\"revision\":\"8\"}}},"
                 "{\"response_delete_range\":{\"header\":{\"revision\":\"8\"},\"deleted\":\"1\","
                 "\"prev_kvs\":[{\"key\":\"Yg==\",\"create_revision\":\"2\",\"mod_revision\":\"2\","
                 "\"version\":\"1\",\"value\":\"MA==\"}]}},"
                 "{\"response_txn\":{\"header\":{},\"responses\":[{\"response_put\":{\"header\":"
                 "{\"revision\":\"8\"}}}]}},"
                 "{}]}");

    mvcc_arena tiny;
    mvcc_arena_init(&tiny, 128);
    assert_int_equal(etcd_conv_txn_resp(&tiny, &HDR, &in, &t), MVCC_ERESULT);
    mvcc_arena_reset(&tiny);
    mvcc_arena_reset(&arena);
}

/* ------------------------------------------------------------------------------------------ */
/* End to end on a real store                                                                   */

typedef struct store_fixture {
    char dir[64];
    mvcc_store *store;
} store_fixture;

static int store_setup(void **state)
{
    store_fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    strcpy(f->dir, "/tmp/proto_conv_XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    if (mvcc_open(f->dir, NULL, &f->store, NULL) != MVCC_OK)
        return -1;
    *state = f;
    return 0;
}

static int store_teardown(void **state)
{
    store_fixture *f = *state;
    mvcc_close(f->store);
    char path[128];
    snprintf(path, sizeof path, "%s/data.mdb", f->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", f->dir);
    unlink(path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static char *run_txn(mvcc_store *store, const char *json, int *rc_out)
{
    Etcdserverpb__TxnRequest *in =
        (Etcdserverpb__TxnRequest *)from_json(&etcdserverpb__txn_request__descriptor, json);
    mvcc_arena arena;
    mvcc_arena_init(&arena, 0);
    mvcc_txn_req req;
    assert_int_equal(etcd_conv_txn_req(&arena, in, &req), MVCC_OK);
    mvcc_txn_resp resp;
    memset(&resp, 0, sizeof resp);
    int rc = mvcc_txn(store, &arena, &req, &resp, NULL);
    *rc_out = rc;
    char *out = NULL;
    if (rc == MVCC_OK) {
        Etcdserverpb__TxnResponse *t = NULL;
        assert_int_equal(etcd_conv_txn_resp(&arena, &HDR, &resp, &t), MVCC_OK);
        assert_int_equal(pbjson_encode(&t->base, &out, NULL), PBJSON_OK);
    }
    mvcc_arena_reset(&arena);
    pbjson_message_free(&in->base);
    return out;
}

static void test_end_to_end(void **state)
{
    store_fixture *f = *state;
    mvcc_arena arena;
    mvcc_arena_init(&arena, 0);

    /* Put via JSON -> protobuf -> mvcc */
    Etcdserverpb__PutRequest *pin = (Etcdserverpb__PutRequest *)from_json(
        &etcdserverpb__put_request__descriptor, "{\"key\":\"Zm9v\",\"value\":\"YmFy\"}");
    mvcc_put_req preq;
    etcd_conv_put_req(pin, &preq);
    mvcc_put_resp presp;
    assert_int_equal(mvcc_put(f->store, &arena, &preq, &presp, NULL), MVCC_OK);
    Etcdserverpb__PutResponse *pout = NULL;
    assert_int_equal(etcd_conv_put_resp(&arena, &HDR, &presp, &pout), MVCC_OK);
    assert_json(&pout->base, "{" HDR_JSON("2") "}");
    pbjson_message_free(&pin->base);

    /* Range */
    Etcdserverpb__RangeRequest *rin = (Etcdserverpb__RangeRequest *)from_json(
        &etcdserverpb__range_request__descriptor, "{\"key\":\"Zm9v\",\"range_end\":\"Zm9w\"}");
    mvcc_range_req rreq;
    etcd_conv_range_req(rin, &rreq);
    mvcc_range_resp rresp;
    assert_int_equal(mvcc_range(f->store, &arena, &rreq, &rresp, NULL), MVCC_OK);
    Etcdserverpb__RangeResponse *rout = NULL;
    assert_int_equal(etcd_conv_range_resp(&arena, &HDR, &rresp, &rout), MVCC_OK);
    assert_json(
        &rout->base,
        "{" HDR_JSON("2") ",\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":"
                          "\"2\",\"mod_revision\":\"2\",\"version\":\"1\",\"value\":\"YmFy\"}],"
                          "\"count\":\"1\"}");
    pbjson_message_free(&rin->base);
    mvcc_arena_reset(&arena);

    /* Txn: value compare succeeds; put + nested txn whose mod compare fails */
    int rc;
    char *out = run_txn(
        f->store,
        "{\"compare\":[{\"target\":\"VALUE\",\"key\":\"Zm9v\",\"value\":\"YmFy\"},"
        "{\"result\":\"GREATER\",\"target\":\"VERSION\",\"key\":\"Zm9v\",\"version\":\"0\"},"
        "{\"target\":\"LEASE\",\"key\":\"Zm9v\",\"lease\":\"0\"},"
        "{\"result\":\"LESS\",\"target\":\"CREATE\",\"key\":\"Zm9v\",\"create_revision\":\"3\"},"
        "{\"result\":\"NOT_EQUAL\",\"target\":\"MOD\",\"key\":\"Zm9v\",\"mod_revision\":\"9\"}],"
        "\"success\":[{\"request_put\":{\"key\":\"YQ==\",\"value\":\"MQ==\"}},"
        "{\"request_txn\":{\"compare\":[{\"target\":\"MOD\",\"key\":\"Zm9v\",\"mod_revision\":"
        "\"5\"}],\"failure\":[{\"request_range\":{\"key\":\"Zm9v\"}}]}}],"
        "\"failure\":[{\"request_delete_range\":{\"key\":\"Zm9v\"}}]}",
        &rc);
    assert_int_equal(rc, MVCC_OK);
    assert_non_null(out);
    /* Printed for the record; the structure is checked below. */
    printf("txn: %s\n", out);
    assert_non_null(strstr(out, "\"succeeded\":true"));
    assert_non_null(strstr(out, "{\"response_put\":{\"header\":{\"revision\":\"3\"}}}"));
    assert_non_null(
        strstr(out, "\"response_txn\":{\"header\":{},\"responses\":[{\"response_range\""));
    assert_non_null(strstr(out, "\"revision\":\"3\",\"raft_term\":\"2\"}"));
    pbjson_free(out);

    /* Failure branch, deleting */
    out = run_txn(f->store,
                  "{\"compare\":[{\"target\":\"VALUE\",\"key\":\"Zm9v\",\"value\":\"bm8=\"}],"
                  "\"failure\":[{\"request_delete_range\":{\"key\":\"Zm9v\",\"prev_kv\":true}}]}",
                  &rc);
    assert_int_equal(rc, MVCC_OK);
    printf("txn: %s\n", out);
    assert_non_null(strstr(out, "\"response_delete_range\":{\"header\":{\"revision\":\"4\"},"
                                "\"deleted\":\"1\",\"prev_kvs\":[{\"key\":\"Zm9v\""));
    assert_null(strstr(out, "succeeded"));
    pbjson_free(out);

    /* An empty RequestOp is rejected by mvcc like etcd */
    out = run_txn(f->store, "{\"success\":[{}]}", &rc);
    assert_int_equal(rc, MVCC_EKEYNOTFOUND);
    assert_null(out);

    /* Compaction */
    Etcdserverpb__CompactionRequest *cin = (Etcdserverpb__CompactionRequest *)from_json(
        &etcdserverpb__compaction_request__descriptor, "{\"revision\":\"3\",\"physical\":true}");
    assert_int_equal(mvcc_compact(f->store, cin->revision, NULL), MVCC_OK);
    mvcc_status st;
    assert_int_equal(mvcc_status_get(f->store, &st, NULL), MVCC_OK);
    Etcdserverpb__CompactionResponse *cout = NULL;
    assert_int_equal(etcd_conv_compaction_resp(&arena, &HDR, st.current_revision, &cout), MVCC_OK);
    assert_json(&cout->base, "{" HDR_JSON("4") "}");
    pbjson_message_free(&cin->base);
    mvcc_arena_reset(&arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_req),
        cmocka_unit_test(test_put_delete_req),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_txn_req),
        cmocka_unit_test(test_txn_req_depth),
        cmocka_unit_test(test_range_resp),
        cmocka_unit_test(test_put_delete_compact_resp),
        cmocka_unit_test(test_txn_resp),
        cmocka_unit_test_setup_teardown(test_end_to_end, store_setup, store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
