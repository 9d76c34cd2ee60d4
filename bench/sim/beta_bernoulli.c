/* beta_bernoulli.c: Beta-Bernoulli model of a success rate per trial.
 *
 * p ~ Beta(a, b); a trial is a click and a success a conversion (the same
 * code serves click-through later with impressions as trials). Conjugate:
 * observing y successes of n trials adds (y, n - y). Forgetting is the
 * engine's variant shared by every model: each statistic s becomes
 * gamma*s + (1-gamma)*s0, i.e. the data counts are discounted and the prior
 * is kept whole (for Bernoulli bandits this is exactly discounted Thompson
 * sampling, Raj & Kalyani 2017).
 *
 * As a budget model the response curve is f(x) = A k (1 - e^{-x/k}) with
 * A = p * (trials per spend) [* value per success for revenue] and k the
 * configured saturation: only p is uncertain in a draw; the two ratios are
 * discounted point estimates with prior pseudo-sums. */
#include <assert.h>
#include <math.h>
#include <string.h>
#include <gsl/gsl_randist.h>
#include "bandit.h"

static_assert(sizeof(bd_bb_state_t) <= BD_MODEL_STATE_BYTES, "beta_bernoulli state too big");

static bd_bb_state_t *bb(bd_model_state_t *st) { return (bd_bb_state_t *)(void *)st->bytes; }

const bd_bb_state_t *bd_bb_view(const bd_model_state_t *st)
{
    return (const bd_bb_state_t *)(const void *)st->bytes;
}

/* Positive finite or the fallback: a zero prior must never yield NaN curves. */
static double pos_or(double v, double fallback) { return (v > 0 && isfinite(v)) ? v : fallback; }

/* Prior Beta(1,1); curve pseudo-sums worth 1% of the budget of spend, set so
 * that the prior curve's slope at 0 is roas_prior. */
static void bb_init(bd_model_state_t *st, const bd_prior_t *pr)
{
    memset(st, 0, sizeof *st);
    bd_bb_state_t *s = bb(st);
    s->a0 = s->a = BD_BB_PRIOR_A;
    s->b0 = s->b = BD_BB_PRIOR_B;
    double pmean = s->a0 / (s->a0 + s->b0);
    double value = pr->objective == BD_OBJ_REVENUE ? pos_or(pr->value_prior, 1.0) : 1.0;
    double roas = pos_or(pr->roas_prior, 1.0);
    s->spend0 = s->spend = 0.01 * pos_or(pr->budget, 100.0);
    s->trials0 = s->trials = s->spend0 * roas / (pmean * value);
    s->succ0 = s->succ = 1.0;
    s->value0 = s->value = value;
}

/* Forgetting toward the prior (see the file comment). gamma >= 1: none. */
static void bb_discount(bd_model_state_t *st, const bd_prior_t *pr, double gamma)
{
    (void)pr;
    if (!(gamma >= 0 && gamma < 1)) return;
    bd_bb_state_t *s = bb(st);
    double c = 1.0 - gamma;
    s->a = gamma * s->a + c * s->a0;
    s->b = gamma * s->b + c * s->b0;
    s->spend = gamma * s->spend + c * s->spend0;
    s->trials = gamma * s->trials + c * s->trials0;
    s->succ = gamma * s->succ + c * s->succ0;
    s->value = gamma * s->value + c * s->value0;
}

/* Two-sided tail 2*min(P(Y<=y), P(Y>=y)) of y successes in n trials under
 * the Beta-Binomial predictive of Beta(a,b). Exact for n <= 200 (pmf by
 * recurrence, no special functions: a bandit pull costs one division), a
 * normal approximation with continuity correction above. */
static double bb_tail(double a, double b, double y, double n)
{
    double m = a / (a + b);
    if (n == 1) {
        double t = 2.0 * (y >= 1 ? m : 1.0 - m);
        return t < 1 ? t : 1;
    }
    if (n <= 200) {
        int N = (int)n, Y = (int)y;
        /* pmf(0) = prod_{j<N} (b+j)/(a+b+j) */
        double p = 1.0;
        for (int j = 0; j < N; j++) p *= (b + j) / (a + b + j);
        double lo = 0, hi = 0;
        for (int k = 0; k <= N; k++) {
            if (k <= Y) lo += p;
            if (k >= Y) hi += p;
            if (k < N) p *= (double)(N - k) / (k + 1) * (a + k) / (b + N - k - 1);
        }
        double t = 2.0 * (lo < hi ? lo : hi);
        return t < 1 ? t : 1;
    }
    double mean = n * m, var = n * m * (1 - m) * (a + b + n) / (a + b + 1);
    double z = (fabs(y - mean) - 0.5) / sqrt(var > 0 ? var : 1e-12);
    if (z < 0) return 1;
    double t = erfc(z / M_SQRT2);
    return t < 1 ? t : 1;
}

void bd_bb_observe_trials(bd_model_state_t *st, double successes, double trials)
{
    bd_bb_state_t *s = bb(st);
    if (!(trials > 0) || !isfinite(trials)) return;
    double y = successes > 0 && isfinite(successes) ? successes : 0;
    if (y > trials) y = trials;
    double n_int = floor(trials + 0.5), y_int = floor(y + 0.5);
    if (n_int >= 1) {
        if (y_int > n_int) y_int = n_int;
        if (bb_tail(s->a, s->b, y_int, n_int) < BD_BB_CP_P) {
            if (++s->streak >= BD_BB_CP_RUN) {
                /* Partial restart: keep BD_BB_CP_KEEP of the evidence. */
                double keep = BD_BB_CP_KEEP, c = 1.0 - keep;
                s->a = keep * s->a + c * s->a0;
                s->b = keep * s->b + c * s->b0;
                s->resets++;
                s->streak = 0;
            }
        } else {
            s->streak = 0;
        }
    }
    s->a += y;
    s->b += trials - y;
}

/* Trials are clicks and successes conversions; an aggregate without clicks
 * still informs the curve's spend and value ratios. */
static void bb_observe(bd_model_state_t *st, const bd_prior_t *pr, const bd_agg_t *agg,
                       const bd_obs_t *o)
{
    (void)pr;
    (void)o; /* a success rate per click: no exposure to scale */
    bd_bb_state_t *s = bb(st);
    double x = agg->spend > 0 && isfinite(agg->spend) ? agg->spend : 0;
    double n = agg->clicks > 0 && isfinite(agg->clicks) ? agg->clicks : 0;
    double y = agg->conversions > 0 && isfinite(agg->conversions) ? agg->conversions : 0;
    double rev = agg->revenue > 0 && isfinite(agg->revenue) ? agg->revenue : 0;
    if (n > 0) bd_bb_observe_trials(st, y < n ? y : n, n);
    s->spend += x;
    s->trials += n;
    if (pr->objective == BD_OBJ_REVENUE && y > 0) {
        s->succ += y;
        s->value += rev;
    }
}

double bd_bb_draw(const bd_model_state_t *st, gsl_rng *rng)
{
    const bd_bb_state_t *s = bd_bb_view(st);
    return gsl_ran_beta(rng, s->a, s->b);
}

double bd_bb_mean(const bd_model_state_t *st)
{
    const bd_bb_state_t *s = bd_bb_view(st);
    return s->a / (s->a + s->b);
}

/* Slope at zero of the curve for success rate p. */
static double bb_slope(const bd_bb_state_t *s, const bd_prior_t *pr, double p)
{
    double a = p * s->trials / s->spend;
    if (pr->objective == BD_OBJ_REVENUE) a *= s->value / s->succ;
    return a;
}

static void bb_sample(const bd_model_state_t *st, const bd_prior_t *pr, gsl_rng *rng,
                      bd_curve_t *out)
{
    const bd_bb_state_t *s = bd_bb_view(st);
    out->kind = BD_CURVE_EXP;
    out->a = bb_slope(s, pr, bd_bb_draw(st, rng));
    out->k = pos_or(pr->saturation, pos_or(pr->budget, 1.0));
    out->b = 0;
}

static void bb_mean(const bd_model_state_t *st, const bd_prior_t *pr, bd_curve_t *out)
{
    const bd_bb_state_t *s = bd_bb_view(st);
    out->kind = BD_CURVE_EXP;
    out->a = bb_slope(s, pr, bd_bb_mean(st));
    out->k = pos_or(pr->saturation, pos_or(pr->budget, 1.0));
    out->b = 0;
}

/* Successes behind the posterior beyond the prior's pseudo-counts. */
static double bb_evidence(const bd_model_state_t *st)
{
    const bd_bb_state_t *s = bd_bb_view(st);
    return s->a - s->a0;
}

static uint32_t bb_resets(const bd_model_state_t *st) { return bd_bb_view(st)->resets; }

const bd_model_ops_t bd_model_beta_bernoulli_ops = {
    .name = "beta_bernoulli",
    .init = bb_init,
    .discount = bb_discount,
    .observe = bb_observe,
    .sample = bb_sample,
    .mean = bb_mean,
    .evidence = bb_evidence,
    .resets = bb_resets,
};
