/* sim.c: the closed loop. The truth (truth.c) is fixed per run; each
 * policy plays it cycle by cycle through its own environment (env.c): the
 * allocation in force -> the environment delivers it and draws outcomes ->
 * the policy learns from the reports due -> the next allocation.
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
 * data faults hide or corrupt what the policy sees, never the return.
 * The engine's decision records are read back for "fault" flags
 * (sim_record_faults), so that a fault detector is measured once the
 * engine has one. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <cJSON.h>
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
    case SIM_POL_FLAT: return "best flat split";
    default: return "?";
    }
}

/* ---- bookkeeping ---------------------------------------------------------- */

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

/* Bookkeeping shared by every policy at cycle t: the allocation in force
 * x, what the channels could spend of it (deliv) and the cycle's expected
 * return v (sim_env_step); per-cycle regret, overspend. */
static void account(const sim_truth_t *tr, int t, const double *x, const double *deliv, double v,
                    sim_result_t *res)
{
    double o = tr->opt_v[t];
    res->ret += v;
    res->oracle += o;
    if (t >= SIM_WARMUP) {
        res->ret_after += v;
        res->oracle_after += o;
    }
    res->v[t] = v;
    res->rho[t] = o > 0 ? (o - v) / o : 0;
    size_t n = tr->n;
    for (size_t i = 0; i < n; i++) {
        size_t k = (size_t)t * n + i;
        res->alloc[k] = x[i];
        res->deliv[k] = deliv[i];
        res->overspend += deliv[i] * (tr->ratio[k] - 1.0);
    }
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
    double *seas = bd_xcalloc(m, sizeof *seas);
    for (size_t j = 0; j < m; j++) {
        map[j] = channel_index(c->sc, p->ch[j].name);
        size_t k = (size_t)t * tr->n + (size_t)(map[j] < 0 ? 0 : map[j]);
        lo[j] = map[j] >= 0 && tr->present[k] ? tr->lo[k] : 0;
        hi[j] = map[j] >= 0 && tr->present[k] ? tr->hi[k] : 0;
        ops->mean(&p->ch[j].model, &p->ch[j].prior, &cv[j]);
        if (d->show_season) cv[j].a *= d->ch[j].season; /* the engine's view of this interval */
        seas[j] = d->show_season ? d->ch[j].season : 1.0;
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
                               .priors = pr, .prev = NULL, .safe = safe, .promoted = prom, .rng = r,
                               .mult = seas};
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
    free(seas);
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
    if (memmem(json, len, "\"fault\"", 7) &&
        sim_record_faults(json, len, c->sc, c->c0, c->tr->T, c->res->flag))
        c->res->has_flags = true;
    if (c->dec) {
        fwrite(json, 1, len, c->dec);
        fputc('\n', c->dec);
    }
    return BD_OK;
}

/* See sim.h. Parses the record with cJSON (only records that mention
 * "fault" get here). */
bool sim_record_faults(const char *json, size_t len, const sim_scenario_t *sc, int64_t c0, int T,
                       unsigned char *flag)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return false;
    bool field = false;
    const cJSON *cy = cJSON_GetObjectItemCaseSensitive(root, "cycle");
    const cJSON *chs = cJSON_GetObjectItemCaseSensitive(root, "channels");
    int64_t t = cJSON_IsNumber(cy) ? (int64_t)cy->valuedouble - c0 : -1;
    const cJSON *ch;
    cJSON_ArrayForEach(ch, chs)
    {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(ch, "fault");
        if (!f) continue;
        field = true;
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(ch, "channel");
        int i = cJSON_IsString(name) ? channel_index(sc, name->valuestring) : -1;
        if (i >= 0 && t >= 0 && t < T && !cJSON_IsNull(f) && !cJSON_IsFalse(f))
            flag[(size_t)t * sc->n_ch + (size_t)i] = 1;
    }
    cJSON_Delete(root);
    return field;
}

/* Writes one record to the event log (JSON Lines, what `budgetd replay`
 * reads). rev >= 0: the restatement number, written as "rev" (CONTRACT v2). */
static void log_event(FILE *log, const bd_event_t *ev, bool traffic, int rev)
{
    if (ev->kind == BD_EV_WATERMARK) {
        fprintf(log, "{\"portfolio\":\"%s\",\"watermark\":%lld}\n", ev->portfolio, (long long)ev->ts);
        return;
    }
    fprintf(log, "{\"v\":1,\"event_id\":\"%s\",", ev->event_id);
    if (rev >= 0) fprintf(log, "\"rev\":%d,", rev);
    fprintf(log, "\"ts\":%lld,\"portfolio\":\"%s\",\"channel\":\"%s\",\"spend\":%.2f,",
            (long long)ev->ts, ev->portfolio, ev->channel, ev->spend);
    if (traffic) fprintf(log, "\"impressions\":%.0f,\"clicks\":%.0f,", ev->impressions, ev->clicks);
    fprintf(log, "\"conversions\":%.0f,\"revenue\":%.2f}\n", ev->conversions, ev->revenue);
}

/* Feeds one record to the engine (and the log). */
static bd_err_t eng_feed(bd_engine_t *e, const bd_event_t *ev, FILE *log, bool traffic, int rev,
                         char *errbuf, size_t errlen)
{
    if (log) log_event(log, ev, traffic, rev);
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

/* A report as the event a connector sends. Late delivery: the interval's
 * first report keeps the id sim-<cycle>-<channel>, a later piece is a new
 * event sim-<cycle>-<channel>-<delay> with the piece's numbers. Restate:
 * every report of the interval re-sends sim-<cycle>-<channel> with the
 * totals so far and its rev (0, 1, 2, ...), which the engine applies as
 * the difference to the version before. */
static bd_event_t report_event(const sim_scenario_t *sc, const sim_report_t *rp)
{
    bd_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = BD_EV_DATA;
    ev.ts = sc->start + (int64_t)rp->origin * sc->cfg->cycle;
    snprintf(ev.portfolio, sizeof ev.portfolio, "%s", sc->portfolio);
    snprintf(ev.channel, sizeof ev.channel, "%s", sc->ch[rp->ch].name);
    bool restate = sc->delivery == SIM_DELIVER_RESTATE;
    if (restate || rp->piece == 0) snprintf(ev.event_id, sizeof ev.event_id, "sim-%d-%zu", rp->origin, rp->ch);
    else snprintf(ev.event_id, sizeof ev.event_id, "sim-%d-%zu-%d", rp->origin, rp->ch, rp->piece);
    ev.spend = restate ? rp->c_spend : rp->d_spend;
    ev.impressions = restate ? rp->c_impressions : rp->d_impressions;
    ev.clicks = restate ? rp->c_clicks : rp->d_clicks;
    ev.conversions = restate ? rp->c_conversions : rp->d_conversions;
    ev.revenue = restate ? rp->c_revenue : rp->d_revenue;
    ev.has_rev = restate;
    ev.rev = restate ? (uint32_t)rp->rev : 0;
    return ev;
}

/* The operator's `budgetd resume` after resume_after killed cycles. */
static void operator_resume(const sim_scenario_t *sc, bd_engine_t *e, const eng_ctx_t *c, int t,
                            int *kill_start)
{
    if (c->killed && *kill_start < 0) *kill_start = t;
    if (c->killed && sc->resume_after > 0 && t - *kill_start + 1 >= sc->resume_after) {
        bd_portfolio_t *p = bd_ptable_find(bd_engine_table(e), sc->portfolio, strlen(sc->portfolio));
        if (p) {
            p->killed = false;
            p->kill_reason[0] = '\0';
        }
        *kill_start = -1;
    }
    if (!c->killed) *kill_start = -1;
}

static bd_err_t run_engine(const sim_scenario_t *sc, const sim_truth_t *tr, const sim_log_t *log,
                           sim_result_t *res, char *errbuf, size_t errlen)
{
    size_t n = tr->n;
    eng_ctx_t c = {.sc = sc, .tr = tr, .res = res, .diag = log && log->diag,
                   .status = BD_STATUS_ACTIVE, .cycle = INT64_MIN,
                   .dec = log ? log->decisions : NULL};
    c.x = bd_xcalloc(n, sizeof(double));
    double *eff = bd_xcalloc(n * 2, sizeof(double)), *deliv = eff + n;
    FILE *evlog = log ? log->events : NULL;
    bd_engine_opts_t o = {.threads = 1, .live = false, .sink = eng_sink, .sink_ctx = &c};
    bd_engine_t *e = bd_engine_new(sc->cfg, &o);
    sim_env_t *env = sim_env_new(sc, tr, true);
    int64_t L = sc->cfg->cycle, c0 = sc->start / L;
    int restate = sc->delivery == SIM_DELIVER_RESTATE ? 0 : -1;
    c.c0 = c0;
    int kill_start = -1;
    bd_event_t wm = watermark(sc, sc->start);
    bd_err_t rc = eng_feed(e, &wm, evlog, false, -1, errbuf, errlen);
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
        const sim_report_t *rep;
        size_t nr;
        double v = sim_env_step(env, t, eff, deliv, &rep, &nr);
        account(tr, t, eff, deliv, v, res);
        for (size_t j = 0; j < nr && rc == BD_OK; j++) {
            bd_event_t ev = report_event(sc, &rep[j]);
            rc = eng_feed(e, &ev, evlog, sc->traffic, restate < 0 ? -1 : rep[j].rev, errbuf, errlen);
        }
        if (rc != BD_OK) break;
        operator_resume(sc, e, &c, t, &kill_start);
        wm = watermark(sc, sc->start + (int64_t)(t + 1) * L);
        rc = eng_feed(e, &wm, evlog, false, -1, errbuf, errlen);
    }
    res->kill_trips = c.trips;
    res->resets = c.resets;
    sim_env_free(env);
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

/* The baselines learn from the reports as they arrive: the spend of a first
 * report and the conversions (or revenue) of every piece, the totals of a
 * restatement taken as its difference to the last (they understand
 * restatements; only the engine is measured on them). The best flat split
 * and the static split learn nothing. */
static void run_baseline(const sim_scenario_t *sc, const sim_truth_t *tr, sim_policy_t pol,
                         sim_result_t *res)
{
    size_t n = tr->n;
    double *x = bd_xcalloc(n * 3 + 1, sizeof(double)), *deliv = x + n, *xf = deliv + n;
    est_t *es = bd_xcalloc(n, sizeof *es);
    bd_curve_t *cv = bd_xcalloc(n, sizeof *cv);
    gsl_rng *pr = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(pr, (unsigned long)bd_mix64(tr->seed ^ 0x65707367ULL));
    sim_env_t *env = sim_env_new(sc, tr, false);
    bool revenue = sc->pol->objective == BD_OBJ_REVENUE;
    memcpy(x, pol == SIM_POL_FLAT ? tr->flat_x : tr->init_x, n * sizeof(double));
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
        double *xt = x;
        if (pol == SIM_POL_FLAT) {
            /* the flat split stays; absent channels spend nothing */
            for (size_t i = 0; i < n; i++) xf[i] = tr->present[(size_t)t * n + i] ? x[i] : 0;
            xt = xf;
        } else {
            for (size_t i = 0; i < n; i++)
                if (!tr->present[(size_t)t * n + i]) x[i] = 0;
        }
        res->violations += check_bounds(tr, t, xt, sc->pol->budget);
        const sim_report_t *rep;
        size_t nr;
        double v = sim_env_step(env, t, xt, deliv, &rep, &nr);
        account(tr, t, xt, deliv, v, res);
        for (size_t j = 0; j < nr; j++) {
            const sim_report_t *rp = &rep[j];
            double k = sc->ch[rp->ch].cfg->saturation, sp = rp->d_spend;
            if (sp > 0) es[rp->ch].G += k > 0 ? k * -expm1(-sp / k) : sp;
            es[rp->ch].Y += revenue ? rp->d_revenue : rp->d_conversions;
        }
    }
    sim_env_free(env);
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
    size_t T = (size_t)tr->T, tn = T * tr->n;
    res->rho = bd_xcalloc(T, sizeof(double));
    res->v = bd_xcalloc(T, sizeof(double));
    res->alloc = bd_xcalloc(tn ? tn : 1, sizeof(double));
    res->deliv = bd_xcalloc(tn ? tn : 1, sizeof(double));
    res->flag = bd_xcalloc(tn ? tn : 1, 1);
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
    free(r->v);
    free(r->alloc);
    free(r->deliv);
    free(r->flag);
    r->rho = r->v = r->alloc = r->deliv = NULL;
    r->flag = NULL;
}
