/* test_arms.c: nested arms (v2 `arms:` under a listed channel; events name
 * an arm "C:A") through the engine's own decision path: every record nests
 * each channel's arms in its entry; the arms split their channel's amount
 * exactly, within their bounds, pins exact, each arm within its ramp when
 * the ramps can hold the amount; the channel's model learns from its arms'
 * events; the record's total counts channels only. A property test plays
 * random portfolios with arms and checks all of it on every decision. */
#include <criterion/criterion.h>
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include "budgetd/checkpoint.h"
#include "budgetd/engine.h"
#include "budgetd/killswitch.h"
#include "budgetd/portfolio.h"
#include "fixtures.h"

#define T0 1704067200LL

typedef struct {
    long records, checked_arms, ramp_checked, pinned, nested;
    int violations;
    char first[600];
    cJSON *last;
    double max_step;
} cap_t;

static void violation(cap_t *c, const char *fmt, const char *json, size_t len)
{
    if (c->violations++ == 0) snprintf(c->first, sizeof c->first, "%s: %.500s", fmt, len ? json : "");
}

/* The rules for the arms of every channel, on the decision and on the
 * portfolio's state it leaves (the allocation in force). */
static bd_err_t sink(void *ctx, bd_portfolio_t *p, const bd_decision_t *d, const char *json, size_t len)
{
    cap_t *c = ctx;
    c->records++;
    cJSON *j = cJSON_ParseWithLength(json, len);
    if (!j) {
        violation(c, "not JSON", json, len);
        return BD_OK;
    }
    double total = 0;
    for (size_t i = 0; i < p->n; i++)
        if (!p->ch[i].owner) total += d->ch[i].spend;
    if (fabs(total - d->total) > 0.005) violation(c, "total is not the channels' sum", json, len);
    /* nesting: one entry per channel, arms inside */
    size_t top = 0;
    for (size_t i = 0; i < p->n; i++) top += !p->ch[i].owner;
    const cJSON *chs = cJSON_GetObjectItem(j, "channels");
    if ((size_t)cJSON_GetArraySize(chs) != top) violation(c, "channels are not the top level", json, len);
    const cJSON *e;
    cJSON_ArrayForEach(e, chs)
    {
        const cJSON *arms = cJSON_GetObjectItem(e, "arms");
        if (!arms) continue;
        c->nested++;
        double s = 0;
        const cJSON *a;
        cJSON_ArrayForEach(a, arms) s += cJSON_GetObjectItem(a, "spend")->valuedouble;
        if (fabs(s - cJSON_GetObjectItem(e, "spend")->valuedouble) > 0.005 * (cJSON_GetArraySize(arms) + 1))
            violation(c, "record: arms do not sum to their channel", json, len);
    }
    for (size_t q = 0; q < p->n; q++) {
        if (p->ch[q].owner || !p->ch[q].cfg->n_arms) continue;
        double sum = 0, slo = 0, shi = 0, amount = rint(p->ch[q].x * 100);
        bool ramp_ok = true;
        double lo[16], hi[16], xs[16];
        size_t k = 0;
        for (size_t i = 0; i < p->n && k < 16; i++) {
            if (p->ch[i].owner != q + 1) continue;
            const bd_channel_cfg_t *a = p->ch[i].cfg;
            double x = p->ch[i].x, prev = d->ch[i].prev;
            sum += rint(x * 100);
            if (x < a->min - 1e-6 || x > a->max + 1e-6) violation(c, "arm outside [min, max]", json, len);
            double pin = bd_channel_pin(&p->ch[i]); /* config or run-time */
            if (isfinite(pin) && fabs(x - pin) > 0.005) violation(c, "pinned arm off its pin", json, len);
            c->pinned += a->has_pin;
            double step = fmax(c->max_step * prev, 0.01 * p->ch[q].x);
            lo[k] = fmax(ceil((prev - step) * 100 - 1e-6), ceil(a->min * 100 - 1e-6));
            hi[k] = isinf(a->max) ? INFINITY : fmin(floor((prev + step) * 100 + 1e-6), floor(a->max * 100 + 1e-6));
            if (!isfinite(a->max)) hi[k] = floor((prev + step) * 100 + 1e-6);
            if (a->has_pin) lo[k] = hi[k] = rint(a->pin * 100);
            if (lo[k] > hi[k]) ramp_ok = false;
            xs[k] = rint(x * 100);
            slo += lo[k];
            shi += hi[k];
            k++;
        }
        if (sum != amount) violation(c, "arms do not split their channel's amount", json, len);
        c->checked_arms++;
        if (d->path == BD_PATH_APPLIED && ramp_ok && slo <= amount && amount <= shi &&
            cJSON_GetObjectItem(j, "cycle")->valuedouble > 0) {
            for (size_t t = 0; t < k; t++)
                if (xs[t] < lo[t] || xs[t] > hi[t]) violation(c, "arm outside its ramp", json, len);
            c->ramp_checked++;
        }
    }
    cJSON_Delete(c->last);
    c->last = j;
    return BD_OK;
}

typedef struct {
    bd_config_t *cfg;
    bd_engine_t *e;
    cap_t cap;
} env_t;

static void env_new(env_t *env, const char *yaml)
{
    char err[8192];
    memset(env, 0, sizeof *env);
    env->cfg = bd_test_config(yaml, err, sizeof err);
    cr_assert_not_null(env->cfg, "%s\n%s", err, yaml);
    env->cap.max_step = env->cfg->defaults.max_step;
    bd_engine_opts_t eo = {.threads = 1, .sink = sink, .sink_ctx = &env->cap};
    env->e = bd_engine_new(env->cfg, &eo);
}

static void env_free(env_t *env)
{
    cr_assert_eq(env->cap.violations, 0, "%d violations, first: %s", env->cap.violations, env->cap.first);
    cJSON_Delete(env->cap.last);
    bd_engine_free(env->e);
    bd_config_free(env->cfg);
}

/* One cycle t of portfolio pf: every leaf (a channel without arms, or an
 * arm) reports spend = its allocation in force and Poisson conversions at
 * its own rate (rate[i] per unit spend, linear), then a watermark. */
static void play_cycle(env_t *env, const char *pf, int t, const double *rate, gsl_rng *r)
{
    bd_portfolio_t *p = bd_ptable_find(bd_engine_table(env->e), pf, strlen(pf));
    cr_assert_not_null(p);
    for (size_t i = 0; i < p->n; i++) {
        if (p->ch[i].cfg->n_arms) continue; /* its arms report */
        double x = p->ch[i].x, conv = (double)gsl_ran_poisson(r, rate[i % 8] * x);
        cr_assert_eq(bd_test_ingestf(env->e,
                                     "{\"event_id\":\"%d-%zu\",\"ts\":%lld,\"portfolio\":\"%s\","
                                     "\"channel\":\"%s\",\"spend\":%.2f,\"conversions\":%.0f,"
                                     "\"revenue\":%.2f}",
                                     t, i, T0 + t * 3600LL + 5, pf, p->ch[i].name, x, conv, conv * 50),
                     BD_REJ_NONE);
    }
    cr_assert_eq(bd_test_ingestf(env->e, "{\"portfolio\":\"%s\",\"watermark\":%lld}", pf,
                                 T0 + (t + 1) * 3600LL),
                 BD_REJ_NONE);
}

static const char *CFG = "v: 1\n"
                         "cycle: 1h\n"
                         "defaults: {budget: 1000, max_step: 0.25}\n"
                         "portfolios:\n"
                         "  shop:\n"
                         "    budget: 1000\n"
                         "    channels:\n"
                         "      search:\n"
                         "        min: 100\n"
                         "        max: 900\n"
                         "        arms:\n"
                         "          brand: {max: 800, saturation: 300}\n"
                         "          generic: {min: 50, max: 600, pin: 100}\n"
                         "      social: {max: 900}\n";

/* CFG's engine, shop's first sight, then cycles [0, n) played with the
 * leaves' rates of the tests below (brand twice generic's). */
static bd_portfolio_t *play_shop(env_t *env, gsl_rng *r, int n)
{
    static const double rate[8] = {0.08, 0.04, 0.02, 0.03};
    env_new(env, CFG);
    cr_assert_eq(bd_test_ingestf(env->e, "{\"portfolio\":\"shop\",\"watermark\":%lld}", T0), BD_REJ_NONE);
    for (int t = 0; t < n; t++) play_cycle(env, "shop", t, rate, r);
    return bd_ptable_find(bd_engine_table(env->e), "shop", 4);
}

Test(arms, records_nest_and_arms_split_their_channel)
{
    env_t env;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 11);
    bd_portfolio_t *p = play_shop(&env, r, 60);
    cr_assert_eq(p->n, 4, "search, its arms, social");
    cr_assert_eq(p->ch[0].owner, 0);
    cr_assert_str_eq(p->ch[1].name, "search:brand");
    cr_assert_eq(p->ch[1].owner, 1);
    cr_assert_eq(p->ch[2].owner, 1);
    cr_assert_str_eq(p->ch[3].name, "social");
    /* the channel's model learned from its arms' events */
    const bd_model_ops_t *ops = bd_model_get(p->pol->model);
    cr_assert_gt(ops->evidence(&p->ch[0].model), 10);
    /* the last record: the arms nested, the pin exact */
    const cJSON *chs = cJSON_GetObjectItem(env.cap.last, "channels");
    const cJSON *search = cJSON_GetArrayItem(chs, 0), *arms = cJSON_GetObjectItem(search, "arms");
    cr_assert_str_eq(cJSON_GetObjectItem(search, "channel")->valuestring, "search");
    cr_assert_eq(cJSON_GetArraySize(arms), 2);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(arms, 0), "arm")->valuestring, "brand");
    const cJSON *generic = cJSON_GetArrayItem(arms, 1);
    cr_assert_str_eq(cJSON_GetObjectItem(generic, "arm")->valuestring, "generic");
    cr_assert_float_eq(cJSON_GetObjectItem(generic, "spend")->valuedouble, 100, 1e-9);
    cr_assert_str_eq(cJSON_GetObjectItem(generic, "bound")->valuestring, "pin");
    cr_assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(chs, 1), "arms"));
    /* brand earns twice generic's rate: it takes what the channel gets
     * beyond generic's pin */
    cr_assert_gt(p->ch[1].x, 200);
    cr_assert(env.cap.checked_arms >= 60 && env.cap.ramp_checked > 20 && env.cap.nested >= 60,
              "%ld %ld %ld", env.cap.checked_arms, env.cap.ramp_checked, env.cap.nested);
    gsl_rng_free(r);
    env_free(&env);
}

/* A random feasible portfolio with arms, as YAML. */
static void random_config(gsl_rng *r, char *y, size_t cap, int id)
{
    size_t len = 0;
    int nch = 1 + (int)gsl_rng_uniform_int(r, 3);
    double budget = 1000 + floor(gsl_rng_uniform(r) * 9000);
    len += (size_t)snprintf(y + len, cap - len,
                            "v: 1\ncycle: 1h\ndefaults: {budget: %.0f, max_step: %.2f, explore_share: %.2f, "
                            "min_change: %.2f, risk: {max_prob: %s, roas_floor: 0.5%s}}\n"
                            "portfolios:\n  p%d:\n",
                            budget, 0.1 + 0.5 * gsl_rng_uniform(r), gsl_rng_uniform(r) < 0.5 ? 0 : 0.05,
                            gsl_rng_uniform(r) < 0.5 ? 0 : 0.01, gsl_rng_uniform(r) < 0.5 ? "1" : "0.2",
                            gsl_rng_uniform(r) < 0.2 ? ", cvar: {alpha: 0.1, roas_floor: 0.3}" : "", id);
    if (gsl_rng_uniform(r) < 0.3) /* a target goal on a range whose max is the budget */
        len += (size_t)snprintf(y + len, cap - len, "    budget: {min: %.0f, max: %.0f}\n    goal: {target_roas: %.2f}\n",
                                floor(budget * 0.5 * gsl_rng_uniform(r)), budget, 0.5 + 2 * gsl_rng_uniform(r));
    else
        len += (size_t)snprintf(y + len, cap - len, "    budget: %.0f\n", budget);
    len += (size_t)snprintf(y + len, cap - len, "    channels:\n");
    for (int c = 0; c < nch; c++) {
        int na = c == 0 ? 1 + (int)gsl_rng_uniform_int(r, 3) : (int)gsl_rng_uniform_int(r, 3);
        double cmin = floor(budget / nch * 0.3 * gsl_rng_uniform(r));
        len += (size_t)snprintf(y + len, cap - len, "      c%d:\n        min: %.0f\n", c, cmin);
        if (!na) continue;
        len += (size_t)snprintf(y + len, cap - len, "        arms:\n");
        double left = cmin;
        bool pinned = false;
        for (int a = 0; a < na; a++) {
            double amin = floor(left * gsl_rng_uniform(r) * 0.5);
            left -= amin;
            len += (size_t)snprintf(y + len, cap - len, "          a%d: {min: %.0f, saturation: %.0f", a, amin,
                                    100 + floor(gsl_rng_uniform(r) * 3000));
            if (!pinned && a > 0 && gsl_rng_uniform(r) < 0.3 && left >= 1) {
                /* a pin within what the channel's min leaves */
                len += (size_t)snprintf(y + len, cap - len, ", pin: %.0f", amin + floor(left * 0.5));
                left -= floor(left * 0.5);
                pinned = true;
            }
            len += (size_t)snprintf(y + len, cap - len, "}\n");
        }
    }
}

Test(arms, property_arms_keep_their_rules, .timeout = 240)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 909);
    long checked = 0, ramp = 0, pinned = 0, configs = 0;
    char y[8192], name[32];
    for (int k = 0; k < 150; k++) {
        random_config(r, y, sizeof y, k);
        char err[8192];
        bd_config_t *probe = bd_test_config(y, err, sizeof err);
        if (!probe) continue; /* a random pin the rule refuses: check's business */
        bd_config_free(probe);
        configs++;
        env_t env;
        env_new(&env, y);
        snprintf(name, sizeof name, "p%d", k);
        double rate[8];
        for (int i = 0; i < 8; i++) rate[i] = 0.005 + 0.05 * gsl_rng_uniform(r);
        cr_assert_eq(bd_test_ingestf(env.e, "{\"portfolio\":\"%s\",\"watermark\":%lld}", name, T0), BD_REJ_NONE);
        for (int t = 0; t < 40; t++) play_cycle(&env, name, t, rate, r);
        checked += env.cap.checked_arms;
        ramp += env.cap.ramp_checked;
        pinned += env.cap.pinned;
        env_free(&env);
    }
    cr_assert(configs > 100 && checked > 4000 && ramp > 1000 && pinned > 200,
              "configs %ld, arm splits %ld, ramp-checked %ld, pinned %ld", configs, checked, ramp, pinned);
    cr_log_info("%ld portfolios: %ld arm splits checked, %ld against their ramps, %ld pinned arms", configs,
                checked, ramp, pinned);
    gsl_rng_free(r);
}

/* A checkpoint restores the arms by name, each under its channel again,
 * with its allocation and model. */
Test(arms, checkpoint_round_trip)
{
    env_t env;
    env_new(&env, CFG);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 5);
    double rate[8] = {0.08, 0.04, 0.02, 0.03};
    cr_assert_eq(bd_test_ingestf(env.e, "{\"portfolio\":\"shop\",\"watermark\":%lld}", T0), BD_REJ_NONE);
    for (int t = 0; t < 10; t++) play_cycle(&env, "shop", t, rate, r);
    bd_portfolio_t *p = bd_ptable_find(bd_engine_table(env.e), "shop", 4);
    unsigned char *blob = NULL;
    size_t cap = 0, len = bd_checkpoint_encode(p, &blob, &cap);
    bd_ptable_t *t2 = bd_ptable_new();
    const bd_portfolio_cfg_t *pc = bd_config_portfolio(env.cfg, "shop");
    bd_portfolio_t *q = bd_ptable_add(t2, "shop", pc, &pc->p, p->nslots);
    char err[256] = "";
    cr_assert_eq(bd_checkpoint_decode(q, blob, len, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(q->n, p->n);
    for (size_t i = 0; i < p->n; i++) {
        int k = bd_portfolio_channel(q, p->ch[i].name);
        cr_assert_geq(k, 0);
        cr_assert_eq(q->ch[k].x, p->ch[i].x, "%s", p->ch[i].name);
        cr_assert(!memcmp(&q->ch[k].model, &p->ch[i].model, sizeof p->ch[i].model));
        if (p->ch[i].owner)
            cr_assert_str_eq(q->ch[q->ch[k].owner - 1].name, p->ch[p->ch[i].owner - 1].name);
        else
            cr_assert_eq(q->ch[k].owner, 0);
    }
    free(blob);
    bd_ptable_free(t2);
    gsl_rng_free(r);
    env_free(&env);
}

/* The kill fallback splits each channel's initial amount among its arms
 * (the sink checks every split). */
Test(arms, kill_fallback_splits_the_arms)
{
    env_t env;
    char cfgtext[2048];
    snprintf(cfgtext, sizeof cfgtext, "v: 1\ncycle: 1h\ndefaults: {budget: 1000, max_step: 0.25, kill: {action: fallback}}\n%s",
             strstr(CFG, "portfolios:"));
    env_new(&env, cfgtext);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 9);
    double rate[8] = {0.08, 0.04, 0.02, 0.03};
    cr_assert_eq(bd_test_ingestf(env.e, "{\"portfolio\":\"shop\",\"watermark\":%lld}", T0), BD_REJ_NONE);
    for (int t = 0; t < 8; t++) play_cycle(&env, "shop", t, rate, r);
    bd_portfolio_t *p = bd_ptable_find(bd_engine_table(env.e), "shop", 4);
    bd_killswitch_operator_kill(p, "test");
    for (int t = 8; t < 10; t++) play_cycle(&env, "shop", t, rate, r);
    cr_assert_str_eq(cJSON_GetObjectItem(env.cap.last, "path")->valuestring, "killed");
    cr_assert_float_eq(p->ch[0].x, 500, 1e-9, "the initial split of the channels");
    cr_assert_float_eq(p->ch[2].x, 100, 1e-9, "the pinned arm");
    cr_assert_float_eq(p->ch[1].x, 400, 1e-9);
    gsl_rng_free(r);
    env_free(&env);
}

/* The run-time pins `budgetd pin` sets (CONTRACT §11.5), as the daemon
 * applies them (bd_channel_pin): a pinned arm gets exactly its pin; a
 * pinned channel gets its pin and its arms split it, their pins kept. */
Test(arms, run_time_pins_of_an_arm_and_of_its_channel)
{
    env_t env;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 5);
    static const double rate[8] = {0.08, 0.04, 0.02, 0.03};
    bd_portfolio_t *p = play_shop(&env, r, 10);
    p->ch[0].pin = 500; /* search, as `budgetd pin shop search 500` */
    p->ch[2].pin = 150; /* search:generic over its config pin 100 */
    for (int t = 10; t < 14; t++) { /* decided before the leaves report what is in force */
        cr_assert_eq(bd_engine_flush(env.e), BD_OK);
        play_cycle(&env, "shop", t, rate, r);
    }
    const cJSON *search = cJSON_GetArrayItem(cJSON_GetObjectItem(env.cap.last, "channels"), 0);
    cr_assert_float_eq(cJSON_GetObjectItem(search, "spend")->valuedouble, 500, 1e-9);
    const cJSON *arms = cJSON_GetObjectItem(search, "arms");
    const cJSON *brand = cJSON_GetArrayItem(arms, 0), *generic = cJSON_GetArrayItem(arms, 1);
    cr_assert_float_eq(cJSON_GetObjectItem(generic, "spend")->valuedouble, 150, 1e-9);
    cr_assert_str_eq(cJSON_GetObjectItem(generic, "bound")->valuestring, "pin");
    cr_assert_float_eq(cJSON_GetObjectItem(brand, "spend")->valuedouble, 350, 1e-9);
    gsl_rng_free(r);
    env_free(&env);
}
