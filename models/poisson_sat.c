/* poisson_sat.c: Poisson conversions with exponential saturation, learned
 * over a grid of saturation spends (the default model; why it forgets as it
 * does: docs/DECISIONS.md "Forgetting" and "Saturation scoring").
 *
 * Likelihood: conversions y ~ Poisson(lambda * g_k(x)), g_k(x) = k(1-e^{-x/k}).
 * For each grid point k_j the rate has a conjugate Gamma posterior and a log
 * marginal likelihood (sequential negative-binomial predictive), so that the
 * posterior over k is a weighted mixture. Revenue per conversion is
 * exponential with rate phi ~ Gamma (conjugate): observing C conversions worth
 * R in total adds (C, R) to (shape, rate); value v = 1/phi.
 *
 * Curve: a = lambda (objective conversions) or lambda * v (revenue), k = k_j,
 * i.e. f(x) = a g_k(x), f'(0) = a.
 *
 * Saturation is scored against a local rate level (see psat_observe): in a
 * closed loop spend follows the estimated rate, so a rate posterior that lags
 * a drifting rate makes the residuals rise with spend and the marginal
 * likelihood of k drifts toward "no saturation" (measured in bench_quality's
 * drift scenario: posterior-mean k 4-8x the truth, regret 2.6% against 0.8%
 * with k held at the configured value).
 *
 * The weights of k are cached by bd_psat_refresh, so a draw costs one
 * uniform plus one Gamma variate (two for revenue). */
#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <gsl/gsl_cdf.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_sf_gamma.h>
#include "model_internal.h"

static_assert(sizeof(bd_psat_state_t) <= BD_MODEL_STATE_BYTES, "poisson_sat state too big");
static_assert(sizeof(bd_psat_state_t) <= 1024, "poisson_sat state over 1 KiB");

static bd_psat_state_t *ps(bd_model_state_t *st) { return (bd_psat_state_t *)(void *)st->bytes; }
static const bd_psat_state_t *cps(const bd_model_state_t *st)
{
    return (const bd_psat_state_t *)(const void *)st->bytes;
}

/* Positive finite or the fallback: config values are validated upstream, but
 * a model must never produce NaN curves from a zero prior. */
static double pos_or(double v, double fallback) { return (v > 0 && isfinite(v)) ? v : fallback; }

/* g_k(x) = k(1 - e^{-x/k}): effective spend after saturation. */
static double sat_g(double k, double x) { return k * -expm1(-x / k); }

void bd_psat_refresh(bd_psat_state_t *s)
{
    double mx = -INFINITY, lp[BD_PSAT_KMAX], tot = 0;
    for (uint32_t j = 0; j < s->n; j++) {
        lp[j] = s->logprior[j] + s->loglik[j];
        if (lp[j] > mx) mx = lp[j];
    }
    for (uint32_t j = 0; j < s->n; j++) {
        s->w[j] = exp(lp[j] - mx);
        tot += s->w[j];
    }
    for (uint32_t j = 0; j < s->n; j++) s->w[j] /= tot;
    s->vscale = 1.0 / s->vrate;
}

/* The log NB predictive of y units at exposure g under Gamma(a, rate b),
 * without the k-independent -lgamma(y+1) term: the k score of observe. */
static double psat_lpred(double a, double b, double g, double y);
static void psat_init_strength(bd_psat_state_t *s, double strength, double lam_mean, double sat,
                               double value);
static void psat_init_lift(bd_psat_state_t *s, const bd_lift_t *l);

/* Prior: lambda ~ Gamma(2 pseudo-conversions) with mean such that E[a] is
 * roas_prior (E[a] = E[lambda] E[v] for revenue), the same for every k;
 * phi ~ Gamma(3, 2*value_prior) so E[v] = value_prior; k on the doubling grid
 * sat*2^(j-3) with log prior weight -BD_PSAT_KPRIOR_DECAY*|j-3|.
 * A configured prior (v2) centres the same on its roas and saturation, adds
 * `strength` cycles of pseudo-data and tightens the k prior by strength
 * (psat_init_strength), and each lift test enters as a calibration
 * observation (psat_init_lift). The pseudo-data and lift tests are data,
 * not prior: discounting forgets them toward the weak centre like any
 * cycle, so a wrong prior is outgrown. */
static void psat_init(bd_model_state_t *st, const bd_prior_t *pr)
{
    memset(st, 0, sizeof *st);
    bd_psat_state_t *s = ps(st);
    double sat = pos_or(pr->saturation, pos_or(pr->budget, 1.0));
    double value = pos_or(pr->value_prior, 1.0);
    double roas = pos_or(pr->roas_prior, 1.0);
    double lam_mean = pr->objective == BD_OBJ_REVENUE ? roas / value : roas;
    double strength = pr->strength > 0 && isfinite(pr->strength) ? pr->strength : 0;
    double decay = BD_PSAT_KPRIOR_DECAY * fmin(1 + strength / BD_PSAT_KPRIOR_STRENGTH, BD_PSAT_KPRIOR_TIGHT);
    s->n = BD_PSAT_KMAX;
    s->alpha0 = BD_PSAT_PRIOR_CONV;
    s->beta0 = BD_PSAT_PRIOR_CONV / lam_mean;
    s->vshape0 = s->vshape = BD_PSAT_VALUE_SHAPE0;
    s->vrate0 = s->vrate = value * (BD_PSAT_VALUE_SHAPE0 - 1.0);
    for (uint32_t j = 0; j < s->n; j++) {
        int d = (int)j - (int)(BD_PSAT_KMAX / 2);
        s->k[j] = ldexp(sat, d);
        s->alpha[j] = s->alpha0;
        s->beta[j] = s->beta0;
        s->logprior[j] = -decay * abs(d);
        s->loglik[j] = 0;
        s->lalpha[j] = s->alpha0;
        s->lbeta[j] = s->beta0;
    }
    bd_drift_init(&s->drift, s->alpha0, s->beta0);
    s->last_gamma = 1.0;
    if (strength > 0 && pr->objective == BD_OBJ_REVENUE) s->calib = 1; /* psat_calibrate */
    else if (strength > 0) psat_init_strength(s, strength, lam_mean, sat, value);
    for (size_t i = 0; pr->lift && i < pr->n_lift; i++) psat_init_lift(s, &pr->lift[i]);
    bd_psat_refresh(s);
}

/* `strength` cycles of pseudo-data at the saturation spend sat, at the
 * prior's mean: every grid point sees the conversions the prior's curve
 * gives there (strength lam_mean g_sat(sat)) over its own exposure
 * (strength g_k(sat)), so each k keeps a rate consistent with the prior at
 * sat; the value per conversion sees as many conversions worth value each
 * (revenue: the pooled ROAS stays the prior's whichever way the data split
 * it into rate and value). */
static void psat_init_strength(bd_psat_state_t *s, double strength, double lam_mean, double sat,
                               double value)
{
    double c = strength * lam_mean * sat_g(sat, sat);
    for (uint32_t j = 0; j < s->n; j++) {
        double g = strength * sat_g(s->k[j], sat);
        s->alpha[j] += c;
        s->beta[j] += g;
        s->lalpha[j] += c;
        s->lbeta[j] += g;
    }
    s->vshape += c;
    s->vrate += c * value;
}

/* A lift test (config.h bd_lift_t) as a Gamma-Poisson pseudo-observation
 * whose precision matches its standard error: its Y incremental
 * conversions over `cycles` cycles at spend x = spend / cycles are an
 * estimate of lambda g_k(x) cycles with a CV of se / Y, which is the CV of
 * a Poisson count of n = (Y / se)^2; so each grid point observes n units
 * over the exposure n cycles g_k(x) / Y (the rate Y / (cycles g_k(x)), as
 * sure as n conversions make it). Each k is first scored by the predictive
 * of that observation (under the shape cap of observe's score), so a lift
 * test at another spend than the data's informs saturation too. */
static void psat_init_lift(bd_psat_state_t *s, const bd_lift_t *l)
{
    if (!(l->spend > 0 && l->conversions > 0 && l->se > 0 && l->cycles >= 1) ||
        !isfinite(l->spend + l->conversions + l->se + l->cycles))
        return;
    double x = l->spend / l->cycles, y = l->conversions, n = (y / l->se) * (y / l->se), mx = -INFINITY;
    for (uint32_t j = 0; j < s->n; j++) {
        double g = n * l->cycles * sat_g(s->k[j], x) / y, a = s->lalpha[j], b = s->lbeta[j];
        if (a > BD_PSAT_CP_MAX_SHAPE) { /* the shape cap of observe's k score */
            b *= BD_PSAT_CP_MAX_SHAPE / a;
            a = BD_PSAT_CP_MAX_SHAPE;
        }
        s->loglik[j] += psat_lpred(a, b, g, n);
        s->alpha[j] += n;
        s->beta[j] += g;
        s->lalpha[j] += n;
        s->lbeta[j] += g;
        if (s->loglik[j] > mx) mx = s->loglik[j];
    }
    for (uint32_t j = 0; j < s->n; j++) s->loglik[j] -= mx;
}

/* Exponential forgetting toward the prior: every statistic s becomes
 * gamma*s + (1-gamma)*s0 (the local level at gamma^BD_PSAT_K_LOCAL),
 * log-likelihoods are multiplied by gamma^BD_PSAT_K_FORGET. Equivalent to
 * weighting the data seen t discounts ago by gamma^t (the engine discounts a
 * channel in the cycles it reports in), so that repeated discounting alone
 * converges to the prior. */
static void psat_discount(bd_model_state_t *st, const bd_prior_t *pr, double gamma)
{
    (void)pr;
    bd_psat_state_t *s = ps(st);
    if (gamma == BD_DISCOUNT_AUTO) gamma = bd_drift_discount(&s->drift);
    s->last_gamma = gamma;
    if (!(gamma >= 0 && gamma < 1)) return; /* 1 (or nonsense): no forgetting */
    double c = 1.0 - gamma;
    double kgamma = pow(gamma, BD_PSAT_K_FORGET), lg = pow(gamma, BD_PSAT_K_LOCAL), lc = 1.0 - lg;
    for (uint32_t j = 0; j < s->n; j++) {
        s->alpha[j] = gamma * s->alpha[j] + c * s->alpha0;
        s->beta[j] = gamma * s->beta[j] + c * s->beta0;
        s->lalpha[j] = lg * s->lalpha[j] + lc * s->alpha0;
        s->lbeta[j] = lg * s->lbeta[j] + lc * s->beta0;
        s->loglik[j] *= kgamma;
    }
    s->vshape = gamma * s->vshape + c * s->vshape0;
    s->vrate = gamma * s->vrate + c * s->vrate0;
    bd_psat_refresh(s);
}

/* log Gamma(a+y) - log Gamma(a), a > 0, y >= 0. */
static double lngam_ratio(double a, double y)
{
    return y > 0 ? gsl_sf_lngamma(a + y) - gsl_sf_lngamma(a) : 0;
}

static double psat_lpred(double a, double b, double g, double y)
{
    return lngam_ratio(a, y) + a * log(b / (b + g)) + (y > 0 ? y * log(g / (b + g)) : 0);
}

/* Whether y is a surprise: its two-sided tail probability under the
 * posterior-predictive mixture, 2 * min(P(Y <= y), P(Y >= y)) (capped at 1),
 * Y ~ sum_j w_j NB(r_j, mean alpha_j g_j/beta_j), is below BD_PSAT_CP_P.
 * r_j = min(alpha_j, 64): the predictive never claims the rate is known to
 * better than ~12.5%, so ordinary overdispersion of real conversion counts
 * (which a Poisson ignores) is not mistaken for a change. Fractional y uses
 * floor(y) for the lower tail and ceil(y) for the upper one.
 * The incomplete Beta functions dominate an update, so the mixture terms are
 * computed heaviest weight first and the check stops as soon as the terms
 * so far already put the tail at or above the threshold. That is exact: all
 * terms are >= 0 and the sums are always taken over j in index order (terms
 * not computed yet count 0), and rounded addition is monotone, so the full
 * sums can only be larger; with every term computed the sums are the plain
 * ones. */
static bool psat_surprise(const bd_psat_state_t *s, const double *g, double y)
{
    double tl[BD_PSAT_KMAX] = {0}, th[BD_PSAT_KMAX] = {0}, yl = floor(y), yh = ceil(y), t = 1;
    uint32_t order[BD_PSAT_KMAX];
    for (uint32_t j = 0; j < s->n; j++) { /* insertion sort, weight descending */
        uint32_t q = j;
        while (q > 0 && s->w[order[q - 1]] < s->w[j]) { order[q] = order[q - 1]; q--; }
        order[q] = j;
    }
    for (uint32_t q = 0; q < s->n; q++) {
        uint32_t j = order[q];
        double r = s->alpha[j] < BD_PSAT_CP_MAX_SHAPE ? s->alpha[j] : BD_PSAT_CP_MAX_SHAPE;
        double mu = s->alpha[j] * g[j] / s->beta[j];
        double p = r / (r + mu);
        /* NB cdf: P(Y <= n) = I_p(r, n+1) */
        tl[j] = s->w[j] * gsl_cdf_beta_P(p, r, yl + 1.0);
        th[j] = s->w[j] * (yh < 1 ? 1.0 : gsl_cdf_beta_Q(p, r, yh));
        double lo = 0, hi = 0;
        for (uint32_t i = 0; i < s->n; i++) {
            lo += tl[i];
            hi += th[i];
        }
        t = 2.0 * (lo < hi ? lo : hi);
        t = t < 1 ? t : 1;
        if (!(t < BD_PSAT_CP_P)) return false;
    }
    return t < BD_PSAT_CP_P;
}

/* Partial restart: keep BD_PSAT_CP_KEEP of the rate evidence and of the
 * k log-likelihoods. The value per conversion is left alone: the check
 * looks at conversions only. */
static void psat_reset(bd_psat_state_t *s)
{
    double keep = BD_PSAT_CP_KEEP, c = 1.0 - keep;
    for (uint32_t j = 0; j < s->n; j++) {
        s->alpha[j] = keep * s->alpha[j] + c * s->alpha0;
        s->beta[j] = keep * s->beta[j] + c * s->beta0;
        s->lalpha[j] = keep * s->lalpha[j] + c * s->alpha0;
        s->lbeta[j] = keep * s->lbeta[j] + c * s->beta0;
        s->loglik[j] *= keep;
    }
    s->resets++;
    s->streak = 0;
    bd_psat_refresh(s);
}

/* Conjugate update with one aggregate. With spend > 0, first the change-point
 * check (under the posterior before this update), then each k's marginal
 * likelihood gains the log NB predictive of y, then alpha += y, beta += g_k(x)
 * (and the same for the local level).
 * The predictive that scores k is not the decision posterior's: it uses the
 * local level (lalpha, lbeta), whose short memory keeps its lag behind a
 * drifting rate small, so k is identified by spend contrasts within a few
 * cycles rather than by how spend and a lagged rate estimate co-moved; and
 * its shape is capped at BD_PSAT_CP_MAX_SHAPE (mean kept), the same
 * extra-Poisson allowance as the change-point check, so overdispersed counts
 * do not make the weights of k overconfident. With gamma = 1 (no forgetting)
 * and alpha0 + conversions <= BD_PSAT_CP_MAX_SHAPE (the cap never binds)
 * this is the exact marginal likelihood of the static model.
 * Spend 0 (e.g. a late conversion-only event) carries no information on k
 * and is not checked. */
static void psat_add_units(bd_psat_state_t *s, const bd_agg_t *agg);

/* A revenue prior knows the return per unit spend, not how it splits into
 * conversions and their value. Laid down at the built-in value per
 * conversion (50), its pseudo-data would claim 24 times the conversions of
 * a channel whose conversions are worth 1200: the change-point check reads
 * the shortfall as a change and cuts the pseudo-conversions, while the
 * pseudo-value stays, and the rate times value collapses (measured:
 * bench_quality --only prior, 85% regret). So they wait until the channel
 * has reported BD_PSAT_CALIB_CONV conversions (a few cycles for a sparse
 * channel, one for a busy one) and are then laid down at its own value
 * per conversion so far; the k prior and the lift tests (conversions) are
 * in place from the start. */
static void psat_calibrate(bd_psat_state_t *s, const bd_prior_t *pr)
{
    double conv = s->vshape - s->vshape0, rev = s->vrate - s->vrate0;
    if (!(conv >= BD_PSAT_CALIB_CONV) || !(rev > 0)) return;
    double value = rev / conv, roas = pos_or(pr->roas_prior, 1.0);
    double sat = pos_or(pr->saturation, pos_or(pr->budget, 1.0));
    psat_init_strength(s, pr->strength, roas / value, sat, value);
    s->calib = 0;
}

static void psat_observe(bd_model_state_t *st, const bd_prior_t *pr, const bd_agg_t *agg,
                         const bd_obs_t *o)
{
    bd_psat_state_t *s = ps(st);
    double x = agg->spend > 0 && isfinite(agg->spend) ? agg->spend : 0;
    double mult = o ? o->mult : 1.0, kw = o ? o->k_learn : 1.0;
    if (!(mult > 0) || !isfinite(mult)) mult = 1.0;
    if (!(kw >= 0 && kw <= 1)) kw = 1.0;
    if (x <= 0) { /* units only: late reports, possibly lowering earlier ones */
        psat_add_units(s, agg);
        return;
    }
    double y = agg->conversions > 0 && isfinite(agg->conversions) ? agg->conversions : 0;
    double rev = agg->revenue > 0 && isfinite(agg->revenue) ? agg->revenue : 0;
    {
        double g[BD_PSAT_KMAX], q = 0;
        for (uint32_t j = 0; j < s->n; j++) {
            g[j] = mult * sat_g(s->k[j], x);
            q += s->w[j] * g[j];
        }
        bd_drift_observe(&s->drift, s->alpha0, s->beta0, y, q);
        if (psat_surprise(s, g, y)) {
            if (++s->streak >= BD_PSAT_CP_RUN) psat_reset(s);
        } else {
            s->streak = 0;
        }
        /* log NB predictive without the k-independent -lgamma(y+1) term.
         * (gsl_sf_lngamma, not lgamma: lgamma writes the global signgam and
         * cycles close on several threads.) */
        double mx = -INFINITY, alast = NAN, lgy = 0;
        for (uint32_t j = 0; j < s->n; j++) {
            double a = s->lalpha[j], b = s->lbeta[j];
            if (a > BD_PSAT_CP_MAX_SHAPE) {
                b *= BD_PSAT_CP_MAX_SHAPE / a;
                a = BD_PSAT_CP_MAX_SHAPE;
            }
            if (a != alast) { /* usually the same a for every k: capped, or equal counts */
                lgy = lngam_ratio(a, y);
                alast = a;
            }
            s->loglik[j] += kw * (lgy + a * log(b / (b + g[j])) + (y > 0 ? y * log(g[j] / (b + g[j])) : 0));
            s->alpha[j] += y;
            s->beta[j] += g[j];
            s->lalpha[j] += y;
            s->lbeta[j] += g[j];
            if (s->loglik[j] > mx) mx = s->loglik[j];
        }
        /* shifting by the max keeps the numbers bounded; weights unchanged */
        for (uint32_t j = 0; j < s->n; j++) s->loglik[j] -= mx;
    }
    s->vshape += y;
    s->vrate += rev;
    if (s->calib) psat_calibrate(s, pr);
    bd_psat_refresh(s);
}

/* Units without exposure (observe with zero spend): a late report adds its
 * conversions and revenue; a restatement that lowered them subtracts, but a
 * statistic never falls below half its prior (the data part it lowers was
 * discounted meanwhile, so an exact subtraction is not possible anyway). */
static void psat_add_units(bd_psat_state_t *s, const bd_agg_t *agg)
{
    double y = isfinite(agg->conversions) ? agg->conversions : 0;
    double rev = isfinite(agg->revenue) ? agg->revenue : 0;
    for (uint32_t j = 0; j < s->n; j++) {
        s->alpha[j] = fmax(s->alpha[j] + y, 0.5 * s->alpha0);
        s->lalpha[j] = fmax(s->lalpha[j] + y, 0.5 * s->alpha0);
    }
    s->vshape = fmax(s->vshape + y, s->vshape0);
    s->vrate = fmax(s->vrate + rev, 0.5 * s->vrate0);
    bd_drift_add(&s->drift, s->alpha0, y, 0);
    bd_psat_refresh(s);
}

/* Exposure that matured (model.h credit): every grid point's rate sees
 * mult * g_k(x) more exposure, the local level and the shadows too. */
static void psat_credit(bd_model_state_t *st, const bd_prior_t *pr, double x, double mult)
{
    (void)pr;
    bd_psat_state_t *s = ps(st);
    if (!(x > 0) || !(mult > 0) || !isfinite(x) || !isfinite(mult)) return;
    double q = 0;
    for (uint32_t j = 0; j < s->n; j++) {
        double g = mult * sat_g(s->k[j], x);
        s->beta[j] += g;
        s->lbeta[j] += g;
        q += s->w[j] * g;
    }
    bd_drift_add(&s->drift, s->alpha0, 0, q);
}

/* Expected conversions at x under the posterior mean of each grid point,
 * mixed by the weights of k. */
static double psat_expect(const bd_model_state_t *st, const bd_prior_t *pr, double x)
{
    (void)pr;
    const bd_psat_state_t *s = cps(st);
    if (!(x > 0)) return 0;
    double m = 0;
    for (uint32_t j = 0; j < s->n; j++) m += s->w[j] * s->alpha[j] / s->beta[j] * sat_g(s->k[j], x);
    return m;
}

static double psat_forget_rate(const bd_model_state_t *st) { return cps(st)->last_gamma; }

/* One Thompson draw: k by its weight (one uniform against the running sum
 * of the weights; the last point takes what rounding leaves), then
 * lambda | k, then (revenue) v = 1/phi. */
static void psat_sample(const bd_model_state_t *st, const bd_prior_t *pr, gsl_rng *rng,
                        bd_curve_t *out)
{
    const bd_psat_state_t *s = cps(st);
    uint32_t j = 0;
    if (s->n > 1) {
        double u = gsl_rng_uniform(rng), run = s->w[0];
        while (j + 1 < s->n && u >= run) run += s->w[++j];
    }
    double a = gsl_ran_gamma(rng, s->alpha[j], 1.0 / s->beta[j]);
    if (pr->objective == BD_OBJ_REVENUE) a /= gsl_ran_gamma(rng, s->vshape, s->vscale);
    out->kind = BD_CURVE_EXP;
    out->a = a;
    out->k = s->k[j];
    out->b = 0;
}

/* Posterior-mean curve: a = E[lambda] (* E[v]) over the k mixture, k = the
 * weighted geometric mean of the grid (smooth in the weights, unlike the MAP
 * k, so the mean curve does not jump when two k are nearly tied). */
static void psat_mean(const bd_model_state_t *st, const bd_prior_t *pr, bd_curve_t *out)
{
    const bd_psat_state_t *s = cps(st);
    double lam = 0, lk = 0;
    for (uint32_t j = 0; j < s->n; j++) {
        lam += s->w[j] * s->alpha[j] / s->beta[j];
        lk += s->w[j] * log(s->k[j]);
    }
    if (pr->objective == BD_OBJ_REVENUE) lam *= s->vrate / (s->vshape - 1.0);
    out->kind = BD_CURVE_EXP;
    out->a = lam;
    out->k = exp(lk);
    out->b = 0;
}

/* Conversions behind the posterior: alpha minus the prior's pseudo-counts
 * (the same for every k since all see the same y), after discounting. */
static double psat_evidence(const bd_model_state_t *st)
{
    const bd_psat_state_t *s = cps(st);
    double e = 0;
    for (uint32_t j = 0; j < s->n; j++) e += s->w[j] * (s->alpha[j] - s->alpha0);
    return e;
}

static uint32_t psat_resets(const bd_model_state_t *st) { return cps(st)->resets; }

/* v > 0 and finite: a Gamma shape or rate, a grid point, a scale. */
static bool pos_fin(double v) { return v > 0 && v < INFINITY; }

/* A state poisson_sat can reach (checkpoint.c asks before restoring one):
 * the grid size in 1..BD_PSAT_KMAX, every shape, rate and grid point
 * positive and finite, log weights and caches not NaN (a log likelihood
 * may be -inf: a grid point ruled out), the drift shadows positive. */
static bool psat_valid(const bd_model_state_t *st)
{
    const bd_psat_state_t *s = cps(st);
    if (s->n < 1 || s->n > BD_PSAT_KMAX || s->calib > 1) return false;
    if (!pos_fin(s->alpha0) || !pos_fin(s->beta0) || !pos_fin(s->vshape0) || !pos_fin(s->vrate0) ||
        !pos_fin(s->vshape) || !pos_fin(s->vrate) || !pos_fin(s->vscale) || isnan(s->last_gamma))
        return false;
    for (uint32_t j = 0; j < s->n; j++) {
        if (!pos_fin(s->k[j]) || !pos_fin(s->alpha[j]) || !pos_fin(s->beta[j]) || !pos_fin(s->lalpha[j]) ||
            !pos_fin(s->lbeta[j]) || !isfinite(s->logprior[j]) || isnan(s->loglik[j]) ||
            s->loglik[j] == INFINITY || !(s->w[j] >= 0 && s->w[j] <= 1))
            return false;
    }
    for (int i = 0; i < BD_DRIFT_K; i++)
        if (!pos_fin(s->drift.a[i]) || !pos_fin(s->drift.b[i]) || isnan(s->drift.score[i])) return false;
    return true;
}

const bd_model_ops_t bd_model_poisson_sat_ops = {
    .name = "poisson_sat",
    .init = psat_init,
    .discount = psat_discount,
    .observe = psat_observe,
    .credit = psat_credit,
    .expect = psat_expect,
    .forget_rate = psat_forget_rate,
    .units = BD_UNITS_CONVERSIONS,
    .sample = psat_sample,
    .mean = psat_mean,
    .evidence = psat_evidence,
    .resets = psat_resets,
    .k_grid_ratio = 2.0, /* k_j = sat * 2^(j-3) */
    .valid = psat_valid,
};
