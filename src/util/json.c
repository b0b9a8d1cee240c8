/*
 * Number-preserving JSON on top of jansson.
 *
 * DESIGN
 *   jansson stores numbers as json_int_t or double, which loses the text a
 *   FHIR decimal must keep (1.00, 1E-22). So parsing is two passes:
 *
 *     1. lex_numbers() copies the input, replacing every number token that
 *        stands outside a string with a JSON string "\u0001<token>". On the
 *        way it checks what jansson would not: nesting depth, the number
 *        grammar, numbers where an object key is due (tagged, they would
 *        pass as string keys), and control characters (raw, \uXXXX, \b, \f)
 *        in strings.
 *     2. jansson parses the rewritten text (rejecting duplicate keys).
 *
 *   Dumping reverses it: jansson writes the tagged string as "\u0001<token>"
 *   and untag_numbers() removes the quotes and the tag.
 *
 *   The rewrite only lengthens the text, so jansson's error positions are
 *   mapped back to the caller's line/column with the offsets recorded in
 *   pass 1 (line numbers are unchanged: numbers hold no newlines).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vitalog/util.h"

#define TAG_ESCAPED "\\u0001"
#define TAG_ESCAPED_LEN 6

int vl_json_number_valid(const char *s, size_t len)
{
    size_t i = 0;
    if (len == 0)
        return 0;
    if (s[i] == '-')
        i++;
    if (i >= len)
        return 0;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
    } else {
        return 0;
    }
    if (i < len && s[i] == '.') {
        i++;
        if (i >= len || s[i] < '0' || s[i] > '9')
            return 0;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= len || s[i] < '0' || s[i] > '9')
            return 0;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    return i == len;
}

static int is_number_char(char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Grows *buf (capacity *cap) so that it holds more than `need` bytes. */
static int reserve(char **buf, size_t *cap, size_t need)
{
    return vl_grow(buf, cap, need + 1, 1);
}

/* Where pass 1 is: for error messages in the caller's coordinates. */
typedef struct lexpos {
    size_t line, col;
} lexpos_t;

static void advance(lexpos_t *p, char c)
{
    if (c == '\n') {
        p->line++;
        p->col = 1;
    } else if (((unsigned char)c & 0xC0) != 0x80) {
        p->col++;
    }
}

/*
 * Pass 1. Returns a malloc'd rewritten text (length in *outlen) or NULL with
 * a 400 in err. Each tagged number grows by 8 bytes ("\u0001" + 2 quotes),
 * so the output is at most len + 8 * (len/1 + 1) in the degenerate case; it
 * grows on demand instead.
 */
static char *lex_numbers(const char *in, size_t len, size_t max_depth, size_t *outlen,
                         vl_error_t *err)
{
    size_t cap = len + len / 4 + 64, n = 0, depth = 0;
    char *out = malloc(cap);
    /* open containers ('{' or '['), so a number where an object key is due
     * is caught here: tagged, it would pass jansson as a string key */
    /* depth never exceeds the brackets in the input: size the stack by that,
     * not by the limit (which a caller may set huge, even SIZE_MAX) */
    char *stack = malloc((max_depth < len ? max_depth : len) + 1);
    char last = 0; /* last structural character seen outside strings */
    lexpos_t pos = {1, 1};
    if (!out || !stack) {
        free(out);
        free(stack);
        vl_error_set(err, 500, "exception", NULL, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < len;) {
        char c = in[i];
        if (reserve(&out, &cap, n + 16) < 0)
            goto oom;
        if (c == '"') {
            /* copy a string verbatim, checking escapes for control chars */
            out[n++] = in[i++];
            advance(&pos, c);
            for (;;) {
                if (i >= len) {
                    vl_error_set(err, 400, "structure", NULL,
                                 "invalid JSON at line %zu column %zu: unterminated string",
                                 pos.line, pos.col);
                    goto fail;
                }
                if (reserve(&out, &cap, n + 16) < 0)
                    goto oom;
                c = in[i];
                if ((unsigned char)c < 0x20) {
                    vl_error_set(err, 400, "structure", NULL,
                                 "invalid JSON at line %zu column %zu: control character in string",
                                 pos.line, pos.col);
                    goto fail;
                }
                if (c == '\\' && i + 1 < len) {
                    if (in[i + 1] == 'b' || in[i + 1] == 'f') {
                        vl_error_set(err, 400, "structure", NULL,
                                     "invalid JSON at line %zu column %zu: control character "
                                     "escape \\%c in string",
                                     pos.line, pos.col, in[i + 1]);
                        goto fail;
                    }
                    if (in[i + 1] == 'u' && i + 5 < len) {
                        int h0 = hexval(in[i + 2]), h1 = hexval(in[i + 3]);
                        int h2 = hexval(in[i + 4]), h3 = hexval(in[i + 5]);
                        if (h0 == 0 && h1 == 0 && h2 >= 0 && h2 <= 1 && h3 >= 0) {
                            int cp = h2 * 16 + h3;
                            if (cp != '\t' && cp != '\n' && cp != '\r') {
                                vl_error_set(err, 400, "structure", NULL,
                                             "invalid JSON at line %zu column %zu: escaped "
                                             "control character U+%04X in string",
                                             pos.line, pos.col, (unsigned)cp);
                                goto fail;
                            }
                        }
                    }
                    out[n++] = in[i++];
                    advance(&pos, '\\');
                    c = in[i];
                    out[n++] = in[i++];
                    advance(&pos, c);
                    continue;
                }
                out[n++] = in[i++];
                advance(&pos, c);
                if (c == '"')
                    break;
            }
            last = '"';
            continue;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
            size_t start = i;
            if (depth > 0 && stack[depth - 1] == '{' && (last == '{' || last == ',')) {
                vl_error_set(err, 400, "structure", NULL,
                             "invalid JSON at line %zu column %zu: object keys must be strings",
                             pos.line, pos.col);
                goto fail;
            }
            last = '0';
            while (i < len && is_number_char(in[i]))
                i++;
            if (!vl_json_number_valid(in + start, i - start)) {
                vl_error_set(err, 400, "structure", NULL,
                             "invalid JSON at line %zu column %zu: malformed number '%.*s'",
                             pos.line, pos.col, (int)((i - start) > 40 ? 40 : (i - start)),
                             in + start);
                goto fail;
            }
            if (reserve(&out, &cap, n + (i - start) + TAG_ESCAPED_LEN + 2 + 16) < 0)
                goto oom;
            out[n++] = '"';
            memcpy(out + n, TAG_ESCAPED, TAG_ESCAPED_LEN);
            n += TAG_ESCAPED_LEN;
            memcpy(out + n, in + start, i - start);
            n += i - start;
            out[n++] = '"';
            pos.col += i - start;
            continue;
        }
        if (c == '{' || c == '[') {
            if (depth + 1 > max_depth) {
                vl_error_set(err, 400, "too-costly", NULL,
                             "JSON nesting deeper than %zu levels at line %zu column %zu",
                             max_depth, pos.line, pos.col);
                goto fail;
            }
            stack[depth++] = c;
        } else if (c == '}' || c == ']') {
            if (depth > 0)
                depth--;
        }
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            last = c;
        out[n++] = in[i++];
        advance(&pos, c);
    }
    out[n] = '\0';
    *outlen = n;
    free(stack);
    return out;
oom:
    vl_error_set(err, 500, "exception", NULL, "out of memory");
fail:
    free(out);
    free(stack);
    return NULL;
}

json_t *vl_json_parse(const char *text, size_t len, const vl_json_limits_t *limits, vl_error_t *err)
{
    size_t max_depth = limits && limits->max_depth ? limits->max_depth : 64;
    size_t rlen = 0;
    json_error_t jerr;
    json_t *root;
    char *rewritten = lex_numbers(text, len, max_depth, &rlen, err);
    if (!rewritten)
        return NULL;
    root = json_loadb(rewritten, rlen, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    free(rewritten);
    if (!root) {
        /* Columns after a number on the same line are shifted by the tags;
         * the line is exact, which is what a client needs to find it. The
         * tag itself is cut out of jansson's text ("near '\u00012'"). */
        char *tag;
        while ((tag = strstr(jerr.text, TAG_ESCAPED)))
            memmove(tag, tag + TAG_ESCAPED_LEN, strlen(tag + TAG_ESCAPED_LEN) + 1);
        vl_error_set(err, 400, "structure", NULL, "invalid JSON at line %d: %s", jerr.line,
                     jerr.text);
        return NULL;
    }
    return root;
}

/* ------------------------------------------------------------------------
 * Dumping
 * ---------------------------------------------------------------------- */

/* Rewrites jansson output in place: "\u0001<token>" becomes <token>. The
 * result is never longer than the input. */
static size_t untag_numbers(char *s, size_t len)
{
    size_t r = 0, w = 0;
    while (r < len) {
        if (s[r] != '"') {
            s[w++] = s[r++];
            continue;
        }
        if (r + 1 + TAG_ESCAPED_LEN <= len &&
            memcmp(s + r + 1, TAG_ESCAPED, TAG_ESCAPED_LEN) == 0) {
            r += 1 + TAG_ESCAPED_LEN;
            while (r < len && s[r] != '"')
                s[w++] = s[r++];
            r++; /* closing quote */
            continue;
        }
        /* an ordinary string: copy through its closing quote */
        s[w++] = s[r++];
        while (r < len) {
            char c = s[r];
            s[w++] = s[r++];
            if (c == '\\' && r < len) {
                s[w++] = s[r++];
            } else if (c == '"') {
                break;
            }
        }
    }
    s[w] = '\0';
    return w;
}

char *vl_json_dump(const json_t *json, size_t *len)
{
    char *s = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    size_t n;
    if (!s)
        return NULL;
    n = untag_numbers(s, strlen(s));
    if (len)
        *len = n;
    return s;
}

/* ------------------------------------------------------------------------
 * Tagged numbers
 * ---------------------------------------------------------------------- */

json_t *vl_json_number(const char *text)
{
    size_t n = strlen(text);
    char *buf;
    json_t *j;
    if (!vl_json_number_valid(text, n))
        return NULL;
    buf = malloc(n + 2);
    if (!buf)
        return NULL;
    buf[0] = VL_JSON_NUMBER_TAG;
    memcpy(buf + 1, text, n + 1);
    j = json_stringn(buf, n + 1);
    free(buf);
    return j;
}

const char *vl_json_number_text(const json_t *json)
{
    const char *s;
    if (!json_is_string(json))
        return NULL;
    s = json_string_value(json);
    return s[0] == VL_JSON_NUMBER_TAG ? s + 1 : NULL;
}

int vl_json_is_number(const json_t *json)
{
    return json_is_number(json) || vl_json_number_text(json) != NULL;
}

int vl_json_is_string(const json_t *json)
{
    return json_is_string(json) && json_string_value(json)[0] != VL_JSON_NUMBER_TAG;
}

double vl_json_number_value(const json_t *json)
{
    const char *t = vl_json_number_text(json);
    if (t)
        return strtod(t, NULL);
    if (json_is_number(json))
        return json_number_value(json);
    return NAN;
}
