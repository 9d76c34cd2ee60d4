/* daemon_approve.c: operators' approvals as `budgetd run` applies them
 * (docs/CONTRACT.md §3, §6.4): polled after the decisions of a sync are
 * written, re-verified against the config in force, applied through the
 * approval script with the checkpoint, refused with the reason otherwise. */
#include <stdlib.h>
#include <time.h>
#include "budgetd/checkpoint.h"
#include "budgetd/decide.h"
#include "budgetd/log.h"
#include "daemon.h"

/* The approved proposal no longer passes the config in force (a reload
 * since it was made): refused, the reason logged and written on the
 * proposal, the approve key cleared. */
static void daemon_refuse_approval(bd_daemon_t *dm, bd_portfolio_t *p, int64_t cycle, const char *why)
{
    char err[512];
    bd_log(BD_LOG_WARN, "%s: approval of cycle %lld refused: the proposal no longer passes the config in "
           "force: %s", p->name, (long long)cycle, why);
    bd_err_t rc = bd_redis_refuse_approval(dm->r, p->name, p->epoch, cycle, why, err, sizeof(err));
    if (rc == BD_ERR_FENCED) p->fenced_out = true;
    else if (rc != BD_OK) bd_log(BD_LOG_WARN, "%s: recording the refusal: %s", p->name, err);
}

/* Applies p's approved proposal of cycle through the approval script,
 * after re-verifying it against the config in force (refused otherwise).
 * The checkpoint written with it must already hold the approved
 * allocation, so the allocation changes first and is rolled back when
 * Redis refuses. */
static void daemon_apply_approval(bd_daemon_t *dm, bd_portfolio_t *p, int64_t cycle, char **json, size_t *cap)
{
    char err[512];
    if (bd_decide_approval_check(p, err, sizeof(err)) != BD_OK) {
        daemon_refuse_approval(dm, p, cycle, err);
        return;
    }
    bd_decide_approval_record(p, (int64_t)time(NULL), json, cap);
    double *old = bd_xmalloc(sizeof(double) * 2 * (p->n ? p->n : 1));
    for (size_t c = 0; c < p->n; c++) {
        old[2 * c] = p->ch[c].x;
        old[2 * c + 1] = p->ch[c].safe;
    }
    bd_status_t old_status = p->status;
    bd_decide_apply_proposal(p);
    size_t scap = 0;
    unsigned char *state = NULL;
    size_t slen = bd_checkpoint_encode(p, &state, &scap);
    bd_err_t rc = bd_redis_apply_approval_owned(dm->r, p->name, p->epoch, cycle, *json, state, slen,
                                                NULL, err, sizeof(err));
    free(state);
    if (rc == BD_ERR_FENCED) {
        bd_log(BD_LOG_WARN, "%s: %s; dropped: another daemon owns it now", p->name, err);
        free(old);
        bd_daemon_drop(dm, p);
        return;
    }
    if (rc == BD_OK) {
        bd_log_kv(BD_LOG_INFO, p->name, cycle, "%s: approved proposal of cycle %lld applied", p->name,
                  (long long)cycle);
        p->ckpt_offset = p->offset;
        p->first_unsaved = -1;
    } else {
        for (size_t c = 0; c < p->n; c++) {
            p->ch[c].x = old[2 * c];
            p->ch[c].safe = old[2 * c + 1];
        }
        p->status = old_status;
        if (rc == BD_ERR_STALE) {
            /* superseded or killed meanwhile: drop the request */
            bd_log_kv(BD_LOG_INFO, p->name, cycle, "%s: approval of cycle %lld refused: %s", p->name,
                      (long long)cycle, err);
            bd_redis_clear_approve(dm->r, p->name, err, sizeof(err));
        } else {
            p->has_proposal = true; /* Redis down: try again next round */
        }
    }
    free(old);
}

/* Operator approvals, polled after the sync's decisions are written (no
 * close job queued, Redis holds every decision made): an approve naming the
 * pending proposal's cycle applies it through the approval script. */
void bd_daemon_poll_approvals(bd_daemon_t *dm)
{
    bd_ptable_t *t = bd_engine_table(dm->e);
    size_t n = bd_ptable_count(t);
    char err[512];
    char *json = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        bd_portfolio_t *p = bd_ptable_at(t, i);
        if (p->open == INT64_MIN) continue;
        if (!p->has_proposal || p->killed || p->pol->mode == BD_MODE_ASSIST) continue;
        int present = 0;
        int64_t cycle = 0;
        if (bd_redis_get_approve(dm->r, p->name, &cycle, &present, err, sizeof(err)) != BD_OK) {
            if (!bd_redis_connected(dm->r)) break; /* Redis down: next round */
            bd_daemon_refused(p, "reading the approve key of", err);
            continue;
        }
        if (present && cycle == p->proposal_cycle) daemon_apply_approval(dm, p, cycle, &json, &cap);
    }
    free(json);
}
