/*
 * vitalog — ledger: helpers shared by the files of src/ledger/ only.
 * Nothing here is part of the public interface (include/vitalog/ledger.h).
 */
#ifndef VITALOG_LEDGER_INTERNAL_H
#define VITALOG_LEDGER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "vitalog/ledger.h"

/* ---- hash.c ------------------------------------------------------------ */

/** SHA-256 over the concatenation of `n` parts (n <= 4). Never fails: when
 *  OpenSSL cannot give a context (out of memory) libsodium's portable
 *  SHA-256 computes the same digest. */
void vl__sha256(unsigned char out[VL_HASH_LEN], size_t n, const void *const parts[],
                const size_t lens[]);

/** Lowercase hex of `len` bytes into `out` (2*len+1 bytes, NUL-terminated). */
void vl__hex(const unsigned char *in, size_t len, char *out);
/** Decodes exactly 2*len lowercase hex digits; -1 on any other byte. */
int vl__unhex(const char *in, size_t len, unsigned char *out);

/** Strict standard base64 (RFC 4648 section 4, padded, canonical trailing
 *  bits): decodes `in[0..inlen)` to exactly `want` bytes, -1 otherwise. */
int vl__b64_decode_exact(const char *in, size_t inlen, unsigned char *out, size_t want);
/** Same, any length up to `cap`; *outlen receives the length. */
int vl__b64_decode(const char *in, size_t inlen, unsigned char *out, size_t cap, size_t *outlen);
/** Padded base64 of `len` bytes into `out` (NUL-terminated); returns the
 *  length written, or 0 if `cap` is too small. */
size_t vl__b64_encode(const unsigned char *in, size_t len, char *out, size_t cap);

/* ---- note.c ------------------------------------------------------------ */

/** 1 if `name[0..len)` is a valid key name: non-empty, at most 127 bytes,
 *  valid UTF-8, no control characters, no Unicode space, no '+'. */
int vl__key_name_valid(const char *name, size_t len);
/** SHA-256(name || 0x0A || 0x01 || pk)[:4], big-endian. */
uint32_t vl__key_id(const char *name, size_t len, const unsigned char pk[32]);
/** Parses a vkey of `len` bytes (not NUL-terminated). */
int vl__key_parse_vkey_n(const char *vkey, size_t len, vl_ledger_key_t *out, vl_error_t *err);

/* ---- entry.c ----------------------------------------------------------- */

/** Scans a canonical entry line without jansson. Fails on any byte that
 *  vl_ledger_entry_format() would not have written; `why` (may be NULL)
 *  receives a static reason. */
int vl__entry_scan(const char *line, size_t len, vl_ledger_entry_t *out, const char **why);
/** 0 if the rotation entry's signature verifies under `old`. */
int vl__rotation_verify(const vl_ledger_key_t *old, const vl_ledger_entry_t *e);

#endif
