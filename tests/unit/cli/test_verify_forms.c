/*
 * Every failure form that `vitalog verify --help` and the README document
 * is produced by real input, and nothing else is: each case below runs
 * vl_cli_verify, reads its real stderr, and checks that it is exactly one
 * line "vitalog verify: FAILED at <where>: <what>" with <where> one of
 *
 *   entry N                    (export: ends "(line L)"; --data: may end
 *                               "(found by the store when opening DIR)")
 *   checkpoint at size N       (export: ends "(line L)")
 *   line L (after N entries)   export lines that are no entry or checkpoint
 *   records line L             the --records file
 *
 * and the exact text expected for the case. Exports are built here with
 * the ledger module; data directories with the store, then altered with
 * SQL.
 */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <sqlite3.h>

#include "vitalog/cli.h"
#include "vitalog/store.h"

#include "../support.h"

#define ORIGIN "vitalog.test/forms"
#define N_ENTRIES 9

static char g_dir[] = "/tmp/vl-test-forms-XXXXXX";
static vl_ledger_key_t g_key, g_other;
static char g_vkey[256], g_ovkey[256];
static char g_export[512], g_records[512], g_x[512], g_y[512];
static char g_refs[N_ENTRIES][256];

enum form { F_ENTRY, F_CHECKPOINT, F_LINE, F_RECORDS };

static const char *const form_re[] = {
    "^vitalog verify: FAILED at entry [0-9]+: [^\n]+\n$",
    "^vitalog verify: FAILED at checkpoint at size [0-9]+: [^\n]+\n$",
    "^vitalog verify: FAILED at line [0-9]+ \\(after [0-9]+ entries\\): [^\n]+\n$",
    "^vitalog verify: FAILED at records line [0-9]+: [^\n]+\n$",
};

static void path_in(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", g_dir, name);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* ------------------------------------------------------------------------
 * Running the command
 * ---------------------------------------------------------------------- */

/* vl_cli_verify with these arguments (NULL-terminated); its stdout and
 * stderr in out/err. Returns the exit code. */
static int run(char *out, size_t outlen, char *err, size_t errlen, ...)
{
    va_list ap;
    int rc;
    va_start(ap, errlen);
    rc = test_run_captured(vl_cli_verify, "verify", g_dir, out, outlen, err, errlen, ap);
    va_end(ap);
    return rc;
}

/* The run failed (exit 1) with exactly one line of form `form` on stderr,
 * starting (after "FAILED at ") with `prefix` and containing `also` (may
 * be NULL), and nothing on stdout. */
static void expect_form(int rc, const char *out, const char *err, enum form form,
                        const char *prefix, const char *also)
{
    regex_t re;
    char want[1024];
    assert_int_equal(regcomp(&re, form_re[form], REG_EXTENDED | REG_NOSUB), 0);
    if (rc != 1)
        fail_msg("exit %d, want 1; stderr: %s", rc, err);
    if (regexec(&re, err, 0, NULL, 0) != 0)
        fail_msg("stderr is not one line of form %d: \"%s\"", (int)form, err);
    regfree(&re);
    snprintf(want, sizeof want, "vitalog verify: FAILED at %s", prefix);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("stderr \"%s\" does not start \"%s\"", err, want);
    if (also && !strstr(err, also))
        fail_msg("stderr \"%s\" does not contain \"%s\"", err, also);
    assert_string_equal(out, "");
    if (getenv("VL_TEST_VERBOSE"))
        print_message("%s", err);
}

/* ------------------------------------------------------------------------
 * Exports
 * ---------------------------------------------------------------------- */

static void put_checkpoint(FILE *f, const vl_ledger_range_t *r)
{
    unsigned char root[VL_HASH_LEN];
    char *text, *note, *line;
    json_t *doc;
    vl_ledger_range_root(r, root);
    text = vl_ledger_checkpoint_text(ORIGIN, r->size, root);
    note = vl_ledger_note_sign(&g_key, text);
    assert_non_null(note);
    doc = json_pack("{s:s}", "checkpoint", note);
    line = json_dumps(doc, JSON_COMPACT);
    fprintf(f, "%s\n", line);
    free(line);
    json_decref(doc);
    free(note);
    free(text);
}

/* N_ENTRIES creates, checkpoints at sizes 4 and N_ENTRIES (export lines
 * 1-4 entries 0-3, 5 checkpoint, 6-10 entries 4-8, 11 checkpoint), and
 * the records file. */
static void build_export(void)
{
    vl_ledger_range_t r;
    unsigned char prev[VL_HASH_LEN] = {0};
    FILE *ex = fopen(g_export, "w"), *rec = fopen(g_records, "w");
    assert_non_null(ex);
    assert_non_null(rec);
    vl_ledger_range_init(&r);
    for (int i = 0; i < N_ENTRIES; i++) {
        vl_ledger_entry_t e;
        unsigned char salt[32], leaf[VL_HASH_LEN];
        char body[64], salthex[65], b64[128], *line;
        size_t len;
        memset(&e, 0, sizeof e);
        snprintf(body, sizeof body, "{\"resourceType\":\"Observation\",\"id\":\"o%d\"}", i);
        randombytes_buf(salt, sizeof salt);
        e.index = (uint64_t)i;
        e.time_us = INT64_C(1780000000000000) + i * 1000;
        e.kind = VL_ENTRY_CREATE;
        snprintf(e.ref, sizeof e.ref, "Observation/o%d/_history/1", i);
        snprintf(g_refs[i], sizeof g_refs[i], "%s", e.ref);
        vl_ledger_commitment(salt, body, strlen(body), e.commitment);
        memcpy(e.prev, prev, VL_HASH_LEN);
        line = vl_ledger_entry_format(&e, &len);
        assert_non_null(line);
        fprintf(ex, "%s\n", line);
        vl_ledger_leaf_hash(line, len, leaf);
        memcpy(prev, leaf, VL_HASH_LEN);
        vl_ledger_range_append(&r, leaf, NULL, NULL);
        free(line);
        if (i == 3 || i == N_ENTRIES - 1)
            put_checkpoint(ex, &r);
        sodium_bin2hex(salthex, sizeof salthex, salt, 32);
        sodium_bin2base64(b64, sizeof b64, (const unsigned char *)body, strlen(body),
                          sodium_base64_VARIANT_ORIGINAL);
        fprintf(rec, "{\"ref\":\"%s\",\"salt\":\"%s\",\"bytes\":\"%s\"}\n", e.ref, salthex, b64);
    }
    assert_int_equal(fclose(ex), 0);
    assert_int_equal(fclose(rec), 0);
}

/* g_x = the export with line `lineno` replaced by `with` (NULL: deleted;
 * lineno 0: every checkpoint line deleted). */
static void edit(int lineno, const char *with)
{
    FILE *in = fopen(g_export, "r"), *out = fopen(g_x, "w");
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    assert_non_null(in);
    assert_non_null(out);
    while (getline(&line, &cap, in) > 0) {
        n++;
        if (lineno == 0 && !strncmp(line, "{\"checkpoint\":", 14))
            continue;
        if (n == lineno) {
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

static void test_export_forms(void **state)
{
    (void)state;
    char out[4096], err[4096], *longline;
    /* the unaltered export verifies */
    assert_int_equal(run(out, sizeof out, err, sizeof err, "--key", g_vkey, g_export, NULL), 0);
    assert_string_equal(err, "");

    /* entry N ... (line L): entry 2 (line 3) deleted, found at line 3 */
    edit(3, NULL);
    expect_form(run(out, sizeof out, err, sizeof err, "--key", g_vkey, g_x, NULL), out, err,
                F_ENTRY, "entry 2: found index 3 instead", "(line 3)\n");
    /* entry N without a line: not covered by the last checkpoint (removed) */
    edit(11, NULL);
    expect_form(run(out, sizeof out, err, sizeof err, "--key", g_vkey, g_x, NULL), out, err,
                F_ENTRY, "entry 4: not covered by a signed checkpoint", NULL);

    /* checkpoint at size N ... (line L): another key */
    expect_form(run(out, sizeof out, err, sizeof err, "--key", g_ovkey, g_export, NULL), out, err,
                F_CHECKPOINT, "checkpoint at size 4: signed note has no signature by a trusted key",
                "(line 5)\n");
    /* checkpoint at size N: missing (no checkpoint at all) */
    edit(0, NULL);
    expect_form(run(out, sizeof out, err, sizeof err, "--key", g_vkey, g_x, NULL), out, err,
                F_CHECKPOINT, "checkpoint at size 9: missing", NULL);

    /* line L (after N entries): blank, another shape, malformed checkpoint
     * JSON, too long, unreadable */
    edit(2, "");
    expect_form(run(out, sizeof out, err, sizeof err, "--key", g_vkey, g_x, NULL), out, err, F_LINE,
                "line 2 (after 1 entries): blank line", NULL);
    edit(2, "{\"other\":1}");
    expect_form(run(out, sizeof out, err, sizeof err, "--key", g_vkey, g_x, NULL), out, err, F_LINE,
                "line 2 (after 1 entries): neither an entry nor a checkpoint line", NULL);
    edit(5, "{\"checkpoint\":\"abc");
    expect_form(run(out, sizeof out, err, sizeof err, "--key", g_vkey, g_x, NULL), out, err, F_LINE,
                "line 5 (after 4 entries): malformed checkpoint line", NULL);
    longline = malloc(VL_CLI_MAX_LINE + 16);
    assert_non_null(longline);
    memset(longline, 'x', VL_CLI_MAX_LINE + 1);
    longline[VL_CLI_MAX_LINE + 1] = '\0';
    edit(3, longline);
    free(longline);
    expect_form(run(out, sizeof out, err, sizeof err, "--key", g_vkey, g_x, NULL), out, err, F_LINE,
                "line 3 (after 2 entries): longer than 65536 bytes", NULL);
    expect_form(run(out, sizeof out, err, sizeof err, "--key", g_vkey, g_dir, NULL), out, err,
                F_LINE, "line 1 (after 0 entries): read error", NULL);
}

static void test_records_forms(void **state)
{
    (void)state;
    char out[4096], err[4096], line[512];
    assert_int_equal(run(out, sizeof out, err, sizeof err, "--key", g_vkey, "--records", g_records,
                         g_export, NULL),
                     0);
    /* entry N: the record does not match its entry's commitment */
    snprintf(line, sizeof line, "{\"ref\":\"%s\",\"salt\":\"%064d\",\"bytes\":\"e30=\"}\n",
             g_refs[3], 0);
    write_file(g_y, line);
    expect_form(
        run(out, sizeof out, err, sizeof err, "--key", g_vkey, "--records", g_y, g_export, NULL),
        out, err, F_ENTRY, "entry 3: record Observation/o3/_history/1: SHA-256", NULL);
    /* records line L: malformed, no entry follows, unreadable */
    write_file(g_y, "not json\n");
    expect_form(
        run(out, sizeof out, err, sizeof err, "--key", g_vkey, "--records", g_y, g_export, NULL),
        out, err, F_RECORDS, "records line 1: not a JSON object", NULL);
    snprintf(line, sizeof line, "{\"ref\":\"%s\",\"salt\":\"%064d\",\"bytes\":\"\"}\n%s", g_refs[5],
             0, "{\"ref\":\"Observation/o1/_history/1\",\"salt\":\"00\",\"bytes\":\"\"}\n");
    write_file(g_y, line);
    expect_form(
        run(out, sizeof out, err, sizeof err, "--key", g_vkey, "--records", g_y, g_export, NULL),
        out, err, F_ENTRY, "entry 5: record Observation/o5/_history/1", NULL);
    write_file(g_y, "{\"ref\":\"Observation/zz/_history/1\",\"salt\":\"" /* 64 zeros */
                    "0000000000000000000000000000000000000000000000000000000000000000"
                    "\",\"bytes\":\"\"}\n");
    expect_form(
        run(out, sizeof out, err, sizeof err, "--key", g_vkey, "--records", g_y, g_export, NULL),
        out, err, F_RECORDS,
        "records line 1: record Observation/zz/_history/1: no entry with this ref follows", NULL);
    expect_form(
        run(out, sizeof out, err, sizeof err, "--key", g_vkey, "--records", g_dir, g_export, NULL),
        out, err, F_RECORDS, "records line 1: read error", NULL);
}

/* With --keys: failures are entry forms too. */
static void test_keys_forms(void **state)
{
    (void)state;
    char out[4096], err[4096], doc[2048], kpath[512];
    path_in(kpath, sizeof kpath, "keys.json");
    snprintf(doc, sizeof doc, "{\"origin\":\"%s\",\"keys\":[{\"key\":\"%s\",\"from\":0}]}\n",
             ORIGIN, g_vkey);
    write_file(kpath, doc);
    assert_int_equal(run(out, sizeof out, err, sizeof err, "--keys", kpath, g_export, NULL), 0);
    assert_non_null(strstr(out, ", 1 listed keys"));
    expect_form(
        run(out, sizeof out, err, sizeof err, "--keys", kpath, "--key", g_ovkey, g_export, NULL),
        out, err, F_ENTRY, "entry 0: the keys list begins with", NULL);
    snprintf(doc, sizeof doc,
             "{\"origin\":\"%s\",\"keys\":[{\"key\":\"%s\",\"from\":0},"
             "{\"key\":\"%s\",\"from\":8,\"rotation\":7}]}\n",
             ORIGIN, g_vkey, g_ovkey);
    write_file(kpath, doc);
    expect_form(run(out, sizeof out, err, sizeof err, "--keys", kpath, g_export, NULL), out, err,
                F_ENTRY, "entry 7: the keys list names a key rotation here", "(line 9)\n");
    /* a list that does not parse is a usage error (exit 2), not a FAILED */
    write_file(kpath, "{}");
    assert_int_equal(run(out, sizeof out, err, sizeof err, "--keys", kpath, g_export, NULL), 2);
    assert_null(strstr(err, "FAILED"));
    assert_non_null(strstr(err, "not a ledger keys list"));
}

/* ------------------------------------------------------------------------
 * Data directories
 * ---------------------------------------------------------------------- */

/* A unit that creates Observation/obs<i> (version 1). */
static int put_observation(vl_store_txn_t *txn, void *arg)
{
    int i = *(int *)arg;
    char id[16], body[160];
    vl_store_err_t err = VL_STORE_ERR_INIT;
    vl_index_t ix;
    vl_store_put_t p;
    int rc;
    snprintf(id, sizeof id, "obs%d", i);
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Observation\",\"id\":\"%s\",\"status\":\"final\"}", id);
    vl_index_init(&ix);
    memset(&p, 0, sizeof p);
    p.type = "Observation";
    p.id = id;
    p.version = 1;
    p.method = VL_METHOD_POST;
    p.body = body;
    p.body_len = strlen(body);
    p.index = &ix;
    rc = vl_store_txn_put(txn, &p, NULL, &err);
    vl_index_free(&ix);
    return rc;
}

/* A new data directory `name` with 6 creates and a checkpoint covering
 * them; then `sql` run on its database. */
static void make_data(const char *name, const char *sql, char *dir, size_t n)
{
    vl_store_options_t opts;
    vl_store_t *s;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    char path[600], *note = NULL;
    uint64_t size = 0;
    sqlite3 *db;
    path_in(dir, n, name);
    memset(&opts, 0, sizeof opts);
    opts.key = &g_key;
    opts.origin = g_key.name;
    assert_int_equal(vl_store_open(dir, &opts, &s, &err), 0);
    for (int i = 0; i < 6; i++) {
        vl_store_unit_t u;
        memset(&u, 0, sizeof u);
        u.apply = put_observation;
        u.arg = &i;
        assert_int_equal(vl_store_run(s, &u), 0);
    }
    assert_int_equal(vl_store_ledger_checkpoint(s, vl_scope_everything(), 1, &note, &size, &err),
                     0);
    assert_int_equal(size, 6);
    free(note);
    vl_store_close(s);
    if (sql) {
        snprintf(path, sizeof path, "%s/vitalog.db", dir);
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
            fail_msg("%s: %s", sql, sqlite3_errmsg(db));
        assert_int_equal(sqlite3_changes(db), 1);
        sqlite3_close(db);
    }
}

static void test_data_forms(void **state)
{
    (void)state;
    char out[4096], err[4096], dir[512], found[700];
    make_data("good", NULL, dir, sizeof dir);
    assert_int_equal(run(out, sizeof out, err, sizeof err, "--key", g_vkey, "--data", dir, NULL),
                     0);
    assert_non_null(strstr(out, "OK: 6 entries"));

    /* found by the store's own check when it opens */
    make_data("gap", "DELETE FROM ledger_entry WHERE idx = 3", dir, sizeof dir);
    snprintf(found, sizeof found, "(found by the store when opening %s)\n", dir);
    expect_form(run(out, sizeof out, err, sizeof err, "--key", g_vkey, "--data", dir, NULL), out,
                err, F_ENTRY, "entry 3: missing", found);
    make_data("hash", "UPDATE ledger_entry SET hash = zeroblob(32) WHERE idx = 2", dir, sizeof dir);
    snprintf(found, sizeof found, "(found by the store when opening %s)\n", dir);
    expect_form(run(out, sizeof out, err, sizeof err, "--key", g_vkey, "--data", dir, NULL), out,
                err, F_ENTRY, "entry 2: does not match its stored hash", found);
    make_data("node", "DELETE FROM ledger_node WHERE level = 1 AND idx = 2", dir, sizeof dir);
    snprintf(found, sizeof found, "(found by the store when opening %s)\n", dir);
    expect_form(run(out, sizeof out, err, sizeof err, "--key", g_vkey, "--data", dir, NULL), out,
                err, F_ENTRY, "entry 4: the stored Merkle tree node (level 1, index 2) is missing",
                found);

    /* found by the full check: a record, a checkpoint */
    make_data("record",
              "UPDATE resource_version SET body = CAST(replace(CAST(body AS TEXT), 'final', "
              "'amended') AS BLOB) WHERE ledger_idx = 4",
              dir, sizeof dir);
    expect_form(run(out, sizeof out, err, sizeof err, "--key", g_vkey, "--data", dir, NULL), out,
                err, F_ENTRY, "entry 4: record Observation/", "does not match");
    make_data("checkpoint",
              "UPDATE ledger_checkpoint SET note = replace(note, char(10) || char(10), "
              "char(10) || char(10) || ' ') WHERE size = 6",
              dir, sizeof dir);
    expect_form(run(out, sizeof out, err, sizeof err, "--key", g_vkey, "--data", dir, NULL), out,
                err, F_CHECKPOINT, "checkpoint at size 6: ", NULL);
    assert_null(strstr(err, "(line"));
}

/* The help text documents exactly these forms. */
static void test_help_names_forms(void **state)
{
    (void)state;
    char out[16384], err[1024];
    assert_int_equal(run(out, sizeof out, err, sizeof err, "--help", NULL), 0);
    assert_non_null(strstr(out, "vitalog verify: FAILED at <where>: <what>\n"));
    assert_non_null(strstr(out, "\n  entry N\n"));
    assert_non_null(strstr(out, "\n  checkpoint at size N\n"));
    assert_non_null(strstr(out, "\n  line L (after N entries)\n"));
    assert_non_null(strstr(out, "\n  records line L\n"));
    assert_non_null(strstr(out, "(found by the store when"));
    assert_non_null(strstr(out, "What to do:"));
}

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0 || !mkdtemp(g_dir))
        return -1;
    if (vl_ledger_key_generate(ORIGIN, &g_key, NULL) != 0 ||
        vl_ledger_key_vkey(&g_key, g_vkey, sizeof g_vkey) != 0 ||
        vl_ledger_key_generate(ORIGIN, &g_other, NULL) != 0 ||
        vl_ledger_key_vkey(&g_other, g_ovkey, sizeof g_ovkey) != 0)
        return -1;
    path_in(g_export, sizeof g_export, "export.ndjson");
    path_in(g_records, sizeof g_records, "records.ndjson");
    path_in(g_x, sizeof g_x, "x.ndjson");
    path_in(g_y, sizeof g_y, "y.ndjson");
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
        cmocka_unit_test(test_export_forms),     cmocka_unit_test(test_records_forms),
        cmocka_unit_test(test_keys_forms),       cmocka_unit_test(test_data_forms),
        cmocka_unit_test(test_help_names_forms),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
