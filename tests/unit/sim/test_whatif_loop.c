/* test_whatif_loop.c: a config played closed loop against a fitted
 * environment (engine/sim/loop.c, env.c): deterministic whatever the
 * thread count, within the config's guardrails, no negative return, the
 * same world for every config of a draw, and no kill that only the log's
 * spend would cause (the tighter-ramp config on a log recorded
 * under another: its log-view replay trips the overspend kill, its closed
 * loop does not). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/engine.h"
#include "budgetd/whatif.h"
#include "sim/sim.h"

#define CFG_A                                                                                    \
    "v: 1\ncycle: 1h\nseed: 5\n"                                                                 \
    "defaults: {objective: revenue, samples: 32, max_step: 0.25, explore_share: 0.05,\n"         \
    "           risk: {roas_floor: 1.0, max_prob: 0.2},\n"                                       \
    "           kill: {roas_below: 0.3, window: 6, overspend_ratio: 1.5, stale_after: 3h}}\n"   \
    "portfolios:\n  shop:\n    budget: 6000\n    channels:\n"                                       \
    "      search: {min: 500, max: 5000, saturation: 3000, initial: 2500}\n"                     \
    "      social: {min: 200, max: 4000, saturation: 2000}\n"                                     \
    "      video:  {max: 4000, saturation: 2000}\n"

/* The config B: a much tighter ramp, the overspend kill at 1.2. */
#define CFG_B_SETS {{"defaults.max_step", "0.05"}, {"defaults.kill.overspend_ratio", "1.2"}}

static char g_err[4096];
static char *g_log;
static size_t g_len;
static bd_config_t *g_a, *g_b;
static bd_fit_t *g_fit;

/* A's log of a seasonal world, its fit, and config B. */
static void setup(void)
{
    char text[8192];
    snprintf(text, sizeof text,
             "scenario: t\ncycles: 120\nseed: 3\nstart: 1767225600\nportfolio: shop\n"
             "noise: {overdispersion: 0.1, value_shape: 2}\n"
             "season: {daily: {amplitude: 0.5, peak_hour: 20}}\n"
             "channels:\n"
             "  search: {rate: 0.050, value: 60, saturation: 2500}\n"
             "  social: {rate: 0.045, value: 50, saturation: 1500}\n"
             "  video:  {rate: 0.025, value: 90, saturation: 3500}\n"
             "config: |\n");
    for (const char *l = CFG_A; *l;) {
        size_t n = strcspn(l, "\n");
        snprintf(text + strlen(text), sizeof text - strlen(text), "  %.*s\n", (int)n, l);
        l += n + (l[n] == '\n');
    }
    sim_scenario_t *sc = NULL;
    cr_assert_eq(sim_scenario_load_string(text, strlen(text), "t", NULL, &sc, g_err, sizeof g_err), BD_OK, "%s", g_err);
    sim_truth_t *tr = sim_truth_new(sc, 11);
    FILE *f = open_memstream(&g_log, &g_len);
    sim_log_t lg = {.events = f};
    sim_result_t res;
    cr_assert_eq(sim_run(sc, tr, SIM_POL_ENGINE, &lg, &res, g_err, sizeof g_err), BD_OK, "%s", g_err);
    fclose(f);
    sim_result_free(&res);
    sim_truth_free(tr);
    sim_scenario_free(sc);
    cr_assert_eq(bd_config_load_string(CFG_A, strlen(CFG_A), "a.yaml", &g_a, g_err, sizeof g_err), BD_OK, "%s", g_err);
    bd_config_set_t sets[] = CFG_B_SETS;
    cr_assert_eq(bd_config_load_string_set(CFG_A, strlen(CFG_A), "b.yaml", sets, 2, &g_b, g_err, sizeof g_err),
                 BD_OK, "%s", g_err);
    bd_fitter_t *ft = bd_fit_begin(g_a);
    for (const char *l = g_log; l < g_log + g_len;) {
        const char *e = memchr(l, '\n', (size_t)(g_log + g_len - l));
        size_t n = e ? (size_t)(e - l) : (size_t)(g_log + g_len - l);
        if (n) bd_fit_line(ft, l, n);
        l += n + 1;
    }
    cr_assert_eq(bd_fit_end(ft, &g_fit, g_err, sizeof g_err), BD_OK, "%s", g_err);
}

static void teardown(void)
{
    bd_fit_free(g_fit);
    bd_config_free(g_a);
    bd_config_free(g_b);
    free(g_log);
}

TestSuite(whatif_loop, .init = setup, .fini = teardown, .timeout = 60);

/* Two results are the same run: every sum and every cycle's spend. */
static void assert_same(const bd_loop_result_t *x, const bd_loop_result_t *y)
{
    cr_assert_eq(x->n, y->n);
    for (size_t k = 0; k < x->n; k++) {
        const bd_loop_pf_t *a = &x->pf[k], *b = &y->pf[k];
        cr_assert(a->ret == b->ret && a->oracle == b->oracle && a->spend == b->spend &&
                  a->moved == b->moved && a->trips == b->trips && a->decisions == b->decisions);
        cr_assert_eq(memcmp(a->bound, b->bound, sizeof a->bound), 0);
        size_t T = (size_t)(a->last - a->first + 1);
        cr_assert_eq(memcmp(a->x, b->x, T * a->n * sizeof *a->x), 0);
    }
}

Test(whatif_loop, deterministic_whatever_the_threads)
{
    const bd_config_t *cfgs[2] = {g_a, g_b};
    enum { D = 3 };
    bd_loop_result_t one[2 * D], three[2 * D];
    cr_assert_eq(bd_loop_run_all(g_fit, cfgs, 2, D, 7, 1, NULL, NULL, one, g_err, sizeof g_err), BD_OK, "%s", g_err);
    cr_assert_eq(bd_loop_run_all(g_fit, cfgs, 2, D, 7, 3, NULL, NULL, three, g_err, sizeof g_err), BD_OK, "%s", g_err);
    for (int j = 0; j < 2 * D; j++) assert_same(&one[j], &three[j]);
    /* a single run is the same as its slot of the batch */
    bd_loop_result_t single;
    cr_assert_eq(bd_loop_run(g_fit, g_b, 7, 1, &single, g_err, sizeof g_err), BD_OK, "%s", g_err);
    assert_same(&single, &one[D + 1]);
    bd_loop_result_free(&single);
    /* draws differ */
    cr_assert(one[0].pf[0].ret != one[1].pf[0].ret);
    for (int j = 0; j < 2 * D; j++) {
        bd_loop_result_free(&one[j]);
        bd_loop_result_free(&three[j]);
    }
}

/* Every cycle's spend is within the config's bounds while active, the
 * total within the budget, the return positive and below the oracle's. */
Test(whatif_loop, guardrails_hold_and_returns_are_sane)
{
    const bd_config_t *cfgs[2] = {g_a, g_b};
    for (int c = 0; c < 2; c++)
        for (int d = 0; d < 3; d++) {
            bd_loop_result_t r;
            cr_assert_eq(bd_loop_run(g_fit, cfgs[c], 3, d, &r, g_err, sizeof g_err), BD_OK, "%s", g_err);
            const bd_loop_pf_t *p = &r.pf[0];
            bd_env_t *env = bd_env_new(g_fit, cfgs[c], 3, d);
            const bd_portfolio_cfg_t *pc = bd_config_portfolio(cfgs[c], "shop");
            cr_assert_eq(p->last - p->first + 1, 120);
            cr_assert_eq(p->decisions, 120);
            for (int64_t t = 0; t <= p->last - p->first; t++) {
                double sum = 0;
                for (size_t i = 0; i < p->n; i++) {
                    double x = p->x[(size_t)t * p->n + i];
                    const bd_channel_cfg_t *cc = bd_config_channel(pc, &pc->p, env->pf[0].ch[i].name);
                    cr_assert(x >= cc->min - 0.005 && x <= cc->max + 0.005, "cycle %lld %s: %.2f outside [%g, %g]",
                              (long long)t, env->pf[0].ch[i].name, x, cc->min, cc->max);
                    sum += x;
                }
                cr_assert(sum <= pc->p.budget + 0.01, "cycle %lld: %.2f spent", (long long)t, sum);
            }
            cr_assert(p->ret > 0 && p->ret <= p->oracle * (1 + 1e-9), "return %.0f, oracle %.0f", p->ret, p->oracle);
            cr_assert(p->spend > 0 && p->spend <= 120 * pc->p.budget + 1);
            bd_env_free(env);
            bd_loop_result_free(&r);
        }
}

/* Configs of one draw meet the same world: the same curves. */
Test(whatif_loop, one_world_per_draw)
{
    bd_env_t *a = bd_env_new(g_fit, g_a, 3, 1), *b = bd_env_new(g_fit, g_b, 3, 1), *c = bd_env_new(g_fit, g_a, 3, 2);
    for (size_t i = 0; i < a->pf[0].n; i++) {
        cr_assert_eq(memcmp(&a->pf[0].ch[i].conv, &b->pf[0].ch[i].conv, sizeof(bd_curve_t)), 0);
        cr_assert(a->pf[0].ch[i].conv.a != c->pf[0].ch[i].conv.a);
    }
    bd_env_free(a);
    bd_env_free(b);
    bd_env_free(c);
}

static bd_err_t count_kills(void *ctx, bd_portfolio_t *p, const bd_decision_t *d, const char *json, size_t len)
{
    (void)p;
    (void)json;
    (void)len;
    if (d->tripped && d->kill_reason && !strncmp(d->kill_reason, "overspend", 9)) (*(int *)ctx)++;
    return BD_OK;
}

/* The case: B replayed on A's log trips the overspend kill (the
 * logged spend followed A's allocations); B in closed loop never does. */
Test(whatif_loop, no_kill_from_the_logs_spend)
{
    int kills = 0;
    bd_engine_opts_t o = {.threads = 1, .sink = count_kills, .sink_ctx = &kills};
    bd_engine_t *e = bd_engine_new(g_b, &o);
    char detail[256];
    bd_err_t err;
    for (const char *l = g_log; l < g_log + g_len;) {
        const char *nl = memchr(l, '\n', (size_t)(g_log + g_len - l));
        size_t n = nl ? (size_t)(nl - l) : (size_t)(g_log + g_len - l);
        if (n) bd_engine_ingest(e, l, n, detail, sizeof detail, &err);
        l += n + 1;
    }
    bd_engine_flush(e);
    bd_engine_free(e);
    cr_assert_eq(kills, 1, "the log view of B should trip the overspend kill (the artefact)");
    const bd_config_t *cfgs[1] = {g_b};
    enum { D = 4 };
    bd_loop_result_t r[D];
    cr_assert_eq(bd_loop_run_all(g_fit, cfgs, 1, D, 5, 2, NULL, NULL, r, g_err, sizeof g_err), BD_OK, "%s", g_err);
    for (int d = 0; d < D; d++) {
        cr_assert_eq(r[d].pf[0].trips, 0, "draw %d: %s", d, r[d].pf[0].kill_reason);
        cr_assert(r[d].pf[0].ret > 0);
        bd_loop_result_free(&r[d]);
    }
}

/* A config that does not manage the log's portfolio runs nothing there. */
Test(whatif_loop, unmanaged_portfolio)
{
    const char *yaml = "v: 1\ncycle: 1h\nportfolios:\n  other: {budget: 100}\n";
    bd_config_t *cfg;
    cr_assert_eq(bd_config_load_string(yaml, strlen(yaml), "o.yaml", &cfg, g_err, sizeof g_err), BD_OK);
    bd_loop_result_t r;
    cr_assert_eq(bd_loop_run(g_fit, cfg, 1, 0, &r, g_err, sizeof g_err), BD_OK, "%s", g_err);
    cr_assert(r.pf[0].last < r.pf[0].first);
    cr_assert(r.pf[0].ret == 0 && r.pf[0].decisions == 0);
    bd_loop_summary_t s;
    bd_loop_summarise(&r, 1, -1, &s);
    cr_assert(s.ret.median == 0 && s.regret.median == 0);
    bd_loop_result_free(&r);
    /* managed by defaults, but its engine refuses it (max_portfolios):
     * not managed either, and the run goes on */
    bd_config_free(cfg);
    yaml = "v: 1\ncycle: 1h\nmax_portfolios: 1\ndefaults: {budget: 100}\nportfolios:\n  other: {budget: 100}\n";
    cr_assert_eq(bd_config_load_string(yaml, strlen(yaml), "o.yaml", &cfg, g_err, sizeof g_err), BD_OK, "%s", g_err);
    cr_assert_eq(bd_loop_run(g_fit, cfg, 1, 0, &r, g_err, sizeof g_err), BD_OK, "%s", g_err);
    cr_assert(r.pf[0].last < r.pf[0].first && r.pf[0].decisions == 0);
    bd_loop_result_free(&r);
    /* another cycle length is refused */
    bd_config_free(cfg);
    yaml = "v: 1\ncycle: 2h\nportfolios:\n  shop: {budget: 100}\n";
    cr_assert_eq(bd_config_load_string(yaml, strlen(yaml), "o.yaml", &cfg, g_err, sizeof g_err), BD_OK);
    cr_assert_eq(bd_loop_run(g_fit, cfg, 1, 0, &r, g_err, sizeof g_err), BD_ERR_CONFIG);
    bd_config_free(cfg);
}
