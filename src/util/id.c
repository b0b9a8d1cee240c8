/*
 * Resource ids: 32 lowercase hex digits (valid FHIR ids:
 * [A-Za-z0-9\-\.]{1,64}), time-ordered like a UUIDv7: 48 bits of
 * milliseconds since the epoch, then 80 bits from libsodium's CSPRNG.
 *
 * Why time-ordered: ids are keys of the store's (type, id) index. Random
 * keys land on a random leaf each, so a batch of N creates dirties N pages
 * of that index (and writes N pages to the WAL); ids that grow with time
 * append to the same few leaves. 80 random bits keep them unguessable; the
 * time they reveal is the resource's creation, which meta.lastUpdated of
 * its first version shows anyway.
 */
#include <string.h>

#include <sodium.h>

#include "vitalog/util.h"

/* A per-thread pool of CSPRNG output: one getrandom() per 4 KiB instead of
 * one per id or salt (two system calls per write otherwise). */
#define POOL 4096
static _Thread_local unsigned char pool[POOL];
static _Thread_local size_t pool_left;

void vl_random(void *out, size_t n)
{
    unsigned char *o = out;
    while (n) {
        size_t k;
        if (!pool_left) {
            randombytes_buf(pool, POOL);
            pool_left = POOL;
        }
        k = n < pool_left ? n : pool_left;
        memcpy(o, pool + POOL - pool_left, k);
        sodium_memzero(pool + POOL - pool_left, k); /* handed out: not kept */
        pool_left -= k;
        o += k;
        n -= k;
    }
}

void vl_id_new(char out[33])
{
    unsigned char raw[16];
    uint64_t ms = (uint64_t)(vl_time_now_us() / 1000);
    for (int i = 0; i < 6; i++)
        raw[i] = (unsigned char)(ms >> (8 * (5 - i)));
    vl_random(raw + 6, sizeof raw - 6);
    sodium_bin2hex(out, 33, raw, sizeof raw);
}
