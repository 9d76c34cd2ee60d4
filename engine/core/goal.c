/* goal.c: the total of a target goal (goal.h). For each posterior draw the
 * water-filling multiplier at total T is the marginal return of the last
 * unit; it falls as T grows, and so does its mean over the draws, so the
 * total whose mean marginal meets the target is found by bisection on T. */
#include <math.h>
#include "budgetd/goal.h"

#define GOAL_REL_TOL 1e-4 /* bisection stops within this share of the range's top */
#define GOAL_MAX_IT 64

/* f'(x), at one cent for a POWER curve below it (its f'(0) is infinite). */
static double goal_fprime(const bd_curve_t *c, double x)
{
    if (c->kind == BD_CURVE_POWER && x < 0.01) x = 0.01;
    return bd_curve_marginal(c, x);
}

double bd_goal_marginal(const bd_curve_t *c, const double *lo, const double *hi, size_t n,
                        double T, double *scratch)
{
    double *x = scratch, *wf = scratch + n;
    bd_waterfill_scratch(c, lo, hi, n, T, x, wf);
    double best = -INFINITY, least = INFINITY;
    for (size_t i = 0; i < n; i++) {
        double m = goal_fprime(&c[i], x[i]);
        if (!(m >= 0)) m = 0;
        if (isinf(hi[i]) || hi[i] - x[i] > 1e-9 * (1 + fabs(hi[i]))) best = fmax(best, m);
        else if (x[i] - lo[i] > 1e-9 * (1 + fabs(lo[i]))) least = fmin(least, m);
    }
    if (best > -INFINITY) return best;
    return least < INFINITY ? least : 0;
}

double bd_goal_mean_marginal(const bd_curve_t *draws, size_t S, size_t n, const double *lo,
                             const double *hi, double T, double *scratch)
{
    if (S == 0) return 0;
    double m = 0;
    for (size_t s = 0; s < S; s++) m += bd_goal_marginal(&draws[s * n], lo, hi, n, T, scratch);
    return m / (double)S;
}

double bd_goal_total(const bd_curve_t *draws, size_t S, size_t n, const double *lo,
                     const double *hi, double a_c, double b_c, double target, double *marginal,
                     double *scratch)
{
    double ma = bd_goal_mean_marginal(draws, S, n, lo, hi, a_c / 100, scratch);
    if (!(b_c > a_c) || !(ma > target)) {
        *marginal = ma;
        return a_c;
    }
    double mb = bd_goal_mean_marginal(draws, S, n, lo, hi, b_c / 100, scratch);
    if (mb >= target) {
        *marginal = mb;
        return b_c;
    }
    /* invariant: m(a) >= target > m(b) */
    double tol = fmax(1.0, GOAL_REL_TOL * b_c);
    for (int it = 0; it < GOAL_MAX_IT && b_c - a_c > tol; it++) {
        double mid = floor(0.5 * (a_c + b_c));
        if (!(mid > a_c && mid < b_c)) break;
        double m = bd_goal_mean_marginal(draws, S, n, lo, hi, mid / 100, scratch);
        if (m >= target) { a_c = mid; ma = m; }
        else b_c = mid;
    }
    *marginal = ma;
    return a_c;
}
