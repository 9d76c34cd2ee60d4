/* log.h: the one log function of budgetd. Every diagnostic line goes through
 * bd_log (or bd_log_kv, its form for an event of one portfolio); what a
 * command prints as its result (records, summaries, tables, usage) is
 * output, not a log, and goes to its own stream.
 *
 * Three line formats (bd_log_set_format), all on stderr, one write per line
 * so that lines of different threads never interleave:
 *   text    "budgetd: LEVEL: message", with " portfolio=P cycle=N" after the
 *           message of a bd_log_kv line: the default, for a terminal;
 *   logfmt  "level=LEVEL portfolio=P cycle=N msg=\"message\"": one
 *           key=value line per event (journald, Loki, any logfmt reader);
 *   json    {"level":"info","portfolio":"P","cycle":N,"msg":"message"}.
 * When timestamps are on (the daemon turns them on) each line starts with
 * the ISO-8601 UTC time: "TIME " in text, ts=TIME in logfmt, "ts" in json.
 * The message text is the same in every format. Lines below the minimum
 * level are dropped. */
#ifndef BUDGETD_LOG_H
#define BUDGETD_LOG_H

#include <stdbool.h>
#include <stdint.h>

typedef enum { BD_LOG_DEBUG = 0, BD_LOG_INFO, BD_LOG_WARN, BD_LOG_ERROR } bd_log_level_t;

typedef enum { BD_LOG_FORMAT_TEXT = 0, BD_LOG_FORMAT_LOGFMT, BD_LOG_FORMAT_JSON } bd_log_format_t;

/* bd_log_kv's cycle when the event concerns no cycle: the key is left out. */
#define BD_LOG_NO_CYCLE INT64_MIN

void bd_log(bd_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A notable event of one portfolio: the line carries portfolio (NULL: left
 * out) and cycle (BD_LOG_NO_CYCLE: left out) as keys in every format, so
 * that a log reader can select a portfolio's events without parsing text. */
void bd_log_kv(bd_log_level_t level, const char *portfolio, int64_t cycle, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Process-wide settings; call before threads start. */
void bd_log_set_level(bd_log_level_t min);
void bd_log_set_timestamps(bool on);
void bd_log_set_format(bd_log_format_t f);

/* "text", "logfmt" or "json" into *out; false for any other name. */
bool bd_log_format_parse(const char *name, bd_log_format_t *out);

/* "debug", "info", "warn", "error". */
const char *bd_log_level_name(bd_log_level_t level);

/* Formats one line as bd_log_kv would write it (newline included, cut to
 * fit cap like a written line: a json line stays valid JSON) into buf;
 * returns its length. ts is the line's time (NULL: none). For tests and
 * for the writers above. */
size_t bd_log_format_line(char *buf, size_t cap, bd_log_format_t f, const char *ts, bd_log_level_t level,
                          const char *portfolio, int64_t cycle, const char *msg);

#endif
