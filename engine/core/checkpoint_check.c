/* checkpoint_check.c: the value checks of checkpoint.c (checkpoint_int.h).
 * Conservative: a field is refused only for values the engine can never
 * write (a NaN where none is ever stored, an infinity, a negative amount
 * or count, a kind past the last one); a value merely unusual is kept. */
#include <math.h>
#include <string.h>
#include "budgetd/event.h"
#include "checkpoint_int.h"

bool bd_ck_amount(double v) { return v >= 0 && v < INFINITY; }

bool bd_ck_time_ok(int64_t t) { return t == INT64_MIN || (t >= 0 && t <= BD_TS_MAX); }

/* A float statistic that is a sum of amounts (season, lag). */
static bool ck_famount(float v) { return v >= 0 && v < INFINITY; }

bool bd_ck_hist_ok(const bd_cycle_hist_t *h) { return bd_ck_amount(h->spend) && bd_ck_amount(h->value); }

bool bd_ck_agg_ok(const bd_agg_t *a, bool is_signed)
{
    const double x[5] = {a->spend, a->impressions, a->clicks, a->conversions, a->revenue};
    for (int i = 0; i < 5; i++)
        if (is_signed ? !isfinite(x[i]) : !(x[i] >= 0)) return false;
    return true;
}

/* Observed and expected units per bucket and the observation counts are
 * discounted sums (>= 0), the scores finite, the dispersion positive. */
static bool ck_season_ok(const bd_season_t *s)
{
    for (int i = 0; i < BD_SEASON_BUCKETS; i++)
        if (!ck_famount(s->o[i]) || !ck_famount(s->e[i])) return false;
    for (int i = 0; i < 2; i++)
        if (!ck_famount(s->en[i]) || !isfinite(s->score[i])) return false;
    return s->disp > 0 && s->disp < INFINITY;
}

/* Units per age bin and the pending spend are never below 0 (lag.h). */
static bool ck_lag_ok(const bd_lag_t *l)
{
    for (int b = 0; b < BD_LAG_BINS; b++)
        if (!ck_famount(l->n[b]) || !ck_famount(l->x[b]) || !ck_famount(l->sx[b])) return false;
    return true;
}

/* The log-cap estimate finite (mu not NaN: a floor of 0 makes it -inf),
 * variance, weight, excess and probe amounts; the ratio NaN (none) or an
 * amount; the flag 0 or 1. */
static bool ck_delivery_ok(const bd_delivery_t *d)
{
    return !isnan(d->mu) && !isnan(d->run_log) && bd_ck_amount(d->s2) && bd_ck_amount(d->w) &&
           bd_ck_amount(d->probe) && !isnan(d->excess) && fabs(d->excess) < INFINITY &&
           (isnan(d->ratio) || bd_ck_amount(d->ratio)) && d->capped <= 1;
}

/* Kinds within the enum; evidence, hold, baselines and expectation amounts;
 * the share of cycles seen within [0, 1]. */
static bool ck_fault_ok(const bd_fault_t *f)
{
    const double a[] = {f->score, f->hold, f->conv, f->expo, f->rev, f->rconv,
                        f->clicks, f->cspend, f->imps, f->ispend, f->expected};
    for (size_t i = 0; i < sizeof a / sizeof *a; i++)
        if (!bd_ck_amount(a[i])) return false;
    return f->kind < BD_FAULT__COUNT && f->suspect < BD_FAULT__COUNT && f->seen >= 0 && f->seen <= 1;
}

bool bd_ck_channel_ok(const bd_checkpoint_channel_t *c, uint64_t model, bool has_model)
{
    if (!bd_name_valid(c->name, strlen(c->name))) return false;
    if (!bd_ck_amount(c->x) || !bd_ck_amount(c->safe) || !bd_ck_amount(c->proposed)) return false;
    if (!ck_season_ok(&c->season) || !ck_lag_ok(&c->lag) || !ck_delivery_ok(&c->dlv) || !ck_fault_ok(&c->fault))
        return false;
    const bd_model_ops_t *ops = bd_model_get((bd_model_kind_t)model);
    return !has_model || !ops || !ops->valid || ops->valid(&c->m);
}
