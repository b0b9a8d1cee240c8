/*
 * vitalog — fhir/patch.c: PATCH [base]/[type]/[id] (R4 http.html#patch)
 * with a JSON Patch (RFC 6902) or a FHIRPath Patch (fhirpatch.html), and
 * the JSON Patch applier itself.
 *
 * DESIGN NOTES
 *
 * 1. The format is the Content-Type's: application/json-patch+json is a
 *    JSON Patch (an array of operations, applied below); application/fhir+json
 *    or application/json is a FHIRPath Patch (a Parameters resource,
 *    fhirpath.c). Any other type, or none, is 415. The body is parsed with
 *    the same limits as any FHIR body (400).
 *
 * 2. A PATCH is an update computed from the current version, in two places:
 *
 *      caller thread   read the current version in the caller's scope
 *                      (404 unknown or outside it, 410 deleted); If-Match
 *                      must name it (412); patch a parsed copy (400, 422);
 *                      resourceType and id must stay (422); validate like
 *                      an update (every failure 422, with its issues);
 *                      prepare a VL_W_UPDATE whose if_match is the version
 *                      read, and submit it (vl_x_submit)
 *      writer thread   apply_patch(): when the head is still the version
 *                      read, execute the write. Otherwise another write
 *                      came in between. With the client's If-Match that is
 *                      412 (the version asked for is gone: no retry).
 *                      Without, the unit reads the new current version in
 *                      its own transaction, patches and validates that and
 *                      prepares the write again (repatch), at most
 *                      VL_PATCH_ATTEMPTS times in all, else 409. In the
 *                      writer's transaction no other write can come
 *                      between that read and the write, so two concurrent
 *                      PATCHes both apply, one after the other: neither is
 *                      lost, and neither needs the client to retry.
 *
 *    The common case does all the work (parse, patch, validate, index,
 *    render) on the caller's thread; only a lost race costs the writer.
 *
 * 3. Nothing is stored on any failure: the patch works on a copy, and the
 *    write is one unit (its savepoint rolls back whole). The write is an
 *    update like any (write.c): versioned, indexed, anchored in the ledger
 *    and confined to the caller's write scope.
 *
 * 4. The answer is an update's (vl_write_answer: 200, ETag, Last-Modified,
 *    Location, Prefer). Unlike an update's, a representation holds what the
 *    caller did not send, so it is noted as a disclosure (audit.c), as a
 *    read of the new version would be.
 *
 * 5. JSON Patch (RFC 6902) is applied on the JSON tree itself, FHIR rules
 *    aside (validation comes after): pointers are RFC 6901 ("" the whole
 *    document, ~0 and ~1 escapes, "-" past the end of an array; an index
 *    is 0 or has no leading zero). Each operation sees the result of the
 *    previous one; "test" compares by RFC 6902 section 4.6
 *    (vl_patch_json_equal: numbers by exact decimal value).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_internal.h"
#include "fhirpath.h"

/** Tries of one PATCH against a moving current version (note 2). */
#define VL_PATCH_ATTEMPTS 3
#define DEPTH_DEFAULT 64

/* ------------------------------------------------------------------------
 * JSON values: depth, size, RFC 6902 equality
 * ---------------------------------------------------------------------- */

size_t vl_patch_depth(const json_t *v, size_t stop)
{
    size_t best = 0, d;
    const char *key;
    json_t *m;
    if (!json_is_object(v) && !json_is_array(v))
        return 0;
    if (stop == 0)
        return 1; /* beyond already: no need to look further */
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v) && best < stop; i++)
            if ((d = vl_patch_depth(json_array_get(v, i), stop - 1)) > best)
                best = d;
    } else {
        json_object_foreach ((json_t *)v, key, m) {
            if ((d = vl_patch_depth(m, stop - 1)) > best)
                best = d;
            if (best >= stop)
                break;
        }
    }
    return 1 + best;
}

/* The number of JSON values in `v` (itself included). */
static size_t count_nodes(const json_t *v)
{
    size_t n = 1;
    const char *key;
    json_t *m;
    if (json_is_array(v))
        for (size_t i = 0; i < json_array_size(v); i++)
            n += count_nodes(json_array_get(v, i));
    else if (json_is_object(v))
        json_object_foreach ((json_t *)v, key, m)
            n += count_nodes(m);
    return n;
}

/* A JSON number token as sign, significant digits and exponent, so that
 * equal values have equal forms: "-0.50e1" is (-, "5", 0). */
typedef struct decimal {
    int negative;
    const char *digits; /* first significant digit, in `text` */
    size_t n;           /* significant digits (0: the value is zero) */
    long long exponent; /* value = digits * 10^exponent */
    int overflow;       /* the exponent does not fit: compare texts instead */
    char text[128];     /* the digits without '.', when they fit */
} decimal_t;

static int decimal_parse(const char *s, decimal_t *d)
{
    size_t n = 0, frac = 0;
    long long e = 0;
    int eneg = 0, in_frac = 0;
    memset(d, 0, sizeof *d);
    if (*s == '-') {
        d->negative = 1;
        s++;
    }
    for (; isdigit((unsigned char)*s) || (*s == '.' && !in_frac); s++) {
        if (*s == '.') {
            in_frac = 1;
            continue;
        }
        if (n == 0 && *s == '0') { /* a leading zero: not significant */
            if (in_frac)
                frac++;
            continue;
        }
        if (n + 1 >= sizeof d->text)
            return -1;
        d->text[n++] = *s;
        if (in_frac)
            frac++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            eneg = *s++ == '-';
        for (; isdigit((unsigned char)*s); s++) {
            if (e > 100000000000000LL) {
                d->overflow = 1;
                continue;
            }
            e = e * 10 + (*s - '0');
        }
    }
    while (n && d->text[n - 1] == '0') { /* trailing zeros go to the exponent */
        n--;
        e += eneg ? -1 : 1;
        if (eneg && e < 0) { /* crossed zero: flip */
            e = -e;
            eneg = 0;
        }
    }
    d->text[n] = '\0';
    d->digits = d->text;
    d->n = n;
    d->exponent = (eneg ? -e : e) - (long long)frac;
    if (!n) { /* zero: -0 is 0, whatever the exponent */
        d->negative = 0;
        d->exponent = 0;
    }
    return 0;
}

/* Numeric equality of two number texts, exactly. */
static int number_text_equal(const char *a, const char *b)
{
    decimal_t x, y;
    if (decimal_parse(a, &x) < 0 || decimal_parse(b, &y) < 0 || x.overflow || y.overflow)
        return !strcmp(a, b); /* beyond the exact form: only the same text is equal */
    return x.negative == y.negative && x.n == y.n && x.exponent == y.exponent &&
           !memcmp(x.digits, y.digits, x.n);
}

int vl_patch_json_equal(const json_t *a, const json_t *b)
{
    const char *key;
    json_t *m;
    if (vl_json_is_number(a) || vl_json_is_number(b)) {
        const char *ta = vl_json_number_text(a), *tb = vl_json_number_text(b);
        char ba[64], bb[64];
        if (!vl_json_is_number(a) || !vl_json_is_number(b))
            return 0;
        /* numbers that did not come from text (jansson's own) by their value */
        if (!ta) {
            snprintf(ba, sizeof ba, "%.17g", vl_json_number_value(a));
            ta = ba;
        }
        if (!tb) {
            snprintf(bb, sizeof bb, "%.17g", vl_json_number_value(b));
            tb = bb;
        }
        return number_text_equal(ta, tb);
    }
    if (json_typeof(a) != json_typeof(b))
        return 0;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               !memcmp(json_string_value(a), json_string_value(b), json_string_length(a));
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!vl_patch_json_equal(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    case JSON_OBJECT:
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_foreach ((json_t *)a, key, m) {
            json_t *o = json_object_get(b, key);
            if (!o || !vl_patch_json_equal(m, o))
                return 0;
        }
        return 1;
    default: return 1; /* true, false, null: the same type is the same value */
    }
}

/* ------------------------------------------------------------------------
 * JSON Pointers (RFC 6901)
 * ---------------------------------------------------------------------- */

typedef struct jptr {
    char *buf;  /* the unescaped tokens, each NUL-terminated */
    char **tok; /* n tokens into buf */
    size_t n;
} jptr_t;

static void jptr_free(jptr_t *p)
{
    free(p->buf);
    free(p->tok);
    memset(p, 0, sizeof *p);
}

/* Parses a pointer: 0, -1 not RFC 6901 syntax, -2 out of memory. */
static int jptr_parse(const char *s, jptr_t *p)
{
    size_t len = strlen(s), k = 0;
    char *o;
    memset(p, 0, sizeof *p);
    if (!len)
        return 0;
    if (s[0] != '/')
        return -1;
    for (size_t i = 0; i < len; i++)
        p->n += s[i] == '/';
    p->buf = malloc(len + 1);
    p->tok = malloc(p->n * sizeof *p->tok);
    if (!p->buf || !p->tok) {
        jptr_free(p);
        return -2;
    }
    o = p->buf;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '/') {
            if (i)
                *o++ = '\0';
            p->tok[k++] = o;
        } else if (s[i] == '~') {
            if (s[i + 1] != '0' && s[i + 1] != '1') {
                jptr_free(p);
                return -1;
            }
            *o++ = s[++i] == '0' ? '~' : '/';
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return 0;
}

/* An array index token: 0 with *i, -1 when it is not one ("-", "01", "x"). */
static int jptr_index(const char *t, size_t *i)
{
    size_t v = 0;
    if (!*t || (t[0] == '0' && t[1]) || strlen(t) > 15)
        return -1;
    for (; *t; t++) {
        if (!isdigit((unsigned char)*t))
            return -1;
        v = v * 10 + (size_t)(*t - '0');
    }
    *i = v;
    return 0;
}

/* The value at the first `upto` tokens of `p` in `doc`, or NULL. */
static json_t *jptr_get(json_t *doc, const jptr_t *p, size_t upto)
{
    json_t *v = doc;
    for (size_t k = 0; v && k < upto; k++) {
        size_t i;
        if (json_is_object(v))
            v = json_object_get(v, p->tok[k]);
        else if (json_is_array(v))
            v = jptr_index(p->tok[k], &i) == 0 ? json_array_get(v, i) : NULL;
        else
            v = NULL;
    }
    return v;
}

/* ------------------------------------------------------------------------
 * JSON Patch (RFC 6902)
 * ---------------------------------------------------------------------- */

typedef struct jop {
    size_t i;
    const char *op, *path, *from;
    const json_t *value;
    size_t max_depth;
    size_t *budget; /* nodes copies may still add */
} jop_t;

static int jop_fail(vl_error_t *err, const jop_t *o, int status, const char *code, const char *fmt,
                    ...) VL_PRINTF(5, 6);

static int jop_fail(vl_error_t *err, const jop_t *o, int status, const char *code, const char *fmt,
                    ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return vl_error_set(err, status, code, o->path, "JSON Patch operation %zu (%s '%.200s'): %s",
                        o->i, o->op ? o->op : "?", o->path ? o->path : "", why);
}

/* Puts `value` (taken) at pointer `p` as "add" does. */
static int jadd(json_t **doc, const jptr_t *p, json_t *value, const jop_t *o, vl_error_t *err)
{
    json_t *parent;
    const char *last;
    size_t i;
    if (p->n + vl_patch_depth(value, o->max_depth) > o->max_depth) {
        json_decref(value);
        return jop_fail(err, o, 422, "too-costly", "the value would nest deeper than %zu levels",
                        o->max_depth);
    }
    if (!p->n) { /* the whole document */
        json_decref(*doc);
        *doc = value;
        return 0;
    }
    parent = jptr_get(*doc, p, p->n - 1);
    last = p->tok[p->n - 1];
    if (json_is_object(parent)) {
        if (json_object_set_new(parent, last, value) < 0)
            return vl_error_set(err, 500, "exception", NULL, "out of memory");
        return 0;
    }
    if (json_is_array(parent)) {
        if (!strcmp(last, "-"))
            i = json_array_size(parent);
        else if (jptr_index(last, &i) < 0 || i > json_array_size(parent)) {
            json_decref(value);
            return jop_fail(err, o, 422, "processing",
                            "'%.64s' is not an index of the array (0 to %zu, or -)", last,
                            json_array_size(parent));
        }
        if (json_array_insert_new(parent, i, value) < 0)
            return vl_error_set(err, 500, "exception", NULL, "out of memory");
        return 0;
    }
    json_decref(value);
    return jop_fail(err, o, 422, "processing", "%s",
                    parent ? "the parent of the target is not an object or array"
                           : "the parent of the target does not exist");
}

/* Removes the value at `p` (it must exist); a reference to it goes to
 * *taken when that is not NULL. */
static int jremove(json_t *doc, const jptr_t *p, json_t **taken, const jop_t *o, vl_error_t *err)
{
    json_t *parent, *v;
    const char *last;
    size_t i;
    if (!p->n)
        return jop_fail(err, o, 422, "processing", "the whole document cannot be removed");
    parent = jptr_get(doc, p, p->n - 1);
    last = p->tok[p->n - 1];
    if (json_is_object(parent) && (v = json_object_get(parent, last))) {
        if (taken)
            *taken = json_incref(v);
        json_object_del(parent, last);
        return 0;
    }
    if (json_is_array(parent) && jptr_index(last, &i) == 0 && i < json_array_size(parent)) {
        if (taken)
            *taken = json_incref(json_array_get(parent, i));
        json_array_remove(parent, i);
        return 0;
    }
    return jop_fail(err, o, 422, "processing", "the target does not exist");
}

static int jreplace(json_t **doc, const jptr_t *p, json_t *value, const jop_t *o, vl_error_t *err)
{
    json_t *parent;
    size_t i;
    const char *last;
    int rc;
    if (!jptr_get(*doc, p, p->n)) {
        json_decref(value);
        return jop_fail(err, o, 422, "processing", "the target does not exist");
    }
    if (p->n + vl_patch_depth(value, o->max_depth) > o->max_depth) {
        json_decref(value);
        return jop_fail(err, o, 422, "too-costly", "the value would nest deeper than %zu levels",
                        o->max_depth);
    }
    if (!p->n) {
        json_decref(*doc);
        *doc = value;
        return 0;
    }
    parent = jptr_get(*doc, p, p->n - 1);
    last = p->tok[p->n - 1];
    if (json_is_object(parent))
        rc = json_object_set_new(parent, last, value);
    else /* an array: the target exists, so `last` is an index in it */
        rc = jptr_index(last, &i) < 0 ? -1 : json_array_set_new(parent, i, value);
    if (rc < 0)
        return vl_error_set(err, 500, "exception", NULL, "out of memory");
    return 0;
}

/* Whether pointer `a` is a proper prefix of pointer `b` (token-wise). */
static int jptr_proper_prefix(const jptr_t *a, const jptr_t *b)
{
    if (a->n >= b->n)
        return 0;
    for (size_t k = 0; k < a->n; k++)
        if (strcmp(a->tok[k], b->tok[k]) != 0)
            return 0;
    return 1;
}

/* One operation `o` (its members read and checked) on *doc. */
static int japply_one(json_t **doc, const jop_t *o, vl_error_t *err)
{
    jptr_t path, from;
    json_t *v = NULL, *at;
    int rc = -1, prc;
    memset(&from, 0, sizeof from);
    if ((prc = jptr_parse(o->path, &path)) < 0)
        return prc == -2 ? vl_error_set(err, 500, "exception", NULL, "out of memory")
                         : jop_fail(err, o, 400, "invalid",
                                    "path is not a JSON Pointer (RFC 6901: empty, or /-separated "
                                    "tokens with ~0 and ~1 escapes)");
    if (o->from && (prc = jptr_parse(o->from, &from)) < 0) {
        rc = prc == -2 ? vl_error_set(err, 500, "exception", NULL, "out of memory")
                       : jop_fail(err, o, 400, "invalid",
                                  "from '%.200s' is not a JSON Pointer (RFC 6901)", o->from);
        goto out;
    }
    if (!strcmp(o->op, "add")) {
        if (!(v = json_deep_copy(o->value)))
            goto oom;
        rc = jadd(doc, &path, v, o, err);
    } else if (!strcmp(o->op, "remove")) {
        rc = jremove(*doc, &path, NULL, o, err);
    } else if (!strcmp(o->op, "replace")) {
        if (!(v = json_deep_copy(o->value)))
            goto oom;
        rc = jreplace(doc, &path, v, o, err);
    } else if (!strcmp(o->op, "move")) {
        if (!jptr_get(*doc, &from, from.n)) {
            rc = jop_fail(err, o, 422, "processing", "from '%.200s' does not exist", o->from);
        } else if (jptr_proper_prefix(&from, &path)) {
            rc = jop_fail(err, o, 422, "processing",
                          "a value cannot be moved into one of its own children");
        } else if (!strcmp(o->from, o->path)) {
            rc = 0;           /* onto itself: nothing changes */
        } else if (!from.n) { /* the whole document: only onto itself, above */
            rc = jop_fail(err, o, 422, "processing", "the whole document cannot be moved");
        } else if ((rc = jremove(*doc, &from, &v, o, err)) == 0) {
            rc = jadd(doc, &path, v, o, err);
        }
    } else if (!strcmp(o->op, "copy")) {
        if (!(at = jptr_get(*doc, &from, from.n))) {
            rc = jop_fail(err, o, 422, "processing", "from '%.200s' does not exist", o->from);
        } else {
            size_t n = count_nodes(at);
            if (n > *o->budget) {
                rc = jop_fail(err, o, 422, "too-costly",
                              "copies may add at most as many values as the document and the "
                              "patch hold together");
            } else {
                *o->budget -= n;
                if (!(v = json_deep_copy(at)))
                    goto oom;
                rc = jadd(doc, &path, v, o, err);
            }
        }
    } else { /* test */
        if (!(at = jptr_get(*doc, &path, path.n)))
            rc = jop_fail(err, o, 422, "processing", "test failed: the target does not exist");
        else if (!vl_patch_json_equal(at, o->value))
            rc = jop_fail(err, o, 422, "processing",
                          "test failed: the target is not equal to the value");
        else
            rc = 0;
    }
    goto out;
oom:
    rc = vl_error_set(err, 500, "exception", NULL, "out of memory");
out:
    jptr_free(&path);
    jptr_free(&from);
    return rc;
}

int vl_patch_json_apply(json_t **doc, const json_t *patch, const vl_patch_limits_t *lim,
                        vl_error_t *err)
{
    static const char *const ops[] = {"add", "remove", "replace", "move", "copy", "test", NULL};
    size_t budget, max = lim && lim->max_depth ? lim->max_depth : DEPTH_DEFAULT;
    if (!json_is_array(patch))
        return vl_error_set(err, 400, "structure", NULL,
                            "a JSON Patch document is an array of operations");
    if (json_array_size(patch) > VL_PATCH_MAX_OPS)
        return vl_error_set(err, 400, "too-costly", NULL,
                            "a patch may hold at most %d operations (this one has %zu)",
                            VL_PATCH_MAX_OPS, json_array_size(patch));
    budget = count_nodes(*doc) + count_nodes(patch);
    /* the whole document is checked first: a malformed one changes nothing */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < json_array_size(patch); i++) {
            const json_t *op = json_array_get(patch, i);
            const json_t *path = json_object_get(op, "path"), *from = json_object_get(op, "from");
            jop_t o;
            const char *const *known;
            memset(&o, 0, sizeof o);
            o.i = i;
            o.max_depth = max;
            o.budget = &budget;
            if (!json_is_object(op))
                return vl_error_set(err, 400, "structure", NULL,
                                    "JSON Patch operation %zu is not an object", i);
            o.op = vl_json_is_string(json_object_get(op, "op"))
                       ? json_string_value(json_object_get(op, "op"))
                       : NULL;
            o.path = vl_json_is_string(path) ? json_string_value(path) : NULL;
            o.from = vl_json_is_string(from) ? json_string_value(from) : NULL;
            o.value = json_object_get(op, "value");
            for (known = ops; o.op && *known && strcmp(*known, o.op); known++)
                ;
            if (!o.op || !*known)
                return jop_fail(err, &o, 400, "invalid",
                                "'op' must be add, remove, replace, move, copy or test");
            if (!o.path)
                return jop_fail(err, &o, 400, "required", "'path' (a string) is missing");
            if ((!strcmp(o.op, "move") || !strcmp(o.op, "copy")) && !o.from)
                return jop_fail(err, &o, 400, "required", "'from' (a string) is missing");
            if ((!strcmp(o.op, "add") || !strcmp(o.op, "replace") || !strcmp(o.op, "test")) &&
                !o.value)
                return jop_fail(err, &o, 400, "required", "'value' is missing");
            if (pass == 0) { /* the pointers' syntax too */
                jptr_t t;
                int prc = jptr_parse(o.path, &t);
                jptr_free(&t);
                if (prc == 0 && o.from) {
                    prc = jptr_parse(o.from, &t);
                    jptr_free(&t);
                }
                if (prc == -2)
                    return vl_error_set(err, 500, "exception", NULL, "out of memory");
                if (prc < 0)
                    return jop_fail(err, &o, 400, "invalid",
                                    "'path' and 'from' must be JSON Pointers (RFC 6901: empty, "
                                    "or /-separated tokens with ~0 and ~1 escapes)");
            } else if (japply_one(doc, &o, err) < 0) {
                return -1;
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * The PATCH interaction
 * ---------------------------------------------------------------------- */

typedef enum { PATCH_JSON, PATCH_FHIRPATH } patch_kind_t;

typedef struct patch {
    vl_write_t w;
    vl_error_t err; /* why the unit rolled back */
    patch_kind_t kind;
    json_t *doc;           /* the patch (owned) */
    const char *fhir_base; /* the exchange's (arena), read on the writer thread too */
    int client_if_match;   /* If-Match came with the request: never retried */
    int attempts;          /* patches computed so far */
} patch_t;

static void patch_free(void *arg)
{
    patch_t *p = arg;
    if (!p)
        return;
    vl_write_release(&p->w);
    vl_error_clear(&p->err);
    json_decref(p->doc);
    free(p);
}

/* Whether the media type of `ct` (parameters aside) is `type`. */
static int media_is(const char *ct, const char *type)
{
    size_t n;
    if (!ct)
        return 0;
    n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return strlen(type) == n && !strncasecmp(ct, type, n);
}

/* The patched resource of stored version `rec` (new reference): parsed,
 * patched, still of its type and id, and valid. NULL with the error. */
static json_t *patched(vl_fhir_exchange_t *x, patch_t *p, const vl_record_t *rec, vl_error_t *err)
{
    vl_json_limits_t jl = {x->f->opts.max_depth};
    vl_patch_limits_t pl = {x->f->opts.max_depth};
    vl_error_t perr = VL_ERROR_INIT;
    const char *rt, *id;
    json_t *res;
    int rc;
    p->attempts++;
    if (!rec->body || !(res = vl_json_parse(rec->body, rec->body_len, &jl, &perr))) {
        vl_error_clear(&perr);
        vl_error_set(err, 500, "exception", NULL, "the stored %s/%s cannot be read back",
                     x->type->name, x->id);
        return NULL;
    }
    rc = p->kind == PATCH_JSON ? vl_patch_json_apply(&res, p->doc, &pl, err)
                               : vl_patch_fhirpath_apply(res, p->doc, &pl, err);
    if (rc < 0)
        goto fail;
    rt = json_string_value(json_object_get(res, "resourceType"));
    id = json_string_value(json_object_get(res, "id"));
    if (!json_is_object(res) || !rt || strcmp(rt, x->type->name) != 0) {
        vl_error_set(err, 422, "processing", "resourceType",
                     "the patched document must stay a %s (a patch may not change resourceType)",
                     x->type->name);
        goto fail;
    }
    if (!id || strcmp(id, x->id) != 0) {
        vl_error_set(err, 422, "processing", "id",
                     "the patched %s must keep its id '%s' (a patch may not change or remove it)",
                     x->type->name, x->id);
        goto fail;
    }
    if (vl_fhir_validate(x->type, res, err) < 0) {
        err->status = 422; /* the patch, not the request, made it invalid */
        goto fail;
    }
    return res;
fail:
    json_decref(res);
    return NULL;
}

/* Makes p->w the update of `res` (taken) over version `version`. */
static int prepare(vl_fhir_exchange_t *x, patch_t *p, json_t *res, int64_t version, vl_error_t *err)
{
    vl_write_release(&p->w);
    vl_write_init(&p->w, VL_W_UPDATE, x->type, res);
    snprintf(p->w.id, sizeof p->w.id, "%s", x->id);
    p->w.if_match = version;
    p->w.fhir_base = p->fhir_base;
    return vl_write_prepare(&p->w, err);
}

/* Writer thread, after a lost race: the patch again on the current
 * version of this transaction. */
static int repatch(vl_store_txn_t *txn, vl_fhir_exchange_t *x, patch_t *p)
{
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_record_t rec;
    json_t *res;
    int64_t version;
    if (vl_store_txn_read(txn, x->scope, x->type->name, x->id, 0, &rec, &serr) < 0)
        return vl_fhir_store_error(&serr, &p->err);
    version = rec.version;
    if (rec.deleted) {
        vl_record_free(&rec);
        return vl_error_set(&p->err, 410, "deleted", NULL, "%s/%s was deleted (version %lld)",
                            x->type->name, x->id, (long long)version);
    }
    res = patched(x, p, &rec, &p->err);
    vl_record_free(&rec);
    if (!res)
        return -1;
    return prepare(x, p, res, version, &p->err);
}

static int apply_patch(vl_store_txn_t *txn, void *arg)
{
    vl_fhir_exchange_t *x = arg;
    patch_t *p = x->op;
    for (;;) {
        vl_store_err_t serr = VL_STORE_ERR_INIT;
        vl_store_head_t head;
        if (vl_store_txn_head(txn, x->type->name, x->id, &head, &serr) < 0)
            return vl_fhir_store_error(&serr, &p->err);
        if (p->client_if_match || (head.exists && !head.deleted && head.version == p->w.if_match))
            return vl_write_execute(txn, x->scope, &p->w, &p->err) < 0 ? -1 : 0;
        if (p->attempts >= VL_PATCH_ATTEMPTS)
            return vl_error_set(&p->err, 409, "conflict", NULL,
                                "%s/%s kept changing while it was patched (%d tries); retry",
                                x->type->name, x->id, p->attempts);
        if (repatch(txn, x, p) < 0)
            return -1;
    }
}

static void finish_patch(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    patch_t *p = x->op;
    if (x->unit.result < 0) {
        if (p->err.status && x->unit.err.kind == VL_STORE_ABORTED)
            vl_x_error(res, &p->err);
        else
            vl_x_store_error(res, &x->unit.err);
        return;
    }
    if (x->prefer == VL_PREFER_REPRESENTATION && p->w.body) {
        vl_record_t rec; /* the new version, as a read of it would disclose it */
        memset(&rec, 0, sizeof rec);
        snprintf(rec.type, sizeof rec.type, "%s", x->type->name);
        snprintf(rec.id, sizeof rec.id, "%s", x->id);
        rec.version = p->w.version;
        rec.last_updated_us = p->w.time_us;
        rec.method = VL_METHOD_PUT;
        rec.body = p->w.body; /* borrowed */
        rec.body_len = p->w.body_len;
        vl_x_disclose(x, &rec);
    }
    vl_write_answer(x, &p->w, res);
}

/* Whether a JSON Patch holds a `test` operation. */
static int has_test(const json_t *ops)
{
    size_t i;
    const json_t *op;
    json_array_foreach (ops, i, op)
        if (vl_json_is_string(json_object_get(op, "op")) &&
            !strcmp(json_string_value(json_object_get(op, "op")), "test"))
            return 1;
    return 0;
}

/* A PATCH answers with the patched resource, and its `test` operations
 * reveal the current content even with return=minimal: besides the write
 * (x->scope, which the policy gave for "patch" as for an update), the
 * caller must be allowed to read the resource. A clinic whose Consent
 * permits correcting a patient's data but not accessing it may PUT a whole
 * resource, not PATCH one. 0, or -1 with the answer (403, or 404 exactly
 * like a read that does not see it) in `res`. */
static int may_read(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    const vl_policy_t *pol = x->f->opts.policy;
    char compartment[80];
    vl_access_t what = {"read", x->type->name, x->id, NULL, NULL, 0, "/fhir/{type}/{id}"};
    vl_error_t err = VL_ERROR_INIT;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_scope_t scope;
    vl_record_t rec;
    if (x->scope.flags & VL_SCOPE_ALL)
        return 0; /* it sees everything already */
    if (!strcmp(x->type->name, "Patient")) {
        snprintf(compartment, sizeof compartment, "Patient/%s", x->id);
        what.compartment = compartment;
    }
    if (pol->authorize(pol->ctx, &x->who, &what, x->arena, &scope, &err) < 0) {
        vl_x_error(res, &err);
        return -1;
    }
    if (vl_store_read(x->f->opts.store, scope, x->type->name, x->id, 0, &rec, &serr) < 0) {
        vl_x_store_error(res, &serr);
        return -1;
    }
    vl_record_free(&rec);
    return 0;
}

int vl_h_patch(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    const vl_fhir_request_t *req = x->req;
    vl_json_limits_t jl = {x->f->opts.max_depth};
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_error_t err = VL_ERROR_INIT;
    vl_record_t rec;
    patch_kind_t kind;
    int64_t want = 0, version;
    json_t *doc, *patched_res;
    patch_t *p;

    if (!(x->type->interactions & VL_INT_UPDATE)) {
        res->allow = "GET, HEAD";
        return vl_x_fail(res, 405, "not-supported", "%s is read-only: it cannot be patched",
                         x->type->name);
    }
    if (media_is(req->content_type, "application/json-patch+json"))
        kind = PATCH_JSON;
    else if (media_is(req->content_type, "application/fhir+json") ||
             media_is(req->content_type, "application/json") ||
             media_is(req->content_type, "application/json+fhir"))
        kind = PATCH_FHIRPATH;
    else
        return vl_x_fail(res, 415, "not-supported",
                         "PATCH takes application/json-patch+json (JSON Patch) or "
                         "application/fhir+json (FHIRPath Patch)%s%.100s",
                         req->content_type ? ", not " : "",
                         req->content_type ? req->content_type : "");
    if (!req->body_len)
        return vl_x_fail(res, 400, "required", "the request has no body");
    if (!(doc = vl_json_parse(req->body, req->body_len, &jl, &err)))
        return vl_x_error(res, &err);
    if (!(p = calloc(1, sizeof *p))) {
        json_decref(doc);
        return vl_x_fail(res, 500, "exception", "out of memory");
    }
    p->doc = doc;
    p->kind = kind;
    p->fhir_base = vl_x_fhir_base(x);
    x->op = p;
    x->op_free = patch_free;
    if (kind == PATCH_JSON && !json_is_array(doc))
        return vl_x_fail(res, 400, "structure", "a JSON Patch document is an array of operations");
    if (kind == PATCH_FHIRPATH && !json_is_object(doc))
        return vl_x_fail(res, 400, "structure", "a FHIRPath Patch is a Parameters resource");
    if (kind == PATCH_FHIRPATH &&
        strcmp(vl_json_is_string(json_object_get(doc, "resourceType"))
                   ? json_string_value(json_object_get(doc, "resourceType"))
                   : "",
               "Parameters") != 0)
        return vl_x_fail(res, 400, "invalid",
                         "a FHIRPath Patch is a Parameters resource (to send a JSON Patch, use "
                         "Content-Type: application/json-patch+json)");
    if (req->if_match && !(want = vl_fhir_parse_version(req->if_match)))
        return vl_x_fail(res, 400, "invalid", "If-Match must be a version ETag such as W/\"3\"");
    p->client_if_match = want != 0;

    /* the current version, as this caller may see it */
    if (vl_store_read(x->f->opts.store, x->scope, x->type->name, x->id, 0, &rec, &serr) < 0)
        return vl_x_store_error(res, &serr);
    if (may_read(x, res) < 0) {
        vl_record_free(&rec);
        return 0;
    }
    /* a JSON Patch with `test` operations asks about the current content:
     * whatever the outcome (a failed test is a 422), the answer tells the
     * caller about this version, a disclosure accounted even when the
     * answer is an error. (A successful PATCH is accounted through the
     * representation it returns, finish_patch.) */
    if (!rec.deleted && kind == PATCH_JSON && has_test(doc)) {
        vl_x_disclose(x, &rec);
        x->disclose_errors = 1;
    }
    version = rec.version;
    if (rec.deleted) {
        vl_record_free(&rec);
        return vl_x_fail(res, 410, "deleted", "%s/%s was deleted (version %lld)", x->type->name,
                         x->id, (long long)version);
    }
    if (want && want != version) {
        vl_record_free(&rec);
        return vl_x_fail(res, 412, "conflict",
                         "If-Match names version %lld but the current version is %lld",
                         (long long)want, (long long)version);
    }
    patched_res = patched(x, p, &rec, &err);
    vl_record_free(&rec);
    if (!patched_res)
        return vl_x_error(res, &err);
    if (prepare(x, p, patched_res, version, &err) < 0)
        return vl_x_error(res, &err);
    x->unit.apply = apply_patch;
    x->unit.arg = x;
    return vl_x_submit(x, res, finish_patch);
}
