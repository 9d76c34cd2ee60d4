/* killswitch.h: the kill-switch of one portfolio, in one module: its
 * triggers, its latch, the operator's kill and resume, and the kill action's
 * allocation. decide.c asks it, once per closed cycle, whether the portfolio
 * is (now) killed and what a killed portfolio spends.
 *
 * The latch is p->killed with p->kill_reason, p->kill_by and p->kill_at
 * (portfolio.h). Only this module
 * sets or clears them; checkpoint.c saves and restores them as they are.
 * Inside the engine the latch is authoritative: a decision reads nothing
 * else to know whether it is a kill.
 *
 * Other parts mirror the latch outside the engine (docs/ARCHITECTURE.md,
 * docs/DECISIONS.md "Kill actions"):
 *  - the Redis kill key PFX:{P}:kill (CONTRACT §3), the operators' side
 *    and the truth across processes. The tripping decision (record field
 *    `tripped`) creates it (by=engine) in its own write script
 *    (engine/io/redis.c); operators create it (`budgetd kill`, redis-cli)
 *    and clear it with a recorded resume (`budgetd resume`: the key
 *    deleted and PFX:{P}:resume written in one step, docs/CONTRACT.md v2
 *    §6.3). The daemon (engine/cmd/run.c) reads the key at restore and
 *    before cycles close: a key latches p (bd_killswitch_latch); a missing
 *    key clears the latch only when a resume record clears it
 *    (bd_killswitch_resume_clears), otherwise the daemon writes the key
 *    again: a lost key is not a resume.
 *  - the write script's status override: while the kill key exists it
 *    stores and announces `killed` instead of `active`, so Redis never
 *    shows an active allocation for a killed portfolio, even before the
 *    daemon's next read of the key. */
#ifndef BUDGETD_KILLSWITCH_H
#define BUDGETD_KILLSWITCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "budgetd/config.h"
#include "budgetd/model.h"
#include "budgetd/portfolio.h"

/* What the triggers see of one closed cycle of p. */
typedef struct {
    const bd_agg_t *agg;     /* the cycle's aggregates, p->n entries */
    const bool *corrupt;     /* per channel: agg holds implausible numbers (model.h) */
    int64_t closed_end;      /* event time at which the closed cycle ends */
    int64_t at;              /* the decision's decided_at: a trip's kill_at */
    int64_t last_event_ts;   /* p's newest event time; INT64_MIN: none yet */
    uint64_t events;         /* events accepted since the last decision */
    uint64_t rejected;       /* events rejected since the last decision */
    const double *expected;  /* per channel, or NULL (1): the share of the interval's
                              * final, season-average value that the reports so far
                              * stand for (season factor x reporting completeness);
                              * the trailing ROAS counts value / expected, so that
                              * neither a slow-reporting channel nor a predictable
                              * night trough reads as a loss */
    const bool *faulted;     /* v2, per channel or NULL: under a data fault (fault.h):
                              * kept out of the trailing window like corrupt data */
    const char *fault_reason;/* v2: a data fault whose action is kill was flagged in
                              * this cycle (the reason), else NULL */
} bd_killswitch_cycle_t;

/* One closed cycle: adds its spend and objective value to the trailing
 * window (corrupt channels left out), then, unless p is already latched,
 * runs the triggers and latches p on the first that fires. Returns true
 * when this cycle tripped the latch (the record's `tripped`). */
bool bd_killswitch_close_cycle(bd_portfolio_t *p, const bd_killswitch_cycle_t *c);

/* The triggers alone, in their fixed order: implausible data (always on),
 * a data fault with action kill (v2), overspend (one cycle above
 * overspend_ratio, or v2: a run of over-delivery beyond the delivery
 * tolerance whose excess adds up to more than overspend_ratio - 1 times
 * the allocation, delivery.h), stale data, rejected-event ratio, trailing
 * ROAS over the window. On a trip writes the reason and returns true.
 * Reads p, changes nothing. */
bool bd_killswitch_check(const bd_portfolio_t *p, const bd_killswitch_cycle_t *c, char *reason,
                         size_t rlen);

/* The kill action's allocation of p into x (p->n entries): freeze keeps
 * the allocation in force, fallback the configured initial split (cfgs:
 * each channel's config), zero nothing. */
void bd_killswitch_action_alloc(const bd_portfolio_t *p, const bd_channel_cfg_t *const *cfgs,
                                double *x);

/* An operator's kill (PFX:{P}:kill seen by the daemon): latches p with the
 * reason "operator: <reason>"; its next decision is the kill action's. */
void bd_killswitch_operator_kill(bd_portfolio_t *p, const char *reason);
/* A kill key {reason, by, at} seen by the daemon: latches p with its actor
 * and time. The reason is labelled truly: as is when by is "engine" (a
 * trip of another daemon), "operator: <reason>" otherwise. */
void bd_killswitch_latch(bd_portfolio_t *p, const char *reason, const char *by, int64_t at);
/* The engine kills p outside a decision (a checkpoint it must not restore,
 * docs/CONTRACT.md v2 §6.5): latched with reason as is, by the engine, at
 * `at`; its next decision is the kill action's. */
void bd_killswitch_engine_kill(bd_portfolio_t *p, const char *reason, int64_t at);
/* The reason to write in a kill key for p's latch: the latch's reason
 * without the label this module put in front of an operator's. */
const char *bd_killswitch_key_reason(const bd_portfolio_t *p);
/* Does a recorded resume (PFX:{P}:resume: its time `at` and the `at` of the
 * kill it cleared, kill_at) clear p's latch? Yes when it cleared this kill
 * or a later one (kill_at >= p->kill_at) or was recorded after the latch
 * (p->kill_at < at). */
bool bd_killswitch_resume_clears(const bd_portfolio_t *p, int64_t at, int64_t kill_at);
/* An operator's resume (the kill key cleared): unlatches p; the trailing
 * ROAS window restarts so the cycles before the kill cannot re-trip it. The
 * next decision starts from the kill action's allocation. */
void bd_killswitch_operator_resume(bd_portfolio_t *p);

#endif
