/*
 * Unit tests for src/util/time.c: formatting, the FHIR date range parser
 * (valid and invalid inputs, leap years, zones, fractions) and a
 * format/parse round trip over every day of several centuries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "vitalog/util.h"

#define S INT64_C(1000000) /* one second in microseconds */
#define DAY (86400 * S)

static void expect_range(const char *text, int64_t lo_s, int64_t hi_us_len, int prec)
{
    int64_t lo = 0, hi = 0;
    int p = 0;
    if (vl_time_parse_range(text, &lo, &hi, &p) != 0)
        fail_msg("did not parse: %s", text);
    if (lo != lo_s * S || hi - lo != hi_us_len || p != prec)
        fail_msg("%s: got lo=%lld len=%lld prec=%d, want lo=%lld len=%lld prec=%d", text,
                 (long long)lo, (long long)(hi - lo), p, (long long)(lo_s * S),
                 (long long)hi_us_len, prec);
}

static void test_format(void **state)
{
    (void)state;
    char out[32];
    vl_time_format(1714982400 * S + 123456, out);
    assert_string_equal(out, "2024-05-06T08:00:00.123Z");
    vl_time_format(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
    vl_time_format(-1, out);
    assert_string_equal(out, "1969-12-31T23:59:59.999Z");
    vl_time_format(951782400 * S, out);
    assert_string_equal(out, "2000-02-29T00:00:00.000Z");
    vl_time_format(-62135596800 * S, out);
    assert_string_equal(out, "0001-01-01T00:00:00.000Z");
    /* out of range values are clamped, never overflow the buffer */
    vl_time_format(INT64_MAX, out);
    assert_string_equal(out, "9999-12-31T23:59:59.999Z");
    vl_time_format(INT64_MIN, out);
    assert_string_equal(out, "0001-01-01T00:00:00.000Z");
}

static void test_format_http(void **state)
{
    (void)state;
    char out[40];
    vl_time_format_http(784111777 * S, out); /* RFC 7231 example */
    assert_string_equal(out, "Sun, 06 Nov 1994 08:49:37 GMT");
    vl_time_format_http(1714982400 * S + 999999, out);
    assert_string_equal(out, "Mon, 06 May 2024 08:00:00 GMT");
    vl_time_format_http(0, out);
    assert_string_equal(out, "Thu, 01 Jan 1970 00:00:00 GMT");
    vl_time_format_http(-1 * S, out);
    assert_string_equal(out, "Wed, 31 Dec 1969 23:59:59 GMT");
}

static void test_parse_http(void **state)
{
    (void)state;
    int64_t us = 0;
    /* RFC 9110 5.6.7: the three forms of one instant */
    assert_int_equal(vl_time_parse_http("Sun, 06 Nov 1994 08:49:37 GMT", &us), 0);
    assert_true(us == 784111777 * S);
    us = 0;
    assert_int_equal(vl_time_parse_http("Sunday, 06-Nov-94 08:49:37 GMT", &us), 0);
    assert_true(us == 784111777 * S);
    us = 0;
    assert_int_equal(vl_time_parse_http("Sun Nov  6 08:49:37 1994", &us), 0);
    assert_true(us == 784111777 * S);
    /* round trip with the formatter */
    {
        char out[40];
        vl_time_format_http(1764633600 * S, out);
        assert_int_equal(vl_time_parse_http(out, &us), 0);
        assert_true(us == 1764633600 * S);
    }
    assert_int_equal(vl_time_parse_http("Sun, 06 Nov 1994 08:49:37 UTC", &us), -1);
    assert_int_equal(vl_time_parse_http("Sun, 31 Feb 1994 08:49:37 GMT", &us), -1);
    assert_int_equal(vl_time_parse_http("Sun, 06 Nov 1994 24:00:00 GMT", &us), -1);
    assert_int_equal(vl_time_parse_http("Sun, 06 Foo 1994 08:49:37 GMT", &us), -1);
    assert_int_equal(vl_time_parse_http("Sun, 06 Nov 1994 08:49:37 GMT trailing", &us), -1);
    assert_int_equal(vl_time_parse_http("", &us), -1);
    assert_int_equal(vl_time_parse_http(NULL, &us), -1);
}

static void test_now(void **state)
{
    (void)state;
    int64_t a = vl_time_now_us();
    int64_t b = vl_time_now_us();
    assert_true(a > 1700000000 * S); /* after Nov 2023 */
    assert_true(b >= a);
}

static void test_partial_dates(void **state)
{
    (void)state;
    expect_range("2024", 1704067200, (1735689600 - 1704067200) * S, 1);
    expect_range("2023", 1672531200, 365 * DAY, 1);
    expect_range("2024-02", 1706745600, 29 * DAY, 2);
    expect_range("2023-02", 1675209600, 28 * DAY, 2);
    expect_range("2000-02", 949363200, 29 * DAY, 2);   /* divisible by 400: leap */
    expect_range("1900-02", -2206310400, 28 * DAY, 2); /* century: not leap */
    expect_range("2024-12", 1733011200, 31 * DAY, 2);  /* rolls into next year */
    expect_range("2024-02-29", 1709164800, DAY, 3);
    expect_range("2000-02-29", 951782400, DAY, 3);
    expect_range("0001", -62135596800, 365 * DAY, 1);
    expect_range("9999-12-31", 253402214400, DAY, 3);
}

static void test_times(void **state)
{
    (void)state;
    expect_range("2024-05-06T10:00:00+02:00", 1714982400, S, 4);
    expect_range("2024-05-06T08:00:00Z", 1714982400, S, 4);
    expect_range("2024-05-06T08:00:00", 1714982400, S, 4); /* no zone: UTC */
    expect_range("2024-05-06T08:00:00-00:00", 1714982400, S, 4);
    expect_range("2024-05-06T23:30:00-01:00", 1715041800, S, 4); /* crosses midnight */
    expect_range("2024-05-07T00:30:00+14:00", 1714991400, S, 4);
    expect_range("2024-05-06T08:00:00.000Z", 1714982400, 1000, 4);
    expect_range("2024-05-06T08:00:00.000000Z", 1714982400, 1, 4);
    expect_range("2024-05-06T08:00:00.00000000Z", 1714982400, 1, 4); /* truncated to us */
    expect_range("2016-12-31T23:59:60Z", 1483228799, S, 4);          /* leap second */

    int64_t lo, hi;
    assert_int_equal(vl_time_parse_range("2024-05-06T08:00:00.5Z", &lo, &hi, NULL), 0);
    assert_true(lo == 1714982400 * S + 500000 && hi == lo + 100000);
    assert_int_equal(vl_time_parse_range("2024-05-06T08:00:00.123456789Z", &lo, &hi, NULL), 0);
    assert_true(lo == 1714982400 * S + 123456 && hi == lo + 1);
    assert_int_equal(vl_time_parse_range("2024-05-06T08:00:00.25+05:30", &lo, &hi, NULL), 0);
    assert_true(lo == (1714982400 - 5 * 3600 - 1800) * S + 250000 && hi == lo + 10000);
    /* NULL outputs are allowed */
    assert_int_equal(vl_time_parse_range("2024", NULL, NULL, NULL), 0);
}

static void test_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "24",
        "202",
        "20245",
        "0000",
        "abcd",
        "2024-",
        "2024-1",
        "2024-00",
        "2024-13",
        "2024-02-30",
        "2023-02-29",
        "1900-02-29",
        "2024-04-31",
        "2024-01-00",
        "2024-01-32",
        "2024-01-1",
        "2024/01/01",
        "2024-01-01T",
        "2024-01-01T10",
        "2024-01-01T10:00",
        "2024-01-01T10:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T23:60:00Z",
        "2024-01-01T23:59:61Z",
        "2024-01-01T1:00:00Z",
        "2024-01-01T10:00:00.Z",
        "2024-01-01T10:00:00,5Z",
        "2024-01-01T10:00:00+15:00",
        "2024-01-01T10:00:00+02:60",
        "2024-01-01T10:00:00+0200",
        "2024-01-01T10:00:00+2:00",
        "2024-01-01T10:00:00ZZ",
        "2024-01-01T10:00:00Z ",
        " 2024",
        "2024-01-01 10:00:00Z",
        "2024-01-01t10:00:00z",
        "2024Z",
        "2024-01-01Z",
        "2024-01-01+02:00",
        "2024-01T10:00:00Z",
        "-2024",
        "+2024",
        "10000",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t lo = 7, hi = 7;
        if (vl_time_parse_range(bad[i], &lo, &hi, NULL) != -1)
            fail_msg("accepted invalid date '%s'", bad[i]);
        assert_true(lo == 7 && hi == 7); /* outputs untouched on failure */
    }
    assert_int_equal(vl_time_parse_range(NULL, NULL, NULL, NULL), -1);
}

/* Every day from 1583 to 2600: format the midnight, parse the date part
 * back; checks days_from_civil against civil_from_days. */
static void test_roundtrip_days(void **state)
{
    (void)state;
    int64_t lo, hi, prev_hi = 0;
    int64_t start = -12212553600; /* 1583-01-01 */
    for (int64_t d = 0; d < 372000; d++) {
        int64_t us = (start + d * 86400) * S;
        char out[32];
        vl_time_format(us, out);
        out[10] = '\0';
        if (vl_time_parse_range(out, &lo, &hi, NULL) != 0 || lo != us || hi != us + DAY)
            fail_msg("round trip failed at %s", out);
        if (d && lo != prev_hi)
            fail_msg("gap before %s", out);
        prev_hi = hi;
    }
    /* instants with ms keep their value exactly */
    for (int64_t us = -5000000000123000; us < 5000000000000000; us += 123456789012345) {
        int64_t ms = us - ((us % 1000) + 1000) % 1000;
        char out[32];
        vl_time_format(ms, out);
        assert_int_equal(vl_time_parse_range(out, &lo, &hi, NULL), 0);
        assert_true(lo == ms && hi == ms + 1000);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),        cmocka_unit_test(test_format_http),
        cmocka_unit_test(test_parse_http),    cmocka_unit_test(test_now),
        cmocka_unit_test(test_partial_dates), cmocka_unit_test(test_times),
        cmocka_unit_test(test_invalid),       cmocka_unit_test(test_roundtrip_days),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
