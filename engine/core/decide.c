/* decide.c: what happens to one portfolio when one of its cycles closes
 * (docs/ARCHITECTURE.md, from "model update" to "autonomy gate"). Touches only
 * the job's portfolio: the engine runs jobs of distinct portfolios on worker
 * threads and emits their records in queue order. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_rng.h>
#include "budgetd/alloc.h"
#include "budgetd/decide.h"
#include "budgetd/killswitch.h"
#include "budgetd/stats.h"
#include "budgetd/verify.h"

/* The seed hashed with the portfolio's name, mixed with the cycle: a
 * function of (seed, portfolio, cycle) only (decide.h). */
uint64_t bd_decide_seed(uint64_t seed, const char *portfolio, int64_t cycle)
{
    uint64_t h = bd_hash64(portfolio, strlen(portfolio), seed);
    return bd_mix64(h ^ bd_mix64((uint64_t)cycle));
}

/* One run of a job: what its stages share. Arrays have p->n entries. */
typedef struct {
    bd_decide_job_t *job;
    bd_decide_scratch_t *sc;       /* the worker's reused buffers (decide.h) */
    bd_portfolio_t *p;
    bd_decision_t *d;
    const bd_model_ops_t *ops;
    gsl_rng *rng;                  /* seeded from (seed, portfolio, cycle) */
    const bd_channel_cfg_t **cfgs; /* each channel's config */
    double *prev;                  /* the allocation in force when the cycle closed */
    double *x;                     /* the decision's allocation */
    bool *corrupt;                 /* the closed cycle's aggregate is implausible */
    double *expected;              /* closed interval: season factor x reporting share */
    double *mult;                  /* the decided interval's seasonal factor */
    bd_season_cfg_t season;        /* the policy's seasonality for this cycle length */
    int64_t horizon;               /* lag horizon in cycles, 0: lag model off */
    bool *learn;                   /* the closed cycle may be learned from (fault.h) */
    bool *faulted;                 /* the channel is under a data fault: frozen, held */
    bool fault_kill;               /* a fault with action kill was flagged: fault_reason */
    char fault_reason[160];
    size_t *top, n_top;            /* v2: the channels that are not arms (the allocation's) */
    size_t *sub;                   /* v2: scratch for one channel's arms (p->n entries) */
    bool arms;                     /* v2: some channel has arms */
    const bd_agg_t *eff;           /* the closed cycle as the models see it: a channel with arms
                                    * (v2) reports the sum of its own and its arms' events */
    const bool *eff_bad;           /* eff holds an implausible number (the models' corrupt) */
} run_t;

static void decide_season_next(run_t *r);

/* Stage 0: the record's header from the job, the RNG, the scratch. */
static void decide_begin(bd_decide_job_t *job, bd_decide_scratch_t *sc, run_t *r)
{
    bd_portfolio_t *p = job->p;
    size_t n = p->n, n1 = n ? n : 1;
    bd_decision_t *d = &job->d;
    if (job->dch_cap < n) {
        job->dch = bd_xrealloc(job->dch, n * sizeof(*job->dch));
        job->dch_cap = n;
    }
    memset(d, 0, sizeof(*d));
    job->note[0] = '\0';
    job->verify_failed = false;
    d->portfolio = p->name;
    d->cycle = job->cycle;
    d->mode = p->pol->mode;
    d->budget = p->pol->budget;
    d->goal = p->pol->goal.kind;
    d->goal_target = p->pol->goal.target;
    d->budget_min = p->pol->budget_range.min;
    d->marginal = NAN;
    d->show_cvar = p->pol->risk_cvar_floor > 0;
    d->cvar = NAN;
    d->n = n;
    d->ch = job->dch;
    d->events = job->events;
    d->late = job->late;
    d->rejected = job->rejected;
    d->decided_at = job->decided_at;

    *r = (run_t){.job = job, .sc = sc, .p = p, .d = d, .ops = bd_model_get(p->pol->model)};
    if (!sc->rng) sc->rng = gsl_rng_alloc(gsl_rng_taus2);
    r->rng = sc->rng;
    gsl_rng_set(r->rng, (unsigned long)bd_decide_seed(job->cfg->seed, p->name, job->cycle));
    r->cfgs = bd_xmalloc(sizeof(*r->cfgs) * n1);
    r->prev = bd_xmalloc(sizeof(double) * n1 * 2);
    r->x = r->prev + n;
    r->corrupt = bd_xcalloc(n1, sizeof(bool) * 3);
    r->learn = r->corrupt + n1;
    r->faulted = r->learn + n1;
    r->expected = bd_xmalloc(sizeof(double) * n1 * 2);
    r->mult = r->expected + n1;
    for (size_t i = 0; i < n1; i++) r->expected[i] = r->mult[i] = 1.0;
    int64_t L = job->cfg->cycle;
    r->season = bd_season_effective(
        (bd_season_cfg_t){p->pol->season.daily, p->pol->season.weekly}, L);
    r->horizon = p->pol->lag.model == BD_AUTO_OFF ? 0 : (p->pol->lag.horizon + L - 1) / L;
    d->show_season = r->season.daily != BD_AUTO_OFF || r->season.weekly != BD_AUTO_OFF;
    d->show_discount = p->pol->discount == BD_DISCOUNT_AUTO && r->ops && r->ops->forget_rate;
    d->show_delivery = true;
    for (int k = 1; k < BD_FAULT__COUNT; k++) d->show_fault |= p->pol->faults[k] != BD_FAULT_ACT_OFF;
    r->top = bd_xmalloc(sizeof(size_t) * n1 * 2);
    r->sub = r->top + n1;
    for (size_t i = 0; i < n; i++) {
        r->cfgs[i] = p->ch[i].cfg;
        r->prev[i] = p->ch[i].x;
        if (!p->ch[i].owner) r->top[r->n_top++] = i;
        else r->arms = true;
    }
}

/* The arms of channel q (v2) into r->sub; how many. */
static size_t decide_arms_of(const run_t *r, size_t q)
{
    size_t k = 0;
    for (size_t i = 0; i < r->p->n; i++)
        if (r->p->ch[i].owner == q + 1) r->sub[k++] = i;
    return k;
}

/* The policy of channel q's arms as a sub-portfolio (v2): the portfolio's,
 * with q's amount as a fixed budget (docs/CONTRACT.md §11.4). */
static void decide_arms_policy(const run_t *r, size_t q, bd_policy_t *sub)
{
    *sub = *r->p->pol;
    sub->budget = r->x[q];
    sub->budget_range.range = false;
    sub->budget_range.min = 0;
    sub->goal.kind = BD_GOAL_BUDGET;
}

/* The initial split with arms (v2; first sight, kill fallback): among the
 * channels, then each channel's amount among its arms. */
static void decide_split_initial(run_t *r)
{
    size_t n1 = r->p->n ? r->p->n : 1;
    double *x = bd_xmalloc(sizeof(double) * n1);
    const bd_channel_cfg_t **cfg = bd_xmalloc(sizeof(*cfg) * n1);
    for (size_t t = 0; t < r->n_top; t++) cfg[t] = r->cfgs[r->top[t]];
    bd_alloc_initial(r->p->pol, cfg, r->n_top, x);
    for (size_t t = 0; t < r->n_top; t++) r->x[r->top[t]] = x[t];
    for (size_t t = 0; t < r->n_top; t++) {
        size_t q = r->top[t], k = decide_arms_of(r, q);
        if (!k) continue;
        bd_policy_t sub;
        decide_arms_policy(r, q, &sub);
        for (size_t j = 0; j < k; j++) cfg[j] = r->cfgs[r->sub[j]];
        bd_alloc_initial(&sub, cfg, k, x);
        for (size_t j = 0; j < k; j++) r->x[r->sub[j]] = x[j];
    }
    free(x);
    free(cfg);
}

/* Releases what decide_begin allocated. */
static void decide_end(run_t *r)
{
    free(r->cfgs);
    free(r->prev);
    free(r->corrupt);
    free(r->expected);
    free(r->top);
}

/* Posterior ROAS summaries at r->x from S draws, for the paths that do not
 * run the allocator (initial split, kill action): the same definitions as
 * the allocator's (bd_curve_roas_zero at zero spend, bd_stats_quantiles_90). */
static void decide_roas_stats(run_t *r)
{
    enum { S = 64 };
    const bd_portfolio_t *p = r->p;
    const double *x = r->x;
    bd_decision_channel_t *dch = r->d->ch;
    size_t n = p->n;
    double *roas = bd_xmalloc(sizeof(double) * S * (n ? n : 1)), rets[S];
    int below = 0;
    double total = 0;
    for (size_t t = 0; t < r->n_top; t++) total += x[r->top[t]];
    for (int s = 0; s < S; s++) {
        double ret = 0;
        for (size_t i = 0; i < n; i++) {
            bd_curve_t c;
            r->ops->sample(&p->ch[i].model, &p->ch[i].prior, r->rng, &c);
            c.a *= r->mult[i];
            double v = bd_curve_value(&c, x[i]);
            if (!p->ch[i].owner) ret += v; /* an arm's return is its channel's */
            roas[i * S + s] = x[i] > 0 ? v / x[i] : bd_curve_roas_zero(&c);
        }
        if (total > 0 && ret < p->pol->risk_roas_floor * total) below++;
        rets[s] = ret;
    }
    if (r->d->show_cvar && total > 0) r->d->cvar = bd_stats_tail_mean(rets, S, p->pol->risk_cvar_alpha) / total;
    for (size_t i = 0; i < n; i++) {
        double *q = roas + i * S, sum = 0;
        for (int s = 0; s < S; s++) sum += q[s];
        dch[i].mean_roas = sum / S;
        bd_stats_quantiles_90(q, S, &dch[i].roas_lo, &dch[i].roas_hi);
        dch[i].bound = BD_BOUND_NONE;
    }
    r->d->p_below_floor = total > 0 ? (double)below / S : 0;
    free(roas);
}

/* Kill action: a latched portfolio spends what its action says
 * (killswitch.h), at once and without a proposal. */
static void decide_kill_action(run_t *r)
{
    bd_portfolio_t *p = r->p;
    bd_killswitch_action_alloc(p, r->cfgs, r->x);
    if (r->arms && p->pol->kill.action == BD_KILL_FALLBACK) decide_split_initial(r);
    for (size_t i = 0; i < p->n; i++) p->ch[i].x = r->x[i];
    r->d->path = BD_PATH_KILLED;
    r->d->status = BD_STATUS_KILLED;
    r->d->kill_reason = p->kill_reason;
    p->has_proposal = false;
}

/* First sight of the portfolio: the configured split, in force at once. */
static void decide_initial(run_t *r)
{
    bd_portfolio_t *p = r->p;
    decide_season_next(r);
    if (r->arms) decide_split_initial(r);
    else bd_alloc_initial(p->pol, r->cfgs, p->n, r->x);
    for (size_t i = 0; i < p->n; i++) p->ch[i].x = p->ch[i].safe = r->x[i];
    r->d->path = BD_PATH_INITIAL;
    r->d->status = BD_STATUS_ACTIVE;
    /* Killed before its first decision (an operator's kill key found at
     * first sight): the initial split is what freeze keeps. */
    if (p->killed) decide_kill_action(r);
    decide_roas_stats(r);
}

/* Whether the policy has a seasonal profile at all. */
static bool d_season_on(const run_t *r)
{
    return r->season.daily != BD_AUTO_OFF || r->season.weekly != BD_AUTO_OFF;
}

static void decide_season_profiles(const run_t *r, bd_season_profile_t *prof);
static double decide_season_at(const run_t *r, const bd_season_profile_t *prof, int64_t t);

/* Cycles of seasonal factors a decision averages over: the ramp lets a
 * channel move max_step of its spend per cycle, so an allocation made for
 * the next interval alone is still on its way when the hour it chased has
 * passed. Averaging the factors over the cycles the ramp needs to move a
 * channel by about half again (1.5 / max_step, 1 to 12) anticipates the
 * swing: daily_weekly second-half regret 2.29% with one cycle, 1.32% with
 * six at max_step 0.25; at 0.5, three cycles 1.19% against 1.40%
 * (docs/DECISIONS.md "Time structure"). */
static int decide_season_horizon(const bd_policy_t *pol)
{
    double h = pol->max_step > 0 ? 1.5 / pol->max_step : 1;
    return h < 1 ? 1 : h > 12 ? 12 : (int)(h + 0.5);
}

/* The decided interval's seasonal factor per channel (r->mult), averaged
 * over decide_season_horizon cycles from it, which the allocator's draws and
 * the record's ROAS use, and the record's fields of the time structure. */
static void decide_season_next(run_t *r)
{
    bd_portfolio_t *p = r->p;
    int H = decide_season_horizon(p->pol);
    int64_t L = r->job->cfg->cycle;
    bd_season_profile_t *prof = bd_xmalloc(sizeof(*prof) * (p->n ? p->n : 1));
    if (d_season_on(r)) decide_season_profiles(r, prof);
    for (size_t i = 0; i < p->n; i++) {
        double acc = 0;
        for (int h = 0; h < H && d_season_on(r); h++)
            acc += decide_season_at(r, &prof[i], (r->job->cycle + h) * L);
        r->mult[i] = d_season_on(r) ? acc / H : 1.0;
        r->d->ch[i].season = r->mult[i];
        r->d->ch[i].discount = r->ops->forget_rate ? r->ops->forget_rate(&p->ch[i].model) : p->pol->discount;
    }
    free(prof);
}

/* Every channel's seasonal profile as it stands (prof: p->n entries), each
 * with the portfolio's pooled profile as its prior (partial pooling,
 * season.h). */
static void decide_season_profiles(const run_t *r, bd_season_profile_t *prof)
{
    const bd_portfolio_t *p = r->p;
    bd_season_t pool;
    bd_season_profile_t pp;
    bd_season_init(&pool);
    for (size_t i = 0; i < p->n; i++) bd_season_add(&pool, &p->ch[i].season);
    bd_season_profile(&pool, NULL, r->season, &pp);
    for (size_t i = 0; i < p->n; i++) bd_season_profile(&p->ch[i].season, &pp, r->season, &prof[i]);
}

/* A channel's seasonal factor (its profile prof) for the interval starting
 * at t; 1 when the policy has no seasonality. */
static double decide_season_at(const run_t *r, const bd_season_profile_t *prof, int64_t t)
{
    if (!d_season_on(r)) return 1.0;
    int hour, dow;
    bd_season_bucket(t, &hour, &dow);
    return bd_season_apply(prof, hour, dow);
}

/* A late report (portfolio.h bd_late_t) reaches its channel: its units go
 * to the lag distribution at its age and to the model without exposure
 * (the exposure of its interval matures through the lag credits); spend
 * it carries is exposure its interval had not reported, credited at once
 * with the share of units reported by its age. A model without exposure
 * credits (loglog) observes the report as a point of its own. Implausible
 * numbers are never shown to a model. */
static void decide_apply_late(run_t *r, const bd_late_t *it, const bd_season_profile_t *prof)
{
    bd_portfolio_t *p = r->p;
    double v;
    if (it->ch >= p->n || bd_agg_implausible(&it->d, &v)) return;
    bd_channel_t *c = &p->ch[it->ch];
    if (!r->ops->credit) {
        r->ops->observe(&c->model, &c->prior, &it->d, NULL);
        return;
    }
    if (r->horizon > 0)
        bd_lag_report(&c->lag, it->age, bd_agg_units(&it->d, r->ops->units, p->pol->objective));
    bd_agg_t units = it->d;
    units.spend = 0;
    r->ops->observe(&c->model, &c->prior, &units, NULL);
    if (it->d.spend > 0) {
        double s = decide_season_at(r, &prof[it->ch], it->cycle * r->job->cfg->cycle);
        double f = bd_lag_completeness(&c->lag, it->age, r->horizon);
        r->ops->credit(&c->model, &c->prior, it->d.spend, s * f);
    }
}

/* The pending exposure of channel c's recent intervals matures by a cycle
 * (lag.h); the closed interval (spend x, seasonal factor s) joins it. */
static void decide_lag_step(run_t *r, bd_channel_t *c, double x, double s)
{
    if (r->horizon <= 0) return;
    bd_lag_credit_t cr[BD_LAG_BINS];
    int k = bd_lag_step(&c->lag, r->horizon, x, s, cr);
    for (int j = 0; j < k && r->ops->credit; j++)
        r->ops->credit(&c->model, &c->prior, cr[j].x, cr[j].mult);
}

/* One channel's data-fault detector (fault.h) on the closed cycle (its
 * seasonal factor season). A fault flagged here drops the channel's
 * pending exposure (its late reports are dropped from now on) and, when its
 * action is kill, is the kill-switch's reason. */
static void decide_fault(run_t *r, size_t i, double season, double floor, bool others)
{
    bd_portfolio_t *p = r->p;
    bd_channel_t *c = &p->ch[i];
    bd_fault_obs_t o = {.agg = &r->eff[i], .x = r->prev[i], .mult = r->expected[i],
                        .season = season, .floor = floor, .others = others,
                        .cycle = r->job->cycle - 1, .act = p->pol->faults};
    if (bd_fault_observe(&c->fault, &o, &r->learn[i]) != BD_FAULT_EV_FLAGGED) return;
    bd_lag_forget_pending(&c->lag);
    bd_fault_kind_t k = (bd_fault_kind_t)c->fault.kind;
    if (p->pol->faults[k] != BD_FAULT_ACT_KILL || r->fault_kill) return;
    r->fault_kill = true;
    snprintf(r->fault_reason, sizeof r->fault_reason,
             "fault: channel '%s' %s since cycle %lld (conversions %.0f, expected %.1f)", c->name,
             bd_fault_name(k), (long long)c->fault.from, r->eff[i].conversions,
             c->fault.expected);
}

/* Stage 1a (v2), watch: per channel the closed interval's expected share
 * (seasonal factor x share of its units reported on time), then the
 * data-fault detector (fault.h: whether the cycle may be learned from, and
 * the fault in force) and the delivery learner (delivery.h). Both judge
 * only a portfolio that was active: a held or killed one spends nothing. */
static void decide_watch(run_t *r, const bd_season_profile_t *prof, int64_t closed_start)
{
    bd_portfolio_t *p = r->p;
    const bd_agg_t *agg = r->eff;
    const bd_policy_t *pol = p->pol;
    bool active = p->status == BD_STATUS_ACTIVE && !p->killed;
    double floor = fmax(1.0, 0.001 * pol->budget);
    size_t reported = 0;
    for (size_t i = 0; i < p->n; i++) reported += agg[i].events > 0;
    for (size_t i = 0; i < p->n; i++) {
        bd_channel_t *c = &p->ch[i];
        double s = decide_season_at(r, &prof[i], closed_start);
        r->expected[i] = bd_lag_completeness(&c->lag, 0, r->horizon) * s;
        r->learn[i] = true;
        if (active && !r->eff_bad[i]) decide_fault(r, i, s, floor, reported > (agg[i].events > 0));
        r->faulted[i] = c->fault.kind != BD_FAULT_NONE;
        if (active && agg[i].events > 0 && !r->eff_bad[i])
            bd_delivery_observe(&c->dlv, r->prev[i], agg[i].spend, pol->delivery.tolerance, floor,
                                pol->delivery.caps != BD_AUTO_OFF);
        else
            bd_delivery_none(&c->dlv);
    }
}

/* Stage 1, model update of a closed cycle (docs/TIME.md). First the late
 * reports queued since the last close, each to its own interval; then per
 * channel the pending exposure matures by a cycle; then each channel that
 * reported in the cycle forgets (discount toward the prior) and observes
 * its aggregate with its exposure scaled by the interval's seasonal factor
 * and by the share of units reported on time, and its seasonal profile and
 * lag distribution learn from it. A channel without events keeps its
 * posterior: silence (a paused channel, a connector outage) is not
 * evidence that the channel changed, and the stale trigger watches it
 * (docs/DECISIONS.md "Forgetting"). An aggregate holding numbers no channel
 * can produce (model.h) is never shown to a model; r->corrupt marks it for
 * the kill-switch, which trips. A channel under a data fault is frozen:
 * no late report, no lag step, no forgetting, no observation; a cycle the
 * detector withholds is not observed (fault.h). Last, the decided
 * interval's seasonal factors. */
static void decide_update_models(run_t *r)
{
    bd_portfolio_t *p = r->p;
    const bd_decide_job_t *job = r->job;
    const bd_agg_t *agg = job->agg;
    int64_t L = job->cfg->cycle, closed_start = (job->cycle - 1) * L;
    bd_agg_t *own = NULL;
    bool *bad = NULL;
    int hour, dow;
    bd_season_bucket(closed_start, &hour, &dow);
    bd_season_profile_t *prof = bd_xmalloc(sizeof(*prof) * (p->n ? p->n : 1));
    if (d_season_on(r)) decide_season_profiles(r, prof);
    for (size_t i = 0; i < p->n; i++) {
        double v;
        r->corrupt[i] = bd_agg_implausible(&agg[i], &v) != NULL;
    }
    r->eff = agg;
    r->eff_bad = r->corrupt;
    if (r->arms) { /* v2: a channel's models see its arms' events too */
        own = bd_xmalloc(sizeof(*own) * p->n);
        bad = bd_xmalloc(sizeof(*bad) * p->n);
        memcpy(own, agg, sizeof(*own) * p->n);
        for (size_t i = 0; i < p->n; i++) {
            if (!p->ch[i].owner) continue;
            size_t q = p->ch[i].owner - 1;
            own[q].spend += agg[i].spend;
            own[q].impressions += agg[i].impressions;
            own[q].clicks += agg[i].clicks;
            own[q].conversions += agg[i].conversions;
            own[q].revenue += agg[i].revenue;
            own[q].events += agg[i].events;
        }
        for (size_t i = 0; i < p->n; i++) {
            double v;
            bad[i] = r->corrupt[i] || bd_agg_implausible(&own[i], &v) != NULL;
        }
        r->eff = agg = own;
        r->eff_bad = bad;
    }
    decide_watch(r, prof, closed_start);
    for (size_t k = 0; k < job->n_late_items; k++) {
        const bd_late_t *it = &job->late_items[k];
        if (it->ch < p->n && bd_fault_drop_late(&p->ch[it->ch].fault, it->cycle)) continue;
        decide_apply_late(r, it, prof);
        uint32_t q1 = it->ch < p->n ? p->ch[it->ch].owner : 0;
        if (q1 && !bd_fault_drop_late(&p->ch[q1 - 1].fault, it->cycle)) {
            bd_late_t up = *it; /* an arm's late report is its channel's too */
            up.ch = q1 - 1;
            decide_apply_late(r, &up, prof);
        }
    }
    for (size_t i = 0; i < p->n; i++) {
        bd_channel_t *c = &p->ch[i];
        if (r->faulted[i]) continue;
        bool obs = agg[i].events > 0 && !r->eff_bad[i] && r->learn[i];
        double f0 = bd_lag_completeness(&c->lag, 0, r->horizon);
        double s = decide_season_at(r, &prof[i], closed_start);
        r->expected[i] = f0 * s;
        decide_lag_step(r, c, obs ? agg[i].spend : 0, s);
        if (!obs) continue;
        r->ops->discount(&c->model, &c->prior, p->pol->discount);
        double m = r->ops->expect ? r->ops->expect(&c->model, &c->prior, agg[i].spend) * f0 : 0;
        double wd, ww;
        bd_season_weights(&c->season, r->season, &wd, &ww);
        /* k evidence weighted by 1 - the profile's weight (season and
         * saturation are confounded in the closed loop) and by F(0), the
         * share of the interval's units reported on time: a slow channel's
         * on-time count is a sliver judged against a level made of other
         * intervals' late units, and it pulled k to a third of the truth
         * (docs/DECISIONS.md "Saturation of a slow channel") */
        bd_obs_t o = {.mult = f0 * s, .k_learn = (1.0 - (wd > ww ? wd : ww)) * f0};
        r->ops->observe(&c->model, &c->prior, &agg[i], &o);
        double u = bd_agg_units(&agg[i], r->ops->units, p->pol->objective);
        if (d_season_on(r)) bd_season_observe(&c->season, &prof[i], r->season, hour, dow, u, m);
        if (r->horizon > 0) bd_lag_report(&c->lag, 0, u);
    }
    free(prof);
    free(own);
    free(bad);
    r->eff = NULL;
    r->eff_bad = NULL;
    decide_season_next(r);
}

/* Stage 2, kill-switch: the closed cycle goes to the trailing window and
 * the triggers (killswitch.h); the record says whether it tripped. */
static void decide_kill_switch(run_t *r)
{
    const bd_decide_job_t *job = r->job;
    bd_killswitch_cycle_t kc = {
        .agg = job->agg, .corrupt = r->corrupt, .closed_end = job->cycle * job->cfg->cycle,
        .at = job->decided_at,
        .last_event_ts = job->last_event_ts, .events = job->events, .rejected = job->rejected,
        .expected = r->expected, .faulted = r->faulted,
        .fault_reason = r->fault_kill ? r->fault_reason : NULL,
    };
    r->d->tripped = bd_killswitch_close_cycle(r->p, &kc);
}

/* What the allocator and the verifier made of the cycle (stage 3). */
typedef struct {
    bd_err_t rc;          /* BD_OK, or the allocator's or verifier's refusal */
    char err[256];        /* the refusal's text */
    bool kept, risk_held; /* as bd_alloc_output_t */
    bool *promoted;       /* lab gate state after the decision (p->n entries, owned) */
} alloc_result_t;

/* Whether channel c is held at its allocation in force prev: its last
 * cycle was dark (under BD_DLV_DARK of it spent: a paused flight) while
 * another channel delivered, and no cap is learned yet (24 dark cycles cap
 * it, delivery.h). Its conversions meanwhile come from earlier spend and
 * raised its rate: money went to the one channel that could not spend it;
 * cutting it costs a ramp-limited rebuild (docs/DECISIONS.md "A dark
 * channel is held"). No spend reported anywhere is a data shape: no hold. */
static bool decide_dark(const bd_portfolio_t *p, const bd_channel_t *c, const bd_policy_t *pol, double prev)
{
    if (pol->delivery.caps == BD_AUTO_OFF || c->dlv.dark == 0 || c->dlv.capped || !(prev > 0)) return false;
    for (size_t i = 0; i < p->n; i++) /* only while another channel delivered */
        if (&p->ch[i] != c && p->ch[i].dlv.ratio >= BD_DLV_DARK) return true;
    return false;
}

/* The allocator and the verifier on the channels idx[0..m) as a portfolio
 * of their own under pol: the top-level channels under the portfolio's
 * policy, or (v2) one channel's arms with its amount as budget. Their
 * allocation goes to r->x, their statistics and bounds to the record,
 * their lab gate state to res->promoted; top: also the portfolio's risk
 * and goal numbers. */
static void alloc_subset(run_t *r, const size_t *idx, size_t m, const bd_policy_t *pol, bool top,
                         alloc_result_t *res)
{
    bd_portfolio_t *p = r->p;
    size_t m1 = m ? m : 1;
    double *safe = bd_xmalloc(sizeof(double) * m1 * 10);
    double *mean = safe + m1, *lo = mean + m1, *hi = lo + m1, *pin = hi + m1, *hold = pin + m1,
           *dcap = hold + m1, *prev = dcap + m1, *x = prev + m1, *mult = x + m1;
    bool *prom = bd_xcalloc(m1, sizeof(bool) * 3), *prom_out = prom + m1, *dark = prom_out + m1;
    bd_bound_t *bound = bd_xcalloc(m1, sizeof(*bound));
    if (r->sc->st_cap < m1) {
        free(r->sc->st);
        r->sc->st = bd_xmalloc(sizeof(*r->sc->st) * m1);
        r->sc->st_cap = m1;
    }
    bd_model_state_t *st = r->sc->st;
    bd_prior_t *pr = bd_xmalloc(sizeof(*pr) * m1);
    const bd_channel_cfg_t **cfg = bd_xmalloc(sizeof(*cfg) * m1);
    for (size_t j = 0; j < m; j++) {
        bd_channel_t *c = &p->ch[idx[j]];
        safe[j] = c->safe;
        prom[j] = c->promoted;
        st[j] = c->model;
        pr[j] = c->prior;
        cfg[j] = r->cfgs[idx[j]];
        prev[j] = r->prev[idx[j]];
        mult[j] = r->mult[idx[j]];
        pin[j] = bd_channel_pin(c);
        const bd_fault_t *f = &c->fault;
        hold[j] = f->kind != BD_FAULT_NONE && pol->faults[f->kind] != BD_FAULT_ACT_OFF ? f->hold : NAN;
        dark[j] = isnan(hold[j]) && decide_dark(p, c, pol, prev[j]);
        if (dark[j]) hold[j] = prev[j];
        dcap[j] = pol->delivery.caps != BD_AUTO_OFF ? bd_delivery_bound(&c->dlv, 0.01 * pol->budget)
                                                     : INFINITY;
    }
    bd_alloc_input_t in = {
        .n = m, .pol = pol, .cfg = cfg, .ops = r->ops, .states = st, .priors = pr,
        .prev = prev, .safe = safe, .promoted = prom, .rng = r->rng, .mult = mult,
        .pin = pin, .hold = hold, .dcap = dcap,
    };
    bd_alloc_output_t out = r->sc->out; /* its draws and workspace */
    out.x = x;
    out.bound = bound;
    out.mean_roas = mean;
    out.roas_lo = lo;
    out.roas_hi = hi;
    out.promoted = prom_out;
    res->rc = bd_alloc_decide(&in, &out, res->err, sizeof(res->err));
    if (res->rc == BD_OK && !out.kept) {
        bd_verify_input_t vin = {
            .n = m, .pol = pol, .cfg = cfg, .x = x, .prev = prev,
            .promoted = prom_out, .draws = out.draws, .n_draws = out.n_draws,
            .risk_held = out.risk_held, .pin = pin,
        };
        res->rc = bd_verify_allocation(&vin, res->err, sizeof(res->err));
    }
    for (size_t j = 0; j < m; j++) {
        bd_decision_channel_t *dc = &r->d->ch[idx[j]];
        dc->mean_roas = mean[j];
        dc->roas_lo = lo[j];
        dc->roas_hi = hi[j];
        dc->bound = dark[j] && bound[j] == BD_BOUND_FAULT ? BD_BOUND_DELIVERY : bound[j];
        r->x[idx[j]] = res->rc == BD_OK ? x[j] : prev[j];
        res->promoted[idx[j]] = prom_out[j];
    }
    if (top) {
        r->d->p_below_floor = out.p_below_floor;
        r->d->marginal = out.marginal;
        r->d->cvar = out.cvar;
        r->d->cvar_bound = out.cvar_bound;
    }
    res->kept = out.kept;
    res->risk_held = out.risk_held;
    r->sc->out = out; /* keeps the buffers, grown or not, for the next decision */
    free(safe);
    free(prom);
    free(bound);
    free(pr);
    free(cfg);
}

/* Stage 3, allocate and verify: the allocator's allocation into r->x, then
 * (unless it kept the allocation in force) the independent re-check. The
 * record gets the allocator's statistics and bounds whatever the outcome.
 * With arms (v2), each channel's amount is then split among its arms the
 * same way (docs/CONTRACT.md §11.4): a refusal there refuses the decision;
 * the decision is kept only when every split is; while the channels hold
 * (refused or risk held) the arms keep theirs. */
static void decide_allocate(run_t *r, alloc_result_t *res)
{
    bd_portfolio_t *p = r->p;
    res->promoted = bd_xcalloc(p->n ? p->n : 1, sizeof(bool));
    for (size_t i = 0; i < p->n; i++) res->promoted[i] = p->ch[i].promoted;
    alloc_subset(r, r->top, r->n_top, p->pol, true, res);
    if (!r->arms) return;
    bool hold = res->rc != BD_OK || res->risk_held;
    for (size_t t = 0; t < r->n_top && res->rc == BD_OK; t++) {
        size_t q = r->top[t], k = decide_arms_of(r, q);
        if (!k) continue;
        if (hold) {
            for (size_t j = 0; j < k; j++) r->x[r->sub[j]] = r->prev[r->sub[j]];
            continue;
        }
        bd_policy_t sub;
        decide_arms_policy(r, q, &sub);
        alloc_result_t ar = {.promoted = res->promoted};
        alloc_subset(r, r->sub, k, &sub, false, &ar);
        res->kept = res->kept && ar.kept;
        if (ar.rc != BD_OK) {
            res->rc = ar.rc;
            snprintf(res->err, sizeof res->err, "arms of '%.64s': %.160s", p->ch[q].name, ar.err);
        }
    }
}

/* Held (its note already in job->note): nothing new is published and the
 * allocation in force stays. */
static void decide_hold(run_t *r)
{
    r->d->note = r->job->note;
    r->d->path = BD_PATH_HELD;
    r->d->status = BD_STATUS_HELD;
    r->p->has_proposal = false;
    memcpy(r->x, r->prev, sizeof(double) * r->p->n);
}

/* Stage 4, autonomy gate: what becomes of the allocation. Refused by the
 * allocator or the verifier, or risk held: held. Kept by min_change: kept.
 * Otherwise automate applies it, delegate applies it when every change is
 * within escalate_above (else escalates), assist and collaborate propose
 * it. The lab gate's promotions stick either way. */
static void decide_gate(run_t *r, const alloc_result_t *res)
{
    bd_portfolio_t *p = r->p;
    const bd_policy_t *pol = p->pol;
    bd_decide_job_t *job = r->job;
    size_t n = p->n;
    r->d->status = BD_STATUS_ACTIVE;
    if (res->rc != BD_OK) {
        job->verify_failed = true;
        snprintf(job->note, sizeof(job->note), "verify: %.200s", res->err);
        decide_hold(r);
    } else if (res->risk_held) {
        /* The posterior cannot rule out a low return even at the safe
         * allocation (wide posteriors: few conversions, a new season). The
         * allocation in force stays in force and active: stopping the spend
         * would stop the evidence that narrows the posterior, a hold that
         * never lifts. Realized returns are the kill-switch's to judge. */
        if (pol->risk_cvar_floor > 0)
            snprintf(job->note, sizeof(job->note),
                     "risk: even the safe allocation breaks P(ROAS < %.2f) <= %.2f or CVaR(%.2f) >= "
                     "%.2f; the allocation in force stays",
                     pol->risk_roas_floor, pol->risk_max_prob, pol->risk_cvar_alpha,
                     pol->risk_cvar_floor);
        else
            snprintf(job->note, sizeof(job->note),
                     "risk: even the safe allocation breaks P(ROAS < %.2f) <= %.2f; the allocation "
                     "in force stays",
                     pol->risk_roas_floor, pol->risk_max_prob);
        r->d->note = job->note;
        r->d->path = BD_PATH_HELD;
        p->has_proposal = false;
        for (size_t i = 0; i < n; i++) p->ch[i].x = r->x[i];
    } else if (res->kept) {
        r->d->path = BD_PATH_KEPT;
        p->has_proposal = false;
    } else if (pol->mode == BD_MODE_AUTOMATE ||
               (pol->mode == BD_MODE_DELEGATE && bd_decide_within_escalation(p, r->x))) {
        r->d->path = BD_PATH_APPLIED;
        for (size_t i = 0; i < n; i++) p->ch[i].x = p->ch[i].safe = r->x[i];
        p->has_proposal = false;
    } else {
        r->d->path = pol->mode == BD_MODE_DELEGATE ? BD_PATH_ESCALATED : BD_PATH_PROPOSED;
        for (size_t i = 0; i < n; i++) p->ch[i].proposed = r->x[i];
        p->has_proposal = true;
        p->proposal_cycle = job->cycle;
    }
    for (size_t i = 0; i < n; i++) p->ch[i].promoted = res->promoted[i];
}

/* Stage 5, record: the portfolio's status and the record's channels,
 * total and JSON. */
static void decide_record(run_t *r)
{
    bd_portfolio_t *p = r->p;
    bd_decision_t *d = r->d;
    bd_decide_job_t *job = r->job;
    p->status = d->status;
    p->alloc_cycle = job->cycle;
    double total = 0;
    for (size_t i = 0; i < p->n; i++) {
        d->ch[i].channel = p->ch[i].name;
        d->ch[i].prev = job->initial ? 0 : r->prev[i];
        d->ch[i].spend = r->x[i];
        d->ch[i].delivered = p->ch[i].dlv.ratio;
        d->ch[i].cap = bd_delivery_cap(&p->ch[i].dlv);
        d->ch[i].fault = (bd_fault_kind_t)p->ch[i].fault.kind;
        d->ch[i].owner = p->ch[i].owner;
        d->ch[i].arm = p->ch[i].owner ? p->ch[i].name + p->ch[i].cfg->arm_of + 1 : NULL;
        if (!p->ch[i].owner) total += r->x[i];
    }
    d->total = total;
    job->json_len = bd_record_json(d, &job->json, &job->json_cap);
}

/* The data path of a closed cycle, stage by stage (docs/ARCHITECTURE.md):
 * first sight publishes the initial split; otherwise model update, then
 * the kill-switch, then for a latched portfolio the kill action, else
 * allocate + verify and the autonomy gate; the record last. */
void bd_decide_scratch_free(bd_decide_scratch_t *sc)
{
    if (!sc) return;
    bd_alloc_output_free(&sc->out);
    free(sc->st);
    if (sc->rng) gsl_rng_free(sc->rng);
    sc->st = NULL;
    sc->st_cap = 0;
    sc->rng = NULL;
}

void bd_decide_run(bd_decide_job_t *job, bd_decide_scratch_t *sc)
{
    bd_decide_scratch_t own = {0};
    run_t r;
    decide_begin(job, sc ? sc : &own, &r);
    if (job->initial) {
        decide_initial(&r);
    } else {
        decide_update_models(&r);
        decide_kill_switch(&r);
        if (r.p->killed) {
            decide_kill_action(&r);
            decide_roas_stats(&r);
        } else {
            alloc_result_t res;
            decide_allocate(&r, &res);
            decide_gate(&r, &res);
            free(res.promoted);
        }
    }
    decide_record(&r);
    decide_end(&r);
    bd_decide_scratch_free(&own);
}

void bd_decide_job_free(bd_decide_job_t *job)
{
    free(job->late_items);
    job->late_items = NULL;
    free(job->agg);
    free(job->json);
    free(job->dch);
    job->agg = NULL;
    job->json = NULL;
    job->dch = NULL;
}
