/* env.c: the environment one policy plays, cycle by cycle (sim.h).
 *
 * Delivery: a channel spends min(allocation, cap) (the cap of the truth,
 * noise included); a runaway adapter spends ratio times that. Effective
 * spend: with carryover d the response of cycle t is to the adstock
 * e_t = (1-d) s_t + d e_{t-1} (e = s in steady state, so a constant spend
 * has the curve's return), starting at the configured initial split.
 * Return: the true curve at the adstock of the delivered spend (a runaway's
 * extra spend is overspend, not return). Outcomes are drawn at the adstock
 * of the spend actually made.
 *
 * Reports: the interval's spend, clicks and impressions come in its first
 * report; its conversions and revenue are split over delays 0..H by the
 * channel's reporting-delay distribution (multinomial counts; revenue by
 * the conversions' own values), and each later piece is a report at the
 * cycle it falls due, for the original interval. A report carries both the
 * piece (d_*) and the interval's totals so far (c_*); revenue totals are
 * rounded to cents and the pieces are differences of rounded totals, so
 * they sum exactly to the rounded interval total. Faults of the interval
 * (tracking, no conversions, value error) corrupt its pieces; a silent
 * channel's reports due in its silent cycles are lost (a restatement later
 * carries the totals again, a late piece does not). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include "sim.h"

/* One interval's pending pieces of one channel. */
typedef struct {
    int origin;          /* -1: empty */
    double spend, clicks, impressions;
    double *conv;        /* H+1: conversions reported d cycles after the interval */
    double *cumrev;      /* H+1: revenue reported up to piece d, cents */
    int sent;            /* reports sent of this interval (the next rev) */
} slot_t;

typedef struct {
    int H;
    double *pmf;         /* H+1 */
    gsl_ran_discrete_t *tab;
    slot_t *slot;        /* H+1, origin % (H+1) */
    unsigned *cnt;       /* H+1 scratch: multinomial counts */
    double *rv;          /* H+1 scratch: revenue per piece */
} lagch_t;

struct sim_env {
    const sim_scenario_t *sc;
    const sim_truth_t *tr;
    bool cents;
    gsl_rng *r, *r2;
    double *ad_acct, *ad_draw;
    lagch_t *lag;
    sim_report_t *rep;
    size_t n_rep, cap_rep;
};

/* Cents, as an adapter reports them; the same value goes in process and to
 * the log (%.2f of a cent-rounded double parses back to the same double). */
static double cents(double v) { return round(v * 100.0) / 100.0; }

/* Money as this environment reports it: cents for adapters, exact for the
 * baselines (which are not adapters). */
static double money(const sim_env_t *env, double v) { return env->cents ? cents(v) : v; }

/* See sim.h; the lag state of each channel is allocated here. */
sim_env_t *sim_env_new(const sim_scenario_t *sc, const sim_truth_t *tr, bool cents_)
{
    sim_env_t *env = bd_xcalloc(1, sizeof *env);
    size_t n = tr->n;
    env->sc = sc;
    env->tr = tr;
    env->cents = cents_;
    env->r = gsl_rng_alloc(gsl_rng_taus2);
    env->r2 = gsl_rng_alloc(gsl_rng_taus2);
    env->ad_acct = bd_xcalloc(n ? n : 1, sizeof(double));
    env->ad_draw = bd_xcalloc(n ? n : 1, sizeof(double));
    memcpy(env->ad_acct, tr->init_x, n * sizeof(double));
    memcpy(env->ad_draw, tr->init_x, n * sizeof(double));
    env->lag = bd_xcalloc(n ? n : 1, sizeof *env->lag);
    size_t cap = n;
    double *pmf = bd_xcalloc(SIM_LAG_HORIZON_MAX + 1, sizeof(double));
    for (size_t i = 0; i < n; i++) {
        lagch_t *l = &env->lag[i];
        l->H = sim_lag_pmf(&sc->ch[i].lag, pmf);
        if (l->H == 0) continue;
        size_t K = (size_t)l->H + 1;
        l->pmf = bd_xcalloc(K, sizeof(double));
        memcpy(l->pmf, pmf, K * sizeof(double));
        l->tab = gsl_ran_discrete_preproc(K, l->pmf);
        l->slot = bd_xcalloc(K, sizeof *l->slot);
        for (size_t s = 0; s < K; s++) {
            l->slot[s].origin = -1;
            l->slot[s].conv = bd_xcalloc(2 * K, sizeof(double));
            l->slot[s].cumrev = l->slot[s].conv + K;
        }
        l->cnt = bd_xcalloc(K, sizeof(unsigned));
        l->rv = bd_xcalloc(K, sizeof(double));
        cap += K;
    }
    free(pmf);
    env->cap_rep = cap;
    env->rep = bd_xcalloc(cap, sizeof *env->rep);
    return env;
}

/* Releases env and its lag state. */
void sim_env_free(sim_env_t *env)
{
    if (!env) return;
    for (size_t i = 0; i < env->tr->n; i++) {
        lagch_t *l = &env->lag[i];
        if (l->H == 0) continue;
        for (int s = 0; s <= l->H; s++) free(l->slot[s].conv);
        free(l->slot);
        free(l->pmf);
        gsl_ran_discrete_free(l->tab);
        free(l->cnt);
        free(l->rv);
    }
    free(env->lag);
    gsl_rng_free(env->r);
    gsl_rng_free(env->r2);
    free(env->ad_acct);
    free(env->ad_draw);
    free(env->rep);
    free(env);
}

/* Outcomes at effective spend s on channel i in cycle t. The generator is
 * seeded per (run, cycle, channel), so all policies share their random
 * numbers (common random numbers: differences come from decisions, not
 * noise). *mult: the cycle's overdispersion multiplier of the rate (the
 * traffic draws follow it). With lognormal values *rev is 0: the caller
 * draws values one conversion at a time. */
static void env_draw(const sim_scenario_t *sc, const sim_truth_t *tr, gsl_rng *r, int t, size_t i,
                     double s, double *conv, double *rev, double *mult)
{
    gsl_rng_set(r, (unsigned long)bd_mix64(tr->seed ^ bd_mix64((uint64_t)t * 1000003u + i)));
    const sim_channel_t *c = &sc->ch[i];
    double mu = tr->rate[(size_t)t * tr->n + i] * c->k * -expm1(-s / c->k);
    double od = sc->overdispersion;
    *mult = od > 0 ? gsl_ran_gamma(r, 1.0 / (od * od), od * od) : 1.0;
    *conv = s > 0 ? (double)gsl_ran_poisson(r, mu * *mult) : 0;
    if (sc->value_sigma > 0) {
        *rev = 0;
        return;
    }
    double sh = sc->value_shape;
    *rev = *conv > 0 ? gsl_ran_gamma(r, *conv * sh, c->value / sh) : 0;
}

/* One conversion's value under the lognormal value model (mean `value`). */
static double lognormal_value(const sim_scenario_t *sc, gsl_rng *r, size_t i)
{
    double sg = sc->value_sigma;
    return gsl_ran_lognormal(r, log(sc->ch[i].value) - 0.5 * sg * sg, sg);
}

/* A zeroed report appended to this cycle's list (grows it when full). */
static sim_report_t *push(sim_env_t *env)
{
    if (env->n_rep == env->cap_rep) {
        env->cap_rep *= 2;
        env->rep = bd_xrealloc(env->rep, env->cap_rep * sizeof *env->rep);
    }
    sim_report_t *p = &env->rep[env->n_rep++];
    memset(p, 0, sizeof *p);
    return p;
}

/* Reported conversions and revenue of an interval after its faults. */
static void corrupt(unsigned char f, double vfactor, double *conv, double *rev)
{
    if (f & SIM_F_TRACKING) *conv = *rev = 0;
    if (f & SIM_F_NOCONV) *conv = 0;
    if (f & SIM_F_VALUE) *rev *= vfactor;
}

/* Splits interval t's conv conversions (and their revenue) over channel
 * i's delays into its slot. rev: the interval's revenue (gamma values);
 * lognormal values are drawn here, one per conversion. */
static void split(sim_env_t *env, int t, size_t i, double conv, double rev, unsigned char f,
                  double vfactor)
{
    const sim_scenario_t *sc = env->sc;
    lagch_t *l = &env->lag[i];
    size_t K = (size_t)l->H + 1;
    slot_t *s = &l->slot[(size_t)t % K];
    gsl_rng *r2 = env->r2;
    memset(l->rv, 0, K * sizeof(double));
    if (sc->value_sigma > 0) {
        memset(s->conv, 0, K * sizeof(double));
        for (double c = 0; c < conv; c++) {
            size_t d = gsl_ran_discrete(r2, l->tab);
            s->conv[d] += 1;
            l->rv[d] += lognormal_value(sc, env->r, i);
        }
    } else {
        gsl_ran_multinomial(r2, K, (unsigned)conv, l->pmf, l->cnt);
        double wsum = 0, sh = sc->value_shape;
        for (size_t d = 0; d < K; d++) {
            s->conv[d] = l->cnt[d];
            l->rv[d] = l->cnt[d] > 0 ? gsl_ran_gamma(r2, l->cnt[d] * sh, 1.0) : 0;
            wsum += l->rv[d];
        }
        for (size_t d = 0; d < K; d++) l->rv[d] = wsum > 0 ? rev * l->rv[d] / wsum : 0;
    }
    double cum = 0;
    for (size_t d = 0; d < K; d++) {
        double c = s->conv[d], v = l->rv[d];
        corrupt(f, vfactor, &c, &v);
        s->conv[d] = c;
        cum += v;
        s->cumrev[d] = money(env, cum);
    }
}

/* The report of piece d of the interval in slot s (channel i). */
static void report_piece(sim_env_t *env, slot_t *s, size_t i, int d)
{
    sim_report_t *p = push(env);
    p->origin = s->origin;
    p->ch = i;
    p->piece = d;
    p->rev = s->sent++;
    double prev = d > 0 ? s->cumrev[d - 1] : 0, cc = 0;
    for (int j = 0; j <= d; j++) cc += s->conv[j];
    p->d_spend = d == 0 ? s->spend : 0;
    p->d_clicks = d == 0 ? s->clicks : 0;
    p->d_impressions = d == 0 ? s->impressions : 0;
    p->d_conversions = s->conv[d];
    p->d_revenue = money(env, s->cumrev[d] - prev);
    p->c_spend = s->spend;
    p->c_clicks = s->clicks;
    p->c_impressions = s->impressions;
    p->c_conversions = cc;
    p->c_revenue = s->cumrev[d];
}

/* Interval t of channel i: draws, faults, its first report (unless silent)
 * and, with a lag, its pieces. s: the actual spend; e: its adstock. */
static void interval(sim_env_t *env, int t, size_t i, double s, double e)
{
    const sim_scenario_t *sc = env->sc;
    const sim_truth_t *tr = env->tr;
    size_t k = (size_t)t * tr->n + i;
    double conv, rev, mult, clicks = 0, imps = 0;
    env_draw(sc, tr, env->r, t, i, e, &conv, &rev, &mult);
    if (sc->value_sigma > 0 && env->lag[i].H == 0)
        for (double c = 0; c < conv; c++) rev += lognormal_value(sc, env->r, i);
    if (sc->traffic || env->lag[i].H > 0)
        gsl_rng_set(env->r2, (unsigned long)bd_mix64(tr->seed ^ 0x74726166ULL ^
                                                     bd_mix64((uint64_t)t * 1000003u + i)));
    if (sc->traffic && s > 0) {
        /* clicks follow the spend of the cycle (traffic is bought now) and
         * the true rate: a real decline shows in them, a tracking break not */
        const sim_channel_t *c = &sc->ch[i];
        double cm = tr->rate[k] * c->k * -expm1(-s / c->k) * mult / sc->cvr;
        clicks = (double)gsl_ran_poisson(env->r2, cm);
        imps = (double)gsl_ran_poisson(env->r2, cm / sc->ctr);
    }
    lagch_t *l = &env->lag[i];
    slot_t one, *sl = &one;
    double c1, r1;
    if (l->H > 0) {
        sl = &l->slot[(size_t)t % ((size_t)l->H + 1)];
        split(env, t, i, conv, rev, tr->fault[k], tr->vfactor[k]);
    } else {
        c1 = conv;
        r1 = money(env, rev);
        corrupt(tr->fault[k], tr->vfactor[k], &c1, &r1);
        sl->conv = &c1;
        sl->cumrev = &r1;
        r1 = money(env, r1);
    }
    sl->origin = t;
    sl->spend = s;
    sl->clicks = clicks;
    sl->impressions = imps;
    sl->sent = 0;
    if (!(tr->fault[k] & SIM_F_SILENT)) report_piece(env, sl, i, 0);
}

/* See sim.h: deliver, account, draw, report; the delayed pieces due at t
 * follow the current intervals' first reports. */
double sim_env_step(sim_env_t *env, int t, const double *x, double *deliv,
                    const sim_report_t **rep, size_t *n_rep)
{
    const sim_scenario_t *sc = env->sc;
    const sim_truth_t *tr = env->tr;
    size_t n = tr->n;
    double v = 0;
    env->n_rep = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = (size_t)t * n + i;
        double a = tr->present[k] ? x[i] : 0;
        double d = a < tr->cap[k] ? a : tr->cap[k];
        if (deliv) deliv[i] = d;
        double s = d * tr->ratio[k];
        if (env->cents) s = cents(s);
        double cy = sc->ch[i].carryover;
        env->ad_acct[i] = cy > 0 ? (1.0 - cy) * d + cy * env->ad_acct[i] : d;
        env->ad_draw[i] = cy > 0 ? (1.0 - cy) * s + cy * env->ad_draw[i] : s;
        v += bd_curve_value(&tr->curve[k], tr->present[k] ? env->ad_acct[i] : 0);
        if (tr->present[k]) interval(env, t, i, s, env->ad_draw[i]);
    }
    /* the delayed pieces due now, oldest interval first */
    for (size_t i = 0; i < n; i++) {
        lagch_t *l = &env->lag[i];
        if (l->H == 0 || (tr->fault[(size_t)t * n + i] & SIM_F_SILENT)) continue;
        for (int d = l->H; d >= 1; d--) {
            int o = t - d;
            if (o < 0) continue;
            slot_t *sl = &l->slot[(size_t)o % ((size_t)l->H + 1)];
            if (sl->origin != o) continue;
            double prev = sl->cumrev[d - 1];
            if (sl->conv[d] == 0 && sl->cumrev[d] == prev) continue;
            report_piece(env, sl, i, d);
        }
    }
    *rep = env->rep;
    *n_rep = env->n_rep;
    return v;
}
