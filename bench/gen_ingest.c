/*
 * bench/gen_ingest.c: input for bench/ingest.sh.
 *
 *   gen_ingest omh N            N Open mHealth data points as NDJSON on stdout: heart-rate
 *                               instants and step-count minutes, alternating, one patient's
 *                               wearable, one second apart from 2024-01-01T00:00:00Z
 *   gen_ingest export BYTES     an Apple Health export.xml of about BYTES bytes on stdout:
 *                               heart-rate, step and body-mass Records with metadata, and
 *                               blood-pressure Correlations whose members also appear at top
 *                               level, as Apple writes them
 *
 * Deterministic: the same arguments give the same bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void iso(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void apple(int64_t t, char out[40])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 40, "%Y-%m-%d %H:%M:%S +0000", &tm);
}

static int omh(long n)
{
    const int64_t t0 = 1704067200; /* 2024-01-01T00:00:00Z */
    char a[32], b[32];
    for (long i = 0; i < n; i++) {
        int64_t t = t0 + i;
        iso(t, a);
        if (i % 2 == 0) {
            printf("{\"header\":{\"id\":\"hr-%ld\",\"creation_date_time\":\"%s\",\"schema_id\":"
                   "{\"namespace\":\"omh\",\"name\":\"heart-rate\",\"version\":\"1.0\"}},"
                   "\"body\":{\"heart_rate\":{\"value\":%ld,\"unit\":\"beats/min\"},"
                   "\"effective_time_frame\":{\"date_time\":\"%s\"}}}\n",
                   i, a, 55 + (i * 7) % 60, a);
        } else {
            iso(t + 60, b);
            printf("{\"header\":{\"id\":\"steps-%ld\",\"creation_date_time\":\"%s\",\"schema_id\":"
                   "{\"namespace\":\"omh\",\"name\":\"step-count\",\"version\":\"1.0\"}},"
                   "\"body\":{\"step_count\":%ld,\"effective_time_frame\":{\"time_interval\":"
                   "{\"start_date_time\":\"%s\",\"end_date_time\":\"%s\"}}}}\n",
                   i, b, (i * 13) % 150, a, b);
        }
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

static const char device[] =
    "&lt;&lt;HKDevice: 0x283c0d7c0&gt;, name:Apple Watch, manufacturer:Apple Inc., "
    "model:Watch, hardware:Watch6,2, software:9.1&gt;";

static int bp_record(const char *indent, const char *which, const char *created, const char *at,
                     long value)
{
    return printf("%s<Record type=\"HKQuantityTypeIdentifierBloodPressure%s\" sourceName=\"Omron\" "
                  "unit=\"mmHg\" creationDate=\"%s\" startDate=\"%s\" endDate=\"%s\" "
                  "value=\"%ld\"/>\n",
                  indent, which, created, at, at, value);
}

static int export_xml(long long bytes)
{
    const int64_t t0 = 1672531200; /* 2023-01-01 */
    long long written = 0;
    char a[40], b[40], c[40];
    written +=
        printf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<!DOCTYPE HealthData [\n<!ELEMENT HealthData (ExportDate,Me,(Record|"
               "Correlation|Workout|ActivitySummary)*)>\n]>\n"
               "<HealthData locale=\"en_US\">\n <ExportDate value=\"2024-01-01 00:00:00 "
               "+0000\"/>\n <Me HKCharacteristicTypeIdentifierDateOfBirth=\"1980-01-01\"/>\n");
    for (long i = 0; written < bytes; i++) {
        int64_t t = t0 + i * 30;
        apple(t, a);
        apple(t + 30, b);
        apple(t + 60, c);
        switch (i % 8) {
        case 0:
        case 1:
        case 2:
        case 3:
            written += printf(
                " <Record type=\"HKQuantityTypeIdentifierHeartRate\" sourceName=\"Apple Watch\" "
                "sourceVersion=\"9.1\" device=\"%s\" unit=\"count/min\" creationDate=\"%s\" "
                "startDate=\"%s\" endDate=\"%s\" value=\"%ld\">\n  <MetadataEntry "
                "key=\"HKMetadataKeyHeartRateMotionContext\" value=\"0\"/>\n </Record>\n",
                device, c, a, a, 55 + (i * 7) % 60);
            break;
        case 4:
        case 5:
        case 6:
            written +=
                printf(" <Record type=\"HKQuantityTypeIdentifierStepCount\" "
                       "sourceName=\"iPhone\" sourceVersion=\"16.1\" unit=\"count\" "
                       "creationDate=\"%s\" startDate=\"%s\" endDate=\"%s\" value=\"%ld\"/>\n",
                       c, a, b, (i * 13) % 150);
            break;
        default: {
            long sys = 110 + i % 30, dia = 70 + i % 20;
            written += bp_record(" ", "Systolic", c, a, sys);
            written += bp_record(" ", "Diastolic", c, a, dia);
            written += printf(" <Correlation type=\"HKCorrelationTypeIdentifierBloodPressure\" "
                              "sourceName=\"Omron\" creationDate=\"%s\" startDate=\"%s\" "
                              "endDate=\"%s\">\n",
                              c, a, a);
            written += bp_record("  ", "Systolic", c, a, sys);
            written += bp_record("  ", "Diastolic", c, a, dia);
            written += printf(" </Correlation>\n");
        }
        }
    }
    printf("</HealthData>\n");
    return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "omh"))
        return omh(strtol(argv[2], NULL, 10));
    if (argc == 3 && !strcmp(argv[1], "export"))
        return export_xml(strtoll(argv[2], NULL, 10));
    fputs("usage: gen_ingest omh N | gen_ingest export BYTES\n", stderr);
    return 2;
}
