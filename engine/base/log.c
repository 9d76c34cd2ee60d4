/* log.c: bd_log and bd_log_kv (log.h). Formats the whole line into one
 * buffer and writes it with a single fwrite, so concurrent lines stay
 * whole. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "budgetd/log.h"

#define LOG_LINE_MAX 2048

static bd_log_level_t g_min = BD_LOG_INFO;
static bool g_ts = false;
static bd_log_format_t g_format = BD_LOG_FORMAT_TEXT;

void bd_log_set_level(bd_log_level_t min) { g_min = min; }
void bd_log_set_timestamps(bool on) { g_ts = on; }
void bd_log_set_format(bd_log_format_t f) { g_format = f; }

/* See log.h. */
bool bd_log_format_parse(const char *name, bd_log_format_t *out)
{
    static const char *const names[] = {"text", "logfmt", "json"};
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, names[i])) {
            *out = (bd_log_format_t)i;
            return true;
        }
    return false;
}

const char *bd_log_level_name(bd_log_level_t level)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    return (unsigned)level < 4 ? names[level] : "?";
}

/* A line under construction: len bytes used of cap, and the room kept at
 * the end for what must close it. */
typedef struct {
    char *b;
    size_t len, cap;
} line_t;

/* Appends s whole when it fits in the room left before keep bytes; else
 * nothing. Returns whether it was appended. */
static bool put(line_t *l, const char *s, size_t n, size_t keep)
{
    if (l->len + n + keep > l->cap) return false;
    memcpy(l->b + l->len, s, n);
    l->len += n;
    return true;
}

/* Appends s as the inside of a JSON string (also used for logfmt's quoted
 * values): quote, backslash and control characters escaped. Stops at the
 * first character that would not fit before keep bytes: an escape is never
 * split. */
static void put_escaped(line_t *l, const char *s, size_t keep)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[8];
        size_t n;
        if (*p == '"' || *p == '\\') n = (size_t)snprintf(e, sizeof e, "\\%c", *p);
        else if (*p == '\n') n = (size_t)snprintf(e, sizeof e, "\\n");
        else if (*p == '\t') n = (size_t)snprintf(e, sizeof e, "\\t");
        else if (*p < 0x20 || *p == 0x7f) n = (size_t)snprintf(e, sizeof e, "\\u%04x", *p);
        else e[0] = (char)*p, n = 1;
        if (!put(l, e, n, keep)) return;
    }
}

/* A logfmt value: bare when it is a plain token, else quoted. */
static void put_logfmt_value(line_t *l, const char *s, size_t keep)
{
    bool bare = *s != '\0';
    for (const char *p = s; *p && bare; p++)
        bare = (unsigned char)*p > ' ' && *p != '"' && *p != '=' && *p != '\\' && (unsigned char)*p < 0x7f;
    if (bare) {
        put(l, s, strlen(s), keep);
        return;
    }
    put(l, "\"", 1, keep + 1);
    put_escaped(l, s, keep + 1);
    put(l, "\"", 1, keep);
}

/* The text format: message first, the keys after it (kept whole: the
 * message is cut to make room for them). */
static void line_text(line_t *l, const char *ts, bd_log_level_t level, const char *pf, int64_t cycle,
                      const char *msg)
{
    char tail[160];
    size_t tn = 0;
    if (pf) tn += (size_t)snprintf(tail + tn, sizeof tail - tn, " portfolio=%.64s", pf);
    if (cycle != BD_LOG_NO_CYCLE && tn < sizeof tail)
        tn += (size_t)snprintf(tail + tn, sizeof tail - tn, " cycle=%lld", (long long)cycle);
    if (tn >= sizeof tail) tn = sizeof tail - 1;
    char head[64];
    int hn = snprintf(head, sizeof head, "%s%sbudgetd: %s: ", ts ? ts : "", ts ? " " : "",
                      bd_log_level_name(level));
    put(l, head, (size_t)hn, tn + 1);
    size_t used = l->len + tn + 1, mn = strlen(msg);
    size_t room = used < l->cap ? l->cap - used : 0;
    put(l, msg, mn < room ? mn : room, tn + 1);
    put(l, tail, tn, 1);
}

/* The logfmt format: ts, level, portfolio, cycle, msg. */
static void line_logfmt(line_t *l, const char *ts, bd_log_level_t level, const char *pf, int64_t cycle,
                        const char *msg)
{
    char head[200];
    size_t hn = 0;
    if (ts) hn += (size_t)snprintf(head + hn, sizeof head - hn, "ts=%s ", ts);
    hn += (size_t)snprintf(head + hn, sizeof head - hn, "level=%s", bd_log_level_name(level));
    put(l, head, hn, 1);
    if (pf) {
        put(l, " portfolio=", 11, 1);
        put_logfmt_value(l, pf, 1);
    }
    if (cycle != BD_LOG_NO_CYCLE) {
        char c[32];
        int n = snprintf(c, sizeof c, " cycle=%lld", (long long)cycle);
        put(l, c, (size_t)n, 1);
    }
    if (put(l, " msg=\"", 6, 2)) {
        put_escaped(l, msg, 2);
        put(l, "\"", 1, 1);
    }
}

/* The json format: one object, valid whatever was cut from msg. */
static void line_json(line_t *l, const char *ts, bd_log_level_t level, const char *pf, int64_t cycle,
                      const char *msg)
{
    char head[64];
    put(l, "{", 1, 2);
    if (ts) {
        int n = snprintf(head, sizeof head, "\"ts\":\"%s\",", ts);
        put(l, head, (size_t)n, 2);
    }
    int n = snprintf(head, sizeof head, "\"level\":\"%s\"", bd_log_level_name(level));
    put(l, head, (size_t)n, 2);
    if (pf && put(l, ",\"portfolio\":\"", 14, 4)) {
        put_escaped(l, pf, 3);
        put(l, "\"", 1, 2);
    }
    if (cycle != BD_LOG_NO_CYCLE) {
        n = snprintf(head, sizeof head, ",\"cycle\":%lld", (long long)cycle);
        put(l, head, (size_t)n, 2);
    }
    if (put(l, ",\"msg\":\"", 8, 4)) {
        put_escaped(l, msg, 3);
        put(l, "\"", 1, 2);
    }
    put(l, "}", 1, 1);
}

/* See log.h. */
size_t bd_log_format_line(char *buf, size_t cap, bd_log_format_t f, const char *ts, bd_log_level_t level,
                          const char *portfolio, int64_t cycle, const char *msg)
{
    if (cap < 2) return 0;
    line_t l = {buf, 0, cap - 1}; /* one byte for the terminating NUL */
    switch (f) {
    case BD_LOG_FORMAT_LOGFMT: line_logfmt(&l, ts, level, portfolio, cycle, msg); break;
    case BD_LOG_FORMAT_JSON: line_json(&l, ts, level, portfolio, cycle, msg); break;
    case BD_LOG_FORMAT_TEXT:
    default: line_text(&l, ts, level, portfolio, cycle, msg); break;
    }
    l.b[l.len++] = '\n';
    l.b[l.len] = '\0';
    return l.len;
}

/* Formats the message and writes the line in the configured format. */
static void log_write(bd_log_level_t level, const char *portfolio, int64_t cycle, const char *fmt, va_list ap)
{
    char msg[LOG_LINE_MAX], ts[32], line[LOG_LINE_MAX + 256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    const char *tsp = NULL;
    if (g_ts) {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        if (strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm)) tsp = ts;
    }
    size_t n = bd_log_format_line(line, g_format == BD_LOG_FORMAT_TEXT ? LOG_LINE_MAX : sizeof line, g_format,
                                  tsp, level, portfolio, cycle, msg);
    fwrite(line, 1, n, stderr);
}

/* See log.h. A message longer than the line buffer is cut, never split. */
void bd_log(bd_log_level_t level, const char *fmt, ...)
{
    if (level < g_min) return;
    va_list ap;
    va_start(ap, fmt);
    log_write(level, NULL, BD_LOG_NO_CYCLE, fmt, ap);
    va_end(ap);
}

/* See log.h. */
void bd_log_kv(bd_log_level_t level, const char *portfolio, int64_t cycle, const char *fmt, ...)
{
    if (level < g_min) return;
    va_list ap;
    va_start(ap, fmt);
    log_write(level, portfolio, cycle, fmt, ap);
    va_end(ap);
}
