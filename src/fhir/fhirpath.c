/*
 * vitalog — fhir/fhirpath.c: the FHIRPath subset of FHIRPath Patch, and
 * FHIRPath Patch itself (R4 fhirpatch.html) on a parsed resource.
 *
 * DESIGN NOTES
 *
 * 1. The element model is the validator's. Every step of a path, and every
 *    element a patch adds, is looked up in vl_vdefs[] (validate_types.c)
 *    plus the implicit base elements of the type's kind (mirrored from
 *    validate.c: Element id/extension, BackboneElement modifierExtension,
 *    Resource id/meta/.../contained). So the patch and the validation that
 *    follows agree on what is a list, what a choice, and what type a value
 *    must have. Where the model knows nothing (Extension values of
 *    unmodelled types, resources other than the modelled ones) the JSON
 *    shape decides: an array is a list, a name is a member.
 *
 * 2. A node is a location, not only a value: the object that holds the
 *    member, the member's JSON key and the index in its array. Selection
 *    never changes the document; each operation selects, then changes, and
 *    selects again for the next one (the nodes borrow from the tree).
 *
 * 3. Primitives and their companions. In FHIR JSON a primitive's id and
 *    extensions live beside it in "_name" (for a list, "_name" is an array
 *    aligned with it, null where an item has none). FHIRPath sees one
 *    element; so does this file: ".extension" of a primitive navigates
 *    into the companion, a delete or replace of the primitive drops its
 *    part of the companion, inserts and moves keep the two arrays aligned,
 *    and after the operations tidy() removes what emptied out (an empty
 *    companion, an all-null companion list, a null item without a
 *    companion entry). A list item whose value is null but whose companion
 *    has an entry is an element (a primitive with only extensions).
 *
 * 4. The grammar (fhirpath.h) is evaluated while it is parsed: one token
 *    of look-ahead, a collection of nodes as the state. A where() condition
 *    is parsed once into comparisons and then run on each item. Anything
 *    outside the subset is 422 not-supported naming the expression; the
 *    path of an operation is never partly applied.
 *
 * 5. Bounds: at most VL_PATCH_MAX_OPS operations; no value lands deeper
 *    than the depth limit (the node's depth plus the value's); names and
 *    string literals have fixed maximum lengths. Values come only from the
 *    Parameters (there is no copy), so a patch cannot grow the document
 *    beyond its own size.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhirpath.h"
#include "validate_internal.h"
#include "vitalog/fhir.h"

#define LITERAL_MAX 1024 /* a string literal's bytes */
#define CMP_NAMES_MAX 8  /* names in one side of a where() comparison */
#define DEPTH_DEFAULT 64

/* ------------------------------------------------------------------------
 * The element model (validate_types.c and the implicit base elements)
 * ---------------------------------------------------------------------- */

static int known(int t)
{
    return t > VT_NONE && t < VT__COUNT;
}

static int primitive(int t)
{
    return t >= VT_BOOLEAN && t <= VT_LAST_PRIMITIVE;
}

/* Whether `t` has a table of elements: a name not in it is no element. */
static int modelled(int t)
{
    vkind_t k;
    if (!known(t))
        return 0;
    k = vl_vdefs[t].kind;
    return (k == VK_DATATYPE || k == VK_BACKBONE || k == VK_RESOURCE) && vl_vdefs[t].elems;
}

static const char *type_name(int t)
{
    return known(t) ? vl_vdefs[t].name : "element";
}

/* Whether `suffix` spells type `t` as a choice does ("Quantity",
 * "DateTime" for dateTime). */
static int spells(const char *suffix, int t)
{
    const char *n = vl_vdefs[t].name;
    return suffix[0] && suffix[0] == toupper((unsigned char)n[0]) && !strcmp(suffix + 1, n + 1);
}

/* The type among a choice's that `suffix` spells, or VT_NONE. */
static vt_t choice_type(const vdef_elem_t *e, const char *suffix)
{
    for (const vt_t *c = e->choices; *c != VT_NONE; c++)
        if (spells(suffix, *c))
            return *c;
    return VT_NONE;
}

/* The type a Parameters value[x] suffix names ("Quantity", "Code"), or
 * VT_NONE: primitives, datatypes and the known unmodelled datatypes. */
static vt_t suffix_type(const char *suffix)
{
    for (int t = VT_NONE + 1; t < VT__COUNT; t++) {
        vkind_t k = vl_vdefs[t].kind;
        if ((k == VK_PRIMITIVE || k == VK_DATATYPE || k == VK_OPAQUE) && t != VT_ELEMENT &&
            t != VT_TIMING_REPEAT && spells(suffix, t))
            return (vt_t)t;
    }
    return VT_NONE;
}

/* The type of a resource by its resourceType: a modelled one, else
 * VT_OTHER_RESOURCE for an R4 type, else VT_NONE. */
static vt_t resource_type(const json_t *res)
{
    const char *rt = json_string_value(json_object_get(res, "resourceType"));
    if (!rt)
        return VT_NONE;
    for (int t = VT_RESOURCE + 1; t < VT_OTHER_RESOURCE; t++)
        if (vl_vdefs[t].kind == VK_RESOURCE && !strcmp(vl_vdefs[t].name, rt))
            return (vt_t)t;
    return vl_fhir_is_r4_type(rt) ? VT_OTHER_RESOURCE : VT_NONE;
}

/* The element of type `t` that `name` names: its FHIRPath name ("value"
 * of a choice: *spelled VT_NONE) or a choice's JSON name ("valueQuantity":
 * *spelled the type it spells). NULL when the model does not know it. */
static const vdef_elem_t *elem_find(int t, const char *name, vt_t *spelled)
{
    const vdef_elem_t *lists[2];
    *spelled = VT_NONE;
    if (!known(t))
        return NULL;
    switch (vl_vdefs[t].kind) {
    case VK_DATATYPE:
    case VK_BACKBONE:
    case VK_RESOURCE: lists[0] = vl_vbase_of(vl_vdefs[t].kind); break;
    default: return NULL;
    }
    lists[1] = vl_vdefs[t].elems;
    for (int l = 0; l < 2; l++) {
        for (const vdef_elem_t *e = lists[l]; e && e->name; e++) {
            size_t n = strlen(e->name);
            if (!strcmp(e->name, name))
                return e;
            if (e->choices && !strncmp(name, e->name, n) &&
                (*spelled = choice_type(e, name + n)) != VT_NONE)
                return e;
        }
    }
    return NULL;
}

/* Whether a value of type `given` may stand where `want` is expected.
 * Primitives stand for each other (the validator then checks the lexical
 * form: a code given as valueString is fine); Quantity for its profiles. */
static int compatible(int want, int given)
{
    if (!known(want) || !known(given) || want == given)
        return 1;
    if (primitive(want) && primitive(given))
        return 1;
    if (given == VT_QUANTITY && (want == VT_SIMPLEQUANTITY || want == VT_AGE || want == VT_COUNT ||
                                 want == VT_DISTANCE || want == VT_DURATION))
        return 1;
    return 0;
}

/* ------------------------------------------------------------------------
 * Node lists
 * ---------------------------------------------------------------------- */

static int oom(vl_error_t *err)
{
    return vl_error_set(err, 500, "exception", NULL, "out of memory");
}

void vl_fp_nodes_free(vl_fp_nodes_t *nodes)
{
    free(nodes->items);
    memset(nodes, 0, sizeof *nodes);
}

static int push(vl_fp_nodes_t *l, const vl_fp_node_t *n)
{
    if (vl_grow(&l->items, &l->cap, l->n + 1, sizeof *l->items) < 0)
        return -1;
    l->items[l->n++] = *n;
    return 0;
}

/* The "_key" companion of a primitive node: the object holding its id and
 * extensions. NULL when it has none; with `create`, made (for a list item,
 * the companion list is made or padded to the list's length). */
static json_t *companion(const vl_fp_node_t *n, int create)
{
    char ck[VL_FP_NAME_MAX + 1];
    json_t *c, *item;
    size_t len;
    if (!n->parent)
        return NULL;
    snprintf(ck, sizeof ck, "_%s", n->key);
    c = json_object_get(n->parent, ck);
    if (n->index < 0) {
        if (json_is_object(c) || !create || c)
            return json_is_object(c) ? c : NULL;
        c = json_object();
        if (!c || json_object_set_new(n->parent, ck, c) < 0)
            return NULL;
        return c;
    }
    len = json_array_size(json_object_get(n->parent, n->key));
    if (!c) {
        if (!create || !(c = json_array()) || json_object_set_new(n->parent, ck, c) < 0)
            return NULL;
    }
    if (!json_is_array(c))
        return NULL;
    while (create && json_array_size(c) < len)
        if (json_array_append_new(c, json_null()) < 0)
            return NULL;
    item = json_array_get(c, (size_t)n->index);
    if (json_is_object(item) || !create)
        return json_is_object(item) ? item : NULL;
    if (!(item = json_object()) || json_array_set_new(c, (size_t)n->index, item) < 0)
        return NULL;
    return item;
}

/* Adds the member `key` of `obj` (its items, for a list) as nodes. */
static int add_member(vl_fp_nodes_t *out, json_t *obj, const char *key, int type,
                      const vdef_elem_t *e, size_t depth)
{
    json_t *v = json_object_get(obj, key);
    vl_fp_node_t n;
    if (!v || strlen(key) >= VL_FP_NAME_MAX)
        return 0;
    memset(&n, 0, sizeof n);
    n.parent = obj;
    snprintf(n.key, sizeof n.key, "%s", key);
    n.elem = e;
    if (!json_is_array(v)) {
        n.value = v;
        n.index = -1;
        n.type = type == VT_RESOURCE ? (int)resource_type(v) : type;
        n.depth = depth + 1;
        return push(out, &n);
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        n.value = json_array_get(v, i);
        n.index = (long)i;
        n.type = type == VT_RESOURCE ? (int)resource_type(n.value) : type;
        n.depth = depth + 2;
        /* null holds a place for a companion entry: an element only then */
        if (json_is_null(n.value) && !companion(&n, 0))
            continue;
        if (push(out, &n) < 0)
            return -1;
    }
    return 0;
}

/* Appends to `out` the children of `n` that `name` names. -1: out of
 * memory. */
static int children(const vl_fp_node_t *n, const char *name, vl_fp_nodes_t *out)
{
    json_t *obj = n->value;
    const vdef_elem_t *e;
    const char *key;
    json_t *v;
    vt_t spelled;
    int t = n->type;
    if (!json_is_object(obj)) {
        /* a primitive: its id and extensions are in the companion */
        if (strcmp(name, "extension") != 0 && strcmp(name, "id") != 0)
            return 0;
        if (!(obj = companion(n, 0)))
            return 0;
        t = VT_ELEMENT;
    }
    e = elem_find(t, name, &spelled);
    if (e && e->choices && spelled == VT_NONE) { /* "value": whichever type is there */
        size_t len = strlen(e->name);
        json_object_foreach (obj, key, v) {
            vt_t ct;
            if (!strncmp(key, e->name, len) && (ct = choice_type(e, key + len)) != VT_NONE &&
                add_member(out, obj, key, ct, e, n->depth) < 0)
                return -1;
        }
        return 0;
    }
    if (e)
        return add_member(out, obj, name, e->choices ? spelled : e->type, e, n->depth);
    if (modelled(t))
        return 0; /* not an element of this type: nothing */
    return add_member(out, obj, name, VT_NONE, NULL, n->depth);
}

/* ------------------------------------------------------------------------
 * Tokens
 * ---------------------------------------------------------------------- */

typedef enum {
    T_END,
    T_NAME,
    T_STRING,
    T_NUMBER,
    T_DOT,
    T_LBRACKET,
    T_RBRACKET,
    T_LPAREN,
    T_RPAREN,
    T_EQ,
    T_OTHER,
} tok_kind_t;

typedef struct fp {
    json_t *root;
    const char *expr;
    const char *p;       /* the next character */
    const char *context; /* "FHIRPath Patch operation 2 (add)", or NULL */
    vl_error_t *err;
    tok_kind_t kind; /* the current token */
    int delimited;   /* a `name` */
    char text[LITERAL_MAX];
} fp_t;

static int unsupported(fp_t *fp, const char *fmt, ...) VL_PRINTF(2, 3);

static int unsupported(fp_t *fp, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return vl_error_set(fp->err, 422, "not-supported", fp->expr,
                        "%s%sthe FHIRPath '%.200s' is outside what PATCH supports: %s (supported: "
                        "element names, [n], where(a.b = literal and ...), first(), last(), "
                        "ofType(T), extension('url'))",
                        fp->context ? fp->context : "", fp->context ? ": " : "", fp->expr, why);
}

/* Appends the UTF-8 encoding of code point `c` to text at *n. */
static int put_utf8(char *text, size_t *n, unsigned c)
{
    unsigned char b[3];
    size_t k;
    if (c < 0x80) {
        b[0] = (unsigned char)c;
        k = 1;
    } else if (c < 0x800) {
        b[0] = (unsigned char)(0xC0 | (c >> 6));
        b[1] = (unsigned char)(0x80 | (c & 0x3F));
        k = 2;
    } else {
        b[0] = (unsigned char)(0xE0 | (c >> 12));
        b[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (c & 0x3F));
        k = 3;
    }
    if (*n + k >= LITERAL_MAX)
        return -1;
    memcpy(text + *n, b, k);
    *n += k;
    return 0;
}

/* A quoted string or `name` starting at fp->p (the quote). */
static int quoted(fp_t *fp, char quote)
{
    size_t n = 0;
    const char *p = fp->p + 1;
    for (;; p++) {
        char c = *p;
        if (c == '\0')
            return unsupported(fp, "an unterminated %s", quote == '`' ? "name" : "string");
        if (c == quote)
            break;
        if (c == '\\') {
            static const char from[] = "'\"`\\/fnrt", to[] = "'\"`\\/\f\n\r\t";
            const char *at;
            c = *++p;
            if (c == 'u') {
                unsigned v = 0;
                for (int i = 1; i <= 4; i++) {
                    if (!isxdigit((unsigned char)p[i]))
                        return unsupported(fp, "a malformed \\u escape");
                    v = v * 16 + (unsigned)(isdigit((unsigned char)p[i])
                                                ? p[i] - '0'
                                                : (tolower((unsigned char)p[i]) - 'a' + 10));
                }
                if (v == 0 || (v >= 0xD800 && v <= 0xDFFF))
                    return unsupported(fp, "a \\u escape of a surrogate or NUL");
                if (put_utf8(fp->text, &n, v) < 0)
                    return unsupported(fp, "a literal longer than %d bytes", LITERAL_MAX - 1);
                p += 4;
                continue;
            }
            if (c == '\0' || !(at = strchr(from, c)))
                return unsupported(fp, "an unknown escape '\\%c'", c ? c : ' ');
            c = to[at - from];
        }
        if (n + 1 >= LITERAL_MAX)
            return unsupported(fp, "a literal longer than %d bytes", LITERAL_MAX - 1);
        fp->text[n++] = c;
    }
    fp->text[n] = '\0';
    fp->p = p + 1;
    if (quote == '`') {
        if (!n || n >= VL_FP_NAME_MAX)
            return unsupported(fp, "a delimited name that is empty or too long");
        fp->kind = T_NAME;
        fp->delimited = 1;
    } else {
        fp->kind = T_STRING;
    }
    return 0;
}

/* Reads the next token. -1 (with the error) on a malformed one. */
static int next(fp_t *fp)
{
    const char *p = fp->p, *s;
    size_t n;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    fp->p = p;
    fp->delimited = 0;
    fp->text[0] = '\0';
    if (!*p) {
        fp->kind = T_END;
        return 0;
    }
    if (isalpha((unsigned char)*p) || *p == '_') {
        for (s = p; isalnum((unsigned char)*p) || *p == '_'; p++)
            ;
        if ((n = (size_t)(p - s)) >= VL_FP_NAME_MAX)
            return unsupported(fp, "a name longer than %d characters", VL_FP_NAME_MAX - 1);
        memcpy(fp->text, s, n);
        fp->text[n] = '\0';
        fp->kind = T_NAME;
        fp->p = p;
        return 0;
    }
    if (isdigit((unsigned char)*p) || (*p == '-' && isdigit((unsigned char)p[1]))) {
        s = p++;
        while (isdigit((unsigned char)*p))
            p++;
        if (*p == '.' && isdigit((unsigned char)p[1]))
            for (p++; isdigit((unsigned char)*p); p++)
                ;
        if ((n = (size_t)(p - s)) >= 64)
            return unsupported(fp, "a number longer than 63 characters");
        memcpy(fp->text, s, n);
        fp->text[n] = '\0';
        fp->kind = T_NUMBER;
        fp->p = p;
        return 0;
    }
    if (!strncmp(p, "$this", 5) && !isalnum((unsigned char)p[5]) && p[5] != '_') {
        strcpy(fp->text, "$this"); /* the item a where() looks at */
        fp->kind = T_NAME;
        fp->p = p + 5;
        return 0;
    }
    if (*p == '\'' || *p == '`')
        return quoted(fp, *p);
    fp->p = p + 1;
    switch (*p) {
    case '.': fp->kind = T_DOT; break;
    case '[': fp->kind = T_LBRACKET; break;
    case ']': fp->kind = T_RBRACKET; break;
    case '(': fp->kind = T_LPAREN; break;
    case ')': fp->kind = T_RPAREN; break;
    case '=': fp->kind = T_EQ; break;
    default:
        fp->kind = T_OTHER;
        fp->text[0] = *p;
        fp->text[1] = '\0';
        break;
    }
    return 0;
}

static int expect(fp_t *fp, tok_kind_t kind, const char *what)
{
    if (fp->kind != kind)
        return unsupported(fp, "%s expected near '%.20s'", what, fp->p);
    return next(fp);
}

/* ------------------------------------------------------------------------
 * Evaluation
 * ---------------------------------------------------------------------- */

/* One comparison of a where(): names '=' literal. */
typedef struct cmp {
    char names[CMP_NAMES_MAX][VL_FP_NAME_MAX];
    size_t n;
    json_t *literal; /* a string, a tagged number, true or false */
} cmp_t;

typedef struct cond {
    cmp_t *items;
    size_t n, cap;
} cond_t;

static void cond_free(cond_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        json_decref(c->items[i].literal);
    free(c->items);
    memset(c, 0, sizeof *c);
}

/* The literal of the current token, as a JSON value (new reference). */
static json_t *literal(fp_t *fp)
{
    switch (fp->kind) {
    case T_STRING: return json_string(fp->text);
    case T_NUMBER: return vl_json_number(fp->text);
    case T_NAME:
        if (!fp->delimited && !strcmp(fp->text, "true"))
            return json_true();
        if (!fp->delimited && !strcmp(fp->text, "false"))
            return json_false();
        return NULL;
    default: return NULL;
    }
}

/* Parses the inside of where( ... ) up to (not past) the ')'. */
static int parse_cond(fp_t *fp, cond_t *c)
{
    for (;;) {
        cmp_t *m;
        if (vl_grow(&c->items, &c->cap, c->n + 1, sizeof *c->items) < 0)
            return oom(fp->err);
        m = &c->items[c->n];
        memset(m, 0, sizeof *m);
        if (fp->kind != T_NAME)
            return unsupported(fp, "where() takes name = literal comparisons");
        for (;;) {
            if (m->n == CMP_NAMES_MAX)
                return unsupported(fp, "a comparison of more than %d names", CMP_NAMES_MAX);
            if (m->n && !strcmp(fp->text, "$this"))
                return unsupported(fp, "$this after a '.'");
            snprintf(m->names[m->n++], VL_FP_NAME_MAX, "%.127s", fp->text);
            if (next(fp) < 0)
                return -1;
            if (fp->kind == T_LPAREN)
                return unsupported(fp, "a function inside where()");
            if (fp->kind != T_DOT)
                break;
            if (next(fp) < 0)
                return -1;
            if (fp->kind != T_NAME)
                return unsupported(fp, "a name expected after '.' in where()");
        }
        if (fp->kind != T_EQ)
            return unsupported(fp, "where() compares with '=' only");
        if (next(fp) < 0)
            return -1;
        if (!(m->literal = literal(fp))) {
            if (fp->kind == T_STRING) /* the text is UTF-8: only memory can fail */
                return oom(fp->err);
            return unsupported(fp,
                               "a literal ('text', a number, true or false) expected, not "
                               "'%.32s'",
                               fp->text);
        }
        c->n++;
        if (next(fp) < 0)
            return -1;
        if (fp->kind == T_NAME && !fp->delimited && !strcmp(fp->text, "and")) {
            if (next(fp) < 0)
                return -1;
            continue;
        }
        if (fp->kind == T_NAME && !fp->delimited &&
            (!strcmp(fp->text, "or") || !strcmp(fp->text, "xor") || !strcmp(fp->text, "implies")))
            return unsupported(fp, "'%s' in where() (only 'and')", fp->text);
        return 0;
    }
}

/* Whether node `n` meets every comparison of `c`. 1, 0, -1 (memory). */
static int meets(const vl_fp_node_t *n, const cond_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        const cmp_t *m = &c->items[i];
        vl_fp_nodes_t cur, nxt;
        int ok;
        memset(&cur, 0, sizeof cur);
        if (push(&cur, n) < 0)
            return -1;
        for (size_t k = !strcmp(m->names[0], "$this"); k < m->n; k++) {
            memset(&nxt, 0, sizeof nxt);
            for (size_t j = 0; j < cur.n; j++)
                if (children(&cur.items[j], m->names[k], &nxt) < 0) {
                    vl_fp_nodes_free(&cur);
                    vl_fp_nodes_free(&nxt);
                    return -1;
                }
            vl_fp_nodes_free(&cur);
            cur = nxt;
        }
        /* FHIRPath '=' of a one-item collection and a literal */
        ok = cur.n == 1 && !json_is_object(cur.items[0].value) &&
             !json_is_array(cur.items[0].value) &&
             vl_patch_json_equal(cur.items[0].value, m->literal);
        vl_fp_nodes_free(&cur);
        if (!ok)
            return 0;
    }
    return 1;
}

/* Keeps the nodes of `l` that meet `c`. */
static int filter(vl_fp_nodes_t *l, const cond_t *c, vl_error_t *err)
{
    size_t kept = 0;
    for (size_t i = 0; i < l->n; i++) {
        int rc = meets(&l->items[i], c);
        if (rc < 0)
            return oom(err);
        if (rc)
            l->items[kept++] = l->items[i];
    }
    l->n = kept;
    return 0;
}

/* A function call `name(` (the '(' is the current token) on `cur`. */
static int function(fp_t *fp, const char *name, vl_fp_nodes_t *cur)
{
    if (next(fp) < 0)
        return -1;
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        if (fp->kind != T_RPAREN)
            return unsupported(fp, "%s() takes no argument", name);
        if (cur->n > 1) {
            if (name[0] == 'l')
                cur->items[0] = cur->items[cur->n - 1];
            cur->n = 1;
        }
        return next(fp);
    }
    if (!strcmp(name, "where")) {
        cond_t c;
        int rc;
        memset(&c, 0, sizeof c);
        rc = parse_cond(fp, &c);
        if (rc == 0 && fp->kind != T_RPAREN)
            rc = unsupported(fp, "')' expected after the condition of where()");
        if (rc == 0)
            rc = filter(cur, &c, fp->err);
        cond_free(&c);
        return rc < 0 ? -1 : next(fp);
    }
    if (!strcmp(name, "extension")) {
        /* extension('url'): the extensions with that url */
        vl_fp_nodes_t ext;
        cond_t c;
        int rc = 0;
        if (fp->kind != T_STRING)
            return unsupported(fp, "extension() takes a url string");
        memset(&c, 0, sizeof c);
        memset(&ext, 0, sizeof ext);
        if (vl_grow(&c.items, &c.cap, 1, sizeof *c.items) < 0)
            return oom(fp->err);
        memset(&c.items[0], 0, sizeof c.items[0]);
        snprintf(c.items[0].names[0], VL_FP_NAME_MAX, "url");
        c.items[0].n = 1;
        if (!(c.items[0].literal = json_string(fp->text)))
            rc = oom(fp->err);
        else
            c.n = 1;
        for (size_t i = 0; rc == 0 && i < cur->n; i++)
            if (children(&cur->items[i], "extension", &ext) < 0)
                rc = oom(fp->err);
        if (rc == 0)
            rc = filter(&ext, &c, fp->err);
        cond_free(&c);
        if (rc < 0) {
            vl_fp_nodes_free(&ext);
            return -1;
        }
        vl_fp_nodes_free(cur);
        *cur = ext;
        if (next(fp) < 0)
            return -1;
        return expect(fp, T_RPAREN, "')'");
    }
    if (!strcmp(name, "ofType")) {
        /* ofType(T): the nodes of type T (a resource by its resourceType) */
        char type[VL_FP_NAME_MAX];
        size_t kept = 0;
        if (fp->kind != T_NAME || !strcmp(fp->text, "$this"))
            return unsupported(fp, "ofType() takes a type name");
        snprintf(type, sizeof type, "%.127s", fp->text);
        for (size_t i = 0; i < cur->n; i++) {
            const vl_fp_node_t *n = &cur->items[i];
            const char *rt = json_string_value(json_object_get(n->value, "resourceType"));
            int is;
            if (known(n->type) && vl_vdefs[n->type].kind == VK_RESOURCE)
                is = rt && !strcmp(rt, type);
            else
                is = known(n->type) && (!strcmp(vl_vdefs[n->type].name, type) ||
                                        (!strcmp(type, "Quantity") &&
                                         n->type >= VT_SIMPLEQUANTITY && n->type <= VT_DURATION));
            if (is)
                cur->items[kept++] = *n;
        }
        cur->n = kept;
        if (next(fp) < 0)
            return -1;
        return expect(fp, T_RPAREN, "')'");
    }
    return unsupported(fp, "the function %s()", name);
}

/* A member step `.name` on every node of `cur`. */
static int step(fp_t *fp, const char *name, vl_fp_nodes_t *cur)
{
    vl_fp_nodes_t nxt;
    memset(&nxt, 0, sizeof nxt);
    for (size_t i = 0; i < cur->n; i++)
        if (children(&cur->items[i], name, &nxt) < 0) {
            vl_fp_nodes_free(&nxt);
            return oom(fp->err);
        }
    nxt.has_owner = cur->n == 1;
    if (nxt.has_owner) {
        nxt.owner = cur->items[0];
        snprintf(nxt.member, sizeof nxt.member, "%s", name);
    }
    vl_fp_nodes_free(cur);
    *cur = nxt;
    return 0;
}

static int select_in(json_t *res, const char *expr, const char *context, vl_fp_nodes_t *out,
                     vl_error_t *err)
{
    fp_t fp;
    vl_fp_node_t root;
    const char *rt = json_string_value(json_object_get(res, "resourceType"));
    memset(out, 0, sizeof *out);
    memset(&fp, 0, sizeof fp);
    fp.root = res;
    fp.expr = expr;
    fp.p = expr;
    fp.context = context;
    fp.err = err;
    memset(&root, 0, sizeof root);
    root.value = res;
    root.index = -1;
    root.type = resource_type(res);
    root.depth = 1;
    if (next(&fp) < 0)
        return -1;
    if (fp.kind != T_NAME || !strcmp(fp.text, "$this"))
        return unsupported(&fp, "a path starts with the resource type or an element name");
    if (!fp.delimited && ((rt && !strcmp(fp.text, rt)) || !strcmp(fp.text, "Resource") ||
                          !strcmp(fp.text, "DomainResource"))) {
        if (push(out, &root) < 0)
            return oom(err);
    } else if (!fp.delimited && isupper((unsigned char)fp.text[0]) && vl_fhir_is_r4_type(fp.text)) {
        /* another resource type: FHIRPath selects nothing */
    } else {
        vl_fp_nodes_t one;
        memset(&one, 0, sizeof one);
        if (push(&one, &root) < 0)
            return oom(err);
        *out = one;
        if (step(&fp, fp.text, out) < 0)
            return -1;
    }
    if (next(&fp) < 0)
        return -1;
    for (;;) {
        char name[VL_FP_NAME_MAX];
        switch (fp.kind) {
        case T_END: return 0;
        case T_DOT:
            if (next(&fp) < 0)
                return -1;
            if (fp.kind != T_NAME || !strcmp(fp.text, "$this"))
                return unsupported(&fp, "a name expected after '.'");
            snprintf(name, sizeof name, "%.127s", fp.text);
            if (next(&fp) < 0)
                return -1;
            if (fp.kind == T_LPAREN && !fp.delimited) {
                out->has_owner = 0;
                if (function(&fp, name, out) < 0)
                    return -1;
            } else if (step(&fp, name, out) < 0) {
                return -1;
            }
            break;
        case T_LBRACKET: {
            char *end;
            unsigned long i;
            if (next(&fp) < 0)
                return -1;
            if (fp.kind != T_NUMBER || fp.text[0] == '-' || strchr(fp.text, '.'))
                return unsupported(&fp, "an indexer takes a whole number");
            i = strtoul(fp.text, &end, 10);
            out->has_owner = 0;
            if (i < out->n) {
                out->items[0] = out->items[i];
                out->n = 1;
            } else {
                out->n = 0;
            }
            if (next(&fp) < 0 || expect(&fp, T_RBRACKET, "']'") < 0)
                return -1;
            break;
        }
        case T_OTHER: return unsupported(&fp, "the operator '%s'", fp.text);
        default: return unsupported(&fp, "unexpected text near '%.20s'", fp.p);
        }
    }
}

int vl_fhirpath_select(json_t *res, const char *expr, vl_fp_nodes_t *out, vl_error_t *err)
{
    return select_in(res, expr, NULL, out, err);
}

/* ------------------------------------------------------------------------
 * FHIRPath Patch: the operations of a Parameters resource
 * ---------------------------------------------------------------------- */

typedef enum { OP_ADD, OP_INSERT, OP_DELETE, OP_REPLACE, OP_MOVE } op_type_t;

static const char *const op_names[] = {"add", "insert", "delete", "replace", "move", NULL};

typedef struct fp_op {
    size_t i; /* its index among the parameters */
    op_type_t type;
    const char *path;
    const char *name;
    const json_t *value;             /* the part named "value" */
    long index, source, destination; /* -1: absent */
    char context[64];                /* "FHIRPath Patch operation 2 (add)" */
} fp_op_t;

static int op_errorv(vl_error_t *err, int status, const fp_op_t *op, const char *code,
                     const char *fmt, va_list ap) VL_PRINTF(5, 0);

static int op_errorv(vl_error_t *err, int status, const fp_op_t *op, const char *code,
                     const char *fmt, va_list ap)
{
    char why[400];
    vsnprintf(why, sizeof why, fmt, ap);
    return vl_error_set(err, status, code, op->path, "%s on '%.200s': %s", op->context,
                        op->path ? op->path : "", why);
}

/* A 422 about operation `op` (it cannot be applied): its path is the
 * issue's expression. */
static int op_fail(vl_error_t *err, const fp_op_t *op, const char *code, const char *fmt, ...)
    VL_PRINTF(4, 5);

static int op_fail(vl_error_t *err, const fp_op_t *op, const char *code, const char *fmt, ...)
{
    va_list ap;
    int rc;
    va_start(ap, fmt);
    rc = op_errorv(err, 422, op, code, fmt, ap);
    va_end(ap);
    return rc;
}

/* A 400 about operation `op`: its value is malformed. */
static int op_malformed(vl_error_t *err, const fp_op_t *op, const char *fmt, ...) VL_PRINTF(3, 4);

static int op_malformed(vl_error_t *err, const fp_op_t *op, const char *fmt, ...)
{
    va_list ap;
    int rc;
    va_start(ap, fmt);
    rc = op_errorv(err, 400, op, "invalid", fmt, ap);
    va_end(ap);
    return rc;
}

/* The member "value[x]" of a part: its key (NULL when none; 2 of them: -1). */
static int value_key(const json_t *part, const char **key)
{
    const char *k;
    json_t *v;
    *key = NULL;
    json_object_foreach ((json_t *)part, k, v) {
        if (!strncmp(k, "value", 5) && isupper((unsigned char)k[5])) {
            if (*key)
                return -1;
            *key = k;
        }
    }
    return 0;
}

/* A whole number valueInteger >= 0 of a part, or -1. */
static long part_index(const json_t *part)
{
    const char *t = vl_json_number_text(json_object_get(part, "valueInteger"));
    long v = 0;
    if (!t || !*t || strlen(t) > 9)
        return -1;
    for (; *t; t++) {
        if (!isdigit((unsigned char)*t))
            return -1;
        v = v * 10 + (*t - '0');
    }
    return v;
}

/* Reads the operation in parameter `i`. 400 when malformed. */
static int parse_op(const json_t *param, size_t i, fp_op_t *op, vl_error_t *err)
{
    const json_t *parts = json_object_get(param, "part");
    const char *pname = json_string_value(json_object_get(param, "name"));
    const char *type = NULL;
    char where[96]; /* "Parameters.parameter[i].part[j]" with any two size_t */
    memset(op, 0, sizeof *op);
    op->i = i;
    op->index = op->source = op->destination = -1;
    snprintf(where, sizeof where, "Parameters.parameter[%zu]", i);
    if (!json_is_object(param) || !pname || strcmp(pname, "operation") != 0)
        return vl_error_set(err, 400, "invalid", where,
                            "FHIRPath Patch: parameter %zu must be an 'operation' (it is '%.64s')",
                            i, pname ? pname : "unnamed");
    if (!json_is_array(parts) || !json_array_size(parts))
        return vl_error_set(err, 400, "required", where,
                            "FHIRPath Patch: operation %zu has no parts", i);
    for (size_t j = 0; j < json_array_size(parts); j++) {
        const json_t *part = json_array_get(parts, j);
        const char *name = json_string_value(json_object_get(part, "name"));
        const char *s = NULL;
        int seen = 0;
        snprintf(where, sizeof where, "Parameters.parameter[%zu].part[%zu]", i, j);
        if (!json_is_object(part) || !name)
            return vl_error_set(err, 400, "required", where,
                                "FHIRPath Patch: operation %zu: part %zu has no name", i, j);
        if (!strcmp(name, "type")) {
            seen = type != NULL;
            type = json_string_value(json_object_get(part, "valueCode"));
            if (!type)
                type = json_string_value(json_object_get(part, "valueString"));
            s = type;
        } else if (!strcmp(name, "path")) {
            seen = op->path != NULL;
            s = op->path = json_string_value(json_object_get(part, "valueString"));
        } else if (!strcmp(name, "name")) {
            seen = op->name != NULL;
            s = op->name = json_string_value(json_object_get(part, "valueString"));
        } else if (!strcmp(name, "value")) {
            seen = op->value != NULL;
            s = "";
            op->value = part;
        } else if (!strcmp(name, "index") || !strcmp(name, "source") ||
                   !strcmp(name, "destination")) {
            long *slot = name[0] == 'i'   ? &op->index
                         : name[0] == 's' ? &op->source
                                          : &op->destination;
            seen = *slot >= 0;
            if ((*slot = part_index(part)) < 0)
                return vl_error_set(err, 400, "invalid", where,
                                    "FHIRPath Patch: operation %zu: '%s' must be a valueInteger "
                                    "of at least 0",
                                    i, name);
            s = "";
        } else {
            return vl_error_set(err, 400, "invalid", where,
                                "FHIRPath Patch: operation %zu: unknown part '%.64s' (type, path, "
                                "name, value, index, source, destination)",
                                i, name);
        }
        if (seen)
            return vl_error_set(err, 400, "invalid", where,
                                "FHIRPath Patch: operation %zu: part '%s' given twice", i, name);
        if (!s)
            return vl_error_set(err, 400, "invalid", where,
                                "FHIRPath Patch: operation %zu: part '%s' needs a %s", i, name,
                                !strcmp(name, "type") ? "valueCode" : "valueString");
    }
    snprintf(where, sizeof where, "Parameters.parameter[%zu]", i);
    if (!type)
        return vl_error_set(err, 400, "required", where,
                            "FHIRPath Patch: operation %zu has no type", i);
    for (op->type = OP_ADD; op_names[op->type] && strcmp(op_names[op->type], type); op->type++)
        ;
    if (!op_names[op->type])
        return vl_error_set(err, 400, "invalid", where,
                            "FHIRPath Patch: operation %zu: unknown type '%.32s' (add, insert, "
                            "delete, replace, move)",
                            i, type);
    snprintf(op->context, sizeof op->context, "FHIRPath Patch operation %zu (%s)", i, type);
    {
        struct {
            int needed;
            int present;
            const char *name;
        } need[] = {
            {1, op->path != NULL, "path"},
            {op->type == OP_ADD, op->name != NULL, "name"},
            {op->type == OP_ADD || op->type == OP_INSERT || op->type == OP_REPLACE,
             op->value != NULL, "value"},
            {op->type == OP_INSERT, op->index >= 0, "index"},
            {op->type == OP_MOVE, op->source >= 0, "source"},
            {op->type == OP_MOVE, op->destination >= 0, "destination"},
        };
        for (size_t k = 0; k < sizeof need / sizeof need[0]; k++)
            if (need[k].needed && !need[k].present)
                return vl_error_set(err, 400, "required", where,
                                    "FHIRPath Patch: operation %zu (%s) needs a '%s' part", i, type,
                                    need[k].name);
    }
    if (op->name && (!op->name[0] || strlen(op->name) >= VL_FP_NAME_MAX ||
                     strspn(op->name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                      "0123456789") != strlen(op->name)))
        return vl_error_set(err, 400, "invalid", where,
                            "FHIRPath Patch: operation %zu: name '%.64s' is not an element name", i,
                            op->name);
    return 0;
}

/* ------------------------------------------------------------------------
 * Values: value[x], a resource, or nested parts
 * ---------------------------------------------------------------------- */

/* What a value part carries: a typed value, a resource or parts. */
typedef struct given {
    const char *key;     /* "valueQuantity", or NULL */
    const json_t *value; /* the value[x] or resource */
    const json_t *parts; /* nested parts */
    vt_t type;           /* of value[x] (VT_NONE: unknown suffix), a resource's */
} given_t;

static int read_given(const json_t *part, const fp_op_t *op, given_t *g, vl_error_t *err)
{
    const char *k;
    json_t *v;
    int n = 0;
    memset(g, 0, sizeof g[0]);
    if (value_key(part, &g->key) < 0)
        return op_malformed(err, op, "a part holds more than one value[x]");
    json_object_foreach ((json_t *)part, k, v) {
        if (k[0] == '_')
            return op_fail(err, op, "not-supported",
                           "extensions on a primitive value ('%.64s') are not supported; add "
                           "them with an operation on the element's extension",
                           k);
    }
    if (g->key) {
        g->value = json_object_get(part, g->key);
        g->type = suffix_type(g->key + 5);
        n++;
    }
    if ((v = json_object_get(part, "resource"))) {
        g->value = v;
        g->type = VT_RESOURCE;
        n++;
    }
    if ((v = json_object_get(part, "part"))) {
        g->parts = v;
        n++;
    }
    if (n != 1)
        return op_malformed(err, op,
                            "a value is one value[x], one resource or nested parts (this one has "
                            "%s)",
                            n ? "several" : "none");
    if (g->parts && (!json_is_array(g->parts) || !json_array_size(g->parts)))
        return op_malformed(err, op, "nested parts must be a non-empty list");
    if (g->type == VT_RESOURCE && !json_is_object(g->value))
        return op_malformed(err, op, "a resource value must be an object");
    return 0;
}

static json_t *build_value(const given_t *g, int want, const fp_op_t *op, size_t level,
                           vl_error_t *err);

/* The object that nested parts describe, as an element of type `t`. */
static json_t *build_complex(const json_t *parts, int t, const fp_op_t *op, size_t level,
                             vl_error_t *err)
{
    json_t *obj;
    if (level > DEPTH_DEFAULT) {
        op_fail(err, op, "too-costly", "the value's parts nest too deep");
        return NULL;
    }
    if (primitive(t)) {
        op_fail(err, op, "processing", "a %s is a primitive: give it as a value[x], not as parts",
                type_name(t));
        return NULL;
    }
    if (!(obj = json_object())) {
        oom(err);
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(parts); i++) {
        const json_t *part = json_array_get(parts, i);
        const char *pname = json_string_value(json_object_get(part, "name"));
        const vdef_elem_t *e;
        char key[VL_FP_NAME_MAX + 64];
        given_t g;
        vt_t spelled;
        json_t *child, *have;
        int et, many;
        if (!json_is_object(part) || !pname || !pname[0] || strlen(pname) >= VL_FP_NAME_MAX) {
            op_malformed(err, op, "a nested part has no name (or too long a name)");
            goto fail;
        }
        if (read_given(part, op, &g, err) < 0)
            goto fail;
        e = elem_find(t, pname, &spelled);
        if (!e && modelled(t)) {
            op_fail(err, op, "processing", "%s has no element '%.64s'", type_name(t), pname);
            goto fail;
        }
        snprintf(key, sizeof key, "%s", pname);
        et = e ? e->type : VT_NONE;
        if (e && e->choices) {
            if (!g.key || g.type == VT_NONE || choice_type(e, g.key + 5) == VT_NONE ||
                (spelled != VT_NONE && spelled != choice_type(e, g.key + 5))) {
                op_fail(err, op, "processing",
                        "'%s[x]' of %s takes a value[x] of one of its types (not %s)", e->name,
                        type_name(t), g.key ? g.key : "nested parts");
                goto fail;
            }
            et = choice_type(e, g.key + 5);
            snprintf(key, sizeof key, "%s%s", e->name, g.key + 5);
        }
        if (!(child = build_value(&g, et, op, level + 1, err)))
            goto fail;
        many = e ? e->many : 0;
        have = json_object_get(obj, key);
        if (!e && have && !json_is_array(have)) { /* unknown: a name given twice is a list */
            json_t *list = json_array();
            if (!list || json_array_append(list, have) < 0 ||
                json_object_set_new(obj, key, list) < 0) {
                json_decref(list);
                json_decref(child);
                oom(err);
                goto fail;
            }
            have = list;
        }
        if (many || (have && json_is_array(have))) {
            if (!have) {
                if (!(have = json_array()) || json_object_set_new(obj, key, have) < 0) {
                    json_decref(child);
                    oom(err);
                    goto fail;
                }
            }
            if (json_array_append_new(have, child) < 0) {
                oom(err);
                goto fail;
            }
        } else if (have) {
            json_decref(child);
            op_fail(err, op, "processing", "'%s' of %s is a single element but is given twice", key,
                    type_name(t));
            goto fail;
        } else if (json_object_set_new(obj, key, child) < 0) {
            oom(err);
            goto fail;
        }
    }
    return obj;
fail:
    json_decref(obj);
    return NULL;
}

/* The JSON value `g` gives for an element of type `want` (new reference),
 * or NULL with a 422 (wrong type) or 400 in err. */
static json_t *build_value(const given_t *g, int want, const fp_op_t *op, size_t level,
                           vl_error_t *err)
{
    json_t *v;
    if (g->parts)
        return build_complex(g->parts, want, op, level, err);
    int resource = want == VT_RESOURCE || (known(want) && vl_vdefs[want].kind == VK_RESOURCE);
    int ok =
        g->type == VT_RESOURCE ? !known(want) || resource : !resource && compatible(want, g->type);
    if (!ok) {
        op_fail(err, op, "processing", "the value is a %s, but the element is a %s",
                g->type == VT_RESOURCE ? "resource"
                : g->type == VT_NONE   ? (g->key ? g->key + 5 : "value")
                                       : type_name(g->type),
                type_name(want));
        return NULL;
    }
    if (!(v = json_deep_copy(g->value)))
        oom(err);
    return v;
}

/* ------------------------------------------------------------------------
 * Changing the document
 * ---------------------------------------------------------------------- */

/* Removes the companion part of node `n` (a primitive's id and
 * extensions): the "_key" member, or its entry for a list item (null). */
static void drop_companion(const vl_fp_node_t *n)
{
    char ck[VL_FP_NAME_MAX + 1];
    json_t *c;
    snprintf(ck, sizeof ck, "_%s", n->key);
    c = json_object_get(n->parent, ck);
    if (n->index < 0)
        json_object_del(n->parent, ck);
    else if (json_is_array(c) && (size_t)n->index < json_array_size(c))
        json_array_set_new(c, (size_t)n->index, json_null());
}

/* Removes node `n` from its parent, with its companion part. */
static int remove_node(const vl_fp_node_t *n)
{
    char ck[VL_FP_NAME_MAX + 1];
    json_t *list, *c;
    snprintf(ck, sizeof ck, "_%s", n->key);
    if (n->index < 0) {
        json_object_del(n->parent, n->key);
        json_object_del(n->parent, ck);
        return 0;
    }
    list = json_object_get(n->parent, n->key);
    c = json_object_get(n->parent, ck);
    if (json_array_remove(list, (size_t)n->index) < 0)
        return -1;
    if (json_is_array(c) && (size_t)n->index < json_array_size(c))
        json_array_remove(c, (size_t)n->index);
    if (!json_array_size(list)) {
        json_object_del(n->parent, n->key);
        json_object_del(n->parent, ck);
    }
    return 0;
}

/* Whether a companion entry carries nothing. */
static int empty_entry(const json_t *v)
{
    return !v || json_is_null(v) || (json_is_object(v) && !json_object_size(v));
}

/* Removes what the operations emptied out (note 3), everywhere below `v`. */
static int tidy(json_t *v)
{
    const char *key;
    json_t *m;
    void *tmp;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (tidy(json_array_get(v, i)) < 0)
                return -1;
        return 0;
    }
    if (!json_is_object(v))
        return 0;
    json_object_foreach_safe(v, tmp, key, m)
    {
        char ck[VL_FP_NAME_MAX + 1];
        json_t *c;
        if (tidy(m) < 0)
            return -1;
        if (key[0] == '_' || strlen(key) >= VL_FP_NAME_MAX)
            continue;
        snprintf(ck, sizeof ck, "_%s", key);
        c = json_object_get(v, ck);
        if (json_is_array(m)) {
            for (size_t i = json_array_size(m); i-- > 0;) {
                if (!json_is_null(json_array_get(m, i)) ||
                    !empty_entry(json_is_array(c) ? json_array_get(c, i) : NULL))
                    continue;
                json_array_remove(m, i);
                if (json_is_array(c) && i < json_array_size(c))
                    json_array_remove(c, i);
            }
            if (!json_array_size(m))
                json_object_del(v, key);
        } else if (json_is_null(m) && empty_entry(c)) {
            json_object_del(v, key);
        }
    }
    /* the companions themselves */
    json_object_foreach_safe(v, tmp, key, m)
    {
        int all_empty = 1;
        if (key[0] != '_')
            continue;
        if (json_is_object(m)) {
            if (!json_object_size(m))
                json_object_del(v, key);
            continue;
        }
        if (!json_is_array(m))
            continue;
        for (size_t i = 0; i < json_array_size(m); i++) {
            json_t *e = json_array_get(m, i);
            if (json_is_object(e) && !json_object_size(e))
                json_array_set_new(m, i, json_null());
            else if (!json_is_null(e))
                all_empty = 0;
        }
        if (all_empty)
            json_object_del(v, key);
    }
    return 0;
}

/* Selects op->path and requires exactly one element (none allowed for a
 * delete). */
static int select_one(json_t *res, const fp_op_t *op, vl_fp_nodes_t *sel, vl_error_t *err)
{
    if (select_in(res, op->path, op->context, sel, err) < 0)
        return -1;
    if (sel->n > 1)
        return op_fail(err, op, "multiple-matches",
                       "the path selects %zu elements; it must select exactly one", sel->n);
    if (!sel->n && op->type != OP_DELETE)
        return op_fail(err, op, "not-found", "the path selects nothing");
    return 0;
}

static int depth_ok(size_t at, const json_t *value, size_t max, const fp_op_t *op, vl_error_t *err)
{
    if (at + vl_patch_depth(value, max) > max)
        return op_fail(err, op, "too-costly", "the value would nest deeper than %zu levels", max);
    return 0;
}

/* The list a path names (insert, move): `obj` holds it as member `key`;
 * `list` is NULL while it is absent (an insert makes it). */
typedef struct list_at {
    json_t *obj;
    char key[VL_FP_NAME_MAX];
    json_t *list;
    int type;     /* of its items */
    size_t depth; /* the nesting of obj */
} list_at_t;

/* Finds the list op->path names: the whole of one list (all its items and
 * nothing else), or, when the path selects nothing, the list member its
 * last step named on one element (for a primitive's "extension", in the
 * companion, which is then made). */

static int find_list(json_t *res, const fp_op_t *op, list_at_t *at, vl_error_t *err)
{
    vl_fp_nodes_t sel;
    int rc = 0;
    memset(at, 0, sizeof *at);
    if (select_in(res, op->path, op->context, &sel, err) < 0) {
        vl_fp_nodes_free(&sel);
        return -1;
    }
    if (sel.n) {
        const vl_fp_node_t *first = &sel.items[0];
        size_t size;
        for (size_t i = 0; i < sel.n; i++)
            if (sel.items[i].index < 0 || sel.items[i].parent != first->parent ||
                strcmp(sel.items[i].key, first->key) != 0) {
                rc = op_fail(err, op, "processing", "the path does not select a list");
                goto out;
            }
        at->obj = first->parent;
        snprintf(at->key, sizeof at->key, "%s", first->key);
        at->list = json_object_get(at->obj, at->key);
        size = json_array_size(at->list);
        if (sel.n != size) {
            rc = op_fail(err, op, "processing",
                         "the path selects %zu of the %zu items of a list: it must name the "
                         "whole list",
                         sel.n, size);
            goto out;
        }
        {
            const vdef_elem_t *e = first->elem;
            at->type = e ? (int)e->type : first->type;
        }
        at->depth = first->depth - 2;
    } else if (sel.has_owner) {
        const vl_fp_node_t *o = &sel.owner;
        const vdef_elem_t *e;
        vt_t spelled;
        int t = o->type;
        json_t *obj = o->value;
        if (!json_is_object(obj)) {
            if (strcmp(sel.member, "extension") != 0) {
                rc = op_fail(err, op, "processing", "a primitive has no list '%s'", sel.member);
                goto out;
            }
            if (!(obj = companion(o, 1))) {
                rc = oom(err);
                goto out;
            }
            t = VT_ELEMENT;
        }
        e = elem_find(t, sel.member, &spelled);
        if ((!e && modelled(t)) || (e && (!e->many || e->choices))) {
            rc = op_fail(err, op, "processing", "'%s' is not a list of %s", sel.member,
                         type_name(t));
            goto out;
        }
        if (json_object_get(obj, sel.member)) { /* present, but not as a list */
            rc = op_fail(err, op, "processing", "'%s' is not a list", sel.member);
            goto out;
        }
        at->obj = obj;
        snprintf(at->key, sizeof at->key, "%s", sel.member);
        at->type = e ? e->type : VT_NONE;
        at->depth = o->depth;
    } else {
        rc = op_fail(err, op, "not-found", "the path selects nothing");
    }
out:
    vl_fp_nodes_free(&sel);
    return rc;
}

/* The companion list of a list, padded to its length, or NULL when none. */
static json_t *companion_list(const list_at_t *at)
{
    char ck[VL_FP_NAME_MAX + 1];
    json_t *c;
    snprintf(ck, sizeof ck, "_%s", at->key);
    c = json_object_get(at->obj, ck);
    if (!json_is_array(c))
        return NULL;
    while (json_array_size(c) < json_array_size(at->list))
        if (json_array_append_new(c, json_null()) < 0)
            return NULL;
    return c;
}

static int op_add(json_t *res, const fp_op_t *op, size_t max, vl_error_t *err)
{
    vl_fp_nodes_t sel;
    const vl_fp_node_t *n;
    const vdef_elem_t *e;
    given_t g;
    char key[VL_FP_NAME_MAX + 64];
    json_t *obj, *value = NULL, *have;
    vt_t spelled;
    int rc = -1, t, et;
    size_t depth;
    if (select_one(res, op, &sel, err) < 0)
        goto out;
    n = &sel.items[0];
    obj = n->value;
    t = n->type;
    depth = n->depth;
    if (!json_is_object(obj)) {
        if (strcmp(op->name, "extension") != 0 && strcmp(op->name, "id") != 0) {
            op_fail(err, op, "processing",
                    "the path selects a primitive: only 'extension' or "
                    "'id' can be added to it");
            goto out;
        }
        if (!(obj = companion(n, 1))) {
            oom(err);
            goto out;
        }
        t = VT_ELEMENT;
    }
    e = elem_find(t, op->name, &spelled);
    if (!e && modelled(t)) {
        op_fail(err, op, "processing", "%s has no element '%s'", type_name(t), op->name);
        goto out;
    }
    if (read_given(op->value, op, &g, err) < 0)
        goto out;
    snprintf(key, sizeof key, "%s", op->name);
    et = e ? e->type : VT_NONE;
    if (e && e->choices) {
        vt_t ct = g.key ? choice_type(e, g.key + 5) : VT_NONE;
        if (ct == VT_NONE || (spelled != VT_NONE && spelled != ct)) {
            op_fail(err, op, "processing",
                    "'%s[x]' of %s takes a value[x] of one of its types (not %s)", e->name,
                    type_name(t), g.key ? g.key : "nested parts");
            goto out;
        }
        if (vl_vchoice_key(obj, e->name)) {
            op_fail(err, op, "processing", "%s already has a '%s[x]' (use replace)", type_name(t),
                    e->name);
            goto out;
        }
        et = ct;
        snprintf(key, sizeof key, "%s%s", e->name, g.key + 5);
    }
    if (!(value = build_value(&g, et, op, 1, err)))
        goto out;
    have = json_object_get(obj, key);
    if ((e && e->many) || (!e && json_is_array(have))) {
        json_t *c;
        char ck[sizeof key + 1];
        if (depth_ok(depth + 1, value, max, op, err) < 0)
            goto out;
        if (!have) {
            if (!(have = json_array()) || json_object_set_new(obj, key, have) < 0) {
                oom(err);
                goto out;
            }
        } else if (!json_is_array(have)) {
            op_fail(err, op, "processing", "'%s' is present and is not a list", key);
            goto out;
        }
        snprintf(ck, sizeof ck, "_%s", key);
        c = json_object_get(obj, ck);
        if (json_is_array(c)) { /* keep the companion aligned */
            while (json_array_size(c) < json_array_size(have))
                json_array_append_new(c, json_null());
            json_array_append_new(c, json_null());
        }
        rc = json_array_append_new(have, value) < 0 ? oom(err) : 0;
        value = NULL;
        goto out;
    }
    if (have) {
        op_fail(err, op, "processing", "'%s' is already present (use replace)", key);
        goto out;
    }
    if (depth_ok(depth, value, max, op, err) < 0)
        goto out;
    rc = json_object_set_new(obj, key, value) < 0 ? oom(err) : 0;
    value = NULL;
out:
    json_decref(value);
    vl_fp_nodes_free(&sel);
    return rc;
}

static int op_insert(json_t *res, const fp_op_t *op, size_t max, vl_error_t *err)
{
    list_at_t at;
    given_t g;
    json_t *value, *c;
    size_t size;
    if (find_list(res, op, &at, err) < 0 || read_given(op->value, op, &g, err) < 0)
        return -1;
    size = json_array_size(at.list);
    if ((size_t)op->index > size)
        return op_fail(err, op, "processing", "index %ld is beyond the end of the list (%zu)",
                       op->index, size);
    if (!(value = build_value(&g, at.type, op, 1, err)))
        return -1;
    if (depth_ok(at.depth + 1, value, max, op, err) < 0) {
        json_decref(value);
        return -1;
    }
    if (!at.list) {
        if (!(at.list = json_array()) || json_object_set_new(at.obj, at.key, at.list) < 0) {
            json_decref(value);
            return oom(err);
        }
    }
    c = companion_list(&at);
    if (json_array_insert_new(at.list, (size_t)op->index, value) < 0)
        return oom(err);
    if (c && json_array_insert_new(c, (size_t)op->index, json_null()) < 0)
        return oom(err);
    return 0;
}

static int op_delete(json_t *res, const fp_op_t *op, vl_error_t *err)
{
    vl_fp_nodes_t sel;
    int rc = -1;
    if (select_one(res, op, &sel, err) < 0)
        goto out;
    if (!sel.n) { /* nothing to delete: nothing happens */
        rc = 0;
        goto out;
    }
    if (!sel.items[0].parent) {
        op_fail(err, op, "processing", "the resource itself cannot be deleted by a patch");
        goto out;
    }
    rc = remove_node(&sel.items[0]) < 0 ? oom(err) : 0;
out:
    vl_fp_nodes_free(&sel);
    return rc;
}

static int op_replace(json_t *res, const fp_op_t *op, size_t max, vl_error_t *err)
{
    vl_fp_nodes_t sel;
    const vl_fp_node_t *n;
    const vdef_elem_t *e;
    given_t g;
    char key[VL_FP_NAME_MAX + 64];
    json_t *value = NULL;
    int rc = -1, et;
    if (select_one(res, op, &sel, err) < 0)
        goto out;
    n = &sel.items[0];
    e = n->elem;
    if (!n->parent) {
        op_fail(err, op, "processing", "the resource itself cannot be replaced by a patch");
        goto out;
    }
    if (read_given(op->value, op, &g, err) < 0)
        goto out;
    snprintf(key, sizeof key, "%s", n->key);
    et = e && !e->choices ? (int)e->type : n->type;
    if (e && e->choices) { /* the new value may be of another of its types */
        vt_t ct = g.key ? choice_type(e, g.key + 5) : VT_NONE;
        if (ct == VT_NONE) {
            op_fail(err, op, "processing", "'%s[x]' takes a value[x] of one of its types (not %s)",
                    e->name, g.key ? g.key : "nested parts");
            goto out;
        }
        et = ct;
        snprintf(key, sizeof key, "%s%s", e->name, g.key + 5);
    }
    if (!(value = build_value(&g, et, op, 1, err)))
        goto out;
    /* the value takes the node's place: its parent's nesting plus its own */
    if (depth_ok(n->depth - 1, value, max, op, err) < 0)
        goto out;
    drop_companion(n);
    if (n->index >= 0) {
        rc = json_array_set_new(json_object_get(n->parent, n->key), (size_t)n->index, value) < 0
                 ? oom(err)
                 : 0;
    } else {
        if (strcmp(key, n->key) != 0)
            json_object_del(n->parent, n->key);
        rc = json_object_set_new(n->parent, key, value) < 0 ? oom(err) : 0;
    }
    value = NULL;
out:
    json_decref(value);
    vl_fp_nodes_free(&sel);
    return rc;
}

static int op_move(json_t *res, const fp_op_t *op, vl_error_t *err)
{
    list_at_t at;
    json_t *item, *c;
    size_t size;
    if (find_list(res, op, &at, err) < 0)
        return -1;
    size = json_array_size(at.list);
    if ((size_t)op->source >= size || (size_t)op->destination >= size)
        return op_fail(err, op, "processing",
                       "source %ld and destination %ld must be indexes of the list (0 to %zu)",
                       op->source, op->destination, size ? size - 1 : 0);
    c = companion_list(&at);
    for (int pass = 0; pass < (c ? 2 : 1); pass++) {
        json_t *l = pass ? c : at.list;
        item = json_incref(json_array_get(l, (size_t)op->source));
        if (json_array_remove(l, (size_t)op->source) < 0 ||
            json_array_insert_new(l, (size_t)op->destination, item) < 0)
            return oom(err);
    }
    return 0;
}

int vl_patch_fhirpath_apply(json_t *res, const json_t *params, const vl_patch_limits_t *lim,
                            vl_error_t *err)
{
    size_t max = lim && lim->max_depth ? lim->max_depth : DEPTH_DEFAULT;
    const json_t *list = json_object_get(params, "parameter");
    const char *rt = json_string_value(json_object_get(params, "resourceType"));
    if (!json_is_object(res))
        return vl_error_set(err, 422, "processing", NULL, "FHIRPath Patch applies to a resource");
    if (!json_is_object(params) || !rt || strcmp(rt, "Parameters") != 0)
        return vl_error_set(err, 400, "invalid", NULL, "a FHIRPath Patch is a Parameters resource");
    if (list && !json_is_array(list))
        return vl_error_set(err, 400, "structure", "Parameters.parameter",
                            "Parameters.parameter must be a list");
    if (json_array_size(list) > VL_PATCH_MAX_OPS)
        return vl_error_set(err, 400, "too-costly", "Parameters.parameter",
                            "a patch may hold at most %d operations (this one has %zu)",
                            VL_PATCH_MAX_OPS, json_array_size(list));
    for (size_t i = 0; i < json_array_size(list); i++) {
        fp_op_t op;
        int rc;
        if (parse_op(json_array_get(list, i), i, &op, err) < 0)
            return -1;
        switch (op.type) {
        case OP_ADD: rc = op_add(res, &op, max, err); break;
        case OP_INSERT: rc = op_insert(res, &op, max, err); break;
        case OP_DELETE: rc = op_delete(res, &op, err); break;
        case OP_REPLACE: rc = op_replace(res, &op, max, err); break;
        default: rc = op_move(res, &op, err); break;
        }
        if (rc < 0)
            return -1;
    }
    if (tidy(res) < 0)
        return oom(err);
    return 0;
}
