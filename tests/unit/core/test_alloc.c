/* test_alloc.c: bd_alloc_decide under each guardrail (caps, ramp, lab gate,
 * explore share, min_change, risk) and bd_alloc_initial, with a test-only
 * model whose posterior is a fixed curve times Gamma noise on a. */
#include <criterion/criterion.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "budgetd/alloc.h"
#include "budgetd/waterfill.h"
#include "budgetd/verify.h"

#include "testmodel.h"

/* --- fixture */
#define MAXN 8
typedef struct {
    size_t n;
    bd_policy_t pol;
    bd_channel_cfg_t cfg[MAXN];
    const bd_channel_cfg_t *cfgp[MAXN];
    bd_model_state_t st[MAXN];
    bd_prior_t pr[MAXN];
    double prev[MAXN], safe[MAXN];
    bool promoted[MAXN], promoted_out[MAXN];
    double x[MAXN], mean[MAXN], lo[MAXN], hi[MAXN];
    bd_bound_t bound[MAXN];
    bd_alloc_output_t out;
    gsl_rng *rng;
    char err[BD_ERRBUF];
} fx_t;

static void fx_init(fx_t *f, size_t n, double budget)
{
    memset(f, 0, sizeof *f);
    f->n = n;
    f->pol.budget = budget;
    f->pol.samples = 64;
    f->pol.max_step = 0.25;
    f->pol.risk_roas_floor = 1.0;
    f->pol.risk_max_prob = 1.0;
    f->pol.lab.min_conversions = 100;
    f->pol.lab.max_rel_width = 0.5;
    f->pol.lab.cap_share = 0.05;
    for (size_t i = 0; i < n; i++) {
        snprintf(f->cfg[i].name, sizeof f->cfg[i].name, "ch%zu", i);
        f->cfg[i].max = INFINITY;
        f->cfg[i].saturation = 1000;
        f->cfgp[i] = &f->cfg[i];
    }
    f->rng = gsl_rng_alloc(gsl_rng_mt19937);
}

static void fx_chan(fx_t *f, size_t i, double a, double k, double shape)
{
    tm_state_t s = {{BD_CURVE_EXP, a, k, 0}, shape, 0};
    memcpy(f->st[i].bytes, &s, sizeof s);
}

static void fx_evidence(fx_t *f, size_t i, double ev)
{
    tm_state_t s = tm_get(&f->st[i]);
    s.evidence = ev;
    memcpy(f->st[i].bytes, &s, sizeof s);
}

/* Runs one decision; prev/safe are passed when use_prev. */
static bd_err_t fx_run(fx_t *f, bool use_prev, unsigned long seed)
{
    gsl_rng_set(f->rng, seed);
    bd_alloc_input_t in = {f->n, &f->pol, f->cfgp, &tm_ops, f->st, f->pr,
                           use_prev ? f->prev : NULL, use_prev ? f->safe : NULL, f->promoted, f->rng, NULL,
                           NULL, NULL, NULL};
    f->out.x = f->x;
    f->out.bound = f->bound;
    f->out.mean_roas = f->mean;
    f->out.roas_lo = f->lo;
    f->out.roas_hi = f->hi;
    f->out.promoted = f->promoted_out;
    return bd_alloc_decide(&in, &f->out, f->err, sizeof f->err);
}

static bd_err_t fx_verify(fx_t *f, bool use_prev, bool risk_held)
{
    bd_verify_input_t v = {f->n, &f->pol, f->cfgp, f->x, use_prev ? f->prev : NULL,
                           f->promoted_out, f->out.draws, f->out.n_draws, risk_held, NULL};
    return bd_verify_allocation(&v, f->err, sizeof f->err);
}

static void fx_free(fx_t *f)
{
    bd_alloc_output_free(&f->out);
    gsl_rng_free(f->rng);
}

/* Field-wise: bd_curve_t has padding after kind. */
static bool same_draws(const bd_curve_t *a, const bd_curve_t *b, size_t m)
{
    for (size_t j = 0; j < m; j++)
        if (a[j].kind != b[j].kind || a[j].a != b[j].a || a[j].k != b[j].k || a[j].b != b[j].b)
            return false;
    return true;
}

static double cents_sum(const double *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += rint(x[i] * 100);
    return s;
}

Test(alloc, sums_to_budget_within_bounds)
{
    fx_t f;
    fx_init(&f, 3, 10000);
    fx_chan(&f, 0, 3, 3000, 4);
    fx_chan(&f, 1, 2, 1000, 4);
    fx_chan(&f, 2, 1, 2000, 4);
    f.cfg[0].min = 1000; f.cfg[0].max = 6000;
    f.cfg[1].min = 500; f.cfg[1].max = 5000;
    f.cfg[2].max = 2000;
    cr_assert_eq(fx_run(&f, false, 1), BD_OK, "%s", f.err);
    cr_assert_eq(cents_sum(f.x, 3), 1000000);
    cr_assert_float_eq(f.out.total, 10000, 1e-9);
    cr_assert(!f.out.capped && !f.out.kept && !f.out.risk_held);
    cr_assert_eq(f.out.n_draws, 64);
    for (size_t i = 0; i < 3; i++) {
        cr_assert(f.x[i] >= f.cfg[i].min && f.x[i] <= f.cfg[i].max);
        cr_assert(f.lo[i] <= f.mean[i] && f.mean[i] <= f.hi[i]);
    }
    cr_assert_eq(fx_verify(&f, false, false), BD_OK, "%s", f.err);
    fx_free(&f);
}

Test(alloc, total_capped_by_max)
{
    fx_t f;
    fx_init(&f, 2, 10000);
    fx_chan(&f, 0, 3, 3000, 4);
    fx_chan(&f, 1, 1, 3000, 4);
    f.cfg[0].max = 1000;
    f.cfg[1].max = 2000.5;
    cr_assert_eq(fx_run(&f, false, 1), BD_OK, "%s", f.err);
    cr_assert(f.out.capped);
    cr_assert_float_eq(f.out.total, 3000.5, 1e-9);
    cr_assert(f.x[0] == 1000 && f.x[1] == 2000.5);
    cr_assert(f.bound[0] == BD_BOUND_MAX && f.bound[1] == BD_BOUND_MAX);
    cr_assert_eq(fx_verify(&f, false, false), BD_OK, "%s", f.err);
    fx_free(&f);
}

Test(alloc, deterministic_given_rng_state)
{
    fx_t f, g;
    fx_init(&f, 4, 5000);
    fx_init(&g, 4, 5000);
    for (size_t i = 0; i < 4; i++) {
        fx_chan(&f, i, 1 + (double)i, 500 * (double)(i + 1), 2);
        fx_chan(&g, i, 1 + (double)i, 500 * (double)(i + 1), 2);
    }
    f.pol.explore_share = g.pol.explore_share = 0.1;
    cr_assert_eq(fx_run(&f, false, 7), BD_OK);
    cr_assert_eq(fx_run(&g, false, 7), BD_OK);
    cr_assert(memcmp(f.x, g.x, sizeof f.x) == 0);
    cr_assert(memcmp(f.mean, g.mean, sizeof f.mean) == 0);
    cr_assert(memcmp(f.lo, g.lo, sizeof f.lo) == 0 && memcmp(f.hi, g.hi, sizeof f.hi) == 0);
    cr_assert(same_draws(f.out.draws, g.out.draws, 64 * 4));
    cr_assert_eq(fx_run(&g, false, 8), BD_OK);
    cr_assert(!same_draws(f.out.draws, g.out.draws, 64 * 4));
    fx_free(&f);
    fx_free(&g);
}

/* Without noise every draw is the same curve: the decision is the exact
 * water-filling optimum, to the cent. */
Test(alloc, noiseless_equals_waterfill)
{
    fx_t f;
    fx_init(&f, 3, 7000);
    bd_curve_t c[3] = {{BD_CURVE_EXP, 3, 2000, 0}, {BD_CURVE_EXP, 2, 1500, 0}, {BD_CURVE_EXP, 1.2, 4000, 0}};
    for (size_t i = 0; i < 3; i++) fx_chan(&f, i, c[i].a, c[i].k, 0);
    f.cfg[1].min = 1000;
    cr_assert_eq(fx_run(&f, false, 1), BD_OK);
    double lo[3] = {0, 1000, 0}, hi[3] = {INFINITY, INFINITY, INFINITY}, x[3];
    bd_waterfill_solve(c, lo, hi, 3, 7000, x);
    for (size_t i = 0; i < 3; i++) {
        cr_assert(fabs(f.x[i] - x[i]) <= 0.01 + 1e-9, "ch %zu: %.4f vs %.4f", i, f.x[i], x[i]);
        double r = bd_curve_value(&c[i], f.x[i]) / f.x[i];
        cr_assert_float_eq(f.mean[i], r, 1e-12);
        cr_assert_float_eq(f.lo[i], r, 1e-12);
        cr_assert_float_eq(f.hi[i], r, 1e-12);
    }
    cr_assert(f.bound[1] == BD_BOUND_MIN || f.x[1] > 1000.01);
    fx_free(&f);
}

/* A channel the factory never funds still gets the explore share when it
 * is the only uncertain one. */
Test(alloc, explore_share_goes_to_uncertain_channel)
{
    fx_t f;
    fx_init(&f, 2, 10000);
    fx_chan(&f, 0, 2, 5000, 0);      /* certain */
    fx_chan(&f, 1, 0.01, 5000, 0.5); /* weak but unknown */
    f.pol.explore_share = 0.1;
    cr_assert_eq(fx_run(&f, false, 3), BD_OK);
    cr_assert(fabs(f.x[1] - 1000) <= 0.011, "explore got %.2f", f.x[1]);
    cr_assert_eq(cents_sum(f.x, 2), 1000000);
    f.pol.explore_share = 0;
    cr_assert_eq(fx_run(&f, false, 3), BD_OK);
    cr_assert(f.x[1] <= 0.01);
    fx_free(&f);
}

Test(alloc, ramp_limits_the_move)
{
    fx_t f;
    fx_init(&f, 2, 10000);
    fx_chan(&f, 0, 3, 2000, 0);
    fx_chan(&f, 1, 0.5, 2000, 0);
    f.pol.max_step = 0.1;
    f.prev[0] = f.prev[1] = 5000;
    f.safe[0] = f.safe[1] = 5000;
    cr_assert_eq(fx_run(&f, true, 1), BD_OK, "%s", f.err);
    cr_assert(f.x[0] == 5500 && f.x[1] == 4500, "%.2f %.2f", f.x[0], f.x[1]);
    cr_assert(f.bound[0] == BD_BOUND_RAMP && f.bound[1] == BD_BOUND_RAMP);
    cr_assert_eq(fx_verify(&f, true, false), BD_OK, "%s", f.err);
    fx_free(&f);
}

Test(alloc, ramp_dropped_when_it_cannot_hold_the_total)
{
    fx_t f;
    fx_init(&f, 2, 10000); /* budget raised from 1000 */
    fx_chan(&f, 0, 3, 2000, 0);
    fx_chan(&f, 1, 2, 2000, 0);
    f.prev[0] = f.prev[1] = 500;
    f.safe[0] = f.safe[1] = 500;
    cr_assert_eq(fx_run(&f, true, 1), BD_OK, "%s", f.err);
    cr_assert_eq(cents_sum(f.x, 2), 1000000);
    cr_assert(f.x[0] > 600, "ramp not dropped: %.2f", f.x[0]);
    cr_assert_eq(fx_verify(&f, true, false), BD_OK, "%s", f.err);
    fx_free(&f);
}

/* An empty ramp box collapses to the config bound that is nearest to prev. */
Test(alloc, ramp_below_new_min_goes_to_min)
{
    fx_t f;
    fx_init(&f, 2, 10000);
    fx_chan(&f, 0, 1, 2000, 0);
    fx_chan(&f, 1, 3, 2000, 0);
    f.cfg[0].min = 4000;
    f.pol.max_step = 0.1;
    f.prev[0] = 2000; /* ramp [1900, 2200] lies below the new min */
    f.prev[1] = 8000; /* ramp [7200, 8800] */
    cr_assert_eq(fx_run(&f, true, 1), BD_OK, "%s", f.err);
    /* box {4000} x [7200, 8800] cannot hold 10000 with x1 >= 7200: 4000 +
     * 7200 > 10000, so the ramp is dropped and the config box decides */
    cr_assert_eq(cents_sum(f.x, 2), 1000000);
    cr_assert(f.x[0] >= 4000);
    cr_assert_eq(fx_verify(&f, true, false), BD_OK, "%s", f.err);
    f.prev[1] = 6000; /* ramp [5400, 6600]: box {4000} x [5400, 6600] holds 10000 */
    cr_assert_eq(fx_run(&f, true, 1), BD_OK, "%s", f.err);
    cr_assert(f.x[0] == 4000 && f.x[1] == 6000, "%.2f %.2f", f.x[0], f.x[1]);
    cr_assert_eq(f.bound[0], BD_BOUND_MIN);
    cr_assert_eq(fx_verify(&f, true, false), BD_OK, "%s", f.err);
    fx_free(&f);
}

Test(alloc, lab_channel_capped_until_promoted)
{
    fx_t f;
    fx_init(&f, 2, 10000);
    fx_chan(&f, 0, 1, 5000, 1e6);
    fx_chan(&f, 1, 3, 5000, 1e6); /* the better channel, but in the lab */
    f.cfg[1].lab = true;
    f.cfg[1].max = 8000;
    fx_evidence(&f, 1, 10); /* not enough conversions */
    cr_assert_eq(fx_run(&f, false, 1), BD_OK);
    cr_assert(!f.promoted_out[1]);
    cr_assert(f.x[1] == 500, "lab cap: %.2f", f.x[1]);
    cr_assert_eq(f.bound[1], BD_BOUND_MAX);
    cr_assert_eq(fx_verify(&f, false, false), BD_OK, "%s", f.err);

    fx_evidence(&f, 1, 1000); /* enough data, near-certain: promoted */
    cr_assert_eq(fx_run(&f, false, 1), BD_OK);
    cr_assert(f.promoted_out[1]);
    cr_assert(f.x[1] > 500);
    cr_assert_eq(fx_verify(&f, false, false), BD_OK, "%s", f.err);

    fx_chan(&f, 1, 3, 5000, 1); /* enough data but a wide interval: not promoted */
    fx_evidence(&f, 1, 1000);
    cr_assert_eq(fx_run(&f, false, 1), BD_OK);
    cr_assert(!f.promoted_out[1]);
    cr_assert(f.x[1] <= 500);

    f.promoted[1] = true; /* promotion is sticky */
    fx_evidence(&f, 1, 0);
    cr_assert_eq(fx_run(&f, false, 1), BD_OK);
    cr_assert(f.promoted_out[1]);
    cr_assert(f.x[1] > 500);
    fx_free(&f);
}

Test(alloc, min_change_keeps_prev)
{
    fx_t f;
    fx_init(&f, 3, 9000);
    fx_chan(&f, 0, 2, 3000, 0);
    fx_chan(&f, 1, 2, 3000, 0);
    fx_chan(&f, 2, 2, 3000, 0);
    f.pol.min_change = 0.01;
    /* optimum is 3000 each; prev differs by 40 cents in total */
    f.prev[0] = 3000.20; f.prev[1] = 2999.80; f.prev[2] = 3000;
    memcpy(f.safe, f.prev, sizeof f.prev);
    cr_assert_eq(fx_run(&f, true, 1), BD_OK);
    cr_assert(f.out.kept);
    cr_assert(memcmp(f.x, f.prev, 3 * sizeof(double)) == 0);
    cr_assert_eq(fx_verify(&f, true, false), BD_OK, "%s", f.err);

    f.prev[2] = 3000.01; /* not a valid allocation (sum off by a cent): not kept */
    cr_assert_eq(fx_run(&f, true, 1), BD_OK);
    cr_assert(!f.out.kept);
    cr_assert(f.x[0] == 3000 && f.x[1] == 3000 && f.x[2] == 3000);

    f.prev[2] = 3000;
    f.pol.min_change = 0; /* hysteresis off */
    cr_assert_eq(fx_run(&f, true, 1), BD_OK);
    cr_assert(!f.out.kept);
    cr_assert(f.x[0] == 3000);
    fx_free(&f);
}

/* Channel 0 has the higher mean but a heavy lower tail; channel 1 returns a
 * sure 1.5. Without the bound the allocation leans on channel 0 and the
 * portfolio ROAS falls below 1.2 too often; the bound moves toward the safe
 * reference (all on channel 1) just far enough. */
Test(alloc, risk_bound_moves_toward_safe)
{
    fx_t f;
    fx_init(&f, 2, 1000);
    fx_chan(&f, 0, 4, 1e5, 0.3);
    fx_chan(&f, 1, 1.5, 1e5, 0);
    f.pol.risk_roas_floor = 1.2;
    f.safe[0] = 0; f.safe[1] = 1000;
    f.prev[0] = 500; f.prev[1] = 500;
    f.pol.max_step = 1;
    cr_assert_eq(fx_run(&f, true, 5), BD_OK);
    double cand0 = f.x[0];
    double cand_p = f.out.p_below_floor;
    cr_assert(cand_p > 0.2, "fixture should break the bound: p %.3f", cand_p);
    f.pol.risk_max_prob = 0.2; /* the verifier catches the unbounded candidate */
    cr_assert_eq(fx_verify(&f, true, false), BD_ERR_INVALID);
    cr_assert(strstr(f.err, "risk") != NULL, "%s", f.err);

    cr_assert_eq(fx_run(&f, true, 5), BD_OK);
    cr_assert(!f.out.risk_held);
    cr_assert(f.out.p_below_floor <= 0.2);
    cr_assert(f.x[0] < cand0, "%.2f vs %.2f", f.x[0], cand0);
    cr_assert(f.x[0] > 0, "moved all the way to safe");
    cr_assert(f.bound[0] == BD_BOUND_RISK && f.bound[1] == BD_BOUND_RISK);
    cr_assert_eq(fx_verify(&f, true, false), BD_OK, "%s", f.err);
    fx_free(&f);
}

Test(alloc, risk_held_when_even_safe_fails)
{
    fx_t f;
    fx_init(&f, 2, 1000);
    fx_chan(&f, 0, 2, 1e5, 2);
    fx_chan(&f, 1, 1.5, 1e5, 2);
    f.pol.risk_roas_floor = 10;
    f.pol.risk_max_prob = 0.2;
    f.prev[0] = 400; f.prev[1] = 600;
    f.safe[0] = 0; f.safe[1] = 1000;
    cr_assert_eq(fx_run(&f, true, 5), BD_OK);
    cr_assert(f.out.risk_held);
    cr_assert(f.x[0] == 400 && f.x[1] == 600, "hold keeps the allocation in force");
    cr_assert(f.out.p_below_floor > 0.2);
    cr_assert_eq(fx_verify(&f, true, true), BD_OK, "%s", f.err);
    cr_assert_eq(fx_verify(&f, true, false), BD_ERR_INVALID);
    fx_free(&f);
}

Test(alloc, roas_at_zero_spend_is_first_unit_return)
{
    fx_t f;
    fx_init(&f, 2, 500);
    fx_chan(&f, 0, 2, 1000, 0);
    fx_chan(&f, 1, 0.1, 1000, 0);
    cr_assert_eq(fx_run(&f, false, 1), BD_OK);
    cr_assert(f.x[1] == 0 && f.x[0] == 500);
    cr_assert_float_eq(f.mean[1], 0.1, 1e-12);
    cr_assert_eq(f.bound[1], BD_BOUND_MIN);
    cr_assert_eq(f.bound[0], BD_BOUND_NONE);
    fx_free(&f);
}

Test(alloc, infeasible_guardrails_refused)
{
    fx_t f;
    fx_init(&f, 2, 1000);
    fx_chan(&f, 0, 1, 1000, 0);
    fx_chan(&f, 1, 1, 1000, 0);
    f.cfg[0].min = 600;
    f.cfg[1].min = 500;
    cr_assert_eq(fx_run(&f, false, 1), BD_ERR_INVALID);
    cr_assert(strstr(f.err, "sum of mins") != NULL, "%s", f.err);
    f.pol.samples = 0;
    f.cfg[1].min = 0;
    cr_assert_eq(fx_run(&f, false, 1), BD_ERR_INVALID);
    fx_free(&f);
}

Test(alloc, bound_names)
{
    cr_assert_str_eq(bd_bound_name(BD_BOUND_NONE), "none");
    cr_assert_str_eq(bd_bound_name(BD_BOUND_MIN), "min");
    cr_assert_str_eq(bd_bound_name(BD_BOUND_MAX), "max");
    cr_assert_str_eq(bd_bound_name(BD_BOUND_RAMP), "ramp");
    cr_assert_str_eq(bd_bound_name(BD_BOUND_RISK), "risk");
    cr_assert_str_eq(bd_bound_name(BD_BOUND__COUNT), "none");
}

/* Every name reads back to its bound; anything else is refused. */
Test(alloc, bound_from_name_round_trips)
{
    for (int b = 0; b < BD_BOUND__COUNT; b++) {
        bd_bound_t got = BD_BOUND__COUNT;
        cr_assert(bd_bound_from_name(bd_bound_name((bd_bound_t)b), &got));
        cr_assert_eq(got, (bd_bound_t)b);
    }
    bd_bound_t keep = BD_BOUND_MAX;
    cr_assert_not(bd_bound_from_name("Min", &keep));
    cr_assert_not(bd_bound_from_name("", &keep));
    cr_assert_not(bd_bound_from_name(NULL, &keep));
    cr_assert_eq(keep, BD_BOUND_MAX);
}

/* --- initial split */
static void initial_of(fx_t *f, double *x) { bd_alloc_initial(&f->pol, f->cfgp, f->n, x); }

Test(initial, contract_example)
{
    fx_t f;
    fx_init(&f, 3, 10000);
    f.cfg[0].min = 1000; f.cfg[0].max = 6000; f.cfg[0].initial = 4000; f.cfg[0].has_initial = true;
    f.cfg[1].min = 500; f.cfg[1].max = 5000;
    f.cfg[2].max = 2000; f.cfg[2].lab = true;
    f.pol.lab.cap_share = 0.25; /* lab cap 2000 = max */
    double x[3];
    initial_of(&f, x);
    cr_assert(x[0] == 4000 && x[1] == 4000 && x[2] == 2000, "%.2f %.2f %.2f", x[0], x[1], x[2]);
    f.pol.lab.cap_share = 0.05; /* lab cap 500: social maxes out, search absorbs the rest */
    initial_of(&f, x);
    cr_assert(x[0] == 4500 && x[1] == 5000 && x[2] == 500, "%.2f %.2f %.2f", x[0], x[1], x[2]);
    memcpy(f.x, x, sizeof x);
    cr_assert_eq(fx_verify(&f, false, false), BD_OK, "%s", f.err);
    fx_free(&f);
}

Test(initial, equal_split_in_cents)
{
    fx_t f;
    fx_init(&f, 3, 1000);
    double x[3];
    initial_of(&f, x);
    cr_assert(x[0] == 333.34 && x[1] == 333.33 && x[2] == 333.33, "%.2f %.2f %.2f", x[0], x[1], x[2]);
    f.cfg[1].max = 100;
    initial_of(&f, x);
    cr_assert(x[0] == 450 && x[1] == 100 && x[2] == 450);
    f.cfg[1].max = INFINITY;
    f.cfg[2].min = 600;
    initial_of(&f, x);
    cr_assert(x[0] == 200 && x[1] == 200 && x[2] == 600);
    fx_free(&f);
}

Test(initial, capped_by_sum_of_max)
{
    fx_t f;
    fx_init(&f, 2, 1000);
    f.cfg[0].max = 100;
    f.cfg[1].max = 250;
    f.cfg[1].initial = 200; f.cfg[1].has_initial = true;
    double x[2];
    initial_of(&f, x);
    cr_assert(x[0] == 100 && x[1] == 250, "%.2f %.2f", x[0], x[1]);
    fx_free(&f);
}

Test(initial, initials_above_budget_shrink_evenly)
{
    fx_t f;
    fx_init(&f, 3, 1000);
    for (int i = 0; i < 2; i++) { f.cfg[i].initial = 600; f.cfg[i].has_initial = true; }
    double x[3];
    initial_of(&f, x);
    cr_assert(x[0] == 500 && x[1] == 500 && x[2] == 0, "%.2f %.2f %.2f", x[0], x[1], x[2]);
    fx_free(&f);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ROAS mean and 90% interval equal the statistics of f_s(x)/x over the kept
 * draws, computed here by a full sort (type-7 quantiles). Small and large
 * sample counts take different paths inside the allocator. */
static void check_roas_stats(int samples)
{
    fx_t f;
    fx_init(&f, 2, 3000);
    fx_chan(&f, 0, 2, 1000, 2);
    fx_chan(&f, 1, 1.5, 2000, 5);
    f.pol.samples = samples;
    cr_assert_eq(fx_run(&f, false, 9), BD_OK);
    static double r[4096];
    for (size_t i = 0; i < 2; i++) {
        double m = 0;
        for (int s = 0; s < samples; s++) {
            r[s] = bd_curve_value(&f.out.draws[s * 2 + i], f.x[i]) / f.x[i];
            m += r[s];
        }
        qsort(r, (size_t)samples, sizeof r[0], cmp_double);
        double q[2], p[2] = {0.05, 0.95};
        for (int j = 0; j < 2; j++) {
            double h = (samples - 1) * p[j];
            int k = (int)h;
            q[j] = k + 1 < samples ? r[k] + (h - k) * (r[k + 1] - r[k]) : r[k];
        }
        cr_assert_float_eq(f.mean[i], m / samples, 1e-12);
        cr_assert_float_eq(f.lo[i], q[0], 1e-12, "samples %d ch %zu: lo %.9g vs %.9g", samples, i, f.lo[i], q[0]);
        cr_assert_float_eq(f.hi[i], q[1], 1e-12, "samples %d ch %zu: hi %.9g vs %.9g", samples, i, f.hi[i], q[1]);
        if (samples == 1) /* one draw: a point */
            cr_assert(f.lo[i] == f.mean[i] && f.mean[i] == f.hi[i]);
        else
            cr_assert(f.lo[i] < f.mean[i] && f.mean[i] < f.hi[i]);
    }
    fx_free(&f);
}

/* Every sample count, the degenerate ones (one and two draws) included. */
Test(alloc, roas_interval_matches_sorted_draws)
{
    int counts[] = {1, 2, 3, 7, 64, 301, 2000};
    for (size_t j = 0; j < sizeof counts / sizeof *counts; j++) check_roas_stats(counts[j]);
}
