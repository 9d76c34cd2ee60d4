/* goal.h: the total of a decision under a target goal (v2 `goal:
 * {target_roas: R}` or `{target_cpa: C}`): the total within the budget
 * range where the posterior-sampled marginal return of the last unit meets
 * the target. Pure numerics on curves; alloc.c places it among the
 * guardrails (alloc.h "Goals"). */
#ifndef BUDGETD_GOAL_H
#define BUDGETD_GOAL_H

#include <stddef.h>
#include "budgetd/model.h"
#include "budgetd/waterfill.h"

/* Doubles of scratch the functions below need for n channels. */
#define BD_GOAL_SCRATCH(n) ((n) + BD_WATERFILL_SCRATCH(n))

/* The marginal return of the last unit at total T (currency) of one draw's
 * curves c over the box [lo, hi]: the water-filling multiplier, i.e. the
 * largest f_i'(x_i) among the channels that could take more at the
 * optimal split for T (every channel strictly inside its box has exactly
 * that f'); with no channel left with room, the smallest f_i'(x_i) among
 * those that spend; 0 when nothing spends. A POWER curve's f' at less
 * than a cent is taken at one cent (model.h's "first cent"). */
double bd_goal_marginal(const bd_curve_t *c, const double *lo, const double *hi, size_t n,
                        double T, double *scratch);

/* The mean of bd_goal_marginal over S draws (draws: S x n, row-major). */
double bd_goal_mean_marginal(const bd_curve_t *draws, size_t S, size_t n, const double *lo,
                             const double *hi, double T, double *scratch);

/* The total in whole cents within [a_c, b_c] (a_c <= b_c, whole cents)
 * whose mean marginal meets target: a_c when the marginal there is
 * already at or below the target (even the least spend earns no more),
 * b_c when it is still at or above it at b_c, else the largest total
 * found by bisection with a mean marginal >= target, to within
 * max(1 cent, 1e-4 of b_c). *marginal receives the mean marginal at the
 * total returned. */
double bd_goal_total(const bd_curve_t *draws, size_t S, size_t n, const double *lo,
                     const double *hi, double a_c, double b_c, double target, double *marginal,
                     double *scratch);

#endif
