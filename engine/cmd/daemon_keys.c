/* daemon_keys.c: the Redis keys `budgetd run` mirrors and recovers
 * (daemon.h): the kill latch against the kill key and the resume record,
 * the operators' pins and fault clears, the republish of what Redis lost,
 * per-portfolio refusals, and dropping a portfolio another process owns. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include "budgetd/checkpoint.h"
#include "budgetd/engine.h"
#include "budgetd/fault.h"
#include "budgetd/killswitch.h"
#include "budgetd/log.h"
#include "budgetd/publish.h"
#include "daemon.h"

/* p is latched and its kill key is missing. A missing key is not a resume
 * (docs/CONTRACT.md v2 §6.3): only a resume record that clears the latch
 * resumes p; otherwise the key is written again as the latch knows it. */
static bd_err_t daemon_kill_key_missing(bd_daemon_t *dm, bd_portfolio_t *p, char *err, size_t errlen)
{
    bd_redis_resume_t rec;
    bd_err_t rc = bd_redis_get_resume(dm->r, p->name, &rec, err, errlen);
    if (rc != BD_OK) return rc;
    if (rec.present && bd_killswitch_resume_clears(p, rec.at, rec.kill_at)) {
        bd_killswitch_operator_resume(p);
        bd_log_kv(BD_LOG_INFO, p->name, p->alloc_cycle, "%s: resumed by %s (resume recorded at %lld)", p->name,
               rec.by[0] ? rec.by : "?", (long long)rec.at);
        return BD_OK;
    }
    rc = bd_redis_reassert_kill(dm->r, p->name, p->epoch, bd_killswitch_key_reason(p), p->kill_by, p->kill_at,
                                &rec, err, errlen);
    if (rc == BD_OK)
        bd_log_kv(BD_LOG_WARN, p->name, p->alloc_cycle,
                  "%s: kill key missing: Redis lost it? re-asserted (by %s, at %lld: %s)", p->name,
               p->kill_by, (long long)p->kill_at, bd_killswitch_key_reason(p));
    else if (rc == BD_ERR_FENCED)
        p->fenced_out = true; /* dropped by the next daemon_drop_fenced */
    return rc == BD_ERR_STALE || rc == BD_ERR_FENCED ? BD_OK : rc; /* changed meanwhile: next poll */
}

/* Follows p's kill key: present latches p (an operator's kill, or a trip
 * of ours or of another daemon); absent with p latched: see
 * daemon_kill_key_missing. */
bd_err_t bd_daemon_sync_kill(bd_daemon_t *dm, bd_portfolio_t *p, char *err, size_t errlen)
{
    bd_redis_kill_t k;
    bd_err_t rc = bd_redis_get_kill_info(dm->r, p->name, &k, err, errlen);
    if (rc != BD_OK) return rc;
    if (k.killed && !p->killed) {
        bd_killswitch_latch(p, k.reason, k.by, k.at);
        bd_log_kv(BD_LOG_INFO, p->name, p->alloc_cycle, "%s: killed by %s (%s)", p->name, p->kill_by,
                  k.reason);
    } else if (!k.killed && p->killed) {
        return daemon_kill_key_missing(dm, p, err, errlen);
    }
    return BD_OK;
}

/* Redis answered p's command with an error (a key of the wrong type, ...)
 * while the connection is fine: p's problem, not an outage. p is held (its
 * writes are refused the same way and retried by publish.c) and reported
 * once; the caller goes on with the other portfolios. */
void bd_daemon_refused(bd_portfolio_t *p, const char *what, const char *err)
{
    if (!p->redis_held)
        bd_log(BD_LOG_WARN, "%s: Redis refused %s %s (%s): held until the key is fixed; the other "
               "portfolios go on", p->name, what, p->name, err);
    p->redis_held = 1;
}

/* Writes again what the engine knows of p (docs/CONTRACT.md v2 §6.3):
 * Redis lost its keys. */
static void daemon_republish(bd_daemon_t *dm, bd_portfolio_t *p)
{
    char err[512];
    size_t n1 = p->n ? p->n : 1;
    bd_redis_field_t *ch = bd_xcalloc(n1, sizeof(*ch));
    char (*names)[BD_NAME_MAX + 1] = bd_xcalloc(n1, sizeof(*names));
    for (size_t i = 0; i < p->n; i++) { /* v2: an arm as arm:C/A, as publish writes it */
        bd_channel_field(&p->ch[i], names[i]);
        ch[i] = (bd_redis_field_t){names[i], p->ch[i].x};
    }
    unsigned char *state = NULL;
    size_t scap = 0, slen = bd_checkpoint_encode(p, &state, &scap);
    bd_redis_republish_t rp = {
        .portfolio = p->name, .cycle = p->alloc_cycle, .mode = bd_mode_name(p->pol->mode),
        .status = bd_status_name(p->status), .decided_at = (int64_t)time(NULL),
        .known_version = (int64_t)p->version, .epoch = p->epoch, .state = state, .state_len = slen,
        .ch = ch, .n_ch = p->n, .kill_reason = p->killed ? bd_killswitch_key_reason(p) : NULL,
        .kill_by = p->kill_by, .kill_at = p->kill_at,
    };
    int64_t version;
    bd_err_t rc = bd_redis_republish(dm->r, &rp, &version, err, sizeof(err));
    if (rc == BD_OK) {
        p->version = (uint64_t)version;
        p->ckpt_offset = p->offset;
        p->first_unsaved = -1;
        bd_log(BD_LOG_WARN, "%s: Redis lost its keys (restarted empty?): republished alloc (cycle %lld, "
               "version %lld, %s), state%s", p->name, (long long)p->alloc_cycle, (long long)version,
               bd_status_name(p->status), p->killed ? " and the kill key" : "");
    } else if (rc == BD_ERR_FENCED) {
        p->fenced_out = true;
    } else if (rc != BD_ERR_STALE) {
        bd_log(BD_LOG_WARN, "%s: republish after lost keys failed: %s", p->name, err);
    }
    free(state);
    free(ch);
    free(names);
}

/* Did Redis lose the keys of portfolios we own (restarted empty, a
 * failover that lost writes)? Every portfolio we claimed has a fence; one
 * gone means its alloc, state and kill key are gone too: republish them at
 * once rather than at the next decision. At most once a second, and at
 * once after the connection was re-established. Runs after a write: no
 * decision is queued but those of held portfolios, which are skipped, so
 * that what is republished is the latest. */
void bd_daemon_check_lost_keys(bd_daemon_t *dm, time_t now)
{
    unsigned long conns = bd_redis_reconnects(dm->r);
    if (now == dm->last_fence_check && conns == dm->fence_check_conns) return;
    bd_ptable_t *t = bd_engine_table(dm->e);
    size_t np = bd_ptable_count(t), n = 0;
    bd_portfolio_t **own = bd_xcalloc(np ? np : 1, sizeof(*own));
    const char **names = bd_xcalloc(np ? np : 1, sizeof(*names));
    for (size_t i = 0; i < np; i++) {
        bd_portfolio_t *p = bd_ptable_at(t, i);
        /* held portfolios still have decisions queued: they republish when written */
        if (p->epoch == 0 || p->open == INT64_MIN || p->partition < 0 || p->alloc_cycle == INT64_MIN ||
            p->redis_held)
            continue;
        own[n] = p;
        names[n++] = p->name;
    }
    int *exists = bd_xcalloc(n ? n : 1, sizeof(*exists));
    char err[512];
    if (bd_redis_fences_exist(dm->r, names, n, exists, err, sizeof(err)) == BD_OK) {
        dm->last_fence_check = now;
        dm->fence_check_conns = bd_redis_reconnects(dm->r);
        for (size_t i = 0; i < n; i++)
            if (!exists[i]) daemon_republish(dm, own[i]);
    }
    free(exists);
    free(names);
    free(own);
}

/* Follows p's run-time pins (PFX:{P}:pin, docs/CONTRACT.md §7): a channel
 * of p named in the hash is pinned to its amount, any other has none (its
 * config pin applies). A channel not seen yet gets its pin at the first
 * poll after it appears. */
bd_err_t bd_daemon_sync_pins(bd_daemon_t *dm, bd_portfolio_t *p, char *err, size_t errlen)
{
    bd_redis_chan_t *pins;
    size_t n;
    bd_err_t rc = bd_redis_get_pins(dm->r, p->name, &pins, &n, err, errlen);
    if (rc != BD_OK) return rc;
    for (size_t i = 0; i < p->n; i++) {
        bd_channel_t *c = &p->ch[i];
        double v = NAN;
        for (size_t k = 0; k < n; k++)
            if (!strcmp(pins[k].name, c->name)) v = pins[k].spend;
        if (isnan(v) && !isnan(c->pin))
            bd_log(BD_LOG_INFO, "%s: channel %s: run-time pin cleared", p->name, c->name);
        else if (!isnan(v) && !(v == c->pin))
            bd_log(BD_LOG_INFO, "%s: channel %s pinned at %.2f by operator", p->name, c->name, v);
        c->pin = v;
    }
    free(pins);
    return BD_OK;
}

/* Takes p's requests to clear a channel's data fault (PFX:{P}:fault_clear,
 * `budgetd resume P --channel C`): the fault ends and the channel learns
 * again from the cycle now open (fault.h: an operator's clear). */
static bd_err_t daemon_sync_resumes(bd_daemon_t *dm, bd_portfolio_t *p, char *err, size_t errlen)
{
    char **names;
    size_t n;
    bd_err_t rc = bd_redis_take_resumes(dm->r, p->name, &names, &n, err, errlen);
    if (rc != BD_OK) return rc;
    for (size_t k = 0; k < n; k++) {
        int ci = -1;
        for (size_t i = 0; i < p->n && ci < 0; i++)
            if (!strcmp(p->ch[i].name, names[k])) ci = (int)i;
        const char *kind = ci < 0 ? NULL : bd_fault_name((bd_fault_kind_t)p->ch[ci].fault.kind);
        if (!kind) {
            bd_log(BD_LOG_INFO, "%s: channel %s: resume requested, but it has no data fault", p->name,
                   names[k]);
            continue;
        }
        bd_fault_operator_clear(&p->ch[ci].fault, p->open);
        bd_log(BD_LOG_INFO, "%s: channel %s: %s fault cleared by operator; learning again", p->name,
               names[k], kind);
    }
    bd_redis_names_free(names, n);
    return BD_OK;
}

/* Pins and fault clears of every started portfolio, polled with the kill
 * keys (before the cycle closes of a sync run). */
void bd_daemon_poll_limits(bd_daemon_t *dm)
{
    bd_ptable_t *t = bd_engine_table(dm->e);
    size_t n = bd_ptable_count(t);
    char err[512];
    for (size_t i = 0; i < n; i++) {
        bd_portfolio_t *p = bd_ptable_at(t, i);
        if (p->open == INT64_MIN || p->partition < 0) continue;
        if (bd_daemon_sync_pins(dm, p, err, sizeof(err)) != BD_OK ||
            daemon_sync_resumes(dm, p, err, sizeof(err)) != BD_OK)
            return; /* Redis down: next round */
    }
}

/* Operator kill keys, polled before the cycle closes of a sync run: a kill
 * set by an operator stops the portfolio at the decisions about to be made;
 * a cleared kill resumes it. Touches only the latch, so it may run while
 * close jobs are queued. */
void bd_daemon_poll_kills(bd_daemon_t *dm)
{
    bd_ptable_t *t = bd_engine_table(dm->e);
    size_t n = bd_ptable_count(t);
    char err[512];
    for (size_t i = 0; i < n; i++) {
        bd_portfolio_t *p = bd_ptable_at(t, i);
        if (p->open == INT64_MIN || p->partition < 0) continue;
        if (bd_daemon_sync_kill(dm, p, err, sizeof(err)) == BD_OK) continue;
        if (!bd_redis_connected(dm->r)) return; /* Redis down: next round */
        bd_daemon_refused(p, "reading the kill key of", err);
    }
}

/* Drops p: another process owns it (or may: a lost assignment). Its queued
 * decisions are discarded unwritten and its state forgotten, so that it is
 * restored from Redis (and claimed anew) if it comes back. */
void bd_daemon_drop(bd_daemon_t *dm, bd_portfolio_t *p)
{
    if (p->pending) bd_engine_flush(dm->e);
    bd_publish_discard(dm->pub, p);
    bd_engine_forget(dm->e, p);
}
