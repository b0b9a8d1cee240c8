/*
 * Growable buffers, array growth and arenas (see util.h for the contracts).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vitalog/util.h"

/* ------------------------------------------------------------------------
 * Buffers
 * ---------------------------------------------------------------------- */

static int buf_fail(vl_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = 1;
    return -1;
}

int vl_buf_append(vl_buf_t *b, const void *s, size_t n)
{
    if (b->failed)
        return -1;
    if (n > SIZE_MAX / 2 - b->len || (b->max && b->len + n > b->max))
        return buf_fail(b);
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        char *p;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        p = realloc(b->data, ncap);
        if (!p)
            return buf_fail(b);
        b->data = p;
        b->cap = ncap;
    }
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int vl_buf_puts(vl_buf_t *b, const char *s)
{
    return vl_buf_append(b, s, strlen(s));
}

int vl_buf_printf(vl_buf_t *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return buf_fail(b);
    if ((size_t)n < sizeof small)
        return vl_buf_append(b, small, (size_t)n);
    {
        char *big = malloc((size_t)n + 1);
        int rc;
        if (!big)
            return buf_fail(b);
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        rc = vl_buf_append(b, big, (size_t)n);
        free(big);
        return rc;
    }
}

int vl_buf_json_string(vl_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s;
    if (vl_buf_append(b, "\"", 1) < 0)
        return -1;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[7];
        size_t n = 0;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else if (c < 0x20) {
            esc[0] = '\\';
            switch (c) {
            case '\n':
                esc[1] = 'n';
                n = 2;
                break;
            case '\r':
                esc[1] = 'r';
                n = 2;
                break;
            case '\t':
                esc[1] = 't';
                n = 2;
                break;
            default:
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                n = 6;
            }
        }
        if (n) {
            vl_buf_append(b, run, (size_t)(s - run));
            vl_buf_append(b, esc, n);
            run = s + 1;
        }
    }
    vl_buf_append(b, run, (size_t)(s - run));
    return vl_buf_append(b, "\"", 1);
}

char *vl_buf_take(vl_buf_t *b, size_t *len)
{
    char *d = NULL;
    if (!b->failed)
        d = b->data ? b->data : calloc(1, 1);
    if (len)
        *len = d ? b->len : 0;
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
    return d;
}

void vl_buf_reset(vl_buf_t *b)
{
    b->len = 0;
    b->failed = 0;
    if (b->data)
        b->data[0] = '\0';
}

void vl_buf_free(vl_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}

/* ------------------------------------------------------------------------
 * Arrays
 * ---------------------------------------------------------------------- */

int vl_grow(void *items, size_t *cap, size_t need, size_t size)
{
    void **p = items;
    size_t ncap = *cap ? *cap : 16;
    void *grown;
    if (need <= *cap)
        return 0;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return -1;
        ncap *= 2;
    }
    if (size && ncap > SIZE_MAX / size)
        return -1;
    grown = realloc(*p, ncap * size);
    if (!grown)
        return -1;
    *p = grown;
    *cap = ncap;
    return 0;
}

/* ------------------------------------------------------------------------
 * Arenas: a list of chunks; an allocation larger than a chunk gets a chunk
 * of its own.
 * ---------------------------------------------------------------------- */

#define ARENA_CHUNK 8192

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    _Alignas(max_align_t) unsigned char data[];
} chunk_t;

typedef struct deferred {
    void (*fn)(void *ctx);
    void *ctx;
    struct deferred *next;
} deferred_t;

struct vl_arena {
    chunk_t *head;
    deferred_t *deferred; /* run by vl_arena_free, last added first */
};

vl_arena_t *vl_arena_new(void)
{
    return calloc(1, sizeof(vl_arena_t));
}

void *vl_arena_alloc(vl_arena_t *a, size_t size)
{
    void *p;
    if (size > SIZE_MAX - 64)
        return NULL;
    size = (size + 15) & ~(size_t)15;
    if (!a->head || a->head->cap - a->head->used < size) {
        size_t cap = size > ARENA_CHUNK ? size : ARENA_CHUNK;
        chunk_t *c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->used = 0;
        c->cap = cap;
        if (a->head && size > ARENA_CHUNK) { /* keep filling the current chunk */
            c->next = a->head->next;
            a->head->next = c;
            c->used = size;
            return c->data;
        }
        c->next = a->head;
        a->head = c;
    }
    p = a->head->data + a->head->used;
    a->head->used += size;
    return p;
}

char *vl_arena_strndup(vl_arena_t *a, const char *s, size_t n)
{
    char *d = vl_arena_alloc(a, n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *vl_arena_strdup(vl_arena_t *a, const char *s)
{
    return vl_arena_strndup(a, s, strlen(s));
}

int vl_arena_defer(vl_arena_t *a, void (*fn)(void *ctx), void *ctx)
{
    deferred_t *d = vl_arena_alloc(a, sizeof *d);
    if (!d)
        return -1;
    d->fn = fn;
    d->ctx = ctx;
    d->next = a->deferred;
    a->deferred = d;
    return 0;
}

void vl_arena_free(vl_arena_t *a)
{
    chunk_t *c;
    if (!a)
        return;
    for (deferred_t *d = a->deferred; d; d = d->next)
        d->fn(d->ctx);
    c = a->head;
    while (c) {
        chunk_t *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}

/* ------------------------------------------------------------------------
 * Text
 * ---------------------------------------------------------------------- */

/* Valid UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF)
 * without control characters other than tab. */
int vl_text_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (p && *p) {
        unsigned char c = *p;
        int n;
        uint32_t cp;
        if (c < 0x80) {
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return 0;
            p++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        p += n + 1;
    }
    return 1;
}
