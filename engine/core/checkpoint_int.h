/* checkpoint_int.h: the value checks of a checkpoint being read
 * (checkpoint_check.c), private to checkpoint.c. A blob comes from Redis
 * and is not trusted: a number no running engine can hold (NaN, an
 * infinity, a negative spend or count, a kind past the last one) makes the
 * whole blob corrupt, so that it is refused rather than decided on. */
#ifndef BUDGETD_CHECKPOINT_INT_H
#define BUDGETD_CHECKPOINT_INT_H

#include <stdbool.h>
#include "budgetd/checkpoint.h"

/* A money amount or a count: finite and >= 0. */
bool bd_ck_amount(double v);
/* A time or cycle number as the engine holds one: INT64_MIN (none) or
 * within [0, BD_TS_MAX] (events are rejected past it), so that the cycle
 * arithmetic on it cannot overflow. */
bool bd_ck_time_ok(int64_t t);
/* One kill-window entry: spend and value amounts. */
bool bd_ck_hist_ok(const bd_cycle_hist_t *h);
/* An aggregate: an open cycle's numbers >= 0 (+inf allowed: a sum of
 * finite events can overflow, which the kill-switch trips on as
 * implausible data); a late report's (is_signed: a restatement may lower a
 * closed interval) finite, of either sign. */
bool bd_ck_agg_ok(const bd_agg_t *a, bool is_signed);
/* A saved channel: its name by the name rule, its allocation, safe
 * allocation and proposal amounts, its time structure, delivery and fault
 * state possible; its model state is possible for `model` (model.h valid;
 * has_model false: the blob holds none, v3). */
bool bd_ck_channel_ok(const bd_checkpoint_channel_t *c, uint64_t model, bool has_model);

#endif
