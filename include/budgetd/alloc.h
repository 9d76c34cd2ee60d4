/* alloc.h: Thompson-sampling allocation under guardrails (its stage in the
 * data path: docs/ARCHITECTURE.md). */
#ifndef BUDGETD_ALLOC_H
#define BUDGETD_ALLOC_H

#include <stdbool.h>
#include <gsl/gsl_rng.h>
#include "budgetd/config.h"
#include "budgetd/model.h"

/* Which guardrail bound a channel's spend (record field "bound"). */
typedef enum {
    BD_BOUND_NONE = 0, BD_BOUND_MIN, BD_BOUND_MAX, BD_BOUND_RAMP, BD_BOUND_RISK,
    BD_BOUND_DELIVERY, /* v2: held by its learned delivery cap (delivery.h) */
    BD_BOUND_PIN,      /* v2: pinned to an operator's amount */
    BD_BOUND_FAULT,    /* v2: held at its pre-fault allocation (fault.h) */
    BD_BOUND_BUDGET,   /* v2: moved past its ramp because the ramp boxes could not hold the total */
    BD_BOUND__COUNT /* number of bounds, for tables indexed by bd_bound_t */
} bd_bound_t;
/* The bound's name in records and reports: "none", "min", "max", "ramp",
 * "risk", "delivery", "pin", "fault", "budget" (one table in alloc.c;
 * "none" for an out-of-range value). */
const char *bd_bound_name(bd_bound_t b);
/* The bound called name into *out; false (out untouched) for any other
 * string or NULL. */
bool bd_bound_from_name(const char *name, bd_bound_t *out);

/* Guardrail rules: the spec that alloc.c implements and verify.c re-checks
 * independently. B = pol->budget, prev = allocation in force.
 *  - cap_i = max_i, or for a `lab` channel not yet promoted
 *    min(max_i, max(min_i, lab.cap_share * B)).
 *  - ramp: step_i = max(max_step * prev_i, 0.01 * B); the ramp box is
 *    [prev_i - step_i, prev_i + step_i] intersected with [min_i, cap_i]; where
 *    that is empty the config bound wins (min_i or cap_i alone).
 *  - if the ramp box cannot hold the total (sum lo > B or sum hi < target),
 *    the ramp is dropped for that decision and the box is [min_i, cap_i].
 *  - total = min(B, sum cap_i); sum x = total to the cent; x in cents.
 *  - risk: unless risk_held, the fraction of draws s with
 *    sum_i f_s,i(x_i) < floor * total is <= max_prob; and (v2, with
 *    risk.cvar.roas_floor F > 0) the CVaR is >= F: with R_s = sum_i
 *    f_s,i(x_i), m = max(1, ceil(alpha S - 1e-9)) and R_(1) <= ... the
 *    sorted returns, CVaR = (R_(1) + ... + R_(m)) / m / total (added in
 *    that order; at total 0 nothing is at risk). The risk move and the
 *    hold work on both together.
 *  - kept (min_change): x == prev exactly.
 *  - cents: every bound is applied on the cent lattice, lower bounds rounded
 *    up and upper bounds down: lo_c = ceil(100 lo - 1e-6), hi_c =
 *    floor(100 hi + 1e-6); total_c = min(round(100 B), sum cap_c). A ramp box
 *    "holds the total" when sum lo_c <= total_c <= sum hi_c. An empty ramp
 *    box becomes [cap_c, cap_c] when its rounded-up low end
 *    ceil(100 (prev_i - step_i) - 1e-6) > cap_c, else [min_c, min_c].
 *  - a min above its cap or sum min_c > total_c is refused (BD_ERR_INVALID):
 *    infeasible guardrails are a config error, never clamped at run time.
 *  - prev == NULL (no allocation in force): no ramp, no min_change.
 * Pins, fault holds and delivery caps (v2; docs/DECISIONS.md "Delivery
 * limits, data faults, pinned channels"):
 *  - pin_i (hard): the channel spends exactly pin_c = rint(100 pin_i) cents.
 *    Its cap_i is max_i (a pin supersedes the lab cap) and its box, ramp box
 *    included, is [pin_c, pin_c]. Pins are feasible when every pin lies in
 *    [min_c, cap_c] and sum pin_c + sum over the others of min_c <= total_c
 *    <= sum pin_c + sum over the others of cap_c (bd_bounds_check_pins);
 *    infeasible pins are refused (BD_ERR_INVALID) like infeasible guardrails.
 *  - hold_i (soft, a channel under a data fault): after the box, the channel
 *    is fixed at h = its hold in cents clipped to its box; when the holds
 *    leave the box unable to hold the total they are all dropped.
 *  - dcap_i (soft, a learned delivery cap): after the holds, the upper end
 *    becomes max(lo_c, floor(100 dcap_i)) when that is lower, so a cap cut
 *    never moves faster than the ramp; when the lowered ends sum below the
 *    total, they are raised back toward their box (equal shares of what is
 *    missing, in index order) until they hold it.
 *  - holds and delivery caps stay inside the box of the rules above, so the
 *    verifier checks pins and the hard rules only.
 * Goals (v2; docs/CONTRACT.md §11, docs/DECISIONS.md "Goals"):
 *  - with a budget range (pol->budget_range, B = its max) the total is any
 *    whole-cent amount in [Tmin_c, Tmax_c], Tmax_c = min(round(100 B), sum
 *    cap_c), Tmin_c = min(round(100 min), sum cap_c): this replaces "total
 *    = min(B, sum cap_i)" everywhere above (ramp, risk, min_change, pins:
 *    sum pin_c + the others' min_c <= Tmax_c and sum pin_c + the others'
 *    cap_c >= Tmin_c). sum min_c > Tmax_c is refused. The ramp box "holds
 *    the total" when sum lo_c <= sum x <= sum hi_c; the allocator keeps the
 *    total inside [sum lo_c, sum hi_c] whenever that meets the range, so
 *    a total moves only as far as the channels' ramps let it.
 *  - the total itself is the goal's (goal.h): the largest total in the
 *    range (and the ramp's part of it) whose mean over the draws of the
 *    water-filling multiplier is at least the target (target_roas R, or
 *    1/C for target_cpa C, in objective units per unit spend); the total
 *    is then split as a fixed budget would be. min_change keeps prev when
 *    prev is valid (in the box, its sum in the range) and close enough;
 *    prev's own total then stays. */

/* One decision's input. Arrays have n entries; cfg[i] never NULL. */
typedef struct {
    size_t n;
    const bd_policy_t *pol;             /* budget, samples, max_step, ... */
    const bd_channel_cfg_t *const *cfg; /* per channel guardrails */
    const bd_model_ops_t *ops;
    const bd_model_state_t *states;
    const bd_prior_t *priors;
    const double *prev;                 /* allocation in force */
    const double *safe;                 /* safe reference (last that met the risk bound, else initial);
                                         * projected into the box. NULL: prev is used */
    const bool *promoted;               /* lab channels already past the gate */
    gsl_rng *rng;                       /* seeded per (seed, portfolio, cycle) by the caller */
    const double *mult;                 /* per channel response multiplier of the interval
                                         * decided for (its seasonal factor); NULL: 1 */
    const double *pin;                  /* per channel pinned spend, NAN: none; NULL: no pins */
    const double *hold;                 /* per channel fault hold, NAN: none; NULL: none */
    const double *dcap;                 /* per channel delivery cap, INFINITY: none; NULL: none */
} bd_alloc_input_t;

/* One decision's output; the caller allocates the arrays (n entries). */
typedef struct {
    double *x;                /* new spend per channel, cents, sums to total */
    bd_bound_t *bound;
    double *mean_roas, *roas_lo, *roas_hi; /* posterior ROAS at x, 90% interval */
    bool *promoted;           /* lab gate state after this decision */
    double total;             /* sum of x: the budget, or the caps' sum when lower; with a
                               * goal (v2) the total chosen in the budget range */
    bool capped;              /* total < budget because of max caps */
    bool kept;                /* min_change hysteresis kept prev unchanged */
    bool risk_held;           /* even the safe reference breaks the risk bound: x is
                               * prev when prev is valid under box and total (hold),
                               * else the projected safe reference */
    double p_below_floor;     /* P(portfolio ROAS(x) < floor) over the draws */
    double cvar;              /* v2: mean portfolio ROAS of the worst risk.cvar.alpha share of
                               * the draws at x; NAN when CVaR is off or the total is 0 */
    bool cvar_bound;          /* v2: the candidate broke the CVaR floor (the risk move or
                               * hold was, at least partly, for it) */
    double marginal;          /* v2 goal: mean over the draws of the marginal return of the
                               * last unit at the total (goal.h); NAN with goal budget */
    /* The draws used (samples x n, row-major), kept for the verifier. Owned
     * by the output; freed by bd_alloc_output_free. n_draws is the number of
     * rows (samples). A caller may keep the output for the next decision
     * (decide does: its buffers are reused), so zero-initialise it before
     * the first call. */
    bd_curve_t *draws;
    size_t n_draws;
    /* The allocator's workspace, owned and reused like draws (grown when a
     * decision needs more, freed by bd_alloc_output_free): a caller that
     * keeps one output across decisions spares a malloc and a free of a
     * few KB per decision, and the page faults of a heap top glibc keeps
     * trimming and growing back (issue 15: ~9% of replay's CPU). */
    void *ws;
    size_t ws_cap, draws_cap;
} bd_alloc_output_t;

/* Decides the next allocation. Returns BD_OK or an error (errbuf). */
bd_err_t bd_alloc_decide(const bd_alloc_input_t *in, bd_alloc_output_t *out,
                         char *errbuf, size_t errlen);
void bd_alloc_output_free(bd_alloc_output_t *out);

/* Initial split (CONTRACT §5): `initial` where given, the rest split equally
 * within [min,max] among the others, in cents. Lab channels take their lab
 * cap (they start unpromoted); sum = min(budget, sum of caps). A channel
 * with a config `pin` (v2) gets exactly its pin, whatever its initial.
 * With a budget range (v2) the sum is the range's min, or the sum of the
 * initials, pins and the other channels' mins when that is more (capped
 * by the range's max and the caps). */
void bd_alloc_initial(const bd_policy_t *pol, const bd_channel_cfg_t *const *cfg, size_t n,
                      double *x);


#endif
