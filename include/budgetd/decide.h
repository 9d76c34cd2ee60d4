/* decide.h: one portfolio's decision when a cycle closes: model update,
 * kill-switch, allocation and verification, autonomy gate. A job touches
 * only its own portfolio, so jobs of different portfolios run in parallel. */
#ifndef BUDGETD_DECIDE_H
#define BUDGETD_DECIDE_H

#include <stdint.h>
#include "budgetd/alloc.h"
#include "budgetd/config.h"
#include "budgetd/record.h"
#include "budgetd/portfolio.h"

typedef struct {
    /* input */
    const bd_config_t *cfg;
    bd_portfolio_t *p;
    int64_t cycle;          /* the cycle decided for */
    bool initial;           /* first sight: publish the configured split */
    bd_agg_t *agg;          /* closed cycle's aggregates, p->n entries (owned) */
    uint64_t events, late, rejected;
    int64_t decided_at;
    int64_t last_event_ts;  /* snapshot: ingest may move it while the job runs */
    size_t agg_cap;
    bd_late_t *late_items;  /* late reports the close applies (owned; swapped with the portfolio's queue) */
    size_t n_late_items, late_items_cap;
    /* output */
    bd_decision_t d;
    char *json;
    size_t json_len, json_cap;
    bool verify_failed;
    char note[256];
    /* scratch, owned by the job and reused */
    bd_decision_channel_t *dch;
    size_t dch_cap;
} bd_decide_job_t;

/* What one worker reuses across the decisions it runs: the allocator's
 * output (its draws and workspace, ~25 KB at 8 channels and 64 samples),
 * a copy of the channels' model states and the RNG (reseeded per decision, so results do not depend on which
 * worker ran a job). Zero-initialise; bd_decide_scratch_free releases it. */
typedef struct {
    bd_alloc_output_t out;
    bd_model_state_t *st;  /* the allocated channels' model states, st_cap entries */
    size_t st_cap;
    void *rng;             /* gsl_rng (taus2) */
} bd_decide_scratch_t;

void bd_decide_scratch_free(bd_decide_scratch_t *sc);

/* Runs the job with sc's buffers (NULL: its own, freed at the end); fills
 * d and json. */
void bd_decide_run(bd_decide_job_t *job, bd_decide_scratch_t *sc);
/* Frees what the job owns (agg, json, the record's channel scratch). */
void bd_decide_job_free(bd_decide_job_t *job);

/* An operator approved p's pending proposal: builds the record of that
 * decision (path "approved", cycle p->proposal_cycle) into *json. The caller
 * publishes it and, once stored, calls bd_decide_apply_proposal. */
size_t bd_decide_approval_record(const bd_portfolio_t *p, int64_t decided_at, char **json,
                                 size_t *cap);
/* Re-verifies p's pending proposal against the config in force (p->pol
 * and each channel's config, which a reload may have changed since the
 * proposal was made): budget and total, min/max, lab caps, and the ramp
 * from the allocation in force, by the independent verifier (verify.h;
 * risk is not re-estimated). BD_OK, or BD_ERR_INVALID with the first
 * violation in errbuf: the approval must then be refused. */
bd_err_t bd_decide_approval_check(const bd_portfolio_t *p, char *errbuf, size_t errlen);
/* delegate mode: may the engine apply x (p->n entries) on its own? Every
 * channel's change must stay within escalate_above of its current spend
 * (floored at 1% of the budget); else x waits for an operator. */
bool bd_decide_within_escalation(const bd_portfolio_t *p, const double *x);
/* Makes the pending proposal the allocation in force; does nothing for a
 * killed portfolio (an approval never revives one). */
void bd_decide_apply_proposal(bd_portfolio_t *p);

/* The per-portfolio RNG seed for a cycle: a function of (seed, portfolio,
 * cycle) only, so results do not depend on thread timing. */
uint64_t bd_decide_seed(uint64_t seed, const char *portfolio, int64_t cycle);

#endif
