/*
 * http_runner — black-box HTTP tests against the real vitalog binary.
 *
 * For each case file in tests/http/cases (sorted by name) the runner
 *
 *   1. creates a fresh data directory with mkdtemp(3),
 *   2. starts `vitalog serve --data DIR --listen 127.0.0.1:0 --port-file DIR/port`
 *      with stdout and stderr going to DIR/server.log,
 *   3. waits (up to 10 s) until DIR/port holds the bound port,
 *   4. runs the steps of the case in order, stopping at the first failing step,
 *   5. sends SIGTERM and requires exit status 0 within 10 s,
 *   6. removes the directory (kept with --keep).
 *
 * The case format is documented in tests/http/README.md. In short:
 *
 *     # comment
 *     POST /fhir/Observation
 *     Content-Type: application/fhir+json
 *
 *     {"resourceType": "Observation", ...}
 *     expect status 201
 *     expect header Location ~ ^http://127\.0\.0\.1:[0-9]+/fhir/Observation/
 *     expect json meta.versionId = 1
 *     capture id = json id
 *     ---
 *     GET /fhir/Observation/${id}
 *     expect status 200
 *
 * NUMBERS
 *   jansson turns numbers into doubles and loses their text, but FHIR decimals
 *   must keep it (1.00 is not 1.0). Every JSON text the runner looks at is
 *   therefore lexed first: each number token outside a string becomes the
 *   string "\u0001<token>" (a "tagged number"), and only then does jansson
 *   parse it. Tree comparisons (json_equal) then compare numbers by their
 *   exact text, and `expect json PATH = 1.00` compares the exact token.
 *
 * Exit status: 0 when every selected case passed, 1 when one failed, 2 on
 * usage errors. The last line of output is "N passed, M failed".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strsignal, mkdtemp, prctl, MSG_NOSIGNAL */
#endif
#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <jansson.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STEP_TIMEOUT_S 10L
#define START_TIMEOUT_MS 10000
#define STOP_TIMEOUT_MS 10000
#define MAX_BODY (64u * 1024u * 1024u)
#define NUM_TAG '\x01'

#if defined(__GNUC__)
#define PRINTF_LIKE(a, b) __attribute__((format(printf, a, b)))
#else
#define PRINTF_LIKE(a, b)
#endif

/* ======================================================================
 * Small helpers: allocation, growable buffers, files
 * ==================================================================== */

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "http_runner: out of memory\n");
        exit(2);
    }
    return q;
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = xrealloc(NULL, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

/* A growable byte buffer, always NUL-terminated. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} buf_t;

static void buf_reserve(buf_t *b, size_t extra)
{
    if (b->len + extra + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + extra + 1)
            cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
}

static void buf_add(buf_t *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_adds(buf_t *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static void buf_addc(buf_t *b, char c)
{
    buf_add(b, &c, 1);
}

static void buf_vprintf(buf_t *b, const char *fmt, va_list ap) PRINTF_LIKE(2, 0);
static void buf_vprintf(buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return;
    buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

static void buf_printf(buf_t *b, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

static const char *buf_str(const buf_t *b)
{
    return b->data ? b->data : "";
}

static void buf_clear(buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static void buf_free(buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Reads a whole file; returns 0 and fills *out, or -1 (errno set). */
static int read_file(const char *path, buf_t *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_add(out, tmp, n);
    int bad = ferror(f);
    fclose(f);
    if (!out->data)
        buf_add(out, "", 0);
    return bad ? -1 : 0;
}

static char *path_join(const char *a, const char *b)
{
    buf_t p = {0};
    buf_adds(&p, a);
    if (p.len && p.data[p.len - 1] != '/')
        buf_addc(&p, '/');
    buf_adds(&p, b);
    return p.data;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Shortens text for messages: at most `max` bytes, control chars escaped. */
static void buf_add_excerpt(buf_t *b, const char *s, size_t len, size_t max)
{
    size_t n = len < max ? len : max;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == NUM_TAG)
            continue;
        if (c == '\n')
            buf_adds(b, "\\n");
        else if (c == '\r')
            buf_adds(b, "\\r");
        else if (c < 0x20)
            buf_printf(b, "\\x%02x", c);
        else
            buf_addc(b, (char)c);
    }
    if (len > max)
        buf_printf(b, "... (%zu bytes)", len);
}

/* ======================================================================
 * Number-preserving JSON parsing (see NUMBERS above)
 * ==================================================================== */

/* Length of a valid JSON number token at s (0 if none). */
static size_t number_token_len(const char *s, size_t len)
{
    size_t i = 0;
    if (i < len && s[i] == '-')
        i++;
    if (i >= len)
        return 0;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < len && isdigit((unsigned char)s[i]))
            i++;
    } else {
        return 0;
    }
    if (i < len && s[i] == '.') {
        i++;
        if (i >= len || !isdigit((unsigned char)s[i]))
            return 0;
        while (i < len && isdigit((unsigned char)s[i]))
            i++;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= len || !isdigit((unsigned char)s[i]))
            return 0;
        while (i < len && isdigit((unsigned char)s[i]))
            i++;
    }
    return i;
}

/* Rewrites number tokens outside strings into "\u0001<token>" strings.
 * Anything that is not a valid number token is copied as is, so jansson
 * still reports malformed input. */
static void tag_numbers(const char *s, size_t len, buf_t *out)
{
    size_t i = 0;
    while (i < len) {
        char c = s[i];
        if (c == '"') {
            size_t j = i + 1;
            while (j < len && s[j] != '"') {
                if (s[j] == '\\' && j + 1 < len)
                    j++;
                j++;
            }
            if (j < len)
                j++;
            buf_add(out, s + i, j - i);
            i = j;
        } else if (c == '-' || isdigit((unsigned char)c)) {
            size_t n = number_token_len(s + i, len - i);
            /* a token followed by more number-ish chars is malformed: copy raw */
            if (n == 0 || (i + n < len && (isalnum((unsigned char)s[i + n]) || s[i + n] == '.' ||
                                           s[i + n] == '-' || s[i + n] == '+'))) {
                size_t j = i;
                while (j < len && (isalnum((unsigned char)s[j]) || s[j] == '.' || s[j] == '-' ||
                                   s[j] == '+'))
                    j++;
                buf_add(out, s + i, j - i);
                i = j;
            } else {
                buf_adds(out, "\"\\u0001");
                buf_add(out, s + i, n);
                buf_addc(out, '"');
                i += n;
            }
        } else {
            buf_addc(out, c);
            i++;
        }
    }
}

/* Parses JSON text with tagged numbers. Returns a new reference or NULL
 * with a message in err (if given). Duplicate keys are an error. */
static json_t *json_parse_tagged(const char *s, size_t len, buf_t *err)
{
    buf_t t = {0};
    tag_numbers(s, len, &t);
    json_error_t je;
    json_t *j = json_loadb(t.data ? t.data : "", t.len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!j && err)
        buf_printf(err, "invalid JSON: %s (line %d)", je.text, je.line);
    buf_free(&t);
    return j;
}

static bool is_tagged_number(const json_t *j)
{
    return json_is_string(j) && json_string_length(j) > 0 && json_string_value(j)[0] == NUM_TAG;
}

static const char *json_type_name(const json_t *j)
{
    if (!j)
        return "missing";
    if (is_tagged_number(j))
        return "number";
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER:
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* Text of a scalar for comparisons: strings as is, numbers as their exact
 * token, true/false/null literally; objects and arrays as compact JSON
 * (numbers shown with their tag removed). Caller frees. */
static char *json_render(const json_t *j)
{
    if (!j)
        return xstrdup("(missing)");
    if (is_tagged_number(j))
        return xstrdup(json_string_value(j) + 1);
    switch (json_typeof(j)) {
    case JSON_STRING: return xstrndup(json_string_value(j), json_string_length(j));
    case JSON_TRUE: return xstrdup("true");
    case JSON_FALSE: return xstrdup("false");
    case JSON_NULL: return xstrdup("null");
    default: break;
    }
    char *d = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!d)
        return xstrdup("(unprintable)");
    /* strip "\u0001 tags: "\u0001123" -> 123 */
    buf_t out = {0};
    for (const char *p = d; *p;) {
        if (starts_with(p, "\"\\u0001")) {
            p += 7;
            while (*p && *p != '"')
                buf_addc(&out, *p++);
            if (*p)
                p++;
        } else {
            buf_addc(&out, *p++);
        }
    }
    free(d);
    if (!out.data)
        buf_add(&out, "", 0);
    return out.data;
}

/* ======================================================================
 * JSON paths: a.b[0].c, [-1] (last), [*] (every element), [key=value]
 * (first element whose member `key` renders as `value`), and a final
 * `length` (size of an array/object/string, unless the object has a real
 * member named length).
 * ==================================================================== */

typedef struct {
    const json_t **v;
    size_t n;
    json_t *owned; /* holds synthesized values (lengths) */
} nodes_t;

static void nodes_push(nodes_t *ns, const json_t *j)
{
    ns->v = xrealloc(ns->v, (ns->n + 1) * sizeof *ns->v);
    ns->v[ns->n++] = j;
}

static void nodes_free(nodes_t *ns)
{
    free(ns->v);
    json_decref(ns->owned);
    memset(ns, 0, sizeof *ns);
}

/* Evaluates `path` from `root`; fills `out` with the nodes found. Returns 0,
 * or -1 with a message for a malformed path. `*multi` tells whether the
 * path contained [*]. */
static int json_path_eval(json_t *root, const char *path, nodes_t *out, bool *multi, buf_t *err)
{
    nodes_t cur = {0};
    nodes_push(&cur, root);
    *multi = false;
    out->owned = json_array();
    const char *p = path;
    if (*p == '.' || *p == '\0') /* "." or "" = the root */
        p += (*p == '.');
    while (*p) {
        nodes_t next = {0};
        if (*p == '[') {
            const char *end = strchr(p, ']');
            if (!end) {
                buf_printf(err, "bad path '%s': missing ]", path);
                nodes_free(&cur);
                return -1;
            }
            char *sel = xstrndup(p + 1, (size_t)(end - p - 1));
            char *eq = strchr(sel, '=');
            for (size_t k = 0; k < cur.n; k++) {
                const json_t *a = cur.v[k];
                if (!json_is_array(a))
                    continue;
                size_t sz = json_array_size(a);
                if (strcmp(sel, "*") == 0) {
                    *multi = true;
                    for (size_t i = 0; i < sz; i++)
                        nodes_push(&next, json_array_get(a, i));
                } else if (eq) {
                    *eq = '\0';
                    for (size_t i = 0; i < sz; i++) {
                        json_t *m = json_object_get(json_array_get(a, i), sel);
                        if (!m)
                            continue;
                        char *r = json_render(m);
                        bool hit = strcmp(r, eq + 1) == 0;
                        free(r);
                        if (hit) {
                            nodes_push(&next, json_array_get(a, i));
                            break;
                        }
                    }
                    *eq = '=';
                } else {
                    char *endp;
                    long idx = strtol(sel, &endp, 10);
                    if (*endp || !*sel) {
                        buf_printf(err, "bad path '%s': bad index [%s]", path, sel);
                        free(sel);
                        nodes_free(&next);
                        nodes_free(&cur);
                        return -1;
                    }
                    if (idx < 0)
                        idx += (long)sz;
                    if (idx >= 0 && (size_t)idx < sz)
                        nodes_push(&next, json_array_get(a, (size_t)idx));
                }
            }
            free(sel);
            p = end + 1;
            if (*p == '.')
                p++;
        } else {
            size_t n = strcspn(p, ".[");
            char *key = xstrndup(p, n);
            for (size_t k = 0; k < cur.n; k++) {
                const json_t *o = cur.v[k];
                json_t *m = json_is_object(o) ? json_object_get(o, key) : NULL;
                if (m) {
                    nodes_push(&next, m);
                } else if (strcmp(key, "length") == 0 && p[n] == '\0') {
                    size_t len;
                    if (json_is_array(o))
                        len = json_array_size(o);
                    else if (json_is_object(o))
                        len = json_object_size(o);
                    else if (json_is_string(o) && !is_tagged_number(o))
                        len = json_string_length(o);
                    else
                        continue;
                    char tmp[40];
                    snprintf(tmp, sizeof tmp, "%c%zu", NUM_TAG, len);
                    json_t *s = json_string(tmp);
                    json_array_append_new(out->owned, s);
                    nodes_push(&next, s);
                }
            }
            free(key);
            p += n;
            if (*p == '.')
                p++;
        }
        nodes_free(&cur);
        cur = next;
    }
    out->v = cur.v;
    out->n = cur.n;
    return 0;
}

/* ======================================================================
 * Variables and ${name} substitution
 * ==================================================================== */

typedef struct {
    char **names;
    char **values;
    size_t n;
} vars_t;

static void vars_set(vars_t *vs, const char *name, const char *value)
{
    for (size_t i = 0; i < vs->n; i++) {
        if (strcmp(vs->names[i], name) == 0) {
            free(vs->values[i]);
            vs->values[i] = xstrdup(value);
            return;
        }
    }
    vs->names = xrealloc(vs->names, (vs->n + 1) * sizeof *vs->names);
    vs->values = xrealloc(vs->values, (vs->n + 1) * sizeof *vs->values);
    vs->names[vs->n] = xstrdup(name);
    vs->values[vs->n] = xstrdup(value);
    vs->n++;
}

static const char *vars_get(const vars_t *vs, const char *name)
{
    for (size_t i = 0; i < vs->n; i++)
        if (strcmp(vs->names[i], name) == 0)
            return vs->values[i];
    return NULL;
}

static void vars_free(vars_t *vs)
{
    for (size_t i = 0; i < vs->n; i++) {
        free(vs->names[i]);
        free(vs->values[i]);
    }
    free(vs->names);
    free(vs->values);
    memset(vs, 0, sizeof *vs);
}

/* Replaces ${name} in s. Returns a new string, or NULL with a message in err
 * when a variable is undefined. */
static char *subst(const vars_t *vs, const char *s, buf_t *err)
{
    buf_t out = {0};
    buf_add(&out, "", 0);
    while (*s) {
        if (s[0] == '$' && s[1] == '{') {
            const char *end = strchr(s + 2, '}');
            if (end) {
                char *name = xstrndup(s + 2, (size_t)(end - s - 2));
                const char *v = vars_get(vs, name);
                if (!v) {
                    buf_printf(err, "undefined variable ${%s}", name);
                    free(name);
                    buf_free(&out);
                    return NULL;
                }
                free(name);
                buf_adds(&out, v);
                s = end + 1;
                continue;
            }
        }
        buf_addc(&out, *s++);
    }
    return out.data;
}

/* ======================================================================
 * Case files
 * ==================================================================== */

typedef enum { STEP_HTTP, STEP_RAW, STEP_CORPUS } step_kind_t;

/* How a RAW step ends its side of the connection. */
typedef enum {
    RAW_WAIT,       /* keep the connection open and read one response (default) */
    RAW_HALF_CLOSE, /* shutdown(SHUT_WR) after sending, then read */
    RAW_CLOSE       /* close right after sending, read nothing */
} raw_mode_t;

typedef struct {
    char *text; /* e.g. "status 201" or "json id ~ ^[0-9a-f]{32}$" (after "expect ") */
    bool capture; /* "capture NAME = ..." (text is after "capture ") */
    int line;
} expect_t;

typedef struct {
    step_kind_t kind;
    int line;         /* line of the request line in the case file */
    char *method;     /* HTTP: GET, POST...; CORPUS: the glob */
    char *target;     /* path and query, e.g. /fhir/Observation?x=1 */
    char **headers;   /* "Name: value" lines */
    size_t nheaders;
    char *body;       /* inline body text, or NULL */
    char *body_file;  /* @file:path / @body-file path (relative to --data) */
    long long body_size; /* @body-size N: generated body, -1 when unused */
    long long body_nested; /* @body-nested N: N nested arrays, -1 when unused */
    int repeat;       /* @repeat N (sequential) */
    int parallel;     /* @parallel N (concurrent) */
    bool implicit;    /* implicit checks on (default) */
    raw_mode_t raw_mode; /* RAW steps only */
    expect_t *expects;
    size_t nexpects;
} step_t;

typedef struct {
    char *path;
    char *name;
    step_t *steps;
    size_t nsteps;
} case_t;

static void step_free(step_t *st)
{
    free(st->method);
    free(st->target);
    for (size_t i = 0; i < st->nheaders; i++)
        free(st->headers[i]);
    free(st->headers);
    free(st->body);
    free(st->body_file);
    for (size_t i = 0; i < st->nexpects; i++)
        free(st->expects[i].text);
    free(st->expects);
}

static void case_free(case_t *c)
{
    for (size_t i = 0; i < c->nsteps; i++)
        step_free(&c->steps[i]);
    free(c->steps);
    free(c->path);
    free(c->name);
}

static bool is_expect_line(const char *l)
{
    return starts_with(l, "expect ") || starts_with(l, "capture ");
}

/* Parses one block (lines[from..to)) into a step. Returns 0 or -1 with err. */
static int parse_block(char **lines, int from, int to, step_t *st, buf_t *err)
{
    memset(st, 0, sizeof *st);
    st->body_size = -1;
    st->body_nested = -1;
    st->repeat = 1;
    st->parallel = 0;
    st->implicit = true;
    int i = from;
    while (i < to && (lines[i][0] == '#' || trim(lines[i])[0] == '\0'))
        i++;
    if (i >= to)
        return 1; /* empty block */
    st->line = i + 1;
    char *req = trim(lines[i]);
    if (starts_with(req, "corpus ")) {
        st->kind = STEP_CORPUS;
        st->method = xstrdup(trim(req + 7));
    } else if (strcmp(req, "RAW") == 0) {
        st->kind = STEP_RAW;
        st->method = xstrdup("RAW");
    } else {
        char *sp = strchr(req, ' ');
        if (!sp) {
            buf_printf(err, "line %d: expected a request line 'METHOD /path', got '%s'", i + 1, req);
            return -1;
        }
        st->kind = STEP_HTTP;
        st->method = xstrndup(req, (size_t)(sp - req));
        st->target = xstrdup(trim(sp + 1));
        for (const char *m = st->method; *m; m++) {
            if (!isupper((unsigned char)*m)) {
                buf_printf(err, "line %d: bad method '%s'", i + 1, st->method);
                return -1;
            }
        }
    }
    i++;
    /* head: headers and @options until a blank line or an expectation
     * (a RAW block has only @options: its bytes follow directly) */
    for (; i < to; i++) {
        char *l = lines[i];
        if (st->kind == STEP_RAW && l[0] != '@')
            break;
        if (trim(l)[0] == '\0') {
            i++;
            break;
        }
        if (is_expect_line(l))
            break;
        if (l[0] == '#')
            continue;
        char *t = trim(l);
        if (t[0] == '@') {
            long long v = 0;
            char *arg = strchr(t, ' ');
            if (arg)
                v = strtoll(trim(arg), NULL, 10);
            if (starts_with(t, "@repeat ") && v > 0)
                st->repeat = (int)v;
            else if (starts_with(t, "@parallel ") && v > 0 && v <= 256)
                st->parallel = (int)v;
            else if (starts_with(t, "@body-size ") && v >= 0)
                st->body_size = v;
            else if (starts_with(t, "@body-nested ") && v > 0)
                st->body_nested = v;
            else if (starts_with(t, "@body-file "))
                st->body_file = xstrdup(trim(arg));
            else if (strcmp(t, "@half-close") == 0 && st->kind == STEP_RAW)
                st->raw_mode = RAW_HALF_CLOSE;
            else if (strcmp(t, "@close") == 0 && st->kind == STEP_RAW)
                st->raw_mode = RAW_CLOSE;
            else if (strcmp(t, "@no-implicit") == 0)
                st->implicit = false;
            else {
                buf_printf(err, "line %d: unknown option '%s'", i + 1, t);
                return -1;
            }
            continue;
        }
        if (st->kind == STEP_CORPUS) {
            buf_printf(err, "line %d: corpus blocks take no headers", i + 1);
            return -1;
        }
        if (!strchr(t, ':')) {
            buf_printf(err, "line %d: expected 'Header: value', '@option' or a blank line, got '%s'", i + 1, t);
            return -1;
        }
        st->headers = xrealloc(st->headers, (st->nheaders + 1) * sizeof *st->headers);
        st->headers[st->nheaders++] = xstrdup(t);
    }
    /* body: everything until the first expect/capture line */
    buf_t body = {0};
    int first_body = i;
    for (; i < to && !is_expect_line(lines[i]); i++) {
        if (i > first_body)
            buf_addc(&body, '\n');
        buf_adds(&body, lines[i]);
    }
    while (body.len && (body.data[body.len - 1] == '\n' || body.data[body.len - 1] == ' ' ||
                        body.data[body.len - 1] == '\r' || body.data[body.len - 1] == '\t'))
        body.data[--body.len] = '\0';
    if (body.len) {
        if (starts_with(body.data, "@file:") && !strchr(body.data, '\n')) {
            st->body_file = xstrdup(trim(body.data + 6));
            buf_free(&body);
        } else if (starts_with(body.data, "body-size ") && !strchr(body.data, '\n')) {
            st->body_size = strtoll(body.data + 10, NULL, 10);
            buf_free(&body);
        } else {
            st->body = body.data;
        }
    } else {
        buf_free(&body);
    }
    /* expectations */
    for (; i < to; i++) {
        char *l = trim(lines[i]);
        if (l[0] == '\0' || l[0] == '#')
            continue;
        expect_t e = {0};
        e.line = i + 1;
        if (starts_with(l, "expect ")) {
            e.text = xstrdup(trim(l + 7));
        } else if (starts_with(l, "capture ")) {
            e.text = xstrdup(trim(l + 8));
            e.capture = true;
        } else {
            buf_printf(err, "line %d: after the body only 'expect ...' and 'capture ...' lines may follow, got '%s'", i + 1, l);
            return -1;
        }
        st->expects = xrealloc(st->expects, (st->nexpects + 1) * sizeof *st->expects);
        st->expects[st->nexpects++] = e;
    }
    return 0;
}

static int parse_case(const char *path, case_t *c, buf_t *err)
{
    buf_t text = {0};
    if (read_file(path, &text) != 0) {
        buf_printf(err, "cannot read %s: %s", path, strerror(errno));
        buf_free(&text);
        return -1;
    }
    /* split into lines (in place) */
    char **lines = NULL;
    int nlines = 0;
    char *p = text.data;
    while (p && *p) {
        char *nl = strchr(p, '\n');
        lines = xrealloc(lines, (size_t)(nlines + 1) * sizeof *lines);
        lines[nlines++] = p;
        if (!nl)
            break;
        *nl = '\0';
        if (nl > p && nl[-1] == '\r')
            nl[-1] = '\0';
        p = nl + 1;
    }
    int rc = 0;
    int start = 0;
    for (int i = 0; i <= nlines && rc == 0; i++) {
        if (i == nlines || strcmp(lines[i], "---") == 0) {
            step_t st;
            int r = parse_block(lines, start, i, &st, err);
            if (r < 0) {
                step_free(&st);
                rc = -1;
            } else if (r > 0) {
                step_free(&st);
            } else {
                c->steps = xrealloc(c->steps, (c->nsteps + 1) * sizeof *c->steps);
                c->steps[c->nsteps++] = st;
            }
            start = i + 1;
        }
    }
    free(lines);
    buf_free(&text);
    return rc;
}

/* ======================================================================
 * HTTP exchange
 * ==================================================================== */

typedef struct {
    long status;
    char **hnames;
    char **hvalues;
    size_t nh;
    buf_t body;
    buf_t error; /* transport error, empty when the exchange worked */
    json_t *json; /* parsed body (tagged numbers), lazily */
    bool json_tried;
    buf_t json_err;
} response_t;

static void response_clear_headers(response_t *r)
{
    for (size_t i = 0; i < r->nh; i++) {
        free(r->hnames[i]);
        free(r->hvalues[i]);
    }
    free(r->hnames);
    free(r->hvalues);
    r->hnames = r->hvalues = NULL;
    r->nh = 0;
}

static void response_free(response_t *r)
{
    response_clear_headers(r);
    buf_free(&r->body);
    buf_free(&r->error);
    buf_free(&r->json_err);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

static const char *response_header(const response_t *r, const char *name)
{
    for (size_t i = 0; i < r->nh; i++)
        if (strcasecmp(r->hnames[i], name) == 0)
            return r->hvalues[i];
    return NULL;
}

static json_t *response_json(response_t *r)
{
    if (!r->json_tried) {
        r->json_tried = true;
        r->json = json_parse_tagged(buf_str(&r->body), r->body.len, &r->json_err);
    }
    return r->json;
}

/* Parses one header line ("Name: value\r\n" or a status line). */
static void response_header_line(response_t *r, const char *line, size_t n)
{
    while (n && (line[n - 1] == '\r' || line[n - 1] == '\n'))
        n--;
    if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* a new response (e.g. after 100 Continue): forget earlier headers */
        response_clear_headers(r);
        const char *sp = memchr(line, ' ', n);
        if (sp)
            r->status = strtol(sp + 1, NULL, 10);
        return;
    }
    const char *colon = memchr(line, ':', n);
    if (!colon)
        return;
    size_t vstart = (size_t)(colon - line) + 1;
    while (vstart < n && (line[vstart] == ' ' || line[vstart] == '\t'))
        vstart++;
    size_t vend = n;
    while (vend > vstart && (line[vend - 1] == ' ' || line[vend - 1] == '\t'))
        vend--;
    r->hnames = xrealloc(r->hnames, (r->nh + 1) * sizeof *r->hnames);
    r->hvalues = xrealloc(r->hvalues, (r->nh + 1) * sizeof *r->hvalues);
    r->hnames[r->nh] = xstrndup(line, (size_t)(colon - line));
    r->hvalues[r->nh] = xstrndup(line + vstart, vend - vstart);
    r->nh++;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    response_header_line(ud, data, size * nmemb);
    return size * nmemb;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    response_t *r = ud;
    size_t n = size * nmemb;
    if (r->body.len + n > MAX_BODY)
        return 0;
    buf_add(&r->body, data, n);
    return n;
}

/* A request ready to send (after substitution). */
typedef struct {
    const char *method;
    char *url;
    struct curl_slist *headers;
    const char *body; /* may contain NULs */
    size_t body_len;
    bool has_body;
} request_t;

static CURL *easy_for(const request_t *rq, response_t *resp)
{
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    curl_easy_setopt(h, CURLOPT_URL, rq->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, STEP_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, STEP_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    if (strcmp(rq->method, "GET") == 0 && !rq->has_body) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(rq->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        if (rq->has_body || strcmp(rq->method, "POST") == 0 || strcmp(rq->method, "PUT") == 0) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
        }
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
    }
    if (rq->headers)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, rq->headers);
    return h;
}

/* Performs `count` identical requests, concurrently when parallel. */
static void http_perform(const request_t *rq, response_t *resps, int count, bool parallel)
{
    if (!parallel) {
        for (int i = 0; i < count; i++) {
            CURL *h = easy_for(rq, &resps[i]);
            if (!h) {
                buf_adds(&resps[i].error, "curl_easy_init failed");
                continue;
            }
            CURLcode rc = curl_easy_perform(h);
            if (rc != CURLE_OK)
                buf_printf(&resps[i].error, "%s", curl_easy_strerror(rc));
            curl_easy_cleanup(h);
        }
        return;
    }
    CURLM *m = curl_multi_init();
    CURL **hs = xrealloc(NULL, (size_t)count * sizeof *hs);
    for (int i = 0; i < count; i++) {
        hs[i] = easy_for(rq, &resps[i]);
        if (hs[i]) {
            curl_easy_setopt(hs[i], CURLOPT_PRIVATE, (void *)&resps[i]);
            curl_multi_add_handle(m, hs[i]);
        } else {
            buf_adds(&resps[i].error, "curl_easy_init failed");
        }
    }
    int running = 1;
    while (running) {
        if (curl_multi_perform(m, &running) != CURLM_OK)
            break;
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left))) {
        if (msg->msg == CURLMSG_DONE && msg->data.result != CURLE_OK) {
            void *priv = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            if (priv)
                buf_printf(&((response_t *)priv)->error, "%s", curl_easy_strerror(msg->data.result));
        }
    }
    for (int i = 0; i < count; i++) {
        if (hs[i]) {
            curl_multi_remove_handle(m, hs[i]);
            curl_easy_cleanup(hs[i]);
        }
    }
    free(hs);
    curl_multi_cleanup(m);
}

/* True once `in` holds a whole HTTP response: headers plus Content-Length
 * bytes of body (a response without Content-Length ends when the peer
 * closes). */
static bool raw_response_complete(const buf_t *in)
{
    const char *s = buf_str(in);
    const char *end = strstr(s, "\r\n\r\n");
    if (!end)
        return false;
    size_t head = (size_t)(end - s) + 4;
    for (const char *p = s; p < end;) {
        const char *nl = strstr(p, "\r\n");
        if (!nl)
            break;
        if (strncasecmp(p, "Content-Length:", 15) == 0)
            return in->len >= head + strtoull(p + 15, NULL, 10);
        p = nl + 2;
    }
    return false;
}

/* Raw TCP exchange: sends bytes, then (unless RAW_CLOSE) reads until one whole
 * response arrived, the peer closes, or 3 s pass.
 * The reply (if any) is parsed as an HTTP/1.x response. */
static void raw_exchange(int port, const char *data, size_t len, raw_mode_t mode, response_t *r)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        buf_printf(&r->error, "socket: %s", strerror(errno));
        return;
    }
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        buf_printf(&r->error, "connect: %s", strerror(errno));
        close(fd);
        return;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server may close early: not an error by itself */
        off += (size_t)n;
    }
    if (mode == RAW_CLOSE) {
        close(fd);
        return;
    }
    if (mode == RAW_HALF_CLOSE)
        shutdown(fd, SHUT_WR);
    buf_t in = {0};
    long long deadline = now_ms() + 3000;
    while (!raw_response_complete(&in)) {
        long long left = deadline - now_ms();
        if (left <= 0)
            break;
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, (int)left);
        if (pr <= 0)
            break;
        char tmp[8192];
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0)
            break;
        if (in.len < MAX_BODY)
            buf_add(&in, tmp, (size_t)n);
    }
    close(fd);
    /* parse: status line, headers, blank line, body */
    const char *s = buf_str(&in);
    const char *hdr_end = strstr(s, "\r\n\r\n");
    size_t head_len = hdr_end ? (size_t)(hdr_end - s) + 2 : in.len;
    size_t pos = 0;
    while (pos < head_len) {
        const char *nl = memchr(s + pos, '\n', head_len - pos);
        size_t n = nl ? (size_t)(nl - (s + pos)) + 1 : head_len - pos;
        response_header_line(r, s + pos, n);
        pos += n;
    }
    if (hdr_end)
        buf_add(&r->body, hdr_end + 4, in.len - (size_t)(hdr_end + 4 - s));
    buf_free(&in);
}

/* Decodes \r \n \t \\ \xHH escapes of a RAW block. */
static void unescape_raw(const char *s, buf_t *out)
{
    for (; *s; s++) {
        if (*s == '\n')
            continue; /* line breaks in the case file are layout only */
        if (*s != '\\' || !s[1]) {
            buf_addc(out, *s);
            continue;
        }
        s++;
        switch (*s) {
        case 'r': buf_addc(out, '\r'); break;
        case 'n': buf_addc(out, '\n'); break;
        case 't': buf_addc(out, '\t'); break;
        case '\\': buf_addc(out, '\\'); break;
        case 'x':
            if (isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
                char hex[3] = {s[1], s[2], 0};
                buf_addc(out, (char)strtol(hex, NULL, 16));
                s += 2;
                break;
            }
            /* fallthrough */
        default:
            buf_addc(out, '\\');
            buf_addc(out, *s);
        }
    }
}

/* ======================================================================
 * Expectations
 * ==================================================================== */

typedef struct {
    const char *file;  /* case file name, for messages */
    int port;
    char *base;        /* http://127.0.0.1:PORT */
    const char *data_dir;
    vars_t vars;
    int verbose;
} ctx_t;

/* Regex match with POSIX ERE; on success copies group 1 (or the whole
 * match) to *group if given. Returns 1 match, 0 no match, -1 bad regex. */
static int regex_match(const char *re, const char *s, char **group, buf_t *err)
{
    regex_t rx;
    int rc = regcomp(&rx, re, REG_EXTENDED | (group ? 0 : REG_NOSUB));
    if (rc != 0) {
        char msg[256];
        regerror(rc, &rx, msg, sizeof msg);
        buf_printf(err, "bad regex '%s': %s", re, msg);
        return -1;
    }
    regmatch_t m[2];
    int hit = regexec(&rx, s, group ? 2 : 0, group ? m : NULL, 0) == 0;
    if (hit && group) {
        int g = m[1].rm_so >= 0 ? 1 : 0;
        *group = xstrndup(s + m[g].rm_so, (size_t)(m[g].rm_eo - m[g].rm_so));
    }
    regfree(&rx);
    return hit;
}

/* Compares actual text with an operator and an expected value. `actual` is
 * NULL when the thing is absent. Returns true when the check holds. */
static bool compare_op(const char *op, const char *actual, const char *expected, buf_t *why)
{
    if (strcmp(op, "exists") == 0)
        return actual != NULL;
    if (strcmp(op, "absent") == 0)
        return actual == NULL;
    if (!actual)
        return false;
    if (strcmp(op, "=") == 0 || strcmp(op, "raw") == 0) {
        if (strcmp(expected, "\"\"") == 0)
            expected = "";
        return strcmp(actual, expected) == 0;
    }
    if (strcmp(op, "!=") == 0)
        return strcmp(actual, expected) != 0;
    if (strcmp(op, "~") == 0)
        return regex_match(expected, actual, NULL, why) == 1;
    if (strcmp(op, "!~") == 0)
        return regex_match(expected, actual, NULL, why) == 0;
    if (strcmp(op, "contains") == 0)
        return strstr(actual, expected) != NULL;
    if (strcmp(op, "!contains") == 0)
        return strstr(actual, expected) == NULL;
    if (strcmp(op, "<") == 0 || strcmp(op, "<=") == 0 || strcmp(op, ">") == 0 || strcmp(op, ">=") == 0) {
        char *e1, *e2;
        double a = strtod(actual, &e1), b = strtod(expected, &e2);
        if (*e1 || *e2 || !*actual)
            return false;
        if (op[0] == '<')
            return op[1] ? a <= b : a < b;
        return op[1] ? a >= b : a > b;
    }
    buf_printf(why, "unknown operator '%s'", op);
    return false;
}

static bool op_takes_value(const char *op)
{
    return strcmp(op, "exists") != 0 && strcmp(op, "absent") != 0;
}

/* Splits "SUBJECT OP VALUE" where SUBJECT has no spaces. */
static int split_check(char *s, char **subject, char **op, char **value)
{
    *subject = s;
    char *sp = strchr(s, ' ');
    if (!sp)
        return -1;
    *sp = '\0';
    char *rest = trim(sp + 1);
    *op = rest;
    sp = strchr(rest, ' ');
    if (sp) {
        *sp = '\0';
        *value = trim(sp + 1);
    } else {
        *value = rest + strlen(rest);
    }
    if (op_takes_value(*op) && strcmp(*op, "=") != 0 && strcmp(*op, "raw") != 0 &&
        strcmp(*op, "!=") != 0 && !**value)
        return -1;
    return 0;
}

static void response_excerpt(buf_t *msg, const response_t *r)
{
    buf_printf(msg, "\n      response: %ld, body: ", r->status);
    buf_add_excerpt(msg, buf_str(&r->body), r->body.len, 600);
}

/* Evaluates one expectation (or capture) against a response. Appends a
 * message to `fails` and returns false when it does not hold. */
static bool check_expect(ctx_t *cx, const expect_t *e, response_t *r, buf_t *fails)
{
    buf_t err = {0};
    char *text = subst(&cx->vars, e->text, &err);
    bool ok = false;
    if (!text) {
        buf_printf(fails, "    line %d: %s: %s\n", e->line, e->text, buf_str(&err));
        buf_free(&err);
        return false;
    }
    char *work = xstrdup(text);
    buf_t msg = {0};

    if (e->capture) {
        /* NAME = json PATH [~ RE] | NAME = header NAME [~ RE] */
        char *eq = strstr(work, " = ");
        if (!eq) {
            buf_printf(&msg, "capture needs 'NAME = json PATH' or 'NAME = header NAME'");
            goto done;
        }
        *eq = '\0';
        char *name = trim(work);
        char *src = trim(eq + 3);
        char *re = strstr(src, " ~ ");
        if (re) {
            *re = '\0';
            re = trim(re + 3);
        }
        char *value = NULL;
        if (starts_with(src, "json ")) {
            json_t *j = response_json(r);
            if (!j) {
                buf_printf(&msg, "response is not JSON: %s", buf_str(&r->json_err));
                response_excerpt(&msg, r);
                goto done;
            }
            nodes_t ns = {0};
            bool multi;
            if (json_path_eval(j, trim(src + 5), &ns, &multi, &msg) == 0 && ns.n > 0)
                value = json_render(ns.v[0]);
            nodes_free(&ns);
        } else if (starts_with(src, "header ")) {
            const char *h = response_header(r, trim(src + 7));
            if (h)
                value = xstrdup(h);
        } else if (strcmp(src, "body") == 0) {
            value = xstrdup(buf_str(&r->body));
        } else {
            buf_printf(&msg, "capture source must be 'json PATH', 'header NAME' or 'body'");
            goto done;
        }
        if (!value) {
            if (!msg.len)
                buf_printf(&msg, "nothing to capture: %s is absent", src);
            response_excerpt(&msg, r);
            goto done;
        }
        if (re) {
            char *g = NULL;
            int m = regex_match(re, value, &g, &msg);
            free(value);
            value = g;
            if (m != 1) {
                if (m == 0)
                    buf_printf(&msg, "'%s' does not match ~ %s", src, re);
                goto done;
            }
        }
        vars_set(&cx->vars, name, value);
        free(value);
        ok = true;
        goto done;
    }

    if (starts_with(work, "status ")) {
        char *want = trim(work + 7);
        char got[32];
        snprintf(got, sizeof got, "%ld", r->status);
        /* "201" or "200|201" */
        ok = false;
        char *save = NULL;
        char *alts = xstrdup(want);
        for (char *a = strtok_r(alts, "|", &save); a; a = strtok_r(NULL, "|", &save))
            if (strcmp(trim(a), got) == 0)
                ok = true;
        free(alts);
        if (!ok) {
            buf_printf(&msg, "expected status %s, got %ld", want, r->status);
            response_excerpt(&msg, r);
        }
    } else if (starts_with(work, "header ")) {
        char *name, *op, *value;
        if (split_check(trim(work + 7), &name, &op, &value) != 0) {
            buf_printf(&msg, "syntax: expect header NAME (=|!=|~|!~|contains|!contains) VALUE | exists | absent");
            goto done;
        }
        const char *h = response_header(r, name);
        ok = compare_op(op, h, value, &msg);
        if (!ok && !msg.len)
            buf_printf(&msg, "expected header %s %s%s%s, got %s%s%s", name, op, *value ? " " : "", value,
                       h ? "'" : "", h ? h : "(absent)", h ? "'" : "");
    } else if (starts_with(work, "json ")) {
        char *path, *op, *value;
        if (split_check(trim(work + 5), &path, &op, &value) != 0) {
            buf_printf(&msg, "syntax: expect json PATH (=|!=|~|!~|contains|!contains|<|<=|>|>=|raw|type) VALUE | exists | absent");
            goto done;
        }
        json_t *j = response_json(r);
        if (!j) {
            buf_printf(&msg, "response is not JSON: %s", buf_str(&r->json_err));
            response_excerpt(&msg, r);
            goto done;
        }
        nodes_t ns = {0};
        bool multi = false;
        if (json_path_eval(j, path, &ns, &multi, &msg) != 0) {
            nodes_free(&ns);
            goto done;
        }
        if (strcmp(op, "exists") == 0) {
            ok = ns.n > 0;
        } else if (strcmp(op, "absent") == 0) {
            ok = ns.n == 0;
        } else if (ns.n == 0) {
            ok = false;
        } else {
            ok = true;
            for (size_t k = 0; k < ns.n && ok; k++) {
                char *actual = NULL;
                if (strcmp(op, "type") == 0) {
                    ok = strcmp(json_type_name(ns.v[k]), value) == 0;
                    if (!ok)
                        actual = xstrdup(json_type_name(ns.v[k]));
                } else {
                    if (strcmp(op, "raw") == 0 && !is_tagged_number(ns.v[k]))
                        ok = false; /* raw is for number tokens only */
                    actual = json_render(ns.v[k]);
                    if (ok)
                        ok = compare_op(op, actual, value, &msg);
                }
                if (!ok && !msg.len) {
                    buf_printf(&msg, "expected json %s %s %s, got ", path, op, value);
                    if (multi)
                        buf_printf(&msg, "(element %zu) ", k);
                    buf_printf(&msg, "%s ", json_type_name(ns.v[k]));
                    buf_add_excerpt(&msg, actual ? actual : "", actual ? strlen(actual) : 0, 300);
                }
                free(actual);
            }
        }
        if (!ok && !msg.len) {
            buf_printf(&msg, "expected json %s %s%s%s, got %s", path, op, *value ? " " : "", value,
                       ns.n ? "present" : "(absent)");
            response_excerpt(&msg, r);
        }
        nodes_free(&ns);
    } else if (starts_with(work, "body")) {
        char *rest = trim(work + 4);
        const char *b = buf_str(&r->body);
        if (strcmp(rest, "empty") == 0) {
            ok = r->body.len == 0;
        } else if (strcmp(rest, "not-empty") == 0) {
            ok = r->body.len > 0;
        } else if (starts_with(rest, "contains ")) {
            ok = strstr(b, trim(rest + 9)) != NULL;
        } else if (starts_with(rest, "!contains ")) {
            ok = strstr(b, trim(rest + 10)) == NULL;
        } else if (starts_with(rest, "~ ")) {
            ok = regex_match(trim(rest + 2), b, NULL, &msg) == 1;
        } else {
            buf_printf(&msg, "syntax: expect body empty | not-empty | contains TEXT | !contains TEXT | ~ REGEX");
            goto done;
        }
        if (!ok && !msg.len) {
            buf_printf(&msg, "expected body %s, got: ", rest);
            buf_add_excerpt(&msg, b, r->body.len, 800);
        }
    } else {
        buf_printf(&msg, "unknown expectation (status|header|json|body ...)");
    }

done:
    if (!ok)
        buf_printf(fails, "    line %d: %s%s\n      %s\n", e->line, e->capture ? "capture " : "expect ",
                   text, buf_str(&msg));
    buf_free(&msg);
    buf_free(&err);
    free(work);
    free(text);
    return ok;
}

/* Checks that hold for every response unless @no-implicit:
 *   - an X-Request-Id header;
 *   - a non-empty body under /fhir is JSON (no duplicate keys) with a JSON
 *     content type;
 *   - a status >= 400 (not HEAD) carries an OperationOutcome with
 *     issue[0].severity error|fatal and an issue[0].code. */
static bool implicit_checks(const char *method, const char *target, response_t *r, buf_t *fails)
{
    bool ok = true;
    if (!response_header(r, "X-Request-Id")) {
        buf_adds(fails, "    (implicit) every response carries X-Request-Id: header absent\n");
        ok = false;
    }
    bool fhir = starts_with(target, "/fhir");
    if (fhir && r->body.len > 0) {
        const char *ct = response_header(r, "Content-Type");
        if (!ct || !(starts_with(ct, "application/fhir+json") || starts_with(ct, "application/json"))) {
            buf_printf(fails, "    (implicit) a FHIR body has a JSON Content-Type: got %s\n", ct ? ct : "(absent)");
            ok = false;
        }
        if (!response_json(r)) {
            buf_printf(fails, "    (implicit) a FHIR body is valid JSON: %s\n      body: ", buf_str(&r->json_err));
            buf_add_excerpt(fails, buf_str(&r->body), r->body.len, 400);
            buf_addc(fails, '\n');
            ok = false;
        }
    }
    if (r->status >= 400 && strcmp(method, "HEAD") != 0 && (fhir || r->body.len > 0)) {
        json_t *j = response_json(r);
        json_t *issue0 = json_array_get(json_object_get(j, "issue"), 0);
        const char *rt = json_string_value(json_object_get(j, "resourceType"));
        const char *sev = json_string_value(json_object_get(issue0, "severity"));
        const char *code = json_string_value(json_object_get(issue0, "code"));
        if (!j || !rt || strcmp(rt, "OperationOutcome") != 0 || !sev ||
            (strcmp(sev, "error") != 0 && strcmp(sev, "fatal") != 0) || !code || !*code) {
            buf_printf(fails,
                       "    (implicit) an error (%ld) is an OperationOutcome with issue[0].severity error and issue[0].code\n      body: ",
                       r->status);
            buf_add_excerpt(fails, buf_str(&r->body), r->body.len, 400);
            buf_addc(fails, '\n');
            ok = false;
        }
    }
    return ok;
}

/* ======================================================================
 * Running steps
 * ==================================================================== */

static void log_exchange(const request_t *rq, const response_t *r)
{
    fprintf(stderr, "  > %s %s (%zu bytes)\n", rq->method, rq->url, rq->body_len);
    fprintf(stderr, "  < %ld", r->status);
    for (size_t i = 0; i < r->nh; i++)
        fprintf(stderr, "\n  < %s: %s", r->hnames[i], r->hvalues[i]);
    buf_t b = {0};
    buf_add_excerpt(&b, buf_str(&r->body), r->body.len, 1000);
    fprintf(stderr, "\n  < %s\n", buf_str(&b));
    buf_free(&b);
}

/* Builds the request of an HTTP step (substituting variables). Returns 0 or
 * -1 with a message. body_store holds the body bytes. */
static int build_request(ctx_t *cx, const step_t *st, request_t *rq, buf_t *body_store, buf_t *err)
{
    memset(rq, 0, sizeof *rq);
    rq->method = st->method;
    char *target = subst(&cx->vars, st->target, err);
    if (!target)
        return -1;
    buf_t url = {0};
    if (starts_with(target, "http://"))
        buf_adds(&url, target);
    else
        buf_printf(&url, "%s%s", cx->base, target);
    free(target);
    rq->url = url.data;

    bool has_ct = false, has_body = false;
    if (st->body) {
        char *b = subst(&cx->vars, st->body, err);
        if (!b)
            return -1;
        buf_adds(body_store, b);
        free(b);
        has_body = true;
    } else if (st->body_file) {
        char *p = path_join(cx->data_dir, st->body_file);
        int rc = read_file(p, body_store);
        if (rc != 0)
            buf_printf(err, "cannot read body file %s: %s", p, strerror(errno));
        free(p);
        if (rc != 0)
            return -1;
        has_body = true;
    } else if (st->body_size >= 0) {
        /* {"resourceType":"Observation","pad":"xxx...x"} of exactly N bytes */
        const char *pre = "{\"resourceType\":\"Observation\",\"pad\":\"";
        const char *post = "\"}";
        size_t n = (size_t)st->body_size;
        size_t fixed = strlen(pre) + strlen(post);
        if (n >= fixed) {
            buf_reserve(body_store, n);
            buf_adds(body_store, pre);
            memset(body_store->data + body_store->len, 'x', n - fixed);
            body_store->len += n - fixed;
            body_store->data[body_store->len] = '\0';
            buf_adds(body_store, post);
        } else {
            for (size_t i = 0; i < n; i++)
                buf_addc(body_store, 'x');
        }
        has_body = true;
    } else if (st->body_nested > 0) {
        /* {"resourceType":"Observation","status":"final","code":{"text":"x"},"note":[[[...]]]} */
        buf_adds(body_store, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},\"note\":");
        for (long long i = 0; i < st->body_nested; i++)
            buf_addc(body_store, '[');
        for (long long i = 0; i < st->body_nested; i++)
            buf_addc(body_store, ']');
        buf_addc(body_store, '}');
        has_body = true;
    }
    for (size_t i = 0; i < st->nheaders; i++) {
        char *h = subst(&cx->vars, st->headers[i], err);
        if (!h)
            return -1;
        if (strncasecmp(h, "Content-Type:", 13) == 0)
            has_ct = true;
        /* "Name:" with no value removes the header; curl wants "Name;" to send it empty */
        rq->headers = curl_slist_append(rq->headers, h);
        free(h);
    }
    if (has_body && !has_ct)
        rq->headers = curl_slist_append(rq->headers, "Content-Type: application/fhir+json");
    rq->has_body = has_body;
    rq->body = body_store->data ? body_store->data : "";
    rq->body_len = body_store->len;
    return 0;
}

/* Runs one HTTP or RAW step. Returns true when it passed; failures are
 * appended to fails. */
static bool run_http_step(ctx_t *cx, const step_t *st, buf_t *fails)
{
    int n = st->parallel > 0 ? st->parallel : st->repeat;
    bool ok = true;
    for (int iter = 0; iter < (st->parallel > 0 ? 1 : n) && ok; iter++) {
        char ibuf[32];
        snprintf(ibuf, sizeof ibuf, "%d", iter + 1);
        vars_set(&cx->vars, "i", ibuf);
        int count = st->parallel > 0 ? st->parallel : 1;
        response_t *resps = xrealloc(NULL, (size_t)count * sizeof *resps);
        memset(resps, 0, (size_t)count * sizeof *resps);
        buf_t err = {0}, body = {0};
        request_t rq;
        if (st->kind == STEP_RAW) {
            memset(&rq, 0, sizeof rq);
            rq.method = "RAW";
            char *b = st->body ? subst(&cx->vars, st->body, &err) : xstrdup("");
            if (!b) {
                buf_printf(fails, "    %s\n", buf_str(&err));
                ok = false;
            } else {
                unescape_raw(b, &body);
                free(b);
                raw_exchange(cx->port, buf_str(&body), body.len, st->raw_mode, &resps[0]);
                rq.url = xstrdup("(raw socket)");
                rq.body_len = body.len;
            }
        } else if (build_request(cx, st, &rq, &body, &err) != 0) {
            buf_printf(fails, "    %s\n", buf_str(&err));
            ok = false;
        } else {
            http_perform(&rq, resps, count, st->parallel > 0);
        }
        for (int k = 0; ok && k < count; k++) {
            response_t *r = &resps[k];
            if (cx->verbose)
                log_exchange(&rq, r);
            if (st->kind != STEP_RAW && r->error.len) {
                buf_printf(fails, "    %s %s: transport error: %s\n", st->method, rq.url, buf_str(&r->error));
                ok = false;
                break;
            }
            buf_t mine = {0};
            bool step_ok = true;
            if (st->implicit && st->kind != STEP_RAW)
                step_ok = implicit_checks(st->method, rq.url + strlen(cx->base), r, &mine) && step_ok;
            for (size_t e = 0; e < st->nexpects; e++)
                step_ok = check_expect(cx, &st->expects[e], r, &mine) && step_ok;
            if (!step_ok) {
                if (st->repeat > 1 || st->parallel > 0)
                    buf_printf(fails, "    (%s %d of %d)\n", st->parallel ? "request" : "iteration",
                               (st->parallel ? k : iter) + 1, n);
                buf_adds(fails, buf_str(&mine));
            }
            buf_free(&mine);
            ok = ok && step_ok;
        }
        for (int k = 0; k < count; k++)
            response_free(&resps[k]);
        free(resps);
        free(rq.url);
        curl_slist_free_all(rq.headers);
        buf_free(&err);
        buf_free(&body);
    }
    return ok;
}

/* Reports the first difference between two tagged JSON trees. */
static bool json_diff(const json_t *a, const json_t *b, buf_t *path, buf_t *out)
{
    if (json_equal((json_t *)a, (json_t *)b))
        return false;
    if (json_is_object(a) && json_is_object(b)) {
        const char *k;
        json_t *v;
        size_t mark = path->len;
        json_object_foreach((json_t *)a, k, v) {
            json_t *w = json_object_get(b, k);
            buf_printf(path, "%s%s", path->len ? "." : "", k);
            if (!w) {
                buf_printf(out, "%s: missing in response", buf_str(path));
                return true;
            }
            if (json_diff(v, w, path, out))
                return true;
            path->len = mark;
            path->data[mark] = '\0';
        }
        json_object_foreach((json_t *)b, k, v) {
            if (!json_object_get(a, k)) {
                buf_printf(out, "%s%s%s: added by the server", buf_str(path), path->len ? "." : "", k);
                return true;
            }
        }
    } else if (json_is_array(a) && json_is_array(b) && json_array_size(a) == json_array_size(b)) {
        size_t mark = path->len;
        for (size_t i = 0; i < json_array_size(a); i++) {
            buf_printf(path, "[%zu]", i);
            if (json_diff(json_array_get(a, i), json_array_get(b, i), path, out))
                return true;
            path->len = mark;
            path->data[mark] = '\0';
        }
    }
    char *ra = json_render(a), *rb = json_render(b);
    buf_printf(out, "%s: sent %s ", path->len ? buf_str(path) : "(root)", json_type_name(a));
    buf_add_excerpt(out, ra, strlen(ra), 120);
    buf_printf(out, ", got back %s ", json_type_name(b));
    buf_add_excerpt(out, rb, strlen(rb), 120);
    free(ra);
    free(rb);
    return true;
}

/* Compares a sent resource with one the server returned, ignoring id and
 * meta. Returns true when equal; otherwise describes the first difference. */
static bool same_resource(const json_t *sent, const json_t *got, buf_t *why)
{
    json_t *a = json_deep_copy(sent), *b = json_deep_copy(got);
    json_object_del(a, "id");
    json_object_del(a, "meta");
    json_object_del(b, "id");
    json_object_del(b, "meta");
    buf_t path = {0};
    bool diff = json_diff(a, b, &path, why);
    buf_free(&path);
    json_decref(a);
    json_decref(b);
    return !diff;
}

/* One round trip of a corpus file: POST, check, GET, compare. */
static bool corpus_one(ctx_t *cx, const char *file, buf_t *why)
{
    buf_t raw = {0};
    bool ok = false;
    json_t *orig = NULL;
    response_t post = {0}, get = {0};
    request_t rq = {0};
    char *loc_id = NULL;
    if (read_file(file, &raw) != 0) {
        buf_printf(why, "cannot read: %s", strerror(errno));
        goto out;
    }
    orig = json_parse_tagged(raw.data, raw.len, why);
    if (!orig)
        goto out;
    const char *type = json_string_value(json_object_get(orig, "resourceType"));
    if (!type) {
        buf_adds(why, "no resourceType");
        goto out;
    }
    rq.method = "POST";
    buf_t url = {0};
    buf_printf(&url, "%s/fhir/%s", cx->base, type);
    rq.url = url.data;
    rq.headers = curl_slist_append(NULL, "Content-Type: application/fhir+json");
    rq.body = raw.data;
    rq.body_len = raw.len;
    rq.has_body = true;
    http_perform(&rq, &post, 1, false);
    if (cx->verbose)
        log_exchange(&rq, &post);
    if (post.error.len) {
        buf_printf(why, "POST: transport error: %s", buf_str(&post.error));
        goto out;
    }
    if (post.status != 201) {
        buf_printf(why, "POST: expected 201, got %ld: ", post.status);
        buf_add_excerpt(why, buf_str(&post.body), post.body.len, 500);
        goto out;
    }
    const char *loc = response_header(&post, "Location");
    buf_t re = {0};
    buf_printf(&re, "^%s/fhir/%s/([0-9a-f]{32})/_history/1$", cx->base, type);
    int m = loc ? regex_match(re.data, loc, &loc_id, why) : 0;
    buf_free(&re);
    if (m != 1) {
        buf_printf(why, "POST: Location %s does not match {base}/fhir/%s/{32 hex}/_history/1", loc ? loc : "(absent)",
                   type);
        goto out;
    }
    json_t *pj = response_json(&post);
    if (!pj) {
        buf_printf(why, "POST: response is not JSON: %s", buf_str(&post.json_err));
        goto out;
    }
    const char *body_id = json_string_value(json_object_get(pj, "id"));
    if (!body_id || strcmp(body_id, loc_id) != 0) {
        buf_printf(why, "POST: body id differs from Location id %s", loc_id);
        goto out;
    }
    if (!same_resource(orig, pj, why)) {
        buf_t tmp = {0};
        buf_printf(&tmp, "POST response differs: %s", buf_str(why));
        buf_clear(why);
        buf_adds(why, tmp.data);
        buf_free(&tmp);
        goto out;
    }
    /* GET it back */
    curl_slist_free_all(rq.headers);
    rq.headers = NULL;
    free(rq.url);
    url = (buf_t){0};
    buf_printf(&url, "%s/fhir/%s/%s", cx->base, type, loc_id);
    rq.url = url.data;
    rq.method = "GET";
    rq.body = NULL;
    rq.body_len = 0;
    rq.has_body = false;
    http_perform(&rq, &get, 1, false);
    if (cx->verbose)
        log_exchange(&rq, &get);
    if (get.error.len || get.status != 200) {
        buf_printf(why, "GET %s: expected 200, got %ld %s", rq.url, get.status, buf_str(&get.error));
        goto out;
    }
    json_t *gj = response_json(&get);
    if (!gj) {
        buf_printf(why, "GET: response is not JSON: %s", buf_str(&get.json_err));
        goto out;
    }
    const char *vid = json_string_value(json_object_get(json_object_get(gj, "meta"), "versionId"));
    if (!vid || strcmp(vid, "1") != 0) {
        buf_printf(why, "GET: meta.versionId is %s, expected \"1\"", vid ? vid : "(absent)");
        goto out;
    }
    if (!same_resource(orig, gj, why)) {
        buf_t tmp = {0};
        buf_printf(&tmp, "GET differs: %s", buf_str(why));
        buf_clear(why);
        buf_adds(why, tmp.data);
        buf_free(&tmp);
        goto out;
    }
    ok = true;
out:
    free(loc_id);
    free(rq.url);
    curl_slist_free_all(rq.headers);
    response_free(&post);
    response_free(&get);
    json_decref(orig);
    buf_free(&raw);
    return ok;
}

static bool run_corpus_step(ctx_t *cx, const step_t *st, buf_t *fails)
{
    char *pattern = path_join(cx->data_dir, st->method);
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc != 0 || g.gl_pathc == 0) {
        buf_printf(fails, "    corpus %s: no files match %s\n", st->method, pattern);
        free(pattern);
        if (rc == 0)
            globfree(&g);
        return false;
    }
    size_t passed = 0;
    buf_t failed = {0};
    for (size_t i = 0; i < g.gl_pathc; i++) {
        buf_t why = {0};
        const char *base = strrchr(g.gl_pathv[i], '/');
        base = base ? base + 1 : g.gl_pathv[i];
        if (corpus_one(cx, g.gl_pathv[i], &why)) {
            passed++;
        } else {
            buf_printf(&failed, "    %s: %s\n", base, buf_str(&why));
        }
        buf_free(&why);
    }
    printf("  corpus %s: %zu/%zu round-trip\n", st->method, passed, (size_t)g.gl_pathc);
    bool ok = passed == g.gl_pathc;
    if (!ok)
        buf_printf(fails, "    corpus %s: %zu of %zu examples fail:\n%s", st->method, g.gl_pathc - passed,
                   (size_t)g.gl_pathc, buf_str(&failed));
    buf_free(&failed);
    globfree(&g);
    free(pattern);
    return ok;
}

/* ======================================================================
 * The server process
 * ==================================================================== */

typedef struct {
    pid_t pid;
    int exit_status; /* raw waitpid status once reaped */
    bool reaped;
} server_t;

static int server_start(server_t *sv, const char *binary, const char *dir, const char *log_path)
{
    char *port_file = path_join(dir, "port");
    memset(sv, 0, sizeof *sv);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        free(port_file);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int nul = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        if (nul >= 0) {
            dup2(nul, STDIN_FILENO);
            close(nul);
        }
        char *argv[] = {(char *)binary, "serve", "--data", (char *)dir, "--listen", "127.0.0.1:0",
                        "--port-file", port_file, NULL};
        execv(binary, argv);
        fprintf(stderr, "exec %s: %s\n", binary, strerror(errno));
        _exit(127);
    }
    free(port_file);
    sv->pid = pid;
    return 0;
}

static bool server_alive(server_t *sv)
{
    if (sv->reaped)
        return false;
    int st;
    pid_t r = waitpid(sv->pid, &st, WNOHANG);
    if (r == sv->pid) {
        sv->reaped = true;
        sv->exit_status = st;
        return false;
    }
    return true;
}

static void describe_exit(int st, buf_t *out)
{
    if (WIFEXITED(st))
        buf_printf(out, "exit status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        buf_printf(out, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        buf_printf(out, "wait status %d", st);
}

/* Polls DIR/port until it holds a port number. Returns the port or -1. */
static int server_wait_port(server_t *sv, const char *dir, buf_t *why)
{
    char *port_file = path_join(dir, "port");
    long long deadline = now_ms() + START_TIMEOUT_MS;
    int port = -1;
    char last[64] = "";
    while (now_ms() < deadline) {
        buf_t b = {0};
        if (read_file(port_file, &b) == 0 && b.len > 0) {
            char *end;
            long p = strtol(b.data, &end, 10);
            bool complete = *end == '\n' || *end == '\r' || *end == ' ';
            if (!complete && *end == '\0') /* no newline: accept when stable */
                complete = strcmp(last, b.data) == 0;
            snprintf(last, sizeof last, "%s", b.data);
            if (p > 0 && p < 65536 && complete && (*end == '\0' || isspace((unsigned char)*end))) {
                port = (int)p;
                buf_free(&b);
                break;
            }
        }
        buf_free(&b);
        if (!server_alive(sv)) {
            buf_adds(why, "server exited before writing its port file: ");
            describe_exit(sv->exit_status, why);
            break;
        }
        sleep_ms(20);
    }
    if (port < 0 && !why->len)
        buf_printf(why, "no port in %s after %d ms", port_file, START_TIMEOUT_MS);
    free(port_file);
    return port;
}

/* SIGTERM, then wait up to 10 s for exit status 0. Returns true when the
 * server stopped cleanly; otherwise kills it and explains in why. */
static bool server_stop(server_t *sv, buf_t *why)
{
    if (!sv->reaped) {
        kill(sv->pid, SIGTERM);
        long long deadline = now_ms() + STOP_TIMEOUT_MS;
        while (server_alive(sv) && now_ms() < deadline)
            sleep_ms(20);
        if (!sv->reaped) {
            kill(sv->pid, SIGKILL);
            int st;
            waitpid(sv->pid, &st, 0);
            sv->reaped = true;
            buf_printf(why, "server did not exit within %d ms of SIGTERM (killed)", STOP_TIMEOUT_MS);
            return false;
        }
    }
    if (!WIFEXITED(sv->exit_status) || WEXITSTATUS(sv->exit_status) != 0) {
        buf_adds(why, "server did not exit cleanly after SIGTERM: ");
        describe_exit(sv->exit_status, why);
        return false;
    }
    return true;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void print_log_tail(const char *log_path)
{
    buf_t log = {0};
    if (read_file(log_path, &log) != 0) {
        printf("  (no server log)\n");
        buf_free(&log);
        return;
    }
    const size_t max = 16384;
    const char *s = buf_str(&log);
    if (log.len > max) {
        s += log.len - max;
        printf("  --- server log (last %zu of %zu bytes) ---\n", max, log.len);
    } else {
        printf("  --- server log ---\n");
    }
    fputs(s, stdout);
    if (log.len && s[strlen(s) - 1] != '\n')
        putchar('\n');
    printf("  --- end of server log ---\n");
    buf_free(&log);
}

/* ======================================================================
 * Cases
 * ==================================================================== */

typedef struct {
    const char *binary;
    const char *cases_dir;
    const char *data_dir;
    const char *tmp_root;
    char **filters;
    int nfilters;
    int verbose;
    bool keep;
    bool keep_going;
} opts_t;

static bool run_case(const opts_t *o, case_t *c)
{
    bool ok = true;
    buf_t fails = {0}, why = {0};
    ctx_t cx = {0};
    cx.file = c->name;
    cx.data_dir = o->data_dir;
    cx.verbose = o->verbose;
    long long t0 = now_ms();

    buf_t tmpl = {0};
    buf_printf(&tmpl, "%s/vitalog-http-XXXXXX", o->tmp_root);
    char *dir = mkdtemp(tmpl.data);
    if (!dir) {
        printf("FAIL %s: mkdtemp %s: %s\n", c->name, tmpl.data, strerror(errno));
        buf_free(&tmpl);
        return false;
    }
    char *log_path = path_join(dir, "server.log");
    server_t sv;
    if (server_start(&sv, o->binary, dir, log_path) != 0) {
        printf("FAIL %s: fork: %s\n", c->name, strerror(errno));
        ok = false;
        goto cleanup;
    }
    cx.port = server_wait_port(&sv, dir, &why);
    if (cx.port < 0) {
        printf("FAIL %s: server did not start: %s\n", c->name, buf_str(&why));
        ok = false;
        buf_clear(&why);
        server_stop(&sv, &why);
        print_log_tail(log_path);
        goto cleanup;
    }
    {
        buf_t base = {0};
        buf_printf(&base, "http://127.0.0.1:%d", cx.port);
        cx.base = base.data;
        char pbuf[16];
        snprintf(pbuf, sizeof pbuf, "%d", cx.port);
        vars_set(&cx.vars, "base", cx.base);
        vars_set(&cx.vars, "port", pbuf);
    }
    if (o->verbose)
        fprintf(stderr, "%s: server pid %d on port %d, data %s\n", c->name, (int)sv.pid, cx.port, dir);

    bool stop = false; /* a failing HTTP step ends the case; corpus steps do not */
    for (size_t i = 0; i < c->nsteps && !stop; i++) {
        step_t *st = &c->steps[i];
        if (o->verbose)
            fprintf(stderr, "%s:%zu (line %d) %s %s\n", c->name, i + 1, st->line, st->method,
                    st->target ? st->target : "");
        buf_clear(&fails);
        bool step_ok = st->kind == STEP_CORPUS ? run_corpus_step(&cx, st, &fails) : run_http_step(&cx, st, &fails);
        if (!step_ok) {
            printf("FAIL %s:%zu (line %d) %s %s\n%s", c->name, i + 1, st->line,
                   st->kind == STEP_CORPUS ? "corpus" : st->method,
                   st->kind == STEP_CORPUS ? st->method : (st->target ? st->target : ""), buf_str(&fails));
            ok = false;
            stop = st->kind != STEP_CORPUS && !o->keep_going;
        }
        if (!server_alive(&sv)) {
            buf_clear(&why);
            describe_exit(sv.exit_status, &why);
            printf("FAIL %s:%zu (line %d): the server died during this step: %s\n", c->name, i + 1, st->line,
                   buf_str(&why));
            ok = false;
            stop = true;
        }
    }
    buf_clear(&why);
    if (!server_stop(&sv, &why)) {
        printf("FAIL %s: %s\n", c->name, buf_str(&why));
        ok = false;
    }
    if (!ok)
        print_log_tail(log_path);

cleanup:
    if (ok)
        printf("ok   %s (%zu steps, %lld ms)\n", c->name, c->nsteps, now_ms() - t0);
    if (o->keep || (!ok && getenv("HTTP_RUNNER_KEEP_FAILED")))
        printf("  kept data dir %s\n", dir);
    else
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    fflush(stdout);
    free(log_path);
    free(cx.base);
    vars_free(&cx.vars);
    buf_free(&tmpl);
    buf_free(&fails);
    buf_free(&why);
    return ok;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: http_runner --binary PATH --cases DIR --data DIR [options] [FILTER...]\n"
            "  --binary PATH   the vitalog binary to start\n"
            "  --cases DIR     directory of *.case files\n"
            "  --data DIR      test data directory (for @file: bodies and corpus globs)\n"
            "  --filter TEXT   run only cases whose file name contains TEXT (repeatable;\n"
            "                  bare FILTER arguments do the same)\n"
            "  --tmp DIR       where to create data directories (default $TMPDIR or /tmp)\n"
            "  --keep          keep the data directories\n"
            "  --keep-going    run the remaining steps of a case after a failing step\n"
            "  --list          list the cases and exit\n"
            "  -v, --verbose   print every request and response to stderr\n");
}

int main(int argc, char **argv)
{
    opts_t o = {0};
    bool list = false;
    o.tmp_root = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    o.filters = xrealloc(NULL, (size_t)argc * sizeof *o.filters);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_next = i + 1 < argc;
        if (strcmp(a, "--binary") == 0 && has_next)
            o.binary = argv[++i];
        else if (strcmp(a, "--cases") == 0 && has_next)
            o.cases_dir = argv[++i];
        else if (strcmp(a, "--data") == 0 && has_next)
            o.data_dir = argv[++i];
        else if (strcmp(a, "--filter") == 0 && has_next)
            o.filters[o.nfilters++] = argv[++i];
        else if (strcmp(a, "--tmp") == 0 && has_next)
            o.tmp_root = argv[++i];
        else if (strcmp(a, "--keep") == 0)
            o.keep = true;
        else if (strcmp(a, "--keep-going") == 0)
            o.keep_going = true;
        else if (strcmp(a, "--list") == 0)
            list = true;
        else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0)
            o.verbose = 1;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            free(o.filters);
            return 0;
        } else if (a[0] != '-')
            o.filters[o.nfilters++] = argv[i];
        else {
            usage(stderr);
            free(o.filters);
            return 2;
        }
    }
    if (!o.cases_dir || !o.data_dir || (!o.binary && !list)) {
        usage(stderr);
        free(o.filters);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "http_runner: curl_global_init failed\n");
        free(o.filters);
        return 2;
    }

    /* collect *.case files */
    DIR *d = opendir(o.cases_dir);
    if (!d) {
        fprintf(stderr, "http_runner: cannot open %s: %s\n", o.cases_dir, strerror(errno));
        free(o.filters);
        return 2;
    }
    char **names = NULL;
    size_t nnames = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".case") != 0)
            continue;
        bool match = o.nfilters == 0;
        for (int f = 0; f < o.nfilters && !match; f++)
            match = strstr(de->d_name, o.filters[f]) != NULL;
        if (!match)
            continue;
        names = xrealloc(names, (nnames + 1) * sizeof *names);
        names[nnames++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (nnames > 1)
        qsort(names, nnames, sizeof *names, cmp_str);

    int passed = 0, failed = 0;
    for (size_t i = 0; i < nnames; i++) {
        case_t c = {0};
        c.name = xstrdup(names[i]);
        c.path = path_join(o.cases_dir, names[i]);
        buf_t err = {0};
        if (parse_case(c.path, &c, &err) != 0) {
            printf("FAIL %s: bad case file: %s\n", c.name, buf_str(&err));
            failed++;
        } else if (list) {
            printf("%s (%zu steps)\n", c.name, c.nsteps);
        } else if (run_case(&o, &c)) {
            passed++;
        } else {
            failed++;
        }
        buf_free(&err);
        case_free(&c);
        free(names[i]);
    }
    free(names);
    free(o.filters);
    curl_global_cleanup();
    if (list)
        return failed ? 1 : 0;
    if (nnames == 0)
        fprintf(stderr, "http_runner: no cases selected\n");
    printf("%d passed, %d failed\n", passed, failed);
    return failed || nnames == 0 ? 1 : 0;
}
