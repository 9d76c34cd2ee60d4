/* engine.c: from a decoded event to queued cycle closes (CONTRACT §1-§2):
 * validation that needs state, dedup, the portfolio table, event-time cycle
 * aggregation, watermarks, lateness and late events. Closed cycles become
 * decide jobs (decide.c) that run in parallel across portfolios and are
 * emitted in queue order, so output is independent of the thread count. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "budgetd/decide.h"
#include "budgetd/dedup.h"
#include "budgetd/engine.h"

#define BD_JOBS_MAX 4096          /* queued closes before a forced flush */
#define BD_DEDUP_CAPACITY (1u << 20)

struct bd_engine {
    const bd_config_t *cfg;
    bd_engine_opts_t opts;
    bd_ptable_t *table;
    bd_dedup_t *dedup;
    bd_engine_stats_t stats;
    size_t n_unlisted;            /* portfolios held that the config does not list */
    int64_t newest_ts;            /* newest accepted event or watermark time, all portfolios:
                                   * the time guard's reference in event time */
    int nslots;
    bd_decide_job_t *jobs;
    size_t njobs, jobs_cap;
    bd_err_t sink_err;
};

bd_engine_t *bd_engine_new(const bd_config_t *cfg, const bd_engine_opts_t *opts)
{
    bd_engine_t *e = bd_xcalloc(1, sizeof(*e));
    e->cfg = cfg;
    e->opts = *opts;
    if (e->opts.threads < 1) e->opts.threads = 1;
    e->table = bd_ptable_new();
    e->dedup = bd_dedup_new(BD_DEDUP_CAPACITY, cfg->dedup_window);
    if (opts->prefault) bd_dedup_prefault(e->dedup);
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
    bd_ptable_free(e->table);
    bd_dedup_free(e->dedup);
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
} pool_t;

static void *pool_worker(void *arg)
{
    pool_t *pl = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&pl->next, 1);
        if (i >= pl->e->njobs) return NULL;
        bd_decide_run(&pl->e->jobs[i]);
    }
}

/* Runs every queued job (on worker threads when there are enough to pay for
 * them), then hands the records to the sink in queue order. */
bd_err_t bd_engine_flush(bd_engine_t *e)
{
    if (e->njobs == 0) return e->sink_err;
    int nt = e->opts.threads;
    if ((size_t)nt > e->njobs / 4) nt = (int)(e->njobs / 4);
    if (nt <= 1) {
        for (size_t i = 0; i < e->njobs; i++) bd_decide_run(&e->jobs[i]);
    } else {
        pool_t pl = {.e = e};
        atomic_init(&pl.next, 0);
        pthread_t th[64];
        if (nt > 64) nt = 64;
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

/* Closes every cycle of p whose end is at or before t. */
static void engine_close_until(bd_engine_t *e, bd_portfolio_t *p, int64_t t)
{
    while (p->open != INT64_MIN && (p->open + 1) * e->cfg->cycle <= t) engine_close_cycle(e, p);
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

/* Index of channel name in p, or -1 when p does not hold it yet. */
static int engine_channel_index(const bd_portfolio_t *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->ch[i].name, name) == 0) return (int)i;
    return -1;
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

/* Applies a decoded event; key is its dedup key when the caller computed it
 * already (NULL: computed here when the event has an id). */
static bd_reject_t engine_apply(bd_engine_t *e, const bd_event_t *ev, const bd_dedup_key_t *key,
                                char *detail, size_t dlen, bd_err_t *err)
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
    bd_portfolio_t *p = engine_portfolio(e, ev->portfolio, &why);
    if (!p) return engine_refuse_portfolio(e, why, ev->portfolio, detail, dlen);
    int ci = engine_channel_index(p, ev->channel);
    if (ci < 0 && !engine_channel_room(p, ev->channel)) {
        snprintf(detail, dlen, "portfolio '%s' holds %d channels (max_channels): channel '%s' refused",
                 ev->portfolio, p->pol->max_channels, ev->channel);
        return engine_reject(e, BD_REJ_TOO_MANY_CHANNELS, ev->portfolio);
    }
    bd_dedup_key_t k;
    if (ev->event_id[0] && !key) {
        bd_dedup_key(ev->portfolio, ev->event_id, &k);
        key = &k;
    }
    if (ev->event_id[0] &&
        bd_dedup_check_key_at(e->dedup, key, ev->ts, ev->ts > p->newest_ts ? ev->ts : p->newest_ts)) {
        e->stats.duplicates++;
        if (err) *err = e->sink_err;
        return BD_REJ_NONE;
    }
    e->stats.accepted++;
    if (ev->ts > e->newest_ts) e->newest_ts = ev->ts;
    if (p->open == INT64_MIN) engine_first_sight(e, p, ev->channel, ev->ts);

    if (ci < 0) ci = engine_channel_index(p, ev->channel); /* first sight adds channels */
    if (ci < 0) {
        if (p->pending) bd_engine_flush(e); /* the job reads the channel array */
        ci = bd_portfolio_channel(p, ev->channel);
    }
    if (ev->ts > p->newest_ts) p->newest_ts = ev->ts;
    if (ev->ts > p->last_event_ts || p->last_event_ts == INT64_MIN) p->last_event_ts = ev->ts;
    engine_close_until(e, p, p->newest_ts - e->cfg->lateness);

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

bd_reject_t bd_engine_apply(bd_engine_t *e, const bd_event_t *ev, char *detail, size_t dlen,
                            bd_err_t *err)
{
    return engine_apply(e, ev, NULL, detail, dlen, err);
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

void bd_engine_remember(bd_engine_t *e, const bd_event_t *ev)
{
    bd_portfolio_t *p = bd_ptable_find(e->table, ev->portfolio, strlen(ev->portfolio));
    if (ev->kind != BD_EV_DATA || !ev->event_id[0] || !p) return;
    bd_dedup_check_at(e->dedup, ev->portfolio, ev->event_id, ev->ts,
                      ev->ts > p->newest_ts ? ev->ts : p->newest_ts);
}

typedef struct {
    bd_engine_t *e;
    bd_engine_decoded_t *d;
} decode_ctx_t;

/* Decode hook (bd_event_decode_ex): hashes the event's dedup key and
 * prefetches its bucket before the decoder returns. At 1M ids the lookup is
 * a cache miss; overlapping it saved ~70-90 ns per event (bench_ingest). */
static void decode_ready(void *ctx, const bd_event_t *ev)
{
    decode_ctx_t *c = ctx;
    if (ev->kind != BD_EV_DATA || !ev->event_id[0]) return;
    bd_dedup_key(ev->portfolio, ev->event_id, &c->d->key);
    bd_dedup_prefetch(c->e->dedup, &c->d->key);
    c->d->keyed = true;
}

/* Decodes with the prefetch hook; d->keyed tells apply whether to reuse. */
bd_reject_t bd_engine_decode(bd_engine_t *e, const char *buf, size_t len, bd_engine_decoded_t *d,
                             char *detail, size_t dlen)
{
    decode_ctx_t c = {e, d};
    d->keyed = false;
    return bd_event_decode_ex(buf, len, &d->ev, detail, dlen, decode_ready, &c);
}

/* Applies d->ev with the key hashed at decode time, when there is one. */
bd_reject_t bd_engine_apply_decoded(bd_engine_t *e, const bd_engine_decoded_t *d, char *detail,
                                    size_t dlen, bd_err_t *err)
{
    return engine_apply(e, &d->ev, d->keyed ? &d->key : NULL, detail, dlen, err);
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
    }
    e->cfg = cfg;
    return BD_OK;
}
