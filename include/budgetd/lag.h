/* lag.h: a channel's conversion reporting lag (docs/TIME.md).
 *
 * Platforms report an interval's conversions over the following cycles and
 * attribute them back to the interval. The channel keeps, per arrival age
 * (cycles after the interval closed; 0 = on time), the discounted units that
 * arrived at that age. In a steady stream every cycle sees exactly one
 * interval at each age, so these totals estimate the reporting-delay
 * distribution without censoring bias; F(a) is the share reported by age a
 * (1 past the horizon, and 1 everywhere while nothing arrived late).
 *
 * The response model then treats an interval's reports as a thinned Poisson
 * observation: the closed interval is observed with its exposure times F(0),
 * and each later cycle credits the exposure that matured meanwhile
 * (F(a+1) - F(a) of every pending interval's exposure). The reports that
 * arrive late add their units without exposure. Summed over the horizon an
 * interval contributes its full units and its full exposure, so nothing is
 * lost or counted twice; meanwhile a slow-attributing channel is not read as
 * a weak one. Pending intervals are kept per age bin (spend and
 * season-weighted spend), ageing uniformly within a bin: O(bins) memory.
 * Pure, POD, checkpointed by copying bytes. */
#ifndef BUDGETD_LAG_H
#define BUDGETD_LAG_H

#include <stdint.h>

#define BD_LAG_BINS 13        /* age bins: 0 (on time), then 12 geometric bins */
#define BD_LAG_PRIOR 2.0      /* on-time pseudo-units: F = 1 until late data outweighs it */
#define BD_LAG_FORGET 0.995   /* per cycle (~200 cycles of memory) */

typedef struct {
    float n[BD_LAG_BINS];     /* discounted units reported at each age bin */
    float x[BD_LAG_BINS];     /* spend of the intervals pending in each age bin */
    float sx[BD_LAG_BINS];    /* the same, each weighted by its seasonal multiplier */
    float pad_;
} bd_lag_t;

void bd_lag_init(bd_lag_t *l);

/* The bin of a report arriving age cycles after its interval closed. */
int bd_lag_bin(int64_t age);
/* First age of bin b and its width (ages b covers). */
int64_t bd_lag_bin_start(int b);
int64_t bd_lag_bin_width(int b);

/* Records units (negative: a restatement lowered a total) reported at
 * age; bins never go below 0. */
void bd_lag_report(bd_lag_t *l, int64_t age, double units);

/* F(age): share of an interval's final units reported by age (inclusive),
 * linear within a bin; 1 for age >= horizon (cycles) or horizon <= 0. */
double bd_lag_completeness(const bd_lag_t *l, int64_t age, int64_t horizon);

/* One exposure credit of bd_lag_step: give the model spend x, multiplier
 * mult (the exposure that matured, seasonal factor included). */
typedef struct {
    double x, mult;
} bd_lag_credit_t;

/* A cycle closed: every pending interval ages by one cycle. Writes up to
 * BD_LAG_BINS credits (those with a positive multiplier) into out and
 * returns how many; then moves the bins' mass one cycle on and enters the
 * interval just closed (spend x, seasonal multiplier s) at age 0. Also
 * forgets the arrival totals by BD_LAG_FORGET. */
int bd_lag_step(bd_lag_t *l, int64_t horizon, double x, double s, bd_lag_credit_t *out);

/* Drops the exposure still pending (a channel whose late reports will be
 * dropped from now on: decide.c on a data fault), keeping the lag
 * distribution itself. */
void bd_lag_forget_pending(bd_lag_t *l);

#endif
