/*
 * lincheck_json_test.c: the strict JSON parser and the JSON-lines reader.
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

#include "lincheck/lincheck.h"
#include "lincheck/lincheck_json.h"

static int parse(lincheck_json_object *obj, const char *text, char *err, size_t errlen)
{
    return lincheck_json_parse(obj, text, strlen(text), err, errlen);
}

static void test_parse_values(void **state)
{
    (void)state;
    lincheck_json_object obj;
    lincheck_json_object_init(&obj);
    char err[256] = "";
    const char *text =
        " {\"s\" : \"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\", \"u\":\"\\u00e9\\u20ac\\ud83d\\ude00\","
        "\"z\":\"x\\u0000y\",\"n\":-12.5e+3,\"i\":0,\"t\":true,\"f\":false,"
        "\"nul\":null,\"raw\":\"\xc3\xa9\xe2\x82\xac\", \"\":\"\"}\r\n";
    assert_int_equal(parse(&obj, text, err, sizeof(err)), 0);
    assert_int_equal(obj.count, 10);
    const lincheck_json_field *f = lincheck_json_get(&obj, "s");
    assert_non_null(f);
    assert_int_equal(f->type, LINCHECK_JSON_STRING);
    assert_string_equal(f->str, "a\"b\\c/\b\f\n\r\t");
    f = lincheck_json_get(&obj, "u");
    assert_string_equal(f->str, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    f = lincheck_json_get(&obj, "z");
    assert_int_equal(f->str_len, 3);
    assert_memory_equal(f->str, "x\0y", 3);
    f = lincheck_json_get(&obj, "n");
    assert_int_equal(f->type, LINCHECK_JSON_NUMBER);
    assert_int_equal(f->str_len, strlen("-12.5e+3"));
    assert_memory_equal(f->str, "-12.5e+3", f->str_len);
    uint64_t v;
    assert_int_equal(lincheck_json_u64(f, &v), LINCHECK_EINVAL);
    f = lincheck_json_get(&obj, "i");
    assert_int_equal(lincheck_json_u64(f, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(lincheck_json_get(&obj, "t")->type, LINCHECK_JSON_TRUE);
    assert_int_equal(lincheck_json_get(&obj, "f")->type, LINCHECK_JSON_FALSE);
    assert_int_equal(lincheck_json_get(&obj, "nul")->type, LINCHECK_JSON_NULL);
    assert_string_equal(lincheck_json_get(&obj, "raw")->str, "\xc3\xa9\xe2\x82\xac");
    assert_int_equal(lincheck_json_get(&obj, "")->str_len, 0);
    assert_null(lincheck_json_get(&obj, "missing"));

    assert_int_equal(parse(&obj, "{}", err, sizeof(err)), 0);
    assert_int_equal(obj.count, 0);
    assert_int_equal(parse(&obj, "  { }  ", err, sizeof(err)), 0);
    lincheck_json_object_fini(&obj);
}

static void test_parse_u64(void **state)
{
    (void)state;
    lincheck_json_object obj;
    lincheck_json_object_init(&obj);
    uint64_t v;
    assert_int_equal(parse(&obj,
                           "{\"a\":18446744073709551615,\"b\":18446744073709551616,"
                           "\"c\":-1,\"d\":1.0,\"e\":1e3,\"f\":\"7\"}",
                           NULL, 0),
                     0);
    assert_int_equal(lincheck_json_u64(lincheck_json_get(&obj, "a"), &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(lincheck_json_u64(lincheck_json_get(&obj, "b"), &v), LINCHECK_EINVAL);
    assert_int_equal(lincheck_json_u64(lincheck_json_get(&obj, "c"), &v), LINCHECK_EINVAL);
    assert_int_equal(lincheck_json_u64(lincheck_json_get(&obj, "d"), &v), LINCHECK_EINVAL);
    assert_int_equal(lincheck_json_u64(lincheck_json_get(&obj, "e"), &v), LINCHECK_EINVAL);
    assert_int_equal(lincheck_json_u64(lincheck_json_get(&obj, "f"), &v), LINCHECK_EINVAL);
    lincheck_json_object_fini(&obj);
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *msg;
    } cases[] = {
        {"", "column 1: expected '{'"},
        {"[1]", "expected '{'"},
        {"{\"a\":1,}", "column 8: expected a field name"},
        {"{\"a\" 1}", "expected ':'"},
        {"{'a':1}", "expected a field name"},
        {"{a:1}", "expected a field name"},
        {"{\"a\":01}", "leading zero"},
        {"{\"a\":1.}", "expected a digit"},
        {"{\"a\":-}", "expected a digit"},
        {"{\"a\":1e}", "expected a digit"},
        {"{\"a\":+1}", "invalid value"},
        {"{\"a\":.5}", "invalid value"},
        {"{\"a\":tru}", "invalid value"},
        {"{\"a\":nul}", "invalid value"},
        {"{\"a\":truex}", "expected ',' or '}'"},
        {"{\"a\":\"x}", "unterminated string"},
        {"{\"a\":\"x\ty\"}", "control character"},
        {"{\"a\":\"\\x\"}", "bad escape"},
        {"{\"a\":\"\\u12\"}", "bad hex digit"},
        {"{\"a\":\"\\u12", "truncated"},
        {"{\"a\":\"\\ud800\"}", "surrogate"},
        {"{\"a\":\"\\ud800\\u0041\"}", "surrogate"},
        {"{\"a\":\"\\udc00\"}", "lone low surrogate"},
        {"{\"a\":\"\xff\"}", "invalid UTF-8"},
        {"{\"a\":\"\xc0\xaf\"}", "invalid UTF-8"},     /* overlong */
        {"{\"a\":\"\xed\xa0\x80\"}", "invalid UTF-8"}, /* encoded surrogate */
        {"{\"a\":\"\xe2\x82\"}", "invalid UTF-8"},     /* truncated */
        {"{\"a\":{\"b\":1}}", "nested"},
        {"{\"a\":[1]}", "nested"},
        {"{\"a\":1,\"a\":2}", "column 8: duplicate field \"a\""},
        {"{\"a\":1} x", "unexpected characters"},
        {"{\"a\":1}{}", "unexpected characters"},
        {"{\"a\":1", "expected ',' or '}'"},
        {"{\"a\":", "missing value"},
    };
    lincheck_json_object obj;
    lincheck_json_object_init(&obj);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        int rc = parse(&obj, cases[i].text, err, sizeof(err));
        if (rc != LINCHECK_EPARSE || strstr(err, cases[i].msg) == NULL) {
            print_error("case %zu (%s): rc %d, message '%s', wanted '%s'\n", i, cases[i].text, rc,
                        err, cases[i].msg);
            fail();
        }
    }
    /* NUL byte in the middle of a line */
    char err[256] = "";
    assert_int_equal(lincheck_json_parse(&obj, "{\"a\":1}\0", 8, err, sizeof(err)),
                     LINCHECK_EPARSE);
    /* too many fields */
    char big[1024];
    size_t len = 0;
    big[len++] = '{';
    for (int i = 0; i <= LINCHECK_JSON_MAX_FIELDS; i++) {
        len += (size_t)snprintf(big + len, sizeof(big) - len, "%s\"f%d\":%d", i ? "," : "", i, i);
    }
    big[len++] = '}';
    big[len] = '\0';
    assert_int_equal(parse(&obj, big, err, sizeof(err)), LINCHECK_EPARSE);
    assert_non_null(strstr(err, "more than"));
    lincheck_json_object_fini(&obj);
}

/* Lines accepted or refused by lincheck_history_add_jsonl(). */
static void test_records(void **state)
{
    (void)state;
    static const char *const good[] = {
        "{\"id\":1,\"client\":3,\"key\":\"k1\",\"op\":\"write\",\"value\":\"5\",\"start\":100,"
        "\"end\":230,\"status\":\"ok\"}",
        "{\"id\":2,\"client\":4,\"key\":\"k1\",\"op\":\"read\",\"value\":null,\"start\":120,"
        "\"end\":150,\"status\":\"ok\"}",
        "{\"id\":3,\"client\":4,\"key\":\"k1\",\"op\":\"cas\",\"expect\":\"5\",\"value\":\"6\","
        "\"result\":false,\"start\":300,\"end\":310,\"status\":\"ok\"}",
        "{\"id\":4,\"client\":5,\"key\":\"k2\",\"op\":\"write\",\"value\":\"x\",\"start\":400,"
        "\"status\":\"unknown\"}",
        /* unknown with end null, extra scalar fields ignored */
        "{\"id\":5,\"client\":5,\"key\":\"k2\",\"op\":\"delete\",\"start\":400,\"end\":null,"
        "\"status\":\"unknown\",\"node\":\"n1\",\"latency\":1.5,\"retry\":false}",
        /* unknown cas needs no result; failed read needs no value */
        "{\"id\":6,\"client\":6,\"key\":\"k2\",\"op\":\"cas\",\"expect\":null,\"value\":\"y\","
        "\"start\":500,\"status\":\"unknown\"}",
        "{\"id\":7,\"client\":6,\"key\":\"k2\",\"op\":\"read\",\"start\":600,\"end\":601,"
        "\"status\":\"fail\"}",
        /* empty strings, non-ASCII keys, null expect/result on a read */
        "{\"id\":8,\"client\":0,\"key\":\"\",\"op\":\"write\",\"value\":\"\",\"start\":0,"
        "\"end\":0,\"status\":\"ok\"}",
        "{\"id\":9,\"client\":0,\"key\":\"\\u00e9\",\"op\":\"read\",\"value\":null,\"expect\":null,"
        "\"result\":null,\"start\":0,\"end\":0,\"status\":\"ok\"}",
    };
    static const struct {
        const char *line;
        const char *msg;
    } bad[] = {
        {"{\"client\":1,\"key\":\"k\",\"op\":\"read\",\"value\":null,\"start\":1,\"end\":2,"
         "\"status\":\"ok\"}",
         "missing field \"id\""},
        {"{\"id\":-1,\"client\":1,\"key\":\"k\",\"op\":\"read\",\"value\":null,\"start\":1,"
         "\"end\":2,\"status\":\"ok\"}",
         "\"id\" must be a non-negative integer"},
        {"{\"id\":1,\"client\":\"1\",\"key\":\"k\",\"op\":\"read\",\"value\":null,\"start\":1,"
         "\"end\":2,\"status\":\"ok\"}",
         "\"client\" must be"},
        {"{\"id\":1,\"client\":1,\"key\":5,\"op\":\"read\",\"value\":null,\"start\":1,\"end\":2,"
         "\"status\":\"ok\"}",
         "\"key\""},
        {"{\"id\":1,\"client\":1,\"key\":\"k\",\"op\":\"get\",\"value\":null,\"start\":1,"
         "\"end\":2,\"status\":\"ok\"}",
         "field \"op\" must be"},
        {"{\"id\":1,\"client\":1,\"key\":\"k\",\"op\":\"read\",\"value\":null,\"start\":1,"
         "\"end\":2}",
         "field \"status\" must be \"ok\", \"fail\" or \"unknown\" (missing)"},
        {"{\"id\":1,\"client\":1,\"key\":\"k\",\"op\":\"read\",\"value\":null,\"start\":1,"
         "\"status\":\"ok\"}",
         "needs an \"end\""},
        {"{\"id\":1,\"client\":1,\"key\":\"k\",\"op\":\"read\",\"value\":null,\"start\":5,"
         "\"end\":4,\"status\":\"ok\"}",
         "before \"start\""},
        {"{\"id\":1,\"client\":1,\"key\":\"k\",\"op\":\"read\",\"start\":1,\"end\":2,"
         "\"status\":\"ok\"}",
         "an ok read needs \"value\""},
        {"{\"id\":1,\"client\":1,\"key\":\"k\",\"op\":\"read\",\"value\":5,\"start\":1,\"end\":2,"
         "\"status\":\"ok\"}",
         "\"value\" must be a string or null"},
        {"{\"id\":1,\"client\":1,\"key\":\"k\",\"op\":\"write\",\"value\":null,\"start\":1,"
         "\"end\":2,\"status\":\"ok\"}",
         "op \"write\" needs \"value\""},
        {"{\"id\":1,\"client\":1,\"key\":\"k\",\"op\":\"delete\",\"value\":\"x\",\"start\":1,"
         "\"end\":2,\"status\":\"ok\"}",
         "takes no \"value\""},
        {"{\"id\":1,\"client\":1,\"key\":\"k\",\"op\":\"cas\",\"value\":\"x\",\"result\":true,"
         "\"start\":1,\"end\":2,\"status\":\"ok\"}",
         "needs \"expect\""},
        {"{\"id\":1,\"client\":1,\"key\":\"k\",\"op\":\"cas\",\"expect\":null,\"value\":\"x\","
         "\"start\":1,\"end\":2,\"status\":\"ok\"}",
         "an ok cas needs \"result\""},
        {"{\"id\":1,\"client\":1,\"key\":\"k\",\"op\":\"cas\",\"expect\":null,\"value\":\"x\","
         "\"result\":1,\"start\":1,\"end\":2,\"status\":\"ok\"}",
         "\"result\" must be true, false or null"},
        {"{\"id\":1,\"client\":1,\"key\":\"k\",\"op\":\"write\",\"value\":\"x\",\"expect\":\"y\","
         "\"start\":1,\"end\":2,\"status\":\"ok\"}",
         "\"expect\" does not apply to op \"write\""},
        {"{\"id\":1,\"client\":1,\"key\":\"k\",\"op\":\"write\",\"value\":\"x\",\"start\":1,"
         "\"end\":18446744073709551615,\"status\":\"ok\"}",
         "below 2^64-1"},
        {"{\"id\":1,\"client\":1,\"key\":\"k\",\"op\":\"write\",\"value\":\"x\",\"start\":1,"
         "\"end\":2,\"status\":\"OK\"}",
         "field \"status\" must be"},
    };
    lincheck_history *h = lincheck_history_new();
    assert_non_null(h);
    char err[256];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        err[0] = '\0';
        int rc = lincheck_history_add_jsonl(h, good[i], strlen(good[i]), err, sizeof(err));
        if (rc != 0) {
            print_error("good line %zu refused: %s\n", i, err);
            fail();
        }
    }
    assert_int_equal(lincheck_history_count(h), sizeof(good) / sizeof(good[0]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        int rc = lincheck_history_add_jsonl(h, bad[i].line, strlen(bad[i].line), err, sizeof(err));
        if (rc != LINCHECK_EPARSE || strstr(err, bad[i].msg) == NULL) {
            print_error("bad line %zu: rc %d, message '%s', wanted '%s'\n", i, rc, err, bad[i].msg);
            fail();
        }
    }
    assert_int_equal(lincheck_history_count(h), sizeof(good) / sizeof(good[0]));
    /* The first three lines are the brief's format example, which is not
     * linearizable: the cas at 300 failed although "5" was surely there. */
    lincheck_result res;
    assert_int_equal(lincheck_check(h, NULL, &res), 0);
    assert_int_equal(res.verdict, LINCHECK_VIOLATION);
    assert_int_equal(res.op_id, 3);
    lincheck_history_free(h);
}

/* Write `len` bytes to a new temporary file; returns its path (static). */
static const char *temp_file(const char *data, size_t len)
{
    static char path[64];
    snprintf(path, sizeof(path), "lincheck_json_test_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        assert_true(n > 0);
        off += (size_t)n;
    }
    close(fd);
    return path;
}

static void test_load_files(void **state)
{
    (void)state;
    lincheck_history *h = lincheck_history_new();
    assert_non_null(h);
    char err[512];
    assert_int_equal(
        lincheck_history_load_jsonl(h, LINCHECK_DATA_DIR "/sequential_ok.jsonl", err, sizeof(err)),
        0);
    assert_int_equal(lincheck_history_count(h), 4);
    lincheck_result res;
    assert_int_equal(lincheck_check(h, NULL, &res), 0);
    assert_int_equal(res.verdict, LINCHECK_OK);
    assert_int_equal(res.keys_checked, 1);

    /* A bad third line: named, and nothing from the file stays. */
    assert_int_equal(
        lincheck_history_load_jsonl(h, LINCHECK_DATA_DIR "/bad_json.jsonl", err, sizeof(err)),
        LINCHECK_EPARSE);
    assert_non_null(strstr(err, "bad_json.jsonl:3: column "));
    assert_int_equal(lincheck_history_count(h), 4);

    assert_int_equal(
        lincheck_history_load_jsonl(h, LINCHECK_DATA_DIR "/nope.jsonl", err, sizeof(err)),
        LINCHECK_EIO);
    assert_non_null(strstr(err, "cannot open"));
    assert_int_equal(lincheck_history_load_jsonl(NULL, "x", err, sizeof(err)), LINCHECK_EINVAL);

    /* CRLF endings, blank lines, no newline at the end. */
    const char *text = "\r\n{\"id\":1,\"client\":1,\"key\":\"k\",\"op\":\"write\",\"value\":\"1\","
                       "\"start\":0,\"end\":1,\"status\":\"ok\"}\r\n   \n\n"
                       "{\"id\":2,\"client\":1,\"key\":\"k\",\"op\":\"read\",\"value\":\"1\","
                       "\"start\":2,\"end\":3,\"status\":\"ok\"}";
    const char *path = temp_file(text, strlen(text));
    lincheck_history_reset(h);
    assert_int_equal(lincheck_history_load_jsonl(h, path, err, sizeof(err)), 0);
    assert_int_equal(lincheck_history_count(h), 2);
    unlink(path);

    /* A line number counts blank lines too. */
    text = "\n\n{\"id\":1}\n";
    path = temp_file(text, strlen(text));
    assert_int_equal(lincheck_history_load_jsonl(h, path, err, sizeof(err)), LINCHECK_EPARSE);
    assert_non_null(strstr(err, ":3: missing field \"client\""));
    unlink(path);

    /* An over-long line is refused without reading it all into memory. */
    size_t big = LINCHECK_MAX_LINE_LEN + 100;
    char *data = malloc(big);
    assert_non_null(data);
    memset(data, ' ', big);
    path = temp_file(data, big);
    free(data);
    assert_int_equal(lincheck_history_load_jsonl(h, path, err, sizeof(err)), LINCHECK_ETOOBIG);
    assert_non_null(strstr(err, ":1: line longer than"));
    unlink(path);
    lincheck_history_free(h);
}

/* Many lines, crossing the reader's buffer boundaries. */
static void test_load_many_lines(void **state)
{
    (void)state;
    size_t cap = 4 << 20;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t len = 0;
    int n = 20000;
    for (int i = 0; i < n; i++) {
        len +=
            (size_t)snprintf(text + len, cap - len,
                             "{\"id\":%d,\"client\":%d,\"key\":\"key-%d\",\"op\":\"write\","
                             "\"value\":\"value-%d\",\"start\":%d,\"end\":%d,\"status\":\"ok\"}\n",
                             i, i % 7, i % 13, i, 10 * i, 10 * i + 5);
        assert_true(len < cap);
    }
    const char *path = temp_file(text, len);
    free(text);
    lincheck_history *h = lincheck_history_new();
    assert_non_null(h);
    char err[256];
    assert_int_equal(lincheck_history_load_jsonl(h, path, err, sizeof(err)), 0);
    assert_int_equal(lincheck_history_count(h), (size_t)n);
    unlink(path);
    lincheck_result res;
    assert_int_equal(lincheck_check(h, NULL, &res), 0);
    assert_int_equal(res.verdict, LINCHECK_OK);
    assert_int_equal(res.keys_checked, 13);
    lincheck_history_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_values), cmocka_unit_test(test_parse_u64),
        cmocka_unit_test(test_parse_errors), cmocka_unit_test(test_records),
        cmocka_unit_test(test_load_files),   cmocka_unit_test(test_load_many_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
