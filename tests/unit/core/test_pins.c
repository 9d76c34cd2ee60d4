/* test_pins.c: the allocator's v2 inputs one at a time (alloc.h "Pins,
 * fault holds and delivery caps"): a pinned channel spends exactly its pin
 * and the verifier checks it; infeasible pins are refused by the allocator
 * and by the config loader with the same rule; a fault hold keeps its
 * channel where it was; a delivery cap lowers its channel no faster than
 * the ramp and gives the rest to the others; the initial split honours
 * config pins. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <gsl/gsl_rng.h>
#include "budgetd/alloc.h"
#include "budgetd/bounds.h"
#include "budgetd/config.h"
#include "budgetd/verify.h"

#include "testmodel.h"

#define MAXN 6
typedef struct {
    size_t n;
    bd_policy_t pol;
    bd_channel_cfg_t cfg[MAXN];
    const bd_channel_cfg_t *cfgp[MAXN];
    bd_model_state_t st[MAXN];
    bd_prior_t pr[MAXN];
    double prev[MAXN], pin[MAXN], hold[MAXN], dcap[MAXN];
    bool promoted[MAXN], promoted_out[MAXN];
    double x[MAXN], mean[MAXN], lo[MAXN], hi[MAXN];
    bd_bound_t bound[MAXN];
    bd_alloc_output_t out;
    gsl_rng *rng;
    char err[BD_ERRBUF];
} fx_t;

/* n channels, each linear-ish (a = 2 + i, k large), no noise, no risk bound. */
static void fx_init(fx_t *f, size_t n, double budget)
{
    memset(f, 0, sizeof *f);
    f->n = n;
    f->pol.budget = budget;
    f->pol.samples = 16;
    f->pol.max_step = 0.25;
    f->pol.risk_roas_floor = 1.0;
    f->pol.risk_max_prob = 1.0;
    f->pol.lab.min_conversions = 1e9;
    f->pol.lab.max_rel_width = 0.5;
    f->pol.lab.cap_share = 0.05;
    for (size_t i = 0; i < n; i++) {
        snprintf(f->cfg[i].name, sizeof f->cfg[i].name, "ch%zu", i);
        f->cfg[i].max = INFINITY;
        f->cfg[i].saturation = 1000;
        f->cfgp[i] = &f->cfg[i];
        tm_state_t s = {{BD_CURVE_EXP, 2.0 + (double)i, budget, 0}, 0, 0};
        memcpy(f->st[i].bytes, &s, sizeof s);
        f->prev[i] = budget / (double)n;
        f->pin[i] = f->hold[i] = NAN;
        f->dcap[i] = INFINITY;
    }
    f->rng = gsl_rng_alloc(gsl_rng_mt19937);
}

/* One decision with the fixture's pins, holds and caps (prev when use_prev). */
static bd_err_t fx_run(fx_t *f, bool use_prev)
{
    gsl_rng_set(f->rng, 7);
    bd_alloc_input_t in = {.n = f->n, .pol = &f->pol, .cfg = f->cfgp, .ops = &tm_ops,
                           .states = f->st, .priors = f->pr, .prev = use_prev ? f->prev : NULL,
                           .promoted = f->promoted, .rng = f->rng, .pin = f->pin,
                           .hold = f->hold, .dcap = f->dcap};
    f->out.x = f->x;
    f->out.bound = f->bound;
    f->out.mean_roas = f->mean;
    f->out.roas_lo = f->lo;
    f->out.roas_hi = f->hi;
    f->out.promoted = f->promoted_out;
    return bd_alloc_decide(&in, &f->out, f->err, sizeof f->err);
}

static bd_err_t fx_verify(fx_t *f, const double *x, bool use_prev)
{
    bd_verify_input_t v = {.n = f->n, .pol = &f->pol, .cfg = f->cfgp, .x = x,
                           .prev = use_prev ? f->prev : NULL, .promoted = f->promoted_out,
                           .draws = f->out.draws, .n_draws = f->out.n_draws, .pin = f->pin};
    return bd_verify_allocation(&v, f->err, sizeof f->err);
}

static void fx_free(fx_t *f)
{
    bd_alloc_output_free(&f->out);
    gsl_rng_free(f->rng);
}

static double sum(const double *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s;
}

/* The best channel pinned low gets its pin, not the optimiser's choice;
 * the rest of the budget goes to the others; the record names the pin. */
Test(pins, pinned_channel_spends_exactly_its_pin)
{
    fx_t f;
    fx_init(&f, 3, 9000);
    f.pin[2] = 1234.56; /* ch2 has the best return */
    cr_assert_eq(fx_run(&f, false), BD_OK, "%s", f.err);
    cr_assert_float_eq(f.x[2], 1234.56, 1e-9);
    cr_assert_eq(f.bound[2], BD_BOUND_PIN);
    cr_assert_str_eq(bd_bound_name(f.bound[2]), "pin");
    cr_assert_float_eq(sum(f.x, 3), 9000, 1e-6);
    cr_assert_eq(fx_verify(&f, f.x, false), BD_OK, "%s", f.err);
    /* the verifier refuses a cent off the pin, even with the total kept */
    double y[3] = {f.x[0] + 0.01, f.x[1], f.x[2] - 0.01};
    cr_assert_eq(fx_verify(&f, y, false), BD_ERR_INVALID);
    cr_assert(strstr(f.err, "differs from its pin"), "%s", f.err);
    fx_free(&f);
}

/* A pin far from the allocation in force is honoured at once (the ramp
 * does not apply to it); the others absorb the move within their ramp when
 * they can, else the ramp is dropped for that decision as for any bound. */
Test(pins, pin_jumps_past_the_ramp)
{
    fx_t f;
    fx_init(&f, 3, 9000); /* prev 3000 each */
    f.pin[0] = 5000;
    cr_assert_eq(fx_run(&f, true), BD_OK, "%s", f.err);
    cr_assert_float_eq(f.x[0], 5000, 1e-9);
    cr_assert_float_eq(sum(f.x, 3), 9000, 1e-6);
    cr_assert_eq(fx_verify(&f, f.x, true), BD_OK, "%s", f.err);
    fx_free(&f);
}

/* A pin supersedes the lab cap of an unpromoted lab channel, in the
 * allocator and in the verifier. */
Test(pins, pin_supersedes_the_lab_cap)
{
    fx_t f;
    fx_init(&f, 2, 1000);
    f.cfg[1].lab = true; /* lab cap 5% = 50 */
    f.pin[1] = 300;
    cr_assert_eq(fx_run(&f, false), BD_OK, "%s", f.err);
    cr_assert_float_eq(f.x[1], 300, 1e-9);
    cr_assert_eq(fx_verify(&f, f.x, false), BD_OK, "%s", f.err);
    fx_free(&f);
}

/* Infeasible pins are refused with the channel or the sums named, and the
 * same rule answers for bd_bounds_check_pins directly. */
Test(pins, infeasible_pins_are_refused)
{
    fx_t f;
    fx_init(&f, 3, 9000);
    f.cfg[0].max = 800;
    f.pin[0] = 900;
    cr_assert_eq(fx_run(&f, false), BD_ERR_INVALID);
    cr_assert(strstr(f.err, "channel 'ch0': pin 900.00 above max 800.00"), "%s", f.err);
    f.pin[0] = NAN;
    f.cfg[1].min = 3000;
    f.pin[2] = 7000; /* 7000 + 3000 > 9000 */
    cr_assert_eq(fx_run(&f, false), BD_ERR_INVALID);
    cr_assert(strstr(f.err, "pins 7000.00 plus the other channels' mins 3000.00 exceed the total 9000.00"),
              "%s", f.err);
    f.cfg[1].min = 0;
    f.cfg[0].max = f.cfg[1].max = 1000;
    f.pin[2] = 2000; /* 2000 + 2000 < 9000 */
    cr_assert_eq(bd_bounds_check_pins(&f.pol, f.cfgp, 3, f.pin, NULL, f.err, sizeof f.err),
                 BD_ERR_INVALID);
    cr_assert(strstr(f.err, "fall short of the total 9000.00"), "%s", f.err);
    f.pin[2] = 7000;
    cr_assert_eq(bd_bounds_check_pins(&f.pol, f.cfgp, 3, f.pin, NULL, f.err, sizeof f.err), BD_OK,
                 "%s", f.err);
    fx_free(&f);
}

/* A fault hold keeps its channel at the hold (within its ramp box) while
 * the others move; the record says "fault". */
Test(pins, fault_hold_keeps_the_channel)
{
    fx_t f;
    fx_init(&f, 3, 9000);
    f.hold[2] = 3000; /* the best channel would grow without the hold */
    cr_assert_eq(fx_run(&f, true), BD_OK, "%s", f.err);
    cr_assert_float_eq(f.x[2], 3000, 1e-9);
    cr_assert_eq(f.bound[2], BD_BOUND_FAULT);
    cr_assert_eq(fx_verify(&f, f.x, true), BD_OK, "%s", f.err);
    /* a hold outside the ramp box is clipped into it */
    f.hold[2] = 100;
    cr_assert_eq(fx_run(&f, true), BD_OK, "%s", f.err);
    cr_assert_float_eq(f.x[2], 2250, 1e-9, "%.2f", f.x[2]); /* 3000 - 25% */
    fx_free(&f);
}

/* A delivery cap brings its channel down by the ramp, not at once, and the
 * budget it cannot spend goes to the other channels; without a ramp (no
 * allocation in force) the cap holds at once. */
Test(pins, delivery_cap_cuts_within_the_ramp)
{
    fx_t f;
    fx_init(&f, 3, 9000);
    f.dcap[2] = 1000;
    cr_assert_eq(fx_run(&f, true), BD_OK, "%s", f.err);
    cr_assert_float_eq(f.x[2], 2250, 1e-9, "%.2f", f.x[2]);
    cr_assert_eq(f.bound[2], BD_BOUND_DELIVERY);
    cr_assert_str_eq(bd_bound_name(f.bound[2]), "delivery");
    cr_assert_eq(fx_verify(&f, f.x, true), BD_OK, "%s", f.err);
    cr_assert_eq(fx_run(&f, false), BD_OK, "%s", f.err);
    cr_assert_float_eq(f.x[2], 1000, 1e-9, "%.2f", f.x[2]);
    cr_assert_float_eq(sum(f.x, 3), 9000, 1e-6);
    fx_free(&f);
}

/* Caps that together leave the total unplaceable are raised back (the
 * budget must be spent within the config's bounds). */
Test(pins, delivery_caps_yield_to_the_total)
{
    fx_t f;
    fx_init(&f, 2, 1000);
    f.cfg[0].max = 400;
    f.dcap[1] = 100; /* 400 + 100 < 1000: ch1 must take 600 */
    cr_assert_eq(fx_run(&f, false), BD_OK, "%s", f.err);
    cr_assert_float_eq(f.x[0], 400, 1e-9);
    cr_assert_float_eq(f.x[1], 600, 1e-9);
    fx_free(&f);
}

/* Holds that leave the total unplaceable are dropped. */
Test(pins, holds_yield_to_the_total)
{
    fx_t f;
    fx_init(&f, 2, 1000);
    f.cfg[0].max = 400;
    f.hold[1] = 100;
    cr_assert_eq(fx_run(&f, false), BD_OK, "%s", f.err);
    cr_assert_geq(f.x[1], 600, "%.2f", f.x[1]);
    cr_assert_float_eq(sum(f.x, 2), 1000, 1e-6);
    cr_assert_neq(f.bound[1], BD_BOUND_FAULT);
    fx_free(&f);
}

/* The initial split gives a config pin its amount. */
Test(pins, initial_split_honours_config_pins)
{
    fx_t f;
    fx_init(&f, 3, 900);
    f.cfg[1].has_pin = true;
    f.cfg[1].pin = 123.45;
    f.cfg[2].has_initial = true;
    f.cfg[2].initial = 500;
    double x[3];
    bd_alloc_initial(&f.pol, f.cfgp, 3, x);
    cr_assert_float_eq(x[1], 123.45, 1e-9);
    cr_assert_float_eq(x[2], 500, 1e-9);
    cr_assert_float_eq(sum(x, 3), 900, 1e-6);
    fx_free(&f);
}

/* Loads yaml; returns the config or NULL with err set. */
static bd_config_t *load(const char *yaml, char *err, size_t errlen)
{
    bd_config_t *c = NULL;
    bd_config_load_string(yaml, strlen(yaml), "t.yaml", &c, err, errlen);
    return c;
}

/* `pin` in a config: accepted (0 too, when feasible), refused outside its
 * channel's bounds and when the pins cannot hold the budget, at the line. */
Test(pins, config_pins_are_checked)
{
    char err[4096];
    bd_config_t *c = load("v: 1\nportfolios:\n  p:\n    budget: 1000\n    channels:\n"
                          "      a: {pin: 0}\n      b: {max: 2000}\n",
                          err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    const bd_channel_cfg_t *a = bd_config_channel(bd_config_portfolio(c, "p"), &c->defaults, "a");
    cr_assert(a->has_pin);
    cr_assert_eq(a->pin, 0);
    bd_config_free(c);
    c = load("v: 1\nportfolios:\n  p:\n    budget: 1000\n    channels:\n"
             "      a: {max: 500, pin: 600}\n      b: {}\n",
             err, sizeof err);
    cr_assert_null(c);
    cr_assert(strstr(err, "t.yaml:6: portfolio 'p': channel 'a': pin 600 outside [0, 500]"), "%s", err);
    c = load("v: 1\nportfolios:\n  p:\n    budget: 1000\n    channels:\n"
             "      a: {pin: 100}\n      b: {max: 300}\n",
             err, sizeof err);
    cr_assert_null(c);
    cr_assert(strstr(err, "t.yaml:6: portfolio 'p': infeasible pins: pins 100.00 plus the other "
                          "channels' caps 300.00 fall short of the total 1000.00"),
              "%s", err);
    c = load("v: 1\ndefaults:\n  budget: 10\n  channel: {pin: 5}\n", err, sizeof err);
    cr_assert_null(c);
    cr_assert(strstr(err, "'pin' is only allowed on a listed channel"), "%s", err);
}
