/*
 * vitalog — fhir/render.c: how resources and Bundles are serialized.
 *
 * A stored version is
 *
 *   {"resourceType":T,"id":ID,"meta":{"versionId":V,"lastUpdated":L<meta_rest>}<tail>}
 *
 * with resourceType, id and meta first (FHIR element order is free). The
 * work is split so the store's writer thread does almost none of it:
 * vl_render_prepare() runs on the caller's thread and renders every member
 * except id and meta.versionId/lastUpdated; vl_render_body() splices those
 * in once the writer knows them. Numbers keep their exact text (util.h).
 *
 * Bundles are assembled as text, so stored bodies are embedded byte for
 * byte, and every URL in them is percent-encoded (RFC 3986).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_internal.h"

/* Renders the members of `obj` except those named in `skip`, as
 * ',"k":v,...' ("" when none). Returns malloc'd text or NULL. */
static char *render_members(const json_t *obj, const char *const *skip)
{
    json_t *copy = json_object();
    const char *key;
    json_t *value;
    char *text;
    size_t n;
    if (!copy)
        return NULL;
    json_object_foreach ((json_t *)obj, key, value) {
        int skipped = 0;
        for (const char *const *k = skip; *k; k++)
            skipped |= strcmp(key, *k) == 0;
        if (!skipped)
            json_object_set(copy, key, value);
    }
    text = vl_json_dump(copy, &n);
    json_decref(copy);
    if (!text)
        return NULL;
    /* "{...}" -> ",..." ; "{}" -> "" */
    if (n <= 2) {
        text[0] = '\0';
        return text;
    }
    text[0] = ',';
    text[n - 1] = '\0';
    return text;
}

int vl_render_prepare(const json_t *res, vl_render_t *out)
{
    static const char *const top_skip[] = {"resourceType", "id", "meta", NULL};
    static const char *const meta_skip[] = {"versionId", "lastUpdated", NULL};
    const json_t *meta = json_object_get(res, "meta");
    vl_render_free(out);
    out->tail = render_members(res, top_skip);
    out->meta_rest = json_is_object(meta) ? render_members(meta, meta_skip) : strdup("");
    if (!out->tail || !out->meta_rest) {
        vl_render_free(out);
        return -1;
    }
    return 0;
}

char *vl_render_body(const vl_render_t *r, const char *type, const char *id, int64_t version,
                     int64_t time_us, size_t *len)
{
    char ts[32], *body;
    size_t cap = 128 + strlen(type) + strlen(id) + strlen(r->tail) + strlen(r->meta_rest);
    int n;
    vl_time_format(time_us, ts);
    body = malloc(cap);
    if (!body)
        return NULL;
    n = snprintf(body, cap,
                 "{\"resourceType\":\"%s\",\"id\":\"%s\",\"meta\":{\"versionId\":\"%lld\","
                 "\"lastUpdated\":\"%s\"%s}%s}",
                 type, id, (long long)version, ts, r->meta_rest, r->tail);
    if (n < 0 || (size_t)n >= cap) {
        free(body);
        return NULL;
    }
    *len = (size_t)n;
    return body;
}

void vl_render_free(vl_render_t *r)
{
    free(r->tail);
    free(r->meta_rest);
    r->tail = r->meta_rest = NULL;
}

/* ------------------------------------------------------------------------
 * URLs and Bundles
 * ---------------------------------------------------------------------- */

int vl_buf_query_encode(vl_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || strchr("-._~:/,", *p)) {
            vl_buf_append(b, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            vl_buf_append(b, e, 3);
        }
    }
    return b->failed ? -1 : 0;
}

void vl_bundle_open(vl_buf_t *b, const char *type, int64_t total)
{
    char id[33], ts[32];
    vl_id_new(id);
    vl_time_format(vl_time_now_us(), ts);
    vl_buf_printf(b,
                  "{\"resourceType\":\"Bundle\",\"id\":\"%s\",\"meta\":{\"lastUpdated\":\"%s\"},"
                  "\"type\":\"%s\"",
                  id, ts, type);
    if (total >= 0)
        vl_buf_printf(b, ",\"total\":%lld", (long long)total);
}

void vl_bundle_link(vl_buf_t *b, int *first, const char *relation, const char *url)
{
    vl_buf_puts(b, *first ? ",\"link\":[" : ",");
    *first = 0;
    vl_buf_printf(b, "{\"relation\":\"%s\",\"url\":", relation);
    vl_buf_json_string(b, url);
    vl_buf_puts(b, "}");
}

void vl_bundle_links_close(vl_buf_t *b, int first)
{
    if (!first)
        vl_buf_puts(b, "]");
}

void vl_full_url(vl_buf_t *b, const char *fhir_base, const char *type, const char *id)
{
    vl_buf_printf(b, "%s/%s/%s", fhir_base, type, id);
}

void vl_record_headers(vl_fhir_response_t *res, const char *fhir_base, const char *type,
                       const char *id, int64_t version, int64_t last_updated_us, int with_location)
{
    snprintf(res->etag, sizeof res->etag, "W/\"%lld\"", (long long)version);
    vl_time_format_http(last_updated_us, res->last_modified);
    if (with_location)
        snprintf(res->location, sizeof res->location, "%s/%s/%s/_history/%lld", fhir_base, type, id,
                 (long long)version);
}
