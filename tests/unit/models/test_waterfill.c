/* test_waterfill.c: the water-filling solver against an independent brute
 * force (pairwise exchange with golden-section line search), against the KKT
 * conditions, closed form against bisection, and the degenerate boxes. */
#include <criterion/criterion.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <string.h>
#include "budgetd/alloc.h"
#include "budgetd/waterfill.h"

static double objective(const bd_curve_t *c, const double *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += bd_curve_value(&c[i], x[i]);
    return s;
}

static double sum(const double *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s;
}

/* Maximises f_i(x_i + d) + f_j(x_j - d) over the feasible d by golden
 * section (the function is concave in d), and applies the best d. */
static void best_transfer(const bd_curve_t *c, double *x, const double *lo, const double *hi,
                          size_t i, size_t j)
{
    double dlo = fmax(lo[i] - x[i], x[j] - hi[j]), dhi = fmin(hi[i] - x[i], x[j] - lo[j]);
    if (!(dhi > dlo)) return;
    const double gr = (sqrt(5.0) - 1) / 2;
    double a = dlo, b = dhi;
    for (int it = 0; it < 200 && b - a > 1e-13 * (1 + fabs(a) + fabs(b)); it++) {
        double m1 = b - gr * (b - a), m2 = a + gr * (b - a);
        double g1 = bd_curve_value(&c[i], x[i] + m1) + bd_curve_value(&c[j], x[j] - m1);
        double g2 = bd_curve_value(&c[i], x[i] + m2) + bd_curve_value(&c[j], x[j] - m2);
        if (g1 < g2) a = m1;
        else b = m2;
    }
    double d = 0.5 * (a + b), cands[3] = {d, dlo, dhi}, best = 0;
    double base = bd_curve_value(&c[i], x[i]) + bd_curve_value(&c[j], x[j]), bestv = base;
    for (int k = 0; k < 3; k++) {
        double v = bd_curve_value(&c[i], x[i] + cands[k]) + bd_curve_value(&c[j], x[j] - cands[k]);
        if (v > bestv) { bestv = v; best = cands[k]; }
    }
    x[i] += best;
    x[j] -= best;
}

/* Brute force optimum: a feasible start (fill from lo in index order), then
 * sweeps of optimal pairwise transfers until nothing improves. For concave
 * separable objectives over a box and a total this reaches the optimum. */
static double brute_force(const bd_curve_t *c, const double *lo, const double *hi, size_t n,
                          double budget, double *x)
{
    double rest = budget - sum(lo, n);
    for (size_t i = 0; i < n; i++) {
        double add = fmin(rest, hi[i] - lo[i]);
        x[i] = lo[i] + add;
        rest -= add;
    }
    double prev = -INFINITY, cur = objective(c, x, n);
    for (int sweep = 0; sweep < 2000 && cur > prev + 1e-14 * fabs(cur); sweep++) {
        prev = cur;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++)
                if (i != j) best_transfer(c, x, lo, hi, i, j);
        cur = objective(c, x, n);
    }
    return cur;
}

static void random_curve(gsl_rng *r, bd_curve_t *c, int kind)
{
    memset(c, 0, sizeof *c);
    if (kind == 2) kind = (int)gsl_rng_uniform_int(r, 2);
    c->kind = kind ? BD_CURVE_POWER : BD_CURVE_EXP;
    if (kind) {
        c->a = 0.5 + 20 * gsl_rng_uniform(r);
        c->b = 0.2 + 0.7 * gsl_rng_uniform(r);
    } else {
        c->a = 0.2 + 5 * gsl_rng_uniform(r);
        c->k = 50 + 5000 * gsl_rng_uniform(r);
    }
}

/* A random box and a budget strictly inside (sum lo, sum hi). */
static double random_box(gsl_rng *r, size_t n, double *lo, double *hi, bool allow_inf)
{
    for (size_t i = 0; i < n; i++) {
        lo[i] = gsl_rng_uniform(r) < 0.3 ? 0 : 300 * gsl_rng_uniform(r);
        hi[i] = allow_inf && gsl_rng_uniform(r) < 0.2 ? INFINITY
                                                      : lo[i] + 3000 * gsl_rng_uniform(r) + 1;
    }
    double slo = sum(lo, n), shi = sum(hi, n);
    double span = isinf(shi) ? 5000.0 * (double)n : shi - slo;
    return slo + span * (0.02 + 0.96 * gsl_rng_uniform(r));
}

static void check_against_brute(int kind, unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    for (int t = 0; t < 300; t++) {
        size_t n = 2 + (size_t)gsl_rng_uniform_int(r, 3);
        bd_curve_t c[4];
        double lo[4], hi[4], x[4], xb[4];
        for (size_t i = 0; i < n; i++) random_curve(r, &c[i], kind);
        double budget = random_box(r, n, lo, hi, false);
        bd_waterfill_solve(c, lo, hi, n, budget, x);
        double fw = objective(c, x, n), fb = brute_force(c, lo, hi, n, budget, xb);
        cr_assert(fabs(sum(x, n) - budget) <= 1e-9 * budget, "case %d: sum %.12g != %.12g", t,
                  sum(x, n), budget);
        for (size_t i = 0; i < n; i++)
            cr_assert(x[i] >= lo[i] && x[i] <= hi[i], "case %d: x[%zu] outside box", t, i);
        cr_assert(fw >= fb - 1e-6 * fabs(fb), "case %d: waterfill %.12g below brute force %.12g",
                  t, fw, fb);
        cr_assert(fb >= fw - 1e-6 * fabs(fw), "case %d: brute force %.12g below waterfill %.12g",
                  t, fb, fw);
    }
    gsl_rng_free(r);
}

Test(waterfill, exp_matches_brute_force) { check_against_brute(0, 11); }
Test(waterfill, power_matches_brute_force) { check_against_brute(1, 12); }
Test(waterfill, mixed_matches_brute_force) { check_against_brute(2, 13); }

/* KKT: free channels share one marginal; channels at lo have a marginal no
 * higher, channels at hi no lower. Sufficient for optimality (concave f). */
Test(waterfill, kkt_conditions_hold)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 21);
    for (int t = 0; t < 2000; t++) {
        size_t n = 1 + (size_t)gsl_rng_uniform_int(r, 40);
        bd_curve_t c[40];
        double lo[40], hi[40], x[40];
        int kind = t % 3;
        for (size_t i = 0; i < n; i++) random_curve(r, &c[i], kind);
        double budget = random_box(r, n, lo, hi, true);
        bd_waterfill_solve(c, lo, hi, n, budget, x);
        cr_assert(fabs(sum(x, n) - budget) <= 1e-9 * budget, "case %d: sum", t);
        double lmin = INFINITY, lmax = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            cr_assert(x[i] >= lo[i] && x[i] <= hi[i]);
            double tol = 1e-7 * (1 + x[i]);
            if (x[i] > lo[i] + tol && x[i] < hi[i] - tol) {
                double m = bd_curve_marginal(&c[i], x[i]);
                lmin = fmin(lmin, m);
                lmax = fmax(lmax, m);
            }
        }
        if (lmax >= lmin) cr_assert(lmax - lmin <= 1e-6 * lmax, "case %d: free marginals differ %g %g", t, lmin, lmax);
        if (lmax < lmin) continue; /* no free channel: bounds decide alone */
        for (size_t i = 0; i < n; i++) {
            double tol = 1e-7 * (1 + x[i]);
            if (x[i] <= lo[i] + tol && lo[i] < hi[i] - tol)
                cr_assert(bd_curve_marginal(&c[i], x[i]) <= lmax * (1 + 1e-5), "case %d: channel %zu at lo but marginal %g > %g",
                          t, i, bd_curve_marginal(&c[i], x[i]), lmax);
            if (x[i] >= hi[i] - tol && lo[i] < hi[i] - tol)
                cr_assert(bd_curve_marginal(&c[i], x[i]) >= lmin * (1 - 1e-5), "case %d: channel %zu at hi but marginal low", t, i);
        }
    }
    gsl_rng_free(r);
}

Test(waterfill, closed_form_agrees_with_bisection)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 31);
    for (int t = 0; t < 2000; t++) {
        size_t n = 1 + (size_t)gsl_rng_uniform_int(r, 30);
        bd_curve_t c[30];
        double lo[30], hi[30], x[30], y[30];
        for (size_t i = 0; i < n; i++) random_curve(r, &c[i], 0);
        if (t % 7 == 0) c[0].a = 0;
        double budget = random_box(r, n, lo, hi, true);
        bd_waterfill_solve(c, lo, hi, n, budget, x);
        bd_waterfill_bisect(c, lo, hi, n, budget, y);
        for (size_t i = 0; i < n; i++)
            cr_assert(fabs(x[i] - y[i]) <= 1e-7 * budget, "case %d ch %zu: %.12g vs %.12g", t, i,
                      x[i], y[i]);
    }
    gsl_rng_free(r);
}

Test(waterfill, scratch_variant_is_identical)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 41);
    for (int t = 0; t < 200; t++) {
        size_t n = 1 + (size_t)gsl_rng_uniform_int(r, 100);
        bd_curve_t c[100];
        double lo[100], hi[100], x[100], y[100], scratch[BD_WATERFILL_SCRATCH(100)];
        for (size_t i = 0; i < n; i++) random_curve(r, &c[i], t % 3);
        double budget = random_box(r, n, lo, hi, true);
        bd_waterfill_solve(c, lo, hi, n, budget, x);
        bd_waterfill_scratch(c, lo, hi, n, budget, y, scratch);
        cr_assert(memcmp(x, y, n * sizeof(double)) == 0);
    }
    gsl_rng_free(r);
}

/* A Thompson decision's water-fills (issue 15): S draws of one posterior
 * (each a within 30% of a base curve) over a narrow box around a previous
 * allocation (a ramp of +-25%, where the root with every channel free
 * usually has every channel clipped: the solver jumps to the nearest
 * breakpoint there, and each solve starts at the previous draw's root).
 * bd_waterfill_sum must add up the solutions the bisection finds, draw by
 * draw, and agree with bd_waterfill_scratch row by row to rounding. */
Test(waterfill, sum_over_draws_matches_single_solves)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 53);
    enum { S = 64, NMAX = 12 };
    for (int t = 0; t < 300; t++) {
        size_t n = 2 + (size_t)gsl_rng_uniform_int(r, NMAX - 1);
        bd_curve_t base[NMAX], rows[S * NMAX];
        double lo[NMAX], hi[NMAX], prev[NMAX], x[NMAX], y[NMAX], want[NMAX] = {0}, got[NMAX] = {0},
               one[NMAX] = {0}, scratch[BD_WATERFILL_SCRATCH(NMAX)], budget = 0;
        for (size_t i = 0; i < n; i++) {
            random_curve(r, &base[i], 0);
            prev[i] = 100 + 2000 * gsl_rng_uniform(r);
            lo[i] = t % 4 == 0 && i == 0 ? 0 : 0.75 * prev[i];
            hi[i] = t % 5 == 0 && i == 1 ? INFINITY : 1.25 * prev[i];
            budget += prev[i];
        }
        for (size_t s = 0; s < S; s++)
            for (size_t i = 0; i < n; i++) {
                rows[s * n + i] = base[i];
                rows[s * n + i].a *= 0.7 + 0.6 * gsl_rng_uniform(r);
                if (t % 11 == 0 && s % 9 == 0 && i == n - 1) rows[s * n + i].a = 0;
            }
        bd_waterfill_sum(rows, S, lo, hi, n, budget, got, x, scratch);
        for (size_t s = 0; s < S; s++) {
            bd_waterfill_bisect(&rows[s * n], lo, hi, n, budget, y);
            bd_waterfill_scratch(&rows[s * n], lo, hi, n, budget, x, scratch);
            for (size_t i = 0; i < n; i++) {
                want[i] += y[i];
                one[i] += x[i];
            }
        }
        for (size_t i = 0; i < n; i++) {
            cr_assert(fabs(got[i] - want[i]) <= 1e-7 * budget * S, "case %d ch %zu: %.12g vs %.12g",
                      t, i, got[i], want[i]);
            cr_assert(fabs(got[i] - one[i]) <= 1e-9 * budget * S, "case %d ch %zu: %.15g vs %.15g", t,
                      i, got[i], one[i]);
        }
    }
    gsl_rng_free(r);
}

/* Two uncapped EXP channels with the same k: x1 - x2 = k ln(a1/a2). */
Test(waterfill, exp_analytic_split)
{
    bd_curve_t c[2] = {{BD_CURVE_EXP, 3.0, 1000, 0}, {BD_CURVE_EXP, 1.0, 1000, 0}};
    double lo[2] = {0, 0}, hi[2] = {INFINITY, INFINITY}, x[2];
    bd_waterfill_solve(c, lo, hi, 2, 5000, x);
    double d = 1000 * log(3.0);
    cr_assert_float_eq(x[0], (5000 + d) / 2, 1e-9);
    cr_assert_float_eq(x[1], (5000 - d) / 2, 1e-9);
    /* a budget too small for the weaker channel to enter at all */
    bd_waterfill_solve(c, lo, hi, 2, 500, x);
    cr_assert_float_eq(x[0], 500, 1e-9);
    cr_assert_float_eq(x[1], 0, 1e-12);
}

Test(waterfill, power_analytic_split)
{
    /* equal b: x_i proportional to a_i^(1/(1-b)) */
    bd_curve_t c[2] = {{BD_CURVE_POWER, 2.0, 0, 0.5}, {BD_CURVE_POWER, 1.0, 0, 0.5}};
    double lo[2] = {0, 0}, hi[2] = {INFINITY, INFINITY}, x[2];
    bd_waterfill_solve(c, lo, hi, 2, 1000, x);
    cr_assert_float_eq(x[0], 800, 1e-7);
    cr_assert_float_eq(x[1], 200, 1e-7);
}

Test(waterfill, zero_return_channel_takes_lo)
{
    bd_curve_t c[3] = {{BD_CURVE_EXP, 0, 100, 0}, {BD_CURVE_EXP, 2, 500, 0}, {BD_CURVE_POWER, 0, 0, 0.5}};
    double lo[3] = {50, 0, 10}, hi[3] = {1000, INFINITY, 1000}, x[3];
    bd_waterfill_solve(c, lo, hi, 3, 2000, x);
    cr_assert_float_eq(x[0], 50, 1e-12);
    cr_assert_float_eq(x[2], 10, 1e-12);
    cr_assert_float_eq(x[1], 1940, 1e-9);
}

Test(waterfill, zero_return_channels_absorb_what_others_cannot)
{
    /* the earning channel is capped at 300: the rest goes to the zero-return
     * ones, equally among the uncapped ones */
    bd_curve_t c[3] = {{BD_CURVE_EXP, 2, 500, 0}, {BD_CURVE_EXP, 0, 1, 0}, {BD_CURVE_EXP, 0, 1, 0}};
    double lo[3] = {0, 0, 100}, hi[3] = {300, INFINITY, INFINITY}, x[3];
    bd_waterfill_solve(c, lo, hi, 3, 1000, x);
    cr_assert_float_eq(x[0], 300, 1e-12);
    cr_assert_float_eq(x[1], 300, 1e-9);
    cr_assert_float_eq(x[2], 400, 1e-9);
    /* all capped: in proportion to room */
    double hi2[3] = {300, 100, 400};
    bd_waterfill_solve(c, lo, hi2, 3, 600, x);
    cr_assert_float_eq(x[0], 300, 1e-12);
    cr_assert_float_eq(x[1], 100.0 * 200 / 400, 1e-9);
    cr_assert_float_eq(x[2], 100 + 300.0 * 200 / 400, 1e-9);
}

Test(waterfill, budget_above_sum_hi_gives_hi)
{
    bd_curve_t c[2] = {{BD_CURVE_EXP, 1, 100, 0}, {BD_CURVE_POWER, 1, 0, 0.5}};
    double lo[2] = {0, 10}, hi[2] = {100, 200}, x[2];
    bd_waterfill_solve(c, lo, hi, 2, 1000, x);
    cr_assert(x[0] == 100 && x[1] == 200);
}

Test(waterfill, budget_below_sum_lo_gives_lo)
{
    bd_curve_t c[2] = {{BD_CURVE_EXP, 1, 100, 0}, {BD_CURVE_POWER, 1, 0, 0.5}};
    double lo[2] = {300, 400}, hi[2] = {1000, 2000}, x[2];
    bd_waterfill_solve(c, lo, hi, 2, 500, x);
    cr_assert(x[0] == 300 && x[1] == 400);
}

Test(waterfill, extreme_parameters_stay_feasible)
{
    /* tiny k, b close to 1, huge budgets: log-space evaluation must not
     * overflow into NaN */
    bd_curve_t c[3] = {{BD_CURVE_EXP, 5, 1e-3, 0}, {BD_CURVE_POWER, 1, 0, 0.999999},
                       {BD_CURVE_EXP, 1e-9, 1e9, 0}};
    double lo[3] = {0, 0, 0}, hi[3] = {INFINITY, 1e7, INFINITY}, x[3];
    double budgets[] = {1e-3, 1, 1e4, 1e9};
    for (int b = 0; b < 4; b++) {
        bd_waterfill_solve(c, lo, hi, 3, budgets[b], x);
        for (int i = 0; i < 3; i++) cr_assert(isfinite(x[i]) && x[i] >= 0 && x[i] <= hi[i]);
        cr_assert(fabs(sum(x, 3) - budgets[b]) <= 1e-9 * budgets[b], "budget %g sum %.12g",
                  budgets[b], sum(x, 3));
    }
}
