/* season.h: a channel's learned day-part (hour of day) and weekday
 * multipliers of its response (docs/TIME.md, docs/DECISIONS.md "Time
 * structure").
 *
 * Response in interval t = curve(x) * d[hour(t)] * w[dow(t)], hour and day
 * of week in UTC (a profile is learned, so the market's time zone only
 * shifts it). Each bucket's factor is a Gamma-Poisson ratio: observed units
 * over the units the flat model expected, both discounted, with a prior worth
 * BD_SEASON_PRIOR_OBS observations at the portfolio's pooled factor (or 1),
 * (at least BD_SEASON_PRIOR_UNITS expected units, so that a sparse channel
 * leans on the pool), normalised to an exposure-weighted mean of 1 so that the level of the
 * response model and the profile do not trade scale.
 *
 * Whether a profile is used at all is decided by its prequential evidence:
 * each observation scores the factor predicted *before* it against the flat
 * prediction (Poisson log-likelihood ratio over the running dispersion), and
 * the discounted score gates the profile smoothly (auto: weight 0 while the
 * score is <= 0, half at BD_SEASON_GATE nats); a stationary channel's score
 * drifts negative, so no phantom seasonality is applied.
 * Pure, POD, no allocation; checkpointed by copying bytes. */
#ifndef BUDGETD_SEASON_H
#define BUDGETD_SEASON_H

#include <stdint.h>
#include "budgetd/config.h"

#define BD_SEASON_HOURS 24
#define BD_SEASON_DAYS 7
#define BD_SEASON_BUCKETS (BD_SEASON_HOURS + BD_SEASON_DAYS)
#define BD_SEASON_PRIOR_OBS 2.0  /* prior weight of a bucket's factor, in observations ... */
#define BD_SEASON_PRIOR_UNITS 10.0 /* ... and at least this many expected units (sparse channels) */
#define BD_SEASON_FORGET_D 0.999 /* daily statistics forget per observation (~6 weeks of hours) */
#define BD_SEASON_FORGET_W 0.9995 /* weekly ones (~12 weeks: a weekday is one day in seven) */
#define BD_SEASON_SCORE_FORGET 0.995 /* evidence memory (~200 cycles) */
#define BD_SEASON_GATE 4.0       /* auto: evidence (nats) at which a profile is half on */


/* One channel's statistics. o/e: discounted observed and flat-expected units
 * per bucket (hours 0-23, then days Monday=24 .. Sunday=30); en: discounted
 * observation counts of each part (for the prior's scale); score: evidence
 * of each part; disp: running dispersion of the units (Pearson, >= 1). */
typedef struct {
    float o[BD_SEASON_BUCKETS], e[BD_SEASON_BUCKETS];
    float en[2];
    float score[2];
    float disp;
    float pad_;
} bd_season_t;

/* What a decision or an update needs to know of the config. */
typedef struct {
    bd_auto_t daily, weekly;
} bd_season_cfg_t;

void bd_season_init(bd_season_t *s);

/* Hour of day (0-23) and day of week (0 = Monday) of Unix time t, UTC. */
void bd_season_bucket(int64_t t, int *hour, int *dow);

/* Whether a part can exist at all for a cycle of cycle_len seconds: the
 * cycle must be shorter than the period (auto and on both need it). */
bd_season_cfg_t bd_season_effective(bd_season_cfg_t cfg, int64_t cycle_len);

/* A channel's profile as a decision uses it: every bucket's normalised
 * factor (1 for a part that is off) and each part's weight (on: 1, off: 0,
 * auto: the evidence gate). Computed once per channel and decision. */
typedef struct {
    double d[BD_SEASON_HOURS], w[BD_SEASON_DAYS];
    double wd, ww;
} bd_season_profile_t;

/* s's profile; pool, when not NULL, is the portfolio's pooled profile
 * (bd_season_profile of the channels' summed statistics, pool NULL): a
 * bucket's prior is then the pooled factor instead of 1 (partial pooling
 * across the portfolio's channels). */
void bd_season_profile(const bd_season_t *s, const bd_season_profile_t *pool, bd_season_cfg_t cfg,
                       bd_season_profile_t *out);

/* The multiplier for an interval starting at hour/dow: each part's factor
 * raised to its weight. */
double bd_season_apply(const bd_season_profile_t *pr, int hour, int dow);

/* bd_season_apply of s's profile, pooled with the profile of pool's
 * statistics (NULL: none): one-off use and tests. */
double bd_season_factor(const bd_season_t *s, const bd_season_t *pool, bd_season_cfg_t cfg,
                        int hour, int dow);

/* The two parts' weights in [0,1] (record and diagnostics). */
void bd_season_weights(const bd_season_t *s, bd_season_cfg_t cfg, double *wd, double *ww);

/* One closed interval: y observed units, m the units the flat model
 * expected (before this update, reporting completeness applied); prof is
 * s's profile before this observation (the raw factors it predicted).
 * Scores the predicted factors against flat, then updates both parts (each
 * against m times the other part's current factor: backfitting). m <= 0 or
 * a part that is off changes nothing of that part. */
void bd_season_observe(bd_season_t *s, const bd_season_profile_t *prof, bd_season_cfg_t cfg,
                       int hour, int dow, double y, double m);

/* dst += src (pooling across channels). */
void bd_season_add(bd_season_t *dst, const bd_season_t *src);

#endif
