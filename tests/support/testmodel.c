/* testmodel.c: see testmodel.h. */
#include <string.h>
#include <gsl/gsl_randist.h>
#include "testmodel.h"

tm_state_t tm_get(const bd_model_state_t *st)
{
    tm_state_t s;
    memcpy(&s, st->bytes, sizeof s);
    return s;
}

static void tm_init(bd_model_state_t *st, const bd_prior_t *pr) { (void)st; (void)pr; }
static void tm_discount(bd_model_state_t *st, const bd_prior_t *pr, double g) { (void)st; (void)pr; (void)g; }
static void tm_observe(bd_model_state_t *st, const bd_prior_t *pr, const bd_agg_t *a, const bd_obs_t *o) { (void)st; (void)pr; (void)a; (void)o; }
static double tm_expect(const bd_model_state_t *st, const bd_prior_t *pr, double x) { (void)pr; bd_curve_t c = tm_get(st).c; return bd_curve_value(&c, x); }

static void tm_sample(const bd_model_state_t *st, const bd_prior_t *pr, gsl_rng *rng, bd_curve_t *out)
{
    (void)pr;
    tm_state_t s = tm_get(st);
    *out = s.c;
    if (s.shape > 0) out->a *= gsl_ran_gamma(rng, s.shape, 1.0 / s.shape);
}

static void tm_mean(const bd_model_state_t *st, const bd_prior_t *pr, bd_curve_t *out) { (void)pr; *out = tm_get(st).c; }
static double tm_evidence(const bd_model_state_t *st) { return tm_get(st).evidence; }
static uint32_t tm_resets(const bd_model_state_t *st) { (void)st; return 0; }

const bd_model_ops_t tm_ops = {.name = "test", .init = tm_init, .discount = tm_discount,
                               .observe = tm_observe, .expect = tm_expect,
                               .units = BD_UNITS_OBJECTIVE, .sample = tm_sample, .mean = tm_mean,
                               .evidence = tm_evidence, .resets = tm_resets};
