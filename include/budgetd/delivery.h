/* delivery.h: a channel's delivery limit, learned from what it reports
 * spending against what it was allocated (docs/DECISIONS.md "Delivery
 * limits"). Pure and per channel: decide.c feeds it one closed cycle at a
 * time and asks it for the upper bound of the next decision (alloc.h
 * dcap, bound "delivery").
 *
 * A cap is the most a platform spends in a cycle (out of inventory, a bid
 * cap, a learning phase); it varies from cycle to cycle. The learner:
 *  - detects it: BD_DLV_RUN cycles in a row with reported spend below
 *    (1 - tolerance) x allocation (a dark cycle, under BD_DLV_DARK of the
 *    allocation, is an outage, not a level, and does not count; a channel
 *    dark BD_DLV_DARK_RUN cycles in a row is capped at the floor);
 *  - estimates its per-cycle log level: mean mu and variance s2, from the
 *    cycles that spent less than their allocation (each such cycle's spend
 *    is its cap) and from the cycles that spent all of it (the cap was at
 *    least the allocation: the expected log cap above it under the current
 *    estimate enters instead), discounted to about BD_DLV_MEMORY cycles;
 *    the bound is the median exp(mu);
 *  - probes: every BD_DLV_PROBE_EVERY decisions the bound is raised by
 *    max(BD_DLV_PROBE_STEP, 2 sd) in log (the allocator's ramp limits it);
 *    a probe that is spent in full is probed again at twice the step, and
 *    BD_DLV_LIFT full probes in a row lift the cap (a cap still there is
 *    found again by the detection);
 *  - counts over-delivery: cycles that spent more than (1 + tolerance) x
 *    allocation, and the excess of the current run of them (the overspend
 *    trigger of killswitch.h reads it).
 * POD: checkpointed as bytes (checkpoint.c). */
#ifndef BUDGETD_DELIVERY_H
#define BUDGETD_DELIVERY_H

#include <stdbool.h>
#include <stdint.h>

#define BD_DLV_RUN 3            /* under-delivered cycles in a row that make a cap */
#define BD_DLV_DARK 0.05        /* delivered share below which a cycle is dark */
#define BD_DLV_DARK_RUN 24      /* dark cycles in a row that cap a channel at the floor */
#define BD_DLV_MEMORY 24.0      /* cycles the cap estimate remembers */
#define BD_DLV_EXACT 0.005      /* spend this far below the allocation was capped (rounding aside) */
#define BD_DLV_SD0 0.1          /* prior sd of the per-cycle log cap */
#define BD_DLV_SD_MIN 0.02
#define BD_DLV_SD_MAX 0.5
#define BD_DLV_PROBE_EVERY 24   /* decisions between probes */
#define BD_DLV_PROBE_STEP 0.1   /* smallest probe, log units (+10.5%) */
#define BD_DLV_LIFT 2           /* full probes in a row that lift a cap */

typedef struct {
    double mu, s2;         /* log cap: mean and per-cycle variance (valid when capped) */
    double w;              /* weight of the estimate (<= BD_DLV_MEMORY) */
    double ratio;          /* reported spend / allocation of the last closed cycle; NAN: none */
    double excess;         /* sum of (ratio - 1) over the current run of over-delivery */
    double run_log;        /* sum of log spend over the current run of under-delivery */
    double probe;          /* log step of the probe in force (0: none) */
    uint32_t capped;       /* a cap is learned */
    uint32_t under;        /* under-delivered cycles in a row (not yet capped) */
    uint32_t dark;         /* dark cycles in a row */
    uint32_t over;         /* over-delivered cycles in a row */
    uint32_t over_total;   /* over-delivered cycles, ever */
    uint32_t since_probe;  /* decisions since the last probe */
    uint32_t lifted;       /* full probes in a row */
    uint32_t pad_;
} bd_delivery_t;

void bd_delivery_init(bd_delivery_t *d);

/* One closed cycle: x the allocation that was in force, s the spend the
 * channel reported for it; tol the policy's tolerance; floor the smallest
 * allocation worth judging (smaller ones only count over-delivery's
 * absence); learn: caps are learned (delivery.caps auto; off keeps the
 * ratio and the over-delivery count only). */
void bd_delivery_observe(bd_delivery_t *d, double x, double s, double tol, double floor, bool learn);

/* A closed cycle with nothing to judge (no report, a stopped portfolio):
 * no ratio, and a run of over-delivery ends. */
void bd_delivery_none(bd_delivery_t *d);

/* The upper bound of the next decision: INFINITY when uncapped, else the
 * learned cap, or a probe above it (at least cap + probe_min). Advances
 * the probe schedule, so call it once per decision. */
double bd_delivery_bound(bd_delivery_t *d, double probe_min);

/* The learned cap (median per-cycle level), 0 when none. */
double bd_delivery_cap(const bd_delivery_t *d);

/* Whether the current run of over-delivery spent more than limit times
 * the allocation in excess (limit = overspend_ratio - 1; 0 or less: off). */
bool bd_delivery_overspent(const bd_delivery_t *d, double limit);

#endif
