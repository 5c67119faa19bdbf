/*
 * proto_golden_test.c — cord's .proto files and pbjson against a real etcd 3.4.23.
 *
 * tests/unit/proto_golden/etcd-3.4.txt (made by proto_golden_capture.py) holds, per case,
 * the gRPC method, the request as gateway JSON and as protobuf bytes, etcd's gRPC response
 * bytes and etcd's gateway JSON for the same request at the same revision. Checked here:
 *   1. the method resolves through the generated service descriptors;
 *   2. pbjson_decode(request JSON) packs to exactly the request bytes;
 *   3. etcd's response bytes unpack with our descriptors and pbjson_encode gives exactly
 *      etcd's gateway JSON;
 *   4. pbjson_decode(etcd's JSON) packs to exactly etcd's response bytes.
 * Usage: proto_golden_test <golden file>
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <cmocka.h>

#include "api/pbjson.h"
#include "etcdserverpb/rpc.pb-c.h"

static const char *golden_path;

static const ProtobufCServiceDescriptor *const services[] = {
    &etcdserverpb__kv__descriptor,          &etcdserverpb__watch__descriptor,
    &etcdserverpb__lease__descriptor,       &etcdserverpb__cluster__descriptor,
    &etcdserverpb__maintenance__descriptor,
};

/* "/etcdserverpb.KV/Range" -> the method descriptor. */
static const ProtobufCMethodDescriptor *find_method(const char *path)
{
    if (path[0] != '/')
        return NULL;
    const char *slash = strchr(path + 1, '/');
    if (slash == NULL)
        return NULL;
    size_t sn = (size_t)(slash - path - 1);
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++) {
        const ProtobufCServiceDescriptor *s = services[i];
        if (strlen(s->name) == sn && memcmp(s->name, path + 1, sn) == 0)
            return protobuf_c_service_descriptor_get_method_by_name(s, slash + 1);
    }
    return NULL;
}

static uint8_t *unhex(const char *h, size_t *n)
{
    size_t len = strlen(h);
    assert_int_equal(len % 2, 0);
    uint8_t *out = malloc(len / 2 + 1);
    assert_non_null(out);
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v;
        assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    *n = len / 2;
    return out;
}

static void assert_packs_to(const ProtobufCMessage *m, const uint8_t *want, size_t want_len,
                            const char *what, const char *name)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n + 1);
    assert_non_null(buf);
    protobuf_c_message_pack(m, buf);
    if (n != want_len || (n > 0 && memcmp(buf, want, n) != 0))
        fail_msg("%s: %s packs to %zu bytes, etcd has %zu (or the bytes differ)", name, what, n,
                 want_len);
    free(buf);
}

static void check_case(char *line)
{
    char *fields[6];
    int nf = 0;
    char *rest = line;
    char *t;
    while (nf < 6 && (t = strsep(&rest, "\t")) != NULL)
        fields[nf++] = t;
    assert_int_equal(nf, 6);
    const char *name = fields[0];
    const char *method = fields[1];
    const char *req_json = fields[2];
    const char *req_hex = fields[3];
    const char *resp_hex = fields[4];
    const char *resp_json = fields[5];

    const ProtobufCMethodDescriptor *md = find_method(method);
    if (md == NULL)
        fail_msg("%s: method %s not found", name, method);

    /* 2. request JSON -> protobuf == etcd's request bytes */
    char err[256];
    ProtobufCMessage *req = NULL;
    if (pbjson_decode(md->input, req_json, strlen(req_json), &req, err, sizeof err) != PBJSON_OK)
        fail_msg("%s: request: %s", name, err);
    size_t req_len;
    uint8_t *req_bin = unhex(req_hex, &req_len);
    assert_packs_to(req, req_bin, req_len, "request JSON", name);
    pbjson_message_free(req);
    free(req_bin);

    /* 3. etcd's response bytes -> JSON == etcd's gateway JSON */
    size_t resp_len;
    uint8_t *resp_bin = unhex(resp_hex, &resp_len);
    ProtobufCMessage *resp = protobuf_c_message_unpack(md->output, NULL, resp_len, resp_bin);
    if (resp == NULL)
        fail_msg("%s: etcd's response does not unpack", name);
    char *json = NULL;
    assert_int_equal(pbjson_encode(resp, &json, NULL), PBJSON_OK);
    if (strcmp(json, resp_json) != 0)
        fail_msg("%s:\n cord %s\n etcd %s", name, json, resp_json);
    pbjson_free(json);
    protobuf_c_message_free_unpacked(resp, NULL);

    /* 4. etcd's JSON -> protobuf == etcd's bytes */
    ProtobufCMessage *back = NULL;
    if (pbjson_decode(md->output, resp_json, strlen(resp_json), &back, err, sizeof err) !=
        PBJSON_OK)
        fail_msg("%s: response: %s", name, err);
    assert_packs_to(back, resp_bin, resp_len, "etcd's response JSON", name);
    pbjson_message_free(back);
    free(resp_bin);
}

static void test_golden(void **state)
{
    (void)state;
    FILE *f = fopen(golden_path, "r");
    if (f == NULL)
        fail_msg("cannot open %s", golden_path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int cases = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (line[n - 1] == '\n')
            line[n - 1] = '\0';
        check_case(line);
        cases++;
    }
    free(line);
    fclose(f);
    print_message("%d golden cases from etcd 3.4.23 match\n", cases);
    assert_true(cases >= 10);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s <golden file>\n", argv[0]);
        return 2;
    }
    golden_path = argv[1];
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_golden)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
