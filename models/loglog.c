/* loglog.c: constant-elasticity response, log y = alpha + beta log x + e,
 * with a Normal-Inverse-Gamma prior (the second model; config `model: loglog`).
 *
 * y is the objective of one cycle (revenue or conversions), x the spend. The
 * regressor is centred, u = log(x / saturation), so theta1 is the log
 * response at the configured saturation spend: the prior is stated there,
 * the 2x2 system stays well conditioned, and clamping the elasticity in a
 * draw does not move the curve's level at that spend.
 *
 * Cycles with x <= 0 or y <= 0 are skipped (log undefined). log(y+1) was
 * rejected: it biases the elasticity toward 0 whenever counts are small. The
 * price is that zero-outcome cycles are ignored; the poisson_sat model is the
 * one to use for channels with few conversions. */
#include <assert.h>
#include <math.h>
#include <string.h>
#include <gsl/gsl_cdf.h>
#include <gsl/gsl_randist.h>
#include "model_internal.h"

static_assert(sizeof(bd_loglog_state_t) <= BD_MODEL_STATE_BYTES, "loglog state too big");
static_assert(sizeof(bd_loglog_state_t) <= 1024, "loglog state over 1 KiB");

static bd_loglog_state_t *ls(bd_model_state_t *st) { return (bd_loglog_state_t *)(void *)st->bytes; }
static const bd_loglog_state_t *cls(const bd_model_state_t *st)
{
    return (const bd_loglog_state_t *)(const void *)st->bytes;
}

static double pos_or(double v, double fallback) { return (v > 0 && isfinite(v)) ? v : fallback; }

static double clamp_beta(double b)
{
    return b < BD_LL_BETA_MIN ? BD_LL_BETA_MIN : b > BD_LL_BETA_MAX ? BD_LL_BETA_MAX : b;
}

void bd_loglog_refresh(bd_loglog_state_t *s)
{
    double det = s->P[0] * s->P[2] - s->P[1] * s->P[1];
    double i11 = s->P[2] / det, i12 = -s->P[1] / det, i22 = s->P[0] / det;
    s->m[0] = i11 * s->h[0] + i12 * s->h[1];
    s->m[1] = i12 * s->h[0] + i22 * s->h[1];
    s->L[0] = sqrt(i11);
    s->L[1] = i12 / s->L[0];
    double d = i22 - s->L[1] * s->L[1];
    s->L[2] = sqrt(d > 0 ? d : 0);
    /* b = (q - h'm)/2 >= b0-share > 0 in exact arithmetic; guard rounding */
    double b = 0.5 * (s->q - (s->h[0] * s->m[0] + s->h[1] * s->m[1]));
    s->b = b > 1e-12 ? b : 1e-12;
}

/* Prior: sigma^2 ~ IG(2, 0.1) (mean 0.1, i.e. ~30% log-noise); theta |
 * sigma^2 ~ N(m0, sigma^2 P0^-1) with P0 = diag(0.1/1^2, 0.1/0.25^2) so that
 * at the mean sigma^2 the intercept has sd 1 and the elasticity sd 0.25;
 * m0 = (log(roas_prior * sat) - 0.1/2, 0.5), i.e. ROAS at the saturation
 * spend is roas_prior in the mean (with the lognormal correction). */
static void ll_init(bd_model_state_t *st, const bd_prior_t *pr)
{
    memset(st, 0, sizeof *st);
    bd_loglog_state_t *s = ls(st);
    s->centre = pos_or(pr->saturation, pos_or(pr->budget, 1.0));
    s->logc = log(s->centre);
    double roas = pos_or(pr->roas_prior, 1.0);
    double m0[2] = {log(roas * s->centre) - 0.5 * BD_LL_SIGMA2_0, 0.5};
    double b0 = BD_LL_SIGMA2_0 * (BD_LL_A0 - 1.0);
    s->P0[0] = BD_LL_SIGMA2_0 / (BD_LL_SD_ALPHA0 * BD_LL_SD_ALPHA0);
    s->P0[1] = 0;
    s->P0[2] = BD_LL_SIGMA2_0 / (BD_LL_SD_BETA0 * BD_LL_SD_BETA0);
    s->h0[0] = s->P0[0] * m0[0];
    s->h0[1] = s->P0[2] * m0[1];
    s->a0 = BD_LL_A0;
    s->q0 = 2.0 * b0 + m0[0] * s->h0[0] + m0[1] * s->h0[1];
    memcpy(s->P, s->P0, sizeof s->P);
    memcpy(s->h, s->h0, sizeof s->h);
    s->a = s->a0;
    s->q = s->q0;
    bd_loglog_refresh(s);
}

/* N := w*N + (1-w)*N0 for every natural statistic: the data part is scaled
 * by w, the prior part stays whole. */
static void ll_blend(bd_loglog_state_t *s, double w)
{
    double c = 1.0 - w;
    for (int i = 0; i < 3; i++) s->P[i] = w * s->P[i] + c * s->P0[i];
    for (int i = 0; i < 2; i++) s->h[i] = w * s->h[i] + c * s->h0[i];
    s->a = w * s->a + c * s->a0;
    s->q = w * s->q + c * s->q0;
    s->conv *= w;
    bd_loglog_refresh(s);
}

/* Same variant as poisson_sat: exponential forgetting toward the prior.
 * Held-back cycles age with the rest. */
static void ll_discount(bd_model_state_t *st, const bd_prior_t *pr, double gamma)
{
    (void)pr;
    if (!(gamma >= 0 && gamma < 1)) return;
    bd_loglog_state_t *s = ls(st);
    for (uint32_t i = 0; i < s->streak; i++) s->pend[i][2] *= gamma;
    ll_blend(s, gamma);
}

/* Weighted conjugate update with regressor (1, u), response z. */
static void ll_add(bd_loglog_state_t *s, double u, double z, double w, double conv)
{
    s->P[0] += w;
    s->P[1] += w * u;
    s->P[2] += w * u * u;
    s->h[0] += w * z;
    s->h[1] += w * u * z;
    s->a += 0.5 * w;
    s->q += w * z * z;
    s->conv += w * conv;
}

/* Two-sided tail of z at u under the Student-t posterior predictive:
 * t_{2a}(m1 + m2 u, (b/a)(1 + v' P^-1 v)), v = (1, u). */
static double ll_tail(const bd_loglog_state_t *s, double u, double z)
{
    double l1 = s->L[0] + s->L[1] * u, l2 = s->L[2] * u; /* L' v */
    double var = s->b / s->a * (1.0 + l1 * l1 + l2 * l2);
    double t = fabs(z - (s->m[0] + s->m[1] * u)) / sqrt(var);
    return 2.0 * gsl_cdf_tdist_Q(t, 2.0 * s->a);
}

/* Change-point check, then the conjugate update. A cycle whose predictive
 * two-sided tail is below 0.01 is held back; the third such cycle in a row
 * keeps 20% of the evidence (a reset) and then folds in the held cycles and
 * itself, which belong to the new regime. An ordinary cycle ends the streak
 * and folds in the held ones as ordinary data. */
static void ll_observe(bd_model_state_t *st, const bd_prior_t *pr, const bd_agg_t *agg,
                       const bd_obs_t *o)
{
    bd_loglog_state_t *s = ls(st);
    double x = agg->spend;
    double y = pr->objective == BD_OBJ_REVENUE ? agg->revenue : agg->conversions;
    if (!(x > 0 && y > 0 && isfinite(x) && isfinite(y))) return;
    double mult = o ? o->mult : 1.0;
    if (mult > 0 && isfinite(mult)) y /= mult; /* the season's and the reports' share taken out */
    double u = log(x) - s->logc, z = log(y);
    double conv = agg->conversions > 0 && isfinite(agg->conversions) ? agg->conversions : 0;
    if (ll_tail(s, u, z) < BD_LL_CP_P) {
        if (s->streak + 1 < BD_LL_CP_RUN) {
            double *p = s->pend[s->streak++];
            p[0] = u, p[1] = z, p[2] = 1.0, p[3] = conv;
            return;
        }
        ll_blend(s, BD_LL_CP_KEEP);
        s->resets++;
    }
    for (uint32_t i = 0; i < s->streak; i++)
        ll_add(s, s->pend[i][0], s->pend[i][1], s->pend[i][2], s->pend[i][3]);
    s->streak = 0;
    ll_add(s, u, z, 1.0, conv);
    bd_loglog_refresh(s);
}

/* sigma^2 = b / Gamma(a, 1), theta = m + sigma L (z1, z2); the elasticity is
 * clamped into [0.05, 0.95] so that every draw is a concave power curve. */
static void ll_sample(const bd_model_state_t *st, const bd_prior_t *pr, gsl_rng *rng,
                      bd_curve_t *out)
{
    (void)pr;
    const bd_loglog_state_t *s = cls(st);
    double s2 = s->b / gsl_ran_gamma(rng, s->a, 1.0);
    double sd = sqrt(s2);
    double z1 = gsl_ran_gaussian_ziggurat(rng, 1.0), z2 = gsl_ran_gaussian_ziggurat(rng, 1.0);
    double t1 = s->m[0] + sd * s->L[0] * z1;
    double beta = clamp_beta(s->m[1] + sd * (s->L[1] * z1 + s->L[2] * z2));
    out->kind = BD_CURVE_POWER;
    out->a = exp(t1 + 0.5 * s2 - beta * s->logc);
    out->b = beta;
    out->k = 0;
}

/* Curve at the posterior mean: theta = m, sigma^2 = E[sigma^2] = b/(a-1)
 * (a >= a0 = 2 always, as the blend never goes below the prior). */
static void ll_mean(const bd_model_state_t *st, const bd_prior_t *pr, bd_curve_t *out)
{
    (void)pr;
    const bd_loglog_state_t *s = cls(st);
    double s2 = s->b / (s->a - 1.0);
    double beta = clamp_beta(s->m[1]);
    out->kind = BD_CURVE_POWER;
    out->a = exp(s->m[0] + 0.5 * s2 - beta * s->logc);
    out->b = beta;
    out->k = 0;
}

/* Discounted conversions of the cycles actually used by the regression. */
static double ll_evidence(const bd_model_state_t *st) { return cls(st)->conv; }

static uint32_t ll_resets(const bd_model_state_t *st) { return cls(st)->resets; }

/* The objective at x on the posterior-mean curve. */
static double ll_expect(const bd_model_state_t *st, const bd_prior_t *pr, double x)
{
    bd_curve_t c;
    ll_mean(st, pr, &c);
    return bd_curve_value(&c, x);
}

/* A state loglog can reach (checkpoint.c asks before restoring one): every
 * statistic and cache finite, the centre, IG shapes and scale positive,
 * the precision matrices positive definite, evidence not negative. */
static bool ll_valid(const bd_model_state_t *st)
{
    const bd_loglog_state_t *s = cls(st);
    const double *fin[] = {&s->logc, &s->h[0], &s->h[1], &s->q, &s->h0[0], &s->h0[1], &s->q0,
                           &s->m[0], &s->m[1], &s->L[0], &s->L[1], &s->L[2], &s->P[1], &s->P0[1]};
    for (size_t i = 0; i < sizeof fin / sizeof *fin; i++)
        if (!isfinite(*fin[i])) return false;
    for (int i = 0; i < BD_LL_CP_RUN - 1; i++)
        for (int j = 0; j < 4; j++)
            if (!isfinite(s->pend[i][j])) return false;
    if (!(s->centre > 0 && s->centre < INFINITY) || !(s->a > 0 && s->a < INFINITY) ||
        !(s->a0 > 0 && s->a0 < INFINITY) || !(s->b > 0 && s->b < INFINITY) ||
        !(s->conv >= 0 && s->conv < INFINITY))
        return false;
    const double *P[] = {s->P, s->P0};
    for (int i = 0; i < 2; i++)
        if (!(P[i][0] > 0 && P[i][2] > 0 && P[i][0] < INFINITY && P[i][2] < INFINITY &&
              P[i][0] * P[i][2] - P[i][1] * P[i][1] > 0))
            return false;
    return true;
}

const bd_model_ops_t bd_model_loglog_ops = {
    .name = "loglog",
    .init = ll_init,
    .discount = ll_discount,
    .observe = ll_observe,
    .credit = NULL,  /* a log-log regression has no exposure apart from units */
    .expect = ll_expect,
    .forget_rate = NULL,
    .units = BD_UNITS_OBJECTIVE,
    .sample = ll_sample,
    .mean = ll_mean,
    .evidence = ll_evidence,
    .resets = ll_resets,
    .valid = ll_valid,
};
