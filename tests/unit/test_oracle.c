/* test_oracle.c: the simulator's oracle (bench/oracle.c) is the exact
 * maximiser of the true return under box and total: it must match brute
 * force on small cases and satisfy the KKT conditions. The bench sources are
 * not in libbudgetd, so the file under test is compiled in here. */
#include <criterion/criterion.h>
#include <math.h>
#include <gsl/gsl_rng.h>
#include "../../bench/sim/oracle.c"

static bd_curve_t ex(double a, double k) { return (bd_curve_t){BD_CURVE_EXP, a, k, 0}; }

/* Best value over a grid of step h for 2 channels: x1 on the grid, x2 the
 * rest of the total; the box must hold both. */
static double brute2(const bd_curve_t *c, const double *lo, const double *hi, double total, double h)
{
    double best = -INFINITY;
    for (double x1 = lo[0]; x1 <= hi[0] + 1e-9; x1 += h) {
        double x2 = total - x1;
        if (x2 < lo[1] - 1e-9 || x2 > hi[1] + 1e-9) continue;
        double x[2] = {x1, x2};
        double v = sim_value(c, x, 2);
        if (v > best) best = v;
    }
    return best;
}

static double brute3(const bd_curve_t *c, const double *lo, const double *hi, double total, double h)
{
    double best = -INFINITY;
    for (double x1 = lo[0]; x1 <= hi[0] + 1e-9; x1 += h)
        for (double x2 = lo[1]; x2 <= hi[1] + 1e-9; x2 += h) {
            double x3 = total - x1 - x2;
            if (x3 < lo[2] - 1e-9 || x3 > hi[2] + 1e-9) continue;
            double x[3] = {x1, x2, x3};
            double v = sim_value(c, x, 3);
            if (v > best) best = v;
        }
    return best;
}

/* Feasible and at least as good as every grid point; no better than the
 * grid optimum plus the most one grid step can gain (max slope * h). */
static void check_vs_brute(const bd_curve_t *c, const double *lo, const double *hi, size_t n,
                           double budget, double h)
{
    double x[3];
    double v = sim_oracle(c, lo, hi, n, budget, x);
    double sum = 0, smax = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_geq(x[i], lo[i] - 1e-6, "x[%zu]=%g below lo %g", i, x[i], lo[i]);
        cr_assert_leq(x[i], hi[i] + 1e-6, "x[%zu]=%g above hi %g", i, x[i], hi[i]);
        sum += x[i];
        if (c[i].a > smax) smax = c[i].a;
    }
    double shi = 0;
    for (size_t i = 0; i < n; i++) shi += hi[i];
    double total = budget < shi ? budget : shi;
    cr_assert_float_eq(sum, total, 1e-6 * (1 + total));
    double b = n == 2 ? brute2(c, lo, hi, total, h) : brute3(c, lo, hi, total, h);
    cr_assert_geq(v, b - 1e-9 * (1 + fabs(b)), "oracle %.9g below brute force %.9g", v, b);
    cr_assert_leq(v, b + 2 * smax * h * (double)n, "oracle %.9g too far above grid %.9g", v, b);
}

Test(oracle, two_channels_interior)
{
    bd_curve_t c[2] = {ex(3.0, 400), ex(2.0, 300)};
    double lo[2] = {0, 0}, hi[2] = {1000, 1000};
    check_vs_brute(c, lo, hi, 2, 600, 0.05);
}

Test(oracle, two_channels_min_binds)
{
    /* channel 1 is poor; its min keeps it funded */
    bd_curve_t c[2] = {ex(3.0, 400), ex(0.5, 300)};
    double lo[2] = {0, 150}, hi[2] = {1000, 1000};
    double x[2];
    sim_oracle(c, lo, hi, 2, 600, x);
    cr_assert_float_eq(x[1], 150, 1e-6);
    check_vs_brute(c, lo, hi, 2, 600, 0.05);
}

Test(oracle, two_channels_max_binds)
{
    bd_curve_t c[2] = {ex(5.0, 1000), ex(1.0, 300)};
    double lo[2] = {0, 0}, hi[2] = {200, 1000};
    double x[2];
    sim_oracle(c, lo, hi, 2, 600, x);
    cr_assert_float_eq(x[0], 200, 1e-6);
    check_vs_brute(c, lo, hi, 2, 600, 0.05);
}

Test(oracle, three_channels_mixed)
{
    bd_curve_t c[3] = {ex(2.5, 200), ex(2.0, 500), ex(3.0, 100)};
    double lo[3] = {50, 0, 0}, hi[3] = {400, 300, 500};
    check_vs_brute(c, lo, hi, 3, 700, 0.5);
}

Test(oracle, budget_above_caps_gives_caps)
{
    bd_curve_t c[3] = {ex(2.5, 200), ex(2.0, 500), ex(3.0, 100)};
    double lo[3] = {0, 0, 0}, hi[3] = {100, 200, 300}, x[3];
    double v = sim_oracle(c, lo, hi, 3, 1000, x);
    for (int i = 0; i < 3; i++) cr_assert_float_eq(x[i], hi[i], 1e-9);
    cr_assert_float_eq(v, sim_value(c, hi, 3), 1e-9);
}

/* KKT: channels strictly inside their box share one marginal; a channel at
 * its min has a marginal no higher, one at its max no lower. */
Test(oracle, kkt_conditions_random)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(r, 6);
    for (int trial = 0; trial < 200; trial++) {
        bd_curve_t c[3];
        double lo[3], hi[3], x[3];
        for (int i = 0; i < 3; i++) {
            c[i] = ex(0.5 + 4 * gsl_rng_uniform(r), 50 + 950 * gsl_rng_uniform(r));
            lo[i] = 200 * gsl_rng_uniform(r);
            hi[i] = lo[i] + 50 + 1500 * gsl_rng_uniform(r);
        }
        double budget = lo[0] + lo[1] + lo[2] + 2000 * gsl_rng_uniform(r);
        sim_oracle(c, lo, hi, 3, budget, x);
        double lam = NAN;
        for (int i = 0; i < 3; i++)
            if (x[i] > lo[i] + 1e-6 && x[i] < hi[i] - 1e-6) lam = bd_curve_marginal(&c[i], x[i]);
        if (isnan(lam)) continue; /* every channel at a bound: nothing to compare */
        for (int i = 0; i < 3; i++) {
            double m = bd_curve_marginal(&c[i], x[i]);
            if (x[i] > lo[i] + 1e-6 && x[i] < hi[i] - 1e-6)
                cr_assert_float_eq(m, lam, 1e-6 * lam, "trial %d: interior marginals differ", trial);
            else if (x[i] <= lo[i] + 1e-6)
                cr_assert_leq(m, lam * (1 + 1e-6), "trial %d: channel at min earns more", trial);
            else
                cr_assert_geq(m, lam * (1 - 1e-6), "trial %d: channel at max earns less", trial);
        }
    }
    gsl_rng_free(r);
}

Test(oracle, random_small_cases_match_brute_force)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(r, 11);
    for (int trial = 0; trial < 40; trial++) {
        size_t n = 2 + (size_t)(trial % 2);
        bd_curve_t c[3];
        double lo[3], hi[3];
        for (size_t i = 0; i < n; i++) {
            c[i] = ex(0.5 + 3 * gsl_rng_uniform(r), 20 + 200 * gsl_rng_uniform(r));
            lo[i] = 30 * gsl_rng_uniform(r);
            hi[i] = lo[i] + 20 + 200 * gsl_rng_uniform(r);
        }
        double slo = 0, shi = 0;
        for (size_t i = 0; i < n; i++) {
            slo += lo[i];
            shi += hi[i];
        }
        double budget = slo + (shi - slo) * gsl_rng_uniform(r);
        check_vs_brute(c, lo, hi, n, budget, n == 2 ? 0.01 : 0.5);
    }
    gsl_rng_free(r);
}

Test(oracle, value_is_sum_of_curves)
{
    bd_curve_t c[2] = {ex(2.0, 100), ex(1.0, 50)};
    double x[2] = {100, 0};
    cr_assert_float_eq(sim_value(c, x, 2), 2.0 * 100 * (1 - exp(-1.0)), 1e-9);
    cr_assert_float_eq(sim_oracle(c, NULL, NULL, 0, 100, NULL), 0, 0);
}
