/* test_whatif_fit.c: the what-if's fitted environment (engine/sim/fit.c,
 * env.c) recovers a known truth. Logs are made by the bench simulator
 * (bench/sim/) from a hidden truth under a config; the fit must get each
 * channel's value per conversion, its expected conversions at the spend
 * the log saw, its overdispersion, its reporting lag and its delivery cap
 * back within tolerances, and must refuse caps when the log was not
 * recorded under the config it is told. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/whatif.h"
#include "sim/sim.h"

#define CFG                                                                                      \
    "config: |\n  v: 1\n  cycle: 1h\n  seed: 5\n"                                                \
    "  defaults: {objective: revenue, samples: 32, max_step: 0.25, explore_share: 0.05,\n"       \
    "             risk: {roas_floor: 1.0, max_prob: 0.2}}\n"                                     \
    "  portfolios:\n    shop:\n      budget: %s\n      channels:\n"                               \
    "        search: {min: 500, max: 5000, saturation: 3000, initial: 2500}\n"                   \
    "        social: {min: 200, max: 4000, saturation: 2000}\n"                                   \
    "        video:  {max: 4000, saturation: 2000}\n"

/* A scenario of `cycles` hours with body (noise, channels, events) and the
 * shop config at budget. */
static sim_scenario_t *scenario(const char *body, int cycles, const char *budget)
{
    char text[8192], cfg[2048];
    snprintf(cfg, sizeof cfg, CFG, budget);
    snprintf(text, sizeof text, "scenario: t\ncycles: %d\nseed: 3\nstart: 1767225600\nportfolio: shop\n%s%s",
             cycles, body, cfg);
    sim_scenario_t *sc = NULL;
    char err[4096];
    cr_assert_eq(sim_scenario_load_string(text, strlen(text), "t", NULL, &sc, err, sizeof err), BD_OK, "%s", err);
    return sc;
}

/* Plays sc's config on tr; the event log into *log (caller frees), the
 * result into res. */
static void play(sim_scenario_t *sc, sim_truth_t *tr, char **log, size_t *len, sim_result_t *res)
{
    char err[1024];
    FILE *f = open_memstream(log, len);
    sim_log_t lg = {.events = f};
    cr_assert_eq(sim_run(sc, tr, SIM_POL_ENGINE, &lg, res, err, sizeof err), BD_OK, "%s", err);
    fclose(f);
}

/* The fit of log under base. */
static bd_fit_t *fit_of(const bd_config_t *base, const char *log, size_t len)
{
    bd_fitter_t *f = bd_fit_begin(base);
    for (const char *l = log; l < log + len;) {
        const char *e = memchr(l, '\n', (size_t)(log + len - l));
        size_t n = e ? (size_t)(e - l) : (size_t)(log + len - l);
        if (n) bd_fit_line(f, l, n);
        l += n + 1;
    }
    bd_fit_t *fit = NULL;
    char err[512];
    cr_assert_eq(bd_fit_end(f, &fit, err, sizeof err), BD_OK, "%s", err);
    return fit;
}

static const bd_fit_channel_t *channel(const bd_fit_t *fit, const char *name)
{
    cr_assert_eq(fit->n, 1);
    for (size_t i = 0; i < fit->pf[0].n; i++)
        if (!strcmp(fit->pf[0].ch[i].name, name)) return &fit->pf[0].ch[i];
    cr_assert_fail("no channel %s in the fit", name);
    return NULL;
}

/* Index of channel name in the scenario. */
static size_t sc_index(const sim_scenario_t *sc, const char *name)
{
    for (size_t i = 0; i < sc->n_ch; i++)
        if (!strcmp(sc->ch[i].name, name)) return i;
    cr_assert_fail("no channel %s", name);
    return 0;
}

/* Expected revenue over the log of the allocations that ran, under the
 * truth and under the fit's draws (mean over D draws of the environment). */
static void in_sample(const sim_scenario_t *sc, const sim_truth_t *tr, const sim_result_t *res,
                      const bd_fit_t *fit, size_t ci, double *truth, double *fitted)
{
    const int D = 20;
    size_t si = sc_index(sc, fit->pf[0].ch[ci].name);
    *truth = *fitted = 0;
    for (int t = 0; t < tr->T; t++)
        *truth += bd_curve_value(&tr->curve[(size_t)t * tr->n + si], res->alloc[(size_t)t * tr->n + si]);
    for (int d = 0; d < D; d++) {
        bd_env_t *env = bd_env_new(fit, sc->cfg, 9, d);
        const bd_env_channel_t *c = &env->pf[0].ch[ci];
        for (int t = 0; t < tr->T; t++)
            *fitted += bd_env_value(env, &env->pf[0], c, fit->c0 + t, res->alloc[(size_t)t * tr->n + si]) / D;
        bd_env_free(env);
    }
}

/* A stationary log with overdispersion and a seasonal one: value,
 * in-sample return and overdispersion come back. */
Test(whatif_fit, recovers_known_curves)
{
    const char *bodies[2] = {
        "noise: {overdispersion: 0.15, value_shape: 2}\n"
        "channels:\n"
        "  search: {rate: 0.050, value: 60, saturation: 2500}\n"
        "  social: {rate: 0.045, value: 50, saturation: 1500}\n"
        "  video:  {rate: 0.025, value: 90, saturation: 3500}\n",
        "noise: {overdispersion: 0.15, value_shape: 2}\n"
        "season: {daily: {amplitude: 0.5, peak_hour: 20}}\n"
        "channels:\n"
        "  search: {rate: 0.050, value: 60, saturation: 2500}\n"
        "  social: {rate: 0.045, value: 50, saturation: 1500}\n"
        "  video:  {rate: 0.025, value: 90, saturation: 3500}\n"};
    for (int b = 0; b < 2; b++) {
        sim_scenario_t *sc = scenario(bodies[b], 336, "6000");
        sim_truth_t *tr = sim_truth_new(sc, 17);
        char *log;
        size_t len;
        sim_result_t res;
        play(sc, tr, &log, &len, &res);
        bd_fit_t *fit = fit_of(sc->cfg, log, len);
        cr_assert_eq(fit->c1 - fit->c0 + 1, 336);
        cr_assert_eq(fit->pf[0].n, 3);
        for (size_t i = 0; i < 3; i++) {
            const bd_fit_channel_t *c = &fit->pf[0].ch[i];
            const sim_channel_t *t = &sc->ch[sc_index(sc, c->name)];
            cr_assert_eq(c->cycles, 336, "%s", c->name);
            cr_assert(fabs(c->value / t->value - 1) < 0.05, "%s value %.2f, truth %.2f", c->name, c->value, t->value);
            cr_assert(c->od > 0.07 && c->od < 0.25, "%s overdispersion %.3f, truth 0.15", c->name, c->od);
            double tv, fv;
            in_sample(sc, tr, &res, fit, i, &tv, &fv);
            cr_assert(fabs(fv / tv - 1) < 0.04, "%s (%s): in-sample %.0f, truth %.0f", c->name,
                      b ? "seasonal" : "stationary", fv, tv);
            if (b == 1) {
                double lo, hi;
                lo = INFINITY, hi = 0;
                for (int h = 0; h < 24; h++) {
                    double f = bd_season_apply(&c->season, h, 0);
                    lo = f < lo ? f : lo;
                    hi = f > hi ? f : hi;
                }
                cr_assert(hi > 1.3 && lo < 0.7, "%s: daily profile %.2f-%.2f, truth 0.5-1.5", c->name, lo, hi);
            }
        }
        bd_fit_free(fit);
        free(log);
        sim_result_free(&res);
        sim_truth_free(tr);
        sim_scenario_free(sc);
    }
}

/* A slow-reporting channel's on-time share comes back; a prompt one
 * reports everything on time. */
Test(whatif_fit, recovers_the_reporting_lag)
{
    sim_scenario_t *sc = scenario("channels:\n"
                                  "  search: {rate: 0.050, value: 60, saturation: 2500, lag: 2}\n"
                                  "  social: {rate: 0.045, value: 50, saturation: 1500}\n"
                                  "  video:  {rate: 0.025, value: 90, saturation: 3500}\n",
                                  240, "6000");
    sim_truth_t *tr = sim_truth_new(sc, 5);
    char *log;
    size_t len;
    sim_result_t res;
    play(sc, tr, &log, &len, &res);
    bd_fit_t *fit = fit_of(sc->cfg, log, len);
    double pmf[SIM_LAG_HORIZON_MAX + 1];
    sim_lag_pmf(&sc->ch[0].lag, pmf); /* geometric of mean 2: on time 1/3 */
    const bd_fit_channel_t *s = channel(fit, "search"), *o = channel(fit, "social");
    cr_assert(s->lag_h >= 3, "lag_h %d", s->lag_h);
    cr_assert(fabs(s->lag_pmf[0] - pmf[0]) < 0.1, "on time %.3f, truth %.3f", s->lag_pmf[0], pmf[0]);
    cr_assert(o->lag_h == 0 && o->lag_pmf[0] == 1.0, "social: lag_h %d", o->lag_h);
    /* the batch fit reads the last intervals as incomplete, not weak */
    double tv, fv;
    in_sample(sc, tr, &res, fit, (size_t)(s - fit->pf[0].ch), &tv, &fv);
    cr_assert(fabs(fv / tv - 1) < 0.05, "search in-sample %.0f, truth %.0f", fv, tv);
    bd_fit_free(fit);
    free(log);
    sim_result_free(&res);
    sim_truth_free(tr);
    sim_scenario_free(sc);
}

/* A capped channel: under the config the log was recorded under, the
 * replay learns the cap and the environment holds it; told another budget,
 * the replay does not match the log and no cap is taken. */
Test(whatif_fit, caps_only_from_a_matching_replay)
{
    const char *body = "channels:\n"
                       "  search: {rate: 0.050, value: 60, saturation: 2500}\n"
                       "  social: {rate: 0.045, value: 50, saturation: 1500}\n"
                       "  video:  {rate: 0.030, value: 90, saturation: 3500}\n"
                       "events:\n"
                       "  - {cycle: 60, cap: video, amount: 800, cycles: 120}\n";
    sim_scenario_t *sc = scenario(body, 240, "6000");
    sim_truth_t *tr = sim_truth_new(sc, 5);
    char *log;
    size_t len;
    sim_result_t res;
    play(sc, tr, &log, &len, &res);
    bd_fit_t *fit = fit_of(sc->cfg, log, len);
    cr_assert(fit->pf[0].caps_used, "match %.3f over %.3f", fit->pf[0].replay_match, fit->pf[0].replay_over);
    const bd_fit_channel_t *v = channel(fit, "video");
    cr_assert_not_null(v->cap, "no cap learned");
    int in = 0, out = 0;
    for (int64_t t = 0; t <= fit->c1 - fit->c0; t++) {
        bool capped = v->cap[t] > 0;
        if (t >= 70 && t < 180) in += capped;
        if (t < 55 || t >= 230) out += capped;
        if (capped) cr_assert(fabs(v->cap[t] / 800 - 1) < 0.15, "cycle %lld: cap %.0f", (long long)t, v->cap[t]);
    }
    cr_assert(in > 80, "capped in %d of the 110 cycles well inside the cap", in);
    cr_assert_eq(out, 0, "capped outside the cap");
    bd_env_t *env = bd_env_new(fit, sc->cfg, 1, 0);
    const bd_env_channel_t *ec = &env->pf[0].ch[(size_t)(v - fit->pf[0].ch)];
    cr_assert(bd_env_cap(env, ec, fit->c0 + 100) < 1000);
    cr_assert(isinf(bd_env_cap(env, ec, fit->c0 + 10)));
    bd_env_free(env);
    bd_fit_free(fit);
    /* the same log told it ran under a budget of 9000 */
    sim_scenario_t *other = scenario(body, 240, "9000");
    fit = fit_of(other->cfg, log, len);
    cr_assert(!fit->pf[0].caps_used, "match %.3f over %.3f", fit->pf[0].replay_match, fit->pf[0].replay_over);
    for (size_t i = 0; i < fit->pf[0].n; i++) cr_assert_null(fit->pf[0].ch[i].cap);
    bd_fit_free(fit);
    sim_scenario_free(other);
    free(log);
    sim_result_free(&res);
    sim_truth_free(tr);
    sim_scenario_free(sc);
}

/* A log without an event the config accepts is refused. */
Test(whatif_fit, empty_log_is_refused)
{
    bd_config_t *cfg = NULL;
    char err[256];
    const char *yaml = "v: 1\nportfolios:\n  shop: {budget: 100}\n";
    cr_assert_eq(bd_config_load_string(yaml, strlen(yaml), "t.yaml", &cfg, err, sizeof err), BD_OK, "%s", err);
    bd_fitter_t *f = bd_fit_begin(cfg);
    const char *wm = "{\"portfolio\":\"shop\",\"watermark\":1767225600}";
    bd_fit_line(f, wm, strlen(wm));
    bd_fit_line(f, "not json", 8);
    const char *other = "{\"ts\":1767225700,\"portfolio\":\"unknown\",\"channel\":\"a\",\"spend\":1,"
                        "\"conversions\":1,\"revenue\":1}";
    bd_fit_line(f, other, strlen(other));
    bd_fit_t *fit = (bd_fit_t *)1;
    cr_assert_eq(bd_fit_end(f, &fit, err, sizeof err), BD_ERR_INVALID);
    cr_assert_null(fit);
    cr_assert(strstr(err, "no event"), "%s", err);
    bd_config_free(cfg);
}
