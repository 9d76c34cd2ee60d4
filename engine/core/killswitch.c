/* killswitch.c: triggers, latch, operator kill/resume and the kill action
 * (killswitch.h). No I/O: the Redis kill key and the write script's status
 * override mirror the latch from engine/io and engine/cmd. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "budgetd/alloc.h"
#include "budgetd/killswitch.h"

/* The objective value of an aggregate: what the trailing-ROAS trigger and
 * the record call "return". */
static double agg_value(const bd_agg_t *a, bd_objective_t obj)
{
    return obj == BD_OBJ_REVENUE ? a->revenue : a->conversions;
}

/* Always on, whatever the config: numbers no channel can produce. */
static bool trip_implausible(const bd_portfolio_t *p, const bd_killswitch_cycle_t *c, char *reason,
                             size_t rlen)
{
    for (size_t i = 0; i < p->n; i++) {
        if (!c->corrupt[i]) continue;
        double v;
        const char *what = bd_agg_implausible(&c->agg[i], &v);
        snprintf(reason, rlen, "implausible data: channel '%s' reported %s %g (above %g)",
                 p->ch[i].name, what, v, BD_AGG_IMPLAUSIBLE);
        return true;
    }
    return false;
}

/* A data fault whose action is kill was flagged in this cycle (fault.h). */
static bool trip_fault(const bd_killswitch_cycle_t *c, char *reason, size_t rlen)
{
    if (!c->fault_reason) return false;
    snprintf(reason, rlen, "%s", c->fault_reason);
    return true;
}

/* A channel spent more than overspend_ratio times its allocation (a channel
 * at 0 may report cents: 1% of the budget of slack), or over-delivered
 * beyond the delivery tolerance cycle after cycle until the excess adds up
 * to as much (delivery.h). */
static bool trip_overspend(const bd_portfolio_t *p, const bd_killswitch_cycle_t *c, char *reason,
                           size_t rlen)
{
    const bd_policy_t *pol = p->pol;
    if (!(pol->kill.overspend_ratio > 0)) return false;
    for (size_t i = 0; i < p->n; i++) {
        double allowed = p->ch[i].x * pol->kill.overspend_ratio;
        double slack = 0.01 * pol->budget;
        if (c->agg[i].spend > allowed + (p->ch[i].x > 0 ? 0 : slack) && c->agg[i].spend > 0) {
            snprintf(reason, rlen, "overspend: channel '%s' reported %.2f, allocation %.2f x %.2f",
                     p->ch[i].name, c->agg[i].spend, p->ch[i].x, pol->kill.overspend_ratio);
            return true;
        }
    }
    for (size_t i = 0; i < p->n; i++) {
        const bd_delivery_t *d = &p->ch[i].dlv;
        if (!bd_delivery_overspent(d, pol->kill.overspend_ratio - 1.0)) continue;
        snprintf(reason, rlen,
                 "overspend: channel '%s' over-delivered %u cycles in a row, %.0f%% of its allocation "
                 "in excess (overspend_ratio %.2f)",
                 p->ch[i].name, d->over, 100 * d->excess, pol->kill.overspend_ratio);
        return true;
    }
    return false;
}

/* No event for longer than stale_after at the end of the closed cycle. */
static bool trip_stale(const bd_portfolio_t *p, const bd_killswitch_cycle_t *c, char *reason,
                       size_t rlen)
{
    int64_t after = p->pol->kill.stale_after;
    if (!(after > 0) || c->last_event_ts == INT64_MIN || c->closed_end - c->last_event_ts <= after)
        return false;
    snprintf(reason, rlen, "stale: no events for %llds (stale_after %llds)",
             (long long)(c->closed_end - c->last_event_ts), (long long)after);
    return true;
}

/* More than max_reject_ratio of at least 10 events seen were rejected. */
static bool trip_rejects(const bd_portfolio_t *p, const bd_killswitch_cycle_t *c, char *reason,
                         size_t rlen)
{
    double ratio = p->pol->kill.max_reject_ratio;
    uint64_t seen = c->events + c->rejected;
    if (!(ratio < 1) || seen < 10 || !((double)c->rejected > ratio * (double)seen)) return false;
    snprintf(reason, rlen, "rejects: %llu of %llu events rejected (max ratio %.2f)",
             (unsigned long long)c->rejected, (unsigned long long)seen, ratio);
    return true;
}

/* Return over spend of the last `window` closed cycles below roas_below,
 * once the window is full and it spent more than 1% of the budget. */
static bool trip_roas(const bd_portfolio_t *p, char *reason, size_t rlen)
{
    const bd_policy_t *pol = p->pol;
    int w = pol->kill.window;
    if (!(pol->kill.roas_below > 0) || w <= 0 || p->hist_n < (uint64_t)w) return false;
    double spend = 0, value = 0;
    for (int k = 0; k < w; k++) {
        spend += p->hist[k].spend;
        value += p->hist[k].value;
    }
    if (!(spend > 0.01 * pol->budget && value / spend < pol->kill.roas_below)) return false;
    snprintf(reason, rlen, "roas: %.4f over the last %d cycles, below %.4f", value / spend, w,
             pol->kill.roas_below);
    return true;
}

bool bd_killswitch_check(const bd_portfolio_t *p, const bd_killswitch_cycle_t *c, char *reason,
                         size_t rlen)
{
    return trip_implausible(p, c, reason, rlen) || trip_fault(c, reason, rlen) ||
           trip_overspend(p, c, reason, rlen) ||
           trip_stale(p, c, reason, rlen) || trip_rejects(p, c, reason, rlen) ||
           trip_roas(p, reason, rlen);
}

/* Adds the cycle to the trailing window: a ring of pol->kill.window cycles
 * (one slot when the trigger is off); corrupt channels and channels under
 * a data fault are kept out. */
static void window_push(bd_portfolio_t *p, const bd_killswitch_cycle_t *c)
{
    bd_cycle_hist_t h = {0, 0};
    for (size_t i = 0; i < p->n; i++) {
        if (c->corrupt[i] || (c->faulted && c->faulted[i])) continue;
        h.spend += c->agg[i].spend;
        double v = agg_value(&c->agg[i], p->pol->objective);
        double e = c->expected ? c->expected[i] : 1.0;
        h.value += e > 0 && isfinite(e) ? v / e : v;
    }
    int w = p->pol->kill.window > 0 ? p->pol->kill.window : 1;
    p->hist[p->hist_n % (uint64_t)w] = h;
    p->hist_n++;
}

bool bd_killswitch_close_cycle(bd_portfolio_t *p, const bd_killswitch_cycle_t *c)
{
    window_push(p, c);
    char reason[sizeof(p->kill_reason)];
    if (p->killed || !bd_killswitch_check(p, c, reason, sizeof(reason))) return false;
    p->killed = true;
    snprintf(p->kill_reason, sizeof(p->kill_reason), "%s", reason);
    snprintf(p->kill_by, sizeof(p->kill_by), "engine");
    p->kill_at = c->at;
    return true;
}

void bd_killswitch_action_alloc(const bd_portfolio_t *p, const bd_channel_cfg_t *const *cfgs,
                                double *x)
{
    switch (p->pol->kill.action) {
    case BD_KILL_FREEZE:
        for (size_t i = 0; i < p->n; i++) x[i] = p->ch[i].x;
        break;
    case BD_KILL_FALLBACK:
        bd_alloc_initial(p->pol, cfgs, p->n, x);
        break;
    case BD_KILL_ZERO:
        for (size_t i = 0; i < p->n; i++) x[i] = 0;
        break;
    }
}

void bd_killswitch_operator_kill(bd_portfolio_t *p, const char *reason)
{
    bd_killswitch_latch(p, reason, "operator", 0);
}

/* The label an operator's reason gets in the latch (and the record). */
#define KS_OPERATOR_LABEL "operator: "

void bd_killswitch_latch(bd_portfolio_t *p, const char *reason, const char *by, int64_t at)
{
    p->killed = true;
    /* an engine's kill (a trip of another daemon) keeps its reason as the
     * engine wrote it: only an operator's gets the operator label */
    if (by && strcmp(by, "engine") == 0)
        snprintf(p->kill_reason, sizeof(p->kill_reason), "%s", reason ? reason : "");
    else
        snprintf(p->kill_reason, sizeof(p->kill_reason), KS_OPERATOR_LABEL "%.140s", reason ? reason : "");
    snprintf(p->kill_by, sizeof(p->kill_by), "%s", by && *by ? by : "operator");
    p->kill_at = at;
}

void bd_killswitch_engine_kill(bd_portfolio_t *p, const char *reason, int64_t at)
{
    p->killed = true;
    snprintf(p->kill_reason, sizeof(p->kill_reason), "%s", reason ? reason : "");
    snprintf(p->kill_by, sizeof(p->kill_by), "engine");
    p->kill_at = at;
}

const char *bd_killswitch_key_reason(const bd_portfolio_t *p)
{
    size_t n = strlen(KS_OPERATOR_LABEL);
    if (strcmp(p->kill_by, "engine") != 0 && strncmp(p->kill_reason, KS_OPERATOR_LABEL, n) == 0)
        return p->kill_reason + n;
    return p->kill_reason;
}

bool bd_killswitch_resume_clears(const bd_portfolio_t *p, int64_t at, int64_t kill_at)
{
    return kill_at >= p->kill_at || p->kill_at < at;
}

void bd_killswitch_operator_resume(bd_portfolio_t *p)
{
    p->killed = false;
    p->kill_reason[0] = '\0';
    p->kill_by[0] = '\0';
    p->kill_at = 0;
    p->hist_n = 0;
}
