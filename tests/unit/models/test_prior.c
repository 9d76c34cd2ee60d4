/* test_prior.c: configured priors and lift tests in poisson_sat (v2
 * `prior: {roas, saturation, strength}`, `lift: [...]`): the centre, the
 * pseudo-data a strength is worth and how it is forgotten, the k prior it
 * tightens, lift tests as calibration observations of the precision their
 * standard error says, and a strong prior's smaller share of the
 * exploration (spread by posterior uncertainty in alloc.c). */
#include <criterion/criterion.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <string.h>
#include "budgetd/alloc.h"
#include "models/model_internal.h"
#include "fixtures.h"

static const bd_model_ops_t *M;
static gsl_rng *R;

static void setup(void)
{
    M = bd_model_get(BD_MODEL_POISSON_SAT);
    R = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(R, 777);
}
static void teardown(void) { gsl_rng_free(R); }

TestSuite(prior, .init = setup, .fini = teardown);

static bd_psat_state_t *S(bd_model_state_t *st) { return (bd_psat_state_t *)(void *)st->bytes; }

static bd_prior_t prior(bd_objective_t obj, double roas, double strength)
{
    bd_prior_t p = {.objective = obj, .saturation = 1000, .budget = 10000, .roas_prior = roas,
                    .value_prior = 50.0, .strength = strength};
    return p;
}

static double g_of(double k, double x) { return k * (1 - exp(-x / k)); }

/* mean and CV over many draws of the ROAS at the saturation spend (1000),
 * what the pseudo-data pin down (a itself also carries k's spread) */
static void draw_stats(const bd_model_state_t *st, const bd_prior_t *pr, double *mean, double *cv)
{
    enum { N = 20000 };
    double m = 0, m2 = 0;
    for (int i = 0; i < N; i++) {
        bd_curve_t c;
        M->sample(st, pr, R, &c);
        double v = bd_curve_value(&c, 1000) / 1000;
        m += v;
        m2 += v * v;
    }
    m /= N;
    *mean = m;
    *cv = sqrt(fmax(m2 / N - m * m, 0)) / m;
}

/* Strength 0 is the v1 prior bit for bit: no pseudo-data, decay 1. */
Test(prior, no_strength_is_the_weak_prior)
{
    bd_model_state_t a, b;
    bd_prior_t pa = prior(BD_OBJ_REVENUE, 2.0, 0), pb = pa;
    pb.lift = NULL;
    M->init(&a, &pa);
    M->init(&b, &pb);
    cr_assert(!memcmp(&a, &b, sizeof a));
    bd_psat_state_t *s = S(&a);
    for (uint32_t j = 0; j < s->n; j++) {
        cr_assert_eq(s->alpha[j], BD_PSAT_PRIOR_CONV);
        cr_assert_eq(s->logprior[j], -BD_PSAT_KPRIOR_DECAY * abs((int)j - 3));
    }
    cr_assert_float_eq(M->evidence(&a), 0, 1e-12);
}

/* A strength keeps the centre (the ROAS at the saturation spend is the
 * prior's, the k weight peaks at its saturation), narrows the return by the
 * pseudo-conversions it is worth, and tightens the k prior. */
static void check_strong(const bd_model_state_t *strong, const bd_prior_t *ps, double roas, double conv,
                         bool revenue)
{
    bd_model_state_t weak;
    bd_prior_t pw = *ps;
    pw.strength = 0;
    M->init(&weak, &pw);
    double mw, cw, ms, cs;
    draw_stats(&weak, &pw, &mw, &cw);
    draw_stats(strong, ps, &ms, &cs);
    /* the CV of the return at the saturation spend is about 1/sqrt of the
     * pseudo-conversions (x sqrt 2 for revenue, whose value per conversion
     * is as uncertain) */
    double want = sqrt((revenue ? 2.0 : 1.0) / conv);
    cr_assert(cs < 0.2 * cw, "CV strong %.4f weak %.4f", cs, cw);
    cr_assert(fabs(cs - want) < 0.25 * want + 0.01, "CV %.4f, want about %.4f", cs, want);
    bd_test_near(ms, roas * g_of(1000, 1000) / 1000, 0.03, "strong prior: draws' mean ROAS at 1000");
    const bd_psat_state_t *s = (const bd_psat_state_t *)(const void *)strong->bytes;
    cr_assert_gt(s->w[3], 0.9, "k weight at the centre %.3f", s->w[3]);
    cr_assert_gt(S(&weak)->w[3], 0.2);
    cr_assert_lt(S(&weak)->w[3], 0.6);
}

/* Conversions: the pseudo-data are there from the start. */
Test(prior, strength_narrows_and_keeps_the_centre)
{
    double roas = 0.04;
    bd_model_state_t strong;
    bd_prior_t ps = prior(BD_OBJ_CONVERSIONS, roas, 48);
    M->init(&strong, &ps);
    bd_curve_t c;
    M->mean(&strong, &ps, &c);
    bd_test_near(c.a, roas, 0.02, "strong prior mean of a"); /* exact at k = 1000 */
    bd_test_near(c.k, 1000, 0.05, "strong prior mean k");
    double conv = 48 * roas * g_of(1000, 1000);
    bd_test_near(M->evidence(&strong), conv, 1e-9, "the pseudo-data count as evidence");
    check_strong(&strong, &ps, roas, conv, false);
}

/* Revenue: the pseudo-data wait for the channel's own value per conversion
 * (10 conversions), then carry the prior's ROAS at that value; the k
 * prior is tight from the start. */
Test(prior, revenue_strength_waits_for_the_value)
{
    double roas = 3.0, value = 800;
    bd_model_state_t st;
    bd_prior_t ps = prior(BD_OBJ_REVENUE, roas, 48);
    M->init(&st, &ps);
    cr_assert_eq(S(&st)->calib, 1);
    cr_assert_float_eq(M->evidence(&st), 0, 1e-12);
    cr_assert_gt(S(&st)->w[3], 0.9);
    /* cycles at the saturation spend that return the prior's ROAS */
    double y = roas * g_of(1000, 1000) / value; /* 2.37 conversions */
    bd_agg_t a = {.spend = 1000, .conversions = y, .revenue = y * value, .events = 1};
    for (int t = 0; t < 4; t++) M->observe(&st, &ps, &a, NULL);
    cr_assert_eq(S(&st)->calib, 1, "9.5 conversions: still waiting");
    M->observe(&st, &ps, &a, NULL);
    cr_assert_eq(S(&st)->calib, 0);
    double conv = 48 * roas / value * g_of(1000, 1000);
    cr_assert(M->evidence(&st) > conv && M->evidence(&st) < conv + 12.5, "evidence %g", M->evidence(&st));
    bd_test_near(S(&st)->vrate / (S(&st)->vshape - 1), value, 0.02, "value per conversion");
    check_strong(&st, &ps, roas, conv, true);
}

/* The pseudo-data forget like data: discounting pulls the posterior to the
 * weak centre, so after t discounts gamma^t of it is left. */
Test(prior, strength_is_forgotten_like_data)
{
    bd_model_state_t st;
    bd_prior_t p = prior(BD_OBJ_CONVERSIONS, 0.05, 24);
    M->init(&st, &p);
    double e0 = M->evidence(&st);
    for (int t = 0; t < 50; t++) M->discount(&st, &p, 0.98);
    bd_test_near(M->evidence(&st), e0 * pow(0.98, 50), 1e-9, "evidence after 50 discounts");
}

/* A precise lift test fixes the rate at its spend to its estimate with the
 * CV its standard error says (weak prior: the prior adds 2 conversions). */
Test(prior, lift_is_a_calibration_observation)
{
    bd_lift_t l = {.spend = 168 * 500, .conversions = 2000, .se = 100, .cycles = 168};
    bd_prior_t p = prior(BD_OBJ_CONVERSIONS, 0.01, 0);
    p.lift = &l;
    p.n_lift = 1;
    bd_model_state_t st;
    M->init(&st, &p);
    bd_psat_state_t *s = S(&st);
    double n = (2000.0 / 100) * (2000.0 / 100); /* 400 */
    for (uint32_t j = 0; j < s->n; j++) {
        /* n units over the exposure n 168 g_k(500) / 2000, on the weak prior */
        double expo = n * 168 * g_of(s->k[j], 500) / 2000;
        bd_test_near(s->alpha[j], n + BD_PSAT_PRIOR_CONV, 1e-12, "pseudo-count");
        bd_test_near(s->beta[j], s->beta0 + expo, 1e-12, "pseudo-exposure");
        if (j == 3) { /* the rate the test says at k_j, up to the weak prior's pull */
            double rate = 2000 / (168 * g_of(s->k[j], 500));
            cr_assert(fabs(s->alpha[j] / s->beta[j] / rate - 1) < 0.01, "rate %g want %g",
                      s->alpha[j] / s->beta[j], rate);
        }
    }
    /* expected conversions per cycle at the test's spend: the test's */
    bd_test_near(M->expect(&st, &p, 500), 2000.0 / 168, 0.02, "expected conversions at 500");
}

/* With a strong prior pinning the response at the saturation spend, a lift
 * test at four times that spend whose result says the curve saturates
 * later moves the k weights toward larger k. */
Test(prior, lift_informs_saturation)
{
    double k_true = 2000, lam = 0.05;
    bd_prior_t p = prior(BD_OBJ_CONVERSIONS, lam * g_of(k_true, 1000) / g_of(1000, 1000), 24);
    bd_model_state_t without, with;
    M->init(&without, &p);
    bd_lift_t l = {.spend = 168 * 4000, .conversions = 168 * lam * g_of(k_true, 4000), .se = 200,
                   .cycles = 168};
    p.lift = &l;
    p.n_lift = 1;
    M->init(&with, &p);
    double mk0 = 0, mk1 = 0;
    for (uint32_t j = 0; j < BD_PSAT_KMAX; j++) {
        mk0 += S(&without)->w[j] * log2(S(&without)->k[j]);
        mk1 += S(&with)->w[j] * log2(S(&with)->k[j]);
    }
    cr_assert_gt(mk1, mk0 + 0.5, "mean log2 k %.3f without the lift, %.3f with", mk0, mk1);
}

/* alloc.c spreads the explore share by the spread of the draws' a: of two
 * channels with the same centre, the one with a strong prior gets less of
 * it. */
Test(prior, a_strong_prior_gets_less_exploration)
{
    bd_policy_t pol;
    memset(&pol, 0, sizeof pol);
    pol.budget = 2000;
    pol.samples = 256;
    pol.max_step = 100;
    pol.risk_max_prob = 1;
    pol.risk_roas_floor = 1;
    pol.objective = BD_OBJ_CONVERSIONS;
    pol.lab.cap_share = 0.1;
    pol.lab.max_rel_width = 0.5;
    bd_channel_cfg_t cfg[2];
    const bd_channel_cfg_t *cfgp[2] = {&cfg[0], &cfg[1]};
    memset(cfg, 0, sizeof cfg);
    bd_model_state_t st[2];
    bd_prior_t pr[2] = {prior(BD_OBJ_CONVERSIONS, 0.05, 48), prior(BD_OBJ_CONVERSIONS, 0.05, 0)};
    for (int i = 0; i < 2; i++) {
        snprintf(cfg[i].name, sizeof cfg[i].name, i ? "weak" : "strong");
        cfg[i].max = INFINITY;
        M->init(&st[i], &pr[i]);
    }
    double x[2], mr[2], lo[2], hi[2], gap[2];
    bd_bound_t b[2];
    bool prom[2] = {false, false}, po[2];
    for (int e = 0; e < 2; e++) {
        pol.explore_share = e ? 0.3 : 0;
        gsl_rng_set(R, 5);
        bd_alloc_input_t in = {.n = 2, .pol = &pol, .cfg = cfgp, .ops = M, .states = st, .priors = pr,
                               .promoted = prom, .rng = R};
        bd_alloc_output_t out = {.x = x, .bound = b, .mean_roas = mr, .roas_lo = lo, .roas_hi = hi,
                                 .promoted = po};
        char err[256];
        cr_assert_eq(bd_alloc_decide(&in, &out, err, sizeof err), BD_OK, "%s", err);
        gap[e] = x[1] - x[0];
        bd_alloc_output_free(&out);
    }
    /* the explore share (600) goes mostly to the weak channel */
    cr_assert_gt(gap[1] - gap[0], 300, "weak minus strong: %.2f without explore, %.2f with", gap[0],
                 gap[1]);
}
