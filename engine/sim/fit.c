/* fit.c: the environment of a log, fitted with the engine's own models
 * (whatif.h). The log is replayed through two engines in one pass:
 *
 *  - the fit engine runs the base config with forgetting off, seasonality
 *    and the lag model learned (auto) where the base config has them off,
 *    no kill trigger and no delivery caps (nothing may stop the learning).
 *    It learns what the response model needs to be read right: each
 *    channel's seasonal profile (pooled across the portfolio as decide.c
 *    pools it), its reporting-delay distribution, and which cycles its
 *    data-fault detector flagged;
 *  - the record engine runs the base config as written: its decisions are
 *    the allocations that ran when the log was recorded (the engine is
 *    deterministic), so a delivery cap it learns stands for real
 *    under-delivery of the log. Its caps, cycle by cycle, become the
 *    environment's, for a portfolio whose replay matched the log's spend
 *    (whatif.h BD_FIT_MATCH_MIN, BD_FIT_OVER_MAX): a log recorded under
 *    another policy would teach that policy's allocations as caps.
 *
 * The response itself is then fitted in one batch pass per channel, with
 * the model's own conjugate update (ops->observe, discount 1) over every
 * cycle of the log that had spend and no flagged fault, each observed at
 * the final profile's seasonal factor times the share of its conversions
 * reported by the end of the log, saturation learned from every cycle. The
 * online state of the fit engine is not used for it: while it learned, its
 * profile was still moving (at first off) and saturation is frozen where a
 * profile is in use (docs/TIME.md), so its rate would be read against
 * factors that changed under it. The batch posterior is the model's
 * static posterior given the final time structure.
 *
 * Besides the engines, the fit keeps every accepted event's numbers per
 * (portfolio, channel, cycle): the batch pass reads them, and so do the
 * value per conversion and its spread, the overdispersion of the
 * conversions around the fitted curve, and traffic per conversion. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/engine.h"
#include "budgetd/whatif.h"

/* One accepted event's numbers. */
typedef struct {
    uint32_t ch;
    int64_t cycle;
    bd_agg_t a;
} fit_entry_t;

/* What the fit keeps of one portfolio of the fit engine. */
typedef struct {
    bd_portfolio_t *p;
    fit_entry_t *e;
    size_t n, cap;
    uint64_t deliv, match, over; /* record engine: channel-cycles with a delivered ratio,
                                  * within the tolerance, above it */
    fit_entry_t *fault;          /* fit engine: (channel, cycle) its detector flagged */
    size_t nfault, cap_fault;
} fit_pf_t;

/* A delivery cap in force at a cycle (record engine). */
typedef struct {
    uint32_t pf, ch;
    int64_t cycle;
    double cap;
} fit_cap_t;

struct bd_fitter {
    const bd_config_t *base;
    bd_config_t fcfg;            /* shallow copy of base with the fit's policies */
    bd_portfolio_cfg_t *fpcs;    /* its portfolio array (owned; channels shared with base) */
    bd_engine_t *fit, *rec;      /* rec: NULL when no policy learns caps */
    fit_pf_t *pf;                /* the fit engine's portfolios, creation order */
    size_t npf, cap_pf;
    bd_portfolio_t **keys;       /* open addressing: portfolio -> index into pf */
    size_t *vals, mask;
    fit_cap_t *caps;
    size_t ncaps, cap_caps;
    int64_t cmin, cmax;
    uint64_t lines, accepted;
};

/* The fit's policy: learn everything from every cycle, stop nothing. */
static void fit_policy(bd_policy_t *p)
{
    p->discount = 1.0;
    if (p->season.daily == BD_AUTO_OFF) p->season.daily = BD_AUTO_AUTO;
    if (p->season.weekly == BD_AUTO_OFF) p->season.weekly = BD_AUTO_AUTO;
    if (p->lag.model == BD_AUTO_OFF) p->lag.model = BD_AUTO_AUTO;
    p->kill.roas_below = 0;
    p->kill.overspend_ratio = 0;
    p->kill.stale_after = 0;
    p->kill.max_reject_ratio = 1;
    p->delivery.caps = BD_AUTO_OFF;
    for (int k = 1; k < BD_FAULT__COUNT; k++)
        if (p->faults[k] == BD_FAULT_ACT_KILL) p->faults[k] = BD_FAULT_ACT_HOLD;
}

/* Index of p in f->pf, adding it (and growing the map) when new. */
static size_t fit_pf_index(bd_fitter_t *f, bd_portfolio_t *p)
{
    size_t h = (size_t)bd_mix64((uint64_t)(uintptr_t)p);
    for (size_t i = h & f->mask;; i = (i + 1) & f->mask) {
        if (f->keys[i] == p) return f->vals[i];
        if (f->keys[i]) continue;
        if (f->npf == f->cap_pf) {
            f->cap_pf = f->cap_pf ? 2 * f->cap_pf : 16;
            f->pf = bd_xrealloc(f->pf, f->cap_pf * sizeof *f->pf);
        }
        f->pf[f->npf] = (fit_pf_t){.p = p};
        f->keys[i] = p;
        f->vals[i] = f->npf++;
        if (2 * f->npf > f->mask) { /* rehash at half full */
            size_t om = f->mask;
            bd_portfolio_t **ok = f->keys;
            size_t *ov = f->vals;
            f->mask = 2 * om + 1;
            f->keys = bd_xcalloc(f->mask + 1, sizeof *f->keys);
            f->vals = bd_xcalloc(f->mask + 1, sizeof *f->vals);
            for (size_t j = 0; j <= om; j++) {
                if (!ok[j]) continue;
                size_t k = (size_t)bd_mix64((uint64_t)(uintptr_t)ok[j]) & f->mask;
                while (f->keys[k]) k = (k + 1) & f->mask;
                f->keys[k] = ok[j];
                f->vals[k] = ov[j];
            }
            free(ok);
            free(ov);
        }
        return f->npf - 1;
    }
}

/* Index of channel name in p, -1 when p has none by that name. */
static int fit_channel(const bd_portfolio_t *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->ch[i].name, name) == 0) return (int)i;
    return -1;
}

/* Record engine's sink: the caps in force, cycle by cycle. */
static bd_err_t fit_rec_sink(void *ctx, bd_portfolio_t *p, const bd_decision_t *d, const char *json,
                             size_t len)
{
    (void)json;
    (void)len;
    bd_fitter_t *f = ctx;
    bd_portfolio_t *fp = bd_ptable_find(bd_engine_table(f->fit), p->name, strlen(p->name));
    if (!fp) return BD_OK;
    size_t k = fit_pf_index(f, fp);
    double tol = p->pol->delivery.tolerance;
    for (size_t i = 0; i < d->n; i++) {
        double r = d->ch[i].delivered;
        if (isfinite(r)) {
            f->pf[k].deliv++;
            f->pf[k].match += fabs(r - 1.0) <= tol;
            f->pf[k].over += r > 1.0 + tol;
        }
        int ch = fit_channel(fp, d->ch[i].channel);
        if (!(d->ch[i].cap > 0) || ch < 0) continue;
        if (f->ncaps == f->cap_caps) {
            f->cap_caps = f->cap_caps ? 2 * f->cap_caps : 64;
            f->caps = bd_xrealloc(f->caps, f->cap_caps * sizeof *f->caps);
        }
        f->caps[f->ncaps++] = (fit_cap_t){(uint32_t)k, (uint32_t)ch, d->cycle, d->ch[i].cap};
    }
    return BD_OK;
}

/* Fit engine's sink: a decision for cycle c carries the faults in force
 * after cycle c - 1 closed; that cycle is left out of the batch fit. */
static bd_err_t fit_fit_sink(void *ctx, bd_portfolio_t *p, const bd_decision_t *d, const char *json,
                             size_t len)
{
    (void)json;
    (void)len;
    bd_fitter_t *f = ctx;
    if (d->path == BD_PATH_INITIAL) return BD_OK;
    for (size_t i = 0; i < d->n; i++) {
        if (d->ch[i].fault == BD_FAULT_NONE) continue;
        size_t k = fit_pf_index(f, p); /* may move f->pf */
        fit_pf_t *q = &f->pf[k];
        if (q->nfault == q->cap_fault) {
            q->cap_fault = q->cap_fault ? 2 * q->cap_fault : 16;
            q->fault = bd_xrealloc(q->fault, q->cap_fault * sizeof *q->fault);
        }
        q->fault[q->nfault++] = (fit_entry_t){.ch = (uint32_t)i, .cycle = d->cycle - 1};
    }
    return BD_OK;
}

/* See whatif.h and the file comment: the fit's config is a shallow copy
 * of base with the fit's policies (channels shared with base). */
bd_fitter_t *bd_fit_begin(const bd_config_t *base)
{
    bd_fitter_t *f = bd_xcalloc(1, sizeof *f);
    f->base = base;
    f->fcfg = *base;
    f->fpcs = bd_xcalloc(base->n_portfolios + 1, sizeof *f->fpcs);
    if (base->n_portfolios) memcpy(f->fpcs, base->portfolios, base->n_portfolios * sizeof *f->fpcs);
    for (size_t i = 0; i < base->n_portfolios; i++) fit_policy(&f->fpcs[i].p);
    fit_policy(&f->fcfg.defaults);
    f->fcfg.portfolios = f->fpcs;
    bd_engine_opts_t o = {.threads = 1, .sink = fit_fit_sink, .sink_ctx = f};
    f->fit = bd_engine_new(&f->fcfg, &o);
    bool caps = base->defaults.delivery.caps != BD_AUTO_OFF;
    for (size_t i = 0; i < base->n_portfolios; i++) caps |= base->portfolios[i].p.delivery.caps != BD_AUTO_OFF;
    if (caps) {
        bd_engine_opts_t r = {.threads = 1, .sink = fit_rec_sink, .sink_ctx = f};
        f->rec = bd_engine_new(base, &r);
    }
    f->mask = 63;
    f->keys = bd_xcalloc(f->mask + 1, sizeof *f->keys);
    f->vals = bd_xcalloc(f->mask + 1, sizeof *f->vals);
    f->cmin = INT64_MAX;
    f->cmax = INT64_MIN;
    return f;
}

/* An accepted data event of the fit engine: its numbers, by cycle. */
static void fit_keep(bd_fitter_t *f, const bd_event_t *ev)
{
    bd_portfolio_t *p = bd_ptable_find(bd_engine_table(f->fit), ev->portfolio, strlen(ev->portfolio));
    int ch = p ? fit_channel(p, ev->channel) : -1;
    if (ch < 0) return;
    size_t k = fit_pf_index(f, p); /* may move f->pf */
    fit_pf_t *fp = &f->pf[k];
    if (fp->n == fp->cap) {
        fp->cap = fp->cap ? 2 * fp->cap : 256;
        fp->e = bd_xrealloc(fp->e, fp->cap * sizeof *fp->e);
    }
    int64_t L = f->base->cycle, c = ev->ts >= 0 ? ev->ts / L : -((-ev->ts + L - 1) / L);
    fp->e[fp->n++] = (fit_entry_t){(uint32_t)ch, c,
                                   {ev->spend, ev->impressions, ev->clicks, ev->conversions, ev->revenue, 1}};
    if (c < f->cmin) f->cmin = c;
    if (c > f->cmax) f->cmax = c;
}

/* See whatif.h: decoded once, applied to both engines; an event the fit
 * engine accepted is kept by cycle. */
void bd_fit_line(bd_fitter_t *f, const char *line, size_t len)
{
    bd_event_t ev;
    char detail[256];
    bd_err_t err;
    f->lines++;
    if (bd_event_decode(line, len, &ev, detail, sizeof detail) != BD_REJ_NONE) return;
    uint64_t before = bd_engine_stats(f->fit)->accepted;
    bd_engine_apply(f->fit, &ev, detail, sizeof detail, &err);
    if (ev.kind == BD_EV_DATA && bd_engine_stats(f->fit)->accepted > before) {
        f->accepted++;
        fit_keep(f, &ev);
    }
    if (f->rec) bd_engine_apply(f->rec, &ev, detail, sizeof detail, &err);
}

/* ---- summaries -------------------------------------------------------------- */

/* Entries by channel, then cycle. */
static int cmp_entry(const void *a, const void *b)
{
    const fit_entry_t *x = a, *y = b;
    if (x->ch != y->ch) return x->ch < y->ch ? -1 : 1;
    return x->cycle < y->cycle ? -1 : x->cycle > y->cycle;
}

/* Per-cycle sums of one channel over [first, last]. */
typedef struct {
    int64_t first;
    size_t T;
    bd_agg_t *a;
} fit_series_t;

/* The reporting-delay distribution of c (horizon H cycles): shares by
 * delay up to where 99.9% is reported, the rest folded into the last. */
static void fit_lag(bd_fit_channel_t *fc, const bd_channel_t *c, int64_t H)
{
    int h = 0;
    while (h < H && bd_lag_completeness(&c->lag, h, H) < 0.999) h++;
    fc->lag_h = h;
    fc->lag_pmf = bd_xcalloc((size_t)h + 1, sizeof(double));
    double prev = 0;
    for (int d = 0; d < h; d++) {
        double F = bd_lag_completeness(&c->lag, d, H);
        fc->lag_pmf[d] = F > prev ? F - prev : 0;
        if (F > prev) prev = F;
    }
    fc->lag_pmf[h] = 1.0 - prev > 0 ? 1.0 - prev : 0;
}

/* Value per conversion and the Gamma shape of one conversion's value:
 * a cycle with C conversions worth R has R / C of variance v^2 / (shape C),
 * so 1 / shape = mean over cycles of C (R/C - v)^2 / v^2. */
static void fit_value(bd_fit_channel_t *fc, const fit_series_t *s, double prior_value)
{
    fc->value = fc->conversions > 0 && fc->revenue > 0 ? fc->revenue / fc->conversions : prior_value;
    double v = fc->value, acc = 0;
    int m = 0;
    for (size_t t = 0; t < s->T; t++) {
        const bd_agg_t *a = &s->a[t];
        if (a->conversions < 1 || !(a->revenue > 0)) continue;
        double r = a->revenue / a->conversions - v;
        acc += a->conversions * r * r / (v * v);
        m++;
    }
    double inv = m >= 3 ? acc / m : 1.0;
    fc->value_shape = inv > 1e-3 ? 1.0 / inv : 1e3;
    if (fc->value_shape < 0.1) fc->value_shape = 0.1;
}

/* Overdispersion: the CV of a Gamma multiplier of each cycle's rate that
 * makes Var(y) = mu + cv^2 mu^2 around the fitted mean curve (method of
 * moments over the cycles with spend), capped at 1. */
static void fit_od(bd_fit_channel_t *fc, const bd_fit_portfolio_t *fp, const bd_model_ops_t *ops,
                   const fit_series_t *s, const double *mult)
{
    bd_curve_t mc, cc;
    ops->mean(&fc->model, &fc->prior, &mc);
    bd_fit_conv_curve(fp, fc, &mc, &cc);
    double num = 0, den = 0;
    for (size_t t = 0; t < s->T; t++) {
        const bd_agg_t *a = &s->a[t];
        if (!(a->spend > 0) || !(mult[t] > 0)) continue;
        double mu = bd_curve_value(&cc, a->spend) * mult[t];
        if (!(mu > 0)) continue;
        double d = a->conversions - mu;
        num += d * d - mu;
        den += mu * mu;
    }
    double cv2 = den > 0 ? num / den : 0;
    fc->od = cv2 > 0 ? sqrt(cv2 > 1 ? 1 : cv2) : 0;
}

/* See whatif.h. */
void bd_fit_conv_curve(const bd_fit_portfolio_t *fp, const bd_fit_channel_t *fc, const bd_curve_t *c,
                       bd_curve_t *out)
{
    *out = *c;
    if (fp->objective == BD_OBJ_REVENUE) out->a /= fc->value > 0 ? fc->value : 1.0;
}

/* The exposure multiplier of each cycle of s for the batch fit: the final
 * seasonal factor times the share of the interval's conversions reported
 * by the end of the log (c1); 0 for a cycle left out (no spend, a flagged
 * fault, implausible numbers). */
static void fit_mults(const bd_fit_channel_t *fc, const fit_series_t *s, const unsigned char *faulted,
                      int64_t c1, int64_t L, double *mult)
{
    for (size_t t = 0; t < s->T; t++) {
        const bd_agg_t *a = &s->a[t];
        double v;
        mult[t] = 0;
        if (!(a->spend > 0) || faulted[t] || bd_agg_implausible(a, &v)) continue;
        int64_t cy = s->first + (int64_t)t, age = c1 - cy;
        double F = 0;
        for (int d = 0; d <= fc->lag_h && d <= age; d++) F += fc->lag_pmf[d];
        int hour, dow;
        bd_season_bucket(cy * L, &hour, &dow);
        mult[t] = bd_season_apply(&fc->season, hour, dow) * (F < 1 ? F : 1);
    }
}

/* The batch fit of the response (file comment): the prior, then every
 * usable cycle in order through the model's own update. */
static void fit_response(bd_fit_channel_t *fc, const bd_model_ops_t *ops, const fit_series_t *s,
                         const double *mult)
{
    ops->init(&fc->model, &fc->prior);
    double sum = 0;
    int m = 0;
    for (size_t t = 0; t < s->T; t++) {
        if (!(mult[t] > 0)) continue;
        bd_obs_t o = {.mult = mult[t], .k_learn = 1.0};
        ops->observe(&fc->model, &fc->prior, &s->a[t], &o);
        sum += s->a[t].spend;
        m++;
    }
    fc->xbar = m ? sum / m : 0;
}

/* One channel of the fit from its entries e[0..n) (one channel, sorted by
 * cycle), the fit engine's channel c and the cycles its detector flagged
 * (flt[0..nflt), any channel). */
static void fit_channel_summary(bd_fitter_t *f, bd_fit_portfolio_t *fp, const bd_portfolio_t *p,
                                const bd_channel_t *c, const fit_entry_t *e, size_t n,
                                const fit_entry_t *flt, size_t nflt, int64_t c1,
                                const bd_season_profile_t *pool, bd_fit_channel_t *fc)
{
    int64_t L = f->base->cycle;
    memset(fc, 0, sizeof *fc);
    snprintf(fc->name, sizeof fc->name, "%s", c->name);
    fc->first = e[0].cycle;
    fc->last = e[n - 1].cycle;
    fc->prior = c->prior;
    bd_season_profile(&c->season, pool, fp->season, &fc->season);
    fit_series_t s = {fc->first, (size_t)(fc->last - fc->first + 1), NULL};
    s.a = bd_xcalloc(s.T, sizeof *s.a);
    for (size_t i = 0; i < n; i++) {
        bd_agg_t *a = &s.a[e[i].cycle - fc->first];
        a->spend += e[i].a.spend;
        a->impressions += e[i].a.impressions;
        a->clicks += e[i].a.clicks;
        a->conversions += e[i].a.conversions;
        a->revenue += e[i].a.revenue;
        a->events++;
        fc->spend += e[i].a.spend;
        fc->impressions += e[i].a.impressions;
        fc->clicks += e[i].a.clicks;
        fc->conversions += e[i].a.conversions;
        fc->revenue += e[i].a.revenue;
    }
    for (size_t t = 0; t < s.T; t++) fc->cycles += s.a[t].events > 0;
    unsigned char *faulted = bd_xcalloc(s.T, 1);
    for (size_t i = 0; i < nflt; i++)
        if (!strcmp(p->ch[flt[i].ch].name, c->name) && flt[i].cycle >= fc->first && flt[i].cycle <= fc->last)
            faulted[flt[i].cycle - fc->first] = 1;
    int64_t H = p->pol->lag.model == BD_AUTO_OFF ? 0 : (p->pol->lag.horizon + L - 1) / L;
    fit_lag(fc, c, H);
    double *mult = bd_xcalloc(s.T, sizeof(double));
    fit_mults(fc, &s, faulted, c1, L, mult);
    const bd_model_ops_t *ops = bd_model_get(fp->model);
    fit_response(fc, ops, &s, mult);
    fit_value(fc, &s, c->prior.value_prior);
    fit_od(fc, fp, ops, &s, mult);
    free(mult);
    free(faulted);
    free(s.a);
}

/* The caps the record engine had in force for channel ch of portfolio k. */
static void fit_caps(const bd_fitter_t *f, const bd_fit_t *fit, size_t k, uint32_t ch, bd_fit_channel_t *fc)
{
    size_t T = (size_t)(fit->c1 - fit->c0 + 1);
    for (size_t i = 0; i < f->ncaps; i++) {
        const fit_cap_t *c = &f->caps[i];
        if (c->pf != k || c->ch != ch || c->cycle < fit->c0 || c->cycle > fit->c1) continue;
        if (!fc->cap) fc->cap = bd_xcalloc(T, sizeof *fc->cap);
        fc->cap[c->cycle - fit->c0] = (float)c->cap;
    }
}

/* Portfolio k of the fitter into fp; false when it has no channel with data. */
static bool fit_portfolio(bd_fitter_t *f, const bd_fit_t *fit, size_t k, bd_fit_portfolio_t *fp)
{
    fit_pf_t *q = &f->pf[k];
    const bd_portfolio_t *p = q->p;
    if (q->n == 0 || !bd_model_get(p->pol->model)) return false;
    memset(fp, 0, sizeof *fp);
    snprintf(fp->name, sizeof fp->name, "%s", p->name);
    fp->model = p->pol->model;
    fp->objective = p->pol->objective;
    fp->season = bd_season_effective((bd_season_cfg_t){p->pol->season.daily, p->pol->season.weekly},
                                     f->base->cycle);
    fp->replay_match = q->deliv ? (double)q->match / (double)q->deliv : NAN;
    fp->replay_over = q->deliv ? (double)q->over / (double)q->deliv : NAN;
    fp->caps_used = q->deliv && fp->replay_match >= BD_FIT_MATCH_MIN && fp->replay_over <= BD_FIT_OVER_MAX;
    bd_season_t pool;
    bd_season_profile_t pp;
    bd_season_init(&pool);
    for (size_t i = 0; i < p->n; i++) bd_season_add(&pool, &p->ch[i].season);
    bd_season_profile(&pool, NULL, fp->season, &pp);
    qsort(q->e, q->n, sizeof *q->e, cmp_entry);
    fp->ch = bd_xcalloc(p->n, sizeof *fp->ch);
    fp->first = INT64_MAX;
    fp->last = INT64_MIN;
    for (size_t i = 0; i < q->n;) {
        size_t j = i;
        while (j < q->n && q->e[j].ch == q->e[i].ch) j++;
        bd_fit_channel_t *fc = &fp->ch[fp->n++];
        fit_channel_summary(f, fp, p, &p->ch[q->e[i].ch], q->e + i, j - i, q->fault, q->nfault,
                            fit->c1, &pp, fc);
        if (fp->caps_used) fit_caps(f, fit, k, q->e[i].ch, fc);
        if (fc->first < fp->first) fp->first = fc->first;
        if (fc->last > fp->last) fp->last = fc->last;
        i = j;
    }
    return true;
}

/* Portfolios by name (strcmp order). */
static int cmp_pf_name(const void *a, const void *b)
{
    return strcmp(((const bd_fit_portfolio_t *)a)->name, ((const bd_fit_portfolio_t *)b)->name);
}

/* Frees the fitter's own memory (engines included). */
static void fitter_free(bd_fitter_t *f)
{
    bd_engine_free(f->fit);
    bd_engine_free(f->rec);
    for (size_t i = 0; i < f->npf; i++) {
        free(f->pf[i].e);
        free(f->pf[i].fault);
    }
    free(f->pf);
    free(f->keys);
    free(f->vals);
    free(f->caps);
    free(f->fpcs);
    free(f);
}

/* See whatif.h: a watermark closes every portfolio's last cycle, then the
 * summaries, portfolios sorted by name. */
bd_err_t bd_fit_end(bd_fitter_t *f, bd_fit_t **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    if (f->cmin > f->cmax) {
        fitter_free(f);
        return bd_errf(errbuf, errlen, BD_ERR_INVALID, "the log holds no event the config accepts");
    }
    /* close the last cycle of every portfolio, so it is learned too */
    int64_t L = f->base->cycle;
    bd_event_t wm = {.kind = BD_EV_WATERMARK, .ts = (f->cmax + 1) * L, .portfolio = "*"};
    char detail[256];
    bd_err_t err;
    bd_engine_apply(f->fit, &wm, detail, sizeof detail, &err);
    bd_engine_flush(f->fit);
    if (f->rec) {
        bd_engine_apply(f->rec, &wm, detail, sizeof detail, &err);
        bd_engine_flush(f->rec);
    }
    bd_fit_t *fit = bd_xcalloc(1, sizeof *fit);
    fit->cycle = L;
    fit->c0 = f->cmin;
    fit->c1 = f->cmax;
    fit->lines = f->lines;
    fit->accepted = f->accepted;
    fit->pf = bd_xcalloc(f->npf + 1, sizeof *fit->pf);
    for (size_t k = 0; k < f->npf; k++)
        if (fit_portfolio(f, fit, k, &fit->pf[fit->n])) fit->n++;
    qsort(fit->pf, fit->n, sizeof *fit->pf, cmp_pf_name);
    fitter_free(f);
    *out = fit;
    return BD_OK;
}

/* Releases the fit and every channel's arrays. */
void bd_fit_free(bd_fit_t *fit)
{
    if (!fit) return;
    for (size_t k = 0; k < fit->n; k++) {
        for (size_t i = 0; i < fit->pf[k].n; i++) {
            free(fit->pf[k].ch[i].lag_pmf);
            free(fit->pf[k].ch[i].cap);
        }
        free(fit->pf[k].ch);
    }
    free(fit->pf);
    free(fit);
}
