/*
 * Unit tests for src/cli: the bounded line reader, key loading, durable
 * writes, the data-directory lock, and `vitalog verify` on exports built
 * here with the ledger module (no server, no store).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "vitalog/cli.h"

#include "../support.h"

static char g_dir[] = "/tmp/vl-test-cli-XXXXXX";

static void path_in(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", g_dir, name);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* ------------------------------------------------------------------------
 * Line reader
 * ---------------------------------------------------------------------- */

static void test_lines_basic(void **state)
{
    (void)state;
    char path[512], *line;
    size_t len;
    vl_cli_lines_t r;
    static const char text[] = "one\n\nthree\nlast-without-newline";
    path_in(path, sizeof path, "lines");
    write_file(path, text, sizeof text - 1);
    assert_int_equal(vl_cli_lines_open(&r, path, 64), 0);
    assert_int_equal(vl_cli_lines_next(&r, &line, &len), 1);
    assert_int_equal(len, 3);
    assert_string_equal(line, "one");
    assert_int_equal(vl_cli_lines_next(&r, &line, &len), 1);
    assert_int_equal(len, 0);
    assert_int_equal(r.lineno, 2);
    assert_int_equal(vl_cli_lines_next(&r, &line, &len), 1);
    assert_string_equal(line, "three");
    assert_int_equal(vl_cli_lines_next(&r, &line, &len), 1);
    assert_string_equal(line, "last-without-newline");
    assert_int_equal(r.lineno, 4);
    assert_int_equal(vl_cli_lines_next(&r, &line, &len), 0);
    assert_int_equal(vl_cli_lines_next(&r, &line, &len), 0);
    vl_cli_lines_close(&r);
}

/* A line of exactly max_line bytes passes, one more byte fails; lines far
 * longer than the initial buffer grow it, never past max_line + 2. */
static void test_lines_cap(void **state)
{
    (void)state;
    enum { MAX = 200000 };
    char path[512], *line, *text;
    size_t len, n = 0;
    vl_cli_lines_t r;
    text = malloc(3 * MAX + 10);
    assert_non_null(text);
    memset(text, 'a', MAX);
    n = MAX;
    text[n++] = '\n';
    text[n++] = 'b';
    text[n++] = '\0'; /* a NUL inside a line is data, not an end */
    text[n++] = 'c';
    text[n++] = '\n';
    memset(text + n, 'x', MAX + 1);
    n += MAX + 1;
    text[n++] = '\n';
    path_in(path, sizeof path, "long");
    write_file(path, text, n);
    assert_int_equal(vl_cli_lines_open(&r, path, MAX), 0);
    assert_int_equal(vl_cli_lines_next(&r, &line, &len), 1);
    assert_int_equal(len, MAX);
    assert_true(line[0] == 'a' && line[MAX - 1] == 'a' && line[MAX] == '\0');
    assert_int_equal(vl_cli_lines_next(&r, &line, &len), 1);
    assert_int_equal(len, 3);
    assert_memory_equal(line, "b\0c", 3);
    assert_int_equal(vl_cli_lines_next(&r, &line, &len), -1);
    assert_non_null(strstr(r.error, "line 3: longer than 200000 bytes"));
    assert_true(r.cap <= MAX + 2);
    vl_cli_lines_close(&r);
    /* an overlong last line without a newline fails the same way */
    write_file(path, text + MAX + 5, MAX + 1);
    assert_int_equal(vl_cli_lines_open(&r, path, MAX), 0);
    assert_int_equal(vl_cli_lines_next(&r, &line, &len), -1);
    vl_cli_lines_close(&r);
    free(text);
}

static void test_lines_missing_file(void **state)
{
    (void)state;
    vl_cli_lines_t r;
    assert_int_equal(vl_cli_lines_open(&r, "/nonexistent/file", 10), -1);
}

/* ------------------------------------------------------------------------
 * Files and the lock
 * ---------------------------------------------------------------------- */

static void test_write_atomic(void **state)
{
    (void)state;
    char path[512], *text;
    struct stat st;
    path_in(path, sizeof path, "atomic");
    assert_int_equal(vl_cli_write_atomic(path, "first\n", 6, 0600), 0);
    assert_int_equal(vl_cli_write_atomic(path, "second\n", 7, 0644), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    text = vl_cli_read_small(path, 100);
    assert_non_null(text);
    assert_string_equal(text, "second"); /* trailing newline trimmed */
    free(text);
    assert_null(vl_cli_read_small(path, 3)); /* longer than max */
}

static void test_lock(void **state)
{
    (void)state;
    int a = vl_cli_lock_data("test", g_dir), b;
    assert_true(a >= 0);
    b = vl_cli_lock_data("test", g_dir); /* a second holder: refused */
    assert_int_equal(b, -1);
    close(a);
    b = vl_cli_lock_data("test", g_dir);
    assert_true(b >= 0);
    close(b);
}

static void test_check_data(void **state)
{
    (void)state;
    assert_int_equal(vl_cli_check_data("test", "/nonexistent-dir"), -1);
    assert_int_equal(vl_cli_check_data("test", g_dir), -1); /* no vitalog.db */
}

/* ------------------------------------------------------------------------
 * Verify on synthetic exports
 * ---------------------------------------------------------------------- */

#define N_ENTRIES 9

typedef struct fixture {
    vl_ledger_key_t key;
    char vkey[512];
    char export_path[512], records_path[512], x_path[512], vkey_path[512];
    char refs[N_ENTRIES][256];
} fixture_t;

static fixture_t g_fx;

static void put_checkpoint(FILE *f, const vl_ledger_key_t *k, const vl_ledger_range_t *range)
{
    unsigned char root[VL_HASH_LEN];
    char *text, *note, *line;
    json_t *doc;
    vl_ledger_range_root(range, root);
    text = vl_ledger_checkpoint_text(k->name, range->size, root);
    note = vl_ledger_note_sign(k, text);
    assert_non_null(note);
    doc = json_pack("{s:s}", "checkpoint", note);
    line = json_dumps(doc, JSON_COMPACT);
    fprintf(f, "%s\n", line);
    free(line);
    json_decref(doc);
    free(note);
    free(text);
}

/* An export of N_ENTRIES creates with checkpoints at sizes 4 and
 * N_ENTRIES, and its records file. */
static void build_export(void)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_ledger_range_t range;
    unsigned char prev[VL_HASH_LEN] = {0};
    FILE *ex, *rec;
    assert_int_equal(vl_ledger_key_generate("vitalog.test/cli", &g_fx.key, &err), 0);
    assert_true(vl_ledger_key_vkey(&g_fx.key, g_fx.vkey, sizeof g_fx.vkey) >= 0);
    path_in(g_fx.export_path, sizeof g_fx.export_path, "export.ndjson");
    path_in(g_fx.records_path, sizeof g_fx.records_path, "records.ndjson");
    path_in(g_fx.x_path, sizeof g_fx.x_path, "x.ndjson");
    path_in(g_fx.vkey_path, sizeof g_fx.vkey_path, "ledger.vkey");
    write_file(g_fx.vkey_path, g_fx.vkey, strlen(g_fx.vkey));
    ex = fopen(g_fx.export_path, "w");
    rec = fopen(g_fx.records_path, "w");
    assert_non_null(ex);
    assert_non_null(rec);
    vl_ledger_range_init(&range);
    for (int i = 0; i < N_ENTRIES; i++) {
        vl_ledger_entry_t e;
        unsigned char salt[32], leaf[VL_HASH_LEN];
        char body[128], salthex[65], b64[256], *line;
        size_t len;
        memset(&e, 0, sizeof e);
        snprintf(body, sizeof body, "{\"resourceType\":\"Observation\",\"id\":\"o%d\"}", i);
        randombytes_buf(salt, sizeof salt);
        e.index = (uint64_t)i;
        e.time_us = 1780000000000000 + i * 1000;
        e.kind = VL_ENTRY_CREATE;
        snprintf(e.ref, sizeof e.ref, "Observation/o%d/_history/1", i);
        snprintf(g_fx.refs[i], sizeof g_fx.refs[i], "%s", e.ref);
        vl_ledger_commitment(salt, body, strlen(body), e.commitment);
        memcpy(e.prev, prev, VL_HASH_LEN);
        line = vl_ledger_entry_format(&e, &len);
        assert_non_null(line);
        fprintf(ex, "%s\n", line);
        vl_ledger_leaf_hash(line, len, leaf);
        memcpy(prev, leaf, VL_HASH_LEN);
        vl_ledger_range_append(&range, leaf, NULL, NULL);
        free(line);
        if (i == 3 || i == N_ENTRIES - 1)
            put_checkpoint(ex, &g_fx.key, &range);
        sodium_bin2hex(salthex, sizeof salthex, salt, 32);
        sodium_bin2base64(b64, sizeof b64, (const unsigned char *)body, strlen(body),
                          sodium_base64_VARIANT_ORIGINAL);
        if (i != 6) /* an erased record: no line, not a failure */
            fprintf(rec, "{\"ref\":\"%s\",\"salt\":\"%s\",\"bytes\":\"%s\"}\n", e.ref, salthex,
                    b64);
    }
    assert_int_equal(fclose(ex), 0);
    assert_int_equal(fclose(rec), 0);
}

/* Runs vl_cli_verify with these arguments; stdout and stderr land in
 * out/err (truncated to fit). Returns the exit code. */
static int run_verify(char *out, size_t outlen, char *errbuf, size_t errlen, ...)
{
    va_list ap;
    int rc;
    va_start(ap, errlen);
    rc = test_run_captured(vl_cli_verify, "verify", g_dir, out, outlen, errbuf, errlen, ap);
    va_end(ap);
    return rc;
}

/* Copies the export with line `lineno` (1-based) replaced by `with`
 * (NULL: deleted). */
static void edit_export(int lineno, const char *with)
{
    FILE *in = fopen(g_fx.export_path, "r"), *out = fopen(g_fx.x_path, "w");
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    assert_non_null(in);
    assert_non_null(out);
    while (getline(&line, &cap, in) > 0) {
        if (++n == lineno) {
            if (with)
                fprintf(out, "%s\n", with);
            continue;
        }
        fputs(line, out);
    }
    free(line);
    fclose(in);
    fclose(out);
}

static void test_verify_ok(void **state)
{
    (void)state;
    char out[2048], err[2048];
    assert_int_equal(
        run_verify(out, sizeof out, err, sizeof err, "--key", g_fx.vkey, g_fx.export_path, NULL),
        0);
    assert_non_null(strstr(out, "OK: 9 entries, 2 checkpoints, size 9"));
    assert_non_null(strstr(out, "origin vitalog.test/cli"));
    assert_string_equal(err, "");
    /* the key from a file; records too */
    assert_int_equal(run_verify(out, sizeof out, err, sizeof err, "--key", g_fx.vkey_path,
                                "--records", g_fx.records_path, g_fx.export_path, NULL),
                     0);
    assert_non_null(strstr(out, "8 records"));
}

static void test_verify_tampered(void **state)
{
    (void)state;
    char out[2048], err[2048];
    /* line 3 is entry 2: deleted */
    edit_export(3, NULL);
    assert_int_equal(
        run_verify(out, sizeof out, err, sizeof err, "--key", g_fx.vkey, g_fx.x_path, NULL), 1);
    assert_non_null(strstr(err, "vitalog verify: FAILED at entry 2"));
    assert_string_equal(out, "");
    /* unknown shape, blank line: named by line */
    edit_export(2, "{\"other\":1}");
    assert_int_equal(
        run_verify(out, sizeof out, err, sizeof err, "--key", g_fx.vkey, g_fx.x_path, NULL), 1);
    assert_non_null(strstr(err, "FAILED at line 2 (after 1 entries)"));
    edit_export(2, "");
    assert_int_equal(
        run_verify(out, sizeof out, err, sizeof err, "--key", g_fx.vkey, g_fx.x_path, NULL), 1);
    assert_non_null(strstr(err, "line 2 (after 1 entries): blank line"));
    /* line 5 is the checkpoint at size 4: malformed JSON */
    edit_export(5, "{\"checkpoint\":\"abc");
    assert_int_equal(
        run_verify(out, sizeof out, err, sizeof err, "--key", g_fx.vkey, g_fx.x_path, NULL), 1);
    assert_non_null(strstr(err, "line 5 (after 4 entries): malformed checkpoint line"));
    /* last line (final checkpoint) removed */
    edit_export(N_ENTRIES + 2, NULL);
    assert_int_equal(
        run_verify(out, sizeof out, err, sizeof err, "--key", g_fx.vkey, g_fx.x_path, NULL), 1);
    assert_non_null(strstr(err, "FAILED at entry 4: not covered by a signed checkpoint"));
}

static void test_verify_records_tampered(void **state)
{
    (void)state;
    char out[2048], err[2048], line[512], rpath[512];
    FILE *f;
    path_in(rpath, sizeof rpath, "records-x.ndjson");
    /* a record with bytes that are not the committed ones */
    f = fopen(rpath, "w");
    snprintf(line, sizeof line, "{\"ref\":\"%s\",\"salt\":\"%064d\",\"bytes\":\"e30=\"}",
             g_fx.refs[3], 0);
    fprintf(f, "%s\n", line);
    fclose(f);
    assert_int_equal(run_verify(out, sizeof out, err, sizeof err, "--key", g_fx.vkey, "--records",
                                rpath, g_fx.export_path, NULL),
                     1);
    assert_non_null(strstr(err, "FAILED at entry 3: record Observation/o3/_history/1"));
    /* a ref with no entry */
    f = fopen(rpath, "w");
    fprintf(f, "{\"ref\":\"Observation/zz/_history/1\",\"salt\":\"%064d\",\"bytes\":\"\"}\n", 0);
    fclose(f);
    assert_int_equal(run_verify(out, sizeof out, err, sizeof err, "--key", g_fx.vkey, "--records",
                                rpath, g_fx.export_path, NULL),
                     1);
    assert_non_null(
        strstr(err, "FAILED at records line 1: record Observation/zz/_history/1: no entry"));
    /* bad base64 */
    f = fopen(rpath, "w");
    fprintf(f, "{\"ref\":\"%s\",\"salt\":\"%064d\",\"bytes\":\"@@@\"}\n", g_fx.refs[0], 0);
    fclose(f);
    assert_int_equal(run_verify(out, sizeof out, err, sizeof err, "--key", g_fx.vkey, "--records",
                                rpath, g_fx.export_path, NULL),
                     1);
    assert_non_null(strstr(err, "records line 1"));
}

static void test_verify_usage(void **state)
{
    (void)state;
    char out[4096], err[2048];
    vl_error_t e = VL_ERROR_INIT;
    vl_ledger_key_t other;
    char ovkey[512];
    assert_int_equal(run_verify(out, sizeof out, err, sizeof err, g_fx.export_path, NULL), 2);
    assert_int_equal(
        run_verify(out, sizeof out, err, sizeof err, "--key", "nonsense", g_fx.export_path, NULL),
        2);
    assert_int_equal(run_verify(out, sizeof out, err, sizeof err, "--help", NULL), 0);
    assert_non_null(strstr(out, "usage: vitalog verify"));
    /* another key: a verification failure, not a usage error */
    assert_int_equal(vl_ledger_key_generate("vitalog.test/cli", &other, &e), 0);
    assert_true(vl_ledger_key_vkey(&other, ovkey, sizeof ovkey) >= 0);
    assert_int_equal(
        run_verify(out, sizeof out, err, sizeof err, "--key", ovkey, g_fx.export_path, NULL), 1);
    assert_non_null(strstr(err, "FAILED at checkpoint at size 4"));
}

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0 || !mkdtemp(g_dir))
        return -1;
    build_export();
    return 0;
}

static int teardown(void **state)
{
    char cmd[600];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_basic),
        cmocka_unit_test(test_lines_cap),
        cmocka_unit_test(test_lines_missing_file),
        cmocka_unit_test(test_write_atomic),
        cmocka_unit_test(test_lock),
        cmocka_unit_test(test_check_data),
        cmocka_unit_test(test_verify_ok),
        cmocka_unit_test(test_verify_tampered),
        cmocka_unit_test(test_verify_records_tampered),
        cmocka_unit_test(test_verify_usage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
