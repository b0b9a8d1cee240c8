/*
 * vitalog — ingest/zone.c: a local date-time without a zone ("2024-03-01T08:00",
 * Fitbit's times) resolved in a zone: a fixed offset or an IANA name read
 * from the system's compiled zoneinfo (/usr/share/zoneinfo, Debian tzdata).
 *
 * DESIGN NOTES
 *
 * 1. Thread-safe without the C library's zone machinery: no setenv("TZ"),
 *    tzset() or localtime(), which share process-wide state and are not safe
 *    in the multi-threaded server. The zone file is read and parsed here.
 *
 * 2. The file is TZif (RFC 8536). Versions 2 and later carry a second,
 *    64-bit data block after the 32-bit one: that block is used (a version 1
 *    file only has the 32-bit block, which is used then). From it: the
 *    transition times (UTC seconds), the local time type of each
 *    transition, and the types' UT offsets (ttinfo: utoff, isdst, abbreviation
 *    index; only utoff matters). Before the first transition time type 0
 *    is in force (RFC 8536 3.2). Files with leap-second records (the
 *    "right/" zones, whose times count leap seconds) are refused.
 *
 * 3. After the last transition the footer's POSIX TZ string rules
 *    (RFC 8536 3.3; POSIX.1 8.3): "std offset [dst [offset] [,start[/time],end[/time]]]",
 *    names alphabetic or <quoted>, offsets hh[:mm[:ss]] west of UTC, and
 *    rule dates of the form Mm.w.d (month, week 1-5 with 5 the last,
 *    weekday 0 = Sunday) with times up to +-167 h (the RFC 8536 extension).
 *    The other date forms (Jn, n) and a DST name without rules are refused
 *    (-1) for the times that would need them; no zone of tzdata 2025 uses
 *    them. An empty footer: the last transition's offset goes on forever.
 *
 * 4. Gaps and overlaps (ingest.h): the offset in force before the change.
 *    A transition at UTC time t from offset b to offset a makes local
 *    clock times in [t + min(a,b), t + max(a,b)) missing (a > b, spring)
 *    or doubled (a < b, autumn). A local time L is before the transition,
 *    or in its gap or overlap, exactly when L < t + max(a,b); it then takes
 *    b. So the offset of L is b of the first transition with
 *    L < t + max(a,b), or the offset after the last one. The footer's
 *    rules are expanded into the transitions of the years around L and
 *    read the same way. Example: Europe/Berlin 2024-03-31T02:30 (missing)
 *    is +01:00, 2024-10-27T02:30 (twice) is +02:00.
 *
 * 5. Names are checked before any file is opened: 1-64 characters of
 *    [A-Za-z0-9_+-/], no leading '/', no "." at all (so no ".."); the file
 *    must be a regular file of at most 1 MiB. A missing zone is -1.
 *
 * 6. Parsed zones are kept in a small cache (16 names, replaced round
 *    robin) guarded by one mutex, held for the lookup and the resolution,
 *    so no thread uses a zone another one frees. The cache lives for the
 *    process: a tzdata upgrade is seen after a restart.
 *
 * 7. Output: the local time as given, with 'T', seconds added when absent
 *    (":00"), the fraction kept as given, then the offset "+hh:mm" ("Z"
 *    stays "Z"; a zone whose offset is 0 gives "+00:00"). FHIR offsets are
 *    whole minutes within -14:00..+14:00: anything else (local mean time of
 *    the 19th century, "+00:53:28") is -1. Inputs: "YYYY-MM-DDThh:mm[:ss[.f]]"
 *    with 1-9 fraction digits, or a space instead of 'T'; a date alone or
 *    a time that already has a zone is -1 (callers handle dates).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingest_internal.h"

#define ZONEINFO_DIR "/usr/share/zoneinfo/"
#define ZONE_NAME_MAX 64
#define ZONE_FILE_MAX (1 << 20)
#define ZONE_CACHE 16
#define MAX_OFFSET (14 * 3600)

/* ------------------------------------------------------------------------
 * Calendar arithmetic (proleptic Gregorian, days since 1970-01-01)
 * ---------------------------------------------------------------------- */

/* 0 = Sunday */
static int weekday(int64_t days)
{
    return (int)(((days + 4) % 7 + 7) % 7);
}

static int64_t year_of(int64_t secs)
{
    int64_t y;
    unsigned m, d;
    vl_time_civil_from_days(secs >= 0 ? secs / 86400 : (secs - 86399) / 86400, &y, &m, &d);
    return y;
}

/* ------------------------------------------------------------------------
 * The local time given
 * ---------------------------------------------------------------------- */

typedef struct local {
    int y, mo, d, h, mi, s;
    char frac[10]; /* the fraction digits as given, "" none */
} local_t;

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int parse_local(const char *s, local_t *t)
{
    size_t n = strlen(s), i = 16, f = 0;
    memset(t, 0, sizeof *t);
    if (n < 16 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') || s[13] != ':')
        return -1;
    if (digits(s, 4, &t->y) < 0 || digits(s + 5, 2, &t->mo) < 0 || digits(s + 8, 2, &t->d) < 0 ||
        digits(s + 11, 2, &t->h) < 0 || digits(s + 14, 2, &t->mi) < 0)
        return -1;
    if (s[i] == ':') {
        if (digits(s + i + 1, 2, &t->s) < 0)
            return -1;
        i += 3;
        if (s[i] == '.') {
            for (i++; s[i] >= '0' && s[i] <= '9' && f < sizeof t->frac - 1; i++)
                t->frac[f++] = s[i];
            if (!f)
                return -1;
        }
    }
    if (s[i] != '\0')
        return -1; /* a zone, more fraction digits, garbage */
    if (t->y < 1 || t->mo < 1 || t->mo > 12 || t->d < 1 ||
        t->d > (int)vl_time_days_in_month(t->y, (unsigned)t->mo) || t->h > 23 || t->mi > 59 ||
        t->s > 59)
        return -1;
    return 0;
}

/* the local time as seconds on a UTC clock */
static int64_t local_secs(const local_t *t)
{
    return vl_time_days_from_civil(t->y, (unsigned)t->mo, (unsigned)t->d) * 86400 + t->h * 3600 +
           t->mi * 60 + t->s;
}

/* "Z", "+hh:mm", "-hh:mm", "+hhmm", "-hhmm": 0 with *off; -1 if not one */
static int fixed_offset(const char *tz, int32_t *off, int *zulu)
{
    int h, m, sign;
    size_t n = strlen(tz);
    *zulu = 0;
    if (!strcmp(tz, "Z")) {
        *off = 0;
        *zulu = 1;
        return 0;
    }
    if ((tz[0] != '+' && tz[0] != '-') || (n != 6 && n != 5) || (n == 6 && tz[3] != ':'))
        return -1;
    sign = tz[0] == '-' ? -1 : 1;
    if (digits(tz + 1, 2, &h) < 0 || digits(tz + n - 2, 2, &m) < 0 || m > 59)
        return -1;
    *off = sign * (h * 3600 + m * 60);
    return 0;
}

/* ------------------------------------------------------------------------
 * POSIX TZ strings (the TZif footer)
 * ---------------------------------------------------------------------- */

typedef struct rule_date {
    int month, week, wday;
    int32_t secs; /* local time of day of the change, may be < 0 or > 24 h */
} rule_date_t;

typedef struct posix_tz {
    int state;                /* 0 no footer, 1 parsed, -1 present but not supported */
    int has_dst;              /* a DST name and rules */
    int32_t std_off, dst_off; /* seconds east of UTC */
    rule_date_t start, end;
} posix_tz_t;

static const char *tz_name(const char *p)
{
    const char *q = p;
    if (*p == '<') {
        for (q = p + 1; *q && *q != '>'; q++)
            ;
        return *q == '>' && q - p >= 4 ? q + 1 : NULL;
    }
    while ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z'))
        q++;
    return q - p >= 3 ? q : NULL;
}

/* [+-]h[h[h]][:mm[:ss]], hours at most `max_h`; seconds into *out */
static const char *tz_time(const char *p, int max_h, int32_t *out)
{
    int sign = 1, part[3] = {0, 0, 0}, k = 0;
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    for (;;) {
        int nd = 0;
        while (*p >= '0' && *p <= '9' && nd < 3) {
            part[k] = part[k] * 10 + (*p++ - '0');
            nd++;
        }
        if (!nd || (k > 0 && (nd != 2 || part[k] > 59)))
            return NULL;
        if (++k == 3 || *p != ':')
            break;
        p++;
    }
    if (part[0] > max_h)
        return NULL;
    *out = sign * (part[0] * 3600 + part[1] * 60 + part[2]);
    return p;
}

/* ",Mm.w.d[/time]" */
static const char *tz_rule(const char *p, rule_date_t *r)
{
    int v[3] = {0, 0, 0};
    if (*p++ != ',' || *p++ != 'M')
        return NULL; /* Jn and n are not supported (note 3) */
    for (int k = 0; k < 3; k++) {
        int nd = 0;
        if (k && *p++ != '.')
            return NULL;
        while (*p >= '0' && *p <= '9' && nd < 2) {
            v[k] = v[k] * 10 + (*p++ - '0');
            nd++;
        }
        if (!nd)
            return NULL;
    }
    if (v[0] < 1 || v[0] > 12 || v[1] < 1 || v[1] > 5 || v[2] > 6)
        return NULL;
    r->month = v[0];
    r->week = v[1];
    r->wday = v[2];
    r->secs = 7200;
    if (*p == '/')
        p = tz_time(p + 1, 167, &r->secs);
    return p;
}

static void posix_tz_parse(const char *s, posix_tz_t *z)
{
    const char *p = tz_name(s);
    int32_t west;
    memset(z, 0, sizeof *z);
    z->state = -1;
    if (!p || !(p = tz_time(p, 24, &west)))
        return;
    z->std_off = -west;
    if (*p == '\0') {
        z->state = 1;
        return;
    }
    if (!(p = tz_name(p)))
        return;
    z->dst_off = z->std_off + 3600;
    if (*p && *p != ',') {
        if (!(p = tz_time(p, 24, &west)))
            return;
        z->dst_off = -west;
    }
    if (!(p = tz_rule(p, &z->start)) || !(p = tz_rule(p, &z->end)) || *p)
        return;
    z->has_dst = 1;
    z->state = 1;
}

/* the local clock seconds at which rule `r` changes in year `y` */
static int64_t rule_local(const rule_date_t *r, int64_t y)
{
    int64_t first = vl_time_days_from_civil(y, (unsigned)r->month, 1);
    int mday = 1 + (r->wday - weekday(first) + 7) % 7 + (r->week - 1) * 7;
    while (mday > (int)vl_time_days_in_month(y, (unsigned)r->month))
        mday -= 7;
    return (first + mday - 1) * 86400 + r->secs;
}

/* ------------------------------------------------------------------------
 * Reading transitions (note 4)
 * ---------------------------------------------------------------------- */

typedef struct change {
    int64_t at; /* UTC seconds */
    int32_t before, after;
} change_t;

static int pick(int64_t local, const change_t *c, size_t n, int32_t *off)
{
    for (size_t i = 0; i < n; i++) {
        int32_t hi = c[i].after > c[i].before ? c[i].after : c[i].before;
        if (local < c[i].at + hi) {
            *off = c[i].before;
            return 1;
        }
    }
    return 0;
}

static int posix_offset(const posix_tz_t *z, int64_t local, int32_t *off)
{
    change_t c[6];
    size_t n = 0;
    int64_t y = year_of(local);
    if (z->state != 1)
        return -1;
    if (!z->has_dst) {
        *off = z->std_off;
        return 0;
    }
    for (int64_t yy = y - 1; yy <= y + 1; yy++) {
        change_t on = {rule_local(&z->start, yy) - z->std_off, z->std_off, z->dst_off};
        change_t off_ = {rule_local(&z->end, yy) - z->dst_off, z->dst_off, z->std_off};
        c[n++] = on;
        c[n++] = off_;
    }
    /* sort the six by time (southern zones end DST before they start it) */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && c[j].at < c[j - 1].at; j--) {
            change_t t = c[j];
            c[j] = c[j - 1];
            c[j - 1] = t;
        }
    if (!pick(local, c, n, off))
        *off = c[n - 1].after;
    return 0;
}

/* ------------------------------------------------------------------------
 * TZif files (note 2)
 * ---------------------------------------------------------------------- */

typedef struct zone {
    char name[ZONE_NAME_MAX + 1];
    change_t *changes;
    size_t n;
    int32_t initial; /* time type 0: before the first transition */
    posix_tz_t tail;
} zone_t;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct tzif_counts {
    uint32_t isut, isstd, leap, time, type, chars;
} tzif_counts_t;

/* the header at `p` (44 bytes) and the size of its data block */
static int tzif_header(const unsigned char *p, size_t avail, int wide, tzif_counts_t *c,
                       size_t *size)
{
    if (avail < 44 || memcmp(p, "TZif", 4))
        return -1;
    c->isut = be32(p + 20);
    c->isstd = be32(p + 24);
    c->leap = be32(p + 28);
    c->time = be32(p + 32);
    c->type = be32(p + 36);
    c->chars = be32(p + 40);
    if (c->time > 100000 || c->type == 0 || c->type > 256 || c->chars > 4096 || c->leap > 100000 ||
        c->isut > 256 || c->isstd > 256)
        return -1;
    *size = (size_t)c->time * (wide ? 9 : 5) + (size_t)c->type * 6 + c->chars +
            (size_t)c->leap * (wide ? 12 : 8) + c->isstd + c->isut;
    return avail - 44 >= *size ? 0 : -1;
}

static int tzif_block(const unsigned char *p, const tzif_counts_t *c, int wide, zone_t *z)
{
    size_t tw = wide ? 8 : 4;
    const unsigned char *idx = p + c->time * tw, *types = idx + c->time;
    int32_t prev;
    if (c->leap)
        return -1; /* leap-second zones (note 2) */
    z->changes = calloc(c->time ? c->time : 1, sizeof *z->changes);
    if (!z->changes)
        return -1;
    z->initial = (int32_t)be32(types);
    prev = z->initial;
    for (uint32_t i = 0; i < c->time; i++) {
        if (idx[i] >= c->type)
            return -1;
        z->changes[i].at = wide ? be64(p + i * tw) : (int32_t)be32(p + i * tw);
        z->changes[i].before = prev;
        z->changes[i].after = prev = (int32_t)be32(types + idx[i] * 6);
        if (i && z->changes[i].at <= z->changes[i - 1].at)
            return -1;
    }
    z->n = c->time;
    return 0;
}

static int tzif_parse(const unsigned char *buf, size_t len, zone_t *z)
{
    tzif_counts_t c;
    size_t size, off;
    if (tzif_header(buf, len, 0, &c, &size) < 0)
        return -1;
    if (buf[4] == '\0') /* version 1: the 32-bit block only */
        return tzif_block(buf + 44, &c, 0, z);
    off = 44 + size;
    if (tzif_header(buf + off, len - off, 1, &c, &size) < 0 ||
        tzif_block(buf + off + 44, &c, 1, z) < 0)
        return -1;
    off += 44 + size;
    /* the footer: "\n" TZ "\n" */
    if (off < len && buf[off] == '\n') {
        const unsigned char *end = memchr(buf + off + 1, '\n', len - off - 1);
        char tz[128];
        size_t n = end ? (size_t)(end - (buf + off + 1)) : 0;
        if (!end || n >= sizeof tz)
            return -1;
        memcpy(tz, buf + off + 1, n);
        tz[n] = '\0';
        if (n)
            posix_tz_parse(tz, &z->tail);
    }
    return 0;
}

static int name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > ZONE_NAME_MAX || name[0] == '/' || strstr(name, ".."))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '+' || ch == '-' || ch == '/'))
            return 0;
    }
    return 1;
}

static unsigned char *read_zone_file(const char *name, size_t *len)
{
    char path[sizeof ZONEINFO_DIR + ZONE_NAME_MAX];
    struct stat st;
    unsigned char *buf = NULL;
    size_t got = 0;
    int fd;
    snprintf(path, sizeof path, "%s%s", ZONEINFO_DIR, name);
    fd = open(path, O_RDONLY | O_CLOEXEC); /* links inside zoneinfo are tzdata's own */
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 44 ||
        st.st_size > ZONE_FILE_MAX || !(buf = malloc((size_t)st.st_size)))
        goto fail;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r <= 0)
            goto fail;
        got += (size_t)r;
    }
    close(fd);
    *len = got;
    return buf;
fail:
    free(buf);
    close(fd);
    return NULL;
}

static void zone_free(zone_t *z)
{
    if (z) {
        free(z->changes);
        free(z);
    }
}

static zone_t *zone_load(const char *name)
{
    size_t len = 0;
    unsigned char *buf = read_zone_file(name, &len);
    zone_t *z;
    if (!buf)
        return NULL;
    z = calloc(1, sizeof *z);
    if (!z || tzif_parse(buf, len, z) < 0) {
        zone_free(z);
        z = NULL;
    } else {
        snprintf(z->name, sizeof z->name, "%s", name);
    }
    free(buf);
    return z;
}

static int zone_offset(const zone_t *z, int64_t local, int32_t *off)
{
    if (pick(local, z->changes, z->n, off))
        return 0;
    if (z->tail.state != 0)
        return posix_offset(&z->tail, local, off);
    *off = z->n ? z->changes[z->n - 1].after : z->initial;
    return 0;
}

/* the cache (note 6) */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static zone_t *cache[ZONE_CACHE];
static size_t cache_next;

static int named_offset(const char *name, int64_t local, int32_t *off)
{
    zone_t *z = NULL;
    int rc = -1;
    if (!name_ok(name))
        return -1;
    pthread_mutex_lock(&cache_lock);
    for (size_t i = 0; i < ZONE_CACHE && !z; i++)
        if (cache[i] && !strcmp(cache[i]->name, name))
            z = cache[i];
    if (!z && (z = zone_load(name)) != NULL) {
        zone_free(cache[cache_next]);
        cache[cache_next] = z;
        cache_next = (cache_next + 1) % ZONE_CACHE;
    }
    if (z)
        rc = zone_offset(z, local, off);
    pthread_mutex_unlock(&cache_lock);
    return rc;
}

/* ------------------------------------------------------------------------
 * The entry point
 * ---------------------------------------------------------------------- */

int vl_ingest_local_time(const char *local, const char *tz, char out[40])
{
    local_t t;
    int32_t off = 0;
    int zulu = 0, n;
    if (!local || !tz || !out || parse_local(local, &t) < 0)
        return -1;
    if (fixed_offset(tz, &off, &zulu) < 0 && named_offset(tz, local_secs(&t), &off) < 0)
        return -1;
    if (off % 60 || off < -MAX_OFFSET || off > MAX_OFFSET)
        return -1;
    n = snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d%s%s", t.y, t.mo, t.d, t.h, t.mi, t.s,
                 t.frac[0] ? "." : "", t.frac);
    if (zulu)
        snprintf(out + n, 40 - (size_t)n, "Z");
    else
        snprintf(out + n, 40 - (size_t)n, "%c%02d:%02d", off < 0 ? '-' : '+', abs(off) / 3600,
                 abs(off) / 60 % 60);
    return 0;
}
