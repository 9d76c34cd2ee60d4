/* drift.h: a channel's forgetting rate chosen by its data (`discount: auto`,
 * docs/TIME.md).
 *
 * A few shadow Gamma-Poisson level models run side by side, each forgetting
 * at one candidate discount, on the channel's units against its exposure
 * (saturation, season and reporting completeness applied). Each scores the
 * one-step predictive log-likelihood of every new observation (negative
 * binomial, shape capped as in the change-point check so ordinary
 * overdispersion does not favour short memories), discounted; the channel
 * forgets at the longest memory whose score is within BD_DRIFT_MARGIN nats of
 * the best (a shorter memory must earn the noise it lets in). A stable channel keeps a long
 * memory, a channel on a fast random walk forgets fast (West & Harrison's
 * choice of discount factors by predictive likelihood, made online).
 * Pure, POD, checkpointed by copying bytes. */
#ifndef BUDGETD_DRIFT_H
#define BUDGETD_DRIFT_H

#define BD_DRIFT_K 6
#define BD_DRIFT_SCORE_FORGET 0.99  /* memory of the scores (~100 cycles) */
#define BD_DRIFT_MAX_SHAPE 64.0     /* predictive shape cap (12.5% rate CV) */
#define BD_DRIFT_MARGIN 0.0         /* nats a shorter memory must win by (2 measured worse, docs/DECISIONS.md) */

typedef struct {
    float a[BD_DRIFT_K], b[BD_DRIFT_K]; /* shadow level posteriors Gamma(a, rate b) */
    float score[BD_DRIFT_K];
    float pad_;
} bd_drift_t;

/* The candidate discounts, shortest memory first. */
double bd_drift_candidate(int i);

/* a0, b0: the level prior (the response model's own, so that every shadow
 * starts where the model does). */
void bd_drift_init(bd_drift_t *d, double a0, double b0);

/* One observation: y units against exposure q (> 0). Scores, then updates
 * every shadow with its own discount toward the prior. */
void bd_drift_observe(bd_drift_t *d, double a0, double b0, double y, double q);

/* Units or exposure without a prediction to score: late reports (dy, may
 * be negative; a shadow never falls below its prior's share) and exposure
 * that matured later (dq). */
void bd_drift_add(bd_drift_t *d, double a0, double dy, double dq);

/* The discount the channel should forget at now: the best-scoring
 * candidate (the longer memory on ties). */
double bd_drift_discount(const bd_drift_t *d);

#endif
