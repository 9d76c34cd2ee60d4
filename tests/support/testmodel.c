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
static void tm_observe(bd_model_state_t *st, const bd_prior_t *pr, const bd_agg_t *a) { (void)st; (void)pr; (void)a; }

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

const bd_model_ops_t tm_ops = {"test", tm_init, tm_discount, tm_observe, tm_sample,
                               tm_mean, tm_evidence, tm_resets};
