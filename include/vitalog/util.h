/*
 * vitalog — util: errors, number-preserving JSON, ids, time, logging.
 *
 * Everything here is shared by every other module and depends on nothing
 * of vitalog's own.
 *
 * Status convention: functions return 0 on success and a negative value on
 * failure; details of a failure travel in a vl_error_t owned by the caller.
 */
#ifndef VITALOG_UTIL_H
#define VITALOG_UTIL_H

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define VL_VERSION "0.1.0"
#define VL_FHIR_VERSION "4.0.1"

#if defined(__GNUC__)
#define VL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define VL_WARN_UNUSED __attribute__((warn_unused_result))
#else
#define VL_PRINTF(a, b)
#define VL_WARN_UNUSED
#endif

/* ------------------------------------------------------------------------
 * Errors
 *
 * A vl_error_t collects one or more FHIR OperationOutcome issues and the HTTP
 * status the request should get. The first call to vl_error_set() or
 * vl_error_add() decides the status; later issues only add detail. The
 * struct owns `issues` (a jansson array, NULL while empty): release it with
 * vl_error_clear().
 * ---------------------------------------------------------------------- */

typedef struct vl_error {
    int status;     /* HTTP status; 0 while no error was recorded */
    json_t *issues; /* OperationOutcome.issue array, owned */
} vl_error_t;

#define VL_ERROR_INIT                                                                              \
    {                                                                                              \
        0, NULL                                                                                    \
    }

/** Records an error issue: `code` is a FHIR issue-type code (invalid,
 *  structure, required, value, not-found, deleted, conflict, too-long,
 *  not-supported, processing, exception, security, forbidden, throttled,
 *  transient...). `expression` is a FHIRPath to the offending element or
 *  NULL. Returns -1 so callers can `return vl_error_set(...)`. */
int vl_error_set(vl_error_t *err, int status, const char *code, const char *expression,
                 const char *fmt, ...) VL_PRINTF(5, 6);
/** Same with an explicit severity (error, warning, information). */
int vl_error_addv(vl_error_t *err, int status, const char *severity, const char *code,
                  const char *expression, const char *fmt, va_list ap) VL_PRINTF(6, 0);
/** Number of issues recorded. */
size_t vl_error_count(const vl_error_t *err);
/** Text of the first issue's diagnostics, or "" (borrowed). */
const char *vl_error_message(const vl_error_t *err);
/** Frees the issues and resets the struct to "no error". */
void vl_error_clear(vl_error_t *err);
/** Builds an OperationOutcome resource (new reference) from the issues. */
json_t *vl_error_outcome(const vl_error_t *err);
/** An OperationOutcome with one issue (new reference). */
json_t *vl_outcome_new(const char *severity, const char *code, const char *diagnostics);

/* ------------------------------------------------------------------------
 * Number-preserving JSON
 *
 * FHIR decimals must keep their exact text (1.00 is not 1.0, 1E-22 must
 * survive). jansson parses numbers to doubles, so vl_json_parse() first
 * lexes the input and turns every number token into a *tagged string*: a
 * jansson string whose first byte is VL_JSON_NUMBER_TAG (0x01), followed by
 * the token's exact text. vl_json_dump() turns tagged strings back into bare
 * number tokens. The tag cannot collide with content: vl_json_parse()
 * rejects strings holding control characters (FHIR forbids them too).
 *
 * Invariant: a json_t coming from vl_json_parse() contains no JSON_INTEGER
 * or JSON_REAL values; every number is a tagged string. Code may still add
 * plain jansson numbers (e.g. Bundle.total); vl_json_dump() prints both.
 * Use vl_json_is_number()/vl_json_is_string() instead of jansson's
 * json_is_number()/json_is_string() on parsed documents.
 * ---------------------------------------------------------------------- */

#define VL_JSON_NUMBER_TAG '\x01'

typedef struct vl_json_limits {
    size_t max_depth; /* nesting of objects/arrays; 0 means 64 */
} vl_json_limits_t;

/** Parses `len` bytes of JSON text (one object or array or value). On
 *  failure returns NULL and records a 400 with the line and column.
 *  Duplicate keys, control characters in strings and invalid number tokens
 *  are rejected. Returns a new reference. */
json_t *vl_json_parse(const char *text, size_t len, const vl_json_limits_t *limits,
                      vl_error_t *err);
/** Serializes compactly, numbers as their original text. Returns a malloc'd
 *  NUL-terminated string (caller frees) and its length in *len, or NULL
 *  when out of memory. */
char *vl_json_dump(const json_t *json, size_t *len);
/** New tagged number from its text; NULL if `text` is not a JSON number. */
json_t *vl_json_number(const char *text);
/** True for tagged numbers and jansson integers/reals. */
int vl_json_is_number(const json_t *json);
/** True for strings that are not tagged numbers. */
int vl_json_is_string(const json_t *json);
/** Exact text of a tagged number (borrowed), or NULL. For jansson numbers
 *  NULL too: use vl_json_number_value(). */
const char *vl_json_number_text(const json_t *json);
/** Numeric value of any number (tagged or not); NaN if not a number. */
double vl_json_number_value(const json_t *json);
/** True when `text` is a JSON number token (RFC 8259 grammar). */
int vl_json_number_valid(const char *text, size_t len);

/* ------------------------------------------------------------------------
 * Buffers, arrays and arenas (src/util/buf.c)
 * ---------------------------------------------------------------------- */

/**
 * A growable byte buffer with a hard cap (`max`, 0 = none). On any failure
 * (the cap, or out of memory) it frees its data and stays failed: callers
 * append freely and check once, at vl_buf_take() or b->failed. `data` is
 * always NUL-terminated while non-NULL.
 */
typedef struct vl_buf {
    char *data;
    size_t len, cap, max;
    int failed;
} vl_buf_t;

#define VL_BUF_INIT(max)                                                                           \
    {                                                                                              \
        NULL, 0, 0, (max), 0                                                                       \
    }

/** Appends `n` bytes. Returns 0, or -1 once the buffer has failed. */
int vl_buf_append(vl_buf_t *b, const void *s, size_t n);
int vl_buf_puts(vl_buf_t *b, const char *s);
int vl_buf_printf(vl_buf_t *b, const char *fmt, ...) VL_PRINTF(2, 3);
/** Appends `s` as a JSON string literal (quoted and escaped). */
int vl_buf_json_string(vl_buf_t *b, const char *s);
/** The data (malloc'd, NUL-terminated, caller frees; "" when nothing was
 *  appended) and its length; NULL if the buffer failed. Resets `b`. */
char *vl_buf_take(vl_buf_t *b, size_t *len) VL_WARN_UNUSED;
/** Empties the buffer, keeping its memory (and clearing a failure). */
void vl_buf_reset(vl_buf_t *b);
/** Frees the data and resets the buffer. */
void vl_buf_free(vl_buf_t *b);

/**
 * Makes the array `*items` (elements of `size` bytes, capacity `*cap`) hold
 * at least `need` elements, doubling its capacity (at least 16). Returns 0,
 * or -1 when out of memory or on overflow (the array is left as it was).
 */
int vl_grow(void *items, size_t *cap, size_t need, size_t size) VL_WARN_UNUSED;

/** True when `s` is valid UTF-8 (RFC 3629: no overlong forms, no
 *  surrogates, at most U+10FFFF) without control characters other than
 *  tab. NULL is valid (empty). */
int vl_text_valid(const char *s);

/**
 * An arena: many small allocations freed at once (the h2o memory pool).
 * Allocations are 16-byte aligned; nothing is freed one by one.
 */
typedef struct vl_arena vl_arena_t;

vl_arena_t *vl_arena_new(void);
/** NULL when out of memory. */
void *vl_arena_alloc(vl_arena_t *a, size_t size);
char *vl_arena_strdup(vl_arena_t *a, const char *s);
char *vl_arena_strndup(vl_arena_t *a, const char *s, size_t n);
/** Calls fn(ctx) when the arena is freed (last registered first), e.g. to
 *  release a reference the arena's allocations borrow from. 0 or -1. */
int vl_arena_defer(vl_arena_t *a, void (*fn)(void *ctx), void *ctx);
void vl_arena_free(vl_arena_t *a);

/* ------------------------------------------------------------------------
 * Ids and time
 * ---------------------------------------------------------------------- */

/** Writes a new resource id: 32 lowercase hex digits, 48 bits of
 *  milliseconds since the epoch then 80 random bits (libsodium's CSPRNG),
 *  so that ids created later sort later (see id.c). `out` holds 33 bytes. */
void vl_id_new(char out[33]);
/** Fills `out` with `n` bytes from libsodium's CSPRNG, drawn through a
 *  per-thread pool (one system call per 4 KiB); bytes handed out are
 *  wiped from the pool. For salts and ids, not for keys. */
void vl_random(void *out, size_t n);
/** Days since 1970-01-01 of the proleptic Gregorian date y-m-d (m 1..12,
 *  d 1..31; an impossible date counts on: 02-30 is 03-02). */
int64_t vl_time_days_from_civil(int64_t y, unsigned m, unsigned d);
/** The date of a day count since 1970-01-01 (the inverse). */
void vl_time_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);
/** Days in month m (1..12) of year y. */
unsigned vl_time_days_in_month(int64_t y, unsigned m);
/** Current time as microseconds since the Unix epoch (UTC). */
int64_t vl_time_now_us(void);
/** Formats microseconds since the epoch as a FHIR instant with millisecond
 *  precision in UTC ("2026-11-21T10:00:00.123Z"). `out` holds 32 bytes. */
void vl_time_format(int64_t us, char out[32]);
/** Formats as an RFC 7231 HTTP-date. `out` holds 40 bytes. */
void vl_time_format_http(int64_t us, char out[40]);
/** Parses an HTTP-date (RFC 9110 section 5.6.7: IMF-fixdate, and the
 *  obsolete RFC 850 and asctime forms recipients must accept) into
 *  microseconds since the epoch. 0, or -1 when `s` is none of them. */
int vl_time_parse_http(const char *s, int64_t *us);

/**
 * Parses a FHIR date, dateTime or instant into the half-open range of
 * microseconds [*lo, *hi) it denotes: "2024" covers the whole year,
 * "2024-05-06T10:00:00+02:00" one second. A value without a zone is read
 * as UTC. Returns 0, or -1 if the text is not a valid date/dateTime.
 * `*precision` (may be NULL) receives 1=year 2=month 3=day 4=time.
 */
int vl_time_parse_range(const char *text, int64_t *lo, int64_t *hi, int *precision);

/* ------------------------------------------------------------------------
 * Logging: one JSON object per line on stderr. Never log bodies or PHI.
 * ---------------------------------------------------------------------- */

typedef enum { VL_LOG_DEBUG, VL_LOG_INFO, VL_LOG_WARN, VL_LOG_ERROR } vl_log_level_t;

void vl_log_set_level(vl_log_level_t level);
/** Logs `msg` with extra fields given as a jansson object (stolen, may be
 *  NULL). Thread-safe: each line is written with one write(2). */
void vl_log(vl_log_level_t level, const char *msg, json_t *fields);
/** Convenience: message only, printf-style. */
void vl_logf(vl_log_level_t level, const char *fmt, ...) VL_PRINTF(2, 3);

#endif
