/*
 * vitalog — ledger: the keys list (docs/ledger.md section 5.1), the
 * document behind GET /ledger/keys, `vitalog key list` and `vitalog verify
 * --keys`: every verifier key of a log, oldest first, with the tree sizes
 * each one signs.
 *
 *   {"origin":"O","keys":[{"key":"K0","from":0},
 *                         {"key":"K1","from":R1+1,"rotation":R1},...]}\n
 *
 * Rules (checked by the formatter, the parser and the builder alike):
 *   1. every key is a C2SP Ed25519 verifier key named exactly like the
 *      origin, at most 255 bytes, without '"' or '\' (so no byte of the
 *      document ever needs JSON escaping, as in entry lines);
 *   2. the first key has from 0 and no rotation;
 *   3. every later key has rotation R (the index of the key-rotation entry
 *      that introduced it) and from = R + 1, R strictly increasing;
 *   4. no key is listed twice; at most VL_LEDGER_KEYS_MAX keys.
 * What the list cannot show by itself (that each rotation entry exists,
 * names that key and is signed by the key before it) is the verifier's
 * job (vl_ledger_verifier_new_keys) or, when building from a log, the
 * builder's (vl_ledger_keys_add_entry).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define KEYS_MAX_DEPTH 4 /* document, keys array, key object (+1 spare) */

/* ------------------------------------------------------------------------
 * Rules
 * ---------------------------------------------------------------------- */

/* Rule 1: `vkey` is a listable key named `origin` (NULL: any name); *k
 * receives it parsed. */
static int listed_key(const char *vkey, const char *origin, vl_ledger_key_t *k)
{
    size_t len = vkey ? strnlen(vkey, 256) : 256;
    if (len == 0 || len >= 256 || memchr(vkey, '"', len) || memchr(vkey, '\\', len) ||
        vl__key_parse_vkey_n(vkey, len, k, NULL) != 0)
        return -1;
    return origin && strcmp(k->name, origin) != 0 ? -1 : 0;
}

/* Rule 4: `vkey` equals neither `first` nor any of rotations[0..n). */
static int is_new_key(const char *vkey, const char *first, const vl_ledger_rotation_t *rotations,
                      size_t n)
{
    if (!strcmp(vkey, first))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(vkey, rotations[i].key))
            return 0;
    return 1;
}

/* ------------------------------------------------------------------------
 * Format
 * ---------------------------------------------------------------------- */

static char *put(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

static char *put_u64(char *p, uint64_t v)
{
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = digits[--n];
    return p;
}

char *vl_ledger_keys_format(const char *origin, const char *first,
                            const vl_ledger_rotation_t *rotations, size_t n, size_t *len)
{
    vl_ledger_key_t k;
    size_t cap;
    char *doc, *p;
    if (len)
        *len = 0;
    if (!origin || !first || (n > 0 && !rotations) || n >= VL_LEDGER_KEYS_MAX ||
        strlen(origin) >= sizeof k.name || listed_key(first, origin, &k) != 0)
        return NULL;
    /* {"origin":"O","keys":[ ... ]}\n, each key at most
     * {"key":"<255>","from":<20>,"rotation":<20>}, */
    cap = 32 + strlen(origin) + (n + 1) * (255 + 64);
    for (size_t i = 0; i < n; i++) {
        if (listed_key(rotations[i].key, origin, &k) != 0 || rotations[i].index == UINT64_MAX ||
            (i > 0 && rotations[i].index <= rotations[i - 1].index) ||
            !is_new_key(rotations[i].key, first, rotations, i))
            return NULL;
    }
    doc = malloc(cap);
    if (!doc)
        return NULL;
    p = put(doc, "{\"origin\":\"");
    p = put(p, origin);
    p = put(p, "\",\"keys\":[{\"key\":\"");
    p = put(p, first);
    p = put(p, "\",\"from\":0}");
    for (size_t i = 0; i < n; i++) {
        p = put(p, ",{\"key\":\"");
        p = put(p, rotations[i].key);
        p = put(p, "\",\"from\":");
        p = put_u64(p, rotations[i].index + 1);
        p = put(p, ",\"rotation\":");
        p = put_u64(p, rotations[i].index);
        *p++ = '}';
    }
    p = put(p, "]}\n");
    *p = '\0';
    if (len)
        *len = (size_t)(p - doc);
    return doc;
}

/* ------------------------------------------------------------------------
 * Parse
 * ---------------------------------------------------------------------- */

/* A JSON number that is a canonical unsigned decimal (no sign, fraction,
 * exponent or leading zero) of at most 64 bits. */
static int number_u64(const json_t *j, uint64_t *out)
{
    const char *t = vl_json_number_text(j);
    uint64_t v = 0;
    if (!t || !*t || (t[0] == '0' && t[1]))
        return -1;
    for (; *t; t++) {
        unsigned d = (unsigned)(*t - '0');
        if (*t < '0' || *t > '9' || v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* The string member `name` of `obj` into out[cap] (no NUL inside), or -1. */
static int string_member(const json_t *obj, const char *name, char *out, size_t cap)
{
    const json_t *j = json_object_get(obj, name);
    size_t n;
    if (!vl_json_is_string(j))
        return -1;
    n = json_string_length(j);
    if (n >= cap || memchr(json_string_value(j), '\0', n))
        return -1;
    memcpy(out, json_string_value(j), n + 1);
    return 0;
}

static int bad(vl_error_t *err, const char *fmt, ...) VL_PRINTF(2, 3);
static int bad(vl_error_t *err, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return vl_error_set(err, 422, "invalid", NULL, "keys list: %s", msg);
}

int vl_ledger_keys_parse(const char *doc, size_t len, vl_ledger_keys_t *out, vl_error_t *err)
{
    static const vl_json_limits_t limits = {KEYS_MAX_DEPTH};
    vl_error_t perr = VL_ERROR_INIT;
    vl_ledger_key_t k;
    json_t *root = NULL, *keys;
    size_t count;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (!doc || len > VL_LEDGER_KEYS_MAX_LEN) {
        bad(err, "longer than %u bytes", VL_LEDGER_KEYS_MAX_LEN);
        goto out;
    }
    root = vl_json_parse(doc, len, &limits, &perr);
    if (!root) {
        bad(err, "not JSON: %s", vl_error_message(&perr));
        goto out;
    }
    keys = json_object_get(root, "keys");
    if (!json_is_object(root) || json_object_size(root) != 2 || !json_is_array(keys) ||
        !vl_json_is_string(json_object_get(root, "origin"))) {
        bad(err, "want an object with exactly the members origin (a string) and keys (an "
                 "array)");
        goto out;
    }
    if (string_member(root, "origin", out->origin, sizeof out->origin) != 0 ||
        !vl__key_name_valid(out->origin, strlen(out->origin)) || strchr(out->origin, '"') ||
        strchr(out->origin, '\\')) {
        bad(err, "origin is not a key name");
        goto out;
    }
    count = json_array_size(keys);
    if (count == 0 || count > VL_LEDGER_KEYS_MAX) {
        bad(err, "keys must hold 1 to %d keys, not %zu", VL_LEDGER_KEYS_MAX, count);
        goto out;
    }
    if (count > 1) {
        out->rotations = calloc(count - 1, sizeof *out->rotations);
        if (!out->rotations) {
            vl_error_set(err, 500, "exception", NULL, "keys list: out of memory");
            goto out;
        }
    }
    for (size_t i = 0; i < count; i++) {
        const json_t *item = json_array_get(keys, i);
        const json_t *jrot = json_object_get(item, "rotation");
        char *vkey = i == 0 ? out->first : out->rotations[i - 1].key;
        uint64_t from = 0, rot = 0;
        if (!json_is_object(item) || json_object_size(item) != (i == 0 ? 2u : 3u) ||
            (i == 0) != (jrot == NULL) || !json_object_get(item, "from")) {
            bad(err, "keys[%zu] must have exactly the members %s", i,
                i == 0 ? "key and from (the first key has no rotation)" : "key, from and rotation");
            goto out;
        }
        if (string_member(item, "key", vkey, 256) != 0 || listed_key(vkey, NULL, &k) != 0) {
            bad(err, "keys[%zu].key is not a verifier key", i);
            goto out;
        }
        if (strcmp(k.name, out->origin) != 0) {
            bad(err, "keys[%zu].key is named \"%s\", not like the origin \"%s\"", i, k.name,
                out->origin);
            goto out;
        }
        if (number_u64(json_object_get(item, "from"), &from) != 0 ||
            (jrot && number_u64(jrot, &rot) != 0)) {
            bad(err, "keys[%zu]: from and rotation must be whole numbers from 0", i);
            goto out;
        }
        if (i == 0) {
            if (from != 0) {
                bad(err, "keys[0].from must be 0 (the first key signs from the beginning)");
                goto out;
            }
            continue;
        }
        if (rot == UINT64_MAX || from != rot + 1) {
            bad(err,
                "keys[%zu].from must be rotation + 1 (the first tree size that holds the "
                "rotation entry)",
                i);
            goto out;
        }
        if (i > 1 && rot <= out->rotations[i - 2].index) {
            bad(err, "keys[%zu].rotation is not after keys[%zu].rotation (oldest first)", i, i - 1);
            goto out;
        }
        if (!is_new_key(vkey, out->first, out->rotations, i - 1)) {
            bad(err, "keys[%zu].key is listed twice", i);
            goto out;
        }
        out->rotations[i - 1].index = rot;
    }
    out->n = count - 1;
    rc = 0;
out:
    json_decref(root);
    vl_error_clear(&perr);
    if (rc != 0)
        vl_ledger_keys_clear(out);
    return rc;
}

void vl_ledger_keys_clear(vl_ledger_keys_t *k)
{
    if (!k)
        return;
    free(k->rotations);
    memset(k, 0, sizeof *k);
}

/* ------------------------------------------------------------------------
 * Building from a log
 * ---------------------------------------------------------------------- */

int vl_ledger_keys_init(vl_ledger_keys_t *k, const char *first, vl_error_t *err)
{
    vl_ledger_key_t key;
    memset(k, 0, sizeof *k);
    if (listed_key(first, NULL, &key) != 0)
        return bad(err, "the first key is not a verifier key without '\"' or '\\'");
    snprintf(k->origin, sizeof k->origin, "%s", key.name);
    snprintf(k->first, sizeof k->first, "%s", first);
    return 0;
}

int vl_ledger_keys_add_entry(vl_ledger_keys_t *k, const char *line, size_t len, vl_error_t *err)
{
    static const char kind[] = "\"kind\":\"key-rotation\"";
    vl_ledger_entry_t e;
    vl_ledger_key_t prev, next;
    vl_ledger_rotation_t *grown;
    vl_error_t perr = VL_ERROR_INIT;
    unsigned long long i;
    /* only the kind member can hold this text: a ref has no '"' */
    if (!line || !memmem(line, len, kind, sizeof kind - 1))
        return 0;
    if (vl_ledger_entry_parse(line, len, &e, &perr) != 0 || e.kind != VL_ENTRY_KEY_ROTATION) {
        bad(err, "a key-rotation line is not a canonical entry: %s", vl_error_message(&perr));
        vl_error_clear(&perr);
        return -1;
    }
    i = (unsigned long long)e.index;
    if (k->n > 0 && e.index <= k->rotations[k->n - 1].index)
        return bad(err, "entry %llu: key rotation after the one at entry %llu", i,
                   (unsigned long long)k->rotations[k->n - 1].index);
    if (e.index == UINT64_MAX || k->n + 1 >= VL_LEDGER_KEYS_MAX)
        return bad(err, "entry %llu: more than %d keys", i, VL_LEDGER_KEYS_MAX);
    if (listed_key(k->n ? k->rotations[k->n - 1].key : k->first, NULL, &prev) != 0 ||
        vl__rotation_verify(&prev, &e) != 0)
        return bad(err, "entry %llu: key rotation is not signed by the key before it", i);
    if (listed_key(e.key, k->origin, &next) != 0)
        return bad(err, "entry %llu: key rotation names a key not named \"%s\"", i, k->origin);
    if (!is_new_key(e.key, k->first, k->rotations, k->n))
        return bad(err, "entry %llu: key rotation names a key the log already had", i);
    grown = realloc(k->rotations, (k->n + 1) * sizeof *grown);
    if (!grown)
        return vl_error_set(err, 500, "exception", NULL, "keys list: out of memory");
    k->rotations = grown;
    k->rotations[k->n].index = e.index;
    snprintf(k->rotations[k->n].key, sizeof k->rotations[k->n].key, "%s", e.key);
    k->n++;
    return 0;
}
