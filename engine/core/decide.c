/* decide.c: what happens to one portfolio when one of its cycles closes
 * (DESIGN data path, from "model update" to "autonomy gate"). Touches only
 * the job's portfolio: the engine runs jobs of distinct portfolios on worker
 * threads and emits their records in queue order. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_rng.h>
#include "budgetd/alloc.h"
#include "budgetd/decide.h"
#include "budgetd/killswitch.h"
#include "budgetd/stats.h"
#include "budgetd/verify.h"

uint64_t bd_decide_seed(uint64_t seed, const char *portfolio, int64_t cycle)
{
    uint64_t h = bd_hash64(portfolio, strlen(portfolio), seed);
    return bd_mix64(h ^ bd_mix64((uint64_t)cycle));
}

/* Model update of a closed cycle: each channel that reported in the cycle
 * forgets (discount toward the prior), then observes its aggregate. A
 * channel without events keeps its posterior: silence (a paused channel, a
 * connector outage) is not evidence that the channel changed, and the stale
 * trigger watches it. Forgetting every channel every cycle instead made
 * unobserved channels drift back to the prior and be re-explored for
 * nothing: on the Besson-Kaufmann bandit problems it lost to plain Thompson
 * sampling on P2 (439 vs 392 regret), while forgetting on observation wins
 * on both (see docs/DECISIONS.md). */
static void decide_update_models(bd_portfolio_t *p, const bd_model_ops_t *ops,
                                 const bd_agg_t *agg, const bool *corrupt)
{
    for (size_t i = 0; i < p->n; i++) {
        bd_channel_t *c = &p->ch[i];
        if (agg[i].events == 0) continue;
        if (corrupt[i]) continue; /* never shown to a model; the kill check trips */
        ops->discount(&c->model, &c->prior, p->pol->discount);
        ops->observe(&c->model, &c->prior, &agg[i]);
    }
}

/* Posterior ROAS summaries at x from S draws, for paths that do not run the
 * allocator (initial split, kill action). */
static void decide_roas_stats(bd_portfolio_t *p, const bd_model_ops_t *ops, gsl_rng *rng,
                              const double *x, bd_decision_channel_t *dch, double *p_below)
{
    enum { S = 64 };
    size_t n = p->n;
    double *roas = bd_xmalloc(sizeof(double) * S * (n ? n : 1));
    int below = 0;
    double total = 0;
    for (size_t i = 0; i < n; i++) total += x[i];
    for (int s = 0; s < S; s++) {
        double ret = 0;
        for (size_t i = 0; i < n; i++) {
            bd_curve_t c;
            ops->sample(&p->ch[i].model, &p->ch[i].prior, rng, &c);
            double v = bd_curve_value(&c, x[i]);
            ret += v;
            roas[i * S + s] = x[i] > 0 ? v / x[i] : bd_curve_roas_zero(&c);
        }
        if (total > 0 && ret < p->pol->risk_roas_floor * total) below++;
    }
    for (size_t i = 0; i < n; i++) {
        double *r = roas + i * S, sum = 0;
        for (int s = 0; s < S; s++) sum += r[s];
        dch[i].mean_roas = sum / S;
        bd_stats_quantiles_90(r, S, &dch[i].roas_lo, &dch[i].roas_hi);
        dch[i].bound = BD_BOUND_NONE;
    }
    *p_below = total > 0 ? (double)below / S : 0;
    free(roas);
}

/* delegate: may the engine apply x on its own? Every channel's change must
 * stay within escalate_above of its current spend (1% of budget floor). */
static bool decide_within_escalation(const bd_portfolio_t *p, const double *x)
{
    for (size_t i = 0; i < p->n; i++) {
        double base = fmax(p->ch[i].x, 0.01 * p->pol->budget);
        if (fabs(x[i] - p->ch[i].x) > p->pol->escalate_above * base + 0.005) return false;
    }
    return true;
}

void bd_decide_run(bd_decide_job_t *job)
{
    bd_portfolio_t *p = job->p;
    const bd_policy_t *pol = p->pol;
    const bd_model_ops_t *ops = bd_model_get(pol->model);
    size_t n = p->n;
    bd_decision_t *d = &job->d;

    if (job->dch_cap < n) {
        job->dch = bd_xrealloc(job->dch, n * sizeof(*job->dch));
        job->dch_cap = n;
    }
    memset(d, 0, sizeof(*d));
    job->note[0] = '\0';
    job->verify_failed = false;
    d->portfolio = p->name;
    d->cycle = job->cycle;
    d->mode = pol->mode;
    d->budget = pol->budget;
    d->n = n;
    d->ch = job->dch;
    d->events = job->events;
    d->late = job->late;
    d->rejected = job->rejected;
    d->decided_at = job->decided_at;

    gsl_rng *rng = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(rng, (unsigned long)bd_decide_seed(job->cfg->seed, p->name, job->cycle));

    const bd_channel_cfg_t **cfgs = bd_xmalloc(sizeof(*cfgs) * (n ? n : 1));
    double *prev = bd_xmalloc(sizeof(double) * (n ? n : 1) * 5);
    double *x = prev + n, *safe = x + n, *mean = safe + n, *lo = mean + n;
    bool *prom = bd_xcalloc(n ? n : 1, sizeof(bool) * 3);
    bool *prom_out = prom + n;
    bd_bound_t *bound = bd_xcalloc(n ? n : 1, sizeof(*bound));
    double *hi = bd_xmalloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        cfgs[i] = p->ch[i].cfg;
        prev[i] = p->ch[i].x;
        safe[i] = p->ch[i].safe;
        prom[i] = p->ch[i].promoted;
    }

    if (job->initial) {
        bd_alloc_initial(pol, cfgs, n, x);
        for (size_t i = 0; i < n; i++) p->ch[i].x = p->ch[i].safe = x[i];
        d->path = BD_PATH_INITIAL;
        d->status = BD_STATUS_ACTIVE;
        if (p->killed) {
            /* Killed before its first decision (an operator's kill key found
             * at first sight): the initial split is what freeze keeps. */
            bd_killswitch_action_alloc(p, cfgs, x);
            for (size_t i = 0; i < n; i++) p->ch[i].x = x[i];
            d->path = BD_PATH_KILLED;
            d->status = BD_STATUS_KILLED;
            d->kill_reason = p->kill_reason;
            p->has_proposal = false;
        }
        decide_roas_stats(p, ops, rng, x, d->ch, &d->p_below_floor);
    } else {
        /* aggregates holding numbers no channel can produce (model.h) */
        bool *corrupt = prom_out + n;
        for (size_t i = 0; i < n; i++) {
            double v;
            corrupt[i] = bd_agg_implausible(&job->agg[i], &v) != NULL;
        }
        decide_update_models(p, ops, job->agg, corrupt);
        bd_killswitch_cycle_t kc = {
            .agg = job->agg, .corrupt = corrupt, .closed_end = job->cycle * job->cfg->cycle,
            .last_event_ts = job->last_event_ts, .events = job->events, .rejected = job->rejected,
        };
        d->tripped = bd_killswitch_close_cycle(p, &kc);
        if (p->killed) {
            bd_killswitch_action_alloc(p, cfgs, x);
            decide_roas_stats(p, ops, rng, x, d->ch, &d->p_below_floor);
            d->path = BD_PATH_KILLED;
            d->status = BD_STATUS_KILLED;
            d->kill_reason = p->kill_reason;
            p->has_proposal = false;
            for (size_t i = 0; i < n; i++) p->ch[i].x = x[i];
        } else {
            bd_alloc_input_t in = {
                .n = n, .pol = pol, .cfg = cfgs, .ops = ops,
                .states = NULL, .priors = NULL, .prev = prev, .safe = safe,
                .promoted = prom, .rng = rng,
            };
            bd_model_state_t *st = bd_xmalloc(sizeof(*st) * (n ? n : 1));
            bd_prior_t *pr = bd_xmalloc(sizeof(*pr) * (n ? n : 1));
            for (size_t i = 0; i < n; i++) {
                st[i] = p->ch[i].model;
                pr[i] = p->ch[i].prior;
            }
            in.states = st;
            in.priors = pr;
            bd_alloc_output_t out = {
                .x = x, .bound = bound, .mean_roas = mean, .roas_lo = lo, .roas_hi = hi,
                .promoted = prom_out,
            };
            char err[256];
            bd_err_t rc = bd_alloc_decide(&in, &out, err, sizeof(err));
            if (rc == BD_OK) {
                bd_verify_input_t vin = {
                    .n = n, .pol = pol, .cfg = cfgs, .x = x, .prev = prev, .promoted = prom_out,
                    .draws = out.draws, .n_draws = out.n_draws, .risk_held = out.risk_held,
                };
                if (!out.kept) rc = bd_verify_allocation(&vin, err, sizeof(err));
            }
            for (size_t i = 0; i < n; i++) {
                d->ch[i].mean_roas = mean[i];
                d->ch[i].roas_lo = lo[i];
                d->ch[i].roas_hi = hi[i];
                d->ch[i].bound = bound[i];
            }
            d->p_below_floor = out.p_below_floor;
            d->status = BD_STATUS_ACTIVE;
            if (rc != BD_OK) {
                /* Refused by the allocator or the verifier: nothing new is
                 * published; the allocation in force is held. */
                job->verify_failed = true;
                snprintf(job->note, sizeof(job->note), "verify: %.200s", err);
                d->note = job->note;
                d->path = BD_PATH_HELD;
                d->status = BD_STATUS_HELD;
                p->has_proposal = false;
                memcpy(x, prev, sizeof(double) * n);
            } else if (out.risk_held) {
                snprintf(job->note, sizeof(job->note),
                         "risk: even the safe allocation breaks P(ROAS < %.2f) <= %.2f",
                         pol->risk_roas_floor, pol->risk_max_prob);
                d->note = job->note;
                d->path = BD_PATH_HELD;
                d->status = BD_STATUS_HELD;
                p->has_proposal = false;
                memcpy(x, prev, sizeof(double) * n);
            } else if (out.kept) {
                d->path = BD_PATH_KEPT;
                p->has_proposal = false;
            } else if (pol->mode == BD_MODE_AUTOMATE ||
                       (pol->mode == BD_MODE_DELEGATE && decide_within_escalation(p, x))) {
                d->path = BD_PATH_APPLIED;
                for (size_t i = 0; i < n; i++) {
                    p->ch[i].x = x[i];
                    p->ch[i].safe = x[i];
                }
                p->has_proposal = false;
            } else {
                d->path = pol->mode == BD_MODE_DELEGATE ? BD_PATH_ESCALATED : BD_PATH_PROPOSED;
                for (size_t i = 0; i < n; i++) p->ch[i].proposed = x[i];
                p->has_proposal = true;
                p->proposal_cycle = job->cycle;
            }
            for (size_t i = 0; i < n; i++) p->ch[i].promoted = prom_out[i];
            bd_alloc_output_free(&out);
            free(st);
            free(pr);
        }
    }
    p->status = d->status;
    p->alloc_cycle = job->cycle;
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        d->ch[i].channel = p->ch[i].name;
        d->ch[i].prev = job->initial ? 0 : prev[i];
        d->ch[i].spend = x[i];
        total += x[i];
    }
    d->total = total;
    job->json_len = bd_record_json(d, &job->json, &job->json_cap);
    gsl_rng_free(rng);
    free(cfgs);
    free(prev);
    free(prom);
    free(bound);
    free(hi);
}

void bd_decide_job_free(bd_decide_job_t *job)
{
    free(job->agg);
    free(job->json);
    free(job->dch);
    job->agg = NULL;
    job->json = NULL;
    job->dch = NULL;
}

size_t bd_decide_approval_record(const bd_portfolio_t *p, int64_t decided_at, char **json,
                                 size_t *cap)
{
    bd_decision_channel_t *dch = bd_xcalloc(p->n ? p->n : 1, sizeof(*dch));
    double total = 0;
    for (size_t i = 0; i < p->n; i++) {
        dch[i].channel = p->ch[i].name;
        dch[i].spend = p->ch[i].proposed;
        dch[i].prev = p->ch[i].x;
        dch[i].mean_roas = dch[i].roas_lo = dch[i].roas_hi = NAN; /* not re-estimated */
        dch[i].bound = BD_BOUND_NONE;
        total += p->ch[i].proposed;
    }
    bd_decision_t d = {
        .portfolio = p->name, .cycle = p->proposal_cycle, .mode = p->pol->mode,
        .status = BD_STATUS_ACTIVE, .path = BD_PATH_APPROVED, .budget = p->pol->budget,
        .total = total, .n = p->n, .ch = dch, .p_below_floor = NAN, .decided_at = decided_at,
        .note = "operator approved the proposal",
    };
    size_t len = bd_record_json(&d, json, cap);
    free(dch);
    return len;
}

void bd_decide_apply_proposal(bd_portfolio_t *p)
{
    if (!p->has_proposal || p->killed) return;
    for (size_t i = 0; i < p->n; i++) p->ch[i].x = p->ch[i].safe = p->ch[i].proposed;
    p->has_proposal = false;
    p->status = BD_STATUS_ACTIVE;
}
