/*
 * docs/ingest.md against the code: every mapping row of every format
 * (source -> measure -> LOINC, source unit -> UCUM, time rule) and the
 * plausibility table of the measures are in the document exactly as the
 * tables in src/ingest hold them, no row more, no row less.
 *
 * The document's tables are recognized by their headings:
 *   "### Mapping: <format>"  with  | source | source unit | UCUM | measure | LOINC | time |
 *   "## Measures"            with  | measure | LOINC | display | category | unit | plausible |
 * Running this test with VL_PRINT_TABLES=1 prints the tables as the code
 * has them (to paste into the document after a change).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vitalog/ingest.h"

#define DOC VL_TEST_DATA "/../../docs/ingest.md"

static const char *category_name(vl_ingest_category_t c)
{
    return c == VL_CAT_ACTIVITY     ? "activity"
           : c == VL_CAT_LABORATORY ? "laboratory"
                                    : "vital-signs";
}

/* A code cell: `x`, or an empty cell for "". */
static void code_cell(char *out, size_t n, const char *s)
{
    if (s && *s)
        snprintf(out, n, "`%s`", s);
    else
        snprintf(out, n, "-");
}

static char *mapping_row(const vl_ingest_mapping_t *m)
{
    const vl_ingest_measure_t *ms = vl_ingest_measure(m->measure);
    char src[160], su[80], ucum[80], *row;
    code_cell(src, sizeof src, m->source);
    code_cell(su, sizeof su, m->source_unit);
    code_cell(ucum, sizeof ucum, m->ucum);
    if (asprintf(&row, "| %s | %s | %s | %s | %s | %s |", src, su, ucum, m->measure,
                 ms ? ms->loinc : "?", m->time_rule) < 0)
        return NULL;
    return row;
}

static char *measure_row(const vl_ingest_measure_t *m)
{
    char *row, unit[48];
    if (m->components[0].loinc) {
        if (asprintf(&row, "| %s | %s | %s | %s | components: %s `%s` %g..%g, %s `%s` %g..%g |",
                     m->key, m->loinc, m->display, category_name(m->category),
                     m->components[0].loinc, m->components[0].unit, m->components[0].lo,
                     m->components[0].hi, m->components[1].loinc, m->components[1].unit,
                     m->components[1].lo, m->components[1].hi) < 0)
            return NULL;
        return row;
    }
    code_cell(unit, sizeof unit, m->unit);
    if (asprintf(&row, "| %s | %s | %s | %s | %s %g..%g |", m->key, m->loinc, m->display,
                 category_name(m->category), unit, m->lo, m->hi) < 0)
        return NULL;
    return row;
}

/* The table rows (lines starting with "| " but not the header or rule)
 * under the heading `heading`, up to the next heading; malloc'd,
 * NULL-terminated. */
static char **doc_rows(const char *doc, const char *heading, size_t *n)
{
    const char *p = strstr(doc, heading), *end;
    char **rows = calloc(512, sizeof *rows);
    int header_seen = 0;
    *n = 0;
    assert_non_null(rows);
    if (!p)
        return rows;
    p = strchr(p + 1, '\n'); /* the end of the heading's line */
    end = p ? strstr(p, "\n#") : NULL;
    if (!end)
        end = p + strlen(p);
    while (p && p < end) {
        const char *nl = strchr(p + 1, '\n');
        size_t len = (nl ? (size_t)(nl - p) : strlen(p)) - 1;
        const char *line = p + 1;
        if (len > 1 && line[0] == '|') {
            if (!header_seen)
                header_seen = 1; /* the header */
            else if (strncmp(line, "|---", 4) && strncmp(line, "| ---", 5) && *n < 511)
                rows[(*n)++] = strndup(line, len);
        }
        p = nl;
    }
    return rows;
}

static int has_row(char **rows, size_t n, const char *row)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(rows[i], row))
            return 1;
    return 0;
}

static char *read_doc(void)
{
    FILE *f = fopen(DOC, "rb");
    char *text;
    long len;
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    text = calloc(1, (size_t)len + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    return text;
}

static void print_tables(void)
{
    printf("## Measures\n\n| measure | LOINC | display | category | unit | plausible |\n"
           "|---|---|---|---|---|---|\n");
    for (const vl_ingest_measure_t *m = vl_ingest_measures; m->key; m++) {
        char *r = measure_row(m);
        printf("%s\n", r);
        free(r);
    }
    for (int f = 0; f < VL_INGEST_N_FORMATS; f++) {
        printf("\n### Mapping: %s\n\n| source | source unit | UCUM | measure | LOINC | time |\n"
               "|---|---|---|---|---|---|\n",
               vl_ingest_format_name((vl_ingest_format_t)f));
        for (const vl_ingest_mapping_t *m = vl_ingest_mappings((vl_ingest_format_t)f); m->source;
             m++) {
            char *r = mapping_row(m);
            printf("%s\n", r);
            free(r);
        }
    }
}

static void free_rows(char **rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(rows[i]);
    free(rows);
}

static void test_measures_documented(void **state)
{
    char *doc = read_doc();
    size_t n, code_rows = 0;
    char **rows = doc_rows(doc, "\n## Measures", &n);
    (void)state;
    for (const vl_ingest_measure_t *m = vl_ingest_measures; m->key; m++, code_rows++) {
        char *r = measure_row(m);
        if (!has_row(rows, n, r))
            fail_msg("docs/ingest.md \"## Measures\" lacks the row\n%s", r);
        free(r);
    }
    assert_int_equal(n, code_rows); /* and has no row the code does not */
    free_rows(rows, n);
    free(doc);
}

static void test_mappings_documented(void **state)
{
    char *doc = read_doc();
    (void)state;
    for (int f = 0; f < VL_INGEST_N_FORMATS; f++) {
        char heading[64];
        size_t n, code_rows = 0;
        char **rows;
        snprintf(heading, sizeof heading, "\n### Mapping: %s\n",
                 vl_ingest_format_name((vl_ingest_format_t)f));
        rows = doc_rows(doc, heading, &n);
        for (const vl_ingest_mapping_t *m = vl_ingest_mappings((vl_ingest_format_t)f); m->source;
             m++, code_rows++) {
            char *r = mapping_row(m);
            assert_non_null(vl_ingest_measure(m->measure)); /* every row names a measure */
            if (!has_row(rows, n, r))
                fail_msg("docs/ingest.md \"%s\" lacks the row\n%s", heading + 1, r);
            free(r);
        }
        assert_true(code_rows > 0); /* every format maps something */
        if (n != code_rows)
            fail_msg("docs/ingest.md \"%s\" has %zu rows, the code %zu", heading + 1, n, code_rows);
        free_rows(rows, n);
    }
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_measures_documented),
        cmocka_unit_test(test_mappings_documented),
    };
    if (getenv("VL_PRINT_TABLES")) {
        print_tables();
        return 0;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
