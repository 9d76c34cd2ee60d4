/* test_goal.c: target goals (v2 `goal: {target_roas: R}` / `{target_cpa:
 * C}` with `budget: {min, max}`): the marginal of the last unit and the
 * goal's total (goal.h) against closed forms, the allocator's total within
 * the range and the ramp, min_change with a moving total, the initial
 * split, the pin rule on a range, the verifier's range check, and the
 * record's goal fields. */
#include <criterion/criterion.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "budgetd/alloc.h"
#include "budgetd/bounds.h"
#include "budgetd/goal.h"
#include "budgetd/record.h"
#include "budgetd/verify.h"

#include "testmodel.h"

#define MAXN 6

typedef struct {
    size_t n;
    bd_policy_t pol;
    bd_channel_cfg_t cfg[MAXN];
    const bd_channel_cfg_t *cfgp[MAXN];
    bd_model_state_t st[MAXN];
    bd_prior_t pr[MAXN];
    double prev[MAXN];
    bool promoted[MAXN], prom_out[MAXN];
    double x[MAXN], mean[MAXN], lo[MAXN], hi[MAXN];
    bd_bound_t bound[MAXN];
    bd_alloc_output_t out;
    gsl_rng *rng;
    char err[BD_ERRBUF];
} fx_t;

/* n channels, uncapped; a target_roas goal R on the range [lo, hi]; no
 * explore, no risk bound, no min_change, a wide ramp. */
static void fx_init(fx_t *f, size_t n, double lo, double hi, double R)
{
    memset(f, 0, sizeof *f);
    f->n = n;
    f->pol.budget = hi;
    f->pol.budget_range.range = true;
    f->pol.budget_range.min = lo;
    f->pol.goal.kind = BD_GOAL_TARGET_ROAS;
    f->pol.goal.target = R;
    f->pol.samples = 32;
    f->pol.max_step = 100;
    f->pol.risk_roas_floor = 1.0;
    f->pol.risk_max_prob = 1.0;
    f->pol.lab.cap_share = 0.1;
    f->pol.lab.max_rel_width = 0.5;
    f->pol.lab.min_conversions = 100;
    for (size_t i = 0; i < n; i++) {
        snprintf(f->cfg[i].name, sizeof f->cfg[i].name, "c%zu", i);
        f->cfg[i].max = INFINITY;
        f->cfgp[i] = &f->cfg[i];
    }
    f->rng = gsl_rng_alloc(gsl_rng_mt19937);
}

static void fx_chan(fx_t *f, size_t i, double a, double k, double shape)
{
    tm_state_t s = {{BD_CURVE_EXP, a, k, 0}, shape, 0};
    memcpy(f->st[i].bytes, &s, sizeof s);
}

static bd_err_t fx_run(fx_t *f, bool use_prev)
{
    gsl_rng_set(f->rng, 7);
    bd_alloc_input_t in = {.n = f->n, .pol = &f->pol, .cfg = f->cfgp, .ops = &tm_ops,
                           .states = f->st, .priors = f->pr, .prev = use_prev ? f->prev : NULL,
                           .safe = use_prev ? f->prev : NULL, .promoted = f->promoted,
                           .rng = f->rng};
    f->out.x = f->x;
    f->out.bound = f->bound;
    f->out.mean_roas = f->mean;
    f->out.roas_lo = f->lo;
    f->out.roas_hi = f->hi;
    f->out.promoted = f->prom_out;
    return bd_alloc_decide(&in, &f->out, f->err, sizeof f->err);
}

static bd_err_t fx_verify(fx_t *f, const double *x, bool use_prev)
{
    bd_verify_input_t v = {.n = f->n, .pol = &f->pol, .cfg = f->cfgp, .x = x,
                           .prev = use_prev ? f->prev : NULL, .promoted = f->prom_out,
                           .draws = f->out.draws, .n_draws = f->out.n_draws,
                           .risk_held = f->out.risk_held};
    return bd_verify_allocation(&v, f->err, sizeof f->err);
}

static void fx_free(fx_t *f)
{
    bd_alloc_output_free(&f->out);
    gsl_rng_free(f->rng);
}

static double sum(const double *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s;
}

/* One EXP channel: f'(x) = a e^(-x/k), so the marginal meets R at
 * k ln(a/R); at the ends of the range the search stops there. */
Test(goal, total_of_one_channel_is_closed_form)
{
    bd_curve_t c = {BD_CURVE_EXP, 4.0, 1000.0, 0};
    double lo = 0, hi = INFINITY, scratch[BD_GOAL_SCRATCH(1)], m;
    cr_assert_float_eq(bd_goal_marginal(&c, &lo, &hi, 1, 1000, scratch), 4 * exp(-1), 1e-12);
    double T = bd_goal_total(&c, 1, 1, &lo, &hi, 0, 1e6, 2.0, &m, scratch);
    double want = 1000 * log(2.0) * 100;
    cr_assert(T <= want + 1 && T >= want - 1e-4 * 1e6 - 1, "T %.2f want %.2f", T / 100, want / 100);
    cr_assert(m >= 2.0 && m < 2.0 * 1.01, "marginal %g", m);
    /* the least spend already earns less than the target: the least */
    cr_assert_eq(bd_goal_total(&c, 1, 1, &lo, &hi, 100000, 200000, 2.0, &m, scratch), 100000);
    /* the most still earns more: the most */
    cr_assert_eq(bd_goal_total(&c, 1, 1, &lo, &hi, 0, 20000, 2.0, &m, scratch), 20000);
    cr_assert_float_eq(m, 4 * exp(-0.2), 1e-12);
}

/* With no channel left with room (every channel at its max), the marginal
 * is the smallest f' among those that spend; nothing spent: 0. */
Test(goal, marginal_without_room)
{
    bd_curve_t c[2] = {{BD_CURVE_EXP, 4.0, 100.0, 0}, {BD_CURVE_EXP, 2.0, 100.0, 0}};
    double lo[2] = {0, 0}, hi[2] = {100, 50}, s[BD_GOAL_SCRATCH(2)];
    cr_assert_float_eq(bd_goal_marginal(c, lo, hi, 2, 150, s), fmin(4 * exp(-1), 2 * exp(-0.5)), 1e-12);
    double z[2] = {0, 0};
    cr_assert_eq(bd_goal_marginal(c, z, z, 2, 0, s), 0);
}

/* Two channels without noise: the multiplier is R at x_i = k_i ln(a_i/R),
 * so the total is their sum, split that way, and the record's marginal is
 * the target (up to the search's tolerance). */
Test(goal, target_roas_spends_where_the_marginal_meets_it)
{
    fx_t f;
    fx_init(&f, 2, 100, 10000, 2.0);
    fx_chan(&f, 0, 4.0, 1000, 0);
    fx_chan(&f, 1, 3.0, 2000, 0);
    cr_assert_eq(fx_run(&f, false), BD_OK, "%s", f.err);
    double x0 = 1000 * log(2.0), x1 = 2000 * log(1.5);
    cr_assert(fabs(f.out.total - (x0 + x1)) <= 1e-4 * 10000 + 0.01, "total %.2f want %.2f",
              f.out.total, x0 + x1);
    cr_assert(fabs(f.x[0] - x0) < 1.5 && fabs(f.x[1] - x1) < 1.5, "%.2f %.2f", f.x[0], f.x[1]);
    cr_assert_float_eq(sum(f.x, 2), f.out.total, 0.005);
    cr_assert(f.out.marginal >= 2.0 && f.out.marginal < 2.002, "marginal %g", f.out.marginal);
    cr_assert_eq(fx_verify(&f, f.x, false), BD_OK, "%s", f.err);
    fx_free(&f);
}

/* target_cpa C asks 1/C conversions of the last unit. */
Test(goal, target_cpa_is_the_inverse_marginal)
{
    fx_t f;
    fx_init(&f, 2, 100, 10000, 0);
    f.pol.objective = BD_OBJ_CONVERSIONS;
    f.pol.goal.kind = BD_GOAL_TARGET_CPA;
    f.pol.goal.target = 0.5;
    fx_chan(&f, 0, 4.0, 1000, 0);
    fx_chan(&f, 1, 3.0, 2000, 0);
    cr_assert_float_eq(bd_goal_marginal_target(&f.pol), 2.0, 1e-15);
    cr_assert_eq(fx_run(&f, false), BD_OK, "%s", f.err);
    cr_assert(fabs(f.out.total - (1000 * log(2.0) + 2000 * log(1.5))) <= 1.01);
    fx_free(&f);
}

/* A target no total in the range meets: the range's end, with the
 * marginal there in the record (the infeasible side shows). */
Test(goal, infeasible_targets_stop_at_the_range)
{
    fx_t f;
    fx_init(&f, 2, 3000, 10000, 2.0);
    fx_chan(&f, 0, 4.0, 1000, 0);
    fx_chan(&f, 1, 3.0, 2000, 0);
    cr_assert_eq(fx_run(&f, false), BD_OK, "%s", f.err);
    cr_assert_float_eq(f.out.total, 3000, 1e-9);
    cr_assert_lt(f.out.marginal, 2.0);
    f.pol.budget_range.min = 10;
    f.pol.budget = 1000;
    cr_assert_eq(fx_run(&f, false), BD_OK, "%s", f.err);
    cr_assert_float_eq(f.out.total, 1000, 1e-9);
    cr_assert_gt(f.out.marginal, 2.0);
    fx_free(&f);
}

/* The total moves only as far as the channels' ramps let it: from 100 +
 * 100 at max_step 0.25 (floor 1% of the max, 100) each channel may reach
 * 200, so the total stops at 400 although the goal asks for 1504. */
Test(goal, the_ramp_limits_the_total)
{
    fx_t f;
    fx_init(&f, 2, 0, 10000, 2.0);
    f.pol.max_step = 0.25;
    fx_chan(&f, 0, 4.0, 1000, 0);
    fx_chan(&f, 1, 3.0, 2000, 0);
    f.prev[0] = f.prev[1] = 100;
    cr_assert_eq(fx_run(&f, true), BD_OK, "%s", f.err);
    cr_assert_float_eq(f.out.total, 400, 1e-9);
    cr_assert_eq(f.bound[0], BD_BOUND_RAMP);
    cr_assert_eq(f.bound[1], BD_BOUND_RAMP);
    cr_assert_eq(fx_verify(&f, f.x, true), BD_OK, "%s", f.err);
    /* the other way: from far above, down by the ramp */
    f.prev[0] = f.prev[1] = 3000;
    cr_assert_eq(fx_run(&f, true), BD_OK, "%s", f.err);
    cr_assert_float_eq(f.out.total, 4500, 1e-9);
    fx_free(&f);
}

/* min_change: an allocation in force close to the goal's stays, with its
 * own total; a far one does not. */
Test(goal, min_change_keeps_the_total_in_force)
{
    fx_t f;
    fx_init(&f, 2, 0, 10000, 2.0);
    f.pol.min_change = 0.01;
    fx_chan(&f, 0, 4.0, 1000, 0);
    fx_chan(&f, 1, 3.0, 2000, 0);
    f.prev[0] = 695;
    f.prev[1] = 812;
    cr_assert_eq(fx_run(&f, true), BD_OK, "%s", f.err);
    cr_assert(f.out.kept);
    cr_assert_eq(f.x[0], 695);
    cr_assert_eq(f.x[1], 812);
    cr_assert_float_eq(f.out.total, 1507, 1e-9);
    cr_assert(fabs(f.out.marginal - 2.0) < 0.02, "marginal at the kept total %g", f.out.marginal);
    f.prev[0] = 600;
    cr_assert_eq(fx_run(&f, true), BD_OK, "%s", f.err);
    cr_assert_not(f.out.kept);
    fx_free(&f);
}

/* The verifier judges the total as a range: inside passes, a cent outside
 * either end is refused. */
Test(goal, verifier_checks_the_range)
{
    fx_t f;
    fx_init(&f, 2, 100, 1000, 2.0);
    double x[2] = {50, 50};
    cr_assert_eq(fx_verify(&f, x, false), BD_OK, "%s", f.err);
    x[1] = 49.99;
    cr_assert_eq(fx_verify(&f, x, false), BD_ERR_INVALID);
    cr_assert_str_eq(f.err, "sum 99.99 outside the budget range [100.00, 1000.00]");
    x[0] = 500;
    x[1] = 500.01;
    cr_assert_eq(fx_verify(&f, x, false), BD_ERR_INVALID);
    x[1] = 500;
    cr_assert_eq(fx_verify(&f, x, false), BD_OK, "%s", f.err);
    /* the caps' sum below the range's min: the caps are the range */
    f.cfg[0].max = 30;
    f.cfg[1].max = 40;
    x[0] = 30;
    x[1] = 40;
    cr_assert_eq(fx_verify(&f, x, false), BD_OK, "%s", f.err);
    fx_free(&f);
}

/* The initial split spends the range's min, or what the initials ask
 * when more (at most the max). */
Test(goal, initial_split_on_a_range)
{
    fx_t f;
    fx_init(&f, 3, 600, 3000, 2.0);
    double x[3];
    bd_alloc_initial(&f.pol, f.cfgp, 3, x);
    cr_assert_float_eq(sum(x, 3), 600, 1e-9);
    f.cfg[0].has_initial = true;
    f.cfg[0].initial = 1000;
    bd_alloc_initial(&f.pol, f.cfgp, 3, x);
    cr_assert_float_eq(x[0], 1000, 1e-9);
    cr_assert_float_eq(sum(x, 3), 1000, 1e-9);
    f.cfg[1].has_initial = true;
    f.cfg[1].initial = 2500;
    bd_alloc_initial(&f.pol, f.cfgp, 3, x);
    cr_assert_float_eq(sum(x, 3), 3000, 1e-9);
    fx_free(&f);
}

/* Pins on a range: feasible when some total in it can hold them. */
Test(goal, pins_on_a_range)
{
    fx_t f;
    fx_init(&f, 2, 1000, 2000, 2.0);
    f.cfg[1].max = 300;
    double pin[2] = {1500, NAN};
    cr_assert_eq(bd_bounds_check_pins(&f.pol, f.cfgp, 2, pin, NULL, f.err, sizeof f.err), BD_OK, "%s",
                 f.err);
    pin[0] = 500; /* 500 + 300 < 1000 */
    cr_assert_eq(bd_bounds_check_pins(&f.pol, f.cfgp, 2, pin, NULL, f.err, sizeof f.err), BD_ERR_INVALID);
    cr_assert_str_eq(f.err, "pins 500.00 plus the other channels' caps 300.00 fall short of the budget min 1000.00");
    f.cfg[1].min = 200;
    pin[0] = 1900;
    cr_assert_eq(bd_bounds_check_pins(&f.pol, f.cfgp, 2, pin, NULL, f.err, sizeof f.err), BD_ERR_INVALID);
    cr_assert_str_eq(f.err, "pins 1900.00 plus the other channels' mins 200.00 exceed the budget max 2000.00");
    fx_free(&f);
}

/* The record carries the goal (target, range) and the marginal only with
 * a target goal: records under `goal: budget` stay byte for byte v1's. */
Test(goal, record_fields)
{
    bd_decision_channel_t ch = {.channel = "s", .spend = 10, .prev = 10, .mean_roas = 1,
                                .roas_lo = 1, .roas_hi = 1};
    bd_decision_t d = {.portfolio = "p", .cycle = 5, .budget = 8000, .total = 1234.5, .n = 1,
                       .ch = &ch, .p_below_floor = 0, .goal = BD_GOAL_TARGET_ROAS,
                       .goal_target = 3, .budget_min = 1000, .marginal = 2.98766};
    char *buf = NULL;
    size_t cap = 0;
    bd_record_json(&d, &buf, &cap);
    cr_assert(strstr(buf, "\"total\":1234.50,\"goal\":{\"target_roas\":3.0000,\"min\":1000.00,"
                          "\"max\":8000.00},\"marginal\":2.9877,\"channels\":"),
              "%s", buf);
    d.goal = BD_GOAL_TARGET_CPA;
    d.marginal = NAN;
    bd_record_json(&d, &buf, &cap);
    cr_assert(strstr(buf, "\"goal\":{\"target_cpa\":3.0000,") && strstr(buf, "\"marginal\":null"), "%s",
              buf);
    d.goal = BD_GOAL_BUDGET;
    bd_record_json(&d, &buf, &cap);
    cr_assert_null(strstr(buf, "goal"));
    cr_assert_null(strstr(buf, "marginal"));
    free(buf);
}
