/*
 * proto_pbjson_types_test.c — pbjson on every scalar type (test-only messages in
 * tests/unit/proto_testdata/pbjson_test.proto), plus a seeded mutation run: damaged JSON
 * must give an error or a message that re-encodes stably, never a crash or a leak (ASan).
 */
#include <math.h>
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
#include "pbjson_test.pb-c.h"

static const char *FULL =
    "{\"i32\":-5,\"s32\":-6,\"sf32\":-7,\"u32\":8,\"f32\":9,\"i64\":\"-10\",\"s64\":\"-11\","
    "\"sf64\":\"-12\",\"u64\":\"13\",\"f64\":\"14\",\"fl\":1.5,\"db\":-0.1,\"b\":true,"
    "\"str\":\"h\xc3\xa9llo\",\"by\":\"AQID\",\"color\":\"BLUE\",\"child\":{\"i32\":1},"
    "\"dbs\":[1,2.5,\"NaN\",\"Infinity\",\"-Infinity\",1e+300,1e-7],\"strs\":[\"a\",\"\"],"
    "\"children\":[{},{\"str\":\"x\"}],\"c_str\":\"\",\"colors\":[\"GREEN\",7],"
    "\"bys\":[\"\",\"AA==\"]}";

static Cordtest__Scalars *decode(const char *json)
{
    ProtobufCMessage *m = NULL;
    char err[200];
    int rc = pbjson_decode(&cordtest__scalars__descriptor, json, strlen(json), &m, err, sizeof err);
    if (rc != PBJSON_OK)
        fail_msg("%s: %s", json, err);
    return (Cordtest__Scalars *)m;
}

static int decode_rc(const char *json)
{
    ProtobufCMessage *m = NULL;
    char err[200];
    int rc = pbjson_decode(&cordtest__scalars__descriptor, json, strlen(json), &m, err, sizeof err);
    if (rc == PBJSON_OK)
        pbjson_message_free(m);
    return rc;
}

static void assert_encodes(const ProtobufCMessage *m, unsigned flags, const char *want)
{
    char *got = NULL;
    assert_int_equal(pbjson_encode_ex(m, flags, &got, NULL), PBJSON_OK);
    if (strcmp(got, want) != 0)
        fail_msg("got  %s\nwant %s", got, want);
    pbjson_free(got);
}

static void test_all_types(void **state)
{
    (void)state;
    Cordtest__Scalars *s = decode(FULL);
    assert_int_equal(s->i32, -5);
    assert_int_equal(s->s32, -6);
    assert_int_equal(s->sf32, -7);
    assert_int_equal(s->u32, 8);
    assert_int_equal(s->f32, 9);
    assert_int_equal(s->i64, -10);
    assert_int_equal(s->s64, -11);
    assert_int_equal(s->sf64, -12);
    assert_int_equal(s->u64, 13);
    assert_int_equal(s->f64, 14);
    assert_true(s->fl == 1.5f);
    assert_true(s->db == -0.1);
    assert_true(s->b);
    assert_string_equal(s->str, "h\xc3\xa9llo");
    assert_int_equal(s->by.len, 3);
    assert_int_equal(s->color, CORDTEST__COLOR__BLUE);
    assert_int_equal(s->child->i32, 1);
    assert_int_equal(s->n_dbs, 7);
    assert_true(isnan(s->dbs[2]));
    assert_true(isinf(s->dbs[3]) && s->dbs[3] > 0);
    assert_true(isinf(s->dbs[4]) && s->dbs[4] < 0);
    assert_int_equal(s->n_strs, 2);
    assert_string_equal(s->strs[1], "");
    assert_int_equal(s->n_children, 2);
    assert_int_equal(s->choice_case, CORDTEST__SCALARS__CHOICE_C_STR);
    assert_int_equal(s->n_colors, 2);
    assert_int_equal(s->colors[1], 7);
    assert_int_equal(s->n_bys, 2);
    assert_int_equal(s->bys[0].len, 0);
    assert_encodes(&s->base, 0, FULL);

    /* binary round trip keeps it */
    size_t n = protobuf_c_message_get_packed_size(&s->base);
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    protobuf_c_message_pack(&s->base, buf);
    ProtobufCMessage *u = protobuf_c_message_unpack(&cordtest__scalars__descriptor, NULL, n, buf);
    assert_non_null(u);
    assert_encodes(u, 0, FULL);
    protobuf_c_message_free_unpacked(u, NULL);
    free(buf);
    pbjson_message_free(&s->base);

    /* numbers as strings, strings as numbers */
    s = decode("{\"i32\":\"-2147483648\",\"u32\":\"4294967295\",\"fl\":\"2.5\",\"db\":\"-1e-3\","
               "\"i64\":12,\"c_i32\":0}");
    assert_true(s->i32 == INT32_MIN);
    assert_true(s->u32 == UINT32_MAX);
    assert_true(s->fl == 2.5f);
    assert_true(s->db == -1e-3);
    assert_int_equal(s->choice_case, CORDTEST__SCALARS__CHOICE_C_I32);
    assert_encodes(&s->base, 0,
                   "{\"i32\":-2147483648,\"u32\":4294967295,\"i64\":\"12\",\"fl\":2.5,"
                   "\"db\":-0.001,\"c_i32\":0}");
    pbjson_message_free(&s->base);
}

static void test_ranges_and_types(void **state)
{
    (void)state;
    assert_int_equal(decode_rc("{\"i32\":2147483648}"), PBJSON_ERANGE);
    assert_int_equal(decode_rc("{\"i32\":-2147483649}"), PBJSON_ERANGE);
    assert_int_equal(decode_rc("{\"s32\":\"99999999999\"}"), PBJSON_ERANGE);
    assert_int_equal(decode_rc("{\"u32\":-1}"), PBJSON_ERANGE);
    assert_int_equal(decode_rc("{\"f64\":\"-0\"}"), PBJSON_ERANGE);
    assert_int_equal(decode_rc("{\"i64\":\"-0\"}"), PBJSON_OK);
    assert_int_equal(decode_rc("{\"u64\":\"18446744073709551616\"}"), PBJSON_ERANGE);
    assert_int_equal(decode_rc("{\"fl\":1e39}"), PBJSON_ERANGE);
    assert_int_equal(decode_rc("{\"db\":1e309}"), PBJSON_ERANGE);
    assert_int_equal(decode_rc("{\"db\":\"abc\"}"), PBJSON_ETYPE);
    assert_int_equal(decode_rc("{\"db\":\"1.5x\"}"), PBJSON_ETYPE);
    assert_int_equal(decode_rc("{\"db\":true}"), PBJSON_ETYPE);
    assert_int_equal(decode_rc("{\"str\":5}"), PBJSON_ETYPE);
    assert_int_equal(decode_rc("{\"str\":{}}"), PBJSON_ETYPE);
    assert_int_equal(decode_rc("{\"child\":[]}"), PBJSON_ETYPE);
    assert_int_equal(decode_rc("{\"child\":\"x\"}"), PBJSON_ETYPE);
    assert_int_equal(decode_rc("{\"strs\":\"x\"}"), PBJSON_ETYPE);
    assert_int_equal(decode_rc("{\"strs\":[\"a\",null]}"), PBJSON_ETYPE);
    assert_int_equal(decode_rc("{\"strs\":[\"a\",5]}"), PBJSON_ETYPE);
    assert_int_equal(decode_rc("{\"children\":[{},{\"i32\":\"x\"}]}"), PBJSON_ETYPE);
    assert_int_equal(decode_rc("{\"color\":\"PURPLE\"}"), PBJSON_ETYPE);
    assert_int_equal(decode_rc("{\"color\":\"1\"}"), PBJSON_ETYPE); /* jsonpb: names only */
    assert_int_equal(decode_rc("{\"colors\":[\"RED\",\"PINK\"]}"), PBJSON_ETYPE);
    assert_int_equal(decode_rc("{\"bys\":[\"AA==\",\"***\"]}"), PBJSON_ETYPE);
    assert_int_equal(decode_rc("{\"c_msg\":{\"c_msg\":{\"c_str\":7}}}"), PBJSON_ETYPE);
}

static void test_oneof_and_duplicates(void **state)
{
    (void)state;
    /* switching oneof members frees the previous one (ASan checks the leaks) */
    Cordtest__Scalars *s = decode("{\"c_str\":\"abc\",\"c_msg\":{\"c_str\":\"x\",\"strs\":[\"q\"]},"
                                  "\"c_i32\":3,\"c_msg\":{\"i32\":4},\"c_str\":\"end\"}");
    assert_int_equal(s->choice_case, CORDTEST__SCALARS__CHOICE_C_STR);
    assert_string_equal(s->c_str, "end");
    pbjson_message_free(&s->base);
    s = decode("{\"c_str\":\"abc\",\"c_msg\":{\"i32\":4}}");
    assert_int_equal(s->choice_case, CORDTEST__SCALARS__CHOICE_C_MSG);
    assert_int_equal(s->c_msg->i32, 4);
    assert_encodes(&s->base, 0, "{\"c_msg\":{\"i32\":4}}");
    pbjson_message_free(&s->base);
    /* null clears what an earlier occurrence set */
    s = decode("{\"str\":\"a\",\"child\":{\"i32\":1},\"by\":\"AA==\",\"dbs\":[1],\"c_str\":\"z\","
               "\"str\":null,\"child\":null,\"by\":null,\"dbs\":null,\"c_str\":null}");
    assert_encodes(&s->base, 0, "{}");
    pbjson_message_free(&s->base);
    /* duplicates: the last wins */
    s = decode("{\"str\":\"a\",\"str\":\"b\",\"child\":{\"i32\":1},\"child\":{\"i32\":2},"
               "\"bys\":[\"AA==\"],\"bys\":[\"AQ==\",\"Ag==\"],\"by\":\"AA==\",\"by\":\"AQ==\"}");
    assert_encodes(&s->base, 0,
                   "{\"str\":\"b\",\"by\":\"AQ==\",\"child\":{\"i32\":2},\"bys\":[\"AQ==\","
                   "\"Ag==\"]}");
    pbjson_message_free(&s->base);
}

static void test_emit_defaults(void **state)
{
    (void)state;
    Cordtest__Scalars s = CORDTEST__SCALARS__INIT;
    assert_encodes(&s.base, 0, "{}");
    assert_encodes(
        &s.base, PBJSON_ENCODE_EMIT_DEFAULTS,
        "{\"i32\":0,\"s32\":0,\"sf32\":0,\"u32\":0,\"f32\":0,\"i64\":\"0\",\"s64\":\"0\","
        "\"sf64\":\"0\",\"u64\":\"0\",\"f64\":\"0\",\"fl\":0,\"db\":0,\"b\":false,"
        "\"str\":\"\",\"by\":\"\",\"color\":\"RED\",\"child\":null,\"dbs\":[],"
        "\"strs\":[],\"children\":[],\"colors\":[],\"bys\":[]}");
    /* -0.0 is not the default */
    s.db = -0.0;
    assert_encodes(&s.base, 0, "{\"db\":-0}");
}

/* Numbers are written as Go's encoding/json writes them. */
static void test_float_format(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {1e20, "100000000000000000000"},
        {1e21, "1e+21"},
        {0.00001, "0.00001"},
        {1e-6, "0.000001"},
        {1e-7, "1e-7"},
        {123456789.125, "123456789.125"},
        {0.1, "0.1"},
        {1.0 / 3, "0.3333333333333333"},
        {-2.5e-300, "-2.5e-300"},
        {5e-324, "5e-324"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
    };
    char want[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Cordtest__Scalars s = CORDTEST__SCALARS__INIT;
        s.db = cases[i].v;
        snprintf(want, sizeof want, "{\"db\":%s}", cases[i].want);
        assert_encodes(&s.base, 0, want);
    }
    Cordtest__Scalars f = CORDTEST__SCALARS__INIT;
    f.fl = 0.1f; /* float32 shortest, not the double expansion of 0.1f */
    assert_encodes(&f.base, 0, "{\"fl\":0.1}");
    f.fl = 16777216.0f;
    assert_encodes(&f.base, 0, "{\"fl\":16777216}");
}

/* ------------------------------------------------------------------------------------------ */
/* Seeded mutations                                                                             */

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void mutate_run(const ProtobufCMessageDescriptor *d, const char *seed_json, int iters)
{
    static const char alphabet[] = "{}[]\":,\\ 0123456789-+.eEtrufalsn\x01\xff\xc3 AQ==";
    size_t base_len = strlen(seed_json);
    char *buf = malloc(base_len * 2 + 16);
    assert_non_null(buf);
    for (int it = 0; it < iters; it++) {
        memcpy(buf, seed_json, base_len);
        size_t len = base_len;
        int edits = 1 + (int)(rnd() % 4);
        for (int e = 0; e < edits; e++) {
            size_t pos = len == 0 ? 0 : rnd() % len;
            switch (rnd() % 4) {
            case 0:
                buf[pos] = alphabet[rnd() % (sizeof alphabet - 1)];
                break;
            case 1: /* delete a byte */
                if (len > 0) {
                    memmove(buf + pos, buf + pos + 1, len - pos - 1);
                    len--;
                }
                break;
            case 2: /* insert a byte */
                if (len < base_len * 2) {
                    memmove(buf + pos + 1, buf + pos, len - pos);
                    buf[pos] = alphabet[rnd() % (sizeof alphabet - 1)];
                    len++;
                }
                break;
            default: /* truncate */
                len = pos;
                break;
            }
        }
        ProtobufCMessage *m = NULL;
        char err[128];
        int rc = pbjson_decode(d, buf, len, &m, err, sizeof err);
        if (rc != PBJSON_OK) {
            assert_null(m);
            assert_true(strncmp(err, "offset ", 7) == 0);
            continue;
        }
        /* accepted: encode, decode, encode again gives the same text */
        char *a = NULL, *b = NULL;
        assert_int_equal(pbjson_encode(m, &a, NULL), PBJSON_OK);
        ProtobufCMessage *m2 = NULL;
        if (pbjson_decode(d, a, strlen(a), &m2, err, sizeof err) != PBJSON_OK)
            fail_msg("re-decode of %s failed: %s", a, err);
        assert_int_equal(pbjson_encode(m2, &b, NULL), PBJSON_OK);
        assert_string_equal(a, b);
        pbjson_free(a);
        pbjson_free(b);
        pbjson_message_free(m);
        pbjson_message_free(m2);
    }
    free(buf);
}

static void test_mutations(void **state)
{
    (void)state;
    rng_state = 0x9E3779B97F4A7C15ull;
    mutate_run(&cordtest__scalars__descriptor, FULL, 20000);
    mutate_run(&etcdserverpb__txn_request__descriptor,
               "{\"compare\":[{\"result\":\"GREATER\",\"key\":\"YQ==\",\"version\":\"0\"},"
               "{\"target\":\"VALUE\",\"key\":\"ZQ==\",\"value\":\"dg==\"}],\"success\":["
               "{\"request_put\":{\"key\":\"YQ==\",\"value\":\"MQ==\"}},{\"request_txn\":{"
               "\"success\":[{\"request_range\":{\"key\":\"eA==\",\"limit\":\"3\"}}]}}],"
               "\"failure\":[{\"request_delete_range\":{\"key\":\"YQ==\",\"prev_kv\":true}}]}",
               20000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_types),
        cmocka_unit_test(test_ranges_and_types),
        cmocka_unit_test(test_oneof_and_duplicates),
        cmocka_unit_test(test_emit_defaults),
        cmocka_unit_test(test_float_format),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
