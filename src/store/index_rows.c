/*
 * vitalog — store/index_rows.c: the growable list of search index rows
 * (vl_index_t) and the normalization of indexed strings.
 *
 * DESIGN NOTES
 *
 * 1. A vl_index_t owns every string of its rows; vl_index_add() copies its
 *    arguments. On failure (out of memory) nothing is appended and the list
 *    is left as it was.
 *
 * 2. VL_INDEX_STRING rows get `norm`, the form string searches compare
 *    against (default and :contains matches). vl_index_normalize() defines
 *    it, and the search parser applies the very same function to search
 *    values, so both sides always agree. The exact rule:
 *
 *    a. utf8proc_map() with UTF8PROC_NULLTERM | UTF8PROC_STABLE |
 *       UTF8PROC_COMPAT | UTF8PROC_DECOMPOSE | UTF8PROC_CASEFOLD |
 *       UTF8PROC_STRIPMARK (VL_NORM_OPTIONS): the compatibility
 *       decomposition (NFKD) with Unicode full case folding, and every
 *       mark (general categories Mn, Mc and Me) dropped. In every script:
 *       "Nguyễn" -> "nguyen", "Ελένη" -> "ελενη", "Ёлка" -> "елка",
 *       fullwidth "ＡＢＣ" -> "abc", "ﬁ" -> "fi", "ĳ" -> "ij", "ß" and
 *       "ẞ" -> "ss", "İ" -> "i"; decomposed (NFD) input gives the same
 *       result as composed input. (STRIPMARK needs COMPOSE or DECOMPOSE;
 *       DECOMPOSE keeps the output decomposed, so Hangul syllables become
 *       conjoining jamo on both sides alike.)
 *    b. Then the letters that have no decomposition but still fold to
 *       ASCII base letters (fold_extra[]), rewritten in place. Case
 *       folding in (a) already turned the capitals into these lowercase
 *       letters (Æ -> æ, Ø -> ø, Œ -> œ, Ł -> ł, Đ -> đ, Ð -> ð, Þ -> þ,
 *       Ŧ -> ŧ, Ħ -> ħ), so the table lists only the lowercase ones:
 *         æ -> ae   ø -> o   œ -> oe   ł -> l   đ -> d   ð -> d
 *         þ -> th   ı -> i   ĸ -> k    ŧ -> t   ħ -> h
 *       (ß needs no entry: case folding already gives "ss".) Each entry is
 *       a 2-byte UTF-8 letter replaced by at most 2 ASCII bytes, so the
 *       rewrite never grows the string.
 *    c. Invalid UTF-8 never fails the call: if utf8proc_map() reports an
 *       error other than out of memory (UTF8PROC_ERROR_INVALIDUTF8: a
 *       stray, truncated, overlong or surrogate sequence anywhere in the
 *       text; or UTF8PROC_ERROR_OVERFLOW), the whole text is copied byte
 *       for byte with only ASCII A-Z lowercased; no other byte, valid
 *       sequence or not, is changed.
 *
 *    Whitespace and punctuation are not removed, but NFKD maps
 *    compatibility characters: a no-break space becomes a space, "²" a
 *    "2", "½" "1⁄2"; × and ÷ have no decomposition and are kept. Every
 *    other letter with no decomposition (CJK, ŋ, ƒ, ...) is kept as
 *    case folding leaves it.
 */
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "vitalog/store.h"

/* ------------------------------------------------------------------------
 * Normalization
 * ---------------------------------------------------------------------- */

#define VL_NORM_OPTIONS                                                                            \
    ((utf8proc_option_t)(UTF8PROC_NULLTERM | UTF8PROC_STABLE | UTF8PROC_COMPAT |                   \
                         UTF8PROC_DECOMPOSE | UTF8PROC_CASEFOLD | UTF8PROC_STRIPMARK))

/* Note 2b: letters with no decomposition, as case folding leaves them. All
 * are in U+0080..U+07FF (2 bytes of UTF-8); replacements are 1-2 bytes. */
static const struct {
    utf8proc_int32_t cp;
    char ascii[3];
} fold_extra[] = {
    {0x00E6, "ae"}, /* æ (Æ) */
    {0x00F0, "d"},  /* ð (Ð) */
    {0x00F8, "o"},  /* ø (Ø) */
    {0x00FE, "th"}, /* þ (Þ) */
    {0x0111, "d"},  /* đ (Đ) */
    {0x0127, "h"},  /* ħ (Ħ) */
    {0x0131, "i"},  /* ı dotless i */
    {0x0138, "k"},  /* ĸ kra */
    {0x0142, "l"},  /* ł (Ł) */
    {0x0153, "oe"}, /* œ (Œ) */
    {0x0167, "t"},  /* ŧ (Ŧ) */
};

static const char *extra_lookup(utf8proc_int32_t cp)
{
    for (size_t i = 0; i < sizeof fold_extra / sizeof fold_extra[0]; i++)
        if (fold_extra[i].cp == cp)
            return fold_extra[i].ascii;
    return NULL;
}

/* Note 2b, in place on utf8proc's output (valid UTF-8, NUL-terminated). */
static void fold_extra_letters(char *s)
{
    char *out = s;
    const unsigned char *in = (const unsigned char *)s;
    while (*in) {
        /* only 2-byte sequences can be in the table: C2..DF lead bytes */
        if (in[0] >= 0xC2 && in[0] <= 0xDF && (in[1] & 0xC0) == 0x80) {
            utf8proc_int32_t cp = ((utf8proc_int32_t)(in[0] & 0x1F) << 6) | (in[1] & 0x3F);
            const char *a = extra_lookup(cp);
            if (a) {
                size_t n = strlen(a); /* 1 or 2: never more than the 2 bytes read */
                memcpy(out, a, n);
                out += n;
                in += 2;
                continue;
            }
        }
        *out++ = (char)*in++;
    }
    *out = '\0';
}

/* Note 2c: the text is not valid UTF-8; ASCII A-Z lowercased, the rest kept. */
static char *fold_bytes(const char *text)
{
    size_t len = strlen(text);
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i <= len; i++) {
        char c = text[i];
        out[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    return out;
}

/** Returns the normalized form of `text` (note 2; malloc'd, caller frees),
 *  or NULL when out of memory. Never fails on invalid UTF-8. */
char *vl_index_normalize(const char *text)
{
    utf8proc_uint8_t *mapped = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)text, 0, &mapped, VL_NORM_OPTIONS);
    if (n == UTF8PROC_ERROR_NOMEM)
        return NULL;
    if (n < 0) /* invalid UTF-8 (or too long): utf8proc left mapped NULL */
        return fold_bytes(text);
    /* utf8proc_map() allocates its result with malloc(): free() releases it */
    fold_extra_letters((char *)mapped);
    return (char *)mapped;
}

/* ------------------------------------------------------------------------
 * Row list
 * ---------------------------------------------------------------------- */

void vl_index_init(vl_index_t *ix)
{
    memset(ix, 0, sizeof *ix);
}

static void row_free(vl_index_row_t *r)
{
    free(r->system);
    free(r->text);
    free(r->norm);
    free(r->unit);
}

void vl_index_free(vl_index_t *ix)
{
    if (!ix)
        return;
    for (size_t i = 0; i < ix->n; i++)
        row_free(&ix->rows[i]);
    free(ix->rows);
    for (size_t i = 0; i < ix->n_patients; i++)
        free(ix->patients[i]);
    free(ix->patients);
    for (size_t i = 0; i < ix->n_codes; i++) {
        free(ix->codes[i].system);
        free(ix->codes[i].code);
    }
    free(ix->codes);
    vl_index_init(ix);
}

static int dup_opt(const char *s, char **out)
{
    *out = NULL;
    if (!s)
        return 0;
    *out = strdup(s);
    return *out ? 0 : -1;
}

vl_index_row_t *vl_index_add_row(vl_index_t *ix, const vl_index_row_t *row)
{
    if (vl_grow(&ix->rows, &ix->cap, ix->n + 1, sizeof *ix->rows) < 0)
        return NULL;
    vl_index_row_t r = *row;
    r.system = r.text = r.norm = r.unit = NULL;
    if (dup_opt(row->system, &r.system) || dup_opt(row->text, &r.text) ||
        dup_opt(row->unit, &r.unit))
        goto fail;
    if (r.kind == VL_INDEX_STRING && r.text && !(r.norm = vl_index_normalize(r.text)))
        goto fail;
    ix->rows[ix->n] = r;
    return &ix->rows[ix->n++];
fail:
    row_free(&r);
    return NULL;
}

int vl_index_add(vl_index_t *ix, const char *param, vl_index_kind_t kind, const char *system,
                 const char *text, double number, int64_t lo, int64_t hi)
{
    vl_index_row_t r = {.param = param,
                        .kind = kind,
                        .system = (char *)system,
                        .text = (char *)text,
                        .number = number,
                        .lo = lo,
                        .hi = hi};
    return vl_index_add_row(ix, &r) ? 0 : -1;
}

int vl_index_add_patient(vl_index_t *ix, const char *patient_id)
{
    char *copy;
    for (size_t i = 0; i < ix->n_patients; i++)
        if (strcmp(ix->patients[i], patient_id) == 0)
            return 0;
    if (vl_grow(&ix->patients, &ix->cap_patients, ix->n_patients + 1, sizeof *ix->patients) < 0 ||
        !(copy = strdup(patient_id)))
        return -1;
    ix->patients[ix->n_patients++] = copy;
    return 0;
}

static int add_code(vl_index_t *ix, const char *system, const char *code, int kind)
{
    struct vl_index_code c = {NULL, NULL, kind};
    for (size_t i = 0; i < ix->n_codes; i++)
        if (ix->codes[i].kind == kind && !strcmp(ix->codes[i].code, code) &&
            ((!system && !ix->codes[i].system) ||
             (system && ix->codes[i].system && !strcmp(system, ix->codes[i].system))))
            return 0;
    if (vl_grow(&ix->codes, &ix->cap_codes, ix->n_codes + 1, sizeof *ix->codes) < 0 ||
        dup_opt(system, &c.system) < 0 || !(c.code = strdup(code))) {
        free(c.system);
        return -1;
    }
    ix->codes[ix->n_codes++] = c;
    return 0;
}

int vl_index_add_code(vl_index_t *ix, const char *system, const char *code)
{
    return add_code(ix, system, code, 0);
}

int vl_index_add_category(vl_index_t *ix, const char *system, const char *code)
{
    return add_code(ix, system, code, 1);
}

void vl_index_add_time(vl_index_t *ix, int64_t lo, int64_t hi)
{
    if (!ix->has_time) {
        ix->has_time = 1;
        ix->time_lo = lo;
        ix->time_hi = hi;
        return;
    }
    if (lo < ix->time_lo)
        ix->time_lo = lo;
    if (hi > ix->time_hi)
        ix->time_hi = hi;
}
