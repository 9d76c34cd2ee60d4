/* fault.h: a channel's data-fault detector (docs/DECISIONS.md "Data
 * faults"). Pure and per channel: decide.c shows it each closed cycle
 * before the model sees it; the detector says whether the cycle may be
 * learned from and whether a named fault starts or ends.
 *
 * It keeps its own model-free baselines, discounted by BD_FAULT_FORGET per
 * normal cycle: conversions per unit of exposure (spend x the interval's
 * expected share: seasonal factor x share reported on time), revenue per
 * conversion, clicks and impressions per unit of spend x seasonal factor.
 * A reported cycle with spend, once BD_FAULT_WARMUP normal cycles are
 * behind the baselines, expects E conversions: the baseline's, scaled down
 * by the cycle's traffic against its baseline (clicks, else impressions)
 * when that is lower, so that a real decline, which takes the traffic down
 * with the conversions, expects few and is followed. Then:
 *  - conversions collapsed: y <= BD_FAULT_COLLAPSE x E, and E makes that
 *    unlikely: the negative-binomial tail P(Y <= y) (mean E, shape
 *    BD_FAULT_SHAPE: ~25% rate uncertainty allowed) below BD_FAULT_TAIL
 *    (E below BD_FAULT_MIN_EXPECTED, or a tail above it: unsure);
 *    - revenue still at least BD_FAULT_REV_OK of its expected value:
 *      `no_conversions` (revenue without conversions);
 *    - else (traffic as before, or not reported): `tracking`;
 *  - conversions not collapsed (at least BD_FAULT_VJ_CONV of them) but
 *    revenue per conversion BD_FAULT_VJ times its baseline or more, or
 *    1/BD_FAULT_VJ or less: `value_jump` (revenue 0: `tracking`).
 * Each suspicious cycle adds its evidence (-log10 of the tail, or for a
 * value jump one per conversion, at most BD_FAULT_STRENGTH_MAX); a fault is
 * flagged when a suspicion's evidence reaches BD_FAULT_SCORE (one cycle of
 * a collapse on a busy channel, up to three or more on a sparse one).
 * `silent`: no report at all for BD_FAULT_SILENT_RUN cycles in a row from
 * a channel that had an allocation and reported in most cycles before
 * (BD_FAULT_SEEN), while another channel of the portfolio reported.
 *
 * Suspicious cycles are never learned from, flagged or not; a fault in
 * force freezes the channel (decide.c shows its model, seasonal profile
 * and lag statistics nothing). The first normal cycle clears it ("learn
 * again from restored data only"). Late reports of the intervals withheld
 * are dropped: a suspicion's from its first interval on; a flagged fault's,
 * every interval before the clear (decide.c dropped the channel's pending
 * exposure when it was flagged). An operator's clear (`budgetd resume P --channel C`) ends
 * the fault and mutes detection until a cycle that is normal by itself, so
 * a change the operator vouches for is learned as real.
 * POD: checkpointed as bytes (checkpoint.c). */
#ifndef BUDGETD_FAULT_H
#define BUDGETD_FAULT_H

#include <stdbool.h>
#include <stdint.h>
#include "budgetd/config.h"
#include "budgetd/model.h"

#define BD_FAULT_FORGET 0.97       /* baselines: ~33 normal cycles of memory */
#define BD_FAULT_WARMUP 12         /* normal cycles before anything is judged */
#define BD_FAULT_COLLAPSE 0.1      /* at most this share of the expected: collapsed */
#define BD_FAULT_MIN_EXPECTED 1.0  /* fewer expected conversions: nothing to judge */
#define BD_FAULT_SHAPE 16.0        /* predictive shape (rate CV 1/sqrt(16) = 25% allowed) */
#define BD_FAULT_TAIL 0.01         /* a cycle is suspicious below this tail probability */
#define BD_FAULT_REV_OK 0.5        /* revenue at least this share of its expected: still there */
#define BD_FAULT_VJ 20.0           /* revenue per conversion off by this factor: a value jump */
#define BD_FAULT_VJ_CONV 3.0       /* conversions needed to judge revenue per conversion */
#define BD_FAULT_STRENGTH_MAX 10.0 /* one cycle's evidence at most */
#define BD_FAULT_SCORE 6.0         /* evidence that flags a fault (a 1e-6 tail) */
#define BD_FAULT_SILENT_RUN 2      /* silent cycles in a row that flag `silent` */
#define BD_FAULT_SEEN 0.8          /* share of allocated cycles reported, to expect a report */
#define BD_FAULT_SEEN_FORGET 0.95

typedef struct {
    uint32_t kind;         /* fault in force (bd_fault_kind_t); BD_FAULT_NONE: none */
    uint32_t suspect;      /* kind under suspicion (withheld, not flagged yet) */
    uint32_t streak;       /* suspicious cycles in a row */
    uint32_t silent;       /* silent cycles in a row */
    uint32_t muted;        /* an operator cleared a fault: no detection until a normal cycle */
    uint32_t n;            /* normal cycles behind the baselines */
    double score;          /* evidence of the suspicion so far */
    double hold;           /* allocation in force in the suspicion's first cycle */
    int64_t from;          /* first interval of the suspicion or the fault */
    int64_t drop_from, drop_to; /* late reports of intervals in [drop_from, drop_to) are dropped */
    double conv, expo;     /* discounted conversions and exposure */
    double rev, rconv;     /* discounted revenue and the conversions behind it */
    double clicks, cspend; /* discounted clicks and the spend (x seasonal factor) behind them */
    double imps, ispend;   /* discounted impressions and the spend (x seasonal factor) behind them */
    double seen;           /* discounted share of allocated cycles with a report */
    double expected;       /* the last judged cycle's expected conversions (messages) */
} bd_fault_t;

/* What the detector sees of one closed cycle of one channel. */
typedef struct {
    const bd_agg_t *agg;   /* the cycle's aggregate (on-time reports) */
    double x;              /* allocation that was in force */
    double mult;           /* the interval's expected share: seasonal factor x on-time share */
    double season;         /* its seasonal factor alone (traffic is not reported late) */
    double floor;          /* smallest allocation expected to spend and report */
    bool others;           /* another channel of the portfolio reported in the cycle */
    int64_t cycle;         /* the interval (closed cycle number) */
    const bd_fault_action_t *act; /* the policy's action per kind (off: not looked for) */
} bd_fault_obs_t;

typedef enum { BD_FAULT_EV_NONE = 0, BD_FAULT_EV_FLAGGED, BD_FAULT_EV_CLEARED } bd_fault_event_t;

void bd_fault_init(bd_fault_t *f);

/* One closed cycle. *learn: whether the model (and the profile and lag
 * statistics) may learn from it. Returns whether a fault was flagged or
 * cleared by it (f->kind then says which is in force). */
bd_fault_event_t bd_fault_observe(bd_fault_t *f, const bd_fault_obs_t *o, bool *learn);

/* An operator's clear at interval cycle: the fault ends, the intervals
 * withheld stay dropped, detection is muted until a normal cycle. */
void bd_fault_operator_clear(bd_fault_t *f, int64_t cycle);

/* Whether a late report of interval `cycle` must be dropped: the channel
 * is under a fault or a suspicion, or the interval was withheld. */
bool bd_fault_drop_late(const bd_fault_t *f, int64_t cycle);

#endif
