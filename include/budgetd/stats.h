/* stats.h: the one quantile of budgetd. Every posterior interval the
 * engine reports (a record's roas_lo/roas_hi on every path, the lab gate's
 * width) is the type 7 quantile below, so the same numbers mean the same
 * thing whichever code path produced them. */
#ifndef BUDGETD_STATS_H
#define BUDGETD_STATS_H

#include <stddef.h>

/* The p-quantile (0 <= p <= 1) of a[0..n), n >= 1: linear interpolation
 * between order statistics ("type 7", R's and NumPy's default): with
 * h = (n-1) p and k = floor(h), a(k) + (h - k) (a(k+1) - a(k)) over the
 * ascending order a(0..n-1). Reorders a (quickselect, O(n) expected,
 * deterministic). */
double bd_stats_quantile(double *a, size_t n, double p);

/* The 5% and 95% quantiles of a[0..n), n >= 1, by the same definition:
 * the 90% interval of S posterior draws. Values equal to two calls of
 * bd_stats_quantile; for the usual sample counts it only keeps a handful
 * of order statistics at each end, in one pass. May reorder a. */
void bd_stats_quantiles_90(double *a, size_t n, double *q05, double *q95);

/* The lower-tail mean of a[0..n), n >= 1 (v2 CVaR): the m = max(1,
 * ceil(alpha n - 1e-9)) smallest values (m at most n), added smallest
 * first, over m. Sorts a. The one CVaR behind the allocator's risk bound
 * and the record's `risk.cvar` on every path (verify.c keeps its own copy
 * on purpose). */
double bd_stats_tail_mean(double *a, size_t n, double alpha);

#endif
