/*
 * Structured logs: one JSON object per line on stderr, written with a single
 * write(2) so lines from concurrent threads never interleave. Callers pass
 * fields, never request bodies or anything that could hold PHI.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vitalog/util.h"

static vl_log_level_t g_level = VL_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void vl_log_set_level(vl_log_level_t level)
{
    g_level = level;
}

void vl_log(vl_log_level_t level, const char *msg, json_t *fields)
{
    char ts[32];
    json_t *line;
    char *text;
    if (level < g_level) {
        json_decref(fields);
        return;
    }
    vl_time_format(vl_time_now_us(), ts);
    line = json_pack("{s:s,s:s,s:s}", "ts", ts, "level", level_names[level], "msg", msg);
    if (line && fields)
        json_object_update(line, fields);
    json_decref(fields);
    text =
        line ? json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(line);
    if (!text)
        return;
    size_t n = strlen(text);
    char *buf = realloc(text, n + 2);
    if (buf) {
        buf[n] = '\n';
        ssize_t w = write(STDERR_FILENO, buf, n + 1);
        (void)w;
        free(buf);
    } else {
        free(text);
    }
}

void vl_logf(vl_log_level_t level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    if (level < g_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    vl_log(level, msg, NULL);
}
