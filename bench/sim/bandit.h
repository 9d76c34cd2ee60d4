/* bandit.h: the Beta-Bernoulli model (models/beta_bernoulli.c).
 *
 * A channel's success rate p (conversion per click; click per impression
 * for click-through objectives later) has a Beta(a, b) posterior. It serves
 * the engine through bd_model_ops_t like the other models, and the bandit
 * sanity benchmarks (bench/bandit.c) through the same discount, observe and
 * draw code, so the published Bernoulli-bandit numbers test the engine's own
 * sampling and forgetting. */
#ifndef BUDGETD_BANDIT_H
#define BUDGETD_BANDIT_H

#include <stdint.h>
#include <gsl/gsl_rng.h>
#include "budgetd/model.h"

#define BD_BB_PRIOR_A 1.0   /* Beta(1,1): uniform, as in Chapelle & Li 2011 */
#define BD_BB_PRIOR_B 1.0
#define BD_BB_CP_P 0.01     /* two-sided predictive tail that counts as a surprise */
#define BD_BB_CP_RUN 3      /* consecutive surprises that trigger a partial reset */
#define BD_BB_CP_KEEP 0.2   /* share of the evidence a reset keeps */

/* The state behind bd_model_state_t (POD). Counts include the prior's
 * pseudo-counts, so discounting toward the prior is one linear blend:
 * s = gamma*s + (1-gamma)*s0 for every statistic s. */
typedef struct {
    uint32_t streak;        /* consecutive surprising observations */
    uint32_t resets;        /* change-point resets so far */
    double a0, b0;          /* prior Beta */
    double a, b;            /* posterior Beta of p */
    /* For the response curve only: trials per unit spend and value per
     * success, as discounted ratios of sums with prior pseudo-sums. */
    double spend0, trials0, succ0, value0;
    double spend, trials, succ, value;
} bd_bb_state_t;

extern const bd_model_ops_t bd_model_beta_bernoulli_ops;

/* The typed view of a state set up by the ops' init. */
const bd_bb_state_t *bd_bb_view(const bd_model_state_t *st);

/* One posterior draw of p: the sampling step of the model's sample(). */
double bd_bb_draw(const bd_model_state_t *st, gsl_rng *rng);

/* Posterior mean of p. */
double bd_bb_mean(const bd_model_state_t *st);

/* Observes `successes` of `trials` Bernoulli trials with no spend (a bandit
 * pull); same update and change-point check as observe(). */
void bd_bb_observe_trials(bd_model_state_t *st, double successes, double trials);

#endif
