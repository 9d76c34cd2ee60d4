/* status.h: the JSON form of `budgetd status` (status.c), called by the
 * operator commands of ops.c. */
#ifndef BUDGETD_CMD_STATUS_H
#define BUDGETD_CMD_STATUS_H

#include "budgetd/redis.h"

/* Prints {"v":1,"prefix":PFX,"portfolios":[...]} for portfolio (NULL:
 * every portfolio under the prefix) on stdout: per portfolio its alloc and
 * proposal (cycle, version, mode, status, decided_at, channels, total;
 * null when absent; the proposal also advice_only and approved), the last
 * decided cycle, the kill (reason, by, at; null) and the approve key's
 * cycle (null). Returns the exit code: 0, or 1 (a Redis failure or an
 * unknown portfolio, said on stderr; nothing on stdout). */
/* Adds free text (from Redis or a checkpoint: an operator's words) to o as
 * a JSON string; invalid UTF-8 becomes U+FFFD, so the document stays JSON
 * (status --json, state --json). */
struct cJSON;
void bd_status_json_text(struct cJSON *o, const char *key, const char *v);

int bd_status_json(bd_redis_t *r, const char *portfolio, const char *prefix);

/* The summary table `budgetd status` prints above the per-portfolio blocks
 * when it lists every portfolio: one row each (portfolio, mode, status,
 * cycle and total of the allocation in force, the proposal's cycle, KILLED).
 * Returns 0, or -1 on a Redis failure (err says why). */
int bd_status_summary(bd_redis_t *r, char *const *names, size_t n, char *err, size_t errlen);

/* The channel rows of a status block (ops.c): the allocation in force
 * beside the proposal (when there is one), merged by name, each channel
 * followed by its arms (v2, "  C/A"), then the totals (channels only). */
void bd_status_channels(const bd_redis_alloc_t *al, const bd_redis_alloc_t *pr);

#endif
