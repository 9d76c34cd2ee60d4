/* log.h: the one log function of budgetd. Every diagnostic line goes through
 * bd_log; what a command prints as its result (records, summaries, tables,
 * usage) is output, not a log, and goes to its own stream.
 *
 * A line is "budgetd: LEVEL: message" on stderr, with an ISO-8601 UTC time
 * in front when timestamps are on (the daemon turns them on). Lines below
 * the minimum level are dropped. One write per line, so lines of different
 * threads never interleave. */
#ifndef BUDGETD_LOG_H
#define BUDGETD_LOG_H

#include <stdbool.h>

typedef enum { BD_LOG_DEBUG = 0, BD_LOG_INFO, BD_LOG_WARN, BD_LOG_ERROR } bd_log_level_t;

void bd_log(bd_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Process-wide settings; call before threads start. */
void bd_log_set_level(bd_log_level_t min);
void bd_log_set_timestamps(bool on);

/* "debug", "info", "warn", "error". */
const char *bd_log_level_name(bd_log_level_t level);

#endif
