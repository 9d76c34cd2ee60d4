/* test_guardrails_property.c: pins, fault holds and delivery caps in any
 * combination over many random portfolios (random guardrails, posteriors,
 * allocations in force, budgets). Every decision must pass the independent
 * verifier, and this file re-derives the rules of alloc.h with its own
 * loops: pins always honoured; min, max, total and the ramp (when the ramp
 * box can hold the total) always hold; a hold keeps its channel unless the
 * holds leave the total unplaceable; a delivery cap bounds its channel
 * unless the caps leave the total unplaceable. Infeasible pins are refused
 * exactly when the rule says so. */
#include <criterion/criterion.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "budgetd/alloc.h"
#include "budgetd/verify.h"

#include "testmodel.h"

#define MAXN 10

typedef struct {
    size_t n;
    bd_policy_t pol;
    bd_channel_cfg_t cfg[MAXN];
    const bd_channel_cfg_t *cfgp[MAXN];
    bd_model_state_t st[MAXN];
    bd_prior_t pr[MAXN];
    bool promoted[MAXN];
    double pin[MAXN], hold[MAXN], dcap[MAXN];
} case_t;

static double cents(double v) { return rint(v * 100) / 100; }

/* A random portfolio with feasible guardrails and random pins, holds and
 * caps (pins may be infeasible). */
static void random_case(gsl_rng *r, case_t *c)
{
    memset(c, 0, sizeof *c);
    size_t n = c->n = 1 + gsl_rng_uniform_int(r, MAXN);
    bd_policy_t *p = &c->pol;
    p->budget = cents(10 + gsl_rng_uniform(r) * 20000);
    p->samples = 4 + (int)gsl_rng_uniform_int(r, 5);
    p->max_step = 0.05 + gsl_rng_uniform(r);
    p->min_change = gsl_rng_uniform(r) < 0.5 ? 0 : 0.01;
    p->explore_share = gsl_rng_uniform(r) < 0.5 ? 0 : 0.05;
    p->risk_max_prob = gsl_rng_uniform(r) < 0.5 ? 1 : 0.2;
    p->risk_roas_floor = 0.2 + 2 * gsl_rng_uniform(r);
    p->lab.min_conversions = 50;
    p->lab.max_rel_width = 0.5;
    p->lab.cap_share = 0.02 + 0.3 * gsl_rng_uniform(r);
    double min_share = gsl_rng_uniform(r) < 0.5 ? 0 : gsl_rng_uniform(r);
    for (size_t i = 0; i < n; i++) {
        bd_channel_cfg_t *ch = &c->cfg[i];
        snprintf(ch->name, sizeof ch->name, "c%zu", i);
        ch->min = floor(p->budget * min_share * gsl_rng_uniform(r) / (double)n * 100) / 100;
        ch->max = gsl_rng_uniform(r) < 0.3 ? INFINITY
                                           : cents(ch->min + gsl_rng_uniform(r) * 1.5 * p->budget);
        ch->lab = gsl_rng_uniform(r) < 0.2;
        c->promoted[i] = gsl_rng_uniform(r) < 0.3;
        c->cfgp[i] = ch;
        tm_state_t s = {{BD_CURVE_EXP, 0.05 + 4 * gsl_rng_uniform(r), p->budget * (0.01 + gsl_rng_uniform(r)), 0},
                        gsl_rng_uniform(r) < 0.5 ? 0 : 3, 0};
        memcpy(c->st[i].bytes, &s, sizeof s);
        double hi = isfinite(ch->max) ? ch->max : p->budget;
        c->pin[i] = gsl_rng_uniform(r) < 0.2 ? cents(ch->min + gsl_rng_uniform(r) * (hi - ch->min) * 1.05) : NAN;
        c->hold[i] = gsl_rng_uniform(r) < 0.2 ? cents(gsl_rng_uniform(r) * hi) : NAN;
        c->dcap[i] = gsl_rng_uniform(r) < 0.3 ? cents(gsl_rng_uniform(r) * hi) : INFINITY;
    }
}

/* The rules' min and cap of channel i in cents (the test's own copy). */
static void box_c(const case_t *c, size_t i, const bool *prom, double *mn, double *cp)
{
    const bd_channel_cfg_t *ch = &c->cfg[i];
    *mn = fmax(ceil(ch->min * 100 - 1e-6), 0);
    double cap = ch->max;
    if (ch->lab && !prom[i] && !isfinite(c->pin[i])) {
        double lab = c->pol.lab.cap_share * c->pol.budget;
        if (!(lab >= ch->min)) lab = ch->min;
        if (lab < cap) cap = lab;
    }
    *cp = isinf(cap) ? cap : floor(cap * 100 + 1e-6);
}

/* Whether the pins are feasible by the rule, with the test's own loops. */
static bool pins_feasible(const case_t *c, const bool *prom, double *total_c)
{
    double pins = 0, mins = 0, caps = 0, sumcap = 0;
    bool ok = true;
    for (size_t i = 0; i < c->n; i++) {
        double mn, cp;
        box_c(c, i, prom, &mn, &cp);
        sumcap += cp;
        if (!isfinite(c->pin[i])) { mins += mn; caps += cp; continue; }
        double pc = rint(c->pin[i] * 100);
        if (pc < mn || pc > cp) ok = false;
        pins += pc;
    }
    *total_c = fmin(floor(c->pol.budget * 100 + 0.5), sumcap);
    return ok && pins + mins <= *total_c && pins + caps >= *total_c;
}

/* The box of the rules (ramp when it holds the total), pins fixed, into
 * lo/hi (cents); returns whether the ramp is in force. */
static bool rule_box(const case_t *c, const double *prev, const bool *prom, double total_c,
                     double *lo, double *hi)
{
    double slo = 0, shi = 0;
    for (size_t i = 0; i < c->n; i++) {
        double mn, cp;
        box_c(c, i, prom, &mn, &cp);
        if (isfinite(c->pin[i])) {
            lo[i] = hi[i] = rint(c->pin[i] * 100);
        } else if (prev) {
            double step = fmax(c->pol.max_step * prev[i], 0.01 * c->pol.budget);
            double rl = ceil((prev[i] - step) * 100 - 1e-6), rh = floor((prev[i] + step) * 100 + 1e-6);
            lo[i] = fmax(rl, mn);
            hi[i] = fmin(rh, cp);
            if (lo[i] > hi[i]) lo[i] = hi[i] = rl > cp ? cp : mn;
        } else {
            lo[i] = mn;
            hi[i] = cp;
        }
        slo += lo[i];
        shi += hi[i];
    }
    bool ramp = prev && slo <= total_c && total_c <= shi;
    if (prev && !ramp)
        for (size_t i = 0; i < c->n; i++) {
            if (isfinite(c->pin[i])) continue;
            box_c(c, i, prom, &lo[i], &hi[i]);
        }
    return ramp;
}

/* Checks one decision against the rules; counts what it exercised. */
static void check_decision(const case_t *c, const double *prev, const double *x, const bool *prom,
                           double total_c, long *seen)
{
    size_t n = c->n;
    double lo[MAXN], hi[MAXN], sum = 0;
    rule_box(c, prev, prom, total_c, lo, hi);
    for (size_t i = 0; i < n; i++) {
        double xc = rint(x[i] * 100), mn, cp;
        box_c(c, i, prom, &mn, &cp);
        cr_assert(xc >= mn && xc <= cp, "c%zu %.2f outside [%.2f, %.2f]", i, x[i], mn / 100, cp / 100);
        cr_assert(xc >= lo[i] && xc <= hi[i], "c%zu %.2f outside its box [%.2f, %.2f]", i, x[i],
                  lo[i] / 100, hi[i] / 100);
        if (isfinite(c->pin[i])) {
            cr_assert_eq(xc, rint(c->pin[i] * 100), "c%zu %.2f not its pin %.2f", i, x[i], c->pin[i]);
            seen[0]++;
        }
        sum += xc;
    }
    cr_assert_eq(sum, total_c, "sum %.2f, total %.2f", sum / 100, total_c / 100);
    /* holds: applied unless they leave the total unplaceable */
    double hlo = 0, hhi = 0, hx[MAXN];
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        hx[i] = NAN;
        if (!isfinite(c->pin[i]) && isfinite(c->hold[i])) {
            hx[i] = fmin(fmax(rint(c->hold[i] * 100), lo[i]), hi[i]);
            hlo += hx[i];
            hhi += hx[i];
            any = true;
        } else {
            hlo += lo[i];
            hhi += hi[i];
        }
    }
    bool holds = any && hlo <= total_c && total_c <= hhi;
    for (size_t i = 0; i < n && holds; i++)
        if (isfinite(hx[i])) {
            cr_assert_eq(rint(x[i] * 100), hx[i], "c%zu %.2f not held at %.2f", i, x[i], hx[i] / 100);
            seen[1]++;
        }
    /* delivery caps: bind unless they leave the total unplaceable */
    double dhi[MAXN], shi = 0;
    for (size_t i = 0; i < n; i++) {
        double h = holds && isfinite(hx[i]) ? hx[i] : hi[i];
        double l = holds && isfinite(hx[i]) ? hx[i] : lo[i];
        dhi[i] = h;
        if (!isfinite(c->pin[i]) && !(holds && isfinite(hx[i])) && c->dcap[i] < INFINITY)
            dhi[i] = fmin(h, fmax(l, floor(c->dcap[i] * 100 + 1e-6)));
        shi += dhi[i];
    }
    if (shi >= total_c)
        for (size_t i = 0; i < n; i++)
            if (dhi[i] < hi[i] && !(holds && isfinite(hx[i]))) {
                cr_assert_leq(rint(x[i] * 100), dhi[i], "c%zu %.2f above its delivery cap %.2f", i,
                              x[i], dhi[i] / 100);
                seen[2]++;
            }
}

Test(guardrails_property, pins_holds_and_caps_in_any_combination, .timeout = 120)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937), *draw = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 1717);
    long seen[3] = {0, 0, 0}, refused = 0, decisions = 0;
    double x[MAXN], mean[MAXN], lo[MAXN], hi[MAXN];
    bd_bound_t bound[MAXN];
    bool prom_out[MAXN];
    bd_alloc_output_t out = {.x = x, .bound = bound, .mean_roas = mean, .roas_lo = lo,
                             .roas_hi = hi, .promoted = prom_out};
    char err[BD_ERRBUF];
    for (int t = 0; t < 20000; t++) {
        case_t c;
        random_case(r, &c);
        double prev[MAXN];
        for (size_t i = 0; i < c.n; i++) prev[i] = cents(gsl_rng_uniform(r) * 2 * c.pol.budget / (double)c.n);
        bool use_prev = gsl_rng_uniform(r) < 0.8;
        for (int cyc = 0; cyc < 3; cyc++) {
            gsl_rng_set(draw, (unsigned long)t * 5 + (unsigned long)cyc);
            bd_alloc_input_t in = {.n = c.n, .pol = &c.pol, .cfg = c.cfgp, .ops = &tm_ops,
                                   .states = c.st, .priors = c.pr, .prev = use_prev ? prev : NULL,
                                   .safe = use_prev ? prev : NULL, .promoted = c.promoted,
                                   .rng = draw, .pin = c.pin, .hold = c.hold, .dcap = c.dcap};
            bd_err_t rc = bd_alloc_decide(&in, &out, err, sizeof err);
            /* the lab gate cannot pass (no evidence): promotion is as given */
            double total_c;
            bool feasible = pins_feasible(&c, c.promoted, &total_c);
            if (!feasible) {
                cr_assert_eq(rc, BD_ERR_INVALID, "infeasible pins accepted (case %d)", t);
                refused++;
                break;
            }
            cr_assert_eq(rc, BD_OK, "case %d/%d: %s", t, cyc, err);
            decisions++;
            bd_verify_input_t v = {.n = c.n, .pol = &c.pol, .cfg = c.cfgp, .x = x,
                                   .prev = use_prev ? prev : NULL, .promoted = prom_out,
                                   .draws = out.draws, .n_draws = out.n_draws,
                                   .risk_held = out.risk_held, .pin = c.pin};
            cr_assert_eq(bd_verify_allocation(&v, err, sizeof err), BD_OK, "case %d/%d: %s", t, cyc, err);
            check_decision(&c, use_prev ? prev : NULL, x, prom_out, total_c, seen);
            memcpy(prev, x, c.n * sizeof *prev);
            use_prev = true;
            /* the next cycle may move pins, holds and caps */
            for (size_t i = 0; i < c.n; i++) {
                if (gsl_rng_uniform(r) < 0.2) c.dcap[i] = cents(gsl_rng_uniform(r) * c.pol.budget);
                if (gsl_rng_uniform(r) < 0.1) c.hold[i] = NAN;
            }
        }
    }
    cr_assert(seen[0] > 1000 && seen[1] > 1000 && seen[2] > 1000 && refused > 100,
              "pins %ld holds %ld caps %ld refused %ld", seen[0], seen[1], seen[2], refused);
    cr_log_info("%ld decisions: pins %ld, holds %ld, delivery caps %ld checked; %ld infeasible refused",
                decisions, seen[0], seen[1], seen[2], refused);
    bd_alloc_output_free(&out);
    gsl_rng_free(r);
    gsl_rng_free(draw);
}
