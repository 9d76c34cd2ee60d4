/* test_goal_property.c: the guardrail property tests in target mode (v2
 * goals). Random portfolios on a budget range with a target, random
 * guardrails, posteriors, allocations in force, pins, fault holds and
 * delivery caps: every decision must pass the independent verifier, and
 * this file re-derives the rules of alloc.h "Goals" with its own loops:
 * min, max and pins always hold; the total lies in the range; the ramp
 * holds whenever the ramp boxes can hold some total of the range; and
 * without a ramp, the total is where the mean marginal crosses the target
 * (or an end of the range). Corrupted copies must be refused. */
#include <criterion/criterion.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "budgetd/alloc.h"
#include "budgetd/goal.h"
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
    bool soft;                   /* pins, holds or caps in play */
} case_t;

static double cents(double v) { return rint(v * 100) / 100; }

static void random_case(gsl_rng *r, case_t *c)
{
    memset(c, 0, sizeof *c);
    size_t n = c->n = 1 + gsl_rng_uniform_int(r, MAXN);
    bd_policy_t *p = &c->pol;
    p->budget = cents(10 + gsl_rng_uniform(r) * 20000);
    p->budget_range.range = true;
    p->budget_range.min = gsl_rng_uniform(r) < 0.2 ? 0 : cents(p->budget * gsl_rng_uniform(r));
    p->goal.kind = gsl_rng_uniform(r) < 0.5 ? BD_GOAL_TARGET_ROAS : BD_GOAL_TARGET_CPA;
    double R = 0.05 + 4 * gsl_rng_uniform(r);
    p->goal.target = p->goal.kind == BD_GOAL_TARGET_ROAS ? R : 1 / R;
    if (p->goal.kind == BD_GOAL_TARGET_CPA) p->objective = BD_OBJ_CONVERSIONS;
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
    c->soft = gsl_rng_uniform(r) < 0.5;
    for (size_t i = 0; i < n; i++) {
        bd_channel_cfg_t *ch = &c->cfg[i];
        snprintf(ch->name, sizeof ch->name, "c%zu", i);
        ch->min = floor(p->budget * min_share * gsl_rng_uniform(r) / (double)n * 100) / 100;
        ch->max = gsl_rng_uniform(r) < 0.3 ? INFINITY
                                           : cents(ch->min + gsl_rng_uniform(r) * 1.5 * p->budget);
        ch->lab = gsl_rng_uniform(r) < 0.2;
        c->promoted[i] = gsl_rng_uniform(r) < 0.3;
        c->cfgp[i] = ch;
        tm_state_t s = {{BD_CURVE_EXP, 0.05 + 4 * gsl_rng_uniform(r),
                         p->budget * (0.01 + gsl_rng_uniform(r)), 0},
                        gsl_rng_uniform(r) < 0.3 ? 0 : 3, 0};
        memcpy(c->st[i].bytes, &s, sizeof s);
        double hi = isfinite(ch->max) ? ch->max : p->budget;
        c->pin[i] = c->soft && gsl_rng_uniform(r) < 0.15
                        ? cents(ch->min + gsl_rng_uniform(r) * (hi - ch->min) * 1.05) : NAN;
        c->hold[i] = c->soft && gsl_rng_uniform(r) < 0.15 ? cents(gsl_rng_uniform(r) * hi) : NAN;
        c->dcap[i] = c->soft && gsl_rng_uniform(r) < 0.2 ? cents(gsl_rng_uniform(r) * hi) : INFINITY;
    }
    double summin = 0;
    for (size_t i = 0; i < n; i++) summin += c->cfg[i].min;
    if (summin > p->budget) p->budget = cents(summin + 1);
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

/* The range [lo, hi] of the total in cents and whether the pins are
 * feasible on it (own loops). */
static bool range_and_pins(const case_t *c, const bool *prom, double *lo, double *hi)
{
    double pins = 0, mins = 0, caps = 0, sumcap = 0, summin = 0;
    bool ok = true;
    for (size_t i = 0; i < c->n; i++) {
        double mn, cp;
        box_c(c, i, prom, &mn, &cp);
        sumcap += cp;
        if (!isfinite(c->pin[i])) { mins += mn; caps += cp; summin += mn; continue; }
        double pc = rint(c->pin[i] * 100);
        if (pc < mn || pc > cp) ok = false;
        pins += pc;
        summin += pc;
    }
    *hi = fmin(floor(c->pol.budget * 100 + 0.5), sumcap);
    *lo = fmin(floor(c->pol.budget_range.min * 100 + 0.5), sumcap);
    return ok && pins + mins <= *hi && pins + caps >= *lo;
}

/* The ramp box of every channel around prev (pins fixed) in cents; its
 * sums into *slo, *shi. */
static void ramp_box(const case_t *c, const double *prev, const bool *prom, double *lo, double *hi,
                     double *slo, double *shi)
{
    *slo = *shi = 0;
    for (size_t i = 0; i < c->n; i++) {
        double mn, cp;
        box_c(c, i, prom, &mn, &cp);
        if (isfinite(c->pin[i])) {
            lo[i] = hi[i] = rint(c->pin[i] * 100);
        } else {
            double step = fmax(c->pol.max_step * prev[i], 0.01 * c->pol.budget);
            double rl = ceil((prev[i] - step) * 100 - 1e-6), rh = floor((prev[i] + step) * 100 + 1e-6);
            lo[i] = fmax(rl, mn);
            hi[i] = fmin(rh, cp);
            if (lo[i] > hi[i]) lo[i] = hi[i] = rl > cp ? cp : mn;
        }
        *slo += lo[i];
        *shi += hi[i];
    }
}

/* Checks one decision against the rules; counts what it exercised:
 * [0] ramp in force, [1] total at the range's low end, [2] at its high
 * end, [3] inside, [4] marginal bracket checked. */
static void check_decision(const case_t *c, const double *prev, const double *x, const bool *prom,
                           const bd_alloc_output_t *out, long *seen)
{
    size_t n = c->n;
    double tlo, thi, sum = 0;
    range_and_pins(c, prom, &tlo, &thi);
    for (size_t i = 0; i < n; i++) {
        double xc = rint(x[i] * 100), mn, cp;
        box_c(c, i, prom, &mn, &cp);
        cr_assert(xc >= mn && xc <= cp, "c%zu %.2f outside [%.2f, %.2f]", i, x[i], mn / 100, cp / 100);
        if (isfinite(c->pin[i])) cr_assert_eq(xc, rint(c->pin[i] * 100), "c%zu not its pin", i);
        sum += xc;
    }
    cr_assert(sum >= tlo && sum <= thi, "total %.2f outside [%.2f, %.2f]", sum / 100, tlo / 100,
              thi / 100);
    cr_assert_float_eq(out->total * 100, sum, 0.5, "out->total %.2f, sum %.2f", out->total, sum / 100);
    if (prev) {
        double lo[MAXN], hi[MAXN], slo, shi;
        ramp_box(c, prev, prom, lo, hi, &slo, &shi);
        if (fmax(tlo, slo) <= fmin(thi, shi)) {
            for (size_t i = 0; i < n; i++) {
                double xc = rint(x[i] * 100);
                cr_assert(xc >= lo[i] && xc <= hi[i], "c%zu %.2f outside its ramp [%.2f, %.2f]", i,
                          x[i], lo[i] / 100, hi[i] / 100);
            }
            seen[0]++;
        }
    }
    if (sum <= tlo) seen[1]++;
    else if (sum >= thi) seen[2]++;
    else seen[3]++;
    /* no ramp, no soft bound, no move: the goal's total on the rules' box */
    if (prev || c->soft || out->kept || out->risk_held || !(thi > tlo)) return;
    for (size_t i = 0; i < n; i++)
        if (out->bound[i] == BD_BOUND_RISK) return;
    double lo[MAXN], hi[MAXN], scratch[BD_GOAL_SCRATCH(MAXN)], summin = 0;
    for (size_t i = 0; i < n; i++) {
        box_c(c, i, prom, &lo[i], &hi[i]);
        summin += lo[i];
        lo[i] /= 100;
        hi[i] /= 100;
    }
    double target = c->pol.goal.kind == BD_GOAL_TARGET_ROAS ? c->pol.goal.target : 1 / c->pol.goal.target;
    double step = fmax(1.0, 1e-4 * thi);
    if (sum > fmax(tlo, summin))
        cr_assert_geq(bd_goal_mean_marginal(out->draws, out->n_draws, n, lo, hi, sum / 100, scratch),
                      target * (1 - 1e-12), "total %.2f does not meet the target", sum / 100);
    if (sum + step < thi)
        cr_assert_lt(bd_goal_mean_marginal(out->draws, out->n_draws, n, lo, hi, (sum + step) / 100,
                                           scratch),
                     target * (1 + 1e-12), "total %.2f stops short of the target", sum / 100);
    seen[4]++;
}

Test(goal_property, target_mode_keeps_every_guardrail, .timeout = 240)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937), *draw = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 1313);
    long seen[5] = {0}, refused = 0, decisions = 0, kept = 0, held = 0, caught = 0;
    double x[MAXN], mean[MAXN], lo[MAXN], hi[MAXN], y[MAXN];
    bd_bound_t bound[MAXN];
    bool prom_out[MAXN];
    bd_alloc_output_t out = {.x = x, .bound = bound, .mean_roas = mean, .roas_lo = lo,
                             .roas_hi = hi, .promoted = prom_out};
    char err[BD_ERRBUF];
    for (int t = 0; t < 15000; t++) {
        case_t c;
        random_case(r, &c);
        double prev[MAXN];
        for (size_t i = 0; i < c.n; i++) prev[i] = cents(gsl_rng_uniform(r) * 2 * c.pol.budget / (double)c.n);
        bool use_prev = gsl_rng_uniform(r) < 0.7;
        for (int cyc = 0; cyc < 3; cyc++) {
            gsl_rng_set(draw, (unsigned long)t * 5 + (unsigned long)cyc);
            bd_alloc_input_t in = {.n = c.n, .pol = &c.pol, .cfg = c.cfgp, .ops = &tm_ops,
                                   .states = c.st, .priors = c.pr, .prev = use_prev ? prev : NULL,
                                   .safe = use_prev ? prev : NULL, .promoted = c.promoted,
                                   .rng = draw, .pin = c.pin, .hold = c.hold, .dcap = c.dcap};
            bd_err_t rc = bd_alloc_decide(&in, &out, err, sizeof err);
            double tlo, thi;
            if (!range_and_pins(&c, c.promoted, &tlo, &thi)) {
                cr_assert_eq(rc, BD_ERR_INVALID, "infeasible pins accepted (case %d)", t);
                refused++;
                break;
            }
            cr_assert_eq(rc, BD_OK, "case %d/%d: %s", t, cyc, err);
            decisions++;
            kept += out.kept;
            held += out.risk_held;
            bd_verify_input_t v = {.n = c.n, .pol = &c.pol, .cfg = c.cfgp, .x = x,
                                   .prev = use_prev ? prev : NULL, .promoted = prom_out,
                                   .draws = out.draws, .n_draws = out.n_draws,
                                   .risk_held = out.risk_held, .pin = c.pin};
            if (!out.kept)
                cr_assert_eq(bd_verify_allocation(&v, err, sizeof err), BD_OK, "case %d/%d: %s", t,
                             cyc, err);
            check_decision(&c, use_prev ? prev : NULL, x, prom_out, &out, seen);
            /* a cent above the range's max (or below its min) is refused */
            double s = 0;
            for (size_t i = 0; i < c.n; i++) s += rint(x[i] * 100);
            memcpy(y, x, c.n * sizeof *y);
            if (s >= thi) {
                y[0] = cents(y[0] + 0.01);
                v.x = y;
                cr_assert_eq(bd_verify_allocation(&v, err, sizeof err), BD_ERR_INVALID, "case %d", t);
                caught++;
            } else if (s <= tlo && y[0] >= 0.01) {
                y[0] = cents(y[0] - 0.01);
                v.x = y;
                cr_assert_eq(bd_verify_allocation(&v, err, sizeof err), BD_ERR_INVALID, "case %d", t);
                caught++;
            }
            memcpy(prev, x, c.n * sizeof *prev);
            use_prev = true;
            for (size_t i = 0; i < c.n; i++) {
                if (c.soft && gsl_rng_uniform(r) < 0.2) c.dcap[i] = cents(gsl_rng_uniform(r) * c.pol.budget);
                if (gsl_rng_uniform(r) < 0.1) c.hold[i] = NAN;
            }
            /* the target or the range may move between cycles */
            if (gsl_rng_uniform(r) < 0.2) c.pol.goal.target *= 0.5 + gsl_rng_uniform(r);
        }
    }
    cr_assert(seen[0] > 1000 && seen[1] > 1000 && seen[2] > 1000 && seen[3] > 1000 &&
                  seen[4] > 500 && refused > 50 && kept > 100 && held > 100 && caught > 1000,
              "ramp %ld low %ld high %ld inside %ld bracket %ld refused %ld kept %ld held %ld caught %ld",
              seen[0], seen[1], seen[2], seen[3], seen[4], refused, kept, held, caught);
    cr_log_info("%ld decisions: ramp %ld, at min %ld, at max %ld, inside %ld, bracket %ld; refused %ld, "
                "kept %ld, held %ld, corruptions caught %ld",
                decisions, seen[0], seen[1], seen[2], seen[3], seen[4], refused, kept, held, caught);
    bd_alloc_output_free(&out);
    gsl_rng_free(r);
    gsl_rng_free(draw);
}
