/*
 * vitalog — ledger: the append-only, hash-chained, Merkle-provable,
 * signed log of every accepted write (docs/ledger.md is the full spec).
 *
 * This module is pure: formats, hashes, RFC 9162 Merkle trees and proofs,
 * C2SP signed notes and checkpoints, keys, and the streaming verifier
 * shared by the server (start-up check, `vitalog verify --data`) and
 * `vitalog verify` on an export. It performs no SQL: the store persists
 * what it produces, inside the same transaction as each write.
 *
 * Formats (normative in docs/ledger.md):
 *   entry line  {"index":N,"time":"<instant>","kind":"create|update|delete|
 *                consent.grant|consent.revoke|access.disclose","ref":"Type/id/_history/v",
 *                "commitment":"<hex>","prev":"<hex>"}
 *               or, for key rotation,
 *               {"index":N,"time":"<instant>","kind":"key-rotation",
 *                "key":"<new vkey>","signature":"<base64>","prev":"<hex>"}
 *               exactly these keys in this order, no spaces.
 *   entry hash  SHA-256(0x00 || line)  (= the RFC 9162 leaf hash)
 *   prev        hex entry hash of entry index-1; 64 zeros for entry 0
 *   commitment  hex SHA-256(salt || bytes), bytes = the stored JSON of that
 *               version (empty for a delete), salt = 32 random bytes
 *   checkpoint  C2SP tlog-checkpoint (origin, size, base64 root) signed as
 *               a C2SP signed note with an Ed25519 key named like the origin
 *   rotation    signature = Ed25519 by the old key over
 *               "vitalog key rotation\n" || new vkey || "\n"
 */
#ifndef VITALOG_LEDGER_H
#define VITALOG_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "vitalog/util.h"

#define VL_HASH_LEN 32
#define VL_LEDGER_MAX_PROOF 64 /* hashes in any proof for trees below 2^63 */
#define VL_LEDGER_ROTATION_PREFIX "vitalog key rotation\n"

/* ------------------------------------------------------------------------
 * Hashing (RFC 9162, SHA-256)
 * ---------------------------------------------------------------------- */

/** SHA-256(0x00 || data): the leaf hash, which is also the entry hash. */
void vl_ledger_leaf_hash(const void *data, size_t len, unsigned char out[VL_HASH_LEN]);
/** SHA-256(0x01 || left || right). */
void vl_ledger_node_hash(const unsigned char left[VL_HASH_LEN],
                         const unsigned char right[VL_HASH_LEN], unsigned char out[VL_HASH_LEN]);
/** SHA-256 of "" : the root of the empty tree. */
void vl_ledger_empty_root(unsigned char out[VL_HASH_LEN]);
/** Commitment SHA-256(salt || bytes). */
void vl_ledger_commitment(const unsigned char salt[32], const void *bytes, size_t len,
                          unsigned char out[VL_HASH_LEN]);

/* ------------------------------------------------------------------------
 * Compact range: the root of a growing tree in O(log n) memory.
 * Appending leaf i completes the perfect subtrees that end at i; each
 * completed node (level >= 1) is reported so the store can keep it.
 * ---------------------------------------------------------------------- */

typedef struct vl_ledger_range {
    uint64_t size;                        /* leaves appended */
    unsigned char peaks[64][VL_HASH_LEN]; /* perfect subtree roots, largest first */
    int npeaks;
} vl_ledger_range_t;

typedef void (*vl_ledger_node_cb)(void *ctx, int level, uint64_t index,
                                  const unsigned char hash[VL_HASH_LEN]);

void vl_ledger_range_init(vl_ledger_range_t *r);
/** Appends a leaf hash; `cb` (may be NULL) receives every node completed
 *  at level >= 1: node (level L, index i) covers leaves [i*2^L, (i+1)*2^L). */
void vl_ledger_range_append(vl_ledger_range_t *r, const unsigned char leaf[VL_HASH_LEN],
                            vl_ledger_node_cb cb, void *ctx);
/** The RFC 9162 root of the leaves appended so far. */
void vl_ledger_range_root(const vl_ledger_range_t *r, unsigned char out[VL_HASH_LEN]);

/* ------------------------------------------------------------------------
 * Proofs. Nodes come from a callback: level 0 = leaf hashes, level L >= 1 =
 * the perfect subtree nodes reported by vl_ledger_range_append().
 * ---------------------------------------------------------------------- */

typedef int (*vl_ledger_node_fn)(void *ctx, int level, uint64_t index,
                                 unsigned char out[VL_HASH_LEN]);

/** MTH(D[start:end]) per RFC 9162 2.1.1, for ranges that occur in proofs
 *  (start a multiple of the largest power of two <= end-start, or 0). */
int vl_ledger_subtree_hash(vl_ledger_node_fn fn, void *ctx, uint64_t start, uint64_t end,
                           unsigned char out[VL_HASH_LEN]);
/** PATH(index, D[0:size]) (RFC 9162 2.1.3.1) into proof[]; *n hashes. */
int vl_ledger_inclusion_proof(vl_ledger_node_fn fn, void *ctx, uint64_t index, uint64_t size,
                              unsigned char proof[][VL_HASH_LEN], size_t *n);
/** PROOF(first, D[0:second]) (RFC 9162 2.1.4.1) into proof[]; *n hashes. */
int vl_ledger_consistency_proof(vl_ledger_node_fn fn, void *ctx, uint64_t first, uint64_t second,
                                unsigned char proof[][VL_HASH_LEN], size_t *n);
/** RFC 9162 2.1.3.2: 0 if the proof binds `leaf` at `index` to `root`. */
int vl_ledger_verify_inclusion(uint64_t index, uint64_t size, const unsigned char leaf[VL_HASH_LEN],
                               const unsigned char proof[][VL_HASH_LEN], size_t n,
                               const unsigned char root[VL_HASH_LEN]) VL_WARN_UNUSED;
/** RFC 9162 2.1.4.2: 0 if the proof shows root1 (first) is a prefix of
 *  root2 (second). */
int vl_ledger_verify_consistency(uint64_t first, uint64_t second,
                                 const unsigned char root1[VL_HASH_LEN],
                                 const unsigned char root2[VL_HASH_LEN],
                                 const unsigned char proof[][VL_HASH_LEN], size_t n) VL_WARN_UNUSED;

/* ------------------------------------------------------------------------
 * Keys and C2SP signed notes (Ed25519, signature type 0x01)
 * ---------------------------------------------------------------------- */

typedef struct vl_ledger_key {
    char name[128];
    uint32_t id; /* SHA-256(name || 0x0A || 0x01 || pk)[:4], big-endian */
    unsigned char pk[32];
    unsigned char sk[64]; /* libsodium secret key (seed || pk); valid if has_secret */
    int has_secret;
} vl_ledger_key_t;

/** New random key named `name` (non-empty, no spaces, no '+'). */
int vl_ledger_key_generate(const char *name, vl_ledger_key_t *out, vl_error_t *err);
/** "<name>+<hex id>+<base64(0x01 || pk)>" (C2SP verifier key). */
int vl_ledger_key_vkey(const vl_ledger_key_t *k, char *out, size_t n);
/** Parses a verifier key; checks that the id matches name and key. */
int vl_ledger_key_parse_vkey(const char *vkey, vl_ledger_key_t *out, vl_error_t *err);
/** "PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || 32-byte seed)>" (the
 *  golang.org/x/mod/sumdb/note signer key format). */
int vl_ledger_key_skey(const vl_ledger_key_t *k, char *out, size_t n);
int vl_ledger_key_parse_skey(const char *skey, vl_ledger_key_t *out, vl_error_t *err);

/** Signs `text` (must end in "\n") as a signed note with one signature.
 *  Returns malloc'd note text (caller frees). */
char *vl_ledger_note_sign(const vl_ledger_key_t *k, const char *text);
/**
 * Verifies a signed note against `keys`: signatures by unknown keys are
 * ignored, a known key's bad signature rejects the note, at least one
 * known key must verify. On success *text (may be NULL) receives the
 * malloc'd note text. Fails closed: on failure *text is NULL.
 */
int vl_ledger_note_verify(const char *note, size_t len, const vl_ledger_key_t *keys, size_t nkeys,
                          char **text, vl_error_t *err) VL_WARN_UNUSED;

/** Checkpoint body "<origin>\n<size>\n<base64 root>\n" (malloc'd). */
char *vl_ledger_checkpoint_text(const char *origin, uint64_t size,
                                const unsigned char root[VL_HASH_LEN]);
/** Parses a checkpoint body: origin, canonical size and a 32-byte base64
 *  root, plus optional non-empty extension lines (ignored; vitalog never
 *  writes any). */
int vl_ledger_checkpoint_parse(const char *text, char *origin, size_t origin_len, uint64_t *size,
                               unsigned char root[VL_HASH_LEN], vl_error_t *err);

/* ------------------------------------------------------------------------
 * Entries
 * ---------------------------------------------------------------------- */

typedef enum {
    VL_ENTRY_CREATE,
    VL_ENTRY_UPDATE,
    VL_ENTRY_DELETE,
    VL_ENTRY_KEY_ROTATION,
    VL_ENTRY_CONSENT_GRANT,   /* a Consent version that grants (docs/ledger.md 2.1) */
    VL_ENTRY_CONSENT_REVOKE,  /* a Consent version that revokes */
    VL_ENTRY_ACCESS_DISCLOSE, /* an AuditEvent recording a disclosure (its create) */
    VL_ENTRY__COUNT,
} vl_entry_kind_t;

typedef struct vl_ledger_entry {
    uint64_t index;
    int64_t time_us;
    vl_entry_kind_t kind;
    char ref[256];                         /* Type/id/_history/v (not rotation) */
    unsigned char commitment[VL_HASH_LEN]; /* not rotation */
    char key[256];                         /* rotation: new vkey */
    unsigned char signature[64];           /* rotation */
    unsigned char prev[VL_HASH_LEN];
} vl_ledger_entry_t;

/** Canonical line of an entry (malloc'd, no trailing newline). */
char *vl_ledger_entry_format(const vl_ledger_entry_t *e, size_t *len);
/** Parses a line; fails unless it is exactly the canonical form. */
int vl_ledger_entry_parse(const char *line, size_t len, vl_ledger_entry_t *out, vl_error_t *err);
/** Signs a rotation: e->key set, signature by `old` over the rotation text. */
int vl_ledger_rotation_sign(const vl_ledger_key_t *old, vl_ledger_entry_t *e);

/* ------------------------------------------------------------------------
 * Keys list: every verifier key of a log, oldest first, with the tree
 * sizes each one signs (docs/ledger.md section 5.1). The document, exactly
 * as vl_ledger_keys_format() writes it (one line, then "\n"):
 *
 *   {"origin":"<origin>","keys":[{"key":"<vkey 0>","from":0},
 *    {"key":"<vkey i>","from":<R_i + 1>,"rotation":<R_i>},...]}
 *
 * R_i is the index of the key-rotation entry that introduced key i (signed
 * by key i-1); key i signs every checkpoint of size s with
 * from_i <= s < from_(i+1). Served by GET /ledger/keys and printed by
 * `vitalog key list`; `vitalog verify --keys` checks a log against it.
 * ---------------------------------------------------------------------- */

#define VL_LEDGER_KEYS_MAX 1024              /* keys in one list (first + rotations) */
#define VL_LEDGER_KEYS_MAX_LEN (512u * 1024) /* bytes of one document */

typedef struct vl_ledger_rotation {
    uint64_t index; /* of the key-rotation entry */
    char key[256];  /* the verifier key it introduces */
} vl_ledger_rotation_t;

/** A keys list: `first` signs from the beginning; rotations[0..n) in
 *  index order. `rotations` is malloc'd and owned (vl_ledger_keys_clear). */
typedef struct vl_ledger_keys {
    char origin[128];
    char first[256];
    vl_ledger_rotation_t *rotations;
    size_t n;
} vl_ledger_keys_t;

/**
 * Renders the keys document of a log named `origin` that began with the
 * verifier key `first` and had the key rotations rotations[0..n) (index
 * order). Returns the malloc'd document (caller frees), "\n"-terminated,
 * its length in *len (may be NULL); NULL if the input is not a valid list
 * (a key that does not parse or is not named `origin`, indices not
 * strictly increasing, a key listed twice, more than VL_LEDGER_KEYS_MAX
 * keys) or out of memory.
 */
char *vl_ledger_keys_format(const char *origin, const char *first,
                            const vl_ledger_rotation_t *rotations, size_t n, size_t *len);
/**
 * Parses a keys document (any JSON text with exactly the members above;
 * at most VL_LEDGER_KEYS_MAX_LEN bytes and VL_LEDGER_KEYS_MAX keys) and
 * checks every rule of docs/ledger.md 5.1 that needs no log: every key a
 * valid verifier key named like the origin, the first with from 0 and no
 * rotation, each later one with from = rotation + 1, rotations strictly
 * increasing, no key twice. Fails closed: on failure *out is empty (no
 * allocation to free) and err says why. On success free with
 * vl_ledger_keys_clear(). vl_ledger_keys_format() of the parts gives the
 * canonical bytes back.
 */
int vl_ledger_keys_parse(const char *doc, size_t len, vl_ledger_keys_t *out,
                         vl_error_t *err) VL_WARN_UNUSED;
/** Frees the rotations and empties the list (safe on an empty one). */
void vl_ledger_keys_clear(vl_ledger_keys_t *k);

/**
 * Building a list from a log: init with the log's first verifier key
 * (origin = its name), then feed every entry line in index order (e.g.
 * from vl_store_ledger_scan). Lines that are not key-rotation entries are
 * skipped unchecked; a key-rotation entry must be canonical, later than the
 * previous one, signed by the key before it (fails otherwise: the list
 * would not verify), and name a new key of the same name. Then format
 * with vl_ledger_keys_format(k.origin, k.first, k.rotations, k.n, &len).
 * On failure the list keeps what it had; clear it in any case.
 */
int vl_ledger_keys_init(vl_ledger_keys_t *k, const char *first, vl_error_t *err) VL_WARN_UNUSED;
int vl_ledger_keys_add_entry(vl_ledger_keys_t *k, const char *line, size_t len,
                             vl_error_t *err) VL_WARN_UNUSED;

/* ------------------------------------------------------------------------
 * Streaming verifier: feed entries in order and checkpoints where they
 * occur; O(log n) memory. Shared by the server and `vitalog verify`.
 * Every failure names the index where it was found.
 * ---------------------------------------------------------------------- */

typedef struct vl_ledger_verifier vl_ledger_verifier_t;

/** `trusted`: keys to trust for checkpoints (more join through rotation
 *  entries signed by a trusted key). `origin` may be NULL (any). */
vl_ledger_verifier_t *vl_ledger_verifier_new(const vl_ledger_key_t *trusted, size_t n,
                                             const char *origin);
void vl_ledger_verifier_free(vl_ledger_verifier_t *v);
/**
 * A verifier that checks a log against a keys list: it trusts list->first
 * alone for the log's beginning, insists on origin list->origin, and
 * requires every key-rotation entry to be the list's next rotation (same
 * index, same key) and every listed rotation to occur (an entry at a
 * listed index that is not a rotation, a rotation the list does not name,
 * and a listed rotation past the last entry all fail, as "entry N: ...").
 * The list is copied. NULL if its first key does not parse or out of memory.
 */
vl_ledger_verifier_t *vl_ledger_verifier_new_keys(const vl_ledger_keys_t *list);

/** Checks an entry's form, its index (next expected), the chain (prev) and
 *  a rotation's signature; appends it to the tree. A broken chain between
 *  entries i and i+1 is reported on the next call (or in finish), once it
 *  is known which of the two was altered; after a failure every call
 *  returns that first error. */
int vl_ledger_verifier_entry(vl_ledger_verifier_t *v, const char *line, size_t len,
                             vl_error_t *err) VL_WARN_UNUSED;
/** Same, with the line's leaf hash already computed by the caller (e.g. on
 *  another thread): `leaf` must be vl_ledger_leaf_hash(line, len). */
int vl_ledger_verifier_entry_hashed(vl_ledger_verifier_t *v, const char *line, size_t len,
                                    const unsigned char leaf[VL_HASH_LEN],
                                    vl_error_t *err) VL_WARN_UNUSED;
/** Checks a signed checkpoint against the entries seen so far: signature
 *  by a trusted key, origin, size == entries so far, root equal. */
int vl_ledger_verifier_checkpoint(vl_ledger_verifier_t *v, const char *note, size_t len,
                                  vl_error_t *err) VL_WARN_UNUSED;
/** After the last line: at least one checkpoint, and the last one covers
 *  every entry. */
int vl_ledger_verifier_finish(vl_ledger_verifier_t *v, vl_error_t *err) VL_WARN_UNUSED;
/** Entries seen so far. */
uint64_t vl_ledger_verifier_size(const vl_ledger_verifier_t *v);

#endif
