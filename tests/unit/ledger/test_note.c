/*
 * Unit tests for src/ledger/note.c: keys (vkey/skey round trips, the Go
 * sumdb example key), C2SP signed notes against real notes
 * (tests/data/ledger/c2sp, see SOURCES.txt) including every single-byte
 * change, unknown and bad signatures, malformed notes, and checkpoints.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "vitalog/ledger.h"

/* table-driven malformed inputs are printf templates */
#pragma GCC diagnostic ignored "-Wformat-nonliteral"

static char *slurp(const char *name, size_t *len)
{
    char path[512];
    FILE *f;
    char *buf;
    long n;
    snprintf(path, sizeof path, "%s/ledger/c2sp/%s", VL_TEST_DATA, name);
    f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* All keys of a .vkey file (one per line). */
static size_t load_keys(const char *name, vl_ledger_key_t keys[8])
{
    size_t len, n = 0;
    char *text = slurp(name, &len), *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        vl_error_t err = VL_ERROR_INIT;
        assert_true(n < 8);
        if (vl_ledger_key_parse_vkey(line, &keys[n], &err) != 0)
            fail_msg("%s: %s", line, vl_error_message(&err));
        n++;
    }
    free(text);
    return n;
}

static const char *const vectors[] = {
    "c2sp-signed-note-example",
    "go-sumdb-peterneumann",
    "sum.golang.org-checkpoint-6476701",
    "sum.golang.org-checkpoint-6476701-3witness",
};

static void test_vectors_verify(void **state)
{
    (void)state;
    for (size_t v = 0; v < sizeof vectors / sizeof *vectors; v++) {
        char nname[128], kname[128], *note, *text = NULL;
        vl_ledger_key_t keys[8];
        vl_error_t err = VL_ERROR_INIT;
        size_t len, nk;
        snprintf(nname, sizeof nname, "%s.note", vectors[v]);
        snprintf(kname, sizeof kname, "%s.vkey", vectors[v]);
        note = slurp(nname, &len);
        nk = load_keys(kname, keys);
        if (vl_ledger_note_verify(note, len, keys, nk, &text, &err) != 0)
            fail_msg("%s: %s", nname, vl_error_message(&err));
        assert_non_null(text);
        assert_memory_equal(text, note, strlen(text)); /* the text is the note's prefix */
        /* each key alone verifies too */
        for (size_t k = 0; k < nk; k++)
            assert_int_equal(vl_ledger_note_verify(note, len, &keys[k], 1, NULL, NULL), 0);
        if (strstr(vectors[v], "checkpoint")) {
            char origin[64];
            uint64_t size = 0;
            unsigned char root[32];
            assert_int_equal(
                vl_ledger_checkpoint_parse(text, origin, sizeof origin, &size, root, NULL), 0);
            assert_string_equal(origin, "go.sum database tree");
            assert_int_equal(size, 6476701);
            /* and re-formats to the same text */
            char *again = vl_ledger_checkpoint_text(origin, size, root);
            assert_string_equal(again, text);
            free(again);
        }
        free(text);
        free(note);
    }
}

static void test_spec_example_key(void **state)
{
    (void)state;
    vl_ledger_key_t k;
    char out[256], *text = NULL;
    size_t len;
    char *note = slurp("c2sp-signed-note-example.note", &len);
    assert_int_equal(
        vl_ledger_key_parse_vkey(
            "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", &k, NULL),
        0);
    assert_int_equal(k.id, 0x530d903a);
    assert_string_equal(k.name, "example.com/foo");
    assert_int_equal(vl_ledger_key_vkey(&k, out, sizeof out), 0);
    assert_string_equal(out,
                        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k");
    assert_int_equal(vl_ledger_note_verify(note, len, &k, 1, &text, NULL), 0);
    assert_string_equal(text, "This is an example message.\n");
    free(text);
    free(note);
    /* a wrong id, uppercase hex, another type byte, junk: refused */
    assert_int_not_equal(
        vl_ledger_key_parse_vkey(
            "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", &k, NULL),
        0);
    assert_int_not_equal(
        vl_ledger_key_parse_vkey(
            "example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", &k, NULL),
        0);
    assert_int_not_equal(
        vl_ledger_key_parse_vkey(
            "example.com/foo+530d903a+AikyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", &k, NULL),
        0);
    assert_int_not_equal(
        vl_ledger_key_parse_vkey(
            "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k=", &k, NULL),
        0);
    assert_int_not_equal(vl_ledger_key_parse_vkey("", &k, NULL), 0);
    assert_int_not_equal(vl_ledger_key_parse_vkey("a+b", &k, NULL), 0);
}

/* golang.org/x/mod/sumdb/note ExampleSign: same key, same text, and
 * Ed25519 is deterministic, so the exact same note. */
static void test_go_signer_key(void **state)
{
    (void)state;
    vl_ledger_key_t k, v;
    char out[256], *note, *want;
    size_t len;
    const char *skey =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    assert_int_equal(vl_ledger_key_parse_skey(skey, &k, NULL), 0);
    assert_true(k.has_secret);
    assert_int_equal(vl_ledger_key_vkey(&k, out, sizeof out), 0);
    assert_string_equal(out, "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW");
    assert_int_equal(vl_ledger_key_skey(&k, out, sizeof out), 0);
    assert_string_equal(out, skey);
    note = vl_ledger_note_sign(&k, "If you think cryptography is the answer to your problem,\n"
                                   "then you don't know what your problem is.\n");
    want = slurp("go-sumdb-peterneumann.note", &len);
    assert_string_equal(note, want);
    assert_int_equal(
        vl_ledger_key_parse_vkey(
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", &v, NULL),
        0);
    assert_int_equal(vl_ledger_note_verify(note, strlen(note), &v, 1, NULL, NULL), 0);
    free(note);
    free(want);
    /* every single-byte change of the skey is refused or yields another key */
    char bad[128];
    for (size_t i = 0; i < strlen(skey); i++) {
        vl_ledger_key_t b;
        strcpy(bad, skey);
        bad[i] ^= 0x01;
        if (vl_ledger_key_parse_skey(bad, &b, NULL) == 0)
            assert_true(memcmp(b.sk, k.sk, 64) != 0 || strcmp(b.name, k.name) != 0);
    }
    assert_int_not_equal(vl_ledger_key_skey(&k, out, 20), 0); /* too small */
}

static void test_key_round_trip(void **state)
{
    (void)state;
    vl_ledger_key_t k, pub, sec, other;
    char vkey[256], skey[256], *note, *text = NULL;
    assert_int_equal(vl_ledger_key_generate("vitalog.example/ledger", &k, NULL), 0);
    assert_int_equal(vl_ledger_key_vkey(&k, vkey, sizeof vkey), 0);
    assert_int_equal(vl_ledger_key_skey(&k, skey, sizeof skey), 0);
    assert_int_equal(strncmp(skey, "PRIVATE+KEY+vitalog.example/ledger+", 35), 0);
    assert_int_equal(vl_ledger_key_parse_vkey(vkey, &pub, NULL), 0);
    assert_int_equal(vl_ledger_key_parse_skey(skey, &sec, NULL), 0);
    assert_false(pub.has_secret);
    assert_memory_equal(pub.pk, k.pk, 32);
    assert_memory_equal(sec.sk, k.sk, 64);
    assert_memory_equal(sec.pk, k.pk, 32);
    assert_int_equal(pub.id, k.id);
    assert_int_equal(sec.id, k.id);
    /* key id = SHA-256(name || 0x0A || 0x01 || pk)[:4] */
    {
        unsigned char h[32];
        crypto_hash_sha256_state st;
        crypto_hash_sha256_init(&st);
        crypto_hash_sha256_update(&st, (const unsigned char *)k.name, strlen(k.name));
        crypto_hash_sha256_update(&st, (const unsigned char *)"\n\x01", 2);
        crypto_hash_sha256_update(&st, k.pk, 32);
        crypto_hash_sha256_final(&st, h);
        assert_int_equal(k.id,
                         (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3]);
    }
    note = vl_ledger_note_sign(&sec, "hello\n");
    assert_non_null(note);
    assert_int_equal(vl_ledger_note_verify(note, strlen(note), &pub, 1, &text, NULL), 0);
    assert_string_equal(text, "hello\n");
    free(text);
    /* a verifier-only key cannot sign; a text without final newline neither */
    assert_null(vl_ledger_note_sign(&pub, "hello\n"));
    assert_null(vl_ledger_note_sign(&sec, "hello"));
    assert_null(vl_ledger_note_sign(&sec, "hel\tlo\n"));
    /* another key, same name: unknown (different id), note rejected */
    assert_int_equal(vl_ledger_key_generate("vitalog.example/ledger", &other, NULL), 0);
    text = (char *)1;
    assert_int_not_equal(vl_ledger_note_verify(note, strlen(note), &other, 1, &text, NULL), 0);
    assert_null(text); /* fails closed */
    free(note);
    /* invalid names */
    /* "a\xc2\xa0\x62": a, NBSP, b (\x62 rather than a second literal, which
     * clang's -Wstring-concatenation takes for a missing comma) */
    static const char *const bad[] = {"",     "a b",           "a+b",
                                      "a\tb", "a\xc2\xa0\x62", "a\xe3\x80\x80z",
                                      "\xff", "a\nb",          "a\xe2\x80\x89"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_not_equal(vl_ledger_key_generate(bad[i], &other, NULL), 0);
    char longname[200];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_not_equal(vl_ledger_key_generate(longname, &other, NULL), 0);
    assert_int_equal(vl_ledger_key_generate("\xc3\xa9t\xc3\xa9", &other, NULL), 0); /* UTF-8 ok */
}

/* Flipping any bit of any byte never verifies to the same text. For a
 * note with several signatures, a changed line of another key may turn it
 * into an unknown key (ignored, as the spec requires), so each key is
 * checked alone over the text and its own signature line. */
static void flip_all(const char *note, size_t len, const vl_ledger_key_t *key, size_t from,
                     size_t to, const char *text, int *tried)
{
    char *copy = malloc(len);
    for (size_t i = from; i < to; i++)
        for (int bit = 0; bit < 8; bit++) {
            char *t = NULL;
            memcpy(copy, note, len);
            copy[i] ^= (char)(1 << bit);
            if (vl_ledger_note_verify(copy, len, key, 1, &t, NULL) == 0) {
                if (strcmp(t, text) == 0)
                    fail_msg("byte %zu bit %d: still verifies to the same text", i, bit);
                free(t);
            } else {
                assert_null(t);
            }
            (*tried)++;
        }
    free(copy);
}

static void test_flip_every_byte(void **state)
{
    (void)state;
    int tried = 0;
    for (size_t v = 0; v < sizeof vectors / sizeof *vectors; v++) {
        char nname[128], kname[128], *note, *text = NULL;
        vl_ledger_key_t keys[8];
        size_t len, nk;
        snprintf(nname, sizeof nname, "%s.note", vectors[v]);
        snprintf(kname, sizeof kname, "%s.vkey", vectors[v]);
        note = slurp(nname, &len);
        nk = load_keys(kname, keys);
        assert_int_equal(vl_ledger_note_verify(note, len, keys, nk, &text, NULL), 0);
        size_t tlen = strlen(text);
        for (size_t k = 0; k < nk; k++) {
            /* this key's signature line */
            char prefix[sizeof keys[k].name + 8]; /* em dash, space, name, space */
            snprintf(prefix, sizeof prefix, "\xe2\x80\x94 %.127s ", keys[k].name);
            const char *line = strstr(note + tlen, prefix);
            assert_non_null(line);
            const char *end = strchr(line, '\n');
            flip_all(note, len, &keys[k], 0, tlen + 1, text, &tried);
            flip_all(note, len, &keys[k], (size_t)(line - note), (size_t)(end - note) + 1, text,
                     &tried);
            if (nk == 1)
                assert_int_equal(tlen + 1 + (size_t)(end - line) + 1, len); /* all bytes covered */
        }
        free(text);
        free(note);
    }
    print_message("%d single-bit changes rejected\n", tried);
}

static char *sig_line(const vl_ledger_key_t *k, const char *text)
{
    char *note = vl_ledger_note_sign(k, text), *line;
    assert_non_null(note);
    line = strdup(note + strlen(text) + 1);
    free(note);
    return line;
}

static void test_signature_sets(void **state)
{
    (void)state;
    vl_ledger_key_t a, b, c;
    const char *text = "log.example\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n";
    char note[4096], *la, *lb, *lc, *bad;
    assert_int_equal(vl_ledger_key_generate("a.example", &a, NULL), 0);
    assert_int_equal(vl_ledger_key_generate("b.example", &b, NULL), 0);
    assert_int_equal(vl_ledger_key_generate("a.example", &c, NULL), 0); /* same name as a */
    la = sig_line(&a, text);
    lb = sig_line(&b, text);
    lc = sig_line(&c, "another text\n");
    /* extra unknown signature: still verifies, with either key */
    snprintf(note, sizeof note, "%s\n%s%s", text, la, lb);
    assert_int_equal(vl_ledger_note_verify(note, strlen(note), &a, 1, NULL, NULL), 0);
    assert_int_equal(vl_ledger_note_verify(note, strlen(note), &b, 1, NULL, NULL), 0);
    vl_ledger_key_t ab[2] = {a, b};
    assert_int_equal(vl_ledger_note_verify(note, strlen(note), ab, 2, NULL, NULL), 0);
    /* unknown keys only: rejected */
    assert_int_not_equal(vl_ledger_note_verify(note, strlen(note), &c, 1, NULL, NULL), 0);
    assert_int_not_equal(vl_ledger_note_verify(note, strlen(note), NULL, 0, NULL, NULL), 0);
    /* a known key with a bad signature rejects the note even when another
     * trusted key verifies */
    snprintf(note, sizeof note, "%s\n%s%s", text, la, lc);
    assert_int_equal(vl_ledger_note_verify(note, strlen(note), &a, 1, NULL, NULL), 0);
    vl_ledger_key_t ac[2] = {a, c};
    assert_int_not_equal(vl_ledger_note_verify(note, strlen(note), ac, 2, NULL, NULL), 0);
    /* a's id with a signature of another text */
    char *other = sig_line(&a, "other\n");
    snprintf(note, sizeof note, "%s\n%s%s", text, lb, other);
    assert_int_not_equal(vl_ledger_note_verify(note, strlen(note), ab, 2, NULL, NULL), 0);
    assert_int_equal(vl_ledger_note_verify(note, strlen(note), &b, 1, NULL, NULL), 0);
    free(other);
    /* 16 signatures accepted (15 unknown + 1), more than 100 refused */
    size_t off = (size_t)snprintf(note, sizeof note, "%s\n", text);
    for (int i = 0; i < 15; i++)
        off += (size_t)snprintf(note + off, sizeof note - off, "%s", lb);
    off += (size_t)snprintf(note + off, sizeof note - off, "%s", la);
    assert_int_equal(vl_ledger_note_verify(note, off, &a, 1, NULL, NULL), 0);
    size_t big = strlen(text) + 1 + 101 * strlen(lb) + 1;
    bad = malloc(big);
    off = (size_t)snprintf(bad, big, "%s\n", text);
    for (int i = 0; i < 101; i++)
        off += (size_t)snprintf(bad + off, big - off, "%s", la);
    assert_int_not_equal(vl_ledger_note_verify(bad, off, &a, 1, NULL, NULL), 0);
    free(bad);
    free(la);
    free(lb);
    free(lc);
}

static void test_malformed_notes(void **state)
{
    (void)state;
    vl_ledger_key_t a;
    char *good, buf[1024];
    assert_int_equal(vl_ledger_key_generate("a.example", &a, NULL), 0);
    good = vl_ledger_note_sign(&a, "one\n\ntwo\n"); /* a text with a blank line */
    assert_non_null(good);
    char *text = NULL;
    assert_int_equal(vl_ledger_note_verify(good, strlen(good), &a, 1, &text, NULL), 0);
    assert_string_equal(text, "one\n\ntwo\n");
    free(text);
    const char *sig = strstr(good, "\xe2\x80\x94");
    size_t slen = strlen(sig);
    char b64[200];
    sscanf(sig + 4 + strlen(a.name) + 1, "%199s", b64);
    const char *cases[] = {
        "%s",                                         /* missing final newline (cut below) */
        "one\n\ntwo\n%s",                             /* no blank line before the signature */
        "one\n\ntwo\n\n%s\n",                         /* empty line after the signature */
        "one\n\ntwo\r\n\n%s",                         /* control character */
        "one\n\ntwo\n\n- a.example %s\n",             /* ASCII dash */
        "one\n\ntwo\n\n\xe2\x80\x94 a.example  %s\n", /* two spaces */
        "one\n\ntwo\n\n\xe2\x80\x94 a.example\t%s\n",
        "one\n\ntwo\n\n\xe2\x80\x94  %s\n", /* empty name */
        "one\n\ntwo\n\n\xe2\x80\x94 a.example %s=\n",
        "one\n\ntwo\n\n\xe2\x80\x94 a.example AAAA%s\n",
        "one\n\ntwo\n\n\xe2\x80\x94 a.example %s \n",
        "one\n\ntwo\n\n\xe2\x80\x94 a.example AAAAAA==\n%s", /* 4 bytes: too short */
        "one\xff\n\ntwo\n\n%s",                              /* invalid UTF-8 */
        "one\xc0\xae\n\ntwo\n\n%s",                          /* overlong */
        "one\xed\xa0\x80\n\ntwo\n\n%s",                      /* surrogate */
        "\n%s",                                              /* no text? blank + sig: text "" */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int n;
        if (strstr(cases[i], "a.example"))
            n = snprintf(buf, sizeof buf, cases[i], b64);
        else
            n = snprintf(buf, sizeof buf, cases[i], sig);
        if (i == 0)
            n = snprintf(buf, sizeof buf, "%.*s", (int)(strlen(good) - 1), good);
        text = (char *)1;
        if (vl_ledger_note_verify(buf, (size_t)n, &a, 1, &text, NULL) == 0)
            fail_msg("case %zu accepted: %s", i, buf);
        assert_null(text);
    }
    (void)slen;
    assert_int_not_equal(vl_ledger_note_verify("", 0, &a, 1, NULL, NULL), 0);
    assert_int_not_equal(vl_ledger_note_verify(good, strlen(good) - 1, &a, 1, NULL, NULL), 0);
    /* an embedded NUL is a control character */
    memcpy(buf, good, strlen(good));
    buf[1] = '\0';
    assert_int_not_equal(vl_ledger_note_verify(buf, strlen(good), &a, 1, NULL, NULL), 0);
    free(good);
}

static void test_checkpoints(void **state)
{
    (void)state;
    unsigned char root[32], got[32];
    char origin[64], *t;
    uint64_t size;
    for (int i = 0; i < 32; i++)
        root[i] = (unsigned char)i;
    t = vl_ledger_checkpoint_text("vitalog.example/log", 0, root);
    assert_non_null(t);
    assert_int_equal(vl_ledger_checkpoint_parse(t, origin, sizeof origin, &size, got, NULL), 0);
    assert_int_equal(size, 0);
    assert_string_equal(origin, "vitalog.example/log");
    assert_memory_equal(got, root, 32);
    free(t);
    t = vl_ledger_checkpoint_text("o", UINT64_MAX, root);
    assert_int_equal(vl_ledger_checkpoint_parse(t, origin, sizeof origin, &size, got, NULL), 0);
    assert_true(size == UINT64_MAX);
    free(t);
    assert_null(vl_ledger_checkpoint_text("", 1, root));
    assert_null(vl_ledger_checkpoint_text("a\nb", 1, root));
    const char *r = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    char buf[256];
    /* accepted: extension lines (ignored) */
    snprintf(buf, sizeof buf, "o\n12\n%s\next one\next two\n", r);
    assert_int_equal(vl_ledger_checkpoint_parse(buf, origin, sizeof origin, &size, got, NULL), 0);
    assert_int_equal(size, 12);
    static const char *const bad[] = {
        "o\n012\n%s\n",
        "o\n-1\n%s\n",
        "o\n+1\n%s\n",
        "o\n1 \n%s\n",
        "o\n\n%s\n",
        "\n1\n%s\n",
        "o\n1\n%s",
        "o\n1\n%s=\n",
        "o\n1\n%s\n\n",
        "o\n1\n%s\nx",
        "o\n18446744073709551616\n%s\n",
        "o\n1\nAAAA\n%s\n",
        "o\n0x1\n%s\n",
        "o\t\n1\n%s\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(buf, sizeof buf, bad[i], r);
        if (vl_ledger_checkpoint_parse(buf, origin, sizeof origin, &size, got, NULL) == 0)
            fail_msg("accepted: %s", buf);
    }
    /* root not 32 bytes; non-canonical trailing bits */
    assert_int_not_equal(
        vl_ledger_checkpoint_parse("o\n1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\n", origin,
                                   sizeof origin, &size, got, NULL),
        0);
    assert_int_not_equal(
        vl_ledger_checkpoint_parse("o\n1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=\n", origin,
                                   sizeof origin, &size, got, NULL),
        0);
    /* origin too long for the buffer */
    snprintf(buf, sizeof buf, "origin-longer-than-eight\n1\n%s\n", r);
    assert_int_not_equal(vl_ledger_checkpoint_parse(buf, origin, 8, &size, got, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_verify),  cmocka_unit_test(test_spec_example_key),
        cmocka_unit_test(test_go_signer_key),   cmocka_unit_test(test_key_round_trip),
        cmocka_unit_test(test_flip_every_byte), cmocka_unit_test(test_signature_sets),
        cmocka_unit_test(test_malformed_notes), cmocka_unit_test(test_checkpoints),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
