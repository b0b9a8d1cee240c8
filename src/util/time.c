/*
 * vitalog — util/time.c: clocks, FHIR/HTTP time formatting and the parser
 * that turns FHIR date/dateTime/instant text into the half-open range of
 * microseconds it denotes.
 *
 * DESIGN NOTES
 *
 * 1. No libc calendar functions (mktime, timegm, gmtime_r, strftime) are
 *    used: they depend on TZ/locale or are not C11. Calendar arithmetic is
 *    Howard Hinnant's days_from_civil / civil_from_days (proleptic
 *    Gregorian, exact for every year we accept).
 *
 * 2. Accepted grammar of vl_time_parse_range() (FHIR R4 date, dateTime and
 *    instant, one routine for all three):
 *
 *        YYYY
 *        YYYY-MM
 *        YYYY-MM-DD
 *        YYYY-MM-DDThh:mm:ss[.f+][zone]     zone = "Z" | ("+"|"-") hh ":" mm
 *
 *    - years 0001-9999 (exactly four digits); month 01-12; day valid for
 *      the month (leap years: divisible by 4, except centuries not
 *      divisible by 400);
 *    - hour 00-23 (24:00 is rejected), minute 00-59, second 00-60: a leap
 *      second "60" is accepted as FHIR's regex allows it and read as 59;
 *    - seconds are required once a time is given (FHIR has no hh:mm form);
 *    - a time without zone is read as UTC. FHIR requires a zone on a
 *      dateTime with a time, so the validator must reject it there; this
 *      parser is deliberately lenient because it also parses search values,
 *      where the spec lets the server pick the zone;
 *    - zone hours 00-14, zone minutes 00-59; "-00:00" is accepted;
 *    - a zone is only allowed after a time.
 *
 * 3. The range is half-open [lo, hi): lo is the first microsecond of the
 *    value, hi the first microsecond after it at the value's precision.
 *    "2024" -> [2024-01-01, 2025-01-01); "2024-02" -> [Feb 1, Mar 1);
 *    "...T10:00:00Z" -> one second; "...T10:00:00.5Z" -> 100 ms;
 *    ".123456" -> 1 us. Digits beyond microseconds are truncated (the range
 *    is then that microsecond).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vitalog/util.h"

#define US_PER_SEC INT64_C(1000000)
#define SEC_PER_DAY INT64_C(86400)

/* ------------------------------------------------------------------------
 * Calendar arithmetic
 * ---------------------------------------------------------------------- */

/* Days since 1970-01-01 of the civil date y-m-d (m 1..12, d 1..31). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);                       /* [0, 399] */
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
    return era * 146097 + (int64_t)doe - 719468;
}

/* Inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

int64_t vl_time_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    return days_from_civil(y, m, d);
}

void vl_time_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
    civil_from_days(days, y, m, d);
}

unsigned vl_time_days_in_month(int64_t y, unsigned m)
{
    return days_in_month(y, m);
}

/* Splits microseconds since the epoch into a civil date and time of day. */
static void split_us(int64_t us, int64_t *y, unsigned *mo, unsigned *d, unsigned *h, unsigned *mi,
                     unsigned *s, unsigned *ms, unsigned *wday)
{
    /* floor division, so that times before 1970 come out right */
    int64_t sec = us / US_PER_SEC;
    int64_t frac = us % US_PER_SEC;
    if (frac < 0) {
        frac += US_PER_SEC;
        sec -= 1;
    }
    int64_t days = sec / SEC_PER_DAY;
    int64_t sod = sec % SEC_PER_DAY;
    if (sod < 0) {
        sod += SEC_PER_DAY;
        days -= 1;
    }
    civil_from_days(days, y, mo, d);
    *h = (unsigned)(sod / 3600);
    *mi = (unsigned)(sod / 60 % 60);
    *s = (unsigned)(sod % 60);
    *ms = (unsigned)(frac / 1000);
    /* 1970-01-01 was a Thursday (4, with Sunday = 0) */
    int64_t wd = (days + 4) % 7;
    *wday = (unsigned)(wd < 0 ? wd + 7 : wd);
}

/* Clamp for formatting: years 0001..9999 keep the output fixed-width. */
static int64_t clamp_us(int64_t us)
{
    const int64_t min = days_from_civil(1, 1, 1) * SEC_PER_DAY * US_PER_SEC;
    const int64_t max = days_from_civil(10000, 1, 1) * SEC_PER_DAY * US_PER_SEC - 1;
    return us < min ? min : us > max ? max : us;
}

/* ------------------------------------------------------------------------
 * Clock and formatting
 * ---------------------------------------------------------------------- */

int64_t vl_time_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * US_PER_SEC + ts.tv_nsec / 1000;
}

/* Writes v as exactly n decimal digits (zero-padded) at p, then the
 * separator sep unless it is '\0'; returns the position after them. The
 * caller passes values that fit n digits. */
static char *put_digits(char *p, unsigned v, int n, char sep)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    p += n;
    if (sep)
        *p++ = sep;
    return p;
}

/* "YYYY-MM-DDThh:mm:ss.mmmZ": always 24 characters and a NUL. The fields
 * are written digit by digit rather than with snprintf: clamp_us bounds the
 * year to 0001..9999 and split_us every other field, so the width is fixed
 * by construction (gcc cannot prove that at -O2 and reports a possible
 * truncation of "%04d" with a 32-byte buffer). */
void vl_time_format(int64_t us, char out[32])
{
    int64_t y;
    unsigned mo, d, h, mi, s, ms, wd;
    char *p = out;
    split_us(clamp_us(us), &y, &mo, &d, &h, &mi, &s, &ms, &wd);
    p = put_digits(p, (unsigned)y, 4, '-');
    p = put_digits(p, mo, 2, '-');
    p = put_digits(p, d, 2, 'T');
    p = put_digits(p, h, 2, ':');
    p = put_digits(p, mi, 2, ':');
    p = put_digits(p, s, 2, '.');
    p = put_digits(p, ms, 3, 'Z');
    *p = '\0';
}

void vl_time_format_http(int64_t us, char out[40])
{
    static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int64_t y;
    unsigned mo, d, h, mi, s, ms, wd;
    split_us(clamp_us(us), &y, &mo, &d, &h, &mi, &s, &ms, &wd);
    snprintf(out, 40, "%s, %02u %s %04d %02u:%02u:%02u GMT", wdays[wd], d, months[mo - 1], (int)y,
             h, mi, s);
}

static int month_of(const char *m)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int i = 0; i < 12; i++)
        if (!strncmp(m, months + 3 * i, 3))
            return i + 1;
    return 0;
}

int vl_time_parse_http(const char *s, int64_t *us)
{
    char wday[16], mon[4], zone[4];
    int d, y, h, mi, sec, n = 0, m;
    if (!s)
        return -1;
    /* IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850 "Sunday,
     * 06-Nov-94 08:49:37 GMT" and asctime "Sun Nov  6 08:49:37 1994" */
    if (sscanf(s, "%15[A-Za-z], %2d %3s %4d %2d:%2d:%2d %3s%n", wday, &d, mon, &y, &h, &mi, &sec,
               zone, &n) == 8 &&
        !s[n] && !strcmp(zone, "GMT")) {
    } else if (n = 0, sscanf(s, "%15[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d %3s%n", wday, &d, mon, &y, &h,
                             &mi, &sec, zone, &n) == 8 &&
                          !s[n] && !strcmp(zone, "GMT")) {
        y += y < 70 ? 2000 : 1900; /* two digits: 1970-2069 */
    } else if (n = 0, sscanf(s, "%3s %3s %2d %2d:%2d:%2d %4d%n", wday, mon, &d, &h, &mi, &sec, &y,
                             &n) == 7 &&
                          !s[n]) {
    } else {
        return -1;
    }
    if (!(m = month_of(mon)) || y < 1 || d < 1 || d > (int)vl_time_days_in_month(y, (unsigned)m) ||
        h > 23 || mi > 59 || sec > 60 || h < 0 || mi < 0 || sec < 0)
        return -1;
    *us =
        ((vl_time_days_from_civil(y, (unsigned)m, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec) *
         1000000);
    return 0;
}

/* ------------------------------------------------------------------------
 * Parsing
 * ---------------------------------------------------------------------- */

/* Reads exactly n decimal digits at *p; -1 if any is missing. */
static int digits(const char **p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    return v;
}

int vl_time_parse_range(const char *text, int64_t *lo, int64_t *hi, int *precision)
{
    if (!text)
        return -1;
    const char *p = text;
    int year, month = 1, day = 1, hour = 0, minute = 0, second = 0;
    int prec;
    int64_t frac_us = 0, step_us = US_PER_SEC; /* fraction as microseconds, width of the range */
    int64_t zone_sec = 0;

    year = digits(&p, 4);
    if (year < 1)
        return -1;
    prec = 1;
    if (*p == '-') {
        p++;
        month = digits(&p, 2);
        if (month < 1 || month > 12)
            return -1;
        prec = 2;
        if (*p == '-') {
            p++;
            day = digits(&p, 2);
            if (day < 1 || (unsigned)day > days_in_month(year, (unsigned)month))
                return -1;
            prec = 3;
        }
    }
    if (prec == 3 && *p == 'T') {
        p++;
        hour = digits(&p, 2);
        if (hour < 0 || hour > 23 || *p++ != ':')
            return -1;
        minute = digits(&p, 2);
        if (minute < 0 || minute > 59 || *p++ != ':')
            return -1;
        second = digits(&p, 2);
        if (second < 0 || second > 60)
            return -1;
        if (second == 60)
            second = 59; /* leap second: FHIR allows it, we fold it into :59 */
        prec = 4;
        step_us = US_PER_SEC;
        if (*p == '.') {
            p++;
            int n = 0;
            int64_t scale = US_PER_SEC;
            while (*p >= '0' && *p <= '9') {
                if (n < 6) {
                    scale /= 10;
                    frac_us += (*p - '0') * scale;
                    step_us = scale;
                }
                n++;
                p++;
            }
            if (n == 0)
                return -1;
        }
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1;
            int zh = digits(&p, 2);
            if (zh < 0 || zh > 14 || *p++ != ':')
                return -1;
            int zm = digits(&p, 2);
            if (zm < 0 || zm > 59)
                return -1;
            zone_sec = sign * (zh * 3600 + zm * 60);
        }
    }
    if (*p != '\0')
        return -1;

    int64_t days = days_from_civil(year, (unsigned)month, (unsigned)day);
    int64_t start_sec = days * SEC_PER_DAY + hour * 3600 + minute * 60 + second - zone_sec;
    int64_t start = start_sec * US_PER_SEC + frac_us;
    int64_t end;
    switch (prec) {
    case 1: end = days_from_civil(year + 1, 1, 1) * SEC_PER_DAY * US_PER_SEC; break;
    case 2:
        end = days_from_civil(month == 12 ? year + 1 : year, month == 12 ? 1 : (unsigned)month + 1,
                              1) *
              SEC_PER_DAY * US_PER_SEC;
        break;
    case 3: end = start + SEC_PER_DAY * US_PER_SEC; break;
    default: end = start + step_us; break;
    }
    if (lo)
        *lo = start;
    if (hi)
        *hi = end;
    if (precision)
        *precision = prec;
    return 0;
}
