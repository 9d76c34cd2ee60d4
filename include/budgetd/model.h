/* model.h: the Bayesian response models behind one small interface.
 *
 * A model keeps, per channel, sufficient statistics only (a fixed-size POD
 * state, no history), so memory is O(channels) and an update is O(grid).
 * The allocator never looks inside a state: it asks for curves (a posterior
 * draw or the posterior mean) and solves over them. */
#ifndef BUDGETD_MODEL_H
#define BUDGETD_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <gsl/gsl_rng.h>
#include "budgetd/config.h"

/* A concave response f(x) of the objective to spend x >= 0.
 *   EXP:   f(x) = a*k*(1 - exp(-x/k)),  f'(x) = a*exp(-x/k)      (a>=0, k>0)
 *   POWER: f(x) = a*x^b,                f'(x) = a*b*x^(b-1)      (a>=0, 0<b<1)
 * a is the objective per unit spend at low spend (ROAS for revenue). */
typedef enum { BD_CURVE_EXP = 0, BD_CURVE_POWER } bd_curve_kind_t;
typedef struct {
    bd_curve_kind_t kind;
    double a, k, b;
} bd_curve_t;

double bd_curve_value(const bd_curve_t *c, double x);
double bd_curve_marginal(const bd_curve_t *c, double x);
/* ROAS of a curve at zero spend (where f(x)/x is 0/0): the return per unit
 * of the first cent, a for EXP, f(0.01)/0.01 for POWER. The one definition
 * behind a record's mean_roas/roas_lo/roas_hi of a channel at 0, on every
 * path (allocator, initial split, kill action). */
double bd_curve_roas_zero(const bd_curve_t *c);
/* The x >= 0 where f'(x) = lambda (lambda > 0); 0 when f'(0) <= lambda. */
double bd_curve_inv_marginal(const bd_curve_t *c, double lambda);

/* What one channel returned in one cycle (sums of its events). */
typedef struct {
    double spend, impressions, clicks, conversions, revenue;
    uint32_t events;
} bd_agg_t;

/* No ad channel reports a quadrillion of anything in one interval (money,
 * counts). CONTRACT §1 accepts any finite number >= 0, so such an event is
 * accepted; but an aggregate holding one is corrupt data, never shown to a
 * model (a single 1e308 would keep a posterior absurd for thousands of
 * cycles), and it trips the kill-switch (killswitch.c). */
#define BD_AGG_IMPLAUSIBLE 1e15

/* The first number of a above BD_AGG_IMPLAUSIBLE (or not finite: sums can
 * overflow), as its name with its value in *v; NULL when a is plausible. */
const char *bd_agg_implausible(const bd_agg_t *a, double *v);

/* Prior hyper-parameters, fixed per channel from config. */
typedef struct {
    bd_objective_t objective;
    double saturation;  /* centre of the saturation grid (config `saturation`) */
    double budget;      /* the portfolio budget, to scale the grid and priors */
    double roas_prior;  /* prior mean of a (objective per spend at low spend) */
    double value_prior; /* prior mean revenue per conversion */
    double strength;    /* v2: cycles of data (at the saturation spend) the prior is
                         * worth, 0: the weak built-in prior alone */
    const bd_lift_t *lift; /* v2: lift tests, calibration observations (n_lift) */
    size_t n_lift;
} bd_prior_t;

#define BD_MODEL_STATE_BYTES 608 /* the largest model (poisson_sat: 7-point k grid and the drift shadows) */

/* `discount: auto`: the model chooses its own forgetting rate from its data
 * (drift.h); a model that cannot forgets at BD_DISCOUNT_AUTO_FALLBACK. */
#define BD_DISCOUNT_AUTO (-1.0)
#define BD_DISCOUNT_AUTO_FALLBACK 0.98

/* What a model observes: conversions (counts) or the objective's value. The
 * seasonal profile and the lag distribution are learned in these units. */
typedef enum { BD_UNITS_CONVERSIONS = 0, BD_UNITS_OBJECTIVE } bd_units_t;

/* The units of an aggregate a model of kind units observes. */
double bd_agg_units(const bd_agg_t *a, bd_units_t units, bd_objective_t obj);
/* Opaque per-channel state; models cast it to their own struct (static
 * asserted to fit). POD: the engine checkpoints it by copying bytes. */
typedef struct {
    _Alignas(8) unsigned char bytes[BD_MODEL_STATE_BYTES];
} bd_model_state_t;

/* How an aggregate is observed.
 *  mult:    > 0, multiplies the interval's exposure: its seasonal factor
 *           times the share of its units reported so far (lag.h), so that
 *           the response is learned free of both (default 1);
 *  k_learn: in [0,1], the weight of the observation in the saturation
 *           likelihood (default 1). Where a seasonal profile is in use,
 *           spend follows the hour and saturation and season are not
 *           separately identified in the closed loop: decide.c lowers it by
 *           the profile's weight (docs/DECISIONS.md "Time structure"), and
 *           multiplies it by the share of the interval's units reported on
 *           time, F(0) (DECISIONS "Saturation of a slow channel"). */
typedef struct {
    double mult, k_learn;
} bd_obs_t;

typedef struct bd_model_ops {
    const char *name;
    /* Sets the state to the prior. */
    void (*init)(bd_model_state_t *st, const bd_prior_t *pr);
    /* Forgets: statistics *= gamma, then blends toward the prior so that a
     * channel is never certain forever. Called once per closed cycle for each
     * channel that reported in it, just before observe (decide.c); a silent
     * channel is not discounted and keeps its posterior (docs/DECISIONS.md
     * "Forgetting"). gamma BD_DISCOUNT_AUTO: the model's own choice. */
    void (*discount)(bd_model_state_t *st, const bd_prior_t *pr, double gamma);
    /* Adds one closed interval's aggregate (o: how; NULL = bd_obs_t
     * defaults). An aggregate with zero spend adds its units only (late
     * reports of an interval observed earlier; negative units lower what an
     * earlier report added, never below the prior). Also runs the
     * change-point check: outcomes very unlikely under the posterior for
     * several consecutive updates partly reset the state toward the prior. */
    void (*observe)(bd_model_state_t *st, const bd_prior_t *pr, const bd_agg_t *agg,
                    const bd_obs_t *o);
    /* Exposure that matured: spend x of an interval observed earlier, times
     * mult (the reporting share that arrived since, times its seasonal
     * factor). NULL: the model does not take exposure apart from units. */
    void (*credit)(bd_model_state_t *st, const bd_prior_t *pr, double x, double mult);
    /* Expected units (see units) at spend x under the posterior mean, with
     * no multiplier: the flat prediction the seasonal profile is scored
     * against. */
    double (*expect)(const bd_model_state_t *st, const bd_prior_t *pr, double x);
    /* The discount the last discount call applied (auto: the choice), for
     * the record; NULL when the model has no choice to report. */
    double (*forget_rate)(const bd_model_state_t *st);
    bd_units_t units;
    /* One posterior draw of the response curve (Thompson sampling). */
    void (*sample)(const bd_model_state_t *st, const bd_prior_t *pr, gsl_rng *rng,
                   bd_curve_t *out);
    /* The curve at the posterior mean of its parameters. */
    void (*mean)(const bd_model_state_t *st, const bd_prior_t *pr, bd_curve_t *out);
    /* Effective number of conversions behind the posterior (lab gate). */
    double (*evidence)(const bd_model_state_t *st);
    /* Number of change-point resets so far (diagnostics, tests). */
    uint32_t (*resets)(const bd_model_state_t *st);
    /* Ratio between neighbouring points of the saturation grid a model
     * learns k on (a draw's k is one of them); 0 when k is not on a grid.
     * The what-if spreads a draw's k over its grid cell (engine/sim/env.c). */
    double k_grid_ratio;
    /* Whether st can be a state of this model at all: statistics finite,
     * shapes, rates and scales positive, counts in range. A checkpoint
     * (checkpoint.c) refuses a blob whose state is not: a NaN posterior
     * would decide NaN forever. NULL: the model does not say (any state). */
    bool (*valid)(const bd_model_state_t *st);
} bd_model_ops_t;

const bd_model_ops_t *bd_model_get(bd_model_kind_t kind);
const char *bd_model_name(bd_model_kind_t kind);

#endif
