/*
 * Unit tests for src/ingest/zone.c: local date-times resolved in a zone.
 *
 *   - fixed offsets ("+01:00", "-05:30", "+0530", "Z") and the accepted
 *     input forms (seconds added, fraction kept, a space for 'T');
 *   - IANA zones read from /usr/share/zoneinfo: Europe/Berlin in winter and
 *     summer, its spring gap and autumn overlap (the offset before the
 *     change), America/New_York the same, Asia/Kolkata (+05:30), and dates
 *     past the last transition of the file (2040+: the footer's POSIX
 *     rules, northern and southern hemisphere);
 *   - refusals: names that could leave zoneinfo or are not zones, leap
 *     second zones, local mean time, bad times, dates alone, times with a
 *     zone already;
 *   - several threads resolving through the zone cache at once, with more
 *     zones than the cache holds.
 *
 * The expected offsets were checked against Python's zoneinfo (fold=0,
 * which is the same rule) on the same tzdata.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vitalog/ingest.h"

static void expect_time(const char *local, const char *tz, const char *want)
{
    char out[40] = "";
    if (vl_ingest_local_time(local, tz, out) < 0)
        fail_msg("%s in %s: refused, want %s", local, tz, want);
    if (strcmp(out, want))
        fail_msg("%s in %s: %s, want %s", local, tz, out, want);
}

static void expect_refused(const char *local, const char *tz)
{
    char out[40] = "";
    if (vl_ingest_local_time(local, tz, out) == 0)
        fail_msg("%s in %s: accepted as %s", local ? local : "(null)", tz ? tz : "(null)", out);
}

static void test_fixed_offsets(void **state)
{
    (void)state;
    expect_time("2024-03-01T08:00:00", "+01:00", "2024-03-01T08:00:00+01:00");
    expect_time("2024-03-01T08:00:00", "-05:30", "2024-03-01T08:00:00-05:30");
    expect_time("2024-03-01T08:00:00", "+0530", "2024-03-01T08:00:00+05:30");
    expect_time("2024-03-01T08:00:00", "-0800", "2024-03-01T08:00:00-08:00");
    expect_time("2024-03-01T08:00:00", "+00:00", "2024-03-01T08:00:00+00:00");
    expect_time("2024-03-01T08:00:00", "Z", "2024-03-01T08:00:00Z");
    expect_time("2024-03-01T08:00:00", "+14:00", "2024-03-01T08:00:00+14:00");
    expect_time("2024-03-01T08:00:00", "-14:00", "2024-03-01T08:00:00-14:00");
    /* input forms */
    expect_time("2024-03-01T08:00", "+01:00", "2024-03-01T08:00:00+01:00");
    expect_time("2024-03-01 08:00:00", "+01:00", "2024-03-01T08:00:00+01:00");
    expect_time("2016-12-13T09:59:00.000", "-08:00", "2016-12-13T09:59:00.000-08:00");
    expect_time("2024-03-01T08:00:00.5", "Z", "2024-03-01T08:00:00.5Z");
    expect_time("2024-03-01T08:00:00.123456789", "+01:00", "2024-03-01T08:00:00.123456789+01:00");
    expect_time("2024-02-29T23:59:59", "+01:00", "2024-02-29T23:59:59+01:00");
    /* offsets FHIR cannot write or that are not offsets */
    expect_refused("2024-03-01T08:00:00", "+14:30");
    expect_refused("2024-03-01T08:00:00", "+15:00");
    expect_refused("2024-03-01T08:00:00", "-15:00");
    expect_refused("2024-03-01T08:00:00", "+01:60");
    expect_refused("2024-03-01T08:00:00", "+1:00");
    expect_refused("2024-03-01T08:00:00", "+01");
    expect_refused("2024-03-01T08:00:00", "+01:00:00");
    expect_refused("2024-03-01T08:00:00", "01:00");
    expect_refused("2024-03-01T08:00:00", "z");
    expect_refused("2024-03-01T08:00:00", "");
    expect_refused("2024-03-01T08:00:00", NULL);
}

static void test_berlin(void **state)
{
    (void)state;
    expect_time("2024-01-15T12:00:00", "Europe/Berlin", "2024-01-15T12:00:00+01:00");
    expect_time("2024-07-15T12:00:00", "Europe/Berlin", "2024-07-15T12:00:00+02:00");
    /* spring: 02:00-03:00 does not exist on 2024-03-31; before the change */
    expect_time("2024-03-31T01:59:59", "Europe/Berlin", "2024-03-31T01:59:59+01:00");
    expect_time("2024-03-31T02:00:00", "Europe/Berlin", "2024-03-31T02:00:00+01:00");
    expect_time("2024-03-31T02:30", "Europe/Berlin", "2024-03-31T02:30:00+01:00");
    expect_time("2024-03-31T02:30:00.250", "Europe/Berlin", "2024-03-31T02:30:00.250+01:00");
    expect_time("2024-03-31T03:00:00", "Europe/Berlin", "2024-03-31T03:00:00+02:00");
    /* autumn: 02:00-03:00 happens twice on 2024-10-27; the first (CEST) */
    expect_time("2024-10-27T01:59:00", "Europe/Berlin", "2024-10-27T01:59:00+02:00");
    expect_time("2024-10-27T02:00:00", "Europe/Berlin", "2024-10-27T02:00:00+02:00");
    expect_time("2024-10-27T02:30", "Europe/Berlin", "2024-10-27T02:30:00+02:00");
    expect_time("2024-10-27T02:59:59", "Europe/Berlin", "2024-10-27T02:59:59+02:00");
    expect_time("2024-10-27T03:00:00", "Europe/Berlin", "2024-10-27T03:00:00+01:00");
    /* history from the table: double summer time 1947, no DST 1950 */
    expect_time("1947-06-01T12:00:00", "Europe/Berlin", "1947-06-01T12:00:00+03:00");
    expect_time("1950-07-01T12:00:00", "Europe/Berlin", "1950-07-01T12:00:00+01:00");
}

static void test_new_york_kolkata(void **state)
{
    (void)state;
    expect_time("2024-01-15T08:00", "America/New_York", "2024-01-15T08:00:00-05:00");
    expect_time("2024-07-04T08:00", "America/New_York", "2024-07-04T08:00:00-04:00");
    expect_time("2024-03-10T02:30", "America/New_York", "2024-03-10T02:30:00-05:00");
    expect_time("2024-03-10T03:00", "America/New_York", "2024-03-10T03:00:00-04:00");
    expect_time("2024-11-03T01:30", "America/New_York", "2024-11-03T01:30:00-04:00");
    expect_time("2024-11-03T02:00", "America/New_York", "2024-11-03T02:00:00-05:00");
    expect_time("2015-08-21T00:01:00", "America/Los_Angeles", "2015-08-21T00:01:00-07:00");
    expect_time("2016-12-13T09:59:00.000", "America/Los_Angeles", "2016-12-13T09:59:00.000-08:00");
    expect_time("2024-01-15T08:00", "Asia/Kolkata", "2024-01-15T08:00:00+05:30");
    expect_time("2024-07-15T08:00", "Asia/Kolkata", "2024-07-15T08:00:00+05:30");
    expect_time("2024-07-15T08:00", "UTC", "2024-07-15T08:00:00+00:00");
    expect_time("2024-07-15T08:00", "Etc/GMT+5", "2024-07-15T08:00:00-05:00");
    expect_time("2024-07-15T08:00", "Asia/Kathmandu", "2024-07-15T08:00:00+05:45");
}

/* past the last transition of the file: the footer's rules (2040+) */
static void test_footer_rules(void **state)
{
    (void)state;
    expect_time("2040-07-01T12:00", "Europe/Berlin", "2040-07-01T12:00:00+02:00");
    expect_time("2040-12-01T12:00", "Europe/Berlin", "2040-12-01T12:00:00+01:00");
    /* last Sunday of March 2040 is the 25th; of October the 28th */
    expect_time("2040-03-25T02:30", "Europe/Berlin", "2040-03-25T02:30:00+01:00");
    expect_time("2040-03-25T03:00", "Europe/Berlin", "2040-03-25T03:00:00+02:00");
    expect_time("2040-10-28T02:30", "Europe/Berlin", "2040-10-28T02:30:00+02:00");
    expect_time("2040-10-28T03:00", "Europe/Berlin", "2040-10-28T03:00:00+01:00");
    /* second Sunday of March (11th), first of November (4th), at 02:00 */
    expect_time("2040-03-11T02:30", "America/New_York", "2040-03-11T02:30:00-05:00");
    expect_time("2040-11-04T01:30", "America/New_York", "2040-11-04T01:30:00-04:00");
    expect_time("2040-11-04T02:00", "America/New_York", "2040-11-04T02:00:00-05:00");
    /* southern hemisphere: DST across the new year */
    expect_time("2045-01-15T12:00", "Australia/Sydney", "2045-01-15T12:00:00+11:00");
    expect_time("2045-07-15T12:00", "Australia/Sydney", "2045-07-15T12:00:00+10:00");
    expect_time("2045-04-02T02:30", "Australia/Sydney", "2045-04-02T02:30:00+11:00");
    expect_time("2045-10-01T02:30", "Australia/Sydney", "2045-10-01T02:30:00+10:00");
    expect_time("2099-06-01T00:00", "Asia/Kolkata", "2099-06-01T00:00:00+05:30");
}

static void test_bad_names(void **state)
{
    char long_name[80];
    (void)state;
    memset(long_name, 'A', 65);
    long_name[65] = '\0';
    expect_refused("2024-01-01T00:00", "../etc/passwd");
    expect_refused("2024-01-01T00:00", "Europe/../Europe/Berlin");
    expect_refused("2024-01-01T00:00", "/etc/localtime");
    expect_refused("2024-01-01T00:00", "Nope/Zone");
    expect_refused("2024-01-01T00:00", "Europe/Berlin ");
    expect_refused("2024-01-01T00:00", "Europe\\Berlin");
    expect_refused("2024-01-01T00:00", "zone.tab");            /* '.' is not allowed */
    expect_refused("2024-01-01T00:00", "leapseconds");         /* a text file, not TZif */
    expect_refused("2024-01-01T00:00", "Europe");              /* a directory */
    expect_refused("2024-01-01T00:00", "Europe/");             /* the same */
    expect_refused("2024-01-01T00:00", "right/Europe/Berlin"); /* leap seconds */
    expect_refused("2024-01-01T00:00", long_name);
    /* local mean time before 1893 is +00:53:28: not a FHIR offset */
    expect_refused("1850-01-01T00:00", "Europe/Berlin");
}

static void test_bad_times(void **state)
{
    (void)state;
    expect_refused("2024-01-01", "Europe/Berlin"); /* dates are the caller's */
    expect_refused("2024-01-01", "+01:00");
    expect_refused("2024-02-30T10:00", "+01:00");
    expect_refused("2023-02-29T10:00", "+01:00");
    expect_refused("2024-13-01T10:00", "+01:00");
    expect_refused("2024-00-01T10:00", "+01:00");
    expect_refused("2024-01-01T24:00", "+01:00");
    expect_refused("2024-01-01T10:60", "+01:00");
    expect_refused("2024-01-01T10:00:60", "+01:00");
    expect_refused("2024-01-01T10", "+01:00");
    expect_refused("2024-01-01T10:00:00.", "+01:00");
    expect_refused("2024-01-01T10:00:00.1234567890", "+01:00");
    expect_refused("2024-01-01T10:00:00Z", "+01:00");
    expect_refused("2024-01-01T10:00:00+01:00", "Europe/Berlin");
    expect_refused("2024-1-01T10:00", "+01:00");
    expect_refused("0000-01-01T10:00", "+01:00");
    expect_refused("2024-01-01t10:00", "+01:00");
    expect_refused("today", "+01:00");
    expect_refused("", "+01:00");
    expect_refused(NULL, "+01:00");
}

/* several threads through the cache at once, more zones than it holds */
static const char *const thread_zones[20][2] = {
    {"Europe/Berlin", "+02:00"},     {"America/New_York", "-04:00"},
    {"Asia/Kolkata", "+05:30"},      {"America/Los_Angeles", "-07:00"},
    {"Europe/London", "+01:00"},     {"Europe/Paris", "+02:00"},
    {"Asia/Tokyo", "+09:00"},        {"Australia/Sydney", "+10:00"},
    {"America/Chicago", "-05:00"},   {"America/Denver", "-06:00"},
    {"Europe/Madrid", "+02:00"},     {"Europe/Rome", "+02:00"},
    {"Asia/Shanghai", "+08:00"},     {"Africa/Nairobi", "+03:00"},
    {"America/Sao_Paulo", "-03:00"}, {"Pacific/Auckland", "+12:00"},
    {"Asia/Kathmandu", "+05:45"},    {"America/St_Johns", "-02:30"},
    {"Europe/Helsinki", "+03:00"},   {"America/Anchorage", "-08:00"},
};

static void *resolve_many(void *arg)
{
    size_t first = (size_t)(uintptr_t)arg;
    for (size_t i = 0; i < 400; i++) {
        const char *const *z = thread_zones[(first + i) % 20];
        char out[40], want[40];
        snprintf(want, sizeof want, "2024-07-15T12:00:00%s", z[1]);
        if (vl_ingest_local_time("2024-07-15T12:00:00", z[0], out) < 0 || strcmp(out, want))
            return (void *)1;
    }
    return NULL;
}

static void test_threads(void **state)
{
    pthread_t t[4];
    (void)state;
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, resolve_many, (void *)(uintptr_t)(i * 5)), 0);
    for (size_t i = 0; i < 4; i++) {
        void *rc = (void *)1;
        assert_int_equal(pthread_join(t[i], &rc), 0);
        assert_null(rc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_offsets),    cmocka_unit_test(test_berlin),
        cmocka_unit_test(test_new_york_kolkata), cmocka_unit_test(test_footer_rules),
        cmocka_unit_test(test_bad_names),        cmocka_unit_test(test_bad_times),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
