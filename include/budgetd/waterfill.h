/* waterfill.h: the exact concave allocator under alloc.c: maximise
 * sum f_i(x_i) over a box with a fixed total. Pure numerics on response
 * curves; the guardrails around it live in alloc.h. */
#ifndef BUDGETD_WATERFILL_H
#define BUDGETD_WATERFILL_H

#include <stddef.h>
#include "budgetd/model.h"

/* Exact maximiser of sum f_i(x_i) s.t. sum x_i = budget, lo <= x <= hi.
 * When sum(hi) < budget, returns x = hi; when sum(lo) > budget (an
 * infeasible box: the caller's bug), x = lo. Channels with a = 0 take lo
 * unless the others cannot absorb the budget. Closed form between
 * breakpoints for all-EXP curves, safeguarded Newton/bisection on the
 * multiplier otherwise. No allocation for n <= 64. */
void bd_waterfill_solve(const bd_curve_t *curves, const double *lo, const double *hi,
                        size_t n, double budget, double *x);
/* Same without any allocation: scratch holds BD_WATERFILL_SCRATCH(n) doubles. */
#define BD_WATERFILL_SCRATCH(n) (4 * (n))
void bd_waterfill_scratch(const bd_curve_t *curves, const double *lo, const double *hi,
                                size_t n, double budget, double *x, double *scratch);
/* S solves over the same box and total, one per row of rows (S x n,
 * row-major: draws of one posterior), each solution added into sum in row
 * order (sum[i] += x_s[i]: the sum of a Thompson decision's water-fills);
 * x (n) and scratch (BD_WATERFILL_SCRATCH(n)) are the caller's. Each
 * solution is the exact maximiser bd_waterfill_scratch finds (up to
 * rounding: the search starts at the previous row's multiplier). */
void bd_waterfill_sum(const bd_curve_t *rows, size_t S, const double *lo, const double *hi,
                      size_t n, double budget, double *sum, double *x, double *scratch);
/* The bisection solver alone (any curves); a cross-check of the closed form. */
void bd_waterfill_bisect(const bd_curve_t *curves, const double *lo, const double *hi,
                               size_t n, double budget, double *x);

#endif
