/*
 * proto_pbjson_test.c — JSON <-> protobuf-c (src/api/pbjson) on etcd's messages, checked
 * against the text etcd 3.4's gateway (grpc-gateway JSONPb{OrigName: true}) produces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/pbjson.h"
#include "etcdserverpb/rpc.pb-c.h"
#include "mvccpb/kv.pb-c.h"

static ProtobufCMessage *decode_ok(const ProtobufCMessageDescriptor *d, const char *json)
{
    ProtobufCMessage *m = NULL;
    char err[256];
    int rc = pbjson_decode(d, json, strlen(json), &m, err, sizeof err);
    if (rc != PBJSON_OK)
        fail_msg("decode of %s failed: %d %s", json, rc, err);
    assert_non_null(m);
    return m;
}

static char *encode_ok(const ProtobufCMessage *m)
{
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(pbjson_encode(m, &out, &len), PBJSON_OK);
    assert_non_null(out);
    assert_int_equal(strlen(out), len);
    return out;
}

static void assert_encodes(const ProtobufCMessage *m, const char *want)
{
    char *got = encode_ok(m);
    assert_string_equal(got, want);
    pbjson_free(got);
}

/* decode(json) then encode gives `canon`; binary pack/unpack keeps it too. */
static void assert_round_trip(const ProtobufCMessageDescriptor *d, const char *json,
                              const char *canon)
{
    ProtobufCMessage *m = decode_ok(d, json);
    assert_encodes(m, canon);
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n + 1);
    assert_non_null(buf);
    assert_int_equal(protobuf_c_message_pack(m, buf), n);
    ProtobufCMessage *m2 = protobuf_c_message_unpack(d, NULL, n, buf);
    assert_non_null(m2);
    assert_encodes(m2, canon);
    /* and the canonical text decodes to the same bytes */
    ProtobufCMessage *m3 = decode_ok(d, canon);
    size_t n3 = protobuf_c_message_get_packed_size(m3);
    assert_int_equal(n3, n);
    uint8_t *buf3 = malloc(n3 + 1);
    assert_non_null(buf3);
    protobuf_c_message_pack(m3, buf3);
    assert_memory_equal(buf, buf3, n);
    free(buf);
    free(buf3);
    pbjson_message_free(m);
    protobuf_c_message_free_unpacked(m2, NULL);
    pbjson_message_free(m3);
}

static int decode_err(const ProtobufCMessageDescriptor *d, const char *json, unsigned flags,
                      char *err, size_t errlen)
{
    ProtobufCMessage *m = (ProtobufCMessage *)0x1;
    int rc = pbjson_decode_ex(d, json, strlen(json), flags, &m, err, errlen);
    assert_int_not_equal(rc, PBJSON_OK);
    assert_null(m);
    assert_true(err == NULL || strlen(err) > 0);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */

static void test_range_request(void **state)
{
    (void)state;
    const char *json =
        "{ \"key\": \"Zm9v\", \"range_end\": \"Zm9w\", \"limit\": \"10\", "
        "\"revision\": 5, \"sort_order\": \"DESCEND\", \"sort_target\": \"MOD\", "
        "\"serializable\": true, \"keys_only\": true, \"count_only\": false, "
        "\"min_mod_revision\": \"1\", \"max_mod_revision\": \"-3\", "
        "\"min_create_revision\": 0, \"max_create_revision\": \"9223372036854775807\" }";
    Etcdserverpb__RangeRequest *r =
        (Etcdserverpb__RangeRequest *)decode_ok(&etcdserverpb__range_request__descriptor, json);
    assert_int_equal(r->key.len, 3);
    assert_memory_equal(r->key.data, "foo", 3);
    assert_int_equal(r->range_end.len, 3);
    assert_memory_equal(r->range_end.data, "fop", 3);
    assert_int_equal(r->limit, 10);
    assert_int_equal(r->revision, 5);
    assert_int_equal(r->sort_order, ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND);
    assert_int_equal(r->sort_target, ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD);
    assert_true(r->serializable);
    assert_true(r->keys_only);
    assert_false(r->count_only);
    assert_int_equal(r->min_mod_revision, 1);
    assert_int_equal(r->max_mod_revision, -3);
    assert_true(r->max_create_revision == INT64_MAX);
    assert_encodes(&r->base,
                   "{\"key\":\"Zm9v\",\"range_end\":\"Zm9w\",\"limit\":\"10\","
                   "\"revision\":\"5\",\"sort_order\":\"DESCEND\",\"sort_target\":\"MOD\","
                   "\"serializable\":true,\"keys_only\":true,\"min_mod_revision\":\"1\","
                   "\"max_mod_revision\":\"-3\","
                   "\"max_create_revision\":\"9223372036854775807\"}");
    pbjson_message_free(&r->base);

    /* lowerCamelCase names and enum numbers are accepted too */
    r = (Etcdserverpb__RangeRequest *)decode_ok(
        &etcdserverpb__range_request__descriptor,
        "{\"rangeEnd\":\"AA==\",\"sortOrder\":1,\"sortTarget\":4,\"countOnly\":true}");
    assert_int_equal(r->range_end.len, 1);
    assert_int_equal(r->range_end.data[0], 0);
    assert_int_equal(r->sort_order, 1);
    assert_int_equal(r->sort_target, 4);
    assert_true(r->count_only);
    assert_encodes(&r->base, "{\"range_end\":\"AA==\",\"sort_order\":\"ASCEND\","
                             "\"sort_target\":\"VALUE\",\"count_only\":true}");
    pbjson_message_free(&r->base);

    assert_round_trip(&etcdserverpb__range_request__descriptor, "{}", "{}");
    assert_round_trip(&etcdserverpb__range_request__descriptor,
                      "{\"key\":\"YQ==\",\"range_end\":\"AA==\"}",
                      "{\"key\":\"YQ==\",\"range_end\":\"AA==\"}");
}

/* The exact text etcd 3.4's gateway answers to /v3/kv/range. */
static void test_range_response(void **state)
{
    (void)state;
    const char *etcd =
        "{\"header\":{\"cluster_id\":\"14841639068965178418\",\"member_id\":"
        "\"10276657743932975437\",\"revision\":\"3\",\"raft_term\":\"2\"},\"kvs\":[{\"key\":"
        "\"Zm9v\",\"create_revision\":\"2\",\"mod_revision\":\"3\",\"version\":\"2\",\"value\":"
        "\"YmFy\"},{\"key\":\"Zm9vMQ==\",\"create_revision\":\"3\",\"mod_revision\":\"3\","
        "\"version\":\"1\",\"lease\":\"7587862072907400000\"}],\"more\":true,\"count\":\"5\"}";
    assert_round_trip(&etcdserverpb__range_response__descriptor, etcd, etcd);

    Etcdserverpb__RangeResponse *r =
        (Etcdserverpb__RangeResponse *)decode_ok(&etcdserverpb__range_response__descriptor, etcd);
    assert_non_null(r->header);
    assert_true(r->header->cluster_id == 14841639068965178418ull);
    assert_int_equal(r->header->raft_term, 2);
    assert_int_equal(r->n_kvs, 2);
    assert_memory_equal(r->kvs[1]->key.data, "foo1", 4);
    assert_int_equal(r->kvs[1]->value.len, 0);
    assert_true(r->kvs[1]->lease == 7587862072907400000ll);
    assert_true(r->more);
    assert_int_equal(r->count, 5);
    pbjson_message_free(&r->base);

    /* an empty but present header stays present */
    assert_round_trip(&etcdserverpb__range_response__descriptor, "{\"header\":{}}",
                      "{\"header\":{}}");
}

static void test_put_request(void **state)
{
    (void)state;
    Etcdserverpb__PutRequest *p =
        (Etcdserverpb__PutRequest *)decode_ok(&etcdserverpb__put_request__descriptor,
                                              "{\"key\": \"Zm9v\", \"value\": \"YmFy\", \"lease\": "
                                              "7587862072907400000, \"prev_kv\": true,"
                                              " \"ignore_value\": false, \"ignore_lease\": null}");
    assert_memory_equal(p->key.data, "foo", 3);
    assert_memory_equal(p->value.data, "bar", 3);
    assert_true(p->lease == 7587862072907400000ll);
    assert_true(p->prev_kv);
    assert_encodes(&p->base, "{\"key\":\"Zm9v\",\"value\":\"YmFy\",\"lease\":"
                             "\"7587862072907400000\",\"prev_kv\":true}");
    pbjson_message_free(&p->base);

    /* EmitDefaults (for debugging and tools) */
    Etcdserverpb__PutResponse resp = ETCDSERVERPB__PUT_RESPONSE__INIT;
    char *out = NULL;
    assert_int_equal(pbjson_encode_ex(&resp.base, PBJSON_ENCODE_EMIT_DEFAULTS, &out, NULL),
                     PBJSON_OK);
    assert_string_equal(out, "{\"header\":null,\"prev_kv\":null}");
    pbjson_free(out);
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    assert_int_equal(pbjson_encode_ex(&req.base,
                                      PBJSON_ENCODE_EMIT_DEFAULTS | PBJSON_ENCODE_JSON_NAMES, &out,
                                      NULL),
                     PBJSON_OK);
    assert_string_equal(out, "{\"key\":\"\",\"value\":\"\",\"lease\":\"0\",\"prevKv\":false,"
                             "\"ignoreValue\":false,\"ignoreLease\":false}");
    pbjson_free(out);
}

static void test_txn_request(void **state)
{
    (void)state;
    const char *canon =
        "{\"compare\":["
        "{\"result\":\"GREATER\",\"key\":\"YQ==\",\"version\":\"0\"},"
        "{\"result\":\"LESS\",\"target\":\"CREATE\",\"key\":\"Yg==\",\"create_revision\":\"7\"},"
        "{\"result\":\"NOT_EQUAL\",\"target\":\"MOD\",\"key\":\"Yw==\",\"mod_revision\":\"3\","
        "\"range_end\":\"ZA==\"},"
        "{\"target\":\"VALUE\",\"key\":\"ZQ==\",\"value\":\"dg==\"},"
        "{\"target\":\"LEASE\",\"key\":\"Zg==\",\"lease\":\"42\"},"
        "{\"target\":\"VALUE\",\"key\":\"Zw==\",\"value\":\"\"}],"
        "\"success\":["
        "{\"request_put\":{\"key\":\"YQ==\",\"value\":\"MQ==\"}},"
        "{\"request_delete_range\":{\"key\":\"Yg==\",\"range_end\":\"AA==\",\"prev_kv\":true}},"
        "{\"request_txn\":{\"compare\":[{\"key\":\"eA==\"}],\"success\":[{\"request_range\":"
        "{\"key\":\"eA==\"}}],\"failure\":[{\"request_put\":{\"key\":\"eA==\"}}]}},"
        "{}],"
        "\"failure\":[{\"request_range\":{\"key\":\"YQ==\",\"limit\":\"1\"}}]}";
    assert_round_trip(&etcdserverpb__txn_request__descriptor, canon, canon);

    Etcdserverpb__TxnRequest *t =
        (Etcdserverpb__TxnRequest *)decode_ok(&etcdserverpb__txn_request__descriptor, canon);
    assert_int_equal(t->n_compare, 6);
    /* a oneof member holding zero is still set */
    assert_int_equal(t->compare[0]->target_union_case, ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION);
    assert_int_equal(t->compare[0]->version, 0);
    assert_int_equal(t->compare[1]->target_union_case,
                     ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION);
    assert_int_equal(t->compare[2]->range_end.len, 1);
    assert_int_equal(t->compare[3]->target_union_case, ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE);
    assert_memory_equal(t->compare[3]->value.data, "v", 1);
    assert_int_equal(t->compare[4]->lease, 42);
    assert_int_equal(t->compare[5]->target_union_case, ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE);
    assert_int_equal(t->compare[5]->value.len, 0);
    assert_int_equal(t->n_success, 4);
    assert_int_equal(t->success[0]->request_case, ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT);
    assert_int_equal(t->success[1]->request_case,
                     ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE);
    assert_int_equal(t->success[2]->request_case, ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN);
    assert_int_equal(t->success[2]->request_txn->n_failure, 1);
    assert_int_equal(t->success[3]->request_case, ETCDSERVERPB__REQUEST_OP__REQUEST__NOT_SET);
    assert_int_equal(t->failure[0]->request_range->limit, 1);
    pbjson_message_free(&t->base);

    /* a second member of a oneof replaces the first; a repeated field given twice: the
     * last wins (no leak under ASan) */
    t = (Etcdserverpb__TxnRequest *)decode_ok(
        &etcdserverpb__txn_request__descriptor,
        "{\"success\":[{\"request_put\":{\"key\":\"YQ==\"},\"request_range\":{\"key\":\"Yg==\"}}],"
        "\"compare\":[{\"value\":\"eA==\",\"version\":5}],\"compare\":[{\"value\":\"eQ==\"},"
        "{\"key\":\"eg==\",\"value\":null}]}");
    assert_int_equal(t->success[0]->request_case, ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE);
    assert_memory_equal(t->success[0]->request_range->key.data, "b", 1);
    assert_int_equal(t->n_compare, 2);
    assert_memory_equal(t->compare[0]->value.data, "y", 1);
    assert_int_equal(t->compare[1]->target_union_case,
                     ETCDSERVERPB__COMPARE__TARGET_UNION__NOT_SET);
    pbjson_message_free(&t->base);
}

static void test_txn_response(void **state)
{
    (void)state;
    const char *etcd =
        "{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"9\","
        "\"raft_term\":\"3\"},\"succeeded\":true,\"responses\":[{\"response_put\":{\"header\":"
        "{\"revision\":\"9\"}}},{\"response_range\":{\"header\":{\"revision\":\"9\"},\"kvs\":"
        "[{\"key\":\"YQ==\",\"create_revision\":\"9\",\"mod_revision\":\"9\",\"version\":\"1\"}],"
        "\"count\":\"1\"}},{\"response_txn\":{\"header\":{},\"responses\":[{\"response_delete_"
        "range\":"
        "{\"header\":{\"revision\":\"9\"},\"deleted\":\"1\"}}]}}]}";
    assert_round_trip(&etcdserverpb__txn_response__descriptor, etcd, etcd);
}

static void test_watch_response(void **state)
{
    (void)state;
    /* a PUT event has type 0 and the gateway omits it */
    const char *etcd =
        "{\"header\":{\"cluster_id\":\"14841639068965178418\",\"member_id\":"
        "\"10276657743932975437\",\"revision\":\"4\",\"raft_term\":\"2\"},\"events\":[{\"kv\":"
        "{\"key\":\"Zm9v\",\"create_revision\":\"2\",\"mod_revision\":\"4\",\"version\":\"3\","
        "\"value\":\"YmF6\"},\"prev_kv\":{\"key\":\"Zm9v\",\"create_revision\":\"2\","
        "\"mod_revision\":\"3\",\"version\":\"2\",\"value\":\"YmFy\"}},{\"type\":\"DELETE\","
        "\"kv\":{\"key\":\"Zm9vMg==\",\"mod_revision\":\"4\"}}]}";
    assert_round_trip(&etcdserverpb__watch_response__descriptor, etcd, etcd);
    Etcdserverpb__WatchResponse *w =
        (Etcdserverpb__WatchResponse *)decode_ok(&etcdserverpb__watch_response__descriptor, etcd);
    assert_int_equal(w->n_events, 2);
    assert_int_equal(w->events[0]->type, MVCCPB__EVENT__EVENT_TYPE__PUT);
    assert_int_equal(w->events[1]->type, MVCCPB__EVENT__EVENT_TYPE__DELETE);
    assert_non_null(w->events[0]->prev_kv);
    assert_null(w->events[1]->prev_kv);
    pbjson_message_free(&w->base);

    assert_round_trip(&etcdserverpb__watch_response__descriptor,
                      "{\"header\":{\"revision\":\"7\"},\"watch_id\":\"1\",\"created\":true}",
                      "{\"header\":{\"revision\":\"7\"},\"watch_id\":\"1\",\"created\":true}");
    assert_round_trip(&etcdserverpb__watch_response__descriptor,
                      "{\"watch_id\":\"2\",\"canceled\":true,\"compact_revision\":\"5\","
                      "\"cancel_reason\":\"mvcc: required revision has been compacted\","
                      "\"fragment\":true}",
                      "{\"watch_id\":\"2\",\"canceled\":true,\"compact_revision\":\"5\","
                      "\"cancel_reason\":\"mvcc: required revision has been compacted\","
                      "\"fragment\":true}");

    /* a watch create request with filters (repeated enum), as the gateway receives it */
    Etcdserverpb__WatchRequest *wr = (Etcdserverpb__WatchRequest *)decode_ok(
        &etcdserverpb__watch_request__descriptor,
        "{\"create_request\":{\"key\":\"Zm9v\",\"range_end\":\"Zm9w\",\"start_revision\":\"3\","
        "\"progress_notify\":true,\"filters\":[\"NODELETE\",0],\"prev_kv\":true,\"watch_id\":"
        "\"5\",\"fragment\":true}}");
    assert_int_equal(wr->request_union_case,
                     ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST);
    Etcdserverpb__WatchCreateRequest *c = wr->create_request;
    assert_int_equal(c->n_filters, 2);
    assert_int_equal(c->filters[0], ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NODELETE);
    assert_int_equal(c->filters[1], ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT);
    assert_int_equal(c->start_revision, 3);
    assert_int_equal(c->watch_id, 5);
    assert_encodes(&wr->base,
                   "{\"create_request\":{\"key\":\"Zm9v\",\"range_end\":\"Zm9w\","
                   "\"start_revision\":\"3\",\"progress_notify\":true,\"filters\":[\"NODELETE\","
                   "\"NOPUT\"],\"prev_kv\":true,\"watch_id\":\"5\",\"fragment\":true}}");
    pbjson_message_free(&wr->base);
    /* an empty oneof member message is present */
    assert_round_trip(&etcdserverpb__watch_request__descriptor, "{\"progress_request\":{}}",
                      "{\"progress_request\":{}}");
}

static void test_base64(void **state)
{
    (void)state;
    /* URL-safe alphabet and missing padding are accepted; output is standard, padded */
    Etcdserverpb__PutRequest *p = (Etcdserverpb__PutRequest *)decode_ok(
        &etcdserverpb__put_request__descriptor, "{\"key\":\"_-8\",\"value\":\"AP__\"}");
    assert_int_equal(p->key.len, 2);
    assert_int_equal(p->key.data[0], 0xff);
    assert_int_equal(p->key.data[1], 0xef);
    assert_int_equal(p->value.len, 3);
    assert_encodes(&p->base, "{\"key\":\"/+8=\",\"value\":\"AP//\"}");
    pbjson_message_free(&p->base);

    /* all byte values */
    Etcdserverpb__PutRequest q = ETCDSERVERPB__PUT_REQUEST__INIT;
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    for (size_t n = 0; n <= 256; n += 1) {
        q.key.data = all;
        q.key.len = n;
        char *out = encode_ok(&q.base);
        Etcdserverpb__PutRequest *r =
            (Etcdserverpb__PutRequest *)decode_ok(&etcdserverpb__put_request__descriptor, out);
        assert_int_equal(r->key.len, n);
        if (n > 0)
            assert_memory_equal(r->key.data, all, n);
        pbjson_message_free(&r->base);
        pbjson_free(out);
    }

    char err[128];
    assert_int_equal(decode_err(&etcdserverpb__put_request__descriptor, "{\"key\":\"Zm9v!\"}", 0,
                                err, sizeof err),
                     PBJSON_ETYPE);
    assert_non_null(strstr(err, "base64"));
    assert_non_null(strstr(err, "\"key\""));
    assert_int_equal(
        decode_err(&etcdserverpb__put_request__descriptor, "{\"key\":\"Z\"}", 0, err, sizeof err),
        PBJSON_ETYPE);
    assert_int_equal(decode_err(&etcdserverpb__put_request__descriptor, "{\"key\":\"Zm9v=\"}", 0,
                                err, sizeof err),
                     PBJSON_ETYPE);
    assert_int_equal(decode_err(&etcdserverpb__put_request__descriptor, "{\"key\":\"Zg=a\"}", 0,
                                err, sizeof err),
                     PBJSON_ETYPE);
    assert_int_equal(
        decode_err(&etcdserverpb__put_request__descriptor, "{\"key\":5}", 0, err, sizeof err),
        PBJSON_ETYPE);
}

static void test_integers(void **state)
{
    (void)state;
    char err[128];
    const ProtobufCMessageDescriptor *rd = &etcdserverpb__range_request__descriptor;
    Etcdserverpb__RangeRequest *r = (Etcdserverpb__RangeRequest *)decode_ok(
        rd, "{\"limit\":\"-9223372036854775808\",\"revision\":1000}");
    assert_true(r->limit == INT64_MIN);
    assert_int_equal(r->revision, 1000);
    assert_encodes(&r->base, "{\"limit\":\"-9223372036854775808\",\"revision\":\"1000\"}");
    pbjson_message_free(&r->base);

    assert_int_equal(decode_err(rd, "{\"limit\":\"9223372036854775808\"}", 0, err, sizeof err),
                     PBJSON_ERANGE);
    /* like etcd's gateway: no fractions or exponents for integers, quoted or not */
    assert_int_equal(decode_err(rd, "{\"limit\":1.5}", 0, err, sizeof err), PBJSON_ETYPE);
    assert_int_equal(decode_err(rd, "{\"limit\":1.0}", 0, err, sizeof err), PBJSON_ETYPE);
    assert_int_equal(decode_err(rd, "{\"limit\":1e3}", 0, err, sizeof err), PBJSON_ETYPE);
    assert_int_equal(decode_err(rd, "{\"limit\":\"1e3\"}", 0, err, sizeof err), PBJSON_ETYPE);
    assert_int_equal(decode_err(rd, "{\"limit\":\" 1\"}", 0, err, sizeof err), PBJSON_ETYPE);
    assert_int_equal(decode_err(rd, "{\"limit\":\"abc\"}", 0, err, sizeof err), PBJSON_ETYPE);
    assert_int_equal(decode_err(rd, "{\"limit\":\"\"}", 0, err, sizeof err), PBJSON_ETYPE);
    assert_int_equal(decode_err(rd, "{\"limit\":\"012\"}", 0, err, sizeof err), PBJSON_ETYPE);
    assert_int_equal(decode_err(rd, "{\"limit\":true}", 0, err, sizeof err), PBJSON_ETYPE);
    assert_int_equal(decode_err(rd, "{\"limit\":[1]}", 0, err, sizeof err), PBJSON_ETYPE);

    const ProtobufCMessageDescriptor *hd = &etcdserverpb__response_header__descriptor;
    Etcdserverpb__ResponseHeader *h = (Etcdserverpb__ResponseHeader *)decode_ok(
        hd, "{\"cluster_id\":\"18446744073709551615\",\"member_id\":12}");
    assert_true(h->cluster_id == UINT64_MAX);
    assert_int_equal(h->member_id, 12);
    pbjson_message_free(&h->base);
    assert_int_equal(
        decode_err(hd, "{\"cluster_id\":\"18446744073709551616\"}", 0, err, sizeof err),
        PBJSON_ERANGE);
    assert_int_equal(decode_err(hd, "{\"cluster_id\":-1}", 0, err, sizeof err), PBJSON_ERANGE);

    /* uint32 (HashResponse.hash) is a JSON number on output */
    const ProtobufCMessageDescriptor *xd = &etcdserverpb__hash_kvresponse__descriptor;
    Etcdserverpb__HashKVResponse *x = (Etcdserverpb__HashKVResponse *)decode_ok(
        xd, "{\"hash\":\"4294967295\",\"compact_revision\":3}");
    assert_true(x->hash == UINT32_MAX);
    assert_encodes(&x->base, "{\"hash\":4294967295,\"compact_revision\":\"3\"}");
    pbjson_message_free(&x->base);
    assert_int_equal(decode_err(xd, "{\"hash\":4294967296}", 0, err, sizeof err), PBJSON_ERANGE);
}

static void test_enums(void **state)
{
    (void)state;
    char err[128];
    const ProtobufCMessageDescriptor *ad = &etcdserverpb__alarm_request__descriptor;
    Etcdserverpb__AlarmRequest *a =
        (Etcdserverpb__AlarmRequest *)decode_ok(ad, "{\"action\":\"ACTIVATE\",\"memberID\":\"7\","
                                                    "\"alarm\":\"NOSPACE\"}");
    assert_int_equal(a->action, ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__ACTIVATE);
    assert_int_equal(a->memberid, 7);
    assert_int_equal(a->alarm, ETCDSERVERPB__ALARM_TYPE__NOSPACE);
    /* a number outside the enum is kept (proto3 open enums) and written as a number */
    a->alarm = 17;
    assert_encodes(&a->base, "{\"action\":\"ACTIVATE\",\"memberID\":\"7\",\"alarm\":17}");
    char *out = NULL;
    assert_int_equal(pbjson_encode_ex(&a->base, PBJSON_ENCODE_ENUMS_AS_INTS, &out, NULL),
                     PBJSON_OK);
    assert_string_equal(out, "{\"action\":1,\"memberID\":\"7\",\"alarm\":17}");
    pbjson_free(out);
    pbjson_message_free(&a->base);
    assert_int_equal(decode_err(ad, "{\"action\":\"EXPLODE\"}", 0, err, sizeof err), PBJSON_ETYPE);
    assert_non_null(strstr(err, "EXPLODE"));
    assert_int_equal(decode_err(ad, "{\"action\":true}", 0, err, sizeof err), PBJSON_ETYPE);
}

static void test_strings(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *md = &etcdserverpb__member__descriptor;
    Etcdserverpb__Member *m = (Etcdserverpb__Member *)decode_ok(
        md,
        "{\"ID\":\"10276657743932975437\",\"name\":\"a\\\"b\\\\c\\/d\\n\\u00e9\\ud83d\\ude00<&>\","
        "\"peerURLs\":[\"http://127.0.0.1:2380\"],\"clientURLs\":[],\"isLearner\":true}");
    assert_true(m->id == 10276657743932975437ull);
    assert_string_equal(m->name, "a\"b\\c/d\n\xc3\xa9\xf0\x9f\x98\x80<&>");
    assert_int_equal(m->n_peerurls, 1);
    assert_string_equal(m->peerurls[0], "http://127.0.0.1:2380");
    assert_int_equal(m->n_clienturls, 0);
    assert_encodes(&m->base, "{\"ID\":\"10276657743932975437\",\"name\":\"a\\\"b\\\\c/d\\n"
                             "\xc3\xa9\xf0\x9f\x98\x80\\u003c\\u0026\\u003e\","
                             "\"peerURLs\":[\"http://127.0.0.1:2380\"],\"isLearner\":true}");
    /* invalid UTF-8 and control characters, U+2028 */
    free(m->name);
    m->name = strdup("x\xff\x01\xe2\x80\xa8y");
    assert_encodes(&m->base, "{\"ID\":\"10276657743932975437\",\"name\":\"x\xef\xbf\xbd\\u0001"
                             "\\u2028y\",\"peerURLs\":[\"http://127.0.0.1:2380\"],"
                             "\"isLearner\":true}");
    pbjson_message_free(&m->base);

    /* status response with repeated strings and mixed-case names */
    const char *st = "{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"3\","
                     "\"raft_term\":\"4\"},\"version\":\"3.4.23\",\"dbSize\":\"20480\",\"leader\":"
                     "\"2\",\"raftIndex\":\"10\",\"raftTerm\":\"4\",\"raftAppliedIndex\":\"10\","
                     "\"errors\":[\"memberID:2 alarm:NOSPACE \"],\"dbSizeInUse\":\"16384\"}";
    assert_round_trip(&etcdserverpb__status_response__descriptor, st, st);
}

static void test_unknown_and_null(void **state)
{
    (void)state;
    char err[160];
    const ProtobufCMessageDescriptor *rd = &etcdserverpb__range_request__descriptor;
    /* grpc-gateway ignores unknown fields */
    Etcdserverpb__RangeRequest *r = (Etcdserverpb__RangeRequest *)decode_ok(
        rd, "{\"bogus\":{\"a\":[1,2,{\"b\":null}],\"c\":\"\\u0041\"},\"key\":\"YQ==\","
            "\"limit\":null,\"x\":-1.5e-3}");
    assert_int_equal(r->key.len, 1);
    pbjson_message_free(&r->base);
    assert_int_equal(decode_err(rd, "{\"key\":\"YQ==\",\"bogus\":1}", PBJSON_DECODE_REJECT_UNKNOWN,
                                err, sizeof err),
                     PBJSON_EUNKNOWN);
    assert_non_null(strstr(err, "bogus"));
    assert_non_null(strstr(err, "offset 14"));
}

static void test_malformed(void **state)
{
    (void)state;
    char err[160];
    const ProtobufCMessageDescriptor *rd = &etcdserverpb__range_request__descriptor;
    static const struct {
        const char *json;
        int code;
    } cases[] = {
        {"", PBJSON_ESYNTAX},
        {"   ", PBJSON_ESYNTAX},
        {"{", PBJSON_ESYNTAX},
        {"[1]", PBJSON_ETYPE},
        {"\"x\"", PBJSON_ETYPE},
        {"{\"key\":}", PBJSON_ESYNTAX},
        {"{\"key\" \"YQ==\"}", PBJSON_ESYNTAX},
        {"{key:\"YQ==\"}", PBJSON_ESYNTAX},
        {"{\"limit\":1,}", PBJSON_ESYNTAX},
        {"{\"limit\":1 \"revision\":2}", PBJSON_ESYNTAX},
        {"{} x", PBJSON_ESYNTAX},
        {"{}{}", PBJSON_ESYNTAX},
        {"{\"key\":\"YQ==", PBJSON_ESYNTAX},
        {"{\"key\":\"\\x\"}", PBJSON_ESYNTAX},
        {"{\"key\":\"\\u12\"}", PBJSON_ESYNTAX},
        {"{\"key\":\"a\nb\"}", PBJSON_ESYNTAX},
        {"{\"serializable\":tru}", PBJSON_ESYNTAX},
        {"{\"serializable\":truex}", PBJSON_ESYNTAX},
        {"{\"serializable\":\"true\"}", PBJSON_ETYPE},
        {"{\"serializable\":1}", PBJSON_ETYPE},
        {"{\"limit\":-}", PBJSON_ESYNTAX},
        {"{\"limit\":01}", PBJSON_ESYNTAX},
        {"{\"limit\":1.}", PBJSON_ESYNTAX},
        {"{\"bogus\":[1,}", PBJSON_ESYNTAX},
        {"{\"bogus\":nul}", PBJSON_ESYNTAX},
        {"{\"key\":\"YQ==\"", PBJSON_ESYNTAX},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = 'x';
        int rc = decode_err(rd, cases[i].json, 0, err, sizeof err);
        if (rc != cases[i].code)
            fail_msg("case %zu (%s): got %d (%s), want %d", i, cases[i].json, rc, err,
                     cases[i].code);
        assert_non_null(strstr(err, "offset "));
    }
    /* embedded NUL: the length is what counts */
    ProtobufCMessage *m = NULL;
    assert_int_equal(pbjson_decode(rd, "{}\0{", 4, &m, err, sizeof err), PBJSON_ESYNTAX);
    assert_int_equal(pbjson_decode(rd, "{}\0{", 2, &m, err, sizeof err), PBJSON_OK);
    pbjson_message_free(m);
    /* a NULL err buffer is fine */
    assert_int_equal(pbjson_decode(rd, "{", 1, &m, NULL, 0), PBJSON_ESYNTAX);
    /* a tiny err buffer is truncated, still NUL-terminated */
    char tiny[8];
    assert_int_equal(pbjson_decode(rd, "{", 1, &m, tiny, sizeof tiny), PBJSON_ESYNTAX);
    assert_int_equal(strlen(tiny), 7);

    /* a wrong type deep inside a nested txn: the whole tree is freed (ASan) */
    assert_int_equal(decode_err(&etcdserverpb__txn_request__descriptor,
                                "{\"success\":[{\"request_txn\":{\"success\":[{\"request_put\":"
                                "{\"key\":\"YQ==\",\"value\":\"Yg==\"}},{\"request_put\":"
                                "{\"lease\":\"x\"}}]}}]}",
                                0, err, sizeof err),
                     PBJSON_ETYPE);
    assert_non_null(strstr(err, "\"lease\""));

    /* nesting limit */
    size_t depth = PBJSON_MAX_DEPTH + 10;
    char *deep = malloc(depth * 2 + 32);
    assert_non_null(deep);
    strcpy(deep, "{\"bogus\":");
    size_t n = strlen(deep);
    for (size_t i = 0; i < depth; i++)
        deep[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    assert_int_equal(decode_err(rd, deep, 0, err, sizeof err), PBJSON_EDEPTH);
    free(deep);

    /* nested txns beyond the limit */
    const char *open = "{\"success\":[{\"request_txn\":";
    const char *close = "}]}";
    size_t levels = PBJSON_MAX_DEPTH;
    char *txn = malloc(levels * (strlen(open) + strlen(close)) + 8);
    assert_non_null(txn);
    txn[0] = '\0';
    for (size_t i = 0; i < levels; i++)
        strcat(txn, open);
    strcat(txn, "{}");
    for (size_t i = 0; i < levels; i++)
        strcat(txn, close);
    assert_int_equal(decode_err(&etcdserverpb__txn_request__descriptor, txn, 0, err, sizeof err),
                     PBJSON_EDEPTH);
    free(txn);
}

static void test_encode_args(void **state)
{
    (void)state;
    char *out = (char *)0x1;
    assert_int_equal(pbjson_encode(NULL, &out, NULL), PBJSON_EINVAL);
    assert_null(out);
    ProtobufCMessage *m = (ProtobufCMessage *)0x1;
    assert_int_equal(pbjson_decode(NULL, "{}", 2, &m, NULL, 0), PBJSON_EINVAL);
    assert_null(m);
    assert_string_equal(pbjson_strerror(PBJSON_ESYNTAX), "malformed JSON");
    assert_string_equal(pbjson_strerror(12345), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_request),
        cmocka_unit_test(test_range_response),
        cmocka_unit_test(test_put_request),
        cmocka_unit_test(test_txn_request),
        cmocka_unit_test(test_txn_response),
        cmocka_unit_test(test_watch_response),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_enums),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_unknown_and_null),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_encode_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
