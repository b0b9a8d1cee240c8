/*
 * vitalog — ledger: the entry line (canonical JSON, one per accepted write
 * or key rotation) and rotation signatures.
 *
 * Each entry has exactly one text (invariant 2 in merkle.c): the line is
 * built by hand (no printf: it is on the write path) in a fixed key order
 * without spaces, every value is
 * drawn from a grammar that needs no JSON escape, and the parser is a
 * strict scanner of that same grammar, so any changed, added, removed or
 * reordered byte either fails to parse or parses to a different entry.
 * The scanner does not use jansson: it is the verifier's hot path.
 *
 *   ref        <Type>/<id>/_history/<vid>   Type [A-Z][A-Za-z]{0,63},
 *                                           id and vid [A-Za-z0-9.-]{1,64}
 *   time       YYYY-MM-DDTHH:MM:SS.mmmZ     (vl_time_format, UTC, year >= 1)
 *   index      decimal, no leading zero
 *   hex        64 lowercase hex digits
 *   key        a verifier key without '"' or '\'
 *   signature  base64 (padded, canonical) of 64 bytes
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "internal.h"

#define VL_ENTRY_MAX_LINE 1024 /* > the longest line a valid entry can have (~560) */

static const char *const kind_names[] = {"create",         "update",        "delete",
                                         "key-rotation",   "consent.grant", "consent.revoke",
                                         "access.disclose"};

/* ------------------------------------------------------------------------
 * Field grammars
 * ---------------------------------------------------------------------- */

static int id_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.';
}

/* Length of a valid ref at s (up to the first '"' or end), or 0. */
static size_t ref_scan(const char *s, size_t len)
{
    size_t i = 0, start;
    if (len == 0 || !(s[0] >= 'A' && s[0] <= 'Z'))
        return 0;
    while (i < len && i < 64 && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
        i++;
    if (i >= len || s[i] != '/')
        return 0;
    start = ++i;
    while (i < len && id_char((unsigned char)s[i]) && i - start < 64)
        i++;
    if (i == start || len - i < 10 || memcmp(s + i, "/_history/", 10) != 0)
        return 0;
    i += 10;
    start = i;
    while (i < len && id_char((unsigned char)s[i]) && i - start < 64)
        i++;
    if (i == start)
        return 0;
    return i;
}

static int key_json_safe(const char *key, size_t len)
{
    return !memchr(key, '"', len) && !memchr(key, '\\', len);
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int num(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Exactly "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 bytes), as vl_time_format writes. */
static int instant_scan(const char *s, int64_t *us)
{
    static const unsigned char mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = num(s, 4), mo = num(s + 5, 2), d = num(s + 8, 2), h = num(s + 11, 2),
        mi = num(s + 14, 2), se = num(s + 17, 2), ms = num(s + 20, 3);
    if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
        s[19] != '.' || s[23] != 'Z')
        return -1;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 ||
        se > 59 || ms < 0)
        return -1;
    if (d > mdays[mo - 1] + (mo == 2 && is_leap(y)))
        return -1;
    *us =
        ((days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se) * 1000 +
         ms) *
        1000;
    return 0;
}

/* ------------------------------------------------------------------------
 * Format
 * ---------------------------------------------------------------------- */

/* Civil date of a day count since 1970-01-01 (H. Hinnant). */
static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static char *put_digits(char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

/* The instant exactly as vl_time_format writes it (24 bytes), without
 * printf: this is on the write path. Out-of-range times are clamped by
 * vl_time_format itself. */
static char *put_instant(char *p, int64_t us)
{
    static const int64_t lo = INT64_C(-62135596800000000); /* 0001-01-01 */
    static const int64_t hi = INT64_C(253402300800000000); /* 10000-01-01 */
    if (us < lo || us >= hi) {
        char t[32];
        vl_time_format(us, t);
        memcpy(p, t, 24);
        return p + 24;
    }
    int64_t ms = us >= 0 ? us / 1000 : -((-us + 999) / 1000); /* floor */
    int64_t sec = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int64_t days = sec >= 0 ? sec / 86400 : -((-sec + 86399) / 86400);
    unsigned sod = (unsigned)(sec - days * 86400), msr = (unsigned)(ms - sec * 1000);
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    p = put_digits(p, (unsigned)y, 4);
    *p++ = '-';
    p = put_digits(p, (unsigned)m, 2);
    *p++ = '-';
    p = put_digits(p, (unsigned)d, 2);
    *p++ = 'T';
    p = put_digits(p, sod / 3600, 2);
    *p++ = ':';
    p = put_digits(p, sod / 60 % 60, 2);
    *p++ = ':';
    p = put_digits(p, sod % 60, 2);
    *p++ = '.';
    p = put_digits(p, msr, 3);
    *p++ = 'Z';
    return p;
}

#define PUT(lit)                                                                                   \
    do {                                                                                           \
        memcpy(p, lit, sizeof(lit) - 1);                                                           \
        p += sizeof(lit) - 1;                                                                      \
    } while (0)

char *vl_ledger_entry_format(const vl_ledger_entry_t *e, size_t *len)
{
    char *line, *p, digits[24];
    size_t dn = 0;
    uint64_t idx;
    if (len)
        *len = 0;
    if (!e || (unsigned)e->kind >= (unsigned)VL_ENTRY__COUNT)
        return NULL;
    line = malloc(VL_ENTRY_MAX_LINE);
    if (!line)
        return NULL;
    p = line;
    PUT("{\"index\":");
    idx = e->index;
    do {
        digits[dn++] = (char)('0' + idx % 10);
        idx /= 10;
    } while (idx);
    while (dn)
        *p++ = digits[--dn];
    PUT(",\"time\":\"");
    p = put_instant(p, e->time_us);
    PUT("\",\"kind\":\"");
    if (e->kind != VL_ENTRY_KEY_ROTATION) {
        size_t rlen = strnlen(e->ref, sizeof e->ref), kl = strlen(kind_names[e->kind]);
        if (rlen == 0 || rlen == sizeof e->ref || ref_scan(e->ref, rlen) != rlen)
            goto fail;
        memcpy(p, kind_names[e->kind], kl);
        p += kl;
        PUT("\",\"ref\":\"");
        memcpy(p, e->ref, rlen);
        p += rlen;
        PUT("\",\"commitment\":\"");
        vl__hex(e->commitment, VL_HASH_LEN, p);
        p += 2 * VL_HASH_LEN;
    } else {
        vl_ledger_key_t k;
        size_t klen = strnlen(e->key, sizeof e->key), slen;
        if (klen == sizeof e->key || !key_json_safe(e->key, klen) ||
            vl__key_parse_vkey_n(e->key, klen, &k, NULL) != 0)
            goto fail;
        PUT("key-rotation\",\"key\":\"");
        memcpy(p, e->key, klen);
        p += klen;
        PUT("\",\"signature\":\"");
        slen = vl__b64_encode(e->signature, sizeof e->signature, p, 96);
        if (slen == 0)
            goto fail;
        p += slen;
    }
    PUT("\",\"prev\":\"");
    vl__hex(e->prev, VL_HASH_LEN, p);
    p += 2 * VL_HASH_LEN;
    PUT("\"}");
    *p = '\0';
    /* longest line: ~70 fixed + 20 index + 24 time + 255 key + 88 + 64 */
    if (len)
        *len = (size_t)(p - line);
    return line;
fail:
    free(line);
    return NULL;
}

/* ------------------------------------------------------------------------
 * Scan / parse
 * ---------------------------------------------------------------------- */

#define EXPECT(lit)                                                                                \
    do {                                                                                           \
        if ((size_t)(end - p) < sizeof(lit) - 1 || memcmp(p, lit, sizeof(lit) - 1) != 0) {         \
            *why = "expected " lit;                                                                \
            return -1;                                                                             \
        }                                                                                          \
        p += sizeof(lit) - 1;                                                                      \
    } while (0)

static int hex_field(const char **pp, const char *end, unsigned char out[VL_HASH_LEN])
{
    if (end - *pp < 2 * VL_HASH_LEN || vl__unhex(*pp, VL_HASH_LEN, out) != 0)
        return -1;
    *pp += 2 * VL_HASH_LEN;
    return 0;
}

int vl__entry_scan(const char *line, size_t len, vl_ledger_entry_t *out, const char **why)
{
    const char *p = line, *end = line + len, *q;
    const char *dummy;
    uint64_t index = 0;
    if (!why)
        why = &dummy;
    if (!line || len > VL_ENTRY_MAX_LINE) {
        *why = "line too long";
        return -1;
    }
    EXPECT("{\"index\":");
    if (p == end || *p < '0' || *p > '9' ||
        (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9')) {
        *why = "index is not canonical decimal";
        return -1;
    }
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        unsigned dgt = (unsigned)(*p - '0');
        if (index > (UINT64_MAX - dgt) / 10) {
            *why = "index out of range";
            return -1;
        }
        index = index * 10 + dgt;
    }
    out->index = index;
    EXPECT(",\"time\":\"");
    if (end - p < 24 || instant_scan(p, &out->time_us) != 0) {
        *why = "time is not an instant YYYY-MM-DDTHH:MM:SS.mmmZ";
        return -1;
    }
    p += 24;
    EXPECT("\",\"kind\":\"");
    out->kind = VL_ENTRY__COUNT;
    for (int k = 0; k < VL_ENTRY__COUNT; k++) {
        size_t kl = strlen(kind_names[k]);
        if ((size_t)(end - p) > kl && memcmp(p, kind_names[k], kl) == 0 && p[kl] == '"') {
            out->kind = (vl_entry_kind_t)k;
            p += kl;
            break;
        }
    }
    if ((unsigned)out->kind >= (unsigned)VL_ENTRY__COUNT) {
        *why = "unknown kind";
        return -1;
    }
    if (out->kind != VL_ENTRY_KEY_ROTATION) {
        size_t rl;
        EXPECT("\",\"ref\":\"");
        q = memchr(p, '"', (size_t)(end - p));
        if (!q || (rl = (size_t)(q - p)) >= sizeof out->ref || ref_scan(p, rl) != rl) {
            *why = "ref is not Type/id/_history/vid";
            return -1;
        }
        memcpy(out->ref, p, rl);
        out->ref[rl] = '\0';
        p = q;
        EXPECT("\",\"commitment\":\"");
        if (hex_field(&p, end, out->commitment) != 0) {
            *why = "commitment is not 64 lowercase hex digits";
            return -1;
        }
        out->key[0] = '\0';
        memset(out->signature, 0, sizeof out->signature);
    } else {
        size_t kl;
        vl_ledger_key_t k;
        EXPECT("\",\"key\":\"");
        q = memchr(p, '"', (size_t)(end - p));
        if (!q || (kl = (size_t)(q - p)) >= sizeof out->key || !key_json_safe(p, kl) ||
            vl__key_parse_vkey_n(p, kl, &k, NULL) != 0) {
            *why = "key is not a verifier key";
            return -1;
        }
        memcpy(out->key, p, kl);
        out->key[kl] = '\0';
        p = q;
        EXPECT("\",\"signature\":\"");
        if (end - p < 88 || vl__b64_decode_exact(p, 88, out->signature, 64) != 0) {
            *why = "signature is not the base64 of 64 bytes";
            return -1;
        }
        p += 88;
        out->ref[0] = '\0';
        memset(out->commitment, 0, sizeof out->commitment);
    }
    EXPECT("\",\"prev\":\"");
    if (hex_field(&p, end, out->prev) != 0) {
        *why = "prev is not 64 lowercase hex digits";
        return -1;
    }
    EXPECT("\"}");
    if (p != end) {
        *why = "bytes after the end of the entry";
        return -1;
    }
    return 0;
}

int vl_ledger_entry_parse(const char *line, size_t len, vl_ledger_entry_t *out, vl_error_t *err)
{
    const char *why = NULL;
    char *again;
    size_t alen = 0;
    int same;
    memset(out, 0, sizeof *out);
    if (vl__entry_scan(line, len, out, &why) != 0) {
        memset(out, 0, sizeof *out);
        return vl_error_set(err, 422, "invalid", NULL, "not a canonical ledger line: %s", why);
    }
    /* Belt and braces: the scanner's grammar is the formatter's, so this
     * holds by construction; a mismatch would be a bug in one of them. */
    again = vl_ledger_entry_format(out, &alen);
    same = again && alen == len && memcmp(again, line, len) == 0;
    free(again);
    if (!same) {
        memset(out, 0, sizeof *out);
        return vl_error_set(err, 422, "invalid", NULL,
                            "not a canonical ledger line: differs from its canonical form");
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Rotation
 * ---------------------------------------------------------------------- */

/* "vitalog key rotation\n" || key || "\n" into buf; returns its length. */
static size_t rotation_message(const char *key, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s%s\n", VL_LEDGER_ROTATION_PREFIX, key);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

int vl_ledger_rotation_sign(const vl_ledger_key_t *old, vl_ledger_entry_t *e)
{
    char msg[512];
    size_t mlen, klen;
    vl_ledger_key_t k;
    if (!old || !e || !old->has_secret)
        return -1;
    klen = strnlen(e->key, sizeof e->key);
    if (klen == sizeof e->key || !key_json_safe(e->key, klen) ||
        vl__key_parse_vkey_n(e->key, klen, &k, NULL) != 0)
        return -1;
    mlen = rotation_message(e->key, msg, sizeof msg);
    if (mlen == 0)
        return -1;
    e->kind = VL_ENTRY_KEY_ROTATION;
    return crypto_sign_detached(e->signature, NULL, (const unsigned char *)msg, mlen, old->sk) == 0
               ? 0
               : -1;
}

int vl__rotation_verify(const vl_ledger_key_t *old, const vl_ledger_entry_t *e)
{
    char msg[512];
    size_t mlen = rotation_message(e->key, msg, sizeof msg);
    if (mlen == 0)
        return -1;
    return crypto_sign_verify_detached(e->signature, (const unsigned char *)msg, mlen, old->pk) == 0
               ? 0
               : -1;
}
