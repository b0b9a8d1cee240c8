/*
 * ucum_dump: prints the UCUM table of src/fhir/ucum.c for
 * tests/interop/ucum_factors.mjs, which checks it against the reference
 * implementation (@lhncbc/ucum-lhc) without a second copy of the table.
 *
 *   ucum_dump            one line per row:   code canonical factor offset
 *   ucum_dump CODE...    one line per CODE:  CODE canonical factor offset
 *                        of the row vl_ucum_find(CODE) gives, or "CODE -"
 *
 * Numbers are printed with %.17g, enough to read back the same double.
 * UCUM codes hold no spaces, so the fields are separated by one space.
 */
#include <stdio.h>

#include "../../../src/fhir/ucum.h"

static void row(const char *code, const vl_ucum_unit_t *u)
{
    if (u)
        printf("%s %s %.17g %.17g\n", code, u->canonical, u->factor, u->offset);
    else
        printf("%s -\n", code);
}

int main(int argc, char **argv)
{
    size_t n;
    const vl_ucum_unit_t *t = vl_ucum_table(&n);
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            row(argv[i], vl_ucum_find(argv[i]));
    } else {
        for (size_t i = 0; i < n; i++)
            row(t[i].code, &t[i]);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
