/*
 * Unit tests for src/util/json.c: the number-preserving JSON layer.
 *
 *   - round trips keep every number token's exact text, wherever it sits;
 *   - strings that merely *look* like the internal number tag stay strings;
 *   - Unicode (raw and escaped, surrogate pairs) survives;
 *   - everything the parser promises to reject is rejected with a 400 whose
 *     message names the line;
 *   - the number grammar, the accessors and the constructor;
 *   - the HL7 validator's JSON syntax cases (tests/data/validator-cases) and the HL7 R4
 *     examples (VL_TEST_DATA): number tokens in == number tokens out.
 */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vitalog/util.h"

#include "../support.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

/* A string literal and its length (it may hold NUL bytes). */
#define LIT(s) s, sizeof(s) - 1

static json_t *parse_ok(const char *text)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *j = vl_json_parse(text, strlen(text), NULL, &err);
    if (!j)
        fail_msg("rejected %s: %d %s", text, err.status, vl_error_message(&err));
    assert_int_equal(err.status, 0);
    assert_int_equal(vl_error_count(&err), 0);
    return j;
}

static char *dump_ok(const json_t *j)
{
    size_t len = 0;
    char *s = vl_json_dump(j, &len);
    assert_non_null(s);
    assert_int_equal(len, strlen(s));
    return s;
}

/* No JSON_INTEGER/JSON_REAL anywhere in a parsed document (util.h invariant). */
static void assert_no_jansson_numbers(const json_t *j)
{
    const char *key;
    json_t *v;
    size_t i;
    assert_false(json_is_integer(j));
    assert_false(json_is_real(j));
    if (json_is_object(j)) {
        json_object_foreach ((json_t *)j, key, v)
            assert_no_jansson_numbers(v);
    } else if (json_is_array(j)) {
        json_array_foreach (j, i, v)
            assert_no_jansson_numbers(v);
    }
}

/* parse(text) then dump must give `want` exactly, and dumping is a fixed point. */
static void expect_roundtrip(const char *text, const char *want)
{
    json_t *j = parse_ok(text), *j2;
    char *out = dump_ok(j), *out2;
    assert_no_jansson_numbers(j);
    if (strcmp(out, want) != 0)
        fail_msg("round trip of %s gave %s, want %s", text, out, want);
    j2 = parse_ok(out);
    out2 = dump_ok(j2);
    assert_string_equal(out, out2);
    assert_true(json_equal(j, j2));
    free(out);
    free(out2);
    json_decref(j);
    json_decref(j2);
}

static void expect_reject_lim(const char *what, const char *text, size_t len, size_t max_depth)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_json_limits_t lim = {max_depth};
    json_t *j = vl_json_parse(text, len, &lim, &err);
    if (j) {
        char *d = vl_json_dump(j, NULL);
        fail_msg("accepted %s: %.*s -> %s", what, (int)len, text, d ? d : "(null)");
    }
    if (err.status != 400)
        fail_msg("%s: status %d, want 400 (%s)", what, err.status, vl_error_message(&err));
    assert_true(vl_error_count(&err) >= 1);
    if (!strstr(vl_error_message(&err), "line "))
        fail_msg("%s: message without a line number: %s", what, vl_error_message(&err));
    vl_error_clear(&err);
}

static void expect_reject(const char *what, const char *text)
{
    expect_reject_lim(what, text, strlen(text), 0);
}

/* The message of a rejection of `text`, copied into buf. */
static void reject_message(const char *text, char *buf, size_t n)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *j = vl_json_parse(text, strlen(text), NULL, &err);
    assert_null(j);
    assert_int_equal(err.status, 400);
    snprintf(buf, n, "%s", vl_error_message(&err));
    vl_error_clear(&err);
}

/* ------------------------------------------------------------------------
 * Numbers keep their text
 * ---------------------------------------------------------------------- */

static const char *const numbers[] = {"1.00",
                                      "1E-22",
                                      "-0.0",
                                      "1e+5",
                                      "123456789012345678901234567890",
                                      "0.1",
                                      "0",
                                      "-0",
                                      "42",
                                      "-1",
                                      "1.5",
                                      "3.14159265358979323846264338327950288",
                                      "1E400",
                                      "2e-0",
                                      "1.0e0",
                                      "-1.230E+012",
                                      "0.000",
                                      "100"};

static void test_number_roundtrip(void **state)
{
    (void)state;
    char in[256], want[256];
    for (size_t i = 0; i < sizeof numbers / sizeof *numbers; i++) {
        const char *n = numbers[i];
        json_t *j;

        snprintf(in, sizeof in, "[%s]", n);
        expect_roundtrip(in, in);
        snprintf(in, sizeof in, "[ %s , %s ]", n, n);
        snprintf(want, sizeof want, "[%s,%s]", n, n);
        expect_roundtrip(in, want);
        snprintf(in, sizeof in, "{\"v\":%s}", n);
        expect_roundtrip(in, in);
        snprintf(in, sizeof in, "{\n  \"a\" : [ {\"b\": [[%s]] , \"c\":\"%s\"} ],\n  \"d\":%s\n}",
                 n, n, n);
        snprintf(want, sizeof want, "{\"a\":[{\"b\":[[%s]],\"c\":\"%s\"}],\"d\":%s}", n, n, n);
        expect_roundtrip(in, want);

        /* the parsed value is a tagged number carrying the exact text */
        snprintf(in, sizeof in, "{\"v\":%s,\"s\":\"%s\"}", n, n);
        j = parse_ok(in);
        assert_true(vl_json_is_number(json_object_get(j, "v")));
        assert_false(vl_json_is_string(json_object_get(j, "v")));
        assert_non_null(vl_json_number_text(json_object_get(j, "v")));
        assert_string_equal(vl_json_number_text(json_object_get(j, "v")), n);
        /* a string with number-like text stays a string */
        assert_true(vl_json_is_string(json_object_get(j, "s")));
        assert_false(vl_json_is_number(json_object_get(j, "s")));
        assert_null(vl_json_number_text(json_object_get(j, "s")));
        assert_string_equal(json_string_value(json_object_get(j, "s")), n);
        json_decref(j);
    }
}

static void test_number_values(void **state)
{
    (void)state;
    json_t *j = parse_ok("[1.00,1E-22,-0.0,1e+5,123456789012345678901234567890,0.1]");
    assert_true(vl_json_number_value(json_array_get(j, 0)) == 1.0);
    assert_true(fabs(vl_json_number_value(json_array_get(j, 1)) - 1e-22) < 1e-37);
    assert_true(vl_json_number_value(json_array_get(j, 2)) == 0.0);
    assert_true(signbit(vl_json_number_value(json_array_get(j, 2))));
    assert_true(vl_json_number_value(json_array_get(j, 3)) == 100000.0);
    assert_true(fabs(vl_json_number_value(json_array_get(j, 4)) - 1.2345678901234568e29) < 1e14);
    assert_true(vl_json_number_value(json_array_get(j, 5)) == 0.1);
    json_decref(j);
}

static void test_literals_and_empty_containers(void **state)
{
    (void)state;
    expect_roundtrip("{\"t\":true,\"f\":false,\"n\":null,\"a\":[],\"o\":{},\"s\":\"\"}",
                     "{\"t\":true,\"f\":false,\"n\":null,\"a\":[],\"o\":{},\"s\":\"\"}");
    expect_roundtrip("[\"\",1,\"\",2]", "[\"\",1,\"\",2]");
    expect_roundtrip(" \t\r\n{ \"a\" :\n 1 }\n\n", "{\"a\":1}");
    /* object member order is kept */
    expect_roundtrip("{\"z\":1,\"a\":2,\"m\":3}", "{\"z\":1,\"a\":2,\"m\":3}");
}

/* ------------------------------------------------------------------------
 * Strings that look like the tag
 * ---------------------------------------------------------------------- */

static void test_tag_lookalike_strings(void **state)
{
    (void)state;
    json_t *j;
    /* the six characters \u0001 (escaped backslash), alone and before digits */
    expect_roundtrip("{\"a\":\"\\\\u0001\"}", "{\"a\":\"\\\\u0001\"}");
    expect_roundtrip("[\"\\\\u00011.00\"]", "[\"\\\\u00011.00\"]");
    expect_roundtrip("[\"\\\\\\\\u00011\"]", "[\"\\\\\\\\u00011\"]");
    expect_roundtrip("{\"\\\\u00011\":\"\\\\u0001\"}", "{\"\\\\u00011\":\"\\\\u0001\"}");
    expect_roundtrip("[\"x\\\\\",1,\"\\\\u0001\",2]", "[\"x\\\\\",1,\"\\\\u0001\",2]");

    j = parse_ok("[\"\\\\u00011.00\", \"\\\\u0001\"]");
    assert_true(vl_json_is_string(json_array_get(j, 0)));
    assert_false(vl_json_is_number(json_array_get(j, 0)));
    assert_null(vl_json_number_text(json_array_get(j, 0)));
    assert_string_equal(json_string_value(json_array_get(j, 0)), "\\u00011.00");
    assert_string_equal(json_string_value(json_array_get(j, 1)), "\\u0001");
    json_decref(j);

    /* strings with quotes, backslashes and digits next to numbers */
    expect_roundtrip("[\"\\\"1\\\"\",1,\"\\\\\",-2.50,\"1e5\"]",
                     "[\"\\\"1\\\"\",1,\"\\\\\",-2.50,\"1e5\"]");
}

/* ------------------------------------------------------------------------
 * Unicode
 * ---------------------------------------------------------------------- */

static void test_unicode(void **state)
{
    (void)state;
    json_t *j;
    /* raw UTF-8 passes through */
    expect_roundtrip(
        "{\"n\":\"Jos\xc3\xa9\",\"j\":\"\xe6\x97\xa5\xe6\x9c\xac\",\"e\":\"\xf0\x9f\x98\x80\"}",
        "{\"n\":\"Jos\xc3\xa9\",\"j\":\"\xe6\x97\xa5\xe6\x9c\xac\",\"e\":\"\xf0\x9f\x98\x80\"}");
    /* escapes decode to the same characters (and are written as UTF-8) */
    j = parse_ok("[\"Jos\\u00e9\",\"\\u65e5\\u672C\",\"\\ud83d\\ude00\",\"\\u00C9\"]");
    assert_string_equal(json_string_value(json_array_get(j, 0)), "Jos\xc3\xa9");
    assert_string_equal(json_string_value(json_array_get(j, 1)), "\xe6\x97\xa5\xe6\x9c\xac");
    assert_string_equal(json_string_value(json_array_get(j, 2)), "\xf0\x9f\x98\x80");
    assert_string_equal(json_string_value(json_array_get(j, 3)), "\xc3\x89");
    assert_true(vl_json_is_string(json_array_get(j, 2)));
    json_decref(j);
    expect_roundtrip("[\"Jos\\u00e9\",\"\\ud83d\\ude00\"]",
                     "[\"Jos\xc3\xa9\",\"\xf0\x9f\x98\x80\"]");
    /* Unicode keys */
    expect_roundtrip("{\"\xc3\xa9\":1.10,\"\\u00e8\":2}", "{\"\xc3\xa9\":1.10,\"\xc3\xa8\":2}");
    /* lone surrogates and invalid UTF-8 are not JSON text */
    expect_reject("lone high surrogate", "[\"\\ud800\"]");
    expect_reject("lone low surrogate", "[\"\\udc00\"]");
    expect_reject("invalid UTF-8", "[\"\xff\"]");
    expect_reject("truncated UTF-8", "[\"\xc3\"]");
    expect_reject("overlong UTF-8", "[\"\xc0\xaf\"]");
}

/* ------------------------------------------------------------------------
 * Rejections
 * ---------------------------------------------------------------------- */

static void test_reject_duplicates(void **state)
{
    (void)state;
    expect_reject("duplicate key", "{\"a\":1,\"a\":2}");
    expect_reject("duplicate key, other values", "{\"a\":\"x\",\"b\":1,\"a\":[1]}");
    expect_reject("nested duplicate key", "{\"a\":{\"b\":1,\"b\":1}}");
    expect_reject("duplicate key in array element", "[{},{\"k\":1.0,\"k\":1.00}]");
    /* same key at different levels is fine */
    json_decref(parse_ok("{\"a\":{\"a\":{\"a\":1}}}"));
}

static void test_reject_malformed_numbers(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "01",  "1.",  ".5",   "+1",    "1e", "--1", "NaN", "nan",  "Infinity", "-Infinity",
        "1e+", "1E-", "0x10", "1.2.3", "-",  "00",  "-01", "1..2", "1e5e5",    "1-2",
        "1+2", "- 1", "1.e5", "0.e1",  ".",  "e5",  "-.5", "1_000"};
    char in[64];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(in, sizeof in, "[%s]", bad[i]);
        expect_reject(bad[i], in);
        snprintf(in, sizeof in, "{\"v\":%s}", bad[i]);
        expect_reject(bad[i], in);
        snprintf(in, sizeof in, "{\"a\":[1,{\"v\":%s}]}", bad[i]);
        expect_reject(bad[i], in);
    }
}

static void test_reject_control_chars(void **state)
{
    (void)state;
    char in[16];
    /* every raw control character inside a string, tab/newline included */
    for (int c = 1; c < 0x20; c++) {
        snprintf(in, sizeof in, "[\"a%cb\"]", c);
        expect_reject("raw control character", in);
    }
    expect_reject_lim("raw NUL", LIT("[\"a\0b\"]"), 0);
    expect_reject("escaped U+0001", "[\"\\u0001\"]");
    expect_reject("escaped U+0001 before digits", "[\"\\u00011.00\"]");
    expect_reject("escaped U+001f", "[\"a\\u001f\"]");
    expect_reject("escaped U+001F", "[\"a\\u001F\"]");
    expect_reject("escaped U+0000", "[\"\\u0000\"]");
    expect_reject("escaped U+0008", "[\"\\u0008\"]");
    expect_reject("escaped U+000B", "[\"\\u000B\"]");
    expect_reject("escaped control in key", "{\"\\u0001\":1}");
    expect_reject("raw control in key", "{\"\x01\":1}");
    /* \t \n \r are what FHIR allows, as short and as \u escapes */
    expect_roundtrip("[\"a\\tb\\nc\\rd\"]", "[\"a\\tb\\nc\\rd\"]");
    expect_roundtrip("[\"\\u0009\\u000a\\u000D\"]", "[\"\\t\\n\\r\"]");
    /* other escapes and U+007F are no control characters in the JSON sense */
    expect_roundtrip("[\"\\\"\\\\\\/\"]", "[\"\\\"\\\\/\"]");
    expect_roundtrip("[\"\\u0020\\u007f\"]", "[\" \x7f\"]");
}

/* \b and \f are U+0008 and U+000C, rejected when written as \u0008/\u000C:
 * the short escapes must not be a way around that (FHIR forbids them). */
static void test_reject_short_control_escapes(void **state)
{
    (void)state;
    expect_reject("backspace escape", "[\"a\\bc\"]");
    expect_reject("form feed escape", "[\"a\\fc\"]");
}

static void test_reject_depth(void **state)
{
    (void)state;
    char buf[1024];
    vl_error_t err = VL_ERROR_INIT;
    vl_json_limits_t lim5 = {5};
    json_t *j;
    char msg[512];

    /* exactly at the limit: accepted; one more: rejected */
    j = vl_json_parse(LIT("[[[[[1]]]]]"), &lim5, &err);
    assert_non_null(j);
    json_decref(j);
    j = vl_json_parse(LIT("{\"a\":{\"b\":[{\"c\":[]}]}}"), &lim5, &err);
    assert_non_null(j);
    json_decref(j);
    assert_int_equal(err.status, 0);
    expect_reject_lim("depth 6 > 5", LIT("[[[[[[1]]]]]]"), 5);
    expect_reject_lim("depth 6 > 5 objects", LIT("{\"a\":{\"b\":[{\"c\":[{}]}]}}"), 5);
    /* depth is nesting, not the number of containers */
    j = vl_json_parse(LIT("[[[[[]]]],[[[[]]]],[[[[]]]],{},{}]"), &lim5, &err);
    assert_non_null(j);
    json_decref(j);
    /* brackets inside strings do not count */
    j = vl_json_parse(LIT("[\"[[[[[[[[{{{{{{\"]"), &lim5, &err);
    assert_non_null(j);
    json_decref(j);
    vl_json_limits_t lim1 = {1};
    j = vl_json_parse(LIT("[\"]]]]\",1]"), &lim1, &err);
    assert_non_null(j);
    json_decref(j);
    expect_reject_lim("depth 2 > 1", LIT("[[]]"), 1);

    /* default (NULL limits and max_depth 0) is 64 */
    for (size_t d = 0; d < 64; d++)
        buf[d] = '[';
    for (size_t d = 0; d < 64; d++)
        buf[64 + d] = ']';
    j = vl_json_parse(buf, 128, NULL, &err);
    assert_non_null(j);
    json_decref(j);
    vl_json_limits_t lim0 = {0};
    j = vl_json_parse(buf, 128, &lim0, &err);
    assert_non_null(j);
    json_decref(j);
    assert_int_equal(err.status, 0);
    for (size_t d = 0; d < 65; d++)
        buf[d] = '[';
    for (size_t d = 0; d < 65; d++)
        buf[65 + d] = ']';
    expect_reject_lim("depth 65 > 64", buf, 130, 0);
    j = vl_json_parse(buf, 130, NULL, &err);
    assert_null(j);
    assert_int_equal(err.status, 400);
    vl_error_clear(&err);
    /* a higher limit admits it */
    vl_json_limits_t lim100 = {100};
    j = vl_json_parse(buf, 130, &lim100, &err);
    assert_non_null(j);
    json_decref(j);

    /* deep nesting on line 3 is reported there */
    reject_message(
        "{\n\"a\":\n[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]"
        "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n}",
        msg, sizeof msg);
    assert_non_null(strstr(msg, "line 3"));
}

/* The limit is a ceiling, not a size to allocate: a caller may pass a huge
 * value (or SIZE_MAX for "no limit") and still parse small documents. */
static void test_depth_limit_huge(void **state)
{
    (void)state;
    static const size_t limits[] = {SIZE_MAX, SIZE_MAX - 1, 10000};
    for (size_t k = 0; k < sizeof limits / sizeof *limits; k++) {
        vl_error_t err = VL_ERROR_INIT;
        vl_json_limits_t lim = {limits[k]};
        json_t *j = vl_json_parse(LIT("{\"a\":[[{\"b\":[1.5]}]]}"), &lim, &err);
        if (!j)
            fail_msg("max_depth %zu: %d %s", limits[k], err.status, vl_error_message(&err));
        json_decref(j);
    }
}

static void test_reject_syntax(void **state)
{
    (void)state;
    expect_reject("empty input", "");
    expect_reject("whitespace only", "  \n\t ");
    expect_reject("trailing garbage", "{}x");
    expect_reject("trailing garbage after space", "{\"a\":1} garbage");
    expect_reject("two documents", "{}{}");
    expect_reject("trailing number", "[1] 2");
    expect_reject("trailing comma-number", "{\"a\":1},5");
    expect_reject("line comment", "// c\n{}");
    expect_reject("line comment inside", "{\"a\":1 // c\n}");
    expect_reject("block comment", "/* c */ {}");
    expect_reject("block comment inside", "{\"a\": /* c */ 1}");
    expect_reject("hash comment", "{\"a\":1 # c\n}");
    expect_reject("unterminated string", "{\"a\":\"b");
    expect_reject("unterminated string ending in backslash", "{\"a\":\"b\\");
    expect_reject("unterminated escape", "[\"\\u00");
    expect_reject("unterminated key", "{\"a");
    expect_reject("unterminated object", "{\"a\":1");
    expect_reject("unterminated object after comma", "{\"a\":1,");
    expect_reject("unterminated array", "[1,2");
    expect_reject("lone open brace", "{");
    expect_reject("lone close brace", "}");
    expect_reject("mismatched close", "{\"a\":[1}");
    expect_reject("mismatched close 2", "[{\"a\":1]]");
    expect_reject("trailing comma in array", "[1,]");
    expect_reject("trailing comma in object", "{\"a\":1,}");
    expect_reject("missing comma", "[1 2]");
    expect_reject("missing comma between strings", "[\"a\" \"b\"]");
    expect_reject("missing colon", "{\"a\" 1}");
    expect_reject("unquoted key", "{a:1}");
    expect_reject("single quotes", "{'a':1}");
    expect_reject("bare word", "[Sarah]");
    expect_reject("bad literal", "[tru]");
    expect_reject("bad literal case", "[True]");
    expect_reject("bad escape", "[\"\\x41\"]");
    expect_reject("bad unicode escape", "[\"\\u12G4\"]");
    expect_reject("byte order mark", "\xef\xbb\xbf{}");
}

/* An object key must be a string: a number there is not JSON, and its
 * tagged form must never reach the document (it would dump as {1:2}). */
static void test_reject_number_keys(void **state)
{
    (void)state;
    expect_reject("number key", "{1:2}");
    expect_reject("number key after a member", "{\"a\":1, 2:3}");
    expect_reject("decimal key", "{\"a\":{1.50 : \"x\"}}");
}

static void test_error_line_numbers(void **state)
{
    (void)state;
    char msg[512];
    /* pass-1 errors (lexer) */
    reject_message("{\n\"a\": 1,\n\"b\": 01\n}", msg, sizeof msg);
    assert_non_null(strstr(msg, "line 3"));
    reject_message("{\n\"a\": 1,\n\n\"b\": \"x\x01\"\n}", msg, sizeof msg);
    assert_non_null(strstr(msg, "line 4"));
    reject_message("{\n\"a\": \"\\u0001\"\n}", msg, sizeof msg);
    assert_non_null(strstr(msg, "line 2"));
    reject_message("{\n\n\n\n\"a\": \"unterminated", msg, sizeof msg);
    assert_non_null(strstr(msg, "line 5"));
    /* pass-2 errors (jansson), after numbers were rewritten */
    reject_message("{\n\"a\": 1.00,\n\"b\": 2,\n\"a\": 3\n}", msg, sizeof msg);
    assert_non_null(strstr(msg, "line 4"));
    reject_message("[1,\n2,\n3,\n4,\n5,\n]", msg, sizeof msg);
    assert_non_null(strstr(msg, "line 6"));
    reject_message("{\"a\": 1}\n\nx", msg, sizeof msg);
    assert_non_null(strstr(msg, "line 3"));
    /* a multi-byte character does not shift the line */
    reject_message("{\"\xc3\xa9\xe6\x97\xa5\":\n\n tru}", msg, sizeof msg);
    assert_non_null(strstr(msg, "line 3"));
}

static void test_error_fields(void **state)
{
    (void)state;
    vl_error_t err = VL_ERROR_INIT;
    json_t *oo, *issue;
    assert_null(vl_json_parse(LIT("[01]"), NULL, &err));
    assert_int_equal(err.status, 400);
    assert_int_equal(vl_error_count(&err), 1);
    oo = vl_error_outcome(&err);
    issue = json_array_get(json_object_get(oo, "issue"), 0);
    assert_string_equal(json_string_value(json_object_get(issue, "severity")), "error");
    assert_non_null(json_string_value(json_object_get(issue, "code")));
    json_decref(oo);
    vl_error_clear(&err);
    /* parse must not need err to be empty; a prior 422 keeps its status */
    vl_error_set(&err, 422, "invalid", NULL, "earlier");
    assert_null(vl_json_parse(LIT("["), NULL, &err));
    assert_int_equal(err.status, 422);
    assert_int_equal(vl_error_count(&err), 2);
    vl_error_clear(&err);
}

/* ------------------------------------------------------------------------
 * Grammar, accessors, constructor, dump
 * ---------------------------------------------------------------------- */

static void test_number_valid(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int valid;
    } cases[] = {
        {"0", 1},        {"-0", 1},        {"1", 1},
        {"-1", 1},       {"10", 1},        {"1.0", 1},
        {"1.00", 1},     {"0.5", 1},       {"-0.0", 1},
        {"1e5", 1},      {"1E5", 1},       {"1e+5", 1},
        {"1e-5", 1},     {"1E-22", 1},     {"1.5e10", 1},
        {"0e0", 1},      {"-0.0e-0", 1},   {"123456789012345678901234567890", 1},
        {"1e0001", 1},   {"", 0},          {"-", 0},
        {"+", 0},        {"+1", 0},        {"01", 0},
        {"-01", 0},      {"00", 0},        {"1.", 0},
        {".5", 0},       {"-.5", 0},       {"1e", 0},
        {"1e+", 0},      {"1e-", 0},       {"1E", 0},
        {"--1", 0},      {"1..0", 0},      {"1.0.0", 0},
        {"1e5.0", 0},    {"1e5e5", 0},     {"NaN", 0},
        {"Infinity", 0}, {"-Infinity", 0}, {"0x1", 0},
        {" 1", 0},       {"1 ", 0},        {"1a", 0},
        {"a1", 0},       {"1,0", 0},       {"١", 0},
        {"1.e5", 0},     {"e5", 0},        {"1+1", 0},
        {"1-1", 0},      {".", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int got = vl_json_number_valid(cases[i].text, strlen(cases[i].text));
        if (!!got != cases[i].valid)
            fail_msg("vl_json_number_valid(\"%s\") = %d, want %d", cases[i].text, got,
                     cases[i].valid);
    }
    /* `len` bounds the token: the bytes after it are not looked at */
    assert_true(vl_json_number_valid("12x", 2));
    assert_true(vl_json_number_valid("1.5,", 3));
    assert_false(vl_json_number_valid("1.5", 2)); /* "1." */
    assert_false(vl_json_number_valid("1e5", 2)); /* "1e" */
    assert_false(vl_json_number_valid("-1", 1));  /* "-" */
    assert_false(vl_json_number_valid("1", 0));
}

static void test_accessors(void **state)
{
    (void)state;
    json_t *tagged = vl_json_number("1.00");
    json_t *i = json_integer(42), *r = json_real(2.5), *s = json_string("1.00");
    json_t *e = json_string(""), *o = json_object(), *a = json_array(), *t = json_true();
    json_t *nul = json_null();

    assert_non_null(tagged);
    assert_true(vl_json_is_number(tagged));
    assert_true(vl_json_is_number(i));
    assert_true(vl_json_is_number(r));
    assert_false(vl_json_is_number(s));
    assert_false(vl_json_is_number(e));
    assert_false(vl_json_is_number(o));
    assert_false(vl_json_is_number(a));
    assert_false(vl_json_is_number(t));
    assert_false(vl_json_is_number(nul));
    assert_false(vl_json_is_number(NULL));

    assert_false(vl_json_is_string(tagged));
    assert_false(vl_json_is_string(i));
    assert_true(vl_json_is_string(s));
    assert_true(vl_json_is_string(e));
    assert_false(vl_json_is_string(o));
    assert_false(vl_json_is_string(NULL));

    assert_string_equal(vl_json_number_text(tagged), "1.00");
    assert_null(vl_json_number_text(i));
    assert_null(vl_json_number_text(r));
    assert_null(vl_json_number_text(s));
    assert_null(vl_json_number_text(e));
    assert_null(vl_json_number_text(o));
    assert_null(vl_json_number_text(NULL));

    assert_true(vl_json_number_value(tagged) == 1.0);
    assert_true(vl_json_number_value(i) == 42.0);
    assert_true(vl_json_number_value(r) == 2.5);
    assert_true(isnan(vl_json_number_value(s)));
    assert_true(isnan(vl_json_number_value(e)));
    assert_true(isnan(vl_json_number_value(o)));
    assert_true(isnan(vl_json_number_value(nul)));
    assert_true(isnan(vl_json_number_value(NULL)));

    json_decref(tagged);
    json_decref(i);
    json_decref(r);
    json_decref(s);
    json_decref(e);
    json_decref(o);
    json_decref(a);
    json_decref(t);
    json_decref(nul);
}

static void test_number_constructor(void **state)
{
    (void)state;
    static const char *const bad[] = {"",    "01",       "1.",  ".5", "+1", "1e",  "--1",
                                      "NaN", "Infinity", "abc", " 1", "1 ", "1,0", "-"};
    for (size_t k = 0; k < sizeof numbers / sizeof *numbers; k++) {
        json_t *n = vl_json_number(numbers[k]);
        char *d;
        assert_non_null(n);
        assert_string_equal(vl_json_number_text(n), numbers[k]);
        d = dump_ok(n);
        assert_string_equal(d, numbers[k]);
        free(d);
        json_decref(n);
    }
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        json_t *n = vl_json_number(bad[k]);
        if (n)
            fail_msg("vl_json_number(\"%s\") accepted", bad[k]);
    }
}

static void test_dump_mixed(void **state)
{
    (void)state;
    json_t *doc = json_pack("{s:i,s:f,s:o,s:[o,i,f,s],s:{s:o}}", "total", 42, "real", 1.5, "tagged",
                            vl_json_number("1.00"), "list", vl_json_number("1E-22"), -7, -0.25,
                            "\\u0001", "nested", "v", vl_json_number("-0.0"));
    char *d;
    assert_non_null(doc);
    d = dump_ok(doc);
    assert_string_equal(d, "{\"total\":42,\"real\":1.5,\"tagged\":1.00,\"list\":[1E-22,-7,-0.25,"
                           "\"\\\\u0001\"],\"nested\":{\"v\":-0.0}}");
    free(d);
    /* adding to a parsed document */
    json_decref(doc);
    doc = parse_ok("{\"resourceType\":\"Bundle\",\"entry\":[{\"v\":72.00}]}");
    json_object_set_new(doc, "total", json_integer(1));
    json_object_set_new(doc, "x", json_real(0.5));
    d = dump_ok(doc);
    assert_string_equal(d, "{\"resourceType\":\"Bundle\",\"entry\":[{\"v\":72.00}],\"total\":1,"
                           "\"x\":0.5}");
    free(d);
    json_decref(doc);
    /* scalars at the top (JSON_ENCODE_ANY) */
    doc = vl_json_number("1e+5");
    d = dump_ok(doc);
    assert_string_equal(d, "1e+5");
    free(d);
    json_decref(doc);
    doc = json_string("x");
    d = dump_ok(doc);
    assert_string_equal(d, "\"x\"");
    free(d);
    json_decref(doc);
    /* len may be NULL */
    doc = parse_ok("[1.0]");
    d = vl_json_dump(doc, NULL);
    assert_string_equal(d, "[1.0]");
    free(d);
    json_decref(doc);
}

static void test_parse_len_bounds(void **state)
{
    (void)state;
    vl_error_t err = VL_ERROR_INIT;
    /* only `len` bytes are read: no NUL terminator needed, what follows is ignored */
    char buf[16];
    memcpy(buf, "[1.50]xxxxxxxxxx", 16);
    json_t *j = vl_json_parse(buf, 6, NULL, &err);
    char *d;
    assert_non_null(j);
    d = dump_ok(j);
    assert_string_equal(d, "[1.50]");
    free(d);
    json_decref(j);
    /* a number at the very end of the input */
    memcpy(buf, "[1.50", 5);
    assert_null(vl_json_parse(buf, 5, NULL, &err));
    assert_int_equal(err.status, 400);
    vl_error_clear(&err);
}

/* ------------------------------------------------------------------------
 * Corpora
 * ---------------------------------------------------------------------- */

/* The validator's JSON syntax cases: json-* and bad-json-* with errors > 0
 * are broken JSON text, except json-prop-key (valid JSON, not a resource).
 * json-good is accepted. The *-yes variants reuse the *-no files with the
 * validator's comment extension on: strict JSON (ours) rejects them. */
static void test_validator_cases(void **state)
{
    (void)state;
    const char *dir = VL_TEST_DATA "/validator-cases";
    char path[1024];
    json_error_t jerr;
    json_t *manifest, *cases, *c;
    size_t i, rejected = 0, accepted = 0;

    snprintf(path, sizeof path, "%s/manifest.json", dir);
    manifest = json_load_file(path, 0, &jerr);
    if (!manifest)
        skip();
    cases = json_object_get(manifest, "cases");
    assert_true(json_is_array(cases));
    json_array_foreach (cases, i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *file = json_string_value(json_object_get(c, "file"));
        json_int_t errors = json_integer_value(json_object_get(c, "errors"));
        size_t len = 0;
        char *text;
        vl_error_t err = VL_ERROR_INIT;
        json_t *j;
        int want_ok;
        assert_non_null(name);
        assert_non_null(file);
        if (strncmp(name, "json-", 5) != 0 && strncmp(name, "bad-json-", 9) != 0)
            continue;
        if (strcmp(name, "json-good") == 0 || strcmp(name, "json-prop-key") == 0)
            want_ok = 1;
        else if (errors > 0 || strstr(name, "comments"))
            want_ok = 0;
        else
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, file);
        text = test_read_file(path, &len);
        if (!text)
            fail_msg("cannot read %s", path);
        j = vl_json_parse(text, len, NULL, &err);
        if (want_ok) {
            char *d;
            if (!j)
                fail_msg("%s rejected: %s", name, vl_error_message(&err));
            /* and it round-trips to the same value */
            d = dump_ok(j);
            json_t *again = parse_ok(d);
            assert_true(json_equal(j, again));
            json_decref(again);
            free(d);
            accepted++;
        } else {
            if (j)
                fail_msg("%s (%s) accepted but is not JSON", name, file);
            assert_int_equal(err.status, 400);
            if (!strstr(vl_error_message(&err), "line "))
                fail_msg("%s: no line in %s", name, vl_error_message(&err));
            rejected++;
        }
        json_decref(j);
        vl_error_clear(&err);
        free(text);
    }
    json_decref(manifest);
    assert_true(accepted >= 1);
    assert_true(rejected >= 8);
}

/* Number tokens outside strings, in order, joined by spaces. */
static void number_tokens(const char *s, size_t len, char **out, size_t *outlen)
{
    size_t cap = len + 1, n = 0;
    char *o = malloc(cap);
    assert_non_null(o);
    for (size_t i = 0; i < len;) {
        if (s[i] == '"') {
            for (i++; i < len && s[i] != '"'; i++)
                if (s[i] == '\\')
                    i++;
            i++;
            continue;
        }
        if (s[i] == '-' || (s[i] >= '0' && s[i] <= '9')) {
            size_t st = i;
            while (i < len && strchr("0123456789+-.eE", s[i]))
                i++;
            if (n)
                o[n++] = ' ';
            memcpy(o + n, s + st, i - st);
            n += i - st;
            continue;
        }
        i++;
    }
    o[n] = '\0';
    *out = o;
    *outlen = n;
}

static void test_hl7_examples_keep_numbers(void **state)
{
    (void)state;
    const char *dir = VL_TEST_DATA "/hl7-r4-examples";
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t files = 0;
    if (!d)
        skip();
    while ((de = readdir(d))) {
        char path[1024];
        size_t len = 0, dlen = 0, t1len, t2len;
        char *text, *dumped, *t1, *t2;
        json_t *j, *again;
        vl_error_t err = VL_ERROR_INIT;
        if (!strstr(de->d_name, ".json"))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        text = test_read_file(path, &len);
        assert_non_null(text);
        j = vl_json_parse(text, len, NULL, &err);
        if (!j)
            fail_msg("%s: %s", de->d_name, vl_error_message(&err));
        assert_no_jansson_numbers(j);
        dumped = vl_json_dump(j, &dlen);
        assert_non_null(dumped);
        number_tokens(text, len, &t1, &t1len);
        number_tokens(dumped, dlen, &t2, &t2len);
        if (strcmp(t1, t2) != 0)
            fail_msg("%s: numbers changed:\n in: %s\nout: %s", de->d_name, t1, t2);
        again = parse_ok(dumped);
        assert_true(json_equal(j, again));
        json_decref(again);
        json_decref(j);
        free(t1);
        free(t2);
        free(dumped);
        free(text);
        files++;
    }
    closedir(d);
    assert_true(files > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_number_roundtrip),
        cmocka_unit_test(test_number_values),
        cmocka_unit_test(test_literals_and_empty_containers),
        cmocka_unit_test(test_tag_lookalike_strings),
        cmocka_unit_test(test_unicode),
        cmocka_unit_test(test_reject_duplicates),
        cmocka_unit_test(test_reject_malformed_numbers),
        cmocka_unit_test(test_reject_control_chars),
        cmocka_unit_test(test_reject_short_control_escapes),
        cmocka_unit_test(test_reject_depth),
        cmocka_unit_test(test_reject_syntax),
        cmocka_unit_test(test_reject_number_keys),
        cmocka_unit_test(test_error_line_numbers),
        cmocka_unit_test(test_error_fields),
        cmocka_unit_test(test_number_valid),
        cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_number_constructor),
        cmocka_unit_test(test_dump_mixed),
        cmocka_unit_test(test_parse_len_bounds),
        cmocka_unit_test(test_validator_cases),
        cmocka_unit_test(test_hl7_examples_keep_numbers),
        /* last: under ASan the bug it checks for aborts the process */
        cmocka_unit_test(test_depth_limit_huge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
