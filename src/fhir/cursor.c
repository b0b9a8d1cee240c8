/*
 * vitalog — fhir/cursor.c: page cursors that a client cannot forge.
 *
 * DESIGN NOTES
 *
 * 1. A cursor is state the server needs to go on paging (a keyset
 *    position, the snapshot a search reads, ...), handed to the client
 *    inside a link and given back verbatim. The client may not read
 *    meaning into it and must not be able to change it: the state is
 *    sealed with a MAC (BLAKE2b-128, libsodium's crypto_generichash keyed
 *    with the server's cursor key), and the MAC also covers the canonical
 *    query of the search, so a cursor of one search cannot page another
 *    (a patient's cursor replayed on a wider query, say), and the caller
 *    and what its access rests on (vl_cursor_bind_caller): a link followed
 *    by someone else, or after a Consent it rests on was granted or
 *    revoked, is refused, so a total counted in one scope is not shown in
 *    another. (A Consent edited in place keeps its id: its old total may
 *    be shown; every page's rows are read in the current scope.) The state is not
 *    encrypted: it holds positions, sequence numbers and the values of the
 *    page's sort keys at its first or last row, which the caller was
 *    shown.
 *
 * 2. The key is derived from DIR/ingest.key (crypto_kdf, context
 *    "vlcursor"), so cursors stay valid across restarts of one server; a
 *    layer built without that key (tests) uses a random one.
 */
#include <string.h>

#include <sodium.h>

#include "fhir_internal.h"

#define MAC_LEN 16
#define DOMAIN "vitalog cursor 1"

void vl_cursor_put64(unsigned char *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(u >> (8 * i));
}

int64_t vl_cursor_get64(const unsigned char *p)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u |= (uint64_t)p[i] << (8 * i);
    return (int64_t)u;
}

void vl_cursor_key_init(vl_fhir_t *f)
{
    if (f->opts.ingest_key)
        crypto_kdf_derive_from_key(f->cursor_key, sizeof f->cursor_key, 1, "vlcursor",
                                   f->opts.ingest_key);
    else
        randombytes_buf(f->cursor_key, sizeof f->cursor_key);
}

static void mac(const vl_fhir_t *f, const char *bind, const void *state, size_t len,
                unsigned char out[MAC_LEN])
{
    crypto_generichash_state h;
    unsigned char nul = 0;
    crypto_generichash_init(&h, f->cursor_key, sizeof f->cursor_key, MAC_LEN);
    crypto_generichash_update(&h, (const unsigned char *)DOMAIN, sizeof DOMAIN - 1);
    crypto_generichash_update(&h, (const unsigned char *)bind, strlen(bind));
    crypto_generichash_update(&h, &nul, 1);
    crypto_generichash_update(&h, state, len);
    crypto_generichash_final(&h, out, MAC_LEN);
}

void vl_cursor_bind_caller(vl_buf_t *b, const vl_fhir_exchange_t *x)
{
    vl_buf_printf(b, "\n%d\n%s\n%s\n%s\n%s\n%s", (int)x->who.role, x->who.subject,
                  x->who.organization, x->who.patient, x->who.scoped ? x->who.scopes : "",
                  x->scope.basis ? x->scope.basis : "");
}

int vl_cursor_seal(const vl_fhir_t *f, const char *bind, const void *state, size_t len,
                   vl_buf_t *out)
{
    unsigned char raw[VL_CURSOR_STATE_MAX + MAC_LEN];
    char text[sodium_base64_ENCODED_LEN(VL_CURSOR_STATE_MAX + MAC_LEN,
                                        sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    if (len > VL_CURSOR_STATE_MAX)
        return -1;
    memcpy(raw, state, len);
    mac(f, bind ? bind : "", state, len, raw + len);
    sodium_bin2base64(text, sizeof text, raw, len + MAC_LEN,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return vl_buf_puts(out, text);
}

int vl_cursor_open(const vl_fhir_t *f, const char *bind, const char *text, void *buf, size_t cap,
                   size_t *len)
{
    unsigned char raw[VL_CURSOR_STATE_MAX + MAC_LEN], want[MAC_LEN];
    size_t n = 0;
    const char *end = NULL;
    if (!text || strlen(text) > sodium_base64_ENCODED_LEN(sizeof raw,
                                                          sodium_base64_VARIANT_URLSAFE_NO_PADDING))
        return -1;
    if (sodium_base642bin(raw, sizeof raw, text, strlen(text), NULL, &n, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        *end || n < MAC_LEN || n - MAC_LEN > cap)
        return -1;
    n -= MAC_LEN;
    mac(f, bind ? bind : "", raw, n, want);
    if (sodium_memcmp(want, raw + n, MAC_LEN) != 0)
        return -1;
    memcpy(buf, raw, n);
    *len = n;
    return 0;
}
