/* sim.h: the closed-loop simulator of the bench, bench-local.
 *
 * A scenario (YAML, scenario.c) describes hidden true response curves and
 * what happens to them; the truth (sim.c) turns it into per-cycle curves and
 * the oracle allocation (oracle.c); sim_run plays one policy (the engine's
 * own decision path in-process, or a baseline) against that truth. Every
 * policy of one run sees the same environment: the same drift path and the
 * same random numbers per (cycle, channel). */
#ifndef BENCH_SIM_H
#define BENCH_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "budgetd/config.h"
#include "budgetd/model.h"

#define SIM_WARMUP 20        /* regret "after the first 20 cycles" */
#define SIM_RECOVER_TOL 0.05 /* recovered: within 5% of the oracle ... */
#define SIM_RECOVER_RUN 5    /* ... for this many consecutive cycles */
#define SIM_REFIT_EVERY 168  /* weekly re-fit baseline: every 7*24 cycles */
#define SIM_EPSILON 0.1
#define SIM_LAG_HORIZON_MAX 720 /* longest reporting delay, cycles */

typedef enum {
    SIM_SHOCK = 0, SIM_BREAK, SIM_RUNAWAY, SIM_CAP, SIM_SILENT, SIM_NOCONV, SIM_VALUE_ERR
} sim_event_kind_t;

/* Something that happens at cycle `cycle` to channel `ch`, for `duration`
 * cycles (0: to the end; shocks are permanent). */
typedef struct {
    sim_event_kind_t kind;
    int cycle;
    int ch;          /* index into the scenario's channels */
    double factor;   /* shock: multiplier of the rate; runaway: spend / allocation;
                      * value_error: multiplier of the reported revenue */
    double amount;   /* cap: most the channel can spend per cycle */
    int duration;    /* cycles it lasts, 0 = to the end */
    int every;       /* cap: in force the first `duration` cycles of every `every` (0: once) */
    int line;
} sim_event_t;

/* Data faults of one (cycle, channel) of the truth, a bit set. They corrupt
 * what is reported, never the true return. */
enum {
    SIM_F_TRACKING = 1, /* conversions and revenue reported as 0 */
    SIM_F_SILENT = 2,   /* no report is sent in this cycle */
    SIM_F_NOCONV = 4,   /* revenue reported, conversions as 0 */
    SIM_F_VALUE = 8,    /* revenue reported times the event's factor */
};

/* A multiplicative profile of the rate by hour of day (UTC) and day of
 * week (0 = Monday); each normalised to mean 1. */
typedef struct {
    bool on;
    double daily[24];
    double weekly[7];
} sim_season_t;

typedef enum { SIM_LAG_NONE = 0, SIM_LAG_GEOMETRIC, SIM_LAG_LOGNORMAL } sim_lag_dist_t;

/* Reporting delay of a channel's conversions and revenue, in cycles: a
 * share pmf[d] of an interval's final numbers is reported d cycles after it
 * (sim_lag_pmf). */
typedef struct {
    sim_lag_dist_t dist;
    double mean;     /* mean delay, cycles */
    double sigma;    /* lognormal: sd of the log delay */
    int horizon;     /* last delay with mass (0: from the distribution) */
} sim_lag_t;

/* A channel's hidden truth: expected conversions rate*k*(1-exp(-e/k)) for
 * effective spend e per cycle (the spend itself, or its adstock with
 * carryover), each worth `value` on average. */
typedef struct {
    char name[BD_NAME_MAX + 1];
    double rate;     /* conversions per unit spend at low spend */
    double value;    /* mean revenue per conversion */
    double k;        /* saturation spend */
    int arrives;     /* first cycle the channel exists (0: from the start) */
    double carryover;/* adstock decay per cycle in [0,1): e_t = (1-d) s_t + d e_{t-1} */
    sim_season_t season;
    sim_lag_t lag;
    const bd_channel_cfg_t *cfg; /* its guardrails: listed or defaults.channel */
    int line;
} sim_channel_t;

/* Named targets a scenario can ask bench_quality to check (`targets:`). */
enum {
    SIM_T_BASE = 1 << 0,          /* `targets: true`: regret <= 5%, 2x below re-fit and static */
    SIM_T_HALF_5PCT = 1 << 1,     /* second-half regret <= 5% (mean over runs) */
    SIM_T_EVENT_5PCT = 1 << 2,    /* every window between change points from the first
                                   * event on: regret <= 5% (mean over runs) */
    SIM_T_AHEAD_FLAT = 1 << 3,    /* second-half regret <= half the best flat split's */
    SIM_T_AHEAD_STATIC = 1 << 4,  /* second-half return above the static split's */
    SIM_T_SLOW_FUNDED = 1 << 5,   /* slowest-reporting channel gets >= 90% of the oracle's spend */
    SIM_T_SEEDS = 1 << 6,         /* second-half regret: mean <= 5%, every run <= 8% */
    SIM_T_DETECT_3 = 1 << 7,      /* every fault flagged within 3 cycles, every run */
    SIM_T_NO_FALSE_ALARM = 1 << 8,/* no fault flag outside a true fault */
    SIM_T_CAP_SETTLES = 1 << 9,   /* capped channel's allocation CV <= 0.1 late in the cap */
    SIM_T_NO_VIOLATIONS = 1 << 10,/* no decided allocation breaks the guardrails */
};

typedef enum { SIM_DELIVER_LATE = 0, SIM_DELIVER_RESTATE } sim_delivery_t;

typedef struct {
    char *path;               /* name used in messages */
    char *name, *description;
    int cycles;
    int runs;                 /* bench_quality's default replications (0: its own default) */
    int64_t start;            /* event time of cycle 0, a multiple of cfg->cycle */
    uint64_t seed;
    char portfolio[BD_NAME_MAX + 1];
    char *config_text;        /* the config YAML the engine runs on (for replay) */
    bd_config_t *cfg;
    const bd_portfolio_cfg_t *pc;
    const bd_policy_t *pol;
    double overdispersion;    /* CV of a per-cycle Gamma multiplier of the rate (0: Poisson) */
    double value_shape;       /* Gamma shape of one conversion's value */
    double value_sigma;       /* > 0: a conversion's value is lognormal with this log-sd instead */
    double cap_sd;            /* log-sd of a delivery cap's per-cycle noise */
    double drift_sigma;       /* sd of the per-cycle log step of each rate */
    double drift_revert;      /* pull of the log multiplier back to 0 per cycle, [0,1) */
    int resume_after;         /* an operator resumes a kill after this many cycles; 0 never */
    bool traffic;             /* reports carry clicks and impressions */
    double cvr, ctr;          /* traffic: conversions per click, clicks per impression */
    sim_delivery_t delivery;  /* how delayed conversions are reported */
    bool targets;             /* `targets: true`: the drift-and-shock targets (SIM_T_BASE) */
    unsigned target_mask;     /* SIM_T_* */
    sim_channel_t *ch;
    size_t n_ch;
    sim_event_t *ev;
    size_t n_ev;
} sim_scenario_t;

/* Loads a scenario file. The config is `config: |` (an embedded config
 * YAML, messages keep the scenario's line numbers) or `config_file: PATH`
 * (relative to the scenario's directory). Errors: BD_ERR_CONFIG or BD_ERR_IO
 * with one "file:line: message" per line in errbuf. */
bd_err_t sim_scenario_load(const char *path, sim_scenario_t **out, char *errbuf, size_t errlen);
/* Same from a string; dir resolves config_file (NULL: current directory). */
bd_err_t sim_scenario_load_string(const char *yaml, size_t len, const char *name, const char *dir,
                                  sim_scenario_t **out, char *errbuf, size_t errlen);
void sim_scenario_free(sim_scenario_t *sc);

/* The best allocation under box [lo,hi] and total min(budget, sum hi) for
 * the curves (exact: KKT water-filling). Writes x, returns sum f_i(x_i). */
double sim_oracle(const bd_curve_t *curves, const double *lo, const double *hi, size_t n,
                  double budget, double *x);
/* sum f_i(x_i). */
double sim_value(const bd_curve_t *curves, const double *x, size_t n);

/* A seasonal profile's multiplier of the rate over the interval
 * [ts, ts + len) (the mean over the hours it covers). */
double sim_season_factor(const sim_season_t *s, int64_t ts, int64_t len);
/* Normalises v[0..n) to mean 1 (false: not all positive). */
bool sim_season_normalise(double *v, size_t n);
/* 1 + amplitude*cos(2 pi (i - peak) / n) for i < n: mean exactly 1. */
void sim_season_cosine(double *v, size_t n, double amplitude, double peak);

/* The reporting-delay distribution of lag over 0..H (returned; H <= 
 * SIM_LAG_HORIZON_MAX): geometric with the given mean, or a lognormal delay
 * of that mean rounded to whole cycles; mass beyond H is folded back
 * (every conversion is reported eventually). pmf has room for
 * SIM_LAG_HORIZON_MAX + 1 entries. With no lag: H = 0, pmf[0] = 1. */
int sim_lag_pmf(const sim_lag_t *lag, double *pmf);

/* The environment of one run, the same for every policy. Arrays are
 * cycles x n_ch, row-major. */
typedef struct {
    int T;
    size_t n;
    uint64_t seed;
    bd_curve_t *curve;     /* true objective curve per cycle and channel (of effective spend) */
    double *rate;          /* true conversion rate (season, drift and shocks applied) */
    unsigned char *present;
    unsigned char *fault;  /* SIM_F_* of the interval's reports */
    double *vfactor;       /* reported revenue multiplier (value_error; 1: none) */
    double *ratio;         /* runaway: actual spend / allocation (1: none) */
    double *cap;           /* most the channel can spend (noise applied; INFINITY: no cap) */
    double *lo, *hi;       /* guardrail box (0,0 for absent channels) */
    double *opt_x;         /* the oracle's allocation */
    double *opt_v;         /* T: the oracle's expected return */
    double *init_x;        /* n: the configured initial split (adstock state before cycle 0) */
    double *flat_x;        /* n: the best time-invariant split in hindsight */
    double flat_v;         /* its expected return over the run, ignoring carryover transients */
} sim_truth_t;

sim_truth_t *sim_truth_new(const sim_scenario_t *sc, uint64_t seed);
void sim_truth_free(sim_truth_t *tr);

/* The best allocation x (n entries) that stays the same in every cycle,
 * knowing the whole run: maximises sum_t sum_i f_ti(min(x_i, cap_ti)) over
 * the box of cycle 0's guardrails (defaults.channel's for arriving
 * channels, which count as capped at 0 before they exist) and the total
 * min(budget, sum hi). Curves must be BD_CURVE_EXP with one k per channel
 * (the simulator's). Returns the objective. */
double sim_flat_split(const sim_scenario_t *sc, const sim_truth_t *tr, double *x);

/* ---- environment ---------------------------------------------------------
 * One policy's run through the truth: each cycle the allocation in force is
 * delivered (caps, runaway ratio), turned into effective spend (adstock),
 * true outcomes are drawn (the generator seeded per run, cycle and channel,
 * so every policy shares its random numbers), faults corrupt what is
 * reported, and the reports due this cycle are handed back: the interval's
 * first report, and the delayed pieces of earlier intervals. */

/* One report a connector sends. `d_*` are what it adds to the interval
 * (late delivery sends these as a new event); `c_*` are the interval's
 * totals so far (restate delivery re-sends the event id with these). */
typedef struct {
    int origin;          /* the interval (cycle) it covers: event ts = its start */
    size_t ch;
    int piece;           /* delay in cycles after the interval; 0 = its first report */
    int rev;             /* 0 for the first report sent of the interval, then 1, 2, ... */
    double d_spend, d_impressions, d_clicks, d_conversions, d_revenue;
    double c_spend, c_impressions, c_clicks, c_conversions, c_revenue;
} sim_report_t;

typedef struct sim_env sim_env_t;

/* cents: spend is reported rounded to cents and outcomes drawn at that
 * spend (what an adapter does; the engine policy); baselines use the exact
 * allocation. */
sim_env_t *sim_env_new(const sim_scenario_t *sc, const sim_truth_t *tr, bool cents);
void sim_env_free(sim_env_t *env);

/* One cycle t with allocation x (scenario order; the caller zeroes absent
 * channels and a stopped portfolio). Fills deliv (spend within the cap,
 * before the runaway ratio; may be NULL) and returns the expected return
 * of the cycle under the true curves at the effective spend. The reports
 * due this cycle are in *rep (valid until the next call). */
double sim_env_step(sim_env_t *env, int t, const double *x, double *deliv,
                    const sim_report_t **rep, size_t *n_rep);

typedef enum {
    SIM_POL_ENGINE = 0, SIM_POL_STATIC, SIM_POL_EQUAL, SIM_POL_REFIT, SIM_POL_EGREEDY,
    SIM_POL_FLAT, SIM_POL__COUNT
} sim_policy_t;
const char *sim_policy_name(sim_policy_t p);

/* Regret decomposition of the engine's decisions (--diag): each variant
 * re-decides the same cycle from the same posterior and is scored under the
 * true curves of the cycle it applies to.
 *  MEAN:      water-fill of the posterior-mean curves, box [min,max] (bias)
 *  MEAN_TRUEK: posterior-mean a with the true k (rate error alone)
 *  MEAN_TRUEA: true a with the posterior-mean k (saturation error alone)
 *  FACTORY:   the allocator without ramp, explore, risk, min_change
 *  EXPLORE:   + explore_share
 *  RISK:      + the risk bound (still no ramp, no min_change)
 *  ENGINE:    the decision actually taken (+ ramp, min_change) */
typedef enum {
    SIM_D_MEAN = 0, SIM_D_MEAN_TRUEK, SIM_D_MEAN_TRUEA, SIM_D_FACTORY, SIM_D_EXPLORE, SIM_D_RISK,
    SIM_D_ENGINE, SIM_D__COUNT
} sim_diag_t;
const char *sim_diag_name(sim_diag_t d);

typedef struct {
    double ret, oracle;            /* expected return summed over all cycles */
    double ret_after, oracle_after;/* over cycles >= SIM_WARMUP */
    double regret, regret_after;   /* normalised: 1 - ret/oracle */
    int recovery;                  /* worst cycles-to-recover over shocks/arrivals; -1 never, -2 none */
    int violations;                /* decided allocations breaking sum<=B, min or max */
    int kill_trips, killed_cycles, held_cycles;
    double overspend;              /* actual spend beyond the allocation (runaway) */
    unsigned resets;               /* engine: model change-point resets, all channels */
    double *rho;                   /* per cycle normalised regret, T entries */
    double *v;                     /* per cycle expected return, T entries */
    double *alloc;                 /* T x n: the allocation in force (0 absent or stopped) */
    double *deliv;                 /* T x n: of it, what the channel could spend (caps) */
    /* engine: fault flags of the decision records. flag[t*n+i] = 1 when the
     * record in force at cycle t names a "fault" for channel i; has_flags:
     * some record carried the "fault" field at all (today's engine: never) */
    unsigned char *flag;
    bool has_flags;
    /* engine with sim_log_t.diag: regret decomposition, sums over decided
     * cycles >= SIM_WARMUP of the per-cycle normalised regret of each
     * variant (see sim_diag_t), and how many cycles were summed */
    double diag[SIM_D__COUNT];
    int diag_n;
} sim_result_t;

/* Where sim_run writes what happened (either may be NULL): the events it
 * fed the engine (JSON Lines, replayable) and the decision records. */
typedef struct {
    FILE *events;
    FILE *decisions;
    bool diag;        /* engine: fill sim_result_t.diag (re-decides every cycle: slower) */
} sim_log_t;

/* Plays policy against tr for the scenario's cycles. The engine runs on
 * sc->cfg (its seed included). */
bd_err_t sim_run(const sim_scenario_t *sc, const sim_truth_t *tr, sim_policy_t policy,
                 const sim_log_t *log, sim_result_t *res, char *errbuf, size_t errlen);
void sim_result_free(sim_result_t *r);

/* Marks in flag (T x n) the channels a decision record names with a
 * non-null "fault" for the cycle it decides (cycle - c0); returns whether
 * the record has a "fault" field at all. */
bool sim_record_faults(const char *json, size_t len, const sim_scenario_t *sc, int64_t c0, int T,
                       unsigned char *flag);

/* ---- metrics (metrics.c) -------------------------------------------------- */

/* 1 - sum v / sum oracle over cycles [from, to) (0 when the oracle is 0). */
double sim_regret_window(const sim_truth_t *tr, const sim_result_t *res, int from, int to);

/* Cycles where something starts or ends (events and their durations),
 * ascending and unique, at most cap; returns how many. */
size_t sim_change_points(const sim_scenario_t *sc, int *out, size_t cap);

/* Fault detection of one run against the truth's fault episodes (maximal
 * runs of faulty cycles per channel). A fault starting at cycle s is
 * detected when a record for a cycle n in [s+1, end] flags the channel
 * (n = s+1 is the record decided on closing the first faulty cycle);
 * delay n - s. A flag episode that starts while the last closed cycle of
 * its channel had no fault is a false alarm. */
typedef struct {
    int faults;        /* true fault episodes */
    int detected;
    int worst_delay;   /* over detected faults; -1 none */
    double mean_delay; /* over detected faults */
    int false_alarms;
    int worst_clear;   /* over detected faults that ended: cycles after the end until the flag
                        * clears (the record for cycle end+1 is the first that can); -1 none */
    int never_cleared; /* detected faults that ended whose flag stayed to the end of the run */
} sim_detect_t;
void sim_detection(const sim_truth_t *tr, const sim_result_t *res, sim_detect_t *out);

/* The channel of the scenario's first one-off cap event (-1: none), and
 * the coefficient of variation (sd / mean) of its allocation over the
 * second half of that cap's window (0 without one). */
int sim_cap_channel(const sim_scenario_t *sc);
double sim_cap_oscillation(const sim_scenario_t *sc, const sim_result_t *res, int T, size_t n);

/* Share of the allocation not spent because of caps over cycles >= from. */
double sim_undelivered(const sim_result_t *res, int from, int T, size_t n);

/* The channel with the longest mean reporting delay (-1: no lag), and its
 * allocation over the second half relative to the oracle's (0 without). */
int sim_slow_channel(const sim_scenario_t *sc);
double sim_slow_funding(const sim_scenario_t *sc, const sim_truth_t *tr, const sim_result_t *res);

/* ---- per-run and per-scenario summaries (metrics.c) ------------------------ */

#define SIM_MAX_WIN 16 /* most windows between change points reported */

/* What one replication adds beyond sim_result_t's totals: second-half
 * numbers of every policy and the engine's event, fault, cap and lag
 * metrics. Zero-initialise, then sim_runstats_add each policy's result. */
typedef struct {
    double half[SIM_POL__COUNT];     /* second-half regret */
    double ret_half[SIM_POL__COUNT]; /* second-half return */
    double oracle_half;
    double after;                    /* engine: regret from the first event on (NAN: no event) */
    double win[SIM_MAX_WIN + 1];     /* engine: regret per window between change points */
    sim_detect_t det;
    bool has_flags;
    double cap_cv, undeliv, slow;
} sim_runstats_t;

/* The scenario's change points as window bounds b[0..w] (0, the points,
 * T); b has room for SIM_MAX_WIN + 2. Returns w, the number of windows. */
size_t sim_window_bounds(const sim_scenario_t *sc, int *b);

/* Adds policy p's result of one run to ru. */
void sim_runstats_add(const sim_scenario_t *sc, const sim_truth_t *tr, sim_policy_t p,
                      const sim_result_t *res, sim_runstats_t *ru);

/* Mean, sample sd and max over R runs of policy p's second-half regret. */
void sim_half_stats(const sim_runstats_t *rr, int R, int p, double *mean, double *sd, double *mx);

/* The engine's metrics over R runs. */
typedef struct {
    double half, half_sd, half_max;  /* second-half regret: mean, sd, worst run */
    double flat_half;                /* the best flat split's, mean */
    double vs_flat, vs_static;       /* second-half return / the flat split's, the static's */
    double oracle_vs_flat;           /* the oracle's second-half return / the flat split's */
    double after, after_max;         /* regret from the first event on */
    double worst_win;                /* worst window from the first event on (mean over runs) */
    int worst_from, worst_to;
    double cap_cv, cap_cv_max, undeliv, slow, slow_min;
    bool flags;          /* some run's records carried "fault" */
    sim_detect_t det;    /* counts summed over runs; worst_* the worst run */
    double delay_mean;   /* over detected faults of all runs */
    bool static_ahead;   /* second-half return above the static split's */
} sim_summary_t;

void sim_summarise(const sim_scenario_t *sc, int R, const sim_runstats_t *rr, sim_summary_t *s);

/* ---- target goals (goals.c) ------------------------------------------------- */

/* What a target goal (v2 `goal: {target_roas | target_cpa}`) achieved in
 * one engine run, over cycles [from, T) (the ratios' means are per cycle). */
typedef struct {
    double target;        /* marginal asked of the last unit, objective per unit spend */
    double meet;          /* mean true marginal at the engine's total / target */
    double meet_early;    /* the same over cycles [0, from) */
    double total_ratio;   /* mean engine total / the oracle's total */
    double oracle_min, oracle_max; /* share of cycles the oracle's total is the range's min / max */
    double eng_min, eng_max;       /* ... the engine's */
    double net_regret;    /* 1 - sum (value - target x total) of the engine / of the oracle */
} sim_goal_stats_t;

/* The oracle's total of cycle t is where the true water-filling
 * multiplier over the cycle's guardrail box meets the target (goal.h on the
 * true curves), within the budget range capped by the box; the engine's
 * marginal is that multiplier at the total it spent. */
void sim_goal_stats(const sim_scenario_t *sc, const sim_truth_t *tr, const sim_result_t *res,
                    int from, sim_goal_stats_t *out);

/* ---- Bernoulli bandit sanity benchmarks (bench/bandit.c) ----------------
 * Thompson sampling through the Beta-Bernoulli model's own draw, observe and
 * discount code (models/beta_bernoulli.c). Jobs run on `threads` threads;
 * results do not depend on the thread count (one generator per run). */

/* Chapelle & Li 2011 grid cell: best arm 0.5, K-1 arms at 0.5 - gap. */
typedef struct {
    int K;
    double gap;
    long T;
    int runs;
    double lr_const;      /* Lai-Robbins: sum over arms of gap / KL(mu_i, mu*) */
    double regret_T;      /* mean regret at T */
    double regret_sd;     /* sd over runs of the regret at T */
    double slope;         /* least-squares d regret / d ln t over t in [T/100, T] */
    double seconds;       /* wall time of the cell */
} bench_cl_cell_t;

void bench_chapelle_li(bench_cl_cell_t *cells, size_t n, int threads, uint64_t seed);

/* Besson & Kaufmann piecewise-stationary problem: K=3 arms, means change
 * every T/5 steps. Algorithms: plain TS; discounted TS under the engine's
 * rule (engine/decide.c: a channel forgets in the cycles it reports in, so
 * the pulled arm, once per pull); discounted TS with every arm forgetting
 * every step (the engine's rule until 2026-11, Raj & Kalyani's DTS as
 * written); discounted TS as SMPyBandits (the library behind the published
 * numbers) runs it: its getReward discounts the pulled arm K-1 extra times
 * instead of the other arms, so only the pulled arm forgets, by gamma^K per
 * pull; TS restarted at the true change points. */
typedef enum {
    BENCH_TS = 0,
    BENCH_DTS,
    BENCH_DTS_EVERY,
    BENCH_DTS_PULLED,
    BENCH_RESTART,
    BENCH__ALGOS
} bench_algo_t;
typedef struct {
    int problem;          /* 1 or 2 */
    long T;
    int runs;
    double gamma;         /* discount of DTS */
    double regret[BENCH__ALGOS], sd[BENCH__ALGOS];
    double seconds;
} bench_bk_t;

void bench_besson_kaufmann(bench_bk_t *p, int threads, uint64_t seed);

#endif
