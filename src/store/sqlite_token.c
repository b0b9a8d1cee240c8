/*
 * The SQLite backend's bearer-token rows (table `token`, migration 004).
 * Only rows: what a token may do is auth's business.
 */
#include <stdio.h>
#include <string.h>

#include "sqlite_internal.h"

static void copy_text(char *dst, size_t n, const unsigned char *src)
{
    snprintf(dst, n, "%s", src ? (const char *)src : "");
}

static int64_t column_time(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, i);
}

/* Columns id, role, subject, label, created, expires, revoked, organization
 * from `first`. */
static void row_to_token(sqlite3_stmt *st, int first, vl_token_row_t *t)
{
    copy_text(t->id, sizeof t->id, sqlite3_column_text(st, first));
    copy_text(t->role, sizeof t->role, sqlite3_column_text(st, first + 1));
    copy_text(t->subject, sizeof t->subject, sqlite3_column_text(st, first + 2));
    copy_text(t->label, sizeof t->label, sqlite3_column_text(st, first + 3));
    t->created_us = sqlite3_column_int64(st, first + 4);
    t->expires_us = column_time(st, first + 5);
    t->revoked_us = column_time(st, first + 6);
    copy_text(t->organization, sizeof t->organization, sqlite3_column_text(st, first + 7));
}

#define TOKEN_COLUMNS "id, role, subject, label, created, expires, revoked, organization"

int vl_sqlite_token_find(vl_bconn_t *c, const unsigned char hash[VL_TOKEN_HASH_LEN],
                         vl_token_row_t *out, vl_store_err_t *err)
{
    sqlite3_stmt *st = vl_sqlite_stmt(
        c, ST_TOKEN_FIND, "SELECT hash, " TOKEN_COLUMNS " FROM token WHERE hash = ?1", err);
    int rc;
    memset(out, 0, sizeof *out);
    if (!st)
        return -1;
    sqlite3_bind_blob(st, 1, hash, VL_TOKEN_HASH_LEN, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == VL_TOKEN_HASH_LEN) {
        memcpy(out->hash, sqlite3_column_blob(st, 0), VL_TOKEN_HASH_LEN);
        row_to_token(st, 1, out);
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return vl_store_fail(err, VL_STORE_NOT_FOUND, "no such token");
    if (rc != SQLITE_ROW)
        return vl_sqlite_error(err, c->db, "looking up a token");
    return 0;
}

int vl_sqlite_token_list(vl_bconn_t *c, vl_store_token_fn fn, void *ctx, vl_store_err_t *err)
{
    sqlite3_stmt *st;
    int rc, stop = 0;
    if (sqlite3_prepare_v2(c->db, "SELECT " TOKEN_COLUMNS " FROM token ORDER BY created, id", -1,
                           &st, NULL) != SQLITE_OK)
        return vl_sqlite_error(err, c->db, "listing tokens");
    while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        vl_token_row_t t;
        memset(&t, 0, sizeof t);
        row_to_token(st, 0, &t);
        stop = fn(ctx, &t);
    }
    if (!stop && rc != SQLITE_DONE) {
        vl_sqlite_error(err, c->db, "listing tokens");
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return stop;
}

int vl_sqlite_token_add(vl_backend_t *b, const vl_token_row_t *t, vl_store_err_t *err)
{
    sqlite3_stmt *st = vl_sqlite_stmt(&b->writer, ST_TOKEN_ADD,
                                      "INSERT INTO token (hash, " TOKEN_COLUMNS
                                      ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, ?8)",
                                      err);
    int rc;
    if (!st)
        return -1;
    sqlite3_bind_blob(st, 1, t->hash, VL_TOKEN_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, t->role, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, t->subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, t->label, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, t->created_us);
    if (t->expires_us)
        sqlite3_bind_int64(st, 7, t->expires_us);
    else
        sqlite3_bind_null(st, 7);
    if (t->organization[0])
        sqlite3_bind_text(st, 8, t->organization, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 8);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return vl_store_fail(err, VL_STORE_CONFLICT, "a token with this id exists");
    if (rc != SQLITE_DONE)
        return vl_sqlite_error(err, b->writer.db, "adding a token");
    return 0;
}

int vl_sqlite_token_revoke(vl_backend_t *b, const char *id, int64_t time_us, vl_store_err_t *err)
{
    sqlite3_stmt *st =
        vl_sqlite_stmt(&b->writer, ST_TOKEN_REVOKE,
                       "UPDATE token SET revoked = coalesce(revoked, ?2) WHERE id = ?1", err);
    int rc;
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, time_us);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return vl_sqlite_error(err, b->writer.db, "revoking a token");
    if (sqlite3_changes(b->writer.db) == 0)
        return vl_store_fail(err, VL_STORE_NOT_FOUND, "no token has the id '%.40s'", id);
    return 0;
}
