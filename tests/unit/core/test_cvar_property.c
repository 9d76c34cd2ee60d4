/* test_cvar_property.c: the guardrail property tests with the CVaR bound
 * (v2), on fixed budgets and on target goals: over many random portfolios
 * every decision passes the independent verifier (which re-checks the
 * CVaR with its own loops), this file's own CVaR and P(ROAS < floor) of
 * the draws at the allocation meet the bound unless the decision held,
 * the record's cvar is that value, and an allocation whose CVaR falls just
 * short of its floor is refused. */
#include <criterion/criterion.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "budgetd/alloc.h"
#include "budgetd/verify.h"

#include "testmodel.h"

#define MAXN 8

static double cents(double v) { return rint(v * 100) / 100; }

/* Mean of the m = max(1, ceil(alpha S)) smallest of r (this file's copy:
 * selection by repeated minimum, no sort shared with the engine). */
static double own_tail(const double *r, size_t S, double alpha)
{
    double mm = ceil(alpha * (double)S - 1e-9);
    size_t m = mm < 1 ? 1 : mm > (double)S ? S : (size_t)mm;
    bool used[4096] = {false};
    double sum = 0;
    for (size_t j = 0; j < m; j++) {
        size_t best = S;
        for (size_t s = 0; s < S; s++)
            if (!used[s] && (best == S || r[s] < r[best])) best = s;
        used[best] = true;
        sum += r[best];
    }
    return sum / (double)m;
}

Test(cvar_property, the_cvar_floor_holds_unless_held, .timeout = 240)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937), *draw = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 4242);
    long decisions = 0, moved = 0, held = 0, slack = 0, caught = 0, goals = 0;
    double x[MAXN], mean[MAXN], lo[MAXN], hi[MAXN], prev[MAXN];
    bd_bound_t bound[MAXN];
    bool prom[MAXN], prom_out[MAXN];
    bd_alloc_output_t out = {.x = x, .bound = bound, .mean_roas = mean, .roas_lo = lo,
                             .roas_hi = hi, .promoted = prom_out};
    char err[BD_ERRBUF];
    for (int t = 0; t < 8000; t++) {
        size_t n = 1 + gsl_rng_uniform_int(r, MAXN);
        bd_policy_t pol;
        memset(&pol, 0, sizeof pol);
        pol.budget = cents(50 + gsl_rng_uniform(r) * 20000);
        if (gsl_rng_uniform(r) < 0.4) {
            pol.budget_range.range = true;
            pol.budget_range.min = cents(pol.budget * gsl_rng_uniform(r));
            pol.goal.kind = BD_GOAL_TARGET_ROAS;
            pol.goal.target = 0.2 + 3 * gsl_rng_uniform(r);
            goals++;
        }
        pol.samples = 8 + (int)gsl_rng_uniform_int(r, 120);
        pol.max_step = 0.05 + gsl_rng_uniform(r);
        pol.min_change = gsl_rng_uniform(r) < 0.5 ? 0 : 0.01;
        pol.explore_share = gsl_rng_uniform(r) < 0.5 ? 0 : 0.05;
        pol.risk_roas_floor = 0.2 + 2 * gsl_rng_uniform(r);
        pol.risk_max_prob = gsl_rng_uniform(r) < 0.6 ? 1 : 0.2;
        pol.risk_cvar_alpha = gsl_rng_uniform(r) < 0.3 ? 1.0 / 64 : 0.01 + 0.5 * gsl_rng_uniform(r);
        pol.risk_cvar_floor = 0.05 + 2.5 * gsl_rng_uniform(r);
        pol.lab.cap_share = 0.1;
        pol.lab.max_rel_width = 0.5;
        pol.lab.min_conversions = 50;
        bd_channel_cfg_t cfg[MAXN];
        const bd_channel_cfg_t *cfgp[MAXN];
        bd_model_state_t st[MAXN];
        bd_prior_t pr[MAXN];
        memset(cfg, 0, sizeof cfg);
        memset(pr, 0, sizeof pr);
        for (size_t i = 0; i < n; i++) {
            snprintf(cfg[i].name, sizeof cfg[i].name, "c%zu", i);
            cfg[i].max = gsl_rng_uniform(r) < 0.4 ? INFINITY : cents(gsl_rng_uniform(r) * 1.5 * pol.budget);
            cfgp[i] = &cfg[i];
            prom[i] = false;
            tm_state_t s = {{BD_CURVE_EXP, 0.2 + 4 * gsl_rng_uniform(r), pol.budget * (0.05 + gsl_rng_uniform(r)), 0},
                            gsl_rng_uniform(r) < 0.2 ? 0 : 0.5 + 10 * gsl_rng_uniform(r), 0};
            memcpy(st[i].bytes, &s, sizeof s);
        }
        double capsum = 0;
        for (size_t i = 0; i < n; i++) capsum += cfg[i].max;
        if (pol.budget_range.range && capsum < pol.budget_range.min) pol.budget_range.min = 0;
        bd_alloc_initial(&pol, cfgp, n, prev);
        /* floors around the mean ROAS of the split in force: some bind */
        double mr = 0, ptot = 0;
        for (size_t i = 0; i < n; i++) {
            tm_state_t s = tm_get(&st[i]);
            mr += bd_curve_value(&s.c, prev[i]);
            ptot += prev[i];
        }
        mr = ptot > 0 ? mr / ptot : 1;
        pol.risk_cvar_floor = mr * (0.2 + 0.9 * gsl_rng_uniform(r));
        bool use_prev = gsl_rng_uniform(r) < 0.8;
        for (int cyc = 0; cyc < 2; cyc++) {
            bd_alloc_input_t in = {.n = n, .pol = &pol, .cfg = cfgp, .ops = &tm_ops, .states = st,
                                   .priors = pr, .prev = use_prev ? prev : NULL,
                                   .safe = use_prev ? prev : NULL, .promoted = prom, .rng = draw};
            if (use_prev && !pol.budget_range.range && gsl_rng_uniform(r) < 0.5) {
                /* probe: the free candidate's CVaR and the allocation in
                 * force's, from the same draws; a floor between them must
                 * move the decision toward the safe reference */
                double keep = pol.risk_cvar_floor, cf, cp;
                pol.risk_cvar_floor = 0;
                gsl_rng_set(draw, (unsigned long)t * 3 + (unsigned long)cyc);
                cr_assert_eq(bd_alloc_decide(&in, &out, err, sizeof err), BD_OK, "%s", err);
                double rf[128], rp[128], tf = 0, tp = 0;
                for (size_t i = 0; i < n; i++) {
                    tf += x[i];
                    tp += prev[i];
                }
                for (size_t s = 0; s < out.n_draws; s++) {
                    rf[s] = rp[s] = 0;
                    for (size_t i = 0; i < n; i++) {
                        rf[s] += bd_curve_value(&out.draws[s * n + i], x[i]);
                        rp[s] += bd_curve_value(&out.draws[s * n + i], prev[i]);
                    }
                }
                cf = own_tail(rf, out.n_draws, pol.risk_cvar_alpha) / tf;
                cp = own_tail(rp, out.n_draws, pol.risk_cvar_alpha) / tp;
                pol.risk_cvar_floor = cp > cf * 1.001 ? 0.5 * (cf + cp) : keep;
            }
            gsl_rng_set(draw, (unsigned long)t * 3 + (unsigned long)cyc);
            cr_assert_eq(bd_alloc_decide(&in, &out, err, sizeof err), BD_OK, "case %d: %s", t, err);
            decisions++;
            bd_verify_input_t v = {.n = n, .pol = &pol, .cfg = cfgp, .x = x,
                                   .prev = use_prev ? prev : NULL, .promoted = prom_out,
                                   .draws = out.draws, .n_draws = out.n_draws,
                                   .risk_held = out.risk_held};
            if (!out.kept)
                cr_assert_eq(bd_verify_allocation(&v, err, sizeof err), BD_OK, "case %d/%d: %s", t,
                             cyc, err);
            /* own returns, CVaR and P(below) at x */
            size_t S = out.n_draws, below = 0;
            double ret[128], total = 0;
            for (size_t i = 0; i < n; i++) total += x[i];
            for (size_t s = 0; s < S; s++) {
                ret[s] = 0;
                for (size_t i = 0; i < n; i++) ret[s] += bd_curve_value(&out.draws[s * n + i], x[i]);
                below += ret[s] < pol.risk_roas_floor * total;
            }
            double cv = total > 0 ? own_tail(ret, S, pol.risk_cvar_alpha) / total : NAN;
            if (total > 0) cr_assert_float_eq(out.cvar, cv, 1e-9 * fmax(1, cv), "record cvar %g own %g", out.cvar, cv);
            if (!out.risk_held) {
                cr_assert(!(cv < pol.risk_cvar_floor * (1 - 1e-9)), "case %d: CVaR %g below %g", t, cv,
                          pol.risk_cvar_floor);
                cr_assert_leq((double)below / (double)S, pol.risk_max_prob);
                if (out.cvar_bound) moved++;
                else slack++;
                if (total > 0 && !out.kept) {
                    pol.risk_cvar_floor = cv * 1.01;
                    cr_assert_eq(bd_verify_allocation(&v, err, sizeof err), BD_ERR_INVALID,
                                 "case %d: a CVaR short of its floor passed", t);
                    caught++;
                }
            } else {
                held++;
            }
            memcpy(prev, x, n * sizeof *prev);
            use_prev = true;
            pol.risk_cvar_floor = mr * (0.2 + 0.9 * gsl_rng_uniform(r));
        }
    }
    cr_assert(moved > 300 && held > 500 && slack > 500 && caught > 1000 && goals > 1000,
              "moved %ld held %ld slack %ld caught %ld goals %ld", moved, held, slack, caught, goals);
    cr_log_info("%ld decisions (%ld portfolios on a goal): CVaR moved %ld, held %ld, slack %ld; %ld "
                "corruptions refused",
                decisions, goals, moved, held, slack, caught);
    bd_alloc_output_free(&out);
    gsl_rng_free(r);
    gsl_rng_free(draw);
}
