/* test_model_loglog.c: the log-log Normal-Inverse-Gamma model. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include "models/model_internal.h"
#include "fixtures.h"

static const bd_model_ops_t *M;
static gsl_rng *R;

static void setup(void)
{
    M = bd_model_get(BD_MODEL_LOGLOG);
    cr_assert_not_null(M);
    R = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(R, 777);
}
static void teardown(void) { gsl_rng_free(R); }

TestSuite(loglog, .init = setup, .fini = teardown);

static bd_prior_t prior(void)
{
    bd_prior_t p = {.objective = BD_OBJ_REVENUE, .saturation = 2000, .budget = 10000,
                    .roas_prior = 3.0, .value_prior = 40.0};
    return p;
}

static bd_loglog_state_t *S(bd_model_state_t *st) { return (bd_loglog_state_t *)(void *)st->bytes; }

static bd_agg_t agg(double spend, double revenue, double conv)
{
    bd_agg_t a = {.spend = spend, .revenue = revenue, .conversions = conv, .events = 1};
    return a;
}

Test(loglog, prior_mean_roas_at_saturation)
{
    bd_model_state_t st;
    bd_prior_t pr = prior();
    M->init(&st, &pr);
    bd_curve_t c;
    M->mean(&st, &pr, &c);
    cr_assert_eq(c.kind, BD_CURVE_POWER);
    bd_test_near(c.b, 0.5, 1e-12, "prior elasticity");
    bd_test_near(bd_curve_value(&c, 2000) / 2000, 3.0, 1e-12, "prior ROAS at saturation");
    cr_assert_float_eq(M->evidence(&st), 0, 1e-15);
}

/* Sequential natural-parameter updates equal the batch NIG posterior,
 * computed here from its textbook form (normal equations and residuals). */
Test(loglog, conjugate_update_equals_closed_form)
{
    bd_model_state_t st;
    bd_prior_t pr = prior();
    M->init(&st, &pr);
    bd_loglog_state_t *s = S(&st);
    double m0[2] = {s->m[0], s->m[1]}, P0[3] = {s->P0[0], s->P0[1], s->P0[2]};
    double a0 = s->a0, b0 = s->b;
    double xs[] = {500, 1000, 2500, 4000, 800, 0, 3000};
    double ys[] = {2000, 3100, 6000, 7500, 2600, 100, 0}; /* last two skipped */
    double A[3] = {P0[0], P0[1], P0[2]}, v[2] = {P0[0] * m0[0] + P0[1] * m0[1],
                                                 P0[1] * m0[0] + P0[2] * m0[1]};
    double us[5], zs[5];
    for (int i = 0; i < 7; i++) {
        bd_agg_t a = agg(xs[i], ys[i], 10);
        M->observe(&st, &pr, &a, NULL);
        if (i < 5) {
            us[i] = log(xs[i] / 2000);
            zs[i] = log(ys[i]);
            A[0] += 1, A[1] += us[i], A[2] += us[i] * us[i];
            v[0] += zs[i], v[1] += us[i] * zs[i];
        }
    }
    double det = A[0] * A[2] - A[1] * A[1];
    double m[2] = {(A[2] * v[0] - A[1] * v[1]) / det, (A[0] * v[1] - A[1] * v[0]) / det};
    bd_test_near(s->m[0], m[0], 1e-10, "m1");
    bd_test_near(s->m[1], m[1], 1e-10, "m2");
    bd_test_near(s->a, a0 + 2.5, 1e-14, "a = a0 + n/2");
    double rss = 0;
    for (int i = 0; i < 5; i++) rss += pow(zs[i] - m[0] - m[1] * us[i], 2);
    double d0 = m[0] - m0[0], d1 = m[1] - m0[1];
    double quad = P0[0] * d0 * d0 + 2 * P0[1] * d0 * d1 + P0[2] * d1 * d1;
    bd_test_near(s->b, b0 + 0.5 * (rss + quad), 1e-9, "b = b0 + (rss + prior quad)/2");
    bd_test_near(M->evidence(&st), 50, 1e-12, "evidence: conversions of used cycles only");
}

/* Data from a known elasticity: the posterior mean recovers it, the mean
 * curve reproduces the true response, draws centre on the posterior. */
Test(loglog, recovers_known_elasticity)
{
    double betas[] = {0.3, 0.6, 0.85};
    for (int bi = 0; bi < 3; bi++) {
        bd_model_state_t st;
        bd_prior_t pr = prior();
        M->init(&st, &pr);
        gsl_rng_set(R, 50 + (uint64_t)bi);
        double A = 40.0, beta = betas[bi];
        for (int t = 0; t < 300; t++) {
            double x = 2000 * exp(gsl_ran_flat(R, log(0.2), log(5.0)));
            double y = A * pow(x, beta) * exp(gsl_ran_gaussian(R, 0.1));
            bd_agg_t a = agg(x, y, y / 40);
            M->discount(&st, &pr, 0.99);
            M->observe(&st, &pr, &a, NULL);
        }
        cr_assert_eq(M->resets(&st), 0, "stationary: no reset");
        bd_loglog_state_t *s = S(&st);
        cr_assert(fabs(s->m[1] - beta) < 0.03, "beta %g: estimated %g", beta, s->m[1]);
        bd_curve_t c;
        M->mean(&st, &pr, &c);
        bd_test_near(c.b, s->m[1], 1e-15, "mean curve elasticity");
        for (double x = 500; x <= 8000; x *= 2) {
            double want = A * pow(x, beta) * exp(0.005); /* lognormal mean */
            cr_assert(fabs(bd_curve_value(&c, x) / want - 1) < 0.05, "beta %g x %g: %g vs %g",
                      beta, x, bd_curve_value(&c, x), want);
        }
        /* draws: mean elasticity = m2 (clamp inactive), 5 standard errors */
        double sd = sqrt(s->b / (s->a - 1) * s->P[0] /
                         (s->P[0] * s->P[2] - s->P[1] * s->P[1]));
        int n = 100000;
        double sum = 0;
        for (int i = 0; i < n; i++) {
            M->sample(&st, &pr, R, &c);
            cr_assert_eq(c.kind, BD_CURVE_POWER);
            sum += c.b;
        }
        cr_assert(fabs(sum / n - s->m[1]) < 5 * sd / sqrt(n), "MC mean %g vs %g", sum / n,
                  s->m[1]);
    }
}

/* The draw of theta is N(m, s2 P^-1) with s2 ~ IG(a, b). The centred log
 * level l = log(a_curve) + b_curve*log(centre) = t1 + s2/2 is never clamped:
 * E[l] = m1 + E[s2]/2, Var[l] = E[s2] (P^-1)_11 + Var[s2]/4. */
Test(loglog, sample_moments_match_posterior)
{
    bd_model_state_t st;
    bd_prior_t pr = prior();
    M->init(&st, &pr);
    double xs[] = {1000, 3000, 1500, 2500, 800, 4000};
    double ys[] = {3000, 7000, 4500, 6500, 2900, 8000};
    for (int i = 0; i < 6; i++) {
        bd_agg_t a = agg(xs[i], ys[i], 1);
        M->observe(&st, &pr, &a, NULL);
    }
    bd_loglog_state_t *s = S(&st);
    cr_assert_gt(s->a, 4.0, "4th moment of s2 finite: sample variance converges");
    double i11 = s->P[2] / (s->P[0] * s->P[2] - s->P[1] * s->P[1]);
    double es2 = s->b / (s->a - 1), vs2 = es2 * es2 / (s->a - 2);
    double want_mean = s->m[0] + es2 / 2, want_var = es2 * i11 + vs2 / 4;
    int n = 200000;
    double sum = 0, sum2 = 0;
    bd_curve_t c;
    for (int i = 0; i < n; i++) {
        M->sample(&st, &pr, R, &c);
        cr_assert(c.b >= BD_LL_BETA_MIN && c.b <= BD_LL_BETA_MAX, "clamped b %g", c.b);
        double l = log(c.a) + c.b * s->logc - want_mean;
        sum += l;
        sum2 += l * l;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    cr_assert(fabs(mean) < 5 * sqrt(want_var / n), "mean off by %g (sd %g)", mean,
              sqrt(want_var));
    cr_assert(fabs(var / want_var - 1) < 0.05, "variance %g want %g", var, want_var);
}

/* The pinned discount: natural statistics N := gamma N + (1-gamma) N0. */
Test(loglog, discount_blends_toward_prior)
{
    bd_model_state_t st, p0st;
    bd_prior_t pr = prior();
    M->init(&st, &pr);
    M->init(&p0st, &pr);
    for (int i = 0; i < 8; i++) {
        bd_agg_t a = agg(500 + 400 * i, 1500 + 700 * i, 20);
        M->observe(&st, &pr, &a, NULL);
    }
    bd_loglog_state_t before = *S(&st), *s = S(&st), *p0 = S(&p0st);
    double g = 0.9;
    M->discount(&st, &pr, g);
    for (int i = 0; i < 3; i++) bd_test_near(s->P[i], g * before.P[i] + (1 - g) * p0->P[i], 1e-14, "P");
    for (int i = 0; i < 2; i++) bd_test_near(s->h[i], g * before.h[i] + (1 - g) * p0->h[i], 1e-14, "h");
    bd_test_near(s->a, g * before.a + (1 - g) * p0->a, 1e-14, "a");
    bd_test_near(s->q, g * before.q + (1 - g) * p0->q, 1e-14, "q");
    bd_test_near(M->evidence(&st), g * 160, 1e-12, "evidence");
    for (int i = 0; i < 3000; i++) M->discount(&st, &pr, 0.98);
    bd_test_near(s->m[0], p0->m[0], 1e-8, "m1 -> prior");
    bd_test_near(s->m[1], p0->m[1], 1e-8, "m2 -> prior");
    bd_test_near(s->a, p0->a, 1e-8, "a -> prior");
    bd_test_near(s->b, p0->b, 1e-8, "b -> prior");
}

/* Level of a channel with elasticity 0.5 and 10% noise; the level drops by
 * `drop` from cycle `change` on. */
static uint32_t run_channel(uint64_t seed, int cycles, int change, double drop, int *first)
{
    bd_model_state_t st;
    bd_prior_t pr = prior();
    M->init(&st, &pr);
    gsl_rng_set(R, seed);
    *first = -1;
    for (int t = 0; t < cycles; t++) {
        double x = gsl_ran_flat(R, 1500, 2500);
        double y = 90 * sqrt(x) * exp(gsl_ran_gaussian(R, 0.1)) * (t >= change ? drop : 1);
        bd_agg_t a = agg(x, y, y / 40);
        M->discount(&st, &pr, 0.98);
        M->observe(&st, &pr, &a, NULL);
        if (*first < 0 && M->resets(&st)) *first = t;
    }
    return M->resets(&st);
}

Test(loglog, change_point_resets)
{
    for (uint64_t seed = 1; seed <= 10; seed++) {
        int first;
        uint32_t n = run_channel(seed, 200, 1 << 30, 1, &first);
        cr_assert_eq(n, 0, "seed %lu: %u resets on stationary data (first %d)",
                     (unsigned long)seed, n, first);
        n = run_channel(seed, 120, 100, 0.5, &first);
        cr_assert_geq(n, 1, "seed %lu: no reset after the level halved", (unsigned long)seed);
        cr_assert(first >= 100 && first <= 104, "seed %lu: first reset at %d",
                  (unsigned long)seed, first);
    }
}

Test(loglog, skips_unusable_cycles)
{
    bd_model_state_t st;
    bd_prior_t pr = prior();
    M->init(&st, &pr);
    bd_model_state_t before = st;
    bd_agg_t bad[] = {agg(0, 100, 1), agg(100, 0, 0), agg(-5, 10, 1), agg(NAN, 10, 1)};
    for (int i = 0; i < 4; i++) M->observe(&st, &pr, &bad[i], NULL);
    cr_assert_eq(memcmp(&before, &st, sizeof st), 0, "unusable cycles change nothing");
    /* conversions objective regresses conversions, not revenue */
    pr.objective = BD_OBJ_CONVERSIONS;
    pr.roas_prior = 0.025;
    M->init(&st, &pr);
    before = st;
    bd_agg_t a = agg(1000, 0, 25);
    M->observe(&st, &pr, &a, NULL);
    cr_assert_eq(S(&st)->streak, 0, "an ordinary cycle");
    bd_test_near(S(&st)->h[0], S(&before)->h[0] + log(25), 1e-14, "z = log conversions");
}

/* A surprising cycle is held back, aged by the discount, and folded in with
 * its discounted weight when an ordinary cycle ends the streak. */
Test(loglog, surprising_cycle_is_held_then_folded_in)
{
    bd_model_state_t st;
    bd_prior_t pr = prior();
    M->init(&st, &pr);
    for (int i = 0; i < 40; i++) { /* settle: ROAS 3 at 2000, noise-free-ish */
        bd_agg_t a = agg(2000, 6000 * (i % 2 ? 1.02 : 0.98), 100);
        M->observe(&st, &pr, &a, NULL);
    }
    bd_loglog_state_t *s = S(&st);
    cr_assert_eq(s->streak, 0);
    bd_loglog_state_t settled = *s;
    bd_agg_t odd = agg(2000, 600, 10), ok = agg(2000, 6000, 100);
    M->observe(&st, &pr, &odd, NULL);
    cr_assert_eq(s->streak, 1, "held back");
    cr_assert_eq(memcmp(s->P, settled.P, sizeof s->P), 0, "not yet in the statistics");
    cr_assert_eq(s->q, settled.q);
    M->discount(&st, &pr, 0.5);
    bd_test_near(s->pend[0][2], 0.5, 1e-15, "held cycle ages");
    double h0 = s->h[0];
    M->observe(&st, &pr, &ok, NULL);
    cr_assert_eq(s->streak, 0);
    cr_assert_eq(M->resets(&st), 0);
    bd_test_near(s->h[0], h0 + 0.5 * log(600) + log(6000), 1e-12, "held cycle folded in at weight 0.5");
}
