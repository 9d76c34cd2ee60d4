/* loop.c: a config played closed-loop against one drawn environment
 * (whatif.h), and the runs of many configs and draws on worker threads.
 *
 * The engine is the one of `budgetd run` and `replay`: bd_engine_apply of
 * the environment's events, one watermark per portfolio closing each
 * cycle, decisions through a sink that plays the adapters (CONTRACT §3:
 * spend the allocation in force while the status is active, nothing
 * otherwise; the platform delivers up to its cap). So the config's own
 * guardrails, kill-switch, mode, fault detector and delivery learner run on
 * the spend it decided itself. Nobody acts: no proposal is approved, no
 * kill resumed.
 *
 * Return is the expected objective of the draw's curves at the spend made
 * (not the noisy outcome), so the spread over draws is the uncertainty of
 * the fit and of the config's own learning path, not of one cycle's luck;
 * the oracle is the exact water-fill of the same curves in the config's box
 * (bd_waterfill_solve), cycle by cycle. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/engine.h"
#include "budgetd/stats.h"
#include "budgetd/waterfill.h"
#include "budgetd/whatif.h"

/* The adapters' view of one portfolio: the allocation in force. */
typedef struct {
    double *x;           /* per env channel */
    bd_status_t status;
    int64_t cycle;       /* cycle of the last decision (INT64_MIN: none) */
    int *map;            /* engine channel index -> env channel index (-1: none) */
    size_t nmap;
} loop_pf_t;

typedef struct {
    bd_env_t *env;
    bd_loop_result_t *res;
    loop_pf_t *st;
} loop_ctx_t;

/* The env portfolio called name (the fit's are sorted by name), -1: none. */
static long loop_find(const bd_env_t *env, const char *name)
{
    size_t lo = 0, hi = env->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, env->pf[mid].fp->name);
        if (c == 0) return (long)mid;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return -1;
}

/* Engine channel j of p as an env channel index (cached per channel). */
static int loop_map(loop_pf_t *s, const bd_env_portfolio_t *ep, const bd_portfolio_t *p, size_t j)
{
    if (j >= s->nmap) {
        s->map = bd_xrealloc(s->map, p->n * sizeof *s->map);
        for (size_t q = s->nmap; q < p->n; q++) {
            s->map[q] = -1;
            for (size_t i = 0; i < ep->n; i++)
                if (strcmp(ep->ch[i].name, p->ch[q].name) == 0) s->map[q] = (int)i;
        }
        s->nmap = p->n;
    }
    return s->map[j];
}

/* The adapters: the allocation in force and the status, and the counts of
 * the run (trips, bounds). */
static bd_err_t loop_sink(void *ctx, bd_portfolio_t *p, const bd_decision_t *d, const char *json,
                          size_t len)
{
    (void)json;
    (void)len;
    loop_ctx_t *c = ctx;
    long k = loop_find(c->env, p->name);
    if (k < 0) return BD_OK;
    loop_pf_t *s = &c->st[k];
    bd_loop_pf_t *r = &c->res->pf[k];
    const bd_env_portfolio_t *ep = &c->env->pf[k];
    for (size_t j = 0; j < p->n; j++) {
        int i = loop_map(s, ep, p, j);
        if (i >= 0) s->x[i] = ep->ch[i].split ? 0 : p->ch[j].x; /* v2: its arms spend it */
        if (d->path != BD_PATH_INITIAL && (unsigned)d->ch[j].bound < BD_BOUND__COUNT)
            r->bound[d->ch[j].bound]++;
    }
    s->status = d->status;
    s->cycle = d->cycle;
    if (d->path != BD_PATH_INITIAL) r->decisions++;
    if (d->tripped && r->trips++ == 0 && d->kill_reason)
        snprintf(r->kill_reason, sizeof r->kill_reason, "%s", d->kill_reason);
    return BD_OK;
}

/* Feeds one event. An event the engine refuses is refused as it would be
 * live (a config's max_channels, say): the engine counts it, its
 * reject-ratio trigger sees it; only a failed sink stops the run. */
static bd_err_t loop_feed(bd_engine_t *e, const bd_event_t *ev, char *errbuf, size_t errlen)
{
    char detail[256];
    bd_err_t err = BD_OK;
    bd_engine_apply(e, ev, detail, sizeof detail, &err);
    if (err != BD_OK) return bd_errf(errbuf, errlen, err, "the closed loop's sink failed");
    return BD_OK;
}

/* The watermark of portfolio pf at ts (closes its cycles ending by then). */
static bd_err_t loop_watermark(bd_engine_t *e, const char *pf, int64_t ts, char *errbuf, size_t errlen)
{
    bd_event_t wm = {.kind = BD_EV_WATERMARK, .ts = ts};
    snprintf(wm.portfolio, sizeof wm.portfolio, "%s", pf);
    return loop_feed(e, &wm, errbuf, errlen);
}

/* Channel c's box in the oracle: its config's [min, max] within the
 * budget (its pin when pinned), capped by the environment's delivery cap. */
static void loop_box(const bd_env_t *env, const bd_env_portfolio_t *p, const bd_env_channel_t *c, int64_t t,
                     double *l, double *h)
{
    double B = p->pol->budget;
    const bd_channel_cfg_t *cc = bd_config_channel(p->pc, p->pol, c->name);
    *l = cc->min;
    *h = isfinite(cc->max) && cc->max < B ? cc->max : B;
    if (cc->has_pin) *l = *h = cc->pin;
    double cap = bd_env_cap(env, c, t);
    if (cap < *h) *h = cap;
    if (*l > *h) *l = *h;
}

/* v2 nested arms: the total over every spending unit at multiplier
 * lambda: each unit at its marginal return lambda within its box, the arms
 * of channel g (gi[j] = g; -1: a channel without arms) summed and clamped
 * to their channel's box [gl, gh] into s[g]. */
static double loop_nested_total(const bd_curve_t *cv, const double *lo, const double *hi, const long *gi, size_t m,
                                const double *gl, const double *gh, size_t ng, double lambda, double *s)
{
    double total = 0;
    for (size_t g = 0; g < ng; g++) s[g] = 0;
    for (size_t j = 0; j < m; j++) {
        double x = fmin(fmax(bd_curve_inv_marginal(&cv[j], lambda), lo[j]), hi[j]);
        if (gi[j] >= 0) s[gi[j]] += x;
        else total += x;
    }
    for (size_t g = 0; g < ng; g++) {
        s[g] = fmin(fmax(s[g], gl[g]), gh[g]);
        total += s[g];
    }
    return total;
}

/* v2 nested arms: the oracle's spending units (unit[j]: the env channel)
 * are the channels without arms and the arms; each channel with arms gets
 * an amount in its own box, split exactly among its arms. The multiplier
 * that meets the budget is found by bisection (log scale); each channel's
 * amount then stands, and the channels without arms share the rest exactly
 * (water-fill), as each channel's arms share its amount. */
static void loop_oracle_nested(const bd_env_t *env, const bd_env_portfolio_t *p, int64_t t, const bd_curve_t *cv,
                               const double *lo, const double *hi, const long *unit, size_t m, double *x)
{
    size_t ng = 0;
    long *gof = bd_xcalloc(p->n + m + 1, sizeof *gof), *gi = gof + p->n;
    for (size_t i = 0; i < p->n; i++) gof[i] = p->ch[i].split ? (long)ng++ : -1;
    double *gl = bd_xcalloc(3 * ng + 1, sizeof(double)), *gh = gl + ng, *s = gh + ng;
    for (size_t i = 0; i < p->n; i++)
        if (gof[i] >= 0) loop_box(env, p, &p->ch[i], t, &gl[gof[i]], &gh[gof[i]]);
    for (size_t j = 0; j < m; j++) gi[j] = p->ch[unit[j]].head >= 0 ? gof[p->ch[unit[j]].head] : -1;
    double B = p->pol->budget, a = 1e-12, b = 1e-12;
    for (size_t j = 0; j < m; j++) b = fmax(b, 2 * bd_curve_marginal(&cv[j], 0));
    if (!(b < 1e12)) b = 1e12;
    for (int it = 0; it < 200; it++) { /* the total is non-increasing in lambda */
        double mid = sqrt(a * b);
        if (loop_nested_total(cv, lo, hi, gi, m, gl, gh, ng, mid, s) > B) a = mid;
        else b = mid;
    }
    loop_nested_total(cv, lo, hi, gi, m, gl, gh, ng, b, s);
    double rest = B;
    for (size_t g = 0; g < ng; g++) rest -= s[g];
    bd_curve_t *gc = bd_xcalloc(m + 1, sizeof *gc);
    double *glo = bd_xcalloc(3 * m + 1, sizeof(double)), *ghi = glo + m, *gx = ghi + m;
    for (size_t g = 0; g <= ng; g++) { /* g < ng: channel g's arms; ng: the channels without arms */
        long want = g < ng ? (long)g : -1;
        size_t k = 0;
        for (size_t j = 0; j < m; j++) {
            if (gi[j] != want) continue;
            gc[k] = cv[j];
            glo[k] = lo[j];
            ghi[k++] = hi[j];
        }
        bd_waterfill_solve(gc, glo, ghi, k, g < ng ? s[g] : rest, gx);
        for (size_t j = 0, q = 0; j < m; j++)
            if (gi[j] == want) x[j] = gx[q++];
    }
    free(gc);
    free(glo);
    free(gof);
    free(gl);
}

/* The oracle of portfolio p at cycle t: the exact optimum of the draw's
 * curves (objective units, seasonal factor in) in the config's box, capped
 * by the environment's delivery caps, pins exact; with nested arms (v2)
 * over the spending units, each channel with arms within its own box. */
static double loop_oracle(const bd_env_t *env, const bd_env_portfolio_t *p, int64_t t)
{
    size_t n = p->n, m = 0;
    bd_curve_t *cv = bd_xcalloc(n + 1, sizeof *cv);
    double *lo = bd_xcalloc(3 * n + 1, sizeof(double)), *hi = lo + n, *x = hi + n;
    long *unit = bd_xcalloc(n + 1, sizeof *unit);
    double B = p->pol->budget, unit_value = p->pol->objective == BD_OBJ_REVENUE;
    bool nested = false;
    for (size_t i = 0; i < n; i++) {
        const bd_env_channel_t *c = &p->ch[i];
        nested |= c->split;
        if (t < c->first || t > c->last || c->split) continue; /* a split channel's arms spend */
        cv[m] = c->conv;
        cv[m].a *= bd_env_factor(env, c, t) * (unit_value ? c->value : 1.0);
        loop_box(env, p, c, t, &lo[m], &hi[m]);
        unit[m++] = (long)i;
    }
    if (nested) loop_oracle_nested(env, p, t, cv, lo, hi, unit, m, x);
    else bd_waterfill_solve(cv, lo, hi, m, B, x);
    double v = 0;
    for (size_t i = 0; i < m; i++) v += bd_curve_value(&cv[i], x[i]);
    free(cv);
    free(lo);
    free(unit);
    return v;
}

/* Cycle t of portfolio k: the adapters spend the allocation in force, the
 * run's sums, then the environment's reports go to the engine. */
static bd_err_t loop_cycle(bd_engine_t *e, loop_ctx_t *c, size_t k, int64_t t, double *spend,
                           char *errbuf, size_t errlen)
{
    bd_env_t *env = c->env;
    bd_env_portfolio_t *ep = &env->pf[k];
    loop_pf_t *s = &c->st[k];
    bd_loop_pf_t *r = &c->res->pf[k];
    if (s->cycle != t)
        return bd_errf(errbuf, errlen, BD_ERR_INVALID, "portfolio '%s': the engine decided cycle "
                       "%lld, expected %lld", ep->fp->name, (long long)s->cycle, (long long)t);
    bool active = s->status == BD_STATUS_ACTIVE;
    r->killed += s->status == BD_STATUS_KILLED;
    r->held += s->status == BD_STATUS_HELD;
    float *row = r->x + (size_t)(t - r->first) * r->n;
    for (size_t i = 0; i < ep->n; i++) {
        const bd_env_channel_t *ch = &ep->ch[i];
        bool present = t >= ch->first && t <= ch->last;
        double cap = bd_env_cap(env, ch, t), x = s->x[i];
        if (cap < x) x = floor(cap * 100.0 + 1e-6) / 100.0;
        spend[i] = active && present ? x : 0;
        r->spend += spend[i];
        r->ret += bd_env_value(env, ep, ch, t, spend[i]);
        row[i] = (float)spend[i];
        if (t > r->first) r->moved += fabs((double)row[i] - (double)row[(ptrdiff_t)i - (ptrdiff_t)r->n]);
    }
    r->oracle += loop_oracle(env, ep, t);
    size_t nev = bd_env_cycle(env, k, t, spend);
    for (size_t j = 0; j < nev; j++) {
        bd_err_t rc = loop_feed(e, &env->ev[j], errbuf, errlen);
        if (rc != BD_OK) return rc;
    }
    return BD_OK;
}

/* The run's state for every portfolio of the fit the config manages. */
static void loop_init(const bd_env_t *env, loop_ctx_t *c, bd_loop_result_t *res)
{
    res->n = env->n;
    res->pf = bd_xcalloc(env->n + 1, sizeof *res->pf);
    c->st = bd_xcalloc(env->n + 1, sizeof *c->st);
    for (size_t k = 0; k < env->n; k++) {
        const bd_env_portfolio_t *ep = &env->pf[k];
        bd_loop_pf_t *r = &res->pf[k];
        r->n = ep->n;
        r->first = ep->fp->first;
        r->last = ep->pol ? ep->fp->last : ep->fp->first - 1;
        r->budget = ep->pol ? ep->pol->budget : 0;
        size_t T = r->last >= r->first ? (size_t)(r->last - r->first + 1) : 0;
        r->x = bd_xcalloc(T * ep->n + 1, sizeof *r->x);
        c->st[k].x = bd_xcalloc(ep->n + 1, sizeof(double));
        c->st[k].cycle = INT64_MIN;
    }
}

/* See whatif.h and the file comment: cycle by cycle, every managed
 * portfolio's first sight (its initial split), its spend and reports, then
 * its watermark; one flush per cycle emits the decisions in order. */
bd_err_t bd_loop_run(const bd_fit_t *fit, const bd_config_t *cfg, uint64_t seed, int draw,
                     bd_loop_result_t *res, char *errbuf, size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (cfg->cycle != fit->cycle)
        return bd_errf(errbuf, errlen, BD_ERR_CONFIG, "%s: cycle %llds, the log's fit has %llds",
                       cfg->path, (long long)cfg->cycle, (long long)fit->cycle);
    loop_ctx_t c = {.env = bd_env_new(fit, cfg, seed, draw), .res = res};
    loop_init(c.env, &c, res);
    bd_engine_opts_t o = {.threads = 1, .sink = loop_sink, .sink_ctx = &c};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    size_t maxn = 1;
    for (size_t k = 0; k < c.env->n; k++) maxn = c.env->pf[k].n > maxn ? c.env->pf[k].n : maxn;
    double *spend = bd_xcalloc(maxn, sizeof(double));
    int64_t L = fit->cycle;
    bd_err_t rc = BD_OK;
    for (int64_t t = fit->c0; t <= fit->c1 && rc == BD_OK; t++) {
        for (size_t k = 0; k < c.env->n && rc == BD_OK; k++) {
            const bd_loop_pf_t *r = &res->pf[k];
            if (t < r->first || t > r->last) continue;
            if (t == r->first) {
                rc = loop_watermark(e, c.env->pf[k].fp->name, t * L, errbuf, errlen);
                if (rc == BD_OK) rc = bd_engine_flush(e);
                if (rc == BD_OK && c.st[k].cycle != t) { /* refused (max_portfolios): not managed */
                    res->pf[k].last = res->pf[k].first - 1;
                    continue;
                }
            }
            if (rc == BD_OK) rc = loop_cycle(e, &c, k, t, spend, errbuf, errlen);
        }
        for (size_t k = 0; k < c.env->n && rc == BD_OK; k++)
            if (t >= res->pf[k].first && t <= res->pf[k].last)
                rc = loop_watermark(e, c.env->pf[k].fp->name, (t + 1) * L, errbuf, errlen);
        if (rc == BD_OK) rc = bd_engine_flush(e);
    }
    bd_engine_free(e);
    for (size_t k = 0; k < c.env->n; k++) {
        free(c.st[k].x);
        free(c.st[k].map);
    }
    free(c.st);
    free(spend);
    bd_env_free(c.env);
    return rc;
}

/* Releases what bd_loop_run filled. */
void bd_loop_result_free(bd_loop_result_t *res)
{
    if (!res) return;
    for (size_t k = 0; k < res->n; k++) free(res->pf[k].x);
    free(res->pf);
    res->pf = NULL;
    res->n = 0;
}

/* ---- many runs on worker threads ------------------------------------------- */

typedef struct {
    const bd_fit_t *fit;
    const bd_config_t *const *cfgs;
    int draws;
    uint64_t seed;
    size_t total;
    atomic_size_t next;
    pthread_mutex_t mu;
    size_t done;
    bd_err_t rc;
    char err[512];
    bd_loop_progress_fn progress;
    void *ctx;
    bd_loop_result_t *res;
} loop_pool_t;

/* Takes runs until none is left (or one failed); each writes its own slot. */
static void *loop_worker(void *arg)
{
    loop_pool_t *pl = arg;
    for (;;) {
        size_t j = atomic_fetch_add(&pl->next, 1);
        if (j >= pl->total) return NULL;
        char err[512];
        bd_err_t rc = bd_loop_run(pl->fit, pl->cfgs[j / (size_t)pl->draws], pl->seed,
                                  (int)(j % (size_t)pl->draws), &pl->res[j], err, sizeof err);
        pthread_mutex_lock(&pl->mu);
        pl->done++;
        if (rc != BD_OK && pl->rc == BD_OK) {
            pl->rc = rc;
            snprintf(pl->err, sizeof pl->err, "%s", err);
            atomic_store(&pl->next, pl->total); /* start nothing more */
        }
        if (pl->progress && pl->rc == BD_OK) pl->progress(pl->ctx, pl->done, pl->total);
        pthread_mutex_unlock(&pl->mu);
    }
}

/* See whatif.h: run j is config j / draws, draw j % draws. */
bd_err_t bd_loop_run_all(const bd_fit_t *fit, const bd_config_t *const *cfgs, size_t ncfg,
                         int draws, uint64_t seed, int threads, bd_loop_progress_fn progress,
                         void *ctx, bd_loop_result_t *res, char *errbuf, size_t errlen)
{
    loop_pool_t pl = {.fit = fit, .cfgs = cfgs, .draws = draws, .seed = seed,
                      .total = ncfg * (size_t)(draws > 0 ? draws : 0), .progress = progress,
                      .ctx = ctx, .res = res};
    memset(res, 0, pl.total * sizeof *res);
    atomic_init(&pl.next, 0);
    pthread_mutex_init(&pl.mu, NULL);
    if (threads < 1) threads = 1;
    if ((size_t)threads > pl.total) threads = pl.total ? (int)pl.total : 1;
    pthread_t *th = bd_xcalloc((size_t)threads, sizeof *th);
    int started = 0;
    for (; started < threads - 1; started++)
        if (pthread_create(&th[started], NULL, loop_worker, &pl) != 0) break;
    loop_worker(&pl);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    free(th);
    pthread_mutex_destroy(&pl.mu);
    if (pl.rc != BD_OK) return bd_errf(errbuf, errlen, pl.rc, "%s", pl.err);
    return BD_OK;
}

/* ---- summaries ---------------------------------------------------------------- */

/* See whatif.h. */
bd_interval_t bd_interval_of(double *v, size_t n)
{
    bd_interval_t r = {0, 0, 0};
    if (n == 0) return r;
    r.median = bd_stats_quantile(v, n, 0.5);
    r.lo = bd_stats_quantile(v, n, 0.05);
    r.hi = bd_stats_quantile(v, n, 0.95);
    return r;
}

/* One draw's sums over the portfolios selected (pf < 0: every managed one). */
typedef struct {
    double ret, oracle, spend, moved, budget_cycles, trips, killed, cycles, chdec;
    double bound[BD_BOUND__COUNT];
} loop_sums_t;

/* Sums one draw's portfolios into s (pf >= 0: that portfolio alone). */
static void loop_sums(const bd_loop_result_t *r, long pf, loop_sums_t *s)
{
    memset(s, 0, sizeof *s);
    for (size_t k = 0; k < r->n; k++) {
        const bd_loop_pf_t *p = &r->pf[k];
        if ((pf >= 0 && (size_t)pf != k) || p->last < p->first) continue;
        double T = (double)(p->last - p->first + 1);
        s->ret += p->ret;
        s->oracle += p->oracle;
        s->spend += p->spend;
        s->moved += p->moved;
        s->budget_cycles += p->budget * (T - 1);
        s->trips += p->trips;
        s->killed += p->killed;
        s->cycles += T;
        s->chdec += (double)p->decisions * (double)p->n;
        for (int b = 0; b < BD_BOUND__COUNT; b++) s->bound[b] += p->bound[b];
    }
}

/* See whatif.h: each metric per draw, then its interval over the draws. */
void bd_loop_summarise(const bd_loop_result_t *runs, int draws, long pf, bd_loop_summary_t *out)
{
    memset(out, 0, sizeof *out);
    size_t n = draws > 0 ? (size_t)draws : 0;
    out->draws = draws;
    if (!n) return;
    double *v = bd_xcalloc(n * (7 + BD_BOUND__COUNT), sizeof(double));
    double *ret = v, *spend = v + n, *roas = v + 2 * n, *regret = v + 3 * n, *kills = v + 4 * n,
           *killed = v + 5 * n, *vol = v + 6 * n, *bound = v + 7 * n;
    for (size_t d = 0; d < n; d++) {
        loop_sums_t s;
        loop_sums(&runs[d], pf, &s);
        ret[d] = s.ret;
        spend[d] = s.spend;
        roas[d] = s.spend > 0 ? s.ret / s.spend : 0;
        regret[d] = s.oracle > 0 ? 1.0 - s.ret / s.oracle : 0;
        kills[d] = s.trips;
        killed[d] = s.cycles > 0 ? s.killed / s.cycles : 0;
        vol[d] = s.budget_cycles > 0 ? s.moved / s.budget_cycles : 0;
        for (int b = 0; b < BD_BOUND__COUNT; b++) bound[(size_t)b * n + d] = s.chdec > 0 ? s.bound[b] / s.chdec : 0;
    }
    out->ret = bd_interval_of(ret, n);
    out->spend = bd_interval_of(spend, n);
    out->roas = bd_interval_of(roas, n);
    out->regret = bd_interval_of(regret, n);
    out->kills = bd_interval_of(kills, n);
    out->killed = bd_interval_of(killed, n);
    out->volatility = bd_interval_of(vol, n);
    for (int b = 0; b < BD_BOUND__COUNT; b++) out->bound[b] = bd_interval_of(bound + (size_t)b * n, n);
    free(v);
}
