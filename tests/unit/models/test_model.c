/* test_model.c: the model registry and what every model promises. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include <gsl/gsl_rng.h>
#include "models/model_internal.h"

Test(model, registry_names)
{
    cr_assert_str_eq(bd_model_name(BD_MODEL_POISSON_SAT), "poisson_sat");
    cr_assert_str_eq(bd_model_name(BD_MODEL_LOGLOG), "loglog");
    cr_assert_str_eq(bd_model_name(BD_MODEL_BETA_BERNOULLI), "beta_bernoulli");
    cr_assert_str_eq(bd_model_name((bd_model_kind_t)99), "?");
    cr_assert_eq(bd_model_get(BD_MODEL_POISSON_SAT), &bd_model_poisson_sat_ops);
    cr_assert_eq(bd_model_get(BD_MODEL_LOGLOG), &bd_model_loglog_ops);
    cr_assert_null(bd_model_get(BD_MODEL_BETA_BERNOULLI));
    cr_assert_null(bd_model_get((bd_model_kind_t)99));
    cr_assert_str_eq(bd_model_get(BD_MODEL_POISSON_SAT)->name, "poisson_sat");
    cr_assert_str_eq(bd_model_get(BD_MODEL_LOGLOG)->name, "loglog");
}

/* Every model's state fits bd_model_state_t: static_asserts beside each
 * model (poisson_sat.c, loglog.c) check it at compile time. That the
 * opaque state stays small (it is copied into every checkpoint, once per
 * channel) is a compile-time fact too, checked here. */
_Static_assert(sizeof(bd_model_state_t) <= 1024, "bd_model_state_t grew past 1 KiB");

/* Every implemented model, from the prior and after a few cycles, for both
 * objectives: every op is defined, curves are finite and concave-shaped, and
 * a state copied byte for byte behaves identically (checkpointing). */
Test(model, every_model_gives_finite_curves_and_is_pod)
{
    gsl_rng *r1 = gsl_rng_alloc(gsl_rng_mt19937), *r2 = gsl_rng_alloc(gsl_rng_mt19937);
    int models = 0;
    for (int kind = 0; kind <= BD_MODEL_BETA_BERNOULLI; kind++) {
        const bd_model_ops_t *m = bd_model_get((bd_model_kind_t)kind);
        if (!m) continue; /* beta_bernoulli: bench/sim's, tested there */
        models++;
        cr_assert(m->init && m->discount && m->observe && m->sample && m->mean && m->evidence &&
                  m->resets);
        for (int obj = 0; obj < 2; obj++) {
            bd_prior_t pr = {.objective = (bd_objective_t)obj, .saturation = 1000,
                             .budget = 5000, .roas_prior = obj ? 0.02 : 2.5, .value_prior = 80};
            bd_model_state_t st;
            m->init(&st, &pr);
            for (int t = 0; t < 12; t++) {
                bd_agg_t a = {.spend = 500 + 100 * t, .conversions = 10 + t,
                              .revenue = 800 + 90 * t, .events = 3};
                m->discount(&st, &pr, 0.98);
                m->observe(&st, &pr, &a, NULL);
            }
            bd_model_state_t copy;
            memcpy(&copy, &st, sizeof st);
            gsl_rng_set(r1, 9);
            gsl_rng_set(r2, 9);
            for (int i = 0; i < 2000; i++) {
                bd_curve_t c1, c2;
                m->sample(&st, &pr, r1, &c1);
                m->sample(&copy, &pr, r2, &c2);
                cr_assert(c1.kind == c2.kind && c1.a == c2.a && c1.k == c2.k && c1.b == c2.b,
                          "%s: copy draws differ", m->name);
                cr_assert(isfinite(c1.a) && c1.a >= 0, "%s: a %g", m->name, c1.a);
                double f1 = bd_curve_value(&c1, 1000), f2 = bd_curve_value(&c1, 2000);
                cr_assert(f2 >= f1 && f2 <= 2 * f1 + 1e-9, "%s: not concave increasing", m->name);
            }
            bd_curve_t c;
            m->mean(&st, &pr, &c);
            cr_assert(isfinite(c.a) && c.a > 0, "%s mean a %g", m->name, c.a);
            cr_assert(m->evidence(&st) > 0 && isfinite(m->evidence(&st)));
        }
    }
    cr_assert_eq(models, 2, "poisson_sat and loglog were not both checked");
    gsl_rng_free(r1);
    gsl_rng_free(r2);
}

/* ROAS at zero spend: f'(0) for EXP, the first cent's return for POWER
 * (finite although f'(0) is not), and the limit of f(x)/x from above. */
Test(model, curve_roas_at_zero_spend)
{
    bd_curve_t e = {BD_CURVE_EXP, 2.5, 300, 0};
    cr_assert_eq(bd_curve_roas_zero(&e), 2.5);
    cr_assert_float_eq(bd_curve_value(&e, 1e-6) / 1e-6, 2.5, 1e-6);
    bd_curve_t pw = {BD_CURVE_POWER, 3, 0, 0.5};
    double r = bd_curve_roas_zero(&pw);
    cr_assert(isfinite(r));
    cr_assert_float_eq(r, 3 * pow(0.01, -0.5), 1e-9, "%g", r);
    cr_assert_float_eq(r, bd_curve_value(&pw, 0.01) / 0.01, 1e-12);
}
