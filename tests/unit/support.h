/*
 * Shared by unit tests that open a store: stores refuse writes without a
 * ledger key, so tests open them with a throwaway one.
 */
#ifndef VL_TEST_SUPPORT_H
#define VL_TEST_SUPPORT_H

#include <stdio.h>
#include <stdlib.h>

#include <sodium.h>

#include "vitalog/store.h"

/** `base` (may be NULL) plus a ledger key generated once per process. */
static inline const vl_store_options_t *test_store_options(const vl_store_options_t *base)
{
    static vl_ledger_key_t key;
    static vl_store_options_t opts;
    static int ready;
    vl_error_t err = VL_ERROR_INIT;
    if (!ready) {
        if (sodium_init() < 0 || vl_ledger_key_generate("test.invalid/log", &key, &err) < 0)
            abort();
        ready = 1;
    }
    opts = base ? *base : (vl_store_options_t){0};
    opts.key = &key;
    opts.origin = key.name;
    return &opts;
}

/** Reads a whole file, NUL-terminated (caller frees); NULL if it cannot be
 *  opened or read. `len` (may be NULL) receives its length. */
static inline char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (len)
        *len = 0;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) != NULL) {
        if (fread(buf, 1, (size_t)n, f) == (size_t)n) {
            buf[n] = '\0';
            if (len)
                *len = (size_t)n;
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

#endif
