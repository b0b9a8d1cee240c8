/*
 * Fuzz target: the Apple Health export.xml reader (ingest/healthkit_xml.c).
 *
 * Bytes -> a memory file -> vl_ingest_healthkit_xml, each sample then
 * through vl_ingest_healthkit. Checks that nothing crashes or leaks and
 * that a refused file is a 400.
 */
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vitalog/ingest.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static int reading(void *ctx, const vl_ingest_reading_t *r, const char *why)
{
    (void)ctx;
    if (!why && !r->measure)
        abort();
    return 0;
}

static int sample(void *ctx, json_t *s)
{
    vl_error_t err = VL_ERROR_INIT;
    (void)ctx;
    if (vl_ingest_healthkit(s, NULL, reading, NULL, &err) < 0 && err.status != 400)
        abort();
    vl_error_clear(&err);
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    vl_error_t err = VL_ERROR_INIT;
    int fd = memfd_create("export.xml", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    lseek(fd, 0, SEEK_SET);
    if (vl_ingest_healthkit_xml(fd, sample, NULL, NULL, NULL, &err) < 0 && err.status != 400)
        abort();
    vl_error_clear(&err);
    close(fd);
    return 0;
}
