/* truth.c: the hidden truth of one run, fixed before any policy plays it:
 * per cycle and channel the true curve (rate under drift, shocks and the
 * seasonal profile), presence, delivery caps, runaway ratios and data
 * faults; the oracle's allocation and return; the configured initial split
 * and the best time-invariant split in hindsight.
 *
 * The oracle knows everything of the cycle it allocates: the curves, the
 * cap in force (with its noise) and who is present. It allocates each cycle
 * the static optimum of that cycle's curves (sim_oracle). With carryover
 * the return of a cycle depends on past spend; the oracle then plays its
 * per-cycle optimum through the same adstock as every policy, i.e. it is
 * the steady-state optimum of the current curves, which is the exact
 * optimum when the curves do not change (constant spend e = s) and a
 * near-optimal yardstick when they do: a policy that anticipates can beat
 * it by a little (negative regret). The adstock of every policy and of the
 * oracle starts at the configured initial split (the portfolio ran on it
 * before cycle 0). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_cdf.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include "budgetd/alloc.h"
#include "sim.h"

/* ---- seasonality ---------------------------------------------------------- */

bool sim_season_normalise(double *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(v[i] > 0) || !isfinite(v[i])) return false;
        s += v[i];
    }
    for (size_t i = 0; i < n; i++) v[i] *= (double)n / s;
    return true;
}

/* See sim.h. */
void sim_season_cosine(double *v, size_t n, double amplitude, double peak)
{
    for (size_t i = 0; i < n; i++) v[i] = 1.0 + amplitude * cos(2.0 * M_PI * ((double)i - peak) / (double)n);
}

/* The mean of daily[hour] * weekly[day] over the whole hours of [ts, ts+len)
 * (the hour of ts when the interval is shorter than an hour). 1970-01-01
 * was a Thursday: day (Monday = 0) = (days since the epoch + 3) mod 7. */
double sim_season_factor(const sim_season_t *s, int64_t ts, int64_t len)
{
    if (!s->on) return 1.0;
    int64_t hours = len >= 3600 ? len / 3600 : 1, h0 = ts / 3600;
    double sum = 0;
    for (int64_t h = h0; h < h0 + hours; h++) {
        int64_t day = h / 24;
        sum += s->daily[h % 24] * s->weekly[(day + 3) % 7];
    }
    return sum / (double)hours;
}

/* ---- reporting delay ------------------------------------------------------ */

int sim_lag_pmf(const sim_lag_t *lag, double *pmf)
{
    if (lag->dist == SIM_LAG_NONE || lag->mean <= 0) {
        pmf[0] = 1.0;
        return 0;
    }
    int H = SIM_LAG_HORIZON_MAX;
    double cdf_prev = 0;
    double q = lag->mean / (1.0 + lag->mean); /* geometric: P(d) = (1-q) q^d, mean q/(1-q) */
    double sg = lag->sigma > 0 ? lag->sigma : 1.0;
    double mu = log(lag->mean) - 0.5 * sg * sg; /* lognormal of mean `mean` */
    double tot = 0;
    int last = 0;
    for (int d = 0; d <= H; d++) {
        double cdf;
        if (lag->dist == SIM_LAG_GEOMETRIC) cdf = 1.0 - pow(q, d + 1);
        else cdf = gsl_cdf_lognormal_P(d + 0.5, mu, sg);
        pmf[d] = cdf - cdf_prev;
        cdf_prev = cdf;
        tot += pmf[d];
        last = d;
        /* the explicit horizon, or where 99.9% is reached */
        if (lag->horizon > 0 ? d >= lag->horizon : cdf >= 0.999) break;
    }
    for (int d = 0; d <= last; d++) pmf[d] /= tot;
    return last;
}

/* ---- the initial split ---------------------------------------------------- */

/* The configured initial split (CONTRACT §5) over the config's channels. */
static void initial_split(const sim_scenario_t *sc, double *x)
{
    size_t n = sc->n_ch, m = 0;
    const bd_channel_cfg_t **cfg = bd_xcalloc(n, sizeof *cfg);
    double *y = bd_xcalloc(n, sizeof(double));
    size_t *idx = bd_xcalloc(n, sizeof *idx);
    for (size_t i = 0; i < n; i++) {
        x[i] = 0;
        if (sc->ch[i].cfg->name[0]) {
            cfg[m] = sc->ch[i].cfg;
            idx[m++] = i;
        }
    }
    bd_alloc_initial(sc->pol, cfg, m, y);
    for (size_t j = 0; j < m; j++) x[idx[j]] = y[j];
    free(cfg);
    free(y);
    free(idx);
}

/* ---- the truth ------------------------------------------------------------- */

/* Whether event ev is in force at cycle t (its duration and period). */
static bool event_active(const sim_event_t *ev, size_t t)
{
    if (t < (size_t)ev->cycle) return false;
    size_t since = t - (size_t)ev->cycle;
    if (ev->every > 0) return since % (size_t)ev->every < (size_t)ev->duration;
    return ev->duration == 0 || since < (size_t)ev->duration;
}

/* The per-cycle noise of a cap: mean-preserving lognormal, its own
 * generator per (run, cycle, channel) so that caps do not move the drift
 * path of the run. */
static double cap_noise(const sim_scenario_t *sc, gsl_rng *r, uint64_t seed, size_t t, size_t i)
{
    if (sc->cap_sd <= 0) return 1.0;
    gsl_rng_set(r, (unsigned long)bd_mix64(seed ^ 0x636170ULL ^ bd_mix64((uint64_t)t * 1000003u + i)));
    return exp(sc->cap_sd * gsl_ran_gaussian(r, 1.0) - 0.5 * sc->cap_sd * sc->cap_sd);
}

/* Cycle t's faults, vfactor, ratio and cap of every channel from the
 * events in force. */
static void apply_events(const sim_scenario_t *sc, sim_truth_t *tr, gsl_rng *cr, size_t t)
{
    size_t n = tr->n;
    for (size_t i = 0; i < n; i++) {
        size_t k = t * n + i;
        tr->ratio[k] = 1.0;
        tr->vfactor[k] = 1.0;
        tr->cap[k] = INFINITY;
    }
    for (size_t e = 0; e < sc->n_ev; e++) {
        const sim_event_t *ev = &sc->ev[e];
        if (ev->kind == SIM_SHOCK || !event_active(ev, t)) continue;
        size_t k = t * n + (size_t)ev->ch;
        switch (ev->kind) {
        case SIM_BREAK: tr->fault[k] |= SIM_F_TRACKING; break;
        case SIM_SILENT: tr->fault[k] |= SIM_F_SILENT; break;
        case SIM_NOCONV: tr->fault[k] |= SIM_F_NOCONV; break;
        case SIM_VALUE_ERR:
            tr->fault[k] |= SIM_F_VALUE;
            tr->vfactor[k] *= ev->factor;
            break;
        case SIM_RUNAWAY: tr->ratio[k] = ev->factor; break;
        case SIM_CAP: {
            double c = ev->amount * cap_noise(sc, cr, tr->seed, t, (size_t)ev->ch);
            if (c < tr->cap[k]) tr->cap[k] = c;
            break;
        }
        default: break;
        }
    }
}

/* See sim.h and the file comment: the truth, the oracle, the flat split. */
sim_truth_t *sim_truth_new(const sim_scenario_t *sc, uint64_t seed)
{
    sim_truth_t *tr = bd_xcalloc(1, sizeof *tr);
    size_t n = sc->n_ch, T = (size_t)sc->cycles, tn = T * n;
    tr->T = sc->cycles;
    tr->n = n;
    tr->seed = seed;
    tr->curve = bd_xcalloc(tn, sizeof *tr->curve);
    tr->rate = bd_xcalloc(tn, sizeof(double));
    tr->present = bd_xcalloc(tn, 1);
    tr->fault = bd_xcalloc(tn, 1);
    tr->vfactor = bd_xcalloc(tn, sizeof(double));
    tr->ratio = bd_xcalloc(tn, sizeof(double));
    tr->cap = bd_xcalloc(tn, sizeof(double));
    tr->lo = bd_xcalloc(tn, sizeof(double));
    tr->hi = bd_xcalloc(tn, sizeof(double));
    tr->opt_x = bd_xcalloc(tn, sizeof(double));
    tr->opt_v = bd_xcalloc(T, sizeof(double));
    tr->init_x = bd_xcalloc(n, sizeof(double));
    tr->flat_x = bd_xcalloc(n, sizeof(double));
    initial_split(sc, tr->init_x);
    double *logm = bd_xcalloc(n, sizeof(double)), *shock = bd_xcalloc(n, sizeof(double));
    double *ad = bd_xcalloc(n, sizeof(double)); /* the oracle's adstock */
    memcpy(ad, tr->init_x, n * sizeof(double));
    bd_curve_t *cv = bd_xcalloc(n, sizeof *cv);
    double *lo = bd_xcalloc(n * 3, sizeof(double)), *hi = lo + n, *x = hi + n;
    size_t *idx = bd_xcalloc(n, sizeof *idx);
    for (size_t i = 0; i < n; i++) shock[i] = 1;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_taus2), *cr = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(r, (unsigned long)bd_mix64(seed ^ 0x7275746873696dULL));
    bool revenue = sc->pol->objective == BD_OBJ_REVENUE;
    int64_t L = sc->cfg->cycle;

    for (size_t t = 0; t < T; t++) {
        /* Every channel steps every cycle, present or not, so one channel's
         * path does not depend on when another arrives. */
        if (t > 0)
            for (size_t i = 0; i < n; i++)
                logm[i] = (1.0 - sc->drift_revert) * logm[i] + sc->drift_sigma * gsl_ran_gaussian(r, 1.0);
        for (size_t e = 0; e < sc->n_ev; e++) {
            const sim_event_t *ev = &sc->ev[e];
            if (ev->kind == SIM_SHOCK && (size_t)ev->cycle == t) shock[ev->ch] *= ev->factor;
        }
        apply_events(sc, tr, cr, t);
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            const sim_channel_t *c = &sc->ch[i];
            size_t k = t * n + i;
            tr->present[k] = t >= (size_t)c->arrives;
            tr->rate[k] = c->rate * exp(logm[i]) * shock[i];
            if (c->season.on) tr->rate[k] *= sim_season_factor(&c->season, sc->start + (int64_t)t * L, L);
            tr->curve[k] = (bd_curve_t){BD_CURVE_EXP, tr->rate[k] * (revenue ? c->value : 1.0), c->k, 0};
            if (tr->present[k]) {
                tr->lo[k] = c->cfg->min;
                tr->hi[k] = c->cfg->max;
                cv[m] = tr->curve[k];
                hi[m] = tr->hi[k] < tr->cap[k] ? tr->hi[k] : tr->cap[k];
                lo[m] = tr->lo[k] < hi[m] ? tr->lo[k] : hi[m];
                idx[m++] = i;
            }
        }
        double v = sim_oracle(cv, lo, hi, m, sc->pol->budget, x);
        for (size_t j = 0; j < m; j++) tr->opt_x[t * n + idx[j]] = x[j];
        bool carry = false;
        for (size_t i = 0; i < n; i++) {
            double d = sc->ch[i].carryover;
            if (d > 0) carry = true;
            ad[i] = d > 0 ? (1.0 - d) * tr->opt_x[t * n + i] + d * ad[i] : tr->opt_x[t * n + i];
        }
        if (carry) {
            v = 0;
            for (size_t i = 0; i < n; i++)
                if (tr->present[t * n + i]) v += bd_curve_value(&tr->curve[t * n + i], ad[i]);
        }
        tr->opt_v[t] = v;
    }
    tr->flat_v = sim_flat_split(sc, tr, tr->flat_x);
    gsl_rng_free(r);
    gsl_rng_free(cr);
    free(logm);
    free(shock);
    free(ad);
    free(cv);
    free(lo);
    free(idx);
    return tr;
}

/* Releases tr. */
void sim_truth_free(sim_truth_t *tr)
{
    if (!tr) return;
    free(tr->curve);
    free(tr->rate);
    free(tr->present);
    free(tr->fault);
    free(tr->vfactor);
    free(tr->ratio);
    free(tr->cap);
    free(tr->lo);
    free(tr->hi);
    free(tr->opt_x);
    free(tr->opt_v);
    free(tr->init_x);
    free(tr->flat_x);
    free(tr);
}

/* ---- the best flat split --------------------------------------------------- */

/* One channel's summed curve over the run, F(x) = sum_t a_t k (1 -
 * e^{-min(x, cap_t)/k}) over its present cycles: cycles sorted by cap with
 * suffix sums of a, so F'(x) = e^{-x/k} * (sum of a_t with cap_t > x). */
typedef struct {
    double k;
    size_t m;
    double *cap, *a, *suf; /* sorted by cap; suf[j] = sum a[j..m) */
} flat_ch_t;

typedef struct {
    double cap, a;
} cap_a_t;

/* qsort order of cap_a_t: by cap, ascending. */
static int cmp_cap(const void *x, const void *y)
{
    double a = ((const cap_a_t *)x)->cap, b = ((const cap_a_t *)y)->cap;
    return a < b ? -1 : a > b;
}

/* First j with cap[j] > x. */
static size_t flat_first_above(const flat_ch_t *f, double x)
{
    size_t lo = 0, hi = f->m;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (f->cap[mid] > x) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* F'(x): e^{-x/k} times the rate of the cycles whose cap is above x. */
static double flat_marginal(const flat_ch_t *f, double x)
{
    return exp(-x / f->k) * f->suf[flat_first_above(f, x)];
}

/* F(x), the run's return of spending x every cycle. */
static double flat_value(const flat_ch_t *f, double x)
{
    double v = 0;
    for (size_t j = 0; j < f->m; j++) v += f->a[j] * f->k * -expm1(-(x < f->cap[j] ? x : f->cap[j]) / f->k);
    return v;
}

/* The largest x in [lo, hi] with F'(x) >= lam (lo when none). */
static double flat_inverse(const flat_ch_t *f, double lo, double hi, double lam)
{
    if (flat_marginal(f, lo) < lam) return lo;
    if (flat_marginal(f, hi) >= lam) return hi;
    for (int it = 0; it < 100 && hi - lo > 1e-9 * (1 + hi); it++) {
        double mid = 0.5 * (lo + hi);
        if (flat_marginal(f, mid) >= lam) lo = mid;
        else hi = mid;
    }
    return lo;
}

/* See sim.h: KKT water-filling on the summed curves F_i by bisection on
 * the multiplier. */
double sim_flat_split(const sim_scenario_t *sc, const sim_truth_t *tr, double *x)
{
    size_t n = tr->n, T = (size_t)tr->T;
    double B = sc->pol->budget;
    flat_ch_t *f = bd_xcalloc(n ? n : 1, sizeof *f);
    double *lo = bd_xcalloc(n * 4 + 1, sizeof(double)), *hi = lo + n, *xl = hi + n, *xh = xl + n;
    cap_a_t *tmp = bd_xcalloc(T ? T : 1, sizeof *tmp);
    double total = 0, lam_hi = 0;
    for (size_t i = 0; i < n; i++) {
        const sim_channel_t *c = &sc->ch[i];
        f[i].k = c->k;
        size_t m = 0;
        for (size_t t = 0; t < T; t++) {
            size_t k = t * n + i;
            if (!tr->present[k]) continue;
            tmp[m++] = (cap_a_t){tr->cap[k], tr->curve[k].a};
        }
        qsort(tmp, m, sizeof *tmp, cmp_cap);
        f[i].m = m;
        f[i].cap = bd_xcalloc(m * 2 + 1, sizeof(double));
        f[i].a = f[i].cap + m;
        f[i].suf = bd_xcalloc(m + 1, sizeof(double));
        for (size_t j = 0; j < m; j++) {
            f[i].cap[j] = tmp[j].cap;
            f[i].a[j] = tmp[j].a;
        }
        for (size_t j = m; j-- > 0;) f[i].suf[j] = f[i].suf[j + 1] + f[i].a[j];
        lo[i] = c->cfg->min;
        hi[i] = isfinite(c->cfg->max) && c->cfg->max < B ? c->cfg->max : B;
        if (hi[i] < lo[i]) hi[i] = lo[i];
        total += hi[i];
        double m0 = flat_marginal(&f[i], lo[i]);
        if (m0 > lam_hi) lam_hi = m0;
    }
    if (total > B) total = B;
    /* bisection on the multiplier: the sum of x_i(lam) falls as lam rises */
    double lam_lo = 0;
    lam_hi = lam_hi * 2 + 1;
    for (int it = 0; it < 200; it++) {
        double lam = 0.5 * (lam_lo + lam_hi), s = 0;
        for (size_t i = 0; i < n; i++) s += flat_inverse(&f[i], lo[i], hi[i], lam);
        if (s > total) lam_lo = lam;
        else lam_hi = lam;
        if (lam_hi - lam_lo <= 1e-15 * lam_hi) break;
    }
    /* x(lam_hi) spends at most the total, x(lam_lo) at least: the channels
     * between share one marginal, so the rest goes to them pro rata */
    double sh = 0, sl = 0;
    for (size_t i = 0; i < n; i++) {
        xh[i] = flat_inverse(&f[i], lo[i], hi[i], lam_hi);
        xl[i] = flat_inverse(&f[i], lo[i], hi[i], lam_lo);
        sh += xh[i];
        sl += xl[i];
    }
    double w = sl > sh ? (total - sh) / (sl - sh) : 0;
    if (w < 0) w = 0;
    if (w > 1) w = 1;
    double v = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = xh[i] + w * (xl[i] - xh[i]);
        v += flat_value(&f[i], x[i]);
        free(f[i].cap);
        free(f[i].suf);
    }
    free(f);
    free(lo);
    free(tmp);
    return v;
}
