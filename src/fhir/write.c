/*
 * vitalog — fhir/write.c: one create, update or delete, as the R4 REST
 * rules define it (http.html), run inside a store unit.
 *
 * A write is prepared on the caller's thread (id of a create, index rows,
 * compartments, the prerendered body) and run on the store's writer thread
 * in two steps that see the unit's transaction:
 *
 *   resolve   conditional writes only: the search decides the target
 *               create + If-None-Exist  0 matches: create; 1: nothing is
 *                                       written, the match is the answer
 *                                       (200); more: 412
 *               update by search        0: create (with the body's id if
 *                                       it has one, 409 if that id is taken);
 *                                       1: update it (a body id that
 *                                       differs: 400); more: 412
 *               delete by search        0: nothing (204); 1: delete it;
 *                                       more: 412
 *   execute   the state check (If-Match: 412; create of an existing id:
 *             409; delete of an unknown id: 404, of a deleted one:
 *             nothing, 204), the final body (id and meta spliced in) and
 *             the store put, which anchors the version in the ledger.
 *
 * Conditions run on the writer thread, so they are bounded: at most
 * VL_CONDITION_MAX_VALUES search values (the same query shape in a normal
 * search may have the search limit of 4096).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_internal.h"

#define VL_CONDITION_MAX_VALUES 64

void vl_write_init(vl_write_t *w, vl_wop_t op, const vl_fhir_type_t *type, json_t *res)
{
    memset(w, 0, sizeof *w);
    w->op = op;
    w->type = type;
    w->resource = res;
    vl_index_init(&w->index);
}

void vl_write_release(vl_write_t *w)
{
    json_decref(w->resource);
    w->resource = NULL;
    vl_index_free(&w->index);
    vl_render_free(&w->parts);
    if (w->conditional)
        vl_search_free(&w->cond);
    w->conditional = 0;
    free(w->body);
    w->body = NULL;
}

int vl_write_condition(vl_write_t *w, const vl_params_t *p, vl_error_t *err)
{
    size_t values = 0;
    if (!p->n)
        return vl_error_set(err, 400, "invalid", NULL, "a conditional %s needs search parameters",
                            w->op == VL_W_CREATE   ? "create"
                            : w->op == VL_W_UPDATE ? "update"
                                                   : "delete");
    if (vl_fhir_search_parse(w->type, p, 0, &w->cond, err) < 0)
        return -1;
    w->conditional = 1;
    if (!w->cond.query.n && !w->cond.query.id) /* e.g. only _format: it would match all */
        return vl_error_set(err, 400, "invalid", NULL,
                            "a conditional %s needs search criteria, not only result parameters",
                            w->op == VL_W_CREATE   ? "create"
                            : w->op == VL_W_UPDATE ? "update"
                                                   : "delete");
    for (size_t i = 0; i < w->cond.query.n; i++)
        values += w->cond.query.conds[i].n;
    if (values > VL_CONDITION_MAX_VALUES)
        return vl_error_set(err, 400, "too-costly", NULL,
                            "a condition may hold at most %d search values (this one has %zu)",
                            VL_CONDITION_MAX_VALUES, values);
    return 0;
}

int vl_write_condition_text(vl_write_t *w, const char *query, vl_error_t *err)
{
    vl_params_t p;
    const char *q = strchr(query, '?'); /* "Type?a=b" as well as "a=b" */
    int rc;
    if (q) {
        size_t tn = (size_t)(q - query);
        if (tn && (strlen(w->type->name) != tn || strncmp(query, w->type->name, tn) != 0))
            return vl_error_set(err, 400, "invalid", NULL,
                                "the condition '%.100s' is not a search of %s", query,
                                w->type->name);
        q++;
    } else {
        q = query;
    }
    vl_params_init(&p);
    if (vl_params_parse_form(&p, q, strlen(q)) < 0) {
        vl_params_free(&p);
        return vl_error_set(err, 400, "invalid", NULL, "the condition '%.100s' is not a search",
                            query);
    }
    rc = vl_write_condition(w, &p, err);
    vl_params_free(&p);
    return rc;
}

int vl_write_prepare(vl_write_t *w, vl_error_t *err)
{
    if (w->op == VL_W_CREATE && !w->id[0])
        vl_id_new(w->id);
    if (w->op != VL_W_DELETE) {
        if (vl_fhir_index_at(w->type, w->resource, w->fhir_base, &w->index, err) < 0)
            return -1;
        if (vl_render_prepare(w->resource, &w->parts) < 0)
            return vl_error_set(err, 500, "exception", NULL, "out of memory");
    }
    w->prepared = 1;
    return 0;
}

static int store_failed(const vl_store_err_t *serr, vl_error_t *err)
{
    return vl_fhir_store_error(serr, err);
}

int vl_write_resolve(vl_store_txn_t *txn, vl_scope_t scope, vl_write_t *w, vl_error_t *err)
{
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_records_t hits;
    vl_query_t q;
    const char *body_id;
    if (!w->conditional)
        return 0;
    q = w->cond.query;
    q.count = 2;
    q.offset = 0;
    if (vl_store_txn_search(txn, scope, &q, 0, 0, &hits, &serr) < 0)
        return store_failed(&serr, err);
    if (hits.n > 1) {
        vl_records_free(&hits);
        return vl_error_set(err, 412, "multiple-matches", NULL,
                            "the condition matches more than one %s", w->type->name);
    }
    switch (w->op) {
    case VL_W_CREATE:
        if (hits.n == 1) { /* the match is the answer */
            vl_record_t *h = &hits.items[0];
            w->noop = 1;
            w->status = 200;
            snprintf(w->id, sizeof w->id, "%s", h->id);
            w->version = h->version;
            w->time_us = h->last_updated_us;
            w->body = h->body;
            w->body_len = h->body_len;
            h->body = NULL;
        }
        break;
    case VL_W_UPDATE:
        body_id = json_string_value(json_object_get(w->resource, "id"));
        if (hits.n == 1) {
            if (body_id && strcmp(body_id, hits.items[0].id) != 0) {
                vl_error_set(err, 400, "invalid", "id",
                             "the body's id '%s' is not the id of the resource the condition "
                             "matches",
                             body_id);
                vl_records_free(&hits);
                return -1;
            }
            snprintf(w->id, sizeof w->id, "%s", hits.items[0].id);
        } else if (body_id) {
            /* no match: a create with the body's id, never an update of
             * whatever resource already has that id (execute checks) */
            snprintf(w->id, sizeof w->id, "%s", body_id);
            w->must_be_new = 1;
        } else {
            vl_id_new(w->id);
        }
        break;
    case VL_W_DELETE:
        if (hits.n == 1) {
            snprintf(w->id, sizeof w->id, "%s", hits.items[0].id);
        } else {
            w->noop = 1;
            w->status = 204;
        }
        break;
    }
    vl_records_free(&hits);
    return 0;
}

/* Whether version `version` of type/id is visible in `scope`: 1, 0, -1. */
static int visible(vl_store_txn_t *txn, vl_scope_t scope, const char *type, const char *id,
                   int64_t version, vl_error_t *err)
{
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_record_t rec;
    if (scope.flags & VL_SCOPE_ALL)
        return 1;
    if (vl_store_txn_read(txn, scope, type, id, version, &rec, &serr) < 0) {
        if (serr.kind == VL_STORE_NOT_FOUND)
            return 0;
        return store_failed(&serr, err);
    }
    vl_record_free(&rec);
    return 1;
}

/* A Consent write: the grant and revoke entries it adds, from the version
 * it replaces (read inside the transaction) and the new one. */
static int consent_entries(vl_store_txn_t *txn, vl_write_t *w, const vl_store_head_t *head,
                           vl_error_t *err)
{
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_record_t rec;
    json_t *before = NULL;
    w->n_consent = 0;
    if (head->exists && !head->deleted) {
        if (vl_store_txn_read(txn, vl_scope_everything(), w->type->name, w->id, head->version, &rec,
                              &serr) < 0)
            return store_failed(&serr, err);
        /* parsed like a request body, so numbers compare as their text */
        vl_error_t perr = VL_ERROR_INIT;
        before = rec.body ? vl_json_parse(rec.body, rec.body_len, NULL, &perr) : NULL;
        vl_error_clear(&perr);
        vl_record_free(&rec);
        if (!before)
            return vl_error_set(err, 500, "exception", NULL,
                                "the stored Consent cannot be read back");
    }
    w->n_consent =
        vl_fhir_consent_transition(before, w->op == VL_W_DELETE ? NULL : w->resource, w->consent);
    json_decref(before);
    return 0;
}

/* An if_changed update: 1 when nothing is to be written (the current
 * version is the body this write would store, or the resource is deleted),
 * 0 to write, -1. The stored body is compared byte for byte with this
 * write's rendering at the current version and time: equal bytes are equal
 * content, since every body is rendered the same way (render.c). */
static int same_content(vl_store_txn_t *txn, vl_write_t *w, const vl_store_head_t *head,
                        vl_error_t *err)
{
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_record_t rec;
    char *mine;
    size_t len;
    int same;
    if (head->deleted) {
        w->gone = 1;
    } else {
        if (vl_store_txn_read(txn, vl_scope_everything(), w->type->name, w->id, head->version, &rec,
                              &serr) < 0)
            return store_failed(&serr, err);
        mine = vl_render_body(&w->parts, w->type->name, w->id, head->version, head->last_updated_us,
                              &len);
        if (!mine) {
            vl_record_free(&rec);
            return vl_error_set(err, 500, "exception", NULL, "out of memory");
        }
        same = rec.body && len == rec.body_len && !memcmp(mine, rec.body, len);
        free(mine);
        if (!same) {
            vl_record_free(&rec);
            return 0;
        }
        w->unchanged = 1;
        free(w->body);
        w->body = rec.body;
        w->body_len = rec.body_len;
        rec.body = NULL;
        vl_record_free(&rec);
    }
    w->noop = 1;
    w->status = 200;
    w->version = head->version;
    w->time_us = head->last_updated_us;
    return 1;
}

int vl_write_execute(vl_store_txn_t *txn, vl_scope_t scope, vl_write_t *w, vl_error_t *err)
{
    int rc;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_store_head_t head;
    vl_store_put_t put;
    const char *name = w->type->name;
    if (w->noop)
        return 0;
    if (vl_store_txn_head(txn, name, w->id, &head, &serr) < 0)
        return store_failed(&serr, err);
    /* the write scope (auth.h): the version replaced must be visible in it;
     * one that is not is answered like a missing one where the answer can
     * be the same (delete: 404), else refused without saying whose it is */
    if (head.exists && (rc = visible(txn, scope, name, w->id, head.version, err)) <= 0) {
        if (rc < 0)
            return -1;
        if (w->op == VL_W_DELETE)
            return vl_error_set(err, 404, "not-found", NULL, "%s/%s is not known", name, w->id);
        return vl_error_set(err, 403, "forbidden", NULL,
                            "%s/%s is outside what this caller may write", name, w->id);
    }
    if (w->op == VL_W_CREATE && head.exists)
        return vl_error_set(err, 409, "duplicate", NULL, "%s/%s already exists", name, w->id);
    if (w->must_be_new && head.exists && !head.deleted)
        return vl_error_set(err, 409, "conflict", "id",
                            "the condition matches no %s, but %s/%s exists: its id cannot be "
                            "used for a new resource",
                            name, name, w->id);
    if (w->if_match && (!head.exists || w->if_match != head.version))
        return vl_error_set(err, 412, "conflict", NULL,
                            "If-Match names version %lld but the current version is %lld",
                            (long long)w->if_match, (long long)head.version);
    if (w->if_changed && head.exists && (rc = same_content(txn, w, &head, err)) != 0)
        return rc < 0 ? -1 : 0;
    if (w->op == VL_W_DELETE) {
        if (!head.exists)
            return vl_error_set(err, 404, "not-found", NULL, "%s/%s is not known", name, w->id);
        if (head.deleted) { /* deleting a deleted resource changes nothing */
            w->noop = 1;
            w->status = 204;
            w->version = head.version;
            w->time_us = head.last_updated_us;
            return 0;
        }
    }
    memset(&put, 0, sizeof put);
    put.type = name;
    put.id = w->id;
    put.version = head.version + 1;
    put.method = w->op == VL_W_CREATE   ? VL_METHOD_POST
                 : w->op == VL_W_UPDATE ? VL_METHOD_PUT
                                        : VL_METHOD_DELETE;
    w->created = !head.exists;
    w->time_us = vl_store_txn_time(txn);
    w->version = put.version;
    if (w->op != VL_W_DELETE) {
        if (vl_fhir_compartment_self(w->type, w->id, &w->index) < 0)
            return vl_error_set(err, 500, "exception", NULL, "out of memory");
        free(w->body);
        w->body = vl_render_body(&w->parts, name, w->id, put.version, w->time_us, &w->body_len);
        if (!w->body)
            return vl_error_set(err, 500, "exception", NULL, "out of memory");
        put.body = w->body;
        put.body_len = w->body_len;
        put.index = &w->index;
    }
    if (!strcmp(name, "Consent") && consent_entries(txn, w, &head, err) < 0)
        return -1;
    put.also = w->consent;
    put.n_also = w->n_consent;
    put.disclose = w->disclose;
    if (vl_store_txn_put(txn, &put, &w->receipt, &serr) < 0)
        return store_failed(&serr, err);
    /* ... and so must the version written (the unit rolls back if not) */
    if ((rc = visible(txn, scope, name, w->id, put.version, err)) <= 0) {
        if (rc < 0)
            return -1;
        return vl_error_set(err, 403, "forbidden", NULL,
                            "this caller may not write this %s: it would be outside its "
                            "patient compartment or consent",
                            name);
    }
    w->anchored = 1;
    w->status = w->op == VL_W_DELETE ? 204 : w->created ? 201 : 200;
    return 0;
}
