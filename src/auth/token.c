/*
 * vitalog — auth/token.c: roles and opaque bearer tokens.
 *
 * A token is "vl1_" followed by 32 random bytes (libsodium) in unpadded
 * base64url: 43 characters, 256 bits. It is shown once, when issued. The
 * store keeps only BLAKE2b-256(token) keyed with the 32-byte secret in
 * DIR/token.key (0600), so neither the database nor a backup of it lets
 * anyone check a guessed token, and a lookup by hash leaks no timing an
 * attacker can steer (the key randomizes the hash). The identified row's
 * hash is compared again in constant time (sodium_memcmp).
 *
 * Token writes are store units: the server's token API and `vitalog token`
 * running beside the server serialize on the database like any writes, and
 * each request looks its token up in the committed state, so a revoke is
 * in force from the next request on.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "vitalog/auth.h"

static const char *const role_names[] = {
    [VL_ROLE_ANONYMOUS] = NULL,  [VL_ROLE_CLINIC] = "clinic",   [VL_ROLE_PATIENT] = "patient",
    [VL_ROLE_DEVICE] = "device", [VL_ROLE_AUDITOR] = "auditor", [VL_ROLE_ADMIN] = "admin",
};

const char *vl_auth_role_name(vl_role_t role)
{
    return (unsigned)role < sizeof role_names / sizeof role_names[0] ? role_names[role] : NULL;
}

int vl_auth_role_parse(const char *name, vl_role_t *out)
{
    for (size_t i = 0; name && i < sizeof role_names / sizeof role_names[0]; i++)
        if (role_names[i] && !strcmp(role_names[i], name)) {
            *out = (vl_role_t)i;
            return 0;
        }
    return -1;
}

/* A FHIR id: 1-64 of [A-Za-z0-9.-]. */
static int fhir_id(const char *s)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-");
    return n >= 1 && n <= 64 && !s[n] && strcmp(s, ".") && strcmp(s, "..");
}

/* "Type/<FHIR id>" with Type one of `types`. */
static int is_reference_to(const char *s, const char *const *types)
{
    for (; *types; types++) {
        size_t n = strlen(*types);
        if (!strncmp(s, *types, n) && s[n] == '/' && fhir_id(s + n + 1))
            return 1;
    }
    return 0;
}

static int printable(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e || n >= max)
            return 0;
    return n > 0;
}

int vl_auth_subject_check(vl_role_t role, const char *subject, vl_error_t *err)
{
    static const char *const patient[] = {"Patient", NULL};
    static const char *const clinic[] = {"Organization", "Practitioner", NULL};
    if (!subject)
        subject = "";
    switch (role) {
    case VL_ROLE_PATIENT:
    case VL_ROLE_DEVICE:
        if (is_reference_to(subject, patient))
            return 0;
        return vl_error_set(err, 400, "invalid", NULL,
                            "a %s token's subject is the Patient it acts for: Patient/<id>",
                            vl_auth_role_name(role));
    case VL_ROLE_CLINIC:
        if (is_reference_to(subject, clinic))
            return 0;
        return vl_error_set(err, 400, "invalid", NULL,
                            "a clinic token's subject is Organization/<id> or Practitioner/<id>");
    case VL_ROLE_ADMIN:
    case VL_ROLE_AUDITOR:
        if (printable(subject, 127))
            return 0;
        return vl_error_set(err, 400, "invalid", NULL,
                            "the subject must be 1-127 printable ASCII characters");
    default: return vl_error_set(err, 400, "invalid", NULL, "unknown role");
    }
}

/* ------------------------------------------------------------------------
 * The hashing key
 * ---------------------------------------------------------------------- */

static int read_key(const char *path, unsigned char key[32], vl_error_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    if (fd < 0)
        return -1;
    n = read(fd, key, 32);
    close(fd);
    if (n != 32)
        return vl_error_set(err, 500, "exception", NULL, "%s is not a 32-byte token key", path);
    return 0;
}

int vl_auth_token_key_load(const char *dir, unsigned char key[32], vl_error_t *err)
{
    return vl_auth_key_file_load(dir, VL_TOKEN_KEY_FILE, key, err);
}

int vl_auth_key_file_load(const char *dir, const char *name, unsigned char key[32], vl_error_t *err)
{
    char path[4096];
    int fd;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (read_key(path, key, err) == 0)
        return 0;
    if (err->status)
        return -1;
    if (errno != ENOENT)
        return vl_error_set(err, 500, "exception", NULL, "cannot read %s: %s", path,
                            strerror(errno));
    /* first use: create it; another process may win the race, then read its key */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST && read_key(path, key, err) == 0)
            return 0;
        return err->status ? -1
                           : vl_error_set(err, 500, "exception", NULL, "cannot create %s: %s", path,
                                          strerror(errno));
    }
    randombytes_buf(key, 32);
    if (write(fd, key, 32) != 32 || fsync(fd) < 0) {
        int e = errno;
        close(fd);
        unlink(path);
        sodium_memzero(key, 32);
        return vl_error_set(err, 500, "exception", NULL, "cannot write %s: %s", path, strerror(e));
    }
    close(fd);
    return 0;
}

void vl_auth_token_hash(const unsigned char key[32], const char *token, size_t len,
                        unsigned char out[VL_TOKEN_HASH_LEN])
{
    crypto_generichash(out, VL_TOKEN_HASH_LEN, (const unsigned char *)token, len, key, 32);
}

/* ------------------------------------------------------------------------
 * Issuing and revoking
 * ---------------------------------------------------------------------- */

typedef struct token_unit {
    const vl_token_row_t *add; /* or */
    const char *revoke_id;
    int only_if_none; /* bootstrap: add only when no token exists */
    int added;
    vl_store_err_t err;
} token_unit_t;

static int apply_token(vl_store_txn_t *txn, void *arg)
{
    token_unit_t *u = arg;
    if (u->revoke_id)
        return vl_store_txn_token_revoke(txn, u->revoke_id, vl_store_txn_time(txn), &u->err);
    if (u->only_if_none) {
        int64_t n;
        if (vl_store_txn_token_count(txn, &n, &u->err) < 0)
            return -1;
        if (n > 0)
            return 0;
    }
    if (vl_store_txn_token_add(txn, u->add, &u->err) < 0)
        return -1;
    u->added = 1;
    return 0;
}

/* Runs a token unit; 0, or -1 with the store's reason mapped to a status. */
static int run_token_unit(vl_store_t *store, token_unit_t *tu, vl_error_t *err)
{
    vl_store_unit_t unit;
    memset(&unit, 0, sizeof unit);
    unit.apply = apply_token;
    unit.arg = tu;
    if (vl_store_run(store, &unit) == 0)
        return 0;
    switch (tu->err.kind != VL_STORE_OK ? tu->err.kind : unit.err.kind) {
    case VL_STORE_NOT_FOUND:
        return vl_error_set(err, 404, "not-found", NULL, "%s", tu->err.message);
    case VL_STORE_CONFLICT: return vl_error_set(err, 409, "conflict", NULL, "%s", tu->err.message);
    default:
        return vl_error_set(err, 503, "transient", NULL, "the token store failed: %s",
                            tu->err.kind != VL_STORE_OK ? tu->err.message : unit.err.message);
    }
}

static int make_row(const unsigned char key[32], const vl_token_request_t *req,
                    char secret[VL_TOKEN_TEXT_LEN], vl_token_row_t *row, vl_error_t *err)
{
    unsigned char raw[32], id[8];
    const char *role = vl_auth_role_name(req->role);
    memset(row, 0, sizeof *row);
    if (!role)
        return vl_error_set(err, 400, "invalid", NULL,
                            "role must be admin, clinic, patient, device or auditor");
    if (vl_auth_subject_check(req->role, req->subject, err) < 0)
        return -1;
    if (req->organization && req->organization[0]) {
        static const char *const org[] = {"Organization", NULL};
        if (req->role != VL_ROLE_CLINIC || strncmp(req->subject, "Practitioner/", 13) != 0)
            return vl_error_set(err, 400, "invalid", NULL,
                                "an organization is given only for a clinic token of a "
                                "Practitioner");
        if (!is_reference_to(req->organization, org))
            return vl_error_set(err, 400, "invalid", NULL,
                                "the organization is a reference Organization/<id>");
    }
    if (req->label && req->label[0] && !printable(req->label, 127))
        return vl_error_set(err, 400, "invalid", NULL,
                            "a label is at most 127 printable ASCII characters");
    if (req->expires_us < 0)
        return vl_error_set(err, 400, "invalid", NULL, "the expiry is in the past");
    randombytes_buf(raw, sizeof raw);
    memcpy(secret, VL_TOKEN_PREFIX, sizeof VL_TOKEN_PREFIX - 1);
    sodium_bin2base64(secret + sizeof VL_TOKEN_PREFIX - 1,
                      VL_TOKEN_TEXT_LEN - (sizeof VL_TOKEN_PREFIX - 1), raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    randombytes_buf(id, sizeof id);
    sodium_bin2hex(row->id, sizeof row->id, id, sizeof id);
    vl_auth_token_hash(key, secret, strlen(secret), row->hash);
    snprintf(row->role, sizeof row->role, "%s", role);
    snprintf(row->subject, sizeof row->subject, "%s", req->subject);
    snprintf(row->label, sizeof row->label, "%s", req->label ? req->label : "");
    snprintf(row->organization, sizeof row->organization, "%s",
             req->organization ? req->organization : "");
    row->created_us = vl_time_now_us();
    row->expires_us = req->expires_us;
    return 0;
}

int vl_auth_token_issue(vl_store_t *store, const unsigned char key[32],
                        const vl_token_request_t *req, char secret[VL_TOKEN_TEXT_LEN],
                        vl_token_row_t *row, vl_error_t *err)
{
    token_unit_t tu = {row, NULL, 0, 0, VL_STORE_ERR_INIT};
    if (make_row(key, req, secret, row, err) < 0)
        return -1;
    if (req->expires_us && req->expires_us <= row->created_us) {
        sodium_memzero(secret, VL_TOKEN_TEXT_LEN);
        return vl_error_set(err, 400, "invalid", NULL, "the expiry is in the past");
    }
    if (run_token_unit(store, &tu, err) < 0) {
        sodium_memzero(secret, VL_TOKEN_TEXT_LEN);
        return -1;
    }
    return 0;
}

int vl_auth_token_revoke(vl_store_t *store, const char *id, vl_error_t *err)
{
    token_unit_t tu = {NULL, id, 0, 0, VL_STORE_ERR_INIT};
    return run_token_unit(store, &tu, err);
}

int vl_auth_bootstrap(vl_store_t *store, const unsigned char key[32], const char *dir,
                      vl_error_t *err)
{
    vl_token_request_t req = {VL_ROLE_ADMIN, "bootstrap-admin", NULL, "bootstrap", 0};
    char secret[VL_TOKEN_TEXT_LEN], path[4096], tmp[4160], line[VL_TOKEN_TEXT_LEN + 1];
    vl_token_row_t row;
    token_unit_t tu = {&row, NULL, 1, 0, VL_STORE_ERR_INIT};
    int fd, rc = -1;
    size_t len;
    if (make_row(key, &req, secret, &row, err) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/admin.token", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    /* the file first (not yet under its name), then the row, then the
     * rename: a crash leaves either no token or a token and its file */
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        vl_error_set(err, 500, "exception", NULL, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    len = (size_t)snprintf(line, sizeof line, "%s\n", secret);
    if (write(fd, line, len) != (ssize_t)len || fsync(fd) < 0) {
        vl_error_set(err, 500, "exception", NULL, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        goto out;
    }
    close(fd);
    if (run_token_unit(store, &tu, err) < 0)
        goto out;
    if (!tu.added) {
        rc = 0;
        goto out;
    }
    if (rename(tmp, path) < 0) {
        vl_error_set(err, 500, "exception", NULL, "cannot rename %s: %s", tmp, strerror(errno));
        goto out;
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    rc = 1;
out:
    if (rc != 1)
        unlink(tmp);
    sodium_memzero(secret, sizeof secret);
    sodium_memzero(line, sizeof line);
    return rc;
}

json_t *vl_auth_token_json(const vl_token_row_t *row, int64_t now_us)
{
    char created[32], expires[32], revoked[32];
    const char *status = row->revoked_us                                ? "revoked"
                         : row->expires_us && row->expires_us <= now_us ? "expired"
                                                                        : "active";
    json_t *o;
    vl_time_format(row->created_us, created);
    o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "id", row->id, "role", row->role, "subject",
                  row->subject, "label", row->label, "created", created, "status", status);
    if (o && row->organization[0])
        json_object_set_new(o, "organization", json_string(row->organization));
    if (o && row->expires_us) {
        vl_time_format(row->expires_us, expires);
        json_object_set_new(o, "expires", json_string(expires));
    }
    if (o && row->revoked_us) {
        vl_time_format(row->revoked_us, revoked);
        json_object_set_new(o, "revoked", json_string(revoked));
    }
    return o;
}
