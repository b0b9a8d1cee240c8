/*
 * vitalog — ledger: Ed25519 keys in the C2SP vkey and Go sumdb skey
 * formats, C2SP signed notes (signed-note v1.0.0) and tlog checkpoints
 * (tlog-checkpoint v1.0.0).
 *
 * Verification is strict about form and fails closed: a note that is not
 * valid UTF-8, holds a control character other than newline, lacks the
 * final newline, the separating blank line or any signature line, or has
 * a malformed signature line is rejected before any signature is checked.
 * Signatures by unknown (name, id) pairs are ignored as the spec requires;
 * a known key whose signature fails rejects the whole note.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "internal.h"

#define VL_NOTE_MAX_LEN (1024 * 1024) /* bytes in a signed note */
#define VL_NOTE_MAX_SIGS 100          /* signature lines (the spec asks >= 16) */
#define VL_NOTE_MAX_SIG 8192          /* decoded bytes of one signature */
#define VL_EM_DASH "\xE2\x80\x94"

/* ------------------------------------------------------------------------
 * UTF-8
 * ---------------------------------------------------------------------- */

/* Decodes one code point at s[*i] (strict: no overlongs, no surrogates,
 * at most U+10FFFF); -1 if invalid. */
static long utf8_next(const unsigned char *s, size_t len, size_t *i)
{
    unsigned char c = s[*i];
    long cp, min;
    int extra;
    if (c < 0x80) {
        (*i)++;
        return c;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        extra = 1;
        cp = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        extra = 2;
        cp = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        extra = 3;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return -1;
    }
    if (len - *i <= (size_t)extra)
        return -1;
    for (int k = 1; k <= extra; k++) {
        unsigned char d = s[*i + k];
        if ((d & 0xC0) != 0x80)
            return -1;
        cp = cp << 6 | (d & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return -1;
    *i += (size_t)extra + 1;
    return cp;
}

/* Valid UTF-8 with no control character below U+0020 except, when
 * `newlines` is set, U+000A. */
static int text_valid(const char *text, size_t len, int newlines)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) { /* fast path */
            if (s[i] < 0x20 && !(newlines && s[i] == '\n'))
                return 0;
            i++;
            continue;
        }
        if (utf8_next(s, len, &i) < 0)
            return 0;
    }
    return 1;
}

static int unicode_space(long cp)
{
    return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

int vl__key_name_valid(const char *name, size_t len)
{
    const unsigned char *s = (const unsigned char *)name;
    size_t i = 0;
    if (!name || len == 0 || len >= sizeof(((vl_ledger_key_t *)0)->name))
        return 0;
    while (i < len) {
        long cp = utf8_next(s, len, &i);
        if (cp < 0x20 || cp == 0x7F || cp == '+' || unicode_space(cp))
            return 0; /* also cp < 0: invalid UTF-8 */
    }
    return 1;
}

/* ------------------------------------------------------------------------
 * Keys
 * ---------------------------------------------------------------------- */

uint32_t vl__key_id(const char *name, size_t len, const unsigned char pk[32])
{
    static const unsigned char sep[2] = {0x0A, 0x01};
    unsigned char h[VL_HASH_LEN];
    const void *parts[3] = {name, sep, pk};
    size_t lens[3] = {len, 2, 32};
    vl__sha256(h, 3, parts, lens);
    return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

int vl_ledger_key_generate(const char *name, vl_ledger_key_t *out, vl_error_t *err)
{
    size_t len = name ? strlen(name) : 0;
    memset(out, 0, sizeof *out);
    if (!vl__key_name_valid(name, len))
        return vl_error_set(err, 400, "invalid", NULL,
                            "key name must be non-empty, at most 127 bytes of UTF-8, "
                            "without spaces, control characters or '+'");
    if (crypto_sign_keypair(out->pk, out->sk) != 0)
        return vl_error_set(err, 500, "exception", NULL, "key generation failed");
    memcpy(out->name, name, len + 1);
    out->id = vl__key_id(name, len, out->pk);
    out->has_secret = 1;
    return 0;
}

int vl_ledger_key_vkey(const vl_ledger_key_t *k, char *out, size_t n)
{
    unsigned char raw[33];
    char b64[64];
    int w;
    raw[0] = 0x01;
    memcpy(raw + 1, k->pk, 32);
    if (!vl__key_name_valid(k->name, strlen(k->name)) ||
        vl__b64_encode(raw, sizeof raw, b64, sizeof b64) == 0)
        return -1;
    w = snprintf(out, n, "%s+%08x+%s", k->name, (unsigned)k->id, b64);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

/* Reads "<name>+<8 hex>+" at s; returns the offset of the base64 part. */
static int parse_name_id(const char *s, size_t len, char name[128], uint32_t *id)
{
    const char *plus = memchr(s, '+', len);
    size_t nlen;
    unsigned char idb[4];
    if (!plus)
        return -1;
    nlen = (size_t)(plus - s);
    if (!vl__key_name_valid(s, nlen) || len < nlen + 10 || s[nlen + 9] != '+' ||
        vl__unhex(s + nlen + 1, 4, idb) != 0)
        return -1;
    memcpy(name, s, nlen);
    name[nlen] = '\0';
    *id = (uint32_t)idb[0] << 24 | (uint32_t)idb[1] << 16 | (uint32_t)idb[2] << 8 | idb[3];
    return (int)(nlen + 10);
}

int vl__key_parse_vkey_n(const char *vkey, size_t len, vl_ledger_key_t *out, vl_error_t *err)
{
    unsigned char raw[33];
    int off;
    memset(out, 0, sizeof *out);
    if (!vkey || len > 512 || (off = parse_name_id(vkey, len, out->name, &out->id)) < 0 ||
        vl__b64_decode_exact(vkey + off, len - (size_t)off, raw, sizeof raw) != 0 ||
        raw[0] != 0x01) {
        memset(out, 0, sizeof *out);
        return vl_error_set(err, 400, "invalid", NULL,
                            "not an Ed25519 verifier key (<name>+<hex id>+<base64 key>)");
    }
    memcpy(out->pk, raw + 1, 32);
    if (vl__key_id(out->name, strlen(out->name), out->pk) != out->id) {
        memset(out, 0, sizeof *out);
        return vl_error_set(err, 400, "invalid", NULL,
                            "verifier key id does not match its name and public key");
    }
    return 0;
}

int vl_ledger_key_parse_vkey(const char *vkey, vl_ledger_key_t *out, vl_error_t *err)
{
    return vl__key_parse_vkey_n(vkey, vkey ? strlen(vkey) : 0, out, err);
}

#define VL_SKEY_PREFIX "PRIVATE+KEY+"

int vl_ledger_key_skey(const vl_ledger_key_t *k, char *out, size_t n)
{
    unsigned char raw[33];
    char b64[64];
    int w;
    if (!k->has_secret || !vl__key_name_valid(k->name, strlen(k->name)))
        return -1;
    raw[0] = 0x01;
    memcpy(raw + 1, k->sk, 32); /* libsodium's sk = seed || pk */
    if (vl__b64_encode(raw, sizeof raw, b64, sizeof b64) == 0)
        return -1;
    w = snprintf(out, n, VL_SKEY_PREFIX "%s+%08x+%s", k->name, (unsigned)k->id, b64);
    sodium_memzero(raw, sizeof raw);
    sodium_memzero(b64, sizeof b64);
    if (w < 0 || (size_t)w >= n) {
        if (n > 0)
            sodium_memzero(out, n);
        return -1;
    }
    return 0;
}

int vl_ledger_key_parse_skey(const char *skey, vl_ledger_key_t *out, vl_error_t *err)
{
    const size_t plen = sizeof VL_SKEY_PREFIX - 1;
    unsigned char raw[33];
    size_t len = skey ? strlen(skey) : 0;
    int off, rc = -1;
    memset(out, 0, sizeof *out);
    if (len < plen || len > 512 || memcmp(skey, VL_SKEY_PREFIX, plen) != 0 ||
        (off = parse_name_id(skey + plen, len - plen, out->name, &out->id)) < 0 ||
        vl__b64_decode_exact(skey + plen + off, len - plen - (size_t)off, raw, sizeof raw) != 0 ||
        raw[0] != 0x01) {
        vl_error_set(err, 400, "invalid", NULL,
                     "not an Ed25519 signer key (PRIVATE+KEY+<name>+<hex id>+<base64 seed>)");
        goto out;
    }
    if (crypto_sign_seed_keypair(out->pk, out->sk, raw + 1) != 0) {
        vl_error_set(err, 500, "exception", NULL, "key derivation failed");
        goto out;
    }
    if (vl__key_id(out->name, strlen(out->name), out->pk) != out->id) {
        vl_error_set(err, 400, "invalid", NULL,
                     "signer key id does not match its name and public key");
        goto out;
    }
    out->has_secret = 1;
    rc = 0;
out:
    sodium_memzero(raw, sizeof raw);
    if (rc != 0)
        sodium_memzero(out, sizeof *out);
    return rc;
}

/* ------------------------------------------------------------------------
 * Signed notes
 * ---------------------------------------------------------------------- */

char *vl_ledger_note_sign(const vl_ledger_key_t *k, const char *text)
{
    unsigned char sig[4 + crypto_sign_BYTES];
    char b64[128];
    size_t tlen, nlen, blen, total;
    char *note, *p;
    if (!k || !text || !k->has_secret)
        return NULL;
    tlen = strlen(text);
    nlen = strlen(k->name);
    if (tlen == 0 || tlen > VL_NOTE_MAX_LEN / 2 || text[tlen - 1] != '\n' ||
        !text_valid(text, tlen, 1) || !vl__key_name_valid(k->name, nlen))
        return NULL;
    sig[0] = (unsigned char)(k->id >> 24);
    sig[1] = (unsigned char)(k->id >> 16);
    sig[2] = (unsigned char)(k->id >> 8);
    sig[3] = (unsigned char)k->id;
    if (crypto_sign_detached(sig + 4, NULL, (const unsigned char *)text, tlen, k->sk) != 0)
        return NULL;
    blen = vl__b64_encode(sig, sizeof sig, b64, sizeof b64);
    if (blen == 0)
        return NULL;
    /* text "\n" "— " name " " b64 "\n" */
    total = tlen + 1 + 4 + nlen + 1 + blen + 1;
    note = malloc(total + 1);
    if (!note)
        return NULL;
    p = note;
    memcpy(p, text, tlen);
    p += tlen;
    memcpy(p, "\n" VL_EM_DASH " ", 5);
    p += 5;
    memcpy(p, k->name, nlen);
    p += nlen;
    *p++ = ' ';
    memcpy(p, b64, blen);
    p += blen;
    *p++ = '\n';
    *p = '\0';
    return note;
}

int vl_ledger_note_verify(const char *note, size_t len, const vl_ledger_key_t *keys, size_t nkeys,
                          char **text, vl_error_t *err)
{
    unsigned char *sig = NULL;
    size_t sep, tlen, pos, nsigs = 0, verified = 0;
    int rc = -1;
    if (text)
        *text = NULL;
    if (!note || len == 0 || len > VL_NOTE_MAX_LEN) {
        vl_error_set(err, 422, "invalid", NULL, "signed note is empty or too long");
        goto out;
    }
    if (!text_valid(note, len, 1)) {
        vl_error_set(err, 422, "invalid", NULL,
                     "signed note is not valid UTF-8 or holds a control character");
        goto out;
    }
    if (note[len - 1] != '\n') {
        vl_error_set(err, 422, "invalid", NULL, "signed note does not end with a newline");
        goto out;
    }
    /* The text ends at the last blank line. */
    for (sep = len - 1; sep > 0; sep--)
        if (note[sep - 1] == '\n' && note[sep] == '\n')
            break;
    if (sep == 0) {
        vl_error_set(err, 422, "invalid", NULL, "signed note has no blank line before signatures");
        goto out;
    }
    tlen = sep; /* text = note[0, sep), ends with the newline at sep-1 */
    pos = sep + 1;
    if (pos == len) {
        vl_error_set(err, 422, "invalid", NULL, "signed note has no signature");
        goto out;
    }
    sig = malloc(VL_NOTE_MAX_SIG);
    if (!sig) {
        vl_error_set(err, 500, "exception", NULL, "out of memory");
        goto out;
    }
    while (pos < len) {
        const char *line = note + pos, *nl = memchr(line, '\n', len - pos), *sp;
        size_t llen = (size_t)(nl - line), nmlen, slen = 0;
        uint32_t id;
        const vl_ledger_key_t *key = NULL;
        pos += llen + 1;
        if (++nsigs > VL_NOTE_MAX_SIGS) {
            vl_error_set(err, 422, "invalid", NULL, "signed note has more than %d signatures",
                         VL_NOTE_MAX_SIGS);
            goto out;
        }
        sp = llen > 4 ? memchr(line + 4, ' ', llen - 4) : NULL;
        if (llen < 4 || memcmp(line, VL_EM_DASH " ", 4) != 0 || !sp) {
            vl_error_set(err, 422, "invalid", NULL, "malformed signature line %zu", nsigs);
            goto out;
        }
        nmlen = (size_t)(sp - (line + 4));
        if (!vl__key_name_valid(line + 4, nmlen) ||
            vl__b64_decode(sp + 1, (size_t)(nl - sp - 1), sig, VL_NOTE_MAX_SIG, &slen) != 0 ||
            slen < 5) {
            vl_error_set(err, 422, "invalid", NULL, "malformed signature line %zu", nsigs);
            goto out;
        }
        id = (uint32_t)sig[0] << 24 | (uint32_t)sig[1] << 16 | (uint32_t)sig[2] << 8 | sig[3];
        for (size_t k = 0; k < nkeys && !key; k++)
            if (keys[k].id == id && strlen(keys[k].name) == nmlen &&
                memcmp(keys[k].name, line + 4, nmlen) == 0)
                key = &keys[k];
        if (!key)
            continue; /* unknown key: ignored */
        if (slen != 4 + crypto_sign_BYTES ||
            crypto_sign_verify_detached(sig + 4, (const unsigned char *)note, tlen, key->pk) != 0) {
            vl_error_set(err, 422, "invalid", NULL, "signature by trusted key %s does not verify",
                         key->name);
            goto out;
        }
        verified++;
    }
    if (verified == 0) {
        vl_error_set(err, 422, "invalid", NULL, "signed note has no signature by a trusted key");
        goto out;
    }
    if (text) {
        *text = malloc(tlen + 1);
        if (!*text) {
            vl_error_set(err, 500, "exception", NULL, "out of memory");
            goto out;
        }
        memcpy(*text, note, tlen);
        (*text)[tlen] = '\0';
    }
    rc = 0;
out:
    free(sig);
    return rc;
}

/* ------------------------------------------------------------------------
 * Checkpoints
 * ---------------------------------------------------------------------- */

char *vl_ledger_checkpoint_text(const char *origin, uint64_t size,
                                const unsigned char root[VL_HASH_LEN])
{
    char b64[48], *out;
    size_t olen, cap;
    if (!origin)
        return NULL;
    olen = strlen(origin);
    if (olen == 0 || olen > 1024 || !text_valid(origin, olen, 0))
        return NULL;
    if (vl__b64_encode(root, VL_HASH_LEN, b64, sizeof b64) == 0)
        return NULL;
    cap = olen + 1 + 20 + 1 + 44 + 2;
    out = malloc(cap);
    if (out)
        snprintf(out, cap, "%s\n%llu\n%s\n", origin, (unsigned long long)size, b64);
    return out;
}

int vl_ledger_checkpoint_parse(const char *text, char *origin, size_t origin_len, uint64_t *size,
                               unsigned char root[VL_HASH_LEN], vl_error_t *err)
{
    const char *p = text, *nl;
    size_t n;
    uint64_t v = 0;
    if (!text || !(nl = strchr(p, '\n')) || nl == p)
        return vl_error_set(err, 422, "invalid", NULL, "checkpoint has no origin line");
    n = (size_t)(nl - p);
    if (n + 1 > origin_len || !text_valid(p, n, 0))
        return vl_error_set(err, 422, "invalid", NULL, "checkpoint origin is invalid or too long");
    memcpy(origin, p, n);
    origin[n] = '\0';
    p = nl + 1;
    /* size: decimal, no leading zero unless "0", no overflow */
    if (!(nl = strchr(p, '\n')) || nl == p || (p[0] == '0' && nl - p > 1) || nl - p > 20)
        return vl_error_set(err, 422, "invalid", NULL, "checkpoint size is not canonical decimal");
    for (; p < nl; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return vl_error_set(err, 422, "invalid", NULL,
                                "checkpoint size is not canonical decimal");
        v = v * 10 + (uint64_t)(*p - '0');
    }
    p = nl + 1;
    if (!(nl = strchr(p, '\n')) ||
        vl__b64_decode_exact(p, (size_t)(nl - p), root, VL_HASH_LEN) != 0)
        return vl_error_set(err, 422, "invalid", NULL,
                            "checkpoint root is not the base64 of 32 bytes");
    p = nl + 1;
    /* Extension lines (C2SP allows them; vitalog never writes any): each
     * must be non-empty and newline-terminated; they are ignored. */
    while (*p) {
        if (!(nl = strchr(p, '\n')) || nl == p || !text_valid(p, (size_t)(nl - p), 0))
            return vl_error_set(err, 422, "invalid", NULL, "checkpoint has a malformed line");
        p = nl + 1;
    }
    *size = v;
    return 0;
}
