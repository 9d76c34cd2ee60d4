/* log.c: bd_log (log.h). Formats the whole line into one buffer and writes
 * it with a single fwrite, so concurrent lines stay whole. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "budgetd/log.h"

static bd_log_level_t g_min = BD_LOG_INFO;
static bool g_ts = false;

void bd_log_set_level(bd_log_level_t min) { g_min = min; }
void bd_log_set_timestamps(bool on) { g_ts = on; }

const char *bd_log_level_name(bd_log_level_t level)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    return (unsigned)level < 4 ? names[level] : "?";
}

/* See log.h. A message longer than the line buffer is cut, never split. */
void bd_log(bd_log_level_t level, const char *fmt, ...)
{
    if (level < g_min) return;
    char line[2048];
    size_t n = 0;
    if (g_ts) {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ", &tm);
    }
    int k = snprintf(line + n, sizeof(line) - n, "budgetd: %s: ", bd_log_level_name(level));
    if (k > 0) n += (size_t)k;
    va_list ap;
    va_start(ap, fmt);
    k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (k > 0) n += (size_t)k;
    if (n > sizeof(line) - 2) n = sizeof(line) - 2;
    line[n++] = '\n';
    fwrite(line, 1, n, stderr);
}
