/*
 * Resource ids: 128 bits from libsodium's CSPRNG, as 32 lowercase hex digits
 * (valid FHIR ids: [A-Za-z0-9\-\.]{1,64}).
 */
#include <sodium.h>

#include "vitalog/util.h"

void vl_id_new(char out[33])
{
    unsigned char raw[16];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(out, 33, raw, sizeof raw);
}
