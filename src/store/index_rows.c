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
 *    values, so both sides always agree. The exact rule, applied per
 *    UTF-8 code point:
 *      - ASCII A-Z become a-z; every other ASCII byte is kept as is;
 *      - letters of Latin-1 Supplement (U+00C0-U+00FF) and Latin
 *        Extended-A (U+0100-U+017F) become their lowercase base letter
 *        (é -> e, Ł -> l, Ÿ -> y); ligatures and special letters expand:
 *        Æ/æ -> ae, Œ/œ -> oe, Ĳ/ĳ -> ij, ß -> ss, Þ/þ -> th, Ð/ð -> d;
 *        × and ÷ are kept;
 *      - combining diacritical marks (U+0300-U+036F) are dropped, so
 *        decomposed (NFD) input normalizes like composed input;
 *      - every other code point, and any invalid UTF-8 byte, is copied
 *        unchanged. Whitespace and punctuation are not touched.
 */
#include <stdlib.h>
#include <string.h>

#include "vitalog/store.h"

/* ------------------------------------------------------------------------
 * Normalization
 * ---------------------------------------------------------------------- */

/* Base letters for U+00C0..U+00FF. Digits are expansions (see expand[]);
 * '*' means "keep the character". */
static const char latin1[] = "aaaaaa3ceeeeiiiidnooooo*ouuuuy45"
                             "aaaaaa3ceeeeiiiidnooooo*ouuuuy4y";
/* Base letters for U+0100..U+017F. */
static const char latin_ext_a[] = "aaaaaa"       /* 0100-0105 */
                                  "cccccccc"     /* 0106-010D */
                                  "dddd"         /* 010E-0111 */
                                  "eeeeeeeeee"   /* 0112-011B */
                                  "gggggggg"     /* 011C-0123 */
                                  "hhhh"         /* 0124-0127 */
                                  "iiiiiiiiii"   /* 0128-0131 */
                                  "11"           /* 0132-0133 ij */
                                  "jj"           /* 0134-0135 */
                                  "kkk"          /* 0136-0138 */
                                  "llllllllll"   /* 0139-0142 */
                                  "nnnnnnnnn"    /* 0143-014B */
                                  "oooooo"       /* 014C-0151 */
                                  "22"           /* 0152-0153 oe */
                                  "rrrrrr"       /* 0154-0159 */
                                  "ssssssss"     /* 015A-0161 */
                                  "tttttt"       /* 0162-0167 */
                                  "uuuuuuuuuuuu" /* 0168-0173 */
                                  "ww"           /* 0174-0175 */
                                  "yyy"          /* 0176-0178 */
                                  "zzzzzz"       /* 0179-017E */
                                  "s";           /* 017F long s */
_Static_assert(sizeof latin1 == 65, "latin1 table covers U+00C0..U+00FF");
_Static_assert(sizeof latin_ext_a == 129, "latin_ext_a table covers U+0100..U+017F");

static const char *const expand[] = {NULL, "ij", "oe", "ae", "th", "ss"};

/* Decodes one UTF-8 sequence at s (of at most `left` bytes); returns its
 * length and the code point, or 0 if the bytes are not valid UTF-8. */
static size_t utf8_decode(const unsigned char *s, size_t left, unsigned *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t n;
    unsigned c;
    if ((s[0] & 0xE0) == 0xC0) {
        n = 2;
        c = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        n = 3;
        c = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        n = 4;
        c = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) || (n == 4 && c < 0x10000) || c > 0x10FFFF)
        return 0;
    *cp = c;
    return n;
}

/** Returns the normalized form of `text` (malloc'd; caller frees), or NULL
 *  when out of memory. The output is never longer than twice the input. */
char *vl_index_normalize(const char *text)
{
    size_t len = strlen(text);
    char *out = malloc(len * 2 + 1); /* an expansion turns 2 bytes into 2 */
    if (!out)
        return NULL;
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, o = 0;
    while (i < len) {
        unsigned cp;
        size_t n = utf8_decode(s + i, len - i, &cp);
        if (n == 0) { /* invalid byte: copy it */
            out[o++] = (char)s[i++];
            continue;
        }
        if (cp < 0x80) {
            out[o++] = (char)(cp >= 'A' && cp <= 'Z' ? cp + ('a' - 'A') : cp);
            i++;
            continue;
        }
        char base = 0;
        if (cp >= 0xC0 && cp <= 0xFF) {
            base = latin1[cp - 0xC0];
        } else if (cp >= 0x100 && cp <= 0x17F) {
            base = latin_ext_a[cp - 0x100];
        } else if (cp >= 0x300 && cp <= 0x36F) {
            i += n; /* combining mark: drop */
            continue;
        }
        if (base == 0 || base == '*') {
            memcpy(out + o, s + i, n);
            o += n;
        } else if (base >= '1' && base <= '5') {
            const char *e = expand[base - '0'];
            out[o++] = e[0];
            out[o++] = e[1];
        } else {
            out[o++] = base;
        }
        i += n;
    }
    out[o] = '\0';
    return out;
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

int vl_index_add(vl_index_t *ix, const char *param, vl_index_kind_t kind, const char *system,
                 const char *text, double number, int64_t lo, int64_t hi)
{
    if (vl_grow(&ix->rows, &ix->cap, ix->n + 1, sizeof *ix->rows) < 0)
        return -1;
    vl_index_row_t r = {.param = param, .kind = kind, .number = number, .lo = lo, .hi = hi};
    if (dup_opt(system, &r.system) || dup_opt(text, &r.text))
        goto fail;
    if (kind == VL_INDEX_STRING && text && !(r.norm = vl_index_normalize(text)))
        goto fail;
    ix->rows[ix->n++] = r;
    return 0;
fail:
    row_free(&r);
    return -1;
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
