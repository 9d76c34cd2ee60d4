/* test_beta_bernoulli.c: the Beta-Bernoulli model: conjugate counts, the
 * engine's discount toward the prior (pinned: it is the variant the bandit
 * benchmarks report), posterior draws, the change-point reset and the
 * response curve it offers the allocator. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include <gsl/gsl_rng.h>
#include "sim/bandit.h"

static const bd_model_ops_t *ops = &bd_model_beta_bernoulli_ops;

static bd_prior_t prior(bd_objective_t obj)
{
    return (bd_prior_t){.objective = obj, .saturation = 500, .budget = 1000, .roas_prior = 2.0,
                        .value_prior = 40};
}

Test(beta_bernoulli, prior_is_uniform)
{
    bd_model_state_t st;
    bd_prior_t pr = prior(BD_OBJ_CONVERSIONS);
    ops->init(&st, &pr);
    const bd_bb_state_t *s = bd_bb_view(&st);
    cr_assert_float_eq(s->a, 1.0, 0);
    cr_assert_float_eq(s->b, 1.0, 0);
    cr_assert_float_eq(bd_bb_mean(&st), 0.5, 1e-12);
    cr_assert_float_eq(ops->evidence(&st), 0, 1e-12);
    cr_assert_eq(ops->resets(&st), 0);
    cr_assert_str_eq(ops->name, "beta_bernoulli");
}

Test(beta_bernoulli, conjugate_counts)
{
    bd_model_state_t st;
    bd_prior_t pr = prior(BD_OBJ_CONVERSIONS);
    ops->init(&st, &pr);
    bd_bb_observe_trials(&st, 3, 10);
    bd_bb_observe_trials(&st, 1, 1);
    bd_bb_observe_trials(&st, 0, 1);
    const bd_bb_state_t *s = bd_bb_view(&st);
    cr_assert_float_eq(s->a, 1 + 4, 1e-12);
    cr_assert_float_eq(s->b, 1 + 8, 1e-12);
    cr_assert_float_eq(ops->evidence(&st), 4, 1e-12);
    /* nonsense is ignored or clamped: no trials, successes above trials */
    bd_bb_observe_trials(&st, 5, 0);
    bd_bb_observe_trials(&st, 7, 2);
    cr_assert_float_eq(s->a, 5 + 2, 1e-12);
    cr_assert_float_eq(s->b, 9, 1e-12);
}

/* The pinned variant: every statistic s -> gamma*s + (1-gamma)*s0, so the
 * data counts are discounted and the prior kept whole (a - a0 and b - b0
 * shrink by gamma exactly), and with no data the state returns to the prior. */
Test(beta_bernoulli, discount_blends_toward_prior)
{
    bd_model_state_t st;
    bd_prior_t pr = prior(BD_OBJ_CONVERSIONS);
    ops->init(&st, &pr);
    bd_bb_observe_trials(&st, 30, 40);
    const bd_bb_state_t *s = bd_bb_view(&st);
    ops->discount(&st, &pr, 0.9);
    cr_assert_float_eq(s->a - s->a0, 0.9 * 30, 1e-12);
    cr_assert_float_eq(s->b - s->b0, 0.9 * 10, 1e-12);
    for (int i = 0; i < 2000; i++) ops->discount(&st, &pr, 0.9);
    cr_assert_float_eq(s->a, s->a0, 1e-9);
    cr_assert_float_eq(s->b, s->b0, 1e-9);
    /* gamma = 1: no forgetting */
    bd_bb_observe_trials(&st, 2, 4);
    double a = s->a, b = s->b;
    ops->discount(&st, &pr, 1.0);
    cr_assert_float_eq(s->a, a, 0);
    cr_assert_float_eq(s->b, b, 0);
}

/* Discounted TS on a Bernoulli arm equals Raj & Kalyani's recursion
 * S <- gamma S + r, F <- gamma F + (1 - r), Beta(1 + S, 1 + F). */
Test(beta_bernoulli, discount_then_observe_is_dts_recursion)
{
    bd_model_state_t st;
    bd_prior_t pr = prior(BD_OBJ_CONVERSIONS);
    ops->init(&st, &pr);
    double S = 0, F = 0, g = 0.95;
    const int rewards[] = {1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 1};
    for (size_t i = 0; i < sizeof rewards / sizeof *rewards; i++) {
        ops->discount(&st, &pr, g);
        bd_bb_observe_trials(&st, rewards[i], 1);
        S = g * S + rewards[i];
        F = g * F + (1 - rewards[i]);
    }
    cr_assert_float_eq(bd_bb_view(&st)->a, 1 + S, 1e-12);
    cr_assert_float_eq(bd_bb_view(&st)->b, 1 + F, 1e-12);
}

Test(beta_bernoulli, draws_follow_the_posterior)
{
    bd_model_state_t st;
    bd_prior_t pr = prior(BD_OBJ_CONVERSIONS);
    ops->init(&st, &pr);
    bd_bb_observe_trials(&st, 29, 99); /* Beta(30, 71) */
    gsl_rng *r = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(r, 3);
    double m = 0, m2 = 0;
    const int N = 40000;
    for (int i = 0; i < N; i++) {
        double p = bd_bb_draw(&st, r);
        cr_assert(p > 0 && p < 1);
        m += p;
        m2 += p * p;
    }
    m /= N;
    double var = m2 / N - m * m, a = 30, b = 71;
    cr_assert_float_eq(m, a / (a + b), 0.003);
    cr_assert_float_eq(var, a * b / ((a + b) * (a + b) * (a + b + 1)), 2e-4);
    gsl_rng_free(r);
}

/* Three aggregates in a row far below the posterior's prediction reset the
 * state partly toward the prior; ordinary ones do not. */
Test(beta_bernoulli, change_point_partial_reset)
{
    bd_model_state_t st;
    bd_prior_t pr = prior(BD_OBJ_CONVERSIONS);
    ops->init(&st, &pr);
    bd_bb_observe_trials(&st, 900, 1000); /* p ~ 0.9, sure of it */
    for (int i = 0; i < 5; i++) bd_bb_observe_trials(&st, 44, 50); /* 0.88: ordinary */
    cr_assert_eq(ops->resets(&st), 0);
    const bd_bb_state_t *s = bd_bb_view(&st);
    bd_bb_observe_trials(&st, 10, 50);
    bd_bb_observe_trials(&st, 10, 50);
    cr_assert_eq(ops->resets(&st), 0, "two surprises are not enough");
    double a_before = s->a;
    bd_bb_observe_trials(&st, 10, 50);
    cr_assert_eq(ops->resets(&st), 1);
    /* the third aggregate is added after the reset kept 20% of the evidence */
    cr_assert_float_eq(s->a, BD_BB_CP_KEEP * a_before + (1 - BD_BB_CP_KEEP) * s->a0 + 10, 1e-9);
    cr_assert_lt(bd_bb_mean(&st), 0.85);
    /* large aggregates take the normal approximation path: same behaviour */
    ops->init(&st, &pr);
    bd_bb_observe_trials(&st, 9000, 10000);
    for (int i = 0; i < 3; i++) bd_bb_observe_trials(&st, 300, 1000);
    cr_assert_eq(ops->resets(&st), 1);
}

/* As a budget model: trials are clicks, successes conversions; the curve's
 * slope is p * clicks/spend (* revenue/conversion), k the saturation. */
Test(beta_bernoulli, curve_from_clicks_and_value)
{
    bd_model_state_t st;
    bd_prior_t pr = prior(BD_OBJ_REVENUE);
    ops->init(&st, &pr);
    for (int i = 0; i < 200; i++) {
        bd_agg_t agg = {.spend = 1000, .clicks = 500, .conversions = 25, .revenue = 25 * 80, .events = 1};
        ops->observe(&st, &pr, &agg, NULL);
    }
    bd_curve_t m;
    ops->mean(&st, &pr, &m);
    cr_assert_eq(m.kind, BD_CURVE_EXP);
    cr_assert_float_eq(m.k, 500, 0);
    /* p ~ 0.05, 0.5 clicks per unit spend, value ~ 80: slope ~ 2 */
    cr_assert_float_eq(m.a, 0.05 * 0.5 * 80, 0.05);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(r, 5);
    double sum = 0;
    for (int i = 0; i < 2000; i++) {
        bd_curve_t c;
        ops->sample(&st, &pr, r, &c);
        cr_assert_eq(c.kind, BD_CURVE_EXP);
        sum += c.a;
    }
    cr_assert_float_eq(sum / 2000, m.a, 0.02);
    gsl_rng_free(r);
    /* without clicks there is no Bernoulli evidence */
    ops->init(&st, &pr);
    bd_agg_t noclk = {.spend = 100, .conversions = 3, .revenue = 90, .events = 1};
    ops->observe(&st, &pr, &noclk, NULL);
    cr_assert_float_eq(ops->evidence(&st), 0, 1e-12);
}

Test(beta_bernoulli, prior_curve_slope_is_roas_prior)
{
    bd_model_state_t st;
    bd_prior_t pr = prior(BD_OBJ_REVENUE);
    ops->init(&st, &pr);
    bd_curve_t m;
    ops->mean(&st, &pr, &m);
    cr_assert_float_eq(m.a, pr.roas_prior, 1e-9);
    pr = prior(BD_OBJ_CONVERSIONS);
    ops->init(&st, &pr);
    ops->mean(&st, &pr, &m);
    cr_assert_float_eq(m.a, pr.roas_prior, 1e-9);
}
