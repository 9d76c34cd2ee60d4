/* whatif.h: the counterfactual what-if of engine/sim/ (docs/ARCHITECTURE.md):
 * an environment fitted from a log with the engine's own models (fit.c),
 * environments drawn from that fit's posterior that answer a cycle's spend
 * with events (env.c), and a config played closed-loop against one of them
 * through the engine's real path (loop.c): its guardrails, kill-switch,
 * modes, fault detector and delivery learner see the spend that config
 * itself decided, never the spend of the policy the log was recorded under.
 *
 * What the environment assumes (docs/OPERATORS.md "What-if"): per channel
 * the response curve of the engine's model (one posterior draw per
 * environment), the learned seasonal profile and reporting lag, the value
 * per conversion, its spread and the overdispersion of the log's data, and
 * the delivery caps the log's own replay learned (only where it showed
 * under-delivery). Nobody acts in it: proposals are not approved, a kill is
 * not resumed. Everything is a function of (log, configs, seed, draw):
 * byte-identical whatever the thread count. */
#ifndef BUDGETD_WHATIF_H
#define BUDGETD_WHATIF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "budgetd/alloc.h"
#include "budgetd/config.h"
#include "budgetd/event.h"
#include "budgetd/model.h"
#include "budgetd/season.h"

/* ---- the fit (fit.c) -------------------------------------------------------- */

/* One channel of the log (one that reported) as the fit learned it. */
typedef struct {
    char name[BD_NAME_MAX + 1];
    int64_t first, last;          /* its first and last cycle with data */
    int cycles;                   /* cycles with data */
    bd_prior_t prior;             /* the posterior at the end of the log, no forgetting */
    bd_model_state_t model;
    bd_season_profile_t season;   /* its seasonal profile (pooled with the portfolio's) */
    double spend, conversions, revenue, clicks, impressions; /* totals of the log */
    double xbar;                  /* mean spend of the cycles the response was fitted on */
    double value;                 /* revenue per conversion (the model's prior value without data) */
    double value_shape;           /* Gamma shape of one conversion's value (spread of the log's) */
    double od;                    /* CV of a cycle's rate multiplier (overdispersion of the log's
                                   * conversions around the fitted curve; 0: Poisson) */
    int lag_h;                    /* last reporting delay with mass, cycles (0: all on time) */
    double *lag_pmf;              /* lag_h + 1 shares of an interval's conversions by delay */
    float *cap;                   /* per cycle c0..c1: the delivery cap the log's replay had
                                   * learned (0: none); NULL when it never had one or the
                                   * replay did not match the log (caps_used) */
} bd_fit_channel_t;

typedef struct {
    char name[BD_NAME_MAX + 1];
    bd_model_kind_t model;        /* the engine's model the curves come from */
    bd_objective_t objective;     /* what the fitted curves count (the base config's) */
    bd_season_cfg_t season;       /* which profile parts are in use */
    int64_t first, last;          /* first and last cycle with data */
    double replay_match;          /* share of the channel-cycles whose reported spend the replay
                                   * of the base config allocated (within its delivery
                                   * tolerance); NAN: no such cycle (caps off) */
    double replay_over;           /* share reported above the allocation beyond the tolerance */
    bool caps_used;               /* the replay matched the log (match >= BD_FIT_MATCH_MIN, over
                                   * <= BD_FIT_OVER_MAX): its learned caps are the environment's */
    bd_fit_channel_t *ch;
    size_t n;
} bd_fit_portfolio_t;

/* A log was recorded under the base config when the base's replay
 * allocated what the channels reported: then a channel reports less than
 * its allocation only when it could not spend it (a cap), and more almost
 * never. A log recorded under another policy reads as under- and
 * over-delivery alike; its "caps" would be that policy's allocations. */
#define BD_FIT_MATCH_MIN 0.25
#define BD_FIT_OVER_MAX 0.05

/* The fitted environment of a log: cycles c0..c1 of cycle seconds each;
 * portfolios sorted by name. */
typedef struct {
    int64_t cycle, c0, c1;
    bd_fit_portfolio_t *pf;
    size_t n;
    uint64_t lines, accepted;     /* log lines read, events the fit's engine took */
} bd_fit_t;

typedef struct bd_fitter bd_fitter_t;

/* Starts a fit on base, the config the log was recorded under: the log is
 * replayed through two engines, one on base with forgetting off, kill
 * triggers off, seasonality and lag learned (auto) where base has them off
 * (its final posteriors are the fit), one on base as written (its decisions
 * reproduce the allocations that ran, so the delivery caps it learns stand
 * for real under-delivery). base must outlive the fitter. */
bd_fitter_t *bd_fit_begin(const bd_config_t *base);
/* One log line (JSON Lines, any record the engine reads). */
void bd_fit_line(bd_fitter_t *f, const char *line, size_t len);
/* Closes the last cycle, summarises and frees f. BD_ERR_INVALID (errbuf)
 * when the log held no data event the base config accepts. */
bd_err_t bd_fit_end(bd_fitter_t *f, bd_fit_t **out, char *errbuf, size_t errlen);
void bd_fit_free(bd_fit_t *fit);

/* The response curve of a draw in conversions per cycle (before the seasonal
 * factor): the posterior draw c of the fitted model in objective units,
 * divided by the value per conversion when the objective is revenue. */
void bd_fit_conv_curve(const bd_fit_portfolio_t *fp, const bd_fit_channel_t *fc, const bd_curve_t *c,
                       bd_curve_t *out);

/* ---- one environment (env.c) ------------------------------------------------ */

/* A late piece of an interval's conversions, due at a later cycle. */
typedef struct {
    int64_t due, origin;
    uint32_t ch;
    double conversions, revenue;
} bd_env_piece_t;

typedef struct {
    char name[BD_NAME_MAX + 1];
    const bd_fit_channel_t *fc;   /* NULL: listed in the config but not in the log (prior draw) */
    bd_curve_t conv;              /* this draw: conversions per cycle at spend x (season 1) */
    double value, value_shape, od;
    double clicks_per_conv, imps_per_click; /* traffic of the log (0: none reported) */
    int64_t first, last;          /* cycles it exists */
    uint64_t key;                 /* its random numbers (hash of the names) */
    bool split;                   /* v2 nested arms: the config splits it among arms, so it
                                   * spends nothing itself: its arms spend its amount */
    long head;                    /* v2: an arm of the config: the index of its channel; -1 */
} bd_env_channel_t;

typedef struct {
    const bd_fit_portfolio_t *fp;
    const bd_portfolio_cfg_t *pc; /* the config's (NULL: unlisted) */
    const bd_policy_t *pol;       /* NULL: the config does not manage the portfolio */
    bd_env_channel_t *ch;
    size_t n;
    bd_env_piece_t *pend;         /* late pieces not yet reported */
    size_t n_pend, cap_pend;
} bd_env_portfolio_t;

typedef struct {
    const bd_fit_t *fit;
    const bd_config_t *cfg;
    uint64_t seed;
    int draw;
    bd_env_portfolio_t *pf;       /* the fit's portfolios, same order */
    size_t n;
    bd_event_t *ev;               /* the events of the last bd_env_cycle */
    size_t n_ev, cap_ev;
    gsl_rng *rng;                 /* reseeded per (draw, channel, cycle) */
} bd_env_t;

/* Draw `draw` of the fit for config cfg (seeded by seed): each channel's
 * curve is a posterior draw (a prior draw of the config's model for a
 * listed channel, or v2 a listed arm, the log never saw). Curves do not
 * depend on cfg for the channels of the log, so every config of a draw
 * meets the same world. With nested arms (v2) the spending units are the
 * arms: a channel the config splits among arms (split) spends nothing
 * itself, each arm knows its channel (head). */
bd_env_t *bd_env_new(const bd_fit_t *fit, const bd_config_t *cfg, uint64_t seed, int draw);
void bd_env_free(bd_env_t *env);

/* Channel c's seasonal factor for the interval of cycle t (1: flat). */
double bd_env_factor(const bd_env_t *env, const bd_env_channel_t *c, int64_t t);
/* The delivery cap of channel c at cycle t (INFINITY: none). */
double bd_env_cap(const bd_env_t *env, const bd_env_channel_t *c, int64_t t);
/* Expected objective of the config (revenue or conversions) of spend x on
 * channel c at cycle t: the draw's curve times the seasonal factor. */
double bd_env_value(const bd_env_t *env, const bd_env_portfolio_t *p, const bd_env_channel_t *c,
                    int64_t t, double x);

/* The reports of portfolio pf for cycle t when its channels spent
 * spend[0..n) (whole cents; 0 for a channel not present): per present
 * channel one event for the interval (its spend, the conversions reported
 * on time, their revenue, traffic), then the late pieces of earlier
 * intervals due at t (events with their interval's ts, spend 0). Outcomes
 * are drawn per (seed, draw, channel, cycle): a Gamma rate multiplier
 * (overdispersion), Poisson conversions, Gamma values, the delay of each
 * conversion by the fitted lag. Returns the count; the events are in
 * env->ev until the next call. */
size_t bd_env_cycle(bd_env_t *env, size_t pf, int64_t t, const double *spend);

/* ---- the closed loop (loop.c) ----------------------------------------------- */

/* One portfolio of one run: sums over its cycles first..last. */
typedef struct {
    int64_t first, last;          /* cycles run (last < first: not managed by the config, or
                                   * refused by its engine: max_portfolios) */
    size_t n;                     /* channels (the env's) */
    double ret;                   /* expected objective at the spend made (the draw's curves) */
    double oracle;                /* the same of the exact water-fill of the draw's curves in the
                                   * config's box (min, max, pins, caps) and budget, per cycle */
    double spend;                 /* spent (allocation in force while active, within caps) */
    double moved;                 /* sum over cycles of |change of the allocation in force| */
    double budget;                /* the config's budget per cycle */
    int trips;                    /* kill-switch trips */
    int killed, held;             /* cycles killed, held */
    int decisions;                /* decisions after the initial one */
    char kill_reason[160];        /* the first trip's reason ("" none) */
    unsigned bound[BD_BOUND__COUNT]; /* channel-decisions each bound bound (after the initial) */
    float *x;                     /* (last - first + 1) x n: spend per cycle and channel */
} bd_loop_pf_t;

typedef struct {
    bd_loop_pf_t *pf;             /* the fit's portfolios, same order */
    size_t n;
} bd_loop_result_t;

/* Plays cfg against draw `draw` of fit: every cycle the allocation in force
 * is spent (nothing while the portfolio is held or killed by status, only
 * up to a delivery cap), bd_env_cycle's events go through bd_engine_apply,
 * the cycle's watermark closes it and the engine decides the next
 * allocation. Deterministic in (fit, cfg, seed, draw). BD_ERR_CONFIG when
 * cfg's cycle differs from the fit's; BD_ERR_INVALID when the engine did
 * not decide a cycle it should have (errbuf). */
bd_err_t bd_loop_run(const bd_fit_t *fit, const bd_config_t *cfg, uint64_t seed, int draw,
                     bd_loop_result_t *res, char *errbuf, size_t errlen);
void bd_loop_result_free(bd_loop_result_t *res);

/* Progress of bd_loop_run_all: runs done of total (called under a lock). */
typedef void (*bd_loop_progress_fn)(void *ctx, size_t done, size_t total);

/* Every config against draws 0..draws-1 on `threads` threads; res has
 * ncfg x draws entries, res[c * draws + d]. The results do not depend on
 * the thread count. The first error stops the runs not yet started. */
bd_err_t bd_loop_run_all(const bd_fit_t *fit, const bd_config_t *const *cfgs, size_t ncfg,
                         int draws, uint64_t seed, int threads, bd_loop_progress_fn progress,
                         void *ctx, bd_loop_result_t *res, char *errbuf, size_t errlen);

/* ---- summaries over draws (loop.c) ------------------------------------------ */

/* The median and the 90% interval (5% and 95% quantiles, stats.h). */
typedef struct {
    double median, lo, hi;
} bd_interval_t;

/* One config's metrics over its draws: per draw the sums over the
 * portfolios it manages (pf < 0) or over one portfolio (pf = index). */
typedef struct {
    bd_interval_t ret, spend, roas, regret, kills, killed, volatility;
    bd_interval_t bound[BD_BOUND__COUNT]; /* share of channel-decisions each bound bound */
    int draws;
} bd_loop_summary_t;

/* Summarises runs[0..draws) of one config. roas: return / spend (0 without
 * spend); regret: 1 - return / oracle; volatility: the share of the budget
 * moved per cycle (moved / budget / decisions). */
void bd_loop_summarise(const bd_loop_result_t *runs, int draws, long pf, bd_loop_summary_t *out);

/* The median and 90% interval of v[0..n) (reorders v). */
bd_interval_t bd_interval_of(double *v, size_t n);

#endif
