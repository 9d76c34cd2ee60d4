/* sim.c: the closed loop. The truth (drift, shocks, arrivals, broken
 * tracking, runaway spend) is fixed per run; each policy plays it cycle by
 * cycle: the allocation in force -> the environment spends it and draws
 * outcomes -> the policy learns -> the next allocation.
 *
 * The engine policy runs budgetd's own path in-process: events go through
 * bd_engine_apply, a watermark closes the cycle, the sink hands back the
 * decision, exactly what `budgetd replay` does with the event log written
 * here. Adapters follow CONTRACT §3: they spend the allocation in force and
 * nothing when the status is not active (held, killed).
 *
 * Return is expected return under the true curves at the allocation in
 * force (not the noisy draw), so regret measures decisions, not luck. A
 * runaway adapter's extra spend is counted as overspend, not as return;
 * broken tracking hides conversions from the policy, not from the return. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include "budgetd/alloc.h"
#include "budgetd/waterfill.h"
#include "budgetd/decide.h"
#include "budgetd/engine.h"
#include "sim.h"

const char *sim_policy_name(sim_policy_t p)
{
    switch (p) {
    case SIM_POL_ENGINE: return "budgetd";
    case SIM_POL_STATIC: return "static split";
    case SIM_POL_EQUAL: return "equal split";
    case SIM_POL_REFIT: return "weekly re-fit";
    case SIM_POL_EGREEDY: return "eps-greedy 0.1";
    default: return "?";
    }
}

/* ---- truth ------------------------------------------------------------ */

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
    tr->broken = bd_xcalloc(tn, 1);
    tr->ratio = bd_xcalloc(tn, sizeof(double));
    tr->lo = bd_xcalloc(tn, sizeof(double));
    tr->hi = bd_xcalloc(tn, sizeof(double));
    tr->opt_x = bd_xcalloc(tn, sizeof(double));
    tr->opt_v = bd_xcalloc(T, sizeof(double));
    double *logm = bd_xcalloc(n, sizeof(double)), *shock = bd_xcalloc(n, sizeof(double));
    unsigned char *broken = bd_xcalloc(n, 1);
    bd_curve_t *cv = bd_xcalloc(n, sizeof *cv);
    double *lo = bd_xcalloc(n * 3, sizeof(double)), *hi = lo + n, *x = hi + n;
    size_t *idx = bd_xcalloc(n, sizeof *idx);
    for (size_t i = 0; i < n; i++) shock[i] = 1;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(r, (unsigned long)bd_mix64(seed ^ 0x7275746873696dULL));
    bool revenue = sc->pol->objective == BD_OBJ_REVENUE;

    for (size_t t = 0; t < T; t++) {
        /* Every channel steps every cycle, present or not, so one channel's
         * path does not depend on when another arrives. */
        if (t > 0)
            for (size_t i = 0; i < n; i++)
                logm[i] = (1.0 - sc->drift_revert) * logm[i] + sc->drift_sigma * gsl_ran_gaussian(r, 1.0);
        for (size_t e = 0; e < sc->n_ev; e++) {
            const sim_event_t *ev = &sc->ev[e];
            if ((size_t)ev->cycle != t) continue;
            if (ev->kind == SIM_SHOCK) shock[ev->ch] *= ev->factor;
            if (ev->kind == SIM_BREAK) broken[ev->ch] = 1;
        }
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            const sim_channel_t *c = &sc->ch[i];
            size_t k = t * n + i;
            tr->present[k] = t >= (size_t)c->arrives;
            tr->rate[k] = c->rate * exp(logm[i]) * shock[i];
            tr->broken[k] = broken[i];
            tr->ratio[k] = 1.0;
            tr->curve[k] = (bd_curve_t){BD_CURVE_EXP, tr->rate[k] * (revenue ? c->value : 1.0), c->k, 0};
            if (tr->present[k]) {
                tr->lo[k] = c->cfg->min;
                tr->hi[k] = c->cfg->max;
                cv[m] = tr->curve[k];
                lo[m] = tr->lo[k];
                hi[m] = tr->hi[k];
                idx[m++] = i;
            }
        }
        for (size_t e = 0; e < sc->n_ev; e++) {
            const sim_event_t *ev = &sc->ev[e];
            if (ev->kind == SIM_RUNAWAY && t >= (size_t)ev->cycle &&
                (ev->duration == 0 || t < (size_t)(ev->cycle + ev->duration)))
                tr->ratio[t * n + (size_t)ev->ch] = ev->factor;
        }
        tr->opt_v[t] = sim_oracle(cv, lo, hi, m, sc->pol->budget, x);
        for (size_t j = 0; j < m; j++) tr->opt_x[t * n + idx[j]] = x[j];
    }
    gsl_rng_free(r);
    free(logm);
    free(shock);
    free(broken);
    free(cv);
    free(lo);
    free(idx);
    return tr;
}

void sim_truth_free(sim_truth_t *tr)
{
    if (!tr) return;
    free(tr->curve);
    free(tr->rate);
    free(tr->present);
    free(tr->broken);
    free(tr->ratio);
    free(tr->lo);
    free(tr->hi);
    free(tr->opt_x);
    free(tr->opt_v);
    free(tr);
}

/* ---- environment -------------------------------------------------------- */

/* Outcomes of spending s on channel i in cycle t. The generator is seeded
 * per (run, cycle, channel), so all policies share their random numbers
 * (common random numbers: differences come from decisions, not noise). */
static void env_draw(const sim_scenario_t *sc, const sim_truth_t *tr, gsl_rng *r, int t, size_t i,
                     double s, double *conv, double *rev)
{
    gsl_rng_set(r, (unsigned long)bd_mix64(tr->seed ^ bd_mix64((uint64_t)t * 1000003u + i)));
    const sim_channel_t *c = &sc->ch[i];
    double mu = tr->rate[(size_t)t * tr->n + i] * c->k * -expm1(-s / c->k);
    double od = sc->overdispersion;
    double mult = od > 0 ? gsl_ran_gamma(r, 1.0 / (od * od), od * od) : 1.0;
    *conv = s > 0 ? (double)gsl_ran_poisson(r, mu * mult) : 0;
    double sh = sc->value_shape;
    *rev = *conv > 0 ? gsl_ran_gamma(r, *conv * sh, c->value / sh) : 0;
}

/* Bound breaks of a decided allocation: spend on an absent channel, below
 * min, above max, or a total above the budget (cent tolerance). */
static int check_bounds(const sim_truth_t *tr, int t, const double *x, double budget)
{
    int v = 0;
    double sum = 0;
    for (size_t i = 0; i < tr->n; i++) {
        size_t k = (size_t)t * tr->n + i;
        if (!tr->present[k]) {
            v += x[i] > 0.005;
            continue;
        }
        v += x[i] < tr->lo[k] - 0.005 || x[i] > tr->hi[k] + 0.005;
        sum += x[i];
    }
    return v + (sum > budget + 0.01);
}

/* Bookkeeping shared by every policy: expected return of the allocation
 * effectively spent (eff), per-cycle regret, overspend. */
static void account(const sim_truth_t *tr, int t, const double *eff, sim_result_t *res)
{
    double v = sim_value(&tr->curve[(size_t)t * tr->n], eff, tr->n);
    double o = tr->opt_v[t];
    res->ret += v;
    res->oracle += o;
    if (t >= SIM_WARMUP) {
        res->ret_after += v;
        res->oracle_after += o;
    }
    res->rho[t] = o > 0 ? (o - v) / o : 0;
    for (size_t i = 0; i < tr->n; i++)
        res->overspend += eff[i] * (tr->ratio[(size_t)t * tr->n + i] - 1.0);
}

/* Cycles from a disruption (shock or arrival) until the per-cycle regret
 * stays within SIM_RECOVER_TOL for SIM_RECOVER_RUN cycles; the worst over
 * the scenario's disruptions. -1: never; -2: the scenario has none. */
static int recovery(const sim_scenario_t *sc, const sim_result_t *res)
{
    int worst = -2;
    for (size_t e = 0; e < sc->n_ev + sc->n_ch; e++) {
        int s;
        if (e < sc->n_ev) {
            if (sc->ev[e].kind != SIM_SHOCK) continue;
            s = sc->ev[e].cycle;
        } else {
            s = sc->ch[e - sc->n_ev].arrives;
            if (s == 0) continue;
        }
        int r = -1;
        for (int t = s; t + SIM_RECOVER_RUN <= sc->cycles; t++) {
            int ok = 1;
            for (int u = t; u < t + SIM_RECOVER_RUN && ok; u++) ok = res->rho[u] <= SIM_RECOVER_TOL;
            if (ok) {
                r = t - s;
                break;
            }
        }
        if (r < 0) return -1;
        if (r > worst) worst = r;
    }
    return worst;
}

static int channel_index(const sim_scenario_t *sc, const char *name)
{
    for (size_t i = 0; i < sc->n_ch; i++)
        if (!strcmp(sc->ch[i].name, name)) return (int)i;
    return -1;
}

/* ---- the engine policy -------------------------------------------------- */

typedef struct {
    const sim_scenario_t *sc;
    const sim_truth_t *tr;
    int64_t c0;           /* cycle number of the scenario's cycle 0 */
    sim_result_t *res;    /* diag sums go here when diag */
    bool diag;
    double *x;            /* allocation in force, scenario channel order */
    bd_status_t status;
    int64_t cycle;        /* cycle of the last decision */
    bool killed;
    int trips;
    unsigned resets;
    FILE *dec;
} eng_ctx_t;

const char *sim_diag_name(sim_diag_t d)
{
    switch (d) {
    case SIM_D_MEAN: return "posterior-mean water-fill";
    case SIM_D_MEAN_TRUEK: return "  mean a, true k";
    case SIM_D_MEAN_TRUEA: return "  true a, mean k";
    case SIM_D_FACTORY: return "allocator: factory only";
    case SIM_D_EXPLORE: return "  + explore";
    case SIM_D_RISK: return "  + risk bound";
    case SIM_D_ENGINE: return "  + ramp, min_change (engine)";
    default: return "?";
    }
}

/* Normalised regret at cycle t of x (p's channel order, map: scenario index). */
static double diag_regret(const sim_truth_t *tr, int t, const int *map, size_t m, const double *x)
{
    double v = 0;
    for (size_t j = 0; j < m; j++)
        if (map[j] >= 0) v += bd_curve_value(&tr->curve[(size_t)t * tr->n + (size_t)map[j]], x[j]);
    double o = tr->opt_v[t];
    return o > 0 ? (o - v) / o : 0;
}

/* The regret decomposition of one decision (sim_diag_t): re-decides the
 * cycle from the same posterior and the same draws (the rng seeded as
 * decide seeds it) with guardrails switched off one by one. Bench only:
 * the engine's path is untouched. */
static void eng_diag(eng_ctx_t *c, bd_portfolio_t *p, const bd_decision_t *d)
{
    const sim_truth_t *tr = c->tr;
    int t = (int)(d->cycle - c->c0);
    if (t < SIM_WARMUP || t >= tr->T || d->status != BD_STATUS_ACTIVE) return;
    size_t m = p->n;
    const bd_model_ops_t *ops = bd_model_get(p->pol->model);
    int *map = bd_xcalloc(m, sizeof *map);
    double *buf = bd_xcalloc(m * 8, sizeof(double));
    double *lo = buf, *hi = lo + m, *x = hi + m, *mr = x + m, *rl = mr + m, *rh = rl + m,
           *safe = rh + m, *xe = safe + m;
    bd_curve_t *cv = bd_xcalloc(m * 3, sizeof *cv), *mk = cv + m, *ma = mk + m;
    const bd_channel_cfg_t **cfg = bd_xcalloc(m, sizeof *cfg);
    bd_model_state_t *st = bd_xcalloc(m, sizeof *st);
    bd_prior_t *pr = bd_xcalloc(m, sizeof *pr);
    bool *prom = bd_xcalloc(m * 2, sizeof(bool));
    bd_bound_t *bound = bd_xcalloc(m, sizeof *bound);
    for (size_t j = 0; j < m; j++) {
        map[j] = channel_index(c->sc, p->ch[j].name);
        size_t k = (size_t)t * tr->n + (size_t)(map[j] < 0 ? 0 : map[j]);
        lo[j] = map[j] >= 0 && tr->present[k] ? tr->lo[k] : 0;
        hi[j] = map[j] >= 0 && tr->present[k] ? tr->hi[k] : 0;
        ops->mean(&p->ch[j].model, &p->ch[j].prior, &cv[j]);
        bd_curve_t truth = map[j] >= 0 ? tr->curve[k] : cv[j];
        mk[j] = cv[j];
        mk[j].k = truth.k;
        ma[j] = truth;
        ma[j].k = cv[j].k;
        cfg[j] = p->ch[j].cfg;
        st[j] = p->ch[j].model;
        pr[j] = p->ch[j].prior;
        safe[j] = p->ch[j].safe;
        prom[j] = p->ch[j].promoted;
        xe[j] = p->ch[j].x;
    }
    double *acc = c->res->diag;
    bd_waterfill_solve(cv, lo, hi, m, p->pol->budget, x);
    acc[SIM_D_MEAN] += diag_regret(tr, t, map, m, x);
    bd_waterfill_solve(mk, lo, hi, m, p->pol->budget, x);
    acc[SIM_D_MEAN_TRUEK] += diag_regret(tr, t, map, m, x);
    bd_waterfill_solve(ma, lo, hi, m, p->pol->budget, x);
    acc[SIM_D_MEAN_TRUEA] += diag_regret(tr, t, map, m, x);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_taus2);
    for (int v = 0; v < 3; v++) {
        bd_policy_t pol = *p->pol;
        if (v < 2) pol.risk_max_prob = 1.0;
        if (v < 1) pol.explore_share = 0;
        gsl_rng_set(r, (unsigned long)bd_decide_seed(c->sc->cfg->seed, p->name, d->cycle));
        bd_alloc_input_t in = {.n = m, .pol = &pol, .cfg = cfg, .ops = ops, .states = st,
                               .priors = pr, .prev = NULL, .safe = safe, .promoted = prom, .rng = r};
        bd_alloc_output_t out = {.x = x, .bound = bound, .mean_roas = mr, .roas_lo = rl,
                                 .roas_hi = rh, .promoted = prom + m};
        char err[256];
        if (bd_alloc_decide(&in, &out, err, sizeof err) == BD_OK)
            acc[SIM_D_FACTORY + v] += diag_regret(tr, t, map, m, x);
        bd_alloc_output_free(&out);
    }
    gsl_rng_free(r);
    acc[SIM_D_ENGINE] += diag_regret(tr, t, map, m, xe);
    if (getenv("X_KTRACE") && t % 100 == 0) {
        fprintf(stderr, "t=%4d", t);
        for (size_t j = 0; j < m; j++)
            fprintf(stderr, "  %s k/true %.2f a/true %.2f x %.0f opt %.0f", p->ch[j].name,
                    cv[j].k / tr->curve[(size_t)t * tr->n + (size_t)map[j]].k,
                    cv[j].a / tr->curve[(size_t)t * tr->n + (size_t)map[j]].a, xe[j],
                    tr->opt_x[(size_t)t * tr->n + (size_t)map[j]]);
        fprintf(stderr, "\n");
    }
    c->res->diag_n++;
    free(map);
    free(buf);
    free(cv);
    free(cfg);
    free(st);
    free(pr);
    free(prom);
    free(bound);
}

/* The engine's sink: what an adapter reads from Redis, in process. */
static bd_err_t eng_sink(void *ctx, bd_portfolio_t *p, const bd_decision_t *d, const char *json,
                         size_t len)
{
    eng_ctx_t *c = ctx;
    if (strcmp(p->name, c->sc->portfolio) != 0) return BD_OK;
    for (size_t j = 0; j < p->n; j++) {
        int i = channel_index(c->sc, p->ch[j].name);
        if (i >= 0) c->x[i] = p->ch[j].x;
    }
    const bd_model_ops_t *ops = bd_model_get(p->pol->model);
    c->resets = 0;
    for (size_t j = 0; ops && ops->resets && j < p->n; j++) c->resets += ops->resets(&p->ch[j].model);
    c->status = d->status;
    c->cycle = d->cycle;
    if (c->diag) eng_diag(c, p, d);
    bool k = d->path == BD_PATH_KILLED;
    if (k && !c->killed) c->trips++;
    c->killed = k;
    if (c->dec) {
        fwrite(json, 1, len, c->dec);
        fputc('\n', c->dec);
    }
    return BD_OK;
}

/* Feeds one record to the engine (and the log). */
static bd_err_t eng_feed(bd_engine_t *e, const bd_event_t *ev, FILE *log, char *errbuf, size_t errlen)
{
    if (log) {
        if (ev->kind == BD_EV_WATERMARK)
            fprintf(log, "{\"portfolio\":\"%s\",\"watermark\":%lld}\n", ev->portfolio, (long long)ev->ts);
        else
            fprintf(log,
                    "{\"v\":1,\"event_id\":\"%s\",\"ts\":%lld,\"portfolio\":\"%s\",\"channel\":\"%s\","
                    "\"spend\":%.2f,\"conversions\":%.0f,\"revenue\":%.2f}\n",
                    ev->event_id, (long long)ev->ts, ev->portfolio, ev->channel, ev->spend,
                    ev->conversions, ev->revenue);
    }
    char detail[256];
    bd_err_t err = BD_OK;
    bd_reject_t r = bd_engine_apply(e, ev, detail, sizeof detail, &err);
    if (r != BD_REJ_NONE) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "engine rejected a sim event: %s", detail);
    if (err == BD_OK) err = bd_engine_flush(e);
    if (err != BD_OK) return bd_errf(errbuf, errlen, err, "engine sink failed");
    return BD_OK;
}

static bd_event_t watermark(const sim_scenario_t *sc, int64_t ts)
{
    bd_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = BD_EV_WATERMARK;
    ev.ts = ts;
    snprintf(ev.portfolio, sizeof ev.portfolio, "%s", sc->portfolio);
    return ev;
}

/* Cents, as an adapter reports them; the same value goes in process and to
 * the log (%.2f of a cent-rounded double parses back to the same double),
 * so `budgetd replay` of the log sees identical inputs. */
static double cents(double v) { return round(v * 100.0) / 100.0; }

static bd_err_t run_engine(const sim_scenario_t *sc, const sim_truth_t *tr, const sim_log_t *log,
                           sim_result_t *res, char *errbuf, size_t errlen)
{
    size_t n = tr->n;
    eng_ctx_t c = {.sc = sc, .tr = tr, .res = res, .diag = log && log->diag,
                   .status = BD_STATUS_ACTIVE, .cycle = INT64_MIN,
                   .dec = log ? log->decisions : NULL};
    c.x = bd_xcalloc(n, sizeof(double));
    double *eff = bd_xcalloc(n, sizeof(double));
    FILE *evlog = log ? log->events : NULL;
    bd_engine_opts_t o = {.threads = 1, .live = false, .sink = eng_sink, .sink_ctx = &c};
    bd_engine_t *e = bd_engine_new(sc->cfg, &o);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_taus2);
    int64_t L = sc->cfg->cycle, c0 = sc->start / L;
    c.c0 = c0;
    int kill_start = -1;
    bd_event_t wm = watermark(sc, sc->start);
    bd_err_t rc = eng_feed(e, &wm, evlog, errbuf, errlen);
    for (int t = 0; rc == BD_OK && t < tr->T; t++) {
        if (c.cycle != c0 + t) {
            rc = bd_errf(errbuf, errlen, BD_ERR_INVALID, "engine decided cycle %lld, expected %lld",
                         (long long)c.cycle, (long long)(c0 + t));
            break;
        }
        bool active = c.status == BD_STATUS_ACTIVE;
        if (c.status == BD_STATUS_KILLED) res->killed_cycles++;
        if (c.status == BD_STATUS_HELD) res->held_cycles++;
        if (active) res->violations += check_bounds(tr, t, c.x, sc->pol->budget);
        for (size_t i = 0; i < n; i++) eff[i] = active && tr->present[(size_t)t * n + i] ? c.x[i] : 0;
        account(tr, t, eff, res);
        for (size_t i = 0; i < n && rc == BD_OK; i++) {
            size_t k = (size_t)t * n + i;
            if (!tr->present[k]) continue;
            double spend = cents(eff[i] * tr->ratio[k]), conv, rev;
            env_draw(sc, tr, r, t, i, spend, &conv, &rev);
            if (tr->broken[k]) conv = rev = 0;
            bd_event_t ev;
            memset(&ev, 0, sizeof ev);
            ev.kind = BD_EV_DATA;
            ev.ts = sc->start + (int64_t)t * L;
            snprintf(ev.portfolio, sizeof ev.portfolio, "%s", sc->portfolio);
            snprintf(ev.channel, sizeof ev.channel, "%s", sc->ch[i].name);
            snprintf(ev.event_id, sizeof ev.event_id, "sim-%d-%zu", t, i);
            ev.spend = spend;
            ev.conversions = conv;
            ev.revenue = cents(rev);
            rc = eng_feed(e, &ev, evlog, errbuf, errlen);
        }
        if (rc != BD_OK) break;
        /* The operator's `budgetd resume` after resume_after killed cycles. */
        if (c.killed && kill_start < 0) kill_start = t;
        if (c.killed && sc->resume_after > 0 && t - kill_start + 1 >= sc->resume_after) {
            bd_portfolio_t *p = bd_ptable_find(bd_engine_table(e), sc->portfolio, strlen(sc->portfolio));
            if (p) {
                p->killed = false;
                p->kill_reason[0] = '\0';
            }
            kill_start = -1;
        }
        if (!c.killed) kill_start = -1;
        wm = watermark(sc, sc->start + (int64_t)(t + 1) * L);
        rc = eng_feed(e, &wm, evlog, errbuf, errlen);
    }
    res->kill_trips = c.trips;
    res->resets = c.resets;
    gsl_rng_free(r);
    bd_engine_free(e);
    free(c.x);
    free(eff);
    return rc;
}

/* ---- baselines ---------------------------------------------------------- */

/* Point estimate of a channel's slope a with k fixed at the configured
 * saturation: the Poisson MLE (moment matching) sum y / sum g_k(x) over all
 * data so far, with a weak prior worth 1% of a cycle's budget at the
 * engine's prior ROAS (2x the risk floor) so that a channel without data
 * has a guess. This is the analyst's MMM: full history, no forgetting. */
typedef struct {
    double G, Y;
} est_t;

static bd_curve_t est_curve(const sim_scenario_t *sc, const est_t *es, size_t i)
{
    const bd_policy_t *pol = sc->pol;
    double a0 = 2.0 * (pol->risk_roas_floor > 0 ? pol->risk_roas_floor : 1.0);
    double G0 = 0.01 * pol->budget;
    double k = sc->ch[i].cfg->saturation > 0 ? sc->ch[i].cfg->saturation : pol->budget;
    return (bd_curve_t){BD_CURVE_EXP, (es[i].Y + a0 * G0) / (es[i].G + G0), k, 0};
}

/* Water-fills curves cv over the channels present at t; absent get 0. */
static void fill_present(const sim_scenario_t *sc, const sim_truth_t *tr, int t, const bd_curve_t *cv,
                         double *x)
{
    size_t n = tr->n, m = 0;
    bd_curve_t *c = bd_xcalloc(n, sizeof *c);
    double *lo = bd_xcalloc(n * 3, sizeof(double)), *hi = lo + n, *y = hi + n;
    size_t *idx = bd_xcalloc(n, sizeof *idx);
    for (size_t i = 0; i < n; i++) {
        size_t k = (size_t)t * n + i;
        x[i] = 0;
        if (!tr->present[k]) continue;
        c[m] = cv[i];
        lo[m] = tr->lo[k];
        hi[m] = tr->hi[k];
        idx[m++] = i;
    }
    bd_waterfill_solve(c, lo, hi, m, sc->pol->budget, y);
    for (size_t j = 0; j < m; j++) x[idx[j]] = y[j];
    free(c);
    free(lo);
    free(idx);
}

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

static void run_baseline(const sim_scenario_t *sc, const sim_truth_t *tr, sim_policy_t pol,
                         sim_result_t *res)
{
    size_t n = tr->n;
    double *x = bd_xcalloc(n, sizeof(double));
    est_t *es = bd_xcalloc(n, sizeof *es);
    bd_curve_t *cv = bd_xcalloc(n, sizeof *cv);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_taus2), *pr = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(pr, (unsigned long)bd_mix64(tr->seed ^ 0x65707367ULL));
    bool revenue = sc->pol->objective == BD_OBJ_REVENUE;
    initial_split(sc, x);
    for (int t = 0; t < tr->T; t++) {
        if (pol == SIM_POL_EQUAL) {
            /* identical linear-ish curves: water-filling splits equally in the box */
            for (size_t i = 0; i < n; i++) cv[i] = (bd_curve_t){BD_CURVE_EXP, 1.0, sc->pol->budget, 0};
            fill_present(sc, tr, t, cv, x);
        } else if (pol == SIM_POL_REFIT && t > 0 && t % SIM_REFIT_EVERY == 0) {
            for (size_t i = 0; i < n; i++) cv[i] = est_curve(sc, es, i);
            fill_present(sc, tr, t, cv, x);
        } else if (pol == SIM_POL_EGREEDY && t > 0) {
            if (gsl_rng_uniform(pr) < SIM_EPSILON) {
                /* a random feasible split: water-filling random curves */
                for (size_t i = 0; i < n; i++)
                    cv[i] = (bd_curve_t){BD_CURVE_EXP, exp(gsl_ran_gaussian(pr, 1.0)),
                                         sc->pol->budget / (double)n, 0};
            } else {
                for (size_t i = 0; i < n; i++) cv[i] = est_curve(sc, es, i);
            }
            fill_present(sc, tr, t, cv, x);
        }
        for (size_t i = 0; i < n; i++)
            if (!tr->present[(size_t)t * n + i]) x[i] = 0;
        res->violations += check_bounds(tr, t, x, sc->pol->budget);
        account(tr, t, x, res);
        for (size_t i = 0; i < n; i++) {
            size_t k = (size_t)t * n + i;
            if (!tr->present[k]) continue;
            double spend = x[i] * tr->ratio[k], conv, rev;
            env_draw(sc, tr, r, t, i, spend, &conv, &rev);
            if (tr->broken[k]) conv = rev = 0;
            if (spend > 0) {
                es[i].G += sc->ch[i].cfg->saturation > 0
                               ? sc->ch[i].cfg->saturation * -expm1(-spend / sc->ch[i].cfg->saturation)
                               : spend;
                es[i].Y += revenue ? rev : conv;
            }
        }
    }
    gsl_rng_free(r);
    gsl_rng_free(pr);
    free(x);
    free(es);
    free(cv);
}

/* ---- entry -------------------------------------------------------------- */

bd_err_t sim_run(const sim_scenario_t *sc, const sim_truth_t *tr, sim_policy_t policy,
                 const sim_log_t *log, sim_result_t *res, char *errbuf, size_t errlen)
{
    memset(res, 0, sizeof *res);
    res->rho = bd_xcalloc((size_t)tr->T, sizeof(double));
    bd_err_t rc = BD_OK;
    if (policy == SIM_POL_ENGINE) rc = run_engine(sc, tr, log, res, errbuf, errlen);
    else run_baseline(sc, tr, policy, res);
    res->regret = res->oracle > 0 ? 1.0 - res->ret / res->oracle : 0;
    res->regret_after = res->oracle_after > 0 ? 1.0 - res->ret_after / res->oracle_after : 0;
    res->recovery = recovery(sc, res);
    return rc;
}

void sim_result_free(sim_result_t *r)
{
    free(r->rho);
    r->rho = NULL;
}
