/*
 * vitalog — cli: the commands.
 *
 *   vitalog serve --data DIR --listen HOST:PORT [options]   the server
 *   vitalog verify --key KEY [--records FILE] EXPORT   offline check of an export
 *   vitalog verify --keys FILE [--key KEY] EXPORT      ... against the log's keys list
 *   vitalog verify [--key KEY | --keys FILE] --data DIR  check a data directory
 *   vitalog export --data DIR [--records] [-o FILE]    ledger (or records) export
 *   vitalog key show --data DIR                        print the verifier key
 *   vitalog key list --data DIR                        print the keys list (GET /ledger/keys)
 *   vitalog key rotate --data DIR                      rotate the signing key
 *   vitalog token create|list|revoke --data DIR ...    bearer tokens
 *   vitalog import healthkit --patient REF (--data DIR | --server URL --token T) FILE
 *                                                      an Apple Health export.xml
 *
 * Each command takes its own argv (argv[0] is the command name, as in
 * `vitalog verify ...` shifted by one), parses it with getopt_long, prints
 * its --help text, and returns the process exit code: 0 success, 1 failure
 * (a verification that does not hold, an I/O error), 2 bad usage.
 *
 * Export format (what GET /ledger/export and `vitalog export` write): NDJSON,
 * each line either an entry line exactly as stored ({"index":...}) or
 * {"checkpoint":"<signed note, JSON-escaped>"} right after the entry that
 * completes its size; the last line is a checkpoint covering every entry.
 *
 * Records format (`vitalog export --records`): NDJSON in ledger order,
 *   {"ref":"Type/id/_history/v","salt":"<64 hex>","bytes":"<base64>"}
 * where SHA-256(salt || bytes) is the commitment of the entry with that ref.
 *
 * Data directory files used here: DIR/vitalog.db, DIR/ledger.key (signer key,
 * 0600), DIR/ledger.vkey (verifier key, 0644), DIR/ledger.vkey.history (the
 * verifier keys before each rotation, oldest first), DIR/ledger.key.next (a
 * key being rotated in), DIR/vitalog.lock (flock held by a running server),
 * DIR/token.key (the key bearer tokens are hashed with, 0600), DIR/ingest.key
 * (the key of ingested readings' ids, 0600), DIR/admin.token (the bootstrap
 * admin token written on first start, 0600).
 */
#ifndef VITALOG_CLI_H
#define VITALOG_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "vitalog/ledger.h"

/** `vitalog serve`: runs the server until SIGINT or SIGTERM. */
int vl_cli_serve(int argc, char **argv);
/** `vitalog verify`: exit 0 only if the whole export (or data directory)
 *  verifies; otherwise 1 and "vitalog verify: FAILED at <where>: <why>" on
 *  stderr, <where> one of "entry N", "checkpoint at size N", "line L
 *  (after N entries)" and "records line L" (the --help text says what each
 *  means), or 1 with another message when an input cannot be read; 2 for
 *  bad usage or an unreadable key or keys list. */
int vl_cli_verify(int argc, char **argv);
/** `vitalog export`: writes the ledger export or the records NDJSON. */
int vl_cli_export(int argc, char **argv);
/** `vitalog key show|list|rotate`. */
int vl_cli_key(int argc, char **argv);
/** `vitalog token create|list|revoke`. */
int vl_cli_token(int argc, char **argv);
/** `vitalog import healthkit`: an Apple Health export.xml through $ingest. */
int vl_cli_import(int argc, char **argv);

/* ------------------------------------------------------------------------
 * Helpers shared by the commands (and their unit tests).
 * ---------------------------------------------------------------------- */

/** Longest accepted line of a ledger export, and of a records file. */
#define VL_CLI_MAX_LINE (64u * 1024)
#define VL_CLI_MAX_RECORD_LINE (64u * 1024 * 1024)
/** Most trusted keys accepted on one command line. */
#define VL_CLI_MAX_KEYS 16

/**
 * A bounded line reader over a file descriptor: memory never exceeds
 * max_line + 2 bytes however long the file, and a longer line is an error
 * rather than an allocation. Lines are returned without their '\n',
 * NUL-terminated, valid until the next call. A last line without '\n' is
 * returned as a line.
 */
typedef struct vl_cli_lines {
    int fd;
    int owns_fd;
    char *buf;
    size_t cap, start, end, scan;
    size_t max_line;
    int eof;
    uint64_t lineno; /* number of the line last returned (1-based) */
    char error[160]; /* set when next() returns -1 */
} vl_cli_lines_t;

/** Opens `path` ("-": standard input). Returns 0, or -1 with errno set. */
int vl_cli_lines_open(vl_cli_lines_t *r, const char *path, size_t max_line);
/** 1: a line in *line and *len; 0: end of input; -1: error (r->error says
 *  which: a read error or a line over max_line). */
int vl_cli_lines_next(vl_cli_lines_t *r, char **line, size_t *len);
void vl_cli_lines_close(vl_cli_lines_t *r);

/**
 * A pipelined line reader for ledger exports: a producer thread reads lines
 * (through a vl_cli_lines_t) into blocks and computes the leaf hash of every
 * entry line (those starting with {"index":) while the caller verifies the
 * previous block, so hashing runs on a second core. Memory is bounded: at
 * most VL_CLI_PIPE_BLOCKS blocks of VL_CLI_PIPE_LINES lines.
 */
#define VL_CLI_PIPE_BLOCKS 3
#define VL_CLI_PIPE_LINES 4096

typedef struct vl_cli_pipe vl_cli_pipe_t;

/** Opens `path` ("-": stdin) and starts the producer. NULL with errno set. */
vl_cli_pipe_t *vl_cli_pipe_open(const char *path, size_t max_line);
/** Like vl_cli_lines_next; *leaf is the line's leaf hash, or NULL when the
 *  line is not an entry line. Valid until the next call. */
int vl_cli_pipe_next(vl_cli_pipe_t *p, char **line, size_t *len, const unsigned char **leaf);
/** Number of the line last returned (1-based), and the error text after -1. */
uint64_t vl_cli_pipe_lineno(const vl_cli_pipe_t *p);
const char *vl_cli_pipe_error(const vl_cli_pipe_t *p);
/** Stops the producer and frees everything. */
void vl_cli_pipe_close(vl_cli_pipe_t *p);

/**
 * Loads trusted verifier keys from `arg`: a C2SP verifier key string, or
 * the path of a file holding one per line (blank lines ignored). Appends
 * to keys[*n] (capacity VL_CLI_MAX_KEYS). On failure prints a message
 * prefixed with `cmd` to stderr and returns -1.
 */
int vl_cli_load_vkeys(const char *cmd, const char *arg, vl_ledger_key_t *keys, size_t *n);
/** The first verifier key of the log in DIR (the one it began with): the
 *  first non-blank line of DIR/ledger.vkey.history after a key rotation,
 *  else DIR/ledger.vkey. Checks that it parses. Into out[n]; prints why
 *  (prefixed with `cmd`) and returns -1 on failure. */
int vl_cli_first_vkey(const char *cmd, const char *dir, char *out, size_t n);
/** Loads a keys list document (docs/ledger.md 5.1, GET /ledger/keys) from
 *  `path` into *list (free with vl_ledger_keys_clear). Prints why
 *  (prefixed with `cmd`) and returns -1 on failure, leaving *list empty. */
int vl_cli_load_keys_list(const char *cmd, const char *path, vl_ledger_keys_t *list);
/** Loads the signer key DIR/ledger.key (or `path` if non-NULL). Prints a
 *  message prefixed with `cmd` and returns -1 on failure. */
int vl_cli_load_skey(const char *cmd, const char *path, vl_ledger_key_t *key);

/** Reads a small file (at most `max` bytes) into a malloc'd NUL-terminated
 *  string with trailing whitespace removed. NULL with errno on failure
 *  (EFBIG: longer than max). */
char *vl_cli_read_small(const char *path, size_t max);
/** Writes `data` to `path` durably: temp file in the same directory with
 *  `mode`, fsync, rename over `path`, fsync of the directory. */
int vl_cli_write_atomic(const char *path, const char *data, size_t len, unsigned mode);
/** The same, but never replacing an existing `path` (-1 with EEXIST). */
int vl_cli_write_new(const char *path, const char *data, size_t len, unsigned mode);
/** fsync of the directory holding `path`. */
int vl_cli_fsync_dir_of(const char *path);
/** 0 if DIR/vitalog.db exists; otherwise prints why (prefixed with `cmd`)
 *  and returns -1. The store would create a new empty database, which is
 *  never what a tool wants. */
int vl_cli_check_data(const char *cmd, const char *dir);
/** Takes flock(LOCK_EX|LOCK_NB) on DIR/vitalog.lock, the lock a running
 *  server holds. Returns the descriptor (close it to release), or -1 after
 *  printing why (busy: a server is running on DIR). */
int vl_cli_lock_data(const char *cmd, const char *dir);

/**
 * Parses the body of a signed checkpoint note (the text before the blank
 * line) into origin, size and root. Does not check signatures. 0 or -1.
 */
int vl_cli_note_checkpoint(const char *note, size_t len, char *origin, size_t origin_len,
                           uint64_t *size, unsigned char root[VL_HASH_LEN]);

#endif
