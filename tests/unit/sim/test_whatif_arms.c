/* test_whatif_arms.c: the what-if's closed loop with nested arms (v2,
 * docs/CONTRACT.md §10, §11.4; engine/sim/env.c, loop.c). The spending
 * units are the arms: a channel the config splits among arms spends
 * nothing itself (its amount is its arms'), so a cycle spends at most the
 * budget; an arm the config lists and the log never saw is drawn from its
 * prior and spends what the engine gives it; the oracle optimises over the
 * arms with each channel's amount in its own box (search's max binds
 * here). Regressions r22_07..r22_09 (issue 22). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/whatif.h"

#define CFG_HEAD                                                                                 \
    "v: 1\ncycle: 1h\nseed: 5\n"                                                                 \
    "defaults: {objective: revenue, samples: 32, delivery: {caps: off}}\n"                      \
    "portfolios:\n  shop:\n    budget: 1000\n    channels:\n"                                      \
    "      social: {saturation: 600}\n      search:\n        max: 500\n"
#define CFG_A CFG_HEAD "        arms: {brand: {saturation: 400}, generic: {saturation: 400}}\n"
#define CFG_B                                                                                    \
    CFG_HEAD "        arms: {brand: {saturation: 400}, generic: {saturation: 400}, display: {}}\n"

static char g_err[4096];
static bd_config_t *g_a, *g_b;
static bd_fit_t *g_fit;

/* 72 hourly cycles of the arms brand and generic of search, and social:
 * saturating responses (the arms the stronger), then A's fit. */
static void setup(void)
{
    cr_assert_eq(bd_config_load_string(CFG_A, strlen(CFG_A), "a.yaml", &g_a, g_err, sizeof g_err), BD_OK, "%s",
                 g_err);
    cr_assert_eq(bd_config_load_string(CFG_B, strlen(CFG_B), "b.yaml", &g_b, g_err, sizeof g_err), BD_OK, "%s",
                 g_err);
    static const char *const name[3] = {"search:brand", "search:generic", "social"};
    static const double rate[3] = {0.06, 0.05, 0.02}, sat[3] = {400, 400, 600}, base[3] = {250, 150, 400};
    bd_fitter_t *ft = bd_fit_begin(g_a);
    char line[512];
    for (int t = 0; t < 72; t++) {
        long long ts = 1767225600LL + t * 3600LL;
        for (int i = 0; i < 3; i++) {
            double x = base[i] * (1 + 0.5 * sin(0.7 * t + i));
            double conv = round(rate[i] * sat[i] * -expm1(-x / sat[i]));
            int n = snprintf(line, sizeof line,
                             "{\"event_id\":\"%d-%d\",\"ts\":%lld,\"portfolio\":\"shop\",\"channel\":\"%s\","
                             "\"spend\":%.2f,\"conversions\":%.0f,\"revenue\":%.2f}",
                             t, i, ts + 1, name[i], x, conv, 50 * conv);
            bd_fit_line(ft, line, (size_t)n);
        }
        int n = snprintf(line, sizeof line, "{\"portfolio\":\"*\",\"watermark\":%lld}", ts + 3600);
        bd_fit_line(ft, line, (size_t)n);
    }
    cr_assert_eq(bd_fit_end(ft, &g_fit, g_err, sizeof g_err), BD_OK, "%s", g_err);
}

static void teardown(void)
{
    bd_fit_free(g_fit);
    bd_config_free(g_a);
    bd_config_free(g_b);
}

TestSuite(whatif_arms, .init = setup, .fini = teardown, .timeout = 60);

/* The env channel of p called name, -1 when none. */
static long env_ch(const bd_env_portfolio_t *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->ch[i].name, name)) return (long)i;
    return -1;
}

/* r22_07: search's amount is spent once, by its arms: a cycle spends at
 * most the budget, search itself nothing, its arms at most its max. */
Test(whatif_arms, r22_07_a_channel_with_arms_is_spent_by_its_arms_only)
{
    bd_loop_result_t r;
    cr_assert_eq(bd_loop_run(g_fit, g_a, 3, 0, &r, g_err, sizeof g_err), BD_OK, "%s", g_err);
    bd_env_t *env = bd_env_new(g_fit, g_a, 3, 0);
    const bd_env_portfolio_t *ep = &env->pf[0];
    long s = env_ch(ep, "search"), b = env_ch(ep, "search:brand"), g = env_ch(ep, "search:generic");
    cr_assert(s >= 0 && b >= 0 && g >= 0 && ep->ch[s].split && ep->ch[b].head == s && ep->ch[g].head == s);
    const bd_loop_pf_t *p = &r.pf[0];
    cr_assert_eq(p->n, ep->n);
    double arms = 0;
    for (int64_t t = 0; t <= p->last - p->first; t++) {
        const float *row = p->x + (size_t)t * p->n;
        double sum = 0;
        for (size_t i = 0; i < p->n; i++) sum += row[i];
        cr_assert_leq(sum, 1000.01, "cycle %lld spends %.2f", (long long)t, sum);
        cr_assert_eq(row[s], 0, "search spends %.2f itself at cycle %lld", (double)row[s], (long long)t);
        cr_assert_leq(row[b] + row[g], 500.01);
        arms += row[b] + row[g];
    }
    cr_assert_gt(arms, 0);
    cr_assert_leq(p->ret, p->oracle * (1 + 1e-9));
    bd_env_free(env);
    bd_loop_result_free(&r);
}

/* r22_08: an arm the config lists and the log never saw is in the
 * environment (a prior draw) and spends what the engine gives it. */
Test(whatif_arms, r22_08_an_unseen_arm_spends)
{
    bd_env_t *env = bd_env_new(g_fit, g_b, 3, 0);
    long d = env_ch(&env->pf[0], "search:display");
    cr_assert_geq(d, 0, "no env channel for the unseen arm");
    cr_assert_eq(env->pf[0].ch[d].head, env_ch(&env->pf[0], "search"));
    bd_env_free(env);
    bd_loop_result_t r;
    cr_assert_eq(bd_loop_run(g_fit, g_b, 3, 0, &r, g_err, sizeof g_err), BD_OK, "%s", g_err);
    const bd_loop_pf_t *p = &r.pf[0];
    double spent = 0;
    for (int64_t t = 0; t <= p->last - p->first; t++) spent += p->x[(size_t)t * p->n + (size_t)d];
    cr_assert_gt(spent, 0);
    bd_loop_result_free(&r);
}

/* The best of f(s) over [lo, hi] for concave f (ternary search). */
static double best(double (*f)(void *, double), void *ctx, double lo, double hi, double *arg)
{
    for (int i = 0; i < 120; i++) {
        double m1 = lo + (hi - lo) / 3, m2 = hi - (hi - lo) / 3;
        if (f(ctx, m1) < f(ctx, m2)) lo = m1;
        else hi = m2;
    }
    if (arg) *arg = (lo + hi) / 2;
    return f(ctx, (lo + hi) / 2);
}

typedef struct {
    const bd_env_t *env;
    const bd_env_portfolio_t *p;
    int64_t t;
    long b, g, s;
    double amount;
} brute_t;

/* brand at a, generic at the rest of the search amount. */
static double split_value(void *ctx, double a)
{
    brute_t *c = ctx;
    return bd_env_value(c->env, c->p, &c->p->ch[c->b], c->t, a) +
           bd_env_value(c->env, c->p, &c->p->ch[c->g], c->t, c->amount - a);
}

/* search at s (split at its best), social at the rest of the budget. */
static double total_value(void *ctx, double s)
{
    brute_t *c = ctx;
    c->amount = s;
    return best(split_value, c, 0, s, NULL) + bd_env_value(c->env, c->p, &c->p->ch[c->s], c->t, 1000 - s);
}

/* r22_09: the oracle is the optimum over the arms with search's amount
 * within its box [0, 500] (its max binds: the arms are the stronger), not
 * over search, its arms and social as channels of one box. */
Test(whatif_arms, r22_09_the_oracle_nests_the_arms_in_their_channel)
{
    bd_loop_result_t r;
    cr_assert_eq(bd_loop_run(g_fit, g_a, 3, 1, &r, g_err, sizeof g_err), BD_OK, "%s", g_err);
    bd_env_t *env = bd_env_new(g_fit, g_a, 3, 1);
    const bd_env_portfolio_t *ep = &env->pf[0];
    brute_t c = {env, ep, 0, env_ch(ep, "search:brand"), env_ch(ep, "search:generic"), env_ch(ep, "social"), 0};
    double want = 0, at = 0, binds = 0;
    for (int64_t t = r.pf[0].first; t <= r.pf[0].last; t++) {
        c.t = t;
        want += best(total_value, &c, 0, 500, &at);
        binds += at > 499;
    }
    cr_assert_gt(binds, 36, "search's max binds in %.0f of 72 cycles", binds);
    cr_assert_float_eq(r.pf[0].oracle, want, 1e-6 * want, "oracle %.6f, brute force %.6f", r.pf[0].oracle, want);
    bd_env_free(env);
    bd_loop_result_free(&r);
}
