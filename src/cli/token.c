/*
 * vitalog — cli/token.c: `vitalog token create|list|revoke --data DIR`.
 *
 * Works on the data directory's database directly, whether or not a
 * server is running on it: token writes are store units like the server's
 * own (SQLite serializes the two processes), and the server looks every
 * request's token up in the committed state, so a token created or
 * revoked here counts from the server's next request on.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "vitalog/auth.h"
#include "vitalog/cli.h"

static const char usage_token[] =
    "usage: vitalog token create --data DIR --role ROLE --subject REF [--expires DURATION]\n"
    "                            [--label TEXT] [--organization REF]\n"
    "       vitalog token list   --data DIR [--json]\n"
    "       vitalog token revoke --data DIR ID\n"
    "\n"
    "Bearer tokens for the server in DIR (it may be running: a new or revoked\n"
    "token counts from its next request on).\n"
    "\n"
    "create   issues a token and prints it on stdout, once: it is stored only as a\n"
    "         keyed hash (the key is DIR/token.key) and cannot be shown again. Its\n"
    "         id (for list and revoke) goes to stderr.\n"
    "  --role ROLE        admin, clinic, patient, device or auditor\n"
    "  --subject REF      who the token speaks for: patient and device tokens\n"
    "                     Patient/<id> (a device acts for that patient), clinic\n"
    "                     tokens Organization/<id> or Practitioner/<id>, admin and\n"
    "                     auditor tokens any name (1-127 printable characters)\n"
    "  --expires DURATION the token stops working after DURATION: a number with a\n"
    "                     unit s, m, h, d or w (90d, 12h); default: never\n"
    "  --label TEXT       a note shown by list (at most 127 printable characters)\n"
    "  --organization REF for a clinic token of a Practitioner: their\n"
    "                     Organization/<id>; Consents naming it apply to them too\n"
    "list     prints every token ever issued, revoked ones included: id, role,\n"
    "         subject, status (active, expired, revoked), created, expires, label;\n"
    "         --json prints one JSON object per line instead\n"
    "revoke   revokes the token with this id (exit 1 if there is none)\n"
    "\n"
    "Exit status: 0 done, 1 failed, 2 bad usage.\n";

/* "90d" -> microseconds; -1 when malformed or over 100 years. */
static int64_t parse_duration(const char *s)
{
    char *end;
    unsigned long long n = strtoull(s, &end, 10);
    int64_t unit;
    if (end == s || *s == '-' || *s == '+' || !end[0] || end[1])
        return -1;
    switch (*end) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    case 'w': unit = 7 * 86400; break;
    default: return -1;
    }
    if (n == 0 || n > 100ull * 366 * 86400 / (unsigned long long)unit)
        return -1;
    return (int64_t)n * unit * 1000000;
}

/* Opens the store of an existing data directory, and its token key. */
static int open_dir(const char *cmd, const char *data, vl_store_t **store, unsigned char key[32])
{
    vl_store_options_t opts;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_error_t err = VL_ERROR_INIT;
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/vitalog.db", data);
    if (stat(path, &st) < 0) {
        fprintf(stderr, "%s: no vitalog database in %s (start `vitalog serve --data %s` once)\n",
                cmd, data, data);
        return -1;
    }
    if (vl_auth_token_key_load(data, key, &err) < 0) {
        fprintf(stderr, "%s: %s\n", cmd, vl_error_message(&err));
        vl_error_clear(&err);
        return -1;
    }
    memset(&opts, 0, sizeof opts);
    if (vl_store_open(data, &opts, store, &serr) < 0) {
        fprintf(stderr, "%s: cannot open the store in %s: %s\n", cmd, data, serr.message);
        sodium_memzero(key, 32);
        return -1;
    }
    return 0;
}

static int print_row(void *ctx, const vl_token_row_t *t)
{
    int as_json = *(int *)ctx;
    json_t *j = vl_auth_token_json(t, vl_time_now_us());
    if (!j)
        return -1;
    if (as_json) {
        char *line = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (line)
            printf("%s\n", line);
        free(line);
    } else {
        const char *exp = json_string_value(json_object_get(j, "expires"));
        printf("%-16s  %-7s  %-8s  %-24s  %-24s  %-30s  %s\n", t->id, t->role,
               json_string_value(json_object_get(j, "status")),
               json_string_value(json_object_get(j, "created")), exp ? exp : "-", t->subject,
               t->label);
    }
    json_decref(j);
    return 0;
}

int vl_cli_token(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},
        {"role", required_argument, NULL, 'r'},
        {"subject", required_argument, NULL, 's'},
        {"expires", required_argument, NULL, 'e'},
        {"label", required_argument, NULL, 'l'},
        {"json", no_argument, NULL, 'j'},
        {"organization", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *data = NULL, *role = NULL, *subject = NULL, *label = NULL, *expires = NULL,
               *organization = NULL;
    const char *sub;
    char cmd[32];
    unsigned char key[32];
    vl_store_t *store = NULL;
    vl_error_t err = VL_ERROR_INIT;
    int opt, as_json = 0, rc = 1;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage_token, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    sub = argv[1];
    if (strcmp(sub, "create") && strcmp(sub, "list") && strcmp(sub, "revoke")) {
        fprintf(stderr, "vitalog token: unknown subcommand '%s'\n%s", sub, usage_token);
        return 2;
    }
    snprintf(cmd, sizeof cmd, "vitalog token %s", sub);
    optind = 1;
    while ((opt = getopt_long(argc - 1, argv + 1, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd': data = optarg; break;
        case 'r': role = optarg; break;
        case 's': subject = optarg; break;
        case 'e': expires = optarg; break;
        case 'l': label = optarg; break;
        case 'o': organization = optarg; break;
        case 'j': as_json = 1; break;
        case 'h': fputs(usage_token, stdout); return 0;
        default: fputs(usage_token, stderr); return 2;
        }
    }
    if (!data) {
        fprintf(stderr, "%s: --data DIR is required\n", cmd);
        return 2;
    }
    if (!strcmp(sub, "create")) {
        vl_token_request_t req;
        vl_token_row_t row;
        char secret[VL_TOKEN_TEXT_LEN];
        int64_t d = 0;
        memset(&req, 0, sizeof req);
        if (optind + 1 != argc || !role || !subject || vl_auth_role_parse(role, &req.role) < 0) {
            fprintf(stderr,
                    "%s: needs --role admin|clinic|patient|device|auditor and "
                    "--subject REF, and no other argument\n",
                    cmd);
            return 2;
        }
        if (expires && (d = parse_duration(expires)) < 0) {
            fprintf(stderr, "%s: --expires takes a duration such as 90d, 12h or 30m\n", cmd);
            return 2;
        }
        if (vl_auth_subject_check(req.role, subject, &err) < 0) {
            fprintf(stderr, "%s: %s\n", cmd, vl_error_message(&err));
            vl_error_clear(&err);
            return 2;
        }
        req.subject = subject;
        req.organization = organization;
        req.label = label;
        req.expires_us = d ? vl_time_now_us() + d : 0;
        if (open_dir(cmd, data, &store, key) < 0)
            return 1;
        if (vl_auth_token_issue(store, key, &req, secret, &row, &err) < 0) {
            fprintf(stderr, "%s: %s\n", cmd, vl_error_message(&err));
        } else {
            printf("%s\n", secret);
            fflush(stdout);
            fprintf(stderr, "token %s (%s %s) created; it is shown only this once\n", row.id,
                    row.role, row.subject);
            rc = 0;
        }
        sodium_memzero(secret, sizeof secret);
    } else if (!strcmp(sub, "list")) {
        vl_store_err_t serr = VL_STORE_ERR_INIT;
        if (optind + 1 != argc) {
            fprintf(stderr, "%s: takes no argument\n", cmd);
            return 2;
        }
        if (open_dir(cmd, data, &store, key) < 0)
            return 1;
        if (!as_json)
            printf("%-16s  %-7s  %-8s  %-24s  %-24s  %-30s  %s\n", "ID", "ROLE", "STATUS",
                   "CREATED", "EXPIRES", "SUBJECT", "LABEL");
        if (vl_store_token_list(store, print_row, &as_json, &serr) != 0)
            fprintf(stderr, "%s: %s\n", cmd, serr.message[0] ? serr.message : "failed");
        else
            rc = 0;
    } else {
        if (optind + 2 != argc) {
            fprintf(stderr, "%s: takes the token's id\n", cmd);
            return 2;
        }
        if (open_dir(cmd, data, &store, key) < 0)
            return 1;
        if (vl_auth_token_revoke(store, argv[optind + 1], &err) < 0) {
            fprintf(stderr, "%s: %s\n", cmd, vl_error_message(&err));
        } else {
            fprintf(stderr, "token %s revoked\n", argv[optind + 1]);
            rc = 0;
        }
    }
    vl_error_clear(&err);
    vl_store_close(store);
    sodium_memzero(key, sizeof key);
    return rc;
}
