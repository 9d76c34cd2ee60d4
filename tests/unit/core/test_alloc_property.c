/* test_alloc_property.c: 100,000+ random decisions (random portfolios,
 * guardrails, posteriors, allocations in force) must all pass the
 * independent verifier, and corrupted copies of them must all fail it. */
#include <criterion/criterion.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "budgetd/alloc.h"
#include "budgetd/verify.h"

#include "testmodel.h"

#define MAXN 12

typedef struct {
    size_t n;
    bd_policy_t pol;
    bd_channel_cfg_t cfg[MAXN];
    const bd_channel_cfg_t *cfgp[MAXN];
    bd_model_state_t st[MAXN];
    bd_prior_t pr[MAXN];
    bool promoted[MAXN];
} case_t;

static double cents(double v) { return rint(v * 100) / 100; }

static double pick(gsl_rng *r, const double *v, size_t k) { return v[gsl_rng_uniform_int(r, k)]; }

/* A random portfolio whose guardrails are feasible (sum of mins <= budget). */
static void random_case(gsl_rng *r, case_t *c)
{
    memset(c, 0, sizeof *c);
    size_t n = c->n = 1 + gsl_rng_uniform_int(r, MAXN);
    bd_policy_t *p = &c->pol;
    p->budget = gsl_rng_uniform(r) < 0.05 ? cents(0.01 + gsl_rng_uniform(r) * 2)
                                          : cents(10 + gsl_rng_uniform(r) * 50000);
    p->samples = 4 + (int)gsl_rng_uniform_int(r, 5);
    p->max_step = 0.02 + gsl_rng_uniform(r);
    static const double mc[] = {0, 0, 0.01, 0.1}, ex[] = {0, 0.05, 0.2, 0.5};
    static const double mp[] = {1, 1, 0.05, 0.2, 0.5}, sh[] = {0, 0.5, 3, 50};
    p->min_change = pick(r, mc, 4);
    p->explore_share = pick(r, ex, 4);
    p->risk_max_prob = pick(r, mp, 5);
    p->risk_roas_floor = 0.2 + 2 * gsl_rng_uniform(r);
    p->lab.min_conversions = 50;
    p->lab.max_rel_width = 0.5 + gsl_rng_uniform(r);
    p->lab.cap_share = 0.01 + 0.3 * gsl_rng_uniform(r);
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
        tm_state_t s = {{BD_CURVE_EXP, 0.05 + 4 * gsl_rng_uniform(r), 0, 0},
                        pick(r, sh, 4), 200 * gsl_rng_uniform(r)};
        if (gsl_rng_uniform(r) < 0.3) {
            s.c.kind = BD_CURVE_POWER;
            s.c.b = 0.1 + 0.85 * gsl_rng_uniform(r);
        } else {
            s.c.k = p->budget * (0.01 + 2 * gsl_rng_uniform(r));
        }
        if (gsl_rng_uniform(r) < 0.03) s.c.a = 0;
        memcpy(c->st[i].bytes, &s, sizeof s);
    }
}

typedef struct {
    double x[MAXN], mean[MAXN], lo[MAXN], hi[MAXN];
    bd_bound_t bound[MAXN];
    bool promoted[MAXN];
    bd_alloc_output_t out;
} res_t;

static bd_err_t verify(const case_t *c, const double *x, const double *prev, const res_t *res,
                       bool risk_held, char *err, size_t errlen)
{
    bd_verify_input_t v = {c->n, &c->pol, c->cfgp, x, prev, res->promoted,
                           res->out.draws, res->out.n_draws, risk_held, NULL};
    return bd_verify_allocation(&v, err, errlen);
}

/* Three corruptions of a verified allocation that must each be refused:
 * one cent too many, one channel a cent over its cap, and the risk check
 * on a decision that held for risk. */
static void check_corruptions(const case_t *c, const double *prev, res_t *res, long *caught)
{
    char err[BD_ERRBUF];
    double y[MAXN];
    size_t n = c->n;
    memcpy(y, res->x, n * sizeof *y);
    y[0] = cents(y[0] + 0.01);
    cr_assert_eq(verify(c, y, prev, res, res->out.risk_held, err, sizeof err), BD_ERR_INVALID,
                 "one cent too many passed");
    caught[0]++;
    for (size_t i = 0; i < n; i++) {
        if (!(res->x[i] >= c->cfg[i].max - 0.005) || n < 2) continue;
        size_t j = (i + 1) % n;
        if (res->x[j] < 0.01) continue;
        memcpy(y, res->x, n * sizeof *y);
        y[i] = cents(y[i] + 0.01);
        y[j] = cents(y[j] - 0.01);
        cr_assert_eq(verify(c, y, prev, res, res->out.risk_held, err, sizeof err), BD_ERR_INVALID,
                     "a cent over max passed");
        caught[1]++;
        break;
    }
    if (res->out.risk_held && res->out.p_below_floor > c->pol.risk_max_prob) {
        cr_assert_eq(verify(c, res->x, prev, res, false, err, sizeof err), BD_ERR_INVALID,
                     "risk above bound passed");
        caught[2]++;
    }
}

Test(alloc_property, random_decisions_pass_the_verifier, .timeout = 120)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937), *draw = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 2024);
    const int cases = 100000, cycles = 2; /* 50,000 portfolios, 2 chained cycles each */
    long decisions = 0, kept = 0, held = 0, risk_moved = 0, ramp_bound = 0, capped = 0;
    long caught[3] = {0, 0, 0};
    char err[BD_ERRBUF];
    res_t res;
    memset(&res, 0, sizeof res);
    res.out.x = res.x;
    res.out.mean_roas = res.mean;
    res.out.roas_lo = res.lo;
    res.out.roas_hi = res.hi;
    res.out.bound = res.bound;
    res.out.promoted = res.promoted;
    for (int t = 0; t < cases; t += cycles) {
        case_t c;
        random_case(r, &c);
        size_t n = c.n;
        double prev[MAXN], safe[MAXN];
        bd_alloc_initial(&c.pol, c.cfgp, n, safe);
        cr_assert_eq(verify(&c, safe, NULL, &(res_t){.promoted = {false}}, true, err, sizeof err),
                     BD_OK, "initial split: %s", err);
        int kind = (int)gsl_rng_uniform_int(r, 3);
        for (size_t i = 0; i < n; i++)
            prev[i] = kind == 0 ? safe[i] : cents(gsl_rng_uniform(r) * 2 * c.pol.budget / (double)n);
        bool have_prev = kind != 2 || gsl_rng_uniform(r) < 0.5;
        /* consecutive cycles; the budget sometimes moves in between */
        for (int cyc = 0; cyc < cycles; cyc++) {
            gsl_rng_set(draw, (unsigned long)t * 7 + (unsigned long)cyc);
            bd_alloc_input_t in = {n, &c.pol, c.cfgp, &tm_ops, c.st, c.pr,
                                   have_prev ? prev : NULL, safe, c.promoted, draw, NULL, NULL, NULL, NULL};
            bd_err_t rc = bd_alloc_decide(&in, &res.out, err, sizeof err);
            cr_assert_eq(rc, BD_OK, "case %d/%d: %s", t, cyc, err);
            decisions++;
            rc = verify(&c, res.x, have_prev ? prev : NULL, &res, res.out.risk_held, err, sizeof err);
            cr_assert_eq(rc, BD_OK, "case %d/%d (n %zu): %s", t, cyc, n, err);
            if (res.out.kept) {
                kept++;
                cr_assert(memcmp(res.x, prev, n * sizeof(double)) == 0);
            }
            if (!res.out.risk_held)
                cr_assert(res.out.p_below_floor <= c.pol.risk_max_prob);
            held += res.out.risk_held;
            capped += res.out.capped;
            for (size_t i = 0; i < n; i++) {
                risk_moved += res.bound[i] == BD_BOUND_RISK;
                ramp_bound += res.bound[i] == BD_BOUND_RAMP;
                cr_assert(res.lo[i] <= res.mean[i] * (1 + 1e-12) + 1e-12 &&
                          res.mean[i] <= res.hi[i] * (1 + 1e-12) + 1e-12);
            }
            check_corruptions(&c, have_prev ? prev : NULL, &res, caught);
            /* next cycle: this decision is in force; promotion sticks */
            memcpy(prev, res.x, n * sizeof *prev);
            memcpy(c.promoted, res.promoted, n * sizeof *c.promoted);
            if (!res.out.risk_held) memcpy(safe, res.x, n * sizeof *safe);
            have_prev = true;
            if (gsl_rng_uniform(r) < 0.2) c.pol.budget = cents(c.pol.budget * (0.5 + gsl_rng_uniform(r)));
            double summin = 0;
            for (size_t i = 0; i < n; i++) summin += c.cfg[i].min;
            if (summin > c.pol.budget) c.pol.budget = summin;
        }
    }
    /* the random space must actually exercise every guardrail */
    cr_assert(kept > 100 && held > 100 && risk_moved > 100 && ramp_bound > 100 && capped > 100,
              "kept %ld held %ld risk %ld ramp %ld capped %ld", kept, held, risk_moved, ramp_bound, capped);
    cr_assert(caught[1] > 100 && caught[2] > 100, "caught %ld %ld %ld", caught[0], caught[1], caught[2]);
    cr_log_info("%ld decisions: kept %ld held %ld risk-bound %ld ramp-bound %ld capped %ld; caught %ld/%ld/%ld",
                decisions, kept, held, risk_moved, ramp_bound, capped, caught[0], caught[1], caught[2]);
    bd_alloc_output_free(&res.out);
    gsl_rng_free(r);
    gsl_rng_free(draw);
}
