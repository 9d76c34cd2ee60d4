/* oracle.c: the best allocation the true curves allow under the portfolio's
 * guardrails, the yardstick of regret.
 *
 * Constraints: the box [min_i, max_i] and the total min(budget, sum max_i).
 * The ramp (max_step) is a per-step constraint on the path, not on a single
 * allocation, and lab caps are a learning-time limit: the oracle ignores both
 * and so measures what the guardrails' box and total would allow with
 * perfect knowledge. The maximiser of a separable concave objective over a
 * box and a total is given by KKT: x_i = clip(inv_marginal_i(l)) with the
 * multiplier l that meets the total; bd_waterfill_solve solves that exactly
 * (tests/unit/test_oracle.c checks it against brute force). */
#include "budgetd/alloc.h"
#include "budgetd/waterfill.h"
#include "sim.h"

double sim_value(const bd_curve_t *curves, const double *x, size_t n)
{
    double v = 0;
    for (size_t i = 0; i < n; i++) v += bd_curve_value(&curves[i], x[i]);
    return v;
}

double sim_oracle(const bd_curve_t *curves, const double *lo, const double *hi, size_t n,
                  double budget, double *x)
{
    if (n == 0) return 0;
    bd_waterfill_solve(curves, lo, hi, n, budget, x);
    return sim_value(curves, x, n);
}
