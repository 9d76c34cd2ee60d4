/* sim.h: the closed-loop simulator of the bench (issue 6), bench-local.
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

typedef enum { SIM_SHOCK = 0, SIM_BREAK, SIM_RUNAWAY } sim_event_kind_t;

/* Something that happens at cycle `cycle` to channel `ch`. */
typedef struct {
    sim_event_kind_t kind;
    int cycle;
    int ch;          /* index into the scenario's channels */
    double factor;   /* shock: multiplier of the rate; runaway: spend / allocation */
    int duration;    /* runaway: cycles it lasts, 0 = to the end */
    int line;
} sim_event_t;

/* A channel's hidden truth: expected conversions rate*k*(1-exp(-x/k)) for
 * spend x per cycle, each worth `value` on average. */
typedef struct {
    char name[BD_NAME_MAX + 1];
    double rate;     /* conversions per unit spend at low spend */
    double value;    /* mean revenue per conversion */
    double k;        /* saturation spend */
    int arrives;     /* first cycle the channel exists (0: from the start) */
    const bd_channel_cfg_t *cfg; /* its guardrails: listed or defaults.channel */
    int line;
} sim_channel_t;

typedef struct {
    char *path;               /* name used in messages */
    char *name, *description;
    int cycles;
    int64_t start;            /* event time of cycle 0, a multiple of cfg->cycle */
    uint64_t seed;
    char portfolio[BD_NAME_MAX + 1];
    char *config_text;        /* the config YAML the engine runs on (for replay) */
    bd_config_t *cfg;
    const bd_portfolio_cfg_t *pc;
    const bd_policy_t *pol;
    double overdispersion;    /* CV of a per-cycle Gamma multiplier of the rate (0: Poisson) */
    double value_shape;       /* Gamma shape of one conversion's value */
    double drift_sigma;       /* sd of the per-cycle log step of each rate */
    double drift_revert;      /* pull of the log multiplier back to 0 per cycle, [0,1) */
    int resume_after;         /* an operator resumes a kill after this many cycles; 0 never */
    bool targets;             /* issue 6's targets apply (the drift-and-shock scenarios) */
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

/* The environment of one run, the same for every policy. Arrays are
 * cycles x n_ch, row-major. */
typedef struct {
    int T;
    size_t n;
    uint64_t seed;
    bd_curve_t *curve;     /* true objective curve per cycle and channel */
    double *rate;          /* true conversion rate (drift and shocks applied) */
    unsigned char *present, *broken;
    double *ratio;         /* runaway: actual spend / allocation (1: none) */
    double *lo, *hi;       /* guardrail box (0,0 for absent channels) */
    double *opt_x;         /* the oracle's allocation */
    double *opt_v;         /* T: the oracle's expected return */
} sim_truth_t;

sim_truth_t *sim_truth_new(const sim_scenario_t *sc, uint64_t seed);
void sim_truth_free(sim_truth_t *tr);

typedef enum {
    SIM_POL_ENGINE = 0, SIM_POL_STATIC, SIM_POL_EQUAL, SIM_POL_REFIT, SIM_POL_EGREEDY,
    SIM_POL__COUNT
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
