/* approval.c: an operator's approval of a pending proposal (docs/CONTRACT.md
 * §3, §6.4): the record it publishes, its re-check against the config in
 * force, and putting it in force. Pure core: the daemon does the Redis part
 * (engine/cmd/run.c). Split from decide.c, which decides; this applies what
 * an operator approved of an earlier decision, and says which decisions of
 * a delegating portfolio need one. */
#include <math.h>
#include <stdlib.h>
#include "budgetd/decide.h"
#include "budgetd/record.h"
#include "budgetd/verify.h"

/* See decide.h: the "approved" record of the pending proposal. */
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
        dch[i].owner = p->ch[i].owner;
        dch[i].arm = p->ch[i].owner ? p->ch[i].name + p->ch[i].cfg->arm_of + 1 : NULL;
        if (!p->ch[i].owner) total += p->ch[i].proposed;
    }
    bd_decision_t d = {
        .portfolio = p->name, .cycle = p->proposal_cycle, .mode = p->pol->mode,
        .status = BD_STATUS_ACTIVE, .path = BD_PATH_APPROVED, .budget = p->pol->budget,
        .total = total, .n = p->n, .ch = dch, .p_below_floor = NAN, .decided_at = decided_at,
        .goal = p->pol->goal.kind, .goal_target = p->pol->goal.target,
        .budget_min = p->pol->budget_range.min, .marginal = NAN,
        .note = "operator approved the proposal",
    };
    size_t len = bd_record_json(&d, json, cap);
    free(dch);
    return len;
}

/* See decide.h: the verifier on the proposal against the config in force. */
bd_err_t bd_decide_approval_check(const bd_portfolio_t *p, char *errbuf, size_t errlen)
{
    if (!p->has_proposal) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "no pending proposal");
    size_t n1 = p->n ? p->n : 1;
    const bd_channel_cfg_t **cfgs = bd_xmalloc(sizeof(*cfgs) * n1);
    double *x = bd_xmalloc(sizeof(double) * n1 * 2), *prev = x + n1;
    bool *promoted = bd_xcalloc(n1, sizeof(bool));
    for (size_t i = 0; i < p->n; i++) {
        cfgs[i] = p->ch[i].cfg;
        x[i] = p->ch[i].proposed;
        prev[i] = p->ch[i].x;
        promoted[i] = p->ch[i].promoted;
    }
    bd_verify_input_t in = {.n = p->n, .pol = p->pol, .cfg = cfgs, .x = x, .prev = prev,
                            .promoted = promoted, .draws = NULL, .n_draws = 0};
    bd_err_t rc = bd_verify_allocation(&in, errbuf, errlen);
    free(cfgs);
    free(x);
    free(promoted);
    return rc;
}

/* See decide.h: the proposal becomes the allocation in force (never on a
 * killed portfolio). */
void bd_decide_apply_proposal(bd_portfolio_t *p)
{
    if (!p->has_proposal || p->killed) return;
    for (size_t i = 0; i < p->n; i++) p->ch[i].x = p->ch[i].safe = p->ch[i].proposed;
    p->has_proposal = false;
    p->status = BD_STATUS_ACTIVE;
}

/* See decide.h: every channel's change within escalate_above of its current
 * spend (floored at 1% of the budget). */
bool bd_decide_within_escalation(const bd_portfolio_t *p, const double *x)
{
    for (size_t i = 0; i < p->n; i++) {
        double base = fmax(p->ch[i].x, 0.01 * p->pol->budget);
        if (fabs(x[i] - p->ch[i].x) > p->pol->escalate_above * base + 0.005) return false;
    }
    return true;
}
