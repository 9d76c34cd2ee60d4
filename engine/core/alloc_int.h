/* alloc_int.h: the guardrail arithmetic on the cent lattice shared by the
 * allocator (alloc.c) and the initial split and pin rule (alloc_cents.c).
 * Private to engine/core; the rules are alloc.h's. Money is whole cents
 * held in doubles (exact below 2^53), INFINITY for "uncapped". */
#ifndef BUDGETD_ALLOC_INT_H
#define BUDGETD_ALLOC_INT_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include "budgetd/alloc.h"

#define BD_ALLOC_CENT_EPS 1e-6 /* slack when rounding a bound to the cent lattice */

/* Lower bounds round up and upper bounds down, so the cent box lies inside
 * the real one. */
static inline double bd_alloc_lo_cents(double v) { return ceil(v * 100 - BD_ALLOC_CENT_EPS); }
static inline double bd_alloc_hi_cents(double v)
{
    return isinf(v) ? v : floor(v * 100 + BD_ALLOC_CENT_EPS);
}

/* cap_i of the rules (currency): a lab channel's cap until promoted, a
 * pinned one's max. */
double bd_alloc_chan_cap(const bd_policy_t *pol, const bd_channel_cfg_t *c, bool promoted);
/* min_c and cap_c of channel c under the rules (a pinned channel's cap is
 * its max). */
void bd_alloc_chan_box_c(const bd_policy_t *pol, const bd_channel_cfg_t *c, bool promoted,
                         bool pinned, double *min_c, double *cap_c);
/* Channel i's pin in cents, NAN when it has none (pin NULL: none). */
double bd_alloc_pin_cents(const double *pin, size_t i);
/* The total's range in cents given the caps' sum: min(budget, caps) at
 * both ends for a fixed budget; a budget range's min and max (v2), each
 * capped by the caps. */
void bd_alloc_total_range_c(const bd_policy_t *pol, double sumcap, double *lo, double *hi);
/* Whole cents in [lo, hi] summing to total, nearest to xr by largest
 * remainder (key, order: n scratch). */
void bd_alloc_round_cents(const double *xr, const double *lo, const double *hi, size_t n,
                          double total, double *out, double *key, size_t *order);
/* clip(base + mu, lo, hi) summing to total, in whole cents: the projection
 * of base onto box and total (xr, key, order: n scratch). */
void bd_alloc_level_fill(const double *base, const double *lo, const double *hi, size_t n,
                         double total, double *out, double *xr, double *key, size_t *order);

#endif
