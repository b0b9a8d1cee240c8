/*
 * vitalog — fhir: primitive formats and reference syntax.
 *
 * The lexical rules are those of the R4 datatypes page
 * (hl7.org/fhir/R4/datatypes.html), written as small hand parsers rather
 * than regular expressions so that they can also check what the regular
 * expressions cannot (days per month, 32-bit ranges).
 *
 * JSON shape: boolean is a JSON boolean; integer, positiveInt, unsignedInt
 * and decimal are JSON numbers (tagged strings from vl_json_parse(), see
 * util.h); every other primitive is a JSON string.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "validate_internal.h"
#include "vitalog/fhir.h"

#define VSTRING_MAX (1024 * 1024) /* R4: strings SHALL NOT exceed 1MB */

int vl_fhir_id_valid(const char *s)
{
    size_t n = 0;
    if (!s)
        return 0;
    for (; s[n]; n++) {
        unsigned char ch = (unsigned char)s[n];
        if (n >= 64 || !(isalnum(ch) || ch == '-' || ch == '.'))
            return 0;
    }
    /* "." and ".." match the R4 id pattern but are path segments that RFC
     * 3986 normalization removes: /Patient/.. would be another URL */
    return n > 0 && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

int vl_vstring_ok(vctx_t *c, const char *s)
{
    size_t n;
    if (s[0] == '\0') {
        vfail(c, 400, "value", NULL, "Empty strings are not allowed (use no value instead)");
        return 0;
    }
    for (n = 0; s[n]; n++) {
        unsigned char ch = (unsigned char)s[n];
        if (ch < 0x20 && ch != '\t' && ch != '\r' && ch != '\n') {
            vfail(c, 400, "value", NULL, "Control character U+%04X is not allowed in a string", ch);
            return 0;
        }
        if (n >= VSTRING_MAX) {
            vfail(c, 400, "too-long", NULL, "String longer than 1 MiB");
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------------
 * Dates and times
 * ---------------------------------------------------------------------- */

static int digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

static int num(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return d[m - 1];
}

/* YYYY, YYYY-MM or YYYY-MM-DD; returns characters consumed (0 if invalid)
 * and the precision (1 year, 2 month, 3 day). */
static size_t parse_date(const char *s, int *prec)
{
    int y, m, d;
    if (!digits(s, 4) || (y = num(s, 4)) < 1)
        return 0;
    *prec = 1;
    if (s[4] != '-')
        return 4;
    if (!digits(s + 5, 2) || (m = num(s + 5, 2)) < 1 || m > 12)
        return 0;
    *prec = 2;
    if (s[7] != '-')
        return 7;
    if (!digits(s + 8, 2) || (d = num(s + 8, 2)) < 1 || d > days_in_month(y, m))
        return 0;
    *prec = 3;
    return 10;
}

/* hh:mm:ss(.fff)? ; returns characters consumed or 0. */
static size_t parse_time(const char *s)
{
    size_t n = 8;
    if (!digits(s, 2) || s[2] != ':' || !digits(s + 3, 2) || s[5] != ':' || !digits(s + 6, 2))
        return 0;
    if (num(s, 2) > 23 || num(s + 3, 2) > 59 || num(s + 6, 2) > 60)
        return 0;
    if (s[8] == '.') {
        n = 9;
        while (isdigit((unsigned char)s[n]))
            n++;
        if (n == 9)
            return 0;
    }
    return n;
}

/* Z or (+|-)hh:mm with hh:mm <= 14:00; returns characters consumed or 0. */
static size_t parse_zone(const char *s)
{
    int h, m;
    if (s[0] == 'Z')
        return 1;
    if ((s[0] != '+' && s[0] != '-') || !digits(s + 1, 2) || s[3] != ':' || !digits(s + 4, 2))
        return 0;
    h = num(s + 1, 2);
    m = num(s + 4, 2);
    if (m > 59 || h > 14 || (h == 14 && m != 0))
        return 0;
    return 6;
}

int vl_vdate_valid(const char *s)
{
    int prec;
    size_t n = parse_date(s, &prec);
    return n > 0 && s[n] == '\0';
}

/* A dateTime: a (partial) date, or a full date with a time; a time needs
 * seconds and a zone. */
int vl_vdatetime_valid(const char *s)
{
    int prec;
    size_t n = parse_date(s, &prec), t, z;
    if (n == 0)
        return 0;
    if (s[n] == '\0')
        return 1;
    if (prec != 3 || s[n] != 'T')
        return 0;
    n++;
    if ((t = parse_time(s + n)) == 0)
        return 0;
    n += t;
    if ((z = parse_zone(s + n)) == 0)
        return 0;
    return s[n + z] == '\0';
}

int vl_vinstant_valid(const char *s)
{
    int prec;
    size_t n = parse_date(s, &prec);
    return n == 10 && prec == 3 && s[n] == 'T' && vl_vdatetime_valid(s);
}

int vl_vtime_valid(const char *s)
{
    size_t n = parse_time(s);
    return n > 0 && s[n] == '\0';
}

/* ------------------------------------------------------------------------
 * Other string formats
 * ---------------------------------------------------------------------- */

static int has_space(const char *s)
{
    for (; *s; s++)
        if (isspace((unsigned char)*s))
            return 1;
    return 0;
}

/* code: [^\s]+(\s[^\s]+)* — no leading, trailing or doubled whitespace */
static int code_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1]))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (isspace((unsigned char)s[i]) && isspace((unsigned char)s[i - 1]))
            return 0;
    return 1;
}

/* urn:oid:[0-2](\.(0|[1-9][0-9]*))+ (without the prefix) */
static int oid_body_valid(const char *s)
{
    int arcs = 0;
    if (s[0] < '0' || s[0] > '2' || s[1] != '.')
        return 0;
    s++;
    while (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s) || (*s == '0' && isdigit((unsigned char)s[1])))
            return 0;
        while (isdigit((unsigned char)*s))
            s++;
        arcs++;
    }
    return arcs > 0 && *s == '\0';
}

/* 8-4-4-4-12 hexadecimal digits (without the urn:uuid: prefix) */
static int uuid_body_valid(const char *s)
{
    static const int groups[] = {8, 4, 4, 4, 12};
    for (int g = 0; g < 5; g++) {
        for (int i = 0; i < groups[g]; i++, s++)
            if (!isxdigit((unsigned char)*s))
                return 0;
        if (g < 4 && *s++ != '-')
            return 0;
    }
    return *s == '\0';
}

/* base64Binary: (\s*([0-9a-zA-Z\+/=]){4}\s*)+ */
static int base64_valid(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        if (isspace((unsigned char)*s))
            continue;
        if (!isalnum((unsigned char)*s) && *s != '+' && *s != '/' && *s != '=')
            return 0;
        n++;
    }
    return n > 0 && n % 4 == 0;
}

/* ------------------------------------------------------------------------
 * Numbers
 * ---------------------------------------------------------------------- */

/* Integer text: -?(0|[1-9][0-9]*) within 32 bits. Sets *v. */
static int int_text_valid(const char *s, long long *v)
{
    const char *p = s;
    char *end;
    if (*p == '-')
        p++;
    if (!isdigit((unsigned char)*p) || (*p == '0' && p[1] != '\0'))
        return 0;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return 0;
    if (strlen(p) > 11)
        return 0;
    errno = 0;
    *v = strtoll(s, &end, 10);
    return errno == 0 && *end == '\0' && *v >= INT32_MIN && *v <= INT32_MAX;
}

static void check_integer(vctx_t *c, vt_t t, const json_t *v)
{
    const char *text = vl_json_number_text(v);
    long long n;
    if (text) {
        if (!int_text_valid(text, &n)) {
            vfail(c, 400, "value", NULL,
                  "'%.40s' is not a valid %s (a whole number within 32 bits, "
                  "no fraction or exponent)",
                  text, vl_vdefs[t].name);
            return;
        }
    } else if (json_is_integer(v)) {
        n = (long long)json_integer_value(v);
        if (n < INT32_MIN || n > INT32_MAX) {
            vfail(c, 400, "value", NULL, "%s out of 32-bit range", vl_vdefs[t].name);
            return;
        }
    } else {
        vfail(c, 400, "value", NULL, "%s must be a whole number", vl_vdefs[t].name);
        return;
    }
    if (t == VT_POSITIVEINT && n < 1)
        vfail(c, 400, "value", NULL, "positiveInt must be 1 or more");
    else if (t == VT_UNSIGNEDINT && n < 0)
        vfail(c, 400, "value", NULL, "unsignedInt must not be negative");
}

int vl_vdecimal_cmp(const json_t *a, const json_t *b)
{
    double x = vl_json_number_value(a), y = vl_json_number_value(b);
    if (isnan(x) || isnan(y))
        return 2;
    return (x > y) - (x < y);
}

/* ------------------------------------------------------------------------
 * References
 * ---------------------------------------------------------------------- */

/* Splits "Type/id" or "Type/id/_history/vid" starting at s (no scheme).
 * Returns 1 if s is exactly that, copying Type. */
static int relative_ref(const char *s, char *type, size_t type_size)
{
    char buf[256];
    char *parts[5];
    int n = 0;
    size_t len = strlen(s);
    if (len == 0 || len >= sizeof buf)
        return 0;
    memcpy(buf, s, len + 1);
    for (char *p = buf; n < 5;) {
        parts[n++] = p;
        p = strchr(p, '/');
        if (!p)
            break;
        *p++ = '\0';
    }
    if (strchr(parts[n - 1], '/') != NULL)
        return 0; /* more than four segments */
    if (n != 2 && n != 4)
        return 0;
    if (!vl_fhir_is_r4_type(parts[0]) || !vl_fhir_id_valid(parts[1]))
        return 0;
    if (n == 4 && (strcmp(parts[2], "_history") != 0 || !vl_fhir_id_valid(parts[3])))
        return 0;
    if (type && type_size > strlen(parts[0]))
        memcpy(type, parts[0], strlen(parts[0]) + 1);
    return 1;
}

int vl_vref_parse(const char *s, char *type, size_t type_size, int *local)
{
    if (type && type_size)
        type[0] = '\0';
    *local = 0;
    if (!s[0] || has_space(s))
        return 0;
    if (s[0] == '#') {
        *local = 1;
        return s[1] == '\0' || vl_fhir_id_valid(s + 1);
    }
    if (strncmp(s, "urn:uuid:", 9) == 0)
        return uuid_body_valid(s + 9);
    if (strncmp(s, "urn:oid:", 8) == 0)
        return oid_body_valid(s + 8);
    if (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0) {
        const char *host = strstr(s, "//") + 2;
        const char *p;
        if (*host == '\0' || *host == '/')
            return 0;
        /* The type of an absolute reference: the last Type/id or
         * Type/id/_history/vid of its path, when there is one. */
        for (p = strchr(host, '/'); p; p = strchr(p + 1, '/')) {
            if (relative_ref(p + 1, type, type_size))
                break;
        }
        return 1;
    }
    return relative_ref(s, type, type_size);
}

/* ------------------------------------------------------------------------
 * The dispatcher
 * ---------------------------------------------------------------------- */

void vl_vcheck_primitive(vctx_t *c, vt_t t, const json_t *v)
{
    const char *name = vl_vdefs[t].name;
    const char *s;
    int ok = 1;

    if (t == VT_BOOLEAN) {
        if (!json_is_boolean(v))
            vfail(c, 400, "value", NULL, "boolean must be JSON true or false");
        return;
    }
    if (t == VT_INTEGER || t == VT_POSITIVEINT || t == VT_UNSIGNEDINT || t == VT_DECIMAL) {
        if (!vl_json_is_number(v)) {
            vfail(c, 400, "value", NULL, "%s must be a JSON number%s", name,
                  json_is_string(v) ? ", not a string" : "");
            return;
        }
        if (t != VT_DECIMAL)
            check_integer(c, t, v);
        else if (vl_json_number_text(v)) {
            s = vl_json_number_text(v);
            if (!vl_json_number_valid(s, strlen(s)))
                vfail(c, 400, "value", NULL, "'%.40s' is not a valid decimal", s);
        }
        return;
    }
    if (!vl_json_is_string(v)) {
        vfail(c, 400, "value", NULL, "%s must be a JSON string", name);
        return;
    }
    s = json_string_value(v);
    if (!vl_vstring_ok(c, s))
        return;

    switch (t) {
    case VT_CODE: ok = code_valid(s); break;
    case VT_ID: ok = vl_fhir_id_valid(s); break;
    case VT_URI:
    case VT_URL:
    case VT_CANONICAL: ok = !has_space(s); break;
    case VT_OID: ok = strncmp(s, "urn:oid:", 8) == 0 && oid_body_valid(s + 8); break;
    case VT_UUID: ok = strncmp(s, "urn:uuid:", 9) == 0 && uuid_body_valid(s + 9); break;
    case VT_BASE64BINARY: ok = base64_valid(s); break;
    case VT_DATE: ok = vl_vdate_valid(s); break;
    case VT_DATETIME:
        ok = vl_vdatetime_valid(s);
        if (!ok) {
            vfail(c, 400, "value", NULL,
                  "'%.60s' is not a valid dateTime (YYYY, YYYY-MM, YYYY-MM-DD or "
                  "YYYY-MM-DDThh:mm:ss[.fff] with a zone: Z or +hh:mm)",
                  s);
            return;
        }
        break;
    case VT_INSTANT:
        ok = vl_vinstant_valid(s);
        if (!ok) {
            vfail(c, 400, "value", NULL,
                  "'%.60s' is not a valid instant (YYYY-MM-DDThh:mm:ss[.fff] and a zone)", s);
            return;
        }
        break;
    case VT_TIME: ok = vl_vtime_valid(s); break;
    default: /* string, markdown, xhtml: vl_vstring_ok() was enough */ break;
    }
    if (!ok)
        vfail(c, 400, "value", NULL, "'%.60s' is not a valid %s", s, name);
}
