/* engine.c: from a decoded event to queued cycle closes (CONTRACT §1-§2):
 * validation that needs state, dedup, the portfolio table, event-time cycle
 * aggregation, watermarks, lateness and late events. Closed cycles become
 * decide jobs (decide.c) that run in parallel across portfolios and are
 * emitted in queue order, so output is independent of the thread count. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "budgetd/decide.h"
#include "budgetd/dedup.h"
#include "budgetd/engine.h"
#include "budgetd/log.h"

#define BD_JOBS_MAX 4096          /* queued closes before a forced flush */
#define BD_ENGINE_WORKERS_MAX 64  /* workers of one flush (more threads are not started) */

struct bd_engine {
    const bd_config_t *cfg;
    bd_engine_opts_t opts;
    bd_ptable_t *table;
    bd_engine_stats_t stats;
    size_t n_unlisted;            /* portfolios held that the config does not list */
    int64_t newest_ts;            /* newest accepted event or watermark time, all portfolios:
                                   * the time guard's reference in event time */
    int nslots;
    bd_decide_job_t *jobs;
    size_t njobs, jobs_cap;
    bd_decide_scratch_t scratch[BD_ENGINE_WORKERS_MAX]; /* one per worker of a flush */
    bd_err_t sink_err;
};

bd_engine_t *bd_engine_new(const bd_config_t *cfg, const bd_engine_opts_t *opts)
{
    bd_engine_t *e = bd_xcalloc(1, sizeof(*e));
    e->cfg = cfg;
    e->opts = *opts;
    if (e->opts.threads < 1) e->opts.threads = 1;
    e->table = bd_ptable_new();
    e->newest_ts = INT64_MIN;
    /* Cycles open at once: the oldest plus those within `lateness` of the
     * newest event. */
    e->nslots = (int)((cfg->lateness + cfg->cycle - 1) / cfg->cycle) + 2;
    return e;
}

void bd_engine_free(bd_engine_t *e)
{
    if (!e) return;
    for (size_t i = 0; i < e->jobs_cap; i++) bd_decide_job_free(&e->jobs[i]);
    free(e->jobs);
    for (int t = 0; t < BD_ENGINE_WORKERS_MAX; t++) bd_decide_scratch_free(&e->scratch[t]);
    bd_ptable_free(e->table);
    free(e);
}

const bd_engine_stats_t *bd_engine_stats(const bd_engine_t *e) { return &e->stats; }
bd_ptable_t *bd_engine_table(bd_engine_t *e) { return e->table; }
const bd_config_t *bd_engine_config(const bd_engine_t *e) { return e->cfg; }

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

typedef struct {
    bd_engine_t *e;
    atomic_size_t next;
    atomic_int worker;   /* the next worker's index into e->scratch */
} pool_t;

/* A worker of a flush: takes the next job until none is left, with its own
 * scratch (which worker runs a job does not change its result). */
static void *pool_worker(void *arg)
{
    pool_t *pl = arg;
    bd_decide_scratch_t *sc = &pl->e->scratch[atomic_fetch_add(&pl->worker, 1)];
    for (;;) {
        size_t i = atomic_fetch_add(&pl->next, 1);
        if (i >= pl->e->njobs) return NULL;
        bd_decide_run(&pl->e->jobs[i], sc);
    }
}

/* A job's per-decision buffers (aggregates, record channels, record JSON)
 * go back once the sink has the record: a job slot is kept for every
 * portfolio that closed in one flush, and these buffers were ~7% of the
 * engine's memory per (portfolio, channel) between flushes (issue 15). The
 * late queue stays: it is swapped with the portfolio's, not rebuilt. */
static void engine_job_trim(bd_decide_job_t *j)
{
    free(j->agg);
    free(j->json);
    free(j->dch);
    j->agg = NULL;
    j->json = NULL;
    j->dch = NULL;
    j->agg_cap = j->json_cap = j->dch_cap = 0;
    j->json_len = 0;
    j->d.ch = NULL;
}

/* Runs every queued job (on worker threads when there are enough to pay for
 * them), then hands the records to the sink in queue order. */
bd_err_t bd_engine_flush(bd_engine_t *e)
{
    if (e->njobs == 0) return e->sink_err;
    int nt = e->opts.threads;
    if ((size_t)nt > e->njobs / 4) nt = (int)(e->njobs / 4);
    if (nt <= 1) {
        for (size_t i = 0; i < e->njobs; i++) bd_decide_run(&e->jobs[i], &e->scratch[0]);
    } else {
        pool_t pl = {.e = e};
        atomic_init(&pl.next, 0);
        atomic_init(&pl.worker, 0);
        pthread_t th[BD_ENGINE_WORKERS_MAX];
        if (nt > BD_ENGINE_WORKERS_MAX) nt = BD_ENGINE_WORKERS_MAX;
        int started = 0;
        for (; started < nt - 1; started++)
            if (pthread_create(&th[started], NULL, pool_worker, &pl) != 0) break;
        pool_worker(&pl);
        for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    }
    for (size_t i = 0; i < e->njobs; i++) {
        bd_decide_job_t *j = &e->jobs[i];
        j->p->pending = false;
        e->stats.decisions++;
        if (j->verify_failed) e->stats.verify_failures++;
        if (e->sink_err == BD_OK && e->opts.sink) {
            bd_err_t rc = e->opts.sink(e->opts.sink_ctx, j->p, &j->d, j->json, j->json_len);
            if (rc != BD_OK) e->sink_err = rc;
        }
        engine_job_trim(j);
    }
    e->njobs = 0;
    return e->sink_err;
}

static bd_decide_job_t *engine_job(bd_engine_t *e, bd_portfolio_t *p)
{
    if (e->njobs == e->jobs_cap) {
        size_t ncap = e->jobs_cap ? e->jobs_cap * 2 : 64;
        e->jobs = bd_xrealloc(e->jobs, ncap * sizeof(*e->jobs));
        memset(e->jobs + e->jobs_cap, 0, (ncap - e->jobs_cap) * sizeof(*e->jobs));
        e->jobs_cap = ncap;
    }
    bd_decide_job_t *j = &e->jobs[e->njobs++];
    j->cfg = e->cfg;
    j->p = p;
    j->events = j->late = j->rejected = 0;
    j->n_late_items = 0;
    j->last_event_ts = p->last_event_ts;
    p->pending = true;
    return j;
}

static int64_t engine_now(const bd_engine_t *e, int64_t event_time)
{
    return e->opts.live ? (int64_t)time(NULL) : event_time;
}

/* Queues the close of p's oldest open cycle: its aggregates move into the
 * job, the counters since the last decision with them. */
static void engine_close_cycle(bd_engine_t *e, bd_portfolio_t *p)
{
    if (p->pending || e->njobs >= BD_JOBS_MAX) bd_engine_flush(e);
    int64_t c = p->open;
    bd_decide_job_t *j = engine_job(e, p);
    if (j->agg_cap < p->n) {
        j->agg = bd_xrealloc(j->agg, p->n * sizeof(*j->agg));
        j->agg_cap = p->n;
    }
    bd_agg_t *slot = bd_portfolio_slot(p, c);
    memcpy(j->agg, slot, p->n * sizeof(*slot));
    memset(slot, 0, p->cap * sizeof(*slot));
    size_t s = bd_portfolio_slot_index(p, c);
    j->events = p->slot_events[s];
    p->slot_events[s] = 0;
    j->late = p->late;
    j->rejected = p->rejected;
    p->late = p->rejected = 0;
    /* the late reports since the last close go with it (swap: no copy) */
    bd_late_t *q = j->late_items;
    size_t qcap = j->late_items_cap;
    j->late_items = p->late_q;
    j->n_late_items = p->n_late;
    j->late_items_cap = p->late_cap;
    p->late_q = q;
    p->late_cap = qcap;
    p->n_late = 0;
    j->cycle = c + 1;
    j->initial = false;
    j->decided_at = engine_now(e, (c + 1) * e->cfg->cycle);
    p->open = c + 1;
}

/* Closes every cycle of p whose end is at or before t: (open + 1) * cycle
 * <= t, compared as cycle numbers, since that product overflows int64 for
 * a time within a cycle of its top (a first event or watermark there made
 * it wrap and this loop close cycles without end). */
static void engine_close_until(bd_engine_t *e, bd_portfolio_t *p, int64_t t)
{
    while (p->open != INT64_MIN && p->open < floor_div(t, e->cfg->cycle)) engine_close_cycle(e, p);
}

/* First sight of a portfolio (event or watermark at time t): registers the
 * configured channels and queues the initial allocation for t's cycle. */
static void engine_first_sight(bd_engine_t *e, bd_portfolio_t *p, const char *channel, int64_t t)
{
    if (p->pc)
        for (size_t i = 0; i < p->pc->n_channels; i++) bd_portfolio_channel(p, p->pc->channels[i].name);
    if (channel) bd_portfolio_channel(p, channel);
    p->open = floor_div(t, e->cfg->cycle);
    bd_decide_job_t *j = engine_job(e, p);
    j->initial = true;
    j->cycle = p->open;
    j->decided_at = engine_now(e, t);
}

/* The portfolio of name, created when the config allows it; otherwise NULL
 * and *why says unknown_portfolio or too_many_portfolios. Listed portfolios
 * are always admitted (check keeps their number within max_portfolios); an
 * unlisted one only while the process holds fewer than max_portfolios,
 * counting every listed one as held. */
static bd_portfolio_t *engine_portfolio(bd_engine_t *e, const char *name, bd_reject_t *why)
{
    size_t len = strlen(name);
    bd_portfolio_t *p = bd_ptable_find(e->table, name, len);
    if (p) return p;
    const bd_portfolio_cfg_t *pc = bd_config_portfolio(e->cfg, name);
    *why = BD_REJ_UNKNOWN_PORTFOLIO;
    if (!pc && !e->cfg->has_default_budget) return NULL;
    *why = BD_REJ_TOO_MANY_PORTFOLIOS;
    if (!pc && (int64_t)(e->n_unlisted + e->cfg->n_portfolios) >= e->cfg->max_portfolios)
        return NULL;
    if (!pc) e->n_unlisted++;
    p = bd_ptable_add(e->table, name, pc, pc ? &pc->p : &e->cfg->defaults, e->nslots);
    p->cycle_len = e->cfg->cycle;
    p->dedup = bd_dedup_new(e->cfg->dedup_window, (size_t)e->cfg->dedup_max_ids);
    return p;
}

bd_portfolio_t *bd_engine_portfolio(bd_engine_t *e, const char *name)
{
    bd_reject_t why;
    return engine_portfolio(e, name, &why);
}

/* The reject of an event or watermark whose portfolio was refused. */
static bd_reject_t engine_refuse_portfolio(bd_engine_t *e, bd_reject_t why, const char *name,
                                           char *detail, size_t dlen)
{
    if (why == BD_REJ_TOO_MANY_PORTFOLIOS)
        snprintf(detail, dlen, "portfolio '%s' is not configured and %lld portfolios are held "
                 "(max_portfolios)", name, (long long)e->cfg->max_portfolios);
    else
        snprintf(detail, dlen, "portfolio '%s' is not configured and defaults.budget is absent",
                 name);
    e->stats.rejected[why]++;
    return why;
}

/* Whether a channel p does not hold yet may join it: a listed one always,
 * another while p holds fewer than max_channels (its listed channels count
 * from the start, as its first sight registers them). */
static bool engine_channel_room(const bd_portfolio_t *p, const char *name)
{
    size_t held = p->n, listed = p->pc ? p->pc->n_channels : 0;
    for (size_t i = 0; i < listed; i++)
        if (strcmp(p->pc->channels[i].name, name) == 0) return true;
    if (held < listed) held = listed;
    return held < (size_t)p->pol->max_channels;
}

/* Counts reject r, and against the portfolio named when the engine holds
 * it already: a rejected line never creates one (docs/DECISIONS.md "A
 * rejected line creates and claims nothing"), so a malformed line naming
 * a portfolio nobody sent a valid event for leaves no trace but the count. */
static bd_reject_t engine_reject(bd_engine_t *e, bd_reject_t r, const char *portfolio)
{
    e->stats.rejected[r]++;
    if (portfolio && *portfolio) {
        bd_portfolio_t *p = bd_ptable_find(e->table, portfolio, strlen(portfolio));
        if (p) {
            p->rejected++;
        }
    }
    return r;
}

/* A watermark: every event of the portfolio (or of all, for "*") with
 * ts < T has been sent, so cycles ending at or before T close. */
static bd_reject_t engine_watermark(bd_engine_t *e, const bd_event_t *ev, char *detail, size_t dlen)
{
    e->stats.watermarks++;
    if (strcmp(ev->portfolio, "*") == 0) {
        size_t n = bd_ptable_count(e->table);
        for (size_t i = 0; i < n; i++) {
            bd_portfolio_t *p = bd_ptable_at(e->table, i);
            if (ev->ts > p->watermark) p->watermark = ev->ts;
            engine_close_until(e, p, ev->ts);
        }
        return BD_REJ_NONE;
    }
    bd_reject_t why;
    bd_portfolio_t *p = engine_portfolio(e, ev->portfolio, &why);
    if (!p) return engine_refuse_portfolio(e, why, ev->portfolio, detail, dlen);
    if (p->open == INT64_MIN) engine_first_sight(e, p, NULL, ev->ts);
    if (ev->ts > p->watermark) p->watermark = ev->ts;
    engine_close_until(e, p, ev->ts);
    return BD_REJ_NONE;
}

/* The time guard (docs/CONTRACT.md v2 §1), one for events and watermarks:
 * true when ev's time lies more than max_ahead past the reference, which is
 * the wall clock in live mode and otherwise the newest time accepted so far
 * of either kind (none yet: the first record sets it). One far-future time
 * would otherwise move a portfolio's cycle into the future for good. */
static bool engine_too_far_ahead(const bd_engine_t *e, const bd_event_t *ev, char *detail,
                                 size_t dlen)
{
    int64_t ref = e->opts.live ? (int64_t)time(NULL) : e->newest_ts;
    if (ref == INT64_MIN || ev->ts - ref <= e->cfg->max_ahead) return false;
    snprintf(detail, dlen, "%s %lld is more than %llds (max_ahead) past %s %lld",
             ev->kind == BD_EV_WATERMARK ? "watermark" : "ts", (long long)ev->ts,
             (long long)e->cfg->max_ahead,
             e->opts.live ? "the wall clock" : "the newest accepted time", (long long)ref);
    return true;
}

/* What a data event is to its portfolio's dedup store (engine_dedup). */
typedef enum { DD_NEW, DD_DUP, DD_RESTATE, DD_REJECT } dd_verdict_t;

typedef struct {
    bd_dedup_key_t key;       /* valid when the event has an event_id */
    int64_t now;              /* the store's clock: the portfolio's newest ts, the event's included */
    bd_dedup_entry_t held;    /* DD_RESTATE: what the store kept of the id */
    int64_t cycle;            /* DD_RESTATE: the interval restated */
    bd_agg_t diff;            /* DD_RESTATE: the new numbers minus the held ones */
} dd_t;

/* Index of channel name in p, or -1 (nothing is registered). */
static int engine_find_channel(const bd_portfolio_t *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->ch[i].name, name) == 0) return (int)i;
    return -1;
}

/* Whether adding d to an aggregate field a leaves it >= 0 up to rounding
 * (a restatement subtracts what the same event added, so only rounding can
 * take an open aggregate below 0 unless the state lost the event's numbers). */
static bool restate_field_ok(double a, double d)
{
    return a + d >= -1e-9 * fmax(1.0, fabs(a) + fabs(d));
}

/* a + d, a result within rounding of 0 written as 0 (checked before). */
static double restate_field(double a, double d)
{
    double r = a + d;
    return r > 0 ? r : 0.0;
}

/* A higher rev of a held id (CONTRACT v2 §1): it must name the same channel
 * and interval as the version held, and when that interval is still open
 * the difference must not take its aggregate below 0. Fills dd->cycle and
 * dd->diff; BD_REJ_BAD_REV with the reason in detail otherwise. */
static bd_reject_t engine_restate_check(const bd_engine_t *e, bd_portfolio_t *p,
                                        const bd_event_t *ev, int ci, dd_t *dd, char *detail,
                                        size_t dlen)
{
    const bd_dedup_entry_t *h = &dd->held;
    if (ci < 0 || (uint32_t)ci != h->ch) {
        snprintf(detail, dlen, "rev %u of event_id '%s' names channel '%s'; rev %u named '%s'",
                 ev->rev, ev->event_id, ev->channel, h->rev, h->ch < p->n ? p->ch[h->ch].name : "?");
        return BD_REJ_BAD_REV;
    }
    dd->cycle = floor_div(h->ts, e->cfg->cycle);
    int64_t c = floor_div(ev->ts, e->cfg->cycle);
    if (c != dd->cycle) {
        snprintf(detail, dlen, "rev %u of event_id '%s' moves it from cycle %lld to cycle %lld",
                 ev->rev, ev->event_id, (long long)dd->cycle, (long long)c);
        return BD_REJ_BAD_REV;
    }
    const double nv[5] = {ev->spend, ev->impressions, ev->clicks, ev->conversions, ev->revenue};
    double dv[5];
    for (int k = 0; k < 5; k++) dv[k] = nv[k] - h->num[k];
    dd->diff = (bd_agg_t){dv[0], dv[1], dv[2], dv[3], dv[4], 0};
    if (dd->cycle < p->open) return BD_REJ_NONE; /* closed: a late report, possibly negative */
    const bd_agg_t *a = &bd_portfolio_slot(p, dd->cycle)[ci];
    const double av[5] = {a->spend, a->impressions, a->clicks, a->conversions, a->revenue};
    static const char *const name[5] = {"spend", "impressions", "clicks", "conversions", "revenue"};
    for (int k = 0; k < 5; k++)
        if (!restate_field_ok(av[k], dv[k])) {
            snprintf(detail, dlen,
                     "rev %u of event_id '%s' would make the open interval's %s %g "
                     "(it holds %g, rev %u reported %g)",
                     ev->rev, ev->event_id, name[k], av[k] + dv[k], av[k], h->rev, h->num[k]);
            return BD_REJ_BAD_REV;
        }
    return BD_REJ_NONE;
}

/* Looks ev up in p's dedup store without changing what it holds (but for
 * forgetting an expired id): new (no id, or not held), duplicate (held
 * with an equal or higher rev, or without rev), a restatement (a higher
 * rev, checked by engine_restate_check), or bad_rev (rev on an id first
 * seen without one, or a restatement that cannot apply; detail says why).
 * key: ev's key when the caller has it; ci: ev's channel index in p (-1:
 * not registered). */
static dd_verdict_t engine_dedup(const bd_engine_t *e, bd_portfolio_t *p, const bd_event_t *ev,
                                 const bd_dedup_key_t *key, int ci, dd_t *dd, char *detail,
                                 size_t dlen)
{
    dd->now = ev->ts > p->newest_ts ? ev->ts : p->newest_ts;
    if (!ev->event_id[0]) return DD_NEW;
    if (key) dd->key = *key;
    else bd_dedup_key(ev->event_id, &dd->key);
    if (!bd_dedup_find(p->dedup, &dd->key, dd->now, &dd->held)) return DD_NEW;
    if (dd->held.rev == BD_DEDUP_NO_REV) {
        if (!ev->has_rev) return DD_DUP;
        snprintf(detail, dlen,
                 "event_id '%s' was first seen without rev (a connector that restates sends rev "
                 "with every version, from 0)",
                 ev->event_id);
        return DD_REJECT;
    }
    if (!ev->has_rev || ev->rev <= dd->held.rev) return DD_DUP;
    return engine_restate_check(e, p, ev, ci, dd, detail, dlen) == BD_REJ_NONE ? DD_RESTATE
                                                                               : DD_REJECT;
}

/* Records a new event's id in p's store, with the channel and numbers of a
 * rev'd one. Runs after the cycle closes the event triggers: a checkpoint
 * those closes write must not hold an id whose numbers it does not hold.
 * Ids dropped for dedup_max_ids are counted, and logged once per store. */
static void engine_dedup_add(bd_engine_t *e, bd_portfolio_t *p, const bd_event_t *ev,
                             const dd_t *dd, int ci)
{
    bd_dedup_entry_t ent = {.ts = ev->ts, .rev = BD_DEDUP_NO_REV};
    if (ev->has_rev) {
        ent.rev = ev->rev;
        ent.ch = (uint32_t)ci;
        ent.num[0] = ev->spend, ent.num[1] = ev->impressions, ent.num[2] = ev->clicks;
        ent.num[3] = ev->conversions, ent.num[4] = ev->revenue;
    }
    size_t dropped = bd_dedup_add(p->dedup, &dd->key, dd->now, &ent);
    if (!dropped) return;
    e->stats.dedup_evicted += dropped;
    if (bd_dedup_evicted(p->dedup) == dropped)
        bd_log(BD_LOG_WARN,
               "%s: %lld event ids held (dedup_max_ids): the oldest are dropped, and a resend of "
               "one would count again",
               p->name, (long long)e->cfg->dedup_max_ids);
}

/* Applies a checked restatement: the difference goes into its interval's
 * open aggregate, or for a closed interval into the late queue (decide.c
 * applies it at the next close, like a late event); the store then keeps
 * the new rev and numbers. The event count is unchanged: same event. */
static void engine_restate_apply(bd_engine_t *e, bd_portfolio_t *p, const bd_event_t *ev,
                                 const dd_t *dd, int ci)
{
    e->stats.restated++;
    if (dd->cycle < p->open) {
        bd_portfolio_late(p, ci, dd->cycle, &dd->diff);
        p->late++;
        e->stats.late++;
    } else {
        bd_agg_t *a = &bd_portfolio_slot(p, dd->cycle)[ci];
        a->spend = restate_field(a->spend, dd->diff.spend);
        a->impressions = restate_field(a->impressions, dd->diff.impressions);
        a->clicks = restate_field(a->clicks, dd->diff.clicks);
        a->conversions = restate_field(a->conversions, dd->diff.conversions);
        a->revenue = restate_field(a->revenue, dd->diff.revenue);
    }
    const double nv[5] = {ev->spend, ev->impressions, ev->clicks, ev->conversions, ev->revenue};
    bd_dedup_restate(p->dedup, &dd->key, ev->rev, nv);
}

/* Applies a decoded event; key is its dedup key and p its portfolio when
 * the caller has them already (NULL: found here). */
static bd_reject_t engine_apply(bd_engine_t *e, const bd_event_t *ev, const bd_dedup_key_t *key,
                                bd_portfolio_t *p, char *detail, size_t dlen, bd_err_t *err)
{
    if (err) *err = BD_OK;
    if (engine_too_far_ahead(e, ev, detail, dlen))
        return engine_reject(e, BD_REJ_TS_OUT_OF_RANGE, ev->portfolio);
    bd_reject_t r;
    if (ev->kind == BD_EV_WATERMARK) {
        r = engine_watermark(e, ev, detail, dlen);
        if (r == BD_REJ_NONE && ev->ts > e->newest_ts) e->newest_ts = ev->ts;
        if (err) *err = e->sink_err;
        return r;
    }
    bd_reject_t why;
    if (!p) p = engine_portfolio(e, ev->portfolio, &why);
    if (!p) return engine_refuse_portfolio(e, why, ev->portfolio, detail, dlen);
    /* the channel first: a plain lookup, and it gives the store's cache
     * miss (prefetched at decode) time to arrive */
    int ci = engine_find_channel(p, ev->channel);
    if (ci < 0 && !engine_channel_room(p, ev->channel)) {
        snprintf(detail, dlen, "portfolio '%s' holds %d channels (max_channels): channel '%s' refused",
                 ev->portfolio, p->pol->max_channels, ev->channel);
        return engine_reject(e, BD_REJ_TOO_MANY_CHANNELS, ev->portfolio);
    }
    dd_t dd;
    dd_verdict_t v = engine_dedup(e, p, ev, key, ci, &dd, detail, dlen);
    if (v == DD_DUP) {
        e->stats.duplicates++;
        if (err) *err = e->sink_err;
        return BD_REJ_NONE;
    }
    if (v == DD_REJECT) return engine_reject(e, BD_REJ_BAD_REV, ev->portfolio);
    e->stats.accepted++;
    if (ev->ts > e->newest_ts) e->newest_ts = ev->ts;
    if (p->open == INT64_MIN) {
        engine_first_sight(e, p, ev->channel, ev->ts);
        ci = engine_find_channel(p, ev->channel); /* registered the config's channels */
    }
    if (ci < 0) {
        if (p->pending) bd_engine_flush(e); /* the job reads the channel array */
        ci = bd_portfolio_channel(p, ev->channel);
    }
    if (ev->ts > p->newest_ts) p->newest_ts = ev->ts;
    if (ev->ts > p->last_event_ts || p->last_event_ts == INT64_MIN) p->last_event_ts = ev->ts;
    engine_close_until(e, p, p->newest_ts - e->cfg->lateness);

    if (v == DD_RESTATE) {
        engine_restate_apply(e, p, ev, &dd, ci);
        if (err) *err = e->sink_err;
        return BD_REJ_NONE;
    }
    if (ev->event_id[0]) engine_dedup_add(e, p, ev, &dd, ci);
    bd_agg_t one = {ev->spend, ev->impressions, ev->clicks, ev->conversions, ev->revenue, 1};
    int64_t c = floor_div(ev->ts, e->cfg->cycle);
    if (c < p->open) {
        /* Late: its cycle was decided already. It never reopens the
         * decision; the next close applies it to its own interval (lag.h),
         * so nothing here waits for the decisions in flight. */
        bd_portfolio_late(p, ci, c, &one);
        p->late++;
        e->stats.late++;
    } else {
        bd_agg_t *a = &bd_portfolio_slot(p, c)[ci];
        a->spend += one.spend;
        a->impressions += one.impressions;
        a->clicks += one.clicks;
        a->conversions += one.conversions;
        a->revenue += one.revenue;
        a->events++;
        p->slot_events[bd_portfolio_slot_index(p, c)]++;
    }
    if (err) *err = e->sink_err;
    return BD_REJ_NONE;
}

/* See engine.h. Only the guard whose verdict no portfolio state can
 * change: against the wall clock (live), not against the newest accepted
 * time, which a portfolio's restore may still move (bd_engine_restored). */
bd_reject_t bd_engine_screen(const bd_engine_t *e, const bd_event_t *ev, char *detail, size_t dlen)
{
    if (e->opts.live && engine_too_far_ahead(e, ev, detail, dlen)) return BD_REJ_TS_OUT_OF_RANGE;
    return BD_REJ_NONE;
}

bd_reject_t bd_engine_apply(bd_engine_t *e, const bd_event_t *ev, char *detail, size_t dlen,
                            bd_err_t *err)
{
    return engine_apply(e, ev, NULL, NULL, detail, dlen, err);
}

void bd_engine_forget(bd_engine_t *e, bd_portfolio_t *p)
{
    if (p->pending) bd_engine_flush(e);
    bd_portfolio_reset(p);
}

void bd_engine_restored(bd_engine_t *e, const bd_portfolio_t *p)
{
    if (p->newest_ts > e->newest_ts) e->newest_ts = p->newest_ts;
    if (p->watermark > e->newest_ts) e->newest_ts = p->watermark;
}

void bd_engine_count_reject(bd_engine_t *e, bd_reject_t r, bd_portfolio_t *p)
{
    e->stats.rejected[r]++;
    if (p) p->rejected++;
}

/* See engine.h. Does what applying ev would have done to the store (the
 * checkpoint's state already holds ev's numbers): records a new id, or
 * keeps a higher rev's numbers; a duplicate or an ev that would have been
 * rejected leaves it alone. */
void bd_engine_remember(bd_engine_t *e, const bd_event_t *ev)
{
    bd_portfolio_t *p = bd_ptable_find(e->table, ev->portfolio, strlen(ev->portfolio));
    if (ev->kind != BD_EV_DATA || !ev->event_id[0] || !p || p->dedup_restored) return;
    dd_t dd;
    char detail[256];
    int ci = engine_find_channel(p, ev->channel);
    dd_verdict_t v = engine_dedup(e, p, ev, NULL, ci, &dd, detail, sizeof detail);
    if (v == DD_RESTATE) {
        const double nv[5] = {ev->spend, ev->impressions, ev->clicks, ev->conversions, ev->revenue};
        bd_dedup_restate(p->dedup, &dd.key, ev->rev, nv);
    } else if (v == DD_NEW) {
        if (ci < 0) {
            if (p->pending) bd_engine_flush(e); /* the job reads the channel array */
            ci = bd_portfolio_channel(p, ev->channel);
        }
        engine_dedup_add(e, p, ev, &dd, ci);
    }
}

typedef struct {
    bd_engine_t *e;
    bd_engine_decoded_t *d;
} decode_ctx_t;

/* Decode hook (bd_event_decode_ex): hashes the event's dedup key, finds its
 * portfolio and prefetches the key's bucket in the portfolio's store before
 * the decoder returns. Overlapping that cache miss saved ~70-90 ns per
 * event on the former global window (bench_ingest); apply reuses both the
 * key and the portfolio. */
static void decode_ready(void *ctx, const bd_event_t *ev)
{
    decode_ctx_t *c = ctx;
    if (ev->kind != BD_EV_DATA) return;
    c->d->p = bd_ptable_find(c->e->table, ev->portfolio, strlen(ev->portfolio));
    if (!ev->event_id[0]) return;
    bd_dedup_key(ev->event_id, &c->d->key);
    c->d->keyed = true;
    if (c->d->p) bd_dedup_prefetch(c->d->p->dedup, &c->d->key);
}

/* Decodes with the prefetch hook; d->keyed and d->p tell apply what to reuse. */
bd_reject_t bd_engine_decode(bd_engine_t *e, const char *buf, size_t len, bd_engine_decoded_t *d,
                             char *detail, size_t dlen)
{
    decode_ctx_t c = {e, d};
    d->keyed = false;
    d->p = NULL;
    return bd_event_decode_ex(buf, len, &d->ev, detail, dlen, decode_ready, &c);
}

/* Applies d->ev with the key hashed and the portfolio found at decode time,
 * when there are. */
bd_reject_t bd_engine_apply_decoded(bd_engine_t *e, const bd_engine_decoded_t *d, char *detail,
                                    size_t dlen, bd_err_t *err)
{
    return engine_apply(e, &d->ev, d->keyed ? &d->key : NULL, d->p, detail, dlen, err);
}

bd_reject_t bd_engine_ingest(bd_engine_t *e, const char *line, size_t len, char *detail,
                             size_t dlen, bd_err_t *err)
{
    bd_engine_decoded_t d;
    e->stats.lines++;
    bd_reject_t r = bd_engine_decode(e, line, len, &d, detail, dlen);
    if (r != BD_REJ_NONE) {
        char pf[BD_NAME_MAX + 1];
        bd_event_portfolio_hint(line, len, pf, sizeof(pf));
        if (err) *err = e->sink_err;
        return engine_reject(e, r, pf);
    }
    return bd_engine_apply_decoded(e, &d, detail, dlen, err);
}

bd_err_t bd_engine_tick(bd_engine_t *e, int64_t now)
{
    size_t n = bd_ptable_count(e->table);
    for (size_t i = 0; i < n; i++)
        engine_close_until(e, bd_ptable_at(e->table, i), now - e->cfg->lateness);
    return bd_engine_flush(e);
}

bd_err_t bd_engine_reload(bd_engine_t *e, const bd_config_t *cfg, char *errbuf, size_t errlen)
{
    if (cfg->cycle != e->cfg->cycle || cfg->lateness != e->cfg->lateness)
        return bd_errf(errbuf, errlen, BD_ERR_CONFIG,
                       "%s: cycle and lateness cannot change while running (restart instead)",
                       cfg->path);
    size_t n = bd_ptable_count(e->table);
    for (size_t i = 0; i < n; i++) {
        bd_portfolio_t *p = bd_ptable_at(e->table, i);
        if (!bd_config_portfolio(cfg, p->name) && !cfg->has_default_budget)
            return bd_errf(errbuf, errlen, BD_ERR_CONFIG,
                           "%s: portfolio '%s' is live but no longer configured (and no defaults.budget)",
                           cfg->path, p->name);
    }
    bd_engine_flush(e);
    e->n_unlisted = 0;
    for (size_t i = 0; i < n; i++) {
        bd_portfolio_t *p = bd_ptable_at(e->table, i);
        const bd_portfolio_cfg_t *pc = bd_config_portfolio(cfg, p->name);
        bd_portfolio_rebind(p, pc, pc ? &pc->p : &cfg->defaults);
        if (!pc) e->n_unlisted++;
        if (p->dedup) bd_dedup_set_limits(p->dedup, cfg->dedup_window, (size_t)cfg->dedup_max_ids);
    }
    e->cfg = cfg;
    return BD_OK;
}
