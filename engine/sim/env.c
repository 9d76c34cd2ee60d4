/* env.c: one environment drawn from a fit (whatif.h), and the reports it
 * sends for a cycle's spend.
 *
 * A draw takes, per channel of the log, one posterior draw of the fitted
 * model (the model's own sample: for poisson_sat a saturation k by its
 * weight, then the rate, then for revenue the value), turned into
 * conversions per cycle by the log's value per conversion. A channel the
 * config lists but the log never saw gets a draw of the config's own prior
 * for it (wide: the log says nothing about it). The generator of a draw is
 * seeded by (seed, draw, portfolio, channel), and of a cycle's outcomes by
 * (seed, draw, portfolio, channel, cycle), never by the config: configs of
 * one draw meet the same curves and the same luck (common random numbers),
 * so their differences come from their decisions.
 *
 * A cycle: the expected conversions are the curve at the spend times the
 * seasonal factor; a Gamma multiplier of mean 1 and CV od (the log's
 * overdispersion) scales them, conversions are Poisson, their values
 * Gamma (the log's mean and spread), traffic follows the conversions at the
 * log's clicks per conversion. Each conversion's report is delayed by the
 * fitted lag (multinomial over the delays); a delayed piece is sent at the
 * cycle it falls due as its own event with its interval's ts, spend 0, as
 * platforms attribute late conversions. No data faults are made: the
 * environment's data are clean. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include "budgetd/portfolio.h"
#include "budgetd/whatif.h"

/* The generator's seed for (seed, draw, key, cycle); cycle INT64_MIN is
 * the draw of the curve itself. */
static unsigned long env_seed(const bd_env_t *env, uint64_t key, int64_t cycle)
{
    uint64_t h = bd_mix64(env->seed ^ 0x77686174696600ULL);
    h = bd_mix64(h ^ (uint64_t)(uint32_t)env->draw);
    h = bd_mix64(h ^ key);
    return (unsigned long)bd_mix64(h ^ (uint64_t)cycle);
}

/* A draw's saturation k is a point of the model's grid, which stands for
 * every k of its cell (a factor k_grid_ratio wide). Spread over the cell
 * (log-uniform), with the rate moved so that the curve keeps its value at
 * the channel's mean spend, where the data pin it: the draw stays as
 * consistent with the log, and the curvature beyond the spend the log saw
 * is as uncertain as the grid makes it (a true k between two grid points
 * would otherwise be extrapolated with the nearest point's curvature, with
 * no spread at all once the data favour one point). */
static void env_grid_cell(const bd_model_ops_t *ops, const bd_fit_channel_t *fc, gsl_rng *r,
                          bd_curve_t *c)
{
    if (c->kind != BD_CURVE_EXP || !(ops->k_grid_ratio > 1) || !(fc->xbar > 0) || !(c->k > 0)) return;
    double k = c->k * pow(ops->k_grid_ratio, gsl_rng_uniform(r) - 0.5);
    double g0 = c->k * -expm1(-fc->xbar / c->k), g1 = k * -expm1(-fc->xbar / k);
    c->a *= g0 / g1;
    c->k = k;
}

/* A channel of the log: its posterior draw and the log's numbers. */
static void env_seen(bd_env_t *env, const bd_fit_portfolio_t *fp, const bd_fit_channel_t *fc,
                     bd_env_channel_t *c)
{
    gsl_rng *r = env->rng;
    snprintf(c->name, sizeof c->name, "%s", fc->name);
    c->fc = fc;
    c->key = bd_hash64(fc->name, strlen(fc->name), bd_hash64(fp->name, strlen(fp->name), 0x656e76));
    gsl_rng_set(r, env_seed(env, c->key, INT64_MIN));
    bd_curve_t draw;
    const bd_model_ops_t *ops = bd_model_get(fp->model);
    ops->sample(&fc->model, &fc->prior, r, &draw);
    env_grid_cell(ops, fc, r, &draw);
    bd_fit_conv_curve(fp, fc, &draw, &c->conv);
    c->value = fc->value;
    c->value_shape = fc->value_shape;
    c->od = fc->od;
    c->clicks_per_conv = fc->conversions > 0 ? fc->clicks / fc->conversions : 0;
    c->imps_per_click = fc->clicks > 0 ? fc->impressions / fc->clicks : 0;
    c->first = fc->first;
    c->last = fc->last;
}

/* A channel the config lists and the log never saw: a draw of the config's
 * prior for it (the engine's own, through a scratch portfolio). */
static void env_unseen(bd_env_t *env, const bd_env_portfolio_t *p, const char *name,
                       bd_env_channel_t *c)
{
    gsl_rng *r = env->rng;
    snprintf(c->name, sizeof c->name, "%s", name);
    c->key = bd_hash64(name, strlen(name), bd_hash64(p->fp->name, strlen(p->fp->name), 0x656e76));
    bd_ptable_t *t = bd_ptable_new();
    bd_portfolio_t *sp = bd_ptable_add(t, p->fp->name, p->pc, p->pol, 2);
    int i = bd_portfolio_channel(sp, name);
    const bd_model_ops_t *ops = bd_model_get(p->pol->model);
    bd_curve_t draw = {BD_CURVE_EXP, 0, 1, 0};
    gsl_rng_set(r, env_seed(env, c->key, INT64_MIN));
    if (ops && i >= 0) ops->sample(&sp->ch[i].model, &sp->ch[i].prior, r, &draw);
    c->value = i >= 0 && sp->ch[i].prior.value_prior > 0 ? sp->ch[i].prior.value_prior : 1.0;
    c->conv = draw;
    if (p->pol->objective == BD_OBJ_REVENUE) c->conv.a /= c->value;
    c->value_shape = 1.0;
    c->first = p->fp->first;
    c->last = p->fp->last;
    bd_ptable_free(t);
}

/* The v2 nested arms of p's config over its channels: split for a channel
 * the config splits among arms, head for an arm (its channel is listed, so
 * present). */
static void env_arms(bd_env_portfolio_t *p)
{
    for (size_t i = 0; i < p->n; i++) {
        bd_env_channel_t *c = &p->ch[i];
        const bd_channel_cfg_t *cc = p->pol ? bd_config_channel(p->pc, p->pol, c->name) : NULL;
        c->split = cc && cc->n_arms > 0;
        c->head = -1;
        for (size_t h = 0; cc && cc->arm_of && h < p->n; h++)
            if (strlen(p->ch[h].name) == cc->arm_of && !strncmp(p->ch[h].name, c->name, cc->arm_of))
                c->head = (long)h;
    }
}

/* See whatif.h: the fit's channels, then the config's listed channels (and
 * v2 their arms) the log never saw, per portfolio of the fit. */
bd_env_t *bd_env_new(const bd_fit_t *fit, const bd_config_t *cfg, uint64_t seed, int draw)
{
    bd_env_t *env = bd_xcalloc(1, sizeof *env);
    env->fit = fit;
    env->cfg = cfg;
    env->seed = seed;
    env->draw = draw;
    env->rng = gsl_rng_alloc(gsl_rng_taus2);
    env->n = fit->n;
    env->pf = bd_xcalloc(fit->n + 1, sizeof *env->pf);
    for (size_t k = 0; k < fit->n; k++) {
        const bd_fit_portfolio_t *fp = &fit->pf[k];
        bd_env_portfolio_t *p = &env->pf[k];
        p->fp = fp;
        p->pc = bd_config_portfolio(cfg, fp->name);
        p->pol = p->pc ? &p->pc->p : cfg->has_default_budget ? &cfg->defaults : NULL;
        size_t listed = p->pc ? p->pc->n_channels : 0, arms = 0;
        for (size_t j = 0; j < listed; j++) arms += p->pc->channels[j].n_arms;
        p->ch = bd_xcalloc(fp->n + listed + arms + 1, sizeof *p->ch);
        for (size_t i = 0; i < fp->n; i++) env_seen(env, fp, &fp->ch[i], &p->ch[p->n++]);
        for (size_t j = 0; j < listed; j++) {
            const bd_channel_cfg_t *lc = &p->pc->channels[j];
            for (size_t a = 0; a <= lc->n_arms; a++) { /* the channel, then its arms (v2) */
                const char *name = a ? lc->arms[a - 1].name : lc->name;
                bool seen = false;
                for (size_t i = 0; i < fp->n && !seen; i++) seen = strcmp(fp->ch[i].name, name) == 0;
                if (!seen) env_unseen(env, p, name, &p->ch[p->n++]);
            }
        }
        env_arms(p);
    }
    return env;
}

/* Releases env, its channels and their pending pieces. */
void bd_env_free(bd_env_t *env)
{
    if (!env) return;
    for (size_t k = 0; k < env->n; k++) {
        free(env->pf[k].ch);
        free(env->pf[k].pend);
    }
    free(env->pf);
    free(env->ev);
    gsl_rng_free(env->rng);
    free(env);
}

/* See whatif.h: the fitted profile at the interval's start hour. */
double bd_env_factor(const bd_env_t *env, const bd_env_channel_t *c, int64_t t)
{
    if (!c->fc) return 1.0;
    int hour, dow;
    bd_season_bucket(t * env->fit->cycle, &hour, &dow);
    return bd_season_apply(&c->fc->season, hour, dow);
}

/* See whatif.h: the record engine's cap in force at cycle t. */
double bd_env_cap(const bd_env_t *env, const bd_env_channel_t *c, int64_t t)
{
    if (!c->fc || !c->fc->cap || t < env->fit->c0 || t > env->fit->c1) return INFINITY;
    double v = c->fc->cap[t - env->fit->c0];
    return v > 0 ? v : INFINITY;
}

/* See whatif.h: in the config's objective (the fit's where unmanaged). */
double bd_env_value(const bd_env_t *env, const bd_env_portfolio_t *p, const bd_env_channel_t *c,
                    int64_t t, double x)
{
    double f = bd_curve_value(&c->conv, x) * bd_env_factor(env, c, t);
    bd_objective_t obj = p->pol ? p->pol->objective : p->fp->objective;
    return obj == BD_OBJ_REVENUE ? f * c->value : f;
}

/* A zeroed event appended to env->ev. */
static bd_event_t *env_push(bd_env_t *env)
{
    if (env->n_ev == env->cap_ev) {
        env->cap_ev = env->cap_ev ? 2 * env->cap_ev : 32;
        env->ev = bd_xrealloc(env->ev, env->cap_ev * sizeof *env->ev);
    }
    bd_event_t *ev = &env->ev[env->n_ev++];
    memset(ev, 0, sizeof *ev);
    return ev;
}

/* Revenue of n conversions (Gamma values of the channel's mean and shape),
 * in cents. */
static double env_revenue(gsl_rng *r, const bd_env_channel_t *c, double n)
{
    if (!(n > 0)) return 0;
    double v = gsl_ran_gamma(r, n * c->value_shape, c->value / c->value_shape);
    return round(v * 100.0) / 100.0;
}

/* Queues a delayed piece of channel ch's interval origin, due at due. */
static void env_pend(bd_env_portfolio_t *p, int64_t due, int64_t origin, size_t ch, double conv,
                     double rev)
{
    if (p->n_pend == p->cap_pend) {
        p->cap_pend = p->cap_pend ? 2 * p->cap_pend : 64;
        p->pend = bd_xrealloc(p->pend, p->cap_pend * sizeof *p->pend);
    }
    p->pend[p->n_pend++] = (bd_env_piece_t){due, origin, (uint32_t)ch, conv, rev};
}

/* Channel i's interval t at spend s: its event, and its delayed pieces. */
static void env_interval(bd_env_t *env, bd_env_portfolio_t *p, size_t i, int64_t t, double s)
{
    const bd_env_channel_t *c = &p->ch[i];
    gsl_rng *r = env->rng;
    gsl_rng_set(r, env_seed(env, c->key, t));
    double mu = bd_curve_value(&c->conv, s) * bd_env_factor(env, c, t);
    double mult = c->od > 0 ? gsl_ran_gamma(r, 1.0 / (c->od * c->od), c->od * c->od) : 1.0;
    double conv = s > 0 && mu > 0 ? (double)gsl_ran_poisson(r, mu * mult) : 0;
    double clicks = 0, imps = 0;
    if (s > 0 && c->clicks_per_conv > 0) {
        double cm = c->clicks_per_conv * mu * mult;
        clicks = (double)gsl_ran_poisson(r, cm);
        if (c->imps_per_click > 0) imps = (double)gsl_ran_poisson(r, cm * c->imps_per_click);
    }
    double now = conv;
    const bd_fit_channel_t *fc = c->fc;
    if (fc && fc->lag_h > 0 && conv > 0) {
        size_t K = (size_t)fc->lag_h + 1;
        unsigned cnt[64], *cp = K <= 64 ? cnt : bd_xcalloc(K, sizeof *cp);
        gsl_ran_multinomial(r, K, (unsigned)conv, fc->lag_pmf, cp);
        now = cp[0];
        for (size_t d = 1; d < K; d++)
            if (cp[d]) env_pend(p, t + (int64_t)d, t, i, cp[d], env_revenue(r, c, cp[d]));
        if (cp != cnt) free(cp);
    }
    bd_event_t *ev = env_push(env);
    ev->kind = BD_EV_DATA;
    ev->ts = t * env->fit->cycle;
    snprintf(ev->portfolio, sizeof ev->portfolio, "%s", p->fp->name);
    snprintf(ev->channel, sizeof ev->channel, "%s", c->name);
    ev->spend = s;
    ev->impressions = imps;
    ev->clicks = clicks;
    ev->conversions = now;
    ev->revenue = env_revenue(r, c, now);
}

/* See whatif.h: the present channels' intervals, then the pieces due. */
size_t bd_env_cycle(bd_env_t *env, size_t pf, int64_t t, const double *spend)
{
    bd_env_portfolio_t *p = &env->pf[pf];
    env->n_ev = 0;
    for (size_t i = 0; i < p->n; i++)
        if (t >= p->ch[i].first && t <= p->ch[i].last) env_interval(env, p, i, t, spend[i]);
    /* the delayed pieces due now, in the order they were made (interval,
     * then channel); the rest stays queued */
    size_t w = 0;
    for (size_t k = 0; k < p->n_pend; k++) {
        const bd_env_piece_t *q = &p->pend[k];
        if (q->due > t) {
            p->pend[w++] = *q;
            continue;
        }
        if (q->due < t) continue; /* a cycle not played: the report is lost with it */
        bd_event_t *ev = env_push(env);
        ev->kind = BD_EV_DATA;
        ev->ts = q->origin * env->fit->cycle;
        snprintf(ev->portfolio, sizeof ev->portfolio, "%s", p->fp->name);
        snprintf(ev->channel, sizeof ev->channel, "%s", p->ch[q->ch].name);
        ev->conversions = q->conversions;
        ev->revenue = q->revenue;
    }
    p->n_pend = w;
    return env->n_ev;
}
