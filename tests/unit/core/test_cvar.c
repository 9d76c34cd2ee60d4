/* test_cvar.c: the CVaR form of the risk bound (v2 `risk: {cvar: {alpha,
 * roas_floor}}`): the tail mean, the allocator's move toward the safe
 * reference and its hold, the verifier's own check, and the record. */
#include <criterion/criterion.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "budgetd/alloc.h"
#include "budgetd/record.h"
#include "budgetd/stats.h"
#include "budgetd/verify.h"

#include "testmodel.h"

Test(cvar, tail_mean_takes_the_ceiling_share)
{
    double a[10];
    for (int i = 0; i < 10; i++) a[i] = 10 - i; /* 10 .. 1 */
    cr_assert_float_eq(bd_stats_tail_mean(a, 10, 0.1), 1.0, 1e-15);
    cr_assert_float_eq(bd_stats_tail_mean(a, 10, 0.25), 2.0, 1e-15); /* ceil(2.5) = 3: 1,2,3 */
    cr_assert_float_eq(bd_stats_tail_mean(a, 10, 1.0), 5.5, 1e-15);
    cr_assert_float_eq(bd_stats_tail_mean(a, 10, 1e-6), 1.0, 1e-15);
    /* 0.3 * 10 is 3.0000000000000004 in doubles: still 3 */
    cr_assert_float_eq(bd_stats_tail_mean(a, 10, 0.3), 2.0, 1e-15);
}

#define N 2
typedef struct {
    bd_policy_t pol;
    bd_channel_cfg_t cfg[N];
    const bd_channel_cfg_t *cfgp[N];
    bd_model_state_t st[N];
    bd_prior_t pr[N];
    double prev[N], x[N], mean[N], lo[N], hi[N];
    bool prom[N], prom_out[N];
    bd_bound_t bound[N];
    bd_alloc_output_t out;
    gsl_rng *rng;
    char err[BD_ERRBUF];
} fx_t;

/* A risky channel (high mean return, a very uncertain posterior) and a
 * safe one (lower, known), budget 1000 split 500/500 in force. */
static void fx_init(fx_t *f, double floor)
{
    memset(f, 0, sizeof *f);
    f->pol.budget = 1000;
    f->pol.samples = 256;
    f->pol.max_step = 10;
    f->pol.risk_roas_floor = 0.5;
    f->pol.risk_max_prob = 1.0;
    f->pol.risk_cvar_alpha = 0.1;
    f->pol.risk_cvar_floor = floor;
    f->pol.lab.cap_share = 0.1;
    f->pol.lab.max_rel_width = 0.5;
    f->pol.lab.min_conversions = 100;
    tm_state_t risky = {{BD_CURVE_EXP, 4.0, 2000, 0}, 2.0, 0}, safe = {{BD_CURVE_EXP, 2.0, 2000, 0}, 0, 0};
    memcpy(f->st[0].bytes, &risky, sizeof risky);
    memcpy(f->st[1].bytes, &safe, sizeof safe);
    for (int i = 0; i < N; i++) {
        snprintf(f->cfg[i].name, sizeof f->cfg[i].name, i ? "safe" : "risky");
        f->cfg[i].max = INFINITY;
        f->cfgp[i] = &f->cfg[i];
        f->prev[i] = 500;
    }
    f->rng = gsl_rng_alloc(gsl_rng_mt19937);
}

static bd_err_t fx_run(fx_t *f)
{
    gsl_rng_set(f->rng, 99);
    bd_alloc_input_t in = {.n = N, .pol = &f->pol, .cfg = f->cfgp, .ops = &tm_ops, .states = f->st,
                           .priors = f->pr, .prev = f->prev, .safe = f->prev, .promoted = f->prom,
                           .rng = f->rng};
    f->out.x = f->x;
    f->out.bound = f->bound;
    f->out.mean_roas = f->mean;
    f->out.roas_lo = f->lo;
    f->out.roas_hi = f->hi;
    f->out.promoted = f->prom_out;
    return bd_alloc_decide(&in, &f->out, f->err, sizeof f->err);
}

static bd_err_t fx_verify(fx_t *f)
{
    bd_verify_input_t v = {.n = N, .pol = &f->pol, .cfg = f->cfgp, .x = f->x, .prev = f->prev,
                           .promoted = f->prom_out, .draws = f->out.draws,
                           .n_draws = f->out.n_draws, .risk_held = f->out.risk_held};
    return bd_verify_allocation(&v, f->err, sizeof f->err);
}

/* The CVaR of the draws at x, by this test's own loop. */
static double own_cvar(const fx_t *f, double alpha)
{
    size_t S = f->out.n_draws;
    double r[512], total = f->x[0] + f->x[1];
    for (size_t s = 0; s < S; s++) {
        r[s] = 0;
        for (int i = 0; i < N; i++) r[s] += bd_curve_value(&f->out.draws[s * N + i], f->x[i]);
    }
    return bd_stats_tail_mean(r, S, alpha) / total;
}

/* Off (floor 0): the candidate is what the posterior means favour. With a
 * floor between the safe split's CVaR and the candidate's, the allocation
 * moves toward the safe reference just far enough. */
Test(cvar, the_floor_moves_toward_the_safe_reference)
{
    fx_t f;
    fx_init(&f, 0);
    cr_assert_eq(fx_run(&f), BD_OK, "%s", f.err);
    cr_assert(isnan(f.out.cvar));
    cr_assert_not(f.out.cvar_bound);
    double free_risky = f.x[0], c_free = own_cvar(&f, 0.1);
    cr_assert_gt(free_risky, 600);
    f.x[0] = f.x[1] = 500;
    double c_safe = own_cvar(&f, 0.1);
    cr_assert_gt(c_safe, c_free, "safe %.4f free %.4f", c_safe, c_free);

    double floor = 0.5 * (c_safe + c_free);
    bd_alloc_output_free(&f.out);
    gsl_rng_free(f.rng);
    fx_init(&f, floor);
    cr_assert_eq(fx_run(&f), BD_OK, "%s", f.err);
    cr_assert(f.out.cvar_bound);
    cr_assert_not(f.out.risk_held);
    cr_assert_geq(f.out.cvar, floor);
    cr_assert_float_eq(f.out.cvar, own_cvar(&f, 0.1), 1e-12);
    cr_assert(f.x[0] < free_risky && f.x[0] > 500, "risky %.2f", f.x[0]);
    cr_assert_eq(f.bound[0], BD_BOUND_RISK);
    cr_assert_eq(fx_verify(&f), BD_OK, "%s", f.err);
    /* the verifier's own CVaR refuses the same allocation under a floor
     * a little above what it reaches */
    f.pol.risk_cvar_floor = f.out.cvar * 1.001;
    cr_assert_eq(fx_verify(&f), BD_ERR_INVALID);
    cr_assert(strstr(f.err, "risk: CVaR "), "%s", f.err);
    bd_alloc_output_free(&f.out);
    gsl_rng_free(f.rng);
}

/* A floor even the safe reference misses: held, the allocation in force
 * stays; a floor the candidate meets: nothing binds. */
Test(cvar, hold_and_slack)
{
    fx_t f;
    fx_init(&f, 3.0);
    cr_assert_eq(fx_run(&f), BD_OK, "%s", f.err);
    cr_assert(f.out.risk_held);
    cr_assert(f.out.cvar_bound);
    cr_assert_eq(f.x[0], 500);
    cr_assert_eq(f.x[1], 500);
    cr_assert_lt(f.out.cvar, 3.0);
    bd_alloc_output_free(&f.out);
    gsl_rng_free(f.rng);
    fx_init(&f, 0.1);
    cr_assert_eq(fx_run(&f), BD_OK, "%s", f.err);
    cr_assert_not(f.out.cvar_bound);
    cr_assert_not(f.out.risk_held);
    cr_assert_geq(f.out.cvar, 0.1);
    cr_assert_neq(f.bound[0], BD_BOUND_RISK);
    bd_alloc_output_free(&f.out);
    gsl_rng_free(f.rng);
}

Test(cvar, record_fields)
{
    bd_decision_channel_t ch = {.channel = "s", .spend = 10, .prev = 10};
    bd_decision_t d = {.portfolio = "p", .n = 1, .ch = &ch, .p_below_floor = 0.05,
                       .show_cvar = true, .cvar = 1.23456, .cvar_bound = true};
    char *buf = NULL;
    size_t cap = 0;
    bd_record_json(&d, &buf, &cap);
    cr_assert(strstr(buf, "\"risk\":{\"p_below_floor\":0.0500,\"cvar\":1.2346,\"cvar_bound\":true},"),
              "%s", buf);
    d.cvar = NAN;
    d.cvar_bound = false;
    bd_record_json(&d, &buf, &cap);
    cr_assert(strstr(buf, "\"cvar\":null,\"cvar_bound\":false}"), "%s", buf);
    d.show_cvar = false;
    bd_record_json(&d, &buf, &cap);
    cr_assert(strstr(buf, "\"risk\":{\"p_below_floor\":0.0500},"), "%s", buf);
    free(buf);
}
