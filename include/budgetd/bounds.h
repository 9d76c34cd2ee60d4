/* bounds.h: the guardrail box of a channel and the pin rule, on the cent
 * lattice: the one definition behind the allocator (engine/core/alloc.c),
 * `budgetd check` (engine/config/policy.c) and `budgetd pin`
 * (engine/cmd/ops.c), so that they can never disagree. Money is whole
 * cents held in doubles (exact below 2^53), INFINITY for "uncapped". The
 * rules themselves are written in budgetd/alloc.h. */
#ifndef BUDGETD_BOUNDS_H
#define BUDGETD_BOUNDS_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include "budgetd/common.h"
#include "budgetd/config.h"

#define BD_BOUNDS_CENT_EPS 1e-6 /* slack when rounding a bound to the cent lattice */

/* Lower bounds round up and upper bounds down, so the cent box lies inside
 * the real one. */
static inline double bd_bounds_lo_cents(double v) { return ceil(v * 100 - BD_BOUNDS_CENT_EPS); }
static inline double bd_bounds_hi_cents(double v)
{
    return isinf(v) ? v : floor(v * 100 + BD_BOUNDS_CENT_EPS);
}

/* cap_i of the rules (currency): a lab channel's cap until promoted, a
 * pinned one's max. */
double bd_bounds_chan_cap(const bd_policy_t *pol, const bd_channel_cfg_t *c, bool promoted);
/* min_c and cap_c of channel c under the rules (a pinned channel's cap is
 * its max). */
void bd_bounds_chan_box_c(const bd_policy_t *pol, const bd_channel_cfg_t *c, bool promoted,
                          bool pinned, double *min_c, double *cap_c);
/* Channel i's pin in cents, NAN when it has none (pin NULL: none). */
double bd_bounds_pin_cents(const double *pin, size_t i);
/* The total's range in cents given the caps' sum: min(budget, caps) at
 * both ends for a fixed budget; a budget range's min and max (v2), each
 * capped by the caps. */
void bd_bounds_total_range_c(const bd_policy_t *pol, double sumcap, double *lo, double *hi);

/* Whether pins (n entries, NAN: not pinned; NULL: none) are feasible with
 * the guardrails of the rules above (each pin within [min, cap], the pins
 * plus the others' mins at most the total, the pins plus the others' caps at
 * least the total). promoted may be NULL (lab channels unpromoted: their
 * lab cap). BD_OK, or BD_ERR_INVALID with errbuf naming the channel or the
 * sums ("channel 'c': pin 900.00 above max 800.00", "pins 7000.00 plus the
 * other channels' mins 4000.00 exceed the total 10000.00", ...). The one
 * feasibility rule behind the allocator, `budgetd check` and `budgetd pin`. */
bd_err_t bd_bounds_check_pins(const bd_policy_t *pol, const bd_channel_cfg_t *const *cfg, size_t n,
                             const double *pin, const bool *promoted, char *errbuf, size_t errlen);

/* v2 nested arms (docs/CONTRACT.md §11.4): whether arms arm[0..n) of one
 * channel, with pins pin[] in force (NAN: none; NULL: none), can split every
 * amount in [lo, hi] the channel may get (its min and max, or its pin at
 * both ends when pinned): their mins sum to at most lo, their maxes to at
 * least hi, their pins feasible by bd_bounds_check_pins with lo and with hi
 * as a fixed budget (pol's other guardrails; an infinite end is skipped).
 * BD_OK, or BD_ERR_INVALID with errbuf saying the first failure ("its arms'
 * mins sum to 120 > its min 100 (...)", "infeasible arm pins at its min 0:
 * ..."). The one rule behind `budgetd check` and `budgetd pin`. */
bd_err_t bd_bounds_check_arms(const bd_policy_t *pol, const bd_channel_cfg_t *const *arm, size_t n,
                              const double *pin, double lo, double hi, bool pinned, char *errbuf,
                              size_t errlen);

#endif
