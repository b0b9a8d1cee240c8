/*
 * Interned names of the SQLite backend: search parameters ("<type>.<param>"
 * -> pid, table search_param) and code systems (URI -> sid, table
 * code_system). Index rows carry the small integers, not the text: a row
 * of ix_token is then a few bytes of key instead of two URIs.
 *
 * DESIGN NOTES
 *
 * 1. A name's id never changes once committed, so every connection keeps
 *    a cache (vl_intern_t) and asks the table only on a miss. A reader's
 *    miss that the table does not know either means no row uses the name:
 *    the lookup answers -1 (which matches no row) and caches nothing.
 *
 * 2. Only the writer assigns ids: next = largest id + 1, counted in
 *    memory. A new name's row is inserted inside the savepoint of the unit
 *    that needs it, so a rolled-back unit could take the row away while the
 *    cache still holds the id. Entries made in the open transaction are
 *    therefore marked uncommitted; using one again inserts its row again
 *    (INSERT OR IGNORE with the same id) in the current savepoint, so every
 *    unit that writes rows with an id also holds that id's row. After the
 *    commit each is kept, as committed, only if its row is in the table
 *    (the unit that made it may have been rolled back and no other used
 *    it); after a rollback of the whole transaction they are dropped. A
 *    name the writer finds in the table during a transaction counts as
 *    made in it (it may be that transaction's own row).
 */
#include <stdlib.h>
#include <string.h>

#include "sqlite_internal.h"

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

void vl_intern_free(vl_intern_t *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i].key);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

static struct vl_intern_slot *slot_of(vl_intern_t *t, const char *key)
{
    size_t i = (size_t)hash(key) & (t->cap - 1);
    while (t->slots[i].key && strcmp(t->slots[i].key, key) != 0)
        i = (i + 1) & (t->cap - 1);
    return &t->slots[i];
}

static int grow(vl_intern_t *t)
{
    vl_intern_t bigger = {0};
    bigger.cap = t->cap ? t->cap * 2 : 64;
    bigger.slots = calloc(bigger.cap, sizeof *bigger.slots);
    if (!bigger.slots)
        return -1;
    bigger.next = t->next;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].key) {
            *slot_of(&bigger, t->slots[i].key) = t->slots[i];
            bigger.n++;
        }
    free(t->slots);
    *t = bigger;
    return 0;
}

static int put(vl_intern_t *t, const char *key, int64_t id, int committed)
{
    struct vl_intern_slot *s;
    if ((t->n + 1) * 4 > t->cap * 3 && grow(t) < 0)
        return -1;
    s = slot_of(t, key);
    if (!s->key) {
        if (!(s->key = strdup(key)))
            return -1;
        t->n++;
    }
    s->id = id;
    s->committed = committed;
    return 0;
}

static const struct {
    const char *select, *insert, *max;
} sql[] = {
    {"SELECT pid FROM search_param WHERE name = ?1",
     "INSERT OR IGNORE INTO search_param (pid, name) VALUES (?2, ?1)",
     "SELECT coalesce(max(pid), 0) FROM search_param"},
    {"SELECT sid FROM code_system WHERE uri = ?1",
     "INSERT OR IGNORE INTO code_system (sid, uri) VALUES (?2, ?1)",
     "SELECT coalesce(max(sid), 0) FROM code_system"},
};

/* Runs q (?1 the name, ?2 an id) once: the id of its row, or -1 when it
 * has none (an INSERT); *rc SQLITE_OK or the error. */
static int64_t run_id(sqlite3 *db, const char *q, const char *key, int64_t id, int *rc)
{
    sqlite3_stmt *st;
    int64_t out = -1;
    *rc = sqlite3_prepare_v3(db, q, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (*rc != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, id);
    *rc = sqlite3_step(st);
    if (*rc == SQLITE_ROW) {
        out = sqlite3_column_int64(st, 0);
        *rc = SQLITE_OK;
    } else if (*rc == SQLITE_DONE) {
        *rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return out;
}

void vl_intern_commit(vl_bconn_t *c)
{
    /* an entry made in the transaction that just committed is kept only
     * if its row is there now: the unit that inserted it may have been
     * rolled back, and no later unit used it again */
    for (int k = 0; k < VL_INTERN_KINDS; k++) {
        vl_intern_t *t = &c->intern[k];
        for (size_t i = 0; i < t->cap; i++) {
            struct vl_intern_slot *s = &t->slots[i];
            int rc;
            if (!s->key || s->committed)
                continue;
            if (run_id(c->db, sql[k].select, s->key, 0, &rc) == s->id && rc == SQLITE_OK)
                s->committed = 1;
        }
        vl_intern_rollback(t); /* keeps the committed entries only */
    }
}

void vl_intern_rollback(vl_intern_t *t)
{
    vl_intern_t kept = {0};
    kept.next = t->next;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].key && t->slots[i].committed)
            put(&kept, t->slots[i].key, t->slots[i].id, 1);
    vl_intern_free(t);
    *t = kept;
}

int vl_intern_id(vl_bconn_t *c, int which, const char *key, int create, int64_t *out,
                 vl_store_err_t *err)
{
    vl_intern_t *t = &c->intern[which];
    struct vl_intern_slot *s = t->cap ? slot_of(t, key) : NULL;
    int rc;
    int64_t id;
    *out = -1;
    if (s && s->key) {
        if (!s->committed) { /* its row may have left with a rolled-back unit */
            run_id(c->db, sql[which].insert, key, s->id, &rc);
            if (rc != SQLITE_OK)
                return vl_sqlite_error(err, c->db, "interning a name");
        }
        *out = s->id;
        return 0;
    }
    id = run_id(c->db, sql[which].select, key, 0, &rc);
    if (rc != SQLITE_OK)
        return vl_sqlite_error(err, c->db, "looking up a name");
    if (id >= 0) {
        /* the writer may see its own open transaction's rows: committed
         * once vl_intern_commit found them after the commit */
        int committed = c != &c->b->writer || sqlite3_get_autocommit(c->db);
        *out = id;
        return put(t, key, id, committed) < 0 ? vl_store_fail(err, VL_STORE_FAILED, "out of memory")
                                              : 0;
    }
    if (!create)
        return 0;
    if (t->next == 0) {
        t->next = run_id(c->db, sql[which].max, key, 0, &rc) + 1;
        if (rc != SQLITE_OK)
            return vl_sqlite_error(err, c->db, "looking up a name");
    }
    id = t->next;
    run_id(c->db, sql[which].insert, key, id, &rc);
    if (rc != SQLITE_OK)
        return vl_sqlite_error(err, c->db, "interning a name");
    if (put(t, key, id, 0) < 0)
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
    t->next++;
    *out = id;
    return 0;
}
