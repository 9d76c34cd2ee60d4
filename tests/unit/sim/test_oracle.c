/* test_oracle.c: the simulator's oracle (bench/sim/oracle.c) is the exact
 * maximiser of the true return under box and total: it must match brute
 * force on small cases and satisfy the KKT conditions. The bench sources are
 * not in libbudgetd, so the file under test is compiled in here. Suite
 * `flat`: the best time-invariant split in hindsight (truth.c) is optimal
 * among flat splits, and the per-cycle oracle beats it when the response
 * has time structure. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include <gsl/gsl_rng.h>
#include "bench/sim/oracle.c"

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

/* ---- the best flat split (bench/sim/truth.c) ----------------------------- */

/* sum over the run of the flat split x's return (caps applied). */
static double flat_objective(const sim_truth_t *tr, const double *x)
{
    double v = 0;
    for (int t = 0; t < tr->T; t++)
        for (size_t i = 0; i < tr->n; i++) {
            size_t k = (size_t)t * tr->n + i;
            if (!tr->present[k]) continue;
            double s = x[i] < tr->cap[k] ? x[i] : tr->cap[k];
            v += bd_curve_value(&tr->curve[k], s);
        }
    return v;
}

/* The flat split is feasible, its value is what it claims, and no move of
 * money between two channels (within their boxes) improves it. */
static void check_flat(const sim_scenario_t *sc, const sim_truth_t *tr)
{
    size_t n = tr->n;
    double sum = 0, x[8], y[8];
    for (size_t i = 0; i < n; i++) {
        x[i] = tr->flat_x[i];
        cr_assert_geq(x[i], sc->ch[i].cfg->min - 1e-6);
        cr_assert_leq(x[i], sc->ch[i].cfg->max + 1e-6);
        sum += x[i];
    }
    cr_assert_float_eq(sum, sc->pol->budget, 1e-6 * sc->pol->budget);
    double v = flat_objective(tr, x);
    cr_assert_float_eq(v, tr->flat_v, 1e-9 * v);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            if (i == j) continue;
            for (double d = 1; d <= 256; d *= 4) {
                memcpy(y, x, n * sizeof *y);
                y[i] -= d;
                y[j] += d;
                if (y[i] < sc->ch[i].cfg->min || y[j] > sc->ch[j].cfg->max) continue;
                cr_assert_leq(flat_objective(tr, y), v * (1 + 1e-12), "moving %g from %zu to %zu gains", d,
                              i, j);
            }
        }
}

Test(flat, best_flat_split_is_optimal)
{
    const char *files[] = {"bench/scenarios/daily_weekly.yaml", "bench/scenarios/cap_several.yaml",
                           "bench/scenarios/drift.yaml"};
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        char err[4096];
        sim_scenario_t *sc;
        cr_assert_eq(sim_scenario_load(files[f], &sc, err, sizeof err), BD_OK, "%s", err);
        sim_truth_t *tr = sim_truth_new(sc, 77);
        check_flat(sc, tr);
        sim_truth_free(tr);
        sim_scenario_free(sc);
    }
}

/* With day-part seasonality the per-cycle oracle gains clearly over the
 * best time-invariant split; without any time structure (no drift) the two
 * coincide. */
Test(flat, oracle_beats_flat_split_on_diurnal_scenario)
{
    char err[4096];
    sim_scenario_t *sc;
    cr_assert_eq(sim_scenario_load("bench/scenarios/daily_weekly.yaml", &sc, err, sizeof err), BD_OK, "%s", err);
    sim_truth_t *tr = sim_truth_new(sc, 77);
    double o = 0;
    for (int t = 0; t < tr->T; t++) o += tr->opt_v[t];
    cr_assert_gt(o, 1.02 * tr->flat_v, "oracle %g vs flat %g", o, tr->flat_v);
    sim_truth_free(tr);
    sc->drift_sigma = 0;
    for (size_t i = 0; i < sc->n_ch; i++) sc->ch[i].season.on = false;
    tr = sim_truth_new(sc, 77);
    o = 0;
    for (int t = 0; t < tr->T; t++) o += tr->opt_v[t];
    cr_assert_float_eq(o, tr->flat_v, 1e-6 * o, "stationary: flat = oracle");
    for (size_t i = 0; i < tr->n; i++) cr_assert_float_eq(tr->flat_x[i], tr->opt_x[i], 1e-3);
    sim_truth_free(tr);
    sim_scenario_free(sc);
}

/* With carryover the oracle's return is its allocation played through the
 * adstock from the initial split: for stationary curves it converges to
 * the static optimum. */
Test(flat, carryover_oracle_reaches_static_optimum)
{
    char err[4096];
    sim_scenario_t *sc;
    cr_assert_eq(sim_scenario_load("bench/scenarios/carryover.yaml", &sc, err, sizeof err), BD_OK, "%s", err);
    sc->drift_sigma = 0;
    sim_truth_t *tr = sim_truth_new(sc, 5);
    double x[8];
    double v = sim_oracle(&tr->curve[0], &tr->lo[0], &tr->hi[0], tr->n, sc->pol->budget, x);
    cr_assert_float_eq(tr->opt_v[tr->T - 1], v, 1e-9 * v);
    cr_assert_lt(tr->opt_v[0], v, "the first cycle's adstock is still the initial split's");
    sim_truth_free(tr);
    sim_scenario_free(sc);
}
