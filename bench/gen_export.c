/*
 * Writes a synthetic ledger export of N entries, in exactly the format the
 * server produces (docs/ledger.md section 6), for measuring `vitalog
 * verify`: entries chained and hashed as the server does, a signed
 * checkpoint every 1000 entries and one at the end.
 *
 * usage: gen_export N OUT.ndjson OUT.vkey
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "vitalog/ledger.h"

static int write_checkpoint(FILE *f, const vl_ledger_key_t *k, const vl_ledger_range_t *r)
{
    unsigned char root[VL_HASH_LEN];
    char *text, *note, *line;
    json_t *s;
    vl_ledger_range_root(r, root);
    text = vl_ledger_checkpoint_text(k->name, r->size, root);
    note = text ? vl_ledger_note_sign(k, text) : NULL;
    s = note ? json_string(note) : NULL;
    line = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
    if (line)
        fprintf(f, "{\"checkpoint\":%s}\n", line);
    free(text);
    free(note);
    free(line);
    json_decref(s);
    return line ? 0 : -1;
}

int main(int argc, char **argv)
{
    vl_ledger_key_t key;
    vl_ledger_range_t range;
    vl_error_t err = VL_ERROR_INIT;
    unsigned char prev[VL_HASH_LEN] = {0}, salt[32];
    char vkey[512];
    uint64_t n;
    FILE *out, *kf;
    if (argc != 4 || sodium_init() < 0) {
        fprintf(stderr, "usage: gen_export N OUT.ndjson OUT.vkey\n");
        return 2;
    }
    n = strtoull(argv[1], NULL, 10);
    if (vl_ledger_key_generate("vitalog.local/bench", &key, &err) < 0 ||
        vl_ledger_key_vkey(&key, vkey, sizeof vkey) < 0) {
        fprintf(stderr, "gen_export: key: %s\n", vl_error_message(&err));
        return 1;
    }
    out = fopen(argv[2], "w");
    kf = fopen(argv[3], "w");
    if (!out || !kf)
        return 1;
    fprintf(kf, "%s\n", vkey);
    fclose(kf);
    vl_ledger_range_init(&range);
    randombytes_buf(salt, sizeof salt);
    for (uint64_t i = 0; i < n; i++) {
        vl_ledger_entry_t e;
        char body[160];
        size_t len;
        char *line;
        memset(&e, 0, sizeof e);
        e.index = i;
        e.time_us = 1795000000000000LL + (int64_t)i * 1000;
        e.kind = i % 10 == 9 ? VL_ENTRY_UPDATE : VL_ENTRY_CREATE;
        snprintf(e.ref, sizeof e.ref, "Observation/%032" PRIx64 "/_history/%d", i,
                 1 + (i % 10 == 9));
        snprintf(body, sizeof body, "{\"resourceType\":\"Observation\",\"n\":%" PRIu64 "}", i);
        vl_ledger_commitment(salt, body, strlen(body), e.commitment);
        memcpy(e.prev, prev, VL_HASH_LEN);
        line = vl_ledger_entry_format(&e, &len);
        if (!line)
            return 1;
        vl_ledger_leaf_hash(line, len, prev);
        vl_ledger_range_append(&range, prev, NULL, NULL);
        fwrite(line, 1, len, out);
        fputc('\n', out);
        free(line);
        if ((i + 1) % 1000 == 0 && write_checkpoint(out, &key, &range) < 0)
            return 1;
    }
    if (n % 1000 != 0 && write_checkpoint(out, &key, &range) < 0)
        return 1;
    return fclose(out) == 0 ? 0 : 1;
}
